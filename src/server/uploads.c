/* uploads.c: resumable uploads (docs/api.md section 7): an image arrives in pieces, each at
 * most the server's body limit, appended at its offset to DATA/uploads/<id>.part (its size
 * and optional SHA-256 in <id>.meta), so an interrupted upload resumes where it stopped.
 * releases.c turns a complete upload into a release. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "core/fileio.h"
#include "core/uuid.h"
#include "server/releases_int.h"
#include "server/routes.h"

#define HEX_LOWER "0123456789abcdef"

/* ---- paths --------------------------------------------------------------------------------- */

/* DATA/<dir>/<name>; PQ_ERR_RANGE when it does not fit PATH_MAX. */
int rel_data_path(srv *s, const char *dir, const char *name, char out[PATH_MAX])
{
	char d[PATH_MAX];
	int rc = pq_path_join(d, sizeof(d), srv_get_options(s)->data_dir, dir);
	return rc == PQ_OK ? pq_path_join(out, PATH_MAX, d, name) : rc;
}

/* DATA/uploads/<id>.<ext> */
int rel_upload_path(srv_ctx *c, const char *id, const char *ext, char out[PATH_MAX])
{
	char name[64];
	snprintf(name, sizeof(name), "%.36s.%.8s", id, ext);
	return rel_data_path(c->s, "uploads", name, out);
}

bool rel_valid_id(const char *id)
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

/* An upload's .meta: exactly "SIZE SHA256\n" or "SIZE -\n", as rel_upload_create writes it. */
static int parse_meta(const char *text, uint64_t *size, char sha[65])
{
	char *end = NULL;
	if (text[0] < '0' || text[0] > '9')
		return PQ_ERR_FORMAT;
	errno = 0;
	unsigned long long sz = strtoull(text, &end, 10);
	if (errno || *end != ' ' || sz > REL_UPLOAD_MAX)
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
int rel_upload_meta(srv_ctx *c, const char *id, uint64_t *size, char sha[65])
{
	char p[PATH_MAX], *text = NULL;
	size_t len = 0;
	int rc = rel_upload_path(c, id, "meta", p);
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
int rel_upload_received(srv_ctx *c, const char *id, uint64_t *out)
{
	char p[PATH_MAX];
	struct stat st;
	int rc = rel_upload_path(c, id, "part", p);
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
	int rc = rel_upload_path(c, id, "meta", p);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, meta, (size_t)n, PQ_PRIVATE_FILE_MODE, false);
	if (rc == PQ_OK)
		rc = rel_upload_path(c, id, "part", p);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(p, "", 0, PQ_PRIVATE_FILE_MODE, false);
	return rc;
}

void rel_upload_create(srv_ctx *c)
{
	json_t *b = srv_body_json(c);
	char id[PQ_UUID_LEN];
	if (!b)
		return;
	if (!srv_query_only(c, NULL)) {
		json_decref(b);
		return;
	}
	json_t *js = json_object_get(b, "size");
	const char *sha = json_string_value(json_object_get(b, "sha256"));
	if (!json_is_integer(js) || json_integer_value(js) < 0 ||
	    (uint64_t)json_integer_value(js) > REL_UPLOAD_MAX) {
		srv_error(c, 400, "bad_request", "size must be an integer 0..%llu",
		          (unsigned long long)REL_UPLOAD_MAX);
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

void rel_upload_get(srv_ctx *c)
{
	uint64_t size, received = 0;
	char sha[65];
	const char *id = c->params[0];
	if (!srv_query_only(c, NULL))
		return;
	if (!rel_valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = rel_upload_meta(c, id, &size, sha);
	if (rc == PQ_OK)
		rc = rel_upload_received(c, id, &received);
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
void rel_upload_put(srv_ctx *c)
{
	const char *id = c->params[0];
	uint64_t size, off = 0;
	char sha[65], p[PATH_MAX];
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(c->req));
	static const char *const offset_query[] = {"offset", NULL};
	if (!srv_query_only(c, offset_query))
		return;
	if (!rel_valid_id(id)) {
		srv_error(c, 404, "not_found", "no upload %s", id);
		return;
	}
	int rc = rel_upload_meta(c, id, &size, sha);
	if (rc == PQ_OK)
		rc = rel_upload_path(c, id, "part", p);
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
int rel_upload_remove(srv_ctx *c, const char *id)
{
	char p[PATH_MAX];
	int rc = rel_upload_path(c, id, "meta", p);
	if (rc != PQ_OK)
		return rc;
	if (unlink(p) != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "no upload %s", id);
	rc = rel_upload_path(c, id, "part", p);
	if (rc == PQ_OK)
		unlink(p);
	return rc;
}

void rel_upload_delete(srv_ctx *c)
{
	const char *id = c->params[0];
	if (!srv_query_only(c, NULL))
		return;
	int rc = rel_valid_id(id) ? rel_upload_remove(c, id) : PQ_ERR_NOTFOUND;
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
