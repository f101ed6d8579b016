/* This file implements the plugin registry (see registry.h): it indexes the
 * plugin files of the search directories by their `<kind>-<name>.so` names,
 * loads one with libltdl when it is first looked up, and checks its
 * descriptor -- ABI version first, then every required field -- before any
 * plugin function can be called (GStreamer's rule: a plugin that is too new,
 * too old or malformed is refused with one line naming the file, never run).
 *
 * Loading a shared object does run its ELF constructors; quantkit plugins
 * have none (QK_PLUGIN_DEFINE emits plain const data), which is why the
 * descriptor is a data symbol and not an init function. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <ltdl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <quantkit/quantkit.h>
#include "registry.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* ---- allocation, with a failure hook for fault tests --------------------- */

static long fail_after; /* 0: off; 1: this and every later allocation fails */

void registry_fail_alloc_after(long n) { fail_after = n; }

static int alloc_fails(void)
{
    if (fail_after <= 0)
        return 0;
    if (fail_after == 1)
        return 1;
    fail_after--;
    return 0;
}

static void *xrealloc(void *p, size_t n) { return alloc_fails() ? NULL : realloc(p, n ? n : 1); }

static char *xstrdup(const char *s)
{
    if (alloc_fails())
        return NULL;
    return strdup(s);
}

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

/* Grows *v (of *cap elements of `each` bytes) to hold at least n. */
static int grow(void **v, size_t *cap, size_t n, size_t each)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 8;
    while (c < n)
        c *= 2;
    void *p = xrealloc(*v, c * each);
    if (!p)
        return QK_ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

/* ---- what each kind requires ---------------------------------------------- */

/* The smallest vtable a plugin of ABI 1.0 can have: up to the end of the last
 * member that ABI defined.  Later minors append members, so a newer host
 * keeps these sizes and only calls a newer member when `size` covers it. */
#define VT_MIN(T, last) (offsetof(T, last) + sizeof(((T *)0)->last))
#define VT_REQ(T, f) {#f, offsetof(T, f)}

typedef struct kind_info {
    const char *name;        /* in file names and messages */
    const char *dir;         /* its folder under plugins/ in the build tree */
    size_t min_vtable;
    size_t n_required;
    struct {
        const char *name;
        size_t offset;
    } required[5];           /* members that must not be NULL */
} kind_info;

/* Indexed by qk_plugin_kind; row 0 is unused. */
static const kind_info kinds[] = {
    [0] = {NULL, NULL, 0, 0, {{NULL, 0}}},
    [QK_PLUGIN_OBSERVER] = {"observer", "observers", VT_MIN(qk_observer_vtable, destroy), 5,
                            {VT_REQ(qk_observer_vtable, create), VT_REQ(qk_observer_vtable, observe),
                             VT_REQ(qk_observer_vtable, merge), VT_REQ(qk_observer_vtable, range),
                             VT_REQ(qk_observer_vtable, destroy)}},
    [QK_PLUGIN_FAKEQUANT] = {"fakequant", "fakequant", VT_MIN(qk_fakequant_vtable, destroy), 3,
                             {VT_REQ(qk_fakequant_vtable, create), VT_REQ(qk_fakequant_vtable, quantize),
                              VT_REQ(qk_fakequant_vtable, destroy)}},
    [QK_PLUGIN_FUSION] = {"fusion", "fusions", VT_MIN(qk_fusion_vtable, apply), 1,
                          {VT_REQ(qk_fusion_vtable, apply)}},
    [QK_PLUGIN_BACKEND] = {"backend", "backends", VT_MIN(qk_backend_vtable, emit), 2,
                           {VT_REQ(qk_backend_vtable, quantized_ops), VT_REQ(qk_backend_vtable, emit)}},
};
_Static_assert(sizeof kinds / sizeof kinds[0] == QK_PLUGIN_KIND_END,
               "a new qk_plugin_kind needs its row in kinds[]");

/* The ABI 1.0 descriptor ends with `vtable`. */
#define DESC_MIN_SIZE (offsetof(qk_plugin_descriptor, vtable) + sizeof(const void *))

const char *registry_kind_name(int kind)
{
    return kind > 0 && kind < QK_PLUGIN_KIND_END ? kinds[kind].name : NULL;
}

int registry_kind_parse(const char *s)
{
    for (int k = 1; s && k < QK_PLUGIN_KIND_END; k++)
        if (!strcmp(s, kinds[k].name))
            return k;
    return 0;
}

const char *registry_origin_name(registry_origin o)
{
    switch (o) {
    case REGISTRY_PLUGIN_PATH: return "plugin_path";
    case REGISTRY_ENV: return "QUANTKIT_PLUGIN_PATH";
    case REGISTRY_BUILD_TREE: return "build tree";
    case REGISTRY_INSTALLED: return "installed";
    }
    return "?";
}

/* ---- the registry --------------------------------------------------------- */

enum { ENTRY_UNLOADED, ENTRY_LOADED, ENTRY_FAILED };

typedef struct entry {
    registry_entry pub;
    char *name, *file;        /* owned; pub points at them */
    int state;
    lt_dlhandle handle;       /* ENTRY_LOADED */
    const qk_plugin_descriptor *desc;
    int error_code;           /* ENTRY_FAILED: the remembered refusal */
    char *error;
} entry;

typedef struct dir_rec {
    char *path;
    char *real;               /* realpath, for spotting a folder named twice */
    registry_origin origin;
    int kind;                 /* build tree: the kind its folder holds; else 0 */
    int opened;
} dir_rec;

struct registry {
    dir_rec *dirs;
    size_t n_dirs, cap_dirs;
    entry *entries;
    size_t n_entries, cap_entries;
    char **warnings;
    size_t n_warnings, cap_warnings;
    size_t load_count;
    int lt_ready;             /* lt_dlinit succeeded: call lt_dlexit */
};

static int add_warning(registry *r, char *msg)
{
    if (!msg || grow((void **)&r->warnings, &r->cap_warnings, r->n_warnings + 1, sizeof *r->warnings)) {
        free(msg);
        return QK_ENOMEM;
    }
    r->warnings[r->n_warnings++] = msg;
    return 0;
}

/* Splits "observer-minmax.so" into its kind and name; 0 when the file name
 * does not follow the convention (other files are not plugins: ignored). */
static int parse_file_name(const char *fn, int *kind, const char **name, size_t *name_len)
{
    size_t n = strlen(fn);
    if (n < 4 || strcmp(fn + n - 3, ".so"))
        return 0;
    const char *dash = strchr(fn, '-');
    if (!dash)
        return 0;
    for (int k = 1; k < QK_PLUGIN_KIND_END; k++) {
        size_t kl = strlen(kinds[k].name);
        if ((size_t)(dash - fn) == kl && !strncmp(fn, kinds[k].name, kl)) {
            *kind = k;
            *name = dash + 1;
            *name_len = n - 3 - (kl + 1);
            return *name_len > 0;
        }
    }
    return 0;
}

static entry *find_entry(const registry *r, int kind, const char *name)
{
    for (size_t i = 0; i < r->n_entries; i++)
        if (r->entries[i].pub.kind == kind && !strcmp(r->entries[i].name, name))
            return &r->entries[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Indexes the plugin files of directory d (file names only). */
static int scan_dir(registry *r, size_t d)
{
    dir_rec *dr = &r->dirs[d];
    DIR *dir = opendir(dr->path);
    if (!dir) {
        int e = errno;
        /* An installed or build-tree folder may legitimately not exist; a
         * folder the user named explicitly is worth a warning. */
        if (dr->origin == REGISTRY_PLUGIN_PATH || dr->origin == REGISTRY_ENV)
            return add_warning(r, xprintf("plugin directory %s (%s): cannot open: %s", dr->path,
                                          registry_origin_name(dr->origin), strerror(e)));
        return 0;
    }
    dr->opened = 1;
    /* Read the names first and sort them: readdir's order is arbitrary and
     * the index (and its warnings) should not depend on it. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int st = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        int kind;
        const char *nm;
        size_t nl;
        if (!parse_file_name(de->d_name, &kind, &nm, &nl))
            continue;
        char *s = xstrdup(de->d_name);
        if (!s || grow((void **)&names, &cap, n + 1, sizeof *names)) {
            free(s);
            st = QK_ENOMEM;
            break;
        }
        names[n++] = s;
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !st; i++) {
        int kind;
        const char *nm;
        size_t nl;
        parse_file_name(names[i], &kind, &nm, &nl);
        char *file = xprintf("%s/%s", dr->path, names[i]);
        char *name = file ? xprintf("%.*s", (int)nl, nm) : NULL;
        struct stat sb;
        if (!name) {
            st = QK_ENOMEM;
        } else if (stat(file, &sb) || !S_ISREG(sb.st_mode)) {
            /* a dangling link or a folder: not a plugin */
        } else {
            entry *prev = find_entry(r, kind, name);
            /* An uninstalled binary shadowing the installed copy of its own
             * plugins is the point of searching the build tree: no warning. */
            if (prev) {
                if (r->dirs[prev->pub.dir].origin != REGISTRY_BUILD_TREE || dr->origin != REGISTRY_INSTALLED)
                    st = add_warning(r, xprintf("%s '%s' is defined twice: using %s, ignoring %s (the first in "
                                                "search order wins)", kinds[kind].name, name, prev->file, file));
            } else if (!(st = grow((void **)&r->entries, &r->cap_entries, r->n_entries + 1, sizeof *r->entries))) {
                entry *e = &r->entries[r->n_entries++];
                memset(e, 0, sizeof *e);
                e->name = name;
                e->file = file;
                e->pub.kind = kind;
                e->pub.dir = (int)d;
                name = file = NULL;
            }
        }
        free(name);
        free(file);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* Appends a directory to search, unless it is already in the list (the same
 * folder named twice would make every plugin in it a duplicate of itself). */
static int add_dir(registry *r, const char *path, size_t len, registry_origin origin, int kind)
{
    char *p = xprintf("%.*s", (int)len, path);
    if (!p)
        return QK_ENOMEM;
    /* "a/b/" and "a/b" are one folder; keep "/" itself. */
    for (size_t l = strlen(p); l > 1 && p[l - 1] == '/'; l--)
        p[l - 1] = '\0';
    char buf[PATH_MAX], *real = NULL;
    if (realpath(p, buf) && !(real = xstrdup(buf))) {   /* a missing folder has no realpath */
        free(p);
        return QK_ENOMEM;
    }
    for (size_t i = 0; i < r->n_dirs; i++) {
        const char *a = r->dirs[i].real ? r->dirs[i].real : r->dirs[i].path;
        if (!strcmp(a, real ? real : p)) {
            free(p);
            free(real);
            return 0;
        }
    }
    if (grow((void **)&r->dirs, &r->cap_dirs, r->n_dirs + 1, sizeof *r->dirs)) {
        free(p);
        free(real);
        return QK_ENOMEM;
    }
    r->dirs[r->n_dirs++] = (dir_rec){p, real, origin, kind, 0};
    return 0;
}

/* True when the running executable lives inside the build tree, i.e. this is
 * an uninstalled run (make check, ./quantkit).  An installed binary never
 * searches the build tree, even if it still exists. */
static int running_uninstalled(void)
{
#ifdef QK_BUILD_DIR
    char exe[PATH_MAX], top[PATH_MAX];
    if (!realpath("/proc/self/exe", exe) || !realpath(QK_BUILD_DIR, top))
        return 0;
    size_t n = strlen(top);
    return !strncmp(exe, top, n) && exe[n] == '/';
#else
    return 0;
#endif
}

static int add_search_dirs(registry *r, const char *const *plugin_path, size_t n)
{
    int st = 0;
    for (size_t i = 0; i < n && !st; i++)
        if (plugin_path[i] && *plugin_path[i])
            st = add_dir(r, plugin_path[i], strlen(plugin_path[i]), REGISTRY_PLUGIN_PATH, 0);
    const char *env = getenv("QUANTKIT_PLUGIN_PATH");
    while (env && *env && !st) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        if (len)   /* empty entries ("a::b", a trailing ':') are skipped */
            st = add_dir(r, env, len, REGISTRY_ENV, 0);
        env = colon ? colon + 1 : NULL;
    }
#ifdef QK_BUILD_DIR
    if (!st && running_uninstalled()) {
        for (int k = 1; k < QK_PLUGIN_KIND_END && !st; k++) {
            char d[PATH_MAX];
            struct stat sb;
            int len = snprintf(d, sizeof d, "%s/plugins/%s/.libs", QK_BUILD_DIR, kinds[k].dir);
            /* Kinds with no plugin built yet have no folder: not worth
             * listing in "searched:" messages. */
            if (len > 0 && (size_t)len < sizeof d && !stat(d, &sb) && S_ISDIR(sb.st_mode))
                st = add_dir(r, d, (size_t)len, REGISTRY_BUILD_TREE, k);
        }
    }
#endif
#ifdef QK_PLUGIN_DIR
    if (!st)
        st = add_dir(r, QK_PLUGIN_DIR, strlen(QK_PLUGIN_DIR), REGISTRY_INSTALLED, 0);
#endif
    return st;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->pub.kind != y->pub.kind)
        return x->pub.kind < y->pub.kind ? -1 : 1;
    return strcmp(x->name, y->name);
}

int registry_new(const char *const *plugin_path, size_t n, registry **out, qk_err *err)
{
    *out = NULL;
    registry *r = alloc_fails() ? NULL : calloc(1, sizeof *r);
    if (!r)
        return qk_fail(err, QK_ENOMEM, "plugin registry: out of memory");
    if (lt_dlinit()) {
        const char *why = lt_dlerror();
        free(r);
        return qk_fail(err, QK_ERR, "plugin registry: cannot initialise libltdl: %s", why ? why : "unknown error");
    }
    r->lt_ready = 1;
    int st = add_search_dirs(r, plugin_path, n);
    for (size_t d = 0; d < r->n_dirs && !st; d++)
        st = scan_dir(r, d);
    if (st) {
        registry_free(r);
        return qk_fail(err, QK_ENOMEM, "plugin registry: out of memory");
    }
    if (r->n_entries)
        qsort(r->entries, r->n_entries, sizeof *r->entries, cmp_entry);
    for (size_t i = 0; i < r->n_entries; i++) {
        r->entries[i].pub.name = r->entries[i].name;
        r->entries[i].pub.file = r->entries[i].file;
    }
    *out = r;
    return 0;
}

void registry_free(registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_entries; i++) {
        entry *e = &r->entries[i];
        if (e->handle)
            lt_dlclose(e->handle);
        free(e->name);
        free(e->file);
        free(e->error);
    }
    for (size_t i = 0; i < r->n_dirs; i++) {
        free(r->dirs[i].path);
        free(r->dirs[i].real);
    }
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    if (r->lt_ready)
        lt_dlexit();
    free(r->entries);
    free(r->dirs);
    free(r->warnings);
    free(r);
}

/* ---- loading -------------------------------------------------------------- */

/* Checks what the plugin's descriptor declares, reading data only: the ABI
 * version before anything else (a plugin of another major may lay the rest
 * out differently), then the fields and the vtable's required members. */
static int check_descriptor(const entry *e, const qk_plugin_descriptor *d, qk_err *err)
{
    const char *file = e->file;
    if (d->abi_major != QK_ABI_MAJOR)
        return qk_fail(err, QK_ENOTSUP,
                       "plugin %s: built for plugin ABI %u.%u, but this quantkit has ABI %d.%d "
                       "(rebuild it against the quantkit %d.x SDK)",
                       file, (unsigned)d->abi_major, (unsigned)d->abi_minor, QK_ABI_MAJOR, QK_ABI_MINOR,
                       QK_ABI_MAJOR);
    if (d->abi_minor > QK_ABI_MINOR)
        return qk_fail(err, QK_ENOTSUP,
                       "plugin %s: built for plugin ABI %u.%u, newer than this quantkit's ABI %d.%d "
                       "(upgrade quantkit or rebuild the plugin against this SDK)",
                       file, (unsigned)d->abi_major, (unsigned)d->abi_minor, QK_ABI_MAJOR, QK_ABI_MINOR);
#define MALFORMED(...) qk_fail(err, QK_EINVAL, "plugin %s: malformed descriptor: " __VA_ARGS__)
    if (d->size < DESC_MIN_SIZE)
        return MALFORMED("its size %zu is smaller than ABI %d.0's %zu", file, d->size, QK_ABI_MAJOR,
                         (size_t)DESC_MIN_SIZE);
    if (d->kind <= 0 || d->kind >= QK_PLUGIN_KIND_END)
        return MALFORMED("kind %d is not a plugin kind (1..%d: observer, fakequant, fusion, backend)", file,
                         d->kind, QK_PLUGIN_KIND_END - 1);
    if (!d->name)
        return MALFORMED("name is NULL", file);
    if (!*d->name)
        return MALFORMED("name is empty", file);
    if (d->kind != e->pub.kind || strcmp(d->name, e->name))
        return MALFORMED("it declares %s '%s' but its file name says %s '%s' (a plugin's file must be "
                         "named <kind>-<name>.so)",
                         file, kinds[d->kind].name, d->name, kinds[e->pub.kind].name, e->name);
    const kind_info *ki = &kinds[d->kind];
    if (!d->vtable)
        return MALFORMED("%s vtable is NULL", file, ki->name);
    size_t vsize;
    memcpy(&vsize, d->vtable, sizeof vsize);   /* every vtable starts with its size */
    if (vsize < ki->min_vtable)
        return MALFORMED("%s vtable size %zu is smaller than ABI %d.0's %zu", file, ki->name, vsize, QK_ABI_MAJOR,
                         ki->min_vtable);
    for (size_t i = 0; i < ki->n_required; i++) {
        void *p;   /* function or data pointer: the same size on every platform quantkit supports */
        memcpy(&p, (const char *)d->vtable + ki->required[i].offset, sizeof p);
        if (!p)
            return MALFORMED("required %s vtable entry '%s' is NULL", file, ki->name, ki->required[i].name);
    }
#undef MALFORMED
    return 0;
}

/* Remembers a refusal so that asking again gives the same answer without
 * touching the disk.  If the message cannot be kept (out of memory), the
 * entry stays unloaded and the next lookup tries again. */
static int refuse(entry *e, int code, const qk_err *why, qk_err *err)
{
    char *m = xstrdup(why->msg);
    if (m) {
        e->state = ENTRY_FAILED;
        e->error_code = code;
        e->error = m;
    }
    return qk_fail(err, code, "%s", why->msg);
}

static int load_entry(registry *r, entry *e, const qk_plugin_descriptor **out, qk_err *err)
{
    if (e->state == ENTRY_LOADED) {
        *out = e->desc;
        return 0;
    }
    if (e->state == ENTRY_FAILED)
        return qk_fail(err, e->error_code, "%s", e->error);
    qk_err why = {0};
    r->load_count++;
    /* RTLD_LOCAL: every plugin exports the same symbol name; keep each one's
     * to itself. */
    lt_dladvise adv;
    lt_dlhandle h = NULL;
    if (!lt_dladvise_init(&adv)) {
        if (!lt_dladvise_local(&adv))
            h = lt_dlopenadvise(e->file, adv);
        lt_dladvise_destroy(&adv);
    }
    if (!h) {
        const char *m = lt_dlerror();
        qk_fail(&why, QK_EINVAL, "plugin %s: cannot load: %s", e->file, m ? m : "unknown error");
        return refuse(e, QK_EINVAL, &why, err);
    }
    const qk_plugin_descriptor *d = lt_dlsym(h, QK_PLUGIN_ENTRY_SYMBOL);
    if (!d) {
        qk_fail(&why, QK_EINVAL,
                "plugin %s: no '%s' symbol (not a quantkit plugin? a plugin ends with QK_PLUGIN_DEFINE)", e->file,
                QK_PLUGIN_ENTRY_SYMBOL);
    } else {
        check_descriptor(e, d, &why);
    }
    if (why.code) {
        lt_dlclose(h);
        return refuse(e, why.code, &why, err);
    }
    e->handle = h;
    e->desc = d;
    e->state = ENTRY_LOADED;
    *out = d;
    return 0;
}

/* Levenshtein distance, for "did you mean" (names are short). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap - 1 ? *len + (size_t)n : cap - 1;
}

/* "unknown observer 'minmx' (did you mean 'minmax'?); found: ...; searched: ..." */
static int unknown_name(const registry *r, int kind, const char *name, qk_err *err)
{
    char m[QK_ERRMSG_LEN];
    size_t len = 0;
    const char *kn = kinds[kind].name;
    const char *best = NULL;
    size_t best_d = SIZE_MAX, found = 0;
    for (size_t i = 0; i < r->n_entries; i++) {
        if (r->entries[i].pub.kind != kind)
            continue;
        size_t dd = edit_distance(name, r->entries[i].name);
        if (dd < best_d) {
            best_d = dd;
            best = r->entries[i].name;
        }
    }
    appendf(m, sizeof m, &len, "unknown %s '%s'", kn, name);
    if (best && best_d <= (strlen(name) > 6 ? 2 : 1))
        appendf(m, sizeof m, &len, " (did you mean '%s'?)", best);
    for (size_t i = 0; i < r->n_entries; i++) {
        if (r->entries[i].pub.kind != kind)
            continue;
        appendf(m, sizeof m, &len, "%s%s", found++ ? ", " : "; found: ", r->entries[i].name);
    }
    if (!found)
        appendf(m, sizeof m, &len, "; no %s plugins were found", kn);
    /* The build tree's folders of other kinds are left out: the message has
     * to fit one line of QK_ERRMSG_LEN. */
    size_t shown = 0;
    for (size_t i = 0; i < r->n_dirs; i++)
        if (!r->dirs[i].kind || r->dirs[i].kind == kind)
            appendf(m, sizeof m, &len, "%s%s (%s%s)", shown++ ? ", " : "; searched: ", r->dirs[i].path,
                    registry_origin_name(r->dirs[i].origin), r->dirs[i].opened ? "" : ", missing");
    if (!shown)
        appendf(m, sizeof m, &len, "; no plugin directory to search");
    return qk_fail(err, QK_EINVAL, "%s", m);
}

int registry_get(registry *r, int kind, const char *name, const qk_plugin_descriptor **out, qk_err *err)
{
    *out = NULL;
    if (kind <= 0 || kind >= QK_PLUGIN_KIND_END)
        return qk_fail(err, QK_EINVAL, "plugin lookup: %d is not a plugin kind", kind);
    if (!name || !*name)
        return qk_fail(err, QK_EINVAL, "plugin lookup: no %s name given", kinds[kind].name);
    entry *e = find_entry(r, kind, name);
    if (!e)
        return unknown_name(r, kind, name, err);
    return load_entry(r, e, out, err);
}

size_t registry_count(const registry *r) { return r->n_entries; }

const registry_entry *registry_entry_at(const registry *r, size_t i)
{
    return i < r->n_entries ? &r->entries[i].pub : NULL;
}

int registry_load_at(registry *r, size_t i, const qk_plugin_descriptor **out, qk_err *err)
{
    *out = NULL;
    if (i >= r->n_entries)
        return qk_fail(err, QK_EINVAL, "plugin registry: no entry %zu", i);
    return load_entry(r, &r->entries[i], out, err);
}

size_t registry_load_count(const registry *r) { return r->load_count; }

int registry_is_loaded(const registry *r, int kind, const char *name)
{
    const entry *e = name ? find_entry(r, kind, name) : NULL;
    return e && e->state == ENTRY_LOADED;
}

size_t registry_dir_count(const registry *r) { return r->n_dirs; }

const char *registry_dir(const registry *r, size_t i, registry_origin *origin, int *opened)
{
    if (i >= r->n_dirs)
        return NULL;
    if (origin)
        *origin = r->dirs[i].origin;
    if (opened)
        *opened = r->dirs[i].opened;
    return r->dirs[i].path;
}

size_t registry_dirs_opened(const registry *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_dirs; i++)
        n += r->dirs[i].opened != 0;
    return n;
}

size_t registry_warning_count(const registry *r) { return r->n_warnings; }

const char *registry_warning(const registry *r, size_t i) { return i < r->n_warnings ? r->warnings[i] : NULL; }
