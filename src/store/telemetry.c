/* telemetry.c: the vehicles' telemetry samples, latest and bounded history (telemetry.h),
 * once for both backends. */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"
#include "store/telemetry.h"

#define TELE_COLS                                                                                  \
	"vin, seq, at_ms, received_ms, battery_pct, battery_mv, ignition_on, speed_dkmh, parked,"  \
	" storage_free, storage_total"

static int check_sample(const store_telemetry *t, int history_max, int64_t min_interval_ms)
{
	int rc = store__check_vin(t->vin);
	if (rc == PQ_OK)
		rc = store__check_time(t->at_ms, "telemetry time");
	if (rc == PQ_OK)
		rc = store__check_time(t->received_ms, "telemetry receipt time");
	if (rc != PQ_OK)
		return rc;
	if (history_max < 1 || history_max > STORE_TELE_HISTORY_MAX || min_interval_ms < 0)
		return pq_err_set(PQ_ERR_INVAL,
		                  "telemetry: history %d out of 1..%d or interval < 0", history_max,
		                  STORE_TELE_HISTORY_MAX);
	if (t->battery_pct < 0 || t->battery_pct > 100 || t->battery_mv < 0 ||
	    t->battery_mv > STORE_TELE_MV_MAX || t->speed_dkmh < 0 ||
	    t->speed_dkmh > STORE_TELE_DKMH_MAX || t->storage_total < 0 ||
	    t->storage_total > STORE_TELE_BYTES_MAX || t->storage_free < 0 ||
	    t->storage_free > t->storage_total)
		return pq_err_set(PQ_ERR_RANGE, "telemetry of %s: a value out of range", t->vin);
	if (t->parked && t->speed_dkmh > 0)
		return pq_err_set(PQ_ERR_RANGE, "telemetry of %s: parked at a speed above 0",
		                  t->vin);
	return PQ_OK;
}

static int row_sample(const store_row *r, void *out)
{
	store_telemetry *t = out;
	int ign = 0, parked = 0;
	memset(t, 0, sizeof(*t));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, t->vin, sizeof(t->vin));
	store__rd_i64(&rd, &t->seq);
	store__rd_i64(&rd, &t->at_ms);
	store__rd_i64(&rd, &t->received_ms);
	store__rd_int(&rd, &t->battery_pct);
	store__rd_int(&rd, &t->battery_mv);
	store__rd_int(&rd, &ign);
	store__rd_int(&rd, &t->speed_dkmh);
	store__rd_int(&rd, &parked);
	store__rd_i64(&rd, &t->storage_free);
	store__rd_i64(&rd, &t->storage_total);
	t->ignition_on = ign != 0;
	t->parked = parked != 0;
	return rd.rc;
}

static int count_row(const store_row *r, void *user)
{
	(void)r;
	(*(int64_t *)user)++;
	return PQ_OK;
}

/* The body of store_telemetry_add's transaction. */
static int add_tx(store *s, const store_telemetry *t, int history_max, int64_t min_interval_ms,
                  store_tele_result *result)
{
	char sql[160];
	store_telemetry last;
	bool has_last = false;
	int64_t n = 0;
	store_val pv[] = {SV_TEXT(t->vin)};

	/* the vehicle row's lock serialises the samples of one vehicle (PostgreSQL; SQLite's
	 * BEGIN IMMEDIATE already holds the write lock) */
	snprintf(sql, sizeof(sql), "SELECT 1 FROM vehicles WHERE vin = ?%s", s->ops->for_update);
	int rc = store_exec(s, sql, pv, 1, count_row, &n, NULL);
	if (rc != PQ_OK)
		return rc;
	if (n == 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", t->vin);
	rc = store__get_one(s, "SELECT " TELE_COLS " FROM telemetry_latest WHERE vin = ?", pv, 1,
	                    row_sample, &last, "latest telemetry", &has_last);
	if (rc != PQ_OK)
		return rc;
	if (has_last && t->received_ms - last.received_ms < min_interval_ms) {
		*result = STORE_TELE_RATE_LIMITED;
		return PQ_OK;
	}
	if (has_last && t->at_ms <= last.at_ms) {
		*result = STORE_TELE_STALE;
		return PQ_OK;
	}
	int64_t seq = has_last ? last.seq + 1 : 1;
	store_val p[] = {SV_TEXT(t->vin),         SV_INT(seq),
	                 SV_INT(t->at_ms),        SV_INT(t->received_ms),
	                 SV_INT(t->battery_pct),  SV_INT(t->battery_mv),
	                 SV_INT(t->ignition_on),  SV_INT(t->speed_dkmh),
	                 SV_INT(t->parked),       SV_INT(t->storage_free),
	                 SV_INT(t->storage_total)};
	rc = store_exec(s,
	                "INSERT INTO telemetry_latest (" TELE_COLS ")"
	                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	                " ON CONFLICT (vin) DO UPDATE SET seq = excluded.seq,"
	                " at_ms = excluded.at_ms, received_ms = excluded.received_ms,"
	                " battery_pct = excluded.battery_pct, battery_mv = excluded.battery_mv,"
	                " ignition_on = excluded.ignition_on, speed_dkmh = excluded.speed_dkmh,"
	                " parked = excluded.parked, storage_free = excluded.storage_free,"
	                " storage_total = excluded.storage_total",
	                p, 11, NULL, NULL, NULL);
	if (rc == PQ_OK)
		rc = store_exec(s,
		                "INSERT INTO telemetry_history (" TELE_COLS ")"
		                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		                p, 11, NULL, NULL, NULL);
	if (rc != PQ_OK)
		return rc;
	/* the oldest entries beyond history_max go (one per sample in the steady state; more
	 * when the bound was lowered) */
	store_val pd[] = {SV_TEXT(t->vin), SV_INT(seq - history_max)};
	rc = store_exec(s, "DELETE FROM telemetry_history WHERE vin = ? AND seq <= ?", pd, 2, NULL,
	                NULL, NULL);
	if (rc == PQ_OK)
		*result = STORE_TELE_STORED;
	return rc;
}

int store_telemetry_add(store *s, const store_telemetry *t, int history_max,
                        int64_t min_interval_ms, store_tele_result *result)
{
	if (!s || !t || !result)
		return pq_err_set(PQ_ERR_INVAL, "store_telemetry_add: bad arguments");
	*result = STORE_TELE_STORED;
	int rc = check_sample(t, history_max, min_interval_ms);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, add_tx(s, t, history_max, min_interval_ms, result));
}

int store_telemetry_latest(store *s, const char *vin, store_telemetry *out, bool *found)
{
	if (!s || !out || !found)
		return pq_err_set(PQ_ERR_INVAL, "store_telemetry_latest: bad arguments");
	*found = false;
	memset(out, 0, sizeof(*out));
	int rc = store__check_vin(vin);
	if (rc == PQ_OK)
		rc = store__vehicle_exists(s, vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin)};
	return store__get_one(s, "SELECT " TELE_COLS " FROM telemetry_latest WHERE vin = ?", p, 1,
	                      row_sample, out, "latest telemetry", found);
}

typedef struct {
	int (*fn)(const store_telemetry *t, void *user);
	void *user;
} history_ctx;

static int history_row(const store_row *r, void *user)
{
	history_ctx *c = user;
	store_telemetry t;
	int rc = row_sample(r, &t);
	return rc == PQ_OK ? c->fn(&t, c->user) : rc;
}

int store_telemetry_history(store *s, const char *vin, const store_page *pg,
                            int (*fn)(const store_telemetry *t, void *user), void *user,
                            int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_telemetry_history: no store");
	int rc = store__check_vin(vin);
	if (rc == PQ_OK)
		rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = store__vehicle_exists(s, vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(limit), SV_INT(offset)};
	rc = store__count_rows(s, "telemetry_history WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	history_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT " TELE_COLS " FROM telemetry_history"
	                  " WHERE vin = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
	                  p, 3, history_row, &c, NULL);
}

static int fleet_row(const store_row *r, void *out)
{
	store_tele_fleet *f = out;
	store__rd rd = store__rd_at(r, 0);
	store__rd_i64(&rd, &f->reporting);
	store__rd_i64(&rd, &f->parked);
	store__rd_i64(&rd, &f->moving);
	store__rd_i64(&rd, &f->ignition_on);
	store__rd_i64(&rd, &f->battery_low);
	store__rd_i64(&rd, &f->battery_pct_min);
	store__rd_i64(&rd, &f->storage_free_min);
	return rd.rc;
}

int store_telemetry_fleet(store *s, int64_t since_ms, int low_battery_pct, store_tele_fleet *out)
{
	bool found = false;
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_telemetry_fleet: bad arguments");
	memset(out, 0, sizeof(*out));
	store_val p[] = {SV_INT(low_battery_pct), SV_INT(since_ms)};
	int rc = store__get_one(s,
	                        "SELECT COUNT(*), COALESCE(SUM(parked), 0),"
	                        " COALESCE(SUM(CASE WHEN speed_dkmh > 0 THEN 1 ELSE 0 END), 0),"
	                        " COALESCE(SUM(ignition_on), 0),"
	                        " COALESCE(SUM(CASE WHEN battery_pct < ? THEN 1 ELSE 0 END), 0),"
	                        " COALESCE(MIN(battery_pct), -1), COALESCE(MIN(storage_free), -1)"
	                        " FROM telemetry_latest WHERE received_ms >= ?",
	                        p, 2, fleet_row, out, "telemetry aggregate", &found);
	return rc;
}
