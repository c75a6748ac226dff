/* responses.c: what route handlers use to answer (server.h): JSON responses and errors, the
 * mapping of pq_err codes to statuses, the request body as JSON, query parameters, paging,
 * audit records. Out of memory while building a response is answered with a 500. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "core/log.h"
#include "core/text.h"
#include "server/server_int.h"

#define LOGC "server"

/* The body of a 500 when a response could not be built (no allocation needed). */
static const char oom_body[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

/* Sends text (NULL: no body) as the JSON response. */
static void send_json_text(srv_ctx *c, int status, const char *text)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	struct evbuffer *out = text ? evbuffer_new() : NULL;
	uint64_t n = 0;
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (out && evbuffer_add(out, text, strlen(text)) == 0 && evbuffer_add(out, "\n", 1) == 0)
		n = strlen(text) + 1;
	srv_count(c, status, n);
	evhttp_send_reply(c->req, status, NULL, out);
	if (out)
		evbuffer_free(out);
}

void srv_json(srv_ctx *c, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(body);
	if (!text && status != 204) {
		/* the body (a NULL from its builder) or its text could not be made */
		pq_log(PQ_LOG_ERROR, LOGC, "%s: response of status %d: out of memory", c->path,
		       status);
		send_json_text(c, 500, oom_body);
		return;
	}
	send_json_text(c, status, text);
	free(text);
}

void srv_error(srv_ctx *c, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* messages may quote request bytes (a path, a parameter): made a valid JSON string */
	pq_utf8_scrub(msg);
	srv_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

void srv_fail(srv_ctx *c, int rc, const char *what)
{
	const char *d = pq_err_detail();
	switch (rc) {
	case PQ_ERR_NOTFOUND:
		srv_error(c, 404, "not_found", "%s: %s", what, d);
		break;
	case PQ_ERR_EXISTS:
		pq_log(PQ_LOG_DEBUG, LOGC, "%s: %s", what, d);
		srv_error(c, 409, "conflict", "%s: it already exists", what);
		break;
	case PQ_ERR_INVAL:
	case PQ_ERR_FORMAT:
	case PQ_ERR_RANGE:
	case PQ_ERR_VERIFY:
		srv_error(c, 400, "bad_request", "%s: %s", what, d);
		break;
	default:
		pq_log(PQ_LOG_ERROR, LOGC, "%s: %s", what, d);
		srv_error(c, 500, "internal", "%s failed", what);
	}
}

json_t *srv_body_json(srv_ctx *c)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	if (len == 0) {
		srv_error(c, 400, "bad_request", "a JSON body is required");
		return NULL;
	}
	unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (!p) {
		srv_fail(c, pq_err_set(PQ_ERR_NOMEM, "request body"), "reading the body");
		return NULL;
	}
	json_t *j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		srv_error(c, 400, "bad_json", "body is not valid JSON: %s (line %d)", jerr.text,
		          jerr.line);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		srv_error(c, 400, "bad_json", "body must be a JSON object");
		return NULL;
	}
	return j;
}

int srv_json_text(const char *text, const char *what, json_t **out)
{
	json_error_t jerr;
	*out = NULL;
	if (!text)
		return PQ_OK;
	*out = json_loads(text, 0, &jerr);
	if (*out)
		return PQ_OK;
	if (json_error_code(&jerr) == json_error_out_of_memory)
		return pq_err_set(PQ_ERR_NOMEM, "%s", what);
	return pq_err_set(PQ_ERR_FORMAT, "%s: stored JSON is not valid: %s (line %d)", what,
	                  jerr.text, jerr.line);
}

char *srv_query(srv_ctx *c, const char *name)
{
	struct evkeyvalq q;
	char *v = NULL;
	if (!c->query)
		return NULL;
	memset(&q, 0, sizeof(q));
	if (evhttp_parse_query_str(c->query, &q) != 0)
		return NULL;
	const char *x = evhttp_find_header(&q, name);
	if (x)
		v = strdup(x);
	evhttp_clear_headers(&q);
	return v;
}

bool srv_query_only(srv_ctx *c, const char *const *allowed)
{
	struct evkeyvalq q;
	if (!c->query || !*c->query)
		return true;
	memset(&q, 0, sizeof(q));
	if (evhttp_parse_query_str(c->query, &q) != 0) {
		srv_error(c, 400, "bad_request", "malformed query string");
		return false;
	}
	const char *bad = NULL;
	for (struct evkeyval *kv = q.tqh_first; kv && !bad; kv = kv->next.tqe_next) {
		bool known = false;
		for (size_t i = 0; allowed && allowed[i] && !known; i++)
			known = strcmp(kv->key, allowed[i]) == 0;
		for (struct evkeyval *o = q.tqh_first; o != kv && known; o = o->next.tqe_next)
			known = strcmp(o->key, kv->key) != 0; /* a repeated parameter is refused */
		if (!known)
			bad = kv->key;
	}
	if (bad) {
		char name[64];
		snprintf(name, sizeof(name), "%s", bad);
		pq_utf8_scrub(name);
		srv_error(c, 400, "bad_request", "unknown or repeated query parameter '%s'", name);
	}
	evhttp_clear_headers(&q);
	return bad == NULL;
}

bool srv_query_int(srv_ctx *c, const char *name, int64_t min, int64_t max, int64_t def,
                   int64_t *out)
{
	char *v = srv_query(c, name), *end = NULL;
	*out = def;
	if (!v)
		return true;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	bool ok = *v && !*end && !errno && x >= min && x <= max;
	free(v);
	if (!ok) {
		srv_error(c, 400, "bad_request", "query parameter '%s' must be %lld..%lld", name,
		          (long long)min, (long long)max);
		return false;
	}
	*out = x;
	return true;
}

bool srv_page(srv_ctx *c, store_page *pg)
{
	int64_t limit, offset;
	if (!srv_query_int(c, "limit", 1, STORE_PAGE_MAX, 50, &limit) ||
	    !srv_query_int(c, "offset", 0, INT64_MAX / 2, 0, &offset))
		return false;
	pg->limit = (int)limit;
	pg->offset = offset;
	return true;
}

json_t *srv_page_json(json_t *items, const store_page *pg, int64_t total)
{
	if (!items)
		return NULL;
	return json_pack("{s:o,s:I,s:i,s:I}", "items", items, "total", (json_int_t)total, "limit",
	                 pg->limit ? pg->limit : STORE_PAGE_DEFAULT, "offset",
	                 (json_int_t)pg->offset);
}

void srv_audit(srv_ctx *c, const char *action, const char *target, json_t *detail)
{
	char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
	if (detail && !text)
		pq_log(PQ_LOG_ERROR, LOGC, "audit %s %s: detail dropped: out of memory", action,
		       target);
	if (store_audit_append(c->db, c->actor, action, target, text, c->now_ms) != PQ_OK)
		pq_log(PQ_LOG_ERROR, LOGC, "audit %s %s: %s", action, target, pq_err_detail());
	free(text);
	json_decref(detail);
}
