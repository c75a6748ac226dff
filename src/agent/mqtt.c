/* mqtt.c: the vehicle's MQTT session (docs/protocol.md, "Transport"): libmosquitto on its
 * own thread (connects, reconnects with exponential backoff 1..30 s, keepalive 30 s), MQTT
 * 3.1.1 over TLS 1.3 with our OpenSSL context (the PKI's key-exchange group, the vehicle's
 * certificate, the broker's name checked), client id = VIN, clean session. The last will is
 * a retained "offline" on oem/VIN/presence; every connect publishes a retained "online" and
 * subscribes to the vehicle's topics. Publishing is thread-safe; QoS 1/2 messages published
 * while disconnected go out after the reconnect. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/time.h"
#include "tls/tls.h"

#define KEEPALIVE_S 30

struct ag_mq {
	ag_mq_opts o;
	char vin[VM_ID_MAX + 1];
	char host[256];
	struct mosquitto *mosq;
	SSL_CTX *ctx;
	pthread_mutex_t lock;
	bool connected;
	bool started;
	char group[48];
	unsigned connects;
	int unacked; /* QoS 1/2 messages published and not yet acknowledged */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
	lib_rc = mosquitto_lib_init();
}

static void topic_of(const ag_mq *q, const char *sub, char *out, size_t len)
{
	snprintf(out, len, "oem/%s/%s", q->vin, sub);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	ag_mq *q = ud;
	if (rc != 0) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: the broker refused the connection: %s",
		       mosquitto_connack_string(rc));
		return;
	}
	static const struct {
		const char *sub;
		int qos;
	} subs[] = {{"command", 1}, {"ota/campaign", 2}, {"ota/metadata", 2}, {"diag/request", 1}};
	char t[128];
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		topic_of(q, subs[i].sub, t, sizeof(t));
		if (mosquitto_subscribe(mosq, NULL, t, subs[i].qos) != MOSQ_ERR_SUCCESS)
			pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: subscribing %s failed", t);
	}
	if (mosquitto_subscribe(mosq, NULL, "oem/broadcast/releases", 1) != MOSQ_ERR_SUCCESS)
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: subscribing oem/broadcast/releases failed");
	topic_of(q, "presence", t, sizeof(t));
	pthread_mutex_lock(&q->lock);
	q->unacked++;
	pthread_mutex_unlock(&q->lock);
	if (mosquitto_publish(mosq, NULL, t, 6, "online", 1, true) != MOSQ_ERR_SUCCESS) {
		pthread_mutex_lock(&q->lock);
		q->unacked--;
		pthread_mutex_unlock(&q->lock);
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: publishing presence failed");
	}
	tls_info info = {0};
	SSL *ssl = mosquitto_ssl_get(mosq);
	if (ssl)
		tls_conn_info(ssl, &info);
	pthread_mutex_lock(&q->lock);
	q->connected = true;
	q->connects++;
	snprintf(q->group, sizeof(q->group), "%s", info.group);
	unsigned n = q->connects;
	pthread_mutex_unlock(&q->lock);
	pq_log(PQ_LOG_INFO, AG_LOGC, "MQTT: connected to %s:%d (%s, group %s)%s", q->host,
	       q->o.port, info.protocol[0] ? info.protocol : "TLS",
	       info.group[0] ? info.group : "?", n > 1 ? " again" : "");
	ag_event("mqtt_connected", json_pack("{s:s,s:i}", "group", info.group, "connects", (int)n));
	if (q->o.on_connect)
		q->o.on_connect(q->o.user);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	(void)mosq;
	ag_mq *q = ud;
	pthread_mutex_lock(&q->lock);
	bool was = q->connected;
	q->connected = false;
	pthread_mutex_unlock(&q->lock);
	if (was && rc != 0) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: connection lost (%s); reconnecting",
		       mosquitto_strerror(rc));
		ag_event("mqtt_disconnected", json_pack("{s:s}", "reason", mosquitto_strerror(rc)));
	}
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m)
{
	(void)mosq;
	ag_mq *q = ud;
	if (!m->topic || m->payloadlen < 0)
		return;
	if ((size_t)m->payloadlen > AG_MSG_MAX) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: %d-byte message on %.80s dropped (limit %u)",
		       m->payloadlen, m->topic, AG_MSG_MAX);
		return;
	}
	q->o.on_message(q->o.user, m->topic, m->payload, (size_t)m->payloadlen);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid)
{
	(void)mosq;
	(void)mid;
	ag_mq *q = ud;
	pthread_mutex_lock(&q->lock);
	if (q->unacked > 0)
		q->unacked--;
	pthread_mutex_unlock(&q->lock);
}

static void on_log(struct mosquitto *mosq, void *ud, int level, const char *str)
{
	(void)mosq;
	(void)ud;
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		pq_log(PQ_LOG_DEBUG, AG_LOGC, "libmosquitto: %s", str);
}

static int make_ctx(ag_mq *q)
{
	tls_opts t = {
	    .profile = q->o.profile,
	    .cert_file = q->o.cert,
	    .key_file = q->o.key,
	    .ca_file = q->o.ca,
	    .verify_peer = true,
	};
	int rc = tls_client_ctx_new(&t, &q->ctx);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "MQTT TLS");
	/* libmosquitto does not check the broker's name on a context it did not make */
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(q->ctx);
	unsigned char addr[16];
	bool ip = inet_pton(AF_INET, q->host, addr) == 1 || inet_pton(AF_INET6, q->host, addr) == 1;
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, q->host)
	        : X509_VERIFY_PARAM_set1_host(vp, q->host, 0)) != 1)
		return pq_err_ssl(PQ_ERR_INVAL, "MQTT TLS: broker name '%s'", q->host);
	return PQ_OK;
}

int ag_mq_start(const ag_mq_opts *o, ag_mq **out)
{
	*out = NULL;
	pthread_once(&lib_once, lib_init);
	if (lib_rc != MOSQ_ERR_SUCCESS)
		return pq_err_set(PQ_ERR_IO, "libmosquitto: %s", mosquitto_strerror(lib_rc));
	ag_mq *q = calloc(1, sizeof(*q));
	if (!q)
		return pq_err_set(PQ_ERR_NOMEM, "MQTT");
	q->o = *o;
	pthread_mutex_init(&q->lock, NULL);
	snprintf(q->vin, sizeof(q->vin), "%s", o->vin);
	snprintf(q->host, sizeof(q->host), "%s", o->host);
	q->o.vin = q->vin;
	q->o.host = q->host;
	int rc = make_ctx(q);
	if (rc != PQ_OK)
		goto fail;
	q->mosq = mosquitto_new(q->vin, true, q);
	if (!q->mosq) {
		rc = pq_err_set(PQ_ERR_NOMEM, "mosquitto_new");
		goto fail;
	}
	char t[128];
	topic_of(q, "presence", t, sizeof(t));
	int mrc = mosquitto_int_option(q->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_void_option(q->mosq, MOSQ_OPT_SSL_CTX, q->ctx);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_will_set(q->mosq, t, 7, "offline", 1, true);
	if (mrc == MOSQ_ERR_SUCCESS)
		mrc = mosquitto_reconnect_delay_set(q->mosq, 1, 30, true);
	if (mrc != MOSQ_ERR_SUCCESS) {
		rc = pq_err_set(PQ_ERR_INVAL, "MQTT options: %s", mosquitto_strerror(mrc));
		goto fail;
	}
	mosquitto_connect_callback_set(q->mosq, on_connect);
	mosquitto_disconnect_callback_set(q->mosq, on_disconnect);
	mosquitto_message_callback_set(q->mosq, on_message);
	mosquitto_log_callback_set(q->mosq, on_log);
	mosquitto_publish_callback_set(q->mosq, on_publish);
	mrc = mosquitto_connect_async(q->mosq, q->host, q->o.port, KEEPALIVE_S);
	if (mrc != MOSQ_ERR_SUCCESS)
		pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: connecting to %s:%d: %s (retrying)", q->host,
		       q->o.port, mosquitto_strerror(mrc));
	mrc = mosquitto_loop_start(q->mosq);
	if (mrc != MOSQ_ERR_SUCCESS) {
		rc = pq_err_set(PQ_ERR_IO, "MQTT thread: %s", mosquitto_strerror(mrc));
		goto fail;
	}
	q->started = true;
	*out = q;
	return PQ_OK;
fail:
	if (q->mosq)
		mosquitto_destroy(q->mosq);
	SSL_CTX_free(q->ctx);
	pthread_mutex_destroy(&q->lock);
	free(q);
	return rc;
}

int ag_mq_publish(ag_mq *q, const char *sub, const json_t *m, int qos)
{
	char t[128];
	char *s = json_dumps(m, JSON_COMPACT);
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "message");
	topic_of(q, sub, t, sizeof(t));
	pthread_mutex_lock(&q->lock); /* counted first: the PUBACK may come before we return */
	if (qos > 0)
		q->unacked++;
	pthread_mutex_unlock(&q->lock);
	int mrc = mosquitto_publish(q->mosq, NULL, t, (int)strlen(s), s, qos, false);
	free(s);
	if (mrc != MOSQ_ERR_SUCCESS && mrc != MOSQ_ERR_NO_CONN && qos > 0) {
		pthread_mutex_lock(&q->lock);
		q->unacked--;
		pthread_mutex_unlock(&q->lock);
	}
	/* not connected: the message is queued and sent after the reconnect */
	if (mrc != MOSQ_ERR_SUCCESS && mrc != MOSQ_ERR_NO_CONN)
		return pq_err_set(PQ_ERR_IO, "publishing on %s: %s", t, mosquitto_strerror(mrc));
	return PQ_OK;
}

bool ag_mq_connected(ag_mq *q)
{
	pthread_mutex_lock(&q->lock);
	bool c = q->connected;
	pthread_mutex_unlock(&q->lock);
	return c;
}

void ag_mq_group(ag_mq *q, char *out, size_t len)
{
	if (!q) {
		snprintf(out, len, "%s", "");
		return;
	}
	pthread_mutex_lock(&q->lock);
	snprintf(out, len, "%s", q->group);
	pthread_mutex_unlock(&q->lock);
}

/* Waits until every QoS 1/2 message went out and was acknowledged (or ms passed, or the
 * connection is down): messages queued beyond the in-flight window would be lost at the
 * disconnect. */
static void drain(ag_mq *q, int ms)
{
	for (int64_t end = pq_mono_ms() + ms; pq_mono_ms() < end;) {
		pthread_mutex_lock(&q->lock);
		bool done = q->unacked <= 0 || !q->connected;
		pthread_mutex_unlock(&q->lock);
		if (done)
			return;
		pq_sleep_ms(20);
	}
	pq_log(PQ_LOG_WARN, AG_LOGC, "MQTT: stopping with unacknowledged messages");
}

void ag_mq_stop(ag_mq *q)
{
	if (!q)
		return;
	char t[128];
	topic_of(q, "presence", t, sizeof(t));
	drain(q, 5000);
	if (ag_mq_connected(q)) {
		pthread_mutex_lock(&q->lock);
		q->unacked++;
		pthread_mutex_unlock(&q->lock);
		if (mosquitto_publish(q->mosq, NULL, t, 7, "offline", 1, true) == MOSQ_ERR_SUCCESS)
			drain(q, 2000);
	}
	mosquitto_disconnect(q->mosq);
	if (q->started)
		mosquitto_loop_stop(q->mosq, false);
	mosquitto_destroy(q->mosq);
	SSL_CTX_free(q->ctx);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
