/* This file declares the Winograd convolution (conv_winograd.c): 3x3
 * stride-1 Conv with group 1 as F(2x2, 3x3) -- each 2x2 output tile from a
 * 4x4 input tile with 16 multiplications per channel pair instead of 36,
 * the products done as 16 GEMMs on the packed engine.  Core-internal
 * (hidden visibility); conv.c decides when it runs. */
#ifndef QK_CORE_OPS_CONV_WINOGRAD_H
#define QK_CORE_OPS_CONV_WINOGRAD_H
#include <stdint.h>
#include "../sgemm.h"
#include "../threadpool.h"

#define CONVW_HIDDEN __attribute__((visibility("hidden")))

/* Weights transformed and packed: M output channels x C input channels. */
typedef struct convw_w convw_w;

/* Transforms W [m, c, 3, 3] (U = G g G^T per channel pair) and packs the
 * 16 resulting m x c matrices for the engine.  Returns NULL when out of
 * memory, when m or c is not positive, or when the CPU lacks AVX-512F (the
 * transforms' only implementation).  The result does not refer to W. */
CONVW_HIDDEN convw_w *convw_pack(const float *w, int64_t m, int64_t c);
CONVW_HIDDEN void convw_free(convw_w *w);   /* NULL is a no-op */
CONVW_HIDDEN int64_t convw_rows(const convw_w *w);       /* M */
CONVW_HIDDEN int64_t convw_channels(const convw_w *w);   /* C */

/* One convolution: x [n, C, h, w] -> y [n, M, oh, ow], padding pt rows on
 * top and pl columns on the left (whatever lies outside x is zero, so the
 * bottom and right padding follow from oh and ow).  The epilogue is
 * sgemm_epi's (bias, residual laid out like y, clamp, SiLU, and the
 * extremes of its stages); its `post` hook is not supported. */
typedef struct convw_args {
    const float *x;
    int64_t n, h, w;
    int64_t oh, ow, pt, pl;
    float *y;
    const sgemm_epi *ep;        /* may be NULL */
} convw_args;

/* Runs the convolution on the pool (NULL: the calling thread).  Returns 0;
 * -1 without writing anything when the arguments are out of the kernel's
 * range (ep->post set); -2 when out of memory. */
CONVW_HIDDEN int convw_run(const convw_w *w, const convw_args *a, threadpool *pool);

#endif
