/* This file implements a small builder of ONNX models for the unit tests:
 * a graph of a few nodes with float inputs and initializers, assembled as a
 * ModelProto and loaded through onnx_load like a model file, so a test can
 * reach a kernel path or an executor plan with exactly the shapes it needs
 * without a fixture file per case. */
#ifndef QK_TESTS_MODEL_BUILD_H
#define QK_TESTS_MODEL_BUILD_H
#include <stdint.h>
#include "ir.h"

typedef struct model_build model_build;

model_build *mb_new(void);
/* A float graph input; a negative dimension is symbolic ("N"). */
void mb_input(model_build *m, const char *name, int rank, const int64_t *dims);
/* A float initializer holding a copy of data. */
void mb_init(model_build *m, const char *name, int rank, const int64_t *dims, const float *data);
/* Appends a node; inputs and outputs are value names ("" for absent). */
void mb_node(model_build *m, const char *op, int n_in, const char *const *in, int n_out, const char *const *out);
/* Attributes of the last node added. */
void mb_attr_int(model_build *m, const char *name, int64_t v);
void mb_attr_ints(model_build *m, const char *name, int n, const int64_t *v);
void mb_output(model_build *m, const char *name);
/* A Conv node reading `in` into `out`, its weights w [mo, c / group, k, k]
 * and bias b [mo] copied into initializers "<name>_w" and "<name>_b";
 * square kernel k, `stride` on both axes, padded by k / 2 on every side. */
void mb_conv(model_build *m, const char *in, const char *out, const char *name, int64_t mo, int64_t c, int64_t k,
             int64_t stride, int64_t group, const float *w, const float *b);
/* Loads the model (opset 13) as onnx_load does and frees the builder;
 * NULL with a failed check on error. */
ir_graph *mb_load(model_build *m);

#endif
