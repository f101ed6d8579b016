/* This file implements quantkit's YAML configuration (see config.h and the
 * "YAML config (version 1)" section of DESIGN.md).
 *
 * libyaml's loader (yaml_parser_load) builds the node tree with start marks;
 * this file walks it against the version-1 schema and copies what it finds
 * into plain structs, so nothing outside this file sees libyaml and the
 * document can be freed right after loading.  The schema walk is
 * hand-written rather than table-driven because each level has its own small
 * rules (version first, names of op types, plugin paths) and its own hints
 * for the common mistakes (`bits` directly under an op type). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>
#include "config.h"
#include "op.h"

/* Generic maps copy every node an alias points to; these bounds keep an
 * alias bomb ("billion laughs") or an alias cycle from exhausting memory or
 * the stack. */
#define MAX_DEPTH 64
#define MAX_VALUES 100000
/* A config is hand-written text; anything bigger is a wrong file. */
#define MAX_FILE_BYTES (16L << 20)

/* ---- allocation, with a failure hook for fault tests --------------------- */

static long fail_after; /* 0: off; 1: this and every later allocation fails */

void config_fail_alloc_after(long n) { fail_after = n; }

static bool alloc_fails(void)
{
    if (fail_after <= 0)
        return false;
    if (fail_after == 1)
        return true;
    fail_after--;
    return false;
}

static void *xcalloc(size_t n, size_t size)
{
    if (alloc_fails())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

static char *xstrndup(const char *s, size_t n)
{
    if (alloc_fails())
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || alloc_fails())
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- did-you-mean --------------------------------------------------------- */

/* Optimal-string-alignment distance (Levenshtein plus adjacent
 * transpositions, so `per_chanenl` is one edit away), ignoring case so that
 * `Bits` suggests `bits`.  Keys are short; longer inputs are capped rather
 * than allocating. */
static int edit_distance(const char *a, const char *b)
{
    enum { MAXL = 63 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXL || lb > MAXL)
        return INT_MAX;
    int d[MAXL + 1][MAXL + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The known key closest to key, when it is close enough to be the key the
 * user meant (distance <= max(2, len/3)); otherwise NULL. */
static const char *closest(const char *key, const char *const *known)
{
    int len = (int)strlen(key);
    int limit = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    int best_d = INT_MAX;
    for (size_t i = 0; known && known[i]; i++) {
        int dist = edit_distance(key, known[i]);
        if (dist < best_d) {
            best_d = dist;
            best = known[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

/* Appends "; did you mean `x`?" or the list of known keys to buf. */
static void suggest(char *buf, size_t n, const char *key, const char *const *known,
                    const char *hint, const char *what)
{
    size_t len = strlen(buf);
    const char *best = closest(key, known);
    if (best) {
        snprintf(buf + len, n - len, "; did you mean `%s`?", best);
        return;
    }
    if (hint) {
        snprintf(buf + len, n - len, "; %s", hint);
        return;
    }
    if (!known || !known[0]) {
        snprintf(buf + len, n - len, "; %s takes no keys", what);
        return;
    }
    snprintf(buf + len, n - len, "; known keys: ");
    for (size_t i = 0; known[i]; i++) {
        len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", i ? ", " : "", known[i]);
    }
}

/* Copies a user's text into buf for a message: at most 40 characters, with
 * control characters replaced so the message stays on one line. */
static const char *quote_text(char *buf, size_t n, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < n; i++) {
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- scalar typing (YAML 1.2 core schema) ----------------------------------- */

static bool all_in(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, s[i]))
            return false;
    return true;
}

static bool text_is(const char *s, size_t n, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strlen(words[i]) == n && memcmp(s, words[i], n) == 0)
            return true;
    return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
                                        NULL};
static const char *const ninf_words[] = {"-.inf", "-.Inf", "-.INF", NULL};
static const char *const nan_words[] = {".nan", ".NaN", ".NAN", NULL};

static bool text_is_int(const char *s, size_t n)
{
    if (n > 2 && s[0] == '0' && s[1] == 'x')
        return all_in(s + 2, n - 2, "0123456789abcdefABCDEF");
    if (n > 2 && s[0] == '0' && s[1] == 'o')
        return all_in(s + 2, n - 2, "01234567");
    if (n > 0 && (s[0] == '-' || s[0] == '+'))
        s++, n--;
    return all_in(s, n, "0123456789");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool text_is_float(const char *s, size_t n)
{
    if (text_is(s, n, inf_words) || text_is(s, n, ninf_words) || text_is(s, n, nan_words))
        return true;
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && isdigit((unsigned char)s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t e = 0;
        while (i < n && isdigit((unsigned char)s[i]))
            i++, e++;
        if (e == 0)
            return false;
    }
    return i == n;
}

/* Converts text that text_is_int accepted; *overflow tells a value that
 * does not fit in 64 bits (then *v is clamped). */
static long long int_of(const char *s, size_t n, bool *overflow)
{
    char buf[96];
    if (n >= sizeof buf) {
        *overflow = true;
        return s[0] == '-' ? LLONG_MIN : LLONG_MAX;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    int base = 10;
    const char *p = buf;
    if (n > 2 && buf[0] == '0' && buf[1] == 'x')
        base = 16, p += 2;
    else if (n > 2 && buf[0] == '0' && buf[1] == 'o')
        base = 8, p += 2;
    errno = 0;
    long long v = strtoll(p, NULL, base);
    *overflow = errno == ERANGE;
    return v;
}

static double float_of(const char *s, size_t n)
{
    if (text_is(s, n, inf_words))
        return INFINITY;
    if (text_is(s, n, ninf_words))
        return -INFINITY;
    if (text_is(s, n, nan_words))
        return NAN;
    char buf[128];
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

/* ---- the parse context and its errors ------------------------------------- */

typedef struct pctx {
    const char *file;
    yaml_document_t *doc;
    qk_err *err;
    long budget;   /* values generic maps may still copy */
} pctx;

/* Messages are one line by contract, but they quote names from the file
 * (a node called "a\nb" is legal YAML): control characters become '?'. */
static int one_line(qk_err *err, int code)
{
    if (err)
        for (char *c = err->msg; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    return code;
}

static int vfail_at(pctx *p, int line, int column, const char *fmt, va_list ap)
{
    char msg[QK_ERRMSG_LEN];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return one_line(p->err, qk_fail(p->err, QK_EINVAL, "%s:%d:%d: %s", p->file, line, column, msg));
}

static int fail_at(pctx *p, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(pctx *p, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(p, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

/* An error located at the start of node n. */
static int fail_node(pctx *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_node(pctx *p, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail_at(p, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, fmt, ap);
    va_end(ap);
    return rc;
}

static int oom(pctx *p)
{
    return qk_fail(p->err, QK_ENOMEM, "%s: out of memory while reading the configuration",
                   p->file);
}

static yaml_node_t *node_at(pctx *p, int index) { return yaml_document_get_node(p->doc, index); }

static cfg_mark mark_of(const yaml_node_t *n)
{
    return (cfg_mark){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

static const char *scalar_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* Joins "quantize.weight" and "bits" for messages; truncation only shortens
 * the message. */
static const char *join(char *buf, size_t n, const char *path, const char *key)
{
    if (path && path[0])
        snprintf(buf, n, "%s.%s", path, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

/* The type of a scalar node.  Plain untagged scalars are typed by their text;
 * quoted ones are strings; explicit !!int, !!float, !!bool, !!null tags are
 * honoured and must match their text. */
static int scalar_type(pctx *p, const yaml_node_t *n, const char *path, cfg_type *t)
{
    const char *s = scalar_text(n);
    size_t len = n->data.scalar.length;
    const char *tag = (const char *)n->tag;
    if (memchr(s, '\0', len))
        return fail_node(p, n, "%s: text contains a NUL character", path);
    if (!tag || strcmp(tag, YAML_STR_TAG) == 0) {
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            *t = CFG_STRING;
        else if (text_is(s, len, null_words))
            *t = CFG_NULL;
        else if (text_is(s, len, true_words) || text_is(s, len, false_words))
            *t = CFG_BOOL;
        else if (text_is_int(s, len))
            *t = CFG_INT;
        else if (text_is_float(s, len))
            *t = CFG_FLOAT;
        else
            *t = CFG_STRING;
        return 0;
    }
    bool ok;
    if (strcmp(tag, YAML_INT_TAG) == 0)
        *t = CFG_INT, ok = text_is_int(s, len);
    else if (strcmp(tag, YAML_FLOAT_TAG) == 0)
        *t = CFG_FLOAT, ok = text_is_float(s, len) || text_is_int(s, len);
    else if (strcmp(tag, YAML_BOOL_TAG) == 0)
        *t = CFG_BOOL, ok = text_is(s, len, true_words) || text_is(s, len, false_words);
    else if (strcmp(tag, YAML_NULL_TAG) == 0)
        *t = CFG_NULL, ok = text_is(s, len, null_words);
    else
        return fail_node(p, n, "%s: unsupported tag `%s`", path, tag);
    if (!ok) {
        char q[64];
        return fail_node(p, n, "%s: '%s' is not a valid %s", path, quote_text(q, sizeof q, s, len),
                         cfg_type_name(*t));
    }
    return 0;
}

/* "string 'eight'", "integer '17'", "null", "a list", "a mapping". */
static const char *describe(pctx *p, const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    cfg_type t;
    qk_err scratch;
    qk_err *keep = p->err;
    p->err = &scratch; /* a bad tag here is reported by whoever reads the value */
    int rc = scalar_type(p, n, "", &t);
    p->err = keep;
    if (rc < 0)
        t = CFG_STRING;
    if (t == CFG_NULL)
        return "null";
    char q[64];
    snprintf(buf, size, "%s '%s'", cfg_type_name(t),
             quote_text(q, sizeof q, scalar_text(n), n->data.scalar.length));
    return buf;
}

/* Fails with "PATH: expected WANT, got string 'x'" at n. */
static int wrong_type(pctx *p, const yaml_node_t *n, const char *path, const char *want)
{
    char d[96];
    return fail_node(p, n, "%s: expected %s, got %s", path, want, describe(p, n, d, sizeof d));
}

/* Typed readers for schema fields.  path names the field in messages. */

static int read_int(pctx *p, const yaml_node_t *n, const char *path, long long lo, long long hi,
                    int *out)
{
    cfg_type t;
    if (n->type != YAML_SCALAR_NODE)
        return wrong_type(p, n, path, "an integer");
    int rc = scalar_type(p, n, path, &t);
    if (rc < 0)
        return rc;
    if (t != CFG_INT)
        return wrong_type(p, n, path, "an integer");
    bool overflow;
    long long v = int_of(scalar_text(n), n->data.scalar.length, &overflow);
    if (overflow || v < lo || v > hi) {
        char q[64];
        quote_text(q, sizeof q, scalar_text(n), n->data.scalar.length);
        if (hi < INT_MAX)
            return fail_node(p, n, "%s: %s is outside %lld..%lld", path, q, lo, hi);
        if (v < lo)
            return fail_node(p, n, "%s: %s must be >= %lld", path, q, lo);
        return fail_node(p, n, "%s: %s is too large (at most %lld)", path, q, hi);
    }
    *out = (int)v;
    return 0;
}

static int read_bool(pctx *p, const yaml_node_t *n, const char *path, bool *out)
{
    cfg_type t;
    if (n->type != YAML_SCALAR_NODE)
        return wrong_type(p, n, path, "a boolean (true or false)");
    int rc = scalar_type(p, n, path, &t);
    if (rc < 0)
        return rc;
    if (t != CFG_BOOL)
        return wrong_type(p, n, path, "a boolean (true or false)");
    *out = text_is(scalar_text(n), n->data.scalar.length, true_words);
    return 0;
}

/* A non-empty string; *out is a fresh copy (any previous value freed). */
static int read_str(pctx *p, const yaml_node_t *n, const char *path, char **out)
{
    cfg_type t;
    if (n->type != YAML_SCALAR_NODE)
        return wrong_type(p, n, path, "a string");
    int rc = scalar_type(p, n, path, &t);
    if (rc < 0)
        return rc;
    if (t != CFG_STRING)
        return wrong_type(p, n, path, "a string");
    if (n->data.scalar.length == 0)
        return fail_node(p, n, "%s: must not be empty", path);
    char *s = xstrndup(scalar_text(n), n->data.scalar.length);
    if (!s)
        return oom(p);
    free(*out);
    *out = s;
    return 0;
}

/* True for `key:` with nothing after it (or `~`/`null`): a section given
 * without content, read as if it were empty. */
static bool is_null(pctx *p, const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    cfg_type t;
    qk_err scratch;
    qk_err *keep = p->err;
    p->err = &scratch;
    int rc = scalar_type(p, n, "", &t);
    p->err = keep;
    return rc == 0 && t == CFG_NULL;
}

/* ---- mappings: keys, duplicates, unknown keys ------------------------------ */

/* The text of a mapping key (keys must be scalars without NUL). */
static int key_of(pctx *p, const yaml_node_t *k, const char *path, const char **out)
{
    if (k->type != YAML_SCALAR_NODE) {
        char d[96];
        return fail_node(p, k, "%s%skeys must be plain names, got %s", path, path[0] ? ": " : "",
                         describe(p, k, d, sizeof d));
    }
    if (memchr(scalar_text(k), '\0', k->data.scalar.length))
        return fail_node(p, k, "%s%skey contains a NUL character", path, path[0] ? ": " : "");
    *out = scalar_text(k);
    return 0;
}

typedef struct keyref {
    const yaml_node_t *node;
    size_t index;
} keyref;

static bool same_key(const yaml_node_t *a, const yaml_node_t *b)
{
    return a->data.scalar.length == b->data.scalar.length &&
           memcmp(a->data.scalar.value, b->data.scalar.value, a->data.scalar.length) == 0;
}

static int keyref_cmp(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    size_t lx = x->node->data.scalar.length, ly = y->node->data.scalar.length;
    int c = memcmp(x->node->data.scalar.value, y->node->data.scalar.value, lx < ly ? lx : ly);
    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Checks that m's keys are scalars and unique.  libyaml accepts duplicate
 * keys, and a silently ignored second `bits:` is exactly the kind of mistake
 * a config loader must catch.  Sorting keeps huge `nodes:` maps linear-ish;
 * the reported duplicate is the first one in file order. */
static int check_keys(pctx *p, const yaml_node_t *m, const char *path)
{
    size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    for (size_t i = 0; i < n; i++) {
        const char *k;
        int rc = key_of(p, node_at(p, m->data.mapping.pairs.start[i].key), path, &k);
        if (rc < 0)
            return rc;
    }
    if (n < 2)
        return 0;
    keyref *refs = xcalloc(n, sizeof *refs);
    if (!refs)
        return oom(p);
    for (size_t i = 0; i < n; i++)
        refs[i] = (keyref){node_at(p, m->data.mapping.pairs.start[i].key), i};
    qsort(refs, n, sizeof *refs, keyref_cmp);
    /* Equal keys sort next to each other, in file order within a run: the
     * run's first element is the original, the next one the duplicate. */
    size_t first = 0, second = SIZE_MAX;
    for (size_t r = 0; r + 1 < n;) {
        size_t end = r + 1;
        while (end < n && same_key(refs[r].node, refs[end].node))
            end++;
        if (end > r + 1 && refs[r + 1].index < second) {
            first = refs[r].index;
            second = refs[r + 1].index;
        }
        r = end;
    }
    free(refs);
    if (second == SIZE_MAX)
        return 0;
    const yaml_node_t *k1 = node_at(p, m->data.mapping.pairs.start[first].key);
    const yaml_node_t *k2 = node_at(p, m->data.mapping.pairs.start[second].key);
    char q[64];
    quote_text(q, sizeof q, scalar_text(k2), k2->data.scalar.length);
    return fail_node(p, k2, "%s%sduplicate key `%s` (first given at line %d, column %d)", path,
                     path[0] ? ": " : "", q, (int)k1->start_mark.line + 1,
                     (int)k1->start_mark.column + 1);
}

static int unknown_key(pctx *p, const yaml_node_t *k, const char *where,
                       const char *const *known, const char *hint)
{
    char msg[QK_ERRMSG_LEN - 64], q[64];
    const char *key = scalar_text(k);
    quote_text(q, sizeof q, key, k->data.scalar.length);
    if (where && where[0])
        snprintf(msg, sizeof msg, "unknown key `%s` in %s", q, where);
    else
        snprintf(msg, sizeof msg, "unknown key `%s` at the top level", q);
    suggest(msg, sizeof msg, key, known, hint, where);
    return fail_node(p, k, "%s", msg);
}

static bool in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

static const char *const top_keys[] = {"version",     "backend",   "backend_options",
                                       "fusions",     "calibration", "quantize",
                                       "op_types",    "nodes",     "plugin_path",
                                       NULL};
static const char *const calib_keys[] = {"batch_size", "batch_num", NULL};
static const char *const rule_keys[] = {"activation", "weight", "skip", NULL};
static const char *const tensor_keys[] = {"observer", "observer_args", "quantizer",
                                          "quantizer_args", "bits", "symmetric",
                                          "per_channel", NULL};

/* ---- generic maps (plugin arguments) --------------------------------------- */

static void value_free(cfg_value *v);

static void map_free(cfg_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->entries[i].key);
        value_free(&m->entries[i].value);
    }
    free(m->entries);
    free(m->path);
    m->entries = NULL;
    m->path = NULL;
    m->n = 0;
}

static void value_free(cfg_value *v)
{
    if (v->type == CFG_STRING)
        free(v->u.s);
    else if (v->type == CFG_LIST) {
        for (size_t i = 0; i < v->u.list.n; i++)
            value_free(&v->u.list.items[i]);
        free(v->u.list.items);
    } else if (v->type == CFG_MAP)
        map_free(&v->u.map);
    v->type = CFG_NULL;
}

static int to_map(pctx *p, const yaml_node_t *n, const char *path, int depth, cfg_map *m);

static int to_value(pctx *p, const yaml_node_t *n, const char *path, int depth, cfg_value *v)
{
    v->type = CFG_NULL;
    v->line = (int)n->start_mark.line + 1;
    v->column = (int)n->start_mark.column + 1;
    if (--p->budget < 0)
        return fail_node(p, n, "%s: more than %d values (an alias expanding too far?)", path,
                         MAX_VALUES);
    if (depth > MAX_DEPTH)
        return fail_node(p, n, "%s: nested deeper than %d levels (a recursive alias?)", path,
                         MAX_DEPTH);
    if (n->type == YAML_MAPPING_NODE) {
        v->type = CFG_MAP;
        return to_map(p, n, path, depth, &v->u.map);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        v->type = CFG_LIST;
        v->u.list.items = xcalloc(count, sizeof *v->u.list.items);
        if (!v->u.list.items)
            return oom(p);
        for (size_t i = 0; i < count; i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            v->u.list.n = i + 1;
            int rc = to_value(p, node_at(p, n->data.sequence.items.start[i]), sub, depth + 1,
                              &v->u.list.items[i]);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    cfg_type t;
    int rc = scalar_type(p, n, path, &t);
    if (rc < 0)
        return rc;
    const char *s = scalar_text(n);
    size_t len = n->data.scalar.length;
    switch (t) {
    case CFG_INT: {
        bool overflow;
        v->u.i = int_of(s, len, &overflow);
        if (overflow) {
            char q[64];
            return fail_node(p, n, "%s: %s does not fit in a 64-bit integer", path,
                             quote_text(q, sizeof q, s, len));
        }
        break;
    }
    case CFG_FLOAT:
        v->u.f = float_of(s, len);
        break;
    case CFG_BOOL:
        v->u.b = text_is(s, len, true_words);
        break;
    case CFG_STRING:
        v->u.s = xstrndup(s, len);
        if (!v->u.s)
            return oom(p);
        break;
    default:
        break;
    }
    v->type = t;
    return 0;
}

/* Copies mapping (or null: empty map) n into m; m->path is set first so a
 * partly built map can always be freed. */
static int to_map(pctx *p, const yaml_node_t *n, const char *path, int depth, cfg_map *m)
{
    *m = (cfg_map){.file = p->file,
                   .line = (int)n->start_mark.line + 1,
                   .column = (int)n->start_mark.column + 1};
    m->path = xstrdup(path);
    if (!m->path)
        return oom(p);
    if (is_null(p, n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return wrong_type(p, n, path, "a mapping");
    int rc = check_keys(p, n, path);
    if (rc < 0)
        return rc;
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    m->entries = xcalloc(count, sizeof *m->entries);
    if (!m->entries)
        return oom(p);
    for (size_t i = 0; i < count; i++) {
        const yaml_node_pair_t *pair = &n->data.mapping.pairs.start[i];
        const yaml_node_t *k = node_at(p, pair->key);
        cfg_entry *e = &m->entries[i];
        m->n = i + 1;
        e->line = (int)k->start_mark.line + 1;
        e->column = (int)k->start_mark.column + 1;
        e->key = xstrndup(scalar_text(k), k->data.scalar.length);
        if (!e->key)
            return oom(p);
        char sub[256];
        rc = to_value(p, node_at(p, pair->value), join(sub, sizeof sub, path, e->key),
                      depth + 1, &e->value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Setters of optional schema fields: they record that the field was given
 * and where its key is, then read the value. */
static int opt_str(pctx *p, const yaml_node_t *k, const yaml_node_t *v, const char *path,
                   cfg_opt_str *out)
{
    out->set = true;
    out->at = mark_of(k);
    return read_str(p, v, path, &out->value);
}

static int opt_int(pctx *p, const yaml_node_t *k, const yaml_node_t *v, const char *path,
                   long long lo, long long hi, cfg_opt_int *out)
{
    out->set = true;
    out->at = mark_of(k);
    return read_int(p, v, path, lo, hi, &out->value);
}

static int opt_bool(pctx *p, const yaml_node_t *k, const yaml_node_t *v, const char *path,
                    cfg_opt_bool *out)
{
    out->set = true;
    out->at = mark_of(k);
    return read_bool(p, v, path, &out->value);
}

static int read_map(pctx *p, const yaml_node_t *k, const yaml_node_t *v, const char *path,
                    cfg_opt_map *out)
{
    map_free(&out->value);
    out->set = true;
    out->at = mark_of(k);
    return to_map(p, v, path, 0, &out->value);
}

/* ---- the schema ------------------------------------------------------------- */

static int parse_tensor(pctx *p, const yaml_node_t *n, const char *path, qk_tensor_rule *t)
{
    if (is_null(p, n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return wrong_type(p, n, path, "a mapping (observer, bits, symmetric, ...)");
    int rc = check_keys(p, n, path);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
         rc == 0 && pr < n->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        const char *key = scalar_text(k);
        char sub[256];
        join(sub, sizeof sub, path, key);
        if (strcmp(key, "observer") == 0)
            rc = opt_str(p, k, v, sub, &t->observer);
        else if (strcmp(key, "quantizer") == 0)
            rc = opt_str(p, k, v, sub, &t->quantizer);
        else if (strcmp(key, "observer_args") == 0)
            rc = read_map(p, k, v, sub, &t->observer_args);
        else if (strcmp(key, "quantizer_args") == 0)
            rc = read_map(p, k, v, sub, &t->quantizer_args);
        else if (strcmp(key, "bits") == 0)
            rc = opt_int(p, k, v, sub, 2, 16, &t->bits);
        else if (strcmp(key, "symmetric") == 0)
            rc = opt_bool(p, k, v, sub, &t->symmetric);
        else if (strcmp(key, "per_channel") == 0)
            rc = opt_bool(p, k, v, sub, &t->per_channel);
        else
            rc = unknown_key(p, k, path, tensor_keys,
                             strcmp(key, "skip") == 0
                                 ? "`skip` belongs to the rule, next to `activation:` and `weight:`"
                                 : NULL);
    }
    return rc;
}

static int parse_rule(pctx *p, const yaml_node_t *n, const char *path, qk_rule *r)
{
    if (is_null(p, n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return wrong_type(p, n, path, "a mapping (activation, weight, skip)");
    int rc = check_keys(p, n, path);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
         rc == 0 && pr < n->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        const char *key = scalar_text(k);
        char sub[256];
        join(sub, sizeof sub, path, key);
        if (strcmp(key, "activation") == 0)
            rc = parse_tensor(p, v, sub, &r->activation);
        else if (strcmp(key, "weight") == 0)
            rc = parse_tensor(p, v, sub, &r->weight);
        else if (strcmp(key, "skip") == 0)
            rc = opt_bool(p, k, v, sub, &r->skip);
        else
            rc = unknown_key(p, k, path, rule_keys,
                             in_list(key, tensor_keys)
                                 ? "tensor settings go under `activation:` or `weight:`"
                                 : NULL);
    }
    return rc;
}

/* ONNX op types are case-sensitive; `conv:` would silently match nothing.
 * Names the op table does not know at all are accepted: a config may list
 * ops of other models or of custom domains. */
static int check_op_type(pctx *p, const yaml_node_t *k, const char *name)
{
    if (op_lookup(name))
        return 0;
    int n = 0;
    const op_def *ops = op_table(&n);
    for (int i = 0; i < n; i++)
        if (strcasecmp(ops[i].name, name) == 0)
            return fail_node(p, k,
                             "op_types: unknown op type `%s`; op types are case-sensitive, did "
                             "you mean `%s`?",
                             name, ops[i].name);
    return 0;
}

static int parse_rules(pctx *p, const yaml_node_t *n, const char *section, bool op_types,
                       qk_rule **out, size_t *count)
{
    if (is_null(p, n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return wrong_type(p, n, section,
                          op_types ? "a mapping of op types to rules"
                                   : "a mapping of node names to rules");
    int rc = check_keys(p, n, section);
    if (rc < 0)
        return rc;
    size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    qk_rule *rules = xcalloc(total, sizeof *rules);
    if (!rules)
        return oom(p);
    /* A second `op_types:` is a duplicate key, so *out is still empty here. */
    *out = rules;
    for (size_t i = 0; i < total; i++) {
        const yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        const yaml_node_t *k = node_at(p, pr->key);
        const char *name = scalar_text(k);
        if (k->data.scalar.length == 0)
            return fail_node(p, k, "%s: empty %s", section, op_types ? "op type" : "node name");
        if (op_types && (rc = check_op_type(p, k, name)) < 0)
            return rc;
        qk_rule *r = &rules[i];
        *count = i + 1;
        r->at = mark_of(k);
        r->name = xstrndup(name, k->data.scalar.length);
        r->label = xprintf("%s.%s", section, name);
        if (!r->name || !r->label)
            return oom(p);
        rc = parse_rule(p, node_at(p, pr->value), r->label, r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A list of non-empty, distinct strings (or one string for a one-entry list). */
static int parse_names(pctx *p, const yaml_node_t *n, const char *path, char ***out,
                       size_t *count)
{
    const yaml_node_item_t *items = NULL;
    size_t total = 1;
    if (n->type == YAML_SEQUENCE_NODE) {
        items = n->data.sequence.items.start;
        total = (size_t)(n->data.sequence.items.top - items);
    } else if (n->type != YAML_SCALAR_NODE || is_null(p, n)) {
        return wrong_type(p, n, path, "a list of names");
    }
    char **names = xcalloc(total, sizeof *names);
    if (!names)
        return oom(p);
    *out = names;
    for (size_t i = 0; i < total; i++) {
        const yaml_node_t *item = items ? node_at(p, items[i]) : n;
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        int rc = read_str(p, item, items ? sub : path, &names[i]);
        if (rc < 0)
            return rc;
        *count = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0)
                return fail_node(p, item, "%s: `%s` is listed twice", path, names[i]);
    }
    return 0;
}

static int parse_calibration(pctx *p, const yaml_node_t *n, qk_config *c)
{
    if (is_null(p, n))
        return 0;
    if (n->type != YAML_MAPPING_NODE)
        return wrong_type(p, n, "calibration", "a mapping (batch_size, batch_num)");
    int rc = check_keys(p, n, "calibration");
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
         rc == 0 && pr < n->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        const char *key = scalar_text(k);
        cfg_opt_int *f = strcmp(key, "batch_size") == 0  ? &c->calibration.batch_size
                         : strcmp(key, "batch_num") == 0 ? &c->calibration.batch_num
                                                         : NULL;
        if (!f)
            return unknown_key(p, k, "calibration", calib_keys, NULL);
        char sub[64];
        rc = opt_int(p, k, v, join(sub, sizeof sub, "calibration", key), 1, INT_MAX, f);
    }
    return rc;
}

static const yaml_node_t *find_key(pctx *p, const yaml_node_t *m, const char *key,
                                   const yaml_node_t **value)
{
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = node_at(p, pr->key);
        if (strcmp(scalar_text(k), key) == 0) {
            *value = node_at(p, pr->value);
            return k;
        }
    }
    return NULL;
}

static const char top_hint[] = "rules go under `quantize:`, `op_types:` or `nodes:`";

static int parse_top(pctx *p, const yaml_node_t *root, qk_config *c)
{
    if (!root)
        return fail_at(p, 1, 1, "the configuration is empty; it needs at least `version: %d`",
                       QK_CONFIG_VERSION);
    if (is_null(p, root)) /* "---" alone, or "~" */
        return fail_at(p, 1, 1, "the configuration is empty; it needs at least `version: %d`",
                         QK_CONFIG_VERSION);
    if (root->type != YAML_MAPPING_NODE) {
        char d[96];
        return fail_node(p, root,
                         "the top level must be a mapping (version: 1, backend: ...), got %s",
                         describe(p, root, d, sizeof d));
    }
    int rc = check_keys(p, root, "");
    if (rc < 0)
        return rc;

    /* The version decides how to read everything else, so it is checked
     * before any other key. */
    const yaml_node_t *vv;
    if (!find_key(p, root, "version", &vv)) {
        /* A misspelt `verison:` deserves the did-you-mean more than this. */
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
             pr < root->data.mapping.pairs.top; pr++) {
            const yaml_node_t *k = node_at(p, pr->key);
            if (!in_list(scalar_text(k), top_keys))
                return unknown_key(p, k, NULL, top_keys,
                                   in_list(scalar_text(k), rule_keys) ? top_hint : NULL);
        }
        return fail_node(p, root, "missing `version: %d` at the top level", QK_CONFIG_VERSION);
    }
    if (vv->type == YAML_SCALAR_NODE) {
        cfg_type t;
        if ((rc = scalar_type(p, vv, "version", &t)) < 0)
            return rc;
        if (t == CFG_INT) {
            bool overflow;
            long long v = int_of(scalar_text(vv), vv->data.scalar.length, &overflow);
            if (overflow || v != QK_CONFIG_VERSION) {
                char q[64];
                quote_text(q, sizeof q, scalar_text(vv), vv->data.scalar.length);
                return fail_node(p, vv,
                                 "version: %s is not supported; this quantkit reads version %d", q,
                                 QK_CONFIG_VERSION);
            }
            c->version = QK_CONFIG_VERSION;
        }
    }
    if (c->version != QK_CONFIG_VERSION)
        return wrong_type(p, vv, "version", "an integer");

    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         rc == 0 && pr < root->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = node_at(p, pr->key), *v = node_at(p, pr->value);
        const char *key = scalar_text(k);
        if (strcmp(key, "version") == 0)
            continue;
        else if (strcmp(key, "backend") == 0)
            rc = opt_str(p, k, v, "backend", &c->backend);
        else if (strcmp(key, "backend_options") == 0)
            rc = read_map(p, k, v, "backend_options", &c->backend_options);
        else if (strcmp(key, "fusions") == 0) {
            c->fusions_set = true;
            c->fusions_at = mark_of(k);
            /* `fusions: []` is a choice (none); `fusions:` alone is not. */
            if (!is_null(p, v))
                rc = parse_names(p, v, "fusions", &c->fusions, &c->n_fusions);
            else
                rc = wrong_type(p, v, "fusions", "a list of fusion names (`[]` for none)");
        } else if (strcmp(key, "calibration") == 0)
            rc = parse_calibration(p, v, c);
        else if (strcmp(key, "quantize") == 0) {
            c->quantize.at = mark_of(k);
            rc = parse_rule(p, v, "quantize", &c->quantize);
        } else if (strcmp(key, "op_types") == 0)
            rc = parse_rules(p, v, "op_types", true, &c->op_types, &c->n_op_types);
        else if (strcmp(key, "nodes") == 0)
            rc = parse_rules(p, v, "nodes", false, &c->nodes, &c->n_nodes);
        else if (strcmp(key, "plugin_path") == 0) {
            if (!is_null(p, v))
                rc = parse_names(p, v, "plugin_path", &c->plugin_path, &c->n_plugin_path);
        } else
            rc = unknown_key(p, k, NULL, top_keys, in_list(key, rule_keys) ? top_hint : NULL);
    }
    return rc;
}

/* ---- libyaml errors ---------------------------------------------------------- */

/* Line and column (1-based, in characters) of a byte offset; the reader
 * reports offsets rather than marks. */
static void offset_mark(const char *text, size_t len, size_t off, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n')
            ++*line, *column = 1;
        else if (((unsigned char)text[i] & 0xc0) != 0x80)
            ++*column;
    }
}

static int yaml_error(pctx *p, const yaml_parser_t *y, const char *text, size_t len)
{
    if (y->error == YAML_MEMORY_ERROR)
        return oom(p);
    const char *problem = y->problem ? y->problem : "unknown problem";
    if (y->error == YAML_READER_ERROR) {
        int line, column;
        offset_mark(text, len, y->problem_offset, &line, &column);
        if (y->problem_value != -1)
            return fail_at(p, line, column, "not valid YAML text: %s (byte 0x%02x)", problem,
                           (unsigned)y->problem_value);
        return fail_at(p, line, column, "not valid YAML text: %s", problem);
    }
    const char *what = y->error == YAML_COMPOSER_ERROR ? "YAML error" : "YAML syntax error";
    int line = (int)y->problem_mark.line + 1, column = (int)y->problem_mark.column + 1;
    if (y->context)
        return fail_at(p, line, column, "%s: %s (%s at line %d, column %d)", what, problem,
                       y->context, (int)y->context_mark.line + 1,
                       (int)y->context_mark.column + 1);
    return fail_at(p, line, column, "%s: %s", what, problem);
}

/* ---- plugin_path ---------------------------------------------------------------- */

/* The folder of the config file, absolute when possible, so relative
 * plugin paths keep meaning the same folder whatever the process does with
 * its working directory later. */
static char *config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
    if (!dir || dir[0] == '/')
        return dir;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return dir; /* relative to the working directory is still right for now */
    char *abs = strcmp(dir, ".") == 0 ? xstrdup(cwd) : xprintf("%s/%s", cwd, dir);
    free(dir);
    return abs;
}

static int resolve_plugin_path(pctx *p, qk_config *c, const char *dir)
{
    for (size_t i = 0; i < c->n_plugin_path; i++) {
        const char *e = c->plugin_path[i];
        if (e[0] == '/')
            continue;
        while (e[0] == '.' && e[1] == '/')
            for (e += 2; *e == '/'; e++) {
            }
        char *abs = e[0] == '\0' || strcmp(e, ".") == 0
                        ? xstrdup(dir)
                        : xprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e);
        if (!abs)
            return oom(p);
        free(c->plugin_path[i]);
        c->plugin_path[i] = abs;
    }
    return 0;
}

/* ---- load / free ------------------------------------------------------------------ */

static int parse_text(const char *text, size_t len, const char *name, const char *path_for_dir,
                      qk_config **out, qk_err *err)
{
    *out = NULL;
    pctx p = {.file = name, .err = err, .budget = MAX_VALUES};
    qk_config *c = xcalloc(1, sizeof *c);
    if (!c)
        return oom(&p);
    c->path = xstrdup(name);
    c->backend.value = xstrdup("onnx-qdq");
    c->calibration.batch_size.value = 16;
    c->quantize.label = xstrdup("global");
    c->backend_options.value.file = c->path;
    c->backend_options.value.path = xstrdup("backend_options");
    if (!c->path || !c->backend.value || !c->quantize.label || !c->backend_options.value.path) {
        config_free(c);
        return oom(&p);
    }
    p.file = c->path;

    yaml_parser_t y;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&y)) {
        config_free(c);
        return oom(&p);
    }
    yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
    int rc;
    if (!yaml_parser_load(&y, &doc)) {
        rc = yaml_error(&p, &y, text, len);
    } else {
        p.doc = &doc;
        rc = parse_top(&p, yaml_document_get_root_node(&doc), c);
        yaml_document_delete(&doc);
        /* A second document would be silently ignored by a one-document
         * reader; that is never what the author meant. */
        if (rc == 0) {
            if (!yaml_parser_load(&y, &doc)) {
                rc = yaml_error(&p, &y, text, len);
            } else {
                yaml_node_t *extra = yaml_document_get_root_node(&doc);
                if (extra)
                    rc = fail_at(&p, (int)doc.start_mark.line + 1, (int)doc.start_mark.column + 1,
                                 "a second YAML document starts here; a config file holds one");
                yaml_document_delete(&doc);
            }
        }
    }
    yaml_parser_delete(&y);
    if (rc == 0 && path_for_dir && c->n_plugin_path) {
        char *dir = config_dir(path_for_dir);
        rc = dir ? resolve_plugin_path(&p, c, dir) : oom(&p);
        free(dir);
    }
    if (rc < 0) {
        config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int config_parse_string(const char *text, const char *name_for_errors, qk_config **out,
                        qk_err *err)
{
    const char *name = name_for_errors ? name_for_errors : "<string>";
    if (!text) {
        *out = NULL;
        return qk_fail(err, QK_EINVAL, "%s: no configuration text", name);
    }
    return parse_text(text, strlen(text), name, NULL, out, err);
}

int config_load(const char *path, qk_config **out, qk_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qk_fail(err, QK_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= (size_t)MAX_FILE_BYTES) {
                rc = qk_fail(err, QK_EINVAL, "%s: larger than %ld MiB; not a config file?", path,
                             MAX_FILE_BYTES >> 20);
                break;
            }
            cap = cap ? cap * 2 : 4096;
            char *t = alloc_fails() ? NULL : realloc(text, cap + 1);
            if (!t) {
                rc = qk_fail(err, QK_ENOMEM, "%s: out of memory while reading the configuration",
                             path);
                break;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = qk_fail(err, QK_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = parse_text(text ? text : "", len, path, path, out, err);
    free(text);
    return rc;
}

static void tensor_rule_free(qk_tensor_rule *t)
{
    free(t->observer.value);
    free(t->quantizer.value);
    map_free(&t->observer_args.value);
    map_free(&t->quantizer_args.value);
}

static void rule_free(qk_rule *r)
{
    free(r->label);
    free(r->name);
    tensor_rule_free(&r->activation);
    tensor_rule_free(&r->weight);
}

void config_free(qk_config *c)
{
    if (!c)
        return;
    free(c->backend.value);
    map_free(&c->backend_options.value);
    for (size_t i = 0; i < c->n_fusions; i++)
        free(c->fusions[i]);
    free(c->fusions);
    rule_free(&c->quantize);
    for (size_t i = 0; i < c->n_op_types; i++)
        rule_free(&c->op_types[i]);
    free(c->op_types);
    for (size_t i = 0; i < c->n_nodes; i++)
        rule_free(&c->nodes[i]);
    free(c->nodes);
    for (size_t i = 0; i < c->n_plugin_path; i++)
        free(c->plugin_path[i]);
    free(c->plugin_path);
    free(c->path);
    free(c);
}

static const qk_rule *find_rule(const qk_rule *rules, size_t n, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules[i].name, name) == 0)
            return &rules[i];
    return NULL;
}

const qk_rule *config_find_op_type(const qk_config *c, const char *op_type)
{
    return c ? find_rule(c->op_types, c->n_op_types, op_type) : NULL;
}

const qk_rule *config_find_node(const qk_config *c, const char *node_name)
{
    return c ? find_rule(c->nodes, c->n_nodes, node_name) : NULL;
}

/* ---- resolution -------------------------------------------------------------------- */

static const cfg_map empty_map = {.path = NULL};
static const cfg_source from_default = {"default", NULL, 0, 0};

static cfg_source source(const qk_rule *r, const char *file, cfg_mark at)
{
    return (cfg_source){r->label, file, at.line, at.column};
}

static void resolve_defaults(qk_resolved_tensor *t, bool weight)
{
    *t = (qk_resolved_tensor){
        .observer = "minmax",
        .observer_args = &empty_map,
        .quantizer = weight ? "round" : NULL,
        .quantizer_args = &empty_map,
        .bits = 8,
        .symmetric = weight,
        .per_channel = weight,
        .observer_from = from_default,
        .observer_args_from = from_default,
        .quantizer_from = from_default,
        .quantizer_args_from = from_default,
        .bits_from = from_default,
        .symmetric_from = from_default,
        .per_channel_from = from_default,
    };
}

static void apply_tensor(qk_resolved_tensor *o, const qk_tensor_rule *t, const qk_rule *r,
                         const char *file)
{
    if (t->observer.set) {
        if (strcmp(o->observer, t->observer.value) != 0) {
            o->observer_args = &empty_map;
            o->observer_args_from = source(r, file, t->observer.at);
        }
        o->observer = t->observer.value;
        o->observer_from = source(r, file, t->observer.at);
    }
    if (t->observer_args.set) {
        o->observer_args = &t->observer_args.value;
        o->observer_args_from = source(r, file, t->observer_args.at);
    }
    if (t->quantizer.set) {
        if (!o->quantizer || strcmp(o->quantizer, t->quantizer.value) != 0) {
            o->quantizer_args = &empty_map;
            o->quantizer_args_from = source(r, file, t->quantizer.at);
        }
        o->quantizer = t->quantizer.value;
        o->quantizer_from = source(r, file, t->quantizer.at);
    }
    if (t->quantizer_args.set) {
        o->quantizer_args = &t->quantizer_args.value;
        o->quantizer_args_from = source(r, file, t->quantizer_args.at);
    }
    if (t->bits.set) {
        o->bits = t->bits.value;
        o->bits_from = source(r, file, t->bits.at);
    }
    if (t->symmetric.set) {
        o->symmetric = t->symmetric.value;
        o->symmetric_from = source(r, file, t->symmetric.at);
    }
    if (t->per_channel.set) {
        o->per_channel = t->per_channel.value;
        o->per_channel_from = source(r, file, t->per_channel.at);
    }
}

void config_resolve(const qk_config *c, const char *op_type, const char *node_name,
                    qk_resolved_rule *out)
{
    out->skip = false;
    out->skip_from = from_default;
    resolve_defaults(&out->activation, false);
    resolve_defaults(&out->weight, true);
    if (!c)
        return;
    const qk_rule *levels[3] = {&c->quantize, config_find_op_type(c, op_type),
                                config_find_node(c, node_name)};
    for (int i = 0; i < 3; i++) {
        const qk_rule *r = levels[i];
        if (!r)
            continue;
        if (r->skip.set) {
            out->skip = r->skip.value;
            out->skip_from = source(r, c->path, r->skip.at);
        }
        apply_tensor(&out->activation, &r->activation, r, c->path);
        apply_tensor(&out->weight, &r->weight, r, c->path);
    }
}

const char *cfg_source_str(const cfg_source *s, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    if (!s || !s->rule)
        snprintf(buf, n, "default");
    else if (s->line > 0)
        snprintf(buf, n, "%s (%s:%d:%d)", s->rule, s->file ? s->file : "?", s->line, s->column);
    else
        snprintf(buf, n, "%s", s->rule);
    return buf;
}

/* ---- typed map access -------------------------------------------------------------- */

const char *cfg_type_name(cfg_type t)
{
    switch (t) {
    case CFG_NULL: return "null";
    case CFG_INT: return "integer";
    case CFG_FLOAT: return "float";
    case CFG_BOOL: return "boolean";
    case CFG_STRING: return "string";
    case CFG_LIST: return "list";
    case CFG_MAP: return "mapping";
    }
    return "unknown";
}

size_t cfg_map_count(const cfg_map *m) { return m ? m->n : 0; }

const char *cfg_map_key(const cfg_map *m, size_t i)
{
    return m && i < m->n ? m->entries[i].key : NULL;
}

const cfg_entry *cfg_map_find(const cfg_map *m, const char *key)
{
    if (!m || !key)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->entries[i].key, key) == 0)
            return &m->entries[i];
    return NULL;
}

static int vmap_fail(const cfg_map *m, const cfg_entry *e, qk_err *err, int code,
                     const char *fmt, va_list ap)
{
    char msg[QK_ERRMSG_LEN], where[QK_ERRMSG_LEN / 2];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const char *path = m && m->path ? m->path : "";
    const char *file = m && m->file ? m->file : NULL;
    int line = e ? e->value.line : m ? m->line : 0;
    int column = e ? e->value.column : m ? m->column : 0;
    if (e)
        join(where, sizeof where, path, e->key);
    else
        snprintf(where, sizeof where, "%s", path);
    const char *sep = where[0] ? ": " : "";
    if (file && line > 0)
        qk_fail(err, code, "%s:%d:%d: %s%s%s", file, line, column, where, sep, msg);
    else if (file)
        qk_fail(err, code, "%s: %s%s%s", file, where, sep, msg);
    else
        qk_fail(err, code, "%s%s%s", where, sep, msg);
    return one_line(err, code);
}

int cfg_map_fail(const cfg_map *m, const char *key, qk_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vmap_fail(m, cfg_map_find(m, key), err, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int entry_fail(const cfg_map *m, const cfg_entry *e, qk_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int entry_fail(const cfg_map *m, const cfg_entry *e, qk_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vmap_fail(m, e, err, QK_EINVAL, fmt, ap);
    va_end(ap);
    return rc;
}

/* "expected an integer, got string 'x'" for a generic value. */
static int entry_wrong_type(const cfg_map *m, const cfg_entry *e, qk_err *err, const char *want)
{
    const cfg_value *v = &e->value;
    char q[64];
    switch (v->type) {
    case CFG_NULL: return entry_fail(m, e, err, "expected %s, got null", want);
    case CFG_LIST: return entry_fail(m, e, err, "expected %s, got a list", want);
    case CFG_MAP: return entry_fail(m, e, err, "expected %s, got a mapping", want);
    case CFG_INT: return entry_fail(m, e, err, "expected %s, got integer '%lld'", want,
                          (long long)v->u.i);
    case CFG_FLOAT: return entry_fail(m, e, err, "expected %s, got float '%g'", want, v->u.f);
    case CFG_BOOL:
        return entry_fail(m, e, err, "expected %s, got boolean '%s'", want,
                          v->u.b ? "true" : "false");
    case CFG_STRING:
        return entry_fail(m, e, err, "expected %s, got string '%s'", want,
                          quote_text(q, sizeof q, v->u.s, strlen(v->u.s)));
    }
    return entry_fail(m, e, err, "expected %s", want);
}

int cfg_map_get_int(const cfg_map *m, const char *key, int64_t *out, qk_err *err)
{
    const cfg_entry *e = cfg_map_find(m, key);
    if (!e)
        return 0;
    if (e->value.type != CFG_INT)
        return entry_wrong_type(m, e, err, "an integer");
    *out = e->value.u.i;
    return 1;
}

int cfg_map_get_float(const cfg_map *m, const char *key, double *out, qk_err *err)
{
    const cfg_entry *e = cfg_map_find(m, key);
    if (!e)
        return 0;
    if (e->value.type == CFG_INT)
        *out = (double)e->value.u.i;
    else if (e->value.type == CFG_FLOAT)
        *out = e->value.u.f;
    else
        return entry_wrong_type(m, e, err, "a number");
    return 1;
}

int cfg_map_get_bool(const cfg_map *m, const char *key, bool *out, qk_err *err)
{
    const cfg_entry *e = cfg_map_find(m, key);
    if (!e)
        return 0;
    if (e->value.type != CFG_BOOL)
        return entry_wrong_type(m, e, err, "a boolean (true or false)");
    *out = e->value.u.b;
    return 1;
}

int cfg_map_get_str(const cfg_map *m, const char *key, const char **out, qk_err *err)
{
    const cfg_entry *e = cfg_map_find(m, key);
    if (!e)
        return 0;
    if (e->value.type != CFG_STRING)
        return entry_wrong_type(m, e, err, "a string");
    *out = e->value.u.s;
    return 1;
}

int cfg_map_get_map(const cfg_map *m, const char *key, const cfg_map **out, qk_err *err)
{
    const cfg_entry *e = cfg_map_find(m, key);
    if (!e || e->value.type == CFG_NULL)
        return 0;
    if (e->value.type != CFG_MAP)
        return entry_wrong_type(m, e, err, "a mapping");
    *out = &e->value.u.map;
    return 1;
}

int cfg_map_check_keys(const cfg_map *m, const char *const *allowed, const char *what,
                       qk_err *err)
{
    if (!m)
        return 0;
    const char *const none[] = {NULL};
    if (!allowed)
        allowed = none;
    for (size_t i = 0; i < m->n; i++) {
        const cfg_entry *e = &m->entries[i];
        if (in_list(e->key, allowed))
            continue;
        const char *name = what ? what : m->path ? m->path : "the arguments";
        char msg[QK_ERRMSG_LEN - 64], q[64];
        snprintf(msg, sizeof msg, "unknown key `%s` in %s",
                 quote_text(q, sizeof q, e->key, strlen(e->key)), name);
        suggest(msg, sizeof msg, e->key, allowed, NULL, name);
        if (m->file)
            qk_fail(err, QK_EINVAL, "%s:%d:%d: %s", m->file, e->line, e->column, msg);
        else
            qk_fail(err, QK_EINVAL, "%s", msg);
        return one_line(err, QK_EINVAL);
    }
    return 0;
}
