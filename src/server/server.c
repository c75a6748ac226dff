/* server.c: the server's lifetime (server.h): the start-up checks, one worker thread per
 * listening socket (SO_REUSEPORT) with its own libevent loop, TLS bufferevents and store
 * connection, and the graceful shutdown that drains in-flight requests. Requests enter in
 * router.c. */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/logfile.h"
#include "core/notify.h"
#include "server/bundles.h"
#include "server/control.h"
#include "server/releases_int.h"
#include "server/server_int.h"
#include "server/uptane_srv.h"
#include "tls/tls.h"

#define LOGC        "server"
#define WORKERS_MAX 64

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

/* ---- connections and requests ------------------------------------------------------------ */

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
	srv *s = arg;
	pthread_mutex_lock(&s->ssl_lock);
	SSL *ssl = SSL_new(s->ssl); /* holds a reference: a reload may replace s->ssl */
	pthread_mutex_unlock(&s->ssl_lock);
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

static void request_done(struct evhttp_request *req, void *arg)
{
	srv_worker *w = arg;
	(void)req;
	w->active--;
	if (w->draining && w->active == 0)
		event_base_loopbreak(w->base);
}

void srv__request_begin(srv_worker *w, struct evhttp_request *req)
{
	w->active++;
	evhttp_request_set_on_complete_cb(req, request_done, w);
}

/* ---- workers ------------------------------------------------------------------------------ */

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	if (w->active)
		pq_log(PQ_LOG_WARN, LOGC,
		       "worker %d: %d requests still running at the drain deadline", w->index,
		       w->active);
	event_base_loopbreak(w->base);
}

/* Stops accepting, then ends the loop once the requests in progress completed (or at the
 * drain deadline). */
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
	if (w->proxy_bound) {
		evhttp_del_accept_socket(w->proxy_http, w->proxy_bound);
		w->proxy_bound = NULL;
	}
	w->draining = true;
	srv__events_worker_drain(w); /* live event streams end: their clients reconnect */
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

/* Binds one listening socket (port "0": any), with SO_REUSEPORT when reuse_port. */
static int bind_listener(const char *host, const char *port, bool reuse_port, int *out_fd,
                         int *out_port)
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
	if (reuse_port)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* accepted sockets inherit it: small responses leave at once instead of waiting for
	 * the peer's delayed ACK (about 40 ms per keep-alive request otherwise) */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "cannot listen on %s:%s: %s%s", host, port,
		                strerror(errno),
		                errno == EADDRINUSE ? " (another process listens there: is another "
		                                      "server running?)"
		                                    : "");
		goto out;
	}
	if (listen(fd, 1024) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "listen: %s", strerror(errno));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "getsockname: %s", strerror(errno));
		goto out;
	}
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

/* The HTTP settings of one of a worker's listeners. */
static void http_settings(srv *s, srv_worker *w, struct evhttp *http)
{
	evhttp_set_gencb(http, srv__on_request, w);
	evhttp_set_max_headers_size(http, (ev_ssize_t)s->o.max_header_bytes);
	evhttp_set_max_body_size(http, (ev_ssize_t)s->o.max_body_bytes);
	struct timeval tv = {.tv_sec = s->o.timeout_ms / 1000,
	                     .tv_usec = (s->o.timeout_ms % 1000) * 1000};
	evhttp_set_timeout_tv(http, &tv);
	/* PATCH reaches the router so that it can answer 405 with Allow */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                     EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
}

/* The worker's plain-HTTP listener on the proxy socket (its own descriptor of it). */
static int proxy_setup(srv *s, srv_worker *w)
{
	int fd = fcntl(s->proxy_fd, F_DUPFD_CLOEXEC, 0);
	w->proxy_http = fd >= 0 ? evhttp_new(w->base) : NULL;
	if (!w->proxy_http) {
		if (fd >= 0)
			close(fd);
		return pq_err_set(PQ_ERR_IO, "worker %d: proxy listener", w->index);
	}
	http_settings(s, w, w->proxy_http);
	w->proxy_bound = evhttp_accept_socket_with_handle(w->proxy_http, fd);
	if (!w->proxy_bound) {
		close(fd);
		return pq_err_set(PQ_ERR_IO, "worker %d: accepting on the proxy listener",
		                  w->index);
	}
	return PQ_OK;
}

/* The worker's loop, HTTP settings and listeners (w->fd, bound already; the proxy's). */
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
	http_settings(s, w, w->http);
	rc = srv__events_worker_init(w);
	if (rc == PQ_OK)
		rc = srv__alive_init(w);
	if (rc != PQ_OK)
		return rc;
	w->bound = evhttp_accept_socket_with_handle(w->http, w->fd);
	if (!w->bound)
		return pq_err_set(PQ_ERR_IO, "worker %d: accepting", w->index);
	return s->proxy_fd >= 0 ? proxy_setup(s, w) : PQ_OK;
}

/* The workers' listeners: one socket bound to the configured port (0: any) that every
 * worker accepts on (each through its own descriptor of it); with reuse_port, one
 * SO_REUSEPORT socket per worker instead, the others bound to the port the first got. */
static int start_workers(srv *s)
{
	s->nworkers = s->o.workers;
	s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
	if (!s->workers)
		return pq_err_set(PQ_ERR_NOMEM, "workers");
	for (int i = 0; i < s->nworkers; i++) {
		s->workers[i].s = s;
		s->workers[i].index = i;
		s->workers[i].fd = -1;
	}
	for (int i = 0; i < s->nworkers; i++) {
		srv_worker *w = &s->workers[i];
		char port[16];
		snprintf(port, sizeof(port), "%d", s->port);
		int rc = PQ_OK;
		if (i == 0 || s->o.reuse_port)
			rc = bind_listener(s->listen_host, i == 0 ? s->listen_port : port,
			                   s->o.reuse_port, &w->fd, &s->port);
		else if ((w->fd = fcntl(s->workers[0].fd, F_DUPFD_CLOEXEC, 0)) < 0)
			rc = pq_err_set(PQ_ERR_IO, "worker %d: dup: %s", i, strerror(errno));
		if (rc == PQ_OK)
			rc = worker_setup(s, w);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* ---- start-up checks ------------------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" into listen_host and listen_port. */
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

/* A data directory others may enter (made by an older server, or by hand) made owner-only:
 * it holds the store, the packages and the download-token key. Not fatal when it fails (a
 * directory owned by someone else): the warning says so. */
static void tighten_data_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0 || (st.st_mode & 077) == 0)
		return;
	if (chmod(dir, st.st_mode & PQ_PRIVATE_DIR_MODE) == 0)
		pq_log(PQ_LOG_WARN, LOGC,
		       "data directory %s was open to others (mode %03o): now %03o", dir,
		       (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & PQ_PRIVATE_DIR_MODE));
	else
		pq_log(PQ_LOG_WARN, LOGC, "data directory %s is open to others (mode %03o): %s",
		       dir, (unsigned)(st.st_mode & 0777), strerror(errno));
}

/* The data directory (owner-only) and its files/ and uploads/, writable. */
static int check_data_dir(const char *dir)
{
	static const char *const subdirs[] = {"files", "uploads", REL_TMP_DIR};
	char p[PATH_MAX];
	int rc = pq_mkdirs(dir, PQ_PRIVATE_DIR_MODE);
	if (rc == PQ_OK)
		tighten_data_dir(dir);
	for (size_t i = 0; rc == PQ_OK && i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		rc = pq_path_join(p, sizeof(p), dir, subdirs[i]);
		if (rc == PQ_OK)
			rc = pq_mkdirs(p, PQ_PRIVATE_DIR_MODE);
	}
	if (rc == PQ_OK && access(dir, W_OK) != 0)
		rc = pq_err_set(PQ_ERR_IO, "data directory %s is not writable", dir);
	if (rc == PQ_OK && pq_path_join(p, sizeof(p), dir, REL_TMP_DIR) == PQ_OK) {
		int n = rel_tmp_sweep(p, time(NULL)); /* a crash's leftovers */
		if (n > 0)
			pq_log(PQ_LOG_INFO, "server", "removed %d stale files from %s", n, p);
	}
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "data directory");
}

/* A TLS context for o: the profile's groups, the certificate and key, client certificates. */
static int make_tls(const srv_options *o, SSL_CTX **out)
{
	tls_opts to = {.profile = o->profile,
	               .extra_groups = o->extra_groups,
	               .cert_file = o->cert_file,
	               .key_file = o->key_file,
	               .ca_file = o->ca_file,
	               .require_client_cert = o->require_client_cert,
	               .request_client_cert = o->ca_file != NULL};
	int rc = tls_server_ctx_new(&to, out);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "TLS");
}

/* The store is reachable and migrated (by this open). */
static int check_store(const store_config *sc)
{
	store *probe = NULL;
	int rc = store_open(sc, &probe);
	if (rc == PQ_OK)
		rc = store_ping(probe);
	store_close(probe);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "store");
}

/* Bundle records of an older server's data directory, moved into the store. */
static int import_bundles(const srv_options *o)
{
	int n = 0;
	int rc = bnd_import_files(o->data_dir, &o->store, &n);
	if (n > 0)
		pq_log(PQ_LOG_INFO, LOGC, "moved %d bundle records into the store", n);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "bundles");
}

static int write_port_file(const srv *s)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d\n", s->port);
	return pq_file_write_atomic(s->o.port_file, buf, (size_t)n, 0644, true);
}

static void use_pthreads(void)
{
	if (evthread_use_pthreads() != 0)
		pq_log(PQ_LOG_ERROR, LOGC, "libevent: no pthreads locking");
}

int srv_new(const srv_options *o, srv **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	*out = NULL;
	if (o->workers < 1 || o->workers > WORKERS_MAX)
		return pq_err_set(PQ_ERR_INVAL, "workers must be 1..%d", WORKERS_MAX);
	srv *s = calloc(1, sizeof(*s));
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "server");
	s->o = *o;
	if (s->o.session_ttl_ms <= 0)
		s->o.session_ttl_ms = 12 * 3600 * 1000LL;
	s->stop_fd = -1;
	s->reload_fd = -1;
	s->proxy_fd = -1;
	pthread_mutex_init(&s->ssl_lock, NULL);
	pthread_mutex_init(&s->files_lock, NULL);
	s->files_lock_fd = -1;
	atomic_store(&s->access_log, o->access_log);
	srv__metrics_start(s);
	pthread_once(&once, use_pthreads);
	/* everything checked before serving, each failure named: the data directory, the
	 * token key, the TLS keys, the store, the port; then the Uptane keys and the
	 * control plane */
	int rc = srv__routes_check();
	if (rc == PQ_OK)
		rc = srv__route_hists_new(s);
	if (rc == PQ_OK)
		rc = split_listen(s);
	if (rc != PQ_OK)
		goto fail;
	rc = check_data_dir(o->data_dir);
	if (rc != PQ_OK)
		goto fail;
	rc = srv__token_key_load(s);
	if (rc != PQ_OK)
		goto fail;
	rc = make_tls(&s->o, &s->ssl);
	if (rc != PQ_OK)
		goto fail;
	rc = check_store(&o->store);
	if (rc == PQ_OK)
		rc = import_bundles(o);
	if (rc == PQ_OK)
		rc = srv__proxy_open(s);
	if (rc != PQ_OK)
		goto fail;
	rc = rl_new(o->rate_global, o->burst_global, o->rate_client, o->burst_client, &s->rl);
	if (rc != PQ_OK)
		goto fail;
	rc = srv__events_new(s);
	if (rc == PQ_OK && !o->console_off)
		rc = srv_assets_load(o->console_dir, &s->assets);
	if (rc != PQ_OK)
		goto fail;
	s->watchdog_ms = (int64_t)(pq_notify_watchdog_usec() / 1000);
	rc = start_workers(s);
	if (rc != PQ_OK)
		goto fail;
	rc = usrv_new(o, &s->usrv);
	if (rc != PQ_OK)
		goto fail;
	rc = ctl_new(s, &s->ctl);
	if (rc != PQ_OK)
		goto fail;
	rc = rel_jobs_new(s, &s->jobs);
	if (rc != PQ_OK)
		goto fail;
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	s->reload_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0 || s->reload_fd < 0) {
		rc = pq_err_set(PQ_ERR_IO, "eventfd: %s", strerror(errno));
		goto fail;
	}
	rc = o->port_file ? write_port_file(s) : PQ_OK;
	if (rc != PQ_OK)
		goto fail;
	*out = s;
	return PQ_OK;
fail:
	srv_free(s);
	return rc;
}

/* ---- running and stopping -------------------------------------------------------------------- */

/* Keeps copies of the reloaded paths (s->o points at them from then on): the program may
 * free its configuration once the reload returned. Old copies stay until srv_free (a worker
 * may still read one). */
static int keep_paths(srv *s, srv_reload_opts *r)
{
	const char **p[] = {&r->cert_file, &r->key_file, &r->ca_file};
	char **grown = realloc(s->kept_paths, (s->n_kept_paths + 3) * sizeof(char *));
	if (!grown)
		return pq_err_set(PQ_ERR_NOMEM, "reload");
	s->kept_paths = grown;
	for (size_t i = 0; i < 3; i++) {
		if (!*p[i])
			continue;
		char *c = strdup(*p[i]);
		if (!c)
			return pq_err_set(PQ_ERR_NOMEM, "reload");
		s->kept_paths[s->n_kept_paths++] = c;
		*p[i] = c;
	}
	return PQ_OK;
}

/* What a reload needs built before anything changes: the TLS context and, with a proxy
 * listener, the CA store for forwarded certificates. */
static int reload_build(srv *s, const srv_reload_opts *r, SSL_CTX **ctx, X509_STORE **ca)
{
	srv_options o = s->o;
	o.cert_file = r->cert_file;
	o.key_file = r->key_file;
	o.ca_file = r->ca_file;
	int rc = make_tls(&o, ctx);
	if (rc == PQ_OK && s->proxy_fd >= 0)
		rc = srv__proxy_ca(r->ca_file, ca);
	return rc;
}

/* A reload (srv_reload): what srv_options.reload reads, applied only when all of it loads
 * (the TLS context and proxy CA built and the log file opened first; the log switches at
 * that point, the rest after). */
static void reload(srv *s)
{
	srv_reload_opts r = {0};
	SSL_CTX *ctx = NULL;
	X509_STORE *ca = NULL;
	int rc = s->o.reload ? s->o.reload(s->o.reload_user, &r)
	                     : pq_err_set(PQ_ERR_UNSUPPORTED, "no configuration to reload");
	if (rc == PQ_OK)
		rc = reload_build(s, &r, &ctx, &ca);
	if (rc == PQ_OK)
		rc = keep_paths(s, &r);
	if (rc == PQ_OK)
		rc = pq_logfile_open(r.log_file, (pq_log_format)r.log_format);
	if (rc != PQ_OK) {
		SSL_CTX_free(ctx);
		X509_STORE_free(ca);
		pq_log(PQ_LOG_ERROR, LOGC, "reload failed, nothing changed: %s", pq_err_detail());
		return;
	}
	pq_log_set_level(r.log_level);
	if (rl_set(s->rl, r.rate_global, r.burst_global, r.rate_client, r.burst_client) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "reload: rate limits: %s", pq_err_detail());
	pthread_mutex_lock(&s->ssl_lock);
	SSL_CTX *old = s->ssl;
	X509_STORE *old_ca = s->proxy_ca;
	s->ssl = ctx;
	if (s->proxy_fd >= 0)
		s->proxy_ca = ca;
	s->o.cert_file = r.cert_file;
	s->o.key_file = r.key_file;
	s->o.ca_file = r.ca_file;
	pthread_mutex_unlock(&s->ssl_lock);
	SSL_CTX_free(old); /* connections made with it hold their own reference */
	if (s->proxy_fd >= 0)
		X509_STORE_free(old_ca); /* a verification in progress holds its own reference */
	atomic_store(&s->access_log, r.access_log);
	pq_log(PQ_LOG_INFO, LOGC,
	       "reloaded: TLS certificate %s, rate limits %.0f/s global, %.0f/s per client, "
	       "access log %s, log level %s",
	       r.cert_file, r.rate_global, r.rate_client, r.access_log ? "on" : "off",
	       pq_log_level_name(pq_log_get_level()));
}

/* Blocks until srv_stop, reloading at each srv_reload; pings the watchdog (watchdog.c). */
static void wait_for_stop(srv *s)
{
	struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN},
	                      {.fd = s->reload_fd, .events = POLLIN}};
	uint64_t v;
	for (;;) {
		int wd = srv__watchdog_wait(s), wait = wd < 0 || wd > 1000 ? 1000 : wd;
		int n = poll(p, 2, wait);
		srv__watchdog_tick(s);
		pq_logfile_flush(); /* the access log's buffered lines, once a second */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			pq_log(PQ_LOG_ERROR, LOGC, "poll: %s", strerror(errno));
			return;
		}
		if (p[0].revents)
			return;
		if (p[1].revents && read(s->reload_fd, &v, sizeof(v)) == sizeof(v))
			reload(s);
	}
}

int srv_run(srv *s)
{
	for (int i = 0; i < s->nworkers; i++) {
		if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
			srv_stop(s);
			break;
		}
		s->workers[i].started = true;
	}
	if (ctl_start(s->ctl) != PQ_OK || rel_jobs_start(s->jobs) != PQ_OK) {
		pq_log(PQ_LOG_ERROR, LOGC, "%s", pq_err_detail());
		srv_stop(s);
	}
	pq_log(PQ_LOG_INFO, LOGC, "listening on %s:%d (TLS 1.3, profile %d %s, %d workers)",
	       s->listen_host, s->port, s->o.profile->id, s->o.profile->name, s->nworkers);
	srv__notify_ready(s);
	wait_for_stop(s);
	srv__notify_stopping();
	pq_logfile_flush();
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
	rel_jobs_free(s->jobs); /* a job in progress is queued again at the next start */
	s->jobs = NULL;
	pq_log(PQ_LOG_INFO, LOGC, "stopped");
	return PQ_OK;
}

void srv_stop(srv *s)
{
	uint64_t one = 1;
	if (s && s->stop_fd >= 0)
		(void)!write(s->stop_fd, &one, sizeof(one));
}

void srv_reload(srv *s)
{
	uint64_t one = 1;
	if (s && s->reload_fd >= 0)
		(void)!write(s->reload_fd, &one, sizeof(one));
}

static void worker_free(srv_worker *w)
{
	if (w->started) {
		event_active(w->stop_ev, EV_READ, 0);
		pthread_join(w->thread, NULL);
	}
	if (w->drain_ev)
		event_free(w->drain_ev);
	if (w->stop_ev)
		event_free(w->stop_ev);
	srv__alive_free(w);
	srv__events_worker_free(w);
	if (w->proxy_http)
		evhttp_free(w->proxy_http);
	if (w->http)
		evhttp_free(w->http); /* closes the bound socket and connections */
	else if (w->fd >= 0)
		close(w->fd);
	if (w->base)
		event_base_free(w->base);
	store_close(w->db);
}

void srv_free(srv *s)
{
	if (!s)
		return;
	ctl_free(s->ctl);
	s->ctl = NULL;
	rel_jobs_free(s->jobs);
	s->jobs = NULL;
	usrv_free(s->usrv);
	s->usrv = NULL;
	for (int i = 0; s->workers && i < s->nworkers; i++)
		worker_free(&s->workers[i]);
	free(s->workers);
	srv__events_free(s);
	srv_assets_free(s->assets);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->reload_fd >= 0)
		close(s->reload_fd);
	SSL_CTX_free(s->ssl);
	srv__proxy_free(s);
	for (size_t i = 0; i < s->n_kept_paths; i++)
		free(s->kept_paths[i]);
	free(s->kept_paths);
	pthread_mutex_destroy(&s->ssl_lock);
	pthread_mutex_destroy(&s->files_lock);
	if (s->files_lock_fd >= 0)
		close(s->files_lock_fd);
	rl_free(s->rl);
	free(s->listen_host);
	free(s->listen_port);
	OPENSSL_cleanse(s->token_key, sizeof(s->token_key));
	srv__metrics_stop(s);
	free(s);
}
