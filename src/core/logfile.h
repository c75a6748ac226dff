/* logfile.h: the server's log destination: text or JSON lines, on stderr or in a file that
 * can be reopened (logrotate, SIGHUP), safe from any thread. It installs itself as the
 * pq_log sink; pq_logfile_line writes lines that do not go through pq_log (the access log).
 *
 * JSON lines have stable field names: "ts" (ISO-8601 UTC with milliseconds), "level",
 * "component", "msg", then the caller's fields for pq_logfile_line. */
#ifndef PQOTA_CORE_LOGFILE_H
#define PQOTA_CORE_LOGFILE_H

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"

typedef enum {
	PQ_LOGFMT_TEXT = 0, /* "<ts> <level> [<component>] <msg>" (pq_log_write_stderr's) */
	PQ_LOGFMT_JSON = 1,
} pq_log_format;

/* Sends pq_log to path (NULL or "": stderr), appending, created mode 0640, in format fmt;
 * called again (a reload), it switches over: the new file is opened first, so on an error
 * the old destination stays. */
int pq_logfile_open(const char *path, pq_log_format fmt) PQ_MUST_CHECK;

/* Closes the file and restores pq_log's default sink. */
void pq_logfile_close(void);

/* One line of component at level: text "<ts> <level> [<component>] <msg>", or JSON with
 * fields' members after the standard ones (fields may be NULL; it is not taken). */
void pq_logfile_line(pq_log_level level, const char *component, const char *msg,
                     const json_t *fields);

/* The same for a high-volume line (the access log): written to the file's buffer, which
 * pq_logfile_flush (or the next pq_log line) writes out; on stderr it is written at once. */
void pq_logfile_bulk(pq_log_level level, const char *component, const char *msg,
                     const json_t *fields);

/* Writes out what bulk lines are buffered. */
void pq_logfile_flush(void);

/* The format lines are written in now. */
pq_log_format pq_logfile_format(void);

/* "text" or "json" into *out. */
int pq_log_format_parse(const char *s, pq_log_format *out) PQ_MUST_CHECK;

#endif
