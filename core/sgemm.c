/* This file implements single-precision GEMM (see sgemm.h).
 *
 * The structure is GotoBLAS/BLIS's: C is computed in MR x NR tiles by a
 * register-blocked micro-kernel that reads A and B from packed buffers, so
 * its inner loop is a stream of aligned loads no matter how the caller laid
 * the matrices out (transposed or not, any leading dimension).  The loops
 * around it block K by KC (a KC x NR sliver of packed B stays in L1), M by MC
 * (the packed MC x KC block of A stays in L2) and N by NC (the packed KC x NC
 * panel of B stays in L3).  alpha and beta are applied when a tile is
 * written: beta by the first KC block, later blocks accumulate.  Row-major
 * A is not packed at all: the kernel reads its rows in place, which is as
 * fast once the block sits in L2 and saves a full copy of A per call.
 *
 * The micro-kernel is picked once at run time: AVX-512F (12 x 32), AVX2+FMA
 * (6 x 16), or portable C.  Threads each take a rectangle of C and run the
 * serial algorithm on it with their own (thread-local, reused) pack buffers;
 * splitting the larger of M and N keeps the duplicated packing small.
 *
 * M == 1 or N == 1 (fully connected layers at batch 1, matrix-vector
 * products) bypasses packing, which there would cost as much as the
 * product itself. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "sgemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define MAX_MR 16
#define MAX_NR 32
#define ALIGN 64

/* Full MR x NR tile: C = alpha * acc + beta * C (beta == 0: C not read),
 * where acc is the product of a kc-long sliver of A (MR rows) and one of
 * packed B (NR values per k).  Each kernel comes in two flavours: `packed`
 * reads A packed (MR values per k), `rows` reads A in place, row i at
 * a + i * lda, which saves packing A when it is already row-major: for
 * products with few columns (late conv layers, batch-1 Gemm) packing A
 * would cost as much as the arithmetic. */
typedef void (*ukernel_fn)(int64_t kc, const float *a, int64_t lda, const float *b,
                           float *c, int64_t ldc, float alpha, float beta);

typedef struct kernel {
    const char *name;
    int mr, nr;
    int64_t kc, mc, nc;   /* cache blocking; mc % mr == 0, nc % nr == 0 */
    ukernel_fn packed, rows;
    int simd;             /* the AVX2 helpers may be used */
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
/* 6 x 16 with AVX2+FMA: 12 accumulators, 2 B vectors, 1 broadcast = 15 of
 * the 16 ymm registers.  rs/cs as in uk_c; the wrappers pass constants so
 * each flavour compiles to its own tight loop. */
#define STORE8(p, v)                                                              \
    do {                                                                          \
        __m256 t_ = _mm256_mul_ps(valpha, v);                                     \
        if (beta == 0.0f) _mm256_storeu_ps(p, t_);                                \
        else _mm256_storeu_ps(p, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(p), t_)); \
    } while (0)
#define ROW256(i)                                                                 \
    do {                                                                          \
        __m256 av = _mm256_broadcast_ss(a + i * rs);                              \
        c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);                               \
        c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);                               \
    } while (0)
#define DECL256(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps()
#define OUT256(i) do { STORE8(c + i * ldc, c##i##0); STORE8(c + i * ldc + 8, c##i##1); } while (0)

__attribute__((target("avx2,fma"), always_inline))
static inline void uk_avx2(int64_t kc, const float *a, int64_t rs, int64_t cs, const float *b,
                           float *c, int64_t ldc, float alpha, float beta)
{
    DECL256(0); DECL256(1); DECL256(2); DECL256(3); DECL256(4); DECL256(5);
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        ROW256(0); ROW256(1); ROW256(2); ROW256(3); ROW256(4); ROW256(5);
        a += cs;
        b += 16;
    }
    __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
    OUT256(0); OUT256(1); OUT256(2); OUT256(3); OUT256(4); OUT256(5);
}

__attribute__((target("avx2,fma")))
static void uk_avx2_packed(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                           int64_t ldc, float alpha, float beta)
{
    uk_avx2(kc, a, 1, 6, b, c, ldc, alpha, beta);
}

__attribute__((target("avx2,fma")))
static void uk_avx2_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                         int64_t ldc, float alpha, float beta)
{
    uk_avx2(kc, a, lda, 1, b, c, ldc, alpha, beta);
}

/* 12 x 32 with AVX-512F: 24 accumulators, 2 B vectors, broadcasts folded
 * into the FMAs' memory operands. */
#define STORE16(p, v)                                                             \
    do {                                                                          \
        __m512 t_ = _mm512_mul_ps(valpha, v);                                     \
        if (beta == 0.0f) _mm512_storeu_ps(p, t_);                                \
        else _mm512_storeu_ps(p, _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(p), t_)); \
    } while (0)
#define ROW512(i)                                                                 \
    do {                                                                          \
        __m512 av = _mm512_set1_ps(a[i * rs]);                                    \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                               \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                               \
    } while (0)
#define DECL512(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps()
#define OUT512(i) do { STORE16(c + i * ldc, c##i##0); STORE16(c + i * ldc + 16, c##i##1); } while (0)

__attribute__((target("avx512f"), always_inline))
static inline void uk_avx512(int64_t kc, const float *a, int64_t rs, int64_t cs, const float *b,
                             float *c, int64_t ldc, float alpha, float beta)
{
    DECL512(0); DECL512(1); DECL512(2); DECL512(3); DECL512(4); DECL512(5);
    DECL512(6); DECL512(7); DECL512(8); DECL512(9); DECL512(10); DECL512(11);
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        ROW512(0); ROW512(1); ROW512(2); ROW512(3); ROW512(4); ROW512(5);
        ROW512(6); ROW512(7); ROW512(8); ROW512(9); ROW512(10); ROW512(11);
        a += cs;
        b += 32;
    }
    __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
    OUT512(0); OUT512(1); OUT512(2); OUT512(3); OUT512(4); OUT512(5);
    OUT512(6); OUT512(7); OUT512(8); OUT512(9); OUT512(10); OUT512(11);
}

__attribute__((target("avx512f")))
static void uk_avx512_packed(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                             int64_t ldc, float alpha, float beta)
{
    uk_avx512(kc, a, 1, 12, b, c, ldc, alpha, beta);
}

__attribute__((target("avx512f")))
static void uk_avx512_rows(int64_t kc, const float *a, int64_t lda, const float *b, float *c,
                           int64_t ldc, float alpha, float beta)
{
    uk_avx512(kc, a, lda, 1, b, c, ldc, alpha, beta);
}
#endif

static const kernel k_c = {"c", C_MR, C_NR, 256, 128, 2048, uk_c_packed, uk_c_rows, 0};
#ifdef HAVE_X86
static const kernel k_avx2 = {"avx2", 6, 16, 256, 144, 2048, uk_avx2_packed, uk_avx2_rows, 1};
static const kernel k_avx512 = {"avx512", 12, 32, 256, 144, 2048, uk_avx512_packed, uk_avx512_rows, 1};
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
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) return &k_avx512;
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

/* Packs the kc x nc block of op(B) starting at (p0, j0) into NR-column
 * slivers, k-major (NR values per k); columns past nc are zero. */
static void pack_b(const kernel *kn, int trans, const float *B, int64_t ldb,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc, float *out)
{
    const int NR = kn->nr;
    for (int64_t j = 0; j < nc; j += NR) {
        int64_t n = nc - j < NR ? nc - j : NR;
        if (!trans) {
            if (n == NR) {
                for (int64_t k = 0; k < kc; k++)
                    memcpy(out + k * NR, B + (p0 + k) * ldb + j0 + j, sizeof(float) * (size_t)NR);
            } else {
                for (int64_t k = 0; k < kc; k++) {
                    const float *src = B + (p0 + k) * ldb + j0 + j;
                    float *dst = out + k * NR;
                    int64_t c = 0;
                    for (; c < n; c++) dst[c] = src[c];
                    for (; c < NR; c++) dst[c] = 0.0f;
                }
            }
        } else {
            for (int64_t c = 0; c < n; c++) {
                const float *src = B + (j0 + j + c) * ldb + p0;
                float *dst = out + c;
                for (int64_t k = 0; k < kc; k++) dst[k * NR] = src[k];
            }
            if (n < NR)
                for (int64_t k = 0; k < kc; k++)
                    for (int64_t c = n; c < NR; c++) out[k * NR + c] = 0.0f;
        }
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
    if (*cap >= need) return *p;
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
                        /* Edge tile: full kernel into a scratch tile, then
                         * merge only the valid part. */
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
        /* Pick tm x tn = nt rectangles as square as possible in tiles: each
         * rectangle packs its own A rows and B columns, so square ones
         * duplicate the least.  Never cut below one tile. */
        int64_t mt = (M + kn->mr - 1) / kn->mr, ntl = (N + kn->nr - 1) / kn->nr;
        int64_t best_tm = 1, best_tn = 1;
        double best = -1;
        for (int64_t tm = 1; tm <= nt; tm++) {
            if (nt % tm) continue;
            int64_t tn = nt / tm;
            if (tm > mt || tn > ntl) continue;
            double rm = (double)M / (double)tm, rn = (double)N / (double)tn;
            double cost = 1.0 / rm + 1.0 / rn;   /* packing traffic per flop */
            if (best < 0 || cost < best) {
                best = cost;
                best_tm = tm;
                best_tn = tn;
            }
        }
        if (best < 0) {
            /* nt does not factor within the tile counts: use fewer threads
             * along the longer side. */
            if (mt >= ntl) best_tm = mt < nt ? mt : nt;
            else best_tn = ntl < nt ? ntl : nt;
        }
        g.tm = best_tm;
        g.tn = best_tn;
        g.mstep = (mt + g.tm - 1) / g.tm * kn->mr;
        g.nstep = (ntl + g.tn - 1) / g.tn * kn->nr;
        g.tm = (M + g.mstep - 1) / g.mstep;
        g.tn = (N + g.nstep - 1) / g.nstep;
    }
    if (g.tm * g.tn == 1) gemm_task(&g, 0, 1, 0);
    else tp_parallel_for(pool, g.tm * g.tn, 1, gemm_task, &g);
}
