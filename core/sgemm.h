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

#endif
