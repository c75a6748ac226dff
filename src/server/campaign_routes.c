/* campaign_routes.c: the campaign REST routes (docs/api.md) over the engine (campaign.h),
 * and the seed's aliases. State changes that need messages (cancel) queue them for the
 * control plane through srv_publish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "core/log.h"
#include "server/bundles.h"
#include "server/campaign.h"
#include "server/campaign_int.h"
#include "server/control.h"
#include "server/routes.h"
#include "server/server.h"

#define GET  EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST

/* Campaign ids: generated UUIDs or the operator's (cmp_id_valid); anything else cannot
 * name one. */
static bool id_ok(srv_ctx *c, const char *id)
{
	if (cmp_id_valid(id))
		return true;
	srv_error(c, 404, "not_found", "no campaign '%.64s'", id);
	return false;
}

void cmp_srv_event(void *user, const char *type, json_t *data)
{
	if (user)
		srv_event(user, type, data);
	else
		json_decref(data);
}

/* The engine's env for a worker, with the live events. */
static void worker_env(srv_ctx *c, cmp_env *env)
{
	ctl_worker_env(c->s, env);
	env->event = cmp_srv_event;
}

static void send_campaign(srv_ctx *c, int status, const char *id)
{
	json_t *j = NULL;
	int rc = cmp_get_json(c->db, id, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "campaign");
		return;
	}
	srv_json(c, status, j);
}

/* A spec's bundle_id (docs/api.md 18.2): the bundle's releases become its release_ids. */
static int expand_bundle(srv_ctx *c, json_t *spec)
{
	json_t *bid = json_object_get(spec, "bundle_id"), *rec = NULL;
	if (!bid)
		return PQ_OK;
	if (!json_is_string(bid) || json_object_get(spec, "release_ids"))
		return pq_err_set(PQ_ERR_INVAL, "bundle_id: a bundle's id, without release_ids");
	int rc = bnd_load(c->db, json_string_value(bid), &rec);
	if (rc == PQ_ERR_NOTFOUND)
		rc = pq_err_set(PQ_ERR_INVAL, "bundle_id: no bundle %.40s", json_string_value(bid));
	if (rc == PQ_OK &&
	    json_object_set(spec, "release_ids", json_object_get(rec, "release_ids")) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "campaign");
	json_decref(rec);
	return rc;
}

static void h_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	char id[STORE_ID_MAX + 1];
	if (!b)
		return;
	if (!srv_query_only(c, NULL)) {
		json_decref(b);
		return;
	}
	int rc = expand_bundle(c, b);
	if (rc == PQ_OK)
		rc = cmp_create(c->db, b, c->actor, c->now_ms, id);
	json_decref(b);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "campaign");
		return;
	}
	srv_audit(c, "campaign.create", id, NULL);
	char loc[96];
	snprintf(loc, sizeof(loc), "/api/v1/campaigns/%s", id);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	send_campaign(c, 201, id);
}

static void h_list(srv_ctx *c)
{
	store_page pg;
	json_t *j = NULL;
	if (!srv_query_only(c, route_page_query) || !srv_page(c, &pg))
		return;
	int rc = cmp_list_json(c->db, &pg, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "listing campaigns");
		return;
	}
	srv_json(c, 200, j);
}

static void h_get(srv_ctx *c)
{
	if (srv_query_only(c, NULL) && id_ok(c, c->params[0]))
		send_campaign(c, 200, c->params[0]);
}

/* POST /api/v1/campaigns/{id}/{action} */
static void h_action(srv_ctx *c)
{
	const char *id = c->params[0], *action = c->params[1];
	cmp_env env;
	int rc;
	int64_t n = 0;
	if (!srv_query_only(c, NULL) || !id_ok(c, id))
		return;
	worker_env(c, &env);
	if (strcmp(action, "start") == 0) {
		rc = cmp_start(c->db, &env, id, c->now_ms, &n);
	} else if (strcmp(action, "pause") == 0) {
		rc = cmp_pause(c->db, id, "paused by operator", c->now_ms);
	} else if (strcmp(action, "resume") == 0) {
		rc = cmp_resume(c->db, id, c->now_ms);
	} else if (strcmp(action, "cancel") == 0) {
		rc = cmp_cancel(c->db, &env, id, c->now_ms);
	} else {
		srv_error(c, 404, "not_found",
		          "no campaign action '%.32s' (start, pause, resume, "
		          "cancel)",
		          action);
		return;
	}
	/* the engine refuses an action from the wrong state with PQ_ERR_INVAL: a conflict with
	 * the campaign's state, not a bad request */
	if (rc == PQ_ERR_EXISTS || rc == PQ_ERR_INVAL) {
		srv_error(c, 409, "bad_state", "%s: %s", action, pq_err_detail());
		return;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, action);
		return;
	}
	cmp__campaign_event(c->db, &env, id, c->now_ms);
	char what[128];
	snprintf(what, sizeof(what), "campaign.%s", action);
	srv_audit(c, what, id,
	          strcmp(action, "start") == 0 ? json_pack("{sI}", "targeted", (json_int_t)n)
	                                       : NULL);
	send_campaign(c, 200, id);
}

static void h_deploy(srv_ctx *c)
{
	const char *id = c->params[0], *vin = c->params[1];
	cmp_env env;
	store_campaign before;
	if (!srv_query_only(c, NULL) || !id_ok(c, id))
		return;
	worker_env(c, &env);
	bool was_draft = false;
	if (store_campaign_get(c->db, id, &before) == PQ_OK) {
		was_draft = before.state == STORE_CMP_DRAFT;
		store_campaign_clear(&before);
	}
	int rc = cmp_deploy_one(c->db, &env, id, vin, c->now_ms);
	if (rc == PQ_ERR_EXISTS || rc == PQ_ERR_INVAL) {
		srv_error(c, 409, "bad_state", "deploy: %s", pq_err_detail());
		return;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deploy");
		return;
	}
	if (was_draft) /* a draft is running now */
		cmp__campaign_event(c->db, &env, id, c->now_ms);
	srv_audit(c, "campaign.deploy", id, json_pack("{ss}", "vin", vin));
	json_t *j = NULL;
	rc = cmp_vehicle_json(c->db, id, vin, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deployment");
		return;
	}
	srv_json(c, 200, j);
}

static void h_vehicle(srv_ctx *c)
{
	const char *id = c->params[0], *vin = c->params[1];
	json_t *j = NULL;
	if (!srv_query_only(c, NULL) || !id_ok(c, id) || !route_own_vehicle(c, vin))
		return;
	int rc = cmp_vehicle_json(c->db, id, vin, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deployment");
		return;
	}
	srv_json(c, 200, j);
}

/* GET /api/v1/campaigns/{id}/deployments?state=S[,S...]&limit=&offset= */
static void h_deployments(srv_ctx *c)
{
	static const char *const allowed[] = {"state", "limit", "offset", NULL};
	store_page pg;
	uint32_t mask = 0;
	json_t *j = NULL;
	if (!srv_query_only(c, allowed) || !id_ok(c, c->params[0]) || !srv_page(c, &pg))
		return;
	char *states = srv_query(c, "state");
	int rc = states ? cmp_parse_states(states, &mask) : PQ_OK;
	free(states);
	if (rc != PQ_OK) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		return;
	}
	rc = cmp_deployments_json(c->db, c->params[0], mask, &pg, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deployments");
		return;
	}
	srv_json(c, 200, j);
}

/* GET /api/v1/campaigns/{id}/progress */
static void h_progress(srv_ctx *c)
{
	json_t *j = NULL;
	if (!srv_query_only(c, NULL) || !id_ok(c, c->params[0]))
		return;
	int rc = cmp_progress_json(c->db, c->params[0], c->now_ms, 0, &j);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "progress");
		return;
	}
	srv_json(c, 200, j);
}

const srv_route route_campaign_table[] = {
    {POST, "/api/v1/campaigns", SRV_AUTH_OPERATOR, h_create, "create a campaign (draft)"},
    {GET, "/api/v1/campaigns", SRV_AUTH_VIEWER, h_list, "list campaigns"},
    {GET, "/api/v1/campaigns/{id}", SRV_AUTH_VIEWER, h_get,
     "a campaign with counts per state and per phase"},
    {POST, "/api/v1/campaigns/{id}/{action}", SRV_AUTH_OPERATOR, h_action,
     "start, pause, resume or cancel a campaign"},
    {POST, "/api/v1/campaigns/{id}/deploy/{vin}", SRV_AUTH_OPERATOR, h_deploy,
     "deploy a campaign to one vehicle"},
    {GET, "/api/v1/campaigns/{id}/vehicles/{vin}", SRV_AUTH_ANY, h_vehicle,
     "one vehicle's deployment with its transition history"},
    {GET, "/api/v1/campaigns/{id}/deployments", SRV_AUTH_VIEWER, h_deployments,
     "a page of the campaign's deployments, filtered by state"},
    {GET, "/api/v1/campaigns/{id}/progress", SRV_AUTH_VIEWER, h_progress,
     "the campaign's counts per state over time"},
    {GET, "/api/campaigns", SRV_AUTH_VIEWER, h_list, "alias (seed)"},
    {POST, "/api/campaigns", SRV_AUTH_OPERATOR, h_create, "alias (seed)"},
    {POST, "/api/campaigns/{id}/deploy/{vin}", SRV_AUTH_OPERATOR, h_deploy, "alias (seed)"},
    {0, NULL, 0, NULL, NULL},
};
