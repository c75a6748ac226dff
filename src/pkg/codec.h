/* codec.h: incremental compressors and decompressors for SWPG payloads (none, zlib, zstd,
 * and zstd patched from a base image for deltas). Input is fed in pieces; output goes to
 * a sink callback. Buffers are fixed (PKG_CODEC_BUF), so memory does not grow with input. */
#ifndef PQOTA_PKG_CODEC_H
#define PQOTA_PKG_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define PKG_CODEC_BUF          (256 * 1024)
#define PKG_ZSTD_LEVEL_DEFAULT 3
#define PKG_ZLIB_LEVEL_DEFAULT 6
/* Largest zstd window a decoder accepts for a full image (a delta's is sized to its base):
 * 16 MiB. Frames pqota writes (levels 1..19, no long mode) need at most 8 MiB, and a hostile
 * frame cannot make a decoder allocate more than this. */
#define PKG_ZSTD_WINDOW_LOG_MAX 24

/* Receives output bytes; returns PQ_OK or an error that stops the codec. */
typedef int (*pkg_sink_fn)(const uint8_t *data, size_t len, void *user);

typedef struct pkg_enc pkg_enc;
typedef struct pkg_dec pkg_dec;

/* comp: SWPG_COMP_NONE, ZLIB, ZSTD or DELTA (zstd with `prefix`, the base image, mapped by
 * the caller for the encoder's lifetime). level 0 = default. pledged = input size. */
int pkg_enc_new(uint8_t comp, int level, uint64_t pledged, const void *prefix, size_t prefix_len,
                pkg_enc **out) PQ_MUST_CHECK;
/* Compresses len bytes; `end` flushes and closes the stream. */
int pkg_enc_feed(pkg_enc *e, const uint8_t *in, size_t len, bool end, pkg_sink_fn sink,
                 void *user) PQ_MUST_CHECK;
void pkg_enc_free(pkg_enc *e);

/* A decoder that produces exactly `expect_out` bytes or fails: more output than announced,
 * a truncated stream or trailing garbage are errors (PQ_ERR_FORMAT). */
int pkg_dec_new(uint8_t comp, uint64_t expect_out, const void *prefix, size_t prefix_len,
                pkg_dec **out) PQ_MUST_CHECK;
int pkg_dec_feed(pkg_dec *d, const uint8_t *in, size_t len, pkg_sink_fn sink,
                 void *user) PQ_MUST_CHECK;
/* Checks the stream ended exactly and produced expect_out bytes. */
int pkg_dec_finish(pkg_dec *d) PQ_MUST_CHECK;
uint64_t pkg_dec_produced(const pkg_dec *d);
void pkg_dec_free(pkg_dec *d);

#endif
