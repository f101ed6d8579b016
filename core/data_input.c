/* This file implements the CLI's DATA arguments (see data_input.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data_input.h"
#include "npy.h"
#include "onnx_io.h"

/* Frees a tensor that was not bound: mapped data is unmapped, read data freed. */
static void drop(xt *t, npy_mapping *m)
{
    if (m && m->base) npy_unmap(m);
    else free(t->data);
    t->data = NULL;
}

static int bind(const ir_graph *g, data_set *ds, const char *name, int pos, xt *t, npy_mapping *m, const char *arg,
                qk_err *err)
{
    int slot = -1;
    if (name) {
        for (int i = 0; i < g->n_inputs; i++)
            if (!strcmp(g->values[g->inputs[i]].name, name)) slot = i;
        if (slot < 0) {
            char list[256] = "";
            for (int i = 0; i < g->n_inputs; i++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s'%s'", i ? ", " : "", g->values[g->inputs[i]].name);
            }
            drop(t, m);
            return qk_fail(err, QK_EINVAL, "%s: the model has no input named '%s' (inputs: %s)", arg, name, list);
        }
    } else {
        slot = pos;
        if (slot >= g->n_inputs) {
            drop(t, m);
            return qk_fail(err, QK_EINVAL, "%s: more data arrays than the model's %d input(s)", arg, g->n_inputs);
        }
    }
    if (ds->tensors[slot].data) {
        drop(t, m);
        return qk_fail(err, QK_EINVAL, "%s: input '%s' is given twice", arg, g->values[g->inputs[slot]].name);
    }
    ds->tensors[slot] = *t;
    if (m) ds->maps[slot] = *m;
    return QK_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_folder(const ir_graph *g, const char *dir, data_set *ds, int *pos, qk_err *err)
{
    DIR *d = opendir(dir);
    if (!d) return qk_fail(err, QK_EIO, "%s: cannot open folder", dir);
    char **names = NULL;
    int n = 0, rc = QK_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 3, ".pb") || !strncmp(de->d_name, "output_", 7)) continue;
        char **nn = realloc(names, (size_t)(n + 1) * sizeof *nn);
        if (!nn) { rc = QK_ENOMEM; break; }
        names = nn;
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n == 0 && rc == QK_OK) rc = qk_fail(err, QK_EINVAL, "%s: folder holds no .pb input tensors", dir);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n && rc == QK_OK; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        xt t;
        char *tname = NULL;
        rc = onnx_read_tensor_file(path, &t, &tname, err);
        if (rc) break;
        /* Name binding only when the tensor's name is one of the inputs. */
        int named = 0;
        for (int k = 0; tname && k < g->n_inputs; k++)
            if (!strcmp(g->values[g->inputs[k]].name, tname)) named = 1;
        rc = bind(g, ds, named ? tname : NULL, (*pos)++, &t, NULL, path, err);
        free(tname);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int data_set_load(const ir_graph *g, int n_args, char *const *args, data_set *ds, qk_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->n = g->n_inputs;
    ds->names = calloc((size_t)g->n_inputs + 1, sizeof *ds->names);
    ds->tensors = calloc((size_t)g->n_inputs + 1, sizeof *ds->tensors);
    ds->maps = calloc((size_t)g->n_inputs + 1, sizeof *ds->maps);
    if (!ds->names || !ds->tensors || !ds->maps) {
        data_set_free(ds);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_inputs; i++) ds->names[i] = strdup(g->values[g->inputs[i]].name);
    int pos = 0, rc = QK_OK;
    for (int a = 0; a < n_args && rc == QK_OK; a++) {
        const char *arg = args[a];
        const char *eq = strchr(arg, '=');
        struct stat st;
        if (!eq && stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = load_folder(g, arg, ds, &pos, err);
            continue;
        }
        char *name = eq ? strndup(arg, (size_t)(eq - arg)) : NULL;
        const char *file = eq ? eq + 1 : arg;
        xt t;
        npy_mapping m;
        rc = npy_map(file, &t, &m, err);
        if (rc == QK_OK) rc = bind(g, ds, name, pos++, &t, &m, file, err);
        free(name);
    }
    for (int i = 0; i < g->n_inputs && rc == QK_OK; i++)
        if (!ds->tensors[i].data)
            rc = qk_fail(err, QK_EINVAL, "no data given for model input '%s'", ds->names[i]);
    int64_t s = -1;
    for (int i = 0; i < g->n_inputs && rc == QK_OK; i++) {
        const xt *t = &ds->tensors[i];
        if (t->rank < 1) {
            rc = qk_fail(err, QK_EINVAL, "data for input '%s' is a scalar; the first axis must be samples", ds->names[i]);
        } else if (s >= 0 && t->dims[0] != s) {
            rc = qk_fail(err, QK_EINVAL, "data for input '%s' has %lld samples, other inputs have %lld",
                         ds->names[i], (long long)t->dims[0], (long long)s);
        }
        s = t->rank >= 1 ? t->dims[0] : s;
    }
    if (rc) data_set_free(ds);
    return rc;
}

void data_set_free(data_set *ds)
{
    for (int i = 0; i < ds->n; i++) {
        if (ds->names) free(ds->names[i]);
        if (ds->tensors) drop(&ds->tensors[i], ds->maps ? &ds->maps[i] : NULL);
    }
    free(ds->names);
    free(ds->tensors);
    free(ds->maps);
    memset(ds, 0, sizeof *ds);
}

int64_t data_set_samples(const data_set *ds) { return ds->n > 0 ? ds->tensors[0].dims[0] : 0; }

xt data_set_slice(const data_set *ds, int i, int64_t start, int64_t count)
{
    xt t = ds->tensors[i];
    int64_t row = xt_nbytes(&t) / (t.dims[0] ? t.dims[0] : 1);
    t.data = (char *)t.data + start * row;
    t.dims[0] = count;
    return t;
}

void data_set_release(const data_set *ds, int64_t start, int64_t count)
{
    for (int i = 0; ds->maps && i < ds->n; i++) {
        xt t = data_set_slice(ds, i, start, count);
        npy_release(&ds->maps[i], t.data, (size_t)xt_nbytes(&t));
    }
}
