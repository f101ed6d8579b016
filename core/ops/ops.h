/* This file implements the list of kernel groups.  Each ops/<group>.c file
 * defines one const table fragment; op_table.c chains them.  Adding an op
 * means adding a row to its group's fragment, nothing else. */
#ifndef QK_CORE_OPS_H
#define QK_CORE_OPS_H
#include "../op.h"

#define OP_GROUPS(X) \
    X(conv) X(matmul) X(pool) X(normalization) X(reduce) X(softmax) \
    X(unary) X(binary) X(shape) X(layout) X(resize) X(quantize)

#define X(g) extern const op_def ops_##g[]; extern const int ops_##g##_count;
OP_GROUPS(X)
#undef X

#endif
