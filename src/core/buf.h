/* buf.h: the one size-capped text builder of pqota (in the spirit of curl's dynbuf).
 *
 * Two kinds, one API:
 *  - growing (pq_buf_init): heap storage that doubles as needed up to `max` bytes of text;
 *    an append past max fails the buffer with PQ_ERR_RANGE, an allocation failure with
 *    PQ_ERR_NOMEM. The first failure sticks: later appends do nothing, and pq_buf_finish
 *    (or pq_buf_err) reports it, so builders append freely and check once at the end.
 *  - fixed (pq_buf_init_fixed): the caller's array; text that does not fit is cut, and the
 *    cut is marked with "..." at the end. For error details and log lines, where a shorter
 *    message beats none. A fixed buffer never fails.
 * The text is always NUL-terminated (the terminator is not counted in len). */
#ifndef PQOTA_CORE_BUF_H
#define PQOTA_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct {
	char *p;    /* the text; NULL in a growing buffer until the first append */
	size_t len; /* bytes of text */
	size_t cap; /* bytes of storage */
	size_t max; /* most bytes of text a growing buffer may hold */
	int err;    /* first failure (PQ_OK while none) */
	bool fixed; /* storage is the caller's */
	bool cut;   /* a fixed buffer dropped text */
} pq_buf;

/* A growing buffer of at most max bytes of text. */
void pq_buf_init(pq_buf *b, size_t max);
/* A fixed buffer over mem[cap] (cap >= 4), starting empty. */
void pq_buf_init_fixed(pq_buf *b, char *mem, size_t cap);

void pq_buf_add(pq_buf *b, const void *data, size_t n);
void pq_buf_str(pq_buf *b, const char *s);
void pq_buf_char(pq_buf *b, char c);
void pq_buf_printf(pq_buf *b, const char *fmt, ...) PQ_PRINTF(2, 3);
void pq_buf_vprintf(pq_buf *b, const char *fmt, va_list ap) PQ_PRINTF(2, 0);

/* The first failure, or PQ_OK. */
int pq_buf_err(const pq_buf *b) PQ_MUST_CHECK;

/* Growing buffers: hands the text to *out (caller frees; "" when nothing was appended) and
 * its length to *len (may be NULL), or frees it and returns the failure with `what` in the
 * detail. The buffer is empty afterwards either way. */
int pq_buf_finish(pq_buf *b, char **out, size_t *len, const char *what) PQ_MUST_CHECK;

/* Frees a growing buffer's storage (NULL-safe, idempotent); empties a fixed one. */
void pq_buf_free(pq_buf *b);

#endif
