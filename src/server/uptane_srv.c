/* uptane_srv.c: the server's Uptane repositories and routes (uptane_srv.h). */
#include "server/uptane_srv.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "core/semver.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/kem.h"
#include "server/msg.h"
#include "server/routes.h"
#include "store/campaign.h"
#include "uptane/cjson.h"
#include "uptane/repo.h"

#define LOGC            "uptane"
#define TIMESTAMP_RENEW (12LL * 3600 * 1000) /* re-sign the timestamp after 12 h */
#define IMAGE_CHECK_MS  2000                 /* compare the releases at most this often */
#define REPO_IMAGE      "image"
#define REPO_DIRECTOR   "director"

struct usrv {
	pthread_mutex_t lock; /* the up_repo and the fields below */
	up_repo *repo;
	up_repo_opts opts;
	char dir[1024];
	char published[65];   /* digest of the target list last seen published */
	int64_t ts_signed_ms; /* when this instance last signed or saw a timestamp */
	int64_t next_check_ms;
	bool director_root_ok; /* the director root is in the store */
};

static const char *const roles[UP_ROLE_COUNT] = {"root", "targets", "snapshot", "timestamp"};

int usrv_release_counter(const char *version, int64_t *out)
{
	semver v;
	int rc = semver_parse(version, &v);
	if (rc != PQ_OK)
		return rc;
	if (v.major >= 1000000 || v.minor >= 1000000 || v.patch >= 1000000)
		return pq_err_set(PQ_ERR_RANGE,
		                  "version %s: fields must be below 1000000 for a "
		                  "release counter",
		                  version);
	int64_t c =
	    (int64_t)v.major * 1000000000000LL + (int64_t)v.minor * 1000000LL + (int64_t)v.patch;
	if (v.pre[0])
		c = c > 0 ? c - 1 : 0;
	*out = c;
	return PQ_OK;
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

/* Reopens the repository at the store's versions (after a start or a lost race). */
static int sync_repo(usrv *u, store *db)
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
	snprintf(u->dir, sizeof(u->dir), "%s", o->uptane_dir);
	u->opts.policy = PQ_POLICY_HYBRID;
	if (o->uptane_snapshot_ms > 0)
		u->opts.expiry[UP_REPO_IMAGE][UP_ROLE_SNAPSHOT] = o->uptane_snapshot_ms / 1000;
	int rc = PQ_OK;
	if (o->uptane_policy)
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
	free(u);
}

/* ---- image repository --------------------------------------------------------------- */

typedef struct {
	up_target *t;
	size_t n, cap;
	char (*names)[80];
	int rc;
} tlist;

static int add_target(tlist *l, const store_release *r, bool delta)
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
	up_target *t = &l->t[l->n];
	memset(t, 0, sizeof(*t));
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s.%s.swpg", r->id,
	         delta ? "delta" : "full");
	const char *sha = delta ? r->delta_file_sha256 : r->file_sha256;
	size_t n = 0;
	int rc = pq_hex_decode(sha, t->sha256, sizeof(t->sha256), &n);
	if (rc == PQ_OK && n != 32)
		rc = pq_err_set(PQ_ERR_FORMAT, "release %s: bad SHA-256", r->id);
	if (rc == PQ_OK)
		rc = usrv_release_counter(r->version, &t->release_counter);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "release %s", r->id);
	t->length = delta ? r->delta_file_size : r->file_size;
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

static int rel_cb(const store_release *r, void *user)
{
	tlist *l = user;
	int rc = add_target(l, r, false);
	if (rc == PQ_OK && r->delta_file_sha256[0])
		rc = add_target(l, r, true);
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

static int digest_list(const tlist *l, char hex[65])
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < l->n; i++) {
		char sha[65];
		pq_hex_encode(l->t[i].sha256, 32, sha);
		json_object_set_new(
		    o, l->names[i],
		    json_pack("{sIss}", "length", (json_int_t)l->t[i].length, "sha256", sha));
	}
	int rc = o ? digest_of(o, hex) : pq_err_set(PQ_ERR_NOMEM, "digest");
	json_decref(o);
	return rc;
}

/* The digest of the newest targets.json in the store ("" when there is none). */
static int digest_stored(store *db, char hex[65])
{
	char *body = NULL;
	hex[0] = '\0';
	int rc = store_uptane_get_latest(db, REPO_IMAGE, "", "targets", &body, NULL);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc != PQ_OK)
		return rc;
	json_error_t je;
	json_t *doc = json_loads(body, 0, &je);
	free(body);
	json_t *targets = json_object_get(json_object_get(doc, "signed"), "targets");
	json_t *o = json_object();
	const char *name;
	json_t *t;
	json_object_foreach(targets, name, t)
	{
		json_object_set_new(
		    o, name,
		    json_pack("{sOsO}", "length", json_object_get(t, "length"), "sha256",
		              json_object_get(json_object_get(t, "hashes"), "sha256")));
	}
	rc = (doc && o) ? digest_of(o, hex) : pq_err_set(PQ_ERR_FORMAT, "stored targets.json");
	json_decref(o);
	json_decref(doc);
	return rc;
}

static int64_t snapshot_lifetime(const usrv *u)
{
	int64_t l = u->opts.expiry[UP_REPO_IMAGE][UP_ROLE_SNAPSHOT];
	return l > 0 ? l : UP_EXPIRY_SNAPSHOT;
}

/* The expiry (seconds) of the newest stored image metadata of a role; 0 when none. */
static int stored_expiry(store *db, const char *role, int64_t *exp_s)
{
	char *body = NULL;
	*exp_s = 0;
	int rc = store_uptane_get_latest(db, REPO_IMAGE, "", role, &body, NULL);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc != PQ_OK)
		return rc;
	json_error_t je;
	json_t *doc = json_loads(body, 0, &je);
	free(body);
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

static int store_set(store *db, const char *repo, const char *vin, const up_meta_set *m,
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
			rc = sync_repo(u, db);
	}
	if (rc == PQ_OK)
		u->director_root_ok = true;
	return rc;
}

static int image_refresh_locked(usrv *u, store *db, int64_t now_ms, bool force)
{
	int rc = PQ_OK;
	if (!force && now_ms < u->next_check_ms)
		return PQ_OK;
	u->next_check_ms = now_ms + IMAGE_CHECK_MS; /* also paces retries after an error */
	if (!u->repo && (rc = sync_repo(u, db)) != PQ_OK)
		return rc;
	if ((rc = ensure_director_root(u, db, now_ms)) != PQ_OK)
		return rc;
	tlist l = {0};
	int64_t total = 0;
	for (int64_t off = 0; rc == PQ_OK; off += STORE_PAGE_MAX) {
		store_page pg = {.limit = STORE_PAGE_MAX, .offset = off};
		rc = store_release_list(db, NULL, &pg, rel_cb, &l, &total);
		if (off + STORE_PAGE_MAX >= total)
			break;
	}
	char want[65], have[65];
	if (rc == PQ_OK)
		rc = digest_list(&l, want);
	/* the snapshot (7 days) and the targets (90 days) are re-signed when the snapshot has
	 * less than half its lifetime left, even when no release changed */
	int64_t snap_exp = 0;
	if (rc == PQ_OK && u->published[0])
		rc = stored_expiry(db, "snapshot", &snap_exp);
	if (rc == PQ_OK && u->published[0] && snap_exp &&
	    snap_exp - now_ms / 1000 < snapshot_lifetime(u) / 2) {
		pq_log(PQ_LOG_INFO, LOGC,
		       "image repository: renewing the snapshot before it expires");
		u->published[0] = '\0';
		have[0] = '\0';
	} else if (rc == PQ_OK && strcmp(want, u->published) != 0) {
		rc = digest_stored(db, have);
	}
	for (int attempt = 0; rc == PQ_OK && strcmp(want, u->published) != 0 && attempt < 2;
	     attempt++) {
		if (strcmp(want, have) == 0) { /* another instance published it (or we did) */
			memcpy(u->published, want, sizeof(want));
			break;
		}
		up_meta_set m = {0};
		for (size_t i = 0; i < l.n; i++)
			l.t[i].name = l.names[i];
		rc = up_image_publish(u->repo, l.t, l.n, now_ms / 1000, &m);
		if (rc == PQ_OK)
			rc = store_set(db, REPO_IMAGE, "", &m, now_ms);
		if (rc == PQ_OK) {
			pq_log(PQ_LOG_INFO, LOGC,
			       "image repository: targets version %" PRId64 " (%zu images)",
			       m.targets.version, l.n);
			memcpy(u->published, want, sizeof(want));
			u->ts_signed_ms = now_ms;
		}
		up_meta_set_free(&m);
		if (rc == PQ_ERR_EXISTS) { /* lost a race with another instance: reload */
			rc = sync_repo(u, db);
			if (rc == PQ_OK)
				rc = digest_stored(db, have);
		}
	}
	tlist_free(&l);
	if (rc != PQ_OK || !u->published[0])
		return rc;
	/* a fresh timestamp well before the old one expires */
	if (u->ts_signed_ms == 0)
		u->ts_signed_ms = now_ms; /* a restart: the stored one is less than a day old or
		                           * gets renewed within the next renewal period */
	if (now_ms - u->ts_signed_ms >= TIMESTAMP_RENEW) {
		up_blob b = {0};
		rc = up_image_timestamp(u->repo, now_ms / 1000, &b);
		if (rc == PQ_OK)
			rc = put_blob(db, REPO_IMAGE, "", "timestamp", &b, now_ms);
		up_blob_free(&b);
		if (rc == PQ_OK)
			u->ts_signed_ms = now_ms;
		else if (rc == PQ_ERR_EXISTS)
			rc = sync_repo(u, db);
	}
	return rc;
}

int usrv_image_refresh(srv *s, store *db, int64_t now_ms)
{
	usrv *u = srv_uptane(s);
	if (!u)
		return PQ_OK;
	pthread_mutex_lock(&u->lock);
	int rc = image_refresh_locked(u, db, now_ms, false);
	pthread_mutex_unlock(&u->lock);
	return rc;
}

/* ---- director and campaign metadata -------------------------------------------------- */

typedef struct {
	store_target t[UP_ECUS_MAX];
	store_release r[UP_ECUS_MAX]; /* each target's release (notes dropped) */
	size_t n;
} dlist;

static int dep_target_cb(const store_target *t, void *user)
{
	dlist *d = user;
	if (d->n == UP_ECUS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d target ECUs", UP_ECUS_MAX);
	d->t[d->n++] = *t;
	return PQ_OK;
}

static void public_base(srv *s, char *out, size_t len)
{
	const srv_options *o = srv_get_options(s);
	if (o->public_url) {
		snprintf(out, len, "%s", o->public_url);
		size_t n = strlen(out);
		if (n && out[n - 1] == '/')
			out[n - 1] = '\0';
		return;
	}
	char host[256];
	snprintf(host, sizeof(host), "%s", o->listen);
	char *colon = strrchr(host, ':');
	if (colon)
		*colon = '\0';
	if (!host[0] || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	snprintf(out, len, "https://%s:%d", host, srv_port(s));
}

/* What every image of one vehicle's metadata shares. */
typedef struct {
	srv *s;
	store *db;
	const char *vin;
	char base[512];
	int64_t now_ms, expires_ms;
	bool encrypt; /* downloads.encrypt and the vehicle has KEM keys */
	pq_key *kx, *km;
	char first_token[256];
} meta_ctx;

/* The vehicle's registered KEM public keys; m->encrypt stays false (plaintext downloads)
 * for a vehicle registered without them. */
static int load_recipient(meta_ctx *m)
{
	store_vehicle v = {0};
	int rc = store_vehicle_get(m->db, m->vin, &v);
	if (rc == PQ_OK && (!v.kem_x25519_pub || !v.kem_mlkem_pub)) {
		pq_log(PQ_LOG_WARN, LOGC, "%s has no KEM keys: its packages are sent unencrypted",
		       m->vin);
		store_vehicle_clear(&v);
		return PQ_OK;
	}
	if (rc == PQ_OK)
		rc = pq_key_parse_pem(v.kem_x25519_pub, strlen(v.kem_x25519_pub), &m->kx);
	if (rc == PQ_OK)
		rc = pq_key_parse_pem(v.kem_mlkem_pub, strlen(v.kem_mlkem_pub), &m->km);
	if (rc == PQ_OK &&
	    (pq_key_alg(m->kx) != PQ_ALG_X25519 || pq_key_alg(m->km) != PQ_ALG_MLKEM768))
		rc = pq_err_set(PQ_ERR_INVAL, "not an X25519 and an ML-KEM-768 key");
	store_vehicle_clear(&v);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "KEM keys of %s", m->vin);
	m->encrypt = true;
	return PQ_OK;
}

/* "encryption" of one package for the vehicle: the content key wrapped to its KEM keys with
 * aad "VIN|<package sha256>". */
static int encryption_json(meta_ctx *m, const store_package_key *k, json_t **out)
{
	uint8_t key[PQ_AEAD_KEY_LEN], blob[PQ_WRAP_MAX];
	char aad[STORE_VIN_MAX + 1 + 64 + 1];
	char b64[4 * ((PQ_WRAP_MAX + 2) / 3) + 1];
	size_t n = 0, blen = sizeof(blob);
	*out = NULL;
	int rc = pq_hex_decode(k->content_key, key, sizeof(key), &n);
	if (rc == PQ_OK && n != sizeof(key))
		rc = pq_err_set(PQ_ERR_FORMAT, "stored content key of %s: bad length",
		                k->file_sha256);
	snprintf(aad, sizeof(aad), "%s|%s", m->vin, k->file_sha256);
	pq_wrap_recipient to = {.x25519 = m->kx, .mlkem = m->km};
	if (rc == PQ_OK)
		rc = pq_wrap(&to, (const uint8_t *)aad, strlen(aad), key, sizeof(key), blob, &blen);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "wrapping the key of %s for %s", k->file_sha256, m->vin);
	EVP_EncodeBlock((unsigned char *)b64, blob, (int)blen);
	*out = json_pack("{sssssIssss}", "scheme", USRV_ENC_SCHEME, "sha256", k->enc_sha256,
	                 "length", (json_int_t)k->enc_size, "aad", aad, "wrapped_key", b64);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "metadata");
}

/* Sets "url" and "encryption" of one package in obj: the encrypted copy (made now if the
 * package has none yet) with a token for it, or with encryption off the package itself
 * and "encryption": null. */
static int set_download(meta_ctx *m, json_t *obj, const char *file_sha256)
{
	store_package_key k;
	char serve[65], token[256], url[1024];
	json_t *enc = NULL;
	int rc = PQ_OK;
	memset(&k, 0, sizeof(k));
	snprintf(serve, sizeof(serve), "%s", file_sha256);
	if (m->encrypt) {
		rc = srv_package_key(m->s, m->db, file_sha256, true, m->now_ms, &k);
		if (rc == PQ_OK)
			rc = encryption_json(m, &k, &enc);
		if (rc == PQ_OK)
			snprintf(serve, sizeof(serve), "%s", k.enc_sha256);
		OPENSSL_cleanse(&k, sizeof(k));
	}
	if (rc == PQ_OK)
		rc = srv_token_make(m->s, m->vin, serve, m->expires_ms, token, sizeof(token));
	if (rc == PQ_OK && snprintf(url, sizeof(url), "%s/packages/%s?token=%s", m->base, serve,
	                            token) >= (int)sizeof(url))
		rc = pq_err_set(PQ_ERR_RANGE, "download URL too long (public_url)");
	if (rc != PQ_OK) {
		json_decref(enc);
		return rc;
	}
	if (!m->first_token[0])
		snprintf(m->first_token, sizeof(m->first_token), "%s", token);
	/* json_object_set_new takes the value even when it fails */
	int bad = json_object_set_new(obj, "url", json_string(url));
	bad |= json_object_set_new(obj, "encryption", enc ? enc : json_null());
	return bad ? pq_err_set(PQ_ERR_NOMEM, "metadata") : PQ_OK;
}

/* One element of "images". */
static int image_json(meta_ctx *m, const store_target *t, const store_release *r, const char *name,
                      json_t **out)
{
	bool delta = strcmp(t->package, "delta") == 0;
	json_t *im = json_pack("{sssssssIsssssssssssss{sssI}}", "ecu_id", t->ecu_id, "release_id",
	                       t->release_id, "name", name, "length", (json_int_t)t->file_size,
	                       "sha256", t->file_sha256, "package", t->package, "from_version",
	                       t->from_version, "to_version", t->to_version, "software_type",
	                       t->software_type, "hardware_id", t->hardware_id, "image", "sha256",
	                       r->image_sha256, "length", (json_int_t)r->image_size);
	*out = NULL;
	if (!im)
		return pq_err_set(PQ_ERR_NOMEM, "metadata images");
	int rc = set_download(m, im, t->file_sha256);
	if (rc == PQ_OK && delta) {
		/* the full package of the same release, for a vehicle whose installed image is
		 * not the delta's base (the image repository lists it too) */
		char fname[80];
		snprintf(fname, sizeof(fname), "%s.full.swpg", t->release_id);
		json_t *fb = json_pack("{sssIss}", "name", fname, "length",
		                       (json_int_t)r->file_size, "sha256", r->file_sha256);
		/* each set_new takes its value, also a NULL one (and fails) */
		int bad = json_object_set_new(im, "delta_base",
		                              json_pack("{ssss}", "sha256", r->delta_base_sha256,
		                                        "version", r->delta_base_version));
		bad |= json_object_set_new(im, "fallback", fb);
		rc = bad ? pq_err_set(PQ_ERR_NOMEM, "metadata images")
		         : set_download(m, fb, r->file_sha256);
	}
	if (rc != PQ_OK) {
		json_decref(im);
		return rc;
	}
	*out = im;
	return PQ_OK;
}

/* The order of installation: the ECUs the campaign's policy.install_order names, in that
 * order, then the others by ECU id; and the policy's rollback_policy (default
 * all_or_nothing). */
static int install_plan(store *db, const char *campaign_id, const dlist *d, size_t *order,
                        char rollback[32])
{
	store_campaign c;
	memset(&c, 0, sizeof(c));
	int rc = store_campaign_get(db, campaign_id, &c);
	if (rc != PQ_OK)
		return rc;
	json_error_t je;
	json_t *pol = c.policy ? json_loads(c.policy, 0, &je) : NULL;
	json_t *io = json_object_get(pol, "install_order");
	const char *rb = json_string_value(json_object_get(pol, "rollback_policy"));
	snprintf(rollback, 32, "%s", rb && strcmp(rb, "none") == 0 ? "none" : "all_or_nothing");
	bool used[UP_ECUS_MAX] = {false};
	size_t k = 0, j;
	json_t *e;
	json_array_foreach(io, j, e)
	{
		const char *ecu = json_string_value(e);
		for (size_t i = 0; ecu && i < d->n; i++)
			if (!used[i] && strcmp(d->t[i].ecu_id, ecu) == 0) {
				used[i] = true;
				order[k++] = i;
				break;
			}
	}
	for (size_t i = 0; i < d->n; i++)
		if (!used[i])
			order[k++] = i;
	json_decref(pol);
	store_campaign_clear(&c);
	return PQ_OK;
}

int usrv_campaign_metadata(srv *s, store *db, const char *campaign_id, const char *vin,
                           int64_t now_ms, json_t **out)
{
	usrv *u = srv_uptane(s);
	*out = NULL;
	if (!u)
		return pq_err_set(PQ_ERR_UNSUPPORTED,
		                  "no Uptane role keys (uptane.keys or tls.pki)");
	dlist *d = calloc(1, sizeof(*d));
	meta_ctx *m = calloc(1, sizeof(*m));
	up_director_entry *e = calloc(UP_ECUS_MAX, sizeof(*e));
	char(*names)[80] = calloc(UP_ECUS_MAX, sizeof(*names));
	size_t *order = calloc(UP_ECUS_MAX, sizeof(*order));
	if (!d || !m || !e || !names || !order) {
		free(d);
		free(m);
		free(e);
		free(names);
		free(order);
		return pq_err_set(PQ_ERR_NOMEM, "metadata");
	}
	int rc = store_target_list(db, campaign_id, vin, dep_target_cb, d);
	if (rc == PQ_OK && d->n == 0)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "%s has no targets in campaign %s", vin,
		                campaign_id);
	for (size_t i = 0; rc == PQ_OK && i < d->n; i++) {
		const store_target *t = &d->t[i];
		store_release *r = &d->r[i];
		snprintf(names[i], sizeof(names[i]), "%s.%s.swpg", t->release_id, t->package);
		e[i].ecu_id = t->ecu_id;
		e[i].name = names[i];
		e[i].length = t->file_size;
		e[i].hardware_id = t->hardware_id;
		size_t n = 0;
		rc = pq_hex_decode(t->file_sha256, e[i].sha256, 32, &n);
		if (rc == PQ_OK)
			rc = store_release_get(db, t->release_id, r);
		free(r->notes);
		r->notes = NULL;
		if (rc == PQ_OK)
			rc = usrv_release_counter(r->version, &e[i].release_counter);
	}
	char rollback[32] = "";
	if (rc == PQ_OK)
		rc = install_plan(db, campaign_id, d, order, rollback);
	up_meta_set ms = {0};
	if (rc == PQ_OK) {
		pthread_mutex_lock(&u->lock);
		/* the image repository must list these images before the director names them */
		rc = image_refresh_locked(u, db, now_ms, true);
		for (int attempt = 0; rc == PQ_OK && attempt < 3; attempt++) {
			int64_t version = 0;
			char *old = NULL;
			rc = store_uptane_get_latest(db, REPO_DIRECTOR, vin, "targets", &old,
			                             &version);
			free(old);
			if (rc == PQ_ERR_NOTFOUND)
				rc = PQ_OK;
			if (rc == PQ_OK)
				rc = up_director_publish(u->repo, vin, e, d->n, version + 1,
				                         now_ms / 1000, &ms);
			if (rc == PQ_OK)
				rc = store_set(db, REPO_DIRECTOR, vin, &ms, now_ms);
			if (rc != PQ_ERR_EXISTS)
				break;
			up_meta_set_free(&ms); /* another instance took that version */
			rc = sync_repo(u, db);
		}
		pthread_mutex_unlock(&u->lock);
	}
	json_t *body = NULL, *images = NULL, *ecus = NULL;
	int64_t ttl =
	    srv_get_options(s)->token_ttl_ms > 0 ? srv_get_options(s)->token_ttl_ms : 3600 * 1000;
	m->s = s;
	m->db = db;
	m->vin = vin;
	m->now_ms = now_ms;
	m->expires_ms = now_ms + ttl;
	public_base(s, m->base, sizeof(m->base));
	if (rc == PQ_OK && srv_get_options(s)->downloads_encrypt)
		rc = load_recipient(m);
	if (rc == PQ_OK) {
		json_error_t je;
		json_t *dt = json_loadb(ms.targets.data, ms.targets.len, 0, &je);
		images = json_array();
		ecus = json_array();
		body = json_object();
		if (!dt || !images || !ecus || !body) {
			json_decref(dt);
			rc = pq_err_set(PQ_ERR_NOMEM, "metadata");
		} else {
			json_object_set_new(body, "director_targets", dt);
		}
	}
	for (size_t k = 0; rc == PQ_OK && k < d->n; k++) {
		size_t i = order[k];
		json_t *im = NULL;
		rc = image_json(m, &d->t[i], &d->r[i], names[i], &im);
		if (rc == PQ_OK && (json_array_append_new(images, im) ||
		                    json_array_append_new(ecus, json_string(d->t[i].ecu_id))))
			rc = pq_err_set(PQ_ERR_NOMEM, "metadata images");
	}
	if (rc == PQ_OK) {
		char tbuf[32], repo_url[600];
		json_object_set_new(body, "images", images);
		json_object_set_new(body, "install_order", ecus);
		images = ecus = NULL;
		json_object_set_new(body, "rollback_policy", json_string(rollback));
		snprintf(repo_url, sizeof(repo_url), "%s/uptane/image/", m->base);
		json_object_set_new(body, "image_repository", json_string(repo_url));
		snprintf(repo_url, sizeof(repo_url), "%s/uptane/director/%s/", m->base, vin);
		json_object_set_new(body, "director_repository", json_string(repo_url));
		json_object_set_new(body, "director_version", json_integer(ms.targets.version));
		json_object_set_new(body, "token", json_string(m->first_token));
		if (msg_format_time(m->expires_ms, tbuf) == PQ_OK)
			json_object_set_new(body, "token_expires", json_string(tbuf));
		*out = body;
		body = NULL;
	}
	json_decref(images);
	json_decref(ecus);
	json_decref(body);
	up_meta_set_free(&ms);
	pq_key_free(m->kx);
	pq_key_free(m->km);
	free(m);
	free(d);
	free(e);
	free(names);
	free(order);
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
	serve(c, REPO_IMAGE, "", c->params[0]);
}

static void h_director(srv_ctx *c)
{
	if (!route_own_vehicle(c, c->params[0]))
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
