/* This file implements the runtime tensor: a typed, shaped, dense, row-major
 * buffer.  Kernels see only this struct; the graph IR (ir.h) adds names and
 * producers on top. */
#ifndef QK_CORE_TENSOR_H
#define QK_CORE_TENSOR_H
#include <stdint.h>
#include <stddef.h>
#include "dtype.h"

#define XT_MAX_RANK 8

typedef struct xt {
    int dtype;                   /* enum dtype */
    int rank;                    /* -1: unknown rank (static inference only) */
    int64_t dims[XT_MAX_RANK];   /* -1: unknown dimension (static inference only) */
    void *data;                  /* NULL when the value is not known (yet) */
} xt;

/* Number of elements; 1 for a scalar (rank 0).  -1 if any dim is unknown. */
int64_t xt_numel(const xt *t);
/* Bytes of the data buffer, -1 if unknown. */
int64_t xt_nbytes(const xt *t);
/* True when rank and every dim are known. */
int xt_shape_known(const xt *t);
/* Writes "[1,3,224,224]" (or "[?]" style for unknown) into buf. */
const char *xt_shape_str(const xt *t, char *buf, size_t len);
/* Row-major strides in elements for t's dims. */
void xt_strides(const xt *t, int64_t *strides);
/* Reads element i of an integer tensor (int8..int64, uint8.., bool) as int64. */
int64_t xt_get_i64(const xt *t, int64_t i);
/* Reads element i of any numeric tensor as double. */
double xt_get_f64(const xt *t, int64_t i);
/* Writes element i of any numeric tensor from double (integers: truncation
 * toward zero like a C cast; bool: v != 0). */
void xt_set_f64(xt *t, int64_t i, double v);
/* Writes element i of any numeric tensor from int64. */
void xt_set_i64(xt *t, int64_t i, int64_t v);

#endif
