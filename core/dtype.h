/* This file implements the element types quantkit's executor handles.
 * The numbers are ONNX's TensorProto.DataType values, so a type read from a
 * model needs no translation. */
#ifndef QK_CORE_DTYPE_H
#define QK_CORE_DTYPE_H
#include <stddef.h>

enum dtype {
    DT_UNDEFINED = 0,
    DT_FLOAT = 1,
    DT_UINT8 = 2,
    DT_INT8 = 3,
    DT_UINT16 = 4,
    DT_INT16 = 5,
    DT_INT32 = 6,
    DT_INT64 = 7,
    DT_STRING = 8,
    DT_BOOL = 9,
    DT_FLOAT16 = 10,
    DT_DOUBLE = 11,
    DT_UINT32 = 12,
    DT_UINT64 = 13,
    DT_NON_TENSOR = 1000,   /* quantkit's marker for sequence/map/optional values */
};

/* Bytes per element, or 0 for a type the executor cannot hold in memory
 * (string, float16, complex, ...). */
size_t dtype_size(int dt);
/* ONNX spelling ("float", "int64", ...); "dtype(N)" style for others. */
const char *dtype_name(int dt);
/* True when the executor can compute with this type. */
int dtype_supported(int dt);

#endif
