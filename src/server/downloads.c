/* downloads.c: content-addressed package downloads with single Range, ETag and If-Range,
 * served from file segments (the bytes are mapped, not copied into the heap). A name is a
 * package's SHA-256 or its encrypted copy's (package_keys.enc_sha256); both are served
 * while the package belongs to a release. With downloads.encrypt, a vehicle identified by
 * its certificate alone gets only encrypted copies: a plaintext package needs an API key
 * or a download token for it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <openssl/crypto.h>

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
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void route_download(srv_ctx *c)
{
	const char *sha = c->params[0];
	struct evkeyvalq *in = evhttp_request_get_input_headers(c->req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(c->req);
	char path[1024], buf[128], vin[STORE_VIN_MAX + 1];
	bool known = false;
	int rc;

	if (!is_sha256_hex(sha)) {
		srv_error(c, 404, "not_found", "packages are named by their lowercase SHA-256");
		return;
	}
	/* who may download: a vehicle (certificate), an API key, or a download token */
	if (!c->vin[0] && !c->has_key) {
		char *token = srv_query(c, "token");
		if (!token) {
			srv_error(c, 401, "unauthenticated",
			          "a vehicle certificate, an API key or ?token= is required");
			return;
		}
		rc = srv_token_check(c->s, token, sha, c->now_ms, vin, sizeof(vin));
		free(token);
		if (rc != PQ_OK) {
			srv_error(c, 403, "forbidden", "%s", pq_err_detail());
			return;
		}
	}
	/* a package, or an encrypted copy of one */
	bool plain = false;
	rc = srv_file_known(c, sha, &plain);
	known = plain;
	if (rc == PQ_OK && !plain) {
		store_package_key k;
		rc = store_package_key_find_enc(c->db, sha, &k);
		if (rc == PQ_OK)
			rc = srv_file_known(c, k.file_sha256, &known);
		else if (rc == PQ_ERR_NOTFOUND)
			rc = PQ_OK;
		OPENSSL_cleanse(&k, sizeof(k));
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, "package lookup");
		return;
	}
	/* vehicles get the encrypted copies; a plaintext package only with a token for it */
	if (known && plain && c->vin[0] && !c->has_key &&
	    srv_get_options(c->s)->downloads_encrypt) {
		char *token = srv_query(c, "token");
		rc = token
		         ? srv_token_check(c->s, token, sha, c->now_ms, vin, sizeof(vin))
		         : pq_err_set(PQ_ERR_VERIFY,
		                      "vehicles download packages encrypted: use the URL in "
		                      "ota_campaign_metadata (or a download token for this file)");
		free(token);
		if (rc != PQ_OK) {
			srv_error(c, 403, "forbidden", "%s", pq_err_detail());
			return;
		}
	}
	snprintf(path, sizeof(path), "%s/files/%s", srv_get_options(c->s)->data_dir, sha);
	int fd = known ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		srv_error(c, 404, "not_found", "no package %s", sha);
		return;
	}
	uint64_t size = (uint64_t)st.st_size, start = 0, end = size ? size - 1 : 0;
	char etag[80];
	snprintf(etag, sizeof(etag), "\"%.64s\"", sha);
	const char *range = evhttp_find_header(in, "Range");
	const char *if_range = evhttp_find_header(in, "If-Range");
	int r = 0;
	if (range && (!if_range || strcmp(if_range, etag) == 0))
		r = route_parse_range(range, size, &start, &end);
	if (r < 0) {
		close(fd);
		snprintf(buf, sizeof(buf), "bytes */%" PRIu64, size);
		evhttp_add_header(out, "Content-Range", buf);
		srv_error(c, 416, "range_not_satisfiable",
		          "range outside the %" PRIu64 "-byte file", size);
		return;
	}
	uint64_t len = size ? end - start + 1 : 0;
	int status = 200;
	evhttp_add_header(out, "ETag", etag);
	evhttp_add_header(out, "Accept-Ranges", "bytes");
	evhttp_add_header(out, "Content-Type", "application/octet-stream");
	evhttp_add_header(out, "Cache-Control", "private, max-age=31536000, immutable");
	if (r > 0) {
		status = 206;
		snprintf(buf, sizeof(buf), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, end,
		         size);
		evhttp_add_header(out, "Content-Range", buf);
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, len);
	evhttp_add_header(out, "Content-Length", buf);
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		close(fd);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	if (c->method != EVHTTP_REQ_HEAD && len > 0) {
		struct evbuffer_file_segment *seg =
		    evbuffer_file_segment_new(fd, 0, (ev_off_t)size, EVBUF_FS_CLOSE_ON_FREE);
		if (!seg ||
		    evbuffer_add_file_segment(body, seg, (ev_off_t)start, (ev_off_t)len) != 0) {
			if (seg)
				evbuffer_file_segment_free(seg);
			else
				close(fd);
			evbuffer_free(body);
			srv_error(c, 500, "internal", "cannot map the package");
			return;
		}
		evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
	} else {
		close(fd);
	}
	srv_count(c, status, c->method == EVHTTP_REQ_HEAD ? 0 : len);
	evhttp_send_reply(c->req, status, NULL, body);
	evbuffer_free(body);
}
