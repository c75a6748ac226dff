/* delta.h: the segmented delta (descriptor version 2, docs/package-format.md 5): internals of
 * the package module, shared by its encoder (delta_enc.c, with the block index in
 * delta_index.c), its applier (delta_apply.c) and the format pieces (delta_fmt.c).
 *
 * A version-2 delta payload is: the 120-byte descriptor, the segments' data, then the segment
 * table. Each segment rebuilds one stretch of the target from an op list (copies of base
 * ranges and runs of literal bytes) and the literal bytes, a zstd frame compressed against a
 * window of base ranges. A segment needs only its window, its literals and its ops in memory,
 * so applying needs memory bounded by the descriptor's apply_memory whatever the image size,
 * and an interrupted apply restarts at a segment boundary. */
#ifndef PQOTA_PKG_DELTA_H
#define PQOTA_PKG_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lzma.h>

#include "core/buf.h"
#include "core/err.h"
#include "pkg/codec.h"
#include "pkg/lzx.h"
#include "pkg/pkg_int.h"

#define PKG__D2_DESC_LEN 120
#define PKG__D2_VERSION  2
#define PKG__D3_VERSION  3  /* a version-2 delta between expanded images (delta_x.c) */
#define PKG__D2_HASH_LEN 8  /* a segment's check: the first 8 bytes of its SHA-256 */
#define PKG__D2_EXT_MAX  16 /* base ranges in one segment's window */
/* Bounds every reader applies whatever the descriptor says. */
#define PKG__D2_SEG_MAX    (1ull << 34) /* target bytes in one segment */
#define PKG__D2_LIT_MAX    (256u << 20) /* literal bytes in one segment */
#define PKG__D2_WINDOW_MAX (1u << 30)   /* window bytes of one segment */
#define PKG__D2_OPS_MAX    (8u << 20)   /* decoded op bytes of one segment */
#define PKG__D2_SEGS_MAX   (1u << 20)   /* segments in one delta */
#define PKG__D2_IMAGE_MAX  (1ull << 36) /* base and target bytes (64 GiB) */
#define PKG__D2_TABLE_MAX  (64u << 20)  /* table bytes */
/* Fixed memory of an apply besides the segment's own buffers: the I/O buffer, the zstd
 * decoder's state, the table. */
#define PKG__D2_APPLY_FIXED (2u << 20)

/* One base range of a window. */
typedef struct {
	uint64_t off, len;
} pkg__d2_ext;

/* How a segment's ops and literals are stored (the flags field). */
enum {
	PKG__D2_OPS_ZSTD = 1,  /* ops: a zstd frame (else raw) */
	PKG__D2_LIT_SHIFT = 1, /* literals: codec in bits 1..2 */
	PKG__D2_LIT_NONE = 0,  /* no literals */
	PKG__D2_LIT_ZSTD = 1,  /* a zstd frame with the window as prefix */
	PKG__D2_LIT_LZMA2 = 2, /* a raw LZMA2 stream with the window as preset dictionary */
	PKG__D2_LIT_RAW = 3,   /* stored as they are */
	PKG__D2_FLAGS_KNOWN = 0x7,
};

/* One segment, as the table lists it (data_off and target_off are computed while reading). */
typedef struct {
	uint64_t target_len; /* target bytes the segment produces */
	uint32_t flags;
	uint64_t ops_len, ops_size; /* the op list: decoded and stored sizes */
	uint64_t lit_len, lit_size; /* the literal bytes: decoded and stored sizes */
	uint32_t n_ext;
	pkg__d2_ext ext[PKG__D2_EXT_MAX];
	uint8_t hash[PKG__D2_HASH_LEN];
	uint64_t data_off;   /* of the ops, from the payload's start (then the literals) */
	uint64_t target_off; /* where its bytes go in the target */
} pkg__d2_seg;

static inline unsigned pkg__d2_lit_codec(const pkg__d2_seg *s)
{
	return (s->flags >> PKG__D2_LIT_SHIFT) & 3;
}

/* Ops: a varint tag (len << 2 | kind). Kind 0 copies len base bytes from the base offset
 * that follows (a zigzag varint relative to the end of the previous copy or add); kind 1
 * takes len literal bytes; kind 2 adds: len base bytes from the offset that follows, each
 * plus (mod 256) the next literal byte (bsdiff's approximate match). */
enum {
	PKG__D2_OP_COPY = 0,
	PKG__D2_OP_LIT = 1,
	PKG__D2_OP_ADD = 2,
	PKG__D2_OP_BITS = 2,
};

/* ---- delta_fmt.c ----------------------------------------------------------------------- */

void pkg__d2_desc_encode(uint8_t out[PKG__D2_DESC_LEN], const pkg__delta_desc *d);
/* Checks magic, version, bounds; the caller checks it against the SWPG header. */
int pkg__d2_desc_decode(const uint8_t in[PKG__D2_DESC_LEN], pkg__delta_desc *d) PQ_MUST_CHECK;

/* Appends v as a varint (LEB128) to b (core/buf.h: a failure sticks in b->err). */
void pkg__varint_put(pq_buf *b, uint64_t v);
static inline uint64_t pkg__zigzag(int64_t v)
{
	return v < 0 ? ((uint64_t)(-(v + 1)) << 1) | 1 : (uint64_t)v << 1;
}
static inline int64_t pkg__unzigzag(uint64_t v)
{
	return v & 1 ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
}

/* Reads a varint at *pos of p[0..len), advancing *pos; false when cut or over 64 bits. */
bool pkg__varint_get(const uint8_t *p, size_t len, size_t *pos, uint64_t *v);

/* Appends one segment's table entry. */
void pkg__d2_seg_encode(pq_buf *b, const pkg__d2_seg *s);
/* Parses the whole table against the descriptor: every segment's sizes within the bounds,
 * the targets summing to target_size, the data ranges inside [PKG__D2_DESC_LEN, table_off)
 * in order, and every window within the base. segs gets d->segments entries (malloc'd). */
int pkg__d2_table_decode(const uint8_t *t, size_t len, const pkg__delta_desc *d,
                         pkg__d2_seg **segs) PQ_MUST_CHECK;
/* The memory the parsed table of a delta takes (its bytes and one pkg__d2_seg each). */
static inline uint64_t pkg__d2_table_memory(uint64_t table_len, uint64_t segments)
{
	return table_len + segments * sizeof(pkg__d2_seg);
}

/* The memory applying segment s needs besides PKG__D2_APPLY_FIXED: the window, the
 * literals, the ops, their stored forms, and the LZMA2 dictionary (window + literals). */
uint64_t pkg__d2_seg_memory(const pkg__d2_seg *s);

/* ---- delta_enc.c ----------------------------------------------------------------------- */

typedef struct {
	int level;            /* zstd level of the literals (0: 19) */
	uint64_t mem_limit;   /* encoder memory (0: PKG_DELTA_ENC_MEM_DEFAULT) */
	uint64_t apply_limit; /* memory an apply may need (0: PKG_DELTA_APPLY_MEM_DEFAULT) */
	const pkg_progress *progress;
} pkg__d2_enc_opts;

/* Writes the payload of a version-2 delta from base to target (both mapped by the caller)
 * through sink, except the descriptor: its room (PKG__D2_DESC_LEN bytes) is left to the
 * caller, which gets its fields in *d (hashes excepted) and writes it last. */
int pkg__d2_encode(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                   uint64_t target_len, const pkg__d2_enc_opts *o, pkg_sink_fn sink, void *user,
                   pkg__delta_desc *d) PQ_MUST_CHECK;

/* The LZMA2 options of a segment's literals: its dictionary holds the window (the preset
 * dictionary, w) and the literals. */
void pkg__d2_lzma_opts(lzma_options_lzma *o, uint32_t preset, const uint8_t *w, uint64_t wlen,
                       uint64_t lit_len);

/* ---- delta_sa.c: bsdiff's alignment, for small images -------------------------------- */

#define PKG__D2_SA_MAX (32u << 20) /* base and target bytes the suffix-array plan takes */

/* Receives the plan in target order: adds (kind PKG__D2_OP_ADD, target [t0, t1) against
 * base offset b) and literal runs (PKG__D2_OP_LIT). */
typedef void (*pkg__d2_sa_fn)(void *user, unsigned kind, uint64_t t0, uint64_t t1, uint64_t b);

int pkg__d2_sa_plan(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                    uint64_t target_len, pkg__d2_sa_fn fn, void *user) PQ_MUST_CHECK;

/* ---- delta_apply.c --------------------------------------------------------------------- */

/* Applies the version-2 delta e (descriptor d, checked against e's header) to the base open
 * at base_fd (its size and SHA-256 already checked), writing out_path. */
int pkg__d2_apply(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d, int base_fd,
                  const char *out_path, pkg_apply_opts *o) PQ_MUST_CHECK;

/* ---- delta_x.c, delta_x_apply.c: deltas through LZMA streams (version 3) --------------- */

#define PKG__DX_MIN_CLEN    (4u << 10)    /* smaller streams are left as they are */
#define PKG__DX_MAX_USIZE   (256u << 20)  /* uncompressed bytes of one stream */
#define PKG__DX_USIZE_TOTAL (16ull << 30) /* uncompressed bytes of an image's streams */
#define PKG__DX_TABLE_MAX   (1u << 20)    /* stream table bytes */
#define PKG__DX_STREAMS_MAX 4096          /* streams of one image */
/* The memory coding a stream back takes besides its window. */
#define PKG__DX_APPLY_FIXED (PKG__LZX_MODEL + 2 * (uint64_t)PKG__IO_BUF)

/* An LZMA stream inside an image, at off. */
typedef struct {
	uint64_t off;
	pkg__lzx_stream s;
} pkg__dx_stream;

/* Called for each stream found, with its token form (st->s.xlen bytes). */
typedef int (*pkg__dx_found_fn)(void *user, const pkg__dx_stream *st, const uint8_t *tokens);

typedef struct {
	uint64_t max_window;          /* streams with a larger window are left alone */
	uint64_t mem_limit;           /* the encoder's: bounds a candidate's token form (0: none) */
	const pkg_progress *progress; /* its cancel flag is checked */
	pkg__dx_found_fn found;       /* may be NULL */
	void *user;
} pkg__dx_scan_opts;

/* The LZMA streams of img that lzx.c codes back bit for bit (at least 4 KiB each), in order
 * (*out malloc'd, NULL when none). Candidates that fail cost at most about twice the image
 * in decoding, whatever the image holds; after that the scan stops. */
int pkg__dx_scan(const uint8_t *img, uint64_t len, const pkg__dx_scan_opts *o, pkg__dx_stream **out,
                 size_t *n) PQ_MUST_CHECK;
/* Appends the stream table of a version-3 delta. */
void pkg__dx_table_encode(pq_buf *b, const pkg__dx_stream *bs, size_t nb, const pkg__dx_stream *ts,
                          size_t nt);

/* A parsed stream table. */
typedef struct {
	pkg__dx_stream *bs, *ts;
	size_t nb, nt;
	uint64_t window; /* the largest window of the target's streams */
	uint64_t memory; /* what the table and the lists take */
} pkg__dx_table;

/* Parses the stream table t[0..len) of the delta d whose inner descriptor is inner: every
 * stream in order inside its image and within the bounds above, the expanded sizes equal to
 * the inner delta's (PQ_ERR_FORMAT). */
int pkg__dx_table_decode(const uint8_t *t, size_t len, const pkg__delta_desc *d,
                         const pkg__delta_desc *inner, pkg__dx_table *out) PQ_MUST_CHECK;
void pkg__dx_table_free(pkg__dx_table *t);

/* Opens a new file named prefix-XXXXXX and unlinks it at once. */
int pkg__dx_open_unlinked(const char *prefix, int *fd) PQ_MUST_CHECK;

/* What a version-3 delta is made from: both images' streams and expanded forms. */
typedef struct {
	bool used; /* both images hold streams */
	pkg__dx_stream *bs, *ts;
	size_t nb, nt;
	uint8_t *xb, *xt; /* the expanded base and target, mapped from unlinked files in TMPDIR */
	uint64_t xb_len, xt_len;
	uint8_t xb_sha[32], xt_sha[32];
	uint64_t window, base_len, target_len;
} pkg__dx_plan;

/* Finds the streams of both images and expands them (p->used), or leaves p unused when the
 * target or the base has none. Streams whose window would not leave the inner delta room in
 * the apply limit are left as they are. */
int pkg__dx_plan_make(const uint8_t *base, uint64_t base_len, const uint8_t *target,
                      uint64_t target_len, const pkg__d2_enc_opts *o,
                      pkg__dx_plan *p) PQ_MUST_CHECK;
void pkg__dx_plan_free(pkg__dx_plan *p);
/* Writes the payload of a version-3 delta after its two descriptors (the caller leaves
 * 2 * PKG__D2_DESC_LEN bytes of room): the inner delta's segments and table, then the stream
 * table. *outer gets the outer descriptor's fields (hashes excepted), inner_raw the inner
 * descriptor, whole. PQ_ERR_RANGE when the streams leave the inner delta no room. */
int pkg__dx_encode(const pkg__dx_plan *p, const pkg__d2_enc_opts *o, pkg_sink_fn sink, void *user,
                   pkg__delta_desc *outer, uint8_t inner_raw[PKG__D2_DESC_LEN]) PQ_MUST_CHECK;
/* Applies the version-3 delta e (descriptor d) to the base open at base_fd (checked). */
int pkg__dx_apply(pkg_reader *r, const pkg_entry *e, const pkg__delta_desc *d, int base_fd,
                  const char *out_path, pkg_apply_opts *o) PQ_MUST_CHECK;

/* ---- delta_index.c: the base's block index and the long exact matches ------------------ */

/* One copy: target[t, t+len) == base[b, b+len). */
typedef struct {
	uint64_t t, b, len;
} pkg__d2_copy;

typedef struct pkg__d2_index pkg__d2_index;

/* Indexes base with a stride chosen so that the index takes at most `budget` bytes. */
int pkg__d2_index_new(const uint8_t *base, uint64_t base_len, uint64_t budget,
                      const pkg_progress *p, pkg__d2_index **out) PQ_MUST_CHECK;
void pkg__d2_index_free(pkg__d2_index *ix);
/* Gives the mapped pages of [p, p + len) back (they stay in the page cache): the images are
 * read through mappings, which would otherwise count their whole size in the encoder's
 * memory. */
void pkg__d2_release_pages(const uint8_t *p, uint64_t len);
/* Bytes a new index of base_len bytes takes with that budget (for the memory check). */
uint64_t pkg__d2_index_size(uint64_t base_len, uint64_t budget);

/* The long exact matches of target[from, to) against the base, in target order, not
 * overlapping, each at least min_len long (*copies malloc'd, *n of them). diag is the
 * base-minus-target offset of the last copy before `from` (0 at the start), tried first. */
int pkg__d2_matches(const pkg__d2_index *ix, const uint8_t *target, uint64_t from, uint64_t to,
                    uint64_t min_len, int64_t *diag, pkg__d2_copy **copies,
                    size_t *n) PQ_MUST_CHECK;

#endif
