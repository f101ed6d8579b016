/* This file implements the contract between the executor and the kernels.
 *
 * Every operator is one row of the op table (op_table.c): a name, a shape
 * inference function and a kernel.  Shape inference runs both statically
 * (when the graph is loaded: inputs may lack data, or even shapes) and at run
 * time right before the kernel (all inputs have data), so kernels never
 * recompute shapes.  Output buffers are allocated by the executor between the
 * two calls, from the shapes inference wrote. */
#ifndef QK_CORE_OP_H
#define QK_CORE_OP_H
#include <stdint.h>
#include "tensor.h"
#include "status.h"
#include "threadpool.h"

struct ir_node;

/* A fused epilogue (see op_prep): after computing out[0] the kernel adds
 * the residual, then applies the activation, as separate Add and
 * Relu/Clip/SiLU nodes would have, without writing out[0] in between. */
enum { OP_ACT_NONE, OP_ACT_CLAMP, OP_ACT_SILU };
typedef struct op_epilogue {
    const xt *residual;          /* same shape as out[0], or NULL */
    int act;                     /* OP_ACT_*; CLAMP clamps to [lo, hi] */
    float lo, hi;
} op_epilogue;

typedef struct op_ctx {
    const struct ir_node *node;  /* attributes: node_attr_*(); name: node_name() */
    int n_in;
    const xt *const *in;         /* in[i] == NULL: optional input absent */
    int n_out;
    xt **out;                    /* out[i] == NULL: optional output not wanted */
    threadpool *pool;            /* may be NULL: run serially */
    int opset;                   /* opset version of the default ONNX domain */
    qk_err *err;
    /* Set by the executor for ops with an op_prep row, NULL otherwise: */
    void *state;                 /* what prepare() made for this node */
    const op_epilogue *epi;      /* epilogue run() must apply to out[0] */
    /* Calibration, or NULL: per pool thread, lanes for the extremes of
     * the epilogue's stages ext_stages, as sgemm_epi.ext (sgemm.h)
     * describes them.  An op that gathers them as it writes sets
     * ext_gathered (op_prep.ext_stages says in advance whether it will). */
    float *ext;
    unsigned ext_stages;
    int ext_gathered;
    /* Conv only: in[0] is to be read as in[0] * in_scale, in_scale being
     * [N, C, 1, 1] (a squeeze-excitation Mul the executor folded in). */
    const xt *in_scale;
} op_ctx;

/* Sets out[i]->dtype, rank and dims from the inputs.  Returns QK_OK,
 * QK_UNKNOWN when a needed input value (in[i]->data) or shape is not known
 * yet (static inference only; leave outputs untouched), or an error through
 * op_fail(). */
typedef int (*op_infer_fn)(op_ctx *c);
/* Computes outputs; out[i]->data is allocated with xt_nbytes() bytes.
 * Returns QK_OK or an error through op_fail(). */
typedef int (*op_run_fn)(op_ctx *c);

typedef struct op_def {
    const char *name;       /* ONNX op_type, default domain */
    op_infer_fn infer;
    op_run_fn run;
} op_def;

/* Optional per-op hooks of the executor, for the heavy ops (Conv):
 *  - prepare: called once by exec_new with the node's inputs bound (a
 *    constant input has data, others have at most a shape); may set
 *    *state to work done ahead (packed weights) that run() finds in
 *    c->state.  run() must check that the state still matches its inputs
 *    and ignore it otherwise.  Returns QK_OK or an error (QK_ENOMEM).
 *  - release frees a state (never called with NULL).
 *  - fuses: run() applies c->epi when the executor sets it.
 *  - ext_stages, optional: the stages (1 << EXT_*, sgemm.h) whose
 *    extremes run() would gather for c as it is (inputs, state, epi), so
 *    that the executor may leave a chain fused whose values it could not
 *    otherwise see. */
typedef struct op_prep {
    const char *name;
    int (*prepare)(op_ctx *c, void **state);
    void (*release)(void *state);
    int fuses;
    unsigned (*ext_stages)(op_ctx *c);
} op_prep;

/* The hooks for op_type, or NULL. */
const op_prep *op_prep_lookup(const char *op_type);

/* The table row for op_type in the default ONNX domain, or NULL. */
const op_def *op_lookup(const char *op_type);
/* All rows, for listing; *n receives the count. */
const op_def *op_table(int *n);

/* Reports an error naming the node ("Conv node 'conv1': ...") and returns code. */
int op_fail(op_ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Attribute access on the node being run.  `def` is returned when absent. */
int64_t node_attr_int(const struct ir_node *n, const char *name, int64_t def);
float node_attr_float(const struct ir_node *n, const char *name, float def);
/* String attribute (NUL-terminated copy owned by the node), or def. */
const char *node_attr_str(const struct ir_node *n, const char *name, const char *def);
/* Integer list: returns the count and sets *v (borrowed), or -1 when absent. */
int node_attr_ints(const struct ir_node *n, const char *name, const int64_t **v);
/* Float list: like node_attr_ints. */
int node_attr_floats(const struct ir_node *n, const char *name, const float **v);
/* True when the attribute is present. */
int node_has_attr(const struct ir_node *n, const char *name);
/* Tensor attribute (e.g. Constant's `value`) decoded into *out, whose data
 * is owned by the node and valid as long as the node.  QK_EINVAL if absent. */
int node_attr_tensor(const struct ir_node *n, const char *name, xt *out, qk_err *err);
const char *node_name(const struct ir_node *n);
const char *node_op_type(const struct ir_node *n);

/* Numpy-style broadcast of a and b into out's rank/dims; QK_EINVAL if they
 * do not broadcast.  out->dtype is left alone. */
int xt_broadcast_shape(const xt *a, const xt *b, xt *out);

#endif
