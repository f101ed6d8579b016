/* This file implements the resize kernels (placeholder: no ops yet). */
#include "ops.h"

const op_def ops_resize[] = {{NULL, NULL, NULL}};
const int ops_resize_count = 0;
