/* server_int.h: what the files of the HTTPS server share, and nothing else sees: the server
 * and worker structures, the per-worker caches, the counters behind /metrics, and the
 * cross-file functions (named srv__name, Mosquitto's module__name habit):
 *   server.c     workers, listeners, start-up checks, graceful shutdown
 *   router.c     request entry: path, identity, rate limit, route match, authorization
 *   responses.c  JSON responses and errors, request body, query and paging helpers
 *   tokens.c     download tokens and their key
 *   metrics.c    the counters and the one writer of the Prometheus text
 * Route modules (routes.c, releases.c, ...) include server.h only. */
#ifndef PQOTA_SERVER_SERVER_INT_H
#define PQOTA_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "server/assets.h"
#include "server/ratelimit.h"
#include "server/server.h"
#include "store/campaign.h"
#include "store/telemetry.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_bound_socket;
struct evhttp_request;
struct ctl;
struct usrv;

/* ---- per-worker caches (router.c) ------------------------------------------------------ */

/* Caches of store lookups that every request repeats, each entry valid for
 * SRV_CACHE_TTL_MS: API keys by secret hash (a revocation takes effect within that time),
 * whether a package belongs to a release, and client certificates found registered for
 * their VIN (a deleted vehicle is refused within that time). Direct-mapped, fixed size,
 * no locking (one worker thread each). */
#define SRV_CACHE_SLOTS  256
#define SRV_CACHE_TTL_MS 5000

typedef struct {
	char sha[65];
	int64_t until_ms;
	bool found;
	store_apikey key;
} srv_key_slot;

typedef struct {
	char sha[65];
	int64_t until_ms;
	bool known;
} srv_file_slot;

typedef struct {
	char fp[65]; /* SHA-256 of the certificate */
	char vin[STORE_VIN_MAX + 1];
	int64_t until_ms;
	bool registered; /* the certificate registered for that VIN */
} srv_vehicle_slot;

typedef struct {
	srv_key_slot keys[SRV_CACHE_SLOTS];
	srv_file_slot files[SRV_CACHE_SLOTS];
	srv_vehicle_slot vehicles[SRV_CACHE_SLOTS];
} srv_cache;

/* ---- counters (metrics.c) ---------------------------------------------------------------- */

#define SRV_TLS_GROUPS 8 /* TLS groups counted by name, the last slot for every other one */

/* The fleet gauges as last read from the store (metrics.c), shared by the workers. */
typedef struct {
	pthread_mutex_t lock;
	bool ok;              /* the last read succeeded */
	int64_t read_mono_ms; /* when (0: never) */
	store_tele_fleet tele;
	int64_t online;
	int64_t dep[STORE_DEP_STATE_COUNT]; /* deployments of running/paused campaigns */
	int64_t cmp[STORE_CMP_STATE_COUNT]; /* campaigns by state */
	uint64_t reads;                     /* reads from the store */
} srv_fleet_gauges;

/* Request durations of one route pattern (metrics_http.c): a Prometheus histogram. */
#define SRV_DURATION_BUCKETS 13
typedef struct {
	atomic_uint_fast64_t bucket[SRV_DURATION_BUCKETS + 1]; /* not cumulative; the last: over
	                                                        * the largest bound */
	atomic_uint_fast64_t sum_us;
} srv_route_hist;

typedef struct {
	atomic_uint_fast64_t requests, status[6], bytes_out, rate_limited, auth_failed;
	atomic_uint_fast64_t group[SRV_TLS_GROUPS]; /* requests by negotiated TLS group */
	int64_t started_mono_ms;
	srv_fleet_gauges fleet;
	srv_route_hist *routes; /* per route pattern, then one for requests matching none */
} srv_metrics;

/* ---- the server and its workers ------------------------------------------------------------ */

typedef struct srv_bus srv_bus;
typedef struct srv_stream srv_stream;

struct srv_worker {
	srv *s;
	srv_cache cache;
	int index;
	pthread_t thread;
	bool started;
	int fd; /* this worker's listening socket (SO_REUSEPORT) */
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct evhttp *proxy_http; /* the proxy listener's (proxy.c), NULL without one */
	struct evhttp_bound_socket *proxy_bound;
	struct event *stop_ev;
	struct event *drain_ev;
	store *db;
	int active;          /* requests in progress on this worker */
	srv_stream *streams; /* its live event streams (events.c) */
	int nstreams;
	struct event *bus_ev, *batch_ev, *beat_ev;
	atomic_bool bus_woken; /* bus_ev is active: srv_event need not wake it again */
	bool draining;
	struct event *alive_ev;       /* watchdog.c: stamps alive_ms while the loop turns */
	atomic_int_fast64_t alive_ms; /* pq_mono_ms of the last turn */
};

struct srv {
	srv_options o;
	char *listen_host, *listen_port;
	SSL_CTX *ssl;
	int port;
	int nworkers;
	srv_worker *workers;
	int stop_fd;   /* eventfd: srv_stop() -> srv_run() */
	int reload_fd; /* eventfd: srv_reload() -> srv_run() */
	uint8_t token_key[32];
	pthread_mutex_t ssl_lock;   /* ssl, which a reload replaces while workers accept */
	pthread_mutex_t files_lock; /* releases' files (files_gc.c) */
	int files_lock_fd;          /* DATA/.files.lock, flock(2)ed with it; -1 until opened */
	int proxy_fd;               /* the proxy listener (proxy.c), -1 without one */
	char proxy_secret[256];
	size_t proxy_secret_len;
	X509_STORE *proxy_ca; /* forwarded client certificates chain to it (under ssl_lock) */
	char **kept_paths;    /* copies of reloaded paths (server.c keep_paths) */
	size_t n_kept_paths;
	rl_limiter *rl; /* its rates changed in place by a reload (rl_set) */
	atomic_bool access_log;
	srv_metrics m;
	struct ctl *ctl;       /* control plane: MQTT bridge, campaign engine */
	struct usrv *usrv;     /* Uptane repositories */
	srv_assets *assets;    /* the console's files; NULL with console.enabled = false */
	srv_bus *bus;          /* live events (events.c) */
	struct rel_jobs *jobs; /* the delta worker (delta_jobs.c) */
	int64_t watchdog_ms;   /* the service manager's watchdog interval; 0: none */
};

/* proxy.c: binds the proxy listener of o.proxy_listen (s->proxy_fd; -1 without one),
 * with its secret and CA loaded. */
int srv__proxy_open(srv *s) PQ_MUST_CHECK;
/* A CA store of ca_file for forwarded certificates (*out NULL without ca_file). */
int srv__proxy_ca(const char *ca_file, X509_STORE **out) PQ_MUST_CHECK;
void srv__proxy_free(srv *s);
/* A request on the proxy listener: PQ_ERR_VERIFY without the proxy's secret; else c->client
 * and c->tls_group from the forwarded headers and *cert the forwarded client certificate
 * once it verified against tls.ca (the caller frees it; NULL when there is none). */
int srv__proxy_request(srv_ctx *c, X509 **cert) PQ_MUST_CHECK;

/* metrics_http.c: the per-route histograms (allocated by srv__metrics_start); one request's
 * duration; and the families of /metrics they, the build and the process give. */
int srv__route_hists_new(srv *s) PQ_MUST_CHECK;
void srv__observe_duration(srv *s, const char *route, int64_t ns);
void srv__metrics_http_text(srv *s, struct evbuffer *out);

/* watchdog.c: the service manager's notifications (core/notify.h). srv__alive_init adds
 * the worker's liveness timer (none without a watchdog); srv__notify_ready sends READY=1
 * with the listening address; srv__watchdog_wait is the poll timeout of the main thread
 * (-1: none); srv__watchdog_tick sends WATCHDOG=1 when every worker's loop turned within
 * half the interval, and withholds it (logging the stalled worker) otherwise. */
int srv__alive_init(srv_worker *w) PQ_MUST_CHECK;
void srv__alive_free(srv_worker *w);
void srv__notify_ready(srv *s);
int srv__watchdog_wait(const srv *s);
void srv__watchdog_tick(srv *s);
void srv__notify_stopping(void);

/* access_log.c: the access log's line for c's response (status, body bytes). */
void srv__access_log(const srv_ctx *c, int status, uint64_t body_bytes);

/* server.c: a request starts on worker w (counted until it completes, for the drain). */
void srv__request_begin(srv_worker *w, struct evhttp_request *req);

/* router.c: every compatibility alias names a native route with the same methods and
 * requirement (PQ_ERR_INVAL naming the first that does not); srv_new checks it. */
int srv__routes_check(void) PQ_MUST_CHECK;

/* router.c: "GET", "POST", ... of an EVHTTP_REQ_* method ("?" for others). */
const char *srv__method_name(int method);

/* router.c: evhttp's callback for every request of a worker (arg: the srv_worker). */
void srv__on_request(struct evhttp_request *req, void *arg);

/* session.c: the console session of the request's cookie, if any and open, as its
 * identity (c->key, c->via_session); PQ_OK without one. */
int srv__session_identify(srv_ctx *c) PQ_MUST_CHECK;
/* session.c: whether a state change made with a session carries its CSRF token (403 sent
 * otherwise). Requests made with an API key header need none. */
bool srv__csrf_ok(srv_ctx *c);

/* events.c: the bus (srv_new), each worker's streams (worker_setup, on stop, worker_free). */
int srv__events_new(srv *s) PQ_MUST_CHECK;
void srv__events_free(srv *s);
int srv__events_worker_init(srv_worker *w) PQ_MUST_CHECK;
void srv__events_worker_drain(srv_worker *w);
void srv__events_worker_free(srv_worker *w);

/* tokens.c: loads the download-token key (token_secret_file, else DATA/token.key), creating
 * it with 32 random bytes when the file does not exist. */
int srv__token_key_load(srv *s) PQ_MUST_CHECK;

/* metrics.c: lock-free counters, from any worker; srv__metrics_stop frees what start
 * made. */
void srv__metrics_start(srv *s);
void srv__metrics_stop(srv *s);
void srv__count_request(srv *s);
void srv__count_status(srv *s, int status);
void srv__count_bytes(srv *s, uint64_t n);
void srv__count_rate_limited(srv *s);
void srv__count_auth_failed(srv *s);
/* group: the negotiated group's name (SSL_get0_group_name), NULL counts as "other". */
void srv__count_tls_group(srv *s, const char *group);

#endif
