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
 * Conv takes one of three paths:
 *  - im2col + GEMM, the general case: W_g [M/g, C/g*k] times the im2col
 *    matrix [C/g*k, out].  Large matrices are built and multiplied in
 *    chunks of output positions that fit L2, one chunk per task; small
 *    ones are built whole and sgemm threads the product.
 *  - 1x1 stride-1 unpadded convs skip im2col: the input is the matrix.
 *  - depthwise and narrow grouped convs (at most DIRECT_MAX_CG input
 *    channels per group) go direct: a GEMM would have a tiny K or M, while
 *    a padded copy of the group's channels and a vectorized sum over the
 *    taps per output row runs at a useful fraction of peak.
 *
 * ConvTranspose is the adjoint: col = W_g^T [M/g*k, C/g] times X_g
 * [C/g, in], then col2im scatters and adds col into the output. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "../sgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
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

/* Reads an optional int list attribute of exactly `want` entries into v, or
 * fills v with `def` when absent. */
static int read_ints(op_ctx *c, const char *name, int want, int64_t def, int64_t *v)
{
    const int64_t *a;
    int n = node_attr_ints(c->node, name, &a);
    if (n < 0) {
        for (int i = 0; i < want; i++) v[i] = def;
        return QK_OK;
    }
    if (n != want)
        return op_fail(c, QK_EINVAL, "attribute '%s' has %d values, expected %d", name, n, want);
    for (int i = 0; i < n; i++) v[i] = a[i];
    return QK_OK;
}

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
    if ((rc = read_ints(c, "strides", r, 1, str)) || (rc = read_ints(c, "dilations", r, 1, dil)) ||
        (rc = read_ints(c, "pads", 2 * r, 0, pads)))
        return rc;
    if (transpose && (rc = read_ints(c, "output_padding", r, 0, opad))) return rc;
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

/* Valid range [lo, hi) of output positions o along one axis for which the
 * input position o*s + off lies in [0, in). */
static void valid_range(int64_t off, int64_t s, int64_t in, int64_t out, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* The vector extensions the helpers below may use: 0 none, 1 AVX2+FMA,
 * 2 AVX-512F.  QK_SGEMM_ISA (see sgemm.c) caps it, which lets tests reach
 * the narrower code paths. */
static int isa_level(void)
{
    /* Racing first calls all compute the same value. */
    static atomic_int level = -1;
    int cached = atomic_load_explicit(&level, memory_order_relaxed);
    if (cached >= 0) return cached;
    int l = 0;
#ifdef HAVE_X86
    const char *isa = getenv("QK_SGEMM_ISA");
    int cap = !isa || !strcmp(isa, "avx512") ? 2 : !strcmp(isa, "avx2") ? 1 : 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = 1;
    if (l == 1 && __builtin_cpu_supports("avx512f")) l = 2;
    if (l > cap) l = cap;
#endif
    atomic_store_explicit(&level, l, memory_order_relaxed);
    return l;
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
        if (isa_level() >= 1) {
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
    if (isa_level() >= 2) {
        deinterleave2_avx512(src, even, odd, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        even[i] = src[2 * i];
        odd[i] = src[2 * i + 1];
    }
}

/* dst[i] = src[2i] for i in [0, n): im2col's stride-2 rows. */
#ifdef HAVE_X86
__attribute__((target("avx512f")))
static void take_even_avx512(const float *src, float *dst, int64_t n)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t i = 0;
    /* The second load reaches src[2i + 31], which must not pass the last
     * element read, src[2n - 2]: hence i + 16 < n. */
    for (; i + 16 < n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * i), ie,
                                                         _mm512_loadu_ps(src + 2 * i + 16)));
    for (; i < n; i++) dst[i] = src[2 * i];
}
#endif

static void take_even(const float *src, float *dst, int64_t n)
{
#ifdef HAVE_X86
    if (isa_level() >= 2) {
        take_even_avx512(src, dst, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) dst[i] = src[2 * i];
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
    if (isa_level() >= 1) {
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

typedef struct conv_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    float *y, *col;
    /* Chunked path: output positions per chunk, chunks per image-group,
     * floats of col per thread. */
    int64_t chunk, n_chunks;
    size_t col_per_thread;
} conv_job;

/* dst[i] = src[i] / 0 for i < n.  Feature-map rows are often short (8 to
 * 32 floats), where a libc call costs more than the work. */
static void copy_floats(float *dst, const float *src, int64_t n)
{
    if (n >= 32) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

static void zero_floats(float *dst, int64_t n)
{
    if (n >= 32) {
        memset(dst, 0, sizeof(float) * (size_t)n);
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
}

/* im2col of rows [r0, r1) and output positions [o0, o1) of one (image,
 * group) whose channels start at x: row r = (channel, kd, kh, kw); column
 * o - o0 of dst (row stride ld) = input under tap r for output position o;
 * padding reads as zero. */
static void im2col_block(const conv_geom *g, const float *x, int64_t r0, int64_t r1, int64_t o0,
                         int64_t o1, float *dst, int64_t ld)
{
    const int64_t OH = g->out[1], OW = g->out[2], sw = g->str[2];
    /* Output position o0 as (od, oh, ow), once: the walk below steps rows
     * without dividing. */
    const int64_t od0 = o0 / (OH * OW), oh0 = o0 / OW % OH, ow00 = o0 % OW;
    for (int64_t r = r0; r < r1; r++) {
        int64_t ch = r / g->k_sz, rem = r % g->k_sz;
        int64_t kd = rem / (g->k[1] * g->k[2]), kh = rem / g->k[2] % g->k[1], kw = rem % g->k[2];
        const float *xc = x + ch * g->in_sz;
        float *d = dst + (r - r0) * ld;
        int64_t offw = kw * g->dil[2] - g->pb[2], lo, hi;
        valid_range(offw, sw, g->in[2], OW, &lo, &hi);
        int64_t od = od0, oh = oh0, ow0 = ow00;
        for (int64_t o = o0; o < o1;) {
            int64_t ow1 = ow0 + (o1 - o) < OW ? ow0 + (o1 - o) : OW;
            int64_t id = od * g->str[0] + kd * g->dil[0] - g->pb[0];
            int64_t ih = oh * g->str[1] + kh * g->dil[1] - g->pb[1];
            float *out = d - ow0;   /* out[ow] for ow in [ow0, ow1) */
            if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1]) {
                zero_floats(out + ow0, ow1 - ow0);
            } else {
                const float *row = xc + (id * g->in[1] + ih) * g->in[2];
                int64_t l = lo > ow0 ? lo : ow0, h = hi < ow1 ? hi : ow1;
                if (h < l) h = l;
                zero_floats(out + ow0, l - ow0);
                if (sw == 1) {
                    copy_floats(out + l, row + l + offw, h - l);
                } else if (sw == 2) {
                    take_even(row + 2 * l + offw, out + l, h - l);
                } else {
                    const float *src = row + l * sw + offw;
                    for (int64_t ow = l; ow < h; ow++, src += sw) out[ow] = *src;
                }
                zero_floats(out + h, ow1 - h);
            }
            d += ow1 - ow0;
            o += ow1 - ow0;
            ow0 = 0;
            if (++oh == OH) {
                oh = 0;
                od++;
            }
        }
    }
}

/* Rows [r0, r1) of the whole im2col matrix of one (image, group). */
static void im2col_task(void *arg, int64_t r0, int64_t r1, int tid)
{
    const conv_job *j = arg;
    im2col_block(j->g, j->x, r0, r1, 0, j->g->out_sz, j->col + r0 * j->g->out_sz, j->g->out_sz);
}

/* One chunk of output positions of one (image, group): its im2col block
 * goes to this thread's buffer, small enough to stay in L2 for the GEMM
 * that follows at once, then the GEMM writes the chunk's columns of Y. */
static void chunk_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const conv_job *j = arg;
    const conv_geom *g = j->g;
    int64_t rows = g->cg * g->k_sz;
    float *col = j->col + (size_t)tid * j->col_per_thread;
    for (int64_t t = t0; t < t1; t++) {
        int64_t ng = t / j->n_chunks, ck = t % j->n_chunks;
        int64_t n = ng / g->group, gr = ng % g->group;
        int64_t o0 = ck * j->chunk, o1 = o0 + j->chunk < g->out_sz ? o0 + j->chunk : g->out_sz;
        int64_t w = o1 - o0;
        im2col_block(g, j->x + (n * g->c + gr * g->cg) * g->in_sz, 0, rows, o0, o1, col, w);
        float *yc = j->y + (n * g->m + gr * g->mg) * g->out_sz + o0;
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
                       float bias);

static void row_c(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias)
{
    for (int64_t o = 0; o < n; o++) y[o] = bias;
    for (int t = 0; t < nt; t++) {
        const float *s = src[t];
        float wt = w[t];
        for (int64_t o = 0; o < n; o++) y[o] += wt * s[o];
    }
}

#ifdef HAVE_X86
__attribute__((target("avx2,fma")))
static void row_avx2(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias)
{
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
        _mm256_storeu_ps(y + o, _mm256_add_ps(a0, a2));
        _mm256_storeu_ps(y + o + 8, _mm256_add_ps(a1, a3));
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
        _mm256_maskstore_ps(y + o, mask, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
}

__attribute__((target("avx512f")))
static void row_avx512(float *y, int64_t n, const float *const *src, const float *w, int nt, float bias)
{
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
        _mm512_storeu_ps(y + o, _mm512_add_ps(a0, a2));
        _mm512_storeu_ps(y + o + 16, _mm512_add_ps(a1, a3));
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
        _mm512_mask_storeu_ps(y + o, mask, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}
#endif

/* The widest row kernel the CPU has. */
static row_fn pick_row(void)
{
#ifdef HAVE_X86
    if (isa_level() >= 2) return row_avx512;
    if (isa_level() >= 1) return row_avx2;
#endif
    return row_c;
}

/* Taps of one output row: input channels of the group x kernel positions. */
#define MAX_TAPS 256
/* Grouped convs with at most this many input channels per group go direct. */
#define DIRECT_MAX_CG 8

/* The direct path works on a zero-padded copy of the group's input
 * channels, so the inner loops never test bounds.  Columns are also split
 * by phase (column % stride) so that a strided conv reads each tap's inputs
 * contiguously: padded column o*s + k*d lives in phase (k*d) % s at index
 * o + (k*d) / s. */
typedef struct direct_job {
    const conv_geom *g;
    const float *x, *w, *bias;
    float *y;
    int64_t mblk, nmb;          /* output channels per task; tasks per group */
    int64_t pd[SP];             /* padded extent per axis (exactly what the taps reach) */
    int64_t wq;                 /* columns per phase */
    int64_t phase_sz, chan_sz;  /* floats per phase and per channel */
    float *buf;                 /* per thread: cg * chan_sz floats, then tmp_sz */
    size_t per_thread, tmp_sz;
    int flat;                   /* 1-D/2-D with unit row stride: see direct_flat */
    int64_t tap_off[MAX_TAPS];  /* tap (ci, kd, kh, kw) -> offset from the row's base */
    row_fn row;
} direct_job;

/* Rows of output per call of the row kernel in flat mode: ~8 KB of output,
 * so the taps' overlapping input rows stay in L1. */
#define FLAT_CHUNK 2048

/* Writes channel xc's padded, phase-split copy into dst (chan_sz floats). */
static void direct_fill(const direct_job *j, const float *xc, float *dst)
{
    const conv_geom *g = j->g;
    int64_t sw = g->str[2], pb = g->pb[2], in_w = g->in[2];
    memset(dst, 0, sizeof(float) * (size_t)j->chan_sz);
    /* Input columns [w0, w1) land inside the padded row. */
    int64_t w0 = pb < 0 ? -pb : 0, w1 = j->pd[2] - pb < in_w ? j->pd[2] - pb : in_w;
    if (w1 <= w0) return;
    for (int64_t d = 0; d < g->in[0]; d++) {
        int64_t dp = d + g->pb[0];
        if (dp < 0 || dp >= j->pd[0]) continue;
        for (int64_t h = 0; h < g->in[1]; h++) {
            int64_t hp = h + g->pb[1];
            if (hp < 0 || hp >= j->pd[1]) continue;
            const float *src = xc + (d * g->in[1] + h) * in_w;
            float *row = dst + (dp * j->pd[1] + hp) * j->wq;
            if (sw == 1) {
                copy_floats(row + w0 + pb, src + w0, w1 - w0);
            } else if (sw == 2 && w0 == 0) {
                /* Even input columns go to phase pb & 1 from index pb / 2,
                 * odd ones to the other phase from (pb + 1) / 2. */
                float *ev = row + (pb & 1) * j->phase_sz + (pb >> 1);
                float *od = row + (1 - (pb & 1)) * j->phase_sz + ((pb + 1) >> 1);
                deinterleave2(src, ev, od, w1 / 2);
                if (w1 & 1) ev[w1 / 2] = src[w1 - 1];
            } else {
                for (int64_t w = w0; w < w1; w++) {
                    int64_t wp = w + pb;
                    row[(wp % sw) * j->phase_sz + wp / sw] = src[w];
                }
            }
        }
    }
}

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
    int64_t oh = g->out[1], ow = g->out[2], len = (oh - 1) * j->wq + ow;
    for (int64_t o = 0; o < len; o += FLAT_CHUNK) {
        const float *sh[MAX_TAPS];
        for (int t = 0; t < nt; t++) sh[t] = taps[t] + o;
        j->row(tmp + o, len - o < FLAT_CHUNK ? len - o : FLAT_CHUNK, sh, wm, nt, bias);
    }
    for (int64_t r = 0; r < oh; r++) memcpy(ym + r * ow, tmp + r * j->wq, sizeof(float) * (size_t)ow);
}

static void direct_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const direct_job *j = arg;
    const conv_geom *g = j->g;
    float *buf = j->buf + (size_t)tid * j->per_thread, *tmp = buf + g->cg * j->chan_sz;
    const float *taps[MAX_TAPS];
    int nt = (int)(g->cg * g->k_sz);
    int64_t built = -1;   /* (image, group) whose channels are in buf */
    for (int64_t t = t0; t < t1; t++) {
        int64_t ng = t / j->nmb, mb = t % j->nmb;
        int64_t n = ng / g->group, gr = ng % g->group;
        if (ng != built) {
            for (int64_t ci = 0; ci < g->cg; ci++)
                direct_fill(j, j->x + (n * g->c + gr * g->cg + ci) * g->in_sz, buf + ci * j->chan_sz);
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
                continue;
            }
            for (int64_t od = 0; od < g->out[0]; od++)
                for (int64_t oh = 0; oh < g->out[1]; oh++) {
                    const float *base = buf + (od * g->str[0] * j->pd[1] + oh * g->str[1]) * j->wq;
                    for (int t = 0; t < nt; t++) taps[t] = base + j->tap_off[t];
                    j->row(ym + (od * g->out[1] + oh) * g->out[2], g->out[2], taps, wm, nt, bias);
                }
        }
    }
}

/* Direct convolution when each group has few input channels (depthwise
 * and narrow grouped convs), where an im2col GEMM would have a tiny K or
 * M.  Returns QK_ENOMEM without side effects when the buffers are short. */
static int conv_direct(op_ctx *c, const conv_geom *g, const float *x, const float *w,
                       const float *bias, float *y)
{
    direct_job j = {.g = g, .x = x, .w = w, .bias = bias, .y = y, .row = pick_row()};
    for (int a = 0; a < SP; a++) j.pd[a] = (g->out[a] - 1) * g->str[a] + g->dil[a] * (g->k[a] - 1) + 1;
    j.wq = (j.pd[2] + g->str[2] - 1) / g->str[2];
    j.phase_sz = j.pd[0] * j.pd[1] * j.wq;
    j.chan_sz = j.phase_sz * g->str[2];
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
                for (int64_t kw = 0; kw < g->k[2]; kw++) {
                    int64_t cw = kw * g->dil[2];
                    j.tap_off[t++] = ci * j.chan_sz + (kd * g->dil[0] * j.pd[1] + kh * g->dil[1]) * j.wq +
                                     (cw % g->str[2]) * j.phase_sz + cw / g->str[2];
                }
    j.flat = g->out[0] == 1 && j.pd[0] == 1 && g->str[1] == 1;
    j.tmp_sz = j.flat ? (size_t)(g->out[1] * j.wq) : 0;
    j.per_thread = (size_t)(g->cg * j.chan_sz) + j.tmp_sz;
    j.buf = malloc(sizeof(float) * j.per_thread * (size_t)nt + 1);
    if (!j.buf)
        return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of padded input",
                       sizeof(float) * j.per_thread * (size_t)nt);
    tp_parallel_for(c->pool, ng * j.nmb, 1, direct_task, &j);
    free(j.buf);
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

static int conv_run(op_ctx *c)
{
    conv_geom g;
    int rc = check_run(c, 0, &g);
    if (rc) return rc;
    xt *yt = c->out[0];
    if (xt_numel(yt) == 0) return QK_OK;
    conv_job j = {.g = &g, .x = c->in[0]->data, .w = c->in[1]->data,
                  .bias = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL, .y = yt->data};
    int nt = tp_nthreads(c->pool);

    if (g.cg * g.k_sz <= MAX_TAPS && (g.cg == 1 || (g.group > 1 && g.cg <= DIRECT_MAX_CG)))
        return conv_direct(c, &g, j.x, j.w, j.bias, j.y);

    int pointwise = 1;
    for (int a = 0; a < SP; a++)
        if (g.k[a] != 1 || g.str[a] != 1 || g.pb[a] != 0 || g.pe[a] != 0) pointwise = 0;
    int64_t rows = g.cg * g.k_sz;   /* GEMM K */

    if (!pointwise) {
        /* Large im2col matrices are split into chunks of output positions
         * whose block fits L2; each thread builds and multiplies its own
         * chunks, in one parallel pass.  Chunk counts are rounded to a
         * multiple of the threads and chunk widths to whole GEMM tiles. */
        int64_t chunk = CHUNK_BYTES / (int64_t)sizeof(float) / (rows > 0 ? rows : 1);
        if (chunk < CHUNK_MIN) chunk = CHUNK_MIN;
        int64_t n_chunks = (g.out_sz + chunk - 1) / chunk;
        if (n_chunks < 4 * (int64_t)nt) n_chunks = (n_chunks + nt - 1) / nt * nt;
        chunk = ((g.out_sz + n_chunks - 1) / n_chunks + 31) / 32 * 32;
        j.chunk = chunk;
        j.n_chunks = (g.out_sz + chunk - 1) / chunk;
        int64_t tasks = g.n * g.group * j.n_chunks;
        if (rows * g.out_sz > 2 * CHUNK_BYTES / (int64_t)sizeof(float) && tasks >= nt) {
            j.col_per_thread = (size_t)(rows * chunk);
            j.col = malloc(sizeof(float) * j.col_per_thread * (size_t)nt + 1);
            if (!j.col)
                return op_fail(c, QK_ENOMEM, "cannot allocate %zu bytes of im2col buffer",
                               sizeof(float) * j.col_per_thread * (size_t)nt);
            tp_parallel_for(c->pool, tasks, 1, chunk_task, &j);
            free(j.col);
            return QK_OK;
        }
        /* Small matrices, or too few chunks to go around (deep layers: few
         * positions, long K): one full im2col, then GEMMs threaded inside. */
        j.col = malloc(sizeof(float) * (size_t)(rows * g.out_sz) + 1);
        if (!j.col)
            return op_fail(c, QK_ENOMEM, "cannot allocate %lld bytes of im2col buffer",
                           (long long)(sizeof(float) * (size_t)(rows * g.out_sz)));
    }
    /* The bias (or zero) goes in first so the GEMM accumulates onto it. */
    float beta = 0.0f;
    if (j.bias) {
        tp_parallel_for(c->pool, g.n * g.m, 1, bias_task, &j);
        beta = 1.0f;
    }
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t gr = 0; gr < g.group; gr++) {
            const float *xg = j.x + (n * g.c + gr * g.cg) * g.in_sz;
            const float *bmat = xg;
            if (!pointwise) {
                conv_job jj = j;
                jj.x = xg;
                /* ~32 KB of output per chunk keeps the pool's overhead small. */
                int64_t grain = 8192 / (g.out_sz + 1) + 1;
                tp_parallel_for(nt > 1 ? c->pool : NULL, rows, grain, im2col_task, &jj);
                bmat = j.col;
            }
            const float *wg = j.w + gr * g.mg * rows;
            float *yg = j.y + (n * g.m + gr * g.mg) * g.out_sz;
            sgemm(0, 0, g.mg, g.out_sz, rows, 1.0f, wg, rows, bmat, g.out_sz, beta, yg, g.out_sz,
                  c->pool);
        }
    free(j.col);
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
