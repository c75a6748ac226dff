/* postgres.c: the PostgreSQL backend of the store (libpq, text-format bound parameters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/log.h"
#include "store/store_int.h"

#define COMPONENT "store"

/* Type OIDs from PostgreSQL's pg_type.dat (stable since 7.x). */
#define OID_INT8 20
#define OID_TEXT 25

/* The advisory lock key that serialises migrations: "pqota" in ASCII. */
#define SCHEMA_LOCK_KEY "482939466849"

static PGconn *conn_of(store *s)
{
	return (PGconn *)s->db;
}

/* One line of the server's message (libpq's end in "\n"). */
static int pg_msg_len(const char *msg)
{
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return n > 1000 ? 1000 : (int)n;
}

static int pg_result_err(PGconn *c, const PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
	if (!msg || !*msg)
		msg = PQerrorMessage(c);
	if (state && strcmp(state, "23505") == 0) /* unique_violation */
		return pq_err_set(PQ_ERR_EXISTS, "postgres %s: %.*s", what, pg_msg_len(msg), msg);
	return pq_err_set(PQ_ERR_IO, "postgres %s: %.*s%s%s%s", what, pg_msg_len(msg), msg,
	                  state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
}

/* Rewrites '?' placeholders to $1..$n, leaving quoted literals, quoted identifiers and
 * comments alone (standard strings only: no E'' escapes or dollar quoting). Returns the number of
 * placeholders through *count. */
static int rewrite_placeholders(const char *sql, char **out, int *count)
{
	size_t len = strlen(sql);
	size_t cap = len * 4 + 1; /* "?" -> "$NNN" at most (placeholders are < 1000 here) */
	char *buf = malloc(cap);
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "postgres: rewriting a %zu-byte statement", len);
	size_t o = 0;
	int n = 0;
	char quote = 0; /* '\'' or '"' while inside one */
	bool line_comment = false, block_comment = false;
	for (size_t i = 0; i < len; i++) {
		char c = sql[i];
		if (line_comment) {
			if (c == '\n')
				line_comment = false;
		} else if (block_comment) {
			if (c == '*' && sql[i + 1] == '/') {
				buf[o++] = c;
				c = sql[++i];
				block_comment = false;
			}
		} else if (quote) {
			if (c == quote) /* a doubled quote re-enters at the next character */
				quote = 0;
		} else if (c == '\'' || c == '"') {
			quote = c;
		} else if (c == '-' && sql[i + 1] == '-') {
			line_comment = true;
		} else if (c == '/' && sql[i + 1] == '*') {
			buf[o++] = c;
			c = sql[++i];
			block_comment = true;
		} else if (c == '?') {
			n++;
			if (n > 999) {
				free(buf);
				return pq_err_set(PQ_ERR_RANGE,
				                  "postgres: more than 999 parameters");
			}
			int w = snprintf(buf + o, cap - o, "$%d", n);
			if (w < 0 || (size_t)w >= cap - o) {
				free(buf);
				return pq_err_set(PQ_ERR_RANGE, "postgres: statement too long");
			}
			o += (size_t)w;
			continue;
		}
		buf[o++] = c;
	}
	buf[o] = '\0';
	if (quote) {
		free(buf);
		return pq_err_set(PQ_ERR_INVAL, "postgres: unterminated quote in statement");
	}
	*out = buf;
	*count = n;
	return PQ_OK;
}

/* Session settings, applied after every (re)connection. */
static int pg_session(store *s)
{
	char ms[24];
	snprintf(ms, sizeof(ms), "%d", s->timeout_ms);
	PGconn *c = conn_of(s);
	const char *vals[1] = {ms};
	const Oid types[1] = {OID_TEXT};
	PGresult *res = PQexecParams(c, "SELECT set_config('statement_timeout', $1, false)", 1,
	                             types, vals, NULL, NULL, 0);
	int rc = PQ_OK;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = pg_result_err(c, res, "session setup");
	PQclear(res);
	return rc;
}

/* A broken connection is re-established before the next statement, but only between
 * transactions: inside one, the failure must reach the caller. */
static int pg_ensure_connected(store *s)
{
	PGconn *c = conn_of(s);
	if (PQstatus(c) == CONNECTION_OK)
		return PQ_OK;
	if (s->depth > 0)
		return pq_err_set(PQ_ERR_IO, "postgres: connection lost inside a transaction");
	pq_log(PQ_LOG_WARN, COMPONENT, "postgres: connection lost, reconnecting");
	PQreset(c);
	if (PQstatus(c) != CONNECTION_OK)
		return pq_err_set(PQ_ERR_IO, "postgres reconnect: %.*s",
		                  pg_msg_len(PQerrorMessage(c)), PQerrorMessage(c));
	return pg_session(s);
}

/* The text-format parameters of one statement (integers printed into ints). */
typedef struct {
	const char **vals;
	Oid *types;
	char (*ints)[24];
} pg_params;

static void pg_params_free(pg_params *b)
{
	free(b->ints);
	free(b->types);
	free(b->vals);
}

static int pg_params_bind(pg_params *b, const store_val *params, int nparams)
{
	if (nparams == 0)
		return PQ_OK;
	b->vals = calloc((size_t)nparams, sizeof(*b->vals));
	b->types = calloc((size_t)nparams, sizeof(*b->types));
	b->ints = calloc((size_t)nparams, sizeof(*b->ints));
	if (!b->vals || !b->types || !b->ints)
		return pq_err_set(PQ_ERR_NOMEM, "postgres: %d parameters", nparams);
	for (int i = 0; i < nparams; i++) {
		switch (params[i].type) {
		case STORE_NULL:
			b->types[i] = 0; /* the server infers it from the context */
			b->vals[i] = NULL;
			break;
		case STORE_INT:
			b->types[i] = OID_INT8;
			snprintf(b->ints[i], sizeof(b->ints[i]), "%lld", (long long)params[i].i);
			b->vals[i] = b->ints[i];
			break;
		case STORE_TEXT:
			b->types[i] = OID_TEXT;
			b->vals[i] = params[i].s;
			break;
		default:
			return pq_err_set(PQ_ERR_INVAL, "parameter %d: bad type %d", i + 1,
			                  (int)params[i].type);
		}
	}
	return PQ_OK;
}

/* The rows a write changed into *changes (PQcmdTuples counts SELECT rows too: only writes
 * count as changes; *changes is left alone for anything else). */
static void pg_changes(PGresult *res, int64_t *changes)
{
	const char *tag = PQcmdStatus(res);
	if (!changes || !tag ||
	    !(strncmp(tag, "INSERT ", 7) == 0 || strncmp(tag, "UPDATE ", 7) == 0 ||
	      strncmp(tag, "DELETE ", 7) == 0 || strncmp(tag, "MERGE ", 6) == 0))
		return;
	const char *t = PQcmdTuples(res);
	int64_t n = 0;
	if (t && *t && store__parse_i64(t, &n) != PQ_OK)
		n = 0;
	*changes = n;
}

/* Hands each row of res to fn, until fn fails. */
static int pg_rows(PGresult *res, store_row_fn fn, void *user)
{
	int ncols = PQnfields(res), nrows = PQntuples(res);
	const char **cols = NULL;
	if (ncols > 0) {
		cols = calloc((size_t)ncols, sizeof(*cols));
		if (!cols)
			return pq_err_set(PQ_ERR_NOMEM, "postgres: %d columns", ncols);
	}
	int rc = PQ_OK;
	for (int r = 0; r < nrows && rc == PQ_OK; r++) {
		for (int i = 0; i < ncols; i++)
			cols[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
		store_row row = {.ncols = ncols, .cols = cols};
		rc = fn(&row, user);
	}
	free(cols);
	return rc;
}

static int pg_exec(store *s, const char *sql, const store_val *params, int nparams, store_row_fn fn,
                   void *user, int64_t *changes, bool *db_failed)
{
	PGconn *c = conn_of(s);
	PGresult *res = NULL;
	char *text = NULL;
	pg_params b = {0};
	int count = 0;
	int rc = rewrite_placeholders(sql, &text, &count);
	if (rc != PQ_OK)
		goto out;
	if (count != nparams) {
		rc = pq_err_set(PQ_ERR_INVAL, "statement has %d placeholders, %d values given",
		                count, nparams);
		goto out;
	}
	rc = pg_params_bind(&b, params, nparams);
	if (rc != PQ_OK)
		goto out;
	rc = pg_ensure_connected(s);
	if (rc != PQ_OK) {
		*db_failed = true;
		goto out;
	}
	res = PQexecParams(c, text, nparams, b.types, b.vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		*db_failed = true;
		rc = pg_result_err(c, res, "exec");
		goto out;
	}
	pg_changes(res, changes);
	if (st == PGRES_TUPLES_OK && fn)
		rc = pg_rows(res, fn, user);
out:
	PQclear(res);
	pg_params_free(&b);
	free(text);
	return rc;
}

static bool pg_in_transaction(store *s)
{
	PGTransactionStatusType t = PQtransactionStatus(conn_of(s));
	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* libpq prints server notices ("relation exists, skipping") to stderr by default. */
static void pg_notice(void *arg, const char *message)
{
	(void)arg;
	pq_log(PQ_LOG_DEBUG, COMPONENT, "postgres: %.*s", pg_msg_len(message), message);
}

static void pg_close(store *s)
{
	if (s->db)
		PQfinish(conn_of(s));
	s->db = NULL;
}

static int pg_open(store *s, const char *url, int timeout_ms)
{
	(void)timeout_ms; /* applied by pg_session from s->timeout_ms */
	/* Ours first: the conninfo given (expanded from "dbname") may override them. */
	const char *const keys[] = {"client_encoding", "application_name", "connect_timeout",
	                            "dbname", NULL};
	const char *const vals[] = {"UTF8", "pqota", "10", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c)
		return pq_err_set(PQ_ERR_NOMEM, "postgres: cannot allocate a connection");
	s->db = c;
	int rc = PQ_OK;
	if (PQstatus(c) != CONNECTION_OK) {
		rc = pq_err_set(PQ_ERR_IO, "postgres connect: %.*s", pg_msg_len(PQerrorMessage(c)),
		                PQerrorMessage(c));
		goto out;
	}
	PQsetNoticeProcessor(c, pg_notice, NULL);
	rc = pg_session(s);
out:
	if (rc != PQ_OK)
		pg_close(s);
	return rc;
}

const store__ops store__postgres_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .in_transaction = pg_in_transaction,
    .begin_sql = "BEGIN",
    /* Held until the migration's transaction ends; other openers wait here. */
    .schema_lock_sql = "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")",
    .for_update = " FOR UPDATE",
    /* Byte order, as SQLite sorts: listings page identically on both backends whatever
     * the database's locale. */
    .ddl_key_text = "TEXT COLLATE \"C\"",
    .ddl_serial_pk = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
};
