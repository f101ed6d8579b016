/* This file implements the executor's thread pool.  Kernels split their work
 * into [begin, end) ranges; the pool runs the ranges on its threads and the
 * caller's thread, and returns when all are done (a barrier per call). */
#ifndef QK_CORE_THREADPOOL_H
#define QK_CORE_THREADPOOL_H
#include <stdint.h>

typedef struct threadpool threadpool;

/* fn is called with disjoint ranges covering [0, n); tid is in [0, nthreads). */
typedef void (*tp_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* nthreads <= 0 means one per online CPU.  Returns NULL on failure. */
threadpool *tp_new(int nthreads);
void tp_free(threadpool *tp);   /* NULL is a no-op */
int tp_nthreads(const threadpool *tp);  /* 1 for a NULL pool */

/* Runs fn over [0, n) split in runs of at least `grain` items (the last
 * may be shorter): each claim takes 1/(2 * threads) of what is left, so
 * early runs are long and the last ones `grain`.  A NULL pool, n <= grain,
 * or a call from inside a worker runs serially. */
void tp_parallel_for(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *arg);

#endif
