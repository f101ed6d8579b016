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

/* ---- grouping fusions: conv_relu, conv_add_relu ------------------------- */

/* What the plan is asked to quantize in these tests: every op a group may
 * start with. */
static const char *const group_ops[] = {"Conv", "ConvTranspose", "Gemm", "MatMul", NULL};

#define ALL_FUSIONS "version: 1\nfusions: [conv_bn, conv_relu, conv_add_relu]\n"

static int vid(const ir_graph *g, const char *name)
{
    int v = ir_find_value(g, name);
    ck_assert_msg(v >= 0, "no value '%s' in the model", name);
    return v;
}

static int is_fused(const ir_graph *g, const char *name) { return g->values[vid(g, name)].fused; }

static int n_fused(const ir_graph *g)
{
    int n = 0;
    for (int v = 0; v < g->n_values; v++) n += g->values[v].fused;
    return n;
}

/* The node reading v when exactly one input slot of a live node does, else -1. */
static int only_reader(const ir_graph *g, int v)
{
    int r = -1, n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == v) {
                r = i;
                n++;
            }
    }
    return n == 1 ? r : -1;
}

/* Every output of g for input x; free with free_outputs. */
static xt *run_all(ir_graph *g, const xt *x)
{
    executor *e;
    qk_err err = {0};
    ck_assert_msg(exec_new(g, 2, &e, &err) == QK_OK, "%s", err.msg);
    xt *out = calloc((size_t)g->n_outputs, sizeof *out);
    ck_assert(out);
    ck_assert_msg(exec_run(e, x, out, &err) == QK_OK, "%s", err.msg);
    exec_free(e);
    return out;
}

static void free_outputs(xt *out, int n)
{
    for (int i = 0; i < n; i++) free(out[i].data);
    free(out);
}

/* Runs the fusions the YAML lists over g; returns the number of rewrites. */
static int fuse(ir_graph *g, const char *yaml)
{
    qk_err err = {0};
    registry *reg;
    qk_config *cfg;
    ck_assert_msg(registry_new(NULL, 0, &reg, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(config_parse_string(yaml, "test.yaml", &cfg, &err) == QK_OK, "%s", err.msg);
    int rewrites = -1;
    ck_assert_msg(fusion_pass_run(reg, g, cfg, backend(reg), &rewrites, &err) == QK_OK, "%s", err.msg);
    config_free(cfg);
    registry_free(reg);
    return rewrites;
}

/* Loads model, applies edit (may be NULL) to make a case the file lacks,
 * runs the fusions in yaml and checks that every output is unchanged on the
 * first `batch` samples of input_npy.  Returns the fused graph (caller
 * frees) and the rewrite count in *rewrites. */
static ir_graph *fuse_checked(const char *model, const char *input_npy, int64_t batch, void (*edit)(ir_graph *),
                              const char *yaml, int *rewrites)
{
    qk_err err = {0};
    ir_graph *g;
    xt x;
    ck_assert_msg(onnx_load(model, &g, &err) == QK_OK, "%s", err.msg);
    if (edit) {
        edit(g);
        ck_assert_msg(ir_compact(g, &err) == QK_OK && ir_infer(g, &err) == QK_OK, "%s", err.msg);
    }
    ck_assert_msg(npy_read(input_npy, &x, &err) == QK_OK, "%s", err.msg);
    if (x.dims[0] > batch) x.dims[0] = batch;
    xt *ref = run_all(g, &x);
    *rewrites = fuse(g, yaml);
    xt *got = run_all(g, &x);
    for (int j = 0; j < g->n_outputs; j++) {
        ck_assert_int_eq(xt_numel(&got[j]), xt_numel(&ref[j]));
        const float *a = got[j].data, *b = ref[j].data;
        double maxref = 0, maxdiff = 0;
        for (int64_t i = 0; i < xt_numel(&ref[j]); i++) {
            maxref = fmax(maxref, fabs(b[i]));
            maxdiff = fmax(maxdiff, fabs((double)a[i] - b[i]));
        }
        ck_assert_msg(maxdiff <= 1e-4 * maxref, "output '%s' changed by the fusions: max diff %g, max |ref| %g",
                      g->values[g->outputs[j]].name, maxdiff, maxref);
    }
    free_outputs(ref, g->n_outputs);
    free_outputs(got, g->n_outputs);
    free(x.data);
    return g;
}

static int is_group_start(const char *op)
{
    return !strcmp(op, "Conv") || !strcmp(op, "ConvTranspose") || !strcmp(op, "Gemm") || !strcmp(op, "MatMul");
}

/* Checks every fused value of g against the rules of a group and against
 * the plan, independently of the plugins' code: a group starts at a Conv-like
 * node whose output has one reader and is not a graph output, continues
 * into Relu/Clip, Add, or Add then Relu/Clip; no value inside has a plan
 * entry, each Add's residual keeps its own, and the group's last output has
 * one, decided by the group's first node.  Every fused value must belong to
 * such a group.  Returns the number of groups. */
static int check_groups(const ir_graph *g)
{
    qk_err err = {0};
    qk_config *cfg;
    quant_plan *p;
    ck_assert(config_parse_string("version: 1\n", NULL, &cfg, &err) == QK_OK);
    ck_assert_msg(plan_build(g, cfg, group_ops, NULL, &p, &err) == QK_OK, "%s", err.msg);
    int groups = 0, members = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->dead || !is_group_start(node_op_type(n))) continue;
        int y = n->out[0];
        const ir_value *val = &g->values[y];
        if (only_reader(g, y) < 0 || val->is_output) {
            ck_assert_msg(!val->fused, "'%s' is fused though it has %d readers%s", val->name, val->n_consumers,
                          val->is_output ? " and is a graph output" : "");
            continue;
        }
        if (!val->fused) {
            ck_assert_msg(plan_find(p, y) >= 0, "'%s' is neither fused nor quantized", val->name);
            continue;
        }
        groups++;
        int cur = y, step = 0, after_add = 0;
        while (g->values[cur].fused) {
            const ir_value *cv = &g->values[cur];
            members++;
            ck_assert_msg(step++ < 2, "group of '%s' runs past Add and Relu", node_name(n));
            ck_assert_msg(!cv->is_output, "graph output '%s' is fused", cv->name);
            ck_assert_msg(plan_find(p, cur) < 0, "fused value '%s' has a quantization point", cv->name);
            int r = only_reader(g, cur);
            ck_assert_msg(r >= 0, "fused value '%s' has %d readers", cv->name, cv->n_consumers);
            const ir_node *rn = &g->nodes[r];
            const char *op = node_op_type(rn);
            if (!strcmp(op, "Add")) {
                ck_assert_msg(!after_add, "group of '%s' has two Adds", node_name(n));
                after_add = 1;
                int other = rn->in[rn->in[0] == cur ? 1 : 0];
                ck_assert_msg(!g->values[other].fused && !g->values[other].t.data,
                              "residual '%s' of '%s' is fused or constant", g->values[other].name, node_name(rn));
                ck_assert_msg(plan_find(p, other) >= 0, "residual '%s' of '%s' is not quantized",
                              g->values[other].name, node_name(rn));
            } else {
                ck_assert_msg(!strcmp(op, "Relu") || !strcmp(op, "Clip"), "fused value '%s' is read by %s '%s'",
                              cv->name, op, node_name(rn));
                ck_assert_msg(rn->in[0] == cur, "'%s' is a bound of '%s', not its data", cv->name, node_name(rn));
            }
            cur = rn->out[0];
        }
        int e = plan_find(p, cur);
        ck_assert_msg(e >= 0, "last output '%s' of the group of '%s' is not quantized", g->values[cur].name,
                      node_name(n));
        ck_assert_msg(p->entries[e].node == i, "last output '%s' is planned by '%s', not by the group's '%s'",
                      g->values[cur].name, node_name(&g->nodes[p->entries[e].node]), node_name(n));
    }
    ck_assert_msg(members == n_fused(g), "%d fused values lie outside any group", n_fused(g) - members);
    plan_free(p);
    config_free(cfg);
    return groups;
}

START_TEST(test_grouping_fusions_digits)
{
    int rewrites;
    ir_graph *g = fuse_checked(TEST_DATA_DIR "/digits_cnn.onnx", TEST_DATA_DIR "/digits_test_x.npy", 64, NULL,
                               ALL_FUSIONS, &rewrites);
    /* conv_bn writes each BN's output name from the folded Conv. */
    static const char *const fused[] = {
        "/stem/stem.1/BatchNormalization_output_0",   /* Conv+Relu */
        "/block/bn1/BatchNormalization_output_0",     /* Conv+Relu */
        "/block/bn2/BatchNormalization_output_0",     /* Conv+Add(stem)+Relu */
        "/block/Add_output_0",
        "/conv3/conv3.1/BatchNormalization_output_0", /* Conv+Relu */
        "/conv4/conv4.1/BatchNormalization_output_0", /* Conv+Relu */
        NULL};
    for (int i = 0; fused[i]; i++) ck_assert_msg(is_fused(g, fused[i]), "'%s' is not fused", fused[i]);
    ck_assert_int_eq(n_fused(g), 6);
    /* The stem's Relu output is the residual: quantized, not fused. */
    ck_assert(!is_fused(g, "/stem/stem.2/Relu_output_0"));
    ck_assert(!is_fused(g, "logits"));
    ck_assert_int_eq(rewrites, 5 + 4 + 1);   /* BN folds, Conv+Relu, Conv+Add+Relu */
    ck_assert_int_eq(check_groups(g), 5);
    ir_free(g);
}
END_TEST

static const char *const resnet_fused[] = {
    "/conv1/Conv_output_0",
    "/layer1/layer1.0/conv1/Conv_output_0",
    "/layer1/layer1.0/conv2/Conv_output_0",  /* the residual is the MaxPool output */
    "/layer1/layer1.0/Add_output_0",
    "/layer2/layer2.0/conv1/Conv_output_0",
    /* Both Add inputs are Convs: the later one, the downsample, joins. */
    "/layer2/layer2.0/downsample/downsample.0/Conv_output_0",
    "/layer2/layer2.0/Add_output_0",
    "/layer3/layer3.0/conv1/Conv_output_0",
    "/layer3/layer3.0/downsample/downsample.0/Conv_output_0",
    "/layer3/layer3.0/Add_output_0",
    "/layer4/layer4.0/conv1/Conv_output_0",
    "/layer4/layer4.0/downsample/downsample.0/Conv_output_0",
    "/layer4/layer4.0/Add_output_0",
    NULL};

START_TEST(test_grouping_fusions_resnet)
{
    int rewrites;
    ir_graph *g = fuse_checked(TEST_DATA_DIR "/nets/resnet_small.onnx", TEST_DATA_DIR "/nets/resnet_small_input.npy",
                               2, NULL, ALL_FUSIONS, &rewrites);
    for (int i = 0; resnet_fused[i]; i++) ck_assert_msg(is_fused(g, resnet_fused[i]), "'%s' is not fused", resnet_fused[i]);
    ck_assert_int_eq(n_fused(g), 13);
    ck_assert(!is_fused(g, "/layer2/layer2.0/conv2/Conv_output_0"));
    ck_assert(!is_fused(g, "/layer3/layer3.0/conv2/Conv_output_0"));
    ck_assert(!is_fused(g, "/layer4/layer4.0/conv2/Conv_output_0"));
    ck_assert_int_eq(rewrites, 5 + 4);
    ck_assert_int_eq(check_groups(g), 9);
    ir_free(g);
}
END_TEST

START_TEST(test_grouping_fusions_mobilenet_relu6)
{
    int rewrites;
    ir_graph *g = fuse_checked(TEST_DATA_DIR "/nets/mobilenet_v2.onnx", TEST_DATA_DIR "/nets/mobilenet_v2_input.npy",
                               2, NULL, ALL_FUSIONS, &rewrites);
    int clips = count_op(g, "Clip"), adds = count_op(g, "Add");
    ck_assert_int_gt(clips, 0);
    ck_assert_int_gt(adds, 0);
    /* Every ReLU6 follows a Conv; every Add joins an expansion block's
     * projection Conv to the block input. */
    ck_assert_int_eq(rewrites, clips + adds);
    ck_assert_int_eq(check_groups(g), clips + adds);
    ck_assert(is_fused(g, "/features/features.0/features.0.0/Conv_output_0"));
    /* Read by the next block's Conv and by its Add: two readers. */
    ck_assert_int_eq(g->values[vid(g, "/features/features.2/conv/conv.2/Conv_output_0")].n_consumers, 2);
    ck_assert(!is_fused(g, "/features/features.2/conv/conv.2/Conv_output_0"));
    ck_assert(is_fused(g, "/features/features.3/conv/conv.2/Conv_output_0"));
    /* No Relu after the Add: the group ends there. */
    ck_assert(!is_fused(g, "/features/features.3/Add_output_0"));
    ck_assert(!is_fused(g, "logits"));
    ir_free(g);
}
END_TEST

/* Makes value `name` a graph output as well. */
static void add_graph_output(ir_graph *g, const char *name)
{
    int v = vid(g, name);
    int *o = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *o);
    ck_assert(o);
    g->outputs = o;
    o[g->n_outputs++] = v;
    g->values[v].is_output = 1;
}

static int add_scalar(ir_graph *g, const char *name, float value)
{
    xt t = {.dtype = DT_FLOAT, .rank = 0, .data = &value};
    int v = ir_add_initializer(g, name, &t);
    ck_assert_int_ge(v, 0);
    return v;
}

static int node_named(const ir_graph *g, const char *name)
{
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && !strcmp(node_name(&g->nodes[i]), name)) return i;
    ck_abort_msg("no node '%s'", name);
    return -1;
}

/* ResNet cases the file lacks: a Conv output with a second reader, graph
 * outputs inside would-be groups, a bias (constant) Add. */
static void edit_resnet(ir_graph *g)
{
    const char *in[] = {"/conv1/Conv_output_0"}, *out[] = {"/test/extra_relu_out"};
    ck_assert_int_ge(ir_add_node(g, "Relu", "/test/extra_relu", 1, in, 1, out), 0);
    add_graph_output(g, "/test/extra_relu_out");
    add_graph_output(g, "/layer1/layer1.0/conv1/Conv_output_0");
    add_graph_output(g, "/layer2/layer2.0/Add_output_0");
    add_graph_output(g, "/layer3/layer3.0/downsample/downsample.0/Conv_output_0");
    float bias[16];
    for (int i = 0; i < 16; i++) bias[i] = 0.01f * (float)i;
    xt t = {.dtype = DT_FLOAT, .rank = 3, .dims = {16, 1, 1}, .data = bias};
    int b = ir_add_initializer(g, "/test/bias", &t);
    ck_assert_int_ge(b, 0);
    ir_set_input(g, node_named(g, "/layer1/layer1.0/Add"), 1, b);
}

START_TEST(test_grouping_fusions_respect_readers_and_outputs)
{
    int rewrites;
    ir_graph *g = fuse_checked(TEST_DATA_DIR "/nets/resnet_small.onnx", TEST_DATA_DIR "/nets/resnet_small_input.npy",
                               2, edit_resnet, ALL_FUSIONS, &rewrites);
    ck_assert_int_eq(g->values[vid(g, "/conv1/Conv_output_0")].n_consumers, 2);
    ck_assert_msg(!is_fused(g, "/conv1/Conv_output_0"), "a Conv output with two readers is fused");
    ck_assert_msg(!is_fused(g, "/layer1/layer1.0/conv1/Conv_output_0"), "a graph-output Conv is fused");
    /* Conv + constant is a bias, not a residual. */
    ck_assert(!is_fused(g, "/layer1/layer1.0/conv2/Conv_output_0"));
    ck_assert(!is_fused(g, "/layer1/layer1.0/Add_output_0"));
    /* The Add output is a graph output: the group ends at the Add. */
    ck_assert(is_fused(g, "/layer2/layer2.0/downsample/downsample.0/Conv_output_0"));
    ck_assert(!is_fused(g, "/layer2/layer2.0/Add_output_0"));
    /* The later Conv is a graph output: the earlier one joins instead. */
    ck_assert(!is_fused(g, "/layer3/layer3.0/downsample/downsample.0/Conv_output_0"));
    ck_assert(is_fused(g, "/layer3/layer3.0/conv2/Conv_output_0"));
    ck_assert(is_fused(g, "/layer3/layer3.0/Add_output_0"));
    ck_assert(is_fused(g, "/layer4/layer4.0/downsample/downsample.0/Conv_output_0"));
    ck_assert(is_fused(g, "/layer4/layer4.0/Add_output_0"));
    ck_assert_int_eq(rewrites, 3 + 3);   /* conv1 of layers 2-4; the Adds of layers 2-4 */
    ck_assert_int_eq(check_groups(g), 6);
    ir_free(g);
}
END_TEST

/* MobileNet Clips turned into the forms conv_relu must and must not take. */
static void edit_mobilenet(ir_graph *g)
{
    /* min -1: not a Relu. */
    ir_set_input(g, node_named(g, "/features/features.0/features.0.2/Clip"), 1, add_scalar(g, "/test/minus1", -1));
    /* min 0 and no max (Clip-11): a Relu. */
    ir_set_input(g, node_named(g, "/features/features.1/conv/conv.0/conv.0.2/Clip"), 2, -1);
    /* max below min: not a Relu (every output -1). */
    ir_set_input(g, node_named(g, "/features/features.2/conv/conv.0/conv.0.2/Clip"), 2, vid(g, "/test/minus1"));
    /* Clip-6 attributes min 0, max 6 (the executor follows the model's
     * opset and reads bounds from inputs, so this Clip computes the
     * identity; the plugin must still read the attributes). */
    int c6 = node_named(g, "/features/features.2/conv/conv.1/conv.1.2/Clip");
    ir_set_input(g, c6, 1, -1);
    ir_set_input(g, c6, 2, -1);
    ck_assert_int_eq(ir_node_set_attr_float(&g->nodes[c6], "min", 0), QK_OK);
    ck_assert_int_eq(ir_node_set_attr_float(&g->nodes[c6], "max", 6), QK_OK);
    /* No bounds at all: the identity, not a Relu. */
    int none = node_named(g, "/features/features.3/conv/conv.1/conv.1.2/Clip");
    ir_set_input(g, none, 1, -1);
    ir_set_input(g, none, 2, -1);
}

START_TEST(test_conv_relu_reads_clip_bounds)
{
    int rewrites;
    ir_graph *g = fuse_checked(TEST_DATA_DIR "/nets/mobilenet_v2.onnx", TEST_DATA_DIR "/nets/mobilenet_v2_input.npy",
                               2, edit_mobilenet, ALL_FUSIONS, &rewrites);
    ck_assert(!is_fused(g, "/features/features.0/features.0.0/Conv_output_0"));
    ck_assert(is_fused(g, "/features/features.1/conv/conv.0/conv.0.0/Conv_output_0"));
    ck_assert(!is_fused(g, "/features/features.2/conv/conv.0/conv.0.0/Conv_output_0"));
    ck_assert(is_fused(g, "/features/features.2/conv/conv.1/conv.1.0/Conv_output_0"));
    ck_assert(!is_fused(g, "/features/features.3/conv/conv.1/conv.1.0/Conv_output_0"));
    int groups = count_op(g, "Clip") + count_op(g, "Add") - 3;
    ck_assert_int_eq(rewrites, groups);
    ck_assert_int_eq(check_groups(g), groups);
    ir_free(g);
}
END_TEST

/* conv_add_relu alone, before conv_relu, or twice: the same groups. */
START_TEST(test_grouping_fusions_order_independent)
{
    qk_err err = {0};
    ir_graph *ref = fuse_checked(TEST_DATA_DIR "/nets/resnet_small.onnx", TEST_DATA_DIR "/nets/resnet_small_input.npy",
                                 2, NULL, "version: 1\nfusions: [conv_relu, conv_add_relu]\n", &(int){0});
    ir_graph *alone, *twice;
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/nets/resnet_small.onnx", &alone, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/nets/resnet_small.onnx", &twice, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(fuse(alone, "version: 1\nfusions: [conv_add_relu]\n"), 4);
    ck_assert_int_eq(fuse(twice, "version: 1\nfusions: [conv_add_relu, conv_relu]\n"), 9);
    /* A second pass finds every group already formed. */
    ck_assert_int_eq(fuse(twice, "version: 1\nfusions: [conv_add_relu, conv_relu]\n"), 0);
    ck_assert_int_eq(n_fused(alone), 8);
    ck_assert_int_eq(n_fused(twice), n_fused(ref));
    for (int v = 0; v < ref->n_values; v++) {
        const char *name = ref->values[v].name;
        ck_assert_msg(is_fused(twice, name) == ref->values[v].fused, "'%s' differs with conv_add_relu first", name);
        if (is_fused(alone, name)) ck_assert_msg(ref->values[v].fused, "'%s' fused by conv_add_relu alone only", name);
    }
    ck_assert_int_eq(check_groups(alone), 4);
    ir_free(twice);
    ir_free(alone);
    ir_free(ref);
}
END_TEST

/* Unknown args are refused, and so is a host whose graph table predates
 * mark_fused; neither marks anything. */
START_TEST(test_grouping_fusions_refuse_args_and_old_hosts)
{
    static const char *const names[] = {"conv_relu", "conv_add_relu"};
    qk_err err = {0};
    registry *reg;
    qk_config *cfg;
    ck_assert(registry_new(NULL, 0, &reg, &err) == QK_OK);
    ck_assert_msg(config_parse_string("version: 1\nbackend_options: {bogus: 1}\n", "args.yaml", &cfg, &err) == QK_OK,
                  "%s", err.msg);
    for (int i = 0; i < 2; i++) {
        const qk_plugin_descriptor *d;
        ck_assert_msg(registry_get(reg, QK_PLUGIN_FUSION, names[i], &d, &err) == QK_OK, "%s", err.msg);
        const qk_fusion_vtable *vt = d->vtable;
        ir_graph *g;
        ck_assert(onnx_load(TEST_DATA_DIR "/nets/resnet_small.onnx", &g, &err) == QK_OK);
        host_ctx hc;
        qk_err perr = {0};
        host_ctx_init(&hc, names[i], g, &perr);
        int count = -1;

        qk_params *args = host_params_new(&cfg->backend_options.value, &perr);
        ck_assert(args);
        ck_assert_int_lt(vt->apply(&hc.host, (qk_graph *)g, args, &count), 0);
        ck_assert_msg(strstr(perr.msg, "bogus") && strstr(perr.msg, names[i]), "message: %s", perr.msg);
        host_params_free(args);
        ck_assert_int_eq(n_fused(g), 0);

        /* A 1.0 host: its graph table ends before set_output. */
        qk_graph_api old = *hc.host.graph;
        old.size = offsetof(qk_graph_api, set_output);
        const qk_graph_api *full = hc.host.graph;
        hc.host.graph = &old;
        perr = (qk_err){0};
        args = host_params_new(NULL, &perr);
        ck_assert_int_eq(vt->apply(&hc.host, (qk_graph *)g, args, &count), QK_ENOTSUP);
        ck_assert_msg(strstr(perr.msg, "mark_fused"), "message: %s", perr.msg);
        ck_assert_int_eq(n_fused(g), 0);

        /* The same call with the whole table works. */
        hc.host.graph = full;
        perr = (qk_err){0};
        ck_assert_msg(vt->apply(&hc.host, (qk_graph *)g, args, &count) == QK_OK, "%s", perr.msg);
        ck_assert_int_gt(count, 0);
        ck_assert_int_eq(n_fused(g), i == 0 ? 5 : 8);
        host_params_free(args);
        ir_free(g);
    }
    config_free(cfg);
    registry_free(reg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("stages");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_conv_bn_fusion_preserves_outputs);
    tcase_add_test(tc, test_plan_follows_precedence_and_skips);
    tcase_add_test(tc, test_grouping_fusions_digits);
    tcase_add_test(tc, test_grouping_fusions_resnet);
    tcase_add_test(tc, test_grouping_fusions_mobilenet_relu6);
    tcase_add_test(tc, test_grouping_fusions_respect_readers_and_outputs);
    tcase_add_test(tc, test_conv_relu_reads_clip_bounds);
    tcase_add_test(tc, test_grouping_fusions_order_independent);
    tcase_add_test(tc, test_grouping_fusions_refuse_args_and_old_hosts);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
