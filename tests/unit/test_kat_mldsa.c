/* test_kat_mldsa.c: ML-DSA (FIPS 204) ACVP and Wycheproof known answers through src/crypto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "crypto/key.h"
#include "crypto/sig.h"
#include "kat.h"
#include "testutil.h"

/* Case totals stated in the vectors' README; a truncated or swapped file fails the test. */
#define TOTAL_KEYGEN     30
#define TOTAL_SIGGEN     99
#define TOTAL_SIGVER     110
#define TOTAL_WYCHEPROOF 160

#define KEY_MAX 4896 /* ML-DSA-87 sk, the largest key encoding */

static pq_alg sig_alg(json_t *c)
{
	pq_alg alg = PQ_ALG_NONE;
	const char *ps = kat_str(c, "parameterSet");
	if (pq_alg_from_name(ps, &alg) != PQ_OK || !pq_alg_is_sig(alg) || !pq_alg_is_pq(alg))
		fail_msg("case %s: unknown ML-DSA parameter set '%s'", kat_str(c, "id"), ps);
	return alg;
}

/* ---- the FIPS 204 interfaces of the ACVP sigGen/sigVer groups ----------------------- */

enum sig_mode {
	MODE_INTERNAL, /* Sign_internal / Verify_internal: the message is M' */
	MODE_PURE,     /* ML-DSA.Sign / Verify with a context */
	MODE_PREHASH,  /* HashML-DSA: M' built here, then the internal interface */
	MODE_EXTMU,    /* from mu */
};

static const char *const mode_label[2][4] = {
    {"mldsa siggen internal", "mldsa siggen pure", "mldsa siggen preHash", "mldsa siggen extMu"},
    {"mldsa sigver internal", "mldsa sigver pure", "mldsa sigver preHash", "mldsa sigver extMu"},
};

static enum sig_mode sig_mode_of(json_t *c)
{
	const char *iface = kat_str(c, "interface"), *ph = kat_str(c, "preHash");
	bool mu = kat_bool(c, "externalMu");

	if (strcmp(iface, "internal") == 0 && strcmp(ph, "none") == 0)
		return mu ? MODE_EXTMU : MODE_INTERNAL;
	if (strcmp(iface, "external") == 0 && !mu && strcmp(ph, "pure") == 0)
		return MODE_PURE;
	if (strcmp(iface, "external") == 0 && !mu && strcmp(ph, "preHash") == 0)
		return MODE_PREHASH;
	fail_msg("case %s: unknown interface %s/%s/externalMu=%d", kat_str(c, "id"), iface, ph, mu);
	return MODE_INTERNAL;
}

/* The HashML-DSA pre-hashes: DER OID 2.16.840.1.101.3.4.2.x and PH output length. */
static const struct {
	const char *name; /* ACVP hashAlg */
	const char *evp;  /* OpenSSL digest */
	uint8_t oid_last;
	size_t out_len;
} prehashes[] = {
    {"SHA3-224", "SHA3-224", 0x07, 28},  {"SHA3-256", "SHA3-256", 0x08, 32},
    {"SHA3-384", "SHA3-384", 0x09, 48},  {"SHA3-512", "SHA3-512", 0x0a, 64},
    {"SHAKE-128", "SHAKE128", 0x0b, 32}, {"SHAKE-256", "SHAKE256", 0x0c, 64},
};

/* M' = 0x01 || len(ctx) || ctx || OID(PH) || PH(M), malloc'd; NULL for an unknown hashAlg. */
static uint8_t *hash_mldsa_mprime(const char *hash_alg, const uint8_t *ctx, size_t ctx_len,
                                  const uint8_t *msg, size_t msg_len, size_t *out_len)
{
	static const uint8_t oid_prefix[10] = {0x06, 0x09, 0x60, 0x86, 0x48,
	                                       0x01, 0x65, 0x03, 0x04, 0x02};
	size_t n = sizeof(prehashes) / sizeof(prehashes[0]), i, off;
	EVP_MD_CTX *h;
	EVP_MD *md;
	uint8_t *mp;

	for (i = 0; i < n && strcmp(prehashes[i].name, hash_alg) != 0; i++)
		;
	if (i == n)
		return NULL;
	assert_true(ctx_len <= 255);
	mp = malloc(2 + ctx_len + sizeof(oid_prefix) + 1 + prehashes[i].out_len);
	assert_non_null(mp);
	mp[0] = 0x01;
	mp[1] = (uint8_t)ctx_len;
	if (ctx_len)
		memcpy(mp + 2, ctx, ctx_len);
	off = 2 + ctx_len;
	memcpy(mp + off, oid_prefix, sizeof(oid_prefix));
	off += sizeof(oid_prefix);
	mp[off++] = prehashes[i].oid_last;

	md = EVP_MD_fetch(NULL, prehashes[i].evp, NULL);
	h = EVP_MD_CTX_new();
	assert_non_null(md);
	assert_non_null(h);
	assert_int_equal(EVP_DigestInit_ex(h, md, NULL), 1);
	assert_int_equal(EVP_DigestUpdate(h, msg, msg_len), 1);
	if (EVP_MD_xof(md)) {
		assert_int_equal(EVP_DigestFinalXOF(h, mp + off, prehashes[i].out_len), 1);
	} else {
		unsigned int dlen = 0;
		assert_int_equal(EVP_DigestFinal_ex(h, mp + off, &dlen), 1);
		assert_int_equal(dlen, prehashes[i].out_len);
	}
	EVP_MD_CTX_free(h);
	EVP_MD_free(md);
	*out_len = off + prehashes[i].out_len;
	return mp;
}

/* What pq_sign / pq_verify get for one ACVP case. */
struct sig_input {
	pq_sig_opts opts;
	uint8_t *msg, *ctx;
	size_t msg_len, ctx_len;
};

/* Fills `in` for the case's interface; false (reported) if the case cannot be set up. */
static bool sig_input_from_case(json_t *c, enum sig_mode mode, struct sig_input *in)
{
	const char *id = kat_str(c, "id");
	uint8_t *m;
	size_t m_len;

	memset(in, 0, sizeof(*in));
	switch (mode) {
	case MODE_INTERNAL:
		in->msg = kat_hex(c, "message", &in->msg_len);
		in->opts.internal = true;
		return true;
	case MODE_PURE:
		in->msg = kat_hex(c, "message", &in->msg_len);
		in->ctx = kat_hex(c, "context", &in->ctx_len);
		in->opts.context = in->ctx;
		in->opts.context_len = in->ctx_len;
		return true;
	case MODE_PREHASH:
		in->ctx = kat_hex(c, "context", &in->ctx_len);
		m = kat_hex(c, "message", &m_len);
		in->msg = hash_mldsa_mprime(kat_str(c, "hashAlg"), in->ctx, in->ctx_len, m, m_len,
		                            &in->msg_len);
		free(m);
		in->opts.internal = true;
		if (!in->msg)
			return kat_fail(id, "unsupported hashAlg '%s'", kat_str(c, "hashAlg"));
		return true;
	case MODE_EXTMU:
		in->msg = kat_hex(c, "mu", &in->msg_len);
		in->opts.external_mu = true;
		if (in->msg_len != 64)
			return kat_fail(id, "mu of %zu bytes", in->msg_len);
		return true;
	}
	return false;
}

static void sig_input_free(struct sig_input *in)
{
	free(in->msg);
	free(in->ctx);
}

static bool all_zero(const uint8_t *b, size_t len)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < len; i++)
		acc |= b[i];
	return acc == 0;
}

/* Checks that `key`'s raw public key is `pk`. */
static bool public_matches(const char *id, const pq_key *key, const uint8_t *pk, size_t pk_len)
{
	uint8_t got[KEY_MAX];
	size_t got_len = sizeof(got);
	if (pq_key_public_raw(key, got, &got_len) != PQ_OK)
		return kat_fail(id, "pq_key_public_raw: %s", pq_err_detail());
	return kat_bytes_match(id, "pk", got, got_len, pk, pk_len);
}

/* ---- ACVP keyGen -------------------------------------------------------------------- */

static bool keygen_case(json_t *c)
{
	const char *id = kat_str(c, "id");
	pq_alg alg = sig_alg(c);
	size_t seed_len, pk_len, sk_len, got_len = KEY_MAX;
	uint8_t *seed = kat_hex(c, "seed", &seed_len);
	uint8_t *pk = kat_hex(c, "pk", &pk_len), *sk = kat_hex(c, "sk", &sk_len);
	uint8_t got[KEY_MAX];
	pq_key *key = NULL;
	bool ok = false;

	if (pq_key_from_seed(alg, seed, seed_len, &key) != PQ_OK) {
		kat_fail(id, "pq_key_from_seed: %s", pq_err_detail());
		goto out;
	}
	ok = public_matches(id, key, pk, pk_len);
	if (pq_key_private_raw(key, got, &got_len) != PQ_OK)
		ok = kat_fail(id, "pq_key_private_raw: %s", pq_err_detail());
	else
		ok = kat_bytes_match(id, "sk", got, got_len, sk, sk_len) && ok;
out:
	pq_key_free(key);
	free(seed);
	free(pk);
	free(sk);
	return ok;
}

static void test_acvp_keygen(void **state)
{
	json_t *root = kat_load("mldsa_keygen.json", TOTAL_KEYGEN), *c;
	struct kat_tally t = {0};
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		kat_tally_case(&t, "mldsa keygen", kat_str(c, "parameterSet"), keygen_case(c));
	}
	kat_tally_finish(&t, root, TOTAL_KEYGEN);
	json_decref(root);
}

/* ---- ACVP sigGen -------------------------------------------------------------------- */

/* Signs with the imported sk (deterministic, or hedged with the given rnd) and compares the
 * signature byte for byte; then it must verify, under pk when the case gives one. */
static bool siggen_case(json_t *c, pq_alg alg, enum sig_mode mode)
{
	const char *id = kat_str(c, "id");
	bool det = kat_bool(c, "deterministic"), ok = false;
	size_t sk_len, rnd_len, want_len, pk_len = 0, sig_len = PQ_SIG_MAX;
	uint8_t *sk = kat_hex(c, "sk", &sk_len), *rnd = kat_hex(c, "rnd", &rnd_len);
	uint8_t *want = kat_hex(c, "signature", &want_len), *pk = NULL;
	uint8_t sig[PQ_SIG_MAX];
	pq_key *key = NULL, *pub = NULL;
	struct sig_input in;
	int rc;

	if (!sig_input_from_case(c, mode, &in))
		goto out;
	if (rnd_len != 32 || det != all_zero(rnd, rnd_len)) {
		kat_fail(id, "vector inconsistent: deterministic=%d with rnd of %zu bytes", det,
		         rnd_len);
		goto out;
	}
	if (det)
		in.opts.deterministic = true;
	else
		in.opts.test_rnd = rnd;
	rc = pq_key_from_private(alg, sk, sk_len, &key);
	if (rc != PQ_OK) {
		kat_fail(id, "pq_key_from_private (%zu bytes): %s", sk_len, pq_err_detail());
		goto out;
	}
	rc = pq_sign(key, &in.opts, in.msg, in.msg_len, sig, &sig_len);
	if (rc != PQ_OK) {
		kat_fail(id, "pq_sign failed (%d): %s", rc, pq_err_detail());
		goto out;
	}
	ok = kat_bytes_match(id, "signature", sig, sig_len, want, want_len);
	if (kat_has(c, "pk")) {
		pk = kat_hex(c, "pk", &pk_len);
		ok = public_matches(id, key, pk, pk_len) && ok;
		rc = pq_key_from_public(alg, pk, pk_len, &pub);
		if (rc != PQ_OK) {
			ok = kat_fail(id, "pq_key_from_public: %s", pq_err_detail());
			goto out;
		}
	}
	rc = pq_verify(pub ? pub : key, &in.opts, in.msg, in.msg_len, want, want_len);
	if (rc != PQ_OK)
		ok = kat_fail(id, "the expected signature does not verify (%d) under %s: %s", rc,
		              pub ? "pk" : "the sk's public half", pq_err_detail());
out:
	pq_key_free(key);
	pq_key_free(pub);
	sig_input_free(&in);
	free(sk);
	free(rnd);
	free(want);
	free(pk);
	return ok;
}

static void test_acvp_siggen(void **state)
{
	json_t *root = kat_load("mldsa_siggen.json", TOTAL_SIGGEN), *c;
	struct kat_tally t = {0};
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		enum sig_mode mode = sig_mode_of(c);
		char key[96];
		snprintf(key, sizeof(key), "%s/%s/%s/%s/%s", kat_str(c, "parameterSet"),
		         kat_str(c, "interface"), kat_str(c, "preHash"),
		         kat_bool(c, "externalMu") ? "extMu" : "msg",
		         kat_bool(c, "deterministic") ? "det" : "hedged");
		kat_tally_case(&t, mode_label[0][mode], key, siggen_case(c, sig_alg(c), mode));
	}
	kat_tally_finish(&t, root, TOTAL_SIGGEN);
	json_decref(root);
}

/* ---- ACVP sigVer -------------------------------------------------------------------- */

/* pq_verify must return PQ_OK exactly when testPassed. */
static bool sigver_case(json_t *c, pq_alg alg, enum sig_mode mode)
{
	const char *id = kat_str(c, "id");
	bool want = kat_bool(c, "testPassed"), ok = false;
	size_t pk_len, sig_len;
	uint8_t *pk = kat_hex(c, "pk", &pk_len), *sig = kat_hex(c, "signature", &sig_len);
	pq_key *pub = NULL;
	struct sig_input in;
	int rc;

	if (!sig_input_from_case(c, mode, &in))
		goto out;
	rc = pq_key_from_public(alg, pk, pk_len, &pub);
	if (rc == PQ_OK)
		rc = pq_verify(pub, &in.opts, in.msg, in.msg_len, sig, sig_len);
	ok = (rc == PQ_OK) == want;
	if (!ok)
		kat_fail(id, "%s signature (%s) was %s (%d): %s", want ? "valid" : "invalid",
		         kat_str(c, "reason"), rc == PQ_OK ? "accepted" : "rejected", rc,
		         rc == PQ_OK ? "" : pq_err_detail());
out:
	pq_key_free(pub);
	sig_input_free(&in);
	free(pk);
	free(sig);
	return ok;
}

static void test_acvp_sigver(void **state)
{
	json_t *root = kat_load("mldsa_sigver.json", TOTAL_SIGVER), *c;
	struct kat_tally t = {0};
	long rejected = 0;
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		enum sig_mode mode = sig_mode_of(c);
		char key[96];
		bool ok = sigver_case(c, sig_alg(c), mode);
		snprintf(key, sizeof(key), "%s/%s/%s/%s", kat_str(c, "parameterSet"),
		         kat_str(c, "interface"), kat_str(c, "preHash"),
		         kat_bool(c, "externalMu") ? "extMu" : "msg");
		kat_tally_case(&t, mode_label[1][mode], key, ok);
		rejected += ok && !kat_bool(c, "testPassed");
	}
	kat_tally_finish(&t, root, TOTAL_SIGVER);
	printf("mldsa sigver: %ld invalid signatures rejected\n", rejected);
	json_decref(root);
}

/* ---- Wycheproof --------------------------------------------------------------------- */

/* External pure ML-DSA.Verify (absent context = empty): accept exactly the valid cases.
 * A public key or context the wrappers refuse counts as a rejection. */
static bool wp_verify_case(json_t *c, pq_alg alg, const char *id, bool valid)
{
	size_t pk_len, msg_len, sig_len, ctx_len = 0;
	uint8_t *pk = kat_hex(c, "pk", &pk_len), *msg = kat_hex(c, "message", &msg_len);
	uint8_t *sig = kat_hex(c, "signature", &sig_len), *ctx = NULL;
	pq_sig_opts opts = {0};
	pq_key *pub = NULL;
	bool ok = true;
	int rc;

	if (kat_has(c, "context")) {
		ctx = kat_hex(c, "context", &ctx_len);
		opts.context = ctx;
		opts.context_len = ctx_len;
	}
	rc = pq_key_from_public(alg, pk, pk_len, &pub);
	if (rc == PQ_OK)
		rc = pq_verify(pub, &opts, msg, msg_len, sig, sig_len);
	if ((rc == PQ_OK) != valid)
		ok = kat_fail(id, "%s case ('%s') was %s (%d): %s", valid ? "valid" : "invalid",
		              kat_str(c, "comment"), rc == PQ_OK ? "accepted" : "rejected", rc,
		              rc == PQ_OK ? "" : pq_err_detail());
	pq_key_free(pub);
	free(pk);
	free(msg);
	free(sig);
	free(ctx);
	return ok;
}

/* Signs `msg` (mu when opts->external_mu) and compares with `want`; the result must then
 * verify under `pub`. Returns the pq_sign code; *ok cleared on a mismatch. */
static int wp_sign_and_compare(const char *id, const char *what, const pq_key *key,
                               const pq_key *pub, const pq_sig_opts *opts, const uint8_t *msg,
                               size_t msg_len, const uint8_t *want, size_t want_len, bool *ok)
{
	uint8_t sig[PQ_SIG_MAX];
	size_t sig_len = sizeof(sig);
	int rc = pq_sign(key, opts, msg, msg_len, sig, &sig_len);
	if (rc != PQ_OK || !want_len)
		return rc; /* the caller judges failures by validity */
	if (!kat_bytes_match(id, what, sig, sig_len, want, want_len))
		*ok = false;
	if (pub && pq_verify(pub, opts, msg, msg_len, sig, sig_len) != PQ_OK)
		*ok = kat_fail(id, "%s does not verify under pk: %s", what, pq_err_detail());
	return rc;
}

/* KeyGen_internal(seed) must give pk; then signing the message with its context, and signing
 * from mu where given, deterministically or with rnd, must give the signature. A seed that is
 * not 32 bytes or a context over 255 bytes must be rejected. */
static bool wp_sign_case(json_t *c, pq_alg alg, const char *id, bool valid)
{
	size_t seed_len, want_len, pk_len = 0, rnd_len = 0, len, n_signed = 0;
	uint8_t *seed = kat_hex(c, "seed", &seed_len);
	uint8_t *want = kat_hex(c, "signature", &want_len), *pk = NULL, *rnd = NULL, *buf;
	pq_sig_opts opts = {0};
	pq_key *key = NULL, *pub = NULL;
	bool ok = true, rejected = false;
	int rc;

	if (kat_has(c, "rnd")) {
		rnd = kat_hex(c, "rnd", &rnd_len);
		assert_int_equal(rnd_len, 32);
		opts.test_rnd = rnd;
	} else {
		opts.deterministic = true;
	}
	if (valid && !want_len)
		ok = kat_fail(id, "vector inconsistent: a valid case without a signature");
	rc = pq_key_from_seed(alg, seed, seed_len, &key);
	if (rc != PQ_OK) {
		rejected = true;
		goto judge;
	}
	if (kat_has(c, "pk") && *kat_str(c, "pk")) {
		pk = kat_hex(c, "pk", &pk_len);
		ok = public_matches(id, key, pk, pk_len);
		if (pq_key_from_public(alg, pk, pk_len, &pub) != PQ_OK)
			ok = kat_fail(id, "pq_key_from_public: %s", pq_err_detail());
	}
	if (kat_has(c, "message")) {
		uint8_t *ctx = NULL;
		size_t ctx_len = 0;
		if (kat_has(c, "context"))
			ctx = kat_hex(c, "context", &ctx_len);
		opts.context = ctx;
		opts.context_len = ctx_len;
		buf = kat_hex(c, "message", &len);
		rc = wp_sign_and_compare(id, "signature of the message", key, pub, &opts, buf, len,
		                         want, want_len, &ok);
		opts.context = NULL;
		opts.context_len = 0;
		free(ctx);
		free(buf);
		n_signed++;
		if (rc != PQ_OK) {
			rejected = true;
			goto judge;
		}
	}
	if (kat_has(c, "mu")) {
		opts.external_mu = true;
		buf = kat_hex(c, "mu", &len);
		rc = wp_sign_and_compare(id, "signature from mu", key, pub, &opts, buf, len, want,
		                         want_len, &ok);
		free(buf);
		n_signed++;
		if (rc != PQ_OK)
			rejected = true;
	}
	if (!n_signed)
		fail_msg("case %s: neither a message nor mu", id);
judge:
	if (valid && rejected)
		ok = kat_fail(id, "valid case ('%s') failed (%d): %s", kat_str(c, "comment"), rc,
		              pq_err_detail());
	else if (!valid && !rejected)
		ok = kat_fail(id, "invalid case ('%s', seed %zu bytes) was accepted",
		              kat_str(c, "comment"), seed_len);
	pq_key_free(key);
	pq_key_free(pub);
	free(seed);
	free(want);
	free(pk);
	free(rnd);
	return ok;
}

static void test_wycheproof(void **state)
{
	json_t *root = kat_load("wycheproof_mldsa.json", TOTAL_WYCHEPROOF), *c;
	struct kat_tally t = {0};
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		const char *id = kat_str(c, "id"), *kind = kat_str(c, "kind");
		const char *result = kat_str(c, "result"), *label = NULL;
		pq_alg alg = sig_alg(c);
		bool valid = strcmp(result, "valid") == 0, ok = false;
		char key[96];

		if (!valid && strcmp(result, "invalid") != 0)
			fail_msg("case %s: unknown result '%s'", id, result);
		if (strcmp(kind, "verify") == 0) {
			label = "wycheproof mldsa verify";
			ok = wp_verify_case(c, alg, id, valid);
		} else if (strcmp(kind, "signFromSeed") == 0) {
			label = "wycheproof mldsa signFromSeed";
			ok = wp_sign_case(c, alg, id, valid);
		} else {
			fail_msg("case %s: unknown kind '%s'", id, kind);
		}
		snprintf(key, sizeof(key), "%s/%s/%s", kat_str(c, "parameterSet"), kind, result);
		kat_tally_case(&t, label, key, ok);
	}
	kat_tally_finish(&t, root, TOTAL_WYCHEPROOF);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_acvp_keygen),
	    cmocka_unit_test(test_acvp_siggen),
	    cmocka_unit_test(test_acvp_sigver),
	    cmocka_unit_test(test_wycheproof),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
