/* repo.c: image and director repositories: key loading, building and signing metadata. */
#include "uptane/repo.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "crypto/pki.h"
#include "uptane/cjson.h"

#define STATE_MAX 4096

struct up_repo {
	up_repo_opts opts;
	up_repo_state st;
	up_keyset keys[2][UP_ROLE_COUNT];
	pq_key **owned; /* keys loaded from files, freed with the repo */
	size_t nowned, capowned;
};

static const char *const kind_names[2] = {"image", "director"};

static const int64_t default_expiry[2][UP_ROLE_COUNT] = {
    {UP_EXPIRY_ROOT, UP_EXPIRY_IMAGE_TARGETS, UP_EXPIRY_SNAPSHOT, UP_EXPIRY_TIMESTAMP},
    {UP_EXPIRY_ROOT, UP_EXPIRY_DIRECTOR_TARGETS, UP_EXPIRY_SNAPSHOT, UP_EXPIRY_TIMESTAMP},
};

static const size_t max_len[2][UP_ROLE_COUNT] = {
    {UP_MAX_ROOT, UP_MAX_IMAGE_TARGETS, UP_MAX_SNAPSHOT, UP_MAX_TIMESTAMP},
    {UP_MAX_ROOT, UP_MAX_DIRECTOR_TARGETS, UP_MAX_SNAPSHOT, UP_MAX_TIMESTAMP},
};

void up_blob_free(up_blob *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->version = 0;
}

void up_meta_set_free(up_meta_set *m)
{
	if (!m)
		return;
	up_blob_free(&m->root);
	up_blob_free(&m->targets);
	up_blob_free(&m->snapshot);
	up_blob_free(&m->timestamp);
}

static int64_t expiry(const up_repo *r, up_repo_kind k, up_role role, int64_t now)
{
	int64_t e = r->opts.expiry[k][role];
	return now + (e > 0 ? e : default_expiry[k][role]);
}

/* ---- opening ------------------------------------------------------------------------ */

static int check_keysets(up_keyset keys[2][UP_ROLE_COUNT])
{
	for (int k = 0; k < 2; k++)
		for (int r = 0; r < UP_ROLE_COUNT; r++) {
			if (keys[k][r].n == 0 || keys[k][r].n > UP_ROLE_KEYS_MAX)
				return pq_err_set(PQ_ERR_INVAL, "%s %s: %zu keys", kind_names[k],
				                  up_role_name((up_role)r), keys[k][r].n);
			for (size_t i = 0; i < keys[k][r].n; i++)
				if (!keys[k][r].keys[i] || !pq_key_has_private(keys[k][r].keys[i]))
					return pq_err_set(PQ_ERR_INVAL, "%s %s: not a private key",
					                  kind_names[k], up_role_name((up_role)r));
		}
	return PQ_OK;
}

int up_repo_new(const up_keyset image[UP_ROLE_COUNT], const up_keyset director[UP_ROLE_COUNT],
                const up_repo_opts *opts, const up_repo_state *state, up_repo **out)
{
	up_keyset keys[2][UP_ROLE_COUNT];
	*out = NULL;
	memcpy(keys[0], image, sizeof(keys[0]));
	memcpy(keys[1], director, sizeof(keys[1]));
	int rc = check_keysets(keys);
	if (rc != PQ_OK)
		return rc;
	up_repo *r = calloc(1, sizeof(*r));
	if (!r)
		return pq_err_set(PQ_ERR_NOMEM, "repo");
	if (opts)
		r->opts = *opts;
	if (state)
		r->st = *state;
	memcpy(r->keys, keys, sizeof(r->keys));
	*out = r;
	return PQ_OK;
}

void up_repo_free(up_repo *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nowned; i++)
		pq_key_free(r->owned[i]);
	free(r->owned);
	free(r);
}

static int own(up_repo *r, pq_key *k)
{
	if (r->nowned == r->capowned) {
		size_t cap = r->capowned ? 2 * r->capowned : 16;
		pq_key **n = realloc(r->owned, cap * sizeof(pq_key *));
		if (!n)
			return pq_err_set(PQ_ERR_NOMEM, "repo keys");
		r->owned = n;
		r->capowned = cap;
	}
	r->owned[r->nowned++] = k;
	return PQ_OK;
}

/* Loads pki_dir/uptane/{image,director}/<role>-<alg>.key for the policy into keys, the
 * loaded keys owned by r. */
static int load_keys(up_repo *r, const char *pki_dir, up_keyset keys[2][UP_ROLE_COUNT])
{
	pq_alg algs[2], classical = r->opts.classical;
	char p[PATH_MAX];
	if (classical == PQ_ALG_NONE) {
		snprintf(p, sizeof(p), "%s/uptane/image/root-%s.key", pki_dir,
		         pq_alg_name(PQ_ALG_ECDSA_P256));
		classical = access(p, F_OK) == 0 ? PQ_ALG_ECDSA_P256 : PQ_ALG_ED25519;
	}
	int nalg = pq_policy_algs(r->opts.policy, classical, algs);
	memset(keys, 0, 2 * UP_ROLE_COUNT * sizeof(up_keyset));
	for (int k = 0; k < 2; k++)
		for (int role = 0; role < UP_ROLE_COUNT; role++)
			for (int a = 0; a < nalg; a++) {
				pq_key *key = NULL;
				int n = snprintf(p, sizeof(p), "%s/uptane/%s/%s-%s.key", pki_dir,
				                 kind_names[k], up_role_name((up_role)role),
				                 pq_alg_name(algs[a]));
				if (n < 0 || (size_t)n >= sizeof(p))
					return pq_err_set(PQ_ERR_RANGE, "path too long: %s",
					                  pki_dir);
				int rc = pq_key_load(p, &key);
				if (rc == PQ_OK && pq_key_alg(key) != algs[a])
					rc = pq_err_set(PQ_ERR_FORMAT, "not a %s key",
					                pq_alg_name(algs[a]));
				if (rc == PQ_OK && !pq_key_has_private(key))
					rc = pq_err_set(PQ_ERR_FORMAT, "not a private key");
				if (rc == PQ_OK)
					rc = own(r, key);
				if (rc != PQ_OK) {
					pq_key_free(key);
					return pq_err_wrap(rc, "Uptane key %s", p);
				}
				keys[k][role].keys[keys[k][role].n++] = key;
			}
	return PQ_OK;
}

int up_repo_open(const char *pki_dir, const up_repo_opts *opts, const up_repo_state *state,
                 up_repo **out)
{
	up_keyset keys[2][UP_ROLE_COUNT];
	*out = NULL;
	if (!pki_dir)
		return pq_err_set(PQ_ERR_INVAL, "up_repo_open: no PKI directory");
	up_repo *r = calloc(1, sizeof(*r));
	if (!r)
		return pq_err_set(PQ_ERR_NOMEM, "repo");
	if (opts)
		r->opts = *opts;
	if (state)
		r->st = *state;
	int rc = load_keys(r, pki_dir, keys);
	if (rc == PQ_OK)
		rc = check_keysets(keys);
	if (rc != PQ_OK) {
		up_repo_free(r);
		return rc;
	}
	memcpy(r->keys, keys, sizeof(r->keys));
	*out = r;
	return PQ_OK;
}

const up_repo_state *up_repo_state_get(const up_repo *r)
{
	return &r->st;
}

/* ---- state file -------------------------------------------------------------------- */

int up_repo_state_save(const up_repo_state *st, const char *path)
{
	char hex[65], *text = NULL;
	size_t n = 0;
	pq_hex_encode(st->snapshot_sha256, 32, hex);
	json_t *j =
	    json_pack("{s:I, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:s}}", "director_root",
	              (json_int_t)st->director_root, "image", "root", (json_int_t)st->image.root,
	              "targets", (json_int_t)st->image.targets, "snapshot",
	              (json_int_t)st->image.snapshot, "timestamp", (json_int_t)st->image.timestamp,
	              "snapshot", "length", (json_int_t)st->snapshot_length, "sha256", hex);
	int rc = j ? cj_encode(j, STATE_MAX, &text, &n) : pq_err_set(PQ_ERR_NOMEM, "state");
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(path, text, n, 0600, true);
	json_decref(j);
	free(text);
	return rc;
}

int up_repo_state_load(const char *path, up_repo_state *st)
{
	char *text = NULL;
	size_t n = 0;
	json_int_t dr = 0, ir = 0, it = 0, is = 0, its = 0, sl = 0;
	const char *hex = NULL;
	size_t hl = 0;
	json_t *j = NULL;
	int rc = pq_file_read(path, STATE_MAX, &text, &n);
	if (rc != PQ_OK)
		return rc;
	j = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
	if (!j ||
	    json_unpack(j, "{s:I, s:{s:I, s:I, s:I, s:I !}, s:{s:I, s:s !} !}", "director_root",
	                &dr, "image", "root", &ir, "targets", &it, "snapshot", &is, "timestamp",
	                &its, "snapshot", "length", &sl, "sha256", &hex) != 0)
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: not an Uptane repository state", path);
	else if (dr < 0 || ir < 0 || it < 0 || is < 0 || its < 0 || sl < 0 ||
	         pq_hex_decode(hex, st->snapshot_sha256, 32, &hl) != PQ_OK || hl != 32)
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: bad values", path);
	if (rc == PQ_OK) {
		st->director_root = dr;
		st->image = (up_versions){ir, it, is, its};
		st->snapshot_length = sl;
	}
	json_decref(j);
	free(text);
	return rc;
}

/* ---- building ------------------------------------------------------------------------ */

static json_t *hashes_json(const uint8_t sha256[32], bool has512, const uint8_t sha512[64])
{
	char h1[65], h2[129];
	pq_hex_encode(sha256, 32, h1);
	json_t *h = json_pack("{s:s}", "sha256", h1);
	if (h && has512) {
		pq_hex_encode(sha512, 64, h2);
		if (json_object_set_new(h, "sha512", json_string(h2)) != 0) {
			json_decref(h);
			return NULL;
		}
	}
	return h;
}

static int set_opt(json_t *o, const char *key, const char *v, bool check)
{
	if (!v)
		return PQ_OK;
	if (check) {
		int rc = up_id_check(v);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "%s", key);
	}
	return json_object_set_new(o, key, json_string(v)) == 0
	           ? PQ_OK
	           : pq_err_set(PQ_ERR_NOMEM, "%s", key);
}

static int target_json(const up_target *t, json_t **out)
{
	json_t *custom = NULL, *h = NULL;
	*out = NULL;
	int rc = up_name_check(t->name);
	if (rc == PQ_OK && (t->length < 0 || t->length > CJ_INT_MAX || t->release_counter < 0 ||
	                    t->release_counter > CJ_INT_MAX))
		rc = pq_err_set(PQ_ERR_RANGE, "length or release counter out of range");
	if (rc == PQ_OK)
		rc = up_id_check(t->hardware_id);
	if (rc == PQ_OK && t->version &&
	    (strlen(t->version) == 0 || strlen(t->version) > UP_ID_MAX))
		rc = pq_err_set(PQ_ERR_FORMAT, "version: 1..%d characters", UP_ID_MAX);
	if (rc == PQ_OK) {
		custom = json_pack("{s:s, s:I}", "hardware_id", t->hardware_id, "release_counter",
		                   (json_int_t)t->release_counter);
		h = hashes_json(t->sha256, t->has_sha512, t->sha512);
		if (!custom || !h)
			rc = pq_err_set(PQ_ERR_NOMEM, "target");
	}
	if (rc == PQ_OK)
		rc = set_opt(custom, "ecu_id", t->ecu_id, true);
	if (rc == PQ_OK)
		rc = set_opt(custom, "software_type", t->software_type, true);
	if (rc == PQ_OK)
		rc = set_opt(custom, "version", t->version, false);
	if (rc == PQ_OK) {
		*out = json_pack("{s:O, s:O, s:I}", "custom", custom, "hashes", h, "length",
		                 (json_int_t)t->length);
		if (!*out)
			rc = pq_err_set(PQ_ERR_NOMEM, "target");
	}
	if (rc != PQ_OK)
		rc = pq_err_wrap(rc, "target '%.64s'", t->name ? t->name : "(null)");
	json_decref(custom);
	json_decref(h);
	return rc;
}

/* Signs signed_obj as role of kind with the repo's keys (and `extra`, for root rotation). */
static int sign_role(up_repo *r, up_repo_kind k, up_role role, const json_t *s,
                     const up_keyset *extra, up_blob *out)
{
	up_keyset sets[2] = {r->keys[k][role]};
	size_t n = 1;
	if (extra)
		sets[n++] = *extra;
	return up_sign_ex(role, s, sets, n, r->opts.deterministic, max_len[k][role], &out->data,
	                  &out->len);
}

/* A snapshot or timestamp naming one metadata file by version, length and SHA-256. */
static int meta_json(const char *file, const up_blob *b, json_t **out)
{
	uint8_t d[32];
	int rc = pq_hash(PQ_HASH_SHA256, b->data, b->len, d);
	*out = NULL;
	if (rc != PQ_OK)
		return rc;
	json_t *h = hashes_json(d, false, NULL);
	*out = h ? json_pack("{s:{s:o, s:I, s:I}}", file, "hashes", h, "length", (json_int_t)b->len,
	                     "version", (json_int_t)b->version)
	         : NULL;
	return *out ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "meta");
}

/* Builds and signs role `role` of kind k at version v with extra members from `body`
 * (stolen). */
static int make_role(up_repo *r, up_repo_kind k, up_role role, int64_t v, int64_t now, json_t *body,
                     up_blob *out)
{
	json_t *s = NULL;
	int rc = body ? up_signed_new(role, v, expiry(r, k, role, now), &s)
	              : pq_err_set(PQ_ERR_NOMEM, "%s", up_role_name(role));
	if (rc == PQ_OK && json_object_update(s, body) != 0)
		rc = pq_err_set(PQ_ERR_NOMEM, "%s", up_role_name(role));
	if (rc == PQ_OK)
		rc = sign_role(r, k, role, s, NULL, out);
	if (rc == PQ_OK)
		out->version = v;
	json_decref(s);
	json_decref(body);
	return rc;
}

/* snapshot (naming targets) and timestamp (naming the snapshot) at versions vs and vt */
static int make_snapshot_timestamp(up_repo *r, up_repo_kind k, const up_blob *targets, int64_t vs,
                                   int64_t vt, int64_t now, up_meta_set *out)
{
	json_t *m = NULL;
	int rc = meta_json("targets.json", targets, &m);
	if (rc == PQ_OK)
		rc = make_role(r, k, UP_ROLE_SNAPSHOT, vs, now, json_pack("{s:o}", "meta", m),
		               &out->snapshot);
	if (rc == PQ_OK)
		rc = meta_json("snapshot.json", &out->snapshot, &m);
	if (rc == PQ_OK)
		rc = make_role(r, k, UP_ROLE_TIMESTAMP, vt, now, json_pack("{s:o}", "meta", m),
		               &out->timestamp);
	return rc;
}

int up_repo_rotate_root(up_repo *r, up_repo_kind kind, const up_keyset new_keys[UP_ROLE_COUNT],
                        int64_t now_s, up_blob *out)
{
	json_t *s = NULL;
	memset(out, 0, sizeof(*out));
	if (kind != UP_REPO_IMAGE && kind != UP_REPO_DIRECTOR)
		return pq_err_set(PQ_ERR_INVAL, "bad repository kind");
	int64_t *ver = kind == UP_REPO_IMAGE ? &r->st.image.root : &r->st.director_root;
	up_keyset next[2][UP_ROLE_COUNT];
	memcpy(next, r->keys, sizeof(next));
	if (new_keys)
		memcpy(next[kind], new_keys, UP_ROLE_COUNT * sizeof(up_keyset));
	int rc = check_keysets(next);
	if (rc == PQ_OK)
		rc = up_root_build(next[kind], NULL, r->opts.policy, *ver + 1,
		                   expiry(r, kind, UP_ROLE_ROOT, now_s), &s);
	/* signed by the keys of the root before (none for version 1) and the new root keys */
	if (rc == PQ_OK)
		rc = *ver > 0 ? sign_role(r, kind, UP_ROLE_ROOT, s, &next[kind][UP_ROLE_ROOT], out)
		              : up_sign_ex(UP_ROLE_ROOT, s, &next[kind][UP_ROLE_ROOT], 1,
		                           r->opts.deterministic, max_len[kind][UP_ROLE_ROOT],
		                           &out->data, &out->len);
	json_decref(s);
	if (rc != PQ_OK) {
		up_blob_free(out);
		return pq_err_wrap(rc, "%s root", kind_names[kind]);
	}
	out->version = ++*ver;
	memcpy(r->keys, next, sizeof(r->keys));
	return PQ_OK;
}

int up_repo_rotate_root_dir(up_repo *r, up_repo_kind kind, const char *pki_dir, int64_t now_s,
                            up_blob *out)
{
	up_keyset keys[2][UP_ROLE_COUNT];
	memset(out, 0, sizeof(*out));
	if (kind != UP_REPO_IMAGE && kind != UP_REPO_DIRECTOR)
		return pq_err_set(PQ_ERR_INVAL, "bad repository kind");
	int rc = load_keys(r, pki_dir, keys);
	return rc == PQ_OK ? up_repo_rotate_root(r, kind, keys[kind], now_s, out) : rc;
}

int up_image_publish(up_repo *r, const up_target *targets, size_t n, int64_t now_s,
                     up_meta_set *out)
{
	json_t *tj = json_object();
	up_versions v = r->st.image;
	memset(out, 0, sizeof(*out));
	int rc = tj ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "targets");
	if (rc == PQ_OK && (n > UP_TARGETS_MAX || (n && !targets)))
		rc = pq_err_set(PQ_ERR_RANGE, "%zu targets, at most %d", n, UP_TARGETS_MAX);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		json_t *t = NULL;
		rc = target_json(&targets[i], &t);
		if (rc == PQ_OK && json_object_get(tj, targets[i].name))
			rc = pq_err_set(PQ_ERR_EXISTS, "target '%s' listed twice", targets[i].name);
		if (rc == PQ_OK && json_object_set(tj, targets[i].name, t) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "targets");
		json_decref(t);
	}
	/* the first publication makes root version 1 */
	up_repo_state saved = r->st;
	if (rc == PQ_OK && v.root == 0)
		rc = up_repo_rotate_root(r, UP_REPO_IMAGE, NULL, now_s, &out->root);
	if (rc == PQ_OK) {
		rc = make_role(r, UP_REPO_IMAGE, UP_ROLE_TARGETS, v.targets + 1, now_s,
		               json_pack("{s:O}", "targets", tj), &out->targets);
	}
	if (rc == PQ_OK)
		rc = make_snapshot_timestamp(r, UP_REPO_IMAGE, &out->targets, v.snapshot + 1,
		                             v.timestamp + 1, now_s, out);
	if (rc == PQ_OK) {
		r->st.image.targets = v.targets + 1;
		r->st.image.snapshot = v.snapshot + 1;
		r->st.image.timestamp = v.timestamp + 1;
		r->st.snapshot_length = (int64_t)out->snapshot.len;
		rc = pq_hash(PQ_HASH_SHA256, out->snapshot.data, out->snapshot.len,
		             r->st.snapshot_sha256);
	}
	json_decref(tj);
	if (rc != PQ_OK) {
		/* a root made here was never handed out: forget it (its keys are unchanged) */
		r->st = saved;
		up_meta_set_free(out);
		return pq_err_wrap(rc, "image repository");
	}
	return PQ_OK;
}

int up_image_timestamp(up_repo *r, int64_t now_s, up_blob *out)
{
	json_t *m = NULL;
	memset(out, 0, sizeof(*out));
	if (r->st.image.snapshot == 0 || r->st.snapshot_length <= 0)
		return pq_err_set(PQ_ERR_INVAL, "no snapshot published yet");
	char hex[65];
	pq_hex_encode(r->st.snapshot_sha256, 32, hex);
	m = json_pack("{s:{s:{s:s}, s:I, s:I}}", "snapshot.json", "hashes", "sha256", hex, "length",
	              (json_int_t)r->st.snapshot_length, "version",
	              (json_int_t)r->st.image.snapshot);
	int rc = make_role(r, UP_REPO_IMAGE, UP_ROLE_TIMESTAMP, r->st.image.timestamp + 1, now_s,
	                   m ? json_pack("{s:o}", "meta", m) : NULL, out);
	if (rc != PQ_OK) {
		up_blob_free(out);
		return pq_err_wrap(rc, "image timestamp");
	}
	r->st.image.timestamp++;
	return PQ_OK;
}

static bool same_image(const up_director_entry *a, const up_director_entry *b)
{
	return a->length == b->length && memcmp(a->sha256, b->sha256, 32) == 0 &&
	       a->has_sha512 == b->has_sha512 &&
	       (!a->has_sha512 || memcmp(a->sha512, b->sha512, 64) == 0) &&
	       a->release_counter == b->release_counter;
}

/* Checks director entry i against the entries before it. */
static int check_entry(const up_director_entry *e, size_t i, size_t *bundles)
{
	int rc = up_name_check(e[i].name);
	if (rc == PQ_OK && !e[i].bundle)
		rc = up_id_check(e[i].ecu_id);
	if (rc == PQ_OK && !e[i].bundle)
		rc = up_id_check(e[i].hardware_id);
	if (rc == PQ_OK && (e[i].length < 0 || e[i].length > CJ_INT_MAX ||
	                    e[i].release_counter < 0 || e[i].release_counter > CJ_INT_MAX))
		rc = pq_err_set(PQ_ERR_RANGE, "length or release counter out of range");
	if (rc == PQ_OK && e[i].bundle && ++*bundles > 1)
		rc = pq_err_set(PQ_ERR_INVAL, "more than one bundle");
	for (size_t j = 0; rc == PQ_OK && j < i; j++) {
		if (strcmp(e[i].name, e[j].name) == 0 &&
		    (e[i].bundle || e[j].bundle || !same_image(&e[i], &e[j])))
			rc = pq_err_set(PQ_ERR_INVAL, "entries disagree on image '%s'", e[i].name);
		else if (!e[i].bundle && !e[j].bundle && strcmp(e[i].ecu_id, e[j].ecu_id) == 0)
			rc = pq_err_set(PQ_ERR_EXISTS, "ECU listed twice");
	}
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "director entry %zu", i);
}

/* The target of entry e: a bundle's, or an ECU image's with an empty ECU map. */
static json_t *entry_target(const up_director_entry *e)
{
	json_t *h = hashes_json(e->sha256, e->has_sha512, e->sha512);
	if (!h)
		return NULL;
	if (e->bundle)
		return json_pack("{s:{s:b}, s:o, s:I}", "custom", "bundle", 1, "hashes", h,
		                 "length", (json_int_t)e->length);
	return json_pack("{s:{s:{}, s:I}, s:o, s:I}", "custom", "ecus", "release_counter",
	                 (json_int_t)e->release_counter, "hashes", h, "length",
	                 (json_int_t)e->length);
}

static int director_targets_json(const char *vin, const up_director_entry *e, size_t n,
                                 json_t **out)
{
	json_t *tj = json_object();
	size_t bundles = 0;
	*out = NULL;
	int rc = tj ? pq_vin_check(vin) : pq_err_set(PQ_ERR_NOMEM, "director targets");
	if (rc == PQ_OK && (n > UP_ECUS_MAX + 1 || (n && !e)))
		rc = pq_err_set(PQ_ERR_RANGE, "%zu entries, at most %d ECUs and a bundle", n,
		                UP_ECUS_MAX);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		if ((rc = check_entry(e, i, &bundles)) != PQ_OK)
			break;
		if (i - bundles >= UP_ECUS_MAX) {
			rc = pq_err_set(PQ_ERR_RANGE, "more than %d ECUs", UP_ECUS_MAX);
			break;
		}
		json_t *t = json_object_get(tj, e[i].name);
		if (!t &&
		    (!(t = entry_target(&e[i])) || json_object_set_new(tj, e[i].name, t) != 0)) {
			rc = pq_err_set(PQ_ERR_NOMEM, "director targets");
			break;
		}
		json_t *ecus = json_object_get(json_object_get(t, "custom"), "ecus");
		if (!e[i].bundle &&
		    json_object_set_new(ecus, e[i].ecu_id,
		                        json_pack("{s:s}", "hardware_id", e[i].hardware_id)) != 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "director targets");
	}
	if (rc == PQ_OK) {
		*out = json_pack("{s:o, s:s}", "targets", tj, "vin", vin);
		tj = NULL;
		if (!*out)
			rc = pq_err_set(PQ_ERR_NOMEM, "director targets");
	}
	json_decref(tj);
	return rc;
}

static int director(up_repo *r, const char *vin, const up_director_entry *e, size_t n,
                    int64_t version, int64_t now_s, bool full, up_meta_set *out)
{
	json_t *body = NULL;
	memset(out, 0, sizeof(*out));
	if (version < 1 || version > CJ_INT_MAX)
		return pq_err_set(PQ_ERR_INVAL, "director version %lld", (long long)version);
	up_repo_state saved = r->st;
	int rc = director_targets_json(vin, e, n, &body);
	if (rc == PQ_OK && full && r->st.director_root == 0)
		rc = up_repo_rotate_root(r, UP_REPO_DIRECTOR, NULL, now_s, &out->root);
	if (rc == PQ_OK) {
		rc = make_role(r, UP_REPO_DIRECTOR, UP_ROLE_TARGETS, version, now_s, body,
		               &out->targets);
		body = NULL;
	}
	if (rc == PQ_OK && full)
		rc = make_snapshot_timestamp(r, UP_REPO_DIRECTOR, &out->targets, version, version,
		                             now_s, out);
	json_decref(body);
	if (rc != PQ_OK) {
		r->st = saved;
		up_meta_set_free(out);
		return pq_err_wrap(rc, "director repository, vehicle %.32s", vin ? vin : "(null)");
	}
	return PQ_OK;
}

int up_director_same(const char *targets, size_t len, const char *vin, const up_director_entry *e,
                     size_t n, bool *same)
{
	json_t *want = NULL;
	*same = false;
	json_t *doc = targets ? json_loadb(targets, len, 0, NULL) : NULL;
	const json_t *sg = json_object_get(doc, "signed");
	int rc = sg ? director_targets_json(vin, e, n, &want)
	            : pq_err_set(PQ_ERR_FORMAT, "director targets: not signed metadata");
	if (rc == PQ_OK)
		*same =
		    json_equal(json_object_get(sg, "targets"), json_object_get(want, "targets")) &&
		    json_equal(json_object_get(sg, "vin"), json_object_get(want, "vin"));
	json_decref(want);
	json_decref(doc);
	return rc;
}

int up_director_publish(up_repo *r, const char *vin, const up_director_entry *e, size_t n,
                        int64_t version, int64_t now_s, up_meta_set *out)
{
	return director(r, vin, e, n, version, now_s, true, out);
}

int up_director_targets(up_repo *r, const char *vin, const up_director_entry *e, size_t n,
                        int64_t version, int64_t now_s, char **out, size_t *len)
{
	up_meta_set m;
	*out = NULL;
	*len = 0;
	int rc = director(r, vin, e, n, version, now_s, false, &m);
	if (rc == PQ_OK) {
		*out = m.targets.data;
		*len = m.targets.len;
		m.targets.data = NULL;
		up_meta_set_free(&m);
	}
	return rc;
}
