/* This file implements the two report writers of `quantize` (see report.h):
 * a JSON document for scripts (--report) and a self-contained HTML page for
 * people (--html).  Both describe the same report; the JSON keeps every
 * number (per-channel arrays complete, floats with enough digits to round
 * trip), the HTML summarises and hides per-channel detail behind <details>.
 *
 * JSON has no infinities or NaN, so (documented for scripts reading it):
 *   - an SQNR that was not measured (NaN) is null;
 *   - an SQNR of +Inf (no quantization noise at all) is 999.0, and -Inf (a
 *     signal of zero power) is -999.0: a number keeps the field sortable and
 *     plottable, and real measurements stay far below 999 dB;
 *   - any other non-finite number (a range of +-Inf, a rate of x/0) is null.
 * Strings are written as valid UTF-8: a byte that is not part of a valid
 * UTF-8 sequence (ONNX names are not checked by protobuf-c) becomes U+FFFD,
 * so a stray byte in a tensor name cannot make the whole document unreadable.
 *
 * The page uses no scripts and loads nothing: styles are inline, the chart
 * is an inline <svg>, and the bars and the list of worst tensors link to the
 * table rows with plain anchors. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "atomic_file.h"
#include "report.h"

/* How many tensors the worst-layers list and the chart labels name. */
#define WORST_N 5

/* SQNR quality bands of the chart and the table, in dB. */
#define SQNR_POOR 10.0
#define SQNR_FAIR 20.0

/* ---- shared helpers ----------------------------------------------------- */

/* The count of tensors a writer may read: a NULL array counts as empty, so a
 * partly filled report is still written rather than dereferenced. */
static int n_tensors(const quant_report *r)
{
    return r->tensors && r->n_tensors > 0 ? r->n_tensors : 0;
}

static int n_outputs(const quant_report *r)
{
    return r->outputs && r->n_outputs > 0 ? r->n_outputs : 0;
}

static int is_role(const report_tensor *t, const char *role)
{
    return t->role && strcmp(t->role, role) == 0;
}

/* Entries in a tensor's per-channel arrays (negative counts as none). */
static int64_t n_channels(const report_tensor *t)
{
    return t->channels > 0 ? t->channels : 0;
}

/* Decodes one UTF-8 sequence at s (non-empty, NUL-terminated); sets *len to
 * the bytes it spans and returns the code point, or -1 for a byte that does
 * not start a valid sequence (then *len is 1, so the caller resynchronises
 * on the next byte).  Overlong forms, surrogates and code points above
 * U+10FFFF are invalid, as RFC 3629 requires. */
static long utf8_next(const unsigned char *s, size_t *len)
{
    unsigned c = s[0];
    *len = 1;
    if (c < 0x80) return (long)c;
    int n;
    long cp;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 2; cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;          /* overlong */
        if (c == 0xED) hi = 0x9F;          /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3; cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;          /* overlong */
        if (c == 0xF4) hi = 0x8F;          /* above U+10FFFF */
    } else return -1;
    for (int i = 1; i <= n; i++) {
        unsigned b = s[i]; /* a NUL stops here: it is not a continuation byte */
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (b & 0x3F);
    }
    *len = (size_t)n + 1;
    return cp;
}

/* Fills idx with the indices of the (up to) k tensors of lowest SQNR, lowest
 * first, ties in graph order; returns how many.  Unmeasured tensors (NaN)
 * and noiseless ones (+Inf) are not candidates: neither is a bad layer.
 * Biases count only with with_bias (the chart leaves them out). */
static int worst_tensors(const quant_report *r, int with_bias, int k, int *idx)
{
    int n = 0;
    for (int i = 0; i < n_tensors(r); i++) {
        const report_tensor *t = &r->tensors[i];
        double s = t->sqnr_db;
        if (isnan(s) || s == INFINITY || (!with_bias && is_role(t, "bias"))) continue;
        if (n == k && !(s < r->tensors[idx[k - 1]].sqnr_db)) continue;
        int pos = n < k ? n++ : k - 1; /* when full, the last one drops out */
        while (pos > 0 && s < r->tensors[idx[pos - 1]].sqnr_db) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = i;
    }
    return n;
}

/* Both writers end the same way: a write error anywhere (FILE keeps it
 * sticky) or a failed commit leaves no file behind. */
static int finish(atomic_file *af, qk_err *err)
{
    if (ferror(af->f)) {
        int rc = qk_fail(err, QK_EIO, "%s: write failed", af->path);
        atomic_abort(af);
        return rc;
    }
    return atomic_commit(af, err);
}

/* ---- JSON ---------------------------------------------------------------- */

/* A JSON string (RFC 8259), or null for NULL. */
static void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        long c = utf8_next(p, &n);
        switch (c) {
        case -1: fputs("\\ufffd", f); break;
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", (unsigned)c);
            else fwrite(p, 1, n, f);
        }
        p += n;
    }
    fputc('"', f);
}

/* A number, or null when it is not finite.  %.9g round-trips any float and
 * is ample for timings; doubles that matter bit for bit are not reported. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

/* An SQNR, with the sentinels described at the top of this file. */
static void json_sqnr(FILE *f, double db)
{
    if (isnan(db)) fputs("null", f);
    else if (isinf(db)) fputs(db > 0 ? "999.0" : "-999.0", f);
    else fprintf(f, "%.9g", db);
}

static void json_floats(FILE *f, const float *v, int64_t n)
{
    if (!v) {
        fputs("null", f);
        return;
    }
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (i) fputc(',', f);
        json_num(f, v[i]);
    }
    fputc(']', f);
}

static void json_ints(FILE *f, const int32_t *v, int64_t n)
{
    if (!v) {
        fputs("null", f);
        return;
    }
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) fprintf(f, i ? ",%ld" : "%ld", (long)v[i]);
    fputc(']', f);
}

static void json_tensor(FILE *f, const report_tensor *t)
{
    int64_t nc = n_channels(t);
    fputs("{\"name\":", f);
    json_str(f, t->name);
    fputs(",\"role\":", f);
    json_str(f, t->role);
    fputs(",\"node\":", f);
    json_str(f, t->node);
    fputs(",\"op_type\":", f);
    json_str(f, t->op_type);
    fputs(",\"rule\":", f);
    json_str(f, t->rule);
    fputs(",\"observer\":", f);
    json_str(f, t->observer);
    fputs(",\"quantizer\":", f);
    json_str(f, t->quantizer);
    fputs(",\"shares_with\":", f);
    json_str(f, t->shares_with);
    fprintf(f, ",\"bits\":%d,\"symmetric\":%s,\"per_channel\":%s,\"axis\":%d,\"channels\":%lld"
               ",\"qmin\":%ld,\"qmax\":%ld,\"range\":",
            t->bits, t->symmetric ? "true" : "false", t->axis >= 0 ? "true" : "false", t->axis,
            (long long)nc, (long)t->qmin, (long)t->qmax);
    if (t->lo && t->hi) {
        fputs("{\"lo\":", f);
        json_floats(f, t->lo, nc);
        fputs(",\"hi\":", f);
        json_floats(f, t->hi, nc);
        fputc('}', f);
    } else fputs("null", f);
    fputs(",\"scale\":", f);
    json_floats(f, t->scale, nc);
    fputs(",\"zero_point\":", f);
    json_ints(f, t->zero_point, nc);
    fputs(",\"sqnr_db\":", f);
    json_sqnr(f, t->sqnr_db);
    fputc('}', f);
}

int report_write_json(const quant_report *r, const char *path, qk_err *err)
{
    if (!r) return qk_fail(err, QK_EINVAL, "%s: no report to write", path);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.f;

    /* One line per tensor and per output: readable, and diffs between two
     * runs line up tensor by tensor. */
    fputs("{\n  \"model\": ", f);
    json_str(f, r->model);
    fputs(",\n  \"output\": ", f);
    json_str(f, r->output);
    fputs(",\n  \"config\": ", f);
    json_str(f, r->config);
    fputs(",\n  \"backend\": ", f);
    json_str(f, r->backend);
    fputs(",\n  \"from_record\": ", f);
    json_str(f, r->record_from);
    fprintf(f, ",\n  \"fusions\": %d,\n  \"calibration\": {\"images\": %lld, \"batches\": %d, \"seconds\": ",
            r->fusions, (long long)r->calib_images, r->calib_batches);
    json_num(f, r->calib_seconds);
    fputs(", \"images_per_s\": ", f);
    json_num(f, r->calib_seconds > 0 ? (double)r->calib_images / r->calib_seconds : NAN);
    fputs("},\n  \"total_seconds\": ", f);
    json_num(f, r->total_seconds);

    fputs(",\n  \"outputs\": [", f);
    for (int i = 0; i < n_outputs(r); i++) {
        fputs(i ? ",\n    {\"name\": " : "\n    {\"name\": ", f);
        json_str(f, r->outputs[i].name);
        fputs(", \"sqnr_db\": ", f);
        json_sqnr(f, r->outputs[i].sqnr_db);
        fputc('}', f);
    }
    fputs(n_outputs(r) ? "\n  ],\n  \"tensors\": [" : "],\n  \"tensors\": [", f);
    for (int i = 0; i < n_tensors(r); i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_tensor(f, &r->tensors[i]);
    }
    fputs(n_tensors(r) ? "\n  ],\n  \"worst_layers\": [" : "],\n  \"worst_layers\": [", f);
    int worst[WORST_N];
    int nw = worst_tensors(r, 1, WORST_N, worst);
    for (int i = 0; i < nw; i++) {
        if (i) fputs(", ", f);
        json_str(f, r->tensors[worst[i]].name);
    }
    fputs("]\n}\n", f);
    return finish(&af, err);
}

/* ---- HTML ---------------------------------------------------------------- */

/* Text for element content and attribute values alike; NULL writes `none`.
 * Bytes that are not valid UTF-8 and control characters (not allowed in
 * HTML) become U+FFFD, as in the JSON. */
static void html_str(FILE *f, const char *s, const char *none)
{
    if (!s) {
        fputs(none, f);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        long c = utf8_next(p, &n);
        if (c < 0 || (c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) fputs("\xEF\xBF\xBD", f);
        else if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == '\'') fputs("&#39;", f);
        else fwrite(p, 1, n, f);
        p += n;
    }
}

/* A float for people: 6 significant digits; the JSON has them all. */
static void html_num(FILE *f, double v)
{
    if (isnan(v)) fputs("NaN", f);
    else if (isinf(v)) fputs(v > 0 ? "\xE2\x88\x9E" : "\xE2\x88\x92\xE2\x88\x9E", f); /* ∞, −∞ */
    else fprintf(f, "%.6g", v);
}

/* CSS class of an SQNR's quality band. */
static const char *sqnr_class(double db)
{
    if (isnan(db)) return "na";
    if (db < SQNR_POOR) return "poor";
    if (db < SQNR_FAIR) return "fair";
    return "good";
}

static void html_sqnr(FILE *f, double db)
{
    if (isnan(db)) fputs("\xE2\x80\x94", f); /* — : not measured */
    else if (isinf(db)) html_num(f, db);
    else fprintf(f, "%.2f", db);
}

/* Minimum and maximum of the finite entries of a per-channel array (float or
 * int32 as v or iv); returns 0 when there is none. */
static int min_max(const float *v, const int32_t *iv, int64_t n, double *lo, double *hi)
{
    int any = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v ? v[i] : iv[i];
        if (!isfinite(x)) continue;
        if (!any || x < *lo) *lo = x;
        if (!any || x > *hi) *hi = x;
        any = 1;
    }
    return any;
}

/* One table cell's worth of a per-channel value: the single value when there
 * is one; otherwise the count and span, with every channel's value under a
 * <details> so that nothing is hidden for good.  For a range, v and v2 are
 * lo and hi; otherwise v (floats) or iv (integers) alone. */
static void html_channels(FILE *f, const float *v, const float *v2, const int32_t *iv, int64_t n)
{
    if ((!v && !iv) || n == 0) {
        fputs("\xE2\x80\x94", f);
        return;
    }
    if (n == 1) {
        if (v2) {
            fputc('[', f);
            html_num(f, v[0]);
            fputs(", ", f);
            html_num(f, v2[0]);
            fputc(']', f);
        } else if (v) html_num(f, v[0]);
        else fprintf(f, "%ld", (long)iv[0]);
        return;
    }
    double lo = 0, hi = 0, lo2 = 0, hi2 = 0;
    int any = min_max(v, iv, n, &lo, &hi);
    fprintf(f, "<details><summary>%lld channels", (long long)n);
    if (v2) { /* the span of the ranges: lowest lo .. highest hi */
        int any2 = min_max(v2, NULL, n, &lo2, &hi2);
        fputs(": [", f);
        if (any) html_num(f, lo);
        else fputc('?', f);
        fputs(", ", f);
        if (any2) html_num(f, hi2);
        else fputc('?', f);
        fputc(']', f);
    } else if (any) {
        fputs(": ", f);
        html_num(f, lo);
        fputs(" .. ", f);
        html_num(f, hi);
    }
    fputs("</summary><ol class=\"ch\" start=\"0\">", f);
    for (int64_t i = 0; i < n; i++) {
        fputs("<li>", f);
        if (v2) {
            fputc('[', f);
            html_num(f, v[i]);
            fputs(", ", f);
            html_num(f, v2[i]);
            fputc(']', f);
        } else if (v) html_num(f, v[i]);
        else fprintf(f, "%ld", (long)iv[i]);
        fputs("</li>", f);
    }
    fputs("</ol></details>", f);
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"generator\" content=\"quantkit\">\n<title>quantkit report: ";

static const char html_style[] =
    "</title>\n<style>\n"
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em 2em;color:#1f2328}\n"
    "h1{font-size:1.5em;margin-bottom:.3em}h2{font-size:1.15em;margin-top:1.8em}\n"
    "table{border-collapse:collapse}\n"
    "th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}\n"
    "thead th{background:#f6f8fa;position:sticky;top:0}\n"
    "table.summary th{background:#f6f8fa;font-weight:600}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.name code{word-break:break-all}\n"
    "tr:target{background:#fff8c5}\n"
    ".good{color:#1a7f37}.fair{color:#9a6700}.poor{color:#cf222e;font-weight:600}.na{color:#6e7781}\n"
    ".chart{overflow-x:auto;max-width:100%}\n"
    ".legend span{display:inline-block;margin-right:1.2em}\n"
    ".sw{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:.3em}\n"
    "small{color:#57606a}\n"
    "details summary{cursor:pointer;white-space:nowrap}\n"
    "ol.ch{margin:.3em 0;padding-left:3.5em;max-height:18em;overflow-y:auto;font-variant-numeric:tabular-nums}\n"
    "</style>\n</head>\n<body>\n";

/* Chart colours of the quality bands (the table uses darker text shades). */
static const char *sqnr_fill(double db)
{
    if (isnan(db)) return "#afb8c1";
    if (db < SQNR_POOR) return "#d1242f";
    if (db < SQNR_FAIR) return "#d4a72c";
    return "#2da44e";
}

static void html_summary(FILE *f, const quant_report *r)
{
    int na = 0, nw = 0, nb = 0;
    for (int i = 0; i < n_tensors(r); i++) {
        const report_tensor *t = &r->tensors[i];
        na += is_role(t, "activation");
        nw += is_role(t, "weight");
        nb += is_role(t, "bias");
    }
    fputs("<h1>Quantization report</h1>\n<table class=\"summary\">\n<tr><th>Model</th><td><code>", f);
    html_str(f, r->model, "?");
    fputs("</code></td></tr>\n<tr><th>Output</th><td><code>", f);
    html_str(f, r->output, "\xE2\x80\x94");
    fputs("</code></td></tr>\n<tr><th>Config</th><td><code>", f);
    html_str(f, r->config, "\xE2\x80\x94");
    fputs("</code></td></tr>\n<tr><th>Backend</th><td>", f);
    html_str(f, r->backend, "?");
    fprintf(f, "</td></tr>\n<tr><th>Fusions</th><td>%d rewrite%s</td></tr>\n<tr><th>Calibration</th><td>",
            r->fusions, r->fusions == 1 ? "" : "s");
    if (r->record_from) {
        /* Parameters came from a record: nothing was calibrated. */
        fputs("none: parameters read from <code>", f);
        html_str(f, r->record_from, "");
        fputs("</code>", f);
    } else {
        fprintf(f, "%lld images in %d batch%s, ", (long long)r->calib_images, r->calib_batches,
                r->calib_batches == 1 ? "" : "es");
        html_num(f, r->calib_seconds);
        fputs(" s", f);
        if (r->calib_seconds > 0) fprintf(f, " (%.1f images/s)", (double)r->calib_images / r->calib_seconds);
    }
    fputs("</td></tr>\n<tr><th>Total time</th><td>", f);
    html_num(f, r->total_seconds);
    fprintf(f, " s</td></tr>\n<tr><th>Quantized tensors</th><td>%d activation%s, %d weight%s, %d bias%s</td></tr>\n"
               "</table>\n",
            na, na == 1 ? "" : "s", nw, nw == 1 ? "" : "s", nb, nb == 1 ? "" : "es");

    fputs("<h2>Final outputs</h2>\n", f);
    if (!n_outputs(r)) {
        fputs("<p>No output was measured.</p>\n", f);
        return;
    }
    fputs("<table>\n<thead><tr><th>Output</th><th>SQNR (dB)</th></tr></thead>\n<tbody>\n", f);
    for (int i = 0; i < n_outputs(r); i++) {
        const report_output *o = &r->outputs[i];
        fputs("<tr><td><code>", f);
        html_str(f, o->name, "?");
        fprintf(f, "</code></td><td class=\"num %s\">", sqnr_class(o->sqnr_db));
        html_sqnr(f, o->sqnr_db);
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

/* The bar chart: one bar per activation and weight in graph order, height
 * the SQNR, colour its quality band; weights are drawn lighter so the two
 * kinds can be told apart without losing the colour.  Bars link to their
 * table row and carry a <title> tooltip; the worst WORST_N get their rank
 * above the bar and a list below the chart. */
static void html_chart(FILE *f, const quant_report *r)
{
    int n = 0;
    double top = 0;
    for (int i = 0; i < n_tensors(r); i++) {
        const report_tensor *t = &r->tensors[i];
        if (is_role(t, "bias")) continue;
        n++;
        if (isfinite(t->sqnr_db) && t->sqnr_db > top) top = t->sqnr_db;
    }
    fputs("<h2>SQNR per tensor</h2>\n", f);
    if (n == 0) {
        fputs("<p>No activation or weight was quantized.</p>\n", f);
        return;
    }
    /* The scale: whole tens, at least 40 dB so that the bands read as
     * bands; capped so one nearly lossless tensor does not flatten the
     * rest (taller bars are clipped at the top and say so in their title). */
    double ymax = ceil(top / 10.0) * 10.0;
    if (ymax < 40) ymax = 40;
    if (ymax > 120) ymax = 120;
    double step = ymax > 60 ? 20 : 10;

    /* Bars shrink to fit about 720 px, but not below a clickable 5 px:
     * large models scroll sideways instead. */
    double pitch = 720.0 / n;
    if (pitch > 24) pitch = 24;
    if (pitch < 5) pitch = 5;
    double bw = pitch > 8 ? pitch * 0.75 : pitch - 1;
    const double ml = 44, mr = 12, mt = 26, mb = 26, ph = 240;
    double pw = pitch * n, width = ml + pw + mr, height = mt + ph + mb;

    int worst[WORST_N];
    int nworst = worst_tensors(r, 0, WORST_N, worst);

    fprintf(f,
            "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"SQNR per tensor in dB\" "
            "font-family=\"system-ui,sans-serif\" font-size=\"11\">\n",
            width, height, width, height);
    /* Grid, axis labels and the band limits. */
    for (double g = 0; g <= ymax + 1e-9; g += step) {
        double y = mt + ph - ph * g / ymax;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#57606a\">%.0f</text>\n",
                ml, y, ml + pw, y, g == 0 ? "#57606a" : "#eaeef2", ml - 6, y + 4, g);
    }
    const double bands[2] = {SQNR_POOR, SQNR_FAIR};
    for (int b = 0; b < 2; b++) {
        double y = mt + ph - ph * bands[b] / ymax;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>\n",
                ml, y, ml + pw, y, sqnr_fill(bands[b] - 1));
    }
    fprintf(f, "<text x=\"12\" y=\"%.1f\" transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\" "
               "fill=\"#57606a\">SQNR (dB)</text>\n",
            mt + ph / 2, mt + ph / 2);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#57606a\">"
               "%d tensors in graph order</text>\n",
            ml + pw / 2, mt + ph + 18, n);

    int k = 0;
    for (int i = 0; i < n_tensors(r); i++) {
        const report_tensor *t = &r->tensors[i];
        if (is_role(t, "bias")) continue;
        double s = t->sqnr_db, x = ml + k * pitch + (pitch - bw) / 2, h;
        k++;
        if (isnan(s)) h = 2;                 /* not measured: a grey stub */
        else if (s >= ymax) h = ph;          /* includes +Inf */
        else if (s <= 0) h = 2;              /* no signal left: a red stub */
        else h = ph * s / ymax;
        if (h < 2) h = 2;
        fprintf(f, "<a href=\"#t%d\"><rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"%s>"
                   "<title>",
                i, x, mt + ph - h, bw, h, sqnr_fill(s), is_role(t, "weight") ? " fill-opacity=\"0.55\"" : "");
        html_str(f, t->name, "?");
        fputs(" (", f);
        html_str(f, t->role, "?");
        fputs("): ", f);
        if (isnan(s)) fputs("not measured", f);
        else if (s == INFINITY) fputs("no quantization noise", f);
        else {
            fprintf(f, "%.2f dB", s);
            if (s > ymax) fputs(" (clipped)", f);
        }
        fputs("</title></rect></a>\n", f);
        for (int w = 0; w < nworst; w++)
            if (worst[w] == i)
                fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-weight=\"bold\" "
                           "fill=\"#1f2328\">%d</text>\n",
                        x + bw / 2, mt + ph - h - 4, w + 1);
    }
    fputs("</svg></div>\n<p class=\"legend\">"
          "<span><i class=\"sw\" style=\"background:#2da44e\"></i>\xE2\x89\xA5 20 dB</span>"
          "<span><i class=\"sw\" style=\"background:#d4a72c\"></i>10\xE2\x80\x93" "20 dB</span>"
          "<span><i class=\"sw\" style=\"background:#d1242f\"></i>&lt; 10 dB</span>"
          "<span><i class=\"sw\" style=\"background:#afb8c1\"></i>not measured</span>"
          "<span>lighter bars: weights</span></p>\n",
          f);
    if (nworst) {
        fputs("<p>Lowest SQNR:</p>\n<ol>\n", f);
        for (int w = 0; w < nworst; w++) {
            const report_tensor *t = &r->tensors[worst[w]];
            fprintf(f, "<li><a href=\"#t%d\"><code>", worst[w]);
            html_str(f, t->name, "?");
            fputs("</code></a> <small>(", f);
            html_str(f, t->role, "?");
            fprintf(f, ")</small>: <span class=\"%s\">", sqnr_class(t->sqnr_db));
            html_sqnr(f, t->sqnr_db);
            fputs(" dB</span></li>\n", f);
        }
        fputs("</ol>\n", f);
    }
}

static void html_tensor_row(FILE *f, int i, const report_tensor *t)
{
    int64_t nc = n_channels(t);
    fprintf(f, "<tr id=\"t%d\"><td class=\"num\">%d</td><td class=\"name\"><code>", i, i);
    html_str(f, t->name, "?");
    fputs("</code>", f);
    if (t->shares_with) {
        fputs("<br><small>shares parameters with <code>", f);
        html_str(f, t->shares_with, "");
        fputs("</code></small>", f);
    }
    fputs("</td><td>", f);
    html_str(f, t->role, "?");
    fputs("</td><td><code>", f);
    html_str(f, t->node, "?");
    fputs("</code>", f);
    if (t->op_type) {
        fputs(" <small>", f);
        html_str(f, t->op_type, "");
        fputs("</small>", f);
    }
    fputs("</td><td>", f);
    html_str(f, t->rule, "\xE2\x80\x94");
    fputs("</td><td>", f);
    html_str(f, t->observer, "\xE2\x80\x94");
    if (t->quantizer) {
        fputs(" / ", f);
        html_str(f, t->quantizer, "");
    }
    fprintf(f, "</td><td>%d-bit %s ", t->bits, t->symmetric ? "symmetric" : "asymmetric");
    if (t->axis >= 0) fprintf(f, "per-channel (axis %d)", t->axis);
    else fputs("per-tensor", f);
    fprintf(f, "<br><small>q \xE2\x88\x88 [%ld, %ld]</small></td><td class=\"num\">", (long)t->qmin, (long)t->qmax);
    if (t->lo && t->hi) html_channels(f, t->lo, t->hi, NULL, nc);
    else html_channels(f, NULL, NULL, NULL, 0);
    fputs("</td><td class=\"num\">", f);
    html_channels(f, t->scale, NULL, NULL, nc);
    fputs("</td><td class=\"num\">", f);
    html_channels(f, NULL, NULL, t->zero_point, nc);
    fprintf(f, "</td><td class=\"num %s\">", sqnr_class(t->sqnr_db));
    html_sqnr(f, t->sqnr_db);
    fputs("</td></tr>\n", f);
}

int report_write_html(const quant_report *r, const char *path, qk_err *err)
{
    if (!r) return qk_fail(err, QK_EINVAL, "%s: no report to write", path);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc) return rc;
    FILE *f = af.f;

    fputs(html_head, f);
    html_str(f, r->model, "?");
    fputs(html_style, f);
    html_summary(f, r);
    html_chart(f, r);

    fputs("<h2>Tensors</h2>\n", f);
    if (!n_tensors(r)) fputs("<p>No tensor was quantized.</p>\n", f);
    else {
        fputs("<table class=\"tensors\">\n<thead><tr><th>#</th><th>Tensor</th><th>Role</th><th>Node</th>"
              "<th>Rule</th><th>Observer / quantizer</th><th>Scheme</th><th>Range</th><th>Scale</th>"
              "<th>Zero point</th><th>SQNR (dB)</th></tr></thead>\n<tbody>\n",
              f);
        for (int i = 0; i < n_tensors(r); i++) html_tensor_row(f, i, &r->tensors[i]);
        fputs("</tbody>\n</table>\n", f);
    }
    fputs("<p><small>SQNR: quantized against float model on the calibration data; "
          "\xE2\x80\x94 not measured, \xE2\x88\x9E no quantization noise.</small></p>\n</body>\n</html>\n",
          f);
    return finish(&af, err);
}

/* ---- ownership ------------------------------------------------------------ */

void report_free(quant_report *r)
{
    if (!r) return;
    free(r->model);
    free(r->output);
    free(r->config);
    free(r->backend);
    free(r->record_from);
    if (r->tensors) {
        for (int i = 0; i < r->n_tensors; i++) {
            report_tensor *t = &r->tensors[i];
            free(t->name);
            free(t->node);
            free(t->op_type);
            free(t->rule);
            free(t->observer);
            free(t->quantizer);
            free(t->shares_with);
            free(t->lo);
            free(t->hi);
            free(t->scale);
            free(t->zero_point);
        }
        free(r->tensors);
    }
    if (r->outputs) {
        for (int i = 0; i < r->n_outputs; i++) free(r->outputs[i].name);
        free(r->outputs);
    }
    free(r);
}
