/* tester.c: the VMG's DoIP client (routing activation, diagnostic messages with acks, alive
 * check answers), the UDS exchange over it, and the read-info / program / rollback
 * sequences. */
#include "vehicle/tester.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/time.h"
#include "pkg/swpg.h"
#include "vehicle/doip.h"
#include "vehicle/uds.h"

#define TESTER_RX_BUF           (DOIP_HDR_LEN + 4 + 4096 + 256) /* one incoming frame */
#define TESTER_MAX_BLOCK        UDS_MAX_BLOCK /* data bytes per 0x36 block we send */
#define TESTER_TX_BUF           (DOIP_HDR_LEN + 4 + TESTER_MAX_BLOCK + 2)
#define TESTER_TIMEOUT_MS       5000 /* per request in the sequences */
#define TESTER_SUPPRESS_WAIT_MS 50   /* P2: time for an NRC to a suppressed request */
#define TESTER_PENDING_MS       5000 /* P2*: extra time after each "response pending" */
#define TESTER_RETRIES          2    /* extra attempts of a 0x36 block after a timeout */

struct doipc {
	int fd;
	uint16_t tester;
	uint16_t entity;
	uint8_t version;
	doip_reader rd;
	uint8_t rxbuf[TESTER_RX_BUF];
	uint8_t in[8192];
	size_t in_pos, in_len;
	uint8_t tx[TESTER_TX_BUF];
	uint8_t last_nrc;
};

static void broken(doipc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int send_all(doipc *c, const uint8_t *p, size_t n)
{
	int rc = pq_write_all(c->fd, p, n);
	if (rc != PQ_OK) {
		broken(c);
		return pq_err_wrap(PQ_ERR_IO, "doip: send");
	}
	return PQ_OK;
}

/* The next frame before deadline: 1 with *fr, or an error. */
static int next_frame(doipc *c, int64_t deadline, doip_frame *fr)
{
	for (;;) {
		if (c->fd < 0)
			return pq_err_set(PQ_ERR_IO, "doip: connection closed");
		while (c->in_pos < c->in_len) {
			size_t used = 0;
			uint8_t nack = 0;
			int rc = doip_reader_feed(&c->rd, c->in + c->in_pos, c->in_len - c->in_pos,
			                          &used, fr, &nack);
			c->in_pos += used;
			if (rc == 1)
				return 1;
			if (rc == PQ_ERR_FORMAT) {
				/* the entity sent a frame we cannot take: answer like an entity
				 * would, and give up on the connection if the standard says so */
				uint8_t f[16];
				size_t n = 0;
				if (doip_build_generic_nack(f, sizeof(f), c->version, nack, &n) ==
				        PQ_OK &&
				    pq_write_all(c->fd, f, n) != PQ_OK)
					pq_err_clear();
				if (doip_reader_closed(&c->rd)) {
					broken(c);
					return pq_err_set(PQ_ERR_IO,
					                  "doip: malformed frame from the entity");
				}
			} else if (rc != 0) {
				broken(c);
				return pq_err_set(PQ_ERR_IO, "doip: reader failed");
			}
		}
		c->in_pos = c->in_len = 0;
		int64_t left = deadline - pq_mono_ms();
		if (left <= 0)
			return pq_err_set(PQ_ERR_TIMEOUT, "doip: timed out");
		struct pollfd pf = {c->fd, POLLIN, 0};
		int r = poll(&pf, 1, (int)(left > 60000 ? 60000 : left));
		if (r < 0 && errno != EINTR) {
			broken(c);
			return pq_err_set(PQ_ERR_IO, "doip: poll: %s", strerror(errno));
		}
		if (r <= 0)
			continue;
		ssize_t got = recv(c->fd, c->in, sizeof(c->in), 0);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0) {
			int e = got < 0 ? errno : 0;
			broken(c);
			return pq_err_set(PQ_ERR_IO, "doip: connection closed by the entity%s%s",
			                  e ? ": " : "", e ? strerror(e) : "");
		}
		c->in_len = (size_t)got;
	}
}

/* Answers an alive check request from the entity. */
static int answer_alive(doipc *c)
{
	uint8_t f[16];
	size_t n = 0;
	int rc = doip_build_alive_resp(f, sizeof(f), c->version, c->tester, &n);
	return rc == PQ_OK ? send_all(c, f, n) : rc;
}

static int tcp_connect(const char *host, uint16_t port, int timeout_ms, int *out)
{
	struct addrinfo hints, *res = NULL;
	char ps[8];
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%u", port);
	int g = getaddrinfo(host, ps, &hints, &res);
	if (g != 0)
		return pq_err_set(PQ_ERR_IO, "doip: %s: %s", host, gai_strerror(g));
	int rc = pq_err_set(PQ_ERR_IO, "doip: %s:%u: no address", host, port);
	int64_t deadline = pq_mono_ms() + timeout_ms;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		int r = connect(fd, a->ai_addr, a->ai_addrlen);
		if (r != 0 && errno == EINPROGRESS) {
			struct pollfd pf = {fd, POLLOUT, 0};
			int64_t left = deadline - pq_mono_ms();
			r = left > 0 ? poll(&pf, 1, (int)left) : 0;
			if (r == 0) {
				close(fd);
				rc = pq_err_set(PQ_ERR_TIMEOUT,
				                "doip: connecting to %s:%u timed out", host, port);
				continue;
			}
			int err = 0;
			socklen_t el = sizeof(err);
			if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
				err = errno;
			errno = err;
			r = err ? -1 : 0;
		}
		if (r != 0) {
			rc = pq_err_set(PQ_ERR_IO, "doip: connecting to %s:%u: %s", host, port,
			                strerror(errno));
			close(fd);
			continue;
		}
		int fl = fcntl(fd, F_GETFL);
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct timeval tv = {10, 0};
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		*out = fd;
		rc = PQ_OK;
		break;
	}
	freeaddrinfo(res);
	return rc;
}

/* Waits for the routing activation response (answering alive checks meanwhile). */
static int await_routing(doipc *c, const char *host, uint16_t port, int64_t deadline)
{
	for (;;) {
		doip_frame fr;
		int rc = next_frame(c, deadline, &fr);
		if (rc == PQ_ERR_TIMEOUT)
			return pq_err_set(PQ_ERR_TIMEOUT,
			                  "doip: no routing activation response from %s:%u", host,
			                  port);
		if (rc != 1)
			return rc;
		if (fr.hdr.type == DOIP_ALIVE_REQ) {
			rc = answer_alive(c);
			if (rc != PQ_OK)
				return rc;
			continue;
		}
		if (fr.hdr.type == DOIP_GENERIC_NACK) {
			uint8_t code = 0;
			if (doip_parse_generic_nack(fr.payload, fr.hdr.len, &code) != PQ_OK)
				code = 0xFF;
			return pq_err_set(PQ_ERR_IO,
			                  "doip: routing activation: generic NACK 0x%02X", code);
		}
		if (fr.hdr.type != DOIP_ROUTING_RESP)
			continue;
		doip_routing_resp rs;
		rc = doip_parse_routing_resp(fr.payload, fr.hdr.len, &rs);
		if (rc != PQ_OK)
			return rc;
		if (rs.code != 0x10)
			return pq_err_set(
			    PQ_ERR_VERIFY,
			    "doip: routing activation of 0x%04X refused by %s:%u: code "
			    "0x%02X%s",
			    c->tester, host, port, rs.code,
			    rs.code == 0x00 ? " (unknown source address)" : "");
		c->entity = rs.entity;
		return PQ_OK;
	}
}

int doipc_connect(const char *host, uint16_t port, uint16_t tester_addr, int timeout_ms,
                  doipc **out)
{
	if (!host || !out || timeout_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "doip: bad arguments");
	*out = NULL;
	doipc *c = calloc(1, sizeof(*c));
	if (!c)
		return pq_err_set(PQ_ERR_NOMEM, "doip: no memory");
	c->fd = -1;
	c->tester = tester_addr;
	c->version = DOIP_V2012;
	int64_t deadline = pq_mono_ms() + timeout_ms;
	doip_routing_req rq = {tester_addr, 0x00, false, {0, 0, 0, 0}};
	size_t n = 0;
	int rc = doip_reader_init(&c->rd, c->rxbuf, sizeof(c->rxbuf));
	if (rc == PQ_OK)
		rc = tcp_connect(host, port, timeout_ms, &c->fd);
	if (rc == PQ_OK)
		rc = doip_build_routing_req(c->tx, sizeof(c->tx), c->version, &rq, &n);
	if (rc == PQ_OK)
		rc = send_all(c, c->tx, n);
	if (rc == PQ_OK)
		rc = await_routing(c, host, port, deadline);
	if (rc != PQ_OK) {
		doipc_close(c);
		return rc;
	}
	*out = c;
	return PQ_OK;
}

void doipc_close(doipc *c)
{
	if (!c)
		return;
	broken(c);
	free(c);
}

/* One UDS request waiting for its diagnostic ack and its response. */
typedef struct {
	uint16_t target;
	uint8_t sid;
	bool suppress; /* the request asked for no positive response */
	bool acked;
	bool done; /* the response is in resp */
	int timeout_ms;
	int64_t deadline;
	uint8_t *resp;
	size_t cap, *resp_len;
} uds_wait;

/* A diagnostic ack or NACK from the target. */
static int on_diag_ack(doipc *c, uds_wait *w, const doip_frame *fr)
{
	doip_diag_ack a;
	bool pos = fr->hdr.type == DOIP_DIAG_ACK;
	if (doip_parse_diag_ack(pos, fr->payload, fr->hdr.len, &a) != PQ_OK ||
	    a.source != w->target || a.target != c->tester)
		return PQ_OK;
	if (!pos)
		return pq_err_set(
		    a.code == DOIP_DIAG_NACK_UNKNOWN_TARGET ? PQ_ERR_NOTFOUND : PQ_ERR_IO,
		    "doip: diagnostic NACK 0x%02X for target 0x%04X", a.code, w->target);
	w->acked = true;
	if (w->suppress) {
		int64_t t = pq_mono_ms() + TESTER_SUPPRESS_WAIT_MS;
		w->deadline = t < w->deadline ? t : w->deadline;
	}
	return PQ_OK;
}

/* A diagnostic message: the response (positive or negative) to our request, a "response
 * pending" that extends the deadline, or a late answer to an earlier request (ignored). */
static int on_diag_msg(doipc *c, uds_wait *w, const doip_frame *fr)
{
	doip_diag m;
	if (doip_parse_diag(fr->payload, fr->hdr.len, &m) != PQ_OK || m.source != w->target ||
	    m.target != c->tester)
		return PQ_OK;
	bool neg = m.data[0] == UDS_NEG && m.len >= 2 && m.data[1] == w->sid;
	if (!neg && m.data[0] != UDS_POS(w->sid))
		return PQ_OK; /* a late answer to an earlier request */
	if (neg && m.len == 3 && m.data[2] == UDS_NRC_PENDING) {
		w->deadline =
		    pq_mono_ms() +
		    (w->timeout_ms > TESTER_PENDING_MS ? w->timeout_ms : TESTER_PENDING_MS);
		return PQ_OK;
	}
	if (m.len > w->cap)
		return pq_err_set(PQ_ERR_RANGE, "doip: UDS response of %zu bytes, room for %zu",
		                  m.len, w->cap);
	memcpy(w->resp, m.data, m.len);
	*w->resp_len = m.len;
	w->done = true;
	return PQ_OK;
}

static int on_frame(doipc *c, uds_wait *w, const doip_frame *fr)
{
	switch (fr->hdr.type) {
	case DOIP_ALIVE_REQ:
		return answer_alive(c);
	case DOIP_GENERIC_NACK: {
		uint8_t code = 0xFF;
		if (doip_parse_generic_nack(fr->payload, fr->hdr.len, &code) != PQ_OK)
			code = 0xFF;
		return pq_err_set(PQ_ERR_IO, "doip: generic NACK 0x%02X", code);
	}
	case DOIP_DIAG_ACK:
	case DOIP_DIAG_NACK:
		return on_diag_ack(c, w, fr);
	case DOIP_DIAG_MSG:
		return on_diag_msg(c, w, fr);
	default:
		return PQ_OK;
	}
}

int doipc_uds(doipc *c, uint16_t target, const uint8_t *req, size_t req_len, uint8_t *resp,
              size_t cap, size_t *resp_len, int timeout_ms)
{
	if (!c || !req || req_len == 0 || !resp || !resp_len || timeout_ms <= 0)
		return pq_err_set(PQ_ERR_INVAL, "doip: bad arguments");
	*resp_len = 0;
	if (c->fd < 0)
		return pq_err_set(PQ_ERR_IO, "doip: connection closed");
	doip_diag d = {c->tester, target, req, req_len};
	size_t n = 0;
	int rc = doip_build_diag(c->tx, sizeof(c->tx), c->version, &d, &n);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "doip: UDS request of %zu bytes", req_len);
	rc = send_all(c, c->tx, n);
	if (rc != PQ_OK)
		return rc;
	uds_wait w = {.target = target,
	              .sid = req[0],
	              .suppress = uds_suppress_requested(req, req_len),
	              .timeout_ms = timeout_ms,
	              .deadline = pq_mono_ms() + timeout_ms,
	              .resp = resp,
	              .cap = cap,
	              .resp_len = resp_len};
	while (!w.done) {
		doip_frame fr;
		rc = next_frame(c, w.deadline, &fr);
		if (rc == PQ_ERR_TIMEOUT) {
			if (w.acked && w.suppress)
				return PQ_OK; /* no negative response: done */
			return pq_err_set(PQ_ERR_TIMEOUT, "doip: no %s from 0x%04X within %d ms",
			                  w.acked ? "UDS response" : "diagnostic ack", target,
			                  timeout_ms);
		}
		if (rc != 1)
			return rc;
		rc = on_frame(c, &w, &fr);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

uint8_t doipc_last_nrc(const doipc *c)
{
	return c ? c->last_nrc : 0;
}

/* ---- sequences ----------------------------------------------------------------------------- */

static int nrc_err(uint8_t nrc)
{
	switch (nrc) {
	case UDS_NRC_DOWNLOAD_NOT_ACCEPTED:
	case UDS_NRC_TRANSFER_SUSPENDED:
		return PQ_ERR_RANGE;
	default:
		return PQ_ERR_VERIFY;
	}
}

/* One request of a sequence: sends it and checks for a positive response. Errors read
 * "ECU_011: 0x27 send key: NRC 0x35 invalidKey". */
static int step(doipc *c, uint16_t ecu, const char *what, const uint8_t *req, size_t n,
                uint8_t *resp, size_t cap, size_t *rlen)
{
	char name[16];
	swpg_ecu_name(ecu, name, sizeof(name));
	int rc = doipc_uds(c, ecu, req, n, resp, cap, rlen, TESTER_TIMEOUT_MS);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s: %s", name, what);
	uint8_t nrc = 0;
	rc = uds_check_response(req[0], resp, *rlen, &nrc);
	if (rc == PQ_ERR_VERIFY) {
		c->last_nrc = nrc;
		return pq_err_set(nrc_err(nrc), "%s: %s: NRC 0x%02X %s", name, what, nrc,
		                  uds_nrc_name(nrc));
	}
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s: %s", name, what);
	return PQ_OK;
}

static int bad_resp(uint16_t ecu, const char *what)
{
	char name[16];
	swpg_ecu_name(ecu, name, sizeof(name));
	return pq_err_wrap(PQ_ERR_FORMAT, "%s: %s: malformed response", name, what);
}

static const uint16_t info_dids[] = {
    UDS_DID_VIN,          UDS_DID_HW_NUMBER,    UDS_DID_SERIAL,      UDS_DID_PART_NUMBER,
    UDS_DID_APP_VERSION,  UDS_DID_BOOT_VERSION, UDS_DID_CAL_VERSION, UDS_DID_ACTIVE_BANK,
    UDS_DID_IMAGE_SHA256, UDS_DID_IMAGE_LENGTH,
};
#define N_INFO_DIDS (sizeof(info_dids) / sizeof(info_dids[0]))

static int info_field(tester_ecu_info *o, const uds_did_rec *r)
{
	switch (r->did) {
	case UDS_DID_VIN:
		return uds_did_text(r, o->vin, sizeof(o->vin));
	case UDS_DID_HW_NUMBER:
		return uds_did_text(r, o->hardware_id, sizeof(o->hardware_id));
	case UDS_DID_SERIAL:
		return uds_did_text(r, o->serial, sizeof(o->serial));
	case UDS_DID_PART_NUMBER:
		return uds_did_text(r, o->part_number, sizeof(o->part_number));
	case UDS_DID_APP_VERSION:
		return uds_did_text(r, o->version[VM_SW_APP], sizeof(o->version[0]));
	case UDS_DID_BOOT_VERSION:
		return uds_did_text(r, o->version[VM_SW_BOOT], sizeof(o->version[0]));
	case UDS_DID_CAL_VERSION:
		return uds_did_text(r, o->version[VM_SW_CAL], sizeof(o->version[0]));
	case UDS_DID_ACTIVE_BANK:
		if (r->data[0] != 'A' && r->data[0] != 'B')
			return pq_err_set(PQ_ERR_FORMAT, "bank '%c'", r->data[0]);
		o->bank = (char)r->data[0];
		return PQ_OK;
	case UDS_DID_IMAGE_SHA256:
		memcpy(o->image_sha256, r->data, 32);
		return PQ_OK;
	case UDS_DID_IMAGE_LENGTH:
		o->image_len = uds_get64(r->data);
		return PQ_OK;
	default:
		return PQ_OK;
	}
}

int tester_read_info(doipc *c, uint16_t ecu, tester_ecu_info *out)
{
	if (!c || !out)
		return pq_err_set(PQ_ERR_INVAL, "tester: NULL argument");
	uint8_t req[1 + 2 * N_INFO_DIDS];
	uint8_t resp[1024];
	size_t n = 0, rlen = 0, count = 0;
	uds_did_rec recs[N_INFO_DIDS];
	tester_ecu_info o;
	memset(&o, 0, sizeof(o));
	c->last_nrc = 0;
	int rc = uds_build_read_did(info_dids, N_INFO_DIDS, req, sizeof(req), &n);
	if (rc == PQ_OK)
		rc = step(c, ecu, "0x22 read identification", req, n, resp, sizeof(resp), &rlen);
	if (rc != PQ_OK)
		return rc;
	if (uds_parse_read_did_resp(resp, rlen, recs, N_INFO_DIDS, &count, NULL) != PQ_OK)
		return bad_resp(ecu, "0x22 read identification");
	for (size_t i = 0; i < N_INFO_DIDS; i++) {
		bool got = false;
		for (size_t k = 0; k < count && !got; k++) {
			if (recs[k].did != info_dids[i])
				continue;
			got = true;
			if (info_field(&o, &recs[k]) != PQ_OK)
				return bad_resp(ecu, "0x22 read identification");
		}
		if (!got) {
			char name[16];
			swpg_ecu_name(ecu, name, sizeof(name));
			return pq_err_set(PQ_ERR_FORMAT, "%s: 0x22: DID 0x%04X missing", name,
			                  info_dids[i]);
		}
	}
	static const uint8_t dtc_req[3] = {UDS_SID_READ_DTC, UDS_DTC_COUNT_BY_MASK, 0x09};
	rc = step(c, ecu, "0x19 DTC count", dtc_req, sizeof(dtc_req), resp, sizeof(resp), &rlen);
	if (rc != PQ_OK)
		return rc;
	if (uds_parse_dtc_count_resp(resp, rlen, &o.dtc_count, NULL) != PQ_OK)
		return bad_resp(ecu, "0x19 DTC count");
	*out = o;
	return PQ_OK;
}

/* 0x10 02 then 0x27 01 / 02. */
static int unlock(doipc *c, uint16_t ecu)
{
	uint8_t resp[64];
	size_t rlen = 0;
	static const uint8_t sess[2] = {UDS_SID_SESSION, UDS_SESSION_PROGRAMMING};
	int rc = step(c, ecu, "0x10 programming session", sess, 2, resp, sizeof(resp), &rlen);
	if (rc != PQ_OK)
		return rc;
	if (uds_parse_session_resp(resp, rlen, UDS_SESSION_PROGRAMMING, NULL, NULL, NULL) != PQ_OK)
		return bad_resp(ecu, "0x10 programming session");
	static const uint8_t seed_req[2] = {UDS_SID_SECURITY, UDS_SEC_SEED};
	rc = step(c, ecu, "0x27 request seed", seed_req, 2, resp, sizeof(resp), &rlen);
	if (rc != PQ_OK)
		return rc;
	uint8_t seed[4];
	if (uds_parse_seed_resp(resp, rlen, seed, NULL) != PQ_OK)
		return bad_resp(ecu, "0x27 request seed");
	if (!(seed[0] | seed[1] | seed[2] | seed[3]))
		return PQ_OK; /* already unlocked */
	uint8_t key_req[6] = {UDS_SID_SECURITY, UDS_SEC_KEY};
	rc = uds_sim_key(ecu, seed, key_req + 2);
	if (rc == PQ_OK)
		rc = step(c, ecu, "0x27 send key", key_req, sizeof(key_req), resp, sizeof(resp),
		          &rlen);
	return rc;
}

static int routine(doipc *c, uint16_t ecu, uint16_t rid, const char *what, const uint8_t *req,
                   size_t n)
{
	uint8_t resp[64];
	size_t rlen = 0;
	uint8_t status = 0;
	int rc = step(c, ecu, what, req, n, resp, sizeof(resp), &rlen);
	if (rc != PQ_OK)
		return rc;
	if (uds_parse_routine_resp(resp, rlen, rid, &status, NULL) != PQ_OK)
		return bad_resp(ecu, what);
	if (status != 0x00) {
		char name[16];
		swpg_ecu_name(ecu, name, sizeof(name));
		return pq_err_set(PQ_ERR_VERIFY, "%s: %s: routine status 0x%02X", name, what,
		                  status);
	}
	return PQ_OK;
}

static int hard_reset(doipc *c, uint16_t ecu)
{
	uint8_t resp[16];
	size_t rlen = 0;
	static const uint8_t req[2] = {UDS_SID_RESET, UDS_RESET_HARD};
	return step(c, ecu, "0x11 reset", req, 2, resp, sizeof(resp), &rlen);
}

/* After a failed sequence: back to the default session (best effort; keeps the error). */
static int leave(doipc *c, uint16_t ecu, int rc)
{
	char saved[512];
	snprintf(saved, sizeof(saved), "%s", pq_err_detail());
	if (c->fd >= 0) {
		uint8_t resp[16];
		size_t rlen = 0;
		static const uint8_t req[2] = {UDS_SID_SESSION, UDS_SESSION_DEFAULT};
		if (doipc_uds(c, ecu, req, 2, resp, sizeof(resp), &rlen, 1000) != PQ_OK)
			pq_err_clear();
	}
	return pq_err_set(rc, "%s", saved);
}

static int transfer(doipc *c, uint16_t ecu, const tester_image *img, uint64_t block,
                    tester_progress progress, void *user)
{
	char name[16];
	swpg_ecu_name(ecu, name, sizeof(name));
	int fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: image %s: %s",
		                  name, img->path, strerror(errno));
	uint8_t *req = malloc(2 + block);
	uint8_t resp[16];
	int rc = req ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "tester: no memory");
	uint64_t done = 0;
	uint8_t bsc = 1;
	uint64_t nblock = 0;
	while (rc == PQ_OK && done < img->len) {
		size_t want = (size_t)(img->len - done < block ? img->len - done : block);
		size_t got = 0;
		rc = pq_read_full(fd, req + 2, want, &got);
		if (rc == PQ_OK && got != want)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: image %s is shorter than %llu bytes",
			                name, img->path, (unsigned long long)img->len);
		if (rc != PQ_OK)
			break;
		req[0] = UDS_SID_TRANSFER;
		req[1] = bsc;
		nblock++;
		char what[64];
		snprintf(what, sizeof(what), "0x36 transfer data (block %llu)",
		         (unsigned long long)nblock);
		size_t rlen = 0;
		for (int attempt = 0;; attempt++) {
			/* a lost response: the same block again, which the ECU accepts once */
			rc = step(c, ecu, what, req, 2 + want, resp, sizeof(resp), &rlen);
			if (rc != PQ_ERR_TIMEOUT || attempt == TESTER_RETRIES)
				break;
		}
		if (rc != PQ_OK)
			break;
		if (rlen != 2 || resp[1] != bsc) {
			rc = bad_resp(ecu, what);
			break;
		}
		done += want;
		bsc++; /* 0xFF wraps to 0x00 */
		if (progress)
			progress(user, done, img->len);
	}
	if (rc == PQ_OK) {
		uint8_t extra;
		size_t got = 0;
		if (pq_read_full(fd, &extra, 1, &got) == PQ_OK && got != 0)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: image %s is longer than %llu bytes",
			                name, img->path, (unsigned long long)img->len);
	}
	free(req);
	close(fd);
	return rc;
}

int tester_program(doipc *c, uint16_t ecu, const tester_image *img, tester_progress progress,
                   void *user)
{
	if (!c || !img || !img->path)
		return pq_err_set(PQ_ERR_INVAL, "tester: NULL argument");
	uds_check_req chk;
	uint8_t req[UDS_CHECK_REQ_MAX + 8];
	uint8_t resp[64];
	size_t n = 0, rlen = 0;
	memset(&chk, 0, sizeof(chk));
	memcpy(chk.sha256, img->sha256, 32);
	chk.crc32 = img->crc32;
	chk.len = img->len;
	chk.software_type = img->software_type;
	snprintf(chk.version, sizeof(chk.version), "%s", img->version);
	c->last_nrc = 0;
	int rc = uds_build_check(&chk, req, sizeof(req), &n); /* validates the version early */
	if (rc != PQ_OK)
		return rc;
	if (img->software_type < 1 || img->software_type > 4 || img->len == 0)
		return pq_err_set(PQ_ERR_INVAL, "tester: bad image (type %u, %llu bytes)",
		                  img->software_type, (unsigned long long)img->len);
	rc = unlock(c, ecu);
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	static const uint8_t erase[4] = {UDS_SID_ROUTINE, UDS_ROUTINE_START, 0xFF, 0x00};
	rc = routine(c, ecu, UDS_RID_ERASE, "0x31 FF00 erase", erase, sizeof(erase));
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	uint8_t dl[20];
	size_t dlen = uds_build_download(dl, 0, img->len);
	rc = step(c, ecu, "0x34 request download", dl, dlen, resp, sizeof(resp), &rlen);
	uint64_t maxlen = 0;
	if (rc == PQ_OK &&
	    (uds_parse_download_resp(resp, rlen, &maxlen, NULL) != PQ_OK || maxlen < 3))
		rc = bad_resp(ecu, "0x34 request download");
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	uint64_t block = maxlen - 2 < TESTER_MAX_BLOCK ? maxlen - 2 : TESTER_MAX_BLOCK;
	rc = transfer(c, ecu, img, block, progress, user);
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	static const uint8_t exit_req[1] = {UDS_SID_TRANSFER_EXIT};
	rc = step(c, ecu, "0x37 transfer exit", exit_req, 1, resp, sizeof(resp), &rlen);
	if (rc == PQ_OK)
		rc = routine(c, ecu, UDS_RID_CHECK, "0x31 FF01 check programming", req, n);
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	return hard_reset(c, ecu);
}

int tester_rollback(doipc *c, uint16_t ecu)
{
	if (!c)
		return pq_err_set(PQ_ERR_INVAL, "tester: NULL argument");
	c->last_nrc = 0;
	int rc = unlock(c, ecu);
	if (rc != PQ_OK)
		return leave(c, ecu, rc);
	static const uint8_t req[4] = {UDS_SID_ROUTINE, UDS_ROUTINE_START, 0xFF, 0x02};
	rc =
	    routine(c, ecu, UDS_RID_ROLLBACK, "0x31 FF02 activate previous bank", req, sizeof(req));
	if (rc != PQ_OK) {
		if (c->last_nrc == UDS_NRC_CONDITIONS)
			rc = PQ_ERR_NOTFOUND; /* no previous bank */
		return leave(c, ecu, rc);
	}
	return hard_reset(c, ecu);
}
