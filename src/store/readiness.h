/* readiness.h: on-demand readiness checks (docs/api.md "Readiness now"): an operator's
 * request_ota_readiness outside any campaign and the vehicle's answer, the newest
 * STORE_READINESS_KEEP kept per vehicle. Same rules as store.h: validated input
 * (PQ_ERR_INVAL / PQ_ERR_RANGE), PQ_ERR_NOTFOUND for what is not there. */
#ifndef PQOTA_STORE_READINESS_H
#define PQOTA_STORE_READINESS_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_READINESS_KEEP       20   /* checks kept per vehicle */
#define STORE_READINESS_PREREQ_MAX 512  /* prerequisites JSON text */
#define STORE_READINESS_ANSWER_MAX 4096 /* answer JSON text */

typedef struct {
	char id[STORE_ID_MAX + 1]; /* the request's message id */
	char vin[STORE_VIN_MAX + 1];
	char actor[96];
	char *prerequisites; /* JSON object text (owned) */
	int64_t requested_ms, expires_ms;
	int64_t answered_ms; /* 0 while unanswered */
	int ready;           /* 1 / 0 once answered, -1 before */
	char *answer;        /* JSON text {"checks","reason"} once answered, else NULL (owned) */
} store_readiness;

void store_readiness_clear(store_readiness *r);

/* Records a new request (answered_ms, ready and answer ignored) and deletes the vehicle's
 * oldest beyond STORE_READINESS_KEEP. PQ_ERR_NOTFOUND: no such vehicle. */
int store_readiness_add(store *s, const store_readiness *r) PQ_MUST_CHECK;

/* The check id of vehicle vin; with id NULL its newest. PQ_ERR_NOTFOUND when none. */
int store_readiness_get(store *s, const char *vin, const char *id,
                        store_readiness *out) PQ_MUST_CHECK;

/* Records the vehicle's answer to check id of vin, once and only while it is unanswered and
 * now_ms <= expires_ms: *stored says whether it was. PQ_ERR_NOTFOUND: no such check of that
 * vehicle. */
int store_readiness_answer(store *s, const char *vin, const char *id, bool ready,
                           const char *answer, int64_t now_ms, bool *stored) PQ_MUST_CHECK;

#endif
