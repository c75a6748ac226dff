/* bundle_store.c: campaign bundles (bundle_store.h), once for both backends. */
#include <stdlib.h>
#include <string.h>

#include "store/bundle_store.h"
#include "store/store_int.h"

#define BUNDLE_COLS "id, file_sha256, file_size, created_ms, record"
#define SQL_MAX     512

void store_bundle_clear(store_bundle *b)
{
	if (!b)
		return;
	free(b->record);
	memset(b, 0, sizeof(*b));
}

static int row_bundle(const store_row *row, void *out)
{
	store_bundle *b = out;
	memset(b, 0, sizeof(*b));
	store__rd rd = store__rd_at(row, 0);
	store__rd_copy(&rd, b->id, sizeof(b->id));
	store__rd_copy(&rd, b->file_sha256, sizeof(b->file_sha256));
	store__rd_i64(&rd, &b->file_size);
	store__rd_i64(&rd, &b->created_ms);
	store__rd_dup(&rd, &b->record);
	if (rd.rc != PQ_OK)
		store_bundle_clear(b);
	return rd.rc;
}

int store_bundle_insert(store *s, const store_bundle *b)
{
	if (!s || !b)
		return pq_err_set(PQ_ERR_INVAL, "store_bundle_insert: bad arguments");
	int rc = store__check_id(b->id, "bundle id");
	if (rc == PQ_OK)
		rc = store__check_sha256(b->file_sha256, false, "bundle SHA-256");
	if (rc == PQ_OK && b->file_size <= 0)
		rc = pq_err_set(PQ_ERR_INVAL, "bundle size %lld", (long long)b->file_size);
	if (rc == PQ_OK)
		rc = store__check_time(b->created_ms, "bundle creation time");
	if (rc == PQ_OK && !b->record)
		rc = pq_err_set(PQ_ERR_INVAL, "bundle: no record");
	if (rc == PQ_OK)
		rc = store__check_json(b->record, STORE_BUNDLE_RECORD_MAX, "bundle record");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(b->id), SV_TEXT(b->file_sha256), SV_INT(b->file_size),
	                 SV_INT(b->created_ms), SV_TEXT(b->record)};
	rc = store_exec(s, "INSERT INTO bundles (" BUNDLE_COLS ") VALUES (?, ?, ?, ?, ?)", p, 5,
	                NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "bundle %s exists", b->id);
	return rc;
}

int store_bundle_get(store *s, const char *id, store_bundle *out)
{
	bool found = false;
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_bundle_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(id, "bundle id");
	if (rc != PQ_OK)
		return pq_err_set(PQ_ERR_NOTFOUND, "no bundle '%.64s'", id ? id : "");
	store_val p[] = {SV_TEXT(id)};
	rc = store__get_one(s, "SELECT " BUNDLE_COLS " FROM bundles WHERE id = ?", p, 1, row_bundle,
	                    out, "bundle", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no bundle %s", id);
	return rc;
}

typedef struct {
	int (*fn)(const store_bundle *b, void *user);
	void *user;
} list_ctx;

static int list_row(const store_row *row, void *user)
{
	list_ctx *c = user;
	store_bundle b;
	int rc = row_bundle(row, &b);
	if (rc == PQ_OK)
		rc = c->fn(&b, c->user);
	store_bundle_clear(&b);
	return rc;
}

int store_bundle_list(store *s, const store_page *pg, int (*fn)(const store_bundle *b, void *user),
                      void *user, int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_bundle_list: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = store__count_rows(s, "bundles", NULL, 0, total);
	if (rc != PQ_OK || !fn)
		return rc;
	store_val p[] = {SV_INT(limit), SV_INT(offset)};
	list_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT " BUNDLE_COLS " FROM bundles ORDER BY created_ms DESC, id"
	                  " LIMIT ? OFFSET ?",
	                  p, 2, list_row, &c, NULL);
}
