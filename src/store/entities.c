/* entities.c: what every entity file of the store shares: input checks, statement helpers and
 * row decoding (store_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/text.h"
#include "store/store_int.h"

/* ---- input checks ------------------------------------------------------------------ */

/* A UTF-8 string of at most max bytes (required: at least one). Reads at most max + 1
 * bytes, so a fixed-size field without its NUL is rejected rather than overrun. UTF-8 as
 * RFC 3629 has it: PostgreSQL refuses anything else, SQLite would store it; both refuse it
 * here. */
int store__check_text(const char *v, size_t max, bool required, const char *what)
{
	if (!v)
		return pq_err_set(PQ_ERR_INVAL, "%s: missing", what);
	size_t n = strnlen(v, max + 1);
	if (n > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: longer than %zu bytes", what, max);
	if (required && n == 0)
		return pq_err_set(PQ_ERR_INVAL, "%s: empty", what);
	if (!pq_utf8_valid((const unsigned char *)v, n))
		return pq_err_set(PQ_ERR_INVAL, "%s: not UTF-8", what);
	return PQ_OK;
}

/* A SHA-256 as 64 lowercase hex digits (or "" when allow_empty). */
int store__check_sha256(const char *v, bool allow_empty, const char *what)
{
	if (!v)
		return pq_err_set(PQ_ERR_INVAL, "%s: missing", what);
	size_t n = strnlen(v, 65);
	if (n == 0 && allow_empty)
		return PQ_OK;
	if (n != 64)
		return pq_err_set(PQ_ERR_INVAL, "%s: not a SHA-256 (64 hex digits)", what);
	for (size_t i = 0; i < 64; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return pq_err_set(PQ_ERR_INVAL, "%s: not lowercase hex", what);
	return PQ_OK;
}

/* Optional JSON text (NULL allowed) of at most max bytes. */
int store__check_json(const char *v, size_t max, const char *what)
{
	if (!v)
		return PQ_OK;
	size_t n = strnlen(v, max + 1);
	if (n > max)
		return pq_err_set(PQ_ERR_INVAL, "%s: longer than %zu bytes", what, max);
	json_error_t jerr;
	json_t *j = json_loadb(v, n, JSON_DECODE_ANY, &jerr);
	if (!j && json_error_code(&jerr) == json_error_out_of_memory)
		return pq_err_set(PQ_ERR_NOMEM, "%s: parsing %zu bytes of JSON", what, n);
	if (!j)
		return pq_err_set(PQ_ERR_INVAL, "%s: not JSON: %s (at %d)", what, jerr.text,
		                  jerr.position);
	json_decref(j);
	return PQ_OK;
}

int store__check_time(int64_t ms, const char *what)
{
	if (ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "%s: negative time", what);
	return PQ_OK;
}

int store__check_vin(const char *vin)
{
	return store__check_text(vin, STORE_VIN_MAX, true, "VIN");
}

int store__check_texts(const store__text_rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc =
		    store__check_text(rules[i].v, rules[i].max, rules[i].required, rules[i].what);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

int store__check_id(const char *id, const char *what)
{
	return store__check_text(id, STORE_ID_MAX, true, what);
}

int store__page_args(const store_page *pg, int64_t *limit, int64_t *offset)
{
	*limit = STORE_PAGE_DEFAULT;
	*offset = 0;
	if (!pg)
		return PQ_OK;
	if (pg->limit < 0 || pg->limit > STORE_PAGE_MAX)
		return pq_err_set(PQ_ERR_INVAL, "page limit %d outside 1..%d", pg->limit,
		                  STORE_PAGE_MAX);
	if (pg->offset < 0)
		return pq_err_set(PQ_ERR_INVAL, "negative page offset");
	if (pg->limit > 0)
		*limit = pg->limit;
	*offset = pg->offset;
	return PQ_OK;
}

/* ---- statements ---------------------------------------------------------------------- */

int store__build_sql(char *buf, size_t cap, const char *head, const char *where, const char *tail)
{
	int n = snprintf(buf, cap, "%s%s%s", head, where, tail);
	if (n < 0 || (size_t)n >= cap)
		return pq_err_set(PQ_ERR_RANGE, "statement longer than %zu bytes", cap);
	return PQ_OK;
}

int store__count_rows(store *s, const char *from_where, const store_val *p, int np, int64_t *total)
{
	char sql[1024];
	if (!total)
		return PQ_OK;
	int rc = store__build_sql(sql, sizeof(sql), "SELECT COUNT(*) FROM ", from_where, "");
	if (rc != PQ_OK)
		return rc;
	return store__query_int(s, sql, p, np, total);
}

int store__exists(store *s, const char *sql, const store_val *p, int np, bool *found)
{
	int64_t n = 0;
	int rc = store__query_int(s, sql, p, np, &n);
	*found = n > 0;
	return rc;
}

/* ---- row decoding -------------------------------------------------------------------- */

const char *store__col(const store_row *r, int i)
{
	return i < r->ncols ? r->cols[i] : NULL;
}

/* Copies a column into a fixed buffer; a value that does not fit is an error (never cut). */
int store__col_copy(const store_row *r, int i, char *dst, size_t cap)
{
	const char *v = store__col(r, i);
	if (!v) {
		dst[0] = '\0';
		return PQ_OK;
	}
	size_t n = strlen(v);
	if (n >= cap)
		return pq_err_set(PQ_ERR_FORMAT, "stored value of %zu bytes exceeds %zu", n,
		                  cap - 1);
	memcpy(dst, v, n + 1);
	return PQ_OK;
}

int store__col_dup(const store_row *r, int i, char **dst)
{
	const char *v = store__col(r, i);
	*dst = NULL;
	if (!v)
		return PQ_OK;
	*dst = strdup(v);
	if (!*dst)
		return pq_err_set(PQ_ERR_NOMEM, "copying a %zu-byte value", strlen(v));
	return PQ_OK;
}

int store__col_i64(const store_row *r, int i, int64_t *out)
{
	const char *v = store__col(r, i);
	*out = 0;
	return v ? store__parse_i64(v, out) : PQ_OK;
}

int store__col_int(const store_row *r, int i, int *out)
{
	int64_t v = 0;
	int rc = store__col_i64(r, i, &v);
	if (rc == PQ_OK && (v < -2147483647 - 1 || v > 2147483647))
		rc = pq_err_set(PQ_ERR_FORMAT, "stored integer %lld out of range", (long long)v);
	*out = (int)v;
	return rc;
}

store__rd store__rd_at(const store_row *r, int first)
{
	return (store__rd){.row = r, .col = first, .rc = PQ_OK};
}

/* Takes the next column: its index while no read has failed, -1 after a failure. */
static int rd_next(store__rd *rd)
{
	int i = rd->col++;
	return rd->rc == PQ_OK ? i : -1;
}

const char *store__rd_text(store__rd *rd)
{
	int i = rd_next(rd);
	return i >= 0 ? store__col(rd->row, i) : NULL;
}

void store__rd_copy(store__rd *rd, char *dst, size_t cap)
{
	int i = rd_next(rd);
	if (i >= 0)
		rd->rc = store__col_copy(rd->row, i, dst, cap);
}

void store__rd_dup(store__rd *rd, char **dst)
{
	int i = rd_next(rd);
	if (i >= 0)
		rd->rc = store__col_dup(rd->row, i, dst);
}

void store__rd_i64(store__rd *rd, int64_t *out)
{
	int i = rd_next(rd);
	if (i >= 0)
		rd->rc = store__col_i64(rd->row, i, out);
}

void store__rd_int(store__rd *rd, int *out)
{
	int i = rd_next(rd);
	if (i >= 0)
		rd->rc = store__col_int(rd->row, i, out);
}

/* ---- one row ----------------------------------------------------------------------------- */

typedef struct {
	int (*decode)(const store_row *r, void *out);
	void *out;
	const char *what;
	bool found;
} one_ctx;

static int one_row(const store_row *r, void *user)
{
	one_ctx *c = user;
	if (c->found)
		return pq_err_set(PQ_ERR_FORMAT, "more than one %s with one key", c->what);
	c->found = true;
	return c->decode(r, c->out);
}

int store__get_one(store *s, const char *sql, const store_val *params, int nparams,
                   int (*decode)(const store_row *r, void *out), void *out, const char *what,
                   bool *found)
{
	one_ctx c = {.decode = decode, .out = out, .what = what};
	int rc = store_exec(s, sql, params, nparams, one_row, &c, NULL);
	*found = c.found;
	return rc;
}
