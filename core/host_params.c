/* This file implements host->params, the plugin view of its YAML arguments:
 * a qk_params handle is a config map plus the error slot of the call, so a
 * type error is reported at the file position where the value was written. */
#include <stdbool.h>
#include <stdlib.h>
#include <quantkit/params.h>
#include "config.h"
#include "host.h"

struct qk_params {
    const cfg_map *map;   /* NULL: no arguments given */
    qk_err *err;
};

static int p_int(const qk_params *p, const char *key, int64_t *out) { return cfg_map_get_int(p->map, key, out, p->err); }
static int p_float(const qk_params *p, const char *key, double *out) { return cfg_map_get_float(p->map, key, out, p->err); }
static int p_str(const qk_params *p, const char *key, const char **out) { return cfg_map_get_str(p->map, key, out, p->err); }

static int p_bool(const qk_params *p, const char *key, int *out)
{
    bool b;
    int rc = cfg_map_get_bool(p->map, key, &b, p->err);
    if (rc == 1) *out = b;
    return rc;
}

static int p_check(const qk_params *p, const char *const *allowed, const char *what)
{
    return cfg_map_check_keys(p->map, allowed, what, p->err);
}

static const qk_params_api params_api = {sizeof params_api, p_int, p_float, p_bool, p_str, p_check};

const qk_params_api *host_params_api(void) { return &params_api; }

qk_params *host_params_new(const cfg_map *map, qk_err *err)
{
    qk_params *p = malloc(sizeof *p);
    if (p) {
        p->map = map;
        p->err = err;
    }
    return p;
}

void host_params_free(qk_params *p) { free(p); }
