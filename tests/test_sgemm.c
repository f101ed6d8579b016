/* This file implements the tests of core/sgemm.c and core/threadpool.c:
 * sgemm against a double-precision reference over many random shapes
 * (every transpose combination, edge tiles, alpha/beta, strided operands,
 * each micro-kernel the CPU has, with and without a pool), and the pool's
 * promise that every index is visited exactly once. */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "sgemm.h"
#include "threadpool.h"

/* Internal to sgemm.c (not in sgemm.h): forces a micro-kernel by name,
 * NULL restores the default. */
int sgemm_force_isa(const char *name);

#include "rng.h"

/* Runs one product with extra padding in every leading dimension and
 * compares with a double reference, relative to the sum of |terms| so that
 * cancellation does not make the tolerance meaningless.  Also checks that
 * sgemm leaves C's padding columns alone.  Returns 1 when all is well. */
static int check_one(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                     int pad, threadpool *tp)
{
    int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int64_t rows_a = ta ? K : M, rows_b = tb ? N : K;
    size_t na = (size_t)(rows_a * lda) + 1, nb = (size_t)(rows_b * ldb) + 1;
    size_t nc = (size_t)(M * ldc) + 1;
    float *A = malloc(na * sizeof *A), *B = malloc(nb * sizeof *B);
    float *C = malloc(nc * sizeof *C), *C0 = malloc(nc * sizeof *C0);
    ck_assert(A && B && C && C0);
    for (size_t i = 0; i < na; i++) A[i] = rng_float();
    for (size_t i = 0; i < nb; i++) B[i] = rng_float();
    /* beta == 0 must not read C: fill it with NaN to prove it. */
    for (size_t i = 0; i < nc; i++) C0[i] = C[i] = beta == 0.0f ? NAN : rng_float();

    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tp);

    int ok = 1;
    for (int64_t i = 0; i < M && ok; i++) {
        for (int64_t j = 0; j < N && ok; j++) {
            double s = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
                mag += fabs(a * b);
            }
            double c0 = C0[i * ldc + j];
            double ref = alpha * s + (beta == 0.0f ? 0.0 : beta * c0);
            double tol = 1e-5 * (fabs(alpha) * mag + (beta == 0.0f ? 0.0 : fabs(beta * c0))) + 1e-30;
            double got = C[i * ldc + j];
            if (!(fabs(got - ref) <= tol)) {
                ck_assert_msg(0, "ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%d: "
                              "C[%lld][%lld] = %g, expected %g",
                              ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, pad,
                              (long long)i, (long long)j, got, ref);
                ok = 0;
            }
        }
        for (int64_t j = N; j < ldc && ok; j++)
            if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)))
                ok = 0;
        ck_assert_msg(ok, "padding of C row %lld was written", (long long)i);
    }
    free(A);
    free(B);
    free(C);
    free(C0);
    return ok;
}

static const float alphas[] = {1.0f, -0.5f, 2.5f, 0.0f};
static const float betas[] = {0.0f, 1.0f, 0.5f, -2.0f};

/* Random shapes in 0..70 with 1 and odd sizes favoured, every transpose
 * combination, padded leading dimensions now and then. */
static void random_shapes(threadpool *tp, int iters, uint64_t seed)
{
    rng_seed(seed);
    for (int it = 0; it < iters; it++) {
        int64_t M = rng_int(71), N = rng_int(71), K = rng_int(71);
        if (it % 7 == 0) M = 1;
        if (it % 11 == 0) N = 1;
        if (it % 13 == 0) K = 1;
        if (it % 17 == 0) M |= 1;
        if (it % 19 == 0) N |= 1;
        int pad = rng_int(3) == 0 ? rng_int(5) : 0;
        if (!check_one(it & 1, (it >> 1) & 1, M, N, K, alphas[rng_int(4)], betas[rng_int(4)], pad, tp))
            return;
    }
}

START_TEST(test_sgemm_random_serial)
{
    random_shapes(NULL, 600, 1);
}
END_TEST

START_TEST(test_sgemm_random_pool2)
{
    threadpool *tp = tp_new(2);
    ck_assert_ptr_nonnull(tp);
    random_shapes(tp, 600, 2);
    tp_free(tp);
}
END_TEST

/* Each micro-kernel the CPU supports, including the portable one that the
 * default choice would hide on a modern machine. */
START_TEST(test_sgemm_each_isa)
{
    static const char *const isas[] = {"c", "avx2", "avx512"};
    threadpool *tp = tp_new(2);
    ck_assert_ptr_nonnull(tp);
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (sgemm_force_isa(isas[i])) continue;
        random_shapes(i & 1 ? tp : NULL, 300, 10 + i);
        check_one(0, 0, 131, 97, 300, 1.0f, 0.0f, 0, tp);
        check_one(1, 1, 97, 131, 300, -1.0f, 0.5f, 1, NULL);
    }
    ck_assert_int_eq(sgemm_force_isa("no-such-isa"), -1);
    sgemm_force_isa(NULL);
    tp_free(tp);
}
END_TEST

/* Shapes that cross every blocking boundary (KC, MC, NC) and the
 * matrix-vector special cases, with several thread counts. */
START_TEST(test_sgemm_large)
{
    static const int64_t shapes[][3] = {
        {300, 257, 513}, {1, 1000, 700}, {700, 1, 513}, {513, 300, 129},
        {7, 2100, 300}, {2100, 7, 130}, {200, 4200, 20}, {1, 1, 1000},
    };
    threadpool *tp2 = tp_new(2), *tp3 = tp_new(3);
    ck_assert(tp2 && tp3);
    rng_seed(3);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            check_one(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1.5f,
                      t == 0 ? 0.0f : 0.5f, t == 3 ? 3 : 0, t % 2 ? tp2 : tp3);
    tp_free(tp2);
    tp_free(tp3);
}
END_TEST

/* K == 0 and alpha == 0 reduce to C = beta * C; beta == 0 overwrites NaN. */
START_TEST(test_sgemm_degenerate)
{
    float C[6], A[6] = {1, 2, 3, 4, 5, 6}, B[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 6; i++) C[i] = NAN;
    sgemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3, NULL);
    for (int i = 0; i < 6; i++) ck_assert(C[i] == 0.0f);
    for (int i = 0; i < 6; i++) C[i] = (float)i;
    sgemm(0, 0, 2, 3, 2, 0.0f, A, 2, B, 3, 2.0f, C, 3, NULL);
    for (int i = 0; i < 6; i++) ck_assert(C[i] == 2.0f * (float)i);
    /* M == 0 or N == 0 touches nothing. */
    sgemm(0, 0, 0, 3, 2, 1.0f, A, 2, B, 3, 0.0f, NULL, 3, NULL);
    sgemm(0, 0, 2, 0, 2, 1.0f, A, 2, B, 0, 0.0f, NULL, 0, NULL);
}
END_TEST

/* ------------------------------------------------------------ threadpool */

static void count_visits(void *arg, int64_t b, int64_t e, int tid)
{
    /* Runs on pool threads: no ck_assert here, the caller checks counts. */
    atomic_int *hits = arg;
    for (int64_t i = b; i < e; i++) atomic_fetch_add(&hits[i], 1);
}

START_TEST(test_tp_covers_each_index_once)
{
    for (int nt = 1; nt <= 4; nt++) {
        threadpool *tp = tp_new(nt);
        ck_assert_ptr_nonnull(tp);
        ck_assert_int_eq(tp_nthreads(tp), nt);
        for (int64_t n = 0; n < 2000; n += 37) {
            static const int64_t grains[] = {0, 1, 3, 16, 100, 5000};
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                atomic_int *hits = calloc((size_t)n + 1, sizeof *hits);
                ck_assert_ptr_nonnull(hits);
                tp_parallel_for(tp, n, grains[g], count_visits, hits);
                for (int64_t i = 0; i < n; i++)
                    ck_assert_msg(hits[i] == 1, "nt=%d n=%lld grain=%lld: index %lld visited %d times",
                                  nt, (long long)n, (long long)grains[g], (long long)i, (int)hits[i]);
                free(hits);
            }
        }
        tp_free(tp);
    }
}
END_TEST

/* Chunks respect the grain (except the last) and tids are in range. */
struct grain_check { int64_t grain, n; int nthreads; atomic_int bad; };

static void check_grain(void *arg, int64_t b, int64_t e, int tid)
{
    struct grain_check *g = arg;
    if (tid < 0 || tid >= g->nthreads) atomic_store(&g->bad, 1);
    if (e - b < g->grain && e != g->n) atomic_store(&g->bad, 1);
}

START_TEST(test_tp_grain_and_tid)
{
    threadpool *tp = tp_new(3);
    ck_assert_ptr_nonnull(tp);
    for (int64_t n = 1; n < 500; n += 13)
        for (int64_t grain = 1; grain < 60; grain += 7) {
            struct grain_check g = {grain, n, 3, 0};
            tp_parallel_for(tp, n, grain, check_grain, &g);
            ck_assert_int_eq(atomic_load(&g.bad), 0);
        }
    tp_free(tp);
}
END_TEST

struct nested { threadpool *tp; atomic_int *hits; };

static void nested_outer(void *arg, int64_t b, int64_t e, int tid)
{
    struct nested *ns = arg;
    for (int64_t i = b; i < e; i++) tp_parallel_for(ns->tp, 50, 1, count_visits, ns->hits);
}

/* A kernel calling the pool from inside a chunk must not deadlock; the inner
 * call runs serially on the calling thread. */
START_TEST(test_tp_nested_runs_serially)
{
    threadpool *tp = tp_new(2);
    ck_assert_ptr_nonnull(tp);
    atomic_int hits[50] = {0};
    struct nested ns = {tp, hits};
    tp_parallel_for(tp, 40, 1, nested_outer, &ns);
    for (int i = 0; i < 50; i++) ck_assert_int_eq(hits[i], 40);
    tp_free(tp);
}
END_TEST

START_TEST(test_tp_null_and_auto)
{
    atomic_int hits[10] = {0};
    ck_assert_int_eq(tp_nthreads(NULL), 1);
    tp_parallel_for(NULL, 10, 1, count_visits, hits);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(hits[i], 1);
    tp_free(NULL);
    threadpool *tp = tp_new(0);
    ck_assert_ptr_nonnull(tp);
    ck_assert_int_ge(tp_nthreads(tp), 1);
    tp_free(tp);
}
END_TEST

/* Many back-to-back tiny calls: the spin/sleep hand-off must never lose a
 * wake-up (a lost one would hang here until the test timeout). */
START_TEST(test_tp_many_small_calls)
{
    threadpool *tp = tp_new(2);
    ck_assert_ptr_nonnull(tp);
    atomic_int hits[8] = {0};
    for (int r = 0; r < 20000; r++) tp_parallel_for(tp, 8, 1, count_visits, hits);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(hits[i], 20000);
    tp_free(tp);
}
END_TEST

Suite *sgemm_suite(void)
{
    Suite *s = suite_create("sgemm");
    TCase *tc = tcase_create("sgemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sgemm_random_serial);
    tcase_add_test(tc, test_sgemm_random_pool2);
    tcase_add_test(tc, test_sgemm_each_isa);
    tcase_add_test(tc, test_sgemm_large);
    tcase_add_test(tc, test_sgemm_degenerate);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("threadpool");
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, test_tp_covers_each_index_once);
    tcase_add_test(tp, test_tp_grain_and_tid);
    tcase_add_test(tp, test_tp_nested_runs_serially);
    tcase_add_test(tp, test_tp_null_and_auto);
    tcase_add_test(tp, test_tp_many_small_calls);
    suite_add_tcase(s, tp);
    return s;
}
