/* diag.h: remote diagnostics on the server (docs/api.md "Diagnostics", docs/protocol.md
 * diag_request / diag_response): the REST routes (diag_routes.c), the diag_response check
 * and the control plane's part (diag.c: publishing due requests, storing answers). */
#ifndef PQOTA_SERVER_DIAG_H
#define PQOTA_SERVER_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/msg.h"
#include "server/server.h"
#include "store/diag.h"

extern const srv_route route_diag_table[];

#define DIAG_REQUEST_BYTES_MAX 4095 /* a UDS request or response */
#define DIAG_NRC_NAME_MAX      47
#define DIAG_TIMEOUT_S_MAX     300
#define DIAG_TIMEOUT_S_DEFAULT 10

/* A checked diag_response (docs/protocol.md). */
typedef struct {
	char request_id[STORE_ID_MAX + 1];
	char ecu_id[STORE_NAME_MAX + 1];
	store_diag_status status; /* positive, negative, timeout or error */
	int nrc;                  /* negative: 0..255, else -1 */
	int64_t elapsed_ms;       /* -1 when absent */
	json_t *payload;          /* the result to store: response, nrc, nrc_name, error,
	                           * elapsed_ms, message_id (owned; diag_response_clear) */
} diag_response;

/* Checks a parsed message (msg_parse on oem/{vin}/diag/response) as a diag_response:
 * request_id a UUID, ecu_id a name of [A-Za-z0-9_]{1,64}, status one of the four;
 * positive: response hex (even length, 1..4095 bytes) not starting with 7F; negative:
 * response 7F <sid> <nrc> and nrc the same integer; nrc_name, error bounded printable text;
 * elapsed_ms 0..24 h. PQ_ERR_FORMAT / PQ_ERR_RANGE / PQ_ERR_INVAL with the reason. */
int diag_response_parse(const msg_in *m, diag_response *out) PQ_MUST_CHECK;
void diag_response_clear(diag_response *r);

/* Whether s is hex of 1..max_bytes bytes (even length); case-insensitive. */
bool diag_hex_valid(const char *s, size_t max_bytes);

typedef int (*diag_publish_fn)(void *user, const char *topic, const char *json, size_t len, int qos,
                               bool retain);

/* Publishes the due requests (store_diag_due: vin NULL for every online vehicle's, else
 * that vehicle's), each moved pending -> sent first and back when the publish fails (which
 * stops the round). Requests with less than a second left are left to expire. *sent
 * (optional) counts the published ones. */
int diag_send_due(store *db, const char *vin, int64_t now_ms, diag_publish_fn pub, void *user,
                  int64_t *sent) PQ_MUST_CHECK;

/* Stores a vehicle's diag_response (m checked by msg_parse): *status (optional) is the
 * answer's status, *stored whether it was recorded (false: the request was finished or
 * expired already). PQ_ERR_NOTFOUND: no such request for that VIN; PQ_ERR_INVAL etc.: the
 * message is malformed or names another ECU than the request. */
int diag_on_response(store *db, const msg_in *m, int64_t now_ms, store_diag_status *status,
                     bool *stored) PQ_MUST_CHECK;

/* The ISO 14229-1 name of a negative response code (diag_names.c), NULL when unknown. */
const char *diag_nrc_name(int nrc);
/* The text of a positive ReadDataByIdentifier answer (62 <DID> <data>, hex): the data as
 * text when, without its trailing NUL / 0xFF / space padding, it is 1..cap-1 bytes of
 * printable ASCII; false (out "") otherwise. */
bool diag_did_text(const char *response_hex, char *out, size_t cap);

/* diag_on_response, then, when the answer was stored, the live "diag" event
 * {"id" (the batch),"vin","ecu_id","state" (the status),"at_ms"} through srv_event. */
int diag_on_response_ev(srv *s, store *db, const msg_in *m, int64_t now_ms,
                        store_diag_status *status, bool *stored) PQ_MUST_CHECK;

/* store_diag_expire with a live "diag" event (state "timeout") per request it expired. */
int diag_expire_ev(srv *s, store *db, int64_t now_ms, int limit, int64_t *expired) PQ_MUST_CHECK;

/* Asks the control plane to publish due requests now rather than on its next tick
 * (control.c; any thread). */
void ctl_diag_kick(srv *s);

#endif
