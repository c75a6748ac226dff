/* apikey_routes.c: API keys over the API (docs/api.md 16): an admin creates keys (the
 * secret is shown once, only its SHA-256 is stored), lists them with their expiry and last
 * use, and revokes them. The same keys as `pqota server apikey` (store level). */
#include <stdio.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "core/jsonv.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "crypto/hash.h"
#include "server/routes.h"
#include "server/server.h"

#define EXPIRES_IN_MAX_S (10LL * 366 * 24 * 3600) /* ten years */

int srv_apikey_mint(store_role role, const char *name, int64_t now_ms, int64_t expires_ms,
                    store_apikey *k, char secret[SRV_APIKEY_SECRET_LEN + 1])
{
	uint8_t raw[32], d[32];
	char hex[65];
	memset(k, 0, sizeof(*k));
	if (!name || !*name || strlen(name) > STORE_NAME_MAX)
		return pq_err_set(PQ_ERR_INVAL, "an API key's name has 1..%d characters",
		                  STORE_NAME_MAX);
	int rc = pq_random(raw, sizeof(raw));
	if (rc == PQ_OK)
		rc = pq_uuid4(k->id);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(raw, sizeof(raw), hex);
	snprintf(secret, SRV_APIKEY_SECRET_LEN + 1, "pqk_%s", hex);
	rc = pq_hash(PQ_HASH_SHA256, secret, strlen(secret), d);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(d, sizeof(d), k->key_sha256);
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->role = role;
	k->created_ms = now_ms;
	k->expires_ms = expires_ms;
	return PQ_OK;
}

/* A key as the API shows it: never its secret or hash. */
static json_t *key_json(const store_apikey *k, int64_t now_ms)
{
	const char *state = k->revoked_ms                                   ? "revoked"
	                    : k->expires_ms != 0 && k->expires_ms <= now_ms ? "expired"
	                                                                    : "active";
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "id", k->id, "name", k->name, "role",
	                 store_role_name(k->role), "state", state, "created_ms",
	                 (json_int_t)k->created_ms, "expires_ms", (json_int_t)k->expires_ms,
	                 "revoked_ms", (json_int_t)k->revoked_ms, "last_used_ms",
	                 (json_int_t)k->last_used_ms);
}

/* The create body: name, role, and expires_ms or expires_in_s (or neither). */
static int parse_create(srv_ctx *c, json_t *b, const char **name, store_role *role,
                        int64_t *expires_ms)
{
	static const char *const keys[] = {"name", "role", "expires_ms", "expires_in_s", NULL};
	pq_jv v = {.err = PQ_ERR_INVAL, .what = "API key", .null_absent = true};
	const char *r = NULL;
	int64_t at = 0, in = 0;
	int rc = pq_jv_keys(&v, b, "", keys);
	if (rc == PQ_OK)
		rc = pq_jv_str(&v, b, "name", "", PQ_JV_REQUIRED | PQ_JV_NO_CTRL, STORE_NAME_MAX,
		               name);
	if (rc == PQ_OK)
		rc = pq_jv_str(&v, b, "role", "", PQ_JV_REQUIRED, 16, &r);
	if (rc == PQ_OK && store_role_parse(r, role) != PQ_OK)
		rc = pq_jv_fail(&v, "", "role", "viewer, operator or admin");
	if (rc == PQ_OK)
		rc = pq_jv_int(&v, b, "expires_ms", "", 0, c->now_ms + 1,
		               c->now_ms + EXPIRES_IN_MAX_S * 1000, &at);
	if (rc == PQ_OK)
		rc = pq_jv_int(&v, b, "expires_in_s", "", 0, 1, EXPIRES_IN_MAX_S, &in);
	if (rc == PQ_OK && at && in)
		rc = pq_jv_fail(&v, "", NULL, "give expires_ms or expires_in_s, not both");
	*expires_ms = at ? at : in ? c->now_ms + in * 1000 : 0;
	return rc;
}

/* POST /api/v1/apikeys */
static void h_apikey_create(srv_ctx *c)
{
	const char *name = NULL;
	store_role role = STORE_ROLE_VIEWER;
	int64_t expires = 0;
	store_apikey k;
	char secret[SRV_APIKEY_SECRET_LEN + 1];
	if (!srv_query_only(c, NULL))
		return;
	json_t *b = srv_body_json(c);
	if (!b)
		return;
	if (parse_create(c, b, &name, &role, &expires) != PQ_OK) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		json_decref(b);
		return;
	}
	int rc = srv_apikey_mint(role, name, c->now_ms, expires, &k, secret);
	if (rc == PQ_OK)
		rc = store_apikey_insert(c->db, &k);
	json_decref(b);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "API key");
		return;
	}
	srv_audit(c, "apikey.create", k.id,
	          json_pack("{s:s,s:s,s:I}", "name", k.name, "role", store_role_name(k.role),
	                    "expires_ms", (json_int_t)k.expires_ms));
	json_t *j = key_json(&k, c->now_ms);
	if (j && json_object_set_new(j, "key", json_string(secret)) != 0) {
		json_decref(j);
		j = NULL;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	srv_json(c, 201, j);
}

static int list_cb(const store_apikey *k, void *user)
{
	json_t **a = user;
	json_t *j = key_json(k, pq_real_ms());
	if (!j || json_array_append_new(*a, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "API keys");
	return PQ_OK;
}

/* GET /api/v1/apikeys: every key, revoked and expired ones included, by name. */
static void h_apikey_list(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	json_t *items = json_array();
	int rc = items ? store_apikey_list(c->db, list_cb, &items)
	               : pq_err_set(PQ_ERR_NOMEM, "API keys");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing API keys");
		return;
	}
	size_t n = json_array_size(items);
	srv_json(c, 200, json_pack("{s:o,s:I}", "items", items, "total", (json_int_t)n));
}

/* DELETE /api/v1/apikeys/{id}: revokes (the record stays, for the audit log's names). */
static void h_apikey_revoke(srv_ctx *c)
{
	const char *id = c->params[0];
	store_apikey k;
	if (!srv_query_only(c, NULL) || !route_id_ok(c, id, "API key"))
		return;
	int rc = store_apikey_revoke(c->db, id, c->now_ms);
	if (rc == PQ_OK)
		rc = store_apikey_get(c->db, id, &k);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "API key");
		return;
	}
	srv_audit(c, "apikey.revoke", id, json_pack("{s:s}", "name", k.name));
	srv_json(c, 200, key_json(&k, c->now_ms));
}

const srv_route route_apikey_table[] = {
    {EVHTTP_REQ_POST, "/api/v1/apikeys", SRV_AUTH_ADMIN, h_apikey_create,
     "create an API key (its secret shown once)"},
    {EVHTTP_REQ_GET, "/api/v1/apikeys", SRV_AUTH_ADMIN, h_apikey_list,
     "list API keys with expiry and last use"},
    {EVHTTP_REQ_DELETE, "/api/v1/apikeys/{id}", SRV_AUTH_ADMIN, h_apikey_revoke,
     "revoke an API key"},
    {0, NULL, 0, NULL, NULL},
};
