/* This file implements the observer plugin interface.  An observer watches
 * one tensor's values batch by batch during calibration and chooses the
 * clipping range [lo, hi] (per tensor or per channel) that the host turns
 * into scale and zero point.  State is mergeable: calibration may be split
 * across threads, processes or machines and merged afterwards. */
#ifndef QUANTKIT_OBSERVER_H
#define QUANTKIT_OBSERVER_H
#include <stddef.h>
#include <stdint.h>
#include "host.h"
#include "quant.h"

typedef struct qk_observer_vtable {
    size_t size;          /* sizeof(qk_observer_vtable) of the SDK the plugin was built with */
    /* Creates the state for one tensor.  args are the YAML observer_args
     * (validate them: reject unknown keys).  Returns a status; on success
     * *state is owned by the host until destroy. */
    int (*create)(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state);
    /* Folds one batch in.  t's data is borrowed for the call only: keep
     * summaries (min/max, histograms), never the samples.  Per-channel
     * observers reduce over every axis but spec->axis. */
    int (*observe)(void *state, const qk_tensor *t);
    /* Merges `other` (created with the same args and spec, left unchanged)
     * into state, as if state had observed other's batches too. */
    int (*merge)(void *state, const void *other);
    /* Writes the chosen range: `channels` entries each of lo and hi
     * (channels is 1 for per-tensor).  Fails if nothing was observed. */
    int (*range)(void *state, int64_t channels, float *lo, float *hi);
    /* Frees the state; NULL is a no-op. */
    void (*destroy)(void *state);
    /* ABI 1.2, optional (taken as 0 from a shorter vtable): QK_OBSERVER_*
     * flags. */
    unsigned flags;
} qk_observer_vtable;

/* The observer is order-free: observing a batch's values in parts, each
 * part into its own state (created with the same args and spec) and the
 * states merged, gives the same range as observing the batch whole.  The
 * parts are a split along axis 0 (samples), or, for a per-tensor spec, any
 * split into contiguous runs, each seen as a 1-D tensor.  The host may
 * then observe a tensor on several threads at once, and a batch sample by
 * sample.  (minmax and the histogram observers are; a moving average of
 * each batch's extremes is not.) */
#define QK_OBSERVER_SHARDABLE 1u

/* ABI 1.3.  The observer's result depends on a batch (or a part of one)
 * only through the smallest and largest of its finite values: observing it
 * is the same as observing the 1-D tensor {min, max} of those, or {NaN}
 * when it holds none (NaN and infinities are skipped).  For a per-tensor
 * spec the host may then hand over just that, gathered while its kernels
 * compute the values, instead of having every value scanned again.
 * (minmax and a moving average of extremes are; histograms are not.) */
#define QK_OBSERVER_EXTREMES 2u

#endif
