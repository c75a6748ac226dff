/* readiness.c: on-demand readiness checks (readiness.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "store/readiness.h"
#include "store/store_int.h"

#define RDY_COLS                                                                                   \
	"id, vin, actor, prerequisites, requested_ms, expires_ms, answered_ms,"                    \
	" COALESCE(ready, -1), answer"

void store_readiness_clear(store_readiness *r)
{
	if (!r)
		return;
	free(r->prerequisites);
	free(r->answer);
	memset(r, 0, sizeof(*r));
}

static int row_readiness(const store_row *row, void *out)
{
	store_readiness *r = out;
	memset(r, 0, sizeof(*r));
	store__rd rd = store__rd_at(row, 0);
	store__rd_copy(&rd, r->id, sizeof(r->id));
	store__rd_copy(&rd, r->vin, sizeof(r->vin));
	store__rd_copy(&rd, r->actor, sizeof(r->actor));
	store__rd_dup(&rd, &r->prerequisites);
	store__rd_i64(&rd, &r->requested_ms);
	store__rd_i64(&rd, &r->expires_ms);
	store__rd_i64(&rd, &r->answered_ms);
	store__rd_int(&rd, &r->ready);
	store__rd_dup(&rd, &r->answer);
	if (rd.rc != PQ_OK)
		store_readiness_clear(r);
	return rd.rc;
}

static int check_request(const store_readiness *r)
{
	const store__text_rule rules[] = {
	    {r->actor, sizeof(r->actor) - 1, false, "actor"},
	};
	int rc = store__check_id(r->id, "readiness check id");
	if (rc == PQ_OK)
		rc = store__check_vin(r->vin);
	if (rc == PQ_OK)
		rc = store__check_texts(rules, 1);
	if (rc == PQ_OK && !r->prerequisites)
		rc = pq_err_set(PQ_ERR_INVAL, "readiness check: no prerequisites");
	if (rc == PQ_OK)
		rc = store__check_json(r->prerequisites, STORE_READINESS_PREREQ_MAX,
		                       "readiness prerequisites");
	if (rc == PQ_OK)
		rc = store__check_time(r->requested_ms, "readiness request time");
	if (rc == PQ_OK && r->expires_ms < r->requested_ms)
		rc = pq_err_set(PQ_ERR_INVAL, "readiness check expires before it is requested");
	return rc;
}

static int add_tx(store *s, const store_readiness *r)
{
	store_val p[] = {SV_TEXT(r->id),          SV_TEXT(r->vin),
	                 SV_TEXT(r->actor),       SV_TEXT(r->prerequisites),
	                 SV_INT(r->requested_ms), SV_INT(r->expires_ms)};
	int rc = store__vehicle_exists(s, r->vin);
	if (rc == PQ_OK)
		rc = store_exec(s,
		                "INSERT INTO readiness_checks (id, vin, actor, prerequisites,"
		                " requested_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?)",
		                p, 6, NULL, NULL, NULL);
	store_val pk[] = {SV_TEXT(r->vin), SV_TEXT(r->vin), SV_INT(STORE_READINESS_KEEP)};
	if (rc == PQ_OK)
		rc = store_exec(s,
		                "DELETE FROM readiness_checks WHERE vin = ? AND id NOT IN"
		                " (SELECT id FROM readiness_checks WHERE vin = ?"
		                " ORDER BY requested_ms DESC, id DESC LIMIT ?)",
		                pk, 3, NULL, NULL, NULL);
	return rc;
}

int store_readiness_add(store *s, const store_readiness *r)
{
	if (!s || !r)
		return pq_err_set(PQ_ERR_INVAL, "store_readiness_add: bad arguments");
	int rc = check_request(r);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, add_tx(s, r));
}

int store_readiness_get(store *s, const char *vin, const char *id, store_readiness *out)
{
	bool found = false;
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_readiness_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_vin(vin);
	if (rc == PQ_OK && id)
		rc = store__check_id(id, "readiness check id");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_TEXT(id)};
	rc = id ? store__get_one(
	              s, "SELECT " RDY_COLS " FROM readiness_checks WHERE vin = ? AND id = ?", p, 2,
	              row_readiness, out, "readiness check", &found)
	        : store__get_one(s,
	                         "SELECT " RDY_COLS " FROM readiness_checks WHERE vin = ?"
	                         " ORDER BY requested_ms DESC, id DESC LIMIT 1",
	                         p, 1, row_readiness, out, "readiness check", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no readiness check %s for vehicle %s",
		                id ? id : "at all", vin);
	return rc;
}

int store_readiness_answer(store *s, const char *vin, const char *id, bool ready,
                           const char *answer, int64_t now_ms, bool *stored)
{
	if (!s || !stored || !answer)
		return pq_err_set(PQ_ERR_INVAL, "store_readiness_answer: bad arguments");
	*stored = false;
	int rc = store__check_vin(vin);
	if (rc == PQ_OK)
		rc = store__check_id(id, "readiness check id");
	if (rc == PQ_OK)
		rc = store__check_json(answer, STORE_READINESS_ANSWER_MAX, "readiness answer");
	if (rc == PQ_OK)
		rc = store__check_time(now_ms, "readiness answer time");
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_INT(now_ms), SV_INT(ready), SV_TEXT(answer),
	                 SV_TEXT(vin),   SV_TEXT(id),   SV_INT(now_ms)};
	rc = store_exec(s,
	                "UPDATE readiness_checks SET answered_ms = ?, ready = ?, answer = ?"
	                " WHERE vin = ? AND id = ? AND answered_ms = 0 AND expires_ms >= ?",
	                p, 6, NULL, NULL, &changes);
	if (rc != PQ_OK || changes > 0) {
		*stored = changes > 0;
		return rc;
	}
	bool found = false;
	store_val pf[] = {SV_TEXT(vin), SV_TEXT(id)};
	rc = store__exists(s, "SELECT COUNT(*) FROM readiness_checks WHERE vin = ? AND id = ?", pf,
	                   2, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no readiness check %s for vehicle %s", id, vin);
	return rc;
}
