/* key.h: asymmetric keys of every algorithm pqota uses, behind one handle.
 *
 * A pq_key wraps an OpenSSL EVP_PKEY together with its algorithm. Keys are created by
 * generation, from a FIPS 203/204 seed, from raw encodings, or from PEM files in the
 * forms OpenSSL writes (PKCS#8 private keys, SubjectPublicKeyInfo public keys). */
#ifndef PQOTA_CRYPTO_KEY_H
#define PQOTA_CRYPTO_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
	PQ_ALG_NONE = 0,
	/* signatures */
	PQ_ALG_ED25519 = 1,
	PQ_ALG_ECDSA_P256 = 2,
	PQ_ALG_MLDSA44 = 3,
	PQ_ALG_MLDSA65 = 4,
	PQ_ALG_MLDSA87 = 5,
	/* key establishment */
	PQ_ALG_X25519 = 6,
	PQ_ALG_MLKEM512 = 7,
	PQ_ALG_MLKEM768 = 8,
	PQ_ALG_MLKEM1024 = 9,
} pq_alg;

#define PQ_ALG_COUNT 10

/* "ed25519", "ecdsa-p256", "ml-dsa-44", ..., "x25519", "ml-kem-768". */
const char *pq_alg_name(pq_alg alg);
/* Accepts pq_alg_name() spellings and OpenSSL's ("ML-DSA-65", "ED25519", "EC"...). */
int pq_alg_from_name(const char *name, pq_alg *out) PQ_MUST_CHECK;
bool pq_alg_is_sig(pq_alg alg);
bool pq_alg_is_kem(pq_alg alg);
bool pq_alg_is_pq(pq_alg alg); /* ML-DSA or ML-KEM */

typedef struct pq_key pq_key;

/* Fresh key pair. */
int pq_key_generate(pq_alg alg, pq_key **out) PQ_MUST_CHECK;

/* Deterministic key pair from a seed: ML-DSA xi (32 bytes), ML-KEM d||z (64 bytes),
 * Ed25519/X25519 private key (32 bytes). */
int pq_key_from_seed(pq_alg alg, const uint8_t *seed, size_t len, pq_key **out) PQ_MUST_CHECK;

/* Public key from its raw encoding (ML-DSA pk, ML-KEM ek with the FIPS 203 7.2 check,
 * Ed25519/X25519 32 bytes, ECDSA uncompressed point 65 bytes). */
int pq_key_from_public(pq_alg alg, const uint8_t *pub, size_t len, pq_key **out) PQ_MUST_CHECK;

/* Private key from its raw encoding (ML-DSA sk, ML-KEM dk with the FIPS 203 7.3 check,
 * Ed25519/X25519 32 bytes). Raw ECDSA private keys are refused (PQ_ERR_UNSUPPORTED): load
 * them from PEM. */
int pq_key_from_private(pq_alg alg, const uint8_t *priv, size_t len, pq_key **out) PQ_MUST_CHECK;

/* Raw encodings. *len is in: capacity, out: bytes written. Pass buf = NULL to learn the size.
 * An ECDSA public key comes in the point format the key carries: uncompressed (65 bytes)
 * for every key pqota generates. */
int pq_key_public_raw(const pq_key *k, uint8_t *buf, size_t *len) PQ_MUST_CHECK;
int pq_key_private_raw(const pq_key *k, uint8_t *buf, size_t *len) PQ_MUST_CHECK;

pq_alg pq_key_alg(const pq_key *k);
bool pq_key_has_private(const pq_key *k);

/* SHA-256 of the SubjectPublicKeyInfo DER: a stable key id (Uptane keyid material). */
int pq_key_id(const pq_key *k, uint8_t id[32]) PQ_MUST_CHECK;

/* PEM files. Private keys are written PKCS#8 unencrypted, mode 0600, refusing to
 * overwrite unless `overwrite`; public keys SubjectPublicKeyInfo, mode 0644. */
int pq_key_save_private(const pq_key *k, const char *path, bool overwrite) PQ_MUST_CHECK;
int pq_key_save_public(const pq_key *k, const char *path, bool overwrite) PQ_MUST_CHECK;
/* Loads a private or public PEM key; the algorithm is detected. */
int pq_key_load(const char *path, pq_key **out) PQ_MUST_CHECK;
/* PEM text in memory (public or private). */
int pq_key_parse_pem(const char *pem, size_t len, pq_key **out) PQ_MUST_CHECK;
/* Public key as PEM text; *out is malloc'd, caller frees. */
int pq_key_public_pem(const pq_key *k, char **out) PQ_MUST_CHECK;

/* A new handle holding only the public half. */
int pq_key_public_copy(const pq_key *k, pq_key **out) PQ_MUST_CHECK;

void pq_key_free(pq_key *k);

/* The underlying EVP_PKEY (borrowed; valid while the pq_key lives). For src/tls. */
struct evp_pkey_st;
struct evp_pkey_st *pq_key_evp(const pq_key *k);
/* Wraps an EVP_PKEY, taking a reference (the caller keeps its own). */
int pq_key_wrap_evp(struct evp_pkey_st *pkey, pq_key **out) PQ_MUST_CHECK;

#endif
