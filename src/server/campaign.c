/* campaign.c: the campaign engine (server/campaign.h), the helpers its files share
 * (campaign_int.h): the stored policy and phases read back, the per-run campaign cache,
 * deployment counts, message building and publishing. The engine itself is in
 * campaign_create.c, campaign_target.c, campaign_notify.c, campaign_ops.c, campaign_msg.c
 * and campaign_json.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/campaign.h"
#include "server/campaign_int.h"
#include "server/msg.h"

/* ---- small helpers ------------------------------------------------------------------- */

int cmp__set_new(json_t *o, const char *k, json_t *v)
{
	if (!v || json_object_set_new(o, k, v) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "building %s", k);
	return PQ_OK;
}

int cmp__set_members(json_t *o, cmp_member *m, size_t n)
{
	int rc = o ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "building a message");
	for (size_t i = 0; i < n; i++) {
		if (rc == PQ_OK)
			rc = cmp__set_new(o, m[i].key, m[i].val);
		else
			json_decref(m[i].val);
		m[i].val = NULL;
	}
	return rc;
}

int cmp__append_new(json_t *arr, json_t *v, const char *what)
{
	if (!v || json_array_append_new(arr, v) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "building %s", what);
	return PQ_OK;
}

int cmp__publish_json(const cmp_env *env, const char *vin, const char *suffix, json_t *obj, int qos)
{
	char topic[128];
	if (!env || !env->publish)
		return pq_err_set(PQ_ERR_INVAL, "campaign engine: no publish callback");
	int rc = msg_topic(topic, sizeof(topic), vin, suffix);
	if (rc != PQ_OK)
		return rc;
	char *text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "encoding a %s message", suffix);
	rc = env->publish(env->user, topic, text, strlen(text), qos, false);
	free(text);
	return rc;
}

json_t *cmp__new_msg(const char *type, const char *vin, const char *campaign_id)
{
	json_t *m = msg_new(type, vin, NULL);
	if (m && campaign_id && json_object_set_new(m, "campaign_id", json_string(campaign_id))) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

int cmp__dep_vec_add(const store_deployment *d, void *user)
{
	cmp_dep_vec *v = user;
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 32;
		store_deployment *nv = realloc(v->v, nc * sizeof(*nv));
		if (!nv)
			return pq_err_set(PQ_ERR_NOMEM, "deployments");
		v->v = nv;
		v->cap = nc;
	}
	v->v[v->n++] = *d;
	return PQ_OK;
}

/* ---- the stored policy and phases ---------------------------------------------------- */

void cmp__rules_clear(cmp_rules *r)
{
	json_decref(r->policy);
	json_decref(r->target);
	memset(r, 0, sizeof(*r));
}

static int64_t obj_int(const json_t *o, const char *k, int64_t def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static double obj_real(const json_t *o, const char *k, double def)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : def;
}

static void phases_load(const json_t *ph, cmp_rules *r)
{
	size_t i;
	json_t *p;
	json_array_foreach(ph, i, p)
	{
		if (i >= CMP_PHASES_MAX)
			break;
		cmp_phase_spec *s = &r->phases[r->nphases++];
		s->count = json_object_get(p, "count") ? obj_int(p, "count", 0) : -1;
		s->percent = obj_real(p, "percent", 100.0);
		s->success = obj_real(p, "success_threshold", 1.0);
		s->error = obj_real(p, "error_threshold", 0.1);
	}
	if (r->nphases == 0)
		r->phases[r->nphases++] = (cmp_phase_spec){-1, 100.0, 1.0, 0.1};
}

int cmp__rules_load(const store_campaign *c, cmp_rules *r)
{
	json_error_t e;
	memset(r, 0, sizeof(*r));
	r->policy = json_loads(c->policy ? c->policy : "{}", 0, &e);
	r->target = json_loads(c->target_filter ? c->target_filter : "{}", 0, &e);
	json_t *ph = json_loads(c->phases ? c->phases : "[]", 0, &e);
	if (!json_is_object(r->policy) || !json_is_object(r->target) || !json_is_array(ph)) {
		json_decref(ph);
		cmp__rules_clear(r);
		return pq_err_set(PQ_ERR_FORMAT,
		                  "campaign %s: stored policy, target or phases unreadable", c->id);
	}
	json_t *pre = json_object_get(r->policy, "prerequisites");
	r->has_prereq = json_is_object(pre) && json_object_size(pre) > 0;
	r->postpone_retry_ms = obj_int(r->policy, "postpone_retry_s", 3600) * 1000;
	r->readiness_retry_ms = obj_int(r->policy, "readiness_retry_s", 300) * 1000;
	json_t *mode = json_object_get(r->policy, "mode");
	r->continuous = json_is_string(mode) && strcmp(json_string_value(mode), "continuous") == 0;
	json_t *ends = json_object_get(r->policy, "ends_at");
	if (json_is_string(ends) && msg_parse_time(json_string_value(ends), &r->ends_ms) != PQ_OK) {
		json_decref(ph);
		cmp__rules_clear(r);
		return pq_err_set(PQ_ERR_FORMAT, "campaign %s: stored ends_at unreadable", c->id);
	}
	phases_load(ph, r);
	json_decref(ph);
	return PQ_OK;
}

void cmp__cache_clear(cmp_cache *k)
{
	if (k->loaded) {
		store_campaign_clear(&k->c);
		cmp__rules_clear(&k->rules);
	}
	k->loaded = false;
}

int cmp__cache_get(store *db, cmp_cache *k, const char *id)
{
	if (k->loaded && strcmp(k->c.id, id) == 0)
		return PQ_OK;
	cmp__cache_clear(k);
	int rc = store_campaign_get(db, id, &k->c);
	if (rc != PQ_OK)
		return rc;
	rc = cmp__rules_load(&k->c, &k->rules);
	if (rc != PQ_OK) {
		store_campaign_clear(&k->c);
		return rc;
	}
	k->loaded = true;
	return PQ_OK;
}

/* ---- deployment counts --------------------------------------------------------------- */

static bool is_failure(store_dep_state st)
{
	return st == STORE_DEP_FAILED || st == STORE_DEP_ROLLED_BACK || st == STORE_DEP_TIMED_OUT;
}

static int counts_row(int phase, store_dep_state st, int64_t n, void *user)
{
	cmp_counts *c = user;
	int p = phase < 0 ? 0 : phase > CMP_PHASES_MAX ? CMP_PHASES_MAX : phase;
	c->n[p][st] += n;
	c->total[st] += n;
	c->all += n;
	return PQ_OK;
}

int cmp__load_counts(store *db, const char *id, cmp_counts *c)
{
	memset(c, 0, sizeof(*c));
	return store_deployment_counts(db, id, counts_row, c);
}

int64_t cmp__phase_size(const cmp_counts *c, int p)
{
	int64_t n = 0;
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		n += c->n[p][s];
	return n;
}

int64_t cmp__phase_failures(const cmp_counts *c, int p)
{
	int64_t n = 0;
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (is_failure((store_dep_state)s))
			n += c->n[p][s];
	return n;
}

bool cmp__phase_ended(const cmp_counts *c, int p)
{
	for (int s = 0; s < STORE_DEP_STATE_COUNT; s++)
		if (!store_dep_state_terminal((store_dep_state)s) && c->n[p][s] > 0)
			return false;
	return true;
}

/* ---- live events ------------------------------------------------------------------------ */

void cmp__event(const cmp_env *env, const char *type, json_t *data)
{
	if (env && env->event && data)
		env->event(env->user, type, data);
	else
		json_decref(data);
}

int cmp__transition(store *db, const cmp_env *env, const char *cid, const char *vin,
                    store_dep_state from, store_dep_state to, const char *cause, int64_t now_ms,
                    const store_dep_update *u, bool *changed)
{
	bool moved = false;
	int rc = store_deployment_transition(db, cid, vin, from, to, cause, now_ms, u, &moved);
	if (changed)
		*changed = moved;
	if (rc != PQ_OK || !moved || !env || !env->event)
		return rc;
	json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "campaign_id", cid, "vin", vin, "from",
	                      store_dep_state_name(from), "to", store_dep_state_name(to), "cause",
	                      cause ? cause : "", "at_ms", (json_int_t)now_ms);
	if (e && env->msg_sent_ms > 0 &&
	    json_object_set_new(e, "vehicle_ms", json_integer(env->msg_sent_ms)) != 0) {
		json_decref(e);
		e = NULL;
	}
	cmp__event(env, "deployment", e);
	return rc;
}

void cmp__campaign_event(store *db, const cmp_env *env, const char *id, int64_t now_ms)
{
	store_campaign c;
	if (!env || !env->event || store_campaign_get(db, id, &c) != PQ_OK)
		return;
	cmp__event(env, "campaign",
	           json_pack("{s:s,s:s,s:s,s:I}", "id", c.id, "state",
	                     store_cmp_state_name(c.state), "pause_reason", c.pause_reason, "at_ms",
	                     (json_int_t)now_ms));
	store_campaign_clear(&c);
}
