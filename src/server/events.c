/* events.c: the live event stream, GET /api/v1/events (docs/api.md "Live events").
 *
 * srv_event() formats an event once into a Server-Sent Events frame and puts it in a ring
 * of the last EV_RING events (any thread, under a mutex), then wakes every worker once per
 * batch. Each worker holds its own streams; EV_BATCH_MS after a wake-up it copies to each
 * stream the frames it has not had yet. A stream resumes after a reconnect from its
 * Last-Event-ID ("<epoch>-<seq>", epoch naming this process) while those events are still
 * in the ring and their bytes fit EV_CLIENT_BUFFER; otherwise it gets a `reset` event
 * (reload what you show). A stream whose unsent output passes EV_CLIENT_BUFFER (a client
 * that does not read), or whose client sends anything, is closed: it reconnects and
 * resumes. One key (or its sessions) holds at most EV_KEY_STREAMS streams per worker.
 * Every EV_BEAT_S a comment keeps idle connections open and each stream's identity is
 * checked again, so signing out or revoking the key ends its streams. */
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "core/log.h"
#include "core/time.h"
#include "server/console.h"
#include "server/server_int.h"
#include "store/session.h"

#define LOGC             "server"
#define EV_RING          4096
#define EV_CLIENT_BUFFER (256 * 1024) /* unsent output, and a backlog, of one stream */
#define EV_CLIENTS_MAX   1024         /* streams per worker */
#define EV_KEY_STREAMS   32           /* streams per worker of one key or session */
#define EV_BEAT_S        15
#define EV_FRAME_MAX     (64 * 1024)
#define EV_BATCH_MS      20   /* a worker sends what arrived within this time together */
#define EV_INPUT_MAX     4096 /* an SSE client sends nothing: more input ends its stream */
#define EV_CHECK_FAILS   4    /* identity checks the store could not answer in a row */

typedef struct {
	uint64_t seq;
	char *frame;
	size_t len;
} ev_item;

struct srv_bus {
	pthread_mutex_t mu;
	ev_item ring[EV_RING];
	uint64_t next; /* the seq of the next event; the first is 1 */
	int64_t epoch; /* this process's start, in every event id */
};

struct srv_stream {
	srv_stream *next, *prev;
	srv_worker *w;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	uint64_t next_seq;
	bool via_session;
	char secret_sha[65]; /* the session's hash, or the API key's */
	char key_id[STORE_ID_MAX + 1];
	int check_fails; /* identity checks in a row that the store could not answer */
};

/* ---- the bus --------------------------------------------------------------------------- */

int srv__events_new(srv *s)
{
	s->bus = calloc(1, sizeof(*s->bus));
	if (!s->bus)
		return pq_err_set(PQ_ERR_NOMEM, "event bus");
	pthread_mutex_init(&s->bus->mu, NULL);
	s->bus->next = 1;
	s->bus->epoch = pq_real_ms();
	return PQ_OK;
}

void srv__events_free(srv *s)
{
	if (!s->bus)
		return;
	for (size_t i = 0; i < EV_RING; i++)
		free(s->bus->ring[i].frame);
	pthread_mutex_destroy(&s->bus->mu);
	free(s->bus);
	s->bus = NULL;
}

/* "id: E-N\nevent: T\ndata: JSON\n\n", malloc'd. */
static char *make_frame(const srv_bus *b, uint64_t seq, const char *type, const char *json,
                        size_t *len)
{
	size_t cap = strlen(json) + strlen(type) + 80;
	char *f = malloc(cap);
	if (!f)
		return NULL;
	int n = snprintf(f, cap, "id: %" PRId64 "-%" PRIu64 "\nevent: %s\ndata: %s\n\n", b->epoch,
	                 seq, type, json);
	if (n < 0 || (size_t)n >= cap) {
		free(f);
		return NULL;
	}
	*len = (size_t)n;
	return f;
}

void srv_event(srv *s, const char *type, json_t *data)
{
	if (!data)
		return;
	if (!s || !s->bus || !type) {
		json_decref(data);
		return;
	}
	if (!json_object_get(data, "at_ms"))
		json_object_set_new(data, "at_ms", json_integer(pq_real_ms()));
	char *json = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	if (!json || strlen(json) > EV_FRAME_MAX) {
		pq_log(PQ_LOG_WARN, LOGC, "event %s dropped (%s)", type,
		       json ? "too large" : "no memory");
		free(json);
		return; /* streams see a gap in the ids: the console reloads */
	}
	srv_bus *b = s->bus;
	pthread_mutex_lock(&b->mu);
	uint64_t seq = b->next;
	ev_item *it = &b->ring[seq % EV_RING];
	size_t len = 0;
	char *frame = make_frame(b, seq, type, json, &len);
	if (frame) {
		free(it->frame);
		it->frame = frame;
		it->len = len;
		it->seq = seq;
		b->next++;
	}
	pthread_mutex_unlock(&b->mu);
	free(json);
	/* one wake-up per worker until it has run: a burst of events costs one */
	for (int i = 0; frame && i < s->nworkers; i++)
		if (s->workers[i].bus_ev && !atomic_exchange(&s->workers[i].bus_woken, true))
			event_active(s->workers[i].bus_ev, EV_READ, 0);
}

/* Copies the frames a stream has not had into out (a `reset` first when some of them left
 * the ring), and moves its position to the newest. */
static int collect(srv_bus *b, srv_stream *st, struct evbuffer *out)
{
	int rc = 0;
	pthread_mutex_lock(&b->mu);
	uint64_t oldest = b->next > EV_RING ? b->next - EV_RING : 1;
	size_t backlog = 0;
	for (uint64_t q = st->next_seq < oldest ? oldest : st->next_seq;
	     q < b->next && backlog <= EV_CLIENT_BUFFER; q++)
		backlog += b->ring[q % EV_RING].len;
	if (st->next_seq < oldest || backlog > EV_CLIENT_BUFFER) {
		/* too much missed: a reset (reload) instead of a replay */
		rc = evbuffer_add_printf(out,
		                         "id: %" PRId64 "-%" PRIu64 "\nevent: reset\ndata: {}\n\n",
		                         b->epoch, b->next - 1) < 0
		         ? -1
		         : 0;
		st->next_seq = b->next;
	}
	for (; rc == 0 && st->next_seq < b->next; st->next_seq++) {
		const ev_item *it = &b->ring[st->next_seq % EV_RING];
		rc = evbuffer_add(out, it->frame, it->len);
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

/* ---- streams ----------------------------------------------------------------------------- */

static void unlink_stream(srv_stream *st)
{
	srv_worker *w = st->w;
	if (st->prev)
		st->prev->next = st->next;
	else
		w->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	w->nstreams--;
}

/* The peer went away (or the connection failed): the request is freed without completing,
 * so it leaves the drain count here. */
static void on_close(struct evhttp_connection *conn, void *arg)
{
	srv_stream *st = arg;
	srv_worker *w = st->w;
	(void)conn;
	unlink_stream(st);
	/* libevent detaches a request whose reply is still being sent when the peer goes (EOF,
	 * timeout) and leaves it to us; one still attached is freed with its connection */
	if (!evhttp_request_get_connection(st->req))
		evhttp_request_free(st->req);
	free(st);
	w->active--;
	if (w->draining && w->active == 0)
		event_base_loopbreak(w->base);
}

/* Ends a stream normally (the request completes). */
static void end_stream(srv_stream *st)
{
	evhttp_connection_set_closecb(st->conn, NULL, NULL);
	unlink_stream(st);
	evhttp_send_reply_end(st->req);
	free(st);
}

/* Sends what the stream has not had, plus `extra` (a comment); closes a stream that does
 * not read. */
static void pump(srv_stream *st, const char *extra)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(st->conn);
	if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > EV_CLIENT_BUFFER) {
		pq_log(PQ_LOG_WARN, LOGC, "event stream closed: the client does not read");
		end_stream(st);
		return;
	}
	if (bev && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		pq_log(PQ_LOG_WARN, LOGC, "event stream closed: the client sent data on it");
		end_stream(st);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	if (!out || collect(st->w->s->bus, st, out) != 0 ||
	    (extra && evbuffer_add(out, extra, strlen(extra)) != 0)) {
		if (out)
			evbuffer_free(out);
		end_stream(st);
		return;
	}
	if (evbuffer_get_length(out))
		evhttp_send_reply_chunk(st->req, out);
	evbuffer_free(out);
}

/* Woken by srv_event: the streams are served once the batch time has passed. */
static void on_bus(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	struct timeval batch = {.tv_usec = EV_BATCH_MS * 1000};
	(void)fd;
	(void)what;
	if (!evtimer_pending(w->batch_ev, NULL))
		evtimer_add(w->batch_ev, &batch);
}

static void on_batch(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	atomic_store(&w->bus_woken, false); /* events from now on wake the worker again */
	for (srv_stream *st = w->streams, *nx; st; st = nx) {
		nx = st->next;
		pump(st, NULL);
	}
}

/* Whether the stream's session or key is still good. A store that does not answer keeps
 * the stream for EV_CHECK_FAILS beats (a database restart), then ends it. */
static bool still_valid(srv_worker *w, srv_stream *st)
{
	store_session ss;
	store_apikey k;
	int rc = st->via_session ? store_session_find(w->db, st->secret_sha, pq_real_ms(), &ss, &k)
	                         : store_apikey_find(w->db, st->secret_sha, pq_real_ms(), &k);
	if (rc == PQ_OK) {
		st->check_fails = 0;
		return true;
	}
	if (rc == PQ_ERR_NOTFOUND || rc == PQ_ERR_INVAL) {
		pq_err_clear();
		return false;
	}
	pq_log(PQ_LOG_WARN, LOGC, "event stream of key %s: checking its identity: %s", st->key_id,
	       pq_err_detail());
	return ++st->check_fails < EV_CHECK_FAILS;
}

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
	srv_worker *w = arg;
	(void)fd;
	(void)what;
	for (srv_stream *st = w->streams, *nx; st; st = nx) {
		nx = st->next;
		if (!still_valid(w, st))
			end_stream(st);
		else
			pump(st, ": beat\n\n");
	}
}

bool srv_event_id_parse(const char *h, int64_t *epoch, uint64_t *seq)
{
	char *end = NULL;
	errno = 0;
	long long e = strtoll(h, &end, 10);
	if (errno || end == h || *end != '-' || e <= 0)
		return false;
	const char *q = end + 1;
	unsigned long long n = strtoull(q, &end, 10);
	if (errno || end == q || *end || *q == '-')
		return false;
	*epoch = e;
	*seq = n;
	return true;
}

/* Where a stream starts: after its Last-Event-ID when that names this process's events,
 * at 0 (so: a reset) for another process's, else at the next event. */
static uint64_t start_seq(srv_ctx *c)
{
	const char *h =
	    evhttp_find_header(evhttp_request_get_input_headers(c->req), "Last-Event-ID");
	int64_t epoch = 0;
	uint64_t seq = 0;
	srv_bus *b = c->s->bus;
	if (h && (!srv_event_id_parse(h, &epoch, &seq) || epoch != b->epoch))
		return 0;
	pthread_mutex_lock(&b->mu);
	uint64_t next = b->next;
	pthread_mutex_unlock(&b->mu);
	if (!h)
		return next;
	return seq < next ? seq + 1 : 0;
}

/* The worker's streams of one API key (sessions included). */
static int streams_of(const srv_worker *w, const char *key_id)
{
	int n = 0;
	for (const srv_stream *st = w->streams; st; st = st->next)
		n += strcmp(st->key_id, key_id) == 0;
	return n;
}

static void h_events(srv_ctx *c)
{
	srv_worker *w = c->w;
	if (!srv_query_only(c, NULL))
		return;
	if (w->nstreams >= EV_CLIENTS_MAX || w->draining || !w->bus_ev) {
		srv_error(c, 503, "unavailable", "too many event streams; retry later");
		return;
	}
	if (streams_of(w, c->key.id) >= EV_KEY_STREAMS) {
		srv_error(c, 429, "rate_limited", "this key has %d event streams open already",
		          EV_KEY_STREAMS);
		return;
	}
	srv_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	st->w = w;
	st->req = c->req;
	st->conn = evhttp_request_get_connection(c->req);
	st->via_session = c->via_session;
	snprintf(st->secret_sha, sizeof(st->secret_sha), "%s",
	         c->via_session ? c->session_sha : c->key.key_sha256);
	snprintf(st->key_id, sizeof(st->key_id), "%s", c->key.id);
	st->next_seq = start_seq(c);
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/* the stream is quiet between events: only the heartbeat keeps it within a timeout */
	evhttp_connection_set_timeout(st->conn, 4 * EV_BEAT_S);
	evhttp_send_reply_start(c->req, 200, "OK");
	/* the client has nothing to send: stop reading once a little is waiting (libevent
	 * would buffer all of it while the reply goes on), and pump() ends such a stream */
	struct bufferevent *bev = evhttp_connection_get_bufferevent(st->conn);
	if (bev)
		bufferevent_setwatermark(bev, EV_READ, 0, EV_INPUT_MAX);
	srv_count(c, 200, 0);
	st->next = w->streams;
	if (w->streams)
		w->streams->prev = st;
	w->streams = st;
	w->nstreams++;
	evhttp_connection_set_closecb(st->conn, on_close, st);
	pump(st, "retry: 3000\n: connected\n\n");
}

/* ---- workers ----------------------------------------------------------------------------- */

int srv__events_worker_init(srv_worker *w)
{
	struct timeval beat = {.tv_sec = EV_BEAT_S};
	w->bus_ev = event_new(w->base, -1, 0, on_bus, w);
	w->batch_ev = evtimer_new(w->base, on_batch, w);
	w->beat_ev = event_new(w->base, -1, EV_PERSIST, on_beat, w);
	atomic_init(&w->bus_woken, false);
	if (!w->bus_ev || !w->batch_ev || !w->beat_ev || event_add(w->beat_ev, &beat) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "worker %d: event streams", w->index);
	return PQ_OK;
}

void srv__events_worker_drain(srv_worker *w)
{
	while (w->streams)
		end_stream(w->streams);
	if (w->beat_ev)
		event_del(w->beat_ev);
	if (w->batch_ev)
		event_del(w->batch_ev);
}

void srv__events_worker_free(srv_worker *w)
{
	if (w->bus_ev)
		event_free(w->bus_ev);
	if (w->beat_ev)
		event_free(w->beat_ev);
	if (w->batch_ev)
		event_free(w->batch_ev);
	w->bus_ev = w->beat_ev = w->batch_ev = NULL;
}

const srv_route route_events_table[] = {
    {EVHTTP_REQ_GET, "/api/v1/events", SRV_AUTH_VIEWER, h_events,
     "live events (Server-Sent Events; docs/api.md \"Live events\")"},
    {0, NULL, 0, NULL, NULL},
};
