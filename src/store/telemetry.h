/* telemetry.h: the vehicles' telemetry samples (docs/protocol.md, "Telemetry"): the latest
 * sample per vehicle and a bounded history of the last samples, per-vehicle rate limiting,
 * and the fleet aggregates /metrics reports. Same rules as store.h: validated input
 * (PQ_ERR_INVAL / PQ_ERR_RANGE), rows valid only during the callback.
 *
 * Values are integers in fixed units (no floating point in the database): the battery
 * voltage in millivolts, the speed in tenths of km/h. */
#ifndef PQOTA_STORE_TELEMETRY_H
#define PQOTA_STORE_TELEMETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_TELE_HISTORY_MAX 10000 /* samples kept per vehicle, at most */
#define STORE_TELE_MV_MAX      60000 /* 60 V */
#define STORE_TELE_DKMH_MAX    5000  /* 500.0 km/h */
#define STORE_TELE_BYTES_MAX   (INT64_C(1) << 53)

typedef struct {
	char vin[STORE_VIN_MAX + 1];
	int64_t seq;         /* per vehicle, from 1, assigned by store_telemetry_add */
	int64_t at_ms;       /* the vehicle's timestamp of the sample */
	int64_t received_ms; /* when the server stored it */
	int battery_pct;     /* state of charge, 0..100 */
	int battery_mv;      /* 0..STORE_TELE_MV_MAX */
	bool ignition_on;
	int speed_dkmh; /* 0..STORE_TELE_DKMH_MAX, 0 when parked */
	bool parked;
	int64_t storage_free, storage_total; /* bytes, free <= total <= STORE_TELE_BYTES_MAX */
} store_telemetry;

typedef enum {
	STORE_TELE_STORED = 0,
	STORE_TELE_RATE_LIMITED, /* less than min_interval_ms after the last stored sample */
	STORE_TELE_STALE,        /* not newer (at_ms) than the vehicle's latest sample */
} store_tele_result;

/* Stores sample t (t->seq ignored) received at t->received_ms, in one transaction under the
 * vehicle row's lock: refused (*result, nothing written) when it came less than
 * min_interval_ms after the last stored sample or is not newer than it; otherwise it
 * becomes the vehicle's latest sample and the history's next entry, and the history keeps
 * only its newest history_max (1..STORE_TELE_HISTORY_MAX) entries. PQ_ERR_NOTFOUND for an
 * unregistered vehicle. */
int store_telemetry_add(store *s, const store_telemetry *t, int history_max,
                        int64_t min_interval_ms, store_tele_result *result) PQ_MUST_CHECK;

/* The vehicle's latest sample; *found false when it has none. PQ_ERR_NOTFOUND when the
 * vehicle is not registered. */
int store_telemetry_latest(store *s, const char *vin, store_telemetry *out,
                           bool *found) PQ_MUST_CHECK;

/* One page of the vehicle's history, newest first; *total the entries kept. PQ_ERR_NOTFOUND
 * when the vehicle is not registered. */
int store_telemetry_history(store *s, const char *vin, const store_page *pg,
                            int (*fn)(const store_telemetry *t, void *user), void *user,
                            int64_t *total) PQ_MUST_CHECK;

/* The fleet's state from the latest samples received since since_ms (one aggregate query
 * over one row per vehicle). The minimums are -1 when no vehicle reports. */
typedef struct {
	int64_t reporting;   /* vehicles with a sample since since_ms */
	int64_t parked;      /* ... whose latest sample says parked */
	int64_t moving;      /* ... speed above 0 */
	int64_t ignition_on; /* ... ignition on */
	int64_t battery_low; /* ... state of charge below low_battery_pct */
	int64_t battery_pct_min;
	int64_t storage_free_min;
} store_tele_fleet;

int store_telemetry_fleet(store *s, int64_t since_ms, int low_battery_pct,
                          store_tele_fleet *out) PQ_MUST_CHECK;

#endif
