/* This file implements the element-wise kernels with more than one input:
 * arithmetic (Add, Sub, Mul, Div, Pow, Mod, PRelu), the variadic
 * reductions across tensors (Sum, Max, Min, Mean), comparisons, logic,
 * BitShift and Where, all with numpy broadcasting.
 *
 * Every operator is one row of BINARY_OPS below, naming its scalar
 * functions; one broadcast engine serves them all.  The engine removes
 * size-1 dimensions and merges dimensions that are contiguous in every
 * operand, so the common CNN cases collapse to one or two dimensions: a
 * residual add becomes one flat loop, a bias add a loop over rows with the
 * bias held constant in the inner run.  The inner runs of float32 go
 * through loops generated from the scalar expression, which the compiler
 * vectorizes; every other type goes through a generic path that converts a
 * chunk of elements to double, int64 or uint64, applies the scalar
 * function and converts back.  Large outputs are split over the thread
 * pool. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ops.h"

/* Elements per pool task: small enough to split a 1x64x112x112 tensor over
 * a few cores, large enough that the task overhead does not show. */
#define GRAIN 16384
/* Elements converted at a time in the generic path (three buffers of this
 * many 8-byte values live on the stack). */
#define CHUNK 256
/* Operands of the broadcast engine: Where has three. */
#define MAX_OPS 3

typedef struct bparams {
    int fmod;   /* Mod: C fmod semantics instead of Python's */
    int left;   /* BitShift: direction */
} bparams;

typedef void (*f32_kernel)(const float *a, int64_t sa, const float *b, int64_t sb,
                           float *y, int64_t n, const bparams *p);
typedef double (*f_fn)(double a, double b, const bparams *p);
typedef int64_t (*i_fn)(int64_t a, int64_t b, const bparams *p);
typedef uint64_t (*u_fn)(uint64_t a, uint64_t b, const bparams *p);
typedef int (*attrs_fn)(op_ctx *c, bparams *p);

/* Input type classes an operator accepts. */
enum { FLT = 1, SGN = 2, UNS = 4, BOOL = 8, INT = SGN | UNS, NUM = FLT | INT };
/* Computation domains of the generic path. */
enum { D_F, D_I, D_U };

typedef struct binop {
    f32_kernel f32;   /* float32 fast path, or NULL */
    f_fn f;           /* any float input */
    i_fn i;           /* signed integers and bool */
    u_fn u;           /* unsigned integers */
    int classes;      /* accepted classes of the first input */
    int classes_b;    /* of the second, or 0: same type as the first */
    attrs_fn attrs;   /* reads attributes, or NULL */
} binop;

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

/* Float if either side is (Pow mixes types), uint64 math only when both are
 * unsigned, so uint64 values above INT64_MAX keep their meaning. */
static int pick_domain(int dta, int dtb)
{
    int ca = dt_class(dta), cb = dt_class(dtb);
    if ((ca | cb) & FLT) return D_F;
    if (ca == UNS && cb == UNS) return D_U;
    return D_I;
}

/* ---- float32 kernels ------------------------------------------------------
 * F32_KERNEL(name, expr) defines name_f32 from an expression of a, b, p.
 * The inner runs have stride 1 or 0 (broadcast), so three loops cover them
 * (both 0 only happens for a single element: the scalar tail does it).  The
 * variadic ops accumulate into their output (y == a); that gets its own
 * loops so every loop can promise the compiler no aliasing.  The work goes
 * in blocks of 16 with a scalar tail because gcc -O2 only vectorizes loops
 * whose trip count it knows to need no epilogue. */
#define BLOCKS(i, n, stmt)                                                    \
    for (; i + 16 <= (n); i += 16)                                            \
        for (int j_ = 0; j_ < 16; j_++) { const int64_t k = i + j_; stmt; }

#define F32_KERNEL(name, expr)                                                \
    static inline float name##_1f(float a, float b, const bparams *p)         \
    {                                                                         \
        return (expr);                                                        \
    }                                                                         \
    static void name##_f32_to(const float *restrict A, int64_t sa,            \
                              const float *restrict B, int64_t sb,            \
                              float *restrict Y, int64_t n,                   \
                              const bparams *restrict p)                      \
    {                                                                         \
        int64_t i = 0;                                                        \
        if (sa && sb) {                                                       \
            BLOCKS(i, n, Y[k] = name##_1f(A[k], B[k], p));                    \
        } else if (sa) {                                                      \
            const float b0 = B[0];                                            \
            BLOCKS(i, n, Y[k] = name##_1f(A[k], b0, p));                      \
        } else if (sb) {                                                      \
            const float a0 = A[0];                                            \
            BLOCKS(i, n, Y[k] = name##_1f(a0, B[k], p));                      \
        }                                                                     \
        for (; i < n; i++) Y[i] = name##_1f(A[i * sa], B[i * sb], p);         \
    }                                                                         \
    static void name##_f32_in(float *restrict Y, const float *restrict B,     \
                              int64_t sb, int64_t n, const bparams *restrict p) \
    {                                                                         \
        int64_t i = 0;                                                        \
        if (sb) {                                                             \
            BLOCKS(i, n, Y[k] = name##_1f(Y[k], B[k], p));                    \
        } else {                                                              \
            const float b0 = B[0];                                            \
            BLOCKS(i, n, Y[k] = name##_1f(Y[k], b0, p));                      \
        }                                                                     \
        for (; i < n; i++) Y[i] = name##_1f(Y[i], B[i * sb], p);              \
    }                                                                         \
    static void name##_f32(const float *A, int64_t sa, const float *B,        \
                           int64_t sb, float *Y, int64_t n, const bparams *pp) \
    {                                                                         \
        const bparams q = *pp;                                                \
        if (A == Y && sa) name##_f32_in(Y, B, sb, n, &q);                     \
        else name##_f32_to(A, sa, B, sb, Y, n, &q);                           \
    }

F32_KERNEL(add, a + b)
F32_KERNEL(sub, a - b)
F32_KERNEL(mul, a * b)
F32_KERNEL(div, a / b)
F32_KERNEL(powany, powf(a, b))
/* Both halves unconditionally: a multiply under a branch could raise an FP
 * exception the scalar code would not, so the compiler would not vectorize
 * it. */
F32_KERNEL(prelu, (a > 0 ? a : 0.0f) + b * (a < 0 ? a : 0.0f))
/* NaN wins, as in numpy.maximum. */
F32_KERNEL(max, a > b || a != a ? a : b)
F32_KERNEL(min, a < b || a != a ? a : b)

/* x**2 (variance, squared error) is common enough to skip powf for. */
static void pow_f32(const float *a, int64_t sa, const float *b, int64_t sb,
                    float *y, int64_t n, const bparams *p)
{
    if (!sb && b[0] == 2.0f) mul_f32(a, sa, a, sa, y, n, p);
    else powany_f32(a, sa, b, sb, y, n, p);
}

/* ---- scalar functions of the generic path ---------------------------------
 * Signed arithmetic goes through uint64 so overflow wraps (as numpy does
 * for the narrow types after the store truncates) instead of being
 * undefined.  Integer division and modulo by zero give 0 rather than
 * trapping: ONNX leaves the result undefined and a kernel must not crash. */
static double add_f(double a, double b, const bparams *p) { return a + b; }
static int64_t add_i(int64_t a, int64_t b, const bparams *p) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static uint64_t add_u(uint64_t a, uint64_t b, const bparams *p) { return a + b; }

static double sub_f(double a, double b, const bparams *p) { return a - b; }
static int64_t sub_i(int64_t a, int64_t b, const bparams *p) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static uint64_t sub_u(uint64_t a, uint64_t b, const bparams *p) { return a - b; }

static double mul_f(double a, double b, const bparams *p) { return a * b; }
static int64_t mul_i(int64_t a, int64_t b, const bparams *p) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static uint64_t mul_u(uint64_t a, uint64_t b, const bparams *p) { return a * b; }

/* Truncates toward zero like C; INT64_MIN / -1 wraps instead of trapping. */
static double div_f(double a, double b, const bparams *p) { return a / b; }
static int64_t div_i(int64_t a, int64_t b, const bparams *p)
{
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    return a / b;
}
static uint64_t div_u(uint64_t a, uint64_t b, const bparams *p) { return b ? a / b : 0; }

/* fmod=0 takes the sign of the divisor (Python's %), fmod=1 of the dividend
 * (C's fmod and %). */
static double mod_f(double a, double b, const bparams *p)
{
    double r = fmod(a, b);
    if (!p->fmod && r != 0 && (r < 0) != (b < 0)) r += b;
    return r;
}
static int64_t mod_i(int64_t a, int64_t b, const bparams *p)
{
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    if (!p->fmod && r != 0 && (r < 0) != (b < 0)) r += b;
    return r;
}
static uint64_t mod_u(uint64_t a, uint64_t b, const bparams *p) { return b ? a % b : 0; }

static double pow_f(double a, double b, const bparams *p) { return pow(a, b); }
/* Integer power by squaring, wrapping like repeated multiplication would.
 * A negative exponent gives the truncated 1/a**-b: 0 unless |a| is 1. */
static int64_t pow_i(int64_t a, int64_t b, const bparams *p)
{
    if (b < 0) {
        if (a == 1) return 1;
        if (a == -1) return (b & 1) ? -1 : 1;
        return 0;
    }
    uint64_t r = 1, x = (uint64_t)a;
    for (uint64_t e = (uint64_t)b; e; e >>= 1) {
        if (e & 1) r *= x;
        x *= x;
    }
    return (int64_t)r;
}

static double prelu_f(double a, double b, const bparams *p) { return a < 0 ? a * b : a; }
static int64_t prelu_i(int64_t a, int64_t b, const bparams *p) { return a < 0 ? mul_i(a, b, p) : a; }
static uint64_t prelu_u(uint64_t a, uint64_t b, const bparams *p) { return a; }

static double max_f(double a, double b, const bparams *p) { return a > b || a != a ? a : b; }
static int64_t max_i(int64_t a, int64_t b, const bparams *p) { return a > b ? a : b; }
static uint64_t max_u(uint64_t a, uint64_t b, const bparams *p) { return a > b ? a : b; }
static double min_f(double a, double b, const bparams *p) { return a < b || a != a ? a : b; }
static int64_t min_i(int64_t a, int64_t b, const bparams *p) { return a < b ? a : b; }
static uint64_t min_u(uint64_t a, uint64_t b, const bparams *p) { return a < b ? a : b; }

/* Comparisons return 0/1 in the domain; the store turns them into bool. */
#define COMPARISON(name, op)                                                              \
    static double name##_f(double a, double b, const bparams *p) { return a op b; }       \
    static int64_t name##_i(int64_t a, int64_t b, const bparams *p) { return a op b; }    \
    static uint64_t name##_u(uint64_t a, uint64_t b, const bparams *p) { return a op b; }
COMPARISON(eq, ==)
COMPARISON(lt, <)
COMPARISON(gt, >)
COMPARISON(le, <=)
COMPARISON(ge, >=)

static int64_t and_i(int64_t a, int64_t b, const bparams *p) { return a && b; }
static int64_t or_i(int64_t a, int64_t b, const bparams *p) { return a || b; }
static int64_t xor_i(int64_t a, int64_t b, const bparams *p) { return !a != !b; }

/* Shifting by the width or more is undefined in C; every bit is gone. */
static uint64_t shift_u(uint64_t a, uint64_t b, const bparams *p)
{
    if (b >= 64) return 0;
    return p->left ? a << b : a >> b;
}

/* ---- attributes ----------------------------------------------------------- */

static int mod_attrs(op_ctx *c, bparams *p)
{
    p->fmod = node_attr_int(c->node, "fmod", 0) != 0;
    return QK_OK;
}

static int shift_attrs(op_ctx *c, bparams *p)
{
    const char *d = node_attr_str(c->node, "direction", "");
    if (strcmp(d, "LEFT") == 0) p->left = 1;
    else if (strcmp(d, "RIGHT") == 0) p->left = 0;
    else return op_fail(c, QK_EINVAL, "direction must be \"LEFT\" or \"RIGHT\", not \"%s\"", d);
    return QK_OK;
}

/* ---- type conversion of the generic path ---------------------------------- */

typedef union num {
    double f;
    int64_t i;
    uint64_t u;
} num;

#define STORAGE_TYPES(X)                                                      \
    X(DT_FLOAT, float) X(DT_DOUBLE, double)                                   \
    X(DT_INT8, int8_t) X(DT_INT16, int16_t) X(DT_INT32, int32_t) X(DT_INT64, int64_t) \
    X(DT_UINT8, uint8_t) X(DT_UINT16, uint16_t) X(DT_UINT32, uint32_t) X(DT_UINT64, uint64_t) \
    X(DT_BOOL, uint8_t)

/* Reads n elements of type dt, st elements apart, into the domain dom. */
static void load(const void *src, int dt, int64_t st, int64_t n, int dom, num *dst)
{
    switch (dt) {
#define X(code, T)                                                            \
    case code: {                                                              \
        const T *s = src;                                                     \
        if (dom == D_F) for (int64_t j = 0; j < n; j++) dst[j].f = (double)s[j * st]; \
        else if (dom == D_I) for (int64_t j = 0; j < n; j++) dst[j].i = (int64_t)s[j * st]; \
        else for (int64_t j = 0; j < n; j++) dst[j].u = (uint64_t)s[j * st]; \
        break;                                                                \
    }
        STORAGE_TYPES(X)
#undef X
    default: break;
    }
}

/* Writes n domain values as dt; narrower integers wrap, bool is v != 0. */
static void store(void *dst, int dt, int dom, const num *src, int64_t n)
{
    if (dt == DT_BOOL) {
        uint8_t *d = dst;
        for (int64_t j = 0; j < n; j++) d[j] = dom == D_F ? src[j].f != 0 : src[j].u != 0;
        return;
    }
    switch (dt) {
#define X(code, T)                                                            \
    case code: {                                                              \
        T *d = dst;                                                           \
        if (dom == D_F) for (int64_t j = 0; j < n; j++) d[j] = (T)src[j].f;   \
        else if (dom == D_I) for (int64_t j = 0; j < n; j++) d[j] = (T)src[j].i; \
        else for (int64_t j = 0; j < n; j++) d[j] = (T)src[j].u;              \
        break;                                                                \
    }
        STORAGE_TYPES(X)
#undef X
    default: break;
    }
}

/* ---- the broadcast engine -------------------------------------------------- */

/* The iteration space: the output's dims with size-1 dims dropped and
 * mergeable neighbours merged; per operand, element strides (0 where the
 * operand is broadcast). */
typedef struct plan {
    int rank;
    int nops;
    int64_t total;
    int64_t dims[XT_MAX_RANK];
    int64_t st[MAX_OPS][XT_MAX_RANK];
} plan;

/* QK_EINVAL when an operand does not broadcast to out. */
static int plan_make(plan *pl, const xt *out, const xt *const *ops, int nops)
{
    int r = out->rank;
    int64_t full[MAX_OPS][XT_MAX_RANK];
    if (r < 0) return QK_EINVAL;
    pl->nops = nops;
    pl->total = xt_numel(out);
    for (int k = 0; k < nops; k++) {
        const xt *t = ops[k];
        if (t->rank < 0 || t->rank > r) return QK_EINVAL;
        int64_t s = 1;
        for (int i = r - 1; i >= 0; i--) {
            int it = i - (r - t->rank);
            int64_t d = it >= 0 ? t->dims[it] : 1;
            if (d == out->dims[i]) full[k][i] = s;
            else if (d == 1) full[k][i] = 0;
            else return QK_EINVAL;
            s *= d;
        }
    }
    int n = 0;
    for (int i = 0; i < r; i++) {
        if (out->dims[i] == 1) continue;
        int merge = n > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = pl->st[k][n - 1] == full[k][i] * out->dims[i];
        if (merge) {
            pl->dims[n - 1] *= out->dims[i];
            for (int k = 0; k < nops; k++) pl->st[k][n - 1] = full[k][i];
        } else {
            pl->dims[n] = out->dims[i];
            for (int k = 0; k < nops; k++) pl->st[k][n] = full[k][i];
            n++;
        }
    }
    if (n == 0) {   /* every dim is 1: a single element */
        pl->dims[0] = 1;
        for (int k = 0; k < nops; k++) pl->st[k][0] = 0;
        n = 1;
    }
    pl->rank = n;
    return QK_OK;
}

struct walk;
/* Processes one inner run: n output elements at dst, operand k's elements
 * at src[k], st[k] (0 or 1) elements apart. */
typedef void (*seg_fn)(const struct walk *w, const char *const *src, const int64_t *st,
                       char *dst, int64_t n);

typedef struct walk {
    plan pl;
    seg_fn seg;
    const char *base[MAX_OPS];
    int dt[MAX_OPS];
    size_t esz[MAX_OPS];
    char *out;
    int out_dt;
    size_t out_esz;
    /* for the arithmetic segments */
    const binop *d;
    bparams p;
    int dom;
} walk;

/* Runs the segments covering output elements [b, e). */
static void walk_range(void *arg, int64_t b, int64_t e, int tid)
{
    const walk *w = arg;
    const plan *pl = &w->pl;
    int r = pl->rank, K = pl->nops;
    int64_t idx[XT_MAX_RANK], off[MAX_OPS] = {0}, sti[MAX_OPS];
    int64_t rem = b;
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = rem % pl->dims[d];
        rem /= pl->dims[d];
    }
    for (int k = 0; k < K; k++) {
        for (int d = 0; d < r; d++) off[k] += idx[d] * pl->st[k][d];
        sti[k] = pl->st[k][r - 1];
    }
    int64_t inner = pl->dims[r - 1];
    for (int64_t pos = b; pos < e;) {
        int64_t n = inner - idx[r - 1];
        if (n > e - pos) n = e - pos;
        const char *src[MAX_OPS];
        for (int k = 0; k < K; k++) src[k] = w->base[k] + off[k] * (int64_t)w->esz[k];
        w->seg(w, src, sti, w->out + pos * (int64_t)w->out_esz, n);
        pos += n;
        idx[r - 1] += n;
        for (int k = 0; k < K; k++) off[k] += n * sti[k];
        if (idx[r - 1] < inner) break;   /* only when the range ends mid-run */
        idx[r - 1] = 0;
        for (int k = 0; k < K; k++) off[k] -= inner * sti[k];
        for (int d = r - 2; d >= 0; d--) {
            for (int k = 0; k < K; k++) off[k] += pl->st[k][d];
            if (++idx[d] < pl->dims[d]) break;
            idx[d] = 0;
            for (int k = 0; k < K; k++) off[k] -= pl->dims[d] * pl->st[k][d];
        }
    }
}

static void seg_f32(const walk *w, const char *const *src, const int64_t *st, char *dst, int64_t n)
{
    w->d->f32((const float *)src[0], st[0], (const float *)src[1], st[1], (float *)dst, n, &w->p);
}

static void seg_generic(const walk *w, const char *const *src, const int64_t *st, char *dst,
                        int64_t n)
{
    num A[CHUNK], B[CHUNK], Y[CHUNK];
    const binop *d = w->d;
    for (int64_t o = 0; o < n; o += CHUNK) {
        int64_t m = n - o < CHUNK ? n - o : CHUNK;
        load(src[0] + o * st[0] * (int64_t)w->esz[0], w->dt[0], st[0], m, w->dom, A);
        load(src[1] + o * st[1] * (int64_t)w->esz[1], w->dt[1], st[1], m, w->dom, B);
        switch (w->dom) {
        case D_F: for (int64_t j = 0; j < m; j++) Y[j].f = d->f(A[j].f, B[j].f, &w->p); break;
        case D_I: for (int64_t j = 0; j < m; j++) Y[j].i = d->i(A[j].i, B[j].i, &w->p); break;
        default: for (int64_t j = 0; j < m; j++) Y[j].u = d->u(A[j].u, B[j].u, &w->p); break;
        }
        store(dst + o * (int64_t)w->out_esz, w->out_dt, w->dom, Y, m);
    }
}

#define SELECT(T)                                                             \
    do {                                                                      \
        const uint8_t *cd = (const uint8_t *)src[0];                          \
        const T *x = (const T *)src[1], *y = (const T *)src[2];               \
        T *o = (T *)dst;                                                      \
        for (int64_t j = 0; j < n; j++) o[j] = cd[j * st[0]] ? x[j * st[1]] : y[j * st[2]]; \
    } while (0)

/* Where only moves elements, so it works on their bytes, whatever the type. */
static void seg_where(const walk *w, const char *const *src, const int64_t *st, char *dst,
                      int64_t n)
{
    switch (w->out_esz) {
    case 1: SELECT(uint8_t); break;
    case 2: SELECT(uint16_t); break;
    case 4: SELECT(uint32_t); break;
    default: SELECT(uint64_t); break;
    }
}

static int fail_broadcast(op_ctx *c, const xt *a, const xt *b)
{
    char sa[96], sb[96];
    return op_fail(c, QK_EINVAL, "shapes %s and %s do not broadcast",
                   xt_shape_str(a, sa, sizeof sa), xt_shape_str(b, sb, sizeof sb));
}

/* y = a (op) b, broadcasting both to y's shape.  y may be a itself. */
static int apply(op_ctx *c, const binop *d, const bparams *p, const xt *a, const xt *b, xt *y)
{
    walk w;
    const xt *ops[2] = {a, b};
    memset(&w, 0, sizeof w);
    if (plan_make(&w.pl, y, ops, 2) != QK_OK) return fail_broadcast(c, a, b);
    if (w.pl.total <= 0) return QK_OK;
    for (int k = 0; k < 2; k++) {
        w.base[k] = ops[k]->data;
        w.dt[k] = ops[k]->dtype;
        w.esz[k] = dtype_size(ops[k]->dtype);
    }
    w.out = y->data;
    w.out_dt = y->dtype;
    w.out_esz = dtype_size(y->dtype);
    w.d = d;
    w.p = *p;
    if (a->dtype == DT_FLOAT && b->dtype == DT_FLOAT && y->dtype == DT_FLOAT && d->f32) {
        w.seg = seg_f32;
    } else {
        w.dom = pick_domain(a->dtype, b->dtype);
        if ((w.dom == D_F && !d->f) || (w.dom == D_I && !d->i) || (w.dom == D_U && !d->u))
            return op_fail(c, QK_ENOTSUP, "input types %s and %s are not supported",
                           dtype_name(a->dtype), dtype_name(b->dtype));
        w.seg = seg_generic;
    }
    tp_parallel_for(c->pool, w.pl.total, GRAIN, walk_range, &w);
    return QK_OK;
}

/* Before opset 7, B broadcast to A only when the node said broadcast=1, and
 * `axis` placed B's dims starting at that dim of A rather than at the end
 * (A [2,3,4,5] + B [3,4] with axis=1).  Padding B with trailing 1s turns
 * that into numpy broadcasting. */
static xt legacy_b(const op_ctx *c)
{
    xt b = *c->in[1];
    const xt *a = c->in[0];
    if (c->opset >= 7 || a->rank < 0 || b.rank < 0 || !node_attr_int(c->node, "broadcast", 0) ||
        !node_has_attr(c->node, "axis"))
        return b;
    int64_t axis = node_attr_int(c->node, "axis", 0);
    if (axis < 0) axis += a->rank;
    int64_t r = axis + b.rank;
    if (axis < 0 || r > a->rank || r > XT_MAX_RANK) return b;   /* left to fail as numpy */
    for (int64_t i = b.rank; i < a->rank - axis; i++) b.dims[i] = 1;
    b.rank = (int)(a->rank - axis);
    return b;
}

/* Checks the inputs a kernel is about to read against the descriptor. */
static int check_types(op_ctx *c, const binop *d, const xt *a, const xt *b)
{
    if (!(dt_class(a->dtype) & d->classes))
        return op_fail(c, QK_ENOTSUP, "input type %s is not supported", dtype_name(a->dtype));
    if (d->classes_b) {
        if (!(dt_class(b->dtype) & d->classes_b))
            return op_fail(c, QK_ENOTSUP, "second input type %s is not supported",
                           dtype_name(b->dtype));
    } else if (a->dtype != b->dtype) {
        return op_fail(c, QK_EINVAL, "inputs have different types %s and %s",
                       dtype_name(a->dtype), dtype_name(b->dtype));
    }
    return QK_OK;
}

static int load_attrs(op_ctx *c, const binop *d, bparams *p)
{
    memset(p, 0, sizeof *p);
    return d->attrs ? d->attrs(c, p) : QK_OK;
}

/* ---- drivers -------------------------------------------------------------- */

static int run_binary(op_ctx *c, const binop *d)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs two inputs and an output");
    bparams p;
    int rc = check_types(c, d, c->in[0], c->in[1]);
    if (rc == QK_OK) rc = load_attrs(c, d, &p);
    if (rc != QK_OK) return rc;
    xt b = legacy_b(c);
    return apply(c, d, &p, c->in[0], &b, c->out[0]);
}

/* Folds the inputs left to right into the output: the first step reads
 * two inputs, later ones accumulate in place. */
static int run_variadic(op_ctx *c, const binop *d)
{
    xt *y = c->n_out > 0 ? c->out[0] : NULL;
    if (c->n_in < 1 || !y) return op_fail(c, QK_EINVAL, "needs an input and an output");
    for (int k = 0; k < c->n_in; k++) {
        if (!c->in[k]) return op_fail(c, QK_EINVAL, "input %d is missing", k);
        int rc = check_types(c, d, c->in[0], c->in[k]);
        if (rc != QK_OK) return rc;
    }
    bparams p;
    int rc = load_attrs(c, d, &p);
    if (rc != QK_OK) return rc;
    if (c->n_in == 1) {
        int64_t nb = xt_nbytes(y);
        if (nb > 0) memcpy(y->data, c->in[0]->data, (size_t)nb);
        return QK_OK;
    }
    rc = apply(c, d, &p, c->in[0], c->in[1], y);
    for (int k = 2; k < c->n_in && rc == QK_OK; k++) rc = apply(c, d, &p, y, c->in[k], y);
    return rc;
}

/* Before opset 7 (no broadcasting yet) a 1-D slope of X's channel count
 * meant one slope per channel; as a numpy shape that is [C,1,...,1]. */
static xt prelu_slope(const op_ctx *c)
{
    xt s = *c->in[1];
    const xt *x = c->in[0];
    if (c->opset < 7 && s.rank == 1 && x->rank >= 2 && s.dims[0] == x->dims[1] && s.dims[0] > 1) {
        s.rank = x->rank - 1;
        for (int i = 1; i < s.rank; i++) s.dims[i] = 1;
    }
    return s;
}

static int run_prelu(op_ctx *c, const binop *d)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs two inputs and an output");
    bparams p;
    int rc = check_types(c, d, c->in[0], c->in[1]);
    if (rc == QK_OK) rc = load_attrs(c, d, &p);
    if (rc != QK_OK) return rc;
    xt slope = prelu_slope(c);
    return apply(c, d, &p, c->in[0], &slope, c->out[0]);
}

static int run_mean(op_ctx *c, const binop *d)
{
    int rc = run_variadic(c, d);
    if (rc != QK_OK) return rc;
    xt *y = c->out[0];
    double n = c->n_in;
    int64_t cnt = xt_numel(y);
    if (y->dtype == DT_FLOAT) {
        float *v = y->data;
        for (int64_t i = 0; i < cnt; i++) v[i] = (float)(v[i] / n);
    } else {
        for (int64_t i = 0; i < cnt; i++) xt_set_f64(y, i, xt_get_f64(y, i) / n);
    }
    return QK_OK;
}

static int run_where(op_ctx *c)
{
    if (c->n_in < 3 || !c->in[0] || !c->in[1] || !c->in[2] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs three inputs and an output");
    const xt *cond = c->in[0], *x = c->in[1], *y = c->in[2];
    xt *out = c->out[0];
    if (cond->dtype != DT_BOOL)
        return op_fail(c, QK_EINVAL, "condition must be bool, not %s", dtype_name(cond->dtype));
    if (x->dtype != y->dtype)
        return op_fail(c, QK_EINVAL, "X is %s but Y is %s", dtype_name(x->dtype),
                       dtype_name(y->dtype));
    if (!dtype_size(x->dtype))
        return op_fail(c, QK_ENOTSUP, "input type %s is not supported", dtype_name(x->dtype));
    walk w;
    const xt *ops[3] = {cond, x, y};
    memset(&w, 0, sizeof w);
    if (plan_make(&w.pl, out, ops, 3) != QK_OK) return fail_broadcast(c, x, y);
    if (w.pl.total <= 0) return QK_OK;
    for (int k = 0; k < 3; k++) {
        w.base[k] = ops[k]->data;
        w.dt[k] = ops[k]->dtype;
        w.esz[k] = dtype_size(ops[k]->dtype);
    }
    w.out = out->data;
    w.out_dt = out->dtype;
    w.out_esz = dtype_size(out->dtype);
    w.seg = seg_where;
    tp_parallel_for(c->pool, w.pl.total, GRAIN, walk_range, &w);
    return QK_OK;
}

/* ---- shape inference ------------------------------------------------------- */

/* t = broadcast(a, b), into a separate tensor so a failed or partial result
 * never lands in an output. */
static int bcast(op_ctx *c, const xt *a, const xt *b, xt *t)
{
    int rc = xt_broadcast_shape(a, b, t);
    return rc == QK_EINVAL ? fail_broadcast(c, a, b) : rc;
}

static void set_out(xt *y, int dtype, const xt *shape)
{
    y->dtype = dtype;
    y->rank = shape->rank;
    memcpy(y->dims, shape->dims, sizeof y->dims);
}

static int infer_two(op_ctx *c, int same_type, int out_bool)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs two inputs and an output");
    const xt *a = c->in[0], *b = c->in[1];
    if (same_type && a->dtype && b->dtype && a->dtype != b->dtype)
        return op_fail(c, QK_EINVAL, "inputs have different types %s and %s",
                       dtype_name(a->dtype), dtype_name(b->dtype));
    xt t = {0}, lb = legacy_b(c);
    int rc = bcast(c, a, &lb, &t);
    if (rc != QK_OK) return rc;
    set_out(c->out[0], out_bool ? DT_BOOL : a->dtype, &t);
    return QK_OK;
}

/* Same-type inputs, output of that type. */
static int infer_same(op_ctx *c) { return infer_two(c, 1, 0); }
/* Same-type inputs, bool output. */
static int infer_bool(op_ctx *c) { return infer_two(c, 1, 1); }
/* Pow: the exponent's type may differ; the output is the base's. */
static int infer_pow(op_ctx *c) { return infer_two(c, 0, 0); }

/* PRelu broadcasts the slope to X, never X to the slope. */
static int infer_prelu(op_ctx *c)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs two inputs and an output");
    const xt *x = c->in[0];
    if (x->dtype && c->in[1]->dtype && x->dtype != c->in[1]->dtype)
        return op_fail(c, QK_EINVAL, "inputs have different types %s and %s",
                       dtype_name(x->dtype), dtype_name(c->in[1]->dtype));
    xt slope = prelu_slope(c), t = {0};
    int rc = bcast(c, x, &slope, &t);
    if (rc != QK_OK) return rc;
    xt *y = c->out[0];
    int ok = t.rank == x->rank;
    for (int i = 0; ok && i < x->rank; i++)
        ok = x->dims[i] < 0 || t.dims[i] < 0 || x->dims[i] == t.dims[i];
    if (!ok) {
        char sx[96], ss[96];
        return op_fail(c, QK_EINVAL, "slope %s does not broadcast to X %s",
                       xt_shape_str(c->in[1], ss, sizeof ss), xt_shape_str(x, sx, sizeof sx));
    }
    set_out(y, x->dtype, x);
    return QK_OK;
}

static int infer_variadic(op_ctx *c)
{
    if (c->n_in < 1 || !c->in[0] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs an input and an output");
    xt t = *c->in[0];
    for (int k = 1; k < c->n_in; k++) {
        const xt *b = c->in[k];
        if (!b) return op_fail(c, QK_EINVAL, "input %d is missing", k);
        if (t.dtype && b->dtype && t.dtype != b->dtype)
            return op_fail(c, QK_EINVAL, "input %d is %s but input 0 is %s", k,
                           dtype_name(b->dtype), dtype_name(t.dtype));
        xt u = {0};
        int rc = bcast(c, &t, b, &u);
        if (rc != QK_OK) return rc;
        t.rank = u.rank;
        memcpy(t.dims, u.dims, sizeof t.dims);
    }
    set_out(c->out[0], c->in[0]->dtype, &t);
    return QK_OK;
}

static int infer_where(op_ctx *c)
{
    if (c->n_in < 3 || !c->in[0] || !c->in[1] || !c->in[2] || c->n_out < 1 || !c->out[0])
        return op_fail(c, QK_EINVAL, "needs three inputs and an output");
    const xt *x = c->in[1], *y = c->in[2];
    if (x->dtype && y->dtype && x->dtype != y->dtype)
        return op_fail(c, QK_EINVAL, "X is %s but Y is %s", dtype_name(x->dtype),
                       dtype_name(y->dtype));
    xt t = {0}, u = {0};
    int rc = bcast(c, c->in[0], x, &t);
    if (rc == QK_OK) rc = bcast(c, &t, y, &u);
    if (rc != QK_OK) return rc;
    set_out(c->out[0], x->dtype, &u);
    return QK_OK;
}

/* ---- the table ------------------------------------------------------------
 * One row per operator.  Columns: ONNX name, float32 kernel, double, int64
 * and uint64 scalar functions, accepted classes of the first and second
 * inputs (0: same type as the first), shape inference, driver, attribute
 * reader. */
#define BINARY_OPS(X) \
    X(Add,            add_f32,   add_f,   add_i,   add_u,   NUM,        0,   same,     binary,   NULL) \
    X(Sub,            sub_f32,   sub_f,   sub_i,   sub_u,   NUM,        0,   same,     binary,   NULL) \
    X(Mul,            mul_f32,   mul_f,   mul_i,   mul_u,   NUM,        0,   same,     binary,   NULL) \
    X(Div,            div_f32,   div_f,   div_i,   div_u,   NUM,        0,   same,     binary,   NULL) \
    X(Pow,            pow_f32,   pow_f,   pow_i,   NULL,    FLT | SGN,  NUM, pow,      binary,   NULL) \
    X(Mod,            NULL,      mod_f,   mod_i,   mod_u,   NUM,        0,   same,     binary,   mod_attrs) \
    X(PRelu,          prelu_f32, prelu_f, prelu_i, prelu_u, NUM,        0,   prelu,    prelu,    NULL) \
    X(Sum,            add_f32,   add_f,   add_i,   add_u,   NUM,        0,   variadic, variadic, NULL) \
    X(Max,            max_f32,   max_f,   max_i,   max_u,   NUM,        0,   variadic, variadic, NULL) \
    X(Min,            min_f32,   min_f,   min_i,   min_u,   NUM,        0,   variadic, variadic, NULL) \
    X(Mean,           add_f32,   add_f,   NULL,    NULL,    FLT,        0,   variadic, mean,     NULL) \
    X(Equal,          NULL,      eq_f,    eq_i,    eq_u,    NUM | BOOL, 0,   bool,     binary,   NULL) \
    X(Less,           NULL,      lt_f,    lt_i,    lt_u,    NUM,        0,   bool,     binary,   NULL) \
    X(Greater,        NULL,      gt_f,    gt_i,    gt_u,    NUM,        0,   bool,     binary,   NULL) \
    X(LessOrEqual,    NULL,      le_f,    le_i,    le_u,    NUM,        0,   bool,     binary,   NULL) \
    X(GreaterOrEqual, NULL,      ge_f,    ge_i,    ge_u,    NUM,        0,   bool,     binary,   NULL) \
    X(And,            NULL,      NULL,    and_i,   NULL,    BOOL,       0,   same,     binary,   NULL) \
    X(Or,             NULL,      NULL,    or_i,    NULL,    BOOL,       0,   same,     binary,   NULL) \
    X(Xor,            NULL,      NULL,    xor_i,   NULL,    BOOL,       0,   same,     binary,   NULL) \
    X(BitShift,       NULL,      NULL,    NULL,    shift_u, UNS,        0,   same,     binary,   shift_attrs)

#define X(name, f32, f, i, u, classes, classes_b, infer, drv, attrs)         \
    static int run_##name(op_ctx *c)                                          \
    {                                                                         \
        static const binop d = {f32, f, i, u, classes, classes_b, attrs};     \
        return run_##drv(c, &d);                                              \
    }
BINARY_OPS(X)
#undef X

const op_def ops_binary[] = {
#define X(name, f32, f, i, u, classes, classes_b, infer, drv, attrs) {#name, infer_##infer, run_##name},
    BINARY_OPS(X)
#undef X
    {"Where", infer_where, run_where},
};
const int ops_binary_count = sizeof ops_binary / sizeof ops_binary[0];
