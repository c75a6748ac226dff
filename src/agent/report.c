/* report.c: what the agent tells its operator: log records on stderr (levelled), the
 * JSON-lines log file (--log: every record and every event), and the status file
 * (--status-file: a JSON summary of the campaign, rewritten atomically after each phase). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static int stderr_level = PQ_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static void write_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return;
	pthread_mutex_lock(&log_lock);
	if (log_file) {
		fputs(s, log_file);
		fputc('\n', log_file);
		fflush(log_file);
	}
	pthread_mutex_unlock(&log_lock);
	free(s);
}

static void sink(pq_log_level level, const char *component, const char *msg, void *user)
{
	char ts[32];
	(void)user;
	ag_iso_time(ag_now_ms(), ts);
	if ((int)level >= stderr_level)
		fprintf(stderr, "%s %-5s [%s] %s\n", ts, level_names[level], component, msg);
	if (log_file)
		write_line(json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level_names[level],
		                     "component", component, "msg", msg));
}

int ag_log_open(const char *path, int level)
{
	stderr_level = level;
	if (path) {
		FILE *f = fopen(path, "ae");
		if (!f)
			return pq_err_set(PQ_ERR_IO, "log file %s: %s", path, strerror(errno));
		pthread_mutex_lock(&log_lock);
		log_file = f;
		pthread_mutex_unlock(&log_lock);
	}
	pq_log_set_sink(sink, NULL);
	pq_log_set_level(path && level > PQ_LOG_INFO ? PQ_LOG_INFO : (pq_log_level)level);
	return PQ_OK;
}

void ag_log_close(void)
{
	pq_log_set_sink(NULL, NULL);
	pthread_mutex_lock(&log_lock);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	pthread_mutex_unlock(&log_lock);
}

void ag_event(const char *event, json_t *fields)
{
	if (!log_file) {
		json_decref(fields);
		return;
	}
	char ts[32];
	ag_iso_time(ag_now_ms(), ts);
	json_t *o = json_pack("{s:s,s:s}", "ts", ts, "event", event);
	if (o && fields)
		json_object_update(o, fields);
	json_decref(fields);
	if (o)
		write_line(o);
}

/* ---- status file ----------------------------------------------------------------------- */

static json_t *status_json(ag_agent *a)
{
	const json_t *c = a->st.campaign;
	char mqtt_group[48], ts[32];
	if (a->mq)
		ag_mq_group(a->mq, a->mqtt_group, sizeof(a->mqtt_group));
	snprintf(mqtt_group, sizeof(mqtt_group), "%s", a->mqtt_group);
	ag_iso_time(ag_now_ms(), ts);
	json_t *o = json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "vin", a->o->vin, "updated", ts,
	                      "boot_seq", (json_int_t)a->st.boot_seq, "tls", "https_group",
	                      a->https_group, "mqtt_group", mqtt_group);
	if (!o)
		return NULL;
	if (!c) {
		json_object_set_new(o, "state", json_string("idle"));
		return o;
	}
	const char *keys[] = {"campaign_id", "phase", "verification",
	                      "error_code",  "error", "fallbacks"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(c, keys[i]);
		if (v)
			json_object_set(o, i == 1 ? "state" : keys[i], v);
	}
	json_t *imgs = json_array(), *src = json_object_get(c, "images");
	size_t i;
	json_t *im;
	json_array_foreach(src, i, im)
	{
		json_t *x = json_object();
		const char *k[] = {"ecu_id", "package",  "to_version", "bytes",
		                   "total",  "verified", "installed",  "rolled_back"};
		for (size_t j = 0; x && j < sizeof(k) / sizeof(k[0]); j++) {
			json_t *v = json_object_get(im, k[j]);
			if (v)
				json_object_set(x, j == 3 ? "bytes_downloaded" : k[j], v);
		}
		if (x)
			json_array_append_new(imgs, x);
	}
	json_object_set_new(o, "images", imgs);
	json_t *outc = json_object_get(c, "phase");
	if (json_is_string(outc) && ag_phase_final(json_string_value(outc)))
		json_object_set_new(o, "final", json_true());
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
	if (!s)
		return;
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
