/* cmd_tls.c: `pqota tls check HOST:PORT` (operator's probe) and `pqota tls serve`. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "cli/cli.h"
#include "core/fileio.h"
#include "crypto/cert.h"
#include "tls/probe.h"
#include "tls/tls.h"

/* Offered by `check` without --profile: every hybrid and pure ML-KEM group first, then
 * classical ones, so the verdict reflects what the server prefers. */
#define CHECK_ALL_GROUPS                                                                           \
	"SecP384r1MLKEM1024:SecP256r1MLKEM768:MLKEM1024:MLKEM768:MLKEM512:X25519:secp256r1:"       \
	"secp384r1"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pqota tls check HOST:PORT [options]\n"
	    "       pqota tls serve [options]\n"
	    "\n"
	    "check: connect, handshake and report protocol, key-exchange group, signature\n"
	    "algorithm, peer certificate and whether the connection is quantum-safe.\n"
	    "  --profile ID|NAME   offer only this profile's group (default: offer all groups,\n"
	    "                      hybrid X25519MLKEM768 first, and report what the server picks)\n"
	    "  --ca FILE           verify the server certificate against this CA\n"
	    "  --name NAME         SNI and the name to verify (default: HOST)\n"
	    "  --cert FILE --key FILE   client certificate for mutual TLS\n"
	    "  --timeout MS        connect and handshake timeout (default 5000)\n"
	    "  --wait MS           after the handshake, wait this long for a line or a\n"
	    "                      rejection from the server (default 300)\n"
	    "  Exit: 0 quantum-safe key exchange, 1 handshake fine but NOT quantum-safe,\n"
	    "        2 handshake or connection failed, 64 usage.\n"
	    "\n"
	    "serve: a minimal TLS 1.3 responder for diagnosing clients: it handshakes, sends one\n"
	    "line describing the session, and closes.\n"
	    "  --profile ID|NAME   TLS profile (default 2)\n"
	    "  --listen HOST:PORT  default 127.0.0.1:8443 (port 0: any free port)\n"
	    "  --pki DIR           use DIR/server/server.{crt,key} and DIR/ca/ca.crt\n"
	    "  --cert FILE --key FILE   server certificate and key (override --pki)\n"
	    "  --mtls              require a client certificate issued by the CA\n"
	    "  --ca FILE           CA for client certificates (default DIR/ca/ca.crt)\n"
	    "  --count N           exit after N connections (default: run until killed)\n"
	    "  --port-file FILE    write the listening port to FILE once ready\n");
}

struct tls_args {
	const pq_profile *profile;
	const char *ca, *cert, *key, *name, *pki, *listen, *port_file;
	long timeout, wait, count;
	bool mtls, profile_set;
};

static int parse(int argc, char **argv, struct tls_args *a, bool *help)
{
	static const struct option lo[] = {
	    {"profile", required_argument, NULL, 'p'}, {"ca", required_argument, NULL, 'a'},
	    {"cert", required_argument, NULL, 'c'},    {"key", required_argument, NULL, 'k'},
	    {"name", required_argument, NULL, 'n'},    {"pki", required_argument, NULL, 'P'},
	    {"listen", required_argument, NULL, 'l'},  {"port-file", required_argument, NULL, 'f'},
	    {"timeout", required_argument, NULL, 't'}, {"wait", required_argument, NULL, 'w'},
	    {"count", required_argument, NULL, 'N'},   {"mtls", no_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
	int c;
	*help = false;
	a->profile = pq_profile_by_id(PQ_PROFILE_DEFAULT);
	a->timeout = 5000;
	a->wait = 300;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (pq_profile_find(optarg, &a->profile) != PQ_OK)
				return cli_usage_error("tls", "%s", pq_err_detail());
			a->profile_set = true;
			break;
		case 'a':
			a->ca = optarg;
			break;
		case 'c':
			a->cert = optarg;
			break;
		case 'k':
			a->key = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'P':
			a->pki = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case 'f':
			a->port_file = optarg;
			break;
		case 't':
			if (cli_parse_long(optarg, 1, 600000, &a->timeout) != 0)
				return cli_usage_error("tls", "--timeout takes 1..600000 ms");
			break;
		case 'w':
			if (cli_parse_long(optarg, 0, 600000, &a->wait) != 0)
				return cli_usage_error("tls", "--wait takes 0..600000 ms");
			break;
		case 'N':
			if (cli_parse_long(optarg, 1, 1000000000, &a->count) != 0)
				return cli_usage_error("tls", "--count takes a positive number");
			break;
		case 'm':
			a->mtls = true;
			break;
		case 'h':
			*help = true;
			return 0;
		default:
			return cli_usage_error("tls", "bad option");
		}
	}
	if ((a->cert == NULL) != (a->key == NULL))
		return cli_usage_error("tls", "--cert and --key go together");
	return 0;
}

static int tls_check(int argc, char **argv)
{
	struct tls_args a = {0};
	char host[256], port[16];
	bool help;
	SSL_CTX *ctx = NULL;
	tls_probe_result res;
	int rc = parse(argc, argv, &a, &help);
	if (rc || help) {
		if (help)
			usage(stdout);
		return rc;
	}
	if (optind + 1 != argc)
		return cli_usage_error("tls", "tls check takes one HOST:PORT");
	if (cli_split_hostport(argv[optind], "127.0.0.1", host, sizeof(host), port, sizeof(port)))
		return cli_usage_error("tls", "'%s' is not HOST:PORT", argv[optind]);

	tls_opts o = {.profile = a.profile,
	              .extra_groups = a.profile_set ? NULL : CHECK_ALL_GROUPS,
	              .sigalgs = a.profile_set ? NULL : "",
	              .cert_file = a.cert,
	              .key_file = a.key,
	              .ca_file = a.ca,
	              .verify_peer = a.ca != NULL};
	rc = tls_client_ctx_new(&o, &ctx);
	if (rc != PQ_OK)
		return cli_error(rc, "TLS client set-up");
	rc = tls_probe(ctx, host, port, a.name ? a.name : host, (int)a.timeout, (int)a.wait, &res);
	SSL_CTX_free(ctx);
	printf("target        %s:%s\n", host, port);
	if (rc != PQ_OK) {
		printf("result        HANDSHAKE FAILED\n");
		return cli_error(rc, "tls check");
	}
	const tls_info *i = &res.info;
	printf("protocol      %s\n", i->protocol);
	printf("group         %s (%s)\n", i->group,
	       i->hybrid_kex ? "hybrid: classical ECDH + ML-KEM"
	       : i->pq_kex   ? "pure ML-KEM"
	                     : "classical only");
	printf("cipher        %s\n", i->cipher);
	printf("signature     %s (server CertificateVerify)\n",
	       i->peer_sigalg[0] ? i->peer_sigalg : "?");
	printf("certificate   subject %s\n", res.peer_subject);
	printf("              issuer  %s\n", res.peer_issuer);
	printf("              key %s, signed with %s, expires %s\n", i->peer_key_alg,
	       res.peer_cert_sig, res.peer_not_after);
	printf("verified      %s\n", a.ca ? "yes, against the given CA" : "not checked (no --ca)");
	if (a.cert)
		printf("client auth   sent %s\n", a.cert);
	printf("handshake     %.2f ms\n", res.handshake_ms);
	if (res.greeting[0])
		printf("server said   %s\n", res.greeting);
	printf("quantum-safe  key exchange %s; authentication %s\n",
	       i->pq_kex ? "YES (ML-KEM)" : "NO (classical)",
	       i->pq_auth ? "post-quantum (ML-DSA)" : "classical");
	if (!i->pq_kex) {
		printf("verdict       NOT QUANTUM-SAFE: recorded traffic can be decrypted by a "
		       "future quantum computer\n");
		return CLI_EXIT_FAIL;
	}
	printf("verdict       QUANTUM-SAFE key exchange\n");
	return CLI_EXIT_OK;
}

static void serve_cb(const tls_info *i, int err, const char *reason, void *user)
{
	(void)user;
	if (err)
		printf("rejected: %s\n", reason);
	else
		printf("accepted: %s group=%s sigalg=%s client=%s quantum_safe_kex=%s\n",
		       i->protocol, i->group, i->local_sigalg, i->peer_cn[0] ? i->peer_cn : "-",
		       i->pq_kex ? "yes" : "no");
	fflush(stdout);
}

static int tls_serve(int argc, char **argv)
{
	struct tls_args a = {0};
	char host[256], port[16], cert[1024], key[1024], ca[1024];
	bool help;
	SSL_CTX *ctx = NULL;
	tls_responder *r = NULL;
	int rc = parse(argc, argv, &a, &help);
	if (rc || help) {
		if (help)
			usage(stdout);
		return rc;
	}
	if (optind != argc)
		return cli_usage_error("tls", "tls serve takes no positional arguments");
	if (cli_split_hostport(a.listen ? a.listen : "127.0.0.1:8443", "127.0.0.1", host,
	                       sizeof(host), port, sizeof(port)))
		return cli_usage_error("tls", "--listen '%s' is not HOST:PORT", a.listen);
	if (!a.cert) {
		if (!a.pki)
			return cli_usage_error("tls", "give --pki DIR or --cert and --key");
		snprintf(cert, sizeof(cert), "%s/server/server.crt", a.pki);
		snprintf(key, sizeof(key), "%s/server/server.key", a.pki);
		a.cert = cert;
		a.key = key;
	}
	if (a.mtls && !a.ca) {
		if (!a.pki)
			return cli_usage_error("tls", "--mtls needs --ca FILE or --pki DIR");
		snprintf(ca, sizeof(ca), "%s/ca/ca.crt", a.pki);
		a.ca = ca;
	}
	pq_cert *c = NULL;
	if (pq_cert_load(a.cert, &c) == PQ_OK) {
		if (pq_cert_key_alg(c) != a.profile->cert_alg)
			fprintf(stderr,
			        "pqota: warning: %s holds a %s key, profile %d expects %s: the "
			        "handshake will sign with %s\n",
			        a.cert, pq_alg_name(pq_cert_key_alg(c)), a.profile->id,
			        pq_alg_name(a.profile->cert_alg), pq_alg_name(pq_cert_key_alg(c)));
		pq_cert_free(c);
	}
	tls_opts o = {.profile = a.profile,
	              .cert_file = a.cert,
	              .key_file = a.key,
	              .ca_file = a.ca,
	              .require_client_cert = a.mtls};
	rc = tls_server_ctx_new(&o, &ctx);
	if (rc != PQ_OK)
		return cli_error(rc, "TLS server set-up");
	rc = tls_responder_new(ctx, host, port, &r);
	if (rc != PQ_OK) {
		SSL_CTX_free(ctx);
		return cli_error(rc, "tls serve");
	}
	printf("pqota tls serve: listening on %s:%d, profile %d %s (group %s)%s\n", host,
	       tls_responder_port(r), a.profile->id, a.profile->name, a.profile->tls_group,
	       a.mtls ? ", mutual TLS" : "");
	fflush(stdout);
	if (a.port_file) {
		char buf[16];
		int n = snprintf(buf, sizeof(buf), "%d\n", tls_responder_port(r));
		rc = pq_file_write_atomic(a.port_file, buf, (size_t)n, 0644, true);
		if (rc != PQ_OK) {
			tls_responder_free(r);
			SSL_CTX_free(ctx);
			return cli_error(rc, "writing the port file");
		}
	}
	rc = tls_responder_run(r, (unsigned long)a.count, serve_cb, NULL);
	tls_responder_free(r);
	SSL_CTX_free(ctx);
	if (rc != PQ_OK)
		return cli_error(rc, "tls serve");
	return CLI_EXIT_OK;
}

int cmd_tls(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "check") == 0)
		return tls_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return tls_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage_error("tls", "unknown tls command '%s'", argv[1]);
}
