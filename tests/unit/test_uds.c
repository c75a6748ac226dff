/* test_uds.c: the UDS (ISO 14229-1) codec: NRC and service names, the DID table, the
 * simulation's security key, request builders and response parsers with malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "vehicle/uds.h"

static void test_names(void **state)
{
	(void)state;
	static const struct {
		uint8_t nrc;
		const char *name;
	} nrcs[] = {
	    {0x10, "generalReject"},
	    {0x11, "serviceNotSupported"},
	    {0x12, "subFunctionNotSupported"},
	    {0x13, "incorrectMessageLengthOrInvalidFormat"},
	    {0x14, "responseTooLong"},
	    {0x21, "busyRepeatRequest"},
	    {0x22, "conditionsNotCorrect"},
	    {0x24, "requestSequenceError"},
	    {0x25, "noResponseFromSubnetComponent"},
	    {0x26, "failurePreventsExecutionOfRequestedAction"},
	    {0x31, "requestOutOfRange"},
	    {0x33, "securityAccessDenied"},
	    {0x35, "invalidKey"},
	    {0x36, "exceedNumberOfAttempts"},
	    {0x37, "requiredTimeDelayNotExpired"},
	    {0x70, "uploadDownloadNotAccepted"},
	    {0x71, "transferDataSuspended"},
	    {0x72, "generalProgrammingFailure"},
	    {0x73, "wrongBlockSequenceCounter"},
	    {0x78, "requestCorrectlyReceivedResponsePending"},
	    {0x7E, "subFunctionNotSupportedInActiveSession"},
	    {0x7F, "serviceNotSupportedInActiveSession"},
	};
	for (size_t i = 0; i < sizeof(nrcs) / sizeof(nrcs[0]); i++)
		assert_string_equal(uds_nrc_name(nrcs[i].nrc), nrcs[i].name);
	assert_string_equal(uds_nrc_name(0x00), "unknownNRC");
	assert_string_equal(uds_nrc_name(0xFF), "unknownNRC");
	assert_string_equal(uds_sid_name(0x22), "ReadDataByIdentifier");
	assert_string_equal(uds_sid_name(0x36), "TransferData");
	assert_string_equal(uds_sid_name(0x99), "unknownService");
}

static void test_dids_and_key(void **state)
{
	(void)state;
	assert_int_equal(uds_did_size(0xF190), 32);
	assert_int_equal(uds_did_size(0xF191), 64);
	assert_int_equal(uds_did_size(0xF1A0), 1);
	assert_int_equal(uds_did_size(0xF1A3), 32);
	assert_int_equal(uds_did_size(0xF1A4), 8);
	assert_int_equal(uds_did_size(0xFFFF), 0);
	assert_true(uds_did_is_text(0xF189));
	assert_false(uds_did_is_text(0xF1A3));
	assert_false(uds_did_is_text(0x1234));

	/* key = SHA-256("pqota-sim-key" || addr BE || seed)[0..4] */
	static const uint8_t seed[4] = {0xDE, 0xAD, 0xBE, 0xEF};
	uint8_t msg[13 + 2 + 4], md[32], key[4];
	memcpy(msg, "pqota-sim-key", 13);
	msg[13] = 0x10;
	msg[14] = 0x11;
	memcpy(msg + 15, seed, 4);
	assert_ok(pq_hash(PQ_HASH_SHA256, msg, sizeof(msg), md));
	assert_ok(uds_sim_key(0x1011, seed, key));
	assert_memory_equal(key, md, 4);
	uint8_t other[4];
	assert_ok(uds_sim_key(0x1012, seed, other));
	assert_memory_not_equal(key, other, 4);

	uint8_t b[8];
	uds_put64(b, 0x0102030405060708ull);
	assert_int_equal(uds_get64(b), 0x0102030405060708ull);
	assert_int_equal(uds_get32(b), 0x01020304u);
	assert_int_equal(uds_get16(b + 6), 0x0708);
}

static void test_check_response(void **state)
{
	(void)state;
	uint8_t nrc = 0;
	assert_ok(uds_check_response(0x22, (const uint8_t *)"\x62\xF1\x90", 3, &nrc));
	assert_rc(uds_check_response(0x22, (const uint8_t *)"\x7F\x22\x31", 3, &nrc),
	          PQ_ERR_VERIFY);
	assert_int_equal(nrc, 0x31);
	assert_non_null(strstr(pq_err_detail(), "requestOutOfRange"));
	/* another service's answers, short negatives, nothing */
	assert_rc(uds_check_response(0x22, (const uint8_t *)"\x7F\x10\x31", 3, &nrc),
	          PQ_ERR_FORMAT);
	assert_rc(uds_check_response(0x22, (const uint8_t *)"\x7F\x22", 2, &nrc), PQ_ERR_FORMAT);
	assert_rc(uds_check_response(0x22, (const uint8_t *)"\x50", 1, &nrc), PQ_ERR_FORMAT);
	assert_rc(uds_check_response(0x22, NULL, 0, &nrc), PQ_ERR_FORMAT);
	uint8_t neg[3];
	assert_int_equal(uds_negative(neg, 0x27, 0x35), 3);
	assert_memory_equal(neg, "\x7F\x27\x35", 3);
	assert_true(uds_suppress_requested((const uint8_t *)"\x3E\x80", 2));
	assert_true(uds_suppress_requested((const uint8_t *)"\x31\x81\xFF\x00", 4));
	assert_false(uds_suppress_requested((const uint8_t *)"\x3E\x00", 2));
	assert_false(uds_suppress_requested((const uint8_t *)"\x19\x81", 2));
	assert_false(uds_suppress_requested((const uint8_t *)"\x3E", 1));
}

static void test_session_seed_routine(void **state)
{
	(void)state;
	uint16_t p2 = 0;
	uint32_t p2s = 0;
	uint8_t nrc = 0;
	assert_ok(uds_parse_session_resp((const uint8_t *)"\x50\x02\x00\x32\x01\xF4", 6, 2, &p2,
	                                 &p2s, &nrc));
	assert_int_equal(p2, 50);
	assert_int_equal(p2s, 5000);
	assert_rc(uds_parse_session_resp((const uint8_t *)"\x50\x03\x00\x32\x01\xF4", 6, 2, &p2,
	                                 &p2s, &nrc),
	          PQ_ERR_FORMAT);
	assert_rc(
	    uds_parse_session_resp((const uint8_t *)"\x50\x02\x00\x32\x01", 5, 2, &p2, &p2s, &nrc),
	    PQ_ERR_FORMAT);
	assert_rc(uds_parse_session_resp((const uint8_t *)"\x7F\x10\x12", 3, 2, &p2, &p2s, &nrc),
	          PQ_ERR_VERIFY);
	assert_int_equal(nrc, 0x12);

	uint8_t seed[4];
	assert_ok(uds_parse_seed_resp((const uint8_t *)"\x67\x01\x01\x02\x03\x04", 6, seed, NULL));
	assert_memory_equal(seed, "\x01\x02\x03\x04", 4);
	assert_rc(uds_parse_seed_resp((const uint8_t *)"\x67\x01\x01\x02\x03", 5, seed, NULL),
	          PQ_ERR_FORMAT);
	assert_rc(uds_parse_seed_resp((const uint8_t *)"\x67\x02", 2, seed, NULL), PQ_ERR_FORMAT);

	uint8_t st = 0xEE;
	assert_ok(
	    uds_parse_routine_resp((const uint8_t *)"\x71\x01\xFF\x01\x00", 5, 0xFF01, &st, NULL));
	assert_int_equal(st, 0);
	assert_ok(
	    uds_parse_routine_resp((const uint8_t *)"\x71\x01\xFF\x00", 4, 0xFF00, &st, NULL));
	assert_rc(
	    uds_parse_routine_resp((const uint8_t *)"\x71\x01\xFF\x00\x00", 5, 0xFF01, &st, NULL),
	    PQ_ERR_FORMAT);
	assert_rc(uds_parse_routine_resp((const uint8_t *)"\x7F\x31\x72", 3, 0xFF01, &st, &nrc),
	          PQ_ERR_VERIFY);
	assert_int_equal(nrc, 0x72);
}

static void test_read_did(void **state)
{
	(void)state;
	uint8_t req[64];
	size_t n = 0;
	static const uint16_t dids[3] = {0xF190, 0xF1A0, 0xF1A4};
	assert_ok(uds_build_read_did(dids, 3, req, sizeof(req), &n));
	assert_int_equal(n, 7);
	assert_memory_equal(req, "\x22\xF1\x90\xF1\xA0\xF1\xA4", 7);
	assert_rc(uds_build_read_did(dids, 0, req, sizeof(req), &n), PQ_ERR_INVAL);
	assert_rc(uds_build_read_did(dids, 3, req, 6, &n), PQ_ERR_RANGE);

	/* 62 F1A0 'B' F1A4 u64 */
	static const uint8_t resp[] = {0x62, 0xF1, 0xA0, 'B', 0xF1, 0xA4, 0,
	                               0,    0,    0,    0,   0,    0x12, 0x34};
	uds_did_rec recs[4];
	size_t count = 0;
	assert_ok(uds_parse_read_did_resp(resp, sizeof(resp), recs, 4, &count, NULL));
	assert_int_equal(count, 2);
	assert_int_equal(recs[0].did, 0xF1A0);
	assert_int_equal(recs[0].len, 1);
	assert_int_equal(recs[0].data[0], 'B');
	assert_int_equal(uds_get64(recs[1].data), 0x1234);
	assert_rc(uds_parse_read_did_resp(resp, sizeof(resp), recs, 1, &count, NULL), PQ_ERR_RANGE);
	/* truncated record, half a DID, unknown DID, no record */
	assert_rc(uds_parse_read_did_resp(resp, sizeof(resp) - 1, recs, 4, &count, NULL),
	          PQ_ERR_FORMAT);
	assert_rc(uds_parse_read_did_resp(resp, 5, recs, 4, &count, NULL), PQ_ERR_FORMAT);
	static const uint8_t unk[] = {0x62, 0x12, 0x34, 0x00};
	assert_rc(uds_parse_read_did_resp(unk, sizeof(unk), recs, 4, &count, NULL), PQ_ERR_FORMAT);
	assert_rc(uds_parse_read_did_resp(resp, 1, recs, 4, &count, NULL), PQ_ERR_FORMAT);

	/* text records: padding removed, bytes after the padding or control bytes refused */
	uint8_t pad[24];
	memset(pad, 0, sizeof(pad));
	memcpy(pad, "1.2.3", 5);
	uds_did_rec r = {0xF189, pad, sizeof(pad)};
	char out[32];
	assert_ok(uds_did_text(&r, out, sizeof(out)));
	assert_string_equal(out, "1.2.3");
	assert_rc(uds_did_text(&r, out, 5), PQ_ERR_RANGE);
	pad[10] = 'x';
	assert_rc(uds_did_text(&r, out, sizeof(out)), PQ_ERR_FORMAT);
	pad[10] = 0;
	pad[1] = 0x07;
	assert_rc(uds_did_text(&r, out, sizeof(out)), PQ_ERR_FORMAT);
	memset(pad, 'a', sizeof(pad));
	assert_ok(uds_did_text(&r, out, sizeof(out))); /* full length, no padding */
	assert_int_equal(strlen(out), 24);
}

static void test_download(void **state)
{
	(void)state;
	uint8_t b[20];
	assert_int_equal(uds_build_download(b, 0x1000, 300000), 11);
	assert_memory_equal(b, "\x34\x00\x44\x00\x00\x10\x00\x00\x04\x93\xE0", 11);
	assert_int_equal(uds_build_download(b, 0, 0x100000000ull), 15);
	assert_memory_equal(b, "\x34\x00\x84\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00", 15);
	uint64_t max = 0;
	assert_ok(uds_parse_download_resp((const uint8_t *)"\x74\x20\x10\x02", 4, &max, NULL));
	assert_int_equal(max, 4098);
	assert_ok(uds_parse_download_resp((const uint8_t *)"\x74\x10\x80", 3, &max, NULL));
	assert_int_equal(max, 128);
	assert_rc(uds_parse_download_resp((const uint8_t *)"\x74\x20\x10", 3, &max, NULL),
	          PQ_ERR_FORMAT);
	assert_rc(uds_parse_download_resp((const uint8_t *)"\x74\x00", 2, &max, NULL),
	          PQ_ERR_FORMAT);
	assert_rc(uds_parse_download_resp((const uint8_t *)"\x74\x21\x10\x02", 4, &max, NULL),
	          PQ_ERR_FORMAT);
	assert_rc(uds_parse_download_resp((const uint8_t *)"\x74", 1, &max, NULL), PQ_ERR_FORMAT);
	uint8_t nrc = 0;
	assert_rc(uds_parse_download_resp((const uint8_t *)"\x7F\x34\x70", 3, &max, &nrc),
	          PQ_ERR_VERIFY);
	assert_int_equal(nrc, 0x70);
}

static void test_check_record(void **state)
{
	(void)state;
	uds_check_req c, d;
	memset(&c, 0, sizeof(c));
	for (int i = 0; i < 32; i++)
		c.sha256[i] = (uint8_t)i;
	c.crc32 = 0xCAFEBABE;
	c.len = 0x0000000100000002ull;
	c.software_type = 2;
	snprintf(c.version, sizeof(c.version), "1.10.0-rc.1");
	uint8_t b[UDS_CHECK_REQ_MAX];
	size_t n = 0;
	assert_ok(uds_build_check(&c, b, sizeof(b), &n));
	assert_int_equal(n, 4 + 32 + 4 + 8 + 1 + 1 + 11);
	assert_memory_equal(b, "\x31\x01\xFF\x01", 4);
	assert_memory_equal(b + 36, "\xCA\xFE\xBA\xBE", 4);
	assert_memory_equal(b + 40, "\x00\x00\x00\x01\x00\x00\x00\x02", 8);
	assert_int_equal(b[48], 2);
	assert_int_equal(b[49], 11);
	assert_ok(uds_parse_check(b, n, &d));
	assert_memory_equal(d.sha256, c.sha256, 32);
	assert_int_equal(d.crc32, c.crc32);
	assert_int_equal(d.len, c.len);
	assert_int_equal(d.software_type, 2);
	assert_string_equal(d.version, "1.10.0-rc.1");
	/* wrong lengths, a version length that does not match, a control character */
	assert_rc(uds_parse_check(b, n - 1, &d), PQ_ERR_FORMAT);
	assert_rc(uds_parse_check(b, n + 1, &d), PQ_ERR_FORMAT);
	b[49] = 0;
	assert_rc(uds_parse_check(b, 50, &d), PQ_ERR_FORMAT);
	b[49] = 11;
	b[52] = 0x01;
	assert_rc(uds_parse_check(b, n, &d), PQ_ERR_FORMAT);
	b[2] = 0xFF;
	b[3] = 0x00;
	assert_rc(uds_parse_check(b, n, &d), PQ_ERR_FORMAT);
	/* builder limits */
	assert_rc(uds_build_check(&c, b, 40, &n), PQ_ERR_RANGE);
	c.version[0] = '\0';
	assert_rc(uds_build_check(&c, b, sizeof(b), &n), PQ_ERR_INVAL);
	memset(c.version, '1', 25);
	c.version[25] = '\0';
	assert_rc(uds_build_check(&c, b, sizeof(b), &n), PQ_ERR_INVAL);
}

static void test_dtc(void **state)
{
	(void)state;
	unsigned count = 0;
	assert_ok(
	    uds_parse_dtc_count_resp((const uint8_t *)"\x59\x01\x09\x01\x00\x02", 6, &count, NULL));
	assert_int_equal(count, 2);
	assert_rc(
	    uds_parse_dtc_count_resp((const uint8_t *)"\x59\x02\x09\x01\x00\x02", 6, &count, NULL),
	    PQ_ERR_FORMAT);
	uds_dtc d[2];
	size_t k = 0;
	static const uint8_t rep[] = {0x59, 0x02, 0x09, 0xD0, 0x01, 0x01,
	                              0x09, 0xD0, 0x01, 0x02, 0x08};
	assert_ok(uds_parse_dtc_report_resp(rep, sizeof(rep), d, 2, &k, NULL));
	assert_int_equal(k, 2);
	assert_int_equal(d[0].code, 0xD00101);
	assert_int_equal(d[0].status, 0x09);
	assert_int_equal(d[1].code, 0xD00102);
	assert_rc(uds_parse_dtc_report_resp(rep, sizeof(rep), d, 1, &k, NULL), PQ_ERR_RANGE);
	assert_rc(uds_parse_dtc_report_resp(rep, sizeof(rep) - 1, d, 2, &k, NULL), PQ_ERR_FORMAT);
	assert_ok(uds_parse_dtc_report_resp(rep, 3, d, 2, &k, NULL));
	assert_int_equal(k, 0);
}

/* uds_describe on bytes given in hex. */
static const char *describe(const char *hex, char *out, size_t cap)
{
	uint8_t b[256];
	size_t n = 0;
	assert_ok(pq_hex_decode(hex, b, sizeof(b), &n));
	return uds_describe(b, n, out, cap);
}

static void test_describe(void **state)
{
	(void)state;
	char out[128];
	/* a text identification DID, with or without one trailing NUL */
	assert_string_equal(describe("62F190575657415A5A5A314A5A58573030303030", out, sizeof(out)),
	                    "62 F190 \"WVWAZZZ1JZXW00000\" (VIN)");
	assert_string_equal(describe("62F18C534E2D3100", out, sizeof(out)),
	                    "62 F18C \"SN-1\" (serial number)");
	assert_string_equal(describe("62F19753595300", out, sizeof(out)),
	                    "62 F197 \"SYS\" (system name)");
	/* not text: padding beyond one NUL, a control byte, no data, a DID not shown as text */
	assert_string_equal(describe("62F18931003000", out, sizeof(out)), "62 F18931003000");
	assert_string_equal(describe("62F1900A41", out, sizeof(out)), "62 F1900A41");
	assert_string_equal(describe("62F190", out, sizeof(out)), "62 F190");
	assert_string_equal(describe("62F19000", out, sizeof(out)), "62 F19000");
	assert_string_equal(describe("62F1A041", out, sizeof(out)), "62 F1A041");
	/* negative responses by name */
	assert_string_equal(describe("7F2231", out, sizeof(out)),
	                    "NRC 0x31 requestOutOfRange (ReadDataByIdentifier)");
	assert_string_equal(describe("7F9936", out, sizeof(out)),
	                    "NRC 0x36 exceedNumberOfAttempts (unknownService)");
	assert_string_equal(describe("7FEEFE", out, sizeof(out)),
	                    "NRC 0xFE unknownNRC (unknownService)");
	/* anything else: the first byte, then up to 32 more in hex */
	assert_string_equal(describe("7F22", out, sizeof(out)), "7F 22");
	assert_string_equal(describe("5003003201F4", out, sizeof(out)), "50 03003201F4");
	assert_string_equal(describe("7E", out, sizeof(out)), "7E");
	assert_string_equal(uds_describe(NULL, 0, out, sizeof(out)), "");
	uint8_t big[40];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	assert_string_equal(uds_describe(big, 33, out, sizeof(out)),
	                    "00 0102030405060708090A0B0C0D0E0F10"
	                    "1112131415161718191A1B1C1D1E1F20");
	assert_string_equal(uds_describe(big, sizeof(big), out, sizeof(out)),
	                    "00 0102030405060708090A0B0C0D0E0F10"
	                    "1112131415161718191A1B1C1D1E1F20...");
	/* a small buffer: cut with "...", always terminated; nothing at all below 4 bytes */
	char small[12];
	assert_string_equal(
	    describe("62F190575657415A5A5A314A5A58573030303030", small, sizeof(small)),
	    "62 F190 ...");
	assert_int_equal(strlen(uds_describe(big, sizeof(big), small, sizeof(small))), 11);
	char tiny[3] = {'x', 'x', 'x'};
	assert_string_equal(uds_describe(big, sizeof(big), tiny, sizeof(tiny)), "");
	assert_ptr_equal(uds_describe(big, sizeof(big), tiny, 0), tiny);
	assert_int_equal(tiny[0], '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),          cmocka_unit_test(test_dids_and_key),
	    cmocka_unit_test(test_check_response), cmocka_unit_test(test_session_seed_routine),
	    cmocka_unit_test(test_read_did),       cmocka_unit_test(test_download),
	    cmocka_unit_test(test_check_record),   cmocka_unit_test(test_dtc),
	    cmocka_unit_test(test_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
