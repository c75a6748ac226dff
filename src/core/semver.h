/* semver.h: semantic versions (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], semver.org 2.0.0)
 * and their precedence: numeric fields compare as numbers (1.5.0 > 1.4.10), a release
 * outranks its pre-releases, build metadata is ignored. */
#ifndef PQOTA_CORE_SEMVER_H
#define PQOTA_CORE_SEMVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SEMVER_MAX 64 /* longest accepted text */

typedef struct {
	uint64_t major, minor, patch;
	char pre[SEMVER_MAX];   /* "" or "rc.1" */
	char build[SEMVER_MAX]; /* "" or "exp.sha.5114f85" */
} semver;

/* Strict parse: no leading zeros in numbers, identifiers of [0-9A-Za-z-], an optional
 * leading 'v' is refused (store and compare canonical text only). */
int semver_parse(const char *s, semver *out) PQ_MUST_CHECK;
/* <0, 0, >0 by precedence. */
int semver_cmp(const semver *a, const semver *b);
/* Parses both and compares; PQ_ERR_INVAL if either is malformed. */
int semver_cmp_str(const char *a, const char *b, int *result) PQ_MUST_CHECK;
/* The release counter of a version, one integer that orders releases as their versions do
 * (to pre-release granularity): major * 10^12 + minor * 10^6 + patch, one less for a
 * pre-release (all of a version's pre-releases share it). PQ_ERR_INVAL when malformed,
 * PQ_ERR_RANGE when a field is 10^6 or more. The same number the Uptane targets' custom
 * release_counter carries (usrv_release_counter). */
int semver_counter(const char *version, int64_t *out) PQ_MUST_CHECK;

#endif
