/* This file implements the op table: the lookup of a kernel row by ONNX op
 * type, over the fragments listed in ops/ops.h. */
#include <string.h>
#include <stdlib.h>
#include <pthread.h>
#include "ops/ops.h"

static const struct { const op_def *rows; const int *count; } groups[] = {
#define X(g) {ops_##g, &ops_##g##_count},
    OP_GROUPS(X)
#undef X
};

static op_def *flat;
static int n_flat;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const op_def *)a)->name, ((const op_def *)b)->name);
}

/* Flattened and sorted once so lookups are a binary search; the fragments
 * themselves stay in whatever order reads best in their files. */
static void build(void)
{
    int n = 0;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) n += *groups[i].count;
    flat = calloc((size_t)n + 1, sizeof *flat);
    if (!flat) return;
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        for (int j = 0; j < *groups[i].count; j++) flat[n_flat++] = groups[i].rows[j];
    qsort(flat, (size_t)n_flat, sizeof *flat, cmp_name);
}

const op_def *op_table(int *n)
{
    pthread_once(&once, build);
    *n = n_flat;
    return flat;
}

const op_def *op_lookup(const char *op_type)
{
    int n;
    const op_def *t = op_table(&n);
    op_def key = {op_type, NULL, NULL};
    return t ? bsearch(&key, t, (size_t)n, sizeof *t, cmp_name) : NULL;
}
