/* test_telemetry.c: telemetry (docs/protocol.md, "Telemetry"): the server's check of a
 * sample (tele_parse: every member's type and range, the size bound, the VIN, the clock),
 * the agent's sample accepted by it, and the store (store/telemetry.h: latest, the bounded
 * history, the rate limit, stale samples, the fleet aggregate, a vehicle's deletion) against
 * SQLite or PostgreSQL ($PQOTA_TEST_STORE, as test_store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent_int.h"
#include "core/time.h"
#include "server/msg.h"
#include "server/telemetry.h"
#include "store/telemetry.h"
#include "store_fixture.h"
#include "testutil.h"

#define NOW   1796679000000LL /* 2026-12-07T21:30:00Z */
#define TOPIC "oem/VIN123/telemetry"

/* A valid sample with `extra` spliced in before the closing brace (replacing members of the
 * same name is not possible in JSON text: callers pass the members they vary instead). */
static void sample_text(char *out, size_t cap, const char *battery, const char *motion,
                        const char *storage, const char *extra)
{
	snprintf(
	    out, cap,
	    "{\"msg_type\":\"telemetry\",\"message_id\":\"6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10\","
	    "\"timestamp\":\"2026-12-07T21:29:59.500Z\",\"vin\":\"VIN123\",%s,%s,%s%s}",
	    battery ? battery : "\"battery\":{\"soc_pct\":87,\"voltage_v\":12.64}",
	    motion ? motion : "\"ignition_on\":false,\"speed_kmh\":0,\"parked\":true",
	    storage ? storage
	            : "\"storage\":{\"free_bytes\":8589934592,\"total_bytes\":34359738368}",
	    extra ? extra : "");
}

/* msg_parse then tele_parse of text; the first failure's code (detail in pq_err_detail). */
static int parse(const char *text, store_telemetry *t)
{
	msg_in m;
	int rc = msg_parse(TOPIC, text, strlen(text), &m);
	if (rc == PQ_OK)
		rc = tele_parse(&m, NOW, t);
	msg_in_clear(&m);
	return rc;
}

static void expect(const char *battery, const char *motion, const char *storage, const char *extra,
                   int want, const char *detail)
{
	char text[8192];
	store_telemetry t;
	sample_text(text, sizeof(text), battery, motion, storage, extra);
	int rc = parse(text, &t);
	if (rc != want)
		fail_msg("%s: got %d, want %d (%s)", text, rc, want, pq_err_detail());
	if (detail && !strstr(pq_err_detail(), detail))
		fail_msg("%s: detail '%s' lacks '%s'", text, pq_err_detail(), detail);
	if (want != PQ_OK)
		assert_string_equal(t.vin, ""); /* nothing half-filled */
}

static void test_valid(void **state)
{
	(void)state;
	char text[2048];
	store_telemetry t;
	sample_text(text, sizeof(text), NULL, NULL, NULL, ",\"future_sensor\":{\"x\":1}");
	assert_ok(parse(text, &t));
	assert_string_equal(t.vin, "VIN123");
	assert_int_equal(t.at_ms, NOW - 500);
	assert_int_equal(t.battery_pct, 87);
	assert_int_equal(t.battery_mv, 12640);
	assert_false(t.ignition_on);
	assert_true(t.parked);
	assert_int_equal(t.speed_dkmh, 0);
	assert_int_equal(t.storage_free, 8589934592LL);
	assert_int_equal(t.storage_total, 34359738368LL);
	/* a moving vehicle, speeds to 0.1 km/h, bounds included */
	sample_text(text, sizeof(text), "\"battery\":{\"soc_pct\":0,\"voltage_v\":60}",
	            "\"ignition_on\":true,\"speed_kmh\":87.26,\"parked\":false",
	            "\"storage\":{\"free_bytes\":0,\"total_bytes\":1}", NULL);
	assert_ok(parse(text, &t));
	assert_int_equal(t.speed_dkmh, 873);
	assert_int_equal(t.battery_mv, 60000);
	assert_int_equal(t.battery_pct, 0);
	assert_true(t.ignition_on);
}

static void test_types(void **state)
{
	(void)state;
	expect("\"battery\":{\"soc_pct\":\"87\",\"voltage_v\":12}", NULL, NULL, NULL, PQ_ERR_FORMAT,
	       "soc_pct");
	expect("\"battery\":{\"soc_pct\":87.5,\"voltage_v\":12}", NULL, NULL, NULL, PQ_ERR_FORMAT,
	       "soc_pct");
	expect("\"battery\":[87,12]", NULL, NULL, NULL, PQ_ERR_FORMAT, "battery");
	expect("\"battery\":{\"soc_pct\":87}", NULL, NULL, NULL, PQ_ERR_FORMAT, "voltage_v");
	expect(NULL, "\"ignition_on\":\"off\",\"speed_kmh\":0,\"parked\":true", NULL, NULL,
	       PQ_ERR_FORMAT, "ignition_on");
	expect(NULL, "\"ignition_on\":false,\"speed_kmh\":\"0\",\"parked\":true", NULL, NULL,
	       PQ_ERR_FORMAT, "speed_kmh");
	expect(NULL, "\"ignition_on\":false,\"speed_kmh\":0,\"parked\":1", NULL, NULL,
	       PQ_ERR_FORMAT, "parked");
	expect(NULL, "\"ignition_on\":false,\"speed_kmh\":0,\"parked\":null", NULL, NULL,
	       PQ_ERR_FORMAT, "parked");
	expect(NULL, "\"ignition_on\":false,\"parked\":true", NULL, NULL, PQ_ERR_FORMAT,
	       "speed_kmh");
	expect(NULL, NULL, "\"storage\":{\"free_bytes\":1.5,\"total_bytes\":2}", NULL,
	       PQ_ERR_FORMAT, "free_bytes");
	expect(NULL, NULL, "\"storage\":{\"free_bytes\":1}", NULL, PQ_ERR_FORMAT, "total_bytes");
	/* a duplicate key is refused by the envelope (two readers could disagree) */
	expect(NULL, NULL, NULL, ",\"parked\":false", PQ_ERR_FORMAT, NULL);
}

static void test_ranges(void **state)
{
	(void)state;
	expect("\"battery\":{\"soc_pct\":101,\"voltage_v\":12}", NULL, NULL, NULL, PQ_ERR_RANGE,
	       "soc_pct");
	expect("\"battery\":{\"soc_pct\":-1,\"voltage_v\":12}", NULL, NULL, NULL, PQ_ERR_RANGE,
	       "soc_pct");
	expect("\"battery\":{\"soc_pct\":50,\"voltage_v\":60.001}", NULL, NULL, NULL, PQ_ERR_RANGE,
	       "voltage_v");
	expect("\"battery\":{\"soc_pct\":50,\"voltage_v\":-0.1}", NULL, NULL, NULL, PQ_ERR_RANGE,
	       "voltage_v");
	expect(NULL, "\"ignition_on\":true,\"speed_kmh\":500.1,\"parked\":false", NULL, NULL,
	       PQ_ERR_RANGE, "speed_kmh");
	expect(NULL, "\"ignition_on\":true,\"speed_kmh\":1e300,\"parked\":false", NULL, NULL,
	       PQ_ERR_RANGE, "speed_kmh");
	expect(NULL, "\"ignition_on\":true,\"speed_kmh\":12,\"parked\":true", NULL, NULL,
	       PQ_ERR_RANGE, "parked");
	expect(NULL, NULL, "\"storage\":{\"free_bytes\":3,\"total_bytes\":2}", NULL, PQ_ERR_RANGE,
	       "free_bytes above");
	expect(NULL, NULL, "\"storage\":{\"free_bytes\":0,\"total_bytes\":0}", NULL, PQ_ERR_RANGE,
	       "total_bytes");
	expect(NULL, NULL, "\"storage\":{\"free_bytes\":0,\"total_bytes\":9007199254740993}", NULL,
	       PQ_ERR_RANGE, "total_bytes");
}

static void test_envelope(void **state)
{
	(void)state;
	char text[8192], pad[5000];
	store_telemetry t;
	/* the size bound: a 4 KiB message at most, whatever it holds */
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	char extra[5100];
	snprintf(extra, sizeof(extra), ",\"pad\":\"%s\"", pad);
	sample_text(text, sizeof(text), NULL, NULL, NULL, extra);
	assert_rc(parse(text, &t), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "4096"));
	/* the VIN of the body must be the topic's */
	sample_text(text, sizeof(text), NULL, NULL, NULL, NULL);
	msg_in m;
	assert_rc(msg_parse("oem/VIN999/telemetry", text, strlen(text), &m), PQ_ERR_INVAL);
	/* another msg_type on the telemetry topic, telemetry on another topic */
	static const char vci[] = "{\"msg_type\":\"vci_report\",\"message_id\":\"a\","
	                          "\"timestamp\":\"2026-12-07T21:29:59Z\",\"vin\":\"VIN123\"}";
	assert_rc(parse(vci, &t), PQ_ERR_INVAL);
	assert_ok(msg_parse("oem/VIN123/vci", vci, strlen(vci), &m));
	assert_rc(tele_parse(&m, NOW, &t), PQ_ERR_INVAL);
	msg_in_clear(&m);
	/* not JSON; a timestamp from the future (beyond the skew) */
	assert_rc(parse("{\"msg_type\":\"telemetry\",", &t), PQ_ERR_FORMAT);
	snprintf(text, sizeof(text),
	         "{\"msg_type\":\"telemetry\",\"message_id\":\"b\",\"timestamp\":"
	         "\"2026-12-07T21:36:00Z\",\"vin\":\"VIN123\",\"battery\":{\"soc_pct\":1,"
	         "\"voltage_v\":1},\"ignition_on\":false,\"speed_kmh\":0,\"parked\":true,"
	         "\"storage\":{\"free_bytes\":0,\"total_bytes\":1}}");
	assert_rc(parse(text, &t), PQ_ERR_RANGE);
	assert_non_null(strstr(pq_err_detail(), "ahead"));
	assert_true(tele_topic(TOPIC));
	assert_false(tele_topic("oem/VIN123/telemetry/x"));
	assert_false(tele_topic("x/VIN123/telemetry"));
	assert_false(tele_topic("oem/telemetry"));
}

/* What the agent publishes is what the server accepts. */
static void test_agent_sample(void **state)
{
	(void)state;
	ag_vstate v = {.battery_pct = 42, .parked = false, .ignition_off = false};
	json_t *m = ag_msg_new("VIN123", "telemetry", NULL, NULL);
	assert_non_null(m);
	assert_ok(ag_jmerge(m, ag_telemetry_body(&v, 1000, 5000), "telemetry"));
	char *text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	assert_non_null(text);
	msg_in in;
	store_telemetry t;
	assert_ok(msg_parse(TOPIC, text, strlen(text), &in));
	free(text);
	assert_ok(tele_parse(&in, pq_real_ms(), &t));
	msg_in_clear(&in);
	assert_int_equal(t.battery_pct, 42);
	assert_int_equal(t.speed_dkmh, 500);
	assert_true(t.ignition_on);
	assert_false(t.parked);
	assert_int_equal(t.storage_free, 1000);
	assert_int_equal(t.storage_total, 5000);
	/* parked with ignition off: standing, the resting voltage */
	v = (ag_vstate){.battery_pct = 100, .parked = true, .ignition_off = true};
	json_t *b = ag_telemetry_body(&v, 1, 2);
	assert_non_null(b);
	assert_true(json_number_value(json_object_get(b, "speed_kmh")) == 0.0);
	double volts =
	    json_number_value(json_object_get(json_object_get(b, "battery"), "voltage_v"));
	assert_true(volts > 12.69 && volts < 12.71);
	json_decref(b);
	/* the state directory's file system */
	uint64_t fr = 0, tot = 0;
	assert_ok(ag_storage(".", -1, &fr, &tot));
	assert_true(tot > 0 && fr <= tot);
	assert_ok(ag_storage(".", (int64_t)tot + 7, &fr, &tot));
	assert_true(fr == tot);
	assert_rc(ag_storage("/nonexistent/pqota", -1, &fr, &tot), PQ_ERR_IO);
}

/* ---- the store --------------------------------------------------------------------------- */

static store_telemetry mk(const char *vin, int64_t at, int64_t received, int pct)
{
	store_telemetry t;
	memset(&t, 0, sizeof(t));
	snprintf(t.vin, sizeof(t.vin), "%s", vin);
	t.at_ms = at;
	t.received_ms = received;
	t.battery_pct = pct;
	t.battery_mv = 12500;
	t.parked = true;
	t.storage_free = 1000 + at - NOW;
	t.storage_total = 1000000;
	return t;
}

typedef struct {
	int64_t seq[16];
	int n;
} seqs;

static int collect(const store_telemetry *t, void *user)
{
	seqs *s = user;
	if (s->n < 16)
		s->seq[s->n++] = t->seq;
	return PQ_OK;
}

static void test_store_history(void **state)
{
	sf_fixture *f = *state;
	store_tele_result r;
	store_telemetry last;
	bool found = true;
	sf_add_vehicle(f->s, "VINA", NOW);
	assert_ok(store_telemetry_latest(f->s, "VINA", &last, &found));
	assert_false(found);
	assert_rc(store_telemetry_latest(f->s, "NOSUCH", &last, &found), PQ_ERR_NOTFOUND);
	store_telemetry t = mk("NOSUCH", NOW, NOW, 50);
	assert_rc(store_telemetry_add(f->s, &t, 3, 0, &r), PQ_ERR_NOTFOUND);
	/* seven samples, three kept: seq 5..7, newest first */
	for (int i = 1; i <= 7; i++) {
		t = mk("VINA", NOW + i, NOW + i * 1000, 50 + i);
		assert_ok(store_telemetry_add(f->s, &t, 3, 1000, &r));
		assert_int_equal(r, STORE_TELE_STORED);
	}
	seqs s = {0};
	int64_t total = 0;
	store_page pg = {.limit = 10};
	assert_ok(store_telemetry_history(f->s, "VINA", &pg, collect, &s, &total));
	assert_int_equal(total, 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.seq[0], 7);
	assert_int_equal(s.seq[2], 5);
	assert_ok(store_telemetry_latest(f->s, "VINA", &last, &found));
	assert_true(found);
	assert_int_equal(last.seq, 7);
	assert_int_equal(last.battery_pct, 57);
	assert_int_equal(last.storage_free, 1007);
	/* too soon after the last (received 999 ms later): refused, nothing written */
	t = mk("VINA", NOW + 8, NOW + 7999, 1);
	assert_ok(store_telemetry_add(f->s, &t, 3, 1000, &r));
	assert_int_equal(r, STORE_TELE_RATE_LIMITED);
	/* not newer than the latest: refused */
	t = mk("VINA", NOW + 7, NOW + 9000, 1);
	assert_ok(store_telemetry_add(f->s, &t, 3, 1000, &r));
	assert_int_equal(r, STORE_TELE_STALE);
	assert_ok(store_telemetry_latest(f->s, "VINA", &last, &found));
	assert_int_equal(last.seq, 7);
	assert_int_equal(last.battery_pct, 57);
	/* a lower bound trims the history at once; out-of-range samples never reach the SQL */
	t = mk("VINA", NOW + 9, NOW + 10000, 60);
	assert_ok(store_telemetry_add(f->s, &t, 1, 0, &r));
	assert_ok(store_telemetry_history(f->s, "VINA", &pg, NULL, NULL, &total));
	assert_int_equal(total, 1);
	t.battery_pct = 101;
	assert_rc(store_telemetry_add(f->s, &t, 1, 0, &r), PQ_ERR_RANGE);
	t = mk("VINA", NOW + 10, NOW + 11000, 60);
	t.speed_dkmh = 10;
	assert_rc(store_telemetry_add(f->s, &t, 1, 0, &r), PQ_ERR_RANGE);
	assert_rc(store_telemetry_add(f->s, &t, 0, 0, &r), PQ_ERR_INVAL);
	/* paging */
	for (int i = 11; i <= 15; i++) {
		t = mk("VINA", NOW + i, NOW + i * 1000, 60);
		assert_ok(store_telemetry_add(f->s, &t, 10, 0, &r));
	}
	s.n = 0;
	pg = (store_page){.limit = 2, .offset = 1};
	assert_ok(store_telemetry_history(f->s, "VINA", &pg, collect, &s, &total));
	assert_int_equal(total, 6);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.seq[0], 12);
	/* deleting the vehicle deletes its telemetry */
	assert_ok(store_vehicle_delete(f->s, "VINA"));
	sf_add_vehicle(f->s, "VINA", NOW);
	assert_ok(store_telemetry_history(f->s, "VINA", &pg, NULL, NULL, &total));
	assert_int_equal(total, 0);
	assert_ok(store_telemetry_latest(f->s, "VINA", &last, &found));
	assert_false(found);
}

static void test_store_fleet(void **state)
{
	sf_fixture *f = *state;
	store_tele_result r;
	store_tele_fleet fl;
	assert_ok(store_telemetry_fleet(f->s, 0, 20, &fl));
	assert_int_equal(fl.reporting, 0);
	assert_int_equal(fl.battery_pct_min, -1);
	assert_int_equal(fl.storage_free_min, -1);
	const char *vins[] = {"VIN1", "VIN2", "VIN3", "VIN4"};
	for (int i = 0; i < 4; i++) {
		sf_add_vehicle(f->s, vins[i], NOW);
		store_telemetry t = mk(vins[i], NOW, NOW + i * 1000, 10 + 20 * i); /* 10 30 50 70 */
		t.storage_free = 500 + i;
		if (i >= 2) { /* VIN3, VIN4 drive */
			t.parked = false;
			t.ignition_on = true;
			t.speed_dkmh = 300;
		}
		assert_ok(store_telemetry_add(f->s, &t, 5, 0, &r));
	}
	assert_ok(store_telemetry_fleet(f->s, NOW, 20, &fl));
	assert_int_equal(fl.reporting, 4);
	assert_int_equal(fl.parked, 2);
	assert_int_equal(fl.moving, 2);
	assert_int_equal(fl.ignition_on, 2);
	assert_int_equal(fl.battery_low, 1);
	assert_int_equal(fl.battery_pct_min, 10);
	assert_int_equal(fl.storage_free_min, 500);
	/* only the vehicles that reported since: VIN3 and VIN4 */
	assert_ok(store_telemetry_fleet(f->s, NOW + 2000, 60, &fl));
	assert_int_equal(fl.reporting, 2);
	assert_int_equal(fl.parked, 0);
	assert_int_equal(fl.battery_low, 1);
	assert_int_equal(fl.battery_pct_min, 50);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Figures at 10,000 vehicles (printed, no timed assertion): a sample stored in its own
 * transaction (the control plane's case, history full), and the /metrics aggregate. */
static void test_store_10000(void **state)
{
	sf_fixture *f = *state;
	store_tele_result r;
	char vin[32];
	assert_ok(store_begin(f->s));
	for (int i = 0; i < 10000; i++) {
		snprintf(vin, sizeof(vin), "WTELE%05d", i);
		sf_add_vehicle(f->s, vin, NOW);
		store_telemetry t = mk(vin, NOW, NOW, i % 100);
		assert_ok(store_telemetry_add(f->s, &t, 3, 0, &r));
	}
	assert_ok(store_commit(f->s));
	double t0 = now_s();
	for (int i = 1; i <= 1000; i++) {
		snprintf(vin, sizeof(vin), "WTELE%05d", i % 10);
		store_telemetry t = mk(vin, NOW + i, NOW + i, 50);
		assert_ok(store_telemetry_add(f->s, &t, 3, 0, &r));
		assert_int_equal(r, STORE_TELE_STORED);
	}
	double t1 = now_s();
	store_tele_fleet fl;
	assert_ok(store_telemetry_fleet(f->s, NOW, 20, &fl));
	double t2 = now_s();
	assert_int_equal(fl.reporting, 10000);
	assert_int_equal(fl.battery_low, 2000 - 10); /* 0..19 of each 100; 10 of them now at 50 */
	printf("     telemetry at 10000 vehicles (%s): a sample stored %.2f ms; /metrics "
	       "aggregate %.1f ms\n",
	       sf_backend_name(), (t1 - t0), (t2 - t1) * 1e3);
}

/* The control plane's handler: refusals counted and without effect, the gate in front of
 * the store's rate limit. */
static void test_handler(void **state)
{
	sf_fixture *f = *state;
	static tele_state ts; /* large: not on the stack */
	srv_options o = {.telemetry_history = 2, .telemetry_min_interval_ms = 1000};
	char text[2048];
	msg_in m;
	store_telemetry last;
	bool found = false;
	memset(&ts, 0, sizeof(ts));
	sf_add_vehicle(f->s, "VIN123", NOW);
	sample_text(text, sizeof(text), NULL, NULL, NULL, NULL);
	assert_ok(msg_parse(TOPIC, text, strlen(text), &m));
	tele_on_message(f->s, &o, &m, NOW, &ts);
	assert_int_equal(atomic_load(&ts.n.stored), 1);
	/* the same sample 10 ms later: the gate drops it; 2 s later: the store finds it stale */
	tele_on_message(f->s, &o, &m, NOW + 10, &ts);
	assert_int_equal(atomic_load(&ts.n.rate_limited), 1);
	tele_on_message(f->s, &o, &m, NOW + 2000, &ts);
	assert_int_equal(atomic_load(&ts.n.stale), 1);
	msg_in_clear(&m);
	/* an invalid one is counted as such, whenever it comes */
	sample_text(text, sizeof(text), "\"battery\":{\"soc_pct\":101,\"voltage_v\":12}", NULL,
	            NULL, NULL);
	assert_ok(msg_parse(TOPIC, text, strlen(text), &m));
	tele_on_message(f->s, &o, &m, NOW + 20, &ts);
	assert_int_equal(atomic_load(&ts.n.invalid), 1);
	msg_in_clear(&m);
	assert_ok(store_telemetry_latest(f->s, "VIN123", &last, &found));
	assert_true(found);
	assert_int_equal(last.seq, 1);
	assert_int_equal(last.received_ms, NOW);
	assert_int_equal(last.battery_pct, 87);
	/* a vehicle the gate does not know (another instance stored its last sample): the
	 * store's rate limit refuses it */
	memset(&ts.gate, 0, sizeof(ts.gate));
	sample_text(text, sizeof(text), NULL, NULL, NULL, NULL);
	char *ms = strstr(text, ".500Z");
	assert_non_null(ms);
	ms[1] = '9'; /* .900: newer than the stored sample */
	assert_ok(msg_parse(TOPIC, text, strlen(text), &m));
	tele_on_message(f->s, &o, &m, NOW + 500, &ts);
	assert_int_equal(atomic_load(&ts.n.rate_limited), 2);
	tele_on_message(f->s, &o, &m, NOW + 1500, &ts);
	assert_int_equal(atomic_load(&ts.n.stored), 2);
	msg_in_clear(&m);
}

int main(void)
{
	if (!sf_init("telemetry", 20000, PQ_LOG_WARN))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_envelope),
	    cmocka_unit_test(test_agent_sample),
	    cmocka_unit_test_setup_teardown(test_store_history, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_store_fleet, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_handler, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_store_10000, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
