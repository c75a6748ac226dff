/* releases.c: resumable uploads and firmware releases (the notice board). An image is
 * uploaded in pieces (each at most the server's body limit, appended at its offset, so an
 * interrupted upload resumes), then a release turns it into SWPG packages: the full image
 * and, against an earlier release, a delta. Images and packages are content-addressed:
 * DATA/images/<sha256>, DATA/files/<sha256>. With downloads.encrypt, each package is also
 * kept encrypted under its own content key (srv_package_key, docs/security.md "Package
 * encryption"): DATA/files/<enc_sha256>, the key in the store's package_keys. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <openssl/crypto.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/semver.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"
#include "server/routes.h"

#define UPLOAD_MAX (4ull << 30) /* an SWPG image is at most 4 GiB */

static bool valid_id(const char *id)
{
	if (strlen(id) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char ch = id[i];
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return true;
}

static void upath(srv_ctx *c, const char *id, const char *ext, char *out, size_t len)
{
	snprintf(out, len, "%s/uploads/%s.%s", srv_get_options(c->s)->data_dir, id, ext);
}

/* The declared size of an upload (from its .meta file: "SIZE SHA256-or-dash\n"). */
static int upload_meta(srv_ctx *c, const char *id, uint64_t *size, char sha[65])
{
	char p[1024], *text = NULL;
	size_t len = 0;
	upath(c, id, "meta", p, sizeof(p));
	int rc = pq_file_read(p, 256, &text, &len);
	if (rc != PQ_OK)
		return rc == PQ_ERR_NOTFOUND ? pq_err_set(PQ_ERR_NOTFOUND, "no upload %s", id) : rc;
	unsigned long long sz = 0;
	char h[65] = "";
	if (sscanf(text, "%llu %64s", &sz, h) != 2) {
		free(text);
		return pq_err_set(PQ_ERR_FORMAT, "upload %s: corrupt metadata", id);
	}
	free(text);
	*size = sz;
	snprintf(sha, 65, "%s", strcmp(h, "-") == 0 ? "" : h);
	return PQ_OK;
}

static uint64_t received_of(srv_ctx *c, const char *id)
{
	char p[1024];
	struct stat st;
	upath(c, id, "part", p, sizeof(p));
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static json_t *upload_json(const char *id, uint64_t size, uint64_t received)
{
	return json_pack("{s:s,s:I,s:I,s:b}", "id", id, "size", (json_int_t)size, "received",
	                 (json_int_t)received, "complete", received == size);
}

static void h_upload_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	char id[37], p[1024], meta[128];
	if (!b)
		return;
	json_t *js = json_object_get(b, "size");
	const char *sha = json_string_value(json_object_get(b, "sha256"));
	if (!json_is_integer(js) || json_integer_value(js) < 0 ||
	    (uint64_t)json_integer_value(js) > UPLOAD_MAX) {
		json_decref(b);
		srv_error(c, 400, "bad_request", "size must be an integer 0..%llu",
		          (unsigned long long)UPLOAD_MAX);
		return;
	}
	if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)) {
		json_decref(b);
		srv_error(c, 400, "bad_request", "sha256 must be 64 lowercase hex digits");
		return;
	}
	uint64_t size = (uint64_t)json_integer_value(js);
	int rc = pq_uuid4(id);
	int n =
	    snprintf(meta, sizeof(meta), "%llu %s\n", (unsigned long long)size, sha ? sha : "-");
	json_decref(b);
	if (rc == PQ_OK) {
		upath(c, id, "meta", p, sizeof(p));
		rc = pq_file_write_atomic(p, meta, (size_t)n, 0640, false);
	}
	if (rc == PQ_OK) {
		upath(c, id, "part", p, sizeof(p));
		rc = pq_file_write_atomic(p, "", 0, 0640, false);
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "creating the upload");
		return;
	}
	srv_audit(c, "upload.create", id, json_pack("{s:I}", "size", (json_int_t)size));
	srv_json(c, 201, upload_json(id, size, 0));
}

static void h_upload_get(srv_ctx *c)
{
	uint64_t size;
	char sha[65];
	const char *id = c->params[0];
	if (!valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = upload_meta(c, id, &size, sha);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return;
	}
	srv_json(c, 200, upload_json(id, size, received_of(c, id)));
}

/* PUT /api/v1/uploads/{id}?offset=N: appends the body if N is where the upload stands. */
static void h_upload_put(srv_ctx *c)
{
	const char *id = c->params[0];
	uint64_t size;
	char sha[65], p[1024];
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	if (!valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = upload_meta(c, id, &size, sha);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return;
	}
	char *off_s = srv_query(c, "offset"), *end = NULL;
	unsigned long long off = off_s ? strtoull(off_s, &end, 10) : 0;
	bool off_ok = off_s && *off_s && !*end;
	free(off_s);
	if (!off_ok) {
		srv_error(c, 400, "bad_request",
		          "?offset= (the number of bytes already sent) is "
		          "required");
		return;
	}
	upath(c, id, "part", p, sizeof(p));
	int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	flock(fd, LOCK_EX); /* two workers never append to one upload at once */
	struct stat st;
	uint64_t have = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (off != have) {
		flock(fd, LOCK_UN);
		close(fd);

		srv_json(c, 409,
		         json_pack("{s:{s:s,s:s},s:I}", "error", "code", "offset_mismatch",
		                   "message",
		                   "the upload stands at another offset: resume from 'received'",
		                   "received", (json_int_t)have));
		return;
	}
	if (have + len > size) {
		flock(fd, LOCK_UN);
		close(fd);
		srv_error(c, 413, "too_large", "this piece would exceed the declared size %llu",
		          (unsigned long long)size);
		return;
	}
	rc = PQ_OK;
	while (rc == PQ_OK && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = pq_write_all(fd, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
	}
	flock(fd, LOCK_UN);
	close(fd);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "storing the piece");
		return;
	}
	srv_json(c, 200, upload_json(id, size, have + len));
}

static void h_upload_delete(srv_ctx *c)
{
	char p[1024];
	const char *id = c->params[0];
	if (!valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	upath(c, id, "meta", p, sizeof(p));
	if (unlink(p) != 0) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	upath(c, id, "part", p, sizeof(p));
	unlink(p);
	srv_audit(c, "upload.delete", id, NULL);
	srv_json(c, 204, NULL);
}

/* ---- releases ------------------------------------------------------------------------------ */

static json_t *release_json(const store_release *r)
{
	json_t *j =
	    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:I,s:s},s:{s:s,s:I},s:I,s:s}", "id", r->id,
	              "title", r->title, "version", r->version, "hardware_id", r->hardware_id,
	              "software_type", r->software_type, "ecu_id", r->ecu_id, "package", "sha256",
	              r->file_sha256, "length", (json_int_t)r->file_size, "url", "", "image",
	              "sha256", r->image_sha256, "length", (json_int_t)r->image_size, "created_ms",
	              (json_int_t)r->created_ms, "created_by", r->created_by);
	char url[128];
	snprintf(url, sizeof(url), "/packages/%s", r->file_sha256);
	json_object_set_new(json_object_get(j, "package"), "url", json_string(url));
	json_object_set_new(j, "notes", r->notes ? json_string(r->notes) : json_null());
	if (r->delta_base_version[0]) {
		snprintf(url, sizeof(url), "/packages/%s", r->delta_file_sha256);
		json_object_set_new(j, "delta",
		                    json_pack("{s:s,s:s,s:I,s:s,s:s}", "base_version",
		                              r->delta_base_version, "sha256", r->delta_file_sha256,
		                              "length", (json_int_t)r->delta_file_size,
		                              "base_image_sha256", r->delta_base_sha256, "url",
		                              url));
	} else {
		json_object_set_new(j, "delta", json_null());
	}
	return j;
}

/* Builds a package of `image` into DATA/files/<sha256>; fills sha and size. */
static int build_into_store(srv_ctx *c, const char *image, const pkg_leaf_opts *o, char sha[65],
                            int64_t *size)
{
	char tmp[1024], dst[1024], id[37];
	pkg_unit u;
	const char *data = srv_get_options(c->s)->data_dir;
	int rc = pq_uuid4(id);
	if (rc != PQ_OK)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s/files/.build-%s", data, id);
	rc = pkg_build_leaf(image, o, tmp, &u);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(u.sha256, 32, sha);
	snprintf(dst, sizeof(dst), "%s/files/%s", data, sha);
	if (rename(tmp, dst) != 0) {
		unlink(tmp);
		return pq_err_set(PQ_ERR_IO, "storing package %s: %s", sha, strerror(errno));
	}
	*size = (int64_t)u.size;
	return PQ_OK;
}

/* ---- package encryption ---------------------------------------------------------------- */

/* Serialises the lazy encryption of packages in this process (srv_package_key). */
static pthread_mutex_t enc_lock = PTHREAD_MUTEX_INITIALIZER;

/* Encrypts DATA/files/<file_sha256> under a fresh random content key (chunked AES-256-GCM,
 * the default chunk size) into DATA/files/<enc_sha256>: written under a temporary name,
 * hashed, then renamed into place. Fills *out; nothing is stored. */
static int encrypt_package(srv *s, const char *file_sha256, int64_t now_ms, store_package_key *out)
{
	const char *data = srv_get_options(s)->data_dir;
	char src[1024], tmp[1024], dst[1024], id[37];
	uint8_t key[PQ_AEAD_KEY_LEN], d[32];
	struct stat st;
	memset(out, 0, sizeof(*out));
	int rc = pq_uuid4(id);
	if (rc == PQ_OK)
		rc = pq_random(key, sizeof(key));
	if (rc != PQ_OK)
		goto out;
	snprintf(src, sizeof(src), "%s/files/%s", data, file_sha256);
	snprintf(tmp, sizeof(tmp), "%s/files/.enc-%s", data, id);
	rc = pq_aead_encrypt_file(key, 0, src, tmp);
	if (rc == PQ_OK)
		rc = pq_hash_file(PQ_HASH_SHA256, tmp, d);
	if (rc == PQ_OK && stat(tmp, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	if (rc == PQ_OK) {
		pq_hex_encode(d, 32, out->enc_sha256);
		snprintf(dst, sizeof(dst), "%s/files/%s", data, out->enc_sha256);
		if (rename(tmp, dst) != 0)
			rc = pq_err_set(PQ_ERR_IO, "storing %s: %s", dst, strerror(errno));
	}
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
	char p[1024];
	if (!k->enc_sha256[0])
		return;
	snprintf(p, sizeof(p), "%s/files/%s", srv_get_options(s)->data_dir, k->enc_sha256);
	unlink(p);
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
	if (rc == PQ_ERR_NOTFOUND) {
		store_package_key k;
		rc = encrypt_package(s, file_sha256, now_ms, &k);
		if (rc == PQ_OK) {
			rc = store_package_key_insert(db, &k);
			if (rc == PQ_OK) {
				*out = k;
				pq_log(PQ_LOG_INFO, "releases", "package %.12s encrypted as %.12s",
				       file_sha256, k.enc_sha256);
			} else {
				drop_copy(s, &k);
				/* another instance on this database stored its copy first */
				if (rc == PQ_ERR_EXISTS)
					rc = store_package_key_get(db, file_sha256, out);
			}
		}
		OPENSSL_cleanse(&k, sizeof(k));
	}
	pthread_mutex_unlock(&enc_lock);
	return rc;
}

static int swpg_version_of(const char *semver_text, swpg_version *v)
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

static void h_release_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	store_release r = {0}, base = {0};
	store_package_key kf = {0}, kd = {0}; /* the packages' encrypted copies, if any */
	bool stored = false;
	char up[1024], img[1024], sha[65], want[65];
	uint64_t size;
	uint8_t d[32];
	int rc;
	if (!b)
		return;
	const char *title = json_string_value(json_object_get(b, "title")),
	           *notes = json_string_value(json_object_get(b, "notes")),
	           *version = json_string_value(json_object_get(b, "version")),
	           *hw = json_string_value(json_object_get(b, "hardware_id")),
	           *ecu = json_string_value(json_object_get(b, "ecu_id")),
	           *type = json_string_value(json_object_get(b, "software_type")),
	           *upload = json_string_value(json_object_get(b, "upload_id")),
	           *comp = json_string_value(json_object_get(b, "compression")),
	           *delta_from = json_string_value(json_object_get(b, "delta_from"));
	if (version && strlen(version) > STORE_VERSION_MAX) {
		srv_error(c, 400, "bad_request", "version longer than %d characters",
		          STORE_VERSION_MAX);
		goto out;
	}
	if (!title || !version || !hw || !ecu || !upload) {
		srv_error(c, 400, "bad_request",
		          "title, version, hardware_id, ecu_id and upload_id are required");
		goto out;
	}
	pkg_leaf_opts o = {.type = SWPG_TYPE_APP, .compression = SWPG_COMP_ZSTD};
	if (strlen(title) > 128 || strlen(hw) > STORE_NAME_MAX || strlen(ecu) > STORE_NAME_MAX ||
	    (notes && strlen(notes) > 65536)) {
		srv_error(c, 400, "bad_request", "a field is too long");
		goto out;
	}
	if ((rc = swpg_version_of(version, &o.version)) != PQ_OK ||
	    (rc = swpg_ecu_parse(ecu, &o.ecu)) != PQ_OK ||
	    (type && (rc = swpg_type_parse(type, &o.type)) != PQ_OK) ||
	    (comp && (rc = swpg_comp_parse(comp, &o.compression)) != PQ_OK)) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		goto out;
	}
	if (!valid_id(upload) || (rc = upload_meta(c, upload, &size, want)) != PQ_OK) {
		srv_error(c, 400, "bad_request", "no upload %s", upload);
		goto out;
	}
	if (received_of(c, upload) != size) {
		srv_error(c, 409, "upload_incomplete", "upload %s has %llu of %llu bytes", upload,
		          (unsigned long long)received_of(c, upload), (unsigned long long)size);
		goto out;
	}
	if (delta_from && (rc = store_release_get(c->db, delta_from, &base)) != PQ_OK) {
		srv_error(c, 400, "bad_request", "delta_from: no release %s", delta_from);
		goto out;
	}
	upath(c, upload, "part", up, sizeof(up));
	if ((rc = pq_hash_file(PQ_HASH_SHA256, up, d)) != PQ_OK) {
		srv_fail(c, rc, "hashing the upload");
		goto out;
	}
	pq_hex_encode(d, 32, sha);
	if (want[0] && strcmp(want, sha) != 0) {
		srv_error(c, 422, "hash_mismatch", "the upload's SHA-256 is %s, %s was declared",
		          sha, want);
		goto out;
	}
	snprintf(img, sizeof(img), "%s/images/%s", srv_get_options(c->s)->data_dir, sha);
	snprintf(up, sizeof(up), "%s/images", srv_get_options(c->s)->data_dir);
	if ((rc = pq_mkdirs(up, 0750)) != PQ_OK) {
		srv_fail(c, rc, "image store");
		goto out;
	}
	/* a second name for the uploaded bytes; the upload stays until the release is stored */
	upath(c, upload, "part", up, sizeof(up));
	if (link(up, img) != 0 && errno != EEXIST) {
		srv_error(c, 500, "internal", "storing the image: %s", strerror(errno));
		goto out;
	}
	/* the full package, then the delta against the earlier release's image */
	rc = build_into_store(c, img, &o, r.file_sha256, &r.file_size);
	if (rc == PQ_OK && delta_from) {
		char bimg[1024];
		snprintf(bimg, sizeof(bimg), "%s/images/%s", srv_get_options(c->s)->data_dir,
		         base.image_sha256);
		pkg_leaf_opts od = o;
		od.base_path = bimg;
		od.level = 19;
		rc = swpg_version_of(base.version, &od.base_version);
		if (rc == PQ_OK)
			rc = build_into_store(c, img, &od, r.delta_file_sha256, &r.delta_file_size);
		snprintf(r.delta_base_version, sizeof(r.delta_base_version), "%s", base.version);
		snprintf(r.delta_base_sha256, sizeof(r.delta_base_sha256), "%s", base.image_sha256);
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "building the packages");
		goto out;
	}
	if (srv_get_options(c->s)->downloads_encrypt) {
		rc = encrypt_package(c->s, r.file_sha256, c->now_ms, &kf);
		if (rc == PQ_OK && r.delta_file_sha256[0])
			rc = encrypt_package(c->s, r.delta_file_sha256, c->now_ms, &kd);
		if (rc != PQ_OK) {
			srv_fail(c, rc, "encrypting the packages");
			goto out;
		}
	}
	struct stat st;
	r.image_size = stat(img, &st) == 0 ? st.st_size : 0;
	snprintf(r.image_sha256, sizeof(r.image_sha256), "%s", sha);
	if ((rc = pq_uuid4(r.id)) != PQ_OK) {
		srv_fail(c, rc, "release id");
		goto out;
	}
	snprintf(r.title, sizeof(r.title), "%s", title);
	r.notes = (char *)notes;
	snprintf(r.version, sizeof(r.version), "%s", version);
	snprintf(r.hardware_id, sizeof(r.hardware_id), "%s", hw);
	snprintf(r.software_type, sizeof(r.software_type), "%s", swpg_type_name(o.type));
	snprintf(r.ecu_id, sizeof(r.ecu_id), "%s", ecu);
	snprintf(r.created_by, sizeof(r.created_by), "%.64s", c->actor);
	r.created_ms = c->now_ms;
	/* the release and its package keys together */
	rc = store_begin(c->db);
	if (rc == PQ_OK) {
		if (kf.enc_sha256[0])
			rc = store_package_key_insert(c->db, &kf);
		if (rc == PQ_OK && kd.enc_sha256[0])
			rc = store_package_key_insert(c->db, &kd);
		if (rc == PQ_OK)
			rc = store_release_insert(c->db, &r);
		if (rc == PQ_OK)
			rc = store_commit(c->db);
		else
			store_rollback(c->db);
	}
	r.notes = NULL;
	if (rc != PQ_OK) {
		srv_fail(c, rc, "storing the release");
		goto out;
	}
	stored = true;
	upath(c, upload, "part", up, sizeof(up));
	unlink(up);
	upath(c, upload, "meta", up, sizeof(up));
	unlink(up);
	srv_audit(c, "release.create", r.id,
	          json_pack("{s:s,s:s,s:s,s:b}", "version", r.version, "hardware_id", r.hardware_id,
	                    "package_sha256", r.file_sha256, "encrypted",
	                    kf.enc_sha256[0] != '\0'));
	srv_json(c, 201, release_json(&r));
out:
	if (!stored) {
		drop_copy(c->s, &kf);
		drop_copy(c->s, &kd);
	}
	OPENSSL_cleanse(&kf, sizeof(kf));
	OPENSSL_cleanse(&kd, sizeof(kd));
	store_release_clear(&base);
	json_decref(b);
}

static int list_rel_cb(const store_release *r, void *user)
{
	return json_array_append_new(user, release_json(r)) == 0 ? PQ_OK : PQ_ERR_NOMEM;
}

static void h_release_list(srv_ctx *c)
{
	store_page pg;
	int64_t total = 0;
	if (!srv_page(c, &pg))
		return;
	char *hw = srv_query(c, "hardware_id");
	json_t *items = json_array();
	int rc = store_release_list(c->db, hw, &pg, list_rel_cb, items, &total);
	free(hw);
	if (rc != PQ_OK) {
		json_decref(items);
		srv_fail(c, rc, "listing releases");
		return;
	}
	srv_json(c, 200,
	         json_pack("{s:o,s:I,s:i,s:I}", "items", items, "total", (json_int_t)total, "limit",
	                   pg.limit, "offset", (json_int_t)pg.offset));
}

static void h_release_get(srv_ctx *c)
{
	store_release r = {0};
	int rc = store_release_get(c->db, c->params[0], &r);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "release");
		return;
	}
	srv_json(c, 200, release_json(&r));
	store_release_clear(&r);
}

static void h_release_delete(srv_ctx *c)
{
	int rc = store_release_delete(c->db, c->params[0]);
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
    {EVHTTP_REQ_POST, "/api/v1/uploads", SRV_AUTH_OPERATOR, h_upload_create,
     "start a resumable upload"},
    {EVHTTP_REQ_GET, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, h_upload_get,
     "an upload's progress"},
    {EVHTTP_REQ_PUT, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, h_upload_put,
     "append a piece at ?offset="},
    {EVHTTP_REQ_DELETE, "/api/v1/uploads/{id}", SRV_AUTH_OPERATOR, h_upload_delete,
     "abandon an upload"},
    {EVHTTP_REQ_POST, "/api/v1/releases", SRV_AUTH_OPERATOR, h_release_create,
     "create a release from an upload (full package, optional delta)"},
    {EVHTTP_REQ_GET, "/api/v1/releases", SRV_AUTH_VIEWER, h_release_list, "list releases"},
    {EVHTTP_REQ_GET, "/api/v1/releases/{id}", SRV_AUTH_VIEWER, h_release_get, "a release"},
    {EVHTTP_REQ_DELETE, "/api/v1/releases/{id}", SRV_AUTH_OPERATOR, h_release_delete,
     "delete an unused release"},
    {0, NULL, 0, NULL, NULL},
};
