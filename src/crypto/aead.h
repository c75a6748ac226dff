/* aead.h: streaming authenticated encryption of large files (AES-256-GCM, chunked).
 *
 * Format (docs/security.md, "Streaming AEAD"): a 40-byte header, then the plaintext cut
 * into chunks of chunk_size bytes (the last may be shorter, or empty for an empty file),
 * each sealed separately with a 16-byte tag. A per-file key and 7-byte nonce prefix come
 * from HKDF over the content key and the header's random salt; chunk i's nonce is
 * nonce_prefix(7) || be32(i) || last(1), and every chunk authenticates the whole header
 * as AAD, so reordered,
 * dropped, truncated or appended chunks fail. Any chunk decrypts on its own, given the
 * header: a download resumed at chunk i needs nothing before it. */
#ifndef PQOTA_CRYPTO_AEAD_H
#define PQOTA_CRYPTO_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define PQ_AEAD_KEY_LEN       32
#define PQ_AEAD_HDR_LEN       40
#define PQ_AEAD_TAG_LEN       16
#define PQ_AEAD_CHUNK_DEFAULT (64 * 1024)
#define PQ_AEAD_CHUNK_MIN     16
#define PQ_AEAD_CHUNK_MAX     (16 * 1024 * 1024)

/* One-shot AES-256-GCM with a 12-byte nonce and 16-byte tag (out may equal in). */
int pq_gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16]) PQ_MUST_CHECK;
/* PQ_ERR_VERIFY when the tag does not match (out is then wiped). */
int pq_gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, const uint8_t tag[16], uint8_t *out) PQ_MUST_CHECK;

typedef struct {
	uint32_t chunk_size;
	uint64_t plain_len;
	uint64_t chunks;     /* number of chunks (>= 1) */
	uint64_t cipher_len; /* header + all chunks with tags */
	uint8_t salt[20];
} pq_aead_info;

typedef struct pq_aead pq_aead;

/* Starts sealing `plain_len` bytes. Writes the header to hdr. chunk_size 0 = default. */
int pq_aead_seal_init(const uint8_t key[PQ_AEAD_KEY_LEN], uint64_t plain_len, uint32_t chunk_size,
                      uint8_t hdr[PQ_AEAD_HDR_LEN], pq_aead **out) PQ_MUST_CHECK;

/* Parses and checks a header for opening. */
int pq_aead_open_init(const uint8_t key[PQ_AEAD_KEY_LEN], const uint8_t hdr[PQ_AEAD_HDR_LEN],
                      pq_aead **out) PQ_MUST_CHECK;

const pq_aead_info *pq_aead_get_info(const pq_aead *a);

/* Plaintext length of chunk `index` (chunk_size except for the last). */
size_t pq_aead_chunk_plain_len(const pq_aead *a, uint64_t index);

/* Seals chunk `index`: in is exactly pq_aead_chunk_plain_len() bytes; out receives that
 * many bytes plus the 16-byte tag. Chunks are sealed in order 0, 1, 2...: any other index
 * (including one already sealed, which would reuse its nonce) is refused. */
int pq_aead_seal_chunk(pq_aead *a, uint64_t index, const uint8_t *in, size_t in_len,
                       uint8_t *out) PQ_MUST_CHECK;

/* Opens chunk `index`: in is the sealed chunk (plain length + 16). PQ_ERR_VERIFY when the
 * tag, position or finality does not match. */
int pq_aead_open_chunk(pq_aead *a, uint64_t index, const uint8_t *in, size_t in_len,
                       uint8_t *out) PQ_MUST_CHECK;

void pq_aead_free(pq_aead *a);

/* Whole files, streamed with memory bounded by two chunks. Each writes `out_path`.part
 * (never following a symlink there) and renames it into place only on success, so a failed
 * decryption leaves no output; decrypted files are mode 0600. */
int pq_aead_encrypt_file(const uint8_t key[PQ_AEAD_KEY_LEN], uint32_t chunk_size,
                         const char *in_path, const char *out_path) PQ_MUST_CHECK;
int pq_aead_decrypt_file(const uint8_t key[PQ_AEAD_KEY_LEN], const char *in_path,
                         const char *out_path) PQ_MUST_CHECK;

#endif
