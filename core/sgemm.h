/* This file implements single-precision GEMM for Conv, ConvTranspose, Gemm and
 * MatMul: C = alpha * op(A) * op(B) + beta * C, row-major, with packing,
 * cache blocking and an AVX2/FMA micro-kernel chosen at run time (portable
 * C fallback), split over the thread pool. */
#ifndef QK_CORE_SGEMM_H
#define QK_CORE_SGEMM_H
#include <stdint.h>
#include "threadpool.h"

/* Row-major: A is M x K (or K x M when trans_a), lda its row stride; B is
 * K x N (or N x K when trans_b); C is M x N with row stride ldc.  beta == 0
 * means C is not read (may hold garbage/NaN).  Thread-safe; pool may be NULL. */
void sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
           float beta, float *C, int64_t ldc, threadpool *pool);

/* ---- products with pre-packed A (convolution and Gemm weights) ----------
 * A constant left operand is packed once (sgemm_pack_a) into the layout the
 * micro-kernel streams; each product then packs only B, through a callback,
 * so the caller can build B on the fly (im2col straight into the packed
 * layout), and C is written once, with an epilogue applied in registers. */

typedef struct sgemm_pa sgemm_pa;

/* Packs row-major A (M x K, row stride lda) for the kernel the CPU runs.
 * Returns NULL when out of memory (or M, K <= 0).  The result does not
 * refer to A. */
sgemm_pa *sgemm_pack_a(const float *A, int64_t lda, int64_t M, int64_t K);
void sgemm_pa_free(sgemm_pa *pa);   /* NULL is a no-op */
int64_t sgemm_pa_rows(const sgemm_pa *pa);    /* M */
int64_t sgemm_pa_depth(const sgemm_pa *pa);   /* K */
/* Columns per sliver of packed B the kernel reads (the callback's nr). */
int sgemm_pa_nr(const sgemm_pa *pa);
/* Rows per panel of packed A: where sgemm_packed_rows may start. */
int sgemm_pa_mr(const sgemm_pa *pa);
/* The kernel products use now: "c", "avx2" or "avx512" (QK_SGEMM_ISA and
 * the tests can narrow it; other kernels that share its vector width,
 * such as conv_direct.c's, follow it). */
const char *sgemm_isa(void);

/* Writes rows [k0, k0 + kc) x columns [j0, j0 + nc) of B into dst, in
 * slivers of nr columns: sliver s (columns j0 + s*nr ..) is kc x nr floats,
 * k-major, at dst + s * nr * kc; columns past nc in the last sliver must be
 * zero.  dst is 64-byte aligned.  Called from pool threads concurrently
 * (disjoint dst).  lanes: the calling thread's extremes (sgemm_epi.ext),
 * or NULL; a packer that computes B may fold it into stage EXT_IN. */
typedef void (*sgemm_pack_b_fn)(void *arg, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr,
                                float *dst, float *lanes);

/* Applied to each element of C = A.B once complete, in this order:
 * + bias[row], + res (laid out like C), clamp to [lo, hi] (NaN passes),
 * silu: x * sigmoid(x), then post() over each finished run of a row (in
 * place). */
typedef struct sgemm_epi {
    const float *bias;
    const float *res;
    int clamp;
    float lo, hi;
    int silu;
    void (*post)(float *x, int64_t n);
    /* Calibration, or NULL: the extremes of the epilogue's stages in
     * ext_stages (1 << EXT_*) are folded into pool thread tid's lanes at
     * ext + tid * EXT_FLOATS as the values leave the kernel, instead of
     * an observer scanning them again (see EXT_* below). */
    float *ext;
    unsigned ext_stages;
} sgemm_epi;

/* The values of an epilogue y = act(A.B + bias + residual) whose extremes
 * a kernel can gather.  Each stage's lanes are lo[16] then hi[16] (start
 * them at +inf and -inf).  HEAD and SUM take only finite values.  SIG and
 * OUT skip NaN (min(x, lo) is lo for a NaN x) but not infinities: a
 * sigmoid is finite whatever its input, and an infinity in OUT's lanes
 * tells the caller to scan the stored output instead. */
enum {
    EXT_OUT,       /* what is stored */
    EXT_HEAD,      /* A.B + bias */
    EXT_SUM,       /* ... + residual */
    EXT_SIG,       /* SiLU's sigmoid of that */
    EXT_IN,        /* B as pack_b computes it (finite values only) */
    EXT_STAGES
};
#define EXT_LANES 16
#define EXT_STAGE_FLOATS (2 * EXT_LANES)
#define EXT_FLOATS (EXT_STAGES * EXT_STAGE_FLOATS)

/* The stages (1 << EXT_*) sgemm_packed gathers for A's kernel. */
unsigned sgemm_ext_stages(const sgemm_pa *A);

/* C = epi(A.B) for packed A (M x K) and B (K x N) from pack_b.  Column j
 * of C is at C + (j / seg) * seg_stride + j % seg, row i at + i * ldc:
 * seg = N (or <= 0) is a plain matrix; seg = H*W, seg_stride = M*H*W, ldc
 * = H*W lays the columns of a batch out as NCHW images.  ep may be NULL.
 * Returns 0, or -1 when seg is smaller than the kernel's nr (a tile would
 * span three images) and nothing was written. */
int sgemm_packed(const sgemm_pa *A, int64_t N, sgemm_pack_b_fn pack_b, void *arg, float *C,
                 int64_t ldc, int64_t seg, int64_t seg_stride, const sgemm_epi *ep, threadpool *pool);

/* Rows [r0, r1) of sgemm_packed's C (plain matrix: seg = N): C points at
 * row 0 as there, and rows outside the range are not written.  Returns 0,
 * or -1 when r0 is not a multiple of sgemm_pa_mr or r1 > M. */
int sgemm_packed_rows(const sgemm_pa *A, int64_t r0, int64_t r1, int64_t N, sgemm_pack_b_fn pack_b, void *arg,
                      float *C, int64_t ldc, const sgemm_epi *ep, threadpool *pool);

#endif
