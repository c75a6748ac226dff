/* fleet.c: one vehicle's deployments over every campaign (fleet.h), once for both
 * backends. */
#include <string.h>

#include "store/fleet.h"
#include "store/store_int.h"

typedef struct {
	int (*fn)(const store_vehicle_dep *d, void *user);
	void *user;
} vdep_ctx;

static int vdep_row(const store_row *r, void *user)
{
	vdep_ctx *c = user;
	store_vehicle_dep d;
	memset(&d, 0, sizeof(d));
	store__rd rd = store__rd_at(r, 0);
	store__rd_copy(&rd, d.campaign_id, sizeof(d.campaign_id));
	store__rd_copy(&rd, d.campaign_name, sizeof(d.campaign_name));
	store__rd_copy(&rd, d.state, sizeof(d.state));
	store__rd_int(&rd, &d.phase);
	store__rd_copy(&rd, d.error_code, sizeof(d.error_code));
	store__rd_i64(&rd, &d.created_ms);
	store__rd_i64(&rd, &d.updated_ms);
	return rd.rc == PQ_OK ? c->fn(&d, c->user) : rd.rc;
}

int store_vehicle_deployments(store *s, const char *vin, const store_page *pg,
                              int (*fn)(const store_vehicle_dep *d, void *user), void *user,
                              int64_t *total)
{
	int64_t limit, offset;
	if (total)
		*total = 0;
	if (!s)
		return pq_err_set(PQ_ERR_INVAL, "store_vehicle_deployments: no store");
	int rc = store__page_args(pg, &limit, &offset);
	if (rc == PQ_OK)
		rc = store__check_vin(vin);
	if (rc == PQ_OK)
		rc = store__vehicle_exists(s, vin);
	if (rc != PQ_OK)
		return rc;
	store_val p[] = {SV_TEXT(vin), SV_INT(limit), SV_INT(offset)};
	rc = store__count_rows(s, "deployments WHERE vin = ?", p, 1, total);
	if (rc != PQ_OK || !fn)
		return rc;
	vdep_ctx c = {.fn = fn, .user = user};
	return store_exec(s,
	                  "SELECT d.campaign_id, c.name, d.state, d.phase, d.error_code,"
	                  " c.created_ms, d.updated_ms FROM deployments d"
	                  " JOIN campaigns c ON c.id = d.campaign_id WHERE d.vin = ?"
	                  " ORDER BY c.created_ms DESC, d.campaign_id LIMIT ? OFFSET ?",
	                  p, 3, vdep_row, &c, NULL);
}
