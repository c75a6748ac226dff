/* mqtt.h: the server's MQTT bridge: one libmosquitto client driven by the caller's libevent
 * loop (no thread of its own), MQTT 5 over TLS 1.3 with the deployment's PQC profile and
 * the server's client certificate, automatic reconnection with exponential back-off and
 * jitter, and the server's subscriptions (docs/protocol.md), optionally as MQTT 5 shared
 * subscriptions so several server instances split the vehicles' messages. Sessions are
 * clean: what vehicles publish while the bridge is away is not queued for it.
 *
 * Threads: every function except mq_get_stats() and mq_is_connected() must be called from
 * the thread running the event_base; the callbacks run there too. The process must ignore
 * SIGPIPE (the server does): a write to a broker that went away would otherwise kill it. */
#ifndef PQOTA_SERVER_MQTT_H
#define PQOTA_SERVER_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "crypto/profile.h"

struct event_base;

/* Largest message handed to on_msg: a VCI report (1 MiB). Larger ones are dropped and
 * counted as rejected. */
#define MQ_MAX_PAYLOAD (1024u * 1024u)

typedef struct {
	const char *host; /* broker: an IP address or a name in its certificate */
	int port;
	const pq_profile *profile; /* TLS groups and signature scheme */
	/* the server's MQTT client identity (PKI/server-client/client.{crt,key}) and the CA
	 * that issued the broker's certificate */
	const char *ca_file, *cert_file, *key_file;
	const char *client_id;    /* NULL: "pqota-server-<16 random hex>" */
	const char *shared_group; /* NULL or "": plain subscriptions; else $share/GROUP/... */
	int keepalive_s;          /* 0: 30 */
	int backoff_min_ms;       /* 0: 250; first retry after a failure */
	int backoff_max_ms;       /* 0: 30000; doubling stops here */
} mq_options;

typedef struct mq_bridge mq_bridge;

/* A message on one of the subscriptions. topic and payload are valid during the call only. */
typedef void (*mq_message_fn)(void *user, const char *topic, const void *payload, size_t len,
                              int qos, bool retain);
/* connected = true once the broker acknowledged the subscriptions after a (re)connect,
 * false when that connection is lost. */
typedef void (*mq_connect_fn)(void *user, bool connected);

/* Creates the bridge and starts connecting. Bad options and unreadable or mismatched TLS
 * files are errors (PQ_ERR_INVAL, PQ_ERR_NOTFOUND, ...); a broker that cannot be reached, or
 * a failed handshake, is not: it is retried with back-off (and logged). on_conn may be NULL. */
int mq_new(struct event_base *base, const mq_options *o, mq_message_fn on_msg,
           mq_connect_fn on_conn, void *user, mq_bridge **out) PQ_MUST_CHECK;

/* Queues a message (qos 0..2). PQ_ERR_IO when not connected (the caller retries later),
 * PQ_ERR_INVAL for a bad topic or qos, PQ_ERR_RANGE for a payload over 256 MiB. */
int mq_publish(mq_bridge *b, const char *topic, const void *payload, size_t len, int qos,
               bool retain) PQ_MUST_CHECK;

/* Whether the broker accepted the current connection (CONNACK success). */
bool mq_is_connected(const mq_bridge *b);

typedef struct {
	uint64_t connects;         /* successful CONNACKs */
	uint64_t disconnects;      /* established connections lost or closed */
	uint64_t received;         /* messages handed to on_msg */
	uint64_t published;        /* messages queued by mq_publish */
	uint64_t publish_failed;   /* mq_publish failures (not connected included) */
	uint64_t rejected;         /* messages dropped: too large, or counted by mq_note_rejected */
	uint64_t connect_failures; /* connection attempts that failed (TCP, TLS, CONNACK) */
} mq_stats;

/* A snapshot of the counters; safe from any thread. */
void mq_get_stats(const mq_bridge *b, mq_stats *out);

/* Counts a message the caller dropped (e.g. msg_parse failed): pqota_mqtt_rejected_total. */
void mq_note_rejected(mq_bridge *b);

/* Disconnects cleanly (best effort), removes the events and frees the bridge (NULL-safe).
 * Must not be called from within one of the bridge's callbacks. */
void mq_free(mq_bridge *b);

#endif
