/* release_rollout.c: a release posted with a "rollout" (POST /api/v1/releases, docs/api.md
 * 7.6, 12.10) rolls out on its own: the rollout is checked with the release's other fields, and
 * once the release is stored a continuous campaign for it is created and started (its
 * catch-up pass admits the vehicles known to need it; cmp_admit the others as they
 * report, which the release announcement prompts them to do). */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "server/campaign.h"
#include "server/campaign_int.h"
#include "server/control.h"
#include "server/releases_int.h"

bool rel_rollout_check(srv_ctx *c, const json_t *body)
{
	json_t *rollout = json_object_get(body, "rollout"), *spec = NULL;
	if (!rollout || json_is_null(rollout))
		return true;
	int rc = cmp_rollout_spec(rollout, "-", "rollout", &spec);
	json_decref(spec);
	if (rc == PQ_OK)
		return true;
	if (rc == PQ_ERR_INVAL)
		srv_error(c, 400, "bad_request", "rollout: %s", pq_err_detail());
	else
		srv_fail(c, rc, "rollout");
	return false;
}

/* Creates and starts r's continuous campaign from spec; id receives its id. */
static int rollout_start(srv_ctx *c, const json_t *spec, char id[41], int64_t *admitted)
{
	cmp_env env;
	int rc = cmp_create(c->db, spec, c->actor, c->now_ms, id);
	if (rc != PQ_OK)
		return rc;
	srv_audit(c, "campaign.create", id, json_pack("{ss}", "mode", "continuous"));
	ctl_worker_env(c->s, &env);
	rc = cmp_start(c->db, &env, id, c->now_ms, admitted);
	if (rc != PQ_OK)
		return rc;
	cmp__campaign_event(c->db, &env, id, c->now_ms);
	srv_audit(c, "campaign.start", id, json_pack("{sI}", "targeted", (json_int_t)*admitted));
	return PQ_OK;
}

void rel_rollout_start(srv_ctx *c, const store_release *r, const json_t *body, json_t *out)
{
	json_t *rollout = json_object_get(body, "rollout"), *spec = NULL;
	if (!rollout || json_is_null(rollout))
		return;
	char name[160], id[41] = "";
	int64_t admitted = 0;
	snprintf(name, sizeof(name), "rollout of %.64s %.64s", r->ecu_id, r->version);
	int rc = cmp_rollout_spec(rollout, r->id, name, &spec);
	if (rc == PQ_OK)
		rc = rollout_start(c, spec, id, &admitted);
	json_decref(spec);
	if (rc == PQ_OK) {
		if (out)
			json_object_set_new(out, "rollout_campaign_id", json_string(id));
		pq_log(PQ_LOG_INFO, "releases",
		       "release %s rolls out: continuous campaign %s (%lld "
		       "vehicle(s) at start)",
		       r->id, id, (long long)admitted);
		return;
	}
	/* the release stays (it was checked and stored); the operator starts a campaign */
	pq_log(PQ_LOG_WARN, "releases", "release %s: rollout not started: %s", r->id,
	       pq_err_detail());
	if (out) {
		json_object_set_new(out, "rollout_campaign_id",
		                    id[0] ? json_string(id) : json_null());
		json_object_set_new(out, "rollout_error", json_string(pq_err_detail()));
	}
}
