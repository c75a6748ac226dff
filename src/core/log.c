/* log.c: the default stderr sink and level filtering. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pq_log_sink cur_sink;
static void *cur_user;
static pq_log_level cur_level = PQ_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void pq_log_set_sink(pq_log_sink sink, void *user)
{
	cur_sink = sink;
	cur_user = user;
}

void pq_log_set_level(pq_log_level level)
{
	cur_level = level;
}

pq_log_level pq_log_get_level(void)
{
	return cur_level;
}

int pq_log_level_parse(const char *s, pq_log_level *out)
{
	for (int i = 0; i <= PQ_LOG_OFF; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (pq_log_level)i;
			return PQ_OK;
		}
	}
	return pq_err_set(PQ_ERR_INVAL, "unknown log level '%s' (debug, info, warn, error, off)",
	                  s);
}

void pq_log(pq_log_level level, const char *component, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	if (level < cur_level || level >= PQ_LOG_OFF)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cur_sink) {
		cur_sink(level, component, msg, cur_user);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] %s\n", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	        level_names[level], component, msg);
}
