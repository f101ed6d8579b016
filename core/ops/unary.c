/* This file implements the element-wise unary kernels: activations (Relu,
 * Sigmoid, Gelu, ...), Clip, the math functions (Exp, Sqrt, the trig
 * family, rounding), and the predicates (IsNaN, IsInf, Not).
 *
 * Every operator is one row of UNARY_OPS below.  A row names the scalar
 * functions of the operator; the drivers at the bottom of the file turn
 * them into kernels.  float32 -- what CNNs run -- goes through a loop
 * generated from the scalar expression so the compiler can inline and
 * vectorize it; double and the integer types go through a slower generic
 * path (double math, or int64 math for the few ops defined on integers).
 * Large tensors are split over the thread pool. */
#include <float.h>
#include <stdint.h>
#include <string.h>
#include <tgmath.h>
#include "ops.h"

/* Elements per pool task: small enough to split a 1x64x112x112 activation
 * over a few cores, large enough that the task overhead does not show. */
#define GRAIN 16384

/* Attribute values of the node being run, decoded once per run. */
typedef struct uparams {
    double alpha, beta, gamma;
    double lo, hi;            /* Clip bounds, float types */
    int64_t ilo, ihi;         /* Clip bounds, integer types */
    int uns;                  /* input is an unsigned integer type */
    int flag0, flag1;         /* op-specific switches (Gelu, IsInf) */
} uparams;

typedef void (*f32_loop)(const float *restrict x, float *restrict y, int64_t n,
                         const uparams *p);
typedef double (*f64_fn)(double x, const uparams *p);
typedef int64_t (*i64_fn)(int64_t x, const uparams *p);
typedef int (*attrs_fn)(op_ctx *c, uparams *p);

/* Input type classes an operator accepts. */
enum { FLT = 1, SGN = 2, UNS = 4, BOOL = 8, INT = SGN | UNS };

typedef struct unary {
    f32_loop f32;     /* float32 -> float32 fast path, or NULL */
    f64_fn f64;       /* float types (and float32 without a fast path) */
    i64_fn i64;       /* integer and bool types */
    int classes;      /* accepted input classes */
    attrs_fn attrs;   /* reads attributes or bound inputs, or NULL */
} unary;

static int dt_class(int dt)
{
    switch (dt) {
    case DT_FLOAT: case DT_DOUBLE: return FLT;
    case DT_INT8: case DT_INT16: case DT_INT32: case DT_INT64: return SGN;
    case DT_UINT8: case DT_UINT16: case DT_UINT32: case DT_UINT64: return UNS;
    case DT_BOOL: return BOOL;
    default: return 0;
    }
}

/* ---- scalar definitions ---------------------------------------------------
 * FLOAT_FAMILY(name, expr) defines name_f64 and the float32 loop name_f32
 * from one expression of x (of type T) and p.  <tgmath.h> makes exp(x) expf
 * for float, so the float32 path computes in float like other runtimes do;
 * constants are cast to T to keep it from silently promoting to double.
 * The loop works on a local copy of the parameters: with `p` pointing at the
 * caller's struct the compiler would have to assume the stores to y may
 * change it, and would not vectorize.  It goes in blocks of 16 with a scalar
 * tail because gcc -O2 only vectorizes loops whose trip count it knows to
 * need no epilogue. */
#define FLOAT_FAMILY(name, expr)                                              \
    static inline float name##_1f(float x, const uparams *p)                  \
    {                                                                         \
        typedef float T __attribute__((unused));                              \
        return (expr);                                                        \
    }                                                                         \
    static double name##_f64(double x, const uparams *p)                      \
    {                                                                         \
        typedef double T __attribute__((unused));                             \
        return (expr);                                                        \
    }                                                                         \
    __attribute__((unused))                                                   \
    static void name##_f32(const float *restrict xs, float *restrict ys,      \
                           int64_t n, const uparams *pp)                      \
    {                                                                         \
        const uparams q = *pp;                                                \
        int64_t i = 0;                                                        \
        for (; i + 16 <= n; i += 16)                                          \
            for (int j = 0; j < 16; j++) ys[i + j] = name##_1f(xs[i + j], &q); \
        for (; i < n; i++) ys[i] = name##_1f(xs[i], &q);                      \
    }

#define SOFTPLUS(x) ((x) > 0 ? (x) + log1p(exp(-(x))) : log1p(exp(x)))

FLOAT_FAMILY(relu, x < 0 ? (T)0 : x)
/* Both halves unconditionally: a multiply under a branch could raise an FP
 * exception the scalar code would not, so the compiler would not vectorize
 * it. */
FLOAT_FAMILY(leakyrelu, (x > 0 ? x : (T)0) + (T)p->alpha * (x < 0 ? x : (T)0))
/* Clamping to lo first and hi last gives max when min > max, as the spec
 * asks; NaN passes through. */
FLOAT_FAMILY(clip, (x < (T)p->lo ? (T)p->lo : x) > (T)p->hi
                       ? (T)p->hi : (x < (T)p->lo ? (T)p->lo : x))
/* Two branches so exp never overflows to inf/inf for large |x|. */
FLOAT_FAMILY(sigmoid, x >= 0 ? (T)1 / ((T)1 + exp(-x)) : exp(x) / ((T)1 + exp(x)))
/* float32 Sigmoid runs the vectorized version (common.c): EfficientNet-type
 * networks call it on every activation, where scalar expf dominated. */
static void sigmoid_vec_f32(const float *restrict xs, float *restrict ys, int64_t n, const uparams *pp)
{
    vec_sigmoid(xs, ys, n);
}
FLOAT_FAMILY(tanh, tanh(x))
/* Comparisons rather than fmax/fmin: their NaN rules keep the compiler from
 * using vector min/max instructions. */
#define CLAMP01(T, v) ((v) < (T)0 ? (T)0 : ((v) > (T)1 ? (T)1 : (v)))
FLOAT_FAMILY(hardsigmoid, CLAMP01(T, (T)p->alpha * x + (T)p->beta))
FLOAT_FAMILY(hardswish, x * CLAMP01(T, x * (T)(1.0 / 6.0) + (T)0.5))
FLOAT_FAMILY(erf, erf(x))
FLOAT_FAMILY(sqrt, sqrt(x))
FLOAT_FAMILY(exp, exp(x))
FLOAT_FAMILY(log, log(x))
FLOAT_FAMILY(neg, -x)
FLOAT_FAMILY(abs, fabs(x))
FLOAT_FAMILY(elu, x < 0 ? (T)p->alpha * expm1(x) : x)
FLOAT_FAMILY(selu, x > 0 ? (T)p->gamma * x : (T)p->gamma * (T)p->alpha * expm1(x))
FLOAT_FAMILY(softplus, SOFTPLUS(x))
FLOAT_FAMILY(softsign, x / ((T)1 + fabs(x)))
FLOAT_FAMILY(cos, cos(x))
FLOAT_FAMILY(sin, sin(x))
FLOAT_FAMILY(tan, tan(x))
FLOAT_FAMILY(acos, acos(x))
FLOAT_FAMILY(asin, asin(x))
FLOAT_FAMILY(atan, atan(x))
FLOAT_FAMILY(cosh, cosh(x))
FLOAT_FAMILY(sinh, sinh(x))
FLOAT_FAMILY(acosh, acosh(x))
FLOAT_FAMILY(asinh, asinh(x))
FLOAT_FAMILY(atanh, atanh(x))
FLOAT_FAMILY(floor, floor(x))
FLOAT_FAMILY(ceil, ceil(x))
/* rint rounds half to even in the default rounding mode, as ONNX asks. */
FLOAT_FAMILY(round, rint(x))
FLOAT_FAMILY(reciprocal, (T)1 / x)
/* The last branch returns x itself so 0 stays 0 (with its sign) and NaN
 * stays NaN, like numpy.sign. */
FLOAT_FAMILY(sign, x > 0 ? (T)1 : (x < 0 ? (T)-1 : x))
FLOAT_FAMILY(gelu, p->flag0
    ? (T)0.5 * x * ((T)1 + tanh((T)0.7978845608028654 * (x + (T)0.044715 * x * x * x)))
    : (T)0.5 * x * ((T)1 + erf(x * (T)0.7071067811865476)))
FLOAT_FAMILY(shrink, x < -(T)p->alpha ? x + (T)p->beta
                     : (x > (T)p->alpha ? x - (T)p->beta : (T)0))
FLOAT_FAMILY(thresholdedrelu, x > (T)p->alpha ? x : (T)0)
FLOAT_FAMILY(celu, fmax((T)0, x) + fmin((T)0, (T)p->alpha * expm1(x / (T)p->alpha)))
FLOAT_FAMILY(mish, x * tanh(SOFTPLUS(x)))

/* Predicates: bool output, so only the generic path. */
static double isnan_f64(double x, const uparams *p) { return isnan(x); }
static double isinf_f64(double x, const uparams *p)
{
    return isinf(x) && (x > 0 ? p->flag0 : p->flag1);
}

/* Integer versions, for the ops ONNX defines on integer types.  Negation
 * goes through uint64 so INT64_MIN wraps instead of being undefined. */
static int64_t relu_i64(int64_t x, const uparams *p) { return p->uns || x > 0 ? x : 0; }
static int64_t neg_i64(int64_t x, const uparams *p) { return (int64_t)(0 - (uint64_t)x); }
static int64_t abs_i64(int64_t x, const uparams *p)
{
    return p->uns || x >= 0 ? x : (int64_t)(0 - (uint64_t)x);
}
static int64_t sign_i64(int64_t x, const uparams *p)
{
    if (p->uns) return x != 0;
    return x > 0 ? 1 : (x < 0 ? -1 : 0);
}
/* uint64 values above INT64_MAX arrive as negative int64: compare them in
 * their own type. */
static int64_t clip_i64(int64_t x, const uparams *p)
{
    if (p->uns) {
        uint64_t u = (uint64_t)x, lo = (uint64_t)p->ilo, hi = (uint64_t)p->ihi;
        u = u < lo ? lo : u;
        return (int64_t)(u > hi ? hi : u);
    }
    x = x < p->ilo ? p->ilo : x;
    return x > p->ihi ? p->ihi : x;
}
static int64_t not_i64(int64_t x, const uparams *p) { return !x; }

/* ---- attributes ----------------------------------------------------------- */

static int alpha_attr(op_ctx *c, uparams *p, double def)
{
    p->alpha = node_attr_float(c->node, "alpha", (float)def);
    return QK_OK;
}
static int leakyrelu_attrs(op_ctx *c, uparams *p) { return alpha_attr(c, p, 0.01); }
static int alpha1_attrs(op_ctx *c, uparams *p) { return alpha_attr(c, p, 1.0); }

static int celu_attrs(op_ctx *c, uparams *p)
{
    alpha_attr(c, p, 1.0);
    if (p->alpha == 0) return op_fail(c, QK_EINVAL, "alpha must not be 0");
    return QK_OK;
}

static int hardsigmoid_attrs(op_ctx *c, uparams *p)
{
    p->alpha = node_attr_float(c->node, "alpha", 0.2f);
    p->beta = node_attr_float(c->node, "beta", 0.5f);
    return QK_OK;
}

/* The defaults are the float32 roundings of the constants in the spec. */
static int selu_attrs(op_ctx *c, uparams *p)
{
    p->alpha = node_attr_float(c->node, "alpha", 1.67326319217681884765625f);
    p->gamma = node_attr_float(c->node, "gamma", 1.05070102214813232421875f);
    return QK_OK;
}

static int shrink_attrs(op_ctx *c, uparams *p)
{
    p->alpha = node_attr_float(c->node, "lambd", 0.5f);
    p->beta = node_attr_float(c->node, "bias", 0.0f);
    return QK_OK;
}

static int isinf_attrs(op_ctx *c, uparams *p)
{
    p->flag0 = node_attr_int(c->node, "detect_positive", 1) != 0;
    p->flag1 = node_attr_int(c->node, "detect_negative", 1) != 0;
    return QK_OK;
}

static int gelu_attrs(op_ctx *c, uparams *p)
{
    const char *a = node_attr_str(c->node, "approximate", "none");
    if (strcmp(a, "tanh") == 0) p->flag0 = 1;
    else if (strcmp(a, "none") != 0)
        return op_fail(c, QK_EINVAL, "approximate must be \"none\" or \"tanh\", not \"%s\"", a);
    return QK_OK;
}

/* Clip's bounds: attributes before opset 11, optional scalar inputs after
 * (an absent input means no bound on that side). */
static int clip_attrs(op_ctx *c, uparams *p)
{
    const xt *x = c->in[0];
    p->lo = -INFINITY;
    p->hi = INFINITY;
    p->ilo = p->uns ? 0 : INT64_MIN;
    p->ihi = p->uns ? (int64_t)UINT64_MAX : INT64_MAX;
    if (c->opset < 11) {
        p->lo = node_attr_float(c->node, "min", -FLT_MAX);
        p->hi = node_attr_float(c->node, "max", FLT_MAX);
        return QK_OK;
    }
    for (int k = 1; k <= 2; k++) {
        const xt *b = k < c->n_in ? c->in[k] : NULL;
        const char *what = k == 1 ? "min" : "max";
        if (!b) continue;
        if (!b->data) return op_fail(c, QK_EINVAL, "%s has no value", what);
        if (xt_numel(b) != 1) {
            char s[64];
            return op_fail(c, QK_EINVAL, "%s must be a scalar, got shape %s", what,
                           xt_shape_str(b, s, sizeof s));
        }
        if (b->dtype != x->dtype)
            return op_fail(c, QK_EINVAL, "%s is %s but the input is %s", what,
                           dtype_name(b->dtype), dtype_name(x->dtype));
        if (dt_class(x->dtype) == FLT) {
            if (k == 1) p->lo = xt_get_f64(b, 0);
            else p->hi = xt_get_f64(b, 0);
        } else {
            if (k == 1) p->ilo = xt_get_i64(b, 0);
            else p->ihi = xt_get_i64(b, 0);
        }
    }
    return QK_OK;
}

/* ---- drivers -------------------------------------------------------------- */

typedef struct ujob {
    const unary *d;
    const uparams *p;
    const xt *x;
    xt *y;
} ujob;

static void run_f32_range(void *arg, int64_t b, int64_t e, int tid)
{
    const ujob *j = arg;
    j->d->f32((const float *)j->x->data + b, (float *)j->y->data + b, e - b, j->p);
}

static void run_f64_range(void *arg, int64_t b, int64_t e, int tid)
{
    const ujob *j = arg;
    for (int64_t i = b; i < e; i++) xt_set_f64(j->y, i, j->d->f64(xt_get_f64(j->x, i), j->p));
}

static void run_i64_range(void *arg, int64_t b, int64_t e, int tid)
{
    const ujob *j = arg;
    for (int64_t i = b; i < e; i++) xt_set_i64(j->y, i, j->d->i64(xt_get_i64(j->x, i), j->p));
}

static int run_unary(op_ctx *c, const unary *d)
{
    const xt *x = c->n_in > 0 ? c->in[0] : NULL;
    xt *y = c->n_out > 0 ? c->out[0] : NULL;
    if (!x || !y) return op_fail(c, QK_EINVAL, "missing input or output");
    int cls = dt_class(x->dtype);
    if (!(cls & d->classes))
        return op_fail(c, QK_ENOTSUP, "input type %s is not supported", dtype_name(x->dtype));
    uparams p = {0};
    p.uns = cls == UNS;
    if (d->attrs) {
        int rc = d->attrs(c, &p);
        if (rc != QK_OK) return rc;
    }
    ujob j = {d, &p, x, y};
    tp_fn fn;
    if (x->dtype == DT_FLOAT && y->dtype == DT_FLOAT && d->f32) fn = run_f32_range;
    else if (cls == FLT && d->f64) fn = run_f64_range;
    else if (cls != FLT && d->i64) fn = run_i64_range;
    else return op_fail(c, QK_ENOTSUP, "input type %s is not supported", dtype_name(x->dtype));
    tp_parallel_for(c->pool, xt_numel(y), GRAIN, fn, &j);
    return QK_OK;
}

static int infer_like(op_ctx *c, int dtype)
{
    const xt *x = c->n_in > 0 ? c->in[0] : NULL;
    if (!x || c->n_out < 1 || !c->out[0]) return op_fail(c, QK_EINVAL, "missing input or output");
    if (x->rank < 0) return QK_UNKNOWN;
    xt *y = c->out[0];
    y->dtype = dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof y->dims);
    return QK_OK;
}

/* Output has the input's type and shape. */
static int infer_same(op_ctx *c)
{
    return infer_like(c, c->n_in > 0 && c->in[0] ? c->in[0]->dtype : DT_UNDEFINED);
}

/* Output is bool with the input's shape. */
static int infer_bool(op_ctx *c) { return infer_like(c, DT_BOOL); }

/* ---- the table ------------------------------------------------------------
 * One row per operator.  Columns: ONNX name, float32 loop, double function,
 * integer function, accepted input classes, output type (same/bool),
 * attribute reader. */
#define UNARY_OPS(X) \
    X(Relu,            relu_f32,            relu_f64,            relu_i64, FLT | SGN,   same, NULL) \
    X(LeakyRelu,       leakyrelu_f32,       leakyrelu_f64,       NULL,     FLT,         same, leakyrelu_attrs) \
    X(Clip,            clip_f32,            clip_f64,            clip_i64, FLT | INT,   same, clip_attrs) \
    X(Sigmoid,         sigmoid_vec_f32,       sigmoid_f64,         NULL,     FLT,         same, NULL) \
    X(Tanh,            tanh_f32,            tanh_f64,            NULL,     FLT,         same, NULL) \
    X(HardSigmoid,     hardsigmoid_f32,     hardsigmoid_f64,     NULL,     FLT,         same, hardsigmoid_attrs) \
    X(HardSwish,       hardswish_f32,       hardswish_f64,       NULL,     FLT,         same, NULL) \
    X(Erf,             erf_f32,             erf_f64,             NULL,     FLT,         same, NULL) \
    X(Sqrt,            sqrt_f32,            sqrt_f64,            NULL,     FLT,         same, NULL) \
    X(Exp,             exp_f32,             exp_f64,             NULL,     FLT,         same, NULL) \
    X(Log,             log_f32,             log_f64,             NULL,     FLT,         same, NULL) \
    X(Neg,             neg_f32,             neg_f64,             neg_i64,  FLT | SGN,   same, NULL) \
    X(Abs,             abs_f32,             abs_f64,             abs_i64,  FLT | INT,   same, NULL) \
    X(Elu,             elu_f32,             elu_f64,             NULL,     FLT,         same, alpha1_attrs) \
    X(Selu,            selu_f32,            selu_f64,            NULL,     FLT,         same, selu_attrs) \
    X(Softplus,        softplus_f32,        softplus_f64,        NULL,     FLT,         same, NULL) \
    X(Softsign,        softsign_f32,        softsign_f64,        NULL,     FLT,         same, NULL) \
    X(Cos,             cos_f32,             cos_f64,             NULL,     FLT,         same, NULL) \
    X(Sin,             sin_f32,             sin_f64,             NULL,     FLT,         same, NULL) \
    X(Tan,             tan_f32,             tan_f64,             NULL,     FLT,         same, NULL) \
    X(Acos,            acos_f32,            acos_f64,            NULL,     FLT,         same, NULL) \
    X(Asin,            asin_f32,            asin_f64,            NULL,     FLT,         same, NULL) \
    X(Atan,            atan_f32,            atan_f64,            NULL,     FLT,         same, NULL) \
    X(Cosh,            cosh_f32,            cosh_f64,            NULL,     FLT,         same, NULL) \
    X(Sinh,            sinh_f32,            sinh_f64,            NULL,     FLT,         same, NULL) \
    X(Acosh,           acosh_f32,           acosh_f64,           NULL,     FLT,         same, NULL) \
    X(Asinh,           asinh_f32,           asinh_f64,           NULL,     FLT,         same, NULL) \
    X(Atanh,           atanh_f32,           atanh_f64,           NULL,     FLT,         same, NULL) \
    X(Floor,           floor_f32,           floor_f64,           NULL,     FLT,         same, NULL) \
    X(Ceil,            ceil_f32,            ceil_f64,            NULL,     FLT,         same, NULL) \
    X(Round,           round_f32,           round_f64,           NULL,     FLT,         same, NULL) \
    X(Reciprocal,      reciprocal_f32,      reciprocal_f64,      NULL,     FLT,         same, NULL) \
    X(Sign,            sign_f32,            sign_f64,            sign_i64, FLT | INT,   same, NULL) \
    X(Not,             NULL,                NULL,                not_i64,  BOOL,        bool, NULL) \
    X(IsNaN,           NULL,                isnan_f64,           NULL,     FLT,         bool, NULL) \
    X(IsInf,           NULL,                isinf_f64,           NULL,     FLT,         bool, isinf_attrs) \
    X(Gelu,            gelu_f32,            gelu_f64,            NULL,     FLT,         same, gelu_attrs) \
    X(Shrink,          shrink_f32,          shrink_f64,          NULL,     FLT,         same, shrink_attrs) \
    X(ThresholdedRelu, thresholdedrelu_f32, thresholdedrelu_f64, NULL,     FLT,         same, alpha1_attrs) \
    X(Celu,            celu_f32,            celu_f64,            NULL,     FLT,         same, celu_attrs) \
    X(Mish,            mish_f32,            mish_f64,            NULL,     FLT,         same, NULL)

#define X(name, f32, f64, i64, classes, out, attrs)                          \
    static int run_##name(op_ctx *c)                                         \
    {                                                                        \
        static const unary d = {f32, f64, i64, classes, attrs};              \
        return run_unary(c, &d);                                             \
    }
UNARY_OPS(X)
#undef X

const op_def ops_unary[] = {
#define X(name, f32, f64, i64, classes, out, attrs) {#name, infer_##out, run_##name},
    UNARY_OPS(X)
#undef X
};
const int ops_unary_count = sizeof ops_unary / sizeof ops_unary[0];
