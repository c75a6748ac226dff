/* ecu_registry.h: the fleet-wide ECU registry (GET /api/v1/ecus, docs/api.md "Compatibility
 * routes"): every vehicle's ECUs in one stable order (VIN, then ECU id), filtered by ECU id,
 * hardware id and APP version, paged by key (the last row's VIN and ECU id), so a page costs
 * the same at row 10 as at row 1,000,000 (schema v11 indexes the filters). Same rules as
 * store.h: bounded, validated input (PQ_ERR_INVAL), rows valid only during the callback. */
#ifndef PQOTA_STORE_ECU_REGISTRY_H
#define PQOTA_STORE_ECU_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

typedef struct {
	const char *ecu_id;      /* NULL: any */
	const char *hardware_id; /* NULL: any */
	const char *version;     /* the APP version; NULL: any */
	/* the key after which the page starts (both or neither; "" or NULL: from the start) */
	const char *after_vin, *after_ecu;
} store_ecu_filter;

/* Up to limit (1..STORE_PAGE_MAX) ECUs matching f after its key, in (VIN, ECU id) order;
 * *more says whether another page follows. */
int store_ecu_registry(store *s, const store_ecu_filter *f, int limit,
                       int (*fn)(const store_ecu *e, void *user), void *user,
                       bool *more) PQ_MUST_CHECK;

typedef struct {
	char version[STORE_VERSION_MAX + 1];
	int64_t vehicles;
} store_ecu_version_count;

/* How many vehicles carry ECU ecu_id at each APP version, most first (then by version); at
 * most limit (1..STORE_PAGE_MAX) versions. *total: the vehicles with that ECU (0: none). */
int store_ecu_versions(store *s, const char *ecu_id, int limit,
                       int (*fn)(const store_ecu_version_count *v, void *user), void *user,
                       int64_t *total) PQ_MUST_CHECK;

#endif
