/* aead.c: AES-256-GCM one-shot and the chunked streaming AEAD for large files. */
#include "crypto/aead.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/fileio.h"
#include "crypto/hash.h"

#define AE_MAGIC      "PQAE"
#define AE_VERSION    1
#define AE_SUITE      1 /* AES-256-GCM, per-file key by HKDF-SHA256 */
#define AE_LABEL      "pqota-aead-v1"
#define AE_MAX_CHUNKS (1ull << 32)

static EVP_CIPHER *gcm_cipher(void)
{
	static EVP_CIPHER *c;
	EVP_CIPHER *cur = __atomic_load_n(&c, __ATOMIC_ACQUIRE);
	if (cur)
		return cur;
	cur = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (!cur)
		return NULL;
	EVP_CIPHER *expected = NULL;
	if (!__atomic_compare_exchange_n(&c, &expected, cur, 0, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		EVP_CIPHER_free(cur);
		return expected;
	}
	return cur;
}

/* Seals or opens with an existing context; tag is output when sealing, input when opening. */
static int gcm_run(EVP_CIPHER_CTX *ctx, int enc, const uint8_t key[32], const uint8_t nonce[12],
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t *out,
                   uint8_t tag[16])
{
	EVP_CIPHER *cipher = gcm_cipher();
	int outl = 0;
	if (!cipher)
		return pq_err_ssl(PQ_ERR_UNSUPPORTED, "AES-256-GCM unavailable");
	if (len > INT_MAX || aad_len > INT_MAX)
		return pq_err_set(PQ_ERR_RANGE, "GCM input too large");
	if (!EVP_CipherInit_ex2(ctx, cipher, key, nonce, enc, NULL))
		return pq_err_ssl(PQ_ERR_CRYPTO, "GCM init");
	if (aad_len && !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len))
		return pq_err_ssl(PQ_ERR_CRYPTO, "GCM aad");
	if (len && !EVP_CipherUpdate(ctx, out, &outl, in, (int)len))
		return pq_err_ssl(PQ_ERR_CRYPTO, "GCM update");
	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag))
		return pq_err_ssl(PQ_ERR_CRYPTO, "GCM set tag");
	if (EVP_CipherFinal_ex(ctx, out + outl, &outl) != 1) {
		if (enc)
			return pq_err_ssl(PQ_ERR_CRYPTO, "GCM final");
		OPENSSL_cleanse(out, len);
		return pq_err_set(PQ_ERR_VERIFY, "authentication tag mismatch");
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag))
		return pq_err_ssl(PQ_ERR_CRYPTO, "GCM get tag");
	return PQ_OK;
}

int pq_gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int rc;
	if (!ctx)
		return pq_err_ssl(PQ_ERR_NOMEM, "cipher context");
	rc = gcm_run(ctx, 1, key, nonce, aad, aad_len, in, len, out, tag);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int pq_gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, const uint8_t tag[16], uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t t[16];
	int rc;
	if (!ctx)
		return pq_err_ssl(PQ_ERR_NOMEM, "cipher context");
	memcpy(t, tag, 16);
	rc = gcm_run(ctx, 0, key, nonce, aad, aad_len, in, len, out, t);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* ---- streaming AEAD ---------------------------------------------------------------- */

struct pq_aead {
	pq_aead_info info;
	uint64_t next_seal; /* sealing is strictly sequential: no index is sealed twice */
	uint8_t hdr[PQ_AEAD_HDR_LEN];
	uint8_t key[32];
	uint8_t nonce_prefix[7];
	EVP_CIPHER_CTX *ctx;
};

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Validates sizes, fills derived info, derives the per-file key and nonce prefix. */
static int aead_setup(const uint8_t content_key[32], pq_aead *a)
{
	pq_aead_info *in = &a->info;
	uint8_t okm[39];
	int rc;
	if (in->chunk_size < PQ_AEAD_CHUNK_MIN || in->chunk_size > PQ_AEAD_CHUNK_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "AEAD chunk size %u outside %d..%d",
		                  in->chunk_size, PQ_AEAD_CHUNK_MIN, PQ_AEAD_CHUNK_MAX);
	in->chunks = in->plain_len == 0 ? 1 : (in->plain_len - 1) / in->chunk_size + 1;
	if (in->chunks > AE_MAX_CHUNKS)
		return pq_err_set(PQ_ERR_RANGE,
		                  "AEAD plaintext of %llu bytes needs too many chunks",
		                  (unsigned long long)in->plain_len);
	in->cipher_len = PQ_AEAD_HDR_LEN + in->plain_len + in->chunks * PQ_AEAD_TAG_LEN;
	rc = pq_hkdf(PQ_HASH_SHA256, in->salt, sizeof(in->salt), content_key, 32,
	             (const uint8_t *)AE_LABEL, sizeof(AE_LABEL) - 1, okm, sizeof(okm));
	if (rc != PQ_OK)
		return rc;
	memcpy(a->key, okm, 32);
	memcpy(a->nonce_prefix, okm + 32, 7);
	OPENSSL_cleanse(okm, sizeof(okm));
	a->ctx = EVP_CIPHER_CTX_new();
	if (!a->ctx)
		return pq_err_ssl(PQ_ERR_NOMEM, "cipher context");
	return PQ_OK;
}

int pq_aead_seal_init(const uint8_t key[PQ_AEAD_KEY_LEN], uint64_t plain_len, uint32_t chunk_size,
                      uint8_t hdr[PQ_AEAD_HDR_LEN], pq_aead **out)
{
	pq_aead *a = calloc(1, sizeof(*a));
	int rc;
	*out = NULL;
	if (!a)
		return pq_err_set(PQ_ERR_NOMEM, "AEAD state");
	a->info.chunk_size = chunk_size ? chunk_size : PQ_AEAD_CHUNK_DEFAULT;
	a->info.plain_len = plain_len;
	rc = pq_random(a->info.salt, sizeof(a->info.salt));
	if (rc == PQ_OK)
		rc = aead_setup(key, a);
	if (rc != PQ_OK) {
		pq_aead_free(a);
		return rc;
	}
	memcpy(a->hdr, AE_MAGIC, 4);
	a->hdr[4] = AE_VERSION;
	a->hdr[5] = AE_SUITE;
	a->hdr[6] = a->hdr[7] = 0;
	put_be32(a->hdr + 8, a->info.chunk_size);
	put_be64(a->hdr + 12, plain_len);
	memcpy(a->hdr + 20, a->info.salt, 20);
	memcpy(hdr, a->hdr, PQ_AEAD_HDR_LEN);
	*out = a;
	return PQ_OK;
}

int pq_aead_open_init(const uint8_t key[PQ_AEAD_KEY_LEN], const uint8_t hdr[PQ_AEAD_HDR_LEN],
                      pq_aead **out)
{
	pq_aead *a;
	int rc;
	*out = NULL;
	if (memcmp(hdr, AE_MAGIC, 4) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "not a pqota encrypted stream (bad magic)");
	if (hdr[4] != AE_VERSION || hdr[5] != AE_SUITE || hdr[6] || hdr[7])
		return pq_err_set(PQ_ERR_FORMAT, "encrypted stream version %u suite %u unsupported",
		                  hdr[4], hdr[5]);
	a = calloc(1, sizeof(*a));
	if (!a)
		return pq_err_set(PQ_ERR_NOMEM, "AEAD state");
	a->info.chunk_size = get_be32(hdr + 8);
	a->info.plain_len = get_be64(hdr + 12);
	memcpy(a->info.salt, hdr + 20, 20);
	memcpy(a->hdr, hdr, PQ_AEAD_HDR_LEN);
	rc = aead_setup(key, a);
	if (rc != PQ_OK) {
		pq_aead_free(a);
		return rc;
	}
	*out = a;
	return PQ_OK;
}

const pq_aead_info *pq_aead_get_info(const pq_aead *a)
{
	return &a->info;
}

size_t pq_aead_chunk_plain_len(const pq_aead *a, uint64_t index)
{
	if (index >= a->info.chunks)
		return 0;
	if (index + 1 < a->info.chunks)
		return a->info.chunk_size;
	return (size_t)(a->info.plain_len - index * a->info.chunk_size);
}

static void chunk_nonce(const pq_aead *a, uint64_t index, uint8_t nonce[12])
{
	memcpy(nonce, a->nonce_prefix, 7);
	put_be32(nonce + 7, (uint32_t)index);
	nonce[11] = index + 1 == a->info.chunks ? 1 : 0;
}

int pq_aead_seal_chunk(pq_aead *a, uint64_t index, const uint8_t *in, size_t in_len, uint8_t *out)
{
	uint8_t nonce[12];
	if (index >= a->info.chunks || in_len != pq_aead_chunk_plain_len(a, index))
		return pq_err_set(PQ_ERR_INVAL, "chunk %llu of %zu bytes does not fit the stream",
		                  (unsigned long long)index, in_len);
	if (index != a->next_seal)
		return pq_err_set(PQ_ERR_INVAL,
		                  "chunk %llu sealed out of order (next is %llu): a nonce is "
		                  "never used twice",
		                  (unsigned long long)index, (unsigned long long)a->next_seal);
	chunk_nonce(a, index, nonce);
	int rc = gcm_run(a->ctx, 1, a->key, nonce, a->hdr, PQ_AEAD_HDR_LEN, in, in_len, out,
	                 out + in_len);
	if (rc == PQ_OK)
		a->next_seal++;
	return rc;
}

int pq_aead_open_chunk(pq_aead *a, uint64_t index, const uint8_t *in, size_t in_len, uint8_t *out)
{
	uint8_t nonce[12], tag[16];
	size_t plen;
	if (index >= a->info.chunks)
		return pq_err_set(PQ_ERR_VERIFY, "chunk %llu beyond the stream's %llu chunks",
		                  (unsigned long long)index, (unsigned long long)a->info.chunks);
	plen = pq_aead_chunk_plain_len(a, index);
	if (in_len != plen + PQ_AEAD_TAG_LEN)
		return pq_err_set(PQ_ERR_VERIFY, "chunk %llu is %zu bytes, expected %zu",
		                  (unsigned long long)index, in_len, plen + PQ_AEAD_TAG_LEN);
	chunk_nonce(a, index, nonce);
	memcpy(tag, in + plen, 16);
	int rc = gcm_run(a->ctx, 0, a->key, nonce, a->hdr, PQ_AEAD_HDR_LEN, in, plen, out, tag);
	if (rc == PQ_ERR_VERIFY)
		return pq_err_set(PQ_ERR_VERIFY, "chunk %llu does not authenticate",
		                  (unsigned long long)index);
	return rc;
}

void pq_aead_free(pq_aead *a)
{
	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->ctx);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

/* ---- whole files ------------------------------------------------------------------- */

int pq_aead_encrypt_file(const uint8_t key[PQ_AEAD_KEY_LEN], uint32_t chunk_size,
                         const char *in_path, const char *out_path)
{
	int in = -1, out = -1, rc;
	pq_aead *a = NULL;
	uint8_t *pbuf = NULL, *cbuf = NULL, hdr[PQ_AEAD_HDR_LEN];
	struct stat st;
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s.part", out_path) >= (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long");
	in = open(in_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", in_path, strerror(errno));
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = pq_err_set(PQ_ERR_IO, "%s: not a readable regular file", in_path);
		goto out;
	}
	rc = pq_aead_seal_init(key, (uint64_t)st.st_size, chunk_size, hdr, &a);
	if (rc != PQ_OK)
		goto out;
	pbuf = malloc(a->info.chunk_size);
	cbuf = malloc((size_t)a->info.chunk_size + PQ_AEAD_TAG_LEN);
	if (!pbuf || !cbuf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "AEAD buffers");
		goto out;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (out < 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = pq_write_all(out, hdr, sizeof(hdr));
	for (uint64_t i = 0; rc == PQ_OK && i < a->info.chunks; i++) {
		size_t want = pq_aead_chunk_plain_len(a, i), got = 0;
		rc = pq_read_full(in, pbuf, want, &got);
		if (rc == PQ_OK && got != want)
			rc = pq_err_set(PQ_ERR_IO, "%s changed while being encrypted", in_path);
		if (rc == PQ_OK)
			rc = pq_aead_seal_chunk(a, i, pbuf, want, cbuf);
		if (rc == PQ_OK)
			rc = pq_write_all(out, cbuf, want + PQ_AEAD_TAG_LEN);
	}
	if (rc == PQ_OK && fsync(out) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (rc == PQ_OK && rename(tmp, out_path) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename to %s: %s", out_path, strerror(errno));
out:
	if (out >= 0) {
		close(out);
		if (rc != PQ_OK)
			unlink(tmp);
	}
	if (in >= 0)
		close(in);
	free(pbuf);
	free(cbuf);
	pq_aead_free(a);
	return rc;
}

int pq_aead_decrypt_file(const uint8_t key[PQ_AEAD_KEY_LEN], const char *in_path,
                         const char *out_path)
{
	int in = -1, out = -1, rc;
	pq_aead *a = NULL;
	uint8_t *pbuf = NULL, *cbuf = NULL, hdr[PQ_AEAD_HDR_LEN];
	struct stat st;
	size_t got = 0;
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s.part", out_path) >= (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long");
	in = open(in_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", in_path, strerror(errno));
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = pq_err_set(PQ_ERR_IO, "%s: not a readable regular file", in_path);
		goto out;
	}
	rc = pq_read_full(in, hdr, sizeof(hdr), &got);
	if (rc == PQ_OK && got != sizeof(hdr))
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: truncated header", in_path);
	if (rc == PQ_OK)
		rc = pq_aead_open_init(key, hdr, &a);
	if (rc != PQ_OK)
		goto out;
	if ((uint64_t)st.st_size != a->info.cipher_len) {
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s is %lld bytes, the header announces %llu "
		                "(truncated or extended)",
		                in_path, (long long)st.st_size,
		                (unsigned long long)a->info.cipher_len);
		goto out;
	}
	pbuf = malloc(a->info.chunk_size);
	cbuf = malloc((size_t)a->info.chunk_size + PQ_AEAD_TAG_LEN);
	if (!pbuf || !cbuf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "AEAD buffers");
		goto out;
	}
	/* plaintext firmware: readable by its owner only, never through a planted link */
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	for (uint64_t i = 0; rc == PQ_OK && i < a->info.chunks; i++) {
		size_t want = pq_aead_chunk_plain_len(a, i) + PQ_AEAD_TAG_LEN;
		rc = pq_read_full(in, cbuf, want, &got);
		if (rc == PQ_OK && got != want)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: chunk %llu truncated", in_path,
			                (unsigned long long)i);
		if (rc == PQ_OK)
			rc = pq_aead_open_chunk(a, i, cbuf, want, pbuf);
		if (rc == PQ_OK)
			rc = pq_write_all(out, pbuf, want - PQ_AEAD_TAG_LEN);
	}
	if (rc == PQ_OK && fsync(out) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (rc == PQ_OK && rename(tmp, out_path) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename to %s: %s", out_path, strerror(errno));
out:
	if (out >= 0) {
		close(out);
		if (rc != PQ_OK)
			unlink(tmp);
	}
	if (in >= 0)
		close(in);
	if (pbuf && a)
		OPENSSL_cleanse(pbuf, a->info.chunk_size);
	free(pbuf);
	free(cbuf);
	pq_aead_free(a);
	return rc;
}
