/* lzx.h: LZMA streams inside an image, taken apart into their tokens and put back bit for bit
 * (docs/package-format.md 5.5).
 *
 * Firmware often holds its code LZMA-compressed (UEFI firmware volumes, kernels, initramfs):
 * a small change of the code rewrites most of the compressed bytes, so a byte-level delta
 * has to carry them nearly whole. An LZMA stream is its decoder's decisions (literal bytes,
 * matches with their lengths and distances) coded by an adaptive range coder that follows
 * from those decisions alone. This module decodes a stream into those decisions, written out
 * uncoded (its "token form", which diffs like the code it describes), and codes a token form
 * back into the exact bytes of the original stream, whichever encoder first made it.
 *
 * Token form: records, each a varint tag (n << 3 | kind):
 *   kind 0: n literal bytes (1..LZX_RUN_MAX), which follow;
 *   kind 1: a match of n bytes (2..273) at the distance that follows (a varint, 0-based);
 *   kind 2..5: a match of n bytes (2..273) at the 1st..4th last distance;
 *   kind 6: one byte (n = 1) at the last distance (LZMA's "short rep").
 *
 * Only LZMA-alone streams ("5d 00 00 ..."-style: 13-byte header of properties, dictionary
 * size and a known uncompressed size) without an end marker, with lc + lp <= 4, are taken.
 * Both directions stream: memory is the dictionary window (the smaller of the dictionary
 * and the uncompressed size) and a few tens of KiB. */
#ifndef PQOTA_PKG_LZX_H
#define PQOTA_PKG_LZX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "pkg/codec.h"

#define PKG__LZX_HDR_LEN 13
#define PKG__LZX_RUN_MAX 4096         /* literal bytes in one record */
#define PKG__LZX_MODEL   (128u << 10) /* memory besides the window: model and buffers */

/* A stream's header fields and sizes. */
typedef struct {
	uint8_t props;  /* (pb * 5 + lp) * 9 + lc */
	uint32_t dict;  /* the dictionary size of the header */
	uint64_t usize; /* uncompressed bytes */
	uint64_t clen;  /* the stream's bytes, header included */
	uint64_t xlen;  /* bytes of its token form */
} pkg__lzx_stream;

/* A byte source: p..end are the bytes at hand; fill (NULL for a memory source) gives the
 * next piece, or n = 0 at the end. `used` counts the bytes taken. */
typedef struct {
	const uint8_t *p, *end;
	int (*fill)(void *user, const uint8_t **p, size_t *n);
	void *user;
	uint64_t used;
} pkg__lzx_src;

/* The window a stream needs to be unpacked or packed. */
static inline uint64_t pkg__lzx_window(const pkg__lzx_stream *s)
{
	return s->usize < s->dict ? s->usize : s->dict;
}

/* Reads and checks a header at p[0..len) (PQ_ERR_FORMAT if it is none pkg__lzx takes). */
int pkg__lzx_header(const uint8_t *p, size_t len, uint64_t max_usize,
                    pkg__lzx_stream *s) PQ_MUST_CHECK;

/* Decodes the stream at `in` (header first) into its token form, through sink. s gets the
 * header's fields, clen (the bytes the decoder read) and xlen. The stream must decode
 * cleanly to exactly its size (PQ_ERR_FORMAT otherwise); windows over max_window bytes are
 * refused (PQ_ERR_RANGE). */
int pkg__lzx_unpack(pkg__lzx_src *in, uint64_t max_usize, uint64_t max_window, pkg__lzx_stream *s,
                    pkg_sink_fn sink, void *user) PQ_MUST_CHECK;

/* Codes the token form at `in` (exactly s->xlen bytes) back into the stream s describes:
 * its header, then the range-coded tokens, through sink. Every record is checked (kinds,
 * lengths, distances within what was produced, the size reached exactly): PQ_ERR_FORMAT.
 * s->clen receives the bytes written. */
int pkg__lzx_pack(pkg__lzx_src *in, pkg__lzx_stream *s, uint64_t max_window, pkg_sink_fn sink,
                  void *user) PQ_MUST_CHECK;

#endif
