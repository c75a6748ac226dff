/* session.h: console sessions (docs/api.md "Console sessions"). A session is opened by
 * signing in with an API key; the browser holds its secret in an HttpOnly cookie and the
 * store only its SHA-256. It acts with its key's role, and ends at its expiry, at
 * sign-out, or as soon as its key is revoked (every lookup joins the key). */
#ifndef PQOTA_STORE_SESSION_H
#define PQOTA_STORE_SESSION_H

#include <stdint.h>

#include "store/store.h"

typedef struct {
	char id_sha256[65]; /* SHA-256 of the cookie's secret, lowercase hex */
	char key_id[STORE_ID_MAX + 1];
	char csrf[65]; /* the CSRF token (random hex), sent with every state change */
	int64_t created_ms;
	int64_t expires_ms;
	int64_t revoked_ms; /* 0 while open */
} store_session;

/* PQ_ERR_EXISTS when the hash is taken (a 256-bit secret: never in practice). */
int store_session_insert(store *s, const store_session *ss) PQ_MUST_CHECK;
/* The open session with that hash (not expired at now_ms, not revoked, its key valid) and
 * its key; PQ_ERR_NOTFOUND otherwise. */
int store_session_find(store *s, const char *id_sha256, int64_t now_ms, store_session *out,
                       store_apikey *key) PQ_MUST_CHECK;
/* Ends a session (sign-out); ending an ended or unknown one is PQ_ERR_NOTFOUND. */
int store_session_revoke(store *s, const char *id_sha256, int64_t now_ms) PQ_MUST_CHECK;
/* Deletes sessions that expired or were revoked before before_ms; *n their number. */
int store_session_purge(store *s, int64_t before_ms, int64_t *n) PQ_MUST_CHECK;

#endif
