/* This file implements the quantization plan: for every node the backend
 * quantizes, which tensors (activations, weights, biases) get quantized, and
 * with which observer / quantizer / bits / scheme, each traced to the rule
 * that decided it (like AMCT's generated per-layer config). */
#ifndef QK_CORE_PLAN_H
#define QK_CORE_PLAN_H
#include <stdbool.h>
#include <stdio.h>
#include "config.h"
#include "ir.h"

typedef enum plan_role {
    PLAN_ACTIVATION = 0,  /* a non-constant float tensor */
    PLAN_WEIGHT = 1,      /* a float initializer read as a weight */
    PLAN_BIAS = 2,        /* Conv/Gemm bias: int32, scale = s_input * s_weight */
} plan_role;

typedef struct plan_entry {
    int value;                    /* graph value id */
    int node;                     /* the node whose rule decided it */
    plan_role role;
    int axis;                     /* channel axis when per_channel, else -1 */
    const qk_resolved_tensor *rule; /* borrowed from the plan (activation or weight half) */
    int group;                    /* entry whose observer and qparams this one shares (itself if none) */
} plan_entry;

typedef struct quant_plan {
    int n;
    plan_entry *entries;
    int n_rules;
    qk_resolved_rule *rules;      /* one per planned node, owned */
    int n_skipped;                /* quantizable nodes a rule skipped */
} quant_plan;

/* Plans g under config c for a backend quantizing the NULL-terminated op
 * types `ops`.  A value is planned once: by the first node (in graph order)
 * that reads or writes it.  A value marked fused carries no quantization
 * point: the group it belongs to is quantized at its last output instead.
 * Nodes of `shared_ops` (may be NULL) whose input is already quantized get
 * their outputs quantized with the same parameters (one group).  Returns a
 * status; *out owned by the caller. */
int plan_build(const ir_graph *g, const qk_config *c, const char *const *ops, const char *const *shared_ops,
               quant_plan **out, qk_err *err);
/* The entry planned for value v, or -1. */
int plan_find(const quant_plan *p, int value);
/* The entry holding the observer and qparams of entry i's group. */
int plan_group(const quant_plan *p, int i);
void plan_free(quant_plan *p);   /* NULL is a no-op */

/* Writes the plan as a table (json = false) or a JSON document. */
void plan_print(const quant_plan *p, const ir_graph *g, const char *backend, bool json, FILE *f);

#endif
