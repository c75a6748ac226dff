/* kem.c: ML-KEM and X25519 encapsulation, and the hybrid X25519 + ML-KEM-768 key wrap. */
#include "crypto/kem.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/aead.h"
#include "crypto/hash.h"

size_t pq_kem_ct_len(pq_alg alg)
{
	switch (alg) {
	case PQ_ALG_X25519:
		return 32;
	case PQ_ALG_MLKEM512:
		return 768;
	case PQ_ALG_MLKEM768:
		return 1088;
	case PQ_ALG_MLKEM1024:
		return 1568;
	default:
		return 0;
	}
}

static int x25519_derive(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t ss[PQ_KEM_SS_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	size_t len = PQ_KEM_SS_LEN;
	int rc = PQ_OK;
	if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer(ctx, peer) <= 0 ||
	    EVP_PKEY_derive(ctx, ss, &len) <= 0 || len != PQ_KEM_SS_LEN)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "X25519 key agreement");
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int pq_kem_encap(const pq_key *pub, const uint8_t *ikm, size_t ikm_len, uint8_t *ct, size_t *ct_len,
                 uint8_t ss[PQ_KEM_SS_LEN])
{
	pq_alg alg = pq_key_alg(pub);
	size_t need = pq_kem_ct_len(alg);
	int rc;

	if (!pq_alg_is_kem(alg))
		return pq_err_set(PQ_ERR_INVAL, "%s is not a KEM key", pq_alg_name(alg));
	if (*ct_len < need)
		return pq_err_set(PQ_ERR_RANGE, "%s ciphertext needs %zu bytes", pq_alg_name(alg),
		                  need);
	if (ikm && ikm_len != 32)
		return pq_err_set(PQ_ERR_INVAL, "KEM randomness must be 32 bytes");

	if (alg == PQ_ALG_X25519) {
		pq_key *eph = NULL;
		size_t len = 32;
		rc = ikm ? pq_key_from_seed(PQ_ALG_X25519, ikm, 32, &eph)
		         : pq_key_generate(PQ_ALG_X25519, &eph);
		if (rc != PQ_OK)
			return rc;
		rc = pq_key_public_raw(eph, ct, &len);
		if (rc == PQ_OK)
			rc = x25519_derive(pq_key_evp(eph), pq_key_evp(pub), ss);
		pq_key_free(eph);
		if (rc == PQ_OK)
			*ct_len = 32;
		return rc;
	}

	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pq_key_evp(pub), NULL);
	OSSL_PARAM params[2] = {OSSL_PARAM_END, OSSL_PARAM_END};
	size_t sslen = PQ_KEM_SS_LEN;
	if (ikm)
		params[0] =
		    OSSL_PARAM_construct_octet_string(OSSL_KEM_PARAM_IKME, (void *)ikm, ikm_len);
	rc = PQ_OK;
	if (!ctx || EVP_PKEY_encapsulate_init(ctx, params) <= 0 ||
	    EVP_PKEY_encapsulate(ctx, ct, ct_len, ss, &sslen) <= 0 || sslen != PQ_KEM_SS_LEN)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "%s encapsulation", pq_alg_name(alg));
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int pq_kem_decap(const pq_key *priv, const uint8_t *ct, size_t ct_len, uint8_t ss[PQ_KEM_SS_LEN])
{
	pq_alg alg = pq_key_alg(priv);
	int rc = PQ_OK;

	if (!pq_alg_is_kem(alg))
		return pq_err_set(PQ_ERR_INVAL, "%s is not a KEM key", pq_alg_name(alg));
	if (!pq_key_has_private(priv))
		return pq_err_set(PQ_ERR_INVAL, "decapsulation needs a private %s key",
		                  pq_alg_name(alg));
	if (ct_len != pq_kem_ct_len(alg))
		return pq_err_set(PQ_ERR_FORMAT, "%s ciphertext must be %zu bytes, not %zu",
		                  pq_alg_name(alg), pq_kem_ct_len(alg), ct_len);
	if (alg == PQ_ALG_X25519) {
		pq_key *peer = NULL;
		rc = pq_key_from_public(PQ_ALG_X25519, ct, ct_len, &peer);
		if (rc != PQ_OK)
			return rc;
		rc = x25519_derive(pq_key_evp(priv), pq_key_evp(peer), ss);
		pq_key_free(peer);
		return rc;
	}
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pq_key_evp(priv), NULL);
	size_t sslen = PQ_KEM_SS_LEN;
	if (!ctx || EVP_PKEY_decapsulate_init(ctx, NULL) <= 0 ||
	    EVP_PKEY_decapsulate(ctx, ss, &sslen, ct, ct_len) <= 0 || sslen != PQ_KEM_SS_LEN)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "%s decapsulation", pq_alg_name(alg));
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/* ---- hybrid key wrap --------------------------------------------------------------- */

#define WRAP_MAGIC   "PQW1"
#define WRAP_VERSION 1
#define WRAP_SUITE   1 /* X25519 + ML-KEM-768, HKDF-SHA256, AES-256-GCM */
#define WRAP_LABEL   "pqota-wrap-v1"
#define OFF_EPH      8
#define OFF_CT       (OFF_EPH + 32)
#define OFF_NONCE    (OFF_CT + 1088)
#define OFF_SEALED   (OFF_NONCE + 12)

static int check_recipient(const pq_wrap_recipient *r, bool need_private)
{
	if (!r || !r->x25519 || !r->mlkem || pq_key_alg(r->x25519) != PQ_ALG_X25519 ||
	    pq_key_alg(r->mlkem) != PQ_ALG_MLKEM768)
		return pq_err_set(PQ_ERR_INVAL, "key wrap needs an X25519 and an ML-KEM-768 key");
	if (need_private && (!pq_key_has_private(r->x25519) || !pq_key_has_private(r->mlkem)))
		return pq_err_set(PQ_ERR_INVAL, "unwrapping needs both private keys");
	return PQ_OK;
}

/* KEK = HKDF-SHA256(salt=label, ikm=ss_mlkem||ss_x25519,
 *                   info=label||" kek"||SHA256(hdr||eph||ct||pk_x25519||ek_mlkem)). */
static int derive_kek(const pq_wrap_recipient *r, const uint8_t *blob,
                      const uint8_t ss_k[PQ_KEM_SS_LEN], const uint8_t ss_x[PQ_KEM_SS_LEN],
                      uint8_t kek[32])
{
	uint8_t pk_x[32], ek[1184], ikm[64], info[sizeof(WRAP_LABEL) - 1 + 4 + 32];
	size_t lx = sizeof(pk_x), lk = sizeof(ek);
	pq_hash_ctx *h = NULL;
	int rc;

	rc = pq_key_public_raw(r->x25519, pk_x, &lx);
	if (rc == PQ_OK)
		rc = pq_key_public_raw(r->mlkem, ek, &lk);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &h);
	if (rc == PQ_OK)
		rc = pq_hash_update(h, blob, OFF_NONCE); /* header, eph, ct */
	if (rc == PQ_OK)
		rc = pq_hash_update(h, pk_x, lx);
	if (rc == PQ_OK)
		rc = pq_hash_update(h, ek, lk);
	memcpy(info, WRAP_LABEL " kek", sizeof(WRAP_LABEL) - 1 + 4);
	if (rc == PQ_OK)
		rc = pq_hash_final(h, info + sizeof(WRAP_LABEL) - 1 + 4);
	pq_hash_free(h);
	if (rc != PQ_OK)
		return rc;
	memcpy(ikm, ss_k, 32);
	memcpy(ikm + 32, ss_x, 32);
	rc = pq_hkdf(PQ_HASH_SHA256, (const uint8_t *)WRAP_LABEL, sizeof(WRAP_LABEL) - 1, ikm,
	             sizeof(ikm), info, sizeof(info), kek, 32);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return rc;
}

/* GCM AAD = the 8-byte header || caller's aad */
static int wrap_aad(const uint8_t *hdr, const uint8_t *aad, size_t aad_len, uint8_t **out)
{
	uint8_t *a = OPENSSL_malloc(8 + aad_len + 1);
	if (!a)
		return pq_err_set(PQ_ERR_NOMEM, "wrap aad");
	memcpy(a, hdr, 8);
	if (aad_len)
		memcpy(a + 8, aad, aad_len);
	*out = a;
	return PQ_OK;
}

int pq_wrap(const pq_wrap_recipient *to, const uint8_t *aad, size_t aad_len, const uint8_t *key,
            size_t key_len, uint8_t *out, size_t *out_len)
{
	uint8_t ss_k[32], ss_x[32], kek[32];
	uint8_t *a = NULL;
	size_t n;
	int rc = check_recipient(to, false);
	if (rc != PQ_OK)
		return rc;
	if (key_len == 0 || key_len > PQ_WRAP_KEY_MAX)
		return pq_err_set(PQ_ERR_INVAL, "wrapped key must be 1..%d bytes, not %zu",
		                  PQ_WRAP_KEY_MAX, key_len);
	if (*out_len < PQ_WRAP_OVERHEAD + key_len)
		return pq_err_set(PQ_ERR_RANGE, "wrap output needs %zu bytes",
		                  (size_t)PQ_WRAP_OVERHEAD + key_len);
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 4 magic bytes, no string */
	memcpy(out, WRAP_MAGIC, 4);
	out[4] = WRAP_VERSION;
	out[5] = WRAP_SUITE;
	out[6] = (uint8_t)(key_len >> 8);
	out[7] = (uint8_t)key_len;
	n = 32;
	rc = pq_kem_encap(to->x25519, NULL, 0, out + OFF_EPH, &n, ss_x);
	if (rc != PQ_OK)
		goto out;
	n = 1088;
	rc = pq_kem_encap(to->mlkem, NULL, 0, out + OFF_CT, &n, ss_k);
	if (rc != PQ_OK)
		goto out;
	rc = derive_kek(to, out, ss_k, ss_x, kek);
	if (rc != PQ_OK)
		goto out;
	rc = pq_random(out + OFF_NONCE, 12);
	if (rc != PQ_OK)
		goto out;
	rc = wrap_aad(out, aad, aad_len, &a);
	if (rc != PQ_OK)
		goto out;
	rc = pq_gcm_seal(kek, out + OFF_NONCE, a, 8 + aad_len, key, key_len, out + OFF_SEALED,
	                 out + OFF_SEALED + key_len);
	if (rc == PQ_OK)
		*out_len = PQ_WRAP_OVERHEAD + key_len;
out:
	OPENSSL_free(a);
	OPENSSL_cleanse(ss_k, sizeof(ss_k));
	OPENSSL_cleanse(ss_x, sizeof(ss_x));
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

int pq_unwrap(const pq_wrap_recipient *me, const uint8_t *aad, size_t aad_len, const uint8_t *in,
              size_t in_len, uint8_t *key, size_t *key_len)
{
	uint8_t ss_k[32], ss_x[32], kek[32];
	uint8_t *a = NULL;
	size_t klen;
	int rc = check_recipient(me, true);
	if (rc != PQ_OK)
		return rc;
	if (in_len < PQ_WRAP_OVERHEAD + 1 || memcmp(in, WRAP_MAGIC, 4) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "not a pqota wrapped key (%zu bytes)", in_len);
	if (in[4] != WRAP_VERSION || in[5] != WRAP_SUITE)
		return pq_err_set(PQ_ERR_FORMAT, "wrapped key version %u suite %u unsupported",
		                  in[4], in[5]);
	klen = (size_t)in[6] << 8 | in[7];
	if (klen == 0 || klen > PQ_WRAP_KEY_MAX || in_len != PQ_WRAP_OVERHEAD + klen)
		return pq_err_set(PQ_ERR_FORMAT, "wrapped key length %zu does not match %zu bytes",
		                  klen, in_len);
	if (*key_len < klen)
		return pq_err_set(PQ_ERR_RANGE, "unwrap buffer of %zu < %zu", *key_len, klen);
	rc = pq_kem_decap(me->x25519, in + OFF_EPH, 32, ss_x);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(PQ_ERR_VERIFY, "wrapped key: X25519 share");
		goto out;
	}
	rc = pq_kem_decap(me->mlkem, in + OFF_CT, 1088, ss_k);
	if (rc != PQ_OK)
		goto out;
	rc = derive_kek(me, in, ss_k, ss_x, kek);
	if (rc != PQ_OK)
		goto out;
	rc = wrap_aad(in, aad, aad_len, &a);
	if (rc != PQ_OK)
		goto out;
	rc = pq_gcm_open(kek, in + OFF_NONCE, a, 8 + aad_len, in + OFF_SEALED, klen,
	                 in + OFF_SEALED + klen, key);
	if (rc != PQ_OK) {
		rc =
		    pq_err_set(PQ_ERR_VERIFY,
		               "wrapped key does not open: tampered, wrong recipient or wrong aad");
		goto out;
	}
	*key_len = klen;
out:
	OPENSSL_free(a);
	OPENSSL_cleanse(ss_k, sizeof(ss_k));
	OPENSSL_cleanse(ss_x, sizeof(ss_x));
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}
