/* bundle_store.h: campaign bundles (docs/api.md 18): the record of each bundle the server
 * took (its id, its full_package.bin's SHA-256 and size, and the record JSON the API shows),
 * so the image repository can list every bundle and the API can page through them. Same rules
 * as store.h: validated input (PQ_ERR_INVAL / PQ_ERR_RANGE), PQ_ERR_NOTFOUND for what is not
 * there. */
#ifndef PQOTA_STORE_BUNDLE_STORE_H
#define PQOTA_STORE_BUNDLE_STORE_H

#include <stdint.h>

#include "store/store.h"

#define STORE_BUNDLE_RECORD_MAX (8u << 20) /* the record's JSON text: 4096 units' manifest */

typedef struct {
	char id[STORE_ID_MAX + 1];
	char file_sha256[65];
	int64_t file_size;
	int64_t created_ms;
	char *record; /* JSON object text (owned) */
} store_bundle;

void store_bundle_clear(store_bundle *b);

/* Stores a new bundle; PQ_ERR_EXISTS when its id is taken. */
int store_bundle_insert(store *s, const store_bundle *b) PQ_MUST_CHECK;

int store_bundle_get(store *s, const char *id, store_bundle *out) PQ_MUST_CHECK;

/* A page of bundles, newest first, and the total. */
int store_bundle_list(store *s, const store_page *pg, int (*fn)(const store_bundle *b, void *user),
                      void *user, int64_t *total) PQ_MUST_CHECK;

#endif
