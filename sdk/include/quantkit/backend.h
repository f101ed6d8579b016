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
} qk_plan_api;

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
} qk_backend_vtable;

#endif
