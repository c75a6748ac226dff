/* control.c: the control plane thread (control.h). */
#include "server/control.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "core/log.h"
#include "core/semver.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "crypto/hash.h"
#include "server/diag.h"
#include "server/msg.h"
#include "server/mqtt.h"
#include "server/readiness.h"
#include "server/telemetry.h"
#include "server/uptane_srv.h"
#include "store/campaign.h"

#define LOGC         "control"
#define QUEUE_MAX    100000 /* queued outbound messages before srv_publish refuses */
#define SEEN_KEEP_MS (7LL * 24 * 3600 * 1000)
#define ANNOUNCE_MS  5000 /* how often the release set is compared with the announced one */
#define PRUNE_MS     (3600LL * 1000)

typedef struct pubmsg {
	struct pubmsg *next;
	char *topic;
	char *payload;
	size_t len;
	int qos;
	bool retain;
} pubmsg;

struct ctl {
	srv *s;
	const srv_options *o;
	store *db;
	struct event_base *base;
	struct event *tick_ev, *wake_ev, *stop_ev;
	mq_bridge *mq;
	pthread_t thread;
	bool started;
	char instance[64];
	/* outbound queue, filled by any thread */
	pthread_mutex_t qlock;
	pubmsg *qhead, *qtail;
	size_t qlen;
	/* state of the periodic jobs (control thread only) */
	int64_t next_announce_ms, next_prune_ms;
	char announced[65]; /* SHA-256 of the last announcement published */
	/* metrics */
	atomic_uint_fast64_t m_in, m_rejected, m_duplicate, m_unknown_vehicle, m_replay, m_handled,
	    m_published, m_publish_failed, m_ticks, m_notified, m_timed_out;
	/* diagnostics: requests published, answers stored per status (store_diag_status;
	 * pending/sent unused), requests expired; diag_kick: a worker asked for a send round */
	atomic_uint_fast64_t m_diag_requests, m_diag_responses[STORE_DIAG_STATUS_COUNT],
	    m_diag_expired;
	atomic_bool diag_kick;
	tele_state tele; /* telemetry: counters, the rate-limit gate */
};

/* ---- outbound ------------------------------------------------------------------------ */

int srv_publish(srv *s, const char *topic, const char *json, size_t len, int qos, bool retain)
{
	ctl *c = srv_control(s);
	if (!c || !c->mq)
		return pq_err_set(PQ_ERR_UNSUPPORTED, "MQTT is not configured (mqtt.broker)");
	pubmsg *m = calloc(1, sizeof(*m));
	if (!m)
		return pq_err_set(PQ_ERR_NOMEM, "publish");
	m->topic = strdup(topic);
	m->payload = malloc(len ? len : 1);
	if (!m->topic || !m->payload) {
		free(m->topic);
		free(m->payload);
		free(m);
		return pq_err_set(PQ_ERR_NOMEM, "publish");
	}
	memcpy(m->payload, json, len);
	m->len = len;
	m->qos = qos;
	m->retain = retain;
	pthread_mutex_lock(&c->qlock);
	if (c->qlen >= QUEUE_MAX) {
		pthread_mutex_unlock(&c->qlock);
		free(m->topic);
		free(m->payload);
		free(m);
		return pq_err_set(PQ_ERR_RANGE, "MQTT outbound queue full (%d messages)",
		                  QUEUE_MAX);
	}
	if (c->qtail)
		c->qtail->next = m;
	else
		c->qhead = m;
	c->qtail = m;
	c->qlen++;
	pthread_mutex_unlock(&c->qlock);
	event_active(c->wake_ev, EV_READ, 0);
	return PQ_OK;
}

static void pubmsg_free(pubmsg *m)
{
	free(m->topic);
	free(m->payload);
	free(m);
}

/* Counts a published campaign notification (whichever path sent it: the tick, a wake-up,
 * a worker's deploy route). */
static void count_pub(ctl *c, const char *topic)
{
	size_t n = strlen(topic), k = strlen("/ota/campaign");
	c->m_published++;
	if (n > k && strcmp(topic + n - k, "/ota/campaign") == 0)
		c->m_notified++;
}

/* Sends what is queued while the bridge is connected; the rest waits for the next wake. */
static void drain_queue(ctl *c)
{
	while (mq_is_connected(c->mq)) {
		pthread_mutex_lock(&c->qlock);
		pubmsg *m = c->qhead;
		pthread_mutex_unlock(&c->qlock);
		if (!m)
			return;
		if (mq_publish(c->mq, m->topic, m->payload, m->len, m->qos, m->retain) != PQ_OK) {
			c->m_publish_failed++;
			return; /* kept for the next attempt */
		}
		count_pub(c, m->topic);
		pthread_mutex_lock(&c->qlock);
		c->qhead = m->next;
		if (!c->qhead)
			c->qtail = NULL;
		c->qlen--;
		pthread_mutex_unlock(&c->qlock);
		pubmsg_free(m);
	}
}

/* The engine's publish in the control thread: directly, so that a failure is reported to
 * the engine (which then keeps the work for a later tick). */
static int ctl_publish(void *user, const char *topic, const char *json, size_t len, int qos,
                       bool retain)
{
	ctl *c = srv_control(user);
	if (!c->mq || !mq_is_connected(c->mq))
		return pq_err_set(PQ_ERR_IO, "MQTT not connected");
	int rc = mq_publish(c->mq, topic, json, len, qos, retain);
	if (rc == PQ_OK)
		count_pub(c, topic);
	else
		c->m_publish_failed++;
	return rc;
}

void ctl_diag_kick(srv *s)
{
	ctl *c = srv_control(s);
	if (!c || !c->mq)
		return;
	c->diag_kick = true;
	event_active(c->wake_ev, EV_READ, 0);
}

/* Publishes due diagnostics requests (vin NULL: of every online vehicle). */
static void diag_send(ctl *c, const char *vin, int64_t now)
{
	int64_t sent = 0;
	if (!c->mq || !mq_is_connected(c->mq))
		return;
	if (diag_send_due(c->db, vin, now, ctl_publish, c->s, &sent) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "diagnostics requests%s%s: %s", vin ? " to " : "",
		       vin ? vin : "", pq_err_detail());
	c->m_diag_requests += (uint64_t)sent;
}

static void on_diag_response(ctl *c, msg_in *m, const char *topic, int64_t now)
{
	size_t n = strlen(topic), k = strlen("/diag/response");
	store_diag_status st = STORE_DIAG_ST_ERROR;
	bool stored = false;
	int rc = n > k && strcmp(topic + n - k, "/diag/response") == 0
	             ? diag_on_response_ev(c->s, c->db, m, now, &st, &stored)
	             : pq_err_set(PQ_ERR_INVAL, "diag_response on %.100s", topic);
	if (rc != PQ_OK) {
		c->m_rejected++;
		pq_log(PQ_LOG_WARN, LOGC, "%s: diag_response refused: %s", m->vin, pq_err_detail());
		return;
	}
	if (!stored) {
		pq_log(PQ_LOG_INFO, LOGC,
		       "%s: diag_response for a finished or expired request ignored", m->vin);
		return;
	}
	c->m_diag_responses[st]++;
}

/* An ota_readiness_response to an on-demand check (readiness.h); false when it is the
 * campaign engine's (it has a campaign_id and names no check). */
static bool on_readiness(ctl *c, msg_in *m, int64_t now)
{
	bool ours = false, stored = false;
	int rc = rdy_on_response(c->db, m, now, &ours, &stored);
	if (rc == PQ_OK && !ours && m->campaign_id[0])
		return false;
	if (rc != PQ_OK || !ours) {
		c->m_rejected++;
		pq_log(PQ_LOG_WARN, LOGC, "%s: ota_readiness_response refused: %s", m->vin,
		       rc != PQ_OK ? pq_err_detail()
		                   : "no campaign and no readiness check it answers");
	} else if (!stored) {
		pq_log(PQ_LOG_INFO, LOGC,
		       "%s: readiness answer for %s: answered or expired already", m->vin,
		       m->correlation_id);
	}
	return true;
}

static int worker_publish(void *user, const char *topic, const char *json, size_t len, int qos,
                          bool retain)
{
	return srv_publish(user, topic, json, len, qos, retain);
}

static int env_metadata(void *user, store *db, const char *campaign_id, const char *vin,
                        json_t **out)
{
	return usrv_campaign_metadata(user, db, campaign_id, vin, pq_real_ms(), out);
}

static void ctl_env(ctl *c, cmp_env *env)
{
	memset(env, 0, sizeof(*env));
	env->instance_id = c->instance;
	env->lease_ms = c->o->engine_lease_ms;
	env->batch = c->o->engine_batch;
	env->publish = ctl_publish;
	env->metadata = env_metadata;
	env->event = cmp_srv_event;
	env->user = c->s;
}

void ctl_worker_env(srv *s, cmp_env *env)
{
	ctl *c = srv_control(s);
	memset(env, 0, sizeof(*env));
	env->instance_id = c ? c->instance : "worker";
	env->lease_ms = srv_get_options(s)->engine_lease_ms;
	env->publish = worker_publish;
	env->metadata = env_metadata;
	env->event = cmp_srv_event;
	env->user = s;
}

/* ---- inbound ------------------------------------------------------------------------- */

static int publish_json(ctl *c, const char *vin, const char *suffix, json_t *msg, int qos)
{
	char topic[128];
	char *text = json_dumps(msg, JSON_COMPACT);
	int rc = msg_topic(topic, sizeof(topic), vin, suffix);
	if (!text)
		rc = pq_err_set(PQ_ERR_NOMEM, "message");
	if (rc == PQ_OK)
		rc = ctl_publish(c->s, topic, text, strlen(text), qos, false);
	free(text);
	return rc;
}

/* Records a vehicle's event in the audit log; takes detail (built by the caller: NULL only
 * when that ran out of memory). */
static void audit(ctl *c, const char *vin, const char *action, json_t *detail)
{
	char actor[64];
	char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	if (!text)
		pq_log(PQ_LOG_ERROR, LOGC, "audit %s for %s: detail dropped: out of memory", action,
		       vin);
	snprintf(actor, sizeof(actor), "vehicle:%s", vin);
	if (store_audit_append(c->db, actor, action, vin, text, pq_real_ms()) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "audit %s for %s: %s", action, vin, pq_err_detail());
	free(text);
	json_decref(detail);
}

/* The live events (srv_event) of a presence change and of a stored VCI. */
static void presence_event(ctl *c, const char *vin, bool online, int64_t now)
{
	srv_event(
	    c->s, "presence",
	    json_pack("{s:s,s:b,s:I}", "vin", vin, "online", online, "at_ms", (json_int_t)now));
}

static void vci_event(ctl *c, const char *vin, int64_t now)
{
	srv_event(c->s, "vci", json_pack("{s:s,s:I}", "vin", vin, "at_ms", (json_int_t)now));
}

static void on_wake_up(ctl *c, msg_in *m, const store_vehicle *v, int64_t now)
{
	json_t *bs = json_object_get(m->root, "boot_seq");
	int64_t boot_seq = v->boot_seq;
	if (bs) {
		if (!json_is_integer(bs) || json_integer_value(bs) < 0) {
			c->m_rejected++;
			pq_log(PQ_LOG_WARN, LOGC, "%s: wake-up with an invalid boot_seq", m->vin);
			return;
		}
		boot_seq = json_integer_value(bs);
		if (boot_seq < v->boot_seq) {
			c->m_replay++;
			pq_log(PQ_LOG_WARN, LOGC,
			       "%s: wake-up with boot_seq %" PRId64 " below the last seen %" PRId64
			       ": replay refused",
			       m->vin, boot_seq, v->boot_seq);
			audit(c, m->vin, "vehicle.replay",
			      json_pack("{sIsIss}", "boot_seq", (json_int_t)boot_seq, "last_seen",
			                (json_int_t)v->boot_seq, "message_id", m->message_id));
			return;
		}
	}
	if (store_vehicle_set_online(c->db, m->vin, true, now, boot_seq) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "%s: marking online: %s", m->vin, pq_err_detail());
	else
		presence_event(c, m->vin, true, now);
	json_t *req = msg_new("request_vci", m->vin, m->message_id);
	if (!req || publish_json(c, m->vin, "command", req, 1) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "%s: request_vci not sent: %s", m->vin, pq_err_detail());
	json_decref(req);
	cmp_env env;
	ctl_env(c, &env);
	if (cmp_on_wakeup(c->db, &env, m->vin, now) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "%s: campaign work on wake-up: %s", m->vin,
		       pq_err_detail());
	diag_send(c, m->vin, now);
}

static void on_vci(ctl *c, msg_in *m, int64_t now)
{
	char *text = json_dumps(m->root, JSON_COMPACT);
	int rc = text ? store_vehicle_set_vci(c->db, m->vin, text, now)
	              : pq_err_set(PQ_ERR_NOMEM, "VCI");
	free(text);
	if (rc != PQ_OK) {
		c->m_rejected++;
		pq_log(PQ_LOG_WARN, LOGC, "%s: VCI report refused: %s", m->vin, pq_err_detail());
		return;
	}
	vci_event(c, m->vin, now);
	cmp_env env;
	ctl_env(c, &env);
	env.msg_sent_ms = m->timestamp_ms;
	if (cmp_on_message(c->db, &env, m->vin, m->msg_type, m->message_id, m->root, now) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "%s: %s: %s", m->vin, m->msg_type, pq_err_detail());
	/* continuous campaigns admit the vehicle on its report (cmp_admit logs each failure) */
	if (cmp_admit(c->db, &env, m->vin, now, NULL) != PQ_OK)
		pq_err_clear();
}

static void on_mqtt(void *user, const char *topic, const void *payload, size_t len, int qos,
                    bool retain)
{
	ctl *c = user;
	msg_in m;
	int64_t now = pq_real_ms();
	(void)qos;
	(void)retain;
	c->m_in++;
	if (msg_parse(topic, payload, len, &m) != PQ_OK) {
		c->m_rejected++;
		if (tele_topic(topic))
			c->tele.n.invalid++;
		pq_log(PQ_LOG_WARN, LOGC, "message on %.100s dropped: %s", topic, pq_err_detail());
		return;
	}
	store_vehicle v = {0};
	int rc = store_vehicle_get(c->db, m.vin, &v);
	if (rc != PQ_OK) {
		if (rc == PQ_ERR_NOTFOUND)
			c->m_unknown_vehicle++;
		pq_log(PQ_LOG_WARN, LOGC, "message from %s dropped: %s", m.vin,
		       rc == PQ_ERR_NOTFOUND ? "vehicle not registered" : pq_err_detail());
		goto out;
	}
	if (m.kind == MSG_T_PRESENCE) {
		bool online = strcmp(m.presence, "online") == 0;
		if (store_vehicle_set_online(c->db, m.vin, online, now, v.boot_seq) != PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "%s: presence: %s", m.vin, pq_err_detail());
		else
			presence_event(c, m.vin, online, now);
		c->m_handled++;
		goto out;
	}
	if (m.kind == MSG_T_TELEMETRY) {
		/* QoS 0 and frequent: kept apart from the mqtt_seen records; a repeated or older
		 * sample is refused by its timestamp (store_telemetry_add) */
		tele_on_message(c->db, c->o, &m, now, &c->tele);
		c->m_handled++;
		goto out;
	}
	bool dup = false;
	if (store_msg_seen(c->db, m.vin, m.message_id, now, &dup) != PQ_OK) {
		pq_log(PQ_LOG_WARN, LOGC, "%s: idempotency record: %s", m.vin, pq_err_detail());
		goto out; /* not handled: a redelivery will try again */
	}
	if (dup) {
		c->m_duplicate++;
		pq_log(PQ_LOG_DEBUG, LOGC, "%s: duplicate %s %s ignored", m.vin, m.msg_type,
		       m.message_id);
		goto out;
	}
	c->m_handled++;
	switch (m.kind) {
	case MSG_T_WAKE_UP:
		on_wake_up(c, &m, &v, now);
		break;
	case MSG_T_VCI:
		on_vci(c, &m, now);
		break;
	default: {
		if (strcmp(m.msg_type, "diag_response") == 0) {
			on_diag_response(c, &m, topic, now);
			break;
		}
		if (strcmp(m.msg_type, "ota_readiness_response") == 0 && on_readiness(c, &m, now))
			break;
		cmp_env env;
		ctl_env(c, &env);
		env.msg_sent_ms = m.timestamp_ms;
		if (cmp_on_message(c->db, &env, m.vin, m.msg_type, m.message_id, m.root, now) !=
		    PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "%s: %s: %s", m.vin, m.msg_type, pq_err_detail());
	}
	}
out:
	store_vehicle_clear(&v);
	msg_in_clear(&m);
}

static void on_connect(void *user, bool connected)
{
	ctl *c = user;
	if (connected) {
		c->announced[0] = '\0'; /* republish the retained announcement */
		c->next_announce_ms = 0;
		event_active(c->wake_ev, EV_READ, 0);
	}
}

/* ---- periodic jobs ------------------------------------------------------------------- */

typedef struct {
	json_t *list;
	json_t *seen; /* "hw|ecu|type" -> index in list */
} ann_ctx;

static json_t *ann_entry(const store_release *r)
{
	return json_pack("{ssssssssss}", "hardware_id", r->hardware_id, "ecu_id", r->ecu_id,
	                 "software_type", r->software_type, "version", r->version, "release_id",
	                 r->id);
}

/* Keeps the newest release per (hardware id, ECU, software type), in the order first seen. */
static int ann_cb(const store_release *r, void *user)
{
	ann_ctx *a = user;
	char key[2 * STORE_NAME_MAX + 16];
	snprintf(key, sizeof(key), "%s|%s|%s", r->hardware_id, r->ecu_id, r->software_type);
	json_t *at = json_object_get(a->seen, key);
	if (at) {
		size_t i = (size_t)json_integer_value(at);
		const char *cur =
		    json_string_value(json_object_get(json_array_get(a->list, i), "version"));
		int cmp = 0;
		if (semver_cmp_str(r->version, cur, &cmp) != PQ_OK || cmp <= 0)
			return PQ_OK;
		if (json_array_set_new(a->list, i, ann_entry(r)) != 0)
			return pq_err_set(PQ_ERR_NOMEM, "release announcement");
		return PQ_OK;
	}
	json_t *idx = json_integer((json_int_t)json_array_size(a->list));
	if (json_object_set_new(a->seen, key, idx) || json_array_append_new(a->list, ann_entry(r)))
		return pq_err_set(PQ_ERR_NOMEM, "release announcement");
	return PQ_OK;
}

/* The announced list: every release, the newest per (hardware id, ECU, software type). */
static int announce_list(ctl *c, json_t **out)
{
	ann_ctx a = {json_array(), json_object()};
	int64_t total = 0;
	int rc = a.list && a.seen ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "release announcement");
	for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
		store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
		rc = store_release_list(c->db, NULL, &pg, ann_cb, &a, &total);
		if (off + STORE_PAGE_MAX >= total)
			break;
	}
	json_decref(a.seen);
	if (rc != PQ_OK) {
		json_decref(a.list);
		return rc;
	}
	*out = a.list;
	return PQ_OK;
}

/* Publishes the retained release_announcement of list. */
static int announce_publish(ctl *c, json_t *list)
{
	char id[PQ_UUID_LEN], ts[32];
	int rc = pq_uuid4(id);
	if (rc != PQ_OK)
		return rc;
	rc = msg_format_time(pq_real_ms(), ts);
	if (rc != PQ_OK)
		return rc;
	json_t *msg = json_pack("{sssssssO}", "msg_type", "release_announcement", "message_id", id,
	                        "timestamp", ts, "releases", list);
	char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (!body)
		return pq_err_set(PQ_ERR_NOMEM, "release announcement");
	rc = ctl_publish(c->s, "oem/broadcast/releases", body, strlen(body), 1, true);
	free(body);
	return rc;
}

/* Publishes the retained release_announcement when the newest version per (hardware id,
 * ECU, software type) changed since the last one this instance published. */
static void announce(ctl *c)
{
	json_t *list = NULL;
	char *text = NULL;
	uint8_t h[32];
	char hex[65];
	int rc = announce_list(c, &list);
	if (rc != PQ_OK)
		goto out;
	text = json_dumps(list, JSON_COMPACT | JSON_SORT_KEYS);
	rc = text ? pq_hash(PQ_HASH_SHA256, text, strlen(text), h)
	          : pq_err_set(PQ_ERR_NOMEM, "release announcement");
	if (rc != PQ_OK)
		goto out;
	pq_hex_encode(h, 32, hex);
	if (strcmp(hex, c->announced) == 0)
		goto out;
	rc = announce_publish(c, list);
	if (rc != PQ_OK)
		goto out;
	memcpy(c->announced, hex, sizeof(hex));
	pq_log(PQ_LOG_INFO, LOGC, "release announcement: %zu entries", json_array_size(list));
out:
	if (rc != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "release announcement: %s", pq_err_detail());
	free(text);
	json_decref(list);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	ctl *c = arg;
	int64_t now = pq_real_ms();
	(void)fd;
	(void)what;
	c->m_ticks++;
	cmp_env env;
	ctl_env(c, &env);
	if (c->mq && mq_is_connected(c->mq)) {
		cmp_tick_stats st = {0};
		if (cmp_tick(c->db, &env, now, &st) != PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "campaign tick: %s", pq_err_detail());
		c->m_timed_out += (uint64_t)st.timed_out;
		if (now >= c->next_announce_ms) {
			announce(c);
			c->next_announce_ms = now + ANNOUNCE_MS;
		}
		diag_send(c, NULL, now);
	}
	int64_t expired = 0;
	if (diag_expire_ev(c->s, c->db, now, STORE_PAGE_MAX, &expired) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "expiring diagnostics requests: %s", pq_err_detail());
	c->m_diag_expired += (uint64_t)expired;
	/* vehicles polling over REST that stopped checking go offline (compat_ota.c) */
	if (store_vehicle_expire_polled(c->db, now, NULL) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "expiring the presence of polling vehicles: %s",
		       pq_err_detail());
	if (usrv_image_refresh(c->s, c->db, now) != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "Uptane image repository: %s", pq_err_detail());
	if (now >= c->next_prune_ms) {
		if (store_msg_seen_prune(c->db, now - SEEN_KEEP_MS, NULL) != PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "pruning idempotency records: %s",
			       pq_err_detail());
		c->next_prune_ms = now + PRUNE_MS;
	}
	drain_queue(c);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	ctl *c = arg;
	(void)fd;
	(void)what;
	if (c->mq && atomic_exchange(&c->diag_kick, false))
		diag_send(c, NULL, pq_real_ms());
	if (c->mq)
		drain_queue(c);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	ctl *c = arg;
	(void)fd;
	(void)what;
	event_base_loopbreak(c->base);
}

static void *ctl_main(void *arg)
{
	ctl *c = arg;
	event_base_dispatch(c->base);
	return NULL;
}

/* ---- lifetime ------------------------------------------------------------------------ */

int ctl_new(srv *s, ctl **out)
{
	const srv_options *o = srv_get_options(s);
	ctl *c = calloc(1, sizeof(*c));
	int rc;
	*out = NULL;
	if (!c)
		return pq_err_set(PQ_ERR_NOMEM, "control plane");
	c->s = s;
	c->o = o;
	pthread_mutex_init(&c->qlock, NULL);
	if (o->instance_id && o->instance_id[0]) {
		snprintf(c->instance, sizeof(c->instance), "%s", o->instance_id);
	} else {
		char host[40] = "host";
		(void)gethostname(host, sizeof(host) - 1);
		snprintf(c->instance, sizeof(c->instance), "%.40s-%ld", host, (long)getpid());
	}
	rc = store_open(&o->store, &c->db);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "control plane store");
		goto fail;
	}
	c->base = event_base_new();
	c->tick_ev = c->base ? event_new(c->base, -1, EV_PERSIST, on_tick, c) : NULL;
	c->wake_ev = c->base ? event_new(c->base, -1, 0, on_wake, c) : NULL;
	c->stop_ev = c->base ? event_new(c->base, -1, 0, on_stop, c) : NULL;
	if (!c->tick_ev || !c->wake_ev || !c->stop_ev) {
		rc = pq_err_set(PQ_ERR_NOMEM, "control plane loop");
		goto fail;
	}
	if (o->mqtt_host) {
		mq_options mo = {.host = o->mqtt_host,
		                 .port = o->mqtt_port,
		                 .profile = o->profile,
		                 .ca_file = o->mqtt_ca,
		                 .cert_file = o->mqtt_cert,
		                 .key_file = o->mqtt_key,
		                 .client_id = o->mqtt_client_id,
		                 .shared_group = o->mqtt_shared_group};
		rc = mq_new(c->base, &mo, on_mqtt, on_connect, c, &c->mq);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "MQTT bridge");
			goto fail;
		}
	}
	*out = c;
	return PQ_OK;
fail:
	ctl_free(c);
	return rc;
}

int ctl_start(ctl *c)
{
	int tick = c->o->engine_tick_ms > 0 ? c->o->engine_tick_ms : 1000;
	struct timeval tv = {.tv_sec = tick / 1000, .tv_usec = (tick % 1000) * 1000};
	if (event_add(c->tick_ev, &tv) != 0)
		return pq_err_set(PQ_ERR_IO, "control plane timer");
	if (pthread_create(&c->thread, NULL, ctl_main, c) != 0)
		return pq_err_set(PQ_ERR_IO, "control plane thread");
	c->started = true;
	pq_log(PQ_LOG_INFO, LOGC, "control plane %s: MQTT %s%s%s, engine tick %d ms", c->instance,
	       c->mq ? c->o->mqtt_host : "off", c->o->mqtt_shared_group ? ", shared group " : "",
	       c->o->mqtt_shared_group ? c->o->mqtt_shared_group : "", tick);
	return PQ_OK;
}

void ctl_free(ctl *c)
{
	if (!c)
		return;
	if (c->started) {
		event_active(c->stop_ev, EV_READ, 0);
		pthread_join(c->thread, NULL);
		c->started = false;
	}
	/* queued messages never sent are dropped with a log line; the engine's work is in the
	 * store and is picked up again after a restart */
	if (c->qlen)
		pq_log(PQ_LOG_WARN, LOGC, "%zu queued MQTT messages not sent at shutdown", c->qlen);
	while (c->qhead) {
		pubmsg *n = c->qhead->next;
		pubmsg_free(c->qhead);
		c->qhead = n;
	}
	mq_free(c->mq);
	if (c->tick_ev)
		event_free(c->tick_ev);
	if (c->wake_ev)
		event_free(c->wake_ev);
	if (c->stop_ev)
		event_free(c->stop_ev);
	if (c->base)
		event_base_free(c->base);
	store_close(c->db);
	pthread_mutex_destroy(&c->qlock);
	free(c);
}

bool ctl_get_stats(ctl *c, ctl_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!c)
		return false;
	mq_stats st = {0};
	if (c->mq)
		mq_get_stats(c->mq, &st);
	out->mqtt_connected = c->mq && mq_is_connected(c->mq);
	out->received = c->m_in;
	out->rejected = c->m_rejected;
	out->duplicate = c->m_duplicate;
	out->unknown_vehicle = c->m_unknown_vehicle;
	out->replay = c->m_replay;
	out->published = c->m_published;
	out->publish_failed = c->m_publish_failed;
	out->connects = st.connects;
	out->ticks = c->m_ticks;
	out->notified = c->m_notified;
	out->timed_out = c->m_timed_out;
	out->diag_requests = c->m_diag_requests;
	for (int i = 0; i < STORE_DIAG_STATUS_COUNT; i++)
		out->diag_responses[i] = c->m_diag_responses[i];
	out->diag_expired = c->m_diag_expired;
	tele_stats_get(&c->tele.n, &out->tele);
	return true;
}
