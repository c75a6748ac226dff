/* cmd_broker.c: `pqota broker config`: mosquitto configuration for a deployment's PKI. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "cli/cli.h"
#include "crypto/pki.h"
#include "crypto/profile.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota broker config --pki DIR --out DIR [options]\n"
	    "\n"
	    "config: write a Debian mosquitto 2.0 configuration for the deployment whose PKI is\n"
	    "DIR: OUT/mosquitto.conf (one TLS 1.3 listener, client certificates required, CN =\n"
	    "username), OUT/mosquitto.acl (a vehicle may use only oem/<its VIN>/# and read\n"
	    "oem/broadcast/#; the server identity may use oem/#), OUT/openssl.cnf (the profile's\n"
	    "TLS group) and OUT/run-broker.sh (starts mosquitto on pqota's OpenSSL with it).\n"
	    "  --pki DIR            the PKI ('pqota keys init'): ca/ca.crt, "
	    "broker/broker.{crt,key}\n"
	    "  --out DIR            where to write the files (created if missing)\n"
	    "  --listen HOST:PORT   the listener (default %s:%d; 0.0.0.0:%d for every address)\n"
	    "  --profile ID|NAME    TLS profile whose key-exchange group the broker accepts\n"
	    "                       (default: the PKI's, from DIR/pki.json)\n"
	    "  --server-cn CN       the server's MQTT identity, granted oem/# (default %s,\n"
	    "                       the CN of DIR/server-client/client.crt)\n"
	    "  --user NAME          add 'user NAME': mosquitto started as root switches to NAME\n"
	    "                       (default: no line, so it switches to 'mosquitto', which must\n"
	    "                       then be able to read the broker key; see docs/broker.md)\n"
	    "  --log-dest stderr|file   log to stderr (default) or to OUT/mosquitto.log\n"
	    "  --persistence        keep sessions and retained messages in OUT/data/\n"
	    "  --openssl-libdir DIR LD_LIBRARY_PATH for run-broker.sh (default: the directory of\n"
	    "                       the OpenSSL this pqota runs on; '' for the system's)\n"
	    "  --memory-limit MIB   the broker's total memory limit (default %llu MiB)\n"
	    "  --vehicle-topic T    also let each vehicle publish on oem/<VIN>/T (repeatable,\n"
	    "                       at most %d; by default only the protocol's topics)\n"
	    "  --force              replace existing files\n"
	    "\n"
	    "Start the broker with OUT/run-broker.sh, then check it with\n"
	    "  pqota tls check HOST:PORT --ca DIR/ca/ca.crt --cert DIR/vehicles/VIN/client.crt \\\n"
	    "      --key DIR/vehicles/VIN/client.key\n",
	    PQ_BROKER_DEFAULT_HOST, PQ_BROKER_DEFAULT_PORT, PQ_BROKER_DEFAULT_PORT,
	    PQ_SERVER_CLIENT_CN, (unsigned long long)(PQ_BROKER_MEMORY >> 20),
	    PQ_BROKER_TOPICS_MAX);
}

/* Warns when the user mosquitto will run as cannot read the broker key. */
static void key_note(const pq_broker_opts *o, const pq_broker_result *r)
{
	if (geteuid() != 0) {
		/* started by this user, mosquitto stays this user */
		if (!r->broker_key_checked)
			fprintf(stderr,
			        "pqota: warning: this user cannot read %s; mosquitto started "
			        "by it cannot either\n",
			        r->broker_key);
		return;
	}
	const char *user = o->user ? o->user : "mosquitto";
	const struct passwd *pw = getpwnam(user);
	if ((r->broker_key_mode & 0004) ||
	    (pw && (pw->pw_uid == 0 || pw->pw_uid == r->broker_key_uid)))
		return;
	fprintf(stderr,
	        "pqota: warning: mosquitto started as root switches to user '%s', which cannot "
	        "read\n  %s (mode %04o):\n  'chown %s %s' (its directory is 0711),\n  "
	        "or --user root for local tests (docs/broker.md)\n",
	        user, r->broker_key, (unsigned)r->broker_key_mode, user, r->broker_key);
}

/* Storage for the parsed --listen and --vehicle-topic. */
typedef struct {
	char host[256], port[16];
	const char *topics[PQ_BROKER_TOPICS_MAX + 1];
	size_t n_topics;
} listen_addr;

/* --listen HOST:PORT (port 1..65535) into o, the host kept in l. */
static int parse_listen(const char *s, pq_broker_opts *o, listen_addr *l)
{
	long p;
	int rc = cli_split_hostport(s, PQ_BROKER_DEFAULT_HOST, l->host, sizeof(l->host), l->port,
	                            sizeof(l->port));
	if (rc == PQ_OK)
		rc = cli_parse_long(l->port, 1, 65535, &p);
	if (rc != PQ_OK)
		return rc;
	o->listen_host = l->host;
	o->port = (int)p;
	return PQ_OK;
}

/* One option of broker config into *o: CLI_EXIT_OK, or a usage error's exit code (printed). */
static int config_option(int c, pq_broker_opts *o, listen_addr *l)
{
	switch (c) {
	case 'P':
		o->pki_dir = optarg;
		break;
	case 'o':
		o->out_dir = optarg;
		break;
	case 'l':
		if (parse_listen(optarg, o, l) != PQ_OK)
			return cli_usage_error(
			    "broker", "--listen '%s': expected HOST:PORT with a port in 1..65535",
			    optarg);
		break;
	case 'p':
		if (pq_profile_find(optarg, &o->profile) != PQ_OK)
			return cli_usage_error("broker", "%s", pq_err_detail());
		break;
	case 's':
		if (pq_broker_server_cn_check(optarg) != PQ_OK)
			return cli_usage_error("broker", "%s", pq_err_detail());
		o->server_cn = optarg;
		break;
	case 'u':
		o->user = optarg;
		break;
	case 'L':
		if (strcmp(optarg, "stderr") == 0)
			o->log_dest = PQ_BROKER_LOG_STDERR;
		else if (strcmp(optarg, "file") == 0)
			o->log_dest = PQ_BROKER_LOG_FILE;
		else
			return cli_usage_error("broker", "--log-dest takes stderr or file");
		break;
	case 'k':
		o->persistence = true;
		break;
	case 'O':
		o->openssl_libdir = optarg;
		break;
	case 'f':
		o->force = true;
		break;
	case 'M': {
		char *end = NULL;
		errno = 0;
		unsigned long long mib = strtoull(optarg, &end, 10);
		if (errno || !end || *end || optarg[0] == '-' || mib < 16 || mib > (1ull << 24))
			return cli_usage_error("broker", "--memory-limit '%s': MiB in 16..%llu",
			                       optarg, 1ull << 24);
		o->memory_limit = mib << 20;
		break;
	}
	case 'T':
		if (l->n_topics == PQ_BROKER_TOPICS_MAX)
			return cli_usage_error("broker", "at most %d --vehicle-topic",
			                       PQ_BROKER_TOPICS_MAX);
		if (pq_broker_vehicle_topic_check(optarg) != PQ_OK)
			return cli_usage_error("broker", "%s", pq_err_detail());
		l->topics[l->n_topics++] = optarg;
		o->vehicle_topics = l->topics;
		break;
	default:
		return cli_usage_error("broker", "bad option");
	}
	return CLI_EXIT_OK;
}

/* Parses broker config's arguments into *o (--listen's host in *l); true to go on, false to
 * exit with *exit_code (help, usage errors). */
static bool config_parse(int argc, char **argv, pq_broker_opts *o, listen_addr *l, int *exit_code)
{
	static const struct option lo[] = {{"pki", required_argument, NULL, 'P'},
	                                   {"out", required_argument, NULL, 'o'},
	                                   {"listen", required_argument, NULL, 'l'},
	                                   {"profile", required_argument, NULL, 'p'},
	                                   {"server-cn", required_argument, NULL, 's'},
	                                   {"user", required_argument, NULL, 'u'},
	                                   {"log-dest", required_argument, NULL, 'L'},
	                                   {"persistence", no_argument, NULL, 'k'},
	                                   {"openssl-libdir", required_argument, NULL, 'O'},
	                                   {"force", no_argument, NULL, 'f'},
	                                   {"memory-limit", required_argument, NULL, 'M'},
	                                   {"vehicle-topic", required_argument, NULL, 'T'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			*exit_code = CLI_EXIT_OK;
			return false;
		}
		*exit_code = config_option(c, o, l);
		if (*exit_code != CLI_EXIT_OK)
			return false;
	}
	if (optind != argc)
		*exit_code = cli_usage_error("broker", "unexpected argument '%s'", argv[optind]);
	else if (!o->pki_dir || !o->out_dir)
		*exit_code =
		    cli_usage_error("broker", "broker config needs --pki DIR and --out DIR");
	else
		return true;
	return false;
}

/* What was written and how the broker is set up. */
static void config_report(const pq_broker_opts *o, const pq_broker_result *r)
{
	for (int i = 0; i < PQ_BROKER_NFILES; i++)
		printf("wrote %s\n", r->files[i]);
	printf("listener      %s:%d, TLS 1.3, client certificates from %s/ca/ca.crt\n",
	       o->listen_host ? o->listen_host : PQ_BROKER_DEFAULT_HOST,
	       o->port ? o->port : PQ_BROKER_DEFAULT_PORT, r->pki_dir);
	printf("key exchange  %s (profile %d, %s)\n", r->profile->tls_group, r->profile->id,
	       r->profile->name);
	printf("server CN     %s (granted oem/#)\n", r->server_cn);
	printf("OpenSSL       %s\n", r->openssl_libdir[0] ? r->openssl_libdir : "the system's");
	printf("start         %s/%s\n", r->out_dir, PQ_BROKER_RUN);
}

/* Warnings about a configuration that works, but not as one may expect. */
static void config_warnings(const pq_broker_opts *o, const pq_broker_result *r)
{
	if (!r->profile->pq_kex)
		fprintf(stderr,
		        "pqota: warning: profile %d's group %s is classical: NOT "
		        "quantum-safe\n",
		        r->profile->id, r->profile->tls_group);
	if (r->pki_profile && r->pki_profile != r->profile &&
	    strcmp(r->pki_profile->tls_group, r->profile->tls_group) != 0)
		fprintf(stderr,
		        "pqota: warning: the PKI was made for profile %d (%s); clients of that "
		        "profile offer\n  only %s, which this broker refuses\n",
		        r->pki_profile->id, r->pki_profile->name, r->pki_profile->tls_group);
	if (r->server_cert_cn[0] && strcmp(r->server_cert_cn, r->server_cn) != 0)
		fprintf(stderr,
		        "pqota: warning: %s/server-client/client.crt has CN '%s', but the ACL "
		        "grants oem/# to '%s'\n",
		        r->pki_dir, r->server_cert_cn, r->server_cn);
	key_note(o, r);
}

static int broker_config(int argc, char **argv)
{
	pq_broker_opts o = {0};
	listen_addr l = {0};
	int ex;
	if (!config_parse(argc, argv, &o, &l, &ex))
		return ex;
	pq_broker_result *r = calloc(1, sizeof(*r));
	if (!r)
		return cli_error(PQ_ERR_NOMEM, "broker config");
	int rc = pq_broker_config_write(&o, r);
	if (rc == PQ_OK) {
		config_report(&o, r);
		config_warnings(&o, r);
		ex = CLI_EXIT_OK;
	} else {
		ex = cli_error(rc, "broker config");
	}
	free(r);
	return ex;
}

int cmd_broker(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "config") == 0)
		return broker_config(argc - 1, argv + 1);
	fprintf(stderr, "pqota: unknown broker command '%s'\n", argv[1]);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
