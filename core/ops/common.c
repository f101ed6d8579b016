/* This file implements the small helpers several kernel files share:
 * optional inputs, integer-list inputs (shapes, axes, pads) and axis
 * normalization; the run-time choice of vector extensions and the vector
 * math (exp, sigmoid) that unary kernels and fused epilogues share. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPS_X86 1
#endif

int op_has_input(const op_ctx *c, int i) { return i < c->n_in && c->in[i] != NULL; }

int dtype_is_int(int dt)
{
    switch (dt) {
    case DT_INT8: case DT_INT16: case DT_INT32: case DT_INT64:
    case DT_UINT8: case DT_UINT16: case DT_UINT32: case DT_UINT64:
        return 1;
    default:
        return 0;
    }
}

int axis_normalize(int64_t a, int rank)
{
    if (a < 0) a += rank;
    return a < 0 || a >= rank ? -1 : (int)a;
}

int op_read_int_list(op_ctx *c, const xt *t, const char *what, int64_t *v, int max, int *n)
{
    /* An upstream value whose type is not inferred yet. */
    if (t->dtype == DT_UNDEFINED) return QK_UNKNOWN;
    if (!dtype_is_int(t->dtype))
        return op_fail(c, QK_EINVAL, "%s must be an integer tensor, got %s", what, dtype_name(t->dtype));
    if (t->rank > 1)
        return op_fail(c, QK_EINVAL, "%s must be 1-D, got rank %d", what, t->rank);
    if (!t->data || t->rank < 0) return QK_UNKNOWN;
    int64_t cnt = xt_numel(t);
    if (cnt < 0) return QK_UNKNOWN;
    if (cnt > max)
        return op_fail(c, QK_ENOTSUP, "%s has %lld values; at most %d are supported", what, (long long)cnt, max);
    for (int64_t i = 0; i < cnt; i++) v[i] = xt_get_i64(t, i);
    *n = (int)cnt;
    return QK_OK;
}

int op_attr_ints_exact(op_ctx *c, const char *name, int want, int64_t def, int64_t *v)
{
    const int64_t *a;
    int n = node_attr_ints(c->node, name, &a);
    if (n < 0) {
        for (int i = 0; i < want; i++) v[i] = def;
        return QK_OK;
    }
    if (n != want)
        return op_fail(c, QK_EINVAL, "attribute '%s' has %d values, expected %d", name, n, want);
    for (int i = 0; i < n; i++) v[i] = a[i];
    return QK_OK;
}

/* ------------------------------------------------- CPU dispatch, vector math */

int op_isa_level(void)
{
    /* Racing first calls all compute the same value. */
    static atomic_int level = -1;
    int cached = atomic_load_explicit(&level, memory_order_relaxed);
    if (cached >= 0) return cached;
    int l = 0;
#ifdef OPS_X86
    const char *isa = getenv("QK_SGEMM_ISA");
    int cap = !isa || !strcmp(isa, "avx512") ? 2 : !strcmp(isa, "avx2") ? 1 : 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = 1;
    if (l == 1 && __builtin_cpu_supports("avx512f")) l = 2;
    if (l > cap) l = cap;
#endif
    atomic_store_explicit(&level, l, memory_order_relaxed);
    return l;
}

/* exp(x) for float lanes: Cephes' expf.  x is clamped to where expf is
 * finite and normal; n = round(x / ln 2) and r = x - n ln 2 (in two parts,
 * so r is exact), exp(r) by a degree-6 polynomial on |r| <= ln2/2, times
 * 2^n built in the exponent bits.  Within 2 ulp of expf on the clamped
 * range; NaN propagates through the clamps' operand order. */
#ifdef OPS_X86
#define EXP_HI 88.3762626647949f
#define EXP_LO -87.3365447504f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f

__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
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

/* sigmoid(x) = 1 / (1 + exp(-x)); x * sigmoid(x) for SiLU. */
__attribute__((target("avx512f"))) static inline __m512 sigmoid512(__m512 x)
{
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

__attribute__((target("avx2,fma"))) static inline __m256 sigmoid256(__m256 x)
{
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

#define VEC_LOOPS(name, f512, f256)                                                     \
    __attribute__((target("avx512f"))) static void name##_avx512(const float *x, float *y, \
                                                                  int64_t n)             \
    {                                                                                   \
        int64_t i = 0;                                                                  \
        for (; i + 16 <= n; i += 16) {                                                  \
            __m512 v = _mm512_loadu_ps(x + i);                                          \
            _mm512_storeu_ps(y + i, f512);                                              \
        }                                                                               \
        if (i < n) {                                                                    \
            __mmask16 m = (__mmask16)((1u << (n - i)) - 1);                             \
            __m512 v = _mm512_maskz_loadu_ps(m, x + i);                                 \
            _mm512_mask_storeu_ps(y + i, m, f512);                                      \
        }                                                                               \
    }                                                                                   \
    __attribute__((target("avx2,fma"))) static void name##_avx2(const float *x, float *y,  \
                                                                 int64_t n)              \
    {                                                                                   \
        int64_t i = 0;                                                                  \
        for (; i + 8 <= n; i += 8) {                                                    \
            __m256 v = _mm256_loadu_ps(x + i);                                          \
            _mm256_storeu_ps(y + i, f256);                                              \
        }                                                                               \
        if (i < n) {                                                                    \
            __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)),            \
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));  \
            __m256 v = _mm256_maskload_ps(x + i, m);                                    \
            _mm256_maskstore_ps(y + i, m, f256);                                        \
        }                                                                               \
    }

VEC_LOOPS(exp, exp512(v), exp256(v))
VEC_LOOPS(sigmoid, sigmoid512(v), sigmoid256(v))
VEC_LOOPS(silu, _mm512_mul_ps(v, sigmoid512(v)), _mm256_mul_ps(v, sigmoid256(v)))
#endif

/* Portable versions: the two-branch form never divides inf by inf. */
static float sigmoid1(float x)
{
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

void vec_exp(const float *x, float *y, int64_t n)
{
#ifdef OPS_X86
    int l = op_isa_level();
    if (l >= 2) { exp_avx512(x, y, n); return; }
    if (l >= 1) { exp_avx2(x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

void vec_sigmoid(const float *x, float *y, int64_t n)
{
#ifdef OPS_X86
    int l = op_isa_level();
    if (l >= 2) { sigmoid_avx512(x, y, n); return; }
    if (l >= 1) { sigmoid_avx2(x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = sigmoid1(x[i]);
}

void vec_silu(const float *x, float *y, int64_t n)
{
#ifdef OPS_X86
    int l = op_isa_level();
    if (l >= 2) { silu_avx512(x, y, n); return; }
    if (l >= 1) { silu_avx2(x, y, n); return; }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoid1(x[i]);
}
