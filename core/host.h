/* This file implements the host side of the plugin function table
 * (sdk/include/quantkit/host.h): one host_ctx per plugin call site, whose
 * embedded qk_host is what the plugin receives. */
#ifndef QK_CORE_HOST_H
#define QK_CORE_HOST_H
#include <quantkit/host.h>
#include "ir.h"

/* The tensor a plugin sees: a runtime tensor plus the value's name. */
struct qk_tensor {
    xt t;
    const char *name;
};

typedef struct host_ctx {
    qk_host host;             /* handed to the plugin as &ctx->host */
    const char *who;          /* "observer 'minmax'": prefixes messages */
    ir_graph *g;              /* graph for host->graph, may be NULL */
    qk_err *err;              /* where host->log->error writes */
} host_ctx;

/* Prepares ctx for a plugin named by `who` (copied pointer: must outlive
 * ctx), editing graph g (may be NULL), reporting errors into err. */
void host_ctx_init(host_ctx *ctx, const char *who, ir_graph *g, qk_err *err);
/* The params sub-table (host_params.c, over the YAML config's typed maps). */
const qk_params_api *host_params_api(void);
struct cfg_map;
/* A params handle over a config map (NULL: no arguments) whose errors go
 * to err.  Free with host_params_free (NULL is a no-op). */
qk_params *host_params_new(const struct cfg_map *map, qk_err *err);
void host_params_free(qk_params *p);
/* Wraps a runtime tensor for a plugin call (no copy). */
struct qk_tensor host_tensor_view(const xt *t, const char *name);

/* The graph behind a qk_graph handle: plugins get (qk_graph *)ir_graph. */
static inline ir_graph *host_graph(qk_graph *g) { return (ir_graph *)g; }

#endif
