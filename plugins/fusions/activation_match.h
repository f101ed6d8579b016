/* This file implements the activation matching that the conv_relu and
 * conv_add_relu fusions share: whether a node is a Relu or a Clip acting as
 * one (min exactly 0, max absent or >= 0, so ReLU6 and any ReLU-N count),
 * which single live node reads a value, and whether the host can mark a
 * value fused at all.  It exists so that both fusions
 * accept exactly the same activations; before, each file carried its own
 * copy to be kept in step by hand.  Header-only (static inline functions,
 * SDK headers only) so that every fusion stays one self-contained shared
 * object.
 *
 * Clip-6 carries min/max as attributes, Clip-11+ as optional constant
 * inputs; a non-constant bound is not a match, since its value is not known
 * when the group is formed. */
#ifndef QK_FUSIONS_ACTIVATION_MATCH_H
#define QK_FUSIONS_ACTIVATION_MATCH_H
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <quantkit/quantkit.h>

/* Value of a Clip bound: input slot `slot` when present (must be a constant
 * float scalar), else the Clip-6 attribute.  Returns 0 and stores the bound
 * (def when absent), or -1 when the bound is not a known constant. */
static inline int activation_clip_bound(const qk_host *h, qk_graph *g, int node, int slot, const char *attr,
                                        double def, double *out)
{
    const qk_graph_api *ga = h->graph;
    int v = ga->node_n_inputs(g, node) > slot ? ga->node_input(g, node, slot) : -1;
    if (v < 0) {
        *out = ga->attr_float(g, node, attr, def);
        return 0;
    }
    if (!ga->value_is_constant(g, v)) return -1;
    const qk_tensor *t = ga->value_tensor(g, v);
    if (!t || h->tensor->dtype(t) != QK_DTYPE_FLOAT || h->tensor->numel(t) != 1) return -1;
    *out = *(const float *)h->tensor->data(t);
    return 0;
}

/* True when node is a Relu or a Clip acting as one (min 0, max >= 0). */
static inline int activation_is_relu(const qk_host *h, qk_graph *g, int node)
{
    const char *op = h->graph->node_op(g, node);
    if (!strcmp(op, "Relu")) return 1;
    if (strcmp(op, "Clip")) return 0;
    double lo, hi;
    if (activation_clip_bound(h, g, node, 1, "min", -INFINITY, &lo) ||
        activation_clip_bound(h, g, node, 2, "max", INFINITY, &hi))
        return 0;
    return lo == 0.0 && hi >= 0.0;
}

/* The one live node reading value v, or -1 when there is not exactly one
 * reading slot (a node reading v twice is not a Relu anyway). */
static inline int activation_only_reader(const qk_graph_api *ga, qk_graph *g, int v)
{
    if (ga->value_n_consumers(g, v) != 1) return -1;
    int n = ga->node_count(g);
    for (int i = 0; i < n; i++) {
        if (ga->node_dead(g, i)) continue;
        for (int k = 0; k < ga->node_n_inputs(g, i); k++)
            if (ga->node_input(g, i, k) == v) return i;
    }
    return -1;
}

/* QK_OK when the host's graph table has mark_fused and value_fused (ABI
 * 1.1), else QK_ENOTSUP reported through the host: never call past the end
 * of an older host's table. */
static inline int activation_host_can_fuse(const qk_host *h)
{
    if (h->graph->size < offsetof(qk_graph_api, value_fused) + sizeof h->graph->value_fused)
        return h->log->error(h, QK_ENOTSUP, "needs graph->mark_fused (quantkit ABI 1.1); the host has ABI %d.%d",
                             h->abi_major, h->abi_minor);
    return QK_OK;
}

#endif
