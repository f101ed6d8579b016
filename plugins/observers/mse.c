/* This file implements the `mse` observer: the clipping range that
 * minimises the expected squared quantization error of the calibration
 * values, for the spec's bits, symmetric or not (the "MSE" calibration of
 * AMCT, PPQ and NVIDIA's pytorch-quantization).  Clipping trades the
 * rounding noise of every value (it grows with the range) against the error
 * of the values clipped off (it shrinks with it); the range is where their
 * sum is least.
 *
 *   observer_args: {bins: 2048, steps: 100}
 *     bins:  histogram bins, 16 .. 2^24
 *     steps: candidates per search level, 10 .. 100000
 *
 * No value is kept: the error is computed from a histogram per channel
 * (histogram.h; it grows with the data and merges exactly), taking the
 * values of a bin as spread evenly over the bin (clamped to the observed
 * extremes) and integrating the exact error of the quantizer over it --
 * rounding to the grid inside the range, distance to the nearest end
 * outside.  The quantizer is the host's (DESIGN.md): step
 * s = (hi - lo) / (qmax - qmin) with an integer zero point for asymmetric
 * ranges, s = t / qmax (signed) for symmetric ones.
 *
 * Search: one-dimensional searches have two levels -- `steps` candidates
 * evenly spaced over (0, largest], then `steps` more between the two
 * neighbours of the best one -- so a threshold far below the largest value
 * (heavy tails) is still found to 2/steps^2 of it.
 *   symmetric:  |x| is histogrammed and t searched; the range is [-t, t].
 *   asymmetric: x is histogrammed; starting from the observed [min, max]
 *               (widened to include 0), hi is searched with lo fixed, then
 *               lo with hi fixed, up to three rounds (coordinate descent:
 *               the two ends interact only through the shared step).  A side
 *               without values stays at 0. */
#include <math.h>
#include <quantkit/quantkit.h>
#include "histogram.h"

/* At most this many coordinate-descent rounds in the asymmetric search
 * (it stops early at a fixed point): the ends barely move after the
 * second. */
#define ASYMMETRIC_ROUNDS 3

typedef struct mse {
    const qk_host *host;
    int symmetric;
    int64_t steps;
    double qmin, qmax;     /* integer range of the spec, as the host computes it */
    histogram_set hist;    /* of |x| when symmetric, else of x */
} mse;

static void mse_destroy(void *state)
{
    mse *m = state;
    if (!m)
        return;
    histogram_set_free(&m->hist);
    m->host->mem->free(m);
}

static int mse_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {"bins", "steps", NULL};
    *state = NULL;
    if (!spec)
        return host->log->error(host, QK_EINVAL, "no quantization spec given");
    if (spec->bits < 2 || spec->bits > 16)
        return host->log->error(host, QK_EINVAL, "bits must be 2..16, not %d", spec->bits);
    int64_t bins = 2048, steps = 100;
    if (args) {
        int rc = host->params->check_keys(args, allowed, "observer_args of observer `mse`");
        if (rc < 0)
            return rc;
        if ((rc = host->params->get_int(args, "bins", &bins)) < 0)
            return rc;
        if ((rc = host->params->get_int(args, "steps", &steps)) < 0)
            return rc;
    }
    if (bins < 16 || bins > HISTOGRAM_MAX_BINS)
        return host->log->error(host, QK_EINVAL, "observer_args: bins %lld is outside 16..%d", (long long)bins,
                                HISTOGRAM_MAX_BINS);
    if (steps < 10 || steps > 100000)
        return host->log->error(host, QK_EINVAL, "observer_args: steps %lld is outside 10..100000",
                                (long long)steps);
    mse *m = host->mem->calloc(1, sizeof *m);
    if (!m)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    m->host = host;
    m->symmetric = spec->symmetric != 0;
    m->steps = steps;
    /* The integer range of DESIGN.md's conventions (core/qparams.c). */
    double levels = ldexp(1.0, spec->bits);
    if (spec->is_signed) {
        m->qmax = levels / 2 - 1;
        m->qmin = spec->narrow_range ? -m->qmax : -levels / 2;
    } else {
        m->qmin = spec->narrow_range ? 1 : 0;
        m->qmax = levels - 1;
    }
    histogram_set_init(&m->hist, host, spec, bins, m->symmetric);
    *state = m;
    return QK_OK;
}

static int mse_observe(void *state, const qk_tensor *t)
{
    mse *m = state;
    return histogram_set_observe(&m->hist, t);
}

static int mse_merge(void *state, const void *other_state)
{
    mse *m = state;
    const mse *o = other_state;
    if (m->symmetric != o->symmetric || m->qmin != o->qmin || m->qmax != o->qmax)
        return m->host->log->error(m->host, QK_EINVAL, "cannot merge observations made with a different spec");
    return histogram_set_merge(&m->hist, &o->hist);
}

/* A quantizer as the error model sees it: round to multiples of `step`,
 * clamp to [-below, above] (below, above >= 0). */
typedef struct grid {
    double step, below, above;
} grid;

/* The integral over [0, v] (v >= 0) of the squared error of rounding to
 * multiples of s: whole cells around a grid point contribute s^3/12 each,
 * the cell v is in the part up to v. */
static double rounding_integral(double v, double s)
{
    double z = v + s / 2;
    double cells = floor(z / s);
    double y = z - cells * s - s / 2;   /* v relative to its grid point */
    return cells * s * s * s / 12 + y * y * y / 3;
}

/* The integral over [0, v] (v >= 0) of the squared error of a quantizer
 * that rounds up to `top` and clamps beyond. */
static double side_integral(double v, double s, double top)
{
    if (v <= top)
        return rounding_integral(v, s);
    double d = v - top;
    return rounding_integral(top, s) + d * d * d / 3;
}

/* The signed integral over [0, v] of the squared error of g. */
static double error_integral(const grid *g, double v)
{
    return v >= 0 ? side_integral(v, g->step, g->above) : -side_integral(-v, g->step, g->below);
}

/* The squared error of g at one value. */
static double error_at(const grid *g, double v)
{
    double q = g->step * nearbyint(v / g->step);
    q = q > g->above ? g->above : q < -g->below ? -g->below : q;
    return (v - q) * (v - q);
}

/* The values of one non-empty bin: `count` of them, taken as spread evenly
 * over [from, to] (the bin clamped to the observed extremes). */
typedef struct mass {
    double from, to, count;
} mass;

/* Expected total squared error of quantizing the masses with g. */
static double expected_error(const mass *m, int64_t n, const grid *g)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (m[i].to > m[i].from)
            sum += m[i].count * (error_integral(g, m[i].to) - error_integral(g, m[i].from)) / (m[i].to - m[i].from);
        else
            sum += m[i].count * error_at(g, m[i].from);
    }
    return sum;
}

/* The non-empty bins of h as masses (host memory, n entries); the search
 * evaluates hundreds of candidates, and weights per channel leave most bins
 * empty.  NULL when out of memory. */
static mass *masses_of(const qk_host *host, const histogram *h, int64_t bins, int64_t *n)
{
    int64_t used = 0;
    for (int64_t j = 0; j < bins; j++)
        used += h->count[j] > 0;
    mass *m = host->mem->alloc((size_t)(used ? used : 1) * sizeof *m);
    if (!m)
        return NULL;
    *n = 0;
    for (int64_t j = 0; j < bins; j++) {
        if (!(h->count[j] > 0))
            continue;
        double a = histogram_edge(h, j), b = histogram_edge(h, j + 1);
        m[*n].from = a < h->lo ? h->lo : a;
        m[*n].to = b > h->hi ? h->hi : b;
        m[*n].count = h->count[j];
        (*n)++;
    }
    return m;
}

/* The host's grid for the range [lo, hi] (lo <= 0 <= hi, not both 0). */
static grid grid_for(const mse *m, double lo, double hi)
{
    grid g;
    if (m->symmetric) {
        /* |x| space: one side, clipped at t = hi. */
        g.step = hi / (m->qmin < 0 ? m->qmax : (m->qmax - m->qmin) / 2);
        g.below = g.above = hi;
        return g;
    }
    g.step = (hi - lo) / (m->qmax - m->qmin);
    double zero_point = nearbyint(m->qmin - lo / g.step);
    zero_point = zero_point < m->qmin ? m->qmin : zero_point > m->qmax ? m->qmax : zero_point;
    g.below = (zero_point - m->qmin) * g.step;
    g.above = (m->qmax - zero_point) * g.step;
    return g;
}

/* Which end of the range a one-dimensional search moves. */
enum { MOVE_HI, MOVE_LO };

/* The values of one channel, and the quantizer's integer range. */
typedef struct problem {
    const mse *m;
    const mass *masses;
    int64_t n;
} problem;

/* Expected error of the range [lo, hi] with the `end` replaced by v. */
static double cost(const problem *p, int end, double lo, double hi, double v)
{
    grid g = end == MOVE_HI ? grid_for(p->m, lo, v) : grid_for(p->m, v, hi);
    return expected_error(p->masses, p->n, &g);
}

/* Searches the moving end over (0, extent] (its magnitude; the LO end is
 * negated) in two levels, as described at the top; returns the best
 * magnitude.  The other end stays at lo or hi. */
static double search(const problem *p, int end, double lo, double hi, double extent)
{
    double sign = end == MOVE_HI ? 1 : -1;
    double best = extent, best_cost = cost(p, end, lo, hi, sign * extent);
    int64_t steps = p->m->steps;
    int64_t best_k = steps;
    for (int64_t k = 1; k < steps; k++) {
        double v = extent * (double)k / (double)steps;
        double c = cost(p, end, lo, hi, sign * v);
        if (c < best_cost) {
            best_cost = c;
            best = v;
            best_k = k;
        }
    }
    double from = extent * (double)(best_k - 1) / (double)steps;
    double to = best_k < steps ? extent * (double)(best_k + 1) / (double)steps : extent;
    for (int64_t k = 1; k < steps; k++) {
        double v = from + (to - from) * (double)k / (double)steps;
        double c = cost(p, end, lo, hi, sign * v);
        if (c < best_cost) {
            best_cost = c;
            best = v;
        }
    }
    return best;
}

static int mse_range(void *state, int64_t channels, float *lo, float *hi)
{
    mse *m = state;
    int st = histogram_set_ready(&m->hist, channels);
    if (st)
        return st;
    for (int64_t c = 0; c < channels; c++) {
        const histogram *h = &m->hist.h[c];
        problem p = {m, NULL, 0};
        mass *masses = masses_of(m->host, h, m->hist.bins, &p.n);
        if (!masses)
            return m->host->log->error(m->host, QK_ENOMEM, "out of memory");
        p.masses = masses;
        if (m->symmetric) {
            double t = h->hi > 0 ? search(&p, MOVE_HI, 0, h->hi, h->hi) : 0;
            lo[c] = (float)-t;
            hi[c] = (float)t;
        } else {
            double l = fmin(h->lo, 0), u = fmax(h->hi, 0);
            for (int round = 0; round < ASYMMETRIC_ROUNDS; round++) {
                double was_l = l, was_u = u;
                if (u > 0)
                    u = search(&p, MOVE_HI, l, u, fmax(h->hi, 0));
                if (l < 0)
                    l = -search(&p, MOVE_LO, l, u, -fmin(h->lo, 0));
                if (l == was_l && u == was_u)
                    break;   /* a fixed point: another round would repeat this one */
            }
            lo[c] = (float)l;
            hi[c] = (float)u;
        }
        m->host->mem->free(masses);
    }
    return QK_OK;
}

static const qk_observer_vtable mse_vtable = {
    sizeof(qk_observer_vtable), mse_create, mse_observe, mse_merge, mse_range, mse_destroy, QK_OBSERVER_SHARDABLE,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "mse", "1.0.0",
                 "clipping range minimising the expected quantization MSE of the histogram, per tensor or per channel",
                 "MIT", &mse_vtable);
