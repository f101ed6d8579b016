/* This file implements the declarations shared by the quantkit CLI's
 * subcommands (cmd_*.c) and the batching helper they share. */
#ifndef QK_CORE_CLI_H
#define QK_CORE_CLI_H
#include "data_input.h"
#include "executor.h"

int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_plugins(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

/* Prints "quantkit: <msg>" on stderr and returns 1 (the CLI's exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The batch size to use for g: the model's fixed batch when its first input
 * declares one (a different `requested` is an error), else `requested`, else
 * 32.  Returns <= 0 after printing an error. */
int64_t cli_batch_size(const ir_graph *g, int64_t requested, int64_t samples);

/* Runs every sample of ds through e in batches of `batch` and concatenates
 * each graph output along axis 0 into outs[j] (malloc'd data, caller frees). */
int cli_infer_all(executor *e, const ir_graph *g, const data_set *ds, int64_t batch, xt *outs, qk_err *err);

/* Parses a positive integer option value or prints an error. */
int cli_parse_int(const char *opt, const char *val, int64_t min, int64_t *out);

#endif
