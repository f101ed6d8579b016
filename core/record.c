/* This file implements record files (see record.h).  Writing is plain
 * formatted output (the layout is fixed and small); reading goes through
 * libyaml's document loader so any valid YAML spelling of the same data is
 * accepted and every error has a line and column. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "atomic_file.h"
#include "qparams.h"
#include "record.h"

static void yaml_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\x%02x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

int record_write(const char *path, const char *model, const ir_graph *g, const quant_plan *p, const qk_qparams *qp,
                 qk_err *err)
{
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.f;
    fprintf(f, "# quantkit record: scale and zero point of every quantized tensor.\n"
               "# `quantkit quantize --from-record` reuses it and skips calibration.\n"
               "version: 1\nmodel: ");
    yaml_str(f, model);
    fprintf(f, "\ntensors:\n");
    for (int i = 0; i < p->n; i++) {
        const plan_entry *e = &p->entries[i];
        if (e->role == PLAN_BIAS) continue;
        const qk_qparams *q = &qp[i];
        fprintf(f, "  ");
        yaml_str(f, g->values[e->value].name);
        fprintf(f, ":\n    role: %s\n    bits: %d\n    axis: %d\n    qmin: %d\n    qmax: %d\n    scale: [",
                e->role == PLAN_WEIGHT ? "weight" : "activation", e->rule->bits, q->axis, q->qmin, q->qmax);
        for (int64_t c = 0; c < q->count; c++) fprintf(f, "%s%.9g", c ? ", " : "", q->scale[c]);
        fprintf(f, "]\n    zero_point: [");
        for (int64_t c = 0; c < q->count; c++) fprintf(f, "%s%d", c ? ", " : "", q->zero_point[c]);
        fprintf(f, "]\n");
    }
    return atomic_commit(&af, err);
}

/* ---- reading ---------------------------------------------------------- */

typedef struct rctx {
    const char *path;
    yaml_document_t *doc;
    qk_err *err;
} rctx;

static int fail_at(rctx *r, const yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
    return qk_fail(r->err, QK_EINVAL, "%s:%zu:%zu: %s%s%s", r->path, n ? n->start_mark.line + 1 : 0,
                   n ? n->start_mark.column + 1 : 0, fmt, a ? a : "", b ? b : "");
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int read_int(rctx *r, const yaml_node_t *n, const char *key, int64_t *out)
{
    const char *s = scalar(n);
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno) return fail_at(r, n, "expected an integer for `", key, "`");
    *out = v;
    return QK_OK;
}

static int read_list(rctx *r, yaml_node_t *n, const char *key, int is_float, qk_qparams *qp, int64_t *count)
{
    if (!n || n->type != YAML_SEQUENCE_NODE) return fail_at(r, n, "expected a list for `", key, "`");
    int64_t len = n->data.sequence.items.top - n->data.sequence.items.start;
    if (len < 1) return fail_at(r, n, "empty list for `", key, "`");
    if (*count && *count != len) return fail_at(r, n, "`scale` and `zero_point` differ in length", NULL, NULL);
    if (!*count) {
        if (qparams_alloc(qp, len, qp->axis)) return qk_fail(r->err, QK_ENOMEM, "out of memory");
        *count = len;
    }
    for (int64_t i = 0; i < len; i++) {
        yaml_node_t *it = yaml_document_get_node(r->doc, n->data.sequence.items.start[i]);
        const char *s = scalar(it);
        char *end;
        errno = 0;
        if (is_float) {
            double v = s ? strtod(s, &end) : 0;
            if (!s || !*s || *end || errno || !isfinite(v) || v <= 0)
                return fail_at(r, it, "scale must be a positive number in `", key, "`");
            qp->scale[i] = (float)v;
        } else {
            long long v = s ? strtoll(s, &end, 10) : 0;
            if (!s || !*s || *end || errno || v < INT32_MIN || v > INT32_MAX)
                return fail_at(r, it, "zero point must be an integer in `", key, "`");
            qp->zero_point[i] = (int32_t)v;
        }
    }
    return QK_OK;
}

static int read_entry(rctx *r, const char *name, yaml_node_t *n, record_entry *e)
{
    if (n->type != YAML_MAPPING_NODE) return fail_at(r, n, "expected a mapping for tensor `", name, "`");
    e->name = strdup(name);
    e->line = (int)n->start_mark.line + 1;
    e->column = (int)n->start_mark.column + 1;
    e->qp.axis = -1;
    if (!e->name) return qk_fail(r->err, QK_ENOMEM, "out of memory");
    int64_t count = 0, v;
    yaml_node_t *scale = NULL, *zp = NULL;
    int seen_q = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, pr->key), *val = yaml_document_get_node(r->doc, pr->value);
        const char *key = scalar(k);
        int rc = QK_OK;
        if (!key) return fail_at(r, k, "expected a key in tensor `", name, "`");
        if (!strcmp(key, "role")) {
            const char *s = scalar(val);
            if (!s || (strcmp(s, "activation") && strcmp(s, "weight")))
                return fail_at(r, val, "role must be activation or weight in tensor `", name, "`");
            if (!(e->role = strdup(s))) return qk_fail(r->err, QK_ENOMEM, "out of memory");
        } else if (!strcmp(key, "bits")) {
            if (!(rc = read_int(r, val, key, &v))) e->bits = (int)v;
        } else if (!strcmp(key, "axis")) {
            if (!(rc = read_int(r, val, key, &v))) e->qp.axis = (int)v;
        } else if (!strcmp(key, "qmin")) {
            if (!(rc = read_int(r, val, key, &v))) e->qp.qmin = (int32_t)v, seen_q |= 1;
        } else if (!strcmp(key, "qmax")) {
            if (!(rc = read_int(r, val, key, &v))) e->qp.qmax = (int32_t)v, seen_q |= 2;
        } else if (!strcmp(key, "scale")) {
            scale = val;
        } else if (!strcmp(key, "zero_point")) {
            zp = val;
        } else {
            return fail_at(r, k, "unknown key `", key,
                           "` (known: role, bits, axis, qmin, qmax, scale, zero_point)");
        }
        if (rc) return rc;
    }
    if (!scale || !zp || seen_q != 3 || !e->bits)
        return fail_at(r, n, "tensor `", name, "` needs bits, qmin, qmax, scale and zero_point");
    int rc = read_list(r, scale, "scale", 1, &e->qp, &count);
    if (!rc) rc = read_list(r, zp, "zero_point", 0, &e->qp, &count);
    return rc;
}

int record_load(const char *path, record **out, qk_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qk_fail(err, QK_EIO, "%s: cannot open the record: %s", path, strerror(errno));
    yaml_parser_t y;
    yaml_document_t doc;
    yaml_parser_initialize(&y);
    yaml_parser_set_input_file(&y, f);
    int loaded = yaml_parser_load(&y, &doc);
    if (!loaded) {
        int rc = qk_fail(err, QK_EINVAL, "%s:%zu:%zu: not a valid record (YAML): %s", path, y.problem_mark.line + 1, y.problem_mark.column + 1,
                         y.problem ? y.problem : "not valid YAML");
        yaml_parser_delete(&y);
        fclose(f);
        return rc;
    }
    record *rec = calloc(1, sizeof *rec);
    rctx r = {path, &doc, err};
    int rc = rec && (rec->path = strdup(path)) ? QK_OK : qk_fail(err, QK_ENOMEM, "out of memory");
    yaml_node_t *root = yaml_document_get_root_node(&doc), *tensors = NULL;
    if (!rc && (!root || root->type != YAML_MAPPING_NODE))
        rc = fail_at(&r, root, "a record is a mapping with `version` and `tensors`", NULL, NULL);
    for (yaml_node_pair_t *pr = rc ? NULL : root->data.mapping.pairs.start; pr && pr < root->data.mapping.pairs.top && !rc;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *val = yaml_document_get_node(&doc, pr->value);
        const char *key = scalar(k);
        int64_t v;
        if (key && !strcmp(key, "version")) {
            if (!(rc = read_int(&r, val, key, &v)) && v != 1)
                rc = fail_at(&r, val, "unsupported record version (this quantkit reads version 1)", NULL, NULL);
        } else if (key && !strcmp(key, "tensors")) {
            tensors = val;
        } else if (!key || strcmp(key, "model")) {
            rc = fail_at(&r, k, "unknown key `", key ? key : "?", "` (known: version, model, tensors)");
        }
    }
    if (!rc && (!tensors || tensors->type != YAML_MAPPING_NODE))
        rc = fail_at(&r, tensors ? tensors : root, "`tensors` must be a mapping of tensor names", NULL, NULL);
    if (!rc) {
        int n = (int)(tensors->data.mapping.pairs.top - tensors->data.mapping.pairs.start);
        rec->entries = calloc((size_t)n + 1, sizeof *rec->entries);
        if (!rec->entries) rc = qk_fail(err, QK_ENOMEM, "out of memory");
        for (int i = 0; i < n && !rc; i++) {
            yaml_node_pair_t *pr = &tensors->data.mapping.pairs.start[i];
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            const char *name = scalar(k);
            if (!name) {
                rc = fail_at(&r, k, "tensor names must be strings", NULL, NULL);
                break;
            }
            if (record_find(rec, name)) {
                rc = fail_at(&r, k, "tensor `", name, "` appears twice");
                break;
            }
            rec->n++;
            rc = read_entry(&r, name, yaml_document_get_node(&doc, pr->value), &rec->entries[i]);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&y);
    fclose(f);
    if (rc) {
        record_free(rec);
        return rc;
    }
    *out = rec;
    return QK_OK;
}

const record_entry *record_find(const record *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (r->entries[i].name && !strcmp(r->entries[i].name, name)) return &r->entries[i];
    return NULL;
}

void record_free(record *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        free(r->entries[i].name);
        free(r->entries[i].role);
        qparams_free(&r->entries[i].qp);
    }
    free(r->entries);
    free(r->path);
    free(r);
}
