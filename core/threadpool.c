/* This file implements the executor's thread pool (see threadpool.h).
 *
 * Workers are started once and live as long as the pool.  A call publishes
 * one job (fn, arg, chunking) under a new sequence number and wakes the
 * workers; every participant -- the caller included -- claims runs of
 * items from a shared atomic counter until none are left, so uneven work
 * balances itself.
 *
 * Workers join a job explicitly and the caller never waits for a worker
 * that has not joined: when the caller runs out of chunks it closes the job
 * to newcomers and waits only for the workers inside.  So a worker that is
 * slow to wake (asleep, or its CPU busy with another process) costs nothing
 * -- the caller simply does the chunks itself -- instead of stalling every
 * parallel loop of an inference until the scheduler gets round to it.  A
 * late worker that finds the job closed (or already replaced) skips it
 * without touching the job fields, which the caller may be rewriting.
 *
 * Kernels run one after another and each call is short (often tens of
 * microseconds), so both sides spin before sleeping on a condition
 * variable: a worker that has just finished a job is very likely to get the
 * next one within microseconds, and a futex round trip costs more than
 * that (tens of microseconds in VMs). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "threadpool.h"

/* How long an idle side polls before sleeping.  The gaps between one
 * kernel's parallel loop and the next are usually shorter than this, so
 * workers stay hot through a whole inference and go to sleep only when the
 * executor is idle. */
#define SPIN_NS 500000
#define MAX_THREADS 1024

/* The job state word: (sequence << 32) | CLOSED | workers inside. */
#define ST_SEQ(s) ((s) >> 32)
#define ST_CLOSED ((uint64_t)1 << 31)
#define ST_COUNT(s) ((s) & 0x7fffffffu)

struct threadpool {
    int nthreads;              /* caller + workers */
    /* More threads than CPUs: spinners must yield, or they may keep the
     * thread they wait for off its CPU.  Otherwise yielding only adds
     * system calls (and in VMs, scheduling hiccups of tens of us). */
    int oversubscribed;
    pthread_t *threads;        /* nthreads - 1 workers */
    int n_started;

    pthread_mutex_t mu;        /* guards sleeping on the two conditions */
    pthread_cond_t wake;       /* new sequence or stop */
    pthread_cond_t done;       /* closed job emptied */
    /* Serializes callers from different threads: one job at a time. */
    pthread_mutex_t call_mu;

    _Atomic uint64_t state;
    atomic_int stop;

    /* The current job, written by the caller before publishing. */
    tp_fn fn;
    void *arg;
    int64_t n, grain;          /* items, smallest run */
    atomic_llong next;         /* first item not yet claimed */
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

/* Called every so often while spinning: true once SPIN_NS have passed. */
static int spun_out(threadpool *tp, int64_t *t0)
{
    int64_t t = now_ns();
    if (tp->oversubscribed) sched_yield();
    if (!*t0) *t0 = t;
    return t - *t0 > SPIN_NS;
}

/* Claims and runs runs of the current job until none remain.  Runs are
 * guided: each takes 1/(2 * threads) of what is left (never less than the
 * grain), so the first are long -- few claims, long sequential stretches
 * -- and the last short, so no thread is left waiting at the end of a
 * kernel for another's one big last chunk (at batch 8 on 2 threads, fixed
 * chunks were one image each: a thread slowed once idled the other for up
 * to an image). */
static void run_chunks(threadpool *tp, int tid)
{
    const int64_t n = tp->n, grain = tp->grain, parts = 2 * (int64_t)tp->nthreads;
    for (;;) {
        long long b = atomic_load_explicit(&tp->next, memory_order_relaxed);
        int64_t size;
        do {
            if (b >= n) return;
            int64_t left = n - b;
            size = left / parts;
            if (size < grain) size = grain;
            if (size > left) size = left;
        } while (!atomic_compare_exchange_weak_explicit(&tp->next, &b, b + size, memory_order_relaxed,
                                                        memory_order_relaxed));
        tp->fn(tp->arg, b, b + size, tid);
    }
}

/* Spins, then sleeps, until the sequence differs from `seen` or the pool
 * stops; returns the state seen. */
static uint64_t wait_new_seq(threadpool *tp, uint64_t seen)
{
    uint64_t s;
    int64_t t0 = 0;
    for (int i = 1;; i++) {
        s = atomic_load_explicit(&tp->state, memory_order_acquire);
        if (ST_SEQ(s) != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed)) return s;
        cpu_relax();
        if (!(i & 255) && spun_out(tp, &t0)) break;
    }
    pthread_mutex_lock(&tp->mu);
    while (ST_SEQ(s = atomic_load_explicit(&tp->state, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&tp->stop, memory_order_relaxed))
        pthread_cond_wait(&tp->wake, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    return s;
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
        uint64_t s = wait_new_seq(tp, seen);
        if (atomic_load_explicit(&tp->stop, memory_order_acquire)) break;
        seen = ST_SEQ(s);
        /* Join job `seen` unless it is closed or gone already. */
        int joined = 0;
        while (ST_SEQ(s) == seen && !(s & ST_CLOSED)) {
            if (atomic_compare_exchange_weak_explicit(&tp->state, &s, s + 1, memory_order_acquire,
                                                      memory_order_acquire)) {
                joined = 1;
                break;
            }
        }
        if (!joined) continue;
        run_chunks(tp, wa.tid);
        s = atomic_fetch_sub_explicit(&tp->state, 1, memory_order_acq_rel) - 1;
        if (ST_COUNT(s) == 0 && (s & ST_CLOSED)) {
            /* Last one out of a closed job: the caller may be asleep on
             * `done`.  Taking the mutex orders this signal after its check. */
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
    return NULL;
}

threadpool *tp_new(int nthreads)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    if (nthreads <= 0) nthreads = (int)ncpu;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->nthreads = nthreads;
    tp->oversubscribed = nthreads > ncpu;
    if (pthread_mutex_init(&tp->mu, NULL)) goto fail_mu;
    if (pthread_mutex_init(&tp->call_mu, NULL)) goto fail_call_mu;
    if (pthread_cond_init(&tp->wake, NULL)) goto fail_wake;
    if (pthread_cond_init(&tp->done, NULL)) goto fail_done;
    /* Job 0 exists only as "closed", so nobody joins it. */
    atomic_init(&tp->state, ST_CLOSED);
    atomic_init(&tp->stop, 0);
    atomic_init(&tp->next, 0);
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
    pthread_mutex_lock(&tp->call_mu);
    /* The previous job is closed and empty, so no worker reads these. */
    tp->fn = fn;
    tp->arg = arg;
    tp->n = n;
    tp->grain = grain;
    atomic_store_explicit(&tp->next, 0, memory_order_relaxed);
    /* The release publishes the job fields to the spinning workers; the
     * broadcast under mu reaches the sleeping ones. */
    uint64_t seq = ST_SEQ(atomic_load_explicit(&tp->state, memory_order_relaxed)) + 1;
    pthread_mutex_lock(&tp->mu);
    atomic_store_explicit(&tp->state, seq << 32, memory_order_release);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);

    in_pool = 1;
    run_chunks(tp, 0);
    in_pool = 0;

    /* Every chunk is claimed: close the job, then wait for the workers
     * that joined to finish theirs. */
    uint64_t s = atomic_fetch_or_explicit(&tp->state, ST_CLOSED, memory_order_acq_rel) | ST_CLOSED;
    int64_t t0 = 0;
    for (int i = 1; ST_COUNT(s) != 0; i++) {
        cpu_relax();
        s = atomic_load_explicit(&tp->state, memory_order_acquire);
        if (!(i & 255) && spun_out(tp, &t0)) {
            pthread_mutex_lock(&tp->mu);
            while (ST_COUNT(atomic_load_explicit(&tp->state, memory_order_acquire)) != 0)
                pthread_cond_wait(&tp->done, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
            break;
        }
    }
    pthread_mutex_unlock(&tp->call_mu);
}
