/* This file declares the output-channel-vectorized direct convolution
 * (conv_direct.c): Conv with group 1 computed as an implicit GEMM whose
 * weights are the vector operand, packed once, and whose input values are
 * broadcast straight from the (padded) input, so no im2col block is ever
 * built.  Core-internal (hidden visibility); conv.c decides when it runs. */
#ifndef QK_CORE_OPS_CONV_DIRECT_H
#define QK_CORE_OPS_CONV_DIRECT_H
#include <stdint.h>
#include "../sgemm.h"
#include "../threadpool.h"

#define CONVD_HIDDEN __attribute__((visibility("hidden")))

/* Weights packed for the kernel: M output channels x K taps. */
typedef struct convd_w convd_w;

/* Packs row-major W (M x K) in blocks of 32 output channels.  Returns NULL
 * when out of memory, when M or K is not positive, or when the CPU lacks
 * AVX-512F (the kernel's only implementation); the caller then keeps its
 * other paths.  The result does not refer to W. */
CONVD_HIDDEN convd_w *convd_pack(const float *w, int64_t m, int64_t k);
CONVD_HIDDEN void convd_free(convd_w *w);   /* NULL is a no-op */
CONVD_HIDDEN int64_t convd_rows(const convd_w *w);    /* M */
CONVD_HIDDEN int64_t convd_depth(const convd_w *w);   /* K */

/* One convolution as an implicit GEMM over n images:
 *   y[(img * M + m) * plane + q * width + o] =
 *       epi(sum_k W[m][k] * x[img * img_stride + row_off[q] + roff[k] + o * step])
 * for q < rows, o < width (plane == rows * width), step 1 or 2 (the
 * conv's stride along W).  x is the input itself for an unpadded conv, or
 * a zero-padded copy of it (conv.c's `padded`).  The
 * epilogue is sgemm_epi's (bias, residual laid out like y, clamp, SiLU);
 * its `post` hook is not supported. */
typedef struct convd_args {
    const float *x;
    int64_t n, img_stride;
    const int64_t *roff;        /* K tap offsets */
    const int64_t *row_off;     /* `rows` row offsets */
    int64_t rows, width, plane;
    int64_t step;               /* input floats between a row's outputs: 1 or 2 */
    float *y;
    const sgemm_epi *ep;        /* may be NULL */
} convd_args;

/* Runs the convolution on the pool (NULL: the calling thread).  Returns 0,
 * or -1 without writing anything when the arguments are out of the
 * kernel's range (ep->post set, another step). */
CONVD_HIDDEN int convd_run(const convd_w *w, const convd_args *a, threadpool *pool);

#endif
