/* This file implements the tests of core/ops/conv_winograd.c: the
 * F(2x2, 3x3) convolution against a double-precision direct 3x3 conv, over
 * shapes that reach every edge of its tiling (odd output sizes, rows of
 * more than 16 tiles and of fewer, every padding from 0 to 2 on each side,
 * channel counts off the vector and panel widths, blocks and output
 * channel parts on a pool), with each epilogue (bias, residual, clamp,
 * SiLU) alone and together, and the extremes it gathers for calibration
 * against those of its output. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "suites.h"
#include "ops/conv_winograd.h"
#include "rng.h"

enum { EPI_BIAS = 1, EPI_RES = 2, EPI_CLAMP = 4, EPI_SILU = 8 };

typedef struct wcase {
    int64_t n, c, m, h, w, pt, pl, pb, pr;
} wcase;

static int have_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* The output of case k with epilogue flags epi in double, and for each
 * output the sum of the magnitudes of its terms (the scale of its
 * rounding error); head gets conv + bias (EXT_HEAD's values). */
static void reference(const wcase *k, const float *x, const float *w, const float *bias, const float *res, int epi,
                      float lo, float hi, double *y, double *mag, double *head)
{
    int64_t oh = k->h + k->pt + k->pb - 2, ow = k->w + k->pl + k->pr - 2;
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t o = 0; o < k->m; o++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    double s = epi & EPI_BIAS ? bias[o] : 0.0, a = fabs(s);
                    for (int64_t c = 0; c < k->c; c++)
                        for (int i = 0; i < 3; i++)
                            for (int j = 0; j < 3; j++) {
                                int64_t yy = r + i - k->pt, xx = q + j - k->pl;
                                if (yy < 0 || yy >= k->h || xx < 0 || xx >= k->w) continue;
                                double t = (double)w[((o * k->c + c) * 3 + i) * 3 + j] *
                                           x[((n * k->c + c) * k->h + yy) * k->w + xx];
                                s += t;
                                a += fabs(t);
                            }
                    int64_t at = ((n * k->m + o) * oh + r) * ow + q;
                    head[at] = s;
                    if (epi & EPI_RES) s += res[at];
                    if (epi & EPI_CLAMP) s = fmin(hi, fmax(lo, s));
                    if (epi & EPI_SILU) s = s / (1.0 + exp(-s));
                    y[at] = s;
                    mag[at] = a + 1.0;
                }
}

/* Runs case k with epilogue epi (serially, or on tp) and checks every
 * output, the guard floats around y, and the gathered extremes of HEAD and
 * OUT.  Returns 1 when all hold. */
static int check_case(const wcase *k, int epi, threadpool *tp)
{
    const int64_t oh = k->h + k->pt + k->pb - 2, ow = k->w + k->pl + k->pr - 2, guard = 16;
    const size_t nx = (size_t)(k->n * k->c * k->h * k->w), ny = (size_t)(k->n * k->m * oh * ow);
    float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * (size_t)(k->m * k->c * 9));
    float *bias = malloc(sizeof(float) * (size_t)k->m), *res = malloc(sizeof(float) * ny);
    float *ybuf = malloc(sizeof(float) * (ny + 2 * guard)), *y = ybuf + guard;
    double *ref = malloc(sizeof(double) * ny), *mag = malloc(sizeof(double) * ny), *head = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < nx; i++) x[i] = rng_float();
    for (int64_t i = 0; i < k->m * k->c * 9; i++) w[i] = rng_float();
    for (int64_t i = 0; i < k->m; i++) bias[i] = rng_float();
    for (size_t i = 0; i < ny; i++) res[i] = rng_float();
    for (size_t i = 0; i < ny + 2 * guard; i++) ybuf[i] = 12345.0f;
    const float lo = -0.25f, hi = 0.5f;
    reference(k, x, w, bias, res, epi, lo, hi, ref, mag, head);

    int nt = tp_nthreads(tp);
    float *ext = malloc(sizeof(float) * EXT_FLOATS * (size_t)nt);
    for (int t = 0; t < nt; t++)
        for (int s = 0; s < EXT_STAGES; s++)
            for (int l = 0; l < EXT_LANES; l++) {
                ext[t * EXT_FLOATS + s * EXT_STAGE_FLOATS + l] = INFINITY;
                ext[t * EXT_FLOATS + s * EXT_STAGE_FLOATS + EXT_LANES + l] = -INFINITY;
            }
    sgemm_epi ep = {.bias = epi & EPI_BIAS ? bias : NULL, .res = epi & EPI_RES ? res : NULL,
                    .clamp = !!(epi & EPI_CLAMP), .lo = lo, .hi = hi, .silu = !!(epi & EPI_SILU),
                    .ext = ext, .ext_stages = 1u << EXT_OUT | 1u << EXT_HEAD};
    convw_w *pw = convw_pack(w, k->m, k->c);
    ck_assert_ptr_nonnull(pw);
    ck_assert_int_eq(convw_rows(pw), k->m);
    ck_assert_int_eq(convw_channels(pw), k->c);
    convw_args a = {.x = x, .n = k->n, .h = k->h, .w = k->w, .oh = oh, .ow = ow, .pt = k->pt, .pl = k->pl,
                    .y = y, .ep = &ep};
    ck_assert_int_eq(convw_run(pw, &a, tp), 0);
    int ok = 1;
    double out_lo = INFINITY, out_hi = -INFINITY, head_lo = INFINITY, head_hi = -INFINITY;
    for (size_t i = 0; i < ny && ok; i++) {
        if (!(fabs(y[i] - ref[i]) <= 1e-5 * mag[i])) {
            fprintf(stderr, "winograd: n %lld c %lld m %lld %lldx%lld pads %lld %lld %lld %lld epi %d: y[%zu] = %g, "
                    "want %g\n", (long long)k->n, (long long)k->c, (long long)k->m, (long long)k->h,
                    (long long)k->w, (long long)k->pt, (long long)k->pl, (long long)k->pb, (long long)k->pr, epi, i,
                    y[i], ref[i]);
            ok = 0;
        }
        out_lo = fmin(out_lo, y[i]);
        out_hi = fmax(out_hi, y[i]);
        head_lo = fmin(head_lo, head[i]);
        head_hi = fmax(head_hi, head[i]);
    }
    for (int64_t i = 0; i < guard && ok; i++)
        if (ybuf[i] != 12345.0f || y[ny + i] != 12345.0f) {
            fprintf(stderr, "winograd: wrote outside y (guard %lld)\n", (long long)i);
            ok = 0;
        }
    /* The lanes of every thread together hold exactly OUT's extremes, and
     * HEAD's up to rounding. */
    float glo[2] = {INFINITY, INFINITY}, ghi[2] = {-INFINITY, -INFINITY};
    for (int t = 0; t < nt; t++)
        for (int s = 0; s < 2; s++)
            for (int l = 0; l < EXT_LANES; l++) {
                const float *st = ext + t * EXT_FLOATS + (s ? EXT_HEAD : EXT_OUT) * EXT_STAGE_FLOATS;
                glo[s] = fminf(glo[s], st[l]);
                ghi[s] = fmaxf(ghi[s], st[EXT_LANES + l]);
            }
    if (ok && (glo[0] != (float)out_lo || ghi[0] != (float)out_hi)) {
        fprintf(stderr, "winograd: OUT extremes [%g, %g], output's [%g, %g]\n", glo[0], ghi[0], out_lo, out_hi);
        ok = 0;
    }
    double tol = 1e-5 * (9.0 * (double)k->c + 2.0);
    if (ok && (fabs(glo[1] - head_lo) > tol || fabs(ghi[1] - head_hi) > tol)) {
        fprintf(stderr, "winograd: HEAD extremes [%g, %g], want [%g, %g]\n", glo[1], ghi[1], head_lo, head_hi);
        ok = 0;
    }
    convw_free(pw);
    free(x);
    free(w);
    free(bias);
    free(res);
    free(ybuf);
    free(ref);
    free(mag);
    free(head);
    free(ext);
    return ok;
}

/* Every edge of the tiling: odd and even output sizes, rows of 1, 7, 16,
 * 17 and 40 tiles, each padding 0..2, channels off the widths, and enough
 * tiles for several blocks -- and, on two threads with few blocks, output
 * channels split in parts. */
START_TEST(test_winograd_matches_direct_sum)
{
    if (!have_avx512()) {
        ck_assert_ptr_null(convw_pack((const float[9]){0}, 1, 1));
        return;
    }
    static const wcase cases[] = {
        {1, 3, 5, 4, 4, 0, 0, 0, 0},      {1, 1, 1, 3, 3, 0, 0, 0, 0},     {2, 7, 13, 9, 11, 1, 1, 1, 1},
        {1, 16, 24, 14, 34, 1, 1, 1, 1},  {1, 5, 9, 6, 35, 0, 2, 1, 0},    {3, 4, 6, 7, 7, 2, 2, 2, 2},
        {1, 8, 17, 3, 80, 1, 0, 0, 1},    {2, 20, 12, 22, 22, 1, 1, 1, 1}, {1, 6, 200, 8, 8, 1, 1, 1, 1},
        {1, 12, 100, 12, 14, 0, 1, 2, 1}, {4, 9, 30, 15, 17, 1, 1, 1, 1},  {1, 2, 3, 1, 10, 1, 1, 1, 1},
    };
    threadpool *tp = tp_new(2);
    rng_seed(11);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int epi = 0; epi < 16; epi++)
            ck_assert_msg(check_case(&cases[i], epi, epi & 1 ? tp : NULL), "case %zu epilogue %d", i, epi);
    tp_free(tp);
}
END_TEST

START_TEST(test_winograd_refuses_post_hook)
{
    if (!have_avx512()) return;
    float w[9] = {1}, x[16] = {0}, y[4];
    convw_w *pw = convw_pack(w, 1, 1);
    ck_assert_ptr_nonnull(pw);
    sgemm_epi ep = {.post = (void (*)(float *, int64_t))abort};
    convw_args a = {.x = x, .n = 1, .h = 4, .w = 4, .oh = 2, .ow = 2, .y = y, .ep = &ep};
    ck_assert_int_eq(convw_run(pw, &a, NULL), -1);
    convw_free(pw);
    convw_free(NULL);
}
END_TEST

Suite *conv_winograd_suite(void)
{
    Suite *s = suite_create("conv_winograd");
    TCase *tc = tcase_create("conv_winograd");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_winograd_matches_direct_sum);
    tcase_add_test(tc, test_winograd_refuses_post_hook);
    suite_add_tcase(s, tc);
    return s;
}
