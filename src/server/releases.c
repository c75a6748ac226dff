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
#include <limits.h>
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
#include "core/text.h"
#include "core/uuid.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"
#include "server/routes.h"

#define UPLOAD_MAX (4ull << 30) /* an SWPG image is at most 4 GiB */
#define HEX_LOWER  "0123456789abcdef"

static const char *const no_query[] = {NULL};

/* ---- paths --------------------------------------------------------------------------------- */

/* DATA/<dir>/<name>; PQ_ERR_RANGE when it does not fit PATH_MAX. */
static int data_path(srv *s, const char *dir, const char *name, char out[PATH_MAX])
{
	char d[PATH_MAX];
	int rc = pq_path_join(d, sizeof(d), srv_get_options(s)->data_dir, dir);
	return rc == PQ_OK ? pq_path_join(out, PATH_MAX, d, name) : rc;
}

/* DATA/uploads/<id>.<ext> */
static int upath(srv_ctx *c, const char *id, const char *ext, char out[PATH_MAX])
{
	char name[64];
	snprintf(name, sizeof(name), "%.36s.%.8s", id, ext);
	return data_path(c->s, "uploads", name, out);
}

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

static bool sha256_hex(const char *s)
{
	return strlen(s) == 64 && strspn(s, HEX_LOWER) == 64;
}

/* ---- uploads ------------------------------------------------------------------------------- */

/* An upload's .meta: exactly "SIZE SHA256\n" or "SIZE -\n", as h_upload_create writes it. */
static int parse_meta(const char *text, uint64_t *size, char sha[65])
{
	char *end = NULL;
	if (text[0] < '0' || text[0] > '9')
		return PQ_ERR_FORMAT;
	errno = 0;
	unsigned long long sz = strtoull(text, &end, 10);
	if (errno || *end != ' ' || sz > UPLOAD_MAX)
		return PQ_ERR_FORMAT;
	const char *h = end + 1;
	size_t n = strcspn(h, "\n");
	if (h[n] != '\n' || h[n + 1] != '\0')
		return PQ_ERR_FORMAT;
	if (n == 1 && h[0] == '-')
		sha[0] = '\0';
	else if (n == 64 && strspn(h, HEX_LOWER) == 64)
		snprintf(sha, 65, "%.64s", h);
	else
		return PQ_ERR_FORMAT;
	*size = sz;
	return PQ_OK;
}

/* The declared size and SHA-256 ("" when none) of an upload, from its .meta file. */
static int upload_meta(srv_ctx *c, const char *id, uint64_t *size, char sha[65])
{
	char p[PATH_MAX], *text = NULL;
	size_t len = 0;
	int rc = upath(c, id, "meta", p);
	if (rc == PQ_OK)
		rc = pq_file_read(p, 256, &text, &len);
	if (rc == PQ_ERR_NOTFOUND)
		return pq_err_set(PQ_ERR_NOTFOUND, "no upload %s", id);
	if (rc != PQ_OK)
		return rc;
	rc = parse_meta(text, size, sha);
	free(text);
	if (rc != PQ_OK)
		return pq_err_set(PQ_ERR_FORMAT, "upload %s: corrupt metadata", id);
	return PQ_OK;
}

/* Bytes received so far (0 when the .part file is missing). */
static int received_of(srv_ctx *c, const char *id, uint64_t *out)
{
	char p[PATH_MAX];
	struct stat st;
	int rc = upath(c, id, "part", p);
	if (rc != PQ_OK)
		return rc;
	*out = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
	return PQ_OK;
}

static json_t *upload_json(const char *id, uint64_t size, uint64_t received)
{
	return json_pack("{s:s,s:I,s:I,s:b}", "id", id, "size", (json_int_t)size, "received",
	                 (json_int_t)received, "complete", received == size);
}

/* The .meta and the empty .part of a new upload. */
static int upload_files(srv_ctx *c, const char *id, uint64_t size, const char *sha)
{
	char p[PATH_MAX], meta[128];
	int n =
	    snprintf(meta, sizeof(meta), "%llu %s\n", (unsigned long long)size, sha ? sha : "-");
	int rc = upath(c, id, "meta", p);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, meta, (size_t)n, 0640, false);
	if (rc == PQ_OK)
		rc = upath(c, id, "part", p);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, "", 0, 0640, false);
	return rc;
}

static void h_upload_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	char id[PQ_UUID_LEN];
	if (!b)
		return;
	if (!srv_query_only(c, no_query)) {
		json_decref(b);
		return;
	}
	json_t *js = json_object_get(b, "size");
	const char *sha = json_string_value(json_object_get(b, "sha256"));
	if (!json_is_integer(js) || json_integer_value(js) < 0 ||
	    (uint64_t)json_integer_value(js) > UPLOAD_MAX) {
		srv_error(c, 400, "bad_request", "size must be an integer 0..%llu",
		          (unsigned long long)UPLOAD_MAX);
		goto out;
	}
	if (sha && !sha256_hex(sha)) {
		srv_error(c, 400, "bad_request", "sha256 must be 64 lowercase hex digits");
		goto out;
	}
	uint64_t size = (uint64_t)json_integer_value(js);
	int rc = pq_uuid4(id);
	if (rc == PQ_OK)
		rc = upload_files(c, id, size, sha);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "creating the upload");
		goto out;
	}
	srv_audit(c, "upload.create", id, json_pack("{s:I}", "size", (json_int_t)size));
	srv_json(c, 201, upload_json(id, size, 0));
out:
	json_decref(b);
}

static void h_upload_get(srv_ctx *c)
{
	uint64_t size, received = 0;
	char sha[65];
	const char *id = c->params[0];
	if (!srv_query_only(c, no_query))
		return;
	if (!valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = upload_meta(c, id, &size, sha);
	if (rc == PQ_OK)
		rc = received_of(c, id, &received);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return;
	}
	srv_json(c, 200, upload_json(id, size, received));
}

/* ?offset=N, digits only; false (400 sent) when missing or malformed. */
static bool put_offset(srv_ctx *c, uint64_t *off)
{
	char *s = srv_query(c, "offset"), *end = NULL;
	bool ok = s && s[0] >= '0' && s[0] <= '9';
	if (ok) {
		errno = 0;
		*off = strtoull(s, &end, 10);
		ok = !errno && !*end;
	}
	free(s);
	if (!ok)
		srv_error(c, 400, "bad_request",
		          "?offset= (the number of bytes already sent) is required");
	return ok;
}

/* Appends the request body to the locked fd; PQ_OK or the write's error. */
static int append_body(srv_ctx *c, int fd)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		int rc = pq_write_all(fd, v.iov_base, v.iov_len);
		if (rc != PQ_OK)
			return rc;
		evbuffer_drain(in, v.iov_len);
	}
	return PQ_OK;
}

/* PUT /api/v1/uploads/{id}?offset=N: appends the body if N is where the upload stands. */
static void h_upload_put(srv_ctx *c)
{
	const char *id = c->params[0];
	uint64_t size, off = 0;
	char sha[65], p[PATH_MAX];
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(c->req));
	static const char *const offset_query[] = {"offset", NULL};
	if (!srv_query_only(c, offset_query))
		return;
	if (!valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = upload_meta(c, id, &size, sha);
	if (rc == PQ_OK)
		rc = upath(c, id, "part", p);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return;
	}
	if (!put_offset(c, &off))
		return;
	int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	flock(fd, LOCK_EX); /* two workers never append to one upload at once */
	struct stat st;
	uint64_t have = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (off != have)
		srv_json(c, 409,
		         json_pack("{s:{s:s,s:s},s:I}", "error", "code", "offset_mismatch",
		                   "message",
		                   "the upload stands at another offset: resume from 'received'",
		                   "received", (json_int_t)have));
	else if (have + len > size)
		srv_error(c, 413, "too_large", "this piece would exceed the declared size %llu",
		          (unsigned long long)size);
	else if ((rc = append_body(c, fd)) != PQ_OK)
		srv_fail(c, rc, "storing the piece");
	else
		srv_json(c, 200, upload_json(id, size, have + len));
	flock(fd, LOCK_UN);
	close(fd);
}

/* Removes an upload's files; the .meta first, so the upload is gone even if the .part
 * stays. PQ_ERR_NOTFOUND when there is no such upload. */
static int upload_remove(srv_ctx *c, const char *id)
{
	char p[PATH_MAX];
	int rc = upath(c, id, "meta", p);
	if (rc != PQ_OK)
		return rc;
	if (unlink(p) != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "no upload %s", id);
	rc = upath(c, id, "part", p);
	if (rc == PQ_OK)
		unlink(p);
	return rc;
}

static void h_upload_delete(srv_ctx *c)
{
	const char *id = c->params[0];
	if (!srv_query_only(c, no_query))
		return;
	int rc = valid_id(id) ? upload_remove(c, id) : PQ_ERR_NOTFOUND;
	if (rc == PQ_ERR_NOTFOUND) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "deleting the upload");
		return;
	}
	srv_audit(c, "upload.delete", id, NULL);
	srv_json(c, 204, NULL);
}

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
		rc = data_path(s, "files", name, tmp);
	}
	if (rc == PQ_OK)
		rc = data_path(s, "files", file_sha256, src);
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
		rc = data_path(s, "files", out->enc_sha256, dst);
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
	if (k->enc_sha256[0] && data_path(s, "files", k->enc_sha256, p) == PQ_OK)
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

static json_t *release_json(const store_release *r)
{
	char url[128], durl[128];
	snprintf(url, sizeof(url), "/packages/%s", r->file_sha256);
	snprintf(durl, sizeof(durl), "/packages/%s", r->delta_file_sha256);
	json_t *delta = r->delta_base_version[0]
	                    ? json_pack("{s:s,s:s,s:I,s:s,s:s}", "base_version",
	                                r->delta_base_version, "sha256", r->delta_file_sha256,
	                                "length", (json_int_t)r->delta_file_size,
	                                "base_image_sha256", r->delta_base_sha256, "url", durl)
	                    : json_null();
	json_t *notes = r->notes ? json_string(r->notes) : json_null();
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:I,s:s},s:{s:s,s:I},s:I,s:s,s:o,s:o}",
	                 "id", r->id, "title", r->title, "version", r->version, "hardware_id",
	                 r->hardware_id, "software_type", r->software_type, "ecu_id", r->ecu_id,
	                 "package", "sha256", r->file_sha256, "length", (json_int_t)r->file_size,
	                 "url", url, "image", "sha256", r->image_sha256, "length",
	                 (json_int_t)r->image_size, "created_ms", (json_int_t)r->created_ms,
	                 "created_by", r->created_by, "notes", notes, "delta", delta);
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

/* What a POST /api/v1/releases asks for (strings borrowed from the body). */
typedef struct {
	const char *title, *notes, *version, *hw, *ecu, *upload, *delta_from;
	pkg_leaf_opts o; /* the full package's options */
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
	if (swpg_version_of(q->version, &q->o.version) != PQ_OK ||
	    swpg_ecu_parse(q->ecu, &q->o.ecu) != PQ_OK ||
	    (type && swpg_type_parse(type, &q->o.type) != PQ_OK) ||
	    (comp && swpg_comp_parse(comp, &q->o.compression) != PQ_OK)) {
		srv_error(c, 400, "bad_request", "%s", pq_err_detail());
		return false;
	}
	return true;
}

/* The upload q names exists and is complete; false when an error was sent. */
static bool upload_ready(srv_ctx *c, const release_req *q, char want[65])
{
	uint64_t size = 0, received = 0;
	if (!valid_id(q->upload) || upload_meta(c, q->upload, &size, want) != PQ_OK) {
		srv_error(c, 400, "bad_request", "no upload %s", q->upload);
		return false;
	}
	int rc = received_of(c, q->upload, &received);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "upload");
		return false;
	}
	if (received != size) {
		srv_error(c, 409, "upload_incomplete", "upload %s has %llu of %llu bytes",
		          q->upload, (unsigned long long)received, (unsigned long long)size);
		return false;
	}
	return true;
}

/* The upload, hashed (sha) and checked against its declared hash `want`, linked to
 * DATA/images/<sha> (img); false when an error was sent. */
static bool take_image(srv_ctx *c, const char *upload, const char *want, char sha[65],
                       char img[PATH_MAX])
{
	char up[PATH_MAX], dir[PATH_MAX];
	uint8_t d[32];
	int rc = upath(c, upload, "part", up);
	if (rc == PQ_OK)
		rc = pq_hash_file(PQ_HASH_SHA256, up, d);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "hashing the upload");
		return false;
	}
	pq_hex_encode(d, 32, sha);
	if (want[0] && strcmp(want, sha) != 0) {
		srv_error(c, 422, "hash_mismatch", "the upload's SHA-256 is %s, %s was declared",
		          sha, want);
		return false;
	}
	rc = pq_path_join(dir, sizeof(dir), srv_get_options(c->s)->data_dir, "images");
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, 0750);
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

/* Builds a package of `image` into DATA/files/<sha256>; fills sha and size. */
static int build_into_store(srv_ctx *c, const char *image, const pkg_leaf_opts *o, char sha[65],
                            int64_t *size)
{
	char tmp[PATH_MAX], dst[PATH_MAX], id[PQ_UUID_LEN], name[64];
	pkg_unit u;
	int rc = pq_uuid4(id);
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), ".build-%s", id);
		rc = data_path(c->s, "files", name, tmp);
	}
	if (rc == PQ_OK)
		rc = pkg_build_leaf(image, o, tmp, &u);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(u.sha256, 32, sha);
	rc = data_path(c->s, "files", sha, dst);
	if (rc == PQ_OK && rename(tmp, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "storing package %s: %s", sha, strerror(errno));
	if (rc != PQ_OK) {
		unlink(tmp);
		return rc;
	}
	*size = (int64_t)u.size;
	return PQ_OK;
}

/* The full package of img into r, and with a base release the delta against its image. */
static int build_packages(srv_ctx *c, const release_req *q, const char *img,
                          const store_release *base, store_release *r)
{
	char bimg[PATH_MAX];
	int rc = build_into_store(c, img, &q->o, r->file_sha256, &r->file_size);
	if (rc != PQ_OK || !q->delta_from)
		return rc;
	pkg_leaf_opts od = q->o;
	od.base_path = bimg;
	od.level = 19;
	rc = data_path(c->s, "images", base->image_sha256, bimg);
	if (rc == PQ_OK)
		rc = swpg_version_of(base->version, &od.base_version);
	if (rc == PQ_OK)
		rc = build_into_store(c, img, &od, r->delta_file_sha256, &r->delta_file_size);
	snprintf(r->delta_base_version, sizeof(r->delta_base_version), "%s", base->version);
	snprintf(r->delta_base_sha256, sizeof(r->delta_base_sha256), "%s", base->image_sha256);
	return rc;
}

/* The release record of q (r->notes borrowed from the body). */
static int fill_release(srv_ctx *c, const release_req *q, const char *sha, const char *img,
                        store_release *r)
{
	struct stat st;
	int rc = pq_uuid4(r->id);
	if (rc != PQ_OK)
		return rc;
	r->image_size = stat(img, &st) == 0 ? st.st_size : 0;
	snprintf(r->image_sha256, sizeof(r->image_sha256), "%s", sha);
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

/* The release and its package keys together. */
static int store_release_keys(store *db, const store_release *r, const store_package_key *kf,
                              const store_package_key *kd)
{
	int rc = store_begin(db);
	if (rc != PQ_OK)
		return rc;
	if (kf->enc_sha256[0])
		rc = store_package_key_insert(db, kf);
	if (rc == PQ_OK && kd->enc_sha256[0])
		rc = store_package_key_insert(db, kd);
	if (rc == PQ_OK)
		rc = store_release_insert(db, r);
	if (rc == PQ_OK)
		return store_commit(db);
	store_rollback(db);
	return rc;
}

static void h_release_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	release_req q;
	store_release r = {0}, base = {0};
	store_package_key kf = {0}, kd = {0}; /* the packages' encrypted copies, if any */
	bool stored = false;
	char want[65], sha[65], img[PATH_MAX];
	int rc;
	if (!b || !srv_query_only(c, no_query) || !parse_release(c, b, &q) ||
	    !upload_ready(c, &q, want))
		goto out;
	if (q.delta_from && store_release_get(c->db, q.delta_from, &base) != PQ_OK) {
		srv_error(c, 400, "bad_request", "delta_from: no release %s", q.delta_from);
		goto out;
	}
	if (!take_image(c, q.upload, want, sha, img))
		goto out;
	rc = build_packages(c, &q, img, &base, &r);
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
	rc = fill_release(c, &q, sha, img, &r);
	if (rc == PQ_OK)
		rc = store_release_keys(c->db, &r, &kf, &kd);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "storing the release");
		goto out;
	}
	stored = true;
	if (upload_remove(c, q.upload) != PQ_OK)
		pq_log(PQ_LOG_WARN, "releases", "upload %s: %s", q.upload, pq_err_detail());
	srv_audit(c, "release.create", r.id,
	          json_pack("{s:s,s:s,s:s,s:b}", "version", r.version, "hardware_id", r.hardware_id,
	                    "package_sha256", r.file_sha256, "encrypted",
	                    kf.enc_sha256[0] != '\0'));
	release_event(c, &r, false);
	srv_json(c, 201, release_json(&r));
out:
	r.notes = NULL; /* the body's */
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
	if (json_array_append_new(user, release_json(r)) != 0)
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
	if (!srv_query_only(c, no_query))
		return;
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
	store_release r = {0};
	if (!srv_query_only(c, no_query))
		return;
	/* what the event names; a release that cannot be read is not there to delete */
	bool known = store_release_get(c->db, c->params[0], &r) == PQ_OK;
	int rc = store_release_delete(c->db, c->params[0]);
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
