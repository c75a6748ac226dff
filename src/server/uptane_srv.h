/* uptane_srv.h: the server's Uptane repositories (uptane/repo.h) over the store.
 *
 *  - Image repository: every release's packages (full and delta) are targets named
 *    "<release id>.full.swpg" / "<release id>.delta.swpg" with length, SHA-256, hardware id,
 *    ECU id, software type, version and a release counter derived from the version
 *    (usrv_release_counter). usrv_image_refresh publishes new targets, snapshot and
 *    timestamp whenever the set of releases changed, and a new timestamp every 12 h.
 *  - Director repository: usrv_campaign_metadata signs a vehicle's director targets for
 *    its deployment (one image per target ECU), version = the vehicle's last + 1, and
 *    builds the body of ota_campaign_metadata with per-image download URLs and tokens.
 *  - Everything signed is stored in the uptane_meta table and served unchanged by the
 *    /uptane/ routes, so every server instance on one database serves the same bytes.
 *    Versions come from the store: an instance that loses a race to publish a version
 *    (unique key) reloads and tries once more.
 * The role keys are online on the server (docs/security.md says what that means). */
#ifndef PQOTA_SERVER_UPTANE_SRV_H
#define PQOTA_SERVER_UPTANE_SRV_H

#include <jansson.h>

#include "server/server.h"

typedef struct usrv usrv;

/* Loads the role keys (options uptane_dir, uptane_policy); *out NULL when no uptane_dir. */
int usrv_new(const srv_options *o, usrv **out) PQ_MUST_CHECK;
void usrv_free(usrv *u);

/* Publishes the image repository when the releases changed (or nothing is published
 * yet), and refreshes the timestamp. No-op without Uptane keys. */
int usrv_image_refresh(srv *s, store *db, int64_t now_ms) PQ_MUST_CHECK;

/* The "scheme" of an image's "encryption" in ota_campaign_metadata. */
#define USRV_ENC_SCHEME "aes-256-gcm-chunked+hybrid-wrap-v1"

/* The body of ota_campaign_metadata for one vehicle's deployment (cmp_env.metadata):
 * director_targets, image_repository, director_repository, director_version, images (in
 * installation order: the campaign's policy.install_order first, then by ECU id),
 * install_order, rollback_policy, token, token_expires (docs/protocol.md). With
 * downloads.encrypt each image's url names the package's encrypted copy (made now when a
 * package has none yet) and "encryption" carries its content key wrapped to the vehicle's
 * KEM keys (aad "VIN|<package sha256>"); otherwise "encryption" is null. A delta image also
 * names its base ("delta_base") and the release's full package ("fallback"). */
int usrv_campaign_metadata(srv *s, store *db, const char *campaign_id, const char *vin,
                           int64_t now_ms, json_t **out) PQ_MUST_CHECK;

/* A version-ordered counter for a semantic version: major * 10^12 + minor * 10^6 + patch
 * (each field < 10^6; pre-releases of X count as X - 1). PQ_ERR_RANGE otherwise. */
int usrv_release_counter(const char *version, int64_t *out) PQ_MUST_CHECK;

#endif
