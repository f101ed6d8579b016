/* This file implements the list of kernel groups.  Each ops/<group>.c file
 * defines one const table fragment; op_table.c chains them.  Adding an op
 * means adding a row to its group's fragment, nothing else. */
#ifndef QK_CORE_OPS_H
#define QK_CORE_OPS_H
#include <stddef.h>
#include "../op.h"

#define OP_GROUPS(X) \
    X(conv) X(matmul) X(pool) X(normalization) X(reduce) X(softmax) \
    X(unary) X(binary) X(shape) X(layout) X(resize) X(quantize)

#define X(g) extern const op_def ops_##g[]; extern const int ops_##g##_count;
OP_GROUPS(X)
#undef X

/* Helpers shared by the kernel files (common.c). */
/* True when optional input i was given. */
int op_has_input(const op_ctx *c, int i);
/* True for the signed and unsigned integer types (not bool). */
int dtype_is_int(int dt);
/* a in [-rank, rank) mapped to [0, rank), or -1 when out of range. */
int axis_normalize(int64_t a, int rank);
/* Reads an integer list from a 0-D or 1-D tensor into v[max] and its count
 * into *n.  Returns QK_OK, QK_UNKNOWN when the values are not known yet, or
 * an error naming `what` (wrong type, too many values). */
int op_read_int_list(op_ctx *c, const xt *t, const char *what, int64_t *v, int max, int *n);
/* Reads an optional int-list attribute of exactly `want` entries into v, or
 * fills v with `def` when absent (strides, dilations, pads of Conv and pools). */
int op_attr_ints_exact(op_ctx *c, const char *name, int want, int64_t def, int64_t *v);

/* The vector extensions kernels may use: 0 none, 1 AVX2+FMA, 2 AVX-512F.
 * QK_SGEMM_ISA=c|avx2|avx512 caps it (tests reach the narrower paths). */
int op_isa_level(void);
/* y[i] = f(x[i]) for i < n (y may be x), vectorized: exp, the logistic
 * sigmoid, and SiLU x * sigmoid(x).  Within a few ulp of libm's expf. */
void vec_exp(const float *x, float *y, int64_t n);
void vec_sigmoid(const float *x, float *y, int64_t n);
void vec_silu(const float *x, float *y, int64_t n);
/* Widens [*lo, *hi] to the finite values of x[0..n) (NaN and infinities
 * skipped): calibration's extremes where no kernel gathers them. */
void vec_finite_extremes(const float *x, int64_t n, float *lo, float *hi);

/* A buffer of at least `bytes` (64-byte aligned) owned by the calling
 * thread and kept for its next call with the same slot (0..4), so kernels
 * need no malloc per run; NULL when out of memory.  Valid until the same
 * thread asks for that slot again.  Kernels take slots from the executor's
 * thread only, and hand slices to pool tasks. */
void *op_scratch(int slot, size_t bytes);

/* y = act(y + res) over n floats (res may be NULL): a fused epilogue
 * applied after the fact, for kernel paths that cannot apply it inside. */
void op_apply_epilogue(const op_epilogue *ep, float *y, const float *res, int64_t n);

/* Executor hooks of the convolution (conv.c, listed by op_prep_lookup). */
int conv_prepare(op_ctx *c, void **state);
void conv_release(void *state);
unsigned conv_ext_stages(op_ctx *c);

#endif
