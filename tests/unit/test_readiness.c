/* test_readiness.c: on-demand readiness checks (docs/api.md 6.18, docs/protocol.md
 * "Readiness answers"): the server's check of a vehicle's answer (rdy_answer_parse: types,
 * names, bounds, ready agreeing with the checks), the agent's own answer accepted by it, the
 * store (store/readiness.h: add, newest, by id, one answer in time, other vehicles' ids
 * refused, the newest STORE_READINESS_KEEP kept) and rdy_on_response, against SQLite or
 * PostgreSQL ($PQOTA_TEST_STORE, as test_store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "server/msg.h"
#include "server/readiness.h"
#include "store/readiness.h"
#include "store_fixture.h"
#include "testutil.h"

#define NOW 1796679000000LL /* 2026-12-07T21:30:00Z */
#define ID1 "5b0e2f1c-8d7a-4e53-b1f2-0c9d8e7a6b54"
#define ALL4                                                                                       \
	"[{\"name\":\"battery\",\"value\":90,\"ok\":true},{\"name\":\"parked\",\"value\":true,"    \
	"\"ok\":true},"                                                                            \
	"{\"name\":\"ignition_off\",\"value\":true,\"ok\":true},{\"name\":\"storage\",\"value\":"  \
	"5,\"ok\":true}]"

/* rdy_answer_parse of the JSON text; its code (the answer dropped). */
static int parse(const char *text)
{
	json_error_t je;
	json_t *root = json_loads(text, 0, &je), *answer = NULL;
	bool ready = false;
	assert_non_null(root);
	int rc = rdy_answer_parse(root, &ready, &answer);
	json_decref(answer);
	json_decref(root);
	return rc;
}

static void test_answer_checks(void **state)
{
	char text[2048], reason[300];
	(void)state;
	assert_ok(parse("{\"ready\":true,\"checks\":" ALL4 "}"));
	assert_ok(parse("{\"ready\":false,\"reason\":\"low\",\"checks\":[{\"name\":\"battery\","
	                "\"value\":5,\"ok\":false,\"reason\":\"low\"}]}"));
	/* ready disagreeing with the checks, either way */
	assert_rc(parse("{\"ready\":false,\"checks\":" ALL4 "}"), PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"parked\",\"value\":false,"
	                "\"ok\":false}]}"),
	          PQ_ERR_FORMAT);
	/* types, names, repeats, members, counts */
	assert_rc(parse("{\"ready\":\"yes\",\"checks\":" ALL4 "}"), PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true}"), PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[]}"), PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"fuel\",\"ok\":true}]}"),
	          PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"parked\",\"ok\":true},"
	                "{\"name\":\"parked\",\"ok\":true}]}"),
	          PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"parked\",\"ok\":1}]}"),
	          PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"parked\",\"ok\":true,"
	                "\"value\":{}}]}"),
	          PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[{\"name\":\"parked\",\"ok\":true,"
	                "\"extra\":1}]}"),
	          PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":true,\"checks\":[1]}"), PQ_ERR_FORMAT);
	/* bounded, printable reasons */
	memset(reason, 'a', 257);
	reason[257] = '\0';
	snprintf(text, sizeof(text),
	         "{\"ready\":false,\"reason\":\"%s\",\"checks\":[{\"name\":"
	         "\"parked\",\"ok\":false}]}",
	         reason);
	assert_rc(parse(text), PQ_ERR_FORMAT);
	assert_rc(parse("{\"ready\":false,\"checks\":[{\"name\":\"parked\",\"ok\":false,"
	                "\"reason\":\"a\\u0001b\"}]}"),
	          PQ_ERR_FORMAT);
}

/* The agent's answer (its ag_readiness checks) passes the server's check. */
static void test_agent_answer(void **state)
{
	ag_vstate v = {
	    .battery_pct = 10, .parked = true, .ignition_off = false, .storage_free = 1000};
	ag_prereq p = {.battery_min_pct = 20, .parked = 1, .ignition_off = 1, .storage_min = -1};
	json_t *checks = NULL, *answer = NULL;
	char reason[256];
	bool ready = true;
	(void)state;
	bool ok = ag_readiness(&v, &p, &checks, reason, sizeof(reason));
	assert_false(ok);
	json_t *m = json_pack("{s:b,s:o,s:s}", "ready", ok, "checks", checks, "reason", reason);
	assert_ok(rdy_answer_parse(m, &ready, &answer));
	assert_false(ready);
	assert_int_equal(json_array_size(json_object_get(answer, "checks")), 4);
	assert_string_equal(json_string_value(json_object_get(answer, "reason")), reason);
	json_decref(answer);
	json_decref(m);
}

/* ---- the store --------------------------------------------------------------------------- */

static void add_check(store *s, const char *vin, const char *id, int64_t at)
{
	store_readiness r = {
	    .prerequisites = "{\"parked\":true}", .requested_ms = at, .expires_ms = at + 60000};
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.vin, sizeof(r.vin), "%s", vin);
	snprintf(r.actor, sizeof(r.actor), "apikey:ops");
	assert_ok(store_readiness_add(s, &r));
}

static void test_store(void **state)
{
	sf_fixture *f = *state;
	store_readiness r;
	bool stored = false;
	char id[40];
	sf_add_vehicle(f->s, "VIN123", NOW);
	sf_add_vehicle(f->s, "VIN456", NOW);
	assert_rc(store_readiness_get(f->s, "VIN123", NULL, &r), PQ_ERR_NOTFOUND);
	add_check(f->s, "VIN123", ID1, NOW);
	assert_ok(store_readiness_get(f->s, "VIN123", NULL, &r));
	assert_string_equal(r.id, ID1);
	assert_int_equal(r.ready, -1);
	assert_int_equal(r.answered_ms, 0);
	assert_null(r.answer);
	assert_string_equal(r.prerequisites, "{\"parked\":true}");
	store_readiness_clear(&r);
	/* another vehicle cannot answer it, nor read it */
	assert_rc(store_readiness_answer(f->s, "VIN456", ID1, true, "{}", NOW + 1, &stored),
	          PQ_ERR_NOTFOUND);
	assert_rc(store_readiness_get(f->s, "VIN456", ID1, &r), PQ_ERR_NOTFOUND);
	/* too late, then in time, then again */
	assert_ok(store_readiness_answer(f->s, "VIN123", ID1, true, "{}", NOW + 60001, &stored));
	assert_false(stored);
	assert_ok(store_readiness_answer(f->s, "VIN123", ID1, false, "{\"checks\":[]}", NOW + 5,
	                                 &stored));
	assert_true(stored);
	assert_ok(store_readiness_answer(f->s, "VIN123", ID1, true, "{}", NOW + 6, &stored));
	assert_false(stored);
	assert_ok(store_readiness_get(f->s, "VIN123", ID1, &r));
	assert_int_equal(r.ready, 0);
	assert_int_equal(r.answered_ms, NOW + 5);
	assert_string_equal(r.answer, "{\"checks\":[]}");
	store_readiness_clear(&r);
	/* an unregistered vehicle, bad input */
	assert_rc(store_readiness_get(f->s, "VIN123", "", &r), PQ_ERR_INVAL);
	store_readiness bad = {.prerequisites = "{}", .requested_ms = NOW, .expires_ms = NOW};
	snprintf(bad.id, sizeof(bad.id), "x");
	snprintf(bad.vin, sizeof(bad.vin), "NOSUCHVIN");
	assert_rc(store_readiness_add(f->s, &bad), PQ_ERR_NOTFOUND);
	bad.expires_ms = NOW - 1;
	assert_rc(store_readiness_add(f->s, &bad), PQ_ERR_INVAL);
	/* the newest STORE_READINESS_KEEP are kept */
	for (int i = 0; i < STORE_READINESS_KEEP + 5; i++) {
		snprintf(id, sizeof(id), "check-%02d", i);
		add_check(f->s, "VIN456", id, NOW + i);
	}
	assert_ok(store_readiness_get(f->s, "VIN456", NULL, &r));
	snprintf(id, sizeof(id), "check-%02d", STORE_READINESS_KEEP + 4);
	assert_string_equal(r.id, id);
	store_readiness_clear(&r);
	assert_rc(store_readiness_get(f->s, "VIN456", "check-04", &r), PQ_ERR_NOTFOUND);
	assert_ok(store_readiness_get(f->s, "VIN456", "check-05", &r));
	store_readiness_clear(&r);
	assert_ok(store_readiness_get(f->s, "VIN123", ID1, &r)); /* another vehicle's kept */
	store_readiness_clear(&r);
}

/* msg_parse + rdy_on_response of an answer from vin (on its topic) to correlation id corr */
static int on_response(store *s, const char *vin, const char *corr, const char *cid,
                       const char *body, bool *ours, bool *stored)
{
	char topic[64], text[2048];
	msg_in m;
	snprintf(topic, sizeof(topic), "oem/%s/response", vin);
	snprintf(text, sizeof(text),
	         "{\"msg_type\":\"ota_readiness_response\",\"message_id\":\"%s-%s\","
	         "\"timestamp\":\"2026-12-07T21:30:00.100Z\",\"vin\":\"%s\",\"correlation_id\":"
	         "\"%s\"%s%s%s,%s}",
	         vin, corr, vin, corr, cid ? ",\"campaign_id\":\"" : "", cid ? cid : "",
	         cid ? "\"" : "", body);
	assert_ok(msg_parse(topic, text, strlen(text), &m));
	int rc = rdy_on_response(s, &m, NOW + 100, ours, stored);
	msg_in_clear(&m);
	return rc;
}

static void test_on_response(void **state)
{
	sf_fixture *f = *state;
	bool ours = false, stored = false;
	store_readiness r;
	sf_add_vehicle(f->s, "VIN123", NOW);
	sf_add_vehicle(f->s, "VIN456", NOW);
	add_check(f->s, "VIN123", ID1, NOW);
	const char *good = "\"ready\":true,\"checks\":" ALL4;
	/* a campaign's answer (no check of that id) is not ours */
	assert_ok(on_response(f->s, "VIN123", "0a0a0a0a-0000-4000-8000-000000000000", "C1", good,
	                      &ours, &stored));
	assert_false(ours);
	/* another vehicle's answer to this check: not ours either */
	assert_ok(on_response(f->s, "VIN456", ID1, NULL, good, &ours, &stored));
	assert_false(ours);
	/* malformed: ours, refused, nothing stored */
	assert_rc(on_response(f->s, "VIN123", ID1, NULL, "\"ready\":false,\"checks\":" ALL4, &ours,
	                      &stored),
	          PQ_ERR_FORMAT);
	assert_true(ours);
	assert_false(stored);
	assert_ok(store_readiness_get(f->s, "VIN123", ID1, &r));
	assert_int_equal(r.answered_ms, 0);
	store_readiness_clear(&r);
	/* the vehicle's own well-formed answer */
	assert_ok(on_response(f->s, "VIN123", ID1, NULL, good, &ours, &stored));
	assert_true(ours);
	assert_true(stored);
	assert_ok(store_readiness_get(f->s, "VIN123", ID1, &r));
	assert_int_equal(r.ready, 1);
	json_t *j = rdy_json(&r, NOW + 200);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "answered");
	assert_int_equal(json_array_size(json_object_get(j, "checks")), 4);
	assert_true(json_is_null(json_object_get(j, "reason")));
	json_decref(j);
	store_readiness_clear(&r);
}

int main(void)
{
	if (!sf_init("readiness", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answer_checks),
	    cmocka_unit_test(test_agent_answer),
	    cmocka_unit_test_setup_teardown(test_store, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_on_response, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
