/* telemetry.c: checking and storing the vehicles' telemetry samples (telemetry.h). */
#include "server/telemetry.h"

#include <stdio.h>
#include <string.h>

#include "core/jsonv.h"
#include "core/log.h"

#define LOGT "telemetry"

static const pq_jv jv = {.err = PQ_ERR_FORMAT, .what = "telemetry", .null_absent = false};

/* A non-negative number in 0..max scaled by `scale` and rounded: volts to mV, km/h to 0.1. */
static int scaled(const json_t *o, const char *key, const char *path, double max, double scale,
                  int *out)
{
	double v = 0;
	int rc = pq_jv_num(&jv, o, key, path, PQ_JV_REQUIRED, 0, max, &v);
	if (rc == PQ_ERR_FORMAT && json_is_number(json_object_get(o, key)))
		rc = pq_err_wrap(PQ_ERR_RANGE, "out of range");
	if (rc == PQ_OK)
		*out = (int)(v * scale + 0.5);
	return rc;
}

/* An integer member in min..max: PQ_ERR_FORMAT when it is missing or not an integer,
 * PQ_ERR_RANGE when it is one outside the range. */
static int integer(const json_t *o, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t *out)
{
	int rc = pq_jv_int(&jv, o, key, path, PQ_JV_REQUIRED, min, max, out);
	if (rc == PQ_ERR_FORMAT && json_is_integer(json_object_get(o, key)))
		rc = pq_err_wrap(PQ_ERR_RANGE, "out of range");
	return rc;
}

static int parse_battery(const json_t *root, store_telemetry *t)
{
	json_t *b = NULL;
	int64_t pct = 0;
	int rc = pq_jv_obj(&jv, root, "battery", "", PQ_JV_REQUIRED, &b);
	if (rc == PQ_OK)
		rc = integer(b, "soc_pct", ".battery", 0, 100, &pct);
	if (rc == PQ_OK)
		rc = scaled(b, "voltage_v", ".battery", STORE_TELE_MV_MAX / 1000.0, 1000.0,
		            &t->battery_mv);
	t->battery_pct = (int)pct;
	return rc;
}

static int parse_motion(const json_t *root, store_telemetry *t)
{
	int rc = pq_jv_bool(&jv, root, "ignition_on", "", PQ_JV_REQUIRED, &t->ignition_on);
	if (rc == PQ_OK)
		rc = pq_jv_bool(&jv, root, "parked", "", PQ_JV_REQUIRED, &t->parked);
	if (rc == PQ_OK)
		rc =
		    scaled(root, "speed_kmh", "", STORE_TELE_DKMH_MAX / 10.0, 10.0, &t->speed_dkmh);
	if (rc == PQ_OK && t->parked && t->speed_dkmh > 0)
		rc = pq_err_set(PQ_ERR_RANGE, "telemetry: parked at %.1f km/h",
		                t->speed_dkmh / 10.0);
	return rc;
}

static int parse_storage(const json_t *root, store_telemetry *t)
{
	json_t *s = NULL;
	int rc = pq_jv_obj(&jv, root, "storage", "", PQ_JV_REQUIRED, &s);
	if (rc == PQ_OK)
		rc = integer(s, "total_bytes", ".storage", 1, STORE_TELE_BYTES_MAX,
		             &t->storage_total);
	if (rc == PQ_OK)
		rc =
		    integer(s, "free_bytes", ".storage", 0, STORE_TELE_BYTES_MAX, &t->storage_free);
	if (rc == PQ_OK && t->storage_free > t->storage_total)
		rc = pq_err_set(PQ_ERR_RANGE, "telemetry: storage free_bytes above total_bytes");
	return rc;
}

int tele_parse(const msg_in *m, int64_t now_ms, store_telemetry *out)
{
	memset(out, 0, sizeof(*out));
	if (!m || !m->root || m->kind != MSG_T_TELEMETRY)
		return pq_err_set(PQ_ERR_INVAL, "telemetry: not a telemetry message");
	if (m->timestamp_ms > now_ms + TELE_CLOCK_SKEW_MS)
		return pq_err_set(PQ_ERR_RANGE, "telemetry: timestamp %lld s ahead of the server",
		                  (long long)((m->timestamp_ms - now_ms) / 1000));
	snprintf(out->vin, sizeof(out->vin), "%s", m->vin);
	out->at_ms = m->timestamp_ms;
	int rc = parse_battery(m->root, out);
	if (rc == PQ_OK)
		rc = parse_motion(m->root, out);
	if (rc == PQ_OK)
		rc = parse_storage(m->root, out);
	if (rc != PQ_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

bool tele_topic(const char *topic)
{
	static const char suffix[] = "/telemetry";
	size_t n = topic ? strlen(topic) : 0, k = sizeof(suffix) - 1;
	return n > 4 + k && strncmp(topic, "oem/", 4) == 0 && strcmp(topic + n - k, suffix) == 0;
}

void tele_stats_get(tele_counters *c, tele_stats *out)
{
	out->stored = atomic_load(&c->stored);
	out->invalid = atomic_load(&c->invalid);
	out->rate_limited = atomic_load(&c->rate_limited);
	out->stale = atomic_load(&c->stale);
}

/* FNV-1a of the VIN: its slot in the gate. */
static tele_slot *gate_slot(tele_state *t, const char *vin)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)vin; *p; p++)
		h = (h ^ *p) * 16777619u;
	return &t->gate[h % TELE_GATE_SLOTS];
}

void tele_on_message(store *db, const srv_options *o, const msg_in *m, int64_t now_ms,
                     tele_state *ts)
{
	tele_counters *c = &ts->n;
	store_telemetry t;
	store_tele_result res = STORE_TELE_STORED;
	int history = o->telemetry_history > 0 ? o->telemetry_history : TELE_HISTORY_DEFAULT;
	int64_t interval = o->telemetry_min_interval_ms > 0 ? o->telemetry_min_interval_ms : 0;
	int rc = tele_parse(m, now_ms, &t);
	if (rc != PQ_OK) {
		atomic_fetch_add(&c->invalid, 1);
		pq_log(PQ_LOG_WARN, LOGT, "%s: telemetry refused: %s", m->vin, pq_err_detail());
		return;
	}
	tele_slot *slot = gate_slot(ts, m->vin);
	if (interval > 0 && strcmp(slot->vin, m->vin) == 0 && now_ms >= slot->stored_ms &&
	    now_ms - slot->stored_ms < interval) {
		atomic_fetch_add(&c->rate_limited, 1);
		return; /* the database is not asked (the store would refuse it too) */
	}
	t.received_ms = now_ms;
	rc = store_telemetry_add(db, &t, history, interval, &res);
	if (rc != PQ_OK) {
		pq_log(PQ_LOG_WARN, LOGT, "%s: telemetry not stored: %s", m->vin, pq_err_detail());
		return;
	}
	switch (res) {
	case STORE_TELE_STORED:
		atomic_fetch_add(&c->stored, 1);
		snprintf(slot->vin, sizeof(slot->vin), "%s", m->vin);
		slot->stored_ms = now_ms;
		break;
	case STORE_TELE_RATE_LIMITED:
		atomic_fetch_add(&c->rate_limited, 1);
		pq_log(PQ_LOG_DEBUG, LOGT, "%s: telemetry within %lld ms of the last: dropped",
		       m->vin, (long long)interval);
		break;
	case STORE_TELE_STALE:
		atomic_fetch_add(&c->stale, 1);
		pq_log(PQ_LOG_INFO, LOGT, "%s: telemetry %s not newer than the latest: dropped",
		       m->vin, m->message_id);
		break;
	}
}
