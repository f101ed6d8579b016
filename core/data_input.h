/* This file implements the CLI's DATA arguments (see DESIGN.md):
 *   FILE.npy          float32 (or any numeric) array, first axis = samples,
 *                     bound to the model's first (or only) input;
 *   NAME=FILE.npy     the same for the named input;
 *   FOLDER            ONNX TensorProto files input_0.pb, input_1.pb, ... (or any
 *                     *.pb in name order), bound by their `name` field when set,
 *                     else by position. */
#ifndef QK_CORE_DATA_INPUT_H
#define QK_CORE_DATA_INPUT_H
#include "tensor.h"
#include "status.h"
#include "ir.h"
#include "npy.h"

typedef struct data_set {
    int n;            /* number of bound inputs */
    char **names;     /* model input names, owned */
    xt *tensors;      /* full arrays, data owned (mapped for .npy files) */
    struct npy_mapping *maps;  /* per input: the file mapping, base NULL when read */
} data_set;

/* Parses `n_args` DATA arguments and binds them to g's real inputs.  Errors
 * name the argument and the input (unknown input name, unreadable file, more
 * arrays than inputs). */
int data_set_load(const ir_graph *g, int n_args, char *const *args, data_set *ds, qk_err *err);
void data_set_free(data_set *ds);
/* Number of samples: the first axis of the first tensor (all must agree). */
int64_t data_set_samples(const data_set *ds);
/* A view of samples [start, start+count) of tensor i (no copy: data points
 * into the array). */
xt data_set_slice(const data_set *ds, int i, int64_t start, int64_t count);
/* Done with samples [start, start+count): their pages of mapped files leave
 * memory (a calibration pass over a large set stays at one batch). */
void data_set_release(const data_set *ds, int64_t start, int64_t count);

#endif
