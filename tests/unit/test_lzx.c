/* test_lzx.c: LZMA streams taken apart and coded back (src/pkg/lzx.c) and deltas through them
 * (src/pkg/delta_x.c, descriptor version 3), against streams from an encoder pqota did not
 * write: liblzma's raw LZMA1EXT encoder (no end marker), with the 13-byte LZMA-alone header
 * put before it here.
 *
 * Round trips over contents, properties, dictionaries and sizes (the token form also decoded
 * here by an independent reader, which must give back the original bytes); refusals of bad
 * headers, cut streams and bad token forms; the stream scan of a firmware-like image;
 * version-3 deltas end to end through the public API: size, refusals, interruptions that
 * resume, the memory limit.
 *
 * PQOTA_LZX_CORPUS=DIR: also writes the fuzz seeds of tests/fuzz/fuzz_lzx.c into DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <lzma.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "crypto/hash.h"
#include "pkg/delta.h"
#include "pkg/lzx.h"
#include "pkg/pkg.h"
#include "pkg/swpg.h"
#include "delta_fixture.h"
#include "testutil.h"

#define KIB (1u << 10)
#define MIB (1u << 20)

/* ---- contents ----------------------------------------------------------------------------- */

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t seeded(uint64_t seed)
{
	return seed * 0x9E3779B97F4A7C15ull + 1;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seeded(seed);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rng(&s) >> 24);
}

/* Words, spaces and line ends. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {
	    "the",    "firmware", "update",  "vehicle", "zone",      "gateway", "of",
	    "and",    "package",  "delta",   "image",   "signature", "to",      "a",
	    "is",     "version",  "install", "ECU",     "rollback",  "memory",  "stream",
	    "bytes",  "check",    "secure",  "boot",    "loader",    "with",    "for",
	    "kernel", "driver",   "PCI",     "USB",     "timer",     "clock",   "in"};
	uint64_t s = seeded(seed);
	size_t i = 0, col = 0;
	while (i < n) {
		const char *w = words[rng(&s) % (sizeof(words) / sizeof(words[0]))];
		for (size_t k = 0; w[k] && i < n; k++, col++)
			p[i++] = (uint8_t)w[k];
		if (i < n) {
			p[i++] = col > 70 ? '\n' : rng(&s) % 13 == 0 ? ',' : ' ';
			col = col > 70 ? 0 : col + 1;
		}
	}
}

/* x86-64-like code: prologues, moves with small displacements, calls to a few functions,
 * conditional jumps, epilogues, padding to 16 bytes. */
static void fill_code(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seeded(seed);
	size_t i = 0;
	while (i < n) {
		uint8_t ins[32]; /* padding: up to 17 bytes */
		size_t k = 0;
		switch (rng(&s) % 10) {
		case 0: /* push rbp; mov rbp, rsp; sub rsp, imm8 */
			memcpy(ins, "\x55\x48\x89\xe5\x48\x83\xec", 7);
			k = 7;
			ins[k++] = (uint8_t)(8 * (1 + rng(&s) % 8));
			break;
		case 1:
		case 2: /* mov eax, [rbp - disp8] */
			ins[k++] = 0x8b;
			ins[k++] = 0x45;
			ins[k++] = (uint8_t)(0x100 - 4 * (1 + rng(&s) % 8));
			break;
		case 3: { /* call rel32 to one of a few functions */
			int32_t rel = (int32_t)(0x1000 * (int)(rng(&s) % 6)) - (int32_t)i;
			ins[k++] = 0xe8;
			memcpy(ins + k, &rel, 4);
			k += 4;
			break;
		}
		case 4: /* test eax, eax; jne rel8 */
			memcpy(ins, "\x85\xc0\x75", 3);
			k = 3;
			ins[k++] = (uint8_t)(rng(&s) % 0x40);
			break;
		case 5: /* mov [rbp - disp8], reg */
			ins[k++] = 0x89;
			ins[k++] = (uint8_t)(0x45 + 8 * (rng(&s) % 4));
			ins[k++] = (uint8_t)(0x100 - 4 * (1 + rng(&s) % 8));
			break;
		case 6: /* lea rdi, [rip + rel32] */
			memcpy(ins, "\x48\x8d\x3d", 3);
			k = 3;
			for (int b = 0; b < 4; b++)
				ins[k++] = (uint8_t)(b < 2 ? rng(&s) : 0);
			break;
		case 7: /* leave; ret; padding */
			ins[k++] = 0xc9;
			ins[k++] = 0xc3;
			while ((i + k) % 16)
				ins[k++] = 0xcc;
			break;
		default: /* xor eax, eax; mov ecx, imm32 */
			memcpy(ins, "\x31\xc0\xb9", 3);
			k = 3;
			ins[k++] = (uint8_t)(rng(&s) % 32);
			ins[k++] = 0;
			ins[k++] = 0;
			ins[k++] = 0;
			break;
		}
		for (size_t j = 0; j < k && i < n; j++)
			p[i++] = ins[j];
	}
}

/* Tables and repeats: 16-byte records with a few changing fields, arrays of 16-bit values
 * with a zero high byte (short reps: one byte at the last distance between literals), and
 * blocks copied from two to four earlier places in turn with a byte changed (rep1..rep3). */
static void fill_mix(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t s = seeded(seed);
	size_t i = 0;
	while (i < n) {
		size_t blk = 256 + rng(&s) % 2048;
		if (blk > n - i)
			blk = n - i;
		unsigned what = (unsigned)(rng(&s) % 4);
		if (i < 4096)
			what = 0;
		for (size_t k = 0; k < blk; k++) {
			size_t at = i + k;
			uint8_t b;
			switch (what) {
			case 0: { /* records */
				size_t r = at / 16, f = at % 16;
				b = f < 4    ? (uint8_t)(r >> (8 * f))
				    : f < 8  ? (uint8_t)(f == 4 ? 0x11 * (r % 3) : 0)
				    : f < 12 ? (uint8_t)(rng(&s) % 4)
				             : (uint8_t)((0x8000 + r * 16) >> (8 * (f - 12)));
				break;
			}
			case 1: /* 16-bit values below 256 */
				b = at % 2 ? 0 : (uint8_t)rng(&s);
				break;
			default: { /* copies from a few earlier places, in turn */
				size_t src = (k / 24) % (2 + what);
				size_t back = 64 + 40 * src + 8 * what;
				b = p[at - back];
				if (k % 24 == 23)
					b ^= 0x5a;
				break;
			}
			}
			p[at] = b;
		}
		i += blk;
	}
}

typedef enum {
	C_TEXT,
	C_CODE,
	C_RANDOM,
	C_ZEROS,
	C_MIX,
	CONTENTS
} content;
static const char *const content_names[] = {"text", "code", "random", "zeros", "mix"};

static uint8_t *make_content(content c, size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n + 1);
	assert_non_null(p);
	switch (c) {
	case C_TEXT:
		fill_text(p, n, seed);
		break;
	case C_CODE:
		fill_code(p, n, seed);
		break;
	case C_RANDOM:
		fill_random(p, n, seed);
		break;
	case C_ZEROS:
		memset(p, 0, n);
		break;
	default:
		fill_mix(p, n, seed);
		break;
	}
	return p;
}

/* ---- streams from liblzma ------------------------------------------------------------------ */

typedef struct {
	unsigned lc, lp, pb;
} lzprops;

static const lzprops props_list[] = {{3, 0, 2}, {0, 2, 0}, {4, 0, 4}, {1, 3, 1}};
static const uint32_t dict_list[] = {4 * KIB, 64 * KIB, MIB};

typedef enum {
	M_NORMAL, /* liblzma's preset 6 (optimal parsing, binary-tree match finder) */
	M_QUICK,  /* preset 6 with a shorter search: still optimal parsing, faster */
	M_FAST,   /* preset 1 (greedy parsing, hash chains) */
	M_EOPM,   /* LZMA_FILTER_LZMA1: with an end marker */
} lzmode;

static uint8_t props_byte(lzprops p)
{
	return (uint8_t)((p.pb * 5 + p.lp) * 9 + p.lc);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* An LZMA-alone stream of data[0..n): the header (with `usize` as the size), then liblzma's
 * raw encoder output; *len gets its bytes. */
static uint8_t *lz_stream_sized(const uint8_t *data, size_t n, lzprops p, uint32_t dict,
                                lzmode mode, uint64_t usize, size_t *len)
{
	lzma_options_lzma o;
	assert_false(lzma_lzma_preset(&o, mode == M_FAST ? 1 : 6));
	if (mode == M_QUICK) {
		o.nice_len = 32;
		o.depth = 8;
	}
	o.dict_size = dict;
	o.lc = p.lc;
	o.lp = p.lp;
	o.pb = p.pb;
	o.ext_flags = 0; /* no LZMA_LZMA1EXT_ALLOW_EOPM: no end marker */
	lzma_set_ext_size(o, n);
	lzma_filter f[2] = {{mode == M_EOPM ? LZMA_FILTER_LZMA1 : LZMA_FILTER_LZMA1EXT, &o},
	                    {LZMA_VLI_UNKNOWN, NULL}};
	size_t cap = PKG__LZX_HDR_LEN + n + n / 4 + 4096, pos = PKG__LZX_HDR_LEN;
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	lzma_ret r = lzma_raw_buffer_encode(f, NULL, data, n, out, &pos, cap);
	if (r != LZMA_OK)
		fail_msg("liblzma: %d", (int)r);
	out[0] = props_byte(p);
	put32(out + 1, dict);
	put64(out + 5, usize);
	*len = pos;
	return out;
}

static uint8_t *lz_stream(const uint8_t *data, size_t n, lzprops p, uint32_t dict, lzmode mode,
                          size_t *len)
{
	return lz_stream_sized(data, n, p, dict, mode, n, len);
}

/* ---- buffers and sources ------------------------------------------------------------------- */

typedef struct {
	uint8_t *p;
	size_t len, cap;
} mbuf;

static int mbuf_sink(const uint8_t *d, size_t n, void *user)
{
	mbuf *b = user;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		assert_non_null(q);
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	return PQ_OK;
}

static int failing_sink(const uint8_t *d, size_t n, void *user)
{
	(void)d;
	(void)n;
	(void)user;
	return pq_err_set(PQ_ERR_IO, "disk full");
}

/* A source that hands out its bytes in pieces of `piece` bytes through fill. */
typedef struct {
	const uint8_t *p;
	size_t len, at, piece;
} chunks;

static int chunks_fill(void *user, const uint8_t **p, size_t *n)
{
	chunks *c = user;
	size_t k = c->len - c->at < c->piece ? c->len - c->at : c->piece;
	*p = c->p + c->at;
	*n = k;
	c->at += k;
	return PQ_OK;
}

/* A source over p[0..n): in memory (piece 0) or through fill in pieces. */
static pkg__lzx_src source(chunks *c, const uint8_t *p, size_t n, size_t piece)
{
	*c = (chunks){.p = p, .len = n, .piece = piece};
	if (!piece)
		return (pkg__lzx_src){.p = p, .end = p + n};
	return (pkg__lzx_src){.fill = chunks_fill, .user = c};
}

static int unpack_mem(const uint8_t *st, size_t len, uint64_t max_window, pkg__lzx_stream *s,
                      mbuf *tok)
{
	pkg__lzx_src in = {.p = st, .end = st + len};
	return pkg__lzx_unpack(&in, 256 * MIB, max_window, s, mbuf_sink, tok);
}

static int pack_mem(const uint8_t *tok, size_t len, pkg__lzx_stream *s, uint64_t max_window,
                    mbuf *out)
{
	pkg__lzx_src in = {.p = tok, .end = tok + len};
	return pkg__lzx_pack(&in, s, max_window, mbuf_sink, out);
}

/* ---- an independent reader of the token form (lzx.h) ----------------------------------- */

static bool get_varint(const uint8_t *t, size_t len, size_t *i, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
		uint8_t c = t[(*i)++];
		*v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return true;
	}
	return false;
}

/* Replays the token form t into out (usize bytes), counting the records of each kind;
 * false when a record is malformed or the size is not reached exactly. */
static bool tok_expand(const uint8_t *t, size_t len, uint8_t *out, size_t usize, size_t kinds[8])
{
	size_t i = 0, pos = 0;
	uint64_t rep[4] = {0};
	while (i < len) {
		uint64_t tag, d = 0;
		if (!get_varint(t, len, &i, &tag))
			return false;
		unsigned kind = (unsigned)(tag & 7);
		uint64_t n = tag >> 3;
		kinds[kind]++;
		if (kind == 0) {
			if (n == 0 || n > PKG__LZX_RUN_MAX || n > len - i || n > usize - pos)
				return false;
			memcpy(out + pos, t + i, n);
			pos += n;
			i += n;
			continue;
		}
		if (kind == 1) {
			if (!get_varint(t, len, &i, &d))
				return false;
			memmove(rep + 1, rep, 3 * sizeof(rep[0]));
			rep[0] = d;
		} else if (kind <= 5) {
			unsigned k = kind - 2;
			d = rep[k];
			memmove(rep + 1, rep, k * sizeof(rep[0]));
			rep[0] = d;
		} else if (kind == 6) {
			d = rep[0];
		} else {
			return false;
		}
		if (kind == 6 ? n != 1 : n < 2 || n > 273)
			return false;
		if (d >= pos || n > usize - pos)
			return false;
		for (uint64_t k = 0; k < n; k++, pos++)
			out[pos] = out[pos - d - 1];
	}
	return pos == usize;
}

/* ---- round trips ----------------------------------------------------------------------------- */

/* Unpacks the stream st (of data[0..n)) and packs its token form back: the exact stream,
 * sizes that agree, a token form that replays to the data. The sources hand out their bytes
 * in pieces of `piece` (0: all at once). Returns the token form's size. */
static size_t roundtrip(const uint8_t *data, size_t n, const uint8_t *st, size_t slen, size_t piece,
                        size_t kinds[8])
{
	chunks c;
	pkg__lzx_stream s;
	mbuf tok = {0}, back = {0};
	pkg__lzx_src in = source(&c, st, slen, piece);
	uint64_t window = pkg__lzx_window(
	    &(pkg__lzx_stream){.dict = (uint32_t)st[1] | (uint32_t)st[2] << 8 |
	                               (uint32_t)st[3] << 16 | (uint32_t)st[4] << 24,
	                       .usize = n});
	assert_ok(pkg__lzx_unpack(&in, n, window, &s, mbuf_sink, &tok));
	assert_int_equal(s.props, st[0]);
	assert_int_equal(s.usize, n);
	assert_int_equal(s.clen, slen);
	assert_int_equal(in.used, slen);
	assert_int_equal(s.xlen, tok.len);
	uint8_t *x = malloc(n + 1);
	assert_non_null(x);
	if (!tok_expand(tok.p, tok.len, x, n, kinds))
		fail_msg("a token form that does not replay (%zu bytes)", n);
	if (memcmp(x, data, n) != 0)
		fail_msg("a token form that replays to other bytes (%zu bytes)", n);
	free(x);
	pkg__lzx_stream s2 = s;
	s2.clen = 0;
	in = source(&c, tok.p, tok.len, piece);
	assert_ok(pkg__lzx_pack(&in, &s2, window, mbuf_sink, &back));
	assert_int_equal(s2.clen, slen);
	assert_int_equal(back.len, slen);
	if (memcmp(back.p, st, slen) != 0)
		fail_msg("packed back into other bytes (%zu bytes of content)", n);
	free(tok.p);
	free(back.p);
	return s.xlen;
}

/* Every content, properties and dictionary at 1 byte and 4 KiB + 1; about 1 MiB for each
 * content (properties and dictionaries in turn). The token form of compressible content is
 * smaller than the content; random content's hardly larger. Kinds 2..6 all occur. */
static void test_roundtrip(void **state)
{
	(void)state;
	size_t kinds[8] = {0}, mix_kinds[8] = {0};
	const size_t sizes[] = {1, 4 * KIB + 1, MIB - 7};
	for (int c = 0; c < CONTENTS; c++) {
		uint8_t *data = make_content((content)c, sizes[2], (uint64_t)c + 1);
		for (size_t p = 0; p < 4; p++)
			for (size_t d = 0; d < 3; d++)
				for (size_t z = 0; z < 3; z++) {
					/* ~1 MiB: one combination per content */
					if (z == 2 && (p != (size_t)c % 4 || d != (size_t)c % 3))
						continue;
					size_t n = sizes[z], slen = 0;
					lzmode m = z < 2 ? M_NORMAL : c % 2 ? M_FAST : M_QUICK;
					uint8_t *st = lz_stream(data, n, props_list[p],
					                        dict_list[d], m, &slen);
					size_t *k = c == C_MIX ? mix_kinds : kinds;
					size_t xlen =
					    roundtrip(data, n, st, slen, z == 1 ? 7 : 0, k);
					if (z == 2)
						printf("lzx: %-6s %zu bytes, lc/lp/pb %u/%u/%u, "
						       "dict %u "
						       "KiB: stream %zu, token form %zu\n",
						       content_names[c], n, props_list[p].lc,
						       props_list[p].lp, props_list[p].pb,
						       dict_list[d] >> 10, slen, xlen);
					if (z > 0 && c != C_RANDOM && xlen >= n)
						fail_msg("%s, %zu bytes: a token form of %zu bytes",
						         content_names[c], n, xlen);
					if (z > 0 && c == C_RANDOM && xlen > n + n / 64 + 64)
						fail_msg(
						    "random, %zu bytes: a token form of %zu bytes",
						    n, xlen);
					free(st);
				}
		free(data);
	}
	/* the mixed content alone makes every kind of record: a broken rep path shows */
	for (int k = 0; k <= 6; k++)
		if (mix_kinds[k] == 0)
			fail_msg("mixed content: no record of kind %d", k);
	assert_int_equal(kinds[7] + mix_kinds[7], 0);
	printf("lzx: mixed content's records by kind: %zu %zu %zu %zu %zu %zu %zu\n", mix_kinds[0],
	       mix_kinds[1], mix_kinds[2], mix_kinds[3], mix_kinds[4], mix_kinds[5], mix_kinds[6]);
}

/* The sink's error comes back, from both directions. */
static void test_sink_error(void **state)
{
	(void)state;
	size_t n = 64 * KIB, slen = 0;
	uint8_t *data = make_content(C_TEXT, n, 3);
	uint8_t *st = lz_stream(data, n, props_list[0], MIB, M_NORMAL, &slen);
	pkg__lzx_stream s;
	mbuf tok = {0};
	pkg__lzx_src in = {.p = st, .end = st + slen};
	assert_rc(pkg__lzx_unpack(&in, n, MIB, &s, failing_sink, NULL), PQ_ERR_IO);
	assert_ok(unpack_mem(st, slen, MIB, &s, &tok));
	in = (pkg__lzx_src){.p = tok.p, .end = tok.p + tok.len};
	assert_rc(pkg__lzx_pack(&in, &s, MIB, failing_sink, NULL), PQ_ERR_IO);
	free(tok.p);
	free(st);
	free(data);
}

/* ---- refusals -------------------------------------------------------------------------------- */

/* Headers pkg__lzx does not take, a stream cut anywhere, a window over the limit. */
static void test_bad_streams(void **state)
{
	(void)state;
	size_t n = 200 * KIB, slen = 0;
	uint8_t *data = make_content(C_CODE, n, 5);
	uint8_t *st = lz_stream(data, n, props_list[0], MIB, M_NORMAL, &slen);
	uint8_t *c = malloc(slen);
	assert_non_null(c);
	pkg__lzx_stream s;
	mbuf tok = {0};
	assert_ok(unpack_mem(st, slen, MIB, &s, &tok));
	assert_ok(pkg__lzx_header(st, slen, n, &s));
	/* lc + lp > 4, properties past pb 4, a dictionary under 4 KiB, size 0, a size over the
	 * caller's bound, a coder that does not start with 0 */
	struct {
		size_t at;
		uint8_t v;
	} bad[] = {{0, props_byte((lzprops){3, 2, 2})},
	           {0, props_byte((lzprops){4, 1, 0})},
	           {0, 225},
	           {0, 0xff},
	           {13, 1}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(c, st, slen);
		c[bad[i].at] = bad[i].v;
		tok.len = 0;
		assert_rc(unpack_mem(c, slen, MIB, &s, &tok), PQ_ERR_FORMAT);
		assert_rc(pkg__lzx_header(c, slen, n, &s), PQ_ERR_FORMAT);
	}
	const uint32_t dicts[] = {0, 1, 4095};
	for (size_t i = 0; i < 3; i++) {
		memcpy(c, st, slen);
		put32(c + 1, dicts[i]);
		assert_rc(unpack_mem(c, slen, MIB, &s, &tok), PQ_ERR_FORMAT);
	}
	memcpy(c, st, slen);
	put32(c + 1, 4096); /* the smallest dictionary taken (it only changes the window) */
	assert_ok(pkg__lzx_header(c, slen, n, &s));
	memcpy(c, st, slen);
	put64(c + 5, 0);
	assert_rc(unpack_mem(c, slen, MIB, &s, &tok), PQ_ERR_FORMAT);
	put64(c + 5, n);
	assert_rc(pkg__lzx_header(c, slen, n - 1, &s), PQ_ERR_FORMAT); /* over max_usize */
	pkg__lzx_src in = {.p = st, .end = st + slen};
	assert_rc(pkg__lzx_unpack(&in, n - 1, MIB, &s, mbuf_sink, &tok), PQ_ERR_FORMAT);
	/* a size larger than the stream holds: it runs out of input */
	memcpy(c, st, slen);
	put64(c + 5, n + 1000);
	assert_rc(unpack_mem(c, slen, MIB, &s, &tok), PQ_ERR_FORMAT);

	/* cut anywhere: the header, the coder's start, the middle, the last byte; in memory
	 * and through a source that runs dry */
	const size_t cuts[] = {0, 1, 12, 13, 17, 18, 19, slen / 2, slen - 5, slen - 1};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		chunks ch;
		for (size_t piece = 0; piece < 2000; piece += 999) {
			tok.len = 0;
			in = source(&ch, st, cuts[i], piece);
			int rc = pkg__lzx_unpack(&in, n, MIB, &s, mbuf_sink, &tok);
			if (rc != PQ_ERR_FORMAT)
				fail_msg("a stream cut at %zu of %zu: %d (%s)", cuts[i], slen, rc,
				         pq_err_detail());
		}
	}
	/* windows: the smaller of the dictionary and the size; over max_window is refused
	 * before anything is decoded (or coded) */
	tok.len = 0;
	assert_rc(unpack_mem(st, slen, n - 1, &s, &tok), PQ_ERR_RANGE);
	assert_int_equal(tok.len, 0);
	assert_ok(unpack_mem(st, slen, n, &s, &tok));
	mbuf out = {0};
	assert_rc(pack_mem(tok.p, tok.len, &s, n - 1, &out), PQ_ERR_RANGE);
	assert_int_equal(out.len, 0);
	assert_ok(pack_mem(tok.p, tok.len, &s, n, &out));
	assert_int_equal(out.len, slen);
	free(out.p);

	/* an end marker where the header promises more bytes: not taken */
	size_t elen = 0;
	uint8_t *e = lz_stream_sized(data, n, props_list[0], MIB, M_EOPM, n + 1, &elen);
	assert_rc(unpack_mem(e, elen, MIB, &s, &tok), PQ_ERR_FORMAT);
	assert_non_null(strstr(pq_err_detail(), "end marker"));
	free(e);
	free(tok.p);
	free(c);
	free(st);
	free(data);
}

/* A token form, built by hand: tag (n << 3 | kind), then a distance or literal bytes. */
typedef struct {
	uint8_t b[16384];
	size_t n;
} tokens;

static void t_varint(tokens *t, uint64_t v)
{
	while (v >= 0x80) {
		t->b[t->n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	t->b[t->n++] = (uint8_t)v;
}

static void t_lits(tokens *t, size_t n, uint8_t first)
{
	t_varint(t, (uint64_t)n << 3);
	for (size_t i = 0; i < n; i++)
		t->b[t->n++] = (uint8_t)(first + i * 7);
}

static void t_match(tokens *t, unsigned kind, uint64_t n, uint64_t dist)
{
	t_varint(t, n << 3 | kind);
	if (kind == 1)
		t_varint(t, dist);
}

/* Packs t as the tokens of a stream of usize bytes (dictionary dict) with xlen bytes (0: all
 * of t), in memory and in pieces of 3 bytes. */
static int pack_tokens(const tokens *t, uint64_t usize, uint32_t dict, size_t xlen)
{
	int rc = PQ_OK;
	for (size_t piece = 0; piece <= 3; piece += 3) {
		chunks c;
		mbuf out = {0};
		pkg__lzx_stream s = {.props = props_byte(props_list[0]),
		                     .dict = dict,
		                     .usize = usize,
		                     .xlen = xlen ? xlen : t->n};
		pkg__lzx_src in = source(&c, t->b, t->n, piece);
		int r = pkg__lzx_pack(&in, &s, 16 * MIB, mbuf_sink, &out);
		free(out.p);
		if (piece && r != rc)
			fail_msg("in memory %d, in pieces %d", rc, r);
		rc = r;
	}
	return rc;
}

/* Token forms the encoder refuses: a distance beyond what was produced or the window,
 * lengths out of range, kind 7, literal runs of 0 or over PKG__LZX_RUN_MAX, bytes past the
 * size, trailing bytes, cut varints: PQ_ERR_FORMAT, never a crash. */
static void test_bad_tokens(void **state)
{
	(void)state;
	tokens t;
	/* the good form all of these start from: 8 literals, a match, a rep, a short rep */
	t.n = 0;
	t_lits(&t, 8, 'a');
	t_match(&t, 1, 4, 7);
	t_match(&t, 2, 3, 0);
	t_match(&t, 6, 1, 0);
	assert_ok(pack_tokens(&t, 16, 4096, 0));

	struct {
		const char *what;
		unsigned kind;
		uint64_t n, dist;
	} bad[] = {{"distance = bytes produced", 1, 2, 8},
	           {"distance past them", 1, 2, 1000},
	           {"a 64-bit distance", 1, 2, UINT64_MAX},
	           {"match of 274", 1, 274, 0},
	           {"rep of 274", 2, 274, 0},
	           {"match of 1", 1, 1, 0},
	           {"rep of 1", 3, 1, 0},
	           {"match of 0", 1, 0, 0},
	           {"short rep of 2", 6, 2, 0},
	           {"short rep of 0", 6, 0, 0},
	           {"kind 7", 7, 2, 0},
	           {"kind 7, n 0", 7, 0, 0},
	           {"a huge length", 1, UINT64_MAX >> 3, 0},
	           {"past the size", 1, 273, 0},
	           {"run of 0", 0, 0, 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t.n = 0;
		t_lits(&t, 8, 'a');
		t_match(&t, bad[i].kind, bad[i].n, bad[i].dist);
		t_lits(&t, 4, 'z');
		int rc = pack_tokens(&t, 20, 4096, 0);
		if (rc != PQ_ERR_FORMAT)
			fail_msg("%s: %d (%s)", bad[i].what, rc, pq_err_detail());
	}
	/* a repeat or a match before any byte */
	for (unsigned kind = 1; kind <= 6; kind++) {
		t.n = 0;
		t_match(&t, kind, kind == 6 ? 1 : 2, 0);
		assert_rc(pack_tokens(&t, 10, 4096, 0), PQ_ERR_FORMAT);
	}
	/* runs of PKG__LZX_RUN_MAX (taken) and one more (not) */
	t.n = 0;
	t_lits(&t, PKG__LZX_RUN_MAX, 1);
	assert_ok(pack_tokens(&t, PKG__LZX_RUN_MAX, 4096, 0));
	t.n = 0;
	t_lits(&t, PKG__LZX_RUN_MAX + 1, 1);
	assert_rc(pack_tokens(&t, PKG__LZX_RUN_MAX + 10, 4096, 0), PQ_ERR_FORMAT);
	/* more literals than the size */
	t.n = 0;
	t_lits(&t, 10, 1);
	assert_rc(pack_tokens(&t, 9, 4096, 0), PQ_ERR_FORMAT);
	/* a distance inside what was produced but beyond the window (dict 4096 < size) */
	t.n = 0;
	t_lits(&t, 4096, 1);
	t_lits(&t, 904, 2);
	t_match(&t, 1, 2, 4095);
	assert_ok(pack_tokens(&t, 5002, 4096, 0));
	t.n -= 3;
	t_match(&t, 1, 2, 4096);
	assert_rc(pack_tokens(&t, 5002, 4096, 0), PQ_ERR_FORMAT);
	/* trailing bytes: inside xlen, or a form that says it is longer than it is */
	t.n = 0;
	t_lits(&t, 8, 'a');
	t_match(&t, 2, 3, 0);
	t.b[t.n++] = 0x08;
	assert_rc(pack_tokens(&t, 11, 4096, 0), PQ_ERR_FORMAT);
	t.n--;
	assert_ok(pack_tokens(&t, 11, 4096, 0));
	assert_rc(pack_tokens(&t, 11, 4096, t.n + 1), PQ_ERR_FORMAT);
	assert_rc(pack_tokens(&t, 11, 4096, t.n - 1), PQ_ERR_FORMAT);
	/* cut: a tag, a distance, literal bytes, records missing */
	t.n = 0;
	t_lits(&t, 8, 'a');
	t.b[t.n++] = 0x89; /* a tag with its continuation bit, then nothing */
	assert_rc(pack_tokens(&t, 100, 4096, 0), PQ_ERR_FORMAT);
	t.n = 0;
	t_lits(&t, 8, 'a');
	t_varint(&t, 2 << 3 | 1);
	t.b[t.n++] = 0x80; /* a distance cut */
	assert_rc(pack_tokens(&t, 100, 4096, 0), PQ_ERR_FORMAT);
	t.n = 0;
	t_lits(&t, 8, 'a');
	t.n -= 3; /* literal bytes missing */
	assert_rc(pack_tokens(&t, 8, 4096, 0), PQ_ERR_FORMAT);
	t.n = 0;
	t_lits(&t, 8, 'a');
	assert_rc(pack_tokens(&t, 9, 4096, 0), PQ_ERR_FORMAT); /* the size not reached */
	t.n = 0;
	assert_rc(pack_tokens(&t, 1, 4096, 0), PQ_ERR_FORMAT); /* nothing at all */
	/* a varint over 64 bits */
	t.n = 0;
	for (int i = 0; i < 11; i++)
		t.b[t.n++] = 0xff;
	assert_rc(pack_tokens(&t, 1, 4096, 0), PQ_ERR_FORMAT);
}

/* ---- the stream scan ---------------------------------------------------------------------------
 */

typedef struct {
	uint8_t *p;
	size_t len;
} bytes;

static void add(bytes *b, const uint8_t *p, size_t n)
{
	uint8_t *q = realloc(b->p, b->len + n + 1);
	assert_non_null(q);
	b->p = q;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void add_fill(bytes *b, uint8_t v, size_t n)
{
	uint8_t *q = malloc(n + 1);
	assert_non_null(q);
	memset(q, v, n);
	add(b, q, n);
	free(q);
}

static void add_random(bytes *b, size_t n, uint64_t seed)
{
	uint8_t *q = malloc(n + 1);
	assert_non_null(q);
	fill_random(q, n, seed);
	add(b, q, n);
	free(q);
}

/* Streams of a firmware-like image are found where they are, with their sizes; a stream
 * under 4 KiB is left, as is one whose window is over the bound; an image without streams
 * and streams with an end marker give none. */
static void test_scan(void **state)
{
	(void)state;
	size_t na = 200 * KIB, nb = 300 * KIB, nc = 64 * KIB, la, lb, lc;
	uint8_t *ca = make_content(C_TEXT, na, 11), *cb = make_content(C_CODE, nb, 12);
	uint8_t *cc = make_content(C_ZEROS, nc, 13);
	uint8_t *sa = lz_stream(ca, na, props_list[0], MIB, M_NORMAL, &la);
	uint8_t *sb = lz_stream(cb, nb, props_list[1], 64 * KIB, M_FAST, &lb);
	uint8_t *sc = lz_stream(cc, nc, props_list[2], 64 * KIB, M_FAST, &lc);
	assert_true(lc < 4 * KIB);
	bytes img = {0};
	add_random(&img, 3001, 21);
	size_t off_a = img.len;
	add(&img, sa, la);
	add_fill(&img, 0xff, 1000);
	size_t off_b = img.len;
	add(&img, sb, lb);
	add_fill(&img, 0x00, 17);
	add(&img, sc, lc);
	add_random(&img, 777, 22);

	pkg__dx_stream *st = NULL;
	size_t n = 99;
	assert_ok(
	    pkg__dx_scan(img.p, img.len, &(pkg__dx_scan_opts){.max_window = 16 * MIB}, &st, &n));
	assert_int_equal(n, 2);
	assert_int_equal(st[0].off, off_a);
	assert_int_equal(st[0].s.clen, la);
	assert_int_equal(st[0].s.usize, na);
	assert_int_equal(st[0].s.dict, MIB);
	assert_int_equal(st[0].s.props, props_byte(props_list[0]));
	assert_int_equal(st[1].off, off_b);
	assert_int_equal(st[1].s.clen, lb);
	assert_int_equal(st[1].s.usize, nb);
	assert_int_equal(st[1].s.props, props_byte(props_list[1]));
	assert_true(st[0].s.xlen < na && st[1].s.xlen < nb);
	free(st);
	/* a bound under A's window (200 KiB): only B is taken */
	st = NULL;
	assert_ok(
	    pkg__dx_scan(img.p, img.len, &(pkg__dx_scan_opts){.max_window = na - 1}, &st, &n));
	assert_int_equal(n, 1);
	assert_int_equal(st[0].off, off_b);
	free(st);

	/* no streams at all */
	bytes none = {0};
	add_random(&none, 64 * KIB, 23);
	add_fill(&none, 0, 64 * KIB);
	add(&none, ca, 64 * KIB);
	st = NULL;
	assert_ok(
	    pkg__dx_scan(none.p, none.len, &(pkg__dx_scan_opts){.max_window = 16 * MIB}, &st, &n));
	assert_int_equal(n, 0);
	free(st);

	/* streams with an end marker (plain LZMA1), with the size in the header or unknown (as
	 * lzma_alone_encoder writes it): none taken; the same content without the marker is */
	size_t nr = 64 * KIB, le, lu, lx;
	uint8_t *cr = make_content(C_MIX, nr, 14);
	uint8_t *se = lz_stream(cr, nr, props_list[0], MIB, M_EOPM, &le);
	uint8_t *su = lz_stream_sized(cr, nr, props_list[0], MIB, M_EOPM, UINT64_MAX, &lu);
	uint8_t *sx = lz_stream(cr, nr, props_list[0], MIB, M_NORMAL, &lx);
	assert_true(lx >= 4 * KIB);
	const uint8_t *which[] = {se, su, sx};
	const size_t lens[] = {le, lu, lx};
	for (int i = 0; i < 3; i++) {
		bytes m = {0};
		add_random(&m, 512, 24);
		add(&m, which[i], lens[i]);
		add_fill(&m, 0xff, 512);
		st = NULL;
		assert_ok(pkg__dx_scan(m.p, m.len, &(pkg__dx_scan_opts){.max_window = 16 * MIB},
		                       &st, &n));
		assert_int_equal(n, i == 2 ? 1 : 0);
		free(st);
		free(m.p);
	}
	free(cr);
	free(se);
	free(su);
	free(sx);
	free(none.p);
	free(img.p);
	free(ca);
	free(cb);
	free(cc);
	free(sa);
	free(sb);
	free(sc);
}

/* ---- version-3 deltas end to end ------------------------------------------------------------ */

/* Fails when anything of an apply is left in f's directory (out.bin, out.bin.x,
 * out.bin.x.part, its checkpoint, temporary delta_files), except the name keep. */
static void assert_nothing_written(const delta_files *f, const char *keep)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "out.bin", 7) != 0)
			continue;
		if (keep && strcmp(e->d_name, keep) == 0)
			continue;
		closedir(d);
		fail_msg("left behind: %s", e->d_name);
	}
	closedir(d);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
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
	if (memcmp(p, data, len) != 0)
		fail_msg("%s differs from the target", path);
	free(p);
}

/* Level 9, not the default 19: the same delta within a few KiB, seconds faster here. */
static void build(const char *base, const char *target, const char *pkg, uint16_t ecu,
                  uint64_t apply_limit, pkg_unit *u)
{
	pkg_leaf_opts o = {.ecu = ecu,
	                   .type = SWPG_TYPE_APP,
	                   .version = {2, 0, 0, 0},
	                   .timestamp = 1,
	                   .level = 9,
	                   .base_path = base,
	                   .base_version = {1, 0, 0, 0},
	                   .apply_limit = apply_limit};
	assert_ok(pkg_build_leaf(target, &o, pkg, u));
}

/* A firmware-like image: 8 KiB of boot code, stream A (its content a, lc/lp/pb 3/0/2, a
 * 4 MiB dictionary, liblzma's fast mode), 0xFF up to a 64 KiB boundary, stream B (b, 0/2/0,
 * 1 MiB, optimal parsing), 0xFF, a 4 KiB trailer. */
typedef struct {
	bytes img;
	size_t off[2], clen[2];
} firmware;

static void make_firmware(firmware *fw, const uint8_t *a, size_t na, const uint8_t *b, size_t nb,
                          uint8_t version)
{
	size_t la, lb;
	uint8_t *sa = lz_stream(a, na, props_list[0], 4 * MIB, M_FAST, &la);
	uint8_t *sb = lz_stream(b, nb, props_list[1], MIB, M_QUICK, &lb);
	memset(fw, 0, sizeof(*fw));
	add_random(&fw->img, 8 * KIB, 31);
	fw->img.p[100] = version;
	fw->off[0] = fw->img.len;
	fw->clen[0] = la;
	add(&fw->img, sa, la);
	add_fill(&fw->img, 0xff, 64 * KIB - fw->img.len % (64 * KIB));
	fw->off[1] = fw->img.len;
	fw->clen[1] = lb;
	add(&fw->img, sb, lb);
	add_fill(&fw->img, 0xff, 5000);
	add_random(&fw->img, 4 * KIB, 32);
	fw->img.p[fw->img.len - 1] = version;
	free(sa);
	free(sb);
}

/* What the v3 tests start from, made once: the content of A (2 MiB of code) and B
 * (512 KiB of text) in the base; in the target, A with a few bytes changed and 100 bytes
 * inserted, B with a word and a byte changed; both images; the delta between them. */
static struct {
	bool made;
	uint8_t *a, *b, *a2, *b2;
	size_t na, nb, na2, nb2;
	firmware base, target;
	uint8_t *pkg;
	size_t pkg_len;
	pkg_unit unit;
} sc;

static void scenario(void)
{
	if (sc.made)
		return;
	sc.na = 2 * MIB;
	sc.nb = MIB / 2;
	sc.a = make_content(C_CODE, sc.na, 41);
	sc.b = make_content(C_TEXT, sc.nb, 42);
	sc.na2 = sc.na + 100;
	sc.nb2 = sc.nb;
	sc.a2 = malloc(sc.na2);
	sc.b2 = malloc(sc.nb2);
	assert_non_null(sc.a2);
	assert_non_null(sc.b2);
	size_t ins = sc.na * 2 / 5;
	memcpy(sc.a2, sc.a, ins);
	fill_code(sc.a2 + ins, 100, 43);
	memcpy(sc.a2 + ins + 100, sc.a + ins, sc.na - ins);
	sc.a2[sc.na / 10] ^= 0x01; /* a changed call target, a changed constant, ... */
	sc.a2[sc.na / 2] ^= 0x20;
	sc.a2[sc.na2 - 1000] ^= 0x80;
	memcpy(sc.b2, sc.b, sc.nb);
	memcpy(sc.b2 + sc.nb / 3, "VERSION", 7);
	sc.b2[sc.nb - 10] = '!';
	make_firmware(&sc.base, sc.a, sc.na, sc.b, sc.nb, 1);
	make_firmware(&sc.target, sc.a2, sc.na2, sc.b2, sc.nb2, 2);
	delta_files f;
	delta_files_init(&f, "lzx-v3-build");
	tu_write_file(f.base, sc.base.img.p, sc.base.img.len);
	tu_write_file(f.target, sc.target.img.p, sc.target.img.len);
	build(f.base, f.target, f.pkg, 0x1011, 0, &sc.unit);
	sc.pkg = read_all(f.pkg, &sc.pkg_len);
	delta_files_free(&f);
	sc.made = true;
}

/* f's base, target and delta: the scenario's. */
static void scenario_files(delta_files *f)
{
	scenario();
	tu_write_file(f->base, sc.base.img.p, sc.base.img.len);
	tu_write_file(f->target, sc.target.img.p, sc.target.img.len);
	tu_write_file(f->pkg, sc.pkg, sc.pkg_len);
}

static int scenario_free(void **state)
{
	(void)state;
	free(sc.a);
	free(sc.b);
	free(sc.a2);
	free(sc.b2);
	free(sc.base.img.p);
	free(sc.target.img.p);
	free(sc.pkg);
	memset(&sc, 0, sizeof(sc));
	return 0;
}

/* A changed byte of the delta at pos (the SWPG CRC fixed up, so that only the delta's own
 * checks can see it): refused, nothing written. */
static void corrupt_at(const delta_files *f, const uint8_t *raw, size_t len, size_t pos,
                       bool resume)
{
	uint8_t *c = malloc(len);
	assert_non_null(c);
	memcpy(c, raw, len);
	c[pos] ^= 0x5a;
	swpg_header h;
	assert_ok(swpg_decode(c, &h));
	h.crc32 = pq_crc32(0, c + SWPG_HDR_LEN, len - SWPG_HDR_LEN);
	assert_ok(swpg_encode(&h, c));
	tu_write_file(f->pkg, c, len);
	pkg_apply_opts o = {.resume = resume};
	int rc = delta_apply(f, &o);
	if (rc == PQ_OK)
		fail_msg("a changed byte at payload offset %zu went unnoticed", pos - SWPG_HDR_LEN);
	assert_nothing_written(f, NULL);
	free(c);
}

/* Stops an apply at its first progress report from one stage: the inner delta's (whose
 * total is the expanded target's size) or the coding of the streams (the target's size). */
typedef struct {
	atomic_int stop;
	uint64_t target_size;
	bool in_coding; /* stop in the coding stage, else in the inner one */
} stopper;

static void stop_fn(uint64_t done, uint64_t total, void *user)
{
	stopper *s = user;
	(void)done;
	if ((total == s->target_size) == s->in_coding)
		atomic_store(&s->stop, 1);
}

static int apply_stopped(const delta_files *f, uint64_t target_size, bool in_coding, bool resume)
{
	stopper s = {.target_size = target_size, .in_coding = in_coding};
	atomic_init(&s.stop, 0);
	pkg_apply_opts o = {.resume = resume, .progress = {stop_fn, &s, &s.stop}};
	return delta_apply(f, &o);
}

/* The base and the target of the scenario: a version-3 delta a small part of the target's
 * compressed streams, applied exactly; refusals of the wrong base and of a memory limit
 * under the window; an apply stopped in the coding stage that resumes from the expanded
 * target. */
static void test_v3_delta(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "lzx-v3");
	scenario_files(&f);
	pkg_unit u = sc.unit;
	pkg_delta_info di = delta_info_of(f.pkg);
	assert_int_equal(di.version, 3);
	assert_int_equal(di.segments, 4); /* the streams: two in each image */
	size_t streams = sc.target.clen[0] + sc.target.clen[1];
	printf("v3 delta: target image %zu bytes, its streams %zu + %zu bytes (of %zu + %zu "
	       "uncompressed); delta package %llu bytes (%.2f%% of the streams), apply memory "
	       "%llu KiB\n",
	       sc.target.img.len, sc.target.clen[0], sc.target.clen[1], sc.na2, sc.nb2,
	       (unsigned long long)u.size, 100.0 * (double)u.size / (double)streams,
	       (unsigned long long)di.apply_memory >> 10);
	if (u.size * 4 >= sc.target.clen[0] || u.size * 4 >= streams)
		fail_msg("a %llu-byte delta for streams of %zu bytes", (unsigned long long)u.size,
		         streams);

	pkg_apply_opts o = {0};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, sc.target.img.p, sc.target.img.len);
	assert_int_equal(o.resumed_bytes, 0);
	assert_int_equal(o.memory_needed, di.apply_memory);
	unlink(f.out);
	assert_nothing_written(&f, NULL);

	/* the wrong base: the target itself, the base with one byte of a stream changed */
	o = (pkg_apply_opts){.resume = true};
	assert_rc(delta_apply_from(&f, f.target, &o), PQ_ERR_VERIFY);
	assert_nothing_written(&f, NULL);
	char other[PATH_MAX];
	tu_join(other, sizeof(other), f.dir, "other.bin");
	sc.base.img.p[sc.base.off[1] + 100] ^= 1;
	tu_write_file(other, sc.base.img.p, sc.base.img.len);
	sc.base.img.p[sc.base.off[1] + 100] ^= 1;
	assert_rc(delta_apply_from(&f, other, &o), PQ_ERR_VERIFY);
	assert_nothing_written(&f, NULL);

	/* a limit under the window of stream A (2 MiB): refused before anything is written */
	o = (pkg_apply_opts){.mem_limit = sc.na, .resume = true};
	assert_rc(delta_apply(&f, &o), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "needs"));
	assert_nothing_written(&f, NULL);

	/* stopped while the streams are coded: the expanded target stays, and the next apply
	 * takes it over whole */
	assert_rc(apply_stopped(&f, sc.target.img.len, true, true), PQ_ERR_CANCELLED);
	assert_nothing_written(&f, "out.bin.x");
	assert_true(delta_exists(f.x));
	o = (pkg_apply_opts){.resume = true};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, sc.target.img.p, sc.target.img.len);
	if (o.resumed_bytes == 0)
		fail_msg("the expanded target was not taken over");
	printf("v3 delta: stopped in the coding stage, resumed with %llu expanded bytes\n",
	       (unsigned long long)o.resumed_bytes);
	unlink(f.out);
	assert_nothing_written(&f, NULL);
	/* a damaged expanded target is not trusted: everything is done again */
	assert_rc(apply_stopped(&f, sc.target.img.len, true, true), PQ_ERR_CANCELLED);
	size_t xl = 0;
	uint8_t *x = read_all(f.x, &xl);
	x[xl / 2] ^= 0x10;
	tu_write_file(f.x, x, xl);
	free(x);
	o = (pkg_apply_opts){.resume = true};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, sc.target.img.p, sc.target.img.len);
	assert_int_equal(o.resumed_bytes, 0);
	unlink(f.out);
	/* without resumption nothing is kept */
	assert_rc(apply_stopped(&f, sc.target.img.len, true, false), PQ_ERR_CANCELLED);
	assert_nothing_written(&f, NULL);
	delta_files_free(&f);
}

/* Changed bytes of a version-3 delta: its two descriptors, the inner delta's segments and
 * table, the stream table; and another ECU's delta: refused, nothing written. */
static void test_v3_refusals(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "lzx-v3-bad");
	scenario_files(&f);
	pkg_unit u;
	size_t len = 0;
	uint8_t *raw = read_all(f.pkg, &len);
	const uint8_t *desc = raw + SWPG_HDR_LEN;
	uint64_t table_off = (uint64_t)desc[96] | (uint64_t)desc[97] << 8 |
	                     (uint64_t)desc[98] << 16 | (uint64_t)desc[99] << 24;
	uint32_t table_len = (uint32_t)desc[92] | (uint32_t)desc[93] << 8 |
	                     (uint32_t)desc[94] << 16 | (uint32_t)desc[95] << 24;
	assert_int_equal(SWPG_HDR_LEN + table_off + table_len, len);
	/* payload offsets: the outer descriptor (version, base size, target hash, segments,
	 * table length and offset, a reserved byte) and the inner one (at 120), the inner
	 * delta's segments (from 240) and table (up to table_off). Not apply_memory (104..111):
	 * as in version 2 it only asks for a limit; what an apply allocates it computes from
	 * the tables and windows, and checks. */
	const size_t inner[] = {4,
	                        10,
	                        60,
	                        90,
	                        94,
	                        99,
	                        115,
	                        120 + 4,
	                        120 + 20,
	                        120 + 60,
	                        120 + 90,
	                        120 + 97,
	                        240,
	                        250,
	                        (size_t)(240 + table_off) / 2,
	                        (size_t)(table_off - 10),
	                        (size_t)(table_off - 1)};
	for (size_t i = 0; i < sizeof(inner) / sizeof(inner[0]); i++)
		corrupt_at(&f, raw, len, SWPG_HDR_LEN + inner[i], i % 2);
	/* the stream table: 10 of its bytes, spread over both lists, the last one among them */
	size_t every = table_len > 10 ? table_len / 10 : 1, n = 0;
	for (size_t i = table_len - 1; i < table_len; i = i >= every ? i - every : table_len, n++)
		corrupt_at(&f, raw, len, SWPG_HDR_LEN + table_off + i, i % 2);
	printf("v3 delta: %zu changed bytes refused (%zu in its %u-byte stream table)\n",
	       sizeof(inner) / sizeof(inner[0]) + n, n, table_len);
	/* cut short */
	tu_write_file(f.pkg, raw, len - 1);
	pkg_apply_opts o = {0};
	assert_true(delta_apply(&f, &o) != PQ_OK);
	assert_nothing_written(&f, NULL);
	free(raw);

	/* another ECU's delta (its own images with streams) */
	firmware ob, ot;
	size_t on = 256 * KIB;
	uint8_t *oa = make_content(C_CODE, on, 51), *otx = make_content(C_TEXT, on, 52);
	make_firmware(&ob, oa, on, otx, on, 1);
	oa[1000] ^= 1;
	make_firmware(&ot, oa, on, otx, on, 2);
	char obase[PATH_MAX], otarget[PATH_MAX];
	tu_join(obase, sizeof(obase), f.dir, "other-base.bin");
	tu_join(otarget, sizeof(otarget), f.dir, "other-target.bin");
	tu_write_file(obase, ob.img.p, ob.img.len);
	tu_write_file(otarget, ot.img.p, ot.img.len);
	build(obase, otarget, f.pkg, 0x1022, 0, &u);
	assert_int_equal(delta_info_of(f.pkg).version, 3);
	o = (pkg_apply_opts){.resume = true};
	assert_rc(delta_apply(&f, &o), PQ_ERR_VERIFY);
	assert_nothing_written(&f, NULL);
	assert_ok(delta_apply_from(&f, obase, &o)); /* and it is a good delta for its own base */
	assert_file_is(f.out, ot.img.p, ot.img.len);
	free(oa);
	free(otx);
	free(ob.img.p);
	free(ot.img.p);
	delta_files_free(&f);
}

/* A target with much new content (stream B's content replaced by 1 MiB of new,
 * incompressible bytes) and a 16 MiB apply limit make an inner delta of several segments: an
 * apply stopped in the inner stage resumes from its checkpoint. A delta stays within the
 * apply limit it was made for, 16 MiB or the smallest. */
static void test_v3_resume(void **state)
{
	(void)state;
	delta_files f;
	delta_files_init(&f, "lzx-v3-resume");
	scenario();
	size_t nr = MIB;
	uint8_t *r = make_content(C_RANDOM, nr, 61);
	firmware target;
	make_firmware(&target, sc.a2, sc.na2, r, nr, 2);
	tu_write_file(f.base, sc.base.img.p, sc.base.img.len);
	tu_write_file(f.target, target.img.p, target.img.len);
	pkg_unit u;
	const uint64_t limit = 16 * MIB;
	build(f.base, f.target, f.pkg, 0x1011, limit, &u);
	pkg_delta_info di = delta_info_of(f.pkg);
	assert_int_equal(di.version, 3);
	printf("v3 delta (new content, made for %llu MiB): %llu bytes, apply memory %llu KiB\n",
	       (unsigned long long)limit >> 20, (unsigned long long)u.size,
	       (unsigned long long)di.apply_memory >> 10);
	if (di.apply_memory > limit)
		fail_msg("made for %llu KiB, the delta needs %llu KiB",
		         (unsigned long long)limit >> 10,
		         (unsigned long long)di.apply_memory >> 10);

	/* stopped after the inner delta's first segment: its checkpoint stays */
	assert_rc(apply_stopped(&f, target.img.len, false, true), PQ_ERR_CANCELLED);
	assert_true(delta_exists(f.xpart));
	assert_true(delta_exists(f.xckpt));
	assert_false(delta_exists(f.out));
	assert_false(delta_exists(f.x));
	pkg_apply_opts o = {.resume = true, .mem_limit = limit};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, target.img.p, target.img.len);
	if (o.resumed_bytes == 0)
		fail_msg("the inner stage's checkpoint was not taken over");
	printf("v3 delta: stopped in the inner stage, resumed at %llu bytes\n",
	       (unsigned long long)o.resumed_bytes);
	unlink(f.out);
	assert_nothing_written(&f, NULL);
	/* without resumption nothing is kept */
	assert_rc(apply_stopped(&f, target.img.len, false, false), PQ_ERR_CANCELLED);
	assert_nothing_written(&f, NULL);

	/* made for the smallest vehicle, it applies there (v3 or not) */
	build(f.base, f.target, f.pkg, 0x1011, PKG_DELTA_APPLY_MEM_MIN, &u);
	di = delta_info_of(f.pkg);
	printf("v3 delta (made for %u MiB): version %u, %llu bytes, apply memory %llu KiB\n",
	       PKG_DELTA_APPLY_MEM_MIN >> 20, di.version, (unsigned long long)u.size,
	       (unsigned long long)di.apply_memory >> 10);
	if (di.apply_memory > PKG_DELTA_APPLY_MEM_MIN)
		fail_msg("made for %u MiB, the delta needs %llu KiB", PKG_DELTA_APPLY_MEM_MIN >> 20,
		         (unsigned long long)di.apply_memory >> 10);
	o = (pkg_apply_opts){.mem_limit = PKG_DELTA_APPLY_MEM_MIN};
	assert_ok(delta_apply(&f, &o));
	assert_file_is(f.out, target.img.p, target.img.len);

	free(r);
	free(target.img.p);
	delta_files_free(&f);
}

/* ---- fuzz seeds ------------------------------------------------------------------------------ */

/* PQOTA_LZX_CORPUS=DIR: writes the seeds of tests/fuzz/fuzz_lzx.c: small liblzma streams
 * (header first), and their token forms after the same 13-byte header (as the harness'
 * second reading takes them). Without it, nothing. */
static void test_fuzz_seeds(void **state)
{
	(void)state;
	const char *dir = getenv("PQOTA_LZX_CORPUS");
	if (!dir || !*dir)
		return;
	const struct {
		const char *name;
		content c;
		size_t n, props;
		uint32_t dict;
		lzmode m;
	} seeds[] = {{"text", C_TEXT, 2000, 0, 4 * KIB, M_NORMAL},
	             {"code", C_CODE, 3000, 1, 64 * KIB, M_FAST},
	             {"mix", C_MIX, 6000, 2, MIB, M_NORMAL},
	             {"zeros", C_ZEROS, 1000, 3, 4 * KIB, M_NORMAL},
	             {"random", C_RANDOM, 300, 0, 4 * KIB, M_FAST},
	             {"one", C_TEXT, 1, 1, 4 * KIB, M_NORMAL},
	             {"eopm", C_TEXT, 500, 0, 4 * KIB, M_EOPM}};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[PATH_MAX], name[64];
		size_t slen = 0;
		uint8_t *data = make_content(seeds[i].c, seeds[i].n, 70 + i);
		uint8_t *st = lz_stream(data, seeds[i].n, props_list[seeds[i].props], seeds[i].dict,
		                        seeds[i].m, &slen);
		snprintf(name, sizeof(name), "stream-%s", seeds[i].name);
		tu_join(path, sizeof(path), dir, name);
		tu_write_file(path, st, slen);
		pkg__lzx_stream s;
		mbuf tok = {0};
		if (seeds[i].m != M_EOPM) {
			assert_ok(unpack_mem(st, slen, MIB, &s, &tok));
			bytes b = {0};
			add(&b, st, PKG__LZX_HDR_LEN);
			add(&b, tok.p, tok.len);
			snprintf(name, sizeof(name), "tokens-%s", seeds[i].name);
			tu_join(path, sizeof(path), dir, name);
			tu_write_file(path, b.p, b.len);
			free(b.p);
		}
		free(tok.p);
		free(st);
		free(data);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),   cmocka_unit_test(test_sink_error),
	    cmocka_unit_test(test_bad_streams), cmocka_unit_test(test_bad_tokens),
	    cmocka_unit_test(test_scan),        cmocka_unit_test(test_v3_delta),
	    cmocka_unit_test(test_v3_refusals), cmocka_unit_test(test_v3_resume),
	    cmocka_unit_test(test_fuzz_seeds),
	};
	return cmocka_run_group_tests(tests, NULL, scenario_free);
}
