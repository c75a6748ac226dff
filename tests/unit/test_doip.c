/* test_doip.c: DoIP (ISO 13400-2) header, typed payloads and the stream reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "vehicle/doip.h"

static void parse_frame(const uint8_t *f, size_t n, uint16_t type, doip_hdr *h)
{
	uint8_t nack = 0xEE;
	assert_true(n >= DOIP_HDR_LEN);
	assert_ok(doip_hdr_parse(f, n, 4096, h, &nack));
	assert_int_equal(nack, 0xEE);
	assert_int_equal(h->type, type);
	assert_int_equal(h->len, n - DOIP_HDR_LEN);
}

static void test_header(void **state)
{
	(void)state;
	uint8_t b[8];
	doip_hdr h;
	uint8_t nack = 0;
	assert_int_equal(doip_hdr_write(b, DOIP_V2019, DOIP_DIAG_MSG, 0x01020304), 8);
	static const uint8_t want[8] = {0x03, 0xFC, 0x80, 0x01, 0x01, 0x02, 0x03, 0x04};
	assert_memory_equal(b, want, 8);
	/* 0x01020304 is too large for a 4096 limit, but the raw fields are still reported */
	assert_rc(doip_hdr_parse(b, 8, 4096, &h, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_TOO_LARGE);
	assert_int_equal(h.len, 0x01020304);
	assert_int_equal(h.version, 3);
	assert_rc(doip_hdr_parse(b, 7, 4096, &h, &nack), PQ_ERR_INVAL);
	/* 0xFF only for vehicle identification requests */
	doip_hdr_write(b, DOIP_VDEFAULT, DOIP_VID_REQ, 0);
	assert_ok(doip_hdr_parse(b, 8, 0, &h, &nack));
	doip_hdr_write(b, DOIP_VDEFAULT, DOIP_VID_REQ_VIN, 17);
	assert_ok(doip_hdr_parse(b, 8, 4096, &h, &nack));
	doip_hdr_write(b, DOIP_VDEFAULT, DOIP_ALIVE_REQ, 0);
	assert_rc(doip_hdr_parse(b, 8, 4096, &h, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_PATTERN);
	doip_hdr_write(b, DOIP_V2012, DOIP_ALIVE_REQ, 0);
	assert_ok(doip_hdr_parse(b, 8, 0, &h, &nack));
}

static void test_nacks(void **state)
{
	(void)state;
	uint8_t b[8];
	doip_hdr h;
	uint8_t nack;
	/* bad inverse version, unsupported versions */
	static const uint8_t pats[][2] = {{0x02, 0xFC}, {0x03, 0x03}, {0x01, 0xFE},
	                                  {0x04, 0xFB}, {0x00, 0xFF}, {0xFF, 0xFF}};
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		doip_hdr_write(b, DOIP_V2012, DOIP_DIAG_MSG, 10);
		b[0] = pats[i][0];
		b[1] = pats[i][1];
		nack = 0xEE;
		assert_rc(doip_hdr_parse(b, 8, 4096, &h, &nack), PQ_ERR_FORMAT);
		assert_int_equal(nack, DOIP_NACK_PATTERN);
	}
	/* unknown types */
	static const uint16_t unknown[] = {0x0009, 0x4001, 0x8000, 0x8004, 0xFFFF, 0x0004};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		doip_hdr_write(b, DOIP_V2012, unknown[i], 0);
		assert_rc(doip_hdr_parse(b, 8, 4096, &h, &nack), PQ_ERR_FORMAT);
		assert_int_equal(nack, DOIP_NACK_UNKNOWN_TYPE);
	}
	/* too large: checked before the type's length rule */
	doip_hdr_write(b, DOIP_V2019, DOIP_DIAG_MSG, 101);
	assert_ok(doip_hdr_parse(b, 8, 101, &h, &nack));
	assert_rc(doip_hdr_parse(b, 8, 100, &h, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_TOO_LARGE);
	doip_hdr_write(b, DOIP_V2019, DOIP_ALIVE_RESP, 0xFFFFFFFF);
	assert_rc(doip_hdr_parse(b, 8, 100, &h, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_TOO_LARGE);
	/* invalid length for each type: all lengths 0..20 not in the valid set */
	static const struct {
		uint16_t type;
		uint32_t a, b;
		bool min;
	} rules[] = {
	    {DOIP_GENERIC_NACK, 1, 1, false}, {DOIP_VID_REQ, 0, 0, false},
	    {DOIP_VID_REQ_EID, 6, 6, false},  {DOIP_VID_REQ_VIN, 17, 17, false},
	    {DOIP_ROUTING_REQ, 7, 11, false}, {DOIP_ROUTING_RESP, 9, 13, false},
	    {DOIP_ALIVE_REQ, 0, 0, false},    {DOIP_ALIVE_RESP, 2, 2, false},
	    {DOIP_DIAG_MSG, 5, 0, true},      {DOIP_DIAG_ACK, 5, 0, true},
	    {DOIP_DIAG_NACK, 5, 0, true},
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		for (uint32_t len = 0; len <= 20; len++) {
			bool ok = rules[i].min ? len >= rules[i].a
			                       : len == rules[i].a || len == rules[i].b;
			doip_hdr_write(b, DOIP_V2012, rules[i].type, len);
			nack = 0xEE;
			int rc = doip_hdr_parse(b, 8, 4096, &h, &nack);
			if (ok) {
				assert_int_equal(rc, PQ_OK);
				assert_int_equal(nack, 0xEE);
			} else {
				assert_int_equal(rc, PQ_ERR_FORMAT);
				assert_int_equal(nack, DOIP_NACK_INVALID_LEN);
			}
		}
	assert_true(doip_nack_closes(DOIP_NACK_PATTERN));
	assert_true(doip_nack_closes(DOIP_NACK_INVALID_LEN));
	assert_false(doip_nack_closes(DOIP_NACK_UNKNOWN_TYPE));
	assert_false(doip_nack_closes(DOIP_NACK_TOO_LARGE));
	assert_false(doip_nack_closes(DOIP_NACK_OUT_OF_MEM));
}

static void test_roundtrips(void **state)
{
	(void)state;
	uint8_t f[64];
	size_t n;
	doip_hdr h;

	/* generic NACK */
	for (uint8_t code = 0; code <= DOIP_NACK_INVALID_LEN; code++) {
		uint8_t got = 0xEE;
		assert_ok(doip_build_generic_nack(f, sizeof(f), DOIP_V2012, code, &n));
		assert_int_equal(n, 9);
		parse_frame(f, n, DOIP_GENERIC_NACK, &h);
		assert_ok(doip_parse_generic_nack(f + 8, h.len, &got));
		assert_int_equal(got, code);
	}

	/* routing activation request, with and without OEM bytes */
	for (int oem = 0; oem < 2; oem++) {
		doip_routing_req q = {.source = 0x0E80, .activation_type = 0x01, .has_oem = oem}, g;
		memcpy(q.oem, "\x11\x22\x33\x44", 4);
		assert_ok(doip_build_routing_req(f, sizeof(f), DOIP_V2019, &q, &n));
		assert_int_equal(n, oem ? 19 : 15);
		static const uint8_t want[] = {0x03, 0xFC, 0x00, 0x05, 0,   0, 0,
		                               11,   0x0E, 0x80, 0x01, 0,   0, 0,
		                               0,    0x11, 0x22, 0x33, 0x44};
		assert_memory_equal(f + 8, want + 8, n - 8);
		parse_frame(f, n, DOIP_ROUTING_REQ, &h);
		assert_ok(doip_parse_routing_req(f + 8, h.len, &g));
		assert_int_equal(g.source, 0x0E80);
		assert_int_equal(g.activation_type, 1);
		assert_int_equal(g.has_oem, oem);
		if (oem)
			assert_memory_equal(g.oem, q.oem, 4);
	}

	/* routing activation response */
	for (int oem = 0; oem < 2; oem++) {
		doip_routing_resp q = {.tester = 0x0E80,
		                       .entity = 0x1001,
		                       .code = 0x10,
		                       .has_oem = oem},
		                  g;
		memcpy(q.oem, "\xA1\xA2\xA3\xA4", 4);
		assert_ok(doip_build_routing_resp(f, sizeof(f), DOIP_V2012, &q, &n));
		assert_int_equal(n, oem ? 21 : 17);
		parse_frame(f, n, DOIP_ROUTING_RESP, &h);
		assert_ok(doip_parse_routing_resp(f + 8, h.len, &g));
		assert_int_equal(g.tester, 0x0E80);
		assert_int_equal(g.entity, 0x1001);
		assert_int_equal(g.code, 0x10);
		assert_int_equal(g.has_oem, oem);
		if (oem)
			assert_memory_equal(g.oem, q.oem, 4);
	}

	/* alive check */
	uint16_t src = 0;
	assert_ok(doip_build_alive_req(f, sizeof(f), DOIP_V2012, &n));
	assert_int_equal(n, 8);
	parse_frame(f, n, DOIP_ALIVE_REQ, &h);
	assert_ok(doip_build_alive_resp(f, sizeof(f), DOIP_V2012, 0xBEEF, &n));
	parse_frame(f, n, DOIP_ALIVE_RESP, &h);
	assert_ok(doip_parse_alive_resp(f + 8, h.len, &src));
	assert_int_equal(src, 0xBEEF);

	/* diagnostic message */
	static const uint8_t uds[] = {0x22, 0xF1, 0x90};
	doip_diag d = {.source = 0x0E80, .target = 0x1001, .data = uds, .len = sizeof(uds)}, dg;
	assert_ok(doip_build_diag(f, sizeof(f), DOIP_V2019, &d, &n));
	assert_int_equal(n, 15);
	parse_frame(f, n, DOIP_DIAG_MSG, &h);
	assert_ok(doip_parse_diag(f + 8, h.len, &dg));
	assert_int_equal(dg.source, 0x0E80);
	assert_int_equal(dg.target, 0x1001);
	assert_int_equal(dg.len, 3);
	assert_memory_equal(dg.data, uds, 3);
	d.len = 0; /* at least one UDS byte */
	assert_rc(doip_build_diag(f, sizeof(f), DOIP_V2019, &d, &n), PQ_ERR_INVAL);
	d.len = 3;
	assert_rc(doip_build_diag(f, 14, DOIP_V2019, &d, &n), PQ_ERR_RANGE);
	assert_rc(doip_build_diag(f, sizeof(f), DOIP_VDEFAULT, &d, &n), PQ_ERR_INVAL);
	assert_rc(doip_build_diag(f, sizeof(f), 0x01, &d, &n), PQ_ERR_INVAL);

	/* diagnostic ack (with previous data) and every nack code (without) */
	doip_diag_ack a = {.source = 0x1001,
	                   .target = 0x0E80,
	                   .code = 0,
	                   .prev = uds,
	                   .prev_len = 3},
	              ag;
	assert_ok(doip_build_diag_ack(f, sizeof(f), DOIP_V2012, true, &a, &n));
	assert_int_equal(n, 16);
	parse_frame(f, n, DOIP_DIAG_ACK, &h);
	assert_ok(doip_parse_diag_ack(true, f + 8, h.len, &ag));
	assert_int_equal(ag.source, 0x1001);
	assert_int_equal(ag.target, 0x0E80);
	assert_int_equal(ag.code, 0);
	assert_int_equal(ag.prev_len, 3);
	assert_memory_equal(ag.prev, uds, 3);
	assert_rc(doip_parse_diag_ack(false, f + 8, h.len, &ag), PQ_ERR_FORMAT);
	for (uint8_t code = DOIP_DIAG_NACK_INVALID_SOURCE; code <= DOIP_DIAG_NACK_TP_ERROR;
	     code++) {
		doip_diag_ack k = {.source = 1, .target = 2, .code = code};
		assert_ok(doip_build_diag_ack(f, sizeof(f), DOIP_V2019, false, &k, &n));
		assert_int_equal(n, 13);
		parse_frame(f, n, DOIP_DIAG_NACK, &h);
		assert_ok(doip_parse_diag_ack(false, f + 8, h.len, &ag));
		assert_int_equal(ag.code, code);
		assert_int_equal(ag.prev_len, 0);
		assert_null(ag.prev);
		assert_rc(doip_parse_diag_ack(true, f + 8, h.len, &ag), PQ_ERR_FORMAT);
		assert_rc(doip_build_diag_ack(f, sizeof(f), DOIP_V2019, true, &k, &n),
		          PQ_ERR_INVAL);
	}
}

static void test_truncated(void **state)
{
	(void)state;
	static const uint8_t p[16] = {0x0E, 0x80, 0x10, 0x01, 0x22, 0, 0, 0, 0, 0, 0, 0};
	doip_routing_req rq;
	doip_routing_resp rs;
	doip_diag d;
	doip_diag_ack a;
	uint16_t s;
	uint8_t c;
	for (size_t n = 0; n <= 16; n++) {
		int want = n == 7 || n == 11 ? PQ_OK : PQ_ERR_FORMAT;
		assert_rc(doip_parse_routing_req(p, n, &rq), want);
		want = n == 9 || n == 13 ? PQ_OK : PQ_ERR_FORMAT;
		assert_rc(doip_parse_routing_resp(p, n, &rs), want);
		assert_rc(doip_parse_alive_resp(p, n, &s), n == 2 ? PQ_OK : PQ_ERR_FORMAT);
		assert_rc(doip_parse_generic_nack(p, n, &c), n == 1 ? PQ_OK : PQ_ERR_FORMAT);
		assert_rc(doip_parse_diag(p, n, &d), n >= 5 ? PQ_OK : PQ_ERR_FORMAT);
		assert_rc(doip_parse_diag_ack(false, p, n, &a), n >= 5 ? PQ_OK : PQ_ERR_FORMAT);
	}
}

/* A stream of three frames: diagnostic message, alive request, routing response. */
static size_t make_stream(uint8_t *s, size_t cap, size_t ends[3])
{
	static const uint8_t uds[] = {0x10, 0x03};
	size_t n, off = 0;
	doip_diag d = {.source = 0x0E80, .target = 0x1001, .data = uds, .len = 2};
	assert_ok(doip_build_diag(s, cap, DOIP_V2012, &d, &n));
	ends[0] = off += n;
	assert_ok(doip_build_alive_req(s + off, cap - off, DOIP_V2012, &n));
	ends[1] = off += n;
	doip_routing_resp r = {.tester = 0x0E80, .entity = 0x1001, .code = 0x10};
	assert_ok(doip_build_routing_resp(s + off, cap - off, DOIP_V2012, &r, &n));
	ends[2] = off += n;
	return off;
}

static void check_frame(int idx, const doip_frame *fr)
{
	static const uint16_t types[] = {DOIP_DIAG_MSG, DOIP_ALIVE_REQ, DOIP_ROUTING_RESP};
	static const uint32_t lens[] = {6, 0, 9};
	assert_int_equal(fr->hdr.type, types[idx]);
	assert_int_equal(fr->hdr.len, lens[idx]);
	if (idx == 0)
		assert_memory_equal(fr->payload, "\x0E\x80\x10\x01\x10\x03", 6);
}

/* Feeds s[0..n) in chunks of the given sizes (cycled), collecting frames. */
static int feed_all(doip_reader *r, const uint8_t *s, size_t n, const size_t *cuts, size_t ncuts)
{
	int frames = 0;
	size_t pos = 0;
	for (size_t k = 0; k < ncuts && pos < n; k++) {
		size_t end = cuts[k] < n ? cuts[k] : n;
		while (pos < end) {
			size_t used = 0;
			doip_frame fr;
			uint8_t nack = 0xEE;
			int rc = doip_reader_feed(r, s + pos, end - pos, &used, &fr, &nack);
			assert_true(used <= end - pos);
			pos += used;
			if (rc == 1)
				check_frame(frames++, &fr);
			else
				assert_int_equal(rc, 0);
			if (rc == 0)
				assert_int_equal(pos, end);
		}
	}
	return frames;
}

static void test_reader_splits(void **state)
{
	(void)state;
	uint8_t s[128], buf[64];
	size_t ends[3];
	size_t n = make_stream(s, sizeof(s), ends);
	doip_reader r;
	/* one chunk holding all frames */
	size_t all[] = {n};
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	assert_int_equal(feed_all(&r, s, n, all, 1), 3);
	/* split once at every byte boundary */
	for (size_t cut = 0; cut <= n; cut++) {
		size_t cuts[] = {cut, n};
		assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
		assert_int_equal(feed_all(&r, s, n, cuts, 2), 3);
	}
	/* byte by byte */
	size_t ones[128];
	for (size_t i = 0; i < n; i++)
		ones[i] = i + 1;
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	assert_int_equal(feed_all(&r, s, n, ones, n), 3);
	/* a truncated stream yields only the complete frames */
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	size_t trunc[] = {n - 1};
	assert_int_equal(feed_all(&r, s, n - 1, trunc, 1), 2);
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	size_t trunc2[] = {ends[0] - 1};
	assert_int_equal(feed_all(&r, s, ends[0] - 1, trunc2, 1), 0);
	assert_rc(doip_reader_init(&r, buf, DOIP_READER_MIN_BUF - 1), PQ_ERR_INVAL);
}

static void test_reader_nacks(void **state)
{
	(void)state;
	uint8_t s[256], buf[32], nack;
	size_t used, n, off = 0;
	doip_frame fr;
	doip_reader r;
	assert_ok(doip_reader_init(&r, buf, sizeof(buf))); /* max payload 24 */
	/* too large: NACK 0x02, payload skipped, next frame read */
	doip_hdr_write(s, DOIP_V2012, DOIP_DIAG_MSG, 40);
	memset(s + 8, 0xAB, 40);
	off = 48;
	/* unknown type: NACK 0x01, payload skipped */
	doip_hdr_write(s + off, DOIP_V2012, 0x9999, 3);
	off += 11;
	assert_ok(doip_build_alive_resp(s + off, sizeof(s) - off, DOIP_V2012, 0x1234, &n));
	off += n;
	assert_rc(doip_reader_feed(&r, s, off, &used, &fr, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_TOO_LARGE);
	assert_int_equal(used, 8);
	assert_false(doip_reader_closed(&r));
	size_t pos = used;
	assert_rc(doip_reader_feed(&r, s + pos, off - pos, &used, &fr, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_UNKNOWN_TYPE);
	assert_int_equal(used, 48);
	pos += used;
	assert_int_equal(doip_reader_feed(&r, s + pos, off - pos, &used, &fr, &nack), 1);
	assert_int_equal(fr.hdr.type, DOIP_ALIVE_RESP);
	assert_int_equal(pos + used, off);

	/* bad pattern: closes */
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	doip_hdr_write(s, DOIP_V2012, DOIP_ALIVE_REQ, 0);
	s[1] = 0xFE;
	assert_rc(doip_reader_feed(&r, s, 20, &used, &fr, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_PATTERN);
	assert_int_equal(used, 8);
	assert_true(doip_reader_closed(&r));
	assert_rc(doip_reader_feed(&r, s, 20, &used, &fr, &nack), PQ_ERR_INVAL);
	assert_int_equal(used, 0);

	/* invalid length: closes */
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	doip_hdr_write(s, DOIP_V2019, DOIP_ALIVE_RESP, 3);
	assert_rc(doip_reader_feed(&r, s, 11, &used, &fr, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_INVALID_LEN);
	assert_true(doip_reader_closed(&r));

	/* header split byte by byte before the pattern error */
	assert_ok(doip_reader_init(&r, buf, sizeof(buf)));
	doip_hdr_write(s, 0x05, DOIP_ALIVE_REQ, 0);
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(doip_reader_feed(&r, s + i, 1, &used, &fr, &nack), 0);
		assert_int_equal(used, 1);
	}
	assert_rc(doip_reader_feed(&r, s + 7, 1, &used, &fr, &nack), PQ_ERR_FORMAT);
	assert_int_equal(nack, DOIP_NACK_PATTERN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),        cmocka_unit_test(test_nacks),
	    cmocka_unit_test(test_roundtrips),    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_reader_splits), cmocka_unit_test(test_reader_nacks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
