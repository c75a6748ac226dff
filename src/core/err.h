/* err.h: the one error convention of pqota.
 *
 * Functions that can fail return a pq_err: 0 on success, a negative code otherwise.
 * Alongside the code, the failing function records a human-readable detail in a
 * thread-local buffer (pq_err_detail()); callers higher up may prepend context with
 * pq_err_wrap(). Crypto failures append OpenSSL's error queue text. */
#ifndef PQOTA_CORE_ERR_H
#define PQOTA_CORE_ERR_H

#include <stddef.h>

#define PQ_MUST_CHECK   __attribute__((warn_unused_result))
#define PQ_PRINTF(a, b) __attribute__((format(printf, a, b)))

typedef enum {
	PQ_OK = 0,
	PQ_ERR_NOMEM = -1,       /* allocation failed */
	PQ_ERR_INVAL = -2,       /* invalid argument or input */
	PQ_ERR_CRYPTO = -3,      /* a cryptographic operation failed (OpenSSL) */
	PQ_ERR_VERIFY = -4,      /* signature, tag or hash did not verify */
	PQ_ERR_IO = -5,          /* file or socket I/O */
	PQ_ERR_FORMAT = -6,      /* malformed encoded data */
	PQ_ERR_UNSUPPORTED = -7, /* algorithm or feature not available */
	PQ_ERR_TLS = -8,         /* TLS handshake or connection */
	PQ_ERR_NOTFOUND = -9,    /* no such file, key, profile, ... */
	PQ_ERR_RANGE = -10,      /* value or size out of bounds */
	PQ_ERR_EXISTS = -11,     /* would overwrite something that exists */
	PQ_ERR_TIMEOUT = -12,    /* deadline passed */
	PQ_ERR_CANCELLED = -13,  /* the caller asked the operation to stop */
} pq_err;

/* Short, static description of a code ("verification failed"). */
const char *pq_strerror(int err);

/* The detail recorded by the most recent failure on this thread ("" if none). */
const char *pq_err_detail(void);

/* Records a detail for `err` and returns `err`, so failures read
 * `return pq_err_set(PQ_ERR_INVAL, "bad length %zu", n);`. */
int pq_err_set(int err, const char *fmt, ...) PQ_PRINTF(2, 3);

/* Like pq_err_set, appending OpenSSL's error queue (which it then clears). */
int pq_err_ssl(int err, const char *fmt, ...) PQ_PRINTF(2, 3);

/* Prepends context to the current detail: "loading key x.pem: <previous detail>". */
int pq_err_wrap(int err, const char *fmt, ...) PQ_PRINTF(2, 3);

/* Clears the detail (and OpenSSL's error queue). */
void pq_err_clear(void);

#endif
