/* fuzz_lzx.c: libFuzzer harness for the LZMA stream coder (src/pkg/lzx.c).
 *
 * Every input is tried twice, within 1 MiB windows and sizes:
 *   1. as an LZMA-alone stream: pkg__lzx_unpack. A stream it takes has a token form that
 *      pkg__lzx_pack must take (the decoder only writes valid records), and the stream
 *      packed from it must unpack to the same token form again, read to its last byte;
 *      the token form is read back in pieces of 1..7 bytes, through the source's fill;
 *   2. as a 13-byte stream header (props, dictionary, size: brought into the bounds the
 *      delta's stream table enforces) and a token form: pkg__lzx_pack. A token form it takes
 *      packs into a stream that unpacks, and the canonical token form that gives packs to
 *      the same stream again (that stream read in pieces).
 * Seeds: tests/fuzz/corpus/lzx (small liblzma streams and their token forms, written by
 * tests/unit/test_lzx.c with PQOTA_LZX_CORPUS=DIR). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkg/lzx.h"
#include "pkg/pkg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT  (1u << 20) /* window and uncompressed bytes */
#define OUTCAP (16u << 20)

typedef struct {
	uint8_t *p;
	size_t len, cap;
} obuf;

static int obuf_sink(const uint8_t *d, size_t n, void *user)
{
	obuf *b = user;
	if (n > OUTCAP - b->len)
		return PQ_ERR_RANGE;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			abort();
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return PQ_OK;
}

/* A source handing out its bytes in pieces through fill (piece 0: all in memory). */
typedef struct {
	const uint8_t *p;
	size_t len, at, piece;
} chunks;

static int chunks_fill(void *user, const uint8_t **p, size_t *n)
{
	chunks *c = user;
	*n = c->len - c->at < c->piece ? c->len - c->at : c->piece;
	*p = c->p + c->at;
	c->at += *n;
	return PQ_OK;
}

static pkg__lzx_src source(chunks *c, const uint8_t *p, size_t n, size_t piece)
{
	*c = (chunks){.p = p, .len = n, .piece = piece};
	if (!piece)
		return (pkg__lzx_src){.p = p, .end = p + n};
	return (pkg__lzx_src){.fill = chunks_fill, .user = c};
}

static size_t piece; /* of the second reading of each input: 1..7 bytes, by its size */

static int unpack(const uint8_t *p, size_t n, pkg__lzx_stream *s, obuf *tok, size_t pc)
{
	chunks c;
	pkg__lzx_src in = source(&c, p, n, pc);
	tok->len = 0;
	int rc = pkg__lzx_unpack(&in, LIMIT, LIMIT, s, obuf_sink, tok);
	if (rc == PQ_OK && (s->clen > n || s->clen != in.used || s->xlen != tok->len ||
	                    s->usize == 0 || s->usize > LIMIT))
		abort();
	return rc;
}

static int pack(const uint8_t *t, size_t n, pkg__lzx_stream *s, obuf *out, size_t pc)
{
	chunks c;
	pkg__lzx_src in = source(&c, t, n, pc);
	out->len = 0;
	int rc = pkg__lzx_pack(&in, s, LIMIT, obuf_sink, out);
	if (rc == PQ_OK && (s->clen != out->len || out->len < PKG__LZX_HDR_LEN + 5))
		abort();
	return rc;
}

/* A stream the decoder took: its tokens code back, and that stream decodes to them. */
static void as_stream(const uint8_t *data, size_t size, obuf *tok, obuf *st, obuf *tok2)
{
	pkg__lzx_stream s, s2;
	if (unpack(data, size, &s, tok, 0) != PQ_OK)
		return;
	s2 = s;
	if (pack(tok->p, tok->len, &s2, st, piece) != PQ_OK)
		abort();
	pkg__lzx_stream s3;
	if (unpack(st->p, st->len, &s3, tok2, 0) != PQ_OK || s3.clen != st->len ||
	    s3.xlen != tok->len || memcmp(tok->p, tok2->p, tok->len) != 0 ||
	    memcmp(st->p, data, PKG__LZX_HDR_LEN) != 0)
		abort();
}

/* A header and a token form: what the encoder takes codes to a stream that decodes, and
 * the canonical tokens of that stream code to the same stream. */
static void as_tokens(const uint8_t *data, size_t size, obuf *st, obuf *tok, obuf *st2)
{
	if (size < PKG__LZX_HDR_LEN)
		return;
	pkg__lzx_stream s = {.props = data[0], .dict = pkg__get32(data + 1)};
	uint64_t u = pkg__get64(data + 5);
	/* the bounds of the stream table (delta_x.c list_decode), within this harness' limit */
	if (s.props >= 225 || s.props % 9 + s.props / 9 % 5 > 4)
		return;
	if (s.dict < 4096)
		s.dict += 4096;
	s.usize = u == 0 || u > LIMIT ? 1 + u % LIMIT : u;
	s.xlen = size - PKG__LZX_HDR_LEN;
	pkg__lzx_stream keep = s;
	if (pack(data + PKG__LZX_HDR_LEN, size - PKG__LZX_HDR_LEN, &s, st, 0) != PQ_OK)
		return;
	pkg__lzx_stream s2, s3;
	if (unpack(st->p, st->len, &s2, tok, piece) != PQ_OK || s2.clen != st->len ||
	    s2.usize != keep.usize || s2.dict != keep.dict || s2.props != keep.props)
		abort();
	s3 = s2;
	if (pack(tok->p, tok->len, &s3, st2, 0) != PQ_OK || st2->len != st->len ||
	    memcmp(st->p, st2->p, st->len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	obuf a = {0}, b = {0}, c = {0};
	piece = 1 + size % 7;
	as_stream(data, size, &a, &b, &c);
	as_tokens(data, size, &a, &b, &c);
	free(a.p);
	free(b.p);
	free(c.p);
	return 0;
}
