/* repo.h: the server side of Uptane: the image repository and the director repository.
 *
 * An up_repo holds the online role keys of both repositories (loaded from a PKI directory,
 * pki.h layout: DIR/uptane/{image,director}/<role>-<alg>.key) and a small state (the last
 * versions; up_repo_state). Each call builds one or more roles' metadata and returns it as
 * canonical signed JSON bytes (meta.h) that the server stores and serves unchanged:
 *
 *   /uptane/image/root.json, /uptane/image/{N}.root.json   every image root ever made
 *   /uptane/image/{targets,snapshot,timestamp}.json         the latest of each
 *   /uptane/director/{vin}/root.json, .../{N}.root.json     the director root (one for all
 *                                                           vehicles)
 *   /uptane/director/{vin}/{targets,snapshot,timestamp}.json  that vehicle's latest
 *
 * Roots are signed once per version and their bytes are not reproducible (signatures are
 * randomised), so the server must keep every root it is given. Versions: each image
 * publication increments targets, snapshot and timestamp; a timestamp refresh increments
 * the timestamp; a director publication takes the vehicle's version from the caller (the
 * server keeps it per vehicle, e.g. its deployment counter) and uses it for that vehicle's
 * targets, snapshot and timestamp alike, so the version must grow with every call for that
 * vehicle, refreshes included.
 *
 * State: the repository keeps its versions in memory (up_repo_state). A server persists
 * them after every successful call, with up_repo_state_save() to a JSON file in its data
 * directory or in its own store, and passes them back to up_repo_open() on start.
 *
 * Thread-safety: an up_repo is not thread-safe: serialise every call on one repo (one mutex);
 * distinct repos are independent. Output buffers belong to the caller. */
#ifndef PQOTA_UPTANE_REPO_H
#define PQOTA_UPTANE_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/profile.h"
#include "uptane/meta.h"

typedef enum {
	UP_REPO_IMAGE = 0,
	UP_REPO_DIRECTOR = 1,
} up_repo_kind;

/* Default lifetimes, seconds. */
#define UP_DAY                     86400LL
#define UP_EXPIRY_ROOT             (365 * UP_DAY)
#define UP_EXPIRY_IMAGE_TARGETS    (90 * UP_DAY)
#define UP_EXPIRY_SNAPSHOT         (7 * UP_DAY)
#define UP_EXPIRY_TIMESTAMP        (1 * UP_DAY)
#define UP_EXPIRY_DIRECTOR_TARGETS (7 * UP_DAY)

/* Largest metadata the repository writes (and verify.c's default limits accept). */
#define UP_MAX_ROOT             (256u << 10)
#define UP_MAX_TIMESTAMP        (16u << 10)
#define UP_MAX_SNAPSHOT         (32u << 10)
#define UP_MAX_IMAGE_TARGETS    (4u << 20)
#define UP_MAX_DIRECTOR_TARGETS (1u << 20)
#define UP_TARGETS_MAX          8192 /* images in the image targets */
#define UP_ECUS_MAX             512  /* ECUs in one vehicle's director targets */

typedef struct {
	pq_sign_policy policy; /* which key files to load; default hybrid */
	pq_alg classical;      /* PQ_ALG_NONE: ECDSA-P256 if its files exist, else Ed25519 */
	/* lifetimes in seconds, [kind][role]; 0 = the defaults above */
	int64_t expiry[2][UP_ROLE_COUNT];
	bool deterministic; /* ML-DSA deterministic signing (up_sign_ex): tests only */
} up_repo_opts;

/* What a server persists between runs. All zero: nothing published yet. */
typedef struct {
	up_versions image;       /* last image versions */
	int64_t director_root;   /* last director root version */
	int64_t snapshot_length; /* the last image snapshot, for timestamp refreshes */
	uint8_t snapshot_sha256[32];
} up_repo_state;

typedef struct up_repo up_repo;

/* Loads the role keys of both repositories from pki_dir/uptane/ (private keys; each role
 * needs one key per algorithm of the policy). state may be NULL (a new repository). */
int up_repo_open(const char *pki_dir, const up_repo_opts *opts, const up_repo_state *state,
                 up_repo **out) PQ_MUST_CHECK;

/* The same with keys in memory, per role, borrowed (they must outlive the repo). */
int up_repo_new(const up_keyset image[UP_ROLE_COUNT], const up_keyset director[UP_ROLE_COUNT],
                const up_repo_opts *opts, const up_repo_state *state, up_repo **out) PQ_MUST_CHECK;

void up_repo_free(up_repo *r);

/* The current state (copy it to persist it). */
const up_repo_state *up_repo_state_get(const up_repo *r);
/* A JSON state file: {"director_root":N,"image":{"root":N,...},"snapshot":{...}}. */
int up_repo_state_save(const up_repo_state *st, const char *path) PQ_MUST_CHECK;
int up_repo_state_load(const char *path, up_repo_state *st) PQ_MUST_CHECK;

/* One signed metadata file: data is malloc'd, NUL-terminated, not counted in len. */
typedef struct {
	char *data;
	size_t len;
	int64_t version;
} up_blob;

/* The metadata one call produced; a member with data == NULL was not produced. */
typedef struct {
	up_blob root, targets, snapshot, timestamp;
} up_meta_set;

void up_blob_free(up_blob *b);
void up_meta_set_free(up_meta_set *m);

/* Publishes the complete list of images (n <= UP_TARGETS_MAX, names unique): targets,
 * snapshot and timestamp at their versions + 1; on the first call also root version 1. */
int up_image_publish(up_repo *r, const up_target *targets, size_t n, int64_t now_s,
                     up_meta_set *out) PQ_MUST_CHECK;

/* A fresh timestamp (version + 1) for the last published snapshot (PQ_ERR_INVAL before any
 * publication). Call it well within the timestamp lifetime. */
int up_image_timestamp(up_repo *r, int64_t now_s, up_blob *out) PQ_MUST_CHECK;

/* A vehicle's director metadata: targets (naming one image per ECU, and at most one bundle
 * entry (meta.h); at most UP_ECUS_MAX ECUs, ECU ids unique; ECUs that share an image must agree on
 * its length, hashes and release counter), and the snapshot and timestamp for it, all at `version`
 * (>= 1). On the first director call of the repository also root version 1. */
int up_director_publish(up_repo *r, const char *vin, const up_director_entry *e, size_t n,
                        int64_t version, int64_t now_s, up_meta_set *out) PQ_MUST_CHECK;

/* Whether signed director targets (bytes of targets.json as up_director_publish made them)
 * name exactly the entries e for vin: *same then, so a server may serve them again instead
 * of signing a new version. Neither signatures nor expiry are checked. PQ_ERR_FORMAT: not
 * signed metadata; the entries' errors as up_director_publish. */
int up_director_same(const char *targets, size_t len, const char *vin, const up_director_entry *e,
                     size_t n, bool *same) PQ_MUST_CHECK;

/* Only the director targets of up_director_publish (a simplified director). */
int up_director_targets(up_repo *r, const char *vin, const up_director_entry *e, size_t n,
                        int64_t version, int64_t now_s, char **out, size_t *len) PQ_MUST_CHECK;

/* A new root for `kind` (version + 1), signed by the current root keys (meeting the
 * current threshold) and by the new root keys; the repository then signs with the new
 * keys. new_keys NULL keeps the keys (renews the root's expiry). Creates version 1 when
 * there is no root yet. The caller republishes the other roles afterwards. */
int up_repo_rotate_root(up_repo *r, up_repo_kind kind, const up_keyset new_keys[UP_ROLE_COUNT],
                        int64_t now_s, up_blob *out) PQ_MUST_CHECK;

/* The same with the new keys loaded from another PKI directory (pki_dir/uptane/...). */
int up_repo_rotate_root_dir(up_repo *r, up_repo_kind kind, const char *pki_dir, int64_t now_s,
                            up_blob *out) PQ_MUST_CHECK;

#endif
