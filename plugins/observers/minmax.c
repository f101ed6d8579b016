/* This file implements the `minmax` observer: the range [lo, hi] is the
 * smallest and largest value seen over every calibration batch, per tensor
 * or per channel of spec->axis.  It is the baseline observer of ONNX
 * Runtime's MinMax calibrator and of most toolkits; the host widens the
 * range to include 0 and turns it into scale and zero point.
 *
 * State is two float arrays (one entry per channel), so merging partial
 * observations is exact.  NaN and infinities are skipped: one of them would
 * make every scale infinite, and clipping is what quantization does to
 * them anyway.  Takes no observer_args. */
#include <math.h>
#include <quantkit/quantkit.h>
#include "layout.h"

typedef struct minmax {
    const qk_host *host;
    int per_channel;
    int axis;              /* as given in the spec; may be negative (from the end) */
    int64_t channels;      /* 0 until the first batch fixes it */
    int64_t batches;       /* batches that held at least one value */
    float *lo, *hi;        /* channels entries each; lo > hi: nothing seen yet */
} minmax;

static void minmax_destroy(void *state)
{
    minmax *m = state;
    if (!m)
        return;
    const qk_host *host = m->host;
    host->mem->free(m->lo);
    host->mem->free(m->hi);
    host->mem->free(m);
}

static int minmax_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {NULL};
    *state = NULL;
    if (args && host->params->check_keys(args, allowed, "observer_args"))
        return QK_EINVAL;
    if (!spec)
        return host->log->error(host, QK_EINVAL, "no quantization spec given");
    minmax *m = host->mem->calloc(1, sizeof *m);
    if (!m)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    m->host = host;
    m->per_channel = spec->per_channel != 0;
    m->axis = spec->axis;
    *state = m;
    return QK_OK;
}

/* Allocates the per-channel arrays on the first batch; later batches must
 * have the same channel count. */
static int set_channels(minmax *m, int64_t channels)
{
    const qk_host *host = m->host;
    if (m->channels)
        return layout_same_channels(host, m->channels, channels);
    m->lo = host->mem->alloc((size_t)channels * sizeof *m->lo);
    m->hi = host->mem->alloc((size_t)channels * sizeof *m->hi);
    if (!m->lo || !m->hi) {
        host->mem->free(m->lo);
        host->mem->free(m->hi);
        m->lo = m->hi = NULL;
        return host->log->error(host, QK_ENOMEM, "out of memory");
    }
    for (int64_t c = 0; c < channels; c++) {
        m->lo[c] = INFINITY;
        m->hi[c] = -INFINITY;
    }
    m->channels = channels;
    return QK_OK;
}

static int minmax_observe(void *state, const qk_tensor *t)
{
    minmax *m = state;
    const qk_host *host = m->host;
    layout l;
    int st = layout_of(host, t, m->per_channel, m->axis, &l);
    if (!st)
        st = set_channels(m, l.channels);
    if (st || !l.numel)
        return st;
    for (int64_t c = 0; c < l.channels; c++) {
        scan_extremes e = layout_extremes(&l, c, 0);
        m->lo[c] = e.lo < m->lo[c] ? e.lo : m->lo[c];
        m->hi[c] = e.hi > m->hi[c] ? e.hi : m->hi[c];
    }
    m->batches++;
    return QK_OK;
}

static int minmax_merge(void *state, const void *other_state)
{
    minmax *m = state;
    const minmax *o = other_state;
    const qk_host *host = m->host;
    if (!o->batches)
        return QK_OK;
    if (m->per_channel != o->per_channel)
        return host->log->error(host, QK_EINVAL, "cannot merge a per-tensor and a per-channel observation");
    int st = set_channels(m, o->channels);
    if (st)
        return st;
    for (int64_t c = 0; c < m->channels; c++) {
        m->lo[c] = o->lo[c] < m->lo[c] ? o->lo[c] : m->lo[c];
        m->hi[c] = o->hi[c] > m->hi[c] ? o->hi[c] : m->hi[c];
    }
    m->batches += o->batches;
    return QK_OK;
}

static int minmax_range(void *state, int64_t channels, float *lo, float *hi)
{
    minmax *m = state;
    const qk_host *host = m->host;
    int st = layout_range_check(host, m->batches, m->channels, channels);
    if (st)
        return st;
    for (int64_t c = 0; c < channels; c++) {
        if (m->lo[c] > m->hi[c])
            return host->log->error(host, QK_EINVAL, "channel %lld held no finite value", (long long)c);
        lo[c] = m->lo[c];
        hi[c] = m->hi[c];
    }
    return QK_OK;
}

static const qk_observer_vtable minmax_vtable = {
    sizeof(qk_observer_vtable), minmax_create, minmax_observe, minmax_merge, minmax_range, minmax_destroy,
    QK_OBSERVER_SHARDABLE | QK_OBSERVER_EXTREMES,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "minmax", "1.0.0", "smallest and largest value over all batches, per tensor or per channel",
                 "MIT", &minmax_vtable);
