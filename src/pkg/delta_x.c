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

/* An apply's stages add up (pkg__dx_encode): besides a stream's window, the coder and the
 * stream table, the inner delta needs at least the smallest limit a delta is made for. */
#define DX_RESERVE (PKG__DX_APPLY_FIXED + PKG__DX_TABLE_MAX + (uint64_t)PKG_DELTA_APPLY_MEM_MIN)

static uint64_t max_window(const pkg__dx_stream *st, size_t n, uint64_t w)
{
	for (size_t i = 0; i < n; i++)
		if (pkg__lzx_window(&st[i].s) > w)
			w = pkg__lzx_window(&st[i].s);
	return w;
}

/* ---- finding the streams ----------------------------------------------------------------- */

/* The header checks of pkg__lzx_header, cheap enough for every byte of an image, with what
 * encoders write as the dictionary size: 2^n or 3 * 2^n. */
static bool plausible(const uint8_t *p, uint64_t avail)
{
	if (avail < PKG__DX_MIN_CLEN || p[0] >= 225 || p[0] % 9 + p[0] / 9 % 5 > 4 ||
	    p[PKG__LZX_HDR_LEN] != 0)
		return false;
	uint32_t d = pkg__get32(p + 1), low = d & (0u - d);
	uint64_t u = pkg__get64(p + 5);
	return d >= 4096 && (d == low || d == 3 * low) && u > 0 && u <= PKG__DX_MAX_USIZE;
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

/* A scan: its image and limits, the candidate's token form, and the work spent on
 * candidates that failed (bounded, so that an image full of near-streams stays linear). */
typedef struct {
	const uint8_t *img;
	uint64_t len;
	const pkg__dx_scan_opts *o;
	pq_buf x;
	uint64_t wasted, budget;
	uint64_t checked; /* token bytes at the last cancellation check */
} scanner;

#define DX_CHECK_EVERY (8u << 20)

static int token_sink(const uint8_t *data, size_t len, void *user)
{
	scanner *sc = user;
	pq_buf_add(&sc->x, data, len);
	if (sc->x.len - sc->checked >= DX_CHECK_EVERY) {
		sc->checked = sc->x.len;
		int rc = pkg__cancelled(sc->o->progress);
		if (rc != PQ_OK)
			return rc;
	}
	return pq_buf_err(&sc->x) == PQ_OK ? PQ_OK : PQ_ERR_RANGE;
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

/* Whether the stream at img[off..) decodes and codes back to exactly the bytes the decoder
 * read (s filled). Errors other than memory and cancellation only fail the candidate. */
static int reproducible(scanner *sc, uint64_t off, pkg__lzx_stream *s, bool *ok)
{
	pkg__lzx_src in = {.p = sc->img + off, .end = sc->img + sc->len};
	*ok = false;
	sc->x.len = 0;
	sc->x.err = PQ_OK;
	sc->checked = 0;
	int rc = pkg__lzx_unpack(&in, PKG__DX_MAX_USIZE, sc->o->max_window, s, token_sink, sc);
	if (rc == PQ_OK) {
		pkg__lzx_src tok = {.p = (const uint8_t *)sc->x.p,
		                    .end = (const uint8_t *)sc->x.p + sc->x.len};
		same_sink c = {.ref = sc->img + off, .len = sc->len - off};
		uint64_t read = s->clen;
		rc = pkg__lzx_pack(&tok, s, sc->o->max_window, same_fn, &c);
		*ok = rc == PQ_OK && s->clen == read && s->clen >= PKG__DX_MIN_CLEN;
		if (!*ok)
			sc->wasted += s->usize;
	} else {
		sc->wasted += sc->x.len;
	}
	return rc == PQ_ERR_NOMEM || rc == PQ_ERR_CANCELLED ? rc : PQ_OK;
}

static int add_stream(pkg__dx_stream **st, size_t *cnt, const pkg__dx_stream *s)
{
	if (*cnt % 16 == 0) {
		pkg__dx_stream *t = realloc(*st, (*cnt + 16) * sizeof(**st));
		if (!t)
			return pq_err_set(PQ_ERR_NOMEM, "lzma stream list");
		*st = t;
	}
	(*st)[(*cnt)++] = *s;
	return PQ_OK;
}

int pkg__dx_scan(const uint8_t *img, uint64_t len, const pkg__dx_scan_opts *o, pkg__dx_stream **out,
                 size_t *n)
{
	pkg__dx_stream *st = NULL;
	size_t cnt = 0;
	int rc = PQ_OK;
	/* a token form takes up to 3.5 bytes a byte: a quarter of the encoder's memory */
	uint64_t xmax = 4ull * PKG__DX_MAX_USIZE;
	if (o->mem_limit && o->mem_limit / 4 < xmax)
		xmax = o->mem_limit / 4;
	scanner sc = {.img = img, .len = len, .o = o, .budget = 2 * len + (64u << 20)};
	pq_buf_init(&sc.x, (size_t)xmax);
	for (uint64_t i = 0; rc == PQ_OK && cnt < PKG__DX_STREAMS_MAX && sc.wasted < sc.budget;) {
		pkg__dx_stream cand = {0};
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
			rc = reproducible(&sc, i, &cand.s, &ok);
		if (rc != PQ_OK || !ok) {
			i = next_candidate(img, len, i);
			continue;
		}
		cand.off = i;
		rc = add_stream(&st, &cnt, &cand);
		if (rc == PQ_OK && o->found)
			rc = o->found(o->user, &cand, (const uint8_t *)sc.x.p);
		i += cand.s.clen;
	}
	pq_buf_free(&sc.x);
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
 * expanded image's size, *usize the sum of the streams' uncompressed sizes (target). */
static int list_decode(const uint8_t *t, size_t len, size_t *pos, bool target, uint64_t size,
                       pkg__dx_stream **out, size_t *n, uint64_t *xsize)
{
	uint64_t cnt, prev = 0, xs = 0, us = 0;
	if (!pkg__varint_get(t, len, pos, &cnt) || cnt > PKG__DX_STREAMS_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "delta: bad stream count");
	pkg__dx_stream *st = calloc(cnt ? cnt : 1, sizeof(*st));
	if (!st)
		return pq_err_set(PQ_ERR_NOMEM, "delta stream table");
	for (uint64_t i = 0; i < cnt; i++) {
		uint64_t gap, v[3] = {0};
		pkg__lzx_stream *s = &st[i].s;
		bool ok = pkg__varint_get(t, len, pos, &gap) &&
		          pkg__varint_get(t, len, pos, &s->clen) &&
		          pkg__varint_get(t, len, pos, &s->xlen);
		for (int k = 0; ok && target && k < 3; k++)
			ok = pkg__varint_get(t, len, pos, &v[k]);
		s->usize = v[0];
		s->dict = (uint32_t)v[1];
		s->props = (uint8_t)v[2];
		us += v[0];
		/* a token form takes at most 3.5 bytes per byte (a 2-byte match with a 5-byte
		 * distance); an image's streams at most PKG__DX_USIZE_TOTAL in all */
		ok =
		    ok && gap <= size - prev && s->clen >= PKG__DX_MIN_CLEN &&
		    s->clen <= size - prev - gap && s->xlen <= PKG__D2_IMAGE_MAX &&
		    (!target || (v[0] > 0 && v[0] <= PKG__DX_MAX_USIZE && v[1] >= 4096 &&
		                 v[1] <= UINT32_MAX && v[2] < 225 && v[2] % 9 + v[2] / 9 % 5 <= 4 &&
		                 s->xlen <= 4 * v[0] + 16 && us <= PKG__DX_USIZE_TOTAL));
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

int pkg__dx_table_decode(const uint8_t *t, size_t len, const pkg__delta_desc *d,
                         const pkg__delta_desc *inner, pkg__dx_table *out)
{
	size_t pos = 0;
	uint64_t base_x, target_x;
	memset(out, 0, sizeof(*out));
	int rc = list_decode(t, len, &pos, false, d->base_size, &out->bs, &out->nb, &base_x);
	if (rc == PQ_OK)
		rc = list_decode(t, len, &pos, true, d->target_size, &out->ts, &out->nt, &target_x);
	if (rc == PQ_OK && (pos != len || out->nb + out->nt != d->segments ||
	                    base_x != inner->base_size || target_x != inner->target_size))
		rc = pq_err_set(PQ_ERR_FORMAT,
		                "delta: the stream table disagrees with the descriptors");
	if (rc != PQ_OK) {
		pkg__dx_table_free(out);
		return rc;
	}
	out->window = max_window(out->ts, out->nt, 0);
	out->memory = len + (out->nb + out->nt) * sizeof(pkg__dx_stream);
	return PQ_OK;
}

void pkg__dx_table_free(pkg__dx_table *t)
{
	free(t->bs);
	free(t->ts);
	memset(t, 0, sizeof(*t));
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

/* The expanded image, written while its streams are found: into an unlinked temporary file
 * in TMPDIR, opened at the first stream (an image without any costs no copy). */
typedef struct {
	const uint8_t *img;
	uint64_t done; /* image bytes written or replaced so far */
	pkg__out_file out;
} expander;

int pkg__dx_open_unlinked(const char *prefix, int *fd)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s-XXXXXX", prefix) >= (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", prefix);
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
		const char *dir = getenv("TMPDIR");
		char prefix[PATH_MAX];
		snprintf(prefix, sizeof(prefix), "%s/pqota-delta", dir && *dir ? dir : "/tmp");
		rc = pkg__dx_open_unlinked(prefix, &x->out.fd);
		x->out.tmp[0] = '\0'; /* unlinked already: nothing to remove */
		if (rc == PQ_OK)
			rc = pq_hash_new(PQ_HASH_SHA256, &x->out.sha);
	}
	if (rc == PQ_OK)
		rc = pkg__out_sink(x->img + x->done, st->off - x->done, &x->out);
	if (rc == PQ_OK)
		rc = pkg__out_sink(tokens, st->s.xlen, &x->out);
	pkg__d2_release_pages(x->img + x->done, st->off + st->s.clen - x->done);
	x->done = st->off + st->s.clen;
	return rc;
}

/* Scans img and maps its expanded form (*map stays NULL when it has no stream). */
static int scan_mapped(const uint8_t *img, uint64_t len, const pkg__dx_scan_opts *so,
                       pkg__dx_stream **st, size_t *n, uint8_t **map, uint64_t *xlen,
                       uint8_t sha[32])
{
	expander x = {.img = img, .out = {.fd = -1}};
	pkg__dx_scan_opts o = *so;
	o.found = expand_found;
	o.user = &x;
	int rc = pkg__dx_scan(img, len, &o, st, n);
	if (rc == PQ_OK && x.out.fd >= 0)
		rc = pkg__out_sink(img + x.done, len - x.done, &x.out);
	if (rc == PQ_OK && x.out.fd >= 0)
		rc = pq_hash_final(x.out.sha, sha);
	if (rc == PQ_OK && x.out.fd >= 0 && x.out.written > SIZE_MAX)
		rc = pq_err_set(PQ_ERR_RANGE, "an expanded image of %llu bytes",
		                (unsigned long long)x.out.written);
	if (rc == PQ_OK && x.out.fd >= 0) {
		void *m = mmap(NULL, (size_t)x.out.written, PROT_READ, MAP_SHARED, x.out.fd, 0);
		if (m == MAP_FAILED)
			rc = pq_err_set(PQ_ERR_IO, "mmap: %s", strerror(errno));
		else
			*map = m;
		*xlen = x.out.written;
	}
	pq_hash_free(x.out.sha);
	if (x.out.fd >= 0)
		close(x.out.fd);
	return rc;
}

int pkg__dx_plan_make(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                      uint64_t target_len, const pkg__d2_enc_opts *eo, pkg__dx_plan *p)
{
	memset(p, 0, sizeof(*p));
	uint64_t limit = eo->apply_limit ? eo->apply_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	pkg__dx_scan_opts so = {.max_window = limit > DX_RESERVE ? limit - DX_RESERVE : 0,
	                        .mem_limit =
	                            eo->mem_limit ? eo->mem_limit : PKG_DELTA_ENC_MEM_DEFAULT,
	                        .progress = eo->progress};
	int rc =
	    scan_mapped(target, target_len, &so, &p->ts, &p->nt, &p->xt, &p->xt_len, p->xt_sha);
	if (rc == PQ_OK && p->nt)
		rc =
		    scan_mapped(base, base_len, &so, &p->bs, &p->nb, &p->xb, &p->xb_len, p->xb_sha);
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
	pq_buf_init(&t, PKG__DX_TABLE_MAX);
	pkg__dx_table_encode(&t, p->bs, p->nb, p->ts, p->nt);
	int rc = pq_buf_err(&t);
	/* the stages run one after the other, but the allocator may keep what one freed: the
	 * inner delta gets what the window, the coder and the table leave of the limit
	 * (pkg__dx_plan_make took only windows that leave it PKG_DELTA_APPLY_MEM_MIN) */
	/* the table counted as the applier does (pkg__dx_table_decode: its bytes and lists) */
	uint64_t other =
	    p->window + PKG__DX_APPLY_FIXED + t.len + (p->nb + p->nt) * sizeof(pkg__dx_stream);
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
