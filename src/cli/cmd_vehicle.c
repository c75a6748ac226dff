/* cmd_vehicle.c: `pqota vehicle`, the VMG agent of one simulated vehicle (src/agent). The
 * agent library never prints: this command owns the terminal (the driver's consent prompt
 * on stdout, answered on stdin) and the format of the log records on stderr. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "core/fileio.h"
#include "core/log.h"
#include "vehicle/model.h"

#define PROMPT_TARGETS 20 /* targets listed at the prompt */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota vehicle --vin VIN --pki DIR --broker HOST:PORT --state DIR [options]\n"
	    "       pqota vehicle register|import|list|show|vci|readiness ... (the operator's\n"
	    "       commands through the server's API: pqota vehicle list --help)\n"
	    "\n"
	    "The vehicle's gateway (VMG) agent: connects to the MQTT broker (TLS 1.3, the vehicle\n"
	    "certificate DIR/vehicles/VIN/client.{crt,key}, the PKI's key-exchange group), sends\n"
	    "its wake-up and VCI, answers campaigns, readiness, cancel and diagnostic requests,\n"
	    "and installs campaigns: Uptane verification, HTTPS downloads (resumed after a\n"
	    "restart), hybrid key unwrap and decryption, delta decoding with full-package\n"
	    "fallback, programming of the simulated zone gateways' ECUs over DoIP/UDS (zones in\n"
	    "parallel), verification by VCI, and rollback of every ECU on any failure.\n"
	    "\n"
	    "  --vin VIN                the vehicle\n"
	    "  --pki DIR                its PKI: ca/ca.crt, vehicles/VIN/client.{crt,key},\n"
	    "                           vehicles/VIN/kem-{x25519,ml-kem-768}.key, pki.json\n"
	    "  --broker HOST:PORT       the MQTT broker\n"
	    "  --state DIR              state directory (created, mode 0700): boot counter,\n"
	    "                           trusted Uptane roots and versions, installed images,\n"
	    "                           the campaign in progress, the simulated ECUs\n"
	    "  --model FILE             vehicle model (JSON, docs/vehicle.md; default: 5 zones\n"
	    "                           x 20 ECUs, ECU_001..ECU_100)\n"
	    "  --image-root FILE        trusted image repository root.json  (first start only:\n"
	    "  --director-root FILE     trusted director root.json           kept in the state)\n"
	    "  --consent MODE           auto (default), decline, postpone:SECONDS (postpone the\n"
	    "                           first offer of a campaign, accept the next) or\n"
	    "                           interactive (ask on the terminal: y/n/p)\n"
	    "  --battery PCT            battery charge for the readiness checks (model: 90)\n"
	    "  --not-parked             the vehicle is not parked\n"
	    "  --ignition-on            the ignition is on\n"
	    "  --storage-free BYTES     free storage for downloads (model: 8 GiB; telemetry:\n"
	    "                           the state directory's file system)\n"
	    "  --telemetry-period S     publish telemetry every S seconds (default 60, 0: none)\n"
	    "  --fail-program ECU,..    the simulated ECUs' check routine fails (NRC 0x72)\n"
	    "  --corrupt-block ECU,..   one transferred block is corrupted in the ECUs' memory\n"
	    "  --deny-security ECU,..   security access is refused (NRC 0x35)\n"
	    "  --slow-flash ECU,..      each transferred block takes 20 ms (a programming\n"
	    "                           that lasts seconds; tests of interrupted installs)\n"
	    "  --max-rate BYTES         limit downloads to BYTES per second (tests of resume)\n"
	    "  --delta-memory MIB       memory applying a delta may use (default 64, at least 8)\n"
	    "  --once                   exit after the first campaign's final outcome: 0 when\n"
	    "                           installed and verified, 1 when declined, cancelled,\n"
	    "                           failed or rolled back\n"
	    "  --status-file FILE       JSON summary of the campaign after each phase\n"
	    "  --log FILE               JSON lines: every log record and event\n"
	    "  --log-level LEVEL        stderr: debug, info (default), warn, error, off\n"
	    "  --help                   this text\n"
	    "\n"
	    "SIGINT/SIGTERM stop the agent cleanly; a download in progress resumes at the next\n"
	    "start. Exit status: 0 (stopped, or --once and the campaign completed), 1 (--once and\n"
	    "the campaign did not complete), 2 (set-up error), 64 (usage).\n");
}

static void on_signal(int sig)
{
	(void)sig;
	ag_request_stop();
}

/* ---- the driver: --consent interactive -------------------------------------------------- */

typedef struct {
	char line[256]; /* the answer typed so far */
	size_t line_len;
	bool eof; /* no more input: every question is answered "postpone" */
} driver;

static void show_offer(const ag_offer *o)
{
	printf("\npqota vehicle %s: campaign %s%s%s%s, targets:", o->vin, o->campaign_id,
	       o->name ? " (" : "", o->name ? o->name : "", o->name ? ")" : "");
	for (size_t i = 0; i < o->n_targets; i++) {
		const ag_offer_target *t = &o->targets[i];
		if (i >= PROMPT_TARGETS) {
			printf(" ... (%zu in all)", o->n_targets);
			break;
		}
		printf(" %s %s -> %s", t->ecu_id ? t->ecu_id : "?",
		       t->from_version ? t->from_version : "?",
		       t->to_version ? t->to_version : "?");
	}
	printf("\naccept campaign %s? [y/n/p] ", o->campaign_id);
	fflush(stdout);
}

static ag_answer no_input(driver *d)
{
	d->eof = true;
	pq_log(PQ_LOG_WARN, "vehicle", "no terminal input: postponing");
	return AG_ANSWER_POSTPONE;
}

/* ag_consent_fn: the offer on stdout, the answer (a line starting with y, n or p) on stdin;
 * any other line shows the question again. */
static ag_answer ask_driver(void *user, const ag_offer *o, bool input)
{
	driver *d = user;
	char buf[128];
	if (!input) {
		show_offer(o);
		return d->eof ? AG_ANSWER_POSTPONE : AG_ANSWER_PENDING;
	}
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return AG_ANSWER_PENDING;
	if (n <= 0)
		return no_input(d);
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (d->line_len < sizeof(d->line) - 1)
				d->line[d->line_len++] = buf[i];
			continue;
		}
		char c = (char)(d->line_len ? d->line[0] : '\0');
		d->line_len = 0;
		if (c == 'y' || c == 'Y')
			return AG_ANSWER_ACCEPT;
		if (c == 'n' || c == 'N')
			return AG_ANSWER_DECLINE;
		if (c == 'p' || c == 'P')
			return AG_ANSWER_POSTPONE;
		show_offer(o);
	}
	return AG_ANSWER_PENDING;
}

/* ---- log records ------------------------------------------------------------------------ */

typedef struct {
	pq_log_level stderr_level;
} log_ctx;

/* With --log: every record (info and above) goes to the agent's log file, those at
 * --log-level to stderr, in pq_log's own format. */
static void log_sink(pq_log_level level, const char *component, const char *msg, void *user)
{
	const log_ctx *c = user;
	if ((unsigned)level > PQ_LOG_ERROR)
		return;
	if (level >= c->stderr_level)
		pq_log_write_stderr(level, component, msg);
	ag_log_record(pq_log_level_name(level), component, msg);
}

static int parse_consent(const char *s, ag_opts *o)
{
	long secs;
	if (!strcmp(s, "auto"))
		o->consent = AG_CONSENT_AUTO;
	else if (!strcmp(s, "decline"))
		o->consent = AG_CONSENT_DECLINE;
	else if (!strcmp(s, "interactive"))
		o->consent = AG_CONSENT_INTERACTIVE;
	else if (!strncmp(s, "postpone:", 9) && cli_parse_long(s + 9, 1, 2592000, &secs) == 0) {
		o->consent = AG_CONSENT_POSTPONE;
		o->postpone_s = (int)secs;
	} else
		return -1;
	return 0;
}

/* `pqota vehicle model --vin VIN [--out FILE]`: the default model of a VIN as JSON (the
 * format --model reads), to edit for a test or a demo. */
static int cmd_model(int argc, char **argv)
{
	const char *vin = NULL, *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--vin") && i + 1 < argc)
			vin = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: pqota vehicle model --vin VIN [--out FILE]\n\n"
			       "Writes the default vehicle model of VIN (5 zones x 20 ECUs) as "
			       "JSON to\n"
			       "FILE or stdout: the format of `pqota vehicle --model`.\n");
			return 0;
		} else {
			fprintf(stderr, "pqota vehicle model: unexpected '%s' (see --help)\n",
			        argv[i]);
			return 64;
		}
	}
	if (!vin) {
		fprintf(stderr, "pqota vehicle model: --vin is required\n");
		return 64;
	}
	vm_model m;
	char tmp[] = "/tmp/pqota-model-XXXXXX";
	int fd = -1, rc = vm_model_default(vin, &m);
	if (rc != PQ_OK) {
		fprintf(stderr, "pqota vehicle model: %s\n", pq_err_detail());
		return 2;
	}
	if (out) {
		rc = vm_model_save(&m, out);
	} else if ((fd = mkstemp(tmp)) < 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	} else {
		close(fd);
		char *text = NULL;
		size_t len = 0;
		rc = vm_model_save(&m, tmp);
		if (rc == PQ_OK)
			rc = pq_file_read(tmp, 64u * 1024u * 1024u, &text, &len);
		if (rc == PQ_OK && fwrite(text, 1, len, stdout) != len)
			rc = pq_err_set(PQ_ERR_IO, "stdout: %s", strerror(errno));
		free(text);
		unlink(tmp);
	}
	vm_model_free(&m);
	if (rc != PQ_OK) {
		fprintf(stderr, "pqota vehicle model: %s\n", pq_err_detail());
		return 2;
	}
	return 0;
}

/* ---- the agent ------------------------------------------------------------------------- */

enum {
	O_VIN = 256,
	O_PKI,
	O_BROKER,
	O_STATE,
	O_MODEL,
	O_CONSENT,
	O_BATTERY,
	O_NOT_PARKED,
	O_IGNITION_ON,
	O_STORAGE,
	O_FAIL_PROGRAM,
	O_CORRUPT,
	O_DENY,
	O_SLOW_FLASH,
	O_IMAGE_ROOT,
	O_DIRECTOR_ROOT,
	O_ONCE,
	O_LOG,
	O_LOG_LEVEL,
	O_STATUS,
	O_MAX_RATE,
	O_DELTA_MEMORY,
	O_TELEMETRY,
};
static const struct option agent_options[] = {
    {"vin", required_argument, NULL, O_VIN},
    {"pki", required_argument, NULL, O_PKI},
    {"broker", required_argument, NULL, O_BROKER},
    {"state", required_argument, NULL, O_STATE},
    {"model", required_argument, NULL, O_MODEL},
    {"consent", required_argument, NULL, O_CONSENT},
    {"battery", required_argument, NULL, O_BATTERY},
    {"not-parked", no_argument, NULL, O_NOT_PARKED},
    {"ignition-on", no_argument, NULL, O_IGNITION_ON},
    {"storage-free", required_argument, NULL, O_STORAGE},
    {"fail-program", required_argument, NULL, O_FAIL_PROGRAM},
    {"corrupt-block", required_argument, NULL, O_CORRUPT},
    {"deny-security", required_argument, NULL, O_DENY},
    {"slow-flash", required_argument, NULL, O_SLOW_FLASH},
    {"image-root", required_argument, NULL, O_IMAGE_ROOT},
    {"director-root", required_argument, NULL, O_DIRECTOR_ROOT},
    {"once", no_argument, NULL, O_ONCE},
    {"log", required_argument, NULL, O_LOG},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"status-file", required_argument, NULL, O_STATUS},
    {"max-rate", required_argument, NULL, O_MAX_RATE},
    {"delta-memory", required_argument, NULL, O_DELTA_MEMORY},
    {"telemetry-period", required_argument, NULL, O_TELEMETRY},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* Applies one option to o or lc: -1 to go on, or the exit status. */
static int apply_option(int c, const char *arg, ag_opts *o, log_ctx *lc)
{
	long v;
	switch (c) {
	case O_VIN:
		o->vin = arg;
		return -1;
	case O_PKI:
		o->pki = arg;
		return -1;
	case O_BROKER:
		o->broker = arg;
		return -1;
	case O_STATE:
		o->state_dir = arg;
		return -1;
	case O_MODEL:
		o->model_path = arg;
		return -1;
	case O_CONSENT:
		if (parse_consent(arg, o) != 0)
			return cli_usage_error("vehicle",
			                       "--consent '%s': auto, decline, "
			                       "postpone:SECONDS (1..2592000) or interactive",
			                       arg);
		return -1;
	case O_BATTERY:
		if (cli_parse_long(arg, 0, 100, &v) != 0)
			return cli_usage_error("vehicle", "--battery '%s': 0..100", arg);
		o->battery_pct = (int)v;
		return -1;
	case O_NOT_PARKED:
		o->parked = 0;
		return -1;
	case O_TELEMETRY:
		if (cli_parse_long(arg, 0, 86400, &v) != 0)
			return cli_usage_error("vehicle",
			                       "--telemetry-period '%s': 0..86400 seconds", arg);
		o->telemetry_period_s = (int)v;
		return -1;
	case O_IGNITION_ON:
		o->ignition_off = 0;
		return -1;
	case O_STORAGE:
	case O_MAX_RATE: {
		char *end = NULL;
		errno = 0;
		long long b = strtoll(arg, &end, 10);
		if (!*arg || *end || errno || b < 0)
			return cli_usage_error("vehicle", "--%s '%s': bytes",
			                       c == O_STORAGE ? "storage-free" : "max-rate", arg);
		if (c == O_STORAGE)
			o->storage_free = b;
		else
			o->max_rate = b;
		return -1;
	}
	case O_DELTA_MEMORY: {
		long mib = 0;
		if (cli_parse_long(arg, 8, 1L << 16, &mib) != 0)
			return cli_usage_error("vehicle", "--delta-memory takes 8..65536 (MiB)");
		o->delta_memory = (int64_t)mib << 20;
		return -1;
	}
	case O_FAIL_PROGRAM:
		o->fail_program = arg;
		return -1;
	case O_CORRUPT:
		o->corrupt_block = arg;
		return -1;
	case O_DENY:
		o->deny_security = arg;
		return -1;
	case O_SLOW_FLASH:
		o->slow_flash = arg;
		return -1;
	case O_IMAGE_ROOT:
		o->image_root = arg;
		return -1;
	case O_DIRECTOR_ROOT:
		o->director_root = arg;
		return -1;
	case O_ONCE:
		o->once = true;
		return -1;
	case O_LOG:
		o->log_path = arg;
		return -1;
	case O_LOG_LEVEL:
		if (pq_log_level_parse(arg, &lc->stderr_level) != PQ_OK)
			return cli_usage_error("vehicle", "%s", pq_err_detail());
		return -1;
	case O_STATUS:
		o->status_file = arg;
		return -1;
	case 'h':
		usage(stdout);
		return CLI_EXIT_OK;
	default:
		return cli_usage_error("vehicle", "bad option");
	}
	return -1;
}

/* Parses the agent's options: -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, ag_opts *o, log_ctx *lc)
{
	int c, st;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", agent_options, NULL)) != -1)
		if ((st = apply_option(c, optarg, o, lc)) >= 0)
			return st;
	if (optind < argc)
		return cli_usage_error("vehicle", "unexpected argument '%s'", argv[optind]);
	if (!o->vin || !o->pki || !o->broker || !o->state_dir)
		return cli_usage_error("vehicle",
		                       "--vin, --pki, --broker and --state are required");
	if (!o->image_root != !o->director_root)
		return cli_usage_error("vehicle", "--image-root and --director-root go together");
	return -1;
}

/* Runs the agent until a signal (or, with --once, the campaign's outcome). */
static int run_agent(ag_opts *o, log_ctx *lc)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* without --log, pq_log's stderr default at --log-level; with it, the file wants every
	 * record from info up whatever stderr shows */
	if (o->log_path) {
		pq_log_set_sink(log_sink, lc);
		pq_log_set_level(lc->stderr_level > PQ_LOG_INFO ? PQ_LOG_INFO : lc->stderr_level);
	} else {
		pq_log_set_level(lc->stderr_level);
	}
	ag_outcome out = AG_OUT_NONE;
	int rc = ag_run(o, &out);
	pq_log_set_sink(NULL, NULL);
	if (rc != PQ_OK)
		return cli_error(rc, "vehicle %s", o->vin);
	if (o->once && out != AG_OUT_NONE)
		return out == AG_OUT_COMPLETED ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	return CLI_EXIT_OK;
}

int cmd_vehicle(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "model"))
		return cmd_model(argc - 1, argv + 1);
	if (argc > 1 && cmd_fleet_is_sub(argv[1])) /* the operator's commands (cmd_fleet.c) */
		return cmd_fleet(argc - 1, argv + 1);
	driver drv = {.eof = false};
	ag_opts o = {.battery_pct = -1,
	             .parked = -1,
	             .ignition_off = -1,
	             .storage_free = -1,
	             .telemetry_period_s = 60,
	             .consent_fn = ask_driver,
	             .consent_user = &drv,
	             .consent_fd = STDIN_FILENO};
	log_ctx lc = {.stderr_level = PQ_LOG_INFO};
	int st = parse_args(argc, argv, &o, &lc);
	return st >= 0 ? st : run_agent(&o, &lc);
}
