/* This file implements the plugin view of tensors: an opaque handle read
 * through host->tensor.  Element types use ONNX's TensorProto.DataType
 * numbers so they need no translation. */
#ifndef QUANTKIT_TENSOR_H
#define QUANTKIT_TENSOR_H
#include <stddef.h>
#include <stdint.h>

typedef enum qk_dtype {
    QK_DTYPE_UNDEFINED = 0,
    QK_DTYPE_FLOAT = 1,
    QK_DTYPE_UINT8 = 2,
    QK_DTYPE_INT8 = 3,
    QK_DTYPE_UINT16 = 4,
    QK_DTYPE_INT16 = 5,
    QK_DTYPE_INT32 = 6,
    QK_DTYPE_INT64 = 7,
    QK_DTYPE_BOOL = 9,
    QK_DTYPE_DOUBLE = 11,
} qk_dtype;

#define QK_MAX_RANK 8

/* A tensor: shape, element type and (for constants and observed
 * activations) data.  Owned by the host; a plugin borrows it for the
 * duration of the call it was passed to. */
typedef struct qk_tensor qk_tensor;

/* Host functions on tensors (host->tensor).  `size` is sizeof this struct
 * in the host that built it: a plugin must not call a member whose offset
 * is at or past `size` (tables are append-only). */
typedef struct qk_tensor_api {
    size_t size;
    /* Element type. */
    qk_dtype (*dtype)(const qk_tensor *t);
    /* Rank, or -1 when unknown. */
    int (*rank)(const qk_tensor *t);
    /* Dimension i (0 <= i < rank); -1 when unknown (symbolic batch). */
    int64_t (*dim)(const qk_tensor *t, int i);
    /* Element count, or -1 when a dimension is unknown. */
    int64_t (*numel)(const qk_tensor *t);
    /* Row-major data, or NULL when the value is not known (a non-constant
     * graph value outside calibration).  Borrowed: valid during the call. */
    const void *(*data)(const qk_tensor *t);
    /* Name of the graph value the tensor holds ("" for temporaries). */
    const char *(*name)(const qk_tensor *t);
} qk_tensor_api;

#endif
