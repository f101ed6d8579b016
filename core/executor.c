/* This file implements the float CPU executor (see executor.h).
 *
 * Shapes are inferred again for the actual inputs right before each kernel,
 * so one planned executor serves every batch size.  Intermediate buffers
 * come from a pool owned by the executor and go back to it after their last
 * reader ran, so steady-state inference does not call malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "executor.h"

typedef struct buffer {
    void *p;
    size_t cap;
    int in_use;
} buffer;

struct executor {
    ir_graph *g;
    threadpool *pool;
    int *last_use;        /* per value: last node index reading it (n_nodes: graph output) */
    char *skip;           /* per node: all outputs are folded constants */
    xt *rt;               /* per value: runtime tensor of the current run */
    int *buf_of;          /* per value: pool buffer index, -1 if none */
    buffer *bufs;
    int n_bufs, cap_bufs;
    exec_observe_fn observe;
    void *observe_arg;
    double *prof;         /* QK_PROFILE set: seconds per node over all runs */
    double *prof_flops;   /* ... and Conv/Gemm flops per node over all runs */
    int prof_runs;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* QK_PROFILE=1: on exec_free, prints to stderr the time per op type and the
 * slowest nodes, averaged over the runs (a development aid for bench/). */
static void prof_print(const executor *e)
{
    const ir_graph *g = e->g;
    int runs = e->prof_runs ? e->prof_runs : 1;
    double total = 0;
    for (int i = 0; i < g->n_nodes; i++) total += e->prof[i];
    fprintf(stderr, "profile: %d runs, %.3f ms per run\n", e->prof_runs, 1e3 * total / runs);
    char *done = calloc((size_t)g->n_nodes + 1, 1);
    if (!done) return;
    for (int i = 0; i < g->n_nodes; i++) {
        if (done[i]) continue;
        const char *op = node_op_type(&g->nodes[i]);
        double t = 0;
        int cnt = 0;
        for (int k = i; k < g->n_nodes; k++)
            if (!done[k] && !strcmp(node_op_type(&g->nodes[k]), op)) {
                t += e->prof[k];
                cnt++;
                done[k] = 1;
            }
        fprintf(stderr, "profile: %-22s %4d nodes %9.3f ms %5.1f%%\n", op, cnt, 1e3 * t / runs,
                total > 0 ? 100 * t / total : 0);
    }
    memset(done, 0, (size_t)g->n_nodes);
    int top = getenv("QK_PROFILE_TOP") ? atoi(getenv("QK_PROFILE_TOP")) : 15;
    for (int r = 0; r < top; r++) {
        int best = -1;
        for (int i = 0; i < g->n_nodes; i++)
            if (!done[i] && (best < 0 || e->prof[i] > e->prof[best])) best = i;
        if (best < 0) break;
        done[best] = 1;
        fprintf(stderr, "profile: top %-50s %-12s %8.3f ms %6.1f GFLOP/s\n", node_name(&g->nodes[best]),
                node_op_type(&g->nodes[best]), 1e3 * e->prof[best] / runs,
                e->prof[best] > 0 ? 1e-9 * e->prof_flops[best] / e->prof[best] : 0.0);
    }
    free(done);
}

static int acquire(executor *e, size_t bytes)
{
    if (bytes == 0) bytes = 1;
    int best = -1;
    for (int i = 0; i < e->n_bufs; i++)
        if (!e->bufs[i].in_use && e->bufs[i].cap >= bytes && (best < 0 || e->bufs[i].cap < e->bufs[best].cap)) best = i;
    if (best < 0) {
        /* Grow the largest free buffer rather than adding one, to keep the
         * pool's total near the peak of live tensors. */
        for (int i = 0; i < e->n_bufs; i++)
            if (!e->bufs[i].in_use && (best < 0 || e->bufs[i].cap > e->bufs[best].cap)) best = i;
        if (best >= 0) {
            void *p = realloc(e->bufs[best].p, bytes);
            if (!p) return -1;
            e->bufs[best].p = p;
            e->bufs[best].cap = bytes;
        }
    }
    if (best < 0) {
        if (e->n_bufs == e->cap_bufs) {
            int cap = e->cap_bufs ? 2 * e->cap_bufs : 16;
            buffer *nb = realloc(e->bufs, (size_t)cap * sizeof *nb);
            if (!nb) return -1;
            e->bufs = nb;
            e->cap_bufs = cap;
        }
        void *p = malloc(bytes);
        if (!p) return -1;
        best = e->n_bufs++;
        e->bufs[best] = (buffer){p, bytes, 0};
    }
    e->bufs[best].in_use = 1;
    return best;
}

int exec_new(ir_graph *g, int threads, executor **out, qk_err *err)
{
    *out = NULL;
    int rc = ir_check_ops(g, err);
    if (rc) return rc;
    executor *e = calloc(1, sizeof *e);
    if (!e) return qk_fail(err, QK_ENOMEM, "out of memory");
    e->g = g;
    e->last_use = calloc((size_t)g->n_values + 1, sizeof(int));
    e->skip = calloc((size_t)g->n_nodes + 1, 1);
    e->rt = calloc((size_t)g->n_values + 1, sizeof(xt));
    e->buf_of = malloc(((size_t)g->n_values + 1) * sizeof(int));
    e->pool = tp_new(threads);
    if (!e->last_use || !e->skip || !e->rt || !e->buf_of || !e->pool) {
        exec_free(e);
        return qk_fail(err, QK_ENOMEM, "out of memory creating the executor");
    }
    for (int v = 0; v < g->n_values; v++) e->last_use[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        int all_folded = n->n_out > 0;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && !g->values[n->out[k]].is_folded) all_folded = 0;
        e->skip[i] = (char)all_folded;
        if (all_folded) continue;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) e->last_use[n->in[k]] = i;
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && e->last_use[n->out[k]] < i) e->last_use[n->out[k]] = i;
    }
    for (int o = 0; o < g->n_outputs; o++) e->last_use[g->outputs[o]] = g->n_nodes;
    const char *prof = getenv("QK_PROFILE");
    if (prof && *prof && strcmp(prof, "0")) {
        e->prof = calloc((size_t)g->n_nodes + 1, sizeof(double));
        e->prof_flops = calloc((size_t)g->n_nodes + 1, sizeof(double));
    }
    *out = e;
    return QK_OK;
}

void exec_free(executor *e)
{
    if (!e) return;
    if (e->prof) {
        prof_print(e);
        free(e->prof);
        free(e->prof_flops);
    }
    for (int i = 0; i < e->n_bufs; i++) free(e->bufs[i].p);
    free(e->bufs);
    tp_free(e->pool);
    free(e->last_use);
    free(e->skip);
    free(e->rt);
    free(e->buf_of);
    free(e);
}

void exec_set_observer(executor *e, exec_observe_fn fn, void *arg)
{
    e->observe = fn;
    e->observe_arg = arg;
}

static int check_input(const ir_value *v, const xt *given, qk_err *err)
{
    char a[128], b[128];
    if (!given->data && xt_numel(given) != 0)
        return qk_fail(err, QK_EINVAL, "input '%s': no data given", v->name);
    if (v->t.dtype && given->dtype != v->t.dtype)
        return qk_fail(err, QK_EINVAL, "input '%s': expected element type %s, got %s", v->name,
                       dtype_name(v->t.dtype), dtype_name(given->dtype));
    int bad = v->t.rank >= 0 && v->t.rank != given->rank;
    for (int i = 0; !bad && v->t.rank >= 0 && i < v->t.rank; i++)
        if (v->t.dims[i] >= 0 && v->t.dims[i] != given->dims[i]) bad = 1;
    if (bad)
        return qk_fail(err, QK_EINVAL, "input '%s': expected shape %s, got %s", v->name,
                       xt_shape_str(&v->t, a, sizeof a), xt_shape_str(given, b, sizeof b));
    return QK_OK;
}

/* Returns value v's buffer to the pool once nothing reads it any more. */
static void release(executor *e, int v)
{
    if (e->buf_of[v] >= 0) {
        e->bufs[e->buf_of[v]].in_use = 0;
        e->buf_of[v] = -1;
    }
}

int exec_run(executor *e, const xt *inputs, xt *outputs, qk_err *err)
{
    ir_graph *g = e->g;
    int rc = QK_OK;
    for (int v = 0; v < g->n_values; v++) {
        e->buf_of[v] = -1;
        e->rt[v] = g->values[v].t;
        if (!g->values[v].t.data) e->rt[v].rank = -1;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const ir_value *v = &g->values[g->inputs[i]];
        if ((rc = check_input(v, &inputs[i], err))) return rc;
        e->rt[g->inputs[i]] = inputs[i];
    }
    for (int i = 0; i < g->n_nodes && rc == QK_OK; i++) {
        if (e->skip[i]) continue;
        const ir_node *n = &g->nodes[i];
        const xt *ins[64];
        xt *outs[64];
        if (n->n_in > 64 || n->n_out > 64)
            return qk_fail(err, QK_ENOTSUP, "node '%s' has more than 64 inputs or outputs", node_name(n));
        for (int k = 0; k < n->n_in; k++) {
            ins[k] = n->in[k] >= 0 ? &e->rt[n->in[k]] : NULL;
            if (ins[k] && !ins[k]->data && xt_numel(ins[k]) != 0) {
                rc = qk_fail(err, QK_EINVAL, "%s node '%s': input '%s' has no value (unsupported initializer type?)",
                             node_op_type(n), node_name(n), g->values[n->in[k]].name);
                goto out;
            }
        }
        for (int k = 0; k < n->n_out; k++) {
            outs[k] = n->out[k] >= 0 ? &e->rt[n->out[k]] : NULL;
            if (outs[k]) {
                memset(outs[k], 0, sizeof *outs[k]);
                outs[k]->rank = -1;
            }
        }
        op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = n->n_out, .out = outs,
                    .pool = e->pool, .opset = g->opset, .err = err};
        rc = n->op->infer(&c);
        if (rc == QK_UNKNOWN)
            rc = qk_fail(err, QK_EINVAL, "%s node '%s': cannot infer output shape", node_op_type(n), node_name(n));
        if (rc) goto out;
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            int64_t nb = xt_nbytes(outs[k]);
            if (nb < 0 || !dtype_size(outs[k]->dtype)) {
                rc = qk_fail(err, QK_EINVAL, "%s node '%s': output '%s' has no known shape or type",
                             node_op_type(n), node_name(n), g->values[v].name);
                goto out;
            }
            int b = acquire(e, (size_t)nb);
            if (b < 0) {
                rc = qk_fail(err, QK_ENOMEM, "out of memory for output '%s' (%lld bytes)", g->values[v].name, (long long)nb);
                goto out;
            }
            e->buf_of[v] = b;
            outs[k]->data = e->bufs[b].p;
        }
        double t0 = e->prof ? now_s() : 0;
        if ((rc = n->op->run(&c))) goto out;
        if (e->prof) {
            e->prof[i] += now_s() - t0;
            /* Multiply-adds of Conv: per output element, W's elements per
             * output channel; Gemm/MatMul: per output element, the K axis. */
            if (!strcmp(node_op_type(n), "Conv") && n->n_in > 1 && ins[1]->rank > 0 && ins[1]->dims[0] > 0)
                e->prof_flops[i] += 2.0 * (double)xt_numel(outs[0]) * (double)xt_numel(ins[1]) / (double)ins[1]->dims[0];
        }
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0) continue;
            if (e->observe && (rc = e->observe(e->observe_arg, v, outs[k]))) goto out;
            if (e->last_use[v] <= i) release(e, v);
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && e->last_use[n->in[k]] == i) release(e, n->in[k]);
    }
    for (int o = 0; o < g->n_outputs && rc == QK_OK; o++) {
        const xt *t = &e->rt[g->outputs[o]];
        int64_t nb = xt_nbytes(t);
        outputs[o] = *t;
        outputs[o].data = malloc(nb > 0 ? (size_t)nb : 1);
        if (!outputs[o].data) {
            for (int k = 0; k < o; k++) free(outputs[k].data);
            rc = qk_fail(err, QK_ENOMEM, "out of memory copying outputs");
            break;
        }
        if (nb > 0) memcpy(outputs[o].data, t->data, (size_t)nb);
    }
out:
    if (rc == QK_OK) e->prof_runs++;
    for (int v = 0; v < g->n_values; v++) release(e, v);
    return rc;
}
