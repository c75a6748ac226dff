/* campaign_views.c: the campaign views the operator console reads: a page of a campaign's
 * deployments (each with the cause of its latest transition and its targets, one statement
 * per page) and the campaign's progress over time, replayed from the transition history in
 * one ordered query and sampled into at most CMP_PROGRESS_POINTS points. */
#include <stdio.h>
#include <string.h>

#include "server/campaign.h"
#include "server/campaign_int.h"

/* ---- the deployments page ----------------------------------------------------------------- */

typedef struct {
	json_t *items;
	json_t *cur;     /* the deployment being filled (in items) */
	json_t *targets; /* its targets array */
	char vin[STORE_VIN_MAX + 1];
} page_json_ctx;

static int page_item(const store_deployment *d, const char *cause, page_json_ctx *c)
{
	json_t *o = json_object(), *targets = json_array();
	cmp_member m[] = {
	    {"vin", json_string(d->vin)},
	    {"state", json_string(store_dep_state_name(d->state))},
	    {"phase", json_integer(d->phase)},
	    {"error_code", json_string(d->error_code)},
	    {"updated_ms", json_integer(d->updated_ms)},
	    {"cause", json_string(cause)},
	    {"targets", json_incref(targets)},
	};
	int rc = cmp__set_members(o, m, sizeof(m) / sizeof(m[0]));
	json_decref(targets); /* o holds it (or nobody) */
	if (rc == PQ_OK)
		rc = cmp__append_new(c->items, json_incref(o), "deployments");
	json_decref(o);
	if (rc != PQ_OK)
		return rc;
	c->cur = o;
	c->targets = targets;
	snprintf(c->vin, sizeof(c->vin), "%s", d->vin);
	return PQ_OK;
}

static int page_row(const store_deployment *d, const char *cause, const store_target *t, void *user)
{
	page_json_ctx *c = user;
	int rc = PQ_OK;
	if (!c->cur || strcmp(c->vin, d->vin) != 0)
		rc = page_item(d, cause, c);
	if (rc != PQ_OK || !t)
		return rc;
	return cmp__append_new(c->targets,
	                       json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "ecu_id",
	                                 t->ecu_id, "hardware_id", t->hardware_id, "software_type",
	                                 t->software_type, "from_version", t->from_version,
	                                 "to_version", t->to_version, "release_id", t->release_id,
	                                 "package", t->package, "sha256", t->file_sha256, "size",
	                                 (json_int_t)t->file_size),
	                       "targets");
}

int cmp_deployments_json(store *db, const char *id, uint32_t state_mask, const store_page *pg,
                         json_t **out)
{
	store_campaign c;
	int64_t total = 0;
	if (!db || !id || !pg || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_deployments_json: bad arguments");
	*out = NULL;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	store_campaign_clear(&c);
	page_json_ctx x = {.items = json_array()};
	if (!x.items)
		return pq_err_set(PQ_ERR_NOMEM, "deployments");
	rc = store_deployment_page(db, id, state_mask, pg, page_row, &x, &total);
	if (rc != PQ_OK) {
		json_decref(x.items);
		return rc;
	}
	*out = json_pack("{s:o,s:I,s:I,s:I}", "items", x.items, "total", (json_int_t)total, "limit",
	                 (json_int_t)pg->limit, "offset", (json_int_t)pg->offset);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "deployments");
}

int cmp_parse_states(const char *text, uint32_t *mask)
{
	char buf[512];
	*mask = 0;
	if (!text || strlen(text) >= sizeof(buf))
		return pq_err_set(PQ_ERR_INVAL,
		                  "state: a comma-separated list of deployment states");
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *p = buf, *next; p; p = next) {
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		store_dep_state st;
		if (store_dep_state_parse(p, &st) != PQ_OK)
			return pq_err_set(PQ_ERR_INVAL, "state: '%.32s' is not a deployment state",
			                  p);
		*mask |= 1u << st;
	}
	return PQ_OK;
}

/* ---- progress ------------------------------------------------------------------------------ */

typedef struct {
	int64_t counts[STORE_DEP_STATE_COUNT];
	int64_t t0, t1; /* the sampled span */
	int n, k;       /* points in all, the next one */
	json_t *points;
	int rc;
} progress_ctx;

static json_t *counts_json(const int64_t *counts)
{
	json_t *o = json_object();
	for (int s = 0; o && s < STORE_DEP_STATE_COUNT; s++)
		if (json_object_set_new(o, store_dep_state_name((store_dep_state)s),
		                        json_integer(counts[s] > 0 ? counts[s] : 0)) != 0) {
			json_decref(o);
			o = NULL;
		}
	return o;
}

static int64_t point_time(const progress_ctx *p, int k)
{
	if (p->n <= 1)
		return p->t1;
	return p->t0 + (p->t1 - p->t0) * k / (p->n - 1);
}

/* Emits every point up to time at (exclusive: at > the point's time). */
static int emit_until(progress_ctx *p, int64_t at, bool all)
{
	for (; p->k < p->n && (all || at > point_time(p, p->k)); p->k++) {
		json_t *pt = json_pack("{s:I,s:o}", "at_ms", (json_int_t)point_time(p, p->k),
		                       "counts", counts_json(p->counts));
		int rc = cmp__append_new(p->points, pt, "progress");
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

static int replay_row(store_dep_state from, bool has_from, store_dep_state to, int64_t at_ms,
                      void *user)
{
	progress_ctx *p = user;
	int rc = emit_until(p, at_ms, false);
	if (rc != PQ_OK)
		return rc;
	if (has_from)
		p->counts[from]--;
	p->counts[to]++;
	return PQ_OK;
}

int cmp_progress_json(store *db, const char *id, int64_t now_ms, int64_t max_rows, json_t **out)
{
	store_campaign c;
	cmp_counts cnt;
	if (!db || !id || !out)
		return pq_err_set(PQ_ERR_INVAL, "cmp_progress_json: bad arguments");
	*out = NULL;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	progress_ctx p = {.points = json_array(), .n = CMP_PROGRESS_POINTS};
	/* from the start to the end (a finished campaign) or now */
	p.t0 = c.started_ms ? c.started_ms : c.created_ms;
	bool ended = c.state == STORE_CMP_COMPLETED || c.state == STORE_CMP_CANCELLED;
	p.t1 = ended ? c.updated_ms : now_ms;
	if (p.t1 <= p.t0) {
		p.n = 1;
		p.t1 = p.t0;
	} else if (p.t1 - p.t0 < p.n - 1) {
		p.n = (int)(p.t1 - p.t0) + 1; /* no two points at one millisecond */
	}
	bool draft = c.state == STORE_CMP_DRAFT;
	store_campaign_clear(&c);
	if (!p.points)
		return pq_err_set(PQ_ERR_NOMEM, "progress");
	if (draft)
		p.n = 0;
	bool truncated = false;
	rc = store_transition_replay(db, id, max_rows, replay_row, &p, &truncated);
	if (rc == PQ_OK)
		rc = emit_until(&p, 0, true);
	if (rc == PQ_OK)
		rc = cmp__load_counts(db, id, &cnt);
	if (rc != PQ_OK) {
		json_decref(p.points);
		return rc;
	}
	*out =
	    json_pack("{s:s,s:I,s:I,s:o,s:o,s:I,s:b}", "campaign_id", id, "from_ms",
	              (json_int_t)p.t0, "to_ms", (json_int_t)p.t1, "points", p.points, "counts",
	              counts_json(cnt.total), "total", (json_int_t)cnt.all, "truncated", truncated);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "progress");
}
