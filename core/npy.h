/* This file implements reading and writing NumPy .npy files (format 1.0-3.0,
 * little-endian, C order), the data format of quantkit's CLI. */
#ifndef QK_CORE_NPY_H
#define QK_CORE_NPY_H
#include "tensor.h"
#include "status.h"

/* Reads a whole .npy file into t (t->data malloc'd, caller frees).
 * Supported dtypes: <f4 <f8 <i1 <u1 <i2 <u2 <i4 <u4 <i8 <u8 |b1.  Fortran order,
 * big-endian, object arrays or a truncated file fail with a message naming
 * the file and the problem. */
int npy_read(const char *path, xt *t, qk_err *err);
/* Writes t to path atomically (temporary file in the same folder, then
 * rename), so a failed write never leaves a partial file. */
int npy_write(const char *path, const xt *t, qk_err *err);

#endif
