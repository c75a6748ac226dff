/* diag.c: remote diagnostics on the control plane's side (server/diag.h): the check of a
 * vehicle's diag_response, publishing the due requests and storing the answers. The REST
 * routes are in diag_routes.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "core/text.h"
#include "server/diag.h"
#include "vehicle/uds.h"

#define LOGC "diag"

#define DIAG_SEND_BATCH   100      /* due requests published per round */
#define DIAG_ELAPSED_MAX  86400000 /* elapsed_ms bound */
#define DIAG_MIN_LEFT_MS  1000     /* a request with less time left is not sent */
#define DIAG_VEHICLE_MAX  60000    /* timeout_ms given to the vehicle, at most */
#define DIAG_VEHICLE_MARG 500      /* the vehicle's timeout ends this long before expiry */

/* ---- checks ----------------------------------------------------------------------------- */

bool diag_hex_valid(const char *s, size_t max_bytes)
{
	if (!s)
		return false;
	size_t n = strnlen(s, 2 * max_bytes + 1);
	return n > 0 && n % 2 == 0 && n <= 2 * max_bytes &&
	       strspn(s, "0123456789abcdefABCDEF") == n;
}

/* The first n (1..3) bytes of hex text of at least 2n digits. */
static int hex_head(const char *hex, size_t n, uint8_t *out)
{
	char head[7];
	size_t got = 0;
	if (n > 3 || strnlen(hex, 2 * n) < 2 * n)
		return pq_err_set(PQ_ERR_FORMAT, "UDS message shorter than %zu bytes", n);
	memcpy(head, hex, 2 * n);
	head[2 * n] = '\0';
	return pq_hex_decode(head, out, n, &got);
}

/* Bounded text without control characters (jansson strings are UTF-8). */
static bool text_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Whether s is an id of 1..max characters: [0-9A-Fa-f-] with uuid (request ids), else
 * [0-9A-Za-z_-] (ECU ids). */
static bool id_valid(const char *s, size_t max, bool uuid)
{
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
		          (ch >= 'A' && ch <= 'F') || ch == '-';
		if (!uuid)
			ok =
			    ok || (ch >= 'g' && ch <= 'z') || (ch >= 'G' && ch <= 'Z') || ch == '_';
		if (!ok)
			return false;
	}
	return true;
}

/* An optional field of an object: absent or null is fine; returns the value or NULL. */
static json_t *opt(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_null(v) ? NULL : v;
}

void diag_response_clear(diag_response *r)
{
	if (!r)
		return;
	json_decref(r->payload);
	memset(r, 0, sizeof(*r));
}

/* The members of a diag_response (borrowed from the message), the response decoded. */
typedef struct {
	const char *rid, *ecu, *status;
	json_t *nrc, *nrc_name, *error, *elapsed;
	store_diag_status st;
	bool has_resp;
	uint8_t resp[DIAG_REQUEST_BYTES_MAX];
	size_t resp_len;
} resp_fields;

/* Types, identifiers and bounds of every member. */
static int read_fields(const json_t *o, resp_fields *f)
{
	f->rid = json_string_value(json_object_get(o, "request_id"));
	f->ecu = json_string_value(json_object_get(o, "ecu_id"));
	f->status = json_string_value(json_object_get(o, "status"));
	json_t *resp = opt(o, "response");
	f->nrc = opt(o, "nrc");
	f->nrc_name = opt(o, "nrc_name");
	f->error = opt(o, "error");
	f->elapsed = opt(o, "elapsed_ms");
	if (!f->rid || !f->ecu || !f->status)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "diag_response: request_id, ecu_id and status must be strings");
	if (!id_valid(f->rid, STORE_ID_MAX, true))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: bad request_id");
	if (!id_valid(f->ecu, STORE_NAME_MAX, false))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: bad ecu_id");
	if (store_diag_status_parse(f->status, &f->st) != PQ_OK || f->st < STORE_DIAG_ST_POSITIVE)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "diag_response: status '%.16s' is not positive, "
		                  "negative, timeout or error",
		                  f->status);
	if ((resp && !json_is_string(resp)) || (f->nrc && !json_is_integer(f->nrc)) ||
	    (f->nrc_name && !json_is_string(f->nrc_name)) ||
	    (f->error && !json_is_string(f->error)) || (f->elapsed && !json_is_integer(f->elapsed)))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: a field has the wrong type");
	f->has_resp = resp != NULL;
	if (resp && (!diag_hex_valid(json_string_value(resp), DIAG_REQUEST_BYTES_MAX) ||
	             pq_hex_decode(json_string_value(resp), f->resp, sizeof(f->resp),
	                           &f->resp_len) != PQ_OK))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: response is not hex of 1..%d bytes",
		                  DIAG_REQUEST_BYTES_MAX);
	if (f->nrc_name && !text_ok(json_string_value(f->nrc_name), DIAG_NRC_NAME_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: bad nrc_name");
	if (f->error && !text_ok(json_string_value(f->error), STORE_DIAG_ERROR_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: bad error text");
	if (f->elapsed && (json_integer_value(f->elapsed) < 0 ||
	                   json_integer_value(f->elapsed) > DIAG_ELAPSED_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: elapsed_ms out of range");
	return PQ_OK;
}

/* The status and the response agree: a positive answer does not start with 7F, a negative
 * one is 7F <sid> <nrc> with the same nrc, the others carry neither. */
static int check_answer(const resp_fields *f)
{
	switch (f->st) {
	case STORE_DIAG_ST_POSITIVE:
		if (!f->has_resp || f->resp[0] == 0x7f || f->nrc)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: a positive answer needs a "
			                  "response not starting with 7F and no nrc");
		return PQ_OK;
	case STORE_DIAG_ST_NEGATIVE:
		if (!f->has_resp || f->resp_len != 3 || f->resp[0] != 0x7f || !f->nrc ||
		    json_integer_value(f->nrc) != f->resp[2])
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: a negative answer needs "
			                  "response 7F <sid> <nrc> and the same nrc");
		return PQ_OK;
	default:
		if (f->has_resp || f->nrc)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: %s carries no response or nrc",
			                  f->status);
		return PQ_OK;
	}
}

/* The result to store: message_id, response (uppercase hex), nrc, nrc_name, error,
 * elapsed_ms, each when it applies. */
static json_t *result_payload(const msg_in *m, const resp_fields *f, int nrc)
{
	char up[2 * DIAG_REQUEST_BYTES_MAX + 1];
	json_t *p = json_object();
	/* the ISO name when the server knows the code, else the vehicle's */
	const char *known = nrc >= 0 ? diag_nrc_name(nrc) : NULL;
	json_t *name = known ? json_string(known) : f->nrc_name ? json_copy(f->nrc_name) : NULL;
	if (f->has_resp)
		pq_hex_encode_upper(f->resp, f->resp_len, up);
	if (!p || json_object_set_new(p, "message_id", json_string(m->message_id)) ||
	    (f->has_resp && json_object_set_new(p, "response", json_string(up))) ||
	    (nrc >= 0 && json_object_set_new(p, "nrc", json_integer(nrc))) ||
	    (name && nrc >= 0 && json_object_set_new(p, "nrc_name", json_incref(name))) ||
	    (f->error && f->st >= STORE_DIAG_ST_TIMEOUT &&
	     json_object_set_new(p, "error", json_copy(f->error))) ||
	    (f->elapsed && json_object_set_new(p, "elapsed_ms", json_copy(f->elapsed)))) {
		json_decref(p);
		p = NULL;
	}
	json_decref(name);
	return p;
}

int diag_response_parse(const msg_in *m, diag_response *out)
{
	resp_fields f;
	memset(out, 0, sizeof(*out));
	memset(&f, 0, sizeof(f));
	out->nrc = -1;
	out->elapsed_ms = -1;
	if (!m || !m->root)
		return pq_err_set(PQ_ERR_INVAL, "diag_response: no message");
	if (strcmp(m->msg_type, "diag_response") != 0)
		return pq_err_set(PQ_ERR_INVAL, "diag_response: msg_type '%s'", m->msg_type);
	int rc = read_fields(m->root, &f);
	if (rc == PQ_OK)
		rc = check_answer(&f);
	if (rc != PQ_OK)
		return rc;
	snprintf(out->request_id, sizeof(out->request_id), "%s", f.rid);
	snprintf(out->ecu_id, sizeof(out->ecu_id), "%s", f.ecu);
	out->status = f.st;
	if (f.st == STORE_DIAG_ST_NEGATIVE)
		out->nrc = (int)json_integer_value(f.nrc);
	out->elapsed_ms = f.elapsed ? json_integer_value(f.elapsed) : -1;
	out->payload = result_payload(m, &f, out->nrc);
	if (!out->payload) {
		diag_response_clear(out);
		return pq_err_set(PQ_ERR_NOMEM, "diag_response");
	}
	return PQ_OK;
}

/* ---- control plane ---------------------------------------------------------------------- */

typedef struct {
	store *db;
	int64_t now;
	diag_publish_fn pub;
	void *user;
	int64_t sent;
	int rc; /* the first publish failure */
} send_ctx;

/* The UDS request (hex) stored in d's parameters; *params owns it. */
static int stored_request(const store_diag *d, json_t **params, const char **request)
{
	int rc = srv_json_text(d->params, "diagnostics parameters", params);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "request %s", d->id);
	*request = json_string_value(json_object_get(*params, "request"));
	if (!*request || !diag_hex_valid(*request, DIAG_REQUEST_BYTES_MAX))
		return pq_err_set(PQ_ERR_FORMAT, "request %s: no UDS request in its parameters",
		                  d->id);
	return PQ_OK;
}

/* The diag_request message for d with the time left (bounded) as the vehicle's timeout. */
static int build_request(const store_diag *d, int64_t left, char topic[128], char **text)
{
	json_t *params = NULL, *msg = NULL;
	const char *request = NULL;
	int64_t tmo = left - DIAG_VEHICLE_MARG;
	if (tmo > DIAG_VEHICLE_MAX)
		tmo = DIAG_VEHICLE_MAX;
	int rc = stored_request(d, &params, &request);
	if (rc != PQ_OK)
		goto out;
	rc = msg_topic(topic, 128, d->vin, "diag/request");
	if (rc != PQ_OK)
		goto out;
	msg = msg_new("diag_request", d->vin, NULL);
	if (!msg) {
		rc = pq_err_set(PQ_ERR_INVAL, "request %s: no diag_request for VIN %s", d->id,
		                d->vin);
		goto out;
	}
	if (json_object_set_new(msg, "request_id", json_string(d->id)) ||
	    json_object_set_new(msg, "ecu_id", json_string(d->ecu_id)) ||
	    json_object_set_new(msg, "request", json_string(request)) ||
	    json_object_set_new(msg, "timeout_ms", json_integer(tmo)) ||
	    !(*text = json_dumps(msg, JSON_COMPACT)))
		rc = pq_err_set(PQ_ERR_NOMEM, "diag_request");
out:
	json_decref(msg);
	json_decref(params);
	return rc;
}

static int send_one(const store_diag *d, void *user)
{
	send_ctx *x = user;
	int64_t left = d->expires_ms - x->now;
	bool changed = false;
	char topic[128], *text = NULL;
	if (x->rc != PQ_OK || left < DIAG_MIN_LEFT_MS)
		return PQ_OK;
	int rc =
	    store_diag_mark(x->db, d->id, STORE_DIAG_PENDING, STORE_DIAG_SENT, x->now, &changed);
	if (rc != PQ_OK || !changed)
		return rc; /* another instance took it */
	rc = build_request(d, left, topic, &text);
	if (rc == PQ_ERR_NOMEM) {
		x->rc = rc; /* back to pending, for the next round */
		return store_diag_mark(x->db, d->id, STORE_DIAG_SENT, STORE_DIAG_PENDING, x->now,
		                       NULL);
	}
	if (rc != PQ_OK) {
		/* cannot be built (a VIN not usable in a topic, bad parameters): fail it for good
		 */
		pq_log(PQ_LOG_WARN, LOGC, "%s", pq_err_detail());
		return store_diag_fail(x->db, d->id, "the request could not be built", x->now,
		                       NULL);
	}
	rc = x->pub(x->user, topic, text, strlen(text), 1, false);
	free(text);
	if (rc != PQ_OK) {
		x->rc = rc;
		return store_diag_mark(x->db, d->id, STORE_DIAG_SENT, STORE_DIAG_PENDING, x->now,
		                       NULL);
	}
	x->sent++;
	return PQ_OK;
}

int diag_send_due(store *db, const char *vin, int64_t now_ms, diag_publish_fn pub, void *user,
                  int64_t *sent)
{
	send_ctx x = {.db = db, .now = now_ms, .pub = pub, .user = user, .rc = PQ_OK};
	int rc = store_diag_due(db, vin, now_ms, DIAG_SEND_BATCH, send_one, &x);
	if (sent)
		*sent = x.sent;
	if (rc == PQ_OK)
		rc = x.rc;
	return rc;
}

/* A vehicle's "suppressed" is believed only when the request asked for it
 * (uds_suppress_requested, the rule the VMG applies: a service with a sub-function, 0x10,
 * 0x11, 0x27, ..., and bit 7 of its second byte set). Otherwise an answer was due and none
 * is reported: the result is stored as an error that says so. */
static int check_suppressed(const char *req, diag_response *r)
{
	uint8_t head[2] = {0, 0};
	char msg[192];
	if (r->status != STORE_DIAG_ST_SUPPRESSED)
		return PQ_OK;
	bool ok = strlen(req) >= 4 && hex_head(req, 2, head) == PQ_OK;
	if (ok && uds_suppress_requested(head, 2))
		return PQ_OK;
	if (ok && uds_sid_has_sprmib(head[0]))
		snprintf(msg, sizeof(msg),
		         "the vehicle reported the positive response suppressed, but request "
		         "%.8s does not ask for that (bit 7 of its sub-function is clear)",
		         req);
	else
		snprintf(msg, sizeof(msg),
		         "the vehicle reported the positive response suppressed, but request "
		         "%.8s cannot suppress it (service %02X has no sub-function with a "
		         "suppressPosRspMsgIndicationBit)",
		         req, head[0]);
	pq_log(PQ_LOG_WARN, LOGC, "diag_response %s: %s", r->request_id, msg);
	r->status = STORE_DIAG_ST_ERROR;
	if (json_object_set_new(r->payload, "error", json_string(msg)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diag_response");
	return PQ_OK;
}

/* An answer must be to the request's service: a positive response's first byte is the
 * request's service id + 0x40, a negative one's second byte the service id. A claimed
 * suppression is checked (check_suppressed), which may turn r into an error. */
static int check_service(const store_diag *d, diag_response *r)
{
	json_t *params = NULL;
	const char *req = NULL;
	const char *resp = json_string_value(json_object_get(r->payload, "response"));
	uint8_t sid, head[2];
	int rc = stored_request(d, &params, &req);
	if (rc == PQ_OK)
		rc = check_suppressed(req, r);
	if (rc == PQ_OK && resp)
		rc = hex_head(req, 1, &sid);
	if (rc == PQ_OK && resp)
		rc = hex_head(resp, r->status == STORE_DIAG_ST_NEGATIVE ? 2 : 1, head);
	if (rc != PQ_OK || !resp)
		goto out;
	if (r->status == STORE_DIAG_ST_POSITIVE && head[0] != ((sid + 0x40) & 0xff))
		rc = pq_err_set(PQ_ERR_INVAL, "diag_response: positive answer %.2s to service %02X",
		                resp, sid);
	if (r->status == STORE_DIAG_ST_NEGATIVE && head[1] != sid)
		rc = pq_err_set(PQ_ERR_INVAL,
		                "diag_response: negative answer for service %.2s to service %02X",
		                resp + 2, sid);
out:
	json_decref(params);
	return rc;
}

int diag_on_response(store *db, const msg_in *m, int64_t now_ms, store_diag_status *status,
                     bool *stored)
{
	diag_response r;
	store_diag d = {0};
	char *payload = NULL;
	*stored = false;
	int rc = diag_response_parse(m, &r);
	if (rc != PQ_OK)
		return rc;
	if (status)
		*status = r.status;
	rc = store_diag_get(db, r.request_id, &d);
	if (rc != PQ_OK)
		goto out;
	if (strcmp(d.vin, m->vin) != 0) {
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no diagnostics request %s for %s", r.request_id,
		                m->vin);
		goto out;
	}
	if (strcmp(d.ecu_id, r.ecu_id) != 0) {
		rc = pq_err_set(PQ_ERR_INVAL, "diag_response for %s names ECU %s, the request %s",
		                r.request_id, r.ecu_id, d.ecu_id);
		goto out;
	}
	rc = check_service(&d, &r);
	if (rc != PQ_OK)
		goto out;
	if (status)
		*status = r.status; /* a suppression not believed is an error */
	payload = json_dumps(r.payload, JSON_COMPACT);
	rc = payload
	         ? store_diag_result(db, r.request_id, m->vin, r.status, payload, now_ms, stored)
	         : pq_err_set(PQ_ERR_NOMEM, "diag_response");
out:
	free(payload);
	store_diag_clear(&d);
	diag_response_clear(&r);
	return rc;
}

int diag_on_response_ev(srv *s, store *db, const msg_in *m, int64_t now_ms,
                        store_diag_status *status, bool *stored)
{
	store_diag_status st = STORE_DIAG_ST_ERROR;
	int rc = diag_on_response(db, m, now_ms, &st, stored);
	if (status)
		*status = st;
	if (rc != PQ_OK || !*stored || !s)
		return rc;
	store_diag d = {0};
	const char *rid = json_string_value(json_object_get(m->root, "request_id"));
	if (rid && store_diag_get(db, rid, &d) == PQ_OK)
		srv_event(s, "diag",
		          json_pack("{s:s,s:s,s:s,s:s,s:I}", "id",
		                    d.batch_id[0] ? d.batch_id : d.id, "vin", d.vin, "ecu_id",
		                    d.ecu_id, "state", store_diag_status_name(st), "at_ms",
		                    (json_int_t)now_ms));
	store_diag_clear(&d);
	return rc;
}

typedef struct {
	srv *s;
	int64_t now_ms;
} expire_ev_ctx;

static void expired_event(const store_diag_key *k, void *user)
{
	expire_ev_ctx *x = user;
	srv_event(x->s, "diag",
	          json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", k->batch_id[0] ? k->batch_id : k->id,
	                    "vin", k->vin, "ecu_id", k->ecu_id, "state", "timeout", "at_ms",
	                    (json_int_t)x->now_ms));
}

int diag_expire_ev(srv *s, store *db, int64_t now_ms, int limit, int64_t *expired)
{
	expire_ev_ctx x = {.s = s, .now_ms = now_ms};
	return store_diag_expire_each(db, now_ms, limit, s ? expired_event : NULL, &x, expired);
}
