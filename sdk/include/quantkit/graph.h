/* This file implements the plugin view of the model graph, for fusions and
 * backends: walk nodes and values, read attributes, and edit the graph
 * (insert, replace, remove nodes and initializers).
 *
 * Nodes and values are small integer ids into the host's graph.  Ids stay
 * valid while a plugin call runs; removed nodes are marked dead (node_dead)
 * and dropped, and the graph re-sorted, by the host after the call returns. */
#ifndef QUANTKIT_GRAPH_H
#define QUANTKIT_GRAPH_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

typedef struct qk_graph qk_graph;

typedef struct qk_graph_api {
    size_t size;
    /* ---- walking ---- */
    /* Number of node ids (dead ones included; skip those with node_dead). */
    int (*node_count)(const qk_graph *g);
    int (*node_dead)(const qk_graph *g, int node);
    /* ONNX op type and node name; borrowed, valid until the node is edited. */
    const char *(*node_op)(const qk_graph *g, int node);
    const char *(*node_name)(const qk_graph *g, int node);
    int (*node_n_inputs)(const qk_graph *g, int node);
    int (*node_n_outputs)(const qk_graph *g, int node);
    /* Value id of input/output slot i, -1 for an absent optional slot. */
    int (*node_input)(const qk_graph *g, int node, int i);
    int (*node_output)(const qk_graph *g, int node, int i);
    /* Value id by name, -1 if absent. */
    int (*value_find)(const qk_graph *g, const char *name);
    const char *(*value_name)(const qk_graph *g, int value);
    /* Shape, type and, for constants (initializers, folded values), data.
     * Borrowed; valid until the value is edited. */
    const qk_tensor *(*value_tensor)(const qk_graph *g, int value);
    /* Producing node, -1 for graph inputs and initializers. */
    int (*value_producer)(const qk_graph *g, int value);
    /* Number of (live) node input slots reading the value. */
    int (*value_n_consumers)(const qk_graph *g, int value);
    /* True when the value is a graph output (it must keep its name). */
    int (*value_is_output)(const qk_graph *g, int value);
    int (*value_is_constant)(const qk_graph *g, int value);

    /* ---- attributes: getters return `def` / -1 (count) when absent ---- */
    int64_t (*attr_int)(const qk_graph *g, int node, const char *name, int64_t def);
    double (*attr_float)(const qk_graph *g, int node, const char *name, double def);
    /* Count and borrowed pointer, or -1 when absent. */
    int (*attr_ints)(const qk_graph *g, int node, const char *name, const int64_t **v);
    const char *(*attr_str)(const qk_graph *g, int node, const char *name, const char *def);
    int (*set_attr_int)(qk_graph *g, int node, const char *name, int64_t v);
    int (*set_attr_float)(qk_graph *g, int node, const char *name, double v);
    int (*set_attr_ints)(qk_graph *g, int node, const char *name, const int64_t *v, int count);
    int (*set_attr_str)(qk_graph *g, int node, const char *name, const char *v);

    /* ---- editing; all return a status (negative) or the new id ---- */
    /* Appends a node (the host re-sorts later).  Inputs and outputs by value
     * name; NULL or "" for an absent slot.  Missing output values are created. */
    int (*add_node)(qk_graph *g, const char *op_type, const char *name, int n_in, const char *const *inputs,
                    int n_out, const char *const *outputs);
    int (*remove_node)(qk_graph *g, int node);
    /* Points input slot i of node at value. */
    int (*set_input)(qk_graph *g, int node, int i, int value);
    /* Every reader of `from` (and the graph outputs) reads `to` instead. */
    int (*replace_uses)(qk_graph *g, int from, int to);
    /* Adds (or replaces) a constant initializer holding a copy of data. */
    int (*add_initializer)(qk_graph *g, const char *name, qk_dtype dtype, int rank, const int64_t *dims,
                           const void *data);
    /* A value name not yet used, derived from base.  Written into buf
     * (truncated to len); returns buf. */
    const char *(*unique_name)(const qk_graph *g, const char *base, char *buf, size_t len);

    /* ---- ABI 1.1 ---- */
    /* Points output slot i of node at a new value named `name` (which must
     * not exist yet; same type and shape as before).  The old value keeps
     * its name, readers and graph-output status but has no producer until a
     * node added later writes it: that is how a backend slips a
     * QuantizeLinear/DequantizeLinear pair between a producer and its
     * readers without renaming a graph output.  Returns the new value id. */
    int (*set_output)(qk_graph *g, int node, int i, const char *name);
    /* Marks a value as internal to a fused group (a Conv output read only by
     * its Relu, say): the plan places no quantization point on it, so the
     * group's last output carries the one the target hardware expects. */
    int (*mark_fused)(qk_graph *g, int value);
    int (*value_fused)(const qk_graph *g, int value);
} qk_graph_api;

#endif
