/* This file implements the float CPU executor: it walks a graph's nodes in
 * order, infers each node's output shapes for the actual inputs, allocates
 * outputs from a pool of buffers reused by liveness, and runs the kernels on
 * a thread pool. */
#ifndef QK_CORE_EXECUTOR_H
#define QK_CORE_EXECUTOR_H
#include "ir.h"
#include "threadpool.h"

typedef struct executor executor;

/* Observes a value right after it is computed (calibration hooks into this).
 * Return non-zero to abort the run with that status. */
typedef int (*exec_observe_fn)(void *arg, int value, const xt *t);

/* Plans execution of g (which must outlive the executor).  threads <= 0: one
 * per core.  Fails with QK_ENOTSUP for an unsupported op (naming it).
 * Constant inputs are read here: Conv weights are packed once for the
 * kernels, so changing an initializer's data afterwards needs a new
 * executor (a replaced data pointer is noticed and the packed copy is
 * ignored; an in-place change is not). */
int exec_new(ir_graph *g, int threads, executor **out, qk_err *err);
void exec_free(executor *e);   /* NULL is a no-op */

/* Runs with inputs[i] bound to g->inputs[i] (shape checked against the
 * model's declared shape: errors name the input, expected and given shape).
 * Without an observer (or with one that takes values sample by sample,
 * exec_set_observed_by_sample), a batch may run its first layers one
 * sample at a time (see executor.c); results are the same.
 * On success outputs[j] receives g->outputs[j] with malloc'd data the caller
 * owns (free(outputs[j].data)). */
int exec_run(executor *e, const xt *inputs, xt *outputs, qk_err *err);
/* Calls fn for every value computed during the following runs (NULL: none).
 * With an observer set, every value is materialized (or handed over in
 * parts, exec_set_observed_by_part) and passed to fn right after it is
 * computed -- a fused chain's in a tail pass after its head (executor.c);
 * without one, chains such as Conv -> Relu, Conv -> Add -> Relu and
 * Conv -> SiLU run fused (see executor.c) and their intermediate values are
 * never stored.  Results agree up to float rounding. */
void exec_set_observer(executor *e, exec_observe_fn fn, void *arg);

/* Narrows the current observer to the values v with want[v] != 0 (one
 * entry per graph value; borrowed until the next exec_set_observer, which
 * resets it to "all").  Fused chains whose intermediates are not wanted
 * then stay fused, so calibration runs nearly at inference speed; the
 * observer still sees every wanted value (and may see others). */
void exec_set_observed(executor *e, const char *want);

/* Lets the current observer take the values of the sample passes (see
 * executor.c) as they are made, one sample at a time (its tensors then have
 * 1 on axis 0), so that calibration keeps the passes.  For observers that
 * are order-free (QK_OBSERVER_SHARDABLE); reset by exec_set_observer. */
void exec_set_observed_by_sample(executor *e, int ok);

/* Observes part of a value: a contiguous run of its elements as a 1-D
 * tensor, on pool thread tid (in [0, threads), as in threadpool.h; parts
 * of one value may be observed on several threads at once).  Return
 * non-zero to abort the run with that status. */
typedef int (*exec_observe_part_fn)(void *arg, int value, int tid, const xt *part);

/* How a value may be handed to exec_set_observed_by_part's fn. */
enum {
    EXEC_WHOLE = 0,         /* whole, to the observer set by exec_set_observer */
    EXEC_BY_PART = 1,       /* in parts, each part's values */
    /* In parts, where the executor finds it cheaper each part as just its
     * extremes: the 1-D tensor {min, max} of its finite values, or {NaN}
     * when it holds none -- for observers that promise the same range from
     * that (QK_OBSERVER_EXTREMES), whose parts can then be gathered as
     * the kernels compute them rather than scanned again. */
    EXEC_BY_EXTREMES = 2,
    /* Whole (fn unused), or as the extremes of the whole value, the same
     * way: for such observers that are not order-free (moving_average). */
    EXEC_EXTREMES = 3
};

/* Whether by_part (as below, or NULL) has value v observed in parts. */
static inline int exec_in_parts(const char *by_part, int v)
{
    return by_part && (by_part[v] == EXEC_BY_PART || by_part[v] == EXEC_BY_EXTREMES);
}

/* Lets the executor hand the current observer the values v with
 * by_part[v] != EXEC_WHOLE (one entry per graph value; borrowed until the
 * next exec_set_observer, which resets it) in parts through fn instead of
 * whole: for order-free per-tensor observers (QK_OBSERVER_SHARDABLE).  The
 * parts cover each value once.  A chain whose intermediates the observer
 * wants (see exec_set_observed) then runs its element-wise tail a
 * cache-sized piece at a time and has each piece observed while in cache.
 * Returns QK_OK, or QK_ENOMEM (the observer then takes every value whole). */
int exec_set_observed_by_part(executor *e, exec_observe_part_fn fn, const char *by_part, qk_err *err);

/* The executor's thread pool, idle between kernels: an observer may split
 * its own work over it (NULL when the executor runs on one thread). */
threadpool *exec_threadpool(const executor *e);

/* Tests: how many nodes exec_new planned to run inside a fused chain, and
 * how many leading nodes run sample by sample at batch > 1 (executor.c). */
int exec_fused_nodes(const executor *e) __attribute__((visibility("hidden")));
int exec_sample_prefix(const executor *e) __attribute__((visibility("hidden")));
/* Tests: how many values exec_new planned to write into their Concat's
 * output, and how many Mul nodes it planned to fold into the next Conv. */
int exec_concat_placed(const executor *e) __attribute__((visibility("hidden")));
int exec_scales_folded(const executor *e) __attribute__((visibility("hidden")));
/* Tests: how many fused chains the last run ran as a head and a tail
 * pass because an observer wanted their intermediates (executor.c). */
int exec_tails_run(const executor *e) __attribute__((visibility("hidden")));
/* Tests: how many pool buffers are still taken -- 0 between runs, or a
 * run leaked one (and the next run allocates a new one). */
int exec_buffers_in_use(const executor *e) __attribute__((visibility("hidden")));

#endif
