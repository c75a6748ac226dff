/* time.c: wall and monotonic clocks, sleeping, ISO 8601 UTC timestamps. */
#include "core/time.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#define ISO_MAX_S 253402300799LL /* 9999-12-31T23:59:59Z */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pq_real_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000;
}

int64_t pq_mono_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000;
}

int64_t pq_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

double pq_mono_s(void)
{
	return (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
}

void pq_sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
	                      .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int pq_iso_time(int64_t t, char out[PQ_ISO_TIME_LEN])
{
	if (t < 0 || t > ISO_MAX_S)
		return pq_err_set(PQ_ERR_RANGE, "time %lld outside 1970..9999", (long long)t);
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) ||
	    strftime(out, PQ_ISO_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) != PQ_ISO_TIME_LEN - 1)
		return pq_err_set(PQ_ERR_RANGE, "time %lld cannot be formatted", (long long)t);
	return PQ_OK;
}

void pq_iso_time_ms(int64_t ms, char out[PQ_ISO_TIME_MS_LEN])
{
	if (ms < 0)
		ms = 0;
	if (ms > ISO_MAX_S * 1000 + 999)
		ms = ISO_MAX_S * 1000 + 999;
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char text[96]; /* room for any int: the compiler cannot see the clamped ranges */
	gmtime_r(&s, &tm);
	snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	snprintf(out, PQ_ISO_TIME_MS_LEN, "%.24s", text);
}
