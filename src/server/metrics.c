/* metrics.c: the server's counters and the one writer of /metrics (Prometheus text format
 * 0.0.4): the HTTP counters kept here, lock-free, by every worker, then the control plane's
 * (ctl_get_stats). docs/operations.md lists what each metric means. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "core/time.h"
#include "server/control.h"
#include "server/server_int.h"
#include "server/telemetry.h"
#include "store/telemetry.h"

/* TLS groups counted by name; the last slot counts every other group. */
static const char *const groups[SRV_TLS_GROUPS] = {"X25519MLKEM768",
                                                   "SecP384r1MLKEM1024",
                                                   "SecP256r1MLKEM768",
                                                   "MLKEM512",
                                                   "MLKEM768",
                                                   "MLKEM1024",
                                                   "x25519",
                                                   "other"};

/* ---- counting ------------------------------------------------------------------------- */

void srv__metrics_start(srv *s)
{
	s->m.started_mono_ms = pq_mono_ms();
	pthread_mutex_init(&s->m.fleet.lock, NULL);
}

void srv__metrics_stop(srv *s)
{
	pthread_mutex_destroy(&s->m.fleet.lock);
	free(s->m.routes);
	s->m.routes = NULL;
}

void srv__count_request(srv *s)
{
	atomic_fetch_add(&s->m.requests, 1);
}

void srv__count_status(srv *s, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&s->m.status[cls], 1);
}

void srv__count_bytes(srv *s, uint64_t n)
{
	atomic_fetch_add(&s->m.bytes_out, n);
}

void srv__count_rate_limited(srv *s)
{
	atomic_fetch_add(&s->m.rate_limited, 1);
}

void srv__count_auth_failed(srv *s)
{
	atomic_fetch_add(&s->m.auth_failed, 1);
}

void srv__count_tls_group(srv *s, const char *group)
{
	size_t i = 0;
	while (i < SRV_TLS_GROUPS - 1 && (!group || strcasecmp(group, groups[i]) != 0))
		i++;
	atomic_fetch_add(&s->m.group[i], 1);
}

void srv_count(srv_ctx *c, int status, uint64_t body_bytes)
{
	srv__count_status(c->s, status);
	srv__count_bytes(c->s, body_bytes);
	if (c->start_ns)
		srv__observe_duration(c->s, c->route, pq_mono_ns() - c->start_ns);
	if (atomic_load(&c->s->access_log))
		srv__access_log(c, status, body_bytes);
}

/* ---- the exposition format ------------------------------------------------------------- */

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample; label is NULL or `key="value"` without the braces. */
static void sample(struct evbuffer *out, const char *name, const char *label, uint64_t v)
{
	if (label)
		evbuffer_add_printf(out, "%s{%s} %" PRIu64 "\n", name, label, v);
	else
		evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

typedef struct {
	const char *name, *type, *help;
	uint64_t v;
} metric;

/* Metrics of one unlabelled sample each, in order. */
static void metrics(struct evbuffer *out, const metric *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		family(out, m[i].name, m[i].type, m[i].help);
		sample(out, m[i].name, NULL, m[i].v);
	}
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t load(atomic_uint_fast64_t *a)
{
	return (uint64_t)atomic_load(a);
}

static void http_metrics(srv *s, struct evbuffer *out)
{
	char label[64];
	family(out, "pqota_http_requests_total", "counter", "HTTP requests received.");
	sample(out, "pqota_http_requests_total", NULL, load(&s->m.requests));
	family(out, "pqota_http_responses_total", "counter", "HTTP responses by status class.");
	for (int i = 1; i <= 5; i++) {
		snprintf(label, sizeof(label), "class=\"%dxx\"", i);
		sample(out, "pqota_http_responses_total", label, load(&s->m.status[i]));
	}
	metric refused[] = {
	    {"pqota_http_rate_limited_total", "counter", "Requests refused with 429.",
	     load(&s->m.rate_limited)},
	    {"pqota_http_auth_failures_total", "counter", "Requests refused with 401/403.",
	     load(&s->m.auth_failed)},
	    {"pqota_http_response_bytes_total", "counter", "Response body bytes queued.",
	     load(&s->m.bytes_out)},
	};
	metrics(out, refused, COUNT(refused));
	family(out, "pqota_uptime_seconds", "gauge", "Seconds since the server started.");
	evbuffer_add_printf(out, "pqota_uptime_seconds %.3f\n",
	                    (double)(pq_mono_ms() - s->m.started_mono_ms) / 1000.0);
	family(out, "pqota_workers", "gauge", "Worker threads.");
	sample(out, "pqota_workers", NULL, (uint64_t)s->nworkers);
	family(out, "pqota_tls_requests_total", "counter",
	       "Requests by negotiated TLS key-exchange group.");
	for (size_t i = 0; i < SRV_TLS_GROUPS; i++) {
		snprintf(label, sizeof(label), "group=\"%s\"", groups[i]);
		sample(out, "pqota_tls_requests_total", label, load(&s->m.group[i]));
	}
}

static void control_metrics(const ctl_stats *st, struct evbuffer *out)
{
	char label[64];
	metric rows[] = {
	    {"pqota_mqtt_connected", "gauge", "Whether the MQTT bridge is connected.",
	     st->mqtt_connected ? 1 : 0},
	    {"pqota_mqtt_received_total", "counter", "MQTT messages received.", st->received},
	    {"pqota_mqtt_rejected_total", "counter",
	     "MQTT messages dropped as malformed or invalid.", st->rejected},
	    {"pqota_mqtt_duplicate_total", "counter", "MQTT messages ignored as redeliveries.",
	     st->duplicate},
	    {"pqota_mqtt_unknown_vehicle_total", "counter", "MQTT messages from unregistered VINs.",
	     st->unknown_vehicle},
	    {"pqota_mqtt_replay_total", "counter", "Wake-ups refused for a lower boot_seq.",
	     st->replay},
	    {"pqota_mqtt_published_total", "counter", "MQTT messages published.", st->published},
	    {"pqota_mqtt_publish_failed_total", "counter",
	     "MQTT publishes that failed (retried later).", st->publish_failed},
	    {"pqota_mqtt_connects_total", "counter", "MQTT (re)connections.", st->connects},
	    {"pqota_campaign_ticks_total", "counter", "Campaign engine ticks.", st->ticks},
	    {"pqota_campaign_notified_total", "counter",
	     "Campaign notifications (ota_campaign) published, re-notifications included.",
	     st->notified},
	    {"pqota_campaign_timed_out_total", "counter", "Deployments timed out.", st->timed_out},
	    {"pqota_diag_requests_total", "counter", "Diagnostics requests published.",
	     st->diag_requests},
	};
	metrics(out, rows, COUNT(rows));
	family(out, "pqota_diag_responses_total", "counter",
	       "Diagnostics answers stored by status (expired: no answer in time).");
	for (int i = STORE_DIAG_ST_POSITIVE; i < STORE_DIAG_STATUS_COUNT; i++) {
		snprintf(label, sizeof(label), "status=\"%s\"",
		         store_diag_status_name((store_diag_status)i));
		sample(out, "pqota_diag_responses_total", label, st->diag_responses[i]);
	}
	sample(out, "pqota_diag_responses_total", "status=\"expired\"", st->diag_expired);
}

static void telemetry_counters(const tele_stats *t, struct evbuffer *out)
{
	static const char name[] = "pqota_telemetry_refused_total";
	family(out, "pqota_telemetry_stored_total", "counter", "Telemetry samples stored.");
	sample(out, "pqota_telemetry_stored_total", NULL, t->stored);
	family(out, name, "counter",
	       "Telemetry samples refused: invalid, rate_limited (too soon after the last), stale "
	       "(not newer than the latest).");
	sample(out, name, "reason=\"invalid\"", t->invalid);
	sample(out, name, "reason=\"rate_limited\"", t->rate_limited);
	sample(out, name, "reason=\"stale\"", t->stale);
}

/* Reads the fleet gauges from the store into g: one aggregate over each vehicle's latest
 * telemetry (store_telemetry_fleet) and the count of online vehicles. */
static void fleet_read(srv *s, store *db, srv_fleet_gauges *g)
{
	const srv_options *o = srv_get_options(s);
	int64_t fresh = o->telemetry_fresh_ms > 0 ? o->telemetry_fresh_ms : TELE_FRESH_MS_DEFAULT;
	int low = o->telemetry_low_battery_pct > 0 ? o->telemetry_low_battery_pct
	                                           : TELE_LOW_BATTERY_DEFAULT;
	g->reads++;
	g->ok = db && store_telemetry_fleet(db, pq_real_ms() - fresh, low, &g->tele) == PQ_OK &&
	        store_vehicle_count_online(db, &g->online) == PQ_OK &&
	        store_rollout_counts(db, g->dep, g->cmp) == PQ_OK;
	if (!g->ok)
		pq_err_clear(); /* the store is down: /health says so; the counters still count */
}

/* The fleet gauges into *out, read from the store at most once per metrics.cache in this
 * process whatever the scrape rate (scrapes meanwhile, and those waiting for a read, share
 * its result); false when the store did not answer. */
static bool fleet_gauges(srv *s, store *db, srv_fleet_gauges *out)
{
	srv_fleet_gauges *g = &s->m.fleet;
	int64_t ttl = srv_get_options(s)->metrics_cache_ms, now = pq_mono_ms();
	pthread_mutex_lock(&g->lock);
	if (g->read_mono_ms == 0 || ttl <= 0 || now - g->read_mono_ms >= ttl) {
		fleet_read(s, db, g);
		g->read_mono_ms = now;
	}
	out->ok = g->ok;
	out->tele = g->tele;
	out->online = g->online;
	memcpy(out->dep, g->dep, sizeof(out->dep));
	memcpy(out->cmp, g->cmp, sizeof(out->cmp));
	out->reads = g->reads;
	pthread_mutex_unlock(&g->lock);
	return out->ok;
}

/* Campaigns by state, and the deployments of the running and paused ones by state. */
static void rollout_metrics(const srv_fleet_gauges *g, struct evbuffer *out)
{
	char label[64];
	family(out, "pqota_campaigns", "gauge", "Campaigns by state.");
	for (int i = 0; i < STORE_CMP_STATE_COUNT; i++) {
		snprintf(label, sizeof(label), "state=\"%s\"", store_cmp_state_name(i));
		sample(out, "pqota_campaigns", label, (uint64_t)g->cmp[i]);
	}
	family(out, "pqota_deployments", "gauge",
	       "Deployments of the running and paused campaigns, by state.");
	for (int i = 0; i < STORE_DEP_STATE_COUNT; i++) {
		snprintf(label, sizeof(label), "state=\"%s\"", store_dep_state_name(i));
		sample(out, "pqota_deployments", label, (uint64_t)g->dep[i]);
	}
}

/* The fleet gauges: vehicles online, and those from each vehicle's latest telemetry. The
 * minimums are left out while no vehicle reports. */
static void fleet_metrics(srv *s, store *db, struct evbuffer *out)
{
	srv_fleet_gauges g;
	bool ok = fleet_gauges(s, db, &g);
	family(out, "pqota_metrics_fleet_reads_total", "counter",
	       "Reads of the fleet gauges from the store (at most one per metrics.cache).");
	sample(out, "pqota_metrics_fleet_reads_total", NULL, g.reads);
	if (!ok)
		return;
	const store_tele_fleet *f = &g.tele;
	metric rows[] = {
	    {"pqota_vehicles_online", "gauge",
	     "Vehicles online: an MQTT session, or a REST check within compat.poll_interval x 3.",
	     (uint64_t)g.online},
	    {"pqota_telemetry_vehicles_reporting", "gauge",
	     "Vehicles whose latest telemetry is recent (telemetry.fresh).",
	     (uint64_t)f->reporting},
	    {"pqota_telemetry_vehicles_parked", "gauge", "Reporting vehicles parked.",
	     (uint64_t)f->parked},
	    {"pqota_telemetry_vehicles_moving", "gauge", "Reporting vehicles with a speed above 0.",
	     (uint64_t)f->moving},
	    {"pqota_telemetry_vehicles_ignition_on", "gauge",
	     "Reporting vehicles with ignition on.", (uint64_t)f->ignition_on},
	    {"pqota_telemetry_vehicles_battery_low", "gauge",
	     "Reporting vehicles charged below telemetry.low_battery_pct.",
	     (uint64_t)f->battery_low},
	};
	metrics(out, rows, COUNT(rows));
	rollout_metrics(&g, out);
	if (f->reporting == 0)
		return;
	metric mins[] = {
	    {"pqota_telemetry_battery_soc_min_percent", "gauge",
	     "Lowest state of charge of the reporting vehicles.", (uint64_t)f->battery_pct_min},
	    {"pqota_telemetry_storage_free_min_bytes", "gauge",
	     "Least free storage of the reporting vehicles.", (uint64_t)f->storage_free_min},
	};
	metrics(out, mins, COUNT(mins));
}

void srv_metrics_text(srv *s, store *db, struct evbuffer *out)
{
	ctl_stats st;
	http_metrics(s, out);
	srv__metrics_http_text(s, out);
	if (ctl_get_stats(s->ctl, &st)) {
		control_metrics(&st, out);
		telemetry_counters(&st.tele, out);
	}
	fleet_metrics(s, db, out);
}
