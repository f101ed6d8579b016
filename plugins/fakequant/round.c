/* This file implements the `round` quantizer (round to nearest, RTN): each
 * weight becomes q = clamp(round_half_even(x / scale) + zero_point, qmin,
 * qmax), per tensor or per channel along qp->axis -- exactly ONNX's
 * QuantizeLinear, so the deployed model and the fake-quant simulation agree
 * bit for bit.  The baseline every smarter quantizer (AdaRound, ...) is
 * measured against.  Takes no quantizer_args.
 *
 * x / scale is computed in float, as QuantizeLinear does.  NaN becomes the
 * zero point (the code of 0.0); infinities clamp to qmin / qmax. */
#include <math.h>
#include <quantkit/quantkit.h>

typedef struct round_state {
    const qk_host *host;
} round_state;

static int round_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {NULL};
    *state = NULL;
    if (args && host->params->check_keys(args, allowed, "quantizer_args"))
        return QK_EINVAL;
    round_state *s = host->mem->calloc(1, sizeof *s);
    if (!s)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    s->host = host;
    *state = s;
    return QK_OK;
}

static void round_destroy(void *state)
{
    round_state *s = state;
    if (s)
        s->host->mem->free(s);
}

/* Ties go to the even neighbour, independently of the FPU rounding mode.
 * v - floor(v) is exact in binary floating point. */
static float round_half_even(float v)
{
    float f = floorf(v), d = v - f;
    if (d > 0.5f || (d == 0.5f && fmodf(f, 2.0f) != 0.0f))
        f += 1.0f;
    return f;
}

static int round_quantize(void *state, const qk_tensor *w, const qk_qparams *qp, int32_t *q)
{
    const qk_host *host = ((round_state *)state)->host;
    const qk_tensor_api *ta = host->tensor;
    const char *name = ta->name(w);
    if (ta->dtype(w) != QK_DTYPE_FLOAT)
        return host->log->error(host, QK_ENOTSUP, "tensor '%s': only float tensors can be quantized (dtype %d)", name,
                                (int)ta->dtype(w));
    int rank = ta->rank(w);
    int64_t numel = ta->numel(w);
    const float *x = ta->data(w);
    if (rank < 0 || numel < 0)
        return host->log->error(host, QK_EINVAL, "tensor '%s': shape not known", name);
    if (numel && !x)
        return host->log->error(host, QK_EINVAL, "tensor '%s': no data to quantize", name);
    if (!qp || !qp->scale || qp->count < 1)
        return host->log->error(host, QK_EINVAL, "tensor '%s': no scale given", name);
    if (qp->qmin > qp->qmax)
        return host->log->error(host, QK_EINVAL, "tensor '%s': empty code range [%d, %d]", name, (int)qp->qmin,
                                (int)qp->qmax);
    int64_t outer = 1, channels = 1, inner = numel;
    if (qp->axis >= 0) {   /* quant.h: axis -1 is per tensor */
        int axis = qp->axis;
        if (axis >= rank)
            return host->log->error(host, QK_EINVAL, "tensor '%s': channel axis %d out of range for rank %d", name,
                                    qp->axis, rank);
        channels = ta->dim(w, axis);
        inner = 1;
        for (int i = 0; i < rank; i++) {
            if (i < axis)
                outer *= ta->dim(w, i);
            else if (i > axis)
                inner *= ta->dim(w, i);
        }
    }
    if (qp->count != channels)
        return host->log->error(host, QK_EINVAL, "tensor '%s': %lld scales for %lld channels", name,
                                (long long)qp->count, (long long)channels);
    for (int64_t c = 0; c < channels; c++)
        if (!(qp->scale[c] > 0.0f) || !isfinite(qp->scale[c]))
            return host->log->error(host, QK_EINVAL, "tensor '%s': scale %g of channel %lld is not a positive number",
                                    name, (double)qp->scale[c], (long long)c);
    const float lo = (float)qp->qmin, hi = (float)qp->qmax;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t c = 0; c < channels; c++) {
            const float scale = qp->scale[c];
            /* A NULL zero_point array means symmetric: all zero. */
            const float zp = qp->zero_point ? (float)qp->zero_point[c] : 0.0f;
            const int64_t base = (o * channels + c) * inner;
            for (int64_t i = 0; i < inner; i++) {
                float v = x[base + i] / scale;
                /* Clamp in float first: converting an out-of-range float to
                 * int32 is undefined. */
                v = isnan(v) ? zp : round_half_even(v) + zp;
                v = v < lo ? lo : v > hi ? hi : v;
                q[base + i] = (int32_t)v;
            }
        }
    }
    return QK_OK;
}

static const qk_fakequant_vtable round_vtable = {
    sizeof(qk_fakequant_vtable), round_create, round_quantize, round_destroy,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_FAKEQUANT, "round", "1.0.0", "round to nearest, ties to even (RTN), per tensor or per channel",
                 "MIT", &round_vtable);
