/* campaign_notify.c: what the engine sends vehicles (ota_campaign, request_ota_readiness,
 * ota_campaign_metadata), the claimed periodic work (notify, retry, timeout, the resends
 * of a wake-up) and each running campaign's upkeep (auto-pause, phase advance,
 * completion): cmp_tick and cmp_on_wakeup. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

#define CAMPAIGNS_PER_TICK 500

static int lease_of(const cmp_env *env)
{
	return env && env->lease_ms > 0 ? (int)env->lease_ms : CMP_DEFAULT_LEASE_MS;
}

static int batch_of(const cmp_env *env)
{
	if (!env || env->batch <= 0)
		return CMP_DEFAULT_BATCH;
	return env->batch > STORE_PAGE_MAX ? STORE_PAGE_MAX : env->batch;
}

/* ---- messages to vehicles ---------------------------------------------------------------- */

/* Publishes ota_campaign to the vehicle. */
static int send_campaign(store *db, const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *targets = NULL;
	int64_t size = 0;
	int rc = cmp__targets_json(db, k->c.id, vin, &targets, &size);
	if (rc != PQ_OK)
		return rc;
	const json_t *p = k->rules.policy;
	json_t *deadline = json_object_get(p, "deadline");
	json_t *notes = json_object_get(p, "release_notes");
	json_t *pre = json_object_get(p, "prerequisites");
	bool consent = json_is_true(json_object_get(p, "consent_required"));
	json_t *m = cmp__new_msg("ota_campaign", vin, k->c.id);
	cmp_member mem[] = {
	    {"name", json_string(k->c.name)},
	    {"release_notes", notes ? json_copy(notes) : json_string("")},
	    {"targets", targets},
	    {"download_size", json_integer(size)},
	    {"consent_required", json_boolean(consent)},
	    {"deadline", deadline ? json_copy(deadline) : json_null()},
	    {"prerequisites", pre ? json_copy(pre) : json_object()},
	};
	rc = cmp__set_members(m, mem, sizeof(mem) / sizeof(mem[0]));
	if (rc == PQ_OK)
		rc = cmp__publish_json(env, vin, "ota/campaign", m, 2);
	json_decref(m);
	return rc;
}

static int send_readiness(const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *pre = json_object_get(k->rules.policy, "prerequisites");
	json_t *m = cmp__new_msg("request_ota_readiness", vin, k->c.id);
	cmp_member mem[] = {{"prerequisites", pre ? json_copy(pre) : json_object()}};
	int rc = cmp__set_members(m, mem, 1);
	if (rc == PQ_OK)
		rc = cmp__publish_json(env, vin, "command", m, 1);
	json_decref(m);
	return rc;
}

/* m = the envelope, completed with body's members and, where the body has none, the
 * policy's install_order and rollback_policy. */
static int metadata_msg(json_t *m, json_t *body, const json_t *policy)
{
	json_t *order = json_object_get(policy, "install_order");
	json_t *rb = json_object_get(policy, "rollback_policy");
	if (!m || !json_is_object(body) || json_object_update_missing(m, body) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ota_campaign_metadata");
	if (order && !json_object_get(m, "install_order") &&
	    json_object_set(m, "install_order", order) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ota_campaign_metadata");
	if (rb && !json_object_get(m, "rollback_policy") &&
	    json_object_set(m, "rollback_policy", rb) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "ota_campaign_metadata");
	return PQ_OK;
}

int cmp__send_metadata(store *db, const cmp_env *env, const cmp_cache *k, const char *vin)
{
	json_t *body = NULL;
	if (!env || !env->metadata)
		return pq_err_set(PQ_ERR_INVAL, "campaign engine: no metadata callback");
	int rc = env->metadata(env->user, db, k->c.id, vin, &body);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "metadata for %s", vin);
	json_t *m = cmp__new_msg("ota_campaign_metadata", vin, k->c.id);
	rc = metadata_msg(m, body, k->rules.policy);
	if (rc == PQ_OK)
		rc = cmp__publish_json(env, vin, "ota/metadata", m, 2);
	json_decref(m);
	json_decref(body);
	return rc;
}

int cmp__accepted_step(store *db, const cmp_env *env, const cmp_cache *k, const char *vin,
                       int64_t now_ms, cmp_tick_stats *st, store_dep_update *u)
{
	int rc;
	u->set_next = true;
	if (k->rules.has_prereq) {
		rc = send_readiness(env, k, vin);
		u->next_ms =
		    now_ms + (rc == PQ_OK ? k->rules.readiness_retry_ms : CMP_PUBLISH_RETRY_MS);
		if (st && rc == PQ_OK)
			st->readiness_asked++;
	} else {
		rc = cmp__send_metadata(db, env, k, vin);
		u->next_ms = rc == PQ_OK ? 0 : now_ms + CMP_PUBLISH_RETRY_MS;
		if (st && rc == PQ_OK)
			st->metadata_sent++;
	}
	if (rc != PQ_OK && st)
		st->publish_failed++;
	return rc;
}

/* ---- claimed work ------------------------------------------------------------------------ */

typedef struct {
	store *db;
	const cmp_env *env;
	int64_t now;
	cmp_tick_stats *st;
	cmp_cache cache;
} work_ctx;

static int do_notify(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cmp__cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	bool re = d->state == STORE_DEP_POSTPONED;
	if (send_campaign(w->db, w->env, &w->cache, d->vin) != PQ_OK) {
		/* keep the claim: retried when its lease ends */
		if (w->st)
			w->st->publish_failed++;
		return PQ_OK;
	}
	store_dep_update u = {.notified = true,
	                      .set_last_msg = true,
	                      .last_msg_ms = w->now,
	                      .set_next = true,
	                      .next_ms = 0,
	                      .release_claim = true};
	bool changed = false;
	rc = cmp__transition(w->db, w->env, d->campaign_id, d->vin, d->state, STORE_DEP_NOTIFIED,
	                     re ? "engine: re-notified after postponement" : "engine: notified",
	                     w->now, &u, &changed);
	if (rc == PQ_OK && changed && w->st) {
		if (re)
			w->st->renotified++;
		else
			w->st->notified++;
	}
	return rc;
}

static int do_retry(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	if (d->state == STORE_DEP_POSTPONED)
		return do_notify(d, user);
	int rc = cmp__cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {.release_claim = true};
	(void)cmp__accepted_step(w->db, w->env, &w->cache, d->vin, w->now, w->st, &u);
	return store_deployment_update(w->db, d->campaign_id, d->vin, STORE_DEP_ACCEPTED, w->now,
	                               &u, NULL);
}

static int do_timeout(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cmp__cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {.error_code = "timeout",
	                      .release_claim = true,
	                      .idle_before = w->now - w->cache.c.vehicle_timeout_ms};
	char cause[96];
	snprintf(cause, sizeof(cause), "engine: no vehicle message for %lld s",
	         (long long)(w->cache.c.vehicle_timeout_ms / 1000));
	bool changed = false;
	rc = cmp__transition(w->db, w->env, d->campaign_id, d->vin, d->state, STORE_DEP_TIMED_OUT,
	                     cause, w->now, &u, &changed);
	if (rc != PQ_OK)
		return rc;
	if (!changed)
		return store_deployment_release(w->db, d->campaign_id, d->vin, w->env->instance_id);
	if (w->st)
		w->st->timed_out++;
	return PQ_OK;
}

/* ---- campaign upkeep --------------------------------------------------------------------- */

static bool all_ended(const cmp_counts *cnt)
{
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (!store_dep_state_terminal((store_dep_state)s) && cnt->total[s] > 0)
			return false;
	return true;
}

/* running -> to, counted in *counter (optional) when it changed. */
static int leave_running(store *db, const cmp_env *env, const char *id, store_cmp_state to,
                         const char *reason, int64_t now_ms, int64_t *counter)
{
	bool changed = false;
	int rc =
	    store_campaign_set_state(db, id, STORE_CMP_RUNNING, to, reason, 0, now_ms, &changed);
	if (rc == PQ_OK && changed && counter)
		(*counter)++;
	if (rc == PQ_OK && changed)
		cmp__campaign_event(db, env, id, now_ms);
	return rc;
}

/* What a running campaign c needs now, from its deployment counts: completion when every
 * deployment ended, an auto-pause when its current phase failed too often or ended below
 * its success threshold, else the next phase once the success threshold is reached. */
static int upkeep_decide(store *db, const cmp_env *env, const store_campaign *c,
                         const cmp_rules *rules, const cmp_counts *cnt, int64_t now_ms,
                         cmp_tick_stats *st)
{
	char reason[STORE_REASON_MAX + 1];
	/* a continuous campaign completes only after its ends_at, when its deployments ended */
	if (all_ended(cnt) && !cmp__admitting(rules, now_ms))
		return leave_running(db, env, c->id, STORE_CMP_COMPLETED, NULL, now_ms,
		                     st ? &st->completed : NULL);
	int p = c->current_phase < 1 ? 1 : c->current_phase;
	if (p > rules->nphases)
		p = rules->nphases;
	const cmp_phase_spec *ps = &rules->phases[p - 1];
	int64_t size = cmp__phase_size(cnt, p), fails = cmp__phase_failures(cnt, p);
	if (size > 0 && (double)(fails - c->resume_failures) > ps->error * (double)size) {
		snprintf(reason, sizeof(reason),
		         "auto_paused: phase %d: %lld of %lld deployments failed, more than the "
		         "error_threshold %.2f",
		         p, (long long)fails, (long long)size, ps->error);
		return leave_running(db, env, c->id, STORE_CMP_PAUSED, reason, now_ms,
		                     st ? &st->auto_paused : NULL);
	}
	if (p >= rules->nphases)
		return PQ_OK; /* the last phase ends with the campaign */
	int64_t ok = cnt->n[p][STORE_DEP_COMPLETED];
	if (!cmp__phase_full(rules, cnt, p))
		return PQ_OK; /* a continuous campaign's phase waits for its vehicles */
	if ((double)ok >= ps->success * (double)size - 1e-9) {
		bool changed = false;
		int rc =
		    store_campaign_set_phase(db, c->id, c->current_phase, p + 1, now_ms, &changed);
		if (rc == PQ_OK && changed && st)
			st->phases_advanced++;
		return rc;
	}
	if (!cmp__phase_ended(cnt, p))
		return PQ_OK;
	snprintf(reason, sizeof(reason),
	         "auto_paused: phase %d ended with %lld of %lld completed, below the "
	         "success_threshold %.2f",
	         p, (long long)ok, (long long)size, ps->success);
	return leave_running(db, env, c->id, STORE_CMP_PAUSED, reason, now_ms,
	                     st ? &st->auto_paused : NULL);
}

static int upkeep_one(store *db, const cmp_env *env, const store_campaign *c, int64_t now_ms,
                      cmp_tick_stats *st)
{
	cmp_rules rules;
	cmp_counts cnt;
	int rc = cmp__rules_load(c, &rules);
	if (rc != PQ_OK)
		return rc;
	rc = cmp__load_counts(db, c->id, &cnt);
	if (rc == PQ_OK)
		rc = upkeep_decide(db, env, c, &rules, &cnt, now_ms, st);
	cmp__rules_clear(&rules);
	return rc;
}

typedef struct {
	store *db;
	const cmp_env *env;
	int64_t now;
	cmp_tick_stats *st;
	int rc;
} upkeep_ctx;

static int upkeep_row(const store_campaign *c, void *user)
{
	upkeep_ctx *u = user;
	int rc = upkeep_one(u->db, u->env, c, u->now, u->st);
	if (rc != PQ_OK && u->rc == PQ_OK)
		u->rc = rc; /* the first failure is reported; the other campaigns go on */
	return PQ_OK;
}

/* The claimed work of a tick: notify, retry, timeout. */
static int tick_claims(store *db, const cmp_env *env, int64_t now_ms, cmp_tick_stats *st)
{
	static const struct {
		store_claim_kind kind;
		int (*fn)(const store_deployment *, void *);
	} kinds[] = {{STORE_CLAIM_NOTIFY, do_notify},
	             {STORE_CLAIM_RETRY, do_retry},
	             {STORE_CLAIM_TIMEOUT, do_timeout}};
	work_ctx w = {.db = db, .env = env, .now = now_ms, .st = st};
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		rc = store_deployment_claim(db, env->instance_id, kinds[i].kind, now_ms,
		                            lease_of(env), batch_of(env), kinds[i].fn, &w, NULL);
	cmp__cache_clear(&w.cache);
	return rc;
}

int cmp_tick(store *db, const cmp_env *env, int64_t now_ms, cmp_tick_stats *st)
{
	if (!db || !env || !env->instance_id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_tick: bad arguments");
	int rc = tick_claims(db, env, now_ms, st);
	if (rc != PQ_OK)
		return rc;
	upkeep_ctx u = {.db = db, .env = env, .now = now_ms, .st = st};
	store_page pg = {.limit = CAMPAIGNS_PER_TICK};
	rc = store_campaign_list(db, STORE_CMP_RUNNING, &pg, upkeep_row, &u, NULL);
	return rc != PQ_OK ? rc : u.rc;
}

/* ---- wake-up ------------------------------------------------------------------------------ */

/* A (re)connected vehicle may have missed what was published while the server took it
 * for online (MQTT clean sessions keep nothing for it): the offer of a deployment still
 * `notified`, the metadata of one `accepted` whose metadata went out. Both are sent again;
 * the state stays (a vehicle answers a repeated offer as before and ignores metadata for
 * a campaign it already works on). */
static int do_resend(const store_deployment *d, void *user)
{
	work_ctx *w = user;
	int rc = cmp__cache_get(w->db, &w->cache, d->campaign_id);
	if (rc != PQ_OK)
		return rc;
	bool offer = d->state == STORE_DEP_NOTIFIED;
	rc = offer ? send_campaign(w->db, w->env, &w->cache, d->vin)
	           : cmp__send_metadata(w->db, w->env, &w->cache, d->vin);
	if (rc == PQ_OK)
		pq_log(PQ_LOG_INFO, "engine", "%s: %s of campaign %s sent again after its wake-up",
		       d->vin, offer ? "ota_campaign" : "ota_campaign_metadata", d->campaign_id);
	else
		pq_log(PQ_LOG_WARN, "engine", "%s: sending campaign %s again: %s", d->vin,
		       d->campaign_id, pq_err_detail());
	return store_deployment_release(w->db, d->campaign_id, d->vin, w->env->instance_id);
}

int cmp_on_wakeup(store *db, const cmp_env *env, const char *vin, int64_t now_ms)
{
	if (!db || !env || !env->instance_id || !vin)
		return pq_err_set(PQ_ERR_INVAL, "cmp_on_wakeup: bad arguments");
	work_ctx w = {.db = db, .env = env, .now = now_ms};
	/* first what it may have missed, then the new notifications (else a deployment
	 * notified now would be offered twice) */
	int rc = store_deployment_claim_vin(db, env->instance_id, STORE_CLAIM_RESEND, vin, now_ms,
	                                    lease_of(env), batch_of(env), do_resend, &w, NULL);
	cmp__cache_clear(&w.cache);
	return rc == PQ_OK ? cmp__notify_vin(db, env, vin, now_ms) : rc;
}

int cmp__notify_vin(store *db, const cmp_env *env, const char *vin, int64_t now_ms)
{
	work_ctx w = {.db = db, .env = env, .now = now_ms};
	int rc = store_deployment_claim_vin(db, env->instance_id, STORE_CLAIM_NOTIFY, vin, now_ms,
	                                    lease_of(env), batch_of(env), do_notify, &w, NULL);
	cmp__cache_clear(&w.cache);
	return rc;
}
