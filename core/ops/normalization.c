/* This file implements the normalization kernels: BatchNormalization
 * (inference form only), LayerNormalization and InstanceNormalization.
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

/* Element access for the float/double activations these ops accept; the
 * dtype branch is the same for a whole run, so it predicts perfectly. */
static inline double ld(const void *p, int dt, int64_t i)
{
    return dt == DT_FLOAT ? ((const float *)p)[i] : ((const double *)p)[i];
}

static inline void st(void *p, int dt, int64_t i, double v)
{
    if (dt == DT_FLOAT) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
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

/* Mean and 1/sqrt(var + eps) of n elements spaced `stride` apart. */
static void moments(const void *x, int dt, int64_t off, int64_t n, int64_t stride, double eps,
                    double *mean, double *inv)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ld(x, dt, off + i * stride);
    double m = n ? s / (double)n : 0;
    double v = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = ld(x, dt, off + i * stride) - m;
        v += d * d;
    }
    v = n ? v / (double)n : 0;
    *mean = m;
    *inv = 1.0 / sqrt(v + eps);
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
        if (j->per_elem) {
            const double *a = j->a + ch * j->size, *b = j->b + ch * j->size;
            for (int64_t i = 0; i < j->size; i++) st(j->y, j->dt, off + i, ld(j->x, j->dt, off + i) * a[i] + b[i]);
        } else if (j->dt == DT_FLOAT) {
            const float *x = (const float *)j->x + off;
            float *y = (float *)j->y + off;
            float a = (float)j->a[ch], b = (float)j->b[ch];
            for (int64_t i = 0; i < j->size; i++) y[i] = x[i] * a + b;
        } else {
            const double *x = (const double *)j->x + off;
            double *y = (double *)j->y + off;
            for (int64_t i = 0; i < j->size; i++) y[i] = x[i] * j->a[ch] + j->b[ch];
        }
    }
}

/* Parameters hold C values, or C*spatial values for opset 7's spatial=0. */
static int bn_param_count(op_ctx *c, const xt *x, int64_t *count, int *per_elem)
{
    int64_t ch = x->rank >= 2 ? x->dims[1] : 1, sp = 1;
    for (int i = 2; i < x->rank; i++) sp = (sp < 0 || x->dims[i] < 0) ? -1 : sp * x->dims[i];
    *per_elem = c->opset < 9 && node_attr_int(c->node, "spatial", 1) == 0;
    *count = *per_elem ? (ch < 0 || sp < 0 ? -1 : ch * sp) : ch;
    return QK_OK;
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
    const double *scale, *bias;   /* bias NULL when absent */
    float *mean, *inv;            /* optional outputs, NULL when not wanted */
} ln_job;

static void ln_rows(void *arg, int64_t r0, int64_t r1, int tid)
{
    (void)tid;
    const ln_job *j = arg;
    for (int64_t r = r0; r < r1; r++) {
        int64_t off = r * j->D;
        double m, inv;
        moments(j->x, j->dt, off, j->D, 1, j->eps, &m, &inv);
        for (int64_t d = 0; d < j->D; d++) {
            double v = (ld(j->x, j->dt, off + d) - m) * inv * j->scale[d];
            if (j->bias) v += j->bias[d];
            st(j->y, j->dt, off + d, v);
        }
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
    ln_job j = {
        .x = x->data, .y = c->out[0]->data, .dt = x->dtype, .D = D,
        .eps = node_attr_float(c->node, "epsilon", 1e-5f),
        .scale = scale, .bias = bias ? scale + D : NULL,
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
        moments(j->x, j->dt, off, j->size, 1, j->eps, &m, &inv);
        double a = inv * xt_get_f64(j->scale, ch), b = xt_get_f64(j->bias, ch) - m * a;
        for (int64_t i = 0; i < j->size; i++) st(j->y, j->dt, off + i, ld(j->x, j->dt, off + i) * a + b);
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

const op_def ops_normalization[] = {
    {"BatchNormalization", bn_infer, bn_run},
    {"LayerNormalization", ln_infer, ln_run},
    {"InstanceNormalization", in_infer, in_run},
};
const int ops_normalization_count = sizeof ops_normalization / sizeof ops_normalization[0];
