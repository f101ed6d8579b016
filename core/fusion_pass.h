/* This file implements the fusion stage of the pipeline: the fusion plugins
 * named by the config (or, when it names none, the backend's defaults) run
 * in order over the graph, which is re-sorted and re-inferred after each. */
#ifndef QK_CORE_FUSION_PASS_H
#define QK_CORE_FUSION_PASS_H
#include <quantkit/backend.h>
#include <quantkit/fusion.h>
#include "config.h"
#include "ir.h"
#include "registry.h"

/* Applies the fusions; *total receives the number of rewrites (may be NULL).
 * Errors name the fusion. */
int fusion_pass_run(registry *reg, ir_graph *g, const qk_config *c, const qk_backend_vtable *backend, int *total,
                    qk_err *err);

#endif
