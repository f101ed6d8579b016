/* This file implements the normalization kernels: BatchNormalization
 * (inference form only), LayerNormalization, InstanceNormalization and
 * MeanVarianceNormalization.
 *
 * Statistics are accumulated in double and variances take two passes (mean
 * first, then squared deviations), so large-offset activations do not lose
 * precision the way E[x^2] - E[x]^2 would.  X may be float or double; the
 * small parameter tensors are read through xt_get_f64 so opset 15's mixed
 * parameter types need no extra code. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

/* Typed row helpers for float and double activations; four independent
 * partial sums per pass keep the add-latency chain short. */
#define NORM_HELPERS(T, SUF)                                                         \
    /* Mean and 1/sqrt(var + eps) of the n contiguous elements at x. */            \
    static void moments_##SUF(const T *x, int64_t n, double eps, double *mean, double *inv) \
    {                                                                                \
        double p[4] = {0};                                                           \
        int64_t i = 0;                                                               \
        for (; i + 4 <= n; i += 4)                                                   \
            for (int l = 0; l < 4; l++) p[l] += x[i + l];                            \
        for (; i < n; i++) p[0] += x[i];                                             \
        double m = n ? ((p[0] + p[1]) + (p[2] + p[3])) / (double)n : 0;              \
        p[0] = p[1] = p[2] = p[3] = 0;                                               \
        for (i = 0; i + 4 <= n; i += 4)                                              \
            for (int l = 0; l < 4; l++) {                                            \
                double d = x[i + l] - m;                                             \
                p[l] += d * d;                                                       \
            }                                                                        \
        for (; i < n; i++) p[0] += (x[i] - m) * (x[i] - m);                          \
        double v = n ? ((p[0] + p[1]) + (p[2] + p[3])) / (double)n : 0;              \
        *mean = m;                                                                   \
        *inv = 1.0 / sqrt(v + eps);                                                  \
    }                                                                                \
    /* y = x * a + b with one scale and shift for the whole run. */                  \
    static void affine1_##SUF(const T *x, T *y, int64_t n, double a, double b)      \
    {                                                                                \
        T ta = (T)a, tb = (T)b;                                                      \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * ta + tb;                       \
    }                                                                                \
    /* y = x * a[i] + b[i], per-element scale and shift. */                          \
    static void affinev_##SUF(const T *x, T *y, int64_t n, const double *a, const double *b) \
    {                                                                                \
        for (int64_t i = 0; i < n; i++) y[i] = (T)(x[i] * a[i] + b[i]);              \
    }                                                                                \
    /* LayerNormalization's row: normalize, then per-element scale and bias. */     \
    static void lnrow_##SUF(const T *x, T *y, int64_t n, double m, double inv,       \
                            const double *scale, const double *bias)                \
    {                                                                                \
        for (int64_t i = 0; i < n; i++) y[i] = (T)((x[i] - m) * inv * scale[i] + bias[i]); \
    }

NORM_HELPERS(float, f32)
NORM_HELPERS(double, f64)

static void moments(const void *x, int dt, int64_t off, int64_t n, double eps, double *mean, double *inv)
{
    if (dt == DT_FLOAT) moments_f32((const float *)x + off, n, eps, mean, inv);
    else moments_f64((const double *)x + off, n, eps, mean, inv);
}

static void affine1(const void *x, void *y, int dt, int64_t off, int64_t n, double a, double b)
{
    if (dt == DT_FLOAT) affine1_f32((const float *)x + off, (float *)y + off, n, a, b);
    else affine1_f64((const double *)x + off, (double *)y + off, n, a, b);
}

static void affinev(const void *x, void *y, int dt, int64_t off, int64_t n, const double *a, const double *b)
{
    if (dt == DT_FLOAT) affinev_f32((const float *)x + off, (float *)y + off, n, a, b);
    else affinev_f64((const double *)x + off, (double *)y + off, n, a, b);
}

static int check_float(op_ctx *c, const xt *x, const char *what)
{
    if (x->dtype != DT_FLOAT && x->dtype != DT_DOUBLE)
        return op_fail(c, QK_ENOTSUP, "%s type %s (float, double supported)", what, dtype_name(x->dtype));
    return QK_OK;
}

static void same_shape(xt *y, const xt *x)
{
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof x->dims);
}

/* ----------------------------------------------------- BatchNormalization */

typedef struct {
    const void *x;
    void *y;
    int dt;
    int64_t ch, size;         /* channels, elements per plane */
    int per_elem;             /* spatial=0: parameters per (channel, position) */
    const double *a, *b;      /* y = x * a + b */
} bn_job;

static void bn_planes(void *arg, int64_t p0, int64_t p1, int tid)
{
    (void)tid;
    const bn_job *j = arg;
    for (int64_t p = p0; p < p1; p++) {
        int64_t ch = p % j->ch, off = p * j->size;
        if (j->per_elem) affinev(j->x, j->y, j->dt, off, j->size, j->a + ch * j->size, j->b + ch * j->size);
        else affine1(j->x, j->y, j->dt, off, j->size, j->a[ch], j->b[ch]);
    }
}

/* Parameters hold C values, or C*spatial values for opset 7's spatial=0. */
static void bn_param_count(op_ctx *c, const xt *x, int64_t *count, int *per_elem)
{
    int64_t ch = x->rank >= 2 ? x->dims[1] : 1, sp = 1;
    for (int i = 2; i < x->rank; i++) sp = (sp < 0 || x->dims[i] < 0) ? -1 : sp * x->dims[i];
    *per_elem = c->opset < 9 && node_attr_int(c->node, "spatial", 1) == 0;
    *count = *per_elem ? (ch < 0 || sp < 0 ? -1 : ch * sp) : ch;
}

static int bn_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (node_attr_int(c->node, "training_mode", 0))
        return op_fail(c, QK_ENOTSUP, "training_mode=1 (only inference is supported)");
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i])
            return op_fail(c, QK_ENOTSUP, "output %d (running or saved statistics) exists only in training mode, "
                                          "which is not supported", i);
    if (c->n_in < 5)
        return op_fail(c, QK_EINVAL, "expected 5 inputs (X, scale, B, mean, var), got %d", c->n_in);
    for (int i = 1; i < 5; i++) {
        if (!c->in[i]) return op_fail(c, QK_EINVAL, "input %d is required", i);
    }
    if (x->rank < 0) return QK_UNKNOWN;
    int rc = check_float(c, x, "X");
    if (rc) return rc;
    if (x->rank < 1) return op_fail(c, QK_EINVAL, "X must have rank >= 1");
    int64_t count;
    int per_elem;
    bn_param_count(c, x, &count, &per_elem);
    static const char *const names[] = {"", "scale", "B", "mean", "var"};
    for (int i = 1; i < 5; i++) {
        int64_t n = xt_numel(c->in[i]);
        if ((rc = check_float(c, c->in[i], names[i]))) return rc;
        if (n >= 0 && count >= 0 && n != count)
            return op_fail(c, QK_EINVAL, "%s has %lld values, expected %lld", names[i], (long long)n, (long long)count);
    }
    same_shape(c->out[0], x);
    return QK_OK;
}

static int bn_run(op_ctx *c)
{
    const xt *x = c->in[0];
    double eps = node_attr_float(c->node, "epsilon", 1e-5f);
    int64_t count;
    int per_elem;
    bn_param_count(c, x, &count, &per_elem);
    double *a = malloc(2 * (size_t)(count > 0 ? count : 1) * sizeof *a);
    if (!a) return op_fail(c, QK_ENOMEM, "out of memory for %lld parameters", (long long)count);
    double *b = a + count;
    /* Folding the four parameters into one scale and shift per channel
     * turns the per-element work into a single multiply-add. */
    for (int64_t i = 0; i < count; i++) {
        a[i] = xt_get_f64(c->in[1], i) / sqrt(xt_get_f64(c->in[4], i) + eps);
        b[i] = xt_get_f64(c->in[2], i) - xt_get_f64(c->in[3], i) * a[i];
    }
    bn_job j = {x->data, c->out[0]->data, x->dtype, x->rank >= 2 ? x->dims[1] : 1, 1, per_elem, a, b};
    for (int i = 2; i < x->rank; i++) j.size *= x->dims[i];
    int64_t planes = x->dims[0] * j.ch;
    int64_t grain = j.size > 0 ? 65536 / j.size : 1;
    tp_parallel_for(c->pool, planes, grain < 1 ? 1 : grain, bn_planes, &j);
    free(a);
    return QK_OK;
}

/* ----------------------------------------------------- LayerNormalization */

static int ln_axis(op_ctx *c, int rank, int *axis)
{
    int64_t a = node_attr_int(c->node, "axis", -1);
    if (a < -rank || a >= rank)
        return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, rank);
    *axis = (int)(a < 0 ? a + rank : a);
    return QK_OK;
}

/* Checks that p broadcasts to the normalized shape x->dims[axis:]
 * (numpy rules, p may not be larger). */
static int ln_check_param(op_ctx *c, const xt *x, int axis, const xt *p, const char *what)
{
    if (p->rank < 0) return QK_OK;
    int nr = x->rank - axis;
    for (int i = 0; i < p->rank; i++) {
        int xi = i - p->rank + nr;   /* aligned axis within the normalized shape */
        int64_t d = p->dims[i];
        if (xi < 0) {
            if (d != 1 && d >= 0) goto bad;
            continue;
        }
        int64_t xd = x->dims[axis + xi];
        if (d != 1 && d >= 0 && xd >= 0 && d != xd) goto bad;
    }
    return QK_OK;
bad:;
    char b1[96], b2[96];
    return op_fail(c, QK_EINVAL, "%s shape %s does not broadcast to X %s from axis %d", what,
                   xt_shape_str(p, b1, sizeof b1), xt_shape_str(x, b2, sizeof b2), axis);
}

/* Expands p to the D values of the normalized shape (broadcasting). */
static void ln_expand(const xt *x, int axis, const xt *p, double *out, int64_t D)
{
    int nr = x->rank - axis;
    int64_t pst[XT_MAX_RANK], bst[XT_MAX_RANK];
    xt_strides(p, pst);
    /* broadcast stride of each normalized axis into p */
    for (int i = 0; i < nr; i++) {
        int pi = i - nr + p->rank;
        bst[i] = (pi < 0 || p->dims[pi] == 1) ? 0 : pst[pi];
    }
    for (int64_t d = 0; d < D; d++) {
        int64_t r = d, idx = 0;
        for (int i = nr - 1; i >= 0; i--) {
            int64_t n = x->dims[axis + i];
            idx += (r % n) * bst[i];
            r /= n;
        }
        out[d] = xt_get_f64(p, idx);
    }
}

typedef struct {
    const void *x;
    void *y;
    int dt;
    int64_t D;
    double eps;
    const double *scale, *bias;   /* bias is zeros when B is absent */
    float *mean, *inv;            /* optional outputs, NULL when not wanted */
} ln_job;

static void ln_rows(void *arg, int64_t r0, int64_t r1, int tid)
{
    (void)tid;
    const ln_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        int64_t off = r * j->D;
        double m, inv;
        moments(j->x, j->dt, off, j->D, j->eps, &m, &inv);
        if (j->dt == DT_FLOAT)
            lnrow_f32((const float *)j->x + off, (float *)j->y + off, j->D, m, inv, j->scale, j->bias);
        else
            lnrow_f64((const double *)j->x + off, (double *)j->y + off, j->D, m, inv, j->scale, j->bias);
        if (j->mean) j->mean[r] = (float)m;
        if (j->inv) j->inv[r] = (float)inv;
    }
}

static int ln_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (c->n_in < 2 || !c->in[1]) return op_fail(c, QK_EINVAL, "input Scale is required");
    if (x->rank < 0) return QK_UNKNOWN;
    int rc = check_float(c, x, "X");
    if (rc) return rc;
    int64_t stash = node_attr_int(c->node, "stash_type", 1);
    if (stash != DT_FLOAT && stash != DT_DOUBLE)
        return op_fail(c, QK_ENOTSUP, "stash_type %lld (float, double supported)", (long long)stash);
    int axis;
    if ((rc = ln_axis(c, x->rank, &axis))) return rc;
    if ((rc = ln_check_param(c, x, axis, c->in[1], "Scale"))) return rc;
    if (c->n_in > 2 && c->in[2] && (rc = ln_check_param(c, x, axis, c->in[2], "B"))) return rc;
    same_shape(c->out[0], x);
    for (int i = 1; i < 3 && i < c->n_out; i++) {
        xt *o = c->out[i];
        if (!o) continue;
        /* Mean and InvStdDev are float (type U, opset 17) with the
         * normalized axes kept as 1. */
        same_shape(o, x);
        o->dtype = DT_FLOAT;
        for (int k = axis; k < x->rank; k++) o->dims[k] = 1;
    }
    return QK_OK;
}

static int ln_run(op_ctx *c)
{
    const xt *x = c->in[0];
    int axis, rc;
    if ((rc = ln_axis(c, x->rank, &axis))) return rc;
    int64_t M = 1, D = 1;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis) M *= x->dims[i];
        else D *= x->dims[i];
    }
    const xt *bias = c->n_in > 2 ? c->in[2] : NULL;
    double *scale = malloc(2 * (size_t)(D > 0 ? D : 1) * sizeof *scale);
    if (!scale) return op_fail(c, QK_ENOMEM, "out of memory for %lld parameters", (long long)D);
    ln_expand(x, axis, c->in[1], scale, D);
    if (bias) ln_expand(x, axis, bias, scale + D, D);
    else memset(scale + D, 0, (size_t)D * sizeof *scale);
    ln_job j = {
        .x = x->data, .y = c->out[0]->data, .dt = x->dtype, .D = D,
        .eps = node_attr_float(c->node, "epsilon", 1e-5f),
        .scale = scale, .bias = scale + D,
        .mean = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL,
        .inv = c->n_out > 2 && c->out[2] ? c->out[2]->data : NULL,
    };
    int64_t grain = D > 0 ? 32768 / D : 1;
    tp_parallel_for(c->pool, M, grain < 1 ? 1 : grain, ln_rows, &j);
    free(scale);
    return QK_OK;
}

/* -------------------------------------------------- InstanceNormalization */

typedef struct {
    const void *x;
    void *y;
    int dt;
    int64_t ch, size;
    double eps;
    const xt *scale, *bias;
} in_job;

static void in_planes(void *arg, int64_t p0, int64_t p1, int tid)
{
    (void)tid;
    const in_job *j = arg;
    for (int64_t p = p0; p < p1; p++) {
        int64_t ch = p % j->ch, off = p * j->size;
        double m, inv;
        moments(j->x, j->dt, off, j->size, j->eps, &m, &inv);
        double a = inv * xt_get_f64(j->scale, ch), b = xt_get_f64(j->bias, ch) - m * a;
        affine1(j->x, j->y, j->dt, off, j->size, a, b);
    }
}

static int in_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (c->n_in < 3 || !c->in[1] || !c->in[2])
        return op_fail(c, QK_EINVAL, "expected 3 inputs (input, scale, B)");
    if (x->rank < 0) return QK_UNKNOWN;
    int rc = check_float(c, x, "input");
    if (rc) return rc;
    if (x->rank < 2) return op_fail(c, QK_EINVAL, "input must have rank >= 2 (N, C, ...), got %d", x->rank);
    for (int i = 1; i < 3; i++) {
        if ((rc = check_float(c, c->in[i], i == 1 ? "scale" : "B"))) return rc;
        int64_t n = xt_numel(c->in[i]);
        if (n >= 0 && x->dims[1] >= 0 && n != x->dims[1])
            return op_fail(c, QK_EINVAL, "%s has %lld values for %lld channels", i == 1 ? "scale" : "B",
                           (long long)n, (long long)x->dims[1]);
    }
    same_shape(c->out[0], x);
    return QK_OK;
}

static int in_run(op_ctx *c)
{
    const xt *x = c->in[0];
    in_job j = {x->data, c->out[0]->data, x->dtype, x->dims[1], 1,
                node_attr_float(c->node, "epsilon", 1e-5f), c->in[1], c->in[2]};
    for (int i = 2; i < x->rank; i++) j.size *= x->dims[i];
    int64_t grain = j.size > 0 ? 32768 / j.size : 1;
    tp_parallel_for(c->pool, x->dims[0] * j.ch, grain < 1 ? 1 : grain, in_planes, &j);
    return QK_OK;
}

/* ---------------------------------------------- MeanVarianceNormalization */

/* Reduced axes of MVN (attribute `axes`, default {0, 2, 3}) flagged in red[]. */
static int mvn_axes(op_ctx *c, const xt *x, int *red)
{
    static const int64_t def[] = {0, 2, 3};
    const int64_t *ax;
    int n = node_attr_ints(c->node, "axes", &ax);
    if (n < 0) {
        ax = def;
        n = 3;
    }
    for (int i = 0; i < x->rank; i++) red[i] = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = ax[i] < 0 ? ax[i] + x->rank : ax[i];
        if (a < 0 || a >= x->rank)
            return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)ax[i], x->rank);
        red[a] = 1;
    }
    return QK_OK;
}

static int mvn_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    int red[XT_MAX_RANK], rc;
    if ((rc = check_float(c, x, "X")) || (rc = mvn_axes(c, x, red))) return rc;
    same_shape(c->out[0], x);
    return QK_OK;
}

/* Walks x in memory order; pass 0 sums into s1, pass 1 sums squared
 * deviations into s2, pass 2 writes y.  Each element's statistics slot (its
 * index over the kept axes) is tracked with an odometer rather than divided
 * out per element.  The op is rare enough to stay serial. */
static void mvn_pass(const xt *x, xt *y, const int *red, int pass, double *s1, double *s2)
{
    int64_t gst[XT_MAX_RANK], g = 1, ctr[XT_MAX_RANK] = {0}, slot = 0, n = xt_numel(x);
    for (int k = x->rank - 1; k >= 0; k--) {
        gst[k] = red[k] ? 0 : g;
        if (!red[k]) g *= x->dims[k];
    }
    const float *xf = x->data;
    const double *xd = x->data;
    for (int64_t i = 0; i < n; i++) {
        double v = x->dtype == DT_FLOAT ? xf[i] : xd[i];
        if (pass == 0) s1[slot] += v;
        else if (pass == 1) s2[slot] += (v - s1[slot]) * (v - s1[slot]);
        /* the reference adds 1e-9 to the standard deviation, not the variance */
        else xt_set_f64(y, i, (v - s1[slot]) / (s2[slot] + 1e-9));
        for (int k = x->rank - 1; k >= 0; k--) {
            slot += gst[k];
            if (++ctr[k] < x->dims[k]) break;
            slot -= gst[k] * x->dims[k];
            ctr[k] = 0;
        }
    }
}

static int mvn_run(op_ctx *c)
{
    const xt *x = c->in[0];
    int red[XT_MAX_RANK], rc;
    if ((rc = mvn_axes(c, x, red))) return rc;
    int64_t groups = 1, count = 1;
    for (int k = 0; k < x->rank; k++) {
        if (red[k]) count *= x->dims[k];
        else groups *= x->dims[k];
    }
    double *s1 = calloc(2 * (size_t)(groups > 0 ? groups : 1), sizeof *s1);
    if (!s1) return op_fail(c, QK_ENOMEM, "out of memory for %lld statistics", (long long)groups);
    double *s2 = s1 + groups;
    mvn_pass(x, c->out[0], red, 0, s1, s2);
    for (int64_t i = 0; i < groups; i++) s1[i] = count ? s1[i] / (double)count : 0;
    mvn_pass(x, c->out[0], red, 1, s1, s2);
    for (int64_t i = 0; i < groups; i++) s2[i] = count ? sqrt(s2[i] / (double)count) : 0;
    mvn_pass(x, c->out[0], red, 2, s1, s2);
    free(s1);
    return QK_OK;
}

const op_def ops_normalization[] = {
    {"BatchNormalization", bn_infer, bn_run},
    {"LayerNormalization", ln_infer, ln_run},
    {"InstanceNormalization", in_infer, in_run},
    {"MeanVarianceNormalization", mvn_infer, mvn_run},
};
const int ops_normalization_count = sizeof ops_normalization / sizeof ops_normalization[0];
