/* This file implements the tests of the observer plugins
 * (plugins/observers/{moving_average,percentile,kl,mse}.c and the histogram
 * they share, histogram.h), loaded through the real registry and driven
 * through the real host table, with arguments parsed from YAML.
 *
 * The numbers are checked against known distributions drawn from a
 * deterministic generator: percentiles of uniform and normal data, the
 * moving average replayed batch by batch, KL and MSE clipping heavy tails
 * but not uniform data (MSE also against a brute-force search over the
 * samples, quantized with the host's own arithmetic), per-channel ranges,
 * histogram growth (whatever the batch order), merges of shards equal to one
 * run, and every argument and state error. */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <quantkit/quantkit.h>
#include "host.h"
#include "qparams.h"
#include "registry.h"
/* By relative path: a plain "config.h" could find an autoconf header first. */
#include "../core/config.h"

/* ---- deterministic random numbers (splitmix64) ------------------------------ */

static uint64_t rng;

static void seed(uint64_t s) { rng = s; }

static uint64_t next64(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never exactly 0 or 1, so logs are finite. */
static double uniform01(void) { return ((double)(next64() >> 11) + 0.5) * 0x1p-53; }
static double uniform(double a, double b) { return a + (b - a) * uniform01(); }
static double normal(void) { return sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01()); }

static double laplace(double b)
{
    double u = uniform01() - 0.5;
    return u < 0 ? b * log(1 + 2 * u) : -b * log(1 - 2 * u);
}

static float *uniform_values(int64_t n, double a, double b)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)uniform(a, b);
    return x;
}

/* Laplace(1) values with `outliers` of them replaced by +-big, spread out. */
static float *heavy_tailed_values(int64_t n, int outliers, double big)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)laplace(1.0);
    for (int k = 0; k < outliers; k++)
        x[(int64_t)k * (n / outliers) + 17] = (float)(k % 2 ? -big : big);
    return x;
}

static float max_abs(const float *x, int64_t n)
{
    float m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* ---- observers through the registry and the host table -------------------- */

static registry *reg;

static void setup(void)
{
    qk_err err = {0};
    unsetenv("QUANTKIT_PLUGIN_PATH");
    ck_assert_msg(registry_new(NULL, 0, &reg, &err) == QK_OK, "%s", err.msg);
}

static void teardown(void)
{
    registry_free(reg);
    reg = NULL;
}

/* One observer as the host would run it.  Lives in place: the host table
 * and the params handle point into it. */
typedef struct observer {
    const qk_observer_vtable *vt;
    void *state;
    qk_err err;
    host_ctx hc;
    qk_config *cfg;
    qk_params *params;
    qk_quant_spec spec;
    char who[64];
} observer;

static qk_quant_spec spec_of(int bits, int symmetric)
{
    /* Symmetric int8 / asymmetric uint8, ONNX Runtime's default pairing. */
    qk_quant_spec s = {sizeof s, bits, symmetric, symmetric, 0, 0, 0, 0};
    return s;
}

static qk_quant_spec channel_spec(int bits, int symmetric, int axis)
{
    qk_quant_spec s = spec_of(bits, symmetric);
    s.per_channel = 1;
    s.axis = axis;
    return s;
}

/* Creates observer `name` with `args` written as a YAML flow mapping
 * ("{bins: 512}"), or no arguments for NULL.  Returns create's status; the
 * message is in o->err. */
static int try_open(observer *o, const char *name, const char *args, qk_quant_spec spec)
{
    memset(o, 0, sizeof *o);
    snprintf(o->who, sizeof o->who, "observer '%s'", name);
    const qk_plugin_descriptor *d;
    ck_assert_msg(registry_get(reg, QK_PLUGIN_OBSERVER, name, &d, &o->err) == QK_OK, "%s", o->err.msg);
    o->vt = d->vtable;
    const cfg_map *map = NULL;
    if (args) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "version: 1\nquantize:\n  activation: {observer: %s, observer_args: %s}\n", name,
                 args);
        ck_assert_msg(config_parse_string(yaml, "t.yaml", &o->cfg, &o->err) == QK_OK, "%s", o->err.msg);
        qk_resolved_rule rule;
        config_resolve(o->cfg, "Conv", "n", &rule);
        map = rule.activation.observer_args;
    }
    o->params = host_params_new(map, &o->err);
    ck_assert_ptr_nonnull(o->params);
    host_ctx_init(&o->hc, o->who, NULL, &o->err);
    o->spec = spec;
    return o->vt->create(&o->hc.host, o->params, &o->spec, &o->state);
}

static void open_ok(observer *o, const char *name, const char *args, qk_quant_spec spec)
{
    int rc = try_open(o, name, args, spec);
    ck_assert_msg(rc == QK_OK, "%s %s: %s", name, args ? args : "", o->err.msg);
    ck_assert_ptr_nonnull(o->state);
}

static void close_observer(observer *o)
{
    o->vt->destroy(o->state);
    host_params_free(o->params);
    config_free(o->cfg);
    o->state = NULL;
}

/* Observes a float tensor of the given shape. */
static int try_observe(observer *o, const float *x, int rank, const int64_t *dims)
{
    xt t = {DT_FLOAT, rank, {0}, (void *)x};
    for (int i = 0; i < rank; i++)
        t.dims[i] = dims[i];
    struct qk_tensor v = host_tensor_view(&t, "x");
    return o->vt->observe(o->state, &v);
}

/* Observes x[0..n) as batches of `batch` values (1-D tensors). */
static void observe_in_batches(observer *o, const float *x, int64_t n, int64_t batch)
{
    for (int64_t at = 0; at < n; at += batch) {
        int64_t dims[1] = {n - at < batch ? n - at : batch};
        int rc = try_observe(o, x + at, 1, dims);
        ck_assert_msg(rc == QK_OK, "%s", o->err.msg);
    }
}

static void range_ok(observer *o, int64_t channels, float *lo, float *hi)
{
    int rc = o->vt->range(o->state, channels, lo, hi);
    ck_assert_msg(rc == QK_OK, "%s", o->err.msg);
}

/* Per-tensor range of x under observer `name`. */
static void range_of(const char *name, const char *args, qk_quant_spec spec, const float *x, int64_t n,
                     int64_t batch, float *lo, float *hi)
{
    observer o;
    open_ok(&o, name, args, spec);
    observe_in_batches(&o, x, n, batch);
    range_ok(&o, 1, lo, hi);
    close_observer(&o);
}

/* Mean squared error of quantizing x with the host's qparams for [lo, hi]. */
static double quantization_mse(const float *x, int64_t n, qk_quant_spec spec, float lo, float hi)
{
    qk_qparams qp;
    qk_err err = {0};
    ck_assert_msg(qparams_from_range(&spec, 1, &lo, &hi, &qp, "t", &err) == QK_OK, "%s", err.msg);
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t q = qk_quantize_one(x[i], qp.scale[0], qp.zero_point[0], qp.qmin, qp.qmax);
        double d = (double)qk_dequantize_one(q, qp.scale[0], qp.zero_point[0]) - x[i];
        sum += d * d;
    }
    qparams_free(&qp);
    return sum / (double)n;
}

#define assert_near(got, want, tol)                                                                               \
    ck_assert_msg(fabs((double)(got) - (double)(want)) <= (tol), "%s = %.9g, expected %.9g +- %g", #got,      \
                  (double)(got), (double)(want), (double)(tol))

static const char *const histogram_observers[] = {"percentile", "kl", "mse"};
static const char *const new_observers[] = {"moving_average", "percentile", "kl", "mse"};
#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

/* ---- percentile ------------------------------------------------------------ */

START_TEST(test_percentile_of_uniform_data)
{
    seed(1);
    int64_t n = 200000;
    float lo, hi;
    /* U(0, 1): the p-th percentile is p/100. */
    float *x = uniform_values(n, 0, 1);
    range_of("percentile", "{percentile: 99}", spec_of(8, 0), x, n, 50000, &lo, &hi);
    assert_near(hi, 0.99, 0.0099);
    assert_near(lo, 0.01, 0.002);
    range_of("percentile", "{percentile: 90}", spec_of(8, 0), x, n, 50000, &lo, &hi);
    assert_near(hi, 0.90, 0.009);
    assert_near(lo, 0.10, 0.003);

    /* percentile 100 is exactly minmax. */
    float mlo, mhi;
    range_of("percentile", "{percentile: 100}", spec_of(8, 0), x, n, 50000, &lo, &hi);
    range_of("minmax", NULL, spec_of(8, 0), x, n, 50000, &mlo, &mhi);
    ck_assert_float_eq(lo, mlo);
    ck_assert_float_eq(hi, mhi);
    free(x);

    /* Symmetric: percentile of |x|, |U(-1, 1)| = U(0, 1). */
    x = uniform_values(n, -1, 1);
    range_of("percentile", "{percentile: 99}", spec_of(8, 1), x, n, 50000, &lo, &hi);
    assert_near(hi, 0.99, 0.0099);
    ck_assert_float_eq(lo, -hi);
    free(x);
}
END_TEST

START_TEST(test_percentile_of_normal_data_ignores_outliers)
{
    seed(2);
    int64_t n = 100000;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)normal();
    x[10] = 500;
    x[20000] = -500;
    x[90000] = 500;
    float lo, hi, mlo, mhi;
    /* P(|Z| > 3.2905) = 0.001 */
    range_of("percentile", "{percentile: 99.9}", spec_of(8, 1), x, n, 10000, &lo, &hi);
    assert_near(hi, 3.2905, 0.03 * 3.2905);
    range_of("minmax", NULL, spec_of(8, 1), x, n, 10000, &mlo, &mhi);
    ck_assert_float_eq(mhi, 500);
    /* The default (99.99) also stays with the bulk: P(|Z| > 3.8906) = 1e-4. */
    range_of("percentile", NULL, spec_of(8, 1), x, n, 10000, &lo, &hi);
    assert_near(hi, 3.8906, 0.08 * 3.8906);
    free(x);
}
END_TEST

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Batches whose range doubles each time (both ends): the histogram must
 * widen and re-bin without losing counts, and end up exactly as if the
 * widest batch had come first. */
START_TEST(test_histogram_grows_across_batches)
{
    seed(3);
    enum { BATCHES = 8, PER = 20000 };
    int64_t n = BATCHES * PER;
    float *x = malloc((size_t)n * sizeof *x);
    for (int b = 0; b < BATCHES; b++)
        for (int i = 0; i < PER; i++)
            x[b * PER + i] = (float)uniform(-0.5 * ldexp(1, b), ldexp(1, b));
    float *sorted = malloc((size_t)n * sizeof *sorted);
    memcpy(sorted, x, (size_t)n * sizeof *x);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_floats);

    static const double percentiles[] = {50, 90, 99};
    for (int k = 0; k < 3; k++) {
        char args[64];
        snprintf(args, sizeof args, "{percentile: %g}", percentiles[k]);
        observer fwd, rev;
        open_ok(&fwd, "percentile", args, spec_of(8, 0));
        open_ok(&rev, "percentile", args, spec_of(8, 0));
        for (int b = 0; b < BATCHES; b++) {
            int64_t dims[1] = {PER};
            ck_assert_int_eq(try_observe(&fwd, x + b * PER, 1, dims), QK_OK);
            ck_assert_int_eq(try_observe(&rev, x + (BATCHES - 1 - b) * PER, 1, dims), QK_OK);
        }
        float lo, hi, rlo, rhi;
        range_ok(&fwd, 1, &lo, &hi);
        range_ok(&rev, 1, &rlo, &rhi);
        /* Exact re-binning: the batch order does not matter at all. */
        ck_assert_float_eq(lo, rlo);
        ck_assert_float_eq(hi, rhi);
        /* The data spans [-64, 128]: 2048 bins of width 1/8 at the end. */
        double q = percentiles[k] / 100;
        float want_hi = sorted[(int64_t)(q * (double)(n - 1))];
        float want_lo = sorted[(int64_t)((1 - q) * (double)(n - 1))];
        assert_near(hi, want_hi, 0.25);
        assert_near(lo, want_lo, 0.25);
        close_observer(&fwd);
        close_observer(&rev);
    }

    /* Each batch twice: the second one is counted on the settled grid and
     * left pending, so the next, wider batch must take its own counts
     * back without touching the pending ones.  Any count lost or kept
     * twice shows as a difference from the reverse order, whose wider
     * batches come first. */
    for (int k = 0; k < 3; k++) {
        const char *name = histogram_observers[k];
        observer fwd, rev;
        open_ok(&fwd, name, "{}", spec_of(8, 0));
        open_ok(&rev, name, "{}", spec_of(8, 0));
        for (int b = 0; b < 2 * BATCHES; b++) {
            int64_t dims[1] = {PER};
            ck_assert_int_eq(try_observe(&fwd, x + (b / 2) * PER, 1, dims), QK_OK);
            ck_assert_int_eq(try_observe(&rev, x + (BATCHES - 1 - b / 2) * PER, 1, dims), QK_OK);
        }
        float lo, hi, rlo, rhi;
        range_ok(&fwd, 1, &lo, &hi);
        range_ok(&rev, 1, &rlo, &rhi);
        ck_assert_msg(lo == rlo && hi == rhi, "%s: [%g, %g] growing, [%g, %g] shrinking", name, lo, hi, rlo, rhi);
        close_observer(&fwd);
        close_observer(&rev);
    }

    /* Few bins, many doublings: still the right percentile, within a bin. */
    float lo, hi;
    range_of("percentile", "{percentile: 90, bins: 16}", spec_of(8, 0), x, n, PER, &lo, &hi);
    assert_near(hi, sorted[(int64_t)(0.9 * (double)(n - 1))], 16.0);
    free(sorted);
    free(x);
}
END_TEST

/* ---- moving_average ----------------------------------------------------------- */

START_TEST(test_moving_average_damps_one_outlier)
{
    seed(4);
    enum { BATCHES = 20, PER = 1000 };
    float *x = uniform_values(BATCHES * PER, -1, 1);
    x[5 * PER + 123] = 50;   /* one outlier, in batch 5 */
    float lo, hi, mlo, mhi;
    range_of("minmax", NULL, spec_of(8, 0), x, BATCHES * PER, PER, &mlo, &mhi);
    ck_assert_float_eq(mhi, 50);
    range_of("moving_average", NULL, spec_of(8, 0), x, BATCHES * PER, PER, &lo, &hi);

    /* Replay PyTorch's recurrence with the default constant 0.01. */
    double want_lo = 0, want_hi = 0;
    for (int b = 0; b < BATCHES; b++) {
        float bl = INFINITY, bh = -INFINITY;
        for (int i = 0; i < PER; i++) {
            bl = fminf(bl, x[b * PER + i]);
            bh = fmaxf(bh, x[b * PER + i]);
        }
        want_lo = b ? want_lo + 0.01 * (bl - want_lo) : bl;
        want_hi = b ? want_hi + 0.01 * (bh - want_hi) : bh;
    }
    assert_near(lo, want_lo, 1e-6);
    assert_near(hi, want_hi, 1e-6);
    /* The outlier moved the top by about 1% of its jump, not to 50. */
    ck_assert(hi > 1.3 && hi < 1.6);

    /* averaging_constant 1 is the last batch's min and max. */
    range_of("moving_average", "{averaging_constant: 1}", spec_of(8, 0), x, BATCHES * PER, PER, &lo, &hi);
    float bl = INFINITY, bh = -INFINITY;
    for (int i = 0; i < PER; i++) {
        bl = fminf(bl, x[(BATCHES - 1) * PER + i]);
        bh = fmaxf(bh, x[(BATCHES - 1) * PER + i]);
    }
    ck_assert_float_eq(lo, bl);
    ck_assert_float_eq(hi, bh);
    /* One batch initialises the average with its extremes. */
    range_of("moving_average", "{averaging_constant: 0.5}", spec_of(8, 0), x, PER, PER, &lo, &hi);
    range_of("minmax", NULL, spec_of(8, 0), x, PER, PER, &mlo, &mhi);
    ck_assert_float_eq(lo, mlo);
    ck_assert_float_eq(hi, mhi);
    free(x);
}
END_TEST

START_TEST(test_moving_average_merge_weights_by_batch_count)
{
    seed(5);
    enum { PER = 500 };
    float *x = uniform_values(4 * PER, -1, 1);
    for (int i = 3 * PER; i < 4 * PER; i++)
        x[i] *= 4;   /* the other shard saw a wider range */
    observer a, b, empty;
    open_ok(&a, "moving_average", "{averaging_constant: 0.1}", spec_of(8, 0));
    open_ok(&b, "moving_average", "{averaging_constant: 0.1}", spec_of(8, 0));
    open_ok(&empty, "moving_average", "{averaging_constant: 0.1}", spec_of(8, 0));
    observe_in_batches(&a, x, 3 * PER, PER);
    observe_in_batches(&b, x + 3 * PER, PER, PER);
    float alo, ahi, blo, bhi, lo, hi;
    range_ok(&a, 1, &alo, &ahi);
    range_ok(&b, 1, &blo, &bhi);
    ck_assert(bhi > 3.5);

    /* Merging into an empty state takes the other's estimate as it is. */
    ck_assert_int_eq(empty.vt->merge(empty.state, b.state), QK_OK);
    range_ok(&empty, 1, &lo, &hi);
    ck_assert_float_eq(lo, blo);
    ck_assert_float_eq(hi, bhi);
    /* Three batches against one: weights 3/4 and 1/4. */
    ck_assert_int_eq(a.vt->merge(a.state, b.state), QK_OK);
    range_ok(&a, 1, &lo, &hi);
    assert_near(lo, (3.0 * alo + blo) / 4, 1e-6);
    assert_near(hi, (3.0 * ahi + bhi) / 4, 1e-6);
    /* The other side is left unchanged. */
    float lo2, hi2;
    range_ok(&b, 1, &lo2, &hi2);
    ck_assert_float_eq(lo2, blo);
    ck_assert_float_eq(hi2, bhi);
    close_observer(&a);
    close_observer(&b);
    close_observer(&empty);
    free(x);
}
END_TEST

/* ---- kl ------------------------------------------------------------------------ */

START_TEST(test_kl_clips_heavy_tail)
{
    seed(6);
    int64_t n = 100000;
    float *x = heavy_tailed_values(n, 6, 1000);
    float lo, hi;
    range_of("kl", NULL, spec_of(8, 1), x, n, 10000, &lo, &hi);
    ck_assert_float_eq(lo, -hi);
    /* Well below the outliers, yet above the bulk: 99.9% of Laplace(1) is
     * within 6.9. */
    ck_assert_msg(hi < 0.1 * 1000 && hi > 6.9, "kl threshold %g", hi);
    /* Asymmetric with both signs: each side clipped at the same t. */
    float alo, ahi;
    range_of("kl", NULL, spec_of(8, 0), x, n, 10000, &alo, &ahi);
    ck_assert_msg(ahi < 0.1 * 1000 && ahi > 6.9, "kl threshold %g", ahi);
    ck_assert_float_eq(alo, -ahi);
    free(x);
}
END_TEST

START_TEST(test_kl_keeps_uniform_range)
{
    seed(7);
    int64_t n = 200000;
    float *x = uniform_values(n, -1, 1);
    float lo, hi;
    range_of("kl", NULL, spec_of(8, 1), x, n, 50000, &lo, &hi);
    ck_assert_msg(hi > 0.95 * max_abs(x, n) && hi <= max_abs(x, n), "kl threshold %g", hi);
    ck_assert_float_eq(lo, -hi);
    free(x);
    /* All values >= 0 (after a ReLU), asymmetric: [0, t]. */
    x = uniform_values(n, 0, 1);
    range_of("kl", NULL, spec_of(8, 0), x, n, 50000, &lo, &hi);
    ck_assert_float_eq(lo, 0);
    ck_assert_msg(hi > 0.95 * max_abs(x, n) && hi <= max_abs(x, n), "kl threshold %g", hi);
    free(x);
}
END_TEST

/* ---- mse ------------------------------------------------------------------------ */

/* The best symmetric threshold among `candidates` evenly spaced ones,
 * measured on the samples themselves. */
static double brute_force_symmetric_mse(const float *x, int64_t n, qk_quant_spec spec, int candidates)
{
    double amax = max_abs(x, n), best = INFINITY;
    for (int k = 1; k <= candidates; k++) {
        float t = (float)(amax * k / candidates);
        double e = quantization_mse(x, n, spec, -t, t);
        best = e < best ? e : best;
    }
    return best;
}

START_TEST(test_mse_clips_heavy_tail)
{
    seed(8);
    int64_t n = 50000;
    float *x = heavy_tailed_values(n, 3, 100);
    qk_quant_spec s4 = spec_of(4, 1);
    float lo, hi, mlo, mhi;
    range_of("mse", NULL, s4, x, n, 10000, &lo, &hi);
    ck_assert_float_eq(lo, -hi);
    ck_assert_msg(hi < 0.1 * 100 && hi > 1, "mse threshold %g", hi);
    /* As good as a fine brute-force search over the real samples with the
     * host's quantizer, and far better than minmax. */
    double got = quantization_mse(x, n, s4, lo, hi);
    double best = brute_force_symmetric_mse(x, n, s4, 2000);
    ck_assert_msg(got <= 1.02 * best, "mse %g, brute force %g", got, best);
    range_of("minmax", NULL, s4, x, n, 10000, &mlo, &mhi);
    double minmax_mse = quantization_mse(x, n, s4, mlo, mhi);
    ck_assert_msg(got < 0.5 * minmax_mse, "mse %g not far below minmax's %g", got, minmax_mse);

    /* 8 bits on plain Laplace data: a little clipping, still optimal. */
    qk_quant_spec s8 = spec_of(8, 1);
    float *y = heavy_tailed_values(n, 1, 0);   /* the "outlier" is 0 */
    range_of("mse", NULL, s8, y, n, 10000, &lo, &hi);
    got = quantization_mse(y, n, s8, lo, hi);
    best = brute_force_symmetric_mse(y, n, s8, 2000);
    ck_assert_msg(got <= 1.02 * best, "mse %g, brute force %g", got, best);
    ck_assert_msg(hi < max_abs(y, n), "8-bit Laplace: mse threshold %g, max %g", hi, max_abs(y, n));
    free(y);
    free(x);
}
END_TEST

START_TEST(test_mse_asymmetric_search_matches_brute_force)
{
    seed(9);
    int64_t n = 20000;
    /* Skewed: a Laplace bulk around 1, a short negative side, a long
     * positive tail with two far values. */
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)fmax(1 + laplace(1.0), -1.5);
    x[100] = 40;
    x[5000] = 35;
    qk_quant_spec s = spec_of(4, 0);
    float lo, hi;
    range_of("mse", NULL, s, x, n, 5000, &lo, &hi);
    ck_assert_msg(lo < 0 && lo >= -1.5f && hi > 2 && hi < 20, "mse range [%g, %g]", lo, hi);
    double got = quantization_mse(x, n, s, lo, hi);
    double best = INFINITY;
    for (int i = 0; i <= 30; i++)
        for (int j = 1; j <= 200; j++) {
            float l = (float)(-1.5 * i / 30), h = (float)(40.0 * j / 200);
            double e = quantization_mse(x, n, s, l, h);
            best = e < best ? e : best;
        }
    ck_assert_msg(got <= 1.03 * best, "mse %g, brute force %g", got, best);
    free(x);
}
END_TEST

START_TEST(test_mse_keeps_uniform_range)
{
    seed(10);
    int64_t n = 100000;
    float *x = uniform_values(n, -1, 1);
    float lo, hi;
    range_of("mse", NULL, spec_of(8, 1), x, n, 25000, &lo, &hi);
    ck_assert_msg(hi > 0.97 * max_abs(x, n) && hi <= max_abs(x, n), "mse threshold %g", hi);
    free(x);
}
END_TEST

/* ---- symmetric and asymmetric ------------------------------------------------------ */

START_TEST(test_symmetric_and_asymmetric_ranges)
{
    seed(11);
    int64_t n = 100000;
    float lo, hi;
    /* All positive, U(2, 6). */
    float *x = uniform_values(n, 2, 6);
    range_of("percentile", "{percentile: 99}", spec_of(8, 0), x, n, 25000, &lo, &hi);
    assert_near(lo, 2.04, 0.01);
    assert_near(hi, 5.96, 0.03);
    range_of("percentile", "{percentile: 99}", spec_of(8, 1), x, n, 25000, &lo, &hi);
    assert_near(hi, 5.96, 0.03);
    ck_assert_float_eq(lo, -hi);
    range_of("kl", NULL, spec_of(8, 0), x, n, 25000, &lo, &hi);
    ck_assert_float_eq(lo, 0);
    ck_assert_msg(hi > 5.7 && hi <= 6, "kl threshold %g", hi);
    range_of("mse", NULL, spec_of(8, 0), x, n, 25000, &lo, &hi);
    ck_assert_float_eq(lo, 0);
    ck_assert(hi > 5.8 && hi <= 6);
    range_of("mse", NULL, spec_of(8, 1), x, n, 25000, &lo, &hi);
    ck_assert_float_eq(lo, -hi);
    ck_assert(hi > 5.8 && hi <= 6);
    free(x);

    /* All negative: kl mirrors to [-t, 0]. */
    x = uniform_values(n, -3, -1);
    range_of("kl", NULL, spec_of(8, 0), x, n, 25000, &lo, &hi);
    ck_assert_float_eq(hi, 0);
    ck_assert(lo < -2.85 && lo >= -3);
    free(x);

    /* Both signs, lopsided, U(-1, 4). */
    x = uniform_values(n, -1, 4);
    range_of("percentile", "{percentile: 99}", spec_of(8, 0), x, n, 25000, &lo, &hi);
    assert_near(lo, -0.95, 0.01);
    assert_near(hi, 3.95, 0.03);
    range_of("kl", NULL, spec_of(8, 0), x, n, 25000, &lo, &hi);
    /* t is close to 4, so the negative side keeps its observed minimum. */
    ck_assert(hi > 3.8 && hi <= 4);
    ck_assert(lo < -0.99 && lo >= -1);
    range_of("mse", NULL, spec_of(8, 0), x, n, 25000, &lo, &hi);
    ck_assert_msg(lo < -0.97 && lo >= -1 && hi > 3.9 && hi <= 4, "mse range [%g, %g]", lo, hi);
    free(x);
}
END_TEST

/* ---- per channel ----------------------------------------------------------------- */

/* NCHW activations whose channel c spans (c+1) * U(-1, 1): every observer's
 * range must scale with the channel, along axis 1 and the same axis -3. */
START_TEST(test_per_channel_ranges_differ)
{
    seed(12);
    enum { N = 16, C = 4, HW = 256 };
    float *x = malloc(N * C * HW * sizeof *x);
    for (int b = 0; b < N; b++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++)
                x[(b * C + c) * HW + i] = (float)((c + 1) * uniform(-1, 1));
    int64_t dims[4] = {N / 2, C, 16, 16};
    for (int k = 0; k < COUNT(new_observers); k++) {
        for (int symmetric = 0; symmetric < 2; symmetric++) {
            float lo[C], hi[C], nlo[C], nhi[C];
            observer o, neg;
            open_ok(&o, new_observers[k], NULL, channel_spec(8, symmetric, 1));
            open_ok(&neg, new_observers[k], NULL, channel_spec(8, symmetric, -3));
            for (int half = 0; half < 2; half++) {
                ck_assert_msg(try_observe(&o, x + half * (N / 2) * C * HW, 4, dims) == QK_OK, "%s", o.err.msg);
                ck_assert_msg(try_observe(&neg, x + half * (N / 2) * C * HW, 4, dims) == QK_OK, "%s", neg.err.msg);
            }
            range_ok(&o, C, lo, hi);
            range_ok(&neg, C, nlo, nhi);
            for (int c = 0; c < C; c++) {
                ck_assert_float_eq(lo[c], nlo[c]);
                ck_assert_float_eq(hi[c], nhi[c]);
                /* Within 6% of (c+1) times channel 0's range. */
                ck_assert_msg(fabs(hi[c] / (c + 1) - hi[0]) <= 0.06 * hi[0] && hi[c] <= c + 1,
                              "%s: channel %d: hi %g, channel 0: %g", new_observers[k], c, hi[c], hi[0]);
                ck_assert_msg(fabs(lo[c] / (c + 1) - lo[0]) <= 0.06 * fabs(lo[0]) && lo[c] < 0,
                              "%s: channel %d: lo %g, channel 0: %g", new_observers[k], c, lo[c], lo[0]);
                /* moving_average, like minmax, leaves symmetry to the host. */
                if (symmetric && strcmp(new_observers[k], "moving_average"))
                    ck_assert_float_eq(lo[c], -hi[c]);
            }
            ck_assert(hi[0] > 0.9);
            /* Asking for another channel count is an error. */
            o.err = (qk_err){0};
            ck_assert_int_eq(o.vt->range(o.state, C + 1, lo, hi), QK_EINVAL);
            ck_assert_ptr_nonnull(strstr(o.err.msg, "channels"));
            close_observer(&o);
            close_observer(&neg);
        }
    }
    free(x);
}
END_TEST

/* ---- merge -------------------------------------------------------------------------- */

/* Two shards with different ranges (so the merge re-bins): merging them, in
 * either order, gives exactly the range of one observer that saw it all. */
START_TEST(test_merge_of_shards_equals_one_run)
{
    seed(13);
    enum { PER = 10000, SHARD = 3 };
    int64_t n = 2 * SHARD * PER;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < SHARD * PER; i++)
        x[i] = (float)uniform(-1, 1);
    for (int64_t i = SHARD * PER; i < n; i++)
        x[i] = (float)(3 * laplace(1.0));
    x[n - 5] = 90;
    static const char *const args[] = {"{percentile: 99.5}", NULL, NULL};
    for (int k = 0; k < COUNT(histogram_observers); k++) {
        const char *name = histogram_observers[k];
        for (int symmetric = 0; symmetric < 2; symmetric++) {
            for (int per_channel = 0; per_channel < 2; per_channel++) {
                /* Per channel: [PER/2, 2] batches, channel axis 1. */
                qk_quant_spec s = per_channel ? channel_spec(8, symmetric, 1) : spec_of(8, symmetric);
                int64_t channels = per_channel ? 2 : 1;
                int64_t dims[2] = {PER / 2, 2};
                observer whole, a, b, b_then_a;
                open_ok(&whole, name, args[k], s);
                open_ok(&a, name, args[k], s);
                open_ok(&b, name, args[k], s);
                open_ok(&b_then_a, name, args[k], s);
                for (int i = 0; i < 2 * SHARD; i++) {
                    ck_assert_int_eq(try_observe(&whole, x + i * PER, 2, dims), QK_OK);
                    ck_assert_int_eq(try_observe(i < SHARD ? &a : &b, x + i * PER, 2, dims), QK_OK);
                }
                ck_assert_int_eq(b_then_a.vt->merge(b_then_a.state, b.state), QK_OK);
                ck_assert_int_eq(b_then_a.vt->merge(b_then_a.state, a.state), QK_OK);
                ck_assert_int_eq(a.vt->merge(a.state, b.state), QK_OK);
                float wlo[2], whi[2], lo[2], hi[2], rlo[2], rhi[2];
                range_ok(&whole, channels, wlo, whi);
                range_ok(&a, channels, lo, hi);
                range_ok(&b_then_a, channels, rlo, rhi);
                for (int c = 0; c < channels; c++) {
                    ck_assert_msg(lo[c] == wlo[c] && hi[c] == whi[c] && rlo[c] == wlo[c] && rhi[c] == whi[c],
                                  "%s sym %d pc %d ch %d: whole [%g, %g], merged [%g, %g], reversed [%g, %g]", name,
                                  symmetric, per_channel, c, wlo[c], whi[c], lo[c], hi[c], rlo[c], rhi[c]);
                }
                /* The shards did see different ranges. */
                float slo[2], shi[2];
                range_ok(&b, channels, slo, shi);
                ck_assert(shi[0] > 2 * whi[0] || whi[0] > 2 * (float)max_abs(x, SHARD * PER) || shi[0] > 2);
                close_observer(&whole);
                close_observer(&a);
                close_observer(&b);
                close_observer(&b_then_a);
            }
        }
    }
    free(x);
}
END_TEST

/* What the calibrator does with an order-free observer (core/calibrate.c):
 * a batch split by samples, or per tensor into contiguous 1-D runs (cut
 * anywhere, here also inside a vector of 16), each part observed into its
 * own state, the states merged.  The range must be exactly that of one
 * state observing every batch whole -- for minmax and the histogram
 * observers, which say so with QK_OBSERVER_SHARDABLE; moving_average does
 * not.  The data has NaN, infinities, both zeros and a ReLU-like share of
 * exact zeros, and lengths that are no multiple of a vector. */
START_TEST(test_sharded_observation_equals_sequential)
{
    seed(29);
    enum { N = 5, C = 3, HW = 37, BATCHES = 3 };
    int64_t per_batch = (int64_t)N * C * HW, n = BATCHES * per_batch;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        double v = 2 * laplace(1.0) + (i / per_batch);   /* later batches reach further */
        x[i] = i % 3 == 0 ? 0.0f : (float)v;
    }
    x[7] = NAN;
    x[per_batch + 11] = INFINITY;
    x[2 * per_batch + 5] = -INFINITY;
    x[13] = -0.0f;
    static const char *const names[] = {"minmax", "percentile", "kl", "mse", "moving_average"};
    static const char *const args[] = {NULL, "{percentile: 99.0}", NULL, NULL, NULL};
    for (int k = 0; k < COUNT(names); k++) {
        for (int per_channel = 0; per_channel < 2; per_channel++) {
            for (int symmetric = 0; symmetric < 2; symmetric++) {
                qk_quant_spec s = per_channel ? channel_spec(8, symmetric, 1) : spec_of(8, symmetric);
                int64_t channels = per_channel ? C : 1;
                int64_t dims[3] = {N, C, HW};
                observer whole, part[3];
                open_ok(&whole, names[k], args[k], s);
                unsigned flags = whole.vt->size > offsetof(qk_observer_vtable, flags) ? whole.vt->flags : 0;
                ck_assert_int_eq(!!(flags & QK_OBSERVER_SHARDABLE), strcmp(names[k], "moving_average") != 0);
                for (int p = 0; p < 3; p++)
                    open_ok(&part[p], names[k], args[k], s);
                for (int b = 0; b < BATCHES; b++) {
                    const float *xb = x + b * per_batch;
                    ck_assert_int_eq(try_observe(&whole, xb, 3, dims), QK_OK);
                    if (per_channel) {
                        /* Samples [0, 2), [2, 3), [3, 5). */
                        int64_t cut[4] = {0, 2, 3, N};
                        for (int p = 0; p < 3; p++) {
                            int64_t d[3] = {cut[p + 1] - cut[p], C, HW};
                            ck_assert_int_eq(try_observe(&part[p], xb + cut[p] * C * HW, 3, d), QK_OK);
                        }
                    } else {
                        int64_t cut[4] = {0, 37 + b, 160, per_batch};
                        for (int p = 0; p < 3; p++) {
                            int64_t d[1] = {cut[p + 1] - cut[p]};
                            ck_assert_int_eq(try_observe(&part[p], xb + cut[p], 1, d), QK_OK);
                        }
                    }
                }
                for (int p = 1; p < 3; p++)
                    ck_assert_int_eq(part[0].vt->merge(part[0].state, part[p].state), QK_OK);
                float wlo[C], whi[C], lo[C], hi[C];
                range_ok(&whole, channels, wlo, whi);
                range_ok(&part[0], channels, lo, hi);
                for (int c = 0; c < channels; c++) {
                    if (flags & QK_OBSERVER_SHARDABLE)
                        ck_assert_msg(lo[c] == wlo[c] && hi[c] == whi[c] && !signbit(lo[c]) == !signbit(wlo[c]),
                                      "%s pc %d sym %d ch %d: whole [%g, %g], sharded [%g, %g]", names[k],
                                      per_channel, symmetric, c, wlo[c], whi[c], lo[c], hi[c]);
                    ck_assert(isfinite(lo[c]) && isfinite(hi[c]) && lo[c] < hi[c]);
                }
                if (!strcmp(names[k], "minmax")) {
                    /* And the extremes are the data's finite ones. */
                    float mn = INFINITY, mx = -INFINITY;
                    for (int64_t i = 0; i < n; i++)
                        if (isfinite(x[i]) && (per_channel == 0 || (i / HW) % C == 0)) {
                            mn = x[i] < mn ? x[i] : mn;
                            mx = x[i] > mx ? x[i] : mx;
                        }
                    ck_assert_float_eq(wlo[0], mn);
                    ck_assert_float_eq(whi[0], mx);
                }
                close_observer(&whole);
                for (int p = 0; p < 3; p++)
                    close_observer(&part[p]);
            }
        }
    }
    free(x);
}
END_TEST

/* ---- errors ----------------------------------------------------------------------- */

typedef struct bad_args {
    const char *observer;
    const char *args;
    const char *message;   /* a part of the expected one-line message */
} bad_args;

START_TEST(test_bad_arguments_are_refused)
{
    static const bad_args cases[] = {
        {"percentile", "{percentil: 99}", "unknown key `percentil`"},
        {"percentile", "{percentil: 99}", "did you mean `percentile`?"},
        {"percentile", "{percentile: 0}", "percentile 0 is outside (0, 100]"},
        {"percentile", "{percentile: 100.5}", "percentile 100.5 is outside (0, 100]"},
        {"percentile", "{percentile: -3}", "percentile -3 is outside"},
        {"percentile", "{bins: 8}", "bins 8 is outside 16.."},
        {"percentile", "{bins: many}", "expected an integer"},
        {"percentile", "{percentile: high}", "percentile"},
        {"moving_average", "{averaging_constant: 0}", "averaging_constant 0 is outside (0, 1]"},
        {"moving_average", "{averaging_constant: 1.5}", "averaging_constant 1.5 is outside (0, 1]"},
        {"moving_average", "{averaging_constnt: 0.1}", "did you mean `averaging_constant`?"},
        {"moving_average", "{bins: 100}", "unknown key `bins`"},
        {"kl", "{bins: 64}", "bins 64 is outside 128.."},
        {"kl", "{percentile: 99}", "unknown key `percentile`"},
        {"kl", "{bnis: 1024}", "did you mean `bins`?"},
        {"mse", "{steps: 5}", "steps 5 is outside 10..100000"},
        {"mse", "{bins: 4}", "bins 4 is outside 16.."},
        {"mse", "{stpes: 50}", "did you mean `steps`?"},
        {"mse", "{bins: 1.5}", "expected an integer"},
    };
    for (int i = 0; i < COUNT(cases); i++) {
        observer o;
        int rc = try_open(&o, cases[i].observer, cases[i].args, spec_of(8, 1));
        ck_assert_msg(rc == QK_EINVAL, "%s %s: status %d", cases[i].observer, cases[i].args, rc);
        ck_assert_ptr_null(o.state);
        ck_assert_msg(strstr(o.err.msg, cases[i].message) && !strchr(o.err.msg, '\n'),
                      "%s %s: message '%s' lacks '%s'", cases[i].observer, cases[i].args, o.err.msg,
                      cases[i].message);
        close_observer(&o);
    }
    /* Values at the edges, and integers for floats, are accepted. */
    static const bad_args fine[] = {
        {"percentile", "{percentile: 100, bins: 16}", NULL},
        {"percentile", "{percentile: 99}", NULL},
        {"moving_average", "{averaging_constant: 1}", NULL},
        {"kl", "{bins: 128}", NULL},
        {"mse", "{bins: 16, steps: 10}", NULL},
        {"mse", "{}", NULL},
    };
    for (int i = 0; i < COUNT(fine); i++) {
        observer o;
        open_ok(&o, fine[i].observer, fine[i].args, spec_of(8, 0));
        close_observer(&o);
    }
}
END_TEST

START_TEST(test_range_before_observing_fails)
{
    for (int k = 0; k < COUNT(new_observers); k++) {
        observer o;
        float lo, hi;
        open_ok(&o, new_observers[k], NULL, spec_of(8, 0));
        ck_assert_int_eq(o.vt->range(o.state, 1, &lo, &hi), QK_EINVAL);
        ck_assert_msg(strstr(o.err.msg, "before any value was observed"), "%s: %s", new_observers[k], o.err.msg);
        ck_assert_msg(!strncmp(o.err.msg, o.who, strlen(o.who)), "message does not name the observer: %s", o.err.msg);
        /* An empty tensor is not an observation either. */
        int64_t zero[2] = {0, 3};
        ck_assert_int_eq(try_observe(&o, NULL, 2, zero), QK_OK);
        o.err = (qk_err){0};
        ck_assert_int_eq(o.vt->range(o.state, 1, &lo, &hi), QK_EINVAL);
        ck_assert_ptr_nonnull(strstr(o.err.msg, "before any value was observed"));
        /* Nor is a batch of NaN. */
        float nan3[3] = {NAN, NAN, INFINITY};
        int64_t three[1] = {3};
        ck_assert_int_eq(try_observe(&o, nan3, 1, three), QK_OK);
        o.err = (qk_err){0};
        ck_assert_int_eq(o.vt->range(o.state, 1, &lo, &hi), QK_EINVAL);
        ck_assert_msg(strstr(o.err.msg, "no finite value"), "%s: %s", new_observers[k], o.err.msg);
        close_observer(&o);
        /* A never-observed state merges as a no-op. */
        observer a, b;
        open_ok(&a, new_observers[k], NULL, spec_of(8, 0));
        open_ok(&b, new_observers[k], NULL, spec_of(8, 0));
        ck_assert_int_eq(a.vt->merge(a.state, b.state), QK_OK);
        ck_assert_int_eq(a.vt->range(a.state, 1, &lo, &hi), QK_EINVAL);
        close_observer(&a);
        close_observer(&b);
        /* destroy(NULL) is a no-op. */
        a.vt->destroy(NULL);
    }
}
END_TEST

START_TEST(test_non_finite_values_are_skipped)
{
    seed(14);
    int64_t n = 4000;
    float *x = uniform_values(n, -2, 3);
    float *dirty = malloc((size_t)(n + 3) * sizeof *dirty);
    memcpy(dirty, x, (size_t)n * sizeof *x);
    dirty[n] = NAN;
    dirty[n + 1] = INFINITY;
    dirty[n + 2] = -INFINITY;
    for (int k = 0; k < COUNT(new_observers); k++)
        for (int symmetric = 0; symmetric < 2; symmetric++) {
            float lo, hi, dlo, dhi;
            range_of(new_observers[k], NULL, spec_of(8, symmetric), x, n, 1000, &lo, &hi);
            range_of(new_observers[k], NULL, spec_of(8, symmetric), dirty, n + 3, 1000, &dlo, &dhi);
            ck_assert_msg(lo == dlo && hi == dhi && isfinite(lo) && isfinite(hi), "%s: [%g, %g] vs [%g, %g]",
                          new_observers[k], lo, hi, dlo, dhi);
        }
    free(dirty);
    free(x);
}
END_TEST

START_TEST(test_bad_tensors_are_refused)
{
    for (int k = 0; k < COUNT(new_observers); k++) {
        observer o;
        open_ok(&o, new_observers[k], NULL, channel_spec(8, 1, 1));
        /* Not float. */
        int8_t q[4] = {1, 2, 3, 4};
        xt t = {DT_INT8, 1, {4}, q};
        struct qk_tensor v = host_tensor_view(&t, "q");
        ck_assert_int_eq(o.vt->observe(o.state, &v), QK_ENOTSUP);
        ck_assert_msg(strstr(o.err.msg, "only float tensors") && strstr(o.err.msg, "'q'"), "%s", o.err.msg);
        /* The channel axis must exist. */
        float x[10] = {0};
        int64_t flat[1] = {10};
        o.err = (qk_err){0};
        ck_assert_int_eq(try_observe(&o, x, 1, flat), QK_EINVAL);
        ck_assert_msg(strstr(o.err.msg, "axis 1 out of range"), "%s", o.err.msg);
        /* The channel count is fixed by the first batch. */
        int64_t two[2] = {5, 2}, five[2] = {2, 5};
        ck_assert_int_eq(try_observe(&o, x, 2, two), QK_OK);
        o.err = (qk_err){0};
        ck_assert_int_eq(try_observe(&o, x, 2, five), QK_EINVAL);
        ck_assert_msg(strstr(o.err.msg, "channel count changed from 2 to 5"), "%s", o.err.msg);
        close_observer(&o);
    }
}
END_TEST

/* One test case of the suite, with the registry fixture; a timeout of 0
 * keeps Check's default. */
static TCase *add_case(Suite *s, const char *name, int timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    if (timeout)
        tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("observers");
    TCase *tc = add_case(s, "percentile", 120);
    tcase_add_test(tc, test_percentile_of_uniform_data);
    tcase_add_test(tc, test_percentile_of_normal_data_ignores_outliers);
    tcase_add_test(tc, test_histogram_grows_across_batches);

    tc = add_case(s, "moving_average", 0);
    tcase_add_test(tc, test_moving_average_damps_one_outlier);
    tcase_add_test(tc, test_moving_average_merge_weights_by_batch_count);

    tc = add_case(s, "kl", 120);
    tcase_add_test(tc, test_kl_clips_heavy_tail);
    tcase_add_test(tc, test_kl_keeps_uniform_range);

    tc = add_case(s, "mse", 300);
    tcase_add_test(tc, test_mse_clips_heavy_tail);
    tcase_add_test(tc, test_mse_asymmetric_search_matches_brute_force);
    tcase_add_test(tc, test_mse_keeps_uniform_range);

    tc = add_case(s, "common", 300);
    tcase_add_test(tc, test_symmetric_and_asymmetric_ranges);
    tcase_add_test(tc, test_per_channel_ranges_differ);
    tcase_add_test(tc, test_merge_of_shards_equals_one_run);
    tcase_add_test(tc, test_sharded_observation_equals_sequential);
    tcase_add_test(tc, test_bad_arguments_are_refused);
    tcase_add_test(tc, test_range_before_observing_fails);
    tcase_add_test(tc, test_non_finite_values_are_skipped);
    tcase_add_test(tc, test_bad_tensors_are_refused);

    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
