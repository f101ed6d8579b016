/* This file implements the Check tests of the quantization arithmetic
 * (qparams.c) and record files (record.c), and runs the report writer's
 * suite (test_report.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "onnx_io.h"
#include "plan.h"
#include "qparams.h"
#include "quant_suites.h"
#include "record.h"

static qk_quant_spec spec(int bits, int sym, int is_signed, int narrow)
{
    return (qk_quant_spec){sizeof(qk_quant_spec), bits, sym, is_signed, narrow, 0, 0, 0};
}

START_TEST(test_int_ranges)
{
    int32_t lo, hi;
    qk_quant_spec s = spec(8, 1, 1, 1);
    qparams_int_range(&s, &lo, &hi);
    ck_assert(lo == -127 && hi == 127);
    s = spec(8, 0, 0, 0);
    qparams_int_range(&s, &lo, &hi);
    ck_assert(lo == 0 && hi == 255);
    s = spec(4, 1, 1, 0);
    qparams_int_range(&s, &lo, &hi);
    ck_assert(lo == -8 && hi == 7);
    s = spec(16, 0, 1, 0);
    qparams_int_range(&s, &lo, &hi);
    ck_assert(lo == -32768 && hi == 32767);
}
END_TEST

START_TEST(test_asymmetric_range)
{
    qk_quant_spec s = spec(8, 0, 0, 0);
    qk_qparams q;
    qk_err err = {0};
    float lo = -1, hi = 3;
    ck_assert(qparams_from_range(&s, 1, &lo, &hi, &q, "t", &err) == QK_OK);
    ck_assert_float_eq_tol(q.scale[0], 4.0f / 255, 1e-7);
    ck_assert_int_eq(q.zero_point[0], 64);   /* round(1 / (4/255)) = round(63.75) */
    /* Zero is exact: quantize(0) dequantizes to 0. */
    ck_assert_float_eq(qk_dequantize_one(qk_quantize_one(0.f, q.scale[0], q.zero_point[0], q.qmin, q.qmax),
                                         q.scale[0], q.zero_point[0]), 0.f);
    qparams_free(&q);
    /* A range away from zero is widened to include it. */
    lo = 2, hi = 5;
    ck_assert(qparams_from_range(&s, 1, &lo, &hi, &q, "t", &err) == QK_OK);
    ck_assert_int_eq(q.zero_point[0], 0);
    ck_assert_float_eq_tol(q.scale[0], 5.0f / 255, 1e-7);
    qparams_free(&q);
}
END_TEST

START_TEST(test_symmetric_per_channel)
{
    qk_quant_spec s = spec(8, 1, 1, 1);
    s.per_channel = 1;
    qk_qparams q;
    qk_err err = {0};
    float lo[3] = {-2, 0, 0}, hi[3] = {1, 0.5f, 0};
    ck_assert(qparams_from_range(&s, 3, lo, hi, &q, "w", &err) == QK_OK);
    ck_assert_int_eq(q.count, 3);
    ck_assert_float_eq_tol(q.scale[0], 2.0f / 127, 1e-7);
    ck_assert_float_eq_tol(q.scale[1], 0.5f / 127, 1e-7);
    ck_assert_float_eq(q.scale[2], 1.0f);   /* an all-zero channel */
    for (int c = 0; c < 3; c++) ck_assert_int_eq(q.zero_point[c], 0);
    qparams_free(&q);
}
END_TEST

START_TEST(test_bad_ranges)
{
    qk_qparams q;
    qk_err err = {0};
    qk_quant_spec s = spec(8, 0, 0, 0);
    float lo = NAN, hi = 1;
    ck_assert(qparams_from_range(&s, 1, &lo, &hi, &q, "act 'x'", &err) == QK_EINVAL);
    ck_assert_msg(strstr(err.msg, "act 'x'"), "%s", err.msg);
    lo = 0, hi = INFINITY;
    ck_assert(qparams_from_range(&s, 1, &lo, &hi, &q, "x", &err) == QK_EINVAL);
    s.bits = 1;
    lo = 0, hi = 1;
    ck_assert(qparams_from_range(&s, 1, &lo, &hi, &q, "x", &err) == QK_EINVAL);
    ck_assert_msg(strstr(err.msg, "bits"), "%s", err.msg);
}
END_TEST

START_TEST(test_round_half_even_and_clamp)
{
    ck_assert_int_eq(qk_quantize_one(2.5f, 1.f, 0, -128, 127), 2);
    ck_assert_int_eq(qk_quantize_one(3.5f, 1.f, 0, -128, 127), 4);
    ck_assert_int_eq(qk_quantize_one(-2.5f, 1.f, 0, -128, 127), -2);
    ck_assert_int_eq(qk_quantize_one(1000.f, 1.f, 0, -128, 127), 127);
    ck_assert_int_eq(qk_quantize_one(-1000.f, 1.f, 10, 0, 255), 0);
    ck_assert_int_eq(qk_quantize_one(NAN, 1.f, 0, -8, 7), -8);
}
END_TEST

START_TEST(test_sqnr)
{
    float ref[4] = {1, -1, 1, -1}, test[4] = {1.1f, -1.1f, 0.9f, -0.9f};
    sqnr_acc a = {0};
    ck_assert(isnan(sqnr_db(&a)));
    sqnr_add(&a, ref, test, 2);
    sqnr_add(&a, ref + 2, test + 2, 2);   /* accumulates over batches */
    ck_assert_double_eq_tol(sqnr_db(&a), 20.0, 1e-4);   /* noise 0.01 per element */
    sqnr_acc b = {0};
    sqnr_add(&b, ref, ref, 4);
    ck_assert(isinf(sqnr_db(&b)) && sqnr_db(&b) > 0);
}
END_TEST

Suite *qparams_suite(void)
{
    Suite *s = suite_create("qparams");
    TCase *tc = tcase_create("arithmetic");
    tcase_add_test(tc, test_int_ranges);
    tcase_add_test(tc, test_asymmetric_range);
    tcase_add_test(tc, test_symmetric_per_channel);
    tcase_add_test(tc, test_bad_ranges);
    tcase_add_test(tc, test_round_half_even_and_clamp);
    tcase_add_test(tc, test_sqnr);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- record files ---------------------------------------------------------- */

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/qk_rec_XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_record_round_trip)
{
    qk_err err = {0};
    ir_graph *g;
    qk_config *cfg;
    quant_plan *p;
    static const char *const ops[] = {"Conv", "Gemm", NULL};
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/digits_cnn.onnx", &g, &err) == QK_OK, "%s", err.msg);
    ck_assert(config_parse_string("version: 1\n", NULL, &cfg, &err) == QK_OK);
    ck_assert(plan_build(g, cfg, ops, NULL, &p, &err) == QK_OK);
    ck_assert_int_gt(p->n, 3);
    qk_qparams *qp = calloc((size_t)p->n, sizeof *qp);
    for (int i = 0; i < p->n; i++) {
        int64_t n = p->entries[i].axis >= 0 ? 3 : 1;
        ck_assert(qparams_alloc(&qp[i], n, p->entries[i].axis) == QK_OK);
        for (int64_t c = 0; c < n; c++) {
            qp[i].scale[c] = 0.1234567f * (float)(i + 1) / (float)(c + 3);
            qp[i].zero_point[c] = (int32_t)(i * 7 % 256);
        }
        qp[i].qmin = -127 - i;
        qp[i].qmax = 127 + i;
    }
    char path[] = "/tmp/qk_rec_rt_XXXXXX";
    close(mkstemp(path));
    ck_assert_msg(record_write(path, "model \"quoted\".onnx", g, p, qp, &err) == QK_OK, "%s", err.msg);
    record *r;
    ck_assert_msg(record_load(path, &r, &err) == QK_OK, "%s", err.msg);
    int written = 0;
    for (int i = 0; i < p->n; i++) {
        if (p->entries[i].role == PLAN_BIAS) {
            ck_assert_ptr_null(record_find(r, g->values[p->entries[i].value].name));
            continue;
        }
        written++;
        const record_entry *e = record_find(r, g->values[p->entries[i].value].name);
        ck_assert_msg(e != NULL, "missing %s", g->values[p->entries[i].value].name);
        ck_assert_int_eq(e->qp.count, qp[i].count);
        ck_assert_int_eq(e->qp.axis, qp[i].axis);
        ck_assert_int_eq(e->qp.qmin, qp[i].qmin);
        ck_assert_int_eq(e->qp.qmax, qp[i].qmax);
        for (int64_t c = 0; c < e->qp.count; c++) {
            ck_assert(e->qp.scale[c] == qp[i].scale[c]);   /* %.9g round-trips a float exactly */
            ck_assert_int_eq(e->qp.zero_point[c], qp[i].zero_point[c]);
        }
    }
    ck_assert_int_eq(r->n, written);
    record_free(r);
    for (int i = 0; i < p->n; i++) qparams_free(&qp[i]);
    free(qp);
    unlink(path);
    plan_free(p);
    config_free(cfg);
    ir_free(g);
}
END_TEST

static void expect_record_error(const char *text, const char *needle)
{
    qk_err err = {0};
    record *r = NULL;
    char *path = write_tmp(text);
    ck_assert_int_ne(record_load(path, &r, &err), QK_OK);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err.msg, needle) && strstr(err.msg, path), "'%s' lacks '%s'", err.msg, needle);
    unlink(path);
}

START_TEST(test_record_errors)
{
    const char *head = "version: 1\ntensors:\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s  x: {role: activation, bits: 8, qmin: 0, qmax: 255, scale: [0.1], zp: [0]}\n", head);
    expect_record_error(buf, ":3:");
    snprintf(buf, sizeof buf, "%s  x: {role: activation, bits: 8, qmin: 0, qmax: 255, scale: [-1], zero_point: [0]}\n", head);
    expect_record_error(buf, "positive");
    snprintf(buf, sizeof buf, "%s  x: {role: activation, bits: 8, qmin: 0, qmax: 255, scale: [1, 2], zero_point: [0]}\n", head);
    expect_record_error(buf, "differ in length");
    snprintf(buf, sizeof buf, "%s  x: {role: act, bits: 8, qmin: 0, qmax: 255, scale: [1], zero_point: [0]}\n", head);
    expect_record_error(buf, "role");
    snprintf(buf, sizeof buf, "%s  x: {bits: 8, qmin: 0, qmax: 255, scale: [1], zero_point: [0]}\n"
                              "  x: {bits: 8, qmin: 0, qmax: 255, scale: [1], zero_point: [0]}\n", head);
    expect_record_error(buf, "twice");
    expect_record_error("version: 2\ntensors: {}\n", "version");
    expect_record_error("version: 1\ntensors: [\n", "record");
    expect_record_error("- a\n- b\n", "mapping");
    qk_err err = {0};
    record *r;
    ck_assert_int_ne(record_load("/nonexistent/rec.yaml", &r, &err), QK_OK);
    ck_assert_msg(strstr(err.msg, "/nonexistent/rec.yaml"), "%s", err.msg);
}
END_TEST

Suite *record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("files");
    tcase_add_test(tc, test_record_round_trip);
    tcase_add_test(tc, test_record_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(qparams_suite());
    srunner_add_suite(r, record_suite());
    srunner_add_suite(r, report_suite());
    srunner_run_all(r, CK_NORMAL);
    int f = srunner_ntests_failed(r);
    srunner_free(r);
    return f ? EXIT_FAILURE : EXIT_SUCCESS;
}
