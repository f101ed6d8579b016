/* This file implements the tail pass of an observed chain: when an
 * observer wants the intermediates of a chain the executor would otherwise
 * fuse (Conv -> Sigmoid, Mul; Conv -> Add -> Relu; ...), the head runs on
 * its own and the element-wise rest of the chain runs here, a cache-sized
 * piece of the head's output at a time, each piece of every value handed
 * to the observer (by part) while it is still in cache. */
#ifndef QK_CORE_EXEC_TAIL_H
#define QK_CORE_EXEC_TAIL_H
#include "executor.h"

typedef struct exec_tail {
    const ir_graph *g;
    const xt *rt;               /* per value: this run's tensors */
    int head;                   /* the chain's first value (the head node's output) */
    const int *members;         /* the nodes after the head, in order */
    int n_members;
    const char *by_part;        /* per value: observed in parts (EXEC_BY_*), or NULL */
    exec_observe_part_fn observe;
    void *arg;
    /* A SiLU tail (tail_silu) whose sigmoid value only the observer reads
     * (by part): its pieces go from a per-thread scratch piece to the
     * observer and are never stored. */
    int sigmoid_unstored;
} exec_tail;

/* Whether the members can run piece by piece: each is an element-wise op
 * (Relu, Clip, Sigmoid, Add, Mul) whose tensor inputs and output all have
 * the head value's shape (Clip's bounds: constant scalars), so that a piece
 * of the output depends on the same piece of the inputs only.  Needs the
 * shapes of the members' outputs in rt, not their data. */
int tail_runnable(const exec_tail *t);

/* Whether the members are SiLU's Sigmoid(head) and Mul(head, sigmoid),
 * which the pass computes in one sweep; the product may then be stored
 * over the head value (same piece, read before it is written). */
int tail_silu(const exec_tail *t);

/* Runs the members over the head value (computed) into their outputs
 * (allocated), split over pool; observes every value v of the chain with
 * by_part[v] in parts, the head value first.  Results are those of running
 * each member on the whole tensors: the same kernels, on pieces. */
int tail_run(const exec_tail *t, threadpool *pool, qk_err *err);

#endif
