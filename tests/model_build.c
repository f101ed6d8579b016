/* This file implements the test models' builder (see model_build.h).  The
 * ModelProto is built from the generated protobuf-c structs, packed, and
 * written to a temporary file that onnx_load reads back: the same path as
 * a real model, down to shape inference. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "model_build.h"
#include "onnx.pb-c.h"
#include "onnx_io.h"

#define MB_MAX 64

struct model_build {
    void *owned[16 * MB_MAX];   /* everything calloc'd here, freed at load */
    int n_owned;
    Onnx__NodeProto *node[MB_MAX];
    Onnx__TensorProto *init[MB_MAX];
    Onnx__ValueInfoProto *in[MB_MAX], *out[MB_MAX];
    int n_node, n_init, n_in, n_out;
};

static void *own(model_build *m, void *p)
{
    ck_assert_ptr_nonnull(p);
    ck_assert_int_lt(m->n_owned, 16 * MB_MAX);
    m->owned[m->n_owned++] = p;
    return p;
}

static void *zalloc(model_build *m, size_t n) { return own(m, calloc(1, n ? n : 1)); }
static char *sdup(model_build *m, const char *s) { return own(m, strdup(s)); }

model_build *mb_new(void)
{
    model_build *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    return m;
}

static Onnx__ValueInfoProto *value_info(model_build *m, const char *name, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = zalloc(m, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = sdup(m, name);
    Onnx__TypeProto *tp = zalloc(m, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = zalloc(m, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (rank >= 0) {
        Onnx__TensorShapeProto *sh = zalloc(m, sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)rank;
        sh->dim = zalloc(m, sizeof *sh->dim * (size_t)rank);
        for (int i = 0; i < rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = zalloc(m, sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = sdup(m, "N");
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

void mb_input(model_build *m, const char *name, int rank, const int64_t *dims)
{
    ck_assert_int_lt(m->n_in, MB_MAX);
    m->in[m->n_in++] = value_info(m, name, rank, dims);
}

void mb_output(model_build *m, const char *name)
{
    ck_assert_int_lt(m->n_out, MB_MAX);
    m->out[m->n_out++] = value_info(m, name, -1, NULL);
}

void mb_init(model_build *m, const char *name, int rank, const int64_t *dims, const float *data)
{
    ck_assert_int_lt(m->n_init, MB_MAX);
    Onnx__TensorProto *t = zalloc(m, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = sdup(m, name);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = (size_t)rank;
    t->dims = zalloc(m, sizeof(int64_t) * (size_t)rank);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        t->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    t->n_float_data = n;
    t->float_data = zalloc(m, sizeof(float) * n);
    memcpy(t->float_data, data, sizeof(float) * n);
    m->init[m->n_init++] = t;
}

void mb_node(model_build *m, const char *op, int n_in, const char *const *in, int n_out, const char *const *out)
{
    ck_assert_int_lt(m->n_node, MB_MAX);
    Onnx__NodeProto *n = zalloc(m, sizeof *n);
    onnx__node_proto__init(n);
    char name[32];
    snprintf(name, sizeof name, "n%d", m->n_node);
    n->name = sdup(m, name);
    n->op_type = sdup(m, op);
    n->n_input = (size_t)n_in;
    n->input = zalloc(m, sizeof(char *) * (size_t)n_in);
    for (int i = 0; i < n_in; i++) n->input[i] = sdup(m, in[i]);
    n->n_output = (size_t)n_out;
    n->output = zalloc(m, sizeof(char *) * (size_t)n_out);
    for (int i = 0; i < n_out; i++) n->output[i] = sdup(m, out[i]);
    n->attribute = zalloc(m, sizeof(Onnx__AttributeProto *) * 8);
    m->node[m->n_node++] = n;
}

static Onnx__AttributeProto *new_attr(model_build *m, const char *name)
{
    ck_assert_int_gt(m->n_node, 0);
    Onnx__NodeProto *n = m->node[m->n_node - 1];
    ck_assert_int_lt(n->n_attribute, 8);
    Onnx__AttributeProto *a = zalloc(m, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = sdup(m, name);
    a->has_type = 1;
    n->attribute[n->n_attribute++] = a;
    return a;
}

void mb_attr_int(model_build *m, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(m, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

void mb_attr_ints(model_build *m, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = new_attr(m, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)n;
    a->ints = zalloc(m, sizeof(int64_t) * (size_t)n);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}

void mb_conv(model_build *m, const char *in, const char *out, const char *name, int64_t mo, int64_t c, int64_t k,
             int64_t stride, int64_t group, const float *w, const float *b)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s_w", name);
    snprintf(bn, sizeof bn, "%s_b", name);
    int64_t wd[4] = {mo, c / group, k, k}, bd[1] = {mo};
    mb_init(m, wn, 4, wd, w);
    mb_init(m, bn, 1, bd, b);
    const char *ins[] = {in, wn, bn}, *outs[] = {out};
    mb_node(m, "Conv", 3, ins, 1, outs);
    int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
    mb_attr_ints(m, "kernel_shape", 2, ks);
    mb_attr_ints(m, "strides", 2, st);
    mb_attr_ints(m, "pads", 4, pads);
    if (group != 1) mb_attr_int(m, "group", group);
}

ir_graph *mb_load(model_build *m)
{
    Onnx__GraphProto gp;
    onnx__graph_proto__init(&gp);
    gp.name = "test";
    gp.n_node = (size_t)m->n_node;
    gp.node = m->node;
    gp.n_initializer = (size_t)m->n_init;
    gp.initializer = m->init;
    gp.n_input = (size_t)m->n_in;
    gp.input = m->in;
    gp.n_output = (size_t)m->n_out;
    gp.output = m->out;
    Onnx__OperatorSetIdProto ops;
    onnx__operator_set_id_proto__init(&ops);
    ops.domain = "";
    ops.has_version = 1;
    ops.version = 13;
    Onnx__OperatorSetIdProto *opsp = &ops;
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    mp.has_ir_version = 1;
    mp.ir_version = 7;
    mp.n_opset_import = 1;
    mp.opset_import = &opsp;
    mp.graph = &gp;
    size_t len = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    onnx__model_proto__pack(&mp, buf);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m);
    char path[] = "/tmp/qk_test_model_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
    qk_err err = {0};
    ir_graph *g = NULL;
    int rc = onnx_load(path, &g, &err);
    unlink(path);
    ck_assert_msg(rc == QK_OK, "%s", err.msg);
    return g;
}
