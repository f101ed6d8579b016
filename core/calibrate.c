/* This file implements the calibration driver (see calibrate.h). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "calibrate.h"
#include "host.h"

/* Observing is split over the executor's threads (between kernels, while
 * its pool would idle) for order-free observers (QK_OBSERVER_SHARDABLE):
 * thread k > 0 folds its parts of a tensor into a state of its own,
 * shard[k], thread 0 into the slot's state, and the shards are merged into
 * that state when calib_run ends -- the same range as one sequential run,
 * by the flag's promise.  A tensor is split into samples (axis 0), or for a
 * per-tensor spec into contiguous runs; other observers (moving_average,
 * whose average follows the batch order) see every tensor whole, on the
 * calling thread. */

/* A part has at least this many values: an observe() call has a fixed
 * cost (a histogram adds its scratch counts into its bins), and waking
 * the pool for less would cost more than it saves. */
#define SPLIT_PART_VALUES 8192
/* Parts per thread: the pool hands them out as threads come free, so a
 * thread that starts late (the machine is shared) is made up for. */
#define SPLIT_PARTS_PER_THREAD 4

typedef struct calib_slot {
    int entry;                      /* the group's plan entry */
    const qk_observer_vtable *vt;
    void *state;
    host_ctx hc;
    char who[192];
    int shardable;                  /* vt has QK_OBSERVER_SHARDABLE */
    int extremes;                   /* ... QK_OBSERVER_EXTREMES */
    int per_channel, axis;          /* the spec's */
    void **shard;                   /* during calib_run: per thread (0 unused), or NULL */
    host_ctx *shard_hc;             /* their host contexts */
} calib_slot;

struct calibrator {
    ir_graph *g;
    const quant_plan *plan;
    int n_slots;
    calib_slot *slots;
    int *slot_of_value;             /* value -> slot, -1 when not observed */
    qk_err err;                     /* where observers report */
    threadpool *pool;               /* during calib_run: the executor's, NULL for one thread */
    int n_threads;
    int parts_ok;                   /* during calib_run: shardable observers may take values in parts */
    qk_err *thread_err;             /* per thread: where shard k's observers report */
    int *thread_rc;                 /* per thread: its first failure in a split */
    int64_t images;
    int batches;
    double seconds;
};

qk_quant_spec calib_spec_of(const plan_entry *e)
{
    const qk_resolved_tensor *r = e->rule;
    int weight = e->role != PLAN_ACTIVATION;
    return (qk_quant_spec){
        .size = sizeof(qk_quant_spec),
        .bits = e->role == PLAN_BIAS ? 32 : r->bits,
        .symmetric = r->symmetric || e->role == PLAN_BIAS,
        /* Weights are signed (int8, int4); activations signed only when
         * symmetric, else uint8 as ONNX Runtime and most NPUs expect. */
        .is_signed = weight || r->symmetric,
        .narrow_range = weight && r->symmetric,
        .per_channel = e->axis >= 0,
        .axis = e->axis >= 0 ? e->axis : 0,
        .is_weight = weight,
    };
}

/* Creates a state of s's observer for entry e, reporting through hc (whose
 * err is err). */
static int create_state(const calib_slot *s, const plan_entry *e, host_ctx *hc, void **state, qk_err *err)
{
    qk_params *args = host_params_new(e->rule->observer_args, err);
    if (!args) return qk_fail(err, QK_ENOMEM, "out of memory");
    qk_quant_spec spec = calib_spec_of(e);
    err->code = 0;
    int rc = s->vt->create(&hc->host, args, &spec, state);
    host_params_free(args);
    if (rc && !err->code) qk_fail(err, rc, "%s: could not be created", s->who);
    return rc;
}

/* Loads the observer named by e's rule and creates its state. */
static int make_observer(registry *reg, const ir_graph *g, const plan_entry *e, calib_slot *s, qk_err *err)
{
    const qk_plugin_descriptor *d;
    int rc = registry_get(reg, QK_PLUGIN_OBSERVER, e->rule->observer, &d, err);
    if (rc) return rc;
    s->vt = d->vtable;
    /* A vtable from before ABI 1.2 ends before `flags`. */
    unsigned flags = s->vt->size >= offsetof(qk_observer_vtable, flags) + sizeof s->vt->flags ? s->vt->flags : 0;
    s->shardable = (flags & QK_OBSERVER_SHARDABLE) != 0;
    s->extremes = (flags & QK_OBSERVER_EXTREMES) != 0;
    qk_quant_spec spec = calib_spec_of(e);
    s->per_channel = spec.per_channel;
    s->axis = spec.axis;
    snprintf(s->who, sizeof s->who, "observer '%s' on tensor '%s'", d->name, g->values[e->value].name);
    host_ctx_init(&s->hc, s->who, (ir_graph *)g, err);
    return create_state(s, e, &s->hc, &s->state, err);
}

int calib_new(registry *reg, ir_graph *g, const quant_plan *p, calibrator **out, qk_err *err)
{
    *out = NULL;
    calibrator *c = calloc(1, sizeof *c);
    if (!c) return qk_fail(err, QK_ENOMEM, "out of memory");
    c->g = g;
    c->plan = p;
    c->n_threads = 1;
    c->slots = calloc((size_t)p->n + 1, sizeof *c->slots);
    c->slot_of_value = malloc(((size_t)g->n_values + 1) * sizeof *c->slot_of_value);
    if (!c->slots || !c->slot_of_value) {
        calib_free(c);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    for (int v = 0; v < g->n_values; v++) c->slot_of_value[v] = -1;
    int *slot_of_group = malloc(((size_t)p->n + 1) * sizeof *slot_of_group);
    if (!slot_of_group) {
        calib_free(c);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    int rc = QK_OK;
    for (int i = 0; i < p->n && rc == QK_OK; i++) slot_of_group[i] = -1;
    for (int i = 0; i < p->n && rc == QK_OK; i++) {
        const plan_entry *e = &p->entries[i];
        if (e->role != PLAN_ACTIVATION) continue;
        int gi = plan_group(p, i);
        if (slot_of_group[gi] < 0) {
            calib_slot *s = &c->slots[c->n_slots];
            s->entry = gi;
            rc = make_observer(reg, g, &p->entries[gi], s, &c->err);
            if (rc) {
                *err = c->err;
                break;
            }
            /* The context must report into the calibrator from now on. */
            s->hc.err = &c->err;
            slot_of_group[gi] = c->n_slots++;
        }
        c->slot_of_value[e->value] = slot_of_group[gi];
    }
    free(slot_of_group);
    if (rc) {
        calib_free(c);
        return rc;
    }
    *out = c;
    return QK_OK;
}

/* Destroys the shard states (merged or not). */
static void shards_free(calibrator *c)
{
    for (int i = 0; i < c->n_slots; i++) {
        calib_slot *s = &c->slots[i];
        for (int k = 1; s->shard && k < c->n_threads; k++) s->vt->destroy(s->shard[k]);
        free(s->shard);
        free(s->shard_hc);
        s->shard = NULL;
        s->shard_hc = NULL;
    }
    free(c->thread_err);
    free(c->thread_rc);
    c->thread_err = NULL;
    c->thread_rc = NULL;
    c->pool = NULL;
    c->n_threads = 1;
    c->parts_ok = 0;
}

/* Gives every shardable slot a state per thread of pool (see the top). */
static int shards_new(calibrator *c, threadpool *pool, qk_err *err)
{
    c->pool = pool;
    c->n_threads = tp_nthreads(pool);
    /* QK_CALIB_SPLIT=0: every tensor whole on the calling thread, the
     * reference the tests compare the split with. */
    const char *split = getenv("QK_CALIB_SPLIT");
    c->parts_ok = !(split && !strcmp(split, "0"));
    if (!pool || c->n_threads < 2 || !c->parts_ok) {
        c->pool = NULL;
        c->n_threads = 1;
        return QK_OK;
    }
    c->thread_err = calloc((size_t)c->n_threads, sizeof *c->thread_err);
    c->thread_rc = calloc((size_t)c->n_threads, sizeof *c->thread_rc);
    if (!c->thread_err || !c->thread_rc) goto oom;
    for (int i = 0; i < c->n_slots; i++) {
        calib_slot *s = &c->slots[i];
        if (!s->shardable) continue;
        s->shard = calloc((size_t)c->n_threads, sizeof *s->shard);
        s->shard_hc = calloc((size_t)c->n_threads, sizeof *s->shard_hc);
        if (!s->shard || !s->shard_hc) goto oom;
        const plan_entry *e = &c->plan->entries[s->entry];
        for (int k = 1; k < c->n_threads; k++) {
            host_ctx_init(&s->shard_hc[k], s->who, c->g, err);
            int rc = create_state(s, e, &s->shard_hc[k], &s->shard[k], err);
            s->shard_hc[k].err = &c->thread_err[k];
            if (rc) {
                shards_free(c);
                return rc;
            }
        }
    }
    return QK_OK;
oom:
    shards_free(c);
    return qk_fail(err, QK_ENOMEM, "out of memory");
}

/* Merges every shard into its slot's state, then frees the shards. */
static int shards_merge(calibrator *c, qk_err *err)
{
    int rc = QK_OK;
    for (int i = 0; i < c->n_slots && rc == QK_OK; i++) {
        calib_slot *s = &c->slots[i];
        for (int k = 1; s->shard && k < c->n_threads && rc == QK_OK; k++) {
            c->err.code = 0;
            if ((rc = s->vt->merge(s->state, s->shard[k]))) {
                if (c->err.code) *err = c->err;
                else qk_fail(err, rc, "%s: merging the threads' observations failed (status %d)", s->who, rc);
            }
        }
    }
    shards_free(c);
    return rc;
}

void calib_free(calibrator *c)
{
    if (!c) return;
    shards_free(c);
    for (int i = 0; i < c->n_slots; i++)
        if (c->slots[i].vt) c->slots[i].vt->destroy(c->slots[i].state);
    free(c->slots);
    free(c->slot_of_value);
    free(c);
}

/* How many parts tensor t of slot s is observed in (1: whole). */
static int split_parts(const calibrator *c, const calib_slot *s, const xt *t)
{
    if (!s->shard || t->dtype != DT_FLOAT || t->rank < 1 || !t->data) return 1;
    int64_t parts = xt_numel(t) / SPLIT_PART_VALUES, most = (int64_t)c->n_threads * SPLIT_PARTS_PER_THREAD;
    if (parts > most) parts = most;
    if (parts < 2) return 1;
    if (!s->per_channel) return (int)parts;
    /* Per channel: by samples, which keeps every channel whole -- unless
     * the channels are the samples. */
    int a = s->axis < 0 ? s->axis + t->rank : s->axis;
    if (a <= 0 || a >= t->rank || t->dims[0] < 2) return 1;
    return t->dims[0] < parts ? (int)t->dims[0] : (int)parts;
}

typedef struct split_job {
    calibrator *c;
    calib_slot *slot;
    const xt *t;
    const char *name;
    int parts;
    int *rc;                        /* per thread: first failure */
} split_job;

/* Part k of j's tensor: samples [n k / parts, n (k + 1) / parts) of axis
 * 0, or per tensor that share of the values as a 1-D run (cut at multiples
 * of 16 values, whole vectors for the observers' scans). */
static xt split_part(const split_job *j, int64_t k)
{
    xt v = *j->t;
    if (!j->slot->per_channel) {
        int64_t n = xt_numel(j->t);
        int64_t lo = k ? (n * k / j->parts) & ~(int64_t)15 : 0;
        int64_t hi = k + 1 < j->parts ? (n * (k + 1) / j->parts) & ~(int64_t)15 : n;
        v.rank = 1;
        v.dims[0] = hi - lo;
        v.data = (float *)j->t->data + lo;
        return v;
    }
    int64_t n = j->t->dims[0], s0 = n * k / j->parts, s1 = n * (k + 1) / j->parts;
    v.dims[0] = s1 - s0;
    v.data = (char *)j->t->data + (xt_nbytes(j->t) / n) * s0;
    return v;
}

/* Observes t (all of value `name`, or a part of it) into slot s's state
 * for pool thread tid (0: its main state), failures reported where that
 * thread's observers report. */
static int observe_on(calibrator *c, calib_slot *s, int tid, const xt *t, const char *name)
{
    qk_err *err = tid ? &c->thread_err[tid] : &c->err;
    struct qk_tensor view = host_tensor_view(t, name);
    err->code = 0;
    int rc = s->vt->observe(tid ? s->shard[tid] : s->state, &view);
    if (rc && !err->code) qk_fail(err, rc, "%s: observe failed (status %d)", s->who, rc);
    return rc;
}

static void split_task(void *arg, int64_t begin, int64_t end, int tid)
{
    split_job *j = arg;
    for (int64_t k = begin; k < end && !j->rc[tid]; k++) {
        xt part = split_part(j, k);
        j->rc[tid] = observe_on(j->c, j->slot, tid, &part, j->name);
    }
}

static int observe_value(void *arg, int value, const xt *t)
{
    calibrator *c = arg;
    int s = c->slot_of_value[value];
    if (s < 0) return QK_OK;
    calib_slot *slot = &c->slots[s];
    int parts = split_parts(c, slot, t);
    if (parts > 1) {
        split_job j = {c, slot, t, c->g->values[value].name, parts, c->thread_rc};
        memset(c->thread_rc, 0, (size_t)c->n_threads * sizeof *c->thread_rc);
        tp_parallel_for(c->pool, parts, 1, split_task, &j);
        for (int k = 0; k < c->n_threads; k++)
            if (c->thread_rc[k]) {
                if (k) c->err = c->thread_err[k];
                return c->thread_rc[k];
            }
        return QK_OK;
    }
    return observe_on(c, slot, 0, t, c->g->values[value].name);
}

/* A part of a value from the executor (exec_set_observed_by_part), on
 * pool thread tid: into that thread's state, as split_task's parts. */
static int observe_part(void *arg, int value, int tid, const xt *part)
{
    calibrator *c = arg;
    return observe_on(c, &c->slots[c->slot_of_value[value]], tid, part, c->g->values[value].name);
}

/* Whether x[0..n) holds a NaN or an infinity.  Branch-free over blocks
 * of a fixed size so that the compiler vectorizes it: the loop with an
 * early exit on isfinite() was not, and cost a few percent of calibration. */
static int any_non_finite(const float *x, int64_t n)
{
    enum { BLOCK = 1024 };
    int64_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        uint32_t bad = 0;
        for (int k = 0; k < BLOCK; k++) {
            uint32_t u;
            memcpy(&u, &x[i + k], sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;   /* all exponent bits set */
        }
        if (bad) return 1;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) return 1;
    return 0;
}

/* Calibration data with NaN or infinities would silently poison every
 * range downstream; refuse it with the place it was found. */
static int check_finite(const xt *t, const char *input, int64_t first_sample, qk_err *err)
{
    if (t->dtype != DT_FLOAT) return QK_OK;
    int64_t n = xt_numel(t), per = t->rank >= 1 && t->dims[0] ? n / t->dims[0] : n;
    const float *x = t->data;
    if (!any_non_finite(x, n)) return QK_OK;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return qk_fail(err, QK_EINVAL, "calibration data for input '%s': sample %lld holds %s", input,
                           (long long)(first_sample + (per ? i / per : 0)), isnan(x[i]) ? "NaN" : "an infinity");
    return QK_OK;
}

/* Whether every observer may take the sample passes' values one sample at
 * a time (exec_set_observed_by_sample): order-free, or (with `extremes`:
 * its values are EXEC_EXTREMES) taking only a batch's extremes, which the
 * executor then gathers over the passes; and no per-channel spec whose
 * channels are the samples. */
static int observable_by_sample(const calibrator *c, int extremes)
{
    for (int i = 0; i < c->n_slots; i++) {
        const calib_slot *s = &c->slots[i];
        int rank = c->g->values[c->plan->entries[s->entry].value].t.rank;
        if (!s->shardable && !(extremes && s->extremes && !s->per_channel)) return 0;
        if (s->per_channel && (s->axis == 0 || (s->axis < 0 && (rank < 0 || s->axis + rank <= 0)))) return 0;
    }
    return 1;
}

static void progress(int done, int total, int64_t images, double secs)
{
    int width = 30, fill = total ? done * width / total : width;
    fprintf(stderr, "\rcalibrating [%.*s%*s] %d/%d batches, %.1f images/s", fill,
            "##############################", width - fill, "", done, total, secs > 0 ? images / secs : 0.0);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

int calib_run(calibrator *c, executor *e, const data_set *ds, int64_t batch, int64_t batch_num, qk_err *err)
{
    int64_t total = data_set_samples(ds);
    if (batch_num > 0 && batch_num * batch < total) total = batch_num * batch;
    if (total <= 0) return qk_fail(err, QK_EINVAL, "calibration data holds no samples");
    int n_batches = (int)((total + batch - 1) / batch);
    xt *in = calloc((size_t)ds->n + 1, sizeof *in);
    xt *outs = calloc((size_t)c->g->n_outputs + 1, sizeof *outs);
    if (!in || !outs) {
        free(in);
        free(outs);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    int tty = isatty(2), rc = QK_OK;
    double t0 = now_s();
    exec_set_observer(e, observe_value, c);
    /* Only planned values need to exist as tensors: the executor may fuse
     * through the rest (Conv -> Relu inside a fused group, say). */
    char *want = malloc((size_t)c->g->n_values + 1);
    if (want) {
        for (int v = 0; v < c->g->n_values; v++) want[v] = c->slot_of_value[v] >= 0;
        exec_set_observed(e, want);
    }
    rc = shards_new(c, exec_threadpool(e), err);
    /* Values of order-free per-tensor observers may come in parts, each
     * part into the state of the thread it is observed on -- or as its
     * extremes for observers that need no more, which also take a whole
     * batch so when not order-free (QK_CALIB_EXTREMES=0: the values
     * always, the reference the tests compare with). */
    char *by_part = malloc((size_t)c->g->n_values + 1);
    const char *ext_env = getenv("QK_CALIB_EXTREMES");
    int ext_ok = !(ext_env && !strcmp(ext_env, "0"));
    if (by_part && rc == QK_OK && c->parts_ok) {
        for (int v = 0; v < c->g->n_values; v++) {
            const calib_slot *sl = c->slot_of_value[v] >= 0 ? &c->slots[c->slot_of_value[v]] : NULL;
            int extremes = sl && sl->extremes && !sl->per_channel && ext_ok;
            if (sl && sl->shardable && !sl->per_channel && (c->n_threads == 1 || sl->shard))
                by_part[v] = extremes ? EXEC_BY_EXTREMES : EXEC_BY_PART;
            else
                by_part[v] = extremes && !sl->shardable ? EXEC_EXTREMES : EXEC_WHOLE;
        }
        rc = exec_set_observed_by_part(e, observe_part, by_part, err);
    }
    exec_set_observed_by_sample(e, observable_by_sample(c, by_part && rc == QK_OK && c->parts_ok && ext_ok));
    for (int64_t s = 0; s < total && rc == QK_OK; s += batch) {
        int64_t cnt = total - s < batch ? total - s : batch;
        for (int i = 0; i < ds->n && rc == QK_OK; i++) {
            in[i] = data_set_slice(ds, i, s, cnt);
            rc = check_finite(&in[i], ds->names[i], s, err);
            int v = c->g->inputs[i];
            if (rc == QK_OK && c->slot_of_value[v] >= 0 && (rc = observe_value(c, v, &in[i]))) *err = c->err;
        }
        if (rc) break;
        c->err.code = 0;
        for (int k = 1; c->thread_err && k < c->n_threads; k++) c->thread_err[k].code = 0;
        rc = exec_run(e, in, outs, err);
        if (rc && c->err.code) *err = c->err;   /* an observer stopped the run */
        for (int k = 1; rc && !c->err.code && c->thread_err && k < c->n_threads; k++)
            if (c->thread_err[k].code) {
                *err = c->thread_err[k];   /* ... on another thread */
                break;
            }
        for (int j = 0; j < c->g->n_outputs && rc == QK_OK; j++) free(outs[j].data);
        data_set_release(ds, s, cnt);
        if (rc) break;
        c->images += cnt;
        c->batches++;
        if (tty) progress(c->batches, n_batches, c->images, now_s() - t0);
    }
    exec_set_observer(e, NULL, NULL);
    exec_set_observed(e, NULL);
    free(want);
    free(by_part);
    if (rc == QK_OK) rc = shards_merge(c, err);
    else shards_free(c);
    c->seconds += now_s() - t0;
    free(in);
    free(outs);
    return rc;
}

/* Asks an observer for its range (channels taken from the observed tensor's
 * shape by the caller). */
static int ask_range(const calib_slot *s, const qk_quant_spec *spec, int64_t channels, float **lo, float **hi,
                     qk_err *own, qk_err *err)
{
    *lo = malloc((size_t)channels * sizeof **lo);
    *hi = malloc((size_t)channels * sizeof **hi);
    if (!*lo || !*hi) {
        free(*lo);
        free(*hi);
        *lo = *hi = NULL;
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    own->code = 0;
    int rc = s->vt->range(s->state, channels, *lo, *hi);
    if (rc) {
        if (own->code) *err = *own;
        else qk_fail(err, rc, "%s: no range (status %d)", s->who, rc);
        free(*lo);
        free(*hi);
        *lo = *hi = NULL;
    }
    return rc;
}

int calib_range(calibrator *c, int entry, int64_t *channels, float **lo, float **hi, qk_err *err)
{
    int gi = plan_group(c->plan, entry);
    for (int i = 0; i < c->n_slots; i++) {
        if (c->slots[i].entry != gi) continue;
        qk_quant_spec spec = calib_spec_of(&c->plan->entries[gi]);
        *channels = 1;
        return ask_range(&c->slots[i], &spec, 1, lo, hi, &c->err, err);
    }
    return qk_fail(err, QK_EINVAL, "tensor '%s' was not observed", c->g->values[c->plan->entries[entry].value].name);
}

int64_t calib_images(const calibrator *c) { return c->images; }
int calib_batches(const calibrator *c) { return c->batches; }
double calib_seconds(const calibrator *c) { return c->seconds; }

int observe_once(registry *reg, const ir_graph *g, const plan_entry *e, const xt *t, const char *name,
                 int64_t *channels, float **lo, float **hi, qk_err *err)
{
    calib_slot s = {0};
    qk_err own = {0};
    int rc = make_observer(reg, g, e, &s, &own);
    if (rc) {
        *err = own;
        return rc;
    }
    qk_quant_spec spec = calib_spec_of(e);
    *channels = 1;
    if (spec.per_channel) {
        if (spec.axis >= t->rank) {
            s.vt->destroy(s.state);
            return qk_fail(err, QK_EINVAL, "tensor '%s': channel axis %d out of range for rank %d", name, spec.axis,
                           t->rank);
        }
        *channels = t->dims[spec.axis];
    }
    struct qk_tensor view = host_tensor_view(t, name);
    own.code = 0;
    rc = s.vt->observe(s.state, &view);
    if (rc) {
        if (own.code) *err = own;
        else qk_fail(err, rc, "%s: observe failed (status %d)", s.who, rc);
    } else {
        rc = ask_range(&s, &spec, *channels, lo, hi, &own, err);
    }
    s.vt->destroy(s.state);
    return rc;
}
