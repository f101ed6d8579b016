/* This file implements the tests of core/report.c: a report built by hand
 * (per-tensor and per-channel entries, NaN and infinite SQNRs, names that
 * need escaping in JSON and in HTML, a byte that is not UTF-8) is written
 * as JSON and HTML into a fresh temporary folder.  The JSON is checked to
 * parse (with node or python3 when either is installed), to carry escaped
 * names, the SQNR sentinels, the worst layers in order, and per-channel
 * arrays that are complete and round-trip every float bit for bit.  The
 * HTML is checked for the chart, escaping, no script and no external
 * resource.  Failures must name the file and leave nothing behind, and
 * report_free must take partly filled reports (the sanitizer build checks
 * for leaks). */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "quant_suites.h"
#include "report.h"

static char dir[256];

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qk_report_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Removes the folder's files and sub-folders (one level deep is all the
 * tests make). */
static void rm_tree(const char *d)
{
    DIR *dd = opendir(d);
    if (dd) {
        struct dirent *e;
        char p[768];
        while ((e = readdir(dd)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            if (unlink(p) != 0) rm_tree(p);
        }
        closedir(dd);
    }
    rmdir(d);
}

static void teardown(void)
{
    rm_tree(dir);
}

static const char *tpath(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Entries in a folder besides . and .. */
static int count_entries(const char *d)
{
    DIR *dd = opendir(d);
    int n = 0;
    struct dirent *e;
    ck_assert_ptr_nonnull(dd);
    while ((e = readdir(dd)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(dd);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static int occurrences(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    ck_assert_ptr_nonnull(d);
    return d;
}

static void *zalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Fills a tensor entry, per-tensor when channels is 1 and axis is -1. */
static void fill_tensor(report_tensor *t, const char *name, const char *role, int axis, int64_t channels,
                        double sqnr)
{
    t->name = xstrdup(name);
    t->role = role;
    t->node = xstrdup("/layer<1>/Conv");
    t->op_type = xstrdup("Conv");
    t->rule = xstrdup("op_types.Conv (cfg.yaml:12:11)");
    t->bits = 8;
    t->axis = axis;
    t->channels = channels;
    t->sqnr_db = sqnr;
    int weight = strcmp(role, "weight") == 0, bias = strcmp(role, "bias") == 0;
    t->symmetric = !strcmp(role, "activation") ? 0 : 1;
    t->qmin = bias ? INT32_MIN : weight ? -127 : 0;
    t->qmax = bias ? INT32_MAX : weight ? 127 : 255;
    if (!bias) t->observer = xstrdup("minmax");
    if (weight) t->quantizer = xstrdup("round");
    t->scale = zalloc((size_t)channels, sizeof *t->scale);
    t->zero_point = zalloc((size_t)channels, sizeof *t->zero_point);
    if (!bias) {
        t->lo = zalloc((size_t)channels, sizeof *t->lo);
        t->hi = zalloc((size_t)channels, sizeof *t->hi);
    }
    for (int64_t c = 0; c < channels; c++) {
        /* Values with no short decimal form, so that round trips are a test. */
        t->scale[c] = 0.0013f * (float)(c + 1) / 3.0f;
        if (t->lo) {
            t->lo[c] = -(float)(c + 0.1) / 7.0f;
            t->hi[c] = (float)(c + 0.3) / 9.0f;
        }
        t->zero_point[c] = t->symmetric ? 0 : (int32_t)(c % 200) + 3;
    }
}

#define PC_CHANNELS 64
#define ESC_NAME "conv\"1<&>/weight"

/* The report the tests write.  Graph order and SQNRs:
 *   0 input           activation  30
 *   1 ESC_NAME        weight      5     (per-channel, 64 channels)
 *   2 conv1.bias      bias        -Inf ... would be worst but see below
 *   3 relu1           activation  NaN   (not measured)
 *   4 identity        activation  +Inf  (no noise)
 *   5 fc.weight       weight      12    (per-channel, 3 channels)
 *   6 fc_out          activation  12    (ties with 5: graph order decides)
 *   7 tab\tname\x01   activation  25    (control characters)
 *   8 bad\xff-µ       activation  40    (a byte that is not UTF-8)
 *   9 shared          activation  3     (shares with input)
 * so the five worst are 2, 9, 1, 5, 6. */
static quant_report *make_report(void)
{
    quant_report *r = zalloc(1, sizeof *r);
    r->model = xstrdup("models/cnn \"small\" <v2>.onnx");
    r->output = xstrdup("out/cnn_q.onnx");
    r->config = xstrdup("cfg.yaml");
    r->backend = xstrdup("onnx-qdq");
    r->fusions = 3;
    r->calib_images = 128;
    r->calib_batches = 8;
    r->calib_seconds = 0.5;
    r->total_seconds = 1.25;
    r->n_tensors = 10;
    r->tensors = zalloc(10, sizeof *r->tensors);
    report_tensor *t = r->tensors;
    fill_tensor(&t[0], "input", "activation", -1, 1, 30.0);
    fill_tensor(&t[1], ESC_NAME, "weight", 0, PC_CHANNELS, 5.0);
    fill_tensor(&t[2], "conv1.bias", "bias", 0, PC_CHANNELS, -INFINITY);
    fill_tensor(&t[3], "relu1", "activation", -1, 1, NAN);
    fill_tensor(&t[4], "identity", "activation", -1, 1, INFINITY);
    fill_tensor(&t[5], "fc.weight", "weight", 0, 3, 12.0);
    fill_tensor(&t[6], "fc_out", "activation", -1, 1, 12.0);
    fill_tensor(&t[7], "tab\tname\x01", "activation", -1, 1, 25.0);
    fill_tensor(&t[8], "bad\xff-\xc2\xb5", "activation", -1, 1, 40.0);
    fill_tensor(&t[9], "shared", "activation", -1, 1, 3.0);
    t[9].shares_with = xstrdup("input");
    r->n_outputs = 2;
    r->outputs = zalloc(2, sizeof *r->outputs);
    r->outputs[0].name = xstrdup("logits");
    r->outputs[0].sqnr_db = 27.5;
    r->outputs[1].name = xstrdup("probs<&>");
    r->outputs[1].sqnr_db = NAN;
    return r;
}

/* Whether the file parses as JSON, by node or python3; -1 when neither is
 * installed (the check is then skipped: the other tests still look at the
 * text). */
static int json_parses(const char *path)
{
    char cmd[1024];
    if (system("command -v node >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd,
                 "node -e 'JSON.parse(require(\"fs\").readFileSync(process.argv[1], \"utf8\"))' '%s'", path);
        return system(cmd) == 0;
    }
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding=\"utf-8\"))' '%s'", path);
        return system(cmd) == 0;
    }
    return -1;
}

static void check_json_parses(const char *path)
{
    int ok = json_parses(path);
    if (ok < 0) fprintf(stderr, "test_report: neither node nor python3 found; JSON syntax not checked\n");
    else ck_assert_msg(ok, "%s is not valid JSON", path);
}

/* The one line of the JSON that holds the tensor named (already escaped)
 * `name`, as a malloc'd string. */
static char *tensor_line(const char *json, const char *name)
{
    char key[256];
    snprintf(key, sizeof key, "{\"name\":\"%s\",", name);
    const char *p = strstr(json, key);
    ck_assert_msg(p != NULL, "no tensor %s in the JSON", name);
    const char *e = strchr(p, '\n');
    ck_assert_ptr_nonnull(e);
    return strndup(p, (size_t)(e - p));
}

/* Parses the numeric array that follows `key` in line into out (at most
 * max); returns how many it held. */
static int parse_array(const char *line, const char *key, double *out, int max)
{
    const char *p = strstr(line, key);
    ck_assert_msg(p != NULL, "no %s in %s", key, line);
    p += strlen(key);
    ck_assert_int_eq(*p, '[');
    p++;
    int n = 0;
    while (*p != ']') {
        char *end;
        double v = strtod(p, &end);
        ck_assert_msg(end != p, "not a number at %.20s", p);
        ck_assert_int_lt(n, max);
        out[n++] = v;
        p = end;
        if (*p == ',') p++;
        else ck_assert_int_eq(*p, ']');
    }
    return n;
}

START_TEST(test_json_content)
{
    quant_report *r = make_report();
    qk_err err = {0};
    const char *path = tpath("report.json");
    ck_assert_int_eq(report_write_json(r, path, &err), 0);
    check_json_parses(path);
    char *j = slurp(path);

    /* Escaping: quotes and backslashes; < and & stay as they are in JSON;
     * control characters as \u; a stray byte as U+FFFD, valid UTF-8 kept. */
    ck_assert_ptr_nonnull(strstr(j, "\"model\": \"models/cnn \\\"small\\\" <v2>.onnx\""));
    ck_assert_ptr_nonnull(strstr(j, "{\"name\":\"conv\\\"1<&>/weight\",\"role\":\"weight\""));
    ck_assert_ptr_nonnull(strstr(j, "\"name\":\"tab\\tname\\u0001\""));
    ck_assert_ptr_nonnull(strstr(j, "\"name\":\"bad\\ufffd-\xc2\xb5\""));
    ck_assert_ptr_nonnull(strstr(j, "\"node\":\"/layer<1>/Conv\""));

    /* Header fields. */
    ck_assert_ptr_nonnull(strstr(j, "\"from_record\": null"));
    ck_assert_ptr_nonnull(strstr(j, "\"fusions\": 3"));
    ck_assert_ptr_nonnull(
        strstr(j, "\"calibration\": {\"images\": 128, \"batches\": 8, \"seconds\": 0.5, \"images_per_s\": 256}"));
    ck_assert_ptr_nonnull(strstr(j, "\"total_seconds\": 1.25"));
    ck_assert_ptr_nonnull(strstr(j, "{\"name\": \"logits\", \"sqnr_db\": 27.5}"));
    ck_assert_ptr_nonnull(strstr(j, "{\"name\": \"probs<&>\", \"sqnr_db\": null}"));

    /* SQNR sentinels: NaN is null, +Inf is 999.0, -Inf is -999.0. */
    char *l = tensor_line(j, "relu1");
    ck_assert_ptr_nonnull(strstr(l, "\"sqnr_db\":null}"));
    free(l);
    l = tensor_line(j, "identity");
    ck_assert_ptr_nonnull(strstr(l, "\"sqnr_db\":999.0}"));
    free(l);
    l = tensor_line(j, "conv1.bias");
    ck_assert_ptr_nonnull(strstr(l, "\"sqnr_db\":-999.0}"));
    ck_assert_ptr_nonnull(strstr(l, "\"observer\":null,\"quantizer\":null"));
    ck_assert_ptr_nonnull(strstr(l, "\"range\":null"));
    ck_assert_ptr_nonnull(strstr(l, "\"qmin\":-2147483648,\"qmax\":2147483647"));
    free(l);
    l = tensor_line(j, "shared");
    ck_assert_ptr_nonnull(strstr(l, "\"shares_with\":\"input\""));
    ck_assert_ptr_nonnull(strstr(l, "\"per_channel\":false,\"axis\":-1,\"channels\":1"));
    free(l);

    /* Worst layers: lowest first, ties in graph order, NaN and +Inf left out. */
    ck_assert_ptr_nonnull(strstr(j, "\"worst_layers\": [\"conv1.bias\", \"shared\", \"conv\\\"1<&>/weight\", "
                                    "\"fc.weight\", \"fc_out\"]"));

    /* Per-channel arrays complete, every float back bit for bit. */
    const report_tensor *w = &r->tensors[1];
    l = tensor_line(j, "conv\\\"1<&>/weight");
    ck_assert_ptr_nonnull(strstr(l, "\"per_channel\":true,\"axis\":0,\"channels\":64"));
    ck_assert_ptr_nonnull(strstr(l, "\"symmetric\":true"));
    double v[PC_CHANNELS + 1];
    ck_assert_int_eq(parse_array(l, "\"scale\":", v, PC_CHANNELS + 1), PC_CHANNELS);
    for (int c = 0; c < PC_CHANNELS; c++) ck_assert_msg((float)v[c] == w->scale[c], "scale[%d] lost bits", c);
    ck_assert_int_eq(parse_array(l, "\"lo\":", v, PC_CHANNELS + 1), PC_CHANNELS);
    for (int c = 0; c < PC_CHANNELS; c++) ck_assert_msg((float)v[c] == w->lo[c], "lo[%d] lost bits", c);
    ck_assert_int_eq(parse_array(l, "\"hi\":", v, PC_CHANNELS + 1), PC_CHANNELS);
    for (int c = 0; c < PC_CHANNELS; c++) ck_assert_msg((float)v[c] == w->hi[c], "hi[%d] lost bits", c);
    ck_assert_int_eq(parse_array(l, "\"zero_point\":", v, PC_CHANNELS + 1), PC_CHANNELS);
    free(l);
    l = tensor_line(j, "input");
    ck_assert_int_eq(parse_array(l, "\"zero_point\":", v, 2), 1);
    ck_assert(v[0] == 3);
    ck_assert_ptr_nonnull(strstr(l, "\"symmetric\":false"));
    free(l);

    free(j);
    report_free(r);
}
END_TEST

/* A non-finite clipping range (an observer that saw nothing) is null in
 * the array, and the document still parses; so is a report of nothing. */
START_TEST(test_json_nonfinite_and_empty)
{
    quant_report *r = make_report();
    r->tensors[0].lo[0] = -INFINITY;
    r->tensors[0].hi[0] = NAN;
    r->calib_seconds = 0; /* no rate: null, not inf */
    r->record_from = xstrdup("prev\\rec.yaml");
    qk_err err = {0};
    ck_assert_int_eq(report_write_json(r, tpath("a.json"), &err), 0);
    check_json_parses(tpath("a.json"));
    char *j = slurp(tpath("a.json"));
    ck_assert_ptr_nonnull(strstr(j, "\"range\":{\"lo\":[null],\"hi\":[null]}"));
    ck_assert_ptr_nonnull(strstr(j, "\"images_per_s\": null"));
    ck_assert_ptr_nonnull(strstr(j, "\"from_record\": \"prev\\\\rec.yaml\""));
    ck_assert_ptr_null(strstr(j, "inf"));
    ck_assert_ptr_null(strstr(j, "nan"));
    free(j);
    report_free(r);

    quant_report *e = zalloc(1, sizeof *e);
    ck_assert_int_eq(report_write_json(e, tpath("empty.json"), &err), 0);
    check_json_parses(tpath("empty.json"));
    j = slurp(tpath("empty.json"));
    ck_assert_ptr_nonnull(strstr(j, "\"model\": null"));
    ck_assert_ptr_nonnull(strstr(j, "\"outputs\": []"));
    ck_assert_ptr_nonnull(strstr(j, "\"tensors\": []"));
    ck_assert_ptr_nonnull(strstr(j, "\"worst_layers\": []"));
    free(j);
    ck_assert_int_eq(report_write_html(e, tpath("empty.html"), &err), 0);
    report_free(e);
}
END_TEST

START_TEST(test_html_content)
{
    quant_report *r = make_report();
    qk_err err = {0};
    const char *path = tpath("report.html");
    ck_assert_int_eq(report_write_html(r, path, &err), 0);
    char *h = slurp(path);

    ck_assert_ptr_nonnull(strstr(h, "<!DOCTYPE html>"));
    ck_assert_ptr_nonnull(strstr(h, "<meta charset=\"utf-8\">"));
    ck_assert_ptr_nonnull(strstr(h, "<svg"));
    ck_assert_ptr_nonnull(strstr(h, "</html>\n"));
    /* Self-contained: no script, nothing fetched. */
    ck_assert_ptr_null(strcasestr(h, "<script"));
    ck_assert_ptr_null(strcasestr(h, "<link"));
    ck_assert_ptr_null(strcasestr(h, "<img"));
    ck_assert_ptr_null(strcasestr(h, "src="));
    ck_assert_ptr_null(strcasestr(h, "url("));
    ck_assert_ptr_null(strcasestr(h, "@import"));

    /* Every string escaped; the raw forms never appear. */
    ck_assert_ptr_nonnull(strstr(h, "conv&quot;1&lt;&amp;&gt;/weight"));
    ck_assert_ptr_null(strstr(h, ESC_NAME));
    ck_assert_ptr_null(strstr(h, "1<&>"));
    ck_assert_ptr_nonnull(strstr(h, "models/cnn &quot;small&quot; &lt;v2&gt;.onnx"));
    ck_assert_ptr_nonnull(strstr(h, "probs&lt;&amp;&gt;"));
    ck_assert_ptr_nonnull(strstr(h, "/layer&lt;1&gt;/Conv"));
    ck_assert_ptr_nonnull(strstr(h, "bad\xef\xbf\xbd-\xc2\xb5"));
    ck_assert_ptr_null(strchr(h, '\x01'));
    ck_assert_ptr_null(strchr(h, '\xff'));

    /* Summary. */
    ck_assert_ptr_nonnull(strstr(h, "onnx-qdq"));
    ck_assert_ptr_nonnull(strstr(h, "128 images in 8 batches"));
    ck_assert_ptr_nonnull(strstr(h, "256.0 images/s"));
    ck_assert_ptr_nonnull(strstr(h, "27.50"));

    /* Chart: one bar per activation and weight (the bias is not drawn), each
     * linking to its table row; the quality colours; the worst five are
     * ranked (among charted tensors: shared, the escaped weight, fc.weight,
     * fc_out, then tab-name at 25 dB). */
    const char *svg = strstr(h, "<svg"), *svg_end = strstr(h, "</svg>");
    ck_assert_ptr_nonnull(svg_end);
    char *chart = strndup(svg, (size_t)(svg_end - svg));
    ck_assert_int_eq(occurrences(chart, "<rect"), 9);
    ck_assert_ptr_null(strstr(chart, "href=\"#t2\""));
    ck_assert_ptr_nonnull(strstr(chart, "fill=\"#d1242f\""));
    ck_assert_ptr_nonnull(strstr(chart, "fill=\"#d4a72c\""));
    ck_assert_ptr_nonnull(strstr(chart, "fill=\"#2da44e\""));
    ck_assert_ptr_nonnull(strstr(chart, "fill=\"#afb8c1\""));
    ck_assert_ptr_nonnull(strstr(chart, "relu1 (activation): not measured"));
    ck_assert_ptr_nonnull(strstr(chart, "identity (activation): no quantization noise"));
    for (int k = 1; k <= 5; k++) {
        char label[32];
        snprintf(label, sizeof label, ">%d</text>", k);
        ck_assert_msg(strstr(chart, label) != NULL, "worst tensor %d not labelled", k);
    }
    free(chart);
    const char *lowest = strstr(h, "Lowest SQNR");
    ck_assert_ptr_nonnull(lowest);
    const char *a = strstr(lowest, "href=\"#t9\""), *b = strstr(lowest, "href=\"#t1\""),
               *c = strstr(lowest, "href=\"#t5\""), *d = strstr(lowest, "href=\"#t6\""),
               *e = strstr(lowest, "href=\"#t7\"");
    ck_assert(a && b && c && d && e && a < b && b < c && c < d && d < e);

    /* Table: a row per tensor; per-channel values summarised and listed in
     * full: 64 scales, 64 zero points and 64 ranges for the conv weight,
     * 64 scales and zero points for its bias, 3 of each for fc.weight. */
    ck_assert_int_eq(occurrences(h, "<tr id=\"t"), 10);
    ck_assert_ptr_nonnull(strstr(h, "64 channels"));
    ck_assert_int_eq(occurrences(h, "<details>"), 3 + 2 + 3);
    ck_assert_int_eq(occurrences(h, "<li>"), 64 * 3 + 64 * 2 + 3 * 3 + 5);
    ck_assert_ptr_nonnull(strstr(h, "per-channel (axis 0)"));
    ck_assert_ptr_nonnull(strstr(h, "shares parameters with <code>input</code>"));
    ck_assert_ptr_nonnull(strstr(h, "class=\"num poor\""));
    ck_assert_ptr_nonnull(strstr(h, "class=\"num fair\""));
    ck_assert_ptr_nonnull(strstr(h, "class=\"num good\""));

    free(h);
    report_free(r);
}
END_TEST

/* A folder that does not exist: the error names the path, and nothing is
 * created; the same for HTML. */
START_TEST(test_missing_folder)
{
    quant_report *r = make_report();
    qk_err err = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/report.json", dir);
    ck_assert_int_lt(report_write_json(r, path, &err), 0);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name %s: %s", path, err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_int_ne(access(path, F_OK), 0);

    snprintf(path, sizeof path, "%s/no/such/report.html", dir);
    memset(&err, 0, sizeof err);
    ck_assert_int_lt(report_write_html(r, path, &err), 0);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name %s: %s", path, err.msg);
    ck_assert_int_eq(count_entries(dir), 0);
    report_free(r);
}
END_TEST

/* A failure after the temporary file was written (the target is a folder,
 * so the final rename fails) leaves neither a half report nor a temporary
 * file; a report that already exists is replaced whole. */
START_TEST(test_failed_commit_leaves_nothing)
{
    quant_report *r = make_report();
    qk_err err = {0};
    const char *target = tpath("taken");
    ck_assert_int_eq(mkdir(target, 0755), 0);
    char busy[600];
    snprintf(busy, sizeof busy, "%s/x", target);
    FILE *f = fopen(busy, "w"); /* a non-empty folder cannot be renamed over */
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_lt(report_write_json(r, target, &err), 0);
    ck_assert_msg(strstr(err.msg, target) != NULL, "message does not name %s: %s", target, err.msg);
    ck_assert_int_lt(report_write_html(r, target, &err), 0);
    ck_assert_int_eq(count_entries(dir), 1);

    const char *path = tpath("r.json");
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("old contents, much longer than nothing at all", f);
    fclose(f);
    quant_report *e = zalloc(1, sizeof *e);
    ck_assert_int_eq(report_write_json(e, path, &err), 0);
    char *j = slurp(path);
    ck_assert_ptr_null(strstr(j, "old contents"));
    ck_assert_int_eq(j[0], '{');
    free(j);
    ck_assert_int_eq(count_entries(dir), 2);
    report_free(e);
    report_free(r);
}
END_TEST

/* A report abandoned half way: arrays allocated but entries left zeroed,
 * counts without arrays.  Writers must not crash on it (the JSON still
 * parses) and report_free must free exactly what is there. */
START_TEST(test_free_partial)
{
    report_free(NULL);

    quant_report *r = zalloc(1, sizeof *r);
    r->model = xstrdup("m.onnx");
    r->n_tensors = 4;
    r->tensors = zalloc(4, sizeof *r->tensors);
    r->tensors[0].name = xstrdup("a");
    r->tensors[0].role = "activation";
    r->tensors[0].axis = -1;
    r->tensors[0].channels = 1;
    r->tensors[0].scale = zalloc(1, sizeof(float));
    r->tensors[0].sqnr_db = NAN;
    r->tensors[1].name = xstrdup("w");
    r->tensors[1].role = "weight";
    r->tensors[1].channels = 8; /* arrays not yet allocated */
    r->tensors[1].sqnr_db = 1.0;
    r->n_outputs = 2;           /* count set, array never made */
    qk_err err = {0};
    ck_assert_int_eq(report_write_json(r, tpath("p.json"), &err), 0);
    check_json_parses(tpath("p.json"));
    char *j = slurp(tpath("p.json"));
    ck_assert_ptr_nonnull(strstr(j, "\"outputs\": []"));
    ck_assert_ptr_nonnull(strstr(j, "{\"name\":null,\"role\":null"));
    /* The zeroed entries hold an SQNR of 0 dB: shown, and as worst. */
    ck_assert_ptr_nonnull(strstr(j, "\"worst_layers\": [null, null, \"w\"]"));
    free(j);
    ck_assert_int_eq(report_write_html(r, tpath("p.html"), &err), 0);
    report_free(r);

    r = zalloc(1, sizeof *r);
    r->n_tensors = 3; /* array never made */
    r->outputs = zalloc(1, sizeof *r->outputs);
    r->n_outputs = 1;
    report_free(r);
}
END_TEST

/* Many tensors: the chart keeps one bar each (it scrolls rather than
 * dropping any), and worst_layers still holds exactly five. */
START_TEST(test_many_tensors)
{
    enum { N = 600 };
    quant_report *r = zalloc(1, sizeof *r);
    r->n_tensors = N;
    r->tensors = zalloc(N, sizeof *r->tensors);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%03d", i);
        fill_tensor(&r->tensors[i], name, i % 2 ? "weight" : "activation", -1, 1, 50.0 - (i * 7 % N) / 10.0);
    }
    qk_err err = {0};
    ck_assert_int_eq(report_write_json(r, tpath("m.json"), &err), 0);
    ck_assert_int_eq(report_write_html(r, tpath("m.html"), &err), 0);
    char *j = slurp(tpath("m.json"));
    /* i*7 mod 600 is largest (599, 598, ...) at i = 257, 514, 171, 428, 85. */
    ck_assert_ptr_nonnull(strstr(j, "\"worst_layers\": [\"t257\", \"t514\", \"t171\", \"t428\", \"t085\"]"));
    free(j);
    char *h = slurp(tpath("m.html"));
    ck_assert_int_eq(occurrences(h, "<rect"), N);
    free(h);
    report_free(r);
}
END_TEST

/* A NULL report is an error naming the file, not a crash. */
START_TEST(test_null_report)
{
    qk_err err = {0};
    ck_assert_int_lt(report_write_json(NULL, tpath("n.json"), &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "n.json"));
    ck_assert_int_lt(report_write_html(NULL, tpath("n.html"), &err), 0);
    ck_assert_int_eq(count_entries(dir), 0);
}
END_TEST

Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_json_content);
    tcase_add_test(tc, test_json_nonfinite_and_empty);
    tcase_add_test(tc, test_html_content);
    tcase_add_test(tc, test_missing_folder);
    tcase_add_test(tc, test_failed_commit_leaves_nothing);
    tcase_add_test(tc, test_free_partial);
    tcase_add_test(tc, test_many_tensors);
    tcase_add_test(tc, test_null_report);
    suite_add_tcase(s, tc);
    return s;
}
