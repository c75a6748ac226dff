/* store_fixture.h: the database fixture of the unit tests that run against SQLite or
 * PostgreSQL (test_store, test_campaign, test_diag), as cmocka setup/teardown functions.
 *
 * Environment:
 *   PQOTA_TEST_STORE  sqlite (default) or postgres
 *   PQOTA_TEST_PG     a libpq conninfo (postgres), as tests/store/pg-fixture.sh exports
 * Every test gets an empty database: SQLite a fresh file in a temporary directory (or
 * ":memory:"), PostgreSQL a fresh schema (search_path) in the given database, dropped
 * afterwards. Include after <cmocka.h>. */
#ifndef PQOTA_TEST_STORE_FIXTURE_H
#define PQOTA_TEST_STORE_FIXTURE_H

#include <stdbool.h>

#include "core/log.h"
#include "store/store.h"

/* A test's state (*state of the setup functions below). */
typedef struct {
	store *s;        /* the test's store; NULL after sf_setup_url until the test opens it */
	char url[1024];  /* the database: another connection may open it (unless ":memory:") */
	char schema[64]; /* PostgreSQL: the test's schema, dropped by sf_teardown */
} sf_fixture;

/* Reads the environment. TAG names the temporary directory, the schemas and the cmocka
 * group (sf_group_name); busy_timeout_ms goes into every sf_config (PostgreSQL: the
 * statement_timeout); sf_group_setup sets the log level. Prints why and returns false when
 * the environment is wrong (main then returns 1). */
bool sf_init(const char *tag, int busy_timeout_ms, pq_log_level log_level);

store_backend sf_backend(void);
/* "sqlite" or "postgres" */
const char *sf_backend_name(void);
/* "TAG/sqlite" or "TAG/postgres" */
const char *sf_group_name(void);
/* The configuration of a connection to url (the backend and busy timeout of sf_init). */
store_config sf_config(const char *url);
/* PostgreSQL: the connection that creates and drops the schemas (NULL for SQLite). */
store *sf_admin(void);

/* cmocka group setup/teardown: the temporary directory (SQLite) or the administrative
 * connection (PostgreSQL). */
int sf_group_setup(void **state);
int sf_group_teardown(void **state);

/* A new empty database, opened: SQLite a file, which other connections may open too. */
int sf_setup(void **state);
/* The same with SQLite's ":memory:" (private to that one connection, nothing on disk);
 * PostgreSQL as sf_setup. */
int sf_setup_memory(void **state);
/* Only the URL of a new empty database (SQLite a file): the test opens it into f->s. */
int sf_setup_url(void **state);
/* Closes f->s (if open), drops the PostgreSQL schema, frees the fixture. */
int sf_teardown(void **state);

/* Registers vehicle vin (no model, no certificate, offline) created at created_ms; fails the
 * test when it cannot. */
void sf_add_vehicle(store *s, const char *vin, int64_t created_ms);

#endif
