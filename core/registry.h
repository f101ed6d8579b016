/* This file implements the plugin registry's interface: an index of the
 * plugins found on disk, looked up by kind and name, loading each shared
 * object only when it is first asked for (libltdl).
 *
 * Plugins are found by file name, so building the index runs no plugin
 * code: a plugin of kind K named N is the file `K-N.so` (observer-minmax.so,
 * backend-onnx-qdq.so).  Directories are searched in this order, and the
 * first file of a given kind and name wins (later ones produce a warning
 * naming both files):
 *   1. the `plugin_path:` entries of the YAML, as passed to registry_new;
 *   2. the entries of QUANTKIT_PLUGIN_PATH (colon-separated);
 *   3. when the running executable lives inside the build tree (make check,
 *      ./quantkit): the build tree's plugins/{observers,fakequant,fusions,
 *      backends}/.libs -- before (4) so that an uninstalled binary uses the
 *      plugins built with it, not an older installed copy;
 *   4. the installed plugin directory, $(pkglibdir)/plugins.
 *
 * Loading checks the descriptor (ABI version first, then every required
 * field and the vtable's required functions) before any plugin function is
 * called; a refusal is one line naming the file and the cause.
 *
 * A registry is not thread-safe: look plugins up from one thread (before
 * calibration starts its workers).  Descriptors it returns stay valid until
 * registry_free, which unloads the plugins. */
#ifndef QK_CORE_REGISTRY_H
#define QK_CORE_REGISTRY_H
#include <stddef.h>
#include <quantkit/plugin.h>
#include "status.h"

typedef struct registry registry;

/* Where a searched directory came from. */
typedef enum registry_origin {
    REGISTRY_PLUGIN_PATH,   /* YAML plugin_path: */
    REGISTRY_ENV,           /* QUANTKIT_PLUGIN_PATH */
    REGISTRY_BUILD_TREE,    /* uninstalled run: the build tree's plugins */
    REGISTRY_INSTALLED,     /* $(pkglibdir)/plugins */
} registry_origin;

/* One indexed plugin file (the winner for its kind and name). */
typedef struct registry_entry {
    int kind;               /* qk_plugin_kind, from the file name */
    const char *name;       /* from the file name */
    const char *file;       /* full path of the .so */
    int dir;                /* index of its directory (registry_dir) */
} registry_entry;

/* Builds the index from the directories above; plugin_path (n entries,
 * borrowed for the call) may be NULL when n is 0.  Directories that cannot
 * be opened are skipped (recorded as such: see registry_dir); an explicit
 * plugin_path or QUANTKIT_PLUGIN_PATH entry that cannot be opened also adds
 * a warning.  Returns 0 and a new registry in *out (free with registry_free),
 * or QK_ENOMEM / QK_ERR (libltdl failed to initialise) with *out NULL. */
int registry_new(const char *const *plugin_path, size_t n, registry **out, qk_err *err);

/* Unloads every plugin loaded through r and frees r; NULL is a no-op. */
void registry_free(registry *r);

/* Finds the plugin of `kind` called `name` and loads it on first use; later
 * calls return the same descriptor without touching the disk.  On success
 * stores the descriptor (owned by r, valid until registry_free; its vtable is
 * checked for the kind's required functions) and returns 0.  Errors, with
 * *out NULL:
 *   QK_EINVAL  unknown name: the message lists the names of that kind that
 *              were found and the directories searched; or a kind out of
 *              range;
 *   QK_ENOTSUP the plugin's ABI version is not this host's (major differs,
 *              or its minor is higher); the message has both versions;
 *   QK_EINVAL  the file is not a valid plugin (cannot be loaded, no entry
 *              symbol, malformed descriptor or vtable);
 *   QK_ENOMEM.
 * Every message names the file.  A refusal is remembered: asking again
 * returns the same error without reloading. */
int registry_get(registry *r, int kind, const char *name, const qk_plugin_descriptor **out, qk_err *err);

/* The index, sorted by kind then name: entries 0 .. registry_count(r)-1.
 * The entry is owned by r. */
size_t registry_count(const registry *r);
const registry_entry *registry_entry_at(const registry *r, size_t i);
/* registry_get for entry i. */
int registry_load_at(registry *r, size_t i, const qk_plugin_descriptor **out, qk_err *err);

/* How many plugin files r has tried to load (successfully or not): lookups
 * are lazy, so after one registry_get this is 1 however many were found. */
size_t registry_load_count(const registry *r);
/* 1 when the plugin of kind/name has been loaded successfully, else 0. */
int registry_is_loaded(const registry *r, int kind, const char *name);

/* The directories searched, in search order.  registry_dir returns the path
 * of directory i (owned by r) and stores where it came from in *origin and
 * whether it could be opened in *opened (either may be NULL). */
size_t registry_dir_count(const registry *r);
const char *registry_dir(const registry *r, size_t i, registry_origin *origin, int *opened);
/* Number of directories that could be opened and read. */
size_t registry_dirs_opened(const registry *r);
/* Label of an origin: "plugin_path", "QUANTKIT_PLUGIN_PATH", "build tree",
 * "installed". */
const char *registry_origin_name(registry_origin o);

/* Warnings collected while indexing (duplicates, unreadable explicit
 * directories): one line each, owned by r. */
size_t registry_warning_count(const registry *r);
const char *registry_warning(const registry *r, size_t i);

/* "observer", "fakequant", "fusion", "backend"; NULL for a kind out of
 * range.  registry_kind_parse is the inverse (0 when unknown). */
const char *registry_kind_name(int kind);
int registry_kind_parse(const char *s);

/* Fault tests: the n-th allocation from now on, and every later one, fails
 * (0 turns this off).  Not thread-safe; tests only. */
void registry_fail_alloc_after(long n);

#endif
