/* This file implements the ONNX conformance driver: it runs every test of
 * Debian's libonnx-testdata (node, pytorch-converted, pytorch-operator,
 * simple) whose ops quantkit supports and compares each output with the
 * reference at ONNX's backend-test tolerance (rtol 1e-3, atol 1e-7).
 *
 * A test is "not attempted" only when the model needs an op quantkit lacks
 * or an element type it cannot hold (float16, string, ...); this is decided
 * statically, before running anything.  Everything else is attempted, and
 * any failure among attempted tests fails `make check`.
 *
 * Usage: conformance [SUBSTRING]   (only tests whose path contains it) */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "executor.h"
#include "onnx_io.h"
#include "onnx.pb-c.h"

#ifndef ONNX_TESTDATA
#define ONNX_TESTDATA "/usr/share/libonnx-testdata/data"
#endif
#define RTOL 1e-3
#define ATOL 1e-7

/* Per-test tolerance exceptions, each with its reason. */
static const struct { const char *test; double rtol, atol; const char *why; } loosened[] = {
    {NULL, 0, 0, NULL},
};

/* Tests left out on purpose, each with its reason.  Decided by name because
 * the reason lies in the test's input data, not in the model.  A prefix,
 * or an exact name when it ends in '$'. */
static const struct { const char *prefix; const char *why; } excluded[] = {
    {"test_training_dropout_default", "training-mode Dropout (random mask; quantkit executes inference only)"},
    {"test_training_dropout_mask", "training-mode Dropout (random mask; quantkit executes inference only)"},
    {"test_training_dropout$", "training-mode Dropout (random mask; quantkit executes inference only)"},
    {NULL, NULL},
};

static char **attempted;
static int n_attempted;

typedef struct { char *op; int tests; } skip_reason;
static skip_reason *reasons;
static int n_reasons, n_skipped;

static void add_reason(const char *op)
{
    for (int i = 0; i < n_reasons; i++)
        if (!strcmp(reasons[i].op, op)) {
            reasons[i].tests++;
            return;
        }
    reasons = realloc(reasons, (size_t)(n_reasons + 1) * sizeof *reasons);
    reasons[n_reasons++] = (skip_reason){strdup(op), 1};
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **list_dir(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    *n = 0;
    if (!d) return NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        v = realloc(v, (size_t)(*n + 1) * sizeof *v);
        v[(*n)++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* Decides statically whether a test can be attempted; records why not. */
static int classify(const char *dir)
{
    const char *base = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    for (int i = 0; excluded[i].prefix; i++) {
        /* A trailing '$' asks for the exact name rather than a prefix. */
        size_t l = strlen(excluded[i].prefix);
        int exact = excluded[i].prefix[l - 1] == '$';
        if (exact ? (strlen(base) == l - 1 && !strncmp(base, excluded[i].prefix, l - 1))
                  : !strncmp(base, excluded[i].prefix, l)) {
            add_reason(excluded[i].why);
            return 0;
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    qk_err err = {0};
    ir_graph *g = NULL;
    if (onnx_load_raw(path, &g, &err)) return 1;   /* attempted: will fail loudly */
    int ok = 1;
    char why[256] = "";
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        const char *dom = n->proto->domain;
        if ((dom && *dom && strcmp(dom, "ai.onnx")) || !op_lookup(node_op_type(n))) {
            snprintf(why, sizeof why, "%s%s%s", dom && *dom ? dom : "", dom && *dom ? "." : "", node_op_type(n));
            add_reason(why);
            ok = 0;
        }
    }
    for (int v = 0; ok && v < g->n_values; v++) {
        const ir_value *val = &g->values[v];
        if ((val->is_input || val->is_initializer || val->is_output) && val->t.dtype && !dtype_supported(val->t.dtype)) {
            snprintf(why, sizeof why, "element type %s", dtype_name(val->t.dtype));
            add_reason(why);
            ok = 0;
        }
    }
    if (ok && ir_check_ops(g, &err) == QK_OK && ir_infer(g, &err) == QK_ENOTSUP) {
        /* e.g. Cast to float16: the op exists, the type does not */
        /* Group by op and reason, not by node: drop "node 'NAME': ". */
        const char *m = err.msg, *q1 = strstr(m, " node '"), *q2 = q1 ? strstr(q1 + 7, "': ") : NULL;
        if (q1 && q2) snprintf(why, sizeof why, "%.*s: %.160s", (int)(q1 - m), m, q2 + 3);
        else snprintf(why, sizeof why, "%.200s", m);
        add_reason(why);
        ok = 0;
    }
    ir_free(g);
    return ok;
}

static int close_enough(const xt *got, const xt *want, double rtol, double atol, char *msg, size_t len)
{
    char a[128], b[128];
    if (got->dtype != want->dtype) {
        snprintf(msg, len, "type %s, expected %s", dtype_name(got->dtype), dtype_name(want->dtype));
        return 0;
    }
    if (got->rank != want->rank || memcmp(got->dims, want->dims, (size_t)got->rank * sizeof got->dims[0])) {
        snprintf(msg, len, "shape %s, expected %s", xt_shape_str(got, a, sizeof a), xt_shape_str(want, b, sizeof b));
        return 0;
    }
    int64_t n = xt_numel(want);
    int fp = want->dtype == DT_FLOAT || want->dtype == DT_DOUBLE;
    for (int64_t i = 0; i < n; i++) {
        double g = xt_get_f64(got, i), w = xt_get_f64(want, i);
        if (fp) {
            if (isnan(w) && isnan(g)) continue;
            if (isinf(w) && g == w) continue;
            if (fabs(g - w) <= atol + rtol * fabs(w)) continue;
        } else if (xt_get_i64(got, i) == xt_get_i64(want, i)) {
            continue;
        }
        snprintf(msg, len, "element %lld is %.9g, expected %.9g", (long long)i, g, w);
        return 0;
    }
    return 1;
}

/* Loads name_0.pb, name_1.pb, ... of one data set. */
static int load_pbs(const char *set, const char *prefix, xt **out, char ***names, int *n)
{
    *n = 0;
    *out = NULL;
    *names = NULL;
    for (;; (*n)++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%d.pb", set, prefix, *n);
        struct stat st;
        if (stat(path, &st)) break;
        *out = realloc(*out, (size_t)(*n + 1) * sizeof **out);
        *names = realloc(*names, (size_t)(*n + 1) * sizeof **names);
        qk_err err = {0};
        if (onnx_read_tensor_file(path, &(*out)[*n], &(*names)[*n], &err)) {
            ck_abort_msg("%s", err.msg);
            return -1;
        }
    }
    return 0;
}

START_TEST(test_onnx_conformance)
{
    const char *dir = attempted[_i];
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    qk_err err = {0};
    ir_graph *g = NULL;
    executor *e = NULL;
    ck_assert_msg(onnx_load(path, &g, &err) == QK_OK, "%s: %s", dir, err.msg);
    ck_assert_msg(exec_new(g, 2, &e, &err) == QK_OK, "%s: %s", dir, err.msg);
    double rtol = RTOL, atol = ATOL;
    for (size_t k = 0; loosened[k].test; k++)
        if (strstr(dir, loosened[k].test)) {
            rtol = loosened[k].rtol;
            atol = loosened[k].atol;
        }
    int n_sets;
    char **sets = list_dir(dir, &n_sets);
    int ran = 0;
    for (int s = 0; s < n_sets; s++) {
        if (strncmp(sets[s], "test_data_set_", 14)) continue;
        char set[4096];
        snprintf(set, sizeof set, "%s/%s", dir, sets[s]);
        xt *ins, *wants;
        char **in_names, **out_names;
        int n_in, n_want;
        load_pbs(set, "input", &ins, &in_names, &n_in);
        load_pbs(set, "output", &wants, &out_names, &n_want);
        ck_assert_msg(n_in == g->n_inputs, "%s: %d input files for %d graph inputs", set, n_in, g->n_inputs);
        ck_assert_msg(n_want == g->n_outputs, "%s: %d output files for %d graph outputs", set, n_want, g->n_outputs);
        /* Inputs bind by name where the file names one, else by position. */
        xt *bound = calloc((size_t)n_in + 1, sizeof *bound);
        for (int i = 0; i < n_in; i++) {
            int slot = i;
            for (int k = 0; in_names[i] && k < g->n_inputs; k++)
                if (!strcmp(g->values[g->inputs[k]].name, in_names[i])) slot = k;
            bound[slot] = ins[i];
        }
        xt *got = calloc((size_t)g->n_outputs + 1, sizeof *got);
        ck_assert_msg(exec_run(e, bound, got, &err) == QK_OK, "%s: %s", set, err.msg);
        for (int j = 0; j < n_want; j++) {
            char msg[512];
            ck_assert_msg(close_enough(&got[j], &wants[j], rtol, atol, msg, sizeof msg), "%s output %d ('%s'): %s", set, j,
                          g->values[g->outputs[j]].name, msg);
            free(got[j].data);
            free(wants[j].data);
            free(out_names[j]);
        }
        for (int i = 0; i < n_in; i++) {
            free(ins[i].data);
            free(in_names[i]);
        }
        free(ins); free(wants); free(in_names); free(out_names); free(bound); free(got);
        ran++;
    }
    free_list(sets, n_sets);
    ck_assert_msg(ran > 0, "%s: no test_data_set_* folders", dir);
    exec_free(e);
    ir_free(g);
}
END_TEST

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : getenv("QK_CONFORMANCE_FILTER");
    static const char *const subs[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    struct stat st;
    if (stat(ONNX_TESTDATA, &st)) {
        fprintf(stderr, "conformance: %s not found: install the Debian package libonnx-testdata\n", ONNX_TESTDATA);
        return 1;
    }
    int total = 0;
    for (size_t s = 0; s < sizeof subs / sizeof subs[0]; s++) {
        char base[4096];
        snprintf(base, sizeof base, "%s/%s", ONNX_TESTDATA, subs[s]);
        int n;
        char **names = list_dir(base, &n);
        for (int i = 0; i < n; i++) {
            char dir[4096], model[4200];
            snprintf(dir, sizeof dir, "%s/%s", base, names[i]);
            snprintf(model, sizeof model, "%s/model.onnx", dir);
            if (stat(model, &st)) continue;
            if (filter && *filter && !strstr(dir, filter)) continue;
            total++;
            if (classify(dir)) {
                attempted = realloc(attempted, (size_t)(n_attempted + 1) * sizeof *attempted);
                attempted[n_attempted++] = strdup(dir);
            } else {
                n_skipped++;
            }
        }
        free_list(names, n);
    }
    Suite *suite = suite_create("onnx-conformance");
    TCase *tc = tcase_create("onnx");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_onnx_conformance, 0, n_attempted);
    suite_add_tcase(suite, tc);
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    printf("conformance: %d tests found, %d attempted: %d passed, %d failed; %d not attempted\n", total, n_attempted,
           n_attempted - failed, failed, n_skipped);
    printf("not attempted because of (tests):");
    for (int i = 0; i < n_reasons; i++) printf("%s %s (%d)", i ? "," : "", reasons[i].op, reasons[i].tests);
    printf("\n");
    for (int i = 0; i < n_attempted; i++) free(attempted[i]);
    free(attempted);
    for (int i = 0; i < n_reasons; i++) free(reasons[i].op);
    free(reasons);
    return failed ? 1 : 0;
}
