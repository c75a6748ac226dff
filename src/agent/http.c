/* http.c: the agent's HTTPS client (libcurl over the same OpenSSL 3.5 as the rest): TLS 1.3
 * with the PKI's key-exchange group, the vehicle certificate, the deployment CA, host name
 * checks. Small fetches into memory (Uptane metadata) and resumable downloads to a file
 * (Range from the file's current size). Records the negotiated group of each connection. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/time.h"
#include "tls/tls.h"

int ag_http_global_init(void)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK)
		return pq_err_set(PQ_ERR_IO, "libcurl: %s", curl_easy_strerror(c));
	return PQ_OK;
}

/* Records the negotiated group once per transfer (the SSL object lives while it runs). */
static void note_group(ag_http *h, CURL *e, bool *noted)
{
	if (*noted)
		return;
	const struct curl_tlssessioninfo *ti = NULL;
	if (curl_easy_getinfo(e, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK || !ti ||
	    ti->backend != CURLSSLBACKEND_OPENSSL || !ti->internals)
		return;
	tls_info info;
	tls_conn_info((SSL *)ti->internals, &info);
	if (info.group[0])
		snprintf(h->group, sizeof(h->group), "%s", info.group);
	*noted = true;
}

/* The URL without its query (download tokens stay out of logs). */
static const char *shown(const char *url, char *buf, size_t len)
{
	size_t n = strcspn(url, "?");
	snprintf(buf, len, "%.*s%s", (int)n, url, url[n] ? "?..." : "");
	return buf;
}

static CURL *easy_new(ag_http *h, const char *url)
{
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_CAINFO, h->ca);
	curl_easy_setopt(e, CURLOPT_SSLCERT, h->cert);
	curl_easy_setopt(e, CURLOPT_SSLKEY, h->key);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	if (h->profile && h->profile->tls_group)
		curl_easy_setopt(e, CURLOPT_SSL_EC_CURVES, h->profile->tls_group);
	curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "pqota-vehicle");
	return e;
}

/* ---- GET into memory ------------------------------------------------------------------- */

typedef struct {
	ag_http *h;
	CURL *e;
	bool noted;
	char *buf;
	size_t len, cap, max;
	bool too_long;
} mem_sink;

static size_t mem_write(char *p, size_t sz, size_t nm, void *ud)
{
	mem_sink *m = ud;
	size_t n = sz * nm;
	note_group(m->h, m->e, &m->noted);
	if (m->len + n > m->max) {
		m->too_long = true;
		return 0;
	}
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 16384;
		while (cap < m->len + n + 1)
			cap *= 2;
		char *nb = realloc(m->buf, cap);
		if (!nb)
			return 0;
		m->buf = nb;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	m->buf[m->len] = '\0';
	return n;
}

int ag_http_get(ag_http *h, const char *url, size_t max, char **body, size_t *len, long *status)
{
	mem_sink m = {.h = h, .max = max};
	char su[256];
	*body = NULL;
	*len = 0;
	*status = 0;
	CURL *e = easy_new(h, url);
	if (!e)
		return pq_err_set(PQ_ERR_NOMEM, "curl_easy_init");
	m.e = e;
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &m);
	CURLcode c = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	if (!m.noted)
		note_group(h, e, &m.noted);
	curl_easy_cleanup(e);
	int rc = PQ_OK;
	if (m.too_long)
		rc = pq_err_set(PQ_ERR_RANGE, "%s: longer than %zu bytes",
		                shown(url, su, sizeof(su)), max);
	else if (c == CURLE_HTTP_RETURNED_ERROR && *status == 404)
		rc = pq_err_set(PQ_ERR_NOTFOUND, "%s: 404", shown(url, su, sizeof(su)));
	else if (c != CURLE_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s (HTTP %ld)", shown(url, su, sizeof(su)),
		                curl_easy_strerror(c), *status);
	if (rc != PQ_OK) {
		free(m.buf);
		return rc;
	}
	if (!m.buf) { /* an empty body */
		m.buf = calloc(1, 1);
		if (!m.buf)
			return pq_err_set(PQ_ERR_NOMEM, "body");
	}
	*body = m.buf;
	*len = m.len;
	return PQ_OK;
}

/* ---- resumable download ------------------------------------------------------------------ */

typedef struct {
	ag_http *h;
	CURL *e;
	bool noted;
	int fd;
	uint64_t have, expect;
	ag_dl_fn fn;
	void *user;
	bool too_long, aborted, io_error;
	int err;
	int64_t rate;     /* bytes/s (0: no limit) */
	uint64_t got;     /* bytes of this transfer */
	int64_t start_ns; /* when its first bytes arrived (pq_mono_ns) */
} dl_sink;

/* --max-rate: libcurl's own limit averages over seconds and lets a short transfer on a fast
 * link through at full speed, so the writer paces itself: it sleeps (in slices, so that a
 * cancel is seen) until the bytes of this transfer are no longer ahead of the rate. The
 * socket then fills and TCP slows the sender. Returns false when the callback aborts. */
static bool dl_pace(dl_sink *d)
{
	for (;;) {
		int64_t due = (int64_t)((double)d->got * 1e9 / (double)d->rate);
		int64_t ahead = due - (pq_mono_ns() - d->start_ns);
		if (ahead <= 0)
			return true;
		int64_t ms = (ahead + 999999) / 1000000; /* at least 1 ms: no busy loop */
		pq_sleep_ms(ms > 100 ? 100 : ms);
		if (d->fn && d->fn(d->user, d->have) != 0)
			return false;
	}
}

static size_t dl_write(char *p, size_t sz, size_t nm, void *ud)
{
	dl_sink *d = ud;
	size_t n = sz * nm;
	note_group(d->h, d->e, &d->noted);
	if (d->have + n > d->expect) {
		d->too_long = true;
		return 0;
	}
	if (pq_write_all(d->fd, p, n) != PQ_OK) {
		d->io_error = true;
		d->err = errno;
		return 0;
	}
	d->have += n;
	if (d->fn && d->fn(d->user, d->have) != 0) {
		d->aborted = true;
		return 0;
	}
	if (d->rate > 0) {
		if (d->got == 0)
			d->start_ns = pq_mono_ns();
		d->got += n;
		if (!dl_pace(d)) {
			d->aborted = true;
			return 0;
		}
	}
	return n;
}

int ag_http_download(ag_http *h, const char *url, const char *part_path, uint64_t expect,
                     ag_dl_fn fn, void *user, long *status)
{
	dl_sink d = {
	    .h = h, .expect = expect, .fn = fn, .user = user, .fd = -1, .rate = h->max_rate};
	char su[256];
	struct stat st;
	int rc = PQ_OK;
	*status = 0;
	d.fd = open(part_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (d.fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", part_path, strerror(errno));
	if (fstat(d.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(d.fd);
		return pq_err_set(PQ_ERR_IO, "%s: not a regular file", part_path);
	}
	d.have = (uint64_t)st.st_size;
	if (d.have > expect) { /* more than the file can be: start over */
		if (ftruncate(d.fd, 0) != 0) {
			rc = pq_err_set(PQ_ERR_IO, "truncating %s: %s", part_path, strerror(errno));
			goto out;
		}
		d.have = 0;
	}
	if (d.have == expect)
		goto out;
	CURL *e = easy_new(h, url);
	if (!e) {
		rc = pq_err_set(PQ_ERR_NOMEM, "curl_easy_init");
		goto out;
	}
	d.e = e;
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &d);
	if (d.have > 0)
		curl_easy_setopt(e, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)d.have);
	CURLcode c = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(e);
	if (c == CURLE_OK && d.have == expect) {
		if (fsync(d.fd) != 0)
			rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", part_path, strerror(errno));
	} else if (c == CURLE_OK) {
		rc = pq_err_set(PQ_ERR_IO, "%s: the transfer ended after %llu of %llu bytes",
		                shown(url, su, sizeof(su)), (unsigned long long)d.have,
		                (unsigned long long)expect);
	} else if (d.too_long) {
		rc = pq_err_set(PQ_ERR_RANGE, "%s: more than the %llu bytes the metadata gives",
		                shown(url, su, sizeof(su)), (unsigned long long)expect);
		if (ftruncate(d.fd, 0) != 0)
			rc = pq_err_set(PQ_ERR_IO, "truncating %s", part_path);
	} else if (d.aborted) {
		rc = pq_err_set(PQ_ERR_TIMEOUT, "download interrupted");
	} else if (d.io_error) {
		rc = pq_err_set(PQ_ERR_IO, "writing %s: %s", part_path, strerror(d.err));
	} else if (c == CURLE_RANGE_ERROR || *status == 416) {
		/* the server did not resume where the file ends: start it over */
		if (ftruncate(d.fd, 0) != 0)
			rc = pq_err_set(PQ_ERR_IO, "truncating %s", part_path);
		else
			rc = pq_err_set(PQ_ERR_IO, "%s: no resume at byte %llu; starting over",
			                shown(url, su, sizeof(su)), (unsigned long long)d.have);
	} else if (c == CURLE_HTTP_RETURNED_ERROR && *status >= 400 && *status < 500 &&
	           *status != 408 && *status != 429) {
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: HTTP %ld", shown(url, su, sizeof(su)), *status);
	} else {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s (HTTP %ld)", shown(url, su, sizeof(su)),
		                curl_easy_strerror(c), *status);
	}
out:
	close(d.fd);
	return rc;
}
