/* This file implements attribute access for kernels (node_attr_* in op.h)
 * and op_fail.  String and tensor attributes are decoded once, when the node
 * enters the IR (ir_node_cache_attrs), so kernels read them without
 * allocating and several executors may share one graph. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ir.h"
#include "ir_private.h"
#include "onnx.pb-c.h"

static const Onnx__AttributeProto *find(const ir_node *n, const char *name)
{
    const Onnx__NodeProto *p = n->proto;
    for (size_t i = 0; i < p->n_attribute; i++)
        if (p->attribute[i]->name && strcmp(p->attribute[i]->name, name) == 0) return p->attribute[i];
    return NULL;
}

static const xt *cached(const ir_node *n, const char *name)
{
    for (int i = 0; i < n->n_attr_cache; i++)
        if (strcmp(n->attr_cache[i].name, name) == 0) return &n->attr_cache[i].t;
    return NULL;
}

void ir_node_drop_attr_cache(ir_node *n)
{
    for (int i = 0; i < n->n_attr_cache; i++) {
        free(n->attr_cache[i].name);
        free(n->attr_cache[i].t.data);
    }
    free(n->attr_cache);
    n->attr_cache = NULL;
    n->n_attr_cache = 0;
}

int ir_node_cache_attrs(ir_node *n, const char *dir, qk_err *err)
{
    ir_node_drop_attr_cache(n);
    const Onnx__NodeProto *p = n->proto;
    if (p->n_attribute == 0) return QK_OK;
    n->attr_cache = calloc(p->n_attribute, sizeof *n->attr_cache);
    if (!n->attr_cache) return qk_fail(err, QK_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n_attribute; i++) {
        const Onnx__AttributeProto *a = p->attribute[i];
        if (!a->name) continue;
        xt t = {0};
        if (a->has_s) {
            char *s = malloc(a->s.len + 1);
            if (!s) return qk_fail(err, QK_ENOMEM, "out of memory");
            if (a->s.len) memcpy(s, a->s.data, a->s.len);
            s[a->s.len] = 0;
            t.dtype = DT_STRING;
            t.data = s;
        } else if (a->t) {
            int rc = ir_decode_tensor(a->t, dir, &t, err);
            if (rc == QK_ENOTSUP) {
                /* Kept undecoded: only a kernel that reads it will fail. */
                t.dtype = DT_UNDEFINED;
                t.data = NULL;
            } else if (rc) {
                return qk_fail(err, rc, "node '%s' attribute '%s': %s",
                               p->name ? p->name : "", a->name, err ? err->msg : "");
            }
        } else {
            continue;
        }
        int k = n->n_attr_cache++;
        n->attr_cache[k].name = strdup(a->name);
        n->attr_cache[k].t = t;
        if (!n->attr_cache[k].name) return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    return QK_OK;
}

int64_t node_attr_int(const ir_node *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = find(n, name);
    if (!a) return def;
    if (a->has_i) return a->i;
    if (a->has_f) return (int64_t)a->f;
    return def;
}

float node_attr_float(const ir_node *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = find(n, name);
    if (!a) return def;
    if (a->has_f) return a->f;
    if (a->has_i) return (float)a->i;
    return def;
}

const char *node_attr_str(const ir_node *n, const char *name, const char *def)
{
    const xt *t = cached(n, name);
    return t && t->dtype == DT_STRING ? (const char *)t->data : def;
}

int node_attr_ints(const ir_node *n, const char *name, const int64_t **v)
{
    const Onnx__AttributeProto *a = find(n, name);
    if (!a) return -1;
    /* An empty list is stored as "no elements" with type INTS. */
    if (a->n_ints == 0 && a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS) return -1;
    *v = a->ints;
    return (int)a->n_ints;
}

int node_attr_floats(const ir_node *n, const char *name, const float **v)
{
    const Onnx__AttributeProto *a = find(n, name);
    if (!a) return -1;
    if (a->n_floats == 0 && a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS) return -1;
    *v = a->floats;
    return (int)a->n_floats;
}

int node_has_attr(const ir_node *n, const char *name) { return find(n, name) != NULL; }

int node_attr_tensor(const ir_node *n, const char *name, xt *out, qk_err *err)
{
    const xt *t = cached(n, name);
    if (!t || t->dtype == DT_STRING)
        return qk_fail(err, QK_EINVAL, "node '%s' has no tensor attribute '%s'", node_name(n), name);
    if (t->dtype == DT_UNDEFINED)
        return qk_fail(err, QK_ENOTSUP, "node '%s' attribute '%s': tensor type not supported",
                       node_name(n), name);
    *out = *t;
    return QK_OK;
}

const char *node_name(const ir_node *n) { return n->proto->name ? n->proto->name : ""; }
const char *node_op_type(const ir_node *n) { return n->proto->op_type ? n->proto->op_type : ""; }

int op_fail(op_ctx *c, int code, const char *fmt, ...)
{
    char msg[QK_ERRMSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qk_fail(c->err, code, "%s node '%s': %s", node_op_type(c->node), node_name(c->node), msg);
}
