/* mqtt.c: the server's MQTT bridge: libmosquitto driven from a libevent loop (socket events
 * call mosquitto_loop_read/_write, a timer calls mosquitto_loop_misc), TLS 1.3 from the PQC
 * profile through our own SSL_CTX, reconnection with exponential back-off and jitter, and
 * the server's (optionally shared) subscriptions.
 *
 * libmosquitto owns the socket: it may close it inside any loop call. After every call the
 * bridge compares mosquitto_socket() with the descriptor its events watch (sync_io): a
 * closed socket ends the connection (events freed, retry scheduled); a new one gets new
 * events. Reconnecting is only ever started by the retry timer, when no event refers to
 * the old descriptor any more, so a reused descriptor number cannot confuse the loop. */
#include "server/mqtt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "tls/tls.h"

#define LOG_TAG            "mqtt"
#define MISC_INTERVAL_MS   500
#define HANDSHAKE_POLL_MS  2
#define SUB_COUNT          7
#define SHARED_GROUP_MAX   64
#define CONNECT_TIMEOUT_MS 10000 /* TCP + TLS + CONNACK */

static const char *const sub_suffixes[SUB_COUNT] = {
    "wake_up", "vci", "response", "ota/status", "presence", "diag/response", "telemetry"};

typedef enum {
	ST_WAITING,    /* no socket; the retry timer is pending (or we are closing) */
	ST_CONNECTING, /* TCP, TLS and CONNECT in progress */
	ST_CONNECTED,  /* CONNACK success */
} mq_state;

struct mq_bridge {
	struct event_base *base;
	struct mosquitto *mosq;
	struct event *ev_read, *ev_write; /* on fd, recreated per connection */
	struct event *ev_misc;            /* persistent, loop_misc (keep-alive) */
	struct event *ev_retry;           /* one-shot, the next connection attempt */
	struct event *ev_poll;            /* one-shot, paces writes during the TLS handshake */
	int fd;
	mq_state state;
	bool connected;   /* read by other threads (mq_is_connected): atomic access */
	bool tcp_up;      /* the socket became writable once: TCP connected */
	bool started;     /* mosquitto_connect_async was called once */
	bool reported_up; /* on_conn(true) was delivered for this connection */
	bool refused;     /* the broker answered CONNACK with a failure */
	bool closing;
	int sub_mid;
	int attempt; /* failures since the last successful connection */
	int last_rc; /* libmosquitto's reason for the last disconnect */
	int64_t attempt_started_ms;
	char last_err[256];

	char *host;
	int port, keepalive_s, backoff_min_ms, backoff_max_ms;
	char client_id[64];
	char *subs[SUB_COUNT];

	mq_message_fn on_msg;
	mq_connect_fn on_conn;
	void *user;
	mq_stats st; /* updated with __atomic builtins */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
	lib_rc = mosquitto_lib_init();
}

#define STAT_INC(b, f) __atomic_fetch_add(&(b)->st.f, 1, __ATOMIC_RELAXED)

static void sync_io(mq_bridge *b);
static void start_connect(mq_bridge *b);

/* ---- connection lifecycle -------------------------------------------------------------- */

static void free_io(mq_bridge *b)
{
	if (b->ev_read)
		event_free(b->ev_read);
	if (b->ev_write)
		event_free(b->ev_write);
	b->ev_read = b->ev_write = NULL;
	if (b->ev_poll)
		evtimer_del(b->ev_poll);
	b->fd = -1;
}

static int backoff_delay_ms(mq_bridge *b)
{
	int64_t d = b->backoff_min_ms;
	for (int i = 0; i < b->attempt && d < b->backoff_max_ms; i++)
		d *= 2;
	if (d > b->backoff_max_ms)
		d = b->backoff_max_ms;
	/* jitter: uniformly in [d/2, d], so a fleet of servers does not reconnect in step */
	uint32_t r = 0;
	if (pq_random(&r, sizeof(r)) != PQ_OK)
		r = (uint32_t)b->attempt * 2654435761u;
	int64_t half = d / 2;
	return (int)(d - half + (half > 0 ? (int64_t)(r % (uint32_t)(half + 1)) : 0));
}

static void schedule_retry(mq_bridge *b)
{
	b->state = ST_WAITING;
	if (b->closing)
		return;
	int ms = backoff_delay_ms(b);
	if (b->attempt < 30)
		b->attempt++;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(b->ev_retry, &tv);
	pq_log(PQ_LOG_DEBUG, LOG_TAG, "next connection attempt to %s:%d in %d ms", b->host, b->port,
	       ms);
}

/* The socket is gone: the connection (or the attempt) ended. */
static void lost(mq_bridge *b)
{
	free_io(b);
	__atomic_store_n(&b->connected, false, __ATOMIC_RELAXED);
	if (b->state == ST_CONNECTED) {
		STAT_INC(b, disconnects);
		pq_log(PQ_LOG_WARN, LOG_TAG, "connection to %s:%d lost: %s%s%s", b->host, b->port,
		       mosquitto_strerror(b->last_rc), b->last_err[0] ? "; " : "", b->last_err);
		b->attempt = 0;
	} else if (b->state == ST_CONNECTING) {
		STAT_INC(b, connect_failures);
		pq_log(PQ_LOG_WARN, LOG_TAG, "connecting to %s:%d failed%s: %s", b->host, b->port,
		       b->refused ? " (refused by the broker)" : "",
		       b->last_err[0] ? b->last_err : "the connection was closed");
	}
	bool was_up = b->reported_up;
	b->reported_up = false;
	b->last_err[0] = '\0';
	b->last_rc = 0;
	schedule_retry(b);
	if (was_up && b->on_conn)
		b->on_conn(b->user, false);
}

/* Gives up the current attempt. libmosquitto treats a socket error during its TLS connect
 * as "try again later" (SSL_ERROR_SYSCALL), so a refused TCP connect would otherwise stay
 * pending for ever: the bridge drops its events here, and the next mosquitto_reconnect_async
 * closes the old socket. */
static void abort_attempt(mq_bridge *b, const char *why)
{
	snprintf(b->last_err, sizeof(b->last_err), "%s", why);
	lost(b);
}

/* While connecting: is the TCP connection (still) there? true = go on. libmosquitto may
 * already have consumed the socket error (its first SSL_connect write), so a refused or reset
 * connection shows as a socket without a peer. */
static bool conn_check(mq_bridge *b)
{
	if (b->state != ST_CONNECTING || b->fd < 0)
		return true;
	int err = 0;
	socklen_t l = sizeof(err);
	if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
		err = errno;
	if (!err) {
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		if (getpeername(b->fd, (struct sockaddr *)&peer, &pl) != 0)
			err = errno == ENOTCONN ? ECONNREFUSED : errno;
	}
	if (err) {
		abort_attempt(b, strerror(err));
		return false;
	}
	return true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	mq_bridge *b = arg;
	(void)fd;
	(void)what;
	if (!conn_check(b))
		return;
	mosquitto_loop_read(b->mosq, 1);
	/* during the handshake a read may complete TLS: flush the queued CONNECT at once */
	if (b->state != ST_CONNECTED && mosquitto_socket(b->mosq) >= 0)
		mosquitto_loop_write(b->mosq, 1);
	sync_io(b);
}

/* Writable (or paced during the handshake): before CONNACK, drive TLS with a read call too
 * (libmosquitto continues its SSL_connect from loop_read), then write what is queued. */
static void drive_write(mq_bridge *b)
{
	if (b->state != ST_CONNECTED)
		mosquitto_loop_read(b->mosq, 1);
	if (mosquitto_socket(b->mosq) >= 0)
		mosquitto_loop_write(b->mosq, 1);
	sync_io(b);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	mq_bridge *b = arg;
	(void)fd;
	(void)what;
	if (!conn_check(b))
		return;
	b->tcp_up = true;
	drive_write(b);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drive_write(arg);
}

static void on_misc(evutil_socket_t fd, short what, void *arg)
{
	mq_bridge *b = arg;
	(void)fd;
	(void)what;
	if (b->state == ST_CONNECTING &&
	    pq_mono_ms() - b->attempt_started_ms > CONNECT_TIMEOUT_MS) {
		abort_attempt(b, "no answer within 10 s");
		return;
	}
	if (b->fd >= 0) {
		mosquitto_loop_misc(b->mosq);
		sync_io(b);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

/* Brings the events in line with libmosquitto's socket and wishes. */
static void sync_io(mq_bridge *b)
{
	int fd = mosquitto_socket(b->mosq);
	if (fd < 0) {
		if (b->state != ST_WAITING)
			lost(b);
		return;
	}
	if (fd != b->fd) {
		free_io(b);
		b->ev_read = event_new(b->base, fd, EV_READ | EV_PERSIST, on_read, b);
		b->ev_write = event_new(b->base, fd, EV_WRITE, on_write, b);
		if (!b->ev_read || !b->ev_write || event_add(b->ev_read, NULL) != 0) {
			pq_log(PQ_LOG_ERROR, LOG_TAG, "cannot watch the MQTT socket");
			free_io(b);
			mosquitto_disconnect(b->mosq);
			return; /* misc timer notices nothing; retry from here */
		}
		b->fd = fd;
	}
	bool want = mosquitto_want_write(b->mosq) || !b->tcp_up;
	if (!want) {
		event_del(b->ev_write);
	} else if (b->state == ST_CONNECTED || !b->tcp_up) {
		event_add(b->ev_write, NULL);
	} else if (!evtimer_pending(b->ev_poll, NULL)) {
		/* In the TLS handshake libmosquitto keeps CONNECT queued but writes nothing until
		 * the broker answers: a writable socket would spin, so poll gently instead. */
		struct timeval tv = {0, HANDSHAKE_POLL_MS * 1000};
		event_del(b->ev_write);
		evtimer_add(b->ev_poll, &tv);
	}
}

static void start_connect(mq_bridge *b)
{
	if (b->closing)
		return;
	b->state = ST_CONNECTING;
	b->attempt_started_ms = pq_mono_ms();
	b->tcp_up = false;
	b->refused = false;
	b->last_err[0] = '\0';
	int rc = b->started ? mosquitto_reconnect_async(b->mosq)
	                    : mosquitto_connect_async(b->mosq, b->host, b->port, b->keepalive_s);
	b->started = true;
	pq_log(PQ_LOG_DEBUG, LOG_TAG, "connection attempt to %s:%d: %s, socket %d", b->host,
	       b->port, mosquitto_strerror(rc), mosquitto_socket(b->mosq));
	if (rc != MOSQ_ERR_SUCCESS) {
		if (!b->last_err[0])
			snprintf(b->last_err, sizeof(b->last_err), "%s",
			         rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
		if (mosquitto_socket(b->mosq) < 0) {
			lost(b);
			return;
		}
	}
	sync_io(b);
}

/* ---- libmosquitto callbacks ---------------------------------------------------------- */

static void cb_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
	mq_bridge *b = obj;
	(void)m;
	(void)flags;
	(void)props;
	if (rc != 0) {
		b->refused = true;
		snprintf(b->last_err, sizeof(b->last_err), "CONNACK: %s",
		         mosquitto_reason_string(rc));
		return;
	}
	b->state = ST_CONNECTED;
	__atomic_store_n(&b->connected, true, __ATOMIC_RELAXED);
	STAT_INC(b, connects);
	b->attempt = 0;
	tls_info ti;
	memset(&ti, 0, sizeof(ti));
	SSL *ssl = mosquitto_ssl_get(b->mosq);
	if (ssl)
		tls_conn_info(ssl, &ti);
	pq_log(PQ_LOG_INFO, LOG_TAG, "connected to %s:%d as %s (%s, %s, broker %s)", b->host,
	       b->port, b->client_id, ti.protocol[0] ? ti.protocol : "?",
	       ti.group[0] ? ti.group : "?", ti.peer_cn[0] ? ti.peer_cn : "?");
	int src =
	    mosquitto_subscribe_multiple(b->mosq, &b->sub_mid, SUB_COUNT, b->subs, 1, 0, NULL);
	if (src != MOSQ_ERR_SUCCESS)
		pq_log(PQ_LOG_ERROR, LOG_TAG, "subscribing: %s", mosquitto_strerror(src));
}

static void cb_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
	mq_bridge *b = obj;
	(void)m;
	(void)props;
	if (mid != b->sub_mid)
		return;
	int bad = 0;
	for (int i = 0; i < count; i++) {
		if (granted[i] >= 0x80) {
			bad++;
			pq_log(PQ_LOG_ERROR, LOG_TAG, "the broker refused the subscription %s: %s",
			       i < SUB_COUNT ? b->subs[i] : "?",
			       mosquitto_reason_string(granted[i]));
		}
	}
	pq_log(PQ_LOG_INFO, LOG_TAG, "subscribed to %d topics%s%s", count - bad,
	       strncmp(b->subs[0], "$share/", 7) == 0 ? " as shared group member: " : "",
	       strncmp(b->subs[0], "$share/", 7) == 0 ? b->subs[0] : "");
	if (!b->reported_up) {
		b->reported_up = true;
		if (b->on_conn)
			b->on_conn(b->user, true);
	}
}

static void cb_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	mq_bridge *b = obj;
	(void)m;
	(void)props;
	b->last_rc = rc;
}

static void cb_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	mq_bridge *b = obj;
	(void)m;
	(void)props;
	if (msg->payloadlen < 0 || (size_t)msg->payloadlen > MQ_MAX_PAYLOAD) {
		STAT_INC(b, rejected);
		pq_log(PQ_LOG_WARN, LOG_TAG, "dropped a %d-byte message on %s (limit %u)",
		       msg->payloadlen, msg->topic, MQ_MAX_PAYLOAD);
		return;
	}
	STAT_INC(b, received);
	if (b->on_msg)
		b->on_msg(b->user, msg->topic, msg->payload ? msg->payload : "",
		          (size_t)msg->payloadlen, msg->qos, msg->retain);
}

static void cb_log(struct mosquitto *m, void *obj, int level, const char *str)
{
	mq_bridge *b = obj;
	(void)m;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) {
		/* keep the first error of an attempt (OpenSSL's reason comes first) */
		if (!b->last_err[0])
			snprintf(b->last_err, sizeof(b->last_err), "%s", str);
		pq_log(PQ_LOG_DEBUG, LOG_TAG, "libmosquitto: %s", str);
	}
}

/* ---- public API ---------------------------------------------------------------------- */

static int check_options(const mq_options *o)
{
	if (!o || !o->host || !*o->host)
		return pq_err_set(PQ_ERR_INVAL, "MQTT: no broker host");
	if (o->port < 1 || o->port > 65535)
		return pq_err_set(PQ_ERR_INVAL, "MQTT: port %d out of 1..65535", o->port);
	if (!o->profile)
		return pq_err_set(PQ_ERR_INVAL, "MQTT: no TLS profile");
	if (!o->ca_file || !o->cert_file || !o->key_file)
		return pq_err_set(PQ_ERR_INVAL,
		                  "MQTT: ca_file, cert_file and key_file are required");
	if (o->keepalive_s != 0 && (o->keepalive_s < 5 || o->keepalive_s > 65535))
		return pq_err_set(PQ_ERR_INVAL, "MQTT: keepalive %d s out of 5..65535",
		                  o->keepalive_s);
	int mn = o->backoff_min_ms ? o->backoff_min_ms : 250;
	int mx = o->backoff_max_ms ? o->backoff_max_ms : 30000;
	if (mn < 1 || mx < mn || mx > 3600 * 1000)
		return pq_err_set(PQ_ERR_INVAL,
		                  "MQTT: back-off %d..%d ms is not 1 <= min <= max <= 1 h", mn, mx);
	if (o->client_id && (!*o->client_id || strlen(o->client_id) > 63))
		return pq_err_set(PQ_ERR_INVAL, "MQTT: client id must be 1..63 characters");
	const char *g = o->shared_group;
	if (g && *g && (strlen(g) > SHARED_GROUP_MAX || strpbrk(g, "/+#")))
		return pq_err_set(PQ_ERR_INVAL,
		                  "MQTT: shared group '%s' must be 1..%d characters without / + #",
		                  g, SHARED_GROUP_MAX);
	return PQ_OK;
}

/* Our SSL_CTX: the profile's groups and scheme, our certificate, the CA, and the broker's
 * name or address checked against its certificate (libmosquitto does not check it when it is
 * handed a context without its defaults). */
static int make_ctx(const mq_options *o, SSL_CTX **out)
{
	tls_opts t = {
	    .profile = o->profile,
	    .cert_file = o->cert_file,
	    .key_file = o->key_file,
	    .ca_file = o->ca_file,
	    .verify_peer = true,
	};
	SSL_CTX *ctx = NULL;
	int rc = tls_client_ctx_new(&t, &ctx);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "MQTT TLS");
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	unsigned char addr[16];
	bool ip = inet_pton(AF_INET, o->host, addr) == 1 || inet_pton(AF_INET6, o->host, addr) == 1;
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, o->host)
	        : X509_VERIFY_PARAM_set1_host(vp, o->host, 0)) != 1) {
		SSL_CTX_free(ctx);
		return pq_err_ssl(PQ_ERR_INVAL, "MQTT TLS: broker name '%s'", o->host);
	}
	*out = ctx;
	return PQ_OK;
}

/* The client id (o->client_id, else "pqota-server-<random hex>") and the subscriptions,
 * shared through $share/<group>/ when o->shared_group is set. */
static int bridge_names(mq_bridge *b, const mq_options *o)
{
	if (o->client_id) {
		snprintf(b->client_id, sizeof(b->client_id), "%s", o->client_id);
	} else {
		uint8_t r[8];
		char hex[17];
		int rc = pq_random(r, sizeof(r));
		if (rc != PQ_OK)
			return rc;
		pq_hex_encode(r, sizeof(r), hex);
		snprintf(b->client_id, sizeof(b->client_id), "pqota-server-%s", hex);
	}
	bool shared = o->shared_group && *o->shared_group;
	for (int i = 0; i < SUB_COUNT; i++) {
		size_t n = strlen(sub_suffixes[i]) + (shared ? strlen(o->shared_group) : 0) + 32;
		b->subs[i] = malloc(n);
		if (!b->subs[i])
			return pq_err_set(PQ_ERR_NOMEM, "MQTT bridge");
		snprintf(b->subs[i], n, "%s%s%soem/+/%s", shared ? "$share/" : "",
		         shared ? o->shared_group : "", shared ? "/" : "", sub_suffixes[i]);
	}
	return PQ_OK;
}

/* The libmosquitto client: MQTT 5 over our TLS context (it takes its own reference),
 * TCP_NODELAY, the callbacks. */
static int bridge_client(mq_bridge *b, SSL_CTX *ctx)
{
	b->mosq = mosquitto_new(b->client_id, true, b);
	if (!b->mosq)
		return pq_err_set(PQ_ERR_NOMEM, "mosquitto_new");
	int mrc = mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_int_option(b->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_void_option(b->mosq, MOSQ_OPT_SSL_CTX, ctx); /* takes a reference */
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_tls_insecure_set(b->mosq, false);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_int_option(b->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	if (mrc != MOSQ_ERR_SUCCESS)
		return pq_err_set(PQ_ERR_UNSUPPORTED, "libmosquitto options: %s",
		                  mosquitto_strerror(mrc));
	mosquitto_connect_v5_callback_set(b->mosq, cb_connect);
	mosquitto_disconnect_v5_callback_set(b->mosq, cb_disconnect);
	mosquitto_subscribe_v5_callback_set(b->mosq, cb_subscribe);
	mosquitto_message_v5_callback_set(b->mosq, cb_message);
	mosquitto_log_callback_set(b->mosq, cb_log);
	return PQ_OK;
}

/* The loop's events: the misc timer (running from now on), retry and handshake poll. */
static int bridge_events(mq_bridge *b)
{
	struct timeval misc = {0, MISC_INTERVAL_MS * 1000};
	b->ev_misc = event_new(b->base, -1, EV_PERSIST, on_misc, b);
	b->ev_retry = evtimer_new(b->base, on_retry, b);
	b->ev_poll = evtimer_new(b->base, on_poll, b);
	if (!b->ev_misc || !b->ev_retry || !b->ev_poll || event_add(b->ev_misc, &misc) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "MQTT bridge events");
	return PQ_OK;
}

int mq_new(struct event_base *base, const mq_options *o, mq_message_fn on_msg,
           mq_connect_fn on_conn, void *user, mq_bridge **out)
{
	mq_bridge *b = NULL;
	SSL_CTX *ctx = NULL;
	int rc;

	*out = NULL;
	if (!base)
		return pq_err_set(PQ_ERR_INVAL, "MQTT: no event base");
	rc = check_options(o);
	if (rc != PQ_OK)
		return rc;
	pthread_once(&lib_once, lib_init);
	if (lib_rc != MOSQ_ERR_SUCCESS)
		return pq_err_set(PQ_ERR_UNSUPPORTED, "mosquitto_lib_init: %s",
		                  mosquitto_strerror(lib_rc));
	rc = make_ctx(o, &ctx);
	if (rc != PQ_OK)
		return rc;

	b = calloc(1, sizeof(*b));
	if (!b) {
		rc = pq_err_set(PQ_ERR_NOMEM, "MQTT bridge");
		goto fail;
	}
	b->base = base;
	b->fd = -1;
	b->on_msg = on_msg;
	b->on_conn = on_conn;
	b->user = user;
	b->port = o->port;
	b->keepalive_s = o->keepalive_s ? o->keepalive_s : 30;
	b->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 250;
	b->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 30000;
	b->host = strdup(o->host);
	rc = b->host ? bridge_names(b, o) : pq_err_set(PQ_ERR_NOMEM, "MQTT bridge");
	if (rc != PQ_OK)
		goto fail;
	rc = bridge_client(b, ctx);
	SSL_CTX_free(ctx); /* libmosquitto holds its own reference, if it took one */
	ctx = NULL;
	if (rc == PQ_OK)
		rc = bridge_events(b);
	if (rc != PQ_OK)
		goto fail;
	pq_log(PQ_LOG_INFO, LOG_TAG, "connecting to %s:%d (profile %s, MQTT 5, %s)", b->host,
	       b->port, o->profile->name,
	       o->shared_group && *o->shared_group ? b->subs[0] : "plain subscriptions");
	start_connect(b);
	*out = b;
	return PQ_OK;
fail:
	SSL_CTX_free(ctx);
	mq_free(b);
	return rc;
}

int mq_publish(mq_bridge *b, const char *topic, const void *payload, size_t len, int qos,
               bool retain)
{
	if (!b || !topic || !*topic || qos < 0 || qos > 2 || (!payload && len)) {
		if (b)
			STAT_INC(b, publish_failed);
		return pq_err_set(PQ_ERR_INVAL, "MQTT publish: bad arguments");
	}
	if (len > 256u * 1024u * 1024u) {
		STAT_INC(b, publish_failed);
		return pq_err_set(PQ_ERR_RANGE, "MQTT publish: %zu-byte payload", len);
	}
	if (b->state != ST_CONNECTED) {
		STAT_INC(b, publish_failed);
		return pq_err_set(PQ_ERR_IO, "MQTT publish on %s: not connected to %s:%d", topic,
		                  b->host, b->port);
	}
	int rc = mosquitto_publish_v5(b->mosq, NULL, topic, (int)len, payload, qos, retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		STAT_INC(b, publish_failed);
		return pq_err_set(rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_ERRNO ? PQ_ERR_IO
		                                                                 : PQ_ERR_INVAL,
		                  "MQTT publish on %s: %s", topic, mosquitto_strerror(rc));
	}
	STAT_INC(b, published);
	/* let the write event pick it up (never free anything here: we may be in a callback) */
	if (b->ev_write && mosquitto_want_write(b->mosq))
		event_add(b->ev_write, NULL);
	return PQ_OK;
}

bool mq_is_connected(const mq_bridge *b)
{
	return b && __atomic_load_n(&b->connected, __ATOMIC_RELAXED);
}

void mq_get_stats(const mq_bridge *b, mq_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!b)
		return;
	out->connects = __atomic_load_n(&b->st.connects, __ATOMIC_RELAXED);
	out->disconnects = __atomic_load_n(&b->st.disconnects, __ATOMIC_RELAXED);
	out->received = __atomic_load_n(&b->st.received, __ATOMIC_RELAXED);
	out->published = __atomic_load_n(&b->st.published, __ATOMIC_RELAXED);
	out->publish_failed = __atomic_load_n(&b->st.publish_failed, __ATOMIC_RELAXED);
	out->rejected = __atomic_load_n(&b->st.rejected, __ATOMIC_RELAXED);
	out->connect_failures = __atomic_load_n(&b->st.connect_failures, __ATOMIC_RELAXED);
}

void mq_note_rejected(mq_bridge *b)
{
	if (b)
		STAT_INC(b, rejected);
}

void mq_free(mq_bridge *b)
{
	if (!b)
		return;
	b->closing = true;
	if (b->mosq && b->state == ST_CONNECTED && mosquitto_socket(b->mosq) >= 0) {
		/* best effort: the DISCONNECT goes out if the socket takes it now */
		if (mosquitto_disconnect_v5(b->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL) ==
		    MOSQ_ERR_SUCCESS)
			mosquitto_loop_write(b->mosq, 1);
		pq_log(PQ_LOG_INFO, LOG_TAG, "disconnected from %s:%d", b->host, b->port);
	}
	free_io(b);
	if (b->ev_misc)
		event_free(b->ev_misc);
	if (b->ev_retry)
		event_free(b->ev_retry);
	if (b->ev_poll)
		event_free(b->ev_poll);
	if (b->mosq)
		mosquitto_destroy(b->mosq);
	for (int i = 0; i < SUB_COUNT; i++)
		free(b->subs[i]);
	free(b->host);
	free(b);
}
