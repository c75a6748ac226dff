/* campaign_target.c: targeting: which (vehicle, ECU) pairs a campaign updates, from the
 * stored ECUs and the target filter, each vehicle's phase, and starting a draft
 * (cmp_start). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/semver.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

#define VEHICLE_LIST_CHUNK 200

/* ---- candidates ------------------------------------------------------------------------ */

/* A release's ready deltas, read before its ECUs are: only a ready delta is offered. */
typedef struct {
	store_release_delta *v;
	size_t n, cap;
} ready_deltas;

/* What cand_row reads: the list it fills, the release, its ready deltas and the target
 * filter. */
typedef struct {
	cmp_cand_list *l;
	const store_release *rel;
	const ready_deltas *deltas;
	const json_t *target;
} cand_ctx;

static int ready_cb(const store_release_delta *d, void *user)
{
	ready_deltas *rd = user;
	if (d->state != STORE_DELTA_READY)
		return PQ_OK;
	if (rd->n == rd->cap) {
		size_t cap = rd->cap ? rd->cap * 2 : 4;
		store_release_delta *v = realloc(rd->v, cap * sizeof(*v));
		if (!v)
			return pq_err_set(PQ_ERR_NOMEM, "deltas");
		rd->v = v;
		rd->cap = cap;
	}
	rd->v[rd->n++] = *d;
	return PQ_OK;
}

/* The ready delta whose base is the installed version inst, or NULL. */
static const store_release_delta *delta_from(const ready_deltas *rd, const char *inst)
{
	for (size_t i = 0; i < rd->n; i++)
		if (strcmp(rd->v[i].base_version, inst) == 0)
			return &rd->v[i];
	return NULL;
}

static bool in_str_array(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

/* Whether the ECU's installed version inst is in the target filter and older than r's. */
static bool cand_wanted(const json_t *target, const store_ecu_match *m, const char *inst,
                        const store_release *r)
{
	json_t *vins = json_object_get(target, "vins");
	json_t *model = json_object_get(target, "model");
	if (vins && !in_str_array(vins, m->vin))
		return false;
	if (model && strcmp(json_string_value(model), m->model) != 0)
		return false;
	int cmp = 0;
	if (semver_cmp_str(inst, r->version, &cmp) != PQ_OK || cmp >= 0)
		return false; /* not installed, not a version, or not older */
	json_t *vmin = json_object_get(target, "version_min");
	json_t *vmax = json_object_get(target, "version_max");
	if (vmin && (semver_cmp_str(inst, json_string_value(vmin), &cmp) != PQ_OK || cmp < 0))
		return false;
	if (vmax && (semver_cmp_str(inst, json_string_value(vmax), &cmp) != PQ_OK || cmp > 0))
		return false;
	return true;
}

static int cand_grow(cmp_cand_list *l)
{
	if (l->n < l->cap)
		return PQ_OK;
	if (l->cap >= CMP_TARGETS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "campaign targets more than %d ECUs",
		                  CMP_TARGETS_MAX);
	size_t nc = l->cap ? l->cap * 2 : 64;
	cmp_candidate *nv = realloc(l->v, nc * sizeof(*nv));
	if (!nv)
		return pq_err_set(PQ_ERR_NOMEM, "campaign targets");
	l->v = nv;
	l->cap = nc;
	return PQ_OK;
}

static int cand_row(const store_ecu_match *m, void *user)
{
	const cand_ctx *x = user;
	const store_release *r = x->rel;
	const char *inst = strcmp(r->software_type, "BOOT") == 0  ? m->sw_boot
	                   : strcmp(r->software_type, "CAL") == 0 ? m->sw_cal
	                                                          : m->sw_app;
	if (!cand_wanted(x->target, m, inst, r))
		return PQ_OK;
	int rc = cand_grow(x->l);
	if (rc != PQ_OK)
		return rc;
	cmp_candidate *c = &x->l->v[x->l->n++];
	memset(c, 0, sizeof(*c));
	snprintf(c->t.vin, sizeof(c->t.vin), "%s", m->vin);
	snprintf(c->t.ecu_id, sizeof(c->t.ecu_id), "%s", m->ecu_id);
	snprintf(c->t.release_id, sizeof(c->t.release_id), "%s", r->id);
	snprintf(c->t.hardware_id, sizeof(c->t.hardware_id), "%s", r->hardware_id);
	snprintf(c->t.software_type, sizeof(c->t.software_type), "%s", r->software_type);
	snprintf(c->t.from_version, sizeof(c->t.from_version), "%s", inst);
	snprintf(c->t.to_version, sizeof(c->t.to_version), "%s", r->version);
	snprintf(c->installed, sizeof(c->installed), "%s", inst);
	/* the ready delta from the installed version, else the full package; the ECU's delta
	 * capability is checked after the query (check_deltas: it reads the vehicle's VCI) */
	const store_release_delta *d = delta_from(x->deltas, inst);
	snprintf(c->t.package, sizeof(c->t.package), "%s", d ? "delta" : "full");
	snprintf(c->t.file_sha256, sizeof(c->t.file_sha256), "%s",
	         d ? d->file_sha256 : r->file_sha256);
	c->t.file_size = d ? d->file_size : r->file_size;
	return PQ_OK;
}

/* Whether the VCI says capabilities.delta == false for the ECU. */
static bool vci_refuses_delta(const json_t *vci, const char *ecu_id)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(vci, "ecus"), i, e)
	{
		json_t *id = json_object_get(e, "ecu_id");
		if (!json_is_string(id) || strcmp(json_string_value(id), ecu_id) != 0)
			continue;
		return json_is_false(json_object_get(json_object_get(e, "capabilities"), "delta"));
	}
	return false;
}

/* Whether the vehicle's stored VCI says capabilities.delta == false for the ECU. */
static int delta_refused(store *db, const char *vin, const char *ecu_id, bool *refused)
{
	store_vehicle v;
	*refused = false;
	int rc = store_vehicle_get(db, vin, &v);
	if (rc != PQ_OK)
		return rc;
	if (v.last_vci) {
		json_error_t e;
		json_t *vci = json_loads(v.last_vci, 0, &e);
		/* the store checks a VCI when it is written, so this cannot happen; if it does,
		 * targeting goes on as it always did: the delta stays allowed */
		if (vci)
			*refused = vci_refuses_delta(vci, ecu_id);
		else
			pq_log(PQ_LOG_WARN, "engine",
			       "vehicle %s: stored VCI unreadable (%s, line %d): delta allowed",
			       vin, e.text, e.line);
		json_decref(vci);
	}
	store_vehicle_clear(&v);
	return rc;
}

/* Delta packages need the ECU's delta capability: r's delta candidates of a vehicle that
 * refuses them get the full package. */
static int check_deltas(store *db, const store_release *r, cmp_cand_list *l)
{
	for (size_t k = 0; k < l->n; k++) {
		cmp_candidate *cd = &l->v[k];
		if (strcmp(cd->t.release_id, r->id) != 0 || strcmp(cd->t.package, "delta") != 0)
			continue;
		bool refused = false;
		int rc = delta_refused(db, cd->t.vin, cd->t.ecu_id, &refused);
		if (rc != PQ_OK)
			return rc;
		if (refused) {
			snprintf(cd->t.package, sizeof(cd->t.package), "full");
			snprintf(cd->t.file_sha256, sizeof(cd->t.file_sha256), "%s",
			         r->file_sha256);
			cd->t.file_size = r->file_size;
		}
	}
	return PQ_OK;
}

/* Adds the candidates of one release to l. */
static int resolve_release(store *db, const char *release_id, const json_t *target, const char *vin,
                           cmp_cand_list *l)
{
	store_release r;
	ready_deltas rd = {0};
	int rc = store_release_get(db, release_id, &r);
	if (rc != PQ_OK)
		return rc;
	json_t *hw_filter = json_object_get(target, "hardware_ids");
	rc = store_release_delta_list(db, r.id, ready_cb, &rd);
	if (rc == PQ_OK && (!hw_filter || in_str_array(hw_filter, r.hardware_id))) {
		cand_ctx x = {.l = l, .rel = &r, .deltas = &rd, .target = target};
		rc = store_ecu_by_hardware(db, r.hardware_id, vin, cand_row, &x);
	}
	if (rc == PQ_OK)
		rc = check_deltas(db, &r, l);
	free(rd.v);
	store_release_clear(&r);
	return rc;
}

static int cand_cmp(const void *a, const void *b)
{
	const cmp_candidate *x = a, *y = b;
	int c = strcmp(x->t.vin, y->t.vin);
	return c ? c : strcmp(x->t.ecu_id, y->t.ecu_id);
}

int cmp__resolve(store *db, const store_campaign *c, const cmp_rules *rules, const char *vin,
                 cmp_cand_list *l)
{
	for (int i = 0; i < c->nreleases; i++) {
		int rc = resolve_release(db, c->release_ids[i], rules->target, vin, l);
		if (rc != PQ_OK)
			return rc;
	}
	/* one release per hardware id (cmp_create), so an ECU appears once */
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), cand_cmp);
	return PQ_OK;
}

/* ---- deployments and phases ------------------------------------------------------------ */

/* ceil(x) for 0 <= x, ignoring floating-point noise (no libm). */
static size_t round_up(double x)
{
	size_t n = (size_t)x;
	return (double)n < x - 1e-9 ? n + 1 : n;
}

typedef struct {
	char vin[STORE_VIN_MAX + 1];
	char key[65];        /* hex SHA-256(campaign id || VIN) */
	size_t first, count; /* its targets in the candidate list */
} vehicle_slot;

static int slot_cmp(const void *a, const void *b)
{
	const vehicle_slot *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->vin, y->vin);
}

static int phase_key(const char *cid, const char *vin, char out[65])
{
	char buf[STORE_ID_MAX + STORE_VIN_MAX + 2];
	uint8_t d[32];
	int n = snprintf(buf, sizeof(buf), "%s%s", cid, vin);
	int rc = pq_hash(PQ_HASH_SHA256, buf, (size_t)n, d);
	if (rc == PQ_OK)
		pq_hex_encode(d, sizeof(d), out);
	return rc;
}

/* The vehicles of l (sorted by VIN), nv of them, one slot each, in key order. */
static int make_slots(const char *cid, const cmp_cand_list *l, size_t nv, vehicle_slot *slots)
{
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (i == 0 || strcmp(l->v[i].t.vin, l->v[i - 1].t.vin) != 0) {
			vehicle_slot *s = &slots[k++];
			snprintf(s->vin, sizeof(s->vin), "%s", l->v[i].t.vin);
			s->first = i;
			int rc = phase_key(cid, s->vin, s->key);
			if (rc != PQ_OK)
				return rc;
		}
		slots[k - 1].count++;
	}
	qsort(slots, nv, sizeof(*slots), slot_cmp);
	return PQ_OK;
}

/* Phase boundaries over nv vehicles in key order: bounds[i] is the end (exclusive) of phase
 * i + 1; the last phase takes every remaining vehicle. */
static void phase_bounds(const cmp_rules *rules, size_t nv, size_t bounds[CMP_PHASES_MAX])
{
	size_t acc = 0;
	for (int i = 0; i < rules->nphases; i++) {
		const cmp_phase_spec *ps = &rules->phases[i];
		size_t end;
		if (i == rules->nphases - 1)
			end = nv;
		else if (ps->count >= 0)
			end = acc + (size_t)ps->count;
		else
			end = round_up(ps->percent * (double)nv / 100.0);
		if (end > nv)
			end = nv;
		if (end < acc)
			end = acc;
		bounds[i] = acc = end;
	}
}

/* Inserts the deployments of slots[0..nv) and their targets, VEHICLE_LIST_CHUNK vehicles
 * a statement, inside the caller's transaction. */
static int insert_slots(store *db, const char *cid, const cmp_rules *rules,
                        const vehicle_slot *slots, size_t nv, const cmp_cand_list *l,
                        int fixed_phase, int64_t now_ms)
{
	size_t bounds[CMP_PHASES_MAX];
	phase_bounds(rules, nv, bounds);
	store_deployment *deps = calloc(VEHICLE_LIST_CHUNK, sizeof(*deps));
	store_target *tg = calloc(l->n, sizeof(*tg));
	int rc = PQ_OK;
	if (!deps || !tg) {
		rc = pq_err_set(PQ_ERR_NOMEM, "deployments");
		goto out;
	}
	for (size_t i = 0; rc == PQ_OK && i < nv;) {
		size_t nd = 0, nt = 0;
		for (; i < nv && nd < VEHICLE_LIST_CHUNK; i++) {
			int phase = fixed_phase;
			for (int p = 0; phase <= 0 && p < rules->nphases; p++)
				if (i < bounds[p])
					phase = p + 1;
			store_deployment *d = &deps[nd++];
			memset(d, 0, sizeof(*d));
			snprintf(d->vin, sizeof(d->vin), "%s", slots[i].vin);
			d->phase = phase;
			for (size_t t = 0; t < slots[i].count; t++)
				tg[nt++] = l->v[slots[i].first + t].t;
		}
		rc = store_deployment_insert(db, cid, deps, nd, tg, nt, now_ms);
	}
out:
	free(deps);
	free(tg);
	return rc;
}

int cmp__insert_deployments(store *db, const store_campaign *c, const cmp_rules *rules,
                            const cmp_cand_list *l, int fixed_phase, int64_t now_ms, int64_t *n_out)
{
	size_t nv = 0;
	for (size_t i = 0; i < l->n; i++)
		if (i == 0 || strcmp(l->v[i].t.vin, l->v[i - 1].t.vin) != 0)
			nv++;
	*n_out = (int64_t)nv;
	if (nv == 0)
		return PQ_OK;
	vehicle_slot *slots = calloc(nv, sizeof(*slots));
	if (!slots)
		return pq_err_set(PQ_ERR_NOMEM, "deployments");
	int rc = make_slots(c->id, l, nv, slots);
	if (rc != PQ_OK || (rc = store_begin(db)) != PQ_OK)
		goto out;
	rc = insert_slots(db, c->id, rules, slots, nv, l, fixed_phase, now_ms);
	if (rc == PQ_OK)
		rc = store_commit(db);
	else
		store_rollback(db);
out:
	free(slots);
	return rc;
}

/* ---- starting -------------------------------------------------------------------------- */

/* The deployments and the state change of cmp_start, inside its transaction. */
static int start_in_tx(store *db, const store_campaign *c, const cmp_rules *rules,
                       const cmp_cand_list *l, int64_t now_ms, int64_t *n)
{
	int rc = cmp__insert_deployments(db, c, rules, l, 0, now_ms, n);
	if (rc != PQ_OK)
		return rc;
	bool changed = false;
	rc = store_campaign_set_state(db, c->id, STORE_CMP_DRAFT, STORE_CMP_RUNNING, NULL, 0,
	                              now_ms, &changed);
	if (rc == PQ_OK && !changed)
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s was started concurrently", c->id);
	return rc;
}

int cmp_start(store *db, const cmp_env *env, const char *id, int64_t now_ms, int64_t *n_targeted)
{
	(void)env;
	if (n_targeted)
		*n_targeted = 0;
	if (!db || !id)
		return pq_err_set(PQ_ERR_INVAL, "cmp_start: bad arguments");
	store_campaign c;
	int rc = store_campaign_get(db, id, &c);
	if (rc != PQ_OK)
		return rc;
	cmp_rules rules;
	cmp_cand_list l = {0};
	int64_t n = 0;
	memset(&rules, 0, sizeof(rules));
	if (c.state != STORE_CMP_DRAFT) {
		rc = pq_err_set(PQ_ERR_INVAL, "campaign %s is %s, not draft", id,
		                store_cmp_state_name(c.state));
		goto out;
	}
	if ((rc = cmp__rules_load(&c, &rules)) != PQ_OK ||
	    (rc = cmp__resolve(db, &c, &rules, NULL, &l)) != PQ_OK)
		goto out;
	/* one transaction: the deployments and the state change, or nothing */
	if ((rc = store_begin(db)) != PQ_OK)
		goto out;
	rc = start_in_tx(db, &c, &rules, &l, now_ms, &n);
	if (rc == PQ_OK)
		rc = store_commit(db);
	else
		store_rollback(db);
	if (rc == PQ_OK && n_targeted)
		*n_targeted = n;
out:
	free(l.v);
	cmp__rules_clear(&rules);
	store_campaign_clear(&c);
	return rc;
}
