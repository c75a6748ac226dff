/* log.h: levelled, component-tagged logging through a replaceable sink.
 *
 * Libraries never print: they call pq_log(), which forwards to the sink the program
 * installed (default: stderr, level INFO and above). */
#ifndef PQOTA_CORE_LOG_H
#define PQOTA_CORE_LOG_H

#include "core/err.h"

typedef enum {
	PQ_LOG_DEBUG = 0,
	PQ_LOG_INFO = 1,
	PQ_LOG_WARN = 2,
	PQ_LOG_ERROR = 3,
	PQ_LOG_OFF = 4,
} pq_log_level;

typedef void (*pq_log_sink)(pq_log_level level, const char *component, const char *msg, void *user);

/* Installs a sink (NULL restores the stderr default) and the minimum level. */
void pq_log_set_sink(pq_log_sink sink, void *user);
void pq_log_set_level(pq_log_level level);
pq_log_level pq_log_get_level(void);

/* "debug", "info", "warn", "error", "off" ("?" for anything else). */
const char *pq_log_level_name(pq_log_level level);

/* The default sink's output: "<UTC time> <level> [<component>] <msg>" on stderr. A sink
 * that also writes elsewhere calls it to keep the stderr format. */
void pq_log_write_stderr(pq_log_level level, const char *component, const char *msg);

/* Parses "debug", "info", "warn", "error", "off". */
int pq_log_level_parse(const char *s, pq_log_level *out) PQ_MUST_CHECK;

void pq_log(pq_log_level level, const char *component, const char *fmt, ...) PQ_PRINTF(3, 4);

#endif
