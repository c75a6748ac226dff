/* tls.c: TLS 1.3 SSL_CTX builders from PQC profiles, peer identity and connection info. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define GROUPS_MAX 512

static int base_ctx(const tls_opts *o, int server, SSL_CTX **out)
{
	SSL_CTX *ctx;
	char groups[GROUPS_MAX];

	*out = NULL;
	if (!o || !o->profile)
		return pq_err_set(PQ_ERR_INVAL, "TLS context needs a profile");
	if (!tls_openssl_has_pqc())
		return pq_err_set(PQ_ERR_UNSUPPORTED,
		                  "the loaded OpenSSL (%s) has no ML-KEM: pqota needs >= 3.5",
		                  tls_openssl_version());
	if (snprintf(groups, sizeof(groups), "%s%s%s", o->profile->tls_group,
	             o->extra_groups && *o->extra_groups ? ":" : "",
	             o->extra_groups ? o->extra_groups : "") >= (int)sizeof(groups))
		return pq_err_set(PQ_ERR_RANGE, "TLS group list too long");
	ctx = SSL_CTX_new_ex(NULL, NULL, server ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		return pq_err_ssl(PQ_ERR_TLS, "creating a TLS context");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		SSL_CTX_free(ctx);
		return pq_err_ssl(PQ_ERR_TLS, "restricting to TLS 1.3");
	}
	if (!SSL_CTX_set1_groups_list(ctx, groups)) {
		SSL_CTX_free(ctx);
		return pq_err_ssl(PQ_ERR_UNSUPPORTED, "TLS groups '%s'", groups);
	}
	const char *sig = o->sigalgs ? o->sigalgs : o->profile->tls_sigalg;
	if (*sig && !SSL_CTX_set1_sigalgs_list(ctx, sig)) {
		SSL_CTX_free(ctx);
		return pq_err_ssl(PQ_ERR_UNSUPPORTED, "TLS signature schemes '%s'", sig);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	*out = ctx;
	return PQ_OK;
}

static int load_cert_key(SSL_CTX *ctx, const tls_opts *o)
{
	if (!o->cert_file || !o->key_file)
		return pq_err_set(PQ_ERR_INVAL, "a certificate needs both cert_file and key_file");
	if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
		return pq_err_ssl(PQ_ERR_NOTFOUND, "certificate %s", o->cert_file);
	if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
		return pq_err_ssl(PQ_ERR_NOTFOUND, "private key %s", o->key_file);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return pq_err_ssl(PQ_ERR_INVAL, "%s does not match %s", o->key_file, o->cert_file);
	return PQ_OK;
}

int tls_server_ctx_new(const tls_opts *o, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	int rc = base_ctx(o, 1, &ctx);
	if (rc != PQ_OK)
		return rc;
	rc = load_cert_key(ctx, o);
	if (rc != PQ_OK)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	/* Sessions (tickets) must be bound to a context, or OpenSSL refuses to resume them
	 * whenever client certificates are verified: resumption then fails the handshake. */
	static const unsigned char sid_ctx[] = "pqota-tls-v1";
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
		rc = pq_err_ssl(PQ_ERR_TLS, "session id context");
		goto fail;
	}
	if (o->require_client_cert || o->request_client_cert) {
		STACK_OF(X509_NAME) *names = NULL;
		if (!o->ca_file) {
			rc = pq_err_set(PQ_ERR_INVAL, "mutual TLS needs a CA file");
			goto fail;
		}
		if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
			rc = pq_err_ssl(PQ_ERR_NOTFOUND, "client CA %s", o->ca_file);
			goto fail;
		}
		names = SSL_load_client_CA_file(o->ca_file);
		if (!names) {
			rc = pq_err_ssl(PQ_ERR_FORMAT, "client CA names from %s", o->ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(
		    ctx,
		    SSL_VERIFY_PEER |
		        (o->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
		    NULL);
	}
	*out = ctx;
	return PQ_OK;
fail:
	SSL_CTX_free(ctx);
	return rc;
}

int tls_client_ctx_new(const tls_opts *o, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	int rc = base_ctx(o, 0, &ctx);
	if (rc != PQ_OK)
		return rc;
	if (o->cert_file || o->key_file) {
		rc = load_cert_key(ctx, o);
		if (rc != PQ_OK)
			goto fail;
	}
	if (o->verify_peer) {
		if (!o->ca_file) {
			rc = pq_err_set(PQ_ERR_INVAL, "verifying the server needs a CA file");
			goto fail;
		}
		if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
			rc = pq_err_ssl(PQ_ERR_NOTFOUND, "CA %s", o->ca_file);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	*out = ctx;
	return PQ_OK;
fail:
	SSL_CTX_free(ctx);
	return rc;
}

int tls_ctx_check_key(SSL_CTX *ctx, const pq_profile *p, const char *cert_file)
{
	EVP_PKEY *pk = SSL_CTX_get0_privatekey(ctx);
	pq_key *k = NULL;
	if (!pk)
		return pq_err_set(PQ_ERR_INVAL, "the context has no key");
	int rc = pq_key_wrap_evp(pk, &k);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", cert_file);
	pq_alg alg = pq_key_alg(k);
	pq_key_free(k);
	if (alg != p->cert_alg)
		return pq_err_set(PQ_ERR_INVAL,
		                  "%s holds a %s key, but profile %d (%s) signs with %s: make the "
		                  "PKI with that profile (pqota keys init --profile %d)",
		                  cert_file, pq_alg_name(alg), p->id, p->name,
		                  pq_alg_name(p->cert_alg), p->id);
	return PQ_OK;
}

int tls_peer_cn(SSL *ssl, char *buf, size_t len)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (!peer)
		return pq_err_set(PQ_ERR_NOTFOUND, "the peer sent no certificate");
	return tls_cert_cn(peer, buf, len);
}

int tls_cert_cn(X509 *peer, char *buf, size_t len)
{
	X509_NAME *n = X509_get_subject_name(peer);
	int idx = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	if (idx < 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "the peer certificate has no CN");
	ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
	int l = ASN1_STRING_length(s);
	if (l <= 0 || (size_t)l >= len)
		return pq_err_set(PQ_ERR_RANGE, "peer CN of %d bytes", l);
	memcpy(buf, ASN1_STRING_get0_data(s), (size_t)l);
	buf[l] = '\0';
	if (strlen(buf) != (size_t)l)
		return pq_err_set(PQ_ERR_FORMAT, "peer CN contains a NUL byte");
	return PQ_OK;
}

bool tls_group_is_pq(const char *group)
{
	return group && strcasestr(group, "MLKEM") != NULL;
}

bool tls_group_is_hybrid(const char *group)
{
	return tls_group_is_pq(group) &&
	       (strncasecmp(group, "X25519MLKEM", 11) == 0 || strncasecmp(group, "SecP", 4) == 0);
}

/* The reason a handshake or read failed: OpenSSL's queue, else errno, else a default. */
void tls_ssl_reason(SSL *ssl, int ret, char *buf, size_t len)
{
	int e = SSL_get_error(ssl, ret);
	unsigned long q = ERR_peek_last_error();
	if (q) {
		ERR_error_string_n(q, buf, len);
	} else if (e == SSL_ERROR_SYSCALL && errno) {
		snprintf(buf, len, "%s", errno == EAGAIN ? "timed out" : strerror(errno));
	} else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
		snprintf(buf, len, "connection closed by the peer");
	} else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		snprintf(buf, len, "timed out");
	} else {
		snprintf(buf, len, "TLS error %d", e);
	}
	ERR_clear_error();
}

void tls_name_line(X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long l;
	buf[0] = '\0';
	if (!b)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (l = BIO_get_mem_data(b, &data)) > 0)
		snprintf(buf, len, "%.*s", (int)l, data);
	BIO_free(b);
}

int tls_set_peer_name(SSL *ssl, const char *name)
{
	unsigned char ipbuf[16];
	bool is_ip = inet_pton(AF_INET, name, ipbuf) == 1 || inet_pton(AF_INET6, name, ipbuf) == 1;
	if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
		return pq_err_ssl(PQ_ERR_INVAL, "SNI '%s'", name);
	if (!(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
		return PQ_OK;
	int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
	               : SSL_set1_host(ssl, name);
	if (ok != 1)
		return pq_err_ssl(PQ_ERR_INVAL, "peer name '%s'", name);
	return PQ_OK;
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

void tls_conn_info(SSL *ssl, tls_info *info)
{
	const char *s = NULL;
	memset(info, 0, sizeof(*info));
	copy(info->protocol, sizeof(info->protocol), SSL_get_version(ssl));
	copy(info->group, sizeof(info->group), SSL_get0_group_name(ssl));
	copy(info->cipher, sizeof(info->cipher), SSL_get_cipher_name(ssl));
	if (SSL_get0_peer_signature_name(ssl, &s) == 1)
		copy(info->peer_sigalg, sizeof(info->peer_sigalg), s);
	s = NULL;
	if (SSL_get0_signature_name(ssl, &s) == 1)
		copy(info->local_sigalg, sizeof(info->local_sigalg), s);
	if (tls_peer_cn(ssl, info->peer_cn, sizeof(info->peer_cn)) != PQ_OK)
		info->peer_cn[0] = '\0';
	X509 *peer = SSL_get0_peer_certificate(ssl);
	if (peer) {
		EVP_PKEY *pk = X509_get0_pubkey(peer);
		if (pk)
			copy(info->peer_key_alg, sizeof(info->peer_key_alg),
			     EVP_PKEY_get0_type_name(pk));
	}
	info->pq_kex = tls_group_is_pq(info->group);
	info->hybrid_kex = tls_group_is_hybrid(info->group);
	info->pq_auth = strncasecmp(info->peer_sigalg, "mldsa", 5) == 0;
	info->resumed = SSL_session_reused(ssl) == 1;
	ERR_clear_error();
}

const char *tls_openssl_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

bool tls_openssl_has_pqc(void)
{
	return OpenSSL_version_num() >= 0x30500000UL;
}
