/* pkg.h: SWPG packages on disk: leaf packages (one image, compressed or a delta),
 * containers (a zone: its ZGW's and ECUs' packages; a vehicle bundle: the VMG package and
 * the zone packages) with an index, and a reader that lists, extracts and deep-verifies
 * any child without reading the rest. Formats: docs/package-format.md.
 *
 * Memory does not grow with the image: building, verifying and extracting stream through a
 * 1 MiB I/O buffer and 256 KiB codec buffers, plus the codec's state: compressing, 3.5 MiB
 * at the default zstd level 3 (zstd's own estimate; 89.5 MiB at level 19, zlib 256 KiB);
 * decompressing, at most a 16 MiB zstd window (PKG_ZSTD_WINDOW_LOG_MAX). Deltas (format
 * version 2, docs/package-format.md 5) apply within a memory limit whatever the image size
 * (PKG_DELTA_APPLY_MEM_DEFAULT); making one maps both images and keeps a block index of the
 * base within the encoder's own limit (PKG_DELTA_ENC_MEM_DEFAULT). */
#ifndef PQOTA_PKG_PKG_H
#define PQOTA_PKG_PKG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "pkg/swpg.h"

#define PKG_NAME_MAX        8 /* index entry names: "ECU_011", "ZGW1", "ZONE3" */
#define PKG_INDEX_MAGIC     "SWIX"
#define PKG_INDEX_HDR_LEN   16
#define PKG_INDEX_ENTRY_LEN 64
#define PKG_CHILDREN_MAX    1024 /* entries in one container */
#define PKG_DEPTH_MAX       2    /* vehicle -> zone -> leaf (enforced by what each type may hold) */
#define PKG_DELTA_MAGIC     "SWDL"
#define PKG_DELTA_DESC_LEN  88 /* version 1; version 2's is 120 bytes */
/* Version-1 deltas (read only): base and target up to 1 GiB each, so that base + target fits
 * zstd's largest window (2^31 bytes). */
#define PKG_DELTA_MAX (1ull << 30)
/* Version-2 deltas: images up to 64 GiB. The SWPG header's uncompressed_size is 32-bit: for
 * a target of 0xFFFFFFFF bytes or more it holds 0xFFFFFFFF, and the descriptor the size. */
#define PKG_DELTA2_MAX              (1ull << 36)
#define PKG_DELTA_LEVEL_DEFAULT     19
#define PKG_DELTA_APPLY_MEM_DEFAULT (64u << 20) /* memory an apply may use */
#define PKG_DELTA_APPLY_MEM_MIN     (8u << 20)
#define PKG_DELTA_ENC_MEM_DEFAULT   (1ull << 30) /* memory making a delta may use */

/* Progress: called with bytes done and total (total 0 = unknown) at most every 1 MiB. */
typedef void (*pkg_progress_fn)(uint64_t done, uint64_t total, void *user);

typedef struct {
	pkg_progress_fn fn;
	void *user;
	/* Another thread sets *cancel to stop the operation at its next check (every MiB or
	 * so): it then fails with PQ_ERR_CANCELLED, its partial output removed (a resumable
	 * delta apply keeps its checkpoint). NULL: never. */
	const atomic_int *cancel;
} pkg_progress;

/* What a build produced: one unit of the manifest. */
typedef struct {
	char path[64]; /* position in the tree: "ZONE1/ECU_011", "VMG", "" (root) */
	char name[PKG_NAME_MAX + 1];
	swpg_header hdr;
	uint64_t size;            /* package bytes (header + payload) */
	uint8_t sha256[32];       /* of the package bytes */
	uint8_t image_sha256[32]; /* of the uncompressed image (leaves) */
	uint64_t image_size;
	bool delta;
	uint8_t base_sha256[32];
	uint64_t base_size;
} pkg_unit;

/* ---- leaves -------------------------------------------------------------------------- */

typedef struct {
	uint16_t ecu;
	uint8_t type; /* SWPG_TYPE_APP..CFG */
	swpg_version version;
	uint32_t timestamp;    /* version_timestamp (0: now) */
	uint32_t serial;       /* version_serial */
	uint8_t compression;   /* none, zlib, zstd; DELTA is chosen by base_path */
	int level;             /* compression level (0: default) */
	const char *base_path; /* delta: the installed image to patch from (NULL: full) */
	swpg_version base_version;
	uint64_t mem_limit; /* delta: memory the encoder may use (0: PKG_DELTA_ENC_MEM_DEFAULT) */
	uint64_t
	    apply_limit; /* delta: memory applying it may need (0: PKG_DELTA_APPLY_MEM_DEFAULT) */
	uint16_t source_ecu;
	uint32_t sequence;
	pkg_progress progress;
} pkg_leaf_opts;

/* Streams `image_path` into the package file `out_path` (written atomically). */
int pkg_build_leaf(const char *image_path, const pkg_leaf_opts *o, const char *out_path,
                   pkg_unit *unit) PQ_MUST_CHECK;

/* ---- containers ---------------------------------------------------------------------- */

typedef struct {
	const char *path; /* a package file (leaf or zone) */
	const char *name; /* index name, <= 8 characters */
} pkg_child;

typedef struct {
	uint8_t type; /* SWPG_TYPE_ZONE or SWPG_TYPE_VEHICLE */
	uint16_t ecu; /* zone: its ZGW id; vehicle: SWPG_ECU_VMG */
	swpg_version version;
	uint32_t timestamp;
	uint32_t serial;
	pkg_progress progress;
} pkg_container_opts;

/* Writes a container of the given child package files. */
int pkg_build_container(const pkg_child *children, size_t n, const pkg_container_opts *o,
                        const char *out_path, pkg_unit *unit) PQ_MUST_CHECK;

/* ---- reading ------------------------------------------------------------------------- */

typedef struct pkg_reader pkg_reader;

typedef struct {
	char path[64];   /* "", "VMG", "ZONE1", "ZONE1/ECU_011" */
	int depth;       /* 0 root */
	uint64_t offset; /* of the package in the file */
	uint64_t size;   /* header + payload */
	swpg_header hdr;
	bool has_sha256; /* children carry their hash in the parent's index */
	uint8_t sha256[32];
} pkg_entry;

/* Opens a package file and validates its header and size. */
int pkg_open(const char *path, pkg_reader **out) PQ_MUST_CHECK;
void pkg_close(pkg_reader *r);
uint64_t pkg_file_size(const pkg_reader *r);

/* The tree, root first, depth-first in index order. Reads headers and indexes only,
 * validating their layout (bounds, order, no gaps or overlaps, depth, counts). The array
 * belongs to the reader. */
int pkg_list(pkg_reader *r, const pkg_entry **entries, size_t *n) PQ_MUST_CHECK;

/* Finds an entry by path, or by ECU name/id ("ECU_011", "0x1011") when unique. */
int pkg_find(pkg_reader *r, const char *what, const pkg_entry **out) PQ_MUST_CHECK;

/* Copies an entry's package bytes to out_path, checking its index hash. */
int pkg_extract_package(pkg_reader *r, const pkg_entry *e, const char *out_path,
                        const pkg_progress *p) PQ_MUST_CHECK;

/* Decodes a leaf entry's image (decompressing; a delta needs base_path) to out_path,
 * checking the entry's index SHA-256 (children), the CRC, the size and, for deltas, the
 * base and target hashes. Nothing is left at out_path on failure. */
int pkg_extract_image(pkg_reader *r, const pkg_entry *e, const char *base_path,
                      const char *out_path, const pkg_progress *p) PQ_MUST_CHECK;

typedef struct {
	size_t packages;
	size_t leaves;
	uint64_t bytes_checked;
	char failed_path[64]; /* the first entry that failed, if any */
} pkg_verify_report;

/* Deep verification: every header, the layout, every index SHA-256, every payload CRC,
 * and every leaf decompressed to its announced size (deltas: descriptor only, as the base
 * is not at hand). */
int pkg_verify(pkg_reader *r, pkg_verify_report *rep, const pkg_progress *p) PQ_MUST_CHECK;

/* ---- deltas --------------------------------------------------------------------------- */

/* Applies the delta leaf `e` of an open reader (the root of a delta package file, or a
 * child of a bundle) to base_path, writing the exact target to out_path or failing (wrong
 * base, corrupted delta, target hash mismatch) with no output left behind. */
int pkg_apply_delta(pkg_reader *r, const pkg_entry *e, const char *base_path, const char *out_path,
                    const pkg_progress *p) PQ_MUST_CHECK;

typedef struct {
	uint64_t mem_limit; /* memory the apply may use (0: PKG_DELTA_APPLY_MEM_DEFAULT) */
	bool resume;        /* work in <out>.part with a checkpoint (<out>.part.ckpt) after each
	                     * segment (a version-3 delta also keeps <out>.x and its own .part
	                     * and checkpoint); an apply killed half-way continues from them */
	pkg_progress progress;
	/* filled in */
	uint64_t resumed_bytes; /* target bytes taken over, verified, from an interrupted apply */
	uint64_t memory_needed; /* what the delta says applying it needs */
} pkg_apply_opts;

/* pkg_apply_delta with a memory limit (a delta that needs more is refused before anything is
 * written) and resumption. The output is verified as it is written: each segment against its
 * hash, the whole against the target SHA-256. */
int pkg_apply_delta_ex(pkg_reader *r, const pkg_entry *e, const char *base_path,
                       const char *out_path, pkg_apply_opts *o) PQ_MUST_CHECK;
/* Removes what an interrupted resumable apply to out_path keeps for the next try. */
void pkg_apply_discard(const char *out_path);

/* A delta's descriptor (docs/package-format.md 5.2): the base and target it was made for. */
typedef struct {
	uint64_t base_size, target_size;
	uint8_t base_sha256[32], target_sha256[32];
	uint32_t version;      /* descriptor version: 1 (zstd patch-from) or 2 (segmented) */
	uint64_t apply_memory; /* version 2: what applying it needs */
	uint32_t segments;     /* version 2 */
} pkg_delta_info;

/* Reads the descriptor of the delta leaf `e` without decoding anything, checked against
 * e's header as pkg_apply_delta checks it (target_size == uncompressed_size, the base hash
 * prefix, base_size at most PKG_DELTA_MAX); PQ_ERR_INVAL when e is not a delta. */
int pkg_delta_info_read(pkg_reader *r, const pkg_entry *e, pkg_delta_info *out) PQ_MUST_CHECK;

#endif
