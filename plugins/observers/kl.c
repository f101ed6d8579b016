/* This file implements the `kl` observer: entropy calibration as in
 * TensorRT's INT8 entropy calibrator and ONNX Runtime's Entropy method.  It
 * picks the clipping threshold t whose quantized distribution loses the
 * least information, measured by the Kullback-Leibler divergence
 * KL(P || Q), rather than the largest value seen.
 *
 *   observer_args: {bins: 2048}      # histogram bins, 128 .. 2^24
 *
 * Values are histogrammed as |x| (one histogram per channel, histogram.h:
 * it grows with the data and merges exactly).  With L quantization levels,
 * every bin edge i from first + L up to the last non-empty bin is a
 * candidate t = i * bin width, `first` being the first non-empty bin:
 *   P = bins [0, i), with everything beyond (the clipped outliers) added to
 *       bin i-1, because clipping maps them onto the top level;
 *   Q = bins [0, i) merged into L groups of (almost) equal width, each
 *       group's count spread evenly over the group's bins that are non-empty
 *       in P, as the quantizer cannot tell those values apart;
 * and t minimises KL(P || Q) (ties: the larger t).  When the last group is
 * empty but there are outliers (a sparse tail: typical of the very
 * distributions this observer is for), Q would have no mass where P has the
 * outliers; as in TensorRT's and ONNX Runtime's smoothing, Q gets 1e-4 of a
 * count there instead of 0, which makes such a candidate costly but
 * comparable.  (Elsewhere Q has mass wherever P does, so no other smoothing
 * is needed.)  The divergence of a candidate is computed from prefix sums in
 * O(L), so the search costs O(bins * L) per channel.
 *
 * L follows spec->bits: a symmetric range spends 2^(bits-1) levels on each
 * sign (128 for int8, TensorRT's number).  Asymmetric specs:
 *   - all values >= 0 (after ReLU): the whole grid covers [0, t], so
 *     L = 2^bits and the range is [0, t];
 *   - all values <= 0: mirrored, [-t, 0] with L = 2^bits;
 *   - both signs: t is searched with L = 2^(bits-1) as for symmetric, and
 *     each side is clipped at t but never extended past what was observed:
 *     [max(min, -t), min(max, t)].  The host widens the result to include
 *     0, so a side that never reached t keeps its observed extent.
 * TensorRT starts at i = L; it can, because its activations reach down to
 * 0.  Values that stay away from 0 (|x| in [2, 6], say) leave the low bins
 * empty, and a threshold just above the first values would then look
 * perfect: P and Q both put almost everything in the one top bin.  Starting
 * L bins past the first non-empty one gives every candidate at least L bins
 * of data to quantize, which rules that degenerate case out and is
 * TensorRT's rule when values reach 0.  When the data spans no more than L
 * bins, clipping cannot help and t is the largest |x| seen.  t never exceeds
 * the largest |x| seen.  The zero bin takes its neighbour's count during the
 * search (see threshold()). */
#include <math.h>
#include <quantkit/quantkit.h>
#include "histogram.h"

/* What Q holds instead of nothing where P has the clipped outliers (the
 * smoothing epsilon of TensorRT's and ONNX Runtime's implementations). */
#define EMPTY_TOP_COUNT 1e-4

typedef struct kl {
    const qk_host *host;
    int symmetric;
    int bits;
    histogram_set hist;    /* of |x| */
} kl;

static void kl_destroy(void *state)
{
    kl *k = state;
    if (!k)
        return;
    histogram_set_free(&k->hist);
    k->host->mem->free(k);
}

static int kl_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    static const char *const allowed[] = {"bins", NULL};
    *state = NULL;
    if (!spec)
        return host->log->error(host, QK_EINVAL, "no quantization spec given");
    if (spec->bits < 2 || spec->bits > 16)
        return host->log->error(host, QK_EINVAL, "bits must be 2..16, not %d", spec->bits);
    int64_t bins = 2048;
    if (args) {
        int rc = host->params->check_keys(args, allowed, "observer_args of observer `kl`");
        if (rc < 0)
            return rc;
        if ((rc = host->params->get_int(args, "bins", &bins)) < 0)
            return rc;
    }
    if (bins < 128 || bins > HISTOGRAM_MAX_BINS)
        return host->log->error(host, QK_EINVAL, "observer_args: bins %lld is outside 128..%d", (long long)bins,
                                HISTOGRAM_MAX_BINS);
    kl *k = host->mem->calloc(1, sizeof *k);
    if (!k)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    k->host = host;
    k->symmetric = spec->symmetric != 0;
    k->bits = spec->bits;
    histogram_set_init(&k->hist, host, spec, bins, 1);
    *state = k;
    return QK_OK;
}

static int kl_observe(void *state, const qk_tensor *t)
{
    kl *k = state;
    return histogram_set_observe(&k->hist, t);
}

static int kl_merge(void *state, const void *other_state)
{
    kl *k = state;
    const kl *o = other_state;
    if (k->symmetric != o->symmetric || k->bits != o->bits)
        return k->host->log->error(k->host, QK_EINVAL, "cannot merge observations made with a different spec");
    return histogram_set_merge(&k->hist, &o->hist);
}

/* Prefix sums over the first n bins, index j covering bins [0, j): counts,
 * count * log(count), and non-empty bins.  They make every group sum of a
 * candidate O(1). */
typedef struct prefix {
    double *count, *clogc, *nonzero;
} prefix;

static double xlogx(double x) { return x > 0 ? x * log(x) : 0; }

/* KL(P || Q) * total for the candidate "the first i bins", as described at
 * the top of the file; INFINITY when nothing lies inside. */
static double divergence(const prefix *s, int64_t i, int64_t levels, double total)
{
    double inside = s->count[i];
    if (!(inside > 0))
        return INFINITY;   /* every value would be clipped */
    double outliers = total - inside;
    /* Both distributions are normalised: P by the total, Q by what lies
     * inside; this constant enters every term. */
    double log_norm = log(total) - log(inside);
    double sum = 0;
    for (int64_t g = 0; g < levels; g++) {
        int64_t a = g * i / levels, b = (g + 1) * i / levels;
        double group = s->count[b] - s->count[a];
        if (g < levels - 1) {
            if (group > 0) {
                double q = group / (s->nonzero[b] - s->nonzero[a]);
                sum += (s->clogc[b] - s->clogc[a]) - group * (log(q) + log_norm);
            }
            continue;
        }
        /* The last group: its top bin also holds the clipped outliers in P. */
        double top = s->count[i] - s->count[i - 1] + outliers;
        double nonzero = s->nonzero[i - 1] - s->nonzero[a] + (top > 0);
        if (!(group > 0)) {
            if (top > 0)
                sum += xlogx(top) - top * (log(EMPTY_TOP_COUNT) + log_norm);
            continue;
        }
        double q = group / nonzero;
        sum += (s->clogc[i - 1] - s->clogc[a]) - (s->count[i - 1] - s->count[a]) * (log(q) + log_norm);
        sum += xlogx(top) - top * (log(q) + log_norm);
    }
    return sum;
}

/* The threshold (in |x| units) minimising the divergence for `levels`
 * quantization levels.  Only allocation can fail. */
static int threshold(const qk_host *host, const histogram *h, int64_t bins, int64_t levels, double *t)
{
    int64_t used = histogram_used(h, bins), first = 0;
    while (first < used && !(h->count[first] > 0))
        first++;
    *t = h->hi;
    if (used - first <= levels)
        return QK_OK;
    prefix s;
    s.count = host->mem->alloc(3 * (size_t)(used + 1) * sizeof(double));
    if (!s.count)
        return host->log->error(host, QK_ENOMEM, "out of memory");
    s.clogc = s.count + used + 1;
    s.nonzero = s.clogc + used + 1;
    s.count[0] = s.clogc[0] = s.nonzero[0] = 0;
    /* The bin holding exact zeros (ReLU outputs, padding: often half of all
     * values) is given its neighbour's count for the search, as NVIDIA's
     * pytorch-quantization entropy calibrator does.  Left as is, the spike
     * dominates the divergence: Q spreads it over its whole group, a cost
     * that grows with the group width, i.e. with t, so the smallest t always
     * won (ReLU6 activations clipped at 2 on the digits models, measured). */
    double total = h->total;
    for (int64_t j = 0; j < used; j++) {
        double c = h->count[j];
        if (j == 0 && h->first == 0 && used > 1) {
            total += h->count[1] - c;
            c = h->count[1];
        }
        s.count[j + 1] = s.count[j] + c;
        s.clogc[j + 1] = s.clogc[j] + xlogx(c);
        s.nonzero[j + 1] = s.nonzero[j] + (c > 0);
    }
    int64_t best = used;
    double best_kl = INFINITY;
    for (int64_t i = first + levels; i <= used; i++) {
        double d = divergence(&s, i, levels, total);
        if (d <= best_kl) {
            best_kl = d;
            best = i;
        }
    }
    host->mem->free(s.count);
    /* |x| histograms start at 0, so edge i is i bin widths. */
    double edge = histogram_edge(h, best);
    *t = edge < h->hi ? edge : h->hi;
    return QK_OK;
}

static int kl_range(void *state, int64_t channels, float *lo, float *hi)
{
    kl *k = state;
    int st = histogram_set_ready(&k->hist, channels);
    if (st)
        return st;
    for (int64_t c = 0; c < channels; c++) {
        const histogram *h = &k->hist.h[c];
        int one_sign = !k->symmetric && (h->min >= 0 || h->max <= 0);
        int64_t levels = (int64_t)1 << (one_sign ? k->bits : k->bits - 1);
        double t;
        if ((st = threshold(k->host, h, k->hist.bins, levels, &t)))
            return st;
        if (k->symmetric) {
            lo[c] = (float)-t;
            hi[c] = (float)t;
        } else if (h->min >= 0) {
            lo[c] = 0;
            hi[c] = (float)t;
        } else if (h->max <= 0) {
            lo[c] = (float)-t;
            hi[c] = 0;
        } else {
            lo[c] = (float)fmax(h->min, -t);
            hi[c] = (float)fmin(h->max, t);
        }
    }
    return QK_OK;
}

static const qk_observer_vtable kl_vtable = {
    sizeof(qk_observer_vtable), kl_create, kl_observe, kl_merge, kl_range, kl_destroy,
    QK_OBSERVER_SHARDABLE,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "kl", "1.0.0",
                 "entropy calibration: the clipping threshold minimising KL(P||Q) of the |x| histogram (TensorRT)",
                 "MIT", &kl_vtable);
