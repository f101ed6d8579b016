/* This file implements `quantkit quantize` (DESIGN.md's CLI contract): the
 * options, then ptq_run. */
#include <getopt.h>
#include <stdlib.h>
#include "cli.h"
#include "ptq.h"

int cmd_quantize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},  {"calib", required_argument, 0, 'd'},
        {"output", required_argument, 0, 'o'},  {"record", required_argument, 0, 'r'},
        {"from-record", required_argument, 0, 'R'}, {"report", required_argument, 0, 'j'},
        {"html", required_argument, 0, 'h'},   {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {0, 0, 0, 0}};
    char **calib = calloc((size_t)argc + 1, sizeof *calib);
    if (!calib) return cli_error("out of memory");
    ptq_options o = {.calib = calib};
    int c, status = 1;
    int64_t threads = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:q", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 'd': calib[o.n_calib++] = optarg; break;
        case 'o': o.output = optarg; break;
        case 'r': o.record_out = optarg; break;
        case 'R': o.record_in = optarg; break;
        case 'j': o.report_json = optarg; break;
        case 'h': o.report_html = optarg; break;
        case 't': if (cli_parse_int("--threads", optarg, 1, &threads)) goto done; break;
        case 'q': o.quiet = 1; break;
        default: cli_error("quantize: bad option (see quantkit --help)"); goto done;
        }
    }
    if (optind != argc - 1 || !o.config || !o.output) {
        cli_error("usage: quantkit quantize MODEL.onnx -c CONFIG.yaml --calib DATA [--calib ...] -o OUT.onnx "
                  "[--record REC.yaml] [--from-record REC.yaml] [--report REPORT.json] [--html REPORT.html]");
        goto done;
    }
    o.model = argv[optind];
    o.threads = (int)threads;
    qk_err err = {0};
    if (ptq_run(&o, &err)) cli_error("%s", err.msg);
    else status = 0;
done:
    free(calib);
    return status;
}
