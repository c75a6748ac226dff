/* releases.c: releases (a full package; their deltas are in release_deltas.c) and the files
 * they name (store.h), once for both backends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/semver.h"
#include "store/store_int.h"

#define SQL_MAX 1024

#define RELEASE_COLS                                                                               \
	"id, title, notes, version, hardware_id, software_type, ecu_id, file_sha256, "             \
	"file_size, image_sha256, image_size, created_ms, created_by"

void store_release_clear(store_release *r)
{
	if (!r)
		return;
	free(r->notes);
	memset(r, 0, sizeof(*r));
}

static int row_release(const store_row *row, void *dst)
{
	store_release *r = dst;
	store__rd rd = store__rd_at(row, 0);
	store__rd_copy(&rd, r->id, sizeof(r->id));
	store__rd_copy(&rd, r->title, sizeof(r->title));
	store__rd_dup(&rd, &r->notes);
	store__rd_copy(&rd, r->version, sizeof(r->version));
	store__rd_copy(&rd, r->hardware_id, sizeof(r->hardware_id));
	store__rd_copy(&rd, r->software_type, sizeof(r->software_type));
	store__rd_copy(&rd, r->ecu_id, sizeof(r->ecu_id));
	store__rd_copy(&rd, r->file_sha256, sizeof(r->file_sha256));
	store__rd_i64(&rd, &r->file_size);
	store__rd_copy(&rd, r->image_sha256, sizeof(r->image_sha256));
	store__rd_i64(&rd, &r->image_size);
	store__rd_i64(&rd, &r->created_ms);
	store__rd_copy(&rd, r->created_by, sizeof(r->created_by));
	if (rd.rc != PQ_OK)
		store_release_clear(r);
	return rd.rc;
}

/* The text fields of a release, in the order they are checked. */
static int check_release_texts(const store_release *r)
{
	const store__text_rule texts[] = {
	    {r->id, STORE_ID_MAX, true, "release id"},
	    {r->title, STORE_TITLE_MAX, true, "title"},
	    {r->notes ? r->notes : "", STORE_TEXT_MAX, false, "notes"}, /* optional */
	    {r->version, STORE_VERSION_MAX, true, "version"},
	    {r->hardware_id, STORE_NAME_MAX, true, "hardware id"},
	    {r->software_type, sizeof(r->software_type) - 1, true, "software type"},
	    {r->ecu_id, STORE_NAME_MAX, true, "ECU id"},
	};
	return store__check_texts(texts, sizeof(texts) / sizeof(texts[0]));
}

static int check_release(const store_release *r)
{
	int rc = check_release_texts(r);
	if (rc != PQ_OK)
		return rc;
	rc = store__check_sha256(r->file_sha256, false, "package SHA-256");
	if (rc != PQ_OK)
		return rc;
	if (r->file_size <= 0)
		return pq_err_set(PQ_ERR_INVAL, "package size %lld", (long long)r->file_size);
	rc = store__check_sha256(r->image_sha256, false, "image SHA-256");
	if (rc != PQ_OK)
		return rc;
	if (r->image_size < 0)
		return pq_err_set(PQ_ERR_INVAL, "image size %lld", (long long)r->image_size);
	rc = store__check_time(r->created_ms, "created");
	if (rc != PQ_OK)
		return rc;
	return store__check_text(r->created_by, STORE_NAME_MAX, false, "created by");
}

int store_release_insert(store *s, const store_release *r)
{
	if (!s || !r)
		return pq_err_set(PQ_ERR_INVAL, "store_release_insert: bad arguments");
	int rc = check_release(r);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(r->id),          SV_TEXT(r->title),
	                 SV_TEXT(r->notes),       SV_TEXT(r->version),
	                 SV_TEXT(r->hardware_id), SV_TEXT(r->software_type),
	                 SV_TEXT(r->ecu_id),      SV_TEXT(r->file_sha256),
	                 SV_INT(r->file_size),    SV_TEXT(r->image_sha256),
	                 SV_INT(r->image_size),   SV_INT(r->created_ms),
	                 SV_TEXT(r->created_by),  SV_INT(store__version_counter(r->version))};
	rc = store_exec(s,
	                "INSERT INTO releases (" RELEASE_COLS ", version_counter) VALUES (?, ?, ?,"
	                " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	                p, 14, NULL, NULL, NULL);
	if (rc == PQ_ERR_EXISTS)
		pq_err_wrap(rc, "release %s, or %s %s %s for %s, exists already", r->id, r->ecu_id,
		            r->software_type, r->version, r->hardware_id);
	return rc;
}

int store_release_get(store *s, const char *id, store_release *out)
{
	if (!s || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_release_get: bad arguments");
	memset(out, 0, sizeof(*out));
	int rc = store__check_id(id, "release id");
	if (rc != PQ_OK)
		return rc;
	bool found = false;
	store_val p[] = {SV_TEXT(id)};
	rc = store__get_one(s, "SELECT " RELEASE_COLS " FROM releases WHERE id = ?", p, 1,
	                    row_release, out, "release", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s", id);
	if (rc != PQ_OK)
		store_release_clear(out);
	return rc;
}

typedef struct {
	int (*fn)(const store_release *r, void *user);
	void *user;
} release_list_ctx;

static int release_list_row(const store_row *row, void *user)
{
	release_list_ctx *c = user;
	store_release r;
	memset(&r, 0, sizeof(r));
	int rc = row_release(row, &r);
	if (rc == PQ_OK)
		rc = c->fn(&r, c->user);
	store_release_clear(&r);
	return rc;
}

/* q lowered, with the LIKE wildcards escaped by '!', between two '%': pat[2 * MAX + 3]. */
static void like_pattern(const char *q, char *pat)
{
	size_t n = 0;
	pat[n++] = '%';
	for (const char *p = q; *p; p++) {
		char ch = *p;
		if (ch == '%' || ch == '_' || ch == '!')
			pat[n++] = '!';
		pat[n++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	pat[n++] = '%';
	pat[n] = '\0';
}

/* The WHERE clause of f into where, its parameters into p (up to 6), pat the pattern. */
static int release_filter(const store_release_filter *f, char *where, size_t cap, store_val *p,
                          int *np, char *pat)
{
	pq_buf b;
	pq_buf_init_fixed(&b, where, cap);
	const store__text_rule texts[] = {
	    {f->hardware_id ? f->hardware_id : "", STORE_NAME_MAX, false, "hardware id"},
	    {f->ecu_id ? f->ecu_id : "", STORE_NAME_MAX, false, "ECU id"},
	    {f->q ? f->q : "", STORE_RELEASE_QUERY_MAX, false, "search text"},
	};
	int rc = store__check_texts(texts, sizeof(texts) / sizeof(texts[0]));
	if (rc != PQ_OK)
		return rc;
	if (f->hardware_id && f->hardware_id[0]) {
		pq_buf_str(&b, *np ? " AND hardware_id = ?" : " WHERE hardware_id = ?");
		p[(*np)++] = SV_TEXT(f->hardware_id);
	}
	if (f->ecu_id && f->ecu_id[0]) {
		pq_buf_str(&b, *np ? " AND ecu_id = ?" : " WHERE ecu_id = ?");
		p[(*np)++] = SV_TEXT(f->ecu_id);
	}
	if (f->q && f->q[0]) {
		like_pattern(f->q, pat);
		pq_buf_str(&b, *np ? " AND " : " WHERE ");
		pq_buf_str(&b, "(LOWER(title) LIKE ? ESCAPE '!' OR LOWER(version) LIKE ?"
		               " ESCAPE '!' OR LOWER(ecu_id) LIKE ? ESCAPE '!' OR"
		               " LOWER(hardware_id) LIKE ? ESCAPE '!')");
		for (int i = 0; i < 4; i++)
			p[(*np)++] = SV_TEXT(pat);
	}
	if (b.cut) /* cannot happen: the clauses are fixed and fit */
		return pq_err_set(PQ_ERR_RANGE, "release filter longer than %zu bytes", cap);
	return PQ_OK;
}

int store_release_list(store *s, const char *hardware_id, const store_page *pg,
                       int (*fn)(const store_release *r, void *user), void *user, int64_t *total)
{
	store_release_filter f = {.hardware_id = hardware_id};
	return store_release_search(s, &f, pg, fn, user, total);
}

int store_release_search(store *s, const store_release_filter *f, const store_page *pg,
                         int (*fn)(const store_release *r, void *user), void *user, int64_t *total)
{
	int64_t limit, offset;
	char sql[SQL_MAX], where[512], pat[2 * STORE_RELEASE_QUERY_MAX + 3];
	store_release_filter none = {0};
	store_val p[8];
	int np = 0;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_search: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc != PQ_OK)
		return rc;
	where[0] = '\0';
	rc = release_filter(f ? f : &none, where, sizeof(where), p, &np, pat);
	if (rc != PQ_OK)
		return rc;
	rc = store__build_sql(sql, sizeof(sql), "releases", where, "");
	if (rc != PQ_OK)
		return rc;
	rc = store__count_rows(s, sql, p, np, total);
	if (rc != PQ_OK)
		return rc;
	rc = store__build_sql(sql, sizeof(sql), "SELECT " RELEASE_COLS " FROM releases", where,
	                      " ORDER BY created_ms DESC, id LIMIT ? OFFSET ?");
	if (rc != PQ_OK || !fn)
		return rc;
	p[np++] = SV_INT(limit);
	p[np++] = SV_INT(offset);
	release_list_ctx c = {.fn = fn, .user = user};
	return store_exec(s, sql, p, np, release_list_row, &c, NULL);
}

/* Deletes release id (p: its id) in the transaction store_release_delete opened. */
static int release_delete(store *s, const char *id, const store_val *p)
{
	int64_t used = 0, changes = 0;
	/* campaign_releases has no cascade: the foreign key refuses the delete anyway; this
	 * check names the reason. */
	int rc = store__query_int(s, "SELECT COUNT(*) FROM campaign_releases WHERE release_id = ?",
	                          p, 1, &used);
	if (rc != PQ_OK)
		return rc;
	if (used > 0)
		return pq_err_set(PQ_ERR_EXISTS, "release %s is part of %lld campaign(s)", id,
		                  (long long)used);
	rc = store_exec(s, "DELETE FROM releases WHERE id = ?", p, 1, NULL, NULL, &changes);
	if (rc == PQ_OK && changes == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s", id);
	return rc;
}

int store_release_delete(store *s, const char *id)
{
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_release_delete: no store");
	int rc = store__check_id(id, "release id");
	if (rc != PQ_OK)
		return rc;
	rc = store_begin(s);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(id)};
	return store__end(s, release_delete(s, id, p));
}

int store_release_find(store *s, const char *hardware_id, const char *ecu_id,
                       const char *software_type, const char *version, store_release *out)
{
	if (!s || !hardware_id || !ecu_id || !software_type || !version || !out)
		return pq_err_set(PQ_ERR_INVAL, "store_release_find: bad arguments");
	memset(out, 0, sizeof(*out));
	bool found = false;
	store_val p[] = {SV_TEXT(hardware_id), SV_TEXT(ecu_id), SV_TEXT(software_type),
	                 SV_TEXT(version)};
	int rc = store__get_one(s,
	                        "SELECT " RELEASE_COLS " FROM releases WHERE hardware_id = ? AND"
	                        " ecu_id = ? AND software_type = ? AND version = ?",
	                        p, 4, row_release, out, "release", &found);
	if (rc == PQ_OK && !found)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no release %s %s of %s for %s", ecu_id, version,
		                software_type, hardware_id);
	if (rc != PQ_OK)
		store_release_clear(out);
	return rc;
}

int store_release_exists(store *s, const char *hardware_id, const char *ecu_id,
                         const char *software_type, const char *version, bool *found)
{
	if (!s || !hardware_id || !ecu_id || !software_type || !version || !found)
		return pq_err_set(PQ_ERR_INVAL, "store_release_exists: bad arguments");
	store_val p[] = {SV_TEXT(hardware_id), SV_TEXT(ecu_id), SV_TEXT(software_type),
	                 SV_TEXT(version)};
	return store__exists(s,
	                     "SELECT COUNT(*) FROM releases WHERE hardware_id = ? AND ecu_id = ?"
	                     " AND software_type = ? AND version = ?",
	                     p, 4, found);
}

int store_file_referenced(store *s, const char *sha256, bool *referenced)
{
	if (!s || !referenced)
		return pq_err_set(PQ_ERR_INVAL, "store_file_referenced: bad arguments");
	*referenced = false;
	int rc = store__check_sha256(sha256, false, "file SHA-256");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(sha256), SV_TEXT(sha256), SV_TEXT(sha256),
	                 SV_TEXT(sha256), SV_TEXT(sha256), SV_TEXT(sha256)};
	return store__exists(
	    s,
	    "SELECT COUNT(*) FROM (SELECT 1 AS one FROM releases WHERE file_sha256 = ? OR"
	    " image_sha256 = ? UNION ALL SELECT 1 AS one FROM release_deltas WHERE"
	    " file_sha256 = ? OR base_sha256 = ? UNION ALL SELECT 1 AS one FROM bundles WHERE"
	    " file_sha256 = ? UNION ALL SELECT 1 AS one FROM deployment_targets WHERE"
	    " file_sha256 = ? LIMIT 1) AS hit",
	    p, 6, referenced);
}

int store_file_known(store *s, const char *sha256, bool *known)
{
	if (!s || !known)
		return pq_err_set(PQ_ERR_INVAL, "store_file_known: bad arguments");
	*known = false;
	int rc = store__check_sha256(sha256, false, "file SHA-256");
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(sha256), SV_TEXT(sha256)};
	return store__exists(s,
	                     "SELECT COUNT(*) FROM (SELECT 1 AS one FROM releases WHERE"
	                     " file_sha256 = ? UNION ALL SELECT 1 AS one FROM release_deltas"
	                     " WHERE file_sha256 = ? AND state = 'ready' LIMIT 1) AS hit",
	                     p, 2, known);
}

/* ---- the newest release of each key ------------------------------------------------------ */

int64_t store__version_counter(const char *version)
{
	int64_t c = -1;
	if (semver_counter(version, &c) != PQ_OK) {
		pq_err_clear(); /* not a semantic version: not compared */
		c = -1;
	}
	return c;
}

typedef struct {
	char id[STORE_ID_MAX + 1];
	int64_t counter;
} counter_row;

typedef struct {
	counter_row *rows;
	size_t n, cap;
} counter_rows;

static int counter_row_read(const store_row *row, void *user)
{
	counter_rows *a = user;
	char version[STORE_VERSION_MAX + 1];
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 256;
		counter_row *r = realloc(a->rows, cap * sizeof(*r));
		if (!r)
			return pq_err_set(PQ_ERR_NOMEM, "release counters");
		a->rows = r;
		a->cap = cap;
	}
	store__rd rd = store__rd_at(row, 0);
	store__rd_copy(&rd, a->rows[a->n].id, sizeof(a->rows[a->n].id));
	store__rd_copy(&rd, version, sizeof(version));
	if (rd.rc == PQ_OK)
		a->rows[a->n++].counter = store__version_counter(version);
	return rd.rc;
}

int store__release_counters_fill(store *s)
{
	counter_rows a = {0};
	int rc =
	    store_exec(s, "SELECT id, version FROM releases", NULL, 0, counter_row_read, &a, NULL);
	for (size_t i = 0; rc == PQ_OK && i < a.n; i++) {
		store_val p[] = {SV_INT(a.rows[i].counter), SV_TEXT(a.rows[i].id)};
		rc = store_exec(s, "UPDATE releases SET version_counter = ? WHERE id = ?", p, 2,
		                NULL, NULL, NULL);
	}
	free(a.rows);
	return rc;
}

typedef struct {
	release_list_ctx list;
	int limit, n;
	bool *more;
} latest_ctx;

static int latest_row(const store_row *row, void *user)
{
	latest_ctx *c = user;
	if (c->n++ == c->limit) { /* the one row past the limit */
		*c->more = true;
		return PQ_OK;
	}
	return release_list_row(row, &c->list);
}

int store_release_latest(store *s, const store_release_filter *f, int limit,
                         int (*fn)(const store_release *r, void *user), void *user, bool *more)
{
	char sql[SQL_MAX], where[512], pat[2 * STORE_RELEASE_QUERY_MAX + 3];
	store_release_filter keys = {.hardware_id = f ? f->hardware_id : NULL,
	                             .ecu_id = f ? f->ecu_id : NULL};
	store_val p[8];
	int np = 0;
	if (!s || !fn || !more || limit < 1 || limit > STORE_LATEST_MAX || (f && f->q && f->q[0]))
		return pq_err_set(PQ_ERR_INVAL, "store_release_latest: bad arguments");
	*more = false;
	/* releases that are no semantic version are left out (the first clause) */
	p[np++] = SV_INT(0);
	snprintf(where, sizeof(where), " WHERE version_counter >= ?");
	size_t wl = strlen(where);
	int rc = release_filter(&keys, where + wl, sizeof(where) - wl, p, &np, pat);
	if (rc != PQ_OK)
		return rc;
	/* one row per key: the window numbers each key's releases, highest counter first */
	rc = store__build_sql(
	    sql, sizeof(sql),
	    "SELECT " RELEASE_COLS " FROM (SELECT " RELEASE_COLS ", ROW_NUMBER()"
	    " OVER (PARTITION BY hardware_id, ecu_id, software_type ORDER BY"
	    " version_counter DESC, created_ms DESC, id) AS rn FROM releases",
	    where, ") r WHERE rn = 1 ORDER BY hardware_id, ecu_id, software_type LIMIT ?");
	if (rc != PQ_OK)
		return rc;
	p[np++] = SV_INT(limit + 1);
	latest_ctx c = {.list = {.fn = fn, .user = user}, .limit = limit, .more = more};
	return store_exec(s, sql, p, np, latest_row, &c, NULL);
}
