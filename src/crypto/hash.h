/* hash.h: message digests (SHA-2, SHA3-256), CRC-32 and HKDF on OpenSSL's EVP. */
#ifndef PQOTA_CRYPTO_HASH_H
#define PQOTA_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum {
	PQ_HASH_SHA256 = 0,
	PQ_HASH_SHA384 = 1,
	PQ_HASH_SHA512 = 2,
	PQ_HASH_SHA3_256 = 3,
} pq_hash_alg;

#define PQ_HASH_MAX 64 /* largest digest, bytes */

/* Digest length in bytes (0 for an unknown algorithm). */
size_t pq_hash_len(pq_hash_alg alg);
/* "sha256", "sha384", "sha512", "sha3-256". */
const char *pq_hash_name(pq_hash_alg alg);
int pq_hash_from_name(const char *name, pq_hash_alg *out) PQ_MUST_CHECK;

/* One-shot digest: out must hold pq_hash_len(alg) bytes. */
int pq_hash(pq_hash_alg alg, const void *data, size_t len, uint8_t *out) PQ_MUST_CHECK;

/* Streaming digest. The context is owned by the caller: pq_hash_free() it (NULL-safe). */
typedef struct pq_hash_ctx pq_hash_ctx;
int pq_hash_new(pq_hash_alg alg, pq_hash_ctx **out) PQ_MUST_CHECK;
int pq_hash_update(pq_hash_ctx *h, const void *data, size_t len) PQ_MUST_CHECK;
/* Writes the digest and resets the context for reuse with the same algorithm. */
int pq_hash_final(pq_hash_ctx *h, uint8_t *out) PQ_MUST_CHECK;
void pq_hash_free(pq_hash_ctx *h);

/* Digest of a whole file, streamed in 64 KiB reads; pq_hash_fd reads fd from offset 0 to
 * its end with pread. */
int pq_hash_fd(pq_hash_alg alg, int fd, uint8_t *out) PQ_MUST_CHECK;
int pq_hash_file(pq_hash_alg alg, const char *path, uint8_t *out) PQ_MUST_CHECK;

/* zlib-compatible CRC-32: start with crc = 0, feed chunks in order. */
uint32_t pq_crc32(uint32_t crc, const void *data, size_t len);

/* HKDF (RFC 5869), extract-and-expand, with the given hash. salt/info may be NULL with 0. */
int pq_hkdf(pq_hash_alg alg, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
            size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
            size_t out_len) PQ_MUST_CHECK;

/* Cryptographically secure random bytes. */
int pq_random(void *out, size_t len) PQ_MUST_CHECK;

/* Constant-time comparison: 0 when equal. */
int pq_memeq_ct(const void *a, const void *b, size_t len);

#endif
