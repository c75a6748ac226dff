/* release_deltas.c: a release's delta packages, one per base version, and their background
 * jobs' states (store.h store_release_delta), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define DELTA_COLS                                                                                 \
	"release_id, base_version, base_release_id, base_sha256, state, progress_done,"            \
	" progress_total, error, file_sha256, file_size, source, input, created_ms, updated_ms"

static const char *const state_names[] = {"queued", "running", "ready", "failed"};

const char *store_delta_state_name(store_delta_state st)
{
	return (unsigned)st < 4 ? state_names[st] : "unknown";
}

int store_delta_state_parse(const char *name, store_delta_state *out)
{
	for (int i = 0; name && i < 4; i++)
		if (strcmp(name, state_names[i]) == 0) {
			*out = (store_delta_state)i;
			return PQ_OK;
		}
	return pq_err_set(PQ_ERR_INVAL, "delta state '%.16s'", name ? name : "");
}

static int row_delta(const store_row *row, void *dst)
{
	store_release_delta *d = dst;
	memset(d, 0, sizeof(*d));
	store__rd rd = store__rd_at(row, 0);
	store__rd_copy(&rd, d->release_id, sizeof(d->release_id));
	store__rd_copy(&rd, d->base_version, sizeof(d->base_version));
	store__rd_copy(&rd, d->base_release_id, sizeof(d->base_release_id));
	store__rd_copy(&rd, d->base_sha256, sizeof(d->base_sha256));
	const char *st = store__rd_text(&rd);
	if (rd.rc == PQ_OK && store_delta_state_parse(st, &d->state) != PQ_OK)
		rd.rc = pq_err_set(PQ_ERR_FORMAT, "stored delta state '%.16s'", st ? st : "");
	store__rd_i64(&rd, &d->progress_done);
	store__rd_i64(&rd, &d->progress_total);
	store__rd_copy(&rd, d->error, sizeof(d->error));
	store__rd_copy(&rd, d->file_sha256, sizeof(d->file_sha256));
	store__rd_i64(&rd, &d->file_size);
	store__rd_copy(&rd, d->source, sizeof(d->source));
	store__rd_copy(&rd, d->input, sizeof(d->input));
	store__rd_i64(&rd, &d->created_ms);
	store__rd_i64(&rd, &d->updated_ms);
	return rd.rc;
}

/* A delta's key: a release id and a base version. */
static int check_key(const char *release_id, const char *base_version)
{
	int rc = store__check_id(release_id, "release id");
	return rc == PQ_OK
	           ? store__check_text(base_version, STORE_VERSION_MAX, true, "base version")
	           : rc;
}

/* The fields of a delta as stored: a ready one names its file, a failed one its reason. */
static int check_delta(const store_release_delta *d)
{
	int rc = check_key(d->release_id, d->base_version);
	if (rc == PQ_OK)
		rc = store__check_text(d->base_release_id, STORE_ID_MAX, false, "base release id");
	if (rc == PQ_OK)
		rc = store__check_sha256(d->base_sha256, false, "base image SHA-256");
	if (rc == PQ_OK)
		rc = store__check_sha256(d->file_sha256, d->state != STORE_DELTA_READY,
		                         "delta SHA-256");
	if (rc == PQ_OK)
		rc = store__check_text(d->error, STORE_DELTA_ERROR_MAX,
		                       d->state == STORE_DELTA_FAILED, "delta error");
	if (rc == PQ_OK)
		rc = store__check_text(d->input, sizeof(d->input) - 1, false, "delta input");
	if (rc != PQ_OK)
		return rc;
	if ((unsigned)d->state > STORE_DELTA_FAILED)
		return pq_err_set(PQ_ERR_INVAL, "delta state %d", (int)d->state);
	if (d->state == STORE_DELTA_READY && d->file_size <= 0)
		return pq_err_set(PQ_ERR_INVAL, "delta size %lld", (long long)d->file_size);
	if (strcmp(d->source, "computed") != 0 && strcmp(d->source, "uploaded") != 0)
		return pq_err_set(PQ_ERR_INVAL, "delta source '%.11s' not computed or uploaded",
		                  d->source);
	if (d->progress_done < 0 || d->progress_total < 0)
		return pq_err_set(PQ_ERR_INVAL, "delta progress below 0");
	return store__check_time(d->created_ms, "created");
}

/* Inserts d in the transaction store_release_delta_insert opened. */
static int delta_insert(store *s, const store_release_delta *d)
{
	bool found = false;
	store_val k[] = {SV_TEXT(d->release_id)};
	int rc = store__exists(s, "SELECT COUNT(*) FROM releases WHERE id = ?", k, 1, &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s", d->release_id);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(d->release_id),
	                 SV_TEXT(d->base_version),
	                 SV_TEXT(d->base_release_id),
	                 SV_TEXT(d->base_sha256),
	                 SV_TEXT(store_delta_state_name(d->state)),
	                 SV_INT(d->progress_done),
	                 SV_INT(d->progress_total),
	                 SV_TEXT(d->error),
	                 SV_TEXT(d->file_sha256),
	                 SV_INT(d->file_size),
	                 SV_TEXT(d->source),
	                 SV_TEXT(d->input),
	                 SV_INT(d->created_ms),
	                 SV_INT(d->updated_ms ? d->updated_ms : d->created_ms)};
	rc =
	    store_exec(s,
	               "INSERT INTO release_deltas (" DELTA_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
	               " ?, ?, ?, ?, ?, ?)",
	               p, 14, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "release %s has a delta from %s already", d->release_id,
		            d->base_version);
	return rc;
}

int store_release_delta_insert(store *s, const store_release_delta *d)
{
	if (!s || !d)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_insert: bad arguments");
	int rc = check_delta(d);
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, delta_insert(s, d));
}

int store_release_delta_get(store *s, const char *release_id, const char *base_version,
                            store_release_delta *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = check_key(release_id, base_version);
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(release_id), SV_TEXT(base_version)};
	rc = store__get_one(s,
	                    "SELECT " DELTA_COLS " FROM release_deltas WHERE release_id = ? AND"
	                    " base_version = ?",
	                    p, 2, row_delta, out, "delta", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "release %s has no delta from %s", release_id,
		                base_version);
	return rc;
}

int store_release_delta_delete(store *s, const char *release_id, const char *base_version)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_delete: no store");
	int rc = check_key(release_id, base_version);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_TEXT(release_id), SV_TEXT(base_version)};
	rc = store_exec(s, "DELETE FROM release_deltas WHERE release_id = ? AND base_version = ?",
	                p, 2, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "release %s has no delta from %s", release_id,
		                base_version);
	return rc;
}

typedef struct {
	int (*fn)(const store_release_delta *d, void *user);
	void *user;
} delta_list_ctx;

static int delta_list_row(const store_row *row, void *user)
{
	delta_list_ctx *c = user;
	store_release_delta d;
	int rc = row_delta(row, &d);
	return rc == PQ_OK ? c->fn(&d, c->user) : rc;
}

int store_release_delta_list(store *s, const char *release_id,
                             int (*fn)(const store_release_delta *d, void *user), void *user)
{
	if (!s || !fn)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_list: bad arguments");
	int rc = store__check_id(release_id, "release id");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(release_id)};
	delta_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT " DELTA_COLS " FROM release_deltas WHERE release_id = ?"
	                  " ORDER BY created_ms, base_version",
	                  p, 1, delta_list_row, &c, NULL);
}

int store_release_delta_pending(store *s, int64_t *n)
{
	if (!s || !n)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_pending: bad arguments");
	return store__query_int(s,
	                        "SELECT COUNT(*) FROM release_deltas WHERE state IN ('queued',"
	                        " 'running')",
	                        NULL, 0, n);
}

/* Claims the oldest queued delta in the transaction store_release_delta_claim opened. */
static int delta_claim(store *s, int64_t now_ms, store_release_delta *out, bool *found)
{
	int rc = store__get_one(s,
	                        "SELECT " DELTA_COLS " FROM release_deltas WHERE state = 'queued'"
	                        " ORDER BY created_ms, release_id, base_version LIMIT 1",
	                        NULL, 0, row_delta, out, "delta", found);
	if (rc != PQ_OK || !*found)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_INT(now_ms), SV_TEXT(out->release_id), SV_TEXT(out->base_version)};
	rc = store_exec(s,
	                "UPDATE release_deltas SET state = 'running', progress_done = 0,"
	                " progress_total = 0, updated_ms = ? WHERE release_id = ? AND"
	                " base_version = ? AND state = 'queued'",
	                p, 3, NULL, NULL, &changes);
	*found = rc == PQ_OK && changes == 1; /* another instance may have taken it */
	if (*found) {
		out->state = STORE_DELTA_RUNNING;
		out->progress_done = out->progress_total = 0;
		out->updated_ms = now_ms;
	}
	return rc;
}

int store_release_delta_claim(store *s, int64_t now_ms, store_release_delta *out, bool *found)
{
	if (!s || !out || !found)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_claim: bad arguments");
	*found = false;
	int rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	return store__end(s, delta_claim(s, now_ms, out, found));
}

int store_release_delta_requeue(store *s, int64_t now_ms, int64_t *n)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_requeue: no store");
	store_val p[] = {SV_INT(now_ms)};
	return store_exec(s,
	                  "UPDATE release_deltas SET state = 'queued', progress_done = 0,"
	                  " progress_total = 0, updated_ms = ? WHERE state = 'running'",
	                  p, 1, NULL, NULL, n);
}

int store_release_delta_progress(store *s, const char *release_id, const char *base_version,
                                 int64_t done, int64_t total, int64_t now_ms)
{
	if (!s || done < 0 || total < 0)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_progress: bad arguments");
	int rc = check_key(release_id, base_version);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_INT(done), SV_INT(total), SV_INT(now_ms), SV_TEXT(release_id),
	                 SV_TEXT(base_version)};
	rc = store_exec(s,
	                "UPDATE release_deltas SET progress_done = ?, progress_total = ?,"
	                " updated_ms = ? WHERE release_id = ? AND base_version = ? AND"
	                " state = 'running'",
	                p, 5, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "release %s has no running delta from %s",
		                release_id, base_version);
	return rc;
}

int store_release_delta_finish(store *s, const store_release_delta *d, int64_t now_ms)
{
	if (!s || !d || (d->state != STORE_DELTA_READY && d->state != STORE_DELTA_FAILED))
		return pq_err_set(PQ_ERR_INVAL, "store_release_delta_finish: bad arguments");
	int rc = check_delta(d);
	if (rc != PQ_OK)
		return rc;
	int64_t changes = 0;
	store_val p[] = {SV_TEXT(store_delta_state_name(d->state)),
	                 SV_INT(d->progress_done),
	                 SV_INT(d->progress_total),
	                 SV_TEXT(d->error),
	                 SV_TEXT(d->file_sha256),
	                 SV_INT(d->file_size),
	                 SV_INT(now_ms),
	                 SV_TEXT(d->release_id),
	                 SV_TEXT(d->base_version)};
	rc =
	    store_exec(s,
	               "UPDATE release_deltas SET state = ?, progress_done = ?, progress_total = ?,"
	               " error = ?, file_sha256 = ?, file_size = ?, input = '', updated_ms = ?"
	               " WHERE release_id = ? AND base_version = ? AND state = 'running'",
	               p, 9, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "release %s has no running delta from %s",
		                d->release_id, d->base_version);
	return rc;
}
