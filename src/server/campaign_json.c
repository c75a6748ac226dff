/* campaign_json.c: the JSON views of campaigns and deployments (cmp_get_json,
 * cmp_list_json, cmp_vehicle_json) and the target list sent in ota_campaign. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

#define N_MEMBERS(m) (sizeof(m) / sizeof((m)[0]))

/* ---- targets ------------------------------------------------------------------------------ */

typedef struct {
	json_t *arr;
	int64_t size;
} targets_json_ctx;

static int target_json_row(const store_target *t, void *user)
{
	targets_json_ctx *c = user;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "ecu_id", t->ecu_id,
	                      "hardware_id", t->hardware_id, "software_type", t->software_type,
	                      "from_version", t->from_version, "to_version", t->to_version,
	                      "release_id", t->release_id, "package", t->package, "sha256",
	                      t->file_sha256, "size", (json_int_t)t->file_size);
	int rc = cmp__append_new(c->arr, o, "targets");
	if (rc == PQ_OK)
		c->size += t->file_size;
	return rc;
}

int cmp__targets_json(store *db, const char *cid, const char *vin, json_t **arr, int64_t *size)
{
	targets_json_ctx c = {.arr = json_array()};
	*arr = NULL;
	if (!c.arr)
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	int rc = store_target_list(db, cid, vin, target_json_row, &c);
	if (rc != PQ_OK) {
		json_decref(c.arr);
		return rc;
	}
	*arr = c.arr;
	if (size)
		*size = c.size;
	return PQ_OK;
}

/* ---- campaigns ---------------------------------------------------------------------------- */

/* {state name: count} of n[0..STORE_DEP_STATE_COUNT); NULL when out of memory. */
static json_t *states_json(const int64_t *n)
{
	json_t *o = json_object();
	for (int s = 0; o && s < STORE_DEP_STATE_COUNT; s++) {
		if (json_object_set_new(o, store_dep_state_name((store_dep_state)s),
		                        json_integer(n[s])) != 0) {
			json_decref(o);
			o = NULL;
		}
	}
	return o;
}

/* Parses the stored JSON text (def when NULL) of campaign c's member `what`. */
/* The campaign's stored JSON text (def when absent). cmp_create writes it, so it always
 * parses; if it does not, the view leaves the member out (*unreadable), as it always did,
 * with a warning: one damaged campaign must not break the list of all of them. */
static int stored_json(const store_campaign *c, const char *text, const char *def, const char *what,
                       json_t **out, bool *unreadable)
{
	json_error_t e;
	*out = json_loads(text ? text : def, 0, &e);
	if (*out)
		return PQ_OK;
	if (json_error_code(&e) == json_error_out_of_memory)
		return pq_err_set(PQ_ERR_NOMEM, "campaign %s: %s", c->id, what);
	pq_log(PQ_LOG_WARN, "engine", "campaign %s: stored %s unreadable (%s, line %d): left out",
	       c->id, what, e.text, e.line);
	*unreadable = true;
	*out = json_loads(def, 0, NULL);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "campaign %s: %s", c->id, what);
}

static int release_ids_json(const store_campaign *c, json_t **out)
{
	json_t *ids = json_array();
	if (!ids)
		return pq_err_set(PQ_ERR_NOMEM, "release ids");
	for (int i = 0; i < c->nreleases; i++) {
		int rc = cmp__append_new(ids, json_string(c->release_ids[i]), "release ids");
		if (rc != PQ_OK) {
			json_decref(ids);
			return rc;
		}
	}
	*out = ids;
	return PQ_OK;
}

/* Adds each stored phase its number, size, counts per state and whether it is active. */
static int phases_json(json_t *phases, const store_campaign *c, const cmp_counts *cnt)
{
	size_t i;
	json_t *p;
	json_array_foreach(phases, i, p)
	{
		if (i >= CMP_PHASES_MAX)
			break;
		int ph = (int)i + 1;
		cmp_member mem[] = {
		    {"phase", json_integer(ph)},
		    {"size", json_integer(cmp__phase_size(cnt, ph))},
		    {"counts", states_json(cnt->n[ph])},
		    {"active", json_boolean(ph <= c->current_phase)},
		};
		int rc = cmp__set_members(p, mem, N_MEMBERS(mem));
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

static int campaign_json(store *db, const store_campaign *c, json_t **out)
{
	cmp_counts cnt;
	json_t *ids = NULL, *target = NULL, *policy = NULL, *phases = NULL;
	*out = NULL;
	int rc = cmp__load_counts(db, c->id, &cnt);
	if (rc != PQ_OK)
		return rc;
	bool bad[3] = {false, false, false}; /* target, policy, phases unreadable */
	if ((rc = stored_json(c, c->target_filter, "{}", "target", &target, &bad[0])) != PQ_OK ||
	    (rc = stored_json(c, c->policy, "{}", "policy", &policy, &bad[1])) != PQ_OK ||
	    (rc = stored_json(c, c->phases, "[]", "phases", &phases, &bad[2])) != PQ_OK ||
	    (rc = phases_json(phases, c, &cnt)) != PQ_OK ||
	    (rc = release_ids_json(c, &ids)) != PQ_OK) {
		json_decref(target);
		json_decref(policy);
		json_decref(phases);
		return rc;
	}
	json_t *o = json_object();
	json_t *mode = json_object_get(policy, "mode");
	cmp_member mem[] = {
	    {"id", json_string(c->id)},
	    {"name", json_string(c->name)},
	    {"mode", json_string(json_is_string(mode) ? json_string_value(mode) : "once")},
	    {"state", json_string(store_cmp_state_name(c->state))},
	    {"pause_reason", json_string(c->pause_reason)},
	    {"current_phase", json_integer(c->current_phase)},
	    {"created_by", json_string(c->created_by)},
	    {"created_ms", json_integer(c->created_ms)},
	    {"updated_ms", json_integer(c->updated_ms)},
	    {"started_ms", json_integer(c->started_ms)},
	    {"vehicle_timeout_ms", json_integer(c->vehicle_timeout_ms)},
	    {"release_ids", ids},
	    {"target", target},
	    {"policy", policy},
	    {"phases", phases},
	    {"counts", states_json(cnt.total)},
	    {"total", json_integer(cnt.all)},
	};
	rc = cmp__set_members(o, mem, N_MEMBERS(mem));
	if (rc != PQ_OK) {
		json_decref(o);
		return pq_err_wrap(rc, "campaign JSON");
	}
	static const char *const stored[3] = {"target", "policy", "phases"};
	for (int i = 0; i < 3; i++)
		if (bad[i])
			json_object_del(o, stored[i]);
	*out = o;
	return PQ_OK;
}

int cmp_get_json(store *db, const char *id, json_t **out)
{
	store_campaign c;
	if (!db || !id || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_get_json: bad arguments");
	*out = NULL;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	rc = campaign_json(db, &c, out);
	store_campaign_clear(&c);
	return rc;
}

typedef struct {
	store *db;
	json_t *arr;
} list_json_ctx;

static int list_json_row(const store_campaign *c, void *user)
{
	list_json_ctx *l = user;
	json_t *o = NULL;
	int rc = campaign_json(l->db, c, &o);
	return rc != PQ_OK ? rc : cmp__append_new(l->arr, o, "campaign list");
}

int cmp_list_json(store *db, const store_page *pg, json_t **out)
{
	if (!db || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_list_json: bad arguments");
	*out = NULL;
	list_json_ctx l = {.db = db, .arr = json_array()};
	if (!l.arr)
		return pq_err_set(PQ_ERR_NOMEM, "campaign list");
	int64_t total = 0;
	int rc = store_campaign_list(db, -1, pg, list_json_row, &l, &total);
	if (rc != PQ_OK) {
		json_decref(l.arr);
		return rc;
	}
	json_t *o = json_object();
	cmp_member mem[] = {
	    {"campaigns", l.arr},
	    {"total", json_integer(total)},
	    {"limit", json_integer(pg && pg->limit ? pg->limit : STORE_PAGE_DEFAULT)},
	    {"offset", json_integer(pg ? pg->offset : 0)},
	};
	rc = cmp__set_members(o, mem, N_MEMBERS(mem));
	if (rc != PQ_OK) {
		json_decref(o);
		return pq_err_wrap(rc, "campaign list");
	}
	*out = o;
	return PQ_OK;
}

/* ---- deployments -------------------------------------------------------------------------- */

static int transition_json_row(const store_transition *t, void *user)
{
	json_t *o =
	    json_pack("{s:I,s:s,s:s,s:I,s:s}", "seq", (json_int_t)t->seq, "from", t->from_state,
	              "to", t->to_state, "at_ms", (json_int_t)t->at_ms, "cause", t->cause);
	return cmp__append_new(user, o, "transitions");
}

int cmp_vehicle_json(store *db, const char *id, const char *vin, json_t **out)
{
	store_deployment d;
	if (!db || !id || !vin || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_vehicle_json: bad arguments");
	*out = NULL;
	int rc = store_deployment_get(db, id, vin, &d);
	if (rc != PQ_OK)
		return rc;
	json_t *targets = NULL, *hist = json_array();
	if (!hist)
		return pq_err_set(PQ_ERR_NOMEM, "deployment");
	rc = cmp__targets_json(db, id, vin, &targets, NULL);
	if (rc == PQ_OK)
		rc = store_transition_list(db, id, vin, transition_json_row, hist);
	if (rc != PQ_OK) {
		json_decref(targets);
		json_decref(hist);
		return rc;
	}
	json_t *o = json_object();
	cmp_member mem[] = {
	    {"campaign_id", json_string(d.campaign_id)},
	    {"vin", json_string(d.vin)},
	    {"state", json_string(store_dep_state_name(d.state))},
	    {"phase", json_integer(d.phase)},
	    {"attempt", json_integer(d.attempt)},
	    {"error_code", json_string(d.error_code)},
	    {"notify_count", json_integer(d.notify_count)},
	    {"next_ms", json_integer(d.next_ms)},
	    {"last_msg_ms", json_integer(d.last_msg_ms)},
	    {"updated_ms", json_integer(d.updated_ms)},
	    {"targets", targets},
	    {"transitions", hist},
	};
	rc = cmp__set_members(o, mem, N_MEMBERS(mem));
	if (rc != PQ_OK) {
		json_decref(o);
		return pq_err_wrap(rc, "deployment");
	}
	*out = o;
	return PQ_OK;
}
