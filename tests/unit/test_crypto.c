/* test_crypto.c: unit tests of src/crypto: hashes, keys, signatures, KEM, wrap, AEAD, profiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/text.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "crypto/key.h"
#include "crypto/profile.h"
#include "crypto/sig.h"
#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const pq_alg sig_algs[] = {PQ_ALG_ED25519, PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA44, PQ_ALG_MLDSA65,
                                  PQ_ALG_MLDSA87};
static const pq_alg kem_algs[] = {PQ_ALG_MLKEM512, PQ_ALG_MLKEM768, PQ_ALG_MLKEM1024,
                                  PQ_ALG_X25519};

/* ---- helpers ----------------------------------------------------------------------- */

static bool is_mldsa(pq_alg a)
{
	return a == PQ_ALG_MLDSA44 || a == PQ_ALG_MLDSA65 || a == PQ_ALG_MLDSA87;
}

static bool is_mlkem(pq_alg a)
{
	return a == PQ_ALG_MLKEM512 || a == PQ_ALG_MLKEM768 || a == PQ_ALG_MLKEM1024;
}

static void assert_hex(const uint8_t *got, size_t len, const char *hex)
{
	size_t n = 0;
	uint8_t *want = tu_unhex(hex, &n);
	assert_int_equal(n, len);
	assert_memory_equal(got, want, len);
	free(want);
}

/* Whole file into a malloc'd buffer (never NULL). */
static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	*len = fread(buf, 1, (size_t)st.st_size, f);
	assert_int_equal(*len, (size_t)st.st_size);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static uint8_t *random_buf(size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	assert_non_null(b);
	if (len)
		assert_int_equal(pq_random(b, len), PQ_OK);
	return b;
}

static pq_key *gen(pq_alg alg)
{
	pq_key *k = NULL;
	assert_int_equal(pq_key_generate(alg, &k), PQ_OK);
	assert_non_null(k);
	assert_int_equal(pq_key_alg(k), alg);
	assert_true(pq_key_has_private(k));
	return k;
}

static pq_key *pub_copy(const pq_key *k)
{
	pq_key *p = NULL;
	assert_int_equal(pq_key_public_copy(k, &p), PQ_OK);
	assert_non_null(p);
	return p;
}

/* Signs and checks the length; returns it. sig holds PQ_SIG_MAX bytes. */
static size_t sign_ok(const pq_key *k, const pq_sig_opts *o, const uint8_t *msg, size_t len,
                      uint8_t *sig)
{
	size_t sl = PQ_SIG_MAX;
	assert_int_equal(pq_sign(k, o, msg, len, sig, &sl), PQ_OK);
	assert_true(sl > 0);
	assert_true(sl <= pq_sig_max_len(pq_key_alg(k)));
	if (is_mldsa(pq_key_alg(k)))
		assert_int_equal(sl, pq_sig_max_len(pq_key_alg(k)));
	return sl;
}

/* Verifies a copy of sig with one byte XORed by mask. */
static int verify_flipped(const pq_key *k, const pq_sig_opts *o, const uint8_t *msg, size_t msg_len,
                          const uint8_t *sig, size_t sig_len, size_t pos, uint8_t mask)
{
	uint8_t *c = malloc(sig_len);
	assert_non_null(c);
	memcpy(c, sig, sig_len);
	c[pos] ^= mask;
	int rc = pq_verify(k, o, msg, msg_len, c, sig_len);
	free(c);
	return rc;
}

/* ---- hash.h ------------------------------------------------------------------------ */

static const struct {
	pq_hash_alg alg;
	const char *msg;
	const char *hex;
} hash_vectors[] = {
    {PQ_HASH_SHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {PQ_HASH_SHA256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {PQ_HASH_SHA384, "abc",
     "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
     "8086072ba1e7cc2358baeca134c825a7"},
    {PQ_HASH_SHA384, "",
     "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da"
     "274edebfe76f65fbd51ad2f14898b95b"},
    {PQ_HASH_SHA512, "abc",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
    {PQ_HASH_SHA512, "",
     "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
     "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
    {PQ_HASH_SHA3_256, "abc", "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"},
    {PQ_HASH_SHA3_256, "", "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"},
};

static const pq_hash_alg all_hashes[] = {PQ_HASH_SHA256, PQ_HASH_SHA384, PQ_HASH_SHA512,
                                         PQ_HASH_SHA3_256};

static void test_hash_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(hash_vectors); i++) {
		uint8_t d[PQ_HASH_MAX];
		size_t n = strlen(hash_vectors[i].hex) / 2;
		assert_int_equal(pq_hash_len(hash_vectors[i].alg), n);
		memset(d, 0xa5, sizeof(d));
		assert_int_equal(pq_hash(hash_vectors[i].alg, hash_vectors[i].msg,
		                         strlen(hash_vectors[i].msg), d),
		                 PQ_OK);
		assert_hex(d, n, hash_vectors[i].hex);
		/* nothing written beyond the digest */
		for (size_t j = n; j < sizeof(d); j++)
			assert_int_equal(d[j], 0xa5);
	}
}

static void test_hash_names(void **state)
{
	static const char *const names[] = {"sha256", "sha384", "sha512", "sha3-256"};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(all_hashes); i++) {
		pq_hash_alg a = PQ_HASH_SHA512;
		assert_string_equal(pq_hash_name(all_hashes[i]), names[i]);
		assert_int_equal(pq_hash_from_name(names[i], &a), PQ_OK);
		assert_int_equal(a, all_hashes[i]);
	}
	pq_hash_alg a = PQ_HASH_SHA256;
	assert_int_not_equal(pq_hash_from_name("md5", &a), PQ_OK);
	assert_int_not_equal(pq_hash_from_name("", &a), PQ_OK);
	assert_int_equal(pq_hash_len((pq_hash_alg)4), 0);
	uint8_t d[PQ_HASH_MAX];
	assert_int_not_equal(pq_hash((pq_hash_alg)4, "abc", 3, d), PQ_OK);
}

static void test_hash_streaming(void **state)
{
	(void)state;
	uint8_t data[3001];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	static const size_t pieces[] = {0, 1, 63, 64, 65, 0, 127, 1000, 5};

	for (size_t h = 0; h < ARRAY_LEN(all_hashes); h++) {
		pq_hash_alg alg = all_hashes[h];
		size_t dl = pq_hash_len(alg);
		uint8_t one[PQ_HASH_MAX], got[PQ_HASH_MAX];
		pq_hash_ctx *ctx = NULL;

		assert_int_equal(pq_hash(alg, data, sizeof(data), one), PQ_OK);
		assert_int_equal(pq_hash_new(alg, &ctx), PQ_OK);
		assert_non_null(ctx);

		/* uneven pieces, including empty updates */
		size_t off = 0;
		for (size_t p = 0; off < sizeof(data); p = (p + 1) % ARRAY_LEN(pieces)) {
			size_t n = pieces[p];
			if (n > sizeof(data) - off)
				n = sizeof(data) - off;
			assert_int_equal(pq_hash_update(ctx, data + off, n), PQ_OK);
			off += n;
		}
		assert_int_equal(pq_hash_final(ctx, got), PQ_OK);
		assert_memory_equal(got, one, dl);

		/* reuse after final: byte by byte this time */
		for (size_t i = 0; i < sizeof(data); i++)
			assert_int_equal(pq_hash_update(ctx, data + i, 1), PQ_OK);
		assert_int_equal(pq_hash_final(ctx, got), PQ_OK);
		assert_memory_equal(got, one, dl);

		/* reuse for a known vector, then for the empty message */
		assert_int_equal(pq_hash_update(ctx, "ab", 2), PQ_OK);
		assert_int_equal(pq_hash_update(ctx, "c", 1), PQ_OK);
		assert_int_equal(pq_hash_final(ctx, got), PQ_OK);
		assert_hex(got, dl, hash_vectors[2 * h].hex);
		assert_int_equal(pq_hash_final(ctx, got), PQ_OK);
		assert_hex(got, dl, hash_vectors[2 * h + 1].hex);
		pq_hash_free(ctx);
	}
	pq_hash_free(NULL);
}

static void test_hash_file(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("hashfile");
	char path[PATH_MAX];
	/* sizes around the 64 KiB read size */
	static const size_t sizes[] = {0, 3, 65535, 65536, 65537, 200000};
	uint8_t *data = random_buf(200000);

	tu_join(path, sizeof(path), dir, "f.bin");
	for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
		tu_write_file(path, data, sizes[s]);
		for (size_t h = 0; h < ARRAY_LEN(all_hashes); h++) {
			uint8_t one[PQ_HASH_MAX], got[PQ_HASH_MAX];
			assert_int_equal(pq_hash(all_hashes[h], data, sizes[s], one), PQ_OK);
			assert_int_equal(pq_hash_file(all_hashes[h], path, got), PQ_OK);
			assert_memory_equal(got, one, pq_hash_len(all_hashes[h]));
		}
	}
	tu_write_file(path, "abc", 3);
	uint8_t d[PQ_HASH_MAX];
	assert_int_equal(pq_hash_file(PQ_HASH_SHA256, path, d), PQ_OK);
	assert_hex(d, 32, hash_vectors[0].hex);

	tu_join(path, sizeof(path), dir, "missing");
	assert_int_equal(pq_hash_file(PQ_HASH_SHA256, path, d), PQ_ERR_NOTFOUND);
	free(data);
	tu_rmtree(dir);
	free(dir);
}

static void test_crc32(void **state)
{
	(void)state;
	const char *s = "123456789";
	assert_int_equal(pq_crc32(0, s, 9), 0xCBF43926u);
	assert_int_equal(pq_crc32(0, "", 0), 0);
	assert_int_equal(pq_crc32(0, "a", 1), 0xE8B7BE43u);
	for (size_t cut = 0; cut <= 9; cut++) {
		uint32_t c = pq_crc32(0, s, cut);
		c = pq_crc32(c, s + cut, 9 - cut);
		assert_int_equal(c, 0xCBF43926u);
	}
	/* three pieces, and a larger buffer fed byte by byte */
	uint32_t c = pq_crc32(pq_crc32(pq_crc32(0, s, 2), s + 2, 5), s + 7, 2);
	assert_int_equal(c, 0xCBF43926u);
	uint8_t *buf = random_buf(10000);
	uint32_t one = pq_crc32(0, buf, 10000), inc = 0;
	for (size_t i = 0; i < 10000; i++)
		inc = pq_crc32(inc, buf + i, 1);
	assert_int_equal(inc, one);
	buf[5000] ^= 1;
	assert_int_not_equal(pq_crc32(0, buf, 10000), one);
	free(buf);
}

static void test_hkdf_rfc5869(void **state)
{
	(void)state;
	uint8_t ikm[22], salt[13], info[10], okm[42];
	memset(ikm, 0x0b, sizeof(ikm));
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);

	/* A.1 */
	assert_int_equal(pq_hkdf(PQ_HASH_SHA256, salt, sizeof(salt), ikm, sizeof(ikm), info,
	                         sizeof(info), okm, sizeof(okm)),
	                 PQ_OK);
	assert_hex(okm, sizeof(okm),
	           "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	           "34007208d5b887185865");
	/* A.3: no salt, no info */
	assert_int_equal(
	    pq_hkdf(PQ_HASH_SHA256, NULL, 0, ikm, sizeof(ikm), NULL, 0, okm, sizeof(okm)), PQ_OK);
	assert_hex(okm, sizeof(okm),
	           "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	           "9d201395faa4b61a96c8");
	/* a shorter output is a prefix of the longer one */
	uint8_t okm16[16];
	assert_int_equal(
	    pq_hkdf(PQ_HASH_SHA256, NULL, 0, ikm, sizeof(ikm), NULL, 0, okm16, sizeof(okm16)),
	    PQ_OK);
	assert_memory_equal(okm16, okm, sizeof(okm16));
	/* more than 255 * HashLen is impossible */
	uint8_t *big = malloc(255 * 32 + 1);
	assert_non_null(big);
	assert_int_not_equal(pq_hkdf(PQ_HASH_SHA256, salt, sizeof(salt), ikm, sizeof(ikm), NULL, 0,
	                             big, 255 * 32 + 1),
	                     PQ_OK);
	free(big);
}

static void test_hex(void **state)
{
	(void)state;
	const uint8_t bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	char hex[2 * sizeof(bin) + 1];
	uint8_t out[16];
	size_t n = 99;

	pq_hex_encode(bin, sizeof(bin), hex);
	assert_string_equal(hex, "00017f80abff");
	pq_hex_encode(bin, 0, hex);
	assert_string_equal(hex, "");

	assert_int_equal(pq_hex_decode("00017f80abff", out, sizeof(out), &n), PQ_OK);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(out, bin, sizeof(bin));
	assert_int_equal(pq_hex_decode("00017F80ABFF", out, sizeof(out), &n), PQ_OK);
	assert_int_equal(n, sizeof(bin));
	assert_memory_equal(out, bin, sizeof(bin));
	assert_int_equal(pq_hex_decode("", out, sizeof(out), &n), PQ_OK);
	assert_int_equal(n, 0);
	/* exactly the capacity is fine, one more byte is not */
	assert_int_equal(pq_hex_decode("00017f80abff", out, 6, &n), PQ_OK);
	assert_int_equal(n, 6);
	assert_int_not_equal(pq_hex_decode("00017f80abff", out, 5, &n), PQ_OK);

	assert_int_equal(pq_hex_decode("abc", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("0", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("zz", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("0g", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("g0", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("00 1", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("0x00", out, sizeof(out), &n), PQ_ERR_FORMAT);
	assert_int_equal(pq_hex_decode("abcd-f", out, sizeof(out), &n), PQ_ERR_FORMAT);

	/* round trip of every byte value */
	uint8_t all[256], back[256];
	char allhex[513];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	pq_hex_encode(all, sizeof(all), allhex);
	assert_int_equal(strlen(allhex), 512);
	assert_int_equal(pq_hex_decode(allhex, back, sizeof(back), &n), PQ_OK);
	assert_int_equal(n, 256);
	assert_memory_equal(back, all, sizeof(all));
}

static void test_memeq_ct(void **state)
{
	(void)state;
	uint8_t a[64], b[64];
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (uint8_t)(i * 3);
	assert_int_equal(pq_memeq_ct(a, b, sizeof(a)), 0);
	assert_int_equal(pq_memeq_ct(a, b, 0), 0);
	static const size_t pos[] = {0, 1, 31, 62, 63};
	for (size_t i = 0; i < ARRAY_LEN(pos); i++) {
		b[pos[i]] ^= 0x80;
		assert_int_not_equal(pq_memeq_ct(a, b, sizeof(a)), 0);
		/* a difference beyond len is not seen */
		if (pos[i] > 0)
			assert_int_equal(pq_memeq_ct(a, b, pos[i]), 0);
		b[pos[i]] ^= 0x80;
	}
	assert_int_equal(pq_memeq_ct(a, b, sizeof(a)), 0);
}

/* ---- key.h ------------------------------------------------------------------------- */

static void test_alg_names(void **state)
{
	(void)state;
	for (int a = 1; a < PQ_ALG_COUNT; a++) {
		pq_alg got = PQ_ALG_NONE;
		assert_int_equal(pq_alg_from_name(pq_alg_name((pq_alg)a), &got), PQ_OK);
		assert_int_equal(got, a);
		assert_true(pq_alg_is_sig((pq_alg)a) != pq_alg_is_kem((pq_alg)a));
	}
	pq_alg got = PQ_ALG_NONE;
	assert_int_equal(pq_alg_from_name("ML-DSA-65", &got), PQ_OK);
	assert_int_equal(got, PQ_ALG_MLDSA65);
	assert_int_not_equal(pq_alg_from_name("rsa", &got), PQ_OK);
	for (size_t i = 0; i < ARRAY_LEN(sig_algs); i++)
		assert_true(pq_alg_is_sig(sig_algs[i]));
	for (size_t i = 0; i < ARRAY_LEN(kem_algs); i++)
		assert_true(pq_alg_is_kem(kem_algs[i]));
	assert_false(pq_alg_is_pq(PQ_ALG_ED25519));
	assert_false(pq_alg_is_pq(PQ_ALG_ECDSA_P256));
	assert_false(pq_alg_is_pq(PQ_ALG_X25519));
	assert_true(pq_alg_is_pq(PQ_ALG_MLDSA44));
	assert_true(pq_alg_is_pq(PQ_ALG_MLKEM1024));
	assert_false(pq_alg_is_sig(PQ_ALG_NONE));
	assert_false(pq_alg_is_kem(PQ_ALG_NONE));
	pq_key *k = NULL;
	assert_int_not_equal(pq_key_generate(PQ_ALG_NONE, &k), PQ_OK);
	assert_null(k);
}

static void test_key_id(void **state)
{
	(void)state;
	uint8_t first[PQ_ALG_COUNT][32];
	for (int a = 1; a < PQ_ALG_COUNT; a++) {
		pq_key *k1 = gen((pq_alg)a), *k2 = gen((pq_alg)a), *p1 = pub_copy(k1);
		uint8_t i1[32], i1b[32], i2[32], ip[32];
		assert_int_equal(pq_key_id(k1, i1), PQ_OK);
		assert_int_equal(pq_key_id(k1, i1b), PQ_OK);
		assert_int_equal(pq_key_id(k2, i2), PQ_OK);
		assert_int_equal(pq_key_id(p1, ip), PQ_OK);
		assert_memory_equal(i1, i1b, 32);
		assert_memory_equal(i1, ip, 32); /* the id is of the public half */
		assert_memory_not_equal(i1, i2, 32);
		memcpy(first[a], i1, 32);
		for (int b = 1; b < a; b++)
			assert_memory_not_equal(first[b], i1, 32);
		pq_key_free(k1);
		pq_key_free(k2);
		pq_key_free(p1);
	}
	pq_key_free(NULL);
}

static void test_key_raw_and_seed(void **state)
{
	(void)state;
	static const uint8_t msg[] = "raw key round trip";
	for (int a = 1; a < PQ_ALG_COUNT; a++) {
		pq_key *k = gen((pq_alg)a), *p = NULL;
		uint8_t *raw = NULL;
		size_t len = 0, len2;
		assert_int_equal(pq_key_public_raw(k, NULL, &len), PQ_OK);
		assert_true(len > 0);
		raw = malloc(len);
		assert_non_null(raw);
		len2 = len;
		assert_int_equal(pq_key_public_raw(k, raw, &len2), PQ_OK);
		assert_int_equal(len2, len);
		if (a == PQ_ALG_ECDSA_P256) {
			assert_int_equal(len, 65);
			assert_int_equal(raw[0], 0x04);
		}
		if (a == PQ_ALG_ED25519 || a == PQ_ALG_X25519)
			assert_int_equal(len, 32);
		assert_int_equal(pq_key_from_public((pq_alg)a, raw, len, &p), PQ_OK);
		assert_false(pq_key_has_private(p));
		uint8_t id1[32], id2[32];
		assert_int_equal(pq_key_id(k, id1), PQ_OK);
		assert_int_equal(pq_key_id(p, id2), PQ_OK);
		assert_memory_equal(id1, id2, 32);
		if (pq_alg_is_sig((pq_alg)a)) {
			uint8_t sig[PQ_SIG_MAX];
			size_t sl = sign_ok(k, NULL, msg, sizeof(msg), sig);
			assert_int_equal(pq_verify(p, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
		}
		pq_key_free(p);
		p = NULL;
		/* a truncated encoding is refused */
		assert_int_not_equal(pq_key_from_public((pq_alg)a, raw, len - 1, &p), PQ_OK);
		assert_null(p);
		free(raw);
		pq_key_free(k);
	}

	/* seeds: the same seed gives the same key, another seed another key */
	static const pq_alg seeded[] = {PQ_ALG_ED25519,  PQ_ALG_X25519,   PQ_ALG_MLDSA44,
	                                PQ_ALG_MLDSA65,  PQ_ALG_MLDSA87,  PQ_ALG_MLKEM512,
	                                PQ_ALG_MLKEM768, PQ_ALG_MLKEM1024};
	for (size_t i = 0; i < ARRAY_LEN(seeded); i++) {
		pq_alg a = seeded[i];
		size_t sl = is_mlkem(a) ? 64 : 32;
		uint8_t seed[64];
		pq_key *k1 = NULL, *k2 = NULL, *k3 = NULL;
		for (size_t j = 0; j < sizeof(seed); j++)
			seed[j] = (uint8_t)(j + 1);
		assert_int_equal(pq_key_from_seed(a, seed, sl, &k1), PQ_OK);
		assert_int_equal(pq_key_from_seed(a, seed, sl, &k2), PQ_OK);
		seed[1] ^= 1; /* not byte 0: X25519 clamps its low bits */
		assert_int_equal(pq_key_from_seed(a, seed, sl, &k3), PQ_OK);
		assert_true(pq_key_has_private(k1));
		uint8_t i1[32], i2[32], i3[32];
		assert_int_equal(pq_key_id(k1, i1), PQ_OK);
		assert_int_equal(pq_key_id(k2, i2), PQ_OK);
		assert_int_equal(pq_key_id(k3, i3), PQ_OK);
		assert_memory_equal(i1, i2, 32);
		assert_memory_not_equal(i1, i3, 32);
		pq_key_free(k1);
		pq_key_free(k2);
		pq_key_free(k3);
		k1 = NULL;
		assert_int_not_equal(pq_key_from_seed(a, seed, sl - 1, &k1), PQ_OK);
		assert_null(k1);
	}
	uint8_t seed[32] = {0};
	pq_key *k = NULL;
	assert_int_not_equal(pq_key_from_seed(PQ_ALG_ECDSA_P256, seed, 32, &k), PQ_OK);
	assert_null(k);
}

static void test_key_pem_roundtrip(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("keypem");
	static const uint8_t msg[] = "firmware manifest";
	for (int a = 1; a < PQ_ALG_COUNT; a++) {
		char priv[PATH_MAX], pub[PATH_MAX], name[64];
		struct stat st;
		pq_key *k = gen((pq_alg)a), *lk = NULL, *lp = NULL;
		uint8_t id[32], lid[32], pid[32];

		snprintf(name, sizeof(name), "%s.key", pq_alg_name((pq_alg)a));
		tu_join(priv, sizeof(priv), dir, name);
		snprintf(name, sizeof(name), "%s.pub", pq_alg_name((pq_alg)a));
		tu_join(pub, sizeof(pub), dir, name);

		assert_int_equal(pq_key_save_private(k, priv, false), PQ_OK);
		assert_int_equal(pq_key_save_public(k, pub, false), PQ_OK);
		assert_int_equal(stat(priv, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		assert_int_equal(stat(pub, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0644);

		/* no overwrite without asking, and the file is left alone */
		size_t before_len = 0, after_len = 0;
		uint8_t *before = read_file(priv, &before_len);
		pq_key *other = gen((pq_alg)a);
		assert_int_equal(pq_key_save_private(other, priv, false), PQ_ERR_EXISTS);
		assert_int_equal(pq_key_save_public(other, pub, false), PQ_ERR_EXISTS);
		uint8_t *after = read_file(priv, &after_len);
		assert_int_equal(before_len, after_len);
		assert_memory_equal(before, after, before_len);
		free(before);
		free(after);
		pq_key_free(other);

		assert_int_equal(pq_key_load(priv, &lk), PQ_OK);
		assert_int_equal(pq_key_load(pub, &lp), PQ_OK);
		assert_int_equal(pq_key_alg(lk), a);
		assert_int_equal(pq_key_alg(lp), a);
		assert_true(pq_key_has_private(lk));
		assert_false(pq_key_has_private(lp));
		assert_int_equal(pq_key_id(k, id), PQ_OK);
		assert_int_equal(pq_key_id(lk, lid), PQ_OK);
		assert_int_equal(pq_key_id(lp, pid), PQ_OK);
		assert_memory_equal(id, lid, 32);
		assert_memory_equal(id, pid, 32);

		if (pq_alg_is_sig((pq_alg)a)) {
			uint8_t sig[PQ_SIG_MAX];
			size_t sl = sign_ok(lk, NULL, msg, sizeof(msg), sig);
			assert_int_equal(pq_verify(k, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
			assert_int_equal(pq_verify(lp, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
			sl = sign_ok(k, NULL, msg, sizeof(msg), sig);
			assert_int_equal(pq_verify(lp, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
			size_t sl2 = PQ_SIG_MAX;
			assert_int_not_equal(pq_sign(lp, NULL, msg, sizeof(msg), sig, &sl2), PQ_OK);
		} else {
			/* KEM: encapsulate to the loaded public key, decapsulate with the original
			 */
			uint8_t ct[PQ_KEM_CT_MAX], ss1[32], ss2[32];
			size_t cl = sizeof(ct);
			assert_int_equal(pq_kem_encap(lp, NULL, 0, ct, &cl, ss1), PQ_OK);
			assert_int_equal(pq_kem_decap(k, ct, cl, ss2), PQ_OK);
			assert_memory_equal(ss1, ss2, 32);
			assert_int_equal(pq_kem_decap(lk, ct, cl, ss2), PQ_OK);
			assert_memory_equal(ss1, ss2, 32);
		}

		/* the public PEM in memory parses to the same key */
		char *pem = NULL;
		pq_key *mp = NULL;
		assert_int_equal(pq_key_public_pem(k, &pem), PQ_OK);
		assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
		assert_int_equal(pq_key_parse_pem(pem, strlen(pem), &mp), PQ_OK);
		assert_int_equal(pq_key_id(mp, pid), PQ_OK);
		assert_memory_equal(id, pid, 32);
		free(pem);
		pq_key_free(mp);

		/* overwrite when asked keeps the private mode */
		assert_int_equal(pq_key_save_private(k, priv, true), PQ_OK);
		assert_int_equal(stat(priv, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		/* a public key has no private PEM */
		assert_int_not_equal(pq_key_save_private(lp, priv, true), PQ_OK);

		pq_key_free(k);
		pq_key_free(lk);
		pq_key_free(lp);
	}

	/* loading garbage or a missing file fails */
	char bad[PATH_MAX];
	pq_key *k = NULL;
	tu_join(bad, sizeof(bad), dir, "garbage.pem");
	const char *garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	tu_write_file(bad, garbage, strlen(garbage));
	assert_int_not_equal(pq_key_load(bad, &k), PQ_OK);
	assert_null(k);
	tu_join(bad, sizeof(bad), dir, "missing.pem");
	assert_int_not_equal(pq_key_load(bad, &k), PQ_OK);
	assert_null(k);
	tu_rmtree(dir);
	free(dir);
}

static void test_key_public_copy(void **state)
{
	(void)state;
	static const uint8_t msg[] = "public copy";
	for (size_t i = 0; i < ARRAY_LEN(sig_algs); i++) {
		pq_key *k = gen(sig_algs[i]), *p = pub_copy(k);
		uint8_t sig[PQ_SIG_MAX], raw[8192];
		size_t sl, rl = sizeof(raw);
		assert_int_equal(pq_key_alg(p), sig_algs[i]);
		assert_false(pq_key_has_private(p));
		assert_int_not_equal(pq_key_private_raw(p, raw, &rl), PQ_OK);
		sl = PQ_SIG_MAX;
		assert_int_not_equal(pq_sign(p, NULL, msg, sizeof(msg), sig, &sl), PQ_OK);
		sl = sign_ok(k, NULL, msg, sizeof(msg), sig);
		assert_int_equal(pq_verify(p, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
		/* a copy of the copy is still public only */
		pq_key *pp = pub_copy(p);
		assert_false(pq_key_has_private(pp));
		assert_int_equal(pq_verify(pp, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
		pq_key_free(pp);
		pq_key_free(p);
		pq_key_free(k);
	}
	for (size_t i = 0; i < ARRAY_LEN(kem_algs); i++) {
		pq_key *k = gen(kem_algs[i]), *p = pub_copy(k);
		uint8_t ct[PQ_KEM_CT_MAX], ss[32];
		memset(ct, 0x11, sizeof(ct));
		assert_false(pq_key_has_private(p));
		assert_int_not_equal(pq_kem_decap(p, ct, pq_kem_ct_len(kem_algs[i]), ss), PQ_OK);
		pq_key_free(p);
		pq_key_free(k);
	}
}

/* ---- sig.h ------------------------------------------------------------------------- */

static void check_sig_alg(pq_alg alg)
{
	uint8_t msg[300], sig[PQ_SIG_MAX + 1], sig2[PQ_SIG_MAX];
	pq_key *k = gen(alg), *k2 = gen(alg), *pub = pub_copy(k);
	size_t sl, sl2;

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i ^ 0x5a);

	sl = sign_ok(k, NULL, msg, sizeof(msg), sig);
	assert_int_equal(pq_verify(k, NULL, msg, sizeof(msg), sig, sl), PQ_OK);
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl), PQ_OK);

	/* tampered message: first byte, last byte, one byte shorter, one byte longer */
	msg[0] ^= 1;
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl), PQ_ERR_VERIFY);
	msg[0] ^= 1;
	msg[sizeof(msg) - 1] ^= 0x80;
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl), PQ_ERR_VERIFY);
	msg[sizeof(msg) - 1] ^= 0x80;
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg) - 1, sig, sl), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(pub, NULL, msg, 0, sig, sl), PQ_ERR_VERIFY);

	/* tampered signature */
	const size_t pos[] = {0, 1, 2, sl / 4, sl / 2, sl - 33, sl - 2, sl - 1};
	static const uint8_t masks[] = {0x01, 0x80, 0x10};
	for (size_t i = 0; i < ARRAY_LEN(pos); i++)
		for (size_t m = 0; m < ARRAY_LEN(masks); m++)
			assert_int_equal(
			    verify_flipped(pub, NULL, msg, sizeof(msg), sig, sl, pos[i], masks[m]),
			    PQ_ERR_VERIFY);
	/* truncated and extended */
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl - 1), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl / 2), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, 0), PQ_ERR_VERIFY);
	sig[sl] = 0;
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl + 1), PQ_ERR_VERIFY);
	sig[sl] = 0xff;
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl + 1), PQ_ERR_VERIFY);
	/* the untouched signature still verifies (the checks above used copies) */
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl), PQ_OK);

	/* wrong key, both ways */
	assert_int_equal(pq_verify(k2, NULL, msg, sizeof(msg), sig, sl), PQ_ERR_VERIFY);
	sl2 = sign_ok(k2, NULL, msg, sizeof(msg), sig2);
	assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig2, sl2), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(k2, NULL, msg, sizeof(msg), sig2, sl2), PQ_OK);

	/* the empty message */
	sl2 = sign_ok(k, NULL, msg, 0, sig2);
	assert_int_equal(pq_verify(pub, NULL, msg, 0, sig2, sl2), PQ_OK);
	assert_int_equal(pq_verify(pub, NULL, msg, 1, sig2, sl2), PQ_ERR_VERIFY);

	/* a buffer that may be too small is refused up front */
	sl2 = pq_sig_max_len(alg) - 1;
	assert_int_not_equal(pq_sign(k, NULL, msg, sizeof(msg), sig2, &sl2), PQ_OK);

	if (is_mldsa(alg)) {
		uint8_t ctx[256];
		pq_sig_opts oa = {0}, ob = {0}, o255 = {0}, o256 = {0};
		for (size_t i = 0; i < sizeof(ctx); i++)
			ctx[i] = (uint8_t)i;
		oa.context = (const uint8_t *)"context-a";
		oa.context_len = 9;
		ob.context = (const uint8_t *)"context-b";
		ob.context_len = 9;
		o255.context = ctx;
		o255.context_len = 255;
		o256.context = ctx;
		o256.context_len = 256;

		sl = sign_ok(k, &oa, msg, sizeof(msg), sig);
		assert_int_equal(pq_verify(pub, &oa, msg, sizeof(msg), sig, sl), PQ_OK);
		assert_int_equal(pq_verify(pub, &ob, msg, sizeof(msg), sig, sl), PQ_ERR_VERIFY);
		assert_int_equal(pq_verify(pub, NULL, msg, sizeof(msg), sig, sl), PQ_ERR_VERIFY);
		pq_sig_opts shorter = oa;
		shorter.context_len = 8;
		assert_int_equal(pq_verify(pub, &shorter, msg, sizeof(msg), sig, sl),
		                 PQ_ERR_VERIFY);
		/* and a context-free signature does not verify under a context */
		sl2 = sign_ok(k, NULL, msg, sizeof(msg), sig2);
		assert_int_equal(pq_verify(pub, &oa, msg, sizeof(msg), sig2, sl2), PQ_ERR_VERIFY);

		sl = sign_ok(k, &o255, msg, sizeof(msg), sig);
		assert_int_equal(pq_verify(pub, &o255, msg, sizeof(msg), sig, sl), PQ_OK);
		sl2 = PQ_SIG_MAX;
		assert_int_not_equal(pq_sign(k, &o256, msg, sizeof(msg), sig2, &sl2), PQ_OK);
		assert_int_not_equal(pq_verify(pub, &o256, msg, sizeof(msg), sig, sl), PQ_OK);
	} else {
		/* classical algorithms take no ML-DSA options */
		pq_sig_opts o = {0};
		o.context = (const uint8_t *)"x";
		o.context_len = 1;
		sl2 = PQ_SIG_MAX;
		assert_int_not_equal(pq_sign(k, &o, msg, sizeof(msg), sig2, &sl2), PQ_OK);
		assert_int_not_equal(pq_verify(pub, &o, msg, sizeof(msg), sig, sl), PQ_OK);
		pq_sig_opts zero = {0};
		sl2 = sign_ok(k, &zero, msg, sizeof(msg), sig2);
		assert_int_equal(pq_verify(pub, &zero, msg, sizeof(msg), sig2, sl2), PQ_OK);
	}

	pq_key_free(pub);
	pq_key_free(k2);
	pq_key_free(k);
}

static void test_sig_ed25519(void **state)
{
	(void)state;
	check_sig_alg(PQ_ALG_ED25519);
}

static void test_sig_ecdsa_p256(void **state)
{
	(void)state;
	check_sig_alg(PQ_ALG_ECDSA_P256);
}

static void test_sig_mldsa44(void **state)
{
	(void)state;
	check_sig_alg(PQ_ALG_MLDSA44);
}

static void test_sig_mldsa65(void **state)
{
	(void)state;
	check_sig_alg(PQ_ALG_MLDSA65);
}

static void test_sig_mldsa87(void **state)
{
	(void)state;
	check_sig_alg(PQ_ALG_MLDSA87);
}

static void test_sig_non_sig_key(void **state)
{
	(void)state;
	pq_key *k = gen(PQ_ALG_MLKEM768);
	uint8_t sig[PQ_SIG_MAX];
	size_t sl = sizeof(sig);
	assert_int_equal(pq_sig_max_len(PQ_ALG_MLKEM768), 0);
	assert_int_not_equal(pq_sign(k, NULL, (const uint8_t *)"m", 1, sig, &sl), PQ_OK);
	memset(sig, 0, sizeof(sig));
	assert_int_not_equal(pq_verify(k, NULL, (const uint8_t *)"m", 1, sig, 64), PQ_OK);
	pq_key_free(k);
	assert_int_equal(pq_sig_max_len(PQ_ALG_ED25519), 64);
	assert_int_equal(pq_sig_max_len(PQ_ALG_MLDSA44), 2420);
	assert_int_equal(pq_sig_max_len(PQ_ALG_MLDSA65), 3309);
	assert_int_equal(pq_sig_max_len(PQ_ALG_MLDSA87), PQ_SIG_MAX);
}

static void test_mldsa_deterministic_hedged(void **state)
{
	(void)state;
	static const uint8_t msg[] = "deterministic or hedged";
	for (pq_alg a = PQ_ALG_MLDSA44; a <= PQ_ALG_MLDSA87; a++) {
		pq_key *k = gen(a);
		uint8_t s1[PQ_SIG_MAX], s2[PQ_SIG_MAX], s3[PQ_SIG_MAX];
		size_t l1, l2, l3;
		pq_sig_opts det = {0}, detctx = {0};
		det.deterministic = true;
		detctx.deterministic = true;
		detctx.context = (const uint8_t *)"c";
		detctx.context_len = 1;

		l1 = sign_ok(k, &det, msg, sizeof(msg), s1);
		l2 = sign_ok(k, &det, msg, sizeof(msg), s2);
		assert_int_equal(l1, l2);
		assert_memory_equal(s1, s2, l1);
		assert_int_equal(pq_verify(k, NULL, msg, sizeof(msg), s1, l1), PQ_OK);
		/* deterministic over a context differs, and verifies only with it */
		l3 = sign_ok(k, &detctx, msg, sizeof(msg), s3);
		assert_memory_not_equal(s1, s3, l1);
		assert_int_equal(pq_verify(k, &detctx, msg, sizeof(msg), s3, l3), PQ_OK);

		/* hedged (the default) differs each time, and from the deterministic one */
		l2 = sign_ok(k, NULL, msg, sizeof(msg), s2);
		l3 = sign_ok(k, NULL, msg, sizeof(msg), s3);
		assert_memory_not_equal(s2, s3, l2);
		assert_memory_not_equal(s1, s2, l1);
		assert_int_equal(pq_verify(k, NULL, msg, sizeof(msg), s2, l2), PQ_OK);
		assert_int_equal(pq_verify(k, NULL, msg, sizeof(msg), s3, l3), PQ_OK);

		/* a fixed test_rnd makes hedged signing repeatable */
		uint8_t rnd[32];
		memset(rnd, 0x42, sizeof(rnd));
		pq_sig_opts fixed = {0};
		fixed.test_rnd = rnd;
		l2 = sign_ok(k, &fixed, msg, sizeof(msg), s2);
		l3 = sign_ok(k, &fixed, msg, sizeof(msg), s3);
		assert_memory_equal(s2, s3, l2);
		assert_memory_not_equal(s1, s2, l1);
		pq_key_free(k);
	}
}

/* ---- hybrid signatures ------------------------------------------------------------- */

static int hyb_verify_flipped(const pq_hybrid_key *hk, const uint8_t *ctx, size_t ctx_len,
                              const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                              size_t sig_len, size_t pos)
{
	uint8_t *c = malloc(sig_len);
	assert_non_null(c);
	memcpy(c, sig, sig_len);
	c[pos] ^= 0x01;
	int rc = pq_hybrid_verify(hk, ctx, ctx_len, msg, msg_len, c, sig_len);
	free(c);
	return rc;
}

static void check_hybrid(pq_alg cl, pq_alg pq)
{
	static const uint8_t msg[] = "uptane targets metadata v42";
	static const uint8_t ctx[] = "targets";
	const size_t ml = sizeof(msg), cxl = sizeof(ctx) - 1;
	pq_key *kc = gen(cl), *kq = gen(pq), *kc2 = gen(cl), *kq2 = gen(pq);
	pq_key *pc = pub_copy(kc), *pp = pub_copy(kq);
	pq_hybrid_key hk = {kc, kq}, hpub = {pc, pp};
	uint8_t sig[PQ_HYBRID_SIG_MAX + 1];
	size_t sl = PQ_HYBRID_SIG_MAX;

	assert_int_equal(pq_hybrid_sign(&hk, ctx, cxl, msg, ml, sig, &sl), PQ_OK);
	assert_int_equal(pq_hybrid_verify(&hk, ctx, cxl, msg, ml, sig, sl), PQ_OK);
	assert_int_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, sl), PQ_OK);

	/* the documented layout: version, algorithms, reserved, two big-endian lengths */
	assert_int_equal(sig[0], 1);
	assert_int_equal(sig[1], cl);
	assert_int_equal(sig[2], pq);
	assert_int_equal(sig[3], 0);
	size_t l1 = (size_t)sig[4] << 8 | sig[5], l2 = (size_t)sig[6] << 8 | sig[7];
	assert_int_equal(8 + l1 + l2, sl);
	assert_true(l1 > 0 && l1 <= pq_sig_max_len(cl));
	assert_int_equal(l2, pq_sig_max_len(pq));

	/* each half on its own: a bit flip in one half only */
	const size_t cpos[] = {8, 9, 8 + l1 / 2, 8 + l1 - 1};
	for (size_t i = 0; i < ARRAY_LEN(cpos); i++)
		assert_int_equal(hyb_verify_flipped(&hpub, ctx, cxl, msg, ml, sig, sl, cpos[i]),
		                 PQ_ERR_VERIFY);
	const size_t qpos[] = {8 + l1, 8 + l1 + 1, 8 + l1 + l2 / 2, sl - 1};
	for (size_t i = 0; i < ARRAY_LEN(qpos); i++)
		assert_int_equal(hyb_verify_flipped(&hpub, ctx, cxl, msg, ml, sig, sl, qpos[i]),
		                 PQ_ERR_VERIFY);
	/* every header byte */
	for (size_t i = 0; i < 8; i++)
		assert_int_not_equal(hyb_verify_flipped(&hpub, ctx, cxl, msg, ml, sig, sl, i),
		                     PQ_OK);

	/* context and message */
	assert_int_equal(pq_hybrid_verify(&hpub, (const uint8_t *)"targetS", cxl, msg, ml, sig, sl),
	                 PQ_ERR_VERIFY);
	assert_int_equal(pq_hybrid_verify(&hpub, ctx, cxl - 1, msg, ml, sig, sl), PQ_ERR_VERIFY);
	assert_int_equal(pq_hybrid_verify(&hpub, NULL, 0, msg, ml, sig, sl), PQ_ERR_VERIFY);
	assert_int_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml - 1, sig, sl), PQ_ERR_VERIFY);

	/* either half of the key swapped for another key of the same algorithm */
	pq_hybrid_key swap_c = {kc2, pp}, swap_q = {pc, kq2};
	assert_int_equal(pq_hybrid_verify(&swap_c, ctx, cxl, msg, ml, sig, sl), PQ_ERR_VERIFY);
	assert_int_equal(pq_hybrid_verify(&swap_q, ctx, cxl, msg, ml, sig, sl), PQ_ERR_VERIFY);
	/* ... or for a key of the other classical algorithm, or another ML-DSA level */
	pq_key *kx = gen(cl == PQ_ALG_ED25519 ? PQ_ALG_ECDSA_P256 : PQ_ALG_ED25519);
	pq_key *ky = gen(pq == PQ_ALG_MLDSA65 ? PQ_ALG_MLDSA44 : PQ_ALG_MLDSA65);
	pq_hybrid_key other_c = {kx, pp}, other_q = {pc, ky};
	assert_int_not_equal(pq_hybrid_verify(&other_c, ctx, cxl, msg, ml, sig, sl), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&other_q, ctx, cxl, msg, ml, sig, sl), PQ_OK);
	/* halves in the wrong slots are not a hybrid key */
	pq_hybrid_key backwards = {pp, pc};
	assert_int_not_equal(pq_hybrid_verify(&backwards, ctx, cxl, msg, ml, sig, sl), PQ_OK);

	/* truncation and extension */
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, sl - 1), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, 8 + l1), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, 8), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, 7), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, 0), PQ_OK);
	sig[sl] = 0;
	assert_int_not_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, sig, sl + 1), PQ_OK);

	/* domain separation: neither half is a plain signature over the message */
	pq_sig_opts appctx = {0};
	appctx.context = ctx;
	appctx.context_len = cxl;
	assert_int_equal(pq_verify(pp, NULL, msg, ml, sig + 8 + l1, l2), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(pp, &appctx, msg, ml, sig + 8 + l1, l2), PQ_ERR_VERIFY);
	assert_int_equal(pq_verify(pc, NULL, msg, ml, sig + 8, l1), PQ_ERR_VERIFY);
	/* ... and a plain ML-DSA signature cannot be spliced in as the ML-DSA half */
	uint8_t plain[PQ_SIG_MAX];
	size_t pl = sign_ok(kq, NULL, msg, ml, plain);
	assert_int_equal(pl, l2);
	uint8_t *spliced = malloc(sl);
	assert_non_null(spliced);
	memcpy(spliced, sig, 8 + l1);
	memcpy(spliced + 8 + l1, plain, pl);
	assert_int_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, ml, spliced, sl), PQ_ERR_VERIFY);
	free(spliced);

	/* an empty context and an empty message work */
	sl = PQ_HYBRID_SIG_MAX;
	assert_int_equal(pq_hybrid_sign(&hk, NULL, 0, msg, 0, sig, &sl), PQ_OK);
	assert_int_equal(pq_hybrid_verify(&hpub, NULL, 0, msg, 0, sig, sl), PQ_OK);
	assert_int_equal(pq_hybrid_verify(&hpub, ctx, cxl, msg, 0, sig, sl), PQ_ERR_VERIFY);

	/* contexts: 200 bytes is the limit */
	uint8_t big[201];
	memset(big, 'c', sizeof(big));
	sl = PQ_HYBRID_SIG_MAX;
	assert_int_equal(pq_hybrid_sign(&hk, big, 200, msg, ml, sig, &sl), PQ_OK);
	assert_int_equal(pq_hybrid_verify(&hpub, big, 200, msg, ml, sig, sl), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&hpub, big, 201, msg, ml, sig, sl), PQ_OK);
	size_t sl2 = PQ_HYBRID_SIG_MAX;
	assert_int_not_equal(pq_hybrid_sign(&hk, big, 201, msg, ml, sig, &sl2), PQ_OK);

	/* a public-only hybrid key cannot sign */
	sl2 = PQ_HYBRID_SIG_MAX;
	assert_int_not_equal(pq_hybrid_sign(&hpub, ctx, cxl, msg, ml, sig, &sl2), PQ_OK);

	pq_key_free(kx);
	pq_key_free(ky);
	pq_key_free(pc);
	pq_key_free(pp);
	pq_key_free(kc);
	pq_key_free(kq);
	pq_key_free(kc2);
	pq_key_free(kq2);
}

static void test_hybrid_ed25519_mldsa65(void **state)
{
	(void)state;
	check_hybrid(PQ_ALG_ED25519, PQ_ALG_MLDSA65);
}

static void test_hybrid_ecdsa_mldsa65(void **state)
{
	(void)state;
	check_hybrid(PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA65);
}

static void test_hybrid_other_levels(void **state)
{
	(void)state;
	check_hybrid(PQ_ALG_ED25519, PQ_ALG_MLDSA44);
	check_hybrid(PQ_ALG_ECDSA_P256, PQ_ALG_MLDSA87);
}

static void test_hybrid_bad_keys(void **state)
{
	(void)state;
	pq_key *ed = gen(PQ_ALG_ED25519), *ml = gen(PQ_ALG_MLDSA65);
	uint8_t sig[PQ_HYBRID_SIG_MAX];
	size_t sl = sizeof(sig);
	const uint8_t *m = (const uint8_t *)"m";
	pq_hybrid_key two_classical = {ed, ed}, two_pq = {ml, ml}, missing = {ed, NULL};
	assert_int_not_equal(pq_hybrid_sign(&two_classical, NULL, 0, m, 1, sig, &sl), PQ_OK);
	sl = sizeof(sig);
	assert_int_not_equal(pq_hybrid_sign(&two_pq, NULL, 0, m, 1, sig, &sl), PQ_OK);
	sl = sizeof(sig);
	assert_int_not_equal(pq_hybrid_sign(&missing, NULL, 0, m, 1, sig, &sl), PQ_OK);
	pq_hybrid_key ok = {ed, ml};
	sl = 100; /* too small */
	assert_int_not_equal(pq_hybrid_sign(&ok, NULL, 0, m, 1, sig, &sl), PQ_OK);
	sl = sizeof(sig);
	assert_int_equal(pq_hybrid_sign(&ok, NULL, 0, m, 1, sig, &sl), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&two_pq, NULL, 0, m, 1, sig, sl), PQ_OK);
	assert_int_not_equal(pq_hybrid_verify(&missing, NULL, 0, m, 1, sig, sl), PQ_OK);
	pq_key_free(ed);
	pq_key_free(ml);
}

/* ---- kem.h ------------------------------------------------------------------------- */

static void check_kem(pq_alg alg)
{
	pq_key *k = gen(alg), *k2 = gen(alg), *pub = pub_copy(k);
	const size_t ctl = pq_kem_ct_len(alg);
	uint8_t ct[PQ_KEM_CT_MAX + 1], ct2[PQ_KEM_CT_MAX], ss_e[32], ss_d[32], ss2[32];
	size_t cl = sizeof(ct) - 1, cl2 = sizeof(ct2);

	assert_true(ctl > 0 && ctl <= PQ_KEM_CT_MAX);
	assert_int_equal(pq_kem_encap(pub, NULL, 0, ct, &cl, ss_e), PQ_OK);
	assert_int_equal(cl, ctl);
	assert_int_equal(pq_kem_decap(k, ct, cl, ss_d), PQ_OK);
	assert_memory_equal(ss_e, ss_d, 32);

	/* fresh randomness each time */
	assert_int_equal(pq_kem_encap(pub, NULL, 0, ct2, &cl2, ss2), PQ_OK);
	assert_memory_not_equal(ct, ct2, ctl);
	assert_memory_not_equal(ss_e, ss2, 32);

	/* wrong-size ciphertexts */
	assert_int_equal(pq_kem_decap(k, ct, cl - 1, ss2), PQ_ERR_FORMAT);
	ct[cl] = 0;
	assert_int_equal(pq_kem_decap(k, ct, cl + 1, ss2), PQ_ERR_FORMAT);
	assert_int_equal(pq_kem_decap(k, ct, 0, ss2), PQ_ERR_FORMAT);

	/* the wrong private key gets another secret */
	int rc = pq_kem_decap(k2, ct, cl, ss2);
	if (is_mlkem(alg))
		assert_int_equal(rc, PQ_OK);
	if (rc == PQ_OK)
		assert_memory_not_equal(ss2, ss_e, 32);

	/* a modified ciphertext: ML-KEM answers with the implicit-rejection key */
	const size_t pos[] = {0, ctl / 2, ctl - 1};
	for (size_t i = 0; i < ARRAY_LEN(pos); i++) {
		uint8_t r1[32], r2[32];
		ct[pos[i]] ^= 0x04;
		rc = pq_kem_decap(k, ct, cl, r1);
		if (is_mlkem(alg)) {
			assert_int_equal(rc, PQ_OK);
			assert_memory_not_equal(r1, ss_e, 32);
			/* deterministic: the same modified ciphertext, the same key */
			assert_int_equal(pq_kem_decap(k, ct, cl, r2), PQ_OK);
			assert_memory_equal(r1, r2, 32);
		} else if (rc == PQ_OK) {
			assert_memory_not_equal(r1, ss_e, 32);
		}
		ct[pos[i]] ^= 0x04;
	}
	assert_int_equal(pq_kem_decap(k, ct, cl, ss_d), PQ_OK);
	assert_memory_equal(ss_e, ss_d, 32);

	/* fixed encapsulation randomness is repeatable */
	uint8_t ikm[32];
	memset(ikm, 0x33, sizeof(ikm));
	cl = sizeof(ct) - 1;
	cl2 = sizeof(ct2);
	assert_int_equal(pq_kem_encap(pub, ikm, 32, ct, &cl, ss_e), PQ_OK);
	assert_int_equal(pq_kem_encap(pub, ikm, 32, ct2, &cl2, ss2), PQ_OK);
	assert_int_equal(cl, cl2);
	assert_memory_equal(ct, ct2, cl);
	assert_memory_equal(ss_e, ss2, 32);
	assert_int_equal(pq_kem_decap(k, ct, cl, ss_d), PQ_OK);
	assert_memory_equal(ss_e, ss_d, 32);
	cl = sizeof(ct) - 1;
	assert_int_not_equal(pq_kem_encap(pub, ikm, 31, ct, &cl, ss_e), PQ_OK);

	/* too small a ciphertext buffer */
	cl = ctl - 1;
	assert_int_not_equal(pq_kem_encap(pub, NULL, 0, ct, &cl, ss_e), PQ_OK);

	pq_key_free(pub);
	pq_key_free(k2);
	pq_key_free(k);
}

static void test_kem_mlkem512(void **state)
{
	(void)state;
	check_kem(PQ_ALG_MLKEM512);
}

static void test_kem_mlkem768(void **state)
{
	(void)state;
	check_kem(PQ_ALG_MLKEM768);
}

static void test_kem_mlkem1024(void **state)
{
	(void)state;
	check_kem(PQ_ALG_MLKEM1024);
}

static void test_kem_x25519(void **state)
{
	(void)state;
	check_kem(PQ_ALG_X25519);
	assert_int_equal(pq_kem_ct_len(PQ_ALG_MLKEM512), 768);
	assert_int_equal(pq_kem_ct_len(PQ_ALG_MLKEM768), 1088);
	assert_int_equal(pq_kem_ct_len(PQ_ALG_MLKEM1024), 1568);
	assert_int_equal(pq_kem_ct_len(PQ_ALG_X25519), 32);
	assert_int_equal(pq_kem_ct_len(PQ_ALG_ED25519), 0);
	/* a signature key is not a KEM key */
	pq_key *ed = gen(PQ_ALG_ED25519);
	uint8_t ct[PQ_KEM_CT_MAX], ss[32];
	size_t cl = sizeof(ct);
	memset(ct, 0x11, sizeof(ct));
	assert_int_not_equal(pq_kem_encap(ed, NULL, 0, ct, &cl, ss), PQ_OK);
	assert_int_not_equal(pq_kem_decap(ed, ct, 32, ss), PQ_OK);
	pq_key_free(ed);
}

/* ---- hybrid key wrap --------------------------------------------------------------- */

typedef struct {
	pq_key *x, *k, *xp, *kp;
	pq_wrap_recipient priv, pub;
} wrap_fixture;

static void wrap_setup(wrap_fixture *f)
{
	f->x = gen(PQ_ALG_X25519);
	f->k = gen(PQ_ALG_MLKEM768);
	f->xp = pub_copy(f->x);
	f->kp = pub_copy(f->k);
	f->priv.x25519 = f->x;
	f->priv.mlkem = f->k;
	f->pub.x25519 = f->xp;
	f->pub.mlkem = f->kp;
}

static void wrap_teardown(wrap_fixture *f)
{
	pq_key_free(f->x);
	pq_key_free(f->k);
	pq_key_free(f->xp);
	pq_key_free(f->kp);
}

static int unwrap_flipped(const pq_wrap_recipient *me, const uint8_t *aad, size_t aad_len,
                          const uint8_t *blob, size_t len, size_t pos)
{
	uint8_t c[PQ_WRAP_MAX + 1], key[PQ_WRAP_KEY_MAX];
	size_t kl = sizeof(key);
	memcpy(c, blob, len);
	c[pos] ^= 0x01;
	memset(key, 0, sizeof(key));
	int rc = pq_unwrap(me, aad, aad_len, c, len, key, &kl);
	return rc;
}

static void test_wrap_roundtrip(void **state)
{
	(void)state;
	wrap_fixture f;
	static const uint8_t aad[] = "WVWZZZ1JZXW000001|image-7";
	uint8_t key[PQ_WRAP_KEY_MAX + 1], got[PQ_WRAP_KEY_MAX], blob[PQ_WRAP_MAX],
	    blob2[PQ_WRAP_MAX];
	size_t bl, bl2, gl;

	wrap_setup(&f);
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);

	/* 32 bytes with aad */
	bl = sizeof(blob);
	assert_int_equal(pq_wrap(&f.pub, aad, sizeof(aad), key, 32, blob, &bl), PQ_OK);
	assert_int_equal(bl, PQ_WRAP_OVERHEAD + 32);
	assert_memory_equal(blob, "PQW1", 4);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, aad, sizeof(aad), blob, bl, got, &gl), PQ_OK);
	assert_int_equal(gl, 32);
	assert_memory_equal(got, key, 32);
	/* the key is not in the blob in the clear */
	for (size_t i = 0; i + 32 <= bl; i++)
		assert_memory_not_equal(blob + i, key, 32);

	/* without aad */
	bl2 = sizeof(blob2);
	assert_int_equal(pq_wrap(&f.pub, NULL, 0, key, 32, blob2, &bl2), PQ_OK);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, NULL, 0, blob2, bl2, got, &gl), PQ_OK);
	assert_int_equal(gl, 32);
	assert_memory_equal(got, key, 32);
	/* aad present vs absent do not mix */
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, aad, sizeof(aad), blob2, bl2, got, &gl), PQ_ERR_VERIFY);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, NULL, 0, blob, bl, got, &gl), PQ_ERR_VERIFY);

	/* wrapping twice gives different blobs */
	bl2 = sizeof(blob2);
	assert_int_equal(pq_wrap(&f.pub, aad, sizeof(aad), key, 32, blob2, &bl2), PQ_OK);
	assert_int_equal(bl, bl2);
	assert_memory_not_equal(blob, blob2, bl);

	/* 1 and 64 bytes are the limits */
	static const size_t lens[] = {1, 16, 64};
	for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
		bl = sizeof(blob);
		assert_int_equal(pq_wrap(&f.pub, aad, 5, key, lens[i], blob, &bl), PQ_OK);
		assert_int_equal(bl, PQ_WRAP_OVERHEAD + lens[i]);
		gl = sizeof(got);
		assert_int_equal(pq_unwrap(&f.priv, aad, 5, blob, bl, got, &gl), PQ_OK);
		assert_int_equal(gl, lens[i]);
		assert_memory_equal(got, key, lens[i]);
		/* too small an output buffer */
		gl = lens[i] - 1;
		assert_int_not_equal(pq_unwrap(&f.priv, aad, 5, blob, bl, got, &gl), PQ_OK);
	}
	bl = sizeof(blob);
	assert_int_not_equal(pq_wrap(&f.pub, NULL, 0, key, 0, blob, &bl), PQ_OK);
	bl = sizeof(blob);
	assert_int_not_equal(pq_wrap(&f.pub, NULL, 0, key, 65, blob, &bl), PQ_OK);
	bl = PQ_WRAP_OVERHEAD + 31;
	assert_int_not_equal(pq_wrap(&f.pub, NULL, 0, key, 32, blob, &bl), PQ_OK);

	/* unwrapping needs the private keys; the recipient needs the right algorithms */
	bl = sizeof(blob);
	assert_int_equal(pq_wrap(&f.pub, NULL, 0, key, 32, blob, &bl), PQ_OK);
	gl = sizeof(got);
	assert_int_not_equal(pq_unwrap(&f.pub, NULL, 0, blob, bl, got, &gl), PQ_OK);
	pq_key *k512 = gen(PQ_ALG_MLKEM512);
	pq_wrap_recipient wrong = {f.x, k512}, swapped = {f.k, f.x};
	bl2 = sizeof(blob2);
	assert_int_not_equal(pq_wrap(&wrong, NULL, 0, key, 32, blob2, &bl2), PQ_OK);
	bl2 = sizeof(blob2);
	assert_int_not_equal(pq_wrap(&swapped, NULL, 0, key, 32, blob2, &bl2), PQ_OK);
	gl = sizeof(got);
	assert_int_not_equal(pq_unwrap(&wrong, NULL, 0, blob, bl, got, &gl), PQ_OK);
	pq_key_free(k512);

	wrap_teardown(&f);
}

static void test_wrap_tamper(void **state)
{
	(void)state;
	wrap_fixture f, g;
	static const uint8_t aad[] = "VIN0001|image-9";
	const size_t al = sizeof(aad) - 1;
	uint8_t key[32], got[PQ_WRAP_KEY_MAX], blob[PQ_WRAP_MAX + 1];
	size_t bl = sizeof(blob), gl;

	wrap_setup(&f);
	wrap_setup(&g);
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);
	assert_int_equal(pq_wrap(&f.pub, aad, al, key, sizeof(key), blob, &bl), PQ_OK);
	assert_int_equal(bl, PQ_WRAP_OVERHEAD + 32);

	/* regions: header 0..7, eph 8..39, ct 40..1127, nonce 1128..1139, sealed 1140..1171,
	 * tag 1172..1187 */
	const size_t eph = 8, ct = 40, nonce = ct + 1088, sealed = nonce + 12, tag = sealed + 32;
	assert_int_equal(tag + 16, bl);
	const size_t edges[] = {eph,         eph + 1,     eph + 16, eph + 31,  ct,         ct + 1,
	                        ct + 500,    ct + 1087,   nonce,    nonce + 6, nonce + 11, sealed,
	                        sealed + 17, sealed + 31, tag,      tag + 8,   tag + 15};
	for (size_t i = 0; i < 8; i++)
		assert_int_not_equal(unwrap_flipped(&f.priv, aad, al, blob, bl, i), PQ_OK);
	for (size_t i = 0; i < ARRAY_LEN(edges); i++)
		assert_int_equal(unwrap_flipped(&f.priv, aad, al, blob, bl, edges[i]),
		                 PQ_ERR_VERIFY);
	/* and a sweep across the whole blob */
	for (size_t i = 0; i < bl; i += 23)
		assert_int_not_equal(unwrap_flipped(&f.priv, aad, al, blob, bl, i), PQ_OK);

	/* wrong aad */
	gl = sizeof(got);
	assert_int_equal(
	    pq_unwrap(&f.priv, (const uint8_t *)"VIN0002|image-9", al, blob, bl, got, &gl),
	    PQ_ERR_VERIFY);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, aad, al - 1, blob, bl, got, &gl), PQ_ERR_VERIFY);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, aad, al + 1, blob, bl, got, &gl), PQ_ERR_VERIFY);

	/* wrong recipient: either key, or both */
	pq_wrap_recipient rx = {g.x, f.k}, rk = {f.x, g.k};
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&rx, aad, al, blob, bl, got, &gl), PQ_ERR_VERIFY);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&rk, aad, al, blob, bl, got, &gl), PQ_ERR_VERIFY);
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&g.priv, aad, al, blob, bl, got, &gl), PQ_ERR_VERIFY);

	/* truncated and extended */
	const size_t cuts[] = {bl - 1, bl - 16, PQ_WRAP_OVERHEAD, 8, 4, 0};
	for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
		gl = sizeof(got);
		assert_int_not_equal(pq_unwrap(&f.priv, aad, al, blob, cuts[i], got, &gl), PQ_OK);
	}
	blob[bl] = 0;
	gl = sizeof(got);
	assert_int_not_equal(pq_unwrap(&f.priv, aad, al, blob, bl + 1, got, &gl), PQ_OK);
	/* a consistent but shorter length field does not open either */
	uint8_t shorter[PQ_WRAP_MAX];
	memcpy(shorter, blob, bl - 1);
	shorter[7] = 31;
	gl = sizeof(got);
	assert_int_not_equal(pq_unwrap(&f.priv, aad, al, shorter, bl - 1, got, &gl), PQ_OK);

	/* the untouched blob still opens */
	gl = sizeof(got);
	assert_int_equal(pq_unwrap(&f.priv, aad, al, blob, bl, got, &gl), PQ_OK);
	assert_int_equal(gl, 32);
	assert_memory_equal(got, key, 32);

	wrap_teardown(&f);
	wrap_teardown(&g);
}

/* ---- aead.h ------------------------------------------------------------------------ */

#define CHUNK 4096

static void test_gcm_oneshot(void **state)
{
	(void)state;
	uint8_t key[32], nonce[12], pt[100], ct[100], back[100], tag[16];
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);
	assert_int_equal(pq_random(nonce, sizeof(nonce)), PQ_OK);
	assert_int_equal(pq_random(pt, sizeof(pt)), PQ_OK);

	assert_int_equal(
	    pq_gcm_seal(key, nonce, (const uint8_t *)"aad", 3, pt, sizeof(pt), ct, tag), PQ_OK);
	assert_memory_not_equal(ct, pt, sizeof(pt));
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, ct, sizeof(ct), tag, back), PQ_OK);
	assert_memory_equal(back, pt, sizeof(pt));

	/* in place */
	memcpy(back, pt, sizeof(pt));
	uint8_t tag2[16];
	assert_int_equal(
	    pq_gcm_seal(key, nonce, (const uint8_t *)"aad", 3, back, sizeof(back), back, tag2),
	    PQ_OK);
	assert_memory_equal(back, ct, sizeof(ct));
	assert_memory_equal(tag2, tag, 16);
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, back, sizeof(back), tag2, back),
	    PQ_OK);
	assert_memory_equal(back, pt, sizeof(pt));

	/* a bad tag, ciphertext, aad or nonce: PQ_ERR_VERIFY and the output wiped */
	uint8_t zero[100] = {0};
	tag[15] ^= 1;
	memset(back, 0xee, sizeof(back));
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, ct, sizeof(ct), tag, back),
	    PQ_ERR_VERIFY);
	assert_memory_equal(back, zero, sizeof(back));
	tag[15] ^= 1;
	ct[50] ^= 1;
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, ct, sizeof(ct), tag, back),
	    PQ_ERR_VERIFY);
	assert_memory_equal(back, zero, sizeof(back));
	ct[50] ^= 1;
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aaD", 3, ct, sizeof(ct), tag, back),
	    PQ_ERR_VERIFY);
	nonce[0] ^= 1;
	assert_int_equal(
	    pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, ct, sizeof(ct), tag, back),
	    PQ_ERR_VERIFY);
	nonce[0] ^= 1;
	/* empty plaintext still authenticates the aad */
	assert_int_equal(pq_gcm_seal(key, nonce, (const uint8_t *)"aad", 3, pt, 0, ct, tag), PQ_OK);
	assert_int_equal(pq_gcm_open(key, nonce, (const uint8_t *)"aad", 3, ct, 0, tag, back),
	                 PQ_OK);
	assert_int_equal(pq_gcm_open(key, nonce, (const uint8_t *)"aab", 3, ct, 0, tag, back),
	                 PQ_ERR_VERIFY);
}

/* A fixture directory with the paths the file tests use. */
typedef struct {
	char *dir;
	char plain[PATH_MAX], enc[PATH_MAX], bad[PATH_MAX], out[PATH_MAX], part[PATH_MAX];
} aead_paths;

static void aead_paths_init(aead_paths *p, const char *tag)
{
	p->dir = tu_tmpdir(tag);
	tu_join(p->plain, sizeof(p->plain), p->dir, "plain.bin");
	tu_join(p->enc, sizeof(p->enc), p->dir, "plain.enc");
	tu_join(p->bad, sizeof(p->bad), p->dir, "bad.enc");
	tu_join(p->out, sizeof(p->out), p->dir, "out.bin");
	tu_join(p->part, sizeof(p->part), p->dir, "out.bin.part");
}

static void aead_paths_free(aead_paths *p)
{
	tu_rmtree(p->dir);
	free(p->dir);
}

static void test_aead_file_sizes(void **state)
{
	(void)state;
	aead_paths p;
	uint8_t key[32];
	const size_t big = 3 * 1024 * 1024 + 777;
	const size_t sizes[] = {0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, big};
	uint8_t *data = random_buf(big);

	aead_paths_init(&p, "aeadsizes");
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);
	for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
		size_t n = sizes[s], el = 0, ol = 0;
		uint64_t chunks = n == 0 ? 1 : (n + CHUNK - 1) / CHUNK;
		tu_write_file(p.plain, data, n);
		assert_int_equal(pq_aead_encrypt_file(key, CHUNK, p.plain, p.enc), PQ_OK);
		uint8_t *enc = read_file(p.enc, &el);
		assert_int_equal(el, PQ_AEAD_HDR_LEN + n + chunks * PQ_AEAD_TAG_LEN);
		assert_memory_equal(enc, "PQAE", 4);
		if (n >= 64)
			assert_memory_not_equal(enc + PQ_AEAD_HDR_LEN, data, 64);
		free(enc);
		assert_int_equal(pq_aead_decrypt_file(key, p.enc, p.out), PQ_OK);
		struct stat st;
		assert_int_equal(stat(p.out, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600); /* decrypted firmware: owner only */
		uint8_t *out = read_file(p.out, &ol);
		assert_int_equal(ol, n);
		if (n)
			assert_memory_equal(out, data, n);
		free(out);
		assert_false(exists(p.part));
		assert_int_equal(unlink(p.out), 0);
	}

	/* the default chunk size */
	tu_write_file(p.plain, data, 200000);
	assert_int_equal(pq_aead_encrypt_file(key, 0, p.plain, p.enc), PQ_OK);
	assert_int_equal(pq_aead_decrypt_file(key, p.enc, p.out), PQ_OK);
	size_t ol = 0;
	uint8_t *out = read_file(p.out, &ol);
	assert_int_equal(ol, 200000);
	assert_memory_equal(out, data, ol);
	free(out);

	/* encrypting twice gives different ciphertexts (fresh salt) */
	size_t l1 = 0, l2 = 0;
	uint8_t *e1 = read_file(p.enc, &l1);
	assert_int_equal(pq_aead_encrypt_file(key, 0, p.plain, p.enc), PQ_OK);
	uint8_t *e2 = read_file(p.enc, &l2);
	assert_int_equal(l1, l2);
	assert_memory_not_equal(e1, e2, 40);
	assert_memory_not_equal(e1 + 40, e2 + 40, 64);
	free(e1);
	free(e2);

	/* chunk sizes out of range are refused, leaving nothing behind */
	char encpart[PATH_MAX + 8];
	snprintf(encpart, sizeof(encpart), "%s.part", p.bad);
	assert_int_not_equal(pq_aead_encrypt_file(key, PQ_AEAD_CHUNK_MIN - 1, p.plain, p.bad),
	                     PQ_OK);
	assert_int_not_equal(pq_aead_encrypt_file(key, PQ_AEAD_CHUNK_MAX + 1, p.plain, p.bad),
	                     PQ_OK);
	assert_false(exists(p.bad));
	assert_false(exists(encpart));
	free(data);
	aead_paths_free(&p);
}

static void test_aead_random_access(void **state)
{
	(void)state;
	uint8_t key[32], hdr[PQ_AEAD_HDR_LEN];
	const size_t n = 5 * CHUNK + 123;
	const uint64_t nchunks = 6;
	uint8_t *data = random_buf(n);
	uint8_t *sealed = malloc(n + nchunks * PQ_AEAD_TAG_LEN);
	uint8_t out[CHUNK];
	pq_aead *s = NULL, *o = NULL;

	assert_non_null(sealed);
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);
	assert_int_equal(pq_aead_seal_init(key, n, CHUNK, hdr, &s), PQ_OK);
	const pq_aead_info *info = pq_aead_get_info(s);
	assert_int_equal(info->chunk_size, CHUNK);
	assert_int_equal(info->plain_len, n);
	assert_int_equal(info->chunks, nchunks);
	assert_int_equal(info->cipher_len, PQ_AEAD_HDR_LEN + n + nchunks * PQ_AEAD_TAG_LEN);
	assert_int_equal(pq_aead_chunk_plain_len(s, 0), CHUNK);
	assert_int_equal(pq_aead_chunk_plain_len(s, 4), CHUNK);
	assert_int_equal(pq_aead_chunk_plain_len(s, 5), 123);
	assert_int_equal(pq_aead_chunk_plain_len(s, 6), 0);

	/* sealing goes in order: skipping ahead is refused */
	uint8_t scratch[CHUNK + PQ_AEAD_TAG_LEN];
	assert_int_equal(pq_aead_seal_chunk(s, 1, data + CHUNK, CHUNK, scratch), PQ_ERR_INVAL);
	for (uint64_t i = 0; i < nchunks; i++) {
		size_t pl = pq_aead_chunk_plain_len(s, i);
		assert_int_equal(pq_aead_seal_chunk(s, i, data + i * CHUNK, pl,
		                                    sealed + i * (CHUNK + PQ_AEAD_TAG_LEN)),
		                 PQ_OK);
		/* sealing the same index again would reuse its nonce: refused */
		assert_int_equal(pq_aead_seal_chunk(s, i, data + i * CHUNK, pl, scratch),
		                 PQ_ERR_INVAL);
	}
	/* wrong sizes or indices are refused */
	assert_int_not_equal(pq_aead_seal_chunk(s, 0, data, CHUNK - 1, scratch), PQ_OK);
	assert_int_not_equal(pq_aead_seal_chunk(s, 5, data, CHUNK, scratch), PQ_OK);
	assert_int_not_equal(pq_aead_seal_chunk(s, 6, data, 0, scratch), PQ_OK);
	pq_aead_free(s);

	/* open chunk i alone, from a fresh state built from the header only */
	const uint64_t order[] = {5, 2, 0, 4, 1, 3};
	for (size_t j = 0; j < ARRAY_LEN(order); j++) {
		uint64_t i = order[j];
		size_t pl = i == 5 ? 123 : CHUNK;
		assert_int_equal(pq_aead_open_init(key, hdr, &o), PQ_OK);
		assert_int_equal(pq_aead_get_info(o)->chunks, nchunks);
		assert_int_equal(pq_aead_open_chunk(o, i, sealed + i * (CHUNK + PQ_AEAD_TAG_LEN),
		                                    pl + PQ_AEAD_TAG_LEN, out),
		                 PQ_OK);
		assert_memory_equal(out, data + i * CHUNK, pl);
		pq_aead_free(o);
		o = NULL;
	}

	assert_int_equal(pq_aead_open_init(key, hdr, &o), PQ_OK);
	uint8_t *c0 = sealed, *c1 = sealed + (CHUNK + PQ_AEAD_TAG_LEN),
	        *c5 = sealed + 5 * (CHUNK + PQ_AEAD_TAG_LEN);
	/* a chunk at another position */
	assert_int_equal(pq_aead_open_chunk(o, 1, c0, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	assert_int_equal(pq_aead_open_chunk(o, 0, c1, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	/* beyond the end, wrong length */
	assert_int_equal(pq_aead_open_chunk(o, 6, c0, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	assert_int_equal(pq_aead_open_chunk(o, 0, c0, CHUNK + PQ_AEAD_TAG_LEN - 1, out),
	                 PQ_ERR_VERIFY);
	assert_int_equal(pq_aead_open_chunk(o, 5, c5, 123 + PQ_AEAD_TAG_LEN + 1, out),
	                 PQ_ERR_VERIFY);
	/* a flipped bit in the data or the tag */
	c0[10] ^= 0x20;
	assert_int_equal(pq_aead_open_chunk(o, 0, c0, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	c0[10] ^= 0x20;
	c5[123 + 15] ^= 0x01;
	assert_int_equal(pq_aead_open_chunk(o, 5, c5, 123 + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	c5[123 + 15] ^= 0x01;
	assert_int_equal(pq_aead_open_chunk(o, 5, c5, 123 + PQ_AEAD_TAG_LEN, out), PQ_OK);
	assert_memory_equal(out, data + 5 * CHUNK, 123);
	pq_aead_free(o);
	o = NULL;

	/* a header announcing another length: the last-chunk flag and the AAD differ */
	uint8_t h2[PQ_AEAD_HDR_LEN];
	memcpy(h2, hdr, sizeof(h2));
	h2[19] = (uint8_t)(h2[19] - 123); /* plain_len = 5 chunks exactly */
	assert_int_equal(pq_aead_open_init(key, h2, &o), PQ_OK);
	assert_int_equal(pq_aead_get_info(o)->chunks, 5);
	assert_int_equal(pq_aead_open_chunk(o, 4, sealed + 4 * (CHUNK + PQ_AEAD_TAG_LEN),
	                                    CHUNK + PQ_AEAD_TAG_LEN, out),
	                 PQ_ERR_VERIFY);
	assert_int_equal(pq_aead_open_chunk(o, 0, c0, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	pq_aead_free(o);
	o = NULL;

	/* a wrong key */
	key[0] ^= 1;
	assert_int_equal(pq_aead_open_init(key, hdr, &o), PQ_OK);
	assert_int_equal(pq_aead_open_chunk(o, 0, c0, CHUNK + PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	pq_aead_free(o);
	o = NULL;
	key[0] ^= 1;

	/* bad headers */
	memcpy(h2, hdr, sizeof(h2));
	h2[0] = 'X';
	assert_int_not_equal(pq_aead_open_init(key, h2, &o), PQ_OK);
	assert_null(o);
	memcpy(h2, hdr, sizeof(h2));
	h2[4] = 2;
	assert_int_not_equal(pq_aead_open_init(key, h2, &o), PQ_OK);
	memcpy(h2, hdr, sizeof(h2));
	memset(h2 + 8, 0, 4); /* chunk size 0 */
	assert_int_not_equal(pq_aead_open_init(key, h2, &o), PQ_OK);
	assert_null(o);

	/* the empty stream has one empty chunk */
	uint8_t tagonly[PQ_AEAD_TAG_LEN];
	assert_int_equal(pq_aead_seal_init(key, 0, CHUNK, hdr, &s), PQ_OK);
	assert_int_equal(pq_aead_get_info(s)->chunks, 1);
	assert_int_equal(pq_aead_chunk_plain_len(s, 0), 0);
	assert_int_equal(pq_aead_seal_chunk(s, 0, data, 0, tagonly), PQ_OK);
	pq_aead_free(s);
	assert_int_equal(pq_aead_open_init(key, hdr, &o), PQ_OK);
	assert_int_equal(pq_aead_open_chunk(o, 0, tagonly, PQ_AEAD_TAG_LEN, out), PQ_OK);
	tagonly[0] ^= 1;
	assert_int_equal(pq_aead_open_chunk(o, 0, tagonly, PQ_AEAD_TAG_LEN, out), PQ_ERR_VERIFY);
	pq_aead_free(o);
	pq_aead_free(NULL);

	free(sealed);
	free(data);
}

/* Writes a modified ciphertext and checks that decryption fails and leaves nothing. */
static void expect_decrypt_fails(const aead_paths *p, const uint8_t key[32], const uint8_t *blob,
                                 size_t len)
{
	tu_write_file(p->bad, blob, len);
	assert_int_not_equal(pq_aead_decrypt_file(key, p->bad, p->out), PQ_OK);
	assert_false(exists(p->out));
	assert_false(exists(p->part));
}

static void test_aead_file_tamper(void **state)
{
	(void)state;
	aead_paths p;
	uint8_t key[32];
	const size_t n = 5 * CHUNK + 100, sc = CHUNK + PQ_AEAD_TAG_LEN;
	uint8_t *data = random_buf(n), *enc = NULL, *mod = NULL;
	size_t el = 0;

	aead_paths_init(&p, "aeadtamper");
	assert_int_equal(pq_random(key, sizeof(key)), PQ_OK);
	tu_write_file(p.plain, data, n);
	assert_int_equal(pq_aead_encrypt_file(key, CHUNK, p.plain, p.enc), PQ_OK);
	enc = read_file(p.enc, &el);
	assert_int_equal(el, PQ_AEAD_HDR_LEN + n + 6 * PQ_AEAD_TAG_LEN);
	mod = malloc(el + sc);
	assert_non_null(mod);
#define CH(i) (PQ_AEAD_HDR_LEN + (size_t)(i)*sc)

	/* the file format is the chunk API's: chunk 3 and the last open alone from the header */
	pq_aead *a = NULL;
	uint8_t *chunk = malloc(CHUNK);
	assert_non_null(chunk);
	assert_int_equal(pq_aead_open_init(key, enc, &a), PQ_OK);
	assert_int_equal(pq_aead_get_info(a)->cipher_len, el);
	assert_int_equal(pq_aead_open_chunk(a, 3, enc + CH(3), sc, chunk), PQ_OK);
	assert_memory_equal(chunk, data + 3 * CHUNK, CHUNK);
	assert_int_equal(pq_aead_open_chunk(a, 5, enc + CH(5), el - CH(5), chunk), PQ_OK);
	assert_memory_equal(chunk, data + 5 * CHUNK, 100);
	pq_aead_free(a);
	free(chunk);

	/* reordering: swap chunks 1 and 2, and 0 and 1 */
	memcpy(mod, enc, el);
	memcpy(mod + CH(1), enc + CH(2), sc);
	memcpy(mod + CH(2), enc + CH(1), sc);
	expect_decrypt_fails(&p, key, mod, el);
	memcpy(mod, enc, el);
	memcpy(mod + CH(0), enc + CH(1), sc);
	memcpy(mod + CH(1), enc + CH(0), sc);
	expect_decrypt_fails(&p, key, mod, el);

	/* truncation at a chunk boundary, also with the header's length adjusted */
	expect_decrypt_fails(&p, key, enc, CH(5));
	memcpy(mod, enc, CH(5));
	mod[19] = (uint8_t)(mod[19] - 100);
	expect_decrypt_fails(&p, key, mod, CH(5));
	/* truncation inside a chunk, and down to the header or less */
	expect_decrypt_fails(&p, key, enc, el - 1);
	expect_decrypt_fails(&p, key, enc, CH(3) + 7);
	expect_decrypt_fails(&p, key, enc, PQ_AEAD_HDR_LEN);
	expect_decrypt_fails(&p, key, enc, PQ_AEAD_HDR_LEN - 1);
	expect_decrypt_fails(&p, key, enc, 0);

	/* extension: a copy of a chunk, or junk */
	memcpy(mod, enc, el);
	memcpy(mod + el, enc + CH(0), sc);
	expect_decrypt_fails(&p, key, mod, el + sc);
	memcpy(mod + el, enc + CH(5), el - CH(5));
	expect_decrypt_fails(&p, key, mod, el + (el - CH(5)));
	memset(mod + el, 0, 16);
	expect_decrypt_fails(&p, key, mod, el + 1);
	expect_decrypt_fails(&p, key, mod, el + 16);

	/* a flipped bit in the header */
	for (size_t i = 0; i < PQ_AEAD_HDR_LEN; i += 3) {
		memcpy(mod, enc, el);
		mod[i] ^= 0x01;
		expect_decrypt_fails(&p, key, mod, el);
	}
	memcpy(mod, enc, el);
	mod[PQ_AEAD_HDR_LEN - 1] ^= 0x80;
	expect_decrypt_fails(&p, key, mod, el);

	/* a flipped bit in a chunk: data, tag, first and last chunk */
	const size_t pos[] = {CH(0), CH(0) + CHUNK - 1, CH(0) + CHUNK, CH(1) + sc - 1, CH(3) + 2000,
	                      CH(5), el - 17,           el - 1};
	for (size_t i = 0; i < ARRAY_LEN(pos); i++) {
		memcpy(mod, enc, el);
		mod[pos[i]] ^= 0x40;
		expect_decrypt_fails(&p, key, mod, el);
	}

	/* the wrong key */
	uint8_t k2[32];
	memcpy(k2, key, 32);
	k2[31] ^= 1;
	expect_decrypt_fails(&p, k2, enc, el);

	/* a missing input */
	assert_int_not_equal(pq_aead_decrypt_file(key, p.plain, p.out), PQ_OK);
	assert_false(exists(p.out));
	assert_false(exists(p.part));
	char missing[PATH_MAX];
	tu_join(missing, sizeof(missing), p.dir, "missing.enc");
	assert_int_not_equal(pq_aead_decrypt_file(key, missing, p.out), PQ_OK);
	assert_false(exists(p.out));

	/* the original still decrypts */
	expect_decrypt_fails(&p, key, enc, el - 1);
	tu_write_file(p.bad, enc, el);
	assert_int_equal(pq_aead_decrypt_file(key, p.bad, p.out), PQ_OK);
	size_t ol = 0;
	uint8_t *out = read_file(p.out, &ol);
	assert_int_equal(ol, n);
	assert_memory_equal(out, data, n);
	free(out);
#undef CH
	free(mod);
	free(enc);
	free(data);
	aead_paths_free(&p);
}

/* ---- profile.h --------------------------------------------------------------------- */

static void test_profiles_table(void **state)
{
	(void)state;
	static const pq_alg mldsa[] = {PQ_ALG_MLDSA44, PQ_ALG_MLDSA65, PQ_ALG_MLDSA87};
	static const char *const sigalg[] = {"mldsa44", "mldsa65", "mldsa87"};
	static const char *const kems[] = {"ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"};
	static const char *const groups[] = {"MLKEM512", "X25519MLKEM768", "SecP384r1MLKEM1024"};

	assert_int_equal(PQ_PROFILE_COUNT, 13);
	for (int id = 0; id < PQ_PROFILE_COUNT; id++) {
		const pq_profile *p = &pq_profiles[id];
		assert_int_equal(p->id, id);
		assert_ptr_equal(pq_profile_by_id(id), p);
		assert_non_null(p->name);
		for (int j = 0; j < id; j++)
			assert_string_not_equal(pq_profiles[j].name, p->name);

		if (id == 0) {
			assert_string_equal(p->kem, "X25519");
			assert_string_equal(p->tls_group, "X25519");
			assert_false(p->hybrid_group);
			assert_false(p->pq_kex);
		} else {
			/* 1..3: ML-KEM-512/768/1024; then three ML-DSA levels per KEM */
			int kem = id <= 3 ? id - 1 : (id - 4) / 3;
			assert_string_equal(p->kem, kems[kem]);
			assert_string_equal(p->tls_group, groups[kem]);
			assert_int_equal(p->hybrid_group, kem != 0);
			assert_true(p->pq_kex);
		}
		if (id <= 3) {
			assert_int_equal(p->cert_alg, PQ_ALG_ECDSA_P256);
			assert_string_equal(p->tls_sigalg, "ecdsa_secp256r1_sha256");
		} else {
			assert_int_equal(p->cert_alg, mldsa[(id - 4) % 3]);
			assert_string_equal(p->tls_sigalg, sigalg[(id - 4) % 3]);
		}
	}
	assert_null(pq_profile_by_id(-1));
	assert_null(pq_profile_by_id(PQ_PROFILE_COUNT));

	const pq_profile *d = pq_profile_by_id(PQ_PROFILE_DEFAULT);
	assert_int_equal(PQ_PROFILE_DEFAULT, 2);
	assert_string_equal(d->tls_group, "X25519MLKEM768");
	assert_int_equal(d->cert_alg, PQ_ALG_ECDSA_P256);
	assert_string_equal(d->name, "mlkem768-ecdsa-p256");
}

static void test_profile_find(void **state)
{
	(void)state;
	const pq_profile *p = NULL;
	char id[16];
	for (int i = 0; i < PQ_PROFILE_COUNT; i++) {
		snprintf(id, sizeof(id), "%d", i);
		p = NULL;
		assert_int_equal(pq_profile_find(id, &p), PQ_OK);
		assert_ptr_equal(p, &pq_profiles[i]);
		p = NULL;
		assert_int_equal(pq_profile_find(pq_profiles[i].name, &p), PQ_OK);
		assert_ptr_equal(p, &pq_profiles[i]);
	}
	assert_int_equal(pq_profile_find("MLKEM768-ECDSA-P256", &p), PQ_OK);
	assert_int_equal(p->id, 2);

	static const char *const bad[] = {"13",
	                                  "-1",
	                                  "99999999999999999999",
	                                  "",
	                                  "2x",
	                                  "mlkem768",
	                                  "mlkem768-ecdsa-p384",
	                                  "x25519-mldsa65",
	                                  " 2",
	                                  "+2",
	                                  "-0",
	                                  "2 "};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		p = &pq_profiles[0];
		assert_int_not_equal(pq_profile_find(bad[i], &p), PQ_OK);
		assert_null(p);
	}
	p = &pq_profiles[0];
	assert_int_not_equal(pq_profile_find(NULL, &p), PQ_OK);
	assert_null(p);
}

static void test_policies(void **state)
{
	(void)state;
	static const char *const names[] = {"hybrid", "pq", "classical"};
	for (int i = 0; i < 3; i++) {
		pq_sign_policy pol = (pq_sign_policy)((i + 1) % 3);
		assert_string_equal(pq_policy_name((pq_sign_policy)i), names[i]);
		assert_int_equal(pq_policy_from_name(names[i], &pol), PQ_OK);
		assert_int_equal(pol, i);
	}
	assert_int_equal(PQ_POLICY_HYBRID, 0);
	pq_sign_policy pol;
	assert_int_not_equal(pq_policy_from_name("both", &pol), PQ_OK);
	assert_int_not_equal(pq_policy_from_name("", &pol), PQ_OK);

	pq_alg a[2] = {PQ_ALG_NONE, PQ_ALG_NONE};
	assert_int_equal(pq_policy_algs(PQ_POLICY_HYBRID, PQ_ALG_ED25519, a), 2);
	assert_int_equal(a[0], PQ_ALG_ED25519);
	assert_int_equal(a[1], PQ_ALG_MLDSA65);
	assert_int_equal(pq_policy_algs(PQ_POLICY_HYBRID, PQ_ALG_ECDSA_P256, a), 2);
	assert_int_equal(a[0], PQ_ALG_ECDSA_P256);
	assert_int_equal(a[1], PQ_ALG_MLDSA65);
	assert_int_equal(pq_policy_algs(PQ_POLICY_PQ, PQ_ALG_ED25519, a), 1);
	assert_int_equal(a[0], PQ_ALG_MLDSA65);
	assert_int_equal(pq_policy_algs(PQ_POLICY_CLASSICAL, PQ_ALG_ED25519, a), 1);
	assert_int_equal(a[0], PQ_ALG_ED25519);
	assert_int_equal(pq_policy_algs(PQ_POLICY_CLASSICAL, PQ_ALG_ECDSA_P256, a), 1);
	assert_int_equal(a[0], PQ_ALG_ECDSA_P256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_vectors),
	    cmocka_unit_test(test_hash_names),
	    cmocka_unit_test(test_hash_streaming),
	    cmocka_unit_test(test_hash_file),
	    cmocka_unit_test(test_crc32),
	    cmocka_unit_test(test_hkdf_rfc5869),
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_memeq_ct),
	    cmocka_unit_test(test_alg_names),
	    cmocka_unit_test(test_key_id),
	    cmocka_unit_test(test_key_raw_and_seed),
	    cmocka_unit_test(test_key_pem_roundtrip),
	    cmocka_unit_test(test_key_public_copy),
	    cmocka_unit_test(test_sig_ed25519),
	    cmocka_unit_test(test_sig_ecdsa_p256),
	    cmocka_unit_test(test_sig_mldsa44),
	    cmocka_unit_test(test_sig_mldsa65),
	    cmocka_unit_test(test_sig_mldsa87),
	    cmocka_unit_test(test_sig_non_sig_key),
	    cmocka_unit_test(test_mldsa_deterministic_hedged),
	    cmocka_unit_test(test_hybrid_ed25519_mldsa65),
	    cmocka_unit_test(test_hybrid_ecdsa_mldsa65),
	    cmocka_unit_test(test_hybrid_other_levels),
	    cmocka_unit_test(test_hybrid_bad_keys),
	    cmocka_unit_test(test_kem_mlkem512),
	    cmocka_unit_test(test_kem_mlkem768),
	    cmocka_unit_test(test_kem_mlkem1024),
	    cmocka_unit_test(test_kem_x25519),
	    cmocka_unit_test(test_wrap_roundtrip),
	    cmocka_unit_test(test_wrap_tamper),
	    cmocka_unit_test(test_gcm_oneshot),
	    cmocka_unit_test(test_aead_file_sizes),
	    cmocka_unit_test(test_aead_random_access),
	    cmocka_unit_test(test_aead_file_tamper),
	    cmocka_unit_test(test_profiles_table),
	    cmocka_unit_test(test_profile_find),
	    cmocka_unit_test(test_policies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
