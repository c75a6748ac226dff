/* bench_out.h: what the `pqota bench` commands share (cmd_bench.c, cmd_bench_pack.c,
 * cmd_bench_delta.c): the output mode and the JSON row helpers, and the pack benchmark's
 * entry points. */
#ifndef PQOTA_CLI_BENCH_OUT_H
#define PQOTA_CLI_BENCH_OUT_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/bench.h"

#define BOOTSTRAP_HINT "run scripts/bootstrap --with bench"

/* JSON instead of tables (--json). */
extern bool cli_bench_json;

/* Starts a JSON row: {"group":"<group>" (the caller adds fields and the closing brace),
 * with the separator from the previous row. */
void cli_json_row(const char *group);

/* Prints ,"key":"value" with value escaped for JSON. */
void cli_json_field(const char *key, const char *v);

/* `pqota bench pack` (cmd_bench_pack.c). */
int cmd_bench_pack(int argc, char **argv);

/* What the delta part of `pqota bench pack` runs. */
typedef struct {
	unsigned sets;         /* BENCH_SET_* */
	const char *only[16];  /* --pair names (NULL-terminated); none: the sets' pairs */
	bench_delta_opts opts; /* bsdiff size cap */
	long apply_limit_kib;  /* the apply memory target */
} cli_delta_run;

/* Runs every pair of run (cmd_bench_delta.c) in dir and prints the tables, ratios, targets
 * and the markdown summary. PQ_OK when every tool that ran produced the exact output (a
 * timeout is not a failure); otherwise the first failure. */
int cli_bench_deltas(const char *dir, const cli_delta_run *run);

/* Writes the synthetic pairs named in run->only into dir (--make) and prints their paths. */
int cli_bench_make_pairs(const cli_delta_run *run, const char *dir);

/* Prints the pairs of sets, one a line, and whether each can run (--list). */
int cli_bench_list_pairs(unsigned sets);

#endif
