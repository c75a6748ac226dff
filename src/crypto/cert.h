/* cert.h: X.509 certificates for a pqota deployment: a self-signed root CA and leaf
 * certificates (server, broker, client) signed by it, in any signature algorithm of
 * key.h (ECDSA-P256, Ed25519, ML-DSA-44/65/87). PEM as OpenSSL writes it. */
#ifndef PQOTA_CRYPTO_CERT_H
#define PQOTA_CRYPTO_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"
#include "crypto/key.h"

typedef struct pq_cert pq_cert;

typedef enum {
	PQ_CERT_CA = 0,     /* basicConstraints CA:TRUE, keyCertSign */
	PQ_CERT_SERVER = 1, /* serverAuth, with subjectAltName */
	PQ_CERT_CLIENT = 2, /* clientAuth */
	PQ_CERT_PEER = 3,   /* serverAuth + clientAuth (a broker or server that is both) */
} pq_cert_kind;

typedef struct {
	pq_cert_kind kind;
	const char *common_name;  /* CN (a vehicle's VIN for vehicle client certificates) */
	const char *organization; /* O, optional */
	const char *const *dns;   /* subjectAltName DNS names, NULL-terminated, optional */
	const char *const *ips;   /* subjectAltName IP addresses, NULL-terminated, optional */
	int days;                 /* validity from now (default 825 for leaves, 3650 for CA) */
} pq_cert_req;

/* Issues a certificate for `subject_key` (public half is enough). For PQ_CERT_CA with
 * issuer == NULL, a self-signed root signed by issuer_key == subject_key. */
int pq_cert_issue(const pq_cert_req *req, const pq_key *subject_key, const pq_cert *issuer,
                  const pq_key *issuer_key, pq_cert **out) PQ_MUST_CHECK;

int pq_cert_load(const char *path, pq_cert **out) PQ_MUST_CHECK;
int pq_cert_save(const pq_cert *c, const char *path, bool overwrite) PQ_MUST_CHECK;

/* Subject CN into buf (truncation is an error). */
int pq_cert_common_name(const pq_cert *c, char *buf, size_t len) PQ_MUST_CHECK;
/* The algorithm of the certified key. */
pq_alg pq_cert_key_alg(const pq_cert *c);
/* The signature algorithm name as OpenSSL prints it ("ML-DSA-65", "ecdsa-with-SHA256"). */
const char *pq_cert_sig_name(const pq_cert *c);
/* Checks that `c` was signed by `issuer` and is within its validity period. */
int pq_cert_verify_issued_by(const pq_cert *c, const pq_cert *issuer) PQ_MUST_CHECK;

void pq_cert_free(pq_cert *c);

struct x509_st;
/* Borrowed X509 (valid while the pq_cert lives). */
struct x509_st *pq_cert_x509(const pq_cert *c);

#endif
