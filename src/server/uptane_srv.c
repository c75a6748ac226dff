/* uptane_srv.c: the server's Uptane repositories over the store (uptane_srv.h): the role
 * keys, the image repository kept in step with the releases, the timestamp renewed, and the
 * /uptane/ routes that serve what is stored. The director's side is uptane_meta.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "core/log.h"
#include "core/semver.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "server/routes.h"
#include "server/uptane_int.h"
#include "store/bundle_store.h"
#include "store/campaign.h"

#define LOGC            "uptane"
#define TIMESTAMP_RENEW (12LL * 3600 * 1000) /* re-sign the timestamp after 12 h */
#define IMAGE_CHECK_MS  2000                 /* compare the releases at most this often */
#define REPO_IMAGE      USRV_REPO_IMAGE
#define REPO_DIRECTOR   USRV_REPO_DIRECTOR

static const char *const roles[UP_ROLE_COUNT] = {"root", "targets", "snapshot", "timestamp"};

int usrv_release_counter(const char *version, int64_t *out)
{
	return semver_counter(version, out);
}

/* ---- state from the store --------------------------------------------------------- */

/* The last versions this database holds for each role, and the last image snapshot. */
static int load_state(store *db, up_repo_state *st)
{
	memset(st, 0, sizeof(*st));
	int64_t *v[UP_ROLE_COUNT] = {&st->image.root, &st->image.targets, &st->image.snapshot,
	                             &st->image.timestamp};
	for (int r = 0; r < UP_ROLE_COUNT; r++) {
		char *body = NULL;
		int rc = store_uptane_get_latest(db, REPO_IMAGE, "", roles[r], &body, v[r]);
		if (rc == PQ_ERR_NOTFOUND) {
			*v[r] = 0;
			continue;
		}
		if (rc != PQ_OK)
			return rc;
		if (r == UP_ROLE_SNAPSHOT) {
			st->snapshot_length = (int64_t)strlen(body);
			rc = pq_hash(PQ_HASH_SHA256, body, strlen(body), st->snapshot_sha256);
		}
		free(body);
		if (rc != PQ_OK)
			return rc;
	}
	char *body = NULL;
	int rc = store_uptane_get_latest(db, REPO_DIRECTOR, "", "root", &body, &st->director_root);
	free(body);
	if (rc == PQ_ERR_NOTFOUND) {
		st->director_root = 0;
		rc = PQ_OK;
	}
	return rc;
}

int usrv__sync_repo(usrv *u, store *db)
{
	up_repo_state st;
	int rc = load_state(db, &st);
	if (rc != PQ_OK)
		return rc;
	up_repo *r = NULL;
	rc = up_repo_open(u->dir, &u->opts, &st, &r);
	if (rc != PQ_OK)
		return rc;
	up_repo_free(u->repo);
	u->repo = r;
	return PQ_OK;
}

int usrv_new(const srv_options *o, usrv **out)
{
	*out = NULL;
	if (!o->uptane_dir)
		return PQ_OK;
	usrv *u = calloc(1, sizeof(*u));
	if (!u)
		return pq_err_set(PQ_ERR_NOMEM, "uptane");
	pthread_mutex_init(&u->lock, NULL);
	u->opts.policy = PQ_POLICY_HYBRID;
	if (o->uptane_snapshot_ms > 0)
		u->opts.expiry[UP_REPO_IMAGE][UP_ROLE_SNAPSHOT] = o->uptane_snapshot_ms / 1000;
	u->dir = strdup(o->uptane_dir);
	int rc = u->dir ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "uptane");
	if (rc == PQ_OK && o->uptane_policy)
		rc = pq_policy_from_name(o->uptane_policy, &u->opts.policy);
	/* the keys must load now, so that a bad directory stops the start-up */
	if (rc == PQ_OK)
		rc = up_repo_open(u->dir, &u->opts, NULL, &u->repo);
	if (rc != PQ_OK) {
		usrv_free(u);
		return pq_err_wrap(rc, "Uptane role keys in %s", o->uptane_dir);
	}
	up_repo_free(u->repo); /* reopened at the store's versions before first use */
	u->repo = NULL;
	*out = u;
	return PQ_OK;
}

void usrv_free(usrv *u)
{
	if (!u)
		return;
	up_repo_free(u->repo);
	pthread_mutex_destroy(&u->lock);
	free(u->dir);
	free(u);
}

/* ---- image repository --------------------------------------------------------------- */

typedef struct {
	up_target *t;
	size_t n, cap;
	char (*names)[80];
} tlist;

/* Room for one more target in l, zeroed (*out). */
static int tlist_slot(tlist *l, up_target **out)
{
	if (l->n == UP_TARGETS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d images", UP_TARGETS_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		up_target *t = realloc(l->t, cap * sizeof(*t));
		if (t)
			l->t = t;
		char(*names)[80] = realloc(l->names, cap * sizeof(*names));
		if (names)
			l->names = names;
		if (!t || !names)
			return pq_err_set(PQ_ERR_NOMEM, "targets");
		l->cap = cap;
	}
	*out = &l->t[l->n];
	memset(*out, 0, sizeof(**out));
	return PQ_OK;
}

/* Adds r's full package (d NULL) or its ready delta d to l. */
static int add_target(tlist *l, const store_release *r, const store_release_delta *d)
{
	up_target *t;
	const char *sha = d ? d->file_sha256 : r->file_sha256;
	size_t n = 0;
	int rc = tlist_slot(l, &t);
	if (rc != PQ_OK)
		return rc;
	usrv__target_name(l->names[l->n], r->id, d ? d->base_version : NULL);
	rc = pq_hex_decode(sha, t->sha256, sizeof(t->sha256), &n);
	if (rc == PQ_OK && n != 32)
		rc = pq_err_set(PQ_ERR_FORMAT, "release %s: bad SHA-256", r->id);
	if (rc == PQ_OK)
		rc = usrv_release_counter(r->version, &t->release_counter);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "release %s", r->id);
	t->length = d ? d->file_size : r->file_size;
	t->hardware_id = strdup(r->hardware_id);
	t->ecu_id = r->ecu_id[0] ? strdup(r->ecu_id) : NULL;
	t->software_type = r->software_type[0] ? strdup(r->software_type) : NULL;
	t->version = strdup(r->version);
	if (!t->hardware_id || !t->version || (r->ecu_id[0] && !t->ecu_id) ||
	    (r->software_type[0] && !t->software_type)) {
		free((char *)t->hardware_id);
		free((char *)t->ecu_id);
		free((char *)t->software_type);
		free((char *)t->version);
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	}
	l->n++;
	return PQ_OK;
}

/* The releases of the store, read first (their deltas are read after the releases'
 * query). */
typedef struct {
	store_release *v; /* notes dropped */
	size_t n, cap;
} rel_array;

static int rel_cb(const store_release *r, void *user)
{
	rel_array *a = user;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		store_release *v = realloc(a->v, cap * sizeof(*v));
		if (!v)
			return pq_err_set(PQ_ERR_NOMEM, "targets");
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n] = *r;
	a->v[a->n++].notes = NULL;
	return PQ_OK;
}

typedef struct {
	tlist *l;
	const store_release *r;
} delta_add_ctx;

static int delta_cb(const store_release_delta *d, void *user)
{
	delta_add_ctx *x = user;
	return d->state == STORE_DELTA_READY ? add_target(x->l, x->r, d) : PQ_OK;
}

/* Each release's full package and ready deltas. */
static int add_releases(store *db, const rel_array *a, tlist *l)
{
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < a->n; i++) {
		delta_add_ctx x = {.l = l, .r = &a->v[i]};
		rc = add_target(l, &a->v[i], NULL);
		if (rc == PQ_OK)
			rc = store_release_delta_list(db, a->v[i].id, delta_cb, &x);
	}
	return rc;
}

/* Adds bundle b's full_package.bin to l (hardware id and software type UP_BUNDLE_TYPE). */
static int bundle_cb(const store_bundle *b, void *user)
{
	tlist *l = user;
	up_target *t;
	size_t n = 0;
	int rc = tlist_slot(l, &t);
	if (rc == PQ_OK)
		rc = pq_hex_decode(b->file_sha256, t->sha256, sizeof(t->sha256), &n);
	if (rc == PQ_OK && n != 32)
		rc = pq_err_set(PQ_ERR_FORMAT, "bad SHA-256");
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "bundle %s", b->id);
	usrv__bundle_name(l->names[l->n], b->id);
	t->length = b->file_size;
	t->hardware_id = strdup(UP_BUNDLE_TYPE);
	t->software_type = strdup(UP_BUNDLE_TYPE);
	if (!t->hardware_id || !t->software_type) {
		free((char *)t->hardware_id);
		free((char *)t->software_type);
		return pq_err_set(PQ_ERR_NOMEM, "targets");
	}
	l->n++;
	return PQ_OK;
}

/* Every bundle's full_package.bin. */
static int add_bundles(store *db, tlist *l)
{
	int64_t total = 0;
	int rc = PQ_OK;
	for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
		store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
		rc = store_bundle_list(db, &pg, bundle_cb, l, &total);
		if (off + STORE_PAGE_MAX >= total)
			break;
	}
	return rc;
}

static void tlist_free(tlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->t[i].hardware_id);
		free((char *)l->t[i].ecu_id);
		free((char *)l->t[i].software_type);
		free((char *)l->t[i].version);
	}
	free(l->t);
	free(l->names);
}

/* Digest of a target list: name, length, SHA-256 of each, in name order (the order
 * jansson's sorted dump gives the object below). */
static int digest_of(json_t *obj, char hex[65])
{
	char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	uint8_t h[32];
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "digest");
	int rc = pq_hash(PQ_HASH_SHA256, text, strlen(text), h);
	free(text);
	if (rc == PQ_OK)
		pq_hex_encode(h, 32, hex);
	return rc;
}

/* {name: {length, sha256}} of a target list, or of the stored targets.json: the part of
 * the image targets that the releases decide. */
static int digest_entry(json_t *o, const char *name, json_t *length, json_t *sha256)
{
	if (json_object_set_new(o, name, json_pack("{sOsO}", "length", length, "sha256", sha256)) !=
	    0)
		return pq_err_set(PQ_ERR_NOMEM, "digest");
	return PQ_OK;
}

static int digest_list(const tlist *l, char hex[65])
{
	json_t *o = json_object();
	int rc = o ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "digest");
	for (size_t i = 0; rc == PQ_OK && i < l->n; i++) {
		char sha[65];
		pq_hex_encode(l->t[i].sha256, 32, sha);
		json_t *len = json_integer((json_int_t)l->t[i].length), *s = json_string(sha);
		rc = len && s ? digest_entry(o, l->names[i], len, s)
		              : pq_err_set(PQ_ERR_NOMEM, "digest");
		json_decref(len);
		json_decref(s);
	}
	if (rc == PQ_OK)
		rc = digest_of(o, hex);
	json_decref(o);
	return rc;
}

/* The digest of the newest targets.json in the store ("" when there is none). */
static int digest_stored(store *db, char hex[65])
{
	char *body = NULL;
	json_t *doc = NULL, *o = NULL, *t;
	const char *name;
	hex[0] = '\0';
	int rc = store_uptane_get_latest(db, REPO_IMAGE, "", "targets", &body, NULL);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc != PQ_OK)
		return rc;
	rc = srv_json_text(body, "stored targets.json", &doc);
	free(body);
	if (rc != PQ_OK)
		return rc;
	json_t *targets = json_object_get(json_object_get(doc, "signed"), "targets");
	o = json_object();
	rc = json_is_object(targets) ? PQ_OK : pq_err_set(PQ_ERR_FORMAT, "stored targets.json");
	if (rc == PQ_OK && !o)
		rc = pq_err_set(PQ_ERR_NOMEM, "digest");
	json_object_foreach(targets, name, t)
	{
		json_t *len = json_object_get(t, "length"),
		       *sha = json_object_get(json_object_get(t, "hashes"), "sha256");
		if (rc != PQ_OK)
			break;
		rc = len && sha ? digest_entry(o, name, len, sha)
		                : pq_err_set(PQ_ERR_FORMAT, "stored targets.json: %s", name);
	}
	if (rc == PQ_OK)
		rc = digest_of(o, hex);
	json_decref(o);
	json_decref(doc);
	return rc;
}

static int64_t snapshot_lifetime(const usrv *u)
{
	int64_t l = u->opts.expiry[UP_REPO_IMAGE][UP_ROLE_SNAPSHOT];
	return l > 0 ? l : UP_EXPIRY_SNAPSHOT;
}

int usrv__stored_expiry(store *db, const char *repo, const char *key, const char *role,
                        int64_t *exp_s)
{
	char *body = NULL;
	*exp_s = 0;
	int rc = store_uptane_get_latest(db, repo, key, role, &body, NULL);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc != PQ_OK)
		return rc;
	json_t *doc = NULL;
	rc = srv_json_text(body, "stored Uptane metadata", &doc);
	free(body);
	if (rc != PQ_OK)
		return rc;
	const char *e =
	    json_string_value(json_object_get(json_object_get(doc, "signed"), "expires"));
	rc = e ? up_time_parse(e, exp_s) : pq_err_set(PQ_ERR_FORMAT, "stored %s.json", role);
	json_decref(doc);
	return rc;
}

static int put_blob(store *db, const char *repo, const char *vin, const char *role,
                    const up_blob *b, int64_t now_ms)
{
	if (!b->data)
		return PQ_OK;
	return store_uptane_put(db, repo, vin, role, b->version, b->data, now_ms);
}

int usrv__store_set(store *db, const char *repo, const char *vin, const up_meta_set *m,
                    int64_t now_ms)
{
	int rc = store_begin(db);
	if (rc != PQ_OK)
		return rc;
	/* the director root is shared by every vehicle: stored once, under vin "" */
	rc = put_blob(db, repo, "", "root", &m->root, now_ms);
	if (rc == PQ_OK)
		rc = put_blob(db, repo, vin, "targets", &m->targets, now_ms);
	if (rc == PQ_OK)
		rc = put_blob(db, repo, vin, "snapshot", &m->snapshot, now_ms);
	if (rc == PQ_OK)
		rc = put_blob(db, repo, vin, "timestamp", &m->timestamp, now_ms);
	if (rc == PQ_OK)
		return store_commit(db);
	store_rollback(db);
	return rc;
}

/* Vehicles are provisioned with the director's root at manufacture, before any campaign
 * names them: version 1 is made and stored as soon as the server runs, not at the first
 * director publication. Two instances racing: the second insert fails, it reloads. */
static int ensure_director_root(usrv *u, store *db, int64_t now_ms)
{
	if (u->director_root_ok)
		return PQ_OK;
	char *body = NULL;
	int64_t version = 0;
	int rc = store_uptane_get_latest(db, REPO_DIRECTOR, "", "root", &body, &version);
	free(body);
	if (rc == PQ_ERR_NOTFOUND) {
		up_blob b = {0};
		rc = up_repo_rotate_root(u->repo, UP_REPO_DIRECTOR, NULL, now_ms / 1000, &b);
		if (rc == PQ_OK)
			rc = put_blob(db, REPO_DIRECTOR, "", "root", &b, now_ms);
		up_blob_free(&b);
		if (rc == PQ_ERR_EXISTS)
			rc = PQ_OK;
		if (rc == PQ_OK)
			rc = usrv__sync_repo(u, db);
	}
	if (rc == PQ_OK)
		u->director_root_ok = true;
	return rc;
}

/* Every release's packages as image targets. */
static int list_targets(store *db, tlist *l)
{
	int64_t total = 0;
	rel_array a = {0};
	int rc = PQ_OK;
	for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
		store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
		rc = store_release_list(db, NULL, &pg, rel_cb, &a, &total);
		if (off + STORE_PAGE_MAX >= total)
			break;
	}
	if (rc == PQ_OK)
		rc = add_releases(db, &a, l);
	if (rc == PQ_OK)
		rc = add_bundles(db, l);
	free(a.v);
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < l->n; i++)
		l->t[i].name = l->names[i];
	return PQ_OK;
}

/* Whether the snapshot (7 days) and the targets (90 days) are to be re-signed: when the
 * snapshot has less than half its lifetime left, even when no release changed. */
static int snapshot_due(usrv *u, store *db, int64_t now_ms, bool *due)
{
	int64_t snap_exp = 0;
	*due = false;
	if (!u->published[0])
		return PQ_OK;
	int rc = usrv__stored_expiry(db, REPO_IMAGE, "", "snapshot", &snap_exp);
	if (rc == PQ_OK)
		*due = snap_exp && snap_exp - now_ms / 1000 < snapshot_lifetime(u) / 2;
	return rc;
}

/* Signs and stores targets, snapshot and timestamp for the list l of digest want, unless
 * the store holds them already (another instance published them, or this one did). A lost
 * race reloads the repository and compares once more. */
static int publish_targets(usrv *u, store *db, tlist *l, const char want[65], int64_t now_ms)
{
	char have[65] = "";
	bool renew = false;
	int rc = snapshot_due(u, db, now_ms, &renew);
	if (rc != PQ_OK)
		return rc;
	if (renew) {
		pq_log(PQ_LOG_INFO, LOGC,
		       "image repository: renewing the snapshot before it expires");
		u->published[0] = '\0';
	} else if (strcmp(want, u->published) != 0) {
		rc = digest_stored(db, have);
	}
	for (int attempt = 0; rc == PQ_OK && strcmp(want, u->published) != 0 && attempt < 2;
	     attempt++) {
		if (strcmp(want, have) == 0) {
			memcpy(u->published, want, sizeof(u->published));
			break;
		}
		up_meta_set m = {0};
		rc = up_image_publish(u->repo, l->t, l->n, now_ms / 1000, &m);
		if (rc == PQ_OK)
			rc = usrv__store_set(db, REPO_IMAGE, "", &m, now_ms);
		if (rc == PQ_OK) {
			pq_log(PQ_LOG_INFO, LOGC,
			       "image repository: targets version %" PRId64 " (%zu images)",
			       m.targets.version, l->n);
			memcpy(u->published, want, sizeof(u->published));
			u->ts_signed_ms = now_ms;
		}
		up_meta_set_free(&m);
		if (rc == PQ_ERR_EXISTS) { /* lost a race with another instance: reload */
			rc = usrv__sync_repo(u, db);
			if (rc == PQ_OK)
				rc = digest_stored(db, have);
		}
	}
	return rc;
}

/* A fresh timestamp well before the old one expires. */
static int renew_timestamp(usrv *u, store *db, int64_t now_ms)
{
	if (u->ts_signed_ms == 0)
		u->ts_signed_ms = now_ms; /* a restart: the stored one is less than a day old or
		                           * gets renewed within the next renewal period */
	if (now_ms - u->ts_signed_ms < TIMESTAMP_RENEW)
		return PQ_OK;
	up_blob b = {0};
	int rc = up_image_timestamp(u->repo, now_ms / 1000, &b);
	if (rc == PQ_OK)
		rc = put_blob(db, REPO_IMAGE, "", "timestamp", &b, now_ms);
	up_blob_free(&b);
	if (rc == PQ_OK)
		u->ts_signed_ms = now_ms;
	else if (rc == PQ_ERR_EXISTS)
		rc = usrv__sync_repo(u, db);
	return rc;
}

int usrv__image_refresh_locked(usrv *u, store *db, int64_t now_ms, bool force)
{
	if (!force && now_ms < u->next_check_ms)
		return PQ_OK;
	u->next_check_ms = now_ms + IMAGE_CHECK_MS; /* also paces retries after an error */
	int rc = u->repo ? PQ_OK : usrv__sync_repo(u, db);
	if (rc != PQ_OK)
		return rc;
	rc = ensure_director_root(u, db, now_ms);
	if (rc != PQ_OK)
		return rc;
	tlist l = {0};
	char want[65];
	rc = list_targets(db, &l);
	if (rc == PQ_OK)
		rc = digest_list(&l, want);
	if (rc == PQ_OK)
		rc = publish_targets(u, db, &l, want, now_ms);
	tlist_free(&l);
	if (rc != PQ_OK || !u->published[0])
		return rc;
	return renew_timestamp(u, db, now_ms);
}

int usrv_image_refresh(srv *s, store *db, int64_t now_ms)
{
	usrv *u = srv_uptane(s);
	if (!u)
		return PQ_OK;
	pthread_mutex_lock(&u->lock);
	int rc = usrv__image_refresh_locked(u, db, now_ms, false);
	pthread_mutex_unlock(&u->lock);
	return rc;
}

/* ---- routes -------------------------------------------------------------------------- */

static void send_meta(srv_ctx *c, char *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	struct evbuffer *b = evbuffer_new();
	size_t len = strlen(body);
	if (!b) {
		free(body);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evbuffer_add_reference(b, body, len, (evbuffer_ref_cleanup_cb)(void (*)(void))free, body);
	srv_count(c, 200, len);
	evhttp_send_reply(c->req, 200, "OK", b);
	evbuffer_free(b);
}

/* "timestamp.json" -> role, version 0; "3.root.json" -> root, 3. */
static bool parse_file(const char *f, const char **role, int64_t *version)
{
	*version = 0;
	for (int r = 0; r < UP_ROLE_COUNT; r++) {
		char want[32];
		snprintf(want, sizeof(want), "%s.json", roles[r]);
		if (strcmp(f, want) == 0) {
			*role = roles[r];
			return true;
		}
	}
	char *end = NULL;
	if (f[0] < '1' || f[0] > '9')
		return false;
	long long v = strtoll(f, &end, 10);
	if (!end || strcmp(end, ".root.json") != 0 || v < 1 || v > 1000000000LL)
		return false;
	*role = "root";
	*version = v;
	return true;
}

static void serve(srv_ctx *c, const char *repo, const char *vin, const char *file)
{
	const char *role;
	int64_t version;
	char *body = NULL;
	if (!srv_uptane(c->s)) {
		srv_error(c, 404, "not_found", "this server has no Uptane repositories");
		return;
	}
	if (!parse_file(file, &role, &version)) {
		srv_error(c, 404, "not_found", "no metadata file '%.64s'", file);
		return;
	}
	/* roots of the director are shared by every vehicle */
	const char *key = strcmp(role, "root") == 0 ? "" : vin;
	int rc = version ? store_uptane_get_version(c->db, repo, key, role, version, &body)
	                 : store_uptane_get_latest(c->db, repo, key, role, &body, NULL);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "metadata");
		return;
	}
	send_meta(c, body);
}

static void h_image(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	serve(c, REPO_IMAGE, "", c->params[0]);
}

static void h_director(srv_ctx *c)
{
	if (!srv_query_only(c, NULL) || !route_own_vehicle(c, c->params[0]))
		return;
	serve(c, REPO_DIRECTOR, c->params[0], c->params[1]);
}

const srv_route route_uptane_table[] = {
    {EVHTTP_REQ_GET, "/uptane/image/{file}", SRV_AUTH_PUBLIC, h_image,
     "image repository metadata: root, N.root, targets, snapshot, timestamp (.json)"},
    {EVHTTP_REQ_GET, "/uptane/director/{vin}/{file}", SRV_AUTH_ANY, h_director,
     "a vehicle's director metadata (the vehicle itself or an API key)"},
    {0, NULL, 0, NULL, NULL},
};
