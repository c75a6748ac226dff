/* fuzz_doip.c: libFuzzer harness for the DoIP codec: the input's first byte picks a chunk size
 * and the rest is fed to a doip_reader as a TCP stream.
 *
 * Every frame the reader returns must pass doip_hdr_parse, its typed payload must parse, and
 * rebuilding it must give back the same bytes. The reader must consume what it says, stop
 * after a fatal NACK, and never hand out a payload beyond its buffer. Violations abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vehicle/doip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF 64

/* Rebuilds the frame from its parsed payload and compares it with the original bytes. */
static void check_frame(const doip_frame *fr, const uint8_t *raw, size_t rawlen)
{
	uint8_t out[BUF];
	size_t n = 0;
	int rc = PQ_OK;
	const uint8_t *p = fr->payload;
	uint32_t len = fr->hdr.len;
	uint8_t v = fr->hdr.version;
	switch (fr->hdr.type) {
	case DOIP_GENERIC_NACK: {
		uint8_t c;
		if (doip_parse_generic_nack(p, len, &c) != PQ_OK)
			abort();
		rc = doip_build_generic_nack(out, sizeof(out), v, c, &n);
		break;
	}
	case DOIP_ROUTING_REQ: {
		doip_routing_req m;
		if (doip_parse_routing_req(p, len, &m) != PQ_OK)
			abort();
		rc = doip_build_routing_req(out, sizeof(out), v, &m, &n);
		if (rc == PQ_OK) /* reserved bytes are written as zero */
			memcpy(out + 11, p + 3, 4);
		break;
	}
	case DOIP_ROUTING_RESP: {
		doip_routing_resp m;
		if (doip_parse_routing_resp(p, len, &m) != PQ_OK)
			abort();
		rc = doip_build_routing_resp(out, sizeof(out), v, &m, &n);
		if (rc == PQ_OK)
			memcpy(out + 13, p + 5, 4);
		break;
	}
	case DOIP_ALIVE_REQ:
		rc = doip_build_alive_req(out, sizeof(out), v, &n);
		break;
	case DOIP_ALIVE_RESP: {
		uint16_t s;
		if (doip_parse_alive_resp(p, len, &s) != PQ_OK)
			abort();
		rc = doip_build_alive_resp(out, sizeof(out), v, s, &n);
		break;
	}
	case DOIP_DIAG_MSG: {
		doip_diag m;
		if (doip_parse_diag(p, len, &m) != PQ_OK)
			abort();
		rc = doip_build_diag(out, sizeof(out), v, &m, &n);
		break;
	}
	case DOIP_DIAG_ACK:
	case DOIP_DIAG_NACK: {
		doip_diag_ack m;
		bool pos = fr->hdr.type == DOIP_DIAG_ACK;
		if (doip_parse_diag_ack(pos, p, len, &m) != PQ_OK)
			return; /* a code that does not match the type */
		rc = doip_build_diag_ack(out, sizeof(out), v, pos, &m, &n);
		break;
	}
	default:
		return; /* vehicle identification requests: header only */
	}
	if (v == DOIP_VDEFAULT) {
		if (rc != PQ_ERR_INVAL)
			abort();
		return;
	}
	if (rc != PQ_OK || n != rawlen || memcmp(out, raw, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = data[0] % 17 + 1;
	data++;
	size--;

	/* the header parser alone, with a few limits */
	if (size >= DOIP_HDR_LEN) {
		doip_hdr h;
		uint8_t nack = 0xEE;
		int rc = doip_hdr_parse(data, size, BUF - DOIP_HDR_LEN, &h, &nack);
		if (rc == PQ_OK ? nack != 0xEE
		                : rc != PQ_ERR_FORMAT || nack > DOIP_NACK_INVALID_LEN)
			abort();
	}

	uint8_t buf[BUF];
	doip_reader r;
	if (doip_reader_init(&r, buf, sizeof(buf)) != PQ_OK)
		abort();
	size_t pos = 0;
	while (pos < size) {
		size_t end = pos + chunk < size ? pos + chunk : size;
		while (pos < end) {
			size_t used = 0;
			doip_frame fr;
			uint8_t nack = 0xEE;
			int rc = doip_reader_feed(&r, data + pos, end - pos, &used, &fr, &nack);
			if (used > end - pos)
				abort();
			pos += used;
			if (rc == 1) {
				size_t flen = DOIP_HDR_LEN + (size_t)fr.hdr.len;
				if (fr.payload != buf + DOIP_HDR_LEN || flen > sizeof(buf))
					abort();
				doip_hdr h;
				uint8_t n2;
				if (doip_hdr_parse(buf, DOIP_HDR_LEN, BUF - DOIP_HDR_LEN, &h,
				                   &n2) != PQ_OK)
					abort();
				check_frame(&fr, buf, flen);
			} else if (rc == 0) {
				if (pos != end)
					abort();
			} else if (rc == PQ_ERR_FORMAT) {
				if (doip_reader_closed(&r) != doip_nack_closes(nack))
					abort();
				if (doip_reader_closed(&r)) {
					if (doip_reader_feed(&r, data, size, &used, &fr, &nack) !=
					        PQ_ERR_INVAL ||
					    used != 0)
						abort();
					return 0;
				}
			} else {
				abort();
			}
		}
	}
	return 0;
}
