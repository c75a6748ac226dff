/* test_tls.c: loopback TLS 1.3 handshakes for all 13 PQC profiles, mutual TLS, PKI files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "crypto/cert.h"
#include "crypto/pki.h"
#include "crypto/profile.h"
#include "tls/probe.h"
#include "tls/tls.h"
#include "testutil.h"

/* A CA and a server certificate of one algorithm, written to dir. */
static void make_server_pki(const char *dir, pq_alg alg, const char *tag)
{
	pq_key *cak = NULL, *sk = NULL;
	pq_cert *ca = NULL, *sc = NULL;
	char p[512];
	static const char *const ips[] = {"127.0.0.1", NULL};
	pq_cert_req careq = {.kind = PQ_CERT_CA, .common_name = "test CA"};
	pq_cert_req sreq = {.kind = PQ_CERT_SERVER, .common_name = "localhost", .ips = ips};

	assert_int_equal(pq_key_generate(alg, &cak), PQ_OK);
	assert_int_equal(pq_cert_issue(&careq, cak, NULL, cak, &ca), PQ_OK);
	assert_int_equal(pq_key_generate(alg, &sk), PQ_OK);
	assert_int_equal(pq_cert_issue(&sreq, sk, ca, cak, &sc), PQ_OK);
	assert_int_equal(pq_cert_verify_issued_by(sc, ca), PQ_OK);
	assert_int_equal(pq_cert_key_alg(sc), alg);
	snprintf(p, sizeof(p), "%s/%s-ca.crt", dir, tag);
	assert_int_equal(pq_cert_save(ca, p, true), PQ_OK);
	snprintf(p, sizeof(p), "%s/%s-ca.key", dir, tag);
	assert_int_equal(pq_key_save_private(cak, p, true), PQ_OK);
	snprintf(p, sizeof(p), "%s/%s-server.crt", dir, tag);
	assert_int_equal(pq_cert_save(sc, p, true), PQ_OK);
	snprintf(p, sizeof(p), "%s/%s-server.key", dir, tag);
	assert_int_equal(pq_key_save_private(sk, p, true), PQ_OK);
	pq_key_free(cak);
	pq_key_free(sk);
	pq_cert_free(ca);
	pq_cert_free(sc);
}

struct seen {
	pthread_mutex_t mu;
	int accepted, rejected;
	tls_info last;
	char reason[256];
};

static void on_conn(const tls_info *info, int err, const char *reason, void *user)
{
	struct seen *s = user;
	pthread_mutex_lock(&s->mu);
	if (err) {
		s->rejected++;
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
	} else {
		s->accepted++;
		s->last = *info;
	}
	pthread_mutex_unlock(&s->mu);
}

static void test_openssl_is_35(void **state)
{
	(void)state;
	/* the library actually loaded at run time, not the headers we compiled against */
	assert_true(OpenSSL_version_num() >= 0x30500000UL);
	assert_true(tls_openssl_has_pqc());
	const char *v = OpenSSL_version(OPENSSL_VERSION);
	unsigned maj = 0, min = 0;
	assert_int_equal(sscanf(v, "OpenSSL %u.%u", &maj, &min), 2);
	assert_true(maj > 3 || (maj == 3 && min >= 5));
	print_message("loaded: %s\n", v);
}

static void test_all_profiles_handshake(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("tls");
	const pq_alg cert_algs[] = {PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44, PQ_ALG_MLDSA65,
	                            PQ_ALG_MLDSA87};
	for (size_t i = 0; i < 4; i++)
		make_server_pki(dir, cert_algs[i], pq_alg_name(cert_algs[i]));

	int done = 0;
	for (int id = 0; id < PQ_PROFILE_COUNT; id++) {
		const pq_profile *p = pq_profile_by_id(id);
		char cert[512], key[512], ca[512];
		const char *tag = pq_alg_name(p->cert_alg);
		SSL_CTX *sctx = NULL, *cctx = NULL;
		tls_responder *r = NULL;
		struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
		tls_probe_result res;
		char port[16];

		snprintf(cert, sizeof(cert), "%s/%s-server.crt", dir, tag);
		snprintf(key, sizeof(key), "%s/%s-server.key", dir, tag);
		snprintf(ca, sizeof(ca), "%s/%s-ca.crt", dir, tag);
		tls_opts so = {.profile = p, .cert_file = cert, .key_file = key};
		tls_opts co = {.profile = p, .ca_file = ca, .verify_peer = true};
		assert_int_equal(tls_server_ctx_new(&so, &sctx), PQ_OK);
		assert_int_equal(tls_client_ctx_new(&co, &cctx), PQ_OK);
		assert_int_equal(tls_responder_new(sctx, "127.0.0.1", "0", &r), PQ_OK);
		assert_int_equal(tls_responder_start(r, on_conn, &seen), PQ_OK);
		snprintf(port, sizeof(port), "%d", tls_responder_port(r));
		int rc = tls_probe(cctx, "127.0.0.1", port, "127.0.0.1", 5000, 2000, &res);
		if (rc != PQ_OK)
			fail_msg("profile %d: %s", id, pq_err_detail());
		tls_responder_free(r);

		print_message("profile %2d %-22s group=%-20s sigalg=%-24s %.1f ms\n", id, p->name,
		              res.info.group, res.info.peer_sigalg, res.handshake_ms);
		assert_string_equal(res.info.protocol, "TLSv1.3");
		assert_true(strcasecmp(res.info.group, p->tls_group) == 0);
		assert_string_equal(res.info.peer_sigalg, p->tls_sigalg);
		assert_int_equal(res.info.pq_kex, p->pq_kex);
		assert_int_equal(res.info.hybrid_kex, p->hybrid_group);
		assert_int_equal(res.info.pq_auth, pq_alg_is_pq(p->cert_alg));
		assert_int_equal(res.verify_result, 0);
		/* the server saw the same session, and said so in its greeting */
		assert_int_equal(seen.accepted, 1);
		assert_true(strcasecmp(seen.last.group, p->tls_group) == 0);
		assert_string_equal(seen.last.local_sigalg, p->tls_sigalg);
		assert_non_null(strstr(res.greeting, "protocol=TLSv1.3"));
		SSL_CTX_free(sctx);
		SSL_CTX_free(cctx);
		done++;
	}
	assert_int_equal(done, PQ_PROFILE_COUNT);
	tu_rmtree(dir);
	free(dir);
}

/* A client offering only a group the server does not accept must fail the handshake. */
static void test_group_mismatch_fails(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("tlsmm");
	char cert[512], key[512];
	SSL_CTX *sctx = NULL, *cctx = NULL;
	tls_responder *r = NULL;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
	tls_probe_result res;
	char port[16];

	make_server_pki(dir, PQ_ALG_ECDSA_P256, "ec");
	snprintf(cert, sizeof(cert), "%s/ec-server.crt", dir);
	snprintf(key, sizeof(key), "%s/ec-server.key", dir);
	tls_opts so = {.profile = pq_profile_by_id(2), .cert_file = cert, .key_file = key};
	tls_opts co = {.profile = pq_profile_by_id(0)}; /* classical X25519 only */
	assert_int_equal(tls_server_ctx_new(&so, &sctx), PQ_OK);
	assert_int_equal(tls_client_ctx_new(&co, &cctx), PQ_OK);
	assert_int_equal(tls_responder_new(sctx, "127.0.0.1", "0", &r), PQ_OK);
	assert_int_equal(tls_responder_start(r, on_conn, &seen), PQ_OK);
	snprintf(port, sizeof(port), "%d", tls_responder_port(r));
	assert_int_equal(tls_probe(cctx, "127.0.0.1", port, NULL, 5000, 500, &res), PQ_ERR_TLS);
	tls_responder_free(r);
	assert_int_equal(seen.accepted, 0);
	assert_int_equal(seen.rejected, 1);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	tu_rmtree(dir);
	free(dir);
}

/* Mutual TLS with a PKI from pq_pki_init: the right vehicle certificate is accepted and its
 * CN read as identity; no certificate, and a certificate from another CA, are refused. */
static void test_mtls(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("mtls");
	char *other = tu_tmpdir("mtls-other");
	char p[4][600];
	SSL_CTX *sctx = NULL, *good = NULL, *none = NULL, *foreign = NULL;
	tls_responder *r = NULL;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
	tls_probe_result res;
	char port[16], pem[600], key[600];
	struct stat st;

	pq_pki_opts o = {.profile = pq_profile_by_id(8)}; /* ML-DSA-65 certificates */
	assert_int_equal(pq_pki_init(dir, &o), PQ_OK);
	assert_int_equal(pq_pki_init(dir, &o), PQ_ERR_EXISTS); /* no silent replacement */
	assert_int_equal(pq_pki_vehicle(dir, "WVWZZZ1JZXW000001", false), PQ_OK);
	assert_int_equal(pq_pki_vehicle(dir, "WVWZZZ1JZXW000001", false), PQ_ERR_EXISTS);
	assert_int_equal(pq_pki_vehicle(dir, "bad/vin", false), PQ_ERR_INVAL);
	assert_int_equal(pq_pki_vehicle(dir, "oem/+/#", false), PQ_ERR_INVAL);
	/* the deployment's own identities cannot be issued as vehicles */
	assert_int_equal(pq_pki_vehicle(dir, "pqota-server", false), PQ_ERR_INVAL);
	assert_int_equal(pq_pki_vehicle(dir, "PQOTA-broker", false), PQ_ERR_INVAL);
	pq_pki_opts o2 = {.profile = pq_profile_by_id(8)};
	assert_int_equal(pq_pki_init(other, &o2), PQ_OK);
	assert_int_equal(pq_pki_vehicle(other, "WVWZZZ1JZXW000001", false), PQ_OK);

	/* private keys are 0600 */
	snprintf(key, sizeof(key), "%s/vehicles/WVWZZZ1JZXW000001/client.key", dir);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(key, sizeof(key), "%s/ca/ca.key", dir);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* key directories: traversable (a broker user can open its files), not listable */
	snprintf(key, sizeof(key), "%s/ca", dir);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0711);

	snprintf(p[0], sizeof(p[0]), "%s/server/server.crt", dir);
	snprintf(p[1], sizeof(p[1]), "%s/server/server.key", dir);
	snprintf(p[2], sizeof(p[2]), "%s/ca/ca.crt", dir);
	tls_opts so = {.profile = pq_profile_by_id(8),
	               .cert_file = p[0],
	               .key_file = p[1],
	               .ca_file = p[2],
	               .require_client_cert = true};
	assert_int_equal(tls_server_ctx_new(&so, &sctx), PQ_OK);

	snprintf(pem, sizeof(pem), "%s/vehicles/WVWZZZ1JZXW000001/client.crt", dir);
	snprintf(key, sizeof(key), "%s/vehicles/WVWZZZ1JZXW000001/client.key", dir);
	tls_opts cg = {.profile = pq_profile_by_id(8),
	               .cert_file = pem,
	               .key_file = key,
	               .ca_file = p[2],
	               .verify_peer = true};
	assert_int_equal(tls_client_ctx_new(&cg, &good), PQ_OK);
	tls_opts cn = {.profile = pq_profile_by_id(8), .ca_file = p[2], .verify_peer = true};
	assert_int_equal(tls_client_ctx_new(&cn, &none), PQ_OK);
	snprintf(p[3], sizeof(p[3]), "%s/vehicles/WVWZZZ1JZXW000001/client.crt", other);
	snprintf(key, sizeof(key), "%s/vehicles/WVWZZZ1JZXW000001/client.key", other);
	tls_opts cf = {.profile = pq_profile_by_id(8),
	               .cert_file = p[3],
	               .key_file = key,
	               .ca_file = p[2],
	               .verify_peer = true};
	assert_int_equal(tls_client_ctx_new(&cf, &foreign), PQ_OK);

	assert_int_equal(tls_responder_new(sctx, "127.0.0.1", "0", &r), PQ_OK);
	assert_int_equal(tls_responder_start(r, on_conn, &seen), PQ_OK);
	snprintf(port, sizeof(port), "%d", tls_responder_port(r));

	assert_int_equal(tls_probe(good, "127.0.0.1", port, "localhost", 5000, 2000, &res), PQ_OK);
	assert_non_null(strstr(res.greeting, "client=WVWZZZ1JZXW000001"));
	assert_string_equal(res.info.peer_sigalg, "mldsa65");
	assert_string_equal(res.info.group, "X25519MLKEM768");
	/* TLS 1.3: the server refuses the client after the client's handshake finished, so
	 * the refusal arrives as an alert while waiting for the greeting */
	assert_int_equal(tls_probe(none, "127.0.0.1", port, "localhost", 5000, 2000, &res),
	                 PQ_ERR_TLS);
	assert_int_equal(tls_probe(foreign, "127.0.0.1", port, "localhost", 5000, 2000, &res),
	                 PQ_ERR_TLS);
	/* a server name that is not in the certificate fails verification */
	assert_int_equal(tls_probe(good, "127.0.0.1", port, "evil.example", 5000, 2000, &res),
	                 PQ_ERR_TLS);
	tls_responder_free(r);

	assert_int_equal(seen.accepted, 1);
	assert_string_equal(seen.last.peer_cn, "WVWZZZ1JZXW000001");
	assert_string_equal(seen.last.peer_key_alg, "ML-DSA-65");
	assert_true(seen.rejected >= 2);
	SSL_CTX_free(sctx);
	SSL_CTX_free(good);
	SSL_CTX_free(none);
	SSL_CTX_free(foreign);
	tu_rmtree(dir);
	tu_rmtree(other);
	free(dir);
	free(other);
}

/* A context enforces its profile's signature scheme: a server of profile 8 (ML-DSA-65)
 * given an ECDSA certificate cannot complete a handshake, and a client of profile 2
 * (ECDSA) refuses a server that signs with ML-DSA-65. */
static void test_sigalg_enforced(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("tlssig");
	char ec_cert[512], ec_key[512], ml_cert[512], ml_key[512], port[16];
	SSL_CTX *sctx = NULL, *cctx = NULL;
	tls_responder *r = NULL;
	struct seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
	tls_probe_result res;

	make_server_pki(dir, PQ_ALG_ECDSA_P256, "ec");
	make_server_pki(dir, PQ_ALG_MLDSA65, "ml");
	snprintf(ec_cert, sizeof(ec_cert), "%s/ec-server.crt", dir);
	snprintf(ec_key, sizeof(ec_key), "%s/ec-server.key", dir);
	snprintf(ml_cert, sizeof(ml_cert), "%s/ml-server.crt", dir);
	snprintf(ml_key, sizeof(ml_key), "%s/ml-server.key", dir);

	for (int pass = 0; pass < 2; pass++) {
		/* pass 0: profile-8 server with an ECDSA certificate, client profile 8
		 * pass 1: profile-8 server (ML-DSA), client of profile 7 offering only mldsa44 */
		tls_opts so = {.profile = pq_profile_by_id(8),
		               .cert_file = pass == 0 ? ec_cert : ml_cert,
		               .key_file = pass == 0 ? ec_key : ml_key};
		tls_opts co = {.profile = pq_profile_by_id(pass == 0 ? 8 : 7)};
		assert_int_equal(tls_server_ctx_new(&so, &sctx), PQ_OK);
		assert_int_equal(tls_client_ctx_new(&co, &cctx), PQ_OK);
		assert_int_equal(tls_responder_new(sctx, "127.0.0.1", "0", &r), PQ_OK);
		assert_int_equal(tls_responder_start(r, on_conn, &seen), PQ_OK);
		snprintf(port, sizeof(port), "%d", tls_responder_port(r));
		assert_int_equal(tls_probe(cctx, "127.0.0.1", port, NULL, 5000, 500, &res),
		                 PQ_ERR_TLS);
		tls_responder_free(r);
		SSL_CTX_free(sctx);
		SSL_CTX_free(cctx);
	}
	assert_int_equal(seen.accepted, 0);
	/* with sigalgs = "" (OpenSSL's defaults) the mismatched pair talks, as tls check does */
	tls_opts so = {.profile = pq_profile_by_id(8),
	               .cert_file = ec_cert,
	               .key_file = ec_key,
	               .sigalgs = ""};
	tls_opts co = {.profile = pq_profile_by_id(8), .sigalgs = ""};
	assert_int_equal(tls_server_ctx_new(&so, &sctx), PQ_OK);
	assert_int_equal(tls_client_ctx_new(&co, &cctx), PQ_OK);
	assert_int_equal(tls_responder_new(sctx, "127.0.0.1", "0", &r), PQ_OK);
	assert_int_equal(tls_responder_start(r, on_conn, &seen), PQ_OK);
	snprintf(port, sizeof(port), "%d", tls_responder_port(r));
	assert_int_equal(tls_probe(cctx, "127.0.0.1", port, NULL, 5000, 500, &res), PQ_OK);
	assert_string_equal(res.info.peer_sigalg, "ecdsa_secp256r1_sha256");
	tls_responder_free(r);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	tu_rmtree(dir);
	free(dir);
}

static void test_group_helpers(void **state)
{
	(void)state;
	assert_true(tls_group_is_pq("X25519MLKEM768"));
	assert_true(tls_group_is_hybrid("X25519MLKEM768"));
	assert_true(tls_group_is_hybrid("SecP384r1MLKEM1024"));
	assert_true(tls_group_is_pq("MLKEM512"));
	assert_false(tls_group_is_hybrid("MLKEM512"));
	assert_false(tls_group_is_pq("x25519"));
	assert_false(tls_group_is_pq("secp256r1"));
	/* a context from a bad file reports the file */
	SSL_CTX *c = NULL;
	tls_opts o = {.profile = pq_profile_by_id(2),
	              .cert_file = "/nonexistent/x.crt",
	              .key_file = "/nonexistent/x.key"};
	assert_int_not_equal(tls_server_ctx_new(&o, &c), PQ_OK);
	assert_null(c);
	assert_non_null(strstr(pq_err_detail(), "/nonexistent/x.crt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_openssl_is_35),
	    cmocka_unit_test(test_group_helpers),
	    cmocka_unit_test(test_all_profiles_handshake),
	    cmocka_unit_test(test_group_mismatch_fails),
	    cmocka_unit_test(test_sigalg_enforced),
	    cmocka_unit_test(test_mtls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
