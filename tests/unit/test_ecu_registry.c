/* test_ecu_registry.c: the store queries of the compatibility layer (docs/api.md 17) against
 * SQLite or PostgreSQL ($PQOTA_TEST_STORE, as test_store): the fleet-wide ECU registry
 * (store/ecu_registry.h: the (VIN, ECU id) order, keyset pages that neither repeat nor skip,
 * each filter and their combination, the versions count, the refusals of bad input), the
 * newest release of each key (store_release_latest: semantic order, not text or creation
 * order, one row per key, filters, the limit), and the presence of vehicles that poll
 * (store_vehicle_set_polled: it expires, an MQTT session's does not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "store/ecu_registry.h"
#include "store/store.h"
#include "store_fixture.h"
#include "testutil.h"

#define T0 1700000000000LL

static void add_vehicle(store *s, const char *vin)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "m");
	v.created_ms = T0;
	assert_ok(store_vehicle_insert(s, &v));
}

static void add_ecu(store *s, const char *vin, const char *ecu, const char *hw, const char *app)
{
	store_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "%s", ecu);
	snprintf(e.hardware_id, sizeof(e.hardware_id), "%s", hw);
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", app);
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = T0;
	assert_ok(store_ecu_upsert(s, &e));
}

/* VINs V1..V3 (inserted out of order), ECUs E1..E4 each; V2's E2 at 2.0.0, hardware ids
 * H-<ecu> except V3's E4 (H-X). */
static void fleet(store *s)
{
	static const char *const vins[] = {"V3", "V1", "V2"};
	static const char *const ecus[] = {"E4", "E2", "E1", "E3"};
	for (size_t i = 0; i < 3; i++) {
		add_vehicle(s, vins[i]);
		for (size_t k = 0; k < 4; k++) {
			char hw[16];
			bool other = strcmp(vins[i], "V3") == 0 && strcmp(ecus[k], "E4") == 0;
			snprintf(hw, sizeof(hw), "H-%s", other ? "X" : ecus[k]);
			bool new_app = strcmp(vins[i], "V2") == 0 && strcmp(ecus[k], "E2") == 0;
			add_ecu(s, vins[i], ecus[k], hw, new_app ? "2.0.0" : "1.0.0");
		}
	}
}

typedef struct {
	char buf[512];
	char last_vin[STORE_VIN_MAX + 1], last_ecu[STORE_NAME_MAX + 1];
} rows;

static int row_cb(const store_ecu *e, void *user)
{
	rows *r = user;
	size_t n = strlen(r->buf);
	snprintf(r->buf + n, sizeof(r->buf) - n, "%s%s/%s", n ? "," : "", e->vin, e->ecu_id);
	snprintf(r->last_vin, sizeof(r->last_vin), "%s", e->vin);
	snprintf(r->last_ecu, sizeof(r->last_ecu), "%s", e->ecu_id);
	return PQ_OK;
}

/* Every page of limit rows under f, joined by '|' between pages, into out. */
static void walk(store *s, store_ecu_filter f, int limit, char *out, size_t cap)
{
	char vin[STORE_VIN_MAX + 1] = "", ecu[STORE_NAME_MAX + 1] = "";
	bool more = true;
	out[0] = '\0';
	for (int page = 0; more && page < 100; page++) {
		rows r = {.buf = ""};
		f.after_vin = vin[0] ? vin : NULL;
		f.after_ecu = ecu[0] ? ecu : NULL;
		assert_ok(store_ecu_registry(s, &f, limit, row_cb, &r, &more));
		size_t n = strlen(out);
		snprintf(out + n, cap - n, "%s%s", page ? "|" : "", r.buf);
		snprintf(vin, sizeof(vin), "%s", r.last_vin);
		snprintf(ecu, sizeof(ecu), "%s", r.last_ecu);
	}
}

static void test_order_and_pages(void **state)
{
	sf_fixture *f = *state;
	char out[1024];
	fleet(f->s);
	walk(f->s, (store_ecu_filter){0}, 5, out, sizeof(out));
	assert_string_equal(out, "V1/E1,V1/E2,V1/E3,V1/E4,V2/E1|V2/E2,V2/E3,V2/E4,V3/E1,V3/E2|"
	                         "V3/E3,V3/E4");
	walk(f->s, (store_ecu_filter){0}, 12, out, sizeof(out));
	assert_string_equal(out, "V1/E1,V1/E2,V1/E3,V1/E4,V2/E1,V2/E2,V2/E3,V2/E4,V3/E1,V3/E2,"
	                         "V3/E3,V3/E4");
	/* a key that is no row: the page starts after where it would be */
	rows r = {.buf = ""};
	bool more = true;
	store_ecu_filter k = {.after_vin = "V1", .after_ecu = "E25"};
	assert_ok(store_ecu_registry(f->s, &k, 2, row_cb, &r, &more));
	assert_string_equal(r.buf, "V1/E3,V1/E4");
	assert_true(more);
}

static void test_filters(void **state)
{
	sf_fixture *f = *state;
	char out[1024];
	fleet(f->s);
	walk(f->s, (store_ecu_filter){.ecu_id = "E2"}, 2, out, sizeof(out));
	assert_string_equal(out, "V1/E2,V2/E2|V3/E2");
	walk(f->s, (store_ecu_filter){.hardware_id = "H-E4"}, 1, out, sizeof(out));
	assert_string_equal(out, "V1/E4|V2/E4");
	walk(f->s, (store_ecu_filter){.version = "2.0.0"}, 10, out, sizeof(out));
	assert_string_equal(out, "V2/E2");
	walk(f->s, (store_ecu_filter){.ecu_id = "E2", .version = "1.0.0"}, 10, out, sizeof(out));
	assert_string_equal(out, "V1/E2,V3/E2");
	walk(f->s, (store_ecu_filter){.ecu_id = "E4", .hardware_id = "H-X", .version = "1.0.0"}, 10,
	     out, sizeof(out));
	assert_string_equal(out, "V3/E4");
	walk(f->s, (store_ecu_filter){.ecu_id = "NONE"}, 10, out, sizeof(out));
	assert_string_equal(out, "");
}

typedef struct {
	char buf[256];
} vers;

static int ver_cb(const store_ecu_version_count *v, void *user)
{
	vers *x = user;
	size_t n = strlen(x->buf);
	snprintf(x->buf + n, sizeof(x->buf) - n, "%s%s=%lld", n ? "," : "", v->version,
	         (long long)v->vehicles);
	return PQ_OK;
}

static void test_versions(void **state)
{
	sf_fixture *f = *state;
	int64_t total = -1;
	vers x = {.buf = ""};
	fleet(f->s);
	assert_ok(store_ecu_versions(f->s, "E2", 10, ver_cb, &x, &total));
	assert_string_equal(x.buf, "1.0.0=2,2.0.0=1");
	assert_int_equal(total, 3);
	x.buf[0] = '\0';
	assert_ok(store_ecu_versions(f->s, "NONE", 10, ver_cb, &x, &total));
	assert_string_equal(x.buf, "");
	assert_int_equal(total, 0);
}

static void test_refusals(void **state)
{
	sf_fixture *f = *state;
	rows r = {.buf = ""};
	bool more = true;
	int64_t total = 0;
	char longid[STORE_NAME_MAX + 2];
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	store_ecu_filter bad[] = {
	    {.ecu_id = ""},      {.version = ""},     {.hardware_id = longid},
	    {.after_vin = "V1"}, {.after_ecu = "E1"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(store_ecu_registry(f->s, &bad[i], 10, row_cb, &r, &more),
		                 PQ_ERR_INVAL);
	store_ecu_filter none = {0};
	assert_int_equal(store_ecu_registry(f->s, &none, 0, row_cb, &r, &more), PQ_ERR_INVAL);
	assert_int_equal(store_ecu_registry(f->s, &none, STORE_PAGE_MAX + 1, row_cb, &r, &more),
	                 PQ_ERR_INVAL);
	assert_int_equal(store_ecu_versions(f->s, "", 10, ver_cb, &r, &total), PQ_ERR_INVAL);
	assert_string_equal(r.buf, "");
}

/* ---- the newest release of each key ----------------------------------------------------- */

static void add_release(store *s, const char *id, const char *hw, const char *ecu,
                        const char *version, int64_t created)
{
	store_release r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.title, sizeof(r.title), "%s", id);
	snprintf(r.version, sizeof(r.version), "%s", version);
	snprintf(r.hardware_id, sizeof(r.hardware_id), "%s", hw);
	snprintf(r.software_type, sizeof(r.software_type), "APP");
	snprintf(r.ecu_id, sizeof(r.ecu_id), "%s", ecu);
	snprintf(r.file_sha256, sizeof(r.file_sha256), "%064llx", (unsigned long long)created);
	r.file_size = 100;
	snprintf(r.image_sha256, sizeof(r.image_sha256), "%064llx", (unsigned long long)created);
	r.created_ms = T0 + created;
	assert_ok(store_release_insert(s, &r));
}

static int latest_cb(const store_release *r, void *user)
{
	char *buf = user;
	size_t n = strlen(buf);
	snprintf(buf + n, 512 - n, "%s%s", n ? "," : "", r->id);
	return PQ_OK;
}

/* The ids store_release_latest answers under (hw, ecu) and limit, and whether there are more. */
static void latest(store *s, const char *hw, const char *ecu, int limit, char *buf, bool *more)
{
	store_release_filter f = {.hardware_id = hw, .ecu_id = ecu};
	buf[0] = '\0';
	assert_ok(store_release_latest(s, &f, limit, latest_cb, buf, more));
}

/* H1/E1: 1.9.0, 1.10.0 (the newest by version, created before 1.9.0), 1.10.0-rc.1 (created
 * last), a version that is no semantic version (created last of all); H1/E2: 2.0.0; H2/E1:
 * 0.1.0 only. */
static void test_release_latest(void **state)
{
	sf_fixture *f = *state;
	char buf[512];
	bool more = true;
	add_release(f->s, "r-1.10.0", "H1", "E1", "1.10.0", 1);
	add_release(f->s, "r-1.9.0", "H1", "E1", "1.9.0", 2);
	add_release(f->s, "r-rc", "H1", "E1", "1.10.0-rc.1", 3);
	add_release(f->s, "r-text", "H1", "E1", "nightly", 4);
	add_release(f->s, "r-e2", "H1", "E2", "2.0.0", 5);
	add_release(f->s, "r-h2", "H2", "E1", "0.1.0", 6);
	latest(f->s, NULL, NULL, 100, buf, &more);
	assert_string_equal(buf, "r-1.10.0,r-e2,r-h2"); /* by key; 1.10.0 > 1.9.0 > its rc */
	assert_false(more);
	latest(f->s, "H1", NULL, 100, buf, &more);
	assert_string_equal(buf, "r-1.10.0,r-e2");
	latest(f->s, NULL, "E1", 100, buf, &more);
	assert_string_equal(buf, "r-1.10.0,r-h2");
	latest(f->s, "H1", "E2", 100, buf, &more);
	assert_string_equal(buf, "r-e2");
	latest(f->s, "H3", NULL, 100, buf, &more);
	assert_string_equal(buf, "");
	latest(f->s, NULL, NULL, 2, buf, &more); /* the limit: the first two keys, more */
	assert_string_equal(buf, "r-1.10.0,r-e2");
	assert_true(more);
	/* of two releases of one version, the newest created: 3.0.0-a and 3.0.0-b share a count */
	add_release(f->s, "r-3a", "H2", "E1", "3.0.0-a", 7);
	add_release(f->s, "r-3b", "H2", "E1", "3.0.0-b", 8);
	latest(f->s, "H2", NULL, 100, buf, &more);
	assert_string_equal(buf, "r-3b");
	store_release_filter q = {.q = "x"};
	assert_int_equal(store_release_latest(f->s, &q, 10, latest_cb, buf, &more), PQ_ERR_INVAL);
	assert_int_equal(store_release_latest(f->s, NULL, 0, latest_cb, buf, &more), PQ_ERR_INVAL);
	assert_int_equal(
	    store_release_latest(f->s, NULL, STORE_LATEST_MAX + 1, latest_cb, buf, &more),
	    PQ_ERR_INVAL);
	pq_err_clear();
}

/* ---- the presence of polling vehicles --------------------------------------------------- */

static bool online(store *s, const char *vin)
{
	store_vehicle v = {0};
	assert_ok(store_vehicle_get(s, vin, &v));
	bool on = v.online;
	store_vehicle_clear(&v);
	return on;
}

static void test_polled_presence(void **state)
{
	sf_fixture *f = *state;
	int64_t n = -1, count = -1;
	add_vehicle(f->s, "POLL");
	add_vehicle(f->s, "MQTT");
	assert_ok(store_vehicle_set_polled(f->s, "POLL", T0, T0 + 180000));
	assert_ok(store_vehicle_set_online(f->s, "MQTT", true, T0, 1));
	assert_ok(store_vehicle_set_polled(f->s, "MQTT", T0 + 1, T0 + 180001)); /* polls too */
	assert_true(online(f->s, "POLL") && online(f->s, "MQTT"));
	assert_ok(store_vehicle_count_online(f->s, &count));
	assert_int_equal(count, 2);
	assert_ok(store_vehicle_expire_polled(f->s, T0 + 180000, &n)); /* not before its end */
	assert_int_equal(n, 0);
	assert_ok(store_vehicle_expire_polled(f->s, T0 + 180001, &n));
	assert_int_equal(n, 1); /* POLL; MQTT's presence is its session's */
	assert_false(online(f->s, "POLL"));
	assert_true(online(f->s, "MQTT"));
	assert_ok(store_vehicle_count_online(f->s, &count));
	assert_int_equal(count, 1);
	/* a check after the last will: the polled presence, which expires */
	assert_ok(store_vehicle_set_online(f->s, "MQTT", false, T0 + 2, 1));
	assert_ok(store_vehicle_set_polled(f->s, "MQTT", T0 + 3, T0 + 10));
	assert_ok(store_vehicle_expire_polled(f->s, T0 + 11, &n));
	assert_int_equal(n, 1);
	assert_false(online(f->s, "MQTT"));
	assert_int_equal(store_vehicle_set_polled(f->s, "NOSUCH", T0, T0 + 1), PQ_ERR_NOTFOUND);
	assert_int_equal(store_vehicle_set_polled(f->s, "POLL", T0, T0), PQ_ERR_INVAL);
	pq_err_clear();
}

int main(void)
{
	if (!sf_init("ecu_registry", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_order_and_pages, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_filters, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_versions, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_refusals, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_release_latest, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_polled_presence, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
