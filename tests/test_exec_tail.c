/* This file implements tests of the tail passes of observed chains
 * (core/exec_tail.c): a chain whose intermediates an observer wants must
 * show it exactly the values the same graph computes node by node, whole
 * or in parts, on one thread or two, in the sample passes or not, and
 * leave the outputs and the buffer pool as the node-by-node run does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "executor.h"
#include "model_build.h"
#include "rng.h"

static void conv(model_build *m, const char *in, const char *out, const char *name, int64_t mo, int64_t c, int64_t k)
{
    float *w = malloc(sizeof(float) * (size_t)(mo * c * k * k)), *b = malloc(sizeof(float) * (size_t)mo);
    for (int64_t i = 0; i < mo * c * k * k; i++) w[i] = rng_float();
    for (int64_t i = 0; i < mo; i++) b[i] = rng_float();
    mb_conv(m, in, out, name, mo, c, k, 1, 1, w, b);
    free(w);
    free(b);
}

/* X -> Conv c1 -> A; S = Sigmoid(A), M = A * S (SiLU);
 * M -> Conv c2 -> B; Y = Relu(B + M) (a residual chain);
 * M -> Conv c3 -> Z.  With `plain`, A, S, B and R are graph outputs too,
 * so that nothing is fused: the node-by-node reference. */
static ir_graph *build(int plain)
{
    rng_seed(7);
    model_build *m = mb_new();
    int64_t xd[4] = {-1, 8, 40, 40};
    mb_input(m, "X", 4, xd);
    conv(m, "X", "A", "c1", 12, 8, 3);
    const char *si[] = {"A"}, *so[] = {"S"}, *mi[] = {"A", "S"}, *mo[] = {"M"};
    mb_node(m, "Sigmoid", 1, si, 1, so);
    mb_node(m, "Mul", 2, mi, 1, mo);
    conv(m, "M", "B", "c2", 12, 12, 1);
    const char *ai[] = {"B", "M"}, *ao[] = {"R"}, *ri[] = {"R"}, *ro[] = {"Y"};
    mb_node(m, "Add", 2, ai, 1, ao);
    mb_node(m, "Relu", 1, ri, 1, ro);
    conv(m, "M", "Z", "c3", 4, 12, 3);
    mb_output(m, "Y");
    mb_output(m, "Z");
    if (plain) {
        mb_output(m, "A");
        mb_output(m, "S");
        mb_output(m, "B");
        mb_output(m, "R");
    }
    return mb_load(m);
}

/* Per value (by name in the reference graph): what the observer saw. */
#define THREADS_MAX 4
typedef struct stats {
    int64_t n;
    float lo, hi;
    double sum;
} stats;

typedef struct watch {
    const ir_graph *g;
    stats *whole;                   /* per value */
    stats *part[THREADS_MAX];       /* per thread, per value */
    int parts;
} watch;

static void add(stats *s, const xt *t)
{
    const float *p = t->data;
    for (int64_t i = 0; i < xt_numel(t); i++) {
        s->lo = fminf(s->lo, p[i]);
        s->hi = fmaxf(s->hi, p[i]);
        s->sum += p[i];
    }
    s->n += xt_numel(t);
}

static int see_whole(void *arg, int value, const xt *t)
{
    watch *w = arg;
    if (t->dtype == DT_FLOAT) add(&w->whole[value], t);
    return 0;
}

/* From pool threads: each into its own row (tid), no locking needed. */
static int see_part(void *arg, int value, int tid, const xt *t)
{
    watch *w = arg;
    ck_assert_int_lt(tid, THREADS_MAX);
    ck_assert_int_eq(t->rank, 1);
    add(&w->part[tid][value], t);
    __atomic_add_fetch(&w->parts, 1, __ATOMIC_RELAXED);
    return 0;
}

static void watch_init(watch *w, const ir_graph *g)
{
    w->g = g;
    w->parts = 0;
    w->whole = calloc((size_t)g->n_values, sizeof(stats));
    for (int k = 0; k < THREADS_MAX; k++) w->part[k] = calloc((size_t)g->n_values, sizeof(stats));
    for (int v = 0; v < g->n_values; v++) {
        w->whole[v] = (stats){0, INFINITY, -INFINITY, 0};
        for (int k = 0; k < THREADS_MAX; k++) w->part[k][v] = w->whole[v];
    }
}

static void watch_free(watch *w)
{
    free(w->whole);
    for (int k = 0; k < THREADS_MAX; k++) free(w->part[k]);
}

/* Value v's observations, whole and parts together. */
static stats seen(const watch *w, int v)
{
    stats s = w->whole[v];
    for (int k = 0; k < THREADS_MAX; k++) {
        const stats *p = &w->part[k][v];
        s.n += p->n;
        s.lo = fminf(s.lo, p->lo);
        s.hi = fmaxf(s.hi, p->hi);
        s.sum += p->sum;
    }
    return s;
}

static const char *const chain_values[] = {"X", "A", "S", "M", "B", "R", "Y", "Z"};

START_TEST(test_observed_chains_show_node_by_node_values)
{
    qk_err err = {0};
    ir_graph *ref = build(1), *g = build(0);
    for (int threads = 1; threads <= 2; threads++)
        for (int64_t batch = 1; batch <= 3; batch += 2)
            for (int mode = 0; mode < 3; mode++) {   /* whole; in parts; in parts and by sample */
                executor *er, *e;
                ck_assert_int_eq(exec_new(ref, threads, &er, &err), QK_OK);
                ck_assert_int_eq(exec_new(g, threads, &e, &err), QK_OK);
                ck_assert_int_eq(exec_fused_nodes(er), 0);
                ck_assert_int_eq(exec_fused_nodes(e), 4);
                float *x = malloc(sizeof(float) * (size_t)(batch * 8 * 40 * 40));
                for (int64_t i = 0; i < batch * 8 * 40 * 40; i++) x[i] = 2 * rng_float();
                xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {batch, 8, 40, 40}, .data = x};
                xt rout[6], out[2];
                watch wr, w;
                watch_init(&wr, ref);
                watch_init(&w, g);
                exec_set_observer(er, see_whole, &wr);
                ck_assert_msg(exec_run(er, &in, rout, &err) == QK_OK, "%s", err.msg);
                ck_assert_int_eq(exec_tails_run(er), 0);
                exec_set_observer(e, see_whole, &w);
                char *by_part = malloc((size_t)g->n_values);
                memset(by_part, mode > 0, (size_t)g->n_values);
                if (mode > 0) ck_assert_int_eq(exec_set_observed_by_part(e, see_part, by_part, &err), QK_OK);
                if (mode == 2) {
                    ck_assert_int_gt(exec_sample_prefix(e), 0);
                    exec_set_observed_by_sample(e, 1);
                }
                ck_assert_msg(exec_run(e, &in, out, &err) == QK_OK, "%s", err.msg);
                ck_assert_int_eq(exec_tails_run(e), mode == 2 && batch > 1 ? 2 * (int)batch : 2);
                ck_assert_int_eq(exec_buffers_in_use(e), 0);
                if (mode > 0) ck_assert_int_gt(w.parts, 0);
                else ck_assert_int_eq(w.parts, 0);
                for (size_t k = 0; k < sizeof chain_values / sizeof *chain_values; k++) {
                    int vr = ir_find_value(ref, chain_values[k]), v = ir_find_value(g, chain_values[k]);
                    stats a = seen(&wr, vr), b = seen(&w, v);
                    ck_assert_msg(a.n == b.n && a.lo == b.lo && a.hi == b.hi &&
                                      fabs(a.sum - b.sum) <= 1e-9 * (1 + fabs(a.sum)),
                                  "threads %d batch %lld mode %d: '%s' seen as %lld values in [%g, %g] sum %.9g, "
                                  "node by node %lld in [%g, %g] sum %.9g",
                                  threads, (long long)batch, mode, chain_values[k], (long long)b.n, b.lo, b.hi, b.sum,
                                  (long long)a.n, a.lo, a.hi, a.sum);
                }
                /* Y and Z: bit for bit what the nodes compute. */
                for (int o = 0; o < 2; o++) {
                    ck_assert_int_eq(xt_numel(&out[o]), xt_numel(&rout[o]));
                    ck_assert_msg(!memcmp(out[o].data, rout[o].data, (size_t)xt_nbytes(&out[o])),
                                  "threads %d batch %lld mode %d: output %d differs", threads, (long long)batch,
                                  mode, o);
                }
                for (int o = 0; o < 6; o++) free(rout[o].data);
                for (int o = 0; o < 2; o++) free(out[o].data);
                exec_set_observer(e, NULL, NULL);
                watch_free(&wr);
                watch_free(&w);
                free(by_part);
                free(x);
                exec_free(er);
                exec_free(e);
            }
    ir_free(ref);
    ir_free(g);
}
END_TEST

/* The whole-tensor observations of a tail pass are the node-by-node
 * tensors bit for bit (the sums above allow for another order). */
typedef struct copies {
    float **data;                   /* per value: a copy of what was observed */
    int64_t *bytes;
} copies;

static int keep(void *arg, int value, const xt *t)
{
    copies *c = arg;
    if (t->dtype != DT_FLOAT) return 0;
    free(c->data[value]);
    c->bytes[value] = xt_nbytes(t);
    c->data[value] = malloc((size_t)c->bytes[value]);
    memcpy(c->data[value], t->data, (size_t)c->bytes[value]);
    return 0;
}

static copies copies_new(const ir_graph *g)
{
    return (copies){calloc((size_t)g->n_values, sizeof(float *)), calloc((size_t)g->n_values, sizeof(int64_t))};
}

static void copies_free(copies *c, const ir_graph *g)
{
    for (int v = 0; v < g->n_values; v++) free(c->data[v]);
    free(c->data);
    free(c->bytes);
}

START_TEST(test_observed_chain_values_bit_exact)
{
    qk_err err = {0};
    ir_graph *ref = build(1), *g = build(0);
    executor *er, *e;
    ck_assert_int_eq(exec_new(ref, 2, &er, &err), QK_OK);
    ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
    int64_t n = 3 * 8 * 40 * 40;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = 2 * rng_float();
    xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {3, 8, 40, 40}, .data = x}, rout[6], out[2];
    copies cr = copies_new(ref), c = copies_new(g);
    exec_set_observer(er, keep, &cr);
    exec_set_observer(e, keep, &c);
    ck_assert_msg(exec_run(er, &in, rout, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(exec_run(e, &in, out, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(exec_tails_run(e), 2);
    for (size_t k = 1; k < sizeof chain_values / sizeof *chain_values; k++) {   /* not X: an input */
        int vr = ir_find_value(ref, chain_values[k]), v = ir_find_value(g, chain_values[k]);
        ck_assert_msg(cr.data[vr] && c.data[v] && cr.bytes[vr] == c.bytes[v], "'%s' not observed whole",
                      chain_values[k]);
        ck_assert_msg(!memcmp(cr.data[vr], c.data[v], (size_t)c.bytes[v]), "'%s' differs from the node's value",
                      chain_values[k]);
    }
    for (int o = 0; o < 6; o++) free(rout[o].data);
    for (int o = 0; o < 2; o++) free(out[o].data);
    copies_free(&cr, ref);
    copies_free(&c, g);
    free(x);
    exec_free(er);
    exec_free(e);
    ir_free(ref);
    ir_free(g);
}
END_TEST

Suite *exec_tail_suite(void)
{
    Suite *s = suite_create("exec_tail");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_observed_chains_show_node_by_node_values);
    tcase_add_test(tc, test_observed_chain_values_bit_exact);
    suite_add_tcase(s, tc);
    return s;
}
