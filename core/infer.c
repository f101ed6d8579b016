/* This file implements static shape inference and constant folding over the
 * IR.  Both use the op table's own infer/run functions, so every supported op
 * has shape inference by construction and folding needs no second
 * implementation of the shape arithmetic PyTorch exports
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape). */
#include <stdlib.h>
#include <string.h>
#include "ir.h"
#include "ir_private.h"
#include "onnx.pb-c.h"

int ir_check_ops(ir_graph *g, qk_err *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        const char *dom = n->proto->domain;
        n->op = (!dom || !*dom || !strcmp(dom, "ai.onnx")) ? op_lookup(node_op_type(n)) : NULL;
        if (!n->op)
            return qk_fail(err, QK_ENOTSUP, "unsupported op %s%s%s in node '%s'",
                           dom && *dom ? dom : "", dom && *dom ? "." : "", node_op_type(n), node_name(n));
    }
    return QK_OK;
}

/* A value is constant when its data is known before any input is given. */
static int is_const(const ir_graph *g, int v) { return v < 0 || g->values[v].t.data != NULL; }

/* Folding would bake a large tensor into the model for no gain: only fold
 * what shape arithmetic produces (small) or what is cheap to keep. */
#define FOLD_MAX_BYTES (64 << 20)

static int fold_node(ir_graph *g, ir_node *n, op_ctx *c, xt *outs)
{
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        int64_t nb = xt_nbytes(&outs[k]);
        if (nb < 0 || nb > FOLD_MAX_BYTES) return QK_UNKNOWN;
    }
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        int64_t nb = xt_nbytes(&outs[k]);
        outs[k].data = calloc(1, nb > 0 ? (size_t)nb : 1);
        if (!outs[k].data) return QK_ENOMEM;
    }
    int rc = n->op->run(c);
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        if (rc) {
            free(outs[k].data);
            continue;
        }
        ir_value *v = &g->values[n->out[k]];
        free(v->owned);
        v->owned = outs[k].data;
        v->t = outs[k];
        v->is_folded = 1;
    }
    return rc;
}

int ir_infer(ir_graph *g, qk_err *err)
{
    /* Values computed by nodes start unknown unless the model declared them,
     * so that re-running inference after a rewrite starts from scratch. */
    for (int v = 0; v < g->n_values; v++) {
        ir_value *val = &g->values[v];
        if (val->is_folded) {
            free(val->owned);
            val->owned = NULL;
            val->t.data = NULL;
            val->is_folded = 0;
        }
        if (val->producer >= 0 && !val->has_declared_type) val->t.rank = -1;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        if (!n->op) continue;
        const xt *ins[64];
        xt *outp[64];
        xt outs[64];
        if (n->n_in > 64 || n->n_out > 64)
            return qk_fail(err, QK_ENOTSUP, "node '%s' has more than 64 inputs or outputs", node_name(n));
        int all_const = 1, shape_known = 1;
        for (int k = 0; k < n->n_in; k++) {
            ins[k] = n->in[k] >= 0 ? &g->values[n->in[k]].t : NULL;
            if (!is_const(g, n->in[k])) all_const = 0;
            if (ins[k] && !xt_shape_known(ins[k])) shape_known = 0;
        }
        for (int k = 0; k < n->n_out; k++) {
            memset(&outs[k], 0, sizeof outs[k]);
            outs[k].rank = -1;
            outp[k] = n->out[k] >= 0 ? &outs[k] : NULL;
        }
        op_ctx c = {.node = n, .n_in = n->n_in, .in = ins, .n_out = n->n_out, .out = outp,
                    .pool = NULL, .opset = g->opset, .err = err};
        int rc = n->op->infer(&c);
        if (rc == QK_UNKNOWN) continue;
        if (rc) return rc;
        for (int k = 0; k < n->n_out; k++) {
            if (n->out[k] < 0) continue;
            ir_value *v = &g->values[n->out[k]];
            v->t.dtype = outs[k].dtype;
            v->t.rank = outs[k].rank;
            memcpy(v->t.dims, outs[k].dims, sizeof v->t.dims);
        }
        /* Shape only needs its input's shape, which is how a statically
         * shaped model's shape arithmetic folds away entirely. */
        int foldable = all_const || (!strcmp(node_op_type(n), "Shape") && shape_known);
        if (!foldable) continue;
        if (!all_const) {
            /* Give Shape a stand-in input: it reads dims, never data. */
            static const char dummy[1];
            xt tmp = *ins[0];
            tmp.data = (void *)dummy;
            ins[0] = &tmp;
            rc = fold_node(g, n, &c, outs);
        } else {
            rc = fold_node(g, n, &c, outs);
        }
        if (rc < 0) return rc;
    }
    return QK_OK;
}
