/* cmd_fleet.c: the operator's side of `pqota vehicle` (the agent itself: cmd_vehicle.c):
 * register one vehicle from its PKI directory, import many (a PKI directory or a CSV file,
 * fleet_import.c), list, show, ask for a VCI now, and its readiness now, through the
 * server's API (docs/api.md 6). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api.h"
#include "cli/cli.h"
#include "cli/fleet.h"
#include "core/time.h"
#include "crypto/pki.h"

#define VCI_WAIT_DEFAULT_S 30
#define READY_WAIT_MAX_S   30 /* the server's bound on ?wait */
#define VCI_POLL_MS        250

static const char *const subs[] = {"register", "import", "list", "show", "vci", "readiness"};

bool cmd_fleet_is_sub(const char *word)
{
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (word && strcmp(word, subs[i]) == 0)
			return true;
	return false;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pqota vehicle register [connection] VIN --pki DIR [--model M]\n"
	        "                              [--no-default-ecus]\n"
	        "       pqota vehicle import [connection] --pki DIR [VIN...] [--model M]\n"
	        "       pqota vehicle import [connection] --csv FILE [--pki DIR] [--model M]\n"
	        "       pqota vehicle list [connection] [--online | --offline] [--model M]\n"
	        "                          [--vin-prefix P] [--ecu ECU [--version V]]\n"
	        "                          [--limit N] [--offset N]\n"
	        "       pqota vehicle show [connection] VIN\n"
	        "       pqota vehicle vci [connection] VIN [--request [--timeout S]]\n"
	        "       pqota vehicle readiness [connection] VIN [--timeout S]\n"
	        "\n"
	        "The operator's commands on the fleet, through the server's API (docs/api.md 6);\n"
	        "`pqota vehicle --vin ...` runs a vehicle's agent instead.\n"
	        "\n"
	        "register: VIN's certificate and KEM public keys from DIR/vehicles/VIN/\n"
	        "  (client.crt, kem-x25519.pub, kem-ml-kem-768.pub; `pqota keys vehicle`).\n"
	        "import: many at once: every vehicle of DIR/vehicles (or the VINs given), or\n"
	        "  the rows of a CSV file with a header line naming its columns: vin\n"
	        "  (required), model, and certificate, kem_x25519_pub, kem_mlkem768_pub (file\n"
	        "  paths, relative to the CSV's directory; without them DIR/vehicles/VIN/).\n"
	        "  Vehicles registered already are reported and skipped.\n"
	        "list, show: the fleet, one vehicle with its ECUs.\n"
	        "vci: the latest VCI report; with --request, asks the vehicle for a new one now\n"
	        "  (over MQTT) and waits for it (--timeout, default 30 s).\n"
	        "readiness: asks the vehicle now (the server's default prerequisites) and prints\n"
	        "  its answer, check by check, waiting up to --timeout (at most 30 s); then\n"
	        "  the server's view: VMG version, latest VCI, outstanding campaign.\n"
	        "\n" CLI_CONN_USAGE "\n"
	        "An operator key for register, import, vci --request and readiness, any key\n"
	        "otherwise.\n"
	        "Exit status: 0 done (readiness: ready; vci --request: the vehicle answered;\n"
	        "import: every vehicle registered or there already), 1 not ready / no VCI in\n"
	        "time / some vehicles failed, 2 an error (readiness: also offline or no answer\n"
	        "in time), 64 usage.\n");
}

enum {
	O_PKI = CLI_O_NEXT,
	O_CSV,
	O_MODEL,
	O_NO_ECUS,
	O_ONLINE,
	O_OFFLINE,
	O_VIN_PREFIX,
	O_ECU,
	O_VERSION,
	O_REQUEST,
	O_TIMEOUT,
};

static const struct option opts[] = {
    CLI_CONN_OPTIONS,
    {"pki", required_argument, NULL, O_PKI},
    {"csv", required_argument, NULL, O_CSV},
    {"model", required_argument, NULL, O_MODEL},
    {"no-default-ecus", no_argument, NULL, O_NO_ECUS},
    {"online", no_argument, NULL, O_ONLINE},
    {"offline", no_argument, NULL, O_OFFLINE},
    {"vin-prefix", required_argument, NULL, O_VIN_PREFIX},
    {"ecu", required_argument, NULL, O_ECU},
    {"version", required_argument, NULL, O_VERSION},
    CLI_PAGE_OPTIONS,
    {"request", no_argument, NULL, O_REQUEST},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {NULL, 0, NULL, 0},
};

typedef struct {
	cli_conn *c;
	fleet_reg reg;
	const char *csv, *online, *prefix, *ecu, *version;
	bool request;
	long timeout;
} args;

static int on_option(void *user, int ch, const char *arg)
{
	args *a = user;
	switch (ch) {
	case O_PKI:
		a->reg.pki = arg;
		break;
	case O_CSV:
		a->csv = arg;
		break;
	case O_MODEL:
		a->reg.model = arg;
		break;
	case O_NO_ECUS:
		a->reg.no_default_ecus = true;
		break;
	case O_ONLINE:
	case O_OFFLINE:
		a->online = ch == O_ONLINE ? "true" : "false";
		break;
	case O_VIN_PREFIX:
		a->prefix = arg;
		break;
	case O_ECU:
		a->ecu = arg;
		break;
	case O_VERSION:
		a->version = arg;
		break;
	case O_REQUEST:
		a->request = true;
		break;
	case O_TIMEOUT:
		return cli_opt_long(a->c, "timeout", arg, 1, 3600, &a->timeout);
	default:
		return cli_usage_error("vehicle", "bad option");
	}
	return CLI_EXIT_OK;
}

/* ---- display --------------------------------------------------------------------------- */

static void print_vehicle_row(const json_t *v)
{
	char t[24];
	json_t *cp = json_object_get(v, "campaign");
	char camp[96] = "-";
	if (json_is_object(cp))
		snprintf(camp, sizeof(camp), "%.36s (%.24s)", cli_jstr(cp, "id"),
		         cli_jstr(cp, "state"));
	cli_time(cli_jint(v, "last_seen_ms"), t);
	printf("%-20s %-16s %-7s %-19s %-10s %s\n", cli_jstr(v, "vin"), cli_jstr(v, "model"),
	       json_is_true(json_object_get(v, "online")) ? "online" : "offline", t,
	       json_is_string(json_object_get(v, "vmg_version")) ? cli_jstr(v, "vmg_version") : "-",
	       camp);
}

static void print_list(const json_t *j)
{
	size_t i;
	json_t *v;
	printf("%-20s %-16s %-7s %-19s %-10s %s\n", "VIN", "MODEL", "STATE", "LAST SEEN (UTC)",
	       "VMG", "CAMPAIGN");
	json_array_foreach(json_object_get(j, "items"), i, v) print_vehicle_row(v);
	printf("%lld vehicle(s)\n", cli_jint(j, "total"));
}

static void print_registered(const json_t *v)
{
	printf("registered %s (model \"%s\"), certificate sha256 %s\n", cli_jstr(v, "vin"),
	       cli_jstr(v, "model"), cli_jstr(v, "certificate_sha256"));
}

static void print_ecu(const json_t *e)
{
	json_t *sw = json_object_get(e, "software");
	printf("  %-10s %-16s %4lld %-10s %-10s %-10s %-4s %s\n", cli_jstr(e, "ecu_id"),
	       cli_jstr(e, "hardware_id"), cli_jint(e, "zone"), cli_jstr(sw, "APP"),
	       cli_jstr(sw, "BOOT"), cli_jstr(sw, "CAL"), cli_jstr(e, "bank"),
	       cli_jstr(e, "serial"));
}

static void print_vehicle(const json_t *v)
{
	char seen[24], made[24];
	size_t i;
	json_t *e;
	cli_time(cli_jint(v, "last_seen_ms"), seen);
	cli_time(cli_jint(v, "created_ms"), made);
	printf("vehicle      %s\nmodel        %s\nstate        %s, last seen %s UTC, boot %lld\n",
	       cli_jstr(v, "vin"), cli_jstr(v, "model"),
	       json_is_true(json_object_get(v, "online")) ? "online" : "offline", seen,
	       cli_jint(v, "boot_seq"));
	printf("registered   %s UTC, certificate sha256 %s\n", made,
	       cli_jstr(v, "certificate_sha256"));
	printf("last VCI     %s\n",
	       json_is_object(json_object_get(v, "last_vci")) ? "reported" : "none yet");
	printf("ECUs         %zu\n", json_array_size(json_object_get(v, "ecus")));
	printf("  %-10s %-16s %4s %-10s %-10s %-10s %-4s %s\n", "ECU", "HARDWARE", "ZONE", "APP",
	       "BOOT", "CAL", "BANK", "SERIAL");
	json_array_foreach(json_object_get(v, "ecus"), i, e) print_ecu(e);
	printf("history      %lld version change(s)\n", cli_jint(v, "history_total"));
	json_array_foreach(json_object_get(v, "history"), i, e)
	{
		char t[24];
		cli_time(cli_jint(e, "at_ms"), t);
		printf("  %s  %-10s %-4s %s -> %s\n", t, cli_jstr(e, "ecu_id"),
		       cli_jstr(e, "software_type"), cli_jstr(e, "from"), cli_jstr(e, "to"));
	}
}

static void print_vci(const json_t *j)
{
	size_t i;
	json_t *e;
	const json_t *vci = json_object_get(j, "vci");
	if (json_is_object(json_object_get(vci, "report"))) /* a vci_report message as stored */
		vci = json_object_get(vci, "report");
	printf("VCI of %s: %zu ECU(s)%s%s\n", cli_jstr(j, "vin"),
	       json_array_size(json_object_get(vci, "ecus")),
	       json_is_string(json_object_get(j, "message_id")) ? ", answering " : "",
	       cli_jstr(j, "message_id"));
	printf("  %-10s %-16s %4s %-10s %-10s %-10s %-4s %s\n", "ECU", "HARDWARE", "ZONE", "APP",
	       "BOOT", "CAL", "BANK", "SERIAL");
	json_array_foreach(json_object_get(vci, "ecus"), i, e) print_ecu(e);
}

/* ---- subcommands ------------------------------------------------------------------------ */

static int vin_ok(const char *vin)
{
	if (pq_vin_check(vin) != PQ_OK)
		return cli_usage_error("vehicle", "'%.40s' is not a VIN", vin);
	return CLI_EXIT_OK;
}

static int do_register(cli_conn *c, const args *a, const char *vin)
{
	json_t *body = NULL, *v = NULL;
	int ex = vin_ok(vin);
	if (ex != CLI_EXIT_OK)
		return ex;
	if (!a->reg.pki)
		return cli_usage_error("vehicle", "register: --pki DIR is required");
	int rc = fleet_reg_body(&a->reg, vin, NULL, &body);
	if (rc != PQ_OK)
		return cli_error(rc, "vehicle register %s", vin);
	ex = cli_call(c, "POST", "/api/v1/vehicles", body, 201, &v, "vehicle register");
	json_decref(body);
	return ex == CLI_EXIT_OK ? cli_show(c, v, print_registered) : ex;
}

static int do_list(cli_conn *c, const args *a)
{
	char path[512], lim[24], off[24];
	json_t *j = NULL;
	snprintf(lim, sizeof(lim), "%ld", c->limit ? c->limit : 50);
	snprintf(off, sizeof(off), "%ld", c->offset);
	if (cli_path(path, sizeof(path), "/api/v1/vehicles", "limit", lim, "offset", off, "online",
	             a->online, "model", a->reg.model, "vin_prefix", a->prefix, "ecu_id", a->ecu,
	             "version", a->version, CLI_END) != PQ_OK)
		return cli_error(PQ_ERR_RANGE, "vehicle list");
	int ex = cli_call(c, "GET", path, NULL, 200, &j, "vehicle list");
	return ex == CLI_EXIT_OK ? cli_show(c, j, print_list) : ex;
}

static int do_show(cli_conn *c, const char *vin)
{
	char path[96];
	json_t *j = NULL;
	int ex = vin_ok(vin);
	if (ex != CLI_EXIT_OK)
		return ex;
	snprintf(path, sizeof(path), "/api/v1/vehicles/%s", vin);
	ex = cli_call(c, "GET", path, NULL, 200, &j, "vehicle show");
	return ex == CLI_EXIT_OK ? cli_show(c, j, print_vehicle) : ex;
}

/* The fleet list's row of one vehicle (last_vci_ms, vmg_version, campaign): *out, or an
 * exit code. */
static int fleet_row(cli_conn *c, const char *vin, json_t **out)
{
	char path[160];
	json_t *j = NULL, *v;
	size_t i;
	*out = NULL;
	/* ordered by VIN, the VIN itself comes first among those it prefixes */
	if (cli_path(path, sizeof(path), "/api/v1/vehicles", "vin_prefix", vin, "limit", "1",
	             CLI_END) != PQ_OK)
		return cli_error(PQ_ERR_RANGE, "vehicle %s", vin);
	int ex = cli_call(c, "GET", path, NULL, 200, &j, "vehicle");
	if (ex != CLI_EXIT_OK)
		return ex;
	json_array_foreach(json_object_get(j, "items"), i,
	                   v) if (strcmp(cli_jstr(v, "vin"), vin) == 0)
	{
		*out = json_incref(v);
		break;
	}
	json_decref(j);
	if (!*out) {
		fprintf(stderr, "pqota: error: vehicle %s: no such vehicle\n", vin);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* {"vin","vci"[,"message_id"]}: the stored VCI report, or an exit code. */
static int get_vci(cli_conn *c, const char *vin, const char *message_id, json_t **out)
{
	char path[128];
	json_t *vci = NULL;
	snprintf(path, sizeof(path), "/api/v1/vehicles/%s/vci", vin);
	int ex = cli_call(c, "GET", path, NULL, 200, &vci, "vehicle vci");
	if (ex != CLI_EXIT_OK)
		return ex;
	*out = json_pack("{s:s,s:o}", "vin", vin, "vci", vci);
	if (*out && message_id)
		json_object_set_new(*out, "message_id", json_string(message_id));
	return *out ? CLI_EXIT_OK : cli_error(PQ_ERR_NOMEM, "vehicle vci");
}

/* vci VIN --request: asks, then waits until a VCI report newer than the request is stored
 * (the fleet row's last_vci_ms). */
static int do_vci(cli_conn *c, const args *a, const char *vin)
{
	char path[128], mid[64];
	json_t *j = NULL;
	int ex = vin_ok(vin);
	if (ex != CLI_EXIT_OK)
		return ex;
	if (!a->request) {
		ex = get_vci(c, vin, NULL, &j);
		return ex == CLI_EXIT_OK ? cli_show(c, j, print_vci) : ex;
	}
	snprintf(path, sizeof(path), "/api/v1/vehicles/%s/vci-request", vin);
	ex = cli_call(c, "POST", path, NULL, 202, &j, "vehicle vci --request");
	if (ex != CLI_EXIT_OK)
		return ex;
	long long asked = cli_jint(j, "requested_ms");
	snprintf(mid, sizeof(mid), "%s", cli_jstr(j, "message_id"));
	json_decref(j);
	if (!c->json)
		fprintf(stderr, "pqota: asked %s for its VCI (message %s); waiting up to %ld s\n",
		        vin, mid, a->timeout);
	int64_t deadline = pq_mono_ms() + a->timeout * 1000;
	for (;;) {
		json_t *row = NULL;
		ex = fleet_row(c, vin, &row);
		if (ex != CLI_EXIT_OK)
			return ex;
		bool fresh = cli_jint(row, "last_vci_ms") >= asked;
		json_decref(row);
		if (fresh)
			break;
		if (pq_mono_ms() >= deadline) {
			fprintf(stderr, "pqota: %s did not answer within %ld s (offline?)\n", vin,
			        a->timeout);
			return CLI_EXIT_FAIL;
		}
		pq_sleep_ms(VCI_POLL_MS);
	}
	ex = get_vci(c, vin, mid, &j);
	return ex == CLI_EXIT_OK ? cli_show(c, j, print_vci) : ex;
}

/* The value of a check, as text. */
static void check_value(const json_t *v, char *out, size_t cap)
{
	if (json_is_integer(v))
		snprintf(out, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(out, cap, "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_real(v))
		snprintf(out, cap, "%g", json_real_value(v));
	else
		snprintf(out, cap, "-");
}

static void print_readiness(const json_t *r)
{
	size_t i;
	json_t *ch, *row = json_object_get(r, "vehicle"), *cp = json_object_get(row, "campaign");
	char v[32], t[24];
	cli_time(cli_jint(r, "answered_ms"), t);
	printf("%s: %s (the vehicle's answer at %s UTC, check %s)\n", cli_jstr(r, "vin"),
	       json_is_true(json_object_get(r, "ready")) ? "ready" : "not ready", t,
	       cli_jstr(r, "id"));
	json_array_foreach(json_object_get(r, "checks"), i, ch)
	{
		check_value(json_object_get(ch, "value"), v, sizeof(v));
		printf("  %-4s %-13s %-14s %s\n",
		       json_is_true(json_object_get(ch, "ok")) ? "ok" : "no", cli_jstr(ch, "name"),
		       v, cli_jstr(ch, "reason"));
	}
	if (!row)
		return;
	cli_time(cli_jint(row, "last_vci_ms"), t);
	printf("server: VMG %s, latest VCI %s UTC, %s%s\n",
	       json_is_string(json_object_get(row, "vmg_version")) ? cli_jstr(row, "vmg_version")
	                                                           : "unknown",
	       cli_jint(row, "last_vci_ms") ? t : "none",
	       json_is_object(cp) ? "campaign " : "no outstanding campaign",
	       json_is_object(cp) ? cli_jstr(cp, "id") : "");
}

/* readiness VIN: asks the vehicle now (POST .../readiness, waiting up to --timeout, at most
 * the server's 30 s) and prints its answer, with the server's view of the vehicle (the
 * fleet row) as "vehicle". 0 ready, 1 not ready, 2 no answer or an error. */
static int do_readiness(cli_conn *c, const args *a, const char *vin)
{
	char base[128], path[160], wait[24];
	json_t *r = NULL, *row = NULL;
	long status = 0;
	int ex = vin_ok(vin);
	if (ex != CLI_EXIT_OK)
		return ex;
	snprintf(wait, sizeof(wait), "%ld",
	         a->timeout < READY_WAIT_MAX_S ? a->timeout : READY_WAIT_MAX_S);
	snprintf(base, sizeof(base), "/api/v1/vehicles/%s/readiness", vin);
	if (cli_path(path, sizeof(path), base, "wait", wait, CLI_END) != PQ_OK)
		return cli_error(PQ_ERR_RANGE, "vehicle %s", vin);
	if (cli_api(c, "POST", path, NULL, &status, &r) != PQ_OK)
		return cli_error(PQ_ERR_IO, "vehicle readiness");
	if (status != 200) {
		if (status == 504)
			fprintf(stderr, "pqota: %s did not answer within %s s (check %s)\n", vin,
			        wait, cli_jstr(json_object_get(r, "readiness"), "id"));
		ex = status == 504 ? CLI_EXIT_ERROR : cli_api_error("vehicle readiness", status, r);
		json_decref(r);
		return ex;
	}
	bool ready = json_is_true(json_object_get(r, "ready"));
	if (fleet_row(c, vin, &row) == CLI_EXIT_OK) /* extra information: not needed */
		json_object_set_new(r, "vehicle", row);
	ex = cli_show(c, r, print_readiness);
	return ex == CLI_EXIT_OK && !ready ? CLI_EXIT_FAIL : ex;
}

int cmd_fleet(int argc, char **argv)
{
	cli_conn c;
	cli_conn_init(&c, "vehicle");
	args a = {.c = &c, .timeout = VCI_WAIT_DEFAULT_S};
	const char *sub = argv[0];
	bool is_import = !strcmp(sub, "import"), is_list = !strcmp(sub, "list");
	int ex = cli_parse(&c, argc, argv, opts, on_option, &a, usage, is_list || is_import ? 0 : 1,
	                   is_list     ? 0
	                   : is_import ? FLEET_IMPORT_MAX
	                               : 1);
	if (ex >= 0)
		return ex;
	const char *vin = argv[optind];
	if (!strcmp(sub, "register"))
		ex = do_register(&c, &a, vin);
	else if (is_import)
		ex = fleet_import(&c, &a.reg, a.csv, argv + optind, argc - optind);
	else if (is_list)
		ex = do_list(&c, &a);
	else if (!strcmp(sub, "show"))
		ex = do_show(&c, vin);
	else if (!strcmp(sub, "vci"))
		ex = do_vci(&c, &a, vin);
	else
		ex = do_readiness(&c, &a, vin);
	cli_conn_close(&c);
	return ex;
}
