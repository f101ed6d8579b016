/* This file implements the binary kernels (placeholder: no ops yet). */
#include "ops.h"

const op_def ops_binary[] = {{NULL, NULL, NULL}};
const int ops_binary_count = 0;
