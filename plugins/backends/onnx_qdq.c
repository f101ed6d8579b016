/* This file implements the backend "onnx-qdq": a generic ONNX model with
 * QuantizeLinear/DequantizeLinear pairs, as ONNX Runtime and TensorRT
 * consume it.  It declares what it quantizes and which fusions it wants;
 * the emitter (weights stored as integers + DequantizeLinear, activation
 * Q/DQ pairs after each quantized producer) arrives with the PTQ issue and
 * until then fails loudly rather than writing a float model. */
#include <quantkit/quantkit.h>

static const char *const quantized_ops[] = {"Conv", "ConvTranspose", "Gemm", "MatMul", NULL};
static const char *const default_fusions[] = {"conv_bn", NULL};

static int qdq_check_options(const qk_host *host, const qk_params *options)
{
    static const char *const allowed[] = {NULL};
    return host->params->check_keys(options, allowed, "backend_options of backend `onnx-qdq`");
}

static int qdq_emit(const qk_host *host, qk_graph *g, const qk_plan *plan, const qk_params *options)
{
    return host->log->error(host, QK_ENOTSUP, "emitting the QDQ model is not implemented yet");
}

static const qk_backend_vtable qdq_vtable = {
    sizeof qdq_vtable, quantized_ops, default_fusions, qdq_check_options, qdq_emit,
};

QK_PLUGIN_DEFINE(QK_PLUGIN_BACKEND, "onnx-qdq", "0.1.0",
                 "generic ONNX QuantizeLinear/DequantizeLinear model (ONNX Runtime, TensorRT)", "MIT", &qdq_vtable);
