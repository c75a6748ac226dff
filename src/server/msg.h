/* msg.h: the MQTT messages of docs/protocol.md: parsing and checking what vehicles publish
 * (topic, envelope, seed compatibility) and building the envelope of the server's messages.
 *
 * msg_parse() never trusts the payload: sizes, JSON depth, field types and lengths are
 * bounded, duplicate keys are refused, and the VIN in the body must be the topic's. It is
 * pure (no I/O, no global state) and safe to call from any thread. */
#ifndef PQOTA_SERVER_MSG_H
#define PQOTA_SERVER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define MSG_MAX_BYTES           (256u * 1024u)  /* any message */
#define MSG_VCI_MAX_BYTES       (1024u * 1024u) /* a VCI report */
#define MSG_TELEMETRY_MAX_BYTES 4096u           /* a telemetry sample */
#define MSG_MAX_DEPTH           32              /* nesting of objects and arrays */
#define MSG_VIN_MAX             32
#define MSG_TYPE_MAX            47
#define MSG_ID_MAX              79 /* message_id, correlation_id */
#define MSG_CAMPAIGN_MAX        40

/* What a topic oem/{vin}/SUFFIX carries, from its suffix. */
typedef enum {
	MSG_T_WAKE_UP,   /* wake_up: vehicle_wake_up */
	MSG_T_VCI,       /* vci: vci_report */
	MSG_T_RESPONSE,  /* response: ota_campaign_response, ota_readiness_response, command_ack */
	MSG_T_STATUS,    /* ota/status: the nine ota_* status messages */
	MSG_T_PRESENCE,  /* presence: plain text "online" / "offline" */
	MSG_T_TELEMETRY, /* telemetry: telemetry (server/telemetry.h checks its body) */
	MSG_T_OTHER,     /* any other suffix: a JSON envelope with any msg_type */
} msg_topic_kind;

typedef struct {
	char vin[MSG_VIN_MAX + 1]; /* from the topic oem/{vin}/...: [A-Za-z0-9_-]{1,32} */
	msg_topic_kind kind;
	char msg_type[MSG_TYPE_MAX + 1]; /* "" for presence */
	/* The message's own id, or "sha256:<hex of the payload>" when a vehicle_wake_up has
	 * none (the seed's), so an identical redelivery is recognised. "" for presence. */
	char message_id[MSG_ID_MAX + 1];
	char correlation_id[MSG_ID_MAX + 1];    /* "" if none */
	char campaign_id[MSG_CAMPAIGN_MAX + 1]; /* "" if none */
	int64_t timestamp_ms;                   /* Unix ms; 0 for presence */
	json_t *root;     /* the object (owned: msg_in_clear frees); NULL for presence */
	char presence[8]; /* "online" / "offline" for presence, else "" */
} msg_in;

/* Parses and checks one message received on `topic`. On success `out` is filled (and must
 * be released with msg_in_clear); on failure it is left cleared and the detail says why:
 *   PQ_ERR_INVAL  topic not oem/{vin}/..., msg_type not one of the topic's, VIN mismatch
 *   PQ_ERR_FORMAT not a JSON object, duplicate keys, a required field missing or mistyped
 *   PQ_ERR_RANGE  payload too large (MSG_MAX_BYTES; a VCI report MSG_VCI_MAX_BYTES, telemetry
 *                 MSG_TELEMETRY_MAX_BYTES), nesting too deep, a field too long, a time out
 *                 of range
 * Envelope rules (docs/protocol.md): msg_type (string) consistent with the topic; vin equal
 * to the topic's; timestamp an ISO-8601 UTC string ending in Z; message_id a string of
 * [A-Za-z0-9_.:-]{1,79}; correlation_id and campaign_id bounded strings when present;
 * unknown fields ignored. Seed compatibility, for vehicle_wake_up only: the VIN may come
 * from vehicle.vin, the timestamp may be a number of seconds, message_id may be absent. */
int msg_parse(const char *topic, const void *payload, size_t len, msg_in *out) PQ_MUST_CHECK;

/* Frees the parsed object and clears *m (NULL-safe, idempotent). */
void msg_in_clear(msg_in *m);

/* The topic suffix's kind ("wake_up" -> MSG_T_WAKE_UP, ...); MSG_T_OTHER when unknown. */
msg_topic_kind msg_kind_of_suffix(const char *suffix);
/* "wake_up", "vci", "response", "ota/status", "presence", "telemetry", "other". */
const char *msg_kind_name(msg_topic_kind k);

/* Whether s is a valid VIN for a topic: [A-Za-z0-9_-]{1,32}. */
bool msg_vin_valid(const char *s);

/* A new server->vehicle message: {"msg_type","message_id" (fresh UUIDv4),"timestamp" (now,
 * ISO-8601 ms Z),"vin"} plus "correlation_id" when non-NULL. The caller owns the object
 * (json_decref). NULL when an argument is invalid (bad VIN, empty type) or memory ran out. */
json_t *msg_new(const char *msg_type, const char *vin, const char *correlation_id);

/* buf = "oem/{vin}/{suffix}". PQ_ERR_INVAL for a bad VIN or a suffix with wildcards,
 * PQ_ERR_RANGE when it does not fit. */
int msg_topic(char *buf, size_t len, const char *vin, const char *suffix) PQ_MUST_CHECK;

/* pq_uuid4 (core/uuid.h) for message ids, which must never collide (idempotency): it aborts
 * the process when no random bytes can be had, instead of returning the error. */
void msg_uuid4(char out[37]);

/* Unix ms <-> "2024-01-31T12:34:56.789Z" (years 1970..9999). msg_format_time is
 * pq_iso_time_ms (core/time.h) refusing, not clamping, a time outside those years.
 * msg_parse_time accepts 0 to 9 fraction digits (truncated to ms) and requires the Z; both
 * fail with PQ_ERR_RANGE or PQ_ERR_FORMAT. */
int msg_format_time(int64_t ms, char out[32]) PQ_MUST_CHECK;
int msg_parse_time(const char *s, int64_t *ms) PQ_MUST_CHECK;

#endif
