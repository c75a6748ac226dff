/* cmd_bench.c: `pqota bench crypto`: throughput of each primitive and full TLS handshakes
 * per profile over loopback, printed as a table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>

#include "cli/cli.h"
#include "crypto/aead.h"
#include "crypto/cert.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/profile.h"
#include "crypto/sig.h"
#include "tls/probe.h"
#include "tls/tls.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*op_fn)(void *arg);

/* Runs fn repeatedly for about `secs`; returns operations per second (negative on error). */
static double measure(op_fn fn, void *arg, double secs)
{
	double t0 = now_s(), t;
	long n = 0;
	do {
		for (int i = 0; i < 4; i++, n++)
			if (fn(arg) != PQ_OK)
				return -1;
		t = now_s();
	} while (t - t0 < secs);
	return (double)n / (t - t0);
}

static bool json_out;
static int rows;

static void row(const char *group, const char *name, double ops, double bytes_per_op)
{
	if (ops < 0) {
		printf(json_out ? "%s{\"group\":\"%s\",\"name\":\"%s\",\"error\":\"%s\"}"
		                : "%-10s %-30s FAILED: %s\n",
		       json_out ? (rows ? ",\n " : " ") : "", group, name, pq_err_detail());
		rows++;
		return;
	}
	if (json_out) {
		printf("%s{\"group\":\"%s\",\"name\":\"%s\",\"ops_per_s\":%.1f",
		       rows ? ",\n " : " ", group, name, ops);
		if (bytes_per_op > 0)
			printf(",\"mb_per_s\":%.1f", ops * bytes_per_op / 1e6);
		printf("}");
	} else if (bytes_per_op > 0) {
		printf("%-10s %-30s %12.1f ops/s %10.1f us/op %9.1f MB/s\n", group, name, ops,
		       1e6 / ops, ops * bytes_per_op / 1e6);
	} else {
		printf("%-10s %-30s %12.1f ops/s %10.1f us/op\n", group, name, ops, 1e6 / ops);
	}
	rows++;
	fflush(stdout);
}

/* ---- primitives ------------------------------------------------------------------------ */

struct buf_arg {
	uint8_t *buf;
	size_t len;
	pq_hash_alg alg;
	pq_aead *aead;
	uint64_t next; /* next chunk index: chunks are sealed in order */
	uint8_t *out;
};

static int op_hash(void *a)
{
	struct buf_arg *b = a;
	uint8_t d[PQ_HASH_MAX];
	return pq_hash(b->alg, b->buf, b->len, d);
}

static int op_crc(void *a)
{
	struct buf_arg *b = a;
	volatile uint32_t c = pq_crc32(0, b->buf, b->len);
	(void)c;
	return PQ_OK;
}

static int op_aead(void *a)
{
	struct buf_arg *b = a;
	return pq_aead_seal_chunk(b->aead, b->next++, b->buf, b->len, b->out);
}

struct sig_arg {
	pq_alg alg;
	pq_key *key;
	uint8_t msg[1024];
	uint8_t sig[PQ_HYBRID_SIG_MAX];
	size_t sig_len;
	pq_hybrid_key hyb;
};

static int op_keygen(void *a)
{
	struct sig_arg *s = a;
	pq_key *k = NULL;
	int rc = pq_key_generate(s->alg, &k);
	pq_key_free(k);
	return rc;
}

static int op_sign(void *a)
{
	struct sig_arg *s = a;
	s->sig_len = sizeof(s->sig);
	return pq_sign(s->key, NULL, s->msg, sizeof(s->msg), s->sig, &s->sig_len);
}

static int op_verify(void *a)
{
	struct sig_arg *s = a;
	return pq_verify(s->key, NULL, s->msg, sizeof(s->msg), s->sig, s->sig_len);
}

static int op_hsign(void *a)
{
	struct sig_arg *s = a;
	s->sig_len = sizeof(s->sig);
	return pq_hybrid_sign(&s->hyb, NULL, 0, s->msg, sizeof(s->msg), s->sig, &s->sig_len);
}

static int op_hverify(void *a)
{
	struct sig_arg *s = a;
	return pq_hybrid_verify(&s->hyb, NULL, 0, s->msg, sizeof(s->msg), s->sig, s->sig_len);
}

struct kem_arg {
	pq_key *key;
	uint8_t ct[PQ_KEM_CT_MAX];
	size_t ct_len;
	pq_wrap_recipient rcpt;
	uint8_t blob[PQ_WRAP_MAX];
	size_t blob_len;
};

static int op_encap(void *a)
{
	struct kem_arg *k = a;
	uint8_t ss[32];
	k->ct_len = sizeof(k->ct);
	return pq_kem_encap(k->key, NULL, 0, k->ct, &k->ct_len, ss);
}

static int op_decap(void *a)
{
	struct kem_arg *k = a;
	uint8_t ss[32];
	return pq_kem_decap(k->key, k->ct, k->ct_len, ss);
}

static int op_wrap(void *a)
{
	struct kem_arg *k = a;
	uint8_t key[32] = {1};
	k->blob_len = sizeof(k->blob);
	return pq_wrap(&k->rcpt, (const uint8_t *)"VIN", 3, key, 32, k->blob, &k->blob_len);
}

static int op_unwrap(void *a)
{
	struct kem_arg *k = a;
	uint8_t key[64];
	size_t kl = sizeof(key);
	return pq_unwrap(&k->rcpt, (const uint8_t *)"VIN", 3, k->blob, k->blob_len, key, &kl);
}

static int bench_primitives(double secs)
{
	static const pq_alg sig_algs[] = {PQ_ALG_ED25519, PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44,
	                                  PQ_ALG_MLDSA65, PQ_ALG_MLDSA87};
	static const pq_alg kem_algs[] = {PQ_ALG_X25519, PQ_ALG_MLKEM512, PQ_ALG_MLKEM768,
	                                  PQ_ALG_MLKEM1024};
	struct buf_arg b = {0};
	uint8_t hdr[PQ_AEAD_HDR_LEN], key[32] = {7};
	char name[64];
	int rc = PQ_OK;

	b.len = 1 << 20;
	b.buf = calloc(1, b.len);
	b.out = malloc(b.len + 16);
	if (!b.buf || !b.out) {
		rc = PQ_ERR_NOMEM;
		goto out;
	}
	for (int h = 0; h < 4; h++) {
		b.alg = (pq_hash_alg)h;
		snprintf(name, sizeof(name), "%s (1 MiB)", pq_hash_name(b.alg));
		row("hash", name, measure(op_hash, &b, secs), (double)b.len);
	}
	row("hash", "crc32 (1 MiB)", measure(op_crc, &b, secs), (double)b.len);
	b.len = PQ_AEAD_CHUNK_DEFAULT;
	/* a stream long enough for any run: 2^31 chunks of 64 KiB */
	rc = pq_aead_seal_init(key, (uint64_t)b.len << 31, (uint32_t)b.len, hdr, &b.aead);
	if (rc != PQ_OK)
		goto out;
	row("aead", "aes-256-gcm chunk (64 KiB)", measure(op_aead, &b, secs), (double)b.len);
	pq_aead_free(b.aead);

	for (size_t i = 0; i < sizeof(sig_algs) / sizeof(sig_algs[0]); i++) {
		struct sig_arg s = {.alg = sig_algs[i]};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row("sign", name, measure(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &s.key);
		if (rc != PQ_OK)
			goto out;
		snprintf(name, sizeof(name), "%s sign (1 KiB)", n);
		row("sign", name, measure(op_sign, &s, secs), 0);
		snprintf(name, sizeof(name), "%s verify (1 KiB)", n);
		row("sign", name, measure(op_verify, &s, secs), 0);
		pq_key_free(s.key);
	}
	{
		struct sig_arg s = {0};
		pq_key *c = NULL, *q = NULL;
		rc = pq_key_generate(PQ_ALG_ECDSA_P256, &c);
		if (rc == PQ_OK)
			rc = pq_key_generate(PQ_ALG_MLDSA65, &q);
		if (rc != PQ_OK) {
			pq_key_free(c);
			goto out;
		}
		s.hyb.classical = c;
		s.hyb.pq = q;
		row("sign", "hybrid ecdsa+ml-dsa-65 sign", measure(op_hsign, &s, secs), 0);
		row("sign", "hybrid ecdsa+ml-dsa-65 verify", measure(op_hverify, &s, secs), 0);
		pq_key_free(c);
		pq_key_free(q);
	}
	for (size_t i = 0; i < sizeof(kem_algs) / sizeof(kem_algs[0]); i++) {
		struct sig_arg s = {.alg = kem_algs[i]};
		struct kem_arg k = {0};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row("kem", name, measure(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &k.key);
		if (rc != PQ_OK)
			goto out;
		snprintf(name, sizeof(name), "%s encap", n);
		row("kem", name, measure(op_encap, &k, secs), 0);
		snprintf(name, sizeof(name), "%s decap", n);
		row("kem", name, measure(op_decap, &k, secs), 0);
		pq_key_free(k.key);
	}
	{
		struct kem_arg k = {0};
		pq_key *x = NULL, *m = NULL;
		rc = pq_key_generate(PQ_ALG_X25519, &x);
		if (rc == PQ_OK)
			rc = pq_key_generate(PQ_ALG_MLKEM768, &m);
		if (rc != PQ_OK) {
			pq_key_free(x);
			goto out;
		}
		k.rcpt.x25519 = x;
		k.rcpt.mlkem = m;
		row("kem", "hybrid key wrap (x25519+ml-kem-768)", measure(op_wrap, &k, secs), 0);
		row("kem", "hybrid key unwrap", measure(op_unwrap, &k, secs), 0);
		pq_key_free(x);
		pq_key_free(m);
	}
out:
	free(b.buf);
	free(b.out);
	return rc;
}

/* ---- handshakes ------------------------------------------------------------------------- */

struct hs_arg {
	SSL_CTX *cctx;
	char port[16];
};

static int op_handshake(void *a)
{
	struct hs_arg *h = a;
	tls_probe_result res;
	return tls_probe(h->cctx, "127.0.0.1", h->port, NULL, 5000, 0, &res);
}

static int write_pki(const char *dir, pq_alg alg)
{
	pq_key *cak = NULL, *sk = NULL;
	pq_cert *ca = NULL, *sc = NULL;
	char p[600];
	pq_cert_req careq = {.kind = PQ_CERT_CA, .common_name = "bench CA"};
	pq_cert_req sreq = {.kind = PQ_CERT_SERVER, .common_name = "localhost"};
	int rc = pq_key_generate(alg, &cak);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&careq, cak, NULL, cak, &ca);
	if (rc == PQ_OK)
		rc = pq_key_generate(alg, &sk);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&sreq, sk, ca, cak, &sc);
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.crt", dir, pq_alg_name(alg));
		rc = pq_cert_save(sc, p, true);
	}
	if (rc == PQ_OK) {
		snprintf(p, sizeof(p), "%s/%s.key", dir, pq_alg_name(alg));
		rc = pq_key_save_private(sk, p, true);
	}
	pq_key_free(cak);
	pq_key_free(sk);
	pq_cert_free(ca);
	pq_cert_free(sc);
	return rc;
}

static int bench_handshakes(double secs)
{
	char dir[] = "/tmp/pqota-bench-XXXXXX";
	static const pq_alg algs[] = {PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44, PQ_ALG_MLDSA65,
	                              PQ_ALG_MLDSA87};
	int rc = PQ_OK;
	if (!mkdtemp(dir))
		return pq_err_set(PQ_ERR_IO, "temporary directory");
	for (size_t i = 0; rc == PQ_OK && i < 4; i++)
		rc = write_pki(dir, algs[i]);
	for (int id = 0; rc == PQ_OK && id < PQ_PROFILE_COUNT; id++) {
		const pq_profile *p = pq_profile_by_id(id);
		char cert[600], key[600], name[64];
		SSL_CTX *sctx = NULL;
		tls_responder *r = NULL;
		struct hs_arg h = {0};
		snprintf(cert, sizeof(cert), "%s/%s.crt", dir, pq_alg_name(p->cert_alg));
		snprintf(key, sizeof(key), "%s/%s.key", dir, pq_alg_name(p->cert_alg));
		tls_opts so = {.profile = p, .cert_file = cert, .key_file = key};
		tls_opts co = {.profile = p};
		rc = tls_server_ctx_new(&so, &sctx);
		if (rc == PQ_OK)
			rc = tls_client_ctx_new(&co, &h.cctx);
		/* full handshakes only: no session cache on either side */
		if (rc == PQ_OK) {
			SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
			SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
			SSL_CTX_set_session_cache_mode(h.cctx, SSL_SESS_CACHE_OFF);
			rc = tls_responder_new(sctx, "127.0.0.1", "0", &r);
		}
		if (rc == PQ_OK)
			rc = tls_responder_start(r, NULL, NULL);
		if (rc == PQ_OK) {
			snprintf(h.port, sizeof(h.port), "%d", tls_responder_port(r));
			snprintf(name, sizeof(name), "%2d %s", id, p->name);
			row("handshake", name, measure(op_handshake, &h, secs), 0);
		}
		tls_responder_free(r);
		SSL_CTX_free(sctx);
		SSL_CTX_free(h.cctx);
	}
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "pqota: warning: could not remove %s\n", dir);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: pqota bench crypto [--seconds S] [--only primitives|handshakes] [--json]\n"
	       "\n"
	       "Measures each primitive (hashes, AEAD, signatures, KEMs, hybrid signature and key\n"
	       "wrap) and full TLS 1.3 handshakes per PQC profile over loopback (client and\n"
	       "responder in one process, one connection at a time), and prints a table.\n"
	       "  --seconds S   time per row (default 0.5)\n");
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {{"seconds", required_argument, NULL, 's'},
	                                   {"only", required_argument, NULL, 'o'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	double secs = 0.5;
	const char *only = NULL;
	int c, rc;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "crypto") != 0)
		return cli_usage_error("bench", "unknown benchmark '%s' (crypto)", argv[1]);
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': {
			char *end;
			secs = strtod(optarg, &end);
			if (*end || secs < 0.01 || secs > 60)
				return cli_usage_error("bench", "--seconds takes 0.01..60");
			break;
		}
		case 'o':
			if (strcmp(optarg, "primitives") && strcmp(optarg, "handshakes"))
				return cli_usage_error("bench", "--only primitives|handshakes");
			only = optarg;
			break;
		case 'j':
			json_out = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("bench", "bad option");
		}
	}
	if (optind != argc)
		return cli_usage_error("bench", "unexpected argument '%s'", argv[optind]);
	if (json_out)
		printf("{\"openssl\":\"%s\",\"rows\":[\n", tls_openssl_version());
	else
		printf("pqota bench crypto: %s, %.2f s per row\n%-10s %-30s %18s %16s\n",
		       tls_openssl_version(), secs, "group", "operation", "rate", "latency");
	rc = PQ_OK;
	if (!only || strcmp(only, "primitives") == 0)
		rc = bench_primitives(secs);
	if (rc == PQ_OK && (!only || strcmp(only, "handshakes") == 0))
		rc = bench_handshakes(secs);
	if (json_out)
		printf("\n]}\n");
	if (rc != PQ_OK)
		return cli_error(rc, "bench crypto");
	return CLI_EXIT_OK;
}
