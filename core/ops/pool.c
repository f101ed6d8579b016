/* This file implements the pooling kernels: MaxPool (with its optional
 * Indices output), AveragePool, GlobalMaxPool, GlobalAveragePool and LRN.
 *
 * The windowed pools share one geometry (pool_geom) used both by shape
 * inference and by the kernels, so the two can never disagree.  Spatial
 * ranks 1 to 3 are handled by padding the geometry to three dimensions with
 * leading size-1 axes: one triple loop serves 1-D, 2-D and 3-D pooling.
 * Work is split over the N*C planes, which are independent.
 *
 * The CNN cases have fast paths: float MaxPool over 1-D/2-D windows
 * without dilation or Indices goes row by row, a vertical max of the
 * window's input rows into a -inf-padded row buffer, then a horizontal max
 * over the taps with contiguous vector loads (stride 2 first splits the
 * buffer into even and odd columns).  GlobalAveragePool sums float planes
 * in double lanes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_X86 1
#endif

#define POOL_MAX_SPATIAL 3

/* Window geometry of a pool over N*C planes, padded to 3 spatial axes. */
typedef struct {
    int k;                    /* real spatial rank */
    int64_t planes;           /* N*C, -1 if unknown */
    int64_t in[3], out[3];    /* spatial sizes; out -1 when in is unknown */
    int64_t ker[3], str[3], dil[3], pb[3], pe[3];
} pool_geom;

/* Output size of one axis; the ceil_mode rule drops a last window that would
 * start inside the end padding, as the spec (and ORT, PyTorch) do. */
static int64_t out_size(int64_t in, int64_t dk, int64_t s, int64_t pb, int64_t pe, int ceil_mode)
{
    int64_t num = in + pb + pe - dk;
    if (num < 0) return -1;
    int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pb) o--;
    return o;
}

/* Fills g from x's shape and the node's attributes.  Unknown spatial input
 * sizes give unknown output sizes; the kernels only run with known shapes. */
static int pool_geom_make(op_ctx *c, const xt *x, pool_geom *g)
{
    if (x->rank < 3)
        return op_fail(c, QK_EINVAL, "input must have rank >= 3 (N, C, spatial...), got %d", x->rank);
    int k = x->rank - 2;
    if (k > POOL_MAX_SPATIAL)
        return op_fail(c, QK_ENOTSUP, "%d spatial dimensions (at most %d supported)", k, POOL_MAX_SPATIAL);
    int64_t ker[3], str[3], dil[3], pads[6];
    const int64_t *ks;
    int nk = node_attr_ints(c->node, "kernel_shape", &ks);
    if (nk < 0) return op_fail(c, QK_EINVAL, "missing attribute 'kernel_shape'");
    if (nk != k)
        return op_fail(c, QK_EINVAL, "kernel_shape has %d values for %d spatial dimensions", nk, k);
    for (int i = 0; i < k; i++) ker[i] = ks[i];
    int rc;
    if ((rc = op_attr_ints_exact(c, "strides", k, 1, str)) ||
        (rc = op_attr_ints_exact(c, "dilations", k, 1, dil)) ||
        (rc = op_attr_ints_exact(c, "pads", 2 * k, 0, pads)))
        return rc;
    int ceil_mode = (int)node_attr_int(c->node, "ceil_mode", 0);
    const char *ap = node_attr_str(c->node, "auto_pad", "NOTSET");
    int same = 0, valid = 0, lower = 0;
    if (!strcmp(ap, "SAME_UPPER")) same = 1;
    else if (!strcmp(ap, "SAME_LOWER")) same = lower = 1;
    else if (!strcmp(ap, "VALID")) valid = 1;
    else if (strcmp(ap, "NOTSET") && ap[0])
        return op_fail(c, QK_EINVAL, "unknown auto_pad '%s'", ap);

    g->k = k;
    g->planes = (x->dims[0] < 0 || x->dims[1] < 0) ? -1 : x->dims[0] * x->dims[1];
    int off = POOL_MAX_SPATIAL - k;
    for (int i = 0; i < POOL_MAX_SPATIAL; i++) {
        g->in[i] = g->out[i] = g->ker[i] = g->str[i] = g->dil[i] = 1;
        g->pb[i] = g->pe[i] = 0;
    }
    for (int i = 0; i < k; i++) {
        int j = off + i;
        if (ker[i] < 1 || str[i] < 1 || dil[i] < 1)
            return op_fail(c, QK_EINVAL, "kernel_shape, strides and dilations must be positive");
        if (!same && !valid && (pads[i] < 0 || pads[k + i] < 0))
            return op_fail(c, QK_EINVAL, "negative pads");
        int64_t in = x->dims[2 + i], dk = (ker[i] - 1) * dil[i] + 1;
        g->ker[j] = ker[i];
        g->str[j] = str[i];
        g->dil[j] = dil[i];
        g->in[j] = in;
        if (same) {
            if (in < 0) {
                g->out[j] = -1;
                continue;
            }
            int64_t o = (in + str[i] - 1) / str[i];
            int64_t total = (o - 1) * str[i] + dk - in;
            if (total < 0) total = 0;
            g->pb[j] = lower ? (total + 1) / 2 : total / 2;
            g->pe[j] = total - g->pb[j];
            g->out[j] = o;
            continue;
        }
        if (!valid) {
            g->pb[j] = pads[i];
            g->pe[j] = pads[k + i];
        }
        if (in < 0) {
            g->out[j] = -1;
            continue;
        }
        g->out[j] = out_size(in, dk, str[i], g->pb[j], g->pe[j], ceil_mode && !valid);
        if (g->out[j] < 1)
            return op_fail(c, QK_EINVAL, "window (kernel %lld, dilation %lld) larger than padded input %lld on spatial axis %d",
                           (long long)ker[i], (long long)dil[i], (long long)(in + g->pb[j] + g->pe[j]), i);
    }
    return QK_OK;
}

static void geom_out_shape(const pool_geom *g, const xt *x, xt *y, int dtype)
{
    y->dtype = dtype;
    y->rank = x->rank;
    y->dims[0] = x->dims[0];
    y->dims[1] = x->dims[1];
    for (int i = 0; i < g->k; i++) y->dims[2 + i] = g->out[POOL_MAX_SPATIAL - g->k + i];
}

/* Range [lo, hi) of kernel taps along one axis that land inside the input,
 * for output position o. */
static inline void taps(const pool_geom *g, int a, int64_t o, int64_t *start, int64_t *lo, int64_t *hi)
{
    int64_t s = o * g->str[a] - g->pb[a], d = g->dil[a];
    int64_t l = 0, h = g->ker[a];
    if (s < 0) l = (-s + d - 1) / d;
    int64_t last = g->in[a] - 1 - s;       /* largest offset still inside */
    if (last < 0) h = 0;
    else if (last / d + 1 < h) h = last / d + 1;
    if (l > h) l = h;
    *start = s;
    *lo = l;
    *hi = h;
}

/* The innermost axis's tap ranges, one {start, lo, hi} triple per output
 * column, computed once per run instead of per output (two divisions each).
 * Returns NULL when out of memory. */
static int64_t *taps_table(const pool_geom *g)
{
    int64_t *t = malloc((size_t)(3 * g->out[2] + 1) * sizeof *t);
    if (!t) return NULL;
    for (int64_t o = 0; o < g->out[2]; o++) taps(g, 2, o, &t[3 * o], &t[3 * o + 1], &t[3 * o + 2]);
    return t;
}

/* ---------------------------------------------------------------- MaxPool */

typedef struct {
    const pool_geom *g;
    const void *x;
    void *y;
    const int64_t *wt;        /* taps_table() */
    int64_t *ind;             /* NULL when Indices is not wanted */
    int64_t ist[3];           /* index strides (row- or column-major) */
    int dtype;
} maxpool_job;

/* One MaxPool plane loop per element type.  With Indices, ties keep the
 * first maximum, as numpy's argmax does for the reference outputs. */
#define MAXPOOL_FN(NAME, T, LOWEST)                                                      \
    static void NAME(void *arg, int64_t p0, int64_t p1, int tid)                         \
    {                                                                                    \
        (void)tid;                                                                       \
        const maxpool_job *j = arg;                                                      \
        const pool_geom *g = j->g;                                                       \
        int64_t isz = g->in[0] * g->in[1] * g->in[2];                                    \
        int64_t osz = g->out[0] * g->out[1] * g->out[2];                                 \
        for (int64_t p = p0; p < p1; p++) {                                              \
            const T *x = (const T *)j->x + p * isz;                                      \
            T *y = (T *)j->y + p * osz;                                                  \
            int64_t *ind = j->ind ? j->ind + p * osz : NULL;                             \
            for (int64_t od = 0; od < g->out[0]; od++) {                                 \
                int64_t sd, dl, dh;                                                      \
                taps(g, 0, od, &sd, &dl, &dh);                                           \
                for (int64_t oh = 0; oh < g->out[1]; oh++) {                             \
                    int64_t sh, hl, hh;                                                  \
                    taps(g, 1, oh, &sh, &hl, &hh);                                       \
                    for (int64_t ow = 0; ow < g->out[2]; ow++) {                         \
                        int64_t sw = j->wt[3 * ow], wl = j->wt[3 * ow + 1];              \
                        int64_t wh = j->wt[3 * ow + 2];                                  \
                        T best = LOWEST;                                                 \
                        int64_t bd = -1, bh = -1, bw = -1;                               \
                        if (!ind) {                                                      \
                            /* values only: a plain max the compiler can select */      \
                            for (int64_t kd = dl; kd < dh; kd++) {                       \
                                int64_t id = sd + kd * g->dil[0];                        \
                                for (int64_t kh = hl; kh < hh; kh++) {                   \
                                    const T *row = x + (id * g->in[1] + sh +             \
                                                        kh * g->dil[1]) * g->in[2];      \
                                    for (int64_t kw = wl; kw < wh; kw++) {               \
                                        T v = row[sw + kw * g->dil[2]];                  \
                                        best = v > best ? v : best;                      \
                                    }                                                    \
                                }                                                        \
                            }                                                            \
                            *y++ = best;                                                 \
                            continue;                                                    \
                        }                                                                \
                        for (int64_t kd = dl; kd < dh; kd++) {                           \
                            int64_t id = sd + kd * g->dil[0];                            \
                            for (int64_t kh = hl; kh < hh; kh++) {                       \
                                int64_t ih = sh + kh * g->dil[1];                        \
                                const T *row = x + (id * g->in[1] + ih) * g->in[2];      \
                                for (int64_t kw = wl; kw < wh; kw++) {                   \
                                    int64_t iw = sw + kw * g->dil[2];                    \
                                    if (row[iw] > best || bd < 0) {                      \
                                        best = row[iw];                                  \
                                        bd = id, bh = ih, bw = iw;                       \
                                    }                                                    \
                                }                                                        \
                            }                                                            \
                        }                                                                \
                        *y++ = best;                                                     \
                        *ind++ = bd < 0 ? -1 : p * isz + bd * j->ist[0] +                \
                                                   bh * j->ist[1] + bw * j->ist[2];      \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

MAXPOOL_FN(maxpool_f32, float, -INFINITY)
MAXPOOL_FN(maxpool_f64, double, -INFINITY)
MAXPOOL_FN(maxpool_u8, uint8_t, 0)
MAXPOOL_FN(maxpool_i8, int8_t, INT8_MIN)

static tp_fn maxpool_fn(int dtype)
{
    switch (dtype) {
    case DT_FLOAT: return maxpool_f32;
    case DT_DOUBLE: return maxpool_f64;
    case DT_UINT8: return maxpool_u8;
    case DT_INT8: return maxpool_i8;
    default: return NULL;
    }
}

/* Planes per task: enough window work per task to amortize the dispatch. */
static int64_t plane_grain(const pool_geom *g)
{
    int64_t work = g->out[0] * g->out[1] * g->out[2] * g->ker[0] * g->ker[1] * g->ker[2];
    int64_t grain = work > 0 ? 65536 / work : 1;
    return grain < 1 ? 1 : grain;
}


/* ------------------------------------------------- MaxPool, 2-D fast path */

/* Widest padded row the fast path takes (stack buffers). */
#define FAST_ROW 2048

/* d[i] = max(s[i], d[i]) for i < n, with maxps's operand order: a NaN in s
 * is skipped, as the scalar path's `v > best` does. */
#ifdef POOL_X86
__attribute__((target("avx512f")))
static void vmax_avx512(float *d, const float *s, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_max_ps(_mm512_loadu_ps(s + i), _mm512_loadu_ps(d + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(d + i, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, s + i), _mm512_maskz_loadu_ps(m, d + i)));
    }
}

__attribute__((target("avx2")))
static void vmax_avx2(float *d, const float *s, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_max_ps(_mm256_loadu_ps(s + i), _mm256_loadu_ps(d + i)));
    for (; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];
}
#endif

static void vmax(float *d, const float *s, int64_t n)
{
#ifdef POOL_X86
    int l = op_isa_level();
    if (l >= 2) { vmax_avx512(d, s, n); return; }
    if (l >= 1) { vmax_avx2(d, s, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) d[i] = s[i] > d[i] ? s[i] : d[i];
}

static void fill_neg_inf(float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] = -INFINITY;
}

#ifdef POOL_X86
/* y[ow] = max over kw < KW of row[2 ow + kw], 16 outputs at a time: the
 * 32 columns under a tap's outputs are loaded and the even ones kept with
 * one permute.  row must be readable (and -inf) 32 floats past the last
 * column the taps reach. */
__attribute__((target("avx512f")))
static void hmax_s2_avx512(float *y, const float *row, int64_t OW, int64_t KW)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int64_t ow = 0; ow < OW; ow += 16) {
        const float *r = row + 2 * ow;
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int64_t kw = 0; kw < KW; kw++) {
            __m512 v = _mm512_permutex2var_ps(_mm512_loadu_ps(r + kw), even, _mm512_loadu_ps(r + kw + 16));
            m = _mm512_max_ps(v, m);
        }
        int64_t n = OW - ow < 16 ? OW - ow : 16;
        if (n == 16) _mm512_storeu_ps(y + ow, m);
        else _mm512_mask_storeu_ps(y + ow, (__mmask16)((1u << n) - 1), m);
    }
}
#endif

/* True when maxpool_fast can run this pool. */
static int maxpool_fast_ok(const pool_geom *g, int dtype, int want_indices)
{
    if (dtype != DT_FLOAT || want_indices || g->ker[0] != 1 || g->str[0] != 1 || g->pb[0] || g->pe[0])
        return 0;
    for (int a = 0; a < 3; a++)
        if (g->dil[a] != 1) return 0;
    int64_t pw = (g->out[2] - 1) * g->str[2] + g->ker[2];
    return pw <= FAST_ROW && g->str[2] <= 2 && g->pb[2] < g->ker[2];
}

static void maxpool_fast(void *arg, int64_t p0, int64_t p1, int tid)
{
    const maxpool_job *j = arg;
    const pool_geom *g = j->g;
    float row[FAST_ROW + 32], ph[FAST_ROW];
    const int64_t IW = g->in[2], OW = g->out[2], KW = g->ker[2], S = g->str[2], PB = g->pb[2];
    const int64_t pw = (OW - 1) * S + KW;               /* padded columns the taps reach */
    const int64_t c0 = PB, c1 = PB + IW < pw ? PB + IW : pw;   /* input columns inside it */
    const int64_t isz = g->in[0] * g->in[1] * g->in[2], osz = g->out[0] * g->out[1] * g->out[2];
    for (int64_t p = p0; p < p1; p++)
        for (int64_t d = 0; d < g->out[0]; d++) {
            const float *x = (const float *)j->x + p * isz + d * g->in[1] * IW;
            float *y = (float *)j->y + p * osz + d * g->out[1] * OW;
            for (int64_t oh = 0; oh < g->out[1]; oh++, y += OW) {
                int64_t sh, hl, hh;
                taps(g, 1, oh, &sh, &hl, &hh);
                fill_neg_inf(row, c0);
                fill_neg_inf(row + c1, pw - c1);
                if (hl >= hh) {
                    fill_neg_inf(row + c0, c1 - c0);
                } else {
                    memcpy(row + c0, x + (sh + hl) * IW, sizeof(float) * (size_t)(c1 - c0));
                    for (int64_t kh = hl + 1; kh < hh; kh++) vmax(row + c0, x + (sh + kh) * IW, c1 - c0);
                }
                if (S == 1) {
                    memcpy(y, row, sizeof(float) * (size_t)OW);
                    for (int64_t kw = 1; kw < KW; kw++) vmax(y, row + kw, OW);
                    continue;
                }
#ifdef POOL_X86
                if (op_isa_level() >= 2) {
                    /* -inf past the end, for the whole-vector loads. */
                    fill_neg_inf(row + pw, 32);
                    hmax_s2_avx512(y, row, OW, KW);
                    continue;
                }
#endif
                /* Stride 2: even columns to ph[0..], odd to ph[half..]; tap
                 * kw of output ow is column 2ow + kw = phase kw & 1, index
                 * ow + kw / 2. */
                int64_t half = (pw + 1) / 2;
                for (int64_t i = 0; i < pw; i++) ph[(i & 1) * half + (i >> 1)] = row[i];
                memcpy(y, ph, sizeof(float) * (size_t)OW);
                for (int64_t kw = 1; kw < KW; kw++) vmax(y, ph + (kw & 1) * half + (kw >> 1), OW);
            }
        }
}

#ifdef POOL_X86
/* Lanes l in [0, n) with 0 <= base + l < W, as a mask of n <= 32 bits. */
static inline uint32_t lanes_inside(int64_t base, int64_t W, int n)
{
    int64_t lo = base < 0 ? -base : 0, hi = W - base < n ? W - base : n;
    if (hi <= lo) return 0;
    uint64_t bits = ((uint64_t)1 << hi) - 1;
    return (uint32_t)(bits & ~(((uint64_t)1 << lo) - 1));
}

/* The 3x3 stride-2 window (SqueezeNet's and ResNet's pools) straight from
 * the input rows, 16 outputs at a time: the vertical max of the window's
 * rows over the 34 columns under them (three vectors, -inf under masks
 * outside the plane), then the taps are the even columns, the odd ones and
 * the even ones shifted by one lane.  No row buffer and no second pass.
 * The input usually comes from L3 (a large conv output), and masked loads
 * do not train the hardware prefetcher: without the prefetches of the rows
 * MP_AHEAD output rows ahead this kernel ran 5x slower there. */
#define MP_AHEAD 4
__attribute__((target("avx512f")))
static void maxpool_k3s2_avx512(void *arg, int64_t p0, int64_t p1, int tid)
{
    const maxpool_job *j = arg;
    const pool_geom *g = j->g;
    const int64_t H = g->in[1], W = g->in[2], OH = g->out[1], OW = g->out[2], PT = g->pb[1], PL = g->pb[2];
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t p = p0; p < p1; p++) {
        const float *x = (const float *)j->x + p * H * W;
        float *y = (float *)j->y + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            for (int64_t r = 1; r < 3; r++) {
                int64_t ih = (oh + MP_AHEAD) * 2 - PT + r;
                /* Past the last row: the next plane's first rows. */
                for (int64_t c = 0; ih >= 0 && ih < H + 2 * MP_AHEAD + 1 && c < W; c += 16)
                    _mm_prefetch((const char *)(x + ih * W + c), _MM_HINT_T0);
            }
            int64_t ih0 = oh * 2 - PT, r0 = ih0 < 0 ? -ih0 : 0, r1 = H - ih0 < 3 ? H - ih0 : 3;
            for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
                int64_t base = ow0 * 2 - PL;
                uint32_t mab = lanes_inside(base, W, 32), mc = lanes_inside(base + 32, W, 1);
                __m512 a = ninf, b = ninf, cc = ninf;
                for (int64_t r = r0; r < r1; r++) {
                    const float *xr = x + (ih0 + r) * W + base;
                    a = _mm512_max_ps(a, _mm512_mask_loadu_ps(ninf, (__mmask16)mab, xr));
                    b = _mm512_max_ps(b, _mm512_mask_loadu_ps(ninf, (__mmask16)(mab >> 16), xr + 16));
                    cc = _mm512_max_ps(cc, _mm512_mask_loadu_ps(ninf, (__mmask16)mc, xr + 32));
                }
                __m512 e0 = _mm512_permutex2var_ps(a, ie, b), o1 = _mm512_permutex2var_ps(a, io, b);
                __m512 e2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cc), _mm512_castps_si512(e0), 1));
                __m512 m = _mm512_max_ps(_mm512_max_ps(e0, o1), e2);
                int64_t n = OW - ow0 < 16 ? OW - ow0 : 16;
                _mm512_mask_storeu_ps(y + oh * OW + ow0, (__mmask16)((1u << n) - 1), m);
            }
        }
    }
}
#endif

/* True when maxpool_k3s2_avx512 can run this pool (after maxpool_fast_ok). */
static int maxpool_k3s2_ok(const pool_geom *g)
{
    if (op_isa_level() < 2 || g->in[0] != 1 || g->ker[1] != 3 || g->ker[2] != 3 || g->str[1] != 2 || g->str[2] != 2)
        return 0;
    /* Every window has a row and a column inside the input. */
    return g->pb[1] < 3 && g->pb[2] < 3 && g->in[2] < (1 << 30);
}

static int maxpool_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (!maxpool_fn(x->dtype))
        return op_fail(c, QK_ENOTSUP, "input type %s (float, double, int8, uint8 supported)", dtype_name(x->dtype));
    if (node_attr_int(c->node, "storage_order", 0) & ~1LL)
        return op_fail(c, QK_EINVAL, "storage_order must be 0 or 1");
    pool_geom g;
    int rc = pool_geom_make(c, x, &g);
    if (rc) return rc;
    geom_out_shape(&g, x, c->out[0], x->dtype);
    if (c->n_out > 1 && c->out[1]) geom_out_shape(&g, x, c->out[1], DT_INT64);
    return QK_OK;
}

static int maxpool_run(op_ctx *c)
{
    const xt *x = c->in[0];
    pool_geom g;
    int rc = pool_geom_make(c, x, &g);
    if (rc) return rc;
    int64_t *wt = taps_table(&g);
    if (!wt) return op_fail(c, QK_ENOMEM, "out of memory");
    maxpool_job j = {.g = &g, .x = x->data, .y = c->out[0]->data, .wt = wt, .dtype = x->dtype};
    if (c->n_out > 1 && c->out[1]) {
        j.ind = c->out[1]->data;
        /* Indices flatten the whole input; storage_order 1 means the spatial
         * part is flattened column-major (first spatial axis fastest). */
        int off = POOL_MAX_SPATIAL - g.k;
        int64_t s = 1;
        j.ist[0] = j.ist[1] = j.ist[2] = 0;
        if (node_attr_int(c->node, "storage_order", 0)) {
            for (int a = off; a < POOL_MAX_SPATIAL; a++) { j.ist[a] = s; s *= g.in[a]; }
        } else {
            for (int a = POOL_MAX_SPATIAL - 1; a >= off; a--) { j.ist[a] = s; s *= g.in[a]; }
        }
    }
    tp_fn fn = maxpool_fast_ok(&g, x->dtype, j.ind != NULL) ? maxpool_fast : maxpool_fn(x->dtype);
#ifdef POOL_X86
    if (fn == maxpool_fast && maxpool_k3s2_ok(&g)) fn = maxpool_k3s2_avx512;
#endif
    tp_parallel_for(c->pool, g.planes, plane_grain(&g), fn, &j);
    free(wt);
    return QK_OK;
}

/* ------------------------------------------------------------ AveragePool */

typedef struct {
    const pool_geom *g;
    const void *x;
    void *y;
    const int64_t *wt;        /* taps_table() */
    int include_pad;
} avgpool_job;

/* Number of taps of one axis inside the padded extent [-pb, in + pe): the
 * divisor for count_include_pad, which never counts taps past the end
 * padding (ceil_mode can put them there). */
static int64_t padded_taps(const pool_geom *g, int a, int64_t o)
{
    int64_t s = o * g->str[a] - g->pb[a], n = 0;
    for (int64_t k = 0; k < g->ker[a]; k++) {
        int64_t i = s + k * g->dil[a];
        if (i >= -g->pb[a] && i < g->in[a] + g->pe[a]) n++;
    }
    return n;
}

#define AVGPOOL_FN(NAME, T)                                                              \
    static void NAME(void *arg, int64_t p0, int64_t p1, int tid)                         \
    {                                                                                    \
        (void)tid;                                                                       \
        const avgpool_job *j = arg;                                                      \
        const pool_geom *g = j->g;                                                       \
        int64_t isz = g->in[0] * g->in[1] * g->in[2];                                    \
        int64_t osz = g->out[0] * g->out[1] * g->out[2];                                 \
        for (int64_t p = p0; p < p1; p++) {                                              \
            const T *x = (const T *)j->x + p * isz;                                      \
            T *y = (T *)j->y + p * osz;                                                  \
            for (int64_t od = 0; od < g->out[0]; od++) {                                 \
                int64_t sd, dl, dh;                                                      \
                taps(g, 0, od, &sd, &dl, &dh);                                           \
                int64_t cd = j->include_pad ? padded_taps(g, 0, od) : dh - dl;           \
                for (int64_t oh = 0; oh < g->out[1]; oh++) {                             \
                    int64_t sh, hl, hh;                                                  \
                    taps(g, 1, oh, &sh, &hl, &hh);                                       \
                    int64_t ch = j->include_pad ? padded_taps(g, 1, oh) : hh - hl;       \
                    for (int64_t ow = 0; ow < g->out[2]; ow++) {                         \
                        int64_t sw = j->wt[3 * ow], wl = j->wt[3 * ow + 1];              \
                        int64_t wh = j->wt[3 * ow + 2];                                  \
                        int64_t cw = j->include_pad ? padded_taps(g, 2, ow) : wh - wl;   \
                        double sum = 0;                                                  \
                        for (int64_t kd = dl; kd < dh; kd++) {                           \
                            int64_t id = sd + kd * g->dil[0];                            \
                            for (int64_t kh = hl; kh < hh; kh++) {                       \
                                int64_t ih = sh + kh * g->dil[1];                        \
                                const T *row = x + (id * g->in[1] + ih) * g->in[2];      \
                                for (int64_t kw = wl; kw < wh; kw++)                     \
                                    sum += row[sw + kw * g->dil[2]];                     \
                            }                                                            \
                        }                                                                \
                        int64_t cnt = cd * ch * cw;                                      \
                        *y++ = (T)(cnt > 0 ? sum / (double)cnt : 0.0);                   \
                    }                                                                    \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

AVGPOOL_FN(avgpool_f32, float)
AVGPOOL_FN(avgpool_f64, double)

static int avgpool_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->dtype != DT_FLOAT && x->dtype != DT_DOUBLE)
        return op_fail(c, QK_ENOTSUP, "input type %s (float, double supported)", dtype_name(x->dtype));
    pool_geom g;
    int rc = pool_geom_make(c, x, &g);
    if (rc) return rc;
    geom_out_shape(&g, x, c->out[0], x->dtype);
    return QK_OK;
}

static int avgpool_run(op_ctx *c)
{
    const xt *x = c->in[0];
    pool_geom g;
    int rc = pool_geom_make(c, x, &g);
    if (rc) return rc;
    int64_t *wt = taps_table(&g);
    if (!wt) return op_fail(c, QK_ENOMEM, "out of memory");
    avgpool_job j = {&g, x->data, c->out[0]->data, wt, node_attr_int(c->node, "count_include_pad", 0) != 0};
    tp_parallel_for(c->pool, g.planes, plane_grain(&g), x->dtype == DT_FLOAT ? avgpool_f32 : avgpool_f64, &j);
    free(wt);
    return QK_OK;
}

/* ------------------------------------------------------------ Global pools */

typedef struct {
    const void *x;
    void *y;
    int64_t size;             /* elements per plane */
    int is_max;
} global_job;

#define GLOBAL_FN(NAME, T)                                                  \
    static void NAME(void *arg, int64_t p0, int64_t p1, int tid)            \
    {                                                                       \
        (void)tid;                                                          \
        const global_job *j = arg;                                          \
        for (int64_t p = p0; p < p1; p++) {                                 \
            const T *x = (const T *)j->x + p * j->size;                     \
            if (j->is_max) {                                                \
                T m = j->size ? x[0] : (T)-INFINITY;                        \
                for (int64_t i = 1; i < j->size; i++)                       \
                    if (x[i] > m) m = x[i];                                 \
                ((T *)j->y)[p] = m;                                         \
            } else {                                                        \
                double s = 0;                                               \
                for (int64_t i = 0; i < j->size; i++) s += x[i];            \
                ((T *)j->y)[p] = (T)(j->size ? s / (double)j->size : 0.0);  \
            }                                                               \
        }                                                                   \
    }

GLOBAL_FN(global_f32, float)
GLOBAL_FN(global_f64, double)

/* Sum of n floats in double lanes: as exact as the scalar double sum (the
 * order differs), at vector speed. */
#ifdef POOL_X86
__attribute__((target("avx512f")))
static double sum_f32_avx512(const float *x, int64_t n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)));
        a2 = _mm512_add_pd(a2, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)));
        a3 = _mm512_add_pd(a3, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24)));
    }
    /* The tail under masks: small planes (7x7) are mostly tail. */
    for (; i < n; i += 8) {
        __mmask8 m = (__mmask8)(n - i >= 8 ? 0xff : (1u << (n - i)) - 1);
        a0 = _mm512_add_pd(a0, _mm512_maskz_cvtps_pd(m, _mm256_castsi256_ps(_mm512_castsi512_si256(
                                                              _mm512_maskz_loadu_epi32((__mmask16)m, x + i)))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
}
#endif

static void global_avg_f32(void *arg, int64_t p0, int64_t p1, int tid)
{
    const global_job *j = arg;
#ifdef POOL_X86
    if (op_isa_level() >= 2) {
        for (int64_t p = p0; p < p1; p++)
            ((float *)j->y)[p] = j->size ? (float)(sum_f32_avx512((const float *)j->x + p * j->size, j->size) /
                                                   (double)j->size)
                                         : 0.0f;
        return;
    }
#endif
    global_f32(arg, p0, p1, tid);
}

static int global_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->dtype != DT_FLOAT && x->dtype != DT_DOUBLE)
        return op_fail(c, QK_ENOTSUP, "input type %s (float, double supported)", dtype_name(x->dtype));
    if (x->rank < 2)
        return op_fail(c, QK_EINVAL, "input must have rank >= 2 (N, C, spatial...), got %d", x->rank);
    xt *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    for (int i = 0; i < x->rank; i++) y->dims[i] = i < 2 ? x->dims[i] : 1;
    return QK_OK;
}

static int global_run(op_ctx *c, int is_max)
{
    const xt *x = c->in[0];
    global_job j = {x->data, c->out[0]->data, 1, is_max};
    for (int i = 2; i < x->rank; i++) j.size *= x->dims[i];
    int64_t grain = j.size > 0 ? 65536 / j.size : 1;
    tp_parallel_for(c->pool, x->dims[0] * x->dims[1], grain < 1 ? 1 : grain,
                    x->dtype == DT_FLOAT ? (is_max ? global_f32 : global_avg_f32) : global_f64, &j);
    return QK_OK;
}

static int globalmax_run(op_ctx *c) { return global_run(c, 1); }
static int globalavg_run(op_ctx *c) { return global_run(c, 0); }

/* -------------------------------------------------------------------- LRN */

typedef struct {
    const float *x;
    float *y;
    int64_t ch, size;         /* channels, elements per plane */
    int64_t lo, hi;           /* window: channels c-lo .. c+hi */
    double bias, alpha_n, beta;
} lrn_job;

static void lrn_planes(void *arg, int64_t p0, int64_t p1, int tid)
{
    (void)tid;
    const lrn_job *j = arg;
    for (int64_t p = p0; p < p1; p++) {
        int64_t n = p / j->ch, ch = p % j->ch;
        int64_t c0 = ch - j->lo < 0 ? 0 : ch - j->lo;
        int64_t c1 = ch + j->hi > j->ch - 1 ? j->ch - 1 : ch + j->hi;
        const float *x = j->x + p * j->size;
        float *y = j->y + p * j->size;
        for (int64_t i = 0; i < j->size; i++) {
            double sq = 0;
            for (int64_t k = c0; k <= c1; k++) {
                double v = j->x[(n * j->ch + k) * j->size + i];
                sq += v * v;
            }
            y[i] = (float)(x[i] / pow(j->bias + j->alpha_n * sq, j->beta));
        }
    }
}

static int lrn_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->dtype != DT_FLOAT)
        return op_fail(c, QK_ENOTSUP, "input type %s (float supported)", dtype_name(x->dtype));
    if (x->rank < 2)
        return op_fail(c, QK_EINVAL, "input must have rank >= 2 (N, C, ...), got %d", x->rank);
    if (node_attr_int(c->node, "size", 0) < 1)
        return op_fail(c, QK_EINVAL, "attribute 'size' missing or not positive");
    *c->out[0] = (xt){.dtype = x->dtype, .rank = x->rank};
    memcpy(c->out[0]->dims, x->dims, sizeof x->dims);
    return QK_OK;
}

static int lrn_run(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t size = node_attr_int(c->node, "size", 0);
    lrn_job j = {
        .x = x->data, .y = c->out[0]->data, .ch = x->dims[1], .size = 1,
        .lo = (size - 1) / 2, .hi = size / 2,   /* floor and ceil of (size-1)/2 */
        .bias = node_attr_float(c->node, "bias", 1.0f),
        .alpha_n = node_attr_float(c->node, "alpha", 1e-4f) / (double)size,
        .beta = node_attr_float(c->node, "beta", 0.75f),
    };
    for (int i = 2; i < x->rank; i++) j.size *= x->dims[i];
    int64_t grain = j.size * size > 0 ? 65536 / (j.size * size) : 1;
    tp_parallel_for(c->pool, x->dims[0] * x->dims[1], grain < 1 ? 1 : grain, lrn_planes, &j);
    return QK_OK;
}

const op_def ops_pool[] = {
    {"MaxPool", maxpool_infer, maxpool_run},
    {"AveragePool", avgpool_infer, avgpool_run},
    {"GlobalMaxPool", global_infer, globalmax_run},
    {"GlobalAveragePool", global_infer, globalavg_run},
    {"LRN", lrn_infer, lrn_run},
};
const int ops_pool_count = sizeof ops_pool / sizeof ops_pool[0];
