/* key.c: pq_key over EVP_PKEY for Ed25519, ECDSA-P256, ML-DSA, X25519 and ML-KEM. */
#include "crypto/key.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/fileio.h"
#include "crypto/hash.h"

struct pq_key {
	EVP_PKEY *pkey;
	pq_alg alg;
	bool has_private;
};

static const struct {
	const char *name; /* ours */
	const char *ossl; /* OpenSSL key type */
	bool sig, kem, pq;
	size_t seed_len;
} algs[PQ_ALG_COUNT] = {
    [PQ_ALG_NONE] = {"none", "", false, false, false, 0},
    [PQ_ALG_ED25519] = {"ed25519", "ED25519", true, false, false, 32},
    [PQ_ALG_ECDSA_P256] = {"ecdsa-p256", "EC", true, false, false, 0},
    [PQ_ALG_MLDSA44] = {"ml-dsa-44", "ML-DSA-44", true, false, true, 32},
    [PQ_ALG_MLDSA65] = {"ml-dsa-65", "ML-DSA-65", true, false, true, 32},
    [PQ_ALG_MLDSA87] = {"ml-dsa-87", "ML-DSA-87", true, false, true, 32},
    [PQ_ALG_X25519] = {"x25519", "X25519", false, true, false, 32},
    [PQ_ALG_MLKEM512] = {"ml-kem-512", "ML-KEM-512", false, true, true, 64},
    [PQ_ALG_MLKEM768] = {"ml-kem-768", "ML-KEM-768", false, true, true, 64},
    [PQ_ALG_MLKEM1024] = {"ml-kem-1024", "ML-KEM-1024", false, true, true, 64},
};

static bool valid_alg(pq_alg a)
{
	return a > PQ_ALG_NONE && a < PQ_ALG_COUNT;
}

static bool is_raw25519(pq_alg a)
{
	return a == PQ_ALG_ED25519 || a == PQ_ALG_X25519;
}

const char *pq_alg_name(pq_alg alg)
{
	return valid_alg(alg) ? algs[alg].name : "none";
}

int pq_alg_from_name(const char *name, pq_alg *out)
{
	for (int i = 1; i < PQ_ALG_COUNT; i++) {
		if (strcasecmp(name, algs[i].name) == 0 || strcasecmp(name, algs[i].ossl) == 0) {
			*out = (pq_alg)i;
			return PQ_OK;
		}
	}
	if (strcasecmp(name, "p256") == 0 || strcasecmp(name, "ecdsa") == 0) {
		*out = PQ_ALG_ECDSA_P256;
		return PQ_OK;
	}
	return pq_err_set(PQ_ERR_UNSUPPORTED, "unknown key algorithm '%s'", name);
}

bool pq_alg_is_sig(pq_alg alg)
{
	return valid_alg(alg) && algs[alg].sig;
}

bool pq_alg_is_kem(pq_alg alg)
{
	return valid_alg(alg) && algs[alg].kem;
}

bool pq_alg_is_pq(pq_alg alg)
{
	return valid_alg(alg) && algs[alg].pq;
}

/* Determines our algorithm for an EVP_PKEY; PQ_ALG_NONE if unsupported. */
static pq_alg alg_of_evp(EVP_PKEY *pkey)
{
	for (int i = 1; i < PQ_ALG_COUNT; i++) {
		if (i == PQ_ALG_ECDSA_P256)
			continue;
		if (EVP_PKEY_is_a(pkey, algs[i].ossl))
			return (pq_alg)i;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[64];
		size_t glen = 0;
		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) &&
		    (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
			return PQ_ALG_ECDSA_P256;
	}
	return PQ_ALG_NONE;
}

static bool evp_has_private(EVP_PKEY *pkey, pq_alg alg)
{
	if (alg == PQ_ALG_ECDSA_P256) {
		BIGNUM *bn = NULL;
		bool ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1;
		BN_clear_free(bn);
		return ok;
	}
	if (is_raw25519(alg)) {
		size_t len = 0;
		return EVP_PKEY_get_raw_private_key(pkey, NULL, &len) == 1 && len > 0;
	}
	/* ML-DSA / ML-KEM: a private key has either its seed or its expanded form */
	size_t len = 0;
	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, NULL, 0, &len) == 1 &&
	    len > 0)
		return true;
	return false;
}

static int wrap_evp(EVP_PKEY *pkey, pq_alg alg, pq_key **out)
{
	pq_key *k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return pq_err_set(PQ_ERR_NOMEM, "key handle");
	}
	k->pkey = pkey;
	k->alg = alg;
	k->has_private = evp_has_private(pkey, alg);
	*out = k;
	return PQ_OK;
}

int pq_key_wrap_evp(struct evp_pkey_st *pkey, pq_key **out)
{
	pq_alg alg = alg_of_evp(pkey);
	*out = NULL;
	if (alg == PQ_ALG_NONE)
		return pq_err_set(PQ_ERR_UNSUPPORTED, "unsupported key type %s",
		                  EVP_PKEY_get0_type_name(pkey));
	if (!EVP_PKEY_up_ref(pkey))
		return pq_err_ssl(PQ_ERR_CRYPTO, "key reference");
	return wrap_evp(pkey, alg, out);
}

int pq_key_generate(pq_alg alg, pq_key **out)
{
	EVP_PKEY *pkey = NULL;
	*out = NULL;
	if (!valid_alg(alg))
		return pq_err_set(PQ_ERR_INVAL, "key generation: bad algorithm %d", (int)alg);
	if (alg == PQ_ALG_ECDSA_P256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, algs[alg].ossl);
	if (!pkey)
		return pq_err_ssl(PQ_ERR_CRYPTO, "generating a %s key", algs[alg].name);
	return wrap_evp(pkey, alg, out);
}

int pq_key_from_seed(pq_alg alg, const uint8_t *seed, size_t len, pq_key **out)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int rc;

	*out = NULL;
	if (!valid_alg(alg) || algs[alg].seed_len == 0)
		return pq_err_set(PQ_ERR_UNSUPPORTED, "%s keys have no seed form",
		                  pq_alg_name(alg));
	if (len != algs[alg].seed_len)
		return pq_err_set(PQ_ERR_FORMAT, "%s seed must be %zu bytes, not %zu",
		                  algs[alg].name, algs[alg].seed_len, len);
	if (is_raw25519(alg)) {
		pkey = EVP_PKEY_new_raw_private_key_ex(NULL, algs[alg].ossl, NULL, seed, len);
		if (!pkey)
			return pq_err_ssl(PQ_ERR_CRYPTO, "%s key from seed", algs[alg].name);
		return wrap_evp(pkey, alg, out);
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, algs[alg].ossl, NULL);
	/* OSSL_PKEY_PARAM_ML_DSA_SEED and OSSL_PKEY_PARAM_ML_KEM_SEED are both "seed" */
	params[0] =
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_ML_DSA_SEED, (void *)seed, len);
	params[1] = OSSL_PARAM_construct_end();
	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_CTX_set_params(ctx, params) <= 0 ||
	    EVP_PKEY_generate(ctx, &pkey) <= 0) {
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "%s key from seed", algs[alg].name);
		EVP_PKEY_CTX_free(ctx);
		return rc;
	}
	EVP_PKEY_CTX_free(ctx);
	return wrap_evp(pkey, alg, out);
}

/* EVP_PKEY_fromdata for ML-DSA, ML-KEM and EC. */
static int from_data(pq_alg alg, const char *param, const uint8_t *data, size_t len, int selection,
                     pq_key **out)
{
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM params[3], *p = params;
	int rc;

	if (alg == PQ_ALG_ECDSA_P256)
		*p++ = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(param, (void *)data, len);
	*p = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, algs[alg].ossl, NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, selection, params) <= 0) {
		rc = pq_err_ssl(PQ_ERR_FORMAT, "invalid %s %s key (%zu bytes)", algs[alg].name,
		                selection == EVP_PKEY_PUBLIC_KEY ? "public" : "private", len);
		EVP_PKEY_CTX_free(ctx);
		return rc;
	}
	EVP_PKEY_CTX_free(ctx);
	return wrap_evp(pkey, alg, out);
}

int pq_key_from_public(pq_alg alg, const uint8_t *pub, size_t len, pq_key **out)
{
	*out = NULL;
	if (!valid_alg(alg))
		return pq_err_set(PQ_ERR_INVAL, "public key: bad algorithm %d", (int)alg);
	if (is_raw25519(alg)) {
		EVP_PKEY *pkey =
		    EVP_PKEY_new_raw_public_key_ex(NULL, algs[alg].ossl, NULL, pub, len);
		if (!pkey)
			return pq_err_ssl(PQ_ERR_FORMAT, "invalid %s public key (%zu bytes)",
			                  algs[alg].name, len);
		return wrap_evp(pkey, alg, out);
	}
	return from_data(alg, OSSL_PKEY_PARAM_PUB_KEY, pub, len, EVP_PKEY_PUBLIC_KEY, out);
}

int pq_key_from_private(pq_alg alg, const uint8_t *priv, size_t len, pq_key **out)
{
	*out = NULL;
	if (!valid_alg(alg))
		return pq_err_set(PQ_ERR_INVAL, "private key: bad algorithm %d", (int)alg);
	if (is_raw25519(alg))
		return pq_key_from_seed(alg, priv, len, out);
	if (alg == PQ_ALG_ECDSA_P256)
		return pq_err_set(PQ_ERR_UNSUPPORTED,
		                  "raw ECDSA private keys are not imported: use PEM");
	return from_data(alg, OSSL_PKEY_PARAM_PRIV_KEY, priv, len, EVP_PKEY_KEYPAIR, out);
}

static int get_octets(const pq_key *k, const char *param, uint8_t *buf, size_t *len)
{
	size_t need = 0;
	if (EVP_PKEY_get_octet_string_param(k->pkey, param, NULL, 0, &need) != 1)
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s: no %s component", algs[k->alg].name, param);
	if (!buf) {
		*len = need;
		return PQ_OK;
	}
	if (*len < need)
		return pq_err_set(PQ_ERR_RANGE, "%s %s needs %zu bytes, buffer has %zu",
		                  algs[k->alg].name, param, need, *len);
	if (EVP_PKEY_get_octet_string_param(k->pkey, param, buf, *len, len) != 1)
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s: reading %s", algs[k->alg].name, param);
	return PQ_OK;
}

int pq_key_public_raw(const pq_key *k, uint8_t *buf, size_t *len)
{
	if (is_raw25519(k->alg)) {
		if (EVP_PKEY_get_raw_public_key(k->pkey, buf, len) != 1)
			return pq_err_ssl(PQ_ERR_RANGE, "%s public key", algs[k->alg].name);
		return PQ_OK;
	}
	return get_octets(k, OSSL_PKEY_PARAM_PUB_KEY, buf, len);
}

int pq_key_private_raw(const pq_key *k, uint8_t *buf, size_t *len)
{
	if (!k->has_private)
		return pq_err_set(PQ_ERR_INVAL, "%s key has no private half", algs[k->alg].name);
	if (is_raw25519(k->alg)) {
		if (EVP_PKEY_get_raw_private_key(k->pkey, buf, len) != 1)
			return pq_err_ssl(PQ_ERR_RANGE, "%s private key", algs[k->alg].name);
		return PQ_OK;
	}
	if (k->alg == PQ_ALG_ECDSA_P256) {
		BIGNUM *bn = NULL;
		int rc = PQ_OK;
		if (!buf) {
			*len = 32;
			return PQ_OK;
		}
		if (*len < 32)
			return pq_err_set(PQ_ERR_RANGE, "ECDSA private key needs 32 bytes");
		if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1 ||
		    BN_bn2binpad(bn, buf, 32) != 32)
			rc = pq_err_ssl(PQ_ERR_CRYPTO, "ECDSA private key");
		else
			*len = 32;
		BN_clear_free(bn);
		return rc;
	}
	return get_octets(k, OSSL_PKEY_PARAM_PRIV_KEY, buf, len);
}

pq_alg pq_key_alg(const pq_key *k)
{
	return k->alg;
}

bool pq_key_has_private(const pq_key *k)
{
	return k->has_private;
}

int pq_key_id(const pq_key *k, uint8_t id[32])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k->pkey, &der);
	int rc;
	if (n <= 0)
		return pq_err_ssl(PQ_ERR_CRYPTO, "encoding a %s public key", algs[k->alg].name);
	rc = pq_hash(PQ_HASH_SHA256, der, (size_t)n, id);
	OPENSSL_free(der);
	return rc;
}

static int save_bio(BIO *bio, const char *path, mode_t mode, bool overwrite)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0)
		return pq_err_ssl(PQ_ERR_CRYPTO, "encoding %s", path);
	return pq_file_write_atomic(path, data, (size_t)n, mode, overwrite);
}

int pq_key_save_private(const pq_key *k, const char *path, bool overwrite)
{
	BIO *bio;
	int rc;
	if (!k->has_private)
		return pq_err_set(PQ_ERR_INVAL, "%s: the key has no private half", path);
	bio = BIO_new(BIO_s_secmem());
	if (!bio)
		return pq_err_ssl(PQ_ERR_NOMEM, "memory BIO");
	if (!PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL))
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "encoding the private key for %s", path);
	else
		rc = save_bio(bio, path, 0600, overwrite);
	BIO_free(bio);
	return rc;
}

int pq_key_save_public(const pq_key *k, const char *path, bool overwrite)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc;
	if (!bio)
		return pq_err_ssl(PQ_ERR_NOMEM, "memory BIO");
	if (!PEM_write_bio_PUBKEY(bio, k->pkey))
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "encoding the public key for %s", path);
	else
		rc = save_bio(bio, path, 0644, overwrite);
	BIO_free(bio);
	return rc;
}

int pq_key_public_pem(const pq_key *k, char **out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	*out = NULL;
	if (!bio)
		return pq_err_ssl(PQ_ERR_NOMEM, "memory BIO");
	if (!PEM_write_bio_PUBKEY(bio, k->pkey) || (n = BIO_get_mem_data(bio, &data)) <= 0) {
		BIO_free(bio);
		return pq_err_ssl(PQ_ERR_CRYPTO, "encoding a public key");
	}
	*out = strndup(data, (size_t)n);
	BIO_free(bio);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "public key PEM");
}

int pq_key_parse_pem(const char *pem, size_t len, pq_key **out)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	*out = NULL;
	if (len > 0x7fffffff)
		return pq_err_set(PQ_ERR_RANGE, "PEM too large");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return pq_err_ssl(PQ_ERR_NOMEM, "memory BIO");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pkey) {
		ERR_clear_error();
		(void)BIO_reset(bio);
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	if (!pkey)
		return pq_err_ssl(PQ_ERR_FORMAT, "no PEM private or public key");
	pq_alg alg = alg_of_evp(pkey);
	if (alg == PQ_ALG_NONE) {
		int rc = pq_err_set(PQ_ERR_UNSUPPORTED, "unsupported key type %s",
		                    EVP_PKEY_get0_type_name(pkey));
		EVP_PKEY_free(pkey);
		return rc;
	}
	return wrap_evp(pkey, alg, out);
}

int pq_key_load(const char *path, pq_key **out)
{
	char *pem = NULL;
	size_t len = 0;
	int rc = pq_file_read(path, 1 << 20, &pem, &len);
	*out = NULL;
	if (rc != PQ_OK)
		return rc;
	rc = pq_key_parse_pem(pem, len, out);
	OPENSSL_cleanse(pem, len);
	free(pem);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", path);
	return PQ_OK;
}

int pq_key_public_copy(const pq_key *k, pq_key **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;
	*out = NULL;
	rc = pq_key_public_raw(k, NULL, &len);
	if (rc != PQ_OK)
		return rc;
	buf = malloc(len);
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "public key copy");
	rc = pq_key_public_raw(k, buf, &len);
	if (rc == PQ_OK)
		rc = pq_key_from_public(k->alg, buf, len, out);
	free(buf);
	return rc;
}

void pq_key_free(pq_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

struct evp_pkey_st *pq_key_evp(const pq_key *k)
{
	return k->pkey;
}
