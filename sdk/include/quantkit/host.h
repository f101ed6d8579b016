/* This file implements the host function table: everything a plugin may ask
 * of quantkit.  Plugins never link against quantkit; they receive
 * `const qk_host *` and call through it, e.g. host->tensor->dim(t, 0).
 *
 * Every sub-table starts with its size and is append-only: a plugin built
 * against an older SDK only calls members that existed then, and a newer
 * plugin checks `size` before using a member the host may lack. */
#ifndef QUANTKIT_HOST_H
#define QUANTKIT_HOST_H
#include <stddef.h>
#include <stdint.h>
#include "status.h"
#include "tensor.h"
#include "graph.h"
#include "params.h"

typedef struct qk_host qk_host;
struct qk_plan_api;

/* Memory that crosses the plugin boundary comes from here, so the host can
 * account for it and tests can make allocations fail. */
typedef struct qk_mem_api {
    size_t size;
    void *(*alloc)(size_t bytes);                 /* NULL on failure */
    void *(*calloc)(size_t n, size_t each);
    void *(*realloc)(void *p, size_t bytes);
    void (*free)(void *p);                        /* NULL is a no-op */
} qk_mem_api;

typedef struct qk_log_api {
    size_t size;
    /* Records a one-line error message (printf format) for the host to show,
     * prefixed with the plugin's kind and name; returns `status` so a plugin
     * can write `return host->log->error(host, QK_EINVAL, "...")`. */
    int (*error)(const qk_host *host, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void (*warn)(const qk_host *host, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void (*info)(const qk_host *host, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
} qk_log_api;

struct qk_host {
    size_t size;              /* sizeof(qk_host) in the host */
    int abi_major, abi_minor; /* the host's QK_ABI_MAJOR / QK_ABI_MINOR */
    const qk_mem_api *mem;
    const qk_log_api *log;
    const qk_tensor_api *tensor;
    const qk_graph_api *graph;
    const qk_params_api *params;
    const struct qk_plan_api *plan;
    void *internal;           /* the host's own context; plugins leave it alone */
};

#endif
