/* console.c: serves the operator console (assets.h, docs/console.md) at / and
 * /console/<build>/<file>, with the security headers every console response carries. */
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "server/assets.h"
#include "server/server_int.h"

#define GET (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

/* No inline script or style, nothing from elsewhere, never framed. */
#define CONSOLE_CSP                                                                                \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"           \
	" connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"                \
	" form-action 'self'; frame-ancestors 'none'"

void srv_security_headers(srv_ctx *c)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	evhttp_add_header(h, "Content-Security-Policy", CONSOLE_CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
}

/* Whether If-None-Match names the asset's ETag (or is "*"). */
static bool not_modified(srv_ctx *c, const srv_asset *a)
{
	const char *inm =
	    evhttp_find_header(evhttp_request_get_input_headers(c->req), "If-None-Match");
	return inm && (strcmp(inm, "*") == 0 || strstr(inm, a->etag) != NULL);
}

/* The asset, its bytes by reference (they live as long as the server). */
static void send_asset(srv_ctx *c, const srv_asset *a, bool immutable)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	srv_security_headers(c);
	evhttp_add_header(h, "ETag", a->etag);
	evhttp_add_header(h, "Cache-Control",
	                  immutable ? "public, max-age=31536000, immutable" : "no-cache");
	if (not_modified(c, a)) {
		evhttp_send_reply(c->req, 304, "Not Modified", NULL);
		srv_count(c, 304, 0);
		return;
	}
	evhttp_add_header(h, "Content-Type", a->type);
	struct evbuffer *b = evbuffer_new();
	if (!b || evbuffer_add_reference(b, a->data, a->len, NULL, NULL) != 0) {
		if (b)
			evbuffer_free(b);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	evhttp_send_reply(c->req, 200, "OK", b);
	srv_count(c, 200, a->len);
	evbuffer_free(b);
}

static void h_index(srv_ctx *c)
{
	const srv_asset *a = srv_assets_find(c->s->assets, "index.html");
	if (!a) {
		srv_error(c, 404, "not_found", "the console is switched off (console.enabled)");
		return;
	}
	send_asset(c, a, false);
}

/* /console/{build}/{file} and /console/{build}/{dir}/{file}. A file of another build is
 * 404: the page that asked for it is stale and reloads. */
static void h_asset(srv_ctx *c)
{
	char name[SRV_ASSET_NAME_MAX + 1];
	const srv_assets *as = c->s->assets;
	if (!as || strcmp(c->params[0], as->build) != 0) {
		srv_error(c, 404, "not_found", "no console build '%s' here (reload the page)",
		          c->params[0]);
		return;
	}
	int n = c->nparams == 3 ? snprintf(name, sizeof(name), "%s/%s", c->params[1], c->params[2])
	                        : snprintf(name, sizeof(name), "%s", c->params[1]);
	const srv_asset *a = n > 0 && (size_t)n < sizeof(name) && strcmp(name, "index.html") != 0
	                         ? srv_assets_find(as, name)
	                         : NULL;
	if (!a) {
		srv_error(c, 404, "not_found", "no console file %s", c->path);
		return;
	}
	send_asset(c, a, true);
}

const srv_route route_console_table[] = {
    {GET, "/", SRV_AUTH_PUBLIC, h_index, "the operator console (docs/console.md)"},
    {GET, "/console/{build}/{file}", SRV_AUTH_PUBLIC, h_asset, "a console file"},
    {GET, "/console/{build}/{dir}/{file}", SRV_AUTH_PUBLIC, h_asset, "a console file"},
    {0, NULL, 0, NULL, NULL},
};
