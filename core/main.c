/* This file implements the quantkit command-line entry point: it dispatches
 * to one subcommand per file (cmd_*.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char usage[] =
    "usage: quantkit COMMAND [ARGS]\n"
    "  run      MODEL.onnx --input DATA [--input ...] --output OUT.npy [--batch N] [--threads T]\n"
    "  eval     MODEL.onnx --data X.npy [--labels Y.npy] [--reference FLOAT.onnx] [--batch N] [--threads T]\n"
    "  bench    MODEL.onnx --data X.npy --batch N [--threads T] [--iters K]\n"
    "  quantize MODEL.onnx -c CONFIG.yaml --calib DATA [--calib ...] -o OUT.onnx\n"
    "           [--record REC.yaml] [--from-record REC.yaml] [--report REPORT.json] [--html REPORT.html]\n"
    "           [--threads T] [--quiet]\n"
    "  plan     MODEL.onnx -c CONFIG.yaml [--json]   (which observer/quantizer/bits apply where, and why)\n"
    "  plugins  [--json] [--plugin-path DIR ...]   (every plugin found: kind, name, version, file)\n"
    "DATA: FILE.npy (first axis = samples), NAME=FILE.npy, or a folder of ONNX TensorProto .pb files\n";

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("quantkit: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("quantkit %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "plugins")) return cmd_plugins(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    cli_error("unknown command '%s' (see quantkit --help)", cmd);
    return 2;
}
