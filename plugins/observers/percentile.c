/* This file implements the `percentile` observer: the range is a
 * percentile of the calibration values instead of their extremes, so a few
 * outliers do not stretch the scale for everyone else (ONNX Runtime's
 * Percentile calibrator, AMCT's and TensorRT's percentile modes).
 *
 *   observer_args: {percentile: 99.99, bins: 2048}
 *
 * Symmetric specs histogram |x| and return [-P, P], P the `percentile`-th
 * percentile of |x|.  Asymmetric specs histogram x itself and return
 * [P_low, P_high]: the (100 - percentile)-th and the percentile-th
 * percentiles, i.e. the same share is clipped off each tail.  Per channel,
 * every channel gets its own histogram.
 *
 * Values are never kept: a histogram per channel (histogram.h) grows with
 * the data and merges exactly, and percentiles are read from it with linear
 * interpolation inside a bin, clamped to the observed extremes (so
 * percentile 100 is exactly minmax). */
#include <math.h>
#include <quantkit/quantkit.h>
#include "histogram.h"

typedef struct percentile {
    const qk_host *host;
    double percentile;     /* in (0, 100] */
    int symmetric;
    histogram_set hist;
} percentile;

static void percentile_destroy(void *state)
{
    percentile *p = state;
    if (!p)
        return;
    histogram_set_free(&p->hist);
    p->host->mem->free(p);
}

static int percentile_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {"percentile", "bins", NULL};
    *state = NULL;
    if (!spec)
        return host->log->error(host, QK_EINVAL, "no quantization spec given");
    double pct = 99.99;
    int64_t bins = 2048;
    if (args) {
        int rc = host->params->check_keys(args, allowed, "observer_args of observer `percentile`");
        if (rc < 0)
            return rc;
        if ((rc = host->params->get_float(args, "percentile", &pct)) < 0)
            return rc;
        if ((rc = host->params->get_int(args, "bins", &bins)) < 0)
            return rc;
    }
    if (!(pct > 0 && pct <= 100))
        return host->log->error(host, QK_EINVAL, "observer_args: percentile %g is outside (0, 100]", pct);
    if (bins < 16 || bins > HISTOGRAM_MAX_BINS)
        return host->log->error(host, QK_EINVAL, "observer_args: bins %lld is outside 16..%d", (long long)bins,
                                HISTOGRAM_MAX_BINS);
    percentile *p = host->mem->calloc(1, sizeof *p);
    if (!p)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    p->host = host;
    p->percentile = pct;
    p->symmetric = spec->symmetric != 0;
    histogram_set_init(&p->hist, host, spec, bins, p->symmetric);
    *state = p;
    return QK_OK;
}

static int percentile_observe(void *state, const qk_tensor *t)
{
    percentile *p = state;
    return histogram_set_observe(&p->hist, t);
}

static int percentile_merge(void *state, const void *other_state)
{
    percentile *p = state;
    const percentile *o = other_state;
    if (p->percentile != o->percentile || p->symmetric != o->symmetric)
        return p->host->log->error(p->host, QK_EINVAL, "cannot merge observations made with different arguments");
    return histogram_set_merge(&p->hist, &o->hist);
}

static int percentile_range(void *state, int64_t channels, float *lo, float *hi)
{
    percentile *p = state;
    int st = histogram_set_ready(&p->hist, channels);
    if (st)
        return st;
    double q = p->percentile / 100.0;
    for (int64_t c = 0; c < channels; c++) {
        const histogram *h = &p->hist.h[c];
        if (p->symmetric) {
            double amax = histogram_quantile(h, p->hist.bins, q);
            lo[c] = (float)-amax;
            hi[c] = (float)amax;
        } else {
            lo[c] = (float)histogram_quantile(h, p->hist.bins, 1.0 - q);
            hi[c] = (float)histogram_quantile(h, p->hist.bins, q);
        }
    }
    return QK_OK;
}

static const qk_observer_vtable percentile_vtable = {
    sizeof(qk_observer_vtable), percentile_create, percentile_observe, percentile_merge, percentile_range,
    percentile_destroy, QK_OBSERVER_SHARDABLE,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "percentile", "1.0.0",
                 "percentile of the values (|x| when symmetric) from a growing histogram, per tensor or per channel",
                 "MIT", &percentile_vtable);
