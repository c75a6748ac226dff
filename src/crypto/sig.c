/* sig.c: Ed25519, ECDSA-P256 and ML-DSA signing and verification; hybrid signatures. */
#include "crypto/sig.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

static bool is_mldsa(pq_alg a)
{
	return a == PQ_ALG_MLDSA44 || a == PQ_ALG_MLDSA65 || a == PQ_ALG_MLDSA87;
}

size_t pq_sig_max_len(pq_alg alg)
{
	switch (alg) {
	case PQ_ALG_ED25519:
		return 64;
	case PQ_ALG_ECDSA_P256:
		return 72;
	case PQ_ALG_MLDSA44:
		return 2420;
	case PQ_ALG_MLDSA65:
		return 3309;
	case PQ_ALG_MLDSA87:
		return 4627;
	default:
		return 0;
	}
}

/* Builds the OSSL_PARAM list for ML-DSA options; classical algorithms accept none. */
static int build_params(pq_alg alg, const pq_sig_opts *o, OSSL_PARAM *params, int *det, int *enc,
                        int *mu)
{
	OSSL_PARAM *p = params;
	if (o && !is_mldsa(alg) &&
	    (o->context_len || o->deterministic || o->test_rnd || o->internal || o->external_mu))
		return pq_err_set(PQ_ERR_UNSUPPORTED, "%s takes no signing options",
		                  pq_alg_name(alg));
	if (o && is_mldsa(alg)) {
		if (o->context_len > PQ_SIG_CTX_MAX)
			return pq_err_set(PQ_ERR_INVAL, "ML-DSA context of %zu bytes exceeds 255",
			                  o->context_len);
		if (o->context_len)
			*p++ =
			    OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_CONTEXT_STRING,
			                                      (void *)o->context, o->context_len);
		if (o->deterministic) {
			*det = 1;
			*p++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_DETERMINISTIC, det);
		}
		if (o->test_rnd)
			*p++ = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_TEST_ENTROPY,
			                                         (void *)o->test_rnd, 32);
		if (o->internal) {
			*enc = 0;
			*p++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_MESSAGE_ENCODING, enc);
		}
		if (o->external_mu) {
			*mu = 1;
			*p++ = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_MU, mu);
		}
	}
	*p = OSSL_PARAM_construct_end();
	return PQ_OK;
}

int pq_sign(const pq_key *key, const pq_sig_opts *opts, const uint8_t *msg, size_t msg_len,
            uint8_t *sig, size_t *sig_len)
{
	pq_alg alg = pq_key_alg(key);
	EVP_MD_CTX *mctx = NULL;
	OSSL_PARAM params[7];
	int det = 0, enc = 1, mu = 0, rc;

	if (!pq_alg_is_sig(alg))
		return pq_err_set(PQ_ERR_INVAL, "%s is not a signature key", pq_alg_name(alg));
	if (!pq_key_has_private(key))
		return pq_err_set(PQ_ERR_INVAL, "signing needs a private %s key", pq_alg_name(alg));
	if (*sig_len < pq_sig_max_len(alg))
		return pq_err_set(PQ_ERR_RANGE, "%s signature buffer of %zu < %zu",
		                  pq_alg_name(alg), *sig_len, pq_sig_max_len(alg));
	rc = build_params(alg, opts, params, &det, &enc, &mu);
	if (rc != PQ_OK)
		return rc;
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		return pq_err_ssl(PQ_ERR_NOMEM, "signing context");
	if (EVP_DigestSignInit_ex(mctx, NULL, alg == PQ_ALG_ECDSA_P256 ? "SHA256" : NULL, NULL,
	                          NULL, pq_key_evp(key), params) != 1 ||
	    EVP_DigestSign(mctx, sig, sig_len, msg, msg_len) != 1)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "%s signing", pq_alg_name(alg));
	EVP_MD_CTX_free(mctx);
	return rc;
}

int pq_verify(const pq_key *key, const pq_sig_opts *opts, const uint8_t *msg, size_t msg_len,
              const uint8_t *sig, size_t sig_len)
{
	pq_alg alg = pq_key_alg(key);
	EVP_MD_CTX *mctx = NULL;
	OSSL_PARAM params[7];
	int det = 0, enc = 1, mu = 0, rc, r;

	if (!pq_alg_is_sig(alg))
		return pq_err_set(PQ_ERR_INVAL, "%s is not a signature key", pq_alg_name(alg));
	rc = build_params(alg, opts, params, &det, &enc, &mu);
	if (rc != PQ_OK)
		return rc;
	if (sig_len == 0 || sig_len > pq_sig_max_len(alg))
		return pq_err_set(PQ_ERR_VERIFY, "%s signature of %zu bytes", pq_alg_name(alg),
		                  sig_len);
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		return pq_err_ssl(PQ_ERR_NOMEM, "verification context");
	if (EVP_DigestVerifyInit_ex(mctx, NULL, alg == PQ_ALG_ECDSA_P256 ? "SHA256" : NULL, NULL,
	                            NULL, pq_key_evp(key), params) != 1) {
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "%s verification setup", pq_alg_name(alg));
		goto out;
	}
	r = EVP_DigestVerify(mctx, sig, sig_len, msg, msg_len);
	if (r == 1) {
		rc = PQ_OK;
	} else {
		ERR_clear_error();
		rc = pq_err_set(PQ_ERR_VERIFY, "%s signature does not verify", pq_alg_name(alg));
	}
out:
	EVP_MD_CTX_free(mctx);
	return rc;
}

/* ---- hybrid ------------------------------------------------------------------------ */

#define HYB_VERSION    1
#define HYB_LABEL      "pqota-hybrid-v1"
#define HYB_LABEL_LEN  (sizeof(HYB_LABEL) - 1)
#define HYB_APPCTX_MAX 200

static int hybrid_check_key(const pq_hybrid_key *k)
{
	if (!k || !k->classical || !k->pq)
		return pq_err_set(PQ_ERR_INVAL, "hybrid key needs a classical and an ML-DSA key");
	pq_alg c = pq_key_alg(k->classical), q = pq_key_alg(k->pq);
	if (c != PQ_ALG_ED25519 && c != PQ_ALG_ECDSA_P256)
		return pq_err_set(PQ_ERR_INVAL,
		                  "hybrid classical half must be Ed25519 or ECDSA-P256, "
		                  "not %s",
		                  pq_alg_name(c));
	if (!is_mldsa(q))
		return pq_err_set(PQ_ERR_INVAL, "hybrid post-quantum half must be ML-DSA, not %s",
		                  pq_alg_name(q));
	return PQ_OK;
}

/* ML-DSA context: label || cl_alg || pq_alg || app context. */
static size_t hybrid_pq_ctx(const pq_hybrid_key *k, const uint8_t *app, size_t app_len,
                            uint8_t *out)
{
	memcpy(out, HYB_LABEL, HYB_LABEL_LEN);
	out[HYB_LABEL_LEN] = (uint8_t)pq_key_alg(k->classical);
	out[HYB_LABEL_LEN + 1] = (uint8_t)pq_key_alg(k->pq);
	if (app_len)
		memcpy(out + HYB_LABEL_LEN + 2, app, app_len);
	return HYB_LABEL_LEN + 2 + app_len;
}

/* Classical message: label || 0x00 || cl_alg || pq_alg || len(app) || app || msg (malloc'd). */
static int hybrid_classical_msg(const pq_hybrid_key *k, const uint8_t *app, size_t app_len,
                                const uint8_t *msg, size_t msg_len, uint8_t **out, size_t *out_len)
{
	size_t pre = HYB_LABEL_LEN + 4 + app_len;
	uint8_t *m = malloc(pre + msg_len + 1);
	if (!m)
		return pq_err_set(PQ_ERR_NOMEM, "hybrid message of %zu bytes", msg_len);
	memcpy(m, HYB_LABEL, HYB_LABEL_LEN);
	m[HYB_LABEL_LEN] = 0;
	m[HYB_LABEL_LEN + 1] = (uint8_t)pq_key_alg(k->classical);
	m[HYB_LABEL_LEN + 2] = (uint8_t)pq_key_alg(k->pq);
	m[HYB_LABEL_LEN + 3] = (uint8_t)app_len;
	if (app_len)
		memcpy(m + HYB_LABEL_LEN + 4, app, app_len);
	if (msg_len)
		memcpy(m + pre, msg, msg_len);
	*out = m;
	*out_len = pre + msg_len;
	return PQ_OK;
}

int pq_hybrid_sign(const pq_hybrid_key *key, const uint8_t *context, size_t context_len,
                   const uint8_t *msg, size_t msg_len, uint8_t *sig, size_t *sig_len)
{
	uint8_t pqctx[HYB_LABEL_LEN + 2 + HYB_APPCTX_MAX];
	uint8_t *cmsg = NULL;
	size_t cmsg_len = 0, l1, l2;
	int rc = hybrid_check_key(key);
	if (rc != PQ_OK)
		return rc;
	if (context_len > HYB_APPCTX_MAX)
		return pq_err_set(PQ_ERR_INVAL, "hybrid context of %zu bytes exceeds %d",
		                  context_len, HYB_APPCTX_MAX);
	size_t need =
	    8 + pq_sig_max_len(pq_key_alg(key->classical)) + pq_sig_max_len(pq_key_alg(key->pq));
	if (*sig_len < need)
		return pq_err_set(PQ_ERR_RANGE, "hybrid signature buffer of %zu < %zu", *sig_len,
		                  need);
	rc = hybrid_classical_msg(key, context, context_len, msg, msg_len, &cmsg, &cmsg_len);
	if (rc != PQ_OK)
		return rc;
	l1 = *sig_len - 8;
	rc = pq_sign(key->classical, NULL, cmsg, cmsg_len, sig + 8, &l1);
	free(cmsg);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "hybrid classical half");
	pq_sig_opts o = {0};
	o.context = pqctx;
	o.context_len = hybrid_pq_ctx(key, context, context_len, pqctx);
	l2 = *sig_len - 8 - l1;
	rc = pq_sign(key->pq, &o, msg, msg_len, sig + 8 + l1, &l2);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "hybrid ML-DSA half");
	sig[0] = HYB_VERSION;
	sig[1] = (uint8_t)pq_key_alg(key->classical);
	sig[2] = (uint8_t)pq_key_alg(key->pq);
	sig[3] = 0;
	sig[4] = (uint8_t)(l1 >> 8);
	sig[5] = (uint8_t)l1;
	sig[6] = (uint8_t)(l2 >> 8);
	sig[7] = (uint8_t)l2;
	*sig_len = 8 + l1 + l2;
	return PQ_OK;
}

int pq_hybrid_verify(const pq_hybrid_key *key, const uint8_t *context, size_t context_len,
                     const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len)
{
	uint8_t pqctx[HYB_LABEL_LEN + 2 + HYB_APPCTX_MAX];
	uint8_t *cmsg = NULL;
	size_t cmsg_len = 0, l1, l2;
	int rc = hybrid_check_key(key), rc2;
	if (rc != PQ_OK)
		return rc;
	if (context_len > HYB_APPCTX_MAX)
		return pq_err_set(PQ_ERR_INVAL, "hybrid context of %zu bytes exceeds %d",
		                  context_len, HYB_APPCTX_MAX);
	if (sig_len < 8)
		return pq_err_set(PQ_ERR_FORMAT, "hybrid signature of %zu bytes is truncated",
		                  sig_len);
	if (sig[0] != HYB_VERSION)
		return pq_err_set(PQ_ERR_FORMAT, "hybrid signature version %u unsupported", sig[0]);
	if (sig[3] != 0)
		return pq_err_set(PQ_ERR_FORMAT, "hybrid signature reserved byte is %u, not 0",
		                  sig[3]);
	if (sig[1] != (uint8_t)pq_key_alg(key->classical) || sig[2] != (uint8_t)pq_key_alg(key->pq))
		return pq_err_set(
		    PQ_ERR_VERIFY,
		    "hybrid signature algorithms (%u, %u) do not match the key (%s, %s)", sig[1],
		    sig[2], pq_alg_name(pq_key_alg(key->classical)),
		    pq_alg_name(pq_key_alg(key->pq)));
	l1 = (size_t)sig[4] << 8 | sig[5];
	l2 = (size_t)sig[6] << 8 | sig[7];
	if (8 + l1 + l2 != sig_len)
		return pq_err_set(PQ_ERR_FORMAT, "hybrid signature lengths %zu+%zu+8 != %zu", l1,
		                  l2, sig_len);
	rc = hybrid_classical_msg(key, context, context_len, msg, msg_len, &cmsg, &cmsg_len);
	if (rc != PQ_OK)
		return rc;
	/* Both halves are always checked, so timing does not tell which one failed. */
	rc = pq_verify(key->classical, NULL, cmsg, cmsg_len, sig + 8, l1);
	free(cmsg);
	pq_sig_opts o = {0};
	o.context = pqctx;
	o.context_len = hybrid_pq_ctx(key, context, context_len, pqctx);
	rc2 = pq_verify(key->pq, &o, msg, msg_len, sig + 8 + l1, l2);
	if (rc != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "hybrid signature: the %s half does not verify",
		                  pq_alg_name(pq_key_alg(key->classical)));
	if (rc2 != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "hybrid signature: the %s half does not verify",
		                  pq_alg_name(pq_key_alg(key->pq)));
	return PQ_OK;
}
