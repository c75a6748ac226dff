/* delta_apply.c: applying a segmented delta (docs/package-format.md 5.4) in bounded memory,
 * verifying as it writes, and resuming after an interruption.
 *
 * One segment at a time: its ops and literals are decoded (the literals against the window,
 * its base ranges read with pread), then the ops write the target through a 1 MiB buffer:
 * copies read the base, literals come from the decoded run. Memory is one segment's buffers
 * (sized by the largest segment, checked against the limit before anything is written) and
 * the fixed buffers. Each segment's output is checked against its hash in the table, and the
 * whole against the target SHA-256 before the result is renamed into place.
 *
 * Resumption: the output grows in <out>.part; after each segment it is synced and a checkpoint
 * (<out>.part.ckpt) records how many segments are done, for which delta. A later apply of the
 * same delta reads the finished segments back, checks them against their hashes (which also
 * rebuilds the running SHA-256), and goes on from there. */
#include "pkg/delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lzma.h>
#include <zstd.h>

#include "core/fileio.h"
#include "crypto/hash.h"

#define CKPT_MAGIC "SWRS"
#define CKPT_LEN   88 /* magic, version, delta id (32), base sha (32), segments, bytes, crc */

typedef struct {
	pkg_reader *r;
	const pkg_entry *e;
	const char *what;
	pkg__delta_desc d;
	pkg__d2_seg *segs;
	uint8_t id[32]; /* SHA-256 of descriptor and table: which delta a checkpoint is for */
	int base_fd, out_fd, ckpt_fd;
	char part[PATH_MAX], ckpt[PATH_MAX];
	bool busy; /* another apply holds the lock on part: leave its files alone */
	const char *out_path;
	pkg_apply_opts *o;
	/* one segment's buffers, carved from one arena sized for the largest segment */
	uint8_t *arena, *io;
	size_t io_fill;
	uint64_t out_off;
	ZSTD_DCtx *dctx;
	pq_hash_ctx *whole, *seg;
} applier;

/* ---- reading the delta ----------------------------------------------------------------------- */

static int read_payload(applier *a, uint64_t off, void *buf, size_t len)
{
	return pkg__pread_full(a->r->fd, buf, len,
	                       a->e->offset + SWPG_HDR_LEN + a->d.payload_off + off);
}

/* Reads and checks the table; computes the delta's id; checks the memory it needs. */
static int load_table(applier *a, uint64_t limit, uint64_t *arena_len)
{
	uint8_t raw[PKG__D2_DESC_LEN];
	uint8_t *t = NULL;
	uint64_t need = 0;
	pq_hash_ctx *h = NULL;
	uint64_t table_mem = pkg__d2_table_memory(a->d.table_len, a->d.segments);
	if (a->d.apply_memory > limit || table_mem > limit / 4)
		return pq_err_set(PQ_ERR_RANGE,
		                  "%s: applying this delta needs %llu MiB, more than the limit of "
		                  "%llu MiB",
		                  a->what,
		                  (unsigned long long)(a->d.apply_memory + (1u << 20) - 1) >> 20,
		                  (unsigned long long)limit >> 20);
	t = malloc(a->d.table_len ? a->d.table_len : 1);
	if (!t)
		return pq_err_set(PQ_ERR_NOMEM, "delta segment table");
	int rc = read_payload(a, 0, raw, sizeof(raw));
	if (rc == PQ_OK)
		rc = read_payload(a, a->d.table_off, t, a->d.table_len);
	if (rc == PQ_OK)
		rc = pkg__d2_table_decode(t, a->d.table_len, &a->d, &a->segs);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &h);
	if (rc == PQ_OK)
		rc = pq_hash_update(h, raw, sizeof(raw));
	if (rc == PQ_OK)
		rc = pq_hash_update(h, t, a->d.table_len);
	if (rc == PQ_OK)
		rc = pq_hash_final(h, a->id);
	pq_hash_free(h);
	free(t);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", a->what);
	for (uint32_t i = 0; i < a->d.segments; i++) {
		uint64_t m = pkg__d2_seg_memory(&a->segs[i]);
		need = m > need ? m : need;
	}
	uint64_t total = need + PKG__D2_APPLY_FIXED + table_mem;
	if (total > limit)
		return pq_err_set(
		    PQ_ERR_RANGE,
		    "%s: applying this delta needs %llu MiB (its largest segment and its "
		    "table), more than the limit of %llu MiB",
		    a->what, (unsigned long long)(total + (1u << 20) - 1) >> 20,
		    (unsigned long long)limit >> 20);
	*arena_len = need;
	return PQ_OK;
}

/* ---- output -------------------------------------------------------------------------------- */

static int flush(applier *a)
{
	if (!a->io_fill)
		return PQ_OK;
	int rc = pkg__pwrite_full(a->out_fd, a->io, a->io_fill, a->out_off);
	if (rc == PQ_OK)
		rc = pq_hash_update(a->whole, a->io, a->io_fill);
	if (rc == PQ_OK)
		rc = pq_hash_update(a->seg, a->io, a->io_fill);
	a->out_off += a->io_fill;
	a->io_fill = 0;
	return rc != PQ_OK ? pq_err_wrap(rc, "%s", a->part) : PQ_OK;
}

/* Appends len literal bytes. */
static int put_lit(applier *a, const uint8_t *p, uint64_t len)
{
	while (len) {
		size_t n = PKG__IO_BUF - a->io_fill < len ? PKG__IO_BUF - a->io_fill : (size_t)len;
		memcpy(a->io + a->io_fill, p, n);
		a->io_fill += n;
		p += n;
		len -= n;
		if (a->io_fill == PKG__IO_BUF) {
			int rc = flush(a);
			if (rc != PQ_OK)
				return rc;
		}
	}
	return PQ_OK;
}

/* Appends len base bytes from offset b, each plus the matching byte of diff when given
 * (an add op). */
static int put_copy(applier *a, uint64_t b, uint64_t len, const uint8_t *diff)
{
	while (len) {
		size_t n = PKG__IO_BUF - a->io_fill < len ? PKG__IO_BUF - a->io_fill : (size_t)len;
		uint8_t *dst = a->io + a->io_fill;
		int rc = pkg__pread_full(a->base_fd, dst, n, b);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "reading the base");
		for (size_t i = 0; diff && i < n; i++)
			dst[i] = (uint8_t)(dst[i] + diff[i]);
		diff = diff ? diff + n : NULL;
		a->io_fill += n;
		b += n;
		len -= n;
		if (a->io_fill == PKG__IO_BUF && (rc = flush(a)) != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* ---- one segment ------------------------------------------------------------------------------
 */

/* Decodes one zstd frame of exactly clen bytes into exactly len bytes, against the prefix
 * (window) when given. */
static int unzstd(applier *a, const uint8_t *src, uint64_t clen, uint8_t *dst, uint64_t len,
                  const uint8_t *win, uint64_t wlen)
{
	unsigned long long fcs = ZSTD_getFrameContentSize(src, clen);
	size_t fsz = ZSTD_findFrameCompressedSize(src, clen);
	if (fcs != len || ZSTD_isError(fsz) || fsz != clen)
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta segment's frame is malformed",
		                  a->what);
	size_t r = ZSTD_DCtx_reset(a->dctx, ZSTD_reset_session_and_parameters);
	if (!ZSTD_isError(r))
		r = ZSTD_DCtx_setParameter(a->dctx, ZSTD_d_windowLogMax, 31);
	if (!ZSTD_isError(r) && wlen)
		r = ZSTD_DCtx_refPrefix(a->dctx, win, wlen);
	if (!ZSTD_isError(r))
		r = ZSTD_decompressDCtx(a->dctx, dst, len, src, clen);
	if (ZSTD_isError(r) || r != len)
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta segment does not decode (%s)",
		                  a->what, ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
	return PQ_OK;
}

/* One op of s at ops[*pos]: its kind, length and (copies and adds) base offset. */
static int next_op(applier *a, const pkg__d2_seg *s, const uint8_t *ops, size_t *pos,
                   uint64_t produced, uint64_t *cur, unsigned *kind, uint64_t *len, uint64_t *b)
{
	uint64_t tag, z;
	if (!pkg__varint_get(ops, s->ops_len, pos, &tag))
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op is cut short", a->what);
	*kind = (unsigned)(tag & ((1u << PKG__D2_OP_BITS) - 1));
	*len = tag >> PKG__D2_OP_BITS;
	if (*kind > PKG__D2_OP_ADD || *len == 0 || *len > s->target_len - produced)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "%s: a delta op is unknown or runs past its segment", a->what);
	if (*kind == PKG__D2_OP_LIT)
		return PQ_OK;
	if (!pkg__varint_get(ops, s->ops_len, pos, &z))
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op is cut short", a->what);
	/* the offset relative to cur, computed without overflow: cur <= base_size <= 2^36 */
	uint64_t mag = z >> 1;
	bool back = z & 1;
	if ((back && mag + 1 > *cur) || (!back && mag > a->d.base_size - *cur))
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op reads outside the base", a->what);
	uint64_t off = back ? *cur - mag - 1 : *cur + mag;
	if (*len > a->d.base_size - off)
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op reads outside the base", a->what);
	*b = off;
	*cur = *b + *len;
	return PQ_OK;
}

/* The bytes the adds of s take: the differences at the start of its literal stream (the
 * literals proper follow). Checks the ops on the way. */
static int adds_len(applier *a, const pkg__d2_seg *s, const uint8_t *ops, uint64_t *dif)
{
	size_t pos = 0;
	uint64_t produced = 0, cur = 0, len = 0, b = 0;
	*dif = 0;
	while (pos < s->ops_len) {
		unsigned kind = 0;
		int rc = next_op(a, s, ops, &pos, produced, &cur, &kind, &len, &b);
		if (rc != PQ_OK)
			return rc;
		*dif += kind == PKG__D2_OP_ADD ? len : 0;
		produced += len;
	}
	if (*dif > s->lit_len)
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op wants missing literals", a->what);
	return PQ_OK;
}

/* Runs the ops of s over its literal stream: the adds' differences, then the literals. */
static int run_ops(applier *a, const pkg__d2_seg *s, const uint8_t *ops, const uint8_t *lit)
{
	size_t pos = 0;
	uint64_t produced = 0, dif = 0, dif_pos = 0, cur = 0, len = 0, b = 0;
	int rc = adds_len(a, s, ops, &dif);
	uint64_t lit_pos = dif;
	while (rc == PQ_OK && pos < s->ops_len) {
		unsigned kind = 0;
		rc = next_op(a, s, ops, &pos, produced, &cur, &kind, &len, &b);
		if (rc != PQ_OK)
			return rc;
		if (kind == PKG__D2_OP_LIT && len > s->lit_len - lit_pos)
			return pq_err_set(PQ_ERR_FORMAT, "%s: a delta op wants missing literals",
			                  a->what);
		if (kind == PKG__D2_OP_LIT)
			rc = put_lit(a, lit + lit_pos, len);
		else
			rc = put_copy(a, b, len, kind == PKG__D2_OP_ADD ? lit + dif_pos : NULL);
		lit_pos += kind == PKG__D2_OP_LIT ? len : 0;
		dif_pos += kind == PKG__D2_OP_ADD ? len : 0;
		produced += len;
	}
	if (rc == PQ_OK && (produced != s->target_len || lit_pos != s->lit_len))
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta segment does not add up", a->what);
	return rc;
}

/* Decodes a raw LZMA2 stream of exactly clen bytes into exactly len bytes, with the window
 * as its preset dictionary. */
static int unlzma(applier *a, const uint8_t *src, uint64_t clen, uint8_t *dst, uint64_t len,
                  const uint8_t *win, uint64_t wlen)
{
	lzma_options_lzma o;
	lzma_stream st = LZMA_STREAM_INIT;
	pkg__d2_lzma_opts(&o, 0, win, wlen, len);
	lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &o}, {LZMA_VLI_UNKNOWN, NULL}};
	lzma_ret r = lzma_raw_decoder(&st, f);
	if (r == LZMA_OK) {
		st.next_in = src;
		st.avail_in = clen;
		st.next_out = dst;
		st.avail_out = len;
		r = lzma_code(&st, LZMA_FINISH);
	}
	bool ok = r == LZMA_STREAM_END && st.avail_in == 0 && st.avail_out == 0;
	lzma_end(&st);
	if (r == LZMA_MEM_ERROR)
		return pq_err_set(PQ_ERR_NOMEM, "%s: LZMA2 dictionary", a->what);
	if (!ok)
		return pq_err_set(PQ_ERR_FORMAT, "%s: a delta segment's literals do not decode",
		                  a->what);
	return PQ_OK;
}

/* Reads segment s's base ranges into win. */
static int read_window(applier *a, const pkg__d2_seg *s, uint8_t *win, uint64_t *wlen)
{
	int rc = PQ_OK;
	*wlen = 0;
	for (uint32_t i = 0; rc == PQ_OK && i < s->n_ext; i++) {
		rc = pkg__pread_full(a->base_fd, win + *wlen, s->ext[i].len, s->ext[i].off);
		*wlen += s->ext[i].len;
	}
	return rc != PQ_OK ? pq_err_wrap(rc, "reading the base") : PQ_OK;
}

/* Decodes segment s's literals into lit (stored at payload offset off). */
static int load_literals(applier *a, const pkg__d2_seg *s, uint64_t off, uint8_t *lit,
                         uint8_t *stored, uint8_t *win)
{
	uint64_t wlen = 0;
	unsigned codec = pkg__d2_lit_codec(s);
	if (codec == PKG__D2_LIT_NONE)
		return PQ_OK;
	if (codec == PKG__D2_LIT_RAW)
		return read_payload(a, off, lit, s->lit_len);
	int rc = read_payload(a, off, stored, s->lit_size);
	if (rc == PQ_OK)
		rc = read_window(a, s, win, &wlen);
	if (rc != PQ_OK)
		return rc;
	return codec == PKG__D2_LIT_ZSTD
	           ? unzstd(a, stored, s->lit_size, lit, s->lit_len, win, wlen)
	           : unlzma(a, stored, s->lit_size, lit, s->lit_len, win, wlen);
}

/* Decodes segment s and writes its target bytes. */
static int apply_segment(applier *a, const pkg__d2_seg *s)
{
	uint8_t *ops = a->arena, *ops_st = ops + s->ops_len, *lit = ops_st + s->ops_size,
	        *lit_st = lit + s->lit_len, *win = lit_st + s->lit_size;
	int rc;
	if (s->flags & PKG__D2_OPS_ZSTD) {
		rc = read_payload(a, s->data_off, ops_st, s->ops_size);
		if (rc == PQ_OK)
			rc = unzstd(a, ops_st, s->ops_size, ops, s->ops_len, NULL, 0);
	} else {
		rc = read_payload(a, s->data_off, ops, s->ops_len);
	}
	if (rc == PQ_OK)
		rc = load_literals(a, s, s->data_off + s->ops_size, lit, lit_st, win);
	if (rc == PQ_OK)
		rc = run_ops(a, s, ops, lit);
	if (rc == PQ_OK)
		rc = flush(a);
	return rc;
}

/* Ends segment i's hash and compares it with the table's. */
static int check_segment(applier *a, uint32_t i)
{
	uint8_t h[32];
	int rc = pq_hash_final(a->seg, h); /* which also starts the next segment's */
	if (rc == PQ_OK && memcmp(h, a->segs[i].hash, PKG__D2_HASH_LEN) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: segment %u of the patched image is wrong",
		                a->what, i);
	return rc;
}

/* ---- checkpoints -------------------------------------------------------------------------------
 */

static void ckpt_encode(const applier *a, uint32_t done, uint64_t bytes, uint8_t out[CKPT_LEN])
{
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 4 magic bytes, no string */
	memcpy(out, CKPT_MAGIC, 4);
	pkg__put32(out + 4, 1);
	memcpy(out + 8, a->id, 32);
	memcpy(out + 40, a->d.base_sha, 32);
	pkg__put32(out + 72, done);
	pkg__put64(out + 76, bytes);
	pkg__put32(out + 84, pq_crc32(0, out, 84));
}

/* Records that `done` segments are on disk (after syncing them). */
static int ckpt_write(applier *a, uint32_t done)
{
	uint8_t rec[CKPT_LEN];
	if (fdatasync(a->out_fd) != 0)
		return pq_err_set(PQ_ERR_IO, "fsync %s: %s", a->part, strerror(errno));
	ckpt_encode(a, done, a->out_off, rec);
	int rc = pkg__pwrite_full(a->ckpt_fd, rec, sizeof(rec), 0);
	if (rc == PQ_OK && fdatasync(a->ckpt_fd) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", a->ckpt, strerror(errno));
	return rc;
}

/* The segments an earlier apply of this delta finished (0 when none or not this delta). */
static uint32_t ckpt_read(applier *a, uint64_t *bytes)
{
	uint8_t rec[CKPT_LEN], want[CKPT_LEN];
	struct stat st;
	*bytes = 0;
	if (pkg__pread_full(a->ckpt_fd, rec, sizeof(rec), 0) != PQ_OK)
		return 0;
	uint32_t done = pkg__get32(rec + 72);
	uint64_t off = pkg__get64(rec + 76);
	if (memcmp(rec, CKPT_MAGIC, 4) != 0 || pkg__get32(rec + 84) != pq_crc32(0, rec, 84) ||
	    done > a->d.segments || fstat(a->out_fd, &st) != 0 || (uint64_t)st.st_size < off)
		return 0;
	ckpt_encode(a, done, off, want);
	if (memcmp(rec, want, CKPT_LEN) != 0) /* another delta, or the offsets disagree */
		return 0;
	uint64_t sum = 0;
	for (uint32_t i = 0; i < done; i++)
		sum += a->segs[i].target_len;
	if (sum != off)
		return 0;
	*bytes = off;
	return done;
}

/* Reads the finished segments back through the hashes; false if one does not match. */
static bool reverify(applier *a, uint32_t done)
{
	for (uint32_t i = 0; i < done; i++) {
		uint64_t left = a->segs[i].target_len;
		while (left) {
			size_t n = left < PKG__IO_BUF ? (size_t)left : PKG__IO_BUF;
			if (pkg__pread_full(a->out_fd, a->io, n, a->out_off) != PQ_OK ||
			    pq_hash_update(a->whole, a->io, n) != PQ_OK ||
			    pq_hash_update(a->seg, a->io, n) != PQ_OK)
				return false;
			a->out_off += n;
			left -= n;
		}
		if (check_segment(a, i) != PQ_OK)
			return false;
	}
	return true;
}

/* ---- the whole apply ----------------------------------------------------------------------------
 */

static int open_files(applier *a, uint32_t *start)
{
	const char *out = a->out_path;
	int rc = pq_check_output_path(out);
	if (rc != PQ_OK)
		return rc;
	if (snprintf(a->part, sizeof(a->part), "%s.part", out) >= (int)sizeof(a->part) ||
	    snprintf(a->ckpt, sizeof(a->ckpt), "%s.part.ckpt", out) >= (int)sizeof(a->ckpt)) {
		a->part[0] = a->ckpt[0] = '\0';
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", out);
	}
	a->out_fd = open(a->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (a->out_fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->part, strerror(errno));
	if (flock(a->out_fd, LOCK_EX | LOCK_NB) != 0 || !pkg__same_file(a->out_fd, a->part)) {
		a->busy = true;
		return pq_err_set(PQ_ERR_EXISTS, "%s: another apply is writing it", a->part);
	}
	a->ckpt_fd = open(a->ckpt, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (a->ckpt_fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->ckpt, strerror(errno));
	uint64_t bytes = 0;
	*start = a->o->resume ? ckpt_read(a, &bytes) : 0;
	if (*start && reverify(a, *start)) {
		/* whatever lies past the checked segments goes */
		if (ftruncate(a->out_fd, (off_t)bytes) != 0)
			return pq_err_set(PQ_ERR_IO, "%s: %s", a->part, strerror(errno));
		a->o->resumed_bytes = bytes;
		return PQ_OK;
	}
	/* a fresh start: no checkpoint, an empty output, and hashes that a failed re-check
	 * did not feed */
	bool fed = *start != 0;
	*start = 0;
	a->out_off = 0;
	if (ftruncate(a->ckpt_fd, 0) != 0 || fdatasync(a->ckpt_fd) != 0 ||
	    ftruncate(a->out_fd, 0) != 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->part, strerror(errno));
	if (!fed)
		return PQ_OK;
	pq_hash_free(a->whole);
	pq_hash_free(a->seg);
	a->whole = a->seg = NULL;
	rc = pq_hash_new(PQ_HASH_SHA256, &a->whole);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &a->seg);
	return rc;
}

/* Checks the whole image and renames it into place; the checkpoint goes. */
static int finish(applier *a)
{
	uint8_t sha[32];
	struct stat st;
	int rc = pq_hash_final(a->whole, sha);
	/* the file itself must be what was hashed: its size, and still at its path */
	if (rc == PQ_OK && (fstat(a->out_fd, &st) != 0 || (uint64_t)st.st_size != a->out_off ||
	                    !pkg__same_file(a->out_fd, a->part)))
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: %s changed while it was written", a->what,
		                a->part);
	if (rc == PQ_OK &&
	    (a->out_off != a->d.target_size || pq_memeq_ct(sha, a->d.target_sha, 32)))
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the patched image does not match the target SHA-256", a->what);
	if (rc == PQ_OK && fsync(a->out_fd) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", a->part, strerror(errno));
	if (rc == PQ_OK && rename(a->part, a->out_path) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename to %s: %s", a->out_path, strerror(errno));
	if (rc == PQ_OK) {
		unlink(a->ckpt);
		rc = pq_fsync_dir_of(a->out_path);
	}
	return rc;
}

static int run(applier *a, uint64_t limit)
{
	uint64_t arena_len = 0;
	uint32_t start = 0;
	int rc = load_table(a, limit, &arena_len);
	if (rc != PQ_OK)
		return rc;
	a->arena = malloc(arena_len ? arena_len : 1);
	a->io = malloc(PKG__IO_BUF);
	a->dctx = ZSTD_createDCtx();
	if (!a->arena || !a->io || !a->dctx)
		return pq_err_set(PQ_ERR_NOMEM, "delta apply buffers");
	rc = pq_hash_new(PQ_HASH_SHA256, &a->whole);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &a->seg);
	if (rc == PQ_OK)
		rc = open_files(a, &start);
	for (uint32_t i = start; rc == PQ_OK && i < a->d.segments; i++) {
		rc = pkg__cancelled(&a->o->progress);
		if (rc == PQ_OK)
			rc = apply_segment(a, &a->segs[i]);
		if (rc == PQ_OK)
			rc = check_segment(a, i);
		if (rc == PQ_OK && a->o->resume)
			rc = ckpt_write(a, i + 1);
		pkg__progress(&a->o->progress, a->out_off, a->d.target_size);
	}
	if (rc == PQ_OK)
		rc = finish(a);
	return rc;
}

int pkg__d2_apply(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d, int base_fd,
                  const char *out_path, pkg_apply_opts *o)
{
	applier a = {.r = r,
	             .e = e,
	             .what = e->path[0] ? e->path : r->name,
	             .d = *d,
	             .base_fd = base_fd,
	             .out_fd = -1,
	             .ckpt_fd = -1,
	             .out_path = out_path,
	             .o = o};
	uint64_t limit = o->mem_limit ? o->mem_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	int rc = run(&a, limit);
	/* an interrupted resumable apply (I/O, memory, cancelled) keeps its work for the next
	 * try, unless what was written is wrong or the delta is */
	bool stopped = rc == PQ_ERR_IO || rc == PQ_ERR_NOMEM || rc == PQ_ERR_CANCELLED;
	bool keep = rc != PQ_OK && (a.busy || (o->resume && stopped));
	if (rc != PQ_OK && !keep && a.part[0]) { /* while the lock is held */
		unlink(a.part);
		unlink(a.ckpt);
	}
	if (a.out_fd >= 0)
		close(a.out_fd);
	if (a.ckpt_fd >= 0)
		close(a.ckpt_fd);
	ZSTD_freeDCtx(a.dctx);
	pq_hash_free(a.whole);
	pq_hash_free(a.seg);
	free(a.arena);
	free(a.io);
	free(a.segs);
	return rc;
}
