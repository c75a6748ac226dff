/* store.c: the backend-independent SQL core: open, exec, transactions as savepoints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define URL_MAX            4096
#define DEFAULT_TIMEOUT_MS 5000

int store__parse_i64(const char *text, int64_t *out)
{
	if (!text || !*text)
		return pq_err_set(PQ_ERR_FORMAT, "expected an integer, got an empty value");
	char *end = NULL;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno != 0 || !end || *end != '\0')
		return pq_err_set(PQ_ERR_FORMAT, "expected an integer, got '%.40s'", text);
	*out = (int64_t)v;
	return PQ_OK;
}

int store_open(const store_config *cfg, store **out)
{
	store *s = NULL;
	int rc;
	if (!out)
		return pq_err_set(PQ_ERR_INVAL, "store_open: no output");
	*out = NULL;
	if (!cfg || !cfg->url)
		return pq_err_set(PQ_ERR_INVAL, "store_open: no database given");
	if (strnlen(cfg->url, URL_MAX + 1) > URL_MAX)
		return pq_err_set(PQ_ERR_INVAL, "store_open: database URL longer than %d", URL_MAX);
	if (cfg->busy_timeout_ms < 0)
		return pq_err_set(PQ_ERR_INVAL, "store_open: negative timeout %d",
		                  cfg->busy_timeout_ms);
	s = calloc(1, sizeof(*s));
	if (!s)
		return pq_err_set(PQ_ERR_NOMEM, "store_open");
	switch (cfg->backend) {
	case STORE_SQLITE:
		s->ops = &store__sqlite_ops;
		break;
	case STORE_POSTGRES:
		s->ops = &store__postgres_ops;
		break;
	default:
		rc = pq_err_set(PQ_ERR_INVAL, "store_open: unknown backend %d", (int)cfg->backend);
		goto out;
	}
	s->backend = cfg->backend;
	s->timeout_ms = cfg->busy_timeout_ms ? cfg->busy_timeout_ms : DEFAULT_TIMEOUT_MS;
	rc = s->ops->open(s, cfg->url, s->timeout_ms);
	if (rc != PQ_OK)
		goto out;
	rc = store__migrate(s);
	if (rc != PQ_OK) {
		pq_err_wrap(rc, "%s schema migration", s->ops->name);
		goto out;
	}
	*out = s;
	s = NULL;
out:
	store_close(s);
	return rc;
}

void store_close(store *s)
{
	if (!s)
		return;
	if (s->ops && s->db)
		s->ops->close(s); /* an open transaction is rolled back by the database */
	free(s);
}

store_backend store_get_backend(const store *s)
{
	return s->backend;
}

int store_exec(store *s, const char *sql, const store_val *params, int nparams, store_row_fn fn,
               void *user, int64_t *changes)
{
	if (changes)
		*changes = 0;
	if (!s || !s->db || !sql || nparams < 0 || (nparams > 0 && !params))
		return pq_err_set(PQ_ERR_INVAL, "store_exec: bad arguments");
	if (s->failed)
		return pq_err_set(PQ_ERR_IO,
		                  "transaction aborted by an earlier error: roll it back");
	bool db_failed = false;
	int rc = s->ops->exec(s, sql, params, nparams, fn, user, changes, &db_failed);
	/* PostgreSQL refuses every further statement in a transaction after a failure, and
	 * commits it as a rollback: both backends behave so, and commit reports it. */
	if (rc != PQ_OK && db_failed && s->depth > 0)
		s->failed = true;
	return rc;
}

/* Internal statements of fixed text, no parameters or rows. */
static int exec_plain(store *s, const char *sql)
{
	return store_exec(s, sql, NULL, 0, NULL, NULL, NULL);
}

int store_begin(store *s)
{
	char sql[32];
	if (!s || !s->db)
		return pq_err_set(PQ_ERR_INVAL, "store_begin: no store");
	if (s->failed)
		return pq_err_set(PQ_ERR_IO,
		                  "transaction aborted by an earlier error: roll it back");
	if (s->depth >= 64)
		return pq_err_set(PQ_ERR_RANGE, "store_begin: transactions nested too deeply");
	if (s->depth == 0)
		snprintf(sql, sizeof(sql), "%s", s->ops->begin_sql);
	else
		snprintf(sql, sizeof(sql), "SAVEPOINT pqota_sp%d", s->depth);
	int rc = exec_plain(s, sql);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "begin");
	s->depth++;
	return PQ_OK;
}

int store_commit(store *s)
{
	char sql[48];
	if (!s || !s->db || s->depth == 0)
		return pq_err_set(PQ_ERR_INVAL, "store_commit: no open transaction");
	if (s->failed) {
		store_rollback(s);
		return pq_err_set(PQ_ERR_IO, "commit: a statement in the transaction failed; "
		                             "rolled back");
	}
	if (s->depth == 1)
		snprintf(sql, sizeof(sql), "COMMIT");
	else
		snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT pqota_sp%d", s->depth - 1);
	int rc = exec_plain(s, sql);
	if (rc != PQ_OK) {
		/* COMMIT can fail (deferred constraints, serialisation, I/O): undo the level. */
		s->failed = false;
		store_rollback(s);
		return pq_err_wrap(rc, "commit");
	}
	s->depth--;
	return PQ_OK;
}

void store_rollback(store *s)
{
	char sql[80];
	if (!s || !s->db || s->depth == 0)
		return;
	s->failed = false; /* the rollback statements must run */
	if (!s->ops->in_transaction(s)) {
		/* The database ended the transaction itself (SQLite after some I/O errors, a
		 * lost connection): the outer levels are gone too, so they fail until rolled
		 * back rather than continue outside any transaction. */
		s->depth--;
		s->failed = s->depth > 0;
		return;
	}
	int rc;
	if (s->depth == 1) {
		rc = exec_plain(s, "ROLLBACK");
	} else {
		snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT pqota_sp%d", s->depth - 1);
		rc = exec_plain(s, sql);
		if (rc == PQ_OK) {
			snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT pqota_sp%d", s->depth - 1);
			rc = exec_plain(s, sql);
		}
	}
	s->depth--;
	/* A rollback that failed leaves the outer levels unusable; nothing else to report. */
	s->failed = rc != PQ_OK && s->depth > 0;
}

int store__end(store *s, int rc)
{
	if (rc != PQ_OK) {
		store_rollback(s);
		return rc;
	}
	return store_commit(s);
}

static int first_int(const store_row *row, void *user)
{
	int64_t *out = user;
	if (row->ncols < 1 || !row->cols[0])
		return PQ_OK;
	return store__parse_i64(row->cols[0], out);
}

int store__query_int(store *s, const char *sql, const store_val *params, int nparams, int64_t *out)
{
	*out = 0;
	return store_exec(s, sql, params, nparams, first_int, out, NULL);
}

int store_schema_version(store *s, int *version)
{
	int64_t v = 0;
	if (!s || !version)
		return pq_err_set(PQ_ERR_INVAL, "store_schema_version: bad arguments");
	int rc = store__query_int(s, "SELECT MAX(version) FROM schema_version", NULL, 0, &v);
	if (rc != PQ_OK)
		return rc;
	*version = (int)v;
	return PQ_OK;
}

int store_ping(store *s)
{
	int64_t v = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_ping: no store");
	int rc = store__query_int(s, "SELECT 1", NULL, 0, &v);
	if (rc == PQ_OK && v != 1)
		rc = pq_err_set(PQ_ERR_IO, "ping: unexpected answer %lld", (long long)v);
	return rc;
}
