/* bundle_serve.c: a bundle campaign's downloads (docs/api.md 18.3):
 * /packages/{campaign_id}/full_package.bin (GET/HEAD, single Range, ETag, If-Range, as
 * /packages/{sha256}) and /packages/{campaign_id}/metadata.json (the bundle's manifest, its
 * units' releases and where their signed Uptane metadata is). Allowed: an API key, the
 * certificate of a vehicle with a deployment in the campaign (which gets the encrypted copy
 * with downloads.encrypt), or a download token for the bundle's file or its encrypted copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include <openssl/crypto.h>

#include "server/bundles.h"
#include "server/campaign.h"
#include "server/routes.h"
#include "server/uptane_int.h"
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

int bnd_mark_images(const json_t *rec, json_t *body)
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

/* The encrypted copy of the bundle's file sha (enc[65], "" when there is none yet). */
static int encrypted_copy(srv_ctx *c, const char *sha, char enc[65])
{
	store_package_key k;
	enc[0] = '\0';
	int rc = store_package_key_get(c->db, sha, &k);
	if (rc == PQ_OK)
		snprintf(enc, 65, "%s", k.enc_sha256);
	OPENSSL_cleanse(&k, sizeof(k));
	return rc == PQ_ERR_NOTFOUND ? PQ_OK : rc;
}

/* A vehicle of the campaign, by its certificate alone: false when the refusal was sent. */
static bool in_campaign(srv_ctx *c, const char *cid)
{
	store_deployment d;
	int rc = store_deployment_get(c->db, cid, c->vin, &d);
	if (rc == PQ_ERR_NOTFOUND)
		srv_error(c, 403, "forbidden", "vehicle %s is not in campaign %s", c->vin, cid);
	else if (rc != PQ_OK)
		srv_fail(c, rc, "deployment");
	return rc == PQ_OK;
}

/* What the caller of campaign cid's full_package.bin (file sha) gets, into serve[65]: with
 * ?token=, the file it names (the encrypted copy's or the plaintext's); with an API key, the
 * plaintext; a vehicle of the campaign by its certificate, the encrypted copy when
 * downloads.encrypt (docs/api.md 18.3); for_file false: the caller only needs to be allowed
 * (metadata.json). False when the refusal was sent. */
static bool choose_file(srv_ctx *c, const char *cid, const char *sha, bool for_file, char serve[65])
{
	char enc[65], vin[STORE_VIN_MAX + 1];
	int rc = encrypted_copy(c, sha, enc);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "package key");
		return false;
	}
	char *token = srv_query(c, "token");
	if (token) {
		rc = enc[0] ? srv_token_check(c->s, token, enc, c->now_ms, vin, sizeof(vin))
		            : PQ_ERR_VERIFY;
		snprintf(serve, 65, "%s", rc == PQ_OK ? enc : sha);
		if (rc != PQ_OK)
			rc = srv_token_check(c->s, token, sha, c->now_ms, vin, sizeof(vin));
		free(token);
		if (rc != PQ_OK)
			srv_error(c, 403, "forbidden", "%s", pq_err_detail());
		return rc == PQ_OK;
	}
	snprintf(serve, 65, "%s", sha);
	if (c->has_key)
		return true;
	if (!c->vin[0]) {
		srv_error(c, 401, "unauthenticated",
		          "a vehicle certificate, an API key or ?token= is required");
		return false;
	}
	if (!in_campaign(c, cid))
		return false;
	if (!for_file || !srv_get_options(c->s)->downloads_encrypt)
		return true;
	if (!enc[0]) {
		srv_error(c, 403, "forbidden",
		          "vehicles download the bundle encrypted: use the URL in "
		          "ota_campaign_metadata");
		return false;
	}
	snprintf(serve, 65, "%s", enc);
	return true;
}

/* The bundle record of campaign c->params[0] (*rec); false when an error was sent. */
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
		rc = bnd_load(c->db, bid, rec);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "campaign bundle");
		return false;
	}
	return true;
}

static const char *rec_sha(const json_t *rec)
{
	const char *sha = json_string_value(json_object_get(rec, "file_sha256"));
	return sha && strlen(sha) == 64 ? sha : "";
}

static void h_full_package(srv_ctx *c)
{
	json_t *rec;
	char serve[65];
	uint64_t size = 0;
	if (!campaign_bundle(c, &rec))
		return;
	if (choose_file(c, c->params[0], rec_sha(rec), true, serve)) {
		int fd = route_open_package(c, serve, &size);
		if (fd < 0)
			srv_error(c, 404, "not_found", "the bundle's file is missing");
		else
			route_send_package(c, serve, fd, size);
	}
	json_decref(rec);
}

static void h_metadata(srv_ctx *c)
{
	json_t *rec;
	char url[128], director[160], name[USRV_NAME_MAX], serve[65];
	if (!campaign_bundle(c, &rec))
		return;
	if (!choose_file(c, c->params[0], rec_sha(rec), false, serve)) {
		json_decref(rec);
		return;
	}
	const char *cid = c->params[0];
	snprintf(url, sizeof(url), "/packages/%s/full_package.bin", cid);
	snprintf(director, sizeof(director), "/uptane/director/%s/targets.json",
	         c->vin[0] ? c->vin : "{vin}");
	usrv__bundle_name(name, json_string_value(json_object_get(rec, "id")));
	json_t *j = json_pack(
	    "{s:s,s:O,s:{s:s,s:O,s:O},s:O,s:O,s:{s:s,s:s,s:s,s:s}}", "campaign_id", cid,
	    "bundle_id", json_object_get(rec, "id"), "bundle", "url", url, "length",
	    json_object_get(rec, "file_size"), "sha256", json_object_get(rec, "file_sha256"),
	    "units", json_object_get(rec, "units"), "manifest", json_object_get(rec, "manifest"),
	    "uptane", "director_targets", director, "image_targets", "/uptane/image/targets.json",
	    "bundle_target", name, "covers",
	    "full_package.bin (the bundle_target, in the image repository and the director "
	    "targets of each vehicle of the campaign) and each unit's package (a release's "
	    "target)");
	json_decref(rec);
	srv_json(c, 200, j);
}

const srv_route route_bundle_table[] = {
    {EVHTTP_REQ_POST, "/api/v1/bundles", SRV_AUTH_OPERATOR, bnd_create,
     "take a pack build bundle (full_package.bin upload + manifest) as one release set"},
    {EVHTTP_REQ_GET, "/api/v1/bundles", SRV_AUTH_VIEWER, bnd_list,
     "the bundles, newest first (their records without the manifest)"},
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
