/* This file implements tests of the executor: any batch size on a dynamic
 * model, input shape errors, repeated runs reusing buffers, and observers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "executor.h"
#include "onnx_io.h"

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

Suite *executor_suite(void)
{
    Suite *s = suite_create("executor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dynamic_batch_runs_at_any_batch_size);
    tcase_add_test(tc, test_wrong_input_shape_names_input_and_shapes);
    tcase_add_test(tc, test_observer_sees_every_computed_value);
    suite_add_tcase(s, tc);
    return s;
}
