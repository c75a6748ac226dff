/* releases_int.h: what the release files share and nothing else sees: uploads.c (the
 * resumable uploads, their files under DATA/uploads/ and their routes), releases.c (the
 * releases built from them) and release_delta.c (an operator's delta package, checked). */
#ifndef PQOTA_SERVER_RELEASES_INT_H
#define PQOTA_SERVER_RELEASES_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pkg/pkg.h"
#include "server/server.h"

#define REL_UPLOAD_MAX (4ull << 30) /* an SWPG image is at most 4 GiB */

/* DATA/<dir>/<name>; PQ_ERR_RANGE when it does not fit PATH_MAX. */
int rel_data_path(srv *s, const char *dir, const char *name, char out[PATH_MAX]) PQ_MUST_CHECK;
/* DATA/uploads/<id>.<ext> ("meta" or "part"). */
int rel_upload_path(srv_ctx *c, const char *id, const char *ext, char out[PATH_MAX]) PQ_MUST_CHECK;
/* Whether id is a UUID as the server makes them (lowercase). */
bool rel_valid_id(const char *id);
/* The declared size and SHA-256 ("" when none) of an upload. PQ_ERR_NOTFOUND: no upload. */
int rel_upload_meta(srv_ctx *c, const char *id, uint64_t *size, char sha[65]) PQ_MUST_CHECK;
/* Bytes received so far. */
int rel_upload_received(srv_ctx *c, const char *id, uint64_t *out) PQ_MUST_CHECK;
/* Removes an upload's files. PQ_ERR_NOTFOUND when there is no such upload. */
int rel_upload_remove(srv_ctx *c, const char *id) PQ_MUST_CHECK;

/* The upload routes (docs/api.md 7.2-7.5). */
void rel_upload_create(srv_ctx *c);
void rel_upload_get(srv_ctx *c);
void rel_upload_put(srv_ctx *c);
void rel_upload_delete(srv_ctx *c);

/* What an operator's delta must be: the delta from the base release's image to the
 * uploaded full image. */
typedef struct {
	const char *base_image; /* DATA/images/<base_sha> */
	const char *base_sha;   /* hex */
	uint64_t full_size;     /* the uploaded full image's length and SHA-256 (hex) */
	const char *full_sha;
	const char *scratch; /* where the applied delta is decoded (under DATA/tmp/), removed */
} rel_delta_want;

/* An operator's delta package (release_delta.c). Checks that the file at delta_path is one
 * SWPG delta leaf whose descriptor names w's base (length and SHA-256 of base_image) and
 * w's full image as its target, before decoding anything; then that, applied to
 * base_image, it gives exactly that image (decoded into w->scratch and removed). Then
 * writes the package again to out_path with the header the server writes for the
 * release's own deltas (o: ECU, type, version, base_version, the build time; the base hash
 * prefix of base_sha), the verified payload byte for byte, checks the result (pkg_verify)
 * and fills unit (size and SHA-256 of the new file). PQ_ERR_VERIFY with the reason (for
 * 422 delta_mismatch) when the upload is not such a delta; other errors are the server's.
 * Nothing is left at out_path or w->scratch on failure. */
int rel_delta_adopt(const char *delta_path, const rel_delta_want *w, const pkg_leaf_opts *o,
                    const char *out_path, pkg_unit *unit) PQ_MUST_CHECK;

/* DATA/tmp/: scratch files (a delta's decoded output), removed when done. At start-up the
 * server removes the regular files in it that are REL_TMP_STALE_S old (left by a crash;
 * younger ones may be another instance's work when instances share the data directory).
 * Returns how many were removed. */
#define REL_TMP_DIR     "tmp"
#define REL_TMP_STALE_S 600
int rel_tmp_sweep(const char *dir, time_t now);

#endif
