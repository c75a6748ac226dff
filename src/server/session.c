/* session.c: console sessions (docs/api.md "Console sessions"): sign-in with an API key
 * into an HttpOnly cookie, the cookie as an identity for every route (router.c), the CSRF
 * token every state change made with it must carry, and sign-out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "core/jsonv.h"
#include "core/log.h"
#include "core/text.h"
#include "crypto/hash.h"
#include <openssl/crypto.h>
#include "server/console.h"
#include "server/server_int.h"
#include "store/session.h"

#define LOGC        "server"
#define COOKIE_NAME "__Host-pqota_session"
#define COOKIE_ATTR "Path=/; HttpOnly; Secure; SameSite=Strict"

bool srv_cookie_find(const char *header, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = header; p && *p;) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			if (len - nl - 1 >= cap)
				return false; /* too long for what is asked: not this cookie */
			memcpy(out, p + nl + 1, len - nl - 1);
			out[len - nl - 1] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

/* The 64 hex digits of the session cookie, if the request has a well-formed one. */
static bool cookie_secret(srv_ctx *c, char out[65])
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Cookie");
	uint8_t raw[32];
	size_t n = 0;
	return srv_cookie_find(h, COOKIE_NAME, out, 65) && strlen(out) == 64 &&
	       pq_hex_decode(out, raw, sizeof(raw), &n) == PQ_OK && n == 32;
}

/* SHA-256 of the secret, as stored. */
static int secret_hash(const char *secret, char out[65])
{
	uint8_t d[32];
	int rc = pq_hash(PQ_HASH_SHA256, secret, 64, d);
	if (rc == PQ_OK)
		pq_hex_encode(d, 32, out);
	return rc;
}

int srv__session_identify(srv_ctx *c)
{
	char secret[65], sha[65];
	store_session ss;
	if (!cookie_secret(c, secret) || secret_hash(secret, sha) != PQ_OK)
		return PQ_OK; /* no session: routes that need one answer 401 */
	int rc = store_session_find(c->db, sha, c->now_ms, &ss, &c->key);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc == PQ_ERR_NOTFOUND) {
		pq_err_clear();
		return PQ_OK;
	}
	if (rc != PQ_OK)
		return rc;
	c->has_key = true;
	c->via_session = true;
	memcpy(c->session_sha, sha, sizeof(c->session_sha));
	memcpy(c->csrf, ss.csrf, sizeof(c->csrf));
	c->session_expires_ms = ss.expires_ms;
	snprintf(c->actor, sizeof(c->actor), "apikey:%s", c->key.name);
	snprintf(c->client, sizeof(c->client), "apikey:%s", c->key.id);
	return PQ_OK;
}

bool srv__csrf_ok(srv_ctx *c)
{
	if (!c->via_session || c->method == EVHTTP_REQ_GET || c->method == EVHTTP_REQ_HEAD)
		return true;
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	const char *t = evhttp_find_header(h, "X-CSRF-Token");
	const char *site = evhttp_find_header(h, "Sec-Fetch-Site");
	bool ok = t && strlen(t) == 64 && pq_memeq_ct(t, c->csrf, 64) == 0 &&
	          (!site || strcmp(site, "same-origin") == 0);
	if (!ok) {
		srv__count_auth_failed(c->s);
		srv_error(c, 403, "csrf",
		          "a request made with a console session must carry its X-CSRF-Token "
		          "and come from the console itself");
	}
	return ok;
}

/* The session object: who, which role, until when, and (for a session) its CSRF token. */
static json_t *session_json(const srv_ctx *c, const char *csrf, int64_t expires_ms)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "name", c->key.name, "role",
	                      store_role_name(c->key.role), "key_id", c->key.id, "via",
	                      csrf ? "session" : "api_key");
	if (j && csrf &&
	    (json_object_set_new(j, "csrf_token", json_string(csrf)) != 0 ||
	     json_object_set_new(j, "expires_ms", json_integer(expires_ms)) != 0)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The API key of the sign-in body into c->key; false (401 or 400 sent, audited) when it
 * is missing or not a valid key. */
static bool signin_key(srv_ctx *c, json_t *body)
{
	pq_jv v = {.err = PQ_ERR_INVAL, .what = "sign-in"};
	static const char *const keys[] = {"api_key", NULL};
	const char *key = NULL;
	if (pq_jv_keys(&v, body, "", keys) != PQ_OK ||
	    pq_jv_str(&v, body, "api_key", "", PQ_JV_REQUIRED | PQ_JV_PRINTABLE, 256, &key) !=
	        PQ_OK) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		return false;
	}
	uint8_t d[32];
	char hex[65];
	size_t kl = strlen(key);
	int rc = kl < 16 ? PQ_ERR_NOTFOUND : pq_hash(PQ_HASH_SHA256, key, kl, d);
	if (rc == PQ_OK) {
		pq_hex_encode(d, 32, hex);
		rc = store_apikey_find(c->db, hex, c->now_ms, &c->key);
	}
	if (rc == PQ_ERR_NOTFOUND) {
		srv__count_auth_failed(c->s);
		json_t *detail = json_pack("{s:s}", "client", c->client);
		srv_audit(c, "session.signin_failed", "", detail);
		srv_error(c, 401, "unauthenticated", "unknown or revoked API key");
		return false;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "sign-in");
		return false;
	}
	if (store_apikey_touch(c->db, c->key.id, c->now_ms) != PQ_OK)
		pq_err_clear(); /* the last use is a hint: a sign-in does not fail for it */
	return true;
}

/* A new session for c->key: its row, then the cookie. */
static int open_session(srv_ctx *c, store_session *ss, char cookie[65])
{
	uint8_t raw[64];
	int rc = pq_random(raw, sizeof(raw));
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(raw, 32, cookie);
	pq_hex_encode(raw + 32, 32, ss->csrf);
	OPENSSL_cleanse(raw, sizeof(raw));
	snprintf(ss->key_id, sizeof(ss->key_id), "%s", c->key.id);
	ss->created_ms = c->now_ms;
	ss->expires_ms = c->now_ms + c->s->o.session_ttl_ms;
	rc = secret_hash(cookie, ss->id_sha256);
	if (rc == PQ_OK)
		rc = store_session_insert(c->db, ss);
	/* sessions ended over a day ago go now: the table holds about a day of sign-ins */
	int64_t gone = 0;
	if (rc == PQ_OK &&
	    store_session_purge(c->db, c->now_ms - 24 * 3600 * 1000LL, &gone) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "purging old sessions: %s", pq_err_detail());
	return rc;
}

/* POST /api/v1/session {"api_key": KEY}: only from the console's own pages as JSON, so a
 * form on another site can neither sign a browser in nor out. */
static void h_signin(srv_ctx *c)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
	const char *ct = evhttp_find_header(in, "Content-Type");
	const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
	if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
	    (site && strcmp(site, "same-origin") != 0)) {
		srv_error(c, 403, "csrf", "sign in from the console (a JSON request, same origin)");
		return;
	}
	json_t *body = srv_body_json(c);
	if (!body)
		return;
	bool ok = signin_key(c, body);
	json_decref(body);
	if (!ok)
		return;
	store_session ss = {0};
	char cookie[65], hdr[256];
	int rc = open_session(c, &ss, cookie);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "opening a session");
		return;
	}
	snprintf(hdr, sizeof(hdr), COOKIE_NAME "=%s; " COOKIE_ATTR "; Max-Age=%lld", cookie,
	         (long long)(c->s->o.session_ttl_ms / 1000));
	OPENSSL_cleanse(cookie, sizeof(cookie));
	struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(out, "Set-Cookie", hdr);
	evhttp_add_header(out, "Cache-Control", "no-store");
	snprintf(c->actor, sizeof(c->actor), "apikey:%s", c->key.name);
	json_t *detail = json_pack("{s:s,s:s}", "client", c->client, "session", ss.id_sha256);
	srv_audit(c, "session.signin", c->key.id, detail);
	srv_json(c, 201, session_json(c, ss.csrf, ss.expires_ms));
	OPENSSL_cleanse(&ss, sizeof(ss));
}

/* GET /api/v1/session: who the request acts as (a page reload asks this). */
static void h_whoami(srv_ctx *c)
{
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Cache-Control", "no-store");
	srv_json(c, 200, session_json(c, c->via_session ? c->csrf : NULL, c->session_expires_ms));
}

/* DELETE /api/v1/session: ends the session on the server and clears the cookie. */
static void h_signout(srv_ctx *c)
{
	if (!c->via_session) {
		srv_error(c, 400, "bad_request", "this request has no console session to end");
		return;
	}
	int rc = store_session_revoke(c->db, c->session_sha, c->now_ms);
	if (rc != PQ_OK && rc != PQ_ERR_NOTFOUND) {
		srv_fail(c, rc, "signing out");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Set-Cookie",
	                  COOKIE_NAME "=; " COOKIE_ATTR "; Max-Age=0");
	json_t *detail = json_pack("{s:s}", "session", c->session_sha);
	srv_audit(c, "session.signout", c->key.id, detail);
	srv_json(c, 204, NULL);
}

#define SESSION_PATH "/api/v1/session"
const srv_route route_session_table[] = {
    {EVHTTP_REQ_POST, SESSION_PATH, SRV_AUTH_PUBLIC, h_signin,
     "sign in to the console with an API key (a session cookie)"},
    {EVHTTP_REQ_GET, SESSION_PATH, SRV_AUTH_VIEWER, h_whoami, "the session or key in use"},
    {EVHTTP_REQ_DELETE, SESSION_PATH, SRV_AUTH_VIEWER, h_signout, "sign out (ends the session)"},
    {0, NULL, 0, NULL, NULL},
};
