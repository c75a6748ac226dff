/* profile.c: the PQC profile table and signing policies. */
#include "crypto/profile.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define P(id, name, kem, group, hyb, pqk, alg, sigalg)                                             \
	{                                                                                          \
		id, name, kem, group, hyb, pqk, alg, sigalg                                        \
	}

/* id: KEM x certificate signature (PROTOCOL.md section 6). ML-KEM-768 and -1024 map to the
 * hybrid groups; ML-KEM-512 has no standard hybrid and maps to the pure group. */
const pq_profile pq_profiles[PQ_PROFILE_COUNT] = {
    P(0, "x25519-ecdsa-p256", "X25519", "X25519", false, false, PQ_ALG_ECDSA_P256,
      "ecdsa_secp256r1_sha256"),
    P(1, "mlkem512-ecdsa-p256", "ML-KEM-512", "MLKEM512", false, true, PQ_ALG_ECDSA_P256,
      "ecdsa_secp256r1_sha256"),
    P(2, "mlkem768-ecdsa-p256", "ML-KEM-768", "X25519MLKEM768", true, true, PQ_ALG_ECDSA_P256,
      "ecdsa_secp256r1_sha256"),
    P(3, "mlkem1024-ecdsa-p256", "ML-KEM-1024", "SecP384r1MLKEM1024", true, true, PQ_ALG_ECDSA_P256,
      "ecdsa_secp256r1_sha256"),
    P(4, "mlkem512-mldsa44", "ML-KEM-512", "MLKEM512", false, true, PQ_ALG_MLDSA44, "mldsa44"),
    P(5, "mlkem512-mldsa65", "ML-KEM-512", "MLKEM512", false, true, PQ_ALG_MLDSA65, "mldsa65"),
    P(6, "mlkem512-mldsa87", "ML-KEM-512", "MLKEM512", false, true, PQ_ALG_MLDSA87, "mldsa87"),
    P(7, "mlkem768-mldsa44", "ML-KEM-768", "X25519MLKEM768", true, true, PQ_ALG_MLDSA44, "mldsa44"),
    P(8, "mlkem768-mldsa65", "ML-KEM-768", "X25519MLKEM768", true, true, PQ_ALG_MLDSA65, "mldsa65"),
    P(9, "mlkem768-mldsa87", "ML-KEM-768", "X25519MLKEM768", true, true, PQ_ALG_MLDSA87, "mldsa87"),
    P(10, "mlkem1024-mldsa44", "ML-KEM-1024", "SecP384r1MLKEM1024", true, true, PQ_ALG_MLDSA44,
      "mldsa44"),
    P(11, "mlkem1024-mldsa65", "ML-KEM-1024", "SecP384r1MLKEM1024", true, true, PQ_ALG_MLDSA65,
      "mldsa65"),
    P(12, "mlkem1024-mldsa87", "ML-KEM-1024", "SecP384r1MLKEM1024", true, true, PQ_ALG_MLDSA87,
      "mldsa87"),
};

const pq_profile *pq_profile_by_id(int id)
{
	return id >= 0 && id < PQ_PROFILE_COUNT ? &pq_profiles[id] : NULL;
}

int pq_profile_find(const char *s, const pq_profile **out)
{
	char *end = NULL;
	*out = NULL;
	if (!s || !*s)
		return pq_err_set(PQ_ERR_INVAL, "empty profile");
	long id = strtol(s, &end, 10);
	if (*end == '\0' && strspn(s, "0123456789") == strlen(s)) {
		if (id < 0 || id >= PQ_PROFILE_COUNT)
			return pq_err_set(PQ_ERR_NOTFOUND, "profile %ld out of range 0..%d", id,
			                  PQ_PROFILE_COUNT - 1);
		*out = &pq_profiles[id];
		return PQ_OK;
	}
	for (int i = 0; i < PQ_PROFILE_COUNT; i++) {
		if (strcasecmp(s, pq_profiles[i].name) == 0) {
			*out = &pq_profiles[i];
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_NOTFOUND, "unknown profile '%s' (ids 0..12 or names like %s)", s,
	                  pq_profiles[PQ_PROFILE_DEFAULT].name);
}

static const char *const policy_names[] = {"hybrid", "pq", "classical"};

const char *pq_policy_name(pq_sign_policy p)
{
	return (unsigned)p < 3 ? policy_names[p] : "?";
}

int pq_policy_from_name(const char *name, pq_sign_policy *out)
{
	for (int i = 0; i < 3; i++) {
		if (strcasecmp(name, policy_names[i]) == 0) {
			*out = (pq_sign_policy)i;
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_INVAL, "unknown signing policy '%s' (hybrid, pq, classical)",
	                  name);
}

int pq_policy_algs(pq_sign_policy p, pq_alg classical, pq_alg out[2])
{
	if (classical != PQ_ALG_ED25519)
		classical = PQ_ALG_ECDSA_P256;
	switch (p) {
	case PQ_POLICY_PQ:
		out[0] = PQ_ALG_MLDSA65;
		return 1;
	case PQ_POLICY_CLASSICAL:
		out[0] = classical;
		return 1;
	case PQ_POLICY_HYBRID:
	default:
		out[0] = classical;
		out[1] = PQ_ALG_MLDSA65;
		return 2;
	}
}
