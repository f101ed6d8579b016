/* This file implements the streaming histogram that the percentile, kl and
 * mse observers share: a fixed number of bins over a range that grows as
 * batches with wider values arrive, one histogram per channel, merged
 * exactly across shards.  Header-only (static inline functions) so that every
 * observer stays one self-contained shared object.
 *
 * Why the grid looks like this: a histogram's bins all have width w = 2^e
 * and start at a multiple of w, i.e. bin j covers [(first+j)*w,
 * (first+j+1)*w).  Two such grids always nest -- every bin of the finer one
 * lies inside exactly one bin of the coarser one -- so widening the range
 * (doubling w until the values fit) and merging histograms of different
 * ranges only ever add whole bins together.  No count is split between bins
 * by guesswork, no sample is kept, and merging two halves of a calibration
 * set gives the histogram of the whole set: which bin a value lands in
 * depends only on the final width.  The price is resolution: the observed
 * values span between half and all of the bins.
 *
 * The range always contains 0, because the host widens every range to
 * include 0 before quantizing; a histogram of |x| therefore starts exactly
 * at 0, which is what the threshold searches of kl and mse expect.
 *
 * NaN and infinities are skipped, as in minmax.  The per-value work (bins
 * and extremes) is in scan.h; a batch is counted into an integer scratch
 * and added to the double counts once per batch. */
#ifndef QK_OBSERVERS_HISTOGRAM_H
#define QK_OBSERVERS_HISTOGRAM_H
#include <math.h>
#include <string.h>
#include <quantkit/quantkit.h>
#include "layout.h"
#include "scan.h"

/* The largest `bins` an observer accepts: 16 Mi doubles per channel is
 * already 128 MiB; more is a typo, not a wish. */
#define HISTOGRAM_MAX_BINS (1 << 24)

typedef struct histogram {
    double width;       /* 2^e; 0 until the first finite value */
    double first;       /* grid index of bin 0 (an integer, may be negative) */
    double *count;      /* `bins` entries; counts are whole numbers */
    double total;       /* sum of count */
    /* Extremes, meaningful once total > 0: */
    double lo, hi;      /* of the histogrammed values (|x| when absolute) */
    float min, max;     /* of the raw values x */
} histogram;

/* One histogram per channel of a tensor (one in all for per-tensor). */
typedef struct histogram_set {
    const qk_host *host;
    int per_channel;
    int axis;           /* as given in the spec; may be negative (from the end) */
    int absolute;       /* histogram |x| instead of x (symmetric observers) */
    int64_t bins;
    int64_t channels;   /* 0 until the first batch fixes it */
    int64_t batches;    /* batches that held at least one value */
    histogram *h;       /* `channels` entries */
    /* Scratch of observe(), kept to spare an allocation per batch: */
    scan_extremes *ext; /* `channels` entries: the batch's extremes */
    uint32_t *sub;      /* SCAN_SUBS * bins integer counts, zero between batches
                         * except for what is pending (below) */
    uint32_t *undo;     /* as sub: a refused batch's counts, to take them back */
    /* Per-tensor batches counted on a settled grid stay in sub until
     * something needs h[0]'s counts (histogram_settle): adding sub to the
     * double counts after every batch cost as much as counting a batch of
     * a few thousand values, and the executor hands over that few at a
     * time when it observes a value in pieces.  Bins pend_j0..pend_j1 of
     * sub hold `pending` values. */
    int64_t pend_j0, pend_j1, pending;
} histogram_set;

/* Lower edge of bin j in value units. */
static inline double histogram_edge(const histogram *h, int64_t j) { return (h->first + (double)j) * h->width; }

/* The smallest power-of-two width, at least `min_width`, whose aligned grid
 * of `bins` bins holds [lo, hi] (lo <= 0 <= hi), and that grid's first index. */
static inline void histogram_grid_for(double lo, double hi, double min_width, int64_t bins, double *width, double *first)
{
    double w = min_width;
    if (hi > lo) {
        /* A power of two just below (hi - lo) / bins: at most a few doublings
         * from here fit, because alignment wastes less than one bin. */
        double guess = ldexp(1.0, ilogb((hi - lo) / (double)bins));
        if (guess > w)
            w = guess;
    }
    if (!(w > 0))
        w = ldexp(1.0, -126);   /* only zeros so far: any width holds them */
    while (floor(hi / w) - floor(lo / w) > (double)(bins - 1))
        w *= 2;
    *width = w;
    *first = floor(lo / w);
}

/* Index in a grid (width, first) of the bin holding grid index `g` of a grid
 * of width `from_width`: exact because widths are powers of two apart. */
static inline int64_t histogram_rebin_index(double g, double from_width, double width, double first)
{
    return (int64_t)(floor(g * (from_width / width)) - first);
}

/* Moves h onto a (wider or equal) grid.  Allocates the new count array first
 * so that on failure h is unchanged.  Returns QK_OK or QK_ENOMEM. */
static inline int histogram_regrid(const qk_host *host, histogram *h, int64_t bins, double width, double first)
{
    if (width == h->width && first == h->first)
        return QK_OK;
    if (!(h->total > 0)) {   /* nothing to move: the counts are all zero */
        h->width = width;
        h->first = first;
        return QK_OK;
    }
    double *moved = host->mem->calloc((size_t)bins, sizeof *moved);
    if (!moved)
        return QK_ENOMEM;
    for (int64_t j = 0; j < bins; j++)
        if (h->count[j] > 0)
            moved[histogram_rebin_index(h->first + (double)j, h->width, width, first)] += h->count[j];
    host->mem->free(h->count);
    h->count = moved;
    h->width = width;
    h->first = first;
    return QK_OK;
}

/* Widens h so that it also holds [lo, hi] (histogrammed units) on a grid no
 * finer than min_width.  Counts are kept, bins merged exactly. */
static inline int histogram_cover(const qk_host *host, histogram *h, int64_t bins, double lo, double hi, double min_width)
{
    lo = fmin(lo, 0.0);
    hi = fmax(hi, 0.0);
    if (h->total > 0) {
        lo = fmin(lo, h->lo);
        hi = fmax(hi, h->hi);
    }
    double width, first;
    histogram_grid_for(lo, hi, fmax(min_width, h->width), bins, &width, &first);
    return histogram_regrid(host, h, bins, width, first);
}

/* Values counted into the integer scratch before it is added to the
 * double counts: each of its parts then stays below 2^32. */
#define HISTOGRAM_PENDING_MAX ((int64_t)1 << 31)

/* Adds sub[j0..j1] (every part) to h's counts and clears them.  Summing
 * first and clearing afterwards keeps the loop free of stores into sub,
 * which lets the compiler vectorize it: it runs after every batch. */
static inline void histogram_flush(histogram *h, uint32_t *sub, int64_t bins, int64_t j0, int64_t j1)
{
    for (int64_t j = j0; j <= j1; j++) {
        uint64_t n = 0;
        for (int k = 0; k < SCAN_SUBS; k++)
            n += sub[k * bins + j];
        h->count[j] += (double)n;
    }
    for (int k = 0; k < SCAN_SUBS && j1 >= j0; k++)
        memset(sub + k * bins + j0, 0, (size_t)(j1 - j0 + 1) * sizeof *sub);
}

static inline scan_grid histogram_grid(const histogram_set *s, const histogram *h)
{
    return (scan_grid){.per_width = 1.0 / h->width, .first = h->first, .bins = s->bins, .absolute = s->absolute};
}

/* Moves `zeros` zeros into h, and the batch's `finite` values and
 * extremes e into h's (its other counts are in s->sub). */
static inline void histogram_note(histogram *h, const histogram_set *s, int64_t finite, int64_t zeros,
                                  const scan_extremes *e)
{
    scan_grid g = histogram_grid(s, h);
    double lo = s->absolute ? e->abs_lo : e->lo, hi = s->absolute ? e->abs_hi : e->hi;
    if (zeros)
        h->count[scan_bin(&g, 0.0f)] += (double)zeros;
    if (!(h->total > 0)) {
        h->lo = lo;
        h->hi = hi;
        h->min = e->lo;
        h->max = e->hi;
    } else {
        h->lo = lo < h->lo ? lo : h->lo;
        h->hi = hi > h->hi ? hi : h->hi;
        h->min = e->lo < h->min ? e->lo : h->min;
        h->max = e->hi > h->max ? e->hi : h->max;
    }
    h->total += (double)finite;
}

/* Moves what is pending in s->sub (bins j0..j1) into h, and the rest of
 * the batch as histogram_note. */
static inline void histogram_commit(histogram *h, const histogram_set *s, int64_t j0, int64_t j1, int64_t finite,
                                    int64_t zeros, const scan_extremes *e)
{
    histogram_flush(h, s->sub, s->bins, j0, j1);
    histogram_note(h, s, finite, zeros, e);
}

/* The pending per-tensor count of bin j of h[0] (still in sub). */
static inline uint64_t histogram_pending_at(const histogram_set *s, int64_t j)
{
    uint64_t n = 0;
    if (s->pending && j >= s->pend_j0 && j <= s->pend_j1)
        for (int k = 0; k < SCAN_SUBS; k++)
            n += s->sub[k * s->bins + j];
    return n;
}

/* Adds the pending per-tensor counts to h[0]: before its grid changes,
 * before sub counts anything else, and before anyone reads the counts. */
static inline void histogram_settle(histogram_set *s)
{
    if (s->pending) {
        histogram_flush(&s->h[0], s->sub, s->bins, s->pend_j0, s->pend_j1);
        s->pending = 0;
    }
}

/* Counts channel c of layout l into h, whose grid must already hold the
 * channel's finite extremes e (nonempty), and updates h's extremes. */
static inline void histogram_add(histogram *h, const histogram_set *s, const layout *l, int64_t c,
                                 const scan_extremes *e)
{
    scan_grid g = histogram_grid(s, h);
    double lo = s->absolute ? e->abs_lo : e->lo, hi = s->absolute ? e->abs_hi : e->hi;
    /* The bin is monotonic in the value: every count lands in [j0, j1]. */
    int64_t j0 = scan_bin(&g, (float)lo), j1 = scan_bin(&g, (float)hi);
    int64_t finite = 0, zeros = 0, pending = 0;
    scan_extremes seen = scan_none();   /* known already: e */
    for (int64_t o = 0; o < l->outer; o++) {
        const float *p = layout_run(l, o, c);
        for (int64_t done = 0; done < l->inner;) {
            int64_t n = l->inner - done < HISTOGRAM_PENDING_MAX ? l->inner - done : HISTOGRAM_PENDING_MAX;
            if (pending + n > HISTOGRAM_PENDING_MAX) {
                histogram_flush(h, s->sub, s->bins, j0, j1);
                pending = 0;
            }
            int64_t z;
            finite += scan_bins(&g, p + done, n, s->sub, &z, &seen);
            zeros += z;
            pending += n;
            done += n;
        }
    }
    histogram_commit(h, s, j0, j1, finite, zeros, e);
}

/* The usual case once the range has settled: a per-tensor batch that the
 * histogram's grid already holds.  Counting on that grid straight away and
 * checking afterwards (the scan also finds the extremes) reads the values
 * once instead of twice.  Returns 1 when the batch was counted; 0 when the
 * grid must grow first, with nothing counted and the batch's extremes in
 * s->ext[0]. */
static inline int histogram_try_current_grid(histogram_set *s, const layout *l)
{
    histogram *h = &s->h[0];
    scan_grid g = histogram_grid(s, h);
    scan_extremes e = scan_none();
    if (s->pending + l->numel > HISTOGRAM_PENDING_MAX)
        histogram_settle(s);
    int64_t zeros, finite = scan_bins(&g, l->data, l->numel, s->sub, &zeros, &e);
    s->ext[0] = e;
    if (e.lo > e.hi)
        return 1;   /* nothing finite: nothing counted */
    double lo = s->absolute ? e.abs_lo : e.lo, hi = s->absolute ? e.abs_hi : e.hi;
    double j0 = scan_bin_unclamped(&g, (float)lo), j1 = scan_bin_unclamped(&g, (float)hi);
    if (j0 >= 0 && j1 <= (double)(s->bins - 1)) {
        histogram_note(h, s, finite, zeros, &e);
        s->pend_j0 = s->pending && s->pend_j0 < (int64_t)j0 ? s->pend_j0 : (int64_t)j0;
        s->pend_j1 = s->pending && s->pend_j1 > (int64_t)j1 ? s->pend_j1 : (int64_t)j1;
        s->pending += l->numel;
        return 1;
    }
    /* Values outside the grid were clamped into its end bins: take the
     * batch's counts back.  Counting it again (rare: only while the range
     * still grows) gives the very same bins. */
    size_t all = (size_t)s->bins * SCAN_SUBS;
    if (!s->pending) {
        memset(s->sub, 0, all * sizeof *s->sub);
        return 0;
    }
    scan_extremes again = scan_none();
    scan_bins(&g, l->data, l->numel, s->undo, &zeros, &again);
    for (size_t j = 0; j < all; j++)
        s->sub[j] -= s->undo[j];
    memset(s->undo, 0, all * sizeof *s->undo);
    return 0;
}

static inline void histogram_set_init(histogram_set *s, const qk_host *host, const qk_quant_spec *spec, int64_t bins,
                               int absolute)
{
    memset(s, 0, sizeof *s);
    s->host = host;
    s->per_channel = spec->per_channel != 0;
    s->axis = spec->axis;
    s->absolute = absolute;
    s->bins = bins;
}

static inline void histogram_set_free(histogram_set *s)
{
    s->host->mem->free(s->ext);
    s->host->mem->free(s->sub);
    s->host->mem->free(s->undo);
    s->ext = NULL;
    s->sub = NULL;
    s->undo = NULL;
    s->pending = 0;
    if (!s->h)
        return;
    for (int64_t c = 0; c < s->channels; c++)
        s->host->mem->free(s->h[c].count);
    s->host->mem->free(s->h);
    s->h = NULL;
    s->channels = 0;
}

/* Allocates the channels on the first batch; later batches must have the
 * same channel count. */
static inline int histogram_set_channels(histogram_set *s, int64_t channels)
{
    const qk_host *host = s->host;
    if (s->channels)
        return layout_same_channels(host, s->channels, channels);
    s->h = host->mem->calloc((size_t)channels, sizeof *s->h);
    s->ext = host->mem->calloc((size_t)channels, sizeof *s->ext);
    s->sub = host->mem->calloc((size_t)s->bins * SCAN_SUBS, sizeof *s->sub);
    s->undo = host->mem->calloc((size_t)s->bins * SCAN_SUBS, sizeof *s->undo);
    if (!s->h || !s->ext || !s->sub || !s->undo) {
        histogram_set_free(s);
        return host->log->error(host, QK_ENOMEM, "out of memory");
    }
    for (int64_t c = 0; c < channels; c++) {
        s->h[c].count = host->mem->calloc((size_t)s->bins, sizeof *s->h[c].count);
        if (!s->h[c].count) {
            s->channels = c + 1;
            histogram_set_free(s);
            return host->log->error(host, QK_ENOMEM, "out of memory for %lld histograms of %lld bins",
                                    (long long)channels, (long long)s->bins);
        }
    }
    s->channels = channels;
    return QK_OK;
}

/* Folds one float tensor in: each channel's histogram first grows to hold
 * the batch, then counts it, so a failed allocation leaves every count as it
 * was (a channel may have been widened, which changes no statistic). */
static inline int histogram_set_observe(histogram_set *s, const qk_tensor *t)
{
    const qk_host *host = s->host;
    layout l;
    int st = layout_of(host, t, s->per_channel, s->axis, &l);
    if (!st)
        st = histogram_set_channels(s, l.channels);
    if (st || !l.numel)
        return st;
    int known = 0;   /* s->ext holds the batch's extremes */
    if (l.channels == 1 && s->h[0].total > 0 && l.numel <= HISTOGRAM_PENDING_MAX) {
        if (histogram_try_current_grid(s, &l)) {
            s->batches++;
            return QK_OK;
        }
        known = 1;
    }
    histogram_settle(s);
    for (int64_t c = 0; c < l.channels; c++) {
        scan_extremes *e = &s->ext[c];
        if (!known)
            *e = layout_extremes(&l, c, s->absolute);
        if (e->lo > e->hi)
            continue;   /* nothing finite in this channel of this batch */
        if (histogram_cover(host, &s->h[c], s->bins, s->absolute ? e->abs_lo : e->lo,
                            s->absolute ? e->abs_hi : e->hi, 0.0))
            return host->log->error(host, QK_ENOMEM, "out of memory");
    }
    for (int64_t c = 0; c < l.channels; c++)
        if (s->ext[c].lo <= s->ext[c].hi)
            histogram_add(&s->h[c], s, &l, c, &s->ext[c]);
    s->batches++;
    return QK_OK;
}

/* Adds `other` (same bins and mode) into s, as if s had seen its batches.
 * other's pending counts are read where they are (other stays as it is). */
static inline int histogram_set_merge(histogram_set *s, const histogram_set *other)
{
    const qk_host *host = s->host;
    if (!other->batches)
        return QK_OK;
    histogram_settle(s);
    if (s->per_channel != other->per_channel || s->absolute != other->absolute || s->bins != other->bins)
        return host->log->error(host, QK_EINVAL,
                                "cannot merge observations made with different arguments or spec");
    int st = histogram_set_channels(s, other->channels);
    if (st)
        return st;
    for (int64_t c = 0; c < s->channels; c++) {
        histogram *h = &s->h[c];
        const histogram *o = &other->h[c];
        if (!(o->total > 0))
            continue;
        if (histogram_cover(host, h, s->bins, o->lo, o->hi, o->width))
            return host->log->error(host, QK_ENOMEM, "out of memory");
        for (int64_t j = 0; j < s->bins; j++) {
            double n = c == 0 && other->pending ? o->count[j] + (double)histogram_pending_at(other, j) : o->count[j];
            if (n > 0)
                h->count[histogram_rebin_index(o->first + (double)j, o->width, h->width, h->first)] += n;
        }
        if (!(h->total > 0) || o->lo < h->lo)
            h->lo = o->lo;
        if (!(h->total > 0) || o->hi > h->hi)
            h->hi = o->hi;
        h->total += o->total;
        h->min = o->min < h->min ? o->min : h->min;
        h->max = o->max > h->max ? o->max : h->max;
    }
    s->batches += other->batches;
    return QK_OK;
}

/* The check every range() starts with: something was observed, the caller
 * asks for the observed channel count, and every channel saw a finite value.
 * Settles what is pending, so that the counts can be read after it. */
static inline int histogram_set_ready(histogram_set *s, int64_t channels)
{
    const qk_host *host = s->host;
    histogram_settle(s);
    int st = layout_range_check(host, s->batches, s->channels, channels);
    if (st)
        return st;
    for (int64_t c = 0; c < channels; c++)
        if (!(s->h[c].total > 0))
            return host->log->error(host, QK_EINVAL, "channel %lld held no finite value", (long long)c);
    return QK_OK;
}

/* The value below which a fraction q (0..1) of h's counts lie, interpolating
 * linearly inside the bin (values are taken as spread evenly over a bin) and
 * clamped to the observed extremes, so q = 1 is exactly the largest value. */
static inline double histogram_quantile(const histogram *h, int64_t bins, double q)
{
    if (q <= 0)
        return h->lo;
    if (q >= 1)
        return h->hi;
    double target = q * h->total, below = 0;
    for (int64_t j = 0; j < bins; j++) {
        double n = h->count[j];
        if (n > 0 && below + n >= target) {
            double v = histogram_edge(h, j) + h->width * (target - below) / n;
            return v < h->lo ? h->lo : v > h->hi ? h->hi : v;
        }
        below += n;
    }
    return h->hi;
}

/* Index one past the last non-empty bin (0 when h is empty). */
static inline int64_t histogram_used(const histogram *h, int64_t bins)
{
    int64_t n = bins;
    while (n > 0 && !(h->count[n - 1] > 0))
        n--;
    return n;
}

#endif
