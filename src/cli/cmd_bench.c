/* cmd_bench.c: being written */
#include "cli/cli.h"
int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return CLI_EXIT_USAGE; }
