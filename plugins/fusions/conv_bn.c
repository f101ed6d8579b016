/* This file implements the fusion "conv_bn": BatchNormalization folded into
 * the Conv, ConvTranspose or Gemm that feeds it, so that one quantization
 * point sits after the fused layer (as BPU and SoC toolchains require) and
 * the weights are quantized in their final, folded form.
 *
 *   y = gamma * (W*x + b - mean) / sqrt(var + eps) + beta
 *     = (W * s) * x + ((b - mean) * s + beta),   s = gamma / sqrt(var + eps)
 *
 * The producer must have constant float weights (and bias, if any) and no
 * reader but the BatchNormalization, whose scale/bias/mean/var are constant. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <quantkit/quantkit.h>

/* Axis of W holding the output channels, or -1 when the op is not foldable. */
static int out_axis(const qk_host *h, qk_graph *g, int node)
{
    const char *op = h->graph->node_op(g, node);
    if (!strcmp(op, "Conv")) return 0;
    if (!strcmp(op, "ConvTranspose")) return h->graph->attr_int(g, node, "group", 1) == 1 ? 1 : -1;
    if (!strcmp(op, "Gemm")) {
        /* Gemm folds only in the plain y = A * B(^T) + C form. */
        if (h->graph->attr_int(g, node, "transA", 0) || h->graph->attr_float(g, node, "alpha", 1.0) != 1.0 ||
            h->graph->attr_float(g, node, "beta", 1.0) != 1.0)
            return -1;
        return h->graph->attr_int(g, node, "transB", 0) ? 0 : 1;
    }
    return -1;
}

static const float *const_floats(const qk_host *h, qk_graph *g, int v, int64_t want)
{
    if (v < 0 || !h->graph->value_is_constant(g, v)) return NULL;
    const qk_tensor *t = h->graph->value_tensor(g, v);
    if (h->tensor->dtype(t) != QK_DTYPE_FLOAT || (want >= 0 && h->tensor->numel(t) != want)) return NULL;
    return h->tensor->data(t);
}

/* Folds bn into its producer; returns 1 when folded, 0 when not foldable. */
static int fold(const qk_host *h, qk_graph *g, int bn)
{
    const qk_graph_api *ga = h->graph;
    if (ga->node_n_inputs(g, bn) != 5 || ga->attr_int(g, bn, "training_mode", 0)) return 0;
    int x = ga->node_input(g, bn, 0), y = ga->node_output(g, bn, 0);
    int prod = ga->value_producer(g, x);
    if (prod < 0 || ga->value_n_consumers(g, x) != 1 || ga->value_is_output(g, x)) return 0;
    for (int k = 1; k < ga->node_n_outputs(g, bn); k++)
        if (ga->node_output(g, bn, k) >= 0 && ga->value_n_consumers(g, ga->node_output(g, bn, k)) > 0) return 0;
    int axis = out_axis(h, g, prod);
    int wv = ga->node_input(g, prod, 1);
    if (axis < 0 || wv < 0) return 0;
    const qk_tensor *wt = ga->value_tensor(g, wv);
    int rank = h->tensor->rank(wt);
    if (rank < 2 || rank > QK_MAX_RANK) return 0;
    int64_t c = h->tensor->dim(wt, axis);
    /* ConvTranspose weights are [C_in, C_out/group, ...]: axis 1 with group 1. */
    const float *w = const_floats(h, g, wv, -1);
    const float *gamma = const_floats(h, g, ga->node_input(g, bn, 1), c);
    const float *beta = const_floats(h, g, ga->node_input(g, bn, 2), c);
    const float *mean = const_floats(h, g, ga->node_input(g, bn, 3), c);
    const float *var = const_floats(h, g, ga->node_input(g, bn, 4), c);
    int bv = ga->node_n_inputs(g, prod) > 2 ? ga->node_input(g, prod, 2) : -1;
    const float *b = bv >= 0 ? const_floats(h, g, bv, c) : NULL;
    if (!w || !gamma || !beta || !mean || !var || (bv >= 0 && !b)) return 0;
    double eps = ga->attr_float(g, bn, "epsilon", 1e-5);

    int64_t dims[QK_MAX_RANK], numel = h->tensor->numel(wt), outer = 1, inner = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = h->tensor->dim(wt, i);
        if (i < axis) outer *= dims[i];
        if (i > axis) inner *= dims[i];
    }
    float *nw = h->mem->alloc((size_t)numel * sizeof *nw), *nb = h->mem->alloc((size_t)c * sizeof *nb);
    if (!nw || !nb) {
        h->mem->free(nw);
        h->mem->free(nb);
        return QK_ENOMEM;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t ch = 0; ch < c; ch++) {
            double s = gamma[ch] / sqrt((double)var[ch] + eps);
            for (int64_t i = 0; i < inner; i++) {
                int64_t idx = (o * c + ch) * inner + i;
                nw[idx] = (float)(w[idx] * s);
            }
        }
    for (int64_t ch = 0; ch < c; ch++) {
        double s = gamma[ch] / sqrt((double)var[ch] + eps);
        nb[ch] = (float)(((b ? b[ch] : 0.0) - mean[ch]) * s + beta[ch]);
    }
    /* New initializers, so weights shared with another node stay intact. */
    char wname[256], bname[256];
    char base[200];
    snprintf(base, sizeof base, "%s_bnfold_w", ga->value_name(g, wv));
    ga->unique_name(g, base, wname, sizeof wname);
    snprintf(base, sizeof base, "%s_bnfold_b", ga->node_name(g, prod));
    ga->unique_name(g, base, bname, sizeof bname);
    int nwv = ga->add_initializer(g, wname, QK_DTYPE_FLOAT, rank, dims, nw);
    int nbv = ga->add_initializer(g, bname, QK_DTYPE_FLOAT, 1, &c, nb);
    h->mem->free(nw);
    h->mem->free(nb);
    if (nwv < 0 || nbv < 0) return nwv < 0 ? nwv : nbv;

    /* Rebuild the producer with the folded weights, writing the BN's output
     * name so readers and graph outputs need no change. */
    int n_in = ga->node_n_inputs(g, prod);
    const char *ins[3] = {ga->value_name(g, ga->node_input(g, prod, 0)), wname, bname};
    char name[256];
    snprintf(name, sizeof name, "%s", ga->node_name(g, prod));
    char ybuf[256];
    snprintf(ybuf, sizeof ybuf, "%s", ga->value_name(g, y));
    const char *outs[1] = {ybuf};
    int rc = ga->remove_node(g, bn);
    if (rc == QK_OK) rc = ga->remove_node(g, prod);
    if (rc) return rc;
    int nn = ga->add_node(g, ga->node_op(g, prod), name, n_in < 3 ? 3 : n_in, ins, 1, outs);
    if (nn < 0) return nn;
    /* Carry the producer's attributes over. */
    static const char *const int_attrs[] = {"group", "transA", "transB", NULL};
    static const char *const ints_attrs[] = {"kernel_shape", "strides", "pads", "dilations", "output_padding",
                                             "output_shape", NULL};
    for (int i = 0; int_attrs[i]; i++) {
        const int64_t *v;
        if (ga->attr_ints(g, prod, int_attrs[i], &v) < 0 && ga->attr_int(g, prod, int_attrs[i], -12345) != -12345)
            ga->set_attr_int(g, nn, int_attrs[i], ga->attr_int(g, prod, int_attrs[i], 0));
    }
    for (int i = 0; ints_attrs[i]; i++) {
        const int64_t *v;
        int cnt = ga->attr_ints(g, prod, ints_attrs[i], &v);
        if (cnt >= 0) ga->set_attr_ints(g, nn, ints_attrs[i], v, cnt);
    }
    const char *ap = ga->attr_str(g, prod, "auto_pad", NULL);
    if (ap) ga->set_attr_str(g, nn, "auto_pad", ap);
    return 1;
}

static int conv_bn_apply(const qk_host *h, qk_graph *g, const qk_params *args, int *count)
{
    int rc = h->params->check_keys(args, NULL, "args of fusion `conv_bn`");
    if (rc < 0) return rc;
    *count = 0;
    int n = h->graph->node_count(g);
    for (int i = 0; i < n; i++) {
        if (h->graph->node_dead(g, i) || strcmp(h->graph->node_op(g, i), "BatchNormalization")) continue;
        rc = fold(h, g, i);
        if (rc < 0) return h->log->error(h, rc, "folding '%s' failed", h->graph->node_name(g, i));
        *count += rc;
    }
    return QK_OK;
}

static const qk_fusion_vtable conv_bn_vtable = {sizeof conv_bn_vtable, conv_bn_apply};

QK_PLUGIN_DEFINE(QK_PLUGIN_FUSION, "conv_bn", "1.0.0",
                 "fold BatchNormalization into the Conv, ConvTranspose or Gemm before it", "MIT", &conv_bn_vtable);
