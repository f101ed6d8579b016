/* placeholder */
#include "cli.h"
int cmd_quantize(int argc, char **argv) { return cli_error("quantize: not implemented yet"); }
