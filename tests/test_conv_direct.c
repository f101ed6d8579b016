/* This file implements the tests of core/ops/conv_direct.c: the
 * output-channel-vectorized kernel against a double-precision reference of
 * the implicit GEMM it computes, over random shapes (output channels not a
 * multiple of 32, rows of every width from 1 past two tiles, several
 * images, K from 1 to a few hundred), with each epilogue (bias, residual,
 * clamp, SiLU) alone and combined, serially and on a pool.  Convs proper
 * (padding, strides, the routing in conv.c) are covered against PyTorch
 * and the other conv paths by test_executor.c and the conformance suite. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "ops/conv_direct.h"

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static int rng_int(int n) { return (int)(rng_u32() % (uint32_t)n); }
static float rng_float(void) { return (float)rng_u32() / 4294967296.0f * 2.0f - 1.0f; }

enum { EPI_BIAS = 1, EPI_RES = 2, EPI_CLAMP = 4, EPI_SILU = 8 };

/* One random problem with epilogue flags `epi`; returns 1 when the kernel
 * matches the reference (relative to the sum of |terms|) and leaves the
 * guard floats around y alone. */
static int check_one(int64_t M, int64_t K, int64_t n, int64_t rows, int64_t width, int epi, threadpool *tp)
{
    const int64_t plane = rows * width, guard = 16;
    /* Row and tap offsets as a padded conv would have them: rows `wrow`
     * apart, taps anywhere in a channel block, positions consecutive. */
    int64_t wrow = width + rng_int(4), chan = (rows + 3) * wrow + 8;
    int64_t img_stride = K * chan + rng_int(7);
    int64_t *roff = malloc(sizeof(int64_t) * (size_t)K), *row_off = malloc(sizeof(int64_t) * (size_t)rows);
    for (int64_t k = 0; k < K; k++) roff[k] = k * chan + rng_int(3) * wrow + rng_int(3);
    for (int64_t q = 0; q < rows; q++) row_off[q] = q * wrow;
    size_t nx = (size_t)(n * img_stride + 64), ny = (size_t)(n * M * plane);
    float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * (size_t)(M * K));
    float *bias = malloc(sizeof(float) * (size_t)M), *res = malloc(sizeof(float) * ny);
    float *ybuf = malloc(sizeof(float) * (ny + 2 * guard)), *y = ybuf + guard;
    for (size_t i = 0; i < nx; i++) x[i] = rng_float();
    for (int64_t i = 0; i < M * K; i++) w[i] = rng_float();
    for (int64_t i = 0; i < M; i++) bias[i] = rng_float();
    for (size_t i = 0; i < ny; i++) res[i] = rng_float();
    for (size_t i = 0; i < ny + 2 * guard; i++) ybuf[i] = 12345.0f;

    sgemm_epi ep = {.bias = epi & EPI_BIAS ? bias : NULL, .res = epi & EPI_RES ? res : NULL,
                    .clamp = !!(epi & EPI_CLAMP), .lo = -0.25f, .hi = 0.5f, .silu = !!(epi & EPI_SILU)};
    convd_w *pw = convd_pack(w, M, K);
    ck_assert_ptr_nonnull(pw);
    ck_assert_int_eq(convd_rows(pw), M);
    ck_assert_int_eq(convd_depth(pw), K);
    convd_args a = {.x = x, .n = n, .img_stride = img_stride, .roff = roff, .row_off = row_off, .rows = rows,
                    .width = width, .plane = plane, .y = y, .ep = epi ? &ep : NULL};
    ck_assert_int_eq(convd_run(pw, &a, tp), 0);

    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++)
        for (int64_t m = 0; m < M && ok; m++)
            for (int64_t q = 0; q < rows && ok; q++)
                for (int64_t o = 0; o < width && ok; o++) {
                    double s = 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double t = (double)w[m * K + k] * x[i * img_stride + row_off[q] + roff[k] + o];
                        s += t;
                        mag += fabs(t);
                    }
                    int64_t at = (i * M + m) * plane + q * width + o;
                    if (epi & EPI_BIAS) s += bias[m], mag += fabs(bias[m]);
                    if (epi & EPI_RES) s += res[at], mag += fabs(res[at]);
                    if (epi & EPI_CLAMP) s = s < -0.25 ? -0.25 : s > 0.5 ? 0.5 : s;
                    if (epi & EPI_SILU) s = s / (1.0 + exp(-s));
                    if (fabs(y[at] - s) > 1e-5 * (mag + 1)) {
                        ok = 0;
                        fprintf(stderr, "M %lld K %lld n %lld rows %lld width %lld epi %d: y[%lld][%lld][%lld][%lld] = %g, want %g\n",
                                (long long)M, (long long)K, (long long)n, (long long)rows, (long long)width, epi,
                                (long long)i, (long long)m, (long long)q, (long long)o, y[at], s);
                    }
                }
    for (int64_t g = 0; g < guard; g++)
        if (ybuf[g] != 12345.0f || ybuf[guard + ny + g] != 12345.0f) ok = 0;
    convd_free(pw);
    free(x);
    free(w);
    free(bias);
    free(res);
    free(ybuf);
    free(roff);
    free(row_off);
    return ok;
}

static int have_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* Every row width from 1 to 2 * 14 + 3 (one tile, near-equal tiles, the
 * widest tile), output channels around the 16- and 32-lane boundaries. */
START_TEST(test_conv_direct_every_width_and_channel_tail)
{
    if (!have_avx512()) {
        ck_assert_ptr_null(convd_pack((const float[]){1.0f}, 1, 1));
        return;
    }
    rng_seed(1);
    static const int64_t ms[] = {1, 15, 16, 17, 32, 33, 48, 64};
    for (int64_t width = 1; width <= 31; width++) {
        int64_t M = ms[width % 8], K = 1 + rng_int(40);
        ck_assert_msg(check_one(M, K, 1 + rng_int(2), 1 + rng_int(3), width, rng_int(16), NULL),
                      "width %lld", (long long)width);
    }
}
END_TEST

/* Each epilogue alone and all together, on a pool, at batch > 1. */
START_TEST(test_conv_direct_each_epilogue_on_pool)
{
    if (!have_avx512()) return;
    threadpool *tp = tp_new(2);
    ck_assert_ptr_nonnull(tp);
    rng_seed(2);
    static const int epis[] = {0, EPI_BIAS, EPI_RES, EPI_CLAMP, EPI_SILU, EPI_BIAS | EPI_RES | EPI_CLAMP,
                               EPI_BIAS | EPI_SILU};
    for (size_t i = 0; i < sizeof epis / sizeof epis[0]; i++)
        ck_assert_msg(check_one(40 + rng_int(60), 9 * (1 + rng_int(20)), 3, 7, 7 + rng_int(50), epis[i], tp),
                      "epilogue %d", epis[i]);
    tp_free(tp);
}
END_TEST

/* Random shapes, serial and pooled. */
START_TEST(test_conv_direct_random_shapes)
{
    if (!have_avx512()) return;
    threadpool *tp = tp_new(2);
    rng_seed(3);
    for (int it = 0; it < 40; it++) {
        int64_t M = 1 + rng_int(100), K = 1 + rng_int(300), n = 1 + rng_int(3);
        int64_t rows = 1 + rng_int(9), width = 1 + rng_int(60);
        ck_assert_msg(check_one(M, K, n, rows, width, rng_int(16), it & 1 ? tp : NULL), "iteration %d", it);
    }
    tp_free(tp);
}
END_TEST

/* An epilogue with a post hook is out of the kernel's range: -1, y
 * untouched. */
static void post_noop(float *x, int64_t n) { (void)x; (void)n; }

START_TEST(test_conv_direct_refuses_post_hook)
{
    if (!have_avx512()) return;
    float w[2] = {1, 2}, x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[2] = {-1, -1};
    int64_t roff[1] = {0}, row_off[1] = {0};
    convd_w *pw = convd_pack(w, 2, 1);
    sgemm_epi ep = {.post = post_noop};
    convd_args a = {.x = x, .n = 1, .img_stride = 8, .roff = roff, .row_off = row_off, .rows = 1, .width = 1,
                    .plane = 1, .y = y, .ep = &ep};
    ck_assert_int_eq(convd_run(pw, &a, NULL), -1);
    ck_assert(y[0] == -1 && y[1] == -1);
    a.ep = NULL;
    ck_assert_int_eq(convd_run(pw, &a, NULL), 0);
    ck_assert(y[0] == 1 && y[1] == 2);
    convd_free(pw);
    convd_free(NULL);
}
END_TEST

Suite *conv_direct_suite(void)
{
    Suite *s = suite_create("conv_direct");
    TCase *tc = tcase_create("conv_direct");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_conv_direct_every_width_and_channel_tail);
    tcase_add_test(tc, test_conv_direct_each_epilogue_on_pool);
    tcase_add_test(tc, test_conv_direct_random_shapes);
    tcase_add_test(tc, test_conv_direct_refuses_post_hook);
    suite_add_tcase(s, tc);
    return s;
}
