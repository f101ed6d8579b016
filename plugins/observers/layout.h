/* This file implements the per-tensor or per-channel layout of an observed
 * tensor, which the minmax and moving_average observers and the histogram
 * (percentile, kl, mse) share: the checks every observe() starts with (float
 * dtype, known shape, data present), the channel axis of the spec resolved
 * against the tensor's rank, the tensor seen as outer x channels x inner,
 * each channel's finite extremes (scan.h), and the channel-count checks made
 * on later batches, merges and range().
 * It exists so that the rules and error messages are written once instead of
 * being kept in step across three files.  Header-only (static inline
 * functions, SDK headers only) so that every observer stays one
 * self-contained shared object. */
#ifndef QK_OBSERVERS_LAYOUT_H
#define QK_OBSERVERS_LAYOUT_H
#include <math.h>
#include <quantkit/quantkit.h>
#include "scan.h"

/* A float tensor as outer x channels x inner: the values of channel c are
 * data[(o * channels + c) * inner + i] for every o < outer and i < inner.
 * Per tensor is one channel spanning everything: outer = 1, inner = numel. */
typedef struct layout {
    const float *data;  /* borrowed from the tensor, valid while it is; NULL only when numel is 0 */
    int64_t numel;
    int64_t outer, channels, inner;
} layout;

/* Fills *l for tensor t observed per channel of `axis` (negative counts from
 * the end; ignored when per_channel is 0).  Returns QK_OK, QK_ENOTSUP for a
 * non-float tensor, or QK_EINVAL for an unknown shape, missing data, an axis
 * out of range or an axis with no channels; the error is reported through the
 * host, naming the tensor.  A tensor with no values (numel 0) is a valid
 * layout: the channel count is still fixed by its shape. */
static inline int layout_of(const qk_host *host, const qk_tensor *t, int per_channel, int axis, layout *l)
{
    const qk_tensor_api *ta = host->tensor;
    /* Filled before any check, so that no path leaves *l undefined. */
    *l = (layout){.data = NULL, .numel = 0, .outer = 1, .channels = 1, .inner = 0};
    if (ta->dtype(t) != QK_DTYPE_FLOAT)
        return host->log->error(host, QK_ENOTSUP, "tensor '%s': only float tensors can be observed (dtype %d)",
                                ta->name(t), (int)ta->dtype(t));
    int rank = ta->rank(t);
    l->numel = ta->numel(t);
    l->data = ta->data(t);
    if (rank < 0 || l->numel < 0)
        return host->log->error(host, QK_EINVAL, "tensor '%s': shape not known", ta->name(t));
    if (l->numel && !l->data)
        return host->log->error(host, QK_EINVAL, "tensor '%s': no data to observe", ta->name(t));
    l->inner = l->numel;
    if (!per_channel)
        return QK_OK;
    int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank)
        return host->log->error(host, QK_EINVAL, "tensor '%s': channel axis %d out of range for rank %d",
                                ta->name(t), axis, rank);
    l->channels = ta->dim(t, a);
    l->inner = 1;
    for (int i = 0; i < rank; i++) {
        if (i < a)
            l->outer *= ta->dim(t, i);
        else if (i > a)
            l->inner *= ta->dim(t, i);
    }
    if (l->channels <= 0)
        return host->log->error(host, QK_EINVAL, "tensor '%s': channel axis %d has no channels", ta->name(t), a);
    return QK_OK;
}

/* The `inner` values of channel c in outer slice o.  Only for numel > 0. */
static inline const float *layout_run(const layout *l, int64_t o, int64_t c)
{
    return l->data + (o * l->channels + c) * l->inner;
}

/* The finite extremes of channel c (of x, and of |x| when with_abs), over every outer
 * slice.  NaN and infinities are skipped, as every observer does; lo > hi
 * when the channel holds no finite value (scan.h).  Only for numel > 0. */
static inline scan_extremes layout_extremes(const layout *l, int64_t c, int with_abs)
{
    scan_extremes e = scan_none();
    for (int64_t o = 0; o < l->outer; o++)
        scan_extremes_add(&e, layout_run(l, o, c), l->inner, with_abs);
    return e;
}

/* The check for a later batch (or a merged shard): `known` is the channel
 * count fixed by the first one (nonzero).  Returns QK_OK when `channels`
 * agrees, otherwise QK_EINVAL, reported through the host. */
static inline int layout_same_channels(const qk_host *host, int64_t known, int64_t channels)
{
    if (known == channels)
        return QK_OK;
    return host->log->error(host, QK_EINVAL, "channel count changed from %lld to %lld between batches",
                            (long long)known, (long long)channels);
}

/* The check every range() starts with: at least one batch reached the
 * observer, and the caller asks for the `observed` channel count.  Returns
 * QK_OK or QK_EINVAL, reported through the host. */
static inline int layout_range_check(const qk_host *host, int64_t batches, int64_t observed, int64_t asked)
{
    if (!batches)
        return host->log->error(host, QK_EINVAL,
                                "range requested before any value was observed (no calibration batch reached "
                                "this tensor)");
    if (asked != observed)
        return host->log->error(host, QK_EINVAL, "range asked for %lld channels, %lld were observed",
                                (long long)asked, (long long)observed);
    return QK_OK;
}

#endif
