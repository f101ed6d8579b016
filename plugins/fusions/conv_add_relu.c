/* This file implements the fusion "conv_add_relu": a Conv, ConvTranspose or
 * Gemm whose output is added to a residual (ResNet's and MobileNetV2's
 * skip connections), and the Relu (or Clip with min 0) after the Add if
 * there is one, are grouped so that the plan puts one quantization point
 * after the group instead of one on the Conv output and one on the sum.
 *
 * Horizon BPU and Ascend conv units add the residual to the accumulator and
 * apply the Relu before requantizing, like ORT's fused QLinearConv with a
 * sum input; a point on the Conv output would not exist on the device.
 * The residual itself keeps its own point: the plan quantizes it, under the
 * Conv's rule, if nothing planned it earlier.
 *
 * Nothing is rewritten: the Conv output (and the Add output when a Relu
 * follows) are marked fused (graph.h, mark_fused), which cannot change the
 * float math.  The rules, each because another reader or shape would need
 * the values the group no longer quantizes:
 *   - the Conv output has the Add as its only reader and is not a graph
 *     output;
 *   - the Add's other input is a non-constant float activation of the very
 *     same shape (a broadcast or constant operand is a bias, not a
 *     residual; -1, an unknown dim, must match -1);
 *   - when both Add inputs qualify, only the later Conv in graph order
 *     joins: the graph is topologically sorted, so the earlier branch is
 *     already computed when the later Conv runs and can be read as its
 *     residual, which is how the devices schedule it;
 *   - the Add output joins (Conv+Add+Relu) only when its one reader is a
 *     Relu or Clip(min 0, max absent or >= 0; see activation_match.h) and
 *     it is not a graph output; otherwise the group ends at the Add.
 * An Add with an input already fused is left alone, so the plugin can run
 * after conv_relu (which never fuses a Conv read by an Add) or twice.
 * MatMul is not included: its residual Adds (transformers) feed LayerNorm
 * and are where the int8 range matters most; no target fuses them. */
#include <string.h>
#include <quantkit/quantkit.h>
#include "activation_match.h"

static int is_producer(const char *op)
{
    return !strcmp(op, "Conv") || !strcmp(op, "ConvTranspose") || !strcmp(op, "Gemm");
}

/* A non-constant float value that may sit inside a group. */
static int is_activation(const qk_host *h, qk_graph *g, int v)
{
    if (v < 0 || h->graph->value_is_constant(g, v)) return 0;
    const qk_tensor *t = h->graph->value_tensor(g, v);
    return t && h->tensor->dtype(t) == QK_DTYPE_FLOAT;
}

static int same_shape(const qk_host *h, qk_graph *g, int a, int b)
{
    const qk_tensor *ta = h->graph->value_tensor(g, a), *tb = h->graph->value_tensor(g, b);
    int rank = h->tensor->rank(ta);
    if (rank < 1 || rank != h->tensor->rank(tb)) return 0;
    for (int i = 0; i < rank; i++)
        if (h->tensor->dim(ta, i) != h->tensor->dim(tb, i)) return 0;
    return 1;
}

/* The Conv-like node whose output is Add input `slot` and may join the
 * Add's group, or -1. */
static int candidate(const qk_host *h, qk_graph *g, int add, int slot)
{
    const qk_graph_api *ga = h->graph;
    int x = ga->node_input(g, add, slot), r = ga->node_input(g, add, 1 - slot);
    int prod = ga->value_producer(g, x);
    if (prod < 0 || !is_producer(ga->node_op(g, prod)) || ga->node_n_outputs(g, prod) != 1) return -1;
    if (!is_activation(h, g, x) || ga->value_is_output(g, x) || ga->value_n_consumers(g, x) != 1) return -1;
    if (!is_activation(h, g, r) || !same_shape(h, g, x, r)) return -1;
    return prod;
}

/* Groups the Add at node `add` with the Conv feeding it (and the Relu after
 * it); returns 1 when a group was formed, 0 when not, or a negative status. */
static int group(const qk_host *h, qk_graph *g, int add)
{
    const qk_graph_api *ga = h->graph;
    if (ga->node_n_inputs(g, add) != 2 || ga->node_n_outputs(g, add) != 1) return 0;
    int a = ga->node_input(g, add, 0), b = ga->node_input(g, add, 1), y = ga->node_output(g, add, 0);
    if (a < 0 || b < 0 || y < 0 || ga->value_fused(g, a) || ga->value_fused(g, b) || ga->value_fused(g, y)) return 0;
    int ca = candidate(h, g, add, 0), cb = candidate(h, g, add, 1);
    if (ca < 0 && cb < 0) return 0;
    int conv = ca > cb ? ca : cb;   /* the later one: see the file comment */
    int rc = ga->mark_fused(g, ga->node_output(g, conv, 0));
    if (rc < 0) return rc;
    int act = activation_only_reader(ga, g, y);
    if (act >= 0 && ga->node_input(g, act, 0) == y && !ga->value_is_output(g, y) && is_activation(h, g, y) &&
        activation_is_relu(h, g, act)) {
        rc = ga->mark_fused(g, y);
        if (rc < 0) return rc;
    }
    return 1;
}

static int conv_add_relu_apply(const qk_host *h, qk_graph *g, const qk_params *args, int *count)
{
    static const char *const allowed[] = {NULL};
    *count = 0;
    int rc = h->params->check_keys(args, allowed, "args of fusion `conv_add_relu`");
    if (rc < 0) return rc;
    if ((rc = activation_host_can_fuse(h)) < 0) return rc;
    int n = h->graph->node_count(g);
    for (int i = 0; i < n; i++) {
        if (h->graph->node_dead(g, i) || strcmp(h->graph->node_op(g, i), "Add")) continue;
        rc = group(h, g, i);
        if (rc < 0) return h->log->error(h, rc, "marking the group of '%s' fused failed", h->graph->node_name(g, i));
        *count += rc;
    }
    return QK_OK;
}

static const qk_fusion_vtable conv_add_relu_vtable = {sizeof conv_add_relu_vtable, conv_add_relu_apply};

QK_PLUGIN_DEFINE(QK_PLUGIN_FUSION, "conv_add_relu", "1.0.0",
                 "group Conv/ConvTranspose/Gemm with the residual Add after it (and the Relu or Clip(0, max) after "
                 "that): one quantization point after the group",
                 "MIT", &conv_add_relu_vtable);
