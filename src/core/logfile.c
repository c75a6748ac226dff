/* logfile.c: the server's log destination (logfile.h). */
#include "core/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/time.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *out_file; /* NULL: stderr */
static pq_log_format format;

int pq_log_format_parse(const char *s, pq_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = PQ_LOGFMT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = PQ_LOGFMT_JSON;
	else
		return pq_err_set(PQ_ERR_INVAL, "unknown log format '%s' (text, json)", s);
	return PQ_OK;
}

/* The JSON line: the standard members, then fields' (which do not replace them). */
static char *json_line(const char *when, pq_log_level level, const char *component, const char *msg,
                       const json_t *fields)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", when, "level", pq_log_level_name(level),
	                      "component", component, "msg", msg);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)fields, k, v)
	{
		if (o && !json_object_get(o, k))
			json_object_set(o, k, v);
	}
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	return line;
}

pq_log_format pq_logfile_format(void)
{
	pthread_mutex_lock(&lock);
	pq_log_format f = format;
	pthread_mutex_unlock(&lock);
	return f;
}

static void write_line(pq_log_level level, const char *component, const char *msg,
                       const json_t *fields, bool flush);

void pq_logfile_line(pq_log_level level, const char *component, const char *msg,
                     const json_t *fields)
{
	write_line(level, component, msg, fields, true);
}

void pq_logfile_bulk(pq_log_level level, const char *component, const char *msg,
                     const json_t *fields)
{
	write_line(level, component, msg, fields, false);
}

void pq_logfile_flush(void)
{
	pthread_mutex_lock(&lock);
	fflush(out_file ? out_file : stderr);
	pthread_mutex_unlock(&lock);
}

static void write_line(pq_log_level level, const char *component, const char *msg,
                       const json_t *fields, bool flush)
{
	char when[PQ_ISO_TIME_MS_LEN];
	pq_iso_time_ms(pq_real_ms(), when);
	pthread_mutex_lock(&lock);
	pq_log_format fmt = format;
	pthread_mutex_unlock(&lock);
	char *line = fmt == PQ_LOGFMT_JSON ? json_line(when, level, component, msg, fields) : NULL;
	pthread_mutex_lock(&lock);
	FILE *f = out_file ? out_file : stderr;
	if (line)
		fprintf(f, "%s\n", line);
	else
		fprintf(f, "%s %-5s [%s] %s\n", when, pq_log_level_name(level), component, msg);
	if (flush)
		fflush(f);
	pthread_mutex_unlock(&lock);
	free(line);
}

static void sink(pq_log_level level, const char *component, const char *msg, void *user)
{
	(void)user;
	pq_logfile_line(level, component, msg, NULL);
}

/* Makes f (NULL: stderr) and fmt the destination; the old file is closed, its buffered
 * lines written out. */
static void swap_out(FILE *f, pq_log_format fmt)
{
	pthread_mutex_lock(&lock);
	FILE *old = out_file;
	out_file = f;
	format = fmt;
	pthread_mutex_unlock(&lock);
	if (old)
		fclose(old);
}

int pq_logfile_open(const char *path, pq_log_format fmt)
{
	FILE *f = NULL;
	if (path && *path) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0 || !(f = fdopen(fd, "a"))) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return pq_err_set(PQ_ERR_IO, "log file %s: %s", path, strerror(e));
		}
		setvbuf(f, NULL, _IOFBF, 64 * 1024); /* bulk lines go out in large writes */
	}
	swap_out(f, fmt);
	pq_log_set_sink(sink, NULL);
	return PQ_OK;
}

void pq_logfile_close(void)
{
	pq_log_set_sink(NULL, NULL);
	swap_out(NULL, PQ_LOGFMT_TEXT);
}
