/* This file implements the matrix-product kernels: Gemm and MatMul.
 *
 * float32 goes through sgemm (packed, vectorized, threaded).  Other types the
 * ops allow (double and the integer types) are rare in the models quantkit
 * sees, so they take simple reference loops: double accumulates in double,
 * integers in wrapping 64-bit arithmetic, which gives the exact low bits
 * for every integer width.
 *
 * MatMul follows numpy: a 1-D operand gains a unit axis for the product and
 * loses it in the result, and the batch axes broadcast.  When B has a single
 * matrix (the Linear-layer case, activations [B, S, K] x weights [K, N]) the
 * batch is folded into M for one big GEMM; otherwise many small products
 * are spread over the pool one product per task. */
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "../sgemm.h"

static int is_int_type(int dt)
{
    return dt == DT_INT32 || dt == DT_INT64 || dt == DT_UINT32 || dt == DT_UINT64;
}

static int supported_type(int dt) { return dt == DT_FLOAT || dt == DT_DOUBLE || is_int_type(dt); }

/* Element (i, k) of a row-major rows x cols matrix at element offset `off`
 * of t, read through its transpose when `trans`. */
static int64_t mat_index(int64_t off, int trans, int64_t ld, int64_t i, int64_t k)
{
    return off + (trans ? k * ld + i : i * ld + k);
}

/* Reference product for the non-float types: y = alpha * op(a) op(b) +
 * (beta * yc when `acc`), with yc already in y.  Offsets are in elements. */
static void ref_gemm(const xt *a, int64_t aoff, int ta, int64_t lda, const xt *b, int64_t boff,
                     int tb, int64_t ldb, xt *y, int64_t yoff, int64_t M, int64_t N, int64_t K,
                     double alpha, double beta, int acc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t yi = yoff + i * N + j;
            if (y->dtype == DT_DOUBLE) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += xt_get_f64(a, mat_index(aoff, ta, lda, i, k)) *
                         xt_get_f64(b, mat_index(boff, tb, ldb, k, j));
                double v = alpha * s + (acc ? beta * xt_get_f64(y, yi) : 0.0);
                xt_set_f64(y, yi, v);
            } else {
                uint64_t s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (uint64_t)xt_get_i64(a, mat_index(aoff, ta, lda, i, k)) *
                         (uint64_t)xt_get_i64(b, mat_index(boff, tb, ldb, k, j));
                if (alpha == 1.0 && (!acc || beta == 1.0)) {
                    if (acc) s += (uint64_t)xt_get_i64(y, yi);
                    xt_set_i64(y, yi, (int64_t)s);
                } else {
                    double v = alpha * (double)(int64_t)s + (acc ? beta * xt_get_f64(y, yi) : 0.0);
                    xt_set_f64(y, yi, v);
                }
            }
        }
}

/* ------------------------------------------------------------------- Gemm */

typedef struct gemm_dims { int64_t M, N, K; } gemm_dims;

static int gemm_shape(op_ctx *c, gemm_dims *d)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1)
        return op_fail(c, QK_EINVAL, "needs inputs A and B and an output");
    const xt *a = c->in[0], *b = c->in[1];
    if (a->rank < 0 || b->rank < 0) return QK_UNKNOWN;
    if (a->rank != 2) return op_fail(c, QK_EINVAL, "A must be 2-D, got rank %d", a->rank);
    if (b->rank != 2) return op_fail(c, QK_EINVAL, "B must be 2-D, got rank %d", b->rank);
    if (a->dtype != b->dtype)
        return op_fail(c, QK_EINVAL, "A is %s but B is %s", dtype_name(a->dtype), dtype_name(b->dtype));
    int ta = node_attr_int(c->node, "transA", 0) != 0, tb = node_attr_int(c->node, "transB", 0) != 0;
    d->M = a->dims[ta ? 1 : 0];
    d->K = a->dims[ta ? 0 : 1];
    int64_t kb = b->dims[tb ? 1 : 0];
    d->N = b->dims[tb ? 0 : 1];
    if (d->K >= 0 && kb >= 0 && d->K != kb)
        return op_fail(c, QK_EINVAL, "A has K=%lld (transA=%d) but B has K=%lld (transB=%d)",
                       (long long)d->K, ta, (long long)kb, tb);
    if (d->K < 0) d->K = kb;
    const xt *ct = c->n_in > 2 ? c->in[2] : NULL;
    if (ct && ct->rank >= 0) {
        if (ct->rank > 2)
            return op_fail(c, QK_EINVAL, "C must have rank <= 2, got %d", ct->rank);
        /* Unidirectional broadcast: each axis of C is 1 or the output's. */
        for (int i = 0; i < ct->rank; i++) {
            int64_t cd = ct->dims[ct->rank - 1 - i], od = i == 0 ? d->N : d->M;
            if (cd >= 0 && od >= 0 && cd != 1 && cd != od) {
                char buf[64];
                return op_fail(c, QK_EINVAL, "C %s does not broadcast to the output [%lld,%lld]",
                               xt_shape_str(ct, buf, sizeof buf), (long long)d->M, (long long)d->N);
            }
        }
        if (ct->dtype != a->dtype)
            return op_fail(c, QK_EINVAL, "C is %s but A is %s", dtype_name(ct->dtype),
                           dtype_name(a->dtype));
    }
    return QK_OK;
}

static int gemm_infer(op_ctx *c)
{
    gemm_dims d;
    int rc = gemm_shape(c, &d);
    if (rc) return rc;
    xt *y = c->out[0];
    if (!y) return QK_OK;
    y->dtype = c->in[0]->dtype;
    y->rank = 2;
    y->dims[0] = d.M;
    y->dims[1] = d.N;
    return QK_OK;
}

/* Broadcasts C ([], [N], [1,N], [M,1], [M,N], ...) into y [M, N]. */
static void fill_c(const xt *ct, xt *y, int64_t M, int64_t N)
{
    int64_t cm = ct->rank == 2 ? ct->dims[0] : 1, cn = ct->rank >= 1 ? ct->dims[ct->rank - 1] : 1;
    size_t es = dtype_size(y->dtype);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t src = (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j);
            memcpy((char *)y->data + (size_t)(i * N + j) * es, (const char *)ct->data + (size_t)src * es, es);
        }
}

static int gemm_run(op_ctx *c)
{
    gemm_dims d;
    int rc = gemm_shape(c, &d);
    if (rc == QK_UNKNOWN) return op_fail(c, QK_EINVAL, "input shapes unknown at run time");
    if (rc) return rc;
    const xt *a = c->in[0], *b = c->in[1], *ct = c->n_in > 2 ? c->in[2] : NULL;
    xt *y = c->out[0];
    if (!y) return op_fail(c, QK_EINVAL, "output Y is missing");
    if (!supported_type(a->dtype))
        return op_fail(c, QK_ENOTSUP, "type %s is not supported", dtype_name(a->dtype));
    int ta = node_attr_int(c->node, "transA", 0) != 0, tb = node_attr_int(c->node, "transB", 0) != 0;
    float alpha = node_attr_float(c->node, "alpha", 1.0f), beta = node_attr_float(c->node, "beta", 1.0f);
    if (d.M == 0 || d.N == 0) return QK_OK;
    int use_c = ct && beta != 0.0f && xt_numel(ct) > 0;
    if (use_c) fill_c(ct, y, d.M, d.N);
    int64_t lda = a->dims[1], ldb = b->dims[1];
    if (a->dtype == DT_FLOAT) {
        sgemm(ta, tb, d.M, d.N, d.K, alpha, a->data, lda, b->data, ldb, use_c ? beta : 0.0f,
              y->data, d.N, c->pool);
        return QK_OK;
    }
    ref_gemm(a, 0, ta, lda, b, 0, tb, ldb, y, 0, d.M, d.N, d.K, alpha, beta, use_c);
    return QK_OK;
}

/* ----------------------------------------------------------------- MatMul */

/* The product's geometry: batch axes broadcast, one M x K by K x N product
 * per batch index.  A 1-D A has M = 1 and no M axis in the result; a 1-D B
 * has N = 1 and no N axis. */
typedef struct mm_geom {
    int brank;                  /* output batch rank */
    int64_t bdims[XT_MAX_RANK]; /* output batch dims */
    int64_t astr[XT_MAX_RANK], bstr[XT_MAX_RANK]; /* matrix-index strides, 0 on broadcast axes */
    int64_t M, N, K, nbatch;
    int a_vec, b_vec;
} mm_geom;

static int mm_shape(op_ctx *c, mm_geom *g)
{
    if (c->n_in < 2 || !c->in[0] || !c->in[1] || c->n_out < 1)
        return op_fail(c, QK_EINVAL, "needs inputs A and B and an output");
    const xt *a = c->in[0], *b = c->in[1];
    if (a->rank < 0 || b->rank < 0) return QK_UNKNOWN;
    if (a->rank < 1 || b->rank < 1)
        return op_fail(c, QK_EINVAL, "operands must have rank >= 1, got %d and %d", a->rank, b->rank);
    if (a->dtype != b->dtype)
        return op_fail(c, QK_EINVAL, "A is %s but B is %s", dtype_name(a->dtype), dtype_name(b->dtype));
    memset(g, 0, sizeof *g);
    g->a_vec = a->rank == 1;
    g->b_vec = b->rank == 1;
    g->M = g->a_vec ? 1 : a->dims[a->rank - 2];
    g->K = a->dims[a->rank - 1];
    int64_t kb = g->b_vec ? b->dims[0] : b->dims[b->rank - 2];
    g->N = g->b_vec ? 1 : b->dims[b->rank - 1];
    if (g->K >= 0 && kb >= 0 && g->K != kb) {
        char sa[96], sb[96];
        return op_fail(c, QK_EINVAL, "A %s has K=%lld but B %s has K=%lld", xt_shape_str(a, sa, sizeof sa),
                       (long long)g->K, xt_shape_str(b, sb, sizeof sb), (long long)kb);
    }
    if (g->K < 0) g->K = kb;

    xt ab = {.rank = a->rank > 2 ? a->rank - 2 : 0}, bb = {.rank = b->rank > 2 ? b->rank - 2 : 0};
    for (int i = 0; i < ab.rank; i++) ab.dims[i] = a->dims[i];
    for (int i = 0; i < bb.rank; i++) bb.dims[i] = b->dims[i];
    xt ob = {0};
    if (xt_broadcast_shape(&ab, &bb, &ob)) {
        char sa[96], sb[96];
        return op_fail(c, QK_EINVAL, "batch axes of A %s and B %s do not broadcast",
                       xt_shape_str(a, sa, sizeof sa), xt_shape_str(b, sb, sizeof sb));
    }
    g->brank = ob.rank;
    int out_rank = ob.rank + !g->a_vec + !g->b_vec;
    if (out_rank > XT_MAX_RANK)
        return op_fail(c, QK_ENOTSUP, "result rank %d exceeds %d", out_rank, XT_MAX_RANK);
    /* Strides in whole matrices, right-aligned, zero where an operand has
     * size 1 (or lacks the axis) against a larger output axis. */
    int64_t sa = 1, sb = 1;
    g->nbatch = 1;
    for (int i = ob.rank - 1; i >= 0; i--) {
        g->bdims[i] = ob.dims[i];
        int ia = i - (ob.rank - ab.rank), ib = i - (ob.rank - bb.rank);
        int64_t da = ia >= 0 ? ab.dims[ia] : 1, db = ib >= 0 ? bb.dims[ib] : 1;
        g->astr[i] = da == 1 ? 0 : sa;
        g->bstr[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
        g->nbatch = g->nbatch >= 0 && ob.dims[i] >= 0 ? g->nbatch * ob.dims[i] : -1;
    }
    return QK_OK;
}

static int matmul_infer(op_ctx *c)
{
    mm_geom g;
    int rc = mm_shape(c, &g);
    if (rc) return rc;
    xt *y = c->out[0];
    if (!y) return QK_OK;
    y->dtype = c->in[0]->dtype;
    int r = 0;
    for (int i = 0; i < g.brank; i++) y->dims[r++] = g.bdims[i];
    if (!g.a_vec) y->dims[r++] = g.M;
    if (!g.b_vec) y->dims[r++] = g.N;
    y->rank = r;
    return QK_OK;
}

typedef struct mm_job {
    const mm_geom *g;
    const xt *a, *b;
    xt *y;
    threadpool *pool;
} mm_job;

/* Matrix offsets of operands A and B for output batch index t. */
static void batch_offsets(const mm_geom *g, int64_t t, int64_t *ao, int64_t *bo)
{
    int64_t a = 0, b = 0;
    for (int i = g->brank - 1; i >= 0; i--) {
        int64_t idx = t % g->bdims[i];
        t /= g->bdims[i];
        a += idx * g->astr[i];
        b += idx * g->bstr[i];
    }
    *ao = a;
    *bo = b;
}

static void mm_task(void *arg, int64_t t0, int64_t t1, int tid)
{
    const mm_job *j = arg;
    const mm_geom *g = j->g;
    int64_t MK = g->M * g->K, KN = g->K * g->N, MN = g->M * g->N;
    for (int64_t t = t0; t < t1; t++) {
        int64_t ao, bo;
        batch_offsets(g, t, &ao, &bo);
        if (j->a->dtype == DT_FLOAT)
            sgemm(0, 0, g->M, g->N, g->K, 1.0f, (const float *)j->a->data + ao * MK, g->K,
                  (const float *)j->b->data + bo * KN, g->N, 0.0f, (float *)j->y->data + t * MN, g->N,
                  j->pool);
        else
            ref_gemm(j->a, ao * MK, 0, g->K, j->b, bo * KN, 0, g->N, j->y, t * MN, g->M, g->N, g->K,
                     1.0, 0.0, 0);
    }
}

static int matmul_run(op_ctx *c)
{
    mm_geom g;
    int rc = mm_shape(c, &g);
    if (rc == QK_UNKNOWN) return op_fail(c, QK_EINVAL, "input shapes unknown at run time");
    if (rc) return rc;
    const xt *a = c->in[0], *b = c->in[1];
    xt *y = c->out[0];
    if (!y) return op_fail(c, QK_EINVAL, "output Y is missing");
    if (!supported_type(a->dtype))
        return op_fail(c, QK_ENOTSUP, "type %s is not supported", dtype_name(a->dtype));
    if (g.nbatch == 0 || g.M == 0 || g.N == 0) return QK_OK;

    /* One B matrix shared by every batch index, A contiguous: fold the batch
     * into M and run one big product. */
    int b_shared = 1;
    for (int i = 0; i < g.brank; i++)
        if (g.bstr[i] != 0) b_shared = 0;
    int a_full = 1;
    for (int i = 0; i < g.brank; i++)
        if (g.bdims[i] != 1 && g.astr[i] == 0) a_full = 0;
    if (b_shared && a_full && a->dtype == DT_FLOAT) {
        sgemm(0, 0, g.nbatch * g.M, g.N, g.K, 1.0f, a->data, g.K, b->data, g.N, 0.0f, y->data, g.N,
              c->pool);
        return QK_OK;
    }
    mm_job j = {&g, a, b, y, c->pool};
    int nt = tp_nthreads(c->pool);
    double flops = 2.0 * (double)g.M * (double)g.N * (double)g.K;
    /* Many products, or small ones: one product per task, each serial.
     * Few large ones: one after another, each using the whole pool. */
    if (nt > 1 && g.nbatch > 1 && (g.nbatch >= 4 * nt || flops < 4e6)) {
        j.pool = NULL;
        tp_parallel_for(c->pool, g.nbatch, 1, mm_task, &j);
    } else {
        mm_task(&j, 0, g.nbatch, 0);
    }
    return QK_OK;
}

const op_def ops_matmul[] = {
    {"Gemm", gemm_infer, gemm_run},
    {"MatMul", matmul_infer, matmul_run},
};
const int ops_matmul_count = sizeof ops_matmul / sizeof ops_matmul[0];
