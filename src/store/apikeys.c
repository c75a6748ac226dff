/* apikeys.c: API keys (only the SHA-256 of each secret) and their roles (store.h), once for
 * both backends. */
#include <string.h>

#include "store/store_int.h"

static const char *const role_names[] = {"viewer", "operator", "admin"};

const char *store_role_name(store_role r)
{
	if ((int)r < 0 || (size_t)r >= sizeof(role_names) / sizeof(role_names[0]))
		return "?";
	return role_names[r];
}

int store_role_parse(const char *s, store_role *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_role_parse: bad arguments");
	for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
		if (strcmp(s, role_names[i]) == 0) {
			*out = (store_role)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown role '%.32s' (viewer, operator, admin)", s);
}

#define APIKEY_COLS "id, name, role, key_sha256, created_ms, revoked_ms, expires_ms, last_used_ms"

static int row_apikey(const store_row *r, void *dst)
{
	store_apikey *k = dst;
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, k->id, sizeof(k->id));
	store__rd_copy(&rd, k->name, sizeof(k->name));
	const char *role = store__rd_text(&rd);
	if (rd.rc == PQ_OK && store_role_parse(role ? role : "", &k->role) != PQ_OK)
		rd.rc = pq_err_set(PQ_ERR_FORMAT, "stored role '%.32s' unknown", role ? role : "");
	store__rd_copy(&rd, k->key_sha256, sizeof(k->key_sha256));
	store__rd_i64(&rd, &k->created_ms);
	store__rd_i64(&rd, &k->revoked_ms);
	store__rd_i64(&rd, &k->expires_ms);
	store__rd_i64(&rd, &k->last_used_ms);
	return rd.rc;
}

static int check_apikey(const store_apikey *k)
{
	int rc = store__check_id(k->id, "API key id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(k->name, STORE_NAME_MAX, true, "API key name");
	if (rc != PQ_OK)
		return rc;
	if ((int)k->role < 0 || k->role > STORE_ROLE_ADMIN)
		return pq_err_set(PQ_ERR_INVAL, "API key role %d", (int)k->role);
	rc = store__check_sha256(k->key_sha256, false, "API key hash");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(k->created_ms, "created");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_time(k->revoked_ms, "revoked");
	if (rc == PQ_OK)
		rc = store__check_time(k->expires_ms, "expiry");
	if (rc == PQ_OK)
		rc = store__check_time(k->last_used_ms, "last use");
	return rc;
}

int store_apikey_insert(store *s, const store_apikey *k)
{
	if (!s || !k)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_insert: bad arguments");
	int rc = check_apikey(k);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {
	    SV_TEXT(k->id),         SV_TEXT(k->name),       SV_TEXT(store_role_name(k->role)),
	    SV_TEXT(k->key_sha256), SV_INT(k->created_ms),  SV_INT(k->revoked_ms),
	    SV_INT(k->expires_ms),  SV_INT(k->last_used_ms)};
	rc = store_exec(s, "INSERT INTO api_keys (" APIKEY_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
	                p, 8, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "API key %s, a valid key named %s, or its secret exists already",
		            k->id, k->name);
	return rc;
}

int store_apikey_find(store *s, const char *key_sha256, int64_t now_ms, store_apikey *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_find: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_sha256(key_sha256, false, "API key hash");
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(key_sha256), SV_INT(now_ms)};
	rc = store__get_one(s,
	                    "SELECT " APIKEY_COLS " FROM api_keys WHERE key_sha256 = ?"
	                    " AND revoked_ms = 0 AND (expires_ms = 0 OR expires_ms > ?)",
	                    p, 2, row_apikey, out, "API key", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no valid API key with that secret");
	if (rc != PQ_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

int store_apikey_get(store *s, const char *id, store_apikey *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(id, "API key id");
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(id)};
	rc = store__get_one(s, "SELECT " APIKEY_COLS " FROM api_keys WHERE id = ?", p, 1,
	                    row_apikey, out, "API key", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no API key %s", id);
	return rc;
}

int store_apikey_touch(store *s, const char *id, int64_t now_ms)
{
	if (!s || now_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_touch: bad arguments");
	int rc = store__check_id(id, "API key id");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(now_ms), SV_TEXT(id), SV_INT(now_ms - STORE_APIKEY_TOUCH_MS)};
	return store_exec(s,
	                  "UPDATE api_keys SET last_used_ms = ? WHERE id = ? AND last_used_ms <= ?",
	                  p, 3, NULL, NULL, NULL);
}

int store_apikey_revoke(store *s, const char *id, int64_t when_ms)
{
	int64_t changes = 0;
	bool found = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_revoke: no store");
	int rc = store__check_id(id, "API key id");
	if (rc != PQ_OK)
		return rc;
	if (when_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "revocation time must be positive");
	store_val p[] = {SV_INT(when_ms), SV_TEXT(id)};
	rc = store_exec(s, "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms = 0", p,
	                2, NULL, NULL, &changes);
	if (rc != PQ_OK || changes > 0)
		return rc;
	/* revoked already (the first time stays) or unknown */
	rc = store__exists(s, "SELECT COUNT(*) FROM api_keys WHERE id = ?", &p[1], 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no API key %s", id);
	return rc;
}

typedef struct {
	int (*fn)(const store_apikey *k, void *user);
	void *user;
} apikey_list_ctx;

static int apikey_list_row(const store_row *r, void *user)
{
	apikey_list_ctx *c = user;
	store_apikey k;
	memset(&k, 0, sizeof(k));
	int rc = row_apikey(r, &k);
	return rc == PQ_OK ? c->fn(&k, c->user) : rc;
}

int store_apikey_list(store *s, int (*fn)(const store_apikey *k, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_apikey_list: bad arguments");
	apikey_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, "SELECT " APIKEY_COLS " FROM api_keys ORDER BY name, created_ms, id",
	                  NULL, 0, apikey_list_row, &c, NULL);
}
