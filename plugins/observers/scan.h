/* This file implements the two passes every observer makes over a run of
 * float values: their finite extremes, and (for the histogram observers)
 * the bin of every finite value.  They are the whole per-value cost of
 * calibration, run over millions of values per image, so each has an
 * AVX-512 version chosen at run time beside a portable one; both give the
 * same results bit for bit (tests/test_observers.c checks it through
 * QK_OBSERVER_ISA=c).
 *
 * Why they are written out by hand: a NaN-skipping scalar min/max loop is
 * not vectorized by gcc without -ffast-math (which would drop the very NaN
 * test), and a histogram's scatter cannot be vectorized at all -- only the
 * bin computation can, leaving a tight loop of integer increments.
 *
 * Header-only (static inline functions, no core header) so that every
 * observer stays one self-contained shared object. */
#ifndef QK_OBSERVERS_SCAN_H
#define QK_OBSERVERS_SCAN_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SCAN_X86 1
#endif

/* Integer histograms a scan counts into side by side (see scan_bins_c):
 * a value's increment then waits on the one SCAN_SUBS values before it
 * at most, not on the previous one, when neighbours share a bin. */
#define SCAN_SUBS 4   /* scan_count is written out for four */

/* The finite extremes of some values: of x, and of |x|.  lo > hi (the
 * INFINITY / -INFINITY of scan_none) while no finite value was seen.  Zero
 * is always +0, whichever zero came first, so that the extremes do not
 * depend on the order values are visited in (shards, vector lanes). */
typedef struct scan_extremes {
    float lo, hi;          /* of x */
    float abs_lo, abs_hi;  /* of |x| */
} scan_extremes;

static inline scan_extremes scan_none(void) { return (scan_extremes){INFINITY, -INFINITY, INFINITY, -INFINITY}; }

/* 1 when the AVX-512 versions may run: the CPU has AVX-512F and
 * QK_OBSERVER_ISA is not "c" (tests set it to compare with the portable
 * code).  Read once per process. */
static inline int scan_use_avx512(void)
{
#ifdef SCAN_X86
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *isa = getenv("QK_OBSERVER_ISA");
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && !(isa && !strcmp(isa, "c"));
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

/* Folds one value x (a = |x|) into e, if it is finite: the one step of
 * both portable loops.  Returns whether it was. */
static inline int scan_fold1(scan_extremes *e, float x, float a, int with_abs)
{
    if (!(a <= 3.40282347e+38f))   /* NaN or an infinity */
        return 0;
    e->lo = x < e->lo ? x : e->lo;
    e->hi = x > e->hi ? x : e->hi;
    if (with_abs) {
        e->abs_lo = a < e->abs_lo ? a : e->abs_lo;
        e->abs_hi = a > e->abs_hi ? a : e->abs_hi;
    }
    return 1;
}

static inline void scan_extremes_c(scan_extremes *e, const float *p, int64_t n, int with_abs)
{
    scan_extremes t = *e;   /* a local the compiler keeps in registers */
    for (int64_t i = 0; i < n; i++)
        scan_fold1(&t, p[i], fabsf(p[i]), with_abs);
    *e = t;
}

#ifdef SCAN_X86
#define SCAN_AVX512 __attribute__((target("avx512f"), always_inline)) static inline

/* The extremes a vector loop folds values into, 16 lanes of each; the
 * steps both vector loops share. */
typedef struct scan_acc16 {
    __m512 lo, hi, alo, ahi;
} scan_acc16;

SCAN_AVX512 scan_acc16 scan_acc16_start(const scan_extremes *e)
{
    return (scan_acc16){_mm512_set1_ps(e->lo), _mm512_set1_ps(e->hi), _mm512_set1_ps(e->abs_lo),
                        _mm512_set1_ps(e->abs_hi)};
}

/* Loads the (up to) 16 values p[i..min(i+16, n)) into *x, their
 * magnitudes into *af, and returns which of them are finite. */
SCAN_AVX512 __mmask16 scan_load16(const float *p, int64_t i, int64_t n, __m512 *x, __m512 *af)
{
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    __mmask16 in = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    /* The tensor is rarely in cache any more, and the histogram's
     * increments keep the hardware prefetcher from running far enough ahead. */
    _mm_prefetch((const char *)(p + i) + 2048, _MM_HINT_T0);
    *x = _mm512_maskz_loadu_ps(in, p + i);
    __m512i a = _mm512_and_si512(_mm512_castps_si512(*x), absmask);
    *af = _mm512_castsi512_ps(a);
    /* Finite: the magnitude's bits are below the infinity's. */
    return _mm512_mask_cmplt_epi32_mask(in, a, inf);
}

SCAN_AVX512 void scan_acc16_add(scan_acc16 *acc, __mmask16 fin, __m512 x, __m512 af, int with_abs)
{
    acc->lo = _mm512_mask_min_ps(acc->lo, fin, acc->lo, x);
    acc->hi = _mm512_mask_max_ps(acc->hi, fin, acc->hi, x);
    if (with_abs) {
        acc->alo = _mm512_mask_min_ps(acc->alo, fin, acc->alo, af);
        acc->ahi = _mm512_mask_max_ps(acc->ahi, fin, acc->ahi, af);
    }
}

SCAN_AVX512 void scan_acc16_end(const scan_acc16 *acc, scan_extremes *e)
{
    e->lo = _mm512_reduce_min_ps(acc->lo);
    e->hi = _mm512_reduce_max_ps(acc->hi);
    e->abs_lo = _mm512_reduce_min_ps(acc->alo);
    e->abs_hi = _mm512_reduce_max_ps(acc->ahi);
}

SCAN_AVX512 void scan_extremes_avx512(scan_extremes *e, const float *p, int64_t n, int with_abs)
{
    scan_acc16 acc = scan_acc16_start(e);
    for (int64_t i = 0; i < n; i += 16) {
        __m512 x, af;
        __mmask16 fin = scan_load16(p, i, n, &x, &af);
        scan_acc16_add(&acc, fin, x, af, with_abs);
    }
    scan_acc16_end(&acc, e);
}

/* One loop each, with_abs a constant in it. */
__attribute__((target("avx512f"))) static inline void scan_extremes_avx512_all(scan_extremes *e, const float *p,
                                                                                int64_t n)
{
    scan_extremes_avx512(e, p, n, 1);
}

__attribute__((target("avx512f"))) static inline void scan_extremes_avx512_signed(scan_extremes *e, const float *p,
                                                                                   int64_t n)
{
    scan_extremes_avx512(e, p, n, 0);
}
#endif

/* Folds the finite values of p[0..n) into e; into its extremes of |x|
 * only when with_abs (minmax and moving_average never read them, and
 * skipping them saves a third of the scan's vector work). */
static inline void scan_extremes_add(scan_extremes *e, const float *p, int64_t n, int with_abs)
{
#ifdef SCAN_X86
    if (scan_use_avx512()) {
        if (with_abs)
            scan_extremes_avx512_all(e, p, n);
        else
            scan_extremes_avx512_signed(e, p, n);
    } else
#endif
        scan_extremes_c(e, p, n, with_abs);
    /* -0 and +0 compare equal, so which one a min or max keeps depends on
     * the order of the values: make it +0 always. */
    e->lo = e->lo == 0 ? 0.0f : e->lo;
    e->hi = e->hi == 0 ? 0.0f : e->hi;
}

/* The grid a histogram counts into (see histogram.h): value v (|x| when
 * `absolute`) lands in bin clamp(floor(v * per_width) - first, 0, bins - 1),
 * computed in double, where it is exact (per_width is a power of two). */
typedef struct scan_grid {
    double per_width, first;
    int64_t bins;
    int absolute;
} scan_grid;

static inline int64_t scan_bin(const scan_grid *g, float x)
{
    double v = g->absolute ? fabs((double)x) : (double)x;
    double j = floor(v * g->per_width) - g->first;
    j = j < 0 ? 0 : j > (double)(g->bins - 1) ? (double)(g->bins - 1) : j;
    return (int64_t)j;
}

/* Counts the finite values of p[0..n) into SCAN_SUBS integer histograms
 * side by side, sub[k*bins..(k+1)*bins) (only ever summed, so which part a
 * value lands in does not matter; this loop uses two), except exact
 * zeros, which are only counted: they are most of a ReLU's output and all
 * land in one bin.  Returns the number of finite values; *zeros gets the
 * zeros among them.  Also folds the values into *e (as scan_extremes_add),
 * so that a caller that guessed the grid can check the guess without a
 * second pass -- the extremes of |x| only when g->absolute, as nothing
 * reads them otherwise.  The caller keeps every count below 2^32. */
static inline int64_t scan_bins_c(const scan_grid *g, const float *p, int64_t n, uint32_t *sub, int64_t *zeros,
                                  scan_extremes *e)
{
    int64_t finite = 0, z = 0;
    const int absolute = g->absolute;   /* not reloaded: sub[] could alias g */
    uint32_t *s1 = sub + g->bins;
    scan_extremes t = *e;
    for (int64_t i = 0; i < n; i++) {
        float x = p[i];
        if (!scan_fold1(&t, x, fabsf(x), absolute))
            continue;
        finite++;
        if (x == 0) {
            z++;
            continue;
        }
        ((finite & 1) ? sub : s1)[scan_bin(g, x)]++;
    }
    *e = t;
    *zeros = z;
    return finite;
}

#ifdef SCAN_X86
/* The bins of 8 values (as doubles), clamped, as 8 int32. */
__attribute__((target("avx512f"))) static inline __m256i scan_bins8_avx512(__m512d v, __m512d pw, __m512d first,
                                                                          __m512d top)
{
    __m512d j = _mm512_roundscale_pd(_mm512_mul_pd(v, pw), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    j = _mm512_sub_pd(j, first);
    j = _mm512_min_pd(_mm512_max_pd(j, _mm512_setzero_pd()), top);
    return _mm512_cvttpd_epi32(j);
}

/* Increments the bins idx[0..n) in turn in the SCAN_SUBS parts of sub. */
static inline void scan_count(const int32_t *idx, int64_t n, uint32_t *sub, int64_t bins)
{
    uint32_t *s1 = sub + bins, *s2 = sub + 2 * bins, *s3 = sub + 3 * bins;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        sub[idx[k]]++;
        s1[idx[k + 1]]++;
        s2[idx[k + 2]]++;
        s3[idx[k + 3]]++;
    }
    for (; k < n; k++)
        sub[idx[k]]++;
}

/* The bins of 16 values, in float: exact when per_width is in [1, 2^100]
 * and bins <= 2^22 (scan_bins_avx512), as then v * per_width is a product
 * by a power of two that neither overflows nor underflows, and every
 * integer involved is below 2^24. */
__attribute__((target("avx512f"))) static inline __m512i scan_bins16_avx512(__m512 v, __m512 pw, __m512 first,
                                                                           __m512 top)
{
    __m512 j = _mm512_roundscale_ps(_mm512_mul_ps(v, pw), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    j = _mm512_sub_ps(j, first);
    j = _mm512_min_ps(_mm512_max_ps(j, _mm512_setzero_ps()), top);
    return _mm512_cvttps_epi32(j);
}

__attribute__((target("avx512f"))) static inline int64_t scan_bins_avx512(const scan_grid *g, const float *p,
                                                                         int64_t n, uint32_t *sub, int64_t *zeros,
                                                                         scan_extremes *e)
{
    /* Values of magnitude up to bins / per_width: in float only when
     * every step is exact there (see scan_bins16_avx512), else in double. */
    const int single = g->per_width >= 1 && g->per_width <= 0x1p100 && g->bins <= ((int64_t)1 << 22);
    const __m512 pws = _mm512_set1_ps((float)g->per_width), firsts = _mm512_set1_ps((float)g->first);
    const __m512 tops = _mm512_set1_ps((float)(g->bins - 1));
    /* Bins are gathered in a buffer and counted in one loop per buffer:
     * counting each vector's few bins right away costs a mispredicted
     * loop exit per 16 values, as their number varies. */
    enum { BUF = 512 };
    const __m512d pw = _mm512_set1_pd(g->per_width), first = _mm512_set1_pd(g->first);
    const __m512d top = _mm512_set1_pd((double)(g->bins - 1));
    const int absolute = g->absolute;   /* not reloaded: sub[] could alias g */
    const int64_t bins = g->bins;
    scan_acc16 acc = scan_acc16_start(e);
    int64_t finite = 0, nonzero = 0, nb = 0;
    int32_t idx[BUF + 16];
    for (int64_t i = 0; i < n; i += 16) {
        __m512 x, af;
        __mmask16 fin = scan_load16(p, i, n, &x, &af);
        __mmask16 nz = _mm512_mask_cmpneq_epi32_mask(fin, _mm512_castps_si512(af), _mm512_setzero_si512());
        finite += __builtin_popcount(fin);
        scan_acc16_add(&acc, fin, x, af, absolute);
        __m512 v = absolute ? af : x;
        __m512i j;
        if (single) {
            j = scan_bins16_avx512(v, pws, firsts, tops);
        } else {
            __m512d v0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            __m512d v1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
            j = _mm512_inserti64x4(_mm512_castsi256_si512(scan_bins8_avx512(v0, pw, first, top)),
                                   scan_bins8_avx512(v1, pw, first, top), 1);
        }
        /* Compressed in a register and stored whole: a compressing store
         * to memory is very slow on some CPUs (AMD Zen 4). */
        _mm512_storeu_si512(idx + nb, _mm512_maskz_compress_epi32(nz, j));
        int m = __builtin_popcount(nz);
        nb += m;
        nonzero += m;   /* the rest of the finite values are the zeros */
        if (nb >= BUF) {
            scan_count(idx, nb, sub, bins);
            nb = 0;
        }
    }
    scan_count(idx, nb, sub, bins);
    scan_acc16_end(&acc, e);
    *zeros = finite - nonzero;
    return finite;
}
#endif

static inline int64_t scan_bins(const scan_grid *g, const float *p, int64_t n, uint32_t *sub, int64_t *zeros,
                                scan_extremes *e)
{
    int64_t finite;
#ifdef SCAN_X86
    if (scan_use_avx512())
        finite = scan_bins_avx512(g, p, n, sub, zeros, e);
    else
#endif
        finite = scan_bins_c(g, p, n, sub, zeros, e);
    e->lo = e->lo == 0 ? 0.0f : e->lo;
    e->hi = e->hi == 0 ? 0.0f : e->hi;
    return finite;
}

/* The bin of x before clamping (may be outside [0, bins)): whether a
 * guessed grid held every value. */
static inline double scan_bin_unclamped(const scan_grid *g, float x)
{
    double v = g->absolute ? fabs((double)x) : (double)x;
    return floor(v * g->per_width) - g->first;
}

#endif
