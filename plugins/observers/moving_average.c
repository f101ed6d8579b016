/* This file implements the `moving_average` observer: an exponential moving
 * average of every batch's min and max, per tensor or per channel of
 * spec->axis, like PyTorch's MovingAverageMinMaxObserver (and its
 * per-channel variant).  A single batch with an outlier moves the range by
 * only `averaging_constant` of the jump, where minmax would keep it forever.
 *
 *   observer_args: {averaging_constant: 0.01}      # in (0, 1]
 *
 * For each batch b with (finite) extremes min_b, max_b:
 *   lo = min_1, hi = max_1                          (first batch)
 *   lo += c * (min_b - lo), hi += c * (max_b - hi)  (later batches)
 * c = 1 is "the last batch's min/max".  A channel whose values in a batch
 * are all NaN or infinite skips that batch (like minmax, non-finite values
 * are ignored).
 *
 * Merge: the average depends on batch order, so two partial averages
 * cannot be combined exactly.  merge() takes the mean of the two estimates
 * weighted by how many batches each saw (per channel): the estimate of
 * whichever side saw more data counts for more, an empty side changes
 * nothing, and merging is symmetric.  Sharded calibration therefore gives a
 * range close to, not identical with, one sequential run. */
#include <math.h>
#include <quantkit/quantkit.h>
#include "layout.h"

typedef struct moving_average {
    const qk_host *host;
    double constant;       /* averaging_constant, in (0, 1] */
    int per_channel;
    int axis;              /* as given in the spec; may be negative (from the end) */
    int64_t channels;      /* 0 until the first batch fixes it */
    int64_t batches;       /* batches that held at least one value */
    double *lo, *hi;       /* the averages, `channels` entries each */
    int64_t *updates;      /* batches that moved each channel's average */
} moving_average;

static void moving_average_destroy(void *state)
{
    moving_average *m = state;
    if (!m)
        return;
    const qk_host *host = m->host;
    host->mem->free(m->lo);
    host->mem->free(m->hi);
    host->mem->free(m->updates);
    host->mem->free(m);
}

static int moving_average_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec,
                                 void **state)
{
    static const char *const allowed[] = {"averaging_constant", NULL};
    *state = NULL;
    if (!spec)
        return host->log->error(host, QK_EINVAL, "no quantization spec given");
    double constant = 0.01;
    if (args) {
        int rc = host->params->check_keys(args, allowed, "observer_args of observer `moving_average`");
        if (rc < 0)
            return rc;
        if ((rc = host->params->get_float(args, "averaging_constant", &constant)) < 0)
            return rc;
    }
    if (!(constant > 0 && constant <= 1))
        return host->log->error(host, QK_EINVAL, "observer_args: averaging_constant %g is outside (0, 1]", constant);
    moving_average *m = host->mem->calloc(1, sizeof *m);
    if (!m)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    m->host = host;
    m->constant = constant;
    m->per_channel = spec->per_channel != 0;
    m->axis = spec->axis;
    *state = m;
    return QK_OK;
}

/* Allocates the per-channel arrays on the first batch; later batches must
 * have the same channel count. */
static int set_channels(moving_average *m, int64_t channels)
{
    const qk_host *host = m->host;
    if (m->channels)
        return layout_same_channels(host, m->channels, channels);
    m->lo = host->mem->calloc((size_t)channels, sizeof *m->lo);
    m->hi = host->mem->calloc((size_t)channels, sizeof *m->hi);
    m->updates = host->mem->calloc((size_t)channels, sizeof *m->updates);
    if (!m->lo || !m->hi || !m->updates) {
        host->mem->free(m->lo);
        host->mem->free(m->hi);
        host->mem->free(m->updates);
        m->lo = m->hi = NULL;
        m->updates = NULL;
        return host->log->error(host, QK_ENOMEM, "out of memory");
    }
    m->channels = channels;
    return QK_OK;
}

static int moving_average_observe(void *state, const qk_tensor *t)
{
    moving_average *m = state;
    const qk_host *host = m->host;
    layout l;
    int st = layout_of(host, t, m->per_channel, m->axis, &l);
    if (!st)
        st = set_channels(m, l.channels);
    if (st || !l.numel)
        return st;
    for (int64_t c = 0; c < l.channels; c++) {
        scan_extremes e = layout_extremes(&l, c, 0);
        double lo = e.lo, hi = e.hi;
        if (lo > hi)
            continue;   /* nothing finite in this channel of this batch */
        if (!m->updates[c]) {
            m->lo[c] = lo;
            m->hi[c] = hi;
        } else {
            m->lo[c] += m->constant * (lo - m->lo[c]);
            m->hi[c] += m->constant * (hi - m->hi[c]);
        }
        m->updates[c]++;
    }
    m->batches++;
    return QK_OK;
}

static int moving_average_merge(void *state, const void *other_state)
{
    moving_average *m = state;
    const moving_average *o = other_state;
    const qk_host *host = m->host;
    if (!o->batches)
        return QK_OK;
    if (m->per_channel != o->per_channel || m->constant != o->constant)
        return host->log->error(host, QK_EINVAL, "cannot merge observations made with different arguments or spec");
    int st = set_channels(m, o->channels);
    if (st)
        return st;
    for (int64_t c = 0; c < m->channels; c++) {
        double n = (double)m->updates[c], k = (double)o->updates[c];
        if (!k)
            continue;
        m->lo[c] = (n * m->lo[c] + k * o->lo[c]) / (n + k);
        m->hi[c] = (n * m->hi[c] + k * o->hi[c]) / (n + k);
        m->updates[c] += o->updates[c];
    }
    m->batches += o->batches;
    return QK_OK;
}

static int moving_average_range(void *state, int64_t channels, float *lo, float *hi)
{
    moving_average *m = state;
    const qk_host *host = m->host;
    int st = layout_range_check(host, m->batches, m->channels, channels);
    if (st)
        return st;
    for (int64_t c = 0; c < channels; c++) {
        if (!m->updates[c])
            return host->log->error(host, QK_EINVAL, "channel %lld held no finite value", (long long)c);
        lo[c] = (float)m->lo[c];
        hi[c] = (float)m->hi[c];
    }
    return QK_OK;
}

static const qk_observer_vtable moving_average_vtable = {
    sizeof(qk_observer_vtable), moving_average_create, moving_average_observe, moving_average_merge,
    moving_average_range,       moving_average_destroy,
    /* Not QK_OBSERVER_SHARDABLE: each batch's extremes are averaged in
     * batch order.  But only a batch's extremes count. */
    QK_OBSERVER_EXTREMES,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "moving_average", "1.0.0",
                 "exponential moving average of each batch's min and max, per tensor or per channel", "MIT",
                 &moving_average_vtable);
