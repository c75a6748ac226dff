/* sig.h: signatures (Ed25519, ECDSA-P256, ML-DSA-44/65/87) and the pqota hybrid signature.
 *
 * ECDSA signs SHA-256 of the message and its signatures are DER (as OpenSSL writes them).
 * ML-DSA is FIPS 204 pure ML-DSA with an optional context string (0..255 bytes), hedged by
 * default, deterministic on request. The hybrid signature (classical + ML-DSA) is valid only
 * when both halves verify; its encoding is in docs/security.md. */
#ifndef PQOTA_CRYPTO_SIG_H
#define PQOTA_CRYPTO_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/key.h"

#define PQ_SIG_MAX     4627 /* ML-DSA-87 */
#define PQ_SIG_CTX_MAX 255

typedef struct {
	const uint8_t *context; /* ML-DSA context string, NULL for empty */
	size_t context_len;     /* <= 255 */
	bool deterministic;     /* ML-DSA: rnd = 0^32 instead of fresh randomness */
	/* Known-answer testing only (FIPS 204 interfaces below the pure API): */
	const uint8_t *test_rnd; /* 32 bytes of "random" for hedged signing */
	bool internal;           /* message is M' (Sign_internal/Verify_internal) */
	bool external_mu;        /* message is mu (64 bytes) */
} pq_sig_opts;

/* Largest signature for the algorithm (0 if not a signature algorithm). */
size_t pq_sig_max_len(pq_alg alg);

/* Signs msg. *sig_len: in capacity, out length. opts may be NULL (defaults). */
int pq_sign(const pq_key *key, const pq_sig_opts *opts, const uint8_t *msg, size_t msg_len,
            uint8_t *sig, size_t *sig_len) PQ_MUST_CHECK;

/* PQ_OK when valid, PQ_ERR_VERIFY when not, another code for unusable inputs. */
int pq_verify(const pq_key *key, const pq_sig_opts *opts, const uint8_t *msg, size_t msg_len,
              const uint8_t *sig, size_t sig_len) PQ_MUST_CHECK;

/* ---- hybrid signatures ----------------------------------------------------------- */

/* A hybrid key pair: a classical key (Ed25519 or ECDSA-P256) and an ML-DSA key. The
 * struct borrows both keys; the caller owns them. */
typedef struct {
	const pq_key *classical;
	const pq_key *pq;
} pq_hybrid_key;

#define PQ_HYBRID_SIG_MAX (8 + 72 + PQ_SIG_MAX)

/* Hybrid signature of msg under an optional application context (<= 200 bytes). */
int pq_hybrid_sign(const pq_hybrid_key *key, const uint8_t *context, size_t context_len,
                   const uint8_t *msg, size_t msg_len, uint8_t *sig, size_t *sig_len) PQ_MUST_CHECK;

/* PQ_OK only when the encoding is exact, the algorithms match the key, and both halves
 * verify; otherwise PQ_ERR_VERIFY or PQ_ERR_FORMAT with a detail naming the half. */
int pq_hybrid_verify(const pq_hybrid_key *key, const uint8_t *context, size_t context_len,
                     const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                     size_t sig_len) PQ_MUST_CHECK;

#endif
