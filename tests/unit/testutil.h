/* testutil.h: helpers shared by the unit tests (hex, files, temporary directories, assertions). */
#ifndef PQOTA_TESTUTIL_H
#define PQOTA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Decodes hex into a malloc'd buffer (never NULL, even for ""); fails the test on bad hex. */
uint8_t *tu_unhex(const char *hex, size_t *len);

/* The vectors directory ($PQOTA_TESTVECTORS); fails the test when it is missing. */
const char *tu_vectors_dir(void);

/* Makes a fresh temporary directory under $TMPDIR ($TMPDIR/pqota-TAG-XXXXXX); returns its
 * path as a malloc'd string, which the caller frees (after tu_rmtree, usually). */
char *tu_tmpdir(const char *tag);
/* rm -rf */
void tu_rmtree(const char *path);

/* out = dir/name; fails the test if it does not fit in cap bytes. */
void tu_join(char *out, size_t cap, const char *dir, const char *name);
/* Creates or truncates path and writes len bytes of data; fails the test on any error. */
void tu_write_file(const char *path, const void *data, size_t len);

/* The assertion macros below use cmocka's fail_msg: include this file after <cmocka.h>
 * (every unit test already does). */

/* Fails unless expr returns PQ_OK, showing the code and pq_err_detail(). */
#define assert_ok(expr)                                                                            \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != PQ_OK)                                                                  \
			fail_msg("%s failed: %d (%s)", #expr, rc_, pq_err_detail());               \
	} while (0)

/* Fails unless expr returns want, showing the code and pq_err_detail(). */
#define assert_rc(expr, want)                                                                      \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != (want))                                                                 \
			fail_msg("%s: got %d, want %d (%s)", #expr, rc_, (int)(want),              \
			         pq_err_detail());                                                 \
	} while (0)

#endif
