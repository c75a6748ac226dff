/* test_ecu.c: the simulated ECU's UDS state machine through ecu_handle: sessions and S3,
 * security access with lockout, DIDs, DTCs, the programming sequence with the block counter
 * wrap and repeats, the check routine, bank switch on reset, rollback, suppressed positive
 * responses, the gateway responder and the persistent state as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/text.h"
#include "testutil.h"
#include "crypto/hash.h"
#include "vehicle/ecu.h"
#include "vehicle/uds.h"

#define ADDR 0x1011
#define VIN  "VINECU0000000001"

static int64_t t_ms = 1000000; /* the test's clock */

static void make_ecu(ecu *e)
{
	vm_ecu m;
	memset(&m, 0, sizeof(m));
	snprintf(m.ecu_id, sizeof(m.ecu_id), "ECU_011");
	snprintf(m.hardware_id, sizeof(m.hardware_id), "HW-1-011");
	snprintf(m.serial, sizeof(m.serial), "SER-011");
	snprintf(m.part_number, sizeof(m.part_number), "PN-011");
	snprintf(m.supplier, sizeof(m.supplier), "SUP");
	for (int t = 0; t < VM_SW_N; t++)
		snprintf(m.version[t], sizeof(m.version[t]), "1.0.0");
	m.addr = ADDR;
	m.zone = 1;
	m.max_package_size = 1 << 20;
	uint8_t sha[32];
	memset(sha, 0xAB, sizeof(sha));
	assert_ok(ecu_init(e, &m, VIN, sha, 1234, 0x01020304));
}

/* Sends a request given in hex; returns the response length, the bytes in resp. */
static size_t xchg_raw(ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t cap)
{
	size_t rlen = 99;
	assert_ok(ecu_handle(e, req, n, resp, cap, &rlen, t_ms));
	return rlen;
}

/* Sends hex and compares the whole response with want (hex; "" = no response). */
static void xchg(ecu *e, const char *req_hex, const char *want_hex)
{
	size_t n = 0, wn = 0;
	uint8_t *req = tu_unhex(req_hex, &n);
	uint8_t *want = tu_unhex(want_hex, &wn);
	uint8_t resp[2048];
	size_t rlen = xchg_raw(e, req, n, resp, sizeof(resp));
	if (rlen != wn || memcmp(resp, want, wn) != 0) {
		char got[128];
		pq_hex_encode(resp, rlen > 60 ? 60 : rlen, got);
		fail_msg("%s: got %s (%zu bytes), want %s", req_hex, got, rlen, want_hex);
	}
	free(req);
	free(want);
}

/* Expects 7F sid nrc. */
static void nrc(ecu *e, const char *req_hex, uint8_t want)
{
	char w[8];
	size_t n = 0;
	uint8_t *req = tu_unhex(req_hex, &n);
	snprintf(w, sizeof(w), "7F%02X%02X", req[0], want);
	free(req);
	xchg(e, req_hex, w);
}

static void unlock(ecu *e, const char *session)
{
	uint8_t resp[64];
	char req[8];
	snprintf(req, sizeof(req), "10%s", session);
	size_t n = 0;
	uint8_t *q = tu_unhex(req, &n);
	assert_int_equal(xchg_raw(e, q, n, resp, sizeof(resp)), 6);
	free(q);
	static const uint8_t seed_req[2] = {0x27, 0x01};
	assert_int_equal(xchg_raw(e, seed_req, 2, resp, sizeof(resp)), 6);
	assert_memory_equal(resp, "\x67\x01", 2);
	uint8_t key_req[6] = {0x27, 0x02};
	assert_ok(uds_sim_key(ADDR, resp + 2, key_req + 2));
	assert_int_equal(xchg_raw(e, key_req, 6, resp, sizeof(resp)), 2);
	assert_memory_equal(resp, "\x67\x02", 2);
}

static void test_sessions(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	xchg(&e, "1001", "5001003201F4"); /* P2 50 ms, P2* 500 x 10 ms */
	xchg(&e, "1003", "5003003201F4");
	xchg(&e, "1002", "5002003201F4");
	nrc(&e, "1004", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	nrc(&e, "10", UDS_NRC_BAD_LENGTH);
	nrc(&e, "100100", UDS_NRC_BAD_LENGTH);
	nrc(&e, "85", UDS_NRC_SERVICE_NOT_SUPPORTED);
	nrc(&e, "50", UDS_NRC_SERVICE_NOT_SUPPORTED);
	/* suppressed positive response, the session still changes */
	xchg(&e, "1081", "");
	nrc(&e, "2701", UDS_NRC_NOT_IN_SESSION);
	/* services of the programming session in the default session */
	nrc(&e, "3101FF00", UDS_NRC_NOT_IN_SESSION);
	nrc(&e, "340044000000000000000010", UDS_NRC_NOT_IN_SESSION);
	nrc(&e, "360100", UDS_NRC_NOT_IN_SESSION);
	nrc(&e, "37", UDS_NRC_NOT_IN_SESSION);
	nrc(&e, "2EF18C41", UDS_NRC_NOT_IN_SESSION);
	/* extended session: routines still need the programming session */
	xchg(&e, "1003", "5003003201F4");
	nrc(&e, "3101FF00", UDS_NRC_NOT_IN_SESSION);
	ecu_free(&e);
}

static void test_s3_timeout(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	unlock(&e, "02");
	xchg(&e, "3101FF00", "7101FF0000");
	t_ms += 4000;
	xchg(&e, "3E00", "7E00"); /* tester present keeps the session */
	t_ms += 4000;
	xchg(&e, "3E80", "");
	t_ms += 4000;
	xchg(&e, "3101FF00", "7101FF0000"); /* still programming, still unlocked */
	t_ms += ECU_S3_MS + 1;
	nrc(&e, "3101FF00", UDS_NRC_NOT_IN_SESSION); /* back in default */
	xchg(&e, "1002", "5002003201F4");
	nrc(&e, "3101FF00", UDS_NRC_SECURITY_DENIED); /* relocked */
	/* ecu_tick alone applies it too */
	unlock(&e, "02");
	t_ms += ECU_S3_MS + 1;
	ecu_tick(&e, t_ms);
	assert_int_equal(e.session, UDS_SESSION_DEFAULT);
	assert_false(e.unlocked);
	ecu_free(&e);
}

static void test_read_did(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	uint8_t resp[2048];
	static const uint8_t vin[3] = {0x22, 0xF1, 0x90};
	assert_int_equal(xchg_raw(&e, vin, 3, resp, sizeof(resp)), 3 + 32);
	assert_memory_equal(resp, "\x62\xF1\x90" VIN, 3 + strlen(VIN));
	for (size_t i = 3 + strlen(VIN); i < 35; i++)
		assert_int_equal(resp[i], 0);
	nrc(&e, "22FFFF", UDS_NRC_OUT_OF_RANGE);
	nrc(&e, "22", UDS_NRC_BAD_LENGTH);
	nrc(&e, "22F1", UDS_NRC_BAD_LENGTH);
	nrc(&e, "22F190F1", UDS_NRC_BAD_LENGTH);
	/* several DIDs, an unknown one among them is left out */
	xchg(&e, "22F1A0FFFFF1A4", "62F1A041F1A400000000000004D2");
	/* 17 DIDs: more than one request may carry */
	nrc(&e, "22F190F190F190F190F190F190F190F190F190F190F190F190F190F190F190F190F190",
	    UDS_NRC_BAD_LENGTH);
	/* a response that does not fit the caller's buffer: responseTooLong */
	static const uint8_t two[5] = {0x22, 0xF1, 0x91, 0xF1, 0x95};
	assert_int_equal(xchg_raw(&e, two, 5, resp, 100), 3);
	assert_memory_equal(resp, "\x7F\x22\x14", 3);
	/* every identification DID and its parse */
	static const uint16_t all[] = {0xF187, 0xF188, 0xF189, 0xF18C, 0xF190, 0xF191,
	                               0xF195, 0xF1A0, 0xF1A1, 0xF1A2, 0xF1A3, 0xF1A4};
	uint8_t req[64];
	size_t n = 0;
	assert_ok(uds_build_read_did(all, 12, req, sizeof(req), &n));
	size_t rlen = xchg_raw(&e, req, n, resp, sizeof(resp));
	uds_did_rec recs[16];
	size_t count = 0;
	assert_ok(uds_parse_read_did_resp(resp, rlen, recs, 16, &count, NULL));
	assert_int_equal(count, 12);
	char text[80];
	assert_ok(uds_did_text(&recs[0], text, sizeof(text)));
	assert_string_equal(text, "PN-011");
	assert_ok(uds_did_text(&recs[1], text, sizeof(text)));
	assert_string_equal(text, "SW-ECU_011-1.0.0");
	assert_ok(uds_did_text(&recs[3], text, sizeof(text)));
	assert_string_equal(text, "SER-011");
	assert_ok(uds_did_text(&recs[5], text, sizeof(text)));
	assert_string_equal(text, "HW-1-011");
	assert_ok(uds_did_text(&recs[6], text, sizeof(text)));
	assert_string_equal(text, "SUP-1.0.0");
	uint8_t sha[32];
	memset(sha, 0xAB, sizeof(sha));
	assert_memory_equal(recs[10].data, sha, 32);
	assert_int_equal(uds_get64(recs[11].data), 1234);
	ecu_free(&e);
}

static unsigned dtc_count(ecu *e)
{
	uint8_t resp[64];
	static const uint8_t req[3] = {0x19, 0x01, 0x09};
	size_t rlen = xchg_raw(e, req, 3, resp, sizeof(resp));
	unsigned count = 0;
	assert_ok(uds_parse_dtc_count_resp(resp, rlen, &count, NULL));
	return count;
}

static void test_security(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	uint8_t resp[64];
	xchg(&e, "1003", "5003003201F4");
	nrc(&e, "270200000000", UDS_NRC_SEQUENCE); /* a key without a seed */
	nrc(&e, "2703", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	nrc(&e, "27", UDS_NRC_BAD_LENGTH);
	nrc(&e, "270100", UDS_NRC_BAD_LENGTH);
	static const uint8_t seed_req[2] = {0x27, 0x01};
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(xchg_raw(&e, seed_req, 2, resp, sizeof(resp)), 6);
		assert_true(resp[2] | resp[3] | resp[4] | resp[5]);
		uint8_t key[6] = {0x27, 0x02};
		assert_ok(uds_sim_key(ADDR, resp + 2, key + 2));
		key[5] ^= 1;
		assert_int_equal(xchg_raw(&e, key, 6, resp, sizeof(resp)), 3);
		assert_int_equal(resp[2], i < 3 ? UDS_NRC_INVALID_KEY : UDS_NRC_EXCEEDED_ATTEMPTS);
	}
	/* locked out for ECU_LOCKOUT_MS */
	nrc(&e, "2701", UDS_NRC_DELAY_NOT_EXPIRED);
	t_ms += ECU_LOCKOUT_MS - 10;
	nrc(&e, "2701", UDS_NRC_DELAY_NOT_EXPIRED);
	t_ms += 20;
	/* a seed answers one key only */
	assert_int_equal(xchg_raw(&e, seed_req, 2, resp, sizeof(resp)), 6);
	uint8_t key[6] = {0x27, 0x02};
	assert_ok(uds_sim_key(ADDR, resp + 2, key + 2));
	assert_int_equal(xchg_raw(&e, key, 6, resp, sizeof(resp)), 2);
	assert_memory_equal(resp, "\x67\x02", 2);
	nrc(&e, "270200000000", UDS_NRC_SEQUENCE);
	/* already unlocked: a zero seed */
	xchg(&e, "2701", "670100000000");
	/* the invalid keys left a DTC */
	assert_int_equal(dtc_count(&e), 1);
	xchg(&e, "190209", "590209D0010209");
	xchg(&e, "190204", "590209"); /* no DTC with that status bit */
	nrc(&e, "1903", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	nrc(&e, "1901", UDS_NRC_BAD_LENGTH);
	assert_true(ecu_take_dirty(&e));
	assert_false(ecu_take_dirty(&e));
	nrc(&e, "14000001", UDS_NRC_OUT_OF_RANGE);
	nrc(&e, "14FFFF", UDS_NRC_BAD_LENGTH);
	xchg(&e, "14FFFFFF", "54");
	assert_int_equal(dtc_count(&e), 0);
	assert_true(ecu_take_dirty(&e));
	/* deny_security: every key is invalid */
	e.deny_security = true;
	xchg(&e, "1003", "5003003201F4"); /* relocks */
	assert_int_equal(xchg_raw(&e, seed_req, 2, resp, sizeof(resp)), 6);
	assert_ok(uds_sim_key(ADDR, resp + 2, key + 2));
	assert_int_equal(xchg_raw(&e, key, 6, resp, sizeof(resp)), 3);
	assert_int_equal(resp[2], UDS_NRC_INVALID_KEY);
	ecu_free(&e);
}

static void test_write_did(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	xchg(&e, "1003", "5003003201F4");
	nrc(&e, "2EF18C4E4557", UDS_NRC_SECURITY_DENIED);
	unlock(&e, "03");
	nrc(&e, "2EF1904E4557", UDS_NRC_OUT_OF_RANGE); /* not writable */
	nrc(&e, "2EF18C", UDS_NRC_BAD_LENGTH);
	nrc(&e, "2EF18C4E0157", UDS_NRC_OUT_OF_RANGE); /* not printable */
	assert_false(ecu_take_dirty(&e));
	xchg(&e, "2EF18C4E45572D534552", "6EF18C");
	assert_true(ecu_take_dirty(&e));
	assert_string_equal(e.serial, "NEW-SER");
	xchg(&e, "22F18C",
	     "62F18C4E45572D53455200000000000000000000000000000000000000000000000000");
	ecu_free(&e);
}

/* Starts a download of size bytes: programming session, unlocked, erased, 0x34. */
static void start_download(ecu *e, uint32_t size)
{
	char req[40];
	unlock(e, "02");
	xchg(e, "3101FF00", "7101FF0000");
	snprintf(req, sizeof(req), "34004400000000%08X", size);
	xchg(e, req, "74201002"); /* maxNumberOfBlockLength 4098 */
}

static void transfer(ecu *e, uint8_t bsc, const uint8_t *data, size_t n)
{
	uint8_t req[UDS_MAX_BLOCK + 2];
	uint8_t resp[16];
	req[0] = 0x36;
	req[1] = bsc;
	memcpy(req + 2, data, n);
	size_t rlen = xchg_raw(e, req, n + 2, resp, sizeof(resp));
	if (rlen != 2 || resp[0] != 0x76 || resp[1] != bsc)
		fail_msg("block %02X: %02X %02X %02X", bsc, resp[0], resp[1], resp[2]);
}

static void check_req(const uint8_t *img, size_t n, const char *version, uint8_t *req, size_t *len)
{
	uds_check_req c;
	memset(&c, 0, sizeof(c));
	assert_ok(pq_hash(PQ_HASH_SHA256, img, n, c.sha256));
	c.crc32 = pq_crc32(0, img, n);
	c.len = n;
	c.software_type = 1;
	snprintf(c.version, sizeof(c.version), "%s", version);
	assert_ok(uds_build_check(&c, req, UDS_CHECK_REQ_MAX, len));
}

static void test_download_errors(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	unlock(&e, "02");
	nrc(&e, "3400440000000000000010", UDS_NRC_SEQUENCE); /* not erased */
	xchg(&e, "3101FF00", "7101FF0000");
	nrc(&e, "3400440000000000200000", UDS_NRC_DOWNLOAD_NOT_ACCEPTED); /* > 1 MiB */
	nrc(&e, "3411440000000000000010", UDS_NRC_OUT_OF_RANGE);          /* compressed */
	nrc(&e, "34004400000000000000", UDS_NRC_BAD_LENGTH);
	nrc(&e, "3400094400", UDS_NRC_BAD_LENGTH);               /* 9-byte address */
	nrc(&e, "3400440000000000000000", UDS_NRC_OUT_OF_RANGE); /* size 0 */
	nrc(&e, "360100", UDS_NRC_SEQUENCE);                     /* no download */
	nrc(&e, "37", UDS_NRC_SEQUENCE);
	xchg(&e, "3400440000000000000010", "74201002");
	nrc(&e, "3400440000000000000010", UDS_NRC_CONDITIONS); /* one at a time */
	nrc(&e, "3602AA", UDS_NRC_WRONG_BSC);                  /* starts at 1 */
	nrc(&e, "3600AA", UDS_NRC_WRONG_BSC);
	nrc(&e, "36", UDS_NRC_BAD_LENGTH);
	nrc(&e, "3601", UDS_NRC_BAD_LENGTH);
	uint8_t data[17];
	memset(data, 0x11, sizeof(data));
	uint8_t req[2 + 17] = {0x36, 0x01};
	memcpy(req + 2, data, 17);
	uint8_t resp[8];
	assert_int_equal(xchg_raw(&e, req, sizeof(req), resp, sizeof(resp)), 3);
	assert_int_equal(resp[2], UDS_NRC_TRANSFER_SUSPENDED); /* 17 > 16 announced */
	transfer(&e, 1, data, 10);
	transfer(&e, 1, data, 10); /* the repeat: accepted, not counted */
	assert_int_equal(e.dl_got, 10);
	nrc(&e, "3603AA", UDS_NRC_WRONG_BSC);
	nrc(&e, "37", UDS_NRC_SEQUENCE); /* 6 bytes missing */
	nrc(&e, "3701", UDS_NRC_BAD_LENGTH);
	/* the check before the transfer is complete */
	uint8_t ck[UDS_CHECK_REQ_MAX];
	size_t ckn = 0;
	check_req(data, 16, "1.0.1", ck, &ckn);
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 3);
	assert_int_equal(resp[2], UDS_NRC_SEQUENCE);
	nrc(&e, "3101FF01", UDS_NRC_BAD_LENGTH);
	nrc(&e, "3101FF0000", UDS_NRC_BAD_LENGTH);
	nrc(&e, "3101FF03", UDS_NRC_OUT_OF_RANGE); /* unknown routine */
	nrc(&e, "3102FF00", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	ecu_free(&e);
}

static void test_program_and_banks(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	/* 300 blocks of 64 bytes: the counter goes 01..FF, 00, 01..2C */
	size_t n = 300 * 64;
	uint8_t *img = malloc(n);
	assert_non_null(img);
	for (size_t i = 0; i < n; i++)
		img[i] = (uint8_t)(i * 7 + i / 251);
	start_download(&e, (uint32_t)n);
	uint8_t bsc = 1;
	for (size_t b = 0; b < 300; b++) {
		transfer(&e, bsc, img + b * 64, 64);
		if (b == 254)
			assert_int_equal(bsc, 0xFF);
		if (b == 255)
			assert_int_equal(bsc, 0x00);
		bsc++;
	}
	nrc(&e, "360000", UDS_NRC_WRONG_BSC);
	xchg(&e, "37", "77");
	uint8_t ck[UDS_CHECK_REQ_MAX];
	size_t ckn = 0;
	check_req(img, n, "1.2.0", ck, &ckn);
	uint8_t resp[2048];
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 5);
	assert_memory_equal(resp, "\x71\x01\xFF\x01\x00", 5);
	assert_true(ecu_take_dirty(&e));
	xchg(&e, "22F1A0", "62F1A041"); /* still A until the reset */
	xchg(&e, "1101", "5101");
	assert_true(ecu_take_dirty(&e));
	xchg(&e, "22F1A0", "62F1A042");
	static const uint8_t q[5] = {0x22, 0xF1, 0x89, 0xF1, 0xA3};
	size_t rlen = xchg_raw(&e, q, 5, resp, sizeof(resp));
	assert_int_equal(rlen, 1 + 2 + 24 + 2 + 32);
	assert_memory_equal(resp + 3, "1.2.0", 6);
	uint8_t sha[32];
	assert_ok(pq_hash(PQ_HASH_SHA256, img, n, sha));
	assert_memory_equal(resp + 3 + 24 + 2, sha, 32);
	/* the reset relocked and left the programming session */
	nrc(&e, "2701", UDS_NRC_NOT_IN_SESSION);
	assert_int_equal(e.previous, 0);

	/* rollback: effective at the next reset */
	unlock(&e, "02");
	xchg(&e, "3101FF02", "7101FF0200");
	xchg(&e, "22F1A0", "62F1A042");
	xchg(&e, "1181", ""); /* suppressed, still a reset */
	xchg(&e, "22F1A0", "62F1A041");
	xchg(&e, "22F189", "62F189312E302E3000000000000000000000000000000000000000");
	/* and forward again: the previous bank is now B */
	unlock(&e, "02");
	xchg(&e, "3101FF02", "7101FF0200");
	xchg(&e, "1101", "5101");
	xchg(&e, "22F1A0", "62F1A042");
	/* erasing the inactive bank drops the rollback target */
	unlock(&e, "02");
	xchg(&e, "3101FF00", "7101FF0000");
	nrc(&e, "3101FF02", UDS_NRC_CONDITIONS);
	xchg(&e, "1101", "5101");
	xchg(&e, "22F1A0", "62F1A042");
	free(img);
	ecu_free(&e);
}

static void test_check_mismatch(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	uint8_t data[100];
	memset(data, 0x5A, sizeof(data));
	start_download(&e, sizeof(data));
	transfer(&e, 1, data, sizeof(data));
	xchg(&e, "37", "77");
	uint8_t ck[UDS_CHECK_REQ_MAX];
	size_t ckn = 0;
	check_req(data, sizeof(data), "9.9.9", ck, &ckn);
	ck[4] ^= 0xFF; /* another SHA-256 */
	uint8_t resp[64];
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 3);
	assert_memory_equal(resp, "\x7F\x31\x72", 3);
	assert_int_equal(dtc_count(&e), 1);
	xchg(&e, "190209", "590209D0010109");
	/* the bank is not activatable: a reset stays on A, and a new check needs a new
	 * transfer */
	ck[4] ^= 0xFF;
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 3);
	assert_memory_equal(resp, "\x7F\x31\x24", 3);
	xchg(&e, "1101", "5101");
	xchg(&e, "22F1A0", "62F1A041");
	nrc(&e, "22F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0F1A0",
	    UDS_NRC_BAD_LENGTH);

	/* fail_program: the right image is refused too */
	e.fail_program = true;
	start_download(&e, sizeof(data));
	transfer(&e, 1, data, sizeof(data));
	xchg(&e, "37", "77");
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 3);
	assert_memory_equal(resp, "\x7F\x31\x72", 3);
	e.fail_program = false;

	/* corrupt_block: the second block lands altered, the hash differs */
	e.corrupt_block = true;
	start_download(&e, sizeof(data));
	transfer(&e, 1, data, 50);
	transfer(&e, 2, data + 50, 50);
	xchg(&e, "37", "77");
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 3);
	assert_memory_equal(resp, "\x7F\x31\x72", 3);
	xchg(&e, "1101", "5101");
	xchg(&e, "22F1A0", "62F1A041");
	ecu_free(&e);
}

static void test_suppress(void **state)
{
	(void)state;
	ecu e;
	make_ecu(&e);
	xchg(&e, "3E00", "7E00");
	xchg(&e, "3E80", "");
	nrc(&e, "3E01", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	nrc(&e, "3E", UDS_NRC_BAD_LENGTH);
	nrc(&e, "3E8000", UDS_NRC_BAD_LENGTH);
	/* negative responses are never suppressed */
	nrc(&e, "1084", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	nrc(&e, "3181FF00", UDS_NRC_NOT_IN_SESSION);
	/* 0x19 has no suppress bit: 0x81 is an unknown sub-function */
	nrc(&e, "198109", UDS_NRC_SUBFUNC_NOT_SUPPORTED);
	unlock(&e, "02");
	xchg(&e, "3181FF00", "");
	xchg(&e, "3400440000000000000004", "74201002"); /* the erase happened */
	ecu_free(&e);
}

static void test_gateway(void **state)
{
	(void)state;
	ecu g;
	assert_ok(ecu_init_gateway(&g, 2, 0x0092, VIN));
	xchg(&g, "1003", "5003003201F4");
	xchg(&g, "3E00", "7E00");
	uint8_t resp[128];
	static const uint8_t req[3] = {0x22, 0xF1, 0x91};
	assert_int_equal(xchg_raw(&g, req, 3, resp, sizeof(resp)), 3 + 64);
	assert_memory_equal(resp + 3, "ZGW-2", 6);
	nrc(&g, "22F1A0", UDS_NRC_OUT_OF_RANGE);
	nrc(&g, "2701", UDS_NRC_SERVICE_NOT_SUPPORTED);
	nrc(&g, "1101", UDS_NRC_SERVICE_NOT_SUPPORTED);
	nrc(&g, "3101FF00", UDS_NRC_SERVICE_NOT_SUPPORTED);
	nrc(&g, "14FFFFFF", UDS_NRC_SERVICE_NOT_SUPPORTED);
	ecu_free(&g);
}

static void test_state_json(void **state)
{
	(void)state;
	ecu e, f;
	make_ecu(&e);
	make_ecu(&f);
	uint8_t data[64];
	memset(data, 1, sizeof(data));
	start_download(&e, sizeof(data));
	transfer(&e, 1, data, sizeof(data));
	xchg(&e, "37", "77");
	uint8_t ck[UDS_CHECK_REQ_MAX];
	size_t ckn = 0;
	check_req(data, sizeof(data), "2.0.0", ck, &ckn);
	uint8_t resp[64];
	assert_int_equal(xchg_raw(&e, ck, ckn, resp, sizeof(resp)), 5);
	xchg(&e, "1101", "5101");
	xchg(&e, "1003", "5003003201F4");
	nrc(&e, "270212345678", UDS_NRC_SEQUENCE);
	json_t *j = ecu_state_json(&e);
	assert_non_null(j);
	char *text = json_dumps(j, JSON_SORT_KEYS);
	assert_non_null(strstr(text, "\"active\": \"B\""));
	assert_non_null(strstr(text, "\"previous\": \"A\""));
	assert_ok(ecu_state_load(&f, j));
	assert_int_equal(f.active, 1);
	assert_int_equal(f.previous, 0);
	assert_int_equal(f.pending, -1);
	assert_string_equal(f.bank[1].version[VM_SW_APP], "2.0.0");
	assert_memory_equal(f.bank[1].sha256, e.bank[1].sha256, 32);
	assert_int_equal(f.bank[1].crc32, pq_crc32(0, data, sizeof(data)));
	assert_int_equal(f.bank[0].len, 1234);
	/* malformed: refused with the field, the ECU unchanged */
	static const char *const bad[] = {
	    "{\"active\":\"C\"}",
	    ("{\"active\":\"A\",\"previous\":null,\"pending\":null,\"serial\":\"x\",\"banks\":{},"
	     "\"dtcs\":[]}"),
	    "[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = json_loads(bad[i], 0, NULL);
		assert_non_null(b);
		assert_rc(ecu_state_load(&f, b), PQ_ERR_FORMAT);
		assert_non_null(strstr(pq_err_detail(), "ECU_011"));
		json_decref(b);
	}
	json_object_set_new(j, "extra", json_true());
	assert_rc(ecu_state_load(&f, j), PQ_ERR_FORMAT);
	assert_non_null(strstr(pq_err_detail(), "extra"));
	assert_int_equal(f.active, 1);
	free(text);
	json_decref(j);
	ecu_free(&e);
	ecu_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sessions),          cmocka_unit_test(test_s3_timeout),
	    cmocka_unit_test(test_read_did),          cmocka_unit_test(test_security),
	    cmocka_unit_test(test_write_did),         cmocka_unit_test(test_download_errors),
	    cmocka_unit_test(test_program_and_banks), cmocka_unit_test(test_check_mismatch),
	    cmocka_unit_test(test_suppress),          cmocka_unit_test(test_gateway),
	    cmocka_unit_test(test_state_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
