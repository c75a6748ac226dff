/* hash.c: digests, CRC-32, HKDF and randomness on OpenSSL EVP and zlib. */
#include "crypto/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "core/fileio.h"

struct pq_hash_ctx {
	EVP_MD_CTX *md_ctx;
	const EVP_MD *md;
	pq_hash_alg alg;
};

static const struct {
	const char *name;
	const char *ossl;
	size_t len;
} hashes[] = {
    [PQ_HASH_SHA256] = {"sha256", "SHA2-256", 32},
    [PQ_HASH_SHA384] = {"sha384", "SHA2-384", 48},
    [PQ_HASH_SHA512] = {"sha512", "SHA2-512", 64},
    [PQ_HASH_SHA3_256] = {"sha3-256", "SHA3-256", 32},
};

#define NHASH (sizeof(hashes) / sizeof(hashes[0]))

/* Fetched once; EVP_MD objects are reference counted and thread-safe to share. */
static EVP_MD *md_cache[NHASH];

static const EVP_MD *get_md(pq_hash_alg alg)
{
	if ((unsigned)alg >= NHASH)
		return NULL;
	EVP_MD *md = __atomic_load_n(&md_cache[alg], __ATOMIC_ACQUIRE);
	if (md)
		return md;
	md = EVP_MD_fetch(NULL, hashes[alg].ossl, NULL);
	if (!md)
		return NULL;
	EVP_MD *expected = NULL;
	if (!__atomic_compare_exchange_n(&md_cache[alg], &expected, md, 0, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		EVP_MD_free(md);
		return expected;
	}
	return md;
}

size_t pq_hash_len(pq_hash_alg alg)
{
	return (unsigned)alg < NHASH ? hashes[alg].len : 0;
}

const char *pq_hash_name(pq_hash_alg alg)
{
	return (unsigned)alg < NHASH ? hashes[alg].name : "?";
}

int pq_hash_from_name(const char *name, pq_hash_alg *out)
{
	for (size_t i = 0; i < NHASH; i++) {
		if (strcasecmp(name, hashes[i].name) == 0 ||
		    strcasecmp(name, hashes[i].ossl) == 0) {
			*out = (pq_hash_alg)i;
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_UNSUPPORTED, "unknown hash '%s'", name);
}

int pq_hash(pq_hash_alg alg, const void *data, size_t len, uint8_t *out)
{
	const EVP_MD *md = get_md(alg);
	if (!md)
		return pq_err_ssl(PQ_ERR_UNSUPPORTED, "hash %d unavailable", (int)alg);
	if (!EVP_Digest(data, len, out, NULL, md, NULL))
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s failed", hashes[alg].name);
	return PQ_OK;
}

int pq_hash_new(pq_hash_alg alg, pq_hash_ctx **out)
{
	pq_hash_ctx *h = NULL;
	const EVP_MD *md = get_md(alg);
	*out = NULL;
	if (!md)
		return pq_err_ssl(PQ_ERR_UNSUPPORTED, "hash %d unavailable", (int)alg);
	h = calloc(1, sizeof(*h));
	if (!h)
		return pq_err_set(PQ_ERR_NOMEM, "hash context");
	h->md = md;
	h->alg = alg;
	h->md_ctx = EVP_MD_CTX_new();
	if (!h->md_ctx || !EVP_DigestInit_ex2(h->md_ctx, md, NULL)) {
		pq_hash_free(h);
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s init", hashes[alg].name);
	}
	*out = h;
	return PQ_OK;
}

int pq_hash_update(pq_hash_ctx *h, const void *data, size_t len)
{
	if (!EVP_DigestUpdate(h->md_ctx, data, len))
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s update", hashes[h->alg].name);
	return PQ_OK;
}

int pq_hash_final(pq_hash_ctx *h, uint8_t *out)
{
	if (!EVP_DigestFinal_ex(h->md_ctx, out, NULL) ||
	    !EVP_DigestInit_ex2(h->md_ctx, h->md, NULL))
		return pq_err_ssl(PQ_ERR_CRYPTO, "%s final", hashes[h->alg].name);
	return PQ_OK;
}

void pq_hash_free(pq_hash_ctx *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->md_ctx);
	free(h);
}

int pq_hash_fd(pq_hash_alg alg, int fd, uint8_t *out)
{
	pq_hash_ctx *h = NULL;
	uint8_t *buf = malloc(65536);
	int rc = buf ? pq_hash_new(alg, &h) : pq_err_set(PQ_ERR_NOMEM, "hash buffer");
	for (off_t off = 0; rc == PQ_OK;) {
		ssize_t got = pread(fd, buf, 65536, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			rc = pq_err_set(PQ_ERR_IO, "read: %s", strerror(errno));
		else if (got == 0)
			break;
		else
			rc = pq_hash_update(h, buf, (size_t)got);
		off += got > 0 ? got : 0;
	}
	if (rc == PQ_OK)
		rc = pq_hash_final(h, out);
	pq_hash_free(h);
	free(buf);
	return rc;
}

int pq_hash_file(pq_hash_alg alg, const char *path, uint8_t *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", path,
		                  strerror(errno));
	int rc = pq_hash_fd(alg, fd, out);
	close(fd);
	return rc == PQ_OK ? rc : pq_err_wrap(rc, "%s", path);
}

uint32_t pq_crc32(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;
	uLong c = crc;
	/* zlib's crc32 takes a uInt length: feed large buffers in pieces */
	while (len > 0) {
		uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)c;
}

int pq_hkdf(pq_hash_alg alg, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
            size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = PQ_OK;

	if ((unsigned)alg >= NHASH)
		return pq_err_set(PQ_ERR_INVAL, "hkdf: bad hash");
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (!kctx) {
		rc = pq_err_ssl(PQ_ERR_UNSUPPORTED, "HKDF unavailable");
		goto out;
	}
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)hashes[alg].ossl, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt_len)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info_len)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) <= 0)
		rc = pq_err_ssl(PQ_ERR_CRYPTO, "HKDF derive of %zu bytes", out_len);
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

int pq_random(void *out, size_t len)
{
	if (len > 0x7fffffff || RAND_bytes(out, (int)len) != 1)
		return pq_err_ssl(PQ_ERR_CRYPTO, "random bytes");
	return PQ_OK;
}

int pq_memeq_ct(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len);
}
