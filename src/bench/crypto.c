/* crypto.c: throughput of each primitive, and full TLS 1.3 handshakes per profile over
 * loopback, reported row by row through the caller's callback. */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/ssl.h>

#include "core/fileio.h"
#include "crypto/aead.h"
#include "crypto/cert.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/profile.h"
#include "crypto/sig.h"
#include "tls/probe.h"
#include "tls/tls.h"

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

/* The hashes and CRC-32 over 1 MiB, then an AES-256-GCM chunk of 64 KiB. */
static int bench_buffers(double secs, bench_row_fn row, void *user)
{
	struct buf_arg b = {0};
	uint8_t hdr[PQ_AEAD_HDR_LEN], key[32] = {7};
	char name[64];
	int rc = PQ_OK;

	b.len = 1 << 20;
	b.buf = calloc(1, b.len);
	b.out = malloc(b.len + 16);
	if (!b.buf || !b.out) {
		rc = pq_err_set(PQ_ERR_NOMEM, "benchmark buffers");
		goto out;
	}
	for (int h = 0; h < 4; h++) {
		b.alg = (pq_hash_alg)h;
		snprintf(name, sizeof(name), "%s (1 MiB)", pq_hash_name(b.alg));
		row(user, "hash", name, bench_rate(op_hash, &b, secs), (double)b.len);
	}
	row(user, "hash", "crc32 (1 MiB)", bench_rate(op_crc, &b, secs), (double)b.len);
	b.len = PQ_AEAD_CHUNK_DEFAULT;
	/* a stream long enough for any run: 2^31 chunks of 64 KiB */
	rc = pq_aead_seal_init(key, (uint64_t)b.len << 31, (uint32_t)b.len, hdr, &b.aead);
	if (rc != PQ_OK)
		goto out;
	row(user, "aead", "aes-256-gcm chunk (64 KiB)", bench_rate(op_aead, &b, secs),
	    (double)b.len);
	pq_aead_free(b.aead);
out:
	free(b.buf);
	free(b.out);
	return rc;
}

/* keygen, sign and verify (1 KiB) per signature algorithm, then the hybrid signature. */
static int bench_signatures(double secs, bench_row_fn row, void *user)
{
	static const pq_alg algs[] = {PQ_ALG_ED25519, PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44,
	                              PQ_ALG_MLDSA65, PQ_ALG_MLDSA87};
	char name[64];
	int rc;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		struct sig_arg s = {.alg = algs[i]};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row(user, "sign", name, bench_rate(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &s.key);
		if (rc != PQ_OK)
			return rc;
		snprintf(name, sizeof(name), "%s sign (1 KiB)", n);
		row(user, "sign", name, bench_rate(op_sign, &s, secs), 0);
		snprintf(name, sizeof(name), "%s verify (1 KiB)", n);
		row(user, "sign", name, bench_rate(op_verify, &s, secs), 0);
		pq_key_free(s.key);
	}
	struct sig_arg s = {0};
	pq_key *c = NULL, *q = NULL;
	rc = pq_key_generate(PQ_ALG_ECDSA_P256, &c);
	if (rc == PQ_OK)
		rc = pq_key_generate(PQ_ALG_MLDSA65, &q);
	if (rc == PQ_OK) {
		s.hyb.classical = c;
		s.hyb.pq = q;
		row(user, "sign", "hybrid ecdsa+ml-dsa-65 sign", bench_rate(op_hsign, &s, secs), 0);
		row(user, "sign", "hybrid ecdsa+ml-dsa-65 verify", bench_rate(op_hverify, &s, secs),
		    0);
	}
	pq_key_free(c);
	pq_key_free(q);
	return rc;
}

/* keygen, encap and decap per KEM, then the hybrid key wrap. */
static int bench_kems(double secs, bench_row_fn row, void *user)
{
	static const pq_alg algs[] = {PQ_ALG_X25519, PQ_ALG_MLKEM512, PQ_ALG_MLKEM768,
	                              PQ_ALG_MLKEM1024};
	char name[64];
	int rc;
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		struct sig_arg s = {.alg = algs[i]};
		struct kem_arg k = {0};
		const char *n = pq_alg_name(s.alg);
		snprintf(name, sizeof(name), "%s keygen", n);
		row(user, "kem", name, bench_rate(op_keygen, &s, secs), 0);
		rc = pq_key_generate(s.alg, &k.key);
		if (rc != PQ_OK)
			return rc;
		snprintf(name, sizeof(name), "%s encap", n);
		row(user, "kem", name, bench_rate(op_encap, &k, secs), 0);
		snprintf(name, sizeof(name), "%s decap", n);
		row(user, "kem", name, bench_rate(op_decap, &k, secs), 0);
		pq_key_free(k.key);
	}
	struct kem_arg k = {0};
	pq_key *x = NULL, *m = NULL;
	rc = pq_key_generate(PQ_ALG_X25519, &x);
	if (rc == PQ_OK)
		rc = pq_key_generate(PQ_ALG_MLKEM768, &m);
	if (rc == PQ_OK) {
		k.rcpt.x25519 = x;
		k.rcpt.mlkem = m;
		row(user, "kem", "hybrid key wrap (x25519+ml-kem-768)",
		    bench_rate(op_wrap, &k, secs), 0);
		row(user, "kem", "hybrid key unwrap", bench_rate(op_unwrap, &k, secs), 0);
	}
	pq_key_free(x);
	pq_key_free(m);
	return rc;
}

int bench_crypto_primitives(double secs, bench_row_fn row, void *user)
{
	int rc = bench_buffers(secs, row, user);
	if (rc == PQ_OK)
		rc = bench_signatures(secs, row, user);
	if (rc == PQ_OK)
		rc = bench_kems(secs, row, user);
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

/* dir/<alg>.crt and dir/<alg>.key: a server certificate (CN localhost) and its key, issued by
 * a throwaway CA of the same algorithm. */
static int pki_paths(const char *dir, pq_alg alg, char *crt, char *key, size_t len)
{
	char name[64];
	snprintf(name, sizeof(name), "%s.crt", pq_alg_name(alg));
	int rc = pq_path_join(crt, len, dir, name);
	snprintf(name, sizeof(name), "%s.key", pq_alg_name(alg));
	if (rc == PQ_OK)
		rc = pq_path_join(key, len, dir, name);
	return rc;
}

static int write_pki(const char *dir, pq_alg alg)
{
	pq_key *cak = NULL, *sk = NULL;
	pq_cert *ca = NULL, *sc = NULL;
	char crt[PATH_MAX], key[PATH_MAX];
	pq_cert_req careq = {.kind = PQ_CERT_CA, .common_name = "bench CA"};
	pq_cert_req sreq = {.kind = PQ_CERT_SERVER, .common_name = "localhost"};
	int rc = pki_paths(dir, alg, crt, key, sizeof(crt));
	if (rc == PQ_OK)
		rc = pq_key_generate(alg, &cak);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&careq, cak, NULL, cak, &ca);
	if (rc == PQ_OK)
		rc = pq_key_generate(alg, &sk);
	if (rc == PQ_OK)
		rc = pq_cert_issue(&sreq, sk, ca, cak, &sc);
	if (rc == PQ_OK)
		rc = pq_cert_save(sc, crt, true);
	if (rc == PQ_OK)
		rc = pq_key_save_private(sk, key, true);
	pq_key_free(cak);
	pq_key_free(sk);
	pq_cert_free(ca);
	pq_cert_free(sc);
	return rc;
}

/* One profile: a responder on an ephemeral loopback port, full handshakes only (no session
 * cache or tickets on either side). */
static int bench_profile(const char *dir, const pq_profile *p, double secs, bench_row_fn row,
                         void *user)
{
	char cert[PATH_MAX], key[PATH_MAX], name[64];
	SSL_CTX *sctx = NULL;
	tls_responder *r = NULL;
	struct hs_arg h = {0};
	int rc = pki_paths(dir, p->cert_alg, cert, key, sizeof(cert));
	tls_opts so = {.profile = p, .cert_file = cert, .key_file = key};
	tls_opts co = {.profile = p};
	if (rc == PQ_OK)
		rc = tls_server_ctx_new(&so, &sctx);
	if (rc == PQ_OK)
		rc = tls_client_ctx_new(&co, &h.cctx);
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
		snprintf(name, sizeof(name), "%2d %s", p->id, p->name);
		row(user, "handshake", name, bench_rate(op_handshake, &h, secs), 0);
	}
	tls_responder_free(r);
	SSL_CTX_free(sctx);
	SSL_CTX_free(h.cctx);
	return rc;
}

int bench_crypto_handshakes(const char *dir, double secs, bench_row_fn row, void *user)
{
	static const pq_alg algs[] = {PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44, PQ_ALG_MLDSA65,
	                              PQ_ALG_MLDSA87};
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < sizeof(algs) / sizeof(algs[0]); i++)
		rc = write_pki(dir, algs[i]);
	for (int id = 0; rc == PQ_OK && id < PQ_PROFILE_COUNT; id++)
		rc = bench_profile(dir, pq_profile_by_id(id), secs, row, user);
	return rc;
}
