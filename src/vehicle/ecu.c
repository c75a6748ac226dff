/* ecu.c: the simulated ECU's UDS state machine (sessions, security access, DIDs, DTCs,
 * routines, download into the inactive bank, bank switching) and its state as JSON. */
#include "vehicle/ecu.h"

#include <stdio.h>
#include <string.h>

#include "core/text.h"
#include "vehicle/uds.h"

/* One response under construction: bytes go to out[cap]; overflow is remembered so the
 * handler answers NRC 0x14 instead. */
typedef struct {
	uint8_t *out;
	size_t cap, len;
	bool overflow;
} rbuf;

static void put(rbuf *r, const void *p, size_t n)
{
	if (r->overflow || r->cap - r->len < n) {
		r->overflow = true;
		return;
	}
	memcpy(r->out + r->len, p, n);
	r->len += n;
}

static void put1(rbuf *r, uint8_t b)
{
	put(r, &b, 1);
}

static void put16(rbuf *r, uint16_t v)
{
	uint8_t b[2];
	uds_put16(b, v);
	put(r, b, 2);
}

/* Handler result: a positive response in the rbuf, or an NRC. */
#define OK_RESP 0

/* Bounded copy that truncates. */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

const char *ecu_bank_name(int bank)
{
	return bank == 1 ? "B" : "A";
}

int ecu_init(ecu *e, const vm_ecu *m, const char *vin, const uint8_t *image_sha256,
             uint64_t image_len, uint32_t image_crc)
{
	if (!e || !m)
		return pq_err_set(PQ_ERR_INVAL, "ecu: NULL argument");
	memset(e, 0, sizeof(*e));
	copy_str(e->ecu_id, sizeof(e->ecu_id), m->ecu_id);
	copy_str(e->vin, sizeof(e->vin), vin);
	copy_str(e->hardware_id, sizeof(e->hardware_id), m->hardware_id);
	copy_str(e->serial, sizeof(e->serial), m->serial);
	copy_str(e->part_number, sizeof(e->part_number), m->part_number);
	copy_str(e->supplier, sizeof(e->supplier), m->supplier);
	e->addr = m->addr;
	e->max_package_size = m->max_package_size;
	e->bank[0].valid = true;
	for (int t = 0; t < VM_SW_N; t++)
		copy_str(e->bank[0].version[t], sizeof(e->bank[0].version[t]), m->version[t]);
	if (image_sha256) {
		memcpy(e->bank[0].sha256, image_sha256, 32);
		e->bank[0].len = image_len;
		e->bank[0].crc32 = image_crc;
	}
	e->active = 0;
	e->previous = -1;
	e->pending = -1;
	e->session = UDS_SESSION_DEFAULT;
	return pq_hash_new(PQ_HASH_SHA256, &e->sha);
}

int ecu_init_gateway(ecu *e, int zone, uint16_t addr, const char *vin)
{
	if (!e)
		return pq_err_set(PQ_ERR_INVAL, "ecu: NULL argument");
	memset(e, 0, sizeof(*e));
	snprintf(e->ecu_id, sizeof(e->ecu_id), "ZGW%d", zone);
	copy_str(e->vin, sizeof(e->vin), vin);
	snprintf(e->hardware_id, sizeof(e->hardware_id), "ZGW-%d", zone);
	snprintf(e->serial, sizeof(e->serial), "SN-ZGW%d", zone);
	e->addr = addr;
	e->gateway = true;
	e->active = 0;
	e->previous = -1;
	e->pending = -1;
	e->session = UDS_SESSION_DEFAULT;
	return PQ_OK;
}

void ecu_free(ecu *e)
{
	if (!e)
		return;
	pq_hash_free(e->sha);
	e->sha = NULL;
}

bool ecu_take_dirty(ecu *e)
{
	bool d = e->dirty;
	e->dirty = false;
	return d;
}

static void abort_download(ecu *e)
{
	e->downloading = false;
	e->transferred = false;
	e->dl_size = e->dl_got = 0;
	e->any_block = false;
	e->blocks = 0;
}

/* Back to the default session: security relocked, programming state dropped. */
static void to_default(ecu *e)
{
	e->session = UDS_SESSION_DEFAULT;
	e->unlocked = false;
	e->seed_issued = false;
	e->erased = false;
	abort_download(e);
}

void ecu_tick(ecu *e, int64_t now_ms)
{
	if (e->session != UDS_SESSION_DEFAULT && now_ms - e->last_req_ms > ECU_S3_MS)
		to_default(e);
}

static void set_dtc(ecu *e, uint32_t code)
{
	uint8_t st = UDS_DTC_STATUS_FAILED | UDS_DTC_STATUS_CONFIRMED;
	for (size_t i = 0; i < e->n_dtcs; i++) {
		if (e->dtcs[i].code == code) {
			if (e->dtcs[i].status != st) {
				e->dtcs[i].status = st;
				e->dirty = true;
			}
			return;
		}
	}
	if (e->n_dtcs == ECU_DTCS_MAX)
		return; /* the memory is full: the oldest entries stay */
	e->dtcs[e->n_dtcs].code = code;
	e->dtcs[e->n_dtcs].status = st;
	e->n_dtcs++;
	e->dirty = true;
}

/* ---- services --------------------------------------------------------------------------- */

static int svc_session(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (n != 2)
		return UDS_NRC_BAD_LENGTH;
	uint8_t sf = q[1] & 0x7F;
	if (sf != UDS_SESSION_DEFAULT && sf != UDS_SESSION_PROGRAMMING &&
	    sf != UDS_SESSION_EXTENDED)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	if (!(sf == UDS_SESSION_DEFAULT && e->session == UDS_SESSION_DEFAULT)) {
		to_default(e); /* every transition relocks and drops a download */
		e->session = sf;
	}
	put1(r, UDS_POS(UDS_SID_SESSION));
	put1(r, sf);
	put16(r, ECU_P2_MS);
	put16(r, ECU_P2STAR_MS / 10);
	return OK_RESP;
}

static int svc_reset(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (n != 2)
		return UDS_NRC_BAD_LENGTH;
	if ((q[1] & 0x7F) != UDS_RESET_HARD)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->pending >= 0 && e->bank[e->pending].valid && e->pending != e->active) {
		e->previous = e->active;
		e->active = e->pending;
		e->dirty = true;
	}
	if (e->pending >= 0) {
		e->pending = -1;
		e->dirty = true;
	}
	to_default(e);
	put1(r, UDS_POS(UDS_SID_RESET));
	put1(r, UDS_RESET_HARD);
	return OK_RESP;
}

static int svc_clear_dtc(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (n != 4)
		return UDS_NRC_BAD_LENGTH;
	uint32_t group = (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
	if (group != 0xFFFFFFu)
		return UDS_NRC_OUT_OF_RANGE;
	if (e->n_dtcs) {
		e->n_dtcs = 0;
		e->dirty = true;
	}
	put1(r, UDS_POS(UDS_SID_CLEAR_DTC));
	return OK_RESP;
}

static int svc_read_dtc(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (n < 2)
		return UDS_NRC_BAD_LENGTH;
	uint8_t sf = q[1];
	if (sf != UDS_DTC_COUNT_BY_MASK && sf != UDS_DTC_REPORT_BY_MASK)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	if (n != 3)
		return UDS_NRC_BAD_LENGTH;
	uint8_t mask = q[2];
	put1(r, UDS_POS(UDS_SID_READ_DTC));
	put1(r, sf);
	put1(r, UDS_DTC_AVAILABILITY);
	if (sf == UDS_DTC_COUNT_BY_MASK) {
		uint16_t count = 0;
		for (size_t i = 0; i < e->n_dtcs; i++)
			if (e->dtcs[i].status & mask & UDS_DTC_AVAILABILITY)
				count++;
		put1(r, 0x01); /* DTCFormatIdentifier: ISO 14229-1 */
		put16(r, count);
		return OK_RESP;
	}
	for (size_t i = 0; i < e->n_dtcs; i++) {
		if (!(e->dtcs[i].status & mask & UDS_DTC_AVAILABILITY))
			continue;
		uint8_t d[4] = {(uint8_t)(e->dtcs[i].code >> 16), (uint8_t)(e->dtcs[i].code >> 8),
		                (uint8_t)e->dtcs[i].code, e->dtcs[i].status};
		put(r, d, 4);
	}
	return OK_RESP;
}

/* Appends the record of one DID; false when this ECU does not have it. */
static bool read_did(const ecu *e, uint16_t did, rbuf *r)
{
	char text[96];
	uint8_t bin[32];
	const ecu_bank *b = &e->bank[e->active];
	size_t sz = uds_did_size(did);
	const void *src = text;
	size_t srclen;
	text[0] = '\0';
	if (e->gateway && did != UDS_DID_VIN && did != UDS_DID_SERIAL && did != UDS_DID_HW_NUMBER)
		return false;
	switch (did) {
	case UDS_DID_VIN:
		copy_str(text, sizeof(text), e->vin);
		break;
	case UDS_DID_PART_NUMBER:
		copy_str(text, sizeof(text), e->part_number);
		break;
	case UDS_DID_SW_NUMBER:
		snprintf(text, sizeof(text), "SW-%s-%s", e->ecu_id, b->version[VM_SW_APP]);
		break;
	case UDS_DID_APP_VERSION:
		copy_str(text, sizeof(text), b->version[VM_SW_APP]);
		break;
	case UDS_DID_SERIAL:
		copy_str(text, sizeof(text), e->serial);
		break;
	case UDS_DID_HW_NUMBER:
		copy_str(text, sizeof(text), e->hardware_id);
		break;
	case UDS_DID_SUPPLIER_SW:
		snprintf(text, sizeof(text), "%s-%s", e->supplier, b->version[VM_SW_APP]);
		break;
	case UDS_DID_ACTIVE_BANK:
		copy_str(text, sizeof(text), ecu_bank_name(e->active));
		break;
	case UDS_DID_BOOT_VERSION:
		copy_str(text, sizeof(text), b->version[VM_SW_BOOT]);
		break;
	case UDS_DID_CAL_VERSION:
		copy_str(text, sizeof(text), b->version[VM_SW_CAL]);
		break;
	case UDS_DID_IMAGE_SHA256:
		src = b->sha256;
		break;
	case UDS_DID_IMAGE_LENGTH:
		uds_put64(bin, b->len);
		src = bin;
		break;
	default:
		return false;
	}
	uint8_t rec[64];
	memset(rec, 0, sizeof(rec));
	srclen = src == text ? strlen(text) : sz;
	if (srclen > sz)
		srclen = sz; /* text longer than the DID: truncated */
	memcpy(rec, src, srclen);
	put16(r, did);
	put(r, rec, sz);
	return true;
}

static int svc_read_did(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (n < 3 || (n - 1) % 2 != 0 || (n - 1) / 2 > UDS_READ_DIDS_MAX)
		return UDS_NRC_BAD_LENGTH;
	put1(r, UDS_POS(UDS_SID_READ_DID));
	size_t found = 0;
	for (size_t i = 1; i < n; i += 2)
		if (read_did(e, uds_get16(q + i), r))
			found++;
	if (!found)
		return UDS_NRC_OUT_OF_RANGE;
	return OK_RESP;
}

static int svc_security(ecu *e, const uint8_t *q, size_t n, rbuf *r, int64_t now)
{
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session == UDS_SESSION_DEFAULT)
		return UDS_NRC_NOT_IN_SESSION;
	if (n < 2)
		return UDS_NRC_BAD_LENGTH;
	uint8_t sf = q[1] & 0x7F;
	if (sf != UDS_SEC_SEED && sf != UDS_SEC_KEY)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	if (sf == UDS_SEC_SEED) {
		if (n != 2)
			return UDS_NRC_BAD_LENGTH;
		if (now < e->locked_until_ms)
			return UDS_NRC_DELAY_NOT_EXPIRED;
		uint8_t seed[4] = {0, 0, 0, 0};
		if (!e->unlocked) {
			do {
				if (pq_random(seed, sizeof(seed)) != PQ_OK)
					return UDS_NRC_CONDITIONS;
			} while (!(seed[0] | seed[1] | seed[2] | seed[3]));
			memcpy(e->seed, seed, 4);
			e->seed_issued = true;
		}
		put1(r, UDS_POS(UDS_SID_SECURITY));
		put1(r, UDS_SEC_SEED);
		put(r, seed, 4);
		return OK_RESP;
	}
	if (n != 6)
		return UDS_NRC_BAD_LENGTH;
	if (now < e->locked_until_ms)
		return UDS_NRC_DELAY_NOT_EXPIRED;
	if (!e->seed_issued)
		return UDS_NRC_SEQUENCE;
	e->seed_issued = false; /* a seed is good for one key */
	uint8_t key[4];
	if (uds_sim_key(e->addr, e->seed, key) != PQ_OK)
		return UDS_NRC_CONDITIONS;
	if (e->deny_security || pq_memeq_ct(key, q + 2, 4) != 0) {
		set_dtc(e, UDS_DTC_SECURITY);
		if (++e->failed_keys >= ECU_MAX_ATTEMPTS) {
			e->failed_keys = 0;
			e->locked_until_ms = now + ECU_LOCKOUT_MS;
			return UDS_NRC_EXCEEDED_ATTEMPTS;
		}
		return UDS_NRC_INVALID_KEY;
	}
	e->failed_keys = 0;
	e->unlocked = true;
	put1(r, UDS_POS(UDS_SID_SECURITY));
	put1(r, UDS_SEC_KEY);
	return OK_RESP;
}

static bool printable_text(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7E)
			return false;
	return true;
}

static int svc_write_did(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session == UDS_SESSION_DEFAULT)
		return UDS_NRC_NOT_IN_SESSION;
	if (n < 4)
		return UDS_NRC_BAD_LENGTH;
	uint16_t did = uds_get16(q + 1);
	if (did != UDS_DID_SERIAL)
		return UDS_NRC_OUT_OF_RANGE;
	if (!e->unlocked)
		return UDS_NRC_SECURITY_DENIED;
	/* the serial: 1..32 printable characters (a shorter record may omit the padding) */
	const uint8_t *d = q + 3;
	size_t len = n - 3;
	if (len > uds_did_size(did))
		return UDS_NRC_BAD_LENGTH;
	while (len > 0 && d[len - 1] == 0)
		len--;
	if (len == 0 || len > VM_ID_MAX || !printable_text(d, len))
		return UDS_NRC_OUT_OF_RANGE;
	if (strlen(e->serial) != len || memcmp(e->serial, d, len) != 0) {
		memcpy(e->serial, d, len);
		e->serial[len] = '\0';
		e->dirty = true;
	}
	put1(r, UDS_POS(UDS_SID_WRITE_DID));
	put16(r, did);
	return OK_RESP;
}

static int routine_ok(rbuf *r, uint16_t rid)
{
	put1(r, UDS_POS(UDS_SID_ROUTINE));
	put1(r, UDS_ROUTINE_START);
	put16(r, rid);
	put1(r, 0x00); /* routine status: ok */
	return OK_RESP;
}

static int routine_check(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	uds_check_req c;
	if (uds_parse_check(q, n, &c) != PQ_OK)
		return UDS_NRC_BAD_LENGTH;
	if (c.software_type < 1 || c.software_type > 4)
		return UDS_NRC_OUT_OF_RANGE;
	if (!e->transferred)
		return UDS_NRC_SEQUENCE;
	int inactive = 1 - e->active;
	bool match = c.len == e->dl_got && c.crc32 == e->crc &&
	             pq_memeq_ct(c.sha256, e->got_sha256, 32) == 0;
	abort_download(e);
	e->erased = false;
	if (e->fail_program || !match) {
		set_dtc(e, UDS_DTC_PROG_CHECK);
		e->dirty = true; /* a check completed */
		return UDS_NRC_PROGRAMMING_FAILURE;
	}
	ecu_bank *nb = &e->bank[inactive];
	*nb = e->bank[e->active];
	nb->valid = true;
	if (c.software_type <= VM_SW_N)
		copy_str(nb->version[c.software_type - 1], sizeof(nb->version[0]), c.version);
	if (c.software_type == 1) {
		memcpy(nb->sha256, c.sha256, 32);
		nb->len = c.len;
		nb->crc32 = c.crc32;
	}
	e->pending = inactive;
	e->dirty = true;
	return routine_ok(r, UDS_RID_CHECK);
}

static int svc_routine(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session != UDS_SESSION_PROGRAMMING)
		return UDS_NRC_NOT_IN_SESSION;
	if (n < 4)
		return UDS_NRC_BAD_LENGTH;
	if ((q[1] & 0x7F) != UDS_ROUTINE_START)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	uint16_t rid = uds_get16(q + 2);
	if (rid != UDS_RID_ERASE && rid != UDS_RID_CHECK && rid != UDS_RID_ROLLBACK)
		return UDS_NRC_OUT_OF_RANGE;
	if (rid != UDS_RID_CHECK && n != 4)
		return UDS_NRC_BAD_LENGTH;
	if (!e->unlocked)
		return UDS_NRC_SECURITY_DENIED;
	int inactive = 1 - e->active;
	switch (rid) {
	case UDS_RID_ERASE:
		memset(&e->bank[inactive], 0, sizeof(e->bank[inactive]));
		if (e->previous == inactive)
			e->previous = -1;
		if (e->pending == inactive)
			e->pending = -1;
		abort_download(e);
		e->erased = true;
		e->dirty = true;
		return routine_ok(r, rid);
	case UDS_RID_CHECK:
		return routine_check(e, q, n, r);
	default: /* rollback */
		if (e->previous < 0 || !e->bank[e->previous].valid)
			return UDS_NRC_CONDITIONS;
		e->pending = e->previous;
		e->dirty = true;
		return routine_ok(r, rid);
	}
}

static int svc_download(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session != UDS_SESSION_PROGRAMMING)
		return UDS_NRC_NOT_IN_SESSION;
	if (n < 3)
		return UDS_NRC_BAD_LENGTH;
	size_t slen = q[2] >> 4, alen = q[2] & 0x0F;
	if (slen < 1 || slen > 8 || alen < 1 || alen > 8 || n != 3 + slen + alen)
		return UDS_NRC_BAD_LENGTH;
	if (q[1] != 0x00)
		return UDS_NRC_OUT_OF_RANGE; /* compression / encryption not supported */
	if (!e->unlocked)
		return UDS_NRC_SECURITY_DENIED;
	if (e->downloading)
		return UDS_NRC_CONDITIONS;
	if (!e->erased)
		return UDS_NRC_SEQUENCE;
	uint64_t size = 0;
	for (size_t i = 0; i < slen; i++)
		size = size << 8 | q[3 + alen + i];
	if (size == 0)
		return UDS_NRC_OUT_OF_RANGE;
	if (size > e->max_package_size)
		return UDS_NRC_DOWNLOAD_NOT_ACCEPTED;
	if (pq_hash_final(e->sha, e->got_sha256) != PQ_OK) /* resets the context */
		return UDS_NRC_CONDITIONS;
	abort_download(e);
	e->downloading = true;
	e->dl_size = size;
	e->crc = 0;
	e->bsc_next = 1;
	put1(r, UDS_POS(UDS_SID_DOWNLOAD));
	put1(r, 0x20); /* maxNumberOfBlockLength in 2 bytes */
	put16(r, UDS_MAX_BLOCK + 2);
	return OK_RESP;
}

static int svc_transfer(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session != UDS_SESSION_PROGRAMMING)
		return UDS_NRC_NOT_IN_SESSION;
	if (n < 2 || n > UDS_MAX_BLOCK + 2)
		return UDS_NRC_BAD_LENGTH;
	if (!e->downloading)
		return UDS_NRC_SEQUENCE;
	uint8_t bsc = q[1];
	if (e->any_block && bsc == (uint8_t)(e->bsc_next - 1)) {
		/* a repeat of the previous block (its response was lost): accepted, not written
		 * again */
		put1(r, UDS_POS(UDS_SID_TRANSFER));
		put1(r, bsc);
		return OK_RESP;
	}
	if (bsc != e->bsc_next)
		return UDS_NRC_WRONG_BSC;
	size_t len = n - 2;
	if (len == 0)
		return UDS_NRC_BAD_LENGTH;
	if (len > e->dl_size - e->dl_got)
		return UDS_NRC_TRANSFER_SUSPENDED;
	const uint8_t *d = q + 2;
	uint8_t bad[UDS_MAX_BLOCK];
	if (e->corrupt_block && e->blocks == 1) {
		/* the fault: the second block lands in memory altered */
		memcpy(bad, d, len);
		bad[0] ^= 0xA5;
		bad[len - 1] ^= 0x5A;
		d = bad;
	}
	if (pq_hash_update(e->sha, d, len) != PQ_OK)
		return UDS_NRC_PROGRAMMING_FAILURE;
	e->crc = pq_crc32(e->crc, d, len);
	e->dl_got += len;
	e->blocks++;
	e->any_block = true;
	e->bsc_next = (uint8_t)(bsc + 1); /* 0xFF wraps to 0x00 */
	put1(r, UDS_POS(UDS_SID_TRANSFER));
	put1(r, bsc);
	return OK_RESP;
}

static int svc_transfer_exit(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	(void)q;
	if (e->gateway)
		return UDS_NRC_SERVICE_NOT_SUPPORTED;
	if (e->session != UDS_SESSION_PROGRAMMING)
		return UDS_NRC_NOT_IN_SESSION;
	if (n != 1)
		return UDS_NRC_BAD_LENGTH;
	if (!e->downloading || e->dl_got != e->dl_size)
		return UDS_NRC_SEQUENCE;
	if (pq_hash_final(e->sha, e->got_sha256) != PQ_OK)
		return UDS_NRC_PROGRAMMING_FAILURE;
	e->downloading = false;
	e->transferred = true;
	put1(r, UDS_POS(UDS_SID_TRANSFER_EXIT));
	return OK_RESP;
}

static int svc_tester(ecu *e, const uint8_t *q, size_t n, rbuf *r)
{
	(void)e;
	if (n != 2)
		return UDS_NRC_BAD_LENGTH;
	if ((q[1] & 0x7F) != 0x00)
		return UDS_NRC_SUBFUNC_NOT_SUPPORTED;
	put1(r, UDS_POS(UDS_SID_TESTER));
	put1(r, 0x00);
	return OK_RESP;
}

int ecu_handle(ecu *e, const uint8_t *req, size_t n, uint8_t *resp, size_t cap, size_t *resp_len,
               int64_t now_ms)
{
	if (!e || !req || !resp || !resp_len || cap < 3)
		return pq_err_set(PQ_ERR_INVAL, "ecu: bad arguments");
	*resp_len = 0;
	if (n == 0)
		return PQ_OK;
	ecu_tick(e, now_ms);
	e->last_req_ms = now_ms;
	rbuf r = {resp, cap, 0, false};
	uint8_t sid = req[0];
	int nrc;
	switch (sid) {
	case UDS_SID_SESSION:
		nrc = svc_session(e, req, n, &r);
		break;
	case UDS_SID_RESET:
		nrc = svc_reset(e, req, n, &r);
		break;
	case UDS_SID_CLEAR_DTC:
		nrc = e->gateway ? UDS_NRC_SERVICE_NOT_SUPPORTED : svc_clear_dtc(e, req, n, &r);
		break;
	case UDS_SID_READ_DTC:
		nrc = e->gateway ? UDS_NRC_SERVICE_NOT_SUPPORTED : svc_read_dtc(e, req, n, &r);
		break;
	case UDS_SID_READ_DID:
		nrc = svc_read_did(e, req, n, &r);
		break;
	case UDS_SID_SECURITY:
		nrc = svc_security(e, req, n, &r, now_ms);
		break;
	case UDS_SID_WRITE_DID:
		nrc = svc_write_did(e, req, n, &r);
		break;
	case UDS_SID_ROUTINE:
		nrc = svc_routine(e, req, n, &r);
		break;
	case UDS_SID_DOWNLOAD:
		nrc = svc_download(e, req, n, &r);
		break;
	case UDS_SID_TRANSFER:
		nrc = svc_transfer(e, req, n, &r);
		break;
	case UDS_SID_TRANSFER_EXIT:
		nrc = svc_transfer_exit(e, req, n, &r);
		break;
	case UDS_SID_TESTER:
		nrc = svc_tester(e, req, n, &r);
		break;
	default:
		nrc = UDS_NRC_SERVICE_NOT_SUPPORTED;
		break;
	}
	if (nrc == OK_RESP && r.overflow)
		nrc = UDS_NRC_RESPONSE_TOO_LONG;
	if (nrc != OK_RESP) {
		*resp_len = uds_negative(resp, sid, (uint8_t)nrc);
		return PQ_OK;
	}
	if (uds_suppress_requested(req, n))
		return PQ_OK; /* positive response suppressed */
	*resp_len = r.len;
	return PQ_OK;
}

/* ---- persistent state as JSON ----------------------------------------------------------- */

static const char *const sw_names[VM_SW_N] = {"APP", "BOOT", "CAL"};

static json_t *bank_json(const ecu_bank *b)
{
	char hex[65];
	pq_hex_encode(b->sha256, 32, hex);
	json_t *v = json_object();
	json_t *j = json_object();
	for (int t = 0; t < VM_SW_N && v; t++)
		if (json_object_set_new(v, sw_names[t], json_string(b->version[t])) != 0)
			goto fail;
	if (!j || !v || json_object_set_new(j, "valid", json_boolean(b->valid)) != 0 ||
	    json_object_set_new(j, "versions", v) != 0)
		goto fail;
	v = NULL;
	if (json_object_set_new(j, "sha256", json_string(hex)) != 0 ||
	    json_object_set_new(j, "length", json_integer((json_int_t)b->len)) != 0 ||
	    json_object_set_new(j, "crc32", json_integer((json_int_t)b->crc32)) != 0)
		goto fail;
	return j;
fail:
	json_decref(v);
	json_decref(j);
	return NULL;
}

static json_t *bank_ref(int b)
{
	return b < 0 ? json_null() : json_string(ecu_bank_name(b));
}

json_t *ecu_state_json(const ecu *e)
{
	json_t *j = json_object();
	json_t *banks = json_object();
	json_t *dtcs = json_array();
	if (!j || !banks || !dtcs)
		goto fail;
	for (int i = 0; i < 2; i++) {
		json_t *b = bank_json(&e->bank[i]);
		if (!b || json_object_set_new(banks, ecu_bank_name(i), b) != 0)
			goto fail;
	}
	for (size_t i = 0; i < e->n_dtcs; i++) {
		char code[8];
		snprintf(code, sizeof(code), "%06X", (unsigned)(e->dtcs[i].code & 0xFFFFFFu));
		json_t *d = json_pack("{s:s,s:i}", "code", code, "status", (int)e->dtcs[i].status);
		if (!d || json_array_append_new(dtcs, d) != 0)
			goto fail;
	}
	if (json_object_set_new(j, "active", json_string(ecu_bank_name(e->active))) != 0 ||
	    json_object_set_new(j, "previous", bank_ref(e->previous)) != 0 ||
	    json_object_set_new(j, "pending", bank_ref(e->pending)) != 0 ||
	    json_object_set_new(j, "serial", json_string(e->serial)) != 0 ||
	    json_object_set_new(j, "banks", banks) != 0)
		goto fail;
	banks = NULL;
	if (json_object_set_new(j, "dtcs", dtcs) != 0)
		goto fail;
	return j;
fail:
	json_decref(banks);
	json_decref(dtcs);
	json_decref(j);
	return NULL;
}

static int fmt_err(const char *id, const char *field)
{
	return pq_err_set(PQ_ERR_FORMAT, "ecu state %s: bad or missing '%s'", id, field);
}

static int load_bank_ref(const json_t *j, bool nullable, int *out)
{
	if (nullable && json_is_null(j)) {
		*out = -1;
		return PQ_OK;
	}
	const char *s = json_string_value(j);
	if (!s || (strcmp(s, "A") != 0 && strcmp(s, "B") != 0))
		return PQ_ERR_FORMAT;
	*out = s[0] == 'B';
	return PQ_OK;
}

static bool str_field(const json_t *j, char *out, size_t cap, bool allow_empty)
{
	const char *s = json_string_value(j);
	if (!s)
		return false;
	size_t len = strlen(s);
	if (len >= cap || (!allow_empty && len == 0) || !printable_text((const uint8_t *)s, len))
		return false;
	memcpy(out, s, len + 1);
	return true;
}

static int load_bank(const char *id, const json_t *j, ecu_bank *b)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)j, key, v)
	{
		if (strcmp(key, "valid") != 0 && strcmp(key, "versions") != 0 &&
		    strcmp(key, "sha256") != 0 && strcmp(key, "length") != 0 &&
		    strcmp(key, "crc32") != 0)
			return fmt_err(id, key);
	}
	json_t *valid = json_object_get(j, "valid");
	json_t *vers = json_object_get(j, "versions");
	const char *hex = json_string_value(json_object_get(j, "sha256"));
	json_t *len = json_object_get(j, "length");
	json_t *crc = json_object_get(j, "crc32");
	if (!json_is_boolean(valid))
		return fmt_err(id, "valid");
	b->valid = json_is_true(valid);
	if (!json_is_object(vers) || json_object_size(vers) != VM_SW_N)
		return fmt_err(id, "versions");
	for (int t = 0; t < VM_SW_N; t++)
		if (!str_field(json_object_get(vers, sw_names[t]), b->version[t],
		               sizeof(b->version[t]), true))
			return fmt_err(id, sw_names[t]);
	size_t got = 0;
	if (!hex || strlen(hex) != 64 || pq_hex_decode(hex, b->sha256, 32, &got) != PQ_OK ||
	    got != 32)
		return fmt_err(id, "sha256");
	if (!json_is_integer(len) || json_integer_value(len) < 0)
		return fmt_err(id, "length");
	b->len = (uint64_t)json_integer_value(len);
	if (!json_is_integer(crc) || json_integer_value(crc) < 0 ||
	    json_integer_value(crc) > (json_int_t)UINT32_MAX)
		return fmt_err(id, "crc32");
	b->crc32 = (uint32_t)json_integer_value(crc);
	return PQ_OK;
}

int ecu_state_load(ecu *e, const json_t *j)
{
	if (!e || !json_is_object(j))
		return pq_err_set(PQ_ERR_FORMAT, "ecu state %s: not an object",
		                  e ? e->ecu_id : "?");
	const char *id = e->ecu_id;
	ecu tmp = *e; /* changes land in a copy: a bad file leaves the ECU as it was */
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)j, key, v)
	{
		if (strcmp(key, "active") != 0 && strcmp(key, "previous") != 0 &&
		    strcmp(key, "pending") != 0 && strcmp(key, "serial") != 0 &&
		    strcmp(key, "banks") != 0 && strcmp(key, "dtcs") != 0)
			return fmt_err(id, key);
	}
	if (load_bank_ref(json_object_get(j, "active"), false, &tmp.active) != PQ_OK)
		return fmt_err(id, "active");
	if (load_bank_ref(json_object_get(j, "previous"), true, &tmp.previous) != PQ_OK)
		return fmt_err(id, "previous");
	if (load_bank_ref(json_object_get(j, "pending"), true, &tmp.pending) != PQ_OK)
		return fmt_err(id, "pending");
	if (!str_field(json_object_get(j, "serial"), tmp.serial, sizeof(tmp.serial), true))
		return fmt_err(id, "serial");
	json_t *banks = json_object_get(j, "banks");
	if (!json_is_object(banks) || json_object_size(banks) != 2)
		return fmt_err(id, "banks");
	for (int i = 0; i < 2; i++) {
		json_t *b = json_object_get(banks, ecu_bank_name(i));
		if (!json_is_object(b))
			return fmt_err(id, ecu_bank_name(i));
		int rc = load_bank(id, b, &tmp.bank[i]);
		if (rc != PQ_OK)
			return rc;
	}
	json_t *dtcs = json_object_get(j, "dtcs");
	if (!json_is_array(dtcs) || json_array_size(dtcs) > ECU_DTCS_MAX)
		return fmt_err(id, "dtcs");
	tmp.n_dtcs = 0;
	size_t i;
	json_array_foreach(dtcs, i, v)
	{
		const char *code = json_string_value(json_object_get(v, "code"));
		json_t *st = json_object_get(v, "status");
		uint8_t c[3];
		size_t got = 0;
		if (!json_is_object(v) || json_object_size(v) != 2 || !code || strlen(code) != 6 ||
		    pq_hex_decode(code, c, 3, &got) != PQ_OK || !json_is_integer(st) ||
		    json_integer_value(st) < 0 || json_integer_value(st) > 255)
			return fmt_err(id, "dtcs");
		tmp.dtcs[i].code = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
		tmp.dtcs[i].status = (uint8_t)json_integer_value(st);
		tmp.n_dtcs++;
	}
	if (!tmp.bank[tmp.active].valid)
		return pq_err_set(PQ_ERR_FORMAT, "ecu state %s: the active bank is not valid", id);
	if (tmp.previous == tmp.active || tmp.pending == tmp.active)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "ecu state %s: previous/pending is the active bank", id);
	*e = tmp;
	return PQ_OK;
}
