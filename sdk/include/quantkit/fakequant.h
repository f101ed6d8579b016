/* This file implements the quantizer ("fakequant") plugin interface: turn a
 * float weight into integer codes given scale and zero point.  Round to
 * nearest even is the baseline; AdaRound-like quantizers may choose codes
 * differently (they may use calibration data in later ABI minors). */
#ifndef QUANTKIT_FAKEQUANT_H
#define QUANTKIT_FAKEQUANT_H
#include <stddef.h>
#include <stdint.h>
#include "host.h"
#include "quant.h"

typedef struct qk_fakequant_vtable {
    size_t size;
    /* Creates the state for one tensor from quantizer_args (validated). */
    int (*create)(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state);
    /* Writes numel(w) integer codes into q, each in [qp->qmin, qp->qmax],
     * using qp's per-channel scale/zero point along qp->axis. */
    int (*quantize)(void *state, const qk_tensor *w, const qk_qparams *qp, int32_t *q);
    void (*destroy)(void *state);
} qk_fakequant_vtable;

#endif
