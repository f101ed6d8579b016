/* This file implements `quantkit quantize`, post-training quantization end
 * to end (DESIGN.md, "Data flow"): load -> fusions -> plan -> calibration
 * (or a record file) -> weight quantization -> backend emits -> model,
 * record and report written. */
#ifndef QK_CORE_PTQ_H
#define QK_CORE_PTQ_H
#include "plan.h"
#include "registry.h"

typedef struct ptq_options {
    const char *model, *config, *output;
    int n_calib;
    char *const *calib;           /* DATA arguments (DESIGN.md) */
    const char *record_out;       /* --record */
    const char *record_in;        /* --from-record: skip calibration */
    const char *report_json;      /* --report */
    const char *report_html;      /* --html */
    int threads;                  /* <= 0: one per core */
    int quiet;                    /* no summary on stderr */
} ptq_options;

/* Runs the whole job.  Nothing is written unless every stage succeeded; each
 * file is written atomically.  Errors are one line in err. */
int ptq_run(const ptq_options *o, qk_err *err);

/* Lets the backend validate the YAML's backend_options (reject unknown
 * keys); errors name the backend. */
int ptq_check_backend_options(const qk_plugin_descriptor *backend, ir_graph *g, const qk_config *cfg, qk_err *err);

/* Loads every observer and quantizer the plan names, so an unknown name
 * fails before any work, with the list of what was found. */
int ptq_check_plugins(registry *reg, const quant_plan *p, qk_err *err);

#endif
