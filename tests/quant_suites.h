/* This file implements the list of Check suites in tests/test_quant. */
#ifndef QK_TESTS_QUANT_SUITES_H
#define QK_TESTS_QUANT_SUITES_H
#include <check.h>
Suite *qparams_suite(void);
Suite *record_suite(void);
Suite *report_suite(void);
#endif
