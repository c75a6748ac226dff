/* doip.h: DoIP (ISO 13400-2) frame codec: the 8-byte generic header, typed payloads of the
 * TCP data messages (routing activation, diagnostic message and its acks, alive check,
 * generic NACK) and an incremental reader that cuts frames out of a TCP byte stream.
 *
 * Everything is bounded: parsers never read past the given length, the reader keeps at most
 * one frame in a caller-supplied buffer and allocates nothing. */
#ifndef PQOTA_VEHICLE_DOIP_H
#define PQOTA_VEHICLE_DOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define DOIP_HDR_LEN 8

/* Protocol versions. */
#define DOIP_V2012    0x02 /* ISO 13400-2:2012 */
#define DOIP_V2019    0x03 /* ISO 13400-2:2019 */
#define DOIP_VDEFAULT 0xFF /* only in vehicle identification requests */

/* Payload types. */
#define DOIP_GENERIC_NACK 0x0000
#define DOIP_VID_REQ      0x0001 /* vehicle identification request (UDP) */
#define DOIP_VID_REQ_EID  0x0002 /* ... with EID */
#define DOIP_VID_REQ_VIN  0x0003 /* ... with VIN */
#define DOIP_ROUTING_REQ  0x0005
#define DOIP_ROUTING_RESP 0x0006
#define DOIP_ALIVE_REQ    0x0007
#define DOIP_ALIVE_RESP   0x0008
#define DOIP_DIAG_MSG     0x8001
#define DOIP_DIAG_ACK     0x8002
#define DOIP_DIAG_NACK    0x8003

/* Generic header NACK codes (payload of DOIP_GENERIC_NACK). */
#define DOIP_NACK_PATTERN      0x00 /* incorrect pattern format: close the connection */
#define DOIP_NACK_UNKNOWN_TYPE 0x01
#define DOIP_NACK_TOO_LARGE    0x02
#define DOIP_NACK_OUT_OF_MEM   0x03
#define DOIP_NACK_INVALID_LEN  0x04 /* invalid payload length: close the connection */

/* Diagnostic message ack/NACK codes. */
#define DOIP_DIAG_ACK_OK              0x00
#define DOIP_DIAG_NACK_INVALID_SOURCE 0x02
#define DOIP_DIAG_NACK_UNKNOWN_TARGET 0x03
#define DOIP_DIAG_NACK_TOO_LARGE      0x04
#define DOIP_DIAG_NACK_OUT_OF_MEM     0x05
#define DOIP_DIAG_NACK_UNREACHABLE    0x06
#define DOIP_DIAG_NACK_UNKNOWN_NET    0x07
#define DOIP_DIAG_NACK_TP_ERROR       0x08

typedef struct {
	uint8_t version;
	uint16_t type;
	uint32_t len; /* payload length */
} doip_hdr;

/* Parses the header at buf. Needs n >= DOIP_HDR_LEN (else PQ_ERR_INVAL, *nack untouched).
 * Whenever n >= DOIP_HDR_LEN, *out receives the raw fields, even on failure (so a caller can
 * skip the payload). Checks, in the standard's order, each failure returning PQ_ERR_FORMAT
 * with the code to answer in *nack:
 *   version not 0x02/0x03 (0xFF only for vehicle identification requests) or inverse
 *   version not ~version -> DOIP_NACK_PATTERN; unknown payload type -> DOIP_NACK_UNKNOWN_TYPE;
 *   len > max_payload -> DOIP_NACK_TOO_LARGE; len not valid for the type (fixed size, or
 *   below the minimum) -> DOIP_NACK_INVALID_LEN. */
int doip_hdr_parse(const uint8_t *buf, size_t n, uint32_t max_payload, doip_hdr *out,
                   uint8_t *nack) PQ_MUST_CHECK;

/* Writes the 8 header bytes; returns DOIP_HDR_LEN. Does not validate. */
size_t doip_hdr_write(uint8_t out[DOIP_HDR_LEN], uint8_t version, uint16_t type, uint32_t len);

/* True when nack is a header NACK after which the standard requires closing the socket. */
bool doip_nack_closes(uint8_t nack);

/* Typed payloads. Parsers take the payload (after the header) and its length; they check the
 * length like doip_hdr_parse and return PQ_ERR_FORMAT on a mismatch. Pointers in the parsed
 * structs point into the given payload. Builders write a whole frame (header + payload) for
 * version 0x02 or 0x03 into out[cap], set *written and return PQ_ERR_RANGE when it does not
 * fit, PQ_ERR_INVAL on a bad version or argument. */
typedef struct {
	uint16_t source;
	uint8_t activation_type;
	bool has_oem;
	uint8_t oem[4];
} doip_routing_req;

typedef struct {
	uint16_t tester;
	uint16_t entity;
	uint8_t code;
	bool has_oem;
	uint8_t oem[4];
} doip_routing_resp;

/* Diagnostic message: user data (UDS bytes), at least one. */
typedef struct {
	uint16_t source;
	uint16_t target;
	const uint8_t *data;
	size_t len;
} doip_diag;

/* Diagnostic message positive (code 0x00) or negative ack, with optional previous data. */
typedef struct {
	uint16_t source;
	uint16_t target;
	uint8_t code;
	const uint8_t *prev;
	size_t prev_len;
} doip_diag_ack;

int doip_parse_generic_nack(const uint8_t *p, size_t n, uint8_t *code) PQ_MUST_CHECK;
int doip_parse_routing_req(const uint8_t *p, size_t n, doip_routing_req *out) PQ_MUST_CHECK;
int doip_parse_routing_resp(const uint8_t *p, size_t n, doip_routing_resp *out) PQ_MUST_CHECK;
int doip_parse_alive_resp(const uint8_t *p, size_t n, uint16_t *source) PQ_MUST_CHECK;
int doip_parse_diag(const uint8_t *p, size_t n, doip_diag *out) PQ_MUST_CHECK;
/* positive: payload of DOIP_DIAG_ACK (code must be 0x00); else of DOIP_DIAG_NACK (code must
 * not be 0x00). */
int doip_parse_diag_ack(bool positive, const uint8_t *p, size_t n,
                        doip_diag_ack *out) PQ_MUST_CHECK;

int doip_build_generic_nack(uint8_t *out, size_t cap, uint8_t version, uint8_t code,
                            size_t *written) PQ_MUST_CHECK;
int doip_build_routing_req(uint8_t *out, size_t cap, uint8_t version, const doip_routing_req *m,
                           size_t *written) PQ_MUST_CHECK;
int doip_build_routing_resp(uint8_t *out, size_t cap, uint8_t version, const doip_routing_resp *m,
                            size_t *written) PQ_MUST_CHECK;
int doip_build_alive_req(uint8_t *out, size_t cap, uint8_t version, size_t *written) PQ_MUST_CHECK;
int doip_build_alive_resp(uint8_t *out, size_t cap, uint8_t version, uint16_t source,
                          size_t *written) PQ_MUST_CHECK;
int doip_build_diag(uint8_t *out, size_t cap, uint8_t version, const doip_diag *m,
                    size_t *written) PQ_MUST_CHECK;
int doip_build_diag_ack(uint8_t *out, size_t cap, uint8_t version, bool positive,
                        const doip_diag_ack *m, size_t *written) PQ_MUST_CHECK;

/* Incremental reader over a TCP byte stream. The caller owns buf (at least
 * DOIP_READER_MIN_BUF bytes); frames with a payload longer than cap - DOIP_HDR_LEN are
 * answered with DOIP_NACK_TOO_LARGE and their payload is skipped. */
#define DOIP_READER_MIN_BUF 32

typedef struct {
	uint8_t *buf;
	size_t cap;
	uint32_t max_payload;
	size_t have;   /* bytes of the current frame in buf */
	uint64_t skip; /* payload bytes still to discard after a non-fatal NACK */
	doip_hdr hdr;
	bool ready;  /* a frame was handed out: drop it on the next feed */
	bool closed; /* a fatal NACK was reported */
} doip_reader;

typedef struct {
	doip_hdr hdr;
	const uint8_t *payload; /* hdr.len bytes inside the reader's buffer, valid until the next
	                           doip_reader_feed */
} doip_frame;

int doip_reader_init(doip_reader *r, uint8_t *buf, size_t cap) PQ_MUST_CHECK;

/* Consumes bytes from data[n] and stops at the first complete frame or header error; *used
 * says how many were consumed (feed the rest again). Returns:
 *   1             a complete, header-valid frame in *frame;
 *   0             all n bytes consumed, no frame complete yet;
 *   PQ_ERR_FORMAT a bad header: answer with a generic NACK of code *nack; when
 *                 doip_reader_closed(r) the connection must be closed, otherwise the reader
 *                 skips that frame's payload and goes on;
 *   PQ_ERR_INVAL  the reader was closed already, or bad arguments. */
int doip_reader_feed(doip_reader *r, const uint8_t *data, size_t n, size_t *used, doip_frame *frame,
                     uint8_t *nack) PQ_MUST_CHECK;

bool doip_reader_closed(const doip_reader *r);

#endif
