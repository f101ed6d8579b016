/* This file implements Resize (opsets 10, 11, 13, 18) and Upsample (7, 9).
 *
 * Every variant is reduced to one plan: per axis an input length, an output
 * length, a scale and a coordinate transformation.  Nearest mode gathers
 * through one index map per axis (any dtype).  Linear and cubic are
 * separable, so they run one axis at a time, last axis first, which is the
 * order of ONNX's reference implementation: that keeps tf_crop_and_resize's
 * extrapolation and exclude_outside's renormalisation bit-compatible with
 * it, not just close. */
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "ops.h"

enum { RS_NEAREST, RS_LINEAR, RS_CUBIC };
enum {
    CT_HALF_PIXEL, CT_HALF_PIXEL_SYMMETRIC, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS,
    CT_ASYMMETRIC, CT_TF_HALF_PIXEL_FOR_NN, CT_TF_CROP_AND_RESIZE
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_SIMPLE };

typedef struct rs_plan {
    int rank, mode, ctm, nmode, exclude_outside;
    double cubic_a, extrap;
    int64_t in[XT_MAX_RANK], out[XT_MAX_RANK];
    double scale[XT_MAX_RANK];
    double width[XT_MAX_RANK];   /* the reference's output_width: scale * in, or the size */
    double roi_s[XT_MAX_RANK], roi_e[XT_MAX_RANK];
} rs_plan;

/* An optional input that is present with at least one element; models pass
 * empty tensors for "not given" (e.g. Resize-11's scales next to sizes). */
static int given(const op_ctx *c, int i)
{
    if (!op_has_input(c, i)) return 0;
    const xt *t = c->in[i];
    return !(t->rank >= 0 && xt_numel(t) == 0);
}

static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int rs_modes(op_ctx *c, rs_plan *p, int legacy)
{
    const char *m = node_attr_str(c->node, "mode", "nearest");
    if (!strcmp(m, "nearest")) p->mode = RS_NEAREST;
    else if (!strcmp(m, "linear") || !strcmp(m, "bilinear")) p->mode = RS_LINEAR;
    else if (!strcmp(m, "cubic") && !legacy) p->mode = RS_CUBIC;
    else return op_fail(c, QK_ENOTSUP, "mode '%s' is not supported", m);
    /* Upsample and Resize-10 had one fixed behaviour: asymmetric coordinates
     * and, for nearest, onnxruntime's "simple" rounding (floor when
     * upsampling, ceil when downsampling), which is what models of that era
     * were validated against. */
    if (legacy) {
        p->ctm = CT_ASYMMETRIC;
        p->nmode = NM_SIMPLE;
        p->cubic_a = -0.75;
        p->exclude_outside = 0;
        p->extrap = 0;
        return QK_OK;
    }
    static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                       "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                                       "tf_crop_and_resize"};
    static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *ct = node_attr_str(c->node, "coordinate_transformation_mode", "half_pixel");
    p->ctm = pick(ct, ctms, 7);
    if (p->ctm < 0) return op_fail(c, QK_ENOTSUP, "coordinate_transformation_mode '%s' is not supported", ct);
    const char *nm = node_attr_str(c->node, "nearest_mode", "round_prefer_floor");
    p->nmode = pick(nm, nms, 4);
    if (p->nmode < 0) return op_fail(c, QK_ENOTSUP, "nearest_mode '%s' is not supported", nm);
    p->cubic_a = node_attr_float(c->node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = node_attr_int(c->node, "exclude_outside", 0) != 0;
    p->extrap = node_attr_float(c->node, "extrapolation_value", 0.0f);
    return QK_OK;
}

/* Builds the plan for input x.  Returns QK_UNKNOWN while scales/sizes/roi
 * values are not known (static inference). */
static int rs_plan_make(op_ctx *c, const xt *x, rs_plan *p)
{
    memset(p, 0, sizeof *p);
    int upsample = !strcmp(node_op_type(c->node), "Upsample");
    int legacy = upsample || c->opset < 11;
    int rc = rs_modes(c, p, legacy);
    if (rc != QK_OK) return rc;

    const xt *roi = NULL, *scales = NULL, *sizes = NULL;
    const float *attr_scales = NULL;
    int n_attr_scales = -1;
    if (legacy) {
        if (given(c, 1)) scales = c->in[1];
        else if (upsample) n_attr_scales = node_attr_floats(c->node, "scales", &attr_scales);
        if (!scales && n_attr_scales < 0) return op_fail(c, QK_EINVAL, "no scales given");
    } else {
        if (given(c, 1)) roi = c->in[1];
        if (given(c, 2)) scales = c->in[2];
        if (given(c, 3)) sizes = c->in[3];
        if (scales && sizes) return op_fail(c, QK_EINVAL, "both scales and sizes are given");
        if (!scales && !sizes) return op_fail(c, QK_EINVAL, "neither scales nor sizes is given");
    }
    if ((scales && !scales->data) || (sizes && !sizes->data)) return QK_UNKNOWN;
    if (p->ctm == CT_TF_CROP_AND_RESIZE && roi && !roi->data) return QK_UNKNOWN;
    if (x->rank < 0) return QK_UNKNOWN;
    int r = p->rank = x->rank;

    /* Opset 18's axes: scales/sizes/roi cover only these axes. */
    int axes[XT_MAX_RANK], na = r;
    const int64_t *av;
    int k = node_attr_ints(c->node, "axes", &av);
    if (k >= 0) {
        if (k > r) return op_fail(c, QK_EINVAL, "%d axes for rank %d", k, r);
        int seen[XT_MAX_RANK] = {0};
        for (int i = 0; i < k; i++) {
            int64_t a = av[i] < 0 ? av[i] + r : av[i];
            if (a < 0 || a >= r || seen[a]) return op_fail(c, QK_EINVAL, "bad axis %lld", (long long)av[i]);
            seen[a] = 1;
            axes[i] = (int)a;
        }
        na = k;
    } else {
        for (int i = 0; i < r; i++) axes[i] = i;
    }
    for (int d = 0; d < r; d++) {
        p->in[d] = p->out[d] = x->dims[d];
        p->scale[d] = 1;
        p->roi_s[d] = 0;
        p->roi_e[d] = 1;
    }
    if (p->ctm == CT_TF_CROP_AND_RESIZE && roi) {
        if (xt_numel(roi) != 2 * na)
            return op_fail(c, QK_EINVAL, "roi has %lld values, need %d", (long long)xt_numel(roi), 2 * na);
        if (roi->dtype != DT_FLOAT && roi->dtype != DT_DOUBLE)
            return op_fail(c, QK_ENOTSUP, "roi of type %s is not supported", dtype_name(roi->dtype));
        for (int i = 0; i < na; i++) {
            p->roi_s[axes[i]] = xt_get_f64(roi, i);
            p->roi_e[axes[i]] = xt_get_f64(roi, i + na);
        }
    }
    int unknown_dim = 0;
    for (int d = 0; d < r; d++)
        if (x->dims[d] < 0) unknown_dim = 1;

    if (scales || n_attr_scales >= 0) {
        int n = scales ? (int)xt_numel(scales) : n_attr_scales;
        if (scales && scales->dtype != DT_FLOAT && scales->dtype != DT_DOUBLE)
            return op_fail(c, QK_EINVAL, "scales must be float, got %s", dtype_name(scales->dtype));
        if (n != na) return op_fail(c, QK_EINVAL, "%d scales for %d axes", n, na);
        for (int i = 0; i < na; i++) {
            int d = axes[i];
            /* The float32 value widened, as numpy does in the reference. */
            double s = scales ? (double)(float)xt_get_f64(scales, i) : (double)attr_scales[i];
            if (!(s > 0)) return op_fail(c, QK_EINVAL, "scale %g on axis %d is not positive", s, d);
            p->scale[d] = s;
            if (x->dims[d] < 0) {
                p->out[d] = -1;
                continue;
            }
            double len = (double)x->dims[d] * s;
            if (p->ctm == CT_TF_CROP_AND_RESIZE) len *= p->roi_e[d] - p->roi_s[d];
            p->out[d] = (int64_t)floor(len);
            p->width[d] = (double)x->dims[d] * s;
        }
        for (int d = 0; d < r; d++)
            if (p->width[d] == 0) p->width[d] = (double)p->in[d] * p->scale[d];
    } else {
        if (sizes->dtype != DT_INT64)
            return op_fail(c, QK_EINVAL, "sizes must be int64, got %s", dtype_name(sizes->dtype));
        if (xt_numel(sizes) != na) return op_fail(c, QK_EINVAL, "%lld sizes for %d axes", (long long)xt_numel(sizes), na);
        for (int i = 0; i < na; i++)
            if (xt_get_i64(sizes, i) < 0) return op_fail(c, QK_EINVAL, "negative size on axis %d", axes[i]);
        const char *pol = node_attr_str(c->node, "keep_aspect_ratio_policy", "stretch");
        if (strcmp(pol, "stretch") && strcmp(pol, "not_larger") && strcmp(pol, "not_smaller"))
            return op_fail(c, QK_ENOTSUP, "keep_aspect_ratio_policy '%s' is not supported", pol);
        if (unknown_dim) {
            for (int i = 0; i < na; i++) p->out[axes[i]] = strcmp(pol, "stretch") ? -1 : xt_get_i64(sizes, i);
        } else if (strcmp(pol, "stretch")) {
            /* One scale for all the axes, the one that fits (not_larger) or
             * covers (not_smaller) the requested box; sizes round half up. */
            int larger = !strcmp(pol, "not_smaller");
            double s = larger ? 0 : INFINITY;
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                if (x->dims[d] == 0) continue;
                double q = (double)xt_get_i64(sizes, i) / (double)x->dims[d];
                s = larger ? (q > s ? q : s) : (q < s ? q : s);
            }
            if (!isfinite(s) || s <= 0) s = 1;
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                p->scale[d] = s;
                p->out[d] = (int64_t)floor(s * (double)x->dims[d] + 0.5);
                p->width[d] = s * (double)x->dims[d];
            }
        } else {
            for (int i = 0; i < na; i++) {
                int d = axes[i];
                p->out[d] = xt_get_i64(sizes, i);
                p->scale[d] = x->dims[d] > 0 ? (double)p->out[d] / (double)x->dims[d] : 1;
                p->width[d] = (double)p->out[d];
            }
        }
        for (int d = 0; d < r; d++)
            if (p->width[d] == 0) p->width[d] = (double)p->out[d];
    }
    /* Opset 18's antialias widens the filter when downscaling; upscaling is
     * unaffected, so only refuse what would come out different. */
    if (!legacy && p->mode != RS_NEAREST && node_attr_int(c->node, "antialias", 0))
        for (int d = 0; d < r; d++)
            if (p->scale[d] < 1)
                return op_fail(c, QK_ENOTSUP, "antialiased downscaling is not supported (axis %d, scale %g)", d,
                               p->scale[d]);
    return QK_OK;
}

static int resize_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    rs_plan p;
    int rc = rs_plan_make(c, x, &p);
    if (rc != QK_OK) return rc;
    xt *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = p.rank;
    for (int d = 0; d < p.rank; d++) y->dims[d] = p.out[d];
    return QK_OK;
}

/* Input coordinate of output index xo on axis d; *outside is set when
 * tf_crop_and_resize lands outside the input (extrapolation). */
static double rs_coord(const rs_plan *p, int d, int64_t xo, int *outside)
{
    double s = p->scale[d], L = (double)p->in[d], ow = p->width[d], x = (double)xo, v;
    *outside = 0;
    switch (p->ctm) {
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adj = ow > 0 ? (double)p->out[d] / ow : 1;
        v = L / 2 * (1 - adj) + (x + 0.5) / s - 0.5;
        break;
    }
    case CT_PYTORCH_HALF_PIXEL: v = ow == 1 ? -0.5 : (x + 0.5) / s - 0.5; break;
    case CT_ALIGN_CORNERS: v = ow == 1 ? 0 : x * (L - 1) / (ow - 1); break;
    case CT_ASYMMETRIC: v = x / s; break;
    case CT_TF_HALF_PIXEL_FOR_NN: v = (x + 0.5) / s; break;
    case CT_TF_CROP_AND_RESIZE: {
        double rs = p->roi_s[d], re = p->roi_e[d];
        v = ow == 1 ? (re - rs) * (L - 1) / 2 : x * (re - rs) * (L - 1) / (ow - 1);
        v += rs * (L - 1);
        if (v < 0 || v > L - 1) *outside = 1;
        break;
    }
    default: v = (x + 0.5) / s - 0.5; break;
    }
    return v;
}

static int64_t clampi(int64_t v, int64_t n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

static int64_t rs_nearest(const rs_plan *p, int d, double v)
{
    double f = floor(v);
    int64_t i;
    switch (p->nmode) {
    case NM_ROUND_PREFER_CEIL: i = (int64_t)floor(v + 0.5); break;
    case NM_FLOOR: i = (int64_t)f; break;
    case NM_CEIL: i = (int64_t)ceil(v); break;
    case NM_SIMPLE: i = p->scale[d] < 1 ? (int64_t)ceil(v) : (int64_t)f; break;
    default: i = v - f == 0.5 ? (int64_t)f : (int64_t)floor(v + 0.5); break;
    }
    return clampi(i, p->in[d]);
}

/* ---- nearest: index maps, any dtype --------------------------------------- */

typedef struct nn_job {
    const char *src;
    char *dst;
    int r;
    size_t es;
    const int64_t *m[XT_MAX_RANK];   /* per axis: source offset (elements) or -1 */
    const int64_t *out;
    const char *ev;                  /* extrapolation value, one element */
} nn_job;

/* Output rows [b, e) of the innermost axis. */
static void nn_rows(void *arg, int64_t b, int64_t e, int tid)
{
    const nn_job *j = arg;
    int r = j->r;
    size_t es = j->es;
    int64_t inner = j->out[r - 1], idx[XT_MAX_RANK] = {0};
    for (int64_t rem = b, d = r - 2; d >= 0; d--) {
        idx[d] = rem % j->out[d];
        rem /= j->out[d];
    }
    const int64_t *ml = j->m[r - 1];
    char *dst = j->dst + b * inner * (int64_t)es;
    for (int64_t row = b; row < e; row++) {
        int64_t off = 0;
        int outside = 0;
        for (int d = 0; d < r - 1; d++) {
            int64_t k = j->m[d][idx[d]];
            if (k < 0) outside = 1;
            off += k;
        }
        if (es == 4 && !outside) {
            const float *sp = (const float *)j->src + off;
            float *dp = (float *)dst;
            for (int64_t i = 0; i < inner; i++)
                if (ml[i] < 0) memcpy(dp + i, j->ev, 4);
                else dp[i] = sp[ml[i]];
            dst += inner * 4;
        } else {
            for (int64_t i = 0; i < inner; i++, dst += es)
                memcpy(dst, outside || ml[i] < 0 ? j->ev : j->src + (off + ml[i]) * (int64_t)es, es);
        }
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < j->out[d]) break;
            idx[d] = 0;
        }
    }
}

static int rs_run_nearest(op_ctx *c, const rs_plan *p)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int r = p->rank;
    size_t es = dtype_size(x->dtype);
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    char ev[8] = {0};
    xt et = {.dtype = x->dtype, .rank = 0, .data = ev};
    xt_set_f64(&et, 0, p->extrap);
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QK_OK;
    }
    int64_t nmap = 0;
    for (int d = 0; d < r; d++) nmap += p->out[d];
    int64_t *map = malloc((size_t)nmap * sizeof *map);
    if (!map) return op_fail(c, QK_ENOMEM, "out of memory");
    nn_job j = {.src = x->data, .dst = y->data, .r = r, .es = es, .out = p->out, .ev = ev};
    int64_t xs[XT_MAX_RANK], at = 0;
    xt_strides(x, xs);
    for (int d = 0; d < r; d++) {
        int64_t *m = map + at;
        at += p->out[d];
        for (int64_t o = 0; o < p->out[d]; o++) {
            int outside;
            double v = rs_coord(p, d, o, &outside);
            m[o] = outside ? -1 : rs_nearest(p, d, v) * xs[d];
        }
        j.m[d] = m;
    }
    int64_t inner = p->out[r - 1];
    tp_parallel_for(c->pool, total / inner, inner >= 4096 ? 1 : 4096 / inner, nn_rows, &j);
    free(map);
    return QK_OK;
}

/* ---- linear / cubic: one separable pass per resized axis --------------------- */

#define MAX_TAPS 4

/* Taps of output index xo on axis d: up to MAX_TAPS (source index, weight)
 * pairs; returns the count, 0 for extrapolation. */
static int rs_taps(const rs_plan *p, int d, int64_t xo, int64_t *idx, double *w)
{
    int outside;
    double v = rs_coord(p, d, xo, &outside);
    if (outside) return 0;
    int64_t L = p->in[d];
    double f = floor(v), t = v - f;
    int64_t x0 = (int64_t)f;
    int n;
    if (p->mode == RS_LINEAR) {
        n = 2;
        idx[0] = x0;
        idx[1] = x0 + 1;
        w[0] = 1 - t;
        w[1] = t;
    } else {
        double A = p->cubic_a, r = t, q = 1 - t;
        n = 4;
        for (int i = 0; i < 4; i++) idx[i] = x0 - 1 + i;
        w[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
        w[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
        w[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
        w[3] = ((A * (q + 1) - 5 * A) * (q + 1) + 8 * A) * (q + 1) - 4 * A;
    }
    if (p->exclude_outside) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            if (idx[i] < 0 || idx[i] >= L) w[i] = 0;
            sum += w[i];
        }
        if (sum != 0)
            for (int i = 0; i < n; i++) w[i] /= sum;
    }
    /* Out-of-range taps read the edge (the reference pads in edge mode). */
    for (int i = 0; i < n; i++) idx[i] = clampi(idx[i], L);
    return n;
}

typedef struct rs_pass {
    const float *src;
    float *dst;
    int64_t lin, lout, inner;
    const int64_t *idx;   /* [lout * MAX_TAPS] */
    const double *w;
    const int *n;         /* taps per output index; 0: extrapolate */
    float extrap;
} rs_pass;

static void rs_pass_rows(void *arg, int64_t b, int64_t e, int tid)
{
    const rs_pass *ps = arg;
    int64_t inner = ps->inner;
    for (int64_t o = b; o < e; o++) {
        const float *s = ps->src + o * ps->lin * inner;
        float *d = ps->dst + o * ps->lout * inner;
        for (int64_t j = 0; j < ps->lout; j++) {
            float *dj = d + j * inner;
            int n = ps->n[j];
            const int64_t *ix = ps->idx + j * MAX_TAPS;
            const double *w = ps->w + j * MAX_TAPS;
            if (n == 0) {
                for (int64_t i = 0; i < inner; i++) dj[i] = ps->extrap;
            } else if (inner == 1) {
                double acc = 0;
                for (int k = 0; k < n; k++) acc += w[k] * s[ix[k]];
                *dj = (float)acc;
            } else {
                for (int64_t i = 0; i < inner; i++) {
                    double acc = 0;
                    for (int k = 0; k < n; k++) acc += w[k] * s[ix[k] * inner + i];
                    dj[i] = (float)acc;
                }
            }
        }
    }
}

/* True when axis d maps every output index onto the same input index with
 * weight 1 (scale 1 under most transformations): the pass is skipped. */
static int rs_identity(const rs_plan *p, int d, const int64_t *idx, const double *w, const int *n)
{
    if (p->in[d] != p->out[d]) return 0;
    for (int64_t o = 0; o < p->out[d]; o++) {
        int hit = 0;
        for (int k = 0; k < n[o]; k++) {
            if (w[o * MAX_TAPS + k] == 0) continue;
            if (w[o * MAX_TAPS + k] != 1 || idx[o * MAX_TAPS + k] != o || hit) return 0;
            hit = 1;
        }
        if (!hit) return 0;
    }
    return 1;
}

static int rs_run_interp(op_ctx *c, const rs_plan *p)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    if (x->dtype != DT_FLOAT)
        return op_fail(c, QK_ENOTSUP, "%s interpolation of %s is not supported (float only)",
                       p->mode == RS_LINEAR ? "linear" : "cubic", dtype_name(x->dtype));
    int r = p->rank;
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    if (r == 0) {
        memcpy(y->data, x->data, sizeof(float));
        return QK_OK;
    }
    int64_t maxout = 0;
    for (int d = 0; d < r; d++)
        if (p->out[d] > maxout) maxout = p->out[d];
    int64_t *idx = malloc((size_t)maxout * MAX_TAPS * sizeof *idx);
    double *w = malloc((size_t)maxout * MAX_TAPS * sizeof *w);
    int *n = malloc((size_t)maxout * sizeof *n);
    float *bufs[2] = {NULL, NULL};
    int rc = QK_OK;
    if (!idx || !w || !n) {
        rc = op_fail(c, QK_ENOMEM, "out of memory");
        goto done;
    }
    /* Which axes need a pass, so the last one can write into y. */
    int todo[XT_MAX_RANK], ntodo = 0;
    for (int d = r - 1; d >= 0; d--) {
        for (int64_t o = 0; o < p->out[d]; o++) n[o] = rs_taps(p, d, o, idx + o * MAX_TAPS, w + o * MAX_TAPS);
        if (!rs_identity(p, d, idx, w, n)) todo[ntodo++] = d;
    }
    if (ntodo == 0) {
        memcpy(y->data, x->data, (size_t)total * sizeof(float));
        goto done;
    }
    int64_t cur[XT_MAX_RANK];
    memcpy(cur, p->in, sizeof cur);
    const float *src = x->data;
    for (int t = 0; t < ntodo; t++) {
        int d = todo[t];
        for (int64_t o = 0; o < p->out[d]; o++) n[o] = rs_taps(p, d, o, idx + o * MAX_TAPS, w + o * MAX_TAPS);
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < d; k++) outer *= cur[k];
        for (int k = d + 1; k < r; k++) inner *= cur[k];
        cur[d] = p->out[d];
        float *dst;
        if (t == ntodo - 1) {
            dst = y->data;
        } else {
            free(bufs[t & 1]);
            bufs[t & 1] = malloc((size_t)(outer * cur[d] * inner) * sizeof(float) + 1);
            if (!bufs[t & 1]) {
                rc = op_fail(c, QK_ENOMEM, "out of memory");
                goto done;
            }
            dst = bufs[t & 1];
        }
        rs_pass ps = {.src = src, .dst = dst, .lin = p->in[d], .lout = p->out[d], .inner = inner,
                      .idx = idx, .w = w, .n = n, .extrap = (float)p->extrap};
        int64_t work = p->out[d] * inner;
        tp_parallel_for(c->pool, outer, work >= 4096 ? 1 : 4096 / (work ? work : 1), rs_pass_rows, &ps);
        src = dst;
    }
done:
    free(bufs[0]);
    free(bufs[1]);
    free(idx);
    free(w);
    free(n);
    return rc;
}

static int resize_run(op_ctx *c)
{
    rs_plan p;
    int rc = rs_plan_make(c, c->in[0], &p);
    if (rc != QK_OK) return rc;
    for (int d = 0; d < p.rank; d++)
        if (p.in[d] == 0 && p.out[d] > 0)
            return op_fail(c, QK_EINVAL, "cannot resize the empty axis %d to %lld", d, (long long)p.out[d]);
    return p.mode == RS_NEAREST ? rs_run_nearest(c, &p) : rs_run_interp(c, &p);
}

const op_def ops_resize[] = {
    {"Resize", resize_infer, resize_run},
    {"Upsample", resize_infer, resize_run},
};
const int ops_resize_count = sizeof ops_resize / sizeof ops_resize[0];
