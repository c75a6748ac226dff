/* store_fixture.c: the SQLite-or-PostgreSQL database fixture of the unit tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"
#include "testutil.h"

static store_backend g_backend;
static const char *g_pg; /* PostgreSQL: the base conninfo */
static char g_tag[32];   /* names the directory, the schemas and the group */
static char g_group[64]; /* "TAG/BACKEND" */
static int g_busy_ms;    /* store_config.busy_timeout_ms */
static pq_log_level g_log_level;
static char *g_dir;    /* SQLite: the temporary directory of the file databases */
static store *g_admin; /* PostgreSQL: creates and drops the test schemas */
static int g_seq;      /* numbers the databases */

bool sf_init(const char *tag, int busy_timeout_ms, pq_log_level log_level)
{
	const char *which = getenv("PQOTA_TEST_STORE");
	if (!which || !*which || strcmp(which, "sqlite") == 0) {
		g_backend = STORE_SQLITE;
	} else if (strcmp(which, "postgres") == 0) {
		g_backend = STORE_POSTGRES;
		g_pg = getenv("PQOTA_TEST_PG");
		if (!g_pg || !*g_pg) {
			fprintf(stderr,
			        "PQOTA_TEST_STORE=postgres needs PQOTA_TEST_PG (a conninfo);"
			        " tests/store/pg-fixture.sh provides one\n");
			return false;
		}
	} else {
		fprintf(stderr, "PQOTA_TEST_STORE: '%s' is not sqlite or postgres\n", which);
		return false;
	}
	snprintf(g_tag, sizeof(g_tag), "%s", tag);
	snprintf(g_group, sizeof(g_group), "%s/%s", tag, sf_backend_name());
	g_busy_ms = busy_timeout_ms;
	g_log_level = log_level;
	return true;
}

store_backend sf_backend(void)
{
	return g_backend;
}

const char *sf_backend_name(void)
{
	return g_backend == STORE_SQLITE ? "sqlite" : "postgres";
}

const char *sf_group_name(void)
{
	return g_group;
}

store_config sf_config(const char *url)
{
	return (store_config){.backend = g_backend, .url = url, .busy_timeout_ms = g_busy_ms};
}

store *sf_admin(void)
{
	return g_admin;
}

int sf_group_setup(void **state)
{
	(void)state;
	pq_log_set_level(g_log_level);
	if (g_backend == STORE_SQLITE) {
		g_dir = tu_tmpdir(g_tag);
		return 0;
	}
	store_config cfg = sf_config(g_pg);
	if (store_open(&cfg, &g_admin) != PQ_OK) {
		fprintf(stderr, "cannot open %s: %s\n", g_pg, pq_err_detail());
		return -1;
	}
	return 0;
}

int sf_group_teardown(void **state)
{
	(void)state;
	store_close(g_admin);
	g_admin = NULL;
	if (g_dir) {
		tu_rmtree(g_dir);
		free(g_dir);
		g_dir = NULL;
	}
	return 0;
}

/* A fixture naming a new, empty database: SQLite a file (or ":memory:"), PostgreSQL a new
 * schema as the connection's search_path. */
static sf_fixture *fresh(bool memory)
{
	sf_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	g_seq++;
	if (g_backend == STORE_SQLITE) {
		if (memory)
			snprintf(f->url, sizeof(f->url), ":memory:");
		else
			snprintf(f->url, sizeof(f->url), "%s/%s%d.sqlite", g_dir, g_tag, g_seq);
		return f;
	}
	char sql[160];
	snprintf(f->schema, sizeof(f->schema), "pqota_%s%d_%d", g_tag, (int)getpid(), g_seq);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->schema);
	assert_ok(store_exec(g_admin, sql, NULL, 0, NULL, NULL, NULL));
	snprintf(f->url, sizeof(f->url), "%s options='-c search_path=%s'", g_pg, f->schema);
	return f;
}

static int setup_open(void **state, bool memory)
{
	sf_fixture *f = fresh(memory);
	store_config cfg = sf_config(f->url);
	assert_ok(store_open(&cfg, &f->s));
	*state = f;
	return 0;
}

int sf_setup(void **state)
{
	return setup_open(state, false);
}

int sf_setup_memory(void **state)
{
	return setup_open(state, true);
}

int sf_setup_url(void **state)
{
	*state = fresh(false);
	return 0;
}

int sf_teardown(void **state)
{
	sf_fixture *f = *state;
	store_close(f->s);
	if (f->schema[0]) {
		char sql[160];
		snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->schema);
		assert_ok(store_exec(g_admin, sql, NULL, 0, NULL, NULL, NULL));
	}
	free(f);
	return 0;
}

void sf_add_vehicle(store *s, const char *vin, int64_t created_ms)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	v.created_ms = created_ms;
	assert_ok(store_vehicle_insert(s, &v));
}
