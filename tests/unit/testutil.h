/* testutil.h: helpers shared by the unit tests (hex, files, temporary directories). */
#ifndef PQOTA_TESTUTIL_H
#define PQOTA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Decodes hex into a malloc'd buffer (never NULL, even for ""); fails the test on bad hex. */
uint8_t *tu_unhex(const char *hex, size_t *len);

/* The vectors directory ($PQOTA_TESTVECTORS); fails the test when it is missing. */
const char *tu_vectors_dir(void);

/* Makes a fresh temporary directory under $TMPDIR; returns a static-lifetime string. */
char *tu_tmpdir(const char *tag);
/* rm -rf */
void tu_rmtree(const char *path);

#endif
