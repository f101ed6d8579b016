/* This file implements `quantkit bench`: timed repeated inference on one
 * batch, printed as one JSON line (DESIGN.md).  Speed targets are checked
 * with this and bench/ scripts, never in unit tests. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "clock.h"
#include "cli.h"
#include "onnx_io.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'}, {"iters", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    char **data = calloc((size_t)argc + 1, sizeof *data);
    int n_data = 0, c, status = 1;
    int64_t batch = 0, threads = 0, iters = 20;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:b:t:k:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data[n_data++] = optarg; break;
        case 'b': if (cli_parse_int("--batch", optarg, 1, &batch)) goto out; break;
        case 't': if (cli_parse_int("--threads", optarg, 0, &threads)) goto out; break;
        case 'k': if (cli_parse_int("--iters", optarg, 1, &iters)) goto out; break;
        default: cli_error("bench: bad option (see quantkit --help)"); goto out;
        }
    }
    if (optind != argc - 1 || !n_data || !batch) {
        cli_error("usage: quantkit bench MODEL.onnx --data X.npy --batch N [--threads T] [--iters K]");
        goto out;
    }
    qk_err err = {0};
    ir_graph *g = NULL;
    executor *e = NULL;
    data_set ds = {0};
    xt *in = NULL, *outs = NULL;
    double *times = calloc((size_t)iters, sizeof *times);
    if (onnx_load(argv[optind], &g, &err) || exec_new(g, (int)threads, &e, &err) ||
        data_set_load(g, n_data, data, &ds, &err)) {
        cli_error("%s", err.msg);
        goto done;
    }
    if (cli_batch_size(g, batch, batch) <= 0) goto done;
    if (data_set_samples(&ds) < batch) {
        cli_error("--batch %lld: the data holds only %lld samples", (long long)batch, (long long)data_set_samples(&ds));
        goto done;
    }
    in = calloc((size_t)ds.n + 1, sizeof *in);
    outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    for (int i = 0; i < ds.n; i++) in[i] = data_set_slice(&ds, i, 0, batch);
    /* Two warm-up runs fill the buffer pool and the caches. */
    for (int64_t k = -2; k < iters; k++) {
        double t0 = now_s();
        if (exec_run(e, in, outs, &err)) {
            cli_error("%s", err.msg);
            goto done;
        }
        double t1 = now_s();
        for (int j = 0; j < g->n_outputs; j++) free(outs[j].data);
        if (k >= 0) times[k] = t1 - t0;
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    double median = iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
    /* Peak resident set of the whole run (model, weights, buffers), to set
     * beside ONNX Runtime's in bench/run.sh.  Linux reports kilobytes. */
    struct rusage ru;
    long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
    printf("{\"images_per_s\":%.3f,\"median_s\":%.6f,\"batch\":%lld,\"threads\":%d,\"iters\":%lld,"
           "\"max_rss_kb\":%ld}\n",
           (double)batch / median, median, (long long)batch, threads > 0 ? (int)threads : 0, (long long)iters,
           rss_kb);
    status = 0;
done:
    free(in);
    free(outs);
    free(times);
    data_set_free(&ds);
    exec_free(e);
    ir_free(g);
out:
    free(data);
    return status;
}
