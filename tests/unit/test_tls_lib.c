/* test_tls_lib.c: libpqota-tls through its public header only (include/pqota/tls.h):
 * library facts, the profile table, every argument and file error of the contexts, a
 * round trip over TCP, all 13 profiles over socket pairs, mutual TLS, verification
 * failures, timeouts, EOF without close_notify, a write to a vanished peer (no SIGPIPE),
 * and the I/O a shut-down connection refuses. The PKI fixtures come from pqota_crypto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/cert.h"
#include "crypto/key.h"
#include "pqota/tls.h"
#include "testutil.h"

#define CLIENT_CN "VIN-LIB-1"

/* ---- fixtures ------------------------------------------------------------------------- */

static char *g_dir; /* the PKIs of every certificate algorithm, made once */

static void save_pair(const char *dir, const char *name, const pq_cert *c, const pq_key *k)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s.crt", dir, name);
	assert_ok(pq_cert_save(c, p, true));
	if (!k)
		return;
	snprintf(p, sizeof(p), "%s/%s.key", dir, name);
	assert_ok(pq_key_save_private(k, p, true));
}

/* TAG-ca.crt, TAG-server.{crt,key} (CN localhost, SAN localhost and 127.0.0.1) and
 * TAG-client.{crt,key} (CN CLIENT_CN), all of one algorithm. */
static void make_pki(const char *dir, pq_alg alg, const char *tag)
{
	static const char *const dns[] = {"localhost", NULL};
	static const char *const ips[] = {"127.0.0.1", NULL};
	pq_cert_req careq = {.kind = PQ_CERT_CA, .common_name = "lib test CA"};
	pq_cert_req sreq = {
	    .kind = PQ_CERT_SERVER, .common_name = "localhost", .dns = dns, .ips = ips};
	pq_cert_req creq = {.kind = PQ_CERT_CLIENT, .common_name = CLIENT_CN};
	pq_key *cak = NULL, *sk = NULL, *ck = NULL;
	pq_cert *ca = NULL, *sc = NULL, *cc = NULL;
	char name[64];

	assert_ok(pq_key_generate(alg, &cak));
	assert_ok(pq_cert_issue(&careq, cak, NULL, cak, &ca));
	assert_ok(pq_key_generate(alg, &sk));
	assert_ok(pq_cert_issue(&sreq, sk, ca, cak, &sc));
	assert_ok(pq_key_generate(alg, &ck));
	assert_ok(pq_cert_issue(&creq, ck, ca, cak, &cc));
	snprintf(name, sizeof(name), "%s-ca", tag);
	save_pair(dir, name, ca, NULL);
	snprintf(name, sizeof(name), "%s-server", tag);
	save_pair(dir, name, sc, sk);
	snprintf(name, sizeof(name), "%s-client", tag);
	save_pair(dir, name, cc, ck);
	pq_key_free(cak);
	pq_key_free(sk);
	pq_key_free(ck);
	pq_cert_free(ca);
	pq_cert_free(sc);
	pq_cert_free(cc);
}

/* g_dir/TAG-what */
static const char *path(const char *tag, const char *what)
{
	static char buf[8][600];
	static int next;
	char *p = buf[next++ % 8];
	snprintf(p, sizeof(buf[0]), "%s/%s-%s", g_dir, tag, what);
	return p;
}

static const char *tag_of(const char *sigalg)
{
	return strncmp(sigalg, "mldsa", 5) == 0 ? sigalg : "ec";
}

static int setup(void **state)
{
	(void)state;
	g_dir = tu_tmpdir("tlslib");
	make_pki(g_dir, PQ_ALG_ECDSA_P256, "ec");
	make_pki(g_dir, PQ_ALG_MLDSA44, "mldsa44");
	make_pki(g_dir, PQ_ALG_MLDSA65, "mldsa65");
	make_pki(g_dir, PQ_ALG_MLDSA87, "mldsa87");
	make_pki(g_dir, PQ_ALG_ECDSA_P256, "other"); /* a CA nobody here trusts */
	tu_write_file(path("junk", "ca.crt"), "not a certificate\n", 18);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(g_dir);
	free(g_dir);
	return 0;
}

/* The SHA-256 of a PEM certificate's DER, in lowercase hex (what peer_sha256 must say). */
static void cert_sha256(const char *pem, char hex[65])
{
	FILE *f = fopen(pem, "r");
	assert_non_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	unsigned char md[32];
	unsigned int n = 0;
	assert_int_equal(X509_digest(x, EVP_sha256(), md, &n), 1);
	assert_int_equal(n, 32);
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	X509_free(x);
}

static pqota_tls_ctx *server_ctx(const char *profile, unsigned flags)
{
	pqota_tls_ctx *ctx = NULL;
	const char *tag = tag_of(pqota_tls_profile_sigalg(pqota_tls_profile_find(profile)));
	int rc = pqota_tls_server_new(profile, path(tag, "server.crt"), path(tag, "server.key"),
	                              flags ? path(tag, "ca.crt") : NULL, flags, &ctx);
	if (rc != PQOTA_TLS_OK)
		fail_msg("server context %s: %d %s", profile, rc, pqota_tls_last_error());
	return ctx;
}

/* A client context trusting the CA of `ca_tag`, with TAG-client as certificate if
 * with_cert. */
static pqota_tls_ctx *client_ctx(const char *profile, const char *ca_tag, bool with_cert)
{
	pqota_tls_ctx *ctx = NULL;
	const char *tag = tag_of(pqota_tls_profile_sigalg(pqota_tls_profile_find(profile)));
	int rc = pqota_tls_client_new(profile, path(ca_tag, "ca.crt"),
	                              with_cert ? path(tag, "client.crt") : NULL,
	                              with_cert ? path(tag, "client.key") : NULL, 0, &ctx);
	if (rc != PQOTA_TLS_OK)
		fail_msg("client context %s: %d %s", profile, rc, pqota_tls_last_error());
	return ctx;
}

/* ---- a server in a thread --------------------------------------------------------------- */

struct server {
	pqota_tls_ctx *ctx;
	int fd; /* listening socket (listening) or a connected one */
	bool listening;
	bool echo;  /* read one message, answer "pong:" + it, shut down */
	bool drain; /* read twice, recording both results (first_read, second_read) */
	int rc;     /* the handshake's status */
	char err[512];
	char group[64], peer_cn[128], peer_sha256[65];
	bool has_cn;
	long read_after_shutdown, write_after_shutdown;
	long first_read, second_read;
	pthread_t thread;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	pqota_tls_conn *c = NULL;
	char buf[256];

	s->rc = s->listening ? pqota_tls_accept(s->ctx, s->fd, &c)
	                     : pqota_tls_accept_fd(s->ctx, s->fd, &c);
	if (s->rc != PQOTA_TLS_OK) {
		snprintf(s->err, sizeof(s->err), "%s", pqota_tls_last_error());
		return NULL;
	}
	snprintf(s->group, sizeof(s->group), "%s", pqota_tls_group(c));
	s->has_cn = pqota_tls_peer_cn(c) != NULL;
	if (s->has_cn) {
		snprintf(s->peer_cn, sizeof(s->peer_cn), "%s", pqota_tls_peer_cn(c));
		snprintf(s->peer_sha256, sizeof(s->peer_sha256), "%s", pqota_tls_peer_sha256(c));
	}
	if (s->echo) {
		long n = pqota_tls_read(c, buf, sizeof(buf) - 6);
		if (n > 0) {
			char out[256];
			int m = snprintf(out, sizeof(out), "pong:%.*s", (int)n, buf);
			if (pqota_tls_write(c, out, (size_t)m) != m)
				snprintf(s->err, sizeof(s->err), "write: %s",
				         pqota_tls_last_error());
		} else if (n < 0) {
			snprintf(s->err, sizeof(s->err), "read %ld: %s", n, pqota_tls_last_error());
		}
		(void)pqota_tls_shutdown(c);
		s->read_after_shutdown = pqota_tls_read(c, buf, sizeof(buf));
		s->write_after_shutdown = pqota_tls_write(c, "x", 1);
	}
	if (s->drain) {
		s->first_read = pqota_tls_read(c, buf, sizeof(buf));
		s->second_read = pqota_tls_read(c, buf, sizeof(buf));
		snprintf(s->err, sizeof(s->err), "%s", pqota_tls_last_error());
	}
	pqota_tls_close(c);
	return NULL;
}

static void server_start(struct server *s)
{
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_join(struct server *s)
{
	assert_int_equal(pthread_join(s->thread, NULL), 0);
}

/* A listening socket on 127.0.0.1, any free port (its number in `port`). */
static int listen_any(char port[16])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	snprintf(port, 16, "%u", ntohs(a.sin_port));
	return fd;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* ---- the library and its profiles ------------------------------------------------------ */

static void test_library_facts(void **state)
{
	(void)state;
	assert_int_equal(pqota_tls_abi(), PQOTA_TLS_ABI);
	assert_true(strlen(pqota_tls_version()) > 0);
	/* the OpenSSL loaded at run time, through the library's RPATH */
	unsigned maj = 0, min = 0;
	assert_int_equal(sscanf(pqota_tls_openssl_version(), "OpenSSL %u.%u", &maj, &min), 2);
	assert_true(maj > 3 || (maj == 3 && min >= 5));
	for (int s = PQOTA_TLS_OK; s >= PQOTA_TLS_ERR_EOF; s--) {
		assert_string_not_equal(pqota_tls_strerror(s), "unknown status");
		for (int t = s - 1; t >= PQOTA_TLS_ERR_EOF; t--)
			assert_string_not_equal(pqota_tls_strerror(s), pqota_tls_strerror(t));
	}
	assert_string_equal(pqota_tls_strerror(-99), "unknown status");
	assert_string_equal(pqota_tls_strerror(1), "unknown status");
}

static void test_profiles(void **state)
{
	(void)state;
	char id[16];
	assert_int_equal(pqota_tls_profile_count(), 13);
	for (int i = 0; i < pqota_tls_profile_count(); i++) {
		assert_non_null(pqota_tls_profile_name(i));
		assert_non_null(pqota_tls_profile_group(i));
		assert_non_null(pqota_tls_profile_sigalg(i));
		assert_int_equal(pqota_tls_profile_find(pqota_tls_profile_name(i)), i);
		snprintf(id, sizeof(id), "%d", i);
		assert_int_equal(pqota_tls_profile_find(id), i);
	}
	assert_string_equal(pqota_tls_profile_name(2), "mlkem768-ecdsa-p256");
	assert_string_equal(pqota_tls_profile_group(2), "X25519MLKEM768");
	assert_string_equal(pqota_tls_profile_group(8), "X25519MLKEM768");
	assert_string_equal(pqota_tls_profile_sigalg(8), "mldsa65");
	assert_string_equal(pqota_tls_profile_group(0), "X25519");
	assert_int_equal(pqota_tls_profile_find("MLKEM768-ECDSA-P256"), 2);
	assert_int_equal(pqota_tls_profile_find("13"), PQOTA_TLS_ERR_PROFILE);
	assert_non_null(strstr(pqota_tls_last_error(), "out of range"));
	assert_int_equal(pqota_tls_profile_find("-1"), PQOTA_TLS_ERR_PROFILE);
	assert_int_equal(pqota_tls_profile_find("mlkem768"), PQOTA_TLS_ERR_PROFILE);
	assert_int_equal(pqota_tls_profile_find(""), PQOTA_TLS_ERR_PROFILE);
	assert_int_equal(pqota_tls_profile_find(NULL), PQOTA_TLS_ERR_PROFILE);
	assert_null(pqota_tls_profile_name(13));
	assert_null(pqota_tls_profile_group(-1));
	assert_null(pqota_tls_profile_sigalg(1000));
}

/* ---- contexts: every way to get them wrong --------------------------------------------- */

/* The status of a failed *_new is `want`, *out is reset to NULL, and the detail contains
 * `says`. */
static void expect_failure(const char *call, int rc, const pqota_tls_ctx *ctx, int want,
                           const char *says)
{
	if (rc != want)
		fail_msg("%s: %d, want %d (%s)", call, rc, want, pqota_tls_last_error());
	assert_null(ctx);
	if (!strstr(pqota_tls_last_error(), says))
		fail_msg("%s: detail '%s' lacks '%s'", call, pqota_tls_last_error(), says);
}

static void server_fails(const char *profile, const char *cert, const char *key, const char *ca,
                         unsigned flags, int want, const char *says)
{
	pqota_tls_ctx *ctx = (pqota_tls_ctx *)&ctx; /* not NULL: must be reset */
	int rc = pqota_tls_server_new(profile, cert, key, ca, flags, &ctx);
	expect_failure("server_new", rc, ctx, want, says);
}

static void client_fails(const char *profile, const char *ca, const char *cert, const char *key,
                         unsigned flags, int want, const char *says)
{
	pqota_tls_ctx *ctx = (pqota_tls_ctx *)&ctx;
	int rc = pqota_tls_client_new(profile, ca, cert, key, flags, &ctx);
	expect_failure("client_new", rc, ctx, want, says);
}

static void test_context_errors(void **state)
{
	(void)state;
	const char *crt = path("ec", "server.crt"), *key = path("ec", "server.key");
	const char *ca = path("ec", "ca.crt");
	const char *missing = path("nowhere", "server.crt");

	server_fails("99", crt, key, NULL, 0, PQOTA_TLS_ERR_PROFILE, "out of range");
	server_fails("nope", crt, key, NULL, 0, PQOTA_TLS_ERR_PROFILE, "unknown profile");
	server_fails(NULL, crt, key, NULL, 0, PQOTA_TLS_ERR_PROFILE, "no profile");
	server_fails("2", missing, key, NULL, 0, PQOTA_TLS_ERR_FILE, missing);
	server_fails("2", crt, missing, NULL, 0, PQOTA_TLS_ERR_FILE, "No such file");
	server_fails("2", NULL, key, NULL, 0, PQOTA_TLS_ERR_INVAL, "no certificate");
	/* a key of another certificate */
	server_fails("2", crt, path("ec", "client.key"), NULL, 0, PQOTA_TLS_ERR_FILE, "mismatch");
	/* an ECDSA certificate for an ML-DSA profile: refused now, not at the first client */
	server_fails("8", crt, key, NULL, 0, PQOTA_TLS_ERR_FILE, "profile 8");
	server_fails("2", crt, key, NULL, PQOTA_TLS_CLIENT_CERT_REQUIRED, PQOTA_TLS_ERR_INVAL,
	             "ca_file");
	server_fails("2", crt, key, ca,
	             PQOTA_TLS_CLIENT_CERT_REQUIRED | PQOTA_TLS_CLIENT_CERT_OPTIONAL,
	             PQOTA_TLS_ERR_INVAL, "both");
	server_fails("2", crt, key, NULL, 0x80, PQOTA_TLS_ERR_INVAL, "unknown server flags");
	server_fails("2", crt, key, path("junk", "ca.crt"), PQOTA_TLS_CLIENT_CERT_REQUIRED,
	             PQOTA_TLS_ERR_FILE, "junk-ca.crt");
	assert_int_equal(pqota_tls_server_new("2", crt, key, NULL, 0, NULL), PQOTA_TLS_ERR_INVAL);

	client_fails("2", NULL, NULL, NULL, 0, PQOTA_TLS_ERR_INVAL, "no CA");
	client_fails("2", missing, NULL, NULL, 0, PQOTA_TLS_ERR_FILE, missing);
	client_fails("2", path("junk", "ca.crt"), NULL, NULL, 0, PQOTA_TLS_ERR_FILE, "junk-ca.crt");
	client_fails("2", ca, path("ec", "client.crt"), NULL, 0, PQOTA_TLS_ERR_INVAL, "both");
	client_fails("2", ca, NULL, NULL, 1, PQOTA_TLS_ERR_INVAL, "unknown client flags");
	client_fails("x", ca, NULL, NULL, 0, PQOTA_TLS_ERR_PROFILE, "unknown profile");
	client_fails("8", ca, path("ec", "client.crt"), path("ec", "client.key"), 0,
	             PQOTA_TLS_ERR_FILE, "profile 8");

	/* timeouts, and contexts used for the wrong side */
	pqota_tls_ctx *s = server_ctx("2", 0), *c = client_ctx("2", "ec", false);
	pqota_tls_conn *conn = (pqota_tls_conn *)&conn;
	assert_int_equal(pqota_tls_ctx_set_timeout(s, -1), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_ctx_set_timeout(s, 3600001), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_ctx_set_timeout(NULL, 10), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_ctx_set_timeout(s, 0), PQOTA_TLS_OK);
	assert_int_equal(pqota_tls_accept_fd(c, 0, &conn), PQOTA_TLS_ERR_INVAL);
	assert_null(conn);
	assert_non_null(strstr(pqota_tls_last_error(), "client context cannot accept"));
	assert_int_equal(pqota_tls_connect(s, "127.0.0.1", "1", NULL, &conn), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_connect_fd(c, 0, NULL, &conn), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_connect_fd(c, -1, "localhost", &conn), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_accept(s, -1, &conn), PQOTA_TLS_ERR_INVAL);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(pqota_tls_accept_fd(s, sv[0], &conn), PQOTA_TLS_ERR_INVAL);
	assert_non_null(strstr(pqota_tls_last_error(), "non-blocking"));
	assert_int_equal(pqota_tls_connect_fd(c, sv[1], "localhost", &conn), PQOTA_TLS_ERR_INVAL);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(pqota_tls_accept_fd(s, sv[0], &conn), PQOTA_TLS_ERR_INVAL); /* closed */
	assert_int_equal(pqota_tls_accept(NULL, 3, &conn), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_connect(c, "", "443", NULL, &conn), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_connect(c, "127.0.0.1", "443", NULL, NULL), PQOTA_TLS_ERR_INVAL);
	pqota_tls_ctx_free(s);
	pqota_tls_ctx_free(c);
	pqota_tls_ctx_free(NULL);
}

/* Every connection function tolerates NULL: an error or NULL, never a crash. */
static void test_null_connection(void **state)
{
	(void)state;
	char b[4];
	assert_int_equal(pqota_tls_read(NULL, b, sizeof(b)), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_write(NULL, b, sizeof(b)), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_shutdown(NULL), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_fd(NULL), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_quantum_safe(NULL), 0);
	assert_null(pqota_tls_group(NULL));
	assert_null(pqota_tls_protocol(NULL));
	assert_null(pqota_tls_cipher(NULL));
	assert_null(pqota_tls_peer_sigalg(NULL));
	assert_null(pqota_tls_peer_cn(NULL));
	assert_null(pqota_tls_peer_subject(NULL));
	assert_null(pqota_tls_peer_sha256(NULL));
	pqota_tls_close(NULL);
}

/* ---- connections ---------------------------------------------------------------------- */

/* Profile 2 over TCP: accept on a listening socket, connect by host and port; the session,
 * the server's identity, an exchange, close_notify, and I/O after shutdown. */
static void test_round_trip(void **state)
{
	(void)state;
	char port[16], buf[128], sha[65];
	struct server s = {
	    .ctx = server_ctx("mlkem768-ecdsa-p256", 0), .listening = true, .echo = true};
	pqota_tls_ctx *cctx = client_ctx("2", "ec", false);
	pqota_tls_conn *c = NULL;

	s.fd = listen_any(port);
	server_start(&s);
	if (pqota_tls_connect(cctx, "127.0.0.1", port, NULL, &c) != PQOTA_TLS_OK)
		fail_msg("connect: %s", pqota_tls_last_error());
	pqota_tls_ctx_free(cctx); /* the connection keeps what it needs */
	assert_string_equal(pqota_tls_group(c), "X25519MLKEM768");
	assert_string_equal(pqota_tls_protocol(c), "TLSv1.3");
	assert_int_equal(pqota_tls_quantum_safe(c), 1);
	assert_string_equal(pqota_tls_peer_sigalg(c), "ecdsa_secp256r1_sha256");
	assert_true(strlen(pqota_tls_cipher(c)) > 0);
	assert_string_equal(pqota_tls_peer_cn(c), "localhost");
	assert_non_null(strstr(pqota_tls_peer_subject(c), "CN = localhost"));
	cert_sha256(path("ec", "server.crt"), sha);
	assert_string_equal(pqota_tls_peer_sha256(c), sha);
	assert_true(pqota_tls_fd(c) >= 0);

	assert_int_equal(pqota_tls_write(c, "ping", 4), 4);
	assert_int_equal(pqota_tls_write(c, "", 0), 0);
	long n = pqota_tls_read(c, buf, sizeof(buf));
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "pong:ping", 9);
	assert_int_equal(pqota_tls_read(c, buf, sizeof(buf)), 0); /* the server's close_notify */
	assert_int_equal(pqota_tls_read(c, buf, 0), PQOTA_TLS_ERR_INVAL);
	assert_int_equal(pqota_tls_shutdown(c), PQOTA_TLS_OK);
	assert_int_equal(pqota_tls_shutdown(c), PQOTA_TLS_OK);
	assert_int_equal(pqota_tls_read(c, buf, sizeof(buf)), PQOTA_TLS_ERR_CLOSED);
	assert_non_null(strstr(pqota_tls_last_error(), "shut down"));
	assert_int_equal(pqota_tls_write(c, "x", 1), PQOTA_TLS_ERR_CLOSED);
	assert_string_equal(pqota_tls_group(c), "X25519MLKEM768"); /* still readable */
	pqota_tls_close(c);

	server_join(&s);
	assert_int_equal(s.rc, PQOTA_TLS_OK);
	assert_string_equal(s.err, "");
	assert_string_equal(s.group, "X25519MLKEM768");
	assert_false(s.has_cn); /* no client certificate */
	assert_int_equal(s.read_after_shutdown, PQOTA_TLS_ERR_CLOSED);
	assert_int_equal(s.write_after_shutdown, PQOTA_TLS_ERR_CLOSED);
	close(s.fd);
	pqota_tls_ctx_free(s.ctx);
}

/* One handshake and exchange over a socket pair; returns the client's connection status.
 * The sockets stay the caller's (and open) after pqota_tls_close. */
static int pair_session(struct server *s, pqota_tls_ctx *cctx, const char *name, char *group,
                        size_t glen)
{
	int sv[2];
	char buf[64];
	pqota_tls_conn *c = NULL;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[0];
	server_start(s);
	int rc = pqota_tls_connect_fd(cctx, sv[1], name, &c);
	if (rc == PQOTA_TLS_OK) {
		snprintf(group, glen, "%s", pqota_tls_group(c));
		assert_int_equal(pqota_tls_fd(c), sv[1]);
		if (pqota_tls_write(c, "hi", 2) != 2 || pqota_tls_read(c, buf, sizeof(buf)) != 7)
			rc = PQOTA_TLS_ERR_TLS; /* the server refused us after the handshake */
		pqota_tls_close(c);
	} else {
		shutdown(sv[1], SHUT_RDWR); /* the server must not wait for us */
	}
	server_join(s);
	assert_true(fd_open(sv[0]) && fd_open(sv[1]));
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void test_all_profiles(void **state)
{
	(void)state;
	for (int id = 0; id < pqota_tls_profile_count(); id++) {
		char p[16], group[64] = "";
		snprintf(p, sizeof(p), "%d", id);
		const char *sigalg = pqota_tls_profile_sigalg(id);
		struct server s = {.ctx = server_ctx(p, 0), .echo = true};
		pqota_tls_ctx *cctx = client_ctx(p, tag_of(sigalg), false);
		int rc = pair_session(&s, cctx, "localhost", group, sizeof(group));
		if (rc != PQOTA_TLS_OK || s.rc != PQOTA_TLS_OK)
			fail_msg("profile %d: client %d, server %d (%s)", id, rc, s.rc, s.err);
		print_message("profile %2d %-22s group=%s\n", id, pqota_tls_profile_name(id),
		              group);
		assert_true(strcasecmp(group, pqota_tls_profile_group(id)) == 0);
		assert_true(strcasecmp(s.group, pqota_tls_profile_group(id)) == 0);
		pqota_tls_ctx_free(s.ctx);
		pqota_tls_ctx_free(cctx);
	}
}

static void test_mutual_tls(void **state)
{
	(void)state;
	char group[64], sha[65];
	pqota_tls_ctx *with = client_ctx("8", "mldsa65", true);
	pqota_tls_ctx *without = client_ctx("8", "mldsa65", false);

	/* required: a certificate from the CA is accepted, and the CN is the identity */
	struct server s = {.ctx = server_ctx("8", PQOTA_TLS_CLIENT_CERT_REQUIRED), .echo = true};
	assert_int_equal(pair_session(&s, with, "localhost", group, sizeof(group)), PQOTA_TLS_OK);
	assert_int_equal(s.rc, PQOTA_TLS_OK);
	assert_true(s.has_cn);
	assert_string_equal(s.peer_cn, CLIENT_CN);
	cert_sha256(path("mldsa65", "client.crt"), sha);
	assert_string_equal(s.peer_sha256, sha);

	/* ... and without one, refused (TLS 1.3: the client learns it after its handshake) */
	struct server s2 = {.ctx = s.ctx, .echo = true};
	assert_int_not_equal(pair_session(&s2, without, "localhost", group, sizeof(group)),
	                     PQOTA_TLS_OK);
	assert_int_equal(s2.rc, PQOTA_TLS_ERR_HANDSHAKE);
	assert_non_null(strstr(s2.err, "certificate"));
	pqota_tls_ctx_free(s.ctx);

	/* optional: both kinds of clients are served */
	struct server s3 = {.ctx = server_ctx("8", PQOTA_TLS_CLIENT_CERT_OPTIONAL), .echo = true};
	assert_int_equal(pair_session(&s3, without, "localhost", group, sizeof(group)),
	                 PQOTA_TLS_OK);
	assert_int_equal(s3.rc, PQOTA_TLS_OK);
	assert_false(s3.has_cn);
	struct server s4 = {.ctx = s3.ctx, .echo = true};
	assert_int_equal(pair_session(&s4, with, "localhost", group, sizeof(group)), PQOTA_TLS_OK);
	assert_string_equal(s4.peer_cn, CLIENT_CN);
	pqota_tls_ctx_free(s3.ctx);
	pqota_tls_ctx_free(with);
	pqota_tls_ctx_free(without);
}

/* The client refuses a server its CA did not issue, or under another name; the server
 * refuses a client without its group. */
static void test_verification_failures(void **state)
{
	(void)state;
	char group[64];
	pqota_tls_ctx *sctx = server_ctx("2", 0);
	struct {
		pqota_tls_ctx *cctx;
		const char *name, *says;
	} cases[] = {
	    {client_ctx("2", "other", false), "localhost", "certificate verify failed"},
	    {client_ctx("2", "ec", false), "evil.example", "hostname mismatch"},
	    {client_ctx("0", "ec", false), "localhost", "handshake failure"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct server s = {.ctx = sctx, .echo = true};
		int rc = pair_session(&s, cases[i].cctx, cases[i].name, group, sizeof(group));
		assert_int_equal(rc, PQOTA_TLS_ERR_HANDSHAKE);
		if (!strstr(pqota_tls_last_error(), cases[i].says))
			fail_msg("case %zu: '%s' lacks '%s'", i, pqota_tls_last_error(),
			         cases[i].says);
		assert_int_not_equal(s.rc, PQOTA_TLS_OK);
		pqota_tls_ctx_free(cases[i].cctx);
	}
	pqota_tls_ctx_free(sctx);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A silent client times the server's handshake out. */
static void test_timeout(void **state)
{
	(void)state;
	int sv[2];
	struct server s = {.ctx = server_ctx("2", 0)};

	assert_int_equal(pqota_tls_ctx_set_timeout(s.ctx, 200), PQOTA_TLS_OK);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	double t0 = now_s();
	s.fd = sv[0];
	server_start(&s);
	server_join(&s);
	double took = now_s() - t0;
	assert_int_equal(s.rc, PQOTA_TLS_ERR_TIMEOUT);
	assert_non_null(strstr(s.err, "200 ms"));
	assert_true(took >= 0.15 && took < 5.0);
	close(sv[0]);
	close(sv[1]);
	pqota_tls_ctx_free(s.ctx);
}

/* A peer that drops TCP without close_notify reads as EOF (then the connection is
 * closed); closing and writing towards a vanished peer fail instead of raising SIGPIPE,
 * whose default action would end this process. */
static void test_eof_and_sigpipe(void **state)
{
	(void)state;
	int sv[2];
	char buf[16];
	pqota_tls_conn *c = NULL;
	pqota_tls_ctx *cctx = client_ctx("2", "ec", false);
	struct server s = {.ctx = server_ctx("2", 0), .drain = true};

	signal(SIGPIPE, SIG_DFL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s.fd = sv[0];
	server_start(&s);
	assert_int_equal(pqota_tls_connect_fd(cctx, sv[1], "localhost", &c), PQOTA_TLS_OK);
	assert_int_equal(pqota_tls_write(c, "abc", 3), 3);
	assert_int_equal(shutdown(sv[1], SHUT_WR), 0); /* the stream ends, no close_notify */
	pqota_tls_close(c);                            /* its close_notify: EPIPE */
	server_join(&s);
	assert_int_equal(s.rc, PQOTA_TLS_OK);
	assert_int_equal(s.first_read, 3);
	if (s.second_read != PQOTA_TLS_ERR_EOF)
		fail_msg("second read: %ld (%s)", s.second_read, s.err);
	close(sv[0]);
	close(sv[1]);

	/* a write after the peer closed its socket */
	struct server s2 = {.ctx = s.ctx};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s2.fd = sv[0];
	server_start(&s2); /* handshake, close_notify, done */
	assert_int_equal(pqota_tls_connect_fd(cctx, sv[1], "localhost", &c), PQOTA_TLS_OK);
	server_join(&s2);
	close(sv[0]);
	long n = pqota_tls_write(c, "late", 4);
	assert_int_equal(n, PQOTA_TLS_ERR_IO);
	assert_non_null(strstr(pqota_tls_last_error(), "Broken pipe"));
	assert_int_equal(pqota_tls_read(c, buf, sizeof(buf)), PQOTA_TLS_ERR_CLOSED);
	assert_non_null(strstr(pqota_tls_last_error(), "failed earlier"));
	pqota_tls_close(c);
	close(sv[1]);
	pqota_tls_ctx_free(cctx);
	pqota_tls_ctx_free(s.ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_library_facts),  cmocka_unit_test(test_profiles),
	    cmocka_unit_test(test_context_errors), cmocka_unit_test(test_null_connection),
	    cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_all_profiles),
	    cmocka_unit_test(test_mutual_tls),     cmocka_unit_test(test_verification_failures),
	    cmocka_unit_test(test_timeout),        cmocka_unit_test(test_eof_and_sigpipe),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
