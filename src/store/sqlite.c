/* sqlite.c: the SQLite backend of the store (one file, WAL, foreign keys, busy timeout). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/time.h"
#include "store/store_int.h"

#define COMPONENT "store"

static sqlite3 *db_of(store *s)
{
	return (sqlite3 *)s->db;
}

/* Maps a failed call's result code to a pq_err, with SQLite's message as the detail. */
static int sqlite_err(sqlite3 *db, int rc, const char *what)
{
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return pq_err_set(PQ_ERR_EXISTS, "sqlite %s: %s", what, msg);
	if ((rc & 0xff) == SQLITE_NOMEM)
		return pq_err_set(PQ_ERR_NOMEM, "sqlite %s: %s", what, msg);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return pq_err_set(PQ_ERR_TIMEOUT, "sqlite %s: %s (code %d)", what, msg, rc);
	return pq_err_set(PQ_ERR_IO, "sqlite %s: %s (code %d)", what, msg, rc);
}

static bool only_space(const char *p)
{
	for (; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != ';')
			return false;
	return true;
}

static int bind_params(sqlite3 *db, sqlite3_stmt *st, const store_val *params, int nparams)
{
	if (sqlite3_bind_parameter_count(st) != nparams)
		return pq_err_set(PQ_ERR_INVAL, "statement has %d placeholders, %d values given",
		                  sqlite3_bind_parameter_count(st), nparams);
	for (int i = 0; i < nparams; i++) {
		int rc;
		switch (params[i].type) {
		case STORE_NULL:
			rc = sqlite3_bind_null(st, i + 1);
			break;
		case STORE_INT:
			rc = sqlite3_bind_int64(st, i + 1, params[i].i);
			break;
		case STORE_TEXT:
			if (!params[i].s)
				rc = sqlite3_bind_null(st, i + 1);
			else
				rc = sqlite3_bind_text(st, i + 1, params[i].s, -1, SQLITE_STATIC);
			break;
		default:
			return pq_err_set(PQ_ERR_INVAL, "parameter %d: bad type %d", i + 1,
			                  (int)params[i].type);
		}
		if (rc != SQLITE_OK)
			return sqlite_err(db, rc, "bind");
	}
	return PQ_OK;
}

static int sqlite_exec(store *s, const char *sql, const store_val *params, int nparams,
                       store_row_fn fn, void *user, int64_t *changes, bool *db_failed)
{
	sqlite3 *db = db_of(s);
	sqlite3_stmt *st = NULL;
	const char **cols = NULL;
	const char *tail = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
	if (rc != SQLITE_OK) {
		*db_failed = true;
		rc = sqlite_err(db, rc, "prepare");
		goto out;
	}
	if (!st || (tail && !only_space(tail))) {
		rc = pq_err_set(PQ_ERR_INVAL, "store_exec runs exactly one statement");
		goto out;
	}
	rc = bind_params(db, st, params, nparams);
	if (rc != PQ_OK)
		goto out;
	int ncols = sqlite3_column_count(st);
	if (ncols > 0) {
		cols = calloc((size_t)ncols, sizeof(*cols));
		if (!cols) {
			rc = pq_err_set(PQ_ERR_NOMEM, "sqlite: %d columns", ncols);
			goto out;
		}
	}
	bool stopped = false;
	for (;;) {
		int step = sqlite3_step(st);
		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW) {
			*db_failed = true;
			rc = sqlite_err(db, step, "step");
			goto out;
		}
		if (!fn || stopped)
			continue; /* run to completion (RETURNING, DML with rows) */
		for (int i = 0; i < ncols; i++) {
			cols[i] = (const char *)sqlite3_column_text(st, i);
			if (!cols[i] && sqlite3_errcode(db) == SQLITE_NOMEM) {
				rc = pq_err_set(PQ_ERR_NOMEM, "sqlite: column %d", i);
				goto out;
			}
		}
		store_row row = {.ncols = ncols, .cols = cols};
		rc = fn(&row, user);
		if (rc != PQ_OK) {
			if (sqlite3_stmt_readonly(st))
				goto out; /* nothing to finish: stop reading */
			stopped = true;   /* a write must complete; report fn's result after */
		}
	}
	if (changes)
		*changes = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes64(db);
out:
	free(cols);
	sqlite3_finalize(st);
	return rc;
}

/* Reads the single text value a PRAGMA returns. */
static int pragma_text(const store_row *row, void *user)
{
	char *out = user;
	const char *v = row->ncols > 0 && row->cols[0] ? row->cols[0] : "";
	size_t n = strlen(v);
	if (n >= 16)
		n = 15;
	memcpy(out, v, n);
	out[n] = '\0';
	return PQ_OK;
}

static int run_pragma(store *s, const char *sql, char out[16])
{
	bool dbf = false;
	out[0] = '\0';
	return sqlite_exec(s, sql, NULL, 0, pragma_text, out, NULL, &dbf);
}

static bool sqlite_in_transaction(store *s)
{
	return sqlite3_get_autocommit(db_of(s)) == 0;
}

static void sqlite_close(store *s)
{
	if (s->db)
		sqlite3_close_v2(db_of(s));
	s->db = NULL;
}

/* A new database file is created owner-only, whatever the umask: SQLite gives its -wal and
 * -shm files the database file's mode. URIs and in-memory databases are left to SQLite. */
static int create_private(const char *url)
{
	if (!url[0] || url[0] == ':' || strncmp(url, "file:", 5) == 0)
		return PQ_OK;
	int fd = open(url, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return pq_err_set(PQ_ERR_IO, "sqlite open %s: %s", url, strerror(errno));
	return PQ_OK;
}

static int sqlite_open(store *s, const char *url, int timeout_ms)
{
	sqlite3 *db = NULL;
	char val[16];
	int rc = create_private(url);
	if (rc != PQ_OK)
		return rc;
	rc = sqlite3_open_v2(
	    url, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = pq_err_set(db ? PQ_ERR_IO : PQ_ERR_NOMEM, "sqlite open %s: %s", url,
		                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close_v2(db);
		return rc;
	}
	s->db = db;
	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_busy_timeout(db, timeout_ms);
	if (rc != SQLITE_OK) {
		rc = sqlite_err(db, rc, "busy_timeout");
		goto out;
	}
	/* WAL: readers never block the writer. An in-memory database answers "memory".
	 * Switching a new file to WAL needs an exclusive lock and SQLite does not run the busy
	 * handler for it, so concurrent openers retry until the busy timeout. */
	for (int waited = 0;; waited += 10) {
		rc = run_pragma(s, "PRAGMA journal_mode=WAL", val);
		if (rc != PQ_ERR_TIMEOUT || waited >= timeout_ms)
			break;
		pq_sleep_ms(10);
	}
	if (rc != PQ_OK)
		goto out;
	if (strcmp(val, "wal") != 0 && strcmp(val, "memory") != 0)
		pq_log(PQ_LOG_WARN, COMPONENT, "sqlite %s: journal mode is '%s', not WAL", url,
		       val);
	rc = run_pragma(s, "PRAGMA foreign_keys=ON", val);
	if (rc != PQ_OK)
		goto out;
	rc = run_pragma(s, "PRAGMA foreign_keys", val);
	if (rc != PQ_OK)
		goto out;
	if (strcmp(val, "1") != 0) {
		rc = pq_err_set(PQ_ERR_UNSUPPORTED, "sqlite: foreign keys cannot be enabled");
		goto out;
	}
	/* Durable at each checkpoint, consistent always: the documented WAL setting. */
	rc = run_pragma(s, "PRAGMA synchronous=NORMAL", val);
out:
	if (rc != PQ_OK)
		sqlite_close(s);
	return rc;
}

const store__ops store__sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .exec = sqlite_exec,
    .in_transaction = sqlite_in_transaction,
    /* IMMEDIATE: take the write lock up front, so a transaction never fails half-way
     * when upgrading from a read lock (and concurrent migrations are serialised). */
    .begin_sql = "BEGIN IMMEDIATE",
    .schema_lock_sql = NULL,
    .for_update = "",
    .ddl_key_text = "TEXT",
    .ddl_serial_pk = "INTEGER PRIMARY KEY",
};
