/* cmd_release.c: `pqota release upload|list|show`: firmware releases through the server's
 * API (docs/api.md 7). An upload goes in pieces (PUT /api/v1/uploads/{id}?offset=N) that
 * survive a dropped connection: after a failed piece the client asks the server where the
 * upload stands and goes on from there, and an upload left behind is continued with
 * --upload-id (upload.c). Then POST /api/v1/releases turns it into a release (and its delta). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/upload.h"

#define RELEASE_TIMEOUT_S 1800 /* POST /releases builds and encrypts the package first */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota release upload [connection] FILE --version V --ecu ECU\n"
	        "                            --hardware-id HW [options]\n"
	        "       pqota release list [connection] [--hardware-id HW] [--ecu ECU]\n"
	        "                          [--search TEXT] [--limit N] [--offset N]\n"
	        "       pqota release show [connection] ID\n"
	        "\n"
	        "upload: sends FILE in pieces (resumed where the server stands after a dropped\n"
	        "connection), then creates the release and prints it (docs/api.md 7).\n"
	        "  --version V          semantic version, e.g. 1.1.0\n"
	        "  --ecu ECU            ECU_011, VMG, ZGW1, ...\n"
	        "  --hardware-id HW     the hardware the release is for\n"
	        "  --title TEXT         default \"ECU VERSION\"\n"
	        "  --software-type T    APP (default), BOOT, CAL, CFG\n"
	        "  --compression C      of the full package: zstd (default), zlib, none\n"
	        "  --notes TEXT         release notes\n"
	        "  --delta-from REL     an earlier release (id or version) the server makes a\n"
	        "                       delta from\n"
	        "  --delta FILE         with --delta-from: your own delta package (pqota pack\n"
	        "                       delta), checked by the server instead of computing "
	        "one\n" CLI_UPLOAD_USAGE
	        "  --rollout FILE       the release rolls out on its own: FILE is the JSON\n"
	        "                       rollout (target, policy, phases, ends_at, name), a\n"
	        "                       continuous campaign started with the release\n"
	        "                       (docs/api.md 12.10)\n"
	        "list: releases, newest first; show: one release.\n"
	        "\n" CLI_CONN_USAGE "\n"
	        "An operator key for upload, any key otherwise. Exit status: 0 done, 2 an error\n"
	        "(connection after the retries, HTTP error), 64 usage.\n");
}

enum {
	O_VERSION = CLI_O_NEXT,
	O_ECU,
	O_HW,
	O_TITLE,
	O_TYPE,
	O_COMPRESSION,
	O_NOTES,
	O_DELTA_FROM,
	O_DELTA,
	O_PIECE,
	O_RETRIES,
	O_UPLOAD_ID,
	O_SEARCH,
	O_ROLLOUT,
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"version", required_argument, NULL, O_VERSION},
    {"ecu", required_argument, NULL, O_ECU},
    {"hardware-id", required_argument, NULL, O_HW},
    {"title", required_argument, NULL, O_TITLE},
    {"software-type", required_argument, NULL, O_TYPE},
    {"compression", required_argument, NULL, O_COMPRESSION},
    {"notes", required_argument, NULL, O_NOTES},
    {"delta-from", required_argument, NULL, O_DELTA_FROM},
    {"delta", required_argument, NULL, O_DELTA},
    {"piece-size", required_argument, NULL, O_PIECE},
    {"retries", required_argument, NULL, O_RETRIES},
    {"upload-id", required_argument, NULL, O_UPLOAD_ID},
    {"search", required_argument, NULL, O_SEARCH},
    {"rollout", required_argument, NULL, O_ROLLOUT},
    CLI_PAGE_OPTIONS,
    {NULL, 0, NULL, 0},
};

#define ROLLOUT_MAX (1u << 20) /* --rollout FILE */

typedef struct {
	cli_conn *c;
	const char *version, *ecu, *hw, *title, *type, *compression, *notes, *delta_from, *delta,
	    *upload_id, *search, *rollout;
	long piece, retries;
} args;

static int on_option(void *user, int ch, const char *arg)
{
	args *a = user;
	switch (ch) {
	case O_VERSION:
		a->version = arg;
		break;
	case O_ECU:
		a->ecu = arg;
		break;
	case O_HW:
		a->hw = arg;
		break;
	case O_TITLE:
		a->title = arg;
		break;
	case O_TYPE:
		a->type = arg;
		break;
	case O_COMPRESSION:
		a->compression = arg;
		break;
	case O_NOTES:
		a->notes = arg;
		break;
	case O_DELTA_FROM:
		a->delta_from = arg;
		break;
	case O_DELTA:
		a->delta = arg;
		break;
	case O_UPLOAD_ID:
		a->upload_id = arg;
		break;
	case O_SEARCH:
		a->search = arg;
		break;
	case O_ROLLOUT:
		a->rollout = arg;
		break;
	case O_PIECE:
		return cli_opt_long(a->c, "piece-size", arg, CLI_PIECE_MIN, CLI_PIECE_MAX,
		                    &a->piece);
	case O_RETRIES:
		return cli_opt_long(a->c, "retries", arg, 0, CLI_RETRIES_MAX, &a->retries);
	default:
		return cli_usage_error("release", "bad option");
	}
	return CLI_EXIT_OK;
}

/* ---- display -------------------------------------------------------------------------- */

static void print_deltas(const json_t *r)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(r, "deltas"), i, d)
	{
		printf("delta     from %s: %s (%s)", cli_jstr(d, "base_version"),
		       cli_jstr(d, "state"), cli_jstr(d, "source"));
		if (json_is_string(json_object_get(d, "sha256")))
			printf(", %s, %lld bytes", cli_jstr(d, "sha256"), cli_jint(d, "length"));
		if (json_is_string(json_object_get(d, "error")))
			printf(": %s", cli_jstr(d, "error"));
		putchar('\n');
	}
}

static void print_release(const json_t *r)
{
	char t[24];
	json_t *p = json_object_get(r, "package"), *im = json_object_get(r, "image");
	cli_time(cli_jint(r, "created_ms"), t);
	printf("release   %s\n", cli_jstr(r, "id"));
	printf("title     %s\n", cli_jstr(r, "title"));
	printf("version   %s (%s) for %s on %s\n", cli_jstr(r, "version"),
	       cli_jstr(r, "software_type"), cli_jstr(r, "ecu_id"), cli_jstr(r, "hardware_id"));
	printf("package   %s, %lld bytes\n", cli_jstr(p, "sha256"), cli_jint(p, "length"));
	printf("image     %s, %lld bytes\n", cli_jstr(im, "sha256"), cli_jint(im, "length"));
	print_deltas(r);
	printf("created   %s UTC by %s\n", t, cli_jstr(r, "created_by"));
	if (json_object_get(r, "rollout_campaign_id"))
		printf("rollout   continuous campaign %s%s%s\n",
		       *cli_jstr(r, "rollout_campaign_id") ? cli_jstr(r, "rollout_campaign_id")
		                                           : "not started",
		       json_object_get(r, "rollout_error") ? ": " : "",
		       cli_jstr(r, "rollout_error"));
}

static void print_list(const json_t *j)
{
	size_t i;
	json_t *r;
	printf("%-36s %-12s %-4s %-10s %-16s %12s %-7s %s\n", "ID", "VERSION", "TYPE", "ECU",
	       "HARDWARE", "PACKAGE", "DELTAS", "CREATED (UTC)");
	json_array_foreach(json_object_get(j, "items"), i, r)
	{
		char t[24];
		cli_time(cli_jint(r, "created_ms"), t);
		printf("%-36s %-12s %-4s %-10s %-16s %12lld %-7zu %s\n", cli_jstr(r, "id"),
		       cli_jstr(r, "version"), cli_jstr(r, "software_type"), cli_jstr(r, "ecu_id"),
		       cli_jstr(r, "hardware_id"),
		       cli_jint(json_object_get(r, "package"), "length"),
		       json_array_size(json_object_get(r, "deltas")), t);
	}
	printf("%lld release(s)\n", cli_jint(j, "total"));
}

static int do_upload(cli_conn *c, const args *a, const char *file)
{
	char full[64], delta[64] = "", title[160];
	if (!a->version || !a->ecu || !a->hw)
		return cli_usage_error("release", "upload: --version, --ecu and --hardware-id are "
		                                  "required");
	if (a->delta && !a->delta_from)
		return cli_usage_error("release", "upload: --delta needs --delta-from");
	json_t *rollout = NULL; /* read before anything is sent */
	int ex = a->rollout ? cli_read_json_object(a->rollout, ROLLOUT_MAX, &rollout) : CLI_EXIT_OK;
	if (ex == CLI_EXIT_OK)
		ex = cli_upload(c, file, a->upload_id, a->piece, a->retries, full, sizeof(full));
	if (ex == CLI_EXIT_OK && a->delta)
		ex = cli_upload(c, a->delta, NULL, a->piece, a->retries, delta, sizeof(delta));
	if (ex != CLI_EXIT_OK) {
		json_decref(rollout);
		return ex;
	}
	snprintf(title, sizeof(title), "%s %s", a->ecu, a->version);
	json_t *b =
	    json_pack("{s:s,s:s,s:s,s:s,s:s}", "title", a->title ? a->title : title, "version",
	              a->version, "ecu_id", a->ecu, "hardware_id", a->hw, "upload_id", full);
	bool ok = b != NULL;
	if (a->type)
		cli_jset(b, "software_type", json_string(a->type), &ok);
	if (a->compression)
		cli_jset(b, "compression", json_string(a->compression), &ok);
	if (a->notes)
		cli_jset(b, "notes", json_string(a->notes), &ok);
	if (a->delta_from)
		cli_jset(b, "delta_from", json_string(a->delta_from), &ok);
	if (*delta)
		cli_jset(b, "delta_upload_id", json_string(delta), &ok);
	if (rollout)
		cli_jset(b, "rollout", rollout, &ok);
	if (!ok) {
		json_decref(b);
		return cli_error(PQ_ERR_NOMEM, "release upload");
	}
	json_t *r = NULL;
	c->timeout_s = RELEASE_TIMEOUT_S;
	ex = cli_call(c, "POST", "/api/v1/releases", b, 201, &r,
	              "release upload: creating the "
	              "release");
	json_decref(b);
	return ex == CLI_EXIT_OK ? cli_show(c, r, print_release) : ex;
}

static int do_list(cli_conn *c, const args *a)
{
	char path[512], lim[24], off[24];
	cli_page_args(c, lim, off);
	if (cli_path(path, sizeof(path), "/api/v1/releases", "limit", lim, "offset", off,
	             "hardware_id", a->hw, "ecu_id", a->ecu, "q", a->search, CLI_END) != PQ_OK)
		return cli_error(PQ_ERR_RANGE, "release list");
	return cli_get_show(c, path, "release list", print_list);
}

static const char *const subs[] = {"upload", "list", "show"};
enum {
	SUB_UPLOAD,
	SUB_LIST,
	SUB_SHOW
};

int cmd_release(int argc, char **argv)
{
	cli_conn c;
	cli_conn_init(&c, "release");
	args a = {.c = &c, .piece = CLI_PIECE_DEFAULT, .retries = CLI_RETRIES_DEFAULT};
	int ex;
	if (cli_help_first(argc, argv, usage, &ex))
		return ex;
	int sub = cli_sub_index("release", argv[1], subs, 3, &ex);
	if (sub < 0)
		return ex;
	int npos = sub == SUB_LIST ? 0 : 1;
	ex = cli_parse(&c, argc - 1, argv + 1, opts, on_option, &a, usage, npos, npos);
	if (ex >= 0)
		return ex;
	const char *pos = npos ? argv[1 + optind] : NULL;
	if (sub == SUB_UPLOAD)
		ex = do_upload(&c, &a, pos);
	else if (sub == SUB_LIST)
		ex = do_list(&c, &a);
	else
		ex = cli_show_id(&c, "/api/v1/releases", pos, "release", print_release);
	cli_conn_close(&c);
	return ex;
}
