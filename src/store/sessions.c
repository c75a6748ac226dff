/* sessions.c: console sessions (session.h), once for both backends. */
#include <string.h>

#include "store/session.h"
#include "store/store_int.h"

#define SESSION_COLS                                                                               \
	"s.id_sha256, s.key_id, s.csrf, s.created_ms, s.expires_ms, s.revoked_ms, k.id, k.name,"   \
	" k.role, k.key_sha256, k.created_ms, k.revoked_ms, k.expires_ms, k.last_used_ms"

typedef struct {
	store_session *s;
	store_apikey *k;
} session_row;

static int row_session(const store_row *r, void *dst)
{
	session_row *o = dst;
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, o->s->id_sha256, sizeof(o->s->id_sha256));
	store__rd_copy(&rd, o->s->key_id, sizeof(o->s->key_id));
	store__rd_copy(&rd, o->s->csrf, sizeof(o->s->csrf));
	store__rd_i64(&rd, &o->s->created_ms);
	store__rd_i64(&rd, &o->s->expires_ms);
	store__rd_i64(&rd, &o->s->revoked_ms);
	store__rd_copy(&rd, o->k->id, sizeof(o->k->id));
	store__rd_copy(&rd, o->k->name, sizeof(o->k->name));
	const char *role = store__rd_text(&rd);
	if (rd.rc == PQ_OK && store_role_parse(role ? role : "", &o->k->role) != PQ_OK)
		rd.rc = pq_err_set(PQ_ERR_FORMAT, "stored role '%.32s' unknown", role ? role : "");
	store__rd_copy(&rd, o->k->key_sha256, sizeof(o->k->key_sha256));
	store__rd_i64(&rd, &o->k->created_ms);
	store__rd_i64(&rd, &o->k->revoked_ms);
	store__rd_i64(&rd, &o->k->expires_ms);
	store__rd_i64(&rd, &o->k->last_used_ms);
	return rd.rc;
}

int store_session_insert(store *s, const store_session *ss)
{
	if (!s || !ss)
		return pq_err_set(PQ_ERR_INVAL, "store_session_insert: bad arguments");
	int rc = store__check_sha256(ss->id_sha256, false, "session hash");
	if (rc == PQ_OK)
		rc = store__check_id(ss->key_id, "API key id");
	if (rc == PQ_OK)
		rc = store__check_sha256(ss->csrf, false, "CSRF token");
	if (rc == PQ_OK && (ss->created_ms <= 0 || ss->expires_ms <= ss->created_ms))
		rc = pq_err_set(PQ_ERR_INVAL, "a session must expire after it is created");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(ss->id_sha256), SV_TEXT(ss->key_id), SV_TEXT(ss->csrf),
	                 SV_INT(ss->created_ms), SV_INT(ss->expires_ms)};
	return store_exec(s,
	                  "INSERT INTO console_sessions (id_sha256, key_id, csrf, created_ms,"
	                  " expires_ms) VALUES (?, ?, ?, ?, ?)",
	                  p, 5, NULL, NULL, NULL);
}

int store_session_find(store *s, const char *id_sha256, int64_t now_ms, store_session *out,
                       store_apikey *key)
{
	if (!s || !out || !key)
		return pq_err_set(PQ_ERR_INVAL, "store_session_find: bad arguments");
	memset(out, 0, sizeof(*out));
	memset(key, 0, sizeof(*key));
	int rc = store__check_sha256(id_sha256, false, "session hash");
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	session_row o = {out, key};
	store_val p[] = {SV_TEXT(id_sha256), SV_INT(now_ms), SV_INT(now_ms)};
	rc = store__get_one(s,
	                    "SELECT " SESSION_COLS " FROM console_sessions s JOIN api_keys k"
	                    " ON k.id = s.key_id WHERE s.id_sha256 = ? AND s.revoked_ms = 0"
	                    " AND s.expires_ms > ? AND k.revoked_ms = 0"
	                    " AND (k.expires_ms = 0 OR k.expires_ms > ?)",
	                    p, 3, row_session, &o, "session", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "no open session (signed out, expired or key revoked)");
	if (rc != PQ_OK) {
		memset(out, 0, sizeof(*out));
		memset(key, 0, sizeof(*key));
	}
	return rc;
}

int store_session_revoke(store *s, const char *id_sha256, int64_t now_ms)
{
	int64_t changes = 0;
	if (!s || now_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "store_session_revoke: bad arguments");
	int rc = store__check_sha256(id_sha256, false, "session hash");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_INT(now_ms), SV_TEXT(id_sha256)};
	rc = store_exec(s,
	                "UPDATE console_sessions SET revoked_ms = ? WHERE id_sha256 = ?"
	                " AND revoked_ms = 0",
	                p, 2, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no open session");
	return rc;
}

int store_session_purge(store *s, int64_t before_ms, int64_t *n)
{
	int64_t changes = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_session_purge: no store");
	store_val p[] = {SV_INT(before_ms), SV_INT(before_ms)};
	int rc = store_exec(s,
	                    "DELETE FROM console_sessions WHERE expires_ms < ?"
	                    " OR (revoked_ms > 0 AND revoked_ms < ?)",
	                    p, 2, NULL, NULL, &changes);
	if (n)
		*n = rc == PQ_OK ? changes : 0;
	return rc;
}
