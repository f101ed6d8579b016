/* This file implements the tests of core/ops/conv_direct.c: the
 * output-channel-vectorized kernel against a double-precision reference of
 * the implicit GEMM it computes, over random shapes (output channels not a
 * multiple of 32, rows of every width from 1 past two tiles, several
 * images, K from 1 to a few hundred, input steps 1 and 2), with each epilogue (bias, residual,
 * clamp, SiLU) alone and combined, serially and on a pool; and the Conv
 * op routed through it (conv.c: padding, strides, dilations, the epilogue
 * translation) against the engine and the plain im2col path on the same
 * inputs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "ir.h"
#include "onnx_io.h"
#include "ops/conv_direct.h"

/* Internal to conv.c: 0 no prepared state, 1 the im2col engine, 2
 * conv_direct.c, 3 conv_winograd.c. */
int conv_state_path(const void *state);

#include "rng.h"

enum { EPI_BIAS = 1, EPI_RES = 2, EPI_CLAMP = 4, EPI_SILU = 8 };

/* One random problem with epilogue flags `epi`; returns 1 when the kernel
 * matches the reference (relative to the sum of |terms|) and leaves the
 * guard floats around y alone. */
static int check_one(int64_t M, int64_t K, int64_t n, int64_t rows, int64_t width, int64_t step, int epi,
                     threadpool *tp)
{
    const int64_t plane = rows * width, guard = 16;
    /* Row and tap offsets as a padded conv would have them: rows `wrow`
     * apart, taps anywhere in a channel block, positions consecutive. */
    int64_t wrow = width * step + rng_int(4), chan = (rows + 3) * wrow + 8;
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
                    .width = width, .plane = plane, .step = step, .y = y, .ep = epi ? &ep : NULL};
    ck_assert_int_eq(convd_run(pw, &a, tp), 0);

    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++)
        for (int64_t m = 0; m < M && ok; m++)
            for (int64_t q = 0; q < rows && ok; q++)
                for (int64_t o = 0; o < width && ok; o++) {
                    double s = 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {
                        double t = (double)w[m * K + k] * x[i * img_stride + row_off[q] + roff[k] + o * step];
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
                        fprintf(stderr, "M %lld K %lld n %lld rows %lld width %lld step %lld epi %d: y[%lld][%lld][%lld][%lld] = %g, want %g\n",
                                (long long)M, (long long)K, (long long)n, (long long)rows, (long long)width,
                                (long long)step, epi,
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
        ck_assert_msg(check_one(M, K, 1 + rng_int(2), 1 + rng_int(3), width, 1 + width % 2, rng_int(16), NULL),
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
        ck_assert_msg(check_one(40 + rng_int(60), 9 * (1 + rng_int(20)), 3, 7, 7 + rng_int(50), 1 + (i & 1), epis[i], tp),
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
        ck_assert_msg(check_one(M, K, n, rows, width, 1 + rng_int(2), rng_int(16), it & 1 ? tp : NULL), "iteration %d", it);
    }
    tp_free(tp);
}
END_TEST

/* The pool's shrinking runs of items: with 3 threads, block groups of
 * one block (K large enough that a group holds one block) and item counts
 * that do not divide evenly, every output is still written exactly once
 * (y starts as a sentinel, so a skipped item fails). */
START_TEST(test_conv_direct_claims_cover_every_item)
{
    if (!have_avx512()) return;
    threadpool *tp = tp_new(3);
    ck_assert_ptr_nonnull(tp);
    rng_seed(4);
    static const int64_t ks[] = {9, 2100, 4500};
    for (int it = 0; it < 6; it++) {
        int64_t M = 33 + rng_int(100), K = ks[it % 3], n = 1 + rng_int(5);
        ck_assert_msg(check_one(M, K, n, 1 + rng_int(7), 1 + rng_int(20), 1 + (it & 1), EPI_BIAS | EPI_RES, tp),
                      "iteration %d", it);
    }
    tp_free(tp);
}
END_TEST

/* An epilogue with a post hook, or a step other than 1 and 2, is out of
 * the kernel's range: -1, y untouched. */
static void post_noop(float *x, int64_t n) { (void)x; (void)n; }

START_TEST(test_conv_direct_refuses_post_hook)
{
    if (!have_avx512()) return;
    float w[2] = {1, 2}, x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[2] = {-1, -1};
    int64_t roff[1] = {0}, row_off[1] = {0};
    convd_w *pw = convd_pack(w, 2, 1);
    sgemm_epi ep = {.post = post_noop};
    convd_args a = {.x = x, .n = 1, .img_stride = 8, .roff = roff, .row_off = row_off, .rows = 1, .width = 1,
                    .plane = 1, .step = 1, .y = y, .ep = &ep};
    ck_assert_int_eq(convd_run(pw, &a, NULL), -1);
    ck_assert(y[0] == -1 && y[1] == -1);
    a.ep = NULL;
    a.step = 3;
    ck_assert_int_eq(convd_run(pw, &a, NULL), -1);
    ck_assert(y[0] == -1 && y[1] == -1);
    a.step = 1;
    ck_assert_int_eq(convd_run(pw, &a, NULL), 0);
    ck_assert(y[0] == 1 && y[1] == 2);
    convd_free(pw);
    convd_free(NULL);
}
END_TEST

/* ------------------------------------------------- the Conv op, by path */

typedef struct conv_case {
    int64_t n, c, m, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
} conv_case;

/* Runs Conv on `node` (attributes set from cc) with prepared state from
 * QK_CONV_DIRECT=`direct` ("": the default routing; NULL: the plain path),
 * QK_CONV_WINOGRAD=`wino` while it prepares and runs (NULL: unset), and
 * epilogue epi into y (allocated); returns the path prepare chose. */
static int run_conv_env(const ir_node *node, const xt *const *in, xt *y, const op_epilogue *epi, threadpool *tp,
                        const char *direct, const char *wino)
{
    const op_def *d = op_lookup("Conv");
    const op_prep *prep = op_prep_lookup("Conv");
    qk_err err = {0};
    xt *outs[1] = {y};
    op_ctx c = {.node = node, .n_in = 3, .in = in, .n_out = 1, .out = outs, .pool = tp, .opset = 17, .err = &err};
    ck_assert_msg(d->infer(&c) == QK_OK, "%s", err.msg);
    y->data = malloc((size_t)xt_nbytes(y));
    void *state = NULL;
    if (wino) setenv("QK_CONV_WINOGRAD", wino, 1);
    if (direct) {
        setenv("QK_CONV_DIRECT", direct, 1);
        ck_assert_msg(prep->prepare(&c, &state) == QK_OK, "%s", err.msg);
        unsetenv("QK_CONV_DIRECT");
    }
    c.state = state;
    c.epi = epi;
    ck_assert_msg(d->run(&c) == QK_OK, "%s", err.msg);
    unsetenv("QK_CONV_WINOGRAD");
    int path = conv_state_path(state);
    if (state) prep->release(state);
    return path;
}

static int run_conv(const ir_node *node, const xt *const *in, xt *y, const op_epilogue *epi, threadpool *tp,
                    const char *direct)
{
    return run_conv_env(node, in, y, epi, tp, direct, NULL);
}

/* Every geometry conv.c hands the kernel differently: unpadded (X read in
 * place) at stride 1 and 2, padded at stride 1 and 2 (plain padded copy),
 * stride 3 (phase-split copy), asymmetric padding, dilation (padded and
 * not), 1x1 and 7x7 kernels, 7x7 maps (rows paired), 1-D; channel counts
 * off the 16/32 lanes, odd sizes, batch > 1.  Each with no epilogue, Relu,
 * residual + Relu, Clip and SiLU; the direct path must match the engine
 * and the plain path, and 1x1 stride-1 convs must stay on the engine. */
START_TEST(test_conv_op_direct_matches_other_paths)
{
    if (!have_avx512()) return;
    static const conv_case cases[] = {
        {1, 16, 32, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {2, 20, 40, 8, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
        {1, 17, 33, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1},
        {3, 24, 64, 10, 13, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1},
        {1, 16, 19, 12, 15, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1},
        {2, 18, 30, 11, 12, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1},
        {1, 16, 48, 13, 14, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 16, 24, 10, 12, 3, 3, 1, 2, 0, 2, 1, 0, 1, 1},
        {2, 16, 35, 12, 12, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
        {1, 16, 64, 19, 23, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1},
        {2, 32, 40, 1, 37, 1, 5, 1, 2, 0, 2, 0, 2, 1, 1},
        {1, 16, 20, 11, 13, 3, 3, 1, 2, 0, 0, 0, 0, 2, 1},
        {2, 16, 96, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    };
    qk_err err = {0};
    ir_graph *g = NULL;
    ck_assert_msg(onnx_load(TEST_DATA_DIR "/fields.onnx", &g, &err) == QK_OK, "%s", err.msg);
    threadpool *tp = tp_new(2);
    rng_seed(4);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const conv_case *cc = &cases[ci];
        int ni = ir_add_node(g, "Conv", "conv_under_test", 0, NULL, 0, NULL);
        ck_assert_int_ge(ni, 0);
        ir_node *node = &g->nodes[ni];
        int64_t ks[2] = {cc->kh, cc->kw}, st[2] = {cc->sh, cc->sw}, dl[2] = {cc->dh, cc->dw};
        int64_t pads[4] = {cc->pt, cc->pl, cc->pb, cc->pr};
        int one_d = cc->h == 1 && cc->kh == 1;   /* as a 1-D conv: [N, C, W] */
        ir_node_set_attr_ints(node, "kernel_shape", ks + one_d, 2 - one_d);
        ir_node_set_attr_ints(node, "strides", st + one_d, 2 - one_d);
        ir_node_set_attr_ints(node, "dilations", dl + one_d, 2 - one_d);
        if (one_d) {
            int64_t p1[2] = {cc->pl, cc->pr};
            ir_node_set_attr_ints(node, "pads", p1, 2);
        } else {
            ir_node_set_attr_ints(node, "pads", pads, 4);
        }
        xt x = {.dtype = DT_FLOAT, .rank = 4 - one_d}, w = {.dtype = DT_FLOAT, .rank = 4 - one_d},
           b = {.dtype = DT_FLOAT, .rank = 1, .dims = {cc->m}};
        int64_t xd[4] = {cc->n, cc->c, cc->h, cc->w}, wd[4] = {cc->m, cc->c, cc->kh, cc->kw};
        for (int i = 0, j = 0; i < 4; i++) {
            if (one_d && i == 2) continue;
            x.dims[j] = xd[i];
            w.dims[j++] = wd[i];
        }
        x.data = malloc((size_t)xt_nbytes(&x));
        w.data = malloc((size_t)xt_nbytes(&w));
        b.data = malloc((size_t)xt_nbytes(&b));
        for (int64_t i = 0; i < xt_numel(&x); i++) ((float *)x.data)[i] = rng_float();
        for (int64_t i = 0; i < xt_numel(&w); i++) ((float *)w.data)[i] = rng_float();
        for (int64_t i = 0; i < cc->m; i++) ((float *)b.data)[i] = rng_float();
        const xt *in[3] = {&x, &w, &b};
        for (int e = 0; e < 5; e++) {
            xt res = {0}, yp = {.dtype = DT_FLOAT}, ye = yp, yd = yp;
            op_epilogue epi = {.act = OP_ACT_NONE};
            if (e == 1 || e == 2) epi = (op_epilogue){.act = OP_ACT_CLAMP, .lo = 0.0f, .hi = INFINITY};
            if (e == 3) epi = (op_epilogue){.act = OP_ACT_CLAMP, .lo = 0.0f, .hi = 6.0f};
            if (e == 4) epi.act = OP_ACT_SILU;
            /* The residual has the output's shape: learn it from a plain run. */
            ck_assert_int_eq(run_conv(node, in, &yp, NULL, tp, NULL), 0);
            if (e == 2) {
                res = yp;
                res.data = malloc((size_t)xt_nbytes(&yp));
                for (int64_t i = 0; i < xt_numel(&yp); i++) ((float *)res.data)[i] = rng_float();
                epi.residual = &res;
            }
            free(yp.data);
            const op_epilogue *ep = e ? &epi : NULL;
            ck_assert_int_eq(run_conv(node, in, &yp, ep, tp, NULL), 0);
            ck_assert_int_eq(run_conv(node, in, &ye, ep, tp, "0"), 1);
            /* 1x1 stride-1 convs stay on the engine (see conv.c). */
            int pw1 = cc->kh == 1 && cc->kw == 1 && cc->sh == 1 && cc->sw == 1;
            ck_assert_int_eq(run_conv(node, in, &yd, ep, e & 1 ? tp : NULL, "1"), pw1 ? 1 : 2);
            /* Unforced, the kernel takes only convs of >= 32 input channels. */
            if (e == 0) {
                xt yr = {.dtype = DT_FLOAT};
                ck_assert_int_eq(run_conv(node, in, &yr, ep, tp, ""), (!pw1 && cc->c >= 32) ? 2 : 1);
                free(yr.data);
            }
            /* 2-D 3x3 stride-1 undilated convs may go Winograd (forced here
             * at any size; conv.c's own thresholds are a speed choice). */
            int wino = !one_d && cc->kh == 3 && cc->kw == 3 && cc->sh == 1 && cc->sw == 1 && cc->dh == 1 &&
                       cc->dw == 1;
            xt yw = {.dtype = DT_FLOAT};
            ck_assert_int_eq(run_conv_env(node, in, &yw, ep, e & 1 ? tp : NULL, "", "1"),
                             wino ? 3 : (!pw1 && cc->c >= 32) ? 2 : 1);
            int64_t ny = xt_numel(&yp);
            ck_assert_int_eq(xt_numel(&yd), ny);
            ck_assert_int_eq(xt_numel(&yw), ny);
            double md = 0, me = 0, mw = 0, mag = 0;
            for (int64_t i = 0; i < ny; i++) {
                double r = ((float *)yp.data)[i];
                md = fmax(md, fabs(((float *)yd.data)[i] - r));
                me = fmax(me, fabs(((float *)ye.data)[i] - r));
                mw = fmax(mw, fabs(((float *)yw.data)[i] - r));
                mag = fmax(mag, fabs(r));
            }
            ck_assert_msg(md <= 1e-5 * (mag + 1) && me <= 1e-5 * (mag + 1) && mw <= 1e-5 * (mag + 1),
                          "case %zu epilogue %d: max diff direct %g engine %g winograd %g (max |y| %g)", ci, e, md,
                          me, mw, mag);
            free(yw.data);
            free(yp.data);
            free(ye.data);
            free(yd.data);
            free(res.data);
        }
        free(x.data);
        free(w.data);
        free(b.data);
    }
    tp_free(tp);
    ir_free(g);
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
    tcase_add_test(tc, test_conv_direct_claims_cover_every_item);
    tcase_add_test(tc, test_conv_direct_refuses_post_hook);
    tcase_add_test(tc, test_conv_op_direct_matches_other_paths);
    suite_add_tcase(s, tc);
    return s;
}
