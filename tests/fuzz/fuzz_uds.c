/* fuzz_uds.c: libFuzzer harness for the UDS side: arbitrary requests into the simulated
 * ECU (ecu_handle) from every session / security / download state, and arbitrary bytes
 * into the UDS response parsers.
 *
 * Input: byte 0 picks the starting state (below) and byte 1 the fault switches (bit 0
 * fail_program, 1 corrupt_block, 2 deny_security; bit 3 makes the response buffer small,
 * for NRC 0x14); the rest is
 * a sequence of requests, each a 2-byte big-endian length and that many bytes (a length of
 * 0 advances the clock past the S3 and lockout timers). Checked after every request (a
 * violation aborts): the response is a positive response to the request's service or
 * 7F sid nrc, empty only for a suppressed positive response; the ECU's own positive
 * responses parse with the tester's parsers; the state stays consistent (the active bank
 * valid, previous/pending never the active bank, the download within its size); and the
 * persistent state survives ecu_state_json / ecu_state_load unchanged. Every request is also
 * fed to the response parsers and to uds_parse_check, whose result must rebuild to the same
 * bytes, and to uds_describe, whose text must stay inside its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vehicle/ecu.h"
#include "vehicle/uds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	ST_DEFAULT,
	ST_EXTENDED,
	ST_EXTENDED_UNLOCKED,
	ST_PROGRAMMING,
	ST_PROGRAMMING_UNLOCKED,
	ST_DOWNLOADING, /* erased, 0x34 of 64 KiB accepted */
	ST_TRANSFERRED, /* 16 zero bytes transferred and exited, waiting for the check */
	ST_GATEWAY,
	ST_N
};

static int64_t clock_ms;

static void must(bool ok)
{
	if (!ok)
		abort();
}

/* Sends a request the setup needs; it must be answered positively. */
static void setup_req(ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t *rlen)
{
	must(ecu_handle(e, req, n, resp, 256, rlen, clock_ms) == PQ_OK);
	must(*rlen > 0 && resp[0] == UDS_POS(req[0]));
}

static void unlock(ecu *e, uint8_t session)
{
	uint8_t resp[256];
	size_t rlen = 0;
	uint8_t s[2] = {UDS_SID_SESSION, session};
	setup_req(e, s, 2, resp, &rlen);
	static const uint8_t seed[2] = {UDS_SID_SECURITY, UDS_SEC_SEED};
	setup_req(e, seed, 2, resp, &rlen);
	uint8_t key[6] = {UDS_SID_SECURITY, UDS_SEC_KEY};
	must(uds_sim_key(e->addr, resp + 2, key + 2) == PQ_OK);
	setup_req(e, key, 6, resp, &rlen);
}

static void enter_state(ecu *e, int st)
{
	uint8_t resp[256];
	size_t rlen = 0;
	static const uint8_t ext[2] = {UDS_SID_SESSION, UDS_SESSION_EXTENDED};
	static const uint8_t prog[2] = {UDS_SID_SESSION, UDS_SESSION_PROGRAMMING};
	static const uint8_t erase[4] = {UDS_SID_ROUTINE, UDS_ROUTINE_START, 0xFF, 0x00};
	uint8_t dl[20];
	switch (st) {
	case ST_EXTENDED:
		setup_req(e, ext, 2, resp, &rlen);
		break;
	case ST_EXTENDED_UNLOCKED:
		unlock(e, UDS_SESSION_EXTENDED);
		break;
	case ST_PROGRAMMING:
		setup_req(e, prog, 2, resp, &rlen);
		break;
	case ST_PROGRAMMING_UNLOCKED:
		unlock(e, UDS_SESSION_PROGRAMMING);
		break;
	case ST_DOWNLOADING:
	case ST_TRANSFERRED: {
		unlock(e, UDS_SESSION_PROGRAMMING);
		setup_req(e, erase, 4, resp, &rlen);
		size_t n = uds_build_download(dl, 0, st == ST_DOWNLOADING ? 65536 : 16);
		setup_req(e, dl, n, resp, &rlen);
		if (st == ST_TRANSFERRED) {
			uint8_t blk[18] = {UDS_SID_TRANSFER, 0x01};
			setup_req(e, blk, sizeof(blk), resp, &rlen);
			static const uint8_t exit_req[1] = {UDS_SID_TRANSFER_EXIT};
			setup_req(e, exit_req, 1, resp, &rlen);
		}
		break;
	}
	default:
		break;
	}
}

/* The tester's parsers must accept what the ECU answers positively. */
static void check_response(const uint8_t *req, size_t n, const uint8_t *resp, size_t rlen)
{
	uint8_t sid = req[0];
	if (rlen == 0) {
		must(uds_suppress_requested(req, n));
		return;
	}
	if (resp[0] == UDS_NEG) {
		uint8_t nrc = 0;
		must(rlen == 3 && resp[1] == sid && resp[2] != 0);
		must(uds_check_response(sid, resp, rlen, &nrc) == PQ_ERR_VERIFY && nrc == resp[2]);
		return;
	}
	must(resp[0] == UDS_POS(sid));
	must(uds_check_response(sid, resp, rlen, NULL) == PQ_OK);
	switch (sid) {
	case UDS_SID_SESSION:
		must(uds_parse_session_resp(resp, rlen, req[1] & 0x7F, NULL, NULL, NULL) == PQ_OK);
		break;
	case UDS_SID_READ_DID: {
		uds_did_rec recs[UDS_READ_DIDS_MAX];
		size_t count = 0;
		must(uds_parse_read_did_resp(resp, rlen, recs, UDS_READ_DIDS_MAX, &count, NULL) ==
		     PQ_OK);
		must(count >= 1 && count <= (n - 1) / 2);
		for (size_t i = 0; i < count; i++) {
			char text[128];
			if (uds_did_is_text(recs[i].did))
				must(uds_did_text(&recs[i], text, sizeof(text)) == PQ_OK);
		}
		break;
	}
	case UDS_SID_SECURITY:
		if (req[1] == UDS_SEC_SEED) {
			uint8_t seed[4];
			must(uds_parse_seed_resp(resp, rlen, seed, NULL) == PQ_OK);
		}
		break;
	case UDS_SID_DOWNLOAD: {
		uint64_t max = 0;
		must(uds_parse_download_resp(resp, rlen, &max, NULL) == PQ_OK);
		must(max == UDS_MAX_BLOCK + 2);
		break;
	}
	case UDS_SID_ROUTINE: {
		uint8_t st = 0xEE;
		must(uds_parse_routine_resp(resp, rlen, uds_get16(req + 2), &st, NULL) == PQ_OK);
		must(st == 0);
		break;
	}
	case UDS_SID_READ_DTC: {
		unsigned count = 0;
		uds_dtc d[ECU_DTCS_MAX];
		size_t k = 0;
		if (req[1] == UDS_DTC_COUNT_BY_MASK)
			must(uds_parse_dtc_count_resp(resp, rlen, &count, NULL) == PQ_OK &&
			     count <= ECU_DTCS_MAX);
		else
			must(uds_parse_dtc_report_resp(resp, rlen, d, ECU_DTCS_MAX, &k, NULL) ==
			     PQ_OK);
		break;
	}
	case UDS_SID_TRANSFER:
		must(rlen == 2 && resp[1] == req[1]);
		break;
	default:
		break;
	}
}

static void check_state(const ecu *e)
{
	must(e->active == 0 || e->active == 1);
	must(e->gateway || e->bank[e->active].valid);
	must(e->previous == -1 || (e->previous == 1 - e->active));
	must(e->pending == -1 || (e->pending == 1 - e->active));
	must(e->n_dtcs <= ECU_DTCS_MAX);
	must(e->dl_got <= e->dl_size || !e->downloading);
	must(!e->unlocked || e->session != UDS_SESSION_DEFAULT);
	if (e->gateway)
		return;
	/* the persistent state round-trips */
	json_t *j = ecu_state_json(e);
	must(j != NULL);
	ecu copy;
	memcpy(&copy, e, sizeof(copy));
	copy.active = 1 - e->active;
	must(ecu_state_load(&copy, j) == PQ_OK);
	json_t *k = ecu_state_json(&copy);
	must(k != NULL && json_equal(j, k));
	json_decref(j);
	json_decref(k);
}

/* Arbitrary bytes as responses to every service, and as a check routine request. */
static void parse_as_response(const uint8_t *p, size_t n)
{
	uint8_t nrc = 0;
	uint16_t p2;
	uint32_t p2s;
	uint8_t seed[4], st;
	uint64_t max;
	unsigned count;
	uds_did_rec recs[4];
	uds_dtc dtcs[4];
	size_t k;
	static const uint8_t sids[] = {0x10, 0x11, 0x14, 0x19, 0x22, 0x27,
	                               0x2E, 0x31, 0x34, 0x36, 0x37, 0x3E};
	for (size_t i = 0; i < sizeof(sids); i++)
		(void)!uds_check_response(sids[i], p, n, &nrc);
	(void)!uds_parse_session_resp(p, n, 0x02, &p2, &p2s, &nrc);
	(void)!uds_parse_seed_resp(p, n, seed, &nrc);
	(void)!uds_parse_download_resp(p, n, &max, &nrc);
	(void)!uds_parse_routine_resp(p, n, 0xFF01, &st, &nrc);
	(void)!uds_parse_dtc_count_resp(p, n, &count, &nrc);
	if (uds_parse_dtc_report_resp(p, n, dtcs, 4, &k, &nrc) == PQ_OK)
		must(k <= 4 && n == 3 + 4 * k);
	if (uds_parse_read_did_resp(p, n, recs, 4, &k, &nrc) == PQ_OK) {
		must(k >= 1 && k <= 4);
		for (size_t i = 0; i < k; i++) {
			char text[128];
			must(recs[i].data > p && recs[i].data + recs[i].len <= p + n);
			(void)!uds_did_text(&recs[i], text, sizeof(text));
		}
	}
	uds_check_req c;
	if (uds_parse_check(p, n, &c) == PQ_OK) {
		uint8_t b[UDS_CHECK_REQ_MAX];
		size_t bn = 0;
		must(uds_build_check(&c, b, sizeof(b), &bn) == PQ_OK);
		/* the sub-function's suppress bit is not part of the record */
		must(bn == n && memcmp(b + 2, p + 2, n - 2) == 0 && b[0] == p[0]);
	}
	/* the describer (pqota diag's output): NUL-terminated within its buffer, also a tiny one */
	char desc[160], tiny[5];
	must(uds_describe(p, n, desc, sizeof(desc)) == desc && strlen(desc) < sizeof(desc));
	must(uds_describe(p, n, tiny, sizeof(tiny)) == tiny && strlen(tiny) < sizeof(tiny));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int st = data[0] % ST_N;
	uint8_t faults = data[1];
	data += 2;
	size -= 2;
	clock_ms = 1000000;
	ecu e;
	if (st == ST_GATEWAY) {
		must(ecu_init_gateway(&e, 1, 0x0091, "FUZZVIN") == PQ_OK);
	} else {
		vm_ecu m;
		memset(&m, 0, sizeof(m));
		memcpy(m.ecu_id, "ECU_011", 8);
		memcpy(m.hardware_id, "HW-1-011", 9);
		memcpy(m.serial, "SER", 4);
		memcpy(m.version[VM_SW_APP], "1.0.0", 6);
		m.addr = 0x1011;
		m.zone = 1;
		m.max_package_size = 1 << 20;
		uint8_t sha[32] = {1};
		must(ecu_init(&e, &m, "FUZZVIN", sha, 100, 7) == PQ_OK);
		enter_state(&e, st);
		e.fail_program = faults & 1;
		e.corrupt_block = faults & 2;
		e.deny_security = faults & 4;
	}
	check_state(&e);
	static uint8_t resp[UDS_MAX_BLOCK + 64];
	size_t pos = 0;
	while (size - pos >= 2) {
		size_t n = (size_t)data[pos] << 8 | data[pos + 1];
		pos += 2;
		if (n == 0) {
			clock_ms += ECU_S3_MS + ECU_LOCKOUT_MS + 1;
			continue;
		}
		if (n > size - pos)
			n = size - pos;
		if (n == 0)
			break; /* a length with no bytes after it */
		const uint8_t *req = data + pos;
		pos += n;
		parse_as_response(req, n);
		/* with fault bit 3, small response buffers (responseTooLong) */
		size_t cap = faults & 8 ? 3 + n * 7 % 61 : sizeof(resp);
		size_t rlen = 12345;
		must(ecu_handle(&e, req, n, resp, cap, &rlen, clock_ms) == PQ_OK);
		must(rlen <= cap);
		check_response(req, n, resp, rlen);
		check_state(&e);
		clock_ms += 10;
	}
	ecu_free(&e);
	return 0;
}
