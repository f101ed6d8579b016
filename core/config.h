/* This file implements the interface of quantkit's YAML configuration
 * (version 1, see DESIGN.md "YAML config"): loading and validating a config
 * file with libyaml, the typed key/value maps handed to plugins as their
 * arguments, and the resolution of the quantization rule of one node
 * (`quantize` < `op_types` < `nodes`, field by field).
 *
 * Why it looks like this: every setting remembers the line and column it came
 * from, so reports can say which rule decided a node's bits and error
 * messages can point at the offending key ("cfg.yaml:5:45: unknown key
 * `per_chanel` in quantize.weight; did you mean `per_channel`?").  All errors
 * are one line, "FILE:LINE:COL: message" (1-based), returned through qk_err;
 * nothing here prints or exits.
 *
 * Ownership: a qk_config owns every string, map and list reachable from it;
 * pointers obtained from it (including those written into qk_resolved_rule)
 * stay valid until config_free().  A loaded config is read-only, so any
 * number of threads may call the const functions on it at once. */
#ifndef QK_CORE_CONFIG_H
#define QK_CORE_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "status.h"

/* The only config version this build reads. */
#define QK_CONFIG_VERSION 1

/* ------------------------------------------------------------------------ */
/* Typed maps: observer_args, quantizer_args, backend_options               */
/* ------------------------------------------------------------------------ */

/* The type of a value in a plugin-argument map.  Plain YAML scalars are typed
 * by the YAML 1.2 core schema: `~`/`null`/empty -> null, `true`/`false` ->
 * bool, `12`, `-3`, `0x1f`, `0o17` -> int, `1.5`, `1e-3`, `.inf`, `.nan` ->
 * float; everything else, and every quoted scalar, is a string (so `"8"` is
 * the string 8).  `yes`/`no`/`on`/`off` are strings, not booleans. */
typedef enum cfg_type {
    CFG_NULL,
    CFG_INT,
    CFG_FLOAT,
    CFG_BOOL,
    CFG_STRING,
    CFG_LIST,
    CFG_MAP,
} cfg_type;

typedef struct cfg_value cfg_value;
typedef struct cfg_entry cfg_entry;

typedef struct cfg_list {
    size_t n;
    cfg_value *items;
} cfg_list;

/* A mapping from string keys to typed values, in file order, keys unique.
 * `path` names it in messages ("quantize.activation.observer_args",
 * "backend_options.march"); `file` is the config's name for errors (borrowed
 * from the qk_config).  line/column locate the mapping itself (0 when it was
 * not written in the file, e.g. an absent `observer_args`). */
typedef struct cfg_map {
    const char *file;
    char *path;
    int line, column;
    size_t n;
    cfg_entry *entries;
} cfg_map;

struct cfg_value {
    cfg_type type;
    int line, column;            /* where the value starts, 1-based */
    union {
        int64_t i;               /* CFG_INT */
        double f;                /* CFG_FLOAT */
        bool b;                  /* CFG_BOOL */
        char *s;                 /* CFG_STRING: NUL-terminated, no inner NUL */
        cfg_list list;           /* CFG_LIST */
        cfg_map map;             /* CFG_MAP */
    } u;
};

struct cfg_entry {
    char *key;
    int line, column;            /* where the key starts, 1-based */
    cfg_value value;
};

/* "null", "integer", "float", "boolean", "string", "list" or "mapping". */
const char *cfg_type_name(cfg_type t);

/* Number of keys of m (0 for NULL), and the i-th key in file order (NULL when
 * i is out of range).  The key is borrowed from the config. */
size_t cfg_map_count(const cfg_map *m);
const char *cfg_map_key(const cfg_map *m, size_t i);
/* The entry for key, or NULL (also when m is NULL).  Borrowed. */
const cfg_entry *cfg_map_find(const cfg_map *m, const char *key);

/* Typed lookups, with the return convention of the SDK's qk_params_api so
 * the host can hand them to plugins unchanged: 1 and *out set when key is
 * present with a compatible type; 0 (out untouched, so callers keep their
 * default) when m is NULL or key is absent; QK_EINVAL with "FILE:LINE:COL:
 * PATH.KEY: expected an integer, got string 'x'" in err when the type is
 * wrong.  get_float also accepts an integer.  get_str's *out is borrowed
 * from the config. */
int cfg_map_get_int(const cfg_map *m, const char *key, int64_t *out, qk_err *err);
int cfg_map_get_float(const cfg_map *m, const char *key, double *out, qk_err *err);
int cfg_map_get_bool(const cfg_map *m, const char *key, bool *out, qk_err *err);
int cfg_map_get_str(const cfg_map *m, const char *key, const char **out, qk_err *err);
/* Like the above for a nested mapping (*out borrowed); a null value counts
 * as absent. */
int cfg_map_get_map(const cfg_map *m, const char *key, const cfg_map **out, qk_err *err);

/* Rejects the first key of m (in file order) that is not in `allowed` (a
 * NULL-terminated array; NULL means no key is allowed): returns QK_EINVAL
 * with "FILE:LINE:COL: unknown key `percentil` in WHAT; did you mean
 * `percentile`?" (the suggestion when a known key is close enough, else the
 * list of known keys).  WHAT names the map for the user, e.g.
 * "observer_args of observer `percentile`"; NULL uses m->path.  Returns 0 when
 * every key is allowed or m is NULL. */
int cfg_map_check_keys(const cfg_map *m, const char *const *allowed, const char *what,
                       qk_err *err);

/* Formats an error about key of m (or about m itself when key is NULL or
 * absent) located where it was written: "FILE:LINE:COL: PATH.KEY: message".
 * For plugins checking ranges: cfg_map_fail(args, "percentile", err,
 * QK_EINVAL, "%g is outside 0..100", p).  Returns code. */
int cfg_map_fail(const cfg_map *m, const char *key, qk_err *err, int code, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

/* ------------------------------------------------------------------------ */
/* The configuration                                                        */
/* ------------------------------------------------------------------------ */

/* Where a setting was written: 1-based line and column of its key; 0/0 when
 * the setting did not come from the file. */
typedef struct cfg_mark {
    int line, column;
} cfg_mark;

/* Optional fields: `set` says whether the YAML gave the field; `at` is where. */
typedef struct cfg_opt_str { bool set; cfg_mark at; char *value; } cfg_opt_str;
typedef struct cfg_opt_int { bool set; cfg_mark at; int value; } cfg_opt_int;
typedef struct cfg_opt_bool { bool set; cfg_mark at; bool value; } cfg_opt_bool;
/* value is always a valid (possibly empty) map, also when !set. */
typedef struct cfg_opt_map { bool set; cfg_mark at; cfg_map value; } cfg_opt_map;

/* The settings of one tensor kind (activation or weight) in one rule.
 * bits is in 2..16; the names are not checked against plugins here. */
typedef struct qk_tensor_rule {
    cfg_opt_str observer;
    cfg_opt_map observer_args;
    cfg_opt_str quantizer;
    cfg_opt_map quantizer_args;
    cfg_opt_int bits;
    cfg_opt_bool symmetric;
    cfg_opt_bool per_channel;    /* activations: allowed here, backends may refuse */
} qk_tensor_rule;

/* One rule: the global `quantize`, an `op_types` entry or a `nodes` entry. */
typedef struct qk_rule {
    char *label;                 /* "global", "op_types.Conv", "nodes./fc/Gemm" */
    char *name;                  /* the op type or node name; NULL for global */
    cfg_mark at;                 /* where the rule's key is */
    qk_tensor_rule activation;
    qk_tensor_rule weight;
    cfg_opt_bool skip;
} qk_rule;

typedef struct qk_config {
    char *path;                  /* file name used in messages */
    int version;                 /* always QK_CONFIG_VERSION once loaded */
    cfg_opt_str backend;         /* value "onnx-qdq" when not set */
    cfg_opt_map backend_options; /* empty map when not set; the backend
                                  * validates the keys */
    bool fusions_set;            /* false: use the backend's default list;
                                  * `fusions:` with no value is an error
                                  * (write `[]` for none) */
    cfg_mark fusions_at;
    size_t n_fusions;            /* fusions_set with 0: no fusions at all */
    char **fusions;
    struct {
        cfg_opt_int batch_size;  /* >= 1, value 16 when not set */
        cfg_opt_int batch_num;   /* >= 1; when not set value is 0: all data */
    } calibration;
    qk_rule quantize;            /* label "global"; all fields unset when absent */
    size_t n_op_types;
    qk_rule *op_types;           /* file order; names unique */
    size_t n_nodes;
    qk_rule *nodes;              /* file order; names unique */
    size_t n_plugin_path;
    char **plugin_path;          /* relative entries resolved against the
                                  * config file's folder (config_load only) */
} qk_config;

/* Reads and validates the YAML file at path.  On success returns 0 and stores
 * a new config in *out (free with config_free).  On failure returns QK_EIO
 * (cannot read), QK_EINVAL (syntax, schema, types, ranges; message
 * "PATH:LINE:COL: ...") or QK_ENOMEM, and leaves *out NULL.  Relative
 * plugin_path entries become paths under the file's folder (made absolute
 * when the folder is relative, so a later chdir does not change them). */
int config_load(const char *path, qk_config **out, qk_err *err);

/* Like config_load for text already in memory (NUL-terminated).
 * name_for_errors prefixes messages (NULL: "<string>").  Relative
 * plugin_path entries are kept as written (relative to the working
 * directory of whoever uses them). */
int config_parse_string(const char *text, const char *name_for_errors, qk_config **out,
                        qk_err *err);

/* Frees c and everything it owns; NULL is a no-op. */
void config_free(qk_config *c);

/* The op_types / nodes rule with exactly this name, or NULL (also for NULL
 * c or name).  Borrowed. */
const qk_rule *config_find_op_type(const qk_config *c, const char *op_type);
const qk_rule *config_find_node(const qk_config *c, const char *node_name);

/* ------------------------------------------------------------------------ */
/* Resolution                                                               */
/* ------------------------------------------------------------------------ */

/* Which rule decided a resolved field.  rule is "default" (file NULL, line 0)
 * or a qk_rule label ("global", "op_types.Conv", "nodes./fc/Gemm"). */
typedef struct cfg_source {
    const char *rule;
    const char *file;
    int line, column;
} cfg_source;

typedef struct qk_resolved_tensor {
    const char *observer;          /* never NULL */
    const cfg_map *observer_args;  /* never NULL; may be empty */
    const char *quantizer;         /* NULL for activations unless a rule sets it */
    const cfg_map *quantizer_args; /* never NULL; may be empty */
    int bits;
    bool symmetric;
    bool per_channel;
    cfg_source observer_from, observer_args_from, quantizer_from, quantizer_args_from,
        bits_from, symmetric_from, per_channel_from;
} qk_resolved_tensor;

typedef struct qk_resolved_rule {
    bool skip;
    cfg_source skip_from;
    qk_resolved_tensor activation;
    qk_resolved_tensor weight;
} qk_resolved_rule;

/* Computes the effective rule of a node: defaults, then `quantize`, then
 * op_types[op_type], then nodes[node_name], each field taken from the last
 * rule that sets it.  Defaults: activation {observer minmax, bits 8,
 * symmetric false, per_channel false, no quantizer}, weight {quantizer round,
 * observer minmax, bits 8, symmetric true, per_channel true}, skip false.
 *
 * Arguments follow their plugin: a rule that names a different observer
 * (quantizer) than the one inherited drops the inherited observer_args
 * (quantizer_args) unless it gives its own, because another plugin's
 * arguments would only be rejected as unknown keys.
 *
 * c, op_type and node_name may be NULL (that level is skipped).  Never
 * fails; the strings and maps written to *out are borrowed from c (or static)
 * and valid until config_free(c). */
void config_resolve(const qk_config *c, const char *op_type, const char *node_name,
                    qk_resolved_rule *out);

/* Writes "op_types.Conv (cfg.yaml:12:11)" or "default" into buf (always
 * NUL-terminated when n > 0) and returns buf. */
const char *cfg_source_str(const cfg_source *s, char *buf, size_t n);

/* Testing hook for fault tests: the n-th allocation config.c makes from now
 * on fails (n >= 1), and every later one too until reset with 0.  libyaml's
 * own allocations are not affected.  Not thread-safe; tests only. */
void config_fail_alloc_after(long n);

#endif
