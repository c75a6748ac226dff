/* routes.h: handlers shared between the route modules. */
#ifndef PQOTA_SERVER_ROUTES_H
#define PQOTA_SERVER_ROUTES_H

#include <stdbool.h>

#include "server/server.h"

/* The query parameters of a route that only pages: limit, offset (for srv_query_only). */
extern const char *const route_page_query[];

/* The fleet, vehicle-deployment, VCI-request and audit routes (fleet_routes.c). */
extern const srv_route route_fleet_table[];

/* Vehicles may only see themselves (sends 403 and returns false otherwise). */
bool route_own_vehicle(srv_ctx *c, const char *vin);

/* Whether id can name a record made here (a UUID: 1..STORE_ID_MAX of [0-9A-Fa-f-]); sends
 * 404 "no <what> '<id>'" and returns false otherwise. */
bool route_id_ok(srv_ctx *c, const char *id, const char *what);

/* An ECU as the vehicle routes show it (without its VIN). */
json_t *route_ecu_json(const store_ecu *e);

/* GET/HEAD /packages/{sha256} */
void route_download(srv_ctx *c);

/* DATA/files/<sha> opened, a regular file (its size in *size); -1 when it cannot be
 * served. */
int route_open_package(srv_ctx *c, const char *sha, uint64_t *size);
/* Sends the open file fd of size bytes, named by its SHA-256 sha (the ETag): whole, or the
 * Range asked for (when If-Range, if any, is the ETag); HEAD sends the headers only. Takes
 * fd. */
void route_send_package(srv_ctx *c, const char *sha, int fd, uint64_t size);

/* /health and /ready (health.c). */
extern const srv_route route_health_table[];

/* The campaign bundles (bundles.c) and their downloads (bundle_serve.c). */
extern const srv_route route_bundle_table[];

/* Parses a single "bytes=" range against size. Returns 1 for a satisfiable range (filled
 * [*start, *end]), 0 when there is no usable Range (serve everything), -1 when it is
 * unsatisfiable (416). Multiple ranges are treated as no Range. */
int route_parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end);

#endif
