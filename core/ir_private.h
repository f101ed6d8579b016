/* This file implements the declarations shared by the IR's own source files
 * (ir.c, attr.c, infer.c, onnx_io.c); nothing outside the core includes it. */
#ifndef QK_CORE_IR_PRIVATE_H
#define QK_CORE_IR_PRIVATE_H
#include "ir.h"

/* Decodes the node's string and tensor attributes into its cache. */
int ir_node_cache_attrs(ir_node *n, const char *dir, qk_err *err);
void ir_node_drop_attr_cache(ir_node *n);
/* Rebuilds the name -> value index. */
int ir_reindex(ir_graph *g);
/* Encodes a value's constant data as a new TensorProto (raw_data). */
struct Onnx__TensorProto *ir_encode_tensor(const char *name, const xt *t);

#endif
