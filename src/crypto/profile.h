/* profile.h: the 13 PQC profiles (TLS key exchange x certificate signature) of the
 * protocol baseline, and the signing policies for packages and metadata. */
#ifndef PQOTA_CRYPTO_PROFILE_H
#define PQOTA_CRYPTO_PROFILE_H

#include <stdbool.h>

#include "core/err.h"
#include "crypto/key.h"

#define PQ_PROFILE_COUNT   13
#define PQ_PROFILE_DEFAULT 2

typedef struct {
	int id;
	const char *name;       /* "mlkem768-ecdsa-p256" */
	const char *kem;        /* "ML-KEM-768" (or "X25519") */
	const char *tls_group;  /* OpenSSL group name: "X25519MLKEM768" */
	bool hybrid_group;      /* the group combines a classical and an ML-KEM exchange */
	bool pq_kex;            /* key exchange resists a quantum adversary */
	pq_alg cert_alg;        /* certificate / CertificateVerify algorithm */
	const char *tls_sigalg; /* TLS 1.3 SignatureScheme name: "ecdsa_secp256r1_sha256" */
} pq_profile;

/* The table, indexed by id. */
extern const pq_profile pq_profiles[PQ_PROFILE_COUNT];

/* By id ("2") or name ("mlkem768-ecdsa-p256"). */
int pq_profile_find(const char *id_or_name, const pq_profile **out) PQ_MUST_CHECK;
const pq_profile *pq_profile_by_id(int id);

/* Signing policy for packages and Uptane metadata. */
typedef enum {
	PQ_POLICY_HYBRID = 0, /* classical + ML-DSA-65, both required (default) */
	PQ_POLICY_PQ = 1,     /* ML-DSA-65 only */
	PQ_POLICY_CLASSICAL = 2,
} pq_sign_policy;

const char *pq_policy_name(pq_sign_policy p);
int pq_policy_from_name(const char *name, pq_sign_policy *out) PQ_MUST_CHECK;

/* The key algorithms a policy requires for each signing role, in order; returns how many
 * (1 or 2). `classical` selects ECDSA-P256 or Ed25519 for the classical half. */
int pq_policy_algs(pq_sign_policy p, pq_alg classical, pq_alg out[2]);

#endif
