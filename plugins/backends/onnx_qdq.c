/* This file implements the backend "onnx-qdq": a generic ONNX model with
 * QuantizeLinear/DequantizeLinear pairs, as ONNX Runtime and TensorRT
 * consume it ("QDQ format").
 *
 *   activation x:  producer -> x_QuantizeLinear_Input -> Q -> DQ -> x -> readers
 *                  (the dequantized tensor keeps the float tensor's name, so
 *                  graph outputs keep theirs and quantkit can compare each
 *                  tensor with the float model's by name);
 *   weight w:      w_quantized (int8 codes) -> DQ (per axis when per channel)
 *                  -> w_DequantizeLinear_Output -> readers;
 *   bias b:        b_quantized (int32, scale s_in * s_w) -> DQ -> readers.
 *
 * Weights of 2..8 bits are stored in int8 (a 4-bit weight holds codes in
 * [-8, 7]): every runtime from opset 13 on runs that, where the INT4 type
 * would need opset 21.  QuantizeLinear cannot clamp to fewer than 8 bits,
 * so activations must be 8-bit here. */
#include <stdio.h>
#include <string.h>
#include <quantkit/quantkit.h>

static const char *const quantized_ops[] = {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "GlobalAveragePool", "AveragePool", NULL};
/* Moving values without changing them: one scale in and out, as integer
 * kernels (QLinearConcat, int8 MaxPool, reshapes) require. */
static const char *const shared_scale_ops[] = {
    "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", NULL};
static const char *const default_fusions[] = {"conv_bn", "conv_relu", "conv_add_relu", NULL};

#define NAME_LEN 1024

static int qdq_check_options(const qk_host *host, const qk_params *options)
{
    static const char *const allowed[] = {NULL};
    return host->params->check_keys(options, allowed, "backend_options of backend `onnx-qdq`");
}

/* The integer type holding codes in [qmin, qmax]. */
static qk_dtype container(const qk_qparams *qp)
{
    if (qp->qmin < -32768 || qp->qmax > 65535) return QK_DTYPE_INT32;
    if (qp->qmin < 0) return qp->qmin >= -128 && qp->qmax <= 127 ? QK_DTYPE_INT8 : QK_DTYPE_INT16;
    return qp->qmax <= 255 ? QK_DTYPE_UINT8 : QK_DTYPE_UINT16;
}

static size_t dtype_size(qk_dtype t) { return t == QK_DTYPE_INT32 ? 4 : t == QK_DTYPE_INT16 || t == QK_DTYPE_UINT16 ? 2 : 1; }

static void store(void *dst, qk_dtype t, int64_t i, int32_t v)
{
    switch (t) {
    case QK_DTYPE_INT8: ((int8_t *)dst)[i] = (int8_t)v; break;
    case QK_DTYPE_UINT8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
    case QK_DTYPE_INT16: ((int16_t *)dst)[i] = (int16_t)v; break;
    case QK_DTYPE_UINT16: ((uint16_t *)dst)[i] = (uint16_t)v; break;
    default: ((int32_t *)dst)[i] = v; break;
    }
}

/* Adds `base`_scale and `base`_zero_point initializers (scalars per
 * tensor, 1-D per axis) and writes their names. */
static int add_qparams(const qk_host *host, qk_graph *g, const char *base, const qk_qparams *qp, qk_dtype zt,
                       char *scale_name, char *zp_name)
{
    const qk_graph_api *ga = host->graph;
    char buf[NAME_LEN + 64];
    snprintf(buf, sizeof buf, "%s_scale", base);
    ga->unique_name(g, buf, scale_name, NAME_LEN);
    snprintf(buf, sizeof buf, "%s_zero_point", base);
    ga->unique_name(g, buf, zp_name, NAME_LEN);
    int64_t dims[1] = {qp->count};
    int rank = qp->axis >= 0 ? 1 : 0;
    void *zp = host->mem->calloc((size_t)qp->count, dtype_size(zt));
    if (!zp) return host->log->error(host, QK_ENOMEM, "out of memory");
    for (int64_t c = 0; c < qp->count; c++) store(zp, zt, c, qp->zero_point[c]);
    int rc = ga->add_initializer(g, scale_name, QK_DTYPE_FLOAT, rank, dims, qp->scale);
    if (rc >= 0) rc = ga->add_initializer(g, zp_name, zt, rank, dims, zp);
    host->mem->free(zp);
    return rc < 0 ? host->log->error(host, rc, "cannot add the scale of '%s'", base) : QK_OK;
}

static int add_node(const qk_host *host, qk_graph *g, const char *op, const char *base, const char *in0,
                    const char *in1, const char *in2, const char *out, int axis)
{
    const qk_graph_api *ga = host->graph;
    char name[NAME_LEN], buf[NAME_LEN + 64];
    snprintf(buf, sizeof buf, "%s_%s", base, op);
    ga->unique_name(g, buf, name, sizeof name);
    const char *ins[3] = {in0, in1, in2}, *outs[1] = {out};
    int node = ga->add_node(g, op, name, 3, ins, 1, outs);
    if (node < 0) return host->log->error(host, node, "cannot add %s for '%s'", op, base);
    if (axis >= 0 && ga->set_attr_int(g, node, "axis", axis) < 0)
        return host->log->error(host, QK_ENOMEM, "cannot set the axis of %s for '%s'", op, base);
    return QK_OK;
}

static int emit_activation(const qk_host *host, qk_graph *g, int v, const qk_qparams *qp, int bits)
{
    const qk_graph_api *ga = host->graph;
    const char *name = ga->value_name(g, v);
    char base[NAME_LEN], s[NAME_LEN], z[NAME_LEN], fl[NAME_LEN], q[NAME_LEN], dq[NAME_LEN], buf[NAME_LEN + 64];
    snprintf(base, sizeof base, "%s", name);
    qk_dtype t = container(qp);
    if (bits != 8 || (t != QK_DTYPE_INT8 && t != QK_DTYPE_UINT8) || qp->count != 1)
        return host->log->error(host, QK_ENOTSUP,
                                "activation '%s': %d bits%s cannot be expressed with QuantizeLinear here "
                                "(onnx-qdq writes 8-bit per-tensor activations; set bits: 8)",
                                base, bits, qp->count != 1 ? " per channel" : "");
    int rc = add_qparams(host, g, base, qp, t, s, z);
    if (rc) return rc;
    snprintf(buf, sizeof buf, "%s_QuantizeLinear_Output", base);
    ga->unique_name(g, buf, q, sizeof q);
    int producer = ga->value_producer(g, v);
    if (producer >= 0) {
        int slot = -1;
        for (int k = 0; k < ga->node_n_outputs(g, producer); k++)
            if (ga->node_output(g, producer, k) == v) slot = k;
        snprintf(buf, sizeof buf, "%s_QuantizeLinear_Input", base);
        ga->unique_name(g, buf, fl, sizeof fl);
        if (slot < 0 || ga->set_output(g, producer, slot, fl) < 0)
            return host->log->error(host, QK_EINVAL, "cannot detach '%s' from its producer", base);
        if ((rc = add_node(host, g, "QuantizeLinear", base, fl, s, z, q, -1))) return rc;
        return add_node(host, g, "DequantizeLinear", base, q, s, z, base, -1);
    }
    /* A graph input keeps its name: readers move to the dequantized copy. */
    snprintf(buf, sizeof buf, "%s_DequantizeLinear_Output", base);
    ga->unique_name(g, buf, dq, sizeof dq);
    if ((rc = add_node(host, g, "DequantizeLinear", base, q, s, z, dq, -1))) return rc;
    if (ga->replace_uses(g, v, ga->value_find(g, dq)) < 0)
        return host->log->error(host, QK_EINVAL, "cannot redirect the readers of '%s'", base);
    return add_node(host, g, "QuantizeLinear", base, base, s, z, q, -1);
}

/* Weights and biases: integer codes stored as an initializer, then a
 * DequantizeLinear every reader of the float tensor now reads. */
static int emit_constant(const qk_host *host, qk_graph *g, int v, const qk_qparams *qp, const int32_t *codes,
                         int bits, int is_bias)
{
    const qk_graph_api *ga = host->graph;
    const qk_tensor *w = ga->value_tensor(g, v);
    char base[NAME_LEN], s[NAME_LEN], z[NAME_LEN], wq[NAME_LEN], dq[NAME_LEN], buf[NAME_LEN + 64];
    snprintf(base, sizeof base, "%s", ga->value_name(g, v));
    qk_dtype t = is_bias ? QK_DTYPE_INT32 : container(qp);
    if (!codes || !w) return host->log->error(host, QK_EINVAL, "'%s' has no integer codes", base);
    if (!is_bias && (bits > 8 || (t != QK_DTYPE_INT8 && t != QK_DTYPE_UINT8)))
        return host->log->error(host, QK_ENOTSUP,
                                "weight '%s': %d-bit codes need a 16-bit DequantizeLinear (opset 21), which onnx-qdq "
                                "does not write; use bits <= 8", base, bits);
    int rank = host->tensor->rank(w);
    int64_t dims[QK_MAX_RANK], n = host->tensor->numel(w);
    for (int d = 0; d < rank; d++) dims[d] = host->tensor->dim(w, d);
    void *data = host->mem->calloc((size_t)(n ? n : 1), dtype_size(t));
    if (!data) return host->log->error(host, QK_ENOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) store(data, t, i, codes[i]);
    snprintf(buf, sizeof buf, "%s_quantized", base);
    ga->unique_name(g, buf, wq, sizeof wq);
    int rc = ga->add_initializer(g, wq, t, rank, dims, data);
    host->mem->free(data);
    if (rc < 0) return host->log->error(host, rc, "cannot store the codes of '%s'", base);
    if ((rc = add_qparams(host, g, base, qp, t, s, z))) return rc;
    snprintf(buf, sizeof buf, "%s_DequantizeLinear_Output", base);
    ga->unique_name(g, buf, dq, sizeof dq);
    if ((rc = add_node(host, g, "DequantizeLinear", base, wq, s, z, dq, qp->axis >= 0 ? qp->axis : -1))) return rc;
    if (ga->replace_uses(g, v, ga->value_find(g, dq)) < 0)
        return host->log->error(host, QK_EINVAL, "cannot redirect the readers of '%s'", base);
    return QK_OK;
}

static int qdq_emit(const qk_host *host, qk_graph *g, const qk_plan *plan, const qk_params *options)
{
    const qk_plan_api *pa = host->plan;
    const qk_graph_api *ga = host->graph;
    size_t need = offsetof(qk_graph_api, mark_fused);
    if (!pa || pa->size < offsetof(qk_plan_api, bits) + sizeof pa->bits || ga->size < need)
        return host->log->error(host, QK_ENOTSUP, "this host is too old for onnx-qdq (needs plugin ABI 1.1)");
    int n = pa->count(plan);
    for (int i = 0; i < n; i++) {
        int v = pa->value(plan, i), role = pa->role(plan, i), bits = pa->bits(plan, i);
        if (strlen(ga->value_name(g, v)) >= NAME_LEN - 1)
            return host->log->error(host, QK_EINVAL, "tensor name longer than %d bytes: '%.60s...'", NAME_LEN - 2,
                                    ga->value_name(g, v));
        const qk_qparams *qp = pa->qparams(plan, i);
        if (!qp || !qp->scale) return host->log->error(host, QK_EINVAL, "tensor '%s' has no scale", ga->value_name(g, v));
        int rc = role == QK_PLAN_ACTIVATION ? emit_activation(host, g, v, qp, bits)
                                            : emit_constant(host, g, v, qp, pa->codes(plan, i), bits, role == QK_PLAN_BIAS);
        if (rc) return rc;
    }
    return QK_OK;
}

static const qk_backend_vtable qdq_vtable = {
    sizeof qdq_vtable, quantized_ops, default_fusions, qdq_check_options, qdq_emit, shared_scale_ops,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_BACKEND, "onnx-qdq", "1.0.0",
                 "generic ONNX QuantizeLinear/DequantizeLinear model (ONNX Runtime, TensorRT)", "MIT", &qdq_vtable);
