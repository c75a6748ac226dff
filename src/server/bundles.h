/* bundles.h: campaign bundles (docs/api.md 18): the hierarchical package `pqota pack build`
 * writes (full_package.bin and its manifest.json), taken from an upload as one release set
 * (bundles.c), and served per campaign (bundle_serve.c). A bundle's record is a row of the
 * store's bundles (stored with its units' releases, in one transaction); its file is
 * DATA/files/<sha256>. */
#ifndef PQOTA_SERVER_BUNDLES_H
#define PQOTA_SERVER_BUNDLES_H

#include <jansson.h>

#include "server/server.h"

/* The record of bundle id (*out, the caller's): PQ_ERR_NOTFOUND when there is none (or id
 * is not a bundle id). */
int bnd_load(store *db, const char *id, json_t **out) PQ_MUST_CHECK;

/* Moves the bundle records an older server kept as files (DATA/bundles/<id>.json) into the
 * store (sc), each file renamed <id>.json.imported once its record is stored; *imported
 * counts them. At start, before serving. */
int bnd_import_files(const char *data_dir, const store_config *sc, int *imported) PQ_MUST_CHECK;

/* Whether sha names a file the data directory holds (DATA/files/<sha>): for download
 * tokens, which may name a bundle's full_package.bin as well as a release's package. */
bool bnd_file_known(srv *s, const char *sha);

/* POST /api/v1/bundles, GET /api/v1/bundles/{id}, GET /api/v1/bundles (a page, newest
 * first, the records without their manifest) (bundles.c). */
void bnd_create(srv_ctx *c);
void bnd_get(srv_ctx *c);
void bnd_list(srv_ctx *c);

/* The bundle id of campaign id (its policy's bundle_id) into out: PQ_ERR_NOTFOUND when the
 * campaign does not exist or has no bundle. */
int bnd_of_campaign(store *db, const char *campaign_id, char out[41]) PQ_MUST_CHECK;

/* For ota_campaign_metadata of a campaign made from bundle rec (uptane_meta.c adds the
 * "bundle" itself): "bundle_path" (its path in the bundle) on each full image of body whose
 * release is a unit of rec. */
int bnd_mark_images(const json_t *rec, json_t *body) PQ_MUST_CHECK;

#endif
