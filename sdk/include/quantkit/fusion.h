/* This file implements the fusion plugin interface: a graph rewrite that
 * must leave the float outputs unchanged (e.g. Conv+BatchNormalization
 * folding, Conv+Relu grouping), run before the quantization plan so one
 * quantization point sits after the fused group. */
#ifndef QUANTKIT_FUSION_H
#define QUANTKIT_FUSION_H
#include <stddef.h>
#include "host.h"

typedef struct qk_fusion_vtable {
    size_t size;
    /* Rewrites g in place through host->graph; stores the number of
     * rewrites made in *count.  args: the fusion's YAML arguments. */
    int (*apply)(const qk_host *host, qk_graph *g, const qk_params *args, int *count);
} qk_fusion_vtable;

#endif
