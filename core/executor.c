/* This file implements the float CPU executor (see executor.h).
 *
 * Shapes are inferred again for the actual inputs right before each kernel,
 * so one planned executor serves every batch size.  Intermediate buffers
 * come from a pool owned by the executor and go back to it after their last
 * reader ran, so steady-state inference does not call malloc.
 *
 * exec_new also does the work that does not depend on the inputs: ops with
 * an op_prep row (Conv) prepare their constant inputs once (packed
 * weights), and chains that a kernel can finish in its epilogue are found:
 *
 *   Conv -> Relu | Clip          Conv -> Add(residual) [-> Relu | Clip]
 *   Conv -> Sigmoid, Mul(conv, sigmoid)   (SiLU)
 *
 * where every intermediate value has that one reader and is no graph
 * output, and the residual is computed before the Conv.  When no observer
 * is set, the Conv writes the chain's last value directly and the other
 * nodes are skipped, so the intermediates are never stored.  With an
 * observer the head runs on its own and the rest of the chain in a tail
 * pass (exec_tail.c: the members' kernels a piece at a time), so
 * calibration sees every value as before fusion existed -- unless
 * exec_set_observed() says which values it wants, when chains with
 * unwanted intermediates stay fused.  A residual
 * whose run-time shape differs from the Conv's output (broadcasting Add)
 * also runs the chain unfused.
 *
 * At batch > 1 without an observer (or with one that takes values sample
 * by sample), the leading layers with large
 * activations and small weights run one sample at a time ("sample passes",
 * see plan_samples), so their outputs stay in cache.
 *
 * A squeeze-excitation Mul(x, s), s of shape [N, C, 1, 1], whose one
 * reader is a Conv with packed weights is folded into that Conv, which
 * scales its input channels while packing them (see plan_scales).
 *
 * A channel Concat whose inputs each have one producer and no other
 * reader has them written straight into their slices of its output when a
 * run's batch is 1 (every run at batch 1, and the sample passes), so the
 * Concat copies nothing (see plan_concats). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "clock.h"
#include "exec_tail.h"
#include "executor.h"
#include "ops/ops.h"
#include "sgemm.h"

/* A chain whose head (a Conv) applies the rest in its epilogue. */
typedef struct fusion {
    int n_members;        /* nodes skipped when fused (0: no chain) */
    int members[3];
    int n_inter, inter[3];  /* values never stored when fused */
    int final;            /* the value the fused head writes */
    int residual;         /* value added, or -1 */
    op_epilogue epi;      /* residual filled in at run time */
} fusion;

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
    const char *want;     /* per value: the observer needs it (NULL: all) */
    int observe_samples;  /* the observer takes sample passes' values */
    exec_observe_part_fn observe_part;  /* ... and values v with by_part[v] in parts */
    const char *by_part;
    float *ext;           /* per pool thread: lanes for the extremes a kernel gathers (op_ctx.ext) */
    float *batch_ext;     /* per value: (lo, hi) of an EXEC_EXTREMES value over a batch's sample passes */
    char *batch_seen;     /* ... folded into in this batch's passes */
    int tails_run;        /* this run: chains run as a head and a tail pass */
    void **state;         /* per node: op_prep state, or NULL */
    const op_prep **prep; /* per node: its op's hooks, or NULL */
    fusion *fus;          /* per node */
    char *fused_skip;     /* per node, this run: done by a fused head */
    int sb_cut;           /* nodes [0, sb_cut) run sample by sample (0: none) */
    char *crossing;       /* per value: made in that prefix, read after it */
    int *sb_buf;          /* per value: its whole-batch buffer in a run */
    int64_t sb_n, sb_s;   /* in a sample pass: batch size, current sample */
    int *cat_of;          /* per value: the Concat node it is written into, or -1 */
    int64_t *cat_chan;    /* ... and the channels before its slice there */
    char *placed;         /* per value, this run: written into its Concat's output */
    xt *cat_t;            /* per node, this run: a Concat's output once allocated (data set) */
    int *sc_conv;         /* per node: for a Mul folded into a Conv, that Conv; else -1 */
    int *sc_x, *sc_s;     /* per node: for that Conv, the Mul's x and s (-1: none planned) */
    char *sc_on;          /* per node, this run: the Conv reads x scaled by s */
    double *prof;         /* QK_PROFILE set: seconds per node over all runs */
    double *prof_flops;   /* ... and Conv/Gemm flops per node over all runs */
    double prof_observe;  /* ... and seconds in the observer over all runs */
    int prof_runs;
};

/* QK_PROFILE=1: on exec_free, prints to stderr the time per op type and the
 * slowest nodes, averaged over the runs (a development aid for bench/). */
static void prof_print(const executor *e)
{
    const ir_graph *g = e->g;
    int runs = e->prof_runs ? e->prof_runs : 1;
    double total = 0;
    for (int i = 0; i < g->n_nodes; i++) total += e->prof[i];
    fprintf(stderr, "profile: %d runs, %.3f ms per run\n", e->prof_runs, 1e3 * total / runs);
    if (e->prof_observe > 0)
        fprintf(stderr, "profile: observer %.3f ms per run (not in the nodes' times)\n", 1e3 * e->prof_observe / runs);
    if (e->sb_cut > 0)
        fprintf(stderr, "profile: batches run sample by sample up to node %d of %d ('%s')\n", e->sb_cut, g->n_nodes,
                node_name(&g->nodes[e->sb_cut - 1]));
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


/* The readers of each value: nodes (not folded) plus graph outputs. */
static int *count_readers(const executor *e)
{
    const ir_graph *g = e->g;
    int *r = calloc((size_t)g->n_values + 1, sizeof(int));
    if (!r) return NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        if (e->skip[i]) continue;
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) r[n->in[k]]++;
    }
    for (int o = 0; o < g->n_outputs; o++) r[g->outputs[o]]++;
    return r;
}

/* The one node (after `after`) reading value v, or -1. */
static int sole_reader(const executor *e, const int *readers, int v, int after)
{
    const ir_graph *g = e->g;
    if (v < 0 || readers[v] != 1 || g->values[v].is_output) return -1;
    for (int i = after + 1; i < g->n_nodes; i++) {
        if (e->skip[i]) continue;
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] == v) return i;
    }
    return -1;
}

/* A float scalar constant input (Clip's bounds), into *f; 0 if not one. */
static int const_scalar(const ir_graph *g, const ir_node *n, int k, float *f)
{
    if (k >= n->n_in || n->in[k] < 0) return 1;   /* absent: keep the default */
    const xt *t = &g->values[n->in[k]].t;
    if (!t->data || t->dtype != DT_FLOAT || xt_numel(t) != 1) return 0;
    *f = *(const float *)t->data;
    return 1;
}

/* If node j is an activation an epilogue can apply to its input 0 = v,
 * fills act/lo/hi and returns 1. */
static int as_activation(const ir_graph *g, int j, int v, op_epilogue *ep)
{
    const ir_node *n = &g->nodes[j];
    const char *op = node_op_type(n);
    if (n->n_in < 1 || n->in[0] != v || n->n_out < 1 || n->out[0] < 0) return 0;
    if (!strcmp(op, "Relu")) {
        ep->act = OP_ACT_CLAMP;
        ep->lo = 0.0f;
        ep->hi = INFINITY;
        return 1;
    }
    if (!strcmp(op, "Clip")) {
        float lo = -INFINITY, hi = INFINITY;
        if (g->opset < 11) {
            lo = node_attr_float(n, "min", -INFINITY);
            hi = node_attr_float(n, "max", INFINITY);
        } else if (!const_scalar(g, n, 1, &lo) || !const_scalar(g, n, 2, &hi)) {
            return 0;
        }
        ep->act = OP_ACT_CLAMP;
        ep->lo = lo;
        ep->hi = hi;
        return 1;
    }
    return 0;
}

/* Same static shape (unknown dimensions match anything). */
static int shapes_may_match(const xt *a, const xt *b)
{
    if (a->rank < 0 || b->rank < 0) return 1;
    if (a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] >= 0 && b->dims[i] >= 0 && a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* Finds the chain headed by node i (see the file comment). */
static void plan_fusion(executor *e, const int *readers, int i)
{
    const ir_graph *g = e->g;
    const ir_node *n = &g->nodes[i];
    fusion *f = &e->fus[i];
    if (n->n_out < 1 || n->out[0] < 0) return;
    int v = n->out[0];
    if (g->values[v].t.dtype != DT_FLOAT || g->values[v].is_output) return;
    /* SiLU: v read by Sigmoid s and by Mul(v, s). */
    if (readers[v] == 2) {
        int s = -1, m = -1;
        for (int j = i + 1; j < g->n_nodes && (s < 0 || m < 0); j++) {
            if (e->skip[j]) continue;
            const ir_node *nj = &g->nodes[j];
            for (int k = 0; k < nj->n_in; k++)
                if (nj->in[k] == v) {
                    if (!strcmp(node_op_type(nj), "Sigmoid") && nj->n_in == 1 && s < 0) s = j;
                    else if (!strcmp(node_op_type(nj), "Mul") && nj->n_in == 2 && m < 0) m = j;
                    break;
                }
        }
        if (s < 0 || m < 0 || g->nodes[s].n_out < 1) return;
        int sv = g->nodes[s].out[0];
        const ir_node *mn = &g->nodes[m];
        if (sole_reader(e, readers, sv, s) != m || mn->n_out < 1 || mn->out[0] < 0) return;
        if (!((mn->in[0] == v && mn->in[1] == sv) || (mn->in[0] == sv && mn->in[1] == v))) return;
        f->n_members = 2;
        f->members[0] = s;
        f->members[1] = m;
        f->n_inter = 2;
        f->inter[0] = v;
        f->inter[1] = sv;
        f->final = mn->out[0];
        f->residual = -1;
        f->epi.act = OP_ACT_SILU;
        return;
    }
    int j = sole_reader(e, readers, v, i);
    if (j < 0) return;
    fusion t = {.final = -1, .residual = -1, .n_inter = 1, .inter = {v}};
    const ir_node *nj = &g->nodes[j];
    if (!strcmp(node_op_type(nj), "Add") && nj->n_in == 2 && nj->n_out >= 1 && nj->out[0] >= 0) {
        int o = nj->in[0] == v ? nj->in[1] : nj->in[0];
        if (o < 0 || o == v || g->values[o].t.dtype != DT_FLOAT) return;
        int p = g->values[o].producer;
        if (p >= i || !shapes_may_match(&g->values[o].t, &g->values[v].t)) return;
        t.residual = o;
        t.members[t.n_members++] = j;
        t.final = nj->out[0];
        int a = sole_reader(e, readers, t.final, j);
        if (a >= 0 && as_activation(g, a, t.final, &t.epi)) {
            t.members[t.n_members++] = a;
            t.inter[t.n_inter++] = t.final;
            t.final = g->nodes[a].out[0];
        }
    } else if (as_activation(g, j, v, &t.epi)) {
        t.members[t.n_members++] = j;
        t.final = nj->out[0];
    }
    if (t.n_members) *f = t;
}


/* ---- sample passes ------------------------------------------------------
 * At batch > 1 the first layers of a CNN move large activations and few
 * weights: run batch-wide, each of their outputs is the batch's worth
 * (tens of MB for MobileNet's expanded layers) and goes to memory and back.
 * Run one sample at a time, each layer's output stays in cache for the
 * next.  Later layers (small activations, large weights) are better
 * batch-wide, where a weight is used for every sample while in cache.  So
 * the executor finds a prefix of the node list whose ops treat samples
 * independently and whose nodes produce more bytes per sample than they
 * read in weights, runs it once per sample of the batch, then the rest on
 * the whole batch.  Not with an observer that wants each value of the batch
 * at once (an order-free one takes the samples as they come:
 * exec_set_observed_by_sample), nor for graphs with several inputs. */

/* Bytes of one sample of static value v (dims after the first), or -1. */
static int64_t sample_bytes(const ir_value *v)
{
    if (v->t.rank < 1 || !dtype_size(v->t.dtype)) return -1;
    int64_t b = dtype_size(v->t.dtype);
    for (int i = 1; i < v->t.rank; i++) {
        if (v->t.dims[i] < 0) return -1;
        b *= v->t.dims[i];
    }
    return b;
}

static int is_const(const ir_graph *g, int v) { return v >= 0 && g->values[v].t.data != NULL; }

/* True when node n computes each sample of its batch from that sample
 * alone (axis 0 of every non-constant input and output is the batch). */
static int per_sample(const ir_graph *g, const ir_node *n)
{
    static const char *const plain[] = {"Conv", "Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid",
                                        "HardSwish", "Identity", "BatchNormalization", "AveragePool",
                                        "GlobalAveragePool", "GlobalMaxPool", "MaxPool", "Add", "Mul", "Sub",
                                        "Div", "Concat"};
    const char *op = node_op_type(n);
    size_t k;
    for (k = 0; k < sizeof plain / sizeof plain[0]; k++)
        if (!strcmp(op, plain[k])) break;
    if (k == sizeof plain / sizeof plain[0] || n->n_out < 1 || n->out[0] < 0) return 0;
    int rank = g->values[n->out[0]].t.rank;
    if (rank < 1) return 0;
    if (!strcmp(op, "MaxPool") && n->n_out > 1 && n->out[1] >= 0) return 0;   /* Indices: whole-tensor */
    if (!strcmp(op, "Concat")) {
        int64_t a = node_attr_int(n, "axis", 0);
        if (a < 0) a += rank;
        if (a == 0) return 0;
    }
    if (n->n_in < 1 || is_const(g, n->in[0])) return 0;
    for (int i = 0; i < n->n_in; i++) {
        int v = n->in[i];
        if (v < 0) continue;
        const xt *t = &g->values[v].t;
        if (is_const(g, v)) {
            /* Broadcast constants must not vary along the batch axis
             * (Conv's weights are not broadcast). */
            if (!strcmp(op, "Conv") || !strcmp(op, "BatchNormalization") || !strcmp(op, "Clip")) continue;
            if (t->rank >= rank && t->dims[t->rank - rank] != 1) return 0;
        } else if (t->rank != rank) {
            return 0;
        }
    }
    return 1;
}

static void plan_samples(executor *e)
{
    ir_graph *g = e->g;
    if (g->n_inputs != 1) return;
    int cut = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (e->skip[i]) continue;
        if (!per_sample(g, n)) break;
        int64_t wbytes = 0, out = sample_bytes(&g->values[n->out[0]]);
        for (int k = 0; k < n->n_in; k++)
            if (is_const(g, n->in[k])) wbytes += xt_nbytes(&g->values[n->in[k]].t);
        /* Small weights never stop it (squeeze-excitation convs make a
         * few values per sample from a few KB). */
        if (out >= 0 && wbytes > out && wbytes > 64 * 1024) break;
        cut = i + 1;
    }
    /* A fused chain runs whole on one side of the cut. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int h = 0; h < cut; h++)
            for (int k = 0; k < e->fus[h].n_members; k++)
                if (e->fus[h].members[k] >= cut) {
                    cut = h;
                    changed = 1;
                }
    }
    /* Worth it only for a few layers at least. */
    int convs = 0;
    for (int i = 0; i < cut; i++) convs += !e->skip[i] && !strcmp(node_op_type(&g->nodes[i]), "Conv");
    if (convs < 2) return;
    e->sb_cut = cut;
    int in = g->inputs[0];
    for (int v = 0; v < g->n_values; v++) {
        int p = g->values[v].producer;
        if ((v == in || (p >= 0 && p < cut && !e->skip[p])) && (e->last_use[v] >= cut || g->values[v].is_output))
            e->crossing[v] = 1;
    }
    e->crossing[in] = 0;   /* bound to the caller's input, not a buffer */
}

/* ---- Concat outputs written in place ------------------------------------
 * SqueezeNet's Fire modules (and Inception's blocks) end in a Concat of
 * conv outputs along the channels; copying them costs a read and a write
 * of the whole output.  For a Concat along axis 1 whose every input has
 * a producer (not a Concat), no other reader, is no graph output and a
 * static channel count, the producers write into the Concat's output: the
 * first one to run allocates it, each writes its slice, and the Concat only
 * copies the inputs that could not be placed.  A slice is contiguous only
 * when the batch is 1 (a batch's images interleave the inputs' channels),
 * so a run at batch > 1 places nothing, except in the sample passes, which
 * run at batch 1.  An observer is shown a placed value as its slice, a
 * tensor of its own shape there: calibration of SqueezeNet's Fire modules
 * (whose Concat inputs are all quantization points) copied every Concat
 * otherwise. */
static void plan_concats(executor *e, const int *readers)
{
    ir_graph *g = e->g;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (e->skip[i] || strcmp(node_op_type(n), "Concat") || n->n_out < 1 || n->out[0] < 0) continue;
        const xt *ut = &g->values[n->out[0]].t;
        int rank = ut->rank;
        int64_t axis = node_attr_int(n, "axis", 1);
        if (rank < 2 || !node_has_attr(n, "axis") || (axis < 0 ? axis + rank : axis) != 1) continue;
        int ok = n->n_in >= 1, side = i < e->sb_cut;
        for (int d = 1; d < rank; d++) ok = ok && ut->dims[d] >= 0;
        int64_t at = 0;
        for (int k = 0; k < n->n_in && ok; k++) {
            int v = n->in[k];
            ok = v >= 0 && g->values[v].t.rank == rank && g->values[v].t.dims[1] >= 0;
            if (ok) at += g->values[v].t.dims[1];
        }
        if (!ok || at != ut->dims[1]) continue;
        at = 0;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k], p = g->values[v].producer;
            if (p >= 0 && p < i && !e->skip[p] && readers[v] == 1 && !g->values[v].is_output && !e->crossing[v] &&
                (p < e->sb_cut) == side && strcmp(node_op_type(&g->nodes[p]), "Concat")) {
                e->cat_of[v] = i;
                e->cat_chan[v] = at;
            }
            at += g->values[v].t.dims[1];
        }
    }
}

/* ---- squeeze-excitation scales folded into the next conv ---------------
 * EfficientNet's blocks end in y = Conv(x * s) with s = sigmoid(...) of
 * shape [N, C, 1, 1]: the Mul reads and writes a whole activation for a
 * product the conv can apply to its packed input rows (pack_conv_b_scaled),
 * so the Mul is skipped and the Conv reads x and s.  Only when the Mul's
 * output has that Conv as its one reader and is no graph output, both run
 * on the same side of the sample-pass cut, and at run time when no
 * observer wants the Mul's output and the shapes are as planned.  x and s
 * live until the Conv. */
static void plan_scales(executor *e, const int *readers)
{
    ir_graph *g = e->g;
    for (int m = 0; m < g->n_nodes; m++) {
        const ir_node *n = &g->nodes[m];
        if (e->skip[m] || strcmp(node_op_type(n), "Mul") || n->n_in != 2 || n->n_out < 1 || n->out[0] < 0) continue;
        int y = n->out[0];
        int c = sole_reader(e, readers, y, m);
        if (c < 0 || strcmp(node_op_type(&g->nodes[c]), "Conv") || !e->state[c] || g->nodes[c].n_in < 2 ||
            g->nodes[c].in[0] != y || g->nodes[c].in[1] == y || (g->nodes[c].n_in > 2 && g->nodes[c].in[2] == y) ||
            (m < e->sb_cut) != (c < e->sb_cut))
            continue;
        int member = 0;
        for (int h = 0; h < g->n_nodes && !member; h++)
            for (int k = 0; k < e->fus[h].n_members; k++) member |= e->fus[h].members[k] == m;
        if (member) continue;
        for (int a = 0; a < 2; a++) {
            int x = n->in[a], sv = n->in[1 - a];
            if (x < 0 || sv < 0 || x == sv || is_const(g, x)) continue;
            const xt *xs = &g->values[x].t, *ss = &g->values[sv].t;
            if (xs->rank != 4 || ss->rank != 4 || ss->dims[2] != 1 || ss->dims[3] != 1 || xs->dtype != DT_FLOAT ||
                ss->dtype != DT_FLOAT)
                continue;
            e->sc_conv[m] = c;
            e->sc_x[c] = x;
            e->sc_s[c] = sv;
            if (e->last_use[x] < c) e->last_use[x] = c;
            if (e->last_use[sv] < c) e->last_use[sv] = c;
            break;
        }
    }
}

/* Prepares the ops that want it and plans the fused chains. */
static int prepare(executor *e, qk_err *err)
{
    ir_graph *g = e->g;
    int *readers = count_readers(e);
    if (!readers) return qk_fail(err, QK_ENOMEM, "out of memory");
    int rc = QK_OK;
    for (int i = 0; i < g->n_nodes && rc == QK_OK; i++) {
        const ir_node *n = &g->nodes[i];
        if (e->skip[i] || !(e->prep[i] = op_prep_lookup(node_op_type(n)))) continue;
        if (n->n_in > 64 || n->n_out > 64) continue;
        const xt *ins[64];
        xt outs_t[64], *outs[64];
        for (int k = 0; k < n->n_in; k++) ins[k] = n->in[k] >= 0 ? &g->values[n->in[k]].t : NULL;
        for (int k = 0; k < n->n_out; k++) {
            outs_t[k] = n->out[k] >= 0 ? g->values[n->out[k]].t : (xt){.rank = -1};
            outs[k] = n->out[k] >= 0 ? &outs_t[k] : NULL;
        }
        op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = n->n_out, .out = outs,
                    .pool = e->pool, .opset = g->opset, .err = err};
        if (e->prep[i]->prepare) rc = e->prep[i]->prepare(&c, &e->state[i]);
        if (rc == QK_OK && e->prep[i]->fuses) plan_fusion(e, readers, i);
    }
    free(readers);
    return rc;
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
    e->state = calloc((size_t)g->n_nodes + 1, sizeof *e->state);
    e->prep = calloc((size_t)g->n_nodes + 1, sizeof *e->prep);
    e->fus = calloc((size_t)g->n_nodes + 1, sizeof *e->fus);
    e->fused_skip = calloc((size_t)g->n_nodes + 1, 1);
    e->crossing = calloc((size_t)g->n_values + 1, 1);
    e->sb_buf = calloc((size_t)g->n_values + 1, sizeof(int));
    e->cat_of = malloc(((size_t)g->n_values + 1) * sizeof(int));
    e->cat_chan = calloc((size_t)g->n_values + 1, sizeof(int64_t));
    e->placed = calloc((size_t)g->n_values + 1, 1);
    e->cat_t = calloc((size_t)g->n_nodes + 1, sizeof(xt));
    e->sc_conv = malloc(((size_t)g->n_nodes + 1) * sizeof(int));
    e->sc_x = calloc((size_t)g->n_nodes + 1, sizeof(int));
    e->sc_s = calloc((size_t)g->n_nodes + 1, sizeof(int));
    e->sc_on = calloc((size_t)g->n_nodes + 1, 1);
    e->pool = tp_new(threads);
    if (!e->last_use || !e->skip || !e->rt || !e->buf_of || !e->state || !e->prep || !e->fus ||
        !e->fused_skip || !e->crossing || !e->sb_buf || !e->cat_of || !e->cat_chan || !e->placed ||
        !e->cat_t || !e->sc_conv || !e->sc_x || !e->sc_s || !e->sc_on || !e->pool) {
        exec_free(e);
        return qk_fail(err, QK_ENOMEM, "out of memory creating the executor");
    }
    for (int v = 0; v < g->n_values; v++) e->last_use[v] = e->cat_of[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) e->sc_conv[i] = e->sc_x[i] = e->sc_s[i] = -1;
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
    if ((rc = prepare(e, err))) {
        exec_free(e);
        return rc;
    }
    plan_samples(e);
    int *readers = count_readers(e);
    if (!readers) {
        exec_free(e);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    plan_concats(e, readers);
    plan_scales(e, readers);
    free(readers);
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
    if (e->state)
        for (int i = 0; i < e->g->n_nodes; i++)
            if (e->state[i]) e->prep[i]->release(e->state[i]);
    free(e->state);
    free(e->prep);
    free(e->fus);
    free(e->fused_skip);
    free(e->crossing);
    free(e->sb_buf);
    free(e->cat_of);
    free(e->cat_chan);
    free(e->placed);
    free(e->cat_t);
    free(e->sc_conv);
    free(e->sc_x);
    free(e->sc_s);
    free(e->sc_on);
    free(e->ext);
    free(e->batch_ext);
    free(e->batch_seen);
    tp_free(e->pool);
    free(e->last_use);
    free(e->skip);
    free(e->rt);
    free(e->buf_of);
    free(e);
}

int exec_sample_prefix(const executor *e) { return e->sb_cut; }

int exec_buffers_in_use(const executor *e)
{
    int n = 0;
    for (int i = 0; i < e->n_bufs; i++) n += e->bufs[i].in_use;
    return n;
}

int exec_scales_folded(const executor *e)
{
    int n = 0;
    for (int i = 0; i < e->g->n_nodes; i++) n += e->sc_conv[i] >= 0;
    return n;
}

int exec_concat_placed(const executor *e)
{
    int n = 0;
    for (int v = 0; v < e->g->n_values; v++) n += e->cat_of[v] >= 0;
    return n;
}

int exec_fused_nodes(const executor *e)
{
    int n = 0;
    for (int i = 0; i < e->g->n_nodes; i++) n += e->fus[i].n_members;
    return n;
}

void exec_set_observer(executor *e, exec_observe_fn fn, void *arg)
{
    e->observe = fn;
    e->observe_arg = arg;
    e->want = NULL;
    e->observe_samples = 0;
    e->observe_part = NULL;
    e->by_part = NULL;
}

void exec_set_observed(executor *e, const char *want) { e->want = want; }

void exec_set_observed_by_sample(executor *e, int ok) { e->observe_samples = ok != 0; }

int exec_set_observed_by_part(executor *e, exec_observe_part_fn fn, const char *by_part, qk_err *err)
{
    e->observe_part = NULL;
    e->by_part = NULL;
    /* Calibration's alone: allocated here, not in exec_new, so that
     * inference's heap -- and with it the alignment of every activation
     * buffer malloc hands out -- stays what it was.  That layout matters
     * here: 64-byte-aligned buffers instead of malloc's moved MobileNet-V2
     * by +4% and SqueezeNet by -2% at batch 8. */
    if (fn && !e->ext) {
        e->ext = malloc(EXT_FLOATS * sizeof(float) * (size_t)tp_nthreads(e->pool));
        e->batch_ext = malloc(2 * sizeof(float) * ((size_t)e->g->n_values + 1));
        e->batch_seen = calloc((size_t)e->g->n_values + 1, 1);
        if (!e->ext || !e->batch_ext || !e->batch_seen) {
            free(e->ext);
            free(e->batch_ext);
            free(e->batch_seen);
            e->ext = e->batch_ext = NULL;
            e->batch_seen = NULL;
            return qk_fail(err, QK_ENOMEM, "out of memory");
        }
    }
    e->observe_part = fn;
    e->by_part = fn ? by_part : NULL;
    return QK_OK;
}

int exec_tails_run(const executor *e) { return e->tails_run; }

threadpool *exec_threadpool(const executor *e) { return tp_nthreads(e->pool) > 1 ? e->pool : NULL; }

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

/* Storage for value v's nb bytes: a pool buffer of its own, or in a
 * sample pass (e->sb_n > 1), for a value that outlives the prefix, its
 * slot of a whole-batch buffer. */
static int out_storage(executor *e, int v, int64_t nb, void **data, qk_err *err)
{
    const ir_graph *g = e->g;
    if (e->sb_n > 1 && e->crossing[v]) {
        if (e->sb_s == 0) {
            int b = acquire(e, (size_t)nb * (size_t)e->sb_n);
            if (b < 0)
                return qk_fail(err, QK_ENOMEM, "out of memory for output '%s' (%lld bytes)", g->values[v].name,
                               (long long)(nb * e->sb_n));
            e->sb_buf[v] = b;
        }
        *data = (char *)e->bufs[e->sb_buf[v]].p + (size_t)nb * (size_t)e->sb_s;
        return QK_OK;
    }
    int b = acquire(e, (size_t)nb);
    if (b < 0)
        return qk_fail(err, QK_ENOMEM, "out of memory for output '%s' (%lld bytes)", g->values[v].name, (long long)nb);
    e->buf_of[v] = b;
    *data = e->bufs[b].p;
    return QK_OK;
}

/* Bytes from one channel of t to the next (dims after axis 1). */
static int64_t channel_bytes(const xt *t)
{
    int64_t b = (int64_t)dtype_size(t->dtype);
    for (int d = 2; d < t->rank; d++) b *= t->dims[d];
    return b;
}

/* If value v (shape t) can be written into its slice of its Concat's
 * output (see plan_concats), points t->data there, allocating that output
 * first if no other input did; sets *done. */
static int place_in_concat(executor *e, int v, xt *t, int *done, qk_err *err)
{
    const ir_graph *g = e->g;
    int ci = e->cat_of[v];
    *done = 0;
    if (ci < 0 || t->rank < 2 || t->dims[0] != 1 || t->dims[1] != g->values[v].t.dims[1]) return QK_OK;
    int u = g->nodes[ci].out[0];
    const xt *us = &g->values[u].t;
    for (int d = 2; d < t->rank; d++)
        if (t->rank != us->rank || t->dims[d] != us->dims[d]) return QK_OK;
    xt *ct = &e->cat_t[ci];
    if (!ct->data) {
        xt nt = *t;
        nt.dims[1] = us->dims[1];
        int rc = out_storage(e, u, xt_nbytes(&nt), &nt.data, err);
        if (rc) return rc;
        *ct = nt;
    } else if (ct->dtype != t->dtype) {
        return QK_OK;
    }
    t->data = (char *)ct->data + e->cat_chan[v] * channel_bytes(t);
    e->placed[v] = 1;
    *done = 1;
    return QK_OK;
}

/* Concat node i whose output some producers already wrote into (y, with
 * the shape run_node inferred): copies the inputs that were not placed. */
static int finish_concat(executor *e, int i, xt *y, qk_err *err)
{
    const ir_graph *g = e->g;
    const ir_node *n = &g->nodes[i];
    xt *ct = &e->cat_t[i];
    if (y->dtype != ct->dtype || y->rank != ct->rank ||
        memcmp(y->dims, ct->dims, sizeof(int64_t) * (size_t)y->rank))
        return qk_fail(err, QK_EINVAL, "Concat node '%s': inputs changed shape after the first was placed", node_name(n));
    y->data = ct->data;
    int64_t cb = channel_bytes(y), orow = y->dims[1] * cb, at = 0;
    for (int k = 0; k < n->n_in; k++) {
        const xt *t = &e->rt[n->in[k]];
        int64_t chunk = t->dims[1] * cb;
        if (!e->placed[n->in[k]])
            for (int64_t o = 0; o < y->dims[0] && chunk > 0; o++)
                memcpy((char *)y->data + o * orow + at, (const char *)t->data + o * chunk, (size_t)chunk);
        at += chunk;
    }
    for (int k = 0; k < n->n_in; k++) e->placed[n->in[k]] = 0;
    ct->data = NULL;
    return QK_OK;
}

/* Whether the observer wants value v, and takes it as its extremes
 * (EXEC_BY_EXTREMES). */
static int wanted(const executor *e, int v) { return v >= 0 && (!e->want || e->want[v]); }
static int takes_extremes(const executor *e, int v)
{
    if (!e->by_part || v < 0) return 0;
    return (e->by_part[v] == EXEC_BY_EXTREMES && e->observe_part) || e->by_part[v] == EXEC_EXTREMES;
}

/* True when Mul node m, planned to be folded into its Conv (plan_scales),
 * can be in this run: no observer wants its output, or only as extremes
 * (the Conv then gathers them, see run_node), and x and s have the planned
 * shapes, s one value per image and channel of x. */
static int scale_foldable(const executor *e, int m)
{
    const ir_node *n = &e->g->nodes[m];
    int c = e->sc_conv[m];
    if (e->observe && wanted(e, n->out[0]) && !takes_extremes(e, n->out[0])) return 0;
    const xt *x = &e->rt[e->sc_x[c]], *s = &e->rt[e->sc_s[c]];
    return x->data && s->data && x->dtype == DT_FLOAT && s->dtype == DT_FLOAT && x->rank == 4 && s->rank == 4 &&
           s->dims[0] == x->dims[0] && s->dims[1] == x->dims[1] && s->dims[2] == 1 && s->dims[3] == 1;
}

/* In a sample pass, an EXEC_EXTREMES value's observer (not order-free)
 * must see the batch's extremes once: they are folded into batch_ext
 * over the passes and handed over after them (run_prefix_by_sample). */
static int deferred(const executor *e, int v)
{
    return e->sb_n > 1 && e->by_part && v >= 0 && e->by_part[v] == EXEC_EXTREMES;
}

static void defer_extremes(executor *e, int v, float lo, float hi)
{
    float *b = e->batch_ext + 2 * (int64_t)v;
    if (!e->batch_seen[v]) b[0] = INFINITY, b[1] = -INFINITY;
    b[0] = lo < b[0] ? lo : b[0];
    b[1] = hi > b[1] ? hi : b[1];
    e->batch_seen[v] = 1;
}

static int observe_whole(executor *e, int v, const xt *t)
{
    double t0 = e->prof ? now_s() : 0;
    int rc = QK_OK;
    if (deferred(e, v) && t->dtype == DT_FLOAT) {
        float lo = INFINITY, hi = -INFINITY;
        vec_finite_extremes(t->data, xt_numel(t), &lo, &hi);
        defer_extremes(e, v, lo, hi);
    } else {
        rc = e->observe(e->observe_arg, v, t);
    }
    if (e->prof) e->prof_observe += now_s() - t0;
    return rc;
}

/* The epilogue stage (EXT_*, sgemm.h) at which node i, run fused with its
 * chain, makes value v; -1 for none. */
static int chain_stage(const executor *e, int i, int v)
{
    const fusion *f = &e->fus[i];
    if (v == f->final) return EXT_OUT;
    if (v == e->g->nodes[i].out[0]) return EXT_HEAD;
    for (int k = 0; k < f->n_members; k++) {
        const ir_node *m = &e->g->nodes[f->members[k]];
        if (m->out[0] != v) continue;
        if (!strcmp(node_op_type(m), "Add")) return EXT_SUM;
        if (!strcmp(node_op_type(m), "Sigmoid")) return EXT_SIG;
    }
    return -1;
}

/* Hands the observer value v's extremes lo, hi (lo > hi: it held no
 * finite value), as by_part[v] takes them: thread tid's part's
 * (EXEC_BY_EXTREMES), or the whole value's (EXEC_EXTREMES). */
static int give_extremes(executor *e, int v, int tid, float lo, float hi)
{
    float pair[2] = {lo, hi};
    xt p;
    memset(&p, 0, sizeof p);
    p.dtype = DT_FLOAT;
    p.rank = 1;
    p.dims[0] = 2;
    p.data = pair;
    if (!(lo <= hi)) {
        pair[0] = NAN;
        p.dims[0] = 1;
    }
    if (deferred(e, v)) {
        defer_extremes(e, v, lo, hi);
        return QK_OK;
    }
    if (e->by_part[v] == EXEC_EXTREMES) return e->observe(e->observe_arg, v, &p);
    return e->observe_part(e->observe_arg, v, tid, &p);
}

/* Hands the observer value v as the extremes the kernel gathered in
 * e->ext for `stage`: each thread's as the part it wrote, or all of them
 * as the whole value's (give_extremes).  An infinity in OUT's lanes (its
 * fold skips only NaN) sends `stored` to the observer whole instead,
 * which skips it. */
static int observe_stage(executor *e, int v, int stage, const xt *stored)
{
    double t0 = e->prof ? now_s() : 0;
    int threads = tp_nthreads(e->pool), rc = QK_OK, seen = 0, scan = 0;
    float all_lo = INFINITY, all_hi = -INFINITY;
    /* Only OUT lets infinities in (the other stages' folds skip them). */
    for (int k = 0; stage == EXT_OUT && k < threads && !scan; k++) {
        const float *l = e->ext + (int64_t)k * EXT_FLOATS + stage * EXT_STAGE_FLOATS;
        for (int i = 0; i < EXT_LANES; i++) scan |= isinf(l[i]) && l[i] < 0;
        for (int i = 0; i < EXT_LANES; i++) scan |= isinf(l[EXT_LANES + i]) && l[EXT_LANES + i] > 0;
    }
    if (scan) return observe_whole(e, v, stored);
    for (int k = 0; k < threads && rc == QK_OK; k++) {
        const float *l = e->ext + (int64_t)k * EXT_FLOATS + stage * EXT_STAGE_FLOATS;
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < EXT_LANES; i++) {
            lo = l[i] < lo ? l[i] : lo;
            hi = l[EXT_LANES + i] > hi ? l[EXT_LANES + i] : hi;
        }
        all_lo = lo < all_lo ? lo : all_lo;
        all_hi = hi > all_hi ? hi : all_hi;
        if (!(lo <= hi) || e->by_part[v] == EXEC_EXTREMES) continue;
        rc = give_extremes(e, v, k, lo, hi);
        seen = 1;
    }
    /* The whole value's, or {NaN} once when no thread saw a finite value. */
    if (rc == QK_OK && !seen) rc = give_extremes(e, v, 0, all_lo, all_hi);
    if (e->prof) e->prof_observe += now_s() - t0;
    return rc;
}

/* Hands the observer the extremes of x * s (s per image and channel of
 * x), the output of a Mul folded into a Conv that cannot gather them
 * itself: one scan of x, the product rounded as the Mul would. */
static int observe_scaled(executor *e, int v, const xt *x, const xt *s)
{
    double t0 = e->prof ? now_s() : 0;
    const float *xp = x->data, *sp = s->data;
    int64_t planes = x->dims[0] * x->dims[1], plane = x->dims[2] * x->dims[3];
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < plane; i++) {
            float y = xp[p * plane + i] * sp[p];
            if (!isfinite(y)) continue;
            lo = y < lo ? y : lo;
            hi = y > hi ? y : hi;
        }
    int rc = give_extremes(e, v, 0, lo, hi);
    if (e->prof) e->prof_observe += now_s() - t0;
    return rc;
}

/* The stages node i's op would gather for c with epilogue epi (NULL:
 * none), by its op_prep hook; 0 without one. */
static unsigned op_gathers(const executor *e, int i, op_ctx *c, const op_epilogue *epi)
{
    const op_prep *p = e->prep[i];
    if (!p || !p->ext_stages || !e->ext) return 0;
    const op_epilogue *keep = c->epi;
    c->epi = epi;
    unsigned st = p->ext_stages(c);
    c->epi = keep;
    return st;
}

/* For node i, the head of a chain whose intermediates the observer wants,
 * with its outputs allocated: infers and allocates the members' outputs
 * and fills *t if the rest of the chain can run as a tail pass; else
 * clears *tail and the members run as nodes of their own. */
static int tail_prepare(executor *e, int i, exec_tail *t, int *tail, qk_err *err)
{
    ir_graph *g = e->g;
    const fusion *f = &e->fus[i];
    *t = (exec_tail){.g = g, .rt = e->rt, .head = g->nodes[i].out[0], .members = f->members,
                     .n_members = f->n_members, .by_part = e->by_part, .observe = e->observe_part,
                     .arg = e->observe_arg};
    *tail = 0;
    for (int k = 0; k < f->n_members; k++) {
        const ir_node *n = &g->nodes[f->members[k]];
        const xt *ins[8];
        if (n->n_in > 8 || n->n_out != 1 || n->out[0] < 0) return QK_OK;
        for (int a = 0; a < n->n_in; a++) ins[a] = n->in[a] >= 0 ? &e->rt[n->in[a]] : NULL;
        xt *y = &e->rt[n->out[0]];
        memset(y, 0, sizeof *y);
        y->rank = -1;
        op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = 1, .out = &y, .opset = g->opset, .err = err};
        if (n->op->infer(&c) != QK_OK) {
            err->code = 0;
            return QK_OK;
        }
    }
    if (!tail_runnable(t)) return QK_OK;
    int silu = tail_silu(t), h = t->head, m = f->members[f->n_members - 1];
    for (int k = 0; k < f->n_members; k++) {
        int v = g->nodes[f->members[k]].out[0];
        if (silu && k == 0 && exec_in_parts(e->by_part, v)) {
            /* Only the Mul reads it (plan_fusion), and that is in the pass. */
            t->sigmoid_unstored = 1;
            e->rt[v].data = NULL;
            continue;
        }
        if (silu && k == 1 && e->buf_of[h] >= 0 && e->last_use[h] <= m && !(e->sb_n > 1 && e->crossing[v])) {
            /* The product over the head value, whose readers are all in
             * the pass: its lines are in cache already when written. */
            e->buf_of[v] = e->buf_of[h];
            e->buf_of[h] = -1;
            e->rt[v].data = e->rt[h].data;
            continue;
        }
        int rc = out_storage(e, v, xt_nbytes(&e->rt[v]), &e->rt[v].data, err);
        if (rc) return rc;
    }
    *tail = 1;
    return QK_OK;
}

/* Runs node i (see exec_run).  In a sample pass (e->sb_n > 1) a value
 * that outlives the prefix is written into its slot of a whole-batch
 * buffer instead of a buffer of its own. */
static int run_node(executor *e, int i, qk_err *err)
{
    ir_graph *g = e->g;
    const ir_node *n = &g->nodes[i];
    int rc;
    if (e->fused_skip[i]) {
        /* Done by its chain's head: only the bookkeeping is left (a tail
         * pass stored this node's output, which may have no reader). */
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && e->last_use[n->in[k]] == i) release(e, n->in[k]);
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] >= 0 && e->last_use[n->out[k]] <= i) release(e, n->out[k]);
        return QK_OK;
    }
    if (e->sc_conv[i] >= 0 && scale_foldable(e, i)) {
        /* The Conv reading this Mul's output scales its input itself. */
        e->sc_on[e->sc_conv[i]] = 1;
        return QK_OK;
    }
    const xt *ins[64];
    xt *outs[64];
    if (n->n_in > 64 || n->n_out > 64)
        return qk_fail(err, QK_ENOTSUP, "node '%s' has more than 64 inputs or outputs", node_name(n));
    for (int k = 0; k < n->n_in; k++) {
        ins[k] = n->in[k] >= 0 ? &e->rt[n->in[k]] : NULL;
        if (k == 0 && e->sc_on[i]) ins[0] = &e->rt[e->sc_x[i]];
        if (ins[k] && !ins[k]->data && xt_numel(ins[k]) != 0)
            return qk_fail(err, QK_EINVAL, "%s node '%s': input '%s' has no value (unsupported initializer type?)",
                           node_op_type(n), node_name(n), g->values[n->in[k]].name);
    }
    for (int k = 0; k < n->n_out; k++) {
        outs[k] = n->out[k] >= 0 ? &e->rt[n->out[k]] : NULL;
        if (outs[k]) {
            memset(outs[k], 0, sizeof *outs[k]);
            outs[k]->rank = -1;
        }
    }
    op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = n->n_out, .out = outs,
                .pool = e->pool, .opset = g->opset, .err = err, .state = e->state[i],
                .in_scale = e->sc_on[i] ? &e->rt[e->sc_s[i]] : NULL};
    rc = n->op->infer(&c);
    if (rc == QK_UNKNOWN)
        rc = qk_fail(err, QK_EINVAL, "%s node '%s': cannot infer output shape", node_op_type(n), node_name(n));
    if (rc) return rc;
    /* A fused chain writes its last value in place of out[0]. */
    const fusion *f = &e->fus[i];
    int fuse = f->n_members && outs[0] && outs[0]->dtype == DT_FLOAT, tail = 0;
    op_epilogue epi;
    if (fuse && f->residual >= 0) {
        const xt *r = &e->rt[f->residual];
        fuse = r->data && r->dtype == DT_FLOAT && r->rank == outs[0]->rank &&
               !memcmp(r->dims, outs[0]->dims, sizeof(int64_t) * (size_t)(r->rank > 0 ? r->rank : 0));
    }
    if (fuse) {
        epi = f->epi;
        epi.residual = f->residual >= 0 ? &e->rt[f->residual] : NULL;
    }
    /* Stages (EXT_*) whose extremes the head gathers for the observer, and
     * those its kernel can gather with the epilogue it will run (-1u: not
     * asked yet; op_gathers is asked once per epilogue). */
    unsigned stages = 0, can = -1u;
    if (fuse && e->observe) {
        /* Observed: only when the chain's intermediates are not wanted, or
         * wanted as extremes the head gathers; else the rest of the chain
         * runs in a tail pass (exec_tail.h). */
        for (int k = 0; k < f->n_inter && fuse; k++) {
            int v = f->inter[k], st = chain_stage(e, i, v);
            if (!wanted(e, v)) continue;
            if (takes_extremes(e, v) && st >= 0) stages |= 1u << st;
            else fuse = 0;
        }
        if (fuse && stages && (stages & ~(can = op_gathers(e, i, &c, &epi)))) fuse = 0;
        tail = !fuse;
        if (!fuse) stages = 0, can = -1u;
    }
    if (fuse) {
        e->rt[f->final] = *outs[0];
        outs[0] = &e->rt[f->final];
        c.epi = &epi;
    }
    int concat_done = 0;
    for (int k = 0; k < n->n_out; k++) {
        int v = k == 0 && fuse ? f->final : n->out[k];
        if (v < 0) continue;
        int64_t nb = xt_nbytes(outs[k]);
        if (nb < 0 || !dtype_size(outs[k]->dtype))
            return qk_fail(err, QK_EINVAL, "%s node '%s': output '%s' has no known shape or type",
                           node_op_type(n), node_name(n), g->values[v].name);
        int placed = 0;
        if ((rc = place_in_concat(e, v, outs[k], &placed, err))) return rc;
        if (placed) continue;
        if (k == 0 && e->cat_t[i].data) {
            /* The producers wrote (most of) this Concat's output. */
            if ((rc = finish_concat(e, i, outs[0], err))) return rc;
            concat_done = 1;
            continue;
        }
        if ((rc = out_storage(e, v, nb, &outs[k]->data, err))) return rc;
    }
    exec_tail tl;
    if (tail && (rc = tail_prepare(e, i, &tl, &tail, err))) return rc;
    /* The stored output too, when the observer takes its extremes. */
    int out_v = fuse ? f->final : n->out[0];
    if (e->observe && !tail && !concat_done && outs[0] && outs[0]->dtype == DT_FLOAT && wanted(e, out_v) &&
        takes_extremes(e, out_v)) {
        if (can == -1u) can = op_gathers(e, i, &c, c.epi);
        stages |= can & 1u << EXT_OUT;
    }
    /* The output of a Mul folded into this Conv, wanted as extremes (see
     * scale_foldable): gathered as the Conv packs its scaled input. */
    int sc_y = e->sc_on[i] && e->observe && wanted(e, n->in[0]) ? n->in[0] : -1;
    if (sc_y >= 0) {
        if (can == -1u) can = op_gathers(e, i, &c, c.epi);
        if (can & 1u << EXT_IN) stages |= 1u << EXT_IN;
        else if ((rc = observe_scaled(e, sc_y, &e->rt[e->sc_x[i]], &e->rt[e->sc_s[i]]))) return rc;
    }
    if (stages) {
        for (int k = 0; k < tp_nthreads(e->pool); k++)
            for (int s = 0; s < EXT_STAGES; s++)
                for (int l = 0; l < EXT_LANES; l++) {
                    e->ext[k * EXT_FLOATS + s * EXT_STAGE_FLOATS + l] = INFINITY;
                    e->ext[k * EXT_FLOATS + s * EXT_STAGE_FLOATS + EXT_LANES + l] = -INFINITY;
                }
        c.ext = e->ext;
        c.ext_stages = stages;
    }
    double t0 = e->prof ? now_s() : 0;
    if (!concat_done && (rc = n->op->run(&c))) return rc;
    if (e->prof) {
        e->prof[i] += now_s() - t0;
        /* Multiply-adds of Conv: per output element, W's elements per
         * output channel. */
        if (!strcmp(node_op_type(n), "Conv") && n->n_in > 1 && ins[1]->rank > 0 && ins[1]->dims[0] > 0)
            e->prof_flops[i] += 2.0 * (double)xt_numel(outs[0]) * (double)xt_numel(ins[1]) / (double)ins[1]->dims[0];
    }
    for (int k = 0; k < n->n_out; k++) {
        int v = k == 0 && fuse ? f->final : n->out[k];
        if (v < 0) continue;
        if (k == 0 && (stages & 1u << EXT_OUT) && c.ext_gathered) {
            if ((rc = observe_stage(e, v, EXT_OUT, outs[0]))) return rc;
        } else if (e->observe && !(tail && exec_in_parts(e->by_part, v)) && (rc = observe_whole(e, v, outs[k]))) {
            return rc;
        }
        if (e->last_use[v] <= i) release(e, v);
    }
    if (stages & ~(1u << EXT_OUT)) {
        /* Values never stored (a fused chain's intermediates, a folded
         * Mul's output): op_gathers said the kernel would gather them. */
        if (!c.ext_gathered)
            return qk_fail(err, QK_EINVAL, "%s node '%s': internal error: its kernel gathered none of the extremes "
                           "it was to gather for calibration", node_op_type(n), node_name(n));
        for (int k = 0; fuse && k < f->n_inter; k++) {
            int v = f->inter[k], st = chain_stage(e, i, v);
            if (wanted(e, v) && st >= 0 && (rc = observe_stage(e, v, st, NULL))) return rc;
        }
        if ((stages & 1u << EXT_IN) && (rc = observe_stage(e, sc_y, EXT_IN, NULL))) return rc;
    }
    if (tail) {
        t0 = e->prof ? now_s() : 0;
        if ((rc = tail_run(&tl, e->pool, err))) return rc;
        /* The pass, with the parts it observed, counts as its first member. */
        if (e->prof) e->prof[f->members[0]] += now_s() - t0;
        for (int k = 0; k < f->n_members; k++) {
            int v = g->nodes[f->members[k]].out[0];
            if (!exec_in_parts(e->by_part, v) && (rc = observe_whole(e, v, &e->rt[v]))) return rc;
        }
        e->tails_run++;
    }
    for (int k = 0; (fuse || tail) && k < f->n_members; k++) e->fused_skip[f->members[k]] = 1;
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] >= 0 && e->last_use[n->in[k]] == i) release(e, n->in[k]);
    /* x and s of a planned scale live until this Conv whether or not the
     * Mul was folded in this run (an observer may have wanted its output),
     * and release() is idempotent, so this needs no test of sc_on. */
    e->sc_on[i] = 0;
    if (e->sc_x[i] >= 0 && e->last_use[e->sc_x[i]] == i) release(e, e->sc_x[i]);
    if (e->sc_s[i] >= 0 && e->last_use[e->sc_s[i]] == i) release(e, e->sc_s[i]);
    return QK_OK;
}

/* The sample passes over the prefix (see plan_samples): the prefix runs
 * once per sample of the batch on a view of the input, its values that
 * outlive it land in their slots of whole-batch buffers, which the rest of
 * the graph then reads as usual. */
static int run_prefix_by_sample(executor *e, const xt *input, qk_err *err)
{
    ir_graph *g = e->g;
    int in = g->inputs[0], rc = QK_OK;
    int64_t N = input->dims[0], per = xt_nbytes(input) / N;
    if (e->batch_seen) memset(e->batch_seen, 0, (size_t)g->n_values);
    e->sb_n = N;
    for (e->sb_s = 0; e->sb_s < N && rc == QK_OK; e->sb_s++) {
        e->rt[in] = *input;
        e->rt[in].dims[0] = 1;
        e->rt[in].data = (char *)input->data + per * e->sb_s;
        memset(e->fused_skip, 0, (size_t)e->sb_cut);
        for (int i = 0; i < e->sb_cut && rc == QK_OK; i++)
            if (!e->skip[i]) rc = run_node(e, i, err);
    }
    e->sb_n = 0;
    e->rt[in] = *input;
    for (int v = 0; e->batch_seen && v < g->n_values && rc == QK_OK; v++)
        if (e->batch_seen[v]) rc = give_extremes(e, v, 0, e->batch_ext[2 * v], e->batch_ext[2 * v + 1]);
    if (rc) return rc;
    for (int v = 0; v < g->n_values; v++)
        if (e->crossing[v] && v != in) {
            e->rt[v].dims[0] = N;
            e->rt[v].data = e->bufs[e->sb_buf[v]].p;
            e->buf_of[v] = e->sb_buf[v];
        }
    return QK_OK;
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
    memset(e->fused_skip, 0, (size_t)g->n_nodes);
    /* A run that failed may have left Concat outputs half placed. */
    memset(e->placed, 0, (size_t)g->n_values);
    memset(e->sc_on, 0, (size_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) e->cat_t[i].data = NULL;
    e->tails_run = 0;
    int first = 0;
    if (e->sb_cut > 0 && (!e->observe || e->observe_samples) && g->n_inputs == 1 && inputs[0].rank >= 1 && inputs[0].dims[0] > 1) {
        if ((rc = run_prefix_by_sample(e, &inputs[0], err))) goto out;
        first = e->sb_cut;
    }
    for (int i = first; i < g->n_nodes && rc == QK_OK; i++)
        if (!e->skip[i]) rc = run_node(e, i, err);
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
