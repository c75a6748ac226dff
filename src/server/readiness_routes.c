/* readiness_routes.c: readiness now (docs/api.md "Readiness now"): an operator asks a vehicle
 * for its OTA readiness outside any campaign (request_ota_readiness on oem/{vin}/command,
 * its message id the check's id) and gets the vehicle's answer, waited for a bounded time
 * without holding the worker (a timer polls the store: the answer may reach any instance),
 * or later by the check's id. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "core/log.h"
#include "core/time.h"
#include "server/campaign.h"
#include "server/readiness.h"
#include "server/server_int.h"

#define LOGC "readiness"

#define RDY_WAIT_DEFAULT_S  5
#define RDY_WAIT_MAX_S      30
#define RDY_ANSWER_S        60  /* a vehicle's answer is taken this long after the request */
#define RDY_POLL_MS         100 /* how often a waiting request looks for the answer */
#define RDY_DEFAULT_BATTERY 20  /* with parked and ignition_off: the default prerequisites */

static const char *const post_query[] = {"wait", NULL};

/* The prerequisites of the body: {"prerequisites": {...}}, or the members themselves at
 * the top level, or none (no body, {}): the defaults, what a cautious campaign asks. NULL
 * (the error sent) when invalid. */
static json_t *body_prereq(srv_ctx *c)
{
	json_t *body = NULL, *pre = NULL, *out = json_object();
	int rc = out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "prerequisites");
	if (rc == PQ_OK && evbuffer_get_length(evhttp_request_get_input_buffer(c->req)) > 0 &&
	    !(body = srv_body_json(c))) {
		json_decref(out);
		return NULL;
	}
	pre = json_object_get(body, "prerequisites");
	if (rc == PQ_OK && pre && json_object_size(body) != 1)
		rc = pq_err_set(PQ_ERR_INVAL, "give either prerequisites or its members, not both");
	else if (rc == PQ_OK && pre && !json_is_object(pre))
		rc = pq_err_set(PQ_ERR_INVAL, "prerequisites is not an object");
	else if (!pre && json_object_size(body) > 0)
		pre = body;
	if (rc == PQ_OK && pre)
		rc = cmp_prereq_norm(pre, "prerequisites", out);
	else if (rc == PQ_OK &&
	         (json_object_set_new(out, "battery_min_pct", json_integer(RDY_DEFAULT_BATTERY)) ||
	          json_object_set_new(out, "parked", json_true()) ||
	          json_object_set_new(out, "ignition_off", json_true())))
		rc = pq_err_set(PQ_ERR_NOMEM, "prerequisites");
	json_decref(body);
	if (rc != PQ_OK) {
		json_decref(out);
		srv_fail(c, rc, "readiness check");
		return NULL;
	}
	return out;
}

/* The request_ota_readiness message (no campaign) with prerequisites pre, as text; its
 * message id, the check's id, into id. */
static int build_request(const char *vin, json_t *pre, char **text, char id[STORE_ID_MAX + 1])
{
	if (!msg_vin_valid(vin))
		return pq_err_set(PQ_ERR_INVAL, "VIN %s cannot name an MQTT topic", vin);
	json_t *m = msg_new("request_ota_readiness", vin, NULL);
	*text =
	    m && json_object_set(m, "prerequisites", pre) == 0 ? json_dumps(m, JSON_COMPACT) : NULL;
	if (*text)
		snprintf(id, STORE_ID_MAX + 1, "%s",
		         json_string_value(json_object_get(m, "message_id")));
	json_decref(m);
	return *text ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "request_ota_readiness");
}

/* Records the check, then asks the vehicle (so that its answer finds the record); id the
 * check's id. false with the error sent. */
static bool ask_vehicle(srv_ctx *c, const char *vin, json_t *pre, char id[STORE_ID_MAX + 1])
{
	char topic[128], *text = NULL;
	store_readiness r = {.prerequisites = json_dumps(pre, JSON_COMPACT),
	                     .requested_ms = c->now_ms,
	                     .expires_ms = c->now_ms + RDY_ANSWER_S * 1000};
	int rc = r.prerequisites ? build_request(vin, pre, &text, id)
	                         : pq_err_set(PQ_ERR_NOMEM, "prerequisites");
	if (rc == PQ_OK)
		rc = msg_topic(topic, sizeof(topic), vin, "command");
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.vin, sizeof(r.vin), "%.*s", STORE_VIN_MAX, vin); /* found: it fits */
	snprintf(r.actor, sizeof(r.actor), "%s", c->actor);
	if (rc == PQ_OK)
		rc = store_readiness_add(c->db, &r);
	int prc = rc == PQ_OK ? srv_publish(c->s, topic, text, strlen(text), 1, false) : PQ_OK;
	free(text);
	free(r.prerequisites);
	if (rc != PQ_OK)
		srv_fail(c, rc, "readiness check");
	else if (prc == PQ_ERR_UNSUPPORTED)
		srv_error(c, 503, "no_broker", "no MQTT broker is configured (mqtt.broker)");
	else if (prc == PQ_ERR_RANGE)
		srv_error(c, 503, "busy", "%s", pq_err_detail());
	else if (prc != PQ_OK)
		srv_fail(c, prc, "readiness request");
	return rc == PQ_OK && prc == PQ_OK;
}

/* ---- waiting for the answer ------------------------------------------------------------- */

/* A request waiting for a vehicle's answer: its context (copied), the poll timer. */
typedef struct {
	srv_ctx c;
	char id[STORE_ID_MAX + 1];
	struct evhttp_connection *conn;
	struct event *tick;
	int64_t deadline_ms;
} rdy_wait;

/* Sends the check: 200 when answered, else 504 (no answer within the wait) with the check
 * to poll. */
static void reply(srv_ctx *c, const char *id, bool final)
{
	store_readiness r;
	int rc = store_readiness_get(c->db, c->params[0], id, &r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "readiness check");
		return;
	}
	c->now_ms = pq_real_ms();
	json_t *j = rdy_json(&r, c->now_ms);
	bool answered = r.answered_ms != 0;
	store_readiness_clear(&r);
	if (answered || !final) {
		srv_json(c, answered ? 200 : 202, j);
		return;
	}
	srv_json(c, 504,
	         j ? json_pack("{s:{s:s,s:s},s:o}", "error", "code", "no_answer", "message",
	                       "the vehicle did not answer in time; poll the check by its id",
	                       "readiness", j)
	           : NULL);
}

/* Answers the waiting request and ends the wait (the close callback cleared first: the
 * connection may go while the reply is sent). */
static void wait_finish(rdy_wait *wt)
{
	evhttp_connection_set_closecb(wt->conn, NULL, NULL);
	event_free(wt->tick);
	reply(&wt->c, wt->id, true);
	free(wt);
}

/* The client went away while it waited: the request never completes, so it leaves the
 * drain count here (as an event stream does). A request libevent detached from its
 * connection is ours to free; an attached one goes with its connection (free_conn: freed
 * here, else libevent is freeing it). */
static void wait_gone(rdy_wait *wt, bool free_conn)
{
	srv_worker *w = wt->c.w;
	struct evhttp_request *req = wt->c.req;
	pq_log(PQ_LOG_INFO, LOGC, "check %s: the client left while it waited", wt->id);
	evhttp_connection_set_closecb(wt->conn, NULL, NULL);
	event_free(wt->tick);
	if (!evhttp_request_get_connection(req))
		evhttp_request_free(req);
	else if (free_conn)
		evhttp_connection_free(wt->conn);
	free(wt);
	w->active--;
	if (w->draining && w->active == 0)
		event_base_loopbreak(w->base);
}

static void wait_closed(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	wait_gone(arg, false);
}

/* Whether the client closed its side: libevent does not read while a request waits for its
 * reply, so the socket is asked (a FIN, a reset). */
static bool peer_gone(struct evhttp_connection *conn)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct pollfd p = {.fd = bev ? bufferevent_getfd(bev) : -1, .events = POLLRDHUP};
	return p.fd < 0 ||
	       (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0);
}

static void wait_tick(evutil_socket_t fd, short what, void *arg)
{
	rdy_wait *wt = arg;
	store_readiness r;
	struct timeval tv = {.tv_sec = 0, .tv_usec = RDY_POLL_MS * 1000};
	(void)fd;
	(void)what;
	if (peer_gone(wt->conn)) {
		wait_gone(wt, true);
		return;
	}
	int rc = store_readiness_get(wt->c.db, wt->c.params[0], wt->id, &r);
	bool answered = rc == PQ_OK && r.answered_ms != 0;
	store_readiness_clear(&r);
	if (rc != PQ_OK || answered || pq_real_ms() >= wt->deadline_ms || wt->c.w->draining ||
	    event_add(wt->tick, &tv) != 0)
		wait_finish(wt);
}

/* Waits up to wait_s for the answer to check id, the worker serving other requests. */
static void wait_answer(srv_ctx *c, const char *id, int64_t wait_s)
{
	struct timeval tv = {.tv_sec = 0, .tv_usec = RDY_POLL_MS * 1000};
	rdy_wait *wt = calloc(1, sizeof(*wt));
	if (wt) {
		wt->c = *c;
		snprintf(wt->id, sizeof(wt->id), "%s", id);
		wt->conn = evhttp_request_get_connection(c->req);
		wt->deadline_ms = pq_real_ms() + wait_s * 1000;
		wt->tick = evtimer_new(c->w->base, wait_tick, wt);
	}
	if (!wt || !wt->tick || !wt->conn || event_add(wt->tick, &tv) != 0) {
		if (wt && wt->tick)
			event_free(wt->tick);
		free(wt);
		reply(c, id, true); /* cannot wait: what there is now */
		return;
	}
	evhttp_connection_set_closecb(wt->conn, wait_closed, wt);
}

/* ---- routes ----------------------------------------------------------------------------- */

static void h_readiness_post(srv_ctx *c)
{
	const char *vin = c->params[0];
	store_vehicle v = {0};
	char id[STORE_ID_MAX + 1] = "";
	int64_t wait_s = 0;
	if (!srv_query_only(c, post_query) ||
	    !srv_query_int(c, "wait", 0, RDY_WAIT_MAX_S, RDY_WAIT_DEFAULT_S, &wait_s))
		return;
	int rc = store_vehicle_get(c->db, vin, &v);
	bool online = v.online;
	store_vehicle_clear(&v);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "vehicle");
		return;
	}
	if (!online) {
		srv_error(c, 409, "vehicle_offline",
		          "vehicle %s is offline: it cannot be asked for its readiness now", vin);
		return;
	}
	json_t *pre = body_prereq(c);
	if (!pre)
		return;
	bool asked = ask_vehicle(c, vin, pre, id);
	if (asked)
		srv_audit(c, "vehicle.readiness_request", vin,
		          json_pack("{s:s,s:O}", "id", id, "prerequisites", pre));
	json_decref(pre);
	if (!asked)
		return;
	if (wait_s == 0) {
		reply(c, id, false);
		return;
	}
	wait_answer(c, id, wait_s);
}

/* GET .../readiness (the newest check) and .../readiness/{id}. */
static void h_readiness_get(srv_ctx *c)
{
	store_readiness r;
	if (!srv_query_only(c, NULL))
		return;
	int rc = store_readiness_get(c->db, c->params[0], c->nparams > 1 ? c->params[1] : NULL, &r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "readiness check");
		return;
	}
	srv_json(c, 200, rdy_json(&r, c->now_ms));
	store_readiness_clear(&r);
}

const srv_route route_readiness_table[] = {
    {EVHTTP_REQ_POST, "/api/v1/vehicles/{vin}/readiness", SRV_AUTH_OPERATOR, h_readiness_post,
     "ask the vehicle for its OTA readiness now and wait a bounded time for its answer"},
    {EVHTTP_REQ_GET, "/api/v1/vehicles/{vin}/readiness", SRV_AUTH_VIEWER, h_readiness_get,
     "the vehicle's newest on-demand readiness check"},
    {EVHTTP_REQ_GET, "/api/v1/vehicles/{vin}/readiness/{id}", SRV_AUTH_VIEWER, h_readiness_get,
     "one on-demand readiness check, by its id"},
    {0, NULL, 0, NULL, NULL},
};
