/* This file implements the quantize kernels (placeholder: no ops yet). */
#include "ops.h"

const op_def ops_quantize[] = {{NULL, NULL, NULL}};
const int ops_quantize_count = 0;
