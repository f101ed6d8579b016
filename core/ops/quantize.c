/* This file implements QuantizeLinear and DequantizeLinear, the two ops a
 * QDQ model is made of, per tensor or per axis, and DynamicQuantizeLinear.
 *
 * They are the reference for everything quantkit writes: a calibrated model
 * is only as right as these kernels, so they follow the spec to the bit
 * (x / scale in float, round half to even, add the zero point, saturate),
 * the way onnxruntime computes them too. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "ops.h"

/* Range of a quantized type; 0 when it is not one we quantize to. */
static int q_range(int dt, int32_t *lo, int32_t *hi)
{
    switch (dt) {
    case DT_UINT8: *lo = 0; *hi = 255; return 1;
    case DT_INT8: *lo = -128; *hi = 127; return 1;
    case DT_UINT16: *lo = 0; *hi = 65535; return 1;
    case DT_INT16: *lo = -32768; *hi = 32767; return 1;
    default: return 0;
    }
}

/* Shared shape checks: the scale (and zero point) are one value, or one per
 * slice of x along `axis` (opset 13).  Sets *axis, -1 for per tensor. */
static int qdq_check(op_ctx *c, const xt *x, const xt *scale, const xt *zp, int *axis)
{
    *axis = -1;
    if (scale->dtype != DT_FLOAT)
        return op_fail(c, QK_ENOTSUP, "scale of type %s is not supported (float only)", dtype_name(scale->dtype));
    if (x->rank < 0 || !xt_shape_known(scale)) return QK_OK;
    char a[128], b[128];
    int64_t ns = xt_numel(scale);
    if (zp && xt_shape_known(zp) && xt_numel(zp) != ns)
        return op_fail(c, QK_EINVAL, "zero point %s and scale %s differ in shape", xt_shape_str(zp, a, sizeof a),
                       xt_shape_str(scale, b, sizeof b));
    if (ns == 1) return QK_OK;
    if (scale->rank != 1)
        return op_fail(c, QK_ENOTSUP, "blocked quantization (scale %s) is not supported",
                       xt_shape_str(scale, a, sizeof a));
    int64_t ax = node_attr_int(c->node, "axis", 1);
    if (ax < 0) ax += x->rank;
    if (ax < 0 || ax >= x->rank)
        return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d",
                       (long long)node_attr_int(c->node, "axis", 1), x->rank);
    if (x->dims[ax] >= 0 && scale->dims[0] != x->dims[ax])
        return op_fail(c, QK_EINVAL, "scale %s does not match axis %d of %s", xt_shape_str(scale, a, sizeof a),
                       (int)ax, xt_shape_str(x, b, sizeof b));
    *axis = (int)ax;
    return QK_OK;
}

/* Zero points as int32, one per channel (count entries); absent means 0. */
static int32_t *load_zp(const xt *zp, int64_t count)
{
    int32_t *z = malloc((size_t)(count > 0 ? count : 1) * sizeof *z);
    if (!z) return NULL;
    int64_t nz = zp ? xt_numel(zp) : 0;
    for (int64_t i = 0; i < count; i++) z[i] = nz == 0 ? 0 : (int32_t)xt_get_i64(zp, nz == 1 ? 0 : i);
    return z;
}

/* ---- QuantizeLinear ------------------------------------------------------ */

static int q_out_dtype(op_ctx *c)
{
    if (op_has_input(c, 2)) return c->in[2]->dtype;
    int dt = (int)node_attr_int(c->node, "output_dtype", 0);
    return dt ? dt : DT_UINT8;
}

static int quantize_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int dt = q_out_dtype(c);
    if (!dt || !x->dtype || !c->in[1]->dtype) return QK_UNKNOWN;   /* upstream types not inferred yet */
    int32_t lo, hi;
    if (!q_range(dt, &lo, &hi))
        return op_fail(c, QK_ENOTSUP, "quantizing to %s is not supported", dtype_name(dt));
    if (x->dtype != DT_FLOAT && x->dtype != DT_INT32)
        return op_fail(c, QK_ENOTSUP, "quantizing %s input is not supported", dtype_name(x->dtype));
    int axis;
    int rc = qdq_check(c, x, c->in[1], op_has_input(c, 2) ? c->in[2] : NULL, &axis);
    if (rc != QK_OK) return rc;
    xt *y = c->out[0];
    y->dtype = dt;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return QK_OK;
}

typedef struct q_job {
    const xt *x;
    xt *y;
    const float *scale;
    const int32_t *zp;
    int64_t inner, dim;   /* element i is in channel (i / inner) % dim */
    int32_t lo, hi;
} q_job;

static inline int32_t q_one(float v, float s, int32_t zp, int32_t lo, int32_t hi)
{
    float q = nearbyintf(v / s);
    if (isnan(q)) return zp < lo ? lo : zp > hi ? hi : zp;
    q += (float)zp;
    return q < (float)lo ? lo : q > (float)hi ? hi : (int32_t)q;
}

#define Q_LOOP(T)                                                                  \
    do {                                                                           \
        T *yd = (T *)j->y->data;                                                   \
        for (int64_t i = b; i < e;) {                                              \
            int64_t ch = (i / j->inner) % j->dim;                                  \
            int64_t stop = (i / j->inner + 1) * j->inner;                          \
            if (stop > e) stop = e;                                                \
            float s = j->scale[ch];                                                \
            int32_t z = j->zp[ch];                                                 \
            if (xf)                                                                \
                for (; i < stop; i++) yd[i] = (T)q_one(xf[i], s, z, j->lo, j->hi); \
            else                                                                   \
                for (; i < stop; i++)                                              \
                    yd[i] = (T)q_one((float)xi[i], s, z, j->lo, j->hi);            \
        }                                                                          \
    } while (0)

static void q_range_run(void *arg, int64_t b, int64_t e, int tid)
{
    const q_job *j = arg;
    const float *xf = j->x->dtype == DT_FLOAT ? j->x->data : NULL;
    const int32_t *xi = j->x->dtype == DT_INT32 ? j->x->data : NULL;
    switch (j->y->dtype) {
    case DT_UINT8: Q_LOOP(uint8_t); break;
    case DT_INT8: Q_LOOP(int8_t); break;
    case DT_UINT16: Q_LOOP(uint16_t); break;
    case DT_INT16: Q_LOOP(int16_t); break;
    default: break;
    }
}

/* Channel layout of x for axis (-1: per tensor). */
static void qdq_layout(const xt *x, int axis, int64_t *inner, int64_t *dim)
{
    *inner = 1;
    *dim = 1;
    if (axis < 0) {
        *inner = xt_numel(x);
        if (*inner <= 0) *inner = 1;
        return;
    }
    *dim = x->dims[axis];
    for (int d = axis + 1; d < x->rank; d++) *inner *= x->dims[d];
    if (*inner <= 0) *inner = 1;
    if (*dim <= 0) *dim = 1;
}

static int quantize_run(op_ctx *c)
{
    const xt *x = c->in[0], *scale = c->in[1], *zp = op_has_input(c, 2) ? c->in[2] : NULL;
    xt *y = c->out[0];
    int axis;
    int rc = qdq_check(c, x, scale, zp, &axis);
    if (rc != QK_OK) return rc;
    int64_t n = xt_numel(x);
    if (n == 0) return QK_OK;
    q_job j = {.x = x, .y = y};
    q_range(y->dtype, &j.lo, &j.hi);
    qdq_layout(x, axis, &j.inner, &j.dim);
    /* A zero scale is not rejected: x / 0 saturates and 0 / 0 gives the zero
     * point, like onnxruntime. */
    const float *sc = scale->data;
    float one_scale;
    if (axis < 0) {
        one_scale = sc[0];
        sc = &one_scale;
    }
    int32_t *z = load_zp(zp, j.dim);
    if (!z) return op_fail(c, QK_ENOMEM, "out of memory");
    j.scale = sc;
    j.zp = z;
    tp_parallel_for(c->pool, n, 16384, q_range_run, &j);
    free(z);
    return QK_OK;
}

/* ---- DequantizeLinear ---------------------------------------------------- */

static int dequantize_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int32_t lo, hi;
    if (!x->dtype || !c->in[1]->dtype || (op_has_input(c, 2) && !c->in[2]->dtype)) return QK_UNKNOWN;
    if (!q_range(x->dtype, &lo, &hi) && x->dtype != DT_INT32)
        return op_fail(c, QK_ENOTSUP, "dequantizing %s is not supported", dtype_name(x->dtype));
    if (op_has_input(c, 2) && c->in[2]->dtype != x->dtype)
        return op_fail(c, QK_EINVAL, "zero point is %s, input is %s", dtype_name(c->in[2]->dtype),
                       dtype_name(x->dtype));
    int axis;
    int rc = qdq_check(c, x, c->in[1], op_has_input(c, 2) ? c->in[2] : NULL, &axis);
    if (rc != QK_OK) return rc;
    xt *y = c->out[0];
    y->dtype = DT_FLOAT;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return QK_OK;
}

typedef struct dq_job {
    const xt *x;
    float *y;
    const float *scale;
    const int32_t *zp;
    int64_t inner, dim;
} dq_job;

/* W is wide enough for x - zero point: int32 inputs need int64. */
#define DQ_LOOP(T, W)                                                          \
    do {                                                                       \
        const T *xd = (const T *)j->x->data;                                   \
        for (int64_t i = b; i < e;) {                                          \
            int64_t ch = (i / j->inner) % j->dim;                              \
            int64_t stop = (i / j->inner + 1) * j->inner;                      \
            if (stop > e) stop = e;                                            \
            float s = j->scale[ch];                                            \
            int32_t z = j->zp[ch];                                             \
            for (; i < stop; i++) j->y[i] = (float)((W)xd[i] - z) * s;         \
        }                                                                      \
    } while (0)

static void dq_range_run(void *arg, int64_t b, int64_t e, int tid)
{
    const dq_job *j = arg;
    switch (j->x->dtype) {
    case DT_UINT8: DQ_LOOP(uint8_t, int32_t); break;
    case DT_INT8: DQ_LOOP(int8_t, int32_t); break;
    case DT_UINT16: DQ_LOOP(uint16_t, int32_t); break;
    case DT_INT16: DQ_LOOP(int16_t, int32_t); break;
    case DT_INT32: DQ_LOOP(int32_t, int64_t); break;
    default: break;
    }
}

static int dequantize_run(op_ctx *c)
{
    const xt *x = c->in[0], *scale = c->in[1], *zp = op_has_input(c, 2) ? c->in[2] : NULL;
    int axis;
    int rc = qdq_check(c, x, scale, zp, &axis);
    if (rc != QK_OK) return rc;
    int64_t n = xt_numel(x);
    if (n == 0) return QK_OK;
    dq_job j = {.x = x, .y = c->out[0]->data};
    qdq_layout(x, axis, &j.inner, &j.dim);
    const float *sc = scale->data;
    float one_scale;
    if (axis < 0) {
        one_scale = sc[0];
        sc = &one_scale;
    }
    int32_t *z = load_zp(zp, j.dim);
    if (!z) return op_fail(c, QK_ENOMEM, "out of memory");
    j.scale = sc;
    j.zp = z;
    tp_parallel_for(c->pool, n, 16384, dq_range_run, &j);
    free(z);
    return QK_OK;
}

/* ---- DynamicQuantizeLinear ----------------------------------------------- */

static int dynq_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (!x->dtype) return QK_UNKNOWN;
    if (x->dtype != DT_FLOAT)
        return op_fail(c, QK_ENOTSUP, "quantizing %s input is not supported", dtype_name(x->dtype));
    xt *y = c->out[0];
    y->dtype = DT_UINT8;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    if (c->n_out > 1 && c->out[1]) *c->out[1] = (xt){.dtype = DT_FLOAT, .rank = 0};
    if (c->n_out > 2 && c->out[2]) *c->out[2] = (xt){.dtype = DT_UINT8, .rank = 0};
    return QK_OK;
}

/* The spec's uint8 recipe: the range is widened to include 0 so that 0 is
 * exact, scale = range / 255, zero point = round(-min / scale) saturated. */
static int dynq_run(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t n = xt_numel(x);
    const float *xd = x->data;
    float mn = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        if (xd[i] < mn) mn = xd[i];
        if (xd[i] > mx) mx = xd[i];
    }
    float scale = (mx - mn) / 255.0f;
    int32_t zp = scale == 0 ? 0 : q_one(-mn, scale, 0, 0, 255);
    if (c->n_out > 1 && c->out[1]) *(float *)c->out[1]->data = scale;
    if (c->n_out > 2 && c->out[2]) *(uint8_t *)c->out[2]->data = (uint8_t)zp;
    if (n == 0) return QK_OK;
    q_job j = {.x = x, .y = c->out[0], .inner = n, .dim = 1, .lo = 0, .hi = 255};
    /* An all-zero input has scale 0: every element is the zero point. */
    float one = scale == 0 ? 1 : scale;
    j.scale = &one;
    j.zp = &zp;
    tp_parallel_for(c->pool, n, 16384, q_range_run, &j);
    return QK_OK;
}

const op_def ops_quantize[] = {
    {"QuantizeLinear", quantize_infer, quantize_run},
    {"DequantizeLinear", dequantize_infer, dequantize_run},
    {"DynamicQuantizeLinear", dynq_infer, dynq_run},
};
const int ops_quantize_count = sizeof ops_quantize / sizeof ops_quantize[0];
