/* This file implements the tail pass of an observed chain (see
 * exec_tail.h).
 *
 * Run node by node, a Conv -> Sigmoid, Mul (SiLU) chain stores the
 * sigmoid and the product as whole tensors of their own and reads the
 * conv's output twice, then the observer reads all three again: on
 * EfficientNet-B0 at batch 8 those passes cost about as much as the
 * convolutions' SiLU epilogues in plain inference plus the observer.  Here
 * one sweep over each piece of the conv's output computes the sigmoid (the
 * Sigmoid node's own vector code) and the product, writes the product over
 * the conv's output (whose lines the sweep just read), and keeps the
 * sigmoid only for the observer when it takes parts; the observer scans
 * the pieces while they are in L2.  Other chains (Add, Relu, Clip) run
 * their nodes' kernels on the pieces.  Either way each value is what the
 * node computes, bit for bit. */
#include <stdlib.h>
#include <string.h>
#include "exec_tail.h"
#include "ops/ops.h"
#if defined(__x86_64__) || defined(__i386__)
#define TAIL_X86 1
#include "vecmath.h"
#endif

/* Elements per piece: three float pieces (a SiLU chain's values) of 64 KB
 * stay in L2 with room to spare, and an observer call covers enough values
 * that its fixed cost does not show.  A multiple of 16 so that the
 * observers' vector scans see whole vectors except at a value's end. */
#define PIECE 16384

static int same_shape(const xt *a, const xt *b)
{
    return a->rank == b->rank && !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)(a->rank > 0 ? a->rank : 0));
}

/* Whether value v is the head value or an earlier member's output. */
static int in_chain(const exec_tail *t, int v, int upto)
{
    if (v == t->head) return 1;
    for (int k = 0; k < upto; k++)
        if (t->g->nodes[t->members[k]].out[0] == v) return 1;
    return 0;
}

/* Clip's bounds are scalars every piece reads whole. */
static int whole_input(const ir_node *n, int i) { return i > 0 && !strcmp(node_op_type(n), "Clip"); }

int tail_runnable(const exec_tail *t)
{
    static const char *const ops[] = {"Relu", "Clip", "Sigmoid", "Add", "Mul"};
    const ir_graph *g = t->g;
    const xt *h = &t->rt[t->head];
    if (h->dtype != DT_FLOAT || h->rank < 0 || !h->data) return 0;
    for (int k = 0; k < t->n_members; k++) {
        const ir_node *n = &g->nodes[t->members[k]];
        const char *op = node_op_type(n);
        size_t o;
        for (o = 0; o < sizeof ops / sizeof ops[0]; o++)
            if (!strcmp(op, ops[o])) break;
        if (o == sizeof ops / sizeof ops[0] || n->n_out != 1 || n->out[0] < 0 || n->n_in < 1 || n->n_in > 8)
            return 0;
        const xt *y = &t->rt[n->out[0]];
        if (y->dtype != DT_FLOAT || !same_shape(y, h)) return 0;
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0) continue;
            const xt *x = &t->rt[v];
            if (whole_input(n, i)) {
                if (!x->data || xt_numel(x) != 1) return 0;
            } else if (!in_chain(t, v, k)) {
                /* A residual: read piece by piece like the chain's values. */
                if (x->dtype != DT_FLOAT || !x->data || !same_shape(x, h)) return 0;
            }
        }
    }
    return 1;
}

/* SiLU's two values at once, s = sigmoid(v) and y = v * s, as the
 * Sigmoid node (vec_sigmoid: the same lanes on the same ISA level) and the
 * Mul node (one rounding of the same product) make them -- without the
 * Mul kernel's second pass over v and s. */
#ifdef TAIL_X86
__attribute__((target("avx512f"))) static void sigmoid_product_avx512(const float *v, float *s, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, v + i), g = qk_sigmoid512(x);
        _mm512_mask_storeu_ps(s + i, m, g);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(x, g));
    }
}
#endif

static void sigmoid_product(const float *v, float *s, float *y, int64_t n)
{
#ifdef TAIL_X86
    if (op_isa_level() >= 2) {
        sigmoid_product_avx512(v, s, y, n);
        return;
    }
#endif
    vec_sigmoid(v, s, n);
    for (int64_t i = 0; i < n; i++) y[i] = v[i] * s[i];
}

int tail_silu(const exec_tail *t)
{
    if (t->n_members != 2) return 0;
    const ir_node *a = &t->g->nodes[t->members[0]], *b = &t->g->nodes[t->members[1]];
    int s = a->out[0];
    return !strcmp(node_op_type(a), "Sigmoid") && a->in[0] == t->head && !strcmp(node_op_type(b), "Mul") &&
           b->n_in == 2 && ((b->in[0] == t->head && b->in[1] == s) || (b->in[0] == s && b->in[1] == t->head));
}

typedef struct tail_job {
    const exec_tail *t;
    int64_t n;                  /* elements of the head value */
    int silu;                   /* tail_silu */
    float *scratch;             /* per thread: PIECE floats (sigmoid_unstored) */
    int *rc;                    /* per thread: first failure */
    qk_err *err;                /* per thread: its message */
} tail_job;

/* Elements [lo, hi) of x as a 1-D tensor. */
static xt piece(const xt *x, int64_t lo, int64_t hi)
{
    xt p = *x;
    p.rank = 1;
    p.dims[0] = hi - lo;
    p.data = (float *)x->data + lo;
    return p;
}

static int observe_piece(const exec_tail *t, int v, int tid, int64_t lo, int64_t hi)
{
    if (!exec_in_parts(t->by_part, v)) return QK_OK;
    xt p = piece(&t->rt[v], lo, hi);
    return t->observe(t->arg, v, tid, &p);
}

/* The same for a piece held elsewhere (scratch). */
static int observe_at(const exec_tail *t, int v, int tid, float *data, int64_t n)
{
    xt p = t->rt[v];
    p.rank = 1;
    p.dims[0] = n;
    p.data = data;
    return t->observe(t->arg, v, tid, &p);
}

static int run_piece(const tail_job *j, int64_t lo, int64_t hi, int tid)
{
    const exec_tail *t = j->t;
    const ir_graph *g = t->g;
    int rc = observe_piece(t, t->head, tid, lo, hi);
    if (rc == QK_OK && j->silu) {
        int s = g->nodes[t->members[0]].out[0], y = g->nodes[t->members[1]].out[0];
        float *sp = t->sigmoid_unstored ? j->scratch + (int64_t)tid * PIECE : (float *)t->rt[s].data + lo;
        sigmoid_product((const float *)t->rt[t->head].data + lo, sp, (float *)t->rt[y].data + lo, hi - lo);
        rc = t->sigmoid_unstored ? observe_at(t, s, tid, sp, hi - lo) : observe_piece(t, s, tid, lo, hi);
        return rc ? rc : observe_piece(t, y, tid, lo, hi);
    }
    for (int k = 0; k < t->n_members && rc == QK_OK; k++) {
        const ir_node *n = &g->nodes[t->members[k]];
        xt ins_t[8], out_t;
        const xt *ins[8];
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (v < 0) {
                ins[i] = NULL;
                continue;
            }
            const xt *x = &t->rt[v];
            ins_t[i] = whole_input(n, i) ? *x : piece(x, lo, hi);
            ins[i] = &ins_t[i];
        }
        out_t = piece(&t->rt[n->out[0]], lo, hi);
        xt *outs[1] = {&out_t};
        /* No pool: this already runs on one of its threads. */
        op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = 1, .out = outs,
                    .opset = g->opset, .err = &j->err[tid]};
        if ((rc = n->op->run(&c))) break;
        rc = observe_piece(t, n->out[0], tid, lo, hi);
    }
    return rc;
}

static void tail_task(void *arg, int64_t b, int64_t e, int tid)
{
    tail_job *j = arg;
    for (int64_t p = b; p < e && !j->rc[tid]; p++) {
        int64_t lo = p * PIECE, hi = lo + PIECE < j->n ? lo + PIECE : j->n;
        j->rc[tid] = run_piece(j, lo, hi, tid);
    }
}

int tail_run(const exec_tail *t, threadpool *pool, qk_err *err)
{
    int threads = tp_nthreads(pool);
    tail_job j = {t, xt_numel(&t->rt[t->head]), tail_silu(t), NULL, calloc((size_t)threads, sizeof(int)),
                  calloc((size_t)threads, sizeof(qk_err))};
    /* From the executor's thread, between kernels (see op_scratch). */
    if (j.silu && t->sigmoid_unstored && !(j.scratch = op_scratch(3, sizeof(float) * PIECE * (size_t)threads))) {
        free(j.rc);
        free(j.err);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    if (!j.rc || !j.err) {
        free(j.rc);
        free(j.err);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    tp_parallel_for(pool, (j.n + PIECE - 1) / PIECE, 1, tail_task, &j);
    int rc = QK_OK;
    for (int k = 0; k < threads && rc == QK_OK; k++)
        if ((rc = j.rc[k]) && j.err[k].code) *err = j.err[k];
    free(j.rc);
    free(j.err);
    return rc;
}
