/* releases.c: firmware releases (the notice board). A release turns a complete upload
 * (uploads.c) into its full SWPG package at once and, against an earlier release, queues a
 * delta (delta_routes.c) that the delta worker computes, or checks when it is the
 * operator's own (delta_jobs.c, release_delta.c). Images and
 * packages are content-addressed: DATA/images/<sha256>, DATA/files/<sha256>. With
 * downloads.encrypt, each package is also kept encrypted under its own content key
 * (srv_package_key, docs/security.md "Package encryption"): DATA/files/<enc_sha256>, the
 * key in the store's package_keys. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/http.h>

#include <openssl/crypto.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/semver.h"
#include "core/text.h"
#include "core/uuid.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"
#include "server/releases_int.h"
#include "server/routes.h"

/* ---- package encryption ---------------------------------------------------------------- */

/* Serialises the lazy encryption of packages in this process (srv_package_key). */
static pthread_mutex_t enc_lock = PTHREAD_MUTEX_INITIALIZER;

/* Encrypts DATA/files/<file_sha256> under a fresh random content key (chunked AES-256-GCM,
 * the default chunk size) into DATA/files/<enc_sha256>: written under a temporary name,
 * hashed, then renamed into place. Fills *out; nothing is stored. */
static int encrypt_package(srv *s, const char *file_sha256, int64_t now_ms, store_package_key *out)
{
	char src[PATH_MAX], tmp[PATH_MAX], dst[PATH_MAX], id[PQ_UUID_LEN], name[64];
	uint8_t key[PQ_AEAD_KEY_LEN], d[32];
	struct stat st;
	memset(out, 0, sizeof(*out));
	int rc = pq_uuid4(id);
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), ".enc-%s", id);
		rc = rel_data_path(s, "files", name, tmp);
	}
	if (rc == PQ_OK)
		rc = rel_data_path(s, "files", file_sha256, src);
	if (rc == PQ_OK)
		rc = pq_random(key, sizeof(key));
	if (rc != PQ_OK)
		goto out;
	rc = pq_aead_encrypt_file(key, 0, src, tmp);
	if (rc == PQ_OK)
		rc = pq_hash_file(PQ_HASH_SHA256, tmp, d);
	if (rc == PQ_OK && stat(tmp, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	if (rc == PQ_OK) {
		pq_hex_encode(d, 32, out->enc_sha256);
		rc = rel_data_path(s, "files", out->enc_sha256, dst);
	}
	if (rc == PQ_OK && rename(tmp, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "storing %s: %s", dst, strerror(errno));
	if (rc != PQ_OK) {
		unlink(tmp);
		goto out;
	}
	snprintf(out->file_sha256, sizeof(out->file_sha256), "%s", file_sha256);
	out->enc_size = (int64_t)st.st_size;
	pq_hex_encode(key, sizeof(key), out->content_key);
	out->created_ms = now_ms;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "encrypting package %s", file_sha256);
}

/* Removes an encrypted copy that was not stored. */
static void drop_copy(srv *s, const store_package_key *k)
{
	char p[PATH_MAX];
	if (k->enc_sha256[0] && rel_data_path(s, "files", k->enc_sha256, p) == PQ_OK)
		unlink(p);
}

/* Makes the encrypted copy of a package and stores its key; with another instance first,
 * the copy is dropped and the winner's key returned. */
static int encrypt_and_store(srv *s, store *db, const char *file_sha256, int64_t now_ms,
                             store_package_key *out)
{
	store_package_key k;
	int rc = encrypt_package(s, file_sha256, now_ms, &k);
	if (rc == PQ_OK)
		rc = store_package_key_insert(db, &k);
	if (rc == PQ_OK) {
		*out = k;
		pq_log(PQ_LOG_INFO, "releases", "package %.12s encrypted as %.12s", file_sha256,
		       k.enc_sha256);
	} else {
		drop_copy(s, &k);
		if (rc == PQ_ERR_EXISTS)
			rc = store_package_key_get(db, file_sha256, out);
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

int srv_package_key(srv *s, store *db, const char *file_sha256, bool create, int64_t now_ms,
                    store_package_key *out)
{
	int rc = store_package_key_get(db, file_sha256, out);
	if (rc != PQ_ERR_NOTFOUND || !create)
		return rc;
	pthread_mutex_lock(&enc_lock);
	/* another thread of this process may have made it while this one waited */
	rc = store_package_key_get(db, file_sha256, out);
	if (rc == PQ_ERR_NOTFOUND)
		rc = encrypt_and_store(s, db, file_sha256, now_ms, out);
	pthread_mutex_unlock(&enc_lock);
	return rc;
}

/* ---- releases ------------------------------------------------------------------------------ */

/* The live "release" event of r (docs/api.md "Live events"). */
static void release_event(srv_ctx *c, const store_release *r, bool deleted)
{
	json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", r->id, "title", r->title,
	                      "version", r->version, "ecu_id", r->ecu_id, "hardware_id",
	                      r->hardware_id, "at_ms", (json_int_t)c->now_ms);
	if (e && deleted && json_object_set_new(e, "deleted", json_true()) != 0) {
		json_decref(e);
		e = NULL;
	}
	srv_event(c->s, "release", e);
}

static int delta_json_cb(const store_release_delta *d, void *user)
{
	if (json_array_append_new(user, rel_delta_json(d)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "deltas");
	return PQ_OK;
}

/* A release's JSON without its deltas (read from the store apart: lists read them after
 * the releases' own query). */
static json_t *release_base_json(const store_release *r)
{
	char url[128];
	snprintf(url, sizeof(url), "/packages/%s", r->file_sha256);
	json_t *notes = r->notes ? json_string(r->notes) : json_null();
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:I,s:s},s:{s:s,s:I},s:I,s:s,s:o}", "id",
	                 r->id, "title", r->title, "version", r->version, "hardware_id",
	                 r->hardware_id, "software_type", r->software_type, "ecu_id", r->ecu_id,
	                 "package", "sha256", r->file_sha256, "length", (json_int_t)r->file_size,
	                 "url", url, "image", "sha256", r->image_sha256, "length",
	                 (json_int_t)r->image_size, "created_ms", (json_int_t)r->created_ms,
	                 "created_by", r->created_by, "notes", notes);
}

/* Adds "deltas" (oldest first) and "delta" (the newest, as before a release had several)
 * to the JSON of the release id. */
static int attach_deltas(store *db, const char *id, json_t *rel)
{
	json_t *deltas = json_array();
	int rc = deltas ? store_release_delta_list(db, id, delta_json_cb, deltas)
	                : pq_err_set(PQ_ERR_NOMEM, "deltas");
	if (rc != PQ_OK) {
		json_decref(deltas);
		return rc;
	}
	size_t n = json_array_size(deltas);
	json_t *delta = n ? json_incref(json_array_get(deltas, n - 1)) : json_null();
	/* each set_new takes its value, also when it fails */
	int bad = json_object_set_new(rel, "deltas", deltas);
	bad |= json_object_set_new(rel, "delta", delta);
	return bad ? pq_err_set(PQ_ERR_NOMEM, "deltas") : PQ_OK;
}

json_t *rel_release_json(store *db, const store_release *r)
{
	json_t *j = release_base_json(r);
	if (j && attach_deltas(db, r->id, j) != PQ_OK) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int rel_swpg_version(const char *semver_text, swpg_version *v)
{
	semver s;
	int rc = semver_parse(semver_text, &s);
	if (rc != PQ_OK)
		return rc;
	if (s.major > 255 || s.minor > 255 || s.patch > 255)
		return pq_err_set(PQ_ERR_INVAL,
		                  "version %s: SWPG headers hold each number in one byte (0..255)",
		                  semver_text);
	*v = (swpg_version){(uint8_t)s.major, (uint8_t)s.minor, (uint8_t)s.patch, 0};
	return PQ_OK;
}

/* What a POST /api/v1/releases asks for (strings borrowed from the body). */
typedef struct {
	const char *title, *notes, *version, *hw, *ecu, *upload, *delta_from;
	const char *delta_upload; /* an operator's delta package, against delta_from */
	pkg_leaf_opts o;          /* the full package's options */
} release_req;

static const char *jstr(json_t *b, const char *key)
{
	return json_string_value(json_object_get(b, key));
}

/* The body's fields, checked; false when an error was sent. */
static bool parse_release(srv_ctx *c, json_t *b, release_req *q)
{
	const char *type = jstr(b, "software_type"), *comp = jstr(b, "compression");
	memset(q, 0, sizeof(*q));
	q->title = jstr(b, "title");
	q->notes = jstr(b, "notes");
	q->version = jstr(b, "version");
	q->hw = jstr(b, "hardware_id");
	q->ecu = jstr(b, "ecu_id");
	q->upload = jstr(b, "upload_id");
	q->delta_from = jstr(b, "delta_from");
	q->delta_upload = jstr(b, "delta_upload_id");
	if (q->delta_upload && !q->delta_from) {
		srv_error(c, 400, "bad_request",
		          "delta_upload_id needs delta_from: the release the delta applies to");
		return false;
	}
	if (q->delta_upload && q->upload && strcmp(q->delta_upload, q->upload) == 0) {
		srv_error(c, 400, "bad_request", "delta_upload_id and upload_id name one upload");
		return false;
	}
	q->o = (pkg_leaf_opts){.type = SWPG_TYPE_APP, .compression = SWPG_COMP_ZSTD};
	if (q->version && strlen(q->version) > STORE_VERSION_MAX) {
		srv_error(c, 400, "bad_request", "version longer than %d characters",
		          STORE_VERSION_MAX);
		return false;
	}
	if (!q->title || !q->version || !q->hw || !q->ecu || !q->upload) {
		srv_error(c, 400, "bad_request",
		          "title, version, hardware_id, ecu_id and upload_id are required");
		return false;
	}
	if (strlen(q->title) > 128 || strlen(q->hw) > STORE_NAME_MAX ||
	    strlen(q->ecu) > STORE_NAME_MAX || (q->notes && strlen(q->notes) > 65536)) {
		srv_error(c, 400, "bad_request", "a field is too long");
		return false;
	}
	if (rel_swpg_version(q->version, &q->o.version) != PQ_OK ||
	    swpg_ecu_parse(q->ecu, &q->o.ecu) != PQ_OK ||
	    (type && swpg_type_parse(type, &q->o.type) != PQ_OK) ||
	    (comp && swpg_comp_parse(comp, &q->o.compression) != PQ_OK)) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		return false;
	}
	return true;
}

/* The upload q names exists and is complete; false when an error was sent. */
bool rel_upload_ready(srv_ctx *c, const char *upload, char want[65])
{
	uint64_t size = 0, received = 0;
	if (!rel_valid_id(upload) || rel_upload_meta(c, upload, &size, want) != PQ_OK) {
		srv_error(c, 400, "bad_request", "no upload %s", upload);
		return false;
	}
	int rc = rel_upload_received(c, upload, &received);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return false;
	}
	if (received != size) {
		srv_error(c, 409, "upload_incomplete", "upload %s has %llu of %llu bytes", upload,
		          (unsigned long long)received, (unsigned long long)size);
		return false;
	}
	return true;
}

/* The upload, hashed (sha) and checked against its declared hash `want`; false when an
 * error was sent. */
bool rel_hash_upload(srv_ctx *c, const char *upload, const char *want, char sha[65])
{
	char up[PATH_MAX];
	uint8_t d[32];
	int rc = rel_upload_path(c, upload, "part", up);
	if (rc == PQ_OK)
		rc = pq_hash_file(PQ_HASH_SHA256, up, d);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "hashing the upload");
		return false;
	}
	pq_hex_encode(d, 32, sha);
	if (want[0] && strcmp(want, sha) != 0) {
		srv_error(c, 422, "hash_mismatch", "upload %s: its SHA-256 is %s, %s was declared",
		          upload, sha, want);
		return false;
	}
	return true;
}

/* The upload (hashed: sha) linked to DATA/images/<sha> (img); false when an error was
 * sent. */
static bool take_image(srv_ctx *c, const char *upload, const char *sha, char img[PATH_MAX])
{
	char up[PATH_MAX], dir[PATH_MAX];
	int rc = rel_upload_path(c, upload, "part", up);
	if (rc == PQ_OK)
		rc = pq_path_join(dir, sizeof(dir), srv_get_options(c->s)->data_dir, "images");
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, PQ_PRIVATE_DIR_MODE);
	if (rc == PQ_OK)
		rc = pq_path_join(img, PATH_MAX, dir, sha);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "image store");
		return false;
	}
	/* a second name for the uploaded bytes; the upload stays until the release is stored */
	if (link(up, img) != 0 && errno != EEXIST) {
		srv_error(c, 500, "internal", "storing the image: %s", strerror(errno));
		return false;
	}
	return true;
}

int rel_build_into_store(srv *s, const char *image, const pkg_leaf_opts *o, char sha[65],
                         int64_t *size)
{
	char tmp[PATH_MAX], dst[PATH_MAX], id[PQ_UUID_LEN], name[64];
	pkg_unit u;
	int rc = pq_uuid4(id);
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), ".build-%s", id);
		rc = rel_data_path(s, "files", name, tmp);
	}
	if (rc != PQ_OK)
		return rc;
	rc = pkg_build_leaf(image, o, tmp, &u);
	if (rc != PQ_OK) {
		unlink(tmp); /* a full disk leaves no part of it */
		return rc;
	}
	pq_hex_encode(u.sha256, 32, sha);
	rc = rel_data_path(s, "files", sha, dst);
	if (rc == PQ_OK && rename(tmp, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "storing package %s: %s", sha, strerror(errno));
	if (rc != PQ_OK) {
		unlink(tmp);
		return rc;
	}
	*size = (int64_t)u.size;
	return PQ_OK;
}

/* The release record of q (r->notes borrowed from the body), without its image and
 * package. */
static int fill_release(srv_ctx *c, const release_req *q, store_release *r)
{
	int rc = pq_uuid4(r->id);
	if (rc != PQ_OK)
		return rc;
	snprintf(r->title, sizeof(r->title), "%s", q->title);
	r->notes = (char *)q->notes;
	snprintf(r->version, sizeof(r->version), "%s", q->version);
	snprintf(r->hardware_id, sizeof(r->hardware_id), "%s", q->hw);
	snprintf(r->software_type, sizeof(r->software_type), "%s", swpg_type_name(q->o.type));
	snprintf(r->ecu_id, sizeof(r->ecu_id), "%s", q->ecu);
	snprintf(r->created_by, sizeof(r->created_by), "%.64s", c->actor);
	r->created_ms = c->now_ms;
	return PQ_OK;
}

/* The release, its full package's key and its queued delta (d: none when d->release_id is
 * empty) together. */
static int store_release_all(store *db, const store_release *r, const store_package_key *kf,
                             const store_release_delta *d)
{
	int rc = store_begin(db);
	if (rc != PQ_OK)
		return rc;
	if (kf->enc_sha256[0])
		rc = store_package_key_insert(db, kf);
	if (rc == PQ_OK)
		rc = store_release_insert(db, r);
	if (rc == PQ_OK && d->release_id[0])
		rc = store_release_delta_insert(db, d);
	if (rc == PQ_OK)
		return store_commit(db);
	store_rollback(db);
	return rc;
}

/* A release with the same unique key is refused before anything is used up (the upload
 * stays, for another version); false with the 409 or 500 sent. The insert checks it again. */
static bool release_is_new(srv_ctx *c, const release_req *q)
{
	bool found = false;
	int rc = store_release_exists(c->db, q->hw, q->ecu, swpg_type_name(q->o.type), q->version,
	                              &found);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "looking for the release");
		return false;
	}
	if (found)
		srv_error(c, 409, "conflict",
		          "a release %s %s of %s for %s exists already (the upload is kept)",
		          q->ecu, q->version, swpg_type_name(q->o.type), q->hw);
	return !found;
}

/* The checks before anything is built: the uploads are complete, the release is new, the
 * delta's base is one (r filled, base read) and the delta queue has room; false when an
 * error was sent. */
static bool create_checks(srv_ctx *c, const release_req *q, char want[65], char want_d[65],
                          store_release *r, store_release *base)
{
	if (!rel_upload_ready(c, q->upload, want) ||
	    (q->delta_upload && !rel_upload_ready(c, q->delta_upload, want_d)) ||
	    !release_is_new(c, q))
		return false;
	int rc = fill_release(c, q, r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "release");
		return false;
	}
	return !q->delta_from || (rel_delta_base(c, r, q->delta_from, base) && rel_delta_room(c));
}

/* The full upload, hashed into r (and its size); with an operator's delta, that delta
 * hashed against its declared want_d and its descriptor checked against the base and the
 * new image (422 delta_mismatch) before anything is stored; false when an error was sent. */
static bool check_uploads(srv_ctx *c, const release_req *q, const char *want, const char *want_d,
                          const store_release *base, store_release *r)
{
	char up[PATH_MAX], dsha[65];
	struct stat st;
	if (!rel_hash_upload(c, q->upload, want, r->image_sha256))
		return false;
	int rc = rel_upload_path(c, q->upload, "part", up);
	if (rc == PQ_OK && stat(up, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "the upload: %s", strerror(errno));
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return false;
	}
	r->image_size = st.st_size;
	return !q->delta_upload || (rel_hash_upload(c, q->delta_upload, want_d, dsha) &&
	                            rel_delta_upload_ok(c, q->delta_upload, r, base));
}

/* The uploaded image (hashed into r) linked into DATA/images/, and its full package (and its
 * encrypted copy: kf); false when an error was sent. */
static bool make_full(srv_ctx *c, const release_req *q, store_release *r, store_package_key *kf)
{
	char img[PATH_MAX];
	if (!take_image(c, q->upload, r->image_sha256, img))
		return false;
	int rc = rel_build_into_store(c->s, img, &q->o, r->file_sha256, &r->file_size);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "building the package");
		return false;
	}
	rc = srv_get_options(c->s)->downloads_encrypt
	         ? encrypt_package(c->s, r->file_sha256, c->now_ms, kf)
	         : PQ_OK;
	if (rc != PQ_OK) {
		srv_fail(c, rc, "encrypting the package");
		return false;
	}
	return true;
}

/* The delta q asks for, queued in d (the operator's delta upload, checked by check_uploads,
 * linked into DATA/deltas/); false when an error was sent. */
static bool make_delta(srv_ctx *c, const release_req *q, const store_release *r,
                       const store_release *base, store_release_delta *d)
{
	char up[PATH_MAX];
	int rc = q->delta_upload ? rel_upload_path(c, q->delta_upload, "part", up) : PQ_OK;
	if (rc == PQ_OK)
		rc = rel_delta_prepare(c, r, base, q->delta_upload ? up : NULL, d);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "queueing the delta");
		return false;
	}
	return true;
}

/* POST /api/v1/releases: the full package now; a delta (delta_from, with delta_upload_id
 * the operator's) queued for the delta worker (docs/api.md 7.6). */
static void h_release_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	release_req q;
	store_release r = {0}, base = {0};
	store_release_delta d = {0};
	store_package_key kf = {0}; /* the full package's encrypted copy, if any */
	bool stored = false, locked = false;
	char want[65], want_d[65];
	if (!b || !srv_query_only(c, NULL) || !parse_release(c, b, &q) ||
	    !rel_rollout_check(c, b) || !create_checks(c, &q, want, want_d, &r, &base) ||
	    !check_uploads(c, &q, want, want_d, &base, &r))
		goto out;
	rel_files_lock(c->s); /* from the first file made to the rows that name them */
	locked = true;
	if (!make_full(c, &q, &r, &kf) || (q.delta_from && !make_delta(c, &q, &r, &base, &d)))
		goto out;
	int rc = store_release_all(c->db, &r, &kf, &d);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "storing the release");
		goto out;
	}
	stored = true;
	rel_files_unlock(c->s);
	locked = false;
	if (rel_upload_remove(c, q.upload) != PQ_OK ||
	    (q.delta_upload && rel_upload_remove(c, q.delta_upload) != PQ_OK))
		pq_log(PQ_LOG_WARN, "releases", "upload: %s", pq_err_detail());
	srv_audit(c, "release.create", r.id,
	          json_pack("{s:s,s:s,s:s,s:b,s:s*,s:s*}", "version", r.version, "hardware_id",
	                    r.hardware_id, "package_sha256", r.file_sha256, "encrypted",
	                    kf.enc_sha256[0] != '\0', "delta_source",
	                    d.release_id[0] ? d.source : NULL, "delta_base_version",
	                    d.release_id[0] ? d.base_version : NULL));
	release_event(c, &r, false);
	if (d.release_id[0]) {
		rel_delta_event(c->s, &d);
		rel_jobs_wake(c->s);
	}
	json_t *out = rel_release_json(c->db, &r);
	rel_rollout_start(c, &r, b, out);
	srv_json(c, 201, out);
out:
	r.notes = NULL; /* the body's */
	if (!stored) {
		drop_copy(c->s, &kf);
		rel_delta_unprepare(c->s, &d);
	}
	if (locked) { /* what this failed release built, unless something else names it */
		const char *made[] = {r.file_sha256, r.image_sha256};
		if (rel_files_forget(c->s, c->db, made, 2) != PQ_OK)
			pq_log(PQ_LOG_WARN, "releases", "cleaning up: %s", pq_err_detail());
		rel_files_unlock(c->s);
	}
	OPENSSL_cleanse(&kf, sizeof(kf));
	store_release_clear(&base);
	json_decref(b);
}

static int list_rel_cb(const store_release *r, void *user)
{
	if (json_array_append_new(user, release_base_json(r)) != 0)
		return pq_err_set(PQ_ERR_NOMEM, "releases");
	return PQ_OK;
}

/* The list's filters, checked (an ECU id must be one parse_release accepts); false when an
 * error was sent. The strings are malloc'd (freed by the caller, also on failure). */
static bool release_filters(srv_ctx *c, char **hw, char **ecu, char **q)
{
	static const char *const allowed[] = {"limit",  "offset", "hardware_id",
	                                      "ecu_id", "q",      NULL};
	uint16_t e;
	if (!srv_query_only(c, allowed))
		return false;
	*hw = srv_query(c, "hardware_id");
	*ecu = srv_query(c, "ecu_id");
	*q = srv_query(c, "q");
	if (*hw && strlen(*hw) > STORE_NAME_MAX) {
		srv_error(c, 400, "bad_request", "hardware_id longer than %d characters",
		          STORE_NAME_MAX);
		return false;
	}
	if (*ecu && (strlen(*ecu) > STORE_NAME_MAX || swpg_ecu_parse(*ecu, &e) != PQ_OK)) {
		srv_error(c, 400, "bad_request",
		          "ecu_id: not an ECU id (ECU_011, VMG, ZGW1, 0x0E00)");
		return false;
	}
	if (*q && (strlen(*q) > STORE_RELEASE_QUERY_MAX ||
	           !pq_utf8_valid((const unsigned char *)*q, strlen(*q)))) {
		srv_error(c, 400, "bad_request", "q: at most %d bytes of UTF-8",
		          STORE_RELEASE_QUERY_MAX);
		return false;
	}
	return true;
}

static void h_release_list(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	char *hw = NULL, *ecu = NULL, *q = NULL;
	json_t *items = NULL;
	int rc = PQ_OK;
	if (!release_filters(c, &hw, &ecu, &q) || !srv_page(c, &pg))
		goto out;
	store_release_filter f = {.hardware_id = hw, .ecu_id = ecu, .q = q};
	items = json_array();
	rc = items ? store_release_search(c->db, &f, &pg, list_rel_cb, items, &total)
	           : pq_err_set(PQ_ERR_NOMEM, "releases");
	for (size_t i = 0; rc == PQ_OK && i < json_array_size(items); i++) {
		json_t *it = json_array_get(items, i);
		rc = attach_deltas(c->db, json_string_value(json_object_get(it, "id")), it);
	}
	if (rc == PQ_OK) {
		srv_json(c, 200, srv_page_json(items, &pg, total));
		items = NULL;
	} else {
		srv_fail(c, rc, "listing releases");
	}
out:
	json_decref(items);
	free(hw);
	free(ecu);
	free(q);
}

static void h_release_get(srv_ctx *c)
{
	store_release r = {0};
	if (!srv_query_only(c, NULL))
		return;
	int rc = store_release_get(c->db, c->params[0], &r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "release");
		return;
	}
	srv_json(c, 200, rel_release_json(c->db, &r));
	store_release_clear(&r);
}

/* The files a release names: its package and image, and its deltas' packages. */
typedef struct {
	char sha[2 + 2 * 64][65];
	size_t n;
} release_files;

/* A delta's package, and its base image (kept only for it if the base release went). */
static int delta_file_cb(const store_release_delta *d, void *user)
{
	release_files *f = user;
	const char *shas[] = {d->file_sha256, d->base_sha256};
	for (size_t i = 0; i < 2; i++)
		if (shas[i][0] && f->n < sizeof(f->sha) / sizeof(f->sha[0]))
			snprintf(f->sha[f->n++], 65, "%s", shas[i]);
	return PQ_OK;
}

/* Deletes release id (the store's rows), then the files nothing names any more; *r gets
 * the release as it was (for the event). */
static int delete_release(srv_ctx *c, const char *id, store_release *r, bool *known)
{
	release_files f = {0};
	const char *shas[sizeof(f.sha) / sizeof(f.sha[0])];
	rel_files_lock(c->s);
	*known = store_release_get(c->db, id, r) == PQ_OK;
	if (*known) {
		snprintf(f.sha[f.n++], 65, "%s", r->file_sha256);
		snprintf(f.sha[f.n++], 65, "%s", r->image_sha256);
		if (store_release_delta_list(c->db, id, delta_file_cb, &f) != PQ_OK)
			pq_log(PQ_LOG_WARN, "releases", "release %s: its deltas' files stay: %s",
			       id, pq_err_detail());
	}
	int rc = store_release_delete(c->db, id);
	for (size_t i = 0; i < f.n; i++)
		shas[i] = f.sha[i];
	if (rc == PQ_OK && rel_files_forget(c->s, c->db, shas, f.n) != PQ_OK)
		pq_log(PQ_LOG_WARN, "releases", "release %s deleted; freeing its files: %s", id,
		       pq_err_detail());
	rel_files_unlock(c->s);
	return rc;
}

static void h_release_delete(srv_ctx *c)
{
	store_release r = {0};
	bool known = false;
	if (!srv_query_only(c, NULL))
		return;
	/* the event names it; a release that cannot be read is not there to delete */
	int rc = delete_release(c, c->params[0], &r, &known);
	if (rc == PQ_OK && known)
		release_event(c, &r, true);
	store_release_clear(&r);
	if (rc == PQ_ERR_EXISTS) {
		srv_error(c, 409, "in_use", "release %s is used by a campaign", c->params[0]);
		return;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deleting the release");
		return;
	}
	srv_audit(c, "release.delete", c->params[0], NULL);
	srv_json(c, 204, NULL);
}

const srv_route route_release_table[] = {
    {EVHTTP_REQ_POST, "/api/v1/uploads", SRV_AUTH_OPERATOR, rel_upload_create,
     "start a resumable upload"},
    {EVHTTP_REQ_GET, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, rel_upload_get,
     "an upload's progress"},
    {EVHTTP_REQ_PUT, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, rel_upload_put,
     "append a piece at ?offset="},
    {EVHTTP_REQ_DELETE, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, rel_upload_delete,
     "abandon an upload"},
    {EVHTTP_REQ_POST, "/api/v1/releases", SRV_AUTH_OPERATOR, h_release_create,
     "create a release from an upload (full package, optional delta)"},
    {EVHTTP_REQ_GET, "/api/v1/releases", SRV_AUTH_VIEWER, h_release_list, "list releases"},
    {EVHTTP_REQ_GET, "/api/v1/releases/{id}", SRV_AUTH_VIEWER, h_release_get, "a release"},
    {EVHTTP_REQ_DELETE, "/api/v1/releases/{id}", SRV_AUTH_OPERATOR, h_release_delete,
     "delete an unused release"},
    {EVHTTP_REQ_POST, "/api/v1/releases/{id}/deltas", SRV_AUTH_OPERATOR, rel_delta_create,
     "queue a delta from an earlier release (computed, or the operator's, checked)"},
    {EVHTTP_REQ_GET, "/api/v1/releases/{id}/deltas", SRV_AUTH_VIEWER, rel_delta_list,
     "a release's deltas with their state and progress"},
    {0, NULL, 0, NULL, NULL},
};
