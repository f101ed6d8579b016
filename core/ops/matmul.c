/* This file implements the matmul kernels (placeholder: no ops yet). */
#include "ops.h"

const op_def ops_matmul[] = {{NULL, NULL, NULL}};
const int ops_matmul_count = 0;
