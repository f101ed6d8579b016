/* This file implements the record file (AMCT's "record"): every quantized
 * tensor's scale and zero point in a YAML file, written by
 * `quantize --record` and read by `quantize --from-record`, which then
 * skips calibration and reproduces the same model. */
#ifndef QK_CORE_RECORD_H
#define QK_CORE_RECORD_H
#include <stdint.h>
#include <quantkit/quant.h>
#include "plan.h"

typedef struct record_entry {
    char *name;
    char *role;            /* "activation" or "weight" */
    int bits;
    int line, column;      /* where the entry is, for messages */
    qk_qparams qp;         /* owned arrays */
} record_entry;

typedef struct record {
    char *path;
    int n;
    record_entry *entries;
} record;

/* Writes the plan's activation and weight entries (biases follow from
 * them) with their qparams (indexed by plan entry), atomically. */
int record_write(const char *path, const char *model, const ir_graph *g, const quant_plan *p, const qk_qparams *qp,
                 qk_err *err);
/* Reads a record; errors name the file, line and column. */
int record_load(const char *path, record **out, qk_err *err);
const record_entry *record_find(const record *r, const char *name);
void record_free(record *r);   /* NULL is a no-op */

#endif
