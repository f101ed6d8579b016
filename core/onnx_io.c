/* This file implements ONNX model file I/O: reading a file into a
 * ModelProto with the protobuf-c generated code, writing it back atomically,
 * and single TensorProto files (ONNX test data, CLI inputs). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"
#include "onnx_io.h"
#include "ir_private.h"
#include "onnx.pb-c.h"

static int read_file(const char *path, uint8_t **buf, size_t *len, qk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qk_fail(err, QK_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qk_fail(err, QK_EIO, "%s: not a regular file", path);
    }
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    if (!*buf) {
        fclose(f);
        return qk_fail(err, QK_ENOMEM, "%s: out of memory reading %zu bytes", path, *len);
    }
    size_t got = fread(*buf, 1, *len, f);
    fclose(f);
    if (got != *len) {
        free(*buf);
        return qk_fail(err, QK_EIO, "%s: read %zu of %zu bytes", path, got, *len);
    }
    return QK_OK;
}

int onnx_load_raw(const char *path, ir_graph **out, qk_err *err)
{
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rc = read_file(path, &buf, &len, err);
    if (rc) return rc;
    if (len == 0) {
        free(buf);
        return qk_fail(err, QK_EINVAL, "%s: empty file, not an ONNX model", path);
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!m) return qk_fail(err, QK_EINVAL, "%s: not an ONNX model (protobuf parse failed: truncated or corrupt)", path);
    if (!m->graph || !m->has_ir_version) {
        onnx__model_proto__free_unpacked(m, NULL);
        return qk_fail(err, QK_EINVAL, "%s: not an ONNX model (no %s)", path, m ? "graph or ir_version" : "data");
    }
    char *tmp = strdup(path);
    if (!tmp) {
        onnx__model_proto__free_unpacked(m, NULL);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    rc = ir_from_model(m, dirname(tmp), out, err);
    free(tmp);
    if (rc) {
        char msg[QK_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return qk_fail(err, rc, "%s: %s", path, msg);
    }
    return QK_OK;
}

int onnx_load(const char *path, ir_graph **out, qk_err *err)
{
    int rc = onnx_load_raw(path, out, err);
    if (rc) return rc;
    if ((rc = ir_check_ops(*out, err)) || (rc = ir_infer(*out, err))) {
        char msg[QK_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        ir_free(*out);
        *out = NULL;
        return qk_fail(err, rc, "%s: %s", path, msg);
    }
    return QK_OK;
}

/* Writes buf to path atomically (atomic_file.h), so readers never see a
 * half-written model and a failure leaves nothing behind. */
static int write_atomic(const char *path, const uint8_t *buf, size_t len, qk_err *err)
{
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc) return rc;
    if (fwrite(buf, 1, len, af.f) != len) {
        rc = qk_fail(err, QK_EIO, "%s: write failed: %s", path, strerror(errno));
        atomic_abort(&af);
        return rc;
    }
    return atomic_commit(&af, err);
}

int onnx_save(ir_graph *g, const char *path, qk_err *err)
{
    Onnx__GraphProto *gp = g->model->graph;
    int rc = QK_OK;
    size_t nn = 0, ni = 0;
    Onnx__NodeProto **nodes = calloc((size_t)g->n_nodes + 1, sizeof *nodes);
    Onnx__TensorProto **inits = calloc((size_t)g->n_values + 1, sizeof *inits);
    char *fresh = calloc((size_t)g->n_values + 1, 1);   /* inits[i] made here */
    if (!nodes || !inits || !fresh) {
        rc = qk_fail(err, QK_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead) nodes[nn++] = g->nodes[i].proto;
    for (int v = 0; v < g->n_values; v++) {
        ir_value *val = &g->values[v];
        if (!val->is_initializer) continue;
        if (val->proto && !val->data_dirty) {
            inits[ni++] = val->proto;
        } else {
            if (!val->t.data) continue;
            inits[ni] = ir_encode_tensor(val->name, &val->t);
            if (!inits[ni]) {
                rc = qk_fail(err, QK_ENOMEM, "out of memory");
                goto done;
            }
            fresh[ni++] = 1;
        }
    }
    gp->node = nodes;
    gp->n_node = nn;
    gp->initializer = inits;
    gp->n_initializer = ni;
    size_t len = onnx__model_proto__get_packed_size(g->model);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        rc = qk_fail(err, QK_ENOMEM, "out of memory packing %zu bytes", len);
    } else {
        onnx__model_proto__pack(g->model, buf);
        rc = write_atomic(path, buf, len, err);
        free(buf);
    }
    /* The IR keeps owning nodes and initializers: detach them again. */
    gp->node = NULL;
    gp->n_node = 0;
    gp->initializer = NULL;
    gp->n_initializer = 0;
done:
    for (size_t i = 0; i < ni; i++)
        if (fresh[i]) onnx__tensor_proto__free_unpacked(inits[i], NULL);
    free(nodes);
    free(inits);
    free(fresh);
    return rc;
}

int onnx_read_tensor_file(const char *path, xt *t, char **name, qk_err *err)
{
    uint8_t *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, err);
    if (rc) return rc;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp) return qk_fail(err, QK_EINVAL, "%s: not an ONNX TensorProto file (parse failed)", path);
    char *tmp = strdup(path);
    rc = tmp ? ir_decode_tensor(tp, dirname(tmp), t, err) : QK_ENOMEM;
    free(tmp);
    if (rc) {
        char msg[QK_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        qk_fail(err, rc, "%s: %s", path, msg);
    } else if (name) {
        *name = tp->name && *tp->name ? strdup(tp->name) : NULL;
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return rc;
}
