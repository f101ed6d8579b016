/* This file implements the runner of quantkit's core unit tests. */
#include <stdlib.h>
#include "suites.h"

int main(void)
{
    SRunner *sr = srunner_create(tensor_suite());
    srunner_add_suite(sr, onnx_io_suite());
    srunner_add_suite(sr, ir_suite());
    srunner_add_suite(sr, executor_suite());
    srunner_add_suite(sr, exec_tail_suite());
    srunner_add_suite(sr, exec_extremes_suite());
    srunner_add_suite(sr, npy_suite());
    srunner_add_suite(sr, sgemm_suite());
    srunner_add_suite(sr, fast_paths_suite());
    srunner_add_suite(sr, conv_direct_suite());
    srunner_add_suite(sr, conv_winograd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
