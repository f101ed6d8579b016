/* This file implements the list of Check suites linked into test_core:
 * one suite per core source file. */
#ifndef QK_TESTS_SUITES_H
#define QK_TESTS_SUITES_H
#include <check.h>

Suite *tensor_suite(void);
Suite *onnx_io_suite(void);
Suite *ir_suite(void);
Suite *executor_suite(void);
Suite *exec_tail_suite(void);
Suite *exec_extremes_suite(void);
Suite *npy_suite(void);
Suite *sgemm_suite(void);
Suite *fast_paths_suite(void);
Suite *conv_direct_suite(void);
Suite *conv_winograd_suite(void);

#endif
