/* test_store.c: unit tests of src/store against SQLite or PostgreSQL ($PQOTA_TEST_STORE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "store/bundle_store.h"
#include "store/session.h"
#include "store/store.h"
#include "store_fixture.h"
#include "testutil.h"

/* Every test gets an empty database (store_fixture.h: $PQOTA_TEST_STORE, $PQOTA_TEST_PG):
 * SQLite ":memory:" or a file (sf_setup_url: the tests that open it themselves),
 * PostgreSQL a fresh schema (search_path) in the given database, dropped afterwards. */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void must(int rc, const char *what)
{
	if (rc != PQ_OK)
		fail_msg("%s: %s: %s", what, pq_strerror(rc), pq_err_detail());
}

/* ---- helpers ----------------------------------------------------------------------- */

static int int_row(const store_row *row, void *user)
{
	int64_t *out = user;
	assert_int_equal(row->ncols, 1);
	*out = row->cols[0] ? strtoll(row->cols[0], NULL, 10) : -1;
	return PQ_OK;
}

/* The one integer a query returns. */
static int64_t qint(store *s, const char *sql, const store_val *p, int n)
{
	int64_t v = -1;
	must(store_exec(s, sql, p, n, int_row, &v, NULL), sql);
	return v;
}

static int64_t count_table(store *s, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	return qint(s, sql, NULL, 0);
}

static void hex64(char out[65], unsigned long long n)
{
	snprintf(out, 65, "%064llx", n);
}

static store_vehicle mk_vehicle(const char *vin, const char *model)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "%s", model);
	hex64(v.cert_pem_sha256, 0xc0ffee);
	v.kem_x25519_pub = "-----BEGIN PUBLIC KEY-----\nx25519\n-----END PUBLIC KEY-----\n";
	v.kem_mlkem_pub = "-----BEGIN PUBLIC KEY-----\nmlkem\n-----END PUBLIC KEY-----\n";
	v.created_ms = 1700000000000;
	return v;
}

static void add_vehicle(store *s, const char *vin)
{
	store_vehicle v = mk_vehicle(vin, "zonal-1");
	must(store_vehicle_insert(s, &v), "vehicle insert");
}

static store_release mk_release(const char *id, const char *hw, const char *version,
                                int64_t created)
{
	store_release r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.title, sizeof(r.title), "Release %s", version);
	snprintf(r.version, sizeof(r.version), "%s", version);
	snprintf(r.hardware_id, sizeof(r.hardware_id), "%s", hw);
	snprintf(r.software_type, sizeof(r.software_type), "APP");
	snprintf(r.ecu_id, sizeof(r.ecu_id), "ECU_011");
	hex64(r.file_sha256, (unsigned long long)created * 2 + 1);
	r.file_size = 4096;
	hex64(r.image_sha256, (unsigned long long)created * 2);
	r.image_size = 65536;
	r.created_ms = created;
	snprintf(r.created_by, sizeof(r.created_by), "apikey:ci");
	return r;
}

/* A delta of release rel from base version base; a ready one has a file, a failed one a
 * reason. */
static store_release_delta mk_delta(const char *rel, const char *base, store_delta_state st,
                                    int64_t created)
{
	store_release_delta d;
	memset(&d, 0, sizeof(d));
	snprintf(d.release_id, sizeof(d.release_id), "%s", rel);
	snprintf(d.base_version, sizeof(d.base_version), "%s", base);
	snprintf(d.base_release_id, sizeof(d.base_release_id), "base-%s", base);
	hex64(d.base_sha256, 0xba5e);
	d.state = st;
	snprintf(d.source, sizeof(d.source), "computed");
	if (st == STORE_DELTA_READY) {
		hex64(d.file_sha256, (unsigned long long)created + 7);
		d.file_size = 100;
	}
	if (st == STORE_DELTA_FAILED)
		snprintf(d.error, sizeof(d.error), "it broke");
	d.created_ms = d.updated_ms = created;
	return d;
}

static store_ecu mk_ecu(const char *vin, const char *id, const char *app, int64_t when)
{
	store_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "%s", id);
	snprintf(e.hardware_id, sizeof(e.hardware_id), "HW-1-001");
	e.zone = 1;
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", app);
	snprintf(e.sw_boot, sizeof(e.sw_boot), "1.0.0");
	snprintf(e.sw_cal, sizeof(e.sw_cal), "1.0.0");
	snprintf(e.serial, sizeof(e.serial), "SN-1");
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = when;
	return e;
}

/* Collects listed keys as one comma-separated string. */
typedef struct {
	char buf[8192];
	int n;
	int stop_after; /* 0: never */
} collect;

static void collect_add(collect *c, const char *s)
{
	size_t used = strlen(c->buf);
	snprintf(c->buf + used, sizeof(c->buf) - used, "%s%s", c->n ? "," : "", s);
	c->n++;
}

static int collect_vehicle(const store_vehicle *v, void *user)
{
	collect *c = user;
	collect_add(c, v->vin);
	return c->stop_after && c->n >= c->stop_after ? PQ_ERR_RANGE : PQ_OK;
}

static int collect_ecu(const store_ecu *e, void *user)
{
	collect_add(user, e->ecu_id);
	return PQ_OK;
}

static int collect_change(const store_ecu_change *ch, void *user)
{
	char b[80];
	snprintf(b, sizeof(b), "%s:%s>%s@%" PRId64, ch->software_type, ch->from_version,
	         ch->to_version, ch->at_ms);
	collect_add(user, b);
	return PQ_OK;
}

static int collect_release(const store_release *r, void *user)
{
	collect_add(user, r->id);
	return PQ_OK;
}

static int collect_apikey(const store_apikey *k, void *user)
{
	char b[160];
	snprintf(b, sizeof(b), "%s/%s/%s/%" PRId64, k->name, k->id, store_role_name(k->role),
	         k->revoked_ms);
	collect_add(user, b);
	return PQ_OK;
}

static int collect_audit(const store_audit *a, void *user)
{
	char b[400];
	snprintf(b, sizeof(b), "%s|%s|%s|%s", a->actor, a->action, a->target,
	         a->detail ? a->detail : "(null)");
	collect_add(user, b);
	return PQ_OK;
}

typedef struct {
	int64_t id[64], at[64];
	int n;
} audit_ids;

static int collect_audit_id(const store_audit *a, void *user)
{
	audit_ids *ids = user;
	assert_true(ids->n < 64);
	ids->id[ids->n] = a->id;
	ids->at[ids->n] = a->at_ms;
	ids->n++;
	return PQ_OK;
}

/* ---- open, migrations -------------------------------------------------------------- */

static const char *const tables[] = {
    "schema_version",
    "vehicles",
    "ecus",
    "ecu_history",
    "releases",
    "api_keys",
    "audit_log",
    "campaigns",
    "campaign_releases",
    "deployments",
    "deployment_transitions",
    "diag_requests",
    "diag_results",
    "deployment_targets",
    "mqtt_seen",
    "uptane_meta",
    "package_keys",
    "release_deltas",
    "bundles",
};

static void test_open_schema(void **state)
{
	sf_fixture *f = *state;
	int version = 0;
	must(store_schema_version(f->s, &version), "schema version");
	assert_int_equal(version, STORE_SCHEMA_VERSION);
	assert_int_equal(store_get_backend(f->s), sf_backend());
	must(store_ping(f->s), "ping");
	assert_int_equal(count_table(f->s, "schema_version"), STORE_SCHEMA_VERSION);
	for (size_t i = 0; i < ARRAY_LEN(tables); i++)
		assert_true(count_table(f->s, tables[i]) >= 0);
	/* the campaign tables take the rows the next issue needs */
	must(store_exec(f->s,
	                "INSERT INTO campaigns (id, name, state, target_filter, policy, phases,"
	                " created_ms, updated_ms) VALUES ('c1', 'spring', 'draft', '{}', '{}',"
	                " '[]', 1, 1)",
	                NULL, 0, NULL, NULL, NULL),
	     "campaign");
	add_vehicle(f->s, "VIN1");
	must(store_exec(f->s,
	                "INSERT INTO deployments (campaign_id, vin, state, phase, updated_ms,"
	                " attempt, error_code, claimed_by, claimed_until) VALUES ('c1', 'VIN1',"
	                " 'pending', 0, 1, 0, NULL, NULL, 0)",
	                NULL, 0, NULL, NULL, NULL),
	     "deployment");
	must(store_exec(
	         f->s,
	         "INSERT INTO deployment_transitions (campaign_id, vin, seq, from_state,"
	         " to_state, at_ms, cause) VALUES ('c1', 'VIN1', 1, '', 'pending', 1, 'created')",
	         NULL, 0, NULL, NULL, NULL),
	     "transition");
	must(store_exec(f->s,
	                "INSERT INTO diag_requests (id, vin, kind, created_ms, updated_ms)"
	                " VALUES ('d1', 'VIN1', 'read_dtc', 1, 1)",
	                NULL, 0, NULL, NULL, NULL),
	     "diag request");
	must(store_exec(f->s,
	                "INSERT INTO diag_results (request_id, seq, ecu_id, status, payload,"
	                " received_ms) VALUES ('d1', 1, 'ECU_001', 'ok', '{}', 2)",
	                NULL, 0, NULL, NULL, NULL),
	     "diag result");
	/* deleting the vehicle cascades to its deployments, transitions and diagnostics */
	must(store_vehicle_delete(f->s, "VIN1"), "delete");
	assert_int_equal(count_table(f->s, "deployments"), 0);
	assert_int_equal(count_table(f->s, "deployment_transitions"), 0);
	assert_int_equal(count_table(f->s, "diag_results"), 0);
	assert_int_equal(count_table(f->s, "campaigns"), 1);
}

static void test_reopen_idempotent(void **state)
{
	sf_fixture *f = *state;
	store_config cfg = sf_config(f->url);
	store *a = NULL, *b = NULL;
	must(store_open(&cfg, &a), "open 1");
	add_vehicle(a, "VIN-PERSIST");
	store_close(a);
	must(store_open(&cfg, &a), "open 2");
	must(store_open(&cfg, &b), "open 3 (while 2 is open)");
	int version = 0;
	must(store_schema_version(b, &version), "version");
	assert_int_equal(version, STORE_SCHEMA_VERSION);
	assert_int_equal(count_table(a, "schema_version"), STORE_SCHEMA_VERSION);
	store_vehicle v;
	must(store_vehicle_get(b, "VIN-PERSIST", &v), "get after reopen");
	store_vehicle_clear(&v);
	if (sf_backend() == STORE_SQLITE)
		assert_int_equal(qint(a, "PRAGMA foreign_keys", NULL, 0), 1);
	store_close(a);
	store_close(b);
}

static int text_row(const store_row *row, void *user)
{
	snprintf(user, 64, "%s", row->cols[0] ? row->cols[0] : "(null)");
	return PQ_OK;
}

/* SQLite: the file is in WAL mode. PostgreSQL: a connection the server dropped is
 * re-established before the next statement outside a transaction. */
static void test_backend_session(void **state)
{
	sf_fixture *f = *state;
	store_config cfg = sf_config(f->url);
	must(store_open(&cfg, &f->s), "open");
	char text[64] = "";
	if (sf_backend() == STORE_SQLITE) {
		must(store_exec(f->s, "PRAGMA journal_mode", NULL, 0, text_row, text, NULL),
		     "pragma");
		assert_string_equal(text, "wal");
		return;
	}
	must(store_exec(f->s, "SHOW statement_timeout", NULL, 0, text_row, text, NULL), "show");
	assert_string_equal(text, "10s");
	for (int in_txn = 0; in_txn < 2; in_txn++) {
		store_val pid = {.type = STORE_INT,
		                 .i = qint(f->s, "SELECT pg_backend_pid()", NULL, 0)};
		if (in_txn)
			must(store_begin(f->s), "begin");
		assert_int_equal(qint(sf_admin(),
		                      "SELECT CASE WHEN pg_terminate_backend(CAST(? AS INTEGER))"
		                      " THEN 1 ELSE 0 END",
		                      &pid, 1),
		                 1);
		assert_int_equal(store_ping(f->s), PQ_ERR_IO);
		if (in_txn) {
			assert_int_equal(store_commit(f->s), PQ_ERR_IO);
			store_rollback(f->s);
		}
		must(store_ping(f->s), "reconnected");
		assert_true(qint(f->s, "SELECT pg_backend_pid()", NULL, 0) != pid.i);
		/* the session settings and search_path are back too */
		must(store_exec(f->s, "SHOW statement_timeout", NULL, 0, text_row, text, NULL),
		     "show");
		assert_string_equal(text, "10s");
		assert_int_equal(count_table(f->s, "schema_version"), STORE_SCHEMA_VERSION);
	}
}

typedef struct {
	store_config cfg;
	int rc;
	char detail[256];
} opener;

static void *open_thread(void *arg)
{
	opener *o = arg;
	store *s = NULL;
	o->rc = store_open(&o->cfg, &s);
	snprintf(o->detail, sizeof(o->detail), "%s", pq_err_detail());
	if (o->rc == PQ_OK)
		o->rc = store_ping(s);
	store_close(s);
	return NULL;
}

static void test_concurrent_open(void **state)
{
	sf_fixture *f = *state;
	opener o[6];
	pthread_t t[6];
	for (size_t i = 0; i < ARRAY_LEN(o); i++) {
		o[i] = (opener){.cfg = sf_config(f->url), .rc = -100};
		assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
	}
	for (size_t i = 0; i < ARRAY_LEN(o); i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (size_t i = 0; i < ARRAY_LEN(o); i++)
		if (o[i].rc != PQ_OK)
			fail_msg("opener %zu: %s: %s", i, pq_strerror(o[i].rc), o[i].detail);
	store_config cfg = sf_config(f->url);
	must(store_open(&cfg, &f->s), "open");
	assert_int_equal(count_table(f->s, "schema_version"), STORE_SCHEMA_VERSION);
}

static void test_newer_schema_refused(void **state)
{
	sf_fixture *f = *state;
	store_config cfg = sf_config(f->url);
	must(store_open(&cfg, &f->s), "open");
	must(store_exec(f->s, "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)",
	                NULL, 0, NULL, NULL, NULL),
	     "future version");
	store *s2 = NULL;
	assert_int_equal(store_open(&cfg, &s2), PQ_ERR_UNSUPPORTED);
	assert_null(s2);
	assert_non_null(strstr(pq_err_detail(), "99"));
}

static void test_open_errors(void **state)
{
	(void)state;
	store *s = (store *)1;
	assert_int_equal(store_open(NULL, &s), PQ_ERR_INVAL);
	assert_null(s);
	store_config cfg = {.backend = (store_backend)7, .url = ":memory:"};
	assert_int_equal(store_open(&cfg, &s), PQ_ERR_INVAL);
	cfg = (store_config){.backend = STORE_SQLITE, .url = NULL};
	assert_int_equal(store_open(&cfg, &s), PQ_ERR_INVAL);
	cfg = (store_config){.backend = STORE_SQLITE, .url = ":memory:", .busy_timeout_ms = -1};
	assert_int_equal(store_open(&cfg, &s), PQ_ERR_INVAL);
	cfg = (store_config){.backend = STORE_SQLITE, .url = "/nonexistent-dir/x/db.sqlite"};
	assert_int_equal(store_open(&cfg, &s), PQ_ERR_IO);
	assert_true(strlen(pq_err_detail()) > 0);
	cfg = (store_config){.backend = STORE_POSTGRES,
	                     .url = "host=/nonexistent-dir port=1 dbname=x connect_timeout=2"};
	assert_int_equal(store_open(&cfg, &s), PQ_ERR_IO);
	assert_non_null(strstr(pq_err_detail(), "postgres"));
	assert_null(s);
}

/* ---- SQL core ---------------------------------------------------------------------- */

typedef struct {
	char vals[4][64];
	int rows;
} rows_ctx;

static int rows_row(const store_row *row, void *user)
{
	rows_ctx *c = user;
	for (int i = 0; i < row->ncols && i < 4; i++)
		snprintf(c->vals[i], sizeof(c->vals[i]), "%s",
		         row->cols[i] ? row->cols[i] : "NULL");
	c->rows++;
	return PQ_OK;
}

static int stop_row(const store_row *row, void *user)
{
	(void)row;
	(*(int *)user)++;
	return PQ_ERR_RANGE;
}

static void test_exec_core(void **state)
{
	sf_fixture *f = *state;
	rows_ctx c;
	memset(&c, 0, sizeof(c));
	/* '?' inside literals and comments is not a placeholder */
	store_val p[] = {SV_TEXT("it's?"), SV_INT(INT64_MIN), SV_NULL, SV_INT(INT64_MAX)};
	must(store_exec(f->s, "SELECT 'a?''b' || ?, ? /* ? */, ?, ? -- ?\n", p, 4, rows_row, &c,
	                NULL),
	     "select");
	assert_int_equal(c.rows, 1);
	assert_string_equal(c.vals[0], "a?'bit's?");
	assert_string_equal(c.vals[1], "-9223372036854775808");
	assert_string_equal(c.vals[2], "NULL");
	assert_string_equal(c.vals[3], "9223372036854775807");

	must(store_exec(f->s, "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)", NULL, 0, NULL, NULL,
	                NULL),
	     "create");
	int64_t changes = -1;
	for (int i = 0; i < 5; i++) {
		char k[8];
		snprintf(k, sizeof(k), "k%d", i);
		store_val q[] = {SV_TEXT(k), SV_INT(i)};
		must(store_exec(f->s, "INSERT INTO t (k, v) VALUES (?, ?)", q, 2, NULL, NULL,
		                &changes),
		     "insert");
		assert_int_equal(changes, 1);
	}
	store_val q[] = {SV_INT(2)};
	must(store_exec(f->s, "UPDATE t SET v = v + 10 WHERE v >= ?", q, 1, NULL, NULL, &changes),
	     "update");
	assert_int_equal(changes, 3);
	must(store_exec(f->s, "SELECT COUNT(*) FROM t", NULL, 0, NULL, NULL, &changes), "count");
	assert_int_equal(changes, 0); /* a SELECT changes nothing */
	/* RETURNING */
	memset(&c, 0, sizeof(c));
	store_val r[] = {SV_TEXT("k9"), SV_INT(9)};
	must(store_exec(f->s, "INSERT INTO t (k, v) VALUES (?, ?) RETURNING v + 1", r, 2, rows_row,
	                &c, &changes),
	     "returning");
	assert_int_equal(c.rows, 1);
	assert_string_equal(c.vals[0], "10");
	assert_int_equal(changes, 1);
	/* ON CONFLICT */
	must(store_exec(f->s, "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", r, 2,
	                NULL, NULL, &changes),
	     "on conflict");
	assert_int_equal(changes, 0);

	/* a callback's error stops the query and is returned; it does not abort a transaction */
	int seen = 0;
	must(store_begin(f->s), "begin");
	assert_int_equal(
	    store_exec(f->s, "SELECT k FROM t ORDER BY k", NULL, 0, stop_row, &seen, NULL),
	    PQ_ERR_RANGE);
	assert_int_equal(seen, 1);
	must(store_exec(f->s, "DELETE FROM t WHERE k = 'k0'", NULL, 0, NULL, NULL, NULL),
	     "after callback stop");
	must(store_commit(f->s), "commit");
	assert_int_equal(count_table(f->s, "t"), 5);

	/* misuse */
	assert_int_equal(store_exec(f->s, "SELECT ?", NULL, 0, NULL, NULL, NULL), PQ_ERR_INVAL);
	assert_int_equal(store_exec(f->s, "SELECT ?", p, 2, NULL, NULL, NULL), PQ_ERR_INVAL);
	assert_int_equal(store_exec(NULL, "SELECT 1", NULL, 0, NULL, NULL, NULL), PQ_ERR_INVAL);
	assert_int_equal(store_exec(f->s, NULL, NULL, 0, NULL, NULL, NULL), PQ_ERR_INVAL);
	assert_int_not_equal(store_exec(f->s, "SELECT 1; SELECT 2", NULL, 0, NULL, NULL, NULL),
	                     PQ_OK);
	assert_int_equal(store_exec(f->s, "SELEKT nonsense", NULL, 0, NULL, NULL, NULL), PQ_ERR_IO);
	assert_non_null(strstr(pq_err_detail(), sf_backend_name()));
	assert_int_equal(store_exec(f->s, "SELECT * FROM no_such_table", NULL, 0, NULL, NULL, NULL),
	                 PQ_ERR_IO);
	assert_non_null(strstr(pq_err_detail(), "no_such_table"));
	/* unique violation */
	assert_int_equal(
	    store_exec(f->s, "INSERT INTO t (k, v) VALUES (?, ?)", r, 2, NULL, NULL, NULL),
	    PQ_ERR_EXISTS);
}

static void test_transactions(void **state)
{
	sf_fixture *f = *state;
	store_vehicle v;
	/* rolled back: no rows */
	must(store_begin(f->s), "begin");
	add_vehicle(f->s, "TX-1");
	must(store_ecu_seed_default(f->s, "TX-1", 1), "seed");
	store_rollback(f->s);
	assert_int_equal(store_vehicle_get(f->s, "TX-1", &v), PQ_ERR_NOTFOUND);
	assert_int_equal(count_table(f->s, "ecus"), 0);
	/* committed */
	must(store_begin(f->s), "begin");
	add_vehicle(f->s, "TX-2");
	must(store_commit(f->s), "commit");
	must(store_vehicle_get(f->s, "TX-2", &v), "get");
	store_vehicle_clear(&v);
	/* nested: the inner level rolls back alone */
	must(store_begin(f->s), "outer");
	add_vehicle(f->s, "TX-3");
	must(store_begin(f->s), "inner");
	add_vehicle(f->s, "TX-4");
	store_rollback(f->s);
	add_vehicle(f->s, "TX-5");
	must(store_commit(f->s), "outer commit");
	assert_int_equal(count_table(f->s, "vehicles"), 3);
	assert_int_equal(store_vehicle_get(f->s, "TX-4", &v), PQ_ERR_NOTFOUND);
	/* entity functions run inside a caller's transaction, and roll back with it */
	must(store_begin(f->s), "begin");
	add_vehicle(f->s, "TX-6");
	must(store_ecu_seed_default(f->s, "TX-6", 5), "seed in txn");
	must(store_vehicle_set_vci(f->s, "TX-6",
	                           "{\"ecus\":[{\"ecu_id\":\"ECU_001\","
	                           "\"software\":{\"APP\":\"2.0.0\"}}]}",
	                           6),
	     "vci in txn");
	store_rollback(f->s);
	assert_int_equal(count_table(f->s, "ecus"), 0);
	assert_int_equal(count_table(f->s, "ecu_history"), 0);
	/* a failed statement aborts the transaction: later statements and commit fail */
	must(store_begin(f->s), "begin");
	add_vehicle(f->s, "TX-7");
	store_vehicle dup = mk_vehicle("TX-2", "m");
	assert_int_equal(store_vehicle_insert(f->s, &dup), PQ_ERR_EXISTS);
	assert_int_equal(store_ping(f->s), PQ_ERR_IO);
	assert_int_not_equal(store_begin(f->s), PQ_OK);
	assert_int_equal(store_commit(f->s), PQ_ERR_IO);
	assert_int_equal(store_vehicle_get(f->s, "TX-7", &v), PQ_ERR_NOTFOUND);
	must(store_ping(f->s), "usable after the failed transaction");
	/* ... and an inner level's failure is cleared by rolling the inner level back */
	must(store_begin(f->s), "outer");
	add_vehicle(f->s, "TX-8");
	must(store_begin(f->s), "inner");
	assert_int_equal(store_vehicle_insert(f->s, &dup), PQ_ERR_EXISTS);
	store_rollback(f->s);
	must(store_commit(f->s), "outer commit after inner failure");
	must(store_vehicle_get(f->s, "TX-8", &v), "TX-8 kept");
	store_vehicle_clear(&v);
	/* misuse */
	assert_int_equal(store_commit(f->s), PQ_ERR_INVAL);
	store_rollback(f->s); /* nothing open: harmless */
	must(store_ping(f->s), "ping");
}

/* ---- vehicles ---------------------------------------------------------------------- */

static void test_vehicle_crud(void **state)
{
	sf_fixture *f = *state;
	store_vehicle v = mk_vehicle("WVWZZZ1JZXW000001", "zonal-1"), got;
	v.online = true;
	v.last_seen_ms = 1700000000123;
	v.boot_seq = 7;
	must(store_vehicle_insert(f->s, &v), "insert");
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_EXISTS);
	assert_non_null(strstr(pq_err_detail(), "WVWZZZ1JZXW000001"));
	must(store_vehicle_get(f->s, v.vin, &got), "get");
	assert_string_equal(got.vin, v.vin);
	assert_string_equal(got.model, "zonal-1");
	assert_string_equal(got.cert_pem_sha256, v.cert_pem_sha256);
	assert_string_equal(got.kem_x25519_pub, v.kem_x25519_pub);
	assert_string_equal(got.kem_mlkem_pub, v.kem_mlkem_pub);
	assert_true(got.online);
	assert_int_equal(got.last_seen_ms, 1700000000123);
	assert_int_equal(got.boot_seq, 7);
	assert_null(got.last_vci);
	assert_int_equal(got.created_ms, 1700000000000);
	store_vehicle_clear(&got);
	assert_null(got.kem_x25519_pub);

	must(store_vehicle_set_online(f->s, v.vin, false, 1700000009999, 8), "offline");
	must(store_vehicle_get(f->s, v.vin, &got), "get");
	assert_false(got.online);
	assert_int_equal(got.last_seen_ms, 1700000009999);
	assert_int_equal(got.boot_seq, 8);
	store_vehicle_clear(&got);

	assert_int_equal(store_vehicle_get(f->s, "NOPE", &got), PQ_ERR_NOTFOUND);
	assert_null(got.kem_x25519_pub);
	assert_int_equal(store_vehicle_set_online(f->s, "NOPE", true, 1, 1), PQ_ERR_NOTFOUND);
	assert_int_equal(store_vehicle_set_vci(f->s, "NOPE", "{\"ecus\":[]}", 1), PQ_ERR_NOTFOUND);
	assert_int_equal(store_vehicle_delete(f->s, "NOPE"), PQ_ERR_NOTFOUND);

	/* no keys, no certificate yet */
	store_vehicle bare;
	memset(&bare, 0, sizeof(bare));
	snprintf(bare.vin, sizeof(bare.vin), "BARE");
	must(store_vehicle_insert(f->s, &bare), "bare insert");
	must(store_vehicle_get(f->s, "BARE", &got), "bare get");
	assert_null(got.kem_mlkem_pub);
	assert_string_equal(got.cert_pem_sha256, "");
	store_vehicle_clear(&got);

	must(store_ecu_seed_default(f->s, v.vin, 10), "seed");
	must(store_vehicle_set_vci(
	         f->s, v.vin, "{\"ecus\":[{\"ecu_id\":\"ECU_002\",\"software\":{\"APP\":\"2\"}}]}",
	         11),
	     "vci");
	must(store_vehicle_delete(f->s, v.vin), "delete");
	assert_int_equal(store_vehicle_get(f->s, v.vin, &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_vehicle_delete(f->s, v.vin), PQ_ERR_NOTFOUND);
	/* cascades */
	assert_int_equal(count_table(f->s, "ecus"), 0);
	assert_int_equal(count_table(f->s, "ecu_history"), 0);
	assert_int_equal(count_table(f->s, "vehicles"), 1);
}

static void test_vehicle_bounds(void **state)
{
	sf_fixture *f = *state;
	char big[STORE_PEM_MAX + 2];
	store_vehicle v = mk_vehicle("OK", "m");
	assert_int_equal(store_vehicle_insert(NULL, &v), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_insert(f->s, NULL), PQ_ERR_INVAL);
	/* VIN: empty, 33 bytes (the field without its NUL) */
	v.vin[0] = '\0';
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	memset(v.vin, 'A', sizeof(v.vin));
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	assert_non_null(strstr(pq_err_detail(), "VIN"));
	v = mk_vehicle("OK", "m");
	memset(v.model, 'M', sizeof(v.model));
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	v = mk_vehicle("OK", "m");
	snprintf(v.cert_pem_sha256, sizeof(v.cert_pem_sha256), "ABCDEF");
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	hex64(v.cert_pem_sha256, 1);
	v.cert_pem_sha256[3] = 'A'; /* uppercase */
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	v = mk_vehicle("OK", "m");
	memset(big, 'k', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	v.kem_mlkem_pub = big;
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	big[STORE_PEM_MAX] = '\0'; /* exactly the maximum is fine */
	must(store_vehicle_insert(f->s, &v), "max PEM");
	v = mk_vehicle("OK2", "m");
	v.last_vci = "{not json";
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	v.last_vci = "{\"ecus\":[]}";
	v.created_ms = -1;
	assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
	assert_int_equal(count_table(f->s, "vehicles"), 1);
	/* lookups with bad keys */
	store_vehicle got;
	char vin33[STORE_VIN_MAX + 2];
	memset(vin33, 'V', sizeof(vin33) - 1);
	vin33[sizeof(vin33) - 1] = '\0';
	assert_int_equal(store_vehicle_get(f->s, vin33, &got), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_get(f->s, NULL, &got), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_get(f->s, "OK", NULL), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_set_online(f->s, vin33, true, 1, 1), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_set_online(f->s, "OK", true, -5, 1), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_delete(f->s, ""), PQ_ERR_INVAL);
}

static void test_vehicle_list(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	collect c;
	/* 120 vehicles, inserted out of order; every third online, two models */
	must(store_begin(f->s), "begin");
	for (int i = 0; i < 120; i++) {
		char vin[24];
		int k = (i * 37) % 120;
		snprintf(vin, sizeof(vin), "VIN%04d", k);
		store_vehicle v = mk_vehicle(vin, k % 2 ? "odd" : "even");
		v.online = k % 3 == 0;
		must(store_vehicle_insert(f->s, &v), "insert");
	}
	must(store_commit(f->s), "commit");

	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, NULL, NULL, collect_vehicle, &c, &total), "default page");
	assert_int_equal(total, 120);
	assert_int_equal(c.n, STORE_PAGE_DEFAULT);
	assert_true(strncmp(c.buf, "VIN0000,VIN0001,VIN0002", 23) == 0);

	store_page pg = {.limit = 50, .offset = 100};
	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, NULL, &pg, collect_vehicle, &c, &total), "last page");
	assert_int_equal(total, 120);
	assert_int_equal(c.n, 20);
	assert_true(strncmp(c.buf, "VIN0100,", 8) == 0);
	assert_non_null(strstr(c.buf, ",VIN0119"));

	pg = (store_page){.limit = 10, .offset = 500};
	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, NULL, &pg, collect_vehicle, &c, &total), "past the end");
	assert_int_equal(c.n, 0);
	assert_int_equal(total, 120);

	store_vehicle_filter flt = {.model = "odd", .online = -1};
	pg = (store_page){.limit = STORE_PAGE_MAX};
	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, &flt, &pg, collect_vehicle, &c, &total), "model");
	assert_int_equal(total, 60);
	assert_int_equal(c.n, 60);
	assert_true(strncmp(c.buf, "VIN0001,VIN0003", 15) == 0);

	flt = (store_vehicle_filter){.online = 1};
	must(store_vehicle_list(f->s, &flt, &pg, NULL, NULL, &total), "online, count only");
	assert_int_equal(total, 40);
	flt = (store_vehicle_filter){.online = 0, .model = "even"};
	must(store_vehicle_list(f->s, &flt, &pg, NULL, NULL, &total), "offline even");
	assert_int_equal(total, 40); /* 60 even, 20 of them multiples of 6 */
	flt = (store_vehicle_filter){.online = 1, .model = "odd", .vin_prefix = "VIN00"};
	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, &flt, &pg, collect_vehicle, &c, &total), "all filters");
	assert_string_equal(c.buf, "VIN0003,VIN0009,VIN0015,VIN0021,VIN0027,VIN0033,VIN0039,"
	                           "VIN0045,VIN0051,VIN0057,VIN0063,VIN0069,VIN0075,VIN0081,"
	                           "VIN0087,VIN0093,VIN0099");
	assert_int_equal(total, 17);
	flt = (store_vehicle_filter){.online = -1, .vin_prefix = "VIN011"};
	must(store_vehicle_list(f->s, &flt, &pg, NULL, NULL, &total), "prefix");
	assert_int_equal(total, 10);
	flt = (store_vehicle_filter){.online = -1, .vin_prefix = "vin"}; /* case matters */
	must(store_vehicle_list(f->s, &flt, &pg, NULL, NULL, &total), "prefix case");
	assert_int_equal(total, 0);
	flt = (store_vehicle_filter){.online = -1, .model = "none"};
	must(store_vehicle_list(f->s, &flt, &pg, NULL, NULL, &total), "no match");
	assert_int_equal(total, 0);

	/* callback errors stop the listing */
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	assert_int_equal(store_vehicle_list(f->s, NULL, NULL, collect_vehicle, &c, NULL),
	                 PQ_ERR_RANGE);
	assert_int_equal(c.n, 3);

	/* bad pages and filters */
	pg = (store_page){.limit = STORE_PAGE_MAX + 1};
	assert_int_equal(store_vehicle_list(f->s, NULL, &pg, NULL, NULL, &total), PQ_ERR_INVAL);
	pg = (store_page){.limit = -1};
	assert_int_equal(store_vehicle_list(f->s, NULL, &pg, NULL, NULL, &total), PQ_ERR_INVAL);
	pg = (store_page){.limit = 1, .offset = -1};
	assert_int_equal(store_vehicle_list(f->s, NULL, &pg, NULL, NULL, &total), PQ_ERR_INVAL);
	flt = (store_vehicle_filter){.online = 2};
	assert_int_equal(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), PQ_ERR_INVAL);
	flt = (store_vehicle_filter){.online = -2};
	assert_int_equal(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), PQ_ERR_INVAL);
	char longp[STORE_VIN_MAX + 2];
	memset(longp, 'P', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	flt = (store_vehicle_filter){.online = -1, .vin_prefix = longp};
	assert_int_equal(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), PQ_ERR_INVAL);
}

static void test_ordering_bytes(void **state)
{
	sf_fixture *f = *state;
	const char *vins[] = {"b1", "B2", "a3", "A4", "_5", "Z6", "~7", "08"};
	for (size_t i = 0; i < ARRAY_LEN(vins); i++)
		add_vehicle(f->s, vins[i]);
	collect c;
	memset(&c, 0, sizeof(c));
	must(store_vehicle_list(f->s, NULL, NULL, collect_vehicle, &c, NULL), "list");
	/* byte order on both backends, whatever the database's locale */
	assert_string_equal(c.buf, "08,A4,B2,Z6,_5,a3,b1,~7");
}

/* ---- ECUs -------------------------------------------------------------------------- */

static void test_ecu_upsert_history(void **state)
{
	sf_fixture *f = *state;
	store_ecu e = mk_ecu("VIN-E", "ECU_011", "1.0.0", 100), got;
	int64_t total = -1;
	collect c;
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_NOTFOUND);
	add_vehicle(f->s, "VIN-E");
	must(store_ecu_upsert(f->s, &e), "new");
	must(store_ecu_get(f->s, "VIN-E", "ECU_011", &got), "get");
	assert_string_equal(got.hardware_id, "HW-1-001");
	assert_int_equal(got.zone, 1);
	assert_string_equal(got.sw_app, "1.0.0");
	assert_string_equal(got.serial, "SN-1");
	assert_string_equal(got.bank, "A");
	assert_int_equal(got.updated_ms, 100);
	must(store_ecu_history(f->s, "VIN-E", "ECU_011", NULL, collect_change, &c, &total),
	     "history");
	assert_int_equal(total, 0); /* a new ECU has no history */

	/* same versions: no history, but the rest is updated */
	snprintf(e.bank, sizeof(e.bank), "B");
	e.updated_ms = 150;
	must(store_ecu_upsert(f->s, &e), "same versions");
	must(store_ecu_get(f->s, "VIN-E", "ECU_011", &got), "get");
	assert_string_equal(got.bank, "B");
	assert_int_equal(got.updated_ms, 150);

	e = mk_ecu("VIN-E", "ECU_011", "1.1.0", 200);
	must(store_ecu_upsert(f->s, &e), "APP change");
	e = mk_ecu("VIN-E", "ECU_011", "1.1.0", 300);
	snprintf(e.sw_boot, sizeof(e.sw_boot), "2.0.0");
	snprintf(e.sw_cal, sizeof(e.sw_cal), "3.0.0");
	must(store_ecu_upsert(f->s, &e), "BOOT and CAL change");
	must(store_ecu_upsert(f->s, &e), "repeat: no change");
	memset(&c, 0, sizeof(c));
	must(store_ecu_history(f->s, "VIN-E", "ECU_011", NULL, collect_change, &c, &total),
	     "history");
	assert_int_equal(total, 3);
	assert_string_equal(c.buf, "CAL:1.0.0>3.0.0@300,BOOT:1.0.0>2.0.0@300,APP:1.0.0>1.1.0@200");
	store_page pg = {.limit = 1, .offset = 2};
	memset(&c, 0, sizeof(c));
	must(store_ecu_history(f->s, "VIN-E", "ECU_011", &pg, collect_change, &c, &total), "page");
	assert_int_equal(total, 3);
	assert_string_equal(c.buf, "APP:1.0.0>1.1.0@200");

	assert_int_equal(store_ecu_get(f->s, "VIN-E", "ECU_999", &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_ecu_get(f->s, "VIN-X", "ECU_011", &got), PQ_ERR_NOTFOUND);
	assert_int_equal(
	    store_ecu_history(f->s, "VIN-E", "ECU_999", NULL, collect_change, &c, &total),
	    PQ_ERR_NOTFOUND);
	assert_int_equal(store_ecu_list(f->s, "VIN-X", NULL, collect_ecu, &c, &total),
	                 PQ_ERR_NOTFOUND);

	/* bounds */
	e = mk_ecu("VIN-E", "ECU_012", "1.0.0", 1);
	e.zone = 256;
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	e.zone = -1;
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	e = mk_ecu("VIN-E", "ECU_012", "1.0.0", 1);
	memset(e.sw_cal, '9', sizeof(e.sw_cal)); /* 25 bytes, no NUL */
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	e = mk_ecu("VIN-E", "", "1.0.0", 1);
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	e = mk_ecu("VIN-E", "ECU_012", "1.0.0", 1);
	memset(e.bank, 'B', sizeof(e.bank));
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	e = mk_ecu("VIN-E", "ECU_012", "1.0.0", 1);
	memset(e.serial, 'S', sizeof(e.serial));
	assert_int_equal(store_ecu_upsert(f->s, &e), PQ_ERR_INVAL);
	assert_int_equal(store_ecu_upsert(f->s, NULL), PQ_ERR_INVAL);
	assert_int_equal(count_table(f->s, "ecus"), 1);
	assert_int_equal(store_ecu_get(f->s, "VIN-E", NULL, &got), PQ_ERR_INVAL);
}

static void test_ecu_seed_list(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	collect c;
	store_ecu e;
	assert_int_equal(store_ecu_seed_default(f->s, "VIN-S", 5), PQ_ERR_NOTFOUND);
	add_vehicle(f->s, "VIN-S");
	must(store_ecu_seed_default(f->s, "VIN-S", 5), "seed");
	assert_int_equal(count_table(f->s, "ecus"), STORE_SEED_ECUS);
	for (int z = 1; z <= 5; z++) {
		store_val p[] = {SV_INT(z)};
		assert_int_equal(qint(f->s, "SELECT COUNT(*) FROM ecus WHERE zone = ?", p, 1), 20);
	}
	must(store_ecu_get(f->s, "VIN-S", "ECU_001", &e), "ECU_001");
	assert_string_equal(e.hardware_id, "HW-1-001");
	assert_int_equal(e.zone, 1);
	assert_string_equal(e.sw_app, "1.0.0");
	assert_string_equal(e.sw_boot, "1.0.0");
	assert_string_equal(e.sw_cal, "1.0.0");
	assert_string_equal(e.bank, "A");
	assert_int_equal(e.updated_ms, 5);
	must(store_ecu_get(f->s, "VIN-S", "ECU_021", &e), "ECU_021");
	assert_string_equal(e.hardware_id, "HW-2-021");
	assert_int_equal(e.zone, 2);
	must(store_ecu_get(f->s, "VIN-S", "ECU_100", &e), "ECU_100");
	assert_string_equal(e.hardware_id, "HW-5-100");
	assert_int_equal(e.zone, 5);

	/* seeding again leaves existing ECUs alone */
	e = mk_ecu("VIN-S", "ECU_050", "9.9.9", 6);
	must(store_ecu_upsert(f->s, &e), "update");
	must(store_ecu_seed_default(f->s, "VIN-S", 7), "seed again");
	must(store_ecu_get(f->s, "VIN-S", "ECU_050", &e), "ECU_050");
	assert_string_equal(e.sw_app, "9.9.9");
	assert_int_equal(count_table(f->s, "ecus"), STORE_SEED_ECUS);

	memset(&c, 0, sizeof(c));
	store_page pg = {.limit = 30, .offset = 90};
	must(store_ecu_list(f->s, "VIN-S", &pg, collect_ecu, &c, &total), "list");
	assert_int_equal(total, 100);
	assert_int_equal(c.n, 10);
	assert_string_equal(c.buf, "ECU_091,ECU_092,ECU_093,ECU_094,ECU_095,ECU_096,ECU_097,"
	                           "ECU_098,ECU_099,ECU_100");
	memset(&c, 0, sizeof(c));
	must(store_ecu_list(f->s, "VIN-S", NULL, collect_ecu, &c, &total), "default page");
	assert_int_equal(c.n, 50);
	pg = (store_page){.limit = 501};
	assert_int_equal(store_ecu_list(f->s, "VIN-S", &pg, collect_ecu, &c, &total), PQ_ERR_INVAL);
	/* a vehicle without ECUs */
	add_vehicle(f->s, "VIN-EMPTY");
	must(store_ecu_list(f->s, "VIN-EMPTY", NULL, collect_ecu, &c, &total), "empty");
	assert_int_equal(total, 0);
}

/* ---- VCI --------------------------------------------------------------------------- */

static void test_vci(void **state)
{
	sf_fixture *f = *state;
	store_ecu e;
	store_vehicle v;
	int64_t total = -1;
	collect c;
	add_vehicle(f->s, "VIN-V");
	must(store_ecu_seed_default(f->s, "VIN-V", 1), "seed");
	const char *vci =
	    "{\"vin\":\"VIN-V\",\"reported\":\"now\",\"ecus\":["
	    "{\"ecu_id\":\"ECU_011\",\"hardware_id\":\"HW-1-011\",\"zone\":1,"
	    " \"software\":{\"APP\":\"1.2.0\",\"BOOT\":\"1.0.0\",\"CAL\":\"1.0.1\",\"MAP\":\"x\"},"
	    " \"serial\":\"S-11\",\"bank\":\"B\",\"temperature\":41.5,\"extra\":{\"a\":[1,2]}},"
	    "{\"ecu_id\":\"ECU_200\",\"zone\":3,\"software\":{\"APP\":\"0.9.0\"}},"
	    "{\"ecu_id\":\"ECU_012\",\"hardware_id\":null,\"software\":{}}"
	    "]}";
	must(store_vehicle_set_vci(f->s, "VIN-V", vci, 1000), "vci");
	must(store_vehicle_get(f->s, "VIN-V", &v), "get");
	assert_string_equal(v.last_vci, vci); /* stored verbatim */
	store_vehicle_clear(&v);

	must(store_ecu_get(f->s, "VIN-V", "ECU_011", &e), "ECU_011");
	assert_string_equal(e.sw_app, "1.2.0");
	assert_string_equal(e.sw_boot, "1.0.0");
	assert_string_equal(e.sw_cal, "1.0.1");
	assert_string_equal(e.serial, "S-11");
	assert_string_equal(e.bank, "B");
	assert_string_equal(e.hardware_id, "HW-1-011");
	assert_int_equal(e.updated_ms, 1000);
	memset(&c, 0, sizeof(c));
	must(store_ecu_history(f->s, "VIN-V", "ECU_011", NULL, collect_change, &c, &total),
	     "history");
	assert_int_equal(total, 2);
	assert_string_equal(c.buf, "CAL:1.0.0>1.0.1@1000,APP:1.0.0>1.2.0@1000");

	/* a new ECU: defaults for the fields not reported */
	must(store_ecu_get(f->s, "VIN-V", "ECU_200", &e), "ECU_200");
	assert_int_equal(e.zone, 3);
	assert_string_equal(e.sw_app, "0.9.0");
	assert_string_equal(e.sw_boot, "");
	assert_string_equal(e.hardware_id, "");
	assert_string_equal(e.bank, "A");
	/* absent fields keep their values */
	must(store_ecu_get(f->s, "VIN-V", "ECU_012", &e), "ECU_012");
	assert_string_equal(e.hardware_id, "HW-1-012");
	assert_string_equal(e.sw_app, "1.0.0");
	assert_int_equal(e.updated_ms, 1000);
	/* ECUs not in the report are untouched */
	must(store_ecu_get(f->s, "VIN-V", "ECU_013", &e), "ECU_013");
	assert_int_equal(e.updated_ms, 1);
	assert_int_equal(count_table(f->s, "ecus"), 101);

	/* the same report again: no new history */
	must(store_vehicle_set_vci(f->s, "VIN-V", vci, 2000), "vci again");
	assert_int_equal(count_table(f->s, "ecu_history"), 2);
	/* an empty report is valid */
	must(store_vehicle_set_vci(f->s, "VIN-V", "{\"ecus\":[]}", 3000), "empty");
	must(store_vehicle_get(f->s, "VIN-V", &v), "get");
	assert_string_equal(v.last_vci, "{\"ecus\":[]}");
	store_vehicle_clear(&v);
}

static void test_vci_invalid(void **state)
{
	sf_fixture *f = *state;
	store_vehicle v;
	add_vehicle(f->s, "VIN-B");
	must(store_ecu_seed_default(f->s, "VIN-B", 1), "seed");
	const char *bad[] = {
	    "",
	    "not json",
	    "[]",
	    "{\"ecus\":{}}",
	    "{\"ecus\":\"ECU_001\"}",
	    "{\"ecu\":[]}",
	    "{\"ecus\":[1]}",
	    "{\"ecus\":[{\"zone\":1}]}",
	    "{\"ecus\":[{\"ecu_id\":\"\"}]}",
	    "{\"ecus\":[{\"ecu_id\":5}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"zone\":\"1\"}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"zone\":-1}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"zone\":1.5}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"zone\":99999999999}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"software\":[]}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"software\":{\"APP\":2}}]}",
	    ("{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"software\":{\"BOOT\":"
	     "\"1234567890123456789012345\"}}]}"),
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"bank\":\"ABCD\"}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"serial\":true}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"hardware_id\":\"a\\u0000b\"}]}",
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\"},{\"ecu_id\":\"ECU_001\"}]}",
	    "{\"ecus\":[],\"ecus\":[]}",
	    /* a valid first ECU, a bad second: nothing at all is stored */
	    "{\"ecus\":[{\"ecu_id\":\"ECU_001\",\"software\":{\"APP\":\"7.0.0\"}},{\"ecu_id\":1}]}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int rc = store_vehicle_set_vci(f->s, "VIN-B", bad[i], 50);
		if (rc != PQ_ERR_INVAL)
			fail_msg("VCI %zu (%s): %d, wanted PQ_ERR_INVAL", i, bad[i], rc);
	}
	/* too many ECUs */
	size_t cap = 40 * (STORE_VCI_ECUS_MAX + 2);
	char *many = malloc(cap);
	assert_non_null(many);
	size_t o = (size_t)snprintf(many, cap, "{\"ecus\":[");
	for (int i = 0; i <= STORE_VCI_ECUS_MAX; i++)
		o += (size_t)snprintf(many + o, cap - o, "%s{\"ecu_id\":\"E%d\"}", i ? "," : "", i);
	snprintf(many + o, cap - o, "]}");
	assert_int_equal(store_vehicle_set_vci(f->s, "VIN-B", many, 50), PQ_ERR_INVAL);
	assert_non_null(strstr(pq_err_detail(), "1025"));
	/* exactly the maximum is accepted */
	o = (size_t)snprintf(many, cap, "{\"ecus\":[");
	for (int i = 0; i < STORE_VCI_ECUS_MAX; i++)
		o += (size_t)snprintf(many + o, cap - o, "%s{\"ecu_id\":\"E%d\"}", i ? "," : "", i);
	snprintf(many + o, cap - o, "]}");
	assert_int_equal(count_table(f->s, "ecus"), 100);
	must(store_vehicle_set_vci(f->s, "VIN-B", many, 60), "1024 ECUs");
	assert_int_equal(count_table(f->s, "ecus"), 100 + STORE_VCI_ECUS_MAX);
	free(many);
	must(store_vehicle_get(f->s, "VIN-B", &v), "get");
	assert_non_null(v.last_vci);
	assert_true(strncmp(v.last_vci, "{\"ecus\":[{\"ecu_id\":\"E0\"}", 24) == 0);
	store_vehicle_clear(&v);
	assert_int_equal(count_table(f->s, "ecu_history"), 0);
	/* over-long text, NULL */
	char *huge = malloc(STORE_VCI_MAX + 2);
	assert_non_null(huge);
	memset(huge, ' ', STORE_VCI_MAX + 1);
	huge[STORE_VCI_MAX + 1] = '\0';
	assert_int_equal(store_vehicle_set_vci(f->s, "VIN-B", huge, 50), PQ_ERR_INVAL);
	free(huge);
	assert_int_equal(store_vehicle_set_vci(f->s, "VIN-B", NULL, 50), PQ_ERR_INVAL);
	assert_int_equal(store_vehicle_set_vci(f->s, "VIN-B", "{\"ecus\":[]}", -1), PQ_ERR_INVAL);
}

/* ---- releases ---------------------------------------------------------------------- */

static void test_release(void **state)
{
	sf_fixture *f = *state;
	store_release r = mk_release("rel-1", "HW-1-011", "1.0.0", 100), got;
	r.notes = "first\nrelease";
	must(store_release_insert(f->s, &r), "insert");
	must(store_release_get(f->s, "rel-1", &got), "get");
	assert_string_equal(got.id, "rel-1");
	assert_string_equal(got.title, "Release 1.0.0");
	assert_string_equal(got.notes, "first\nrelease");
	assert_string_equal(got.version, "1.0.0");
	assert_string_equal(got.hardware_id, "HW-1-011");
	assert_string_equal(got.software_type, "APP");
	assert_string_equal(got.ecu_id, "ECU_011");
	assert_string_equal(got.file_sha256, r.file_sha256);
	assert_int_equal(got.file_size, 4096);
	assert_string_equal(got.image_sha256, r.image_sha256);
	assert_int_equal(got.image_size, 65536);
	assert_int_equal(got.created_ms, 100);
	assert_string_equal(got.created_by, "apikey:ci");
	store_release_clear(&got);
	assert_null(got.notes);

	/* found by its unique key */
	must(store_release_find(f->s, "HW-1-011", "ECU_011", "APP", "1.0.0", &got), "find");
	assert_string_equal(got.id, "rel-1");
	store_release_clear(&got);
	assert_int_equal(store_release_find(f->s, "HW-1-011", "ECU_011", "CAL", "1.0.0", &got),
	                 PQ_ERR_NOTFOUND);

	/* duplicates */
	assert_int_equal(store_release_insert(f->s, &r), PQ_ERR_EXISTS);
	store_release same = mk_release("rel-3", "HW-1-011", "1.0.0", 300);
	assert_int_equal(store_release_insert(f->s, &same), PQ_ERR_EXISTS);
	snprintf(same.software_type, sizeof(same.software_type), "CAL");
	must(store_release_insert(f->s, &same), "other software type");

	/* validation */
	store_release bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	bad.file_sha256[0] = 'g';
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	bad.file_size = 0;
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	memset(bad.title, 'T', sizeof(bad.title));
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	memset(bad.id, 'I', sizeof(bad.id));
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	bad.version[0] = '\0';
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	memset(bad.software_type, 'X', sizeof(bad.software_type));
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	char *notes = malloc(STORE_TEXT_MAX + 2);
	assert_non_null(notes);
	memset(notes, 'n', STORE_TEXT_MAX + 1);
	notes[STORE_TEXT_MAX + 1] = '\0';
	bad = mk_release("rel-4", "HW-1-011", "2.0.0", 400);
	bad.notes = notes;
	assert_int_equal(store_release_insert(f->s, &bad), PQ_ERR_INVAL);
	notes[STORE_TEXT_MAX] = '\0';
	must(store_release_insert(f->s, &bad), "notes at the maximum");
	free(notes);
	assert_int_equal(store_release_get(f->s, "rel-none", &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_release_get(f->s, "", &got), PQ_ERR_INVAL);
}

static void test_release_list_delete(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	collect c;
	bool known = true;
	for (int i = 0; i < 12; i++) {
		char id[16], ver[16];
		snprintf(id, sizeof(id), "r%02d", i);
		snprintf(ver, sizeof(ver), "1.%d.0", i);
		store_release r = mk_release(id, i % 3 ? "HW-A" : "HW-B", ver, 1000 + (i % 6));
		must(store_release_insert(f->s, &r), "insert");
	}
	memset(&c, 0, sizeof(c));
	must(store_release_list(f->s, NULL, NULL, collect_release, &c, &total), "all");
	assert_int_equal(total, 12);
	/* newest first, ties by id */
	assert_string_equal(c.buf, "r05,r11,r04,r10,r03,r09,r02,r08,r01,r07,r00,r06");
	memset(&c, 0, sizeof(c));
	store_page pg = {.limit = 3, .offset = 1};
	must(store_release_list(f->s, "HW-B", &pg, collect_release, &c, &total), "HW-B");
	assert_int_equal(total, 4);
	assert_string_equal(c.buf, "r09,r00,r06");
	must(store_release_list(f->s, "HW-C", NULL, collect_release, &c, &total), "none");
	assert_int_equal(total, 0);
	pg = (store_page){.limit = 1000};
	assert_int_equal(store_release_list(f->s, NULL, &pg, collect_release, &c, &total),
	                 PQ_ERR_INVAL);

	/* content addresses */
	store_release r;
	must(store_release_get(f->s, "r03", &r), "get");
	must(store_file_known(f->s, r.file_sha256, &known), "known full");
	assert_true(known);
	must(store_file_known(f->s, r.image_sha256, &known), "image is not a file");
	assert_false(known);
	store_release_clear(&r);
	store_release d = mk_release("rd", "HW-D", "2.0.0", 5000);
	must(store_release_insert(f->s, &d), "release");
	store_release_delta dd = mk_delta("rd", "1.0.0", STORE_DELTA_QUEUED, 5000);
	hex64(dd.file_sha256, 0xabcdef); /* named, but not ready: not served */
	must(store_release_delta_insert(f->s, &dd), "queued delta");
	must(store_file_known(f->s, dd.file_sha256, &known), "queued delta");
	assert_false(known);
	dd = mk_delta("rd", "1.1.0", STORE_DELTA_READY, 5000);
	hex64(dd.file_sha256, 0xabcdef);
	must(store_release_delta_insert(f->s, &dd), "ready delta");
	must(store_file_known(f->s, dd.file_sha256, &known), "known delta");
	assert_true(known);
	char unknown[65];
	hex64(unknown, 0x5555);
	must(store_file_known(f->s, unknown, &known), "unknown");
	assert_false(known);
	assert_int_equal(store_file_known(f->s, "../etc/passwd", &known), PQ_ERR_INVAL);
	assert_int_equal(store_file_known(f->s, "", &known), PQ_ERR_INVAL);

	/* delete: refused while a campaign references the release */
	must(store_exec(f->s,
	                "INSERT INTO campaigns (id, name, created_ms, updated_ms)"
	                " VALUES ('camp-1', 'wave', 1, 1)",
	                NULL, 0, NULL, NULL, NULL),
	     "campaign");
	must(store_exec(f->s,
	                "INSERT INTO campaign_releases (campaign_id, release_id, position)"
	                " VALUES ('camp-1', 'r01', 0)",
	                NULL, 0, NULL, NULL, NULL),
	     "campaign release");
	assert_int_equal(store_release_delete(f->s, "r01"), PQ_ERR_EXISTS);
	assert_non_null(strstr(pq_err_detail(), "campaign"));
	must(store_release_get(f->s, "r01", &r), "still there");
	store_release_clear(&r);
	/* the foreign key refuses it too, below the check */
	assert_int_not_equal(
	    store_exec(f->s, "DELETE FROM releases WHERE id = 'r01'", NULL, 0, NULL, NULL, NULL),
	    PQ_OK);
	must(store_exec(f->s, "DELETE FROM campaigns WHERE id = 'camp-1'", NULL, 0, NULL, NULL,
	                NULL),
	     "campaign delete");
	assert_int_equal(count_table(f->s, "campaign_releases"), 0);
	must(store_release_delete(f->s, "r01"), "delete");
	assert_int_equal(store_release_get(f->s, "r01", &r), PQ_ERR_NOTFOUND);
	assert_int_equal(store_release_delete(f->s, "r01"), PQ_ERR_NOTFOUND);
	assert_int_equal(store_release_delete(f->s, NULL), PQ_ERR_INVAL);
	must(store_release_list(f->s, NULL, NULL, NULL, NULL, &total), "count");
	assert_int_equal(total, 12);
}

/* ---- API keys ---------------------------------------------------------------------- */

static store_apikey mk_key(const char *id, const char *name, store_role role, unsigned n)
{
	store_apikey k;
	memset(&k, 0, sizeof(k));
	snprintf(k.id, sizeof(k.id), "%s", id);
	snprintf(k.name, sizeof(k.name), "%s", name);
	k.role = role;
	hex64(k.key_sha256, n);
	k.created_ms = 10 + n;
	return k;
}

/* Package keys: inserted once per package, found by the package or by its encrypted copy;
 * bad fields refused. */
typedef struct {
	char buf[256];
} delta_names;

static int collect_delta(const store_release_delta *d, void *user)
{
	delta_names *c = user;
	size_t n = strlen(c->buf);
	snprintf(c->buf + n, sizeof(c->buf) - n, "%s%s:%s", n ? "," : "", d->base_version,
	         store_delta_state_name(d->state));
	return PQ_OK;
}

/* A release's deltas: one per base version, the background job's states and progress, the
 * queue a restarted server takes up again, and the cascade with the release. */
static void test_release_deltas(void **state)
{
	sf_fixture *f = *state;
	store_release r = mk_release("rel-d", "HW-1-011", "2.0.0", 100);
	store_release_delta got;
	delta_names c;
	int64_t n = -1;
	bool found = true;
	must(store_release_insert(f->s, &r), "release");
	store_release_delta a = mk_delta("rel-d", "1.0.0", STORE_DELTA_QUEUED, 200);
	store_release_delta b = mk_delta("rel-d", "1.1.0", STORE_DELTA_QUEUED, 300);
	snprintf(b.source, sizeof(b.source), "uploaded");
	snprintf(b.input, sizeof(b.input), "in.swpg");
	must(store_release_delta_insert(f->s, &a), "a");
	must(store_release_delta_insert(f->s, &b), "b");
	assert_int_equal(store_release_delta_insert(f->s, &a), PQ_ERR_EXISTS);
	store_release_delta orphan = mk_delta("rel-none", "1.0.0", STORE_DELTA_QUEUED, 1);
	assert_int_equal(store_release_delta_insert(f->s, &orphan), PQ_ERR_NOTFOUND);
	must(store_release_delta_pending(f->s, &n), "pending");
	assert_int_equal(n, 2);

	/* the oldest queued is claimed first, once */
	must(store_release_delta_claim(f->s, 400, &got, &found), "claim");
	assert_true(found);
	assert_string_equal(got.base_version, "1.0.0");
	assert_int_equal(got.state, STORE_DELTA_RUNNING);
	must(store_release_delta_progress(f->s, "rel-d", "1.0.0", 50, 200, 410), "progress");
	must(store_release_delta_get(f->s, "rel-d", "1.0.0", &got), "get");
	assert_int_equal(got.progress_done, 50);
	assert_int_equal(got.progress_total, 200);
	assert_int_equal(got.updated_ms, 410);
	assert_int_equal(store_release_delta_progress(f->s, "rel-d", "1.1.0", 1, 2, 410),
	                 PQ_ERR_NOTFOUND); /* queued, not running */

	/* a restart queues the running job again; it is claimed again */
	must(store_release_delta_requeue(f->s, 500, &n), "requeue");
	assert_int_equal(n, 1);
	must(store_release_delta_get(f->s, "rel-d", "1.0.0", &got), "get");
	assert_int_equal(got.state, STORE_DELTA_QUEUED);
	assert_int_equal(got.progress_done, 0);
	must(store_release_delta_claim(f->s, 600, &got, &found), "claim again");
	assert_string_equal(got.base_version, "1.0.0");

	/* ready needs its file; the end is stored once */
	got.state = STORE_DELTA_READY;
	assert_int_equal(store_release_delta_finish(f->s, &got, 700), PQ_ERR_INVAL);
	hex64(got.file_sha256, 0xfeed);
	got.file_size = 321;
	must(store_release_delta_finish(f->s, &got, 700), "ready");
	assert_int_equal(store_release_delta_finish(f->s, &got, 700), PQ_ERR_NOTFOUND);
	must(store_release_delta_claim(f->s, 800, &got, &found), "claim b");
	assert_string_equal(got.input, "in.swpg");
	got.state = STORE_DELTA_FAILED;
	assert_int_equal(store_release_delta_finish(f->s, &got, 900), PQ_ERR_INVAL); /* no why */
	snprintf(got.error, sizeof(got.error), "the delta does not apply");
	must(store_release_delta_finish(f->s, &got, 900), "failed");
	must(store_release_delta_claim(f->s, 900, &got, &found), "nothing queued");
	assert_false(found);
	must(store_release_delta_get(f->s, "rel-d", "1.1.0", &got), "get failed");
	assert_string_equal(got.error, "the delta does not apply");
	assert_string_equal(got.input, "");
	assert_string_equal(got.source, "uploaded");
	must(store_release_delta_get(f->s, "rel-d", "1.0.0", &got), "get ready");
	assert_int_equal(got.state, STORE_DELTA_READY);
	assert_int_equal(got.file_size, 321);
	assert_int_equal(got.updated_ms, 700);
	memset(&c, 0, sizeof(c));
	must(store_release_delta_list(f->s, "rel-d", collect_delta, &c), "list");
	assert_string_equal(c.buf, "1.0.0:ready,1.1.0:failed");
	must(store_release_delta_pending(f->s, &n), "pending");
	assert_int_equal(n, 0);

	/* validation */
	store_release_delta bad = mk_delta("rel-d", "1.2.0", STORE_DELTA_QUEUED, 1);
	snprintf(bad.source, sizeof(bad.source), "other");
	assert_int_equal(store_release_delta_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_delta("rel-d", "1.2.0", STORE_DELTA_QUEUED, 1);
	bad.base_sha256[0] = '\0';
	assert_int_equal(store_release_delta_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_delta("rel-d", "", STORE_DELTA_QUEUED, 1);
	assert_int_equal(store_release_delta_insert(f->s, &bad), PQ_ERR_INVAL);
	store_delta_state st;
	must(store_delta_state_parse("running", &st), "parse");
	assert_int_equal(st, STORE_DELTA_RUNNING);
	assert_int_equal(store_delta_state_parse("done", &st), PQ_ERR_INVAL);

	/* a failed delta can be removed (a retry); a release's deltas go with it */
	must(store_release_delta_delete(f->s, "rel-d", "1.1.0"), "delete");
	assert_int_equal(store_release_delta_delete(f->s, "rel-d", "1.1.0"), PQ_ERR_NOTFOUND);
	must(store_release_delete(f->s, "rel-d"), "delete release");
	assert_int_equal(count_table(f->s, "release_deltas"), 0);
}

typedef struct {
	char ids[8][STORE_ID_MAX + 1];
	int n;
} bundle_ids;

static int collect_bundle(const store_bundle *b, void *user)
{
	bundle_ids *ids = user;
	assert_true(ids->n < 8);
	assert_non_null(b->record);
	snprintf(ids->ids[ids->n++], STORE_ID_MAX + 1, "%s", b->id);
	return PQ_OK;
}

/* Bundles: stored once, read back, paged newest first; bad input refused. */
static void test_bundles(void **state)
{
	sf_fixture *f = *state;
	store_bundle b = {.id = "b-1", .file_size = 4096, .created_ms = 1700000000000};
	hex64(b.file_sha256, 0xb1);
	b.record = "{\"id\":\"b-1\",\"units\":[]}";
	must(store_bundle_insert(f->s, &b), "insert");
	assert_int_equal(store_bundle_insert(f->s, &b), PQ_ERR_EXISTS);
	store_bundle two = b;
	snprintf(two.id, sizeof(two.id), "b-2");
	two.created_ms++;
	must(store_bundle_insert(f->s, &two), "second");
	store_bundle got;
	must(store_bundle_get(f->s, "b-1", &got), "get");
	assert_string_equal(got.file_sha256, b.file_sha256);
	assert_int_equal(got.file_size, 4096);
	assert_string_equal(got.record, b.record);
	store_bundle_clear(&got);
	assert_int_equal(store_bundle_get(f->s, "b-3", &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_bundle_get(f->s, "", &got), PQ_ERR_NOTFOUND);
	bundle_ids ids = {0};
	int64_t total = 0;
	store_page pg = {.limit = 1, .offset = 0};
	must(store_bundle_list(f->s, &pg, collect_bundle, &ids, &total), "list");
	assert_int_equal(total, 2);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.ids[0], "b-2"); /* newest first */
	pg.offset = 1;
	must(store_bundle_list(f->s, &pg, collect_bundle, &ids, &total), "page 2");
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.ids[1], "b-1");
	/* bad input */
	store_bundle bad = b;
	snprintf(bad.id, sizeof(bad.id), "b-9");
	bad.record = "not json";
	assert_int_equal(store_bundle_insert(f->s, &bad), PQ_ERR_INVAL);
	bad.record = b.record;
	bad.file_size = 0;
	assert_int_equal(store_bundle_insert(f->s, &bad), PQ_ERR_INVAL);
	bad.file_size = 1;
	bad.file_sha256[3] = 'X';
	assert_int_equal(store_bundle_insert(f->s, &bad), PQ_ERR_INVAL);
	assert_int_equal(count_table(f->s, "bundles"), 2);
}

static int newest_cb(const store_release *r, void *user)
{
	snprintf(user, STORE_ID_MAX + 1, "%s", r->id);
	return PQ_OK;
}

/* Schema step 8 moves a release's single delta (the v7 columns) into release_deltas as a
 * ready delta, its base release found by hardware, type and version. */
static void test_migrate_deltas(void **state)
{
	sf_fixture *f = *state;
	store_config cfg = sf_config(f->url);
	static const char *const back_to_v7[] = {
	    /* the steps after 8 first */
	    "DROP TABLE telemetry_history",
	    "DROP TABLE telemetry_latest",
	    "DELETE FROM schema_version WHERE version = 9",
	    "DROP TABLE release_deltas",
	    "ALTER TABLE releases ADD COLUMN delta_base_version TEXT NOT NULL DEFAULT ''",
	    "ALTER TABLE releases ADD COLUMN delta_file_sha256 TEXT NOT NULL DEFAULT ''",
	    "ALTER TABLE releases ADD COLUMN delta_file_size BIGINT NOT NULL DEFAULT 0",
	    "ALTER TABLE releases ADD COLUMN delta_base_sha256 TEXT NOT NULL DEFAULT ''",
	    "ALTER TABLE releases ADD COLUMN delta_source TEXT NOT NULL DEFAULT 'computed'",
	    "CREATE INDEX releases_delta_file ON releases (delta_file_sha256)",
	    "ALTER TABLE api_keys DROP COLUMN expires_ms",   /* v10 */
	    "ALTER TABLE api_keys DROP COLUMN last_used_ms", /* v10 */
	    /* and the later steps, which run again after step 8 */
	    "DROP INDEX ecus_registry_ecu",
	    "DROP INDEX ecus_registry_version",
	    "DROP TABLE readiness_checks", /* v12 */
	    "DROP TABLE bundles",          /* v13 */
	    "DROP INDEX vehicles_polled",  /* v14 */
	    "ALTER TABLE vehicles DROP COLUMN online_until_ms",
	    "DROP INDEX releases_latest",
	    "ALTER TABLE releases DROP COLUMN version_counter",
	    "DELETE FROM schema_version WHERE version >= 8",
	};
	store_release base = mk_release("rel-base", "HW-1-011", "1.0.0", 100);
	store_release up = mk_release("rel-up", "HW-1-011", "1.1.0", 200);
	store_release lone = mk_release("rel-lone", "HW-1-011", "1.2.0", 300);
	must(store_release_insert(f->s, &base), "base");
	must(store_release_insert(f->s, &up), "up");
	must(store_release_insert(f->s, &lone), "lone");
	for (size_t i = 0; i < ARRAY_LEN(back_to_v7); i++)
		must(store_exec(f->s, back_to_v7[i], NULL, 0, NULL, NULL, NULL), back_to_v7[i]);
	char dsha[65];
	hex64(dsha, 0xd17a);
	store_val p[] = {SV_TEXT(dsha), SV_TEXT(base.image_sha256)};
	must(store_exec(f->s,
	                "UPDATE releases SET delta_base_version = '1.0.0', delta_file_sha256 = ?,"
	                " delta_file_size = 77, delta_base_sha256 = ?, delta_source = 'uploaded'"
	                " WHERE id = 'rel-up'",
	                p, 2, NULL, NULL, NULL),
	     "a v7 delta");
	store_close(f->s);
	f->s = NULL;
	must(store_open(&cfg, &f->s), "reopen: migrates to the current version");
	int version = 0;
	must(store_schema_version(f->s, &version), "version");
	assert_int_equal(version, STORE_SCHEMA_VERSION);
	store_release_delta d;
	must(store_release_delta_get(f->s, "rel-up", "1.0.0", &d), "migrated delta");
	assert_int_equal(d.state, STORE_DELTA_READY);
	assert_string_equal(d.file_sha256, dsha);
	assert_int_equal(d.file_size, 77);
	assert_string_equal(d.base_sha256, base.image_sha256);
	assert_string_equal(d.base_release_id, "rel-base");
	assert_string_equal(d.source, "uploaded");
	assert_int_equal(d.created_ms, 200);
	/* step 13 counted the versions of the releases that were there: 1.2.0 is the newest */
	bool more = true;
	store_release_filter hw = {.hardware_id = "HW-1-011"};
	char newest[STORE_ID_MAX + 1] = "";
	must(store_release_latest(f->s, &hw, 10, newest_cb, newest, &more), "latest");
	assert_string_equal(newest, "rel-lone");
	assert_int_equal(count_table(f->s, "release_deltas"), 1);
	bool known = false;
	must(store_file_known(f->s, dsha, &known), "known");
	assert_true(known);
	store_release r;
	must(store_release_get(f->s, "rel-up", &r), "release reads without the old columns");
	store_release_clear(&r);
}

static void test_package_keys(void **state)
{
	sf_fixture *f = *state;
	store_package_key k = {.enc_size = 70152, .created_ms = 5}, got;
	memset(k.file_sha256, 'a', 64);
	memset(k.enc_sha256, 'b', 64);
	memset(k.content_key, '0', 64);
	k.content_key[63] = 'f';
	must(store_package_key_insert(f->s, &k), "insert");
	must(store_package_key_get(f->s, k.file_sha256, &got), "get");
	assert_string_equal(got.file_sha256, k.file_sha256);
	assert_string_equal(got.enc_sha256, k.enc_sha256);
	assert_string_equal(got.content_key, k.content_key);
	assert_int_equal(got.enc_size, 70152);
	assert_int_equal(got.created_ms, 5);
	must(store_package_key_find_enc(f->s, k.enc_sha256, &got), "find by the encrypted hash");
	assert_string_equal(got.file_sha256, k.file_sha256);
	assert_string_equal(got.content_key, k.content_key);
	assert_int_equal(store_package_key_get(f->s, k.enc_sha256, &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_package_key_find_enc(f->s, k.file_sha256, &got), PQ_ERR_NOTFOUND);
	/* one copy per package, one package per copy */
	store_package_key dup = k;
	memset(dup.enc_sha256, 'c', 64);
	assert_int_equal(store_package_key_insert(f->s, &dup), PQ_ERR_EXISTS);
	dup = k;
	memset(dup.file_sha256, 'd', 64);
	assert_int_equal(store_package_key_insert(f->s, &dup), PQ_ERR_EXISTS);
	/* bad fields */
	dup = k;
	memset(dup.file_sha256, 'e', 64);
	dup.content_key[5] = 'G';
	assert_int_equal(store_package_key_insert(f->s, &dup), PQ_ERR_INVAL);
	dup.content_key[5] = '0';
	dup.enc_size = 0;
	assert_int_equal(store_package_key_insert(f->s, &dup), PQ_ERR_INVAL);
	dup.enc_size = 1;
	dup.enc_sha256[10] = '\0';
	assert_int_equal(store_package_key_insert(f->s, &dup), PQ_ERR_INVAL);
	assert_int_equal(store_package_key_get(f->s, "' OR 1=1 --", &got), PQ_ERR_INVAL);
	assert_int_equal(store_package_key_get(f->s, dup.file_sha256, &got), PQ_ERR_NOTFOUND);
}

/* Console sessions: found while open; not after expiry, sign-out or the key's revocation;
 * purged once ended; bad fields refused. */
static void test_session(void **state)
{
	sf_fixture *f = *state;
	store_apikey k = mk_key("k-s", "console", STORE_ROLE_VIEWER, 7), key;
	store_session ss = {.created_ms = 1000, .expires_ms = 5000}, got;
	int64_t n = -1;
	must(store_apikey_insert(f->s, &k), "key");
	hex64(ss.id_sha256, 1);
	hex64(ss.csrf, 2);
	snprintf(ss.key_id, sizeof(ss.key_id), "%s", k.id);
	must(store_session_insert(f->s, &ss), "insert");
	must(store_session_find(f->s, ss.id_sha256, 4999, &got, &key), "find while open");
	assert_string_equal(got.csrf, ss.csrf);
	assert_int_equal(got.expires_ms, 5000);
	assert_string_equal(key.name, "console");
	assert_int_equal(key.role, STORE_ROLE_VIEWER);
	assert_int_equal(store_session_find(f->s, ss.id_sha256, 5000, &got, &key), PQ_ERR_NOTFOUND);
	assert_int_equal(got.created_ms, 0); /* cleared on a miss */
	assert_int_equal(store_session_insert(f->s, &ss), PQ_ERR_EXISTS);
	/* sign-out ends it once */
	store_session s2 = ss;
	hex64(s2.id_sha256, 3);
	must(store_session_insert(f->s, &s2), "second session");
	must(store_session_revoke(f->s, s2.id_sha256, 2000), "revoke");
	assert_int_equal(store_session_find(f->s, s2.id_sha256, 2001, &got, &key), PQ_ERR_NOTFOUND);
	assert_int_equal(store_session_revoke(f->s, s2.id_sha256, 2002), PQ_ERR_NOTFOUND);
	/* revoking the key ends every session of it at once */
	store_session s3 = ss;
	hex64(s3.id_sha256, 4);
	s3.expires_ms = 100000;
	must(store_session_insert(f->s, &s3), "third session");
	must(store_session_find(f->s, s3.id_sha256, 3000, &got, &key), "open");
	must(store_apikey_revoke(f->s, k.id, 3001), "revoke the key");
	assert_int_equal(store_session_find(f->s, s3.id_sha256, 3002, &got, &key), PQ_ERR_NOTFOUND);
	/* purge: the expired one and the signed-out one; the third has not ended by time */
	must(store_session_purge(f->s, 6000, &n), "purge");
	assert_int_equal(n, 2);
	/* bad fields */
	store_session bad = ss;
	hex64(bad.id_sha256, 9);
	bad.expires_ms = bad.created_ms;
	assert_int_equal(store_session_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = ss;
	bad.csrf[3] = 'Z';
	assert_int_equal(store_session_insert(f->s, &bad), PQ_ERR_INVAL);
	assert_int_equal(store_session_find(f->s, "' OR 1=1 --", 1, &got, &key), PQ_ERR_INVAL);
}

static void test_apikey(void **state)
{
	sf_fixture *f = *state;
	store_apikey k = mk_key("k-1", "ci", STORE_ROLE_OPERATOR, 1), got;
	store_role role;
	collect c;

	assert_string_equal(store_role_name(STORE_ROLE_VIEWER), "viewer");
	assert_string_equal(store_role_name(STORE_ROLE_OPERATOR), "operator");
	assert_string_equal(store_role_name(STORE_ROLE_ADMIN), "admin");
	must(store_role_parse("admin", &role), "parse");
	assert_int_equal(role, STORE_ROLE_ADMIN);
	must(store_role_parse("viewer", &role), "parse");
	assert_int_equal(role, STORE_ROLE_VIEWER);
	assert_int_equal(store_role_parse("Admin", &role), PQ_ERR_INVAL);
	assert_int_equal(store_role_parse("root", &role), PQ_ERR_INVAL);
	assert_int_equal(store_role_parse(NULL, &role), PQ_ERR_INVAL);

	must(store_apikey_insert(f->s, &k), "insert");
	must(store_apikey_find(f->s, k.key_sha256, 1000, &got), "find");
	assert_string_equal(got.id, "k-1");
	assert_string_equal(got.name, "ci");
	assert_int_equal(got.role, STORE_ROLE_OPERATOR);
	assert_int_equal(got.created_ms, 11);
	assert_int_equal(got.revoked_ms, 0);

	store_apikey dup = mk_key("k-1", "other", STORE_ROLE_VIEWER, 2);
	assert_int_equal(store_apikey_insert(f->s, &dup), PQ_ERR_EXISTS); /* id */
	dup = mk_key("k-2", "other", STORE_ROLE_VIEWER, 1);
	assert_int_equal(store_apikey_insert(f->s, &dup), PQ_ERR_EXISTS); /* secret */
	dup = mk_key("k-2", "ci", STORE_ROLE_VIEWER, 2);
	assert_int_equal(store_apikey_insert(f->s, &dup), PQ_ERR_EXISTS); /* valid name */
	store_apikey admin = mk_key("k-3", "admin", STORE_ROLE_ADMIN, 3);
	must(store_apikey_insert(f->s, &admin), "admin");

	/* expiry: refused from expires_ms on; last use written at most once a minute */
	store_apikey tmp = mk_key("k-9", "temp", STORE_ROLE_VIEWER, 9);
	tmp.expires_ms = 100000;
	must(store_apikey_insert(f->s, &tmp), "expiring key");
	must(store_apikey_find(f->s, tmp.key_sha256, 99999, &got), "before expiry");
	assert_int_equal(got.expires_ms, 100000);
	assert_int_equal(got.last_used_ms, 0);
	assert_int_equal(store_apikey_find(f->s, tmp.key_sha256, 100000, &got), PQ_ERR_NOTFOUND);
	must(store_apikey_touch(f->s, "k-9", 70000), "touch");
	must(store_apikey_touch(f->s, "k-9", 80000), "touch within a minute");
	must(store_apikey_get(f->s, "k-9", &got), "get");
	assert_int_equal(got.last_used_ms, 70000);
	must(store_apikey_touch(f->s, "k-9", 130000), "touch a minute later");
	must(store_apikey_get(f->s, "k-9", &got), "get");
	assert_int_equal(got.last_used_ms, 130000);
	assert_int_equal(store_apikey_get(f->s, "k-none", &got), PQ_ERR_NOTFOUND);
	must(store_apikey_revoke(f->s, "k-9", 140000), "revoke the expired key");

	char unknown[65];
	hex64(unknown, 99);
	assert_int_equal(store_apikey_find(f->s, unknown, 1000, &got), PQ_ERR_NOTFOUND);
	assert_int_equal(store_apikey_find(f->s, "xyz", 1000, &got), PQ_ERR_INVAL);

	/* revoke */
	must(store_apikey_revoke(f->s, "k-1", 500), "revoke");
	assert_int_equal(store_apikey_find(f->s, k.key_sha256, 1000, &got), PQ_ERR_NOTFOUND);
	must(store_apikey_revoke(f->s, "k-1", 600), "revoke again");
	assert_int_equal(store_apikey_revoke(f->s, "k-none", 600), PQ_ERR_NOTFOUND);
	assert_int_equal(store_apikey_revoke(f->s, "k-1", 0), PQ_ERR_INVAL);
	/* the name is free again */
	store_apikey again = mk_key("k-4", "ci", STORE_ROLE_VIEWER, 4);
	must(store_apikey_insert(f->s, &again), "same name after revocation");
	/* the secret is not */
	again = mk_key("k-5", "ci2", STORE_ROLE_VIEWER, 1);
	assert_int_equal(store_apikey_insert(f->s, &again), PQ_ERR_EXISTS);

	memset(&c, 0, sizeof(c));
	must(store_apikey_list(f->s, collect_apikey, &c), "list");
	assert_string_equal(
	    c.buf, "admin/k-3/admin/0,ci/k-1/operator/500,ci/k-4/viewer/0,temp/k-9/viewer/140000");

	/* validation */
	store_apikey bad = mk_key("k-6", "x", STORE_ROLE_VIEWER, 6);
	bad.role = (store_role)3;
	assert_int_equal(store_apikey_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_key("k-6", "", STORE_ROLE_VIEWER, 6);
	assert_int_equal(store_apikey_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_key("k-6", "x", STORE_ROLE_VIEWER, 6);
	bad.key_sha256[63] = '\0';
	assert_int_equal(store_apikey_insert(f->s, &bad), PQ_ERR_INVAL);
	bad = mk_key("k-6", "x", STORE_ROLE_VIEWER, 6);
	memset(bad.name, 'n', sizeof(bad.name));
	assert_int_equal(store_apikey_insert(f->s, &bad), PQ_ERR_INVAL);
	assert_int_equal(store_apikey_list(f->s, NULL, NULL), PQ_ERR_INVAL);
	assert_int_equal(count_table(f->s, "api_keys"), 4);
}

/* ---- audit ------------------------------------------------------------------------- */

static void test_audit(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	collect c;
	must(store_audit_append(f->s, "cli", "vehicle.register", "VIN1", "{\"model\":\"m\"}", 1),
	     "1");
	must(store_audit_append(f->s, "apikey:ci", "release.create", "rel-1", NULL, 2), "2");
	must(store_audit_append(f->s, "vehicle:VIN1", "vehicle.vci", NULL, "[1,2]", 2), "3");
	for (int i = 0; i < 7; i++)
		must(store_audit_append(f->s, "cli", "noop", "t", "null", 3 + i), "more");
	/* an actor of an API key's maximal name */
	char actor[STORE_ACTOR_MAX + 1];
	snprintf(actor, sizeof(actor), "apikey:%0*d", STORE_NAME_MAX, 0);
	must(store_audit_append(f->s, actor, "long.actor", "", NULL, 20), "long actor");

	memset(&c, 0, sizeof(c));
	store_page pg = {.limit = 3, .offset = 8};
	must(store_audit_list(f->s, &pg, collect_audit, &c, &total), "list");
	assert_int_equal(total, 11);
	assert_string_equal(c.buf, "vehicle:VIN1|vehicle.vci||[1,2],"
	                           "apikey:ci|release.create|rel-1|(null),"
	                           "cli|vehicle.register|VIN1|{\"model\":\"m\"}");

	/* newest first: ids strictly decreasing, the last appended first */
	memset(&c, 0, sizeof(c));
	must(store_audit_list(f->s, NULL, collect_audit, &c, &total), "all");
	assert_int_equal(c.n, 11);
	assert_true(strncmp(c.buf, "apikey:0000", 11) == 0);
	audit_ids ids = {.n = 0};
	must(store_audit_list(f->s, NULL, collect_audit_id, &ids, NULL), "ids");
	assert_int_equal(ids.n, 11);
	for (int i = 1; i < ids.n; i++)
		assert_true(ids.id[i] < ids.id[i - 1]);
	assert_true(ids.id[ids.n - 1] >= 1);
	assert_int_equal(ids.at[0], 20);

	/* validation */
	assert_int_equal(store_audit_append(f->s, "", "a", "t", NULL, 1), PQ_ERR_INVAL);
	assert_int_equal(store_audit_append(f->s, "a", NULL, "t", NULL, 1), PQ_ERR_INVAL);
	assert_int_equal(store_audit_append(f->s, "a", "b", "t", "{bad", 1), PQ_ERR_INVAL);
	assert_int_equal(store_audit_append(f->s, "a", "b", "t", NULL, -1), PQ_ERR_INVAL);
	char target[STORE_TARGET_MAX + 2];
	memset(target, 't', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	assert_int_equal(store_audit_append(f->s, "a", "b", target, NULL, 1), PQ_ERR_INVAL);
	char actor2[STORE_ACTOR_MAX + 2];
	memset(actor2, 'a', sizeof(actor2) - 1);
	actor2[sizeof(actor2) - 1] = '\0';
	assert_int_equal(store_audit_append(f->s, actor2, "b", "t", NULL, 1), PQ_ERR_INVAL);
	pg = (store_page){.limit = 0, .offset = -3};
	assert_int_equal(store_audit_list(f->s, &pg, collect_audit, &c, &total), PQ_ERR_INVAL);
	assert_int_equal(count_table(f->s, "audit_log"), 11);
}

/* ---- SQL injection: every string parameter is data ---------------------------------- */

static const char *const evil[] = {
    "'; DROP TABLE vehicles;--",
    "x' OR '1'='1",
    "\"); DELETE FROM ecus;--",
    "?",
    "$1",
    "%_\\",
    "' || (SELECT 1) || '",
    "\\'; --",
    "/* ? */ --",
    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac",
};

/* Copies at most cap - 1 bytes of src, never cutting a UTF-8 character. */
static void fit(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void check_tables_intact(store *s)
{
	for (size_t i = 0; i < ARRAY_LEN(tables); i++)
		assert_true(count_table(s, tables[i]) >= 0);
}

static void test_injection(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	for (size_t i = 0; i < ARRAY_LEN(evil); i++) {
		const char *x = evil[i];
		char json[256], bank[4];
		fit(bank, sizeof(bank), x);
		/* vehicles: every text field */
		store_vehicle v = mk_vehicle(x, x), got;
		v.kem_x25519_pub = (char *)x;
		v.kem_mlkem_pub = (char *)x;
		snprintf(json, sizeof(json), "{\"ecus\":[],\"note\":\"%s\"}",
		         strchr(x, '"') || strchr(x, '\\') ? "quoted" : x);
		v.last_vci = json;
		must(store_vehicle_insert(f->s, &v), x);
		must(store_vehicle_get(f->s, x, &got), x);
		assert_string_equal(got.vin, x);
		assert_string_equal(got.model, x);
		assert_string_equal(got.kem_x25519_pub, x);
		assert_string_equal(got.kem_mlkem_pub, x);
		assert_string_equal(got.last_vci, json);
		store_vehicle_clear(&got);
		must(store_vehicle_set_online(f->s, x, true, 5, 6), x);
		store_vehicle_filter flt = {.model = x, .online = 1, .vin_prefix = x};
		must(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), x);
		assert_int_equal(total, 1);

		/* ECUs: every text field, directly and through a VCI */
		store_ecu e;
		memset(&e, 0, sizeof(e));
		snprintf(e.vin, sizeof(e.vin), "%s", x);
		snprintf(e.ecu_id, sizeof(e.ecu_id), "%s", x);
		snprintf(e.hardware_id, sizeof(e.hardware_id), "%s", x);
		fit(e.sw_app, sizeof(e.sw_app), x);
		fit(e.sw_boot, sizeof(e.sw_boot), x);
		fit(e.sw_cal, sizeof(e.sw_cal), x);
		snprintf(e.serial, sizeof(e.serial), "%s", x);
		snprintf(e.bank, sizeof(e.bank), "%s", bank);
		e.updated_ms = 7;
		must(store_ecu_upsert(f->s, &e), x);
		store_ecu ge;
		must(store_ecu_get(f->s, x, x, &ge), x);
		assert_string_equal(ge.ecu_id, x);
		assert_string_equal(ge.hardware_id, x);
		assert_string_equal(ge.serial, x);
		assert_string_equal(ge.bank, bank);
		char vci[512];
		const char *safe = strchr(x, '"') || strchr(x, '\\') ? "q" : x;
		snprintf(vci, sizeof(vci),
		         "{\"ecus\":[{\"ecu_id\":\"v%zu\",\"hardware_id\":\"%s\","
		         "\"software\":{\"APP\":\"%.24s\"}}]}",
		         i, safe, safe);
		must(store_vehicle_set_vci(f->s, x, vci, 8), x);
		char vid[8];
		snprintf(vid, sizeof(vid), "v%zu", i);
		must(store_ecu_get(f->s, x, vid, &ge), x);
		must(store_ecu_history(f->s, x, x, NULL, NULL, NULL, &total), x);
		must(store_ecu_list(f->s, x, NULL, NULL, NULL, &total), x);
		assert_int_equal(total, 2);

		/* releases: every text field */
		store_release r = mk_release(x, x, x, 100 + (int64_t)i);
		snprintf(r.title, sizeof(r.title), "%s", x);
		r.notes = (char *)x;
		fit(r.software_type, sizeof(r.software_type), x);
		snprintf(r.ecu_id, sizeof(r.ecu_id), "%s", x);
		snprintf(r.created_by, sizeof(r.created_by), "%s", x);
		must(store_release_insert(f->s, &r), x);
		store_release_delta rd = mk_delta(x, "", STORE_DELTA_FAILED, 100);
		fit(rd.base_version, sizeof(rd.base_version), x);
		fit(rd.base_release_id, sizeof(rd.base_release_id), x);
		fit(rd.error, sizeof(rd.error), x);
		must(store_release_delta_insert(f->s, &rd), x);
		store_release_delta gd;
		must(store_release_delta_get(f->s, x, rd.base_version, &gd), x);
		assert_string_equal(gd.error, rd.error);
		store_release gr;
		must(store_release_get(f->s, x, &gr), x);
		assert_string_equal(gr.title, x);
		assert_string_equal(gr.notes, x);
		assert_string_equal(gr.hardware_id, x);
		assert_string_equal(gr.created_by, x);
		store_release_clear(&gr);
		must(store_release_list(f->s, x, NULL, NULL, NULL, &total), x);
		assert_int_equal(total, 1);

		/* API keys and the audit log */
		char id[STORE_ID_MAX + 1];
		snprintf(id, sizeof(id), "%s", x);
		store_apikey k = mk_key(id, x, STORE_ROLE_VIEWER, 1000 + (unsigned)i);
		must(store_apikey_insert(f->s, &k), x);
		store_apikey gk;
		must(store_apikey_find(f->s, k.key_sha256, 1000, &gk), x);
		assert_string_equal(gk.name, x);
		assert_string_equal(gk.id, id);
		must(store_apikey_revoke(f->s, id, 9), x);
		snprintf(json, sizeof(json), "{\"v\":\"%s\"}",
		         strchr(x, '"') || strchr(x, '\\') ? "q" : x);
		must(store_audit_append(f->s, x, x, x, json, 10), x);
		check_tables_intact(f->s);
	}
	/* text that is not UTF-8 is refused by both backends alike */
	const char *bad_utf8[] = {
	    "\xc3", "a\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
	for (size_t i = 0; i < ARRAY_LEN(bad_utf8); i++) {
		store_vehicle v = mk_vehicle("UTF8", bad_utf8[i]);
		assert_int_equal(store_vehicle_insert(f->s, &v), PQ_ERR_INVAL);
		assert_non_null(strstr(pq_err_detail(), "UTF-8"));
		assert_int_equal(store_audit_append(f->s, "a", bad_utf8[i], NULL, NULL, 1),
		                 PQ_ERR_INVAL);
	}
	/* hash parameters are checked, not stored */
	bool known;
	assert_int_equal(store_file_known(f->s, "' OR 1=1 --", &known), PQ_ERR_INVAL);
	store_apikey gk;
	assert_int_equal(store_apikey_find(f->s, "' OR revoked_ms = 0 OR '1'='1", 1000, &gk),
	                 PQ_ERR_INVAL);
	size_t n = ARRAY_LEN(evil);
	assert_int_equal(count_table(f->s, "vehicles"), (int64_t)n);
	assert_int_equal(count_table(f->s, "ecus"), (int64_t)(2 * n));
	assert_int_equal(count_table(f->s, "releases"), (int64_t)n);
	assert_int_equal(count_table(f->s, "api_keys"), (int64_t)n);
	assert_int_equal(count_table(f->s, "audit_log"), (int64_t)n);
	/* a prefix with LIKE wildcards matches literally */
	store_vehicle_filter flt = {.online = -1, .vin_prefix = "%"};
	must(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), "%");
	assert_int_equal(total, 1);
	flt.vin_prefix = "_";
	must(store_vehicle_list(f->s, &flt, NULL, NULL, NULL, &total), "_");
	assert_int_equal(total, 0);
}

/* ---- main -------------------------------------------------------------------------- */

int main(void)
{
	if (!sf_init("store", 10000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_schema, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_idempotent, sf_setup_url, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_backend_session, sf_setup_url, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_open, sf_setup_url, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, sf_setup_url, sf_teardown),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test_setup_teardown(test_exec_core, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_vehicle_crud, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_vehicle_bounds, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_vehicle_list, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_ordering_bytes, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_ecu_upsert_history, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_ecu_seed_list, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_vci, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_vci_invalid, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_release, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_release_list_delete, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_release_deltas, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_deltas, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_package_keys, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_bundles, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_apikey, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_session, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_audit, sf_setup_memory, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_injection, sf_setup_memory, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
