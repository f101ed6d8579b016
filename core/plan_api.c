/* This file implements host->plan over a finished quantization (see
 * plan_api.h).  Out-of-range indices read as absent rather than crash: the
 * table is called from plugins. */
#include "plan_api.h"

static int ok(const qk_plan *p, int i) { return p && i >= 0 && i < p->n; }
static int pa_count(const qk_plan *p) { return p ? p->n : 0; }
static int pa_value(const qk_plan *p, int i) { return ok(p, i) ? p->plan->entries[p->entry[i]].value : -1; }
static int pa_role(const qk_plan *p, int i) { return ok(p, i) ? (int)p->plan->entries[p->entry[i]].role : -1; }
static int pa_is_weight(const qk_plan *p, int i) { return pa_role(p, i) == PLAN_WEIGHT; }
static const qk_qparams *pa_qparams(const qk_plan *p, int i) { return ok(p, i) ? &p->qp[p->entry[i]] : NULL; }
static const int32_t *pa_codes(const qk_plan *p, int i) { return ok(p, i) ? p->codes[p->entry[i]] : NULL; }

static int pa_bits(const qk_plan *p, int i)
{
    if (!ok(p, i)) return 0;
    const plan_entry *e = &p->plan->entries[p->entry[i]];
    return e->role == PLAN_BIAS ? 32 : e->rule->bits;
}

static const qk_plan_api api = {
    sizeof api, pa_count, pa_value, pa_is_weight, pa_qparams, pa_codes, pa_role, pa_bits,
};

const qk_plan_api *plan_api(void) { return &api; }
