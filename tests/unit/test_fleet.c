/* test_fleet.c: the store's views for the console's fleet and vehicle pages (store/fleet.h:
 * store_fleet_list, store_vehicle_deployments), the vehicle list's ECU-version and VIN
 * prefix filters, and the audit log's filters (store_audit_query), against SQLite or
 * PostgreSQL ($PQOTA_TEST_STORE, as test_store). Also prints the fleet page's times at
 * 10,000 vehicles (a figure, no timed assertion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/campaign.h"
#include "store/fleet.h"
#include "store/store.h"
#include "store_fixture.h"
#include "testutil.h"

#define T0 1700000000000LL

/* ---- data helpers ---------------------------------------------------------------------- */

static void add_vehicle(store *s, const char *vin, const char *model, bool online)
{
	store_vehicle v;
	memset(&v, 0, sizeof(v));
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "%s", model);
	v.created_ms = T0;
	assert_ok(store_vehicle_insert(s, &v));
	if (online)
		assert_ok(store_vehicle_set_online(s, vin, true, T0 + 5, 1));
}

static void add_ecu(store *s, const char *vin, const char *ecu, const char *app)
{
	store_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "%s", ecu);
	snprintf(e.hardware_id, sizeof(e.hardware_id), "HW-%s", ecu);
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", app);
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = T0;
	assert_ok(store_ecu_upsert(s, &e));
}

static void add_release(store *s, const char *id)
{
	store_release r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.title, sizeof(r.title), "Release %s", id);
	snprintf(r.version, sizeof(r.version), "2.0.0");
	snprintf(r.hardware_id, sizeof(r.hardware_id), "HW-%s", id);
	snprintf(r.software_type, sizeof(r.software_type), "APP");
	snprintf(r.ecu_id, sizeof(r.ecu_id), "ECU_011");
	snprintf(r.file_sha256, sizeof(r.file_sha256), "%064x", (unsigned)r.id[1]);
	snprintf(r.image_sha256, sizeof(r.image_sha256), "%064x", (unsigned)r.id[1] + 100);
	r.file_size = r.image_size = 1000;
	r.created_ms = T0;
	assert_ok(store_release_insert(s, &r));
}

/* A campaign (created at T0 + age) deploying its release to vins, with one target each. */
static void add_campaign(store *s, const char *id, const char *name, int64_t age,
                         const char *const *vins, size_t n)
{
	char rel[16];
	snprintf(rel, sizeof(rel), "r%s", id);
	add_release(s, rel);
	store_campaign c;
	memset(&c, 0, sizeof(c));
	snprintf(c.id, sizeof(c.id), "%s", id);
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.created_ms = c.updated_ms = T0 + age;
	c.vehicle_timeout_ms = 60000;
	c.nreleases = 1;
	snprintf(c.release_ids[0], sizeof(c.release_ids[0]), "%s", rel);
	assert_ok(store_campaign_insert(s, &c));
	store_deployment d[4];
	store_target t[4];
	assert_true(n <= 4);
	memset(d, 0, sizeof(d));
	memset(t, 0, sizeof(t));
	for (size_t i = 0; i < n; i++) {
		snprintf(d[i].vin, sizeof(d[i].vin), "%s", vins[i]);
		d[i].state = STORE_DEP_PENDING;
		d[i].phase = 1;
		snprintf(t[i].vin, sizeof(t[i].vin), "%s", vins[i]);
		snprintf(t[i].ecu_id, sizeof(t[i].ecu_id), "ECU_011");
		snprintf(t[i].release_id, sizeof(t[i].release_id), "%s", rel);
		snprintf(t[i].hardware_id, sizeof(t[i].hardware_id), "HW-%s", rel);
		snprintf(t[i].software_type, sizeof(t[i].software_type), "APP");
		snprintf(t[i].from_version, sizeof(t[i].from_version), "1.0.0");
		snprintf(t[i].to_version, sizeof(t[i].to_version), "2.0.0");
		snprintf(t[i].package, sizeof(t[i].package), "full");
		snprintf(t[i].file_sha256, sizeof(t[i].file_sha256), "%064d", 7);
		t[i].file_size = 1000;
	}
	assert_ok(store_deployment_insert(s, id, d, n, t, n, T0 + age));
}

static void move(store *s, const char *cid, const char *vin, store_dep_state from,
                 store_dep_state to)
{
	bool changed = false;
	assert_ok(
	    store_deployment_transition(s, cid, vin, from, to, "test", T0 + 50, NULL, &changed));
	assert_true(changed);
}

/* ---- collecting ---------------------------------------------------------------------- */

typedef struct {
	store_fleet_vehicle v[16];
	int n;
} fleet_rows;

static int fleet_cb(const store_fleet_vehicle *v, void *user)
{
	fleet_rows *r = user;
	if (r->n < 16)
		r->v[r->n++] = *v;
	return PQ_OK;
}

static int64_t fleet_count(store *s, store_vehicle_filter f)
{
	int64_t total = -1;
	assert_ok(store_fleet_list(s, &f, NULL, NULL, NULL, &total));
	return total;
}

static int vdep_cb(const store_vehicle_dep *d, void *user)
{
	char *out = user;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%s:%s:%s", n ? " " : "", d->campaign_id, d->state,
	         d->campaign_name);
	return PQ_OK;
}

static int audit_cb(const store_audit *a, void *user)
{
	char *out = user;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s%lld", n ? " " : "", (long long)a->id);
	return PQ_OK;
}

/* ---- tests ----------------------------------------------------------------------------- */

/* Five vehicles: VMG versions, an ECU filter, VIN prefixes at the edges of the range. */
static void test_fleet_list(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	add_vehicle(s, "FLT001", "suv", true);
	add_vehicle(s, "FLT002", "suv", false);
	add_vehicle(s, "FLT01Z", "van", false);
	add_vehicle(s, "FLT0~", "van", true);
	add_vehicle(s, "FLU001", "van", false);
	add_ecu(s, "FLT001", "VMG", "3.1.0");
	add_ecu(s, "FLT001", "ECU_011", "1.0.0");
	add_ecu(s, "FLT002", "ECU_011", "1.2.0");
	add_ecu(s, "FLT01Z", "VMG", "3.0.0");
	add_ecu(s, "FLT01Z", "ECU_011", "1.2.0");

	fleet_rows r = {0};
	int64_t total = 0;
	store_page pg = {.limit = 3, .offset = 0};
	assert_ok(store_fleet_list(s, NULL, &pg, fleet_cb, &r, &total));
	assert_int_equal(total, 5);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.v[0].v.vin, "FLT001");
	assert_true(r.v[0].has_vmg);
	assert_string_equal(r.v[0].vmg_version, "3.1.0");
	assert_true(r.v[0].v.online);
	assert_int_equal(r.v[0].v.last_seen_ms, T0 + 5);
	assert_null(r.v[0].v.last_vci);
	assert_false(r.v[1].has_vmg);
	assert_false(r.v[1].has_campaign);
	assert_string_equal(r.v[2].v.vin, "FLT01Z");
	assert_string_equal(r.v[2].vmg_version, "3.0.0");

	/* ECU and version */
	assert_int_equal(
	    fleet_count(
	        s, (store_vehicle_filter){.online = -1, .ecu_id = "ECU_011", .version = "1.2.0"}),
	    2);
	assert_int_equal(fleet_count(s, (store_vehicle_filter){.online = -1, .ecu_id = "ECU_011"}),
	                 3);
	assert_int_equal(
	    fleet_count(s,
	                (store_vehicle_filter){.online = 0, .ecu_id = "VMG", .version = "3.0.0"}),
	    1);
	assert_int_equal(
	    fleet_count(s,
	                (store_vehicle_filter){.online = -1, .ecu_id = "VMG", .version = "9.9.9"}),
	    0);
	int64_t total2 = 0;
	store_vehicle_filter bad = {.online = -1, .version = "1.2.0"};
	assert_rc(store_fleet_list(s, &bad, NULL, NULL, NULL, &total2), PQ_ERR_INVAL);
	assert_rc(store_vehicle_list(s, &bad, NULL, NULL, NULL, &total2), PQ_ERR_INVAL);
	/* the plain vehicle list takes the same filter */
	store_vehicle_filter vf = {.online = -1, .ecu_id = "ECU_011", .version = "1.2.0"};
	assert_ok(store_vehicle_list(s, &vf, NULL, NULL, NULL, &total2));
	assert_int_equal(total2, 2);

	/* prefixes: the range bound and the exact comparison agree at the edges */
	assert_int_equal(fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "FLT"}),
	                 4);
	assert_int_equal(fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "FLT0"}),
	                 4);
	assert_int_equal(
	    fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "FLT01"}), 1);
	assert_int_equal(
	    fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "FLT0~"}), 1);
	assert_int_equal(fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "F"}),
	                 5);
	assert_int_equal(fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "flt"}),
	                 0);
	assert_int_equal(
	    fleet_count(s, (store_vehicle_filter){.online = -1, .vin_prefix = "FLT\xc3\xa9"}), 0);
	assert_int_equal(
	    fleet_count(s, (store_vehicle_filter){.online = 1, .model = "van", .vin_prefix = "FL"}),
	    1);
}

/* The outstanding campaign: the newest non-terminal deployment, with its name and state. */
static void test_fleet_campaign(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	const char *ab[] = {"CMPA", "CMPB"}, *a[] = {"CMPA"}, *c[] = {"CMPC"};
	add_vehicle(s, "CMPA", "suv", false);
	add_vehicle(s, "CMPB", "suv", false);
	add_vehicle(s, "CMPC", "suv", false);
	add_campaign(s, "c-old", "old rollout", 1, ab, 2);
	add_campaign(s, "c-new", "new rollout", 2, a, 1);
	add_campaign(s, "c-done", "finished", 3, c, 1);
	move(s, "c-old", "CMPB", STORE_DEP_PENDING, STORE_DEP_NOTIFIED);
	move(s, "c-done", "CMPC", STORE_DEP_PENDING, STORE_DEP_CANCELLED);

	fleet_rows r = {0};
	assert_ok(store_fleet_list(s, NULL, NULL, fleet_cb, &r, NULL));
	assert_int_equal(r.n, 3);
	assert_true(r.v[0].has_campaign); /* CMPA: c-new is newer than c-old */
	assert_string_equal(r.v[0].campaign_id, "c-new");
	assert_string_equal(r.v[0].campaign_name, "new rollout");
	assert_string_equal(r.v[0].dep_state, "pending");
	assert_string_equal(r.v[1].campaign_id, "c-old"); /* CMPB */
	assert_string_equal(r.v[1].dep_state, "notified");
	assert_false(r.v[2].has_campaign); /* CMPC: its only deployment ended */

	/* CMPA's newest ends: the older one shows */
	move(s, "c-new", "CMPA", STORE_DEP_PENDING, STORE_DEP_FAILED);
	r.n = 0;
	assert_ok(store_fleet_list(s, NULL, NULL, fleet_cb, &r, NULL));
	assert_string_equal(r.v[0].campaign_id, "c-old");

	/* a vehicle's deployments: every campaign, newest first, paged */
	char out[256] = "";
	int64_t total = 0;
	assert_ok(store_vehicle_deployments(s, "CMPA", NULL, vdep_cb, out, &total));
	assert_int_equal(total, 2);
	assert_string_equal(out, "c-new:failed:new rollout c-old:pending:old rollout");
	out[0] = '\0';
	store_page pg = {.limit = 1, .offset = 1};
	assert_ok(store_vehicle_deployments(s, "CMPA", &pg, vdep_cb, out, &total));
	assert_string_equal(out, "c-old:pending:old rollout");
	out[0] = '\0';
	assert_ok(store_vehicle_deployments(s, "CMPC", NULL, vdep_cb, out, &total));
	assert_string_equal(out, "c-done:cancelled:finished");
	assert_rc(store_vehicle_deployments(s, "NOPE", NULL, vdep_cb, out, &total),
	          PQ_ERR_NOTFOUND);
	char longvin[40];
	memset(longvin, 'V', sizeof(longvin) - 1);
	longvin[39] = '\0';
	assert_rc(store_vehicle_deployments(s, longvin, NULL, vdep_cb, out, &total), PQ_ERR_INVAL);
}

static void test_audit_filters(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	/* ids 1..6 */
	assert_ok(store_audit_append(s, "apikey:ops", "vehicle.register", "V1", NULL, 1000));
	assert_ok(store_audit_append(s, "apikey:ops", "vehicle.register", "V2", NULL, 2000));
	assert_ok(store_audit_append(s, "apikey:root", "vehicle.delete", "V1", NULL, 3000));
	assert_ok(store_audit_append(s, "vehicle:V2", "vehicle.vci", "V2", "{}", 4000));
	assert_ok(store_audit_append(s, "apikey:ops", "vehicle.vci_request", "V2", NULL, 5000));
	assert_ok(store_audit_append(s, "cli", "apikey.create", "", NULL, 6000));
	const struct {
		store_audit_filter f;
		int64_t total;
		const char *ids;
	} cases[] = {
	    {{0}, 6, "6 5 4 3 2 1"},
	    {{.actor = "apikey:ops"}, 3, "5 2 1"},
	    {{.action = "vehicle.register"}, 2, "2 1"},
	    {{.target = "V2"}, 3, "5 4 2"},
	    {{.target = ""}, 1, "6"},
	    {{.since_ms = 3000}, 4, "6 5 4 3"},
	    {{.until_ms = 3000}, 2, "2 1"},
	    {{.since_ms = 2000, .until_ms = 5000}, 3, "4 3 2"},
	    {{.actor = "apikey:ops", .target = "V2", .since_ms = 2500}, 1, "5"},
	    {{.actor = "nobody"}, 0, ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256] = "";
		int64_t total = -1;
		assert_ok(store_audit_query(s, &cases[i].f, NULL, audit_cb, out, &total));
		assert_int_equal(total, cases[i].total);
		assert_string_equal(out, cases[i].ids);
	}
	char out[256] = "";
	int64_t total = 0;
	store_page pg = {.limit = 1, .offset = 1};
	store_audit_filter af = {.actor = "apikey:ops"};
	assert_ok(store_audit_query(s, &af, &pg, audit_cb, out, &total));
	assert_string_equal(out, "2");
	assert_int_equal(total, 3);
	char longs[200];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[199] = '\0';
	af = (store_audit_filter){.target = longs};
	assert_rc(store_audit_query(s, &af, NULL, audit_cb, out, &total), PQ_ERR_INVAL);
	af = (store_audit_filter){.action = "\xff"};
	assert_rc(store_audit_query(s, &af, NULL, audit_cb, out, &total), PQ_ERR_INVAL);
	af = (store_audit_filter){.since_ms = -1};
	assert_rc(store_audit_query(s, &af, NULL, audit_cb, out, &total), PQ_ERR_INVAL);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 10,000 vehicles (a VMG each, every 100th in a campaign): the first, a middle and the last
 * page, filtered and not. Prints the times; asserts only the contents. */
static void test_fleet_10000(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	double t0 = now_s();
	assert_ok(store_begin(s));
	for (int i = 0; i < 10000; i++) {
		char vin[32];
		snprintf(vin, sizeof(vin), "WSCALE%05d", i);
		add_vehicle(s, vin, i % 2 ? "Model-X" : "Model-Y", false);
		add_ecu(s, vin, "VMG", i % 3 ? "4.0.0" : "4.1.0");
	}
	assert_ok(store_commit(s));
	const char *in[] = {"WSCALE00100", "WSCALE09900"};
	add_campaign(s, "c-scale", "scale", 1, in, 2);
	double t1 = now_s();
	fleet_rows r = {0};
	int64_t total = 0;
	store_page last = {.limit = 10, .offset = 9990}, mid = {.limit = 10, .offset = 5000};
	assert_ok(store_fleet_list(s, NULL, &last, fleet_cb, &r, &total));
	double t2 = now_s();
	assert_int_equal(total, 10000);
	assert_int_equal(r.n, 10);
	assert_string_equal(r.v[9].v.vin, "WSCALE09999");
	r.n = 0;
	store_vehicle_filter flt = {.online = -1, .ecu_id = "VMG", .version = "4.1.0"};
	assert_ok(store_fleet_list(s, &flt, &mid, fleet_cb, &r, &total));
	double t3 = now_s();
	assert_int_equal(total, 3334);
	assert_int_equal(r.n, 0); /* past the end */
	store_page first = {.limit = 50};
	r.n = 0;
	flt = (store_vehicle_filter){.online = -1, .vin_prefix = "WSCALE099"};
	assert_ok(store_fleet_list(s, &flt, &first, fleet_cb, &r, &total));
	double t4 = now_s();
	assert_int_equal(total, 100);
	assert_string_equal(r.v[0].campaign_id, "c-scale");
	assert_string_equal(r.v[0].vmg_version, "4.1.0"); /* 9900 % 3 == 0 */
	printf("     fleet at 10000 vehicles (%s): insert %.2f s; last page %.1f ms; "
	       "ECU filter %.1f ms; VIN prefix %.1f ms\n",
	       sf_backend_name(), t1 - t0, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3);
}

int main(void)
{
	if (!sf_init("fleet", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fleet_list, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_fleet_campaign, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_audit_filters, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_fleet_10000, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
