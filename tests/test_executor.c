/* This file implements tests of the executor: any batch size on a dynamic
 * model, input shape errors, repeated runs reusing buffers, observers, and
 * the fused chains and convolution paths (against PyTorch's outputs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "executor.h"
#include "npy.h"
#include "onnx_io.h"
#include "model_build.h"

int sgemm_force_isa(const char *name);

static ir_graph *load(const char *path)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert_msg(onnx_load(path, &g, &err) == QK_OK, "%s", err.msg);
    return g;
}

START_TEST(test_dynamic_batch_runs_at_any_batch_size)
{
    ir_graph *g = load(TEST_DATA_DIR "/shape_chain_dynamic.onnx");
    executor *e;
    qk_err err = {0};
    ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
    for (int64_t batch = 1; batch <= 7; batch += 3) {
        float *x = malloc((size_t)batch * 12 * sizeof *x);
        for (int64_t i = 0; i < batch * 12; i++) x[i] = (float)(i % 5) - 2.0f;
        xt in = {.dtype = DT_FLOAT, .rank = 3, .dims = {batch, 3, 4}, .data = x}, out;
        ck_assert_msg(exec_run(e, &in, &out, &err) == QK_OK, "%s", err.msg);
        ck_assert_int_eq(out.rank, 2);
        ck_assert_int_eq(out.dims[0], batch);
        ck_assert_int_eq(out.dims[1], 12);
        for (int64_t i = 0; i < batch * 12; i++) ck_assert_float_eq(((float *)out.data)[i], fmaxf(x[i], 0));
        free(out.data);
        free(x);
    }
    exec_free(e);
    ir_free(g);
}
END_TEST

START_TEST(test_wrong_input_shape_names_input_and_shapes)
{
    ir_graph *g = load(TEST_DATA_DIR "/shape_chain_dynamic.onnx");
    executor *e;
    qk_err err = {0};
    ck_assert_int_eq(exec_new(g, 1, &e, &err), QK_OK);
    float x[30] = {0};
    xt in = {.dtype = DT_FLOAT, .rank = 3, .dims = {2, 3, 5}, .data = x}, out;
    ck_assert_int_eq(exec_run(e, &in, &out, &err), QK_EINVAL);
    ck_assert_msg(strstr(err.msg, "'X'") && strstr(err.msg, "[?,3,4]") && strstr(err.msg, "[2,3,5]"), "%s", err.msg);
    in.dtype = DT_INT32;
    in.dims[2] = 4;
    ck_assert_int_eq(exec_run(e, &in, &out, &err), QK_EINVAL);
    ck_assert_msg(strstr(err.msg, "int32"), "%s", err.msg);
    exec_free(e);
    ir_free(g);
}
END_TEST

typedef struct { int calls; int seen_y; } watch;

static int observe(void *arg, int value, const xt *t)
{
    watch *w = arg;
    w->calls++;
    (void)value;
    if (t->rank == 2 && t->dims[1] == 4) w->seen_y++;
    return 0;
}

START_TEST(test_observer_sees_every_computed_value)
{
    ir_graph *g = load(TEST_DATA_DIR "/fields.onnx");
    executor *e;
    qk_err err = {0};
    ck_assert_int_eq(exec_new(g, 0, &e, &err), QK_OK);
    watch w = {0};
    exec_set_observer(e, observe, &w);
    float x[6] = {1, 2, 3, -1, -2, -3};
    xt in = {.dtype = DT_FLOAT, .rank = 2, .dims = {2, 3}, .data = x}, out, out2;
    ck_assert_int_eq(exec_run(e, &in, &out, &err), QK_OK);
    ck_assert_int_eq(w.calls, 2);
    ck_assert_int_eq(w.seen_y, 2);
    ck_assert_int_eq(exec_run(e, &in, &out2, &err), QK_OK);
    ck_assert(memcmp(out.data, out2.data, 8 * sizeof(float)) == 0);
    /* Y = relu(x W^T + b) computed by hand */
    int wv = ir_find_value(g, "W");
    const float *W = g->values[wv].t.data;
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 4; o++) {
            float acc = (float)o;
            for (int k = 0; k < 3; k++) acc += x[n * 3 + k] * W[o * 3 + k];
            ck_assert_float_eq_tol(((float *)out.data)[n * 4 + o], fmaxf(acc, 0), 1e-5);
        }
    free(out.data);
    free(out2.data);
    exec_free(e);
    ir_free(g);
}
END_TEST

/* max |a - b| / max |b| over n floats. */
static double rel_err(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static int count_values(void *arg, int value, const xt *t)
{
    (void)value;
    (void)t;
    ++*(int *)arg;
    return 0;
}

/* tests/data/fused_chains.onnx (tools/make_executor_fixtures.py) takes
 * every conv path and fused chain; with and without an observer (fused and
 * unfused), at batch 3 and 1, and with each sgemm kernel, its outputs must
 * match PyTorch's. */
START_TEST(test_fused_chains_match_pytorch)
{
    static const char *isas[] = {NULL, "c", "avx2", "avx512"};
    qk_err err = {0};
    xt x, yref, zref;
    ck_assert_msg(npy_read(TEST_DATA_DIR "/fused_chains_x.npy", &x, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(npy_read(TEST_DATA_DIR "/fused_chains_y.npy", &yref, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(npy_read(TEST_DATA_DIR "/fused_chains_z.npy", &zref, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(x.dims[0], 3);
    for (int k = 0; k < 4; k++) {
        if (isas[k] && sgemm_force_isa(isas[k])) continue;   /* CPU lacks it */
        ir_graph *g = load(TEST_DATA_DIR "/fused_chains.onnx");
        executor *e;
        ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
        /* Conv+Relu, Conv+Add+Relu, Conv+Clip, Conv+Sigmoid+Mul, Conv+Add;
         * not the broadcasting Add. */
        ck_assert_int_eq(exec_fused_nodes(e), 7);
        /* Observing only the outputs keeps the chains fused. */
        char *want = calloc((size_t)g->n_values, 1);
        for (int o = 0; o < g->n_outputs; o++) want[g->outputs[o]] = 1;
        for (int observed = 0; observed < 3; observed++)
            for (int64_t batch = 3; batch >= 1; batch -= 2) {
                int seen = 0;
                exec_set_observer(e, observed ? count_values : NULL, &seen);
                if (observed == 2) exec_set_observed(e, want);
                xt in = x, out[2];
                in.dims[0] = batch;
                ck_assert_msg(exec_run(e, &in, out, &err) == QK_OK, "%s", err.msg);
                int64_t ny = xt_numel(&yref) / 3 * batch, nz = xt_numel(&zref) / 3 * batch;
                ck_assert_int_eq(xt_numel(&out[0]), ny);
                ck_assert_int_eq(xt_numel(&out[1]), nz);
                double ey = rel_err(out[0].data, yref.data, ny), ez = rel_err(out[1].data, zref.data, nz);
                ck_assert_msg(ey < 1e-5 && ez < 1e-5, "isa %s observed %d batch %lld: rel err y %g z %g",
                              isas[k] ? isas[k] : "default", observed, (long long)batch, ey, ez);
                /* Observed: the output of each of the 17 computed nodes
                 * (Constants are folded), intermediates included; with only
                 * the outputs wanted, the 7 fused nodes' inputs are not
                 * stored (nor observed). */
                if (observed == 1) ck_assert_int_eq(seen, 17);
                if (observed == 2) ck_assert_int_eq(seen, 17 - 7);
                free(out[0].data);
                free(out[1].data);
            }
        free(want);
        exec_free(e);
        ir_free(g);
    }
    sgemm_force_isa(NULL);
    free(x.data);
    free(yref.data);
    free(zref.data);
}
END_TEST

/* A batch through the sample passes and fused chains (no observer) gives
 * what the plain node-by-node run (observer set) gives. */
START_TEST(test_sample_passes_match_whole_batch)
{
    qk_err err = {0};
    xt x;
    ck_assert_msg(npy_read(TEST_DATA_DIR "/nets/mobilenet_v2_input.npy", &x, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_ge(x.dims[0], 2);
    ir_graph *g = load(TEST_DATA_DIR "/nets/mobilenet_v2.onnx");
    executor *e;
    ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
    ck_assert_int_gt(exec_sample_prefix(e), 0);
    xt fast, plain;
    int seen = 0;
    ck_assert_msg(exec_run(e, &x, &fast, &err) == QK_OK, "%s", err.msg);
    exec_set_observer(e, count_values, &seen);
    ck_assert_msg(exec_run(e, &x, &plain, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(xt_numel(&fast), xt_numel(&plain));
    double er = rel_err(fast.data, plain.data, xt_numel(&plain));
    ck_assert_msg(er < 1e-5, "rel err %g", er);
    /* And the same batch again reuses the buffers. */
    exec_set_observer(e, NULL, NULL);
    free(fast.data);
    ck_assert_msg(exec_run(e, &x, &fast, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(rel_err(fast.data, plain.data, xt_numel(&plain)) < 1e-5, "second run differs");
    free(fast.data);
    free(plain.data);
    free(x.data);
    exec_free(e);
    ir_free(g);
}
END_TEST

/* Deterministic values in [-1, 1). */
static void fill_det(float *p, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* A conv node "name" reading `in`, with weights [m, c, k, k] and a bias. */
static void add_conv(model_build *m, const char *in, const char *out, const char *name, int64_t mo, int64_t c,
                     int64_t k, int64_t stride, unsigned seed)
{
    float *w = malloc(sizeof(float) * (size_t)(mo * c * k * k)), *b = malloc(sizeof(float) * (size_t)mo);
    fill_det(w, mo * c * k * k, seed);
    fill_det(b, mo, seed + 1);
    mb_conv(m, in, out, name, mo, c, k, stride, 1, w, b);
    free(w);
    free(b);
}

/* Concats whose inputs the producers write in place (a fused Conv+Relu
 * and a plain Conv; then one input placed and one, read elsewhere too,
 * copied) give what the unfused run with an observer gives (unplaced at
 * batch 3: whole batches), at batch 1 (placed), 3 (sample passes: placed
 * per sample) and 2 threads.  test_concat_placed_when_observed compares
 * what an observer is shown with a graph where nothing is placed. */
START_TEST(test_concat_inputs_written_in_place)
{
    model_build *m = mb_new();
    int64_t xd[4] = {-1, 4, 10, 12};
    mb_input(m, "X", 4, xd);
    add_conv(m, "X", "a0", "c1", 6, 4, 1, 1, 11);
    const char *ri[] = {"a0"}, *ro[] = {"A"};
    mb_node(m, "Relu", 1, ri, 1, ro);
    add_conv(m, "X", "B", "c2", 5, 4, 3, 1, 21);
    const char *ci[] = {"A", "B"}, *co[] = {"Cc"};
    mb_node(m, "Concat", 2, ci, 1, co);
    mb_attr_int(m, "axis", 1);
    add_conv(m, "Cc", "D", "c3", 8, 11, 3, 2, 31);
    add_conv(m, "D", "E", "c4", 3, 8, 1, 1, 41);
    add_conv(m, "E", "G", "c5", 2, 3, 3, 1, 51);
    const char *c2i[] = {"G", "E"}, *c2o[] = {"Y"};
    mb_node(m, "Concat", 2, c2i, 1, c2o);
    mb_attr_int(m, "axis", -3);
    mb_output(m, "Y");
    mb_output(m, "Cc");
    ir_graph *g = mb_load(m);
    qk_err err = {0};
    for (int threads = 1; threads <= 2; threads++)
        for (int64_t batch = 1; batch <= 3; batch += 2) {
            executor *e;
            ck_assert_int_eq(exec_new(g, threads, &e, &err), QK_OK);
            ck_assert_int_eq(exec_concat_placed(e), 3);   /* A, B and G; E has two readers */
            ck_assert_int_gt(exec_sample_prefix(e), 4);    /* batch 3 places per sample */
            float *x = malloc(sizeof(float) * (size_t)(batch * 4 * 10 * 12));
            fill_det(x, batch * 4 * 10 * 12, 5);
            xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {batch, 4, 10, 12}, .data = x}, fast[2], plain[2];
            for (int r = 0; r < 2; r++) {   /* twice: state is reset between runs */
                ck_assert_msg(exec_run(e, &in, fast, &err) == QK_OK, "%s", err.msg);
                if (r == 0) {
                    free(fast[0].data);
                    free(fast[1].data);
                }
            }
            int seen = 0;
            exec_set_observer(e, count_values, &seen);
            ck_assert_msg(exec_run(e, &in, plain, &err) == QK_OK, "%s", err.msg);
            ck_assert_int_eq(seen, 8);
            for (int o = 0; o < 2; o++) {
                ck_assert_int_eq(xt_numel(&fast[o]), xt_numel(&plain[o]));
                double er = rel_err(fast[o].data, plain[o].data, xt_numel(&plain[o]));
                ck_assert_msg(er < 1e-5, "output %d batch %lld threads %d: rel err %g", o, (long long)batch, threads, er);
                free(fast[o].data);
                free(plain[o].data);
            }
            free(x);
            exec_free(e);
        }
    ir_free(g);
}
END_TEST

/* Per value: everything an observer was shown, in order, and where the
 * last delivery's data was. */
typedef struct shown {
    char **bytes;
    int64_t *n;
    const void **at;
} shown;

static int show(void *arg, int value, const xt *t)
{
    shown *s = arg;
    int64_t nb = xt_nbytes(t);
    s->bytes[value] = realloc(s->bytes[value], (size_t)(s->n[value] + nb));
    memcpy(s->bytes[value] + s->n[value], t->data, (size_t)nb);
    s->n[value] += nb;
    s->at[value] = t->data;
    return 0;
}

/* X -> Conv c1 -> A, Conv c2 -> B; Cc = Concat(A, B); Cc -> Conv c3 -> Y.
 * With inputs_out A and B are graph outputs too, so nothing is placed. */
static ir_graph *concat_graph(int inputs_out)
{
    model_build *m = mb_new();
    int64_t xd[4] = {-1, 4, 10, 12};
    mb_input(m, "X", 4, xd);
    add_conv(m, "X", "A", "c1", 6, 4, 1, 1, 11);
    add_conv(m, "X", "B", "c2", 5, 4, 3, 1, 21);
    const char *ci[] = {"A", "B"}, *co[] = {"Cc"};
    mb_node(m, "Concat", 2, ci, 1, co);
    mb_attr_int(m, "axis", 1);
    add_conv(m, "Cc", "D", "c3", 8, 11, 3, 1, 31);
    add_conv(m, "D", "Y", "c4", 3, 8, 1, 1, 41);
    mb_output(m, "Y");
    if (inputs_out) {
        mb_output(m, "A");
        mb_output(m, "B");
    }
    return mb_load(m);
}

/* With an observer the producers still write into the Concat's output (at
 * batch 1, and per sample when the observer takes the sample passes), and
 * the observer is shown every value exactly as where nothing is placed. */
START_TEST(test_concat_placed_when_observed)
{
    static const char *const names[] = {"A", "B", "Cc", "D", "Y"};
    ir_graph *g = concat_graph(0), *ref = concat_graph(1);
    qk_err err = {0};
    for (int threads = 1; threads <= 2; threads++)
        for (int64_t batch = 1; batch <= 3; batch += 2)
            for (int by_sample = 0; by_sample < 2; by_sample++) {
                executor *e, *er;
                ck_assert_int_eq(exec_new(g, threads, &e, &err), QK_OK);
                ck_assert_int_eq(exec_new(ref, threads, &er, &err), QK_OK);
                ck_assert_int_eq(exec_concat_placed(e), 2);
                ck_assert_int_eq(exec_concat_placed(er), 0);
                float *x = malloc(sizeof(float) * (size_t)(batch * 4 * 10 * 12));
                fill_det(x, batch * 4 * 10 * 12, 5);
                xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {batch, 4, 10, 12}, .data = x}, out, rout[3];
                shown s = {calloc((size_t)g->n_values, sizeof(char *)), calloc((size_t)g->n_values, sizeof(int64_t)),
                           calloc((size_t)g->n_values, sizeof(void *))};
                shown sr = {calloc((size_t)ref->n_values, sizeof(char *)),
                            calloc((size_t)ref->n_values, sizeof(int64_t)), calloc((size_t)ref->n_values, sizeof(void *))};
                exec_set_observer(e, show, &s);
                exec_set_observer(er, show, &sr);
                exec_set_observed_by_sample(e, by_sample);
                exec_set_observed_by_sample(er, by_sample);
                ck_assert_msg(exec_run(e, &in, &out, &err) == QK_OK, "%s", err.msg);
                ck_assert_msg(exec_run(er, &in, rout, &err) == QK_OK, "%s", err.msg);
                int a = ir_find_value(g, "A"), b = ir_find_value(g, "B"), cc = ir_find_value(g, "Cc");
                if (batch == 1 || by_sample) {
                    /* Placed: A and B were shown as slices of Cc (of its last sample). */
                    ck_assert_ptr_eq(s.at[a], s.at[cc]);
                    ck_assert_ptr_eq(s.at[b], (const float *)s.at[cc] + 6 * 10 * 12);
                }
                for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
                    int v = ir_find_value(g, names[k]), vr = ir_find_value(ref, names[k]);
                    ck_assert_msg(s.n[v] > 0 && s.n[v] == sr.n[vr] && !memcmp(s.bytes[v], sr.bytes[vr], (size_t)s.n[v]),
                                  "threads %d batch %lld by sample %d: '%s' shown differently", threads,
                                  (long long)batch, by_sample, names[k]);
                }
                ck_assert_int_eq(exec_buffers_in_use(e), 0);
                for (int v = 0; v < g->n_values; v++) free(s.bytes[v]);
                for (int v = 0; v < ref->n_values; v++) free(sr.bytes[v]);
                free(s.bytes);
                free(s.n);
                free(s.at);
                free(sr.bytes);
                free(sr.n);
                free(sr.at);
                free(out.data);
                for (int o = 0; o < 3; o++) free(rout[o].data);
                free(x);
                exec_free(e);
                exec_free(er);
            }
    ir_free(g);
    ir_free(ref);
}
END_TEST

/* Per value: how many samples an observer saw and their extremes. */
typedef struct sample_watch {
    int64_t *samples;
    float *lo, *hi;
    int64_t split;          /* deliveries of one sample out of a larger batch */
    int64_t batch;
} sample_watch;

static int watch_samples(void *arg, int value, const xt *t)
{
    sample_watch *w = arg;
    w->samples[value] += t->rank >= 1 ? t->dims[0] : 1;
    if (t->rank >= 1 && t->dims[0] == 1 && w->batch > 1) w->split++;
    const float *p = t->data;
    for (int64_t i = 0; t->dtype == DT_FLOAT && i < xt_numel(t); i++) {
        w->lo[value] = fminf(w->lo[value], p[i]);
        w->hi[value] = fmaxf(w->hi[value], p[i]);
    }
    return 0;
}

static void sample_watch_init(sample_watch *w, int n_values, int64_t batch)
{
    w->samples = calloc((size_t)n_values, sizeof *w->samples);
    w->lo = malloc((size_t)n_values * sizeof *w->lo);
    w->hi = malloc((size_t)n_values * sizeof *w->hi);
    for (int v = 0; v < n_values; v++) {
        w->lo[v] = INFINITY;
        w->hi[v] = -INFINITY;
    }
    w->split = 0;
    w->batch = batch;
}

static void sample_watch_free(sample_watch *w)
{
    free(w->samples);
    free(w->lo);
    free(w->hi);
}

/* An observer that takes values sample by sample (calibration with
 * order-free observers) keeps the sample passes: the prefix's values arrive
 * one sample at a time, and over a batch it sees every sample of every value
 * the whole-batch run shows, with the same extremes (up to rounding). */
START_TEST(test_sample_passes_observed_by_sample)
{
    qk_err err = {0};
    xt x;
    ck_assert_msg(npy_read(TEST_DATA_DIR "/nets/mobilenet_v2_input.npy", &x, &err) == QK_OK, "%s", err.msg);
    int64_t N = x.dims[0];
    ck_assert_int_ge(N, 2);
    ir_graph *g = load(TEST_DATA_DIR "/nets/mobilenet_v2.onnx");
    executor *e;
    ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
    ck_assert_int_gt(exec_sample_prefix(e), 0);
    sample_watch whole, split;
    sample_watch_init(&whole, g->n_values, N);
    sample_watch_init(&split, g->n_values, N);
    xt a, b;
    exec_set_observer(e, watch_samples, &whole);
    ck_assert_msg(exec_run(e, &x, &a, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(whole.split, 0);
    exec_set_observer(e, watch_samples, &split);
    exec_set_observed_by_sample(e, 1);
    ck_assert_msg(exec_run(e, &x, &b, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_gt(split.split, 0);
    int compared = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (!whole.samples[v]) continue;
        ck_assert_msg(split.samples[v] == whole.samples[v], "value '%s': %lld samples observed, %lld whole",
                      g->values[v].name, (long long)split.samples[v], (long long)whole.samples[v]);
        float tol = 1e-5f * fmaxf(1.0f, fmaxf(fabsf(whole.lo[v]), fabsf(whole.hi[v])));
        ck_assert_msg(fabsf(split.lo[v] - whole.lo[v]) <= tol && fabsf(split.hi[v] - whole.hi[v]) <= tol,
                      "value '%s': [%g, %g] by sample, [%g, %g] whole", g->values[v].name, split.lo[v],
                      split.hi[v], whole.lo[v], whole.hi[v]);
        compared++;
    }
    ck_assert_int_gt(compared, 10);
    ck_assert_msg(rel_err(b.data, a.data, xt_numel(&a)) < 1e-5, "outputs differ");
    /* exec_set_observer resets it: whole batches again. */
    exec_set_observer(e, watch_samples, &whole);
    whole.split = 0;
    free(b.data);
    ck_assert_msg(exec_run(e, &x, &b, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(whole.split, 0);
    exec_set_observer(e, NULL, NULL);
    sample_watch_free(&whole);
    sample_watch_free(&split);
    free(a.data);
    free(b.data);
    free(x.data);
    exec_free(e);
    ir_free(g);
}
END_TEST

/* Squeeze-excitation: Mul(A, sigmoid(...)) feeding a Conv with packed
 * weights is folded into that Conv -- a 1x1 and a padded 3x3 one, at
 * batch 1 and 3, and on maps too small for the engine at batch 3 (the
 * scaled-input fallback) -- and gives what the Mul followed by the Conv
 * gives; an observer that does not want the Mul's output keeps the fold. */
static void check_scale_fold(int64_t hw, int k)
{
    model_build *m = mb_new();
    int64_t xd[4] = {-1, 8, hw, hw};
    mb_input(m, "X", 4, xd);
    add_conv(m, "X", "A", "c1", 12, 8, 3, 1, 61);
    const char *gi[] = {"A"}, *go[] = {"G"};
    mb_node(m, "GlobalAveragePool", 1, gi, 1, go);
    add_conv(m, "G", "R0", "c2", 4, 12, 1, 1, 71);
    const char *ri[] = {"R0"}, *ro[] = {"R"};
    mb_node(m, "Relu", 1, ri, 1, ro);
    add_conv(m, "R", "S0", "c3", 12, 4, 1, 1, 81);
    const char *si[] = {"S0"}, *so[] = {"S"};
    mb_node(m, "Sigmoid", 1, si, 1, so);
    const char *mi[] = {"S", "A"}, *mo[] = {"M"};
    mb_node(m, "Mul", 2, mi, 1, mo);
    add_conv(m, "M", "Y", "c4", 20, 12, k, 1, 91);
    mb_output(m, "Y");
    ir_graph *g = mb_load(m);
    qk_err err = {0};
    int mv = ir_find_value(g, "M");
    ck_assert_int_ge(mv, 0);
    char *want = calloc((size_t)g->n_values, 1);
    for (int64_t batch = 1; batch <= 3; batch += 2) {
        executor *e;
        ck_assert_int_eq(exec_new(g, 2, &e, &err), QK_OK);
        ck_assert_int_eq(exec_scales_folded(e), 1);
        float *x = malloc(sizeof(float) * (size_t)(batch * 8 * hw * hw));
        fill_det(x, batch * 8 * hw * hw, 9);
        xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {batch, 8, hw, hw}, .data = x}, fast, plain, partial;
        ck_assert_msg(exec_run(e, &in, &fast, &err) == QK_OK, "%s", err.msg);
        int seen = 0;
        exec_set_observer(e, count_values, &seen);
        ck_assert_msg(exec_run(e, &in, &plain, &err) == QK_OK, "%s", err.msg);
        ck_assert_int_eq(seen, 8);   /* every computed value, M included */
        seen = 0;
        exec_set_observed(e, want);  /* none wanted: M is folded again */
        ck_assert_msg(exec_run(e, &in, &partial, &err) == QK_OK, "%s", err.msg);
        ck_assert_int_lt(seen, 8);
        ck_assert_int_eq(exec_buffers_in_use(e), 0);
        /* Observed sample by sample, M unfolded in each sample pass: A and
         * S must still be given back after every sample. */
        xt by_sample;
        exec_set_observed(e, NULL);
        exec_set_observed_by_sample(e, 1);
        for (int r = 0; r < 2; r++) {
            ck_assert_msg(exec_run(e, &in, &by_sample, &err) == QK_OK, "%s", err.msg);
            ck_assert_msg(exec_buffers_in_use(e) == 0, "batch %lld: %d pool buffers still taken after a run",
                          (long long)batch, exec_buffers_in_use(e));
            ck_assert_msg(rel_err(by_sample.data, plain.data, xt_numel(&plain)) < 1e-5, "sample-pass run differs");
            free(by_sample.data);
        }
        double er = rel_err(fast.data, plain.data, xt_numel(&plain));
        ck_assert_msg(er < 1e-5, "%lldx%lld k%d batch %lld: rel err %g", (long long)hw, (long long)hw, k,
                      (long long)batch, er);
        ck_assert_msg(rel_err(partial.data, plain.data, xt_numel(&plain)) < 1e-5, "observed run differs");
        free(fast.data);
        free(plain.data);
        free(partial.data);
        free(x);
        exec_free(e);
    }
    free(want);
    ir_free(g);
}

START_TEST(test_scale_folded_into_conv)
{
    check_scale_fold(9, 1);
    check_scale_fold(9, 3);
    check_scale_fold(3, 1);   /* 9 positions: too few for the engine at batch 3 */
}
END_TEST

Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dynamic_batch_runs_at_any_batch_size);
    tcase_add_test(tc, test_wrong_input_shape_names_input_and_shapes);
    tcase_add_test(tc, test_observer_sees_every_computed_value);
    tcase_add_test(tc, test_fused_chains_match_pytorch);
    tcase_add_test(tc, test_sample_passes_match_whole_batch);
    tcase_add_test(tc, test_concat_inputs_written_in_place);
    tcase_add_test(tc, test_concat_placed_when_observed);
    tcase_add_test(tc, test_scale_folded_into_conv);
    tcase_add_test(tc, test_sample_passes_observed_by_sample);
    suite_add_tcase(s, tc);
    return s;
}
