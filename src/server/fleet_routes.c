/* fleet_routes.c: the routes behind the operator console's fleet, vehicle and audit pages
 * (docs/api.md 6.1, 6.12, 6.15, 6.16): the vehicle list with its filters, each vehicle with
 * its VMG version and outstanding campaign; one vehicle's deployments over every campaign;
 * asking a vehicle for a new VCI; the audit log with its filters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "server/msg.h"
#include "server/routes.h"
#include "server/server.h"
#include "store/fleet.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Query parameter values (malloc'd) by name, freed together. */
typedef struct {
	const char *const *names; /* NULL-terminated */
	char *v[8];
} query_vals;

static void query_read(srv_ctx *c, query_vals *q)
{
	for (size_t i = 0; i < N_OF(q->v) && q->names[i]; i++)
		q->v[i] = srv_query(c, q->names[i]);
}

static void query_free(query_vals *q)
{
	for (size_t i = 0; i < N_OF(q->v); i++)
		free(q->v[i]);
}

/* A decimal integer in [min, max] (or absent: *out unchanged); false (400 sent) otherwise. */
/* ---- GET /api/v1/vehicles ----------------------------------------------------------------- */

static json_t *str_or_null(const char *s, bool present)
{
	return present ? json_string(s) : json_null();
}

static int fleet_item_cb(const store_fleet_vehicle *f, void *user)
{
	const store_vehicle *v = &f->v;
	json_t *camp = f->has_campaign ? json_pack("{s:s,s:s,s:s}", "id", f->campaign_id, "name",
	                                           f->campaign_name, "state", f->dep_state)
	                               : json_null();
	json_t *j =
	    camp ? json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:s,s:I,s:o,s:o}", "vin", v->vin, "model",
	                     v->model, "online", v->online, "last_seen_ms",
	                     (json_int_t)v->last_seen_ms, "boot_seq", (json_int_t)v->boot_seq,
	                     "created_ms", (json_int_t)v->created_ms, "certificate_sha256",
	                     v->cert_pem_sha256, "last_vci_ms", (json_int_t)f->last_vci_ms,
	                     "vmg_version", str_or_null(f->vmg_version, f->has_vmg), "campaign",
	                     camp)
	         : NULL;
	if (json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "vehicles");
	return PQ_OK;
}

enum {
	QV_MODEL,
	QV_ONLINE,
	QV_PREFIX,
	QV_ECU,
	QV_VERSION
};
static const char *const vehicle_filters[] = {"model",  "online",  "vin_prefix",
                                              "ecu_id", "version", NULL};
static const char *const vehicle_query[] = {"limit",      "offset", "model",   "online",
                                            "vin_prefix", "ecu_id", "version", NULL};

/* The filter of the query q; false (400 sent) when it is not valid. */
static bool vehicle_filter_of(srv_ctx *c, const query_vals *q, store_vehicle_filter *f)
{
	const char *online = q->v[QV_ONLINE];
	*f = (store_vehicle_filter){.online = -1,
	                            .model = q->v[QV_MODEL],
	                            .vin_prefix = q->v[QV_PREFIX],
	                            .ecu_id = q->v[QV_ECU],
	                            .version = q->v[QV_VERSION]};
	if (online && strcmp(online, "true") == 0)
		f->online = 1;
	else if (online && strcmp(online, "false") == 0)
		f->online = 0;
	else if (online) {
		srv_error(c, 400, "bad_request", "online must be true or false");
		return false;
	}
	if (f->version && !f->ecu_id) {
		srv_error(c, 400, "bad_request", "version needs ecu_id (the ECU whose version)");
		return false;
	}
	if (f->ecu_id && !f->ecu_id[0]) {
		srv_error(c, 400, "bad_request", "ecu_id must not be empty");
		return false;
	}
	return true;
}

static void h_vehicles_list(srv_ctx *c)
{
	store_page pg;
	store_vehicle_filter f;
	int64_t total = 0;
	query_vals q = {.names = vehicle_filters};
	if (!srv_query_only(c, vehicle_query) || !srv_page(c, &pg))
		return;
	query_read(c, &q);
	if (!vehicle_filter_of(c, &q, &f))
		goto out;
	json_t *items = json_array();
	int rc = items ? store_fleet_list(c->db, &f, &pg, fleet_item_cb, items, &total)
	               : pq_err_set(PQ_ERR_NOMEM, "vehicles");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing vehicles");
		goto out;
	}
	srv_json(c, 200, srv_page_json(items, &pg, total));
out:
	query_free(&q);
}

/* ---- GET /api/v1/vehicles/{vin}/deployments ---------------------------------------------- */

typedef struct {
	srv_ctx *c;
	json_t *items;
} vdep_ctx;

static int target_cb(const store_target *t, void *user)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "ecu_id", t->ecu_id,
	                      "hardware_id", t->hardware_id, "software_type", t->software_type,
	                      "from_version", t->from_version, "to_version", t->to_version,
	                      "release_id", t->release_id, "package", t->package, "sha256",
	                      t->file_sha256, "size", (json_int_t)t->file_size);
	if (json_array_append_new(user, o) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	return PQ_OK;
}

static int vdep_cb(const store_vehicle_dep *d, void *user)
{
	vdep_ctx *x = user;
	json_t *targets = json_array();
	int rc = targets ? store_target_list(x->c->db, d->campaign_id, x->c->params[0], target_cb,
	                                     targets)
	                 : pq_err_set(PQ_ERR_NOMEM, "targets");
	if (rc != PQ_OK) {
		json_decref(targets);
		return rc;
	}
	json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:I,s:o}", "campaign_id", d->campaign_id,
	                      "campaign_name", d->campaign_name, "state", d->state, "phase",
	                      d->phase, "error_code", d->error_code, "updated_ms",
	                      (json_int_t)d->updated_ms, "targets", targets);
	if (json_array_append_new(x->items, o) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "deployments");
	return PQ_OK;
}

static void h_vehicle_deployments(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	if (!srv_query_only(c, route_page_query) || !srv_page(c, &pg))
		return;
	vdep_ctx x = {.c = c, .items = json_array()};
	int rc = x.items ? store_vehicle_deployments(c->db, c->params[0], &pg, vdep_cb, &x, &total)
	                 : pq_err_set(PQ_ERR_NOMEM, "deployments");
	if (rc != PQ_OK) {
		json_decref(x.items);
		srv_fail(c, rc, "vehicle deployments");
		return;
	}
	srv_json(c, 200, srv_page_json(x.items, &pg, total));
}

/* ---- POST /api/v1/vehicles/{vin}/vci-request ---------------------------------------------- */

/* Publishes request_vci on oem/{vin}/command (QoS 1) as after a wake-up; its message id
 * into id. */
static int publish_vci_request(srv_ctx *c, const char *vin, char id[STORE_ID_MAX + 1])
{
	char topic[128];
	if (!msg_vin_valid(vin)) /* registered through the store by other means */
		return pq_err_set(PQ_ERR_INVAL, "VIN %s cannot name an MQTT topic", vin);
	json_t *m = msg_new("request_vci", vin, NULL);
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	int rc = text ? msg_topic(topic, sizeof(topic), vin, "command")
	              : pq_err_set(PQ_ERR_NOMEM, "request_vci");
	if (rc == PQ_OK) {
		snprintf(id, STORE_ID_MAX + 1, "%s",
		         json_string_value(json_object_get(m, "message_id")));
		rc = srv_publish(c->s, topic, text, strlen(text), 1, false);
	}
	free(text);
	json_decref(m);
	return rc;
}

static void h_vci_request(srv_ctx *c)
{
	const char *vin = c->params[0];
	store_vehicle v = {0};
	char id[STORE_ID_MAX + 1] = "";
	if (!srv_query_only(c, NULL))
		return;
	int rc = store_vehicle_get(c->db, vin, &v);
	store_vehicle_clear(&v);
	if (rc == PQ_OK)
		rc = publish_vci_request(c, vin, id);
	if (rc == PQ_ERR_UNSUPPORTED) {
		srv_error(c, 503, "no_broker", "no MQTT broker is configured (mqtt.broker)");
		return;
	}
	if (rc == PQ_ERR_RANGE) {
		srv_error(c, 503, "busy", "%s", pq_err_detail());
		return;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "VCI request");
		return;
	}
	srv_audit(c, "vehicle.vci_request", vin, json_pack("{s:s}", "message_id", id));
	srv_json(c, 202,
	         json_pack("{s:s,s:I,s:s}", "vin", vin, "requested_ms", (json_int_t)c->now_ms,
	                   "message_id", id));
}

/* ---- GET /api/v1/audit -------------------------------------------------------------------- */

static int audit_cb(const store_audit *a, void *user)
{
	json_t *d = NULL;
	int rc = srv_json_text(a->detail, "audit detail", &d);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "audit record %lld", (long long)a->id);
	json_t *j = json_pack("{s:I,s:I,s:s,s:s,s:s,s:o}", "id", (json_int_t)a->id, "at_ms",
	                      (json_int_t)a->at_ms, "actor", a->actor, "action", a->action,
	                      "target", a->target, "detail", d ? d : json_null());
	if (json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "audit log");
	return PQ_OK;
}

enum {
	QA_ACTOR,
	QA_ACTION,
	QA_TARGET
};
/* the text filters (the times are read as integers by srv_query_int) */
static const char *const audit_filters[] = {"actor", "action", "target", NULL};
static const char *const audit_query[] = {"limit",  "offset",   "actor",    "action",
                                          "target", "since_ms", "until_ms", NULL};

/* Times up to the year 9999, in ms. */
#define TIME_MAX_MS 253402300799999LL

static bool audit_filter_of(srv_ctx *c, const query_vals *q, store_audit_filter *f)
{
	*f = (store_audit_filter){
	    .actor = q->v[QA_ACTOR], .action = q->v[QA_ACTION], .target = q->v[QA_TARGET]};
	if (!srv_query_int(c, "since_ms", 0, TIME_MAX_MS, 0, &f->since_ms) ||
	    !srv_query_int(c, "until_ms", 1, TIME_MAX_MS, 0, &f->until_ms))
		return false;
	if (f->until_ms && f->since_ms >= f->until_ms) {
		srv_error(c, 400, "bad_request", "since_ms must be before until_ms");
		return false;
	}
	return true;
}

static void h_audit(srv_ctx *c)
{
	store_page pg;
	store_audit_filter f;
	int64_t total = 0;
	query_vals q = {.names = audit_filters};
	if (!srv_query_only(c, audit_query) || !srv_page(c, &pg))
		return;
	query_read(c, &q);
	if (!audit_filter_of(c, &q, &f))
		goto out;
	json_t *items = json_array();
	int rc = items ? store_audit_query(c->db, &f, &pg, audit_cb, items, &total)
	               : pq_err_set(PQ_ERR_NOMEM, "audit log");
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "audit log");
		goto out;
	}
	srv_json(c, 200, srv_page_json(items, &pg, total));
out:
	query_free(&q);
}

/* ---- the table ------------------------------------------------------------------------------ */

const srv_route route_fleet_table[] = {
    {EVHTTP_REQ_GET, "/api/v1/vehicles", SRV_AUTH_VIEWER, h_vehicles_list,
     "list vehicles, with VMG version and outstanding campaign"},
    {EVHTTP_REQ_GET, "/api/v1/vehicles/{vin}/deployments", SRV_AUTH_VIEWER, h_vehicle_deployments,
     "a vehicle's deployments over every campaign, newest first"},
    {EVHTTP_REQ_POST, "/api/v1/vehicles/{vin}/vci-request", SRV_AUTH_OPERATOR, h_vci_request,
     "ask the vehicle for a new VCI report (request_vci over MQTT)"},
    {EVHTTP_REQ_GET, "/api/v1/audit", SRV_AUTH_ADMIN, h_audit,
     "the audit log, newest first, with filters"},
    {0, NULL, 0, NULL, NULL},
};
