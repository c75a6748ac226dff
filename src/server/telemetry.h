/* telemetry.h: the vehicles' telemetry on oem/{vin}/telemetry (docs/protocol.md,
 * "Telemetry"): checking a sample's body, storing it (store/telemetry.h) from the control
 * plane, and the counters /metrics reports.
 *
 * tele_parse is pure (no I/O, no global state) and never trusts the message: every member's
 * type and range is checked, and nothing outside the documented members is kept. */
#ifndef PQOTA_SERVER_TELEMETRY_H
#define PQOTA_SERVER_TELEMETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/msg.h"
#include "server/server.h"
#include "store/telemetry.h"

/* How far ahead of the server's clock a sample's timestamp may be. */
#define TELE_CLOCK_SKEW_MS (5LL * 60 * 1000)

/* The settings' defaults where srv_options leaves 0. */
#define TELE_HISTORY_DEFAULT     100
#define TELE_FRESH_MS_DEFAULT    (15LL * 60 * 1000)
#define TELE_LOW_BATTERY_DEFAULT 20

/* Checks the body of a telemetry message m (already parsed by msg_parse: envelope, VIN,
 * size) received at now_ms and fills out (seq and received_ms 0): PQ_ERR_FORMAT naming the
 * member that is missing or mistyped, PQ_ERR_RANGE for a value out of range, a parked
 * vehicle moving, more free than total storage, or a timestamp more than
 * TELE_CLOCK_SKEW_MS ahead of now_ms. */
int tele_parse(const msg_in *m, int64_t now_ms, store_telemetry *out) PQ_MUST_CHECK;

/* Whether an MQTT topic is a telemetry topic (oem/{anything}/telemetry). */
bool tele_topic(const char *topic);

/* The control plane's telemetry counters (any thread reads them). */
typedef struct {
	atomic_uint_fast64_t stored, invalid, rate_limited, stale;
} tele_counters;

/* When this instance last stored a sample of a vehicle, in a fixed table indexed by a hash
 * of the VIN (a vehicle sharing its slot with another is simply not remembered): samples
 * within the rate limit of it are dropped without a database transaction. The store's own
 * check (store_telemetry_add) stays the rule, across instances too. */
#define TELE_GATE_SLOTS 4096
typedef struct {
	char vin[MSG_VIN_MAX + 1];
	int64_t stored_ms;
} tele_slot;

/* The control plane's telemetry state: counters, and the gate (control thread only). */
typedef struct {
	tele_counters n;
	tele_slot gate[TELE_GATE_SLOTS];
} tele_state;

/* A copy of them for /metrics. */
typedef struct {
	uint64_t stored, invalid, rate_limited, stale;
} tele_stats;

void tele_stats_get(tele_counters *c, tele_stats *out);

/* Handles a telemetry message m (msg_parse succeeded, the vehicle is registered) received
 * at now_ms: checks it (tele_parse) and stores it with o's history bound and rate limit.
 * Counts the outcome in t and logs a refusal; nothing is stored for a refused sample. On
 * the control thread only (t->gate). */
void tele_on_message(store *db, const srv_options *o, const msg_in *m, int64_t now_ms,
                     tele_state *t);

/* The route GET /api/v1/vehicles/{vin}/telemetry (telemetry_routes.c). */
extern const srv_route route_telemetry_table[];

#endif
