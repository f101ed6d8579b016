/* This file implements the quantization report: what `quantize` decided
 * for every quantized tensor (rule, observer, range, scale, zero point) and
 * how much signal survived (SQNR against the float model on calibration
 * data), written as JSON (--report) and as a self-contained HTML page with
 * an inline SVG chart of per-layer SQNR (--html). */
#ifndef QK_CORE_REPORT_H
#define QK_CORE_REPORT_H
#include <stdint.h>
#include "status.h"

typedef struct report_tensor {
    char *name;           /* graph value */
    char *node, *op_type; /* the quantized node whose rule decided it */
    const char *role;     /* "activation", "weight" or "bias" (static string) */
    char *rule;           /* where the deciding rule came from: "op_types.Conv (cfg.yaml:12:11)", "default" */
    char *observer;       /* NULL for a bias */
    char *quantizer;      /* NULL for activations and biases */
    char *shares_with;    /* tensor whose parameters it shares (Concat, MaxPool...), or NULL */
    int bits;
    int symmetric;
    int axis;             /* -1: per tensor */
    int64_t channels;     /* entries in lo/hi/scale/zero_point */
    float *lo, *hi;       /* observed clipping range; NULL for a bias or a record */
    float *scale;
    int32_t *zero_point;
    int32_t qmin, qmax;
    double sqnr_db;       /* NAN when not measured */
} report_tensor;

typedef struct report_output {
    char *name;
    double sqnr_db;       /* quantized model's output vs the float model's */
} report_output;

typedef struct quant_report {
    char *model, *output, *config, *backend;  /* paths and the backend's name */
    char *record_from;    /* --from-record file, or NULL when calibrated */
    int fusions;          /* rewrites made by the fusion plugins */
    int64_t calib_images; /* samples run through calibration */
    int calib_batches;
    double calib_seconds; /* wall time of calibration alone */
    double total_seconds; /* wall time of the whole command */
    int n_tensors;
    report_tensor *tensors;   /* in plan order (graph order) */
    int n_outputs;
    report_output *outputs;
} quant_report;

/* Writes the report atomically; errors name the file.  JSON has no
 * infinities: an SQNR of NaN (not measured) is written null, +Inf (no
 * noise) 999.0 and -Inf -999.0. */
int report_write_json(const quant_report *r, const char *path, qk_err *err);
int report_write_html(const quant_report *r, const char *path, qk_err *err);
/* Frees everything the report owns (every pointer above is malloc'd or
 * NULL, except `role`), then the struct itself; NULL is a no-op. */
void report_free(quant_report *r);

#endif
