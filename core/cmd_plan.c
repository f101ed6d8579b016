/* This file implements `quantkit plan MODEL.onnx -c CONFIG.yaml [--json]`:
 * the resolved quantization plan, printed before anything is calibrated, so
 * an engineer can check which rule applies where (AMCT's per-layer config). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <quantkit/quantkit.h>
#include "cli.h"
#include "config.h"
#include "host.h"
#include "onnx_io.h"
#include "fusion_pass.h"
#include "backend_vt.h"
#include "plan.h"
#include "ptq.h"
#include "registry.h"

int cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"json", no_argument, 0, 'j'}, {0, 0, 0, 0}};
    const char *cfg_path = NULL;
    int json = 0, c, status = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:j", opts, NULL)) != -1) {
        if (c == 'c') cfg_path = optarg;
        else if (c == 'j') json = 1;
        else return cli_error("plan: bad option (see quantkit --help)");
    }
    if (optind != argc - 1 || !cfg_path)
        return cli_error("usage: quantkit plan MODEL.onnx -c CONFIG.yaml [--json]");
    qk_err err = {0};
    qk_config *cfg = NULL;
    ir_graph *g = NULL;
    registry *reg = NULL;
    quant_plan *plan = NULL;
    const qk_plugin_descriptor *backend;
    if (config_load(cfg_path, &cfg, &err) || onnx_load(argv[optind], &g, &err) ||
        registry_new((const char *const *)cfg->plugin_path, cfg->n_plugin_path, &reg, &err) ||
        registry_get(reg, QK_PLUGIN_BACKEND, cfg->backend.value, &backend, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    const qk_backend_vtable *bv = backend->vtable;
    if (ptq_check_backend_options(backend, g, cfg, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    int fused = 0;
    if (fusion_pass_run(reg, g, cfg, bv, &fused, &err) || plan_build(g, cfg, bv->quantized_ops, backend_shared_scale_ops(bv), &plan, &err) ||
        ptq_check_plugins(reg, plan, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    if (!json) printf("fusions: %d rewrites\n", fused);
    plan_print(plan, g, backend->name, json, stdout);
    status = 0;
done:
    plan_free(plan);
    registry_free(reg);
    ir_free(g);
    config_free(cfg);
    return status;
}
