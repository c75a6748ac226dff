/* cli.h: the pqota subcommands and helpers shared by their argument parsers. */
#ifndef PQOTA_CLI_CLI_H
#define PQOTA_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

/* Exit codes shared by every subcommand (docs/operations.md). */
#define CLI_EXIT_OK    0
#define CLI_EXIT_FAIL  1 /* the operation failed (or, for checks, the verdict is negative) */
#define CLI_EXIT_ERROR 2 /* could not perform the operation (I/O, handshake, bad input) */
#define CLI_EXIT_USAGE 64

int cmd_keys(int argc, char **argv);
int cmd_tls(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_diag(int argc, char **argv);
int cmd_vehicle(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_campaign(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
/* `pqota vehicle register|import|list|show|vci|readiness` (cmd_fleet.c); argv[0] is the
 * subcommand. */
int cmd_fleet(int argc, char **argv);
/* Whether `pqota vehicle WORD` is one of cmd_fleet's subcommands. */
bool cmd_fleet_is_sub(const char *word);

/* Prints "pqota: error: <what>: <detail>" to stderr and returns CLI_EXIT_ERROR. */
int cli_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "pqota: <msg>" and a hint to use --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Splits "host:port", "[v6]:port" or ":port"/"port" (host defaults to `def_host`); the port
 * must be a number in 0..65535. PQ_OK, or PQ_ERR_INVAL (malformed) / PQ_ERR_RANGE (too long
 * for host[hlen] or port[plen], port out of range) with a detail. */
int cli_split_hostport(const char *s, const char *def_host, char *host, size_t hlen, char *port,
                       size_t plen) PQ_MUST_CHECK;

/* Parses a decimal integer within [min, max] into *out (untouched on failure). PQ_OK, or
 * PQ_ERR_INVAL (empty, not a number, trailing characters) / PQ_ERR_RANGE with a detail. */
int cli_parse_long(const char *s, long min, long max, long *out) PQ_MUST_CHECK;

/* JSON output built piece by piece: each call takes v (even on failure, as jansson does) and
 * clears *ok when v is NULL or the object/array could not grow (out of memory). */
void cli_jset(json_t *o, const char *key, json_t *v, bool *ok);
void cli_jappend(json_t *a, json_t *v, bool *ok);
/* Reads the JSON object in file path (at most max bytes) into *out (a new object); prints
 * why not (the file's error, or its line and JSON error) and returns CLI_EXIT_ERROR. */
int cli_read_json_object(const char *path, size_t max, json_t **out);
/* Prints j (then frees it) on stdout followed by a newline, with jansson's flags; a NULL j
 * or !ok prints nothing and returns PQ_ERR_NOMEM, a failed write PQ_ERR_IO. */
int cli_print_json(json_t *j, bool ok, size_t flags) PQ_MUST_CHECK;

#endif
