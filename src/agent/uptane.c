/* uptane.c: the campaign worker's Uptane step (phase "verifying"; docs/security.md).
 *
 * In order: a copy of what the vehicle trusts (roots, metadata versions, the ECUs' installed
 * release counters), taken under a->lock; the image repository's and the director's metadata
 * fetched over HTTPS (the roots after the trusted one until a 404, then timestamp, snapshot
 * and, from the image repository, targets; the director's targets came in the message and
 * are verified in their canonical form); up_verify; every image of the message matched with
 * a verified director target, and every fallback with a verified image repository target of
 * the same release (ag_meta_match); then the new trusted versions and roots and the record's
 * "verified" targets are kept. Nothing of the message is trusted before up_verify passed. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/time.h"
#include "uptane/cjson.h"
#include "uptane/repo.h"

#define ROOTS_MAX 64

/* The roots after the trusted one, as fetched. */
typedef struct {
	char *data[ROOTS_MAX];
	up_bytes b[ROOTS_MAX];
	size_t n;
} roots_list;

/* One repository's metadata: the trusted root (a copy) and what was fetched. */
typedef struct {
	char *root;
	size_t root_len;
	up_versions trusted;
	roots_list roots;
	char *timestamp, *snapshot, *targets;
	size_t timestamp_len, snapshot_len, targets_len;
} repo_meta;

/* Everything one verification reads; freed by uptane_free. */
typedef struct {
	repo_meta image, director; /* director.targets: the message's, canonical */
	up_ecu *ecus;
	size_t n_ecus;
	up_verify_result res;
	ag_verified *ver;
} uptane_run;

static void repo_free(repo_meta *r)
{
	for (size_t i = 0; i < r->roots.n; i++)
		free(r->roots.data[i]);
	free(r->root);
	free(r->timestamp);
	free(r->snapshot);
	free(r->targets);
}

static void uptane_free(uptane_run *u)
{
	repo_free(&u->image);
	repo_free(&u->director);
	free(u->ecus);
	up_verify_result_free(&u->res);
	free(u->ver);
}

static char *copy_bytes(const char *p, size_t len)
{
	char *c = malloc(len + 1);
	if (c) {
		memcpy(c, p, len);
		c[len] = '\0';
	}
	return c;
}

/* What the vehicle trusts, copied under a->lock: the worker verifies without holding it. */
static int trusted_copy(ag_agent *a, uptane_run *u)
{
	int rc = PQ_OK;
	pthread_mutex_lock(&a->lock);
	u->image.trusted = a->st.image_v;
	u->director.trusted = a->st.director_v;
	if (!a->st.image_root || !a->st.director_root) {
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no trusted Uptane roots");
		goto out;
	}
	u->image.root = copy_bytes(a->st.image_root, a->st.image_root_len);
	u->image.root_len = a->st.image_root_len;
	u->director.root = copy_bytes(a->st.director_root, a->st.director_root_len);
	u->director.root_len = a->st.director_root_len;
	u->n_ecus = a->st.n_ecus;
	u->ecus = calloc(u->n_ecus, sizeof(up_ecu));
	if (!u->image.root || !u->director.root || !u->ecus) {
		rc = pq_err_set(PQ_ERR_NOMEM, "trusted Uptane state");
		goto out;
	}
	for (size_t i = 0; i < u->n_ecus; i++) {
		const ag_ecu_state *e = &a->st.ecus[i];
		const vm_ecu *me = vm_model_find(&a->model, e->ecu_id);
		u->ecus[i].ecu_id = e->ecu_id; /* the state's array lives as long as the agent */
		u->ecus[i].hardware_id = me ? me->hardware_id : a->model.vmg_hardware_id;
		u->ecus[i].release_counter = e->cur.present ? e->cur.release_counter : 0;
	}
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* GET base+file, at most max bytes; PQ_ERR_NOTFOUND unwrapped on a 404. */
static int fetch(ag_http *h, const char *base, const char *file, size_t max, char **out,
                 size_t *len)
{
	char url[AG_URL_MAX + 64];
	long status = 0;
	if (snprintf(url, sizeof(url), "%s%s", base, file) >= (int)sizeof(url))
		return pq_err_set(PQ_ERR_RANGE, "URL too long");
	int rc = ag_http_get(h, url, max, out, len, &status);
	if (rc != PQ_OK && rc != PQ_ERR_NOTFOUND)
		return pq_err_wrap(rc, "fetching %s", file);
	return rc;
}

/* The roots after the trusted one: {N+1}.root.json, {N+2}.root.json, ... until a 404. */
static int fetch_roots(ag_http *h, const char *base, repo_meta *r)
{
	int64_t v = 0;
	json_error_t je;
	json_t *t = json_loadb(r->root, r->root_len, 0, &je);
	json_t *ver = json_object_get(json_object_get(t, "signed"), "version");
	if (json_is_integer(ver))
		v = json_integer_value(ver);
	json_decref(t);
	if (v < 1)
		return pq_err_set(PQ_ERR_FORMAT, "the trusted root has no version");
	for (size_t i = 0; i < ROOTS_MAX; i++) {
		char name[40];
		char *d = NULL;
		size_t len = 0;
		snprintf(name, sizeof(name), "%lld.root.json", (long long)v + 1 + (long long)i);
		int rc = fetch(h, base, name, UP_MAX_ROOT, &d, &len);
		if (rc == PQ_ERR_NOTFOUND)
			return PQ_OK;
		if (rc != PQ_OK)
			return rc;
		r->roots.data[r->roots.n] = d;
		r->roots.b[r->roots.n] = (up_bytes){d, len};
		r->roots.n++;
	}
	return PQ_OK;
}

/* A repository's roots, timestamp, snapshot and (with_targets) targets. */
static int fetch_repo(ag_http *h, const char *base, bool with_targets, repo_meta *r)
{
	int rc;
	if ((rc = fetch_roots(h, base, r)) != PQ_OK ||
	    (rc = fetch(h, base, "timestamp.json", UP_MAX_TIMESTAMP, &r->timestamp,
	                &r->timestamp_len)) != PQ_OK ||
	    (rc = fetch(h, base, "snapshot.json", UP_MAX_SNAPSHOT, &r->snapshot,
	                &r->snapshot_len)) != PQ_OK)
		return rc;
	if (!with_targets)
		return PQ_OK;
	return fetch(h, base, "targets.json", UP_MAX_IMAGE_TARGETS, &r->targets, &r->targets_len);
}

/* Both repositories' metadata; the director's targets are the message's canonical form
 * (what the director signed). */
static int fetch_all(ag_http *h, const ag_meta *m, uptane_run *u)
{
	int rc = fetch_repo(h, m->image_repo, true, &u->image);
	if (rc == PQ_OK)
		rc = fetch_repo(h, m->director_repo, false, &u->director);
	if (rc == PQ_OK)
		rc = cj_encode(m->director_targets, UP_MAX_DIRECTOR_TARGETS, &u->director.targets,
		               &u->director.targets_len);
	if (rc == PQ_ERR_NOTFOUND)
		rc = pq_err_wrap(PQ_ERR_VERIFY, "Uptane metadata missing on the server");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "Uptane");
	return PQ_OK;
}

static int verify(ag_agent *a, uptane_run *u)
{
	const repo_meta *i = &u->image, *d = &u->director;
	up_verify_input in = {
	    .vin = a->o->vin,
	    .now = pq_real_ms() / 1000,
	    .image_root = {i->root, i->root_len},
	    .director_root = {d->root, d->root_len},
	    .image_roots = i->roots.b,
	    .n_image_roots = i->roots.n,
	    .director_roots = d->roots.b,
	    .n_director_roots = d->roots.n,
	    .image_timestamp = {i->timestamp, i->timestamp_len},
	    .image_snapshot = {i->snapshot, i->snapshot_len},
	    .image_targets = {i->targets, i->targets_len},
	    .director_timestamp = {d->timestamp, d->timestamp_len},
	    .director_snapshot = {d->snapshot, d->snapshot_len},
	    .director_targets = {d->targets, d->targets_len},
	    .image_trusted = i->trusted,
	    .director_trusted = d->trusted,
	    .ecus = u->ecus,
	    .n_ecus = u->n_ecus,
	};
	int rc = up_verify(&in, &u->res);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "Uptane verification");
	return PQ_OK;
}

/* The record's "verified": per image, its director target and its fallback (or null). */
static json_t *verified_json(const ag_verified *ver, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *fb = ver[i].has_fallback ? ag_up_image_json(&ver[i].fallback) : json_null();
		json_t *e = json_pack("{s:o,s:o}", "target", ag_up_image_json(&ver[i].target),
		                      "fallback", fb);
		if (ag_jappend(arr, e) != PQ_OK) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* Keeps what was verified: the new roots, the trusted versions and the record's
 * "verified" and "verification". */
static int keep_verified(ag_agent *a, const ag_meta *m, const uptane_run *u)
{
	const up_verify_result *res = &u->res;
	json_t *vb = m->has_bundle ? ag_up_image_json(&res->bundle) : json_null();
	json_t *fields = json_pack("{s:o,s:o,s:s}", "verified", verified_json(u->ver, m->n_images),
	                           "verified_bundle", vb, "verification", "ok");
	if (!fields)
		return pq_err_set(PQ_ERR_NOMEM, "verified targets");
	pthread_mutex_lock(&a->lock);
	int rc = ag_state_set_roots(&a->st, res->image_root.data, res->image_root.len,
	                            res->director_root.data, res->director_root.len);
	if (rc == PQ_OK)
		rc = ag_jmerge(a->st.campaign, fields, "campaign record");
	else
		json_decref(fields);
	if (rc == PQ_OK) {
		a->st.image_v = res->image;
		a->st.director_v = res->director;
		ag_save_locked(a);
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

int ag_uptane(ag_agent *a, ag_http *h, const ag_meta *m, char *code, size_t code_len)
{
	uptane_run u = {0};
	int rc;
	snprintf(code, code_len, "uptane_verification_failed");
	if ((rc = trusted_copy(a, &u)) != PQ_OK || (rc = fetch_all(h, m, &u)) != PQ_OK ||
	    (rc = verify(a, &u)) != PQ_OK)
		goto out;
	u.ver = calloc(m->n_images, sizeof(*u.ver));
	if (!u.ver) {
		rc = pq_err_set(PQ_ERR_NOMEM, "verified targets");
		goto out;
	}
	rc = ag_meta_match(m, &u.res, u.image.targets, u.image.targets_len, u.ver);
	if (rc == PQ_OK)
		rc = ag_bundle_match(m, &u.res);
	if (rc != PQ_OK) {
		snprintf(code, code_len, "metadata_mismatch");
		goto out;
	}
	if ((rc = keep_verified(a, m, &u)) != PQ_OK)
		goto out;
	size_t new_roots = u.image.roots.n + u.director.roots.n;
	pq_log(PQ_LOG_INFO, AG_LOGC,
	       "Uptane: %zu images verified (image repository v%lld, director v%lld%s)",
	       m->n_images, (long long)u.res.image.targets, (long long)u.res.director.targets,
	       new_roots ? ", root rotated" : "");
	ag_event("uptane_verified",
	         json_pack("{s:I,s:I,s:I,s:I}", "images", (json_int_t)m->n_images,
	                   "image_targets_version", (json_int_t)u.res.image.targets,
	                   "director_targets_version", (json_int_t)u.res.director.targets,
	                   "new_roots", (json_int_t)new_roots));
out:
	uptane_free(&u);
	return rc;
}
