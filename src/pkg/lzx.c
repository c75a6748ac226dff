/* lzx.c: LZMA streams taken apart into their tokens and coded back (lzx.h). The model, the
 * state machine and the range coder follow the LZMA specification (lzma-specification.txt of
 * the LZMA SDK); the decoder and the encoder share them, so that a token form codes back to
 * the exact bytes it was decoded from. */
#include "pkg/lzx.h"

#include <stdlib.h>
#include <string.h>

#include "pkg/pkg_int.h"

#define STATES    12
#define POS_MAX   16 /* pb <= 4 */
#define LIT_PROBS 0x300
#define LEN_MIN   2
#define LEN_MAX   273
#define TOP       (1u << 24)
#define OUT_BUF   (64u << 10)

enum {
	K_LIT = 0,
	K_MATCH = 1,
	K_REP0 = 2,
	K_SHORT = 6,
	K_BITS = 3
};

typedef uint16_t prob;

typedef struct {
	prob choice, choice2, low[POS_MAX][8], mid[POS_MAX][8], high[256];
} len_model;

/* The adaptive model, the state machine and the window, the same on both sides. */
typedef struct {
	unsigned lc, lp, pb;
	prob is_match[STATES][POS_MAX], is_rep[STATES], g0[STATES], g1[STATES], g2[STATES];
	prob rep0_long[STATES][POS_MAX];
	prob slot[4][64], special[115], align[16];
	len_model len, rep_len;
	prob lit[LIT_PROBS << 4];
	unsigned state;
	uint32_t rep[4];
	uint8_t *win; /* the last `wcap` bytes produced, circular */
	uint64_t wcap, wpos, pos, usize;
	/* output, buffered */
	uint8_t out[OUT_BUF];
	size_t out_len;
	uint64_t out_total;
	pkg_sink_fn sink;
	void *user;
} model;

static void fill_probs(prob *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = 1024;
}

static int model_init(model *m, const pkg__lzx_stream *s, pkg_sink_fn sink, void *user)
{
	m->lc = s->props % 9;
	m->lp = s->props / 9 % 5;
	m->pb = s->props / 45;
	fill_probs(&m->is_match[0][0], sizeof(m->is_match) / sizeof(prob));
	fill_probs(m->is_rep, STATES);
	fill_probs(m->g0, STATES);
	fill_probs(m->g1, STATES);
	fill_probs(m->g2, STATES);
	fill_probs(&m->rep0_long[0][0], sizeof(m->rep0_long) / sizeof(prob));
	fill_probs(&m->slot[0][0], sizeof(m->slot) / sizeof(prob));
	fill_probs(m->special, sizeof(m->special) / sizeof(prob));
	fill_probs(m->align, sizeof(m->align) / sizeof(prob));
	fill_probs(&m->len.choice, sizeof(len_model) / sizeof(prob));
	fill_probs(&m->rep_len.choice, sizeof(len_model) / sizeof(prob));
	fill_probs(m->lit, (size_t)LIT_PROBS << (m->lc + m->lp));
	m->state = 0;
	memset(m->rep, 0, sizeof(m->rep));
	m->wcap = pkg__lzx_window(s);
	m->wpos = m->pos = 0;
	m->usize = s->usize;
	m->out_len = 0;
	m->out_total = 0;
	m->sink = sink;
	m->user = user;
	m->win = malloc(m->wcap ? m->wcap : 1);
	return m->win ? PQ_OK
	              : pq_err_set(PQ_ERR_NOMEM, "lzma window of %llu bytes",
	                           (unsigned long long)m->wcap);
}

static int emit(model *m, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		if (m->out_len == OUT_BUF) {
			int rc = m->sink(m->out, m->out_len, m->user);
			if (rc != PQ_OK)
				return rc;
			m->out_len = 0;
		}
		size_t k = OUT_BUF - m->out_len < n ? OUT_BUF - m->out_len : n;
		memcpy(m->out + m->out_len, b, k);
		m->out_len += k;
		m->out_total += k;
		b += k;
		n -= k;
	}
	return PQ_OK;
}

static int emit_flush(model *m)
{
	int rc = m->out_len ? m->sink(m->out, m->out_len, m->user) : PQ_OK;
	m->out_len = 0;
	return rc;
}

/* The byte `dist` + 1 back from the current position (dist < min(pos, wcap)). */
static inline uint8_t win_at(const model *m, uint32_t dist)
{
	uint64_t back = (uint64_t)dist + 1;
	return m->win[m->wpos >= back ? m->wpos - back : m->wpos + m->wcap - back];
}

static inline void win_put(model *m, uint8_t b)
{
	m->win[m->wpos] = b;
	if (++m->wpos == m->wcap)
		m->wpos = 0;
	m->pos++;
}

static inline prob *lit_probs(model *m)
{
	unsigned prev = m->pos ? win_at(m, 0) : 0;
	size_t ctx = ((m->pos & ((1u << m->lp) - 1)) << m->lc) + (prev >> (8 - m->lc));
	return m->lit + LIT_PROBS * ctx;
}

static inline unsigned pos_state(const model *m)
{
	return (unsigned)(m->pos & ((1u << m->pb) - 1));
}

static inline void state_lit(model *m)
{
	m->state = m->state < 4 ? 0 : m->state < 10 ? m->state - 3 : m->state - 6;
}

/* A match of len bytes at distance dist: checked against what was produced, copied. */
static int copy_match(model *m, uint32_t dist, unsigned len)
{
	if (dist >= m->pos || dist >= m->wcap || len > m->usize - m->pos)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "lzma: a match at distance %u, length %u, at %llu "
		                  "of %llu bytes",
		                  dist, len, (unsigned long long)m->pos,
		                  (unsigned long long)m->usize);
	uint64_t back = (uint64_t)dist + 1;
	uint64_t from = m->wpos >= back ? m->wpos - back : m->wpos + m->wcap - back;
	m->pos += len;
	for (unsigned i = 0; i < len; i++) { /* byte by byte: the source may overlap */
		m->win[m->wpos] = m->win[from];
		if (++m->wpos == m->wcap)
			m->wpos = 0;
		if (++from == m->wcap)
			from = 0;
	}
	return PQ_OK;
}

/* The 0-based rep index k made the last distance; returns it. */
static uint32_t rep_take(model *m, unsigned k)
{
	uint32_t d = m->rep[k];
	for (unsigned i = k; i > 0; i--)
		m->rep[i] = m->rep[i - 1];
	m->rep[0] = d;
	return d;
}

int pkg__lzx_header(const uint8_t *p, size_t len, uint64_t max_usize, pkg__lzx_stream *s)
{
	memset(s, 0, sizeof(*s));
	if (len < PKG__LZX_HDR_LEN + 5)
		return pq_err_set(PQ_ERR_FORMAT, "lzma: stream too short");
	s->props = p[0];
	s->dict = pkg__get32(p + 1);
	s->usize = pkg__get64(p + 5);
	unsigned lc = s->props % 9, lp = s->props / 9 % 5;
	if (s->props >= 9 * 5 * 5 || lc + lp > 4)
		return pq_err_set(PQ_ERR_FORMAT, "lzma: properties 0x%02x not taken", s->props);
	if (s->dict < 4096)
		return pq_err_set(PQ_ERR_FORMAT, "lzma: dictionary of %u bytes", s->dict);
	if (s->usize == 0 || s->usize > max_usize)
		return pq_err_set(PQ_ERR_FORMAT, "lzma: size %llu not taken",
		                  (unsigned long long)s->usize);
	if (p[PKG__LZX_HDR_LEN] != 0)
		return pq_err_set(PQ_ERR_FORMAT, "lzma: bad range coder start");
	return PQ_OK;
}

/* ---- sources --------------------------------------------------------------------------- */

/* The next byte, or -1 at the end (or on a failing fill, whose error is in *rc). */
static inline int src_byte(pkg__lzx_src *in, int *rc)
{
	if (in->p == in->end) {
		size_t n = 0;
		if (!in->fill)
			return -1;
		*rc = in->fill(in->user, &in->p, &n);
		if (*rc != PQ_OK || n == 0)
			return -1;
		in->end = in->p + n;
	}
	in->used++;
	return *in->p++;
}

static int src_varint(pkg__lzx_src *in, uint64_t *v)
{
	int rc = PQ_OK;
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		int c = src_byte(in, &rc);
		if (c < 0)
			return rc != PQ_OK ? rc : pq_err_set(PQ_ERR_FORMAT, "lzma tokens: cut");
		if (shift == 63 && (c & 0x7e))
			break;
		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return PQ_OK;
	}
	return pq_err_set(PQ_ERR_FORMAT, "lzma tokens: varint over 64 bits");
}

/* ---- decoding: stream to tokens ------------------------------------------------------------ */

typedef struct {
	pkg__lzx_src *in;
	uint32_t range, code;
	bool cut; /* the stream ended early */
	int err;
} rdec;

static inline void rd_norm(rdec *r)
{
	if (r->range < TOP) {
		int err = PQ_OK;
		int c = src_byte(r->in, &err);
		if (err != PQ_OK && r->err == PQ_OK) /* the first failure sticks */
			r->err = err;
		if (c < 0)
			r->cut = true;
		r->range <<= 8;
		r->code = (r->code << 8) | (uint8_t)(c < 0 ? 0 : c);
	}
}

static inline unsigned rd_bit(rdec *r, prob *p)
{
	uint32_t bound = (r->range >> 11) * *p;
	unsigned b;
	if (r->code < bound) {
		r->range = bound;
		*p += (2048 - *p) >> 5;
		b = 0;
	} else {
		r->range -= bound;
		r->code -= bound;
		*p -= *p >> 5;
		b = 1;
	}
	rd_norm(r);
	return b;
}

static unsigned rd_tree(rdec *r, prob *p, unsigned bits)
{
	unsigned m = 1;
	for (unsigned i = 0; i < bits; i++)
		m = (m << 1) | rd_bit(r, p + m);
	return m - (1u << bits);
}

static unsigned rd_tree_rev(rdec *r, prob *p, unsigned bits)
{
	unsigned m = 1, v = 0;
	for (unsigned i = 0; i < bits; i++) {
		unsigned b = rd_bit(r, p + m);
		m = (m << 1) | b;
		v |= b << i;
	}
	return v;
}

static unsigned rd_len(rdec *r, len_model *l, unsigned ps)
{
	if (!rd_bit(r, &l->choice))
		return rd_tree(r, l->low[ps], 3);
	if (!rd_bit(r, &l->choice2))
		return 8 + rd_tree(r, l->mid[ps], 3);
	return 16 + rd_tree(r, l->high, 8);
}

static uint32_t rd_dist(rdec *r, model *m, unsigned len0)
{
	unsigned slot = rd_tree(r, m->slot[len0 < 4 ? len0 : 3], 6);
	if (slot < 4)
		return slot;
	unsigned nd = (slot >> 1) - 1;
	uint32_t d = (2u | (slot & 1)) << nd;
	if (slot < 14)
		return d + rd_tree_rev(r, m->special + d - slot, nd);
	uint32_t direct = 0;
	for (unsigned i = 0; i < nd - 4; i++) {
		r->range >>= 1;
		uint32_t b = r->code >= r->range;
		if (b)
			r->code -= r->range;
		direct = (direct << 1) | b;
		rd_norm(r);
	}
	return d + (direct << 4) + rd_tree_rev(r, m->align, 4);
}

typedef struct {
	uint8_t run[PKG__LZX_RUN_MAX];
	size_t n;
} lit_run;

_Static_assert(sizeof(model) + sizeof(lit_run) <= PKG__LZX_MODEL,
               "PKG__LZX_MODEL must cover the coder's state");

static void put_varint(uint8_t *t, size_t *n, uint64_t v)
{
	while (v >= 0x80) {
		t[(*n)++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t[(*n)++] = (uint8_t)v;
}

static int put_record(model *m, unsigned kind, unsigned n, uint64_t dist)
{
	uint8_t t[20];
	size_t k = 0;
	put_varint(t, &k, (uint64_t)n << K_BITS | kind);
	if (kind == K_MATCH)
		put_varint(t, &k, dist);
	return emit(m, t, k);
}

static int flush_run(model *m, lit_run *lr)
{
	if (lr->n == 0)
		return PQ_OK;
	int rc = put_record(m, K_LIT, (unsigned)lr->n, 0);
	if (rc == PQ_OK)
		rc = emit(m, lr->run, lr->n);
	lr->n = 0;
	return rc;
}

static unsigned dec_literal(rdec *r, model *m)
{
	prob *p = lit_probs(m);
	unsigned sym = 1;
	if (m->state >= 7) {
		unsigned mb = win_at(m, m->rep[0]);
		for (int i = 7; i >= 0 && sym < 0x100; i--) {
			unsigned mbit = (mb >> i) & 1;
			unsigned b = rd_bit(r, p + ((1 + mbit) << 8) + sym);
			sym = (sym << 1) | b;
			if (b != mbit)
				break;
		}
	}
	while (sym < 0x100)
		sym = (sym << 1) | rd_bit(r, p + sym);
	return sym & 0xff;
}

/* One decoder step: a literal (into lr) or a match record. */
static int dec_step(rdec *r, model *m, lit_run *lr)
{
	unsigned ps = pos_state(m);
	if (!rd_bit(r, &m->is_match[m->state][ps])) {
		if (m->state >= 7 && m->rep[0] >= m->pos)
			return pq_err_set(PQ_ERR_FORMAT, "lzma: a literal refers before the start");
		uint8_t b = (uint8_t)dec_literal(r, m);
		state_lit(m);
		win_put(m, b);
		lr->run[lr->n++] = b;
		return lr->n == PKG__LZX_RUN_MAX ? flush_run(m, lr) : PQ_OK;
	}
	int rc = flush_run(m, lr);
	if (rc != PQ_OK)
		return rc;
	unsigned len0, kind;
	if (!rd_bit(r, &m->is_rep[m->state])) {
		len0 = rd_len(r, &m->len, ps);
		m->state = m->state < 7 ? 7 : 10;
		uint32_t d = rd_dist(r, m, len0);
		if (d == UINT32_MAX)
			return pq_err_set(PQ_ERR_FORMAT, "lzma: end marker (not taken)");
		m->rep[3] = m->rep[2];
		m->rep[2] = m->rep[1];
		m->rep[1] = m->rep[0];
		m->rep[0] = d;
		rc = put_record(m, K_MATCH, len0 + LEN_MIN, d);
		return rc == PQ_OK ? copy_match(m, d, len0 + LEN_MIN) : rc;
	}
	if (!rd_bit(r, &m->g0[m->state])) {
		if (!rd_bit(r, &m->rep0_long[m->state][ps])) {
			m->state = m->state < 7 ? 9 : 11;
			rc = put_record(m, K_SHORT, 1, 0);
			return rc == PQ_OK ? copy_match(m, m->rep[0], 1) : rc;
		}
		kind = 0;
	} else if (!rd_bit(r, &m->g1[m->state])) {
		kind = 1;
	} else {
		kind = rd_bit(r, &m->g2[m->state]) ? 3 : 2;
	}
	rep_take(m, kind);
	len0 = rd_len(r, &m->rep_len, ps);
	m->state = m->state < 7 ? 8 : 11;
	rc = put_record(m, K_REP0 + kind, len0 + LEN_MIN, 0);
	return rc == PQ_OK ? copy_match(m, m->rep[0], len0 + LEN_MIN) : rc;
}

/* The header and the range coder's first five bytes (h). */
static int read_header(pkg__lzx_src *in, uint64_t max_usize, pkg__lzx_stream *s,
                       uint8_t h[PKG__LZX_HDR_LEN + 5])
{
	int rc = PQ_OK;
	for (size_t i = 0; i < PKG__LZX_HDR_LEN + 5; i++) {
		int c = src_byte(in, &rc);
		if (c < 0)
			return rc != PQ_OK ? rc
			                   : pq_err_set(PQ_ERR_FORMAT, "lzma: stream too short");
		h[i] = (uint8_t)c;
	}
	return pkg__lzx_header(h, PKG__LZX_HDR_LEN + 5, max_usize, s);
}

int pkg__lzx_unpack(pkg__lzx_src *in, uint64_t max_usize, uint64_t max_window, pkg__lzx_stream *s,
                    pkg_sink_fn sink, void *user)
{
	uint64_t start = in->used;
	uint8_t h[PKG__LZX_HDR_LEN + 5];
	int rc = read_header(in, max_usize, s, h);
	if (rc != PQ_OK)
		return rc;
	if (pkg__lzx_window(s) > max_window)
		return pq_err_set(PQ_ERR_RANGE, "lzma: a window of %llu bytes, over %llu",
		                  (unsigned long long)pkg__lzx_window(s),
		                  (unsigned long long)max_window);
	model *m = malloc(sizeof(*m));
	lit_run *lr = malloc(sizeof(*lr));
	if (!m || !lr) {
		free(m);
		free(lr);
		return pq_err_set(PQ_ERR_NOMEM, "lzma decoder");
	}
	lr->n = 0;
	/* the coder starts with a zero byte, then the code's four bytes */
	rdec r = {.in = in, .range = UINT32_MAX, .err = PQ_OK};
	for (int i = 1; i <= 4; i++)
		r.code = (r.code << 8) | h[PKG__LZX_HDR_LEN + i];
	rc = model_init(m, s, sink, user);
	while (rc == PQ_OK && m->pos < m->usize) {
		rc = dec_step(&r, m, lr);
		if (rc == PQ_OK && (r.cut || r.err != PQ_OK))
			rc = r.err != PQ_OK ? r.err : pq_err_set(PQ_ERR_FORMAT, "lzma: stream cut");
	}
	if (rc == PQ_OK)
		rc = flush_run(m, lr);
	if (rc == PQ_OK)
		rc = emit_flush(m);
	s->clen = in->used - start;
	s->xlen = m->out_total;
	free(m->win);
	free(m);
	free(lr);
	return rc;
}

/* ---- encoding: tokens to stream ------------------------------------------------------------- */

typedef struct {
	model *m;
	uint64_t low;
	uint32_t range;
	uint8_t cache;
	uint64_t cache_size;
	int err; /* the first failed write */
} renc;

static void re_byte(renc *e, uint8_t b)
{
	if (e->err == PQ_OK)
		e->err = emit(e->m, &b, 1);
}

static void re_shift(renc *e)
{
	if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
		uint8_t carry = (uint8_t)(e->low >> 32), t = e->cache;
		do {
			re_byte(e, (uint8_t)(t + carry));
			t = 0xFF;
		} while (--e->cache_size != 0);
		e->cache = (uint8_t)(e->low >> 24);
	}
	e->cache_size++;
	e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void re_bit(renc *e, prob *p, unsigned b)
{
	uint32_t bound = (e->range >> 11) * *p;
	if (!b) {
		e->range = bound;
		*p += (2048 - *p) >> 5;
	} else {
		e->low += bound;
		e->range -= bound;
		*p -= *p >> 5;
	}
	if (e->range < TOP) {
		e->range <<= 8;
		re_shift(e);
	}
}

static void re_tree(renc *e, prob *p, unsigned bits, unsigned v)
{
	unsigned m = 1;
	for (unsigned i = bits; i-- > 0;) {
		unsigned b = (v >> i) & 1;
		re_bit(e, p + m, b);
		m = (m << 1) | b;
	}
}

static void re_tree_rev(renc *e, prob *p, unsigned bits, unsigned v)
{
	unsigned m = 1;
	for (unsigned i = 0; i < bits; i++) {
		unsigned b = (v >> i) & 1;
		re_bit(e, p + m, b);
		m = (m << 1) | b;
	}
}

static void re_len(renc *e, len_model *l, unsigned ps, unsigned len0)
{
	if (len0 < 8) {
		re_bit(e, &l->choice, 0);
		re_tree(e, l->low[ps], 3, len0);
	} else if (len0 < 16) {
		re_bit(e, &l->choice, 1);
		re_bit(e, &l->choice2, 0);
		re_tree(e, l->mid[ps], 3, len0 - 8);
	} else {
		re_bit(e, &l->choice, 1);
		re_bit(e, &l->choice2, 1);
		re_tree(e, l->high, 8, len0 - 16);
	}
}

static void re_dist(renc *e, unsigned len0, uint32_t d)
{
	model *m = e->m;
	unsigned slot = d;
	if (d >= 4) {
		unsigned n = 31 - (unsigned)__builtin_clz(d);
		slot = (n << 1) | ((d >> (n - 1)) & 1);
	}
	re_tree(e, m->slot[len0 < 4 ? len0 : 3], 6, slot);
	if (slot < 4)
		return;
	unsigned nd = (slot >> 1) - 1;
	uint32_t base = (2u | (slot & 1)) << nd, red = d - base;
	if (slot < 14) {
		re_tree_rev(e, m->special + base - slot, nd, red);
		return;
	}
	for (unsigned i = nd - 4; i-- > 0;) {
		e->range >>= 1;
		if ((red >> (4 + i)) & 1)
			e->low += e->range;
		if (e->range < TOP) {
			e->range <<= 8;
			re_shift(e);
		}
	}
	re_tree_rev(e, m->align, 4, red & 15);
}

static void enc_literal(renc *e, uint8_t byte)
{
	model *m = e->m;
	prob *p = lit_probs(m);
	unsigned sym = 1;
	bool matched = m->state >= 7;
	unsigned mb = matched ? win_at(m, m->rep[0]) : 0;
	for (int i = 7; i >= 0; i--) {
		unsigned b = (byte >> i) & 1;
		if (matched) {
			unsigned mbit = (mb >> i) & 1;
			re_bit(e, p + ((1 + mbit) << 8) + sym, b);
			matched = b == mbit;
		} else {
			re_bit(e, p + sym, b);
		}
		sym = (sym << 1) | b;
	}
	state_lit(m);
	win_put(m, byte);
}

static int enc_literals(renc *e, pkg__lzx_src *in, uint64_t n)
{
	model *m = e->m;
	int rc = PQ_OK;
	if (n == 0 || n > PKG__LZX_RUN_MAX || n > m->usize - m->pos)
		return pq_err_set(PQ_ERR_FORMAT, "lzma tokens: a run of %llu literals at %llu",
		                  (unsigned long long)n, (unsigned long long)m->pos);
	for (uint64_t i = 0; i < n; i++) {
		int c = src_byte(in, &rc);
		if (c < 0)
			return rc != PQ_OK ? rc : pq_err_set(PQ_ERR_FORMAT, "lzma tokens: cut");
		re_bit(e, &m->is_match[m->state][pos_state(m)], 0);
		enc_literal(e, (uint8_t)c);
	}
	return PQ_OK;
}

/* A match record (kind K_MATCH .. K_SHORT) of n bytes. */
static int enc_match(renc *e, pkg__lzx_src *in, unsigned kind, uint64_t n)
{
	model *m = e->m;
	unsigned ps = pos_state(m);
	uint64_t d = 0;
	if (kind == K_SHORT ? n != 1 : n < LEN_MIN || n > LEN_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "lzma tokens: a match of %llu bytes (kind %u)",
		                  (unsigned long long)n, kind);
	if (kind == K_MATCH) {
		int rc = src_varint(in, &d);
		if (rc != PQ_OK)
			return rc;
		if (d >= m->pos || d >= m->wcap)
			return pq_err_set(PQ_ERR_FORMAT, "lzma tokens: distance %llu at %llu",
			                  (unsigned long long)d, (unsigned long long)m->pos);
	} else if (m->pos == 0) {
		return pq_err_set(PQ_ERR_FORMAT, "lzma tokens: a repeat at the start");
	}
	re_bit(e, &m->is_match[m->state][ps], 1);
	re_bit(e, &m->is_rep[m->state], kind != K_MATCH);
	if (kind == K_MATCH) {
		re_len(e, &m->len, ps, (unsigned)n - LEN_MIN);
		re_dist(e, (unsigned)n - LEN_MIN, (uint32_t)d);
		m->state = m->state < 7 ? 7 : 10;
		m->rep[3] = m->rep[2];
		m->rep[2] = m->rep[1];
		m->rep[1] = m->rep[0];
		m->rep[0] = (uint32_t)d;
	} else if (kind == K_SHORT) {
		re_bit(e, &m->g0[m->state], 0);
		re_bit(e, &m->rep0_long[m->state][ps], 0);
		m->state = m->state < 7 ? 9 : 11;
	} else {
		unsigned k = kind - K_REP0;
		re_bit(e, &m->g0[m->state], k != 0);
		if (k == 0)
			re_bit(e, &m->rep0_long[m->state][ps], 1);
		else
			re_bit(e, &m->g1[m->state], k != 1);
		if (k >= 2)
			re_bit(e, &m->g2[m->state], k != 2);
		rep_take(m, k);
		re_len(e, &m->rep_len, ps, (unsigned)n - LEN_MIN);
		m->state = m->state < 7 ? 8 : 11;
	}
	return copy_match(m, m->rep[0], (unsigned)n);
}

int pkg__lzx_pack(pkg__lzx_src *in, pkg__lzx_stream *s, uint64_t max_window, pkg_sink_fn sink,
                  void *user)
{
	uint64_t start = in->used;
	if (s->props >= 225 || s->props % 9 + s->props / 9 % 5 > 4 || s->dict < 4096 ||
	    s->usize == 0)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "lzma: properties 0x%02x, dictionary %u, size %llu "
		                  "not taken",
		                  s->props, s->dict, (unsigned long long)s->usize);
	if (pkg__lzx_window(s) > max_window)
		return pq_err_set(PQ_ERR_RANGE, "lzma: a window of %llu bytes, over %llu",
		                  (unsigned long long)pkg__lzx_window(s),
		                  (unsigned long long)max_window);
	model *m = malloc(sizeof(*m));
	if (!m)
		return pq_err_set(PQ_ERR_NOMEM, "lzma encoder");
	renc e = {.m = m, .range = UINT32_MAX, .cache_size = 1, .err = PQ_OK};
	uint8_t h[PKG__LZX_HDR_LEN];
	h[0] = s->props;
	pkg__put32(h + 1, s->dict);
	pkg__put64(h + 5, s->usize);
	int rc = model_init(m, s, sink, user);
	if (rc == PQ_OK)
		rc = emit(m, h, sizeof(h));
	while (rc == PQ_OK && e.err == PQ_OK && m->pos < m->usize) {
		uint64_t tag;
		rc = src_varint(in, &tag);
		if (rc != PQ_OK)
			break;
		unsigned kind = tag & ((1u << K_BITS) - 1);
		uint64_t n = tag >> K_BITS;
		if (kind == K_LIT)
			rc = enc_literals(&e, in, n);
		else if (kind <= K_SHORT)
			rc = enc_match(&e, in, kind, n);
		else
			rc = pq_err_set(PQ_ERR_FORMAT, "lzma tokens: kind %u", kind);
	}
	for (int i = 0; rc == PQ_OK && i < 5; i++)
		re_shift(&e);
	if (rc == PQ_OK)
		rc = e.err;
	if (rc == PQ_OK && in->used - start != s->xlen)
		rc =
		    pq_err_set(PQ_ERR_FORMAT, "lzma tokens: %llu bytes used of %llu",
		               (unsigned long long)(in->used - start), (unsigned long long)s->xlen);
	if (rc == PQ_OK)
		rc = emit_flush(m);
	s->clen = m->out_total;
	free(m->win);
	free(m);
	return rc;
}
