/* fleet.h: the store's views for the operator console's fleet and vehicle pages: one page
 * of vehicles with their VMG version and outstanding campaign (vehicles.c), and one
 * vehicle's deployments over every campaign (fleet.c). Same rules as store.h: bounded,
 * validated input (PQ_ERR_INVAL), rows valid only during the callback. */
#ifndef PQOTA_STORE_FLEET_H
#define PQOTA_STORE_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "store/campaign.h"
#include "store/store.h"

/* The ECU whose APP version is a vehicle's "VMG version" (the agent reports the vehicle
 * gateway itself as this ECU in its VCI). */
#define STORE_VMG_ECU "VMG"

typedef struct {
	store_vehicle v;     /* without keys and VCI (those pointers are NULL) */
	int64_t last_vci_ms; /* when the latest VCI was stored, 0: never */
	bool has_vmg;
	char vmg_version[STORE_VERSION_MAX + 1]; /* the VMG ECU's APP version */
	/* the outstanding (non-terminal) deployment, of the newest campaign if several */
	bool has_campaign;
	char campaign_id[STORE_ID_MAX + 1];
	char campaign_name[STORE_CAMPAIGN_NAME_MAX + 1];
	char dep_state[16]; /* the deployment's state ("pending", "downloading", ...) */
} store_fleet_vehicle;

/* One page of vehicles (ordered by VIN) matching f, as store_vehicle_list, each with its
 * VMG version and outstanding campaign: one COUNT and one SELECT whatever the page size
 * (the joins run on the page's rows only). */
int store_fleet_list(store *s, const store_vehicle_filter *f, const store_page *pg,
                     int (*fn)(const store_fleet_vehicle *v, void *user), void *user,
                     int64_t *total) PQ_MUST_CHECK;

typedef struct {
	char campaign_id[STORE_ID_MAX + 1];
	char campaign_name[STORE_CAMPAIGN_NAME_MAX + 1];
	char state[16]; /* the deployment's state */
	int phase;
	char error_code[STORE_NAME_MAX + 1]; /* "" when none */
	int64_t created_ms;                  /* the campaign's */
	int64_t updated_ms;                  /* the deployment's last change */
} store_vehicle_dep;

/* A vehicle's deployments over every campaign, newest campaign first (then by campaign
 * id). PQ_ERR_NOTFOUND for an unknown vehicle. */
int store_vehicle_deployments(store *s, const char *vin, const store_page *pg,
                              int (*fn)(const store_vehicle_dep *d, void *user), void *user,
                              int64_t *total) PQ_MUST_CHECK;

#endif
