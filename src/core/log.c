/* log.c: the default stderr sink and level filtering. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/time.h"

static pq_log_sink cur_sink;
static void *cur_user;
static _Atomic int cur_level = PQ_LOG_INFO; /* set by a reload while others log */

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
	return (pq_log_level)cur_level;
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
	if ((int)level < cur_level || level >= PQ_LOG_OFF)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cur_sink)
		cur_sink(level, component, msg, cur_user);
	else
		pq_log_write_stderr(level, component, msg);
}

const char *pq_log_level_name(pq_log_level level)
{
	return (unsigned)level <= PQ_LOG_OFF ? level_names[level] : "?";
}

void pq_log_write_stderr(pq_log_level level, const char *component, const char *msg)
{
	char when[PQ_ISO_TIME_MS_LEN];
	pq_iso_time_ms(pq_real_ms(), when);
	fprintf(stderr, "%s %-5s [%s] %s\n", when, pq_log_level_name(level), component, msg);
}
