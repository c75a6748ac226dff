/* api.h: the HTTPS client of the operator commands (`pqota diag`, `release`, `vehicle`
 * register/import/list/show/vci/readiness, `campaign`, `apikey`): one set of connection
 * options and environment variables (--server/PQOTA_SERVER, --ca/PQOTA_CA,
 * --api-key/PQOTA_API_KEY, --profile, --json), one libcurl handle reused for every call
 * (TLS 1.3, the deployment CA, only the profile's key-exchange group), JSON answers, the
 * API's error answers printed the same way, and a progress bar on a terminal. */
#ifndef PQOTA_CLI_API_H
#define PQOTA_CLI_API_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core/err.h"
#include "crypto/profile.h"

typedef struct {
	const char *cmd; /* "diag", "release", ...: named in usage errors */
	const char *server, *ca, *key;
	const pq_profile *profile;
	bool json;
	long limit, offset; /* --limit (0: the command's default), --offset */
	long timeout_s;     /* of one call (60 s); 0: none, but a minute's stall ends it */
	void *curl;         /* the reused handle (cli_conn_close frees it) */
	char ua[32];        /* User-Agent: pqota-<cmd> */
} cli_conn;

/* getopt_long values of the connection options; a command's own start at CLI_O_NEXT. */
enum {
	CLI_O_SERVER = 256,
	CLI_O_CA,
	CLI_O_KEY,
	CLI_O_PROFILE,
	CLI_O_JSON,
	CLI_O_HELP,
	CLI_O_LIMIT,
	CLI_O_OFFSET,
	CLI_O_NEXT,
};

/* The struct option rows of the connection options (and --help), to put first in a
 * command's table. */
#define CLI_CONN_OPTIONS                                                                           \
	{"server", required_argument, NULL, CLI_O_SERVER},                                         \
	    {"ca", required_argument, NULL, CLI_O_CA},                                             \
	    {"api-key", required_argument, NULL, CLI_O_KEY},                                       \
	    {"profile", required_argument, NULL, CLI_O_PROFILE},                                   \
	    {"json", no_argument, NULL, CLI_O_JSON},                                               \
	{                                                                                          \
		"help", no_argument, NULL, CLI_O_HELP                                              \
	}

/* The rows of --limit N (1..CLI_PAGE_MAX) and --offset N, for the commands that page. */
#define CLI_PAGE_MAX 500 /* the server's largest page */
#define CLI_PAGE_OPTIONS                                                                           \
	{"limit", required_argument, NULL, CLI_O_LIMIT},                                           \
	{                                                                                          \
		"offset", required_argument, NULL, CLI_O_OFFSET                                    \
	}

/* The usage text of the connection options. */
#define CLI_CONN_USAGE                                                                             \
	"connection:\n"                                                                            \
	"  --server URL        https://HOST:PORT (or PQOTA_SERVER)\n"                              \
	"  --ca FILE           the deployment CA certificate (pki/ca/ca.crt, or PQOTA_CA)\n"       \
	"  --api-key KEY       the API key (or PQOTA_API_KEY)\n"                                   \
	"  --profile ID|NAME   TLS profile whose key-exchange group alone is offered\n"            \
	"                      (default 2)\n"                                                      \
	"  --json              print the API's JSON instead of a table\n"

/* Defaults from the environment (PQOTA_SERVER, PQOTA_CA, PQOTA_API_KEY), profile 2. */
void cli_conn_init(cli_conn *c, const char *cmd);
/* A connection or paging option into *c: true when ch is one (*exit_code CLI_EXIT_OK, or a usage
 * error's, printed), false when it is not a connection option. */
bool cli_conn_option(cli_conn *c, int ch, const char *arg, int *exit_code);
/* CLI_EXIT_OK when server, CA and key are there, else a usage error (printed). Starts
 * libcurl. */
int cli_conn_ready(cli_conn *c);
void cli_conn_close(cli_conn *c);

/* Parses a subcommand's options (argv[0] is its name) with getopt_long over opts: the
 * connection options into *c, -h/--help prints usage(stdout), any other option goes to
 * fn(user, ch, optarg) (CLI_EXIT_OK or a usage error's exit code, printed). Then checks
 * that between min_pos and max_pos arguments remain (from optind) and readies the
 * connection (cli_conn_ready). -1 to go on, else the exit code. */
int cli_parse(cli_conn *c, int argc, char **argv, const struct option *opts,
              int (*fn)(void *user, int ch, const char *arg), void *user, void (*usage)(FILE *),
              int min_pos, int max_pos);
/* A positive integer option in min..max (a usage error naming opt otherwise). */
int cli_opt_long(const cli_conn *c, const char *opt, const char *arg, long min, long max,
                 long *out);

/* One call: body (len bytes, ctype) or none; *status the HTTP status, *out the parsed JSON
 * answer (NULL when there is none, e.g. 204). PQ_OK when an answer arrived (any status);
 * PQ_ERR_IO (the connection: retry may help) or PQ_ERR_FORMAT (an answer that is not
 * JSON) with a detail. */
int cli_api_send(cli_conn *c, const char *method, const char *path, const char *ctype,
                 const void *body, size_t len, long *status, json_t **out) PQ_MUST_CHECK;
/* cli_api_send with a JSON text body (or none). */
int cli_api(cli_conn *c, const char *method, const char *path, const char *body, long *status,
            json_t **out) PQ_MUST_CHECK;
/* A call that must answer `want`: CLI_EXIT_OK with *out (the caller's), or the exit code
 * of a failure (printed: the connection's, or the API's error answer). `what` names it. */
int cli_call(cli_conn *c, const char *method, const char *path, json_t *body, long want,
             json_t **out, const char *what) PQ_MUST_CHECK;

/* Prints an API error answer ("pqota: error: WHAT: HTTP 403 forbidden: ..."); returns
 * CLI_EXIT_ERROR. */
int cli_api_error(const char *what, long status, const json_t *j);

/* The end of cli_path's list (a typed NULL: a bare NULL may be an int in varargs). */
#define CLI_END ((const char *)NULL)
/* A path with its query: fmt's text, then "?k=v&..." of the non-NULL pairs (NULL-ended
 * key, value list ending with CLI_END), values URL-encoded. PQ_ERR_RANGE when it does not fit. */
int cli_path(char *out, size_t cap, const char *base, ...) PQ_MUST_CHECK;

/* j on stdout (--json, then freed), or table(j) and j freed: CLI_EXIT_OK or
 * CLI_EXIT_ERROR (a failed write, printed). */
int cli_show(const cli_conn *c, json_t *j, void (*table)(const json_t *j));

/* GET path (it must answer 200) shown with cli_show: the exit code. what names the call. */
int cli_get_show(cli_conn *c, const char *path, const char *what, void (*table)(const json_t *j));
/* Whether id can be a server's id (a UUID, ...): 1..64 of hex digits and '-', safe in a path. */
bool cli_id_valid(const char *id);
/* `show ID`: GET base/ID shown (cli_get_show); an ID that is not 1..64 of hex digits and '-'
 * is a usage error ("'x' is not a KIND id"). */
int cli_show_id(cli_conn *c, const char *base, const char *id, const char *kind,
                void (*table)(const json_t *j));
/* The values of a list's limit (--limit, default 50) and offset (--offset) for cli_path. */
void cli_page_args(const cli_conn *c, char lim[24], char off[24]);
/* The index of subcommand sub in subs[n], or -1 after a usage error naming them (*ex its exit
 * code). */
int cli_sub_index(const char *cmd, const char *sub, const char *const *subs, size_t n, int *ex);
/* A command's first argument: none (usage on stderr, *ex CLI_EXIT_USAGE) or --help, -h, help
 * (usage on stdout, *ex CLI_EXIT_OK): true when the command ends there. */
bool cli_help_first(int argc, char **argv, void (*usage)(FILE *), int *ex);

/* Member access that never fails: "" / 0 for a missing or mistyped member. */
const char *cli_jstr(const json_t *o, const char *key);
long long cli_jint(const json_t *o, const char *key);
/* "2026-12-07 20:54:57" (UTC) of a Unix time in ms, "-" for 0. */
void cli_time(int64_t ms, char out[24]);

/* A long-lived GET (a Server-Sent Events stream, GET /api/v1/events) on its own handle,
 * beside the calls of the connection: fn receives the bytes as they come (return false to
 * end the stream). */
typedef struct cli_stream cli_stream;
typedef bool (*cli_stream_fn)(const char *p, size_t n, void *user);
/* NULL (with a detail) when it cannot be set up; a failed connection shows in the poll. */
cli_stream *cli_stream_open(cli_conn *c, const char *path, cli_stream_fn fn, void *user);
/* Runs the stream for up to wait_ms: true while it is open, false once it ended (closed by
 * the server, a failure, fn said stop, or an HTTP status other than 200: *status). */
bool cli_stream_poll(cli_stream *s, int wait_ms, long *status);
void cli_stream_close(cli_stream *s);

/* A progress bar on stderr when it is a terminal (nothing otherwise). */
typedef struct {
	bool tty;
	const char *label;
	uint64_t total;
	int64_t start_ms, last_ms;
} cli_progress;

void cli_progress_start(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(cli_progress *p, uint64_t done);
void cli_progress_end(cli_progress *p);

#endif
