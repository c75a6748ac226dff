/* compat_routes.c: the compatibility layer (docs/api.md "Compatibility routes"): the paths
 * of the OTA server descriptions pqota was built from, in one table, each mapped onto the
 * native API. A pure alias is a row served by its native route (srv_alias: same handler,
 * requirement, rate limit and errors; the router resolves it, srv_new checks it); the
 * routes that need behaviour of their own are here (GET / for API clients, the latest
 * firmware), in compat_ecus.c (the fleet-wide ECU registry) and compat_ota.c (the REST
 * update check and status report of vehicles that poll over HTTPS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "server/compat.h"
#include "server/releases_int.h"
#include "server/server.h"
#include "server/uptane_srv.h"
#include "tls/tls.h"

#define GET  EVHTTP_REQ_GET
#define HEAD EVHTTP_REQ_HEAD
#define POST EVHTTP_REQ_POST

/* ---- GET / ------------------------------------------------------------------------------ */

/* Browsers ask for the page (every navigation's Accept names text/html); any other client
 * (curl's default is * / *, an API client's application/json) gets the server information. */
static bool wants_page(srv_ctx *c)
{
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(c->req), "Accept");
	return a && strstr(a, "text/html") != NULL;
}

/* What a client may know about the server before it authenticates: no secrets, no paths,
 * no counts. */
static json_t *server_info(srv_ctx *c)
{
	const srv_options *o = srv_get_options(c->s);
	return json_pack("{s:s,s:s,s:s,s:{s:i,s:s,s:s},s:b,s:b,s:b,s:{s:s,s:s,s:s,s:s,s:s}}",
	                 "name", "pqota", "version", PQOTA_VERSION, "api", "v1", "tls", "profile",
	                 o->profile->id, "name", o->profile->name, "group", o->profile->tls_group,
	                 "uptane", srv_uptane(c->s) != NULL, "mqtt", o->mqtt_host != NULL,
	                 "console", !o->console_off, "links", "health", "/health", "metrics",
	                 "/metrics", "openapi", "docs/openapi.json", "api_docs", "docs/api.md",
	                 "compatibility", "docs/api.md section 17");
}

static void h_root(srv_ctx *c)
{
	if (wants_page(c)) {
		for (const srv_route *r = route_console_table; r->pattern; r++)
			if (strcmp(r->pattern, "/") == 0) {
				r->fn(c);
				return;
			}
	}
	if (!srv_query_only(c, NULL))
		return;
	srv_json(c, 200, server_info(c));
}

/* ---- GET /api/firmware/latest ------------------------------------------------------------- */

#define LATEST_MAX 1024 /* (hardware id, ECU, software type) keys answered */

typedef struct {
	srv_ctx *c;
	json_t *items;
} latest_list;

/* A release as the answer lists it; a vehicle gets what the image repository publishes, no
 * more (not the operator's key name, not the deltas). */
static int latest_cb(const store_release *r, void *user)
{
	latest_list *l = user;
	json_t *it = rel_release_json(l->c->db, r);
	if (it && !l->c->has_key) {
		json_object_del(it, "created_by");
		json_object_del(it, "deltas");
		json_object_del(it, "delta");
	}
	if (json_array_append_new(l->items, it) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "latest firmware");
	return PQ_OK;
}

static const char *const latest_query[] = {"hardware_id", "ecu_id", NULL};

/* The newest release of each key: one store query (store_release_latest), at most
 * LATEST_MAX keys, whatever the number of releases. */
static void h_firmware_latest(srv_ctx *c)
{
	if (!srv_query_only(c, latest_query))
		return;
	char *hw = srv_query(c, "hardware_id"), *ecu = srv_query(c, "ecu_id");
	store_release_filter f = {.hardware_id = hw, .ecu_id = ecu};
	latest_list l = {c, json_array()};
	json_t *items = l.items;
	bool more = false;
	int rc = items ? store_release_latest(c->db, &f, LATEST_MAX, latest_cb, &l, &more)
	               : pq_err_set(PQ_ERR_NOMEM, "latest firmware");
	free(hw);
	free(ecu);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "latest firmware");
		return;
	}
	srv_json(c, 200, json_pack("{s:o,s:b}", "items", items, "truncated", more));
}

/* ---- the table ---------------------------------------------------------------------------- */

/* original path -> pqota route; docs/api.md section 17 lists the same rows. Aliases carry
 * their native route's methods and requirement (srv_new refuses them otherwise). */
const srv_route route_compat_table[] = {
    {GET | HEAD, "/", SRV_AUTH_PUBLIC, h_root,
     "server information (JSON) for API clients; the console for browsers (Accept: text/html)"},
    {GET, "/api/vehicles", SRV_AUTH_VIEWER, srv_alias, "= GET /api/v1/vehicles"},
    {GET, "/api/vehicles/{vin}", SRV_AUTH_ANY, srv_alias, "= GET /api/v1/vehicles/{vin}"},
    {POST, "/api/vehicles/{vin}/vci", SRV_AUTH_OPERATOR, srv_alias,
     "= POST /api/v1/vehicles/{vin}/vci-request"},
    {POST, "/api/vehicles/{vin}/readiness", SRV_AUTH_OPERATOR, srv_alias,
     "= POST /api/v1/vehicles/{vin}/readiness"},
    {GET, "/api/campaigns/{id}", SRV_AUTH_VIEWER, srv_alias, "= GET /api/v1/campaigns/{id}"},
    {POST, "/api/v1/vehicles/register", SRV_AUTH_OPERATOR, srv_alias, "= POST /api/v1/vehicles"},
    {GET, "/api/v1/ecus", SRV_AUTH_VIEWER, compat_ecus,
     "the fleet-wide ECU registry, filtered by ecu_id, hardware_id, version; keyset pages"},
    {GET, "/api/v1/ecus/{ecu_id}", SRV_AUTH_VIEWER, compat_ecus,
     "one ECU id across the fleet (the registry filtered by it)"},
    {GET, "/api/v1/ecus/{ecu_id}/version", SRV_AUTH_VIEWER, compat_ecu_versions,
     "how many vehicles carry each version of one ECU id"},
    {GET, "/api/v1/ota/check", SRV_AUTH_VEHICLE, compat_ota_check,
     "the update the director assigns to this vehicle now (polling over HTTPS)"},
    {GET, "/api/v1/ota/package", SRV_AUTH_VEHICLE, compat_ota_packages,
     "the packages of this vehicle's assigned update"},
    {GET | HEAD, "/api/v1/ota/package/{id}", SRV_AUTH_VEHICLE, compat_ota_package,
     "download one package of this vehicle's assigned update (Range, ETag)"},
    {POST, "/api/v1/ota/status", SRV_AUTH_VEHICLE, compat_ota_status,
     "a progress or result report, applied as the same MQTT message would be"},
    {POST, "/api/v1/diagnostics/send", SRV_AUTH_OPERATOR, srv_alias, "= POST /api/v1/diagnostics"},
    {GET, "/api/v1/diagnostics/results/{id}", SRV_AUTH_VIEWER, srv_alias,
     "= GET /api/v1/diagnostics/{id}"},
    {GET, "/api/firmware/latest", SRV_AUTH_ANY, h_firmware_latest,
     "the newest release of each (hardware id, ECU, software type)"},
    {0, NULL, 0, NULL, NULL},
};
