/* kem.h: key encapsulation (ML-KEM-512/768/1024, FIPS 203; X25519 as a DH-based KEM)
 * and the pqota hybrid key wrap for per-vehicle content keys.
 *
 * Hybrid key wrap (docs/security.md, "Hybrid key wrap"): the sender encapsulates to the
 * recipient's X25519 key (ephemeral-static DH) and ML-KEM-768 key, derives a key-encryption
 * key with HKDF-SHA256 over both shared secrets with both ciphertexts and both recipient
 * public keys bound in, and seals the content key with AES-256-GCM. */
#ifndef PQOTA_CRYPTO_KEM_H
#define PQOTA_CRYPTO_KEM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/key.h"

#define PQ_KEM_SS_LEN 32
#define PQ_KEM_CT_MAX 1568 /* ML-KEM-1024 */

/* Ciphertext length for a KEM algorithm (X25519: the 32-byte ephemeral public key). */
size_t pq_kem_ct_len(pq_alg alg);

/* Encapsulates to a public key. `ikm` (32 bytes, ML-KEM's m; X25519's ephemeral private
 * key) is for known-answer tests: NULL means fresh randomness. */
int pq_kem_encap(const pq_key *pub, const uint8_t *ikm, size_t ikm_len, uint8_t *ct, size_t *ct_len,
                 uint8_t ss[PQ_KEM_SS_LEN]) PQ_MUST_CHECK;

/* Decapsulates. ML-KEM returns the implicit-rejection key for a well-sized but modified
 * ciphertext (never an error); a wrong-sized ciphertext is PQ_ERR_FORMAT. */
int pq_kem_decap(const pq_key *priv, const uint8_t *ct, size_t ct_len,
                 uint8_t ss[PQ_KEM_SS_LEN]) PQ_MUST_CHECK;

/* ---- hybrid key wrap ------------------------------------------------------------- */

/* The recipient: an X25519 key and an ML-KEM-768 key (borrowed). */
typedef struct {
	const pq_key *x25519;
	const pq_key *mlkem;
} pq_wrap_recipient;

#define PQ_WRAP_KEY_MAX 64
/* magic(4) version(1) alg(1) keylen(2) | eph x25519(32) | mlkem ct(1088) | nonce(12) |
 * sealed key(keylen) | tag(16) */
#define PQ_WRAP_OVERHEAD (8 + 32 + 1088 + 12 + 16)
#define PQ_WRAP_MAX      (PQ_WRAP_OVERHEAD + PQ_WRAP_KEY_MAX)

/* Wraps `key` (1..64 bytes) for the recipient; `aad` (e.g. "VIN|image-id") is bound in and
 * must be given again to unwrap. *out_len: in capacity, out length. */
int pq_wrap(const pq_wrap_recipient *to, const uint8_t *aad, size_t aad_len, const uint8_t *key,
            size_t key_len, uint8_t *out, size_t *out_len) PQ_MUST_CHECK;

/* Unwraps with the recipient's private keys. PQ_ERR_VERIFY for any tampering, a wrong
 * recipient or a wrong aad; PQ_ERR_FORMAT for a malformed blob. */
int pq_unwrap(const pq_wrap_recipient *me, const uint8_t *aad, size_t aad_len, const uint8_t *in,
              size_t in_len, uint8_t *key, size_t *key_len) PQ_MUST_CHECK;

#endif
