/* doip.c: DoIP (ISO 13400-2) generic header, typed payloads and the stream reader. */
#include "vehicle/doip.h"

#include <string.h>

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Payload length rules per type: exact length(s), or a minimum. */
typedef struct {
	uint16_t type;
	uint32_t a, b; /* valid lengths a or b; b == 0 with min set: any >= a */
	bool min;
} len_rule;

static const len_rule rules[] = {
    {DOIP_GENERIC_NACK, 1, 1, false}, {DOIP_VID_REQ, 0, 0, false},
    {DOIP_VID_REQ_EID, 6, 6, false},  {DOIP_VID_REQ_VIN, 17, 17, false},
    {DOIP_ROUTING_REQ, 7, 11, false}, {DOIP_ROUTING_RESP, 9, 13, false},
    {DOIP_ALIVE_REQ, 0, 0, false},    {DOIP_ALIVE_RESP, 2, 2, false},
    {DOIP_DIAG_MSG, 5, 0, true},      {DOIP_DIAG_ACK, 5, 0, true},
    {DOIP_DIAG_NACK, 5, 0, true},
};

static const len_rule *rule_for(uint16_t type)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

static bool len_ok(const len_rule *r, size_t len)
{
	if (r->min)
		return len >= r->a;
	return len == r->a || len == r->b;
}

static bool version_ok(uint8_t version, uint16_t type)
{
	if (version == DOIP_V2012 || version == DOIP_V2019)
		return true;
	return version == DOIP_VDEFAULT &&
	       (type == DOIP_VID_REQ || type == DOIP_VID_REQ_EID || type == DOIP_VID_REQ_VIN);
}

int doip_hdr_parse(const uint8_t *buf, size_t n, uint32_t max_payload, doip_hdr *out, uint8_t *nack)
{
	if (!buf || !out || !nack)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL argument");
	if (n < DOIP_HDR_LEN)
		return pq_err_set(PQ_ERR_INVAL, "doip: header needs %d bytes, have %zu",
		                  DOIP_HDR_LEN, n);
	out->version = buf[0];
	out->type = get16(buf + 2);
	out->len = get32(buf + 4);
	if ((buf[0] ^ buf[1]) != 0xFF || !version_ok(out->version, out->type)) {
		*nack = DOIP_NACK_PATTERN;
		return pq_err_set(PQ_ERR_FORMAT, "doip: bad version pattern %02x %02x", buf[0],
		                  buf[1]);
	}
	const len_rule *r = rule_for(out->type);
	if (!r) {
		*nack = DOIP_NACK_UNKNOWN_TYPE;
		return pq_err_set(PQ_ERR_FORMAT, "doip: unknown payload type 0x%04x", out->type);
	}
	if (out->len > max_payload) {
		*nack = DOIP_NACK_TOO_LARGE;
		return pq_err_set(PQ_ERR_FORMAT, "doip: payload of %u bytes exceeds %u", out->len,
		                  max_payload);
	}
	if (!len_ok(r, out->len)) {
		*nack = DOIP_NACK_INVALID_LEN;
		return pq_err_set(PQ_ERR_FORMAT, "doip: invalid length %u for type 0x%04x",
		                  out->len, out->type);
	}
	return PQ_OK;
}

size_t doip_hdr_write(uint8_t out[DOIP_HDR_LEN], uint8_t version, uint16_t type, uint32_t len)
{
	out[0] = version;
	out[1] = (uint8_t)~version;
	put16(out + 2, type);
	put32(out + 4, len);
	return DOIP_HDR_LEN;
}

bool doip_nack_closes(uint8_t nack)
{
	return nack == DOIP_NACK_PATTERN || nack == DOIP_NACK_INVALID_LEN;
}

/* Checks a payload's length against its type's rule. */
static int check_len(uint16_t type, const uint8_t *p, size_t n)
{
	if (!p && n)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL payload");
	if (!len_ok(rule_for(type), n))
		return pq_err_set(PQ_ERR_FORMAT, "doip: invalid length %zu for type 0x%04x", n,
		                  type);
	return PQ_OK;
}

int doip_parse_generic_nack(const uint8_t *p, size_t n, uint8_t *code)
{
	int rc = check_len(DOIP_GENERIC_NACK, p, n);
	if (rc != PQ_OK)
		return rc;
	*code = p[0];
	return PQ_OK;
}

int doip_parse_routing_req(const uint8_t *p, size_t n, doip_routing_req *out)
{
	int rc = check_len(DOIP_ROUTING_REQ, p, n);
	if (rc != PQ_OK)
		return rc;
	memset(out, 0, sizeof(*out));
	out->source = get16(p);
	out->activation_type = p[2];
	out->has_oem = n == 11;
	if (out->has_oem)
		memcpy(out->oem, p + 7, 4);
	return PQ_OK;
}

int doip_parse_routing_resp(const uint8_t *p, size_t n, doip_routing_resp *out)
{
	int rc = check_len(DOIP_ROUTING_RESP, p, n);
	if (rc != PQ_OK)
		return rc;
	memset(out, 0, sizeof(*out));
	out->tester = get16(p);
	out->entity = get16(p + 2);
	out->code = p[4];
	out->has_oem = n == 13;
	if (out->has_oem)
		memcpy(out->oem, p + 9, 4);
	return PQ_OK;
}

int doip_parse_alive_resp(const uint8_t *p, size_t n, uint16_t *source)
{
	int rc = check_len(DOIP_ALIVE_RESP, p, n);
	if (rc != PQ_OK)
		return rc;
	*source = get16(p);
	return PQ_OK;
}

int doip_parse_diag(const uint8_t *p, size_t n, doip_diag *out)
{
	int rc = check_len(DOIP_DIAG_MSG, p, n);
	if (rc != PQ_OK)
		return rc;
	out->source = get16(p);
	out->target = get16(p + 2);
	out->data = p + 4;
	out->len = n - 4;
	return PQ_OK;
}

int doip_parse_diag_ack(bool positive, const uint8_t *p, size_t n, doip_diag_ack *out)
{
	int rc = check_len(positive ? DOIP_DIAG_ACK : DOIP_DIAG_NACK, p, n);
	if (rc != PQ_OK)
		return rc;
	if ((p[4] == DOIP_DIAG_ACK_OK) != positive)
		return pq_err_set(PQ_ERR_FORMAT, "doip: diagnostic %s with code 0x%02x",
		                  positive ? "ack" : "nack", p[4]);
	out->source = get16(p);
	out->target = get16(p + 2);
	out->code = p[4];
	out->prev = n > 5 ? p + 5 : NULL;
	out->prev_len = n - 5;
	return PQ_OK;
}

/* Checks version and room, writes the header; returns the payload's start in *payload. */
static int begin(uint8_t *out, size_t cap, uint8_t version, uint16_t type, size_t len,
                 size_t *written, uint8_t **payload)
{
	if (!out || !written)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL argument");
	*written = 0;
	if (version != DOIP_V2012 && version != DOIP_V2019)
		return pq_err_set(PQ_ERR_INVAL, "doip: cannot build version 0x%02x", version);
	if (len > UINT32_MAX || !len_ok(rule_for(type), len))
		return pq_err_set(PQ_ERR_INVAL, "doip: invalid length %zu for type 0x%04x", len,
		                  type);
	if (cap < DOIP_HDR_LEN || len > cap - DOIP_HDR_LEN)
		return pq_err_set(PQ_ERR_RANGE, "doip: frame of %zu bytes exceeds %zu",
		                  len + DOIP_HDR_LEN, cap);
	doip_hdr_write(out, version, type, (uint32_t)len);
	*payload = out + DOIP_HDR_LEN;
	*written = DOIP_HDR_LEN + len;
	return PQ_OK;
}

int doip_build_generic_nack(uint8_t *out, size_t cap, uint8_t version, uint8_t code,
                            size_t *written)
{
	uint8_t *p;
	int rc = begin(out, cap, version, DOIP_GENERIC_NACK, 1, written, &p);
	if (rc != PQ_OK)
		return rc;
	p[0] = code;
	return PQ_OK;
}

int doip_build_routing_req(uint8_t *out, size_t cap, uint8_t version, const doip_routing_req *m,
                           size_t *written)
{
	uint8_t *p;
	if (!m)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL message");
	int rc = begin(out, cap, version, DOIP_ROUTING_REQ, m->has_oem ? 11 : 7, written, &p);
	if (rc != PQ_OK)
		return rc;
	put16(p, m->source);
	p[2] = m->activation_type;
	memset(p + 3, 0, 4);
	if (m->has_oem)
		memcpy(p + 7, m->oem, 4);
	return PQ_OK;
}

int doip_build_routing_resp(uint8_t *out, size_t cap, uint8_t version, const doip_routing_resp *m,
                            size_t *written)
{
	uint8_t *p;
	if (!m)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL message");
	int rc = begin(out, cap, version, DOIP_ROUTING_RESP, m->has_oem ? 13 : 9, written, &p);
	if (rc != PQ_OK)
		return rc;
	put16(p, m->tester);
	put16(p + 2, m->entity);
	p[4] = m->code;
	memset(p + 5, 0, 4);
	if (m->has_oem)
		memcpy(p + 9, m->oem, 4);
	return PQ_OK;
}

int doip_build_alive_req(uint8_t *out, size_t cap, uint8_t version, size_t *written)
{
	uint8_t *p;
	return begin(out, cap, version, DOIP_ALIVE_REQ, 0, written, &p);
}

int doip_build_alive_resp(uint8_t *out, size_t cap, uint8_t version, uint16_t source,
                          size_t *written)
{
	uint8_t *p;
	int rc = begin(out, cap, version, DOIP_ALIVE_RESP, 2, written, &p);
	if (rc != PQ_OK)
		return rc;
	put16(p, source);
	return PQ_OK;
}

int doip_build_diag(uint8_t *out, size_t cap, uint8_t version, const doip_diag *m, size_t *written)
{
	uint8_t *p;
	if (!m || (!m->data && m->len) || m->len > UINT32_MAX - 4)
		return pq_err_set(PQ_ERR_INVAL, "doip: bad diagnostic message");
	int rc = begin(out, cap, version, DOIP_DIAG_MSG, 4 + m->len, written, &p);
	if (rc != PQ_OK)
		return rc;
	put16(p, m->source);
	put16(p + 2, m->target);
	memcpy(p + 4, m->data, m->len);
	return PQ_OK;
}

int doip_build_diag_ack(uint8_t *out, size_t cap, uint8_t version, bool positive,
                        const doip_diag_ack *m, size_t *written)
{
	uint8_t *p;
	if (!m || (!m->prev && m->prev_len) || m->prev_len > UINT32_MAX - 5 ||
	    (m->code == DOIP_DIAG_ACK_OK) != positive)
		return pq_err_set(PQ_ERR_INVAL, "doip: bad diagnostic ack");
	int rc = begin(out, cap, version, positive ? DOIP_DIAG_ACK : DOIP_DIAG_NACK,
	               5 + m->prev_len, written, &p);
	if (rc != PQ_OK)
		return rc;
	put16(p, m->source);
	put16(p + 2, m->target);
	p[4] = m->code;
	if (m->prev_len)
		memcpy(p + 5, m->prev, m->prev_len);
	return PQ_OK;
}

int doip_reader_init(doip_reader *r, uint8_t *buf, size_t cap)
{
	if (!r || !buf || cap < DOIP_READER_MIN_BUF)
		return pq_err_set(PQ_ERR_INVAL, "doip: reader needs a buffer of >= %d bytes",
		                  DOIP_READER_MIN_BUF);
	memset(r, 0, sizeof(*r));
	r->buf = buf;
	r->cap = cap;
	r->max_payload =
	    cap - DOIP_HDR_LEN > UINT32_MAX ? UINT32_MAX : (uint32_t)(cap - DOIP_HDR_LEN);
	return PQ_OK;
}

bool doip_reader_closed(const doip_reader *r)
{
	return r->closed;
}

int doip_reader_feed(doip_reader *r, const uint8_t *data, size_t n, size_t *used, doip_frame *frame,
                     uint8_t *nack)
{
	size_t pos = 0;
	if (used)
		*used = 0;
	if (!r || (!data && n) || !used || !frame || !nack)
		return pq_err_set(PQ_ERR_INVAL, "doip: NULL argument");
	if (r->closed)
		return pq_err_set(PQ_ERR_INVAL, "doip: reader closed after a fatal NACK");
	if (r->ready) {
		r->ready = false;
		r->have = 0;
	}
	while (pos < n) {
		size_t left = n - pos, take;
		if (r->skip) {
			take = r->skip < left ? (size_t)r->skip : left;
			r->skip -= take;
			pos += take;
			continue;
		}
		if (r->have < DOIP_HDR_LEN) {
			take = DOIP_HDR_LEN - r->have;
			take = take < left ? take : left;
			memcpy(r->buf + r->have, data + pos, take);
			r->have += take;
			pos += take;
			if (r->have < DOIP_HDR_LEN)
				break;
			int rc =
			    doip_hdr_parse(r->buf, DOIP_HDR_LEN, r->max_payload, &r->hdr, nack);
			if (rc != PQ_OK) {
				*used = pos;
				r->have = 0;
				if (doip_nack_closes(*nack))
					r->closed = true;
				else
					r->skip = r->hdr.len;
				return rc;
			}
		} else {
			take = DOIP_HDR_LEN + (size_t)r->hdr.len - r->have;
			take = take < left ? take : left;
			memcpy(r->buf + r->have, data + pos, take);
			r->have += take;
			pos += take;
		}
		if (r->have == DOIP_HDR_LEN + (size_t)r->hdr.len) {
			frame->hdr = r->hdr;
			frame->payload = r->buf + DOIP_HDR_LEN;
			r->ready = true;
			*used = pos;
			return 1;
		}
	}
	*used = pos;
	return 0;
}
