/* This file implements the AVX-512 store of one vector of a fused conv
 * epilogue, shared by the kernels that finish their outputs in registers
 * (conv_direct.c, conv_winograd.c): bias already added, then the residual,
 * clamp and SiLU of sgemm_epi, the store, and the calibration extremes of
 * the stages sgemm.h's EXT_* describe.  Core-internal. */
#ifndef QK_CORE_OPS_EPILOGUE512_H
#define QK_CORE_OPS_EPILOGUE512_H
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "../sgemm.h"
#include "../vecmath.h"

/* Finishes v (A.B + bias) under mask m into y, reading the residual at res
 * (or NULL); folds the stages st (0 unless ep->ext) into lo/hi, indexed by
 * EXT_*.  ep NULL: v is stored as it is. */
__attribute__((target("avx512f"), always_inline)) static inline void epi_store512(__m512 v, __mmask16 m, float *y,
                                                                                  const float *res,
                                                                                  const sgemm_epi *ep, unsigned st,
                                                                                  __m512 *lo, __m512 *hi)
{
    if (ep) {
        if (st & 1u << EXT_HEAD) qk_fold512(&lo[EXT_HEAD], &hi[EXT_HEAD], v, m, 1);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
        if (st & 1u << EXT_SUM) qk_fold512(&lo[EXT_SUM], &hi[EXT_SUM], v, m, 1);
        /* max(lo, x) then min(hi, .): a NaN x passes, as in the other
         * Relu/Clip kernels. */
        if (ep->clamp) v = _mm512_min_ps(_mm512_set1_ps(ep->hi), _mm512_max_ps(_mm512_set1_ps(ep->lo), v));
        if (ep->silu) {
            __m512 g = qk_sigmoid512(v);
            if (st & 1u << EXT_SIG) qk_fold512(&lo[EXT_SIG], &hi[EXT_SIG], g, m, 0);
            v = _mm512_mul_ps(v, g);
        }
    }
    _mm512_mask_storeu_ps(y, m, v);
    if (st & 1u << EXT_OUT) qk_fold512(&lo[EXT_OUT], &hi[EXT_OUT], v, m, 0);
}

#endif
#endif
