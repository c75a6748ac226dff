/* server.h: the pqota HTTPS server: worker threads (one libevent loop and one store
 * connection each, accepting on one shared listening socket), TLS 1.3 from a PQC
 * profile with optional client certificates, a route table, JSON responses and errors,
 * authentication (vehicle certificate CN, API key with role), rate limits, metrics.
 *
 * Lifetime: srv_new() checks everything it needs before serving (keys readable, store
 * reachable and migrated, data directory writable, port free) and fails with a clear
 * error; srv_run() serves until srv_stop() (e.g. from SIGTERM), then stops accepting,
 * lets in-flight requests finish (bounded by the drain timeout) and returns. The library
 * leaves process state alone: the program ignores SIGPIPE (a peer closing mid-response must
 * not kill it) and handles SIGTERM. */
#ifndef PQOTA_SERVER_SERVER_H
#define PQOTA_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "crypto/profile.h"
#include "store/store.h"

struct evhttp_request;
struct evbuffer;
struct srv_reload_opts;

typedef struct {
	const char *listen; /* "127.0.0.1:8443" (port 0: any free port) */
	int workers;        /* threads, >= 1 */
	bool reuse_port;    /* listen.reuse_port: each worker binds its own SO_REUSEPORT socket, so
	                     * another process may share the port; false (default): one socket
	                     * the workers share, and a port in use stops the start-up */
	const pq_profile *profile; /* TLS profile */
	const char *extra_groups;  /* more TLS groups offered (other profiles' clients) */
	const char *cert_file, *key_file, *ca_file;
	bool require_client_cert; /* all clients must present certificates */
	store_config store;
	const char *data_dir; /* content-addressed files, uploads */
	size_t max_header_bytes;
	size_t max_body_bytes; /* per request (uploads come in pieces of at most this) */
	int timeout_ms;        /* idle connection / request timeout */
	int drain_ms;          /* graceful shutdown: wait this long for requests */
	double rate_global;    /* requests per second, all clients (0: unlimited) */
	double burst_global;
	double rate_client; /* per client (API key, vehicle or address) */
	double burst_client;
	const char *token_secret_file; /* HMAC key for download tokens (created if missing) */
	int64_t token_ttl_ms;
	/* each package also kept encrypted, its content key wrapped per vehicle in the campaign
	 * metadata (docs/security.md "Package encryption"); false: plaintext downloads only */
	bool downloads_encrypt;
	const char *port_file; /* write the bound port here once listening */
	/* MQTT bridge (docs/protocol.md); mqtt_host NULL: no bridge, no campaign notifications */
	const char *mqtt_host;
	int mqtt_port;
	const char *mqtt_ca, *mqtt_cert, *mqtt_key; /* the server's MQTT client identity */
	const char *mqtt_shared_group;              /* NULL: plain subscriptions */
	const char *mqtt_client_id;                 /* NULL: generated */
	/* campaign engine */
	const char *instance_id; /* names this instance's work claims; NULL: host-pid */
	int engine_tick_ms;      /* 0: 1000 */
	int64_t engine_lease_ms; /* claim lease; 0: 30000 */
	int engine_batch;        /* deployments claimed per tick and kind; 0: 100 */
	/* Uptane: PKI directory holding uptane/{image,director} role keys (NULL: no Uptane) */
	const char *uptane_dir;
	const char *uptane_policy;  /* hybrid (default), pq, classical */
	int64_t uptane_snapshot_ms; /* image snapshot lifetime; 0: 7 days (renewed at half) */
	/* the base URL vehicles reach this server at ("https://host:port"); NULL: from listen */
	const char *public_url;
	/* the operator console (docs/console.md) */
	bool console_off;        /* console.enabled = false: / is 404 */
	const char *console_dir; /* serve this directory instead of the embedded files */
	int64_t session_ttl_ms;  /* console session lifetime; 0: 12 hours */
	/* telemetry (docs/protocol.md "Telemetry", server/telemetry.h) */
	int telemetry_history;             /* samples kept per vehicle; 0: 100 */
	int64_t telemetry_min_interval_ms; /* a vehicle's samples closer are dropped; 0: none */
	int64_t telemetry_fresh_ms;        /* /metrics: vehicles reporting within; 0: 15 min */
	int telemetry_low_battery_pct;     /* /metrics: low battery below this; 0: 20 */
	/* proxy.listen: plain HTTP for a TLS-terminating reverse proxy ("unix:PATH" or a
	 * loopback HOST:PORT), its requests proven by the secret in proxy_secret_file */
	const char *proxy_listen, *proxy_secret_file;
	bool access_log; /* one line per request (log.access): method, route, status, bytes,
	                  * duration, client identity, TLS group */
	/* SIGHUP (srv_reload): reads what may change into *out (the program's configuration
	 * again); NULL: reloading is not supported. Runs on srv_run's thread. */
	int (*reload)(void *user, struct srv_reload_opts *out);
	void *reload_user;
	/* /metrics (docs/api.md 9.2): the fleet gauges are read from the store at most once per
	 * metrics_cache_ms per process (0: at every scrape); metrics_require_key: a viewer key
	 * or session is needed (default public) */
	int64_t metrics_cache_ms;
	bool metrics_require_key;
	/* vehicles polling over REST (docs/api.md 17.4): told to check every poll_interval_ms
	 * (0: 60 s), online until SRV_POLL_PRESENCE of those have passed since the last check */
	int64_t poll_interval_ms;
} srv_options;

#define SRV_POLL_PRESENCE 3

/* What a reload may change without a restart (docs/operations.md "Reload"). The strings
 * need only stay valid until the reload returns (the server keeps copies). */
typedef struct srv_reload_opts {
	const char *cert_file, *key_file, *ca_file; /* the TLS certificate, key and client CA */
	double rate_global, burst_global, rate_client, burst_client;
	bool access_log;
	const char *log_file; /* NULL: stderr */
	int log_format;       /* pq_log_format */
	int log_level;        /* pq_log_level */
} srv_reload_opts;

typedef struct srv srv;
typedef struct srv_worker srv_worker;

int srv_new(const srv_options *o, srv **out) PQ_MUST_CHECK;
int srv_port(const srv *s);
/* Serves until srv_stop(); returns after the workers drained. */
int srv_run(srv *s) PQ_MUST_CHECK;
/* Async-signal-safe: asks srv_run to stop. */
void srv_stop(srv *s);
/* Async-signal-safe: asks srv_run to reload (srv_options.reload, then the new TLS
 * certificate and key, rate limits and access log switch, each only when all of it loads:
 * a failed reload is logged and changes nothing). */
void srv_reload(srv *s);
void srv_free(srv *s);

/* ---- what route handlers see -------------------------------------------------------- */

typedef enum {
	SRV_AUTH_PUBLIC = 0, /* anyone */
	SRV_AUTH_VIEWER,     /* API key of any role */
	SRV_AUTH_OPERATOR,   /* operator or admin key */
	SRV_AUTH_ADMIN,      /* admin key */
	SRV_AUTH_VEHICLE,    /* a vehicle's client certificate (its data only) */
	SRV_AUTH_ANY,        /* an API key or a vehicle certificate */
} srv_auth;

#define SRV_PARAMS_MAX 4
#define SRV_PARAM_MAX  96

typedef struct {
	struct evhttp_request *req;
	srv_worker *w;
	srv *s;
	store *db;
	int method;                                     /* EVHTTP_REQ_* */
	char path[512];                                 /* decoded path without query */
	const char *query;                              /* raw query string or NULL */
	char params[SRV_PARAMS_MAX][SRV_PARAM_MAX + 1]; /* {captures} in pattern order */
	int nparams;
	/* identity */
	char vin[STORE_VIN_MAX + 1]; /* client certificate CN, "" if none */
	bool has_key;
	store_apikey key;
	bool via_session;           /* the key came from a console session cookie */
	char session_sha[65];       /* that session's hash */
	char csrf[65];              /* and its CSRF token */
	int64_t session_expires_ms; /* and its expiry */
	char actor[96];             /* "apikey:NAME", "vehicle:VIN", "anonymous" */
	char client[96];            /* rate-limit bucket key */
	int64_t now_ms;
	int64_t start_ns;      /* monotonic, when the request reached the router */
	const char *route;     /* the matched route's pattern (the access log), NULL: none */
	const char *tls_group; /* the connection's negotiated key-exchange group, NULL: none */
	bool proxied;          /* came through the proxy listener */
	char forwarded[48];    /* then the client's address the proxy forwarded ("" if none) */
} srv_ctx;

typedef void (*srv_handler)(srv_ctx *c);

typedef struct {
	int methods;         /* EVHTTP_REQ_GET | ... */
	const char *pattern; /* "/api/v1/vehicles/{vin}" */
	srv_auth auth;
	srv_handler fn;
	const char *summary;
} srv_route;

/* A compatibility alias (compat_routes.c) is a row whose fn is srv_alias and whose summary
 * is "= METHOD /native/pattern": the router serves it with that native route's handler and
 * requirement (the captures in the same order). srv_new refuses an alias that names no
 * route or differs from it in methods or requirement. srv_alias itself only answers 500. */
void srv_alias(srv_ctx *c);
#define SRV_ALIAS_MARK "= "

/* The route tables, each terminated by a row with pattern NULL, listed in srv_route_tables
 * (NULL-terminated): the router and `pqota server routes` walk them in order. */
extern const srv_route srv_routes[];
extern const srv_route route_release_table[];
extern const srv_route route_campaign_table[];
extern const srv_route route_uptane_table[];
extern const srv_route route_console_table[];
extern const srv_route route_session_table[];
extern const srv_route route_events_table[];
/* API keys over the API (apikey_routes.c). */
extern const srv_route route_apikey_table[];

/* A new API key's secret: "pqk_" and 64 hex digits (32 random bytes). */
#define SRV_APIKEY_SECRET_LEN 68
/* Makes a new key (a UUID, the role, name 1..STORE_NAME_MAX characters, created now_ms,
 * expires_ms or 0 for never) and its secret, of which *k keeps only the SHA-256; the
 * caller stores it (store_apikey_insert) and shows the secret once. */
int srv_apikey_mint(store_role role, const char *name, int64_t now_ms, int64_t expires_ms,
                    store_apikey *k, char secret[SRV_APIKEY_SECRET_LEN + 1]) PQ_MUST_CHECK;

extern const srv_route route_compat_table[];
extern const srv_route *const srv_route_tables[];

/* The native route an alias row names (its summary "= METHOD /pattern"), NULL when there is
 * none or r is no alias (router.c). */
const srv_route *srv_route_native(const srv_route *r);

/* Responses. srv_json takes ownership of body; a NULL body (its builder ran out of memory)
 * is answered with a 500, except for status 204. */
void srv_json(srv_ctx *c, int status, json_t *body);
void srv_error(srv_ctx *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a pq_err from the store or a library to a status and error code, with the detail. */
void srv_fail(srv_ctx *c, int rc, const char *what);

/* store_file_known through the worker's short-lived cache (entries live 5 s). */
int srv_file_known(srv_ctx *c, const char *sha256, bool *known) PQ_MUST_CHECK;

/* The encrypted copy of a package (releases.c; docs/security.md "Package encryption"):
 * its package_keys row (*out holds the secret content key: wipe it after use). With
 * `create`, a package without one is encrypted now (DATA/files/<enc_sha256>, once per
 * process under a lock; an instance that loses the insert race to another one sharing the
 * database removes its copy and returns the winner's). PQ_ERR_NOTFOUND without `create`
 * when there is no copy. */
int srv_package_key(srv *s, store *db, const char *file_sha256, bool create, int64_t now_ms,
                    store_package_key *out) PQ_MUST_CHECK;

/* The security headers of the console's pages (CSP, nosniff, no referrer, no framing). */
void srv_security_headers(srv_ctx *c);

/* Counts a response a handler sends itself (not through srv_json/srv_error). */
void srv_count(srv_ctx *c, int status, uint64_t body_bytes);

/* Request body as parsed JSON (object), or an error already sent (returns NULL). */
json_t *srv_body_json(srv_ctx *c);
/* JSON text the server stored itself (a VCI, parameters, a policy), parsed again: *out NULL
 * when text is NULL; PQ_ERR_FORMAT (with `what`) when it does not parse, PQ_ERR_NOMEM. */
int srv_json_text(const char *text, const char *what, json_t **out) PQ_MUST_CHECK;
/* Query parameter value (decoded, malloc'd; caller frees) or NULL. */
char *srv_query(srv_ctx *c, const char *name);
/* Whether every query parameter is one of `allowed` (NULL-terminated; NULL for a route that
 * takes none) and none repeats; false (400 bad_request naming the parameter sent)
 * otherwise. Every handler calls it first, so that a misspelt filter is an error, not
 * silently ignored. */
bool srv_query_only(srv_ctx *c, const char *const *allowed);
/* An integer query parameter in min..max into *out (def when absent); false (400 naming it
 * sent) when it is not a decimal number in that range. */
bool srv_query_int(srv_ctx *c, const char *name, int64_t min, int64_t max, int64_t def,
                   int64_t *out);
/* Pagination from ?limit=&offset= (defaults 50, 0); false (error sent) when invalid. */
bool srv_page(srv_ctx *c, store_page *pg);
/* {"items","total","limit","offset"} of one page; takes items (NULL: returns NULL). */
json_t *srv_page_json(json_t *items, const store_page *pg, int64_t total);
/* Appends an audit record for a state change by the current actor; takes detail. */
void srv_audit(srv_ctx *c, const char *action, const char *target, json_t *detail);

/* Publishes a live event to every connected event stream (GET /api/v1/events), from any
 * thread; takes data (a JSON object; NULL is ignored). type is one of "deployment",
 * "campaign", "presence", "vci", "release", "diag" (docs/api.md, "Live events"). An event
 * that cannot be queued is dropped with a log line: streams that missed it get "reset". */
void srv_event(srv *s, const char *type, json_t *data);

const srv_options *srv_get_options(const srv *s);

/* The Uptane repositories (server/uptane_srv.h): NULL without role keys. */
struct usrv *srv_uptane(srv *s);
/* The control plane (server/control.h): NULL before srv_new finished. */
struct ctl *srv_control(srv *s);
/* Queues an MQTT message for the control plane to publish (any thread). PQ_ERR_UNSUPPORTED
 * when no broker is configured, PQ_ERR_RANGE when the queue is full. */
int srv_publish(srv *s, const char *topic, const char *json, size_t len, int qos,
                bool retain) PQ_MUST_CHECK;

/* Download tokens "EXPIRY_MS.VIN.HEX(HMAC-SHA256(key, 'pqota-dl-v1|VIN|SHA256|EXPIRY'))":
 * they bind a vehicle, one file and an expiry. Issued with campaign metadata (next issue). */
int srv_token_make(const srv *s, const char *vin, const char *sha256, int64_t expires_ms, char *out,
                   size_t len) PQ_MUST_CHECK;
int srv_token_check(const srv *s, const char *token, const char *sha256, int64_t now_ms,
                    char *vin_out, size_t vin_len) PQ_MUST_CHECK;

/* /metrics: every counter of the server and its control plane in the Prometheus text
 * format (metrics.c). */
void srv_metrics_text(srv *s, store *db, struct evbuffer *out);

#endif
