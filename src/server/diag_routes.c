/* diag_routes.c: remote diagnostics (server/diag.h): the REST routes that create a batch of
 * UDS requests and show its results, the check of a vehicle's diag_response, and the
 * control plane's part (publishing due requests, storing the answers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "core/log.h"
#include "pkg/swpg.h"
#include "server/diag.h"
#include "server/routes.h"
#include "store/campaign.h"

#define GET  EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define LOGC "diag"

#define DIAG_SEND_BATCH   100      /* due requests published per round */
#define DIAG_ELAPSED_MAX  86400000 /* elapsed_ms bound */
#define DIAG_MIN_LEFT_MS  1000     /* a request with less time left is not sent */
#define DIAG_VEHICLE_MAX  60000    /* timeout_ms given to the vehicle, at most */
#define DIAG_VEHICLE_MARG 500      /* the vehicle's timeout ends this long before expiry */

/* ---- checks ----------------------------------------------------------------------------- */

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

bool diag_hex_valid(const char *s, size_t max_bytes)
{
	if (!s)
		return false;
	size_t n = strnlen(s, 2 * max_bytes + 1);
	if (n == 0 || n % 2 || n > 2 * max_bytes)
		return false;
	for (size_t i = 0; i < n; i++)
		if (hexval(s[i]) < 0)
			return false;
	return true;
}

/* Byte i of a valid hex string. */
static int hex_byte(const char *s, size_t i)
{
	return hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]);
}

static void hex_upper(const char *in, char *out)
{
	size_t i = 0;
	for (; in[i]; i++)
		out[i] = (in[i] >= 'a' && in[i] <= 'f') ? (char)(in[i] - 'a' + 'A') : in[i];
	out[i] = '\0';
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

static bool id_chars_ok(const char *s, size_t max, bool uuid)
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

int diag_response_parse(const msg_in *m, diag_response *out)
{
	memset(out, 0, sizeof(*out));
	out->nrc = -1;
	out->elapsed_ms = -1;
	if (!m || !m->root)
		return pq_err_set(PQ_ERR_INVAL, "diag_response: no message");
	if (strcmp(m->msg_type, "diag_response") != 0)
		return pq_err_set(PQ_ERR_INVAL, "diag_response: msg_type '%s'", m->msg_type);
	const json_t *o = m->root;
	const char *rid = json_string_value(json_object_get(o, "request_id")),
	           *ecu = json_string_value(json_object_get(o, "ecu_id")),
	           *status = json_string_value(json_object_get(o, "status"));
	json_t *resp = opt(o, "response"), *nrc = opt(o, "nrc"), *nrc_name = opt(o, "nrc_name"),
	       *error = opt(o, "error"), *elapsed = opt(o, "elapsed_ms");
	if (!rid || !ecu || !status)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "diag_response: request_id, ecu_id and status must be strings");
	if (!id_chars_ok(rid, STORE_ID_MAX, true))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: bad request_id");
	if (!id_chars_ok(ecu, STORE_NAME_MAX, false))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: bad ecu_id");
	store_diag_status st;
	if (store_diag_status_parse(status, &st) != PQ_OK || st < STORE_DIAG_ST_POSITIVE)
		return pq_err_set(PQ_ERR_FORMAT,
		                  "diag_response: status '%.16s' is not positive, "
		                  "negative, timeout or error",
		                  status);
	if ((resp && !json_is_string(resp)) || (nrc && !json_is_integer(nrc)) ||
	    (nrc_name && !json_is_string(nrc_name)) || (error && !json_is_string(error)) ||
	    (elapsed && !json_is_integer(elapsed)))
		return pq_err_set(PQ_ERR_FORMAT, "diag_response: a field has the wrong type");
	const char *rhex = resp ? json_string_value(resp) : NULL;
	if (rhex && !diag_hex_valid(rhex, DIAG_REQUEST_BYTES_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: response is not hex of 1..%d bytes",
		                  DIAG_REQUEST_BYTES_MAX);
	if (nrc_name && !text_ok(json_string_value(nrc_name), DIAG_NRC_NAME_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: bad nrc_name");
	if (error && !text_ok(json_string_value(error), STORE_DIAG_ERROR_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: bad error text");
	if (elapsed &&
	    (json_integer_value(elapsed) < 0 || json_integer_value(elapsed) > DIAG_ELAPSED_MAX))
		return pq_err_set(PQ_ERR_RANGE, "diag_response: elapsed_ms out of range");
	switch (st) {
	case STORE_DIAG_ST_POSITIVE:
		if (!rhex || hex_byte(rhex, 0) == 0x7f || nrc)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: a positive answer needs a "
			                  "response not starting with 7F and no nrc");
		break;
	case STORE_DIAG_ST_NEGATIVE:
		if (!rhex || strlen(rhex) != 6 || hex_byte(rhex, 0) != 0x7f || !nrc ||
		    json_integer_value(nrc) != hex_byte(rhex, 2))
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: a negative answer needs "
			                  "response 7F <sid> <nrc> and the same nrc");
		out->nrc = (int)json_integer_value(nrc);
		break;
	default:
		if (rhex || nrc)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "diag_response: %s carries no response or nrc", status);
	}
	snprintf(out->request_id, sizeof(out->request_id), "%s", rid);
	snprintf(out->ecu_id, sizeof(out->ecu_id), "%s", ecu);
	out->status = st;
	out->elapsed_ms = elapsed ? json_integer_value(elapsed) : -1;
	out->payload = json_object();
	char up[2 * DIAG_REQUEST_BYTES_MAX + 1];
	if (rhex)
		hex_upper(rhex, up);
	if (!out->payload ||
	    json_object_set_new(out->payload, "message_id", json_string(m->message_id)) ||
	    (rhex && json_object_set_new(out->payload, "response", json_string(up))) ||
	    (out->nrc >= 0 && json_object_set_new(out->payload, "nrc", json_integer(out->nrc))) ||
	    (nrc_name && out->nrc >= 0 &&
	     json_object_set_new(out->payload, "nrc_name", json_copy(nrc_name))) ||
	    (error && st >= STORE_DIAG_ST_TIMEOUT &&
	     json_object_set_new(out->payload, "error", json_copy(error))) ||
	    (elapsed && json_object_set_new(out->payload, "elapsed_ms", json_copy(elapsed)))) {
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

static int send_one(const store_diag *d, void *user)
{
	send_ctx *x = user;
	int64_t left = d->expires_ms - x->now;
	bool changed = false;
	if (x->rc != PQ_OK || left < DIAG_MIN_LEFT_MS)
		return PQ_OK;
	json_t *params = d->params ? json_loads(d->params, 0, NULL) : NULL;
	const char *request = json_string_value(json_object_get(params, "request"));
	char topic[128];
	int rc =
	    store_diag_mark(x->db, d->id, STORE_DIAG_PENDING, STORE_DIAG_SENT, x->now, &changed);
	if (rc != PQ_OK || !changed) {
		json_decref(params);
		return rc; /* another instance took it */
	}
	int64_t tmo = left - DIAG_VEHICLE_MARG;
	if (tmo > DIAG_VEHICLE_MAX)
		tmo = DIAG_VEHICLE_MAX;
	json_t *msg = msg_new("diag_request", d->vin, NULL);
	char *text = NULL;
	if (!msg || !request || msg_topic(topic, sizeof(topic), d->vin, "diag/request") != PQ_OK ||
	    json_object_set_new(msg, "request_id", json_string(d->id)) ||
	    json_object_set_new(msg, "ecu_id", json_string(d->ecu_id)) ||
	    json_object_set_new(msg, "request", json_string(request)) ||
	    json_object_set_new(msg, "timeout_ms", json_integer(tmo)) ||
	    !(text = json_dumps(msg, JSON_COMPACT))) {
		/* cannot be built (a VIN not usable in a topic, bad params): fail it for good */
		rc = store_diag_fail(x->db, d->id, "the request could not be built", x->now, NULL);
		goto out;
	}
	rc = x->pub(x->user, topic, text, strlen(text), 1, false);
	if (rc != PQ_OK) {
		x->rc = rc;
		rc = store_diag_mark(x->db, d->id, STORE_DIAG_SENT, STORE_DIAG_PENDING, x->now,
		                     NULL);
		goto out;
	}
	x->sent++;
out:
	free(text);
	json_decref(msg);
	json_decref(params);
	return rc;
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

/* An answer must be to the request's service: a positive response's first byte is the
 * request's service id + 0x40, a negative one's second byte the service id. */
static int check_service(const store_diag *d, const diag_response *r)
{
	json_t *params = d->params ? json_loads(d->params, 0, NULL) : NULL;
	const char *req = json_string_value(json_object_get(params, "request"));
	const char *resp = json_string_value(json_object_get(r->payload, "response"));
	int rc = PQ_OK;
	if (req && resp && diag_hex_valid(req, DIAG_REQUEST_BYTES_MAX)) {
		int sid = hex_byte(req, 0);
		if (r->status == STORE_DIAG_ST_POSITIVE &&
		    hex_byte(resp, 0) != ((sid + 0x40) & 0xff))
			rc = pq_err_set(PQ_ERR_INVAL,
			                "diag_response: positive answer %.2s to service %02X", resp,
			                sid);
		if (r->status == STORE_DIAG_ST_NEGATIVE && hex_byte(resp, 1) != sid)
			rc =
			    pq_err_set(PQ_ERR_INVAL,
			               "diag_response: negative answer for service %.2s to service "
			               "%02X",
			               resp + 2, sid);
	}
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
	if (rc == PQ_OK && strcmp(d.vin, m->vin) != 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no diagnostics request %s for %s", r.request_id,
		                m->vin);
	if (rc == PQ_OK && strcmp(d.ecu_id, r.ecu_id) != 0)
		rc = pq_err_set(PQ_ERR_INVAL, "diag_response for %s names ECU %s, the request %s",
		                r.request_id, r.ecu_id, d.ecu_id);
	if (rc == PQ_OK)
		rc = check_service(&d, &r);
	if (rc == PQ_OK && !(payload = json_dumps(r.payload, JSON_COMPACT)))
		rc = pq_err_set(PQ_ERR_NOMEM, "diag_response");
	if (rc == PQ_OK)
		rc = store_diag_result(db, r.request_id, m->vin, r.status, payload, now_ms, stored);
	free(payload);
	store_diag_clear(&d);
	diag_response_clear(&r);
	return rc;
}

/* ---- JSON views ------------------------------------------------------------------------- */

static json_t *jstr_or_null(json_t *v)
{
	return v ? json_copy(v) : json_null();
}

static json_t *result_json(const store_diag *d)
{
	json_t *p = d->payload ? json_loads(d->payload, 0, NULL) : NULL;
	json_t *j = json_pack("{ssssssso*so*so*so*sIsIso*}", "vin", d->vin, "ecu_id", d->ecu_id,
	                      "status", store_diag_status_name(d->status), "response",
	                      jstr_or_null(json_object_get(p, "response")), "nrc",
	                      jstr_or_null(json_object_get(p, "nrc")), "nrc_name",
	                      jstr_or_null(json_object_get(p, "nrc_name")), "error",
	                      jstr_or_null(json_object_get(p, "error")), "sent_ms",
	                      (json_int_t)d->sent_ms, "received_ms", (json_int_t)d->received_ms,
	                      "elapsed_ms", jstr_or_null(json_object_get(p, "elapsed_ms")));
	json_decref(p);
	return j;
}

static json_t *batch_json(const store_diag_batch *b)
{
	json_t *params = b->params ? json_loads(b->params, 0, NULL) : NULL;
	json_int_t tm = json_integer_value(json_object_get(params, "timeout_ms"));
	const char *req = json_string_value(json_object_get(params, "request"));
	json_t *counts = json_object();
	int64_t open = b->counts[STORE_DIAG_ST_PENDING] + b->counts[STORE_DIAG_ST_SENT];
	for (int i = 0; counts && i < STORE_DIAG_STATUS_COUNT; i++)
		json_object_set_new(counts, store_diag_status_name((store_diag_status)i),
		                    json_integer(b->counts[i]));
	json_t *j = json_pack(
	    "{sssssssssssIsssIsIsIso*}", "id", b->id, "state", open ? "running" : "done", "ecu_id",
	    b->ecu_id, "kind", b->kind, "request", req ? req : "", "timeout_s", tm / 1000,
	    "requested_by", b->requested_by, "created_ms", (json_int_t)b->created_ms, "expires_ms",
	    (json_int_t)b->expires_ms, "targets", (json_int_t)b->targets, "counts", counts);
	json_decref(params);
	return j;
}

static json_t *agg_json(const store_diag_agg *a)
{
	json_t *nrc = json_array(), *top = json_array();
	for (int i = 0; nrc && i < a->nnrc; i++) {
		char hex[8];
		snprintf(hex, sizeof(hex), "0x%02X", a->nrc[i].nrc);
		json_array_append_new(nrc, json_pack("{sisssssI}", "nrc", a->nrc[i].nrc, "nrc_hex",
		                                     hex, "nrc_name", a->nrc[i].name, "count",
		                                     (json_int_t)a->nrc[i].count));
	}
	for (int i = 0; top && i < a->ntop; i++)
		json_array_append_new(top, json_pack("{sssI}", "response", a->top[i].response,
		                                     "count", (json_int_t)a->top[i].count));
	return json_pack("{sososI}", "nrc", nrc, "responses", top, "distinct_responses",
	                 (json_int_t)a->distinct_responses);
}

static int add_result(const store_diag *d, void *user)
{
	json_t *r = result_json(d);
	if (!r || json_array_append_new(user, r) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics results");
	return PQ_OK;
}

/* ---- routes ----------------------------------------------------------------------------- */

static bool id_ok(srv_ctx *c, const char *id)
{
	if (!id_chars_ok(id, STORE_ID_MAX, true)) {
		srv_error(c, 404, "not_found", "no diagnostics request '%.64s'", id);
		return false;
	}
	return true;
}

static void send_batch(srv_ctx *c, int status, const char *id, const store_page *pg)
{
	store_diag_batch b;
	store_diag_agg a;
	int64_t total = 0;
	json_t *items = json_array();
	int rc = store_diag_batch_get(c->db, id, &b);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "diagnostics request");
		return;
	}
	rc = store_diag_aggregate(c->db, id, &a);
	if (rc == PQ_OK) {
		rc = items ? store_diag_list_batch(c->db, id, pg, add_result, items, &total)
		           : pq_err_set(PQ_ERR_NOMEM, "diagnostics");
		json_t *j = rc == PQ_OK ? batch_json(&b) : NULL;
		if (j) {
			json_object_set_new(j, "aggregate", agg_json(&a));
			json_object_set_new(j, "results",
			                    json_pack("{sOsIsisI}", "items", items, "total",
			                              (json_int_t)total, "limit",
			                              pg->limit ? pg->limit : STORE_PAGE_DEFAULT,
			                              "offset", (json_int_t)pg->offset));
			srv_json(c, status, j);
		} else if (rc == PQ_OK) {
			rc = pq_err_set(PQ_ERR_NOMEM, "diagnostics");
		}
		store_diag_agg_clear(&a);
	}
	json_decref(items);
	store_diag_batch_clear(&b);
	if (rc != PQ_OK)
		srv_fail(c, rc, "diagnostics request");
}

/* The vehicles a request targets: a set of VINs in order of discovery. */
typedef struct {
	json_t *seen; /* VIN -> true */
	char (*vins)[STORE_VIN_MAX + 1];
	size_t n;
	bool over; /* more than STORE_DIAG_TARGETS_MAX */
} targets;

static int add_vin(targets *t, const char *vin)
{
	if (json_object_get(t->seen, vin))
		return PQ_OK;
	if (t->n >= STORE_DIAG_TARGETS_MAX) {
		t->over = true;
		return PQ_ERR_RANGE; /* stops the listing */
	}
	if (json_object_set_new(t->seen, vin, json_true()) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics targets");
	snprintf(t->vins[t->n++], STORE_VIN_MAX + 1, "%s", vin);
	return PQ_OK;
}

static int vehicle_cb(const store_vehicle *v, void *user)
{
	return add_vin(user, v->vin);
}

static int ecu_cb(const store_ecu_match *m, void *user)
{
	return add_vin(user, m->vin);
}

/* Fills t from the body's vin or filter; false when an error was sent. */
static bool resolve_targets(srv_ctx *c, json_t *b, targets *t)
{
	json_t *vin = json_object_get(b, "vin"), *f = json_object_get(b, "filter");
	int rc = PQ_OK;
	if (!!vin == !!f) {
		srv_error(c, 400, "bad_request", "give exactly one of vin and filter");
		return false;
	}
	if (vin) {
		store_vehicle v = {0};
		if (!json_is_string(vin) || json_string_length(vin) > STORE_VIN_MAX) {
			srv_error(c, 400, "bad_request", "vin must be a string of 1..%d characters",
			          STORE_VIN_MAX);
			return false;
		}
		rc = store_vehicle_get(c->db, json_string_value(vin), &v);
		store_vehicle_clear(&v);
		if (rc == PQ_OK)
			rc = add_vin(t, json_string_value(vin));
		if (rc != PQ_OK) {
			srv_fail(c, rc, "vehicle");
			return false;
		}
		return true;
	}
	if (!json_is_object(f) || json_object_size(f) != 1) {
		srv_error(c, 400, "bad_request",
		          "filter must be an object with one of vins, hardware_id, model, all");
		return false;
	}
	json_t *vins = json_object_get(f, "vins"), *hw = json_object_get(f, "hardware_id"),
	       *model = json_object_get(f, "model"), *all = json_object_get(f, "all");
	if (vins) {
		size_t i;
		json_t *e;
		if (!json_is_array(vins) || json_array_size(vins) == 0 ||
		    json_array_size(vins) > STORE_DIAG_TARGETS_MAX) {
			srv_error(c, 400, "bad_request",
			          "filter.vins must be an array of 1..%d VINs",
			          STORE_DIAG_TARGETS_MAX);
			return false;
		}
		json_array_foreach(vins, i, e)
		{
			store_vehicle v = {0};
			if (!json_is_string(e) || json_string_length(e) == 0 ||
			    json_string_length(e) > STORE_VIN_MAX) {
				srv_error(c, 400, "bad_request", "filter.vins[%zu] is not a VIN",
				          i);
				return false;
			}
			rc = store_vehicle_get(c->db, json_string_value(e), &v);
			store_vehicle_clear(&v);
			if (rc == PQ_OK)
				rc = add_vin(t, json_string_value(e));
			if (rc != PQ_OK) {
				srv_fail(c, rc, "vehicle");
				return false;
			}
		}
		return true;
	}
	if (hw) {
		if (!json_is_string(hw) || json_string_length(hw) == 0 ||
		    json_string_length(hw) > STORE_NAME_MAX) {
			srv_error(c, 400, "bad_request", "filter.hardware_id must be a string");
			return false;
		}
		rc = store_ecu_by_hardware(c->db, json_string_value(hw), NULL, ecu_cb, t);
	} else if (model || all) {
		store_vehicle_filter vf = {.online = -1};
		if (model && (!json_is_string(model) || json_string_length(model) == 0 ||
		              json_string_length(model) > STORE_NAME_MAX)) {
			srv_error(c, 400, "bad_request", "filter.model must be a string");
			return false;
		}
		if (all && !json_is_true(all)) {
			srv_error(c, 400, "bad_request", "filter.all must be true");
			return false;
		}
		vf.model = model ? json_string_value(model) : NULL;
		int64_t total = 0;
		for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
			store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
			rc = store_vehicle_list(c->db, &vf, &pg, vehicle_cb, t, &total);
			if (off + STORE_PAGE_MAX >= total)
				break;
		}
	} else {
		srv_error(c, 400, "bad_request",
		          "filter must be an object with one of vins, hardware_id, model, all");
		return false;
	}
	if (t->over) {
		srv_error(c, 400, "too_many_targets",
		          "the filter matches more than %d vehicles; narrow it",
		          STORE_DIAG_TARGETS_MAX);
		return false;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "targets");
		return false;
	}
	if (t->n == 0) {
		srv_error(c, 400, "no_targets", "the filter matches no vehicle");
		return false;
	}
	return true;
}

static void h_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	targets t = {0};
	store_diag *rows = NULL;
	json_t *params = NULL;
	char *ptext = NULL;
	char batch[37], ecu_name[16];
	char req[2 * DIAG_REQUEST_BYTES_MAX + 1];
	uint16_t ecu_num = 0;
	int rc;
	if (!b)
		return;
	const char *ecu = json_string_value(json_object_get(b, "ecu_id")),
	           *request = json_string_value(json_object_get(b, "request"));
	json_t *tmo = json_object_get(b, "timeout_s");
	json_int_t timeout_s = DIAG_TIMEOUT_S_DEFAULT;
	if (!ecu || !request) {
		srv_error(c, 400, "bad_request", "ecu_id and request (strings) are required");
		goto out;
	}
	if (strlen(ecu) > STORE_NAME_MAX || swpg_ecu_parse(ecu, &ecu_num) != PQ_OK) {
		srv_error(c, 400, "bad_request",
		          "ecu_id '%.64s' is not an ECU id (ECU_011, ZGW1..ZGW9, VMG)", ecu);
		goto out;
	}
	swpg_ecu_name(ecu_num, ecu_name, sizeof(ecu_name));
	if (strncmp(ecu_name, "ECU_", 4) != 0 && strncmp(ecu_name, "ZGW", 3) != 0 &&
	    strcmp(ecu_name, "VMG") != 0) {
		srv_error(c, 400, "bad_request", "ecu_id '%.64s' names no single ECU", ecu);
		goto out;
	}
	if (!diag_hex_valid(request, DIAG_REQUEST_BYTES_MAX)) {
		srv_error(c, 400, "bad_request",
		          "request must be hex of 1..%d bytes (an even number of digits)",
		          DIAG_REQUEST_BYTES_MAX);
		goto out;
	}
	hex_upper(request, req);
	if (tmo) {
		if (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
		    json_integer_value(tmo) > DIAG_TIMEOUT_S_MAX) {
			srv_error(c, 400, "bad_request", "timeout_s must be an integer 1..%d",
			          DIAG_TIMEOUT_S_MAX);
			goto out;
		}
		timeout_s = json_integer_value(tmo);
	}
	t.seen = json_object();
	t.vins = calloc(STORE_DIAG_TARGETS_MAX, sizeof(*t.vins));
	if (!t.seen || !t.vins) {
		srv_fail(c, pq_err_set(PQ_ERR_NOMEM, "targets"), "diagnostics");
		goto out;
	}
	if (!resolve_targets(c, b, &t))
		goto out;
	params = json_pack("{sssI}", "request", req, "timeout_ms", (json_int_t)timeout_s * 1000);
	ptext = params ? json_dumps(params, JSON_COMPACT) : NULL;
	rows = calloc(t.n, sizeof(*rows));
	if (!ptext || !rows) {
		srv_fail(c, pq_err_set(PQ_ERR_NOMEM, "diagnostics"), "diagnostics");
		goto out;
	}
	msg_uuid4(batch);
	for (size_t i = 0; i < t.n; i++) {
		store_diag *d = &rows[i];
		msg_uuid4(d->id);
		snprintf(d->batch_id, sizeof(d->batch_id), "%s", batch);
		snprintf(d->vin, sizeof(d->vin), "%s", t.vins[i]);
		snprintf(d->ecu_id, sizeof(d->ecu_id), "%s", ecu_name);
		snprintf(d->kind, sizeof(d->kind), "uds");
		d->params = ptext; /* shared, not freed per row */
		snprintf(d->requested_by, sizeof(d->requested_by), "%s", c->actor);
		d->created_ms = c->now_ms;
		d->expires_ms = c->now_ms + (int64_t)timeout_s * 1000;
	}
	rc = store_diag_insert(c->db, rows, t.n);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "diagnostics request");
		goto out;
	}
	/* Without a broker nothing can reach a vehicle: say so per vehicle at once. */
	if (!srv_get_options(c->s)->mqtt_host) {
		for (size_t i = 0; rc == PQ_OK && i < t.n; i++)
			rc = store_diag_fail(c->db, rows[i].id,
			                     "MQTT is not configured on the server", c->now_ms,
			                     NULL);
		if (rc != PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "batch %s: %s", batch, pq_err_detail());
	} else {
		ctl_diag_kick(c->s);
	}
	srv_audit(c, "diag.request", batch,
	          json_pack("{sssssIsI}", "ecu_id", ecu_name, "request", req, "targets",
	                    (json_int_t)t.n, "timeout_s", timeout_s));
	char loc[96];
	snprintf(loc, sizeof(loc), "/api/v1/diagnostics/%s", batch);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	store_page pg = {.limit = STORE_PAGE_DEFAULT};
	send_batch(c, 202, batch, &pg);
out:
	free(rows);
	free(ptext);
	json_decref(params);
	free(t.vins);
	json_decref(t.seen);
	json_decref(b);
}

static void h_get(srv_ctx *c)
{
	store_page pg;
	if (id_ok(c, c->params[0]) && srv_page(c, &pg))
		send_batch(c, 200, c->params[0], &pg);
}

static int add_batch(const store_diag_batch *b, void *user)
{
	json_t *j = batch_json(b);
	if (!j || json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics list");
	return PQ_OK;
}

static void h_list(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	if (!srv_page(c, &pg))
		return;
	json_t *items = json_array();
	int rc = items ? store_diag_batch_list(c->db, &pg, add_batch, items, &total)
	               : pq_err_set(PQ_ERR_NOMEM, "diagnostics list");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing diagnostics requests");
		return;
	}
	srv_json(c, 200,
	         json_pack("{sosIsisI}", "items", items, "total", (json_int_t)total, "limit",
	                   pg.limit, "offset", (json_int_t)pg.offset));
}

const srv_route route_diag_table[] = {
    {POST, "/api/v1/diagnostics", SRV_AUTH_OPERATOR, h_create,
     "send a UDS request to one vehicle or a fleet"},
    {GET, "/api/v1/diagnostics", SRV_AUTH_VIEWER, h_list, "list diagnostics requests"},
    {GET, "/api/v1/diagnostics/{id}", SRV_AUTH_VIEWER, h_get,
     "a diagnostics request with its aggregate and per-vehicle results"},
    {0, NULL, 0, NULL, NULL},
};
