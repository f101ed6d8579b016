/* This file implements the float CPU executor: it walks a graph's nodes in
 * order, infers each node's output shapes for the actual inputs, allocates
 * outputs from a pool of buffers reused by liveness, and runs the kernels on
 * a thread pool. */
#ifndef QK_CORE_EXECUTOR_H
#define QK_CORE_EXECUTOR_H
#include "ir.h"

typedef struct executor executor;

/* Observes a value right after it is computed (calibration hooks into this).
 * Return non-zero to abort the run with that status. */
typedef int (*exec_observe_fn)(void *arg, int value, const xt *t);

/* Plans execution of g (which must outlive the executor).  threads <= 0: one
 * per core.  Fails with QK_ENOTSUP for an unsupported op (naming it). */
int exec_new(ir_graph *g, int threads, executor **out, qk_err *err);
void exec_free(executor *e);   /* NULL is a no-op */

/* Runs with inputs[i] bound to g->inputs[i] (shape checked against the
 * model's declared shape: errors name the input, expected and given shape).
 * On success outputs[j] receives g->outputs[j] with malloc'd data the caller
 * owns (free(outputs[j].data)). */
int exec_run(executor *e, const xt *inputs, xt *outputs, qk_err *err);
/* Calls fn for every value computed during the following runs (NULL: none). */
void exec_set_observer(executor *e, exec_observe_fn fn, void *arg);

#endif
