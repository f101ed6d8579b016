/* This file implements the small helpers several kernel files share:
 * optional inputs, integer-list inputs (shapes, axes, pads) and axis
 * normalization. */
#include "ops.h"

int op_has_input(const op_ctx *c, int i) { return i < c->n_in && c->in[i] != NULL; }

int dtype_is_int(int dt)
{
    switch (dt) {
    case DT_INT8: case DT_INT16: case DT_INT32: case DT_INT64:
    case DT_UINT8: case DT_UINT16: case DT_UINT32: case DT_UINT64:
        return 1;
    default:
        return 0;
    }
}

int axis_normalize(int64_t a, int rank)
{
    if (a < 0) a += rank;
    return a < 0 || a >= rank ? -1 : (int)a;
}

int op_read_int_list(op_ctx *c, const xt *t, const char *what, int64_t *v, int max, int *n)
{
    /* An upstream value whose type is not inferred yet. */
    if (t->dtype == DT_UNDEFINED) return QK_UNKNOWN;
    if (!dtype_is_int(t->dtype))
        return op_fail(c, QK_EINVAL, "%s must be an integer tensor, got %s", what, dtype_name(t->dtype));
    if (t->rank > 1)
        return op_fail(c, QK_EINVAL, "%s must be 1-D, got rank %d", what, t->rank);
    if (!t->data || t->rank < 0) return QK_UNKNOWN;
    int64_t cnt = xt_numel(t);
    if (cnt < 0) return QK_UNKNOWN;
    if (cnt > max)
        return op_fail(c, QK_ENOTSUP, "%s has %lld values; at most %d are supported", what, (long long)cnt, max);
    for (int64_t i = 0; i < cnt; i++) v[i] = xt_get_i64(t, i);
    *n = (int)cnt;
    return QK_OK;
}

int op_attr_ints_exact(op_ctx *c, const char *name, int want, int64_t def, int64_t *v)
{
    const int64_t *a;
    int n = node_attr_ints(c->node, name, &a);
    if (n < 0) {
        for (int i = 0; i < want; i++) v[i] = def;
        return QK_OK;
    }
    if (n != want)
        return op_fail(c, QK_EINVAL, "attribute '%s' has %d values, expected %d", name, n, want);
    for (int i = 0; i < n; i++) v[i] = a[i];
    return QK_OK;
}
