/* cmd_diag.c: `pqota diag`: remote diagnostics through the server's API (docs/api.md
 * "Diagnostics"): send a UDS request to one vehicle or a fleet and wait for the answers,
 * show one request, list them. HTTPS with libcurl over TLS 1.3, the deployment CA, and only
 * the profile's key-exchange group. */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "core/err.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/profile.h"
#include "vehicle/uds.h"

#define PAGE           500
#define POLL_FIRST_MS  250
#define POLL_MS        500
#define WAIT_MARGIN_MS 5000 /* beyond the request's timeout: the server's expiry tick */
#define RESP_BYTES_MAX 4096 /* a UDS response shown decoded (the server takes 4095) */

typedef struct {
	cli_conn k; /* the connection (cli/api.h); k.limit 0: every page */
} conn;

static int api(conn *c, const char *method, const char *path, const char *body, long *status,
               json_t **out)
{
	return cli_api(&c->k, method, path, body, status, out);
}

#define api_error cli_api_error
#define sget      cli_jstr

/* ---- display ------------------------------------------------------------------------- */

/* An NRC's name: the server's (its ISO 14229-1 table, docs/api.md 14.3), else pqota's
 * table of vehicle/uds.c. */
static const char *nrc_name(int nrc, const char *given)
{
	if (given && *given)
		return given;
	return uds_nrc_name(nrc >= 0 && nrc <= 0xFF ? (uint8_t)nrc : 0);
}

/* A readable form of a response given in hex (vehicle/uds.c uds_describe); the hex itself,
 * cut, if it does not decode. */
static void describe_hex(const char *hex, char *out, size_t cap)
{
	uint8_t bin[RESP_BYTES_MAX];
	size_t n = 0;
	if (pq_hex_decode(hex, bin, sizeof(bin), &n) == PQ_OK)
		uds_describe(bin, n, out, cap);
	else
		snprintf(out, cap, "%.66s%s", hex, strlen(hex) > 66 ? "..." : "");
}

static void print_result(const json_t *r)
{
	const char *status = sget(r, "status");
	char detail[512] = "";
	if (strcmp(status, "positive") == 0 && json_is_string(json_object_get(r, "text"))) {
		/* a DID read as text: "62 F190 ..." prints the VIN, not its hex */
		char d[400];
		describe_hex(sget(r, "response"), d, sizeof(d));
		snprintf(detail, sizeof(detail), "\"%.200s\"  %.300s", sget(r, "text"), d);
	} else if (strcmp(status, "positive") == 0) {
		describe_hex(sget(r, "response"), detail, sizeof(detail));
	} else if (strcmp(status, "suppressed") == 0) {
		snprintf(detail, sizeof(detail),
		         "done, positive response suppressed (none expected)");
	} else if (strcmp(status, "negative") == 0) {
		int nrc = (int)json_integer_value(json_object_get(r, "nrc"));
		snprintf(detail, sizeof(detail), "NRC 0x%02X %s (%s)", nrc,
		         nrc_name(nrc, sget(r, "nrc_name")), sget(r, "response"));
	} else {
		snprintf(detail, sizeof(detail), "%s", sget(r, "error"));
	}
	json_t *el = json_object_get(r, "elapsed_ms");
	char elapsed[32] = "";
	if (json_is_integer(el))
		snprintf(elapsed, sizeof(elapsed), "%6lld ms", (long long)json_integer_value(el));
	printf("%-20s %-8s %-8s %9s  %s\n", sget(r, "vin"), sget(r, "ecu_id"), status, elapsed,
	       detail);
}

static const char *const statuses[] = {"positive", "negative", "timeout",   "error",
                                       "pending",  "sent",     "suppressed"};

static void print_aggregate(const json_t *b)
{
	json_t *counts = json_object_get(b, "counts"), *agg = json_object_get(b, "aggregate");
	printf("\n%s: %s %s to %s, %lld vehicle(s), %s\n", sget(b, "id"), sget(b, "kind"),
	       sget(b, "request"), sget(b, "ecu_id"),
	       (long long)json_integer_value(json_object_get(b, "targets")), sget(b, "state"));
	printf("status:");
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		printf(" %s %lld%s", statuses[i],
		       (long long)json_integer_value(json_object_get(counts, statuses[i])),
		       i + 1 < sizeof(statuses) / sizeof(statuses[0]) ? "," : "\n");
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(agg, "nrc"), i, e)
	{
		int nrc = (int)json_integer_value(json_object_get(e, "nrc"));
		printf("  NRC 0x%02X %-40s %lld\n", nrc, nrc_name(nrc, sget(e, "nrc_name")),
		       (long long)json_integer_value(json_object_get(e, "count")));
	}
	json_array_foreach(json_object_get(agg, "responses"), i, e)
	{
		char d[512];
		if (json_is_string(json_object_get(e, "text")))
			snprintf(d, sizeof(d), "\"%.200s\"", sget(e, "text"));
		else
			describe_hex(sget(e, "response"), d, sizeof(d));
		printf("  %-49s %lld\n", d,
		       (long long)json_integer_value(json_object_get(e, "count")));
	}
	long long distinct = json_integer_value(json_object_get(agg, "distinct_responses"));
	if (distinct > (long long)json_array_size(json_object_get(agg, "responses")))
		printf("  (%lld distinct positive responses; the most frequent shown)\n", distinct);
}

/* GETs every page of a batch's results into one object (the first page's, with all items). */
static int fetch_all(conn *c, const char *id, json_t **out, long *status)
{
	json_t *all = NULL;
	int rc = PQ_OK;
	*out = NULL;
	for (long off = 0;; off += PAGE) {
		char path[160];
		json_t *j = NULL;
		snprintf(path, sizeof(path), "/api/v1/diagnostics/%s?limit=%d&offset=%ld", id, PAGE,
		         off);
		rc = api(c, "GET", path, NULL, status, &j);
		if (rc != PQ_OK || *status != 200) {
			json_decref(all);
			*out = j;
			return rc;
		}
		json_t *res = json_object_get(j, "results");
		json_t *items = json_object_get(res, "items");
		long long total = json_integer_value(json_object_get(res, "total"));
		size_t got =
		    json_array_size(items); /* read before j (and items with it) is freed */
		if (!all) {
			all = j;
		} else {
			int bad = json_array_extend(
			    json_object_get(json_object_get(all, "results"), "items"), items);
			json_decref(j);
			if (bad) {
				json_decref(all);
				return pq_err_set(PQ_ERR_NOMEM, "collecting the results of %s", id);
			}
		}
		if (got == 0 || off + PAGE >= total)
			break;
	}
	*out = all;
	return rc;
}

/* Prints a batch (table or JSON); the exit code: 0 when every vehicle answered (positive,
 * negative, or done without the suppressed positive response), 1 otherwise. */
static int show_batch(conn *c, json_t *b)
{
	json_t *counts = json_object_get(b, "counts");
	long long answered = json_integer_value(json_object_get(counts, "positive")) +
	                     json_integer_value(json_object_get(counts, "negative")) +
	                     json_integer_value(json_object_get(counts, "suppressed"));
	if (c->k.json) {
		/* cli_print_json frees what it prints: b stays the caller's */
		int rc = cli_print_json(json_incref(b), true, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (rc != PQ_OK)
			return cli_error(rc, "diag: printing the batch");
	} else {
		size_t i;
		json_t *r;
		printf("%-20s %-8s %-8s %9s  %s\n", "VIN", "ECU", "STATUS", "ELAPSED",
		       "RESPONSE / NRC / ERROR");
		json_array_foreach(json_object_get(json_object_get(b, "results"), "items"), i, r)
		    print_result(r);
		print_aggregate(b);
	}
	return answered == json_integer_value(json_object_get(b, "targets")) ? CLI_EXIT_OK
	                                                                     : CLI_EXIT_FAIL;
}

/* ---- subcommands ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: pqota diag send [connection] (--vin VIN | --vins V1,V2,... |\n"
	       "                       --hardware-id HW | --model MODEL | --all) [--online]\n"
	       "                       --ecu ECU --request HEX [--timeout S] [--no-wait] [--json]\n"
	       "       pqota diag show [connection] ID [--limit N] [--offset N] [--json]\n"
	       "       pqota diag list [connection] [--limit N] [--offset N] [--json]\n"
	       "\n"
	       "Remote diagnostics: a UDS request sent by the server to vehicles over MQTT; the\n"
	       "VMG routes it over DoIP to the ECU and answers (docs/api.md \"Diagnostics\").\n"
	       "\n"
	       "send: posts the request, then (unless --no-wait) polls until every vehicle\n"
	       "answered or the timeout passed, and prints a row per vehicle (a readable form of\n"
	       "well-known answers: 62 F190 -> the VIN as text; NRCs by name) and the aggregate.\n"
	       "  --ecu ECU           target ECU: ECU_011, ZGW1..ZGW9, VMG\n"
	       "  --request HEX       the UDS request, e.g. 22F190 (ReadDataByIdentifier VIN)\n"
	       "  --timeout S         seconds to wait for the answers, 1..300 (default 10)\n"
	       "  --no-wait           print the created request and return\n"
	       "  --online            with --model or --all: only the vehicles online now\n"
	       "show: one request with its results; list: the requests, newest first.\n"
	       "\n"
	       "connection:\n"
	       "  --server URL        https://HOST:PORT (or PQOTA_SERVER)\n"
	       "  --ca FILE           the deployment CA certificate (pki/ca/ca.crt, or PQOTA_CA)\n"
	       "  --api-key KEY       operator key for send, any key otherwise (or\n"
	       "                      PQOTA_API_KEY)\n"
	       "  --profile ID|NAME   TLS profile whose key-exchange group alone is offered\n"
	       "                      (default 2)\n"
	       "  --json              print the API's JSON instead of a table\n"
	       "\n"
	       "exit status: 0 every vehicle answered (positive, negative or suppressed), 1 some\n"
	       "timed out, erred or are still open, 2 an error (connection, HTTP error), 64\n"
	       "usage.\n");
}

enum {
	O_VIN = CLI_O_NEXT,
	O_VINS,
	O_HW,
	O_MODEL,
	O_ALL,
	O_ONLINE,
	O_ECU,
	O_REQUEST,
	O_TIMEOUT,
	O_NOWAIT,
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"vin", required_argument, NULL, O_VIN},
    {"vins", required_argument, NULL, O_VINS},
    {"hardware-id", required_argument, NULL, O_HW},
    {"model", required_argument, NULL, O_MODEL},
    {"all", no_argument, NULL, O_ALL},
    {"online", no_argument, NULL, O_ONLINE},
    {"ecu", required_argument, NULL, O_ECU},
    {"request", required_argument, NULL, O_REQUEST},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"no-wait", no_argument, NULL, O_NOWAIT},
    CLI_PAGE_OPTIONS,
    {NULL, 0, NULL, 0},
};

typedef struct {
	const char *vin, *vins, *hw, *model, *ecu, *request;
	bool all, online, nowait;
	long timeout;
} send_args;

/* The POST body of a send (caller frees), NULL when out of memory. */
static char *send_body(const send_args *a)
{
	json_t *body = json_pack("{sssssI}", "ecu_id", a->ecu, "request", a->request, "timeout_s",
	                         (json_int_t)a->timeout);
	json_t *f = NULL;
	bool ok = true;
	if (a->vin) {
		cli_jset(body, "vin", json_string(a->vin), &ok);
	} else if (a->vins) {
		json_t *arr = json_array();
		for (const char *p = a->vins; arr && *p;) {
			const char *end = strchr(p, ',');
			size_t n = end ? (size_t)(end - p) : strlen(p);
			if (n > 0)
				cli_jappend(arr, json_stringn(p, n), &ok);
			p += n + (end ? 1 : 0);
		}
		f = arr ? json_pack("{so}", "vins", arr) : NULL;
	} else if (a->hw) {
		f = json_pack("{ss}", "hardware_id", a->hw);
	} else if (a->model) {
		f = json_pack("{ss}", "model", a->model);
	} else {
		f = json_pack("{sb}", "all", 1);
	}
	if (f && a->online && json_object_set_new(f, "online", json_true()) != 0)
		ok = false;
	if (!a->vin)
		cli_jset(body, "filter", f, &ok);
	char *text = body && ok ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return text;
}

/* Polls request id until the server says it is done or the deadline (pq_mono_ms) passed:
 * CLI_EXIT_OK, or the exit code of a failed poll (printed). */
static int wait_done(conn *c, const char *id, int64_t deadline)
{
	char path[128];
	snprintf(path, sizeof(path), "/api/v1/diagnostics/%s?limit=1", id);
	for (long wait = POLL_FIRST_MS;; wait = POLL_MS) {
		long status = 0;
		json_t *j = NULL;
		pq_sleep_ms(wait);
		int rc = api(c, "GET", path, NULL, &status, &j);
		if (rc != PQ_OK)
			return cli_error(rc, "diag send: polling %s", id);
		if (status != 200) {
			int ex = api_error("diag send: polling", status, j);
			json_decref(j);
			return ex;
		}
		bool done = strcmp(sget(j, "state"), "done") == 0;
		json_decref(j);
		if (done || pq_mono_ms() >= deadline)
			return CLI_EXIT_OK;
	}
}

static int do_send(conn *c, const send_args *a)
{
	int ntarget = !!a->vin + !!a->vins + !!a->hw + !!a->model + a->all;
	if (ntarget != 1)
		return cli_usage_error("diag", "send: give one of --vin, --vins, --hardware-id, "
		                               "--model, --all");
	if (!a->ecu || !a->request)
		return cli_usage_error("diag", "send: --ecu and --request are required");
	if (a->online && !a->model && !a->all)
		return cli_usage_error("diag", "send: --online goes with --model or --all");
	char *text = send_body(a);
	if (!text)
		return cli_error(PQ_ERR_NOMEM, "diag send");
	long status = 0;
	json_t *j = NULL;
	int64_t start = pq_mono_ms();
	int rc = api(c, "POST", "/api/v1/diagnostics", text, &status, &j);
	free(text);
	if (rc != PQ_OK)
		return cli_error(rc, "diag send");
	if (status != 202) {
		int ex = api_error("diag send", status, j);
		json_decref(j);
		return ex;
	}
	char id[64];
	snprintf(id, sizeof(id), "%s", sget(j, "id"));
	if (a->nowait) {
		int ex = show_batch(c, j);
		json_decref(j);
		return ex == CLI_EXIT_FAIL ? CLI_EXIT_OK : ex;
	}
	json_decref(j);
	int ex = wait_done(c, id, start + a->timeout * 1000 + WAIT_MARGIN_MS);
	if (ex != CLI_EXIT_OK)
		return ex;
	rc = fetch_all(c, id, &j, &status);
	if (rc != PQ_OK)
		return cli_error(rc, "diag send: results of %s", id);
	if (status != 200) {
		ex = api_error("diag send: results", status, j);
		json_decref(j);
		return ex;
	}
	ex = show_batch(c, j);
	json_decref(j);
	return ex;
}

static int do_show(conn *c, const char *id)
{
	long status = 0;
	json_t *j = NULL;
	int rc;
	if (c->k.limit > 0) {
		char path[160];
		snprintf(path, sizeof(path), "/api/v1/diagnostics/%s?limit=%ld&offset=%ld", id,
		         c->k.limit, c->k.offset);
		rc = api(c, "GET", path, NULL, &status, &j);
	} else {
		rc = fetch_all(c, id, &j, &status);
	}
	if (rc != PQ_OK)
		return cli_error(rc, "diag show %s", id);
	if (status != 200) {
		int ex = api_error("diag show", status, j);
		json_decref(j);
		return ex;
	}
	int ex = show_batch(c, j);
	json_decref(j);
	return ex;
}

static int do_list(conn *c)
{
	char path[128];
	long status = 0;
	json_t *j = NULL;
	snprintf(path, sizeof(path), "/api/v1/diagnostics?limit=%ld&offset=%ld",
	         c->k.limit > 0 ? c->k.limit : 50, c->k.offset);
	int rc = api(c, "GET", path, NULL, &status, &j);
	if (rc != PQ_OK)
		return cli_error(rc, "diag list");
	if (status != 200) {
		int ex = api_error("diag list", status, j);
		json_decref(j);
		return ex;
	}
	if (c->k.json) {
		rc = cli_print_json(j, true, JSON_INDENT(2) | JSON_SORT_KEYS);
		return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "diag list");
	} else {
		size_t i;
		json_t *b;
		printf("%-36s %-8s %-8s %-12s %7s %5s %5s %5s %5s\n", "ID", "STATE", "ECU",
		       "REQUEST", "TARGETS", "POS", "NEG", "TMO", "ERR");
		json_array_foreach(json_object_get(j, "items"), i, b)
		{
			json_t *n = json_object_get(b, "counts");
			printf("%-36s %-8s %-8s %-12.12s %7lld %5lld %5lld %5lld %5lld\n",
			       sget(b, "id"), sget(b, "state"), sget(b, "ecu_id"),
			       sget(b, "request"),
			       (long long)json_integer_value(json_object_get(b, "targets")),
			       (long long)json_integer_value(json_object_get(n, "positive")),
			       (long long)json_integer_value(json_object_get(n, "negative")),
			       (long long)json_integer_value(json_object_get(n, "timeout")),
			       (long long)json_integer_value(json_object_get(n, "error")));
		}
		printf("%lld request(s)\n",
		       (long long)json_integer_value(json_object_get(j, "total")));
	}
	json_decref(j);
	return CLI_EXIT_OK;
}

/* One option of a diag subcommand into *c or *a: CLI_EXIT_OK, or a usage error's exit code
 * (printed). */
static int diag_option(int ch, const char *arg, conn *c, send_args *a)
{
	int ex;
	if (cli_conn_option(&c->k, ch, optarg, &ex))
		return ex;
	switch (ch) {
	case O_VIN:
		a->vin = optarg;
		break;
	case O_VINS:
		a->vins = optarg;
		break;
	case O_HW:
		a->hw = optarg;
		break;
	case O_MODEL:
		a->model = optarg;
		break;
	case O_ALL:
		a->all = true;
		break;
	case O_ONLINE:
		a->online = true;
		break;
	case O_ECU:
		a->ecu = optarg;
		break;
	case O_REQUEST:
		a->request = optarg;
		break;
	case O_TIMEOUT:
		if (cli_parse_long(optarg, 1, 300, &a->timeout) != PQ_OK)
			return cli_usage_error("diag", "--timeout: 1..300 seconds");
		break;
	case O_NOWAIT:
		a->nowait = true;
		break;
	default:
		return cli_usage_error("diag", "bad option '%s'", arg);
	}
	return CLI_EXIT_OK;
}

/* Parses the options of a diag subcommand (argv[0] is its name) into *c and *a; true to go
 * on, false to exit with *exit_code (help, usage errors). */
static bool diag_parse(int argc, char **argv, conn *c, send_args *a, int *exit_code)
{
	int ch;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h' || ch == CLI_O_HELP) {
			usage(stdout);
			*exit_code = CLI_EXIT_OK;
			return false;
		}
		*exit_code = diag_option(ch, argv[optind - 1], c, a);
		if (*exit_code != CLI_EXIT_OK)
			return false;
	}
	const char *sub = argv[0];
	bool is_show = strcmp(sub, "show") == 0;
	if (optind != argc - (is_show ? 1 : 0))
		*exit_code = cli_usage_error(
		    "diag", "%s: %s", sub, is_show ? "give one request id" : "unexpected argument");
	else
		return true;
	return false;
}

int cmd_diag(int argc, char **argv)
{
	conn c = {0};
	cli_conn_init(&c.k, "diag");
	send_args a = {.timeout = 10};
	int ex;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "send") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "list") != 0)
		return cli_usage_error("diag", "unknown subcommand '%s' (send, show, list)", sub);
	argc--;
	argv++;
	if (!diag_parse(argc, argv, &c, &a, &ex))
		return ex;
	if ((ex = cli_conn_ready(&c.k)) != CLI_EXIT_OK)
		return ex;
	if (strcmp(sub, "send") == 0)
		ex = do_send(&c, &a);
	else if (strcmp(sub, "show") == 0)
		ex = do_show(&c, argv[optind]);
	else
		ex = do_list(&c);
	cli_conn_close(&c.k);
	return ex;
}
