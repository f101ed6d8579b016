/* This file implements the graph IR (see ir.h): building it from an ONNX
 * ModelProto, the name index, tensor decoding/encoding, and the edit
 * operations graph rewrites are made of. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"
#include "ir_private.h"
#include "onnx.pb-c.h"

/* ---- name index: open addressing, rebuilt when it fills up ---------------- */

typedef struct name_index {
    int cap;        /* power of two */
    int *slot;      /* value index + 1, 0 = empty */
} name_index;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void index_put(name_index *ix, const ir_graph *g, int v)
{
    uint64_t m = (uint64_t)ix->cap - 1;
    for (uint64_t h = hash_str(g->values[v].name) & m;; h = (h + 1) & m)
        if (!ix->slot[h]) {
            ix->slot[h] = v + 1;
            return;
        }
}

int ir_reindex(ir_graph *g)
{
    name_index *ix = g->name_index;
    if (!ix) {
        ix = calloc(1, sizeof *ix);
        if (!ix) return QK_ENOMEM;
        g->name_index = ix;
    }
    int cap = 64;
    while (cap < 2 * g->n_values + 2) cap *= 2;
    free(ix->slot);
    ix->slot = calloc((size_t)cap, sizeof *ix->slot);
    if (!ix->slot) return QK_ENOMEM;
    ix->cap = cap;
    for (int v = 0; v < g->n_values; v++) index_put(ix, g, v);
    return QK_OK;
}

int ir_find_value(const ir_graph *g, const char *name)
{
    const name_index *ix = g->name_index;
    if (!ix || !ix->slot || !name) return -1;
    uint64_t m = (uint64_t)ix->cap - 1;
    for (uint64_t h = hash_str(name) & m; ix->slot[h]; h = (h + 1) & m)
        if (strcmp(g->values[ix->slot[h] - 1].name, name) == 0) return ix->slot[h] - 1;
    return -1;
}

int ir_add_value(ir_graph *g, const char *name)
{
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 64;
        ir_value *nv = realloc(g->values, (size_t)cap * sizeof *nv);
        if (!nv) return QK_ENOMEM;
        g->values = nv;
        g->cap_values = cap;
    }
    ir_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) return QK_ENOMEM;
    v->t.rank = -1;
    v->producer = -1;
    int idx = g->n_values++;
    name_index *ix = g->name_index;
    if (!ix || 2 * g->n_values + 2 > ix->cap) {
        if (ir_reindex(g)) return QK_ENOMEM;
    } else {
        index_put(ix, g, idx);
    }
    return idx;
}

int ir_add_initializer(ir_graph *g, const char *name, const xt *t)
{
    int v = ir_find_value(g, name);
    if (v < 0) v = ir_add_value(g, name);
    if (v < 0) return v;
    ir_value *val = &g->values[v];
    int64_t nb = xt_nbytes(t);
    void *d = malloc(nb > 0 ? (size_t)nb : 1);
    if (!d) return QK_ENOMEM;
    if (nb > 0) memcpy(d, t->data, (size_t)nb);
    free(val->owned);
    val->owned = d;
    val->t = *t;
    val->t.data = d;
    val->is_initializer = 1;
    val->data_dirty = 1;
    return v;
}

char *ir_unique_name(const ir_graph *g, const char *base)
{
    size_t len = strlen(base) + 24;
    char *s = malloc(len);
    if (!s) return NULL;
    snprintf(s, len, "%s", base);
    for (int i = 1; ir_find_value(g, s) >= 0; i++) snprintf(s, len, "%s_%d", base, i);
    return s;
}

/* ---- nodes --------------------------------------------------------------- */

static int grow_nodes(ir_graph *g)
{
    if (g->n_nodes < g->cap_nodes) return QK_OK;
    int cap = g->cap_nodes ? 2 * g->cap_nodes : 64;
    ir_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
    if (!nn) return QK_ENOMEM;
    g->nodes = nn;
    g->cap_nodes = cap;
    return QK_OK;
}

/* Links a NodeProto's input/output names to values; outputs get producer. */
static int link_node(ir_graph *g, int ni, qk_err *err)
{
    ir_node *n = &g->nodes[ni];
    Onnx__NodeProto *p = n->proto;
    n->n_in = (int)p->n_input;
    n->n_out = (int)p->n_output;
    n->in = calloc(p->n_input + 1, sizeof(int));
    n->out = calloc(p->n_output + 1, sizeof(int));
    if (!n->in || !n->out) return qk_fail(err, QK_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n_input; i++) {
        const char *nm = p->input[i];
        if (!nm || !*nm) {
            n->in[i] = -1;
            continue;
        }
        int v = ir_find_value(g, nm);
        if (v < 0) v = ir_add_value(g, nm);   /* produced later (unsorted) or dangling */
        if (v < 0) return qk_fail(err, QK_ENOMEM, "out of memory");
        n = &g->nodes[ni];
        n->in[i] = v;
    }
    for (size_t i = 0; i < p->n_output; i++) {
        const char *nm = p->output[i];
        if (!nm || !*nm) {
            n->out[i] = -1;
            continue;
        }
        int v = ir_find_value(g, nm);
        if (v >= 0 && (g->values[v].producer >= 0 || g->values[v].is_initializer || g->values[v].is_input))
            return qk_fail(err, QK_EINVAL, "node '%s' (%s): output '%s' is already defined",
                           p->name ? p->name : "", p->op_type ? p->op_type : "", nm);
        if (v < 0) v = ir_add_value(g, nm);
        if (v < 0) return qk_fail(err, QK_ENOMEM, "out of memory");
        n = &g->nodes[ni];
        n->out[i] = v;
        g->values[v].producer = ni;
    }
    return QK_OK;
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

int ir_add_node(ir_graph *g, const char *op_type, const char *name,
                int n_in, const char *const *inputs, int n_out, const char *const *outputs)
{
    if (grow_nodes(g)) return QK_ENOMEM;
    Onnx__NodeProto *p = malloc(sizeof *p);
    if (!p) return QK_ENOMEM;
    onnx__node_proto__init(p);
    p->op_type = strdup(op_type);
    p->name = dup_or_empty(name);
    p->domain = strdup("");
    p->input = calloc((size_t)n_in + 1, sizeof(char *));
    p->output = calloc((size_t)n_out + 1, sizeof(char *));
    p->n_input = (size_t)n_in;
    p->n_output = (size_t)n_out;
    for (int i = 0; i < n_in; i++) p->input[i] = dup_or_empty(inputs[i]);
    for (int i = 0; i < n_out; i++) p->output[i] = dup_or_empty(outputs[i]);
    int ni = g->n_nodes++;
    ir_node *n = &g->nodes[ni];
    memset(n, 0, sizeof *n);
    n->proto = p;
    n->op = op_lookup(op_type);
    if (link_node(g, ni, NULL)) return QK_EINVAL;
    return ni;
}

void ir_remove_node(ir_graph *g, int node)
{
    ir_node *n = &g->nodes[node];
    n->dead = 1;
    for (int i = 0; i < n->n_out; i++)
        if (n->out[i] >= 0 && g->values[n->out[i]].producer == node) g->values[n->out[i]].producer = -1;
}

void ir_set_input(ir_graph *g, int node, int i, int value)
{
    ir_node *n = &g->nodes[node];
    n->in[i] = value;
    free(n->proto->input[i]);
    n->proto->input[i] = dup_or_empty(value >= 0 ? g->values[value].name : "");
}

int ir_drop_unused_initializers(ir_graph *g)
{
    const Onnx__GraphProto *gp = g->model->graph;
    int dropped = 0;
    for (int v = 0; v < g->n_values; v++) {
        ir_value *val = &g->values[v];
        if (!val->is_initializer || val->n_consumers || val->is_output) continue;
        int listed = 0;
        for (size_t i = 0; gp && i < gp->n_input && !listed; i++)
            listed = gp->input[i]->name && !strcmp(gp->input[i]->name, val->name);
        if (listed) continue;
        val->is_initializer = 0;
        dropped++;
    }
    return dropped;
}

int ir_set_output(ir_graph *g, int node, int i, const char *name)
{
    if (node < 0 || node >= g->n_nodes || i < 0 || i >= g->nodes[node].n_out || !name || !*name ||
        ir_find_value(g, name) >= 0)
        return QK_EINVAL;
    int old = g->nodes[node].out[i];
    int nv = ir_add_value(g, name);   /* may move g->values */
    if (nv < 0) return nv;
    char *dup = strdup(name);
    if (!dup) return QK_ENOMEM;
    ir_node *n = &g->nodes[node];
    free(n->proto->output[i]);
    n->proto->output[i] = dup;
    n->out[i] = nv;
    g->values[nv].producer = node;
    if (old >= 0) {
        xt *from = &g->values[old].t, *to = &g->values[nv].t;
        to->dtype = from->dtype;
        to->rank = from->rank;
        memcpy(to->dims, from->dims, sizeof to->dims);
        g->values[old].producer = -1;
    }
    return nv;
}

void ir_replace_uses(ir_graph *g, int from, int to)
{
    for (int ni = 0; ni < g->n_nodes; ni++) {
        if (g->nodes[ni].dead) continue;
        for (int i = 0; i < g->nodes[ni].n_in; i++)
            if (g->nodes[ni].in[i] == from) ir_set_input(g, ni, i, to);
    }
    for (int o = 0; o < g->n_outputs; o++)
        if (g->outputs[o] == from) g->outputs[o] = to;
}

static void free_node(ir_node *n)
{
    ir_node_drop_attr_cache(n);
    if (n->proto) onnx__node_proto__free_unpacked(n->proto, NULL);
    free(n->in);
    free(n->out);
}

/* Kahn's algorithm, always taking the lowest-indexed ready node so an
 * already sorted graph keeps its order. */
int ir_compact(ir_graph *g, qk_err *err)
{
    int live = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) free_node(&g->nodes[i]);
        else g->nodes[live++] = g->nodes[i];
    }
    g->n_nodes = live;
    for (int v = 0; v < g->n_values; v++) {
        g->values[v].producer = -1;
        g->values[v].n_consumers = 0;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_out; k++)
            if (g->nodes[i].out[k] >= 0) g->values[g->nodes[i].out[k]].producer = i;

    int n = g->n_nodes;
    int *pending = calloc((size_t)n + 1, sizeof(int));
    int *order = malloc(((size_t)n + 1) * sizeof(int));
    char *done = calloc((size_t)n + 1, 1);
    if (!pending || !order || !done) {
        free(pending); free(order); free(done);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            int v = g->nodes[i].in[k];
            if (v < 0) continue;
            g->values[v].n_consumers++;
            if (g->values[v].producer >= 0 && g->values[v].producer != i) pending[i]++;
        }
    int placed = 0, scan = 0;
    while (placed < n) {
        int pick = -1;
        for (int i = scan; i < n; i++)
            if (!done[i] && pending[i] == 0) { pick = i; break; }
        if (pick < 0)
            for (int i = 0; i < scan; i++)
                if (!done[i] && pending[i] == 0) { pick = i; break; }
        if (pick < 0) break;
        done[pick] = 1;
        order[placed++] = pick;
        scan = pick;
        for (int k = 0; k < g->nodes[pick].n_out; k++) {
            int v = g->nodes[pick].out[k];
            if (v < 0) continue;
            for (int j = 0; j < n; j++)
                if (!done[j])
                    for (int q = 0; q < g->nodes[j].n_in; q++)
                        if (g->nodes[j].in[q] == v) pending[j]--;
        }
    }
    int rc = QK_OK;
    if (placed < n) {
        for (int i = 0; i < n; i++)
            if (!done[i]) {
                rc = qk_fail(err, QK_EINVAL, "graph has a cycle through node '%s' (%s)",
                             node_name(&g->nodes[i]), node_op_type(&g->nodes[i]));
                break;
            }
    } else {
        ir_node *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
        if (!sorted) {
            rc = qk_fail(err, QK_ENOMEM, "out of memory");
        } else {
            for (int i = 0; i < n; i++) sorted[i] = g->nodes[order[i]];
            memcpy(g->nodes, sorted, (size_t)n * sizeof *sorted);
            free(sorted);
            for (int i = 0; i < n; i++)
                for (int k = 0; k < g->nodes[i].n_out; k++)
                    if (g->nodes[i].out[k] >= 0) g->values[g->nodes[i].out[k]].producer = i;
        }
    }
    free(pending); free(order); free(done);
    return rc;
}

/* ---- attributes on new/edited nodes --------------------------------------- */

static Onnx__AttributeProto *attr_slot(ir_node *n, const char *name)
{
    Onnx__NodeProto *p = n->proto;
    for (size_t i = 0; i < p->n_attribute; i++)
        if (strcmp(p->attribute[i]->name, name) == 0) {
            onnx__attribute_proto__free_unpacked(p->attribute[i], NULL);
            p->attribute[i] = NULL;
            goto fresh;
        }
    {
        Onnx__AttributeProto **na = realloc(p->attribute, (p->n_attribute + 1) * sizeof *na);
        if (!na) return NULL;
        p->attribute = na;
        p->attribute[p->n_attribute++] = NULL;
    }
fresh:;
    Onnx__AttributeProto *a = malloc(sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = strdup(name);
    for (size_t i = 0; i < p->n_attribute; i++)
        if (!p->attribute[i]) p->attribute[i] = a;
    return a;
}

int ir_node_set_attr_int(ir_node *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr_slot(n, name);
    if (!a) return QK_ENOMEM;
    a->has_type = 1; a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1; a->i = v;
    return QK_OK;
}

int ir_node_set_attr_float(ir_node *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr_slot(n, name);
    if (!a) return QK_ENOMEM;
    a->has_type = 1; a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1; a->f = v;
    return QK_OK;
}

int ir_node_set_attr_ints(ir_node *n, const char *name, const int64_t *v, int count)
{
    Onnx__AttributeProto *a = attr_slot(n, name);
    if (!a) return QK_ENOMEM;
    a->has_type = 1; a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->ints = malloc(((size_t)count + 1) * sizeof(int64_t));
    if (!a->ints) return QK_ENOMEM;
    if (count) memcpy(a->ints, v, (size_t)count * sizeof(int64_t));
    a->n_ints = (size_t)count;
    return QK_OK;
}

int ir_node_set_attr_str(ir_node *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attr_slot(n, name);
    if (!a) return QK_ENOMEM;
    a->has_type = 1; a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)strdup(v);
    if (!a->s.data) return QK_ENOMEM;
    return ir_node_cache_attrs(n, NULL, NULL);
}

/* ---- tensors -------------------------------------------------------------- */

/* Reads external data [offset, offset+length) of `location` under dir,
 * refusing absolute paths and any path that leaves dir. */
static int read_external(const Onnx__TensorProto *tp, const char *dir, void *dst, size_t nbytes, qk_err *err)
{
    const char *loc = NULL;
    long long offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = tp->external_data[i];
        if (!kv->key || !kv->value) continue;
        if (!strcmp(kv->key, "location")) loc = kv->value;
        else if (!strcmp(kv->key, "offset")) offset = atoll(kv->value);
        else if (!strcmp(kv->key, "length")) length = atoll(kv->value);
    }
    const char *tn = tp->name ? tp->name : "";
    if (!loc || !*loc) return qk_fail(err, QK_EINVAL, "tensor '%s': external data without a location", tn);
    if (loc[0] == '/' || strstr(loc, ".."))
        return qk_fail(err, QK_EINVAL, "tensor '%s': external data location '%s' escapes the model's folder", tn, loc);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", loc);
    char real_dir[PATH_MAX], real_file[PATH_MAX];
    if (!realpath(dir && *dir ? dir : ".", real_dir) || !realpath(path, real_file))
        return qk_fail(err, QK_EIO, "tensor '%s': cannot open external data '%s': %s", tn, path, strerror(errno));
    size_t dl = strlen(real_dir);
    if (strncmp(real_file, real_dir, dl) != 0 || real_file[dl] != '/')
        return qk_fail(err, QK_EINVAL, "tensor '%s': external data location '%s' escapes the model's folder", tn, loc);
    if (offset < 0 || (length >= 0 && (size_t)length != nbytes))
        return qk_fail(err, QK_EINVAL, "tensor '%s': external data length %lld, expected %zu bytes", tn, length, nbytes);
    FILE *f = fopen(real_file, "rb");
    if (!f) return qk_fail(err, QK_EIO, "tensor '%s': cannot open external data '%s': %s", tn, path, strerror(errno));
    int ok = fseek(f, offset, SEEK_SET) == 0 && fread(dst, 1, nbytes, f) == nbytes;
    fclose(f);
    if (!ok) return qk_fail(err, QK_EIO, "tensor '%s': external data '%s' is shorter than offset %lld + %zu bytes", tn, path, offset, nbytes);
    return QK_OK;
}

int ir_decode_tensor(const Onnx__TensorProto *tp, const char *dir, xt *t, qk_err *err)
{
    const char *tn = tp->name ? tp->name : "";
    memset(t, 0, sizeof *t);
    if (tp->n_dims > XT_MAX_RANK)
        return qk_fail(err, QK_ENOTSUP, "tensor '%s': rank %zu exceeds %d", tn, tp->n_dims, XT_MAX_RANK);
    t->dtype = tp->data_type;
    t->rank = (int)tp->n_dims;
    int64_t numel = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0 || (tp->dims[i] > 0 && numel > INT64_MAX / 16 / tp->dims[i]))
            return qk_fail(err, QK_EINVAL, "tensor '%s': invalid dimension %lld", tn, (long long)tp->dims[i]);
        t->dims[i] = tp->dims[i];
        numel *= tp->dims[i];
    }
    size_t es = dtype_size(t->dtype);
    if (!es) return qk_fail(err, QK_ENOTSUP, "tensor '%s': element type %s is not supported", tn, dtype_name(t->dtype));
    size_t nbytes = (size_t)numel * es;
    t->data = malloc(nbytes ? nbytes : 1);
    if (!t->data) return qk_fail(err, QK_ENOMEM, "tensor '%s': out of memory for %zu bytes", tn, nbytes);

    int rc = QK_OK;
    size_t have = 0;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        rc = read_external(tp, dir, t->data, nbytes, err);
        have = nbytes;
    } else if (tp->has_raw_data) {
        have = tp->raw_data.len;
        if (have == nbytes && nbytes) memcpy(t->data, tp->raw_data.data, nbytes);
    } else {
        /* Typed fields: ONNX packs small integer types into int32_data and
         * uint32 into uint64_data. */
        size_t n = 0;
        switch (t->dtype) {
        case DT_FLOAT: n = tp->n_float_data; if (n == (size_t)numel && n) memcpy(t->data, tp->float_data, nbytes); break;
        case DT_DOUBLE: n = tp->n_double_data; if (n == (size_t)numel && n) memcpy(t->data, tp->double_data, nbytes); break;
        case DT_INT64: n = tp->n_int64_data; if (n == (size_t)numel && n) memcpy(t->data, tp->int64_data, nbytes); break;
        case DT_INT32: case DT_INT16: case DT_INT8: case DT_UINT16: case DT_UINT8: case DT_BOOL:
            n = tp->n_int32_data;
            if (n == (size_t)numel)
                for (size_t i = 0; i < n; i++) xt_set_i64(t, (int64_t)i, tp->int32_data[i]);
            break;
        case DT_UINT32: case DT_UINT64:
            n = tp->n_uint64_data;
            if (n == (size_t)numel)
                for (size_t i = 0; i < n; i++) xt_set_i64(t, (int64_t)i, (int64_t)tp->uint64_data[i]);
            break;
        default: break;
        }
        have = n * es;
    }
    if (rc == QK_OK && have != nbytes)
        rc = qk_fail(err, QK_EINVAL, "tensor '%s': holds %zu bytes of data, its shape needs %zu", tn, have, nbytes);
    if (rc) {
        free(t->data);
        t->data = NULL;
    }
    return rc;
}

Onnx__TensorProto *ir_encode_tensor(const char *name, const xt *t)
{
    Onnx__TensorProto *tp = malloc(sizeof *tp);
    if (!tp) return NULL;
    onnx__tensor_proto__init(tp);
    tp->name = strdup(name);
    tp->has_data_type = 1;
    tp->data_type = t->dtype;
    tp->n_dims = (size_t)t->rank;
    tp->dims = malloc(((size_t)t->rank + 1) * sizeof(int64_t));
    int64_t nb = xt_nbytes(t);
    tp->has_raw_data = 1;
    tp->raw_data.len = (size_t)nb;
    tp->raw_data.data = malloc((size_t)nb + 1);
    if (!tp->name || !tp->dims || !tp->raw_data.data) {
        onnx__tensor_proto__free_unpacked(tp, NULL);
        return NULL;
    }
    for (int i = 0; i < t->rank; i++) tp->dims[i] = t->dims[i];
    if (nb) memcpy(tp->raw_data.data, t->data, (size_t)nb);
    return tp;
}

/* ---- building from a model ------------------------------------------------ */

static int set_declared_type(ir_value *v, const Onnx__ValueInfoProto *vi)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) return 0;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        v->t.dtype = DT_NON_TENSOR;   /* sequence, map, optional: not executable */
        return 0;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type) v->t.dtype = tt->elem_type;
    if (tt->shape) {
        if (tt->shape->n_dim > XT_MAX_RANK) return QK_ENOTSUP;
        v->t.rank = (int)tt->shape->n_dim;
        for (size_t i = 0; i < tt->shape->n_dim; i++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
            v->t.dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? d->dim_value : -1;
            free(v->dim_param[i]);
            v->dim_param[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param
                                  ? strdup(d->dim_param) : NULL;
        }
    }
    v->has_declared_type = 1;
    return 0;
}

int ir_from_model(Onnx__ModelProto *model, const char *dir, ir_graph **out, qk_err *err)
{
    *out = NULL;
    if (!model->graph) {
        onnx__model_proto__free_unpacked(model, NULL);
        return qk_fail(err, QK_EINVAL, "not an ONNX model: it has no graph");
    }
    ir_graph *g = calloc(1, sizeof *g);
    if (!g) {
        onnx__model_proto__free_unpacked(model, NULL);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    g->model = model;
    g->dir = strdup(dir ? dir : ".");
    g->opset = 1;
    for (size_t i = 0; i < model->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = model->opset_import[i];
        if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) g->opset = (int)o->version;
    }
    Onnx__GraphProto *gp = model->graph;
    int rc = ir_reindex(g);
    if (rc) goto fail_nomem;

    /* Initializers: the IR owns their decoded data; the protos stay for saving. */
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        const char *nm = tp->name ? tp->name : "";
        if (ir_find_value(g, nm) >= 0) {
            rc = qk_fail(err, QK_EINVAL, "initializer '%s' is defined twice", nm);
            goto fail;
        }
        int v = ir_add_value(g, nm);
        if (v < 0) goto fail_nomem;
        ir_value *val = &g->values[v];
        val->is_initializer = 1;
        val->proto = tp;
        gp->initializer[i] = NULL;
        rc = ir_decode_tensor(tp, g->dir, &val->t, err);
        if (rc) {
            if (rc != QK_ENOTSUP) goto fail;
            /* Kept as-is for saving; an op that reads it will fail. */
            val->t.rank = (int)tp->n_dims;
            val->t.dtype = tp->data_type;
            for (size_t k = 0; k < tp->n_dims && k < XT_MAX_RANK; k++) val->t.dims[k] = tp->dims[k];
            rc = QK_OK;
        }
        val->owned = val->t.data;
    }
    gp->n_initializer = 0;
    free(gp->initializer);
    gp->initializer = NULL;

    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        int v = ir_find_value(g, vi->name ? vi->name : "");
        if (v >= 0 && g->values[v].is_initializer) continue;   /* pre-IR-v4 style */
        if (v >= 0) {
            rc = qk_fail(err, QK_EINVAL, "graph input '%s' is listed twice", vi->name);
            goto fail;
        }
        v = ir_add_value(g, vi->name ? vi->name : "");
        if (v < 0) goto fail_nomem;
        g->values[v].is_input = 1;
        if (set_declared_type(&g->values[v], vi)) {
            rc = qk_fail(err, QK_ENOTSUP, "graph input '%s': rank above %d", vi->name, XT_MAX_RANK);
            goto fail;
        }
        int *ni = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *ni);
        if (!ni) goto fail_nomem;
        g->inputs = ni;
        g->inputs[g->n_inputs++] = v;
    }

    g->nodes = calloc(gp->n_node + 1, sizeof *g->nodes);
    if (!g->nodes) goto fail_nomem;
    g->cap_nodes = (int)gp->n_node + 1;
    for (size_t i = 0; i < gp->n_node; i++) {
        int ni = g->n_nodes++;
        g->nodes[ni].proto = gp->node[i];
        gp->node[i] = NULL;
        if ((rc = link_node(g, ni, err))) goto fail;
        if ((rc = ir_node_cache_attrs(&g->nodes[ni], g->dir, err))) goto fail;
    }
    gp->n_node = 0;
    free(gp->node);
    gp->node = NULL;

    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        int v = ir_find_value(g, vi->name ? vi->name : "");
        if (v < 0) {
            rc = qk_fail(err, QK_EINVAL, "graph output '%s' is not produced by any node", vi->name ? vi->name : "");
            goto fail;
        }
        g->values[v].is_output = 1;
        if (!g->values[v].is_initializer && !g->values[v].is_input) set_declared_type(&g->values[v], vi);
        int *no = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof *no);
        if (!no) goto fail_nomem;
        g->outputs = no;
        g->outputs[g->n_outputs++] = v;
    }
    /* Every consumed value must come from somewhere. */
    for (int ni = 0; ni < g->n_nodes; ni++)
        for (int k = 0; k < g->nodes[ni].n_in; k++) {
            int v = g->nodes[ni].in[k];
            if (v < 0) continue;
            ir_value *val = &g->values[v];
            if (val->producer < 0 && !val->is_initializer && !val->is_input) {
                rc = qk_fail(err, QK_EINVAL, "node '%s' (%s) reads '%s', which no node, input or initializer defines",
                             node_name(&g->nodes[ni]), node_op_type(&g->nodes[ni]), val->name);
                goto fail;
            }
        }
    if ((rc = ir_compact(g, err))) goto fail;
    *out = g;
    return QK_OK;

fail_nomem:
    rc = qk_fail(err, QK_ENOMEM, "out of memory while building the graph");
fail:
    ir_free(g);
    return rc;
}

void ir_free(ir_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) free_node(&g->nodes[i]);
    for (int v = 0; v < g->n_values; v++) {
        ir_value *val = &g->values[v];
        free(val->name);
        free(val->owned);
        free(val->plugin_view);
        for (int k = 0; k < XT_MAX_RANK; k++) free(val->dim_param[k]);
        if (val->proto) onnx__tensor_proto__free_unpacked(val->proto, NULL);
    }
    if (g->model) onnx__model_proto__free_unpacked(g->model, NULL);
    name_index *ix = g->name_index;
    if (ix) free(ix->slot);
    free(ix);
    free(g->nodes);
    free(g->values);
    free(g->inputs);
    free(g->outputs);
    free(g->dir);
    free(g);
}
