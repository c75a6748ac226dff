/* test_kat_mlkem.c: ML-KEM (FIPS 203) ACVP and Wycheproof known answers through src/crypto. */
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

#include "crypto/kem.h"
#include "crypto/key.h"
#include "kat.h"
#include "testutil.h"

/* Case totals stated in the vectors' README; a truncated or swapped file fails the test. */
#define TOTAL_KEYGEN     45
#define TOTAL_ENCAPDECAP 126
#define TOTAL_WYCHEPROOF 129

#define KEY_MAX 3200 /* larger than any ML-KEM dk (3168) */

static pq_alg kem_alg(json_t *c)
{
	pq_alg alg = PQ_ALG_NONE;
	const char *ps = kat_str(c, "parameterSet");
	if (pq_alg_from_name(ps, &alg) != PQ_OK || !pq_alg_is_kem(alg) || !pq_alg_is_pq(alg))
		fail_msg("case %s: unknown ML-KEM parameter set '%s'", kat_str(c, "id"), ps);
	return alg;
}

/* ---- shared steps ------------------------------------------------------------------- */

/* Imports ek and encapsulates with the fixed m; PQ_OK and c, K out, or the failing code. */
static int encap_fixed(pq_alg alg, const uint8_t *ek, size_t ek_len, const uint8_t *m, size_t m_len,
                       uint8_t *ct, size_t *ct_len, uint8_t ss[PQ_KEM_SS_LEN])
{
	pq_key *pub = NULL;
	int rc = pq_key_from_public(alg, ek, ek_len, &pub);
	if (rc != PQ_OK)
		return rc;
	*ct_len = PQ_KEM_CT_MAX;
	rc = pq_kem_encap(pub, m, m_len, ct, ct_len, ss);
	pq_key_free(pub);
	return rc;
}

/* Imports dk and decapsulates c; PQ_OK and K out, or the failing code. */
static int decap_expanded(pq_alg alg, const uint8_t *dk, size_t dk_len, const uint8_t *c,
                          size_t c_len, uint8_t ss[PQ_KEM_SS_LEN])
{
	pq_key *priv = NULL;
	int rc = pq_key_from_private(alg, dk, dk_len, &priv);
	if (rc != PQ_OK)
		return rc;
	rc = pq_kem_decap(priv, c, c_len, ss);
	pq_key_free(priv);
	return rc;
}

/* K-bar = J(z || c) = SHAKE256(z || c, 32), computed independently of the library under test. */
static void implicit_rejection_key(const uint8_t *dk, size_t dk_len, const uint8_t *c, size_t c_len,
                                   uint8_t out[32])
{
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	assert_non_null(h);
	assert_true(dk_len >= 32);
	assert_int_equal(EVP_DigestInit_ex(h, EVP_shake256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(h, dk + dk_len - 32, 32), 1);
	assert_int_equal(EVP_DigestUpdate(h, c, c_len), 1);
	assert_int_equal(EVP_DigestFinalXOF(h, out, 32), 1);
	EVP_MD_CTX_free(h);
}

/* ---- ACVP keyGen -------------------------------------------------------------------- */

static bool keygen_case(json_t *c)
{
	const char *id = kat_str(c, "id");
	pq_alg alg = kem_alg(c);
	size_t d_len, z_len, ek_len, dk_len, got_len;
	uint8_t *d = kat_hex(c, "d", &d_len), *z = kat_hex(c, "z", &z_len);
	uint8_t *ek = kat_hex(c, "ek", &ek_len), *dk = kat_hex(c, "dk", &dk_len);
	uint8_t seed[64], got[KEY_MAX];
	pq_key *key = NULL;
	bool ok = false;

	assert_int_equal(d_len, 32);
	assert_int_equal(z_len, 32);
	memcpy(seed, d, 32);
	memcpy(seed + 32, z, 32);
	if (pq_key_from_seed(alg, seed, sizeof(seed), &key) != PQ_OK) {
		kat_fail(id, "pq_key_from_seed: %s", pq_err_detail());
		goto out;
	}
	got_len = sizeof(got);
	if (pq_key_public_raw(key, got, &got_len) != PQ_OK) {
		kat_fail(id, "pq_key_public_raw: %s", pq_err_detail());
		goto out;
	}
	ok = kat_bytes_match(id, "ek", got, got_len, ek, ek_len);
	got_len = sizeof(got);
	if (pq_key_private_raw(key, got, &got_len) != PQ_OK) {
		ok = kat_fail(id, "pq_key_private_raw: %s", pq_err_detail());
		goto out;
	}
	ok = kat_bytes_match(id, "dk", got, got_len, dk, dk_len) && ok;
out:
	pq_key_free(key);
	free(d);
	free(z);
	free(ek);
	free(dk);
	return ok;
}

static void test_acvp_keygen(void **state)
{
	json_t *root = kat_load("mlkem_keygen.json", TOTAL_KEYGEN), *c;
	struct kat_tally t = {0};
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		kat_tally_case(&t, "mlkem keygen", kat_str(c, "parameterSet"), keygen_case(c));
	}
	kat_tally_finish(&t, root, TOTAL_KEYGEN);
	json_decref(root);
}

/* ---- ACVP encapDecap ---------------------------------------------------------------- */

/* Encaps_internal(ek, m) gives c and K; the matching dk decapsulates c back to K. */
static bool encapsulation_case(json_t *c, pq_alg alg, const char *id)
{
	size_t ek_len, m_len, c_len, k_len, dk_len, ct_len;
	uint8_t *ek = kat_hex(c, "ek", &ek_len), *m = kat_hex(c, "m", &m_len);
	uint8_t *want_c = kat_hex(c, "c", &c_len), *want_k = kat_hex(c, "k", &k_len);
	uint8_t *dk = kat_hex(c, "dk", &dk_len);
	uint8_t ct[PQ_KEM_CT_MAX], ss[PQ_KEM_SS_LEN], ss2[PQ_KEM_SS_LEN];
	bool ok = false;
	int rc;

	rc = encap_fixed(alg, ek, ek_len, m, m_len, ct, &ct_len, ss);
	if (rc != PQ_OK) {
		kat_fail(id, "encapsulation failed (%d): %s", rc, pq_err_detail());
		goto out;
	}
	ok = kat_bytes_match(id, "c", ct, ct_len, want_c, c_len);
	ok = kat_bytes_match(id, "k", ss, sizeof(ss), want_k, k_len) && ok;
	rc = decap_expanded(alg, dk, dk_len, want_c, c_len, ss2);
	if (rc != PQ_OK)
		ok = kat_fail(id, "round-trip decapsulation failed (%d): %s", rc, pq_err_detail());
	else
		ok = kat_bytes_match(id, "round-trip k", ss2, sizeof(ss2), want_k, k_len) && ok;
out:
	free(ek);
	free(m);
	free(want_c);
	free(want_k);
	free(dk);
	return ok;
}

/* Decaps_internal(dk, c): a modified c must give the implicit-rejection key, not an error. */
static bool decapsulation_case(json_t *c, pq_alg alg, const char *id)
{
	size_t dk_len, c_len, k_len;
	uint8_t *dk = kat_hex(c, "dk", &dk_len), *ct = kat_hex(c, "c", &c_len);
	uint8_t *want_k = kat_hex(c, "k", &k_len);
	uint8_t ss[PQ_KEM_SS_LEN], kbar[32];
	bool reject = kat_bool(c, "implicitRejection"), ok = true;
	int rc;

	/* The expected K of a rejected case must itself be J(z || c), or the case tests nothing. */
	implicit_rejection_key(dk, dk_len, ct, c_len, kbar);
	if (reject != (k_len == 32 && memcmp(kbar, want_k, 32) == 0))
		ok = kat_fail(id, "vector inconsistent: implicitRejection=%d but k %s J(z||c)",
		              reject, reject ? "!=" : "==");
	rc = decap_expanded(alg, dk, dk_len, ct, c_len, ss);
	if (rc != PQ_OK)
		ok = kat_fail(id, "decapsulation (%s) returned %d instead of a key: %s",
		              kat_str(c, "reason"), rc, pq_err_detail());
	else
		ok = kat_bytes_match(id, reject ? "implicit-rejection k" : "k", ss, sizeof(ss),
		                     want_k, k_len) &&
		     ok;
	free(dk);
	free(ct);
	free(want_k);
	return ok;
}

/* FIPS 203 7.3: importing dk must fail exactly when testPassed is false. */
static bool dk_check_case(json_t *c, pq_alg alg, const char *id)
{
	size_t dk_len, got_len = KEY_MAX;
	uint8_t *dk = kat_hex(c, "dk", &dk_len), got[KEY_MAX];
	bool want = kat_bool(c, "testPassed"), ok = true;
	pq_key *key = NULL;
	int rc = pq_key_from_private(alg, dk, dk_len, &key);

	if ((rc == PQ_OK) != want) {
		ok = kat_fail(id, "dk (%s, %zu bytes) %s, expected %s: %s", kat_str(c, "reason"),
		              dk_len, rc == PQ_OK ? "accepted" : "rejected",
		              want ? "accept" : "reject", rc == PQ_OK ? "" : pq_err_detail());
	} else if (rc == PQ_OK) {
		if (pq_key_private_raw(key, got, &got_len) != PQ_OK)
			ok = kat_fail(id, "pq_key_private_raw: %s", pq_err_detail());
		else
			ok = kat_bytes_match(id, "re-exported dk", got, got_len, dk, dk_len);
	}
	pq_key_free(key);
	free(dk);
	return ok;
}

/* FIPS 203 7.2: importing ek must fail exactly when testPassed is false. */
static bool ek_check_case(json_t *c, pq_alg alg, const char *id)
{
	size_t ek_len, got_len = KEY_MAX;
	uint8_t *ek = kat_hex(c, "ek", &ek_len), got[KEY_MAX];
	bool want = kat_bool(c, "testPassed"), ok = true;
	pq_key *key = NULL;
	int rc = pq_key_from_public(alg, ek, ek_len, &key);

	if ((rc == PQ_OK) != want) {
		ok = kat_fail(id, "ek (%s, %zu bytes) %s, expected %s: %s", kat_str(c, "reason"),
		              ek_len, rc == PQ_OK ? "accepted" : "rejected",
		              want ? "accept" : "reject", rc == PQ_OK ? "" : pq_err_detail());
	} else if (rc == PQ_OK) {
		if (pq_key_public_raw(key, got, &got_len) != PQ_OK)
			ok = kat_fail(id, "pq_key_public_raw: %s", pq_err_detail());
		else
			ok = kat_bytes_match(id, "re-exported ek", got, got_len, ek, ek_len);
	}
	pq_key_free(key);
	free(ek);
	return ok;
}

static void test_acvp_encapdecap(void **state)
{
	json_t *root = kat_load("mlkem_encapdecap.json", TOTAL_ENCAPDECAP), *c;
	struct kat_tally t = {0};
	long ek_nonstandard = 0;
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		const char *id = kat_str(c, "id"), *kind = kat_str(c, "kind"), *label = NULL;
		pq_alg alg = kem_alg(c);
		char key[96];
		bool ok = false;

		if (strcmp(kind, "encapsulation") == 0) {
			label = "mlkem encap";
			ok = encapsulation_case(c, alg, id);
		} else if (strcmp(kind, "decapsulation") == 0) {
			label = "mlkem decap";
			ok = decapsulation_case(c, alg, id);
		} else if (strcmp(kind, "decapsulationKeyCheck") == 0) {
			label = "mlkem dk check";
			ok = dk_check_case(c, alg, id);
		} else if (strcmp(kind, "encapsulationKeyCheck") == 0) {
			label = "mlkem ek check";
			ok = ek_check_case(c, alg, id);
			if (kat_has(c, "ekLengthStandard") && !kat_bool(c, "ekLengthStandard"))
				ek_nonstandard++;
		} else {
			fail_msg("case %s: unknown kind '%s'", id, kind);
		}
		snprintf(key, sizeof(key), "%s/%s", kat_str(c, "parameterSet"), kind);
		kat_tally_case(&t, label, key, ok);
	}
	kat_tally_finish(&t, root, TOTAL_ENCAPDECAP);
	/* ACVP-Server issue #460: these only exercise the length check (see the README). */
	printf("mlkem ek check: %ld rejected eks had a non-standard length\n", ek_nonstandard);
	json_decref(root);
}

/* ---- Wycheproof --------------------------------------------------------------------- */

/* Valid: c and K as given. Invalid (bad length, coefficient >= q): must be rejected. */
static bool wp_encaps_case(json_t *c, pq_alg alg, const char *id, bool valid)
{
	size_t ek_len, m_len, c_len, k_len, ct_len = 0;
	uint8_t *ek = kat_hex(c, "ek", &ek_len), *m = kat_hex(c, "m", &m_len);
	uint8_t *want_c = kat_hex(c, "c", &c_len), *want_k = kat_hex(c, "K", &k_len);
	uint8_t ct[PQ_KEM_CT_MAX], ss[PQ_KEM_SS_LEN];
	bool ok = true;
	int rc = encap_fixed(alg, ek, ek_len, m, m_len, ct, &ct_len, ss);

	if (!valid) {
		if (rc == PQ_OK)
			ok = kat_fail(id, "invalid ek (%zu bytes, '%s') was accepted", ek_len,
			              kat_str(c, "comment"));
	} else if (rc != PQ_OK) {
		ok = kat_fail(id, "encapsulation failed (%d): %s", rc, pq_err_detail());
	} else {
		ok = kat_bytes_match(id, "c", ct, ct_len, want_c, c_len);
		ok = kat_bytes_match(id, "K", ss, sizeof(ss), want_k, k_len) && ok;
	}
	free(ek);
	free(m);
	free(want_c);
	free(want_k);
	return ok;
}

/* KeyGen_internal from d || z must give ek, then Decaps(c) == K; bad seed or c lengths must
 * be rejected. */
static bool wp_seed_decaps_case(json_t *c, pq_alg alg, const char *id, bool valid)
{
	size_t seed_len, c_len, k_len, ek_len, got_len = KEY_MAX;
	uint8_t *seed = kat_hex(c, "seed", &seed_len), *ct = kat_hex(c, "c", &c_len);
	uint8_t *want_k = kat_hex(c, "K", &k_len), *ek = kat_hex(c, "ek", &ek_len);
	uint8_t got[KEY_MAX], ss[PQ_KEM_SS_LEN];
	pq_key *key = NULL;
	bool ok = true;
	int rc = pq_key_from_seed(alg, seed, seed_len, &key);

	if (rc == PQ_OK && ek_len) {
		if (pq_key_public_raw(key, got, &got_len) != PQ_OK)
			ok = kat_fail(id, "pq_key_public_raw: %s", pq_err_detail());
		else
			ok = kat_bytes_match(id, "ek", got, got_len, ek, ek_len);
	}
	if (rc == PQ_OK)
		rc = pq_kem_decap(key, ct, c_len, ss);
	if (!valid) {
		if (rc == PQ_OK)
			ok = kat_fail(id,
			              "invalid input ('%s', seed %zu bytes, c %zu bytes) was "
			              "accepted",
			              kat_str(c, "comment"), seed_len, c_len);
	} else if (rc != PQ_OK) {
		ok = kat_fail(id, "seed decapsulation failed (%d): %s", rc, pq_err_detail());
	} else {
		ok = kat_bytes_match(id, "K", ss, sizeof(ss), want_k, k_len) && ok;
	}
	pq_key_free(key);
	free(seed);
	free(ct);
	free(want_k);
	free(ek);
	return ok;
}

/* Expanded dk: valid cases (some on the implicit-rejection path) give K; a wrong dk or c
 * length or a dk failing the 7.3 hash check must be rejected. */
static bool wp_expanded_decaps_case(json_t *c, pq_alg alg, const char *id, bool valid)
{
	size_t dk_len, c_len, k_len;
	uint8_t *dk = kat_hex(c, "dk", &dk_len), *ct = kat_hex(c, "c", &c_len);
	uint8_t *want_k = kat_hex(c, "K", &k_len), ss[PQ_KEM_SS_LEN];
	bool ok = true;
	int rc = decap_expanded(alg, dk, dk_len, ct, c_len, ss);

	if (!valid) {
		if (rc == PQ_OK)
			ok = kat_fail(id,
			              "invalid input ('%s', dk %zu bytes, c %zu bytes) was "
			              "accepted",
			              kat_str(c, "comment"), dk_len, c_len);
	} else if (rc != PQ_OK) {
		ok = kat_fail(id, "decapsulation failed (%d): %s", rc, pq_err_detail());
	} else {
		ok = kat_bytes_match(id, "K", ss, sizeof(ss), want_k, k_len);
	}
	free(dk);
	free(ct);
	free(want_k);
	return ok;
}

static void test_wycheproof(void **state)
{
	json_t *root = kat_load("wycheproof_mlkem.json", TOTAL_WYCHEPROOF), *c;
	struct kat_tally t = {0};
	long modulus = 0;
	size_t i;
	(void)state;

	json_array_foreach(json_object_get(root, "cases"), i, c)
	{
		const char *id = kat_str(c, "id"), *kind = kat_str(c, "kind");
		const char *result = kat_str(c, "result"), *label = NULL;
		pq_alg alg = kem_alg(c);
		bool valid = strcmp(result, "valid") == 0, ok = false;
		char key[96];

		if (!valid && strcmp(result, "invalid") != 0)
			fail_msg("case %s: unknown result '%s'", id, result);
		if (strcmp(kind, "encaps") == 0) {
			json_t *flag;
			size_t j;
			bool overflow =
			    strcmp(kat_str(c, "comment"), "Public key not reduced") == 0;
			json_array_foreach(json_object_get(c, "flags"), j, flag)
			{
				overflow = overflow ||
				           strcmp(json_string_value(flag), "ModulusOverflow") == 0;
			}
			label = "wycheproof mlkem encaps";
			ok = wp_encaps_case(c, alg, id, valid);
			modulus += overflow && ok;
		} else if (strcmp(kind, "seedDecaps") == 0) {
			label = "wycheproof mlkem seedDecaps";
			ok = wp_seed_decaps_case(c, alg, id, valid);
		} else if (strcmp(kind, "expandedDecaps") == 0) {
			label = "wycheproof mlkem expandedDecaps";
			ok = wp_expanded_decaps_case(c, alg, id, valid);
		} else {
			fail_msg("case %s: unknown kind '%s'", id, kind);
		}
		snprintf(key, sizeof(key), "%s/%s/%s", kat_str(c, "parameterSet"), kind, result);
		kat_tally_case(&t, label, key, ok);
	}
	kat_tally_finish(&t, root, TOTAL_WYCHEPROOF);
	/* 8 + 12 + 16 ModulusOverflow and 3 per set "Public key not reduced" (README) */
	printf("wycheproof mlkem encaps: %ld modulus-check rejections ok\n", modulus);
	assert_int_equal(modulus, 8 + 12 + 16 + 3 * 3);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_acvp_keygen),
	    cmocka_unit_test(test_acvp_encapdecap),
	    cmocka_unit_test(test_wycheproof),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
