/* This file implements the vector math that kernels share: exp and the
 * logistic sigmoid on AVX-512 and AVX2 lanes, as static inline functions so
 * that GEMM epilogues (sgemm.c) and element-wise kernels (ops/common.c)
 * compile them into their own loops.  Include only from x86 builds
 * (guarded by the includer); the functions carry their target attributes.
 *
 * exp is Cephes' expf: x clamped to where expf is finite and normal, n =
 * round(x / ln 2), r = x - n ln 2 in two parts (exact), exp(r) by a
 * degree-6 polynomial, times 2^n; within 2 ulp of expf on the clamped range,
 * and NaN propagates (the clamps keep x as their second operand).  The
 * sigmoid 1 / (1 + exp(-x)) takes the reciprocal as rcp14 plus one Newton
 * step (~1 ulp), much cheaper than a division. */
#ifndef QK_CORE_VECMATH_H
#define QK_CORE_VECMATH_H
#include <immintrin.h>
#include <math.h>

#define QK_EXP_HI 88.3762626647949f
#define QK_EXP_LO -87.3365447504f
#define QK_LOG2E 1.44269504088896341f
#define QK_LN2_HI 0.693359375f
#define QK_LN2_LO -2.12194440e-4f

__attribute__((target("avx512f"))) static inline __m512 qk_exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(QK_EXP_HI), _mm512_max_ps(_mm512_set1_ps(QK_EXP_LO), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(QK_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(QK_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(QK_LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx2,fma"))) static inline __m256 qk_exp256(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(QK_EXP_HI), _mm256_max_ps(_mm256_set1_ps(QK_EXP_LO), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(QK_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(QK_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(QK_LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n: n + 127 in the exponent field (n is in [-126, 127] after the clamp). */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 1 / d for d >= 1 (d = 1 + exp(-x)): rcp14 refined by one Newton step;
 * d = inf gives 0. */
__attribute__((target("avx512f"))) static inline __m512 qk_sigmoid512(__m512 x)
{
    __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), qk_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x)));
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

__attribute__((target("avx2,fma"))) static inline __m256 qk_sigmoid256(__m256 x)
{
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, qk_exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* Calibration's extremes: folds lanes m of v into (lo, hi) -- only the
 * finite ones with `finite`, else any but NaN (min(v, lo) is lo when v is
 * NaN: the second operand wins).  Shared by every kernel that gathers
 * them (sgemm.h's EXT_* stages). */
__attribute__((target("avx512f"), always_inline)) static inline void qk_fold512(__m512 *lo, __m512 *hi, __m512 v,
                                                                                __mmask16 m, const int finite)
{
    if (finite) m = _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(v), _mm512_set1_ps(INFINITY), _CMP_LT_OQ);
    *lo = _mm512_mask_min_ps(*lo, m, v, *lo);
    *hi = _mm512_mask_max_ps(*hi, m, v, *hi);
}

#endif
