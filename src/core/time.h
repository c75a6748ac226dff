/* time.h: the clocks of pqota, one helper each (wall clock for timestamps that leave the
 * process, monotonic for every timeout, rate and duration). */
#ifndef PQOTA_CORE_TIME_H
#define PQOTA_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t pq_real_ms(void);

/* Monotonic clock (CLOCK_MONOTONIC): milliseconds, nanoseconds and seconds since an
 * arbitrary start. Only differences mean anything. */
int64_t pq_mono_ms(void);
int64_t pq_mono_ns(void);
double pq_mono_s(void);

/* Sleeps ms milliseconds (nothing for ms <= 0), resuming after signals. */
void pq_sleep_ms(int64_t ms);

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC) for t seconds since the epoch; out holds 21 bytes.
 * PQ_ERR_RANGE outside the years 1970..9999. */
#define PQ_ISO_TIME_LEN 21
int pq_iso_time(int64_t t, char out[PQ_ISO_TIME_LEN]) PQ_MUST_CHECK;

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) for ms milliseconds since the epoch; out holds 25 bytes.
 * Times outside 1970..9999 are clamped to those bounds. */
#define PQ_ISO_TIME_MS_LEN 25
void pq_iso_time_ms(int64_t ms, char out[PQ_ISO_TIME_MS_LEN]);

#endif
