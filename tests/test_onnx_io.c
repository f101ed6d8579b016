/* This file implements tests of ONNX model I/O: loading, refusing bad files
 * with one clear message, external data, and the load -> save round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "suites.h"
#include "onnx_io.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (len) ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void expect_load_error(const char *path, const char *needle)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    int rc = onnx_load(path, &g, &err);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message '%s' does not name the file", err.msg);
    ck_assert_msg(strchr(err.msg, '\n') == NULL, "message is not one line: '%s'", err.msg);
}

START_TEST(test_refuses_empty_truncated_and_foreign_files)
{
    char path[] = "/tmp/qk_io_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_bytes(path, "", 0);
    expect_load_error(path, "empty");

    size_t len;
    char *model = slurp(TEST_DATA_DIR "/digits_cnn.onnx", &len);
    ck_assert_ptr_nonnull(model);
    write_bytes(path, model, len / 2);
    expect_load_error(path, "not an ONNX model");
    free(model);

    const char text[] = "this is a text file, not a protobuf\n";
    write_bytes(path, text, sizeof text - 1);
    expect_load_error(path, "not an ONNX model");
    unlink(path);
    expect_load_error("/nonexistent/model.onnx", "cannot open");
}
END_TEST

START_TEST(test_unsupported_op_names_op_and_node)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert_int_eq(onnx_load(TEST_DATA_DIR "/unsupported_op.onnx", &g, &err), QK_ENOTSUP);
    ck_assert_msg(strstr(err.msg, "FancyNewOp") && strstr(err.msg, "mystery_node"), "%s", err.msg);
}
END_TEST

/* An unmodified model must serialize to the very bytes it was read from:
 * that is the strongest form of "every field survives". */
static void check_round_trip_bytes(const char *src)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert_msg(onnx_load(src, &g, &err) == QK_OK, "%s", err.msg);
    char out[] = "/tmp/qk_rt_XXXXXX";
    int fd = mkstemp(out);
    close(fd);
    ck_assert_msg(onnx_save(g, out, &err) == QK_OK, "%s", err.msg);
    ir_free(g);
    size_t la, lb;
    char *a = slurp(src, &la), *b = slurp(out, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_msg(memcmp(a, b, la) == 0, "%s: saved bytes differ", src);
    free(a);
    free(b);
    unlink(out);
}

START_TEST(test_round_trip_keeps_every_byte)
{
    check_round_trip_bytes(TEST_DATA_DIR "/fields.onnx");
    check_round_trip_bytes(TEST_DATA_DIR "/digits_cnn.onnx");
    check_round_trip_bytes(TEST_DATA_DIR "/shape_chain_dynamic.onnx");
}
END_TEST

START_TEST(test_round_trip_after_edit_reencodes_initializer)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert(onnx_load(TEST_DATA_DIR "/fields.onnx", &g, &err) == QK_OK);
    int b = ir_find_value(g, "B");
    ck_assert_int_ge(b, 0);
    ((float *)g->values[b].t.data)[0] = 42.0f;
    g->values[b].data_dirty = 1;
    char out[] = "/tmp/qk_rt_XXXXXX";
    close(mkstemp(out));
    ck_assert(onnx_save(g, out, &err) == QK_OK);
    ir_free(g);
    ck_assert_msg(onnx_load(out, &g, &err) == QK_OK, "%s", err.msg);
    b = ir_find_value(g, "B");
    ck_assert_float_eq(((float *)g->values[b].t.data)[0], 42.0f);
    ck_assert_int_eq(g->n_nodes, 2);
    ck_assert_str_eq(node_name(&g->nodes[0]), "fc");
    ir_free(g);
    unlink(out);
}
END_TEST

START_TEST(test_external_data_loads_and_escape_is_refused)
{
    qk_err err = {0};
    ir_graph *g = NULL, *ref = NULL;
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/external/model.onnx", &g, &err) == QK_OK, "%s", err.msg);
    ck_assert(onnx_load(TEST_DATA_DIR "/fields.onnx", &ref, &err) == QK_OK);
    int w = ir_find_value(g, "W"), wr = ir_find_value(ref, "W");
    ck_assert_int_eq(xt_nbytes(&g->values[w].t), 48);
    ck_assert(memcmp(g->values[w].t.data, ref->values[wr].t.data, 48) == 0);
    ir_free(g);
    ir_free(ref);
    expect_load_error(TEST_DATA_DIR "/external/escape.onnx", "escapes the model's folder");
}
END_TEST

START_TEST(test_tensor_file_reads_onnx_test_data)
{
    qk_err err = {0};
    xt t;
    char *name = NULL;
    const char *p = ONNX_TESTDATA "/node/test_relu/test_data_set_0/input_0.pb";
    ck_assert_msg(onnx_read_tensor_file(p, &t, &name, &err) == QK_OK, "%s", err.msg);
    ck_assert_int_eq(t.dtype, DT_FLOAT);
    ck_assert_int_eq(t.rank, 3);
    ck_assert_int_eq(xt_numel(&t), 60);
    free(t.data);
    free(name);
}
END_TEST

Suite *onnx_io_suite(void)
{
    Suite *s = suite_create("onnx_io");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_refuses_empty_truncated_and_foreign_files);
    tcase_add_test(tc, test_unsupported_op_names_op_and_node);
    tcase_add_test(tc, test_round_trip_keeps_every_byte);
    tcase_add_test(tc, test_round_trip_after_edit_reencodes_initializer);
    tcase_add_test(tc, test_external_data_loads_and_escape_is_refused);
    tcase_add_test(tc, test_tensor_file_reads_onnx_test_data);
    suite_add_tcase(s, tc);
    return s;
}
