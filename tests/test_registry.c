/* This file implements the tests of core/registry.c and of the built-in
 * plugins it loads (plugins/observers/minmax.c, plugins/fakequant/round.c).
 *
 * The registry is exercised with small test plugins built next to this
 * program (tests/plugins/*.c, each named <kind>-<name>.so like a real one):
 * every refusal (ABI major, newer minor, missing entry symbol, malformed
 * descriptor or vtable, name/file mismatch, not a shared object) must be one
 * line naming the file; duplicates warn and the first in search order wins;
 * plugin_path comes before QUANTKIT_PLUGIN_PATH before the built-in plugins;
 * a lookup loads exactly one file; an unknown name lists what was found and
 * where.  A conformance suite loads every plugin built in plugins/ through
 * the real loader, and the built-in plugins are run against a small fake
 * host table.  Fault tests make each allocation fail in turn. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <quantkit/quantkit.h>
#include "registry.h"

#ifndef TEST_BUILD_DIR
#error "TEST_BUILD_DIR must name the build tree (set by Makefile.am)"
#endif
#define TP_DIR TEST_BUILD_DIR "/tests/plugins"
#define BROKEN TP_DIR "/broken/.libs"
#define PATH_A TP_DIR "/path_a/.libs"
#define PATH_B TP_DIR "/path_b/.libs"
#define BUILTIN_MINMAX TEST_BUILD_DIR "/plugins/observers/.libs/observer-minmax.so"
#define BUILTIN_ROUND TEST_BUILD_DIR "/plugins/fakequant/.libs/fakequant-round.so"

static void setup(void)
{
    unsetenv("QUANTKIT_PLUGIN_PATH");
    registry_fail_alloc_after(0);
}

/* A registry over the given plugin_path folders (NULL-terminated list). */
static registry *open_with(const char *first, ...)
{
    const char *dirs[8];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *d = first; d && n < 8; d = va_arg(ap, const char *))
        dirs[n++] = d;
    va_end(ap);
    registry *r = NULL;
    qk_err err = {0};
    ck_assert_msg(registry_new(dirs, n, &r, &err) == 0, "registry_new: %s", err.msg);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Looks up kind/name, expects `code` and a one-line message containing
 * every NULL-terminated needle. */
static void expect_refusal(registry *r, int kind, const char *name, int code, ...)
{
    const qk_plugin_descriptor *d = (const void *)1;
    qk_err err = {0};
    int st = registry_get(r, kind, name, &d, &err);
    ck_assert_msg(st == code, "%s: status %d, wanted %d (%s)", name, st, code, err.msg);
    ck_assert_ptr_null(d);
    ck_assert_msg(!strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
    va_list ap;
    va_start(ap, code);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        ck_assert_msg(strstr(err.msg, needle), "message lacks '%s': %s", needle, err.msg);
    va_end(ap);
}

static const qk_plugin_descriptor *get_ok(registry *r, int kind, const char *name)
{
    const qk_plugin_descriptor *d = NULL;
    qk_err err = {0};
    ck_assert_msg(registry_get(r, kind, name, &d, &err) == 0, "%s: %s", name, err.msg);
    ck_assert_ptr_nonnull(d);
    return d;
}

static const char *file_of(const registry *r, int kind, const char *name)
{
    for (size_t i = 0; i < registry_count(r); i++) {
        const registry_entry *e = registry_entry_at(r, i);
        if (e->kind == kind && !strcmp(e->name, name))
            return e->file;
    }
    return NULL;
}

/* True when some warning contains both needles. */
static int warned(const registry *r, const char *a, const char *b)
{
    for (size_t i = 0; i < registry_warning_count(r); i++) {
        const char *w = registry_warning(r, i);
        if (strstr(w, a) && (!b || strstr(w, b)))
            return 1;
    }
    return 0;
}

/* ---- refusals --------------------------------------------------------------- */

START_TEST(test_abi_major_refused)
{
    registry *r = open_with(BROKEN, NULL);
    char v[32];
    snprintf(v, sizeof v, "ABI %d.%d", QK_ABI_MAJOR + 1, 0);
    char host[32];
    snprintf(host, sizeof host, "ABI %d.%d", QK_ABI_MAJOR, QK_ABI_MINOR);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "abi_major", QK_ENOTSUP, BROKEN "/observer-abi_major.so", v, host, NULL);
    ck_assert(!registry_is_loaded(r, QK_PLUGIN_OBSERVER, "abi_major"));
    registry_free(r);
}
END_TEST

START_TEST(test_abi_minor_higher_refused)
{
    registry *r = open_with(BROKEN, NULL);
    char v[32], host[32];
    snprintf(v, sizeof v, "ABI %d.%d", QK_ABI_MAJOR, QK_ABI_MINOR + 1);
    snprintf(host, sizeof host, "ABI %d.%d", QK_ABI_MAJOR, QK_ABI_MINOR);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "abi_minor", QK_ENOTSUP, BROKEN "/observer-abi_minor.so", v, host,
                   "newer", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_missing_entry_symbol_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "no_entry", QK_EINVAL, BROKEN "/observer-no_entry.so",
                   "quantkit_plugin_descriptor", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_null_name_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "null_name", QK_EINVAL, BROKEN "/observer-null_name.so", "malformed",
                   "name is NULL", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_kind_out_of_range_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "bad_kind", QK_EINVAL, BROKEN "/observer-bad_kind.so", "malformed",
                   "kind 99", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_null_required_function_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "null_function", QK_EINVAL, BROKEN "/observer-null_function.so",
                   "malformed", "observer vtable entry 'observe' is NULL", NULL);
    expect_refusal(r, QK_PLUGIN_BACKEND, "no_ops", QK_EINVAL, BROKEN "/backend-no_ops.so",
                   "'quantized_ops' is NULL", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_vtable_null_or_small_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_FUSION, "null_vtable", QK_EINVAL, BROKEN "/fusion-null_vtable.so",
                   "fusion vtable is NULL", NULL);
    char want[64];
    snprintf(want, sizeof want, "fakequant vtable size %zu is smaller", sizeof(size_t) + sizeof(void *));
    expect_refusal(r, QK_PLUGIN_FAKEQUANT, "small_vtable", QK_EINVAL, BROKEN "/fakequant-small_vtable.so", want,
                   NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_name_file_mismatch_refused)
{
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "mismatch", QK_EINVAL, BROKEN "/observer-mismatch.so",
                   "declares observer 'other_name'", "file name says observer 'mismatch'", NULL);
    /* The name it declares is not indexed: lazy lookup goes by file name. */
    expect_refusal(r, QK_PLUGIN_OBSERVER, "other_name", QK_EINVAL, "unknown observer 'other_name'", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_not_a_shared_object_refused)
{
    char dir[] = "/tmp/qk_reg_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char file[256];
    snprintf(file, sizeof file, "%s/observer-garbage.so", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an ELF file\n", f);
    fclose(f);
    registry *r = open_with(dir, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "garbage", QK_EINVAL, file, "cannot load", NULL);
    registry_free(r);
    unlink(file);
    rmdir(dir);
}
END_TEST

START_TEST(test_refusal_is_remembered)
{
    registry *r = open_with(BROKEN, NULL);
    qk_err e1 = {0}, e2 = {0};
    const qk_plugin_descriptor *d;
    ck_assert_int_eq(registry_get(r, QK_PLUGIN_OBSERVER, "abi_major", &d, &e1), QK_ENOTSUP);
    ck_assert_int_eq(registry_get(r, QK_PLUGIN_OBSERVER, "abi_major", &d, &e2), QK_ENOTSUP);
    ck_assert_str_eq(e1.msg, e2.msg);
    ck_assert_uint_eq(registry_load_count(r), 1);
    registry_free(r);
}
END_TEST

/* ---- search order, duplicates, laziness -------------------------------------- */

START_TEST(test_duplicate_first_wins_and_warns)
{
    registry *r = open_with(PATH_A, PATH_B, NULL);
    ck_assert_str_eq(file_of(r, QK_PLUGIN_OBSERVER, "minmax"), PATH_A "/observer-minmax.so");
    ck_assert_str_eq(get_ok(r, QK_PLUGIN_OBSERVER, "minmax")->description, "test copy in path_a");
    ck_assert_msg(warned(r, PATH_A "/observer-minmax.so", PATH_B "/observer-minmax.so"), "no warning for path_b");
    ck_assert_msg(warned(r, PATH_A "/observer-minmax.so", BUILTIN_MINMAX), "no warning for the built-in copy");
    ck_assert_msg(warned(r, "observer 'minmax'", "first in search order wins"), "warning: %s",
                  registry_warning(r, 0));
    registry_free(r);
}
END_TEST

START_TEST(test_search_order)
{
    /* plugin_path before QUANTKIT_PLUGIN_PATH ... */
    setenv("QUANTKIT_PLUGIN_PATH", PATH_B, 1);
    registry *r = open_with(PATH_A, NULL);
    ck_assert_str_eq(get_ok(r, QK_PLUGIN_OBSERVER, "minmax")->description, "test copy in path_a");
    registry_origin o;
    ck_assert_str_eq(registry_dir(r, 0, &o, NULL), PATH_A);
    ck_assert_int_eq(o, REGISTRY_PLUGIN_PATH);
    ck_assert_str_eq(registry_dir(r, 1, &o, NULL), PATH_B);
    ck_assert_int_eq(o, REGISTRY_ENV);
    registry_free(r);
    /* ... QUANTKIT_PLUGIN_PATH in its own order, before the built-in ones ... */
    setenv("QUANTKIT_PLUGIN_PATH", "::" PATH_B ":" PATH_A ":", 1);
    r = open_with(NULL);
    ck_assert_str_eq(get_ok(r, QK_PLUGIN_OBSERVER, "minmax")->description, "test copy in path_b");
    ck_assert_uint_eq(registry_dir_count(r) >= 2, 1);
    ck_assert_str_eq(registry_dir(r, 1, &o, NULL), PATH_A);
    registry_free(r);
    /* ... and the built-in one when nothing else has it. */
    unsetenv("QUANTKIT_PLUGIN_PATH");
    r = open_with(NULL);
    ck_assert_str_eq(file_of(r, QK_PLUGIN_OBSERVER, "minmax"), BUILTIN_MINMAX);
    ck_assert_str_ne(get_ok(r, QK_PLUGIN_OBSERVER, "minmax")->description, "test copy in path_a");
    ck_assert_uint_eq(registry_warning_count(r), 0);
    registry_free(r);
}
END_TEST

START_TEST(test_build_tree_and_installed_dirs)
{
    /* This program runs uninstalled, so the build tree is searched, before
     * the installed folder (which comes last). */
    registry *r = open_with(NULL);
    size_t n = registry_dir_count(r), build = 0;
    ck_assert_uint_ge(n, 3);
    for (size_t i = 0; i + 1 < n; i++) {
        registry_origin o;
        int opened;
        const char *d = registry_dir(r, i, &o, &opened);
        ck_assert_int_eq(o, REGISTRY_BUILD_TREE);
        ck_assert(opened);
        ck_assert_msg(!strncmp(d, TEST_BUILD_DIR "/plugins/", strlen(TEST_BUILD_DIR "/plugins/")), "%s", d);
        build++;
    }
    registry_origin o;
    const char *inst = registry_dir(r, n - 1, &o, NULL);
    ck_assert_int_eq(o, REGISTRY_INSTALLED);
    ck_assert_ptr_nonnull(strstr(inst, "/plugins"));
    ck_assert_uint_ge(build, 2);   /* observers, fakequant at least */
    registry_free(r);
}
END_TEST

START_TEST(test_lookup_loads_one_file)
{
    registry *r = open_with(BROKEN, PATH_A, NULL);
    ck_assert_uint_ge(registry_count(r), 12);
    ck_assert_uint_eq(registry_load_count(r), 0);   /* indexing runs no plugin */
    const qk_plugin_descriptor *d = get_ok(r, QK_PLUGIN_BACKEND, "good");
    ck_assert_uint_eq(registry_load_count(r), 1);
    ck_assert(registry_is_loaded(r, QK_PLUGIN_BACKEND, "good"));
    ck_assert(!registry_is_loaded(r, QK_PLUGIN_OBSERVER, "minmax"));
    ck_assert(!registry_is_loaded(r, QK_PLUGIN_FAKEQUANT, "round"));
    /* Cached: the same descriptor, nothing loaded again. */
    ck_assert_ptr_eq(get_ok(r, QK_PLUGIN_BACKEND, "good"), d);
    ck_assert_uint_eq(registry_load_count(r), 1);
    get_ok(r, QK_PLUGIN_FAKEQUANT, "round");
    ck_assert_uint_eq(registry_load_count(r), 2);
    ck_assert(registry_is_loaded(r, QK_PLUGIN_FAKEQUANT, "round"));
    registry_free(r);
}
END_TEST

START_TEST(test_unknown_name_lists_found_and_searched)
{
    setenv("QUANTKIT_PLUGIN_PATH", PATH_B, 1);
    registry *r = open_with(BROKEN, NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "minmx", QK_EINVAL, "unknown observer 'minmx'", "did you mean 'minmax'",
                   "found: abi_major, abi_minor, bad_kind, kl, minmax, mismatch, moving_average, mse, no_entry, null_function, null_name, percentile",
                   BROKEN " (plugin_path)", PATH_B " (QUANTKIT_PLUGIN_PATH)",
                   TEST_BUILD_DIR "/plugins/observers/.libs (build tree)", "(installed", NULL);
    expect_refusal(r, QK_PLUGIN_FUSION, "conv_bnn", QK_EINVAL, "unknown fusion 'conv_bnn'", "did you mean 'conv_bn'",
                   "found: conv_add_relu, conv_bn, conv_relu, null_vtable", NULL);
    ck_assert_uint_eq(registry_load_count(r), 0);
    registry_free(r);
    unsetenv("QUANTKIT_PLUGIN_PATH");
    r = open_with(NULL);
    expect_refusal(r, QK_PLUGIN_BACKEND, "tensorrt", QK_EINVAL, "unknown backend 'tensorrt'",
                   "found: onnx-qdq", "searched: ", NULL);
    expect_refusal(r, 0, "x", QK_EINVAL, "not a plugin kind", NULL);
    expect_refusal(r, QK_PLUGIN_KIND_END, "x", QK_EINVAL, "not a plugin kind", NULL);
    expect_refusal(r, QK_PLUGIN_OBSERVER, "", QK_EINVAL, "no observer name", NULL);
    registry_free(r);
}
END_TEST

START_TEST(test_missing_explicit_dir_warns)
{
    registry *r = open_with("/nonexistent/qk/plugins", NULL);
    ck_assert(warned(r, "/nonexistent/qk/plugins", "cannot open"));
    int opened = 1;
    ck_assert_str_eq(registry_dir(r, 0, NULL, &opened), "/nonexistent/qk/plugins");
    ck_assert_int_eq(opened, 0);
    ck_assert_uint_ge(registry_dirs_opened(r), 1);   /* the build tree */
    registry_free(r);
}
END_TEST

START_TEST(test_same_dir_twice_is_searched_once)
{
    setenv("QUANTKIT_PLUGIN_PATH", PATH_A "/", 1);
    registry *r = open_with(PATH_A, PATH_A "/../.libs", NULL);
    ck_assert_str_eq(registry_dir(r, 1, NULL, NULL), TEST_BUILD_DIR "/plugins/observers/.libs");
    /* path_a, the build tree's observers, fakequant, fusions, backends, installed */
    ck_assert_uint_eq(registry_dir_count(r), 6);
    ck_assert(!warned(r, "ignoring " PATH_A, NULL));
    ck_assert(warned(r, "ignoring " BUILTIN_MINMAX, NULL));
    registry_free(r);
}
END_TEST

START_TEST(test_index_sorted_and_kind_names)
{
    registry *r = open_with(BROKEN, NULL);
    for (size_t i = 1; i < registry_count(r); i++) {
        const registry_entry *a = registry_entry_at(r, i - 1), *b = registry_entry_at(r, i);
        ck_assert(a->kind < b->kind || (a->kind == b->kind && strcmp(a->name, b->name) < 0));
    }
    ck_assert_ptr_null(registry_entry_at(r, registry_count(r)));
    for (int k = QK_PLUGIN_OBSERVER; k < QK_PLUGIN_KIND_END; k++)
        ck_assert_int_eq(registry_kind_parse(registry_kind_name(k)), k);
    ck_assert_ptr_null(registry_kind_name(0));
    ck_assert_ptr_null(registry_kind_name(QK_PLUGIN_KIND_END));
    ck_assert_int_eq(registry_kind_parse("observers"), 0);
    registry_free(r);
}
END_TEST

/* Every allocation made to fail in turn: registry_new fails cleanly with
 * QK_ENOMEM (the sanitizer build checks for leaks), lookups either succeed
 * or fail with a message. */
START_TEST(test_fault_alloc)
{
    setenv("QUANTKIT_PLUGIN_PATH", PATH_B, 1);
    /* Far more allocations than one run makes: once registry_new gets
     * through, every later run does too, and the last ones see no failure. */
    long first_ok = 0;
    const long runs = 400;
    for (long n = 1; n <= runs; n++) {
        registry_fail_alloc_after(n);
        registry *r = NULL;
        qk_err err = {0};
        const char *dirs[] = {BROKEN, PATH_A};
        int st = registry_new(dirs, 2, &r, &err);
        if (st) {
            ck_assert_int_eq(first_ok, 0);
            ck_assert_int_eq(st, QK_ENOMEM);
            ck_assert_ptr_null(r);
            ck_assert_ptr_nonnull(strstr(err.msg, "out of memory"));
            continue;
        }
        if (!first_ok)
            first_ok = n;
        const qk_plugin_descriptor *d;
        ck_assert_int_eq(registry_get(r, QK_PLUGIN_OBSERVER, "abi_major", &d, &err), QK_ENOTSUP);
        ck_assert_ptr_nonnull(strstr(err.msg, "observer-abi_major.so"));
        ck_assert_int_eq(registry_get(r, QK_PLUGIN_OBSERVER, "abi_major", &d, &err), QK_ENOTSUP);
        ck_assert_ptr_nonnull(strstr(err.msg, "observer-abi_major.so"));
        ck_assert_int_eq(registry_get(r, QK_PLUGIN_FAKEQUANT, "round", &d, &err), 0);
        ck_assert_int_eq(registry_get(r, QK_PLUGIN_OBSERVER, "nope", &d, &err), QK_EINVAL);
        registry_free(r);
        registry_fail_alloc_after(0);
    }
    registry_fail_alloc_after(0);
    ck_assert_int_gt(first_ok, 1);
    ck_assert_int_lt(first_ok, runs / 2);
}
END_TEST

/* ---- conformance: every plugin built in plugins/ ------------------------------ */

/* Every .so in the build tree's plugin folders follows the <kind>-<name>.so
 * convention (else the registry would silently skip it), loads through the
 * real loader, and has a complete descriptor. */
START_TEST(test_every_built_plugin_loads)
{
    registry *r = open_with(NULL);
    static const char *const kind_dirs[] = {"observers", "fakequant", "fusions", "backends"};
    size_t files = 0;
    for (size_t k = 0; k < 4; k++) {
        char d[512];
        snprintf(d, sizeof d, "%s/plugins/%s/.libs", TEST_BUILD_DIR, kind_dirs[k]);
        DIR *dir = opendir(d);
        if (!dir)
            continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len < 4 || strcmp(de->d_name + len - 3, ".so"))
                continue;
            char f[1024];
            snprintf(f, sizeof f, "%s/%s", d, de->d_name);
            int indexed = 0;
            for (size_t i = 0; i < registry_count(r); i++)
                indexed |= !strcmp(registry_entry_at(r, i)->file, f);
            ck_assert_msg(indexed, "%s is not named <kind>-<name>.so", f);
            files++;
        }
        closedir(dir);
    }
    size_t loaded = 0;
    for (size_t i = 0; i < registry_count(r); i++) {
        const registry_entry *e = registry_entry_at(r, i);
        registry_origin o;
        registry_dir(r, (size_t)e->dir, &o, NULL);
        if (o != REGISTRY_BUILD_TREE)
            continue;
        const qk_plugin_descriptor *d = NULL;
        qk_err err = {0};
        ck_assert_msg(registry_load_at(r, i, &d, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(d->kind, e->kind);
        ck_assert_str_eq(d->name, e->name);
        ck_assert_msg(d->version && *d->version, "%s: no version", e->file);
        ck_assert_msg(d->description && *d->description && !strchr(d->description, '\n'),
                      "%s: description must be one line", e->file);
        ck_assert_msg(d->license && *d->license, "%s: no license", e->file);
        size_t vsize = *(const size_t *)d->vtable;
        size_t want = e->kind == QK_PLUGIN_OBSERVER    ? sizeof(qk_observer_vtable)
                      : e->kind == QK_PLUGIN_FAKEQUANT ? sizeof(qk_fakequant_vtable)
                      : e->kind == QK_PLUGIN_FUSION    ? sizeof(qk_fusion_vtable)
                                                       : sizeof(qk_backend_vtable);
        /* Built with this SDK, so its table is exactly this SDK's. */
        ck_assert_uint_eq(vsize, want);
        ck_assert_uint_eq(d->abi_major, QK_ABI_MAJOR);
        ck_assert_uint_eq(d->abi_minor, QK_ABI_MINOR);
        loaded++;
    }
    ck_assert_uint_eq(loaded, files);
    ck_assert_uint_ge(loaded, 2);
    ck_assert_str_eq(file_of(r, QK_PLUGIN_OBSERVER, "minmax"), BUILTIN_MINMAX);
    ck_assert_str_eq(file_of(r, QK_PLUGIN_FAKEQUANT, "round"), BUILTIN_ROUND);
    registry_free(r);
}
END_TEST

/* ---- a fake host, to run the built-in plugins -------------------------------- */

struct qk_tensor {
    qk_dtype dtype;
    int rank;
    int64_t dims[QK_MAX_RANK];
    const void *data;
};

struct qk_params {
    int n;
    const char *keys[4];
};

static char host_msg[512];
static int host_errors;

static qk_dtype t_dtype(const qk_tensor *t) { return t->dtype; }
static int t_rank(const qk_tensor *t) { return t->rank; }
static int64_t t_dim(const qk_tensor *t, int i) { return t->dims[i]; }
static int64_t t_numel(const qk_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}
static const void *t_data(const qk_tensor *t) { return t->data; }
static const char *t_name(const qk_tensor *t) { return "t"; }

static int log_error(const qk_host *host, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(host_msg, sizeof host_msg, fmt, ap);
    va_end(ap);
    host_errors++;
    return status;
}
static void log_quiet(const qk_host *host, const char *fmt, ...) {}

static int p_check_keys(const qk_params *p, const char *const *allowed, const char *what)
{
    for (int i = 0; i < p->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= !strcmp(*a, p->keys[i]);
        if (!ok)
            return log_error(NULL, QK_EINVAL, "unknown key `%s` in %s", p->keys[i], what);
    }
    return QK_OK;
}

static void f_free(void *p) { free(p); }
static const qk_mem_api mem_api = {sizeof(qk_mem_api), malloc, calloc, realloc, f_free};
static const qk_log_api log_api = {sizeof(qk_log_api), log_error, log_quiet, log_quiet};
static const qk_tensor_api tensor_api = {sizeof(qk_tensor_api), t_dtype, t_rank, t_dim, t_numel, t_data, t_name};
static const qk_params_api params_api = {sizeof(qk_params_api), NULL, NULL, NULL, NULL, p_check_keys};
static const qk_host host = {sizeof(qk_host), QK_ABI_MAJOR, QK_ABI_MINOR, &mem_api, &log_api, &tensor_api, NULL,
                             &params_api, NULL, NULL};

static registry *builtin_reg;
static const qk_observer_vtable *mm;
static const qk_fakequant_vtable *rq;

static void builtin_setup(void)
{
    setup();
    host_msg[0] = 0;
    host_errors = 0;
    qk_err err = {0};
    ck_assert_msg(registry_new(NULL, 0, &builtin_reg, &err) == 0, "%s", err.msg);
    mm = get_ok(builtin_reg, QK_PLUGIN_OBSERVER, "minmax")->vtable;
    rq = get_ok(builtin_reg, QK_PLUGIN_FAKEQUANT, "round")->vtable;
}

static void builtin_teardown(void) { registry_free(builtin_reg); }

static qk_tensor tensor2(int64_t d0, int64_t d1, const float *data)
{
    return (qk_tensor){QK_DTYPE_FLOAT, 2, {d0, d1}, data};
}

static void *new_observer(int per_channel, int axis)
{
    qk_quant_spec spec = {sizeof spec, 8, 0, 1, 0, per_channel, axis, 0};
    qk_params none = {0};
    void *s = NULL;
    ck_assert_int_eq(mm->create(&host, &none, &spec, &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(test_minmax_per_tensor_over_batches)
{
    void *s = new_observer(0, 0);
    float b1[] = {1, -2, 3, NAN}, b2[] = {5, 0.5f, -INFINITY, 4};
    qk_tensor t1 = tensor2(2, 2, b1), t2 = tensor2(1, 4, b2);
    ck_assert_int_eq(mm->observe(s, &t1), 0);
    ck_assert_int_eq(mm->observe(s, &t2), 0);
    float lo, hi;
    ck_assert_int_eq(mm->range(s, 1, &lo, &hi), 0);
    ck_assert_float_eq(lo, -2);
    ck_assert_float_eq(hi, 5);
    ck_assert_int_ne(mm->range(s, 2, &lo, &hi), 0);
    ck_assert_ptr_nonnull(strstr(host_msg, "2 channels"));
    mm->destroy(s);
    mm->destroy(NULL);
}
END_TEST

START_TEST(test_minmax_per_channel)
{
    /* Activations [N=2, C=3]: channel axis 1. */
    float a[] = {1, -1, 10, 2, -5, 7};
    qk_tensor t = tensor2(2, 3, a);
    void *s = new_observer(1, 1);
    ck_assert_int_eq(mm->observe(s, &t), 0);
    float lo[3], hi[3];
    ck_assert_int_eq(mm->range(s, 3, lo, hi), 0);
    ck_assert_float_eq(lo[0], 1);
    ck_assert_float_eq(hi[0], 2);
    ck_assert_float_eq(lo[1], -5);
    ck_assert_float_eq(hi[1], -1);
    ck_assert_float_eq(lo[2], 7);
    ck_assert_float_eq(hi[2], 10);
    /* The channel count may not change between batches. */
    qk_tensor t4 = tensor2(1, 4, a);
    ck_assert_int_ne(mm->observe(s, &t4), 0);
    ck_assert_ptr_nonnull(strstr(host_msg, "channel count changed from 3 to 4"));
    mm->destroy(s);
    /* Weights [O=3, I=2] along axis 0, and the same axis given as -2. */
    for (int axis = 0; axis >= -2; axis -= 2) {
        s = new_observer(1, axis);
        qk_tensor w = tensor2(3, 2, a);
        ck_assert_int_eq(mm->observe(s, &w), 0);
        ck_assert_int_eq(mm->range(s, 3, lo, hi), 0);
        ck_assert_float_eq(lo[0], -1);
        ck_assert_float_eq(hi[0], 1);
        ck_assert_float_eq(lo[1], 2);
        ck_assert_float_eq(hi[1], 10);
        ck_assert_float_eq(lo[2], -5);
        ck_assert_float_eq(hi[2], 7);
        mm->destroy(s);
    }
    s = new_observer(1, 2);
    ck_assert_int_ne(mm->observe(s, &t), 0);
    ck_assert_ptr_nonnull(strstr(host_msg, "axis 2 out of range"));
    mm->destroy(s);
}
END_TEST

START_TEST(test_minmax_merge)
{
    float a[] = {1, -1, 10, 2, -5, 7}, b[] = {0, 3, 11, -9, 0, 0};
    qk_tensor ta = tensor2(2, 3, a), tb = tensor2(2, 3, b);
    void *all = new_observer(1, 1), *s1 = new_observer(1, 1), *s2 = new_observer(1, 1), *empty = new_observer(1, 1);
    ck_assert_int_eq(mm->observe(all, &ta), 0);
    ck_assert_int_eq(mm->observe(all, &tb), 0);
    ck_assert_int_eq(mm->observe(s1, &ta), 0);
    ck_assert_int_eq(mm->observe(s2, &tb), 0);
    ck_assert_int_eq(mm->merge(s1, s2), 0);
    ck_assert_int_eq(mm->merge(s1, empty), 0);   /* merging nothing changes nothing */
    float l1[3], h1[3], l2[3], h2[3];
    ck_assert_int_eq(mm->range(all, 3, l1, h1), 0);
    ck_assert_int_eq(mm->range(s1, 3, l2, h2), 0);
    ck_assert_mem_eq(l1, l2, sizeof l1);
    ck_assert_mem_eq(h1, h2, sizeof h1);
    /* Merging into a fresh state copies. */
    ck_assert_int_eq(mm->merge(empty, all), 0);
    ck_assert_int_eq(mm->range(empty, 3, l2, h2), 0);
    ck_assert_mem_eq(l1, l2, sizeof l1);
    /* other is left unchanged. */
    ck_assert_int_eq(mm->range(s2, 3, l2, h2), 0);
    ck_assert_float_eq(l2[0], -9);
    mm->destroy(all);
    mm->destroy(s1);
    mm->destroy(s2);
    mm->destroy(empty);
}
END_TEST

START_TEST(test_minmax_range_before_observe_fails)
{
    void *s = new_observer(0, 0);
    float lo, hi;
    ck_assert_int_eq(mm->range(s, 1, &lo, &hi), QK_EINVAL);
    ck_assert_ptr_nonnull(strstr(host_msg, "before any value was observed"));
    /* A batch of only NaN observes nothing in that channel. */
    float nan1[] = {NAN};
    qk_tensor t = tensor2(1, 1, nan1);
    ck_assert_int_eq(mm->observe(s, &t), 0);
    ck_assert_int_eq(mm->range(s, 1, &lo, &hi), QK_EINVAL);
    ck_assert_ptr_nonnull(strstr(host_msg, "no finite value"));
    mm->destroy(s);
}
END_TEST

START_TEST(test_minmax_rejects_args_and_other_dtypes)
{
    qk_quant_spec spec = {sizeof spec, 8, 0, 1, 0, 0, 0, 0};
    qk_params bad = {1, {"bins"}};
    void *s = (void *)1;
    ck_assert_int_eq(mm->create(&host, &bad, &spec, &s), QK_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(host_msg, "unknown key `bins` in observer_args");
    ck_assert_int_eq(mm->create(&host, NULL, &spec, &s), 0);
    int32_t i32[] = {1, 2};
    qk_tensor t = {QK_DTYPE_INT32, 1, {2}, i32};
    ck_assert_int_eq(mm->observe(s, &t), QK_ENOTSUP);
    mm->destroy(s);
}
END_TEST

static void *new_rounder(void)
{
    qk_quant_spec spec = {sizeof spec, 8, 1, 1, 0, 0, 0, 1};
    qk_params none = {0};
    void *s = NULL;
    ck_assert_int_eq(rq->create(&host, &none, &spec, &s), 0);
    return s;
}

START_TEST(test_round_half_even_and_clamp)
{
    void *s = new_rounder();
    float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 2.4999f, 2.5001f, 1000, -1000, NAN, INFINITY, -INFINITY, 0.75f};
    int32_t want[] = {0, 2, 2, 0, -2, -2, 2, 3, 127, -128, 0, 127, -128, 1};
    int32_t q[14];
    float scale = 1;
    int32_t zp = 0;
    qk_tensor t = {QK_DTYPE_FLOAT, 1, {14}, x};
    qk_qparams qp = {1, -1, &scale, &zp, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), 0);
    for (int i = 0; i < 14; i++)
        ck_assert_msg(q[i] == want[i], "x=%g: q=%d, wanted %d", (double)x[i], q[i], want[i]);
    /* Zero point and scale: 0.25/0.5 = 0.5 -> 0 (+10); 0.75/0.5 = 1.5 -> 2 (+10). */
    float y[] = {0.25f, 0.75f, -100, NAN};
    int32_t wy[] = {10, 12, 0, 10};
    scale = 0.5f;
    zp = 10;
    qp.qmin = 0;
    qp.qmax = 255;
    t = (qk_tensor){QK_DTYPE_FLOAT, 1, {4}, y};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), 0);
    ck_assert_mem_eq(q, wy, sizeof wy);
    rq->destroy(s);
}
END_TEST

START_TEST(test_round_per_channel)
{
    void *s = new_rounder();
    float w[] = {1, 2, 3, 1, 2, 3};
    int32_t q[6];
    /* [2, 3] along axis 0: row 0 scale 1 zp 0, row 1 scale 0.5 zp 10. */
    float sc0[] = {1, 0.5f};
    int32_t zp0[] = {0, 10};
    qk_tensor t = tensor2(2, 3, w);
    qk_qparams qp = {2, 0, sc0, zp0, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), 0);
    int32_t w0[] = {1, 2, 3, 12, 14, 16};
    ck_assert_mem_eq(q, w0, sizeof w0);
    /* Along axis 1: scales 1, 2, 4; symmetric (no zero points). */
    float sc1[] = {1, 2, 4};
    qp = (qk_qparams){3, 1, sc1, NULL, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), 0);
    int32_t w1[] = {1, 1, 1, 1, 1, 1};   /* 3/4 = 0.75 -> 1; 2/2 = 1 */
    ck_assert_mem_eq(q, w1, sizeof w1);
    /* Wrong count, bad axis, bad scale, empty range: refused with a message. */
    qp = (qk_qparams){2, 1, sc1, NULL, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), QK_EINVAL);
    ck_assert_ptr_nonnull(strstr(host_msg, "2 scales for 3 channels"));
    qp = (qk_qparams){3, 2, sc1, NULL, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), QK_EINVAL);
    float zero[] = {1, 0, 4};
    qp = (qk_qparams){3, 1, zero, NULL, -128, 127};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), QK_EINVAL);
    ck_assert_ptr_nonnull(strstr(host_msg, "channel 1"));
    qp = (qk_qparams){3, 1, sc1, NULL, 5, 4};
    ck_assert_int_eq(rq->quantize(s, &t, &qp, q), QK_EINVAL);
    rq->destroy(s);
}
END_TEST

START_TEST(test_round_rejects_args)
{
    qk_quant_spec spec = {sizeof spec, 8, 1, 1, 0, 0, 0, 1};
    qk_params bad = {1, {"iters"}};
    void *s = (void *)1;
    ck_assert_int_eq(rq->create(&host, &bad, &spec, &s), QK_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_str_eq(host_msg, "unknown key `iters` in quantizer_args");
    rq->destroy(NULL);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("refusals");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_abi_major_refused);
    tcase_add_test(tc, test_abi_minor_higher_refused);
    tcase_add_test(tc, test_missing_entry_symbol_refused);
    tcase_add_test(tc, test_null_name_refused);
    tcase_add_test(tc, test_kind_out_of_range_refused);
    tcase_add_test(tc, test_null_required_function_refused);
    tcase_add_test(tc, test_vtable_null_or_small_refused);
    tcase_add_test(tc, test_name_file_mismatch_refused);
    tcase_add_test(tc, test_not_a_shared_object_refused);
    tcase_add_test(tc, test_refusal_is_remembered);
    suite_add_tcase(s, tc);
    tc = tcase_create("lookup");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_duplicate_first_wins_and_warns);
    tcase_add_test(tc, test_search_order);
    tcase_add_test(tc, test_build_tree_and_installed_dirs);
    tcase_add_test(tc, test_lookup_loads_one_file);
    tcase_add_test(tc, test_unknown_name_lists_found_and_searched);
    tcase_add_test(tc, test_missing_explicit_dir_warns);
    tcase_add_test(tc, test_same_dir_twice_is_searched_once);
    tcase_add_test(tc, test_index_sorted_and_kind_names);
    tcase_add_test(tc, test_fault_alloc);
    suite_add_tcase(s, tc);
    tc = tcase_create("conformance");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_every_built_plugin_loads);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *builtin_suite(void)
{
    Suite *s = suite_create("builtin plugins");
    TCase *tc = tcase_create("minmax");
    tcase_add_checked_fixture(tc, builtin_setup, builtin_teardown);
    tcase_add_test(tc, test_minmax_per_tensor_over_batches);
    tcase_add_test(tc, test_minmax_per_channel);
    tcase_add_test(tc, test_minmax_merge);
    tcase_add_test(tc, test_minmax_range_before_observe_fails);
    tcase_add_test(tc, test_minmax_rejects_args_and_other_dtypes);
    suite_add_tcase(s, tc);
    tc = tcase_create("round");
    tcase_add_checked_fixture(tc, builtin_setup, builtin_teardown);
    tcase_add_test(tc, test_round_half_even_and_clamp);
    tcase_add_test(tc, test_round_per_channel);
    tcase_add_test(tc, test_round_rejects_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());
    srunner_add_suite(sr, builtin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
