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

/* A .npy file mapped read-only rather than read: calibration sets larger
 * than memory stream from disk, and npy_release drops the pages of samples
 * already used so the resident size does not grow with the sample count. */
typedef struct npy_mapping {
    void *base;          /* NULL: t->data was malloc'd (bool data, mmap refused) */
    size_t len;
} npy_mapping;
/* Like npy_read, but t->data points into the mapping when base != NULL
 * (then do not free it; npy_unmap instead). */
int npy_map(const char *path, xt *t, npy_mapping *m, qk_err *err);
void npy_unmap(npy_mapping *m);
/* Done with [p, p+n) and everything before it (callers go in sample
 * order): those pages leave memory, to be re-read if touched again. */
void npy_release(const npy_mapping *m, const void *p, size_t n);
/* Writes t to path atomically (temporary file in the same folder, then
 * rename), so a failed write never leaves a partial file. */
int npy_write(const char *path, const xt *t, qk_err *err);

#endif
