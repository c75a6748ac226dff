/* compat_ecus.c: the fleet-wide ECU registry of the compatibility layer (docs/api.md 17.3):
 * GET /api/v1/ecus (filters ecu_id, hardware_id, version), GET /api/v1/ecus/{ecu_id} (the
 * same, for one ECU id) and GET /api/v1/ecus/{ecu_id}/version (vehicles per version).
 * Pages are keyed, not counted: ?after=VIN/ECU_ID (the `next` of the previous page), in
 * (VIN, ECU id) order, so the 10,000th page of a 1,000,000-ECU fleet costs what the first
 * does (store/ecu_registry.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/compat.h"
#include "server/routes.h"
#include "server/server.h"
#include "store/ecu_registry.h"

#define REG_DEFAULT_LIMIT 100

static const char *const registry_query[] = {"ecu_id", "hardware_id", "version",
                                             "limit",  "after",       NULL};
static const char *const one_ecu_query[] = {"hardware_id", "version", "limit", "after", NULL};

typedef struct {
	json_t *items;
	char last[STORE_VIN_MAX + 1 + STORE_NAME_MAX + 1]; /* "VIN/ECU" of the last row */
} reg_page;

static int registry_cb(const store_ecu *e, void *user)
{
	reg_page *p = user;
	json_t *j = route_ecu_json(e);
	if (!j || json_object_set_new(j, "vin", json_string(e->vin)) ||
	    json_array_append_new(p->items, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ECU registry");
	snprintf(p->last, sizeof(p->last), "%s/%s", e->vin, e->ecu_id);
	return PQ_OK;
}

/* after=VIN/ECU_ID split at its first '/' into the filter (pointing into *after); false
 * (400 sent) when it is not that. */
static bool page_key(srv_ctx *c, char *after, store_ecu_filter *f)
{
	char *slash = after ? strchr(after, '/') : NULL;
	if (!after)
		return true;
	if (!slash || slash == after || !slash[1]) {
		srv_error(c, 400, "bad_request",
		          "after must be VIN/ECU_ID (the previous page's next)");
		return false;
	}
	*slash = '\0';
	f->after_vin = after;
	f->after_ecu = slash + 1;
	return true;
}

void compat_ecus(srv_ctx *c)
{
	bool one = c->nparams == 1; /* /api/v1/ecus/{ecu_id} */
	int64_t limit = 0;
	if (!srv_query_only(c, one ? one_ecu_query : registry_query) ||
	    !srv_query_int(c, "limit", 1, STORE_PAGE_MAX, REG_DEFAULT_LIMIT, &limit))
		return;
	char *ecu = one ? NULL : srv_query(c, "ecu_id"), *hw = srv_query(c, "hardware_id"),
	     *ver = srv_query(c, "version"), *after = srv_query(c, "after");
	store_ecu_filter f = {
	    .ecu_id = one ? c->params[0] : ecu, .hardware_id = hw, .version = ver};
	reg_page p = {.items = json_array()};
	bool more = false;
	if (!page_key(c, after, &f))
		goto out;
	int rc = p.items ? store_ecu_registry(c->db, &f, (int)limit, registry_cb, &p, &more)
	                 : pq_err_set(PQ_ERR_NOMEM, "ECU registry");
	if (rc != PQ_OK) {
		srv_fail(c, rc, "ECU registry");
		goto out;
	}
	if (one && json_array_size(p.items) == 0 && !f.after_vin && !hw && !ver) {
		srv_error(c, 404, "not_found", "no vehicle has an ECU '%s'", c->params[0]);
		goto out;
	}
	srv_json(c, 200,
	         json_pack("{s:O,s:I,s:o}", "items", p.items, "limit", (json_int_t)limit, "next",
	                   more ? json_string(p.last) : json_null()));
out:
	json_decref(p.items);
	free(ecu);
	free(hw);
	free(ver);
	free(after);
}

static int version_cb(const store_ecu_version_count *v, void *user)
{
	json_t *j =
	    json_pack("{s:s,s:I}", "version", v->version, "vehicles", (json_int_t)v->vehicles);
	if (json_array_append_new(user, j) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ECU versions");
	return PQ_OK;
}

static const char *const versions_query[] = {"limit", NULL};

void compat_ecu_versions(srv_ctx *c)
{
	int64_t limit = 0, total = 0;
	if (!srv_query_only(c, versions_query) ||
	    !srv_query_int(c, "limit", 1, STORE_PAGE_MAX, REG_DEFAULT_LIMIT, &limit))
		return;
	json_t *items = json_array();
	int rc =
	    items ? store_ecu_versions(c->db, c->params[0], (int)limit, version_cb, items, &total)
	          : pq_err_set(PQ_ERR_NOMEM, "ECU versions");
	if (rc == PQ_OK && total == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no vehicle has an ECU '%s'", c->params[0]);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "ECU versions");
		return;
	}
	srv_json(c, 200,
	         json_pack("{s:s,s:o,s:I}", "ecu_id", c->params[0], "versions", items, "vehicles",
	                   (json_int_t)total));
}
