/* downloads.c: content-addressed package downloads with single Range, ETag and If-Range,
 * served from file segments (the bytes are mapped, not copied into the heap). A name is a
 * package's SHA-256 or its encrypted copy's (package_keys.enc_sha256); both are served
 * while the package belongs to a release. With downloads.encrypt, a vehicle identified by
 * its certificate alone gets only encrypted copies: a plaintext package needs an API key
 * or a download token for it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <openssl/crypto.h>

#include "core/fileio.h"
#include "server/routes.h"

int route_parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *end)
{
	const char *p;
	char *e = NULL;
	if (!h || strncmp(h, "bytes=", 6) != 0)
		return 0;
	p = h + 6;
	if (strchr(p, ','))
		return 0; /* several ranges: serve the whole file (RFC 9110 allows it) */
	while (*p == ' ')
		p++;
	if (*p == '-') { /* suffix: the last N bytes */
		if (p[1] < '0' || p[1] > '9')
			return 0;
		errno = 0;
		unsigned long long n = strtoull(p + 1, &e, 10);
		if (errno || *e)
			return 0;
		if (n == 0 || size == 0)
			return -1;
		*start = n >= size ? 0 : size - n;
		*end = size - 1;
		return 1;
	}
	if (*p < '0' || *p > '9')
		return 0;
	errno = 0;
	unsigned long long a = strtoull(p, &e, 10);
	if (errno || *e != '-')
		return 0;
	p = e + 1;
	unsigned long long b = UINT64_MAX;
	if (*p) {
		if (*p < '0' || *p > '9')
			return 0;
		b = strtoull(p, &e, 10);
		if (errno || *e || b < a)
			return 0;
	}
	if (a >= size)
		return -1;
	*start = a;
	*end = b >= size ? size - 1 : b;
	return 1;
}

static bool is_sha256_hex(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* The request's ?token= checked for the file sha: PQ_OK, PQ_ERR_NOTFOUND (no detail) when
 * there is none, or the check's PQ_ERR_VERIFY. */
static int check_token(srv_ctx *c, const char *sha)
{
	char vin[STORE_VIN_MAX + 1];
	char *token = srv_query(c, "token");
	if (!token)
		return PQ_ERR_NOTFOUND;
	int rc = srv_token_check(c->s, token, sha, c->now_ms, vin, sizeof(vin));
	free(token);
	return rc;
}

/* Who may download: a vehicle (certificate), an API key, or a download token for the file.
 * False when the refusal was sent. */
static bool may_download(srv_ctx *c, const char *sha)
{
	if (c->vin[0] || c->has_key)
		return true;
	int rc = check_token(c, sha);
	if (rc == PQ_ERR_NOTFOUND)
		srv_error(c, 401, "unauthenticated",
		          "a vehicle certificate, an API key or ?token= is required");
	else if (rc != PQ_OK)
		srv_error(c, 403, "forbidden", "%s", pq_err_detail());
	return rc == PQ_OK;
}

/* Whether sha names a package of a release (*plain) or the encrypted copy of one; *known
 * when either. */
static int package_known(srv_ctx *c, const char *sha, bool *known, bool *plain)
{
	store_package_key k;
	int rc = srv_file_known(c, sha, plain);
	*known = *plain;
	if (rc != PQ_OK || *plain)
		return rc;
	rc = store_package_key_find_enc(c->db, sha, &k);
	if (rc == PQ_OK)
		rc = srv_file_known(c, k.file_sha256, known);
	else if (rc == PQ_ERR_NOTFOUND)
		rc = PQ_OK;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* With downloads.encrypt, a vehicle identified by its certificate alone gets the encrypted
 * copies only: a plaintext package needs a token for it. False when the refusal was sent. */
static bool plaintext_allowed(srv_ctx *c, const char *sha)
{
	if (!c->vin[0] || c->has_key || !srv_get_options(c->s)->downloads_encrypt)
		return true;
	int rc = check_token(c, sha);
	if (rc == PQ_ERR_NOTFOUND)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "vehicles download packages encrypted: use the URL in "
		                "ota_campaign_metadata (or a download token for this file)");
	if (rc != PQ_OK)
		srv_error(c, 403, "forbidden", "%s", pq_err_detail());
	return rc == PQ_OK;
}

int route_open_package(srv_ctx *c, const char *sha, uint64_t *size)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct stat st;
	if (pq_path_join(dir, sizeof(dir), srv_get_options(c->s)->data_dir, "files") != PQ_OK ||
	    pq_path_join(path, sizeof(path), dir, sha) != PQ_OK)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

/* The body: len bytes of fd from start, mapped, not copied (fd is the buffer's afterwards). */
static int add_segment(struct evbuffer *body, int fd, uint64_t size, uint64_t start, uint64_t len)
{
	struct evbuffer_file_segment *seg =
	    evbuffer_file_segment_new(fd, 0, (ev_off_t)size, EVBUF_FS_CLOSE_ON_FREE);
	if (!seg) {
		close(fd);
		return pq_err_set(PQ_ERR_IO, "cannot map the package");
	}
	int rc = evbuffer_add_file_segment(body, seg, (ev_off_t)start, (ev_off_t)len) == 0
	             ? PQ_OK
	             : pq_err_set(PQ_ERR_IO, "cannot map the package");
	evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
	return rc;
}

void route_send_package(srv_ctx *c, const char *sha, int fd, uint64_t size)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
	uint64_t start = 0, end = size ? size - 1 : 0;
	char buf[128], etag[80];
	snprintf(etag, sizeof(etag), "\"%.64s\"", sha);
	const char *range = evhttp_find_header(in, "Range");
	const char *if_range = evhttp_find_header(in, "If-Range");
	int r = range && (!if_range || strcmp(if_range, etag) == 0)
	            ? route_parse_range(range, size, &start, &end)
	            : 0;
	if (r < 0) {
		close(fd);
		snprintf(buf, sizeof(buf), "bytes */%" PRIu64, size);
		evhttp_add_header(out, "Content-Range", buf);
		srv_error(c, 416, "range_not_satisfiable",
		          "range outside the %" PRIu64 "-byte file", size);
		return;
	}
	uint64_t len = size ? end - start + 1 : 0;
	int status = r > 0 ? 206 : 200;
	bool head = c->method == EVHTTP_REQ_HEAD;
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		close(fd);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	if (head || len == 0) {
		close(fd);
	} else if (add_segment(body, fd, size, start, len) != PQ_OK) {
		evbuffer_free(body);
		srv_error(c, 500, "internal", "%s", pq_err_detail());
		return;
	}
	evhttp_add_header(out, "ETag", etag);
	evhttp_add_header(out, "Accept-Ranges", "bytes");
	evhttp_add_header(out, "Content-Type", "application/octet-stream");
	evhttp_add_header(out, "Cache-Control", "private, max-age=31536000, immutable");
	if (r > 0) {
		snprintf(buf, sizeof(buf), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, end,
		         size);
		evhttp_add_header(out, "Content-Range", buf);
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, len);
	evhttp_add_header(out, "Content-Length", buf);
	srv_count(c, status, head ? 0 : len);
	evhttp_send_reply(c->req, status, NULL, body);
	evbuffer_free(body);
}

void route_download(srv_ctx *c)
{
	const char *sha = c->params[0];
	bool known = false, plain = false;
	uint64_t size = 0;
	static const char *const token_query[] = {"token", NULL};
	if (!srv_query_only(c, token_query))
		return;
	if (!is_sha256_hex(sha)) {
		srv_error(c, 404, "not_found", "packages are named by their lowercase SHA-256");
		return;
	}
	if (!may_download(c, sha))
		return;
	int rc = package_known(c, sha, &known, &plain);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "package lookup");
		return;
	}
	if (known && plain && !plaintext_allowed(c, sha))
		return;
	int fd = known ? route_open_package(c, sha, &size) : -1;
	if (fd < 0) {
		srv_error(c, 404, "not_found", "no package %s", sha);
		return;
	}
	route_send_package(c, sha, fd, size);
}
