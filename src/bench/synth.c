/* synth.c: synthetic image pairs for the delta benchmark, made deterministically from a seed:
 * an "old" image of realistic, partly compressible content (random blocks next to code-like,
 * text, table and padding blocks and near-repeats of earlier blocks) and a "new" image that
 * is the old one with a small change (edits, insertions, moved blocks, or all three). Both
 * are streamed to their files through small buffers, whatever the size. */
#include "bench/bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"

#define BLK       4096u      /* content is made block by block */
#define HIST_BLKS 256u       /* near-repeats come from the last 1 MiB */
#define CHUNK     (1u << 20) /* write unit */
#define SEGS_MAX  48
#define EDIT_LEN  1024u

/* ---- a seeded generator (xoshiro256**, seeded through splitmix64) --------------------------- */

typedef struct {
	uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static uint64_t rng_below(rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static void rng_fill(rng *r, uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint64_t v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rng_next(r);
		memcpy(p, &v, len);
	}
}

/* ---- block content -------------------------------------------------------------------------- */

static const char *const words[] = {
    "update", "vehicle", "config",  "sensor", "brake",  "module", "error",  "status",
    "value",  "timeout", "signal",  "node",   "engine", "door",   "window", "firmware",
    "the",    "of",      "and",     "to",     "is",     "for",    "with",   "when",
    "0x00",   "enable",  "disable", "read",   "write",  "flash",  "boot",   "table"};

/* The generator of an old image: its state and the last HIST_BLKS blocks. */
typedef struct {
	rng r;
	uint8_t *hist; /* HIST_BLKS * BLK */
	uint64_t nblk; /* blocks made so far */
	uint32_t ops[64];
} content;

static void block_code(content *c, uint8_t *b)
{
	for (size_t i = 0; i < BLK; i += 4) {
		uint64_t v = rng_next(&c->r);
		/* mostly a small opcode set with an immediate that is often small */
		uint32_t w = c->ops[v & 63] | (uint32_t)((v >> 8) & ((v >> 40) & 1 ? 0xFFF : 0xF));
		memcpy(b + i, &w, 4);
	}
}

static void block_text(content *c, uint8_t *b)
{
	size_t i = 0;
	while (i < BLK) {
		uint64_t v = rng_next(&c->r);
		const char *w = words[v % (sizeof(words) / sizeof(words[0]))];
		for (; *w && i < BLK; w++)
			b[i++] = (uint8_t)*w;
		if (i < BLK)
			b[i++] = (v >> 20) % 11 == 0 ? '\n' : ' ';
	}
}

static void block_table(content *c, uint8_t *b)
{
	uint32_t id = (uint32_t)c->nblk * (BLK / 16);
	uint64_t v = rng_next(&c->r);
	for (size_t i = 0; i < BLK; i += 16) {
		uint32_t rec[4] = {id++, (uint32_t)(v & 0xFFFF), (uint32_t)(i / 16) * 7,
		                   0xA5A5A5A5u};
		memcpy(b + i, rec, 16);
	}
}

/* One block of content into b. */
static void block_make(content *c, uint8_t *b)
{
	uint64_t kind = rng_below(&c->r, 100);
	if (kind < 30) {
		rng_fill(&c->r, b, BLK);
	} else if (kind < 50) {
		block_code(c, b);
	} else if (kind < 65) {
		block_text(c, b);
	} else if (kind < 80 && c->nblk > 0) {
		uint64_t back = c->nblk < HIST_BLKS ? c->nblk : HIST_BLKS;
		memcpy(b, c->hist + ((c->nblk - 1 - rng_below(&c->r, back)) % HIST_BLKS) * BLK,
		       BLK);
		for (uint64_t n = rng_below(&c->r, 5); n > 0; n--)
			b[rng_below(&c->r, BLK)] = (uint8_t)rng_next(&c->r);
	} else if (kind < 92) {
		block_table(c, b);
	} else {
		memset(b, kind & 1 ? 0xFF : 0x00, BLK);
	}
	memcpy(c->hist + (c->nblk % HIST_BLKS) * BLK, b, BLK);
	c->nblk++;
}

/* ---- writing files -------------------------------------------------------------------------- */

static int open_new(const char *path, int *fd)
{
	*fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	return PQ_OK;
}

static int close_checked(int fd, const char *path, int rc)
{
	if (close(fd) != 0 && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	if (rc != PQ_OK)
		unlink(path);
	return rc;
}

/* The old image: `size` bytes of content (or of pure random bytes when random). */
static int write_old(const char *path, uint64_t size, uint64_t seed, bool random)
{
	content c = {.hist = malloc((size_t)HIST_BLKS * BLK)};
	uint8_t *buf = malloc(CHUNK);
	int fd = -1,
	    rc = c.hist && buf ? open_new(path, &fd) : pq_err_set(PQ_ERR_NOMEM, "image buffers");
	rng_seed(&c.r, seed);
	for (size_t i = 0; i < 64; i++)
		c.ops[i] = (uint32_t)rng_next(&c.r) & 0xFFFFF000u;
	for (uint64_t done = 0; rc == PQ_OK && done < size;) {
		size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
		if (random)
			rng_fill(&c.r, buf, n);
		else
			for (size_t o = 0; o < n; o += BLK) {
				uint8_t b[BLK];
				block_make(&c, b);
				memcpy(buf + o, b, n - o < BLK ? n - o : BLK);
			}
		rc = pq_write_all(fd, buf, n);
		done += n;
	}
	if (fd >= 0)
		rc = close_checked(fd, path, rc);
	free(c.hist);
	free(buf);
	return rc;
}

/* ---- the new image as segments: ranges of the old one and new (literal) bytes --------------- */

typedef struct {
	uint64_t off; /* in the old image (copies) */
	uint64_t len;
	bool literal; /* new bytes from the change's generator */
} seg;

typedef struct {
	seg s[SEGS_MAX];
	size_t n;
} plan;

static void plan_add(plan *p, uint64_t off, uint64_t len, bool literal)
{
	if (len > 0 && p->n < SEGS_MAX)
		p->s[p->n++] = (seg){off, len, literal};
}

static uint64_t plan_len(const plan *p)
{
	uint64_t t = 0;
	for (size_t i = 0; i < p->n; i++)
		t += p->s[i].len;
	return t;
}

/* Puts `lit` new bytes at position pos of the new image, replacing the `drop` bytes that
 * follow within the same segment (an edit) or none (an insertion). */
static void plan_put(plan *p, uint64_t pos, uint64_t lit, uint64_t drop)
{
	size_t i = 0;
	for (; i < p->n && pos >= p->s[i].len; i++)
		pos -= p->s[i].len;
	if (i == p->n || p->n + 2 > SEGS_MAX)
		return;
	seg cur = p->s[i];
	if (drop > cur.len - pos)
		drop = cur.len - pos;
	seg tail = {cur.literal ? 0 : cur.off + pos + drop, cur.len - pos - drop, cur.literal};
	memmove(&p->s[i + 3], &p->s[i + 1], (p->n - i - 1) * sizeof(seg));
	p->s[i].len = pos;
	p->s[i + 1] = (seg){0, lit, true};
	p->s[i + 2] = tail;
	p->n += 2;
	/* drop empty pieces */
	size_t k = 0;
	for (size_t j = 0; j < p->n; j++)
		if (p->s[j].len)
			p->s[k++] = p->s[j];
	p->n = k;
}

/* Two blocks of `len` bytes moved: one forward (from 25 % to 60 %), one backward (from 85 %
 * to 5 %). */
static void plan_moves(plan *p, uint64_t size, uint64_t len)
{
	uint64_t b = size / 20, a = size / 4, c = size * 3 / 5, d = size * 17 / 20;
	plan_add(p, 0, b, false);
	plan_add(p, d, len, false);
	plan_add(p, b, a - b, false);
	plan_add(p, a + len, c - a - len, false);
	plan_add(p, a, len, false);
	plan_add(p, c, d - c, false);
	plan_add(p, d + len, size - d - len, false);
}

/* n changes spread over the new image, each at a seeded place in its own stretch. */
static void plan_spread(plan *p, rng *r, int n, uint64_t lit, uint64_t drop)
{
	uint64_t total = plan_len(p), step = total / (uint64_t)n;
	for (int i = n - 1; i >= 0; i--) /* from the end: earlier positions stay valid */
		plan_put(p, (uint64_t)i * step + rng_below(r, step > lit ? step - lit : 1), lit,
		         drop);
}

static uint64_t move_len(uint64_t size)
{
	uint64_t l = size / 64;
	return l > (4u << 20) ? (4u << 20) : l;
}

/* The plan of kind on an old image of `size` bytes, and a description of it into what. */
static void plan_make(bench_synth_kind kind, uint64_t size, rng *r, plan *p, pq_buf *what)
{
	uint64_t ml = move_len(size);
	p->n = 0;
	if (kind == BENCH_SYNTH_MOVE || kind == BENCH_SYNTH_MIXED)
		plan_moves(p, size, ml);
	else
		plan_add(p, 0, size, false);
	switch (kind) {
	case BENCH_SYNTH_EDIT:
		plan_spread(p, r, 5, EDIT_LEN, EDIT_LEN);
		pq_buf_str(what, "5 edits of 1 KiB (bytes overwritten, same size)");
		break;
	case BENCH_SYNTH_INSERT:
		plan_spread(p, r, 3, 1500, 0);
		pq_buf_str(what, "3 insertions of 1500 bytes (the rest shifts)");
		break;
	case BENCH_SYNTH_MOVE:
		pq_buf_printf(what, "2 blocks of %llu bytes moved (25%%->60%%, 85%%->5%%)",
		              (unsigned long long)ml);
		break;
	case BENCH_SYNTH_MIXED:
		plan_spread(p, r, 3, EDIT_LEN, EDIT_LEN);
		plan_spread(p, r, 2, 1500, 0);
		pq_buf_printf(what,
		              "3 edits of 1 KiB, 2 insertions of 1500 bytes, 2 blocks of %llu "
		              "bytes moved",
		              (unsigned long long)ml);
		break;
	default: /* BENCH_SYNTH_RANDOM */
		plan_spread(p, r, 3, EDIT_LEN, EDIT_LEN);
		pq_buf_str(what, "random bytes; 3 edits of 1 KiB");
		break;
	}
}

/* Writes the new image of plan p, reading the old image at old_path. */
static int write_new(const char *old_path, const char *path, const plan *p, rng *r)
{
	uint8_t *buf = malloc(CHUNK);
	int in = open(old_path, O_RDONLY | O_CLOEXEC), fd = -1, rc = PQ_OK;
	if (!buf)
		rc = pq_err_set(PQ_ERR_NOMEM, "image buffer");
	else if (in < 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", old_path, strerror(errno));
	else
		rc = open_new(path, &fd);
	for (size_t i = 0; rc == PQ_OK && i < p->n; i++) {
		for (uint64_t done = 0; rc == PQ_OK && done < p->s[i].len;) {
			size_t n =
			    p->s[i].len - done < CHUNK ? (size_t)(p->s[i].len - done) : CHUNK;
			if (p->s[i].literal) {
				rng_fill(r, buf, n);
			} else {
				ssize_t got = pread(in, buf, n, (off_t)(p->s[i].off + done));
				if (got != (ssize_t)n)
					rc = pq_err_set(PQ_ERR_IO, "%s: short read", old_path);
			}
			if (rc == PQ_OK)
				rc = pq_write_all(fd, buf, n);
			done += n;
		}
	}
	if (fd >= 0)
		rc = close_checked(fd, path, rc);
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

int bench_synth_pair(bench_synth_kind kind, uint64_t size, uint64_t seed, const char *old_path,
                     const char *new_path, char *what, size_t what_len)
{
	pq_buf w;
	plan p;
	rng r;
	if (size < (64u << 10))
		return pq_err_set(PQ_ERR_RANGE, "a synthetic image needs at least 64 KiB");
	pq_buf_init_fixed(&w, what, what_len);
	rng_seed(&r, seed ^ 0x5EEDC4A7u);
	plan_make(kind, size, &r, &p, &w);
	int rc = write_old(old_path, size, seed, kind == BENCH_SYNTH_RANDOM);
	if (rc == PQ_OK)
		rc = write_new(old_path, new_path, &p, &r);
	if (rc != PQ_OK)
		unlink(old_path);
	return rc;
}
