/* test_diag.c: remote diagnostics: the store (store/diag.h) against SQLite or PostgreSQL
 * ($PQOTA_TEST_STORE, as test_store), the diag_response check and the control plane's
 * send / answer path (server/diag.h) over a real store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/time.h"
#include "core/log.h"
#include "server/diag.h"
#include "server/msg.h"
#include "store/diag.h"
#include "store/store.h"
#include "vehicle/uds.h"
#include "store_fixture.h"
#include "testutil.h"

#define T0 1700000000000LL

/* ---- helpers ---------------------------------------------------------------------------- */

static void add_vehicle(store *s, const char *vin, bool online)
{
	store_vehicle v = {0};
	snprintf(v.vin, sizeof(v.vin), "%s", vin);
	snprintf(v.model, sizeof(v.model), "suv");
	v.created_ms = T0;
	assert_ok(store_vehicle_insert(s, &v));
	if (online)
		assert_ok(store_vehicle_set_online(s, vin, true, T0, 1));
}

/* A batch of n rows "<batch>-<i>" for vins[i], created at `at`, expiring after ttl. */
/* A batch of one request `params` per vehicle (add_batch: 22F190). */
static void add_batch_params(store *s, const char *batch, const char *const *vins, size_t n,
                             int64_t at, int64_t ttl, const char *params)
{
	store_diag *rows = calloc(n, sizeof(*rows));
	assert_non_null(rows);
	for (size_t i = 0; i < n; i++) {
		snprintf(rows[i].id, sizeof(rows[i].id), "%s-%zu", batch, i);
		snprintf(rows[i].batch_id, sizeof(rows[i].batch_id), "%s", batch);
		snprintf(rows[i].vin, sizeof(rows[i].vin), "%s", vins[i]);
		snprintf(rows[i].ecu_id, sizeof(rows[i].ecu_id), "ECU_011");
		snprintf(rows[i].kind, sizeof(rows[i].kind), "uds");
		rows[i].params = (char *)params; /* store_diag_insert only reads it */
		snprintf(rows[i].requested_by, sizeof(rows[i].requested_by), "apikey:ops");
		rows[i].created_ms = at;
		rows[i].expires_ms = at + ttl;
	}
	assert_ok(store_diag_insert(s, rows, n));
	free(rows);
}

static void add_batch(store *s, const char *batch, const char *const *vins, size_t n, int64_t at,
                      int64_t ttl)
{
	add_batch_params(s, batch, vins, n, at, ttl,
	                 "{\"request\":\"22F190\",\"timeout_ms\":10000}");
}

typedef struct {
	char vin[8][STORE_VIN_MAX + 1];
	char status[8][16];
	char payload[8][512];
	int n;
} seen_rows;

static void expired_key(const store_diag_key *k, void *user)
{
	store_diag_key *out = user;
	*out = *k;
}

static int collect(const store_diag *d, void *user)
{
	seen_rows *r = user;
	assert_true(r->n < 8);
	snprintf(r->vin[r->n], sizeof(r->vin[0]), "%s", d->vin);
	snprintf(r->status[r->n], sizeof(r->status[0]), "%s", store_diag_status_name(d->status));
	snprintf(r->payload[r->n], sizeof(r->payload[0]), "%s", d->payload ? d->payload : "");
	r->n++;
	return PQ_OK;
}

/* ---- store ------------------------------------------------------------------------------ */

static void test_store_lifecycle(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	static const char *const vins[] = {"VIN3", "VIN1", "VIN2"};
	for (int i = 0; i < 3; i++)
		add_vehicle(s, vins[i], true);
	add_batch(s, "b1", vins, 3, T0, 10000);

	store_diag_batch b;
	assert_ok(store_diag_batch_get(s, "b1", &b));
	assert_int_equal(b.targets, 3);
	assert_int_equal(b.counts[STORE_DIAG_ST_PENDING], 3);
	assert_string_equal(b.ecu_id, "ECU_011");
	assert_string_equal(b.kind, "uds");
	assert_non_null(strstr(b.params, "22F190"));
	assert_int_equal(b.created_ms, T0);
	assert_int_equal(b.expires_ms, T0 + 10000);
	store_diag_batch_clear(&b);

	/* pending -> sent, compare-and-set */
	bool changed = false;
	assert_ok(
	    store_diag_mark(s, "b1-0", STORE_DIAG_PENDING, STORE_DIAG_SENT, T0 + 5, &changed));
	assert_true(changed);
	assert_ok(
	    store_diag_mark(s, "b1-0", STORE_DIAG_PENDING, STORE_DIAG_SENT, T0 + 6, &changed));
	assert_false(changed);
	assert_rc(store_diag_mark(s, "b1-0", STORE_DIAG_SENT, STORE_DIAG_DONE, T0, &changed),
	          PQ_ERR_INVAL);
	store_diag d;
	assert_ok(store_diag_get(s, "b1-0", &d));
	assert_int_equal(d.state, STORE_DIAG_SENT);
	assert_int_equal(d.status, STORE_DIAG_ST_SENT);
	assert_int_equal(d.sent_ms, T0 + 5);
	assert_null(d.payload);
	store_diag_clear(&d);

	/* answers: positive (sent), negative (still pending); the wrong VIN is not found */
	bool stored = false;
	assert_rc(
	    store_diag_result(s, "b1-0", "VIN1", STORE_DIAG_ST_POSITIVE, "{}", T0 + 10, &stored),
	    PQ_ERR_NOTFOUND);
	assert_false(stored);
	assert_ok(store_diag_result(s, "b1-0", "VIN3", STORE_DIAG_ST_POSITIVE,
	                            "{\"response\":\"62F190574D57\",\"elapsed_ms\":12}", T0 + 10,
	                            &stored));
	assert_true(stored);
	assert_ok(store_diag_result(s, "b1-1", "VIN1", STORE_DIAG_ST_NEGATIVE,
	                            "{\"response\":\"7F2231\",\"nrc\":49,"
	                            "\"nrc_name\":\"requestOutOfRange\"}",
	                            T0 + 11, &stored));
	assert_true(stored);
	/* a second answer to a finished request is not stored */
	assert_ok(
	    store_diag_result(s, "b1-0", "VIN3", STORE_DIAG_ST_NEGATIVE, "{}", T0 + 12, &stored));
	assert_false(stored);
	/* not an answer status; bad JSON */
	assert_rc(store_diag_result(s, "b1-2", "VIN2", STORE_DIAG_ST_SENT, NULL, T0, &stored),
	          PQ_ERR_INVAL);
	assert_rc(store_diag_result(s, "b1-2", "VIN2", STORE_DIAG_ST_ERROR, "{nope", T0, &stored),
	          PQ_ERR_INVAL);

	/* nothing is overdue before expiry; the last one expires after */
	int64_t expired = -1;
	assert_ok(store_diag_expire(s, T0 + 10000, 100, &expired));
	assert_int_equal(expired, 0);
	store_diag_key key = {0};
	assert_ok(store_diag_expire_each(s, T0 + 10001, 100, expired_key, &key, &expired));
	assert_int_equal(expired, 1);
	/* the expired request's keys, for its live event */
	assert_string_equal(key.id, "b1-2");
	assert_string_equal(key.batch_id, "b1");
	assert_string_equal(key.vin, "VIN2");
	assert_string_equal(key.ecu_id, "ECU_011");
	assert_ok(store_diag_expire(s, T0 + 20000, 100, &expired));
	assert_int_equal(expired, 0);
	/* an answer after expiry is ignored */
	assert_ok(store_diag_result(s, "b1-2", "VIN2", STORE_DIAG_ST_POSITIVE, "{}", T0 + 10002,
	                            &stored));
	assert_false(stored);
	assert_ok(store_diag_get(s, "b1-2", &d));
	assert_int_equal(d.state, STORE_DIAG_EXPIRED);
	assert_int_equal(d.status, STORE_DIAG_ST_TIMEOUT);
	assert_int_equal(d.received_ms, T0 + 10001);
	assert_non_null(strstr(d.payload, "expired"));
	store_diag_clear(&d);

	assert_ok(store_diag_batch_get(s, "b1", &b));
	assert_int_equal(b.counts[STORE_DIAG_ST_POSITIVE], 1);
	assert_int_equal(b.counts[STORE_DIAG_ST_NEGATIVE], 1);
	assert_int_equal(b.counts[STORE_DIAG_ST_TIMEOUT], 1);
	assert_int_equal(b.counts[STORE_DIAG_ST_PENDING] + b.counts[STORE_DIAG_ST_SENT] +
	                     b.counts[STORE_DIAG_ST_ERROR],
	                 0);
	store_diag_batch_clear(&b);

	/* per-vehicle rows in VIN order, paged */
	seen_rows r = {0};
	int64_t total = 0;
	store_page pg = {.limit = 2, .offset = 0};
	assert_ok(store_diag_list_batch(s, "b1", &pg, collect, &r, &total));
	assert_int_equal(total, 3);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.vin[0], "VIN1");
	assert_string_equal(r.status[0], "negative");
	assert_string_equal(r.vin[1], "VIN2");
	assert_string_equal(r.status[1], "timeout");
	pg.offset = 2;
	assert_ok(store_diag_list_batch(s, "b1", &pg, collect, &r, NULL));
	assert_int_equal(r.n, 3);
	assert_string_equal(r.vin[2], "VIN3");
	assert_string_equal(r.status[2], "positive");
	assert_non_null(strstr(r.payload[2], "62F190574D57"));

	/* aggregate */
	store_diag_agg a;
	assert_ok(store_diag_aggregate(s, "b1", &a));
	assert_int_equal(a.nnrc, 1);
	assert_int_equal(a.nrc[0].nrc, 0x31);
	assert_int_equal(a.nrc[0].count, 1);
	assert_string_equal(a.nrc[0].name, "requestOutOfRange");
	assert_int_equal(a.ntop, 1);
	assert_string_equal(a.top[0].response, "62F190574D57");
	assert_int_equal(a.top[0].count, 1);
	assert_int_equal(a.distinct_responses, 1);
	store_diag_agg_clear(&a);

	/* failure of an open row; not of a finished one */
	add_batch(s, "b2", vins, 1, T0 + 50, 5000);
	assert_ok(store_diag_fail(s, "b2-0", "MQTT is not configured", T0 + 60, &changed));
	assert_true(changed);
	assert_ok(store_diag_fail(s, "b2-0", "again", T0 + 61, &changed));
	assert_false(changed);
	assert_ok(store_diag_get(s, "b2-0", &d));
	assert_int_equal(d.state, STORE_DIAG_FAILED);
	assert_int_equal(d.status, STORE_DIAG_ST_ERROR);
	assert_non_null(strstr(d.payload, "MQTT is not configured"));
	store_diag_clear(&d);

	/* unknown ids, duplicate ids, bounds */
	assert_rc(store_diag_get(s, "nope", &d), PQ_ERR_NOTFOUND);
	assert_rc(store_diag_batch_get(s, "nope", &b), PQ_ERR_NOTFOUND);
	assert_rc(store_diag_result(s, "nope", "VIN1", STORE_DIAG_ST_ERROR, NULL, T0, &stored),
	          PQ_ERR_NOTFOUND);
	store_diag dup = {0};
	snprintf(dup.id, sizeof(dup.id), "b1-0");
	snprintf(dup.batch_id, sizeof(dup.batch_id), "b3");
	snprintf(dup.vin, sizeof(dup.vin), "VIN1");
	snprintf(dup.ecu_id, sizeof(dup.ecu_id), "ECU_011");
	snprintf(dup.kind, sizeof(dup.kind), "uds");
	dup.created_ms = dup.expires_ms = T0;
	assert_rc(store_diag_insert(s, &dup, 1), PQ_ERR_EXISTS);
	assert_rc(store_diag_insert(s, &dup, 0), PQ_ERR_INVAL);
	assert_rc(store_diag_insert(s, &dup, STORE_DIAG_TARGETS_MAX + 1), PQ_ERR_INVAL);
	snprintf(dup.id, sizeof(dup.id), "b3-0");
	dup.params = "{not json";
	assert_rc(store_diag_insert(s, &dup, 1), PQ_ERR_INVAL);

	/* two batches (b3 was refused) */
	int64_t nb = 0;
	assert_ok(store_diag_batch_list(s, NULL, NULL, NULL, &nb));
	assert_int_equal(nb, 2);
}

typedef struct {
	char ids[4][STORE_ID_MAX + 1];
	int64_t targets[4];
	int64_t errors[4];
	int n;
} batch_seen;

static int batch_cb(const store_diag_batch *b, void *user)
{
	batch_seen *x = user;
	assert_true(x->n < 4);
	snprintf(x->ids[x->n], sizeof(x->ids[0]), "%s", b->id);
	x->targets[x->n] = b->targets;
	x->errors[x->n] = b->counts[STORE_DIAG_ST_ERROR];
	x->n++;
	return PQ_OK;
}

static void test_store_batch_list(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	static const char *const vins[] = {"VIN1", "VIN2"};
	add_vehicle(s, "VIN1", false);
	add_vehicle(s, "VIN2", false);
	add_batch(s, "older", vins, 2, T0, 1000);
	add_batch(s, "newer", vins, 1, T0 + 100, 1000);
	assert_ok(store_diag_fail(s, "newer-0", "x", T0 + 101, NULL));
	batch_seen x = {0};
	int64_t total = 0;
	store_page pg = {0};
	assert_ok(store_diag_batch_list(s, &pg, batch_cb, &x, &total));
	assert_int_equal(total, 2);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.ids[0], "newer");
	assert_int_equal(x.targets[0], 1);
	assert_int_equal(x.errors[0], 1);
	assert_string_equal(x.ids[1], "older");
	assert_int_equal(x.targets[1], 2);
	assert_int_equal(x.errors[1], 0);
	pg.limit = 1;
	pg.offset = 1;
	x.n = 0;
	assert_ok(store_diag_batch_list(s, &pg, batch_cb, &x, NULL));
	assert_int_equal(x.n, 1);
	assert_string_equal(x.ids[0], "older");
}

static void test_store_due(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	static const char *const vins[] = {"ON1", "OFF1", "ON2"};
	add_vehicle(s, "ON1", true);
	add_vehicle(s, "OFF1", false);
	add_vehicle(s, "ON2", true);
	add_batch(s, "b", vins, 3, T0, 10000);
	/* ON2's is sent already */
	assert_ok(store_diag_mark(s, "b-2", STORE_DIAG_PENDING, STORE_DIAG_SENT, T0, NULL));
	seen_rows r = {0};
	assert_ok(store_diag_due(s, NULL, T0 + 1, 100, collect, &r));
	assert_int_equal(r.n, 1);
	assert_string_equal(r.vin[0], "ON1");
	/* one vehicle's (waking up): online or not */
	r.n = 0;
	assert_ok(store_diag_due(s, "OFF1", T0 + 1, 100, collect, &r));
	assert_int_equal(r.n, 1);
	assert_string_equal(r.vin[0], "OFF1");
	/* expired ones are not due */
	r.n = 0;
	assert_ok(store_diag_due(s, NULL, T0 + 10001, 100, collect, &r));
	assert_ok(store_diag_due(s, "OFF1", T0 + 10001, 100, collect, &r));
	assert_int_equal(r.n, 0);
	assert_rc(store_diag_due(s, NULL, T0, 0, collect, &r), PQ_ERR_INVAL);
}

static void test_store_aggregate_top(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	/* 15 distinct responses: response i given by (i % 5) + 1 vehicles; 3 NRCs */
	char vin_buf[60][16];
	const char *vins[60];
	size_t n = 0;
	for (int i = 0; i < 60; i++) {
		snprintf(vin_buf[i], sizeof(vin_buf[i]), "V%02d", i);
		vins[i] = vin_buf[i];
		add_vehicle(s, vins[i], true);
	}
	n = 60;
	add_batch(s, "agg", vins, n, T0, 100000);
	int v = 0;
	for (int i = 0; i < 15; i++)
		for (int c = 0; c < i % 5 + 1; c++, v++) {
			char id[32], payload[96];
			bool stored = false;
			snprintf(id, sizeof(id), "agg-%d", v);
			snprintf(payload, sizeof(payload), "{\"response\":\"62F1%02X\"}", i);
			assert_ok(store_diag_result(s, id, vins[v], STORE_DIAG_ST_POSITIVE, payload,
			                            T0 + 1, &stored));
			assert_true(stored);
		}
	assert_int_equal(v, 45);
	static const int nrcs[] = {0x31, 0x31, 0x22, 0x7F, 0x31};
	for (int i = 0; i < 5; i++, v++) {
		char id[32], payload[96];
		bool stored = false;
		snprintf(id, sizeof(id), "agg-%d", v);
		snprintf(payload, sizeof(payload), "{\"response\":\"7F22%02X\",\"nrc\":%d}",
		         nrcs[i], nrcs[i]);
		assert_ok(store_diag_result(s, id, vins[v], STORE_DIAG_ST_NEGATIVE, payload, T0 + 1,
		                            &stored));
	}
	store_diag_agg a;
	assert_ok(store_diag_aggregate(s, "agg", &a));
	assert_int_equal(a.distinct_responses, 15);
	assert_int_equal(a.ntop, STORE_DIAG_TOP_MAX);
	/* counts 5 (i = 4, 9, 14), then 4 (3, 8, 13), then 3 (2, 7, 12), then 2 (1): ties by
	 * response text */
	static const char *const want[] = {"62F104", "62F109", "62F10E", "62F103", "62F108",
	                                   "62F10D", "62F102", "62F107", "62F10C", "62F101"};
	static const int64_t wantn[] = {5, 5, 5, 4, 4, 4, 3, 3, 3, 2};
	for (int i = 0; i < STORE_DIAG_TOP_MAX; i++) {
		assert_string_equal(a.top[i].response, want[i]);
		assert_int_equal(a.top[i].count, wantn[i]);
	}
	assert_int_equal(a.nnrc, 3);
	assert_int_equal(a.nrc[0].nrc, 0x22);
	assert_int_equal(a.nrc[0].count, 1);
	assert_int_equal(a.nrc[1].nrc, 0x31);
	assert_int_equal(a.nrc[1].count, 3);
	assert_int_equal(a.nrc[2].nrc, 0x7F);
	assert_int_equal(a.nrc[2].count, 1);
	store_diag_agg_clear(&a);
	store_diag_batch b;
	assert_ok(store_diag_batch_get(s, "agg", &b));
	assert_int_equal(b.counts[STORE_DIAG_ST_POSITIVE], 45);
	assert_int_equal(b.counts[STORE_DIAG_ST_NEGATIVE], 5);
	assert_int_equal(b.counts[STORE_DIAG_ST_PENDING], 10);
	store_diag_batch_clear(&b);
}

/* ---- diag_response ---------------------------------------------------------------------- */

static int parse_body(const char *vin, const char *json, diag_response *r)
{
	char topic[96];
	msg_in m;
	snprintf(topic, sizeof(topic), "oem/%s/diag/response", vin);
	int rc = msg_parse(topic, json, strlen(json), &m);
	if (rc == PQ_OK) {
		rc = diag_response_parse(&m, r);
		msg_in_clear(&m);
	}
	return rc;
}

#define ENV                                                                                        \
	"\"msg_type\":\"diag_response\",\"message_id\":\"m1\",\"timestamp\":"                      \
	"\"2026-01-01T00:00:00.000Z\",\"vin\":\"VIN1\",\"correlation_id\":\"c1\","                 \
	"\"request_id\":\"0b1e-2f\",\"ecu_id\":\"ECU_011\""

static void test_response_parse(void **state)
{
	(void)state;
	diag_response r;
	assert_ok(parse_body("VIN1",
	                     "{" ENV ",\"status\":\"positive\",\"response\":\"62f190574d\","
	                     "\"elapsed_ms\":12}",
	                     &r));
	assert_int_equal(r.status, STORE_DIAG_ST_POSITIVE);
	assert_string_equal(r.request_id, "0b1e-2f");
	assert_string_equal(r.ecu_id, "ECU_011");
	assert_int_equal(r.elapsed_ms, 12);
	assert_int_equal(r.nrc, -1);
	/* stored upper-case, with the message id */
	assert_string_equal(json_string_value(json_object_get(r.payload, "response")),
	                    "62F190574D");
	assert_string_equal(json_string_value(json_object_get(r.payload, "message_id")), "m1");
	diag_response_clear(&r);

	assert_ok(parse_body("VIN1",
	                     "{" ENV ",\"status\":\"negative\",\"response\":\"7F2231\",\"nrc\":49,"
	                     "\"nrc_name\":\"requestOutOfRange\"}",
	                     &r));
	assert_int_equal(r.status, STORE_DIAG_ST_NEGATIVE);
	assert_int_equal(r.nrc, 0x31);
	assert_string_equal(json_string_value(json_object_get(r.payload, "nrc_name")),
	                    "requestOutOfRange");
	diag_response_clear(&r);

	assert_ok(
	    parse_body("VIN1", "{" ENV ",\"status\":\"timeout\",\"error\":\"no answer\"}", &r));
	assert_int_equal(r.status, STORE_DIAG_ST_TIMEOUT);
	assert_string_equal(json_string_value(json_object_get(r.payload, "error")), "no answer");
	diag_response_clear(&r);
	assert_ok(parse_body("VIN1",
	                     "{" ENV ",\"status\":\"error\",\"error\":\"unknown ECU\","
	                     "\"response\":null,\"nrc\":null}",
	                     &r));
	assert_int_equal(r.status, STORE_DIAG_ST_ERROR);
	diag_response_clear(&r);

	static const char *const bad[] = {
	    /* status */
	    "{" ENV "}",
	    "{" ENV ",\"status\":\"pending\"}",
	    "{" ENV ",\"status\":\"maybe\"}",
	    "{" ENV ",\"status\":1}",
	    /* positive: no response, odd, non-hex, 7F, nrc given, too long */
	    "{" ENV ",\"status\":\"positive\"}",
	    "{" ENV ",\"status\":\"positive\",\"response\":\"62F\"}",
	    "{" ENV ",\"status\":\"positive\",\"response\":\"62XX\"}",
	    "{" ENV ",\"status\":\"positive\",\"response\":\"\"}",
	    "{" ENV ",\"status\":\"positive\",\"response\":\"7F2231\"}",
	    "{" ENV ",\"status\":\"positive\",\"response\":\"62F190\",\"nrc\":1}",
	    /* negative: nrc missing or different, not 7F, too long */
	    "{" ENV ",\"status\":\"negative\",\"response\":\"7F2231\"}",
	    "{" ENV ",\"status\":\"negative\",\"response\":\"7F2231\",\"nrc\":34}",
	    "{" ENV ",\"status\":\"negative\",\"response\":\"622231\",\"nrc\":49}",
	    "{" ENV ",\"status\":\"negative\",\"response\":\"7F223100\",\"nrc\":49}",
	    "{" ENV ",\"status\":\"negative\",\"response\":\"7F2231\",\"nrc\":\"49\"}",
	    /* error with a response; types; bounds */
	    "{" ENV ",\"status\":\"error\",\"response\":\"62F190\"}",
	    "{" ENV ",\"status\":\"error\",\"error\":5}",
	    "{" ENV ",\"status\":\"error\",\"error\":\"line\\nbreak\"}",
	    "{" ENV ",\"status\":\"timeout\",\"elapsed_ms\":-1}",
	    "{" ENV ",\"status\":\"timeout\",\"elapsed_ms\":1.5}",
	    "{" ENV ",\"status\":\"negative\",\"response\":\"7F2231\",\"nrc\":49,"
	    "\"nrc_name\":\"0123456789012345678901234567890123456789012345678\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&r, 0, sizeof(r));
		if (parse_body("VIN1", bad[i], &r) == PQ_OK)
			fail_msg("accepted: %s", bad[i]);
		assert_null(r.payload);
	}
	/* request_id and ecu_id shapes */
	assert_int_not_equal(parse_body("VIN1",
	                                "{\"msg_type\":\"diag_response\",\"message_id\":\"m1\","
	                                "\"timestamp\":\"2026-01-01T00:00:00Z\",\"vin\":\"VIN1\","
	                                "\"request_id\":\"not/uuid\",\"ecu_id\":\"ECU_011\","
	                                "\"status\":\"error\"}",
	                                &r),
	                     PQ_OK);
	assert_int_not_equal(parse_body("VIN1",
	                                "{\"msg_type\":\"diag_response\",\"message_id\":\"m1\","
	                                "\"timestamp\":\"2026-01-01T00:00:00Z\",\"vin\":\"VIN1\","
	                                "\"request_id\":\"ab\",\"ecu_id\":\"ECU 011\","
	                                "\"status\":\"error\"}",
	                                &r),
	                     PQ_OK);
	/* a long, valid response (4095 bytes) passes, 4096 does not */
	size_t cap = 2 * 4096 + 512;
	char *big = malloc(cap), *hex = malloc(2 * 4096 + 1);
	assert_non_null(big);
	assert_non_null(hex);
	memset(hex, 'A', 2 * 4096);
	hex[0] = '6';
	hex[1] = '2';
	hex[2 * 4095] = '\0';
	snprintf(big, cap, "{" ENV ",\"status\":\"positive\",\"response\":\"%s\"}", hex);
	assert_ok(parse_body("VIN1", big, &r));
	diag_response_clear(&r);
	hex[2 * 4095] = 'A';
	hex[2 * 4096] = '\0';
	snprintf(big, cap, "{" ENV ",\"status\":\"positive\",\"response\":\"%s\"}", hex);
	assert_int_equal(parse_body("VIN1", big, &r), PQ_ERR_RANGE);
	free(big);
	free(hex);

	assert_true(diag_hex_valid("22f190", 4095));
	assert_false(diag_hex_valid("22f19", 4095));
	assert_false(diag_hex_valid("", 4095));
	assert_false(diag_hex_valid("2g", 4095));
	assert_false(diag_hex_valid("2222", 1));
}

/* ---- control plane path ------------------------------------------------------------------ */

typedef struct {
	int calls;
	int fail_after; /* publishes that succeed before failures start (-1: never fail) */
	char topic[4][128];
	json_t *msg[4];
} pubcap;

static int capture(void *user, const char *topic, const char *json, size_t len, int qos,
                   bool retain)
{
	pubcap *p = user;
	assert_int_equal(qos, 1);
	assert_false(retain);
	if (p->fail_after >= 0 && p->calls >= p->fail_after)
		return pq_err_set(PQ_ERR_IO, "broker gone");
	assert_true(p->calls < 4);
	snprintf(p->topic[p->calls], sizeof(p->topic[0]), "%s", topic);
	p->msg[p->calls] = json_loadb(json, len, 0, NULL);
	assert_non_null(p->msg[p->calls]);
	p->calls++;
	return PQ_OK;
}

static void pubcap_clear(pubcap *p)
{
	for (int i = 0; i < 4; i++)
		json_decref(p->msg[i]);
	memset(p, 0, sizeof(*p));
	p->fail_after = -1;
}

static int answer(store *s, const char *vin, const char *body, int64_t now, bool *stored,
                  store_diag_status *st)
{
	char topic[96];
	msg_in m;
	snprintf(topic, sizeof(topic), "oem/%s/diag/response", vin);
	int rc = msg_parse(topic, body, strlen(body), &m);
	assert_ok(rc);
	rc = diag_on_response(s, &m, now, st, stored);
	msg_in_clear(&m);
	return rc;
}

static void test_send_and_answer(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	static const char *const vins[] = {"VIN1", "VIN2"};
	int64_t now = pq_real_ms();
	add_vehicle(s, "VIN1", true);
	add_vehicle(s, "VIN2", true);
	add_batch(s, "9a8b", vins, 2, now, 8000);

	/* the broker fails on the second publish: the first is sent, the second back to
	 * pending and the failure reported */
	pubcap p = {.fail_after = 1};
	int64_t sent = 0;
	assert_rc(diag_send_due(s, NULL, now, capture, &p, &sent), PQ_ERR_IO);
	assert_int_equal(sent, 1);
	assert_int_equal(p.calls, 1);
	assert_string_equal(p.topic[0], "oem/VIN1/diag/request");
	json_t *m = p.msg[0];
	assert_string_equal(json_string_value(json_object_get(m, "msg_type")), "diag_request");
	assert_string_equal(json_string_value(json_object_get(m, "vin")), "VIN1");
	assert_string_equal(json_string_value(json_object_get(m, "request_id")), "9a8b-0");
	assert_string_equal(json_string_value(json_object_get(m, "ecu_id")), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(m, "request")), "22F190");
	json_int_t tmo = json_integer_value(json_object_get(m, "timeout_ms"));
	assert_true(tmo > 0 && tmo <= 8000 - 500);
	assert_non_null(json_string_value(json_object_get(m, "message_id")));
	assert_non_null(json_string_value(json_object_get(m, "timestamp")));
	store_diag d;
	assert_ok(store_diag_get(s, "9a8b-0", &d));
	assert_int_equal(d.state, STORE_DIAG_SENT);
	store_diag_clear(&d);
	assert_ok(store_diag_get(s, "9a8b-1", &d));
	assert_int_equal(d.state, STORE_DIAG_PENDING);
	store_diag_clear(&d);
	pubcap_clear(&p);

	/* the next round sends only the remaining one */
	p.fail_after = -1;
	assert_ok(diag_send_due(s, NULL, now + 10, capture, &p, &sent));
	assert_int_equal(sent, 1);
	assert_string_equal(p.topic[0], "oem/VIN2/diag/request");
	assert_ok(diag_send_due(s, NULL, now + 20, capture, &p, &sent));
	assert_int_equal(sent, 0);
	pubcap_clear(&p);

	/* answers */
	bool stored = false;
	store_diag_status st;
	assert_ok(answer(s, "VIN1",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r1\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN1\",\"request_id\":\"9a8b-0\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"positive\",\"response\":"
	                 "\"62F19057\",\"elapsed_ms\":7}",
	                 now + 30, &stored, &st));
	assert_true(stored);
	assert_int_equal(st, STORE_DIAG_ST_POSITIVE);
	assert_ok(store_diag_get(s, "9a8b-0", &d));
	assert_int_equal(d.state, STORE_DIAG_DONE);
	assert_non_null(strstr(d.payload, "\"elapsed_ms\":7"));
	store_diag_clear(&d);
	/* VIN2 may not answer VIN1's request, nor name another ECU */
	assert_rc(answer(s, "VIN2",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r2\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN2\",\"request_id\":\"9a8b-0\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"error\"}",
	                 now + 31, &stored, &st),
	          PQ_ERR_NOTFOUND);
	assert_rc(answer(s, "VIN2",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r3\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN2\",\"request_id\":\"9a8b-1\","
	                 "\"ecu_id\":\"ECU_012\",\"status\":\"error\"}",
	                 now + 32, &stored, &st),
	          PQ_ERR_INVAL);
	/* an answer to another service than the request's (22: positive 62, negative 7F 22) */
	assert_rc(answer(s, "VIN2",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r5\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN2\",\"request_id\":\"9a8b-1\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"positive\",\"response\":\"6E01\"}",
	                 now + 32, &stored, &st),
	          PQ_ERR_INVAL);
	assert_rc(answer(s, "VIN2",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r6\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN2\",\"request_id\":\"9a8b-1\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"negative\",\"response\":\"7F2E31\","
	                 "\"nrc\":49}",
	                 now + 32, &stored, &st),
	          PQ_ERR_INVAL);
	assert_ok(answer(s, "VIN2",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r4\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN2\",\"request_id\":\"9a8b-1\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"error\",\"error\":\"unknown ECU\"}",
	                 now + 33, &stored, &st));
	assert_true(stored);
	assert_int_equal(st, STORE_DIAG_ST_ERROR);
	/* idempotent: a redelivery is not stored twice */
	assert_ok(answer(s, "VIN1",
	                 "{\"msg_type\":\"diag_response\",\"message_id\":\"r1\",\"timestamp\":"
	                 "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN1\",\"request_id\":\"9a8b-0\","
	                 "\"ecu_id\":\"ECU_011\",\"status\":\"positive\",\"response\":"
	                 "\"62F19057\"}",
	                 now + 34, &stored, &st));
	assert_false(stored);
	store_diag_batch b;
	assert_ok(store_diag_batch_get(s, "9a8b", &b));
	assert_int_equal(b.counts[STORE_DIAG_ST_POSITIVE], 1);
	assert_int_equal(b.counts[STORE_DIAG_ST_ERROR], 1);
	store_diag_batch_clear(&b);

	/* a request with less than a second left is not sent (it will expire) */
	add_batch(s, "late", vins, 1, now, 900);
	assert_ok(diag_send_due(s, NULL, now, capture, &p, &sent));
	assert_int_equal(sent, 0);
	/* a vehicle waking up gets its own pending requests */
	add_vehicle(s, "VIN3", false);
	static const char *const v3[] = {"VIN3"};
	add_batch(s, "wake", v3, 1, now, 5000);
	assert_ok(diag_send_due(s, NULL, now, capture, &p, &sent));
	assert_int_equal(sent, 0);
	assert_ok(diag_send_due(s, "VIN3", now, capture, &p, &sent));
	assert_int_equal(sent, 1);
	assert_string_equal(p.topic[0], "oem/VIN3/diag/request");
	pubcap_clear(&p);
}

/* "suppressed" is believed only for a request that asks for it: a service with a
 * sub-function (0x10, 0x11, 0x27, 0x28, 0x31, 0x3E, 0x83..0x87) and bit 7 of its second
 * byte set; otherwise the result is an error saying why (22 F1 90: F1 has bit 7 set, but
 * 0x22 has no sub-function). The same rule as the VMG's (uds_suppress_requested). */
static void test_suppressed_rule(void **state)
{
	sf_fixture *f = *state;
	store *s = f->s;
	static const char *const vins[] = {"VIN1"};
	static const struct {
		const char *req;
		bool believed;
		const char *why;
	} cases[] = {
	    {"22F190", false, "service 22 has no sub-function"},
	    {"1903FF", false, "service 19 has no sub-function"},
	    {"1003", false, "bit 7 of its sub-function is clear"},
	    {"3E80", true, NULL},
	    {"1083", true, NULL},
	    {"2781", true, NULL},
	    {"2880", true, NULL},
	    {"8582", true, NULL},
	};
	int64_t now = pq_real_ms();
	add_vehicle(s, "VIN1", true);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char batch[16], id[24], params[96], body[512];
		pubcap p = {.fail_after = -1};
		int64_t sent = 0;
		bool stored = false;
		store_diag_status st = STORE_DIAG_ST_POSITIVE;
		store_diag d;
		snprintf(batch, sizeof(batch), "5b%zu", i);
		snprintf(id, sizeof(id), "%s-0", batch);
		snprintf(params, sizeof(params), "{\"request\":\"%s\",\"timeout_ms\":10000}",
		         cases[i].req);
		add_batch_params(s, batch, vins, 1, now, 8000, params);
		assert_ok(diag_send_due(s, NULL, now, capture, &p, &sent));
		assert_int_equal(sent, 1);
		pubcap_clear(&p);
		snprintf(body, sizeof(body),
		         "{\"msg_type\":\"diag_response\",\"message_id\":\"m%zu\",\"timestamp\":"
		         "\"2026-01-01T00:00:00Z\",\"vin\":\"VIN1\",\"request_id\":\"%s\","
		         "\"ecu_id\":\"ECU_011\",\"status\":\"suppressed\"}",
		         i, id);
		assert_ok(answer(s, "VIN1", body, now + 1, &stored, &st));
		assert_true(stored);
		assert_ok(store_diag_get(s, id, &d));
		assert_int_equal(d.state, STORE_DIAG_DONE);
		if (cases[i].believed) {
			assert_int_equal(st, STORE_DIAG_ST_SUPPRESSED);
			assert_int_equal(d.status, STORE_DIAG_ST_SUPPRESSED);
			assert_null(strstr(d.payload, "\"error\""));
		} else {
			print_message("%s: %s\n", cases[i].req, d.payload);
			assert_int_equal(st, STORE_DIAG_ST_ERROR);
			assert_int_equal(d.status, STORE_DIAG_ST_ERROR);
			assert_non_null(
			    strstr(d.payload, "reported the positive response suppressed"));
			assert_non_null(strstr(d.payload, cases[i].why));
		}
		store_diag_clear(&d);
	}
	/* the rule itself, as the VMG and the ECU simulator apply it */
	assert_false(uds_suppress_requested((const uint8_t *)"\x22\xF1\x90", 3));
	assert_true(uds_suppress_requested((const uint8_t *)"\x87\x81", 2));
	assert_true(uds_suppress_requested((const uint8_t *)"\x28\x83\x01", 3));
	assert_false(uds_suppress_requested((const uint8_t *)"\x2E\xF1\x90", 3));
}

int main(void)
{
	if (!sf_init("diag", 20000, PQ_LOG_ERROR))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_store_lifecycle, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_store_batch_list, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_store_due, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_store_aggregate_top, sf_setup, sf_teardown),
	    cmocka_unit_test(test_response_parse),
	    cmocka_unit_test_setup_teardown(test_send_and_answer, sf_setup, sf_teardown),
	    cmocka_unit_test_setup_teardown(test_suppressed_rule, sf_setup, sf_teardown),
	};
	return cmocka_run_group_tests_name(sf_group_name(), tests, sf_group_setup,
	                                   sf_group_teardown);
}
