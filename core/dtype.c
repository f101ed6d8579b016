/* This file implements the element-type table (see dtype.h). */
#include "dtype.h"

static const struct { int dt; size_t size; const char *name; } table[] = {
    {DT_FLOAT, 4, "float"},   {DT_UINT8, 1, "uint8"},   {DT_INT8, 1, "int8"},
    {DT_UINT16, 2, "uint16"}, {DT_INT16, 2, "int16"},   {DT_INT32, 4, "int32"},
    {DT_INT64, 8, "int64"},   {DT_BOOL, 1, "bool"},     {DT_DOUBLE, 8, "double"},
    {DT_UINT32, 4, "uint32"}, {DT_UINT64, 8, "uint64"},
};

size_t dtype_size(int dt)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].dt == dt) return table[i].size;
    return 0;
}

int dtype_supported(int dt) { return dtype_size(dt) != 0; }

const char *dtype_name(int dt)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].dt == dt) return table[i].name;
    switch (dt) {
    case DT_STRING: return "string";
    case DT_FLOAT16: return "float16";
    case 16: return "bfloat16";
    case 14: return "complex64";
    case 15: return "complex128";
    case DT_NON_TENSOR: return "non-tensor (sequence/map/optional)";
    default: return "unknown-type";
    }
}
