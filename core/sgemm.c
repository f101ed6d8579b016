/* This file implements single-precision GEMM (see sgemm.h).
 *
 * The structure is GotoBLAS/BLIS's: C is computed in MR x NR tiles by a
 * register-blocked micro-kernel that reads B from a packed buffer, so its
 * inner loop is a stream of aligned loads no matter how the caller laid B
 * out (transposed or not, any leading dimension).  The loops around it
 * block K by KC (a KC x NR sliver of packed B stays in L1), M by MC (the
 * MC x KC block of A stays in L2) and N by NC (the packed KC x NC panel of
 * B stays in L3).  alpha and beta are applied when a tile is written: beta
 * by the first KC block, later blocks accumulate.  Row-major A is not
 * packed: the kernel reads its rows in place, which is as fast once the
 * block sits in L2 and saves a full copy of A per call (for conv weights
 * times a few positions that copy would cost as much as the arithmetic).
 * Transposed A is packed, as is the last partial sliver of rows.
 *
 * The micro-kernel is picked once at run time: AVX-512F (12 x 32), AVX2+FMA
 * (6 x 16), or portable C.  Threads each take a rectangle of C and run the
 * serial algorithm on it with their own (thread-local, reused) pack buffers;
 * splitting the larger of M and N keeps the duplicated packing small.
 *
 * M == 1 or N == 1 (fully connected layers at batch 1, matrix-vector
 * products) bypasses packing, which there would cost as much as the
 * product itself. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "sgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "vecmath.h"
#define HAVE_X86 1
#endif

#define MAX_MR 12
#define MAX_NR 32
#define ALIGN 64

/* Full MR x NR tile: C = alpha * acc + beta * C (beta == 0: C not read),
 * where acc is the product of a kc-long sliver of A (MR rows) and one of
 * packed B (NR values per k).  Each kernel comes in two flavours: `packed`
 * reads A packed (MR values per k), `rows` reads A in place, row i at
 * a + i * lda, which saves packing A when it is already row-major: for
 * products with few columns (late conv layers, batch-1 Gemm) packing A
 * would cost as much as the arithmetic. */
struct ptile;
typedef void (*ukernel_fn)(int64_t kc, const float *a, int64_t lda, const float *b,
                           float *c, int64_t ldc, float alpha, float beta);

typedef struct kernel {
    const char *name;
    int mr, nr;
    int64_t kc, mc, nc;   /* cache blocking; mc % mr == 0, nc % nr == 0 */
    ukernel_fn packed, rows;
    /* Optional: a partial mr x nr tile written straight to C, with A
     * packed (`packed`) or in place (then mr == MR).  Without it edge tiles
     * go through a scratch tile. */
    void (*edge)(int packed, int mr, int nr, int64_t kc, const float *a, int64_t lda,
                 const float *b, float *c, int64_t ldc, float alpha, float beta);
    int simd;             /* the AVX2 helpers may be used */
    /* The packed-A engine's tile kernel (see sgemm_packed): rows <= mr. */
    void (*tile)(int rows, const struct ptile *t);
    /* Optional: the same, also folding the values of a last K block into
     * t->ext in registers (sgemm_epi.ext); else they are folded after. */
    void (*tile_ext)(int rows, const struct ptile *t);
} kernel;

/* ---------------------------------------------------------------- kernels */

/* Portable micro-kernel.  A is addressed as a[i * rs + k * cs], so one body
 * serves both flavours; written over a small local accumulator so the
 * compiler can keep it in vector registers with whatever ISA it targets. */
#define C_MR 4
#define C_NR 8
static void uk_c(int64_t kc, const float *a, int64_t rs, int64_t cs, const float *b,
                 float *c, int64_t ldc, float alpha, float beta)
{
    float acc[C_MR][C_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < C_MR; i++)
            for (int j = 0; j < C_NR; j++) acc[i][j] += a[i * rs] * b[j];
        a += cs;
        b += C_NR;
    }
    for (int i = 0; i < C_MR; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f)
            for (int j = 0; j < C_NR; j++) ci[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < C_NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
}

static void uk_c_packed(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                        int64_t ldc, float alpha, float beta)
{
    uk_c(kc, a, 1, C_MR, b, c, ldc, alpha, beta);
}

static void uk_c_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                      int64_t ldc, float alpha, float beta)
{
    uk_c(kc, a, lda, 1, b, c, ldc, alpha, beta);
}

#ifdef HAVE_X86
/* Calls F(R, NV) with compile-time R (rows, 1..max) and NV (vectors of
 * columns, 1 or 2) chosen from run-time mr and nr, so that every edge tile
 * runs a kernel sized to it: no scratch tile, no copy, and a last sliver
 * of few rows or columns costs in proportion. */
#define DISPATCH_NV(F, R) do { if (nv == 2) F(R, 2); else F(R, 1); } while (0)
#define DISPATCH_6(F)                                                        \
    switch (mr) {                                                            \
    case 1: DISPATCH_NV(F, 1); break; case 2: DISPATCH_NV(F, 2); break;      \
    case 3: DISPATCH_NV(F, 3); break; case 4: DISPATCH_NV(F, 4); break;      \
    case 5: DISPATCH_NV(F, 5); break; default: DISPATCH_NV(F, 6); break;     \
    }
#define DISPATCH_12(F)                                                       \
    switch (mr) {                                                            \
    case 1: DISPATCH_NV(F, 1); break; case 2: DISPATCH_NV(F, 2); break;      \
    case 3: DISPATCH_NV(F, 3); break; case 4: DISPATCH_NV(F, 4); break;      \
    case 5: DISPATCH_NV(F, 5); break; case 6: DISPATCH_NV(F, 6); break;      \
    case 7: DISPATCH_NV(F, 7); break; case 8: DISPATCH_NV(F, 8); break;      \
    case 9: DISPATCH_NV(F, 9); break; case 10: DISPATCH_NV(F, 10); break;    \
    case 11: DISPATCH_NV(F, 11); break; default: DISPATCH_NV(F, 12); break; \
    }

/* 6 x 16 with AVX2+FMA: 12 accumulators, 2 B vectors, 1 broadcast = 15 of
 * the 16 ymm registers.  rs/cs as in uk_c; R (<= 6) rows and NV (<= 2)
 * vectors of 8 columns are computed, the last vector stored under mask m
 * (all ones for a full tile).  Callers pass constants for R, NV, rs or cs,
 * so each use compiles to its own tight loop with the accumulators in
 * registers. */
__attribute__((target("avx2,fma"), always_inline))
static inline void uk_avx2(const int R, const int NV, int64_t kc, const float *a, int64_t rs,
                           int64_t cs, const float *b, float *c, int64_t ldc, float alpha,
                           float beta, __m256i m)
{
    __m256 acc0[6], acc1[6];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = NV == 2 ? _mm256_load_ps(b + 8) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            __m256 av = _mm256_broadcast_ss(a + i * rs);
            acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
            if (NV == 2) acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
        }
        a += cs;
        b += 16;
    }
    __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        float *ci = c + i * ldc;
        __m256 t0 = _mm256_mul_ps(valpha, acc0[i]);
        if (NV == 1) {
            if (beta != 0.0f) t0 = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(ci, m), t0);
            _mm256_maskstore_ps(ci, m, t0);
            continue;
        }
        __m256 t1 = _mm256_mul_ps(valpha, acc1[i]);
        if (beta != 0.0f) {
            t0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(ci), t0);
            t1 = _mm256_fmadd_ps(vbeta, _mm256_maskload_ps(ci + 8, m), t1);
        }
        _mm256_storeu_ps(ci, t0);
        _mm256_maskstore_ps(ci + 8, m, t1);
    }
}

__attribute__((target("avx2,fma")))
static void uk_avx2_packed(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                           int64_t ldc, float alpha, float beta)
{
    uk_avx2(6, 2, kc, a, 1, 6, b, c, ldc, alpha, beta, _mm256_set1_epi32(-1));
}

__attribute__((target("avx2,fma")))
static void uk_avx2_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                         int64_t ldc, float alpha, float beta)
{
    uk_avx2(6, 2, kc, a, lda, 1, b, c, ldc, alpha, beta, _mm256_set1_epi32(-1));
}

__attribute__((target("avx2,fma")))
static void uk_avx2_edge(int packed, int mr, int nr, int64_t kc, const float *a, int64_t lda,
                         const float *b, float *c, int64_t ldc, float alpha, float beta)
{
    int nv = nr > 8 ? 2 : 1, last = nr - (nv - 1) * 8;
    __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#define EDGE_ROWS(R, NV) uk_avx2(R, NV, kc, a, lda, 1, b, c, ldc, alpha, beta, m)
#define EDGE_PACKED(R, NV) uk_avx2(R, NV, kc, a, 1, 6, b, c, ldc, alpha, beta, m)
    if (!packed) DISPATCH_NV(EDGE_ROWS, 6);   /* in-place A: always full rows */
    else DISPATCH_6(EDGE_PACKED);
#undef EDGE_ROWS
#undef EDGE_PACKED
}

/* 12 x 32 with AVX-512F: 24 accumulators, 2 B vectors and a broadcast of
 * the 32 zmm registers.  R (<= 12) rows and NV (<= 2) vectors of 16
 * columns, the last under mask m, as for uk_avx2. */
__attribute__((target("avx512f"), always_inline))
static inline void uk_avx512(const int R, const int NV, int64_t kc, const float *a, int64_t rs,
                             int64_t cs, const float *b, float *c, int64_t ldc, float alpha,
                             float beta, __mmask16 m)
{
    __m512 acc0[12], acc1[12];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = NV == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[i * rs]);
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
            if (NV == 2) acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
        }
        a += cs;
        b += 32;
    }
    __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
        float *ci = c + i * ldc;
        __m512 t0 = _mm512_mul_ps(valpha, acc0[i]);
        if (NV == 1) {
            if (beta != 0.0f) t0 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m, ci), t0);
            _mm512_mask_storeu_ps(ci, m, t0);
            continue;
        }
        __m512 t1 = _mm512_mul_ps(valpha, acc1[i]);
        if (beta != 0.0f) {
            t0 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(ci), t0);
            t1 = _mm512_fmadd_ps(vbeta, _mm512_maskz_loadu_ps(m, ci + 16), t1);
        }
        _mm512_storeu_ps(ci, t0);
        _mm512_mask_storeu_ps(ci + 16, m, t1);
    }
}

__attribute__((target("avx512f")))
static void uk_avx512_packed(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                             int64_t ldc, float alpha, float beta)
{
    uk_avx512(12, 2, kc, a, 1, 12, b, c, ldc, alpha, beta, 0xffff);
}

__attribute__((target("avx512f")))
static void uk_avx512_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                           int64_t ldc, float alpha, float beta)
{
    uk_avx512(12, 2, kc, a, lda, 1, b, c, ldc, alpha, beta, 0xffff);
}

__attribute__((target("avx512f")))
static void uk_avx512_edge(int packed, int mr, int nr, int64_t kc, const float *a, int64_t lda,
                           const float *b, float *c, int64_t ldc, float alpha, float beta)
{
    int nv = nr > 16 ? 2 : 1, last = nr - (nv - 1) * 16;
    __mmask16 m = (__mmask16)((1u << last) - 1);
#define EDGE_ROWS(R, NV) uk_avx512(R, NV, kc, a, lda, 1, b, c, ldc, alpha, beta, m)
#define EDGE_PACKED(R, NV) uk_avx512(R, NV, kc, a, 1, 12, b, c, ldc, alpha, beta, m)
    if (!packed) DISPATCH_NV(EDGE_ROWS, 12);   /* in-place A: always full rows */
    else DISPATCH_12(EDGE_PACKED);
#undef EDGE_ROWS
#undef EDGE_PACKED
}
#endif


/* ------------------------------------------- tile kernels of sgemm_packed */

/* One tile of the packed-A engine: rows x nr of C = A_panel . B_sliver,
 * both packed (mr resp. nr values per k), merged into C:
 *  - first: C = acc, otherwise C += acc (earlier K blocks are in C);
 *  - last: then + bias[row] + residual, then the clamp [lo, hi].
 * Column l of the tile is at c + l (mask bit l of `lo`) or, past the end
 * of an image, at c + delta + l (bit l of `hi`); the residual r is laid
 * out like C.  Lanes in neither mask are not touched. */
typedef struct ptile {
    int64_t kc;
    int as;                   /* floats per k in the A panel (its mr) */
    const float *a, *b;
    float *c;
    const float *r;           /* residual at the tile's origin, or NULL */
    int64_t ldc, delta;
    uint32_t lo, hi;
    const float *bias;        /* bias of the tile's first row, or NULL */
    int first, last, clamp, silu;
    float alo, ahi;
    float *ext;               /* tile_ext: this thread's lanes (EXT_FLOATS) */
    unsigned ext_stages;      /* ... of the stages 1 << EXT_* */
} ptile;

static void tile_c(int rows, const ptile *t)
{
    const int NR = C_NR;
    float acc[C_MR][C_NR] = {{0}};
    const float *a = t->a, *b = t->b;
    for (int64_t k = 0; k < t->kc; k++, a += t->as, b += NR)
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < NR; j++) {
            int64_t off;
            if (t->lo >> j & 1) off = i * t->ldc + j;
            else if (t->hi >> j & 1) off = i * t->ldc + t->delta + j;
            else continue;
            float v = acc[i][j];
            if (!t->first) v += t->c[off];
            if (t->last) {
                if (t->bias) v += t->bias[i];
                if (t->r) v += t->r[off];
                /* NaN passes the clamp, like the Relu/Clip kernels. */
                if (t->clamp) v = v < t->alo ? t->alo : v > t->ahi ? t->ahi : v;
                if (t->silu) v = v / (1.0f + expf(-v));
            }
            t->c[off] = v;
        }
}

#ifdef HAVE_X86
/* AVX-512: R (<= 12) rows x 32 columns, accumulators in 24 registers.
 * EXT (a last K block): the stages 1 << EXT_* in EXT are also folded into
 * t->ext's lanes as the values leave the registers, where an observer
 * would read them all again (or could not: a fused chain stores only
 * OUT).  Named variables: an array of them ended up on the stack, and
 * every fold then waited for the previous one's store. */
__attribute__((target("avx512f"), always_inline))
static inline void tile512(const int R, const unsigned EXT, const ptile *t)
{
    const int64_t as = t->as;
    __m512 acc0[12], acc1[12];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    const float *a = t->a, *b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        /* Packed weights stream from memory when they exceed the cache
         * (deep layers at small batch): one panel is a single sequential
         * stream, which the hardware prefetcher alone fetches too late. */
        _mm_prefetch((const char *)(a + 1024), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
            acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
        }
        a += as;
        b += 32;
    }
    const int simple = t->lo == 0xffffffffu;
    const __mmask16 lo0 = (__mmask16)t->lo, lo1 = (__mmask16)(t->lo >> 16);
    const __mmask16 hi0 = (__mmask16)t->hi, hi1 = (__mmask16)(t->hi >> 16);
    const __m512 vlo = _mm512_set1_ps(t->alo), vhi = _mm512_set1_ps(t->ahi);
    float *c = t->c;
    const float *r = t->r;
    const int64_t d = t->delta;
    __m512 o_lo = _mm512_setzero_ps(), o_hi = o_lo, h_lo = o_lo, h_hi = o_lo, s_lo = o_lo, s_hi = o_lo;
    __m512 g_lo = o_lo, g_hi = o_lo;
    const __mmask16 v0 = lo0 | hi0, v1 = lo1 | hi1;
#define EXT_AT(S) (t->ext + (S) * EXT_STAGE_FLOATS)
#define EXT_LOAD(S, lo, hi)                              \
    if (EXT & 1u << (S)) {                               \
        lo = _mm512_loadu_ps(EXT_AT(S));                 \
        hi = _mm512_loadu_ps(EXT_AT(S) + EXT_LANES);     \
    }
#define EXT_STORE(S, lo, hi)                             \
    if (EXT & 1u << (S)) {                               \
        _mm512_storeu_ps(EXT_AT(S), lo);                 \
        _mm512_storeu_ps(EXT_AT(S) + EXT_LANES, hi);     \
    }
#define EXT_FOLD(S, lo, hi, a, b, FINITE)                \
    if (EXT & 1u << (S)) {                               \
        qk_fold512(&lo, &hi, a, v0, FINITE);             \
        qk_fold512(&lo, &hi, b, v1, FINITE);             \
    }
    EXT_LOAD(EXT_OUT, o_lo, o_hi)
    EXT_LOAD(EXT_HEAD, h_lo, h_hi)
    EXT_LOAD(EXT_SUM, s_lo, s_hi)
    EXT_LOAD(EXT_SIG, g_lo, g_hi)
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
        __m512 x0 = acc0[i], x1 = acc1[i];
        if (!t->first) {
            if (simple) {
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(c));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(c + 16));
            } else {
                x0 = _mm512_add_ps(x0, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo0, c), hi0, c + d));
                x1 = _mm512_add_ps(x1, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo1, c + 16), hi1, c + 16 + d));
            }
        }
        if (t->last) {
            if (t->bias) {
                __m512 bv = _mm512_set1_ps(t->bias[i]);
                x0 = _mm512_add_ps(x0, bv);
                x1 = _mm512_add_ps(x1, bv);
            }
            EXT_FOLD(EXT_HEAD, h_lo, h_hi, x0, x1, 1)
            if (r) {
                if (simple) {
                    x0 = _mm512_add_ps(x0, _mm512_loadu_ps(r));
                    x1 = _mm512_add_ps(x1, _mm512_loadu_ps(r + 16));
                } else {
                    x0 = _mm512_add_ps(x0, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo0, r), hi0, r + d));
                    x1 = _mm512_add_ps(x1, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(lo1, r + 16), hi1, r + 16 + d));
                }
                r += t->ldc;
            }
            EXT_FOLD(EXT_SUM, s_lo, s_hi, x0, x1, 1)
            if (t->clamp) {
                /* max(lo, x) then min(hi, .): a NaN x is the second
                 * operand both times, so it passes through. */
                x0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, x0));
                x1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, x1));
            }
            if (t->silu) {
                __m512 g0 = qk_sigmoid512(x0), g1 = qk_sigmoid512(x1);
                EXT_FOLD(EXT_SIG, g_lo, g_hi, g0, g1, 0)
                x0 = _mm512_mul_ps(x0, g0);
                x1 = _mm512_mul_ps(x1, g1);
            }
        }
        EXT_FOLD(EXT_OUT, o_lo, o_hi, x0, x1, 0)
        if (simple) {
            _mm512_storeu_ps(c, x0);
            _mm512_storeu_ps(c + 16, x1);
            c += t->ldc;
            continue;
        }
        _mm512_mask_storeu_ps(c, lo0, x0);
        _mm512_mask_storeu_ps(c + 16, lo1, x1);
        if (t->hi) {
            _mm512_mask_storeu_ps(c + d, hi0, x0);
            _mm512_mask_storeu_ps(c + 16 + d, hi1, x1);
        }
        c += t->ldc;
    }
    EXT_STORE(EXT_OUT, o_lo, o_hi)
    EXT_STORE(EXT_HEAD, h_lo, h_hi)
    EXT_STORE(EXT_SUM, s_lo, s_hi)
    EXT_STORE(EXT_SIG, g_lo, g_hi)
#undef EXT_FOLD
#undef EXT_STORE
#undef EXT_LOAD
#undef EXT_AT
}

__attribute__((target("avx512f")))
static void tile_avx512(int rows, const ptile *t)
{
    switch (rows) {
    case 1: tile512(1, 0, t); break; case 2: tile512(2, 0, t); break;
    case 3: tile512(3, 0, t); break; case 4: tile512(4, 0, t); break;
    case 5: tile512(5, 0, t); break; case 6: tile512(6, 0, t); break;
    case 7: tile512(7, 0, t); break; case 8: tile512(8, 0, t); break;
    case 9: tile512(9, 0, t); break; case 10: tile512(10, 0, t); break;
    case 11: tile512(11, 0, t); break; default: tile512(12, 0, t); break;
    }
}

/* The stage sets chains ask for: the output alone; with the conv's own
 * value (+ the sum: residual chains); SiLU's.  A set is served by the
 * first listed superset; the extra lanes are folded and ignored. */
#define EXT_O (1u << EXT_OUT)
#define EXT_OH (EXT_O | 1u << EXT_HEAD)
#define EXT_OHS (EXT_OH | 1u << EXT_SUM)
#define EXT_OHG (EXT_OH | 1u << EXT_SIG)
#define EXT_OHSG (EXT_OHS | 1u << EXT_SIG)
#define TILE_ROWS(M)                                                                  \
    switch (rows) {                                                                   \
    case 1: tile512(1, M, t); break; case 2: tile512(2, M, t); break;                 \
    case 3: tile512(3, M, t); break; case 4: tile512(4, M, t); break;                 \
    case 5: tile512(5, M, t); break; case 6: tile512(6, M, t); break;                 \
    case 7: tile512(7, M, t); break; case 8: tile512(8, M, t); break;                 \
    case 9: tile512(9, M, t); break; case 10: tile512(10, M, t); break;               \
    case 11: tile512(11, M, t); break; default: tile512(12, M, t); break;             \
    }

__attribute__((target("avx512f")))
static void tile_avx512_ext(int rows, const ptile *t)
{
    unsigned m = t->ext_stages;
    if (!(m & ~EXT_O)) {
        TILE_ROWS(EXT_O)
    } else if (!(m & ~EXT_OH)) {
        TILE_ROWS(EXT_OH)
    } else if (!(m & ~EXT_OHS)) {
        TILE_ROWS(EXT_OHS)
    } else if (!(m & ~EXT_OHG)) {
        TILE_ROWS(EXT_OHG)
    } else {
        TILE_ROWS(EXT_OHSG)
    }
}
#undef TILE_ROWS

/* AVX2: R (<= 6) rows x 16 columns. */
__attribute__((target("avx2,fma"), always_inline))
static inline __m256i lanes8(uint32_t bits)
{
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(bits & 0xff)), sel), sel);
}

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 load2_256(const float *p, int64_t d, __m256i lo, __m256i hi, int has_hi)
{
    __m256 v = _mm256_maskload_ps(p, lo);
    if (has_hi) v = _mm256_blendv_ps(v, _mm256_maskload_ps(p + d, hi), _mm256_castsi256_ps(hi));
    return v;
}

__attribute__((target("avx2,fma"), always_inline))
static inline void tile256(const int R, const ptile *t)
{
    __m256 acc0[6], acc1[6];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    const float *a = t->a, *b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        _mm_prefetch((const char *)(a + 512), _MM_HINT_T0);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            __m256 av = _mm256_broadcast_ss(a + i);
            acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
        }
        a += t->as;
        b += 16;
    }
    const __m256i lo0 = lanes8(t->lo), lo1 = lanes8(t->lo >> 8);
    const __m256i hi0 = lanes8(t->hi), hi1 = lanes8(t->hi >> 8);
    const int has_hi = t->hi != 0;
    const __m256 vlo = _mm256_set1_ps(t->alo), vhi = _mm256_set1_ps(t->ahi);
    float *c = t->c;
    const float *r = t->r;
    const int64_t d = t->delta;
#pragma GCC unroll 6
    for (int i = 0; i < R; i++) {
        __m256 x0 = acc0[i], x1 = acc1[i];
        if (!t->first) {
            x0 = _mm256_add_ps(x0, load2_256(c, d, lo0, hi0, has_hi));
            x1 = _mm256_add_ps(x1, load2_256(c + 8, d, lo1, hi1, has_hi));
        }
        if (t->last) {
            if (t->bias) {
                __m256 bv = _mm256_set1_ps(t->bias[i]);
                x0 = _mm256_add_ps(x0, bv);
                x1 = _mm256_add_ps(x1, bv);
            }
            if (r) {
                x0 = _mm256_add_ps(x0, load2_256(r, d, lo0, hi0, has_hi));
                x1 = _mm256_add_ps(x1, load2_256(r + 8, d, lo1, hi1, has_hi));
                r += t->ldc;
            }
            if (t->clamp) {
                x0 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, x0));
                x1 = _mm256_min_ps(vhi, _mm256_max_ps(vlo, x1));
            }
            if (t->silu) {
                x0 = _mm256_mul_ps(x0, qk_sigmoid256(x0));
                x1 = _mm256_mul_ps(x1, qk_sigmoid256(x1));
            }
        }
        _mm256_maskstore_ps(c, lo0, x0);
        _mm256_maskstore_ps(c + 8, lo1, x1);
        if (has_hi) {
            _mm256_maskstore_ps(c + d, hi0, x0);
            _mm256_maskstore_ps(c + 8 + d, hi1, x1);
        }
        c += t->ldc;
    }
}

__attribute__((target("avx2,fma")))
static void tile_avx2(int rows, const ptile *t)
{
    switch (rows) {
    case 1: tile256(1, t); break; case 2: tile256(2, t); break;
    case 3: tile256(3, t); break; case 4: tile256(4, t); break;
    case 5: tile256(5, t); break; default: tile256(6, t); break;
    }
}
#endif

static const kernel k_c = {"c", C_MR, C_NR, 256, 128, 2048, uk_c_packed, uk_c_rows, NULL, 0, tile_c, NULL};
#ifdef HAVE_X86
static const kernel k_avx2 = {"avx2", 6, 16, 256, 144, 2048, uk_avx2_packed, uk_avx2_rows,
                               uk_avx2_edge, 1, tile_avx2, NULL};
static const kernel k_avx512 = {"avx512", 12, 32, 256, 144, 2048, uk_avx512_packed, uk_avx512_rows,
                                 uk_avx512_edge, 1, tile_avx512, tile_avx512_ext};
#endif

static const kernel *active;
static pthread_once_t pick_once = PTHREAD_ONCE_INIT;

static const kernel *by_name(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "c")) return &k_c;
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &k_avx2;
    /* The AVX-512 kernel shares the AVX2 helpers (gemv, transposes). */
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &k_avx512;
#endif
    return NULL;
}

/* QK_SGEMM_ISA=c|avx2|avx512 overrides the choice (benchmarks, debugging);
 * an ISA the CPU lacks is ignored. */
static void pick(void)
{
    const kernel *k = by_name(getenv("QK_SGEMM_ISA"));
#ifdef HAVE_X86
    if (!k) k = by_name("avx512");
    if (!k) k = by_name("avx2");
#endif
    if (!k) k = &k_c;
    active = k;
}

static const kernel *get_kernel(void)
{
    pthread_once(&pick_once, pick);
    return active;
}

/* Internal (tests only; not in sgemm.h): forces the kernel by name ("c",
 * "avx2", "avx512"; NULL restores the default choice).  Returns 0, or -1
 * when the name is unknown or the CPU lacks it.  Not thread-safe against
 * concurrent sgemm calls. */
int sgemm_force_isa(const char *name) __attribute__((visibility("hidden")));
int sgemm_force_isa(const char *name)
{
    get_kernel();
    if (!name) {
        pick();
        return 0;
    }
    const kernel *k = by_name(name);
    if (!k) return -1;
    active = k;
    return 0;
}

/* ---------------------------------------------------------------- packing */

/* Packs the mc x kc block of op(A) starting at (i0, p0) into MR-row
 * slivers: sliver s holds rows s*MR.., k-major (MR values per k).  Rows
 * past mc are zero so edge tiles run the full kernel. */
static void pack_a(const kernel *kn, int trans, const float *A, int64_t lda,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc, float *out)
{
    const int MR = kn->mr;
    for (int64_t i = 0; i < mc; i += MR) {
        int64_t m = mc - i < MR ? mc - i : MR;
        if (!trans) {
            /* Row-contiguous source: walk each row, scatter with stride MR. */
            for (int64_t r = 0; r < m; r++) {
                const float *src = A + (i0 + i + r) * lda + p0;
                float *dst = out + r;
                for (int64_t k = 0; k < kc; k++) dst[k * MR] = src[k];
            }
        } else {
            for (int64_t k = 0; k < kc; k++) {
                const float *src = A + (p0 + k) * lda + i0 + i;
                float *dst = out + k * MR;
                for (int64_t r = 0; r < m; r++) dst[r] = src[r];
            }
        }
        if (m < MR)
            for (int64_t k = 0; k < kc; k++)
                for (int64_t r = m; r < MR; r++) out[k * MR + r] = 0.0f;
        out += MR * kc;
    }
}

#ifdef HAVE_X86
/* dst[k * ld + r] = src[r * lds + k] for r < 8, k < kc: eight rows of
 * src become kc rows of eight in dst. */
__attribute__((target("avx2,fma")))
static void transpose_8rows(const float *src, int64_t lds, int64_t kc, float *dst, int64_t ld)
{
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r0 = _mm256_loadu_ps(src + 0 * lds + k), r1 = _mm256_loadu_ps(src + 1 * lds + k);
        __m256 r2 = _mm256_loadu_ps(src + 2 * lds + k), r3 = _mm256_loadu_ps(src + 3 * lds + k);
        __m256 r4 = _mm256_loadu_ps(src + 4 * lds + k), r5 = _mm256_loadu_ps(src + 5 * lds + k);
        __m256 r6 = _mm256_loadu_ps(src + 6 * lds + k), r7 = _mm256_loadu_ps(src + 7 * lds + k);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        float *d = dst + k * ld;
        _mm256_storeu_ps(d + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(d + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(d + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(d + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(d + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(d + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(d + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_storeu_ps(d + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; k < kc; k++)
        for (int r = 0; r < 8; r++) dst[k * ld + r] = src[r * lds + k];
}
#endif

/* Packs the kc x nc block of op(B) starting at (p0, j0) into NR-column
 * slivers, k-major (NR values per k); columns past nc are zero. */
static void pack_b(const kernel *kn, int trans, const float *B, int64_t ldb,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc, float *out)
{
    const int NR = kn->nr;
    int64_t full = nc / NR * NR;
    if (!trans) {
        /* Row by row, so B is read as long sequential runs (what hardware
         * prefetchers follow best); each run is dealt out to the slivers.
         * Constant-size copies compile to a few vector moves, where a
         * memcpy call per 64 or 128 bytes would cost more than the copy. */
        for (int64_t k = 0; k < kc; k++) {
            const float *src = B + (p0 + k) * ldb + j0;
            float *dst = out + k * NR;
            int64_t j = 0;
            if (NR == 32)
                for (; j < full; j += 32, dst += 32 * kc) memcpy(dst, src + j, 32 * sizeof(float));
            else if (NR == 16)
                for (; j < full; j += 16, dst += 16 * kc) memcpy(dst, src + j, 16 * sizeof(float));
            else
                for (; j < full; j += NR, dst += NR * kc) memcpy(dst, src + j, sizeof(float) * (size_t)NR);
            if (j < nc) {
                int64_t c = 0;
                for (; c < nc - j; c++) dst[c] = src[j + c];
                for (; c < NR; c++) dst[c] = 0.0f;
            }
        }
        return;
    }
    for (int64_t j = 0; j < nc; j += NR) {
        int64_t n = nc - j < NR ? nc - j : NR;
        int64_t c = 0;
#ifdef HAVE_X86
        /* Transposed B (e.g. Gemm transB=1 weights): 8 x 8 blocks through
         * registers instead of one strided store per element. */
        if (kn->simd)
            for (; c + 8 <= n; c += 8)
                transpose_8rows(B + (j0 + j + c) * ldb + p0, ldb, kc, out + c, NR);
#endif
        for (; c < n; c++) {
            const float *src = B + (j0 + j + c) * ldb + p0;
            float *dst = out + c;
            for (int64_t k = 0; k < kc; k++) dst[k * NR] = src[k];
        }
        if (n < NR)
            for (int64_t k = 0; k < kc; k++)
                for (int64_t z = n; z < NR; z++) out[k * NR + z] = 0.0f;
        out += NR * kc;
    }
}

/* ------------------------------------------------------- pack buffers */

/* One pair of pack buffers per thread, grown on demand and kept: kernels
 * call sgemm many times per inference, and re-faulting megabytes of fresh
 * pages on every call would cost more than small products take.  The key's
 * destructor frees them when a pool worker exits. */
typedef struct packbuf {
    float *a, *b;
    size_t cap_a, cap_b;  /* in floats */
} packbuf;

static pthread_key_t buf_key;
static int buf_key_ok;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void packbuf_free(void *p)
{
    packbuf *pb = p;
    if (!pb) return;
    free(pb->a);
    free(pb->b);
    free(pb);
}

static void buf_init(void) { buf_key_ok = pthread_key_create(&buf_key, packbuf_free) == 0; }

static float *grow(float **p, size_t *cap, size_t need)
{
    /* A buffer is always made, even for need == 0, so NULL means failure. */
    if (*p && *cap >= need) return *p;
    if (need == 0) need = 1;
    size_t bytes = (need * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    float *n = aligned_alloc(ALIGN, bytes);
    if (!n) return NULL;
    free(*p);
    *p = n;
    *cap = need;
    return n;
}

/* Returns this thread's buffers with room for na and nb floats, or NULL. */
static packbuf *get_bufs(size_t na, size_t nb)
{
    pthread_once(&buf_once, buf_init);
    if (!buf_key_ok) return NULL;
    packbuf *pb = pthread_getspecific(buf_key);
    if (!pb) {
        pb = calloc(1, sizeof *pb);
        if (!pb) return NULL;
        if (pthread_setspecific(buf_key, pb)) {
            free(pb);
            return NULL;
        }
    }
    if (!grow(&pb->a, &pb->cap_a, na) || !grow(&pb->b, &pb->cap_b, nb)) return NULL;
    return pb;
}


/* ------------------------------------------------ the packed-A engine */

struct sgemm_pa {
    const kernel *kn;
    int mr;                   /* rows per panel: the kernel's mr, or fewer */
    int64_t M, K, Mp;         /* Mp: M rounded up to mr */
    int64_t kc;               /* K block; the last one may be shorter */
    float *data;
};

/* Packs rows [0, M) x columns [p0, p0 + kc) of row-major A into panels of
 * MR rows, k-major; rows past M are zero. */
static void pack_a_mr(int MR, const float *A, int64_t lda, int64_t p0, int64_t M, int64_t kc, float *out)
{
    for (int64_t i = 0; i < M; i += MR, out += MR * kc) {
        int64_t m = M - i < MR ? M - i : MR;
        for (int64_t r = 0; r < m; r++) {
            const float *src = A + (i + r) * lda + p0;
            for (int64_t k = 0; k < kc; k++) out[k * MR + r] = src[k];
        }
        for (int64_t r = m; r < MR; r++)
            for (int64_t k = 0; k < kc; k++) out[k * MR + r] = 0.0f;
    }
}

/* K blocks of at most the kernel's kc, of equal size: a last sliver of a
 * few k would cost a whole C round trip for little work. */
static int64_t packed_kc(const kernel *kn, int64_t K)
{
    int64_t nb = (K + kn->kc - 1) / kn->kc;
    return nb > 0 ? (K + nb - 1) / nb : 1;
}

sgemm_pa *sgemm_pack_a(const float *A, int64_t lda, int64_t M, int64_t K)
{
    if (M <= 0 || K <= 0) return NULL;
    const kernel *kn = get_kernel();
    sgemm_pa *pa = calloc(1, sizeof *pa);
    if (!pa) return NULL;
    int MR = kn->mr;
    pa->mr = MR;
    pa->kn = kn;
    pa->M = M;
    pa->K = K;
    pa->Mp = (M + MR - 1) / MR * MR;
    pa->kc = packed_kc(kn, K);
    size_t bytes = ((size_t)(pa->Mp * K) * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    pa->data = aligned_alloc(ALIGN, bytes);
    if (!pa->data) {
        free(pa);
        return NULL;
    }
    /* Block pc (k in [pc, pc + kc)) starts at pc * Mp; in it, panel p
     * holds rows p*MR.. as kc x MR, k-major. */
    for (int64_t pc = 0; pc < K; pc += pa->kc) {
        int64_t kc = K - pc < pa->kc ? K - pc : pa->kc;
        pack_a_mr(MR, A, lda, pc, M, kc, pa->data + pc * pa->Mp);
    }
    return pa;
}

void sgemm_pa_free(sgemm_pa *pa)
{
    if (!pa) return;
    free(pa->data);
    free(pa);
}

int64_t sgemm_pa_rows(const sgemm_pa *pa) { return pa->M; }
int64_t sgemm_pa_depth(const sgemm_pa *pa) { return pa->K; }
int sgemm_pa_nr(const sgemm_pa *pa) { return pa->kn->nr; }
int sgemm_pa_mr(const sgemm_pa *pa) { return pa->mr; }
const char *sgemm_isa(void) { return get_kernel()->name; }

/* ---------------------------------------------- extremes of what is written */

/* A tile as written: `rows` rows ldc apart, each n0 values at the row's
 * start and n1 more `delta` further on (the next image's columns). */
typedef struct tile_out {
    const float *c;
    int64_t ldc, delta, n0, n1;
    int rows;
} tile_out;

/* For kernels without tile_ext: folds the tile's finite values into lane
 * 0 of a thread's OUT extremes (sgemm_epi.ext) after the store, from L1.
 * Out of line: packed_task's loop around the tiles stays small. */
__attribute__((noinline)) static void fold_tile(float *lanes, const tile_out *t)
{
    for (int r = 0; r < t->rows; r++)
        for (int part = 0; part < 2; part++) {
            const float *x = t->c + r * t->ldc + (part ? t->delta + t->n0 : 0);
            for (int64_t i = 0, n = part ? t->n1 : t->n0; i < n; i++)
                if (isfinite(x[i])) {
                    lanes[0] = x[i] < lanes[0] ? x[i] : lanes[0];
                    lanes[EXT_LANES] = x[i] > lanes[EXT_LANES] ? x[i] : lanes[EXT_LANES];
                }
        }
}

typedef struct pjob {
    const sgemm_pa *A;
    int64_t N;
    sgemm_pack_b_fn pack_b;
    void *arg;
    float *C;
    int64_t ldc, seg, seg_stride;
    const sgemm_epi *ep;
    int64_t ncb, n_jb;        /* columns per block, blocks */
    int64_t mrows, n_mb;      /* rows per task (multiple of mr), row tasks */
    int64_t r0, r1;           /* the rows of A (and C) computed; r0 a multiple of mr */
} pjob;

/* EXT (compile time): calibration's variant, gathering extremes -- so
 * that inference runs the loop it ran before that existed. */
__attribute__((always_inline)) static inline void packed_loop(const int EXT, void *arg, int64_t t0, int64_t t1,
                                                              int tid)
{
    const pjob *j = arg;
    const sgemm_pa *A = j->A;
    const kernel *kn = A->kn;
    const int MR = A->mr, NR = kn->nr;
    const sgemm_epi *ep = j->ep;
    packbuf *pb = get_bufs(0, (size_t)(A->kc * j->ncb));
    /* Calibration (sgemm_epi.ext): this thread's lanes, which the packer
     * (EXT_IN) and the tiles of each last K block (the rest) fold into. */
    float *own = EXT && ep && ep->ext ? ep->ext + (int64_t)tid * EXT_FLOATS : NULL;
    const unsigned tile_stages = EXT && own ? ep->ext_stages & ~(1u << EXT_IN) : 0;
    const int post = ep && ep->post;
    for (int64_t t = t0; t < t1; t++) {
        int64_t jb = t / j->n_mb, mb = t % j->n_mb;
        int64_t j0 = jb * j->ncb, nc = j->N - j0 < j->ncb ? j->N - j0 : j->ncb;
        int64_t i0 = j->r0 + mb * j->mrows, i1 = i0 + j->mrows < j->r1 ? i0 + j->mrows : j->r1;
        /* Without a pack buffer (out of memory) each sliver is packed on
         * the stack as it is used: slower, never wrong. */
        float sb[MAX_NR * 256] __attribute__((aligned(ALIGN)));
        for (int64_t pc = 0; pc < A->K; pc += A->kc) {
            int64_t kc = A->K - pc < A->kc ? A->K - pc : A->kc;
            if (pb) j->pack_b(j->arg, pc, kc, j0, nc, NR, pb->b, own);
            const float *ablk = A->data + pc * A->Mp;
            int first = pc == 0, last = pc + kc >= A->K;
            float *lanes = EXT && last && tile_stages ? own : NULL;
            void (*tile)(int, const ptile *) = EXT && lanes && kn->tile_ext && !post ? kn->tile_ext : kn->tile;
            const int fold_after = EXT && lanes && (tile_stages & 1u << EXT_OUT) && (!kn->tile_ext || post);
            /* Panel by panel, each across the block's slivers: the A panel
             * stays in L1, B slivers come from L2, and C is written in
             * runs of the block's width per row -- few, long write streams,
             * which matters when K is small and the product is bound by
             * writing C. */
            for (int64_t ir = i0; ir < i1; ir += MR) {
                int rows = (int)(i1 - ir < MR ? i1 - ir : MR);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t col = j0 + jr, valid = nc - jr < NR ? nc - jr : NR;
                    if (!pb) j->pack_b(j->arg, pc, kc, col, valid, NR, sb, own);
                    int64_t img = col / j->seg, pos = col % j->seg;
                    int64_t split = j->seg - pos;
                    uint32_t vmask = valid >= 32 ? 0xffffffffu : (1u << valid) - 1;
                    uint32_t lo = split >= 32 ? vmask : ((1u << split) - 1) & vmask;
                    int64_t off = img * j->seg_stride + pos;
                    ptile tl = {.kc = kc, .as = MR, .a = ablk + ir * kc, .b = pb ? pb->b + jr * kc : sb,
                                .c = j->C + ir * j->ldc + off,
                                .r = ep && ep->res ? ep->res + ir * j->ldc + off : NULL, .ldc = j->ldc,
                                .delta = j->seg_stride - j->seg, .lo = lo, .hi = vmask & ~lo,
                                .bias = ep && ep->bias ? ep->bias + ir : NULL, .first = first, .last = last,
                                .clamp = ep && ep->clamp, .silu = ep && ep->silu, .alo = ep ? ep->lo : 0,
                                .ahi = ep ? ep->hi : 0, .ext = lanes, .ext_stages = tile_stages};
                    tile(rows, &tl);
                    if (last && post)
                        for (int r = 0; r < rows; r++) {
                            float *cr = tl.c + r * j->ldc;
                            int64_t n0 = split < valid ? split : valid;
                            ep->post(cr, n0);
                            if (n0 < valid) ep->post(cr + tl.delta + n0, valid - n0);
                        }
                    if (EXT && fold_after) {
                        int64_t n0 = split < valid ? split : valid;
                        tile_out to = {tl.c, j->ldc, tl.delta, n0, valid - n0, rows};
                        fold_tile(lanes, &to);
                    }
                }
            }
        }
    }
}

static void packed_task(void *arg, int64_t t0, int64_t t1, int tid) { packed_loop(0, arg, t0, t1, tid); }
static void packed_task_ext(void *arg, int64_t t0, int64_t t1, int tid) { packed_loop(1, arg, t0, t1, tid); }

unsigned sgemm_ext_stages(const sgemm_pa *A)
{
    /* Without tile_ext, fold_tile after each tile: what is stored. */
    return A->kn->tile_ext ? (1u << EXT_STAGES) - 1 - (1u << EXT_IN) : 1u << EXT_OUT;
}

static int packed_rows(const sgemm_pa *A, int64_t r0, int64_t r1, int64_t N, sgemm_pack_b_fn pack_b, void *arg,
                       float *C, int64_t ldc, int64_t seg, int64_t seg_stride, const sgemm_epi *ep, threadpool *pool)
{
    if (N <= 0 || r1 <= r0) return 0;
    const kernel *kn = A->kn;
    const int MR = A->mr, NR = kn->nr;
    if (seg <= 0 || seg >= N) {
        seg = N;
        seg_stride = 0;
    } else if (seg < NR) {
        return -1;   /* a tile could span more than two segments */
    }
    int nt = tp_nthreads(pool);
    pjob j = {.A = A, .N = N, .pack_b = pack_b, .arg = arg, .C = C, .ldc = ldc, .seg = seg,
              .seg_stride = seg_stride, .ep = ep, .r0 = r0, .r1 = r1};
    /* Column blocks: the packed kc x ncb block of B stays in L2 (~256 KB);
     * narrower when that leaves too few blocks to keep the threads busy. */
    int64_t slivers = (N + NR - 1) / NR;
    int64_t per = (256 * 1024 / (int64_t)sizeof(float)) / A->kc / NR;
    if (per < 1) per = 1;
    if (per > 16) per = 16;
    int64_t want = 4 * (int64_t)nt;
    if (nt > 1 && (slivers + per - 1) / per < want) {
        per = slivers / want;
        if (per < 1) per = 1;
    }
    j.ncb = per * NR;
    j.n_jb = (N + j.ncb - 1) / j.ncb;
    /* Too few column blocks for the threads: split the rows as well (each
     * row task packs its own copy of the B block, cheap next to a GEMM). */
    int64_t panels = (r1 - r0 + MR - 1) / MR;
    j.n_mb = 1;
    if (nt > 1 && j.n_jb < 2 * (int64_t)nt) {
        j.n_mb = (2 * (int64_t)nt + j.n_jb - 1) / j.n_jb;
        if (j.n_mb > panels) j.n_mb = panels;
    }
    j.mrows = (panels + j.n_mb - 1) / j.n_mb * MR;
    j.n_mb = (r1 - r0 + j.mrows - 1) / j.mrows;
    int64_t tasks = j.n_jb * j.n_mb;
    double flops = 2.0 * (double)(r1 - r0) * (double)N * (double)A->K;
    tp_fn task = ep && ep->ext ? packed_task_ext : packed_task;
    if (nt == 1 || tasks == 1 || flops < 2.0 * 64 * 64 * 64) task(&j, 0, tasks, 0);
    else tp_parallel_for(pool, tasks, 1, task, &j);
    return 0;
}

int sgemm_packed(const sgemm_pa *A, int64_t N, sgemm_pack_b_fn pack_b, void *arg, float *C,
                 int64_t ldc, int64_t seg, int64_t seg_stride, const sgemm_epi *ep, threadpool *pool)
{
    return packed_rows(A, 0, A->M, N, pack_b, arg, C, ldc, seg, seg_stride, ep, pool);
}

int sgemm_packed_rows(const sgemm_pa *A, int64_t r0, int64_t r1, int64_t N, sgemm_pack_b_fn pack_b, void *arg,
                      float *C, int64_t ldc, const sgemm_epi *ep, threadpool *pool)
{
    if (r0 < 0 || r0 % A->mr || r1 > A->M) return -1;
    return packed_rows(A, r0, r1, N, pack_b, arg, C, ldc, 0, 0, ep, pool);
}

/* ----------------------------------------------------------- the blocked loop */

typedef struct job {
    const kernel *kn;
    int trans_a, trans_b;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    /* Thread partition: tm x tn rectangles, rows/cols rounded to MR/NR. */
    int64_t tm, tn, mstep, nstep;
} job;

/* C[i][j] = beta * C[i][j] (beta == 0: zero, C not read). */
static void scale_c(float *C, int64_t ldc, int64_t m, int64_t n, float beta)
{
    for (int64_t i = 0; i < m; i++) {
        float *ci = C + i * ldc;
        if (beta == 0.0f) memset(ci, 0, sizeof(float) * (size_t)n);
        else if (beta != 1.0f)
            for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    }
}

/* Reference-quality unblocked product for when the pack buffers cannot be
 * allocated: slow but never fails. */
static void gemm_naive(const job *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int64_t k = 0; k < g->K; k++) {
                float a = g->trans_a ? g->A[k * g->lda + i] : g->A[i * g->lda + k];
                float b = g->trans_b ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j];
                s += a * b;
            }
            float *c = g->C + i * g->ldc + j;
            *c = g->beta == 0.0f ? g->alpha * s : g->alpha * s + g->beta * *c;
        }
}

/* Runs the blocked algorithm on rows [i0, i1) x columns [j0, j1) of C. */
static void gemm_block(const job *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const kernel *kn = g->kn;
    const int MR = kn->mr, NR = kn->nr;
    int64_t m = i1 - i0, n = j1 - j0;
    if (m <= 0 || n <= 0) return;
    int64_t KC = g->K < kn->kc ? g->K : kn->kc;
    /* Round the block sizes to what this rectangle needs so small products
     * do not ask for full-size buffers. */
    int64_t MC = m < kn->mc ? (m + MR - 1) / MR * MR : kn->mc;
    int64_t NC = n < kn->nc ? (n + NR - 1) / NR * NR : kn->nc;
    packbuf *pb = get_bufs((size_t)(MC * KC), (size_t)(KC * NC));
    if (!pb) {
        gemm_naive(g, i0, i1, j0, j1);
        return;
    }
    float tile[MAX_MR * MAX_NR] __attribute__((aligned(ALIGN)));

    for (int64_t jc = j0; jc < j1; jc += NC) {
        int64_t nc = j1 - jc < NC ? j1 - jc : NC;
        for (int64_t pc = 0; pc < g->K; pc += KC) {
            int64_t kc = g->K - pc < KC ? g->K - pc : KC;
            float beta = pc == 0 ? g->beta : 1.0f;
            pack_b(kn, g->trans_b, g->B, g->ldb, pc, jc, kc, nc, pb->b);
            for (int64_t ic = i0; ic < i1; ic += MC) {
                int64_t mc = i1 - ic < MC ? i1 - ic : MC;
                /* Row-major A is read in place; only a last partial sliver
                 * is packed (zero-padded) so the kernel can run full. */
                int64_t full = g->trans_a ? 0 : mc / MR * MR;
                if (full < mc)
                    pack_a(kn, g->trans_a, g->A, g->lda, ic + full, pc, mc - full, kc, pb->a + full * kc);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int64_t nr = nc - jr < NR ? nc - jr : NR;
                    const float *bp = pb->b + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int64_t mr = mc - ir < MR ? mc - ir : MR;
                        ukernel_fn run = ir < full ? kn->rows : kn->packed;
                        const float *ap = ir < full ? g->A + (ic + ir) * g->lda + pc : pb->a + ir * kc;
                        float *c = g->C + (ic + ir) * g->ldc + jc + jr;
                        if (mr == MR && nr == NR) {
                            run(kc, ap, g->lda, bp, c, g->ldc, g->alpha, beta);
                            continue;
                        }
                        if (kn->edge) {
                            kn->edge(ir >= full, (int)mr, (int)nr, kc, ap, g->lda, bp, c, g->ldc,
                                     g->alpha, beta);
                            continue;
                        }
                        /* Edge tile: kernel into a scratch tile, then merge
                         * only the valid part. */
                        run(kc, ap, g->lda, bp, tile, NR, g->alpha, 0.0f);
                        for (int64_t r = 0; r < mr; r++) {
                            float *cr = c + r * g->ldc;
                            const float *tr = tile + r * NR;
                            if (beta == 0.0f)
                                for (int64_t j = 0; j < nr; j++) cr[j] = tr[j];
                            else
                                for (int64_t j = 0; j < nr; j++) cr[j] = tr[j] + beta * cr[j];
                        }
                    }
                }
            }
        }
    }
}

static void gemm_task(void *arg, int64_t b, int64_t e, int tid)
{
    const job *g = arg;
    for (int64_t t = b; t < e; t++) {
        int64_t ti = t / g->tn, tj = t % g->tn;
        int64_t i0 = ti * g->mstep, j0 = tj * g->nstep;
        int64_t i1 = i0 + g->mstep < g->M ? i0 + g->mstep : g->M;
        int64_t j1 = j0 + g->nstep < g->N ? j0 + g->nstep : g->N;
        gemm_block(g, i0, i1, j0, j1);
    }
}

/* --------------------------------------------------- matrix-vector shapes */

#ifdef HAVE_X86
__attribute__((target("avx2,fma")))
static float dot_avx2(const float *x, const float *y, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}

__attribute__((target("avx2,fma")))
static void axpy_avx2(float a, const float *x, float *y, int64_t n)
{
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
        _mm256_storeu_ps(y + i + 8,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

static float dot_c(const float *x, const float *y, int64_t n)
{
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += x[i + j] * y[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}

static void axpy_c(float a, const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static int use_avx2(const kernel *kn) { return kn->simd; }

static float dot(const kernel *kn, const float *x, const float *y, int64_t n)
{
#ifdef HAVE_X86
    if (use_avx2(kn)) return dot_avx2(x, y, n);
#endif
    return dot_c(x, y, n);
}

static void axpy(const kernel *kn, float a, const float *x, float *y, int64_t n)
{
#ifdef HAVE_X86
    if (use_avx2(kn)) {
        axpy_avx2(a, x, y, n);
        return;
    }
#endif
    axpy_c(a, x, y, n);
}

/* y (length L, stride incy) = alpha * Mat * x + beta * y for a matrix-vector
 * product, where element l of the result is the dot product of x with
 * "line" l.  Lines are contiguous (row_major_lines) when each result element
 * reads one contiguous run of Mat; otherwise Mat is walked as axpys.
 * Mat's line l, element k is at mat[l * ls + k * ks]. */
typedef struct gemv_job {
    const kernel *kn;
    const float *mat, *x;
    int64_t ls, ks, incx;    /* strides of mat lines / elements, of x */
    int64_t L, K;
    float alpha, beta;
    float *y;
    int64_t incy;
} gemv_job;

static void gemv_task(void *arg, int64_t b, int64_t e, int tid)
{
    const gemv_job *g = arg;
    if (g->ks == 1 && g->incx == 1) {
        /* Each output is a dot product over a contiguous line. */
        for (int64_t l = b; l < e; l++) {
            float s = g->alpha * dot(g->kn, g->mat + l * g->ls, g->x, g->K);
            float *y = g->y + l * g->incy;
            *y = g->beta == 0.0f ? s : s + g->beta * *y;
        }
        return;
    }
    /* Lines are strided (ls == 1): accumulate whole rows of Mat (contiguous
     * across l) into a local buffer with axpys, in pieces that stay in L1. */
    float acc[1024];
    for (int64_t l0 = b; l0 < e; l0 += 1024) {
        int64_t n = e - l0 < 1024 ? e - l0 : 1024;
        memset(acc, 0, sizeof(float) * (size_t)n);
        for (int64_t k = 0; k < g->K; k++) {
            axpy(g->kn, g->x[k * g->incx], g->mat + k * g->ks + l0, acc, n);
        }
        for (int64_t j = 0; j < n; j++) {
            float *y = g->y + (l0 + j) * g->incy;
            float s = g->alpha * acc[j];
            *y = g->beta == 0.0f ? s : s + g->beta * *y;
        }
    }
}

/* ---------------------------------------------------------------- entry */

void sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
           float beta, float *C, int64_t ldc, threadpool *pool)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    const kernel *kn = get_kernel();
    int nt = tp_nthreads(pool);
    double flops = 2.0 * (double)M * (double)N * (double)K;

    if (M == 1 || N == 1) {
        gemv_job v = {.kn = kn, .K = K, .alpha = alpha, .beta = beta, .y = C};
        if (M == 1) {
            /* c[0][j] = sum_k a[k] * B(k, j): lines of Mat are columns of op(B). */
            v.L = N;
            v.x = A;
            v.incx = trans_a ? lda : 1;
            v.mat = B;
            v.ls = trans_b ? ldb : 1;
            v.ks = trans_b ? 1 : ldb;
            v.incy = 1;
        } else {
            /* c[i][0] = sum_k A(i, k) * b[k]: lines of Mat are rows of op(A). */
            v.L = M;
            v.x = B;
            v.incx = trans_b ? 1 : ldb;
            v.mat = A;
            v.ls = trans_a ? 1 : lda;
            v.ks = trans_a ? lda : 1;
            v.incy = ldc;
        }
        /* The dot path needs unit strides on both sides, the axpy path
         * contiguous lines; other layouts go through the general code. */
        int dot_ok = v.ks == 1 && v.incx == 1;
        int axpy_ok = v.ls == 1;
        if (dot_ok || axpy_ok) {
            int64_t grain = dot_ok ? 16 : 256;
            if (flops < 1e5 || nt == 1) gemv_task(&v, 0, v.L, 0);
            else tp_parallel_for(pool, v.L, grain, gemv_task, &v);
            return;
        }
    }

    job g = {.kn = kn, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
             .alpha = alpha, .beta = beta, .A = A, .B = B, .lda = lda, .ldb = ldb,
             .ldc = ldc, .C = C, .tm = 1, .tn = 1, .mstep = M, .nstep = N};
    /* Small products are done before the pool's wake-up would pay off. */
    if (nt > 1 && flops >= 2.0 * 64 * 64 * 64) {
        /* Pick tm x tn = nt rectangles minimizing the slowest thread's
         * work: its tiles (rounded up, so ragged splits cost what they
         * really cost) plus what it packs.  Every rectangle packs its own B
         * columns, so cutting M repeats B's packing; A is packed only when
         * transposed.  A packed element is weighed as PACK_COST flops. */
        const double PACK_COST = 16.0;
        int64_t mt = (M + kn->mr - 1) / kn->mr, ntl = (N + kn->nr - 1) / kn->nr;
        double best = -1;
        for (int64_t tm = 1; tm <= nt; tm++) {
            if (nt % tm) continue;
            int64_t tn = nt / tm;
            if (tm > mt || tn > ntl) continue;
            double rm = (double)((mt + tm - 1) / tm * kn->mr), rn = (double)((ntl + tn - 1) / tn * kn->nr);
            double cost = 2.0 * rm * rn * (double)K + PACK_COST * (double)K * (rn + (trans_a ? rm : 0.0));
            if (best < 0 || cost < best) {
                best = cost;
                g.tm = tm;
                g.tn = tn;
            }
        }
        if (best < 0) {
            /* nt does not factor within the tile counts: use fewer threads
             * along the longer side. */
            if (mt >= ntl) g.tm = mt < nt ? mt : nt;
            else g.tn = ntl < nt ? ntl : nt;
        }
        g.mstep = (mt + g.tm - 1) / g.tm * kn->mr;
        g.nstep = (ntl + g.tn - 1) / g.tn * kn->nr;
        g.tm = (M + g.mstep - 1) / g.mstep;
        g.tn = (N + g.nstep - 1) / g.nstep;
    }
    if (g.tm * g.tn == 1) gemm_task(&g, 0, 1, 0);
    else tp_parallel_for(pool, g.tm * g.tn, 1, gemm_task, &g);
}
