/* kat.h: reading the known-answer vector files (../shared/testvectors) and checking that
 * every group of cases ran, against the file's own counts block. */
#ifndef PQOTA_TEST_KAT_H
#define PQOTA_TEST_KAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

/* Loads NAME from the vectors directory; fails the test unless it has want_cases cases. */
json_t *kat_load(const char *name, size_t want_cases);

/* Field accessors; a missing required field fails the test. */
const char *kat_str(json_t *c, const char *key);
bool kat_has(json_t *c, const char *key);
bool kat_bool(json_t *c, const char *key);
/* Hex field decoded into a malloc'd buffer (caller frees). */
uint8_t *kat_hex(json_t *c, const char *key, size_t *len);

/* Prints "FAIL <id>: <message>" and returns false. */
bool kat_fail(const char *id, const char *fmt, ...) PQ_PRINTF(2, 3);

/* Compares bytes; on a difference prints where and returns false. */
bool kat_bytes_match(const char *id, const char *what, const uint8_t *got, size_t got_len,
                     const uint8_t *want, size_t want_len);

#define KAT_MAX_GROUPS 48

struct kat_tally_entry {
	char key[96];      /* key of the file's counts block */
	const char *label; /* summary line it is added to */
	long ran, failed;
};

struct kat_tally {
	struct kat_tally_entry e[KAT_MAX_GROUPS];
	int n;
};

/* Records one case that ran under counts key `key`; ok = false when it failed. */
void kat_tally_case(struct kat_tally *t, const char *label, const char *key, bool ok);

/* Prints one line per label, then asserts that every counts key ran exactly its number of
 * cases, that nothing ran outside them, that the total is `total` and that nothing failed. */
void kat_tally_finish(struct kat_tally *t, json_t *root, long total);

#endif
