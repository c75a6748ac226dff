/* telemetry_routes.c: GET /api/v1/vehicles/{vin}/telemetry, a vehicle's latest telemetry
 * sample and one page of its history (docs/api.md, "Telemetry"). */
#include <event2/http.h>
#include <jansson.h>

#include "server/msg.h"
#include "server/routes.h"
#include "server/telemetry.h"

/* A sample as the API gives it: the message's members, its times and its seq. */
static json_t *sample_json(const store_telemetry *t)
{
	char ts[32];
	if (msg_format_time(t->at_ms, ts) != PQ_OK)
		ts[0] = '\0';
	return json_pack("{s:I,s:s,s:I,s:I,s:{s:i,s:f},s:b,s:f,s:b,s:{s:I,s:I}}", "seq",
	                 (json_int_t)t->seq, "timestamp", ts, "at_ms", (json_int_t)t->at_ms,
	                 "received_ms", (json_int_t)t->received_ms, "battery", "soc_pct",
	                 t->battery_pct, "voltage_v", t->battery_mv / 1000.0, "ignition_on",
	                 t->ignition_on, "speed_kmh", t->speed_dkmh / 10.0, "parked", t->parked,
	                 "storage", "free_bytes", (json_int_t)t->storage_free, "total_bytes",
	                 (json_int_t)t->storage_total);
}

static int history_cb(const store_telemetry *t, void *user)
{
	json_t *j = sample_json(t);
	if (!j || json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "telemetry history");
	return PQ_OK;
}

/* {"vin","latest": sample or null,"items": the page of the history, newest first,
 * "total","limit","offset"} */
static void h_telemetry(srv_ctx *c)
{
	const char *vin = c->params[0];
	store_page pg;
	store_telemetry last;
	bool found = false;
	int64_t total = 0;
	if (!srv_query_only(c, route_page_query) || !route_own_vehicle(c, vin) || !srv_page(c, &pg))
		return;
	json_t *items = json_array();
	int rc = items ? store_telemetry_latest(c->db, vin, &last, &found)
	               : pq_err_set(PQ_ERR_NOMEM, "telemetry");
	if (rc == PQ_OK)
		rc = store_telemetry_history(c->db, vin, &pg, history_cb, items, &total);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "telemetry");
		return;
	}
	json_t *page = srv_page_json(items, &pg, total);
	if (!page || json_object_set_new(page, "vin", json_string(vin)) ||
	    json_object_set_new(page, "latest", found ? sample_json(&last) : json_null())) {
		json_decref(page);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	srv_json(c, 200, page);
}

const srv_route route_telemetry_table[] = {
    {EVHTTP_REQ_GET, "/api/v1/vehicles/{vin}/telemetry", SRV_AUTH_ANY, h_telemetry,
     "a vehicle's latest telemetry and its history"},
    {0, NULL, 0, NULL, NULL},
};
