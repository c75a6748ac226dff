/* diag_batch.c: the batches of diagnostics requests (one request to a fleet, one row per
 * vehicle) and their aggregates: counts per status, NRCs, the most frequent responses
 * (store/diag.h), once for both backends. */
#include "store/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/store_int.h"

/* ---- batches ---------------------------------------------------------------------------- */

#define BATCH_COLS                                                                                 \
	"batch_id, MIN(COALESCE(ecu_id, '')), MIN(kind), MIN(params), MIN(requested_by),"          \
	" MIN(created_ms), MAX(expires_ms), COUNT(*)"

void store_diag_batch_clear(store_diag_batch *b)
{
	if (!b)
		return;
	free(b->params);
	memset(b, 0, sizeof(*b));
}

static int row_batch(const store_row *r, store_diag_batch *b)
{
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, b->id, sizeof(b->id));
	store__rd_copy(&rd, b->ecu_id, sizeof(b->ecu_id));
	store__rd_copy(&rd, b->kind, sizeof(b->kind));
	store__rd_dup(&rd, &b->params);
	store__rd_copy(&rd, b->requested_by, sizeof(b->requested_by));
	store__rd_i64(&rd, &b->created_ms);
	store__rd_i64(&rd, &b->expires_ms);
	store__rd_i64(&rd, &b->targets);
	if (rd.rc != PQ_OK)
		store_diag_batch_clear(b);
	return rd.rc;
}

typedef struct {
	store_diag_batch *rows;
	int n, cap;
} batch_rows;

static int batch_row(const store_row *r, void *user)
{
	batch_rows *l = user;
	if (l->n >= l->cap)
		return pq_err_set(PQ_ERR_FORMAT, "diagnostics: more batches than asked for");
	memset(&l->rows[l->n], 0, sizeof(l->rows[0]));
	int rc = row_batch(r, &l->rows[l->n]);
	if (rc == PQ_OK)
		l->n++;
	return rc;
}

static int count_row(const store_row *r, void *user)
{
	store_diag_batch *b = user;
	store_diag_state st;
	store_diag_status status;
	int64_t n = 0;
	int rc = store_diag_state_parse(store__col(r, 0), &st);
	if (rc != PQ_OK)
		return rc;
	if (store__col(r, 1)) {
		rc = store_diag_status_parse(store__col(r, 1), &status);
		if (rc != PQ_OK)
			return rc;
	} else {
		status = store__diag_status_of_state(st); /* no result yet */
	}
	rc = store__col_i64(r, 2, &n);
	if (rc != PQ_OK)
		return rc;
	b->counts[status] += n;
	return PQ_OK;
}

static int load_counts(store *s, store_diag_batch *b)
{
	store_val p[] = {SV_TEXT(b->id)};
	memset(b->counts, 0, sizeof(b->counts));
	return store_exec(s,
	                  "SELECT r.state, res.status, COUNT(*)" STORE__DIAG_FROM
	                  " WHERE r.batch_id = ? GROUP BY r.state, res.status",
	                  p, 1, count_row, b, NULL);
}

int store_diag_batch_get(store *s, const char *batch_id, store_diag_batch *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_batch_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(batch_id, "diagnostics batch id");
	if (rc != PQ_OK)
		return rc;
	batch_rows l = {.rows = out, .cap = 1};
	store_val p[] = {SV_TEXT(batch_id)};
	rc = store_exec(s,
	                "SELECT " BATCH_COLS " FROM diag_requests WHERE batch_id = ?"
	                " GROUP BY batch_id",
	                p, 1, batch_row, &l, NULL);
	if (rc != PQ_OK)
		goto out;
	if (l.n == 0) {
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no diagnostics request %s", batch_id);
		goto out;
	}
	rc = load_counts(s, out);
out:
	if (rc != PQ_OK)
		store_diag_batch_clear(out);
	return rc;
}

int store_diag_batch_list(store *s, const store_page *pg,
                          int (*fn)(const store_diag_batch *b, void *user), void *user,
                          int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_batch_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	if (total) {
		rc = store__query_int(
		    s, "SELECT COUNT(DISTINCT batch_id) FROM diag_requests WHERE batch_id <> ''",
		    NULL, 0, total);
		if (rc != PQ_OK)
			return rc;
	}
	if (!fn)
		return PQ_OK;
	batch_rows l = {.rows = calloc((size_t)limit, sizeof(store_diag_batch)), .cap = (int)limit};
	if (!l.rows)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics batch list");
	store_val p[] = {SV_INT(limit), SV_INT(offset)};
	rc = store_exec(s,
	                "SELECT " BATCH_COLS " FROM diag_requests WHERE batch_id <> ''"
	                " GROUP BY batch_id ORDER BY MIN(created_ms) DESC, batch_id DESC"
	                " LIMIT ? OFFSET ?",
	                p, 2, batch_row, &l, NULL);
	for (int i = 0; rc == PQ_OK && i < l.n; i++) {
		rc = load_counts(s, &l.rows[i]);
		if (rc == PQ_OK)
			rc = fn(&l.rows[i], user);
	}
	for (int i = 0; i < l.n; i++)
		store_diag_batch_clear(&l.rows[i]);
	free(l.rows);
	return rc;
}

/* ---- aggregate -------------------------------------------------------------------------- */

void store_diag_agg_clear(store_diag_agg *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->ntop; i++)
		free(a->top[i].response);
	memset(a, 0, sizeof(*a));
}

typedef struct {
	int64_t nrc[256];
	char nrc_name[256][48];
	json_t *responses; /* response hex -> count */
} agg_ctx;

static int agg_row(const store_row *r, void *user)
{
	agg_ctx *a = user;
	const char *status = store__col(r, 0), *payload = store__col(r, 1);
	if (!status || !payload)
		return PQ_OK;
	json_error_t jerr;
	json_t *j = json_loads(payload, JSON_REJECT_DUPLICATES, &jerr);
	if (!j && json_error_code(&jerr) == json_error_out_of_memory)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics aggregate");
	if (!json_is_object(j)) {
		json_decref(j);
		return PQ_OK; /* a result without a readable payload counts only by status */
	}
	if (strcmp(status, "negative") == 0) {
		json_t *nrc = json_object_get(j, "nrc");
		const char *name = json_string_value(json_object_get(j, "nrc_name"));
		if (json_is_integer(nrc) && json_integer_value(nrc) >= 0 &&
		    json_integer_value(nrc) <= 255) {
			int k = (int)json_integer_value(nrc);
			a->nrc[k]++;
			if (name && !a->nrc_name[k][0])
				snprintf(a->nrc_name[k], sizeof(a->nrc_name[k]), "%s", name);
		}
	} else if (strcmp(status, "positive") == 0) {
		const char *resp = json_string_value(json_object_get(j, "response"));
		if (resp) {
			json_t *n = json_object_get(a->responses, resp);
			int64_t v = n ? json_integer_value(n) : 0;
			if (json_object_set_new(a->responses, resp, json_integer(v + 1)) != 0) {
				json_decref(j);
				return pq_err_set(PQ_ERR_NOMEM, "diagnostics aggregate");
			}
		}
	}
	json_decref(j);
	return PQ_OK;
}

/* Whether (na, ra) ranks before (nb, rb): more frequent first, then by response. */
static bool ranks_before(int64_t na, const char *ra, int64_t nb, const char *rb)
{
	return na > nb || (na == nb && strcmp(ra, rb) < 0);
}

/* The NRCs seen, in code order. */
static void agg_nrcs(const agg_ctx *a, store_diag_agg *out)
{
	for (int k = 0; k < 256; k++) {
		if (!a->nrc[k])
			continue;
		out->nrc[out->nnrc].nrc = k;
		out->nrc[out->nnrc].count = a->nrc[k];
		memcpy(out->nrc[out->nnrc].name, a->nrc_name[k], sizeof(a->nrc_name[k]));
		out->nnrc++;
	}
}

/* Puts (response, n) into out's ranked top list when it ranks there. */
static int agg_top_add(store_diag_agg *out, const char *response, int64_t n)
{
	int at = out->ntop;
	while (at > 0 &&
	       ranks_before(n, response, out->top[at - 1].count, out->top[at - 1].response))
		at--;
	if (at >= STORE_DIAG_TOP_MAX)
		return PQ_OK;
	char *copy = strdup(response);
	if (!copy)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics aggregate");
	if (out->ntop == STORE_DIAG_TOP_MAX)
		free(out->top[--out->ntop].response);
	memmove(&out->top[at + 1], &out->top[at], (size_t)(out->ntop - at) * sizeof(out->top[0]));
	out->top[at].response = copy;
	out->top[at].count = n;
	out->ntop++;
	return PQ_OK;
}

static int agg_fill(const agg_ctx *a, store_diag_agg *out)
{
	const char *key;
	json_t *val;
	agg_nrcs(a, out);
	out->distinct_responses = (int64_t)json_object_size(a->responses);
	json_object_foreach(a->responses, key, val)
	{
		int rc = agg_top_add(out, key, json_integer_value(val));
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store_diag_aggregate(store *s, const char *batch_id, store_diag_agg *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_diag_aggregate: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(batch_id, "diagnostics batch id");
	if (rc != PQ_OK)
		return rc;
	agg_ctx *a = calloc(1, sizeof(*a));
	if (!a || !(a->responses = json_object())) {
		free(a);
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics aggregate");
	}
	store_val p[] = {SV_TEXT(batch_id)};
	rc = store_exec(s,
	                "SELECT res.status, res.payload FROM diag_requests r JOIN diag_results res"
	                " ON res.request_id = r.id AND res.seq = 1 WHERE r.batch_id = ?"
	                " AND res.status IN ('positive', 'negative')",
	                p, 1, agg_row, a, NULL);
	if (rc == PQ_OK)
		rc = agg_fill(a, out);
	json_decref(a->responses);
	free(a);
	if (rc != PQ_OK)
		store_diag_agg_clear(out);
	return rc;
}
