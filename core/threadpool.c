/* This file implements the executor's thread pool (see threadpool.h).
 *
 * Workers are started once and live as long as the pool.  A call publishes
 * one job (fn, arg, chunking) under a generation number, wakes the workers,
 * and every participant -- the caller included -- claims chunks from a
 * shared atomic counter until none are left, so uneven chunks balance
 * themselves.  The call returns once every participating worker has left the
 * job, which makes the job fields safe to reuse for the next call.
 *
 * Kernels run one after another and each call is short (often tens of
 * microseconds), so both sides spin briefly before sleeping on a condition
 * variable: a worker that has just finished a job is very likely to get the
 * next one within a few microseconds, and a futex round trip would cost more
 * than the work. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "threadpool.h"

/* How long an idle side polls before sleeping.  Short enough that idle
 * workers do not steal a core from serial kernels for long. */
#define SPIN_NS 50000
#define GEN_ACTIVE_MASK 0xffffu
#define MAX_THREADS 1024

struct threadpool {
    int nthreads;              /* caller + workers */
    pthread_t *threads;        /* nthreads - 1 workers */
    int n_started;

    pthread_mutex_t mu;        /* guards sleeping on the two conditions */
    pthread_cond_t wake;       /* new generation or stop */
    pthread_cond_t done;       /* pending reached 0 */
    /* Serializes callers from different threads: one job at a time. */
    pthread_mutex_t call_mu;

    /* (job sequence << 16) | number of threads taking part.  One word, so a
     * worker reads both consistently even when it slept through a job. */
    _Atomic uint64_t gen;
    atomic_int stop;

    /* The current job, written by the caller before bumping gen. */
    tp_fn fn;
    void *arg;
    int64_t n, chunk, n_chunks;
    atomic_llong next;         /* next chunk to claim */
    atomic_int pending;        /* participating workers still in the job */
};

/* Set in workers (always) and in a caller while it runs chunks, so that a
 * kernel calling tp_parallel_for from inside a chunk runs serially instead of
 * waiting on a pool that is busy with its own caller. */
static _Thread_local int in_pool;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claims and runs chunks of the current job until none remain. */
static void run_chunks(threadpool *tp, int tid)
{
    for (;;) {
        long long c = atomic_fetch_add_explicit(&tp->next, 1, memory_order_relaxed);
        if (c >= tp->n_chunks) break;
        int64_t b = c * tp->chunk;
        int64_t e = b + tp->chunk < tp->n ? b + tp->chunk : tp->n;
        tp->fn(tp->arg, b, e, tid);
    }
}

/* Spins, then sleeps, until gen differs from `seen` or the pool stops. */
static uint64_t wait_new_gen(threadpool *tp, uint64_t seen)
{
    uint64_t g;
    int64_t t0 = 0;
    for (int i = 0;; i++) {
        g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed)) return g;
        cpu_relax();
        if ((i & 255) == 255) {
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) break;
            /* With more threads than free cores the thread we wait for may
             * be the one we keep off its core. */
            sched_yield();
        }
    }
    pthread_mutex_lock(&tp->mu);
    while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&tp->stop, memory_order_relaxed))
        pthread_cond_wait(&tp->wake, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    return g;
}

struct worker_arg { threadpool *tp; int tid; };

static void *worker(void *p)
{
    struct worker_arg wa = *(struct worker_arg *)p;
    free(p);
    threadpool *tp = wa.tp;
    in_pool = 1;
    uint64_t seen = 0;
    for (;;) {
        seen = wait_new_gen(tp, seen);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        /* Workers with tid >= the job's thread count sit it out and do not
         * count in pending, so they must not touch the job fields: the
         * caller may already be writing the next job. */
        if (wa.tid >= (int)(seen & GEN_ACTIVE_MASK)) continue;
        run_chunks(tp, wa.tid);
        if (atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_acq_rel) == 1) {
            /* Last one out: the caller may be asleep on `done`.  Taking the
             * mutex orders this signal after its check of pending. */
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
    return NULL;
}

threadpool *tp_new(int nthreads)
{
    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->nthreads = nthreads;
    if (pthread_mutex_init(&tp->mu, NULL)) goto fail_mu;
    if (pthread_mutex_init(&tp->call_mu, NULL)) goto fail_call_mu;
    if (pthread_cond_init(&tp->wake, NULL)) goto fail_wake;
    if (pthread_cond_init(&tp->done, NULL)) goto fail_done;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->next, 0);
    atomic_init(&tp->pending, 0);
    if (nthreads > 1) {
        tp->threads = calloc((size_t)nthreads - 1, sizeof *tp->threads);
        if (!tp->threads) goto fail_threads;
    }
    for (int i = 1; i < nthreads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        wa->tp = tp;
        wa->tid = i;
        if (pthread_create(&tp->threads[i - 1], NULL, worker, wa)) {
            free(wa);
            break;
        }
        tp->n_started++;
    }
    if (tp->n_started != nthreads - 1) {
        tp_free(tp);
        return NULL;
    }
    return tp;

fail_threads:
    pthread_cond_destroy(&tp->done);
fail_done:
    pthread_cond_destroy(&tp->wake);
fail_wake:
    pthread_mutex_destroy(&tp->call_mu);
fail_call_mu:
    pthread_mutex_destroy(&tp->mu);
fail_mu:
    free(tp);
    return NULL;
}

void tp_free(threadpool *tp)
{
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store_explicit(&tp->stop, 1, memory_order_release);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 0; i < tp->n_started; i++) pthread_join(tp->threads[i], NULL);
    free(tp->threads);
    pthread_cond_destroy(&tp->done);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->call_mu);
    pthread_mutex_destroy(&tp->mu);
    free(tp);
}

int tp_nthreads(const threadpool *tp) { return tp ? tp->nthreads : 1; }

void tp_parallel_for(threadpool *tp, int64_t n, int64_t grain, tp_fn fn, void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (!tp || tp->nthreads <= 1 || n <= grain || in_pool) {
        fn(arg, 0, n, 0);
        return;
    }
    /* About four chunks per thread: enough slack for the atomic counter to
     * even out a thread that started late or ran slow chunks. */
    int64_t target = (int64_t)tp->nthreads * 4;
    int64_t chunk = (n + target - 1) / target;
    if (chunk < grain) chunk = grain;
    int64_t n_chunks = (n + chunk - 1) / chunk;
    if (n_chunks <= 1) {
        fn(arg, 0, n, 0);
        return;
    }
    int active = n_chunks < tp->nthreads ? (int)n_chunks : tp->nthreads;

    pthread_mutex_lock(&tp->call_mu);
    tp->fn = fn;
    tp->arg = arg;
    tp->n = n;
    tp->chunk = chunk;
    tp->n_chunks = n_chunks;
    atomic_store_explicit(&tp->next, 0, memory_order_relaxed);
    atomic_store_explicit(&tp->pending, active - 1, memory_order_relaxed);
    /* The release on gen publishes the job fields to the spinning workers;
     * the broadcast under mu reaches the sleeping ones. */
    pthread_mutex_lock(&tp->mu);
    uint64_t g = atomic_load_explicit(&tp->gen, memory_order_relaxed);
    g = ((g >> 16) + 1) << 16 | (uint64_t)active;
    atomic_store_explicit(&tp->gen, g, memory_order_release);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);

    in_pool = 1;
    run_chunks(tp, 0);
    in_pool = 0;

    int64_t t0 = 0;
    for (int i = 0; atomic_load_explicit(&tp->pending, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 255) == 255) {
            int64_t t = now_ns();
            sched_yield();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) {
                pthread_mutex_lock(&tp->mu);
                while (atomic_load_explicit(&tp->pending, memory_order_acquire) > 0)
                    pthread_cond_wait(&tp->done, &tp->mu);
                pthread_mutex_unlock(&tp->mu);
                break;
            }
        }
    }
    pthread_mutex_unlock(&tp->call_mu);
}
