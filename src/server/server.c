/* server.c: worker threads, TLS bufferevents, routing, authentication, rate limits and
 * graceful shutdown for the pqota HTTPS server. */
#include "server/server.h"
#include "server/control.h"
#include "server/uptane_srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "core/fileio.h"
#include "core/log.h"
#include "crypto/hash.h"
#include "crypto/pki.h"
#include "server/ratelimit.h"
#include "tls/tls.h"

#define LOGC "server"

/* Per-worker caches of store lookups that every request repeats, each entry valid for
 * CACHE_TTL_MS: API keys by secret hash (a revocation takes effect within that time),
 * whether a package belongs to a release, and client certificates found registered for
 * their VIN (a deleted vehicle is refused within that time). Direct-mapped, fixed size,
 * no locking (one worker thread each). */
#define CACHE_SLOTS  256
#define CACHE_TTL_MS 5000

typedef struct {
	char sha[65];
	int64_t until_ms;
	bool found;
	store_apikey key;
} key_slot;

typedef struct {
	char sha[65];
	int64_t until_ms;
	bool known;
} file_slot;

typedef struct {
	char fp[65]; /* SHA-256 of the certificate */
	char vin[STORE_VIN_MAX + 1];
	int64_t until_ms;
	bool registered; /* the certificate registered for that VIN */
} vehicle_slot;

struct srv_worker {
	srv *s;
	key_slot keys[CACHE_SLOTS];
	file_slot files[CACHE_SLOTS];
	vehicle_slot vehicles[CACHE_SLOTS];
	int index;
	pthread_t thread;
	bool started;
	int fd; /* this worker's listening socket (SO_REUSEPORT) */
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *stop_ev;
	struct event *drain_ev;
	store *db;
	int active; /* requests in progress on this worker */
	bool draining;
	int rc; /* start-up result */
};

struct srv {
	srv_options o;
	char *listen_host, *listen_port;
	SSL_CTX *ssl;
	int port;
	int nworkers;
	srv_worker *workers;
	int stop_fd; /* eventfd: srv_stop() -> srv_run() */
	uint8_t token_key[32];
	rl_limiter *rl;
	/* metrics */
	atomic_uint_fast64_t m_requests, m_status[6], m_bytes_out, m_rate_limited, m_auth_failed;
	atomic_uint_fast64_t m_group[8]; /* requests by negotiated TLS group (groups[] below) */
	int64_t started_ms;
	struct ctl *ctl;   /* control plane: MQTT bridge, campaign engine */
	struct usrv *usrv; /* Uptane repositories */
};

/* TLS groups counted in metrics; the last slot counts every other group. */
static const char *const groups[] = {"X25519MLKEM768",
                                     "SecP384r1MLKEM1024",
                                     "SecP256r1MLKEM768",
                                     "MLKEM512",
                                     "MLKEM768",
                                     "MLKEM1024",
                                     "x25519",
                                     "other"};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const srv_options *srv_get_options(const srv *s)
{
	return &s->o;
}

struct usrv *srv_uptane(srv *s)
{
	return s ? s->usrv : NULL;
}

struct ctl *srv_control(srv *s)
{
	return s ? s->ctl : NULL;
}

int srv_port(const srv *s)
{
	return s->port;
}

/* ---- responses -------------------------------------------------------------------------- */

static void count_status(srv *s, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&s->m_status[cls], 1);
}

void srv_count(srv_ctx *c, int status, uint64_t body_bytes)
{
	count_status(c->s, status);
	atomic_fetch_add(&c->s->m_bytes_out, body_bytes);
}

void srv_json(srv_ctx *c, int status, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (out && text) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
		atomic_fetch_add(&c->s->m_bytes_out, strlen(text) + 1);
	}
	count_status(c->s, status);
	evhttp_send_reply(c->req, status, NULL, out);
	free(text);
	json_decref(body);
	if (out)
		evbuffer_free(out);
}

void srv_error(srv_ctx *c, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void srv_fail(srv_ctx *c, int rc, const char *what)
{
	const char *d = pq_err_detail();
	switch (rc) {
	case PQ_ERR_NOTFOUND:
		srv_error(c, 404, "not_found", "%s: %s", what, d);
		break;
	case PQ_ERR_EXISTS:
		pq_log(PQ_LOG_DEBUG, LOGC, "%s: %s", what, d);
		srv_error(c, 409, "conflict", "%s: it already exists", what);
		break;
	case PQ_ERR_INVAL:
	case PQ_ERR_FORMAT:
	case PQ_ERR_RANGE:
	case PQ_ERR_VERIFY:
		srv_error(c, 400, "bad_request", "%s: %s", what, d);
		break;
	default:
		pq_log(PQ_LOG_ERROR, LOGC, "%s: %s", what, d);
		srv_error(c, 500, "internal", "%s failed", what);
	}
}

json_t *srv_body_json(srv_ctx *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	if (len == 0) {
		srv_error(c, 400, "bad_request", "a JSON body is required");
		return NULL;
	}
	unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)len);
	json_t *j = p ? json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if (!j) {
		srv_error(c, 400, "bad_json", "body is not valid JSON: %s (line %d)", jerr.text,
		          jerr.line);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		srv_error(c, 400, "bad_json", "body must be a JSON object");
		return NULL;
	}
	return j;
}

char *srv_query(srv_ctx *c, const char *name)
{
	struct evkeyvalq q;
	char *v = NULL;
	if (!c->query)
		return NULL;
	memset(&q, 0, sizeof(q));
	if (evhttp_parse_query_str(c->query, &q) != 0)
		return NULL;
	const char *x = evhttp_find_header(&q, name);
	if (x)
		v = strdup(x);
	evhttp_clear_headers(&q);
	return v;
}

static bool parse_int_param(srv_ctx *c, const char *name, int64_t min, int64_t max, int64_t def,
                            int64_t *out)
{
	char *v = srv_query(c, name), *end = NULL;
	*out = def;
	if (!v)
		return true;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	bool ok = *v && !*end && !errno && x >= min && x <= max;
	free(v);
	if (!ok) {
		srv_error(c, 400, "bad_request", "query parameter '%s' must be %lld..%lld", name,
		          (long long)min, (long long)max);
		return false;
	}
	*out = x;
	return true;
}

bool srv_page(srv_ctx *c, store_page *pg)
{
	int64_t limit, offset;
	if (!parse_int_param(c, "limit", 1, STORE_PAGE_MAX, 50, &limit) ||
	    !parse_int_param(c, "offset", 0, INT64_MAX / 2, 0, &offset))
		return false;
	pg->limit = (int)limit;
	pg->offset = offset;
	return true;
}

void srv_audit(srv_ctx *c, const char *action, const char *target, json_t *detail)
{
	char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	if (store_audit_append(c->db, c->actor, action, target, text, c->now_ms) != PQ_OK)
		pq_log(PQ_LOG_ERROR, LOGC, "audit %s %s: %s", action, target, pq_err_detail());
	free(text);
	json_decref(detail);
}

/* ---- download tokens ------------------------------------------------------------------- */

static int token_mac(const srv *s, const char *vin, const char *sha256, int64_t exp, char hex[65])
{
	char msg[256];
	uint8_t mac[32];
	size_t mlen = 0;
	int n = snprintf(msg, sizeof(msg), "pqota-dl-v1|%s|%s|%lld", vin, sha256, (long long)exp);
	if (n < 0 || n >= (int)sizeof(msg))
		return pq_err_set(PQ_ERR_RANGE, "token fields too long");
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, s->token_key, sizeof(s->token_key),
	               (const unsigned char *)msg, (size_t)n, mac, sizeof(mac), &mlen) ||
	    mlen != 32)
		return pq_err_ssl(PQ_ERR_CRYPTO, "HMAC");
	pq_hex_encode(mac, 32, hex);
	return PQ_OK;
}

int srv_token_make(const srv *s, const char *vin, const char *sha256, int64_t expires_ms, char *out,
                   size_t len)
{
	char hex[65];
	int rc = token_mac(s, vin, sha256, expires_ms, hex);
	if (rc != PQ_OK)
		return rc;
	if (snprintf(out, len, "%lld.%s.%s", (long long)expires_ms, vin, hex) >= (int)len)
		return pq_err_set(PQ_ERR_RANGE, "token buffer too small");
	return PQ_OK;
}

int srv_token_check(const srv *s, const char *token, const char *sha256, int64_t now, char *vin_out,
                    size_t vin_len)
{
	char buf[160], hex[65];
	if (!token || strlen(token) >= sizeof(buf))
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	memcpy(buf, token, strlen(token) + 1);
	char *d1 = strchr(buf, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2 || strlen(d2 + 1) != 64)
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	*d1 = *d2 = '\0';
	char *end = NULL;
	long long exp = strtoll(buf, &end, 10);
	if (*end || exp <= 0)
		return pq_err_set(PQ_ERR_VERIFY, "malformed download token");
	if (exp < now)
		return pq_err_set(PQ_ERR_VERIFY, "download token expired");
	int rc = token_mac(s, d1 + 1, sha256, exp, hex);
	if (rc != PQ_OK)
		return rc;
	if (CRYPTO_memcmp(hex, d2 + 1, 64) != 0)
		return pq_err_set(PQ_ERR_VERIFY, "download token not valid for this file");
	snprintf(vin_out, vin_len, "%s", d1 + 1);
	return PQ_OK;
}

/* ---- metrics ---------------------------------------------------------------------------- */

void srv_metrics_text(srv *s, struct evbuffer *out)
{
	evbuffer_add_printf(out,
	                    "# HELP pqota_http_requests_total HTTP requests received.\n"
	                    "# TYPE pqota_http_requests_total counter\n"
	                    "pqota_http_requests_total %llu\n"
	                    "# HELP pqota_http_responses_total HTTP responses by status class.\n"
	                    "# TYPE pqota_http_responses_total counter\n",
	                    (unsigned long long)atomic_load(&s->m_requests));
	for (int i = 1; i <= 5; i++)
		evbuffer_add_printf(out, "pqota_http_responses_total{class=\"%dxx\"} %llu\n", i,
		                    (unsigned long long)atomic_load(&s->m_status[i]));
	evbuffer_add_printf(out,
	                    "# HELP pqota_http_rate_limited_total Requests refused with 429.\n"
	                    "# TYPE pqota_http_rate_limited_total counter\n"
	                    "pqota_http_rate_limited_total %llu\n"
	                    "# HELP pqota_http_auth_failures_total Requests refused with 401/403.\n"
	                    "# TYPE pqota_http_auth_failures_total counter\n"
	                    "pqota_http_auth_failures_total %llu\n"
	                    "# HELP pqota_http_response_bytes_total Response body bytes queued.\n"
	                    "# TYPE pqota_http_response_bytes_total counter\n"
	                    "pqota_http_response_bytes_total %llu\n"
	                    "# HELP pqota_uptime_seconds Seconds since the server started.\n"
	                    "# TYPE pqota_uptime_seconds gauge\n"
	                    "pqota_uptime_seconds %.3f\n"
	                    "# HELP pqota_workers Worker threads.\n"
	                    "# TYPE pqota_workers gauge\n"
	                    "pqota_workers %d\n",
	                    (unsigned long long)atomic_load(&s->m_rate_limited),
	                    (unsigned long long)atomic_load(&s->m_auth_failed),
	                    (unsigned long long)atomic_load(&s->m_bytes_out),
	                    (double)(now_ms() - s->started_ms) / 1000.0, s->nworkers);
	evbuffer_add_printf(out, "# HELP pqota_tls_requests_total Requests by negotiated TLS "
	                         "key-exchange group.\n"
	                         "# TYPE pqota_tls_requests_total counter\n");
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		evbuffer_add_printf(out, "pqota_tls_requests_total{group=\"%s\"} %llu\n", groups[i],
		                    (unsigned long long)atomic_load(&s->m_group[i]));
	ctl_metrics_text(s->ctl, out);
}

/* ---- routing ----------------------------------------------------------------------------- */

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

static const char *method_name(int m)
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

static void request_done(struct evhttp_request *req, void *arg)
{
	srv_worker *w = arg;
	(void)req;
	w->active--;
	if (w->draining && w->active == 0)
		event_base_loopbreak(w->base);
}

static unsigned slot_of(const char *hex)
{
	unsigned v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 4 | (unsigned)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
	return v % CACHE_SLOTS;
}

/* store_apikey_find through the worker's cache. */
static int find_key(srv_ctx *c, const char *hex, store_apikey *out)
{
	key_slot *k = &c->w->keys[slot_of(hex)];
	if (k->until_ms > c->now_ms && strcmp(k->sha, hex) == 0) {
		if (!k->found)
			return pq_err_set(PQ_ERR_NOTFOUND, "unknown API key");
		*out = k->key;
		return PQ_OK;
	}
	int rc = store_apikey_find(c->db, hex, out);
	if (rc == PQ_OK || rc == PQ_ERR_NOTFOUND) {
		snprintf(k->sha, sizeof(k->sha), "%s", hex);
		k->until_ms = c->now_ms + CACHE_TTL_MS;
		k->found = rc == PQ_OK;
		if (k->found)
			k->key = *out;
	}
	return rc;
}

int srv_file_known(srv_ctx *c, const char *sha, bool *known)
{
	file_slot *f = &c->w->files[slot_of(sha)];
	if (f->until_ms > c->now_ms && strcmp(f->sha, sha) == 0) {
		*known = f->known;
		return PQ_OK;
	}
	int rc = store_file_known(c->db, sha, known);
	if (rc == PQ_OK) {
		snprintf(f->sha, sizeof(f->sha), "%s", sha);
		f->until_ms = c->now_ms + CACHE_TTL_MS;
		f->known = *known;
	}
	return rc;
}

/* Identity: the client certificate's CN (verified by the handshake), an API key. */
static int identify(srv_ctx *c)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(c->req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	const char *host = NULL;
	ev_uint16_t port = 0;
	c->vin[0] = '\0';
	if (ssl) {
		const char *g = SSL_get0_group_name(ssl);
		size_t i = 0, n = sizeof(groups) / sizeof(groups[0]) - 1;
		while (i < n && (!g || strcasecmp(g, groups[i]) != 0))
			i++;
		atomic_fetch_add(&c->s->m_group[i], 1);
	}
	if (ssl && SSL_get0_peer_certificate(ssl) && SSL_get_verify_result(ssl) == X509_V_OK &&
	    tls_peer_cn(ssl, c->vin, sizeof(c->vin)) != PQ_OK)
		c->vin[0] = '\0';
	if (conn)
		evhttp_connection_get_peer(conn, (char **)&host, &port);
	snprintf(c->client, sizeof(c->client), "ip:%s", host ? host : "?");
	snprintf(c->actor, sizeof(c->actor), "anonymous");
	if (c->vin[0]) {
		snprintf(c->client, sizeof(c->client), "vehicle:%s", c->vin);
		/* a CA-issued certificate is a vehicle only if its CN is a VIN (not the server's
		 * or broker's identity) and it is the certificate registered for that VIN */
		store_vehicle v = {0};
		uint8_t d[32];
		char fp[65] = "";
		unsigned char *der = NULL;
		X509 *peer = SSL_get0_peer_certificate(ssl);
		int n = peer ? i2d_X509(peer, &der) : -1;
		bool ok = n > 0 && pq_vin_check(c->vin) == PQ_OK &&
		          pq_hash(PQ_HASH_SHA256, der, (size_t)n, d) == PQ_OK;
		OPENSSL_free(der);
		if (ok) {
			/* the verdict for this certificate, cached for CACHE_TTL_MS */
			pq_hex_encode(d, 32, fp);
			vehicle_slot *vs = &c->w->vehicles[slot_of(fp)];
			if (vs->until_ms > c->now_ms && strcmp(vs->fp, fp) == 0 &&
			    strcmp(vs->vin, c->vin) == 0) {
				ok = vs->registered;
			} else {
				int rc = store_vehicle_get(c->db, c->vin, &v);
				ok = rc == PQ_OK && strcmp(fp, v.cert_pem_sha256) == 0;
				/* only a positive verdict is kept: a vehicle registered a moment
				 * after a refused attempt is recognised at once */
				if (ok) {
					snprintf(vs->fp, sizeof(vs->fp), "%s", fp);
					snprintf(vs->vin, sizeof(vs->vin), "%s", c->vin);
					vs->registered = true;
					vs->until_ms = c->now_ms + CACHE_TTL_MS;
				}
			}
		}
		store_vehicle_clear(&v);
		pq_err_clear();
		if (!ok)
			c->vin[0] = '\0'; /* not a registered vehicle: no vehicle identity */
		else
			snprintf(c->actor, sizeof(c->actor), "vehicle:%s", c->vin);
	}
	struct evkeyvalq *h = evhttp_request_get_input_headers(c->req);
	const char *key = evhttp_find_header(h, "X-API-Key");
	const char *auth = evhttp_find_header(h, "Authorization");
	if (!key && auth && strncasecmp(auth, "Bearer ", 7) == 0)
		key = auth + 7;
	if (!key)
		return PQ_OK;
	uint8_t d[32];
	char hex[65];
	size_t kl = strlen(key);
	if (kl < 16 || kl > 256 || pq_hash(PQ_HASH_SHA256, key, kl, d) != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "malformed API key");
	pq_hex_encode(d, 32, hex);
	int rc = find_key(c, hex, &c->key);
	if (rc == PQ_ERR_NOTFOUND)
		return pq_err_set(PQ_ERR_VERIFY, "unknown or revoked API key");
	if (rc != PQ_OK)
		return rc;
	c->has_key = true;
	snprintf(c->actor, sizeof(c->actor), "apikey:%s", c->key.name);
	snprintf(c->client, sizeof(c->client), "apikey:%s", c->key.id);
	return PQ_OK;
}

/* 0 = allowed; otherwise the error was sent. */
static int authorize(srv_ctx *c, srv_auth need)
{
	store_role min;
	switch (need) {
	case SRV_AUTH_PUBLIC:
		return 0;
	case SRV_AUTH_VEHICLE:
		if (c->vin[0])
			return 0;
		atomic_fetch_add(&c->s->m_auth_failed, 1);
		srv_error(c, c->has_key ? 403 : 401, c->has_key ? "forbidden" : "unauthenticated",
		          "this route is for vehicles (client certificate)");
		return -1;
	case SRV_AUTH_ANY:
		if (c->vin[0] || c->has_key)
			return 0;
		atomic_fetch_add(&c->s->m_auth_failed, 1);
		srv_error(c, 401, "unauthenticated",
		          "an API key or a vehicle certificate is required");
		return -1;
	case SRV_AUTH_VIEWER:
		min = STORE_ROLE_VIEWER;
		break;
	case SRV_AUTH_OPERATOR:
		min = STORE_ROLE_OPERATOR;
		break;
	default:
		min = STORE_ROLE_ADMIN;
	}
	if (!c->has_key) {
		atomic_fetch_add(&c->s->m_auth_failed, 1);
		srv_error(c, 401, "unauthenticated",
		          "an API key is required (Authorization: Bearer KEY or X-API-Key)");
		return -1;
	}
	if (c->key.role < min) {
		atomic_fetch_add(&c->s->m_auth_failed, 1);
		srv_error(c, 403, "forbidden", "role %s may not do this (needs %s)",
		          store_role_name(c->key.role), store_role_name(min));
		return -1;
	}
	return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	srv_worker *w = arg;
	srv *s = w->s;
	srv_ctx c;
	const srv_route *hit = NULL;
	int allowed = 0;

	memset(&c, 0, sizeof(c));
	c.req = req;
	c.w = w;
	c.s = s;
	c.db = w->db;
	c.method = evhttp_request_get_command(req);
	c.now_ms = now_ms();
	atomic_fetch_add(&s->m_requests, 1);
	w->active++;
	evhttp_request_set_on_complete_cb(req, request_done, w);

	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	size_t declen = 0;
	char *dec = raw ? evhttp_uridecode(raw, 0, &declen) : NULL;
	/* an encoded NUL ("%00") makes the decoded length exceed strlen() */
	if (!dec || declen != strlen(dec) || declen >= sizeof(c.path) || dec[0] != '/' ||
	    strstr(dec, "..")) {
		free(dec);
		srv_error(&c, 400, "bad_request", "malformed path");
		return;
	}
	memcpy(c.path, dec, strlen(dec) + 1);
	free(dec);
	c.query = uri ? evhttp_uri_get_query(uri) : NULL;
	if (w->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");

	/* identity first (it names the rate-limit bucket), then the limit for every request,
	 * so that 404s, 405s and guessed API keys are throttled too */
	int idrc = identify(&c);
	double retry = 0;
	if (!rl_allow(s->rl, c.client, (double)c.now_ms / 1000.0, &retry)) {
		char ra[24];
		atomic_fetch_add(&s->m_rate_limited, 1);
		snprintf(ra, sizeof(ra), "%d", (int)(retry + 0.999));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
		srv_error(&c, 429, "rate_limited", "too many requests; retry in %s s", ra);
		return;
	}
	for (size_t t = 0; !hit && srv_route_tables[t]; t++) {
		for (const srv_route *r = srv_route_tables[t]; r->pattern; r++) {
			if (!match(r->pattern, c.path, &c))
				continue;
			allowed |= r->methods;
			if (r->methods & c.method) {
				hit = r;
				break;
			}
		}
	}
	if (hit)
		match(hit->pattern, c.path, &c); /* its captures, not a later pattern's */
	if (!hit) {
		if (allowed) {
			char allow[64] = "";
			static const int ms[] = {EVHTTP_REQ_GET, EVHTTP_REQ_HEAD, EVHTTP_REQ_POST,
			                         EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE};
			for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
				if (allowed & ms[i])
					snprintf(allow + strlen(allow),
					         sizeof(allow) - strlen(allow), "%s%s",
					         allow[0] ? ", " : "", method_name(ms[i]));
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
			srv_error(&c, 405, "method_not_allowed", "%s is not allowed on %s",
			          method_name(c.method), c.path);
		} else {
			srv_error(&c, 404, "not_found", "no route for %s", c.path);
		}
		return;
	}
	if (idrc == PQ_ERR_VERIFY) {
		atomic_fetch_add(&s->m_auth_failed, 1);
		srv_error(&c, 401, "unauthenticated", "%s", pq_err_detail());
		return;
	}
	if (idrc != PQ_OK) {
		srv_fail(&c, idrc, "authentication");
		return;
	}
	if (authorize(&c, hit->auth) != 0)
		return;
	pq_log(PQ_LOG_DEBUG, LOGC, "%s %s by %s", method_name(c.method), c.path, c.actor);
	hit->fn(&c);
}

/* ---- connections and workers --------------------------------------------------------- */

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	srv *s = arg;
	SSL *ssl = SSL_new(s->ssl);
	if (!ssl)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	else
		SSL_free(ssl);
	return bev;
}

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	if (w->active)
		pq_log(PQ_LOG_WARN, LOGC,
		       "worker %d: %d requests still running at the drain "
		       "deadline",
		       w->index, w->active);
	event_base_loopbreak(w->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	if (w->bound) {
		evhttp_del_accept_socket(w->http, w->bound); /* closes the listening socket */
		w->bound = NULL;
		w->fd = -1;
	}
	w->draining = true;
	if (w->active == 0) {
		event_base_loopbreak(w->base);
		return;
	}
	struct timeval tv = {.tv_sec = w->s->o.drain_ms / 1000,
	                     .tv_usec = (w->s->o.drain_ms % 1000) * 1000};
	w->drain_ev = evtimer_new(w->base, drain_timeout, w);
	if (w->drain_ev)
		evtimer_add(w->drain_ev, &tv);
	else
		event_base_loopbreak(w->base);
}

static void *worker_main(void *arg)
{
	srv_worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

/* Binds one listening socket with SO_REUSEPORT (port "0" for the first worker). */
static int bind_listener(const char *host, const char *port, int *out_fd, int *out_port)
{
	struct addrinfo hints = {0}, *ai = NULL;
	int fd = -1, one = 1, rc;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return pq_err_set(PQ_ERR_INVAL, "listen address %s:%s: %s", host, port,
		                  gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = pq_err_set(PQ_ERR_IO, "socket: %s", strerror(errno));
		goto out;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* accepted sockets inherit it: small responses leave at once instead of waiting for
	 * the peer's delayed ACK (about 40 ms per keep-alive request otherwise) */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "cannot listen on %s:%s: %s%s", host, port,
		                strerror(errno),
		                errno == EADDRINUSE ? " (is another server running?)" : "");
		goto out;
	}
	if (listen(fd, 1024) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "listen: %s", strerror(errno));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                           : ((struct sockaddr_in *)&ss)->sin_port);
	*out_fd = fd;
	fd = -1;
	rc = PQ_OK;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

static int split_listen(srv *s)
{
	const char *l = s->o.listen ? s->o.listen : "127.0.0.1:8443";
	const char *colon = strrchr(l, ':');
	if (!colon || colon == l || !colon[1])
		return pq_err_set(PQ_ERR_INVAL, "listen address '%s' is not HOST:PORT", l);
	const char *h = l, *he = colon;
	if (*h == '[' && he[-1] == ']') {
		h++;
		he--;
	}
	s->listen_host = strndup(h, (size_t)(he - h));
	s->listen_port = strdup(colon + 1);
	if (!s->listen_host || !s->listen_port)
		return pq_err_set(PQ_ERR_NOMEM, "listen address");
	return PQ_OK;
}

static int load_token_key(srv *s)
{
	char path[1024];
	char *data = NULL;
	size_t len = 0;
	if (s->o.token_secret_file)
		snprintf(path, sizeof(path), "%s", s->o.token_secret_file);
	else
		snprintf(path, sizeof(path), "%s/token.key", s->o.data_dir);
	int rc = pq_file_read(path, 1024, &data, &len);
	if (rc == PQ_ERR_NOTFOUND) {
		rc = pq_random(s->token_key, sizeof(s->token_key));
		if (rc == PQ_OK)
			rc = pq_file_write_atomic(path, s->token_key, sizeof(s->token_key), 0600,
			                          false);
		return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "creating the download-token key");
	}
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "download-token key");
	if (len != sizeof(s->token_key)) {
		OPENSSL_cleanse(data, len);
		free(data);
		return pq_err_set(PQ_ERR_FORMAT, "%s must hold exactly 32 bytes", path);
	}
	memcpy(s->token_key, data, 32);
	OPENSSL_cleanse(data, len);
	free(data);
	return PQ_OK;
}

static int worker_setup(srv *s, srv_worker *w)
{
	int rc = store_open(&s->o.store, &w->db);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "worker %d: store", w->index);
	w->base = event_base_new();
	w->http = w->base ? evhttp_new(w->base) : NULL;
	w->stop_ev = w->base ? event_new(w->base, -1, 0, on_stop, w) : NULL;
	if (!w->http || !w->stop_ev)
		return pq_err_set(PQ_ERR_NOMEM, "worker %d: event loop", w->index);
	evhttp_set_bevcb(w->http, make_bev, s);
	evhttp_set_gencb(w->http, on_request, w);
	evhttp_set_max_headers_size(w->http, (ev_ssize_t)s->o.max_header_bytes);
	evhttp_set_max_body_size(w->http, (ev_ssize_t)s->o.max_body_bytes);
	/* a refused over-long body is read to its end before the connection closes, so the
	 * client receives the 413 instead of a reset while it is still sending */
	evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
	struct timeval tv = {.tv_sec = s->o.timeout_ms / 1000,
	                     .tv_usec = (s->o.timeout_ms % 1000) * 1000};
	evhttp_set_timeout_tv(w->http, &tv);
	/* PATCH reaches the router so that it can answer 405 with Allow */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_PATCH);
	w->bound = evhttp_accept_socket_with_handle(w->http, w->fd);
	if (!w->bound)
		return pq_err_set(PQ_ERR_IO, "worker %d: accepting", w->index);
	return PQ_OK;
}

int srv_new(const srv_options *o, srv **out)
{
	srv *s = calloc(1, sizeof(*s));
	int rc;
	*out = NULL;
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "server");
	s->o = *o;
	s->stop_fd = -1;
	s->started_ms = now_ms();
	signal(SIGPIPE, SIG_IGN);
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	if (o->workers < 1 || o->workers > 64) {
		rc = pq_err_set(PQ_ERR_INVAL, "workers must be 1..64");
		goto fail;
	}
	rc = split_listen(s);
	if (rc != PQ_OK)
		goto fail;
	/* self-check 1: data directory */
	rc = pq_mkdirs(o->data_dir, 0750);
	if (rc == PQ_OK) {
		char p[1024];
		snprintf(p, sizeof(p), "%s/files", o->data_dir);
		rc = pq_mkdirs(p, 0750);
		snprintf(p, sizeof(p), "%s/uploads", o->data_dir);
		if (rc == PQ_OK)
			rc = pq_mkdirs(p, 0750);
		if (rc == PQ_OK && access(o->data_dir, W_OK) != 0)
			rc =
			    pq_err_set(PQ_ERR_IO, "data directory %s is not writable", o->data_dir);
	}
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "data directory");
		goto fail;
	}
	rc = load_token_key(s);
	if (rc != PQ_OK)
		goto fail;
	/* self-check 2: TLS keys */
	tls_opts to = {.profile = o->profile,
	               .extra_groups = o->extra_groups,
	               .cert_file = o->cert_file,
	               .key_file = o->key_file,
	               .ca_file = o->ca_file,
	               .require_client_cert = o->require_client_cert,
	               .request_client_cert = o->ca_file != NULL};
	rc = tls_server_ctx_new(&to, &s->ssl);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "TLS");
		goto fail;
	}
	/* self-check 3: the store is reachable and migrated (by this open) */
	store *probe = NULL;
	rc = store_open(&o->store, &probe);
	if (rc == PQ_OK)
		rc = store_ping(probe);
	store_close(probe);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "store");
		goto fail;
	}
	rc = rl_new(o->rate_global, o->burst_global, o->rate_client, o->burst_client, &s->rl);
	if (rc != PQ_OK)
		goto fail;
	/* self-check 4: the port; then one listener per worker on the same port */
	s->nworkers = o->workers;
	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	if (!s->workers) {
		rc = pq_err_set(PQ_ERR_NOMEM, "workers");
		goto fail;
	}
	for (int i = 0; i < s->nworkers; i++) {
		char port[16];
		s->workers[i].s = s;
		s->workers[i].index = i;
		s->workers[i].fd = -1;
		snprintf(port, sizeof(port), "%d", s->port);
		rc = bind_listener(s->listen_host, i == 0 ? s->listen_port : port,
		                   &s->workers[i].fd, &s->port);
		if (rc == PQ_OK)
			rc = worker_setup(s, &s->workers[i]);
		if (rc != PQ_OK)
			goto fail;
	}
	rc = usrv_new(o, &s->usrv);
	if (rc == PQ_OK)
		rc = ctl_new(s, &s->ctl);
	if (rc != PQ_OK)
		goto fail;
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0) {
		rc = pq_err_set(PQ_ERR_IO, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (o->port_file) {
		char buf[16];
		int n = snprintf(buf, sizeof(buf), "%d\n", s->port);
		rc = pq_file_write_atomic(o->port_file, buf, (size_t)n, 0644, true);
		if (rc != PQ_OK)
			goto fail;
	}
	*out = s;
	return PQ_OK;
fail:
	srv_free(s);
	return rc;
}

int srv_run(srv *s)
{
	uint64_t v;
	for (int i = 0; i < s->nworkers; i++) {
		if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
			srv_stop(s);
			break;
		}
		s->workers[i].started = true;
	}
	if (ctl_start(s->ctl) != PQ_OK) {
		pq_log(PQ_LOG_ERROR, LOGC, "%s", pq_err_detail());
		srv_stop(s);
	}
	pq_log(PQ_LOG_INFO, LOGC, "listening on %s:%d (TLS 1.3, profile %d %s, %d workers)",
	       s->listen_host, s->port, s->o.profile->id, s->o.profile->name, s->nworkers);
	while (read(s->stop_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pq_log(PQ_LOG_INFO, LOGC, "stopping: draining requests (up to %d ms)", s->o.drain_ms);
	for (int i = 0; i < s->nworkers; i++)
		if (s->workers[i].started)
			event_active(s->workers[i].stop_ev, EV_READ, 0);
	for (int i = 0; i < s->nworkers; i++)
		if (s->workers[i].started) {
			pthread_join(s->workers[i].thread, NULL);
			s->workers[i].started = false;
		}
	ctl_free(s->ctl); /* after the workers: none of them queues messages any more */
	s->ctl = NULL;
	pq_log(PQ_LOG_INFO, LOGC, "stopped");
	return PQ_OK;
}

void srv_stop(srv *s)
{
	uint64_t one = 1;
	if (s && s->stop_fd >= 0)
		(void)!write(s->stop_fd, &one, sizeof(one));
}

void srv_free(srv *s)
{
	if (!s)
		return;
	ctl_free(s->ctl);
	s->ctl = NULL;
	usrv_free(s->usrv);
	s->usrv = NULL;
	for (int i = 0; s->workers && i < s->nworkers; i++) {
		srv_worker *w = &s->workers[i];
		if (w->started) {
			event_active(w->stop_ev, EV_READ, 0);
			pthread_join(w->thread, NULL);
		}
		if (w->drain_ev)
			event_free(w->drain_ev);
		if (w->stop_ev)
			event_free(w->stop_ev);
		if (w->http)
			evhttp_free(w->http); /* closes the bound socket and connections */
		else if (w->fd >= 0)
			close(w->fd);
		if (w->base)
			event_base_free(w->base);
		store_close(w->db);
	}
	free(s->workers);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	SSL_CTX_free(s->ssl);
	rl_free(s->rl);
	free(s->listen_host);
	free(s->listen_port);
	OPENSSL_cleanse(s->token_key, sizeof(s->token_key));
	free(s);
}
