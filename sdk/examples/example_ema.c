/* This file implements a complete third-party quantkit observer plugin,
 * "example_ema", built out of tree against the installed SDK only:
 *
 *   make                      # uses pkg-config quantkit-plugin
 *   QUANTKIT_PLUGIN_PATH=$PWD quantkit plugins
 *
 * and selected by name in the YAML:
 *
 *   quantize:
 *     activation: {observer: example_ema, observer_args: {decay: 0.9}}
 *
 * It tracks an exponential moving average of each batch's min and max (per
 * tensor), the classic "EMA observer" of quantization-aware toolkits.  Its
 * state is mergeable: merging averages the two estimates, weighted by how
 * many batches each saw. */
#include <math.h>
#include <quantkit/quantkit.h>

typedef struct ema_state {
    const qk_host *host;
    double decay;
    double lo, hi;
    int64_t batches;
} ema_state;

static int ema_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {"decay", NULL};
    int rc = host->params->check_keys(args, allowed, "observer_args of observer `example_ema`");
    if (rc < 0) return rc;
    double decay = 0.9;
    rc = host->params->get_float(args, "decay", &decay);
    if (rc < 0) return rc;
    if (!(decay > 0.0 && decay < 1.0))
        return host->log->error(host, QK_EINVAL, "decay %g is outside (0, 1)", decay);
    if (spec->per_channel)
        return host->log->error(host, QK_ENOTSUP, "per-channel observation is not supported");
    ema_state *s = host->mem->calloc(1, sizeof *s);
    if (!s) return QK_ENOMEM;
    s->host = host;
    s->decay = decay;
    *state = s;
    return QK_OK;
}

static int ema_observe(void *state, const qk_tensor *t)
{
    ema_state *s = state;
    const qk_tensor_api *ta = s->host->tensor;
    if (ta->dtype(t) != QK_DTYPE_FLOAT)
        return s->host->log->error(s->host, QK_EINVAL, "tensor '%s' is not float", ta->name(t));
    const float *x = ta->data(t);
    int64_t n = ta->numel(t);
    if (n <= 0) return QK_OK;
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (!isfinite(lo) || !isfinite(hi))
        return s->host->log->error(s->host, QK_EINVAL, "tensor '%s' holds NaN or infinity", ta->name(t));
    if (s->batches == 0) {
        s->lo = lo;
        s->hi = hi;
    } else {
        s->lo = s->decay * s->lo + (1.0 - s->decay) * lo;
        s->hi = s->decay * s->hi + (1.0 - s->decay) * hi;
    }
    s->batches++;
    return QK_OK;
}

static int ema_merge(void *state, const void *other)
{
    ema_state *s = state;
    const ema_state *o = other;
    if (o->batches == 0) return QK_OK;
    if (s->batches == 0) {
        s->lo = o->lo;
        s->hi = o->hi;
    } else {
        double w = (double)s->batches / (double)(s->batches + o->batches);
        s->lo = w * s->lo + (1.0 - w) * o->lo;
        s->hi = w * s->hi + (1.0 - w) * o->hi;
    }
    s->batches += o->batches;
    return QK_OK;
}

static int ema_range(void *state, int64_t channels, float *lo, float *hi)
{
    ema_state *s = state;
    if (s->batches == 0) return s->host->log->error(s->host, QK_EINVAL, "no batch was observed");
    for (int64_t c = 0; c < channels; c++) {
        lo[c] = (float)s->lo;
        hi[c] = (float)s->hi;
    }
    return QK_OK;
}

static void ema_destroy(void *state)
{
    ema_state *s = state;
    if (s) s->host->mem->free(s);
}

static const qk_observer_vtable ema_vtable = {
    sizeof ema_vtable, ema_create, ema_observe, ema_merge, ema_range, ema_destroy,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "example_ema", "1.0.0",
                 "exponential moving average of batch min/max (SDK example)", "MIT", &ema_vtable);
