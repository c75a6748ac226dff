/* store_int.h: internals shared by src/store: the backend vtable, the handle, migrations. */
#ifndef PQOTA_STORE_STORE_INT_H
#define PQOTA_STORE_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* What a backend provides. store.c calls these only; everything above is shared. */
typedef struct {
	const char *name; /* "sqlite", "postgres" */
	/* Connects s->db to url and prepares the session (pragmas, timeouts); on failure
	 * leaves s->db NULL. */
	int (*open)(store *s, const char *url, int timeout_ms);
	void (*close)(store *s);
	/* Runs one statement ('?' placeholders, nparams of them). Sets *db_failed when the
	 * database reported the failure (as opposed to the row callback stopping the query),
	 * so that store.c can mark an open transaction as failed. */
	int (*exec)(store *s, const char *sql, const store_val *params, int nparams,
	            store_row_fn fn, void *user, int64_t *changes, bool *db_failed);
	/* Whether the connection is inside a transaction (the database may end one itself). */
	bool (*in_transaction)(store *s);

	/* SQL dialect: the few places where the two backends must differ. */
	const char *begin_sql;       /* outermost transaction: SQLite "BEGIN IMMEDIATE" */
	const char *schema_lock_sql; /* takes the migration lock in a transaction, or NULL */
	const char *for_update;      /* row-lock suffix of a SELECT: " FOR UPDATE" or "" */
	const char *ddl_key_text;    /* type of ordered key columns: TEXT (PostgreSQL: "C") */
	const char *ddl_serial_pk;   /* an integer primary key the database assigns */
} store__ops;

struct store {
	const store__ops *ops;
	store_backend backend;
	void *db;           /* sqlite3 * or PGconn * */
	int timeout_ms;     /* busy / statement timeout */
	int depth;          /* open transaction levels: 0 none, 1 BEGIN, >1 savepoints */
	bool failed;        /* a statement failed in the innermost open level */
	int schema_version; /* after migrations */
};

extern const store__ops store__sqlite_ops;
extern const store__ops store__postgres_ops;

/* Brings the schema to STORE_SCHEMA_VERSION (migrate.c). */
int store__migrate(store *s) PQ_MUST_CHECK;

/* Reads the single integer a query returns (0 for no row or NULL). */
int store__query_int(store *s, const char *sql, const store_val *params, int nparams,
                     int64_t *out) PQ_MUST_CHECK;

/* Strict decimal int64 parsing of a column value. */
int store__parse_i64(const char *text, int64_t *out) PQ_MUST_CHECK;

/* Input checks and row decoding shared by the entity modules (entities.c, campaigns.c). */
bool store__utf8_valid(const unsigned char *s, size_t n);
/* A UTF-8 string of at most max bytes (required: at least one); reads at most max + 1. */
int store__check_text(const char *v, size_t max, bool required, const char *what) PQ_MUST_CHECK;
/* 64 lowercase hex digits (or "" when allow_empty). */
int store__check_sha256(const char *v, bool allow_empty, const char *what) PQ_MUST_CHECK;
/* Optional JSON text (NULL allowed) of at most max bytes. */
int store__check_json(const char *v, size_t max, const char *what) PQ_MUST_CHECK;
/* A page's limit (0: the default) and offset, checked. */
int store__page_args(const store_page *pg, int64_t *limit, int64_t *offset) PQ_MUST_CHECK;
/* Column i of a row (NULL when SQL NULL or absent) and its copies: into a fixed buffer (too
 * long is an error, never cut), malloc'd, as integers. */
const char *store__col(const store_row *r, int i);
int store__col_copy(const store_row *r, int i, char *dst, size_t cap) PQ_MUST_CHECK;
int store__col_dup(const store_row *r, int i, char **dst) PQ_MUST_CHECK;
int store__col_i64(const store_row *r, int i, int64_t *out) PQ_MUST_CHECK;
int store__col_int(const store_row *r, int i, int *out) PQ_MUST_CHECK;

#endif
