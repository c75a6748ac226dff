/* delta_x.c: deltas through LZMA streams (descriptor version 3, docs/package-format.md 5.5).
 *
 * When base and target both hold LZMA streams that lzx.c codes back bit for bit, the delta
 * is made between their expanded forms: each image with every such stream replaced by its
 * token form (lzx.h), which changes about as little as the code inside. The payload is the
 * version-3 descriptor, a whole version-2 delta between the expanded forms, and a table of
 * the streams. Applying expands the base the same way, applies the inner delta to get the
 * expanded target (bounded and resumable like any version-2 delta), then codes the target's
 * streams back and checks the image against its SHA-256 before it is renamed into place. */
#include "pkg/delta.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "crypto/hash.h"
#include "pkg/lzx.h"

#define DX_MIN_CLEN    (4u << 10)   /* smaller streams are left as they are */
#define DX_MAX_USIZE   (256u << 20) /* uncompressed bytes of one stream */
#define DX_TABLE_MAX   (1u << 20)
#define DX_STREAMS_MAX 4096
/* An apply's stages add up (pkg__dx_encode): besides a stream's window, the coder and the
 * stream table, the inner delta needs at least the smallest limit a delta is made for. */
#define DX_RESERVE (PKG__DX_APPLY_FIXED + DX_TABLE_MAX + (uint64_t)PKG_DELTA_APPLY_MEM_MIN)

/* ---- finding the streams ----------------------------------------------------------------- */

/* The header checks of pkg__lzx_header, cheap enough for every byte of an image, with what
 * encoders write as the dictionary size: 2^n or 3 * 2^n. */
static bool plausible(const uint8_t *p, uint64_t avail)
{
	if (avail < DX_MIN_CLEN || p[0] >= 225 || p[0] % 9 + p[0] / 9 % 5 > 4 ||
	    p[PKG__LZX_HDR_LEN] != 0)
		return false;
	uint32_t d = pkg__get32(p + 1), low = d & (0u - d);
	uint64_t u = pkg__get64(p + 5);
	return d >= 4096 && (d == low || d == 3 * low) && u > 0 && u <= DX_MAX_USIZE;
}

/* Where to look after a failed candidate at i: the next offset, or past a run of zeros in
 * the dictionary-size field (no header has a dictionary of 0), which padding makes long. */
static uint64_t next_candidate(const uint8_t *img, uint64_t len, uint64_t i)
{
	uint64_t z = i + 1;
	while (z < len && img[z] == 0 && (z & 7))
		z++;
	while (z + 8 <= len && img[z] == 0 && pkg__get64(img + z) == 0)
		z += 8;
	while (z < len && img[z] == 0)
		z++;
	/* img[i + 1, z) is zero: offsets up to z - 5 have a zero dictionary size */
	return z >= i + 5 && z - 4 > i + 1 ? z - 4 : i + 1;
}

static int buf_sink(const uint8_t *data, size_t len, void *user)
{
	pq_buf_add(user, data, len);
	return pq_buf_err(user);
}

typedef struct {
	const uint8_t *ref;
	uint64_t len, at;
} same_sink;

/* Compares what is written with ref, and stops the writer at the first difference. */
static int same_fn(const uint8_t *data, size_t len, void *user)
{
	same_sink *c = user;
	if (len > c->len - c->at || memcmp(c->ref + c->at, data, len) != 0)
		return PQ_ERR_VERIFY;
	c->at += len;
	return PQ_OK;
}

/* Whether the stream at img[off..len) decodes and codes back to its own bytes (s filled). */
static int reproducible(const uint8_t *img, uint64_t len, uint64_t off, uint64_t max_window,
                        pq_buf *x, pkg__lzx_stream *s, bool *ok)
{
	pkg__lzx_src in = {.p = img + off, .end = img + len};
	*ok = false;
	x->len = 0;
	int rc = pkg__lzx_unpack(&in, DX_MAX_USIZE, max_window, s, buf_sink, x);
	if (rc == PQ_ERR_NOMEM)
		return rc;
	if (rc != PQ_OK)
		return PQ_OK;
	pkg__lzx_src tok = {.p = (const uint8_t *)x->p, .end = (const uint8_t *)x->p + x->len};
	same_sink c = {.ref = img + off, .len = len - off};
	rc = pkg__lzx_pack(&tok, s, max_window, same_fn, &c);
	if (rc == PQ_ERR_NOMEM)
		return rc;
	*ok = rc == PQ_OK && s->clen >= DX_MIN_CLEN;
	return PQ_OK;
}

int pkg__dx_scan(const uint8_t *img, uint64_t len, uint64_t max_window, pkg__dx_found_fn found,
                 void *user, pkg__dx_stream **out, size_t *n)
{
	pkg__dx_stream *st = NULL;
	size_t cnt = 0;
	pq_buf x;
	int rc = PQ_OK;
	pq_buf_init(&x, (size_t)4 * DX_MAX_USIZE);
	for (uint64_t i = 0; rc == PQ_OK && cnt < DX_STREAMS_MAX;) {
		pkg__lzx_stream s;
		bool ok = false;
		/* a stream's range coder starts with a zero byte after the header: only the
		 * offsets before a zero byte need a closer look */
		const uint8_t *z =
		    len - i > PKG__LZX_HDR_LEN
		        ? memchr(img + i + PKG__LZX_HDR_LEN, 0, len - i - PKG__LZX_HDR_LEN)
		        : NULL;
		if (!z)
			break;
		i = (uint64_t)(z - img) - PKG__LZX_HDR_LEN;
		if (plausible(img + i, len - i))
			rc = reproducible(img, len, i, max_window, &x, &s, &ok);
		if (!ok) {
			i = next_candidate(img, len, i);
			continue;
		}
		if (cnt % 16 == 0) {
			pkg__dx_stream *t = realloc(st, (cnt + 16) * sizeof(*st));
			if (!t) {
				rc = pq_err_set(PQ_ERR_NOMEM, "lzma stream list");
				break;
			}
			st = t;
		}
		st[cnt] = (pkg__dx_stream){.off = i, .s = s};
		if (found)
			rc = found(user, &st[cnt], (const uint8_t *)x.p);
		cnt++;
		i += s.clen;
	}
	pq_buf_free(&x);
	if (rc != PQ_OK) {
		free(st);
		return rc;
	}
	pq_err_clear();
	*out = st;
	*n = cnt;
	return PQ_OK;
}

/* ---- the stream table ------------------------------------------------------------------- */

/* Base streams: the count, then per stream the gap before it, clen and xlen. Target streams:
 * the count, then per stream the gap, clen, xlen, usize, dict and props. */
void pkg__dx_table_encode(pq_buf *b, const pkg__dx_stream *bs, size_t nb, const pkg__dx_stream *ts,
                          size_t nt)
{
	uint64_t prev = 0;
	pkg__varint_put(b, nb);
	for (size_t i = 0; i < nb; i++) {
		pkg__varint_put(b, bs[i].off - prev);
		pkg__varint_put(b, bs[i].s.clen);
		pkg__varint_put(b, bs[i].s.xlen);
		prev = bs[i].off + bs[i].s.clen;
	}
	prev = 0;
	pkg__varint_put(b, nt);
	for (size_t i = 0; i < nt; i++) {
		pkg__varint_put(b, ts[i].off - prev);
		pkg__varint_put(b, ts[i].s.clen);
		pkg__varint_put(b, ts[i].s.xlen);
		pkg__varint_put(b, ts[i].s.usize);
		pkg__varint_put(b, ts[i].s.dict);
		pkg__varint_put(b, ts[i].s.props);
		prev = ts[i].off + ts[i].s.clen;
	}
}

/* One list of the table: streams in order inside an image of `size` bytes; *xsize gets the
 * expanded image's size. */
static int list_decode(const uint8_t *t, size_t len, size_t *pos, bool target, uint64_t size,
                       pkg__dx_stream **out, size_t *n, uint64_t *xsize)
{
	uint64_t cnt, prev = 0, xs = 0;
	if (!pkg__varint_get(t, len, pos, &cnt) || cnt > DX_STREAMS_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "delta: bad stream count");
	pkg__dx_stream *st = calloc(cnt ? cnt : 1, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "delta stream table");
	for (uint64_t i = 0; i < cnt; i++) {
		uint64_t gap, v[4] = {0};
		pkg__lzx_stream *s = &st[i].s;
		bool ok = pkg__varint_get(t, len, pos, &gap) &&
		          pkg__varint_get(t, len, pos, &s->clen) &&
		          pkg__varint_get(t, len, pos, &s->xlen);
		for (int k = 0; ok && target && k < 3; k++)
			ok = pkg__varint_get(t, len, pos, &v[k]);
		s->usize = v[0];
		s->dict = (uint32_t)v[1];
		s->props = (uint8_t)v[2];
		ok = ok && gap <= size - prev && s->clen >= DX_MIN_CLEN &&
		     s->clen <= size - prev - gap && s->xlen <= PKG__D2_IMAGE_MAX &&
		     (!target || (v[0] <= DX_MAX_USIZE && v[1] >= 4096 && v[1] <= UINT32_MAX &&
		                  v[2] < 225 && v[2] % 9 + v[2] / 9 % 5 <= 4 && v[0] > 0));
		if (!ok) {
			free(st);
			return pq_err_set(PQ_ERR_FORMAT,
			                  "delta: stream %llu of the %s out of bounds",
			                  (unsigned long long)i, target ? "target" : "base");
		}
		st[i].off = prev + gap;
		prev = st[i].off + s->clen;
		xs += gap + s->xlen;
	}
	*out = st;
	*n = (size_t)cnt;
	*xsize = xs + (size - prev);
	return PQ_OK;
}

/* ---- applying ---------------------------------------------------------------------------- */

typedef struct {
	pkg_reader *r;
	const pkg_entry *e;
	const char *what;
	const pkg__delta_desc *d;
	pkg__delta_desc inner;
	pkg__dx_stream *bs, *ts;
	size_t nb, nt;
	uint64_t window; /* the largest window of any stream */
	pkg_apply_opts *o;
	uint8_t *io;
	char xpath[PATH_MAX];
} dx_applier;

/* Reads bytes [off, off + left) of an fd, in PKG__IO_BUF pieces (a pkg__lzx_src's fill). */
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

static int copy_range(int fd, uint64_t off, uint64_t len, uint8_t *buf, pkg_sink_fn sink,
                      void *user)
{
	fd_src f = {.fd = fd, .off = off, .left = len, .buf = buf};
	for (;;) {
		const uint8_t *p;
		size_t n;
		int rc = fd_fill(&f, &p, &n);
		if (rc != PQ_OK || n == 0)
			return rc;
		rc = sink(p, n, user);
		if (rc != PQ_OK)
			return rc;
	}
}

static int load(dx_applier *a)
{
	uint8_t raw[PKG__D2_DESC_LEN];
	uint64_t base_x, target_x;
	int rc = pkg__pread_full(a->r->fd, raw, sizeof(raw),
	                         a->e->offset + SWPG_HDR_LEN + PKG__D2_DESC_LEN);
	if (rc == PQ_OK)
		rc = pkg__d2_desc_decode(raw, &a->inner);
	if (rc == PQ_OK && (a->inner.version != PKG__D2_VERSION ||
	                    a->d->table_off - PKG__D2_DESC_LEN !=
	                        a->inner.table_off + (uint64_t)a->inner.table_len))
		rc = pq_err_set(PQ_ERR_FORMAT, "delta: the inner delta does not fill its room");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", a->what);
	a->inner.payload_off = PKG__D2_DESC_LEN;
	uint8_t *t = malloc(a->d->table_len ? a->d->table_len : 1);
	if (!t)
		return pq_err_set(PQ_ERR_NOMEM, "delta stream table");
	size_t pos = 0;
	rc = a->d->table_len <= DX_TABLE_MAX
	         ? pkg__pread_full(a->r->fd, t, a->d->table_len,
	                           a->e->offset + SWPG_HDR_LEN + a->d->table_off)
	         : pq_err_set(PQ_ERR_FORMAT, "delta: stream table over %u bytes", DX_TABLE_MAX);
	if (rc == PQ_OK)
		rc = list_decode(t, a->d->table_len, &pos, false, a->d->base_size, &a->bs, &a->nb,
		                 &base_x);
	if (rc == PQ_OK)
		rc = list_decode(t, a->d->table_len, &pos, true, a->d->target_size, &a->ts, &a->nt,
		                 &target_x);
	if (rc == PQ_OK && (pos != a->d->table_len || a->nb + a->nt != a->d->segments ||
	                    base_x != a->inner.base_size || target_x != a->inner.target_size))
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "delta: the stream table disagrees with the descriptors");
	free(t);
	for (size_t i = 0; i < a->nt; i++)
		if (pkg__lzx_window(&a->ts[i].s) > a->window)
			a->window = pkg__lzx_window(&a->ts[i].s);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "%s", a->what);
}

typedef struct {
	int fd;
	uint64_t off;
	pq_hash_ctx *sha;
} fd_sink;

static int fd_sink_fn(const uint8_t *data, size_t len, void *user)
{
	fd_sink *s = user;
	int rc = pkg__pwrite_full(s->fd, data, len, s->off);
	if (rc == PQ_OK)
		rc = pq_hash_update(s->sha, data, len);
	s->off += len;
	return rc;
}

/* Writes the expanded base into fd (an unlinked file), checking it against the inner
 * delta's base. */
static int expand_base(dx_applier *a, int base_fd, int fd, uint64_t limit)
{
	fd_sink out = {.fd = fd};
	uint64_t prev = 0;
	uint8_t sha[32];
	int rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	for (size_t i = 0; rc == PQ_OK && i < a->nb; i++) {
		rc = copy_range(base_fd, prev, a->bs[i].off - prev, a->io, fd_sink_fn, &out);
		fd_src f = {
		    .fd = base_fd, .off = a->bs[i].off, .left = a->bs[i].s.clen, .buf = a->io};
		pkg__lzx_src in = {.p = NULL, .end = NULL, .fill = fd_fill, .user = &f};
		pkg__lzx_stream s;
		if (rc == PQ_OK)
			rc = pkg__lzx_unpack(&in, DX_MAX_USIZE, limit, &s, fd_sink_fn, &out);
		if (rc == PQ_OK && (s.xlen != a->bs[i].s.xlen || s.clen > a->bs[i].s.clen))
			rc = pq_err_set(PQ_ERR_FORMAT,
			                "the base's stream at %llu does not expand as "
			                "the delta expects",
			                (unsigned long long)a->bs[i].off);
		prev = a->bs[i].off + a->bs[i].s.clen;
	}
	if (rc == PQ_OK)
		rc = copy_range(base_fd, prev, a->d->base_size - prev, a->io, fd_sink_fn, &out);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, sha);
	if (rc == PQ_OK &&
	    (out.off != a->inner.base_size || pq_memeq_ct(sha, a->inner.base_sha, 32) != 0))
		rc = pq_err_set(PQ_ERR_FORMAT, "the expanded base does not match the delta's");
	pq_hash_free(out.sha);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "%s", a->what);
}

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

/* Stage 1 and 2: the expanded base in an unlinked file beside the output, then the inner
 * delta applied to it into xpath. */
static int inner_apply(dx_applier *a, int base_fd, uint64_t limit)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.xbase.%ld", a->xpath, (long)getpid()) >=
	    (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", a->xpath);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	unlink(tmp);
	int rc = expand_base(a, base_fd, fd, limit);
	if (rc == PQ_OK)
		rc = pkg__d2_apply(a->r, a->e, &a->inner, fd, a->xpath, a->o);
	close(fd);
	return rc;
}

/* Stage 3: the target's streams coded back from xpath, the image checked and renamed into
 * place. */
static int pack_target(dx_applier *a, const char *out_path, uint64_t limit)
{
	pkg__out_file out;
	uint8_t sha[32];
	uint64_t prev = 0, xoff = 0;
	int xfd = open(a->xpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (xfd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", a->xpath, strerror(errno));
	int rc = pkg__out_open(&out, out_path, 0644);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	for (size_t i = 0; rc == PQ_OK && i < a->nt; i++) {
		pkg__lzx_stream s = a->ts[i].s;
		uint64_t gap = a->ts[i].off - prev;
		rc = copy_range(xfd, xoff, gap, a->io, pkg__out_sink, &out);
		xoff += gap;
		fd_src f = {.fd = xfd, .off = xoff, .left = s.xlen, .buf = a->io};
		pkg__lzx_src in = {.fill = fd_fill, .user = &f};
		if (rc == PQ_OK)
			rc = pkg__cancelled(&a->o->progress);
		if (rc == PQ_OK)
			rc = pkg__lzx_pack(&in, &s, limit, pkg__out_sink, &out);
		if (rc == PQ_OK && s.clen != a->ts[i].s.clen)
			rc =
			    pq_err_set(PQ_ERR_VERIFY,
			               "the target's stream at %llu codes to %llu bytes, "
			               "not %llu",
			               (unsigned long long)a->ts[i].off, (unsigned long long)s.clen,
			               (unsigned long long)a->ts[i].s.clen);
		xoff += s.xlen;
		prev = a->ts[i].off + a->ts[i].s.clen;
		pkg__progress(&a->o->progress, out.written, a->d->target_size);
	}
	if (rc == PQ_OK)
		rc = copy_range(xfd, xoff, a->inner.target_size - xoff, a->io, pkg__out_sink, &out);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, sha);
	if (rc == PQ_OK &&
	    (out.written != a->d->target_size || pq_memeq_ct(sha, a->d->target_sha, 32) != 0))
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the patched image does not match the target "
		                "SHA-256",
		                a->what);
	if (rc == PQ_OK)
		rc = pkg__out_commit(&out);
	pkg__out_abort(&out);
	pq_hash_free(out.sha);
	close(xfd);
	return rc;
}

int pkg__dx_apply(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d, int base_fd,
                  const char *out_path, pkg_apply_opts *o)
{
	dx_applier a = {.r = r, .e = e, .what = e->path[0] ? e->path : r->name, .d = d, .o = o};
	uint64_t limit = o->mem_limit ? o->mem_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	int rc = PQ_OK;
	if (d->apply_memory > limit)
		return pq_err_set(PQ_ERR_RANGE,
		                  "%s: applying this delta needs %llu MiB, more than the limit of "
		                  "%llu MiB",
		                  a.what,
		                  (unsigned long long)(d->apply_memory + (1u << 20) - 1) >> 20,
		                  (unsigned long long)limit >> 20);
	if (snprintf(a.xpath, sizeof(a.xpath), "%s.x", out_path) >= (int)sizeof(a.xpath))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", out_path);
	a.io = malloc(PKG__IO_BUF);
	rc = a.io ? load(&a) : pq_err_set(PQ_ERR_NOMEM, "delta apply buffer");
	uint64_t stream_mem = a.window + PKG__DX_APPLY_FIXED;
	if (rc == PQ_OK && stream_mem > limit)
		rc =
		    pq_err_set(PQ_ERR_RANGE,
		               "%s: applying this delta needs %llu MiB (an LZMA window), more than "
		               "the limit of %llu MiB",
		               a.what, (unsigned long long)(stream_mem + (1u << 20) - 1) >> 20,
		               (unsigned long long)limit >> 20);
	uint64_t wmax = limit > PKG__DX_APPLY_FIXED ? limit - PKG__DX_APPLY_FIXED : 0;
	bool resumed = rc == PQ_OK && o->resume && have_expanded(&a);
	if (resumed)
		o->resumed_bytes = a.inner.target_size;
	else if (rc == PQ_OK)
		rc = inner_apply(&a, base_fd, wmax);
	if (rc == PQ_OK)
		rc = pack_target(&a, out_path, wmax);
	/* the expanded target goes once the image is in place, or when it is wrong; it stays
	 * for a resumable apply that was only interrupted */
	bool stopped = rc == PQ_ERR_IO || rc == PQ_ERR_NOMEM || rc == PQ_ERR_CANCELLED;
	if (rc == PQ_OK || (rc != PQ_ERR_EXISTS && !(o->resume && stopped)))
		unlink(a.xpath);
	free(a.bs);
	free(a.ts);
	free(a.io);
	return rc;
}

/* ---- encoding ------------------------------------------------------------------------------ */

void pkg__dx_plan_free(pkg__dx_plan *p)
{
	free(p->bs);
	free(p->ts);
	pkg__unmap_file(p->xb, p->xb_len);
	pkg__unmap_file(p->xt, p->xt_len);
	memset(p, 0, sizeof(*p));
}

static uint64_t max_window(const pkg__dx_stream *st, size_t n, uint64_t w)
{
	for (size_t i = 0; i < n; i++)
		if (pkg__lzx_window(&st[i].s) > w)
			w = pkg__lzx_window(&st[i].s);
	return w;
}

/* The expanded image, written while its streams are found: into an unlinked temporary file
 * in TMPDIR, opened at the first stream (an image without any costs no copy). */
typedef struct {
	const uint8_t *img;
	uint64_t done; /* image bytes written or replaced so far */
	fd_sink out;
} expander;

static int open_temp(int *fd)
{
	const char *dir = getenv("TMPDIR");
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/pqota-delta-XXXXXX", dir && *dir ? dir : "/tmp") >=
	    (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "TMPDIR too long");
	*fd = mkstemp(tmp);
	if (*fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	unlink(tmp);
	return PQ_OK;
}

static int expand_found(void *user, const pkg__dx_stream *st, const uint8_t *tokens)
{
	expander *x = user;
	int rc = PQ_OK;
	if (x->out.fd < 0) {
		rc = open_temp(&x->out.fd);
		if (rc == PQ_OK)
			rc = pq_hash_new(PQ_HASH_SHA256, &x->out.sha);
	}
	if (rc == PQ_OK)
		rc = fd_sink_fn(x->img + x->done, st->off - x->done, &x->out);
	if (rc == PQ_OK)
		rc = fd_sink_fn(tokens, st->s.xlen, &x->out);
	pkg__d2_release_pages(x->img + x->done, st->off + st->s.clen - x->done);
	x->done = st->off + st->s.clen;
	return rc;
}

/* Scans img and maps its expanded form (*map stays NULL when it has no stream). */
static int scan_mapped(const uint8_t *img, uint64_t len, uint64_t wmax, pkg__dx_stream **st,
                       size_t *n, uint8_t **map, uint64_t *xlen, uint8_t sha[32])
{
	expander x = {.img = img, .out = {.fd = -1}};
	int rc = pkg__dx_scan(img, len, wmax, expand_found, &x, st, n);
	if (rc == PQ_OK && x.out.fd >= 0)
		rc = fd_sink_fn(img + x.done, len - x.done, &x.out);
	if (rc == PQ_OK && x.out.fd >= 0)
		rc = pq_hash_final(x.out.sha, sha);
	if (rc == PQ_OK && x.out.fd >= 0) {
		void *m = mmap(NULL, x.out.off, PROT_READ, MAP_SHARED, x.out.fd, 0);
		if (m == MAP_FAILED)
			rc = pq_err_set(PQ_ERR_IO, "mmap: %s", strerror(errno));
		else
			*map = m;
		*xlen = x.out.off;
	}
	pq_hash_free(x.out.sha);
	if (x.out.fd >= 0)
		close(x.out.fd);
	return rc;
}

int pkg__dx_plan_make(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                      uint64_t target_len, uint64_t apply_limit, pkg__dx_plan *p)
{
	memset(p, 0, sizeof(*p));
	uint64_t wmax = apply_limit > DX_RESERVE ? apply_limit - DX_RESERVE : 0;
	int rc =
	    scan_mapped(target, target_len, wmax, &p->ts, &p->nt, &p->xt, &p->xt_len, p->xt_sha);
	if (rc == PQ_OK && p->nt)
		rc = scan_mapped(base, base_len, wmax, &p->bs, &p->nb, &p->xb, &p->xb_len,
		                 p->xb_sha);
	if (rc == PQ_OK && p->nt && p->nb && p->xb_len <= PKG__D2_IMAGE_MAX &&
	    p->xt_len <= PKG__D2_IMAGE_MAX) {
		p->window = max_window(p->ts, p->nt, max_window(p->bs, p->nb, 0));
		p->base_len = base_len;
		p->target_len = target_len;
		p->used = true;
		return PQ_OK;
	}
	pkg__dx_plan_free(p);
	return rc;
}

int pkg__dx_encode(const pkg__dx_plan *p, const pkg__d2_enc_opts *o, pkg_sink_fn sink, void *user,
                   pkg__delta_desc *outer, uint8_t inner_raw[PKG__D2_DESC_LEN])
{
	pkg__delta_desc in;
	pq_buf t;
	pkg__d2_enc_opts io = *o;
	uint64_t limit = o->apply_limit ? o->apply_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	pq_buf_init(&t, DX_TABLE_MAX);
	pkg__dx_table_encode(&t, p->bs, p->nb, p->ts, p->nt);
	int rc = pq_buf_err(&t);
	/* the stages run one after the other, but the allocator may keep what one freed: the
	 * inner delta gets what the window, the coder and the table leave of the limit
	 * (pkg__dx_plan_make took only windows that leave it PKG_DELTA_APPLY_MEM_MIN) */
	uint64_t other = p->window + PKG__DX_APPLY_FIXED + t.len;
	if (rc == PQ_OK && other + PKG_DELTA_APPLY_MEM_MIN > limit)
		rc = pq_err_set(PQ_ERR_RANGE,
		                "an LZMA window of %llu bytes in an apply limit of %llu MiB",
		                (unsigned long long)p->window, (unsigned long long)limit >> 20);
	io.apply_limit = limit - other;
	if (rc == PQ_OK)
		rc = pkg__d2_encode(p->xb, p->xb_len, p->xt, p->xt_len, &io, sink, user, &in);
	if (rc != PQ_OK) {
		pq_buf_free(&t);
		return rc;
	}
	memcpy(in.base_sha, p->xb_sha, 32);
	memcpy(in.target_sha, p->xt_sha, 32);
	pkg__d2_desc_encode(inner_raw, &in);
	rc = sink((const uint8_t *)t.p, t.len, user);
	memset(outer, 0, sizeof(*outer));
	outer->version = PKG__D3_VERSION;
	outer->base_size = p->base_len;
	outer->target_size = p->target_len;
	outer->segments = (uint32_t)(p->nb + p->nt);
	outer->table_off = PKG__D2_DESC_LEN + in.table_off + in.table_len;
	outer->table_len = (uint32_t)t.len;
	outer->apply_memory = in.apply_memory + other;
	pq_buf_free(&t);
	return rc;
}
