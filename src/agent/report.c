/* report.c: what the agent reports besides its messages: the JSON-lines log file (--log:
 * every event, and the log records the program's pq_log sink passes on) and the status file
 * (--status-file: a JSON summary of the campaign, rewritten atomically after each phase).
 * The agent never writes to stderr: its log records go through pq_log. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/time.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;

/* Writes o (stolen) as one line of the log file, when one is open. */
static void write_line(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return; /* out of memory: the log itself cannot say so */
	pthread_mutex_lock(&log_lock);
	if (log_file) {
		fputs(s, log_file);
		fputc('\n', log_file);
		fflush(log_file);
	}
	pthread_mutex_unlock(&log_lock);
	free(s);
}

static bool log_open(void)
{
	pthread_mutex_lock(&log_lock);
	bool open = log_file != NULL;
	pthread_mutex_unlock(&log_lock);
	return open;
}

void ag_log_record(const char *level, const char *component, const char *msg)
{
	char ts[PQ_ISO_TIME_MS_LEN];
	if (!log_open())
		return;
	pq_iso_time_ms(pq_real_ms(), ts);
	write_line(json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level, "component", component,
	                     "msg", msg));
}

int ag_log_open(const char *path)
{
	if (!path)
		return PQ_OK;
	FILE *f = fopen(path, "ae");
	if (!f)
		return pq_err_set(PQ_ERR_IO, "log file %s: %s", path, strerror(errno));
	pthread_mutex_lock(&log_lock);
	log_file = f;
	pthread_mutex_unlock(&log_lock);
	return PQ_OK;
}

void ag_log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	pthread_mutex_unlock(&log_lock);
}

void ag_event(const char *event, json_t *fields)
{
	char ts[PQ_ISO_TIME_MS_LEN];
	if (!fields) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "event %s dropped: out of memory", event);
		return;
	}
	if (!log_open()) {
		json_decref(fields);
		return;
	}
	pq_iso_time_ms(pq_real_ms(), ts);
	json_t *o = json_pack("{s:s,s:s}", "ts", ts, "event", event);
	if (ag_jmerge(o, fields, "event") != PQ_OK) {
		json_decref(o);
		pq_log(PQ_LOG_ERROR, AG_LOGC, "event %s dropped: out of memory", event);
		return;
	}
	write_line(o);
}

/* ---- status file ----------------------------------------------------------------------- */

/* Copies the members `from` of src that exist into dst, each as `to` (NULL: the same key). */
static int copy_members(json_t *dst, const json_t *src, const char *const *from,
                        const char *const *to, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(src, from[i]);
		if (v && ag_jset(dst, to[i] ? to[i] : from[i], json_incref(v)) != PQ_OK)
			return PQ_ERR_NOMEM;
	}
	return PQ_OK;
}

/* The status file's per-image entries. */
static json_t *status_images(const json_t *c)
{
	static const char *const from[] = {"ecu_id", "package",  "to_version", "bytes",
	                                   "total",  "verified", "installed",  "rolled_back"};
	static const char *const to[] = {NULL, NULL, NULL, "bytes_downloaded",
	                                 NULL, NULL, NULL, NULL};
	json_t *imgs = json_array(), *im;
	size_t i;
	json_array_foreach(json_object_get(c, "images"), i, im)
	{
		json_t *x = json_object();
		if (!imgs || !x || copy_members(x, im, from, to, 8) != PQ_OK ||
		    ag_jappend(imgs, x) != PQ_OK) {
			json_decref(x);
			json_decref(imgs);
			return NULL;
		}
	}
	return imgs;
}

/* The status file's content (a->lock held); NULL when out of memory. */
static json_t *status_json(ag_agent *a)
{
	static const char *const from[] = {"campaign_id", "phase", "verification",
	                                   "error_code",  "error", "fallbacks"};
	static const char *const to[] = {NULL, "state", NULL, NULL, NULL, NULL};
	const json_t *c = a->st.campaign;
	char mqtt_group[48], ts[PQ_ISO_TIME_MS_LEN];
	if (a->mq)
		ag_mq_group(a->mq, a->mqtt_group, sizeof(a->mqtt_group));
	snprintf(mqtt_group, sizeof(mqtt_group), "%s", a->mqtt_group);
	pq_iso_time_ms(pq_real_ms(), ts);
	json_t *o = json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "vin", a->o->vin, "updated", ts,
	                      "boot_seq", (json_int_t)a->st.boot_seq, "tls", "https_group",
	                      a->https_group, "mqtt_group", mqtt_group);
	if (!o)
		return NULL;
	if (!c) {
		if (ag_jset(o, "state", json_string("idle")) == PQ_OK)
			return o;
		json_decref(o);
		return NULL;
	}
	const char *phase = json_string_value(json_object_get(c, "phase"));
	if (copy_members(o, c, from, to, 6) != PQ_OK ||
	    ag_jset(o, "images", status_images(c)) != PQ_OK ||
	    (ag_phase_final(phase) && ag_jset(o, "final", json_true()) != PQ_OK)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void ag_write_status(ag_agent *a)
{
	if (!a->o->status_file)
		return;
	pthread_mutex_lock(&a->lock);
	json_t *o = status_json(a);
	pthread_mutex_unlock(&a->lock);
	char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	if (!s) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "status file %s: out of memory", a->o->status_file);
		return;
	}
	size_t n = strlen(s);
	s[n] = '\n'; /* replace the NUL: the file ends in a newline */
	/* the main thread and the worker both write it: one at a time (one temporary file) */
	static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&write_lock);
	if (pq_file_write_atomic(a->o->status_file, s, n + 1, 0644, true) != PQ_OK)
		pq_log(PQ_LOG_WARN, AG_LOGC, "status file %s: %s", a->o->status_file,
		       pq_err_detail());
	pthread_mutex_unlock(&write_lock);
	free(s);
}
