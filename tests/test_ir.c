/* This file implements tests of the graph IR: edits, topological order,
 * cycles, and folding of PyTorch's shape arithmetic. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "suites.h"
#include "onnx_io.h"

static ir_graph *load(const char *path)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert_msg(onnx_load(path, &g, &err) == QK_OK, "%s", err.msg);
    return g;
}

START_TEST(test_fixed_batch_shape_chain_folds_to_constants)
{
    ir_graph *g = load(TEST_DATA_DIR "/shape_chain_fixed.onnx");
    int ns = ir_find_value(g, "newshape");
    ck_assert_int_ge(ns, 0);
    ck_assert(g->values[ns].is_folded);
    const int64_t *d = g->values[ns].t.data;
    ck_assert_int_eq(d[0], 2);
    ck_assert_int_eq(d[1], 12);
    int y = ir_find_value(g, "Y");
    ck_assert_int_eq(g->values[y].t.rank, 2);
    ck_assert_int_eq(g->values[y].t.dims[1], 12);
    ir_free(g);
}
END_TEST

START_TEST(test_dynamic_batch_shape_chain_stays_symbolic)
{
    ir_graph *g = load(TEST_DATA_DIR "/shape_chain_dynamic.onnx");
    int ns = ir_find_value(g, "newshape");
    ck_assert(!g->values[ns].is_folded);
    int x = ir_find_value(g, "X");
    ck_assert_int_eq(g->values[x].t.dims[0], -1);
    ck_assert_str_eq(g->values[x].dim_param[0], "batch");
    ir_free(g);
}
END_TEST

START_TEST(test_edits_then_compact_sorts_topologically)
{
    ir_graph *g = load(TEST_DATA_DIR "/fields.onnx");
    /* Insert a node between fc and act, appended at the end of the array. */
    int act = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (!strcmp(node_name(&g->nodes[i]), "act")) act = i;
    const char *in[] = {"h"}, *out[] = {"h_neg"};
    int n = ir_add_node(g, "Neg", "inserted", 1, in, 1, out);
    ck_assert_int_ge(n, 0);
    ir_set_input(g, act, 0, ir_find_value(g, "h_neg"));
    qk_err err = {0};
    ck_assert_int_eq(ir_compact(g, &err), QK_OK);
    ck_assert_str_eq(node_name(&g->nodes[0]), "fc");
    ck_assert_str_eq(node_name(&g->nodes[1]), "inserted");
    ck_assert_str_eq(node_name(&g->nodes[2]), "act");
    ck_assert_int_eq(g->values[ir_find_value(g, "h")].n_consumers, 1);
    /* Remove it again and reconnect. */
    ir_replace_uses(g, ir_find_value(g, "h_neg"), ir_find_value(g, "h"));
    ir_remove_node(g, 1);
    ck_assert_int_eq(ir_compact(g, &err), QK_OK);
    ck_assert_int_eq(g->n_nodes, 2);
    char *u = ir_unique_name(g, "h");
    ck_assert_str_eq(u, "h_1");
    free(u);
    ir_free(g);
}
END_TEST

START_TEST(test_cycle_is_refused_naming_a_node)
{
    ir_graph *g = load(TEST_DATA_DIR "/fields.onnx");
    /* fc reads act's output: fc -> act -> fc */
    ir_set_input(g, 0, 0, ir_find_value(g, "Y"));
    qk_err err = {0};
    ck_assert_int_eq(ir_compact(g, &err), QK_EINVAL);
    ck_assert_msg(strstr(err.msg, "cycle"), "%s", err.msg);
    ir_free(g);
}
END_TEST

START_TEST(test_new_initializer_and_attributes_survive_save)
{
    ir_graph *g = load(TEST_DATA_DIR "/fields.onnx");
    float v[2] = {1.5f, -2.5f};
    xt t = {.dtype = DT_FLOAT, .rank = 1, .dims = {2}, .data = v};
    ck_assert_int_ge(ir_add_initializer(g, "extra", &t), 0);
    ck_assert_int_eq(ir_node_set_attr_float(&g->nodes[0], "alpha", 2.0f), QK_OK);
    qk_err err = {0};
    char out[] = "/tmp/qk_ir_XXXXXX";
    close(mkstemp(out));
    ck_assert(onnx_save(g, out, &err) == QK_OK);
    ir_free(g);
    g = load(out);
    int e = ir_find_value(g, "extra");
    ck_assert_int_ge(e, 0);
    ck_assert_float_eq(((float *)g->values[e].t.data)[1], -2.5f);
    ck_assert_float_eq(node_attr_float(&g->nodes[0], "alpha", 0), 2.0f);
    ck_assert_int_eq(node_attr_int(&g->nodes[0], "transB", 0), 1);
    ir_free(g);
    unlink(out);
}
END_TEST

Suite *ir_suite(void)
{
    Suite *s = suite_create("ir");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fixed_batch_shape_chain_folds_to_constants);
    tcase_add_test(tc, test_dynamic_batch_shape_chain_stays_symbolic);
    tcase_add_test(tc, test_edits_then_compact_sorts_topologically);
    tcase_add_test(tc, test_cycle_is_refused_naming_a_node);
    tcase_add_test(tc, test_new_initializer_and_attributes_survive_save);
    suite_add_tcase(s, tc);
    return s;
}
