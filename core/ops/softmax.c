/* This file implements Softmax, LogSoftmax and Hardmax.
 *
 * The three differ by opset in what they normalize over: before opset 13 the
 * input is coerced to 2-D at `axis` (default 1) and each row of the
 * flattened trailing axes is one softmax; from opset 13 on it is the single
 * axis `axis` (default -1).  Both reduce to (outer, A, inner) with the
 * softmax taken over A, which is all the kernel needs to know.  When inner
 * is more than 1 a block of neighbouring columns is processed together so
 * memory is read in rows rather than strided. */
#include <math.h>
#include <string.h>
#include "ops.h"

enum smkind { SM_SOFTMAX, SM_LOG, SM_HARD };

#define SMCHUNK 64

typedef struct {
    const void *x;
    void *y;
    int64_t A, inner, nchunks;
    enum smkind kind;
} sm_job;

/* Splits x into (outer, A, inner) per the opset's semantics. */
static int sm_layout(op_ctx *c, const xt *x, int64_t *outer, int64_t *A, int64_t *inner)
{
    int r = x->rank, old = c->opset < 13;
    int64_t a = node_attr_int(c->node, "axis", old ? 1 : -1);
    /* opset < 13 accepts axis == rank (an empty trailing part) */
    if (a < -r || a > r || (!old && a == r) || (r == 0 && !old))
        return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, r);
    if (a < 0) a += r;
    *outer = *A = *inner = 1;
    for (int i = 0; i < r; i++) {
        if (i < a) *outer *= x->dims[i];
        else if (i == a || old) *A *= x->dims[i];
        else *inner *= x->dims[i];
    }
    return QK_OK;
}

/* One contiguous float row (inner == 1, the usual last-axis softmax). */
static void sm_row_f32(const float *x, float *y, int64_t A, enum smkind kind)
{
    float m[8];
    int64_t i = 0, a8 = A & ~(int64_t)7;
    for (int l = 0; l < 8; l++) m[l] = x[0];
    for (; i < a8; i += 8)
        for (int l = 0; l < 8; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    float mx = m[0];
    for (int l = 1; l < 8; l++) mx = m[l] > mx ? m[l] : mx;
    for (; i < A; i++) mx = x[i] > mx ? x[i] : mx;
    if (kind == SM_HARD) {
        int64_t am = 0;
        while (am < A && !(x[am] == mx)) am++;   /* first maximum; none if NaN */
        for (i = 0; i < A; i++) y[i] = (float)(i == am);
        return;
    }
    /* LogSoftmax sums exp in double: its outputs near 0 are -log(sum),
     * where the sum's last float ulp would be the whole answer. */
    double p[4] = {0}, sum;
    for (i = 0; i + 4 <= A; i += 4)
        for (int l = 0; l < 4; l++) {
            float d = x[i + l] - mx;
            if (kind == SM_SOFTMAX) p[l] += y[i + l] = expf(d);
            else p[l] += exp((double)d);
        }
    for (; i < A; i++) {
        float d = x[i] - mx;
        if (kind == SM_SOFTMAX) p[0] += y[i] = expf(d);
        else p[0] += exp((double)d);
    }
    sum = (p[0] + p[1]) + (p[2] + p[3]);
    if (kind == SM_SOFTMAX) {
        float inv = (float)(1.0 / sum);
        for (i = 0; i < A; i++) y[i] *= inv;
    } else {
        /* (x - max) first, as the reference does: exact for x near max */
        float ls = (float)log(sum);
        for (i = 0; i < A; i++) y[i] = (x[i] - mx) - ls;
    }
}

#define SM_FN(NAME, T, EXP, LOG)                                                    \
    static void NAME(void *arg, int64_t t0, int64_t t1, int tid)                    \
    {                                                                               \
        (void)tid;                                                                  \
        const sm_job *j = arg;                                                      \
        T mx[SMCHUNK];                                                              \
        double sum[SMCHUNK];                                                        \
        int64_t am[SMCHUNK];                                                        \
        for (int64_t t = t0; t < t1; t++) {                                         \
            int64_t o = t / j->nchunks, s0 = (t % j->nchunks) * SMCHUNK;            \
            int64_t sc = j->inner - s0 < SMCHUNK ? j->inner - s0 : SMCHUNK;         \
            int64_t off = o * j->A * j->inner + s0;                                 \
            const T *x = (const T *)j->x + off;                                     \
            T *y = (T *)j->y + off;                                                 \
            if (ROW_FAST) continue;                                                 \
            for (int64_t k = 0; k < sc; k++) {                                      \
                mx[k] = x[k];                                                       \
                am[k] = 0;                                                          \
                sum[k] = 0;                                                         \
            }                                                                       \
            for (int64_t a = 1; a < j->A; a++)                                      \
                for (int64_t k = 0; k < sc; k++)                                    \
                    if (x[a * j->inner + k] > mx[k]) {                              \
                        mx[k] = x[a * j->inner + k];                                \
                        am[k] = a;                                                  \
                    }                                                               \
            if (j->kind == SM_HARD) {                                               \
                for (int64_t a = 0; a < j->A; a++)                                  \
                    for (int64_t k = 0; k < sc; k++)                                \
                        y[a * j->inner + k] = (T)(am[k] == a);                      \
                continue;                                                           \
            }                                                                       \
            /* exp(x - max) cannot overflow, and its sum is at least 1 */           \
            for (int64_t a = 0; a < j->A; a++)                                      \
                for (int64_t k = 0; k < sc; k++) {                                  \
                    T d = x[a * j->inner + k] - mx[k];                              \
                    double e = j->kind == SM_LOG ? exp((double)d) : EXP(d);         \
                    sum[k] += e;                                                    \
                    if (j->kind == SM_SOFTMAX) y[a * j->inner + k] = (T)e;          \
                }                                                                   \
            if (j->kind == SM_SOFTMAX) {                                            \
                for (int64_t k = 0; k < sc; k++) sum[k] = 1.0 / sum[k];             \
                for (int64_t a = 0; a < j->A; a++)                                  \
                    for (int64_t k = 0; k < sc; k++)                                \
                        y[a * j->inner + k] = (T)(y[a * j->inner + k] * sum[k]);    \
            } else {                                                                \
                for (int64_t k = 0; k < sc; k++) sum[k] = mx[k] + LOG(sum[k]);      \
                for (int64_t a = 0; a < j->A; a++)                                  \
                    for (int64_t k = 0; k < sc; k++)                                \
                        y[a * j->inner + k] = (T)(x[a * j->inner + k] - sum[k]);    \
            }                                                                       \
        }                                                                           \
    }

#define ROW_FAST (j->inner == 1 && (sm_row_f32((const float *)x, (float *)y, j->A, j->kind), 1))
SM_FN(sm_f32, float, expf, log)
#undef ROW_FAST
#define ROW_FAST 0
SM_FN(sm_f64, double, exp, log)
#undef ROW_FAST

static int sm_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->dtype != DT_FLOAT && x->dtype != DT_DOUBLE)
        return op_fail(c, QK_ENOTSUP, "input type %s (float, double supported)", dtype_name(x->dtype));
    int64_t outer, A, inner;
    int rc = sm_layout(c, x, &outer, &A, &inner);
    if (rc) return rc;
    xt *y = c->out[0];
    y->dtype = x->dtype;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof x->dims);
    return QK_OK;
}

static int sm_run(op_ctx *c, enum smkind kind)
{
    const xt *x = c->in[0];
    int64_t outer, A, inner;
    int rc = sm_layout(c, x, &outer, &A, &inner);
    if (rc) return rc;
    if (A == 0 || inner == 0 || outer == 0) return QK_OK;
    sm_job j = {x->data, c->out[0]->data, A, inner, (inner + SMCHUNK - 1) / SMCHUNK, kind};
    int64_t work = A * (inner < SMCHUNK ? inner : SMCHUNK);
    int64_t grain = 16384 / work;
    tp_parallel_for(c->pool, outer * j.nchunks, grain < 1 ? 1 : grain,
                    x->dtype == DT_FLOAT ? sm_f32 : sm_f64, &j);
    return QK_OK;
}

static int softmax_run(op_ctx *c) { return sm_run(c, SM_SOFTMAX); }
static int logsoftmax_run(op_ctx *c) { return sm_run(c, SM_LOG); }
static int hardmax_run(op_ctx *c) { return sm_run(c, SM_HARD); }

const op_def ops_softmax[] = {
    {"Softmax", sm_infer, softmax_run},
    {"LogSoftmax", sm_infer, logsoftmax_run},
    {"Hardmax", sm_infer, hardmax_run},
};
const int ops_softmax_count = sizeof ops_softmax / sizeof ops_softmax[0];
