/* This file implements the quantization plan (see plan.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plan.h"

static int in_list(const char *const *ops, const char *op)
{
    for (; ops && *ops; ops++)
        if (!strcmp(*ops, op)) return 1;
    return 0;
}

/* Which input slot of a quantized op holds a weight, and along which axis
 * its output channels run (DESIGN.md: per-channel on the output channel). */
static int weight_axis(const ir_node *n, int slot)
{
    const char *op = node_op_type(n);
    if (!strcmp(op, "Conv")) return slot == 1 ? 0 : -1;
    if (!strcmp(op, "ConvTranspose")) return slot == 1 ? 1 : -1;
    if (!strcmp(op, "Gemm")) return slot == 1 ? (node_attr_int(n, "transB", 0) ? 0 : 1) : -1;
    if (!strcmp(op, "MatMul")) return slot == 1 ? 1 : -1;   /* [K, N]: N is the output channel */
    return -1;
}

static int is_bias(const ir_graph *g, const ir_node *n, int slot)
{
    const char *op = node_op_type(n);
    return slot == 2 && g->values[n->in[slot]].t.rank == 1 &&
           (!strcmp(op, "Conv") || !strcmp(op, "ConvTranspose") || !strcmp(op, "Gemm"));
}

typedef struct planner {
    const ir_graph *g;
    quant_plan *p;
    int *entry_of;     /* value -> entry index + 1, 0 when unplanned */
} planner;

static int add_entry(planner *pl, int value, int node, plan_role role, int axis, const qk_resolved_tensor *rule,
                     int group)
{
    quant_plan *p = pl->p;
    if (pl->entry_of[value]) return QK_OK;
    plan_entry *e = realloc(p->entries, (size_t)(p->n + 1) * sizeof *e);
    if (!e) return QK_ENOMEM;
    p->entries = e;
    p->entries[p->n] = (plan_entry){value, node, role, axis, rule, group >= 0 ? group : p->n};
    pl->entry_of[value] = ++p->n;
    return QK_OK;
}

static int is_activation(const ir_graph *g, int v)
{
    return v >= 0 && g->values[v].t.dtype == DT_FLOAT && !g->values[v].t.data && !g->values[v].fused;
}

/* The node reading a fused value: the next member of its group. */
static int fused_reader(const ir_graph *g, int v)
{
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == v) return i;
    }
    return -1;
}

/* Plans node ni's float inputs and outputs under rule r.  A fused output is
 * followed into the node reading it, whose other inputs and outputs belong
 * to the same group (Conv -> Add(residual) -> Relu). */
static int plan_node(planner *pl, int ni, int owner, const qk_resolved_rule *r, int depth)
{
    const ir_graph *g = pl->g;
    const ir_node *n = &g->nodes[ni];
    int rc = QK_OK;
    for (int k = 0; k < n->n_in && rc == QK_OK; k++) {
        int v = n->in[k];
        if (v < 0 || g->values[v].t.dtype != DT_FLOAT) continue;
        const ir_value *val = &g->values[v];
        if (val->is_initializer && depth == 0) {
            if (is_bias(g, n, k)) rc = add_entry(pl, v, owner, PLAN_BIAS, -1, &r->weight, -1);
            else rc = add_entry(pl, v, owner, PLAN_WEIGHT, r->weight.per_channel ? weight_axis(n, k) : -1,
                                &r->weight, -1);
        } else if (!val->is_initializer && is_activation(g, v)) {
            rc = add_entry(pl, v, owner, PLAN_ACTIVATION, -1, &r->activation, -1);
        }
    }
    for (int k = 0; k < n->n_out && rc == QK_OK; k++) {
        int v = n->out[k];
        if (v < 0 || g->values[v].t.dtype != DT_FLOAT || g->values[v].t.data) continue;
        if (g->values[v].fused) {
            int next = fused_reader(g, v);
            if (next >= 0 && next != ni && depth < 16) rc = plan_node(pl, next, owner, r, depth + 1);
        } else {
            rc = add_entry(pl, v, owner, PLAN_ACTIVATION, -1, &r->activation, -1);
        }
    }
    return rc;
}

/* A shared-scale node (MaxPool, Reshape, Concat...) whose float inputs are
 * all planned already: its outputs join the group of its first input, and
 * the other inputs' groups are merged into it. */
static int plan_shared(planner *pl, int ni)
{
    const ir_graph *g = pl->g;
    const ir_node *n = &g->nodes[ni];
    int root = -1;
    for (int k = 0; k < n->n_in; k++) {
        int v = n->in[k];
        if (v < 0 || g->values[v].t.dtype != DT_FLOAT || g->values[v].t.data) continue;
        if (!pl->entry_of[v] || pl->p->entries[pl->entry_of[v] - 1].role != PLAN_ACTIVATION) return QK_OK;
        int gi = plan_group(pl->p, pl->entry_of[v] - 1);
        if (root < 0) root = gi;
        else if (gi != root) pl->p->entries[gi].group = root;
    }
    if (root < 0) return QK_OK;
    const plan_entry *re = &pl->p->entries[root];
    for (int k = 0; k < n->n_out; k++) {
        int v = n->out[k];
        if (!is_activation(g, v)) continue;
        int rc = add_entry(pl, v, re->node, PLAN_ACTIVATION, -1, re->rule, root);
        if (rc) return rc;
    }
    return QK_OK;
}

int plan_group(const quant_plan *p, int i)
{
    while (p->entries[i].group != i) i = p->entries[i].group;
    return i;
}

int plan_find(const quant_plan *p, int value)
{
    for (int i = 0; i < p->n; i++)
        if (p->entries[i].value == value) return i;
    return -1;
}

int plan_build(const ir_graph *g, const qk_config *c, const char *const *ops, const char *const *shared_ops,
               quant_plan **out, qk_err *err)
{
    *out = NULL;
    quant_plan *p = calloc(1, sizeof *p);
    int *entry_of = calloc((size_t)g->n_values + 1, sizeof *entry_of);
    /* Rules are stored by node so entries can point into a stable array. */
    if (p) p->rules = calloc((size_t)g->n_nodes + 1, sizeof *p->rules);
    if (!p || !entry_of || !p->rules) {
        free(entry_of);
        plan_free(p);
        return qk_fail(err, QK_ENOMEM, "out of memory planning");
    }
    planner pl = {g, p, entry_of};
    int rc = QK_OK;
    for (int i = 0; i < g->n_nodes && rc == QK_OK; i++) {
        const ir_node *n = &g->nodes[i];
        int quantized = in_list(ops, node_op_type(n)), shared = in_list(shared_ops, node_op_type(n));
        if (n->dead || (!quantized && !shared)) continue;
        qk_resolved_rule *r = &p->rules[i];
        config_resolve(c, node_op_type(n), node_name(n), r);
        if (r->skip) {
            p->n_skipped++;
            continue;
        }
        rc = quantized ? plan_node(&pl, i, i, r, 0) : plan_shared(&pl, i);
    }
    free(entry_of);
    if (rc) {
        plan_free(p);
        return qk_fail(err, rc, "out of memory planning");
    }
    p->n_rules = g->n_nodes;
    *out = p;
    return QK_OK;
}

void plan_free(quant_plan *p)
{
    if (!p) return;
    free(p->entries);
    free(p->rules);
    free(p);
}

static const char *role_name(plan_role r)
{
    return r == PLAN_WEIGHT ? "weight" : r == PLAN_BIAS ? "bias" : "activation";
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

void plan_print(const quant_plan *p, const ir_graph *g, const char *backend, bool json, FILE *f)
{
    char a[256], b[256], c[256];
    if (json) fprintf(f, "{\"backend\":\"%s\",\"skipped_nodes\":%d,\"tensors\":[", backend, p->n_skipped);
    else fprintf(f, "backend %s: %d tensors planned, %d quantizable nodes skipped by rules\n"
                    "%-32s %-10s %-24s %-28s %4s %-22s %s\n", backend, p->n, p->n_skipped,
                 "tensor", "role", "node", "observer / quantizer", "bits", "scheme", "rule");
    for (int i = 0; i < p->n; i++) {
        const plan_entry *e = &p->entries[i];
        const qk_resolved_tensor *r = e->rule;
        const char *tensor = g->values[e->value].name, *node = node_name(&g->nodes[e->node]);
        const char *quantizer = e->role == PLAN_WEIGHT && r->quantizer ? r->quantizer : "-";
        int bits = e->role == PLAN_BIAS ? 32 : r->bits;
        const char *sym = e->role == PLAN_BIAS || r->symmetric ? "symmetric" : "asymmetric";
        const char *gran = e->role == PLAN_BIAS || e->axis >= 0 ? "per-channel" : "per-tensor";
        cfg_source_str(&r->observer_from, a, sizeof a);
        cfg_source_str(&r->bits_from, b, sizeof b);
        cfg_source_str(&r->per_channel_from, c, sizeof c);
        if (json) {
            fprintf(f, "%s{\"tensor\":", i ? "," : "");
            json_str(f, tensor);
            fprintf(f, ",\"role\":\"%s\",\"node\":", role_name(e->role));
            json_str(f, node);
            fprintf(f, ",\"op_type\":");
            json_str(f, node_op_type(&g->nodes[e->node]));
            if (e->role == PLAN_BIAS) {
                fprintf(f, ",\"bits\":32,\"dtype\":\"int32\",\"scale\":\"input_scale*weight_scale\"}");
                continue;
            }
            fprintf(f, ",\"observer\":");
            json_str(f, r->observer);
            fprintf(f, ",\"quantizer\":");
            if (e->role == PLAN_WEIGHT && r->quantizer) json_str(f, r->quantizer);
            else fprintf(f, "null");
            fprintf(f, ",\"bits\":%d,\"symmetric\":%s,\"per_channel\":%s,\"axis\":%d,\"from\":{\"observer\":", bits,
                    r->symmetric ? "true" : "false", e->axis >= 0 ? "true" : "false", e->axis);
            json_str(f, a);
            fprintf(f, ",\"bits\":");
            json_str(f, b);
            fprintf(f, ",\"per_channel\":");
            json_str(f, c);
            fprintf(f, "}}");
        } else {
            char oq[96];
            if (e->role == PLAN_BIAS) snprintf(oq, sizeof oq, "int32 = s_in*s_w");
            else snprintf(oq, sizeof oq, "%s / %s", r->observer, quantizer);
            char scheme[48];
            snprintf(scheme, sizeof scheme, "%s %s", sym, gran);
            fprintf(f, "%-32s %-10s %-24s %-28s %4d %-22s %s\n", tensor, role_name(e->role), node, oq, bits, scheme,
                    e->role == PLAN_BIAS ? "(from weight and input)" : b);
        }
    }
    if (json) fprintf(f, "]}\n");
}
