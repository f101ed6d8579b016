/* This file implements the host function table plugins call through
 * (see sdk/include/quantkit/host.h).  Every function here is a thin,
 * checked adapter from the SDK's opaque handles to the core's IR, so
 * plugins never see a core struct and the core can change freely. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <quantkit/quantkit.h>
#include "host.h"

static host_ctx *ctx_of(const qk_host *h) { return (host_ctx *)h->internal; }

/* ---- memory --------------------------------------------------------------- */

static void *mem_alloc(size_t n) { return malloc(n ? n : 1); }
static void *mem_calloc(size_t n, size_t each) { return calloc(n ? n : 1, each ? each : 1); }
static void *mem_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
static void mem_free(void *p) { free(p); }

static const qk_mem_api mem_api = {sizeof mem_api, mem_alloc, mem_calloc, mem_realloc, mem_free};

/* ---- logging -------------------------------------------------------------- */

static int log_error(const qk_host *h, int status, const char *fmt, ...)
{
    host_ctx *c = ctx_of(h);
    char msg[QK_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Keep the first error: later ones are usually its consequences. */
    if (c->err && !c->err->code) qk_fail(c->err, status ? status : QK_ERR, "%s: %s", c->who, msg);
    return status;
}

static void log_line(const qk_host *h, const char *level, const char *fmt, va_list ap)
{
    char msg[QK_ERRMSG_LEN];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "quantkit: %s: %s: %s\n", level, ctx_of(h)->who, msg);
}

static void log_warn(const qk_host *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(h, "warning", fmt, ap);
    va_end(ap);
}

static void log_info(const qk_host *h, const char *fmt, ...)
{
    if (!getenv("QUANTKIT_VERBOSE")) return;
    va_list ap;
    va_start(ap, fmt);
    log_line(h, "info", fmt, ap);
    va_end(ap);
}

static const qk_log_api log_api = {sizeof log_api, log_error, log_warn, log_info};

/* ---- tensors -------------------------------------------------------------- */

static qk_dtype t_dtype(const qk_tensor *t) { return (qk_dtype)t->t.dtype; }
static int t_rank(const qk_tensor *t) { return t->t.rank; }
static int64_t t_dim(const qk_tensor *t, int i) { return i >= 0 && i < t->t.rank ? t->t.dims[i] : -1; }
static int64_t t_numel(const qk_tensor *t) { return xt_numel(&t->t); }
static const void *t_data(const qk_tensor *t) { return t->t.data; }
static const char *t_name(const qk_tensor *t) { return t->name ? t->name : ""; }

static const qk_tensor_api tensor_api = {sizeof tensor_api, t_dtype, t_rank, t_dim, t_numel, t_data, t_name};

struct qk_tensor host_tensor_view(const xt *t, const char *name)
{
    struct qk_tensor v = {*t, name};
    return v;
}

/* ---- graph ---------------------------------------------------------------- */

#define G(g) ((ir_graph *)(g))
#define CG(g) ((const ir_graph *)(g))

static int node_ok(const qk_graph *g, int n) { return n >= 0 && n < CG(g)->n_nodes; }
static int value_ok(const qk_graph *g, int v) { return v >= 0 && v < CG(g)->n_values; }

static int g_node_count(const qk_graph *g) { return CG(g)->n_nodes; }
static int g_node_dead(const qk_graph *g, int n) { return !node_ok(g, n) || CG(g)->nodes[n].dead; }
static const char *g_node_op(const qk_graph *g, int n) { return node_ok(g, n) ? node_op_type(&CG(g)->nodes[n]) : ""; }
static const char *g_node_name(const qk_graph *g, int n) { return node_ok(g, n) ? node_name(&CG(g)->nodes[n]) : ""; }
static int g_node_n_inputs(const qk_graph *g, int n) { return node_ok(g, n) ? CG(g)->nodes[n].n_in : 0; }
static int g_node_n_outputs(const qk_graph *g, int n) { return node_ok(g, n) ? CG(g)->nodes[n].n_out : 0; }

static int g_node_input(const qk_graph *g, int n, int i)
{
    return node_ok(g, n) && i >= 0 && i < CG(g)->nodes[n].n_in ? CG(g)->nodes[n].in[i] : -1;
}

static int g_node_output(const qk_graph *g, int n, int i)
{
    return node_ok(g, n) && i >= 0 && i < CG(g)->nodes[n].n_out ? CG(g)->nodes[n].out[i] : -1;
}

static int g_value_find(const qk_graph *g, const char *name) { return ir_find_value(CG(g), name); }
static const char *g_value_name(const qk_graph *g, int v) { return value_ok(g, v) ? CG(g)->values[v].name : ""; }

/* The host ctx is not reachable from a bare qk_graph, so tensor views of
 * graph values live in a side table owned by the graph's values: one view
 * per value, refreshed on every call so edits are always visible. */
static const qk_tensor *g_value_tensor(const qk_graph *g, int v)
{
    if (!value_ok(g, v)) return NULL;
    ir_value *val = &G(g)->values[v];
    struct qk_tensor *view = val->plugin_view;
    if (!view) {
        view = calloc(1, sizeof *view);
        if (!view) return NULL;
        val->plugin_view = view;
    }
    view->t = val->t;
    view->name = val->name;
    return view;
}

static int g_value_producer(const qk_graph *g, int v) { return value_ok(g, v) ? CG(g)->values[v].producer : -1; }

static int g_value_n_consumers(const qk_graph *g, int v)
{
    int n = 0;
    for (int i = 0; i < CG(g)->n_nodes; i++) {
        const ir_node *nd = &CG(g)->nodes[i];
        if (nd->dead) continue;
        for (int k = 0; k < nd->n_in; k++) n += nd->in[k] == v;
    }
    return n;
}

static int g_value_is_output(const qk_graph *g, int v) { return value_ok(g, v) && CG(g)->values[v].is_output; }
static int g_value_is_constant(const qk_graph *g, int v) { return value_ok(g, v) && CG(g)->values[v].t.data != NULL; }

static int64_t g_attr_int(const qk_graph *g, int n, const char *name, int64_t def)
{
    return node_ok(g, n) ? node_attr_int(&CG(g)->nodes[n], name, def) : def;
}

static double g_attr_float(const qk_graph *g, int n, const char *name, double def)
{
    return node_ok(g, n) && node_has_attr(&CG(g)->nodes[n], name) ? node_attr_float(&CG(g)->nodes[n], name, 0) : def;
}

static int g_attr_ints(const qk_graph *g, int n, const char *name, const int64_t **v)
{
    return node_ok(g, n) ? node_attr_ints(&CG(g)->nodes[n], name, v) : -1;
}

static const char *g_attr_str(const qk_graph *g, int n, const char *name, const char *def)
{
    return node_ok(g, n) ? node_attr_str(&CG(g)->nodes[n], name, def) : def;
}

static int g_set_attr_int(qk_graph *g, int n, const char *name, int64_t v)
{
    return node_ok(g, n) ? ir_node_set_attr_int(&G(g)->nodes[n], name, v) : QK_EINVAL;
}

static int g_set_attr_float(qk_graph *g, int n, const char *name, double v)
{
    return node_ok(g, n) ? ir_node_set_attr_float(&G(g)->nodes[n], name, (float)v) : QK_EINVAL;
}

static int g_set_attr_ints(qk_graph *g, int n, const char *name, const int64_t *v, int count)
{
    return node_ok(g, n) ? ir_node_set_attr_ints(&G(g)->nodes[n], name, v, count) : QK_EINVAL;
}

static int g_set_attr_str(qk_graph *g, int n, const char *name, const char *v)
{
    return node_ok(g, n) ? ir_node_set_attr_str(&G(g)->nodes[n], name, v) : QK_EINVAL;
}

static int g_add_node(qk_graph *g, const char *op, const char *name, int n_in, const char *const *in, int n_out,
                      const char *const *out)
{
    if (!op || n_in < 0 || n_out < 1) return QK_EINVAL;
    return ir_add_node(G(g), op, name, n_in, in, n_out, out);
}

static int g_remove_node(qk_graph *g, int n)
{
    if (!node_ok(g, n)) return QK_EINVAL;
    ir_remove_node(G(g), n);
    return QK_OK;
}

static int g_set_input(qk_graph *g, int n, int i, int v)
{
    if (!node_ok(g, n) || i < 0 || i >= G(g)->nodes[n].n_in || (v >= 0 && !value_ok(g, v))) return QK_EINVAL;
    ir_set_input(G(g), n, i, v);
    return QK_OK;
}

static int g_replace_uses(qk_graph *g, int from, int to)
{
    if (!value_ok(g, from) || !value_ok(g, to)) return QK_EINVAL;
    ir_replace_uses(G(g), from, to);
    return QK_OK;
}

static int g_add_initializer(qk_graph *g, const char *name, qk_dtype dtype, int rank, const int64_t *dims,
                             const void *data)
{
    if (!name || rank < 0 || rank > XT_MAX_RANK || !dtype_supported((int)dtype) || !data) return QK_EINVAL;
    xt t = {.dtype = (int)dtype, .rank = rank, .data = (void *)data};
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return QK_EINVAL;
        t.dims[i] = dims[i];
    }
    return ir_add_initializer(G(g), name, &t);
}

static const char *g_unique_name(const qk_graph *g, const char *base, char *buf, size_t len)
{
    char *s = ir_unique_name(CG(g), base);
    snprintf(buf, len, "%s", s ? s : base);
    free(s);
    return buf;
}

static int g_set_output(qk_graph *g, int n, int i, const char *name)
{
    return node_ok(g, n) ? ir_set_output(G(g), n, i, name) : QK_EINVAL;
}

static int g_mark_fused(qk_graph *g, int v)
{
    if (!value_ok(g, v)) return QK_EINVAL;
    G(g)->values[v].fused = 1;
    return QK_OK;
}

static int g_value_fused(const qk_graph *g, int v) { return value_ok(g, v) && CG(g)->values[v].fused; }

static const qk_graph_api graph_api = {
    sizeof graph_api, g_node_count, g_node_dead, g_node_op, g_node_name, g_node_n_inputs, g_node_n_outputs,
    g_node_input, g_node_output, g_value_find, g_value_name, g_value_tensor, g_value_producer,
    g_value_n_consumers, g_value_is_output, g_value_is_constant, g_attr_int, g_attr_float, g_attr_ints,
    g_attr_str, g_set_attr_int, g_set_attr_float, g_set_attr_ints, g_set_attr_str, g_add_node, g_remove_node,
    g_set_input, g_replace_uses, g_add_initializer, g_unique_name, g_set_output, g_mark_fused, g_value_fused,
};

/* ---- context -------------------------------------------------------------- */

void host_ctx_init(host_ctx *ctx, const char *who, ir_graph *g, qk_err *err)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->host.size = sizeof ctx->host;
    ctx->host.abi_major = QK_ABI_MAJOR;
    ctx->host.abi_minor = QK_ABI_MINOR;
    ctx->host.mem = &mem_api;
    ctx->host.log = &log_api;
    ctx->host.tensor = &tensor_api;
    ctx->host.graph = &graph_api;
    ctx->host.params = host_params_api();
    ctx->host.plan = NULL;
    ctx->host.internal = ctx;
    ctx->who = who;
    ctx->g = g;
    ctx->err = err;
}
