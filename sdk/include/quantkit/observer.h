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
} qk_observer_vtable;

#endif
