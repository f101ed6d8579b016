/* This file implements tests of the extremes the kernels gather for
 * calibration (EXEC_BY_EXTREMES, core/executor.c): an observer that takes
 * values as their extremes must get exactly the smallest and largest
 * finite value of every value the same graph computes node by node -- from
 * the packed engine's tile (a Conv's output, and the values of a fused
 * residual or SiLU chain) and from the depthwise kernels (row blocks and
 * 16-channel groups) -- with NaN and infinities in the data too, on one
 * thread or two, whole batches or sample by sample.  Where the kernels
 * gather (AVX-512), the chains must stay fused: no tail pass, no value
 * scanned whole.  An observer that is not order-free (EXEC_EXTREMES) must
 * get each value once per run, also over the sample passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "executor.h"
#include "model_build.h"
#include "ops/ops.h"
#include "rng.h"
#include "sgemm.h"

static void conv(model_build *m, const char *in, const char *out, const char *name, int64_t mo, int64_t c,
                 int64_t k, int64_t group, int64_t stride)
{
    int64_t cg = c / group;
    float *w = malloc(sizeof(float) * (size_t)(mo * cg * k * k)), *b = malloc(sizeof(float) * (size_t)mo);
    for (int64_t i = 0; i < mo * cg * k * k; i++) w[i] = rng_float() / (float)sqrt((double)(cg * k * k));
    for (int64_t i = 0; i < mo; i++) b[i] = rng_float();
    mb_conv(m, in, out, name, mo, c, k, stride, group, w, b);
    free(w);
    free(b);
}

static void silu(model_build *m, const char *x, const char *s, const char *y)
{
    const char *si[] = {x}, *so[] = {s}, *mi[] = {x, s}, *mo[] = {y};
    mb_node(m, "Sigmoid", 1, si, 1, so);
    mb_node(m, "Mul", 2, mi, 1, mo);
}

/* X [N, 32, 12, 12]:
 *   A = Conv1x1(X), S = Sigmoid(A), M = A * S     packed engine, SiLU chain
 *   B = Conv1x1(M), R = B + M, Y = Relu(R)        packed engine, residual chain
 *   D = DwConv3x3(Y), DS, DM = SiLU(D)            depthwise row blocks (12-wide planes)
 *   E = DwConv5x5(DM), ES, EM = SiLU(E)           depthwise 16-channel groups
 *   F = DwConv3x3(EM), Z = Clip(F, 0, 6)          row blocks, clamp
 *   G = Conv1x1(Z), W = Clip(G, 0, 6)             packed engine, clamp
 *   SS = Sigmoid(GlobalAveragePool(W))            a squeeze-excitation scale
 *   P = W * SS, Q = Conv1x1(P)                    Mul folded in, the engine packs P
 *   P2 = W * SS, Q2 = Conv3x3(P2)                 Mul folded into conv_direct.c's kernel
 *   H = Conv3x3(Q), HR = H + Q, V = Relu(HR)      conv_direct.c's kernel, residual chain
 * With `plain` every value is a graph output, so nothing is fused: the
 * node-by-node reference.  Q2's kernel gathers nothing: it is scanned, and
 * P2 comes from a scan of W * SS. */
static const char *const values[] = {"A", "S", "M", "B", "R",  "Y",  "D",  "DS", "DM", "E", "ES", "EM",
                                     "F", "Z", "G", "W", "SS", "P", "Q", "P2", "Q2", "H",  "HR", "V"};
#define N_VALUES (sizeof values / sizeof *values)
/* Small enough to be observed whole, or made where nothing gathers. */
static int scanned(const char *v) { return !strcmp(v, "SS") || !strcmp(v, "Q2"); }

static ir_graph *build(int plain)
{
    rng_seed(11);
    model_build *m = mb_new();
    int64_t xd[4] = {-1, 32, 12, 12};
    mb_input(m, "X", 4, xd);
    conv(m, "X", "A", "c1", 32, 32, 1, 1, 1);
    silu(m, "A", "S", "M");
    conv(m, "M", "B", "c2", 32, 32, 1, 1, 1);
    const char *ai[] = {"B", "M"}, *ao[] = {"R"}, *ri[] = {"R"}, *ro[] = {"Y"};
    mb_node(m, "Add", 2, ai, 1, ao);
    mb_node(m, "Relu", 1, ri, 1, ro);
    conv(m, "Y", "D", "d1", 32, 32, 3, 32, 1);
    silu(m, "D", "DS", "DM");
    conv(m, "DM", "E", "d2", 32, 32, 5, 32, 1);
    silu(m, "E", "ES", "EM");
    conv(m, "EM", "F", "d3", 32, 32, 3, 32, 1);
    float lo = 0, hi = 6;
    mb_init(m, "lo", 0, NULL, &lo);
    mb_init(m, "hi", 0, NULL, &hi);
    const char *ci[] = {"F", "lo", "hi"}, *co[] = {"Z"};
    mb_node(m, "Clip", 3, ci, 1, co);
    conv(m, "Z", "G", "c3", 32, 32, 1, 1, 1);
    const char *gi[] = {"G", "lo", "hi"}, *go[] = {"W"};
    mb_node(m, "Clip", 3, gi, 1, go);
    const char *pi[] = {"W"}, *po[] = {"GW"}, *si[] = {"GW"}, *so[] = {"SS"};
    mb_node(m, "GlobalAveragePool", 1, pi, 1, po);
    mb_node(m, "Sigmoid", 1, si, 1, so);
    const char *mi[] = {"W", "SS"}, *mo[] = {"P"}, *mo2[] = {"P2"};
    mb_node(m, "Mul", 2, mi, 1, mo);
    conv(m, "P", "Q", "c4", 32, 32, 1, 1, 1);
    mb_node(m, "Mul", 2, mi, 1, mo2);
    conv(m, "P2", "Q2", "c5", 32, 32, 3, 1, 1);
    conv(m, "Q", "H", "c6", 32, 32, 3, 1, 1);
    const char *hi2[] = {"H", "Q"}, *ho[] = {"HR"}, *vi[] = {"HR"}, *vo[] = {"V"};
    mb_node(m, "Add", 2, hi2, 1, ho);
    mb_node(m, "Relu", 1, vi, 1, vo);
    mb_output(m, "V");
    mb_output(m, "Q2");
    if (plain)
        for (size_t k = 0; k < N_VALUES; k++)
            if (strcmp(values[k], "V") && strcmp(values[k], "Q2")) mb_output(m, values[k]);
    return mb_load(m);
}

/* Per value: the finite extremes seen, and how it was seen. */
typedef struct seen {
    float lo, hi;
    int64_t calls;              /* whole observations */
    int64_t whole;              /* values observed in whole tensors */
    int64_t parts, part_values; /* parts, and the values in them */
} seen;

typedef struct watch {
    seen *v[4];                 /* per pool thread (whole: row 0), per value */
} watch;

static void fold(seen *s, const xt *t)
{
    const float *p = t->data;
    for (int64_t i = 0; i < xt_numel(t); i++)
        if (isfinite(p[i])) {
            s->lo = fminf(s->lo, p[i]);
            s->hi = fmaxf(s->hi, p[i]);
        }
}

static int see_whole(void *arg, int value, const xt *t)
{
    watch *w = arg;
    if (t->dtype != DT_FLOAT) return 0;
    fold(&w->v[0][value], t);
    w->v[0][value].calls++;
    w->v[0][value].whole += xt_numel(t);
    return 0;
}

static int see_part(void *arg, int value, int tid, const xt *t)
{
    watch *w = arg;
    ck_assert_int_lt(tid, 4);
    ck_assert_int_eq(t->rank, 1);
    seen *s = &w->v[tid][value];
    fold(s, t);
    s->parts++;
    s->part_values += xt_numel(t);
    return 0;
}

static void watch_init(watch *w, const ir_graph *g)
{
    for (int k = 0; k < 4; k++) {
        w->v[k] = calloc((size_t)g->n_values, sizeof(seen));
        for (int v = 0; v < g->n_values; v++) w->v[k][v].lo = INFINITY, w->v[k][v].hi = -INFINITY;
    }
}

static void watch_free(watch *w)
{
    for (int k = 0; k < 4; k++) free(w->v[k]);
}

/* Value v's observations over all threads. */
static seen total(const watch *w, int v)
{
    seen s = {INFINITY, -INFINITY, 0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        const seen *p = &w->v[k][v];
        s.lo = fminf(s.lo, p->lo);
        s.hi = fmaxf(s.hi, p->hi);
        s.calls += p->calls;
        s.whole += p->whole;
        s.parts += p->parts;
        s.part_values += p->part_values;
    }
    return s;
}

/* Whether the kernels gather here: the packed engine's AVX-512 tile, and
 * the depthwise kernels (AVX-512 only). */
static int kernels_gather(void)
{
    return !strcmp(sgemm_isa(), "avx512") && op_isa_level() >= 2;
}

/* dirty: NaN, +inf and -inf in a few places of X.  mode: EXEC_BY_EXTREMES
 * (parts, order-free) or EXEC_EXTREMES (whole, once per run). */
static void check(int threads, int64_t batch, int by_sample, int dirty, int mode)
{
    qk_err err = {0};
    ir_graph *ref = build(1), *g = build(0);
    executor *er, *e;
    ck_assert_msg(exec_new(ref, threads, &er, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(exec_new(g, threads, &e, &err) == QK_OK, "%s", err.msg);
    int64_t n = batch * 32 * 12 * 12;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = 2 * rng_float();
    if (dirty) {
        x[5] = NAN;
        x[n / 2 + 7] = INFINITY;
        x[n - 9] = -INFINITY;
    }
    xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {batch, 32, 12, 12}, .data = x};
    xt rout[N_VALUES], out[2];
    watch wr, w;
    watch_init(&wr, ref);
    watch_init(&w, g);
    exec_set_observer(er, see_whole, &wr);
    ck_assert_msg(exec_run(er, &in, rout, &err) == QK_OK, "%s", err.msg);
    exec_set_observer(e, see_whole, &w);
    char *by = malloc((size_t)g->n_values);
    memset(by, mode, (size_t)g->n_values);
    ck_assert_int_eq(exec_set_observed_by_part(e, see_part, by, &err), QK_OK);
    if (by_sample) {
        ck_assert_int_gt(exec_sample_prefix(e), 0);
        exec_set_observed_by_sample(e, 1);
    }
    ck_assert_msg(exec_run(e, &in, out, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(exec_buffers_in_use(e), 0);
    const char *how = dirty ? "with NaN and infinities" : "finite";
    for (size_t k = 0; k < N_VALUES; k++) {
        seen a = total(&wr, ir_find_value(ref, values[k])), b = total(&w, ir_find_value(g, values[k]));
        ck_assert_msg(a.lo == b.lo && a.hi == b.hi,
                      "threads %d batch %lld%s, %s: '%s' seen in [%g, %g], node by node [%g, %g]", threads,
                      (long long)batch, by_sample ? " by sample" : "", how, values[k], b.lo, b.hi, a.lo, a.hi);
        /* Gathered: a few numbers per kernel call, not the tensor. */
        if (mode == EXEC_BY_EXTREMES && kernels_gather() && !dirty && !scanned(values[k]))
            ck_assert_msg(b.whole == 0 && b.parts > 0 && b.part_values <= 2 * b.parts,
                          "'%s' was not gathered as extremes (%lld values whole, %lld in %lld parts)", values[k],
                          (long long)b.whole, (long long)b.part_values, (long long)b.parts);
        if (mode == EXEC_EXTREMES) {
            ck_assert_msg(b.calls == 1 && b.parts == 0, "'%s' observed %lld times whole and in %lld parts, not once",
                          values[k], (long long)b.calls, (long long)b.parts);
            if (kernels_gather() && !dirty && !scanned(values[k]))
                ck_assert_msg(b.whole <= 2, "'%s' was not gathered as extremes (%lld values)", values[k],
                              (long long)b.whole);
        }
    }
    if (kernels_gather()) ck_assert_int_eq(exec_tails_run(e), 0);
    for (size_t o = 0; o < N_VALUES; o++) free(rout[o].data);
    free(out[0].data);
    free(out[1].data);
    exec_set_observer(e, NULL, NULL);
    watch_free(&wr);
    watch_free(&w);
    free(by);
    free(x);
    exec_free(er);
    exec_free(e);
    ir_free(ref);
    ir_free(g);
}

START_TEST(test_gathered_extremes_are_the_values_extremes)
{
    for (int threads = 1; threads <= 2; threads++)
        for (int64_t batch = 1; batch <= 3; batch += 2)
            for (int dirty = 0; dirty <= 1; dirty++)
                for (int mode = EXEC_BY_EXTREMES; mode <= EXEC_EXTREMES; mode++) check(threads, batch, 0, dirty, mode);
}
END_TEST

START_TEST(test_gathered_extremes_by_sample)
{
    for (int dirty = 0; dirty <= 1; dirty++)
        for (int mode = EXEC_BY_EXTREMES; mode <= EXEC_EXTREMES; mode++) check(2, 3, 1, dirty, mode);
}
END_TEST

Suite *exec_extremes_suite(void)
{
    Suite *s = suite_create("exec_extremes");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gathered_extremes_are_the_values_extremes);
    tcase_add_test(tc, test_gathered_extremes_by_sample);
    suite_add_tcase(s, tc);
    return s;
}
