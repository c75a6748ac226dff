/* upload.c: the resumable piece upload of `pqota release upload` and `pqota bundle upload`
 * (upload.h; docs/api.md 7.2-7.4, docs/operations.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unistd.h>

#include "cli/cli.h"
#include "cli/upload.h"
#include "core/fileio.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"

#define BACKOFF_MAX_MS 8000

typedef struct {
	const char *path;
	int fd;
	uint64_t size;
	char sha[65];
} upfile;

/* Opens the file and computes its SHA-256 (a progress bar on a terminal). */
static int open_file(upfile *f)
{
	struct stat st;
	uint8_t d[32];
	pq_hash_ctx *h = NULL;
	char *buf = NULL;
	int rc = PQ_OK;
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0 || fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode))
		return pq_err_set(PQ_ERR_IO, "%s: %s", f->path,
		                  f->fd < 0 || errno ? strerror(errno) : "not a regular file");
	f->size = (uint64_t)st.st_size;
	cli_progress p;
	cli_progress_start(&p, "hashing  ", f->size);
	buf = malloc(1 << 20);
	rc = buf ? pq_hash_new(PQ_HASH_SHA256, &h) : pq_err_set(PQ_ERR_NOMEM, "hashing");
	for (uint64_t done = 0; rc == PQ_OK;) {
		ssize_t n = read(f->fd, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", f->path, strerror(errno));
		else if (n == 0)
			break;
		else
			rc = pq_hash_update(h, buf, (size_t)n);
		done += n > 0 ? (uint64_t)n : 0;
		cli_progress_update(&p, done);
	}
	cli_progress_end(&p);
	if (rc == PQ_OK)
		rc = pq_hash_final(h, d);
	if (rc == PQ_OK)
		pq_hex_encode(d, sizeof(d), f->sha);
	pq_hash_free(h);
	free(buf);
	return rc;
}

/* Where upload id stands (GET /api/v1/uploads/{id}): its received bytes, after checking
 * that it is f's size. -1 on a connection error (retry), else CLI_EXIT_OK or an exit. */
static int upload_status(cli_conn *c, const char *id, const upfile *f, uint64_t *received)
{
	char path[160];
	long status = 0;
	json_t *j = NULL;
	snprintf(path, sizeof(path), "/api/v1/uploads/%s", id);
	int rc = cli_api(c, "GET", path, NULL, &status, &j);
	if (rc == PQ_ERR_IO)
		return -1;
	if (rc != PQ_OK)
		return cli_error(rc, "upload %s", id);
	int ex = CLI_EXIT_OK;
	json_int_t size = json_integer_value(json_object_get(j, "size"));
	json_int_t got = json_integer_value(json_object_get(j, "received"));
	if (status != 200) {
		ex = cli_api_error("upload status", status, j);
	} else if ((uint64_t)size != f->size || got < 0 || got > size) {
		fprintf(stderr, "pqota: error: upload %s is of %lld bytes, %s has %llu\n", id,
		        (long long)size, f->path, (unsigned long long)f->size);
		ex = CLI_EXIT_ERROR;
	} else {
		*received = (uint64_t)got;
	}
	json_decref(j);
	return ex;
}

/* Starts an upload of f: *id. */
static int upload_start(cli_conn *c, const upfile *f, char *id, size_t cap)
{
	json_t *j = NULL;
	json_t *body = json_pack("{s:I,s:s}", "size", (json_int_t)f->size, "sha256", f->sha);
	if (!body)
		return cli_error(PQ_ERR_NOMEM, "upload");
	int ex = cli_call(c, "POST", "/api/v1/uploads", body, 201, &j, "upload: start");
	json_decref(body);
	if (ex != CLI_EXIT_OK)
		return ex;
	snprintf(id, cap, "%s", cli_jstr(j, "id"));
	json_decref(j);
	if (!*id)
		return cli_error(PQ_ERR_FORMAT, "upload: the server named no upload id");
	return CLI_EXIT_OK;
}

typedef struct {
	cli_conn *c;
	const upfile *f;
	const char *id;
	char *buf;
	long piece, retries, fails;
	uint64_t off;
} sender;

/* After a failed piece: waits (backing off), then asks where the upload stands. CLI_EXIT_OK
 * to go on, or the exit code once the retries are spent. */
static int recover(sender *s, const char *why)
{
	if (++s->fails > s->retries) {
		fprintf(stderr,
		        "pqota: error: upload %s: %s; giving up after %ld retries (continue "
		        "with --upload-id %s)\n",
		        s->id, why, s->retries, s->id);
		return CLI_EXIT_ERROR;
	}
	int64_t wait = 250LL << (s->fails < 6 ? s->fails : 6);
	fprintf(stderr, "%spqota: upload %s at %llu: %s; retrying in %lld ms (%ld/%ld)\n",
	        isatty(STDERR_FILENO) ? "\n" : "", s->id, (unsigned long long)s->off, why,
	        (long long)(wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS), s->fails, s->retries);
	pq_sleep_ms(wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
	uint64_t got = 0;
	int ex = upload_status(s->c, s->id, s->f, &got);
	if (ex == -1)
		return CLI_EXIT_OK; /* the server is still away: the next piece tries again */
	if (ex == CLI_EXIT_OK)
		s->off = got;
	return ex;
}

/* Sends the piece at s->off; CLI_EXIT_OK when it moved on (or will be retried). */
static int send_piece(sender *s)
{
	char path[200], why[300];
	size_t n = (size_t)(s->f->size - s->off < (uint64_t)s->piece ? s->f->size - s->off
	                                                             : (uint64_t)s->piece);
	size_t got = 0;
	if (lseek(s->f->fd, (off_t)s->off, SEEK_SET) < 0 ||
	    pq_read_full(s->f->fd, s->buf, n, &got) != PQ_OK || got != n)
		return cli_error(PQ_ERR_IO, "reading %s", s->f->path);
	snprintf(path, sizeof(path), "/api/v1/uploads/%s?offset=%llu", s->id,
	         (unsigned long long)s->off);
	long status = 0;
	json_t *j = NULL;
	int rc =
	    cli_api_send(s->c, "PUT", path, "application/octet-stream", s->buf, n, &status, &j);
	if (rc == PQ_ERR_IO) {
		snprintf(why, sizeof(why), "%s", pq_err_detail());
		return recover(s, why);
	}
	if (rc == PQ_ERR_FORMAT && status == 413 && s->piece / 2 >= CLI_PIECE_MIN) {
		s->piece /= 2; /* the server's body limit is smaller: smaller pieces */
		fprintf(stderr,
		        "%spqota: the server refused a piece as too large: pieces of %ld "
		        "bytes\n",
		        isatty(STDERR_FILENO) ? "\n" : "", s->piece);
		return CLI_EXIT_OK;
	}
	if (rc != PQ_OK)
		return cli_error(rc, "upload %s", s->id);
	json_int_t received = json_integer_value(json_object_get(j, "received"));
	int ex = CLI_EXIT_OK;
	if ((status == 200 ||
	     (status == 409 &&
	      strcmp(cli_jstr(json_object_get(j, "error"), "code"), "offset_mismatch") == 0)) &&
	    received >= 0 && (uint64_t)received <= s->f->size) {
		s->off = (uint64_t)received;
		if (status == 200)
			s->fails = 0;
	} else if (status == 429 || status >= 500) {
		snprintf(why, sizeof(why), "HTTP %ld", status);
		ex = recover(s, why);
	} else {
		ex = cli_api_error("upload", status, j);
	}
	json_decref(j);
	return ex;
}

int cli_upload(cli_conn *c, const char *file, const char *resume_id, long piece, long retries,
               char *id, size_t cap)
{
	upfile f = {.path = file, .fd = -1};
	sender s = {.c = c, .f = &f, .piece = piece, .retries = retries};
	if (resume_id && !cli_id_valid(resume_id))
		return cli_usage_error(c->cmd, "--upload-id: '%.64s' is not an upload id",
		                       resume_id);
	int rc = open_file(&f);
	int ex;
	if (rc != PQ_OK) {
		ex = cli_error(rc, "upload");
		goto out;
	}
	if (resume_id) {
		snprintf(id, cap, "%s", resume_id);
		ex = upload_status(c, id, &f, &s.off);
		if (ex == -1)
			ex = cli_error(PQ_ERR_IO, "upload %s", id);
	} else {
		ex = upload_start(c, &f, id, cap);
	}
	if (ex != CLI_EXIT_OK)
		goto out;
	fprintf(stderr, "pqota: upload %s: %s, %llu bytes, sha256 %s\n", id, file,
	        (unsigned long long)f.size, f.sha);
	s.id = id;
	s.buf = malloc((size_t)piece);
	if (!s.buf) {
		ex = cli_error(PQ_ERR_NOMEM, "upload");
		goto out;
	}
	cli_progress p;
	long timeout = c->timeout_s;
	c->timeout_s = 0; /* a piece takes what the link needs; a stalled one is cut */
	cli_progress_start(&p, "uploading", f.size);
	while (ex == CLI_EXIT_OK && s.off < f.size) {
		ex = send_piece(&s);
		cli_progress_update(&p, s.off);
	}
	cli_progress_end(&p);
	c->timeout_s = timeout;
out:
	free(s.buf);
	if (f.fd >= 0)
		close(f.fd);
	return ex;
}
