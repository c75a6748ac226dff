/* delta_enc.c: the segmented delta encoder (docs/package-format.md 5.3).
 *
 * The target is read in chunks. In each, the block index (delta_index.c) finds the exact
 * matches with the base; runs of them along one alignment with a few bytes changed between
 * become adds (base bytes plus differences, bsdiff's approximate matches), the others copies,
 * and what is left literals. Chunks gather into a segment until its literal stream (the adds'
 * differences, then the literals) fills its budget: copies cost no apply memory, so an
 * unchanged stretch of any length is one op. The stream is compressed with LZMA2 against a
 * window of the base as its preset dictionary (zstd with it as prefix, or stored, when
 * smaller), the window being the base ranges around the literal runs, or the whole base when
 * it fits: there the coder finds the short and shifted matches the index leaves out. A
 * target that fits one segment is also coded as all literals against the whole base, and as
 * bsdiff's alignment from a suffix array (delta_sa.c); the smallest wins. Windows and budgets
 * come from the apply memory limit, so every segment applies within it. */
#include "pkg/delta.h"

#include <lzma.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams, ZSTD_estimateCCtxSize_usingCParams */
#include <zstd.h>

#include "crypto/hash.h"

#define ENC_MIN_COPY      32           /* shorter matches are left to the literal compressor */
#define ENC_CHUNK         (4u << 20)   /* target bytes matched at a time */
#define ENC_SPAN_MAX      (256u << 20) /* target bytes in a segment (what a resume may redo) */
#define ENC_GAPS_MAX      8192         /* literal runs in a segment */
#define ENC_MARGIN        (1u << 20)   /* base bytes around a literal run in its window */
#define ENC_OPS_LEVEL     19
#define ENC_RELEASE_EVERY (256u << 20) /* target bytes between releases of the base pages */
#define ENC_HASH_PIECE    (16u << 20)  /* target bytes hashed between releases */
#define ENC_ADD_GAP_MAX   4096         /* the longest gap an add bridges or extends into */
#define ENC_ADD_MIN       8            /* an extension must gain this many equal bytes */
#define ENC_ADD_BRIDGE    16 /* a gap this short between copies on one diagonal: one add */

/* A literal run and the diagonals (base minus target offset) of the copies around it. */
typedef struct {
	uint64_t g0, g1;
	int64_t dl, dr;
} gap;

typedef struct {
	const uint8_t *base, *tg;
	uint64_t base_len, tg_len;
	int level;
	uint32_t lzma_preset;
	uint64_t lit_cap, ops_cap, win_max; /* per segment */
	pkg__d2_index *ix;
	ZSTD_CCtx *cctx;
	pkg_sink_fn sink;
	void *user;
	uint64_t written; /* payload bytes after the descriptor */
	pq_buf table;
	uint32_t segments;
	uint64_t apply_mem;
	int64_t diag;
	/* the segment being gathered: target [t0, t1), its ops, literals and runs */
	uint64_t t0, t1, cur, lit_len;
	pq_buf ops, gaps;
	uint64_t dif_n; /* of lit_len: the adds' differences, in e->dif until coded */
	uint8_t *dif;
	unsigned pend_kind; /* the op held back (op_flush) */
	uint64_t pend_b, pend_len;
	uint8_t *lit, *win, *lbuf, *zbuf, *obuf; /* literals, window, coded forms */
	size_t lbuf_cap, zbuf_cap, obuf_cap;
} enc;

/* A coded segment: its flags, window and stored sizes. */
typedef struct {
	uint32_t flags;
	pkg__d2_ext ext[PKG__D2_EXT_MAX];
	uint32_t n_ext;
	uint64_t ops_size, lit_size;
	uint64_t ops_len, lit_len; /* decoded */
	const uint8_t *ops_data, *lit_data;
} coded;

/* ---- sizing ------------------------------------------------------------------------------- */

/* Literal budget and window size that keep one segment's apply within limit: the LZMA2
 * dictionary holds window + literals besides the window and literals read. */
static int size_for_limit(enc *e, uint64_t limit)
{
	if (limit < PKG_DELTA_APPLY_MEM_MIN)
		return pq_err_set(PQ_ERR_RANGE,
		                  "an apply memory limit of %llu KiB is below the %u MiB a delta "
		                  "needs at least",
		                  (unsigned long long)limit >> 10, PKG_DELTA_APPLY_MEM_MIN >> 20);
	e->lit_cap = (limit / 16) & ~(uint64_t)0xffff;
	if (e->lit_cap > PKG__D2_LIT_MAX)
		e->lit_cap = PKG__D2_LIT_MAX;
	/* a chunk (lit_cap / 4 bytes) has at most one copy per ENC_MIN_COPY bytes, three ops
	 * per copy, 15 bytes per op: 1.4 times its length, within ops_cap */
	e->ops_cap = e->lit_cap / 2;
	if (e->ops_cap > PKG__D2_OPS_MAX)
		e->ops_cap = PKG__D2_OPS_MAX;
	uint64_t other = PKG__D2_APPLY_FIXED + 3 * e->lit_cap + ZSTD_compressBound(e->lit_cap) +
	                 2 * e->ops_cap + (64u << 10);
	e->win_max = limit > other ? (limit - other) / 2 : 0;
	if (e->win_max > PKG__D2_WINDOW_MAX)
		e->win_max = PKG__D2_WINDOW_MAX;
	return PQ_OK;
}

/* ---- gathering ---------------------------------------------------------------------------- */

/* Ops are held back one at a time so that a copy, an add or a literal run that goes on
 * across a chunk boundary stays one op. */
static void op_flush(enc *e)
{
	if (!e->pend_len)
		return;
	pkg__varint_put(&e->ops, e->pend_len << PKG__D2_OP_BITS | e->pend_kind);
	if (e->pend_kind != PKG__D2_OP_LIT) {
		pkg__varint_put(&e->ops, pkg__zigzag((int64_t)e->pend_b - (int64_t)e->cur));
		e->cur = e->pend_b + e->pend_len;
	}
	e->pend_len = 0;
}

/* Holds back an op of kind over target [t0, t1) (base offset b), merged with the held one
 * when it continues it. */
static void op_put(enc *e, unsigned kind, uint64_t t0, uint64_t t1, uint64_t b)
{
	bool cont = e->pend_len && e->pend_kind == kind &&
	            (kind == PKG__D2_OP_LIT || b == e->pend_b + e->pend_len);
	if (!cont) {
		op_flush(e);
		e->pend_kind = kind;
		e->pend_b = b;
	}
	e->pend_len += t1 - t0;
	if (kind == PKG__D2_OP_ADD) { /* the differences go before the literals */
		for (uint64_t t = t0; t < t1; t++)
			e->dif[e->dif_n++] = (uint8_t)(e->tg[t] - e->base[b + (t - t0)]);
		e->lit_len += t1 - t0;
	} else if (kind == PKG__D2_OP_LIT) {
		memcpy(e->lit + (e->lit_len - e->dif_n), e->tg + t0, t1 - t0);
		e->lit_len += t1 - t0;
	}
}

/* ---- planning a chunk ----------------------------------------------------------------------- */

/* One planned op: target [t0, t1) on diagonal d; a literal run also keeps the diagonals of
 * its neighbours (dl, dr) for its window. */
typedef struct {
	unsigned kind;
	uint64_t t0, t1;
	int64_t d, dl, dr;
} step;

/* Whether target byte t equals the base byte on diagonal d. */
static bool same_at(const enc *e, uint64_t t, int64_t d)
{
	int64_t b = (int64_t)t + d;
	return b >= 0 && (uint64_t)b < e->base_len && e->tg[t] == e->base[b];
}

/* Whether target [t0, t1) lies inside the base on diagonal d. */
static bool on_base(const enc *e, uint64_t t0, uint64_t t1, int64_t d)
{
	return (int64_t)t0 + d >= 0 && (int64_t)t1 + d <= (int64_t)e->base_len;
}

/* Whether the gap [t0, t1) between two copies on diagonal d is the same code with a few
 * bytes changed (at least half of it equal, as bsdiff judges), so one add covers all. */
static bool similar(const enc *e, uint64_t t0, uint64_t t1, int64_t d)
{
	if (t1 - t0 > ENC_ADD_GAP_MAX || !on_base(e, t0, t1, d))
		return false;
	if (t1 - t0 <= ENC_ADD_BRIDGE)
		return true;
	uint64_t eq = 0;
	for (uint64_t t = t0; t < t1; t++)
		eq += same_at(e, t, d);
	return 2 * eq >= t1 - t0;
}

/* How far an add on diagonal d may go into [t0, t1), forward (or backward from t1): the
 * length that maximises twice the equal bytes minus the length, bsdiff's rule, when that
 * gains at least ENC_ADD_MIN bytes (random data gains a few by chance); else 0. */
static uint64_t extend_len(const enc *e, uint64_t t0, uint64_t t1, int64_t d, bool fwd)
{
	int64_t score = 0, best = 0;
	uint64_t len = 0, max = t1 - t0 < ENC_ADD_GAP_MAX ? t1 - t0 : ENC_ADD_GAP_MAX;
	for (uint64_t k = 0; k < max; k++) {
		uint64_t t = fwd ? t0 + k : t1 - 1 - k;
		score += same_at(e, t, d) ? 1 : -1;
		if (score > best) {
			best = score;
			len = k + 1;
		}
	}
	return best >= ENC_ADD_MIN ? len : 0;
}

/* The ops of the gap [t0, t1) between a region on diagonal dl and one on dr: adds that
 * extend each into it as far as they pay, literals between. */
static size_t plan_gap(const enc *e, uint64_t t0, uint64_t t1, int64_t dl, int64_t dr, step *s)
{
	size_t k = 0;
	uint64_t f = extend_len(e, t0, t1, dl, true);
	uint64_t b = f < t1 - t0 ? extend_len(e, t0 + f, t1, dr, false) : 0;
	if (f)
		s[k++] = (step){PKG__D2_OP_ADD, t0, t0 + f, dl, 0, 0};
	if (t0 + f < t1 - b)
		s[k++] = (step){PKG__D2_OP_LIT, t0 + f, t1 - b, 0, dl, dr};
	if (b)
		s[k++] = (step){PKG__D2_OP_ADD, t1 - b, t1, dr, 0, 0};
	return k;
}

/* Plans chunk [c0, c1) from its copies c[0..n): runs of copies on one diagonal with similar
 * gaps become one add (or stay a copy), the gaps between regions adds and literal runs.
 * *lits: the literal and difference bytes the chunk adds. s has room for 3 * n + 3 steps. */
static size_t plan_chunk(const enc *e, uint64_t c0, uint64_t c1, const pkg__d2_copy *c, size_t n,
                         int64_t diag0, step *s, uint64_t *lits)
{
	uint64_t t = c0;
	int64_t d = diag0;
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		int64_t di = (int64_t)c[i].b - (int64_t)c[i].t;
		size_t j = i;
		uint64_t end = c[i].t + c[i].len;
		while (j + 1 < n && (int64_t)c[j + 1].b - (int64_t)c[j + 1].t == di &&
		       similar(e, end, c[j + 1].t, di)) {
			j++;
			end = c[j].t + c[j].len;
		}
		if (c[i].t > t)
			k += plan_gap(e, t, c[i].t, d, di, s + k);
		s[k++] = (step){j > i ? PKG__D2_OP_ADD : PKG__D2_OP_COPY, c[i].t, end, di, 0, 0};
		t = end;
		d = di;
		i = j + 1;
	}
	if (t < c1)
		k += plan_gap(e, t, c1, d, d, s + k);
	*lits = 0;
	for (size_t i = 0; i < k; i++)
		if (s[i].kind != PKG__D2_OP_COPY)
			*lits += s[i].t1 - s[i].t0;
	return k;
}

/* Adds the planned chunk to the segment. */
static void gather(enc *e, const step *s, size_t k, uint64_t c1)
{
	for (size_t i = 0; i < k; i++) {
		uint64_t b = (uint64_t)((int64_t)s[i].t0 + s[i].d);
		op_put(e, s[i].kind, s[i].t0, s[i].t1, b);
		if (s[i].kind == PKG__D2_OP_LIT) {
			gap g = {s[i].t0, s[i].t1, s[i].dl, s[i].dr};
			pq_buf_add(&e->gaps, &g, sizeof(g));
		}
	}
	e->t1 = c1;
}

/* ---- the window ---------------------------------------------------------------------------- */

static int ext_cmp(const void *a, const void *b)
{
	const pkg__d2_ext *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Sorts and merges ranges that overlap or nearly touch; returns the total length. */
static uint64_t merge_ranges(pkg__d2_ext *r, size_t *n)
{
	size_t k = 0;
	uint64_t total = 0;
	qsort(r, *n, sizeof(*r), ext_cmp);
	for (size_t i = 0; i < *n; i++) {
		if (k && r[i].off <= r[k - 1].off + r[k - 1].len + 4096) {
			uint64_t end = r[i].off + r[i].len;
			if (end > r[k - 1].off + r[k - 1].len)
				r[k - 1].len = end - r[k - 1].off;
		} else {
			r[k++] = r[i];
		}
	}
	*n = k;
	for (size_t i = 0; i < k; i++)
		total += r[i].len;
	return total;
}

/* The base range of target [g0, g1) on diagonal d, widened by m, within the base. */
static pkg__d2_ext range_on(const enc *e, uint64_t g0, uint64_t g1, int64_t d, uint64_t m)
{
	int64_t lo = (int64_t)g0 + d - (int64_t)m, hi = (int64_t)g1 + d + (int64_t)m;
	if (lo < 0)
		lo = 0;
	if (hi > (int64_t)e->base_len)
		hi = (int64_t)e->base_len;
	if (hi <= lo) { /* off the base: its last bytes */
		uint64_t len = e->base_len < m + 1 ? e->base_len : m + 1;
		return (pkg__d2_ext){.off = e->base_len - len, .len = len};
	}
	return (pkg__d2_ext){.off = (uint64_t)lo, .len = (uint64_t)(hi - lo)};
}

/* The window of the gathered segment: the base ranges on the diagonals next to each literal
 * run, with margins as wide as the window allows. */
static int choose_window(const enc *e, coded *c)
{
	const gap *g = (const gap *)(const void *)e->gaps.p;
	size_t ng = e->gaps.len / sizeof(gap), k = 0;
	c->n_ext = 0;
	if (!e->lit_len || !e->base_len || !e->win_max)
		return PQ_OK;
	if (e->base_len <= e->win_max) {
		c->ext[0] = (pkg__d2_ext){0, e->base_len};
		c->n_ext = 1;
		return PQ_OK;
	}
	pkg__d2_ext *r = malloc(2 * ng * sizeof(*r));
	if (!r)
		return pq_err_set(PQ_ERR_NOMEM, "delta window");
	for (uint64_t m = ENC_MARGIN;; m /= 2) {
		k = 0;
		for (size_t i = 0; i < ng; i++) {
			r[k++] = range_on(e, g[i].g0, g[i].g1, g[i].dl, m);
			if (g[i].dr != g[i].dl)
				r[k++] = range_on(e, g[i].g0, g[i].g1, g[i].dr, m);
		}
		uint64_t total = merge_ranges(r, &k);
		if ((total <= e->win_max && k <= PKG__D2_EXT_MAX) || m < 64)
			break;
	}
	uint64_t room = e->win_max;
	for (size_t i = 0; i < k && c->n_ext < PKG__D2_EXT_MAX && room; i++) {
		uint64_t len = r[i].len < room ? r[i].len : room;
		c->ext[c->n_ext++] = (pkg__d2_ext){r[i].off, len};
		room -= len;
	}
	free(r);
	return PQ_OK;
}

/* The window as one buffer: the base itself for a single range, else e->win. */
static const uint8_t *window_of(enc *e, const coded *c, uint64_t *len)
{
	*len = 0;
	if (c->n_ext == 1) {
		*len = c->ext[0].len;
		return e->base + c->ext[0].off;
	}
	for (uint32_t i = 0; i < c->n_ext; i++) {
		memcpy(e->win + *len, e->base + c->ext[i].off, c->ext[i].len);
		*len += c->ext[i].len;
	}
	return e->win;
}

/* ---- compressing ------------------------------------------------------------------------------
 */

static unsigned log2_ceil(uint64_t v)
{
	unsigned l = 10;
	while (l < 30 && (1ull << l) < v)
		l++;
	return l;
}

/* zstd at level with the window as prefix, into e->zbuf. */
static int code_zstd(enc *e, int level, const uint8_t *w, uint64_t wlen, size_t *out)
{
	ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_and_parameters);
	unsigned wlog = log2_ceil(wlen + e->lit_len);
	size_t r = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_windowLog, (int)wlog);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_enableLongDistanceMatching, wlog > 24);
	if (!ZSTD_isError(r) && wlen)
		r = ZSTD_CCtx_refPrefix(e->cctx, w, wlen);
	if (!ZSTD_isError(r))
		r = ZSTD_compress2(e->cctx, e->zbuf, e->zbuf_cap, e->lit, e->lit_len);
	if (ZSTD_isError(r))
		return pq_err_set(PQ_ERR_RANGE, "zstd: %s", ZSTD_getErrorName(r));
	*out = r;
	return PQ_OK;
}

/* The LZMA2 filter chain of a segment: its dictionary holds the window and the literals. */
void pkg__d2_lzma_opts(lzma_options_lzma *o, uint32_t preset, const uint8_t *w, uint64_t wlen,
                       uint64_t lit_len)
{
	uint64_t dict = wlen + lit_len;
	lzma_lzma_preset(o, preset);
	o->dict_size = dict < LZMA_DICT_SIZE_MIN ? LZMA_DICT_SIZE_MIN : (uint32_t)dict;
	o->preset_dict = wlen ? w : NULL;
	o->preset_dict_size = (uint32_t)wlen;
}

/* LZMA2 with the window as preset dictionary, into e->lbuf (PQ_ERR_RANGE: did not fit). */
static int code_lzma(enc *e, const uint8_t *w, uint64_t wlen, size_t *out)
{
	lzma_options_lzma o;
	pkg__d2_lzma_opts(&o, e->lzma_preset, w, wlen, e->lit_len);
	lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &o}, {LZMA_VLI_UNKNOWN, NULL}};
	*out = 0;
	lzma_ret r = lzma_raw_buffer_encode(f, NULL, e->lit, e->lit_len, e->lbuf, out, e->lbuf_cap);
	if (r == LZMA_BUF_ERROR)
		return PQ_ERR_RANGE;
	if (r != LZMA_OK)
		return pq_err_set(r == LZMA_MEM_ERROR ? PQ_ERR_NOMEM : PQ_ERR_RANGE,
		                  "lzma: error %d", (int)r);
	return PQ_OK;
}

/* Codes the gathered literals in the smallest of LZMA2, zstd (tried when LZMA2 gains
 * little) and stored. Literals that zstd's fastest level cannot shrink by 1 % (new
 * compressed or encrypted data) skip the slow coders: they would not do better. */
static int code_literals(enc *e, coded *c)
{
	uint64_t wlen;
	size_t lz = 0, zs = 0;
	c->lit_size = 0;
	c->flags &= ~(3u << PKG__D2_LIT_SHIFT);
	if (!e->lit_len)
		return PQ_OK;
	const uint8_t *w = window_of(e, c, &wlen);
	int rc = code_zstd(e, 1, w, wlen, &zs);
	if (rc == PQ_OK && zs < e->lit_len - e->lit_len / 100) {
		rc = code_lzma(e, w, wlen, &lz);
		if (rc == PQ_ERR_RANGE || (rc == PQ_OK && lz > e->lit_len / 2))
			rc = code_zstd(e, e->level, w, wlen, &zs);
	}
	if (rc != PQ_OK)
		return rc;
	unsigned codec = PKG__D2_LIT_RAW;
	uint64_t best = e->lit_len;
	if (lz && lz < best) {
		codec = PKG__D2_LIT_LZMA2;
		best = lz;
		c->lit_data = e->lbuf;
	}
	if (zs && zs < best) {
		codec = PKG__D2_LIT_ZSTD;
		best = zs;
		c->lit_data = e->zbuf;
	}
	if (codec == PKG__D2_LIT_RAW) {
		c->lit_data = e->lit;
		c->n_ext = 0;
	}
	c->flags |= codec << PKG__D2_LIT_SHIFT;
	c->lit_size = best;
	return PQ_OK;
}

/* Codes the ops (zstd when smaller) and the literals of the gathered segment. */
static int code_segment(enc *e, coded *c, bool whole_window)
{
	*c = (coded){0};
	op_flush(e);
	if (e->dif_n) { /* the literal stream: all the differences, then all the literals */
		memmove(e->lit + e->dif_n, e->lit, e->lit_len - e->dif_n);
		memcpy(e->lit, e->dif, e->dif_n);
		e->dif_n = 0;
	}
	if (e->ops.err || e->gaps.err)
		return pq_err_set(PQ_ERR_NOMEM, "delta ops");
	if (e->ops.len > e->ops_cap)
		return pq_err_set(PQ_ERR_RANGE, "a delta segment's ops outgrew their room");
	c->ops_len = e->ops.len;
	c->lit_len = e->lit_len;
	size_t r =
	    ZSTD_compressCCtx(e->cctx, e->obuf, e->obuf_cap, e->ops.p, e->ops.len, ENC_OPS_LEVEL);
	if (ZSTD_isError(r))
		return pq_err_set(PQ_ERR_RANGE, "zstd: %s", ZSTD_getErrorName(r));
	c->ops_data = r < e->ops.len ? e->obuf : (const uint8_t *)e->ops.p;
	c->ops_size = r < e->ops.len ? r : e->ops.len;
	c->flags = r < e->ops.len ? PKG__D2_OPS_ZSTD : 0;
	int rc = PQ_OK;
	if (whole_window && e->base_len) {
		c->ext[0] = (pkg__d2_ext){0, e->base_len};
		c->n_ext = 1;
	} else {
		rc = choose_window(e, c);
	}
	return rc == PQ_OK ? code_literals(e, c) : rc;
}

/* ---- segments -----------------------------------------------------------------------------------
 */

/* The SHA-256 of the segment's target bytes, read in pieces whose pages are given back. */
static int hash_target(enc *e, uint8_t h[32])
{
	pq_hash_ctx *ctx = NULL;
	int rc = pq_hash_new(PQ_HASH_SHA256, &ctx);
	for (uint64_t t = e->t0; rc == PQ_OK && t < e->t1; t += ENC_HASH_PIECE) {
		uint64_t n = e->t1 - t < ENC_HASH_PIECE ? e->t1 - t : ENC_HASH_PIECE;
		rc = pq_hash_update(ctx, e->tg + t, n);
		pkg__d2_release_pages(e->tg + t, n);
	}
	if (rc == PQ_OK)
		rc = pq_hash_final(ctx, h);
	pq_hash_free(ctx);
	return rc;
}

/* Writes a coded segment and its table entry. */
static int emit(enc *e, const coded *c)
{
	pkg__d2_seg s = {.target_len = e->t1 - e->t0,
	                 .flags = c->flags,
	                 .ops_len = c->ops_len,
	                 .ops_size = c->ops_size,
	                 .lit_len = c->lit_len,
	                 .lit_size = c->lit_size,
	                 .n_ext = c->n_ext};
	uint8_t h[32];
	memcpy(s.ext, c->ext, sizeof(s.ext));
	int rc = hash_target(e, h);
	if (rc == PQ_OK)
		rc = e->sink(c->ops_data, c->ops_size, e->user);
	if (rc == PQ_OK && c->lit_size)
		rc = e->sink(c->lit_data, c->lit_size, e->user);
	if (rc != PQ_OK)
		return rc;
	memcpy(s.hash, h, PKG__D2_HASH_LEN);
	e->written += c->ops_size + c->lit_size;
	pkg__d2_seg_encode(&e->table, &s);
	e->segments++;
	uint64_t mem = pkg__d2_seg_memory(&s) + PKG__D2_APPLY_FIXED;
	if (mem > e->apply_mem)
		e->apply_mem = mem;
	return PQ_OK;
}

/* Codes and writes the gathered segment, then starts the next one at t1. */
static int flush(enc *e)
{
	coded c;
	int rc = PQ_OK;
	if (e->t1 > e->t0) {
		rc = code_segment(e, &c, false);
		if (rc == PQ_OK)
			rc = emit(e, &c);
	}
	e->t0 = e->t1;
	e->cur = 0;
	e->lit_len = 0;
	e->dif_n = 0;
	e->ops.len = 0;
	e->gaps.len = 0;
	return rc;
}

/* The smallest coded form of a one-segment target so far, its bytes kept aside. */
typedef struct {
	coded c;
	pq_buf data;
	bool set;
} best_form;

static void keep_best(best_form *b, const coded *c)
{
	if (b->set && b->c.ops_size + b->c.lit_size <= c->ops_size + c->lit_size)
		return;
	b->data.len = 0;
	pq_buf_add(&b->data, c->ops_data, c->ops_size);
	pq_buf_add(&b->data, c->lit_data, c->lit_size);
	b->c = *c;
	b->set = true;
}

/* Empties the gathered segment for another plan of the same target bytes. */
static void restart(enc *e)
{
	e->ops.len = 0;
	e->gaps.len = 0;
	e->lit_len = 0;
	e->dif_n = 0;
	e->cur = 0;
	e->pend_len = 0;
}

/* A step of the suffix-array plan (pkg__d2_sa_fn). */
static void sa_step(void *user, unsigned kind, uint64_t t0, uint64_t t1, uint64_t b)
{
	enc *e = user;
	op_put(e, kind, t0, t1, b);
	if (kind == PKG__D2_OP_LIT) {
		gap g = {t0, t1, 0, 0};
		pq_buf_add(&e->gaps, &g, sizeof(g));
	}
}

/* A target that fits one segment, its base one window: three plans, the smallest kept. The
 * gathered copies and adds (a); all literals against the whole base, what `zstd
 * --patch-from` and xz with a preset dictionary do (b); bsdiff's alignment from a suffix
 * array of the base, when it is small enough (c). */
static int whole(enc *e)
{
	best_form best = {.set = false};
	pq_buf_init(&best.data, SIZE_MAX / 2);
	coded c;
	bool small = e->ops.len <= 12; /* one or two ops: nothing to gain */
	int rc = code_segment(e, &c, false);
	if (rc == PQ_OK)
		keep_best(&best, &c);
	if (rc == PQ_OK && !small) {
		restart(e);
		sa_step(e, PKG__D2_OP_LIT, 0, e->tg_len, 0);
		rc = code_segment(e, &c, true);
		if (rc == PQ_OK)
			keep_best(&best, &c);
	}
	if (rc == PQ_OK && !small && e->base_len <= PKG__D2_SA_MAX) {
		restart(e);
		rc = pkg__d2_sa_plan(e->base, e->base_len, e->tg, e->tg_len, sa_step, e);
		/* its stream, mostly differences, gains from LZMA's extreme search */
		uint32_t preset = e->lzma_preset;
		if (e->level >= 19)
			e->lzma_preset |= LZMA_PRESET_EXTREME;
		if (rc == PQ_OK)
			rc = code_segment(e, &c, true);
		e->lzma_preset = preset;
		if (rc == PQ_OK)
			keep_best(&best, &c);
	}
	if (rc == PQ_OK && best.data.err)
		rc = pq_err_set(PQ_ERR_NOMEM, "delta buffers");
	if (rc == PQ_OK) {
		best.c.ops_data = (const uint8_t *)best.data.p;
		best.c.lit_data = best.c.ops_data + best.c.ops_size;
		rc = emit(e, &best.c);
	}
	pq_buf_free(&best.data);
	return rc;
}

static int encode_all(enc *e, const pkg_progress *p)
{
	int rc = PQ_OK;
	uint64_t chunk = e->lit_cap / 4 < ENC_CHUNK ? e->lit_cap / 4 : ENC_CHUNK;
	bool one = e->tg_len <= e->lit_cap && e->base_len <= e->win_max;
	for (uint64_t c0 = 0; rc == PQ_OK && c0 < e->tg_len;) {
		uint64_t c1 = e->tg_len - c0 > chunk ? c0 + chunk : e->tg_len;
		if ((rc = pkg__cancelled(p)) != PQ_OK)
			break;
		pkg__d2_copy *cp = NULL;
		size_t n = 0, k = 0;
		int64_t diag0 = e->diag;
		uint64_t lits = 0;
		rc = pkg__d2_matches(e->ix, e->tg, c0, c1, ENC_MIN_COPY, &e->diag, &cp, &n);
		step *s = rc == PQ_OK ? malloc((3 * n + 3) * sizeof(*s)) : NULL;
		if (rc == PQ_OK && !s)
			rc = pq_err_set(PQ_ERR_NOMEM, "delta plan");
		if (rc == PQ_OK)
			k = plan_chunk(e, c0, c1, cp, n, diag0, s, &lits);
		if (rc == PQ_OK && e->t1 > e->t0 &&
		    (e->lit_len + lits > e->lit_cap || c1 - e->t0 > ENC_SPAN_MAX ||
		     e->gaps.len / sizeof(gap) + k > ENC_GAPS_MAX ||
		     e->ops.len + 15 * (k + 1) > e->ops_cap))
			rc = flush(e);
		if (rc == PQ_OK)
			gather(e, s, k, c1);
		free(s);
		free(cp);
		if (!one) { /* the chunk's bytes are in the plan now; the base's, now and then */
			pkg__d2_release_pages(e->tg + c0, c1 - c0);
			if (c1 % ENC_RELEASE_EVERY < chunk)
				pkg__d2_release_pages(e->base, e->base_len);
		}
		c0 = c1;
		pkg__progress(p, c0, e->tg_len);
	}
	if (rc == PQ_OK && e->t1 > e->t0)
		rc = one ? whole(e) : flush(e);
	return rc;
}

/* ---- the whole delta ----------------------------------------------------------------------------
 */

static uint64_t lzma_enc_memory(const enc *e)
{
	lzma_options_lzma o;
	pkg__d2_lzma_opts(&o, e->lzma_preset, NULL, 0, e->win_max + e->lit_cap);
	lzma_filter f[2] = {{LZMA_FILTER_LZMA2, &o}, {LZMA_VLI_UNKNOWN, NULL}};
	uint64_t m = lzma_raw_encoder_memusage(f);
	return m == UINT64_MAX ? (1ull << 40) : m;
}

static int enc_setup(enc *e, const pkg__d2_enc_opts *o)
{
	uint64_t limit = o->mem_limit ? o->mem_limit : PKG_DELTA_ENC_MEM_DEFAULT;
	int rc = size_for_limit(e, o->apply_limit ? o->apply_limit : PKG_DELTA_APPLY_MEM_DEFAULT);
	if (rc != PQ_OK)
		return rc;
	ZSTD_compressionParameters cp = ZSTD_getCParams(e->level, e->lit_cap, e->win_max);
	cp.windowLog = log2_ceil(e->win_max + e->lit_cap);
	e->lbuf_cap = e->lit_cap + e->lit_cap / 2 + 65536;
	e->zbuf_cap = ZSTD_compressBound(e->lit_cap);
	e->obuf_cap = ZSTD_compressBound(e->ops_cap);
	uint64_t coders = ZSTD_estimateCCtxSize_usingCParams(cp) + lzma_enc_memory(e);
	uint64_t bufs = 2 * e->lit_cap + e->lbuf_cap + e->zbuf_cap + e->obuf_cap + 3 * e->ops_cap +
	                (e->base_len > e->win_max ? e->win_max : 0);
	if (coders + bufs + ENC_RELEASE_EVERY + (16u << 20) > limit)
		return pq_err_set(
		    PQ_ERR_RANGE,
		    "making this delta needs about %llu MiB besides the index, more than "
		    "the memory limit of %llu MiB: raise the limit or lower the level",
		    (unsigned long long)(coders + bufs) >> 20, (unsigned long long)limit >> 20);
	rc = pkg__d2_index_new(e->base, e->base_len,
	                       limit - coders - bufs - ENC_RELEASE_EVERY - (16u << 20), o->progress,
	                       &e->ix);
	if (rc != PQ_OK)
		return rc;
	pkg__d2_release_pages(e->base, e->base_len);
	e->lit = malloc(e->lit_cap);
	e->dif = malloc(e->lit_cap);
	e->lbuf = malloc(e->lbuf_cap);
	e->zbuf = malloc(e->zbuf_cap);
	e->obuf = malloc(e->obuf_cap);
	e->win = e->base_len > e->win_max ? malloc(e->win_max ? e->win_max : 1) : NULL;
	e->cctx = ZSTD_createCCtx();
	if (!e->lit || !e->dif || !e->lbuf || !e->zbuf || !e->obuf || !e->cctx ||
	    (e->base_len > e->win_max && !e->win))
		return pq_err_set(PQ_ERR_NOMEM, "delta encoder buffers");
	return PQ_OK;
}

static void enc_free(enc *e)
{
	pkg__d2_index_free(e->ix);
	ZSTD_freeCCtx(e->cctx);
	free(e->lit);
	free(e->dif);
	free(e->lbuf);
	free(e->zbuf);
	free(e->obuf);
	free(e->win);
	pq_buf_free(&e->table);
	pq_buf_free(&e->ops);
	pq_buf_free(&e->gaps);
}

int pkg__d2_encode(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                   uint64_t target_len, const pkg__d2_enc_opts *o, pkg_sink_fn sink, void *user,
                   pkg__delta_desc *d)
{
	enc e = {.base = base,
	         .base_len = base_len,
	         .tg = target,
	         .tg_len = target_len,
	         .level = o->level ? o->level : PKG_DELTA_LEVEL_DEFAULT,
	         .sink = sink,
	         .user = user};
	memset(d, 0, sizeof(*d));
	if (e.level < 1 || e.level > ZSTD_maxCLevel())
		return pq_err_set(PQ_ERR_INVAL, "delta level %d: 1..%d", e.level, ZSTD_maxCLevel());
	pq_buf_init(&e.ops, SIZE_MAX / 2); /* bounded by the segment checks, not here */
	pq_buf_init(&e.gaps, SIZE_MAX / 2);
	pq_buf_init(&e.table, SIZE_MAX / 2);
	e.lzma_preset = e.level >= 12 ? 6 : e.level >= 6 ? 3 : 1;
	uint64_t apply_limit = o->apply_limit ? o->apply_limit : PKG_DELTA_APPLY_MEM_DEFAULT;
	int rc = enc_setup(&e, o);
	if (rc == PQ_OK)
		rc = encode_all(&e, o->progress);
	if (rc == PQ_OK && e.table.err)
		rc = pq_err_set(PQ_ERR_NOMEM, "delta segment table");
	if (rc == PQ_OK && e.table.len > PKG__D2_TABLE_MAX)
		rc = pq_err_set(PQ_ERR_RANGE, "the delta's segment table is too large");
	if (rc == PQ_OK)
		rc = sink((const uint8_t *)e.table.p, e.table.len, user);
	if (rc == PQ_OK) {
		d->version = PKG__D2_VERSION;
		d->base_size = base_len;
		d->target_size = target_len;
		d->segments = e.segments;
		d->table_off = PKG__D2_DESC_LEN + e.written;
		d->table_len = (uint32_t)e.table.len;
		d->apply_memory = (e.segments ? e.apply_mem : PKG__D2_APPLY_FIXED) +
		                  pkg__d2_table_memory(e.table.len, e.segments);
		if (d->apply_memory > apply_limit)
			rc = pq_err_set(
			    PQ_ERR_RANGE,
			    "this delta would need %llu MiB to apply (%u segments), more than "
			    "the apply memory limit of %llu MiB: raise it",
			    (unsigned long long)(d->apply_memory + (1u << 20) - 1) >> 20,
			    e.segments, (unsigned long long)apply_limit >> 20);
	}
	enc_free(&e);
	return rc;
}
