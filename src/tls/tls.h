/* tls.h: SSL_CTX builders for pqota servers and clients from a PQC profile.
 *
 * Every context is TLS 1.3 only and offers exactly the key-exchange groups and the
 * signature scheme of its profile(s). Servers present one certificate, optionally require client
 * certificates issued by a CA (mutual TLS), and read the peer's CN as its identity (a VIN for
 * vehicles). Callers read the negotiated group and signature algorithms with
 * tls_conn_info(). */
#ifndef PQOTA_TLS_TLS_H
#define PQOTA_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "crypto/profile.h"

struct ssl_ctx_st;
struct ssl_st;
struct x509_st;

typedef struct {
	const pq_profile *profile; /* required */
	/* Extra groups offered after the profile's, colon-separated (NULL for none). Lets a
	 * server accept several profiles' clients. */
	const char *extra_groups;
	const char *cert_file; /* PEM certificate (chain) */
	const char *key_file;  /* PEM private key */
	const char *ca_file;   /* CA for client certificates (server) or for the server (client) */
	bool require_client_cert; /* server: mutual TLS (needs ca_file) */
	/* server: ask for a client certificate and verify it against ca_file when one is
	 * sent, but also accept clients without (operators with API keys share the port) */
	bool request_client_cert;
	/* client: check the server's certificate chain against ca_file. The host name is
	 * per connection: tls_probe() takes it, other callers set it on their SSL. */
	bool verify_peer;
	/* Signature schemes for CertificateVerify, both those we use and those we accept:
	 * NULL = exactly the profile's scheme; "" = OpenSSL's defaults (a probe that must
	 * talk to any server); otherwise an OpenSSL list ("mldsa65:ecdsa_secp256r1_sha256"). */
	const char *sigalgs;
} tls_opts;

/* Builds a server context. On failure the detail names the file or OpenSSL's reason. */
int tls_server_ctx_new(const tls_opts *o, struct ssl_ctx_st **out) PQ_MUST_CHECK;

/* Builds a client context; cert_file/key_file are the client certificate (optional). */
int tls_client_ctx_new(const tls_opts *o, struct ssl_ctx_st **out) PQ_MUST_CHECK;

/* Whether the context's certificate key is of the profile's signature algorithm
 * (PQ_ERR_INVAL naming cert_file and both algorithms if not): a mismatch would only show
 * later, as a handshake without a common signature scheme. */
int tls_ctx_check_key(struct ssl_ctx_st *ctx, const pq_profile *p,
                      const char *cert_file) PQ_MUST_CHECK;

typedef struct {
	char protocol[16];     /* "TLSv1.3" */
	char group[48];        /* negotiated key-exchange group: "X25519MLKEM768" */
	char cipher[48];       /* "TLS_AES_256_GCM_SHA384" */
	char peer_sigalg[48];  /* the peer's CertificateVerify scheme: "mldsa65" */
	char local_sigalg[48]; /* ours, when we signed (server, or client with a cert) */
	char peer_cn[128];     /* peer certificate CN, "" if none */
	char peer_key_alg[32]; /* peer certificate key algorithm: "ML-DSA-65" */
	bool pq_kex;           /* the group includes ML-KEM */
	bool hybrid_kex;       /* ... combined with a classical exchange */
	bool pq_auth;          /* the peer authenticated with ML-DSA */
	bool resumed;
} tls_info;

/* Fills `info` for an established connection. */
void tls_conn_info(struct ssl_st *ssl, tls_info *info);

/* The peer certificate's CN; PQ_ERR_NOTFOUND without a peer certificate. */
int tls_peer_cn(struct ssl_st *ssl, char *buf, size_t len) PQ_MUST_CHECK;
/* The same for a certificate (x509_st: X509). */
int tls_cert_cn(struct x509_st *cert, char *buf, size_t len) PQ_MUST_CHECK;

/* The reason an SSL call that returned `ret` failed: OpenSSL's error queue, else errno
 * ("timed out" for a socket timeout), else "connection closed by the peer". Clears the
 * queue. */
void tls_ssl_reason(struct ssl_st *ssl, int ret, char *buf, size_t len);

/* A certificate name on one line ("CN = x, O = y"); "" when it cannot be printed. */
struct X509_name_st;
void tls_name_line(struct X509_name_st *n, char *buf, size_t len);

/* Client side: sends `name` as SNI (unless it is an IP address) and, when the connection
 * verifies its peer, requires the certificate to carry it (DNS name or IP address). */
int tls_set_peer_name(struct ssl_st *ssl, const char *name) PQ_MUST_CHECK;

/* Whether an OpenSSL group name includes ML-KEM (and a classical part). */
bool tls_group_is_pq(const char *group);
bool tls_group_is_hybrid(const char *group);

/* OpenSSL's version string of the library actually loaded, and whether it is >= 3.5. */
const char *tls_openssl_version(void);
bool tls_openssl_has_pqc(void);

#endif
