/* bundle_serve.c: a bundle campaign's downloads (docs/api.md 18.3):
 * /packages/{campaign_id}/full_package.bin (GET/HEAD, single Range, ETag, If-Range, as
 * /packages/{sha256}) and /packages/{campaign_id}/metadata.json (the bundle's manifest, its
 * units' releases and where their signed Uptane metadata is). Allowed: an API key, the
 * certificate of a vehicle with a deployment in the campaign, or a download token for the
 * bundle's file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "server/bundles.h"
#include "server/campaign.h"
#include "server/routes.h"
#include "store/campaign.h"

int bnd_of_campaign(store *db, const char *campaign_id, char out[41])
{
	store_campaign cp;
	json_error_t je;
	int rc = store_campaign_get(db, campaign_id, &cp);
	if (rc != PQ_OK)
		return rc;
	json_t *p = cp.policy ? json_loads(cp.policy, 0, &je) : NULL;
	const char *id = json_string_value(json_object_get(p, "bundle_id"));
	if (id)
		snprintf(out, 41, "%.40s", id);
	else
		rc = pq_err_set(PQ_ERR_NOTFOUND, "campaign %s has no bundle", campaign_id);
	json_decref(p);
	store_campaign_clear(&cp);
	return rc;
}

/* The path in the bundle of release rid (rec's units), NULL when it is not a unit. */
static const char *unit_path(const json_t *rec, const char *rid)
{
	const json_t *u;
	size_t i;
	json_array_foreach(json_object_get(rec, "units"), i, u)
	{
		const char *r = json_string_value(json_object_get(u, "release_id"));
		if (r && rid && strcmp(r, rid) == 0)
			return json_string_value(json_object_get(u, "path"));
	}
	return NULL;
}

/* "bundle_path" on each full image of body whose release is a unit of rec. */
static int mark_images(const json_t *rec, json_t *body)
{
	json_t *im;
	size_t i;
	json_array_foreach(json_object_get(body, "images"), i, im)
	{
		const char *kind = json_string_value(json_object_get(im, "package"));
		const char *path =
		    unit_path(rec, json_string_value(json_object_get(im, "release_id")));
		if (path && kind && strcmp(kind, "full") == 0 &&
		    json_object_set_new(im, "bundle_path", json_string(path)) != 0)
			return pq_err_set(PQ_ERR_NOMEM, "metadata");
	}
	return PQ_OK;
}

int bnd_metadata_add(srv *s, store *db, const char *campaign_id, const char *vin, const char *base,
                     int64_t expires_ms, json_t *body)
{
	char bid[41], token[256], url[1024];
	json_t *rec = NULL;
	int rc = bnd_of_campaign(db, campaign_id, bid);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc == PQ_OK)
		rc = bnd_load(s, bid, &rec);
	const char *sha = json_string_value(json_object_get(rec, "file_sha256"));
	if (rc == PQ_OK && !sha)
		rc = pq_err_set(PQ_ERR_FORMAT, "bundle %s: no file_sha256", bid);
	if (rc == PQ_OK)
		rc = srv_token_make(s, vin, sha, expires_ms, token, sizeof(token));
	if (rc == PQ_OK && snprintf(url, sizeof(url), "%s/packages/%s/full_package.bin?token=%s",
	                            base, campaign_id, token) >= (int)sizeof(url))
		rc = pq_err_set(PQ_ERR_RANGE, "bundle URL too long (public_url)");
	if (rc == PQ_OK &&
	    json_object_set_new(body, "bundle",
	                        json_pack("{s:s,s:s,s:O,s:s,s:n}", "name", "full_package.bin",
	                                  "url", url, "length", json_object_get(rec, "file_size"),
	                                  "sha256", sha, "encryption")) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "metadata");
	if (rc == PQ_OK)
		rc = mark_images(rec, body);
	json_decref(rec);
	return rc;
}

/* Who may fetch campaign cid's bundle file sha; false when the refusal was sent. */
static bool may_fetch(srv_ctx *c, const char *cid, const char *sha)
{
	char vin[STORE_VIN_MAX + 1];
	if (c->has_key)
		return true;
	if (c->vin[0]) {
		store_deployment d;
		int rc = store_deployment_get(c->db, cid, c->vin, &d);
		if (rc == PQ_OK)
			return true;
		if (rc == PQ_ERR_NOTFOUND)
			srv_error(c, 403, "forbidden", "vehicle %s is not in campaign %s", c->vin,
			          cid);
		else
			srv_fail(c, rc, "deployment");
		return false;
	}
	char *token = srv_query(c, "token");
	if (!token) {
		srv_error(c, 401, "unauthenticated",
		          "a vehicle certificate, an API key or ?token= is required");
		return false;
	}
	int rc = srv_token_check(c->s, token, sha, c->now_ms, vin, sizeof(vin));
	free(token);
	if (rc != PQ_OK)
		srv_error(c, 403, "forbidden", "%s", pq_err_detail());
	return rc == PQ_OK;
}

/* The bundle record of campaign c->params[0] (*rec), the caller allowed; false when an
 * error was sent. */
static bool campaign_bundle(srv_ctx *c, json_t **rec)
{
	static const char *const token_query[] = {"token", NULL};
	const char *cid = c->params[0];
	char bid[41];
	*rec = NULL;
	if (!srv_query_only(c, token_query))
		return false;
	if (!cmp_id_valid(cid)) {
		srv_error(c, 404, "not_found", "no campaign '%.64s'", cid);
		return false;
	}
	int rc = bnd_of_campaign(c->db, cid, bid);
	if (rc == PQ_OK)
		rc = bnd_load(c->s, bid, rec);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "campaign bundle");
		return false;
	}
	if (may_fetch(c, cid, json_string_value(json_object_get(*rec, "file_sha256"))))
		return true;
	json_decref(*rec);
	*rec = NULL;
	return false;
}

static void h_full_package(srv_ctx *c)
{
	json_t *rec;
	uint64_t size = 0;
	if (!campaign_bundle(c, &rec))
		return;
	const char *sha = json_string_value(json_object_get(rec, "file_sha256"));
	int fd = sha ? route_open_package(c, sha, &size) : -1;
	if (fd < 0)
		srv_error(c, 404, "not_found", "the bundle's file is missing");
	else
		route_send_package(c, sha, fd, size);
	json_decref(rec);
}

static void h_metadata(srv_ctx *c)
{
	json_t *rec;
	char url[128], director[160];
	if (!campaign_bundle(c, &rec))
		return;
	const char *cid = c->params[0];
	snprintf(url, sizeof(url), "/packages/%s/full_package.bin", cid);
	snprintf(director, sizeof(director), "/uptane/director/%s/targets.json",
	         c->vin[0] ? c->vin : "{vin}");
	json_t *j = json_pack(
	    "{s:s,s:O,s:{s:s,s:O,s:O},s:O,s:O,s:{s:s,s:s,s:s}}", "campaign_id", cid, "bundle_id",
	    json_object_get(rec, "id"), "bundle", "url", url, "length",
	    json_object_get(rec, "file_size"), "sha256", json_object_get(rec, "file_sha256"),
	    "units", json_object_get(rec, "units"), "manifest", json_object_get(rec, "manifest"),
	    "uptane", "director_targets", director, "image_targets", "/uptane/image/targets.json",
	    "covers", "each unit's package (a release's target); full_package.bin is not a target");
	json_decref(rec);
	srv_json(c, 200, j);
}

const srv_route route_bundle_table[] = {
    {EVHTTP_REQ_POST, "/api/v1/bundles", SRV_AUTH_OPERATOR, bnd_create,
     "take a pack build bundle (full_package.bin upload + manifest) as one release set"},
    {EVHTTP_REQ_GET, "/api/v1/bundles/{id}", SRV_AUTH_VIEWER, bnd_get,
     "a bundle: its manifest and its units' releases"},
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/packages/{campaign_id}/full_package.bin", SRV_AUTH_PUBLIC,
     h_full_package,
     "a bundle campaign's full_package.bin (Range, ETag, If-Range; vehicle of the campaign, "
     "API key or token)"},
    {EVHTTP_REQ_GET, "/packages/{campaign_id}/metadata.json", SRV_AUTH_PUBLIC, h_metadata,
     "a bundle campaign's manifest, units and Uptane metadata references"},
    {0, NULL, 0, NULL, NULL},
};
