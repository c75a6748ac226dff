/* delta_index.c: the base image's block index and the search for long exact matches, the
 * coarse half of the delta encoder (delta_enc.c compresses what is left with zstd).
 *
 * The index hashes the PKG__IX_WIN bytes at every stride-th offset of the base into an open
 * addressing table of 32-bit block numbers, so it takes 4 bytes per slot whatever the image
 * holds; the stride grows with the base to keep the table within its budget (casync and
 * rsync index blocks the same way). Every target offset is then looked up: a match at least
 * PKG__IX_WIN + stride - 1 bytes long always covers one indexed block, so it is found (in
 * long stretches of new data, where probes are sparser, one of PKG__IX_WIN + 7 * stride), and
 * is then extended both ways byte by byte. The diagonal of the last match (base minus target
 * offset) is tried first at every offset, so a small edit costs a few comparisons, not a
 * lookup per byte, and an unchanged image is one long match found at memory speed. */
#include "pkg/delta.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PKG__IX_WIN        32 /* bytes hashed per block */
#define PKG__IX_STRIDE_MIN 16
#define PKG__IX_STRIDE_MAX 4096
#define PKG__IX_PROBES     8 /* slots tried per insert and lookup */

struct pkg__d2_index {
	const uint8_t *base;
	uint64_t base_len;
	uint32_t stride;
	uint32_t *slot; /* block number + 1; 0 is empty */
	uint64_t mask;
};

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* The hash of PKG__IX_WIN bytes at p. */
static uint64_t win_hash(const uint8_t *p)
{
	uint64_t h = load64(p) * 0x9E3779B97F4A7C15ull;
	h ^= load64(p + 8) * 0xC2B2AE3D27D4EB4Full;
	h = (h << 31 | h >> 33) ^ load64(p + 16) * 0x165667B19E3779F9ull;
	h ^= load64(p + 24) * 0xD6E8FEB86659FD93ull;
	h ^= h >> 29;
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ h >> 32;
}

/* Table slots for `blocks` blocks: a power of two, at least twice as many. */
static uint64_t slots_for(uint64_t blocks)
{
	uint64_t s = 1024;
	while (s < 2 * blocks)
		s <<= 1;
	return s;
}

static uint32_t stride_for(uint64_t base_len, uint64_t budget)
{
	uint32_t st = PKG__IX_STRIDE_MIN;
	while (st < PKG__IX_STRIDE_MAX && slots_for(base_len / st + 1) * 4 > budget)
		st <<= 1;
	return st;
}

uint64_t pkg__d2_index_size(uint64_t base_len, uint64_t budget)
{
	return slots_for(base_len / stride_for(base_len, budget) + 1) * 4;
}

int pkg__d2_index_new(const uint8_t *base, uint64_t base_len, uint64_t budget,
                      const pkg_progress *p, pkg__d2_index **out)
{
	pkg__d2_index *ix = calloc(1, sizeof(*ix));
	*out = NULL;
	if (!ix)
		return pq_err_set(PQ_ERR_NOMEM, "delta index");
	ix->base = base;
	ix->base_len = base_len;
	ix->stride = stride_for(base_len, budget);
	uint64_t blocks = base_len / ix->stride + 1, slots = slots_for(blocks);
	if (blocks > UINT32_MAX - 1 || slots * 4 > budget) {
		free(ix);
		return pq_err_set(PQ_ERR_NOMEM,
		                  "a base of %llu bytes needs a %llu MiB index: more than the "
		                  "memory limit allows",
		                  (unsigned long long)base_len,
		                  (unsigned long long)(slots * 4) >> 20);
	}
	ix->mask = slots - 1;
	ix->slot = calloc(slots, sizeof(uint32_t));
	if (!ix->slot) {
		free(ix);
		return pq_err_set(PQ_ERR_NOMEM, "delta index of %llu MiB",
		                  (unsigned long long)(slots * 4) >> 20);
	}
	for (uint64_t b = 0; base_len >= PKG__IX_WIN && b <= base_len - PKG__IX_WIN;
	     b += ix->stride) {
		if ((b & ((1u << 26) - 1)) < ix->stride) { /* every 64 MiB */
			pkg__d2_release_pages(base, b);
			if (pkg__cancelled(p) != PQ_OK) {
				pkg__d2_index_free(ix);
				return PQ_ERR_CANCELLED;
			}
		}
		uint64_t h = win_hash(base + b) & ix->mask;
		for (int i = 0; i < PKG__IX_PROBES; i++, h = (h + 1) & ix->mask)
			if (!ix->slot[h]) {
				ix->slot[h] = (uint32_t)(b / ix->stride + 1);
				break;
			}
	}
	*out = ix;
	return PQ_OK;
}

void pkg__d2_release_pages(const uint8_t *p, uint64_t len)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1),
	          b = ((uintptr_t)p + len) & ~(page - 1);
	if (p && b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

void pkg__d2_index_free(pkg__d2_index *ix)
{
	if (!ix)
		return;
	free(ix->slot);
	free(ix);
}

/* Bytes equal from a and b forward, at most max. */
static uint64_t same_fwd(const uint8_t *a, const uint8_t *b, uint64_t max)
{
	uint64_t n = 0;
	while (n + 8 <= max && load64(a + n) == load64(b + n))
		n += 8;
	while (n < max && a[n] == b[n])
		n++;
	return n;
}

/* Bytes equal backward from a[-1] and b[-1], at most max. */
static uint64_t same_back(const uint8_t *a, const uint8_t *b, uint64_t max)
{
	uint64_t n = 0;
	while (n < max && a[-(int64_t)n - 1] == b[-(int64_t)n - 1])
		n++;
	return n;
}

/* A search in progress over target[from, to). */
typedef struct {
	const pkg__d2_index *ix;
	const uint8_t *tg;
	uint64_t from, to, floor; /* floor: end of the last copy (no backward extension past) */
	uint64_t min_len;
} scan;

/* The match at target offset t with base offset b, extended both ways, as *c. */
static uint64_t extend(const scan *s, uint64_t t, uint64_t b, pkg__d2_copy *c)
{
	const uint8_t *base = s->ix->base;
	uint64_t fwd = same_fwd(base + b, s->tg + t,
	                        s->to - t < s->ix->base_len - b ? s->to - t : s->ix->base_len - b);
	uint64_t back = same_back(base + b, s->tg + t, t - s->floor < b ? t - s->floor : b);
	*c = (pkg__d2_copy){.t = t - back, .b = b - back, .len = back + fwd};
	return c->len;
}

/* The best match covering target offset t, from the diagonal or the index (len 0: none). */
static void find_at(const scan *s, uint64_t t, int64_t diag, pkg__d2_copy *best)
{
	const pkg__d2_index *ix = s->ix;
	pkg__d2_copy c;
	best->len = 0;
	int64_t db = (int64_t)t + diag;
	if (db >= 0 && (uint64_t)db + PKG__IX_WIN <= ix->base_len &&
	    memcmp(ix->base + db, s->tg + t, PKG__IX_WIN) == 0 &&
	    extend(s, t, (uint64_t)db, best) >= s->min_len)
		return; /* the same diagonal goes on: take it */
	uint64_t h = win_hash(s->tg + t) & ix->mask;
	for (int i = 0; i < PKG__IX_PROBES; i++, h = (h + 1) & ix->mask) {
		uint32_t blk = ix->slot[h];
		if (!blk)
			break;
		uint64_t b = (uint64_t)(blk - 1) * ix->stride;
		if (memcmp(ix->base + b, s->tg + t, PKG__IX_WIN) == 0 &&
		    extend(s, t, b, &c) > best->len)
			*best = c;
	}
}

int pkg__d2_matches(const pkg__d2_index *ix, const uint8_t *target, uint64_t from, uint64_t to,
                    uint64_t min_len, int64_t *diag, pkg__d2_copy **copies, size_t *n)
{
	scan s = {
	    .ix = ix, .tg = target, .from = from, .to = to, .floor = from, .min_len = min_len};
	pq_buf out;
	pq_buf_init(&out, SIZE_MAX / 2);
	uint64_t t = from, misses = 0;
	while (to - t >= PKG__IX_WIN && ix->base_len >= PKG__IX_WIN) {
		pkg__d2_copy c;
		find_at(&s, t, *diag, &c);
		if (c.len < min_len) {
			/* long stretches of new data are probed more sparsely, as LZ4 accelerates;
			 * the step stays odd, so that the probes still meet every offset modulo the
			 * stride, and a match of min_len + 7 * stride bytes is still found */
			misses++;
			uint64_t step = 1 + 2 * (misses >> 7);
			t += step < 7 ? step : 7;
			continue;
		}
		misses = 0;
		pq_buf_add(&out, &c, sizeof(c));
		*diag = (int64_t)c.b - (int64_t)c.t;
		t = c.t + c.len;
		s.floor = t;
	}
	if (out.err) {
		pq_buf_free(&out);
		return pq_err_set(PQ_ERR_NOMEM, "delta matches");
	}
	*copies = (pkg__d2_copy *)(void *)out.p; /* malloc'd storage, now the caller's */
	*n = out.len / sizeof(pkg__d2_copy);
	return PQ_OK;
}
