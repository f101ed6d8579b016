/* This file implements numpy-style shape broadcasting shared by the
 * elementwise kernels, Expand and Where. */
#include "op.h"

int xt_broadcast_shape(const xt *a, const xt *b, xt *out)
{
    if (a->rank < 0 || b->rank < 0) return QK_UNKNOWN;
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        int64_t d;
        if (da == db) d = da;
        else if (da == 1) d = db;
        else if (db == 1) d = da;
        else if (da < 0 || db < 0) d = -1;   /* symbolic: decided at run time */
        else return QK_EINVAL;
        out->dims[i] = d;
    }
    out->rank = r;
    return QK_OK;
}
