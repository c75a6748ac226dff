/* delta_x_apply.c: applying a version-3 delta (docs/package-format.md 5.5) in three stages,
 * each within the apply limit:
 *  1. the base, already checked, is expanded (its streams into token form) into an unlinked
 *     file beside the output, and checked against the inner delta's base;
 *  2. the inner version-2 delta is applied to it into <out>.x (delta_apply.c: bounded,
 *     verified, resumable through <out>.x.part and its checkpoint);
 *  3. <out>.x is read back and the target's streams coded again into <out>.part (locked),
 *     which is checked against the target SHA-256 and renamed to <out>.
 * An apply stopped in stage 3 finds <out>.x whole next time and redoes only stage 3. */
#include "pkg/delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "crypto/hash.h"

#define CHECK_EVERY (8u << 20) /* output bytes between cancellation checks */

typedef struct {
	pkg_reader *r;
	const pkg_entry *e;
	const char *what;
	const pkg__delta_desc *d;
	pkg__delta_desc inner;
	pkg__dx_table t;
	pkg_apply_opts *o;
	char xpath[PATH_MAX], part[PATH_MAX];
	bool busy; /* another apply holds <out>.part */
} dx_applier;

/* ---- reading and writing ----------------------------------------------------------------- */

/* Bytes [off, off + left) of an fd in PKG__IO_BUF pieces (a pkg__lzx_src's fill). */
typedef struct {
	int fd;
	uint64_t off, left;
	uint8_t *buf;
} fd_src;

static int fd_fill(void *user, const uint8_t **p, size_t *n)
{
	fd_src *f = user;
	size_t k = f->left < PKG__IO_BUF ? (size_t)f->left : PKG__IO_BUF;
	*n = 0;
	if (k == 0)
		return PQ_OK;
	int rc = pkg__pread_full(f->fd, f->buf, k, f->off);
	if (rc != PQ_OK)
		return rc;
	f->off += k;
	f->left -= k;
	*p = f->buf;
	*n = k;
	return PQ_OK;
}

/* An output that may not grow past `cap` bytes, checking for cancellation as it goes. */
typedef struct {
	pkg__out_file f;
	uint64_t cap, checked;
	const pkg_progress *p;
} capped_out;

static int capped_sink(const uint8_t *data, size_t len, void *user)
{
	capped_out *c = user;
	if (len > c->cap - c->f.written)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "a stream codes to more bytes than the delta says");
	if (c->f.written + len - c->checked >= CHECK_EVERY) {
		c->checked = c->f.written + len;
		int rc = pkg__cancelled(c->p);
		if (rc != PQ_OK)
			return rc;
	}
	return pkg__out_sink(data, len, &c->f);
}

static int copy_range(int fd, uint64_t off, uint64_t len, uint8_t *buf, capped_out *out)
{
	fd_src f = {.fd = fd, .off = off, .left = len, .buf = buf};
	for (;;) {
		const uint8_t *p;
		size_t n;
		int rc = fd_fill(&f, &p, &n);
		if (rc != PQ_OK || n == 0)
			return rc;
		rc = capped_sink(p, n, out);
		if (rc != PQ_OK)
			return rc;
	}
}

/* ---- the descriptors and the table ---------------------------------------------------------- */

static int load(dx_applier *a)
{
	uint8_t raw[PKG__D2_DESC_LEN];
	uint64_t at = a->e->offset + SWPG_HDR_LEN;
	int rc = pkg__pread_full(a->r->fd, raw, sizeof(raw), at + PKG__D2_DESC_LEN);
	if (rc == PQ_OK)
		rc = pkg__d2_desc_decode(raw, &a->inner);
	if (rc == PQ_OK && (a->inner.version != PKG__D2_VERSION ||
	                    a->d->table_off - PKG__D2_DESC_LEN !=
	                        a->inner.table_off + (uint64_t)a->inner.table_len))
		rc = pq_err_set(PQ_ERR_FORMAT, "delta: the inner delta does not fill its room");
	if (rc == PQ_OK && a->d->table_len > PKG__DX_TABLE_MAX)
		rc = pq_err_set(PQ_ERR_FORMAT, "delta: stream table over %u bytes",
		                PKG__DX_TABLE_MAX);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", a->what);
	a->inner.payload_off = PKG__D2_DESC_LEN;
	uint8_t *t = malloc(a->d->table_len ? a->d->table_len : 1);
	if (!t)
		return pq_err_set(PQ_ERR_NOMEM, "delta stream table");
	rc = pkg__pread_full(a->r->fd, t, a->d->table_len, at + a->d->table_off);
	if (rc == PQ_OK)
		rc = pkg__dx_table_decode(t, a->d->table_len, a->d, &a->inner, &a->t);
	free(t);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "%s", a->what);
}

/* The stages add up (the allocator may keep what one freed): the inner delta's memory, the
 * largest window with the coder, and the table, within the limit. */
static int check_memory(dx_applier *a, uint64_t limit)
{
	uint64_t need = a->inner.apply_memory + a->t.window + PKG__DX_APPLY_FIXED + a->t.memory;
	if (a->d->apply_memory > limit || need > limit)
		return pq_err_set(
		    PQ_ERR_RANGE,
		    "%s: applying this delta needs %llu MiB, more than the limit of "
		    "%llu MiB",
		    a->what,
		    (unsigned long long)((need > a->d->apply_memory ? need : a->d->apply_memory) +
		                         (1u << 20) - 1) >>
		        20,
		    (unsigned long long)limit >> 20);
	return PQ_OK;
}

/* ---- stage 1: the expanded base ---------------------------------------------------------- */

static int expand_stream(int base_fd, const pkg__dx_stream *bs, uint64_t wmax, uint8_t *io,
                         capped_out *out)
{
	fd_src f = {.fd = base_fd, .off = bs->off, .left = bs->s.clen, .buf = io};
	pkg__lzx_src in = {.fill = fd_fill, .user = &f};
	pkg__lzx_stream s;
	uint64_t start = out->f.written;
	int rc = pkg__lzx_unpack(&in, PKG__DX_MAX_USIZE, wmax, &s, capped_sink, out);
	if (rc == PQ_OK &&
	    (s.xlen != bs->s.xlen || s.clen != bs->s.clen || out->f.written - start != bs->s.xlen))
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "the base's stream at %llu does not expand as the "
		                "delta expects",
		                (unsigned long long)bs->off);
	return rc;
}

static int expand_base(dx_applier *a, int base_fd, int fd, uint64_t wmax)
{
	capped_out out = {.f = {.fd = fd}, .cap = a->inner.base_size, .p = &a->o->progress};
	uint8_t sha[32];
	uint64_t prev = 0;
	uint8_t *io = malloc(PKG__IO_BUF);
	int rc = io ? pq_hash_new(PQ_HASH_SHA256, &out.f.sha)
	            : pq_err_set(PQ_ERR_NOMEM, "delta apply buffer");
	for (size_t i = 0; rc == PQ_OK && i < a->t.nb; i++) {
		rc = copy_range(base_fd, prev, a->t.bs[i].off - prev, io, &out);
		if (rc == PQ_OK)
			rc = expand_stream(base_fd, &a->t.bs[i], wmax, io, &out);
		prev = a->t.bs[i].off + a->t.bs[i].s.clen;
	}
	if (rc == PQ_OK)
		rc = copy_range(base_fd, prev, a->d->base_size - prev, io, &out);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.f.sha, sha);
	if (rc == PQ_OK &&
	    (out.f.written != a->inner.base_size || pq_memeq_ct(sha, a->inner.base_sha, 32) != 0))
		rc = pq_err_set(PQ_ERR_FORMAT, "the expanded base does not match the delta's");
	pq_hash_free(out.f.sha);
	free(io);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "%s", a->what);
}

/* ---- stage 2: the inner delta -------------------------------------------------------------- */

/* Whether xpath already holds the whole expanded target (an earlier apply got that far). */
static bool have_expanded(dx_applier *a)
{
	uint8_t sha[32];
	struct stat st;
	int fd = open(a->xpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	          (uint64_t)st.st_size == a->inner.target_size &&
	          pq_hash_fd(PQ_HASH_SHA256, fd, sha) == PQ_OK &&
	          pq_memeq_ct(sha, a->inner.target_sha, 32) == 0;
	close(fd);
	pq_err_clear();
	return ok;
}

/* Stages 1 and 2. resumed_bytes and progress count the expanded target's bytes scaled to
 * the target's. */
static int inner_apply(dx_applier *a, int base_fd, uint64_t limit)
{
	char prefix[PATH_MAX];
	int fd = -1;
	uint64_t wmax = limit - a->t.memory - PKG__DX_APPLY_FIXED;
	int rc = snprintf(prefix, sizeof(prefix), "%s.xbase", a->xpath) < (int)sizeof(prefix)
	             ? pkg__dx_open_unlinked(prefix, &fd)
	             : pq_err_set(PQ_ERR_RANGE, "path too long: %s", a->xpath);
	if (rc == PQ_OK)
		rc = expand_base(a, base_fd, fd, wmax);
	pkg_apply_opts io = *a->o;
	io.mem_limit = limit - a->t.memory;
	if (rc == PQ_OK)
		rc = pkg__d2_apply(a->r, a->e, &a->inner, fd, a->xpath, &io);
	if (a->inner.target_size)
		a->o->resumed_bytes =
		    (uint64_t)((double)io.resumed_bytes * (double)a->d->target_size /
		               (double)a->inner.target_size);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- stage 3: the streams coded back ----------------------------------------------------- */

static int open_part(dx_applier *a, capped_out *out)
{
	out->f.fd = open(a->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (out->f.fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->part, strerror(errno));
	if (flock(out->f.fd, LOCK_EX | LOCK_NB) != 0 || !pkg__same_file(out->f.fd, a->part)) {
		a->busy = true;
		return pq_err_set(PQ_ERR_EXISTS, "%s: another apply is writing it", a->part);
	}
	if (ftruncate(out->f.fd, 0) != 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->part, strerror(errno));
	return pq_hash_new(PQ_HASH_SHA256, &out->f.sha);
}

/* One target stream coded back from its token form at xoff of xfd. */
static int pack_stream(dx_applier *a, int xfd, uint64_t xoff, const pkg__dx_stream *ts,
                       uint64_t wmax, uint8_t *io, capped_out *out)
{
	fd_src f = {.fd = xfd, .off = xoff, .left = ts->s.xlen, .buf = io};
	pkg__lzx_src in = {.fill = fd_fill, .user = &f};
	pkg__lzx_stream s = ts->s;
	uint64_t cap = out->cap;
	out->cap = out->f.written + ts->s.clen; /* no stream may write past its place */
	int rc = pkg__lzx_pack(&in, &s, wmax, capped_sink, out);
	out->cap = cap;
	if (rc == PQ_OK && s.clen != ts->s.clen)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the target's stream at %llu codes to %llu bytes, "
		                "not %llu",
		                a->what, (unsigned long long)ts->off, (unsigned long long)s.clen,
		                (unsigned long long)ts->s.clen);
	return rc;
}

static int finish(dx_applier *a, capped_out *out, const char *out_path)
{
	uint8_t sha[32];
	int rc = pq_hash_final(out->f.sha, sha);
	if (rc == PQ_OK &&
	    (out->f.written != a->d->target_size || pq_memeq_ct(sha, a->d->target_sha, 32) != 0))
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the patched image does not match the target SHA-256", a->what);
	struct stat st;
	if (rc == PQ_OK && (fstat(out->f.fd, &st) != 0 || (uint64_t)st.st_size != out->f.written ||
	                    !pkg__same_file(out->f.fd, a->part)))
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: %s changed while it was written", a->what,
		                a->part);
	if (rc == PQ_OK && fsync(out->f.fd) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", a->part, strerror(errno));
	if (rc == PQ_OK && rename(a->part, out_path) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename to %s: %s", out_path, strerror(errno));
	return rc == PQ_OK ? pq_fsync_dir_of(out_path) : rc;
}

/* Stage 3. Progress counts the target's bytes (stage 2 counted the expanded target's). */
static int pack_target(dx_applier *a, const char *out_path, uint64_t limit)
{
	capped_out out = {.f = {.fd = -1}, .cap = a->d->target_size, .p = &a->o->progress};
	uint64_t prev = 0, xoff = 0, wmax = limit - a->t.memory - PKG__DX_APPLY_FIXED;
	uint8_t *io = malloc(PKG__IO_BUF);
	int xfd = open(a->xpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int rc = !io       ? pq_err_set(PQ_ERR_NOMEM, "delta apply buffer")
	         : xfd < 0 ? pq_err_set(PQ_ERR_IO, "%s: %s", a->xpath, strerror(errno))
	                   : open_part(a, &out);
	for (size_t i = 0; rc == PQ_OK && i < a->t.nt; i++) {
		uint64_t gap = a->t.ts[i].off - prev;
		rc = copy_range(xfd, xoff, gap, io, &out);
		if (rc == PQ_OK)
			rc = pkg__cancelled(&a->o->progress);
		if (rc == PQ_OK)
			rc = pack_stream(a, xfd, xoff + gap, &a->t.ts[i], wmax, io, &out);
		pkg__progress(&a->o->progress, out.f.written, a->d->target_size);
		xoff += gap + a->t.ts[i].s.xlen;
		prev = a->t.ts[i].off + a->t.ts[i].s.clen;
	}
	if (rc == PQ_OK)
		rc = copy_range(xfd, xoff, a->inner.target_size - xoff, io, &out);
	if (rc == PQ_OK)
		rc = finish(a, &out, out_path);
	if (rc == PQ_OK)
		pkg__progress(&a->o->progress, a->d->target_size, a->d->target_size);
	pq_hash_free(out.f.sha);
	if (out.f.fd >= 0)
		close(out.f.fd);
	if (xfd >= 0)
		close(xfd);
	free(io);
	return rc;
}

/* ---- the whole apply ----------------------------------------------------------------------- */

/* What stays after a failure: everything while another apply holds the files or when the
 * apply was refused before it began (limits); the resumable state after an interruption;
 * nothing after an error in the delta or in what was written. */
static void tidy(dx_applier *a, int rc, bool started, const char *out_path)
{
	bool stopped = rc == PQ_ERR_IO || rc == PQ_ERR_NOMEM || rc == PQ_ERR_CANCELLED;
	if (rc == PQ_OK) {
		unlink(a->xpath);
	} else if (a->busy || rc == PQ_ERR_EXISTS || !started) {
		return;
	} else if (a->o->resume && stopped) {
		unlink(
		    a->part); /* stage 3 starts over from <out>.x: its partial output is no use */
	} else {
		pkg_apply_discard(out_path);
	}
}

int pkg__dx_apply(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d, int base_fd,
                  const char *out_path, pkg_apply_opts *o)
{
	dx_applier a = {.r = r, .e = e, .what = e->path[0] ? e->path : r->name, .d = d, .o = o};
	uint64_t limit = o->mem_limit ? o->mem_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	bool started = false;
	int rc = snprintf(a.xpath, sizeof(a.xpath), "%s.x", out_path) < (int)sizeof(a.xpath) &&
	                 snprintf(a.part, sizeof(a.part), "%s.part", out_path) < (int)sizeof(a.part)
	             ? load(&a)
	             : pq_err_set(PQ_ERR_RANGE, "path too long: %s", out_path);
	if (rc == PQ_OK)
		rc = check_memory(&a, limit);
	if (rc == PQ_OK)
		rc = pq_check_output_path(out_path);
	if (rc == PQ_OK) {
		started = true;
		if (o->resume && have_expanded(&a))
			o->resumed_bytes = d->target_size;
		else
			rc = inner_apply(&a, base_fd, limit);
	}
	if (rc == PQ_OK)
		rc = pack_target(&a, out_path, limit);
	tidy(&a, rc, started, out_path);
	pkg__dx_table_free(&a.t);
	return rc;
}
