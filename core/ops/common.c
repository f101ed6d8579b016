/* This file implements the small helpers several kernel files share:
 * optional inputs, integer-list inputs (shapes, axes, pads) and axis
 * normalization; the run-time choice of vector extensions and the vector
 * math (exp, sigmoid) that unary kernels and fused epilogues share. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "../vecmath.h"
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

/* The vector math itself is in vecmath.h (shared with sgemm.c's epilogues). */
#ifdef OPS_X86
#define exp512 qk_exp512
#define exp256 qk_exp256
#define sigmoid512 qk_sigmoid512
#define sigmoid256 qk_sigmoid256

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

#ifdef OPS_X86
__attribute__((target("avx512f"))) static void finite_extremes_avx512(const float *x, int64_t n, float *lo,
                                                                      float *hi)
{
    __m512 l = _mm512_set1_ps(*lo), h = _mm512_set1_ps(*hi);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        qk_fold512(&l, &h, _mm512_maskz_loadu_ps(m, x + i), m, 1);
    }
    *lo = _mm512_reduce_min_ps(l);
    *hi = _mm512_reduce_max_ps(h);
}
#endif

void vec_finite_extremes(const float *x, int64_t n, float *lo, float *hi)
{
#ifdef OPS_X86
    if (op_isa_level() >= 2) {
        finite_extremes_avx512(x, n, lo, hi);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            *lo = x[i] < *lo ? x[i] : *lo;
            *hi = x[i] > *hi ? x[i] : *hi;
        }
}

/* ---------------------------------------------------------- scratch memory */

#define SCRATCH_SLOTS 5

typedef struct scratch {
    void *p[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
} scratch;

static pthread_key_t scratch_key;
static int scratch_key_ok;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *s = p;
    if (!s) return;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

void *op_scratch(int slot, size_t bytes)
{
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[slot] < bytes) {
        /* Grow by half again so a slowly growing need does not reallocate
         * every call. */
        size_t want = bytes + bytes / 2;
        want = (want + 63) / 64 * 64;
        void *p = aligned_alloc(64, want);
        if (!p) return NULL;
        free(s->p[slot]);
        s->p[slot] = p;
        s->cap[slot] = want;
    }
    return s->p[slot];
}

/* ------------------------------------------------------ epilogue after the fact */

#ifdef OPS_X86
__attribute__((target("avx512f")))
static void epi_clamp_avx512(float *y, const float *res, int64_t n, float lo, float hi)
{
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    int64_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(m, y + i);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + i));
        /* max(lo, v), then min(hi, .): NaN passes, as in Clip. */
        _mm512_mask_storeu_ps(y + i, m, _mm512_min_ps(vhi, _mm512_max_ps(vlo, v)));
    }
}
#endif

void op_apply_epilogue(const op_epilogue *ep, float *y, const float *res, int64_t n)
{
    float lo = ep->act == OP_ACT_CLAMP ? ep->lo : -INFINITY, hi = ep->act == OP_ACT_CLAMP ? ep->hi : INFINITY;
#ifdef OPS_X86
    if (op_isa_level() >= 2) {
        if (res || ep->act == OP_ACT_CLAMP) epi_clamp_avx512(y, res, n, lo, hi);
        if (ep->act == OP_ACT_SILU) vec_silu(y, y, n);
        return;
    }
#endif
    if (res)
        for (int64_t i = 0; i < n; i++) y[i] += res[i];
    if (ep->act == OP_ACT_CLAMP)
        /* Like Clip: NaN passes. */
        for (int64_t i = 0; i < n; i++) {
            float v = y[i] < lo ? lo : y[i];
            y[i] = v > hi ? hi : v;
        }
    else if (ep->act == OP_ACT_SILU)
        vec_silu(y, y, n);
}

/* ------------------------------------------------------------ executor hooks */

static const op_prep preps[] = {
    {"Conv", conv_prepare, conv_release, 1, conv_ext_stages},
};

const op_prep *op_prep_lookup(const char *op_type)
{
    for (size_t i = 0; i < sizeof preps / sizeof preps[0]; i++)
        if (!strcmp(preps[i].name, op_type)) return &preps[i];
    return NULL;
}
