/* This file implements reading and writing ONNX model files with the
 * protobuf-c code generated from onnx.proto. */
#ifndef QK_CORE_ONNX_IO_H
#define QK_CORE_ONNX_IO_H
#include "ir.h"

/* Loads path into an IR graph (ops resolved, shapes inferred, shape
 * arithmetic folded).  Empty, truncated or non-ONNX files fail with one line
 * naming the file. */
int onnx_load(const char *path, ir_graph **out, qk_err *err);
/* Loads only the protobuf and builds the IR, without op checks or inference. */
int onnx_load_raw(const char *path, ir_graph **out, qk_err *err);
/* Serializes g (nodes in IR order, initializers re-encoded only when changed,
 * every other field as loaded) to path atomically. */
int onnx_save(ir_graph *g, const char *path, qk_err *err);
/* Parses one ONNX TensorProto file (.pb) into t (data malloc'd) and, if
 * name is non-NULL, its name (malloc'd, may be NULL). */
int onnx_read_tensor_file(const char *path, xt *t, char **name, qk_err *err);

#endif
