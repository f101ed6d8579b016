/* This file implements `quantkit eval`: top-1 against labels and SQNR
 * against a reference model, printed as one JSON line (DESIGN.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "npy.h"
#include "onnx_io.h"

/* Runs model `path` over ds; first output into *out. */
static int infer_model(const char *path, char *const *data, int n_data, int64_t batch, int64_t threads,
                       xt *out, int64_t *samples)
{
    qk_err err = {0};
    ir_graph *g = NULL;
    executor *e = NULL;
    data_set ds = {0};
    xt *outs = NULL;
    int status = 1;
    if (onnx_load(path, &g, &err) || exec_new(g, (int)threads, &e, &err) || data_set_load(g, n_data, data, &ds, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    *samples = data_set_samples(&ds);
    batch = cli_batch_size(g, batch, *samples);
    if (batch <= 0) goto done;
    outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    if (!outs || cli_infer_all(e, g, &ds, batch, outs, &err)) {
        cli_error("%s: %s", path, outs ? err.msg : "out of memory");
        goto done;
    }
    if (outs[0].dtype != DT_FLOAT) {
        cli_error("%s: first output is %s, eval needs float", path, dtype_name(outs[0].dtype));
        goto done;
    }
    *out = outs[0];
    outs[0].data = NULL;
    status = 0;
done:
    if (outs)
        for (int j = 0; j < g->n_outputs; j++) free(outs[j].data);
    free(outs);
    data_set_free(&ds);
    exec_free(e);
    ir_free(g);
    return status;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"labels", required_argument, 0, 'l'},
        {"reference", required_argument, 0, 'r'}, {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'}, {0, 0, 0, 0}};
    char **data = calloc((size_t)argc + 1, sizeof *data);
    const char *labels = NULL, *reference = NULL;
    int n_data = 0, c, status = 1;
    int64_t batch = 0, threads = 0, samples = 0, ref_samples = 0;
    xt out = {0}, ref = {0}, lab = {0};
    qk_err err = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:l:r:b:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data[n_data++] = optarg; break;
        case 'l': labels = optarg; break;
        case 'r': reference = optarg; break;
        case 'b': if (cli_parse_int("--batch", optarg, 1, &batch)) goto done; break;
        case 't': if (cli_parse_int("--threads", optarg, 0, &threads)) goto done; break;
        default: cli_error("eval: bad option (see quantkit --help)"); goto done;
        }
    }
    if (optind != argc - 1 || !n_data) {
        cli_error("usage: quantkit eval MODEL.onnx --data X.npy [--labels Y.npy] [--reference FLOAT.onnx]");
        goto done;
    }
    if (labels && npy_read(labels, &lab, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    if (infer_model(argv[optind], data, n_data, batch, threads, &out, &samples)) goto done;
    if (reference && infer_model(reference, data, n_data, batch, threads, &ref, &ref_samples)) goto done;

    int64_t n = xt_numel(&out);
    int64_t classes = samples > 0 ? n / samples : 0;
    printf("{");
    if (labels) {
        if (xt_numel(&lab) != samples || lab.dtype == DT_FLOAT || lab.dtype == DT_DOUBLE) {
            cli_error("%s: expected %lld integer labels, got %lld %s values", labels, (long long)samples,
                      (long long)xt_numel(&lab), dtype_name(lab.dtype));
            goto done;
        }
        int64_t hit = 0;
        const float *o = out.data;
        for (int64_t s = 0; s < samples; s++) {
            int64_t best = 0;
            for (int64_t k = 1; k < classes; k++)
                if (o[s * classes + k] > o[s * classes + best]) best = k;
            hit += best == xt_get_i64(&lab, s);
        }
        printf("\"top1\":%.6f,", samples ? (double)hit / (double)samples : 0.0);
    } else {
        printf("\"top1\":null,");
    }
    if (reference) {
        if (xt_numel(&ref) != n) {
            cli_error("%s: output has %lld values, the model's has %lld", reference, (long long)xt_numel(&ref), (long long)n);
            goto done;
        }
        double sig = 0, noise = 0;
        const float *o = out.data, *r = ref.data;
        for (int64_t i = 0; i < n; i++) {
            sig += (double)r[i] * r[i];
            noise += ((double)o[i] - r[i]) * ((double)o[i] - r[i]);
        }
        /* Identical outputs have infinite SQNR; JSON has no infinity. */
        if (noise == 0) printf("\"sqnr_db\":null,\"identical\":true,");
        else printf("\"sqnr_db\":%.4f,", 10.0 * log10(sig / noise));
    } else {
        printf("\"sqnr_db\":null,");
    }
    printf("\"images\":%lld}\n", (long long)samples);
    status = 0;
done:
    free(out.data);
    free(ref.data);
    free(lab.data);
    free(data);
    return status;
}
