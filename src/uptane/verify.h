/* verify.h: the vehicle side of Uptane: full verification of director and image repository
 * metadata, and the images they agree on per ECU.
 *
 * The order (docs/security.md, "Uptane metadata"), for the director and then for the image
 * repository: the root chain from the trusted root (each version N+1 signed by the roles of
 * N and of N+1; the last one unexpired), timestamp, snapshot (its length and hash as the
 * timestamp says), targets (its version, length and hash as the snapshot says), each at a
 * version no lower than the trusted one and unexpired. Then every director target must be
 * for a known ECU of this vehicle with the reported hardware id, exist in the image
 * repository with the same length, hashes, hardware id and release counter, and not lower
 * the ECU's installed release counter. A director target for a bundle (meta.h) must exist in
 * the image repository with the same length and hashes and software type UP_BUNDLE_TYPE.
 *
 * Thread-safe (no shared state). Memory is bounded by the size limits (up_limits). */
#ifndef PQOTA_UPTANE_VERIFY_H
#define PQOTA_UPTANE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/profile.h"
#include "uptane/meta.h"

/* Bytes of one metadata file (borrowed). */
typedef struct {
	const char *data;
	size_t len;
} up_bytes;

/* Size and count bounds; a zero member takes the default (repo.h UP_MAX_*). */
typedef struct {
	size_t root, timestamp, snapshot, image_targets, director_targets;
	size_t root_chain; /* root versions one call may walk (default 64) */
} up_limits;

/* An ECU of this vehicle, as the vehicle knows it. */
typedef struct {
	const char *ecu_id;
	const char *hardware_id;
	int64_t release_counter; /* of the installed image (0 if none) */
} up_ecu;

typedef struct {
	const char *vin;
	int64_t now; /* seconds since the epoch, from a clock the vehicle trusts */
	/* The trusted roots (the vehicle's last verified root, initially the one provisioned at
	 * manufacture). Their versions are the trusted root versions. */
	up_bytes image_root, director_root;
	/* Newer roots fetched ({N+1}.root.json, {N+2}.root.json, ...), oldest first; may be
	 * empty. */
	const up_bytes *image_roots;
	size_t n_image_roots;
	const up_bytes *director_roots;
	size_t n_director_roots;
	up_bytes image_timestamp, image_snapshot, image_targets;
	up_bytes director_timestamp, director_snapshot, director_targets;
	/* The versions last verified (0: none yet). The root member is ignored: the trusted
	 * root's own version is used. */
	up_versions image_trusted, director_trusted;
	const up_ecu *ecus;
	size_t n_ecus;
	const up_limits *limits;      /* NULL: defaults */
	const pq_sign_policy *policy; /* NULL: whatever the trusted root says; else the roots
	                               * must declare exactly this policy */
} up_verify_input;

/* One image the vehicle may install, for one ECU. */
typedef struct {
	char ecu_id[UP_ID_MAX + 1];
	char hardware_id[UP_ID_MAX + 1];
	char name[UP_NAME_MAX + 1];
	int64_t length;
	uint8_t sha256[32];
	bool has_sha512;
	uint8_t sha512[64];
	int64_t release_counter;
	char software_type[UP_ID_MAX + 1]; /* "" when the image repository gives none */
	char version[UP_ID_MAX + 1];       /* "" likewise */
} up_image;

typedef struct {
	up_versions image, director; /* the new trusted versions, to persist */
	/* The newest verified roots (borrowed from the input: the trusted one or the last of
	 * the chain), to persist as the trusted roots. */
	up_bytes image_root, director_root;
	up_image *images; /* malloc'd; in the director's order of ECUs (sorted by ECU id) */
	size_t n_images;
	/* The vehicle's bundle (meta.h up_director_entry), when the director names one: both
	 * repositories agree on its length and hashes, and the image repository lists it as
	 * UP_BUNDLE_TYPE (ecu_id empty). */
	bool has_bundle;
	up_image bundle;
} up_verify_result;

/* Full verification. On success fills *out (free with up_verify_result_free); on failure
 * *out is empty and the detail names the role and the check. PQ_ERR_VERIFY: signatures,
 * thresholds, hashes, rollback, expiry (freeze) or a disagreement; PQ_ERR_FORMAT: malformed
 * metadata; PQ_ERR_RANGE: a size bound (endless data). */
int up_verify(const up_verify_input *in, up_verify_result *out) PQ_MUST_CHECK;

void up_verify_result_free(up_verify_result *r);

#endif
