/* diag.c: remote diagnostics requests and their results (store/diag.h), once for both
 * backends. Batches and their aggregates are in diag_batch.c. */
#include "store/diag.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store_int.h"

#define SQL_MAX 2048

/* ---- names ---------------------------------------------------------------------------- */

static const char *const state_names[STORE_DIAG_STATE_COUNT] = {"pending", "sent", "done", "failed",
                                                                "expired"};
static const char *const status_names[STORE_DIAG_STATUS_COUNT] = {
    "pending", "sent", "positive", "negative", "timeout", "error", "suppressed"};

const char *store_diag_state_name(store_diag_state st)
{
	return (unsigned)st < STORE_DIAG_STATE_COUNT ? state_names[st] : NULL;
}

int store_diag_state_parse(const char *s, store_diag_state *out)
{
	for (int i = 0; s && i < STORE_DIAG_STATE_COUNT; i++)
		if (strcmp(s, state_names[i]) == 0) {
			*out = (store_diag_state)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown diagnostics state '%.32s'", s ? s : "(null)");
}

const char *store_diag_status_name(store_diag_status st)
{
	return (unsigned)st < STORE_DIAG_STATUS_COUNT ? status_names[st] : NULL;
}

int store_diag_status_parse(const char *s, store_diag_status *out)
{
	for (int i = 0; s && i < STORE_DIAG_STATUS_COUNT; i++)
		if (strcmp(s, status_names[i]) == 0) {
			*out = (store_diag_status)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "unknown diagnostics status '%.32s'", s ? s : "(null)");
}

store_diag_status store__diag_status_of_state(store_diag_state st)
{
	switch (st) {
	case STORE_DIAG_PENDING:
		return STORE_DIAG_ST_PENDING;
	case STORE_DIAG_SENT:
		return STORE_DIAG_ST_SENT;
	case STORE_DIAG_EXPIRED:
		return STORE_DIAG_ST_TIMEOUT;
	default:
		return STORE_DIAG_ST_ERROR;
	}
}

/* ---- rows ------------------------------------------------------------------------------- */

#define DIAG_COLS                                                                                  \
	"r.id, r.batch_id, r.vin, COALESCE(r.ecu_id, ''), r.kind, r.params, r.state,"              \
	" r.requested_by, r.created_ms, r.sent_ms, r.expires_ms, r.updated_ms, res.status,"        \
	" res.payload, res.received_ms"
void store_diag_clear(store_diag *d)
{
	if (!d)
		return;
	free(d->params);
	free(d->payload);
	memset(d, 0, sizeof(*d));
}

static int row_diag(const store_row *r, store_diag *d)
{
	char state[16];
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, d->id, sizeof(d->id));
	store__rd_copy(&rd, d->batch_id, sizeof(d->batch_id));
	store__rd_copy(&rd, d->vin, sizeof(d->vin));
	store__rd_copy(&rd, d->ecu_id, sizeof(d->ecu_id));
	store__rd_copy(&rd, d->kind, sizeof(d->kind));
	store__rd_dup(&rd, &d->params);
	store__rd_copy(&rd, state, sizeof(state));
	if (rd.rc == PQ_OK)
		rd.rc = store_diag_state_parse(state, &d->state);
	store__rd_copy(&rd, d->requested_by, sizeof(d->requested_by));
	store__rd_i64(&rd, &d->created_ms);
	store__rd_i64(&rd, &d->sent_ms);
	store__rd_i64(&rd, &d->expires_ms);
	store__rd_i64(&rd, &d->updated_ms);
	/* no result yet (NULL status): the status follows from the state */
	const char *status = store__rd_text(&rd);
	if (rd.rc == PQ_OK && status)
		rd.rc = store_diag_status_parse(status, &d->status);
	else if (rd.rc == PQ_OK)
		d->status = store__diag_status_of_state(d->state);
	store__rd_dup(&rd, &d->payload);
	store__rd_i64(&rd, &d->received_ms); /* 0 without a result */
	if (rd.rc != PQ_OK)
		store_diag_clear(d);
	return rd.rc;
}

/* Rows read into an array first, then handed out (the callback may query the store). */
typedef struct {
	store_diag *rows;
	int n, cap;
} diag_rows;

static int diag_rows_add(const store_row *r, void *user)
{
	diag_rows *l = user;
	if (l->n >= l->cap)
		return pq_err_set(PQ_ERR_FORMAT, "diagnostics: more rows than asked for");
	memset(&l->rows[l->n], 0, sizeof(l->rows[0]));
	int rc = row_diag(r, &l->rows[l->n]);
	if (rc == PQ_OK)
		l->n++;
	return rc;
}

/* Runs sql (at most cap rows) and calls fn for each row (fn NULL: only the first row is
 * copied into *one, which must be given then). *found: rows read. */
static int diag_query(store *s, const char *sql, const store_val *p, int np, int cap,
                      int (*fn)(const store_diag *d, void *user), void *user, store_diag *one,
                      int *found)
{
	diag_rows l = {.rows = calloc((size_t)cap, sizeof(store_diag)), .cap = cap};
	if (!l.rows)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics rows");
	int rc = store_exec(s, sql, p, np, diag_rows_add, &l, NULL);
	if (found)
		*found = l.n;
	for (int i = 0; fn && rc == PQ_OK && i < l.n; i++)
		rc = fn(&l.rows[i], user);
	if (!fn && one && rc == PQ_OK && l.n > 0) {
		*one = l.rows[0];
		memset(&l.rows[0], 0, sizeof(l.rows[0])); /* ownership moved */
	}
	for (int i = 0; i < l.n; i++)
		store_diag_clear(&l.rows[i]);
	free(l.rows);
	return rc;
}

/* ---- checks ----------------------------------------------------------------------------- */

static int chk_row(const store_diag *d)
{
	int rc = store__check_id(d->id, "diagnostics id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_id(d->batch_id, "diagnostics batch id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_vin(d->vin);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(d->ecu_id, STORE_NAME_MAX, true, "ECU id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(d->kind, sizeof(d->kind) - 1, true, "diagnostics kind");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_json(d->params, STORE_DIAG_JSON_MAX, "diagnostics params");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_text(d->requested_by, STORE_ACTOR_MAX, false, "requested by");
	if (rc != PQ_OK)
		return rc;
	if (d->created_ms < 0 || d->expires_ms < d->created_ms)
		return pq_err_set(PQ_ERR_INVAL, "diagnostics: bad times");
	return PQ_OK;
}

/* ---- requests --------------------------------------------------------------------------- */

static int diag_add(store *s, const store_diag *d)
{
	store_val p[] = {SV_TEXT(d->id),           SV_TEXT(d->batch_id),
	                 SV_TEXT(d->vin),          SV_TEXT(d->ecu_id),
	                 SV_TEXT(d->kind),         SV_TEXT(d->params ? d->params : "{}"),
	                 SV_TEXT(d->requested_by), SV_INT(d->created_ms),
	                 SV_INT(d->expires_ms),    SV_INT(d->created_ms)};
	int rc = store_exec(s,
	                    "INSERT INTO diag_requests (id, batch_id, vin, ecu_id, kind, params,"
	                    " state, requested_by, created_ms, sent_ms, expires_ms, updated_ms)"
	                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, 0, ?, ?)",
	                    p, 10, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "diagnostics request %s exists", d->id);
	return rc;
}

/* The rows of store_diag_insert, in the transaction it opened. */
static int diag_add_all(store *s, const store_diag *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = diag_add(s, &rows[i]);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_diag_insert(store *s, const store_diag *rows, size_t n)
{
	if (!s || !rows || n == 0 || n > STORE_DIAG_TARGETS_MAX)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_insert: %zu rows (1..%d)", n,
		                  STORE_DIAG_TARGETS_MAX);
	for (size_t i = 0; i < n; i++) {
		int rc = chk_row(&rows[i]);
		if (rc != PQ_OK)
			return rc;
	}
	int rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, diag_add_all(s, rows, n));
}

int store_diag_get(store *s, const char *id, store_diag *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(id, "diagnostics id");
	if (rc != PQ_OK)
		return rc;
	int found = 0;
	store_val p[] = {SV_TEXT(id)};
	rc = diag_query(s, "SELECT " DIAG_COLS STORE__DIAG_FROM " WHERE r.id = ?", p, 1, 1, NULL,
	                NULL, out, &found);
	if (rc == PQ_OK && found == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no diagnostics request %s", id);
	return rc;
}

int store_diag_mark(store *s, const char *id, store_diag_state from, store_diag_state to,
                    int64_t now_ms, bool *changed)
{
	if (changed)
		*changed = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_mark: no store");
	if (!((from == STORE_DIAG_PENDING && to == STORE_DIAG_SENT) ||
	      (from == STORE_DIAG_SENT && to == STORE_DIAG_PENDING)))
		return pq_err_set(PQ_ERR_INVAL, "diagnostics: no transition %d -> %d", (int)from,
		                  (int)to);
	int rc = store__check_id(id, "diagnostics id");
	if (rc != PQ_OK)
		return rc;
	int64_t n = 0;
	store_val p[] = {SV_TEXT(store_diag_state_name(to)), SV_INT(now_ms),
	                 SV_INT(to == STORE_DIAG_SENT ? now_ms : 0), SV_TEXT(id),
	                 SV_TEXT(store_diag_state_name(from))};
	rc = store_exec(s,
	                "UPDATE diag_requests SET state = ?, updated_ms = ?, sent_ms = ?"
	                " WHERE id = ? AND state = ?",
	                p, 5, NULL, NULL, &n);
	if (rc == PQ_OK && changed)
		*changed = n > 0;
	return rc;
}

/* The result of request id, moved to state `to` (see finish). */
static int finish_tx(store *s, const char *id, const char *vin, store_diag_state to,
                     store_diag_status status, const char *payload, int64_t now_ms,
                     bool check_expiry, int64_t *n)
{
	char sql[SQL_MAX];
	store_val p[5];
	int np = 0;
	p[np++] = SV_TEXT(store_diag_state_name(to));
	p[np++] = SV_INT(now_ms);
	p[np++] = SV_TEXT(id);
	if (vin)
		p[np++] = SV_TEXT(vin);
	if (check_expiry)
		p[np++] = SV_INT(now_ms);
	int rc = store__build_sql(sql, sizeof(sql),
	                          "UPDATE diag_requests SET state = ?, updated_ms = ? WHERE id = ?",
	                          vin ? " AND vin = ? AND state IN ('pending', 'sent')"
	                              : " AND state IN ('pending', 'sent')",
	                          check_expiry ? " AND expires_ms >= ?" : "");
	if (rc != PQ_OK)
		return rc;
	rc = store_exec(s, sql, p, np, NULL, NULL, n);
	if (rc != PQ_OK)
		return rc;
	if (*n > 0) {
		store_val q[] = {SV_TEXT(store_diag_status_name(status)), SV_TEXT(payload),
		                 SV_INT(now_ms), SV_TEXT(id)};
		return store_exec(
		    s,
		    "INSERT INTO diag_results (request_id, seq, ecu_id, status, payload,"
		    " received_ms) SELECT id, 1, COALESCE(ecu_id, ''), ?, ?, ?"
		    " FROM diag_requests WHERE id = ?",
		    q, 4, NULL, NULL, NULL);
	}
	if (!vin)
		return PQ_OK;
	/* nothing changed: is there such a request of that vehicle at all? */
	int64_t k = 0;
	store_val q[] = {SV_TEXT(id), SV_TEXT(vin)};
	rc = store__query_int(s, "SELECT COUNT(*) FROM diag_requests WHERE id = ? AND vin = ?", q,
	                      2, &k);
	if (rc == PQ_OK && k == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no diagnostics request %s for %s", id, vin);
	return rc;
}

/* Moves an open row (pending or sent; of vin when non-NULL; not expired at now_ms when
 * check_expiry) to `to` and records its result, in one transaction. */
static int finish(store *s, const char *id, const char *vin, store_diag_state to,
                  store_diag_status status, const char *payload, int64_t now_ms, bool check_expiry,
                  bool *changed)
{
	int64_t n = 0;
	*changed = false;
	int rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	rc = store__end(s, finish_tx(s, id, vin, to, status, payload, now_ms, check_expiry, &n));
	if (rc == PQ_OK)
		*changed = n > 0;
	return rc;
}

static int check_result(const char *id, const char *vin, store_diag_status status,
                        const char *payload)
{
	int rc = store__check_id(id, "diagnostics id");
	if (rc != PQ_OK)
		return rc;
	rc = store__check_vin(vin);
	if (rc != PQ_OK)
		return rc;
	if (status < STORE_DIAG_ST_POSITIVE)
		return pq_err_set(PQ_ERR_INVAL, "diagnostics result: status '%s' is not an answer",
		                  store_diag_status_name(status) ? store_diag_status_name(status)
		                                                 : "?");
	if (status >= STORE_DIAG_STATUS_COUNT)
		return pq_err_set(PQ_ERR_INVAL, "diagnostics result: status %d", (int)status);
	return store__check_json(payload, STORE_DIAG_JSON_MAX, "diagnostics result");
}

int store_diag_result(store *s, const char *id, const char *vin, store_diag_status status,
                      const char *payload, int64_t now_ms, bool *stored)
{
	bool dummy;
	if (!stored)
		stored = &dummy;
	*stored = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_result: no store");
	int rc = check_result(id, vin, status, payload);
	if (rc != PQ_OK)
		return rc;
	return finish(s, id, vin, STORE_DIAG_DONE, status, payload, now_ms, true, stored);
}

int store_diag_fail(store *s, const char *id, const char *error, int64_t now_ms, bool *changed)
{
	bool dummy;
	if (!changed)
		changed = &dummy;
	*changed = false;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_fail: no store");
	int rc = store__check_id(id, "diagnostics id");
	if (rc != PQ_OK)
		return rc;
	json_t *j = json_pack("{ss}", "error", error ? error : "failed");
	char *payload = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!payload)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics failure");
	rc = finish(s, id, NULL, STORE_DIAG_FAILED, STORE_DIAG_ST_ERROR, payload, now_ms, false,
	            changed);
	free(payload);
	return rc;
}

typedef struct {
	store_diag_key *keys;
	bool *changed;
	int n, cap;
} id_list;

static int id_row(const store_row *r, void *user)
{
	id_list *l = user;
	if (l->n >= l->cap)
		return pq_err_set(PQ_ERR_FORMAT, "diagnostics: more rows than asked for");
	store_diag_key *k = &l->keys[l->n];
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, k->id, sizeof(k->id));
	store__rd_copy(&rd, k->batch_id, sizeof(k->batch_id));
	store__rd_copy(&rd, k->vin, sizeof(k->vin));
	store__rd_copy(&rd, k->ecu_id, sizeof(k->ecu_id));
	if (rd.rc == PQ_OK)
		l->n++;
	return rd.rc;
}

static const char *const expired_payload = "{\"error\":\"no answer before the request expired\"}";

/* Expires up to l->cap overdue requests in the transaction store_diag_expire opened, counting
 * them in *n. */
static int expire_tx(store *s, int64_t now_ms, id_list *l, int64_t *n)
{
	store_val p[] = {SV_INT(now_ms), SV_INT(l->cap)};
	int rc = store_exec(s,
	                    "SELECT id, batch_id, vin, COALESCE(ecu_id, '') FROM diag_requests"
	                    " WHERE state IN ('pending', 'sent') AND expires_ms < ?"
	                    " ORDER BY expires_ms, id LIMIT ?",
	                    p, 2, id_row, l, NULL);
	if (rc != PQ_OK)
		return rc;
	for (int i = 0; i < l->n; i++) {
		rc = finish(s, l->keys[i].id, NULL, STORE_DIAG_EXPIRED, STORE_DIAG_ST_TIMEOUT,
		            expired_payload, now_ms, false, &l->changed[i]);
		if (rc != PQ_OK)
			return rc;
		if (l->changed[i])
			(*n)++;
	}
	return PQ_OK;
}

int store_diag_expire(store *s, int64_t now_ms, int limit, int64_t *expired)
{
	return store_diag_expire_each(s, now_ms, limit, NULL, NULL, expired);
}

int store_diag_expire_each(store *s, int64_t now_ms, int limit,
                           void (*fn)(const store_diag_key *k, void *user), void *user,
                           int64_t *expired)
{
	int64_t n = 0;
	if (expired)
		*expired = 0;
	if (!s || limit < 1 || limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_expire: bad arguments");
	id_list l = {.keys = calloc((size_t)limit, sizeof(store_diag_key)),
	             .changed = calloc((size_t)limit, sizeof(bool)),
	             .cap = limit};
	int rc =
	    l.keys && l.changed ? store_begin(s) : pq_err_set(PQ_ERR_NOMEM, "diagnostics expiry");
	if (rc == PQ_OK)
		rc = store__end(s, expire_tx(s, now_ms, &l, &n));
	if (rc == PQ_OK && expired)
		*expired = n;
	for (int i = 0; rc == PQ_OK && fn && i < l.n; i++) /* after the commit */
		if (l.changed[i])
			fn(&l.keys[i], user);
	free(l.keys);
	free(l.changed);
	return rc;
}

int store_diag_due(store *s, const char *vin, int64_t now_ms, int limit,
                   int (*fn)(const store_diag *d, void *user), void *user)
{
	if (!s || !fn || limit < 1 || limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_due: bad arguments");
	if (vin) {
		int rc = store__check_vin(vin);
		if (rc != PQ_OK)
			return rc;
		store_val p[] = {SV_TEXT(vin), SV_INT(now_ms), SV_INT(limit)};
		return diag_query(s,
		                  "SELECT " DIAG_COLS STORE__DIAG_FROM
		                  " WHERE r.vin = ? AND r.state = 'pending' AND r.expires_ms >= ?"
		                  " ORDER BY r.created_ms, r.id LIMIT ?",
		                  p, 3, limit, fn, user, NULL, NULL);
	}
	store_val p[] = {SV_INT(now_ms), SV_INT(limit)};
	return diag_query(s,
	                  "SELECT " DIAG_COLS STORE__DIAG_FROM " JOIN vehicles v ON v.vin = r.vin"
	                  " WHERE r.state = 'pending' AND r.expires_ms >= ? AND v.online = 1"
	                  " ORDER BY r.created_ms, r.id LIMIT ?",
	                  p, 2, limit, fn, user, NULL, NULL);
}

int store_diag_list_batch(store *s, const char *batch_id, const store_page *pg,
                          int (*fn)(const store_diag *d, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_list_batch: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = store__check_id(batch_id, "diagnostics batch id");
	if (rc != PQ_OK)
		return rc;
	if (total) {
		store_val p[] = {SV_TEXT(batch_id)};
		rc = store__query_int(s, "SELECT COUNT(*) FROM diag_requests WHERE batch_id = ?", p,
		                      1, total);
		if (rc != PQ_OK)
			return rc;
	}
	if (!fn)
		return PQ_OK;
	store_val p[] = {SV_TEXT(batch_id), SV_INT(limit), SV_INT(offset)};
	return diag_query(s,
	                  "SELECT " DIAG_COLS STORE__DIAG_FROM
	                  " WHERE r.batch_id = ? ORDER BY r.vin, r.id LIMIT ? OFFSET ?",
	                  p, 3, (int)limit, fn, user, NULL, NULL);
}
