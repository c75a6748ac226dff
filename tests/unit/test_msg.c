/* test_msg.c: MQTT message parsing and building (docs/protocol.md): every envelope rule,
 * the seed's wake-up, presence, size and depth bounds, times, topics and builders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/time.h"
#include "server/msg.h"
#include "testutil.h"

#define TS "\"timestamp\":\"2024-05-01T10:20:30.456Z\""
#define ID "\"message_id\":\"6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10\""

/* Parses text on topic, expecting success; the caller clears m. */
static void ok(const char *topic, const char *text, msg_in *m)
{
	int rc = msg_parse(topic, text, strlen(text), m);
	if (rc != PQ_OK)
		fail_msg("%s %s: %d (%s)", topic, text, rc, pq_err_detail());
}

/* Expects msg_parse to fail with want and a detail containing `detail`. */
static void bad(const char *topic, const char *text, int want, const char *detail)
{
	msg_in m;
	memset(&m, 0x5a, sizeof(m));
	int rc = msg_parse(topic, text, strlen(text), &m);
	if (rc != want)
		fail_msg("%s %s: got %d, want %d (%s)", topic, text, rc, want, pq_err_detail());
	if (detail && !strstr(pq_err_detail(), detail))
		fail_msg("%s %s: detail '%s' lacks '%s'", topic, text, pq_err_detail(), detail);
	/* a failed parse leaves nothing to free */
	assert_null(m.root);
	assert_string_equal(m.vin, "");
}

static void test_seed_wake_up(void **state)
{
	(void)state;
	static const char seed[] = "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1700000000,"
	                           "\"vehicle\":{\"vin\":\"VIN123\"},\"vmg_info\":{}}";
	msg_in m;
	ok("oem/VIN123/wake_up", seed, &m);
	assert_int_equal(m.kind, MSG_T_WAKE_UP);
	assert_string_equal(m.vin, "VIN123");
	assert_string_equal(m.msg_type, "vehicle_wake_up");
	assert_int_equal(m.timestamp_ms, 1700000000000LL);
	/* no message_id: sha256 of the payload, so a redelivery has the same id */
	assert_int_equal(strlen(m.message_id), 7 + 64);
	assert_memory_equal(m.message_id, "sha256:", 7);
	char first[80];
	snprintf(first, sizeof(first), "%s", m.message_id);
	assert_non_null(json_object_get(m.root, "vmg_info"));
	msg_in_clear(&m);
	assert_null(m.root);
	msg_in_clear(&m); /* idempotent */
	ok("oem/VIN123/wake_up", seed, &m);
	assert_string_equal(m.message_id, first);
	msg_in_clear(&m);
	/* one byte different, another id */
	ok("oem/VIN123/wake_up",
	   "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1700000001,"
	   "\"vehicle\":{\"vin\":\"VIN123\"},\"vmg_info\":{}}",
	   &m);
	assert_string_not_equal(m.message_id, first);
	msg_in_clear(&m);
	/* a fractional number of seconds */
	ok("oem/VIN123/wake_up",
	   "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1700000000.25,\"vin\":\"VIN123\"}", &m);
	assert_int_equal(m.timestamp_ms, 1700000000250LL);
	msg_in_clear(&m);
	/* the seed's vehicle.vin must match the topic too */
	bad("oem/VIN124/wake_up", seed, PQ_ERR_INVAL, "vehicle.vin");
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1,\"vehicle\":\"VIN123\"}",
	    PQ_ERR_FORMAT, "vehicle");
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1,\"vehicle\":{\"vin\":7}}",
	    PQ_ERR_FORMAT, "vin");
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1,\"vehicle\":{}}", PQ_ERR_FORMAT,
	    "'vin' is missing");
	/* both given: both must match */
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1,\"vin\":\"VIN123\","
	    "\"vehicle\":{\"vin\":\"VIN999\"}}",
	    PQ_ERR_INVAL, "vehicle.vin");
	/* numeric seconds out of range */
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":-1,\"vin\":\"VIN123\"}", PQ_ERR_RANGE,
	    "timestamp");
	bad("oem/VIN123/wake_up",
	    "{\"msg_type\":\"vehicle_wake_up\",\"timestamp\":1e300,\"vin\":\"VIN123\"}",
	    PQ_ERR_RANGE, "timestamp");
}

static void test_full_wake_up(void **state)
{
	(void)state;
	msg_in m;
	ok("oem/WVWZZZ1JZXW000001/wake_up",
	   "{\"msg_type\":\"vehicle_wake_up\"," ID "," TS ",\"vin\":\"WVWZZZ1JZXW000001\","
	   "\"boot_seq\":7,\"vmg_info\":{\"sw_version\":\"2.1.0\"},\"unknown\":[1,{\"x\":null}]}",
	   &m);
	assert_string_equal(m.message_id, "6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10");
	assert_int_equal(m.timestamp_ms, 1714558830456LL);
	assert_string_equal(m.correlation_id, "");
	assert_string_equal(m.campaign_id, "");
	assert_string_equal(m.presence, "");
	assert_int_equal(json_integer_value(json_object_get(m.root, "boot_seq")), 7);
	msg_in_clear(&m);
}

static void test_every_type_on_its_topic(void **state)
{
	(void)state;
	static const struct {
		const char *suffix, *type;
		msg_topic_kind kind;
	} cases[] = {
	    {"vci", "vci_report", MSG_T_VCI},
	    {"response", "ota_campaign_response", MSG_T_RESPONSE},
	    {"response", "ota_readiness_response", MSG_T_RESPONSE},
	    {"response", "command_ack", MSG_T_RESPONSE},
	    {"ota/status", "ota_download_progress", MSG_T_STATUS},
	    {"ota/status", "ota_download_complete", MSG_T_STATUS},
	    {"ota/status", "ota_download_failed", MSG_T_STATUS},
	    {"ota/status", "ota_installation_start", MSG_T_STATUS},
	    {"ota/status", "ota_installation_progress", MSG_T_STATUS},
	    {"ota/status", "ota_installation_complete", MSG_T_STATUS},
	    {"ota/status", "ota_verification_complete", MSG_T_STATUS},
	    {"ota/status", "ota_rollback", MSG_T_STATUS},
	    {"ota/status", "ota_error", MSG_T_STATUS},
	    {"wake_up", "vehicle_wake_up", MSG_T_WAKE_UP},
	    {"diag/result", "anything_else", MSG_T_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char topic[64], text[512];
		msg_in m;
		snprintf(topic, sizeof(topic), "oem/VIN1/%s", cases[i].suffix);
		snprintf(text, sizeof(text),
		         "{\"msg_type\":\"%s\"," ID "," TS ",\"vin\":\"VIN1\",\"campaign_id\":"
		         "\"c-2024-05\",\"correlation_id\":\"req.42:a\"}",
		         cases[i].type);
		ok(topic, text, &m);
		assert_int_equal(m.kind, cases[i].kind);
		assert_string_equal(m.msg_type, cases[i].type);
		assert_string_equal(m.campaign_id, "c-2024-05");
		assert_string_equal(m.correlation_id, "req.42:a");
		msg_in_clear(&m);
		/* each type is refused on every other fixed topic */
		static const char *const others[] = {"wake_up", "vci", "response", "ota/status"};
		for (size_t j = 0; j < 4; j++) {
			if (strcmp(others[j], cases[i].suffix) == 0)
				continue;
			snprintf(topic, sizeof(topic), "oem/VIN1/%s", others[j]);
			bad(topic, text, PQ_ERR_INVAL, "is not a message for the");
		}
	}
}

static void test_presence(void **state)
{
	(void)state;
	msg_in m;
	assert_ok(msg_parse("oem/VIN1/presence", "online", 6, &m));
	assert_int_equal(m.kind, MSG_T_PRESENCE);
	assert_string_equal(m.presence, "online");
	assert_string_equal(m.msg_type, "");
	assert_string_equal(m.message_id, "");
	assert_null(m.root);
	msg_in_clear(&m);
	assert_ok(msg_parse("oem/VIN1/presence", "offline", 7, &m));
	assert_string_equal(m.presence, "offline");
	msg_in_clear(&m);
	bad("oem/VIN1/presence", "Online", PQ_ERR_FORMAT, "presence");
	bad("oem/VIN1/presence", "online\n", PQ_ERR_FORMAT, "presence");
	bad("oem/VIN1/presence", "", PQ_ERR_FORMAT, "presence");
	assert_rc(msg_parse("oem/VIN1/presence", "onlinex", 6 + 0, &m), PQ_OK); /* length counts */
	msg_in_clear(&m);
	assert_rc(msg_parse("oem/VIN1/presence", NULL, 0, &m), PQ_ERR_FORMAT);
}

static void test_topics(void **state)
{
	(void)state;
	const char *j = "{\"msg_type\":\"vehicle_wake_up\"," ID "," TS ",\"vin\":\"VIN1\"}";
	bad("oem/VIN1", j, PQ_ERR_INVAL, "VIN");
	bad("oem/VIN1/", j, PQ_ERR_INVAL, "suffix");
	bad("oem//wake_up", j, PQ_ERR_INVAL, "VIN");
	bad("foo/VIN1/wake_up", j, PQ_ERR_INVAL, "oem/");
	bad("OEM/VIN1/wake_up", j, PQ_ERR_INVAL, "oem/");
	bad("oem/VIN 1/wake_up", j, PQ_ERR_INVAL, "VIN");
	bad("oem/VIN+/wake_up", j, PQ_ERR_INVAL, "VIN");
	bad("oem/VIN.1/wake_up", j, PQ_ERR_INVAL, "VIN");
	bad("oem/ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456/wake_up", j, PQ_ERR_INVAL, "VIN");
	bad(NULL, j, PQ_ERR_INVAL, "topic");
	/* 32 characters is the longest VIN */
	msg_in m;
	ok("oem/ABCDEFGHIJKLMNOPQRSTUVWXYZ012345/wake_up",
	   "{\"msg_type\":\"vehicle_wake_up\"," ID "," TS
	   ",\"vin\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\"}",
	   &m);
	msg_in_clear(&m);
	/* the suffix must be exactly one of the protocol's for the fixed kinds */
	assert_int_equal(msg_kind_of_suffix("ota/status"), MSG_T_STATUS);
	assert_int_equal(msg_kind_of_suffix("ota/status/x"), MSG_T_OTHER);
	assert_int_equal(msg_kind_of_suffix("wake_up "), MSG_T_OTHER);
	assert_string_equal(msg_kind_name(MSG_T_VCI), "vci");
	assert_string_equal(msg_kind_name(MSG_T_OTHER), "other");
	assert_true(msg_vin_valid("a-B_9"));
	assert_false(msg_vin_valid(""));
	assert_false(msg_vin_valid(NULL));
}

static void test_envelope_rules(void **state)
{
	(void)state;
	const char *t = "oem/VIN1/response";
#define R(body) "{\"msg_type\":\"command_ack\"," body "}"
	/* not JSON, not an object */
	bad(t, "", PQ_ERR_FORMAT, "not JSON");
	bad(t, "{", PQ_ERR_FORMAT, "not JSON");
	bad(t, "[1,2]", PQ_ERR_FORMAT, "not a JSON object");
	bad(t, "\"x\"", PQ_ERR_FORMAT, "not JSON");
	bad(t, "{} trailing", PQ_ERR_FORMAT, "not JSON");
	bad(t, "{\"msg_type\":\"command_ack\"} {}", PQ_ERR_FORMAT, "not JSON");
	/* invalid UTF-8 */
	bad(t, "{\"msg_type\":\"command_ack\",\"x\":\"\xff\"}", PQ_ERR_FORMAT, "not JSON");
	/* duplicate keys, including a second vin */
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\",\"vin\":\"VIN2\""), PQ_ERR_FORMAT, "duplicate");
	bad(t, "{\"msg_type\":\"command_ack\",\"msg_type\":\"command_ack\"}", PQ_ERR_FORMAT,
	    "duplicate");
	/* msg_type */
	bad(t, "{" ID "," TS ",\"vin\":\"VIN1\"}", PQ_ERR_FORMAT, "'msg_type' is missing");
	bad(t, "{\"msg_type\":5," ID "," TS ",\"vin\":\"VIN1\"}", PQ_ERR_FORMAT, "msg_type");
	bad(t, "{\"msg_type\":\"Command_Ack\"," ID "," TS ",\"vin\":\"VIN1\"}", PQ_ERR_INVAL,
	    "msg_type");
	bad(t, "{\"msg_type\":\"\"," ID "," TS ",\"vin\":\"VIN1\"}", PQ_ERR_INVAL, "msg_type");
	bad("oem/VIN1/other",
	    "{\"msg_type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," ID "," TS
	    ",\"vin\":\"VIN1\"}",
	    PQ_ERR_RANGE, "msg_type");
	/* vin */
	bad(t, R(ID "," TS), PQ_ERR_FORMAT, "'vin' is missing");
	bad(t, R(ID "," TS ",\"vin\":\"VIN2\""), PQ_ERR_INVAL, "does not match");
	bad(t, R(ID "," TS ",\"vin\":\"vin1\""), PQ_ERR_INVAL, "does not match");
	bad(t, R(ID "," TS ",\"vin\":\"VIN1 \""), PQ_ERR_INVAL, "does not match");
	bad(t, R(ID "," TS ",\"vin\":[\"VIN1\"]"), PQ_ERR_FORMAT, "'vin' must be a string");
	bad(t, R(ID "," TS ",\"vin\":\"VIN1VIN1VIN1VIN1VIN1VIN1VIN1VIN1VIN1\""), PQ_ERR_INVAL,
	    "does not match");
	/* the seed's forms are only for the wake-up */
	bad(t, R(ID "," TS ",\"vehicle\":{\"vin\":\"VIN1\"}"), PQ_ERR_FORMAT, "'vin' is missing");
	bad(t, R(ID ",\"timestamp\":1700000000,\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "ISO-8601");
	bad(t, R(TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "'message_id' is missing");
	/* timestamp */
	bad(t, R(ID ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "'timestamp' is missing");
	bad(t, R(ID ",\"vin\":\"VIN1\",\"timestamp\":null"), PQ_ERR_FORMAT, "timestamp");
	bad(t, R(ID ",\"vin\":\"VIN1\",\"timestamp\":\"2024-05-01T10:20:30.456\""), PQ_ERR_FORMAT,
	    "'Z'");
	bad(t, R(ID ",\"vin\":\"VIN1\",\"timestamp\":\"2024-05-01T10:20:30+02:00\""), PQ_ERR_FORMAT,
	    "'Z'");
	bad(t, R(ID ",\"vin\":\"VIN1\",\"timestamp\":\"2024-13-01T10:20:30Z\""), PQ_ERR_RANGE,
	    "timestamp");
	bad(t,
	    R(ID
	      ",\"vin\":\"VIN1\",\"timestamp\":\"2024-05-01T10:20:30.4560000000000000000000000000"
	      "000000000Z\""),
	    PQ_ERR_RANGE, "timestamp");
	/* message_id */
	bad(t, R("\"message_id\":7," TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "message_id");
	bad(t, R("\"message_id\":\"\"," TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "message_id");
	bad(t, R("\"message_id\":\"a b\"," TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "message_id");
	bad(t, R("\"message_id\":\"a/b\"," TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT, "message_id");
	bad(t, R("\"message_id\":\"\\u00e9\"," TS ",\"vin\":\"VIN1\""), PQ_ERR_FORMAT,
	    "message_id");
	char text[512], id[100];
	memset(id, 'a', 80);
	id[80] = '\0';
	snprintf(text, sizeof(text), R("\"message_id\":\"%s\"," TS ",\"vin\":\"VIN1\""), id);
	bad(t, text, PQ_ERR_RANGE, "message_id");
	id[79] = '\0'; /* 79 characters fit */
	msg_in m;
	snprintf(text, sizeof(text), R("\"message_id\":\"%s\"," TS ",\"vin\":\"VIN1\""), id);
	ok(t, text, &m);
	assert_string_equal(m.message_id, id);
	msg_in_clear(&m);
	/* correlation_id, campaign_id */
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\",\"correlation_id\":1"), PQ_ERR_FORMAT,
	    "correlation_id");
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\",\"correlation_id\":\"x y\""), PQ_ERR_FORMAT,
	    "correlation_id");
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\",\"campaign_id\":{}"), PQ_ERR_FORMAT, "campaign_id");
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\",\"campaign_id\":\"\""), PQ_ERR_FORMAT, "campaign_id");
	bad(t,
	    R(ID "," TS ",\"vin\":\"VIN1\",\"campaign_id\":\"0123456789012345678901234567890123456"
	         "789X\""),
	    PQ_ERR_RANGE, "campaign_id");
	ok(t,
	   R(ID "," TS ",\"vin\":\"VIN1\",\"campaign_id\":\"0123456789012345678901234567890123456"
	        "789\""),
	   &m);
	assert_int_equal(strlen(m.campaign_id), 40);
	msg_in_clear(&m);
	/* a NUL inside a string is refused by jansson itself */
	bad(t, R(ID "," TS ",\"vin\":\"VIN1\\u0000\""), PQ_ERR_FORMAT, NULL);
#undef R
}

/* A message of at least `size` bytes: the envelope plus a padding string. */
static char *big_message(const char *type, size_t size)
{
	char *s = malloc(size + 256);
	assert_non_null(s);
	int n = snprintf(s, 256, "{\"msg_type\":\"%s\"," ID "," TS ",\"vin\":\"VIN1\",\"pad\":\"",
	                 type);
	size_t fill = size > (size_t)n + 2 ? size - (size_t)n - 2 : 0;
	memset(s + n, 'x', fill);
	memcpy(s + n + fill, "\"}", 3);
	assert_int_equal(strlen(s), (size_t)n + fill + 2);
	return s;
}

static void test_size_and_depth(void **state)
{
	(void)state;
	msg_in m;
	char *s = big_message("command_ack", MSG_MAX_BYTES);
	assert_int_equal(strlen(s), MSG_MAX_BYTES);
	ok("oem/VIN1/response", s, &m);
	msg_in_clear(&m);
	free(s);
	s = big_message("command_ack", MSG_MAX_BYTES + 1);
	bad("oem/VIN1/response", s, PQ_ERR_RANGE, "exceeds");
	free(s);
	/* a VCI report may be up to 1 MiB */
	s = big_message("vci_report", MSG_VCI_MAX_BYTES);
	ok("oem/VIN1/vci", s, &m);
	msg_in_clear(&m);
	free(s);
	s = big_message("vci_report", MSG_VCI_MAX_BYTES + 1);
	bad("oem/VIN1/vci", s, PQ_ERR_RANGE, "exceeds");
	free(s);
	/* presence is bounded too */
	s = big_message("x", MSG_MAX_BYTES + 1);
	bad("oem/VIN1/presence", s, PQ_ERR_RANGE, "exceeds");
	free(s);

	/* nesting: MSG_MAX_DEPTH levels pass, one more does not */
	char text[1024];
	for (int depth = MSG_MAX_DEPTH; depth <= MSG_MAX_DEPTH + 1; depth++) {
		int n =
		    snprintf(text, sizeof(text),
		             "{\"msg_type\":\"command_ack\"," ID "," TS ",\"vin\":\"VIN1\",\"d\":");
		for (int i = 1; i < depth; i++)
			text[n++] = '[';
		text[n++] = '1';
		for (int i = 1; i < depth; i++)
			text[n++] = ']';
		text[n++] = '}';
		text[n] = '\0';
		if (depth == MSG_MAX_DEPTH) {
			ok("oem/VIN1/response", text, &m);
			msg_in_clear(&m);
		} else {
			bad("oem/VIN1/response", text, PQ_ERR_RANGE, "deeper");
		}
	}
	/* far deeper than jansson's own bound: refused, no stack exhaustion */
	size_t deep = 100000;
	s = malloc(2 * deep + 256);
	assert_non_null(s);
	int n = snprintf(s, 256, "{\"msg_type\":\"command_ack\",\"d\":");
	memset(s + n, '[', deep);
	memset(s + n + deep, ']', deep);
	memcpy(s + n + 2 * deep, "}", 2);
	bad("oem/VIN1/response", s, PQ_ERR_FORMAT, "not JSON");
	free(s);
}

static void test_times(void **state)
{
	(void)state;
	char out[32];
	int64_t ms;
	assert_ok(msg_format_time(0, out));
	assert_string_equal(out, "1970-01-01T00:00:00.000Z");
	assert_ok(msg_format_time(1714558830456LL, out));
	assert_string_equal(out, "2024-05-01T10:20:30.456Z");
	assert_ok(msg_format_time(951782400000LL, out)); /* leap day of a century leap year */
	assert_string_equal(out, "2000-02-29T00:00:00.000Z");
	assert_ok(msg_format_time(253402300799999LL, out));
	assert_string_equal(out, "9999-12-31T23:59:59.999Z");
	assert_rc(msg_format_time(253402300800000LL, out), PQ_ERR_RANGE);
	assert_rc(msg_format_time(-1, out), PQ_ERR_RANGE);

	assert_ok(msg_parse_time("2024-05-01T10:20:30.456Z", &ms));
	assert_int_equal(ms, 1714558830456LL);
	assert_ok(msg_parse_time("2024-05-01T10:20:30Z", &ms));
	assert_int_equal(ms, 1714558830000LL);
	assert_ok(msg_parse_time("2024-05-01T10:20:30.4Z", &ms));
	assert_int_equal(ms, 1714558830400LL);
	assert_ok(msg_parse_time("2024-05-01T10:20:30.123456789Z", &ms));
	assert_int_equal(ms, 1714558830123LL);
	assert_ok(msg_parse_time("2000-02-29T00:00:00.000Z", &ms));
	assert_int_equal(ms, 951782400000LL);
	assert_rc(msg_parse_time("1900-02-29T00:00:00Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("2023-02-29T00:00:00Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("2024-04-31T00:00:00Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("2024-05-01T24:00:00Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("2024-05-01T23:60:00Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("1969-12-31T23:59:59Z", &ms), PQ_ERR_RANGE);
	assert_rc(msg_parse_time("2024-05-01T10:20:30.1234567891Z", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("2024-05-01T10:20:30.Z", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("2024-05-01 10:20:30Z", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("2024-5-01T10:20:30Z", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("2024-05-01T10:20:30ZZ", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("", &ms), PQ_ERR_FORMAT);
	assert_rc(msg_parse_time("2024", &ms), PQ_ERR_FORMAT);
	/* round trips over a spread of instants */
	for (int64_t t = 0; t < 253402300799999LL; t += 7777777777777LL / 3) {
		assert_ok(msg_format_time(t, out));
		assert_ok(msg_parse_time(out, &ms));
		assert_int_equal(ms, t);
	}
}

static void test_builders(void **state)
{
	(void)state;
	char a[37], b[37], topic[64];
	msg_uuid4(a);
	msg_uuid4(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
	assert_true(strchr("89ab", a[19]) != NULL);

	assert_ok(msg_topic(topic, sizeof(topic), "VIN1", "command"));
	assert_string_equal(topic, "oem/VIN1/command");
	assert_ok(msg_topic(topic, sizeof(topic), "VIN1", "ota/campaign"));
	assert_string_equal(topic, "oem/VIN1/ota/campaign");
	assert_rc(msg_topic(topic, sizeof(topic), "VIN/1", "command"), PQ_ERR_INVAL);
	assert_rc(msg_topic(topic, sizeof(topic), "+", "command"), PQ_ERR_INVAL);
	assert_rc(msg_topic(topic, sizeof(topic), "VIN1", "#"), PQ_ERR_INVAL);
	assert_rc(msg_topic(topic, sizeof(topic), "VIN1", ""), PQ_ERR_INVAL);
	assert_rc(msg_topic(topic, 16, "VIN1", "command"), PQ_ERR_RANGE); /* needs 17 */
	assert_string_equal(topic, "");
	assert_ok(msg_topic(topic, 17, "VIN1", "command"));

	int64_t before = pq_real_ms();
	json_t *o = msg_new("request_vci", "VIN1", NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "msg_type")), "request_vci");
	assert_string_equal(json_string_value(json_object_get(o, "vin")), "VIN1");
	assert_null(json_object_get(o, "correlation_id"));
	const char *id = json_string_value(json_object_get(o, "message_id"));
	assert_non_null(id);
	assert_int_equal(strlen(id), 36);
	int64_t ts;
	assert_ok(msg_parse_time(json_string_value(json_object_get(o, "timestamp")), &ts));
	assert_true(ts >= before - 1 && ts <= pq_real_ms() + 1);
	json_decref(o);

	o = msg_new("cancel", "VIN1", "6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10");
	assert_string_equal(json_string_value(json_object_get(o, "correlation_id")),
	                    "6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10");
	/* what the server builds, the envelope parser accepts (on a topic of any kind) */
	char *text = json_dumps(o, JSON_COMPACT);
	msg_in m;
	ok("oem/VIN1/command", text, &m);
	assert_int_equal(m.kind, MSG_T_OTHER);
	assert_string_equal(m.msg_type, "cancel");
	assert_string_equal(m.correlation_id, "6f1c2f4e-8a55-4f7e-9d0a-0c4a3b1e2f10");
	msg_in_clear(&m);
	free(text);
	json_decref(o);

	assert_null(msg_new("request_vci", "bad vin", NULL));
	assert_null(msg_new("", "VIN1", NULL));
	assert_null(msg_new(NULL, "VIN1", NULL));
	assert_null(msg_new("cancel", "VIN1", "bad id"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seed_wake_up),
	    cmocka_unit_test(test_full_wake_up),
	    cmocka_unit_test(test_every_type_on_its_topic),
	    cmocka_unit_test(test_presence),
	    cmocka_unit_test(test_topics),
	    cmocka_unit_test(test_envelope_rules),
	    cmocka_unit_test(test_size_and_depth),
	    cmocka_unit_test(test_times),
	    cmocka_unit_test(test_builders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
