/* uptane_meta.c: a vehicle's deployment on the director's side (uptane_srv.h
 * usrv_campaign_metadata): its director targets signed and stored, and the body of
 * ota_campaign_metadata with each image's download URL, token and, with downloads.encrypt,
 * its content key wrapped to the vehicle's KEM keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/text.h"
#include "crypto/aead.h"
#include "crypto/kem.h"
#include "server/bundles.h"
#include "server/msg.h"
#include "server/uptane_int.h"
#include "store/campaign.h"

#define LOGC             "uptane"
#define TOKEN_TTL_MS     (3600 * 1000) /* download tokens without token_ttl_ms */
#define DIRECTOR_RETRIES 3             /* director versions tried against other instances */

/* ---- the deployment's images ------------------------------------------------------------ */

/* One vehicle's deployment: its targets in the store's order, each with its release, the
 * director's entries naming them, and the order of installation. */
typedef struct {
	store_target t[UP_ECUS_MAX];
	store_release r[UP_ECUS_MAX];           /* each target's release (notes dropped) */
	up_director_entry e[UP_ECUS_MAX + 1];   /* the targets', then the bundle's if any */
	char names[UP_ECUS_MAX][USRV_NAME_MAX]; /* usrv__target_name */
	char base_sha[UP_ECUS_MAX][65];         /* a delta's base image ("" for a full one) */
	size_t order[UP_ECUS_MAX];              /* indexes in installation order */
	size_t n;
	char rollback[32]; /* the campaign's rollback_policy */
	json_t *bundle;    /* the campaign's bundle record (docs/api.md 18), or NULL */
	char bundle_name[USRV_NAME_MAX];
} deployment;

static int dep_target_cb(const store_target *t, void *user)
{
	deployment *d = user;
	if (d->n == UP_ECUS_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d target ECUs", UP_ECUS_MAX);
	d->t[d->n++] = *t;
	return PQ_OK;
}

/* The base image of t's delta (the ready delta of its release from its from_version). */
static int delta_base(store *db, const store_target *t, char sha[65])
{
	store_release_delta rd;
	int rc = store_release_delta_get(db, t->release_id, t->from_version, &rd);
	if (rc == PQ_OK &&
	    (rd.state != STORE_DELTA_READY || strcmp(rd.file_sha256, t->file_sha256) != 0))
		rc = pq_err_set(PQ_ERR_NOTFOUND,
		                "release %s: its delta from %s is not the one the "
		                "campaign names",
		                t->release_id, t->from_version);
	if (rc == PQ_OK)
		snprintf(sha, 65, "%s", rd.base_sha256);
	return rc;
}

/* The vehicle's targets in the campaign, their releases and director entries. */
static int load_deployment(store *db, const char *campaign_id, const char *vin, deployment *d)
{
	int rc = store_target_list(db, campaign_id, vin, dep_target_cb, d);
	if (rc != PQ_OK)
		return rc;
	if (d->n == 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "%s has no targets in campaign %s", vin,
		                  campaign_id);
	for (size_t i = 0; i < d->n; i++) {
		const store_target *t = &d->t[i];
		up_director_entry *e = &d->e[i];
		size_t n = 0;
		bool delta = strcmp(t->package, "delta") == 0;
		usrv__target_name(d->names[i], t->release_id, delta ? t->from_version : NULL);
		e->ecu_id = t->ecu_id;
		e->name = d->names[i];
		e->length = t->file_size;
		e->hardware_id = t->hardware_id;
		rc = pq_hex_decode(t->file_sha256, e->sha256, sizeof(e->sha256), &n);
		if (rc == PQ_OK && n != sizeof(e->sha256))
			rc = pq_err_set(PQ_ERR_FORMAT, "target %s: bad SHA-256", d->names[i]);
		if (rc == PQ_OK)
			rc = store_release_get(db, t->release_id, &d->r[i]);
		free(d->r[i].notes);
		d->r[i].notes = NULL;
		if (rc == PQ_OK && delta)
			rc = delta_base(db, t, d->base_sha[i]);
		if (rc == PQ_OK)
			rc = usrv_release_counter(d->r[i].version, &e->release_counter);
		if (rc != PQ_OK)
			return rc;
	}
	return PQ_OK;
}

/* The campaign's bundle, when it was made from one: its record, and its director entry
 * after the targets' (e[n]). */
static int load_bundle(store *db, const char *campaign_id, deployment *d)
{
	char bid[41];
	size_t n = 0;
	int rc = bnd_of_campaign(db, campaign_id, bid);
	if (rc == PQ_ERR_NOTFOUND)
		return PQ_OK;
	if (rc == PQ_OK)
		rc = bnd_load(db, bid, &d->bundle);
	if (rc != PQ_OK)
		return rc;
	const char *sha = json_string_value(json_object_get(d->bundle, "file_sha256"));
	up_director_entry *e = &d->e[d->n];
	usrv__bundle_name(d->bundle_name, bid);
	*e = (up_director_entry){.bundle = true,
	                         .name = d->bundle_name,
	                         .length =
	                             json_integer_value(json_object_get(d->bundle, "file_size"))};
	rc = sha ? pq_hex_decode(sha, e->sha256, sizeof(e->sha256), &n) : PQ_ERR_FORMAT;
	if (rc != PQ_OK || n != sizeof(e->sha256) || e->length <= 0)
		return pq_err_set(PQ_ERR_FORMAT, "bundle %s: bad file_sha256 or file_size", bid);
	return PQ_OK;
}

/* The director entries to sign: the targets' and the bundle's. */
static size_t n_entries(const deployment *d)
{
	return d->n + (d->bundle ? 1 : 0);
}

/* The order of installation: the ECUs the campaign's policy.install_order names, in that
 * order, then the others by ECU id; and the policy's rollback_policy (default
 * all_or_nothing). */
static int install_plan(store *db, const char *campaign_id, deployment *d)
{
	store_campaign c;
	json_t *pol = NULL, *e;
	bool used[UP_ECUS_MAX] = {false};
	size_t k = 0, j;
	memset(&c, 0, sizeof(c));
	int rc = store_campaign_get(db, campaign_id, &c);
	if (rc == PQ_OK)
		rc = srv_json_text(c.policy, "campaign policy", &pol);
	store_campaign_clear(&c);
	if (rc != PQ_OK)
		return rc;
	const char *rb = json_string_value(json_object_get(pol, "rollback_policy"));
	snprintf(d->rollback, sizeof(d->rollback), "%s",
	         rb && strcmp(rb, "none") == 0 ? "none" : "all_or_nothing");
	json_array_foreach(json_object_get(pol, "install_order"), j, e)
	{
		const char *ecu = json_string_value(e);
		for (size_t i = 0; ecu && i < d->n; i++)
			if (!used[i] && strcmp(d->t[i].ecu_id, ecu) == 0) {
				used[i] = true;
				d->order[k++] = i;
				break;
			}
	}
	for (size_t i = 0; i < d->n; i++)
		if (!used[i])
			d->order[k++] = i;
	json_decref(pol);
	return PQ_OK;
}

static int64_t director_ts_lifetime(const usrv *u)
{
	int64_t l = u->opts.expiry[UP_REPO_DIRECTOR][UP_ROLE_TIMESTAMP];
	return l > 0 ? l : UP_EXPIRY_TIMESTAMP;
}

/* Whether the vehicle's stored director targets (old, at version) can be served again: they
 * name exactly d's entries and their timestamp (the shortest-lived of the three, signed with
 * them) has more than half its lifetime left. Then ms->targets takes old. Whatever cannot be
 * read means no (a new version is signed). */
static bool reuse_director(usrv *u, store *db, const char *vin, const deployment *d, char **old,
                           int64_t version, int64_t now_ms, up_meta_set *ms)
{
	bool same = false;
	int64_t ts_exp = 0;
	if (up_director_same(*old, strlen(*old), vin, d->e, n_entries(d), &same) != PQ_OK ||
	    !same ||
	    usrv__stored_expiry(db, USRV_REPO_DIRECTOR, vin, "timestamp", &ts_exp) != PQ_OK ||
	    ts_exp - now_ms / 1000 <= director_ts_lifetime(u) / 2)
		return false;
	ms->targets = (up_blob){.data = *old, .len = strlen(*old), .version = version};
	*old = NULL;
	return true;
}

/* The vehicle's director targets for d: the stored ones while they name the same entries and
 * are fresh (reuse_director), else signed anew at its last version + 1, with the image
 * repository brought up to date first (it must list the images before the director names
 * them). So a vehicle that checks again, or is sent its metadata again, is served the same
 * version. */
static int publish_director(usrv *u, store *db, const char *vin, const deployment *d,
                            int64_t now_ms, up_meta_set *ms)
{
	pthread_mutex_lock(&u->lock);
	int rc = usrv__image_refresh_locked(u, db, now_ms, true);
	for (int attempt = 0; rc == PQ_OK && attempt < DIRECTOR_RETRIES; attempt++) {
		int64_t version = 0;
		char *old = NULL;
		rc =
		    store_uptane_get_latest(db, USRV_REPO_DIRECTOR, vin, "targets", &old, &version);
		bool reused =
		    rc == PQ_OK && reuse_director(u, db, vin, d, &old, version, now_ms, ms);
		free(old);
		if (rc == PQ_ERR_NOTFOUND)
			rc = PQ_OK;
		if (rc != PQ_OK || reused)
			break;
		rc = up_director_publish(u->repo, vin, d->e, n_entries(d), version + 1,
		                         now_ms / 1000, ms);
		if (rc == PQ_OK)
			rc = usrv__store_set(db, USRV_REPO_DIRECTOR, vin, ms, now_ms);
		if (rc != PQ_ERR_EXISTS)
			break;
		up_meta_set_free(ms); /* another instance took that version */
		rc = usrv__sync_repo(u, db);
	}
	pthread_mutex_unlock(&u->lock);
	return rc;
}

/* ---- downloads --------------------------------------------------------------------------- */

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

/* The base URL vehicles reach this server at: public_url without a trailing '/', else
 * https://HOST:PORT of the listen address (127.0.0.1 for a wildcard). */
static int public_base(srv *s, char *out, size_t len)
{
	const srv_options *o = srv_get_options(s);
	int n;
	if (o->public_url) {
		n = snprintf(out, len, "%s", o->public_url);
		if (n > 0 && (size_t)n < len && out[n - 1] == '/')
			out[n - 1] = '\0';
	} else {
		const char *l = o->listen ? o->listen : "";
		const char *colon = strrchr(l, ':');
		int hl = colon ? (int)(colon - l) : (int)strlen(l);
		bool any = hl == 0 || (hl == 7 && strncmp(l, "0.0.0.0", 7) == 0);
		n = any ? snprintf(out, len, "https://127.0.0.1:%d", srv_port(s))
		        : snprintf(out, len, "https://%.*s:%d", hl, l, srv_port(s));
	}
	if (n < 0 || (size_t)n >= len)
		return pq_err_set(PQ_ERR_RANGE, "public URL longer than %zu", len - 1);
	return PQ_OK;
}

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

/* The shared part for vin: the base URL, the tokens' expiry, the recipient keys. */
static int meta_begin(meta_ctx *m, srv *s, store *db, const char *vin, int64_t now_ms)
{
	const srv_options *o = srv_get_options(s);
	m->s = s;
	m->db = db;
	m->vin = vin;
	m->now_ms = now_ms;
	m->expires_ms = now_ms + (o->token_ttl_ms > 0 ? o->token_ttl_ms : TOKEN_TTL_MS);
	int rc = public_base(s, m->base, sizeof(m->base));
	if (rc == PQ_OK && o->downloads_encrypt)
		rc = load_recipient(m);
	return rc;
}

static void meta_end(meta_ctx *m)
{
	pq_key_free(m->kx);
	pq_key_free(m->km);
}

/* "encryption" of one package for the vehicle: the content key wrapped to its KEM keys with
 * aad "VIN|<package sha256>". */
static int encryption_json(meta_ctx *m, const store_package_key *k, json_t **out)
{
	uint8_t key[PQ_AEAD_KEY_LEN], blob[PQ_WRAP_MAX];
	char aad[STORE_VIN_MAX + 1 + 64 + 1];
	char b64[PQ_B64_LEN(PQ_WRAP_MAX)];
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
	if (rc == PQ_OK)
		rc = pq_b64_encode(blob, blen, b64, sizeof(b64));
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "wrapping the key of %s for %s", k->file_sha256, m->vin);
	*out = json_pack("{sssssIssss}", "scheme", USRV_ENC_SCHEME, "sha256", k->enc_sha256,
	                 "length", (json_int_t)k->enc_size, "aad", aad, "wrapped_key", b64);
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "metadata");
}

/* Sets "url" and "encryption" of one package in obj: the encrypted copy (made now if the
 * package has none yet) with a token for it, or with encryption off the package itself
 * and "encryption": null. The URL is /packages/<what is served> or, with path, that path
 * (a bundle campaign's full_package.bin, which serves what the token names). */
static int set_download(meta_ctx *m, json_t *obj, const char *file_sha256, const char *path)
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
	if (rc == PQ_OK && (path ? snprintf(url, sizeof(url), "%s%s?token=%s", m->base, path, token)
	                         : snprintf(url, sizeof(url), "%s/packages/%s?token=%s", m->base,
	                                    serve, token)) >= (int)sizeof(url))
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
                      const char *base_sha, json_t **out)
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
	int rc = set_download(m, im, t->file_sha256, NULL);
	if (rc == PQ_OK && delta) {
		/* the full package of the same release, for a vehicle whose installed image is
		 * not the delta's base (the image repository lists it too) */
		char fname[USRV_NAME_MAX];
		usrv__target_name(fname, t->release_id, NULL);
		json_t *fb = json_pack("{sssIss}", "name", fname, "length",
		                       (json_int_t)r->file_size, "sha256", r->file_sha256);
		/* each set_new takes its value, also a NULL one (and fails) */
		int bad = json_object_set_new(
		    im, "delta_base",
		    json_pack("{ssss}", "sha256", base_sha, "version", t->from_version));
		bad |= json_object_set_new(im, "fallback", fb);
		rc = bad ? pq_err_set(PQ_ERR_NOMEM, "metadata images")
		         : set_download(m, fb, r->file_sha256, NULL);
	}
	if (rc != PQ_OK) {
		json_decref(im);
		return rc;
	}
	*out = im;
	return PQ_OK;
}

/* ---- the metadata body -------------------------------------------------------------------- */

/* "images" and "install_order", in installation order. */
static int images_json(meta_ctx *m, const deployment *d, json_t *body)
{
	json_t *images = json_array(), *ecus = json_array();
	int bad = json_object_set_new(body, "images", images);
	bad |= json_object_set_new(body, "install_order", ecus);
	if (bad)
		return pq_err_set(PQ_ERR_NOMEM, "metadata images");
	for (size_t k = 0; k < d->n; k++) {
		size_t i = d->order[k];
		json_t *im = NULL;
		int rc = image_json(m, &d->t[i], &d->r[i], d->names[i], d->base_sha[i], &im);
		if (rc != PQ_OK)
			return rc;
		if (json_array_append_new(images, im) ||
		    json_array_append_new(ecus, json_string(d->t[i].ecu_id)))
			return pq_err_set(PQ_ERR_NOMEM, "metadata images");
	}
	return PQ_OK;
}

/* A bundle campaign's "bundle" (docs/api.md 18.5): its image repository name, length and
 * SHA-256 (the director names it too), its URL /packages/<campaign id>/full_package.bin
 * with a token, and its encryption like any package's; and each unit image's
 * "bundle_path". */
static int bundle_json(meta_ctx *m, const char *campaign_id, const deployment *d, json_t *body)
{
	char path[96];
	const char *sha = json_string_value(json_object_get(d->bundle, "file_sha256"));
	json_t *b = json_pack("{s:s,s:O,s:s}", "name", d->bundle_name, "length",
	                      json_object_get(d->bundle, "file_size"), "sha256", sha);
	if (!b || json_object_set_new(body, "bundle", b) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "metadata");
	snprintf(path, sizeof(path), "/packages/%s/full_package.bin", campaign_id);
	int rc = set_download(m, b, sha, path);
	return rc == PQ_OK ? bnd_mark_images(d->bundle, body) : rc;
}

/* The body of ota_campaign_metadata (usrv_campaign_metadata). */
static int metadata_body(meta_ctx *m, const deployment *d, const up_meta_set *ms, json_t **out)
{
	char url[600], expires[32];
	json_error_t je;
	json_t *body = json_object();
	json_t *dt = json_loadb(ms->targets.data, ms->targets.len, 0, &je);
	int rc = PQ_OK;
	if (!body || !dt) {
		rc = pq_err_set(dt ? PQ_ERR_NOMEM : PQ_ERR_FORMAT, "director targets: %s", je.text);
		json_decref(dt);
		goto out;
	}
	int bad = json_object_set_new(body, "director_targets", dt);
	rc = bad ? pq_err_set(PQ_ERR_NOMEM, "metadata") : images_json(m, d, body);
	if (rc != PQ_OK)
		goto out;
	bad = json_object_set_new(body, "rollback_policy", json_string(d->rollback));
	snprintf(url, sizeof(url), "%s/uptane/image/", m->base);
	bad |= json_object_set_new(body, "image_repository", json_string(url));
	snprintf(url, sizeof(url), "%s/uptane/director/%s/", m->base, m->vin);
	bad |= json_object_set_new(body, "director_repository", json_string(url));
	bad |= json_object_set_new(body, "director_version", json_integer(ms->targets.version));
	bad |= json_object_set_new(body, "token", json_string(m->first_token));
	if (msg_format_time(m->expires_ms, expires) == PQ_OK)
		bad |= json_object_set_new(body, "token_expires", json_string(expires));
	if (bad) {
		rc = pq_err_set(PQ_ERR_NOMEM, "metadata");
		goto out;
	}
	*out = body;
	body = NULL;
out:
	json_decref(body);
	return rc;
}

int usrv_campaign_metadata(srv *s, store *db, const char *campaign_id, const char *vin,
                           int64_t now_ms, json_t **out)
{
	usrv *u = srv_uptane(s);
	up_meta_set ms = {0};
	meta_ctx m;
	*out = NULL;
	memset(&m, 0, sizeof(m));
	if (!u)
		return pq_err_set(PQ_ERR_UNSUPPORTED,
		                  "no Uptane role keys (uptane.keys or tls.pki)");
	deployment *d = calloc(1, sizeof(*d));
	if (!d)
		return pq_err_set(PQ_ERR_NOMEM, "metadata");
	int rc = load_deployment(db, campaign_id, vin, d);
	if (rc != PQ_OK)
		goto out;
	rc = install_plan(db, campaign_id, d);
	if (rc == PQ_OK)
		rc = load_bundle(db, campaign_id, d);
	if (rc != PQ_OK)
		goto out;
	rc = publish_director(u, db, vin, d, now_ms, &ms);
	if (rc != PQ_OK)
		goto out;
	rc = meta_begin(&m, s, db, vin, now_ms);
	if (rc != PQ_OK)
		goto out;
	rc = metadata_body(&m, d, &ms, out);
	if (rc == PQ_OK && d->bundle)
		rc = bundle_json(&m, campaign_id, d, *out);
	if (rc != PQ_OK) {
		json_decref(*out);
		*out = NULL;
	}
out:
	meta_end(&m);
	up_meta_set_free(&ms);
	json_decref(d->bundle);
	free(d);
	return rc;
}
