/* access_log.c: one line per response (log.access, docs/operations.md "Logs"): method,
 * route pattern (never the query, which may hold a download token), status, body bytes,
 * duration until the response was handed over, client identity and address, TLS group.
 * Through the log destination (core/logfile.h): a text line, or JSON with these fields. */
#include <inttypes.h>
#include <stdio.h>

#include <event2/http.h>

#include "core/logfile.h"
#include "core/time.h"
#include "server/server_int.h"

/* The client's address: the one the proxy forwarded, else the connection's peer; "-" when
 * unknown. */
static const char *peer(const srv_ctx *c)
{
	if (c->proxied)
		return c->forwarded[0] ? c->forwarded : "-";
	struct evhttp_connection *conn = c->req ? evhttp_request_get_connection(c->req) : NULL;
	char *addr = NULL;
	ev_uint16_t port = 0;
	if (conn)
		evhttp_connection_get_peer(conn, &addr, &port);
	return addr && *addr ? addr : "-";
}

void srv__access_log(const srv_ctx *c, int status, uint64_t body_bytes)
{
	char msg[768];
	const char *m = srv__method_name(c->method), *route = c->route ? c->route : "-";
	const char *who = c->actor[0] ? c->actor : "anonymous", *addr = peer(c);
	const char *group = c->tls_group ? c->tls_group : "-";
	double ms = c->start_ns ? (double)(pq_mono_ns() - c->start_ns) / 1e6 : 0.0;
	snprintf(msg, sizeof(msg), "%s %s %d %" PRIu64 "B %.3fms %s %s %s", m, route, status,
	         body_bytes, ms, who, addr, group);
	/* the fields only for JSON lines; written through the buffer (flushed every second) */
	json_t *f =
	    pq_logfile_format() == PQ_LOGFMT_JSON
	        ? json_pack("{s:s,s:s,s:i,s:I,s:f,s:s,s:s,s:s}", "method", m, "route", route,
	                    "status", status, "bytes", (json_int_t)body_bytes, "duration_ms", ms,
	                    "identity", who, "client", addr, "tls_group", group)
	        : NULL;
	pq_logfile_bulk(PQ_LOG_INFO, "access", msg, f);
	json_decref(f);
}
