/* This file implements tests of the pipeline stages that sit between the
 * IR and the plugins: fusions run through the real registry and host table
 * must leave the float outputs unchanged, the grouping fusions (conv_relu,
 * conv_add_relu) must mark exactly the values inside Conv+Relu and
 * Conv+Add(+Relu) groups so the plan quantizes each group once, at its last
 * output, and the plan must follow the YAML's precedence (quantize <
 * op_types < nodes). */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "executor.h"
#include "fusion_pass.h"
#include "host.h"
#include "npy.h"
#include "onnx_io.h"
#include "plan.h"

static int count_op(const ir_graph *g, const char *op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += !strcmp(node_op_type(&g->nodes[i]), op);
    return n;
}

static xt run_model(ir_graph *g, const xt *x)
{
    executor *e;
    qk_err err = {0};
    ck_assert_msg(exec_new(g, 2, &e, &err) == QK_OK, "%s", err.msg);
    xt out;
    ck_assert_msg(exec_run(e, x, &out, &err) == QK_OK, "%s", err.msg);
    exec_free(e);
    return out;
}

static const qk_backend_vtable *backend(registry *reg)
{
    const qk_plugin_descriptor *d;
    qk_err err = {0};
    ck_assert_msg(registry_get(reg, QK_PLUGIN_BACKEND, "onnx-qdq", &d, &err) == QK_OK, "%s", err.msg);
    return d->vtable;
}

START_TEST(test_conv_bn_fusion_preserves_outputs)
{
    qk_err err = {0};
    ir_graph *g;
    xt x;
    ck_assert_msg(npy_read(TEST_DATA_DIR "/digits_test_x.npy", &x, &err) == QK_OK, "%s", err.msg);
    x.dims[0] = 64;   /* a batch is enough */
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/digits_cnn.onnx", &g, &err) == QK_OK, "%s", err.msg);
    int bn_before = count_op(g, "BatchNormalization");
    ck_assert_int_gt(bn_before, 0);
    xt ref = run_model(g, &x);

    registry *reg;
    ck_assert(registry_new(NULL, 0, &reg, &err) == QK_OK);
    qk_config *cfg;
    /* Named explicitly: the backend's default list may hold more fusions. */
    ck_assert_msg(config_parse_string("version: 1\nfusions: [conv_bn]\n", NULL, &cfg, &err) == QK_OK, "%s",
                  err.msg);
    int rewrites = 0;
    ck_assert_msg(fusion_pass_run(reg, g, cfg, backend(reg), &rewrites, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(rewrites, bn_before);
    ck_assert_int_eq(count_op(g, "BatchNormalization"), 0);

    xt got = run_model(g, &x);
    ck_assert_int_eq(xt_numel(&got), xt_numel(&ref));
    const float *a = got.data, *b = ref.data;
    double maxref = 0, maxdiff = 0;
    for (int64_t i = 0; i < xt_numel(&ref); i++) {
        maxref = fmax(maxref, fabs(b[i]));
        maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
    }
    ck_assert_msg(maxdiff <= 1e-4 * maxref, "fused outputs differ: max diff %g, max |ref| %g", maxdiff, maxref);

    /* The fused model still saves and reloads with the same outputs. */
    char out[] = "/tmp/qk_fused_XXXXXX";
    close(mkstemp(out));
    ck_assert_msg(onnx_save(g, out, &err) == QK_OK, "%s", err.msg);
    ir_graph *g2;
    ck_assert_msg(onnx_load(out, &g2, &err) == QK_OK, "%s", err.msg);
    xt again = run_model(g2, &x);
    ck_assert(memcmp(again.data, got.data, (size_t)xt_nbytes(&got)) == 0);
    unlink(out);
    free(again.data);
    ir_free(g2);
    free(got.data);
    free(ref.data);
    free(x.data);
    config_free(cfg);
    registry_free(reg);
    ir_free(g);
}
END_TEST

START_TEST(test_plan_follows_precedence_and_skips)
{
    static const char yaml[] =
        "version: 1\n"
        "quantize:\n"
        "  activation: {observer: minmax, bits: 8}\n"
        "  weight: {bits: 8, per_channel: true}\n"
        "op_types:\n"
        "  Gemm: {weight: {bits: 4, per_channel: false}}\n"
        "nodes:\n"
        "  \"/stem/stem.0/Conv\": {skip: true}\n";
    qk_err err = {0};
    ir_graph *g;
    qk_config *cfg;
    ck_assert(onnx_load(TEST_DATA_DIR "/digits_cnn.onnx", &g, &err) == QK_OK);
    ck_assert_msg(config_parse_string(yaml, "test.yaml", &cfg, &err) == QK_OK, "%s", err.msg);
    static const char *const ops[] = {"Conv", "Gemm", NULL};
    quant_plan *p;
    ck_assert(plan_build(g, cfg, ops, NULL, &p, &err) == QK_OK);
    ck_assert_int_eq(p->n_skipped, 1);
    int seen_fc = 0, seen_conv_w = 0;
    for (int i = 0; i < p->n; i++) {
        const plan_entry *e = &p->entries[i];
        const char *name = g->values[e->value].name;
        ck_assert_msg(strcmp(node_name(&g->nodes[e->node]), "/stem/stem.0/Conv"), "skipped node planned: %s", name);
        if (!strcmp(name, "fc.weight")) {
            seen_fc = 1;
            ck_assert_int_eq(e->rule->bits, 4);
            ck_assert_int_eq(e->axis, -1);
            ck_assert_str_eq(e->rule->bits_from.rule, "op_types.Gemm");
        }
        if (!strcmp(name, "block.conv1.weight")) {
            seen_conv_w = 1;
            ck_assert_int_eq(e->rule->bits, 8);
            ck_assert_int_eq(e->axis, 0);
            ck_assert_str_eq(e->rule->bits_from.rule, "global");
        }
        if (!strcmp(name, "fc.bias")) ck_assert_int_eq(e->role, PLAN_BIAS);
    }
    ck_assert(seen_fc && seen_conv_w);
    plan_free(p);
    config_free(cfg);
    ir_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("stages");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_conv_bn_fusion_preserves_outputs);
    tcase_add_test(tc, test_plan_follows_precedence_and_skips);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
