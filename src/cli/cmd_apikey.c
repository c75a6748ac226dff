/* cmd_apikey.c: `pqota apikey create|list|revoke`: API keys over the API with an admin key
 * (docs/api.md 16), with expiry and last use; `pqota server apikey` does the same on the
 * server machine through the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota apikey create [connection] --name NAME --role ROLE\n"
	        "                           [--expires-in DURATION]\n"
	        "       pqota apikey list [connection]\n"
	        "       pqota apikey revoke [connection] ID\n"
	        "\n"
	        "API keys through the server's API (an admin key; docs/api.md 16).\n"
	        "create: a key of ROLE (viewer, operator, admin); its secret is printed once on\n"
	        "  stdout (with --json, as \"key\" in the object). --expires-in: 90s, 30m, 12h,\n"
	        "  30d (at most 3660 days); the server refuses the key from then on.\n"
	        "list: every key with its state (active, expired, revoked) and last use (kept\n"
	        "  to the minute). revoke: the key stops working within 5 seconds.\n"
	        "\n" CLI_CONN_USAGE "\n"
	        "Exit status: 0 done, 2 an error (connection, HTTP error), 64 usage.\n");
}

enum {
	O_NAME = CLI_O_NEXT,
	O_ROLE,
	O_EXPIRES
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"name", required_argument, NULL, O_NAME},
    {"role", required_argument, NULL, O_ROLE},
    {"expires-in", required_argument, NULL, O_EXPIRES},
    {NULL, 0, NULL, 0},
};

typedef struct {
	const char *name, *role;
	long long expires_s; /* 0: never */
} args;

/* "90s", "30m", "12h", "30d" (or plain seconds) into seconds, 1 s..3660 days. */
static int parse_duration(const char *s, long long *out)
{
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	long long unit = 1;
	if (end == s || v <= 0)
		return PQ_ERR_INVAL;
	if (*end && end[1] == '\0') {
		switch (*end) {
		case 's':
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			return PQ_ERR_INVAL;
		}
	} else if (*end) {
		return PQ_ERR_INVAL;
	}
	if (v > 3660LL * 86400 / unit)
		return PQ_ERR_RANGE;
	*out = v * unit;
	return PQ_OK;
}

static int on_option(void *user, int ch, const char *arg)
{
	args *a = user;
	switch (ch) {
	case O_NAME:
		a->name = arg;
		break;
	case O_ROLE:
		a->role = arg;
		break;
	case O_EXPIRES:
		if (parse_duration(arg, &a->expires_s) != PQ_OK)
			return cli_usage_error("apikey",
			                       "--expires-in '%s': 90s, 30m, 12h or 30d "
			                       "(at most 3660 days)",
			                       arg);
		break;
	default:
		return cli_usage_error("apikey", "bad option");
	}
	return CLI_EXIT_OK;
}

static void print_key_row(const json_t *k)
{
	char made[24], exp[24], used[24];
	cli_time(cli_jint(k, "created_ms"), made);
	cli_time(cli_jint(k, "expires_ms"), exp);
	cli_time(cli_jint(k, "last_used_ms"), used);
	printf("%-36s %-24s %-8s %-7s %-19s %-19s %s\n", cli_jstr(k, "id"), cli_jstr(k, "name"),
	       cli_jstr(k, "role"), cli_jstr(k, "state"), made,
	       cli_jint(k, "expires_ms") ? exp : "never", used);
}

static void print_list(const json_t *j)
{
	size_t i;
	json_t *k;
	printf("%-36s %-24s %-8s %-7s %-19s %-19s %s\n", "ID", "NAME", "ROLE", "STATE",
	       "CREATED (UTC)", "EXPIRES", "LAST USED");
	json_array_foreach(json_object_get(j, "items"), i, k) print_key_row(k);
	printf("%lld key(s)\n", cli_jint(j, "total"));
}

static void print_created(const json_t *k)
{
	char exp[24];
	cli_time(cli_jint(k, "expires_ms"), exp);
	printf("%s\n", cli_jstr(k, "key"));
	fflush(stdout);
	fprintf(stderr,
	        "API key '%s' (id %s, role %s, expires %s) created; the secret above is shown "
	        "only once.\n",
	        cli_jstr(k, "name"), cli_jstr(k, "id"), cli_jstr(k, "role"),
	        cli_jint(k, "expires_ms") ? exp : "never");
}

static void print_revoked(const json_t *k)
{
	printf("revoked %s (%s)\n", cli_jstr(k, "id"), cli_jstr(k, "name"));
}

static int do_create(cli_conn *c, const args *a)
{
	if (!a->name || !a->role)
		return cli_usage_error("apikey", "create: --name and --role are required");
	json_t *b = json_pack("{s:s,s:s}", "name", a->name, "role", a->role), *k = NULL;
	if (b && a->expires_s &&
	    json_object_set_new(b, "expires_in_s", json_integer(a->expires_s)) != 0) {
		json_decref(b);
		b = NULL;
	}
	if (!b)
		return cli_error(PQ_ERR_NOMEM, "apikey create");
	int ex = cli_call(c, "POST", "/api/v1/apikeys", b, 201, &k, "apikey create");
	json_decref(b);
	return ex == CLI_EXIT_OK ? cli_show(c, k, print_created) : ex;
}

int cmd_apikey(int argc, char **argv)
{
	cli_conn c;
	args a = {0};
	cli_conn_init(&c, "apikey");
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)
		return cli_usage_error("apikey", "unknown subcommand '%s' (create, list, revoke)",
		                       sub);
	int npos = !strcmp(sub, "revoke");
	int ex = cli_parse(&c, argc - 1, argv + 1, opts, on_option, &a, usage, npos, npos);
	if (ex >= 0)
		return ex;
	json_t *j = NULL;
	if (!strcmp(sub, "create")) {
		ex = do_create(&c, &a);
	} else if (!strcmp(sub, "list")) {
		ex = cli_call(&c, "GET", "/api/v1/apikeys", NULL, 200, &j, "apikey list");
		if (ex == CLI_EXIT_OK)
			ex = cli_show(&c, j, print_list);
	} else {
		const char *id = argv[1 + optind];
		char path[160];
		if (strlen(id) > 64 || strspn(id, "0123456789abcdefABCDEF-") != strlen(id)) {
			ex = cli_usage_error("apikey", "revoke: '%.64s' is not a key id", id);
		} else {
			snprintf(path, sizeof(path), "/api/v1/apikeys/%s", id);
			ex = cli_call(&c, "DELETE", path, NULL, 200, &j, "apikey revoke");
			if (ex == CLI_EXIT_OK)
				ex = cli_show(&c, j, print_revoked);
		}
	}
	cli_conn_close(&c);
	return ex;
}
