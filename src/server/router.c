/* router.c: every request's way in: the decoded path, the client's identity (a registered
 * vehicle's certificate, an API key), the rate limit, the route table and the route's
 * authorization, then the handler. The store lookups each request repeats go through the
 * worker's caches (server_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "crypto/pki.h"
#include "server/server_int.h"
#include "tls/tls.h"

#define LOGC "server"

/* ---- caches ---------------------------------------------------------------------------- */

/* The slot of a lowercase hex digest (its first 32 bits). */
static unsigned slot_of(const char *hex)
{
	unsigned v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 4 | (unsigned)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
	return v % SRV_CACHE_SLOTS;
}

/* Records the key's use in the store once per STORE_APIKEY_TOUCH_MS: the worker's cached
 * copy remembers the last write, so a busy key costs one UPDATE a minute per worker. A
 * failed write is logged and the request goes on. */
static void touch_key(srv_ctx *c, srv_key_slot *k, store_apikey *out)
{
	if (c->now_ms - k->key.last_used_ms < STORE_APIKEY_TOUCH_MS)
		return;
	if (store_apikey_touch(c->db, k->key.id, c->now_ms) != PQ_OK) {
		pq_log(PQ_LOG_WARN, LOGC, "API key %s: recording its use: %s", k->key.id,
		       pq_err_detail());
		pq_err_clear();
	}
	k->key.last_used_ms = c->now_ms;
	out->last_used_ms = c->now_ms;
}

/* store_apikey_find through the worker's cache; an expired key is refused even when its
 * lookup is cached. */
static int find_key(srv_ctx *c, const char *hex, store_apikey *out)
{
	srv_key_slot *k = &c->w->cache.keys[slot_of(hex)];
	if (k->until_ms > c->now_ms && strcmp(k->sha, hex) == 0) {
		if (!k->found || (k->key.expires_ms != 0 && k->key.expires_ms <= c->now_ms))
			return pq_err_set(PQ_ERR_NOTFOUND, "unknown API key");
		*out = k->key;
		touch_key(c, k, out);
		return PQ_OK;
	}
	int rc = store_apikey_find(c->db, hex, c->now_ms, out);
	if (rc == PQ_OK || rc == PQ_ERR_NOTFOUND) {
		memcpy(k->sha, hex, sizeof(k->sha));
		k->until_ms = c->now_ms + SRV_CACHE_TTL_MS;
		k->found = rc == PQ_OK;
		if (k->found) {
			k->key = *out;
			touch_key(c, k, out);
		}
	}
	return rc;
}

int srv_file_known(srv_ctx *c, const char *sha, bool *known)
{
	srv_file_slot *f = &c->w->cache.files[slot_of(sha)];
	if (f->until_ms > c->now_ms && strcmp(f->sha, sha) == 0) {
		*known = f->known;
		return PQ_OK;
	}
	int rc = store_file_known(c->db, sha, known);
	if (rc == PQ_OK) {
		snprintf(f->sha, sizeof(f->sha), "%s", sha);
		f->until_ms = c->now_ms + SRV_CACHE_TTL_MS;
		f->known = *known;
	}
	return rc;
}

/* Whether the certificate of SHA-256 fp is the one registered for c->vin, through the
 * worker's cache. Only a positive verdict is kept: a vehicle registered a moment after a
 * refused attempt is recognised at once. */
static bool cert_registered(srv_ctx *c, const char fp[65])
{
	srv_vehicle_slot *vs = &c->w->cache.vehicles[slot_of(fp)];
	if (vs->until_ms > c->now_ms && strcmp(vs->fp, fp) == 0 && strcmp(vs->vin, c->vin) == 0)
		return vs->registered;
	store_vehicle v = {0};
	bool ok =
	    store_vehicle_get(c->db, c->vin, &v) == PQ_OK && strcmp(fp, v.cert_pem_sha256) == 0;
	store_vehicle_clear(&v);
	if (ok) {
		memcpy(vs->fp, fp, sizeof(vs->fp));
		snprintf(vs->vin, sizeof(vs->vin), "%s", c->vin);
		vs->registered = true;
		vs->until_ms = c->now_ms + SRV_CACHE_TTL_MS;
	}
	return ok;
}

/* ---- identity -------------------------------------------------------------------------- */

/* A CA-issued certificate is a vehicle only if its CN is a VIN (not the server's or the
 * broker's identity) and it is the certificate registered for that VIN. */
static bool peer_is_vehicle(srv_ctx *c, X509 *peer)
{
	uint8_t d[32];
	char fp[65];
	unsigned char *der = NULL;
	int n = i2d_X509(peer, &der);
	bool ok = n > 0 && pq_vin_check(c->vin) == PQ_OK &&
	          pq_hash(PQ_HASH_SHA256, der, (size_t)n, d) == PQ_OK;
	OPENSSL_free(der);
	if (ok) {
		pq_hex_encode(d, 32, fp);
		ok = cert_registered(c, fp);
	}
	pq_err_clear();
	return ok;
}

/* The vehicle identity (c->vin) from a verified client certificate (NULL: none). */
static void identify_cert(srv_ctx *c, X509 *peer)
{
	c->vin[0] = '\0';
	if (!peer || tls_cert_cn(peer, c->vin, sizeof(c->vin)) != PQ_OK) {
		c->vin[0] = '\0';
		return;
	}
	snprintf(c->client, sizeof(c->client), "vehicle:%s", c->vin);
	if (!peer_is_vehicle(c, peer)) {
		c->vin[0] = '\0'; /* not a registered vehicle: no vehicle identity */
		return;
	}
	snprintf(c->actor, sizeof(c->actor), "vehicle:%s", c->vin);
}

/* The vehicle identity from the handshake's verified client certificate; counts the TLS
 * group. */
static void identify_vehicle(srv_ctx *c, SSL *ssl)
{
	c->vin[0] = '\0';
	if (!ssl)
		return;
	c->tls_group = SSL_get0_group_name(ssl);
	srv__count_tls_group(c->s, c->tls_group);
	X509 *peer = SSL_get0_peer_certificate(ssl);
	identify_cert(c, peer && SSL_get_verify_result(ssl) == X509_V_OK ? peer : NULL);
}

/* A request of the proxy listener: the proxy's secret, then the forwarded client (address,
 * certificate, group). PQ_ERR_VERIFY without the secret. */
static int identify_proxied(srv_ctx *c)
{
	X509 *cert = NULL;
	c->proxied = true;
	int rc = srv__proxy_request(c, &cert);
	if (rc != PQ_OK)
		return rc;
	if (c->tls_group)
		srv__count_tls_group(c->s, c->tls_group);
	identify_cert(c, cert);
	X509_free(cert);
	return PQ_OK;
}

/* The API key of X-API-Key or Authorization: Bearer, if any. PQ_ERR_VERIFY for a
 * malformed, unknown or revoked key. */
static int identify_key(srv_ctx *c)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	const char *key = evhttp_find_header(h, "X-API-Key");
	const char *auth = evhttp_find_header(h, "Authorization");
	if (!key && auth && strncasecmp(auth, "Bearer ", 7) == 0)
		key = auth + 7;
	if (!key)
		return srv__session_identify(c); /* the console's cookie, if any */
	uint8_t d[32];
	char hex[65];
	size_t kl = strlen(key);
	if (kl < 16 || kl > 256 || pq_hash(PQ_HASH_SHA256, key, kl, d) != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "malformed API key");
	pq_hex_encode(d, 32, hex);
	int rc = find_key(c, hex, &c->key);
	if (rc == PQ_ERR_NOTFOUND)
		return pq_err_set(PQ_ERR_VERIFY, "unknown, revoked or expired API key");
	if (rc != PQ_OK)
		return rc;
	c->has_key = true;
	snprintf(c->actor, sizeof(c->actor), "apikey:%s", c->key.name);
	snprintf(c->client, sizeof(c->client), "apikey:%s", c->key.id);
	return PQ_OK;
}

/* Identity: the client certificate's CN (verified by the handshake), an API key. Fills
 * c->client, the rate-limit bucket, in any case. */
static int identify(srv_ctx *c)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(c->req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	const char *host = NULL;
	ev_uint16_t port = 0;
	if (conn)
		evhttp_connection_get_peer(conn, (char **)&host, &port);
	snprintf(c->client, sizeof(c->client), "ip:%s", host ? host : "?");
	snprintf(c->actor, sizeof(c->actor), "anonymous");
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	/* by the listener it came in on: only the proxy listener is plain HTTP */
	if (conn && c->w->proxy_http && evhttp_connection_get_server(conn) == c->w->proxy_http) {
		int rc = identify_proxied(c);
		if (rc != PQ_OK)
			return rc;
	} else if (!ssl) { /* the TLS listener without TLS (libevent's fallback): nothing */
		return pq_err_set(PQ_ERR_VERIFY, "not a TLS connection");
	} else {
		identify_vehicle(c, ssl);
	}
	return identify_key(c);
}

/* PQ_OK when the identity may use a route needing `need`; otherwise the 401 or 403 is sent
 * and PQ_ERR_VERIFY returned. */
static int authorize(srv_ctx *c, srv_auth need)
{
	store_role min = STORE_ROLE_ADMIN;
	switch (need) {
	case SRV_AUTH_PUBLIC:
		return PQ_OK;
	case SRV_AUTH_VEHICLE:
		if (c->vin[0])
			return PQ_OK;
		srv__count_auth_failed(c->s);
		srv_error(c, c->has_key ? 403 : 401, c->has_key ? "forbidden" : "unauthenticated",
		          "this route is for vehicles (client certificate)");
		return pq_err_set(PQ_ERR_VERIFY, "not a vehicle");
	case SRV_AUTH_ANY:
		if (c->vin[0] || c->has_key)
			return PQ_OK;
		srv__count_auth_failed(c->s);
		srv_error(c, 401, "unauthenticated",
		          "an API key or a vehicle certificate is required");
		return pq_err_set(PQ_ERR_VERIFY, "no identity");
	case SRV_AUTH_VIEWER:
		min = STORE_ROLE_VIEWER;
		break;
	case SRV_AUTH_OPERATOR:
		min = STORE_ROLE_OPERATOR;
		break;
	case SRV_AUTH_ADMIN:
		break;
	}
	if (!c->has_key) {
		srv__count_auth_failed(c->s);
		srv_error(c, 401, "unauthenticated",
		          "an API key is required (Authorization: Bearer KEY or X-API-Key)");
		return pq_err_set(PQ_ERR_VERIFY, "no API key");
	}
	if (c->key.role < min) {
		srv__count_auth_failed(c->s);
		srv_error(c, 403, "forbidden", "role %s may not do this (needs %s)",
		          store_role_name(c->key.role), store_role_name(min));
		return pq_err_set(PQ_ERR_VERIFY, "role too low");
	}
	return PQ_OK;
}

/* ---- routing --------------------------------------------------------------------------- */

/* Matches path against pattern segment by segment; {x} captures one segment. */
static bool match(const char *pattern, const char *path, srv_ctx *c)
{
	const char *p = pattern, *q = path;
	c->nparams = 0;
	while (*p && *q) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *qe = strchr(q, '/');
			size_t n = qe ? (size_t)(qe - q) : strlen(q);
			if (!pe || n == 0 || n > SRV_PARAM_MAX || c->nparams == SRV_PARAMS_MAX)
				return false;
			memcpy(c->params[c->nparams], q, n);
			c->params[c->nparams][n] = '\0';
			c->nparams++;
			p = pe + 1;
			q += n;
			continue;
		}
		if (*p != *q)
			return false;
		p++;
		q++;
	}
	return *p == '\0' && *q == '\0';
}

const char *srv__method_name(int m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	default:
		return "?";
	}
}

/* The first route of the tables for the path and method, with its captures in c; *allowed
 * collects the methods of every route matching the path. */
static const srv_route *find_route(srv_ctx *c, int *allowed)
{
	*allowed = 0;
	for (size_t t = 0; srv_route_tables[t]; t++) {
		for (const srv_route *r = srv_route_tables[t]; r->pattern; r++) {
			if (!match(r->pattern, c->path, c))
				continue;
			*allowed |= r->methods;
			if (r->methods & c->method)
				return r; /* c->params hold its captures: it matched last */
		}
	}
	return NULL;
}

void srv_alias(srv_ctx *c)
{
	srv_error(c, 500, "internal", "alias %s reached without its native route", c->path);
}

const srv_route *srv_route_native(const srv_route *a)
{
	size_t mark = strlen(SRV_ALIAS_MARK);
	if (!a || a->fn != srv_alias || !a->summary ||
	    strncmp(a->summary, SRV_ALIAS_MARK, mark) != 0)
		return NULL;
	for (size_t t = 0; srv_route_tables[t]; t++)
		for (const srv_route *r = srv_route_tables[t]; r->pattern; r++) {
			char name[sizeof(((srv_ctx *)0)->path) + 16]; /* "METHOD /pattern" */
			snprintf(name, sizeof(name), "%s %s",
			         srv__method_name(r->methods & ~EVHTTP_REQ_HEAD), r->pattern);
			if (r->fn != srv_alias && strcmp(name, a->summary + mark) == 0)
				return r;
		}
	return NULL;
}

int srv__routes_check(void)
{
	for (size_t t = 0; srv_route_tables[t]; t++)
		for (const srv_route *r = srv_route_tables[t]; r->pattern; r++) {
			if (r->fn != srv_alias)
				continue;
			const srv_route *n = srv_route_native(r);
			if (!n)
				return pq_err_set(PQ_ERR_INVAL, "alias %s: no route '%s'",
				                  r->pattern, r->summary);
			if (n->auth != r->auth || r->methods != n->methods)
				return pq_err_set(PQ_ERR_INVAL,
				                  "alias %s: methods or requirement differ from %s",
				                  r->pattern, n->pattern);
		}
	return PQ_OK;
}

/* 405 with Allow when another method is routed for the path, else 404. */
static void no_route(srv_ctx *c, int allowed)
{
	static const int ms[] = {EVHTTP_REQ_GET, EVHTTP_REQ_HEAD, EVHTTP_REQ_POST, EVHTTP_REQ_PUT,
	                         EVHTTP_REQ_DELETE};
	if (!allowed) {
		srv_error(c, 404, "not_found", "no route for %s", c->path);
		return;
	}
	char allow[64];
	pq_buf b;
	pq_buf_init_fixed(&b, allow, sizeof(allow));
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		if (allowed & ms[i])
			pq_buf_printf(&b, "%s%s", b.len ? ", " : "", srv__method_name(ms[i]));
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Allow", allow);
	srv_error(c, 405, "method_not_allowed", "%s is not allowed on %s",
	          srv__method_name(c->method), c->path);
}

/* ---- the request ----------------------------------------------------------------------- */

/* The decoded path into c->path; false (400 sent) when it is malformed. */
static bool request_path(srv_ctx *c, const struct evhttp_uri *uri)
{
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	size_t declen = 0;
	char *dec = raw ? evhttp_uridecode(raw, 0, &declen) : NULL;
	/* an encoded NUL ("%00") makes the decoded length exceed strlen() */
	bool ok = dec && declen == strlen(dec) && declen < sizeof(c->path) && dec[0] == '/' &&
	          !strstr(dec, "..");
	if (ok)
		memcpy(c->path, dec, declen + 1);
	free(dec);
	if (!ok)
		srv_error(c, 400, "bad_request", "malformed path");
	return ok;
}

/* Takes a token from the client's bucket; false (429 with Retry-After sent) when empty. */
static bool rate_ok(srv_ctx *c)
{
	double retry = 0;
	char ra[24];
	if (rl_allow(c->s->rl, c->client, pq_mono_s(), &retry))
		return true;
	srv__count_rate_limited(c->s);
	snprintf(ra, sizeof(ra), "%d", rl_retry_after_s(retry));
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Retry-After", ra);
	srv_error(c, 429, "rate_limited", "too many requests; retry in %s s", ra);
	return false;
}

void srv__on_request(struct evhttp_request *req, void *arg)
{
	srv_worker *w = arg;
	srv_ctx c;
	memset(&c, 0, sizeof(c));
	c.req = req;
	c.w = w;
	c.s = w->s;
	c.db = w->db;
	c.method = evhttp_request_get_command(req);
	c.now_ms = pq_real_ms();
	c.start_ns = pq_mono_ns();
	srv__count_request(c.s);
	srv__request_begin(w, req);

	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	if (!request_path(&c, uri))
		return;
	c.query = uri ? evhttp_uri_get_query(uri) : NULL;
	if (w->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	/* identity first (it names the rate-limit bucket), then the limit for every request,
	 * so that 404s, 405s and guessed API keys are throttled too */
	int idrc = identify(&c);
	if (!rate_ok(&c))
		return;
	int allowed = 0;
	const srv_route *hit = find_route(&c, &allowed);
	if (hit)
		c.route = hit->pattern;
	if (!hit) {
		no_route(&c, allowed);
		return;
	}
	if (idrc == PQ_ERR_VERIFY) {
		srv__count_auth_failed(c.s);
		srv_error(&c, 401, "unauthenticated", "%s", pq_err_detail());
		return;
	}
	if (idrc != PQ_OK) {
		srv_fail(&c, idrc, "authentication");
		return;
	}
	const srv_route *native = srv_route_native(hit);
	if (native) /* a compatibility alias: its native route serves it */
		hit = native;
	if (authorize(&c, hit->auth) != PQ_OK || !srv__csrf_ok(&c))
		return;
	if (pq_log_get_level() <= PQ_LOG_DEBUG) {
		char shown[sizeof(c.path)];
		size_t i = 0;
		for (; c.path[i] && i + 1 < sizeof(shown); i++) { /* no forged log lines */
			shown[i] = c.path[i];
			if ((unsigned char)c.path[i] < 0x20 || c.path[i] == 0x7f)
				shown[i] = '?';
		}
		shown[i] = '\0';
		pq_log(PQ_LOG_DEBUG, LOGC, "%s %s by %s", srv__method_name(c.method), shown,
		       c.actor);
	}
	hit->fn(&c);
}
