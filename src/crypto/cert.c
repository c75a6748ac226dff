/* cert.c: X.509 v3 certificate issuance, loading and checks on OpenSSL. */
#include "crypto/cert.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/fileio.h"
#include "crypto/hash.h"

struct pq_cert {
	X509 *x;
};

static int wrap_x509(X509 *x, pq_cert **out)
{
	pq_cert *c = calloc(1, sizeof(*c));
	if (!c) {
		X509_free(x);
		return pq_err_set(PQ_ERR_NOMEM, "certificate handle");
	}
	c->x = x;
	*out = c;
	return PQ_OK;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!ext)
		return pq_err_ssl(PQ_ERR_CRYPTO, "certificate extension %s=%s", OBJ_nid2sn(nid),
		                  value);
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? PQ_OK : pq_err_ssl(PQ_ERR_CRYPTO, "adding extension %s", OBJ_nid2sn(nid));
}

/* "DNS:a,DNS:b,IP:1.2.3.4" from the request (empty string if none). */
static int san_string(const pq_cert_req *r, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? r->dns : r->ips;
		const char *tag = pass == 0 ? "DNS" : "IP";
		for (size_t i = 0; list && list[i]; i++) {
			if (strpbrk(list[i], ",\n\r") || !*list[i])
				return pq_err_set(PQ_ERR_INVAL, "bad subjectAltName entry '%s'",
				                  list[i]);
			int n = snprintf(buf + used, len - used, "%s%s:%s", used ? "," : "", tag,
			                 list[i]);
			if (n < 0 || (size_t)n >= len - used)
				return pq_err_set(PQ_ERR_RANGE, "subjectAltName too long");
			used += (size_t)n;
		}
	}
	return PQ_OK;
}

static const EVP_MD *sign_md(const pq_key *k)
{
	/* ECDSA needs a digest; Ed25519 and ML-DSA sign the message itself. */
	return pq_key_alg(k) == PQ_ALG_ECDSA_P256 ? EVP_sha256() : NULL;
}

int pq_cert_issue(const pq_cert_req *req, const pq_key *subject_key, const pq_cert *issuer,
                  const pq_key *issuer_key, pq_cert **out)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX v3;
	uint8_t serial[16];
	char san[2048];
	int rc = PQ_OK, days;

	*out = NULL;
	if (!req || !req->common_name || !*req->common_name || strlen(req->common_name) > 64)
		return pq_err_set(PQ_ERR_INVAL, "certificate needs a common name of 1..64 bytes");
	if (!issuer_key || !pq_key_has_private(issuer_key) ||
	    !pq_alg_is_sig(pq_key_alg(issuer_key)))
		return pq_err_set(PQ_ERR_INVAL, "issuing needs the issuer's private signature key");
	if (!issuer && req->kind != PQ_CERT_CA)
		return pq_err_set(PQ_ERR_INVAL, "only a CA certificate can be self-signed");
	days = req->days > 0 ? req->days : (req->kind == PQ_CERT_CA ? 3650 : 825);
	rc = san_string(req, san, sizeof(san));
	if (rc != PQ_OK)
		return rc;

	x = X509_new();
	name = X509_NAME_new();
	if (!x || !name) {
		rc = pq_err_ssl(PQ_ERR_NOMEM, "certificate");
		goto out;
	}
	rc = pq_random(serial, sizeof(serial));
	if (rc != PQ_OK)
		goto out;
	serial[0] &= 0x7f; /* positive */
	serial[0] |= 0x01; /* and of full length */
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!X509_set_version(x, X509_VERSION_3) || !bn ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400)) {
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "certificate serial/validity");
		goto out;
	}
	if ((req->organization && *req->organization &&
	     !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	                                 (const unsigned char *)req->organization, -1, -1, 0)) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	                                (const unsigned char *)req->common_name, -1, -1, 0) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->x) : name) ||
	    !X509_set_pubkey(x, pq_key_evp(subject_key))) {
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "certificate names/key");
		goto out;
	}

	X509V3_set_ctx(&v3, issuer ? issuer->x : x, x, NULL, NULL, 0);
	rc = add_ext(x, &v3, NID_subject_key_identifier, "hash");
	if (rc == PQ_OK)
		rc = add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (rc != PQ_OK)
		goto out;
	switch (req->kind) {
	case PQ_CERT_CA:
		rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
		if (rc == PQ_OK)
			rc = add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		break;
	case PQ_CERT_SERVER:
	case PQ_CERT_CLIENT:
	case PQ_CERT_PEER:
		rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE");
		if (rc == PQ_OK)
			rc = add_ext(x, &v3, NID_key_usage, "critical,digitalSignature");
		if (rc == PQ_OK)
			rc = add_ext(x, &v3, NID_ext_key_usage,
			             req->kind == PQ_CERT_SERVER   ? "serverAuth"
			             : req->kind == PQ_CERT_CLIENT ? "clientAuth"
			                                           : "serverAuth,clientAuth");
		break;
	default:
		rc = pq_err_set(PQ_ERR_INVAL, "unknown certificate kind %d", (int)req->kind);
	}
	if (rc == PQ_OK && san[0])
		rc = add_ext(x, &v3, NID_subject_alt_name, san);
	if (rc != PQ_OK)
		goto out;
	if (X509_sign(x, pq_key_evp(issuer_key), sign_md(issuer_key)) <= 0) {
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "signing the certificate with %s",
		                pq_alg_name(pq_key_alg(issuer_key)));
		goto out;
	}
	rc = wrap_x509(x, out);
	x = NULL;
out:
	BN_free(bn);
	X509_NAME_free(name);
	X509_free(x);
	return rc;
}

int pq_cert_load(const char *path, pq_cert **out)
{
	char *pem = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x = NULL;
	int rc = pq_file_read(path, 1 << 20, &pem, &len);
	*out = NULL;
	if (rc != PQ_OK)
		return rc;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio)
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	free(pem);
	if (!x)
		return pq_err_ssl(PQ_ERR_FORMAT, "%s: no PEM certificate", path);
	return wrap_x509(x, out);
}

int pq_cert_save(const pq_cert *c, const char *path, bool overwrite)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	int rc;
	if (!bio)
		return pq_err_ssl(PQ_ERR_NOMEM, "memory BIO");
	if (!PEM_write_bio_X509(bio, c->x) || (n = BIO_get_mem_data(bio, &data)) <= 0)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "encoding %s", path);
	else
		rc = pq_file_write_atomic(path, data, (size_t)n, 0644, overwrite);
	BIO_free(bio);
	return rc;
}

int pq_cert_common_name(const pq_cert *c, char *buf, size_t len)
{
	X509_NAME *n = X509_get_subject_name(c->x);
	int idx = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	if (idx < 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "certificate has no CN");
	ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
	int l = ASN1_STRING_length(s);
	if (l < 0 || (size_t)l >= len)
		return pq_err_set(PQ_ERR_RANGE, "CN too long");
	memcpy(buf, ASN1_STRING_get0_data(s), (size_t)l);
	buf[l] = '\0';
	if (strlen(buf) != (size_t)l)
		return pq_err_set(PQ_ERR_FORMAT, "CN contains a NUL byte");
	return PQ_OK;
}

pq_alg pq_cert_key_alg(const pq_cert *c)
{
	EVP_PKEY *pk = X509_get0_pubkey(c->x);
	pq_key *k = NULL;
	pq_alg a = PQ_ALG_NONE;
	if (pk && pq_key_wrap_evp(pk, &k) == PQ_OK) {
		a = pq_key_alg(k);
		pq_key_free(k);
	}
	return a;
}

const char *pq_cert_sig_name(const pq_cert *c)
{
	int nid = X509_get_signature_nid(c->x);
	const char *s = OBJ_nid2sn(nid);
	return s ? s : "unknown";
}

int pq_cert_verify_issued_by(const pq_cert *c, const pq_cert *issuer)
{
	EVP_PKEY *ipk = X509_get0_pubkey(issuer->x);
	if (X509_check_issued(issuer->x, c->x) != X509_V_OK)
		return pq_err_set(PQ_ERR_VERIFY, "certificate was not issued by that CA");
	if (!ipk || X509_verify(c->x, ipk) != 1) {
		ERR_clear_error();
		return pq_err_set(PQ_ERR_VERIFY, "certificate signature does not verify");
	}
	if (X509_cmp_current_time(X509_get0_notBefore(c->x)) > 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(c->x)) < 0)
		return pq_err_set(PQ_ERR_VERIFY, "certificate is outside its validity period");
	return PQ_OK;
}

void pq_cert_free(pq_cert *c)
{
	if (!c)
		return;
	X509_free(c->x);
	free(c);
}

struct x509_st *pq_cert_x509(const pq_cert *c)
{
	return c->x;
}
