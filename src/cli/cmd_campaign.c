/* cmd_campaign.c: `pqota campaign create|list|show|start|pause|resume|cancel|watch`:
 * campaigns through the server's API (docs/api.md 12); watch follows one live
 * (campaign_watch.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/campaign.h"
#include "cli/cli.h"
#include "core/fileio.h"

#define SPEC_MAX (8u * 1024u * 1024u)

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota campaign create [connection] --name NAME --release ID...\n"
	        "                             [target] [policy] [--phase SPEC...] [--start]\n"
	        "       pqota campaign create [connection] --spec FILE [--start]\n"
	        "       pqota campaign list [connection] [--limit N] [--offset N]\n"
	        "       pqota campaign show|start|pause|resume|cancel [connection] ID\n"
	        "       pqota campaign watch [connection] ID [--timeout S]\n"
	        "\n"
	        "Campaigns roll releases out to the vehicles that need them (docs/api.md 12).\n"
	        "create: a draft (started at once with --start); --spec FILE is the whole JSON\n"
	        "  body of POST /api/v1/campaigns, the options below build one:\n"
	        "  --release ID            a release (repeat: up to 32)\n"
	        "  --notes TEXT            release notes sent to the vehicles\n"
	        "  target: --vin VIN (repeat), --model M, --hardware-id HW (repeat),\n"
	        "          --version-min V, --version-max V (installed version bounds)\n"
	        "  policy: --consent-required, --deadline YYYY-MM-DDTHH:MM:SSZ,\n"
	        "          --battery-min PCT, --parked, --ignition-off, --storage-min BYTES,\n"
	        "          --vehicle-timeout S, --rollback all_or_nothing|none\n"
	        "  --phase SPEC            count=N or percent=P, then optionally ,success=R\n"
	        "                          and ,error=R (ratios 0..1); repeat for each phase\n"
	        "  --continuous            keep admitting matching vehicles as they report an\n"
	        "                          older version, until cancelled or --ends-at (phases\n"
	        "                          but the last: count=N admitted vehicles)\n"
	        "  --ends-at YYYY-MM-DDTHH:MM:SSZ  a continuous campaign admits until then\n"
	        "list, show: campaigns with their counts; start, pause, resume, cancel: an\n"
	        "  action, printing the campaign after it.\n"
	        "watch: live deployment transitions and counts (the server's event stream, and\n"
	        "  the campaign re-read every few seconds) until the campaign ends; with --json,\n"
	        "  one JSON object a line. A continuous campaign never ends by itself: watch\n"
	        "  shows its admissions and counts until it is cancelled or --timeout passes.\n"
	        "\n" CLI_CONN_USAGE "\n"
	        "An operator key for create and the actions, any key otherwise. Exit status: 0\n"
	        "done (watch: the campaign completed), 1 watch: it was cancelled or --timeout\n"
	        "passed, 2 an error (connection, HTTP error such as 409 bad_state), 64 usage.\n");
}

enum {
	O_NAME = CLI_O_NEXT,
	O_RELEASE,
	O_NOTES,
	O_VIN,
	O_MODEL,
	O_HW,
	O_VMIN,
	O_VMAX,
	O_CONSENT,
	O_DEADLINE,
	O_BATTERY,
	O_PARKED,
	O_IGNITION,
	O_STORAGE,
	O_VTIMEOUT,
	O_ROLLBACK,
	O_CONTINUOUS,
	O_ENDS_AT,
	O_PHASE,
	O_SPEC,
	O_START,
	O_TIMEOUT,
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"name", required_argument, NULL, O_NAME},
    {"release", required_argument, NULL, O_RELEASE},
    {"notes", required_argument, NULL, O_NOTES},
    {"vin", required_argument, NULL, O_VIN},
    {"model", required_argument, NULL, O_MODEL},
    {"hardware-id", required_argument, NULL, O_HW},
    {"version-min", required_argument, NULL, O_VMIN},
    {"version-max", required_argument, NULL, O_VMAX},
    {"consent-required", no_argument, NULL, O_CONSENT},
    {"deadline", required_argument, NULL, O_DEADLINE},
    {"battery-min", required_argument, NULL, O_BATTERY},
    {"parked", no_argument, NULL, O_PARKED},
    {"ignition-off", no_argument, NULL, O_IGNITION},
    {"storage-min", required_argument, NULL, O_STORAGE},
    {"vehicle-timeout", required_argument, NULL, O_VTIMEOUT},
    {"rollback", required_argument, NULL, O_ROLLBACK},
    {"continuous", no_argument, NULL, O_CONTINUOUS},
    {"ends-at", required_argument, NULL, O_ENDS_AT},
    {"phase", required_argument, NULL, O_PHASE},
    {"spec", required_argument, NULL, O_SPEC},
    {"start", no_argument, NULL, O_START},
    CLI_PAGE_OPTIONS,
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {NULL, 0, NULL, 0},
};

typedef struct {
	cli_conn *c;
	json_t *body, *target, *policy, *prereq; /* what the options built */
	const char *spec;
	bool start, built; /* built: some option of the body was given */
	long timeout;
} args;

/* Appends a string to the array member key of o (made on first use). */
static int add_str(json_t *o, const char *key, const char *v)
{
	json_t *a = json_object_get(o, key);
	if (!a && json_object_set_new(o, key, a = json_array()) != 0)
		return PQ_ERR_NOMEM;
	return json_array_append_new(a, json_string(v)) == 0 ? PQ_OK : PQ_ERR_NOMEM;
}

/* "count=N" or "percent=P", then ",success=R", ",error=R": one phase object. */
static json_t *parse_phase(const char *spec)
{
	json_t *ph = json_object();
	char buf[128];
	if (!ph || strlen(spec) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *tok = buf, *next; tok; tok = next) {
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		char *eq = strchr(tok, '='), *end = NULL;
		if (!eq)
			goto bad;
		*eq = '\0';
		double v = strtod(eq + 1, &end);
		if (end == eq + 1 || *end)
			goto bad;
		static const char *const keys[][2] = {{"count", "count"},
		                                      {"percent", "percent"},
		                                      {"success", "success_threshold"},
		                                      {"error", "error_threshold"}};
		size_t k = 0;
		while (k < 4 && strcmp(tok, keys[k][0]) != 0)
			k++;
		if (k == 4)
			goto bad;
		json_t *jv = k == 0 ? json_integer((json_int_t)v) : json_real(v);
		if (json_object_set_new(ph, keys[k][1], jv) != 0)
			goto bad;
	}
	return ph;
bad:
	json_decref(ph);
	return NULL;
}

static int set_num(json_t *o, const char *key, const char *arg, const char *opt, double min,
                   double max)
{
	char *end = NULL;
	double v = strtod(arg, &end);
	if (end == arg || *end || v < min || v > max)
		return cli_usage_error("campaign", "--%s: a number in %.0f..%.0f", opt, min, max);
	json_object_set_new(o, key, json_integer((json_int_t)v));
	return CLI_EXIT_OK;
}

static int on_option(void *user, int ch, const char *arg)
{
	args *a = user;
	int rc = PQ_OK;
	a->built = a->built || (ch != O_SPEC && ch != O_START && ch != O_TIMEOUT);
	switch (ch) {
	case O_NAME:
		rc = json_object_set_new(a->body, "name", json_string(arg)) ? PQ_ERR_NOMEM : PQ_OK;
		break;
	case O_NOTES:
		rc = json_object_set_new(a->policy, "release_notes", json_string(arg))
		         ? PQ_ERR_NOMEM
		         : PQ_OK;
		break;
	case O_RELEASE:
		rc = add_str(a->body, "release_ids", arg);
		break;
	case O_VIN:
		rc = add_str(a->target, "vins", arg);
		break;
	case O_HW:
		rc = add_str(a->target, "hardware_ids", arg);
		break;
	case O_MODEL:
	case O_VMIN:
	case O_VMAX:
		rc = json_object_set_new(a->target,
		                         ch == O_MODEL  ? "model"
		                         : ch == O_VMIN ? "version_min"
		                                        : "version_max",
		                         json_string(arg))
		         ? PQ_ERR_NOMEM
		         : PQ_OK;
		break;
	case O_CONSENT:
		json_object_set_new(a->policy, "consent_required", json_true());
		break;
	case O_DEADLINE:
		json_object_set_new(a->policy, "deadline", json_string(arg));
		break;
	case O_ROLLBACK:
		json_object_set_new(a->policy, "rollback_policy", json_string(arg));
		break;
	case O_CONTINUOUS:
		json_object_set_new(a->body, "mode", json_string("continuous"));
		break;
	case O_ENDS_AT:
		json_object_set_new(a->body, "ends_at", json_string(arg));
		break;
	case O_PARKED:
		json_object_set_new(a->prereq, "parked", json_true());
		break;
	case O_IGNITION:
		json_object_set_new(a->prereq, "ignition_off", json_true());
		break;
	case O_BATTERY:
		return set_num(a->prereq, "battery_min_pct", arg, "battery-min", 0, 100);
	case O_STORAGE:
		return set_num(a->prereq, "storage_min_bytes", arg, "storage-min", 0, 1e15);
	case O_VTIMEOUT:
		return set_num(a->policy, "vehicle_timeout_s", arg, "vehicle-timeout", 1, 31536000);
	case O_PHASE: {
		json_t *ph = parse_phase(arg);
		if (!ph)
			return cli_usage_error("campaign",
			                       "--phase '%s': count=N or percent=P, then "
			                       ",success=R ,error=R",
			                       arg);
		json_t *phases = json_object_get(a->body, "phases");
		if (!phases)
			json_object_set_new(a->body, "phases", phases = json_array());
		rc = json_array_append_new(phases, ph) ? PQ_ERR_NOMEM : PQ_OK;
		break;
	}
	case O_SPEC:
		a->spec = arg;
		break;
	case O_START:
		a->start = true;
		break;
	case O_TIMEOUT:
		return cli_opt_long(a->c, "timeout", arg, 1, 31536000L, &a->timeout);
	default:
		return cli_usage_error("campaign", "bad option");
	}
	return rc == PQ_OK ? CLI_EXIT_OK : cli_error(PQ_ERR_NOMEM, "campaign");
}

/* ---- display --------------------------------------------------------------------------- */

void campaign_counts_text(const json_t *counts, char *out, size_t cap)
{
	const char *k;
	json_t *v;
	size_t n = 0;
	out[0] = '\0';
	json_object_foreach((json_t *)counts, k, v) if (json_integer_value(v) > 0 && n < cap) n +=
	    (size_t)snprintf(out + n, cap - n, "%s%s %lld", n ? ", " : "", k,
	                     (long long)json_integer_value(v));
	if (!out[0])
		snprintf(out, cap, "no deployments");
}

void campaign_print(const json_t *cp)
{
	char made[24], started[24], counts[512];
	size_t i;
	json_t *ph, *r;
	cli_time(cli_jint(cp, "created_ms"), made);
	cli_time(cli_jint(cp, "started_ms"), started);
	printf("campaign  %s\nname      %s\nstate     %s%s%s\n", cli_jstr(cp, "id"),
	       cli_jstr(cp, "name"), cli_jstr(cp, "state"),
	       *cli_jstr(cp, "pause_reason") ? ": " : "", cli_jstr(cp, "pause_reason"));
	printf("created   %s UTC by %s; started %s\n", made, cli_jstr(cp, "created_by"), started);
	printf("releases ");
	json_array_foreach(json_object_get(cp, "release_ids"), i, r)
	    printf(" %s", json_string_value(r));
	char *target = json_dumps(json_object_get(cp, "target"), JSON_COMPACT | JSON_SORT_KEYS);
	printf("\ntarget    %s\n", target ? target : "?");
	free(target);
	campaign_counts_text(json_object_get(cp, "counts"), counts, sizeof(counts));
	printf("vehicles  %lld: %s\n", cli_jint(cp, "total"), counts);
	json_array_foreach(json_object_get(cp, "phases"), i, ph)
	{
		campaign_counts_text(json_object_get(ph, "counts"), counts, sizeof(counts));
		printf("phase %lld   %s, %lld vehicle(s): %s\n", cli_jint(ph, "phase"),
		       json_is_true(json_object_get(ph, "active")) ? "active" : "waiting",
		       cli_jint(ph, "size"), counts);
	}
}

static void print_list(const json_t *j)
{
	size_t i;
	json_t *cp;
	printf("%-36s %-24s %-9s %5s %6s %9s %6s  %s\n", "ID", "NAME", "STATE", "PHASE", "TOTAL",
	       "COMPLETED", "FAILED", "CREATED (UTC)");
	json_array_foreach(json_object_get(j, "campaigns"), i, cp)
	{
		char t[24];
		json_t *n = json_object_get(cp, "counts");
		cli_time(cli_jint(cp, "created_ms"), t);
		printf("%-36s %-24.24s %-9s %5lld %6lld %9lld %6lld  %s\n", cli_jstr(cp, "id"),
		       cli_jstr(cp, "name"), cli_jstr(cp, "state"), cli_jint(cp, "current_phase"),
		       cli_jint(cp, "total"), cli_jint(n, "completed"),
		       cli_jint(n, "failed") + cli_jint(n, "rolled_back") +
		           cli_jint(n, "timed_out"),
		       t);
	}
	printf("%lld campaign(s)\n", cli_jint(j, "total"));
}

/* ---- subcommands ----------------------------------------------------------------------- */

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	return n >= 1 && n <= 64 && strspn(id, "0123456789abcdefABCDEF-") == n;
}

/* The body: --spec's file, or what the options built. */
static int create_body(args *a, json_t **body)
{
	if (a->spec && a->built)
		return cli_usage_error("campaign", "create: --spec FILE or the options, not both");
	if (a->spec)
		return cli_read_json_object(a->spec, SPEC_MAX, body);
	if (!json_object_get(a->body, "name") || !json_object_get(a->body, "release_ids"))
		return cli_usage_error("campaign", "create: --name and --release are required "
		                                   "(or --spec FILE)");
	if (json_object_size(a->prereq))
		json_object_set(a->policy, "prerequisites", a->prereq);
	if (json_object_size(a->target))
		json_object_set(a->body, "target", a->target);
	if (json_object_size(a->policy))
		json_object_set(a->body, "policy", a->policy);
	*body = json_incref(a->body);
	return CLI_EXIT_OK;
}

static int action(cli_conn *c, const char *id, const char *act, json_t **out)
{
	char path[200], what[64];
	snprintf(path, sizeof(path), "/api/v1/campaigns/%s/%s", id, act);
	snprintf(what, sizeof(what), "campaign %s", act);
	return cli_call(c, "POST", path, NULL, 200, out, what);
}

static int do_create(cli_conn *c, args *a)
{
	json_t *body = NULL, *cp = NULL;
	int ex = create_body(a, &body);
	if (ex != CLI_EXIT_OK)
		return ex;
	ex = cli_call(c, "POST", "/api/v1/campaigns", body, 201, &cp, "campaign create");
	json_decref(body);
	if (ex == CLI_EXIT_OK && a->start) {
		char id[80];
		snprintf(id, sizeof(id), "%s", cli_jstr(cp, "id"));
		json_decref(cp);
		ex = action(c, id, "start", &cp);
	}
	return ex == CLI_EXIT_OK ? cli_show(c, cp, campaign_print) : ex;
}

static int do_list(cli_conn *c)
{
	char path[160];
	json_t *j = NULL;
	snprintf(path, sizeof(path), "/api/v1/campaigns?limit=%ld&offset=%ld",
	         c->limit ? c->limit : 50, c->offset);
	int ex = cli_call(c, "GET", path, NULL, 200, &j, "campaign list");
	return ex == CLI_EXIT_OK ? cli_show(c, j, print_list) : ex;
}

static int run(cli_conn *c, args *a, const char *sub, const char *id)
{
	json_t *j = NULL;
	char path[160];
	int ex;
	if (!strcmp(sub, "create"))
		return do_create(c, a);
	if (!strcmp(sub, "list"))
		return do_list(c);
	if (!id_ok(id))
		return cli_usage_error("campaign", "%s: '%.64s' is not a campaign id", sub, id);
	if (!strcmp(sub, "watch"))
		return campaign_watch(c, id, a->timeout);
	if (!strcmp(sub, "show")) {
		snprintf(path, sizeof(path), "/api/v1/campaigns/%s", id);
		ex = cli_call(c, "GET", path, NULL, 200, &j, "campaign show");
	} else {
		ex = action(c, id, sub, &j);
	}
	return ex == CLI_EXIT_OK ? cli_show(c, j, campaign_print) : ex;
}

static const char *const subs[] = {"create", "list",   "show",   "start",
                                   "pause",  "resume", "cancel", "watch"};

int cmd_campaign(int argc, char **argv)
{
	cli_conn c;
	cli_conn_init(&c, "campaign");
	args a = {.c = &c,
	          .body = json_object(),
	          .target = json_object(),
	          .policy = json_object(),
	          .prereq = json_object()};
	int ex = CLI_EXIT_USAGE;
	size_t k = 0;
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		ex = argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
		goto out;
	}
	while (k < sizeof(subs) / sizeof(subs[0]) && strcmp(argv[1], subs[k]) != 0)
		k++;
	if (k == sizeof(subs) / sizeof(subs[0])) {
		ex = cli_usage_error("campaign",
		                     "unknown subcommand '%s' (create, list, show, "
		                     "start, pause, resume, cancel, watch)",
		                     argv[1]);
		goto out;
	}
	if (!a.body || !a.target || !a.policy || !a.prereq) {
		ex = cli_error(PQ_ERR_NOMEM, "campaign");
		goto out;
	}
	int npos = k < 2 ? 0 : 1;
	ex = cli_parse(&c, argc - 1, argv + 1, opts, on_option, &a, usage, npos, npos);
	if (ex < 0) {
		ex = run(&c, &a, subs[k], npos ? argv[1 + optind] : NULL);
		cli_conn_close(&c);
	}
out:
	json_decref(a.body);
	json_decref(a.target);
	json_decref(a.policy);
	json_decref(a.prereq);
	return ex;
}
