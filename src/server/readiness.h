/* readiness.h: on-demand readiness checks (docs/api.md "Readiness now", docs/protocol.md
 * request_ota_readiness / ota_readiness_response): the routes (readiness_routes.c) and the
 * check of a vehicle's answer, stored by the control plane (readiness.c). */
#ifndef PQOTA_SERVER_READINESS_H
#define PQOTA_SERVER_READINESS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "server/msg.h"
#include "server/server.h"
#include "store/readiness.h"

extern const srv_route route_readiness_table[];

#define RDY_CHECKS_MAX 8   /* checks in an answer */
#define RDY_REASON_MAX 256 /* a reason's bytes */

/* Checks an ota_readiness_response's body (m checked by msg_parse): "ready" a boolean,
 * "checks" an array of 1..RDY_CHECKS_MAX distinct {"name": battery | parked | ignition_off
 * | storage, "ok": bool, "value": a number, boolean or null, "reason": bounded text
 * (optional)}, "ready" true exactly when every check is ok, "reason" bounded text or null.
 * *answer: {"checks","reason"} as stored (owned). PQ_ERR_FORMAT with why. */
int rdy_answer_parse(const json_t *root, bool *ready, json_t **answer) PQ_MUST_CHECK;

/* An ota_readiness_response whose correlation_id names an on-demand check of that vehicle:
 * checked and stored (*ours true; *stored whether it was the first answer in time). *ours
 * false (PQ_OK): no such check, the message is the campaign engine's. Errors: malformed. */
int rdy_on_response(store *db, const msg_in *m, int64_t now_ms, bool *ours,
                    bool *stored) PQ_MUST_CHECK;

/* The API view of a stored check: {"id","vin","state" (pending | answered | expired),
 * "ready","checks","reason","prerequisites","requested_ms","expires_ms","answered_ms",
 * "requested_by"}; NULL when out of memory or a stored text does not parse. */
json_t *rdy_json(const store_readiness *r, int64_t now_ms);

#endif
