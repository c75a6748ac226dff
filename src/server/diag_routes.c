/* diag_routes.c: the REST routes of remote diagnostics (server/diag.h, docs/api.md
 * "Diagnostics"): create a batch of UDS requests for one vehicle or a fleet, show a batch
 * with its aggregate and per-vehicle results, list the batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "core/log.h"
#include "core/text.h"
#include "core/uuid.h"
#include "pkg/swpg.h"
#include "server/diag.h"
#include "server/routes.h"
#include "store/campaign.h"

#define GET  EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define LOGC "diag"

/* ---- JSON views ------------------------------------------------------------------------- */

static json_t *copy_or_null(json_t *v)
{
	return v ? json_copy(v) : json_null();
}

/* The text of a positive 62 DID answer (diag_did_text), else null. */
static json_t *did_text(const char *response)
{
	char text[DIAG_REQUEST_BYTES_MAX + 1];
	return diag_did_text(response, text, sizeof(text)) ? json_string(text) : json_null();
}

static int result_json(const store_diag *d, json_t **out)
{
	json_t *p = NULL;
	int rc = srv_json_text(d->payload, "diagnostics result", &p);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "request %s", d->id);
	const char *resp = d->status == STORE_DIAG_ST_POSITIVE
	                       ? json_string_value(json_object_get(p, "response"))
	                       : NULL;
	*out = json_pack("{sssosssssososososIsIso}", "vin", d->vin, "text", did_text(resp),
	                 "ecu_id", d->ecu_id, "status", store_diag_status_name(d->status),
	                 "response", copy_or_null(json_object_get(p, "response")), "nrc",
	                 copy_or_null(json_object_get(p, "nrc")), "nrc_name",
	                 copy_or_null(json_object_get(p, "nrc_name")), "error",
	                 copy_or_null(json_object_get(p, "error")), "sent_ms",
	                 (json_int_t)d->sent_ms, "received_ms", (json_int_t)d->received_ms,
	                 "elapsed_ms", copy_or_null(json_object_get(p, "elapsed_ms")));
	json_decref(p);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "diagnostics results");
}

static json_t *counts_json(const store_diag_batch *b)
{
	json_t *counts = json_object();
	for (int i = 0; counts && i < STORE_DIAG_STATUS_COUNT; i++) {
		if (json_object_set_new(counts, store_diag_status_name((store_diag_status)i),
		                        json_integer(b->counts[i])) != 0) {
			json_decref(counts);
			return NULL;
		}
	}
	return counts;
}

static int batch_json(const store_diag_batch *b, json_t **out)
{
	json_t *params = NULL;
	int rc = srv_json_text(b->params, "diagnostics parameters", &params);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "request %s", b->id);
	json_int_t tm = json_integer_value(json_object_get(params, "timeout_ms"));
	const char *req = json_string_value(json_object_get(params, "request"));
	int64_t open = b->counts[STORE_DIAG_ST_PENDING] + b->counts[STORE_DIAG_ST_SENT];
	*out = json_pack(
	    "{sssssssssssIsssIsIsIso}", "id", b->id, "state", open ? "running" : "done", "ecu_id",
	    b->ecu_id, "kind", b->kind, "request", req ? req : "", "timeout_s", tm / 1000,
	    "requested_by", b->requested_by, "created_ms", (json_int_t)b->created_ms, "expires_ms",
	    (json_int_t)b->expires_ms, "targets", (json_int_t)b->targets, "counts", counts_json(b));
	json_decref(params);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "diagnostics request");
}

static json_t *agg_json(const store_diag_agg *a)
{
	json_t *nrc = json_array(), *top = json_array();
	bool bad = !nrc || !top;
	for (int i = 0; !bad && i < a->nnrc; i++) {
		char hex[8];
		snprintf(hex, sizeof(hex), "0x%02X", a->nrc[i].nrc);
		bad = json_array_append_new(nrc,
		                            json_pack("{sisssssI}", "nrc", a->nrc[i].nrc, "nrc_hex",
		                                      hex, "nrc_name", a->nrc[i].name, "count",
		                                      (json_int_t)a->nrc[i].count)) != 0;
	}
	for (int i = 0; !bad && i < a->ntop; i++)
		bad = json_array_append_new(top,
		                            json_pack("{sssosI}", "response", a->top[i].response,
		                                      "text", did_text(a->top[i].response), "count",
		                                      (json_int_t)a->top[i].count)) != 0;
	if (bad) {
		json_decref(nrc);
		json_decref(top);
		return NULL;
	}
	return json_pack("{sososI}", "nrc", nrc, "responses", top, "distinct_responses",
	                 (json_int_t)a->distinct_responses);
}

static int add_result(const store_diag *d, void *user)
{
	json_t *r = NULL;
	int rc = result_json(d, &r);
	if (rc != PQ_OK)
		return rc;
	if (json_array_append_new(user, r) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics results");
	return PQ_OK;
}

/* ---- routes ----------------------------------------------------------------------------- */

/* The batch with its aggregate and one page of results. */
static int batch_view(srv_ctx *c, const char *id, const store_page *pg, json_t **out)
{
	store_diag_batch b;
	store_diag_agg a;
	json_t *j = NULL, *items = NULL;
	int64_t total = 0;
	int rc = store_diag_batch_get(c->db, id, &b);
	if (rc != PQ_OK)
		return rc;
	rc = store_diag_aggregate(c->db, id, &a);
	if (rc != PQ_OK)
		goto out_batch;
	items = json_array();
	rc = items ? store_diag_list_batch(c->db, id, pg, add_result, items, &total)
	           : pq_err_set(PQ_ERR_NOMEM, "diagnostics");
	if (rc == PQ_OK)
		rc = batch_json(&b, &j);
	if (rc != PQ_OK)
		goto out;
	if (json_object_set_new(j, "aggregate", agg_json(&a)) != 0 ||
	    json_object_set_new(j, "results", srv_page_json(json_incref(items), pg, total)) != 0) {
		rc = pq_err_set(PQ_ERR_NOMEM, "diagnostics");
		goto out;
	}
	*out = j;
	j = NULL;
out:
	json_decref(j);
	json_decref(items);
	store_diag_agg_clear(&a);
out_batch:
	store_diag_batch_clear(&b);
	return rc;
}

static void send_batch(srv_ctx *c, int status, const char *id, const store_page *pg)
{
	json_t *j = NULL;
	int rc = batch_view(c, id, pg, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "diagnostics request");
		return;
	}
	srv_json(c, status, j);
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
		return pq_err_set(PQ_ERR_RANGE, "more than %d targets", STORE_DIAG_TARGETS_MAX);
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

/* A registered vehicle named by the body; false when an error was sent. */
static bool target_named(srv_ctx *c, targets *t, const char *vin)
{
	store_vehicle v = {0};
	int rc = store_vehicle_get(c->db, vin, &v);
	store_vehicle_clear(&v);
	if (rc == PQ_OK)
		rc = add_vin(t, vin);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "vehicle");
		return false;
	}
	return true;
}

/* filter.vins: 1..STORE_DIAG_TARGETS_MAX registered vehicles. */
static bool targets_listed(srv_ctx *c, json_t *vins, targets *t)
{
	size_t i;
	json_t *e;
	if (!json_is_array(vins) || json_array_size(vins) == 0 ||
	    json_array_size(vins) > STORE_DIAG_TARGETS_MAX) {
		srv_error(c, 400, "bad_request", "filter.vins must be an array of 1..%d VINs",
		          STORE_DIAG_TARGETS_MAX);
		return false;
	}
	json_array_foreach(vins, i, e)
	{
		if (!json_is_string(e) || json_string_length(e) == 0 ||
		    json_string_length(e) > STORE_VIN_MAX) {
			srv_error(c, 400, "bad_request", "filter.vins[%zu] is not a VIN", i);
			return false;
		}
		if (!target_named(c, t, json_string_value(e)))
			return false;
	}
	return true;
}

static bool name_ok(json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0 &&
	       json_string_length(v) <= STORE_NAME_MAX;
}

/* filter.hardware_id, filter.model or filter.all (model and all with filter.online): the
 * matching vehicles, at least one and at most STORE_DIAG_TARGETS_MAX. */
static bool targets_matched(srv_ctx *c, json_t *f, targets *t)
{
	json_t *hw = json_object_get(f, "hardware_id"), *model = json_object_get(f, "model"),
	       *all = json_object_get(f, "all"), *online = json_object_get(f, "online");
	int rc = PQ_OK;
	if (online && !json_is_boolean(online)) {
		srv_error(c, 400, "bad_request", "filter.online must be true or false");
		return false;
	}
	if (hw && !name_ok(hw)) {
		srv_error(c, 400, "bad_request", "filter.hardware_id must be a string");
		return false;
	}
	if (model && !name_ok(model)) {
		srv_error(c, 400, "bad_request", "filter.model must be a string");
		return false;
	}
	if (all && !json_is_true(all)) {
		srv_error(c, 400, "bad_request", "filter.all must be true");
		return false;
	}
	if (hw) {
		rc = store_ecu_by_hardware(c->db, json_string_value(hw), NULL, ecu_cb, t);
	} else {
		store_vehicle_filter vf = {.online = online ? json_is_true(online) : -1,
		                           .model = json_string_value(model)};
		int64_t total = 0;
		for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
			store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
			rc = store_vehicle_list(c->db, &vf, &pg, vehicle_cb, t, &total);
			if (off + STORE_PAGE_MAX >= total)
				break;
		}
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

/* Fills t from the body's vin or filter; false when an error was sent. */
static bool resolve_targets(srv_ctx *c, json_t *b, targets *t)
{
	json_t *vin = json_object_get(b, "vin"), *f = json_object_get(b, "filter");
	if (!!vin == !!f) {
		srv_error(c, 400, "bad_request", "give exactly one of vin and filter");
		return false;
	}
	if (vin) {
		if (!json_is_string(vin) || json_string_length(vin) > STORE_VIN_MAX) {
			srv_error(c, 400, "bad_request", "vin must be a string of 1..%d characters",
			          STORE_VIN_MAX);
			return false;
		}
		return target_named(c, t, json_string_value(vin));
	}
	json_t *vins = json_object_get(f, "vins");
	/* one of the four, or model / all / nothing with online */
	bool online = json_object_get(f, "online") != NULL;
	size_t kinds = (vins != NULL) + (json_object_get(f, "hardware_id") != NULL) +
	               (json_object_get(f, "model") != NULL) + (json_object_get(f, "all") != NULL);
	if (!json_is_object(f) || json_object_size(f) != kinds + online || kinds > 1 ||
	    (kinds == 0 && !online) || (online && (vins || json_object_get(f, "hardware_id")))) {
		srv_error(c, 400, "bad_request",
		          "filter must be an object with one of vins, hardware_id, model, all "
		          "(model and all may add online)");
		return false;
	}
	return vins ? targets_listed(c, vins, t) : targets_matched(c, f, t);
}

/* What a POST /api/v1/diagnostics asks for. */
typedef struct {
	char ecu[16];                             /* the ECU's canonical name */
	char req[2 * DIAG_REQUEST_BYTES_MAX + 1]; /* the UDS request, uppercase hex */
	json_int_t timeout_s;
} diag_ask;

/* ecu_id, request and timeout_s of the body; false when an error was sent. */
static bool parse_ask(srv_ctx *c, json_t *b, diag_ask *a)
{
	const char *ecu = json_string_value(json_object_get(b, "ecu_id")),
	           *request = json_string_value(json_object_get(b, "request"));
	json_t *tmo = json_object_get(b, "timeout_s");
	uint16_t ecu_num = 0;
	uint8_t bytes[DIAG_REQUEST_BYTES_MAX];
	size_t n = 0;
	if (!ecu || !request) {
		srv_error(c, 400, "bad_request", "ecu_id and request (strings) are required");
		return false;
	}
	if (strlen(ecu) > STORE_NAME_MAX || swpg_ecu_parse(ecu, &ecu_num) != PQ_OK) {
		srv_error(c, 400, "bad_request",
		          "ecu_id '%.64s' is not an ECU id (ECU_011, ZGW1..ZGW9, VMG)", ecu);
		return false;
	}
	swpg_ecu_name(ecu_num, a->ecu, sizeof(a->ecu));
	if (strncmp(a->ecu, "ECU_", 4) != 0 && strncmp(a->ecu, "ZGW", 3) != 0 &&
	    strcmp(a->ecu, "VMG") != 0) {
		srv_error(c, 400, "bad_request", "ecu_id '%.64s' names no single ECU", ecu);
		return false;
	}
	if (!diag_hex_valid(request, DIAG_REQUEST_BYTES_MAX) ||
	    pq_hex_decode(request, bytes, sizeof(bytes), &n) != PQ_OK) {
		srv_error(c, 400, "bad_request",
		          "request must be hex of 1..%d bytes (an even number of digits)",
		          DIAG_REQUEST_BYTES_MAX);
		return false;
	}
	pq_hex_encode_upper(bytes, n, a->req);
	a->timeout_s = DIAG_TIMEOUT_S_DEFAULT;
	if (tmo && (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
	            json_integer_value(tmo) > DIAG_TIMEOUT_S_MAX)) {
		srv_error(c, 400, "bad_request", "timeout_s must be an integer 1..%d",
		          DIAG_TIMEOUT_S_MAX);
		return false;
	}
	if (tmo)
		a->timeout_s = json_integer_value(tmo);
	return true;
}

/* Without a broker nothing can reach a vehicle: say so per vehicle at once. */
static void fail_unreachable(srv_ctx *c, const char *batch, const store_diag *rows, size_t n)
{
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < n; i++)
		rc = store_diag_fail(c->db, rows[i].id, "MQTT is not configured on the server",
		                     c->now_ms, NULL);
	if (rc == PQ_OK) /* one event for the batch: every vehicle's answer is an error */
		srv_event(c->s, "diag",
		          json_pack("{s:s,s:s,s:s,s:s,s:I}", "id", batch, "vin",
		                    n ? rows[0].vin : "", "ecu_id", n ? rows[0].ecu_id : "",
		                    "state", "error", "at_ms", (json_int_t)c->now_ms));
	if (rc != PQ_OK)
		pq_log(PQ_LOG_WARN, LOGC, "batch %s: %s", batch, pq_err_detail());
}

/* Stores one request per target under a new batch id, then has them sent (or failed at
 * once without a broker). */
static int create_batch(srv_ctx *c, const diag_ask *a, const targets *t, char batch[PQ_UUID_LEN])
{
	json_t *params =
	    json_pack("{sssI}", "request", a->req, "timeout_ms", (json_int_t)a->timeout_s * 1000);
	char *ptext = params ? json_dumps(params, JSON_COMPACT) : NULL;
	store_diag *rows = calloc(t->n, sizeof(*rows));
	int rc = ptext && rows ? pq_uuid4(batch) : pq_err_set(PQ_ERR_NOMEM, "diagnostics");
	for (size_t i = 0; rc == PQ_OK && i < t->n; i++) {
		store_diag *d = &rows[i];
		rc = pq_uuid4(d->id);
		snprintf(d->batch_id, sizeof(d->batch_id), "%s", batch);
		snprintf(d->vin, sizeof(d->vin), "%s", t->vins[i]);
		snprintf(d->ecu_id, sizeof(d->ecu_id), "%s", a->ecu);
		snprintf(d->kind, sizeof(d->kind), "uds");
		d->params = ptext; /* shared, not freed per row */
		snprintf(d->requested_by, sizeof(d->requested_by), "%s", c->actor);
		d->created_ms = c->now_ms;
		d->expires_ms = c->now_ms + (int64_t)a->timeout_s * 1000;
	}
	if (rc == PQ_OK)
		rc = store_diag_insert(c->db, rows, t->n);
	if (rc == PQ_OK && !srv_get_options(c->s)->mqtt_host)
		fail_unreachable(c, batch, rows, t->n);
	else if (rc == PQ_OK)
		ctl_diag_kick(c->s);
	free(rows);
	free(ptext);
	json_decref(params);
	return rc;
}

static void h_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	targets t = {0};
	diag_ask a;
	store_page pg = {.limit = STORE_PAGE_DEFAULT};
	char batch[PQ_UUID_LEN], loc[96];
	int rc;
	if (!b)
		return;
	if (!srv_query_only(c, NULL) || !parse_ask(c, b, &a))
		goto out;
	t.seen = json_object();
	t.vins = calloc(STORE_DIAG_TARGETS_MAX, sizeof(*t.vins));
	if (!t.seen || !t.vins) {
		srv_fail(c, pq_err_set(PQ_ERR_NOMEM, "targets"), "diagnostics");
		goto out;
	}
	if (!resolve_targets(c, b, &t))
		goto out;
	rc = create_batch(c, &a, &t, batch);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "diagnostics request");
		goto out;
	}
	srv_audit(c, "diag.request", batch,
	          json_pack("{sssssIsI}", "ecu_id", a.ecu, "request", a.req, "targets",
	                    (json_int_t)t.n, "timeout_s", a.timeout_s));
	snprintf(loc, sizeof(loc), "/api/v1/diagnostics/%s", batch);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	send_batch(c, 202, batch, &pg);
out:
	free(t.vins);
	json_decref(t.seen);
	json_decref(b);
}

static void h_get(srv_ctx *c)
{
	store_page pg;
	if (srv_query_only(c, route_page_query) &&
	    route_id_ok(c, c->params[0], "diagnostics request") && srv_page(c, &pg))
		send_batch(c, 200, c->params[0], &pg);
}

static int add_batch(const store_diag_batch *b, void *user)
{
	json_t *j = NULL;
	int rc = batch_json(b, &j);
	if (rc != PQ_OK)
		return rc;
	if (json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "diagnostics list");
	return PQ_OK;
}

static void h_list(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	if (!srv_query_only(c, route_page_query) || !srv_page(c, &pg))
		return;
	json_t *items = json_array();
	int rc = items ? store_diag_batch_list(c->db, &pg, add_batch, items, &total)
	               : pq_err_set(PQ_ERR_NOMEM, "diagnostics list");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing diagnostics requests");
		return;
	}
	srv_json(c, 200, srv_page_json(items, &pg, total));
}

const srv_route route_diag_table[] = {
    {POST, "/api/v1/diagnostics", SRV_AUTH_OPERATOR, h_create,
     "send a UDS request to one vehicle or a fleet"},
    {GET, "/api/v1/diagnostics", SRV_AUTH_VIEWER, h_list, "list diagnostics requests"},
    {GET, "/api/v1/diagnostics/{id}", SRV_AUTH_VIEWER, h_get,
     "a diagnostics request with its aggregate and per-vehicle results"},
    {0, NULL, 0, NULL, NULL},
};
