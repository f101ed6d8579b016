/* This file implements the plan a backend receives (host->plan,
 * sdk/include/quantkit/backend.h): the quantization plan's entries with
 * their final scales, zero points and integer codes. */
#ifndef QK_CORE_PLAN_API_H
#define QK_CORE_PLAN_API_H
#include <quantkit/backend.h>
#include "plan.h"

struct qk_plan {
    const ir_graph *g;
    const quant_plan *plan;
    int n;                 /* entries handed to the backend */
    int *entry;            /* their plan entry indices */
    qk_qparams *qp;        /* per plan entry (group members carry copies) */
    int32_t **codes;       /* per plan entry: weight or bias codes, else NULL */
};

const qk_plan_api *plan_api(void);

#endif
