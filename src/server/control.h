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

#include "server/campaign.h"
#include "server/server.h"

typedef struct ctl ctl;

/* Prepares the control plane of s (store connection, loop, bridge options); the thread
 * starts in ctl_start. */
int ctl_new(srv *s, ctl **out) PQ_MUST_CHECK;
int ctl_start(ctl *c) PQ_MUST_CHECK;
/* Stops the thread (if started) and frees everything. */
void ctl_free(ctl *c);

/* The engine environment for a worker thread: publishing goes through srv_publish. */
void ctl_worker_env(srv *s, cmp_env *env);

/* Counters for /metrics. */
void ctl_metrics_text(ctl *c, struct evbuffer *out);

#endif
