/* This file implements the helpers of the runtime tensor (see tensor.h). */
#include <stdio.h>
#include <string.h>
#include "tensor.h"

int64_t xt_numel(const xt *t)
{
    if (t->rank < 0) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->dims[i] < 0) return -1;
        n *= t->dims[i];
    }
    return n;
}

int64_t xt_nbytes(const xt *t)
{
    int64_t n = xt_numel(t);
    return n < 0 ? -1 : n * (int64_t)dtype_size(t->dtype);
}

int xt_shape_known(const xt *t) { return xt_numel(t) >= 0; }

const char *xt_shape_str(const xt *t, char *buf, size_t len)
{
    if (t->rank < 0) {
        snprintf(buf, len, "[unknown rank]");
        return buf;
    }
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < t->rank && o < len; i++) {
        if (t->dims[i] < 0)
            o += (size_t)snprintf(buf + o, len - o, "%s?", i ? "," : "");
        else
            o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    }
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

void xt_strides(const xt *t, int64_t *strides)
{
    int64_t s = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= t->dims[i];
    }
}

int64_t xt_get_i64(const xt *t, int64_t i)
{
    switch (t->dtype) {
    case DT_INT64: return ((const int64_t *)t->data)[i];
    case DT_INT32: return ((const int32_t *)t->data)[i];
    case DT_INT16: return ((const int16_t *)t->data)[i];
    case DT_INT8: return ((const int8_t *)t->data)[i];
    case DT_UINT8: case DT_BOOL: return ((const uint8_t *)t->data)[i];
    case DT_UINT16: return ((const uint16_t *)t->data)[i];
    case DT_UINT32: return ((const uint32_t *)t->data)[i];
    case DT_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case DT_FLOAT: return (int64_t)((const float *)t->data)[i];
    case DT_DOUBLE: return (int64_t)((const double *)t->data)[i];
    default: return 0;
    }
}

double xt_get_f64(const xt *t, int64_t i)
{
    switch (t->dtype) {
    case DT_FLOAT: return ((const float *)t->data)[i];
    case DT_DOUBLE: return ((const double *)t->data)[i];
    case DT_UINT64: return (double)((const uint64_t *)t->data)[i];
    default: return (double)xt_get_i64(t, i);
    }
}

void xt_set_f64(xt *t, int64_t i, double v)
{
    switch (t->dtype) {
    case DT_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case DT_DOUBLE: ((double *)t->data)[i] = v; break;
    case DT_INT64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case DT_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case DT_INT16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case DT_INT8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case DT_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case DT_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
    case DT_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
    case DT_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
    case DT_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: break;
    }
}

void xt_set_i64(xt *t, int64_t i, int64_t v)
{
    switch (t->dtype) {
    case DT_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case DT_DOUBLE: ((double *)t->data)[i] = (double)v; break;
    case DT_INT64: ((int64_t *)t->data)[i] = v; break;
    case DT_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case DT_INT16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case DT_INT8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case DT_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case DT_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
    case DT_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
    case DT_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
    case DT_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    default: break;
    }
}
