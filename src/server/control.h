/* control.h: the server's control plane, one thread with its own libevent loop and store
 * connection beside the HTTPS workers:
 *  - the MQTT bridge (server/mqtt.h) on that loop: inbound vehicle messages are parsed
 *    (server/msg.h), deduplicated (store_msg_seen) and dispatched to the vehicle records and
 *    the campaign engine; outbound messages queued by any thread (srv_publish) are sent
 *    from that loop;
 *  - the campaign engine's tick (server/campaign.h): notifications, retries, timeouts,
 *    phase advance, auto-pause, all claimed in the store;
 *  - the retained release announcement and the Uptane image repository, refreshed when
 *    the releases change or the timestamp nears its expiry.
 * Several server instances on one database each run one; the claims keep them apart. */
#ifndef PQOTA_SERVER_CONTROL_H
#define PQOTA_SERVER_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "server/campaign.h"
#include "server/server.h"
#include "server/telemetry.h"
#include "store/diag.h"

typedef struct ctl ctl;

/* Prepares the control plane of s (store connection, loop, bridge options); the thread
 * starts in ctl_start. */
int ctl_new(srv *s, ctl **out) PQ_MUST_CHECK;
int ctl_start(ctl *c) PQ_MUST_CHECK;
/* Stops the thread (if started) and frees everything. */
void ctl_free(ctl *c);

/* The engine environment for a worker thread: publishing goes through srv_publish. */
void ctl_worker_env(srv *s, cmp_env *env);

/* The control plane's counters; metrics.c writes them into /metrics. */
typedef struct {
	bool mqtt_connected;
	uint64_t received, rejected, duplicate, unknown_vehicle, replay; /* inbound messages */
	uint64_t published, publish_failed, connects;                    /* the bridge */
	uint64_t ticks, notified, timed_out;                             /* the engine */
	/* diagnostics: requests published, answers stored per status (pending and sent
	 * unused), requests expired without an answer */
	uint64_t diag_requests, diag_responses[STORE_DIAG_STATUS_COUNT], diag_expired;
	tele_stats tele; /* telemetry samples stored and refused */
} ctl_stats;

/* Fills *out (any thread); false, with *out zeroed, when c is NULL. */
bool ctl_get_stats(ctl *c, ctl_stats *out);

#endif
