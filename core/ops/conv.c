/* This file implements the conv kernels (placeholder: no ops yet). */
#include "ops.h"

const op_def ops_conv[] = {{NULL, NULL, NULL}};
const int ops_conv_count = 0;
