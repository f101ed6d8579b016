/* This file implements the backend plugin interface: what a target runtime
 * can quantize, which fusions it wants, and how the quantized model is
 * written for it (QDQ ONNX, a vendor's format, ...). */
#ifndef QUANTKIT_BACKEND_H
#define QUANTKIT_BACKEND_H
#include <stddef.h>
#include "host.h"
#include "quant.h"

/* The quantization plan handed to emit: which values are quantized with
 * which parameters.  Borrowed for the call. */
typedef struct qk_plan qk_plan;

typedef struct qk_plan_api {
    size_t size;
    /* Number of planned entries. */
    int (*count)(const qk_plan *p);
    /* Graph value id of entry i. */
    int (*value)(const qk_plan *p, int i);
    /* True when entry i is a weight (constant), false for an activation. */
    int (*is_weight)(const qk_plan *p, int i);
    /* Quantization parameters of entry i (borrowed). */
    const qk_qparams *(*qparams)(const qk_plan *p, int i);
    /* Integer codes of a weight entry (numel values, borrowed), else NULL. */
    const int32_t *(*codes)(const qk_plan *p, int i);
    /* QK_PLAN_ACTIVATION, QK_PLAN_WEIGHT or QK_PLAN_BIAS (int32 codes,
     * scale = input scale * weight scale, zero point 0). */
    int (*role)(const qk_plan *p, int i);
    /* Bit width the entry was quantized to (32 for a bias). */
    int (*bits)(const qk_plan *p, int i);
} qk_plan_api;

enum { QK_PLAN_ACTIVATION = 0, QK_PLAN_WEIGHT = 1, QK_PLAN_BIAS = 2 };

typedef struct qk_backend_vtable {
    size_t size;
    /* NULL-terminated ONNX op types this backend quantizes. */
    const char *const *quantized_ops;
    /* NULL-terminated fusion names used when the YAML names none. */
    const char *const *default_fusions;
    /* Validates backend_options (reject unknown keys).  May be NULL. */
    int (*check_options)(const qk_host *host, const qk_params *options);
    /* Rewrites the (fused, float) graph into the deploy model. */
    int (*emit)(const qk_host *host, qk_graph *g, const qk_plan *plan, const qk_params *options);
    /* ---- ABI 1.1 ---- */
    /* NULL-terminated op types that move values without changing them
     * (MaxPool, Reshape, Concat, ...): their quantized inputs and outputs
     * share one scale and zero point, as integer runtimes require. */
    const char *const *shared_scale_ops;
} qk_backend_vtable;

#endif
