/* This file implements tests of the kernels' fast paths against plain
 * reference loops written here: the depthwise 2-D kernels (interior blocks
 * without masks, border blocks under masks, 16 channels at a time on small
 * planes, fused clamp and SiLU), the 3x3 stride-2 MaxPool, on shapes that
 * reach every block kind, convs on 1x1 maps, and GlobalAveragePool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "suites.h"
#include "executor.h"
#include "model_build.h"

/* Deterministic values in [-1, 1). */
static void fill(float *p, int64_t n, unsigned seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
}

static void run1(ir_graph *g, int threads, const xt *in, xt *out)
{
    executor *e;
    qk_err err = {0};
    ck_assert_msg(exec_new(g, threads, &e, &err) == QK_OK, "%s", err.msg);
    ck_assert_msg(exec_run(e, in, out, &err) == QK_OK, "%s", err.msg);
    exec_free(e);
}

/* act: 0 none, 1 Clip(0, 6), 2 SiLU (Sigmoid + Mul). */
static void check_depthwise(int64_t n, int64_t c, int64_t h, int64_t w, int k, int s, int pad, int act)
{
    int64_t oh = (h + 2 * pad - k) / s + 1, ow = (w + 2 * pad - k) / s + 1;
    int64_t xd[4] = {n, c, h, w}, wd[4] = {c, 1, k, k}, bd[1] = {c};
    float *x = malloc(sizeof(float) * (size_t)(n * c * h * w)), *wt = malloc(sizeof(float) * (size_t)(c * k * k)),
          *b = malloc(sizeof(float) * (size_t)c);
    fill(x, n * c * h * w, 1);
    fill(wt, c * k * k, 2);
    fill(b, c, 3);
    model_build *m = mb_new();
    int64_t xdyn[4] = {-1, c, h, w};
    mb_input(m, "X", 4, xdyn);
    mb_init(m, "W", 4, wd, wt);
    mb_init(m, "B", 1, bd, b);
    const char *ci[] = {"X", "W", "B"}, *co[] = {act ? "C" : "Y"};
    mb_node(m, "Conv", 3, ci, 1, co);
    mb_attr_int(m, "group", c);
    int64_t ks[2] = {k, k}, st[2] = {s, s}, pads[4] = {pad, pad, pad, pad};
    mb_attr_ints(m, "kernel_shape", 2, ks);
    mb_attr_ints(m, "strides", 2, st);
    mb_attr_ints(m, "pads", 4, pads);
    if (act == 1) {
        float lo = 0.0f, hi = 6.0f;
        mb_init(m, "lo", 0, NULL, &lo);
        mb_init(m, "hi", 0, NULL, &hi);
        const char *i2[] = {"C", "lo", "hi"}, *o2[] = {"Y"};
        mb_node(m, "Clip", 3, i2, 1, o2);
    } else if (act == 2) {
        const char *i2[] = {"C"}, *o2[] = {"S"}, *i3[] = {"C", "S"}, *o3[] = {"Y"};
        mb_node(m, "Sigmoid", 1, i2, 1, o2);
        mb_node(m, "Mul", 2, i3, 1, o3);
    }
    mb_output(m, "Y");
    ir_graph *g = mb_load(m);
    xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {n, c, h, w}, .data = x}, out;
    (void)xd;
    for (int threads = 1; threads <= 2; threads++) {
        run1(g, threads, &in, &out);
        ck_assert_int_eq(out.dims[2], oh);
        ck_assert_int_eq(out.dims[3], ow);
        const float *y = out.data;
        for (int64_t i = 0; i < n * c; i++)
            for (int64_t r = 0; r < oh; r++)
                for (int64_t q = 0; q < ow; q++) {
                    int64_t ch = i % c;
                    double acc = b[ch];
                    for (int kh = 0; kh < k; kh++)
                        for (int kw = 0; kw < k; kw++) {
                            int64_t ih = r * s - pad + kh, iw = q * s - pad + kw;
                            if (ih >= 0 && ih < h && iw >= 0 && iw < w)
                                acc += (double)wt[(ch * k + kh) * k + kw] * x[(i * h + ih) * w + iw];
                        }
                    if (act == 1) acc = fmin(fmax(acc, 0.0), 6.0);
                    if (act == 2) acc = acc / (1.0 + exp(-acc));
                    float got = y[(i * oh + r) * ow + q];
                    ck_assert_msg(fabs(got - acc) <= 1e-4 * (1.0 + fabs(acc)),
                                  "depthwise n%lld c%lld %lldx%lld k%d s%d p%d act%d: y[%lld,%lld,%lld] = %g, want %g",
                                  (long long)n, (long long)c, (long long)h, (long long)w, k, s, pad, act,
                                  (long long)i, (long long)r, (long long)q, got, acc);
                }
        free(out.data);
    }
    ir_free(g);
    free(x);
    free(wt);
    free(b);
}

/* Planes below, at and well above the sizes where blocks become interior
 * (a full 16-column segment past the left padding, full row blocks). */
START_TEST(test_depthwise_matches_reference)
{
    static const int64_t sizes[][2] = {{7, 7}, {14, 14}, {9, 40}, {37, 35}, {56, 56}, {70, 67}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int k = 3; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++) {
                check_depthwise(2, 3, sizes[i][0], sizes[i][1], k, s, k / 2, (int)(i % 3));
                if (i == 4) check_depthwise(1, 2, sizes[i][0], sizes[i][1], k, s, 0, 0);
            }
    check_depthwise(1, 2, 112, 112, 7, 2, 3, 1);
    /* 16 channels at a time on small planes (transposed blocks). */
    static const int64_t small[][2] = {{7, 7}, {14, 14}, {4, 5}, {16, 13}, {18, 18}};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        for (int k = 3; k <= 5; k += 2)
            for (int s = 1; s <= 2; s++)
                for (int act = 0; act < 3; act++) check_depthwise(2, 32, small[i][0], small[i][1], k, s, k / 2, act);
    check_depthwise(1, 16, 9, 9, 3, 1, 0, 0);
}
END_TEST

static void check_maxpool(int64_t n, int64_t c, int64_t h, int64_t w, int pad, int ceil_mode)
{
    float *x = malloc(sizeof(float) * (size_t)(n * c * h * w));
    fill(x, n * c * h * w, 7);
    model_build *m = mb_new();
    int64_t xd[4] = {-1, c, h, w};
    mb_input(m, "X", 4, xd);
    const char *i1[] = {"X"}, *o1[] = {"Y"};
    mb_node(m, "MaxPool", 1, i1, 1, o1);
    int64_t ks[2] = {3, 3}, st[2] = {2, 2}, pads[4] = {pad, pad, pad, pad};
    mb_attr_ints(m, "kernel_shape", 2, ks);
    mb_attr_ints(m, "strides", 2, st);
    mb_attr_ints(m, "pads", 4, pads);
    mb_attr_int(m, "ceil_mode", ceil_mode);
    mb_output(m, "Y");
    ir_graph *g = mb_load(m);
    xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {n, c, h, w}, .data = x}, out;
    run1(g, 2, &in, &out);
    int64_t oh = out.dims[2], ow = out.dims[3];
    int64_t want_h = ceil_mode ? (h + 2 * pad - 3 + 1) / 2 + 1 : (h + 2 * pad - 3) / 2 + 1;
    if (ceil_mode && (want_h - 1) * 2 >= h + pad) want_h--;
    ck_assert_int_eq(oh, want_h);
    const float *y = out.data;
    for (int64_t i = 0; i < n * c; i++)
        for (int64_t r = 0; r < oh; r++)
            for (int64_t q = 0; q < ow; q++) {
                float best = -INFINITY;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        int64_t ih = r * 2 - pad + kh, iw = q * 2 - pad + kw;
                        if (ih >= 0 && ih < h && iw >= 0 && iw < w && x[(i * h + ih) * w + iw] > best)
                            best = x[(i * h + ih) * w + iw];
                    }
                ck_assert_msg(y[(i * oh + r) * ow + q] == best, "maxpool %lldx%lld pad %d ceil %d: y[%lld,%lld,%lld] = %g, want %g",
                              (long long)h, (long long)w, pad, ceil_mode, (long long)i, (long long)r, (long long)q,
                              y[(i * oh + r) * ow + q], best);
            }
    free(out.data);
    ir_free(g);
    free(x);
}

/* A 3-D pool with a 1x3x3 window: planes of depth 3, not the 2-D kernel's. */
static void check_maxpool_depth(void)
{
    const int64_t c = 2, d = 3, h = 9, w = 11;
    float x[2 * 3 * 9 * 11];
    fill(x, c * d * h * w, 17);
    model_build *m = mb_new();
    int64_t xd[5] = {1, c, d, h, w};
    mb_input(m, "X", 5, xd);
    const char *i1[] = {"X"}, *o1[] = {"Y"};
    mb_node(m, "MaxPool", 1, i1, 1, o1);
    int64_t ks[3] = {1, 3, 3}, st[3] = {1, 2, 2};
    mb_attr_ints(m, "kernel_shape", 3, ks);
    mb_attr_ints(m, "strides", 3, st);
    mb_output(m, "Y");
    ir_graph *g = mb_load(m);
    xt in = {.dtype = DT_FLOAT, .rank = 5, .dims = {1, c, d, h, w}, .data = x}, out;
    run1(g, 1, &in, &out);
    const int64_t oh = 4, ow = 5;
    ck_assert_int_eq(out.dims[3], oh);
    ck_assert_int_eq(out.dims[4], ow);
    for (int64_t p = 0; p < c * d; p++)
        for (int64_t r = 0; r < oh; r++)
            for (int64_t q = 0; q < ow; q++) {
                float best = -INFINITY;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) best = fmaxf(best, x[(p * h + r * 2 + kh) * w + q * 2 + kw]);
                ck_assert_msg(((float *)out.data)[(p * oh + r) * ow + q] == best, "depth pool plane %lld [%lld,%lld]",
                              (long long)p, (long long)r, (long long)q);
            }
    free(out.data);
    ir_free(g);
}

START_TEST(test_maxpool_3x3_stride2_matches_reference)
{
    check_maxpool_depth();
    static const int64_t sizes[][2] = {{4, 4}, {7, 9}, {20, 33}, {55, 55}, {111, 111}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int pad = 0; pad <= 1; pad++)
            for (int ceil_mode = 0; ceil_mode <= 1; ceil_mode++) check_maxpool(2, 3, sizes[i][0], sizes[i][1], pad, ceil_mode);
}
END_TEST

/* A 1x1 conv with fused Relu on 1x1 maps (squeeze-excitation): a
 * matrix-vector product at batch 1, the batch folded at batch 3. */
START_TEST(test_conv_on_1x1_maps_matches_reference)
{
    const int64_t c = 24, m = 40;
    float w[40 * 24], b[40], x[3 * 24];
    fill(w, m * c, 11);
    fill(b, m, 12);
    fill(x, 3 * c, 13);
    model_build *mb = mb_new();
    int64_t xd[4] = {-1, c, 1, 1}, wd[4] = {m, c, 1, 1}, bd[1] = {m};
    mb_input(mb, "X", 4, xd);
    mb_init(mb, "W", 4, wd, w);
    mb_init(mb, "B", 1, bd, b);
    const char *ci[] = {"X", "W", "B"}, *co[] = {"C"}, *ri[] = {"C"}, *ro[] = {"Y"};
    mb_node(mb, "Conv", 3, ci, 1, co);
    mb_node(mb, "Relu", 1, ri, 1, ro);
    mb_output(mb, "Y");
    ir_graph *g = mb_load(mb);
    for (int64_t n = 1; n <= 3; n += 2) {
        xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {n, c, 1, 1}, .data = x}, out;
        run1(g, 2, &in, &out);
        const float *y = out.data;
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < m; o++) {
                double acc = b[o];
                for (int64_t k = 0; k < c; k++) acc += (double)w[o * c + k] * x[i * c + k];
                acc = fmax(acc, 0.0);
                ck_assert_msg(fabs(y[i * m + o] - acc) <= 1e-5 * (1.0 + fabs(acc)), "n%lld y[%lld,%lld] = %g, want %g",
                              (long long)n, (long long)i, (long long)o, y[i * m + o], acc);
            }
        free(out.data);
    }
    ir_free(g);
}
END_TEST

/* GlobalAveragePool on planes whose sizes leave every tail length. */
START_TEST(test_global_average_pool_matches_reference)
{
    for (int64_t hw = 1; hw <= 41; hw += 4) {
        float x[2 * 3 * 41 * 41];
        fill(x, 2 * 3 * hw * hw, (unsigned)hw);
        model_build *m = mb_new();
        int64_t xd[4] = {-1, 3, hw, hw};
        mb_input(m, "X", 4, xd);
        const char *i1[] = {"X"}, *o1[] = {"Y"};
        mb_node(m, "GlobalAveragePool", 1, i1, 1, o1);
        mb_output(m, "Y");
        ir_graph *g = mb_load(m);
        xt in = {.dtype = DT_FLOAT, .rank = 4, .dims = {2, 3, hw, hw}, .data = x}, out;
        run1(g, 1, &in, &out);
        for (int64_t p = 0; p < 6; p++) {
            double sum = 0;
            for (int64_t i = 0; i < hw * hw; i++) sum += x[p * hw * hw + i];
            float want = (float)(sum / (double)(hw * hw)), got = ((float *)out.data)[p];
            ck_assert_msg(fabsf(got - want) <= 1e-6f, "%lldx%lld plane %lld: %g, want %g", (long long)hw, (long long)hw,
                          (long long)p, got, want);
        }
        free(out.data);
        ir_free(g);
    }
}
END_TEST

Suite *fast_paths_suite(void)
{
    Suite *s = suite_create("fast_paths");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_depthwise_matches_reference);
    tcase_add_test(tc, test_maxpool_3x3_stride2_matches_reference);
    tcase_add_test(tc, test_conv_on_1x1_maps_matches_reference);
    tcase_add_test(tc, test_global_average_pool_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}
