/* campaign_continuous.c: continuous campaigns (policy.mode "continuous"): the phase rules of
 * a vehicle set that grows, and admitting one vehicle when it reports (cmp_admit). Starting
 * one is cmp_start's catch-up pass (campaign_target.c); its upkeep is campaign_notify.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

#define RUNNING_SCAN_MAX 500 /* running campaigns looked at per vehicle event */

/* ---- phase rules ----------------------------------------------------------------------- */

bool cmp__admitting(const cmp_rules *r, int64_t now_ms)
{
	return r->continuous && (r->ends_ms <= 0 || now_ms < r->ends_ms);
}

/* The admitted vehicles a continuous campaign's phases hold up to the end of phase p. */
static int64_t cumulative_count(const cmp_rules *r, int p)
{
	int64_t n = 0;
	for (int i = 0; i < p && i < r->nphases; i++)
		n += r->phases[i].count > 0 ? r->phases[i].count : 0;
	return n;
}

static int64_t admitted_up_to(const cmp_counts *cnt, int p)
{
	int64_t n = 0;
	for (int i = 1; i <= p && i <= CMP_PHASES_MAX; i++)
		n += cmp__phase_size(cnt, i);
	return n;
}

bool cmp__phase_full(const cmp_rules *r, const cmp_counts *cnt, int p)
{
	if (!r->continuous)
		return true;
	if (p >= r->nphases)
		return false;
	return admitted_up_to(cnt, p) >= cumulative_count(r, p);
}

int cmp__admit_phase(const cmp_rules *r, const cmp_counts *cnt)
{
	for (int p = 1; p < r->nphases; p++)
		if (!cmp__phase_full(r, cnt, p))
			return p;
	return r->nphases;
}

/* ---- admission ----------------------------------------------------------------------------- */

/* The "deployment" event of an admission: '' -> pending. */
static void admitted_event(const cmp_env *env, const char *cid, const char *vin, int phase,
                           int64_t now_ms)
{
	if (!env || !env->event)
		return;
	cmp__event(env, "deployment",
	           json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I}", "campaign_id", cid, "vin", vin,
	                     "from", "", "to", "pending", "cause",
	                     "engine: admitted by a continuous campaign", "phase", phase, "at_ms",
	                     (json_int_t)now_ms));
}

/* Admits vin to the running campaign c when c is continuous and admitting, the vehicle is
 * not in it yet and one of its ECUs needs c's releases; *admitted tells whether it was. */
static int admit_one(store *db, const cmp_env *env, const store_campaign *c, const char *vin,
                     int64_t now_ms, bool *admitted)
{
	cmp_rules rules;
	cmp_cand_list l = {0};
	cmp_counts cnt;
	store_deployment d;
	*admitted = false;
	int rc = cmp__rules_load(c, &rules);
	if (rc != PQ_OK)
		return rc;
	if (!cmp__admitting(&rules, now_ms))
		goto out;
	rc = store_deployment_get(db, c->id, vin, &d);
	if (rc == PQ_OK)
		goto out; /* admitted once, whatever became of it */
	if (rc != PQ_ERR_NOTFOUND)
		goto out;
	if ((rc = cmp__resolve(db, c, &rules, vin, &l)) != PQ_OK || l.n == 0)
		goto out;
	memset(&cnt, 0, sizeof(cnt));
	/* the counts only matter to a campaign of several phases */
	if (rules.nphases > 1 && (rc = cmp__load_counts(db, c->id, &cnt)) != PQ_OK)
		goto out;
	int phase = cmp__admit_phase(&rules, &cnt);
	int64_t n = 0;
	rc = cmp__insert_deployments(db, c, &rules, &l, phase, now_ms, &n);
	if (rc == PQ_ERR_EXISTS) {
		rc = PQ_OK; /* admitted concurrently (another instance, another event) */
		goto out;
	}
	if (rc == PQ_OK && n > 0) {
		*admitted = true;
		pq_log(PQ_LOG_INFO, "engine", "%s: admitted to continuous campaign %s (phase %d)",
		       vin, c->id, phase);
		admitted_event(env, c->id, vin, phase, now_ms);
	}
out:
	free(l.v);
	cmp__rules_clear(&rules);
	return rc;
}

typedef struct {
	store *db;
	const cmp_env *env;
	const char *vin;
	int64_t now;
	int n;
	int rc;
} admit_ctx;

static int admit_row(const store_campaign *c, void *user)
{
	admit_ctx *x = user;
	bool admitted = false;
	/* a campaign of mode once is skipped by admit_one after reading its policy */
	int rc = admit_one(x->db, x->env, c, x->vin, x->now, &admitted);
	if (rc != PQ_OK) {
		pq_log(PQ_LOG_WARN, "engine", "%s: admission to campaign %s: %s", x->vin, c->id,
		       pq_err_detail());
		if (x->rc == PQ_OK)
			x->rc = rc; /* the first failure is reported; the other campaigns go on */
	}
	if (admitted)
		x->n++;
	return PQ_OK;
}

int cmp_admit(store *db, const cmp_env *env, const char *vin, int64_t now_ms, int *n_admitted)
{
	if (n_admitted)
		*n_admitted = 0;
	if (!db || !vin)
		return pq_err_set(PQ_ERR_INVAL, "cmp_admit: bad arguments");
	admit_ctx x = {.db = db, .env = env, .vin = vin, .now = now_ms};
	store_page pg = {.limit = RUNNING_SCAN_MAX};
	int rc = store_campaign_list(db, STORE_CMP_RUNNING, &pg, admit_row, &x, NULL);
	if (rc == PQ_OK)
		rc = x.rc;
	if (n_admitted)
		*n_admitted = x.n;
	if (x.n > 0 && env && env->instance_id && env->publish) {
		int nrc = cmp__notify_vin(db, env, vin, now_ms);
		if (rc == PQ_OK)
			rc = nrc;
	}
	return rc;
}
