/* uds.c: UDS (ISO 14229-1) names, DID table, key function, builders and response parsers. */
#include "vehicle/uds.h"

#include <string.h>

#include "core/buf.h"
#include "core/text.h"
#include "core/uds_names.h"
#include "crypto/hash.h"

uint16_t uds_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

uint32_t uds_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t uds_get64(const uint8_t *p)
{
	return (uint64_t)uds_get32(p) << 32 | uds_get32(p + 4);
}

void uds_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void uds_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void uds_put64(uint8_t *p, uint64_t v)
{
	uds_put32(p, (uint32_t)(v >> 32));
	uds_put32(p + 4, (uint32_t)v);
}

typedef struct {
	uint8_t code;
	const char *name;
} code_name;

static const code_name sid_names[] = {
    {UDS_SID_SESSION, "DiagnosticSessionControl"},
    {UDS_SID_RESET, "ECUReset"},
    {UDS_SID_CLEAR_DTC, "ClearDiagnosticInformation"},
    {UDS_SID_READ_DTC, "ReadDTCInformation"},
    {UDS_SID_READ_DID, "ReadDataByIdentifier"},
    {UDS_SID_SECURITY, "SecurityAccess"},
    {UDS_SID_WRITE_DID, "WriteDataByIdentifier"},
    {UDS_SID_ROUTINE, "RoutineControl"},
    {UDS_SID_DOWNLOAD, "RequestDownload"},
    {UDS_SID_TRANSFER, "TransferData"},
    {UDS_SID_TRANSFER_EXIT, "RequestTransferExit"},
    {UDS_SID_TESTER, "TesterPresent"},
};

static const char *lookup(const code_name *t, size_t n, uint8_t code, const char *dflt)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].code == code)
			return t[i].name;
	return dflt;
}

const char *uds_nrc_name(uint8_t nrc)
{
	const char *n = pq_uds_nrc_name(nrc);
	return n ? n : "unknownNRC";
}

const char *uds_sid_name(uint8_t sid)
{
	return lookup(sid_names, sizeof(sid_names) / sizeof(sid_names[0]), sid, "unknownService");
}

/* ---- describing a response ------------------------------------------------------------ */

/* Identification DIDs that uds_describe shows as text (ISO 14229-1 annex C). */
static const struct {
	uint16_t did;
	const char *what;
} text_dids[] = {
    {UDS_DID_PART_NUMBER, "spare part number"},
    {UDS_DID_APP_VERSION, "software version"},
    {UDS_DID_SUPPLIER, "supplier"},
    {UDS_DID_SERIAL, "serial number"},
    {UDS_DID_VIN, "VIN"},
    {UDS_DID_HW_NUMBER, "hardware number"},
    {UDS_DID_SUPPLIER_SW, "software version"},
    {UDS_DID_SYSTEM_NAME, "system name"},
};

/* 62 DID text (what) for a text identification DID with printable data; false otherwise. */
static bool describe_text_did(const uint8_t *resp, size_t n, pq_buf *b)
{
	if (n < 4 || resp[0] != UDS_POS(UDS_SID_READ_DID))
		return false;
	uint16_t did = uds_get16(resp + 1);
	const uint8_t *text = resp + 3;
	size_t len = n - 3;
	if (text[len - 1] == 0x00)
		len--; /* one trailing NUL */
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] > 0x7e)
			return false;
	for (size_t i = 0; i < sizeof(text_dids) / sizeof(text_dids[0]); i++) {
		if (text_dids[i].did == did) {
			pq_buf_printf(b, "62 %04X \"%.*s\" (%s)", did, (int)len, (const char *)text,
			              text_dids[i].what);
			return true;
		}
	}
	return false;
}

const char *uds_describe(const uint8_t *resp, size_t n, char *out, size_t cap)
{
	pq_buf b;
	if (cap < 4) {
		if (cap > 0)
			out[0] = '\0';
		return out;
	}
	pq_buf_init_fixed(&b, out, cap);
	if (n == 0 || describe_text_did(resp, n, &b))
		return out;
	if (n == 3 && resp[0] == UDS_NEG) {
		pq_buf_printf(&b, "NRC 0x%02X %s (%s)", resp[2], uds_nrc_name(resp[2]),
		              uds_sid_name(resp[1]));
		return out;
	}
	char hex[2 * UDS_DESCRIBE_HEX_MAX + 1];
	size_t more = n - 1 < UDS_DESCRIBE_HEX_MAX ? n - 1 : UDS_DESCRIBE_HEX_MAX;
	pq_hex_encode_upper(resp + 1, more, hex);
	pq_buf_printf(&b, "%02X%s%s%s", resp[0], more ? " " : "", hex,
	              n - 1 > UDS_DESCRIBE_HEX_MAX ? "..." : "");
	return out;
}

/* ---- DIDs --------------------------------------------------------------------------------- */

typedef struct {
	uint16_t did;
	uint16_t size;
	bool text;
} did_def;

static const did_def dids[] = {
    {UDS_DID_PART_NUMBER, 32, true},   {UDS_DID_SW_NUMBER, 32, true},
    {UDS_DID_APP_VERSION, 24, true},   {UDS_DID_SERIAL, 32, true},
    {UDS_DID_VIN, 32, true},           {UDS_DID_HW_NUMBER, 64, true},
    {UDS_DID_SUPPLIER_SW, 64, true},   {UDS_DID_ACTIVE_BANK, 1, true},
    {UDS_DID_BOOT_VERSION, 24, true},  {UDS_DID_CAL_VERSION, 24, true},
    {UDS_DID_IMAGE_SHA256, 32, false}, {UDS_DID_IMAGE_LENGTH, 8, false},
};

static const did_def *did_find(uint16_t did)
{
	for (size_t i = 0; i < sizeof(dids) / sizeof(dids[0]); i++)
		if (dids[i].did == did)
			return &dids[i];
	return NULL;
}

size_t uds_did_size(uint16_t did)
{
	const did_def *d = did_find(did);
	return d ? d->size : 0;
}

bool uds_did_is_text(uint16_t did)
{
	const did_def *d = did_find(did);
	return d && d->text;
}

int uds_sim_key(uint16_t addr, const uint8_t seed[4], uint8_t key[4])
{
	static const char label[] = "pqota-sim-key";
	uint8_t msg[sizeof(label) - 1 + 2 + 4];
	uint8_t md[32];
	memcpy(msg, label, sizeof(label) - 1);
	uds_put16(msg + sizeof(label) - 1, addr);
	memcpy(msg + sizeof(label) - 1 + 2, seed, 4);
	int rc = pq_hash(PQ_HASH_SHA256, msg, sizeof(msg), md);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "uds: security key");
	memcpy(key, md, 4);
	return PQ_OK;
}

size_t uds_negative(uint8_t out[3], uint8_t sid, uint8_t nrc)
{
	out[0] = UDS_NEG;
	out[1] = sid;
	out[2] = nrc;
	return 3;
}

int uds_check_response(uint8_t sid, const uint8_t *resp, size_t n, uint8_t *nrc)
{
	if (!resp || n == 0)
		return pq_err_set(PQ_ERR_FORMAT, "uds: empty response to 0x%02X", sid);
	if (resp[0] == UDS_NEG) {
		if (n != 3 || resp[1] != sid)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "uds: malformed negative response to 0x%02X", sid);
		if (nrc)
			*nrc = resp[2];
		return pq_err_set(PQ_ERR_VERIFY, "NRC 0x%02X %s", resp[2], uds_nrc_name(resp[2]));
	}
	if (resp[0] != UDS_POS(sid))
		return pq_err_set(PQ_ERR_FORMAT, "uds: response 0x%02X does not answer 0x%02X",
		                  resp[0], sid);
	return PQ_OK;
}

int uds_parse_session_resp(const uint8_t *resp, size_t n, uint8_t session, uint16_t *p2_ms,
                           uint32_t *p2star_ms, uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_SESSION, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n != 6 || resp[1] != session)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad session response (%zu bytes)", n);
	if (p2_ms)
		*p2_ms = uds_get16(resp + 2);
	if (p2star_ms)
		*p2star_ms = (uint32_t)uds_get16(resp + 4) * 10u;
	return PQ_OK;
}

int uds_build_read_did(const uint16_t *list, size_t count, uint8_t *out, size_t cap,
                       size_t *written)
{
	if (!list || !out || !written || count == 0 || count > UDS_READ_DIDS_MAX)
		return pq_err_set(PQ_ERR_INVAL, "uds: 1..%d DIDs per read", UDS_READ_DIDS_MAX);
	if (cap < 1 + 2 * count)
		return pq_err_set(PQ_ERR_RANGE, "uds: read request does not fit");
	out[0] = UDS_SID_READ_DID;
	for (size_t i = 0; i < count; i++)
		uds_put16(out + 1 + 2 * i, list[i]);
	*written = 1 + 2 * count;
	return PQ_OK;
}

int uds_parse_read_did_resp(const uint8_t *resp, size_t n, uds_did_rec *recs, size_t cap,
                            size_t *count, uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_READ_DID, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	size_t pos = 1, k = 0;
	if (n == 1)
		return pq_err_set(PQ_ERR_FORMAT, "uds: read response without data");
	while (pos < n) {
		if (n - pos < 2)
			return pq_err_set(PQ_ERR_FORMAT, "uds: truncated DID in read response");
		uint16_t did = uds_get16(resp + pos);
		size_t sz = uds_did_size(did);
		if (sz == 0)
			return pq_err_set(PQ_ERR_FORMAT, "uds: unknown DID 0x%04X in response",
			                  did);
		if (n - pos - 2 < sz)
			return pq_err_set(PQ_ERR_FORMAT, "uds: DID 0x%04X truncated", did);
		if (k == cap)
			return pq_err_set(PQ_ERR_RANGE, "uds: more than %zu DIDs in response", cap);
		recs[k].did = did;
		recs[k].data = resp + pos + 2;
		recs[k].len = sz;
		k++;
		pos += 2 + sz;
	}
	*count = k;
	return PQ_OK;
}

int uds_did_text(const uds_did_rec *rec, char *out, size_t cap)
{
	size_t len = 0;
	while (len < rec->len && rec->data[len] != 0)
		len++;
	for (size_t i = 0; i < rec->len; i++) {
		uint8_t c = rec->data[i];
		if (i >= len ? c != 0 : (c < 0x20 || c > 0x7E))
			return pq_err_set(PQ_ERR_FORMAT, "uds: DID 0x%04X is not padded text",
			                  rec->did);
	}
	if (len + 1 > cap)
		return pq_err_set(PQ_ERR_RANGE, "uds: DID 0x%04X text of %zu bytes too long",
		                  rec->did, len);
	memcpy(out, rec->data, len);
	out[len] = '\0';
	return PQ_OK;
}

int uds_parse_seed_resp(const uint8_t *resp, size_t n, uint8_t seed[4], uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_SECURITY, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n != 6 || resp[1] != UDS_SEC_SEED)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad seed response (%zu bytes)", n);
	memcpy(seed, resp + 2, 4);
	return PQ_OK;
}

size_t uds_build_download(uint8_t out[20], uint32_t addr, uint64_t size)
{
	out[0] = UDS_SID_DOWNLOAD;
	out[1] = 0x00; /* no compression, no encryption */
	if (size > UINT32_MAX) {
		out[2] = 0x84;
		uds_put32(out + 3, addr);
		uds_put64(out + 7, size);
		return 15;
	}
	out[2] = 0x44;
	uds_put32(out + 3, addr);
	uds_put32(out + 7, (uint32_t)size);
	return 11;
}

int uds_parse_download_resp(const uint8_t *resp, size_t n, uint64_t *max_block_len, uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_DOWNLOAD, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n < 2)
		return pq_err_set(PQ_ERR_FORMAT, "uds: short download response");
	size_t l = resp[1] >> 4;
	if (l < 1 || l > 8 || (resp[1] & 0x0F) != 0 || n != 2 + l)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad download response format 0x%02X",
		                  resp[1]);
	uint64_t v = 0;
	for (size_t i = 0; i < l; i++)
		v = v << 8 | resp[2 + i];
	*max_block_len = v;
	return PQ_OK;
}

static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7E)
			return false;
	return true;
}

int uds_build_check(const uds_check_req *c, uint8_t *out, size_t cap, size_t *written)
{
	size_t vlen = strnlen(c->version, sizeof(c->version));
	if (vlen == 0 || vlen > 24 || !printable(c->version, vlen))
		return pq_err_set(PQ_ERR_INVAL, "uds: check routine version must be 1..24 chars");
	size_t need = 4 + 32 + 4 + 8 + 1 + 1 + vlen;
	if (cap < need)
		return pq_err_set(PQ_ERR_RANGE, "uds: check request does not fit");
	out[0] = UDS_SID_ROUTINE;
	out[1] = UDS_ROUTINE_START;
	uds_put16(out + 2, UDS_RID_CHECK);
	memcpy(out + 4, c->sha256, 32);
	uds_put32(out + 36, c->crc32);
	uds_put64(out + 40, c->len);
	out[48] = c->software_type;
	out[49] = (uint8_t)vlen;
	memcpy(out + 50, c->version, vlen);
	*written = need;
	return PQ_OK;
}

int uds_parse_check(const uint8_t *req, size_t n, uds_check_req *out)
{
	if (n < 51 || req[0] != UDS_SID_ROUTINE || (req[1] & 0x7F) != UDS_ROUTINE_START ||
	    uds_get16(req + 2) != UDS_RID_CHECK)
		return pq_err_set(PQ_ERR_FORMAT, "uds: not a check routine request");
	size_t vlen = req[49];
	if (vlen == 0 || vlen > 24 || n != 50 + vlen || !printable((const char *)req + 50, vlen))
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad check routine version");
	memset(out, 0, sizeof(*out));
	memcpy(out->sha256, req + 4, 32);
	out->crc32 = uds_get32(req + 36);
	out->len = uds_get64(req + 40);
	out->software_type = req[48];
	memcpy(out->version, req + 50, vlen);
	return PQ_OK;
}

int uds_parse_routine_resp(const uint8_t *resp, size_t n, uint16_t rid, uint8_t *status,
                           uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_ROUTINE, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n < 4 || n > 5 || resp[1] != UDS_ROUTINE_START || uds_get16(resp + 2) != rid)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad routine response");
	*status = n == 5 ? resp[4] : 0;
	return PQ_OK;
}

int uds_parse_dtc_count_resp(const uint8_t *resp, size_t n, unsigned *count, uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_READ_DTC, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n != 6 || resp[1] != UDS_DTC_COUNT_BY_MASK)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad DTC count response");
	*count = uds_get16(resp + 4);
	return PQ_OK;
}

int uds_parse_dtc_report_resp(const uint8_t *resp, size_t n, uds_dtc *dtcs, size_t cap,
                              size_t *count, uint8_t *nrc)
{
	int rc = uds_check_response(UDS_SID_READ_DTC, resp, n, nrc);
	if (rc != PQ_OK)
		return rc;
	if (n < 3 || resp[1] != UDS_DTC_REPORT_BY_MASK || (n - 3) % 4 != 0)
		return pq_err_set(PQ_ERR_FORMAT, "uds: bad DTC report response");
	size_t k = (n - 3) / 4;
	if (k > cap)
		return pq_err_set(PQ_ERR_RANGE, "uds: %zu DTCs, room for %zu", k, cap);
	for (size_t i = 0; i < k; i++) {
		const uint8_t *p = resp + 3 + 4 * i;
		dtcs[i].code = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
		dtcs[i].status = p[3];
	}
	*count = k;
	return PQ_OK;
}
