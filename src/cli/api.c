/* api.c: the HTTPS client of the operator commands (api.h). */
#include "cli/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/time.h"

#define RESP_MAX         (64u * 1024u * 1024u) /* an API answer */
#define PROGRESS_TICK_MS 100

void cli_conn_init(cli_conn *c, const char *cmd)
{
	memset(c, 0, sizeof(*c));
	c->cmd = cmd;
	c->server = getenv("PQOTA_SERVER");
	c->ca = getenv("PQOTA_CA");
	c->key = getenv("PQOTA_API_KEY");
	c->profile = pq_profile_by_id(PQ_PROFILE_DEFAULT);
	c->timeout_s = 60;
	snprintf(c->ua, sizeof(c->ua), "pqota-%s", cmd);
}

bool cli_conn_option(cli_conn *c, int ch, const char *arg, int *exit_code)
{
	*exit_code = CLI_EXIT_OK;
	switch (ch) {
	case CLI_O_SERVER:
		c->server = arg;
		return true;
	case CLI_O_CA:
		c->ca = arg;
		return true;
	case CLI_O_KEY:
		c->key = arg;
		return true;
	case CLI_O_PROFILE:
		if (pq_profile_find(arg, &c->profile) != PQ_OK)
			*exit_code = cli_usage_error(c->cmd, "unknown profile '%s'", arg);
		return true;
	case CLI_O_JSON:
		c->json = true;
		return true;
	case CLI_O_LIMIT:
		*exit_code = cli_opt_long(c, "limit", arg, 1, CLI_PAGE_MAX, &c->limit);
		return true;
	case CLI_O_OFFSET:
		*exit_code = cli_opt_long(c, "offset", arg, 0, 1000000000L, &c->offset);
		return true;
	default:
		return false;
	}
}

int cli_conn_ready(cli_conn *c)
{
	if (!c->server || strncmp(c->server, "https://", 8) != 0)
		return cli_usage_error(c->cmd, "--server https://HOST:PORT (or PQOTA_SERVER) is "
		                               "required");
	if (!c->ca)
		return cli_usage_error(c->cmd, "--ca FILE (the deployment CA, or PQOTA_CA) is "
		                               "required");
	if (!c->key || !*c->key)
		return cli_usage_error(c->cmd, "--api-key KEY (or PQOTA_API_KEY) is required");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cli_error(PQ_ERR_IO, "libcurl");
	c->curl = curl_easy_init();
	if (!c->curl) {
		curl_global_cleanup();
		return cli_error(PQ_ERR_NOMEM, "libcurl");
	}
	return CLI_EXIT_OK;
}

int cli_parse(cli_conn *c, int argc, char **argv, const struct option *opts,
              int (*fn)(void *user, int ch, const char *arg), void *user, void (*usage)(FILE *),
              int min_pos, int max_pos)
{
	int ch, ex;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h' || ch == CLI_O_HELP) {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		if (ch == '?' || ch == ':')
			return cli_usage_error(c->cmd, "%s: bad option or missing value '%s'",
			                       argv[0], argv[optind - 1]);
		if (!cli_conn_option(c, ch, optarg, &ex))
			ex = fn(user, ch, optarg);
		if (ex != CLI_EXIT_OK)
			return ex;
	}
	int npos = argc - optind;
	if (npos < min_pos || npos > max_pos)
		return cli_usage_error(c->cmd, "%s: %s", argv[0],
		                       npos < min_pos ? "missing argument" : "unexpected argument");
	ex = cli_conn_ready(c);
	return ex == CLI_EXIT_OK ? -1 : ex;
}

int cli_opt_long(const cli_conn *c, const char *opt, const char *arg, long min, long max, long *out)
{
	if (cli_parse_long(arg, min, max, out) != PQ_OK)
		return cli_usage_error(c->cmd, "--%s: %ld..%ld", opt, min, max);
	return CLI_EXIT_OK;
}

void cli_conn_close(cli_conn *c)
{
	if (!c->curl)
		return;
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	curl_global_cleanup();
}

typedef struct {
	char *buf;
	size_t len;
	bool over;
} rbuf;

static size_t on_data(char *p, size_t size, size_t n, void *user)
{
	rbuf *r = user;
	size_t k = size * n;
	if (r->len + k > RESP_MAX) {
		r->over = true;
		return 0;
	}
	char *nb = realloc(r->buf, r->len + k + 1);
	if (!nb)
		return 0;
	memcpy(nb + r->len, p, k);
	r->len += k;
	nb[r->len] = '\0';
	r->buf = nb;
	return k;
}

/* The options of one call on the reused handle (curl_easy_reset keeps its connections). */
static void set_common(cli_conn *c, CURL *e, const char *url, struct curl_slist *h)
{
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_CAINFO, c->ca);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
	curl_easy_setopt(e, CURLOPT_SSL_EC_CURVES, c->profile->tls_group);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	if (c->timeout_s > 0) {
		curl_easy_setopt(e, CURLOPT_TIMEOUT, c->timeout_s);
	} else { /* no limit on the whole call, but on a stall: under 1 byte/s for a minute */
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	}
	curl_easy_setopt(e, CURLOPT_USERAGENT, c->ua);
}

int cli_api_send(cli_conn *c, const char *method, const char *path, const char *ctype,
                 const void *body, size_t len, long *status, json_t **out)
{
	char url[2048], auth[600], ct[128];
	rbuf r = {0};
	int rc = PQ_OK;
	*out = NULL;
	*status = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->server, path) >= sizeof(url) ||
	    (size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->key) >=
	        sizeof(auth) ||
	    (size_t)snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "") >= sizeof(ct))
		return pq_err_set(PQ_ERR_RANGE, "URL, API key or content type too long");
	struct curl_slist *h = curl_slist_append(NULL, auth);
	struct curl_slist *h2 = h && body ? curl_slist_append(h, ct) : h;
	if (!h2) {
		curl_slist_free_all(h);
		return pq_err_set(PQ_ERR_NOMEM, "libcurl");
	}
	h = h2;
	CURL *e = c->curl;
	set_common(c, e, url, h);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
	CURLcode cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		rc = pq_err_set(r.over ? PQ_ERR_RANGE : PQ_ERR_IO, "%s %s: %s", method, path,
		                r.over ? "answer too large" : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	if (r.len == 0)
		goto out; /* 204, or an empty answer */
	json_error_t jerr;
	*out = json_loadb(r.buf, r.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out)
		rc = pq_err_set(PQ_ERR_FORMAT, "%s %s: HTTP %ld, the answer is not JSON", method,
		                path, *status);
out:
	curl_slist_free_all(h);
	free(r.buf);
	return rc;
}

int cli_api(cli_conn *c, const char *method, const char *path, const char *body, long *status,
            json_t **out)
{
	return cli_api_send(c, method, path, "application/json", body, body ? strlen(body) : 0,
	                    status, out);
}

int cli_api_error(const char *what, long status, const json_t *j)
{
	json_t *err = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	fprintf(stderr, "pqota: error: %s: HTTP %ld %s: %s\n", what, status, code ? code : "",
	        msg ? msg : "(no message)");
	return CLI_EXIT_ERROR;
}

int cli_call(cli_conn *c, const char *method, const char *path, json_t *body, long want,
             json_t **out, const char *what)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	long status = 0;
	*out = NULL;
	if (body && !text)
		return cli_error(PQ_ERR_NOMEM, "%s", what);
	int rc = cli_api(c, method, path, text, &status, out);
	free(text);
	if (rc != PQ_OK)
		return cli_error(rc, "%s", what);
	if (status == want)
		return CLI_EXIT_OK;
	int ex = cli_api_error(what, status, *out);
	json_decref(*out);
	*out = NULL;
	return ex;
}

int cli_path(char *out, size_t cap, const char *base, ...)
{
	size_t n = (size_t)snprintf(out, cap, "%s", base);
	char sep = strchr(base, '?') ? '&' : '?';
	va_list ap;
	va_start(ap, base);
	for (const char *k; n < cap && (k = va_arg(ap, const char *)) != NULL;) {
		const char *v = va_arg(ap, const char *);
		if (!v)
			continue;
		char *ev = curl_easy_escape(NULL, v, 0);
		if (!ev) {
			va_end(ap);
			return pq_err_set(PQ_ERR_NOMEM, "URL encoding");
		}
		n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%c%s=%s", sep, k, ev);
		curl_free(ev);
		sep = '&';
	}
	va_end(ap);
	return n < cap ? PQ_OK : pq_err_set(PQ_ERR_RANGE, "request path too long");
}

int cli_show(const cli_conn *c, json_t *j, void (*table)(const json_t *j))
{
	if (c->json) {
		int rc = cli_print_json(j, true, JSON_INDENT(2) | JSON_SORT_KEYS);
		return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "%s", c->cmd);
	}
	table(j);
	json_decref(j);
	if (fflush(stdout) != 0)
		return cli_error(PQ_ERR_IO, "%s: writing to stdout: %s", c->cmd, strerror(errno));
	return CLI_EXIT_OK;
}

int cli_get_show(cli_conn *c, const char *path, const char *what, void (*table)(const json_t *j))
{
	json_t *j = NULL;
	int ex = cli_call(c, "GET", path, NULL, 200, &j, what);
	return ex == CLI_EXIT_OK ? cli_show(c, j, table) : ex;
}

bool cli_id_valid(const char *id)
{
	size_t n = strlen(id);
	return n >= 1 && n <= 64 && strspn(id, "0123456789abcdefABCDEF-") == n;
}

int cli_show_id(cli_conn *c, const char *base, const char *id, const char *kind,
                void (*table)(const json_t *j))
{
	char path[200], what[64];
	if (!cli_id_valid(id))
		return cli_usage_error(c->cmd, "show: '%.64s' is not a %s id", id, kind);
	snprintf(path, sizeof(path), "%s/%s", base, id);
	snprintf(what, sizeof(what), "%s show", c->cmd);
	return cli_get_show(c, path, what, table);
}

void cli_page_args(const cli_conn *c, char lim[24], char off[24])
{
	snprintf(lim, 24, "%ld", c->limit ? c->limit : 50);
	snprintf(off, 24, "%ld", c->offset);
}

int cli_sub_index(const char *cmd, const char *sub, const char *const *subs, size_t n, int *ex)
{
	char names[256] = "";
	for (size_t i = 0; i < n; i++) {
		if (strcmp(sub, subs[i]) == 0)
			return (int)i;
		size_t len = strlen(names);
		snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", subs[i]);
	}
	*ex = cli_usage_error(cmd, "unknown subcommand '%.64s' (%s)", sub, names);
	return -1;
}

bool cli_help_first(int argc, char **argv, void (*usage)(FILE *), int *ex)
{
	if (argc >= 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0 &&
	    strcmp(argv[1], "help") != 0)
		return false;
	usage(argc < 2 ? stderr : stdout);
	*ex = argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	return true;
}

const char *cli_jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long cli_jint(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

void cli_time(int64_t ms, char out[24])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(out, 24, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, 24, "-");
}

/* ---- streams ------------------------------------------------------------------------- */

struct cli_stream {
	CURLM *m;
	CURL *e;
	struct curl_slist *h;
	cli_stream_fn fn;
	void *user;
	bool stop;
};

static size_t on_stream(char *p, size_t size, size_t n, void *user)
{
	cli_stream *s = user;
	long status = 0;
	curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 || !s->fn(p, size * n, s->user)) {
		s->stop = true;
		return 0;
	}
	return size * n;
}

cli_stream *cli_stream_open(cli_conn *c, const char *path, cli_stream_fn fn, void *user)
{
	char url[2048], auth[600];
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->server, path) >= sizeof(url) ||
	    (size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->key) >=
	        sizeof(auth)) {
		pq_err_set(PQ_ERR_RANGE, "URL or API key too long");
		return NULL;
	}
	cli_stream *s = calloc(1, sizeof(*s));
	if (s) {
		s->fn = fn;
		s->user = user;
		s->m = curl_multi_init();
		s->e = curl_easy_init();
		s->h = curl_slist_append(NULL, auth);
		struct curl_slist *h2 =
		    s->h ? curl_slist_append(s->h, "Accept: text/event-stream") : NULL;
		s->h = h2 ? h2 : s->h;
		if (!h2)
			s->stop = true;
	}
	if (!s || !s->m || !s->e || s->stop) {
		cli_stream_close(s);
		pq_err_set(PQ_ERR_NOMEM, "libcurl");
		return NULL;
	}
	set_common(c, s->e, url, s->h);
	curl_easy_setopt(s->e, CURLOPT_TIMEOUT, 0L); /* open until either side ends it */
	curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
	if (curl_multi_add_handle(s->m, s->e) != CURLM_OK) {
		cli_stream_close(s);
		pq_err_set(PQ_ERR_NOMEM, "libcurl");
		return NULL;
	}
	return s;
}

bool cli_stream_poll(cli_stream *s, int wait_ms, long *status)
{
	int running = 0;
	*status = 0;
	if (curl_multi_perform(s->m, &running) != CURLM_OK)
		return false;
	if (running && !s->stop)
		curl_multi_poll(s->m, NULL, 0, wait_ms, NULL);
	if (curl_multi_perform(s->m, &running) != CURLM_OK)
		return false;
	curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, status);
	return running && !s->stop;
}

void cli_stream_close(cli_stream *s)
{
	if (!s)
		return;
	if (s->m && s->e)
		curl_multi_remove_handle(s->m, s->e);
	if (s->e)
		curl_easy_cleanup(s->e);
	if (s->m)
		curl_multi_cleanup(s->m);
	curl_slist_free_all(s->h);
	free(s);
}

/* ---- progress ------------------------------------------------------------------------ */

void cli_progress_start(cli_progress *p, const char *label, uint64_t total)
{
	p->tty = isatty(STDERR_FILENO) == 1;
	p->label = label;
	p->total = total;
	p->start_ms = pq_mono_ms();
	p->last_ms = 0;
}

static void draw(cli_progress *p, uint64_t done, int64_t now)
{
	enum {
		WIDTH = 30
	};
	double frac = p->total ? (double)done / (double)p->total : 1.0;
	int fill = (int)(frac * WIDTH);
	char bar[WIDTH + 1];
	for (int i = 0; i < WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[WIDTH] = '\0';
	double s = (double)(now - p->start_ms) / 1000.0;
	double rate = s > 0 ? (double)done / s / 1e6 : 0.0;
	fprintf(stderr, "\r%s [%s] %5.1f%% %8.1f / %.1f MB %6.1f MB/s", p->label, bar, frac * 100.0,
	        (double)done / 1e6, (double)p->total / 1e6, rate);
	fflush(stderr);
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
	if (!p->tty)
		return;
	int64_t now = pq_mono_ms();
	if (now - p->last_ms < PROGRESS_TICK_MS && done < p->total)
		return;
	p->last_ms = now;
	draw(p, done, now);
}

void cli_progress_end(cli_progress *p)
{
	if (p->tty && p->last_ms)
		fputc('\n', stderr);
	p->last_ms = 0;
}
