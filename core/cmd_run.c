/* This file implements `quantkit run`: inference over a data set, written as
 * .npy, plus the batching helpers the other subcommands share. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "npy.h"
#include "onnx_io.h"

int cli_parse_int(const char *opt, const char *val, int64_t min, int64_t *out)
{
    char *end;
    long long v = strtoll(val, &end, 10);
    if (!*val || *end || v < min) {
        cli_error("%s: expected an integer >= %lld, got '%s'", opt, (long long)min, val);
        return -1;
    }
    *out = v;
    return 0;
}

int64_t cli_batch_size(const ir_graph *g, int64_t requested, int64_t samples)
{
    int64_t fixed = -1;
    if (g->n_inputs > 0) {
        const xt *t = &g->values[g->inputs[0]].t;
        if (t->rank >= 1 && t->dims[0] >= 0) fixed = t->dims[0];
    }
    if (fixed >= 0) {
        if (requested > 0 && requested != fixed) {
            cli_error("--batch %lld: the model's input '%s' has a fixed batch of %lld", (long long)requested,
                      g->values[g->inputs[0]].name, (long long)fixed);
            return -1;
        }
        if (fixed > 0 && samples % fixed) {
            cli_error("%lld samples is not a multiple of the model's fixed batch %lld", (long long)samples, (long long)fixed);
            return -1;
        }
        return fixed > 0 ? fixed : samples;
    }
    return requested > 0 ? requested : 32;
}

int cli_infer_all(executor *e, const ir_graph *g, const data_set *ds, int64_t batch, xt *outs, qk_err *err)
{
    int64_t total = data_set_samples(ds);
    int no = g->n_outputs, rc = QK_OK;
    xt *in = calloc((size_t)ds->n + 1, sizeof *in);
    xt *got = calloc((size_t)no + 1, sizeof *got);
    if (!in || !got) {
        free(in); free(got);
        return qk_fail(err, QK_ENOMEM, "out of memory");
    }
    memset(outs, 0, (size_t)no * sizeof *outs);
    for (int64_t s = 0; s < total || (total == 0 && s == 0); s += batch) {
        int64_t cnt = total - s < batch ? total - s : batch;
        for (int i = 0; i < ds->n; i++) in[i] = data_set_slice(ds, i, s, cnt);
        if ((rc = exec_run(e, in, got, err))) break;
        for (int j = 0; j < no && rc == QK_OK; j++) {
            if (s == 0) {
                /* Size the result from the first batch: samples ride axis 0. */
                outs[j] = got[j];
                int64_t per = got[j].rank >= 1 && got[j].dims[0] == cnt && cnt ? xt_nbytes(&got[j]) / cnt : -1;
                if (per < 0 || total <= cnt) continue;
                outs[j].dims[0] = total;
                outs[j].data = realloc(got[j].data, (size_t)(per * total));
                if (!outs[j].data) rc = qk_fail(err, QK_ENOMEM, "out of memory for outputs");
                continue;
            }
            int64_t per = xt_nbytes(&got[j]) / (cnt ? cnt : 1);
            if (got[j].rank < 1 || got[j].dims[0] != cnt || outs[j].dims[0] != total)
                rc = qk_fail(err, QK_EINVAL, "output '%s' does not have the batch on its first axis; run with a batch "
                             "covering all samples", g->values[g->outputs[j]].name);
            else
                memcpy((char *)outs[j].data + per * s, got[j].data, (size_t)(per * cnt));
            free(got[j].data);
        }
        if (total == 0) break;
    }
    if (rc)
        for (int j = 0; j < no; j++) {
            free(outs[j].data);
            outs[j].data = NULL;
        }
    free(in);
    free(got);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'},
        {0, 0, 0, 0}};
    char **inputs = calloc((size_t)argc + 1, sizeof *inputs), **outputs = calloc((size_t)argc + 1, sizeof *outputs);
    int n_in = 0, n_out = 0, c, status = 1;
    int64_t batch = 0, threads = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:b:t:", opts, NULL)) != -1) {
        switch (c) {
        case 'i': inputs[n_in++] = optarg; break;
        case 'o': outputs[n_out++] = optarg; break;
        case 'b': if (cli_parse_int("--batch", optarg, 1, &batch)) goto done; break;
        case 't': if (cli_parse_int("--threads", optarg, 0, &threads)) goto done; break;
        default: cli_error("run: bad option (see quantkit --help)"); goto done;
        }
    }
    if (optind != argc - 1 || !n_in || !n_out) {
        cli_error("usage: quantkit run MODEL.onnx --input DATA [--input ...] --output OUT.npy [--batch N] [--threads T]");
        goto done;
    }
    qk_err err = {0};
    ir_graph *g = NULL;
    executor *e = NULL;
    data_set ds = {0};
    xt *outs = NULL;
    if (onnx_load(argv[optind], &g, &err) || exec_new(g, (int)threads, &e, &err) ||
        data_set_load(g, n_in, inputs, &ds, &err)) {
        cli_error("%s", err.msg);
        goto cleanup;
    }
    if (n_out > g->n_outputs) {
        cli_error("%d --output files given, the model has %d output(s)", n_out, g->n_outputs);
        goto cleanup;
    }
    batch = cli_batch_size(g, batch, data_set_samples(&ds));
    if (batch <= 0) goto cleanup;
    outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    if (!outs || cli_infer_all(e, g, &ds, batch, outs, &err)) {
        cli_error("%s", outs ? err.msg : "out of memory");
        goto cleanup;
    }
    status = 0;
    for (int j = 0; j < n_out && !status; j++)
        if (npy_write(outputs[j], &outs[j], &err)) status = cli_error("%s", err.msg);
cleanup:
    if (outs)
        for (int j = 0; j < g->n_outputs; j++) free(outs[j].data);
    free(outs);
    data_set_free(&ds);
    exec_free(e);
    ir_free(g);
done:
    free(inputs);
    free(outputs);
    return status;
}
