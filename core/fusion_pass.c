/* This file implements the fusion stage (see fusion_pass.h). */
#include <stdio.h>
#include "fusion_pass.h"
#include "host.h"

static int run_one(registry *reg, ir_graph *g, const char *name, int *count, qk_err *err)
{
    const qk_plugin_descriptor *d;
    int rc = registry_get(reg, QK_PLUGIN_FUSION, name, &d, err);
    if (rc) return rc;
    const qk_fusion_vtable *vt = d->vtable;
    char who[160];
    snprintf(who, sizeof who, "fusion '%s'", d->name);
    host_ctx hc;
    host_ctx_init(&hc, who, g, err);
    qk_params *args = host_params_new(NULL, err);
    if (!args) return qk_fail(err, QK_ENOMEM, "out of memory");
    err->code = 0;
    rc = vt->apply(&hc.host, (qk_graph *)g, args, count);
    host_params_free(args);
    if (rc) return err->code ? rc : qk_fail(err, rc, "%s failed (status %d)", who, rc);
    /* A fusion may leave removed nodes and new ones out of order. */
    if ((rc = ir_compact(g, err)) || (rc = ir_check_ops(g, err)) || (rc = ir_infer(g, err))) {
        char msg[QK_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return qk_fail(err, rc, "after %s: %s", who, msg);
    }
    return QK_OK;
}

int fusion_pass_run(registry *reg, ir_graph *g, const qk_config *c, const qk_backend_vtable *backend, int *total,
                    qk_err *err)
{
    int sum = 0, rc = QK_OK;
    if (c->fusions_set) {
        for (size_t i = 0; i < c->n_fusions && rc == QK_OK; i++) {
            int n = 0;
            rc = run_one(reg, g, c->fusions[i], &n, err);
            sum += n;
        }
    } else {
        for (const char *const *f = backend->default_fusions; f && *f && rc == QK_OK; f++) {
            int n = 0;
            rc = run_one(reg, g, *f, &n, err);
            sum += n;
        }
    }
    if (total) *total = sum;
    return rc;
}
