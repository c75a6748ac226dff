/* test_agent.c: the pure parts of the VMG agent (src/agent): envelopes and de-duplication,
 * readiness checks, VCI entries, ota_campaign_metadata parsing (every refusal) and its
 * matching against what Uptane verified, and the state directory (round trip, atomic
 * replacement, recovery from a corrupt state.json, refusal when both copies are corrupt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "testutil.h"
#include "vehicle/uds.h"

#define VIN  "WVWTEST0000000001"
#define SHA1 "1111111111111111111111111111111111111111111111111111111111111111"
#define SHA2 "2222222222222222222222222222222222222222222222222222222222222222"
#define SHA3 "3333333333333333333333333333333333333333333333333333333333333333"
#define SHA4 "4444444444444444444444444444444444444444444444444444444444444444"

/* ---- envelopes ---------------------------------------------------------------------- */

static json_t *env(const char *type, const char *id, const char *vin)
{
	return json_pack("{s:s,s:s,s:s,s:s}", "msg_type", type, "message_id", id, "timestamp",
	                 "2026-11-23T10:00:00.000Z", "vin", vin);
}

static void test_envelope(void **state)
{
	(void)state;
	ag_env e;
	json_t *m = env("request_vci", "m-1", VIN);
	assert_ok(ag_msg_check(m, VIN, false, &e));
	assert_string_equal(e.msg_type, "request_vci");
	assert_string_equal(e.message_id, "m-1");
	assert_null(e.campaign_id);
	json_object_set_new(m, "campaign_id", json_string("c-9"));
	assert_ok(ag_msg_check(m, VIN, false, &e));
	assert_string_equal(e.campaign_id, "c-9");
	/* another vehicle's message */
	assert_rc(ag_msg_check(m, "OTHERVIN", false, &e), PQ_ERR_FORMAT);
	assert_non_null(strstr(pq_err_detail(), "not this vehicle"));
	/* ... is fine as a broadcast */
	assert_ok(ag_msg_check(m, "OTHERVIN", true, &e));
	/* wrong types and missing members */
	json_object_set_new(m, "campaign_id", json_integer(3));
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	json_object_del(m, "campaign_id");
	json_object_set_new(m, "message_id", json_integer(7));
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	json_object_set_new(m, "message_id", json_string(""));
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	char longid[AG_ID_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	json_object_set_new(m, "message_id", json_string(longid));
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	json_object_set_new(m, "message_id", json_string("ok"));
	json_object_del(m, "timestamp");
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	json_object_set_new(m, "timestamp", json_integer(1700000000));
	assert_ok(ag_msg_check(m, VIN, false, &e));
	json_object_set_new(m, "msg_type", json_null());
	assert_rc(ag_msg_check(m, VIN, false, &e), PQ_ERR_FORMAT);
	json_decref(m);
	/* not an object */
	json_t *arr = json_array();
	assert_rc(ag_msg_check(arr, VIN, false, &e), PQ_ERR_FORMAT);
	json_decref(arr);
	/* embedded NUL in a string is refused by ag_jstr */
	json_t *o = json_object();
	json_object_set_new(o, "k", json_stringn("ab\0c", 4));
	assert_null(ag_jstr(o, "k", 10));
	json_object_set_new(o, "k", json_string("abc"));
	assert_string_equal(ag_jstr(o, "k", 3), "abc");
	assert_null(ag_jstr(o, "k", 2));
	json_decref(o);
}

static void test_msg_new_and_time(void **state)
{
	(void)state;
	json_t *m = ag_msg_new(VIN, "command_ack", "corr-1", "camp-1");
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "msg_type")), "command_ack");
	assert_string_equal(json_string_value(json_object_get(m, "vin")), VIN);
	assert_string_equal(json_string_value(json_object_get(m, "correlation_id")), "corr-1");
	assert_string_equal(json_string_value(json_object_get(m, "campaign_id")), "camp-1");
	const char *id = json_string_value(json_object_get(m, "message_id"));
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '4'); /* UUID version 4 */
	json_t *m2 = ag_msg_new(VIN, "vci_report", NULL, NULL);
	assert_string_not_equal(id, json_string_value(json_object_get(m2, "message_id")));
	assert_null(json_object_get(m2, "correlation_id"));
	assert_null(json_object_get(m2, "campaign_id"));
	/* the envelope of our own messages passes our own check */
	ag_env e;
	assert_ok(ag_msg_check(m, VIN, false, &e));
	/* the timestamp: "YYYY-MM-DDTHH:MM:SS.mmmZ", UTC, now */
	const char *ts = json_string_value(json_object_get(m, "timestamp"));
	assert_non_null(ts);
	assert_int_equal(strlen(ts), PQ_ISO_TIME_MS_LEN - 1);
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[19], '.');
	assert_int_equal(ts[23], 'Z');
	char now[PQ_ISO_TIME_MS_LEN];
	pq_iso_time_ms(pq_real_ms(), now);
	assert_memory_equal(ts, now, 10); /* the same day (unless run at midnight) */
	json_decref(m);
	json_decref(m2);
}

/* The checked JSON updates: a NULL value (a constructor that failed) is an error, and what
 * they were given is theirs either way. */
static void test_json_updates(void **state)
{
	(void)state;
	json_t *o = json_object(), *arr = json_array();
	assert_ok(ag_jset(o, "k", json_string("v")));
	assert_string_equal(json_string_value(json_object_get(o, "k")), "v");
	assert_rc(ag_jset(o, "k", NULL), PQ_ERR_NOMEM);
	assert_non_null(strstr(pq_err_detail(), "k"));
	assert_rc(ag_jset(NULL, "k", json_string("stolen")), PQ_ERR_NOMEM);
	assert_ok(ag_jappend(arr, json_integer(1)));
	assert_rc(ag_jappend(arr, NULL), PQ_ERR_NOMEM);
	assert_rc(ag_jappend(o, json_integer(2)), PQ_ERR_NOMEM);
	assert_int_equal(json_array_size(arr), 1);
	assert_ok(ag_jmerge(o, json_pack("{s:i,s:s}", "a", 1, "k", "w"), "test"));
	assert_int_equal(json_integer_value(json_object_get(o, "a")), 1);
	assert_string_equal(json_string_value(json_object_get(o, "k")), "w");
	assert_rc(ag_jmerge(o, NULL, "test record"), PQ_ERR_NOMEM);
	assert_non_null(strstr(pq_err_detail(), "test record"));
	assert_rc(ag_jmerge(NULL, json_pack("{s:i}", "a", 1), "test"), PQ_ERR_NOMEM);
	json_decref(o);
	json_decref(arr);
}

static void test_seen(void **state)
{
	(void)state;
	ag_seen *s = calloc(1, sizeof(*s));
	assert_false(ag_seen_check(s, "a"));
	assert_true(ag_seen_check(s, "a"));
	assert_false(ag_seen_check(s, "b"));
	char id[32];
	/* the ring forgets the oldest after AG_SEEN_MAX others */
	for (int i = 0; i < AG_SEEN_MAX; i++) {
		snprintf(id, sizeof(id), "x%d", i);
		assert_false(ag_seen_check(s, id));
	}
	assert_false(ag_seen_check(s, "a"));
	assert_true(ag_seen_check(s, "x511"));
	free(s);
}

/* ---- readiness ---------------------------------------------------------------------- */

static void test_readiness(void **state)
{
	(void)state;
	ag_prereq p;
	json_t *pre = json_pack("{s:i,s:b,s:b,s:I}", "battery_min_pct", 50, "parked", 1,
	                        "ignition_off", 1, "storage_min_bytes", (json_int_t)1000);
	assert_ok(ag_prereq_parse(pre, &p));
	assert_int_equal(p.battery_min_pct, 50);
	assert_int_equal(p.parked, 1);
	assert_int_equal(p.storage_min, 1000);
	ag_vstate v = {
	    .battery_pct = 90, .parked = true, .ignition_off = true, .storage_free = 5000};
	json_t *checks = NULL;
	char why[128];
	assert_true(ag_readiness(&v, &p, &checks, why, sizeof(why)));
	assert_int_equal(json_array_size(checks), 4);
	assert_string_equal(why, "");
	json_decref(checks);

	v.battery_pct = 20;
	v.parked = false;
	assert_false(ag_readiness(&v, &p, &checks, why, sizeof(why)));
	assert_non_null(strstr(why, "battery 20"));
	json_t *c0 = json_array_get(checks, 0);
	assert_string_equal(json_string_value(json_object_get(c0, "name")), "battery");
	assert_false(json_is_true(json_object_get(c0, "ok")));
	assert_int_equal(json_integer_value(json_object_get(c0, "value")), 20);
	assert_non_null(json_object_get(c0, "reason"));
	json_t *c1 = json_array_get(checks, 1);
	assert_string_equal(json_string_value(json_object_get(c1, "name")), "parked");
	assert_false(json_is_true(json_object_get(c1, "ok")));
	assert_true(json_is_true(json_object_get(json_array_get(checks, 2), "ok")));
	json_decref(checks);

	v = (ag_vstate){
	    .battery_pct = 90, .parked = true, .ignition_off = false, .storage_free = 10};
	assert_false(ag_readiness(&v, &p, NULL, why, sizeof(why)));
	assert_string_equal(why, "the ignition is on");
	v.ignition_off = true;
	assert_false(ag_readiness(&v, &p, NULL, why, sizeof(why)));
	assert_non_null(strstr(why, "10 bytes free, 1000 required"));

	/* absent prerequisites require nothing; "parked": false is not a requirement */
	assert_ok(ag_prereq_parse(NULL, &p));
	v = (ag_vstate){0};
	assert_true(ag_readiness(&v, &p, NULL, NULL, 0));
	json_decref(pre);
	pre = json_pack("{s:b}", "parked", 0);
	assert_ok(ag_prereq_parse(pre, &p));
	assert_true(ag_readiness(&v, &p, NULL, NULL, 0));
	json_decref(pre);
	/* malformed */
	pre = json_pack("{s:i}", "battery_min_pct", 101);
	assert_rc(ag_prereq_parse(pre, &p), PQ_ERR_FORMAT);
	json_decref(pre);
	pre = json_pack("{s:s}", "parked", "yes");
	assert_rc(ag_prereq_parse(pre, &p), PQ_ERR_FORMAT);
	json_decref(pre);
	pre = json_pack("{s:i}", "storage_min_bytes", -1);
	assert_rc(ag_prereq_parse(pre, &p), PQ_ERR_FORMAT);
	json_decref(pre);
	pre = json_string("x");
	assert_rc(ag_prereq_parse(pre, &p), PQ_ERR_FORMAT);
	json_decref(pre);
}

/* ---- VCI entries -------------------------------------------------------------------- */

static void test_vci_ecu(void **state)
{
	(void)state;
	vm_ecu e;
	memset(&e, 0, sizeof(e));
	snprintf(e.ecu_id, sizeof(e.ecu_id), "ECU_011");
	snprintf(e.hardware_id, sizeof(e.hardware_id), "HW-1-011");
	snprintf(e.serial, sizeof(e.serial), "SN011");
	snprintf(e.version[VM_SW_APP], sizeof(e.version[0]), "1.0.0");
	e.zone = 1;
	e.delta = true;
	e.max_package_size = 1000;
	/* unreachable: the model's view */
	json_t *o = ag_vci_ecu(&e, NULL);
	assert_string_equal(json_string_value(json_object_get(o, "ecu_id")), "ECU_011");
	assert_string_equal(json_string_value(json_object_get(o, "bank")), "A");
	assert_false(json_is_true(json_object_get(o, "reachable")));
	json_t *sw = json_object_get(o, "software");
	assert_string_equal(json_string_value(json_object_get(sw, "APP")), "1.0.0");
	assert_null(json_object_get(sw, "BOOT"));
	assert_true(json_is_true(json_object_get(json_object_get(o, "capabilities"), "delta")));
	json_decref(o);
	/* what the ECU reported wins */
	tester_ecu_info info;
	memset(&info, 0, sizeof(info));
	snprintf(info.version[VM_SW_APP], sizeof(info.version[0]), "1.1.0");
	snprintf(info.version[VM_SW_CAL], sizeof(info.version[0]), "7");
	snprintf(info.serial, sizeof(info.serial), "REAL");
	info.bank = 'B';
	info.dtc_count = 2;
	info.image_len = 77;
	o = ag_vci_ecu(&e, &info);
	sw = json_object_get(o, "software");
	assert_string_equal(json_string_value(json_object_get(sw, "APP")), "1.1.0");
	assert_string_equal(json_string_value(json_object_get(sw, "CAL")), "7");
	assert_string_equal(json_string_value(json_object_get(o, "bank")), "B");
	assert_string_equal(json_string_value(json_object_get(o, "serial")), "REAL");
	assert_int_equal(json_integer_value(json_object_get(o, "dtc_count")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "image_length")), 77);
	assert_null(json_object_get(o, "reachable"));
	json_decref(o);
	assert_int_equal(ag_sw_index("APP"), VM_SW_APP);
	assert_int_equal(ag_sw_index("CAL"), VM_SW_CAL);
	assert_int_equal(ag_sw_index("CFG"), -1);
	assert_int_equal(ag_sw_index(NULL), -1);
}

/* ---- metadata ----------------------------------------------------------------------- */

static json_t *enc_for(const char *pkg_sha)
{
	char aad[AG_AAD_MAX];
	snprintf(aad, sizeof(aad), "%s|%s", VIN, pkg_sha);
	return json_pack("{s:s,s:s,s:i,s:s,s:s}", "scheme", "aes-256-gcm-chunked+hybrid-wrap-v1",
	                 "sha256", SHA4, "length", 2000, "aad", aad, "wrapped_key", "AAECAwQF");
}

/* A metadata message: a delta for ECU_011 (with fallback), a full package for ECU_012. */
static json_t *meta_msg(void)
{
	json_t *fb = json_pack("{s:s,s:s,s:i,s:s,s:o}", "name", "r1.full.swpg", "url",
	                       "https://127.0.0.1:1/packages/" SHA3 "?token=t", "length", 3000,
	                       "sha256", SHA3, "encryption", enc_for(SHA3));
	json_t *d = json_pack(
	    "{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:i},s:o,s:{s:s,s:s},s:o}",
	    "ecu_id", "ECU_011", "release_id", "r1", "name", "r1.delta.swpg", "url",
	    "https://127.0.0.1:1/packages/" SHA1 "?token=t", "length", 1000, "sha256", SHA1,
	    "package", "delta", "from_version", "1.0.0", "to_version", "1.1.0", "software_type",
	    "APP", "hardware_id", "HW-1-011", "image", "sha256", SHA2, "length", 5000, "encryption",
	    enc_for(SHA1), "delta_base", "sha256", SHA4, "version", "1.0.0", "fallback", fb);
	json_t *f = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:n}", "ecu_id", "ECU_012", "name",
	                      "r2.full.swpg", "url", "https://127.0.0.1:1/packages/x", "length", 10,
	                      "sha256", SHA2, "package", "full", "to_version", "2.0.0",
	                      "hardware_id", "HW-1-012", "encryption");
	return json_pack("{s:s,s:s,s:s,s:s,s:{},s:[o,o],s:[s,s],s:s,s:s}", "msg_type",
	                 "ota_campaign_metadata", "campaign_id", "camp-1", "image_repository",
	                 "https://127.0.0.1:1/uptane/image/", "director_repository",
	                 "https://127.0.0.1:1/uptane/director/" VIN "/", "director_targets",
	                 "images", d, f, "install_order", "ECU_012", "ECU_011", "rollback_policy",
	                 "all_or_nothing", "token", "t");
}

static void meta_bad(json_t *msg, const char *detail)
{
	ag_meta m;
	int rc = ag_meta_parse(msg, VIN, &m);
	if (rc != PQ_ERR_FORMAT)
		fail_msg("want PQ_ERR_FORMAT, got %d (%s)", rc, pq_err_detail());
	if (detail && !strstr(pq_err_detail(), detail))
		fail_msg("detail '%s' lacks '%s'", pq_err_detail(), detail);
	assert_null(m.images);
	json_decref(msg);
}

static json_t *img0(json_t *msg)
{
	return json_array_get(json_object_get(msg, "images"), 0);
}

static void test_meta_parse(void **state)
{
	(void)state;
	json_t *msg = meta_msg();
	ag_meta m;
	assert_ok(ag_meta_parse(msg, VIN, &m));
	assert_string_equal(m.campaign_id, "camp-1");
	assert_int_equal(m.n_images, 2);
	assert_true(m.rollback_all);
	/* install_order puts ECU_012 first */
	assert_string_equal(m.images[0].ecu_id, "ECU_012");
	assert_false(m.images[0].delta);
	assert_false(m.images[0].file.enc.present);
	assert_string_equal(m.images[0].software_type, "APP"); /* the default */
	const ag_image *d = &m.images[1];
	assert_string_equal(d->ecu_id, "ECU_011");
	assert_true(d->delta);
	assert_string_equal(d->file.name, "r1.delta.swpg");
	assert_int_equal(d->file.length, 1000);
	assert_true(d->file.enc.present);
	assert_int_equal(d->file.enc.length, 2000);
	assert_int_equal(d->file.enc.wrapped_len, 6);
	assert_memory_equal(d->file.enc.wrapped, "\x00\x01\x02\x03\x04\x05", 6);
	assert_true(d->has_image);
	assert_int_equal(d->image_len, 5000);
	assert_true(d->has_base);
	assert_string_equal(d->base_version, "1.0.0");
	assert_true(d->has_fallback);
	assert_string_equal(d->fallback.name, "r1.full.swpg");
	assert_true(d->fallback.enc.present);
	assert_int_equal(d->file.sha256[0], 0x11);
	ag_meta_free(&m);
	json_decref(msg);

	/* refusals, each naming what is wrong */
	msg = meta_msg();
	json_object_del(msg, "campaign_id");
	meta_bad(msg, "campaign_id");
	msg = meta_msg();
	json_object_set_new(msg, "image_repository", json_string("http://x/uptane/image/"));
	meta_bad(msg, "image_repository");
	msg = meta_msg();
	json_object_set_new(msg, "director_repository", json_string("https://x/d"));
	meta_bad(msg, "director_repository");
	msg = meta_msg();
	json_object_set_new(msg, "director_targets", json_string("x"));
	meta_bad(msg, "director_targets");
	msg = meta_msg();
	json_object_set_new(msg, "images", json_array());
	meta_bad(msg, "images");
	msg = meta_msg();
	json_object_set_new(msg, "rollback_policy", json_string("sometimes"));
	meta_bad(msg, "rollback_policy");
	msg = meta_msg();
	json_object_set_new(img0(msg), "url", json_string("http://127.0.0.1/p"));
	meta_bad(msg, "images[0]");
	msg = meta_msg();
	json_object_set_new(img0(msg), "sha256", json_string("abc"));
	meta_bad(msg, "images[0].sha256");
	msg = meta_msg();
	json_object_set_new(img0(msg), "length", json_integer(-5));
	meta_bad(msg, "images[0].length");
	msg = meta_msg();
	json_object_set_new(img0(msg), "length", json_string("5"));
	meta_bad(msg, "images[0].length");
	msg = meta_msg();
	json_object_set_new(img0(msg), "name", json_string("../etc/passwd"));
	meta_bad(msg, "images[0]");
	msg = meta_msg();
	json_object_set_new(img0(msg), "package", json_string("patch"));
	meta_bad(msg, "package");
	msg = meta_msg();
	json_object_set_new(img0(msg), "ecu_id", json_string("ECU_012"));
	meta_bad(msg, "same ECU");
	msg = meta_msg();
	json_object_del(img0(msg), "to_version");
	meta_bad(msg, "to_version");
	/* the aad must bind this VIN and the package hash */
	msg = meta_msg();
	json_object_set_new(json_object_get(img0(msg), "encryption"), "aad",
	                    json_string("OTHER|" SHA1));
	meta_bad(msg, "aad");
	msg = meta_msg();
	json_object_set_new(json_object_get(img0(msg), "encryption"), "scheme",
	                    json_string("rot13"));
	meta_bad(msg, "scheme");
	msg = meta_msg();
	json_object_set_new(json_object_get(img0(msg), "encryption"), "wrapped_key",
	                    json_string("!!!!"));
	meta_bad(msg, "wrapped_key");
	msg = meta_msg();
	json_object_set_new(json_object_get(img0(msg), "encryption"), "wrapped_key",
	                    json_string("AAE=AAAA"));
	meta_bad(msg, "wrapped_key");
	msg = meta_msg();
	json_object_set_new(json_object_get(img0(msg), "fallback"), "name",
	                    json_string("r1.delta.swpg"));
	meta_bad(msg, "fallback");
	msg = meta_msg();
	json_object_set_new(img0(msg), "image", json_integer(1));
	meta_bad(msg, "image");
	msg = meta_msg();
	json_object_set_new(msg, "install_order", json_string("ECU_011"));
	meta_bad(msg, "install_order");
	/* a control character in a string */
	msg = meta_msg();
	json_object_set_new(img0(msg), "to_version", json_string("1.1\n"));
	meta_bad(msg, "to_version");
	meta_bad(json_array(), NULL);
}

static void set_image(up_image *t, const char *ecu, const char *name, int64_t len, const char *sha,
                      const char *hw, int64_t counter)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->ecu_id, sizeof(t->ecu_id), "%s", ecu);
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->hardware_id, sizeof(t->hardware_id), "%s", hw);
	t->length = len;
	t->release_counter = counter;
	size_t n;
	assert_ok(pq_hex_decode(sha, t->sha256, 32, &n));
}

static char *image_targets(const char *fb_sha, int fb_len, int counter, const char *hw)
{
	json_t *t =
	    json_pack("{s:{s:{s:{s:i,s:{s:s},s:{s:i,s:s,s:s}}}}}", "signed", "targets",
	              "r1.full.swpg", "length", fb_len, "hashes", "sha256", fb_sha, "custom",
	              "release_counter", counter, "hardware_id", hw, "version", "1.1.0");
	char *s = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	return s;
}

/* A campaign's bundle (docs/protocol.md): parsed, a full image's bundle_path kept, encrypted
 * or not; matched against the bundle Uptane verified; refused when malformed. */
static void test_meta_bundle(void **state)
{
	(void)state;
	json_t *msg = meta_msg();
	ag_meta m;
	assert_ok(ag_meta_parse(msg, VIN, &m));
	assert_false(m.has_bundle);
	assert_string_equal(m.images[0].bundle_path, "");
	ag_meta_free(&m);
	json_object_set_new(
	    msg, "bundle",
	    json_pack("{s:s,s:s,s:i,s:s,s:n}", "name", "full_package.bin", "url",
	              "https://127.0.0.1:1/packages/TEST-001/full_package.bin?token=t", "length",
	              9000, "sha256", SHA3, "encryption"));
	json_object_set_new(json_array_get(json_object_get(msg, "images"), 1), "bundle_path",
	                    json_string("ZONE1/ECU_012"));
	assert_ok(ag_meta_parse(msg, VIN, &m));
	assert_true(m.has_bundle);
	assert_string_equal(m.bundle.name, "full_package.bin");
	assert_int_equal(m.bundle.length, 9000);
	assert_false(m.bundle.enc.present);
	assert_string_equal(m.images[0].ecu_id, "ECU_012"); /* install_order: first */
	assert_string_equal(m.images[0].bundle_path, "ZONE1/ECU_012");
	assert_string_equal(m.images[1].bundle_path, ""); /* the delta is not taken from it */
	/* the bundle must be the one Uptane verified */
	up_verify_result r = {.has_bundle = true};
	set_image(&r.bundle, "", "full_package.bin", 9000, SHA3, "BUNDLE", 0);
	assert_ok(ag_bundle_match(&m, &r));
	r.bundle.sha256[0] ^= 1;
	assert_rc(ag_bundle_match(&m, &r), PQ_ERR_VERIFY);
	r.bundle.sha256[0] ^= 1;
	r.bundle.length = 9001;
	assert_rc(ag_bundle_match(&m, &r), PQ_ERR_VERIFY);
	r.bundle.length = 9000;
	snprintf(r.bundle.name, sizeof(r.bundle.name), "other.bundle.swpg");
	assert_rc(ag_bundle_match(&m, &r), PQ_ERR_VERIFY);
	r.has_bundle = false;
	assert_rc(ag_bundle_match(&m, &r), PQ_ERR_VERIFY);
	assert_non_null(strstr(pq_err_detail(), "director does not"));
	ag_meta_free(&m);
	/* encrypted like any package (its content key wrapped for this vehicle) */
	json_t *b = json_object_get(msg, "bundle");
	json_object_set_new(b, "encryption", enc_for(SHA3));
	assert_ok(ag_meta_parse(msg, VIN, &m));
	assert_true(m.bundle.enc.present);
	ag_meta_free(&m);
	json_object_set_new(b, "encryption", json_null());
	json_object_del(b, "sha256");
	meta_bad(msg, "bundle");
}

static void test_meta_match(void **state)
{
	(void)state;
	json_t *msg = meta_msg();
	ag_meta m;
	assert_ok(ag_meta_parse(msg, VIN, &m));
	up_image imgs[2];
	up_verify_result r = {.images = imgs, .n_images = 2};
	set_image(&imgs[0], "ECU_011", "r1.delta.swpg", 1000, SHA1, "HW-1-011", 5);
	set_image(&imgs[1], "ECU_012", "r2.full.swpg", 10, SHA2, "HW-1-012", 3);
	char *it = image_targets(SHA3, 3000, 5, "HW-1-011");
	ag_verified v[2];
	assert_ok(ag_meta_match(&m, &r, it, strlen(it), v));
	assert_string_equal(v[0].target.ecu_id, "ECU_012");
	assert_string_equal(v[1].target.name, "r1.delta.swpg");
	assert_true(v[1].has_fallback);
	assert_string_equal(v[1].fallback.name, "r1.full.swpg");
	assert_string_equal(v[1].fallback.ecu_id, "ECU_011");
	assert_int_equal(v[1].fallback.release_counter, 5);
	assert_string_equal(v[1].fallback.version, "1.1.0");

	/* the director's hash differs */
	imgs[0].sha256[5] ^= 1;
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	assert_non_null(strstr(pq_err_detail(), "ECU_011"));
	imgs[0].sha256[5] ^= 1;
	/* length */
	imgs[1].length = 11;
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	imgs[1].length = 10;
	/* name */
	snprintf(imgs[1].name, sizeof(imgs[1].name), "r3.full.swpg");
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	snprintf(imgs[1].name, sizeof(imgs[1].name), "r2.full.swpg");
	/* hardware id */
	snprintf(imgs[1].hardware_id, sizeof(imgs[1].hardware_id), "HW-9");
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	snprintf(imgs[1].hardware_id, sizeof(imgs[1].hardware_id), "HW-1-012");
	/* no director target for an ECU */
	r.n_images = 1;
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	assert_non_null(strstr(pq_err_detail(), "ECU_012"));
	r.n_images = 2;
	assert_ok(ag_meta_match(&m, &r, it, strlen(it), v));
	free(it);
	/* fallback: another hash, another release, or absent from the image repository */
	it = image_targets(SHA4, 3000, 5, "HW-1-011");
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	free(it);
	it = image_targets(SHA3, 3000, 4, "HW-1-011");
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	assert_non_null(strstr(pq_err_detail(), "another release"));
	free(it);
	it = image_targets(SHA3, 3000, 5, "HW-OTHER");
	assert_rc(ag_meta_match(&m, &r, it, strlen(it), v), PQ_ERR_VERIFY);
	free(it);
	const char *none = "{\"signed\":{\"targets\":{}}}";
	assert_rc(ag_meta_match(&m, &r, none, strlen(none), v), PQ_ERR_VERIFY);
	/* round trip of a verified target */
	json_t *j = ag_up_image_json(&imgs[0]);
	up_image back;
	assert_ok(ag_up_image_parse(j, &back));
	assert_string_equal(back.name, imgs[0].name);
	assert_memory_equal(back.sha256, imgs[0].sha256, 32);
	assert_int_equal(back.release_counter, 5);
	json_object_del(j, "sha256");
	assert_rc(ag_up_image_parse(j, &back), PQ_ERR_FORMAT);
	json_decref(j);
	ag_meta_free(&m);
	json_decref(msg);
}

/* ---- state -------------------------------------------------------------------------- */

static void small_model(vm_model *m, vm_ecu *ecus, const char *factory_image)
{
	memset(m, 0, sizeof(*m));
	memset(ecus, 0, 2 * sizeof(vm_ecu));
	snprintf(m->vin, sizeof(m->vin), VIN);
	snprintf(m->vmg_hardware_id, sizeof(m->vmg_hardware_id), "VMG-1");
	snprintf(m->vmg_version, sizeof(m->vmg_version), "1.0.0");
	for (int i = 0; i < 2; i++) {
		snprintf(ecus[i].ecu_id, sizeof(ecus[i].ecu_id), "ECU_%03d", 11 + i);
		snprintf(ecus[i].version[VM_SW_APP], sizeof(ecus[i].version[0]), "1.0.0");
		ecus[i].zone = 1;
	}
	if (factory_image)
		snprintf(ecus[0].image_path, sizeof(ecus[0].image_path), "%.1000s", factory_image);
	m->ecus = ecus;
	m->n_ecus = 2;
}

static void test_state(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("agent-state");
	char sd[PATH_MAX], img[PATH_MAX], p[PATH_MAX], prev[PATH_MAX];
	tu_join(sd, sizeof(sd), dir, "state");
	tu_join(img, sizeof(img), dir, "factory.bin");
	tu_write_file(img, "factory image", 13);
	vm_model m;
	vm_ecu ecus[2];
	small_model(&m, ecus, img);

	/* a fresh state: factory images, the VMG, directory mode 0700 */
	ag_state s;
	assert_ok(ag_state_load(sd, &m, &s));
	struct stat st;
	assert_int_equal(stat(sd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(s.n_ecus, 3);
	assert_int_equal(s.boot_seq, 0);
	assert_int_equal(s.vmg_bank, 'A');
	assert_null(s.image_root);
	ag_ecu_state *e = ag_state_ecu(&s, "ECU_011");
	assert_non_null(e);
	assert_string_equal(e->cur.path, img);
	assert_int_equal(e->cur.len, 13);
	uint8_t want[32];
	assert_ok(pq_hash(PQ_HASH_SHA256, "factory image", 13, want));
	assert_memory_equal(e->cur.sha256, want, 32);
	assert_string_equal(ag_state_ecu(&s, "ECU_012")->cur.path, "");
	assert_string_equal(ag_state_ecu(&s, "VMG")->cur.version, "1.0.0");
	assert_null(ag_state_ecu(&s, "ECU_999"));

	/* changes survive a save and a load */
	s.boot_seq = 7;
	s.vmg_bank = 'B';
	s.image_v.targets = 4;
	s.director_v.timestamp = 9;
	e->prev = e->cur;
	snprintf(e->cur.version, sizeof(e->cur.version), "1.1.0");
	e->cur.release_counter = 3;
	s.campaign = json_pack("{s:s,s:s}", "campaign_id", "c1", "phase", "downloading");
	assert_ok(ag_state_set_roots(&s, "{\"root\":1}", 10, NULL, 0));
	assert_ok(ag_state_save(&s));
	ag_state_free(&s);
	assert_ok(ag_state_load(sd, &m, &s));
	assert_int_equal(s.boot_seq, 7);
	assert_int_equal(s.vmg_bank, 'B');
	assert_int_equal(s.image_v.targets, 4);
	assert_int_equal(s.director_v.timestamp, 9);
	assert_false(s.recovered);
	e = ag_state_ecu(&s, "ECU_011");
	assert_string_equal(e->cur.version, "1.1.0");
	assert_int_equal(e->cur.release_counter, 3);
	assert_true(e->prev.present);
	assert_string_equal(e->prev.version, "1.0.0");
	assert_memory_equal(e->prev.sha256, want, 32);
	assert_false(ag_state_ecu(&s, "ECU_012")->prev.present);
	assert_string_equal(json_string_value(json_object_get(s.campaign, "phase")), "downloading");
	assert_non_null(s.image_root);
	assert_int_equal(s.image_root_len, 10);
	assert_memory_equal(s.image_root, "{\"root\":1}", 10);
	assert_null(s.director_root);

	/* a second save keeps the first as state.json.prev */
	s.boot_seq = 8;
	assert_ok(ag_state_save(&s));
	ag_state_free(&s);
	tu_join(p, sizeof(p), sd, "state.json");
	tu_join(prev, sizeof(prev), sd, "state.json.prev");
	assert_int_equal(stat(prev, &st), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* a corrupt state.json (a torn write): the previous one is used */
	tu_write_file(p, "{\"boot_seq\": 8, \"vmg", 20);
	assert_ok(ag_state_load(sd, &m, &s));
	assert_true(s.recovered);
	assert_int_equal(s.boot_seq, 7);
	ag_state_free(&s);
	/* wrong types are corruption too */
	const char *types = "{\"boot_seq\":\"8\",\"vmg_bank\":\"A\",\"ecus\":{}}";
	tu_write_file(p, types, strlen(types));
	assert_ok(ag_state_load(sd, &m, &s));
	assert_true(s.recovered);
	ag_state_free(&s);
	/* both corrupt: refused, naming the files */
	tu_write_file(prev, "garbage", 7);
	assert_rc(ag_state_load(sd, &m, &s), PQ_ERR_FORMAT);
	assert_non_null(strstr(pq_err_detail(), "state.json"));
	/* only a corrupt state.json, no .prev: refused, never silently reset */
	assert_int_equal(remove(prev), 0);
	assert_rc(ag_state_load(sd, &m, &s), PQ_ERR_FORMAT);
	/* an ECU the file does not know keeps its factory state; a campaign without an id is
	 * corruption */
	const char *fresh = "{\"boot_seq\":2,\"vmg_bank\":\"A\",\"ecus\":{}}";
	tu_write_file(p, fresh, strlen(fresh));
	assert_ok(ag_state_load(sd, &m, &s));
	assert_int_equal(s.boot_seq, 2);
	assert_string_equal(ag_state_ecu(&s, "ECU_011")->cur.path, img);
	ag_state_free(&s);
	const char *nocid = "{\"boot_seq\":2,\"vmg_bank\":\"A\",\"ecus\":{},\"campaign\":{}}";
	tu_write_file(p, nocid, strlen(nocid));
	assert_rc(ag_state_load(sd, &m, &s), PQ_ERR_FORMAT);
	tu_rmtree(dir);
	free(dir);
}

/* ---- diagnostic answers, phases, file digests ---------------------------------------- */

/* The diag_response's nrc_name is the UDS library's name of the NRC, for every NRC. */
static void test_diag_answer(void **state)
{
	(void)state;
	for (int nrc = 0; nrc <= 255; nrc++) {
		const uint8_t resp[3] = {0x7F, 0x22, (uint8_t)nrc};
		const char *status = NULL;
		char hex[7];
		json_t *r = json_object();
		assert_ok(ag_diag_answer(r, resp, sizeof(resp), &status));
		assert_string_equal(status, "negative");
		assert_int_equal(json_integer_value(json_object_get(r, "nrc")), nrc);
		assert_string_equal(json_string_value(json_object_get(r, "nrc_name")),
		                    uds_nrc_name((uint8_t)nrc));
		snprintf(hex, sizeof(hex), "7F22%02X", nrc);
		assert_string_equal(json_string_value(json_object_get(r, "response")), hex);
		json_decref(r);
	}
	/* a positive answer: upper-case hex, no NRC */
	const uint8_t pos[] = {0x62, 0xF1, 0x90, 0xab, 0xcd};
	const char *status = NULL;
	json_t *r = json_object();
	assert_ok(ag_diag_answer(r, pos, sizeof(pos), &status));
	assert_string_equal(status, "positive");
	assert_string_equal(json_string_value(json_object_get(r, "response")), "62F190ABCD");
	assert_null(json_object_get(r, "nrc"));
	assert_null(json_object_get(r, "nrc_name"));
	/* no answer at all */
	assert_rc(ag_diag_answer(r, pos, 0, &status), PQ_ERR_FORMAT);
	json_decref(r);
}

static void test_phases(void **state)
{
	(void)state;
	const char *finals[] = {AG_PH_COMPLETED, AG_PH_FAILED, AG_PH_ROLLED_BACK, AG_PH_DECLINED,
	                        AG_PH_CANCELLED};
	const ag_outcome outs[] = {AG_OUT_COMPLETED, AG_OUT_FAILED, AG_OUT_ROLLED_BACK,
	                           AG_OUT_DECLINED, AG_OUT_CANCELLED};
	for (size_t i = 0; i < 5; i++) {
		assert_true(ag_phase_final(finals[i]));
		assert_false(ag_phase_worker(finals[i]));
		assert_int_equal(ag_phase_outcome(finals[i]), outs[i]);
	}
	const char *work[] = {AG_PH_VERIFYING, AG_PH_DOWNLOADING, AG_PH_INSTALLING, AG_PH_CHECKING};
	for (size_t i = 0; i < 4; i++) {
		assert_true(ag_phase_worker(work[i]));
		assert_false(ag_phase_final(work[i]));
		assert_int_equal(ag_phase_outcome(work[i]), AG_OUT_NONE);
	}
	const char *waiting[] = {AG_PH_OFFERED, AG_PH_POSTPONED, AG_PH_ACCEPTED, "bogus"};
	for (size_t i = 0; i < 4; i++) {
		assert_false(ag_phase_worker(waiting[i]));
		assert_false(ag_phase_final(waiting[i]));
	}
	assert_false(ag_phase_final(NULL));
	assert_false(ag_phase_worker(NULL));
	assert_int_equal(ag_phase_outcome(NULL), AG_OUT_NONE);
}

static void test_file_digest(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("agent-digest");
	char p[PATH_MAX];
	tu_join(p, sizeof(p), dir, "img.bin");
	/* larger than one 64 KiB read, not a multiple of it */
	size_t n = 200001;
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(i * 31 + (i >> 8));
	tu_write_file(p, buf, n);
	uint8_t sha[32], want[32];
	uint32_t crc = 0;
	uint64_t len = 0;
	assert_ok(ag_file_digest(p, sha, &crc, &len));
	assert_ok(pq_hash(PQ_HASH_SHA256, buf, n, want));
	assert_memory_equal(sha, want, 32);
	assert_int_equal(crc, pq_crc32(0, buf, n));
	assert_int_equal(len, n);
	/* an empty file */
	tu_write_file(p, "", 0);
	assert_ok(ag_file_digest(p, sha, &crc, &len));
	assert_ok(pq_hash(PQ_HASH_SHA256, "", 0, want));
	assert_memory_equal(sha, want, 32);
	assert_int_equal(crc, 0);
	assert_int_equal(len, 0);
	/* a missing file */
	tu_join(p, sizeof(p), dir, "missing.bin");
	assert_rc(ag_file_digest(p, sha, &crc, &len), PQ_ERR_IO);
	free(buf);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_envelope),     cmocka_unit_test(test_msg_new_and_time),
	    cmocka_unit_test(test_json_updates), cmocka_unit_test(test_seen),
	    cmocka_unit_test(test_readiness),    cmocka_unit_test(test_vci_ecu),
	    cmocka_unit_test(test_meta_parse),   cmocka_unit_test(test_meta_bundle),
	    cmocka_unit_test(test_meta_match),   cmocka_unit_test(test_state),
	    cmocka_unit_test(test_diag_answer),  cmocka_unit_test(test_phases),
	    cmocka_unit_test(test_file_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
