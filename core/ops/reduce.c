/* This file implements the reduction kernels: ReduceSum, ReduceMean,
 * ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare,
 * ReduceLogSum, ReduceLogSumExp, and ArgMax / ArgMin.
 *
 * All ten Reduce ops share one plan: the input shape is simplified (size-1
 * axes dropped, neighbouring axes of the same kind merged), then every output
 * row walks its reduced elements with an odometer.  When the innermost axis
 * is kept, a row is a contiguous block of outputs that is accumulated as a
 * vector, so reducing over a leading axis (ReduceMean over tokens, say) still
 * streams through memory instead of striding across it.  Sums accumulate in
 * double, which keeps the ONNX reference tolerance for float inputs without
 * compensated summation.
 *
 * `axes` is an attribute up to opset 12 (ReduceSum) or 17 (the others) and
 * an optional second input after that; both are accepted whatever the opset,
 * since converters are not always strict about the switch. */
#include <math.h>
#include <string.h>
#include "ops.h"

enum rkind { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUMSQ, R_LOGSUM, R_LOGSUMEXP };

/* Output elements accumulated together; bounds the on-stack accumulators. */
#define RCHUNK 64

typedef struct {
    int nk, nr;
    int64_t kdim[XT_MAX_RANK], kst[XT_MAX_RANK];  /* kept axes (minus the trailing block) */
    int64_t rdim[XT_MAX_RANK], rst[XT_MAX_RANK];  /* reduced axes */
    int64_t S;              /* trailing contiguous kept block (1 if the last axis is reduced) */
    int64_t nrows;          /* output rows of S elements */
    int64_t nch;            /* RCHUNK-wide chunks per row: rows * nch tasks */
    int64_t rcount;         /* elements reduced into each output */
} rplan;

/* Builds the plan for reducing x over the axes flagged in red[]. */
static void rplan_make(const xt *x, const int *red, rplan *p)
{
    int64_t st[XT_MAX_RANK], d[XT_MAX_RANK], s[XT_MAX_RANK];
    int f[XT_MAX_RANK], n = 0;
    xt_strides(x, st);
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] == 1) continue;
        /* row-major: a neighbour of the same kind merges into one axis */
        if (n > 0 && f[n - 1] == red[i]) {
            d[n - 1] *= x->dims[i];
            s[n - 1] = st[i];
            continue;
        }
        d[n] = x->dims[i];
        s[n] = st[i];
        f[n] = red[i];
        n++;
    }
    p->S = 1;
    if (n > 0 && !f[n - 1]) p->S = d[--n];
    p->nk = p->nr = 0;
    p->nrows = p->rcount = 1;
    for (int i = 0; i < n; i++) {
        if (f[i]) {
            p->rdim[p->nr] = d[i];
            p->rst[p->nr++] = s[i];
            p->rcount *= d[i];
        } else {
            p->kdim[p->nk] = d[i];
            p->kst[p->nk++] = s[i];
            p->nrows *= d[i];
        }
    }
    p->nch = (p->S + RCHUNK - 1) / RCHUNK;
}

typedef struct {
    const rplan *p;
    enum rkind kind;
    const xt *x;
    xt *y;
} rjob;

static inline double rinit(enum rkind k)
{
    switch (k) {
    case R_PROD: return 1;
    case R_MAX: return -INFINITY;
    case R_MIN: return INFINITY;
    default: return 0;
    }
}

static inline double rfinal(enum rkind k, double a, double m, int64_t n)
{
    switch (k) {
    case R_MEAN: return a / (double)n;
    case R_L2: return sqrt(a);
    case R_LOGSUM: return log(a);
    case R_LOGSUMEXP: return m + log(a);
    default: return a;
    }
}

/* The accumulation loop over `cnt` runs of `sc` contiguous elements, one
 * run every `rs` elements, for one kind; a is the accumulator, v the value. */
#define RLOOP(EXPR)                                                  \
    for (int64_t i = 0; i < cnt; i++) {                              \
        int64_t o = off + i * rs;                                    \
        for (int64_t k = 0; k < sc; k++) {                           \
            double v = LOAD(o + k);                                  \
            double a = acc[k];                                       \
            EXPR;                                                    \
            acc[k] = a;                                              \
        }                                                            \
    }

/* Contiguous float runs (the innermost axis is reduced) are the common case
 * (ReduceMean over H*W, over the hidden size); eight independent partials
 * break the add-latency chain and let the compiler vectorize.  Returns 0
 * for the kinds left to the generic loop. */
static int f32_run(enum rkind kind, const float *x, int64_t n, double *acc)
{
    double p[8] = {0};
    int64_t i = 0, n8 = n & ~(int64_t)7;
    switch (kind) {
    case R_SUM: case R_MEAN: case R_LOGSUM:
        for (; i < n8; i += 8)
            for (int l = 0; l < 8; l++) p[l] += x[i + l];
        for (; i < n; i++) p[0] += x[i];
        break;
    case R_L1:
        for (; i < n8; i += 8)
            for (int l = 0; l < 8; l++) p[l] += fabsf(x[i + l]);
        for (; i < n; i++) p[0] += fabsf(x[i]);
        break;
    case R_L2: case R_SUMSQ:
        for (; i < n8; i += 8)
            for (int l = 0; l < 8; l++) p[l] += (double)x[i + l] * x[i + l];
        for (; i < n; i++) p[0] += (double)x[i] * x[i];
        break;
    case R_MAX: case R_MIN: {
        /* NaN is tracked apart so the compare-select stays vectorizable */
        float m[8];
        int nan = 0;
        for (int l = 0; l < 8; l++) m[l] = kind == R_MAX ? -INFINITY : INFINITY;
        if (kind == R_MAX) {
            for (; i < n8; i += 8)
                for (int l = 0; l < 8; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
        } else {
            for (; i < n8; i += 8)
                for (int l = 0; l < 8; l++) m[l] = x[i + l] < m[l] ? x[i + l] : m[l];
        }
        for (int64_t k = 0; k < n8; k++) nan |= x[k] != x[k];
        for (; i < n; i++) {
            if (x[i] != x[i]) nan = 1;
            else if (kind == R_MAX ? x[i] > m[0] : x[i] < m[0]) m[0] = x[i];
        }
        double a = *acc;
        for (int l = 0; l < 8; l++)
            if (kind == R_MAX ? m[l] > a : m[l] < a) a = m[l];
        if (nan || *acc != *acc) a = NAN;
        *acc = a;
        return 1;
    }
    default:
        return 0;
    }
    *acc += ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    return 1;
}

/* One row worker per element access: float and double read directly, the
 * integer types through xt_get_f64 (exact below 2^53). */
#define REDUCE_FN(NAME, STORE_EXPR)                                                       \
    static void NAME(void *arg, int64_t r0, int64_t r1, int tid)                          \
    {                                                                                     \
        (void)tid;                                                                        \
        const rjob *j = arg;                                                              \
        const rplan *p = j->p;                                                            \
        const void *xd = j->x->data;                                                      \
        (void)xd;                                                                         \
        double acc[RCHUNK], mx[RCHUNK];                                                   \
        int nr = p->nr;                                                                   \
        int64_t cnt = nr ? p->rdim[nr - 1] : 1, rs = nr ? p->rst[nr - 1] : 0;             \
        for (int64_t t = r0; t < r1; t++) {                                               \
            int64_t row = t / p->nch, s0 = (t % p->nch) * RCHUNK;                         \
            int64_t base = 0, q = row;                                                    \
            for (int i = p->nk - 1; i >= 0; i--) {                                        \
                base += (q % p->kdim[i]) * p->kst[i];                                     \
                q /= p->kdim[i];                                                          \
            }                                                                             \
            {                                                                             \
                int64_t sc = p->S - s0 < RCHUNK ? p->S - s0 : RCHUNK;                     \
                for (int64_t k = 0; k < sc; k++) {                                        \
                    acc[k] = rinit(j->kind);                                              \
                    mx[k] = -INFINITY;                                                    \
                }                                                                         \
                int64_t ctr[XT_MAX_RANK] = {0};                                           \
                if (p->rcount > 0) {                                                      \
                    for (;;) {                                                            \
                        int64_t off = base + s0;                                          \
                        for (int i = 0; i < nr - 1; i++) off += ctr[i] * p->rst[i];       \
                        if (FAST_RUN) {                                                   \
                        } else switch (j->kind) {                                         \
                        case R_SUM: case R_MEAN: case R_LOGSUM: RLOOP(a += v); break;     \
                        case R_MAX: RLOOP(if (v > a || v != v) a = v); break;             \
                        case R_MIN: RLOOP(if (v < a || v != v) a = v); break;             \
                        case R_PROD: RLOOP(a *= v); break;                                \
                        case R_L1: RLOOP(a += fabs(v)); break;                            \
                        case R_L2: case R_SUMSQ: RLOOP(a += v * v); break;                \
                        case R_LOGSUMEXP:                                                 \
                            /* online log-sum-exp: rescale when the max grows */          \
                            RLOOP(if (v > mx[k]) { a = a * exp(mx[k] - v) + 1; mx[k] = v; } \
                                  else if (v != -INFINITY) a += exp(v - mx[k]));          \
                            break;                                                        \
                        }                                                                 \
                        int i = nr - 2;                                                   \
                        for (; i >= 0; i--) {                                             \
                            if (++ctr[i] < p->rdim[i]) break;                             \
                            ctr[i] = 0;                                                   \
                        }                                                                 \
                        if (i < 0) break;                                                 \
                    }                                                                     \
                }                                                                         \
                for (int64_t k = 0; k < sc; k++) {                                        \
                    int64_t yi = row * p->S + s0 + k;                                     \
                    double r = rfinal(j->kind, acc[k], mx[k], p->rcount);                 \
                    STORE_EXPR;                                                           \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }

#define LOAD(i) ((const float *)xd)[i]
#define FAST_RUN (sc == 1 && rs == 1 && f32_run(j->kind, (const float *)xd + off, cnt, acc))
REDUCE_FN(reduce_f32, ((float *)j->y->data)[yi] = (float)r)
#undef LOAD
#undef FAST_RUN
#define FAST_RUN 0
#define LOAD(i) ((const double *)xd)[i]
REDUCE_FN(reduce_f64, ((double *)j->y->data)[yi] = r)
#undef LOAD
#define LOAD(i) xt_get_f64(j->x, i)
REDUCE_FN(reduce_any, xt_set_f64(j->y, yi, r))
#undef LOAD
#undef FAST_RUN

static int reduce_dtype_ok(int dt)
{
    switch (dt) {
    case DT_FLOAT: case DT_DOUBLE: case DT_INT8: case DT_UINT8: case DT_INT16: case DT_UINT16:
    case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
        return 1;
    default:
        return 0;
    }
}

/* Flags the reduced axes of x in red[] and sets *noop when the op is an
 * identity (empty axes with noop_with_empty_axes).  QK_UNKNOWN when the axes
 * input has no value yet. */
static int reduce_axes(op_ctx *c, const xt *x, int *red, int *noop)
{
    int r = x->rank, n;
    int64_t ax[XT_MAX_RANK];
    const xt *ai = c->n_in > 1 ? c->in[1] : NULL;
    *noop = 0;
    if (ai) {
        if (!ai->data) return QK_UNKNOWN;
        if (ai->dtype != DT_INT64 && ai->dtype != DT_INT32)
            return op_fail(c, QK_EINVAL, "axes input must be int64, got %s", dtype_name(ai->dtype));
        if (ai->rank > 1) return op_fail(c, QK_EINVAL, "axes input must be 1-D");
        int64_t na = xt_numel(ai);
        if (na > r) return op_fail(c, QK_EINVAL, "%lld axes for rank %d", (long long)na, r);
        n = (int)na;
        for (int i = 0; i < n; i++) ax[i] = xt_get_i64(ai, i);
    } else {
        const int64_t *a;
        n = node_attr_ints(c->node, "axes", &a);
        if (n > r) return op_fail(c, QK_EINVAL, "%d axes for rank %d", n, r);
        for (int i = 0; i < n; i++) ax[i] = a[i];
    }
    if (n <= 0) {
        if (node_attr_int(c->node, "noop_with_empty_axes", 0)) *noop = 1;
        for (int i = 0; i < r; i++) red[i] = !*noop;
        return QK_OK;
    }
    for (int i = 0; i < r; i++) red[i] = 0;
    for (int i = 0; i < n; i++) {
        int64_t a = ax[i];
        if (a < -r || a >= r) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, r);
        if (a < 0) a += r;
        if (red[a]) return op_fail(c, QK_EINVAL, "axis %lld repeated", (long long)ax[i]);
        red[a] = 1;
    }
    return QK_OK;
}

static int reduce_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (!reduce_dtype_ok(x->dtype))
        return op_fail(c, QK_ENOTSUP, "input type %s (numeric types supported)", dtype_name(x->dtype));
    int red[XT_MAX_RANK], noop;
    int rc = reduce_axes(c, x, red, &noop);
    if (rc) return rc;
    int keep = node_attr_int(c->node, "keepdims", 1) != 0;
    xt *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = 0;
    for (int i = 0; i < x->rank; i++) {
        if (!red[i]) y->dims[y->rank++] = x->dims[i];
        else if (keep) y->dims[y->rank++] = 1;
    }
    return QK_OK;
}

static int reduce_run(op_ctx *c, enum rkind kind)
{
    const xt *x = c->in[0];
    int red[XT_MAX_RANK], noop;
    int rc = reduce_axes(c, x, red, &noop);
    if (rc) return rc == QK_UNKNOWN ? op_fail(c, QK_EINVAL, "axes input has no value") : rc;
    if (noop) {
        memcpy(c->out[0]->data, x->data, (size_t)xt_nbytes(x));
        return QK_OK;
    }
    rplan p;
    rplan_make(x, red, &p);
    rjob j = {&p, kind, x, c->out[0]};
    tp_fn fn = x->dtype == DT_FLOAT ? reduce_f32 : x->dtype == DT_DOUBLE ? reduce_f64 : reduce_any;
    /* tasks are (row, chunk) pairs, so a reduction to a single long row
     * (ReduceMean over the batch, say) still splits across threads */
    int64_t work = p.rcount * (p.S < RCHUNK ? p.S : RCHUNK);
    int64_t grain = work > 0 ? 65536 / work : 1;
    tp_parallel_for(c->pool, p.nrows * p.nch, grain < 1 ? 1 : grain, fn, &j);
    return QK_OK;
}

static int sum_run(op_ctx *c) { return reduce_run(c, R_SUM); }
static int mean_run(op_ctx *c) { return reduce_run(c, R_MEAN); }
static int max_run(op_ctx *c) { return reduce_run(c, R_MAX); }
static int min_run(op_ctx *c) { return reduce_run(c, R_MIN); }
static int prod_run(op_ctx *c) { return reduce_run(c, R_PROD); }
static int l1_run(op_ctx *c) { return reduce_run(c, R_L1); }
static int l2_run(op_ctx *c) { return reduce_run(c, R_L2); }
static int sumsq_run(op_ctx *c) { return reduce_run(c, R_SUMSQ); }
static int logsum_run(op_ctx *c) { return reduce_run(c, R_LOGSUM); }
static int logsumexp_run(op_ctx *c) { return reduce_run(c, R_LOGSUMEXP); }

/* -------------------------------------------------------- ArgMax / ArgMin */

typedef struct {
    const xt *x;
    int64_t *y;
    int64_t A, inner;
    int is_min, last;
} arg_job;

#define ARG_FN(NAME)                                                                \
    static void NAME(void *arg, int64_t o0, int64_t o1, int tid)                    \
    {                                                                               \
        (void)tid;                                                                  \
        const arg_job *j = arg;                                                     \
        const void *xd = j->x->data;                                                \
        (void)xd;                                                                   \
        double best[RCHUNK];                                                        \
        for (int64_t o = o0; o < o1; o++) {                                         \
            for (int64_t s0 = 0; s0 < j->inner; s0 += RCHUNK) {                     \
                int64_t sc = j->inner - s0 < RCHUNK ? j->inner - s0 : RCHUNK;       \
                int64_t *y = j->y + o * j->inner + s0;                              \
                int64_t off = o * j->A * j->inner + s0;                             \
                for (int64_t k = 0; k < sc; k++) {                                  \
                    best[k] = LOAD(off + k);                                        \
                    y[k] = 0;                                                       \
                }                                                                   \
                for (int64_t a = 1; a < j->A; a++) {                                \
                    int64_t oa = off + a * j->inner;                                \
                    for (int64_t k = 0; k < sc; k++) {                              \
                        double v = LOAD(oa + k), b = best[k];                       \
                        int take = j->is_min ? (j->last ? v <= b : v < b)           \
                                             : (j->last ? v >= b : v > b);          \
                        if (take) {                                                 \
                            best[k] = v;                                            \
                            y[k] = a;                                               \
                        }                                                           \
                    }                                                               \
                }                                                                   \
            }                                                                       \
        }                                                                           \
    }

#define LOAD(i) ((const float *)xd)[i]
ARG_FN(arg_f32)
#undef LOAD
#define LOAD(i) xt_get_f64(j->x, i)
ARG_FN(arg_any)
#undef LOAD

static int arg_axis(op_ctx *c, const xt *x, int *axis)
{
    int r = x->rank;
    int64_t a = node_attr_int(c->node, "axis", 0);
    if (r == 0) return op_fail(c, QK_EINVAL, "input must have rank >= 1");
    if (a < -r || a >= r) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, r);
    *axis = (int)(a < 0 ? a + r : a);
    return QK_OK;
}

static int arg_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (!reduce_dtype_ok(x->dtype))
        return op_fail(c, QK_ENOTSUP, "input type %s (numeric types supported)", dtype_name(x->dtype));
    int axis, rc = arg_axis(c, x, &axis);
    if (rc) return rc;
    if (x->dims[axis] == 0) return op_fail(c, QK_EINVAL, "reduced axis %d is empty", axis);
    int keep = node_attr_int(c->node, "keepdims", 1) != 0;
    xt *y = c->out[0];
    y->dtype = DT_INT64;
    y->rank = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis) y->dims[y->rank++] = x->dims[i];
        else if (keep) y->dims[y->rank++] = 1;
    }
    return QK_OK;
}

static int arg_run(op_ctx *c, int is_min)
{
    const xt *x = c->in[0];
    int axis, rc = arg_axis(c, x, &axis);
    if (rc) return rc;
    arg_job j = {x, c->out[0]->data, x->dims[axis], 1, is_min,
                 node_attr_int(c->node, "select_last_index", 0) != 0};
    int64_t outer = 1;
    for (int i = 0; i < x->rank; i++) {
        if (i < axis) outer *= x->dims[i];
        else if (i > axis) j.inner *= x->dims[i];
    }
    int64_t work = j.A * j.inner;
    int64_t grain = work > 0 ? 65536 / work : 1;
    tp_parallel_for(c->pool, outer, grain < 1 ? 1 : grain, x->dtype == DT_FLOAT ? arg_f32 : arg_any, &j);
    return QK_OK;
}

static int argmax_run(op_ctx *c) { return arg_run(c, 0); }
static int argmin_run(op_ctx *c) { return arg_run(c, 1); }

const op_def ops_reduce[] = {
    {"ReduceSum", reduce_infer, sum_run},
    {"ReduceMean", reduce_infer, mean_run},
    {"ReduceMax", reduce_infer, max_run},
    {"ReduceMin", reduce_infer, min_run},
    {"ReduceProd", reduce_infer, prod_run},
    {"ReduceL1", reduce_infer, l1_run},
    {"ReduceL2", reduce_infer, l2_run},
    {"ReduceSumSquare", reduce_infer, sumsq_run},
    {"ReduceLogSum", reduce_infer, logsum_run},
    {"ReduceLogSumExp", reduce_infer, logsumexp_run},
    {"ArgMax", arg_infer, argmax_run},
    {"ArgMin", arg_infer, argmin_run},
};
const int ops_reduce_count = sizeof ops_reduce / sizeof ops_reduce[0];
