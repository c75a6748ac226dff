/* campaign_ops.c: operator actions on a campaign: adding one vehicle (cmp_deploy_one),
 * pause, resume and cancel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

/* ---- one vehicle ------------------------------------------------------------------------- */

/* The deployment of cmp_deploy_one and a draft's start, inside its transaction. */
static int deploy_in_tx(store *db, const store_campaign *c, const cmp_rules *rules,
                        const cmp_cand_list *l, int64_t now_ms)
{
	int64_t n = 0;
	int phase = c->current_phase < 1 ? 1 : c->current_phase;
	int rc = cmp__insert_deployments(db, c, rules, l, phase, now_ms, &n);
	if (rc == PQ_OK && c->state == STORE_CMP_DRAFT)
		rc = store_campaign_set_state(db, c->id, STORE_CMP_DRAFT, STORE_CMP_RUNNING, NULL,
		                              0, now_ms, NULL);
	return rc;
}

/* Adds vin's applicable targets to campaign c. */
static int deploy_vehicle(store *db, const store_campaign *c, const char *vin, int64_t now_ms)
{
	store_vehicle v;
	if (store_vehicle_get(db, vin, &v) != PQ_OK)
		return pq_err_set(PQ_ERR_NOTFOUND, "vehicle %s is not registered", vin);
	store_vehicle_clear(&v);
	if (c->state == STORE_CMP_COMPLETED || c->state == STORE_CMP_CANCELLED)
		return pq_err_set(PQ_ERR_INVAL, "campaign %s is %s", c->id,
		                  store_cmp_state_name(c->state));
	cmp_rules rules;
	cmp_cand_list l = {0};
	int rc = cmp__rules_load(c, &rules);
	if (rc != PQ_OK)
		return rc;
	if ((rc = cmp__resolve(db, c, &rules, vin, &l)) != PQ_OK)
		goto out;
	if (l.n == 0) {
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "no ECU of vehicle %s needs campaign %s's releases", vin, c->id);
		goto out;
	}
	if ((rc = store_begin(db)) != PQ_OK)
		goto out;
	rc = deploy_in_tx(db, c, &rules, &l, now_ms);
	if (rc == PQ_OK)
		rc = store_commit(db);
	else
		store_rollback(db);
out:
	free(l.v);
	cmp__rules_clear(&rules);
	return rc;
}

int cmp_deploy_one(store *db, const cmp_env *env, const char *id, const char *vin, int64_t now_ms)
{
	if (!db || !id || !vin)
		return pq_err_set(PQ_ERR_INVAL, "cmp_deploy_one: bad arguments");
	store_campaign c;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	rc = deploy_vehicle(db, &c, vin, now_ms);
	store_campaign_clear(&c);
	if (rc != PQ_OK)
		return rc;
	if (env && env->instance_id && env->publish)
		return cmp_on_wakeup(db, env, vin, now_ms);
	return PQ_OK;
}

/* ---- pause and resume ------------------------------------------------------------------ */

int cmp_pause(store *db, const char *id, const char *reason, int64_t now_ms)
{
	bool changed = false;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_pause: bad arguments");
	int rc =
	    store_campaign_set_state(db, id, STORE_CMP_RUNNING, STORE_CMP_PAUSED,
	                             reason && *reason ? reason : "operator", 0, now_ms, &changed);
	if (rc == PQ_OK && !changed)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is not running", id);
	return rc;
}

/* paused -> running inside the caller's transaction, and the next phase when the current
 * one has ended. */
static int resume_in_tx(store *db, const store_campaign *c, const cmp_rules *rules,
                        const cmp_counts *cnt, int64_t now_ms)
{
	int p = c->current_phase < 1 ? 1 : c->current_phase;
	bool changed = false;
	int rc = store_campaign_set_state(db, c->id, STORE_CMP_PAUSED, STORE_CMP_RUNNING, NULL,
	                                  p <= CMP_PHASES_MAX ? cmp__phase_failures(cnt, p) : 0,
	                                  now_ms, &changed);
	if (rc != PQ_OK)
		return rc;
	if (!changed)
		return pq_err_set(PQ_ERR_INVAL, "campaign %s changed state concurrently", c->id);
	/* the operator accepts a phase that ended below its success threshold */
	if (p < rules->nphases && cmp__phase_ended(cnt, p))
		return store_campaign_set_phase(db, c->id, c->current_phase, p + 1, now_ms, NULL);
	return PQ_OK;
}

int cmp_resume(store *db, const char *id, int64_t now_ms)
{
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_resume: bad arguments");
	store_campaign c;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	cmp_rules rules;
	cmp_counts cnt;
	memset(&rules, 0, sizeof(rules));
	if (c.state != STORE_CMP_PAUSED) {
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s, not paused", id,
		                store_cmp_state_name(c.state));
		goto out;
	}
	if ((rc = cmp__rules_load(&c, &rules)) != PQ_OK ||
	    (rc = cmp__load_counts(db, id, &cnt)) != PQ_OK || (rc = store_begin(db)) != PQ_OK)
		goto out;
	rc = resume_in_tx(db, &c, &rules, &cnt, now_ms);
	if (rc == PQ_OK)
		rc = store_commit(db);
	else
		store_rollback(db);
out:
	cmp__rules_clear(&rules);
	store_campaign_clear(&c);
	return rc;
}

/* ---- cancel ------------------------------------------------------------------------------- */

/* Cancels deployment d (counted in *moved when this call moved it) and sends its vehicle a
 * `cancel` command when it was notified; a failed publish is only logged. */
static int cancel_one(store *db, const cmp_env *env, const char *id, const store_deployment *d,
                      int64_t now_ms, size_t *moved)
{
	store_dep_update u = {.release_claim = true, .set_next = true, .next_ms = 0};
	bool changed = false;
	int rc = cmp__transition(db, env, id, d->vin, d->state, STORE_DEP_CANCELLED,
	                         "operator: campaign cancelled", now_ms, &u, &changed);
	if (rc != PQ_OK || !changed)
		return rc;
	(*moved)++;
	if (d->state == STORE_DEP_PENDING || !env || !env->publish)
		return PQ_OK;
	json_t *m = cmp__new_msg("cancel", d->vin, id);
	cmp_member mem[] = {{"reason", json_string("campaign cancelled")}};
	rc = cmp__set_members(m, mem, 1);
	if (rc == PQ_OK)
		rc = cmp__publish_json(env, d->vin, "command", m, 1);
	json_decref(m);
	if (rc != PQ_OK)
		pq_log(PQ_LOG_WARN, "engine", "%s: cancel of campaign %s not sent: %s", d->vin, id,
		       pq_err_detail());
	return PQ_OK;
}

/* Every open deployment of campaign id; a page at a time from the start, as cancelled ones
 * leave the filter; stops when a page makes no progress (all moved by others). */
static int cancel_deployments(store *db, const cmp_env *env, const char *id, int64_t now_ms)
{
	store_deployment_filter f = {.state = -1, .phase = -1, .open = true};
	store_page pg = {.limit = STORE_PAGE_MAX};
	for (int round = 0; round < 100000; round++) {
		cmp_dep_vec v = {0};
		size_t moved = 0;
		int rc = store_deployment_list(db, id, &f, &pg, cmp__dep_vec_add, &v, NULL);
		for (size_t i = 0; rc == PQ_OK && i < v.n; i++)
			rc = cancel_one(db, env, id, &v.v[i], now_ms, &moved);
		size_t got = v.n;
		free(v.v);
		if (rc != PQ_OK)
			return rc;
		if (got == 0 || moved == 0)
			break;
	}
	return PQ_OK;
}

int cmp_cancel(store *db, const cmp_env *env, const char *id, int64_t now_ms)
{
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_cancel: bad arguments");
	store_campaign c;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	store_cmp_state from = c.state;
	store_campaign_clear(&c);
	if (from == STORE_CMP_COMPLETED || from == STORE_CMP_CANCELLED)
		return pq_err_set(PQ_ERR_INVAL, "campaign %s is %s", id,
		                  store_cmp_state_name(from));
	bool changed = false;
	rc = store_campaign_set_state(db, id, (int)from, STORE_CMP_CANCELLED, "cancelled", 0,
	                              now_ms, &changed);
	if (rc != PQ_OK)
		return rc;
	if (!changed)
		return pq_err_set(PQ_ERR_INVAL, "campaign %s changed state concurrently", id);
	return cancel_deployments(db, env, id, now_ms);
}
