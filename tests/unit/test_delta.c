/* test_delta.c: the segmented delta (src/pkg/delta_*.c): round trips on the shapes a firmware
 * update takes, within an apply memory limit; refusals; an apply killed half-way that
 * resumes; corruption anywhere in the payload; version-1 deltas still applying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "crypto/hash.h"
#include "pkg/codec.h"
#include "pkg/pkg.h"
#include "pkg/swpg.h"
#include "delta_fixture.h"
#include "testutil.h"

#define MIB (1u << 20)

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rng(&s) >> 24);
}

/* An image like firmware: code-like blocks (a few opcodes with varying operands) between
 * random (compressed data) blocks. */
static uint8_t *make_image(size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n + 1);
	uint64_t s = seed + 7;
	assert_non_null(p);
	for (size_t i = 0; i < n;) {
		size_t blk = 4096 + rng(&s) % 60000;
		if (blk > n - i)
			blk = n - i;
		if (rng(&s) % 3 == 0) {
			fill_random(p + i, blk, rng(&s));
		} else {
			static const uint8_t ops[] = {0x48, 0x89, 0xe8, 0x8b,
			                              0x0f, 0x85, 0xc3, 0x90};
			for (size_t k = 0; k < blk; k++)
				p[i + k] =
				    k % 5 == 4 ? (uint8_t)(rng(&s) & 0x0f) : ops[(i + k) % 8];
		}
		i += blk;
	}
	return p;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	uint8_t *p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

static void assert_file_is(const char *path, const uint8_t *data, size_t len)
{
	size_t n = 0;
	uint8_t *p = read_all(path, &n);
	assert_int_equal(n, len);
	if (len && memcmp(p, data, len) != 0)
		fail_msg("%s differs from the target", path);
	free(p);
}

static void build(const delta_files *f, uint64_t apply_limit, pkg_unit *u)
{
	pkg_leaf_opts o = {.ecu = 0x1011,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 0, 0, 0},
	                   .timestamp = 1,
	                   .base_path = f->base,
	                   .base_version = {1, 0, 0, 0},
	                   .apply_limit = apply_limit};
	assert_ok(pkg_build_leaf(f->target, &o, f->pkg, u));
}

/* ---- shapes ------------------------------------------------------------------------------- */

typedef enum {
	SAME,
	EDITS,
	INSERT,
	DELETE,
	MOVE,
	NEW,
	SHAPES
} shape;
static const char *const shape_names[] = {"same", "edits", "insert", "delete", "move", "new"};

/* The target of shape s from base b (n bytes), in *len. */
static uint8_t *shaped(const uint8_t *b, size_t n, shape s, size_t *len)
{
	uint8_t *t = malloc(n + 8192);
	assert_non_null(t);
	*len = n;
	memcpy(t, b, n);
	switch (s) {
	case EDITS:
		for (size_t i = 1; i <= 10; i++)
			fill_random(t + i * (n / 12), 1024, i);
		break;
	case INSERT:
		memmove(t + n / 3 + 4096, t + n / 3, n - n / 3);
		fill_random(t + n / 3, 4096, 99);
		*len = n + 4096;
		break;
	case DELETE:
		memmove(t + n / 2, t + n / 2 + 8192, n - n / 2 - 8192);
		*len = n - 8192;
		break;
	case MOVE: /* two 512 KiB blocks swap places */
		memcpy(t + n / 4, b + n / 2, 512u << 10);
		memcpy(t + n / 2, b + n / 4, 512u << 10);
		break;
	case NEW:
		fill_random(t, n, 4242);
		break;
	default:
		break;
	}
	return t;
}

/* Every shape round-trips exactly, with the default limit (one window holds the base) and
 * with the smallest (many segments, windows of base ranges), and stays within the limit;
 * a small change gives a small delta. */
static void test_shapes(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-shapes");
	size_t n = 3 * MIB;
	uint8_t *b = make_image(n, 1);
	tu_write_file(f.base, b, n);
	const uint64_t limits[] = {0, PKG_DELTA_APPLY_MEM_MIN};
	for (int s = 0; s < SHAPES; s++) {
		size_t tlen = 0;
		uint8_t *t = shaped(b, n, (shape)s, &tlen);
		tu_write_file(f.target, t, tlen);
		for (size_t l = 0; l < 2; l++) {
			pkg_unit u;
			pkg_apply_opts o = {.mem_limit = limits[l]};
			build(&f, limits[l], &u);
			pkg_delta_info di = delta_info_of(f.pkg);
			assert_int_equal(di.version, 2);
			uint64_t lim = limits[l] ? limits[l] : PKG_DELTA_APPLY_MEM_DEFAULT;
			if (di.apply_memory > lim)
				fail_msg("%s: needs %llu bytes, limit %llu", shape_names[s],
				         (unsigned long long)di.apply_memory,
				         (unsigned long long)lim);
			assert_ok(delta_apply(&f, &o));
			assert_file_is(f.out, t, tlen);
			assert_false(delta_exists(f.part));
			assert_int_equal(o.memory_needed, di.apply_memory);
			if (s != NEW && u.size > 64 * 1024)
				fail_msg("%s (limit %llu): %llu-byte delta for a small change",
				         shape_names[s], (unsigned long long)lim,
				         (unsigned long long)u.size);
			if (s == NEW && l == 1 && di.segments < 6)
				fail_msg("3 MiB of new data in 8 MiB: %u segments", di.segments);
			unlink(f.out);
		}
		free(t);
	}
	free(b);
	delta_files_free(&f);
}

/* An unchanged 48 MiB stretch costs a few bytes, not a segment per few MiB. */
static void test_small_change_large_image(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-large");
	size_t n = 48 * MIB, tlen = 0;
	uint8_t *b = malloc(n);
	assert_non_null(b);
	fill_random(b, n, 5);
	tu_write_file(f.base, b, n);
	uint8_t *t = shaped(b, n, EDITS, &tlen);
	memcpy(t + n / 2, "a one-kilobyte change in the middle", 35);
	tu_write_file(f.target, t, tlen);
	pkg_unit u;
	pkg_apply_opts o = {0};
	build(&f, 0, &u);
	if (u.size > 12 * 1024 + 1024) /* the ten random 1 KiB edits, and little else */
		fail_msg("48 MiB, ten 1 KiB edits: %llu-byte delta", (unsigned long long)u.size);
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, t, tlen);
	free(b);
	free(t);
	delta_files_free(&f);
}

/* ---- limits -------------------------------------------------------------------------------- */

static void test_memory_limits(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-limits");
	size_t n = 3 * MIB;
	uint8_t *b = make_image(n, 2), *t = malloc(n);
	assert_non_null(t);
	fill_random(t, n, 77); /* all new: the whole base is the window */
	tu_write_file(f.base, b, n);
	tu_write_file(f.target, t, n);
	pkg_unit u;
	build(&f, 0, &u);
	pkg_delta_info di = delta_info_of(f.pkg);
	assert_true(di.apply_memory > PKG_DELTA_APPLY_MEM_MIN);
	/* a vehicle with less memory refuses it before writing anything */
	pkg_apply_opts o = {.mem_limit = PKG_DELTA_APPLY_MEM_MIN};
	assert_rc(delta_apply(&f, &o), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "needs"));
	assert_false(delta_exists(f.out));
	assert_false(delta_exists(f.part));
	/* made for that vehicle, it fits */
	build(&f, PKG_DELTA_APPLY_MEM_MIN, &u);
	assert_true(delta_info_of(f.pkg).apply_memory <= PKG_DELTA_APPLY_MEM_MIN);
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, t, n);
	/* limits that cannot work are refused clearly */
	pkg_leaf_opts lo = {
	    .ecu = 0x1011, .type = SWPG_TYPE_APP, .base_path = f.base, .apply_limit = 4 * MIB};
	assert_rc(pkg_build_leaf(f.target, &lo, f.pkg, &u), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "below"));
	lo.apply_limit = 0;
	lo.mem_limit = 32 * MIB;
	assert_rc(pkg_build_leaf(f.target, &lo, f.pkg, &u), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "memory limit"));
	free(b);
	free(t);
	delta_files_free(&f);
}

/* A caller that asks to stop gets PQ_ERR_CANCELLED and no output. */
static void test_cancel(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-cancel");
	size_t n = MIB, tlen = 0;
	uint8_t *b = make_image(n, 9), *t = shaped(b, n, EDITS, &tlen);
	tu_write_file(f.base, b, n);
	tu_write_file(f.target, t, tlen);
	atomic_int stop = 1;
	pkg_leaf_opts o = {.ecu = 0x1011,
	                   .type = SWPG_TYPE_APP,
	                   .base_path = f.base,
	                   .progress = {.cancel = &stop}};
	pkg_unit u;
	assert_rc(pkg_build_leaf(f.target, &o, f.pkg, &u), PQ_ERR_CANCELLED);
	assert_false(delta_exists(f.pkg));
	atomic_store(&stop, 0);
	assert_ok(pkg_build_leaf(f.target, &o, f.pkg, &u));
	atomic_store(&stop, 1);
	pkg_apply_opts ao = {.progress = {.cancel = &stop}};
	assert_rc(delta_apply(&f, &ao), PQ_ERR_CANCELLED);
	assert_false(delta_exists(f.out));
	assert_false(delta_exists(f.part));
	free(b);
	free(t);
	delta_files_free(&f);
}

/* ---- resuming -------------------------------------------------------------------------------- */

typedef struct {
	uint64_t kill_at;
} killer;

static void kill_fn(uint64_t done, uint64_t total, void *user)
{
	(void)total;
	const killer *k = user;
	if (done >= k->kill_at)
		_exit(3); /* as abrupt as a power loss for this process: no cleanup runs */
}

/* Runs an apply (resumable or not) in a child that dies once kill_at target bytes are
 * written. */
static void apply_killed_as(const delta_files *f, uint64_t kill_at, bool resume)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		killer k = {kill_at};
		pkg_apply_opts o = {.mem_limit = PKG_DELTA_APPLY_MEM_MIN,
		                    .resume = resume,
		                    .progress = {kill_fn, &k}};
		_exit(delta_apply(f, &o) == PQ_OK ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
}

static void apply_killed(const delta_files *f, uint64_t kill_at)
{
	apply_killed_as(f, kill_at, true);
}

/* Applies f's delta resumably (as the agent does), checks the exact target t of n bytes
 * results, and returns how many bytes were taken over from an earlier apply. */
static uint64_t resume_apply(const delta_files *f, const uint8_t *t, size_t n)
{
	pkg_apply_opts o = {.mem_limit = PKG_DELTA_APPLY_MEM_MIN, .resume = true};
	assert_ok(delta_apply(f, &o));
	assert_file_is(f->out, t, n);
	return o.resumed_bytes;
}

static void test_resume(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-resume");
	size_t n = 4 * MIB;
	uint8_t *b = make_image(n, 3), *t = malloc(n);
	assert_non_null(t);
	memcpy(t, b, n);
	fill_random(t + MIB, 2 * MIB, 8); /* 2 MiB of new data: several segments */
	tu_write_file(f.base, b, n);
	tu_write_file(f.target, t, n);
	pkg_unit u;
	build(&f, PKG_DELTA_APPLY_MEM_MIN, &u);
	assert_true(delta_info_of(f.pkg).segments >= 3);

	apply_killed(&f, 1);
	assert_true(delta_exists(f.part));
	assert_true(delta_exists(f.ckpt));
	assert_false(delta_exists(f.out));
	uint64_t resumed = resume_apply(&f, t, n);
	assert_true(resumed > 0 && resumed < n);
	assert_false(delta_exists(f.part));
	assert_false(delta_exists(f.ckpt));

	/* bytes past the checked segments (a longer partial output) are cut, not kept */
	unlink(f.out);
	apply_killed(&f, 1);
	{
		FILE *fp = fopen(f.part, "ab");
		assert_non_null(fp);
		uint8_t junk[4096];
		fill_random(junk, sizeof(junk), 31);
		for (int i = 0; i < 512; i++)
			assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
		fclose(fp);
	}
	assert_true(resume_apply(&f, t, n) > 0);

	/* a damaged partial output is not trusted: the apply starts over */
	unlink(f.out);
	apply_killed(&f, 2 * MIB);
	size_t plen = 0;
	uint8_t *p = read_all(f.part, &plen);
	assert_true(plen > 100);
	p[100] ^= 0xff;
	tu_write_file(f.part, p, plen);
	free(p);
	assert_int_equal(resume_apply(&f, t, n), 0);

	/* an apply without resumption leaves no checkpoint behind for a later one to trust */
	unlink(f.out);
	apply_killed(&f, 1);
	apply_killed_as(&f, 1, false);
	assert_int_equal(resume_apply(&f, t, n), 0);

	/* a checkpoint of another delta is not taken over either */
	unlink(f.out);
	apply_killed(&f, 1);
	t[n - 1] ^= 1;
	tu_write_file(f.target, t, n);
	build(&f, PKG_DELTA_APPLY_MEM_MIN, &u);
	assert_int_equal(resume_apply(&f, t, n), 0);
	free(b);
	free(t);
	delta_files_free(&f);
}

/* ---- corruption ------------------------------------------------------------------------------ */

/* A changed byte anywhere in the payload, with the CRC fixed up so that only the delta's own
 * checks can see it: an error, never an output or a partial file. */
static void test_corruption(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-corrupt");
	size_t n = 2 * MIB, tlen = 0;
	uint8_t *b = make_image(n, 4);
	uint8_t *t = shaped(b, n, EDITS, &tlen);
	tu_write_file(f.base, b, n);
	tu_write_file(f.target, t, tlen);
	pkg_unit u;
	build(&f, PKG_DELTA_APPLY_MEM_MIN, &u);
	size_t plen = 0;
	uint8_t *raw = read_all(f.pkg, &plen), *c = malloc(plen);
	assert_non_null(c);
	uint64_t s = 11;
	for (int i = 0; i < 60; i++) {
		size_t pos = SWPG_HDR_LEN + rng(&s) % (plen - SWPG_HDR_LEN);
		memcpy(c, raw, plen);
		c[pos] ^= (uint8_t)(1 + rng(&s) % 255);
		swpg_header h;
		assert_ok(swpg_decode(c, &h));
		h.crc32 = pq_crc32(0, c + SWPG_HDR_LEN, plen - SWPG_HDR_LEN);
		assert_ok(swpg_encode(&h, c));
		tu_write_file(f.pkg, c, plen);
		pkg_apply_opts o = {.resume = i % 2 == 0};
		int rc = delta_apply(&f, &o);
		if (rc == PQ_OK) { /* a byte nothing reads back (none should exist) */
			fail_msg("a changed byte at %zu went unnoticed", pos);
		}
		assert_false(delta_exists(f.out));
		assert_false(delta_exists(f.part));
	}
	/* truncated */
	tu_write_file(f.pkg, raw, plen - 1);
	pkg_apply_opts o = {0};
	assert_true(delta_apply(&f, &o) != PQ_OK);
	assert_false(delta_exists(f.out));
	free(raw);
	free(c);
	free(b);
	free(t);
	delta_files_free(&f);
}

/* ---- version 1 --------------------------------------------------------------------------------
 */

static int append_sink(const uint8_t *data, size_t len, void *user)
{
	FILE *fp = user;
	return fwrite(data, 1, len, fp) == len ? PQ_OK : PQ_ERR_IO;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* A delta as pqota wrote it before version 2 (one zstd frame patched from the base) still
 * applies. */
static void test_version1_applies(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "delta-v1");
	size_t n = 300000, tlen = 0;
	uint8_t *b = make_image(n, 6);
	uint8_t *t = shaped(b, n, INSERT, &tlen);
	uint8_t desc[PKG_DELTA_DESC_LEN] = {'S', 'W', 'D', 'L', 1}, hdr[SWPG_HDR_LEN];
	put64(desc + 8, n);
	assert_ok(pq_hash(PQ_HASH_SHA256, b, n, desc + 16));
	put64(desc + 48, tlen);
	assert_ok(pq_hash(PQ_HASH_SHA256, t, tlen, desc + 56));
	tu_write_file(f.base, b, n);
	FILE *fp = fopen(f.pkg, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(hdr, 1, sizeof(hdr), fp), sizeof(hdr));
	assert_int_equal(fwrite(desc, 1, sizeof(desc), fp), sizeof(desc));
	pkg_enc *e = NULL;
	assert_ok(pkg_enc_new(SWPG_COMP_DELTA, 19, tlen, b, n, &e));
	assert_ok(pkg_enc_feed(e, t, tlen, true, append_sink, fp));
	pkg_enc_free(e);
	long end = ftell(fp);
	fclose(fp);
	size_t plen = 0;
	uint8_t *raw = read_all(f.pkg, &plen);
	assert_int_equal(plen, (size_t)end);
	swpg_header h = {.target_ecu_id = 0x1011,
	                 .software_type = SWPG_TYPE_APP,
	                 .compression = SWPG_COMP_DELTA,
	                 .payload_size = (uint32_t)(plen - SWPG_HDR_LEN),
	                 .uncompressed_size = (uint32_t)tlen,
	                 .version = {2, 0, 0, 0},
	                 .base_version = {1, 0, 0, 0},
	                 .crc32 = pq_crc32(0, raw + SWPG_HDR_LEN, plen - SWPG_HDR_LEN)};
	memcpy(h.base_sha256_prefix, desc + 16, SWPG_BASE_HASH_PREFIX);
	assert_ok(swpg_encode(&h, raw));
	tu_write_file(f.pkg, raw, plen);
	assert_int_equal(delta_info_of(f.pkg).version, 1);
	pkg_apply_opts o = {0};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, t, tlen);
	/* its window is the whole base and target: a small limit refuses it */
	unlink(f.out);
	o.mem_limit = 4 * MIB;
	assert_rc(delta_apply(&f, &o), PQ_ERR_RANGE);
	assert_false(delta_exists(f.out));
	free(raw);
	free(b);
	free(t);
	delta_files_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shapes),        cmocka_unit_test(test_small_change_large_image),
	    cmocka_unit_test(test_memory_limits), cmocka_unit_test(test_resume),
	    cmocka_unit_test(test_corruption),    cmocka_unit_test(test_version1_applies),
	    cmocka_unit_test(test_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
