/* This file implements the convolution kernels: Conv and ConvTranspose,
 * float32, 1-D to 3-D, with groups, strides, dilations, explicit or automatic
 * padding and an optional bias.
 *
 * Both ops share one geometry (conv_geom) computed from the shapes and the
 * attributes by shape inference and by the kernels alike, so the two can
 * never disagree.  Spatial ranks 1 and 2 are padded to three axes with
 * leading size-1 axes (kernel 1, stride 1, no padding), so one set of loops
 * serves every rank.
 *
 * Conv takes one of four paths:
 *  - im2col + GEMM, the general case: W_g [M/g, C/g*k] times the im2col
 *    matrix [C/g*k, out].  im2col reads a zero-padded, stride-phase-split
 *    copy of the input (see `padded`), so every row run is a plain copy.
 *    Large matrices are built and multiplied in chunks of output positions
 *    that fit L2, one chunk per task; small ones are built whole and sgemm
 *    threads the product.
 *  - 1x1 stride-1 unpadded convs skip im2col: the input is the matrix.
 *  - small feature maps at batch > 1 fold the batch into one GEMM (the
 *    images' matrices side by side), since a GEMM per image with a few
 *    dozen columns would be mostly edge tiles.
 *  - depthwise and narrow grouped convs (at most DIRECT_MAX_CG input
 *    channels per group) go direct: a GEMM would have a tiny K or M, while
 *    a padded copy of the group's channels and a vectorized sum over the
 *    taps per output row runs at a useful fraction of peak.
 *
 * Convs whose weights exec_new packed (conv_prepare) take the packed-weight
 * engine below instead, or, on AVX-512 for group-1 convs with >= 32 input
 * channels other than 1x1 stride-1 ones, conv_direct.c's kernel (weights
 * as the vector operand, inputs broadcast in place; see conv_implicit) --
 * or, for 3x3 stride-1 ones with >= 64 channels in and out over enough
 * output tiles, conv_winograd.c's F(2x2, 3x3) (see winograd_fits).
 *
 * ConvTranspose is the adjoint: col = W_g^T [M/g*k, C/g] times X_g
 * [C/g, in], then col2im scatters and adds col into the output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "conv_direct.h"
#include "conv_winograd.h"
#include "../sgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "../vecmath.h"
#define HAVE_X86 1
#endif

#define SP 3   /* spatial axes after padding the geometry */

typedef struct conv_geom {
    int rank;                   /* real spatial rank, 1..3 */
    int64_t n, c, m, group;     /* batch, input and output channels; -1 unknown */
    int64_t cg, mg;             /* channels per group: input, output */
    int64_t in[SP], out[SP];    /* spatial sizes, -1 unknown */
    int64_t k[SP], str[SP], dil[SP], pb[SP], pe[SP];
    int64_t in_sz, out_sz, k_sz;    /* products (valid when the shape is known) */
} conv_geom;

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

static int read_auto_pad(op_ctx *c, int *mode)
{
    const char *ap = node_attr_str(c->node, "auto_pad", "NOTSET");
    if (!strcmp(ap, "NOTSET") || !ap[0]) *mode = PAD_NOTSET;
    else if (!strcmp(ap, "SAME_UPPER")) *mode = PAD_SAME_UPPER;
    else if (!strcmp(ap, "SAME_LOWER")) *mode = PAD_SAME_LOWER;
    else if (!strcmp(ap, "VALID")) *mode = PAD_VALID;
    else return op_fail(c, QK_EINVAL, "unknown auto_pad '%s'", ap);
    return QK_OK;
}

/* Fills g from X's and W's shapes and the node's attributes.  Unknown
 * sizes give unknown (-1) results; QK_UNKNOWN when even the ranks are not
 * known.  `transpose` selects ConvTranspose's weight layout and output
 * size rule. */
static int geom_make(op_ctx *c, int transpose, conv_geom *g)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1)
        return op_fail(c, QK_EINVAL, "needs inputs X and W and an output");
    const xt *x = c->in[0], *w = c->in[1];
    if (x->rank < 0 || w->rank < 0) return QK_UNKNOWN;
    if (x->rank < 3)
        return op_fail(c, QK_EINVAL, "input X must have rank >= 3 (N, C, spatial...), got %d", x->rank);
    int r = x->rank - 2;
    if (r > SP)
        return op_fail(c, QK_ENOTSUP, "%d spatial dimensions (at most %d supported)", r, SP);
    if (w->rank != x->rank)
        return op_fail(c, QK_EINVAL, "W has rank %d but X has rank %d", w->rank, x->rank);
    memset(g, 0, sizeof *g);
    g->rank = r;
    g->group = node_attr_int(c->node, "group", 1);
    if (g->group < 1) return op_fail(c, QK_EINVAL, "group must be >= 1, got %lld", (long long)g->group);

    int64_t ks[SP], str[SP], dil[SP], pads[2 * SP], opad[SP];
    int rc;
    if ((rc = op_attr_ints_exact(c, "strides", r, 1, str)) || (rc = op_attr_ints_exact(c, "dilations", r, 1, dil)) ||
        (rc = op_attr_ints_exact(c, "pads", 2 * r, 0, pads)))
        return rc;
    if (transpose && (rc = op_attr_ints_exact(c, "output_padding", r, 0, opad))) return rc;
    const int64_t *ka;
    int nk = node_attr_ints(c->node, "kernel_shape", &ka);
    if (nk >= 0 && nk != r)
        return op_fail(c, QK_EINVAL, "kernel_shape has %d values for %d spatial dimensions", nk, r);
    for (int i = 0; i < r; i++) {
        int64_t wd = w->dims[2 + i];
        if (nk >= 0 && wd >= 0 && ka[i] != wd)
            return op_fail(c, QK_EINVAL, "kernel_shape[%d] is %lld but W has %lld", i,
                           (long long)ka[i], (long long)wd);
        ks[i] = wd >= 0 ? wd : nk >= 0 ? ka[i] : -1;
        if (str[i] < 1 || dil[i] < 1)
            return op_fail(c, QK_EINVAL, "strides and dilations must be >= 1");
    }
    int mode = PAD_NOTSET;
    if ((rc = read_auto_pad(c, &mode))) return rc;

    /* Channels.  Conv: W is [M, C/group, k...]; ConvTranspose: [C, M/group, k...]. */
    g->n = x->dims[0];
    g->c = x->dims[1];
    if (!transpose) {
        g->m = w->dims[0];
        g->cg = w->dims[1];
        if (g->m >= 0 && g->m % g->group)
            return op_fail(c, QK_EINVAL, "W has %lld output channels, not a multiple of group %lld",
                           (long long)g->m, (long long)g->group);
        if (g->c >= 0 && g->cg >= 0 && g->c != g->cg * g->group)
            return op_fail(c, QK_EINVAL, "input X has %lld channels but W expects %lld (%lld per group x %lld groups)",
                           (long long)g->c, (long long)(g->cg * g->group), (long long)g->cg,
                           (long long)g->group);
        g->mg = g->m >= 0 ? g->m / g->group : -1;
        if (g->cg < 0 && g->c >= 0) g->cg = g->c / g->group;
    } else {
        g->mg = w->dims[1];
        g->m = g->mg >= 0 ? g->mg * g->group : -1;
        if (g->c >= 0 && w->dims[0] >= 0 && g->c != w->dims[0])
            return op_fail(c, QK_EINVAL, "input X has %lld channels but W expects %lld",
                           (long long)g->c, (long long)w->dims[0]);
        if (g->c < 0) g->c = w->dims[0];
        if (g->c >= 0 && g->c % g->group)
            return op_fail(c, QK_EINVAL, "X has %lld channels, not a multiple of group %lld",
                           (long long)g->c, (long long)g->group);
        g->cg = g->c >= 0 ? g->c / g->group : -1;
    }
    if (c->n_in > 2 && c->in[2]) {
        const xt *b = c->in[2];
        if (b->rank >= 0 && b->rank != 1)
            return op_fail(c, QK_EINVAL, "bias B must be 1-D, got rank %d", b->rank);
        if (b->rank == 1 && b->dims[0] >= 0 && g->m >= 0 && b->dims[0] != g->m)
            return op_fail(c, QK_EINVAL, "bias B has %lld values for %lld output channels",
                           (long long)b->dims[0], (long long)g->m);
    }

    const int64_t *os = NULL;
    int nos = transpose ? node_attr_ints(c->node, "output_shape", &os) : -1;
    if (nos >= 0 && nos != r && nos != r + 2)
        return op_fail(c, QK_EINVAL, "output_shape has %d values for %d spatial dimensions", nos, r);
    if (nos == r + 2) os += 2;

    /* Axes 0..SP-r-1 are the padding axes (size 1). */
    for (int a = 0; a < SP; a++) {
        g->in[a] = g->out[a] = g->k[a] = g->str[a] = g->dil[a] = 1;
        g->pb[a] = g->pe[a] = 0;
    }
    for (int i = 0; i < r; i++) {
        int a = SP - r + i;
        int64_t in = x->dims[2 + i], k = ks[i], s = str[i], d = dil[i];
        g->in[a] = in;
        g->k[a] = k;
        g->str[a] = s;
        g->dil[a] = d;
        int64_t pb = mode == PAD_VALID ? 0 : pads[i], pe = mode == PAD_VALID ? 0 : pads[r + i];
        int64_t out = -1;
        if (in >= 0 && k >= 0) {
            int64_t eff = d * (k - 1) + 1;
            if (!transpose) {
                if (mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
                    out = (in + s - 1) / s;
                    int64_t total = (out - 1) * s + eff - in;
                    if (total < 0) total = 0;
                    pb = mode == PAD_SAME_UPPER ? total / 2 : total - total / 2;
                    pe = total - pb;
                } else {
                    if (in + pb + pe < eff)
                        return op_fail(c, QK_EINVAL,
                                       "spatial axis %d: input %lld (+%lld/%lld padding) is smaller than the dilated kernel %lld",
                                       i, (long long)in, (long long)pb, (long long)pe, (long long)eff);
                    out = (in + pb + pe - eff) / s + 1;
                }
            } else {
                int64_t full = s * (in - 1) + opad[i] + eff;
                if (nos >= 0 || mode == PAD_SAME_UPPER || mode == PAD_SAME_LOWER) {
                    out = nos >= 0 ? os[i] : in * s;
                    int64_t total = full - out;
                    /* The spec puts the odd padding at the end for
                     * SAME_UPPER, at the beginning otherwise, with Python's
                     * floor division: an output larger than the natural
                     * one (negative total) grows at the end. */
                    int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
                    if (mode == PAD_SAME_UPPER) {
                        pb = half;
                        pe = total - pb;
                    } else {
                        pe = half;
                        pb = total - pe;
                    }
                } else {
                    out = full - pb - pe;
                }
                if (out < 0)
                    return op_fail(c, QK_EINVAL, "spatial axis %d: output size %lld is negative", i,
                                   (long long)out);
            }
        } else if (transpose && nos >= 0) {
            out = os[i];
        }
        g->pb[a] = pb;
        g->pe[a] = pe;
        g->out[a] = out;
    }
    g->in_sz = g->in[0] * g->in[1] * g->in[2];
    g->out_sz = g->out[0] * g->out[1] * g->out[2];
    g->k_sz = g->k[0] * g->k[1] * g->k[2];
    return QK_OK;
}

static int conv_infer_common(op_ctx *c, int transpose)
{
    conv_geom g;
    int rc = geom_make(c, transpose, &g);
    if (rc) return rc;
    xt *y = c->out[0];
    if (!y) return QK_OK;
    y->dtype = c->in[0]->dtype;
    y->rank = g.rank + 2;
    y->dims[0] = g.n;
    y->dims[1] = g.m;
    for (int i = 0; i < g.rank; i++) y->dims[2 + i] = g.out[SP - g.rank + i];
    return QK_OK;
}

static int conv_infer(op_ctx *c) { return conv_infer_common(c, 0); }
static int conv_transpose_infer(op_ctx *c) { return conv_infer_common(c, 1); }

/* Common checks before running: float32 everywhere, shapes known. */
static int check_run(op_ctx *c, int transpose, conv_geom *g)
{
    int rc = geom_make(c, transpose, g);
    if (rc == QK_UNKNOWN) return op_fail(c, QK_EINVAL, "input shapes unknown at run time");
    if (rc) return rc;
    for (int i = 0; i < c->n_in && i < 3; i++) {
        const xt *t = c->in[i];
        if (t && t->dtype != DT_FLOAT)
            return op_fail(c, QK_ENOTSUP, "input %d is %s; only float is supported", i,
                           dtype_name(t->dtype));
    }
    if (!c->out[0]) return op_fail(c, QK_EINVAL, "output Y is missing");
    return QK_OK;
}

/* y[i] += w * x[i] for i in [0, n): the inner loop of col2im. */
#ifdef HAVE_X86
__attribute__((target("avx2,fma")))
static void axpy_unit_avx2(float *y, const float *x, float w, int64_t n)
{
    __m256 vw = _mm256_set1_ps(w);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vw, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8,
                         _mm256_fmadd_ps(vw, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vw, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += w * x[i];
}

#endif

/* y[i * s] += x[i]: the scatter of col2im. */
static void axpy_scatter(float *y, int64_t s, const float *x, int64_t n)
{
    if (s == 1) {
#ifdef HAVE_X86
        if (op_isa_level() >= 1) {
            axpy_unit_avx2(y, x, 1.0f, n);
            return;
        }
#endif
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i * s] += x[i];
}

/* even[i] = src[2i], odd[i] = src[2i+1] for i in [0, n). */
#ifdef HAVE_X86
__attribute__((target("avx512f")))
static void deinterleave2_avx512(const float *src, float *even, float *odd, int64_t n)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_loadu_ps(src + 2 * i), b = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(even + i, _mm512_permutex2var_ps(a, ie, b));
        _mm512_storeu_ps(odd + i, _mm512_permutex2var_ps(a, io, b));
    }
    for (; i < n; i++) {
        even[i] = src[2 * i];
        odd[i] = src[2 * i + 1];
    }
}
#endif

static void deinterleave2(const float *src, float *even, float *odd, int64_t n)
{
#ifdef HAVE_X86
    if (op_isa_level() >= 2) {
        deinterleave2_avx512(src, even, odd, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        even[i] = src[2 * i];
        odd[i] = src[2 * i + 1];
    }
}

/* p[i] = v for i < n. */
#ifdef HAVE_X86
__attribute__((target("avx2")))
static void fill_avx2(float *p, float v, int64_t n)
{
    __m256 vv = _mm256_set1_ps(v);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, vv);
    for (; i < n; i++) p[i] = v;
}
#endif

static void fill_floats(float *p, float v, int64_t n)
{
#ifdef HAVE_X86
    if (op_isa_level() >= 1) {
        fill_avx2(p, v, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

/* Fills each of the planes [p0, p1) of y (out_sz floats each) with the bias
 * of its channel, or zero; plane p is channel p % m. */
static void fill_bias(float *y, const float *bias, int64_t m, int64_t out_sz, int64_t p0, int64_t p1)
{
    for (int64_t p = p0; p < p1; p++) {
        float *yp = y + p * out_sz;
        float b = bias ? bias[p % m] : 0.0f;
        if (b == 0.0f) memset(yp, 0, sizeof(float) * (size_t)out_sz);
        else fill_floats(yp, b, out_sz);
    }
}

/* ------------------------------------------------------------------- Conv */

/* dst[i] = src[i] for i < n.  Feature-map rows are often short (4 to 32
 * floats), where a libc call costs more than the copy: those go through
 * vector registers, the tail under a mask. */
#ifdef HAVE_X86
__attribute__((target("avx512f")))
static void copy_avx512(float *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
    }
}
#endif

static void copy_floats(float *dst, const float *src, int64_t n)
{
    if (n >= 64) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return;
    }
#ifdef HAVE_X86
    if (op_isa_level() >= 2) {
        copy_avx512(dst, src, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

/* dst[i] = src[i] + b for i < n. */
#ifdef HAVE_X86
__attribute__((target("avx512f")))
static void copy_add_avx512(float *dst, const float *src, float b, int64_t n)
{
    __m512 vb = _mm512_set1_ps(b);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_add_ps(_mm512_loadu_ps(src + i), vb));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, src + i), vb));
    }
}
#endif

static void copy_add(float *dst, const float *src, float b, int64_t n)
{
#ifdef HAVE_X86
    if (op_isa_level() >= 2) {
        copy_add_avx512(dst, src, b, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] + b;
}

/* ------------------------------------------------------ padded input copy */

/* Both the im2col and the direct paths first copy the input into a
 * zero-padded layout, so their inner loops never test bounds.  Columns are
 * also split by phase (column % stride): padded column o*s + k*d lives in
 * phase (k*d) % s at index o + (k*d) / s, so a strided conv reads each tap's
 * inputs contiguously.  The padded extent of each axis is exactly what the
 * taps reach, (out-1)*stride + dilated kernel. */
typedef struct padded {
    int64_t pd[SP];             /* padded extent per axis */
    int64_t wq;                 /* columns per phase */
    int64_t phase_sz, chan_sz;  /* floats per phase and per channel */
} padded;

static void padded_init(const conv_geom *g, padded *p)
{
    for (int a = 0; a < SP; a++) p->pd[a] = (g->out[a] - 1) * g->str[a] + g->dil[a] * (g->k[a] - 1) + 1;
    p->wq = (p->pd[2] + g->str[2] - 1) / g->str[2];
    p->phase_sz = p->pd[0] * p->pd[1] * p->wq;
    p->chan_sz = p->phase_sz * g->str[2];
}

/* Offset of tap (ci, kd, kh, kw) in a padded group from the start of the
 * padded row that output row (od, oh) starts from. */
static int64_t padded_tap(const conv_geom *g, const padded *p, int64_t ci, int64_t kd, int64_t kh,
                          int64_t kw)
{
    int64_t cw = kw * g->dil[2];
    return ci * p->chan_sz + (kd * g->dil[0] * p->pd[1] + kh * g->dil[1]) * p->wq +
           (cw % g->str[2]) * p->phase_sz + cw / g->str[2];
}

/* padded_tap() of every tap of a group in (ci, kd, kh, kw) order, the
 * order of im2col rows and of W's taps: a malloc'd table, NULL when out of
 * memory. */
static int64_t *tap_table(const conv_geom *g, const padded *p)
{
    int64_t *t = malloc(sizeof(int64_t) * (size_t)(g->cg * g->k_sz) + 1), r = 0;
    if (!t) return NULL;
    for (int64_t ci = 0; ci < g->cg; ci++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) t[r++] = padded_tap(g, p, ci, kd, kh, kw);
    return t;
}

/* Offset of output row (od, oh)'s first padded row (tap 0). */
static int64_t padded_row(const conv_geom *g, const padded *p, int64_t od, int64_t oh)
{
    return (od * g->str[0] * p->pd[1] + oh * g->str[1]) * p->wq;
}

/* Writes channel xc's padded, phase-split copy into dst (chan_sz floats). */
static void padded_fill(const conv_geom *g, const padded *p, const float *xc, float *dst)
{
    int64_t sw = g->str[2], pb = g->pb[2], in_w = g->in[2];
    memset(dst, 0, sizeof(float) * (size_t)p->chan_sz);
    /* Input columns [w0, w1) land inside the padded row. */
    int64_t w0 = pb < 0 ? -pb : 0, w1 = p->pd[2] - pb < in_w ? p->pd[2] - pb : in_w;
    if (w1 <= w0) return;
    for (int64_t d = 0; d < g->in[0]; d++) {
        int64_t dp = d + g->pb[0];
        if (dp < 0 || dp >= p->pd[0]) continue;
        for (int64_t h = 0; h < g->in[1]; h++) {
            int64_t hp = h + g->pb[1];
            if (hp < 0 || hp >= p->pd[1]) continue;
            const float *src = xc + (d * g->in[1] + h) * in_w;
            float *row = dst + (dp * p->pd[1] + hp) * p->wq;
            if (sw == 1) {
                copy_floats(row + w0 + pb, src + w0, w1 - w0);
            } else if (sw == 2 && w0 == 0) {
                /* Even input columns go to phase pb & 1 from index pb / 2,
                 * odd ones to the other phase from (pb + 1) / 2. */
                float *ev = row + (pb & 1) * p->phase_sz + (pb >> 1);
                float *od = row + (1 - (pb & 1)) * p->phase_sz + ((pb + 1) >> 1);
                deinterleave2(src, ev, od, w1 / 2);
                if (w1 & 1) ev[w1 / 2] = src[w1 - 1];
            } else {
                for (int64_t w = w0; w < w1; w++) {
                    int64_t wp = w + pb;
                    row[(wp % sw) * p->phase_sz + wp / sw] = src[w];
                }
            }
        }
    }
}

/* ---------------------------------------------------------- im2col + GEMM */

typedef struct conv_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    float *y, *col;
    padded pad;
    float *xpad;                /* one image's padded channels */
    int64_t *tap_off;           /* im2col row -> padded_tap() */
    int64_t n;                  /* the image being worked on */
    /* Chunked path: output positions per chunk, chunks per group, floats
     * of col per thread. */
    int64_t chunk, n_chunks;
    size_t col_per_thread;
    /* Folded path: images [n0, n0 + nb) side by side, ldf columns. */
    int64_t n0, nb, ldf;
    int pointwise;
    float *tmp;
} conv_job;

/* im2col of rows [r0, r1) and output positions [o0, o1) of one group whose
 * padded channels start at xp: row r = (channel, kd, kh, kw), whose offset
 * padded_tap() is tap_off[r]; column o - o0 of dst (row stride ld) = input
 * under tap r for output position o.  Every run along an output row is one
 * contiguous copy. */
static void im2col_padded(const conv_geom *g, const padded *p, const float *xp,
                          const int64_t *tap_off, int64_t r0, int64_t r1, int64_t o0, int64_t o1,
                          float *dst, int64_t ld)
{
    const int64_t OH = g->out[1], OW = g->out[2];
    /* o0 as (od, oh, ow), once: the walk below steps rows without dividing. */
    const int64_t od0 = o0 / (OH * OW), oh0 = o0 / OW % OH, ow00 = o0 % OW;
    const int64_t dstep = g->str[0] * p->pd[1] * p->wq, hstep = g->str[1] * p->wq;
    for (int64_t r = r0; r < r1; r++) {
        const float *tap = xp + tap_off[r];
        float *d = dst + (r - r0) * ld;
        int64_t od = od0, oh = oh0, ow0 = ow00;
        const float *src = tap + od * dstep + oh * hstep;
        for (int64_t o = o0; o < o1;) {
            int64_t n = OW - ow0 < o1 - o ? OW - ow0 : o1 - o;
            copy_floats(d, src + ow0, n);
            d += n;
            o += n;
            ow0 = 0;
            src += hstep;
            if (++oh == OH) {
                oh = 0;
                od++;
                src = tap + od * dstep;
            }
        }
    }
}

/* Pads channels [c0, c1) of the current image. */
static void pad_task(void *arg, int64_t c0, int64_t c1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t ch = c0; ch < c1; ch++)
        padded_fill(g, &j->pad, j->x + (j->n * g->c + ch) * g->in_sz, j->xpad + ch * j->pad.chan_sz);
}

/* Rows [r0, r1) of the whole im2col matrix of the current image's group
 * whose padded channels start at xpad. */
static void im2col_task(void *arg, int64_t r0, int64_t r1, int tid)
{
    const conv_job *j = arg;
    im2col_padded(j->g, &j->pad, j->xpad, j->tap_off, r0, r1, 0, j->g->out_sz,
                  j->col + r0 * j->g->out_sz, j->g->out_sz);
}

/* One chunk of output positions of one group of the current image: its
 * im2col block goes to this thread's buffer, small enough to stay in L2
 * for the GEMM that follows at once, then the GEMM writes the chunk's
 * columns of Y. */
static void chunk_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    int64_t rows = g->cg * g->k_sz;
    float *col = j->col + (size_t)tid * j->col_per_thread;
    for (int64_t t = t0; t < t1; t++) {
        int64_t gr = t / j->n_chunks, ck = t % j->n_chunks;
        int64_t o0 = ck * j->chunk, o1 = o0 + j->chunk < g->out_sz ? o0 + j->chunk : g->out_sz;
        int64_t w = o1 - o0;
        im2col_padded(g, &j->pad, j->xpad + gr * g->cg * j->pad.chan_sz, j->tap_off, 0, rows, o0, o1,
                      col, w);
        float *yc = j->y + (j->n * g->m + gr * g->mg) * g->out_sz + o0;
        float beta = 0.0f;
        if (j->bias) {
            for (int64_t m = 0; m < g->mg; m++) fill_floats(yc + m * g->out_sz, j->bias[gr * g->mg + m], w);
            beta = 1.0f;
        }
        sgemm(0, 0, g->mg, w, rows, 1.0f, j->w + gr * g->mg * rows, rows, col, w, beta, yc,
              g->out_sz, NULL);
    }
}

/* ----------------------------------------------------- direct convolution */

/* Row kernels of the direct path: y[o] = bias + sum_t w[t] * src[t][o] for
 * o in [0, n).  Several partial sums per vector keep the FMA chains short:
 * a 3x3 depthwise row has only 9 taps, too few to hide FMA latency with
 * one accumulator. */
typedef void (*row_fn)(float *y, int64_t n, const float *const *src, const float *w, int nt,
                       float bias, float lo, float hi);

static void row_c(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias,
                  float lo, float hi)
{
    for (int64_t o = 0; o < n; o++) y[o] = bias;
    for (int t = 0; t < nt; t++) {
        const float *s = src[t];
        float wt = w[t];
        for (int64_t o = 0; o < n; o++) y[o] += wt * s[o];
    }
    for (int64_t o = 0; o < n; o++) {
        float v = y[o] < lo ? lo : y[o];
        y[o] = v > hi ? hi : v;
    }
}

#ifdef HAVE_X86
__attribute__((target("avx2,fma")))
static void row_avx2(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias,
                     float lo, float hi)
{
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
#define CLAMP8(x) _mm256_min_ps(vhi, _mm256_max_ps(vlo, (x)))
    int64_t o = 0;
    for (; o + 16 <= n; o += 16) {
        __m256 a0 = _mm256_set1_ps(bias), a1 = a0, a2 = _mm256_setzero_ps(), a3 = a2;
        int t = 0;
        for (; t + 2 <= nt; t += 2) {
            __m256 w0 = _mm256_broadcast_ss(w + t), w1 = _mm256_broadcast_ss(w + t + 1);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(src[t] + o), a0);
            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(src[t] + o + 8), a1);
            a2 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(src[t + 1] + o), a2);
            a3 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(src[t + 1] + o + 8), a3);
        }
        if (t < nt) {
            __m256 w0 = _mm256_broadcast_ss(w + t);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(src[t] + o), a0);
            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(src[t] + o + 8), a1);
        }
        _mm256_storeu_ps(y + o, CLAMP8(_mm256_add_ps(a0, a2)));
        _mm256_storeu_ps(y + o + 8, CLAMP8(_mm256_add_ps(a1, a3)));
    }
    for (; o < n; o += 8) {
        /* Masked loads never touch the lanes past n, so rows need no
         * slack at their ends. */
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - o < 8 ? n - o : 8)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 a0 = _mm256_set1_ps(bias), a1 = _mm256_setzero_ps(), a2 = a1, a3 = a1;
        int t = 0;
        for (; t + 4 <= nt; t += 4) {
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t), _mm256_maskload_ps(src[t] + o, mask), a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t + 1), _mm256_maskload_ps(src[t + 1] + o, mask), a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t + 2), _mm256_maskload_ps(src[t + 2] + o, mask), a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t + 3), _mm256_maskload_ps(src[t + 3] + o, mask), a3);
        }
        for (; t < nt; t++)
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + t), _mm256_maskload_ps(src[t] + o, mask), a0);
        _mm256_maskstore_ps(y + o, mask, CLAMP8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))));
    }
#undef CLAMP8
}

__attribute__((target("avx512f")))
static void row_avx512(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias,
                       float lo, float hi)
{
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#define CLAMP16(x) _mm512_min_ps(vhi, _mm512_max_ps(vlo, (x)))
    int64_t o = 0;
    for (; o + 32 <= n; o += 32) {
        __m512 a0 = _mm512_set1_ps(bias), a1 = a0, a2 = _mm512_setzero_ps(), a3 = a2;
        int t = 0;
        for (; t + 2 <= nt; t += 2) {
            __m512 w0 = _mm512_set1_ps(w[t]), w1 = _mm512_set1_ps(w[t + 1]);
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(src[t] + o), a0);
            a1 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(src[t] + o + 16), a1);
            a2 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(src[t + 1] + o), a2);
            a3 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(src[t + 1] + o + 16), a3);
        }
        if (t < nt) {
            __m512 w0 = _mm512_set1_ps(w[t]);
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(src[t] + o), a0);
            a1 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(src[t] + o + 16), a1);
        }
        _mm512_storeu_ps(y + o, CLAMP16(_mm512_add_ps(a0, a2)));
        _mm512_storeu_ps(y + o + 16, CLAMP16(_mm512_add_ps(a1, a3)));
    }
    for (; o < n; o += 16) {
        __mmask16 mask = n - o >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - o)) - 1);
        __m512 a0 = _mm512_set1_ps(bias), a1 = _mm512_setzero_ps(), a2 = a1, a3 = a1;
        int t = 0;
        for (; t + 4 <= nt; t += 4) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), _mm512_maskz_loadu_ps(mask, src[t] + o), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(w[t + 1]), _mm512_maskz_loadu_ps(mask, src[t + 1] + o), a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(w[t + 2]), _mm512_maskz_loadu_ps(mask, src[t + 2] + o), a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(w[t + 3]), _mm512_maskz_loadu_ps(mask, src[t + 3] + o), a3);
        }
        for (; t < nt; t++)
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), _mm512_maskz_loadu_ps(mask, src[t] + o), a0);
        _mm512_mask_storeu_ps(y + o, mask, CLAMP16(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))));
    }
#undef CLAMP16
}
#endif

/* The widest row kernel the CPU has. */
static row_fn pick_row(void)
{
#ifdef HAVE_X86
    if (op_isa_level() >= 2) return row_avx512;
    if (op_isa_level() >= 1) return row_avx2;
#endif
    return row_c;
}

/* Taps of one output row: input channels of the group x kernel positions. */
#define MAX_TAPS 256
/* Grouped convs with at most this many input channels per group go direct. */
#define DIRECT_MAX_CG 8

typedef struct direct_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    float *y;
    padded pad;
    int64_t mblk, nmb;          /* output channels per task; tasks per group */
    float *buf;                 /* per thread: cg * chan_sz floats, then tmp_sz */
    size_t per_thread, tmp_sz;
    int flat;                   /* 1-D/2-D with unit row stride: see direct_flat */
    int64_t tap_off[MAX_TAPS];  /* tap (ci, kd, kh, kw) -> padded_tap() */
    row_fn row;
    const op_epilogue *epi;     /* fused epilogue left to apply per plane, or NULL */
    const float *res;           /* its residual's data, or NULL */
    float lo, hi;               /* a clamp the row kernels apply (+-inf: none) */
} direct_job;

/* Rows of output per call of the row kernel in flat mode: ~8 KB of output,
 * so the taps' overlapping input rows stay in L1. */
#define FLAT_CHUNK 2048

/* One output plane of a 1-D/2-D conv whose row stride is 1.  Output row
 * oh then reads padded row oh + kh*d for tap kh, so if the output is laid
 * out with the padded rows' width wq, every tap is the same input shifted
 * by a constant: the whole plane is one long row for the row kernel (far
 * fewer calls on small planes), computed into tmp and compacted into y.
 * The columns between ow and wq are junk that is dropped; the last row is
 * cut at ow so no tap reads past its phase. */
static void direct_flat(const direct_job *j, const float *buf, float *tmp, const float **taps,
                        const float *wm, float bias, float *ym)
{
    const conv_geom *g = j->g;
    int nt = (int)(g->cg * g->k_sz);
    for (int t = 0; t < nt; t++) taps[t] = buf + j->tap_off[t];
    int64_t oh = g->out[1], ow = g->out[2], wq = j->pad.wq, len = (oh - 1) * wq + ow;
    for (int64_t o = 0; o < len; o += FLAT_CHUNK) {
        const float *sh[MAX_TAPS];
        for (int t = 0; t < nt; t++) sh[t] = taps[t] + o;
        j->row(tmp + o, len - o < FLAT_CHUNK ? len - o : FLAT_CHUNK, sh, wm, nt, bias, j->lo, j->hi);
    }
    for (int64_t r = 0; r < oh; r++) copy_floats(ym + r * ow, tmp + r * wq, ow);
}

static void direct_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const direct_job *j = arg;
    const conv_geom *g = j->g;
    float *buf = j->buf + (size_t)tid * j->per_thread, *tmp = buf + g->cg * j->pad.chan_sz;
    const float *taps[MAX_TAPS];
    int nt = (int)(g->cg * g->k_sz);
    int64_t built = -1;   /* (image, group) whose channels are in buf */
    for (int64_t t = t0; t < t1; t++) {
        int64_t ng = t / j->nmb, mb = t % j->nmb;
        int64_t n = ng / g->group, gr = ng % g->group;
        if (ng != built) {
            for (int64_t ci = 0; ci < g->cg; ci++)
                padded_fill(g, &j->pad, j->x + (n * g->c + gr * g->cg + ci) * g->in_sz,
                            buf + ci * j->pad.chan_sz);
            built = ng;
        }
        int64_t m0 = gr * g->mg + mb * j->mblk;
        int64_t m1 = m0 + j->mblk < (gr + 1) * g->mg ? m0 + j->mblk : (gr + 1) * g->mg;
        for (int64_t m = m0; m < m1; m++) {
            const float *wm = j->w + m * nt;
            float bias = j->bias ? j->bias[m] : 0.0f;
            float *ym = j->y + (n * g->m + m) * g->out_sz;
            if (j->flat) {
                direct_flat(j, buf, tmp, taps, wm, bias, ym);
            } else {
                for (int64_t od = 0; od < g->out[0]; od++)
                    for (int64_t oh = 0; oh < g->out[1]; oh++) {
                        const float *base = buf + padded_row(g, &j->pad, od, oh);
                        for (int i = 0; i < nt; i++) taps[i] = base + j->tap_off[i];
                        j->row(ym + (od * g->out[1] + oh) * g->out[2], g->out[2], taps, wm, nt, bias, j->lo,
                               j->hi);
                    }
            }
            if (j->epi)
                op_apply_epilogue(j->epi, ym, j->res ? j->res + (n * g->m + m) * g->out_sz : NULL, g->out_sz);
        }
    }
}

/* Direct convolution when each group has few input channels (depthwise
 * and narrow grouped convs), where an im2col GEMM would have a tiny K or
 * M.  Returns QK_ENOMEM without side effects when the buffers are short. */
static int conv_direct(op_ctx *c, const conv_geom *g, const float *x, const float *w,
                       const float *bias, float *y)
{
    direct_job j = {.g = g, .x = x, .w = w, .bias = bias, .y = y, .row = pick_row(), .epi = c->epi,
                    .res = c->epi && c->epi->residual ? c->epi->residual->data : NULL,
                    .lo = -INFINITY, .hi = INFINITY};
    /* A clamp with nothing to add first goes into the row kernels. */
    if (j.epi && j.epi->act == OP_ACT_CLAMP && !j.res) {
        j.lo = j.epi->lo;
        j.hi = j.epi->hi;
        j.epi = NULL;
    }
    padded_init(g, &j.pad);
    /* Enough tasks to keep every thread busy even for one image with few
     * groups (a single-channel first layer is one group). */
    int nt = tp_nthreads(c->pool);
    int64_t ng = g->n * g->group, want = 4 * (int64_t)nt;
    j.nmb = ng >= want ? 1 : (want + ng - 1) / ng;
    if (j.nmb > g->mg) j.nmb = g->mg;
    j.mblk = (g->mg + j.nmb - 1) / j.nmb;
    j.nmb = (g->mg + j.mblk - 1) / j.mblk;
    int t = 0;
    for (int64_t ci = 0; ci < g->cg; ci++)
        for (int64_t kd = 0; kd < g->k[0]; kd++)
            for (int64_t kh = 0; kh < g->k[1]; kh++)
                for (int64_t kw = 0; kw < g->k[2]; kw++) j.tap_off[t++] = padded_tap(g, &j.pad, ci, kd, kh, kw);
    j.flat = g->out[0] == 1 && j.pad.pd[0] == 1 && g->str[1] == 1;
    j.tmp_sz = j.flat ? (size_t)(g->out[1] * j.pad.wq) : 0;
    j.per_thread = (size_t)(g->cg * j.pad.chan_sz) + j.tmp_sz;
    j.buf = op_scratch(0, sizeof(float) * j.per_thread * (size_t)nt + 1);
    if (!j.buf)
        return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of padded input",
                       sizeof(float) * j.per_thread * (size_t)nt);
    tp_parallel_for(c->pool, ng * j.nmb, 1, direct_task, &j);
    return QK_OK;
}

/* Folded path, step 1: image n0 + t's im2col columns (or, pointwise, its
 * input) go to columns [t * out_sz, (t+1) * out_sz) of col.  Each thread
 * pads into its own slice of xpad. */
static void fold_im2col_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    float *xpad = j->xpad + (size_t)tid * (size_t)(g->c * j->pad.chan_sz);
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + (j->n0 + t) * g->c * g->in_sz;
        float *col = j->col + t * g->out_sz;
        if (j->pointwise) {
            for (int64_t ch = 0; ch < g->c; ch++)
                copy_floats(col + ch * j->ldf, x + ch * g->in_sz, g->out_sz);
            continue;
        }
        for (int64_t ch = 0; ch < g->c; ch++)
            padded_fill(g, &j->pad, x + ch * g->in_sz, xpad + ch * j->pad.chan_sz);
        im2col_padded(g, &j->pad, xpad, j->tap_off, 0, g->c * g->k_sz, 0, g->out_sz, col, j->ldf);
    }
}

/* Folded path, step 3: row m of image n0 + img of the product goes to Y,
 * plus the bias, for t = img * m_count + m in [t0, t1). */
static void fold_scatter_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t t = t0; t < t1; t++) {
        int64_t img = t / g->m, m = t % g->m;
        const float *src = j->tmp + m * j->ldf + img * g->out_sz;
        float *dst = j->y + ((j->n0 + img) * g->m + m) * g->out_sz;
        float b = j->bias ? j->bias[m] : 0.0f;
        if (b == 0.0f) copy_floats(dst, src, g->out_sz);
        else copy_add(dst, src, b, g->out_sz);
    }
}

/* Positions per image below which a batch is folded into one GEMM. */
#define FOLD_MAX_POS 1024
/* Floats of folded im2col per round: bounds the extra memory. */
#define FOLD_MAX_FLOATS (4 << 20)

/* Small feature maps at batch > 1 (group 1): the images' im2col matrices
 * side by side make one GEMM with N = batch x positions instead of a GEMM
 * per image whose few columns are mostly edge tiles.  The product lands in
 * a scratch matrix, then is scattered into Y image by image. */
static int conv_folded(op_ctx *c, conv_job *j, int pointwise)
{
    const conv_geom *g = j->g;
    int nt = tp_nthreads(c->pool);
    int64_t rows = g->c * g->k_sz;
    int64_t nb = FOLD_MAX_FLOATS / (rows * g->out_sz);   /* >= 2, see conv_run */
    if (nb > g->n) nb = g->n;
    j->pointwise = pointwise;
    size_t pad_floats = pointwise ? 0 : (size_t)(g->c * j->pad.chan_sz) * (size_t)nt;
    size_t col_floats = (size_t)(rows * nb * g->out_sz), tmp_floats = (size_t)(g->m * nb * g->out_sz);
    float *buf = malloc(sizeof(float) * (pad_floats + col_floats + tmp_floats) + 1);
    if (!buf)
        return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of im2col buffers",
                       sizeof(float) * (pad_floats + col_floats + tmp_floats));
    j->xpad = buf;
    j->col = buf + pad_floats;
    j->tmp = j->col + col_floats;
    for (j->n0 = 0; j->n0 < g->n; j->n0 += nb) {
        j->nb = g->n - j->n0 < nb ? g->n - j->n0 : nb;
        j->ldf = j->nb * g->out_sz;
        tp_parallel_for(c->pool, j->nb, 1, fold_im2col_task, j);
        sgemm(0, 0, g->m, j->ldf, rows, 1.0f, j->w, rows, j->col, j->ldf, 0.0f, j->tmp, j->ldf, c->pool);
        tp_parallel_for(c->pool, j->nb * g->m, 4096 / (g->out_sz + 1) + 1, fold_scatter_task, j);
    }
    free(buf);
    return QK_OK;
}

static void bias_task(void *arg, int64_t p0, int64_t p1, int tid)
{
    const conv_job *j = arg;
    fill_bias(j->y, j->bias, j->g->m, j->g->out_sz, p0, p1);
}

/* Bytes of im2col per chunk: with the weights' rows streaming through
 * the GEMM the block should stay in L2 (1-2 MB on current x86). */
#ifndef CHUNK_BYTES   /* overridable to test the chunked path on small convs */
#define CHUNK_BYTES (512 * 1024)
#endif
/* ... but not so narrow that the GEMM's per-call costs dominate. */
#ifndef CHUNK_MIN
#define CHUNK_MIN 512
#endif



/* ------------------------------------------ depthwise 2-D, AVX-512 rows */

/* Depthwise 2-D convs (one input and one output channel per group),
 * kernels up to 7 x 7, stride 1 or 2 along W, no dilation: each output
 * row is computed 16 columns at a time straight from the input rows, with
 * masked loads where a tap falls into the padding (masked-off lanes read
 * no memory), so there is no padded copy, no temporary and one write of
 * the output.  Stride 2 loads the 32 input columns under a tap's 16
 * outputs and keeps the even ones with one permute.  The fused clamp and
 * SiLU are applied in registers, a residual per plane while it is in cache. */
#define DW_MAXK 7

typedef struct dw_job {
    const conv_geom *g;
    const float *x, *w, *bias, *res;
    float *y;
    const op_epilogue *epi;     /* what is left after the clamp and SiLU, or NULL */
    float lo, hi;
    int silu;                   /* x * sigmoid(x) in registers, after the clamp */
    float *ext;                 /* op_ctx.ext: lanes for the extremes (sgemm.h's EXT_*), or NULL */
    unsigned ext_stages;        /* ... of these stages */
} dw_job;

static int dw_fast_ok(const conv_geom *g)
{
    if (g->rank != 2 || g->cg != 1 || g->mg != 1 || op_isa_level() < 2) return 0;
    /* Square odd kernels 3, 5, 7, the same stride 1 or 2 on both axes. */
    int64_t k = g->k[2];
    if (g->k[1] != k || (k != 3 && k != 5 && k != 7) || g->dil[1] != 1 || g->dil[2] != 1) return 0;
    if (g->str[1] != g->str[2] || g->str[2] > 2 || g->pb[2] >= k || g->pb[1] >= k) return 0;
    return g->in[2] < (1 << 30) && g->out[2] < (1 << 30);
}

#ifdef HAVE_X86
/* Lanes l in [0, n) with 0 <= base + l < W, as a mask of n <= 32 bits. */
static inline uint32_t dw_mask(int64_t base, int64_t W, int n)
{
    int64_t lo = base < 0 ? -base : 0, hi = W - base < n ? W - base : n;
    if (hi <= lo) return 0;
    uint64_t bits = ((uint64_t)1 << hi) - 1;
    return (uint32_t)(bits & ~(((uint64_t)1 << lo) - 1));
}

/* Output rows per block: each input row is loaded (and, at stride 2,
 * permuted) once per block and feeds every output row of the block that
 * reads it, and the block's rows are independent FMA chains, which a
 * single row's dependent FMAs are not. */
#define DW_ROWS 4

/* A thread's extremes while a depthwise kernel runs (op_ctx.ext; the
 * stages and their rules are sgemm.h's EXT_*): in registers, loaded before
 * a plane or group and stored after it. */
typedef struct dw_ext {
    unsigned stages;            /* 0: gather nothing */
    __m512 o_lo, o_hi, h_lo, h_hi, g_lo, g_hi;
} dw_ext;

__attribute__((target("avx512f"), always_inline))
static inline void dw_ext_load(dw_ext *e, unsigned stages, const float *lanes)
{
    e->stages = lanes ? stages : 0;
    e->o_lo = e->o_hi = e->h_lo = e->h_hi = e->g_lo = e->g_hi = _mm512_setzero_ps();
    if (!lanes) return;
    const float *at[3] = {lanes + EXT_OUT * EXT_STAGE_FLOATS, lanes + EXT_HEAD * EXT_STAGE_FLOATS,
                          lanes + EXT_SIG * EXT_STAGE_FLOATS};
    if (e->stages & 1u << EXT_OUT) e->o_lo = _mm512_loadu_ps(at[0]), e->o_hi = _mm512_loadu_ps(at[0] + EXT_LANES);
    if (e->stages & 1u << EXT_HEAD) e->h_lo = _mm512_loadu_ps(at[1]), e->h_hi = _mm512_loadu_ps(at[1] + EXT_LANES);
    if (e->stages & 1u << EXT_SIG) e->g_lo = _mm512_loadu_ps(at[2]), e->g_hi = _mm512_loadu_ps(at[2] + EXT_LANES);
}

__attribute__((target("avx512f"), always_inline))
static inline void dw_ext_store(const dw_ext *e, float *lanes)
{
    float *at[3] = {lanes + EXT_OUT * EXT_STAGE_FLOATS, lanes + EXT_HEAD * EXT_STAGE_FLOATS,
                    lanes + EXT_SIG * EXT_STAGE_FLOATS};
    if (e->stages & 1u << EXT_OUT) _mm512_storeu_ps(at[0], e->o_lo), _mm512_storeu_ps(at[0] + EXT_LANES, e->o_hi);
    if (e->stages & 1u << EXT_HEAD) _mm512_storeu_ps(at[1], e->h_lo), _mm512_storeu_ps(at[1] + EXT_LANES, e->h_hi);
    if (e->stages & 1u << EXT_SIG) _mm512_storeu_ps(at[2], e->g_lo), _mm512_storeu_ps(at[2] + EXT_LANES, e->g_hi);
}

/* The activation of a depthwise output vector v (acc with the bias) and
 * its store, lanes m of it -- with EXT (compile time, so that inference
 * runs the code it ran before calibration had any of this) folding the
 * stages e gathers. */
__attribute__((target("avx512f"), always_inline))
static inline void dw_finish(const int SILU, const int EXT, __m512 acc, __m512 vlo, __m512 vhi, float *y,
                             __mmask16 m, int full, dw_ext *e)
{
    if (EXT && (e->stages & 1u << EXT_HEAD)) qk_fold512(&e->h_lo, &e->h_hi, acc, m, 1);
    __m512 v = _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc));
    if (SILU) {
        __m512 g = qk_sigmoid512(v);
        if (EXT && (e->stages & 1u << EXT_SIG)) qk_fold512(&e->g_lo, &e->g_hi, g, m, 0);
        v = _mm512_mul_ps(v, g);
    }
    if (full) _mm512_storeu_ps(y, v);
    else _mm512_mask_storeu_ps(y, m, v);
    if (EXT && (e->stages & 1u << EXT_OUT)) qk_fold512(&e->o_lo, &e->o_hi, v, m, 0);
}

/* One block of DW_ROWS output rows x 16 columns whose taps all fall
 * inside the plane (x0: the input under tap (0, 0) of its first output):
 * no masks and no bounds tests, so the unrolled taps are straight-line
 * loads and FMAs -- the case of nearly every block of a large plane, where
 * the tests of the border code cost more than the FMAs. */
__attribute__((target("avx512f"), always_inline))
static inline void dw_block_inner(const int K, const int S, const int SILU, const int EXT, const float *x0, int64_t W,
                                  const float *w, __m512 vb, __m512 vlo, __m512 vhi, float *y, int64_t OW,
                                  dw_ext *e)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const int IN_ROWS = (DW_ROWS - 1) * S + K;
    __m512 acc[DW_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < DW_ROWS; r++) acc[r] = vb;
#pragma GCC unroll 16
    for (int i = 0; i < IN_ROWS; i++) {
        const float *xr = x0 + i * W;
#pragma GCC unroll 7
        for (int kw = 0; kw < K; kw++) {
            __m512 v = S == 1 ? _mm512_loadu_ps(xr + kw)
                              : _mm512_permutex2var_ps(_mm512_loadu_ps(xr + kw), even, _mm512_loadu_ps(xr + kw + 16));
#pragma GCC unroll 4
            for (int r = 0; r < DW_ROWS; r++) {
                const int kh = i - r * S;
                if (kh >= 0 && kh < K) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[kh * K + kw]), v, acc[r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < DW_ROWS; r++) dw_finish(SILU, EXT, acc[r], vlo, vhi, y + r * OW, 0xffff, 1, e);
}

/* One plane with compile-time kernel size K x K and stride S (both axes),
 * so the loops over taps and block rows unroll into straight-line code.
 * Blocks whose taps all fall inside the plane go to dw_block_inner; the
 * border blocks load under masks and skip the rows outside. */
__attribute__((target("avx512f"), always_inline))
static inline void dw_plane_k(const int K, const int S, const int SILU, const int EXT, const dw_job *j,
                              const float *x, const float *w, float bias, float *y, float *lanes)
{
    dw_ext e;
    dw_ext_load(&e, j->ext_stages, EXT ? lanes : NULL);
    const conv_geom *g = j->g;
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2];
    const int64_t PT = g->pb[1], PL = g->pb[2];
    const __m512 vlo = _mm512_set1_ps(j->lo), vhi = _mm512_set1_ps(j->hi), vb = _mm512_set1_ps(bias);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const int IN_ROWS = (DW_ROWS - 1) * S + K;
    /* Full segments [c_lo, c_hi) read only columns inside the plane (at
     * stride 2 a segment loads 32 columns from each tap's first); c_lo is
     * the first segment start (a multiple of 16) past the left padding. */
    int64_t c_lo = ((PL + S - 1) / S + 15) / 16 * 16, c_hi = 0;
    for (int64_t ow0 = c_lo; ow0 + 16 <= OW && ow0 * S - PL + K - 1 + 16 * S <= W; ow0 += 16) c_hi = ow0 + 16;
    if (c_hi < c_lo) c_hi = c_lo;
    /* Row blocks outside, column segments inside: the input is read in
     * address order, which matters when it comes from memory (large
     * batches), where walking a plane column strip by column strip ran at
     * a fraction of the bandwidth. */
    for (int64_t oh0 = 0; oh0 < OH; oh0 += DW_ROWS) {
        /* The input rows the next block adds and the output rows it
         * writes, ahead of time: at large batch, or at batch 1 with planes
         * past L2, both come from L3 or memory, and the hardware prefetcher
         * does not follow these few interleaved row streams well enough.
         * The last block reaches into the next plane (planes are
         * contiguous), whose first block would otherwise start cold;
         * prefetches past the tensor's end are harmless hints. */
        for (int64_t ih = oh0 * S - PT + (DW_ROWS - 1) * S + K; ih < (oh0 + 2 * DW_ROWS) * S - PT + K - S; ih++)
            if (ih >= 0 && ih < H + IN_ROWS)
                for (int64_t c = 0; c < W; c += 16) _mm_prefetch((const char *)(x + ih * W + c), _MM_HINT_T0);
        for (int64_t oh = oh0 + DW_ROWS; oh < oh0 + 2 * DW_ROWS && oh < OH + DW_ROWS; oh++)
            for (int64_t c = 0; c < OW; c += 16) _mm_prefetch((const char *)(y + oh * OW + c), _MM_HINT_ET0);
        const int64_t top = oh0 * S - PT;
        const int rows_in = top >= 0 && top + IN_ROWS <= H && oh0 + DW_ROWS <= OH;
        for (int64_t ow0 = 0; ow0 < OW;) {
            if (rows_in && ow0 == c_lo && c_hi > c_lo) {
                for (; ow0 < c_hi; ow0 += 16)
                    dw_block_inner(K, S, SILU, EXT, x + top * W + ow0 * S - PL, W, w, vb, vlo, vhi, y + oh0 * OW + ow0,
                                   OW, &e);
                continue;
            }
            int n = (int)(OW - ow0 < 16 ? OW - ow0 : 16);
            __mmask16 om = (__mmask16)((1u << n) - 1);
            uint32_t m[K];
            int64_t base[K];
#pragma GCC unroll 7
            for (int kw = 0; kw < K; kw++) {
                base[kw] = ow0 * S + kw - PL;
                /* Stride 2 reads 2n columns and keeps the even ones. */
                m[kw] = dw_mask(base[kw], W, S == 1 ? n : 2 * n);
            }
            __m512 acc[DW_ROWS];
#pragma GCC unroll 4
            for (int r = 0; r < DW_ROWS; r++) acc[r] = vb;
#pragma GCC unroll 16
            for (int i = 0; i < IN_ROWS; i++) {
                if (top + i < 0 || top + i >= H) continue;
                const float *xr = x + (top + i) * W;
#pragma GCC unroll 7
                for (int kw = 0; kw < K; kw++) {
                    /* Masked-off lanes read no memory. */
                    __m512 v = _mm512_maskz_loadu_ps((__mmask16)m[kw], xr + base[kw]);
                    if (S == 2)
                        v = _mm512_permutex2var_ps(v, even,
                                                   _mm512_maskz_loadu_ps((__mmask16)(m[kw] >> 16), xr + base[kw] + 16));
#pragma GCC unroll 4
                    for (int r = 0; r < DW_ROWS; r++) {
                        const int kh = i - r * S;
                        if (kh >= 0 && kh < K) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[kh * K + kw]), v, acc[r]);
                    }
                }
            }
            int nr = (int)(OH - oh0 < DW_ROWS ? OH - oh0 : DW_ROWS);
#pragma GCC unroll 4
            for (int r = 0; r < DW_ROWS; r++)
                if (r < nr) dw_finish(SILU, EXT, acc[r], vlo, vhi, y + (oh0 + r) * OW + ow0, om, 0, &e);
            ow0 += 16;
        }
    }
    if (EXT && lanes) dw_ext_store(&e, lanes);
}

#define DW_PLANE(EXT)                                                                         \
    switch ((K * 4 + S) * 2 + (j->silu != 0)) {                                               \
    case (3 * 4 + 1) * 2: dw_plane_k(3, 1, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (3 * 4 + 2) * 2: dw_plane_k(3, 2, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (5 * 4 + 1) * 2: dw_plane_k(5, 1, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (5 * 4 + 2) * 2: dw_plane_k(5, 2, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (7 * 4 + 1) * 2: dw_plane_k(7, 1, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (7 * 4 + 2) * 2: dw_plane_k(7, 2, 0, EXT, j, x, w, bias, y, lanes); break;           \
    case (3 * 4 + 1) * 2 + 1: dw_plane_k(3, 1, 1, EXT, j, x, w, bias, y, lanes); break;       \
    case (3 * 4 + 2) * 2 + 1: dw_plane_k(3, 2, 1, EXT, j, x, w, bias, y, lanes); break;       \
    case (5 * 4 + 1) * 2 + 1: dw_plane_k(5, 1, 1, EXT, j, x, w, bias, y, lanes); break;       \
    case (5 * 4 + 2) * 2 + 1: dw_plane_k(5, 2, 1, EXT, j, x, w, bias, y, lanes); break;       \
    case (7 * 4 + 1) * 2 + 1: dw_plane_k(7, 1, 1, EXT, j, x, w, bias, y, lanes); break;       \
    default: dw_plane_k(7, 2, 1, EXT, j, x, w, bias, y, lanes); break;                        \
    }

/* Calibration's variant, folding into lanes (dw_job.ext). */
__attribute__((target("avx512f")))
static void dw_plane_avx512_ext(const dw_job *j, const float *x, const float *w, float bias, float *y,
                                float *lanes)
{
    const conv_geom *g = j->g;
    int K = (int)g->k[2], S = (int)g->str[2];
    DW_PLANE(1)
}

__attribute__((target("avx512f")))
static void dw_plane_avx512(const dw_job *j, const float *x, const float *w, float bias, float *y, float *lanes)
{
    if (lanes) {
        dw_plane_avx512_ext(j, x, w, bias, y, lanes);
        return;
    }
    const conv_geom *g = j->g;
    int K = (int)g->k[2], S = (int)g->str[2];
    DW_PLANE(0)
}
#undef DW_PLANE
#endif

static void dw_task(void *arg, int64_t p0, int64_t p1, int tid)
{
#ifdef HAVE_X86
    const dw_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t p = p0; p < p1; p++) {
        int64_t ch = p % g->c;
        float *yp = j->y + p * g->out_sz;
        dw_plane_avx512(j, j->x + p * g->in_sz, j->w + ch * g->k_sz, j->bias ? j->bias[ch] : 0.0f, yp,
                        j->ext ? j->ext + (int64_t)tid * EXT_FLOATS : NULL);
        if (j->epi) op_apply_epilogue(j->epi, yp, j->res ? j->res + p * g->out_sz : NULL, g->out_sz);
    }
#endif
}

/* ---------------------------- depthwise on small planes, 16 channels wide */

/* On small planes (EfficientNet's and MobileNet's 14x14 and 7x7 stages) a
 * 16-lane vector along a row is mostly padding lanes and masks, and every
 * plane pays the row blocks' fixed costs.  So 16 channels are transposed
 * into a zero-padded [position][16 channels] block, each output position
 * is then one vector of 16 channels with one FMA per tap (the weights of a
 * tap are a vector too), and the result is transposed back.  Both blocks
 * stay in L1. */
#define DWS_MAX_POS 400      /* padded positions per block: 20 x 20 */
#define DWS_GROUP 16

typedef struct dws_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    float *y;
    float lo, hi;
    int silu;
    float *ext;              /* op_ctx.ext: lanes for the extremes (sgemm.h's EXT_*), or NULL */
    unsigned ext_stages;     /* ... of these stages */
    int64_t wp, hp;          /* padded plane */
    float *buf;              /* per thread: wp*hp + out_sz vectors of 16 */
    size_t per_thread;
} dws_job;

static int dws_ok(const conv_geom *g, const op_epilogue *epi)
{
    if (g->rank != 2 || g->cg != 1 || g->mg != 1 || g->c % DWS_GROUP || op_isa_level() < 2) return 0;
    if (g->k[1] != g->k[2] || (g->k[2] != 3 && g->k[2] != 5) || g->dil[1] != 1 || g->dil[2] != 1) return 0;
    if (g->str[1] != g->str[2] || g->str[2] > 2 || (epi && epi->residual)) return 0;
    int64_t hp = g->in[1] + g->pb[1] + g->pe[1], wp = g->in[2] + g->pb[2] + g->pe[2];
    /* Past 20 x 20 the row kernel's lanes are mostly full anyway, and a
     * 3x3 kernel on 14-wide rows has too few FMAs to pay for the
     * transposes (measured: as fast either way). */
    if (g->k[2] == 3 && g->out[2] > 8) return 0;
    return g->pb[1] >= 0 && g->pb[2] >= 0 && g->pe[1] >= 0 && g->pe[2] >= 0 && hp * wp <= DWS_MAX_POS &&
           g->out_sz <= DWS_MAX_POS && (g->out[1] - 1) * g->str[1] + g->k[1] <= hp &&
           (g->out[2] - 1) * g->str[2] + g->k[2] <= wp;
}

#ifdef HAVE_X86
/* r[i] (16 rows of 16) becomes its transpose in place. */
__attribute__((target("avx512f"), always_inline))
static inline void transpose16(__m512 *r)
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* r[4q + j] now holds column j + 4 * lane-block of rows 4q..4q+3. */
    for (int j = 0; j < 4; j++) {
        __m512 a = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), b = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
        __m512 c = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), d = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[j + 8] = _mm512_shuffle_f32x4(a, c, 0xdd);
        t[j + 4] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[j + 12] = _mm512_shuffle_f32x4(b, d, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* One group of 16 channels with compile-time kernel size K. */
__attribute__((target("avx512f"), always_inline))
static inline void dws_group_k(const int K, const int EXT, const dws_job *j, int64_t grp, float *tb, float *lanes)
{
    const conv_geom *g = j->g;
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2], S = g->str[2];
    const int64_t WP = j->wp, HW = H * W, P = g->out_sz;
    const int64_t p0 = grp * DWS_GROUP, c0 = p0 % g->c;
    float *ob = tb + j->wp * j->hp * DWS_GROUP;
    const __m512 z = _mm512_setzero_ps();
    /* In: 16 positions x 16 channels at a time, into the interior (the
     * zero border is written once per task, see dws_task). */
    const float *x = j->x + p0 * HW;
    /* The next group's input meanwhile (contiguous, and from L3 at large
     * batch; past the tensor's end the hints are harmless). */
    for (int64_t o = 0; o < DWS_GROUP * HW; o += 16) _mm_prefetch((const char *)(x + DWS_GROUP * HW + o), _MM_HINT_T0);
    int64_t h = 0, w = 0;
    for (int64_t i = 0; i < HW; i += 16) {
        int n = (int)(HW - i < 16 ? HW - i : 16);
        __mmask16 m = (__mmask16)((1u << n) - 1);
        __m512 v[16];
        for (int c = 0; c < 16; c++) v[c] = _mm512_maskz_loadu_ps(m, x + c * HW + i);
        transpose16(v);
        for (int q = 0; q < n; q++) {
            _mm512_store_ps(tb + ((h + g->pb[1]) * WP + w + g->pb[2]) * DWS_GROUP, v[q]);
            if (++w == W) {
                w = 0;
                h++;
            }
        }
    }
    __m512 wv[K * K], vb;
    {
        float tmp[DWS_GROUP];
        for (int t = 0; t < K * K; t++) {
            for (int c = 0; c < DWS_GROUP; c++) tmp[c] = j->w[(c0 + c) * K * K + t];
            wv[t] = _mm512_loadu_ps(tmp);
        }
        for (int c = 0; c < DWS_GROUP; c++) tmp[c] = j->bias ? j->bias[c0 + c] : 0.0f;
        vb = _mm512_loadu_ps(tmp);
    }
    const __m512 vlo = _mm512_set1_ps(j->lo), vhi = _mm512_set1_ps(j->hi);
    dw_ext e;
    dw_ext_load(&e, j->ext_stages, EXT ? lanes : NULL);
    /* Four output positions of a row at once: four independent FMA chains. */
    for (int64_t oh = 0; oh < OH; oh++) {
        const float *trow = tb + oh * S * WP * DWS_GROUP;
        float *orow = ob + oh * OW * DWS_GROUP;
        for (int64_t ow = 0; ow < OW; ow += 4) {
            int nq = (int)(OW - ow < 4 ? OW - ow : 4);
            __m512 acc[4] = {vb, vb, vb, vb};
#pragma GCC unroll 5
            for (int kh = 0; kh < K; kh++)
#pragma GCC unroll 5
                for (int kw = 0; kw < K; kw++) {
                    const float *tp = trow + (kh * WP + ow * S + kw) * DWS_GROUP;
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++)
                        if (q < nq) acc[q] = _mm512_fmadd_ps(wv[kh * K + kw], _mm512_load_ps(tp + q * S * DWS_GROUP), acc[q]);
                }
            /* One position, 16 channels: every lane is a value. */
            for (int q = 0; q < nq; q++) {
                if (j->silu) dw_finish(1, EXT, acc[q], vlo, vhi, orow + (ow + q) * DWS_GROUP, 0xffff, 1, &e);
                else dw_finish(0, EXT, acc[q], vlo, vhi, orow + (ow + q) * DWS_GROUP, 0xffff, 1, &e);
            }
        }
    }
    if (EXT && lanes) dw_ext_store(&e, lanes);
    /* Out: back to 16 planes. */
    float *y = j->y + p0 * P;
    for (int64_t i = 0; i < P; i += 16) {
        int n = (int)(P - i < 16 ? P - i : 16);
        __mmask16 m = (__mmask16)((1u << n) - 1);
        __m512 v[16];
        for (int q = 0; q < 16; q++) v[q] = q < n ? _mm512_load_ps(ob + (i + q) * DWS_GROUP) : z;
        transpose16(v);
        for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(y + c * P + i, m, v[c]);
    }
}

__attribute__((target("avx512f")))
static void dws_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const dws_job *j = arg;
    const conv_geom *g = j->g;
    float *tb = j->buf + (size_t)tid * j->per_thread;
    /* The padding border, which the groups never overwrite. */
    for (int64_t r = 0; r < j->hp; r++)
        for (int64_t q = 0; q < j->wp; q++)
            if (r < g->pb[1] || r >= g->pb[1] + g->in[1] || q < g->pb[2] || q >= g->pb[2] + g->in[2])
                _mm512_store_ps(tb + (r * j->wp + q) * DWS_GROUP, _mm512_setzero_ps());
    float *lanes = j->ext ? j->ext + (int64_t)tid * EXT_FLOATS : NULL;
    for (int64_t t = t0; t < t1; t++) {
        if (lanes) {
            if (j->g->k[2] == 3) dws_group_k(3, 1, j, t, tb, lanes);
            else dws_group_k(5, 1, j, t, tb, lanes);
        } else {
            if (j->g->k[2] == 3) dws_group_k(3, 0, j, t, tb, NULL);
            else dws_group_k(5, 0, j, t, tb, NULL);
        }
    }
}
#endif

static int conv_depthwise_small(op_ctx *c, const conv_geom *g, const float *x, const float *w, const float *bias,
                                float *y)
{
#ifdef HAVE_X86
    dws_job j = {.g = g, .x = x, .w = w, .bias = bias, .y = y, .lo = -INFINITY, .hi = INFINITY};
    if (c->epi && c->epi->act == OP_ACT_CLAMP) {
        j.lo = c->epi->lo;
        j.hi = c->epi->hi;
    } else if (c->epi && c->epi->act == OP_ACT_SILU) {
        j.silu = 1;
    }
    j.hp = g->in[1] + g->pb[1] + g->pe[1];
    j.wp = g->in[2] + g->pb[2] + g->pe[2];
    int nt = tp_nthreads(c->pool);
    j.per_thread = (size_t)((j.wp * j.hp + g->out_sz) * DWS_GROUP);
    j.buf = op_scratch(0, sizeof(float) * j.per_thread * (size_t)nt + 64);
    if (!j.buf) return op_fail(c, QK_ENOMEM, "out of memory");
    j.ext = c->ext;
    j.ext_stages = c->ext_stages;
    tp_parallel_for(c->pool, g->n * g->c / DWS_GROUP, 1, dws_task, &j);
    c->ext_gathered = c->ext != NULL;
#endif
    return QK_OK;
}

static int conv_depthwise(op_ctx *c, const conv_geom *g, const float *x, const float *w, const float *bias,
                          float *y)
{
    dw_job j = {.g = g, .x = x, .w = w, .bias = bias, .y = y, .epi = c->epi,
                .res = c->epi && c->epi->residual ? c->epi->residual->data : NULL,
                .lo = -INFINITY, .hi = INFINITY};
    if (j.epi && j.epi->act == OP_ACT_CLAMP && !j.res) {
        j.lo = j.epi->lo;
        j.hi = j.epi->hi;
        j.epi = NULL;
    } else if (j.epi && j.epi->act == OP_ACT_SILU && !j.res) {
        /* EfficientNet's depthwise convs: SiLU before the store, rather
         * than a second pass over each plane. */
        j.silu = 1;
        j.epi = NULL;
    } else if (j.epi && j.epi->act == OP_ACT_NONE && !j.res) {
        j.epi = NULL;
    }
    /* The extremes as the kernel stores, unless an epilogue follows it. */
    j.ext = j.epi ? NULL : c->ext;
    j.ext_stages = c->ext_stages;
    /* ~64 KB of output per task. */
    tp_parallel_for(c->pool, g->n * g->c, 16384 / (g->out_sz + 1) + 1, dw_task, &j);
    c->ext_gathered = j.ext != NULL;
    return QK_OK;
}

/* ------------------------------------------------- packed-weight engine */

/* Conv with group 1 whose weights exec_new packed (conv_prepare): one
 * sgemm_packed product W [M, C*k] x B [C*k, batch*positions], where B is
 * never stored whole: the engine asks for one block at a time and
 * pack_conv_b copies it from the input (pointwise) or from a zero-padded,
 * phase-split copy of it (see `padded`) straight into the kernel's sliver
 * layout.  Columns run over the images of the batch (so small feature maps
 * still fill whole tiles), and the engine writes each output element once,
 * with the bias and any fused epilogue (residual, Relu/Clip, SiLU)
 * applied in registers. */

typedef struct conv_state {
    const float *w;             /* the weights packed, to check at run time */
    int64_t m, k;
    sgemm_pa *pa;               /* for conv_engine, or NULL */
    convd_w *dw;                /* for conv_implicit (conv_direct.c), or NULL */
    convw_w *wg;                /* for conv_winograd (conv_winograd.c), or NULL */
} conv_state;

/* Input channels per group from which conv_direct.c's kernel is used, and
 * from which QK_CONV_DIRECT=1 (the tests) may force it.  Between the two
 * the engine wins: SqueezeNet's 16-channel expand3x3 on 55x55 maps ran
 * 0.46 ms direct vs 0.35 ms on the engine (batch 1, one thread). */
#define IMPLICIT_MIN_CG 32
#define IMPLICIT_FORCED_MIN_CG 16

/* Whether a Conv with weights W [m, cg, k...] goes to conv_direct.c's
 * kernel rather than the im2col engine: on AVX-512 (following the sgemm
 * kernel, which QK_SGEMM_ISA and the tests can narrow), with enough input
 * channels that a tile's K loop dwarfs its transposed store, and not for
 * 1x1 stride-1 convs, where the engine packs nothing either (X is its B)
 * and its tiles over whole planes beat the kernel's short K loops
 * (mobilenet and shufflenet expansions ran 5-50% slower here).
 * QK_CONV_DIRECT=0 turns it off (comparisons, benchmarks); =1 also takes
 * it from IMPLICIT_FORCED_MIN_CG input channels (tests, with small convs). */
static int implicit_wanted(op_ctx *c, const xt *w)
{
    const char *env = getenv("QK_CONV_DIRECT");
    if (env && !strcmp(env, "0")) return 0;
    int64_t min_cg = env && !strcmp(env, "1") ? IMPLICIT_FORCED_MIN_CG : IMPLICIT_MIN_CG;
    if (strcmp(sgemm_isa(), "avx512") || op_isa_level() < 2 || w->dims[1] < min_cg) return 0;
    int r = w->rank - 2;
    const int64_t *str;
    int ns = node_attr_ints(c->node, "strides", &str);
    if (ns >= 0 && ns != r) return 0;   /* malformed: conv_run reports it */
    for (int i = 0; i < r; i++)
        if (w->dims[2 + i] != 1 || (ns >= 0 && str[i] != 1)) return 1;
    return 0;
}

/* Whether a Conv with weights W [m, cg, 3, 3] also gets the Winograd
 * transform of its weights (conv_winograd.c): 3x3, stride 1, dilation 1,
 * on AVX-512 (following the sgemm kernel, like implicit_wanted), with
 * enough channels on both sides that the 16 products are real GEMMs
 * (SqueezeNet's expand convs, 16-48 input channels, ran 5% slower).
 * conv_run still chooses per run (winograd_fits).  QK_CONV_WINOGRAD=0
 * turns it off (comparisons, benchmarks); =1 also takes it from
 * WINOGRAD_FORCED_MIN_C channels (tests, with small convs). */
#define WINOGRAD_MIN_C 64
#define WINOGRAD_FORCED_MIN_C 1
static int winograd_wanted(op_ctx *c, const xt *w)
{
    const char *env = getenv("QK_CONV_WINOGRAD");
    if (env && !strcmp(env, "0")) return 0;
    int64_t min_c = env && !strcmp(env, "1") ? WINOGRAD_FORCED_MIN_C : WINOGRAD_MIN_C;
    if (strcmp(sgemm_isa(), "avx512") || op_isa_level() < 2 || w->rank != 4) return 0;
    if (w->dims[2] != 3 || w->dims[3] != 3 || w->dims[0] < min_c || w->dims[1] < min_c) return 0;
    const int64_t *v;
    int n = node_attr_ints(c->node, "strides", &v);
    if (n >= 0 && (n != 2 || v[0] != 1 || v[1] != 1)) return 0;
    n = node_attr_ints(c->node, "dilations", &v);
    if (n >= 0 && (n != 2 || v[0] != 1 || v[1] != 1)) return 0;
    return 1;
}

int conv_prepare(op_ctx *c, void **state)
{
    *state = NULL;
    if (c->n_in < 2 || !c->in[0] || !c->in[1]) return QK_OK;
    const xt *w = c->in[1];
    if (!w->data || w->dtype != DT_FLOAT || w->rank < 3 || w->rank > 2 + SP) return QK_OK;
    if (node_attr_int(c->node, "group", 1) != 1) return QK_OK;
    int64_t m = w->dims[0], k = m > 0 ? xt_numel(w) / m : 0;
    /* A single input channel goes direct (see conv_run). */
    if (m <= 0 || k <= 0 || w->dims[1] == 1) return QK_OK;
    conv_state *st = calloc(1, sizeof *st);
    if (st && implicit_wanted(c, w)) st->dw = convd_pack(w->data, m, k);
    if (st && winograd_wanted(c, w)) st->wg = convw_pack(w->data, m, w->dims[1]);
    if (!st || (!st->dw && !(st->pa = sgemm_pack_a(w->data, k, m, k)))) {
        free(st);
        return op_fail(c, QK_ENOMEM, "out of memory packing the weights (%lld x %lld)", (long long)m,
                       (long long)k);
    }
    st->w = w->data;
    st->m = m;
    st->k = k;
    *state = st;
    return QK_OK;
}

/* Which path a prepared state takes: 0 none (NULL), 1 the im2col engine,
 * 2 conv_direct.c, 3 Winograd where it fits (winograd_fits; else 2 or 1).
 * For the tests, which must know the path they compare. */
int conv_state_path(const void *state) __attribute__((visibility("hidden")));
int conv_state_path(const void *state)
{
    const conv_state *st = state;
    return !st ? 0 : st->wg ? 3 : st->dw ? 2 : 1;
}

void conv_release(void *state)
{
    conv_state *st = state;
    sgemm_pa_free(st->pa);
    convd_free(st->dw);
    convw_free(st->wg);
    free(st);
}

typedef struct engine_b {
    const conv_geom *g;
    const float *base;          /* padded images, or X itself when pointwise */
    const int64_t *roff;        /* row k of B: offset within an image */
    int64_t img_stride;         /* floats per image in base */
    int pointwise;
    padded pad;
    const float *scale;         /* per image and input channel, or NULL (pack_conv_b_scaled) */
    int gather_in;              /* fold the scaled input into the lanes' EXT_IN (pointwise only) */
} engine_b;

/* A run of a sliver's columns that are contiguous in the source. */
typedef struct brun {
    int64_t src;                /* offset from an image row's base */
    int dst, len;               /* column in the sliver, count */
} brun;

/* Splits columns [j, j + n) into contiguous source runs; returns the count. */
static int sliver_runs(const engine_b *e, int64_t j, int64_t n, brun *runs)
{
    const conv_geom *g = e->g;
    const int64_t P = g->out_sz, OW = g->out[2], OH = g->out[1];
    int nr = 0;
    int64_t img = j / P, pos = j % P;
    for (int64_t done = 0; done < n;) {
        int64_t len, src;
        if (e->pointwise) {
            len = P - pos;
            src = img * e->img_stride + pos;
        } else {
            int64_t od = pos / (OH * OW), oh = pos / OW % OH, ow = pos % OW;
            len = OW - ow;
            src = img * e->img_stride + padded_row(g, &e->pad, od, oh) + ow;
        }
        if (len > n - done) len = n - done;
        runs[nr++] = (brun){src, (int)done, (int)len};
        done += len;
        pos += len;
        if (pos == P) {
            pos = 0;
            img++;
        }
    }
    return nr;
}

static void pack_sliver_c(float *dst, int64_t kc, int nr, const float *base, const int64_t *roff,
                          const brun *runs, int n_runs, int valid)
{
    for (int64_t k = 0; k < kc; k++, dst += nr) {
        const float *b = base + roff[k];
        for (int r = 0; r < n_runs; r++)
            copy_floats(dst + runs[r].dst, b + runs[r].src, runs[r].len);
        for (int c = valid; c < nr; c++) dst[c] = 0.0f;
    }
}

#ifdef HAVE_X86
/* A sliver's runs as the AVX-512 packer uses them: lane l of run r reads
 * src_r + l - dst_r (adj), under the run's lanes of each half (m0, m1). */
typedef struct sliver_plan {
    int n_runs, whole;          /* whole: one run of 32 columns from src0 */
    int64_t src0;
    int64_t adj[32];
    __mmask16 m0[32], m1[32];
} sliver_plan;

/* Slivers per pack call at most: sgemm_packed's blocks are <= 16 wide. */
#define MAX_SLIVERS 16

/* Packs k-row by k-row across all the block's slivers, so each k reads a
 * long stretch of one input row: sequential enough for the hardware
 * prefetcher when the input comes from L3 or memory (large batches),
 * where walking one sliver's k-rows at a time stalled on every row. */
__attribute__((target("avx512f")))
static void pack_block_avx512(float *dst, int64_t kc, int nr, const float *base, const int64_t *roff,
                              const sliver_plan *sp, int n_sl)
{
    for (int64_t k = 0; k < kc; k++) {
        const float *b = base + roff[k];
        float *d = dst + k * nr;
        for (int s = 0; s < n_sl; s++, d += nr * kc) {
            const sliver_plan *p = &sp[s];
            if (p->whole) {
                _mm512_store_ps(d, _mm512_loadu_ps(b + p->src0));
                _mm512_store_ps(d + 16, _mm512_loadu_ps(b + p->src0 + 16));
                continue;
            }
            __m512 v0 = _mm512_setzero_ps(), v1 = v0;
            for (int r = 0; r < p->n_runs; r++) {
                v0 = _mm512_mask_loadu_ps(v0, p->m0[r], b + p->adj[r]);
                if (nr == 32) v1 = _mm512_mask_loadu_ps(v1, p->m1[r], b + p->adj[r] + 16);
            }
            _mm512_store_ps(d, v0);
            if (nr == 32) _mm512_store_ps(d + 16, v1);
        }
    }
}
#endif

static void pack_conv_b(void *arg, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float *dst,
                        float *lanes)
{
    (void)lanes;
    const engine_b *e = arg;
    brun runs[64];
#ifdef HAVE_X86
    if (op_isa_level() >= 2 && (nr == 16 || nr == 32) && nc <= (int64_t)MAX_SLIVERS * nr) {
        sliver_plan sp[MAX_SLIVERS];
        int n_sl = 0;
        for (int64_t s = 0; s < nc; s += nr, n_sl++) {
            int valid = (int)(nc - s < nr ? nc - s : nr);
            int n_runs = sliver_runs(e, j0 + s, valid, runs);
            sliver_plan *p = &sp[n_sl];
            p->n_runs = n_runs;
            p->whole = n_runs == 1 && valid == 32 && nr == 32;
            p->src0 = runs[0].src;
            for (int r = 0; r < n_runs; r++) {
                uint32_t bits = (uint32_t)(((uint64_t)1 << runs[r].len) - 1) << runs[r].dst;
                p->adj[r] = runs[r].src - runs[r].dst;
                p->m0[r] = (__mmask16)bits;
                p->m1[r] = (__mmask16)(bits >> 16);
            }
        }
        pack_block_avx512(dst, kc, nr, e->base, e->roff + k0, sp, n_sl);
        return;
    }
#endif
    for (int64_t s = 0; s < nc; s += nr, dst += nr * kc) {
        int valid = (int)(nc - s < nr ? nc - s : nr);
        int n_runs = sliver_runs(e, j0 + s, valid, runs);
        pack_sliver_c(dst, kc, nr, e->base, e->roff + k0, runs, n_runs, valid);
    }
}

#ifdef HAVE_X86
/* p[i] *= f for i < n. */
__attribute__((target("avx512f")))
static void scale_avx512(float *p, float f, int64_t n)
{
    __m512 vf = _mm512_set1_ps(f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(p + i, _mm512_mul_ps(vf, _mm512_loadu_ps(p + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(p + i, m, _mm512_mul_ps(vf, _mm512_maskz_loadu_ps(m, p + i)));
    }
}
#endif

/* Folds the finite values of x[0..n) into lane 0 of a stage's lanes
 * (sgemm.h). */
static void fold_finite(float *stage, const float *x, int64_t n)
{
    vec_finite_extremes(x, n, &stage[0], &stage[EXT_LANES]);
}

static void scale_floats(float *p, float f, int64_t n)
{
#ifdef HAVE_X86
    if (op_isa_level() >= 2) {
        scale_avx512(p, f, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) p[i] *= f;
}

/* pack_conv_b, then row k of each sliver times its input channel's scale
 * for the image its columns belong to: the squeeze-excitation Mul folded
 * into the next conv costs one pass over a block in L1 instead of a pass
 * over the whole activation in memory.  Zero padding stays zero. */
static void pack_conv_b_scaled(void *arg, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float *dst,
                               float *lanes)
{
    const engine_b *e = arg;
    const conv_geom *g = e->g;
    pack_conv_b(arg, k0, kc, j0, nc, nr, dst, NULL);
    /* Calibration: the scaled input is the folded Mul's output, which is
     * never stored; a pointwise conv packs each of its values (some more
     * than once, which extremes do not mind), and nothing else. */
    float *in = e->gather_in && lanes ? lanes + EXT_IN * EXT_STAGE_FLOATS : NULL;
    const int64_t P = g->out_sz, ksz = g->k_sz;
    for (int64_t s = 0; s < nc; s += nr, dst += nr * kc) {
        int64_t img = (j0 + s) / P, valid = nc - s < nr ? nc - s : nr;
        /* Columns [0, split) are image img's, the rest the next one's
         * (conv_engine: a sliver spans at most two images). */
        int64_t split = P - (j0 + s) % P;
        if (split > valid) split = valid;
        for (int64_t k = 0; k < kc; k++) {
            float *d = dst + k * nr;
            int64_t ch = (k0 + k) / ksz;
            scale_floats(d, e->scale[img * g->c + ch], split);
            if (split < valid) scale_floats(d + split, e->scale[(img + 1) * g->c + ch], valid - split);
            if (in && valid < nr) fold_finite(in, d, valid);   /* the zero columns past nc left out */
        }
        if (in && valid == nr) fold_finite(in, dst, kc * nr);   /* the sliver at once */
    }
}

/* Pads channels [c0, c1) of all images (index n * C + ch) into base. */
typedef struct engine_pad {
    const conv_geom *g;
    const padded *pad;
    const float *x;
    float *dst;
} engine_pad;

static void engine_pad_task(void *arg, int64_t c0, int64_t c1, int tid)
{
    const engine_pad *p = arg;
    for (int64_t ch = c0; ch < c1; ch++)
        padded_fill(p->g, p->pad, p->x + ch * p->g->in_sz, p->dst + ch * p->pad->chan_sz);
}

/* c->epi as the GEMM kernels' epilogue, with the bias (conv_engine builds
 * the same inline). */
static sgemm_epi engine_epi(const op_ctx *c, const float *bias)
{
    sgemm_epi ep = {.bias = bias};
    if (c->epi) {
        ep.res = c->epi->residual ? c->epi->residual->data : NULL;
        if (c->epi->act == OP_ACT_CLAMP) {
            ep.clamp = 1;
            ep.lo = c->epi->lo;
            ep.hi = c->epi->hi;
        } else if (c->epi->act == OP_ACT_SILU) {
            ep.silu = 1;
        }
    }
    return ep;
}

/* Channels [c0, c1) of all images (index n * C + ch) into the plain
 * zero-padded layout of `padded` with W stride 1 (what conv_implicit
 * reads), in one pass: each padded row is written once, its borders
 * zeroed and its inside copied, rather than the whole channel cleared
 * first and then overwritten (padded_fill), which doubled the writes of
 * a pass that costs a few percent of a wide conv. */
static void implicit_pad_task(void *arg, int64_t c0, int64_t c1, int tid)
{
    const engine_pad *p = arg;
    const conv_geom *g = p->g;
    const int64_t wq = p->pad->wq, pd0 = p->pad->pd[0], pd1 = p->pad->pd[1], in_w = g->in[2];
    /* Padded columns [lo, hi) hold input columns [lo - pb, hi - pb). */
    int64_t lo = g->pb[2] > 0 ? g->pb[2] : 0, hi = in_w + g->pb[2] < wq ? in_w + g->pb[2] : wq;
    if (hi < lo) hi = lo;
    for (int64_t ch = c0; ch < c1; ch++) {
        const float *xc = p->x + ch * g->in_sz;
        float *dst = p->dst + ch * p->pad->chan_sz;
        for (int64_t dp = 0; dp < pd0; dp++)
            for (int64_t hp = 0; hp < pd1; hp++) {
                int64_t d = dp - g->pb[0], h = hp - g->pb[1];
                float *row = dst + (dp * pd1 + hp) * wq;
                if (d < 0 || d >= g->in[0] || h < 0 || h >= g->in[1] || hi == lo) {
                    memset(row, 0, sizeof(float) * (size_t)wq);
                    continue;
                }
                for (int64_t i = 0; i < lo; i++) row[i] = 0.0f;
                copy_floats(row + lo, xc + (d * g->in[1] + h) * in_w + (lo - g->pb[2]), hi - lo);
                for (int64_t i = hi; i < wq; i++) row[i] = 0.0f;
            }
    }
}

/* Conv through conv_direct.c's kernel (weights packed by conv_prepare).
 * The kernel steps 1 or 2 input columns per output, so a W stride of 1
 * or 2 needs no phase split: an unpadded conv reads X as it stands, a
 * padded one a zero-padded copy (`padded` of the geometry with W stride
 * 1, the same extent), and wider strides take the phase-split copy with
 * step 1.  QK_UNKNOWN when it does not apply, else QK_OK or an error. */
static int conv_implicit(op_ctx *c, const conv_geom *g, const conv_state *st, const float *x,
                         const float *bias, float *y)
{
    const int64_t K = st->k, rows = g->out[0] * g->out[1];
    int unpadded = 1;
    for (int a = 0; a < SP; a++)
        if (g->pb[a] != 0 || g->pe[a] != 0) unpadded = 0;
    int64_t *roff = op_scratch(1, sizeof(int64_t) * (size_t)(K + rows));
    if (!roff) return op_fail(c, QK_ENOMEM, "out of memory");
    int64_t *row_off = roff + K;
    convd_args a = {.n = g->n, .roff = roff, .row_off = row_off, .rows = rows, .width = g->out[2],
                    .plane = g->out_sz, .y = y, .step = g->str[2] <= 2 ? g->str[2] : 1};
    if (unpadded && g->str[2] <= 2) {
        const int64_t H = g->in[1], W = g->in[2];
        int64_t r = 0;
        for (int64_t ci = 0; ci < g->c; ci++)
            for (int64_t kd = 0; kd < g->k[0]; kd++)
                for (int64_t kh = 0; kh < g->k[1]; kh++)
                    for (int64_t kw = 0; kw < g->k[2]; kw++)
                        roff[r++] = ci * g->in_sz + (kd * g->dil[0] * H + kh * g->dil[1]) * W + kw * g->dil[2];
        for (int64_t od = 0; od < g->out[0]; od++)
            for (int64_t oh = 0; oh < g->out[1]; oh++)
                row_off[od * g->out[1] + oh] = (od * g->str[0] * H + oh * g->str[1]) * W;
        a.x = x;
        a.img_stride = g->c * g->in_sz;
    } else {
        conv_geom gp = *g;
        if (g->str[2] <= 2) {
            gp.str[2] = 1;
            gp.out[2] = (g->out[2] - 1) * g->str[2] + 1;
        }
        padded pad;
        padded_init(&gp, &pad);
        size_t floats = (size_t)(g->n * g->c * pad.chan_sz);
        float *xpad = op_scratch(0, sizeof(float) * floats + 64);
        if (!xpad)
            return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of padded input", sizeof(float) * floats);
        engine_pad ep = {&gp, &pad, x, xpad};
        tp_parallel_for(c->pool, g->n * g->c, 16384 / (pad.chan_sz + 1) + 1,
                        g->str[2] <= 2 ? implicit_pad_task : engine_pad_task, &ep);
        int64_t r = 0;
        for (int64_t ci = 0; ci < g->c; ci++)
            for (int64_t kd = 0; kd < g->k[0]; kd++)
                for (int64_t kh = 0; kh < g->k[1]; kh++)
                    for (int64_t kw = 0; kw < g->k[2]; kw++) roff[r++] = padded_tap(&gp, &pad, ci, kd, kh, kw);
        for (int64_t od = 0; od < g->out[0]; od++)
            for (int64_t oh = 0; oh < g->out[1]; oh++) row_off[od * g->out[1] + oh] = padded_row(&gp, &pad, od, oh);
        a.x = xpad;
        a.img_stride = g->c * pad.chan_sz;
    }
    sgemm_epi ep = engine_epi(c, bias);
    ep.ext = c->ext;
    ep.ext_stages = c->ext_stages;
    a.ep = &ep;
    if (convd_run(st->dw, &a, c->pool)) return QK_UNKNOWN;
    c->ext_gathered = c->ext != NULL;
    return QK_OK;
}

/* Output tiles (2x2, over the batch) from which conv_winograd runs: with
 * fewer, its transformed weights (16/9 of the direct kernel's) are read
 * for too little work.  ResNet18's 7x7 layer (16 tiles an image) at batch
 * 1 on 2 threads took 1.2-1.5 ms there against 0.94-1.0 ms direct. */
#define WINOGRAD_MIN_TILES 64

/* Whether conv_winograd runs this conv: a 2-D 3x3 stride-1 undilated
 * conv whose weights were transformed for it, over enough tiles (any
 * number with QK_CONV_WINOGRAD=1, for the tests). */
static int winograd_fits(const conv_geom *g, const conv_state *st)
{
    if (!st->wg || g->rank != 2 || g->group != 1 || convw_channels(st->wg) != g->c || convw_rows(st->wg) != g->m)
        return 0;
    for (int a = 1; a < SP; a++)
        if (g->k[a] != 3 || g->str[a] != 1 || g->dil[a] != 1) return 0;
    const char *env = getenv("QK_CONV_WINOGRAD");
    int64_t tiles = g->n * ((g->out[1] + 1) / 2) * ((g->out[2] + 1) / 2);
    return tiles >= WINOGRAD_MIN_TILES || (env && !strcmp(env, "1"));
}

/* Conv through conv_winograd.c; QK_UNKNOWN when it does not apply. */
static int conv_winograd(op_ctx *c, const conv_geom *g, const conv_state *st, const float *x, const float *bias,
                         float *y)
{
    convw_args a = {.x = x, .n = g->n, .h = g->in[1], .w = g->in[2], .oh = g->out[1], .ow = g->out[2],
                    .pt = g->pb[1], .pl = g->pb[2], .y = y};
    sgemm_epi ep = engine_epi(c, bias);
    ep.ext = c->ext;
    ep.ext_stages = c->ext_stages;
    a.ep = &ep;
    int rc = convw_run(st->wg, &a, c->pool);
    if (rc == -2) return op_fail(c, QK_ENOMEM, "out of memory for the Winograd tiles");
    if (rc) return QK_UNKNOWN;
    c->ext_gathered = c->ext != NULL;
    return QK_OK;
}

/* Runs the engine; QK_UNKNOWN when it does not apply (the caller takes
 * another path), else QK_OK or an error. */
static int conv_engine(op_ctx *c, const conv_geom *g, const conv_state *st, const float *x,
                       const float *bias, float *y, const float *scale)
{
    const int nr = sgemm_pa_nr(st->pa);
    const int64_t P = g->out_sz, K = st->k;
    /* A tile of nr columns may span two images, not three. */
    if (g->n > 1 && P < nr) return QK_UNKNOWN;
    engine_b e = {.g = g, .scale = scale};
    e.pointwise = 1;
    for (int a = 0; a < SP; a++)
        if (g->k[a] != 1 || g->str[a] != 1 || g->pb[a] != 0 || g->pe[a] != 0) e.pointwise = 0;
    int64_t *roff = op_scratch(1, sizeof(int64_t) * (size_t)K);
    if (!roff) return op_fail(c, QK_ENOMEM, "out of memory");
    if (e.pointwise) {
        for (int64_t k = 0; k < K; k++) roff[k] = k * g->in_sz;
        e.base = x;
        e.img_stride = g->c * g->in_sz;
    } else {
        padded_init(g, &e.pad);
        size_t floats = (size_t)(g->n * g->c * e.pad.chan_sz);
        float *xpad = op_scratch(0, sizeof(float) * floats + 64);
        if (!xpad)
            return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of padded input", sizeof(float) * floats);
        engine_pad ep = {g, &e.pad, x, xpad};
        tp_parallel_for(c->pool, g->n * g->c, 16384 / (e.pad.chan_sz + 1) + 1, engine_pad_task, &ep);
        int64_t r = 0;
        for (int64_t ci = 0; ci < g->c; ci++)
            for (int64_t kd = 0; kd < g->k[0]; kd++)
                for (int64_t kh = 0; kh < g->k[1]; kh++)
                    for (int64_t kw = 0; kw < g->k[2]; kw++) roff[r++] = padded_tap(g, &e.pad, ci, kd, kh, kw);
        e.base = xpad;
        e.img_stride = g->c * e.pad.chan_sz;
    }
    e.roff = roff;
    e.gather_in = scale && e.pointwise && c->ext && (c->ext_stages & 1u << EXT_IN);
    sgemm_epi ep = {.bias = bias};
    if (c->epi) {
        ep.res = c->epi->residual ? c->epi->residual->data : NULL;
        if (c->epi->act == OP_ACT_CLAMP) {
            ep.clamp = 1;
            ep.lo = c->epi->lo;
            ep.hi = c->epi->hi;
        } else if (c->epi->act == OP_ACT_SILU) {
            ep.silu = 1;
        }
    }
    ep.ext = c->ext;
    ep.ext_stages = c->ext_stages;
    if (sgemm_packed(st->pa, g->n * P, scale ? pack_conv_b_scaled : pack_conv_b, &e, y, P, P, g->m * P, &ep,
                     c->pool))
        return QK_UNKNOWN;
    c->ext_gathered = c->ext != NULL;
    return QK_OK;
}

/* Epilogue after the fact for the paths without one inside. */
typedef struct epi_job {
    const op_epilogue *epi;
    float *y;
    const float *res;
    int64_t plane;
} epi_job;

static void epi_task(void *arg, int64_t p0, int64_t p1, int tid)
{
    const epi_job *j = arg;
    for (int64_t p = p0; p < p1; p++)
        op_apply_epilogue(j->epi, j->y + p * j->plane, j->res ? j->res + p * j->plane : NULL, j->plane);
}

static int conv_run_plain(op_ctx *c);
static int conv_run(op_ctx *c);

/* A folded squeeze-excitation scale (c->in_scale) on a path other than
 * the engine's: the scaled input is made in scratch, then the conv runs
 * on it as usual. */
static int conv_run_scaled_input(op_ctx *c, const conv_geom *g)
{
    const xt *x = c->in[0];
    float *xs = op_scratch(2, sizeof(float) * (size_t)(g->n * g->c * g->in_sz) + 1);
    if (!xs) return op_fail(c, QK_ENOMEM, "out of memory");
    const float *xd = x->data, *sd = c->in_scale->data;
    for (int64_t p = 0; p < g->n * g->c; p++)
        for (int64_t i = 0; i < g->in_sz; i++) xs[p * g->in_sz + i] = xd[p * g->in_sz + i] * sd[p];
    xt xt2 = *x;
    xt2.data = xs;
    const xt *ins[3];
    for (int i = 0; i < c->n_in && i < 3; i++) ins[i] = c->in[i];
    ins[0] = &xt2;
    op_ctx c2 = *c;
    c2.in = ins;
    c2.n_in = c->n_in < 3 ? c->n_in : 3;
    c2.in_scale = NULL;
    return conv_run(&c2);
}

static int conv_run(op_ctx *c)
{
    conv_geom g;
    int rc = check_run(c, 0, &g);
    if (rc) return rc;
    xt *yt = c->out[0];
    if (xt_numel(yt) == 0) return QK_OK;
    const conv_state *st = c->state;
    const float *scale = c->in_scale ? c->in_scale->data : NULL;
    /* One output position at batch 1 (squeeze-excitation convs on 1x1
     * maps) is a matrix-vector product: the engine's tiles would be one
     * column wide, so the plain path's sgemm, which takes it as one, runs. */
    int gemv = g.n == 1 && g.out_sz == 1 && g.in_sz == 1 && g.k_sz == 1 && !scale;
    if (st && !gemv && st->w == c->in[1]->data && g.group == 1 && st->m == g.m && st->k == g.cg * g.k_sz) {
        const float *bias = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL;
        /* The direct kernel cannot scale its input rows: a folded
         * excitation scale goes through a scaled copy (below). */
        if (!scale && winograd_fits(&g, st)) rc = conv_winograd(c, &g, st, c->in[0]->data, bias, yt->data);
        else if (st->dw) rc = scale ? QK_UNKNOWN : conv_implicit(c, &g, st, c->in[0]->data, bias, yt->data);
        else rc = conv_engine(c, &g, st, c->in[0]->data, bias, yt->data, scale);
        if (rc != QK_UNKNOWN) return rc;
    }
    if (scale) return conv_run_scaled_input(c, &g);
    int direct = g.cg * g.k_sz <= MAX_TAPS && (g.cg == 1 || (g.group > 1 && g.cg <= DIRECT_MAX_CG));
    if ((rc = conv_run_plain(c)) || !c->epi || direct) return rc;
    epi_job ej = {c->epi, yt->data, c->epi->residual ? c->epi->residual->data : NULL, g.out_sz};
    tp_parallel_for(c->pool, g.n * g.m, 16384 / (g.out_sz + 1) + 1, epi_task, &ej);
    return QK_OK;
}

/* op_prep.ext_stages: the stages whose extremes conv_run gathers for c,
 * following its choice of path -- the packed engine (what its kernel
 * gathers) and the depthwise kernels (their output, and SiLU's values);
 * the other paths gather none. */
unsigned conv_ext_stages(op_ctx *c)
{
    conv_geom g;
    if (geom_make(c, 0, &g) != QK_OK || !c->out[0] || xt_numel(c->out[0]) == 0) return 0;
    for (int i = 0; i < c->n_in && i < 3; i++)
        if (c->in[i] && c->in[i]->dtype != DT_FLOAT) return 0;
    const op_epilogue *epi = c->epi;
    const conv_state *st = c->state;
    const float *scale = c->in_scale ? c->in_scale->data : NULL;
    int gemv = g.n == 1 && g.out_sz == 1 && g.in_sz == 1 && g.k_sz == 1 && !scale;
    if (st && !gemv && st->w == c->in[1]->data && g.group == 1 && st->m == g.m && st->k == g.cg * g.k_sz) {
        /* conv_winograd.c's and conv_direct.c's kernels fold as they
         * store, like the engine's tile. */
        if (!scale && winograd_fits(&g, st)) return (1u << EXT_STAGES) - 1 - (1u << EXT_IN);
        if (st->dw) return scale ? 0 : (1u << EXT_STAGES) - 1 - (1u << EXT_IN);
        if (g.n > 1 && g.out_sz < sgemm_pa_nr(st->pa)) return 0;   /* the plain paths */
        int pointwise = 1;
        for (int a = 0; a < SP; a++)
            if (g.k[a] != 1 || g.str[a] != 1 || g.pb[a] != 0 || g.pe[a] != 0) pointwise = 0;
        return sgemm_ext_stages(st->pa) | (scale && pointwise ? 1u << EXT_IN : 0);
    }
    if (scale) return 0;
    int silu = epi && epi->act == OP_ACT_SILU, res = epi && epi->residual;
    unsigned own = 1u << EXT_OUT | 1u << EXT_HEAD | (silu ? 1u << EXT_SIG : 0);
    if (dws_ok(&g, epi)) return own;
    if (dw_fast_ok(&g) && !res) return own;
    return 0;
}

/* The paths without packed weights; conv_direct applies c->epi itself,
 * the others leave it to conv_run. */
static int conv_run_plain(op_ctx *c)
{
    conv_geom g;
    int rc = check_run(c, 0, &g);
    if (rc) return rc;
    xt *yt = c->out[0];
    conv_job j = {.g = &g, .x = c->in[0]->data, .w = c->in[1]->data,
                  .bias = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL, .y = yt->data};
    int nt = tp_nthreads(c->pool);

    if (dws_ok(&g, c->epi)) return conv_depthwise_small(c, &g, j.x, j.w, j.bias, j.y);
    if (dw_fast_ok(&g)) return conv_depthwise(c, &g, j.x, j.w, j.bias, j.y);
    if (g.cg * g.k_sz <= MAX_TAPS && (g.cg == 1 || (g.group > 1 && g.cg <= DIRECT_MAX_CG)))
        return conv_direct(c, &g, j.x, j.w, j.bias, j.y);

    int64_t rows = g.cg * g.k_sz;   /* GEMM K */
    if (rows == 0) {   /* no input channels: the bias alone */
        tp_parallel_for(c->pool, g.n * g.m, 1, bias_task, &j);
        return QK_OK;
    }
    int pointwise = 1;
    for (int a = 0; a < SP; a++)
        if (g.k[a] != 1 || g.str[a] != 1 || g.pb[a] != 0 || g.pe[a] != 0) pointwise = 0;
    if (g.group == 1 && g.n > 1 && g.out_sz < FOLD_MAX_POS &&
        2 * rows * g.out_sz <= FOLD_MAX_FLOATS) {
        padded_init(&g, &j.pad);
        if (!pointwise && !(j.tap_off = tap_table(&g, &j.pad)))
            return op_fail(c, QK_ENOMEM, "out of memory");
        rc = conv_folded(c, &j, pointwise);
        free(j.tap_off);
        return rc;
    }
    if (pointwise) {
        /* The input is the GEMM's B as it stands. */
        float beta = 0.0f;
        if (j.bias) {
            tp_parallel_for(c->pool, g.n * g.m, 1, bias_task, &j);
            beta = 1.0f;
        }
        for (int64_t n = 0; n < g.n; n++)
            for (int64_t gr = 0; gr < g.group; gr++)
                sgemm(0, 0, g.mg, g.out_sz, rows, 1.0f, j.w + gr * g.mg * rows, rows,
                      j.x + (n * g.c + gr * g.cg) * g.in_sz, g.out_sz, beta,
                      j.y + (n * g.m + gr * g.mg) * g.out_sz, g.out_sz, c->pool);
        return QK_OK;
    }

    /* Large im2col matrices are split into chunks of output positions whose
     * block fits L2; each thread builds and multiplies its own chunks, in
     * one parallel pass per image.  Chunk counts are rounded to a multiple
     * of the threads and chunk widths to whole GEMM tiles.  Small matrices,
     * or too few chunks to go around (deep layers: few positions, long K),
     * are built whole, and sgemm threads the product. */
    int64_t chunk = CHUNK_BYTES / (int64_t)sizeof(float) / (rows > 0 ? rows : 1);
    if (chunk < CHUNK_MIN) chunk = CHUNK_MIN;
    int64_t n_chunks = (g.out_sz + chunk - 1) / chunk;
    if (n_chunks < 4 * (int64_t)nt) n_chunks = (n_chunks + nt - 1) / nt * nt;
    j.chunk = ((g.out_sz + n_chunks - 1) / n_chunks + 31) / 32 * 32;
    j.n_chunks = (g.out_sz + j.chunk - 1) / j.chunk;
    int chunked = rows * g.out_sz > 2 * CHUNK_BYTES / (int64_t)sizeof(float) &&
                  g.group * j.n_chunks >= nt;
    padded_init(&g, &j.pad);
    size_t pad_floats = (size_t)(g.c * j.pad.chan_sz);
    j.col_per_thread = chunked ? (size_t)(rows * j.chunk) : (size_t)(rows * g.out_sz);
    size_t col_floats = chunked ? j.col_per_thread * (size_t)nt : j.col_per_thread;
    j.xpad = malloc(sizeof(float) * (pad_floats + col_floats) + 1);
    j.tap_off = tap_table(&g, &j.pad);
    if (!j.xpad || !j.tap_off) {
        free(j.xpad);
        free(j.tap_off);
        return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of im2col buffers",
                       sizeof(float) * (pad_floats + col_floats) + sizeof(int64_t) * (size_t)rows);
    }
    j.col = j.xpad + pad_floats;
    float *xpad = j.xpad;
    if (j.bias && !chunked) tp_parallel_for(c->pool, g.n * g.m, 1, bias_task, &j);
    for (int64_t n = 0; n < g.n; n++) {
        j.n = n;
        j.xpad = xpad;
        /* ~64 KB of padded input per task keeps the pool's overhead small. */
        tp_parallel_for(c->pool, g.c, 16384 / (j.pad.chan_sz + 1) + 1, pad_task, &j);
        if (chunked) {
            tp_parallel_for(c->pool, g.group * j.n_chunks, 1, chunk_task, &j);
            continue;
        }
        for (int64_t gr = 0; gr < g.group; gr++) {
            j.xpad = xpad + gr * g.cg * j.pad.chan_sz;
            /* ~32 KB of output per task, likewise. */
            tp_parallel_for(c->pool, rows, 8192 / (g.out_sz + 1) + 1, im2col_task, &j);
            sgemm(0, 0, g.mg, g.out_sz, rows, 1.0f, j.w + gr * g.mg * rows, rows, j.col, g.out_sz,
                  j.bias ? 1.0f : 0.0f, j.y + (n * g.m + gr * g.mg) * g.out_sz, g.out_sz, c->pool);
        }
    }
    free(xpad);
    free(j.tap_off);
    return QK_OK;
}

/* ---------------------------------------------------------- ConvTranspose */

/* col2im for output channels [m0, m1) of one (image, group): adds rows
 * (m, kd, kh, kw) of col (each over the input positions) into the output
 * positions i*s + k*d - pad that fall inside the output. */
static void col2im_task(void *arg, int64_t m0, int64_t m1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t m = m0; m < m1; m++) {
        float *ym = j->y + m * g->out_sz;
        for (int64_t rem = 0; rem < g->k_sz; rem++) {
            int64_t kd = rem / (g->k[1] * g->k[2]), kh = rem / g->k[2] % g->k[1], kw = rem % g->k[2];
            const float *src = j->col + (m * g->k_sz + rem) * g->in_sz;
            /* Along W: output ow = iw*s + offw must be in [0, out). */
            int64_t offw = kw * g->dil[2] - g->pb[2];
            int64_t lo = offw >= 0 ? 0 : (-offw + g->str[2] - 1) / g->str[2];
            int64_t hi = g->out[2] - 1 - offw < 0 ? 0 : (g->out[2] - 1 - offw) / g->str[2] + 1;
            if (hi > g->in[2]) hi = g->in[2];
            if (lo >= hi) continue;
            for (int64_t id = 0; id < g->in[0]; id++) {
                int64_t od = id * g->str[0] + kd * g->dil[0] - g->pb[0];
                if (od < 0 || od >= g->out[0]) continue;
                for (int64_t ih = 0; ih < g->in[1]; ih++) {
                    int64_t oh = ih * g->str[1] + kh * g->dil[1] - g->pb[1];
                    if (oh < 0 || oh >= g->out[1]) continue;
                    const float *s = src + (id * g->in[1] + ih) * g->in[2];
                    float *yr = ym + (od * g->out[1] + oh) * g->out[2];
                    axpy_scatter(yr + lo * g->str[2] + offw, g->str[2], s + lo, hi - lo);
                }
            }
        }
    }
}

static int conv_transpose_run(op_ctx *c)
{
    conv_geom g;
    int rc = check_run(c, 1, &g);
    if (rc) return rc;
    xt *yt = c->out[0];
    if (xt_numel(yt) == 0) return QK_OK;
    conv_job j = {.g = &g, .x = c->in[0]->data, .w = c->in[1]->data,
                  .bias = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL, .y = yt->data};
    tp_parallel_for(c->pool, g.n * g.m, 1, bias_task, &j);
    int64_t rows = g.mg * g.k_sz;
    j.col = malloc(sizeof(float) * (size_t)(rows * g.in_sz) + 1);
    if (!j.col)
        return op_fail(c, QK_ENOMEM, "cannot allocate %lld bytes of col2im buffer",
                       (long long)(sizeof(float) * (size_t)(rows * g.in_sz)));
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t gr = 0; gr < g.group; gr++) {
            const float *xg = j.x + (n * g.c + gr * g.cg) * g.in_sz;
            const float *wg = j.w + gr * g.cg * rows;
            /* col [mg*k, in] = W_g^T, with W_g stored [cg, mg*k]. */
            sgemm(1, 0, rows, g.in_sz, g.cg, 1.0f, wg, rows, xg, g.in_sz, 0.0f, j.col, g.in_sz,
                  c->pool);
            conv_job jj = j;
            jj.y = j.y + (n * g.m + gr * g.mg) * g.out_sz;
            tp_parallel_for(c->pool, g.mg, 1, col2im_task, &jj);
        }
    free(j.col);
    return QK_OK;
}

const op_def ops_conv[] = {
    {"Conv", conv_infer, conv_run},
    {"ConvTranspose", conv_transpose_infer, conv_transpose_run},
};
const int ops_conv_count = sizeof ops_conv / sizeof ops_conv[0];
