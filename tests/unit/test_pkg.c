/* test_pkg.c: unit tests of src/pkg: SWPG headers, codecs, leaves, containers, bundles, deltas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/text.h"
#include "crypto/hash.h"
#include "pkg/bundle.h"
#include "pkg/codec.h"
#include "core/fileio.h"
#include "pkg/pkg.h"
#include "pkg/swpg.h"
#include "testutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIB          (1u << 20)

#define assert_fails(expr)                                                                         \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ == PQ_OK)                                                                  \
			fail_msg("%s succeeded but must fail", #expr);                             \
	} while (0)

/* ---- helpers: bytes, files, data ------------------------------------------------------- */

typedef struct {
	uint8_t *p;
	size_t len, cap;
} bytes;

static void b_reserve(bytes *b, size_t need)
{
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->p = realloc(b->p, cap);
	assert_non_null(b->p);
	b->cap = cap;
}

static void b_put(bytes *b, const void *d, size_t n)
{
	b_reserve(b, b->len + n + 1);
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void b_insert(bytes *b, size_t at, const void *d, size_t n)
{
	assert_true(at <= b->len);
	b_reserve(b, b->len + n + 1);
	memmove(b->p + at + n, b->p + at, b->len - at);
	memcpy(b->p + at, d, n);
	b->len += n;
}

static bytes b_dup(const bytes *src)
{
	bytes b = {0};
	b_put(&b, src->p, src->len);
	return b;
}

static void b_free(bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int bytes_sink(const uint8_t *data, size_t len, void *user)
{
	b_put(user, data, len);
	return PQ_OK;
}

static void put16le(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void put64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static uint64_t get64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The whole file in a malloc'd buffer (never NULL). */
static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = (size_t)st.st_size;
	return buf;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Number of directory entries other than . and .. (temporary files included). */
static size_t dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void assert_file_content(const char *path, const uint8_t *data, size_t len)
{
	size_t n = 0;
	uint8_t *got = read_file(path, &n);
	assert_int_equal(n, len);
	if (len)
		assert_memory_equal(got, data, len);
	free(got);
}

static void assert_files_equal(const char *a, const char *b)
{
	size_t n = 0;
	uint8_t *want = read_file(b, &n);
	assert_file_content(a, want, n);
	free(want);
}

static void sha256_hex_of_file(const char *path, char hex[65])
{
	uint8_t sha[32];
	assert_ok(pq_hash_file(PQ_HASH_SHA256, path, sha));
	pq_hex_encode(sha, 32, hex);
}

static void make_dir(const char *path)
{
	assert_int_equal(mkdir(path, 0755), 0);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			x = rng_next(&s);
		p[i] = (uint8_t)(x >> 8 * (i % 8));
	}
}

/* Compressible, like a firmware image: runs copied from a 2 KiB block of words and
 * numbers, each followed by one varying character. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {"zone",   "gateway", "firmware", "update", "vehicle",
	                                    "signed", "package", "ecu",      "delta",  "image"};
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 99;
	char block[2048 + 32];
	size_t b = 0, i = 0;
	while (b < 2048) {
		uint64_t r = rng_next(&s);
		int len =
		    snprintf(block + b, sizeof(block) - b, "%s %u%c", words[r % ARRAY_LEN(words)],
		             (unsigned)(r >> 32) % 1000, (r >> 20) % 7 ? ' ' : '\n');
		b += (size_t)len;
	}
	while (i < n) {
		uint64_t r = rng_next(&s);
		size_t off = r % 1024, len = 16 + (size_t)(r >> 16) % 240;
		for (size_t k = 0; k < len && i < n; k++)
			p[i++] = (uint8_t)block[off + k];
		if (i < n)
			p[i++] = (uint8_t)('0' + (r >> 40) % 10);
	}
}

/* A malloc'd image of n bytes (at least one byte allocated). */
static uint8_t *make_data(size_t n, bool text, uint64_t seed)
{
	uint8_t *p = malloc(n + 1);
	assert_non_null(p);
	if (text)
		fill_text(p, n, seed);
	else
		fill_random(p, n, seed);
	return p;
}

/* A delta target derived from base: a few changed bytes, an insertion, an appended tail. */
static uint8_t *mutate(const uint8_t *base, size_t n, size_t *out_len, uint64_t seed)
{
	size_t ins = 300, tail = 200, mid = n / 2;
	uint8_t *t = malloc(n + ins + tail + 1);
	assert_non_null(t);
	if (mid)
		memcpy(t, base, mid);
	fill_random(t + mid, ins, seed);
	if (n - mid)
		memcpy(t + mid + ins, base + mid, n - mid);
	fill_random(t + n + ins, tail, seed + 1);
	for (size_t i = 17; i < n; i += 4099)
		t[i] ^= 0x5A;
	*out_len = n + ins + tail;
	return t;
}

static void assert_version_eq(swpg_version a, swpg_version b)
{
	assert_int_equal(a.major, b.major);
	assert_int_equal(a.minor, b.minor);
	assert_int_equal(a.patch, b.patch);
	assert_int_equal(a.build, b.build);
}

static void assert_hdr_eq(const swpg_header *a, const swpg_header *b)
{
	assert_int_equal(a->target_ecu_id, b->target_ecu_id);
	assert_int_equal(a->software_type, b->software_type);
	assert_int_equal(a->compression, b->compression);
	assert_int_equal(a->payload_size, b->payload_size);
	assert_int_equal(a->uncompressed_size, b->uncompressed_size);
	assert_version_eq(a->version, b->version);
	assert_int_equal(a->version_timestamp, b->version_timestamp);
	assert_int_equal(a->version_serial, b->version_serial);
	assert_int_equal(a->crc32, b->crc32);
	assert_int_equal(a->source_ecu_id, b->source_ecu_id);
	assert_int_equal(a->hop_count, b->hop_count);
	assert_int_equal(a->sequence_number, b->sequence_number);
	assert_version_eq(a->base_version, b->base_version);
	assert_memory_equal(a->base_sha256_prefix, b->base_sha256_prefix, SWPG_BASE_HASH_PREFIX);
}

/* ---- 1. SWPG header ---------------------------------------------------------------------- */

static swpg_header delta_header(void)
{
	swpg_header h = {.target_ecu_id = 0x1234,
	                 .software_type = SWPG_TYPE_BOOT,
	                 .compression = SWPG_COMP_DELTA,
	                 .payload_size = 0x0A0B0C0D,
	                 .uncompressed_size = 0x11223344,
	                 .version = {5, 6, 7, 8},
	                 .version_timestamp = 0x61626364,
	                 .version_serial = 0x71727374,
	                 .crc32 = 0xDEADBEEF,
	                 .source_ecu_id = 0x4142,
	                 .hop_count = 0x5152,
	                 .sequence_number = 0x81828384,
	                 .base_version = {9, 10, 11, 12}};
	for (int i = 0; i < SWPG_BASE_HASH_PREFIX; i++)
		h.base_sha256_prefix[i] = (uint8_t)(0xA0 + i);
	return h;
}

/* delta_header() as laid out in swpg.h, written by hand */
static const uint8_t delta_header_bytes[SWPG_HDR_LEN] = {
    0x47, 0x50, 0x57, 0x53, /*  0 magic 0x53575047 */
    0x34, 0x12,             /*  4 target_ecu_id 0x1234 */
    0x02,                   /*  6 software_type BOOT */
    0x03,                   /*  7 compression DELTA */
    0x0D, 0x0C, 0x0B, 0x0A, /*  8 payload_size 0x0A0B0C0D */
    0x44, 0x33, 0x22, 0x11, /* 12 uncompressed_size 0x11223344 */
    0x05, 0x06, 0x07, 0x08, /* 16 version 5.6.7.8 */
    0x64, 0x63, 0x62, 0x61, /* 20 version_timestamp 0x61626364 */
    0x74, 0x73, 0x72, 0x71, /* 24 version_serial 0x71727374 */
    0xEF, 0xBE, 0xAD, 0xDE, /* 28 crc32 0xDEADBEEF */
    0x09, 0x0A, 0x0B, 0x0C, /* 32 base version 9.10.11.12 */
    0xA0, 0xA1, 0xA2, 0xA3, /* 36 base hash prefix [0..7] */
    0xA4, 0xA5, 0xA6, 0xA7, /*                         */
    0x42, 0x41,             /* 44 source_ecu_id 0x4142 */
    0x52, 0x51,             /* 46 hop_count 0x5152 */
    0x84, 0x83, 0x82, 0x81, /* 48 sequence_number 0x81828384 */
    0xA8, 0xA9, 0xAA, 0xAB, /* 52 base hash prefix [8..19] */
    0xAC, 0xAD, 0xAE, 0xAF, /*                         */
    0xB0, 0xB1, 0xB2, 0xB3, /*                         */
};

static swpg_header plain_header(void)
{
	swpg_header h = {.target_ecu_id = 0x2301,
	                 .software_type = SWPG_TYPE_CFG,
	                 .compression = SWPG_COMP_ZSTD,
	                 .payload_size = 0x35363738,
	                 .uncompressed_size = 0x45464748,
	                 .version = {0x11, 0x12, 0x13, 0x14},
	                 .version_timestamp = 0x55565758,
	                 .version_serial = 0x65666768,
	                 .crc32 = 0x89ABCDEF,
	                 .source_ecu_id = 0x1E1F,
	                 .hop_count = 0x2E2F,
	                 .sequence_number = 0x3C3D3E3F};
	return h;
}

static const uint8_t plain_header_bytes[SWPG_HDR_LEN] = {
    0x47, 0x50, 0x57, 0x53, /*  0 magic */
    0x01, 0x23,             /*  4 target_ecu_id 0x2301 */
    0x04,                   /*  6 software_type CFG */
    0x02,                   /*  7 compression ZSTD */
    0x38, 0x37, 0x36, 0x35, /*  8 payload_size 0x35363738 */
    0x48, 0x47, 0x46, 0x45, /* 12 uncompressed_size 0x45464748 */
    0x11, 0x12, 0x13, 0x14, /* 16 version 17.18.19.20 */
    0x58, 0x57, 0x56, 0x55, /* 20 version_timestamp 0x55565758 */
    0x68, 0x67, 0x66, 0x65, /* 24 version_serial 0x65666768 */
    0xEF, 0xCD, 0xAB, 0x89, /* 28 crc32 0x89ABCDEF */
    0x00, 0x00, 0x00, 0x00, /* 32 reserved */
    0x00, 0x00, 0x00, 0x00, /*                         */
    0x00, 0x00, 0x00, 0x00, /*                         */
    0x1F, 0x1E,             /* 44 source_ecu_id 0x1E1F */
    0x2F, 0x2E,             /* 46 hop_count 0x2E2F */
    0x3F, 0x3E, 0x3D, 0x3C, /* 48 sequence_number 0x3C3D3E3F */
    0x00, 0x00, 0x00, 0x00, /* 52 reserved */
    0x00, 0x00, 0x00, 0x00, /*                         */
    0x00, 0x00, 0x00, 0x00, /*                         */
};

/* The 24 reserved bytes: 32..43 and 52..63. */
static int reserved_offset(int i)
{
	return i < 12 ? 32 + i : 52 + (i - 12);
}

static void test_swpg_encode_layout(void **state)
{
	(void)state;
	uint8_t out[SWPG_HDR_LEN];
	swpg_header h = delta_header(), back;

	memset(out, 0xCC, sizeof(out));
	assert_ok(swpg_encode(&h, out));
	assert_memory_equal(out, delta_header_bytes, SWPG_HDR_LEN);
	assert_ok(swpg_decode(out, &back));
	assert_hdr_eq(&back, &h);

	h = plain_header();
	memset(out, 0xCC, sizeof(out));
	assert_ok(swpg_encode(&h, out));
	assert_memory_equal(out, plain_header_bytes, SWPG_HDR_LEN);
	assert_ok(swpg_decode(out, &back));
	assert_hdr_eq(&back, &h);

	/* decoding the hand-written bytes gives every field (delta base at 32..35, 36..43,
	 * 52..63) */
	assert_ok(swpg_decode(delta_header_bytes, &back));
	h = delta_header();
	assert_hdr_eq(&back, &h);
	assert_int_equal(back.base_version.major, 9);
	assert_int_equal(back.base_sha256_prefix[0], 0xA0);
	assert_int_equal(back.base_sha256_prefix[7], 0xA7);
	assert_int_equal(back.base_sha256_prefix[8], 0xA8);
	assert_int_equal(back.base_sha256_prefix[19], 0xB3);

	/* every reserved byte of a delta header lands in the base fields */
	for (int i = 0; i < 24; i++) {
		uint8_t in[SWPG_HDR_LEN];
		int off = reserved_offset(i);
		memcpy(in, delta_header_bytes, sizeof(in));
		in[off] = 0x5C;
		assert_ok(swpg_decode(in, &back));
		if (off < 36)
			assert_int_equal(((uint8_t *)&back.base_version)[off - 32], 0x5C);
		else if (off < 44)
			assert_int_equal(back.base_sha256_prefix[off - 36], 0x5C);
		else
			assert_int_equal(back.base_sha256_prefix[8 + off - 52], 0x5C);
	}

	/* round trip of every type and compression that may go together */
	static const uint8_t types[] = {SWPG_TYPE_APP, SWPG_TYPE_BOOT, SWPG_TYPE_CAL,
	                                SWPG_TYPE_CFG, SWPG_TYPE_ZONE, SWPG_TYPE_VEHICLE};
	for (size_t t = 0; t < ARRAY_LEN(types); t++) {
		for (uint8_t c = SWPG_COMP_NONE; c <= SWPG_COMP_DELTA; c++) {
			h = c == SWPG_COMP_DELTA ? delta_header() : plain_header();
			h.software_type = types[t];
			h.compression = c;
			if (c == SWPG_COMP_NONE)
				h.uncompressed_size = h.payload_size;
			if (swpg_is_container(types[t]) && c != SWPG_COMP_NONE) {
				assert_rc(swpg_encode(&h, out), PQ_ERR_FORMAT);
				continue;
			}
			assert_ok(swpg_encode(&h, out));
			assert_ok(swpg_decode(out, &back));
			assert_hdr_eq(&back, &h);
		}
	}
}

static void test_swpg_decode_rejects(void **state)
{
	(void)state;
	uint8_t in[SWPG_HDR_LEN];
	swpg_header h;

	/* bad magic: each byte */
	for (int i = 0; i < 4; i++) {
		memcpy(in, plain_header_bytes, sizeof(in));
		in[i] ^= 0x20;
		assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
	}
	/* unknown types */
	static const uint8_t bad_types[] = {0, 5, 0x7F, 0x82, 0xFF};
	for (size_t i = 0; i < ARRAY_LEN(bad_types); i++) {
		memcpy(in, plain_header_bytes, sizeof(in));
		in[6] = bad_types[i];
		assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
	}
	/* unknown compressions */
	for (unsigned c = 4; c < 256; c += 35) {
		memcpy(in, plain_header_bytes, sizeof(in));
		in[7] = (uint8_t)c;
		assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
	}
	/* compressed containers */
	for (uint8_t t = SWPG_TYPE_ZONE; t <= SWPG_TYPE_VEHICLE; t++) {
		for (uint8_t c = SWPG_COMP_ZLIB; c <= SWPG_COMP_ZSTD; c++) {
			memcpy(in, plain_header_bytes, sizeof(in));
			in[6] = t;
			in[7] = c;
			assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
		}
		memcpy(in, delta_header_bytes, sizeof(in));
		in[6] = t;
		assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
		/* uncompressed with equal sizes is fine */
		memcpy(in, plain_header_bytes, sizeof(in));
		in[6] = t;
		in[7] = SWPG_COMP_NONE;
		memcpy(in + 12, in + 8, 4);
		assert_ok(swpg_decode(in, &h));
		assert_int_equal(h.software_type, t);
	}
	/* NONE with payload_size != uncompressed_size */
	memcpy(in, plain_header_bytes, sizeof(in));
	in[7] = SWPG_COMP_NONE;
	assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
	memcpy(in + 12, in + 8, 4);
	assert_ok(swpg_decode(in, &h));
	in[12] ^= 1;
	assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);

	/* any reserved byte set in a non-delta header (leaf of every compression, container) */
	for (int i = 0; i < 24; i++) {
		int off = reserved_offset(i);
		for (uint8_t c = SWPG_COMP_NONE; c <= SWPG_COMP_ZSTD; c++) {
			memcpy(in, plain_header_bytes, sizeof(in));
			in[7] = c;
			memcpy(in + 12, in + 8, 4);
			assert_ok(swpg_decode(in, &h));
			in[off] = 1;
			assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
		}
		memcpy(in, plain_header_bytes, sizeof(in));
		in[6] = SWPG_TYPE_VEHICLE;
		in[7] = SWPG_COMP_NONE;
		memcpy(in + 12, in + 8, 4);
		in[off] = 0x80;
		assert_rc(swpg_decode(in, &h), PQ_ERR_FORMAT);
	}

	/* encode refuses what decode refuses */
	swpg_header e = plain_header();
	e.base_sha256_prefix[19] = 1;
	assert_rc(swpg_encode(&e, in), PQ_ERR_FORMAT);
	e = plain_header();
	e.base_version.build = 1;
	assert_rc(swpg_encode(&e, in), PQ_ERR_FORMAT);
	e = plain_header();
	e.software_type = 9;
	assert_rc(swpg_encode(&e, in), PQ_ERR_FORMAT);
	e = plain_header();
	e.compression = 4;
	assert_rc(swpg_encode(&e, in), PQ_ERR_FORMAT);
	e = plain_header();
	e.compression = SWPG_COMP_NONE;
	assert_rc(swpg_encode(&e, in), PQ_ERR_FORMAT);
}

static void test_swpg_names(void **state)
{
	(void)state;
	uint8_t v;
	assert_true(swpg_is_container(SWPG_TYPE_ZONE));
	assert_true(swpg_is_container(SWPG_TYPE_VEHICLE));
	assert_false(swpg_is_container(SWPG_TYPE_APP));
	assert_string_equal(swpg_type_name(SWPG_TYPE_CAL), "CAL");
	assert_string_equal(swpg_type_name(SWPG_TYPE_ZONE), "ZONE");
	assert_string_equal(swpg_type_name(0x42), "?");
	assert_ok(swpg_type_parse("boot", &v));
	assert_int_equal(v, SWPG_TYPE_BOOT);
	assert_rc(swpg_type_parse("ZONE", &v), PQ_ERR_INVAL);
	assert_string_equal(swpg_comp_name(SWPG_COMP_DELTA), "delta");
	assert_string_equal(swpg_comp_name(9), "?");
	assert_ok(swpg_comp_parse("gzip", &v));
	assert_int_equal(v, SWPG_COMP_ZLIB);
	assert_ok(swpg_comp_parse("ZSTD", &v));
	assert_int_equal(v, SWPG_COMP_ZSTD);
	assert_ok(swpg_comp_parse("none", &v));
	assert_int_equal(v, SWPG_COMP_NONE);
	assert_rc(swpg_comp_parse("delta", &v), PQ_ERR_INVAL);
	assert_rc(swpg_comp_parse("lz4", &v), PQ_ERR_INVAL);
}

static swpg_version ver(const char *s)
{
	swpg_version v;
	assert_ok(swpg_version_parse(s, &v));
	return v;
}

static void test_swpg_versions(void **state)
{
	(void)state;
	swpg_version v;
	char buf[32];

	v = ver("2.1.0");
	assert_version_eq(v, (swpg_version){2, 1, 0, 0});
	v = ver("2.1.0.7");
	assert_version_eq(v, (swpg_version){2, 1, 0, 7});
	swpg_version_str(v, buf, sizeof(buf));
	assert_string_equal(buf, "2.1.0.7");
	v = ver("255.254.253.252");
	assert_version_eq(v, (swpg_version){255, 254, 253, 252});
	swpg_version_str(v, buf, sizeof(buf));
	assert_string_equal(buf, "255.254.253.252");
	assert_version_eq(ver(buf), v);
	swpg_version_str((swpg_version){0, 0, 0, 0}, buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");

	assert_true(swpg_version_cmp(ver("2.0.0"), ver("1.9.9")) > 0);
	assert_true(swpg_version_cmp(ver("1.9.9"), ver("2.0.0")) < 0);
	assert_true(swpg_version_cmp(ver("1.5.0"), ver("1.4.10")) > 0);
	assert_true(swpg_version_cmp(ver("1.4.10"), ver("1.4.9")) > 0);
	assert_true(swpg_version_cmp(ver("1.0.0.1"), ver("1.0.0")) > 0);
	assert_true(swpg_version_cmp(ver("0.255.255.255"), ver("1.0.0")) < 0);
	assert_int_equal(swpg_version_cmp(ver("3.2.1"), ver("3.2.1.0")), 0);
	assert_true(swpg_version_cmp(ver("200.0.0"), ver("1.0.0")) > 0);
	assert_true(swpg_version_cmp(ver("1.0.0"), ver("255.0.0")) < 0);
	assert_true(swpg_version_cmp(ver("255.255.255.255"), ver("0.0.0.0")) > 0);
	assert_true(swpg_version_cmp(ver("0.0.0.0"), ver("255.255.255.255")) < 0);

	static const char *const bad[] = {"256",     "1.2",    "1.2.3.4.5", "a.b.c", "",
	                                  "1.2.256", "1..2.3", "1.2.3.",    "1.2.x", "-1.2.3",
	                                  " 1.2.3",  "1.2.3 ", "1.2.1000"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		v = (swpg_version){7, 7, 7, 7};
		int rc = swpg_version_parse(bad[i], &v);
		if (rc != PQ_ERR_INVAL)
			fail_msg("version '%s' accepted", bad[i]);
		assert_version_eq(v, (swpg_version){7, 7, 7, 7});
	}
	assert_rc(swpg_version_parse(NULL, &v), PQ_ERR_INVAL);
}

static void test_swpg_ecu_ids(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint16_t id;
		const char *name;
	} ok[] = {
	    {"VMG", 0x0E00, "VMG"},
	    {"vmg", 0x0E00, "VMG"},
	    {"0x0E00", 0x0E00, "VMG"},
	    {"3584", 0x0E00, "VMG"},
	    {"ZGW1", 0x0091, "ZGW1"},
	    {"ZGW9", 0x0099, "ZGW9"},
	    {"0x0091", 0x0091, "ZGW1"},
	    {"ECU_011", 0x1011, "ECU_011"},
	    {"ECU_100", 0x1100, "ECU_100"},
	    {"ECU_999", 0x1999, "ECU_999"},
	    {"0x1011", 0x1011, "ECU_011"},
	    {"0x2345", 0x2345, "0x2345"},
	    {"0x12AB", 0x12AB, "0x12AB"},
	    {"0x0090", 0x0090, "0x0090"},
	    {"BROADCAST", 0xFFFF, "BROADCAST"},
	    {"0100", 100, "0x0064"}, /* decimal with a leading zero, not octal 64 */
	    {"0x0e00", 0x0E00, "VMG"},
	};
	uint16_t id;
	char name[32];
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		id = 0;
		assert_ok(swpg_ecu_parse(ok[i].in, &id));
		assert_int_equal(id, ok[i].id);
		swpg_ecu_name(id, name, sizeof(name));
		assert_string_equal(name, ok[i].name);
	}
	assert_ok(swpg_ecu_parse("0x1234", &id));
	assert_int_equal(id, 0x1234);
	/* every id's name parses back to the id */
	for (uint32_t x = 0; x <= 0xFFFF; x++) {
		swpg_ecu_name((uint16_t)x, name, sizeof(name));
		id = 0;
		if (swpg_ecu_parse(name, &id) != PQ_OK || id != x)
			fail_msg("ECU 0x%04X is named '%s', which parses to 0x%04X", x, name, id);
	}
	static const char *const bad[] = {"ECU_1000", "",        "0x10000",  "ZGW0", "ZGW10",
	                                  "ECU_01",   "ECU_0a1", "ECU_011x", "-1",   "0x",
	                                  "VMG2",     "65536",   " 12",      "12 ",  "ZGW1x",
	                                  "0xg1",     "0x 1",    "0x-1"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		id = 0x4242;
		if (swpg_ecu_parse(bad[i], &id) != PQ_ERR_INVAL)
			fail_msg("ECU id '%s' accepted", bad[i]);
		assert_int_equal(id, 0x4242);
	}
	assert_rc(swpg_ecu_parse(NULL, &id), PQ_ERR_INVAL);
}

/* ---- 2. codecs ------------------------------------------------------------------------- */

static const size_t odd_pieces[] = {1, 7, 4096, 65537};
static const uint8_t full_comps[] = {SWPG_COMP_NONE, SWPG_COMP_ZLIB, SWPG_COMP_ZSTD};

/* Compresses `in` fed in pieces of sizes[0], sizes[1], ... (cycling); `end` goes with the
 * last piece, or with an extra empty call when separate_end. */
static void encode_all(uint8_t comp, const uint8_t *in, size_t len, const size_t *sizes,
                       size_t nsizes, bool separate_end, bytes *out)
{
	pkg_enc *e = NULL;
	size_t off = 0, k = 0;
	assert_ok(pkg_enc_new(comp, 0, len, NULL, 0, &e));
	do {
		size_t n = sizes[k++ % nsizes];
		if (n > len - off)
			n = len - off;
		bool end = !separate_end && off + n == len;
		assert_ok(pkg_enc_feed(e, in + off, n, end, bytes_sink, out));
		off += n;
	} while (off < len);
	if (separate_end)
		assert_ok(pkg_enc_feed(e, in, 0, true, bytes_sink, out));
	pkg_enc_free(e);
}

/* Decodes `in` (in pieces) expecting `expect` bytes; returns the first error. */
static int decode_all(uint8_t comp, const uint8_t *in, size_t len, uint64_t expect,
                      const size_t *sizes, size_t nsizes, bytes *out)
{
	pkg_dec *d = NULL;
	size_t off = 0, k = 0;
	int rc = pkg_dec_new(comp, expect, NULL, 0, &d);
	if (rc != PQ_OK)
		return rc;
	while (rc == PQ_OK && off < len) {
		size_t n = sizes[k++ % nsizes];
		if (n > len - off)
			n = len - off;
		rc = pkg_dec_feed(d, in + off, n, out ? bytes_sink : NULL, out);
		off += n;
	}
	if (rc == PQ_OK)
		rc = pkg_dec_finish(d);
	if (rc == PQ_OK)
		assert_int_equal(pkg_dec_produced(d), expect);
	pkg_dec_free(d);
	return rc;
}

static void check_stream_format(uint8_t comp, const uint8_t *in, size_t len, const bytes *enc)
{
	if (comp == SWPG_COMP_NONE) {
		assert_int_equal(enc->len, len);
		if (len)
			assert_memory_equal(enc->p, in, len);
	} else if (comp == SWPG_COMP_ZLIB) {
		assert_true(enc->len >= 6);
		assert_int_equal(enc->p[0] & 0x0F, 8); /* RFC 1950: deflate */
		assert_int_equal((enc->p[0] << 8 | enc->p[1]) % 31, 0);
	} else {
		static const uint8_t magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
		assert_true(enc->len >= 4);
		assert_memory_equal(enc->p, magic, 4);
	}
}

static void roundtrip(uint8_t comp, const uint8_t *in, size_t len, const size_t *esizes, size_t nes,
                      const size_t *dsizes, size_t nds, bool separate_end)
{
	bytes enc = {0}, dec = {0};
	encode_all(comp, in, len, esizes, nes, separate_end, &enc);
	check_stream_format(comp, in, len, &enc);
	assert_ok(decode_all(comp, enc.p ? enc.p : in, enc.len, len, dsizes, nds, &dec));
	assert_int_equal(dec.len, len);
	if (len)
		assert_memory_equal(dec.p, in, len);
	/* a sink is optional (verification only counts) */
	assert_ok(decode_all(comp, enc.p ? enc.p : in, enc.len, len, dsizes, nds, NULL));
	b_free(&enc);
	b_free(&dec);
}

static void test_codec_roundtrip(void **state)
{
	(void)state;
	static const size_t sizes[] = {0, 1, 100000, 3u * MIB};
	static const size_t dec_rot[] = {65537, 1, 4096, 7};
	for (size_t c = 0; c < ARRAY_LEN(full_comps); c++) {
		for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
			for (int text = 0; text < 2; text++) {
				size_t len = sizes[s];
				uint8_t *in = make_data(len, text, 1000 + s);
				if (len <= 100000) {
					for (size_t p = 0; p < ARRAY_LEN(odd_pieces); p++)
						roundtrip(
						    full_comps[c], in, len, &odd_pieces[p], 1,
						    &odd_pieces[ARRAY_LEN(odd_pieces) - 1 - p], 1,
						    p % 2 == 1);
				}
				roundtrip(full_comps[c], in, len, odd_pieces, ARRAY_LEN(odd_pieces),
				          dec_rot, ARRAY_LEN(dec_rot), false);
				if (text && len == 3u * MIB && full_comps[c] != SWPG_COMP_NONE) {
					bytes enc = {0};
					encode_all(full_comps[c], in, len, odd_pieces, 4, true,
					           &enc);
					assert_true(enc.len < len / 4);
					b_free(&enc);
				}
				free(in);
			}
		}
	}
}

static void test_codec_rejects(void **state)
{
	(void)state;
	const size_t whole[] = {SIZE_MAX};
	for (size_t c = 0; c < ARRAY_LEN(full_comps); c++) {
		uint8_t comp = full_comps[c];
		for (int text = 0; text < 2; text++) {
			size_t len = 100000;
			uint8_t *in = make_data(len, text, 77);
			bytes enc = {0}, bad = {0};
			encode_all(comp, in, len, odd_pieces, 4, false, &enc);

			/* more output than announced, less output than announced */
			assert_rc(decode_all(comp, enc.p, enc.len, len - 1, odd_pieces, 4, NULL),
			          PQ_ERR_FORMAT);
			assert_rc(decode_all(comp, enc.p, enc.len, 0, whole, 1, NULL),
			          PQ_ERR_FORMAT);
			assert_rc(decode_all(comp, enc.p, enc.len, len + 1, odd_pieces, 4, NULL),
			          PQ_ERR_FORMAT);
			/* truncated */
			assert_rc(decode_all(comp, enc.p, enc.len - 1, len, odd_pieces, 4, NULL),
			          PQ_ERR_FORMAT);
			assert_rc(decode_all(comp, enc.p, enc.len / 2, len, whole, 1, NULL),
			          PQ_ERR_FORMAT);
			assert_rc(decode_all(comp, enc.p, 0, len, whole, 1, NULL), PQ_ERR_FORMAT);
			/* trailing garbage: one byte (fed with the stream or after it), a second
			 * copy of the stream */
			bad = b_dup(&enc);
			b_put(&bad, "\0", 1);
			assert_rc(decode_all(comp, bad.p, bad.len, len, whole, 1, NULL),
			          PQ_ERR_FORMAT);
			assert_rc(decode_all(comp, bad.p, bad.len, len, odd_pieces, 4, NULL),
			          PQ_ERR_FORMAT);
			{
				pkg_dec *d = NULL;
				assert_ok(pkg_dec_new(comp, len, NULL, 0, &d));
				assert_ok(pkg_dec_feed(d, enc.p, enc.len, NULL, NULL));
				assert_rc(pkg_dec_feed(d, (const uint8_t *)"x", 1, NULL, NULL),
				          PQ_ERR_FORMAT);
				pkg_dec_free(d);
			}
			b_put(&bad, enc.p, enc.len);
			assert_rc(decode_all(comp, bad.p, bad.len, len, whole, 1, NULL),
			          PQ_ERR_FORMAT);
			b_free(&bad);
			/* trailing bytes that look like the start of another stream (a decoder
			 * would wait for more of it), with the stream or after it */
			for (size_t k = 1; k <= 4; k++) {
				bad = b_dup(&enc);
				b_put(&bad, enc.p, k);
				assert_rc(decode_all(comp, bad.p, bad.len, len, whole, 1, NULL),
				          PQ_ERR_FORMAT);
				b_free(&bad);
				pkg_dec *d = NULL;
				assert_ok(pkg_dec_new(comp, len, NULL, 0, &d));
				assert_ok(pkg_dec_feed(d, enc.p, enc.len, NULL, NULL));
				int rc = pkg_dec_feed(d, enc.p, k, NULL, NULL);
				if (rc == PQ_OK)
					rc = pkg_dec_finish(d);
				if (rc != PQ_ERR_FORMAT)
					fail_msg("%s: %zu bytes after the stream accepted",
					         swpg_comp_name(comp), k);
				pkg_dec_free(d);
			}
			if (comp != SWPG_COMP_NONE) {
				/* the stream carries a checksum: corrupted bytes are errors */
				size_t pos[] = {enc.len / 3, enc.len / 2, 2 * enc.len / 3,
				                enc.len - 1, enc.len - 5};
				for (size_t i = 0; i < ARRAY_LEN(pos); i++) {
					bad = b_dup(&enc);
					bad.p[pos[i]] ^= 0xFF;
					if (decode_all(comp, bad.p, bad.len, len, odd_pieces, 4,
					               NULL) != PQ_ERR_FORMAT)
						fail_msg(
						    "%s: corrupting byte %zu of %zu undetected",
						    swpg_comp_name(comp), pos[i], enc.len);
					b_free(&bad);
				}
			}
			b_free(&enc);
			free(in);
		}
		/* a small stream, every byte corrupted in turn: an error or the exact data */
		if (comp != SWPG_COMP_NONE) {
			size_t len = 3000;
			uint8_t *in = make_data(len, true, 5);
			bytes enc = {0};
			encode_all(comp, in, len, whole, 1, false, &enc);
			for (size_t i = 0; i < enc.len; i++) {
				bytes out = {0}, bad = b_dup(&enc);
				bad.p[i] ^= 0xFF;
				int rc = decode_all(comp, bad.p, bad.len, len, whole, 1, &out);
				if (rc == PQ_OK && memcmp(out.p, in, len) != 0)
					fail_msg("%s: corrupt byte %zu decoded to wrong data",
					         swpg_comp_name(comp), i);
				b_free(&out);
				b_free(&bad);
			}
			b_free(&enc);
			free(in);
		}
	}
	/* bad parameters */
	pkg_enc *e = NULL;
	pkg_dec *d = NULL;
	assert_rc(pkg_enc_new(SWPG_COMP_ZLIB, 10, 0, NULL, 0, &e), PQ_ERR_INVAL);
	assert_rc(pkg_enc_new(SWPG_COMP_ZLIB, -1, 0, NULL, 0, &e), PQ_ERR_INVAL);
	assert_rc(pkg_enc_new(SWPG_COMP_ZSTD, 20, 0, NULL, 0, &e), PQ_ERR_INVAL);
	assert_rc(pkg_enc_new(4, 0, 0, NULL, 0, &e), PQ_ERR_INVAL);
	assert_null(e);
	assert_rc(pkg_dec_new(4, 0, NULL, 0, &d), PQ_ERR_FORMAT);
	assert_null(d);
}

/* ---- 3. leaves ------------------------------------------------------------------------- */

struct prog {
	unsigned calls;
	uint64_t done, total;
	bool backwards;
};

static void prog_fn(uint64_t done, uint64_t total, void *user)
{
	struct prog *p = user;
	if (done < p->done)
		p->backwards = true;
	p->calls++;
	p->done = done;
	p->total = total;
}

static pkg_leaf_opts leaf_opts(uint8_t comp)
{
	pkg_leaf_opts o = {.ecu = 0x1011,
	                   .type = SWPG_TYPE_APP,
	                   .version = {1, 2, 3, 4},
	                   .timestamp = 0x5F5E1000,
	                   .serial = 77,
	                   .compression = comp,
	                   .source_ecu = SWPG_ECU_VMG,
	                   .sequence = 9};
	return o;
}

/* Reads a package file's header. */
static void file_header(const char *path, swpg_header *h)
{
	size_t n = 0;
	uint8_t *b = read_file(path, &n);
	assert_true(n >= SWPG_HDR_LEN);
	assert_ok(swpg_decode(b, h));
	free(b);
}

static void check_leaf(const char *dir, const uint8_t *img, size_t len, uint8_t comp, bool text)
{
	char ipath[PATH_MAX], ppath[PATH_MAX], xpath[PATH_MAX];
	pkg_unit u;
	pkg_leaf_opts o = leaf_opts(comp);
	struct prog pr = {0};
	uint8_t sha[32];
	swpg_header h;

	tu_join(ipath, sizeof(ipath), dir, "image.bin");
	tu_join(ppath, sizeof(ppath), dir, "leaf.swpg");
	tu_join(xpath, sizeof(xpath), dir, "image.out");
	tu_write_file(ipath, img, len);
	o.progress = (pkg_progress){.fn = prog_fn, .user = &pr};
	assert_ok(pkg_build_leaf(ipath, &o, ppath, &u));

	/* progress: monotonic, at most one call per MiB read, ending at (size, size) */
	assert_false(pr.backwards);
	assert_true(pr.calls >= 1 && pr.calls <= len / MIB + 1);
	assert_int_equal(pr.done, len);
	assert_int_equal(pr.total, len);

	/* what the unit reports */
	assert_int_equal(u.size, file_size(ppath));
	assert_int_equal(u.size, SWPG_HDR_LEN + (uint64_t)u.hdr.payload_size);
	assert_ok(pq_hash_file(PQ_HASH_SHA256, ppath, sha));
	assert_memory_equal(u.sha256, sha, 32);
	assert_ok(pq_hash(PQ_HASH_SHA256, img, len, sha));
	assert_memory_equal(u.image_sha256, sha, 32);
	assert_int_equal(u.image_size, len);
	assert_false(u.delta);
	file_header(ppath, &h);
	assert_hdr_eq(&h, &u.hdr);
	assert_int_equal(h.target_ecu_id, 0x1011);
	assert_int_equal(h.software_type, SWPG_TYPE_APP);
	assert_int_equal(h.compression, comp);
	assert_int_equal(h.uncompressed_size, len);
	assert_version_eq(h.version, (swpg_version){1, 2, 3, 4});
	assert_int_equal(h.version_timestamp, 0x5F5E1000);
	assert_int_equal(h.version_serial, 77);
	assert_int_equal(h.source_ecu_id, SWPG_ECU_VMG);
	assert_int_equal(h.hop_count, 0);
	assert_int_equal(h.sequence_number, 9);
	{
		size_t n = 0;
		uint8_t *pkg = read_file(ppath, &n);
		assert_int_equal(h.crc32, pq_crc32(0, pkg + SWPG_HDR_LEN, n - SWPG_HDR_LEN));
		if (comp == SWPG_COMP_NONE && len)
			assert_memory_equal(pkg + SWPG_HDR_LEN, img, len);
		free(pkg);
	}
	if (text && len > 100000 && comp != SWPG_COMP_NONE)
		assert_true(h.payload_size < len / 4);

	/* reading it back */
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n = 0;
	pkg_verify_report rep;
	assert_ok(pkg_open(ppath, &r));
	assert_int_equal(pkg_file_size(r), u.size);
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, 1);
	assert_string_equal(all[0].path, "");
	assert_int_equal(all[0].depth, 0);
	assert_int_equal(all[0].offset, 0);
	assert_int_equal(all[0].size, u.size);
	assert_false(all[0].has_sha256);
	assert_hdr_eq(&all[0].hdr, &u.hdr);
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_int_equal(rep.packages, 1);
	assert_int_equal(rep.leaves, 1);
	assert_int_equal(rep.bytes_checked, u.size);
	assert_ok(pkg_extract_image(r, &all[0], NULL, xpath, NULL));
	assert_file_content(xpath, img, len);
	assert_rc(pkg_apply_delta(r, &all[0], ipath, xpath, NULL), PQ_ERR_INVAL);
	pkg_close(r);
	/* image, package, extracted image: nothing else (no temporary files) */
	assert_int_equal(dir_entries(dir), 3);
	unlink(ipath);
	unlink(ppath);
	unlink(xpath);
}

static void test_leaf_build_extract(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-leaf");
	static const size_t sizes[] = {0, 1, 1000, 300001, MIB, MIB + 1};
	for (size_t c = 0; c < ARRAY_LEN(full_comps); c++) {
		for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
			for (int text = 0; text < 2; text++) {
				uint8_t *img = make_data(sizes[s], text, 31 * s + (size_t)text);
				check_leaf(dir, img, sizes[s], full_comps[c], text);
				free(img);
			}
		}
	}
	tu_rmtree(dir);
	free(dir);
}

static void test_leaf_failures(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-leaf-fail");
	char ipath[PATH_MAX], ppath[PATH_MAX], missing[PATH_MAX], xpath[PATH_MAX];
	pkg_unit u;
	pkg_leaf_opts o = leaf_opts(SWPG_COMP_ZSTD);
	uint8_t img[5000];

	tu_join(ipath, sizeof(ipath), dir, "image.bin");
	tu_join(ppath, sizeof(ppath), dir, "leaf.swpg");
	tu_join(missing, sizeof(missing), dir, "no-such-image");
	tu_join(xpath, sizeof(xpath), dir, "image.out");
	fill_random(img, sizeof(img), 3);
	tu_write_file(ipath, img, sizeof(img));

	/* a missing image: an error, no package */
	assert_rc(pkg_build_leaf(missing, &o, ppath, &u), PQ_ERR_NOTFOUND);
	assert_false(exists(ppath));
	assert_int_equal(dir_entries(dir), 1);
	/* a missing delta base */
	o.base_path = missing;
	assert_rc(pkg_build_leaf(ipath, &o, ppath, &u), PQ_ERR_NOTFOUND);
	assert_false(exists(ppath));
	o = leaf_opts(SWPG_COMP_ZSTD);
	/* not a regular file */
	assert_fails(pkg_build_leaf(dir, &o, ppath, &u));
	/* bad options */
	o.type = SWPG_TYPE_ZONE;
	assert_rc(pkg_build_leaf(ipath, &o, ppath, &u), PQ_ERR_INVAL);
	o = leaf_opts(SWPG_COMP_DELTA);
	assert_rc(pkg_build_leaf(ipath, &o, ppath, &u), PQ_ERR_INVAL);
	o = leaf_opts(SWPG_COMP_ZLIB);
	o.level = 12;
	assert_rc(pkg_build_leaf(ipath, &o, ppath, &u), PQ_ERR_INVAL);
	assert_int_equal(dir_entries(dir), 1);
	/* a failure after the output was opened (a /proc file announces 0 bytes and has more)
	 * leaves neither the package nor its temporary file behind */
	o = leaf_opts(SWPG_COMP_ZSTD);
	assert_fails(pkg_build_leaf("/proc/self/status", &o, ppath, &u));
	assert_false(exists(ppath));
	assert_int_equal(dir_entries(dir), 1);

	/* timestamp 0 means now */
	o = leaf_opts(SWPG_COMP_NONE);
	o.timestamp = 0;
	uint32_t before = (uint32_t)time(NULL);
	assert_ok(pkg_build_leaf(ipath, &o, ppath, &u));
	uint32_t after = (uint32_t)time(NULL);
	assert_true(u.hdr.version_timestamp >= before && u.hdr.version_timestamp <= after);

	/* a corrupted payload: extraction fails and leaves nothing behind */
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n = 0;
	pkg_verify_report rep;
	int fd = open(ppath, O_RDWR);
	uint8_t b = img[100] ^ 1;
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &b, 1, SWPG_HDR_LEN + 100), 1);
	close(fd);
	assert_ok(pkg_open(ppath, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_rc(pkg_extract_image(r, &all[0], NULL, xpath, NULL), PQ_ERR_VERIFY);
	assert_false(exists(xpath));
	assert_rc(pkg_verify(r, &rep, NULL), PQ_ERR_VERIFY);
	assert_string_equal(rep.failed_path, "(root)");
	pkg_close(r);
	assert_int_equal(dir_entries(dir), 2);

	/* a header that lies about the image size, a truncated stream: the CRC matches, the
	 * decoder does not */
	for (uint8_t comp = SWPG_COMP_ZLIB; comp <= SWPG_COMP_ZSTD; comp++) {
		size_t plen = 0;
		o = leaf_opts(comp);
		assert_ok(pkg_build_leaf(ipath, &o, ppath, &u));
		uint8_t *pk = read_file(ppath, &plen);
		for (int k = 0; k < 3; k++) {
			swpg_header lie = u.hdr;
			size_t len = plen;
			if (k == 0)
				lie.uncompressed_size++;
			else if (k == 1)
				lie.uncompressed_size--;
			else
				len--;
			lie.payload_size = (uint32_t)(len - SWPG_HDR_LEN);
			lie.crc32 = pq_crc32(0, pk + SWPG_HDR_LEN, len - SWPG_HDR_LEN);
			uint8_t *lp = malloc(len);
			assert_non_null(lp);
			memcpy(lp, pk, len);
			assert_ok(swpg_encode(&lie, lp));
			tu_write_file(ppath, lp, len);
			free(lp);
			assert_ok(pkg_open(ppath, &r));
			assert_ok(pkg_list(r, &all, &n));
			assert_rc(pkg_verify(r, &rep, NULL), PQ_ERR_FORMAT);
			assert_rc(pkg_extract_image(r, &all[0], NULL, xpath, NULL), PQ_ERR_FORMAT);
			assert_false(exists(xpath));
			pkg_close(r);
		}
		free(pk);
	}
	assert_int_equal(dir_entries(dir), 2);

	/* files that are no package */
	assert_rc(pkg_open(missing, &r), PQ_ERR_NOTFOUND);
	assert_null(r);
	tu_write_file(xpath, img, 10);
	assert_rc(pkg_open(xpath, &r), PQ_ERR_FORMAT);
	tu_write_file(xpath, img, 0);
	assert_rc(pkg_open(xpath, &r), PQ_ERR_FORMAT);
	tu_write_file(xpath, img, sizeof(img));
	assert_rc(pkg_open(xpath, &r), PQ_ERR_FORMAT);
	assert_null(r);
	tu_rmtree(dir);
	free(dir);
}

/* ---- 4. bundles ------------------------------------------------------------------------ */

typedef struct {
	const char *name;
	uint16_t ecu;
	int zone;
	uint8_t type;
	uint8_t comp;
	int level;
	size_t size;
	bool text;
	bool delta; /* built against IMG/NAME.base */
} unit_spec;

static void img_path(char *out, size_t cap, const char *dir, const char *name, const char *ext)
{
	int n = snprintf(out, cap, "%s/img/%s.%s", dir, name, ext);
	assert_true(n > 0 && (size_t)n < cap);
}

/* Writes the images (and delta bases) of the units under DIR/img and builds the bundle into
 * DIR/out. */
static void make_bundle(const char *dir, const unit_spec *s, size_t n, json_t **manifest)
{
	char path[PATH_MAX], base[PATH_MAX], out[PATH_MAX];
	pkg_bundle_desc *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	tu_join(path, sizeof(path), dir, "img");
	make_dir(path);
	tu_join(out, sizeof(out), dir, "out");
	snprintf(d->campaign_id, sizeof(d->campaign_id), "campaign-7");
	d->version = (swpg_version){4, 5, 6, 0};
	d->serial = 42;
	d->timestamp = 1700000000;
	for (size_t i = 0; i < n; i++) {
		pkg_bundle_unit u = {0};
		uint8_t *img = make_data(s[i].size, s[i].text, 500 + i);
		size_t len = s[i].size;
		img_path(path, sizeof(path), dir, s[i].name, "bin");
		img_path(base, sizeof(base), dir, s[i].name, "base");
		if (s[i].delta) {
			uint8_t *t = mutate(img, len, &len, 900 + i);
			tu_write_file(base, img, s[i].size);
			free(img);
			img = t;
		}
		tu_write_file(path, img, len);
		free(img);
		snprintf(u.name, sizeof(u.name), "%s", s[i].name);
		u.ecu = s[i].ecu;
		u.zone = s[i].zone;
		u.type = s[i].type;
		u.version = (swpg_version){2, 0, (uint8_t)i, 1};
		u.image = path;
		u.compression = s[i].comp;
		u.level = s[i].level;
		u.base_image = s[i].delta ? base : NULL;
		u.base_version = (swpg_version){1, 9, (uint8_t)i, 0};
		assert_ok(pkg_bundle_add(d, &u));
	}
	assert_int_equal(d->n, n);
	assert_ok(pkg_bundle_build(d, out, NULL, manifest));
	pkg_bundle_free(d);
	assert_int_equal(d->n, 0);
	free(d);
}

static const char *jstr(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("manifest: \"%s\" is not a string", key);
	return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("manifest: \"%s\" is not an integer", key);
	return json_integer_value(v);
}

static json_t *unit_by_path(json_t *units, const char *path)
{
	size_t i;
	json_t *u, *hit = NULL;
	json_array_foreach(units, i, u)
	{
		if (strcmp(jstr(u, "path"), path) == 0) {
			assert_null(hit);
			hit = u;
		}
	}
	if (!hit)
		fail_msg("manifest has no unit '%s'", path);
	return hit;
}

static const unit_spec bundle_units[] = {
    {"VMG", SWPG_ECU_VMG, 0, SWPG_TYPE_APP, SWPG_COMP_ZSTD, 0, 150000, true, false},
    {"BRAKE", 0x1011, 1, SWPG_TYPE_APP, SWPG_COMP_ZLIB, 0, 80000, false, false},
    {"STEER", 0x1012, 1, SWPG_TYPE_BOOT, SWPG_COMP_NONE, 0, 5000, false, false},
    {"ZGW1", 0x0091, 1, SWPG_TYPE_APP, SWPG_COMP_ZSTD, 0, 64000, true, false},
    {"ZGW2", 0x0092, 2, SWPG_TYPE_CFG, SWPG_COMP_ZLIB, 9, 20000, true, false},
    {"ECU_021", 0x1021, 2, SWPG_TYPE_BOOT, SWPG_COMP_ZSTD, 0, 200000, false, true},
    {"ECU_022", 0x1022, 2, SWPG_TYPE_CAL, SWPG_COMP_ZSTD, 19, 30000, true, false},
};

static void test_bundle_build(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-bundle");
	char out[PATH_MAX], full[PATH_MAX], path[PATH_MAX], hex[65], img[PATH_MAX];
	char base[PATH_MAX], xdir[PATH_MAX], xpath[PATH_MAX];
	json_t *m = NULL;
	const size_t nu = ARRAY_LEN(bundle_units);

	make_bundle(dir, bundle_units, nu, &m);
	assert_non_null(m);
	tu_join(out, sizeof(out), dir, "out");
	tu_join(full, sizeof(full), out, "full_package.bin");
	tu_join(xdir, sizeof(xdir), dir, "x");
	make_dir(xdir);

	/* manifest.json is the manifest returned */
	{
		json_error_t jerr;
		tu_join(path, sizeof(path), out, "manifest.json");
		json_t *disk = json_load_file(path, 0, &jerr);
		assert_non_null(disk);
		assert_true(json_equal(disk, m));
		json_decref(disk);
	}
	assert_string_equal(jstr(m, "format"), "pqota-swpg-manifest-v1");
	assert_string_equal(jstr(m, "campaign_id"), "campaign-7");
	assert_string_equal(jstr(m, "created"), "2023-11-14T22:13:20Z");
	json_t *units = json_object_get(m, "units");
	assert_true(json_is_array(units));
	assert_int_equal(json_array_size(units), nu + 2);
	/* every unit's hash and length are its packages/ file's */
	{
		size_t i;
		json_t *u;
		json_array_foreach(units, i, u)
		{
			const char *file = jstr(u, "file");
			assert_true(strncmp(file, "packages/", 9) == 0);
			tu_join(path, sizeof(path), out, file);
			sha256_hex_of_file(path, hex);
			assert_string_equal(jstr(u, "sha256"), hex);
			assert_int_equal(jint(u, "length"), file_size(path));
			swpg_header h;
			file_header(path, &h);
			assert_int_equal(jint(u, "payload_size"), h.payload_size);
			snprintf(hex, sizeof(hex), "%08x", h.crc32);
			assert_string_equal(jstr(u, "crc32"), hex);
			snprintf(hex, sizeof(hex), "0x%04X", h.target_ecu_id);
			assert_string_equal(jstr(u, "target_ecu_id"), hex);
		}
	}
	json_t *bundle = json_object_get(m, "bundle");
	assert_string_equal(jstr(bundle, "file"), "full_package.bin");
	sha256_hex_of_file(full, hex);
	assert_string_equal(jstr(bundle, "sha256"), hex);
	assert_int_equal(jint(bundle, "length"), file_size(full));
	assert_string_equal(jstr(bundle, "type"), "VEHICLE");
	assert_string_equal(jstr(bundle, "version"), "4.5.6.0");
	assert_null(json_object_get(bundle, "image"));
	/* leaves: paths, files, images, delta bases */
	for (size_t i = 0; i < nu; i++) {
		const unit_spec *s = &bundle_units[i];
		char want[64];
		snprintf(want, sizeof(want), "ZONE%d/%s", s->zone, s->name);
		json_t *u = unit_by_path(units, s->zone ? want : s->name);
		if (s->zone)
			snprintf(want, sizeof(want), "packages/ZONE%d-%s.swpg", s->zone, s->name);
		else
			snprintf(want, sizeof(want), "packages/%s.swpg", s->name);
		assert_string_equal(jstr(u, "file"), want);
		assert_int_equal(jint(u, "zone"), s->zone);
		assert_string_equal(jstr(u, "type"), swpg_type_name(s->type));
		assert_string_equal(jstr(u, "compression"),
		                    s->delta ? "delta" : swpg_comp_name(s->comp));
		img_path(img, sizeof(img), dir, s->name, "bin");
		json_t *ij = json_object_get(u, "image");
		sha256_hex_of_file(img, hex);
		assert_string_equal(jstr(ij, "sha256"), hex);
		assert_int_equal(jint(ij, "length"), file_size(img));
		json_t *db = json_object_get(u, "delta_base");
		if (s->delta) {
			img_path(base, sizeof(base), dir, s->name, "base");
			sha256_hex_of_file(base, hex);
			assert_non_null(db);
			assert_string_equal(jstr(db, "sha256"), hex);
			assert_int_equal(jint(db, "length"), file_size(base));
			assert_string_equal(jstr(db, "version"), "1.9.5.0");
			/* the delta is much smaller than its image */
			assert_true(jint(u, "length") < (json_int_t)file_size(img) / 10);
		} else {
			assert_null(db);
		}
	}
	assert_string_equal(jstr(unit_by_path(units, "ZONE1"), "file"), "packages/ZONE1.swpg");
	assert_string_equal(jstr(unit_by_path(units, "ZONE2"), "file"), "packages/ZONE2.swpg");
	assert_string_equal(jstr(unit_by_path(units, "ZONE2"), "target_ecu_id"), "0x0092");
	/* packages/ holds exactly the units' files and the zones */
	tu_join(path, sizeof(path), out, "packages");
	assert_int_equal(dir_entries(path), nu + 2);
	assert_int_equal(dir_entries(out), 3); /* packages, full_package.bin, manifest.json */

	/* the tree */
	static const char *const paths[] = {
	    "",      "VMG",        "ZONE1",         "ZONE1/ZGW1",   "ZONE1/BRAKE", "ZONE1/STEER",
	    "ZONE2", "ZONE2/ZGW2", "ZONE2/ECU_021", "ZONE2/ECU_022"};
	static const int depths[] = {0, 1, 1, 2, 2, 2, 1, 2, 2, 2};
	pkg_reader *r = NULL;
	const pkg_entry *all, *e, *e2;
	size_t n = 0;
	pkg_verify_report rep;
	assert_ok(pkg_open(full, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, ARRAY_LEN(paths));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(all[i].path, paths[i]);
		assert_int_equal(all[i].depth, depths[i]);
		if (i == 0) {
			assert_int_equal(all[0].hdr.software_type, SWPG_TYPE_VEHICLE);
			assert_int_equal(all[0].hdr.target_ecu_id, SWPG_ECU_VMG);
			assert_int_equal(all[0].size, file_size(full));
			continue;
		}
		/* each child is its packages/ file, byte for byte, and indexed by its hash */
		json_t *u = unit_by_path(units, paths[i]);
		assert_true(all[i].has_sha256);
		pq_hex_encode(all[i].sha256, 32, hex);
		assert_string_equal(jstr(u, "sha256"), hex);
		assert_int_equal(all[i].size, jint(u, "length"));
		tu_join(path, sizeof(path), out, jstr(u, "file"));
		tu_join(xpath, sizeof(xpath), xdir, "pkg.out");
		assert_ok(pkg_extract_package(r, &all[i], xpath, NULL));
		assert_files_equal(xpath, path);
		unlink(xpath);
		/* back to back after the parent's index */
		assert_true(all[i].offset > all[i - 1].offset);
	}
	assert_int_equal(all[2].hdr.software_type, SWPG_TYPE_ZONE);
	assert_int_equal(all[2].hdr.target_ecu_id, 0x0091);
	assert_int_equal(all[6].hdr.target_ecu_id, 0x0092);
	assert_int_equal(all[3].offset, all[2].offset + SWPG_HDR_LEN + PKG_INDEX_HDR_LEN +
	                                    3 * PKG_INDEX_ENTRY_LEN);
	assert_int_equal(all[4].offset, all[3].offset + all[3].size);
	assert_int_equal(all[6].offset, all[2].offset + all[2].size);
	assert_int_equal(all[6].offset + all[6].size, all[0].size);
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_int_equal(rep.packages, 10);
	assert_int_equal(rep.leaves, 7);
	assert_int_equal(rep.bytes_checked, file_size(full));

	/* finding entries by path, by name and by ECU id */
	assert_ok(pkg_find(r, "ZONE1/BRAKE", &e));
	assert_ptr_equal(e, &all[4]);
	assert_ok(pkg_find(r, "BRAKE", &e2));
	assert_ptr_equal(e2, e);
	assert_ok(pkg_find(r, "0x1011", &e2));
	assert_ptr_equal(e2, e);
	assert_ok(pkg_find(r, "ECU_011", &e2));
	assert_ptr_equal(e2, e);
	assert_ok(pkg_find(r, "4113", &e2));
	assert_ptr_equal(e2, e);
	assert_ok(pkg_find(r, "ECU_012", &e2));
	assert_ptr_equal(e2, &all[5]);
	assert_ok(pkg_find(r, "ZGW2", &e2));
	assert_ptr_equal(e2, &all[7]);
	assert_ok(pkg_find(r, "0x0091", &e2));
	assert_ptr_equal(e2, &all[3]);
	assert_ok(pkg_find(r, "VMG", &e2));
	assert_ptr_equal(e2, &all[1]);
	assert_ok(pkg_find(r, "0x0E00", &e2)); /* the VMG leaf, not the vehicle container */
	assert_ptr_equal(e2, &all[1]);
	assert_ok(pkg_find(r, "ZONE2", &e2));
	assert_ptr_equal(e2, &all[6]);
	assert_ok(pkg_find(r, "ZONE2/ECU_021", &e2));
	assert_ptr_equal(e2, &all[8]);
	assert_ok(pkg_find(r, "", &e2));
	assert_ptr_equal(e2, &all[0]);
	assert_rc(pkg_find(r, "ECU_023", &e2), PQ_ERR_NOTFOUND);
	assert_null(e2);
	assert_rc(pkg_find(r, "ZONE3", &e2), PQ_ERR_NOTFOUND);
	assert_rc(pkg_find(r, "ZONE1/ECU_021", &e2), PQ_ERR_NOTFOUND);

	/* every leaf's image */
	for (size_t i = 0; i < nu; i++) {
		const unit_spec *s = &bundle_units[i];
		char want[64];
		snprintf(want, sizeof(want), "ZONE%d/%s", s->zone, s->name);
		assert_ok(pkg_find(r, s->zone ? want : s->name, &e));
		assert_int_equal(e->hdr.target_ecu_id, s->ecu);
		assert_int_equal(e->hdr.software_type, s->type);
		assert_version_eq(e->hdr.version, (swpg_version){2, 0, (uint8_t)i, 1});
		assert_int_equal(e->hdr.version_serial, 42);
		assert_int_equal(e->hdr.version_timestamp, 1700000000);
		img_path(img, sizeof(img), dir, s->name, "bin");
		tu_join(xpath, sizeof(xpath), xdir, s->name);
		if (s->delta) {
			img_path(base, sizeof(base), dir, s->name, "base");
			assert_int_equal(e->hdr.compression, SWPG_COMP_DELTA);
			assert_rc(pkg_extract_image(r, e, NULL, xpath, NULL), PQ_ERR_INVAL);
			assert_false(exists(xpath));
			assert_ok(pkg_extract_image(r, e, base, xpath, NULL));
		} else {
			assert_int_equal(e->hdr.compression, s->comp);
			assert_ok(pkg_extract_image(r, e, NULL, xpath, NULL));
		}
		assert_files_equal(xpath, img);
	}
	/* containers have no image */
	tu_join(xpath, sizeof(xpath), xdir, "zone.img");
	assert_rc(pkg_extract_image(r, &all[2], NULL, xpath, NULL), PQ_ERR_INVAL);
	assert_rc(pkg_extract_image(r, &all[0], NULL, xpath, NULL), PQ_ERR_INVAL);
	assert_false(exists(xpath));
	assert_int_equal(dir_entries(xdir), nu);
	pkg_close(r);

	/* a zone package read on its own */
	tu_join(path, sizeof(path), out, "packages/ZONE2.swpg");
	assert_ok(pkg_open(path, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, 4);
	assert_string_equal(all[0].path, "");
	assert_int_equal(all[0].hdr.software_type, SWPG_TYPE_ZONE);
	assert_string_equal(all[1].path, "ZGW2");
	assert_string_equal(all[2].path, "ECU_021");
	assert_string_equal(all[3].path, "ECU_022");
	assert_int_equal(all[3].depth, 1);
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_int_equal(rep.leaves, 3);
	pkg_close(r);

	json_decref(m);
	tu_rmtree(dir);
	free(dir);
}

/* A bundle of up to 4 VMG packages (one per software type) and 9 zones: 13 entries at the
 * top level. */
static void test_bundle_wide(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-bundle-wide");
	unit_spec s[13];
	char names[13][9];
	size_t n = 0;
	for (uint8_t t = SWPG_TYPE_APP; t <= SWPG_TYPE_CFG; t++) {
		snprintf(names[n], sizeof(names[n]), "VMG_%s", swpg_type_name(t));
		s[n] =
		    (unit_spec){names[n], SWPG_ECU_VMG, 0, t, SWPG_COMP_ZSTD, 1, 100, true, false};
		n++;
	}
	for (int z = 1; z <= 9; z++) {
		snprintf(names[n], sizeof(names[n]), "ECU_%03d", 20 * (z - 1) + 1);
		uint16_t ecu = 0;
		assert_ok(swpg_ecu_parse(names[n], &ecu));
		assert_int_equal(pkg_default_zone(ecu), z);
		s[n] = (unit_spec){names[n], ecu, z,     SWPG_TYPE_APP, SWPG_COMP_NONE,
		                   0,        50,  false, false};
		n++;
	}
	json_t *m = NULL;
	make_bundle(dir, s, n, &m);
	char full[PATH_MAX];
	tu_join(full, sizeof(full), dir, "out/full_package.bin");
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t ne = 0, top = 0;
	pkg_verify_report rep;
	assert_ok(pkg_open(full, &r));
	assert_ok(pkg_list(r, &all, &ne));
	assert_int_equal(ne, 1 + 4 + 9 * 2);
	for (size_t i = 0; i < ne; i++)
		top += all[i].depth == 1;
	assert_int_equal(top, 13);
	assert_string_equal(all[1].path, "VMG_APP");
	assert_string_equal(all[4].path, "VMG_CFG");
	assert_string_equal(all[5].path, "ZONE1");
	assert_string_equal(all[ne - 1].path, "ZONE9/ECU_161");
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_int_equal(rep.leaves, 13);
	/* four leaves for the VMG: its id is ambiguous, their names are not */
	const pkg_entry *e = NULL;
	assert_rc(pkg_find(r, "0x0E00", &e), PQ_ERR_INVAL);
	assert_rc(pkg_find(r, "VMG", &e), PQ_ERR_INVAL);
	assert_ok(pkg_find(r, "VMG_CAL", &e));
	assert_ptr_equal(e, &all[3]);
	assert_ok(pkg_find(r, "ECU_081", &e));
	assert_string_equal(e->path, "ZONE5/ECU_081");
	pkg_close(r);
	assert_int_equal(json_array_size(json_object_get(m, "units")), 13 + 9);
	json_decref(m);
	tu_rmtree(dir);
	free(dir);
}

static void test_bundle_add_rejects(void **state)
{
	(void)state;
	pkg_bundle_desc *d = calloc(1, sizeof(*d));
	char img[] = "/nonexistent/image.bin";
	assert_non_null(d);
	pkg_bundle_unit u = {.name = "ECU_011",
	                     .ecu = 0x1011,
	                     .type = SWPG_TYPE_APP,
	                     .image = img,
	                     .zone = 1,
	                     .compression = SWPG_COMP_ZSTD};
	assert_ok(pkg_bundle_add(d, &u));
	assert_int_equal(d->n, 1);
	assert_string_equal(d->units[0].image, img);
	assert_ptr_not_equal(d->units[0].image, img); /* copied */
	pkg_bundle_unit b = u;
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL); /* same name */
	snprintf(b.name, sizeof(b.name), "OTHER");
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL); /* same ECU and type */
	b.type = SWPG_TYPE_BOOT;
	assert_ok(pkg_bundle_add(d, &b)); /* same ECU, another type */
	b = u;
	b.ecu = 0x1013;
	snprintf(b.name, sizeof(b.name), "X");
	b.zone = 10;
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL);
	b.zone = -1;
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL);
	b.zone = 0; /* only the VMG sits outside a zone */
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL);
	b.zone = 1;
	b.type = SWPG_TYPE_ZONE;
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL);
	b.type = SWPG_TYPE_APP;
	b.image = NULL;
	assert_rc(pkg_bundle_add(d, &b), PQ_ERR_INVAL);
	b.image = img;
	/* names: 1..8 characters of A-Z a-z 0-9 _ - (they become file names) */
	static const char *const bad_names[] = {"", "../x", "a/b", "A B", ".", "x.y"};
	for (size_t i = 0; i < ARRAY_LEN(bad_names); i++) {
		snprintf(b.name, sizeof(b.name), "%s", bad_names[i]);
		if (pkg_bundle_add(d, &b) != PQ_ERR_INVAL)
			fail_msg("unit name '%s' accepted", bad_names[i]);
	}
	snprintf(b.name, sizeof(b.name), "Ab-9_xyz");
	assert_ok(pkg_bundle_add(d, &b));
	assert_int_equal(d->n, 3);
	pkg_bundle_free(d);
	assert_int_equal(d->n, 0);
	/* an empty description builds nothing */
	char *dir = tu_tmpdir("pkg-empty");
	assert_rc(pkg_bundle_build(d, dir, NULL, NULL), PQ_ERR_INVAL);
	tu_rmtree(dir);
	free(dir);
	free(d);
}

/* ---- 5. corruption --------------------------------------------------------------------- */

static const unit_spec small_units[] = {
    {"VMG", SWPG_ECU_VMG, 0, SWPG_TYPE_APP, SWPG_COMP_ZSTD, 0, 700, true, false},
    {"ZGW1", 0x0091, 1, SWPG_TYPE_APP, SWPG_COMP_NONE, 0, 200, false, false},
    {"ECU_011", 0x1011, 1, SWPG_TYPE_CAL, SWPG_COMP_ZLIB, 0, 900, true, false},
    {"ECU_012", 0x1012, 1, SWPG_TYPE_APP, SWPG_COMP_ZSTD, 0, 600, false, true},
    {"ZGW2", 0x0092, 2, SWPG_TYPE_APP, SWPG_COMP_ZLIB, 0, 300, false, false},
};

static void test_bundle_corruption(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-corrupt");
	char full[PATH_MAX], cut[PATH_MAX];
	json_t *m = NULL;
	size_t len = 0;
	pkg_reader *r = NULL;
	pkg_verify_report rep;

	make_bundle(dir, small_units, ARRAY_LEN(small_units), &m);
	json_decref(m);
	tu_join(full, sizeof(full), dir, "out/full_package.bin");
	uint8_t *orig = read_file(full, &len);
	assert_true(len > 2000 && len < 8000);
	assert_ok(pkg_open(full, &r));
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_int_equal(rep.leaves, ARRAY_LEN(small_units));
	pkg_close(r);

	int fd = open(full, O_RDWR);
	assert_true(fd >= 0);
	for (size_t off = SWPG_HDR_LEN; off < len; off++) {
		uint8_t bad = orig[off] ^ 0xFF;
		assert_int_equal(pwrite(fd, &bad, 1, (off_t)off), 1);
		/* the root header is intact, so the file still opens */
		assert_ok(pkg_open(full, &r));
		int rc = pkg_verify(r, &rep, NULL);
		pkg_close(r);
		if (rc == PQ_OK)
			fail_msg("flipping byte %zu of %zu went unnoticed", off, len);
		assert_true(rep.failed_path[0] != '\0');
		assert_int_equal(pwrite(fd, &orig[off], 1, (off_t)off), 1);
	}
	close(fd);
	assert_file_content(full, orig, len);
	assert_ok(pkg_open(full, &r));
	assert_ok(pkg_verify(r, &rep, NULL));
	pkg_close(r);

	/* a child whose bytes no longer match their index hash is not extracted, nor is the
	 * zone holding it */
	{
		char xp[PATH_MAX];
		const pkg_entry *e = NULL;
		tu_join(xp, sizeof(xp), dir, "x.swpg");
		assert_ok(pkg_open(full, &r));
		assert_ok(pkg_find(r, "ZONE1/ECU_011", &e));
		uint64_t at = e->offset + SWPG_HDR_LEN + 10;
		pkg_close(r);
		fd = open(full, O_RDWR);
		assert_true(fd >= 0);
		uint8_t bad = orig[at] ^ 0x04;
		assert_int_equal(pwrite(fd, &bad, 1, (off_t)at), 1);
		close(fd);
		assert_ok(pkg_open(full, &r));
		static const char *const whats[] = {"ZONE1/ECU_011", "ZONE1"};
		for (size_t i = 0; i < ARRAY_LEN(whats); i++) {
			assert_ok(pkg_find(r, whats[i], &e));
			assert_rc(pkg_extract_package(r, e, xp, NULL), PQ_ERR_VERIFY);
			assert_false(exists(xp));
		}
		assert_ok(pkg_find(r, "ZONE1/ZGW1", &e)); /* its neighbour is fine */
		assert_ok(pkg_extract_package(r, e, xp, NULL));
		assert_ok(pkg_find(r, "VMG", &e));
		assert_ok(pkg_extract_package(r, e, xp, NULL));
		assert_fails(pkg_verify(r, &rep, NULL));
		assert_string_equal(rep.failed_path, "ZONE1/ECU_011");
		pkg_close(r);
		tu_write_file(full, orig, len);
	}

	/* one byte less, one byte more */
	tu_join(cut, sizeof(cut), dir, "cut.bin");
	tu_write_file(cut, orig, len - 1);
	assert_rc(pkg_open(cut, &r), PQ_ERR_FORMAT);
	assert_null(r);
	uint8_t *more = malloc(len + 1);
	assert_non_null(more);
	memcpy(more, orig, len);
	more[len] = 0;
	tu_write_file(cut, more, len + 1);
	assert_rc(pkg_open(cut, &r), PQ_ERR_FORMAT);
	assert_null(r);
	free(more);
	free(orig);
	tu_rmtree(dir);
	free(dir);
}

/* ---- 6. hand-made containers ----------------------------------------------------------- */

#define CT_VERSION   ((swpg_version){1, 0, 0, 0})
#define CT_TIMESTAMP 1000u
#define CT_SERIAL    5u

/* A NONE leaf: header and payload. */
static void mk_leaf(bytes *out, uint16_t ecu, uint8_t type, const uint8_t *payload, size_t n)
{
	uint8_t hdr[SWPG_HDR_LEN];
	swpg_header h = {.target_ecu_id = ecu,
	                 .software_type = type,
	                 .compression = SWPG_COMP_NONE,
	                 .payload_size = (uint32_t)n,
	                 .uncompressed_size = (uint32_t)n,
	                 .version = {3, 1, 4, 1},
	                 .version_timestamp = CT_TIMESTAMP,
	                 .crc32 = pq_crc32(0, payload, n)};
	assert_ok(swpg_encode(&h, hdr));
	b_put(out, hdr, sizeof(hdr));
	b_put(out, payload, n);
}

typedef struct {
	const char *name;
	const bytes *pkg;
} kid;

/* A container written by hand from docs/package-format.md: header, index (16-byte header,
 * 64-byte entries), the children back to back. */
static void mk_container(bytes *out, uint8_t type, uint16_t ecu, const kid *kids, size_t n)
{
	size_t index_len = PKG_INDEX_HDR_LEN + n * PKG_INDEX_ENTRY_LEN;
	uint8_t *index = calloc(1, index_len), hdr[SWPG_HDR_LEN];
	bytes payload = {0};
	assert_non_null(index);
	memcpy(index, "SWIX", 4);
	put16le(index + 4, 1);
	put16le(index + 6, PKG_INDEX_ENTRY_LEN);
	put32le(index + 8, (uint32_t)n);
	uint64_t off = index_len;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = index + PKG_INDEX_HDR_LEN + i * PKG_INDEX_ENTRY_LEN;
		swpg_header c;
		assert_ok(swpg_decode(kids[i].pkg->p, &c));
		put16le(e, c.target_ecu_id);
		e[2] = c.software_type;
		e[3] = c.compression;
		put64le(e + 8, off);
		put64le(e + 16, kids[i].pkg->len);
		assert_ok(pq_hash(PQ_HASH_SHA256, kids[i].pkg->p, kids[i].pkg->len, e + 24));
		memcpy(e + 56, kids[i].name, strlen(kids[i].name));
		off += kids[i].pkg->len;
	}
	b_put(&payload, index, index_len);
	for (size_t i = 0; i < n; i++)
		b_put(&payload, kids[i].pkg->p, kids[i].pkg->len);
	swpg_header h = {.target_ecu_id = ecu,
	                 .software_type = type,
	                 .compression = SWPG_COMP_NONE,
	                 .payload_size = (uint32_t)payload.len,
	                 .uncompressed_size = (uint32_t)payload.len,
	                 .version = CT_VERSION,
	                 .version_timestamp = CT_TIMESTAMP,
	                 .version_serial = CT_SERIAL,
	                 .crc32 = pq_crc32(0, payload.p, payload.len)};
	assert_ok(swpg_encode(&h, hdr));
	b_put(out, hdr, sizeof(hdr));
	b_put(out, payload.p, payload.len);
	b_free(&payload);
	free(index);
}

/* Recomputes the root header's sizes and CRC after its payload was edited, so that only
 * the layout is wrong. */
static void fix_root(bytes *b)
{
	swpg_header h;
	uint8_t hdr[SWPG_HDR_LEN];
	assert_ok(swpg_decode(b->p, &h));
	h.payload_size = h.uncompressed_size = (uint32_t)(b->len - SWPG_HDR_LEN);
	h.crc32 = pq_crc32(0, b->p + SWPG_HDR_LEN, b->len - SWPG_HDR_LEN);
	assert_ok(swpg_encode(&h, hdr));
	memcpy(b->p, hdr, sizeof(hdr));
}

/* File offset of the root index entry i and of its fields. */
#define ENT(i) (SWPG_HDR_LEN + PKG_INDEX_HDR_LEN + (size_t)(i)*PKG_INDEX_ENTRY_LEN)

static void expect_layout_ok(const char *dir, const bytes *b, size_t entries)
{
	char path[PATH_MAX];
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n = 0;
	pkg_verify_report rep;
	tu_join(path, sizeof(path), dir, "good.swpg");
	tu_write_file(path, b->p, b->len);
	assert_ok(pkg_open(path, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, entries);
	assert_ok(pkg_verify(r, &rep, NULL));
	pkg_close(r);
}

static void expect_layout_bad(const char *dir, const bytes *b, const char *what)
{
	char path[PATH_MAX];
	pkg_reader *r = NULL;
	const pkg_entry *all = NULL, *e = NULL;
	size_t n = 0;
	pkg_verify_report rep;
	tu_join(path, sizeof(path), dir, "bad.swpg");
	tu_write_file(path, b->p, b->len);
	int rc = pkg_open(path, &r);
	if (rc != PQ_OK)
		fail_msg("%s: pkg_open failed (%s), the sizes should be consistent", what,
		         pq_err_detail());
	rc = pkg_list(r, &all, &n);
	if (rc != PQ_ERR_FORMAT)
		fail_msg("%s: pkg_list returned %d, not PQ_ERR_FORMAT", what, rc);
	assert_fails(pkg_list(r, &all, &n)); /* and again */
	assert_fails(pkg_find(r, "", &e));
	rc = pkg_verify(r, &rep, NULL);
	if (rc == PQ_OK)
		fail_msg("%s: pkg_verify accepted it", what);
	assert_string_equal(rep.failed_path, "(layout)");
	pkg_close(r);
}

static void test_container_conformance(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-ct");
	char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX], pz[PATH_MAX], pv[PATH_MAX];
	bytes a = {0}, b = {0}, c = {0}, z = {0}, v = {0};
	uint8_t pa[100], pb[50];
	pkg_unit u;

	fill_random(pa, sizeof(pa), 1);
	fill_random(pb, sizeof(pb), 2);
	mk_leaf(&a, 0x0091, SWPG_TYPE_APP, pa, sizeof(pa));
	mk_leaf(&b, 0x1011, SWPG_TYPE_BOOT, pb, sizeof(pb));
	mk_leaf(&c, SWPG_ECU_VMG, SWPG_TYPE_CFG, pb, 0);
	kid zk[] = {{"ZGW1", &a}, {"ABCDEFGH", &b}};
	mk_container(&z, SWPG_TYPE_ZONE, 0x0091, zk, 2);
	kid vk[] = {{"VMG", &c}, {"ZONE1", &z}};
	mk_container(&v, SWPG_TYPE_VEHICLE, SWPG_ECU_VMG, vk, 2);

	/* pkg_build_container writes the same bytes */
	tu_join(p1, sizeof(p1), dir, "a.swpg");
	tu_join(p2, sizeof(p2), dir, "b.swpg");
	tu_join(p3, sizeof(p3), dir, "c.swpg");
	tu_join(pz, sizeof(pz), dir, "z.swpg");
	tu_join(pv, sizeof(pv), dir, "v.swpg");
	tu_write_file(p1, a.p, a.len);
	tu_write_file(p2, b.p, b.len);
	tu_write_file(p3, c.p, c.len);
	pkg_child zc[] = {{p1, "ZGW1"}, {p2, "ABCDEFGH"}};
	pkg_container_opts zo = {.type = SWPG_TYPE_ZONE,
	                         .ecu = 0x0091,
	                         .version = CT_VERSION,
	                         .timestamp = CT_TIMESTAMP,
	                         .serial = CT_SERIAL};
	assert_ok(pkg_build_container(zc, 2, &zo, pz, &u));
	assert_file_content(pz, z.p, z.len);
	assert_int_equal(u.size, z.len);
	pkg_child vc[] = {{p3, "VMG"}, {pz, "ZONE1"}};
	pkg_container_opts vo = zo;
	vo.type = SWPG_TYPE_VEHICLE;
	vo.ecu = SWPG_ECU_VMG;
	assert_ok(pkg_build_container(vc, 2, &vo, pv, &u));
	assert_file_content(pv, v.p, v.len);
	expect_layout_ok(dir, &v, 5);

	/* what pkg_build_container refuses */
	pkg_child bad[] = {{p1, "ZGW1"}, {p2, "ZGW1"}};
	assert_rc(pkg_build_container(bad, 2, &zo, p3, &u), PQ_ERR_INVAL); /* duplicate name */
	bad[1].name = "TOOLONGNAME";
	assert_rc(pkg_build_container(bad, 2, &zo, p3, &u), PQ_ERR_INVAL);
	bad[1].name = "a/b";
	assert_rc(pkg_build_container(bad, 2, &zo, p3, &u), PQ_ERR_INVAL);
	pkg_child nested[] = {{pz, "ZONE1"}};
	assert_rc(pkg_build_container(nested, 1, &zo, p3, &u), PQ_ERR_INVAL); /* zone in zone */
	pkg_child veh[] = {{pv, "V"}};
	assert_rc(pkg_build_container(veh, 1, &vo, p3, &u), PQ_ERR_INVAL); /* vehicle in vehicle */
	assert_rc(pkg_build_container(veh, 1, &zo, p3, &u), PQ_ERR_INVAL);
	assert_rc(pkg_build_container(zc, 0, &zo, p3, &u), PQ_ERR_INVAL);
	pkg_container_opts lo = zo;
	lo.type = SWPG_TYPE_APP;
	assert_rc(pkg_build_container(zc, 2, &lo, p3, &u), PQ_ERR_INVAL);
	assert_file_content(p3, c.p, c.len); /* untouched by the failures */
	assert_int_equal(dir_entries(dir), 6);

	b_free(&a);
	b_free(&b);
	b_free(&c);
	b_free(&z);
	b_free(&v);
	tu_rmtree(dir);
	free(dir);
}

static void test_container_malformed(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-bad");
	bytes a = {0}, b = {0}, c = {0}, zone = {0}, t = {0};
	uint8_t pa[100], pb[50];

	fill_random(pa, sizeof(pa), 11);
	fill_random(pb, sizeof(pb), 12);
	mk_leaf(&a, 0x0091, SWPG_TYPE_APP, pa, sizeof(pa));
	mk_leaf(&b, 0x1011, SWPG_TYPE_BOOT, pb, sizeof(pb));
	mk_leaf(&c, 0x1012, SWPG_TYPE_CAL, pb, 0);
	kid zk[] = {{"ZGW1", &a}, {"ECU_011", &b}, {"ECU_012", &c}};
	mk_container(&zone, SWPG_TYPE_ZONE, 0x0091, zk, 3);
	expect_layout_ok(dir, &zone, 4);
	const size_t idx = SWPG_HDR_LEN, plen = zone.len - SWPG_HDR_LEN;
	const uint64_t first = PKG_INDEX_HDR_LEN + 3 * PKG_INDEX_ENTRY_LEN; /* payload offset */

	/* index header: magic, version, entry length, reserved */
	static const size_t ih_bytes[] = {0, 3, 4, 6, 12, 15};
	for (size_t i = 0; i < ARRAY_LEN(ih_bytes); i++) {
		t = b_dup(&zone);
		t.p[idx + ih_bytes[i]] ^= 0x01;
		fix_root(&t);
		expect_layout_bad(dir, &t, "index header");
		b_free(&t);
	}
	/* entry counts: 0, 2, 4, 1025, 2^32-1 */
	static const uint32_t counts[] = {0, 2, 4, PKG_CHILDREN_MAX + 1, UINT32_MAX};
	for (size_t i = 0; i < ARRAY_LEN(counts); i++) {
		t = b_dup(&zone);
		put32le(t.p + idx + 8, counts[i]);
		fix_root(&t);
		expect_layout_bad(dir, &t, "entry count");
		b_free(&t);
	}
	/* a gap before the first entry and between entries */
	t = b_dup(&zone);
	b_insert(&t, SWPG_HDR_LEN + first, "\0", 1);
	for (int i = 0; i < 3; i++)
		put64le(t.p + ENT(i) + 8, get64le(t.p + ENT(i) + 8) + 1);
	fix_root(&t);
	expect_layout_bad(dir, &t, "gap before the first entry");
	b_free(&t);
	t = b_dup(&zone);
	b_insert(&t, SWPG_HDR_LEN + first + a.len + b.len, "\0\0\0\0", 4);
	put64le(t.p + ENT(2) + 8, first + a.len + b.len + 4);
	fix_root(&t);
	expect_layout_bad(dir, &t, "gap between entries");
	b_free(&t);
	/* overlaps: the second entry starts inside the first */
	t = b_dup(&zone);
	put64le(t.p + ENT(1) + 8, first + 10);
	fix_root(&t);
	expect_layout_bad(dir, &t, "overlap");
	b_free(&t);
	{
		/* the first leaf's payload ends with a complete package, which the second
		 * entry points at: sizes and headers are all consistent */
		bytes inner = {0}, outer = {0}, ov = {0};
		uint8_t fill[40] = {0};
		mk_leaf(&inner, 0x1011, SWPG_TYPE_BOOT, pb, sizeof(pb));
		bytes op = {0};
		b_put(&op, fill, sizeof(fill));
		b_put(&op, inner.p, inner.len);
		mk_leaf(&outer, 0x0091, SWPG_TYPE_APP, op.p, op.len);
		kid ok[] = {{"ZGW1", &outer}, {"ECU_011", &inner}};
		mk_container(&ov, SWPG_TYPE_ZONE, 0x0091, ok, 2);
		uint64_t f2 = PKG_INDEX_HDR_LEN + 2 * PKG_INDEX_ENTRY_LEN;
		/* drop the second copy of inner: the second entry now points into the first */
		ov.len -= inner.len;
		put64le(ov.p + ENT(1) + 8, f2 + SWPG_HDR_LEN + sizeof(fill));
		fix_root(&ov);
		expect_layout_bad(dir, &ov, "entry inside another");
		b_free(&inner);
		b_free(&outer);
		b_free(&op);
		b_free(&ov);
	}
	/* self-references: an entry pointing back at the index */
	t = b_dup(&zone);
	put64le(t.p + ENT(0) + 8, 0);
	put64le(t.p + ENT(0) + 16, plen);
	fix_root(&t);
	expect_layout_bad(dir, &t, "entry at offset 0 (the index)");
	b_free(&t);
	t = b_dup(&zone);
	put64le(t.p + ENT(2) + 8, PKG_INDEX_HDR_LEN);
	fix_root(&t);
	expect_layout_bad(dir, &t, "entry pointing into the index");
	b_free(&t);
	/* past the payload: one byte, a huge size, a wrapping offset */
	t = b_dup(&zone);
	put64le(t.p + ENT(2) + 16, c.len + 1);
	fix_root(&t);
	expect_layout_bad(dir, &t, "last entry one byte too long");
	b_free(&t);
	t = b_dup(&zone);
	put64le(t.p + ENT(2) + 16, UINT64_MAX);
	fix_root(&t);
	expect_layout_bad(dir, &t, "size 2^64-1");
	b_free(&t);
	t = b_dup(&zone);
	put64le(t.p + ENT(1) + 8, UINT64_MAX - 10);
	fix_root(&t);
	expect_layout_bad(dir, &t, "offset near 2^64");
	b_free(&t);
	t = b_dup(&zone);
	put64le(t.p + ENT(0) + 16, SWPG_HDR_LEN - 1);
	fix_root(&t);
	expect_layout_bad(dir, &t, "entry smaller than a header");
	b_free(&t);
	/* an entry larger than its package hides a byte after it (hash and offsets agree) */
	t = b_dup(&zone);
	b_insert(&t, SWPG_HDR_LEN + first + a.len, "U", 1);
	put64le(t.p + ENT(0) + 16, a.len + 1);
	put64le(t.p + ENT(1) + 8, first + a.len + 1);
	put64le(t.p + ENT(2) + 8, first + a.len + b.len + 1);
	assert_ok(
	    pq_hash(PQ_HASH_SHA256, t.p + SWPG_HDR_LEN + first, a.len + 1, t.p + ENT(0) + 24));
	fix_root(&t);
	expect_layout_bad(dir, &t, "entry larger than its package");
	b_free(&t);
	/* trailing bytes after the last entry: one byte, an unindexed package */
	t = b_dup(&zone);
	b_put(&t, "\0", 1);
	fix_root(&t);
	expect_layout_bad(dir, &t, "one trailing byte");
	b_free(&t);
	t = b_dup(&zone);
	b_put(&t, c.p, c.len);
	fix_root(&t);
	expect_layout_bad(dir, &t, "trailing package");
	b_free(&t);
	/* the index disagrees with the entry's header: ECU, type, compression, size */
	t = b_dup(&zone);
	put16le(t.p + ENT(1), 0x1013);
	fix_root(&t);
	expect_layout_bad(dir, &t, "index ECU");
	b_free(&t);
	t = b_dup(&zone);
	t.p[ENT(1) + 2] = SWPG_TYPE_APP;
	fix_root(&t);
	expect_layout_bad(dir, &t, "index type");
	b_free(&t);
	t = b_dup(&zone);
	t.p[ENT(2) + 3] = SWPG_COMP_ZSTD;
	fix_root(&t);
	expect_layout_bad(dir, &t, "index compression");
	b_free(&t);
	t = b_dup(&zone);
	t.p[SWPG_HDR_LEN + first + a.len + 6] = SWPG_TYPE_APP; /* ECU_011's header */
	fix_root(&t);
	expect_layout_bad(dir, &t, "header type");
	b_free(&t);
	t = b_dup(&zone);
	t.p[SWPG_HDR_LEN + first + a.len] ^= 0x01; /* ECU_011's magic */
	fix_root(&t);
	expect_layout_bad(dir, &t, "child magic");
	b_free(&t);
	/* reserved entry bytes */
	for (int i = 4; i < 8; i++) {
		t = b_dup(&zone);
		t.p[ENT(1) + (size_t)i] = 0x40;
		fix_root(&t);
		expect_layout_bad(dir, &t, "entry reserved bytes");
		b_free(&t);
	}
	/* names: not NUL-padded, empty, bad characters, duplicates */
	static const char bad_names[][8] = {{'Z', 'G', 0, 'W', '1'},
	                                    {'Z', 'G', 'W', '1', 0, 0, 0, 'x'},
	                                    {0},
	                                    {'Z', '/', '1'},
	                                    {'.', '.'},
	                                    {'A', ' ', 'B'},
	                                    {'\xC3', '\xA9'}};
	for (size_t i = 0; i < ARRAY_LEN(bad_names); i++) {
		t = b_dup(&zone);
		memcpy(t.p + ENT(0) + 56, bad_names[i], 8);
		fix_root(&t);
		expect_layout_bad(dir, &t, "entry name");
		b_free(&t);
	}
	t = b_dup(&zone);
	memcpy(t.p + ENT(2) + 56, t.p + ENT(0) + 56, 8);
	fix_root(&t);
	expect_layout_bad(dir, &t, "duplicate names");
	b_free(&t);
	t = b_dup(&zone);
	memcpy(t.p + ENT(2) + 56, "ABCDEFGH", 8); /* 8 characters need no NUL */
	fix_root(&t);
	expect_layout_ok(dir, &t, 4);
	b_free(&t);

	/* containers where they may not be */
	bytes v = {0}, zz = {0}, vv = {0}, vmg = {0};
	mk_leaf(&vmg, SWPG_ECU_VMG, SWPG_TYPE_APP, pa, 10);
	kid vk[] = {{"VMG", &vmg}, {"ZONE1", &zone}};
	mk_container(&v, SWPG_TYPE_VEHICLE, SWPG_ECU_VMG, vk, 2);
	expect_layout_ok(dir, &v, 6);
	kid zzk[] = {{"ZGW1", &a}, {"ZONE2", &zone}};
	mk_container(&zz, SWPG_TYPE_ZONE, 0x0091, zzk, 2);
	expect_layout_bad(dir, &zz, "zone inside a zone");
	kid zvk[] = {{"ZGW1", &a}, {"V", &v}};
	b_free(&zz);
	mk_container(&zz, SWPG_TYPE_ZONE, 0x0091, zvk, 2);
	expect_layout_bad(dir, &zz, "vehicle inside a zone");
	kid vvk[] = {{"VMG", &vmg}, {"V", &v}};
	mk_container(&vv, SWPG_TYPE_VEHICLE, SWPG_ECU_VMG, vvk, 2);
	expect_layout_bad(dir, &vv, "vehicle inside a vehicle");
	b_free(&vv);
	{
		bytes z2 = {0};
		kid z2k[] = {{"ZGW2", &a}, {"ZONE1", &zone}};
		mk_container(&z2, SWPG_TYPE_ZONE, 0x0092, z2k, 2);
		kid deep[] = {{"VMG", &vmg}, {"ZONE2", &z2}};
		mk_container(&vv, SWPG_TYPE_VEHICLE, SWPG_ECU_VMG, deep, 2);
		expect_layout_bad(dir, &vv, "zone inside a zone inside a vehicle");
		b_free(&z2);
	}
	/* a malformed zone inside a well-formed vehicle */
	{
		bytes zb = b_dup(&zone), vb = {0};
		put32le(zb.p + idx + 8, 0);
		fix_root(&zb);
		kid vbk[] = {{"VMG", &vmg}, {"ZONE1", &zb}};
		mk_container(&vb, SWPG_TYPE_VEHICLE, SWPG_ECU_VMG, vbk, 2);
		expect_layout_bad(dir, &vb, "zone with no entries in a vehicle");
		b_free(&zb);
		b_free(&vb);
	}
	/* an index of no entries (or of one entry) and nothing after it */
	{
		uint8_t ih[PKG_INDEX_HDR_LEN] = {'S', 'W', 'I', 'X', 1, 0, 64, 0};
		bytes eb = {0};
		mk_leaf(&eb, 0x0091, SWPG_TYPE_ZONE, ih, sizeof(ih));
		expect_layout_bad(dir, &eb, "index of 0 entries");
		b_free(&eb);
		ih[8] = 1;
		mk_leaf(&eb, 0x0091, SWPG_TYPE_VEHICLE, ih, sizeof(ih));
		expect_layout_bad(dir, &eb, "index of 1 missing entry");
		b_free(&eb);
	}
	/* a container too small for its index */
	{
		uint8_t small[8] = {'S', 'W', 'I', 'X', 1, 0, 64, 0};
		bytes sb = {0};
		mk_leaf(&sb, 0x0091, SWPG_TYPE_ZONE, small, sizeof(small));
		expect_layout_bad(dir, &sb, "container of 8 bytes");
		b_free(&sb);
	}

	b_free(&a);
	b_free(&b);
	b_free(&c);
	b_free(&zone);
	b_free(&v);
	b_free(&zz);
	b_free(&vv);
	b_free(&vmg);
	tu_rmtree(dir);
	free(dir);
}

/* PKG_CHILDREN_MAX entries in one container are fine, one more is not. */
static void test_container_max_children(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-max");
	const size_t n = PKG_CHILDREN_MAX + 1;
	bytes *leaves = calloc(n, sizeof(*leaves)), t = {0};
	kid *kids = calloc(n, sizeof(*kids));
	char(*names)[9] = calloc(n, sizeof(*names));
	assert_non_null(leaves);
	assert_non_null(kids);
	assert_non_null(names);
	for (size_t i = 0; i < n; i++) {
		uint8_t p = (uint8_t)i;
		mk_leaf(&leaves[i], (uint16_t)(0x1000 + i), SWPG_TYPE_APP, &p, i % 2);
		snprintf(names[i], sizeof(names[i]), "E%zu", i);
		kids[i] = (kid){names[i], &leaves[i]};
	}
	mk_container(&t, SWPG_TYPE_ZONE, 0x0091, kids, n - 1);
	expect_layout_ok(dir, &t, n);
	b_free(&t);
	mk_container(&t, SWPG_TYPE_ZONE, 0x0091, kids, n);
	expect_layout_bad(dir, &t, "1025 entries");
	b_free(&t);
	for (size_t i = 0; i < n; i++)
		b_free(&leaves[i]);
	free(leaves);
	free(kids);
	free(names);
	tu_rmtree(dir);
	free(dir);
}

/* Verifying holds one leaf's decoder at a time: heap use, sampled at every progress call,
 * does not grow with the number of leaves. */
struct heap_watch {
	size_t base, peak;
};

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static void heap_fn(uint64_t done, uint64_t total, void *user)
{
	struct heap_watch *w = user;
	size_t h = heap_in_use();
	(void)done;
	(void)total;
	if (h > w->peak)
		w->peak = h;
}

static void test_verify_memory(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-mem");
	char img[PATH_MAX], leaf[PATH_MAX], zone[PATH_MAX];
	enum {
		LEAVES = 24
	};
	pkg_child kids[LEAVES];
	char names[LEAVES][9];
	pkg_unit u;
	uint8_t *data = make_data(MIB, false, 8);

	tu_join(img, sizeof(img), dir, "img.bin");
	tu_join(leaf, sizeof(leaf), dir, "leaf.swpg");
	tu_join(zone, sizeof(zone), dir, "zone.swpg");
	tu_write_file(img, data, MIB);
	free(data);
	pkg_leaf_opts o = leaf_opts(SWPG_COMP_ZSTD);
	assert_ok(pkg_build_leaf(img, &o, leaf, &u));
	for (int i = 0; i < LEAVES; i++) {
		snprintf(names[i], sizeof(names[i]), "E%d", i);
		kids[i] = (pkg_child){leaf, names[i]};
	}
	pkg_container_opts co = {.type = SWPG_TYPE_ZONE, .ecu = 0x0091, .timestamp = 1};
	assert_ok(pkg_build_container(kids, LEAVES, &co, zone, &u));

	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n = 0;
	pkg_verify_report rep;
	struct heap_watch w;
	assert_ok(pkg_open(zone, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, LEAVES + 1);
	w.base = w.peak = heap_in_use();
	pkg_progress p = {.fn = heap_fn, .user = &w};
	assert_ok(pkg_verify(r, &rep, &p));
	assert_int_equal(rep.leaves, LEAVES);
	/* a leaf's decoder needs about 1.3 MiB here; all of them at once would be ~30 MiB */
	if (w.peak - w.base > 8 * MIB)
		fail_msg("verifying %d leaves used %zu KiB of heap", LEAVES,
		         (w.peak - w.base) >> 10);
	pkg_close(r);
	tu_rmtree(dir);
	free(dir);
}

/* ---- 7. deltas ------------------------------------------------------------------------- */

/* Outputs are renamed into place: never over a device, directory, FIFO or link. */
static void test_output_path_guard(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkgout");
	char img[600], sub[600], fifo[600], link[600], out[600];
	tu_join(img, sizeof(img), dir, "img.bin");
	tu_write_file(img, "image bytes", 11);
	tu_join(sub, sizeof(sub), dir, "adir");
	make_dir(sub);
	tu_join(fifo, sizeof(fifo), dir, "fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	tu_join(link, sizeof(link), dir, "link");
	assert_int_equal(symlink(img, link), 0);
	pkg_leaf_opts o = {.ecu = 0x1011, .type = SWPG_TYPE_APP, .version = {1, 0, 0, 0}};
	pkg_unit u;
	const char *bad[] = {sub, fifo, link};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(pkg_build_leaf(img, &o, bad[i], &u), PQ_ERR_INVAL);
		assert_int_equal(pq_file_write_atomic(bad[i], "x", 1, 0644, true), PQ_ERR_INVAL);
	}
	struct stat st;
	assert_int_equal(lstat(fifo, &st), 0);
	assert_true(S_ISFIFO(st.st_mode)); /* untouched */
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* a regular file is replaced as usual */
	tu_join(out, sizeof(out), dir, "out.swpg");
	tu_write_file(out, "old", 3);
	assert_int_equal(pkg_build_leaf(img, &o, out, &u), PQ_OK);
	assert_int_equal(file_size(out), u.size);
	tu_rmtree(dir);
	free(dir);
}

/* extract --image checks the child's index SHA-256, so a header field that no CRC covers
 * (here the version) cannot be changed unnoticed. */
static void test_extract_image_checks_index_hash(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkgsha");
	char img[600], zone[600], vmg[600], bundle[600], out[600];
	tu_join(img, sizeof(img), dir, "img.bin");
	uint8_t *data = make_data(5000, true, 7);
	tu_write_file(img, data, 5000);
	tu_join(zone, sizeof(zone), dir, "leaf.swpg");
	tu_join(vmg, sizeof(vmg), dir, "vmg.swpg");
	tu_join(bundle, sizeof(bundle), dir, "bundle.swpg");
	pkg_unit u;
	pkg_leaf_opts o = {.ecu = SWPG_ECU_VMG,
	                   .type = SWPG_TYPE_APP,
	                   .version = {1, 0, 0, 0},
	                   .compression = SWPG_COMP_ZSTD};
	assert_int_equal(pkg_build_leaf(img, &o, vmg, &u), PQ_OK);
	pkg_child kids[] = {{.path = vmg, .name = "VMG"}};
	pkg_container_opts co = {.type = SWPG_TYPE_VEHICLE, .ecu = SWPG_ECU_VMG};
	assert_int_equal(pkg_build_container(kids, 1, &co, bundle, &u), PQ_OK);
	/* the VMG leaf starts after the root header and a one-entry index */
	size_t len = 0;
	uint8_t *b = read_file(bundle, &len);
	size_t ver = SWPG_HDR_LEN + PKG_INDEX_HDR_LEN + PKG_INDEX_ENTRY_LEN + 16;
	assert_int_equal(b[ver], 1);
	b[ver] = 9; /* the leaf's major version */
	tu_write_file(bundle, b, len);
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	tu_join(out, sizeof(out), dir, "vmg.img");
	assert_int_equal(pkg_open(bundle, &r), PQ_OK);
	assert_int_equal(pkg_find(r, "VMG", &e), PQ_OK);
	assert_int_equal(pkg_extract_image(r, e, NULL, out, NULL), PQ_ERR_VERIFY);
	assert_false(exists(out));
	pkg_close(r);
	free(b);
	free(data);
	tu_rmtree(dir);
	free(dir);
}

static void test_delta(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("pkg-delta");
	char base[PATH_MAX], target[PATH_MAX], pkg[PATH_MAX], out[PATH_MAX], other[PATH_MAX];
	char bad[PATH_MAX], full[PATH_MAX];
	size_t blen = 200000, tlen = 0, plen = 0;
	uint8_t *b = make_data(blen, false, 71), *tg = mutate(b, blen, &tlen, 72);
	uint8_t bsha[32], tsha[32];
	pkg_unit u;
	pkg_reader *r = NULL;
	const pkg_entry *all;
	size_t n = 0;
	pkg_verify_report rep;

	tu_join(base, sizeof(base), dir, "base.bin");
	tu_join(target, sizeof(target), dir, "target.bin");
	tu_join(pkg, sizeof(pkg), dir, "delta.swpg");
	tu_join(full, sizeof(full), dir, "full.swpg");
	tu_join(out, sizeof(out), dir, "out.bin");
	tu_join(other, sizeof(other), dir, "other.bin");
	tu_join(bad, sizeof(bad), dir, "bad.swpg");
	tu_write_file(base, b, blen);
	tu_write_file(target, tg, tlen);
	assert_ok(pq_hash(PQ_HASH_SHA256, b, blen, bsha));
	assert_ok(pq_hash(PQ_HASH_SHA256, tg, tlen, tsha));

	pkg_leaf_opts o = leaf_opts(SWPG_COMP_ZSTD);
	o.base_path = base;
	o.base_version = (swpg_version){1, 4, 10, 2};
	assert_ok(pkg_build_leaf(target, &o, pkg, &u));
	assert_true(u.delta);
	assert_int_equal(u.hdr.compression, SWPG_COMP_DELTA);
	assert_int_equal(u.hdr.uncompressed_size, tlen);
	assert_int_equal(u.image_size, tlen);
	assert_memory_equal(u.image_sha256, tsha, 32);
	assert_memory_equal(u.base_sha256, bsha, 32);
	assert_int_equal(u.base_size, blen);
	assert_true(u.hdr.payload_size < tlen / 10); /* it really patches from the base */
	/* header: base version at 32, hash prefix at 36..43 and 52..63; then the descriptor */
	uint8_t *raw = read_file(pkg, &plen);
	assert_int_equal(plen, u.size);
	static const uint8_t bv[4] = {1, 4, 10, 2};
	assert_int_equal(raw[7], SWPG_COMP_DELTA);
	assert_memory_equal(raw + 32, bv, 4);
	assert_memory_equal(raw + 36, bsha, 8);
	assert_memory_equal(raw + 52, bsha + 8, 12);
	assert_int_equal(pq_crc32(0, raw + SWPG_HDR_LEN, plen - SWPG_HDR_LEN), u.hdr.crc32);
	const uint8_t *desc = raw + SWPG_HDR_LEN;
	assert_memory_equal(desc, "SWDL", 4);
	assert_int_equal(desc[4], 2); /* the segmented delta */
	assert_int_equal(get64le(desc + 8), blen);
	assert_memory_equal(desc + 16, bsha, 32);
	assert_int_equal(get64le(desc + 48), tlen);
	assert_memory_equal(desc + 56, tsha, 32);

	/* the same image without a base is far larger */
	o.base_path = NULL;
	pkg_unit fu;
	assert_ok(pkg_build_leaf(target, &o, full, &fu));
	assert_true(u.size * 10 < fu.size);

	assert_ok(pkg_open(pkg, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_int_equal(n, 1);
	assert_ok(pkg_verify(r, &rep, NULL)); /* without the base: descriptor and CRC */
	assert_ok(pkg_apply_delta(r, &all[0], base, out, NULL));
	assert_file_content(out, tg, tlen);
	unlink(out);
	assert_ok(pkg_extract_image(r, &all[0], base, out, NULL));
	assert_file_content(out, tg, tlen);
	unlink(out);
	assert_rc(pkg_extract_image(r, &all[0], NULL, out, NULL), PQ_ERR_INVAL);
	assert_false(exists(out));

	/* a wrong base: one byte changed, one byte shorter, missing */
	b[blen / 3] ^= 0x01;
	tu_write_file(other, b, blen);
	b[blen / 3] ^= 0x01;
	size_t before = dir_entries(dir);
	assert_rc(pkg_apply_delta(r, &all[0], other, out, NULL), PQ_ERR_VERIFY);
	assert_false(exists(out));
	assert_rc(pkg_extract_image(r, &all[0], other, out, NULL), PQ_ERR_VERIFY);
	assert_false(exists(out));
	tu_write_file(other, b, blen - 1);
	assert_rc(pkg_apply_delta(r, &all[0], other, out, NULL), PQ_ERR_VERIFY);
	assert_rc(pkg_apply_delta(r, &all[0], target, out, NULL), PQ_ERR_VERIFY);
	unlink(other);
	assert_rc(pkg_apply_delta(r, &all[0], other, out, NULL), PQ_ERR_NOTFOUND);
	assert_false(exists(out));
	assert_int_equal(dir_entries(dir), before - 1);
	pkg_close(r);

	/* a full package is no delta */
	assert_ok(pkg_open(full, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_INVAL);
	pkg_close(r);

	/* corruption: a descriptor byte that only the CRC covers (the target hash) */
	uint8_t *c = malloc(plen);
	assert_non_null(c);
	memcpy(c, raw, plen);
	c[SWPG_HDR_LEN + 56 + 5] ^= 0x10;
	tu_write_file(bad, c, plen);
	assert_ok(pkg_open(bad, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_VERIFY);
	assert_non_null(strstr(pq_err_detail(), "CRC"));
	assert_false(exists(out));
	assert_rc(pkg_verify(r, &rep, NULL), PQ_ERR_VERIFY);
	pkg_close(r);
	/* ... with the CRC fixed up, the target hash still catches it */
	{
		swpg_header h;
		assert_ok(swpg_decode(c, &h));
		h.crc32 = pq_crc32(0, c + SWPG_HDR_LEN, plen - SWPG_HDR_LEN);
		assert_ok(swpg_encode(&h, c));
		tu_write_file(bad, c, plen);
		assert_ok(pkg_open(bad, &r));
		assert_ok(pkg_list(r, &all, &n));
		assert_ok(pkg_verify(r, &rep, NULL)); /* verify cannot tell without the base */
		assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_VERIFY);
		assert_false(exists(out));
		pkg_close(r);
	}
	/* a byte of the compressed patch: never a wrong image, never an output file */
	const size_t at[] = {SWPG_HDR_LEN + PKG_DELTA_DESC_LEN + 1,
	                     SWPG_HDR_LEN + PKG_DELTA_DESC_LEN + (plen - SWPG_HDR_LEN) / 2,
	                     plen - 1};
	for (size_t i = 0; i < ARRAY_LEN(at); i++) {
		size_t pos = at[i];
		for (int fixcrc = 0; fixcrc < 2; fixcrc++) {
			memcpy(c, raw, plen);
			c[pos] ^= 0x21;
			if (fixcrc) {
				swpg_header h;
				assert_ok(swpg_decode(c, &h));
				h.crc32 = pq_crc32(0, c + SWPG_HDR_LEN, plen - SWPG_HDR_LEN);
				assert_ok(swpg_encode(&h, c));
			}
			tu_write_file(bad, c, plen);
			assert_ok(pkg_open(bad, &r));
			assert_ok(pkg_list(r, &all, &n));
			int rc = pkg_apply_delta(r, &all[0], base, out, NULL);
			if (rc != PQ_ERR_VERIFY && rc != PQ_ERR_FORMAT)
				fail_msg("corrupt delta byte %zu (crc fixed: %d): %d", pos, fixcrc,
				         rc);
			if (!fixcrc)
				assert_rc(pkg_verify(r, &rep, NULL), PQ_ERR_VERIFY);
			assert_false(exists(out));
			pkg_close(r);
		}
	}
	/* the header's CRC itself */
	memcpy(c, raw, plen);
	c[28] ^= 0x80;
	tu_write_file(bad, c, plen);
	assert_ok(pkg_open(bad, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_VERIFY);
	assert_false(exists(out));
	pkg_close(r);
	/* a descriptor that disagrees with the header (base hash, target size) */
	static const size_t dpos[] = {0, 4, 16, 16 + 19, 48};
	for (size_t i = 0; i < ARRAY_LEN(dpos); i++) {
		memcpy(c, raw, plen);
		/* the version byte: 2 ^ 1 would be 3, a valid version */
		c[SWPG_HDR_LEN + dpos[i]] ^= dpos[i] == 4 ? 0x40 : 0x01;
		tu_write_file(bad, c, plen);
		assert_ok(pkg_open(bad, &r));
		assert_ok(pkg_list(r, &all, &n));
		assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_FORMAT);
		assert_rc(pkg_verify(r, &rep, NULL), PQ_ERR_FORMAT);
		assert_false(exists(out));
		pkg_close(r);
	}
	free(c);
	free(raw);

	/* empty base, empty target */
	tu_write_file(other, b, 0);
	o.base_path = other;
	assert_ok(pkg_build_leaf(target, &o, pkg, &u));
	assert_ok(pkg_open(pkg, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_ok(pkg_apply_delta(r, &all[0], other, out, NULL));
	assert_file_content(out, tg, tlen);
	assert_rc(pkg_apply_delta(r, &all[0], base, out, NULL), PQ_ERR_VERIFY);
	pkg_close(r);
	unlink(out);
	o.base_path = base;
	assert_ok(pkg_build_leaf(other, &o, pkg, &u));
	assert_int_equal(u.hdr.uncompressed_size, 0);
	assert_ok(pkg_open(pkg, &r));
	assert_ok(pkg_list(r, &all, &n));
	assert_ok(pkg_verify(r, &rep, NULL));
	assert_ok(pkg_apply_delta(r, &all[0], base, out, NULL));
	assert_file_content(out, tg, 0);
	pkg_close(r);

	free(b);
	free(tg);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swpg_encode_layout),
	    cmocka_unit_test(test_swpg_decode_rejects),
	    cmocka_unit_test(test_swpg_names),
	    cmocka_unit_test(test_swpg_versions),
	    cmocka_unit_test(test_swpg_ecu_ids),
	    cmocka_unit_test(test_codec_roundtrip),
	    cmocka_unit_test(test_codec_rejects),
	    cmocka_unit_test(test_leaf_build_extract),
	    cmocka_unit_test(test_leaf_failures),
	    cmocka_unit_test(test_bundle_build),
	    cmocka_unit_test(test_bundle_wide),
	    cmocka_unit_test(test_bundle_add_rejects),
	    cmocka_unit_test(test_bundle_corruption),
	    cmocka_unit_test(test_container_conformance),
	    cmocka_unit_test(test_container_malformed),
	    cmocka_unit_test(test_container_max_children),
	    cmocka_unit_test(test_verify_memory),
	    cmocka_unit_test(test_delta),
	    cmocka_unit_test(test_output_path_guard),
	    cmocka_unit_test(test_extract_image_checks_index_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
