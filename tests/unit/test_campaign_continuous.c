/* test_campaign_continuous.c: continuous campaigns (server/campaign.h, cmp_admit): which
 * vehicle a running continuous campaign admits when it reports, the phases as counts of
 * admitted vehicles, the error threshold stopping admission, ends_at, and the spec's
 * validation; against SQLite or PostgreSQL ($PQOTA_TEST_STORE, as test_campaign). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "server/campaign.h"
#include "store/campaign.h"
#include "store/store.h"
#include "store_fixture.h"
#include "testutil.h"

#define T0 1700000000000LL

/* ---- the fleet ------------------------------------------------------------------------------ */

/* A vehicle of model with ECU_011 (HW-1-001) running APP version app. */
static void vehicle(store *s, const char *vin, const char *model, bool online, const char *app)
{
	store_vehicle v = {0};
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "%s", model);
	v.created_ms = T0;
	assert_ok(store_vehicle_insert(s, &v));
	if (online)
		assert_ok(store_vehicle_set_online(s, vin, true, T0, 1));
	store_ecu e = {0};
	snprintf(e.vin, sizeof(e.vin), "%s", vin);
	snprintf(e.ecu_id, sizeof(e.ecu_id), "ECU_011");
	snprintf(e.hardware_id, sizeof(e.hardware_id), "HW-1-001");
	e.zone = 1;
	snprintf(e.sw_app, sizeof(e.sw_app), "%s", app);
	snprintf(e.sw_boot, sizeof(e.sw_boot), "1.0.0");
	snprintf(e.sw_cal, sizeof(e.sw_cal), "1.0.0");
	snprintf(e.bank, sizeof(e.bank), "A");
	e.updated_ms = T0;
	assert_ok(store_ecu_upsert(s, &e));
}

/* Release r1: HW-1-001 APP 2.0.0. */
static void release_r1(store *s)
{
	store_release r = {0};
	snprintf(r.id, sizeof(r.id), "r1");
	snprintf(r.title, sizeof(r.title), "Release 2.0.0");
	snprintf(r.version, sizeof(r.version), "2.0.0");
	snprintf(r.hardware_id, sizeof(r.hardware_id), "HW-1-001");
	snprintf(r.software_type, sizeof(r.software_type), "APP");
	snprintf(r.ecu_id, sizeof(r.ecu_id), "ECU_011");
	snprintf(r.file_sha256, sizeof(r.file_sha256), "%064x", 1);
	r.file_size = 1000;
	snprintf(r.image_sha256, sizeof(r.image_sha256), "%064x", 2);
	r.image_size = 2000;
	r.created_ms = T0;
	assert_ok(store_release_insert(s, &r));
}

/* ---- the engine's environment: ota_campaign offers counted per vehicle ------------------------
 */

typedef struct {
	char vin[8][18];
	int offers[8];
} offers;

/* The slot of vin in o (taken on first use). */
static int *slot(offers *o, const char *vin, size_t len)
{
	for (int i = 0; i < 8; i++) {
		if (!o->vin[i][0])
			snprintf(o->vin[i], sizeof(o->vin[i]), "%.*s", (int)len, vin);
		if (strlen(o->vin[i]) == len && !strncmp(o->vin[i], vin, len))
			return &o->offers[i];
	}
	fail_msg("too many vehicles");
	return NULL;
}

static int count_offer(void *user, const char *topic, const char *json, size_t len, int qos,
                       bool retain)
{
	(void)json, (void)len, (void)qos, (void)retain;
	const char *end = strstr(topic, "/ota/campaign");
	if (end && !strncmp(topic, "oem/", 4))
		(*slot(user, topic + 4, (size_t)(end - topic - 4)))++;
	return PQ_OK;
}

static int no_metadata(void *user, store *db, const char *campaign_id, const char *vin,
                       json_t **out)
{
	(void)user, (void)db, (void)campaign_id, (void)vin;
	*out = json_object();
	return PQ_OK;
}

static cmp_env env_of(offers *o)
{
	return (cmp_env){
	    .instance_id = "test-1", .publish = count_offer, .metadata = no_metadata, .user = o};
}

/* Offers to vin so far. */
static int offers_to(offers *o, const char *vin)
{
	return *slot(o, vin, strlen(vin));
}

/* ---- helpers ------------------------------------------------------------------------------ */

static int create(store *s, const char *spec_json, char id[41])
{
	json_error_t e;
	json_t *spec = json_loads(spec_json, 0, &e);
	if (!spec)
		fail_msg("spec: %s", e.text);
	int rc = cmp_create(s, spec, "apikey:test", T0, id);
	json_decref(spec);
	return rc;
}

/* Creates and starts a continuous campaign for r1 with the spec's other members (",..."
 * or ""); *n (optional): vehicles admitted at the start. */
static void start_continuous(store *s, const cmp_env *env, const char *members, char id[41],
                             int64_t *n)
{
	char spec[512];
	snprintf(spec, sizeof(spec),
	         "{\"name\":\"c\",\"release_ids\":[\"r1\"],\"mode\":\"continuous\"%s}", members);
	assert_ok(create(s, spec, id));
	assert_ok(cmp_start(s, env, id, T0, n));
}

static int admitted(store *s, const cmp_env *env, const char *vin, int64_t now)
{
	int n = -1;
	assert_ok(cmp_admit(s, env, vin, now, &n));
	return n;
}

static bool in_campaign(store *s, const char *cid, const char *vin, store_deployment *d)
{
	int rc = store_deployment_get(s, cid, vin, d);
	if (rc == PQ_ERR_NOTFOUND)
		return false;
	assert_ok(rc);
	return true;
}

static store_cmp_state cmp_state(store *s, const char *cid)
{
	store_campaign c;
	assert_ok(store_campaign_get(s, cid, &c));
	store_cmp_state st = c.state;
	store_campaign_clear(&c);
	return st;
}

/* A vehicle message into the engine (message ids unique per run). */
static void vehicle_says(store *s, const cmp_env *env, const char *vin, const char *type,
                         const char *cid, int64_t now, const char *body)
{
	static int seq;
	char id[32];
	snprintf(id, sizeof(id), "c-%d", ++seq);
	json_t *root = json_loads(body ? body : "{}", 0, NULL);
	assert_non_null(root);
	json_object_set_new(root, "msg_type", json_string(type));
	json_object_set_new(root, "vin", json_string(vin));
	json_object_set_new(root, "campaign_id", json_string(cid));
	assert_ok(cmp_on_message(s, env, vin, type, id, root, now));
	json_decref(root);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* Who is admitted: a matching vehicle with an older version, once; not one already on the
 * release's version, not another model, not to a campaign of mode once, not while paused. */
static void test_admission_rules(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	offers o = {0};
	cmp_env env = env_of(&o);
	release_r1(s);
	vehicle(s, "VIN-EARLY", "zonal-1", false, "1.0.0");
	char id[41], once[41];
	int64_t n = -1;
	start_continuous(s, &env, ",\"target\":{\"model\":\"zonal-1\"}", id, &n);
	assert_int_equal(n, 1); /* the catch-up pass: the known vehicle */
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0 + 1, &st));
	assert_int_equal(st.completed, 0); /* nobody done, nobody left: still running */
	assert_int_equal(cmp_state(s, id), STORE_CMP_RUNNING);

	vehicle(s, "VIN-OLD", "zonal-1", true, "1.0.0");
	vehicle(s, "VIN-NEW", "zonal-1", true, "2.0.0");
	vehicle(s, "VIN-OTHER", "zonal-2", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-OLD", T0 + 10), 1);
	assert_int_equal(offers_to(&o, "VIN-OLD"), 1); /* online: offered at once */
	assert_int_equal(admitted(s, &env, "VIN-NEW", T0 + 11), 0);
	assert_int_equal(admitted(s, &env, "VIN-OTHER", T0 + 12), 0);
	assert_int_equal(offers_to(&o, "VIN-NEW") + offers_to(&o, "VIN-OTHER"), 0);
	store_deployment d;
	assert_false(in_campaign(s, id, "VIN-NEW", &d));
	assert_false(in_campaign(s, id, "VIN-OTHER", &d));
	assert_true(in_campaign(s, id, "VIN-OLD", &d));
	assert_int_equal(d.state, STORE_DEP_NOTIFIED);
	assert_int_equal(d.phase, 1);

	/* at most once: a second report, even after a failure, admits it to nothing */
	vehicle_says(s, &env, "VIN-OLD", "ota_error", id, T0 + 20, "{\"error_code\":\"E\"}");
	assert_int_equal(admitted(s, &env, "VIN-OLD", T0 + 21), 0);
	assert_int_equal(offers_to(&o, "VIN-OLD"), 1);

	/* a campaign of mode once never admits */
	vehicle(s, "VIN-LATE", "zonal-1", true, "1.0.0");
	assert_ok(create(s, "{\"name\":\"once\",\"release_ids\":[\"r1\"]}", once));
	assert_ok(cmp_start(s, &env, once, T0 + 30, NULL));
	assert_ok(cmp_pause(s, id, NULL, T0 + 31));
	vehicle(s, "VIN-LATER", "zonal-1", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-LATER", T0 + 32), 0); /* paused; once: no */
	assert_false(in_campaign(s, once, "VIN-LATER", &d));
	assert_ok(cmp_resume(s, id, T0 + 33));
	assert_int_equal(admitted(s, &env, "VIN-LATER", T0 + 34), 1);
	assert_true(in_campaign(s, id, "VIN-LATER", &d));
	assert_false(in_campaign(s, once, "VIN-LATER", &d));

	/* cancelled: nobody */
	assert_ok(cmp_cancel(s, &env, id, T0 + 40));
	vehicle(s, "VIN-LAST", "zonal-1", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-LAST", T0 + 41), 0);
}

/* Phases are counts of admitted vehicles: the second vehicle waits in phase 2 until the
 * first completed; the error threshold pauses the campaign and so stops admission. */
static void test_phases_and_threshold(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	offers o = {0};
	cmp_env env = env_of(&o);
	release_r1(s);
	char id[41];
	int64_t n = -1;
	start_continuous(s, &env,
	                 ",\"phases\":[{\"count\":1},{\"count\":2,\"error_threshold\":0.4},"
	                 "{\"percent\":100}]",
	                 id, &n);
	assert_int_equal(n, 0);
	const char *vins[] = {"VIN-A", "VIN-B", "VIN-C", "VIN-D"};
	for (int i = 0; i < 4; i++) {
		vehicle(s, vins[i], "zonal-1", true, "1.0.0");
		assert_int_equal(admitted(s, &env, vins[i], T0 + 10 + i), 1);
	}
	int want_phase[] = {1, 2, 2, 3};
	for (int i = 0; i < 4; i++) {
		store_deployment d;
		assert_true(in_campaign(s, id, vins[i], &d));
		assert_int_equal(d.phase, want_phase[i]);
		assert_int_equal(offers_to(&o, vins[i]), i == 0 ? 1 : 0);
	}
	cmp_tick_stats st = {0};
	assert_ok(cmp_tick(s, &env, T0 + 20, &st));
	assert_int_equal(st.phases_advanced, 0); /* VIN-A has not completed */
	vehicle_says(s, &env, "VIN-A", "ota_campaign_response", id, T0 + 21,
	             "{\"decision\":\"accepted\"}");
	vehicle_says(s, &env, "VIN-A", "ota_installation_complete", id, T0 + 22, NULL);
	vehicle_says(s, &env, "VIN-A", "vci_report", id, T0 + 23,
	             "{\"ecus\":[{\"ecu_id\":\"ECU_011\",\"software\":{\"APP\":\"2.0.0\"}}]}");
	assert_ok(cmp_tick(s, &env, T0 + 30, &st));
	assert_int_equal(st.phases_advanced, 1);
	assert_ok(cmp_tick(s, &env, T0 + 31, &st));
	assert_int_equal(offers_to(&o, "VIN-B"), 1);
	assert_int_equal(offers_to(&o, "VIN-C"), 1);
	assert_int_equal(offers_to(&o, "VIN-D"), 0);
	/* one failure of 2 is more than 40 %: paused, and a new vehicle is not admitted */
	vehicle_says(s, &env, "VIN-B", "ota_error", id, T0 + 40, "{\"error_code\":\"E_FLASH\"}");
	assert_ok(cmp_tick(s, &env, T0 + 41, &st));
	assert_int_equal(st.auto_paused, 1);
	assert_int_equal(cmp_state(s, id), STORE_CMP_PAUSED);
	vehicle(s, "VIN-E", "zonal-1", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-E", T0 + 42), 0);
	store_deployment d;
	assert_false(in_campaign(s, id, "VIN-E", &d));
}

/* ends_at: no admission after it, and the campaign completes when its deployments ended. */
static void test_ends_at(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	offers o = {0};
	cmp_env env = env_of(&o);
	release_r1(s);
	char id[41];
	/* T0 is 2023-11-14T22:13:20Z */
	start_continuous(s, &env, ",\"ends_at\":\"2023-11-14T22:13:30Z\"", id, NULL);
	vehicle(s, "VIN-A", "zonal-1", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-A", T0 + 1000), 1);
	cmp_tick_stats st = {0};
	vehicle_says(s, &env, "VIN-A", "ota_campaign_response", id, T0 + 2000,
	             "{\"decision\":\"declined\"}");
	assert_ok(cmp_tick(s, &env, T0 + 3000, &st));
	assert_int_equal(st.completed, 0); /* still admitting */
	vehicle(s, "VIN-B", "zonal-1", true, "1.0.0");
	assert_int_equal(admitted(s, &env, "VIN-B", T0 + 10000), 0);
	assert_ok(cmp_tick(s, &env, T0 + 10001, &st));
	assert_int_equal(st.completed, 1);
	assert_int_equal(cmp_state(s, id), STORE_CMP_COMPLETED);
}

/* The spec: mode, ends_at and a continuous campaign's phases are checked. */
static void test_validation(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	release_r1(s);
	static const struct {
		const char *spec, *detail;
	} bad[] = {
	    {"\"mode\":\"sometimes\"", "mode: not once or continuous"},
	    {"\"mode\":7", "mode"},
	    {"\"ends_at\":\"2030-01-01T00:00:00Z\"", "ends_at: only for a continuous"},
	    {"\"mode\":\"continuous\",\"ends_at\":\"tomorrow\"", "ends_at: not an ISO-8601"},
	    {"\"mode\":\"continuous\",\"phases\":[{\"percent\":10},{\"percent\":100}]",
	     "phases[0]: a continuous campaign"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char spec[256], id[41];
		snprintf(spec, sizeof(spec), "{\"name\":\"v\",\"release_ids\":[\"r1\"],%s}",
		         bad[i].spec);
		assert_rc(create(s, spec, id), PQ_ERR_INVAL);
		if (!strstr(pq_err_detail(), bad[i].detail))
			fail_msg("%s: detail '%s'", bad[i].spec, pq_err_detail());
	}
	char id[41];
	assert_ok(create(s,
	                 "{\"name\":\"v\",\"release_ids\":[\"r1\"],\"mode\":\"continuous\","
	                 "\"ends_at\":null,\"phases\":[{\"count\":5},{\"percent\":50}]}",
	                 id));
	json_t *j = NULL;
	assert_ok(cmp_get_json(s, id, &j));
	json_t *p = json_object_get(j, "policy");
	assert_string_equal(json_string_value(json_object_get(p, "mode")), "continuous");
	assert_true(json_is_null(json_object_get(p, "ends_at")));
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "continuous");
	json_decref(j);
	assert_ok(create(s, "{\"name\":\"o\",\"release_ids\":[\"r1\"]}", id));
	assert_ok(cmp_get_json(s, id, &j));
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "once");
	json_decref(j);
}

int main(void)
{
	if (!sf_init("campaign_continuous", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_admission_rules, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_phases_and_threshold, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_ends_at, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_validation, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
