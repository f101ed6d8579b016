/* This file implements the fusion "conv_relu": a Conv, ConvTranspose, Gemm
 * or MatMul followed by a Relu (or a Clip with min 0, PyTorch's ReLU6) is
 * grouped so that the plan puts no quantization point between them.
 *
 * Integer kernels apply the activation while requantizing the accumulator
 * (Horizon BPU and Ascend conv units, ORT's QLinearConv after its Relu/Clip
 * removal), so the one scale they can use is the one after the activation.
 * A point on the Conv output would spend half the int8 range on negatives
 * the Relu throws away, and would not exist on the device anyway.
 *
 * Nothing is rewritten: the Conv output is marked fused (graph.h,
 * mark_fused), which cannot change the float math.  The group is formed
 * only when the Conv output is read by the activation alone and is not a
 * graph output, since any other reader needs the pre-activation values.
 *
 * MatMul is included: MatMul+Relu (a bias-free Linear) requantizes the
 * same way, and when a backend does not quantize MatMul the mark only
 * removes a point nobody would have planned.  Clip counts as a Relu when
 * its min is exactly 0 and its max is absent or >= 0: any such bound ends up
 * inside the range of the point after it, so ReLU6 and ReLU-N alike fuse.
 * Clip-6 carries min/max as attributes, Clip-11+ as optional constant inputs
 * (a non-constant bound is not fused); the test is in activation_match.h,
 * shared with conv_add_relu. */
#include <string.h>
#include <quantkit/quantkit.h>
#include "activation_match.h"

static int is_producer(const char *op)
{
    return !strcmp(op, "Conv") || !strcmp(op, "ConvTranspose") || !strcmp(op, "Gemm") || !strcmp(op, "MatMul");
}

/* Marks node's output fused when it starts a Conv+Relu group; returns 1
 * when marked, 0 when not a group (or already one), or a negative status. */
static int group(const qk_host *h, qk_graph *g, int node)
{
    const qk_graph_api *ga = h->graph;
    if (ga->node_n_outputs(g, node) != 1) return 0;
    int y = ga->node_output(g, node, 0);
    if (y < 0 || ga->value_is_output(g, y) || ga->value_is_constant(g, y) || ga->value_fused(g, y)) return 0;
    const qk_tensor *t = ga->value_tensor(g, y);
    if (!t || h->tensor->dtype(t) != QK_DTYPE_FLOAT) return 0;
    int act = activation_only_reader(ga, g, y);
    /* Only the data input: a Relu reading y as a Clip bound is no group. */
    if (act < 0 || ga->node_input(g, act, 0) != y || !activation_is_relu(h, g, act)) return 0;
    int rc = ga->mark_fused(g, y);
    return rc < 0 ? rc : 1;
}

static int conv_relu_apply(const qk_host *h, qk_graph *g, const qk_params *args, int *count)
{
    static const char *const allowed[] = {NULL};
    *count = 0;
    int rc = h->params->check_keys(args, allowed, "args of fusion `conv_relu`");
    if (rc < 0) return rc;
    if ((rc = activation_host_can_fuse(h)) < 0) return rc;
    int n = h->graph->node_count(g);
    for (int i = 0; i < n; i++) {
        if (h->graph->node_dead(g, i) || !is_producer(h->graph->node_op(g, i))) continue;
        rc = group(h, g, i);
        if (rc < 0) return h->log->error(h, rc, "marking the output of '%s' fused failed", h->graph->node_name(g, i));
        *count += rc;
    }
    return QK_OK;
}

static const qk_fusion_vtable conv_relu_vtable = {sizeof conv_relu_vtable, conv_relu_apply};

QK_PLUGIN_DEFINE(QK_PLUGIN_FUSION, "conv_relu", "1.0.0",
                 "group Conv/ConvTranspose/Gemm/MatMul with the Relu or Clip(0, max) after it: one quantization "
                 "point after the activation",
                 "MIT", &conv_relu_vtable);
