/* cmd_bundle.c: `pqota bundle upload|list|show`: campaign bundles through the server's API
 * (docs/api.md 18). upload sends the full_package.bin `pqota pack build` wrote in resumable
 * pieces (upload.c), then POST /api/v1/bundles takes it with its manifest as one release set
 * (a release per unit), which `pqota campaign create --bundle ID` rolls out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/upload.h"

#define MANIFEST_MAX     (8u << 20) /* the server's default body limit (limits.max_body_bytes) */
#define BUNDLE_TIMEOUT_S 1800       /* POST /bundles verifies the bundle and decodes each unit */
#define NAME_MAX_LEN     64         /* a unit name, a hardware id (the server's limit) */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota bundle upload [connection] FILE --manifest MANIFEST.json\n"
	        "                           [--title TEXT] [--hardware-id UNIT=HW]... [options]\n"
	        "       pqota bundle list [connection] [--limit N] [--offset N]\n"
	        "       pqota bundle show [connection] ID\n"
	        "\n"
	        "upload: sends FILE (the full_package.bin of `pqota pack build`) in pieces\n"
	        "(resumed where the server stands after a dropped connection), then the server\n"
	        "checks it against MANIFEST.json (pack build's manifest.json), verifies it and\n"
	        "makes one release per unit; prints the bundle (docs/api.md 18). Its id goes to\n"
	        "`pqota campaign create --bundle ID`.\n"
	        "  --manifest FILE      the bundle's manifest.json (required)\n"
	        "  --title TEXT         1..64 characters, the prefix of the releases' titles\n"
	        "                       (default the manifest's campaign_id)\n"
	        "  --hardware-id UNIT=HW  the hardware id of unit UNIT's release (repeat);\n"
	        "                       default HW-<zone>-<nnn> for ECU_nnn, else the unit's\n"
	        "                       name (VMG, ZGW1)\n" CLI_UPLOAD_USAGE
	        "list: bundles, newest first; show: one bundle with its units.\n"
	        "\n" CLI_CONN_USAGE "\n"
	        "An operator key for upload, any key otherwise. Exit status: 0 done, 2 an error\n"
	        "(a file, the connection after the retries, an HTTP error such as 422\n"
	        "bundle_invalid or 404 not_found), 64 usage.\n");
}

enum {
	O_MANIFEST = CLI_O_NEXT,
	O_TITLE,
	O_HW,
	O_PIECE,
	O_RETRIES,
	O_UPLOAD_ID,
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"manifest", required_argument, NULL, O_MANIFEST},
    {"title", required_argument, NULL, O_TITLE},
    {"hardware-id", required_argument, NULL, O_HW},
    {"piece-size", required_argument, NULL, O_PIECE},
    {"retries", required_argument, NULL, O_RETRIES},
    {"upload-id", required_argument, NULL, O_UPLOAD_ID},
    CLI_PAGE_OPTIONS,
    {NULL, 0, NULL, 0},
};

typedef struct {
	cli_conn *c;
	const char *manifest, *title, *upload_id;
	json_t *hw; /* {unit: hardware id} of the --hardware-id options, NULL without */
	long piece, retries;
} args;

/* --hardware-id UNIT=HW into a->hw: both 1..64 characters, each unit once. */
static int add_hw(args *a, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;
	if (!eq || n < 1 || n > NAME_MAX_LEN || strlen(eq + 1) < 1 || strlen(eq + 1) > NAME_MAX_LEN)
		return cli_usage_error("bundle",
		                       "--hardware-id '%s': UNIT=HW expected (each 1..%d "
		                       "characters, e.g. VMG=HW-VMG-1)",
		                       arg, NAME_MAX_LEN);
	char unit[NAME_MAX_LEN + 1];
	snprintf(unit, sizeof(unit), "%.*s", (int)n, arg);
	if (!a->hw && !(a->hw = json_object()))
		return cli_error(PQ_ERR_NOMEM, "bundle");
	if (json_object_get(a->hw, unit))
		return cli_usage_error("bundle", "--hardware-id: unit %s given twice", unit);
	if (json_object_set_new(a->hw, unit, json_string(eq + 1)) != 0)
		return cli_error(PQ_ERR_NOMEM, "bundle");
	return CLI_EXIT_OK;
}

static int on_option(void *user, int ch, const char *arg)
{
	args *a = user;
	switch (ch) {
	case O_MANIFEST:
		a->manifest = arg;
		break;
	case O_TITLE:
		a->title = arg;
		break;
	case O_UPLOAD_ID:
		a->upload_id = arg;
		break;
	case O_HW:
		return add_hw(a, arg);
	case O_PIECE:
		return cli_opt_long(a->c, "piece-size", arg, CLI_PIECE_MIN, CLI_PIECE_MAX,
		                    &a->piece);
	case O_RETRIES:
		return cli_opt_long(a->c, "retries", arg, 0, CLI_RETRIES_MAX, &a->retries);
	default:
		return cli_usage_error("bundle", "bad option");
	}
	return CLI_EXIT_OK;
}

/* ---- display -------------------------------------------------------------------------- */

static void print_bundle(const json_t *b)
{
	char t[24];
	size_t i;
	json_t *u;
	cli_time(cli_jint(b, "created_ms"), t);
	printf("bundle    %s\n", cli_jstr(b, "id"));
	if (json_is_string(json_object_get(b, "title")))
		printf("title     %s\n", cli_jstr(b, "title"));
	if (json_is_string(json_object_get(b, "campaign_id")))
		printf("pack id   %s (pack build --campaign-id)\n", cli_jstr(b, "campaign_id"));
	printf("file      %s, %lld bytes\n", cli_jstr(b, "file_sha256"), cli_jint(b, "file_size"));
	printf("created   %s UTC by %s\n", t, cli_jstr(b, "created_by"));
	printf("units     %zu\n", json_array_size(json_object_get(b, "units")));
	printf("  %-20s %-10s %-12s %-16s %s\n", "PATH", "ECU", "VERSION", "HARDWARE", "RELEASE");
	json_array_foreach(json_object_get(b, "units"), i, u)
	{
		printf("  %-20s %-10s %-12s %-16s %s\n", cli_jstr(u, "path"), cli_jstr(u, "ecu_id"),
		       cli_jstr(u, "version"), cli_jstr(u, "hardware_id"),
		       cli_jstr(u, "release_id"));
	}
}

static void print_list(const json_t *j)
{
	size_t i;
	json_t *b;
	printf("%-36s %-20s %-16s %5s %12s %s\n", "ID", "TITLE", "PACK ID", "UNITS", "SIZE",
	       "CREATED (UTC)");
	json_array_foreach(json_object_get(j, "items"), i, b)
	{
		char t[24];
		cli_time(cli_jint(b, "created_ms"), t);
		printf("%-36s %-20s %-16s %5zu %12lld %s\n", cli_jstr(b, "id"),
		       *cli_jstr(b, "title") ? cli_jstr(b, "title") : "-",
		       *cli_jstr(b, "campaign_id") ? cli_jstr(b, "campaign_id") : "-",
		       json_array_size(json_object_get(b, "units")), cli_jint(b, "file_size"), t);
	}
	printf("%lld bundle(s)\n", cli_jint(j, "total"));
}

/* ---- commands ------------------------------------------------------------------------- */

/* The manifest's bundle.length against FILE's size, before anything is sent (the server
 * checks the length and the SHA-256 again). */
static int check_length(const char *file, const char *mpath, const json_t *m)
{
	struct stat st;
	if (stat(file, &st) != 0)
		return cli_error(PQ_ERR_IO, "%s: %s", file, strerror(errno));
	const json_t *len = json_object_get(json_object_get(m, "bundle"), "length");
	if (json_is_integer(len) && json_integer_value(len) != (json_int_t)st.st_size) {
		fprintf(stderr,
		        "pqota: error: %s names a bundle of %lld bytes, %s has %lld (not its "
		        "manifest?)\n",
		        mpath, (long long)json_integer_value(len), file, (long long)st.st_size);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* POST /api/v1/bundles of upload up: the record (*out). */
static int take(cli_conn *c, const args *a, const char *up, json_t *manifest, json_t **out)
{
	json_t *b = json_pack("{s:s,s:O}", "upload_id", up, "manifest", manifest);
	bool ok = b != NULL;
	if (a->title)
		cli_jset(b, "title", json_string(a->title), &ok);
	if (a->hw)
		cli_jset(b, "hardware_ids", json_incref(a->hw), &ok);
	if (!ok) {
		json_decref(b);
		return cli_error(PQ_ERR_NOMEM, "bundle upload");
	}
	c->timeout_s = BUNDLE_TIMEOUT_S;
	int ex =
	    cli_call(c, "POST", "/api/v1/bundles", b, 201, out, "bundle upload: taking the bundle");
	json_decref(b);
	if (ex != CLI_EXIT_OK)
		fprintf(stderr,
		        "pqota: upload %s stays on the server: --upload-id %s takes it again\n", up,
		        up);
	return ex;
}

static int do_upload(cli_conn *c, const args *a, const char *file)
{
	char up[64];
	json_t *manifest = NULL, *r = NULL;
	if (!a->manifest)
		return cli_usage_error("bundle", "upload: --manifest is required (pack build's "
		                                 "manifest.json)");
	if (a->title && (strlen(a->title) < 1 || strlen(a->title) > 64))
		return cli_usage_error("bundle", "upload: --title: 1..64 characters");
	int ex = cli_read_json_object(a->manifest, MANIFEST_MAX, &manifest);
	if (ex == CLI_EXIT_OK)
		ex = check_length(file, a->manifest, manifest);
	if (ex == CLI_EXIT_OK)
		ex = cli_upload(c, file, a->upload_id, a->piece, a->retries, up, sizeof(up));
	if (ex == CLI_EXIT_OK)
		ex = take(c, a, up, manifest, &r);
	json_decref(manifest);
	return ex == CLI_EXIT_OK ? cli_show(c, r, print_bundle) : ex;
}

static int do_list(cli_conn *c)
{
	char path[128], lim[24], off[24];
	cli_page_args(c, lim, off);
	if (cli_path(path, sizeof(path), "/api/v1/bundles", "limit", lim, "offset", off, CLI_END) !=
	    PQ_OK)
		return cli_error(PQ_ERR_RANGE, "bundle list");
	return cli_get_show(c, path, "bundle list", print_list);
}

static const char *const subs[] = {"upload", "list", "show"};
enum {
	SUB_UPLOAD,
	SUB_LIST,
	SUB_SHOW
};

int cmd_bundle(int argc, char **argv)
{
	cli_conn c;
	cli_conn_init(&c, "bundle");
	args a = {.c = &c, .piece = CLI_PIECE_DEFAULT, .retries = CLI_RETRIES_DEFAULT};
	int ex;
	if (cli_help_first(argc, argv, usage, &ex))
		return ex;
	int sub = cli_sub_index("bundle", argv[1], subs, 3, &ex);
	if (sub < 0)
		return ex;
	int npos = sub == SUB_LIST ? 0 : 1;
	ex = cli_parse(&c, argc - 1, argv + 1, opts, on_option, &a, usage, npos, npos);
	if (ex < 0) {
		const char *pos = npos ? argv[1 + optind] : NULL;
		if (sub == SUB_UPLOAD)
			ex = do_upload(&c, &a, pos);
		else if (sub == SUB_LIST)
			ex = do_list(&c);
		else
			ex = cli_show_id(&c, "/api/v1/bundles", pos, "bundle", print_bundle);
	}
	json_decref(a.hw);
	cli_conn_close(&c);
	return ex;
}
