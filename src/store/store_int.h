/* store_int.h: internals shared by src/store: the backend vtable, the handle, migrations,
 * and the checks and row decoding of the entity files.
 *
 *   store.c        open, exec, transactions as savepoints (backend-independent)
 *   sqlite.c       the SQLite backend          postgres.c   the PostgreSQL backend
 *   migrate.c      the schema, as numbered migration steps
 *   entities.c     input checks, statement helpers and row decoding shared by the files below
 *   vehicles.c     vehicles                    ecus.c       ECUs, their history, VCI reports
 *   releases.c     releases, known files       apikeys.c    API keys and roles
 *   audit.c        the audit log               keys.c       package (content) keys
 *   campaigns.c    campaign and deployment state names, campaigns
 *   deployments.c  deployments, their targets and counts
 *   transitions.c  deployment state changes and their history
 *   claims.c       work claims of deployments  mqtt_seen.c  MQTT message ids seen
 *   uptane_meta.c  generated Uptane metadata
 *   diag.c         diagnostics requests and results
 *   diag_batch.c   diagnostics batches and their aggregates
 *   telemetry.c    vehicles' telemetry: latest sample, bounded history, fleet aggregate */
#ifndef PQOTA_STORE_STORE_INT_H
#define PQOTA_STORE_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/campaign.h"
#include "store/diag.h"
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

/* Ends the transaction store_begin opened: commits when rc is PQ_OK (returning the commit's
 * result), otherwise rolls back and returns rc. Lets a transaction's body read top to bottom
 * with `goto out` and `out: return store__end(s, rc);`. */
int store__end(store *s, int rc) PQ_MUST_CHECK;

/* ---- input checks (entities.c), shared by every entity file ---- */

/* A UTF-8 string of at most max bytes (required: at least one); reads at most max + 1. */
int store__check_text(const char *v, size_t max, bool required, const char *what) PQ_MUST_CHECK;
/* Text fields checked in order with store__check_text, the first failure returned. */
typedef struct {
	const char *v;
	size_t max;
	bool required;
	const char *what;
} store__text_rule;
int store__check_texts(const store__text_rule *rules, size_t n) PQ_MUST_CHECK;
/* 64 lowercase hex digits (or "" when allow_empty). */
int store__check_sha256(const char *v, bool allow_empty, const char *what) PQ_MUST_CHECK;
/* Optional JSON text (NULL allowed) of at most max bytes. */
int store__check_json(const char *v, size_t max, const char *what) PQ_MUST_CHECK;
/* A time in ms that is not negative. */
int store__check_time(int64_t ms, const char *what) PQ_MUST_CHECK;
/* A VIN (required, at most STORE_VIN_MAX bytes, reported as "VIN"). */
int store__check_vin(const char *vin) PQ_MUST_CHECK;
/* An id of at most STORE_ID_MAX bytes (required). */
int store__check_id(const char *id, const char *what) PQ_MUST_CHECK;
/* A page's limit (0: the default) and offset, checked. */
int store__page_args(const store_page *pg, int64_t *limit, int64_t *offset) PQ_MUST_CHECK;

/* ---- statements (entities.c) ---- */

/* Builds "<head><where><tail>" into buf (PQ_ERR_RANGE when it does not fit). */
int store__build_sql(char *buf, size_t cap, const char *head, const char *where,
                     const char *tail) PQ_MUST_CHECK;
/* SELECT COUNT(*) FROM <from_where> into *total; nothing when total is NULL. */
int store__count_rows(store *s, const char *from_where, const store_val *p, int np,
                      int64_t *total) PQ_MUST_CHECK;
/* Whether the COUNT(*) query sql finds at least one row. */
int store__exists(store *s, const char *sql, const store_val *p, int np, bool *found) PQ_MUST_CHECK;
/* A release's version_counter column (releases.c): semver_counter of its version, -1
 * when that is no semantic version it can count. */
int64_t store__version_counter(const char *version);
/* Schema step 14 (releases.c): sets version_counter of every release. */
int store__release_counters_fill(store *s) PQ_MUST_CHECK;
/* PQ_ERR_NOTFOUND ("vehicle ... is not registered") unless vin is registered (vehicles.c). */
int store__vehicle_exists(store *s, const char *vin) PQ_MUST_CHECK;

/* ---- row decoding (entities.c) ---- */

/* Column i of a row (NULL when SQL NULL or absent) and its copies: into a fixed buffer (too
 * long is an error, never cut), malloc'd, as integers. */
const char *store__col(const store_row *r, int i);
int store__col_copy(const store_row *r, int i, char *dst, size_t cap) PQ_MUST_CHECK;
int store__col_dup(const store_row *r, int i, char **dst) PQ_MUST_CHECK;
int store__col_i64(const store_row *r, int i, int64_t *out) PQ_MUST_CHECK;
int store__col_int(const store_row *r, int i, int *out) PQ_MUST_CHECK;

/* A cursor over a row's columns, read in order: each store__rd_* call decodes the next column
 * (as the store__col_* above). The first failure sticks: later reads only skip their column,
 * so a decoder reads every column and checks rd.rc once at the end (like pq_buf). */
typedef struct {
	const store_row *row;
	int col; /* the next column */
	int rc;  /* the first failure, PQ_OK while none */
} store__rd;

/* A cursor at column first of r. */
store__rd store__rd_at(const store_row *r, int first);
/* The next column's text, as the row holds it (NULL when SQL NULL, absent, or after a
 * failure). */
const char *store__rd_text(store__rd *rd);
void store__rd_copy(store__rd *rd, char *dst, size_t cap);
void store__rd_dup(store__rd *rd, char **dst);
void store__rd_i64(store__rd *rd, int64_t *out);
void store__rd_int(store__rd *rd, int *out);

/* ---- ECUs (ecus.c, ecu_registry.c) ---- */

#define STORE__ECU_COLS                                                                            \
	"vin, ecu_id, hardware_id, zone, sw_app, sw_boot, sw_cal, serial, bank, updated_ms"
/* Decodes the STORE__ECU_COLS of a row into a store_ecu. */
int store__row_ecu(const store_row *r, void *out) PQ_MUST_CHECK;

/* ---- deployments (deployments.c, transitions.c, claims.c) ---- */

#define STORE__DEP_COLS                                                                            \
	"campaign_id, vin, state, phase, attempt, error_code, claimed_by, claimed_until,"          \
	" updated_ms, next_ms, last_msg_ms, notify_count"

/* A deployment's key: a campaign id and a VIN (deployments.c). */
int store__check_dep_key(const char *campaign_id, const char *vin) PQ_MUST_CHECK;
/* Runs a query that returns at most one row and decodes it with decode into out; *found
 * says whether there was one. A second row is PQ_ERR_FORMAT ("more than one <what>"). */
int store__get_one(store *s, const char *sql, const store_val *params, int nparams,
                   int (*decode)(const store_row *r, void *out), void *out, const char *what,
                   bool *found) PQ_MUST_CHECK;
/* Decodes the STORE__DEP_COLS of a row into d (zeroed first). */
int store__row_deployment(const store_row *r, void *out) PQ_MUST_CHECK; /* a store_deployment */
/* Appends the next entry (seq) of a deployment's transition history (transitions.c). */
int store__add_transition(store *s, const char *cid, const char *vin, const char *from,
                          const char *to, const char *cause, int64_t now_ms) PQ_MUST_CHECK;

/* ---- diagnostics (diag.c, diag_batch.c) ---- */

/* A request joined with its result (res, NULL columns without one). */
#define STORE__DIAG_FROM                                                                           \
	" FROM diag_requests r LEFT JOIN diag_results res ON res.request_id = r.id AND res.seq = " \
	"1"

/* The status of a request without a result, from its state. */
store_diag_status store__diag_status_of_state(store_diag_state st);

#endif
