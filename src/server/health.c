/* health.c: GET /health (liveness: the process serves; 200 while it does) and GET /ready
 * (readiness: the store answers, the MQTT bridge is connected when one is configured, the
 * data directory is writable, the TLS certificate is valid and the Uptane keys loaded; 503
 * naming each failing part), as load balancers and orchestrators use them (docs/api.md
 * 9.1). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/fileio.h"
#include "core/log.h"
#include "server/control.h"
#include "server/routes.h"
#include "server/server_int.h"
#include "tls/tls.h"

#define READY_MIN_FREE (64ull * 1024 * 1024) /* the data directory's least free space */

static void h_health(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	const srv_options *o = srv_get_options(c->s);
	json_t *j = json_pack("{s:s,s:s,s:{s:i,s:s,s:s},s:s}", "status", "ok", "openssl",
	                      tls_openssl_version(), "tls", "profile", o->profile->id, "name",
	                      o->profile->name, "group", o->profile->tls_group, "backend",
	                      store_get_backend(c->db) == STORE_SQLITE ? "sqlite" : "postgres");
	srv_json(c, 200, j);
}

/* ---- readiness: each check sets its member of checks, "ok" or what is wrong ---------------- */

typedef struct {
	json_t *checks, *failing;
} ready_ctx;

/* part's result: "ok", or what is wrong (why) */
static void result(ready_ctx *r, const char *part, bool ok, const char *why)
{
	json_object_set_new(r->checks, part, json_string(ok ? "ok" : why ? why : "failed"));
	if (!ok)
		json_array_append_new(r->failing, json_string(part));
}

static void check_store(srv_ctx *c, ready_ctx *r)
{
	int rc = store_ping(c->db);
	if (rc != PQ_OK) /* the detail (host, user) to the log, not to an anonymous caller */
		pq_log(PQ_LOG_WARN, "server", "/ready: the store does not answer: %s",
		       pq_err_detail());
	result(r, "store", rc == PQ_OK, "down: the store does not answer");
}

static void check_broker(srv_ctx *c, ready_ctx *r)
{
	ctl_stats st;
	const srv_options *o = srv_get_options(c->s);
	if (!o->mqtt_host) {
		json_object_set_new(r->checks, "broker", json_string("not configured"));
		return;
	}
	bool up = ctl_get_stats(c->s->ctl, &st) && st.mqtt_connected;
	result(r, "broker", up, "down: the MQTT bridge is not connected");
}

/* DATA and DATA/files writable, with READY_MIN_FREE bytes free. */
static void check_data_dir(srv_ctx *c, ready_ctx *r)
{
	char files[PATH_MAX], why[PATH_MAX + 64];
	struct statvfs vs;
	const char *dir = srv_get_options(c->s)->data_dir;
	bool ok = pq_path_join(files, sizeof(files), dir, "files") == PQ_OK;
	snprintf(why, sizeof(why), "%s", "path too long");
	if (ok && (access(dir, W_OK) != 0 || access(files, W_OK) != 0)) {
		pq_log(PQ_LOG_WARN, "server", "/ready: %s is not writable: %s", files,
		       strerror(errno));
		snprintf(why, sizeof(why), "%s", "files/ is not writable");
		ok = false;
	}
	if (ok && statvfs(dir, &vs) == 0 &&
	    (unsigned long long)vs.f_bavail * vs.f_frsize < READY_MIN_FREE) {
		snprintf(why, sizeof(why), "less than %llu MiB free", READY_MIN_FREE >> 20);
		ok = false;
	}
	result(r, "data_dir", ok, why);
}

/* The TLS certificate in use is within its validity; the Uptane keys are loaded when
 * configured. */
static void check_keys(srv_ctx *c, ready_ctx *r)
{
	const srv_options *o = srv_get_options(c->s);
	const char *why = NULL;
	pthread_mutex_lock(&c->s->ssl_lock); /* a reload may replace the context */
	X509 *cert = SSL_CTX_get0_certificate(c->s->ssl);
	if (!cert)
		why = "no TLS certificate";
	else if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0)
		why = "the TLS certificate has expired";
	else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
		why = "the TLS certificate is not valid yet";
	pthread_mutex_unlock(&c->s->ssl_lock);
	if (!why && o->uptane_dir && !srv_uptane(c->s))
		why = "the Uptane role keys are not loaded";
	result(r, "keys", why == NULL, why);
}

static void h_ready(srv_ctx *c)
{
	if (!srv_query_only(c, NULL))
		return;
	ready_ctx r = {json_object(), json_array()};
	if (!r.checks || !r.failing) {
		json_decref(r.checks);
		json_decref(r.failing);
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	check_store(c, &r);
	check_broker(c, &r);
	check_data_dir(c, &r);
	check_keys(c, &r);
	bool ready = json_array_size(r.failing) == 0;
	srv_json(c, ready ? 200 : 503,
	         json_pack("{s:s,s:o,s:o}", "status", ready ? "ready" : "not_ready", "checks",
	                   r.checks, "failing", r.failing));
}

const srv_route route_health_table[] = {
    {EVHTTP_REQ_GET, "/health", SRV_AUTH_PUBLIC, h_health, "liveness: 200 while the server serves"},
    {EVHTTP_REQ_GET, "/ready", SRV_AUTH_PUBLIC, h_ready,
     "readiness: store, broker, data directory and keys (503 naming what fails)"},
    {0, NULL, 0, NULL, NULL},
};
