/* releases_int.h: what the release files share and nothing else sees: uploads.c (the
 * resumable uploads, their files under DATA/uploads/ and their routes), releases.c (the
 * releases built from them), delta_routes.c (a release's deltas: queued, listed),
 * delta_jobs.c (the background worker that makes them) and release_delta.c (an operator's
 * delta package, checked). */
#ifndef PQOTA_SERVER_RELEASES_INT_H
#define PQOTA_SERVER_RELEASES_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "pkg/pkg.h"
#include "server/server.h"
#include "store/store.h"

#define REL_UPLOAD_MAX (4ull << 30) /* an SWPG image is at most 4 GiB */

/* DATA/<dir>/<name>; PQ_ERR_RANGE when it does not fit PATH_MAX. */
int rel_data_path(srv *s, const char *dir, const char *name, char out[PATH_MAX]) PQ_MUST_CHECK;

/* files_gc.c: removes the files of shas (DATA/files/<sha>, DATA/images/<sha>, and a
 * package's encrypted copy with its key) that no row of the store names; call it with the
 * files lock held. The first error is returned, the others still tried. */
int rel_files_forget(srv *s, store *db, const char *const *shas, size_t n) PQ_MUST_CHECK;
/* The process's files lock: held from building a release's files to storing its rows, and
 * around rel_files_forget. */
void rel_files_lock(srv *s);
void rel_files_unlock(srv *s);
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
	const char *scratch;   /* where the applied delta is decoded (under DATA/tmp/), removed */
	pkg_progress progress; /* of the decoding (applying the delta to the base) */
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
/* The quick part of rel_delta_adopt's checks, done when the delta is queued: one SWPG delta
 * leaf whose descriptor names w's base and full image (nothing decoded; w->scratch unused).
 * PQ_ERR_VERIFY with the reason when it is not. */
int rel_delta_precheck(const char *delta_path, const rel_delta_want *w) PQ_MUST_CHECK;
/* rel_delta_precheck of an upload for a delta of r from base; false when an error was sent
 * (422 delta_mismatch with the reason). */
bool rel_delta_upload_ok(srv_ctx *c, const char *upload, const store_release *r,
                         const store_release *base);

/* DATA/tmp/: scratch files (a delta's decoded output), removed when done. At start-up the
 * server removes the regular files in it that are REL_TMP_STALE_S old (left by a crash;
 * younger ones may be another instance's work when instances share the data directory).
 * Returns how many were removed. */
#define REL_TMP_DIR     "tmp"
#define REL_TMP_STALE_S 600
int rel_tmp_sweep(const char *dir, time_t now);

/* ---- releases and their deltas ---- */

/* The upload exists and is complete (want: its declared SHA-256, "" when none); false when
 * an error was sent. */
bool rel_upload_ready(srv_ctx *c, const char *upload, char want[65]);
/* The upload hashed (sha) and checked against its declared hash want; false when an error
 * was sent (422 hash_mismatch). */
bool rel_hash_upload(srv_ctx *c, const char *upload, const char *want, char sha[65]);

/* The SWPG version of a semantic version (each number 0..255). */
int rel_swpg_version(const char *semver_text, swpg_version *v) PQ_MUST_CHECK;
/* Builds a package of `image` into DATA/files/<sha256> (written under a temporary name,
 * then renamed); fills sha and size. */
int rel_build_into_store(srv *s, const char *image, const pkg_leaf_opts *o, char sha[65],
                         int64_t *size) PQ_MUST_CHECK;
/* A release's JSON (docs/api.md 7.7) with its deltas read from db. */
json_t *rel_release_json(store *db, const store_release *r);
/* One delta's JSON (docs/api.md 7.10). */
json_t *rel_delta_json(const store_release_delta *d);
/* The live "release_delta" event of d. */
void rel_delta_event(srv *s, const store_release_delta *d);

/* DATA/deltas/: an operator's delta package waiting for its check (store_release_delta's
 * input), moved there from its upload when the delta is queued, removed once checked. */
#define REL_DELTA_DIR "deltas"

/* The base release `from` names for a delta of r: a release id, or a version of r's
 * hardware, ECU and software type. False when an error was sent (400: unknown, or a
 * release of another hardware or software type; 409: r itself). */
bool rel_delta_base(srv_ctx *c, const store_release *r, const char *from, store_release *base);
/* Whether the worker's queue has room (REL_DELTA_QUEUE_MAX queued or running deltas);
 * false when an error was sent (503 with Retry-After). */
#define REL_DELTA_QUEUE_MAX 16
bool rel_delta_room(srv_ctx *c);
/* The queued delta d of release r from base (computed; or, with upload_path, the operator's
 * delta package at that path, moved to DATA/deltas/ now and checked by the worker). Fills
 * d; does not store it. */
int rel_delta_prepare(srv_ctx *c, const store_release *r, const store_release *base,
                      const char *upload_path, store_release_delta *d) PQ_MUST_CHECK;
/* Removes the input file of a delta that was not stored. */
void rel_delta_unprepare(srv *s, const store_release_delta *d);
/* POST and GET /api/v1/releases/{id}/deltas (docs/api.md 7.10, 7.11). */
void rel_delta_create(srv_ctx *c);
void rel_delta_list(srv_ctx *c);

/* The delta worker (delta_jobs.c): one thread that takes the oldest queued delta from the
 * store, marks it running, makes it (pkg_build_leaf; an operator's: rel_delta_adopt) with
 * its progress in the store and as live events, and ends it ready or failed. Jobs live in
 * the store: at start-up, running ones (a stopped server's) are queued again. */
typedef struct rel_jobs rel_jobs;
/* Opens the worker's store connection and re-queues running jobs. */
int rel_jobs_new(srv *s, rel_jobs **out) PQ_MUST_CHECK;
int rel_jobs_start(rel_jobs *j) PQ_MUST_CHECK;
/* Wakes s's worker: a job was queued. */
void rel_jobs_wake(srv *s);
/* Stops the worker (a job in progress is abandoned, running in the store, for the next
 * start) and frees it. */
void rel_jobs_free(rel_jobs *j);
/* For tests only (docs/api.md 7.10): while the file this environment variable names exists,
 * the worker holds each job in state running before making it. */
#define REL_DELTA_HOLD_ENV "PQOTA_TEST_DELTA_HOLD"

/* release_rollout.c: a release's "rollout" (docs/api.md 7.6, 12.10). The check answers 400 and
 * returns false when the body's rollout is not valid (none: true). After the release r is
 * stored, rel_rollout_start creates and starts its continuous campaign and sets
 * out.rollout_campaign_id (or, when that failed, rollout_error; the release stays). */
bool rel_rollout_check(srv_ctx *c, const json_t *body);
void rel_rollout_start(srv_ctx *c, const store_release *r, const json_t *body, json_t *out);

#endif
