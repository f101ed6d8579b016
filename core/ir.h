/* This file implements quantkit's graph IR.
 *
 * A graph is an array of nodes in topological order plus a table of values
 * (every named tensor: graph inputs, initializers, node outputs).  Nodes refer
 * to values by index.  Each node keeps the ONNX NodeProto it came from, so
 * attributes and fields quantkit does not use survive a load -> save round
 * trip; the ModelProto keeps everything outside the graph's nodes and
 * initializers.  Rewrites (fusions, backends) use the ir_* edit functions and
 * call ir_sort() + ir_infer() afterwards. */
#ifndef QK_CORE_IR_H
#define QK_CORE_IR_H
#include <stdint.h>
#include "tensor.h"
#include "status.h"
#include "op.h"

struct Onnx__ModelProto;
struct Onnx__NodeProto;
struct Onnx__TensorProto;

typedef struct ir_value {
    char *name;
    xt t;                 /* dtype, shape (-1 = unknown/symbolic), data if constant */
    char *dim_param[XT_MAX_RANK]; /* symbolic dim names from the model, or NULL */
    int producer;         /* node index, -1 for graph inputs and initializers */
    int n_consumers;      /* filled by ir_index() */
    unsigned is_initializer : 1;
    unsigned is_input : 1;    /* a real graph input (not an initializer) */
    unsigned is_output : 1;
    unsigned is_folded : 1;   /* constant produced by constant folding */
    unsigned data_dirty : 1;  /* initializer data changed: re-encode on save */
    unsigned has_declared_type : 1; /* dtype/shape came from the model (input/value_info) */
    unsigned fused : 1;       /* inside a fused group: no quantization point (plan.c) */
    void *owned;          /* buffer owned by the value (freed with the graph) */
    struct Onnx__TensorProto *proto; /* initializer as loaded, NULL otherwise */
    void *plugin_view;    /* the qk_tensor plugins see for this value (host.c), owned */
} ir_value;

typedef struct ir_node {
    struct Onnx__NodeProto *proto;   /* owned */
    const op_def *op;     /* NULL until resolved; NULL after for unsupported ops */
    int n_in, n_out;
    int *in, *out;        /* value indices, -1 for an absent optional slot */
    int dead;             /* removed; dropped by ir_compact() */
    /* decoded tensor attributes, owned (see node_attr_tensor) */
    int n_attr_cache;
    struct { char *name; xt t; } *attr_cache;
} ir_node;

typedef struct ir_graph {
    struct Onnx__ModelProto *model;  /* owned; graph node/initializer arrays detached */
    char *dir;            /* folder of the model file (external data) */
    int opset;            /* default-domain opset */
    ir_node *nodes;
    int n_nodes, cap_nodes;
    ir_value *values;
    int n_values, cap_values;
    int *inputs, n_inputs;    /* real inputs in model order */
    int *outputs, n_outputs;
    void *name_index;     /* name -> value index hash (private) */
} ir_graph;

/* Builds the IR from a model; takes ownership of `model` (also on failure).
 * `dir` is the model's folder for external data (may be NULL). */
int ir_from_model(struct Onnx__ModelProto *model, const char *dir, ir_graph **out, qk_err *err);
void ir_free(ir_graph *g);   /* NULL is a no-op */

/* Resolves every node's op; fails with QK_ENOTSUP naming the op type and the
 * node for the first unsupported one (a custom domain counts as unsupported). */
int ir_check_ops(ir_graph *g, qk_err *err);
/* Static shape inference over the whole graph, then constant folding of every
 * node whose inputs are all known constants (PyTorch's shape arithmetic).
 * Unknown results stay unknown; errors name the node. */
int ir_infer(ir_graph *g, qk_err *err);

/* Lookup by name; -1 if absent. */
int ir_find_value(const ir_graph *g, const char *name);
/* Adds a value (no data), returns its index or a negative error. */
int ir_add_value(ir_graph *g, const char *name);
/* Adds a constant initializer holding a copy of t's data; returns its index. */
int ir_add_initializer(ir_graph *g, const char *name, const xt *t);
/* A name not used by any value, derived from base ("base", "base_1", ...);
 * returns a malloc'd string. */
char *ir_unique_name(const ir_graph *g, const char *base);
/* Appends a node; inputs/outputs by value name (NULL or "" for absent).
 * Outputs are created when missing.  Returns the node index. */
int ir_add_node(ir_graph *g, const char *op_type, const char *name,
                int n_in, const char *const *inputs, int n_out, const char *const *outputs);
/* Marks a node dead (removed at the next ir_compact). */
void ir_remove_node(ir_graph *g, int node);
/* Replaces every use of value `from` by `to` (node inputs and graph outputs). */
void ir_replace_uses(ir_graph *g, int from, int to);
/* Points output slot i of node at a new value `name` (which must not exist),
 * with the old value's type and shape; the old value loses its producer but
 * keeps its name and readers.  Returns the new value index or a status. */
int ir_set_output(ir_graph *g, int node, int i, const char *name);
/* Sets a node's i-th input to a value index. */
void ir_set_input(ir_graph *g, int node, int i, int value);
/* Drops dead nodes, sorts topologically, recounts consumers.  Fails on a cycle. */
int ir_compact(ir_graph *g, qk_err *err);

/* After ir_compact: initializers no node reads any more (a folded
 * BatchNormalization's parameters, a weight replaced by its quantized
 * codes) are not saved.  Initializers also listed as graph inputs (old
 * models) stay, since dropping them would create a required input.
 * Returns how many were dropped. */
int ir_drop_unused_initializers(ir_graph *g);

/* Adds/overwrites an int/float/ints/string attribute of a node. */
int ir_node_set_attr_int(ir_node *n, const char *name, int64_t v);
int ir_node_set_attr_float(ir_node *n, const char *name, float v);
int ir_node_set_attr_ints(ir_node *n, const char *name, const int64_t *v, int count);
int ir_node_set_attr_str(ir_node *n, const char *name, const char *v);

/* Decodes an ONNX TensorProto into t (malloc'd data, caller frees t->data).
 * External data is resolved against dir and refused if it escapes it. */
int ir_decode_tensor(const struct Onnx__TensorProto *tp, const char *dir, xt *t, qk_err *err);

#endif
