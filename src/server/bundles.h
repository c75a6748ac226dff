/* bundles.h: campaign bundles (docs/api.md 18): the hierarchical package `pqota pack build`
 * writes (full_package.bin and its manifest.json), taken from an upload as one release set
 * (bundles.c), and served per campaign (bundle_serve.c). A bundle's record is
 * DATA/bundles/<id>.json (written once, atomically); its file is DATA/files/<sha256>. */
#ifndef PQOTA_SERVER_BUNDLES_H
#define PQOTA_SERVER_BUNDLES_H

#include <jansson.h>

#include "server/server.h"

/* The record of bundle id (*out, the caller's): PQ_ERR_NOTFOUND when there is none (or id
 * is not a bundle id). */
int bnd_load(srv *s, const char *id, json_t **out) PQ_MUST_CHECK;

/* Whether sha names a file the data directory holds (DATA/files/<sha>): for download
 * tokens, which may name a bundle's full_package.bin as well as a release's package. */
bool bnd_file_known(srv *s, const char *sha);

/* POST /api/v1/bundles, GET /api/v1/bundles/{id} (bundles.c). */
void bnd_create(srv_ctx *c);
void bnd_get(srv_ctx *c);

/* The bundle id of campaign id (its policy's bundle_id) into out: PQ_ERR_NOTFOUND when the
 * campaign does not exist or has no bundle. */
int bnd_of_campaign(store *db, const char *campaign_id, char out[41]) PQ_MUST_CHECK;

/* For ota_campaign_metadata (body, of vehicle vin): when campaign_id was made from a bundle,
 * "bundle": {"name": "full_package.bin", "url" (base + /packages/<campaign_id>/
 * full_package.bin?token=, the token valid until expires_ms), "length", "sha256",
 * "encryption": null} and, on each full image whose release is a unit, "bundle_path" (its
 * path in the bundle). Nothing for another campaign. */
int bnd_metadata_add(srv *s, store *db, const char *campaign_id, const char *vin, const char *base,
                     int64_t expires_ms, json_t *body) PQ_MUST_CHECK;

#endif
