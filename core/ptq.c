/* This file implements post-training quantization end to end (see ptq.h).
 *
 * One job holds every stage's state; each stage is a function that fills
 * part of it, so the order in ptq_run reads like DESIGN.md's data flow. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <quantkit/quantkit.h>
#include "clock.h"
#include "backend_vt.h"
#include "calibrate.h"
#include "config.h"
#include "fusion_pass.h"
#include "host.h"
#include "onnx_io.h"
#include "plan_api.h"
#include "ptq.h"
#include "qparams.h"
#include "record.h"
#include "report.h"

typedef struct ptq_job {
    const ptq_options *o;
    qk_config *cfg;
    ir_graph *g;                  /* fused, then rewritten by the backend */
    registry *reg;
    const qk_plugin_descriptor *backend;
    quant_plan *plan;
    int fusions;
    data_set ds;
    int have_data;
    int64_t batch;
    calibrator *cal;
    record *rec;
    qk_qparams *qp;               /* per plan entry */
    int32_t **codes;              /* per plan entry (weights, biases) */
    float **lo, **hi;             /* per plan entry: observed range (NULL from a record) */
    int64_t *range_channels;
    sqnr_acc *sqnr;               /* per plan entry */
    char **entry_node, **entry_op; /* per plan entry, taken before the backend edits nodes */
    int n_outputs;
    char **output_names;
    sqnr_acc *output_sqnr;
    double t_start;
} ptq_job;

static const char *vname(const ptq_job *j, int i) { return j->g->values[j->plan->entries[i].value].name; }

int ptq_check_plugins(registry *reg, const quant_plan *p, qk_err *err)
{
    for (int i = 0; i < p->n; i++) {
        const plan_entry *e = &p->entries[i];
        if (e->role == PLAN_BIAS) continue;
        const qk_plugin_descriptor *d;
        int rc = registry_get(reg, QK_PLUGIN_OBSERVER, e->rule->observer, &d, err);
        if (rc == QK_OK && e->role == PLAN_WEIGHT)
            rc = registry_get(reg, QK_PLUGIN_FAKEQUANT, e->rule->quantizer ? e->rule->quantizer : "round", &d, err);
        if (rc) return rc;
    }
    return QK_OK;
}

/* ---- load, fuse, plan ----------------------------------------------------- */

int ptq_check_backend_options(const qk_plugin_descriptor *backend, ir_graph *g, const qk_config *cfg, qk_err *err)
{
    const qk_backend_vtable *bv = backend->vtable;
    if (!bv->check_options) return QK_OK;
    host_ctx hc;
    char who[128];
    snprintf(who, sizeof who, "backend '%s'", backend->name);
    host_ctx_init(&hc, who, g, err);
    qk_params *opts = host_params_new(&cfg->backend_options.value, err);
    err->code = 0;
    int rc = opts ? bv->check_options(&hc.host, opts) : QK_ENOMEM;
    host_params_free(opts);
    if (rc && !err->code) qk_fail(err, rc, "%s: backend_options refused", who);
    return rc;
}

static int load_and_plan(ptq_job *j, qk_err *err)
{
    const ptq_options *o = j->o;
    int rc = config_load(o->config, &j->cfg, err);
    if (!rc) rc = onnx_load(o->model, &j->g, err);
    if (!rc) rc = ir_check_ops(j->g, err);
    if (!rc) rc = registry_new((const char *const *)j->cfg->plugin_path, j->cfg->n_plugin_path, &j->reg, err);
    if (!rc) rc = registry_get(j->reg, QK_PLUGIN_BACKEND, j->cfg->backend.value, &j->backend, err);
    if (!rc) rc = ptq_check_backend_options(j->backend, j->g, j->cfg, err);
    if (rc) return rc;
    const qk_backend_vtable *bv = j->backend->vtable;
    rc = fusion_pass_run(j->reg, j->g, j->cfg, bv, &j->fusions, err);
    if (!rc) rc = plan_build(j->g, j->cfg, bv->quantized_ops, backend_shared_scale_ops(bv), &j->plan, err);
    if (!rc) rc = ptq_check_plugins(j->reg, j->plan, err);
    if (rc) return rc;
    if (j->plan->n == 0)
        return qk_fail(err, QK_EINVAL, "%s: nothing to quantize: backend '%s' quantizes none of the model's nodes%s",
                       o->model, j->backend->name, j->plan->n_skipped ? " (rules skip them all)" : "");
    int n = j->plan->n;
    j->qp = calloc((size_t)n, sizeof *j->qp);
    j->codes = calloc((size_t)n, sizeof *j->codes);
    j->lo = calloc((size_t)n, sizeof *j->lo);
    j->hi = calloc((size_t)n, sizeof *j->hi);
    j->range_channels = calloc((size_t)n, sizeof *j->range_channels);
    j->sqnr = calloc((size_t)n, sizeof *j->sqnr);
    j->entry_node = calloc((size_t)n, sizeof *j->entry_node);
    j->entry_op = calloc((size_t)n, sizeof *j->entry_op);
    if (!j->qp || !j->codes || !j->lo || !j->hi || !j->range_channels || !j->sqnr || !j->entry_node ||
        !j->entry_op)
        return qk_fail(err, QK_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const ir_node *nd = &j->g->nodes[j->plan->entries[i].node];
        j->entry_node[i] = strdup(node_name(nd));
        j->entry_op[i] = strdup(node_op_type(nd));
        if (!j->entry_node[i] || !j->entry_op[i]) return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    return QK_OK;
}

/* ---- activations: calibration or record ------------------------------------ */

static int load_data(ptq_job *j, qk_err *err)
{
    if (j->o->n_calib == 0) return QK_OK;
    int rc = data_set_load(j->g, j->o->n_calib, j->o->calib, &j->ds, err);
    if (rc) return rc;
    j->have_data = 1;
    int64_t samples = data_set_samples(&j->ds);
    if (samples <= 0) return qk_fail(err, QK_EINVAL, "calibration data holds no samples");
    int64_t batch = j->cfg->calibration.batch_size.value;
    const xt *in0 = &j->g->values[j->g->inputs[0]].t;
    if (in0->rank >= 1 && in0->dims[0] > 0) {
        batch = in0->dims[0];   /* a fixed batch in the model wins */
        if (samples % batch)
            return qk_fail(err, QK_EINVAL, "%lld calibration samples is not a multiple of the model's fixed batch %lld",
                           (long long)samples, (long long)batch);
    }
    j->batch = batch;
    return QK_OK;
}

static int calibrate(ptq_job *j, qk_err *err)
{
    if (!j->have_data)
        return qk_fail(err, QK_EINVAL, "no calibration data: give --calib DATA (or --from-record REC.yaml)");
    executor *e = NULL;
    int rc = exec_new(j->g, j->o->threads, &e, err);
    if (!rc) rc = calib_new(j->reg, j->g, j->plan, &j->cal, err);
    if (!rc) rc = calib_run(j->cal, e, &j->ds, j->batch, j->cfg->calibration.batch_num.value, err);
    exec_free(e);
    for (int i = 0; i < j->plan->n && !rc; i++) {
        const plan_entry *en = &j->plan->entries[i];
        if (en->role != PLAN_ACTIVATION || plan_group(j->plan, i) != i) continue;
        rc = calib_range(j->cal, i, &j->range_channels[i], &j->lo[i], &j->hi[i], err);
        qk_quant_spec spec = calib_spec_of(en);
        char what[512];
        snprintf(what, sizeof what, "activation '%s'", vname(j, i));
        if (!rc) rc = qparams_from_range(&spec, 1, j->lo[i], j->hi[i], &j->qp[i], what, err);
    }
    return rc;
}

/* A record entry must fit the tensor it is applied to: same bits, integer
 * range and channel count, or the model would silently change. */
static int take_from_record(ptq_job *j, int i, int64_t channels, qk_err *err)
{
    const plan_entry *e = &j->plan->entries[i];
    const record_entry *r = record_find(j->rec, vname(j, i));
    if (!r)
        return qk_fail(err, QK_EINVAL, "%s: no entry for tensor '%s' (was the record made for this model and config?)",
                       j->rec->path, vname(j, i));
    qk_quant_spec spec = calib_spec_of(e);
    int32_t qmin, qmax;
    qparams_int_range(&spec, &qmin, &qmax);
    const char *want_role = e->role == PLAN_WEIGHT ? "weight" : "activation";
    if ((r->role && strcmp(r->role, want_role)) || r->bits != e->rule->bits || r->qp.qmin != qmin ||
        r->qp.qmax != qmax || r->qp.count != channels)
        return qk_fail(err, QK_EINVAL,
                       "%s:%d:%d: tensor '%s' was recorded as %s, %d bits, [%d, %d], %lld channel(s); "
                       "the config now asks for %s, %d bits, [%d, %d], %lld channel(s)",
                       j->rec->path, r->line, r->column, vname(j, i), r->role ? r->role : "?", r->bits, r->qp.qmin,
                       r->qp.qmax, (long long)r->qp.count, want_role, e->rule->bits, qmin, qmax, (long long)channels);
    /* qmin/qmax were checked equal to the spec's above. */
    return qparams_copy(&j->qp[i], &r->qp) ? qk_fail(err, QK_ENOMEM, "out of memory") : QK_OK;
}

static int activations_from_record(ptq_job *j, qk_err *err)
{
    int rc = record_load(j->o->record_in, &j->rec, err);
    for (int i = 0; i < j->plan->n && !rc; i++)
        if (j->plan->entries[i].role == PLAN_ACTIVATION && plan_group(j->plan, i) == i)
            rc = take_from_record(j, i, 1, err);
    return rc;
}

/* Group members (a MaxPool's output, a Concat's inputs) carry a copy of the
 * group's parameters so the backend sees them on every tensor. */
static int share_group_params(ptq_job *j, qk_err *err)
{
    for (int i = 0; i < j->plan->n; i++) {
        int gi = plan_group(j->plan, i);
        if (gi == i || j->plan->entries[i].role != PLAN_ACTIVATION) continue;
        if (qparams_copy(&j->qp[i], &j->qp[gi])) return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    return QK_OK;
}

/* ---- weights and biases --------------------------------------------------- */

static int run_quantizer(ptq_job *j, int i, const xt *w, qk_err *err)
{
    const plan_entry *e = &j->plan->entries[i];
    const char *name = e->rule->quantizer ? e->rule->quantizer : "round";
    const qk_plugin_descriptor *d;
    int rc = registry_get(j->reg, QK_PLUGIN_FAKEQUANT, name, &d, err);
    if (rc) return rc;
    const qk_fakequant_vtable *vt = d->vtable;
    char who[512];
    snprintf(who, sizeof who, "quantizer '%s' on weight '%s'", d->name, vname(j, i));
    host_ctx hc;
    host_ctx_init(&hc, who, j->g, err);
    qk_params *args = host_params_new(e->rule->quantizer_args, err);
    if (!args) return qk_fail(err, QK_ENOMEM, "out of memory");
    qk_quant_spec spec = calib_spec_of(e);
    void *state = NULL;
    int64_t n = xt_numel(w);
    j->codes[i] = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    err->code = 0;
    rc = j->codes[i] ? vt->create(&hc.host, args, &spec, &state) : QK_ENOMEM;
    if (!rc) {
        struct qk_tensor view = host_tensor_view(w, vname(j, i));
        rc = vt->quantize(state, &view, &j->qp[i], j->codes[i]);
    }
    if (state) vt->destroy(state);
    host_params_free(args);
    if (rc) return err->code ? rc : qk_fail(err, rc, "%s failed (status %d)", who, rc);
    /* A plugin's codes are checked, not trusted: the backend stores them. */
    for (int64_t k = 0; k < n; k++)
        if (j->codes[i][k] < j->qp[i].qmin || j->codes[i][k] > j->qp[i].qmax)
            return qk_fail(err, QK_EINVAL, "%s: code %d at element %lld is outside [%d, %d]", who, j->codes[i][k],
                           (long long)k, j->qp[i].qmin, j->qp[i].qmax);
    return QK_OK;
}

/* Weight SQNR is local (the weight against its own dequantized codes). */
static void weight_sqnr(ptq_job *j, int i, const xt *w)
{
    const qk_qparams *q = &j->qp[i];
    int64_t n = xt_numel(w), inner = 1, ch = q->count;
    const float *x = w->data;
    if (q->axis >= 0)
        for (int d = q->axis + 1; d < w->rank; d++) inner *= w->dims[d];
    float buf[256];
    for (int64_t k = 0; k < n; k += 256) {
        int64_t m = n - k < 256 ? n - k : 256;
        for (int64_t t = 0; t < m; t++) {
            int64_t c = q->axis >= 0 ? ((k + t) / inner) % ch : 0;
            buf[t] = qk_dequantize_one(j->codes[i][k + t], q->scale[c], q->zero_point[c]);
        }
        sqnr_add(&j->sqnr[i], x + k, buf, m);
    }
}

static int quantize_weights(ptq_job *j, qk_err *err)
{
    int rc = QK_OK;
    for (int i = 0; i < j->plan->n && !rc; i++) {
        const plan_entry *e = &j->plan->entries[i];
        if (e->role != PLAN_WEIGHT) continue;
        const xt *w = &j->g->values[e->value].t;
        if (!w->data) return qk_fail(err, QK_EINVAL, "weight '%s' has no data", vname(j, i));
        qk_quant_spec spec = calib_spec_of(e);
        int64_t channels = spec.per_channel ? (spec.axis < w->rank ? w->dims[spec.axis] : -1) : 1;
        if (channels < 1)
            return qk_fail(err, QK_EINVAL, "weight '%s': channel axis %d does not fit its rank %d", vname(j, i),
                           spec.axis, w->rank);
        if (j->rec) {
            rc = take_from_record(j, i, channels, err);
        } else {
            rc = observe_once(j->reg, j->g, e, w, vname(j, i), &j->range_channels[i], &j->lo[i], &j->hi[i], err);
            char what[512];
            snprintf(what, sizeof what, "weight '%s'", vname(j, i));
            if (!rc) rc = qparams_from_range(&spec, channels, j->lo[i], j->hi[i], &j->qp[i], what, err);
        }
        if (!rc) rc = run_quantizer(j, i, w, err);
        if (!rc) weight_sqnr(j, i, w);
    }
    return rc;
}

/* Integer bias (DESIGN.md): int32, scale = s_input * s_weight[c], zero
 * point 0, so an integer runtime adds it straight to the accumulator.  A
 * bias whose input or weight is not quantized stays float. */
static int quantize_biases(ptq_job *j, qk_err *err)
{
    for (int i = 0; i < j->plan->n; i++) {
        const plan_entry *e = &j->plan->entries[i];
        if (e->role != PLAN_BIAS) continue;
        const ir_node *n = &j->g->nodes[e->node];
        int ei = plan_find(j->plan, n->in[0]), ew = n->n_in > 1 ? plan_find(j->plan, n->in[1]) : -1;
        if (ei < 0 || ew < 0 || j->plan->entries[ew].role != PLAN_WEIGHT) continue;
        const qk_qparams *qi = &j->qp[plan_group(j->plan, ei)], *qw = &j->qp[ew];
        const xt *b = &j->g->values[e->value].t;
        int64_t len = xt_numel(b);
        if (qi->count != 1 || (qw->count != 1 && qw->count != len)) continue;
        if (qparams_alloc(&j->qp[i], len, qw->count > 1 ? 0 : -1)) return qk_fail(err, QK_ENOMEM, "out of memory");
        /* One scale per element keeps the DequantizeLinear per-axis even when
         * the weight is per tensor (identical values). */
        j->qp[i].axis = len > 1 || qw->count > 1 ? 0 : -1;
        j->qp[i].qmin = INT32_MIN;
        j->qp[i].qmax = INT32_MAX;
        j->codes[i] = malloc((size_t)len * sizeof(int32_t));
        if (!j->codes[i]) return qk_fail(err, QK_ENOMEM, "out of memory");
        const float *x = b->data;
        float deq[1];
        for (int64_t c = 0; c < len; c++) {
            double s = (double)qi->scale[0] * qw->scale[qw->count > 1 ? c : 0];
            j->qp[i].scale[c] = (float)s;
            double q = s > 0 ? nearbyint(x[c] / s) : 0;
            q = q < INT32_MIN ? INT32_MIN : q > INT32_MAX ? INT32_MAX : q;
            j->codes[i][c] = (int32_t)q;
            deq[0] = (float)(q * s);
            sqnr_add(&j->sqnr[i], x + c, deq, 1);
        }
    }
    return QK_OK;
}

/* ---- emit ------------------------------------------------------------------ */

static int emit(ptq_job *j, qk_err *err)
{
    /* The backend gets every entry that has parameters: all activations
     * and weights, and the biases quantize_biases could make integer (the
     * rest stay float); activations and weights first, in plan order. */
    int *order = malloc(((size_t)j->plan->n + 1) * sizeof *order);
    if (!order) return qk_fail(err, QK_ENOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < j->plan->n; i++)
        if (j->plan->entries[i].role != PLAN_BIAS) order[n++] = i;
    for (int i = 0; i < j->plan->n; i++)
        if (j->plan->entries[i].role == PLAN_BIAS && j->codes[i]) order[n++] = i;
    struct qk_plan plan = {j->g, j->plan, n, order, j->qp, j->codes};
    char who[128];
    snprintf(who, sizeof who, "backend '%s'", j->backend->name);
    host_ctx hc;
    host_ctx_init(&hc, who, j->g, err);
    hc.host.plan = plan_api();
    qk_params *opts = host_params_new(&j->cfg->backend_options.value, err);
    const qk_backend_vtable *bv = j->backend->vtable;
    err->code = 0;
    int rc = opts ? bv->emit(&hc.host, (qk_graph *)j->g, &plan, opts) : QK_ENOMEM;
    host_params_free(opts);
    free(order);
    if (rc == QK_ENOMEM && !err->code) return qk_fail(err, rc, "out of memory");
    if (rc) return err->code ? rc : qk_fail(err, rc, "%s: emit failed (status %d)", who, rc);
    rc = ir_compact(j->g, err);
    if (!rc) {
        ir_drop_unused_initializers(j->g);
        rc = ir_infer(j->g, err);
    }
    if (rc) return qk_fail(err, rc, "%s wrote a graph quantkit cannot use: %s", who, err->msg);
    return QK_OK;
}

/* ---- SQNR against the float model on the calibration data ------------------- */

/* The float side keeps, for the current batch only, every planned
 * activation; the quantized side compares its value of the same name (the
 * backend keeps names: the dequantized tensor carries the float one's). */
typedef struct sqnr_pass {
    ptq_job *j;
    const ir_graph *ref, *q;
    int *entry_of_ref;   /* ref value -> plan entry, -1 */
    int *entry_of_q;     /* quantized value -> plan entry, -1 */
    xt *cache;           /* per plan entry, data owned */
} sqnr_pass;

static int *map_entries(ptq_job *j, const ir_graph *g)
{
    int *m = malloc(((size_t)g->n_values + 1) * sizeof *m);
    if (!m) return NULL;
    for (int v = 0; v < g->n_values; v++) m[v] = -1;
    for (int i = 0; i < j->plan->n; i++) {
        if (j->plan->entries[i].role != PLAN_ACTIVATION) continue;
        int v = ir_find_value(g, vname(j, i));
        if (v >= 0 && !g->values[v].is_input) m[v] = i;
    }
    return m;
}

static int keep_ref(void *arg, int value, const xt *t)
{
    sqnr_pass *s = arg;
    int i = s->entry_of_ref[value];
    if (i < 0 || t->dtype != DT_FLOAT) return QK_OK;
    xt *c = &s->cache[i];
    int64_t bytes = xt_nbytes(t);
    void *d = realloc(c->data, (size_t)(bytes ? bytes : 1));
    if (!d) return QK_ENOMEM;
    *c = *t;
    c->data = d;
    memcpy(d, t->data, (size_t)bytes);
    return QK_OK;
}

static int compare_q(void *arg, int value, const xt *t)
{
    sqnr_pass *s = arg;
    int i = s->entry_of_q[value];
    if (i < 0 || t->dtype != DT_FLOAT || !s->cache[i].data || xt_numel(&s->cache[i]) != xt_numel(t)) return QK_OK;
    sqnr_add(&s->j->sqnr[i], s->cache[i].data, t->data, xt_numel(t));
    return QK_OK;
}

/* Graph inputs are not computed by any node: their noise is the rounding of
 * the input itself. */
static void input_sqnr(ptq_job *j, int v_input, const xt *x)
{
    int i = plan_find(j->plan, v_input);
    if (i < 0 || x->dtype != DT_FLOAT) return;
    const qk_qparams *q = &j->qp[plan_group(j->plan, i)];
    if (!q->scale) return;
    const float *p = x->data;
    float buf[256];
    for (int64_t k = 0, n = xt_numel(x); k < n; k += 256) {
        int64_t m = n - k < 256 ? n - k : 256;
        for (int64_t t = 0; t < m; t++)
            buf[t] = qk_dequantize_one(qk_quantize_one(p[k + t], q->scale[0], q->zero_point[0], q->qmin, q->qmax),
                                       q->scale[0], q->zero_point[0]);
        sqnr_add(&j->sqnr[i], p + k, buf, m);
    }
}

static int measure_sqnr(ptq_job *j, qk_err *err)
{
    if (!j->have_data) return QK_OK;
    /* The float reference: the same model through the same fusions, so
     * value names match the plan's. */
    ir_graph *ref = NULL;
    executor *er = NULL, *eq = NULL;
    sqnr_pass s = {j, NULL, j->g, NULL, NULL, NULL};
    int rc = onnx_load(j->o->model, &ref, err);
    if (!rc) rc = fusion_pass_run(j->reg, ref, j->cfg, j->backend->vtable, NULL, err);
    if (!rc) rc = exec_new(ref, j->o->threads, &er, err);
    if (!rc) rc = exec_new(j->g, j->o->threads, &eq, err);
    s.ref = ref;
    if (!rc) {
        s.entry_of_ref = map_entries(j, ref);
        s.entry_of_q = map_entries(j, j->g);
        s.cache = calloc((size_t)j->plan->n, sizeof *s.cache);
        j->n_outputs = j->g->n_outputs;
        j->output_sqnr = calloc((size_t)j->n_outputs + 1, sizeof *j->output_sqnr);
        j->output_names = calloc((size_t)j->n_outputs + 1, sizeof *j->output_names);
        if (!s.entry_of_ref || !s.entry_of_q || !s.cache || !j->output_sqnr || !j->output_names)
            rc = qk_fail(err, QK_ENOMEM, "out of memory");
        for (int k = 0; k < j->n_outputs && !rc; k++)
            if (!(j->output_names[k] = strdup(j->g->values[j->g->outputs[k]].name)))
                rc = qk_fail(err, QK_ENOMEM, "out of memory");
    }
    int64_t total = data_set_samples(&j->ds), bn = j->cfg->calibration.batch_num.value;
    if (bn > 0 && bn * j->batch < total) total = bn * j->batch;
    xt *in = calloc((size_t)j->ds.n + 1, sizeof *in);
    xt *out_r = calloc((size_t)(ref ? ref->n_outputs : 0) + 1, sizeof *out_r), *out_q = calloc((size_t)j->g->n_outputs + 1, sizeof *out_q);
    if (!rc && (!in || !out_r || !out_q)) rc = qk_fail(err, QK_ENOMEM, "out of memory");
    if (!rc) {
        exec_set_observer(er, keep_ref, &s);
        exec_set_observer(eq, compare_q, &s);
    }
    for (int64_t b = 0; b < total && !rc; b += j->batch) {
        int64_t cnt = total - b < j->batch ? total - b : j->batch;
        for (int i = 0; i < j->ds.n; i++) {
            in[i] = data_set_slice(&j->ds, i, b, cnt);
            input_sqnr(j, j->g->inputs[i], &in[i]);
        }
        rc = exec_run(er, in, out_r, err);
        if (!rc && (rc = exec_run(eq, in, out_q, err))) {
            for (int k = 0; k < ref->n_outputs; k++) free(out_r[k].data);
            break;
        }
        for (int k = 0; k < j->n_outputs && !rc; k++) {
            if (k < ref->n_outputs && out_r[k].dtype == DT_FLOAT && out_q[k].dtype == DT_FLOAT &&
                xt_numel(&out_r[k]) == xt_numel(&out_q[k]))
                sqnr_add(&j->output_sqnr[k], out_r[k].data, out_q[k].data, xt_numel(&out_r[k]));
        }
        data_set_release(&j->ds, b, cnt);
        for (int k = 0; !rc && k < ref->n_outputs; k++) free(out_r[k].data);
        for (int k = 0; !rc && k < j->g->n_outputs; k++) free(out_q[k].data);
    }
    if (rc) rc = qk_fail(err, rc, "measuring SQNR on the quantized model: %s", err->msg);
    if (s.cache)
        for (int i = 0; i < j->plan->n; i++) free(s.cache[i].data);
    free(s.cache);
    free(s.entry_of_ref);
    free(s.entry_of_q);
    free(in);
    free(out_r);
    free(out_q);
    exec_free(er);
    exec_free(eq);
    ir_free(ref);
    return rc;
}

/* ---- report, record, summary ------------------------------------------------ */

static char *dup_s(const char *s) { return s ? strdup(s) : NULL; }

static void *dup_mem(const void *p, size_t n)
{
    void *d = p && n ? malloc(n) : NULL;
    if (d) memcpy(d, p, n);
    return d;
}

/* The most specific rule that set any field of the tensor's rule: what an
 * engineer should edit to change it. */
static const cfg_source *deciding_source(const qk_resolved_tensor *r)
{
    const cfg_source *all[] = {&r->observer_from, &r->bits_from, &r->symmetric_from, &r->per_channel_from,
                               &r->quantizer_from};
    const cfg_source *best = all[0];
    int best_rank = -1;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        const char *l = all[k]->rule ? all[k]->rule : "default";
        int rank = !strncmp(l, "nodes.", 6) ? 3 : !strncmp(l, "op_types.", 9) ? 2 : !strcmp(l, "global") ? 1 : 0;
        if (rank > best_rank) best = all[k], best_rank = rank;
    }
    return best;
}

static quant_report *build_report(ptq_job *j, double total_seconds)
{
    quant_report *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    const ptq_options *o = j->o;
    r->model = dup_s(o->model);
    r->output = dup_s(o->output);
    r->config = dup_s(o->config);
    r->backend = dup_s(j->backend->name);
    r->record_from = dup_s(o->record_in);
    r->fusions = j->fusions;
    r->calib_images = j->cal ? calib_images(j->cal) : 0;
    r->calib_batches = j->cal ? calib_batches(j->cal) : 0;
    r->calib_seconds = j->cal ? calib_seconds(j->cal) : 0;
    r->total_seconds = total_seconds;
    r->tensors = calloc((size_t)j->plan->n + 1, sizeof *r->tensors);
    r->outputs = calloc((size_t)j->n_outputs + 1, sizeof *r->outputs);
    if (!r->tensors || !r->outputs) {
        report_free(r);
        return NULL;
    }
    for (int i = 0; i < j->plan->n; i++) {
        const plan_entry *e = &j->plan->entries[i];
        const qk_qparams *q = &j->qp[i];
        if (!q->scale) continue;   /* a bias left float */
        report_tensor *t = &r->tensors[r->n_tensors++];
        char rule[256];
        cfg_source_str(deciding_source(e->rule), rule, sizeof rule);
        t->name = dup_s(vname(j, i));
        t->node = dup_s(j->entry_node[i]);
        t->op_type = dup_s(j->entry_op[i]);
        t->role = e->role == PLAN_WEIGHT ? "weight" : e->role == PLAN_BIAS ? "bias" : "activation";
        t->rule = dup_s(rule);
        t->observer = e->role == PLAN_BIAS ? NULL : dup_s(e->rule->observer);
        t->quantizer = e->role == PLAN_WEIGHT ? dup_s(e->rule->quantizer ? e->rule->quantizer : "round") : NULL;
        int gi = plan_group(j->plan, i);
        t->shares_with = gi != i ? dup_s(vname(j, gi)) : NULL;
        t->bits = e->role == PLAN_BIAS ? 32 : e->rule->bits;
        t->symmetric = e->role == PLAN_BIAS || e->rule->symmetric;
        t->axis = q->axis;
        t->channels = q->count;
        int ri = j->lo[i] ? i : j->lo[gi] ? gi : -1;
        if (ri >= 0) {
            t->lo = dup_mem(j->lo[ri], (size_t)j->range_channels[ri] * sizeof(float));
            t->hi = dup_mem(j->hi[ri], (size_t)j->range_channels[ri] * sizeof(float));
        }
        t->scale = dup_mem(q->scale, (size_t)q->count * sizeof(float));
        t->zero_point = dup_mem(q->zero_point, (size_t)q->count * sizeof(int32_t));
        t->qmin = q->qmin;
        t->qmax = q->qmax;
        t->sqnr_db = sqnr_db(&j->sqnr[i]);
    }
    for (int k = 0; k < j->n_outputs; k++) {
        r->outputs[r->n_outputs].name = dup_s(j->output_names[k]);
        r->outputs[r->n_outputs++].sqnr_db = sqnr_db(&j->output_sqnr[k]);
    }
    return r;
}

static void free_job(ptq_job *j)
{
    int n = j->plan ? j->plan->n : 0;
    for (int i = 0; i < n; i++) {
        if (j->qp) qparams_free(&j->qp[i]);
        if (j->codes) free(j->codes[i]);
        if (j->lo) free(j->lo[i]);
        if (j->hi) free(j->hi[i]);
        if (j->entry_node) free(j->entry_node[i]);
        if (j->entry_op) free(j->entry_op[i]);
    }
    for (int k = 0; j->output_names && k < j->n_outputs; k++) free(j->output_names[k]);
    free(j->output_names);
    free(j->output_sqnr);
    free(j->entry_node);
    free(j->entry_op);
    free(j->qp);
    free(j->codes);
    free(j->lo);
    free(j->hi);
    free(j->range_channels);
    free(j->sqnr);
    record_free(j->rec);
    calib_free(j->cal);
    data_set_free(&j->ds);
    plan_free(j->plan);
    registry_free(j->reg);
    ir_free(j->g);
    config_free(j->cfg);
}

/* The model is written first: a report or record describing a model that
 * was not written would mislead. */
static int write_outputs(ptq_job *j, quant_report *r, qk_err *err)
{
    const ptq_options *o = j->o;
    int rc = onnx_save(j->g, o->output, err);
    if (!rc && o->record_out) rc = record_write(o->record_out, o->model, j->g, j->plan, j->qp, err);
    if (!rc && o->report_json) rc = report_write_json(r, o->report_json, err);
    if (!rc && o->report_html) rc = report_write_html(r, o->report_html, err);
    return rc;
}

static void print_summary(const ptq_job *j, const quant_report *r)
{
    int acts = 0, weights = 0, biases = 0;
    const report_tensor *worst = NULL;
    for (int i = 0; i < r->n_tensors; i++) {
        const report_tensor *t = &r->tensors[i];
        acts += t->role[0] == 'a';
        weights += t->role[0] == 'w';
        biases += t->role[0] == 'b';
        if (t->role[0] != 'b' && !isnan(t->sqnr_db) && (!worst || t->sqnr_db < worst->sqnr_db)) worst = t;
    }
    double ips = r->calib_seconds > 0 ? r->calib_images / r->calib_seconds : 0;
    if (!j->o->quiet) {
        fprintf(stderr, "quantize: %s -> %s (backend %s): %d activations, %d weights, %d int32 biases, %d fusions\n",
                r->model, r->output, r->backend, acts, weights, biases, r->fusions);
        if (r->record_from) fprintf(stderr, "quantize: scales from record %s (no calibration)\n", r->record_from);
        else fprintf(stderr, "quantize: calibration %lld images in %d batches, %.1f images/s\n",
                     (long long)r->calib_images, r->calib_batches, ips);
        for (int k = 0; k < r->n_outputs; k++)
            fprintf(stderr, "quantize: output '%s' SQNR %.2f dB vs float\n", r->outputs[k].name, r->outputs[k].sqnr_db);
        if (worst) fprintf(stderr, "quantize: lowest SQNR %.2f dB at %s '%s'\n", worst->sqnr_db, worst->role, worst->name);
    }
    printf("{\"output\":\"%s\",\"tensors\":%d,\"calib_images\":%lld,\"calib_images_per_s\":%.2f,\"seconds\":%.3f",
           r->output, r->n_tensors, (long long)r->calib_images, ips, r->total_seconds);
    if (r->n_outputs && isfinite(r->outputs[0].sqnr_db)) printf(",\"sqnr_db\":%.3f", r->outputs[0].sqnr_db);
    printf("}\n");
}

int ptq_run(const ptq_options *o, qk_err *err)
{
    ptq_job j = {.o = o, .t_start = now_s()};
    quant_report *r = NULL;
    int rc = load_and_plan(&j, err);
    if (!rc) rc = load_data(&j, err);
    if (!rc) rc = o->record_in ? activations_from_record(&j, err) : calibrate(&j, err);
    if (!rc) rc = share_group_params(&j, err);
    if (!rc) rc = quantize_weights(&j, err);
    if (!rc) rc = quantize_biases(&j, err);
    if (!rc) rc = emit(&j, err);
    if (!rc && (o->report_json || o->report_html || !o->quiet)) rc = measure_sqnr(&j, err);
    if (!rc && !(r = build_report(&j, now_s() - j.t_start))) rc = qk_fail(err, QK_ENOMEM, "out of memory");
    if (!rc) rc = write_outputs(&j, r, err);
    if (!rc) print_summary(&j, r);
    report_free(r);
    free_job(&j);
    return rc;
}
