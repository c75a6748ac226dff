/* pkg_int.h: internals shared by the files of the package module; not part of the API.
 * Names use the pkg__ prefix.
 *   pkg_io.c       positioned reads and writes, temporary outputs, the mapped delta base
 *   pkg_build.c    building leaves (an image, compressed or a delta) and containers
 *   pkg_read.c     the reader: open, list, find, byte ranges, the delta descriptor
 *   pkg_extract.c  copying a package out, decoding a leaf's image, applying a delta
 *   pkg_verify.c   deep verification in one sequential pass
 *   delta_*.c      the segmented delta (version 2): delta.h
 * (swpg.c, codec.c and bundle.c use only the public headers.) */
#ifndef PQOTA_PKG_PKG_INT_H
#define PQOTA_PKG_PKG_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"

#define PKG__IO_BUF      (1u << 20)
#define PKG__ENTRIES_MAX 4096 /* entries in one file, all levels together */

/* ---- little-endian fields ------------------------------------------------------------- */

static inline void pkg__put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void pkg__put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static inline void pkg__put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static inline uint16_t pkg__get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t pkg__get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t pkg__get64(const uint8_t *p)
{
	return (uint64_t)pkg__get32(p) | (uint64_t)pkg__get32(p + 4) << 32;
}

static inline void pkg__progress(const pkg_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn)
		p->fn(done, total, p->user);
}

/* PQ_ERR_CANCELLED once the caller has asked to stop (pkg_progress.cancel), else PQ_OK. */
static inline int pkg__cancelled(const pkg_progress *p)
{
	if (p && p->cancel && atomic_load(p->cancel))
		return pq_err_set(PQ_ERR_CANCELLED, "cancelled");
	return PQ_OK;
}

/* ---- file I/O (pkg_io.c) -------------------------------------------------------------- */

/* Reads or writes exactly len bytes at offset off (a short file is PQ_ERR_FORMAT). */
int pkg__pread_full(int fd, void *buf, size_t len, uint64_t off) PQ_MUST_CHECK;
int pkg__pwrite_full(int fd, const void *buf, size_t len, uint64_t off) PQ_MUST_CHECK;
/* Whether fd is still the file at path (not unlinked or replaced since it was opened). */
bool pkg__same_file(int fd, const char *path);

/* An output file written as <path>.tmp.<pid> and renamed into place on success. */
typedef struct {
	int fd;
	char tmp[PATH_MAX];
	const char *path;
	uint64_t written;
	uint32_t crc;
	pq_hash_ctx *sha; /* optional: hash of everything written (the caller's) */
} pkg__out_file;

int pkg__out_open(pkg__out_file *o, const char *path, mode_t mode) PQ_MUST_CHECK;
/* A pkg_sink_fn (user: the pkg__out_file): appends, updating the CRC and the hash. */
int pkg__out_sink(const uint8_t *data, size_t len, void *user) PQ_MUST_CHECK;
/* fsync, rename into place, fsync the directory. */
int pkg__out_commit(pkg__out_file *o) PQ_MUST_CHECK;
/* Closes and removes the temporary file (safe on an unopened or committed one). */
void pkg__out_abort(pkg__out_file *o);

/* Maps a whole file of at most max bytes read-only (len 0 gives a NULL map) and hashes it. */
int pkg__map_file(const char *path, uint64_t max, void **map, size_t *len,
                  uint8_t sha[32]) PQ_MUST_CHECK;
void pkg__unmap_file(void *map, size_t len);

/* ---- formats (pkg_io.c) --------------------------------------------------------------- */

/* A delta descriptor of any version (version 2's fields are 0 in version 1; in version 3,
 * segments counts the LZMA streams of its table). */
typedef struct {
	uint32_t version;
	uint64_t base_size, target_size;
	uint8_t base_sha[32], target_sha[32];
	uint32_t segments;
	uint64_t table_off; /* from the payload's start */
	uint32_t table_len;
	uint64_t apply_memory; /* the most memory an apply of this delta needs (bytes) */
	uint64_t payload_off;  /* where the delta starts in the payload (an inner delta: 120) */
} pkg__delta_desc;

void pkg__delta_desc_encode(uint8_t d[PKG_DELTA_DESC_LEN], uint64_t base_size,
                            const uint8_t base_sha[32], uint64_t target_size,
                            const uint8_t target_sha[32]);
int pkg__delta_desc_decode(const uint8_t d[PKG_DELTA_DESC_LEN], pkg__delta_desc *out) PQ_MUST_CHECK;

/* An index entry name: 1..PKG_NAME_MAX of A-Z a-z 0-9 _ - (PQ_ERR_INVAL). */
int pkg__check_name(const char *name) PQ_MUST_CHECK;
/* May a container of `parent` type hold a package of `child` type? */
bool pkg__may_hold(uint8_t parent, uint8_t child);

/* ---- reading (pkg_read.c) ------------------------------------------------------------- */

struct pkg_reader {
	int fd;
	uint64_t size;
	char name[PATH_MAX];
	pkg_entry *e;
	size_t n, cap;
	bool listed;
};

/* Receives bytes [pos, pos+len) of the file. */
typedef int (*pkg__range_fn)(const uint8_t *data, size_t len, uint64_t pos, void *user);

/* Streams bytes [off, off+len) of the file through fn, in PKG__IO_BUF pieces. */
int pkg__read_range(pkg_reader *r, uint64_t off, uint64_t len, pkg__range_fn fn, void *user,
                    const pkg_progress *p) PQ_MUST_CHECK;

/* Reads the delta descriptor of the leaf e and checks it against e's header. */
int pkg__read_delta_desc(pkg_reader *r, const pkg_entry *e, pkg__delta_desc *d) PQ_MUST_CHECK;
/* The same, and PQ_ERR_INVAL ("... is not a delta package") when e is no delta. */
int pkg__delta_of(pkg_reader *r, const pkg_entry *e, pkg__delta_desc *d) PQ_MUST_CHECK;

#endif
