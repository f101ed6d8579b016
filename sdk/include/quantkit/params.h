/* This file implements the plugin view of its arguments: the typed
 * key/value map written in the YAML under observer_args, quantizer_args,
 * backend_options or a fusion's args.  The host parses the YAML; a plugin
 * reads values and rejects keys it does not know with check_keys, which
 * names the file, line and column and suggests the closest known key. */
#ifndef QUANTKIT_PARAMS_H
#define QUANTKIT_PARAMS_H
#include <stddef.h>
#include <stdint.h>

/* Borrowed from the host for the duration of the call it is passed to. */
typedef struct qk_params qk_params;

typedef struct qk_params_api {
    size_t size;
    /* Each getter returns 1 and stores the value when `key` is present with
     * a compatible type (an integer is a valid float), 0 when it is absent,
     * and a negative status (after reporting file:line:col) when present
     * with the wrong type. */
    int (*get_int)(const qk_params *p, const char *key, int64_t *out);
    int (*get_float)(const qk_params *p, const char *key, double *out);
    int (*get_bool)(const qk_params *p, const char *key, int *out);
    /* *out is borrowed, valid as long as p. */
    int (*get_str)(const qk_params *p, const char *key, const char **out);
    /* Rejects any key not in the NULL-terminated `allowed` list with one
     * reported line ("FILE:L:C: unknown key `bnis` in observer_args of
     * percentile; did you mean `bins`?").  `what` names the map. */
    int (*check_keys)(const qk_params *p, const char *const *allowed, const char *what);
} qk_params_api;

#endif
