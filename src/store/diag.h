/* diag.h: the store's remote diagnostics (schema v1 diag_requests / diag_results, v3
 * batch_id). A diagnostics request to a fleet is a batch: one diag_requests row per
 * vehicle, all sharing batch_id (the id the API returns), kind "uds", params
 * {"request":"22F190","timeout_ms":N}. A row goes pending -> sent -> done | failed |
 * expired; its answer is one diag_results row (seq 1) with a status (positive, negative,
 * timeout, error) and a JSON payload {"response","nrc","nrc_name","error","elapsed_ms"}.
 * Expiry records a 'timeout' result, a failure an 'error' one, so every finished row has
 * exactly one result. Written once for both backends, with store.h's bounds rules. */
#ifndef PQOTA_STORE_DIAG_H
#define PQOTA_STORE_DIAG_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_DIAG_TARGETS_MAX 10000  /* vehicles in one batch */
#define STORE_DIAG_JSON_MAX    16384  /* params, a result's payload */
#define STORE_DIAG_TOP_MAX     10     /* distinct positive responses in an aggregate */
#define STORE_DIAG_ERROR_MAX   512    /* an error text (bytes) */
#define STORE_DIAG_RESP_MAX    (8190) /* a UDS response in hex (4095 bytes) */

/* Row states (the column). */
typedef enum {
	STORE_DIAG_PENDING = 0, /* waiting for the vehicle to be online */
	STORE_DIAG_SENT = 1,    /* published to the vehicle */
	STORE_DIAG_DONE = 2,    /* the vehicle answered */
	STORE_DIAG_FAILED = 3,  /* could not be sent */
	STORE_DIAG_EXPIRED = 4, /* no answer before expires_ms */
} store_diag_state;
#define STORE_DIAG_STATE_COUNT 5

/* A vehicle's status as the API shows it: the result's status when there is one, else
 * pending / sent. */
typedef enum {
	STORE_DIAG_ST_PENDING = 0,
	STORE_DIAG_ST_SENT = 1,
	STORE_DIAG_ST_POSITIVE = 2,
	STORE_DIAG_ST_NEGATIVE = 3,
	STORE_DIAG_ST_TIMEOUT = 4,
	STORE_DIAG_ST_ERROR = 5,
	STORE_DIAG_ST_SUPPRESSED = 6, /* done: the request asked for no positive response */
} store_diag_status;
#define STORE_DIAG_STATUS_COUNT 7

const char *store_diag_state_name(store_diag_state st);
int store_diag_state_parse(const char *s, store_diag_state *out) PQ_MUST_CHECK;
const char *store_diag_status_name(store_diag_status st);
int store_diag_status_parse(const char *s, store_diag_status *out) PQ_MUST_CHECK;

typedef struct {
	char id[STORE_ID_MAX + 1];
	char batch_id[STORE_ID_MAX + 1];
	char vin[STORE_VIN_MAX + 1];
	char ecu_id[STORE_NAME_MAX + 1];
	char kind[16];
	char *params; /* JSON text, malloc'd (store_diag_clear frees); insert: NULL = {} */
	store_diag_state state;
	char requested_by[STORE_ACTOR_MAX + 1];
	int64_t created_ms;
	int64_t sent_ms; /* 0 until sent */
	int64_t expires_ms;
	int64_t updated_ms;
	/* the answer (read only) */
	store_diag_status status;
	char *payload; /* JSON text of the result, malloc'd, or NULL */
	int64_t received_ms;
} store_diag;

void store_diag_clear(store_diag *d);

/* Inserts n (1..STORE_DIAG_TARGETS_MAX) rows in one transaction, each state pending with
 * updated_ms = created_ms. PQ_ERR_EXISTS: an id is taken; PQ_ERR_INVAL: a bad field. */
int store_diag_insert(store *s, const store_diag *rows, size_t n) PQ_MUST_CHECK;
/* One row with its result. PQ_ERR_NOTFOUND when unknown. */
int store_diag_get(store *s, const char *id, store_diag *out) PQ_MUST_CHECK;

/* pending -> sent (sets sent_ms) or sent -> pending (a publish that failed), compare-and-
 * set: *changed tells whether it applied. */
int store_diag_mark(store *s, const char *id, store_diag_state from, store_diag_state to,
                    int64_t now_ms, bool *changed) PQ_MUST_CHECK;

/* Stores vin's answer to request id (status positive, negative, timeout or error,
 * payload JSON or NULL) and moves the row to done, in one transaction, only while it is
 * pending or sent and not past expires_ms; *stored is false otherwise (finished, expired:
 * nothing is written). PQ_ERR_NOTFOUND: no request id for that VIN. */
int store_diag_result(store *s, const char *id, const char *vin, store_diag_status status,
                      const char *payload, int64_t now_ms, bool *stored) PQ_MUST_CHECK;
/* pending/sent -> failed with an 'error' result {"error": error}; *changed optional. */
int store_diag_fail(store *s, const char *id, const char *error, int64_t now_ms,
                    bool *changed) PQ_MUST_CHECK;
/* Moves up to limit (1..STORE_PAGE_MAX) pending/sent rows with expires_ms < now to expired,
 * each with a 'timeout' result, in one transaction; *expired (optional) counts them. */
int store_diag_expire(store *s, int64_t now_ms, int limit, int64_t *expired) PQ_MUST_CHECK;
/* A request's keys, as store_diag_expire_each reports the ones it expired. */
typedef struct {
	char id[STORE_ID_MAX + 1];
	char batch_id[STORE_ID_MAX + 1];
	char vin[STORE_VIN_MAX + 1];
	char ecu_id[STORE_NAME_MAX + 1];
} store_diag_key;
/* store_diag_expire, then fn (may be NULL) for each request it expired, after the commit. */
int store_diag_expire_each(store *s, int64_t now_ms, int limit,
                           void (*fn)(const store_diag_key *k, void *user), void *user,
                           int64_t *expired) PQ_MUST_CHECK;

/* Pending rows not yet expired whose vehicle is online (vin NULL: any vehicle; else that
 * one, online or not), oldest first, at most limit (1..STORE_PAGE_MAX). The rows are read
 * first, then fn is called (it may use s). */
int store_diag_due(store *s, const char *vin, int64_t now_ms, int limit,
                   int (*fn)(const store_diag *d, void *user), void *user) PQ_MUST_CHECK;

/* The rows of a batch with their results, ordered by VIN. */
int store_diag_list_batch(store *s, const char *batch_id, const store_page *pg,
                          int (*fn)(const store_diag *d, void *user), void *user,
                          int64_t *total) PQ_MUST_CHECK;

typedef struct {
	char id[STORE_ID_MAX + 1]; /* the batch id */
	char ecu_id[STORE_NAME_MAX + 1];
	char kind[16];
	char *params; /* JSON text, malloc'd (store_diag_batch_clear frees) */
	char requested_by[STORE_ACTOR_MAX + 1];
	int64_t created_ms;
	int64_t expires_ms;
	int64_t targets;
	int64_t counts[STORE_DIAG_STATUS_COUNT]; /* vehicles per status */
} store_diag_batch;

void store_diag_batch_clear(store_diag_batch *b);
/* PQ_ERR_NOTFOUND for an unknown batch. */
int store_diag_batch_get(store *s, const char *batch_id, store_diag_batch *out) PQ_MUST_CHECK;
/* Newest first (created_ms, then id). */
int store_diag_batch_list(store *s, const store_page *pg,
                          int (*fn)(const store_diag_batch *b, void *user), void *user,
                          int64_t *total) PQ_MUST_CHECK;

/* The answers of a batch aggregated: negative answers per NRC (ascending), positive ones
 * per distinct response (the STORE_DIAG_TOP_MAX most frequent, ties by response). */
typedef struct {
	int nnrc;
	struct {
		int nrc;
		char name[48];
		int64_t count;
	} nrc[256];
	int ntop;
	struct {
		char *response; /* hex, malloc'd */
		int64_t count;
	} top[STORE_DIAG_TOP_MAX];
	int64_t distinct_responses; /* of positive answers, all of them */
} store_diag_agg;

void store_diag_agg_clear(store_diag_agg *a);
int store_diag_aggregate(store *s, const char *batch_id, store_diag_agg *out) PQ_MUST_CHECK;

#endif
