/* This file implements the tests of the YAML configuration (core/config.c):
 * the DESIGN.md example, defaults, rule resolution and its sources, every
 * error message with its exact file:line:column, the typed plugin-argument
 * maps, plugin_path resolution and allocation-failure paths. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* By relative path: "config.h" alone would find autoconf's config.h first. */
#include "../core/config.h"

#define CFG_DIR TEST_DATA_DIR "/config"

static qk_config *parse_ok(const char *text)
{
    qk_config *c = NULL;
    qk_err e = {0};
    int rc = config_parse_string(text, "t.yaml", &c, &e);
    ck_assert_msg(rc == 0, "unexpected error %d: %s", rc, e.msg);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void expect_error(const char *text, int code, const char *want)
{
    qk_config *c = (qk_config *)1;
    qk_err e = {0};
    int rc = config_parse_string(text, "t.yaml", &c, &e);
    ck_assert_msg(rc == code, "text:\n%s\nwanted %d, got %d (%s)", text, code, rc, e.msg);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e.msg, want);
}

static void assert_src(const cfg_source *s, const char *rule, int line, int column)
{
    ck_assert_str_eq(s->rule, rule);
    ck_assert_int_eq(s->line, line);
    ck_assert_int_eq(s->column, column);
    if (line)
        ck_assert_str_eq(s->file, "t.yaml");
    else
        ck_assert_ptr_null(s->file);
}

/* ---- the DESIGN.md example ------------------------------------------------ */

START_TEST(test_design_example)
{
    qk_config *c = NULL;
    qk_err e = {0};
    const char *path = CFG_DIR "/design_example.yaml";
    ck_assert_msg(config_load(path, &c, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(c->path, path);
    ck_assert_int_eq(c->version, 1);
    ck_assert(c->backend.set);
    ck_assert_str_eq(c->backend.value, "onnx-qdq");
    ck_assert_int_eq(c->backend.at.line, 2);
    ck_assert(c->backend_options.set);
    ck_assert_uint_eq(cfg_map_count(&c->backend_options.value), 0);
    ck_assert(c->fusions_set);
    ck_assert_uint_eq(c->n_fusions, 2);
    ck_assert_str_eq(c->fusions[0], "conv_bn");
    ck_assert_str_eq(c->fusions[1], "conv_relu");
    ck_assert(c->calibration.batch_size.set);
    ck_assert_int_eq(c->calibration.batch_size.value, 16);
    ck_assert(c->calibration.batch_num.set);
    ck_assert_int_eq(c->calibration.batch_num.value, 8);
    ck_assert_int_eq(c->calibration.batch_num.at.line, 7);
    ck_assert_int_eq(c->calibration.batch_num.at.column, 3);

    const qk_tensor_rule *a = &c->quantize.activation, *w = &c->quantize.weight;
    ck_assert_str_eq(c->quantize.label, "global");
    ck_assert_ptr_null(c->quantize.name);
    ck_assert_int_eq(c->quantize.at.line, 8);
    ck_assert(a->observer.set);
    ck_assert_str_eq(a->observer.value, "minmax");
    ck_assert_int_eq(a->observer.at.line, 9);
    ck_assert_int_eq(a->observer.at.column, 16);
    ck_assert(a->observer_args.set);
    ck_assert_uint_eq(a->observer_args.value.n, 0);
    ck_assert_int_eq(a->observer_args.at.column, 34);
    ck_assert(a->bits.set);
    ck_assert_int_eq(a->bits.value, 8);
    ck_assert_int_eq(a->bits.at.column, 53);
    ck_assert(a->symmetric.set);
    ck_assert(!a->symmetric.value);
    ck_assert_int_eq(a->symmetric.at.column, 62);
    ck_assert(!a->per_channel.set);
    ck_assert(!a->quantizer.set);
    ck_assert(!a->quantizer_args.set);

    ck_assert(w->quantizer.set);
    ck_assert_str_eq(w->quantizer.value, "round");
    ck_assert_int_eq(w->quantizer.at.line, 10);
    ck_assert_int_eq(w->quantizer.at.column, 12);
    ck_assert(w->quantizer_args.set);
    ck_assert_str_eq(w->observer.value, "minmax");
    ck_assert_int_eq(w->bits.value, 8);
    ck_assert_int_eq(w->bits.at.line, 10);
    ck_assert_int_eq(w->bits.at.column, 68);
    ck_assert(w->symmetric.value);
    ck_assert(w->per_channel.set);
    ck_assert(w->per_channel.value);
    ck_assert_int_eq(w->per_channel.at.line, 11);
    ck_assert_int_eq(w->per_channel.at.column, 29);

    ck_assert_uint_eq(c->n_op_types, 1);
    const qk_rule *mm = config_find_op_type(c, "MatMul");
    ck_assert_ptr_eq(mm, &c->op_types[0]);
    ck_assert_str_eq(mm->label, "op_types.MatMul");
    ck_assert_str_eq(mm->name, "MatMul");
    ck_assert_int_eq(mm->at.line, 13);
    ck_assert_int_eq(mm->at.column, 3);
    ck_assert(mm->activation.bits.set && mm->activation.bits.value == 8);
    ck_assert(mm->activation.symmetric.set && mm->activation.symmetric.value);
    ck_assert_int_eq(mm->activation.symmetric.at.column, 34);
    ck_assert(!mm->weight.bits.set);
    ck_assert(!mm->skip.set);

    ck_assert_uint_eq(c->n_nodes, 1);
    const qk_rule *fc = config_find_node(c, "/fc/Gemm");
    ck_assert_ptr_nonnull(fc);
    ck_assert_str_eq(fc->label, "nodes./fc/Gemm");
    ck_assert(fc->skip.set && fc->skip.value);
    ck_assert_int_eq(fc->skip.at.line, 15);
    ck_assert_int_eq(fc->skip.at.column, 16);
    ck_assert_ptr_null(config_find_node(c, "/fc/Gemm2"));
    ck_assert_ptr_null(config_find_op_type(c, "Conv"));
    ck_assert_uint_eq(c->n_plugin_path, 0);

    qk_resolved_rule r;
    config_resolve(c, "MatMul", "/mm/MatMul", &r);
    ck_assert(!r.skip);
    ck_assert(r.activation.symmetric);
    ck_assert_str_eq(r.activation.symmetric_from.rule, "op_types.MatMul");
    ck_assert_str_eq(r.activation.symmetric_from.file, path);
    ck_assert_int_eq(r.activation.symmetric_from.line, 13);
    ck_assert_str_eq(r.activation.bits_from.rule, "op_types.MatMul");
    ck_assert_str_eq(r.activation.observer_from.rule, "global");
    ck_assert_str_eq(r.weight.quantizer, "round");
    ck_assert_str_eq(r.weight.quantizer_from.rule, "global");
    ck_assert_int_eq(r.weight.quantizer_from.line, 10);
    config_resolve(c, "Gemm", "/fc/Gemm", &r);
    ck_assert(r.skip);
    ck_assert_str_eq(r.skip_from.rule, "nodes./fc/Gemm");
    ck_assert(!r.activation.symmetric);
    ck_assert_str_eq(r.activation.symmetric_from.rule, "global");
    config_free(c);
}
END_TEST

/* ---- defaults --------------------------------------------------------------- */

START_TEST(test_defaults)
{
    qk_config *c = parse_ok("version: 1\n");
    ck_assert_int_eq(c->version, 1);
    ck_assert(!c->backend.set);
    ck_assert_str_eq(c->backend.value, "onnx-qdq");
    ck_assert(!c->backend_options.set);
    ck_assert_uint_eq(cfg_map_count(&c->backend_options.value), 0);
    ck_assert(!c->fusions_set);
    ck_assert_uint_eq(c->n_fusions, 0);
    ck_assert(!c->calibration.batch_size.set);
    ck_assert_int_eq(c->calibration.batch_size.value, 16);
    ck_assert(!c->calibration.batch_num.set);
    ck_assert_int_eq(c->calibration.batch_num.value, 0);
    ck_assert_str_eq(c->quantize.label, "global");
    ck_assert(!c->quantize.activation.bits.set);
    ck_assert(!c->quantize.skip.set);
    ck_assert_uint_eq(c->n_op_types, 0);
    ck_assert_uint_eq(c->n_nodes, 0);
    ck_assert_uint_eq(c->n_plugin_path, 0);

    qk_resolved_rule r;
    config_resolve(c, "Conv", "conv1", &r);
    ck_assert(!r.skip);
    assert_src(&r.skip_from, "default", 0, 0);
    ck_assert_str_eq(r.activation.observer, "minmax");
    ck_assert_uint_eq(cfg_map_count(r.activation.observer_args), 0);
    ck_assert_ptr_null(r.activation.quantizer);
    ck_assert_uint_eq(cfg_map_count(r.activation.quantizer_args), 0);
    ck_assert_int_eq(r.activation.bits, 8);
    ck_assert(!r.activation.symmetric);
    ck_assert(!r.activation.per_channel);
    assert_src(&r.activation.bits_from, "default", 0, 0);
    ck_assert_str_eq(r.weight.quantizer, "round");
    ck_assert_str_eq(r.weight.observer, "minmax");
    ck_assert_int_eq(r.weight.bits, 8);
    ck_assert(r.weight.symmetric);
    ck_assert(r.weight.per_channel);
    assert_src(&r.weight.per_channel_from, "default", 0, 0);
    config_free(c);

    /* Sections given without content read as empty. */
    c = parse_ok("version: 1\nbackend_options:\ncalibration:\nquantize:\nop_types:\nnodes:\n"
                 "plugin_path:\n");
    ck_assert(c->backend_options.set);
    ck_assert_int_eq(c->calibration.batch_size.value, 16);
    ck_assert_uint_eq(c->n_op_types + c->n_nodes + c->n_plugin_path, 0);
    config_free(c);

    /* `fusions: []` is an explicit "no fusions", unlike no `fusions:`. */
    c = parse_ok("version: 1\nfusions: []\n");
    ck_assert(c->fusions_set);
    ck_assert_uint_eq(c->n_fusions, 0);
    ck_assert_int_eq(c->fusions_at.line, 2);
    config_free(c);
}
END_TEST

START_TEST(test_resolve_without_config)
{
    qk_resolved_rule r;
    config_resolve(NULL, "Conv", "x", &r);
    ck_assert(!r.skip);
    ck_assert_str_eq(r.weight.quantizer, "round");
    ck_assert_int_eq(r.activation.bits, 8);
    char buf[64];
    ck_assert_str_eq(cfg_source_str(&r.activation.bits_from, buf, sizeof buf), "default");
}
END_TEST

/* ---- precedence -------------------------------------------------------------- */

static const char precedence_yaml[] =
    "version: 1\n"                                                               /* 1 */
    "quantize:\n"                                                                /* 2 */
    "  activation: {observer: percentile, observer_args: {percentile: 99.9}, bits: 8}\n"
    "  weight: {bits: 8, symmetric: true}\n"                                     /* 4 */
    "op_types:\n"                                                                /* 5 */
    "  Conv:\n"                                                                  /* 6 */
    "    activation: {bits: 6}\n"                                                /* 7 */
    "    weight: {per_channel: false}\n"                                         /* 8 */
    "  Gemm:\n"                                                                  /* 9 */
    "    activation: {observer: minmax}\n"                                       /* 10 */
    "    weight: {quantizer: adaround, quantizer_args: {iters: 100}}\n"          /* 11 */
    "nodes:\n"                                                                   /* 12 */
    "  conv1:\n"                                                                 /* 13 */
    "    activation: {bits: 4, observer_args: {percentile: 99.99}}\n"            /* 14 */
    "    weight: {symmetric: false}\n"                                           /* 15 */
    "  fc:\n"                                                                    /* 16 */
    "    weight: {quantizer: round}\n"                                           /* 17 */
    "    skip: false\n"                                                          /* 18 */
    "  fc2:\n"                                                                   /* 19 */
    "    activation: {observer: percentile}\n"                                   /* 20 */
    "    weight: {quantizer: adaround}\n";                                       /* 21 */

START_TEST(test_resolve_precedence)
{
    qk_config *c = parse_ok(precedence_yaml);
    qk_resolved_rule r;
    double f;
    int64_t i;
    qk_err e = {0};

    /* Only the global rule. */
    config_resolve(c, "Relu", "relu1", &r);
    ck_assert_str_eq(r.activation.observer, "percentile");
    assert_src(&r.activation.observer_from, "global", 3, 16);
    ck_assert_int_eq(cfg_map_get_float(r.activation.observer_args, "percentile", &f, &e), 1);
    ck_assert_double_eq(f, 99.9);
    assert_src(&r.activation.observer_args_from, "global", 3, 38);
    ck_assert_int_eq(r.activation.bits, 8);
    assert_src(&r.activation.bits_from, "global", 3, 73);
    ck_assert(!r.activation.symmetric);
    assert_src(&r.activation.symmetric_from, "default", 0, 0);

    /* global < op_types, field by field. */
    config_resolve(c, "Conv", "conv7", &r);
    ck_assert_int_eq(r.activation.bits, 6);
    assert_src(&r.activation.bits_from, "op_types.Conv", 7, 18);
    ck_assert_str_eq(r.activation.observer, "percentile");
    assert_src(&r.activation.observer_from, "global", 3, 16);
    ck_assert(r.weight.symmetric);
    assert_src(&r.weight.symmetric_from, "global", 4, 21);
    ck_assert(!r.weight.per_channel);
    assert_src(&r.weight.per_channel_from, "op_types.Conv", 8, 14);
    ck_assert_int_eq(r.weight.bits, 8);
    assert_src(&r.weight.bits_from, "global", 4, 12);
    ck_assert_str_eq(r.weight.quantizer, "round");
    assert_src(&r.weight.quantizer_from, "default", 0, 0);

    /* op_types < nodes. */
    config_resolve(c, "Conv", "conv1", &r);
    ck_assert_int_eq(r.activation.bits, 4);
    assert_src(&r.activation.bits_from, "nodes.conv1", 14, 18);
    ck_assert_str_eq(r.activation.observer, "percentile");
    assert_src(&r.activation.observer_from, "global", 3, 16);
    ck_assert_int_eq(cfg_map_get_float(r.activation.observer_args, "percentile", &f, &e), 1);
    ck_assert_double_eq(f, 99.99);
    assert_src(&r.activation.observer_args_from, "nodes.conv1", 14, 27);
    ck_assert(!r.weight.symmetric);
    assert_src(&r.weight.symmetric_from, "nodes.conv1", 15, 14);
    ck_assert(!r.weight.per_channel);
    assert_src(&r.weight.per_channel_from, "op_types.Conv", 8, 14);
    char buf[128];
    ck_assert_str_eq(cfg_source_str(&r.weight.per_channel_from, buf, sizeof buf),
                     "op_types.Conv (t.yaml:8:14)");

    /* A node rule applies whatever the op type, and without one. */
    config_resolve(c, NULL, "conv1", &r);
    ck_assert_int_eq(r.activation.bits, 4);
    ck_assert(r.weight.per_channel);
    assert_src(&r.weight.per_channel_from, "default", 0, 0);

    /* Another observer drops the inherited observer_args; the new quantizer
     * brings its own arguments. */
    config_resolve(c, "Gemm", "fc", &r);
    ck_assert_str_eq(r.activation.observer, "minmax");
    assert_src(&r.activation.observer_from, "op_types.Gemm", 10, 18);
    ck_assert_uint_eq(cfg_map_count(r.activation.observer_args), 0);
    assert_src(&r.activation.observer_args_from, "op_types.Gemm", 10, 18);
    /* nodes.fc goes back to round: adaround's arguments go with it. */
    ck_assert_str_eq(r.weight.quantizer, "round");
    assert_src(&r.weight.quantizer_from, "nodes.fc", 17, 14);
    ck_assert_uint_eq(cfg_map_count(r.weight.quantizer_args), 0);
    ck_assert(!r.skip);
    assert_src(&r.skip_from, "nodes.fc", 18, 5);

    /* Naming the same plugin again keeps the inherited arguments. */
    config_resolve(c, "Gemm", "fc2", &r);
    ck_assert_str_eq(r.activation.observer, "percentile");
    assert_src(&r.activation.observer_from, "nodes.fc2", 20, 18);
    ck_assert_uint_eq(cfg_map_count(r.activation.observer_args), 0);
    ck_assert_str_eq(r.weight.quantizer, "adaround");
    assert_src(&r.weight.quantizer_from, "nodes.fc2", 21, 14);
    ck_assert_int_eq(cfg_map_get_int(r.weight.quantizer_args, "iters", &i, &e), 1);
    ck_assert_int_eq(i, 100);
    assert_src(&r.weight.quantizer_args_from, "op_types.Gemm", 11, 35);
    config_free(c);
}
END_TEST

START_TEST(test_resolve_skip)
{
    qk_config *c = parse_ok("version: 1\n"
                            "quantize: {skip: true}\n"
                            "op_types: {Conv: {skip: false}}\n"
                            "nodes: {conv3: {skip: true}}\n");
    qk_resolved_rule r;
    config_resolve(c, "Add", "add", &r);
    ck_assert(r.skip);
    assert_src(&r.skip_from, "global", 2, 12);
    config_resolve(c, "Conv", "conv1", &r);
    ck_assert(!r.skip);
    assert_src(&r.skip_from, "op_types.Conv", 3, 19);
    config_resolve(c, "Conv", "conv3", &r);
    ck_assert(r.skip);
    assert_src(&r.skip_from, "nodes.conv3", 4, 17);
    config_free(c);
}
END_TEST

/* ---- errors: every message, with its exact place ------------------------------- */

typedef struct err_case {
    const char *text;
    const char *msg;
} err_case;

static const err_case err_cases[] = {
    /* YAML syntax, from libyaml's problem mark */
    {"version: 1\nquantize: [1\n",
     "t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
     "sequence at line 2, column 11)"},
    {"version: 1\n bad: 2\n",
     "t.yaml:2:5: YAML syntax error: mapping values are not allowed in this context"},
    {"version: 1\n\tbackend: x\n",
     "t.yaml:2:1: YAML syntax error: found a tab character that violates indentation (while "
     "scanning a plain scalar at line 1, column 10)"},
    {"version: 1\nbackend: *x\n", "t.yaml:2:10: YAML error: found undefined alias"},
    {"version: 1\nbackend: \"x\xff\"\n",
     "t.yaml:2:12: not valid YAML text: invalid leading UTF-8 octet (byte 0xff)"},
    /* the document as a whole */
    {"", "t.yaml:1:1: the configuration is empty; it needs at least `version: 1`"},
    {"# nothing but a comment\n\n",
     "t.yaml:1:1: the configuration is empty; it needs at least `version: 1`"},
    {"- version: 1\n",
     "t.yaml:1:1: the top level must be a mapping (version: 1, backend: ...), got a list"},
    {"quantkit\n",
     "t.yaml:1:1: the top level must be a mapping (version: 1, backend: ...), got string "
     "'quantkit'"},
    {"version: 1\n---\nversion: 1\n",
     "t.yaml:2:1: a second YAML document starts here; a config file holds one"},
    /* version */
    {"backend: onnx-qdq\n", "t.yaml:1:1: missing `version: 1` at the top level"},
    {"verison: 1\n",
     "t.yaml:1:1: unknown key `verison` at the top level; did you mean `version`?"},
    {"backend: x\nversion: 2\n",
     "t.yaml:2:10: version: 2 is not supported; this quantkit reads version 1"},
    {"version: \"1\"\n", "t.yaml:1:10: version: expected an integer, got string '1'"},
    {"version:\n", "t.yaml:1:9: version: expected an integer, got null"},
    {"version: 1.0\n", "t.yaml:1:10: version: expected an integer, got float '1.0'"},
    /* unknown keys at every level, with the closest known key */
    {"version: 1\nbakend: onnx-qdq\n",
     "t.yaml:2:1: unknown key `bakend` at the top level; did you mean `backend`?"},
    {"version: 1\ncalibration:\n  batchsize: 8\n",
     "t.yaml:3:3: unknown key `batchsize` in calibration; did you mean `batch_size`?"},
    {"version: 1\ncalibration: {batch: 3}\n",
     "t.yaml:2:15: unknown key `batch` in calibration; known keys: batch_size, batch_num"},
    {"version: 1\nquantize: {activaton: {bits: 8}}\n",
     "t.yaml:2:12: unknown key `activaton` in quantize; did you mean `activation`?"},
    {"version: 1\nquantize: {weight: {Bits: 4}}\n",
     "t.yaml:2:21: unknown key `Bits` in quantize.weight; did you mean `bits`?"},
    {"version: 1\nquantize: {weight: {per_chanenl: true}}\n",
     "t.yaml:2:21: unknown key `per_chanenl` in quantize.weight; did you mean `per_channel`?"},
    {"version: 1\nop_types:\n  Conv: {weight: {symetric: true}}\n",
     "t.yaml:3:19: unknown key `symetric` in op_types.Conv.weight; did you mean `symmetric`?"},
    {"version: 1\nnodes:\n  /fc/Gemm: {activation: {observr: minmax}}\n",
     "t.yaml:3:27: unknown key `observr` in nodes./fc/Gemm.activation; did you mean "
     "`observer`?"},
    {"version: 1\nquantize: {activation: {granularity: tensor}}\n",
     "t.yaml:2:25: unknown key `granularity` in quantize.activation; known keys: observer, "
     "observer_args, quantizer, quantizer_args, bits, symmetric, per_channel"},
    /* the common misplacements get a hint instead */
    {"version: 1\nop_types: {Conv: {bits: 4}}\n",
     "t.yaml:2:19: unknown key `bits` in op_types.Conv; tensor settings go under "
     "`activation:` or `weight:`"},
    {"version: 1\nactivation: {bits: 8}\n",
     "t.yaml:2:1: unknown key `activation` at the top level; rules go under `quantize:`, "
     "`op_types:` or `nodes:`"},
    {"version: 1\nquantize: {weight: {skip: true}}\n",
     "t.yaml:2:21: unknown key `skip` in quantize.weight; `skip` belongs to the rule, next to "
     "`activation:` and `weight:`"},
    {"version: 1\nop_types: {conv: {skip: true}}\n",
     "t.yaml:2:12: op_types: unknown op type `conv`; op types are case-sensitive, did you "
     "mean `Conv`?"},
    /* wrong types */
    {"version: 1\nquantize:\n  activation: {bits: eight}\n",
     "t.yaml:3:22: quantize.activation.bits: expected an integer, got string 'eight'"},
    {"version: 1\nquantize: {activation: {bits: 8.5}}\n",
     "t.yaml:2:31: quantize.activation.bits: expected an integer, got float '8.5'"},
    {"version: 1\nquantize: {activation: {bits: \"8\"}}\n",
     "t.yaml:2:31: quantize.activation.bits: expected an integer, got string '8'"},
    {"version: 1\nquantize: {weight: {symmetric: yes}}\n",
     "t.yaml:2:32: quantize.weight.symmetric: expected a boolean (true or false), got string "
     "'yes'"},
    {"version: 1\nquantize: {weight: {per_channel: 1}}\n",
     "t.yaml:2:34: quantize.weight.per_channel: expected a boolean (true or false), got "
     "integer '1'"},
    {"version: 1\nquantize: {activation: {observer: [minmax]}}\n",
     "t.yaml:2:35: quantize.activation.observer: expected a string, got a list"},
    {"version: 1\nquantize: {activation: {observer: 8}}\n",
     "t.yaml:2:35: quantize.activation.observer: expected a string, got integer '8'"},
    {"version: 1\nquantize: {activation: {observer: \"\"}}\n",
     "t.yaml:2:35: quantize.activation.observer: must not be empty"},
    {"version: 1\nquantize: {weight: {quantizer_args: [1, 2]}}\n",
     "t.yaml:2:37: quantize.weight.quantizer_args: expected a mapping, got a list"},
    {"version: 1\nquantize: {weight: 8}\n",
     "t.yaml:2:20: quantize.weight: expected a mapping (observer, bits, symmetric, ...), got "
     "integer '8'"},
    {"version: 1\nnodes: {conv1: true}\n",
     "t.yaml:2:16: nodes.conv1: expected a mapping (activation, weight, skip), got boolean "
     "'true'"},
    {"version: 1\nnodes: [conv1]\n",
     "t.yaml:2:8: nodes: expected a mapping of node names to rules, got a list"},
    {"version: 1\nop_types: Conv\n",
     "t.yaml:2:11: op_types: expected a mapping of op types to rules, got string 'Conv'"},
    {"version: 1\nbackend: [a, b]\n", "t.yaml:2:10: backend: expected a string, got a list"},
    {"version: 1\nbackend_options: bayes\n",
     "t.yaml:2:18: backend_options: expected a mapping, got string 'bayes'"},
    {"version: 1\nfusions: {conv_bn: true}\n",
     "t.yaml:2:10: fusions: expected a list of names, got a mapping"},
    {"version: 1\nfusions:\n",
     "t.yaml:2:9: fusions: expected a list of fusion names (`[]` for none), got null"},
    {"version: 1\nfusions: [conv_bn, 3]\n",
     "t.yaml:2:20: fusions[1]: expected a string, got integer '3'"},
    {"version: 1\nplugin_path: [\"\"]\n", "t.yaml:2:15: plugin_path[0]: must not be empty"},
    {"version: 1\ncalibration: 16\n",
     "t.yaml:2:14: calibration: expected a mapping (batch_size, batch_num), got integer '16'"},
    {"version: 1\nquantize: {skip: maybe}\n",
     "t.yaml:2:18: quantize.skip: expected a boolean (true or false), got string 'maybe'"},
    {"version: 1\nquantize: {activation: {bits: !!int eight}}\n",
     "t.yaml:2:31: quantize.activation.bits: 'eight' is not a valid integer"},
    {"version: 1\nquantize: {activation: {bits: !custom 8}}\n",
     "t.yaml:2:31: quantize.activation.bits: unsupported tag `!custom`"},
    /* out of range */
    {"version: 1\nquantize:\n  weight: {bits: 17}\n",
     "t.yaml:3:18: quantize.weight.bits: 17 is outside 2..16"},
    {"version: 1\nquantize: {activation: {bits: 1}}\n",
     "t.yaml:2:31: quantize.activation.bits: 1 is outside 2..16"},
    {"version: 1\nnodes: {x: {weight: {bits: -8}}}\n",
     "t.yaml:2:28: nodes.x.weight.bits: -8 is outside 2..16"},
    {"version: 1\ncalibration:\n  batch_size: -4\n",
     "t.yaml:3:15: calibration.batch_size: -4 must be >= 1"},
    {"version: 1\ncalibration: {batch_num: 0}\n",
     "t.yaml:2:26: calibration.batch_num: 0 must be >= 1"},
    {"version: 1\ncalibration: {batch_size: 99999999999999999999}\n",
     "t.yaml:2:27: calibration.batch_size: 99999999999999999999 is too large (at most "
     "2147483647)"},
    {"version: 1\nbackend_options: {n: 99999999999999999999}\n",
     "t.yaml:2:22: backend_options.n: 99999999999999999999 does not fit in a 64-bit integer"},
    /* duplicates, at any level */
    {"version: 1\nbackend: a\nversion: 1\n",
     "t.yaml:3:1: duplicate key `version` (first given at line 1, column 1)"},
    {"version: 1\nquantize:\n  weight: {bits: 4, symmetric: true, bits: 8}\n",
     "t.yaml:3:38: quantize.weight: duplicate key `bits` (first given at line 3, column 12)"},
    {"version: 1\nnodes:\n  a: {skip: true}\n  b: {}\n  a: {}\n",
     "t.yaml:5:3: nodes: duplicate key `a` (first given at line 3, column 3)"},
    {"version: 1\nbackend_options: {march: bayes, opt: {x: 1, x: 2}}\n",
     "t.yaml:2:45: backend_options.opt: duplicate key `x` (first given at line 2, column 39)"},
    {"version: 1\nfusions: [conv_bn, conv_relu, conv_bn]\n",
     "t.yaml:2:31: fusions: `conv_bn` is listed twice"},
    /* keys that are not names */
    {"version: 1\nnodes: {[a, b]: {}}\n",
     "t.yaml:2:9: nodes: keys must be plain names, got a list"},
    {"version: 1\nop_types: {\"\": {}}\n", "t.yaml:2:12: op_types: empty op type"},
    {"version: 1\nbackend: \"a\\0b\"\n", "t.yaml:2:10: backend: text contains a NUL character"},
    {"version: 1\nnodes: {\"a\\nb\": {weight: {bits: 1}}}\n",
     "t.yaml:2:33: nodes.a?b.weight.bits: 1 is outside 2..16"},
    {"version: 1\nquantize: {weight: {activation: {}}}\n",
     "t.yaml:2:21: unknown key `activation` in quantize.weight; known keys: observer, "
     "observer_args, quantizer, quantizer_args, bits, symmetric, per_channel"},
    /* aliases cannot blow up */
    {"version: 1\nbackend_options: &a {x: *a}\n",
     "t.yaml:2:18: backend_options.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x."
     "x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x: nested deeper "
     "than 64 levels (a recursive alias?)"},
};

START_TEST(test_errors)
{
    expect_error(err_cases[_i].text, QK_EINVAL, err_cases[_i].msg);
}
END_TEST

START_TEST(test_alias_bomb)
{
    /* 10^6 values if expanded: refused long before. */
    const char *text = "version: 1\n"
                       "backend_options:\n"
                       "  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
                       "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "  f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    qk_config *c = NULL;
    qk_err e = {0};
    ck_assert_int_eq(config_parse_string(text, "t.yaml", &c, &e), QK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(e.msg, "more than 100000 values") != NULL, "%s", e.msg);

    /* Aliases in moderation are fine, and copy what they point to. */
    c = parse_ok("version: 1\n"
                 "quantize:\n"
                 "  activation: &act {observer: percentile, observer_args: {percentile: 99}}\n"
                 "op_types:\n"
                 "  Conv: {activation: *act}\n");
    ck_assert_str_eq(c->op_types[0].activation.observer.value, "percentile");
    ck_assert_int_eq(c->op_types[0].activation.observer.at.line, 3);
    config_free(c);
}
END_TEST

START_TEST(test_typo_in_file)
{
    qk_config *c = (qk_config *)1;
    qk_err e = {0};
    const char *path = CFG_DIR "/typo.yaml";
    ck_assert_int_eq(config_load(path, &c, &e), QK_EINVAL);
    ck_assert_ptr_null(c);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:5:45: unknown key `per_chanel` in quantize.weight; did you mean `per_channel`?",
             path);
    ck_assert_str_eq(e.msg, want);
    ck_assert(strstr(e.msg, ":5:45:") && strstr(e.msg, "did you mean `per_channel`"));
}
END_TEST

START_TEST(test_load_errors)
{
    qk_config *c = (qk_config *)1;
    qk_err e = {0};
    ck_assert_int_eq(config_load(CFG_DIR "/no-such-file.yaml", &c, &e), QK_EIO);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e.msg, CFG_DIR "/no-such-file.yaml: cannot open: No such file or directory");

    c = (qk_config *)1;
    ck_assert_int_eq(config_load(CFG_DIR "/empty.yaml", &c, &e), QK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e.msg, CFG_DIR "/empty.yaml:1:1: the configuration is empty; it needs at "
                                    "least `version: 1`");

    c = (qk_config *)1;
    ck_assert_int_eq(config_load(CFG_DIR, &c, &e), QK_EIO);
    ck_assert_ptr_null(c);

    c = (qk_config *)1;
    ck_assert_int_eq(config_parse_string("version: 1\nbits: 3\n", NULL, &c, &e), QK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert(strncmp(e.msg, "<string>:2:1: unknown key `bits`", 32) == 0);
    config_free(NULL);
}
END_TEST

START_TEST(test_duplicate_in_many_nodes)
{
    /* The duplicate check sorts: make sure it still names the first
     * duplicate in file order among many keys. */
    enum { N = 3000 };
    size_t cap = N * 40 + 64;
    char *text = malloc(cap);
    size_t len = (size_t)snprintf(text, cap, "version: 1\nnodes:\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "  n%d: {skip: true}\n",
                                i == N - 1 ? 17 : i);
    /* Key i is on line 3 + i: n17 first on line 20, again on line 3002. */
    qk_config *c = NULL;
    qk_err e = {0};
    ck_assert_int_eq(config_parse_string(text, "t.yaml", &c, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:3002:3: nodes: duplicate key `n17` (first given at line 20, "
                            "column 3)");
    free(text);

    /* And without a duplicate, all of them load. */
    text = malloc(cap);
    len = (size_t)snprintf(text, cap, "version: 1\nnodes:\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "  n%d: {skip: true}\n", i);
    c = parse_ok(text);
    ck_assert_uint_eq(c->n_nodes, N);
    ck_assert_ptr_eq(config_find_node(c, "n2999"), &c->nodes[2999]);
    config_free(c);
    free(text);
}
END_TEST

/* ---- plugin-argument maps ----------------------------------------------------------- */

static const char maps_yaml[] =
    "version: 1\n"
    "backend_options:\n"
    "  march: bayes\n"                       /* 3 */
    "  threads: 4\n"                         /* 4 */
    "  scale: 0.5\n"                         /* 5 */
    "  exact: true\n"                        /* 6 */
    "  hex: 0x1f\n"                          /* 7 */
    "  quoted: \"42\"\n"                     /* 8 */
    "  nothing: ~\n"                         /* 9 */
    "  big: -1e3\n"                          /* 10 */
    "  inf: .inf\n"                          /* 11 */
    "  shape: [1, 3, 224, 224]\n"            /* 12 */
    "  sub: {a: 1, b: [x, {c: false}]}\n"    /* 13 */
    "  word: yes\n";                         /* 14 */

START_TEST(test_map_access)
{
    qk_config *c = parse_ok(maps_yaml);
    const cfg_map *m = &c->backend_options.value;
    qk_err e = {0};
    int64_t i = -1;
    double f = -1;
    bool b = false;
    const char *s = NULL;
    const cfg_map *sub = NULL;

    ck_assert_uint_eq(cfg_map_count(m), 12);
    const char *keys[] = {"march", "threads", "scale", "exact", "hex", "quoted",
                          "nothing", "big", "inf", "shape", "sub", "word"};
    for (size_t k = 0; k < 12; k++)
        ck_assert_str_eq(cfg_map_key(m, k), keys[k]);
    ck_assert_ptr_null(cfg_map_key(m, 12));
    ck_assert_str_eq(m->path, "backend_options");
    ck_assert_int_eq(m->line, 3);

    ck_assert_int_eq(cfg_map_get_str(m, "march", &s, &e), 1);
    ck_assert_str_eq(s, "bayes");
    ck_assert_int_eq(cfg_map_get_int(m, "threads", &i, &e), 1);
    ck_assert_int_eq(i, 4);
    ck_assert_int_eq(cfg_map_get_float(m, "threads", &f, &e), 1); /* int widens */
    ck_assert_double_eq(f, 4.0);
    ck_assert_int_eq(cfg_map_get_float(m, "scale", &f, &e), 1);
    ck_assert_double_eq(f, 0.5);
    ck_assert_int_eq(cfg_map_get_bool(m, "exact", &b, &e), 1);
    ck_assert(b);
    ck_assert_int_eq(cfg_map_get_int(m, "hex", &i, &e), 1);
    ck_assert_int_eq(i, 31);
    ck_assert_int_eq(cfg_map_get_str(m, "quoted", &s, &e), 1);
    ck_assert_str_eq(s, "42");
    ck_assert_int_eq(cfg_map_find(m, "nothing")->value.type, CFG_NULL);
    ck_assert_int_eq(cfg_map_get_float(m, "big", &f, &e), 1);
    ck_assert_double_eq(f, -1000.0);
    ck_assert_int_eq(cfg_map_get_float(m, "inf", &f, &e), 1);
    ck_assert(f > 1e308);

    const cfg_entry *shape = cfg_map_find(m, "shape");
    ck_assert_int_eq(shape->value.type, CFG_LIST);
    ck_assert_uint_eq(shape->value.u.list.n, 4);
    ck_assert_int_eq(shape->value.u.list.items[3].u.i, 224);
    ck_assert_int_eq(shape->line, 12);
    ck_assert_int_eq(shape->column, 3);
    ck_assert_int_eq(shape->value.column, 10);

    ck_assert_int_eq(cfg_map_get_map(m, "sub", &sub, &e), 1);
    ck_assert_str_eq(sub->path, "backend_options.sub");
    ck_assert_int_eq(cfg_map_get_int(sub, "a", &i, &e), 1);
    ck_assert_int_eq(i, 1);
    const cfg_value *bl = &cfg_map_find(sub, "b")->value;
    ck_assert_int_eq(bl->type, CFG_LIST);
    ck_assert_str_eq(bl->u.list.items[0].u.s, "x");
    ck_assert_int_eq(bl->u.list.items[1].type, CFG_MAP);
    ck_assert_str_eq(bl->u.list.items[1].u.map.path, "backend_options.sub.b[1]");
    ck_assert_int_eq(cfg_map_get_bool(&bl->u.list.items[1].u.map, "c", &b, &e), 1);
    ck_assert(!b);

    /* absent: 0, out untouched; NULL map: absent */
    i = 77;
    ck_assert_int_eq(cfg_map_get_int(m, "missing", &i, &e), 0);
    ck_assert_int_eq(i, 77);
    ck_assert_int_eq(cfg_map_get_int(NULL, "threads", &i, &e), 0);
    ck_assert_int_eq(cfg_map_get_map(m, "nothing", &sub, &e), 0);
    ck_assert_uint_eq(cfg_map_count(NULL), 0);

    /* wrong types name the place */
    ck_assert_int_eq(cfg_map_get_int(m, "march", &i, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:3:10: backend_options.march: expected an integer, got "
                            "string 'bayes'");
    ck_assert_int_eq(cfg_map_get_int(m, "scale", &i, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:5:10: backend_options.scale: expected an integer, got "
                            "float '0.5'");
    ck_assert_int_eq(cfg_map_get_bool(m, "word", &b, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:14:9: backend_options.word: expected a boolean (true or "
                            "false), got string 'yes'");
    ck_assert_int_eq(cfg_map_get_str(m, "threads", &s, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:4:12: backend_options.threads: expected a string, got "
                            "integer '4'");
    ck_assert_int_eq(cfg_map_get_float(m, "shape", &f, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:12:10: backend_options.shape: expected a number, got a "
                            "list");
    ck_assert_int_eq(cfg_map_get_map(m, "exact", &sub, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:6:10: backend_options.exact: expected a mapping, got "
                            "boolean 'true'");
    ck_assert_int_eq(cfg_map_get_str(m, "nothing", &s, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:9:12: backend_options.nothing: expected a string, got null");

    /* plugins report their own range errors at the value */
    ck_assert_int_eq(cfg_map_fail(m, "threads", &e, QK_EINVAL, "%d is more than %d", 4, 2),
                     QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:4:12: backend_options.threads: 4 is more than 2");
    ck_assert_int_eq(cfg_map_fail(m, "missing", &e, QK_EINVAL, "is required"), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:3:3: backend_options: is required");

    ck_assert_str_eq(cfg_type_name(CFG_FLOAT), "float");
    config_free(c);
}
END_TEST

START_TEST(test_map_check_keys)
{
    qk_config *c = parse_ok("version: 1\n"
                            "quantize:\n"
                            "  activation:\n"
                            "    observer: percentile\n"
                            "    observer_args: {percentile: 99.9, bnis: 2048}\n");
    const cfg_map *m = &c->quantize.activation.observer_args.value;
    qk_err e = {0};
    const char *const percentile_keys[] = {"percentile", "bins", NULL};
    const char *const other_keys[] = {"momentum", "warmup", NULL};

    ck_assert_int_eq(cfg_map_check_keys(m, percentile_keys, "observer_args of percentile", &e),
                     QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:5:39: unknown key `bnis` in observer_args of percentile; "
                            "did you mean `bins`?");
    ck_assert_int_eq(cfg_map_check_keys(m, other_keys, NULL, &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:5:21: unknown key `percentile` in "
                            "quantize.activation.observer_args; known keys: momentum, warmup");
    ck_assert_int_eq(cfg_map_check_keys(m, NULL, "observer_args of minmax", &e), QK_EINVAL);
    ck_assert_str_eq(e.msg, "t.yaml:5:21: unknown key `percentile` in observer_args of minmax; "
                            "observer_args of minmax takes no keys");
    const char *const all_keys[] = {"percentile", "bins", "bnis", NULL};
    ck_assert_int_eq(cfg_map_check_keys(m, all_keys, NULL, &e), 0);
    ck_assert_int_eq(cfg_map_check_keys(NULL, NULL, NULL, &e), 0);

    /* The empty map of an unset field and of defaults accepts any list. */
    qk_resolved_rule r;
    config_resolve(c, "Conv", "c", &r);
    ck_assert_int_eq(cfg_map_check_keys(r.weight.quantizer_args, NULL, "round", &e), 0);
    ck_assert_int_eq(cfg_map_check_keys(&c->quantize.weight.observer_args.value, NULL, NULL, &e),
                     0);
    config_free(c);
}
END_TEST

/* ---- plugin_path ------------------------------------------------------------------------ */

START_TEST(test_plugin_path_relative_to_file)
{
    qk_config *c = NULL;
    qk_err e = {0};
    ck_assert_msg(config_load(CFG_DIR "/plugin_path.yaml", &c, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(c->n_plugin_path, 4);
    ck_assert_str_eq(c->plugin_path[0], CFG_DIR "/plugins");
    ck_assert_str_eq(c->plugin_path[1], CFG_DIR "/more");
    ck_assert_str_eq(c->plugin_path[2], "/opt/quantkit/plugins");
    ck_assert_str_eq(c->plugin_path[3], CFG_DIR "/../shared");
    config_free(c);

    /* A relative config path: the folder is made absolute at load time. */
    ck_assert_int_eq(chdir(TEST_DATA_DIR), 0);
    ck_assert_msg(config_load("config/plugin_path.yaml", &c, &e) == 0, "%s", e.msg);
    char cwd[PATH_MAX], want[PATH_MAX + 64];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/config/plugins", cwd);
    ck_assert_str_eq(c->plugin_path[0], want);
    config_free(c);
    ck_assert_int_eq(chdir("config"), 0);
    ck_assert_msg(config_load("plugin_path.yaml", &c, &e) == 0, "%s", e.msg);
    snprintf(want, sizeof want, "%s/config/more", cwd);
    ck_assert_str_eq(c->plugin_path[1], want);
    config_free(c);

    /* From a string there is no file: entries stay as written. */
    c = parse_ok("version: 1\nplugin_path: [plugins, /abs]\n");
    ck_assert_str_eq(c->plugin_path[0], "plugins");
    ck_assert_str_eq(c->plugin_path[1], "/abs");
    config_free(c);
    c = parse_ok("version: 1\nplugin_path: one/dir\n");
    ck_assert_uint_eq(c->n_plugin_path, 1);
    ck_assert_str_eq(c->plugin_path[0], "one/dir");
    config_free(c);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------------------ */

START_TEST(test_alloc_failures)
{
    /* Fail allocation 1, 2, 3, ... until loading succeeds: every failure
     * must come back as QK_ENOMEM with nothing leaked (run under ASan). */
    const char *files[] = {CFG_DIR "/design_example.yaml", CFG_DIR "/plugin_path.yaml"};
    for (size_t f = 0; f < 2; f++) {
        int n;
        for (n = 1; n < 10000; n++) {
            qk_config *c = (qk_config *)1;
            qk_err e = {0};
            config_fail_alloc_after(n);
            int rc = config_load(files[f], &c, &e);
            config_fail_alloc_after(0);
            if (rc == 0) {
                ck_assert_ptr_nonnull(c);
                config_free(c);
                break;
            }
            ck_assert_msg(rc == QK_ENOMEM, "n=%d: %d %s", n, rc, e.msg);
            ck_assert_ptr_null(c);
            ck_assert(strstr(e.msg, "out of memory") != NULL);
        }
        ck_assert_int_gt(n, 10);
    }
    /* The same for the typed maps and a failing parse. */
    for (int n = 1; n < 10000; n++) {
        qk_config *c = NULL;
        qk_err e = {0};
        config_fail_alloc_after(n);
        int rc = config_parse_string(maps_yaml, "t.yaml", &c, &e);
        config_fail_alloc_after(0);
        config_free(c);
        if (rc == 0)
            break;
        ck_assert_int_eq(rc, QK_ENOMEM);
    }
    for (int n = 1; n < 10000; n++) {
        qk_config *c = NULL;
        qk_err e = {0};
        config_fail_alloc_after(n);
        int rc = config_parse_string(precedence_yaml, "t.yaml", &c, &e);
        config_fail_alloc_after(0);
        config_free(c);
        if (rc == 0)
            break;
        ck_assert_int_eq(rc, QK_ENOMEM);
    }
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("load");
    tcase_add_test(t, test_design_example);
    tcase_add_test(t, test_defaults);
    tcase_add_test(t, test_typo_in_file);
    tcase_add_test(t, test_load_errors);
    tcase_add_test(t, test_plugin_path_relative_to_file);
    tcase_add_test(t, test_alloc_failures);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_loop_test(t, test_errors, 0, (int)(sizeof err_cases / sizeof err_cases[0]));
    tcase_add_test(t, test_alias_bomb);
    tcase_add_test(t, test_duplicate_in_many_nodes);
    suite_add_tcase(s, t);
    t = tcase_create("resolve");
    tcase_add_test(t, test_resolve_without_config);
    tcase_add_test(t, test_resolve_precedence);
    tcase_add_test(t, test_resolve_skip);
    suite_add_tcase(s, t);
    t = tcase_create("maps");
    tcase_add_test(t, test_map_access);
    tcase_add_test(t, test_map_check_keys);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
