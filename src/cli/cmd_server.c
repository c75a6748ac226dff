/* cmd_server.c: `pqota server` (run, check, print or write its configuration) and
 * `pqota server apikey create|list|revoke`, `pqota server routes`. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>

#include "cli/cli.h"
#include "cli/server_backup.h"
#include "core/config.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/logfile.h"
#include "core/text.h"
#include "core/uuid.h"
#include "crypto/hash.h"
#include "crypto/profile.h"
#include "server/server.h"
#include "store/store.h"

extern char **environ;

typedef struct {
	char *listen;
	char *proxy_listen, *proxy_secret_file;
	bool reuse_port;
	int64_t workers;
	char *profile;
	char *extra_groups;
	char *pki;
	char *cert, *key, *ca;
	bool require_client_cert;
	int backend;
	char *store_url;
	char *data_dir;
	uint64_t max_header, max_body;
	int64_t timeout_ms, drain_ms;
	int64_t rate_global, burst_global, rate_client, burst_client;
	int64_t token_ttl_ms;
	char *token_secret_file;
	bool downloads_encrypt;
	int log_level, log_format;
	char *log_file;
	bool log_access;
	char *port_file;
	char *mqtt_broker, *mqtt_ca, *mqtt_cert, *mqtt_key, *mqtt_shared_group, *mqtt_client_id;
	char *instance;
	int64_t tick_ms, lease_ms, batch, snapshot_ms;
	char *uptane_keys;
	int uptane_policy_i;
	char *public_url;
	bool console_on;
	char *console_dir;
	int64_t session_ttl_ms;
	int64_t tele_history, tele_interval_ms, tele_fresh_ms, tele_low_battery;
	int64_t metrics_cache_ms;
	bool metrics_require_key;
	int64_t poll_interval_ms;
} server_conf;

static const char *const policies[] = {"hybrid", "pq", "classical", NULL};

static const char *const backends[] = {"sqlite", "postgres", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

static const cfg_field server_fields[] = {
    CFG_STRING("listen", server_conf, listen, "127.0.0.1:8443",
               "address:port for HTTPS (port 0: any free port)"),
    CFG_BOOL("reuse_port", server_conf, reuse_port, "false",
             "each worker binds the port with SO_REUSEPORT, so other processes may share it "
             "(off: a port in use stops the start-up)"),
    CFG_INT("workers", server_conf, workers, "2", 1, 64, "worker threads (event loops)"),
    CFG_STRING("proxy.listen", server_conf, proxy_listen, NULL,
               "plain HTTP for a TLS-terminating reverse proxy: unix:PATH or a loopback "
               "HOST:PORT (docs/operations.md, Behind a load balancer)"),
    CFG_STRING("proxy.secret_file", server_conf, proxy_secret_file, NULL,
               "the secret the proxy sends as X-Pqota-Proxy-Secret (32..256 characters)"),
    CFG_STRING("tls.profile", server_conf, profile, "2",
               "PQC profile id or name (pqota keys profiles)"),
    CFG_STRING("tls.extra_groups", server_conf, extra_groups, NULL,
               "more TLS groups to accept, colon-separated (clients of other profiles)"),
    CFG_STRING("tls.pki", server_conf, pki, NULL,
               "PKI directory from 'pqota keys init': server/server.{crt,key}, ca/ca.crt"),
    CFG_STRING("tls.cert", server_conf, cert, NULL, "server certificate (overrides tls.pki)"),
    CFG_STRING("tls.key", server_conf, key, NULL, "server private key (overrides tls.pki)"),
    CFG_STRING("tls.ca", server_conf, ca, NULL,
               "CA of vehicle client certificates (overrides tls.pki)"),
    CFG_BOOL("tls.require_client_cert", server_conf, require_client_cert, "false",
             "refuse clients without a certificate (else API keys work without one)"),
    CFG_ENUM("store.backend", server_conf, backend, "sqlite", backends, "storage backend"),
    CFG_STRING("store.url", server_conf, store_url, NULL,
               "SQLite file (default DATA_DIR/pqota.db) or PostgreSQL conninfo"),
    CFG_STRING("data_dir", server_conf, data_dir, "pqota-data",
               "packages, images, uploads and the download-token key"),
    CFG_SIZE("limits.max_header_bytes", server_conf, max_header, "16k", 1024, 1024 * 1024,
             "largest request header block"),
    CFG_SIZE("limits.max_body_bytes", server_conf, max_body, "8M", 1024, 256 * CFG_MIB,
             "largest request body (uploads come in pieces of at most this)"),
    CFG_DURATION("limits.timeout", server_conf, timeout_ms, "30s", CFG_SECOND, CFG_HOUR,
                 "idle connection and request timeout"),
    CFG_DURATION("limits.drain", server_conf, drain_ms, "10s", 0, 10 * CFG_MINUTE,
                 "on SIGTERM, how long requests in progress may finish"),
    CFG_INT("ratelimit.global_rps", server_conf, rate_global, "5000", 0, 10000000,
            "requests per second over all clients (0: no limit)"),
    CFG_INT("ratelimit.global_burst", server_conf, burst_global, "10000", 0, 100000000,
            "global bucket size"),
    CFG_INT("ratelimit.client_rps", server_conf, rate_client, "100", 0, 1000000,
            "requests per second per client: API key, vehicle or address (0: no limit)"),
    CFG_INT("ratelimit.client_burst", server_conf, burst_client, "200", 0, 10000000,
            "per-client bucket size"),
    CFG_DURATION("downloads.token_ttl", server_conf, token_ttl_ms, "1h", CFG_MINUTE,
                 30 * 24 * CFG_HOUR, "lifetime of download tokens"),
    CFG_STRING("downloads.token_key_file", server_conf, token_secret_file, NULL,
               "32-byte HMAC key for download tokens (default DATA_DIR/token.key, created)"),
    CFG_BOOL("downloads.encrypt", server_conf, downloads_encrypt, "true",
             "keep each package encrypted too and give vehicles only the encrypted copy, its "
             "key wrapped for each vehicle in the campaign metadata"),
    CFG_ENUM("log.level", server_conf, log_level, "info", levels,
             "least severe log level (SIGHUP reloads it)"),
    CFG_ENUM("log.format", server_conf, log_format, "text", log_formats,
             "text lines, or JSON lines with stable field names (SIGHUP reloads it)"),
    CFG_STRING("log.file", server_conf, log_file, NULL,
               "append the log here instead of stderr; SIGHUP reopens it (logrotate)"),
    CFG_BOOL("log.access", server_conf, log_access, "true",
             "one line per request: method, route, status, bytes, duration, identity, "
             "address, TLS group (SIGHUP reloads it)"),
    CFG_STRING("port_file", server_conf, port_file, NULL,
               "write the listening port here once ready (for scripts and tests)"),
    CFG_STRING("public_url", server_conf, public_url, NULL,
               "base URL vehicles reach this server at (default https://LISTEN)"),
    CFG_BOOL("console.enabled", server_conf, console_on, "true",
             "serve the operator console at / (docs/console.md)"),
    CFG_STRING("console.dir", server_conf, console_dir, NULL,
               "serve the console from this directory instead of the files built in"),
    CFG_DURATION("console.session_ttl", server_conf, session_ttl_ms, "12h", CFG_MINUTE,
                 30 * 24 * CFG_HOUR, "how long a console sign-in lasts"),
    CFG_STRING("mqtt.broker", server_conf, mqtt_broker, NULL,
               "MQTT broker host:port (empty: no MQTT bridge, no campaign notifications)"),
    CFG_STRING("mqtt.ca", server_conf, mqtt_ca, NULL, "CA of the broker (default tls.pki's)"),
    CFG_STRING("mqtt.cert", server_conf, mqtt_cert, NULL,
               "the server's MQTT client certificate (default TLS_PKI/server-client/client.crt)"),
    CFG_STRING("mqtt.key", server_conf, mqtt_key, NULL,
               "its key (default TLS_PKI/server-client/client.key)"),
    CFG_STRING("mqtt.shared_group", server_conf, mqtt_shared_group, NULL,
               "MQTT 5 shared-subscription group: instances with the same one split vehicles"),
    CFG_STRING("mqtt.client_id", server_conf, mqtt_client_id, NULL,
               "MQTT client id (default generated, unique per process)"),
    CFG_STRING("engine.instance", server_conf, instance, NULL,
               "this instance's name in work claims (default HOST-PID)"),
    CFG_DURATION("engine.tick", server_conf, tick_ms, "1s", 10, CFG_MINUTE,
                 "how often the campaign engine looks for work"),
    CFG_DURATION("engine.lease", server_conf, lease_ms, "30s", CFG_SECOND, CFG_HOUR,
                 "how long a claim on a vehicle's campaign work lasts"),
    CFG_INT("engine.batch", server_conf, batch, "100", 1, 500,
            "vehicles one instance claims per tick for each kind of work"),
    CFG_STRING("uptane.keys", server_conf, uptane_keys, NULL,
               "PKI directory with uptane/{image,director} role keys (default tls.pki)"),
    CFG_DURATION("uptane.snapshot_lifetime", server_conf, snapshot_ms, "168h", 2 * CFG_SECOND,
                 365 * 24 * CFG_HOUR,
                 "image snapshot lifetime; re-signed (with targets) at half of it"),
    CFG_ENUM("uptane.policy", server_conf, uptane_policy_i, "hybrid", policies,
             "Uptane signing policy the role keys were made for"),
    CFG_INT("telemetry.history", server_conf, tele_history, "100", 1, 10000,
            "telemetry samples kept per vehicle (the oldest go)"),
    CFG_DURATION("telemetry.min_interval", server_conf, tele_interval_ms, "1s", 0, CFG_HOUR,
                 "a vehicle's telemetry samples closer than this are dropped (0: none)"),
    CFG_DURATION("telemetry.fresh", server_conf, tele_fresh_ms, "15m", CFG_SECOND,
                 7 * 24 * CFG_HOUR, "/metrics counts vehicles whose telemetry is this recent"),
    CFG_INT("telemetry.low_battery_pct", server_conf, tele_low_battery, "20", 1, 100,
            "/metrics: a battery charge below this is low"),
    CFG_DURATION("metrics.cache", server_conf, metrics_cache_ms, "10s", 0, CFG_HOUR,
                 "/metrics reads the fleet gauges from the store at most this often (0: at "
                 "every scrape)"),
    CFG_BOOL("metrics.require_key", server_conf, metrics_require_key, "false",
             "/metrics needs a viewer API key or console session (default: public)"),
    CFG_DURATION("compat.poll_interval", server_conf, poll_interval_ms, "60s", CFG_SECOND, CFG_HOUR,
                 "vehicles polling /api/v1/ota/check are told to check this often, and are "
                 "online until 3 of these have passed since their last check"),
    CFG_END,
};

static const cfg_schema server_schema = {"pqota server", "PQOTA_", server_fields,
                                         sizeof(server_conf)};

static void usage(FILE *f)
{
	fputs("usage: pqota server [--config FILE] [--set KEY=VALUE]... [--check]\n"
	      "       pqota server --print-config | --example-config\n"
	      "       pqota server apikey create --role admin|operator|viewer --name NAME\n"
	      "       pqota server apikey list | revoke ID\n"
	      "       pqota server routes [--json]\n"
	      "       pqota server backup DIR | restore DIR [--force]   (backup --help)\n"
	      "\n"
	      "Runs the OEM server: HTTPS (TLS 1.3, PQC profile) with the REST API, downloads\n"
	      "and metrics. Settings come from defaults < --config FILE < PQOTA_* environment\n"
	      "< --set; unknown keys are errors; --example-config prints every key with its\n"
	      "help. --check performs the start-up self-check (keys, store, data directory,\n"
	      "port) and exits. SIGTERM or SIGINT drain requests in progress, then stop.\n"
	      "apikey commands use the same configuration to reach the store; a new key's\n"
	      "secret is printed once and only its SHA-256 is stored.\n",
	      f);
}

struct loaded {
	server_conf sc;
	cfg_ctx *cfg;
	char cert[1024], key[1024], ca[1024], url[1024];
	char mqtt_host[256], mqtt_ca[1024], mqtt_cert[1024], mqtt_key[1024];
	srv_options o;
};

/* out = explicit when set, else PKI/rel when a PKI is set, else "": never a cut path. */
static int pick_path(char *out, size_t cap, const char *explicit_path, const char *pki,
                     const char *rel, const char *key)
{
	int rc = PQ_OK;
	out[0] = '\0';
	if (explicit_path[0])
		rc = pq_path_resolve(out, cap, "", explicit_path);
	else if (pki[0])
		rc = pq_path_join(out, cap, pki, rel);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "%s", key);
}

/* The configuration from defaults, --config, the environment and each --set. */
static int load_layers(struct loaded *L, const char *config, char *const *sets, int nsets)
{
	int rc = cfg_new(&server_schema, &L->sc, &L->cfg);
	if (rc == PQ_OK && config)
		rc = cfg_load_file(L->cfg, config);
	if (rc == PQ_OK)
		rc = cfg_load_env(L->cfg, environ);
	for (int i = 0; rc == PQ_OK && i < nsets; i++)
		rc = cfg_set(L->cfg, sets[i]);
	return rc;
}

/* The server's TLS identity and the store's location. */
static int tls_and_store(struct loaded *L)
{
	const server_conf *c = &L->sc;
	int rc;
	if ((rc = pick_path(L->cert, sizeof(L->cert), c->cert, c->pki, "server/server.crt",
	                    "tls.cert")) != PQ_OK ||
	    (rc = pick_path(L->key, sizeof(L->key), c->key, c->pki, "server/server.key",
	                    "tls.key")) != PQ_OK ||
	    (rc = pick_path(L->ca, sizeof(L->ca), c->ca, c->pki, "ca/ca.crt", "tls.ca")) != PQ_OK)
		return rc;
	if (c->backend == STORE_SQLITE && !c->store_url[0]) {
		rc = pq_path_join(L->url, sizeof(L->url), c->data_dir, "pqota.db");
		return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "data_dir");
	}
	if (strlen(c->store_url) >= sizeof(L->url)) /* never quoted: it may hold a password */
		return pq_err_set(PQ_ERR_RANGE, "store.url is longer than %zu bytes",
		                  sizeof(L->url) - 1);
	memcpy(L->url, c->store_url, strlen(c->store_url) + 1);
	return PQ_OK;
}

/* The MQTT bridge's broker and client identity, when mqtt.broker is set. */
static int mqtt_options(struct loaded *L)
{
	const server_conf *c = &L->sc;
	srv_options *o = &L->o;
	char port[16];
	long p;
	int rc;
	if (!c->mqtt_broker[0])
		return PQ_OK;
	if (cli_split_hostport(c->mqtt_broker, "127.0.0.1", L->mqtt_host, sizeof(L->mqtt_host),
	                       port, sizeof(port)) != 0 ||
	    cli_parse_long(port, 1, 65535, &p) != 0)
		return pq_err_set(PQ_ERR_INVAL,
		                  "mqtt.broker '%s': expected HOST:PORT with a port in 1..65535",
		                  c->mqtt_broker);
	o->mqtt_host = L->mqtt_host;
	o->mqtt_port = (int)p;
	if ((rc = pick_path(L->mqtt_ca, sizeof(L->mqtt_ca), c->mqtt_ca, c->pki, "ca/ca.crt",
	                    "mqtt.ca")) != PQ_OK ||
	    (rc = pick_path(L->mqtt_cert, sizeof(L->mqtt_cert), c->mqtt_cert, c->pki,
	                    "server-client/client.crt", "mqtt.cert")) != PQ_OK ||
	    (rc = pick_path(L->mqtt_key, sizeof(L->mqtt_key), c->mqtt_key, c->pki,
	                    "server-client/client.key", "mqtt.key")) != PQ_OK)
		return rc;
	if (!L->mqtt_ca[0] || !L->mqtt_cert[0] || !L->mqtt_key[0])
		return pq_err_set(PQ_ERR_INVAL, "mqtt.broker is set: the MQTT client "
		                                "identity needs tls.pki or mqtt.ca, "
		                                "mqtt.cert and mqtt.key");
	o->mqtt_ca = L->mqtt_ca;
	o->mqtt_cert = L->mqtt_cert;
	o->mqtt_key = L->mqtt_key;
	return PQ_OK;
}

/* The limits, rate limits, downloads and engine settings, copied as they are. */
static void plain_options(const server_conf *c, srv_options *o)
{
	o->listen = c->listen;
	o->reuse_port = c->reuse_port;
	o->proxy_listen = c->proxy_listen[0] ? c->proxy_listen : NULL;
	o->proxy_secret_file = c->proxy_secret_file[0] ? c->proxy_secret_file : NULL;
	o->workers = (int)c->workers;
	o->extra_groups = c->extra_groups[0] ? c->extra_groups : NULL;
	o->require_client_cert = c->require_client_cert;
	o->store.backend = (store_backend)c->backend;
	o->data_dir = c->data_dir;
	o->max_header_bytes = (size_t)c->max_header;
	o->max_body_bytes = (size_t)c->max_body;
	o->timeout_ms = (int)c->timeout_ms;
	o->drain_ms = (int)c->drain_ms;
	o->rate_global = (double)c->rate_global;
	o->burst_global = (double)c->burst_global;
	o->rate_client = (double)c->rate_client;
	o->burst_client = (double)c->burst_client;
	o->token_ttl_ms = c->token_ttl_ms;
	o->token_secret_file = c->token_secret_file[0] ? c->token_secret_file : NULL;
	o->downloads_encrypt = c->downloads_encrypt;
	o->port_file = c->port_file[0] ? c->port_file : NULL;
	o->public_url = c->public_url[0] ? c->public_url : NULL;
	o->instance_id = c->instance[0] ? c->instance : NULL;
	o->engine_tick_ms = (int)c->tick_ms;
	o->engine_lease_ms = c->lease_ms;
	o->engine_batch = (int)c->batch;
	o->mqtt_shared_group = c->mqtt_shared_group[0] ? c->mqtt_shared_group : NULL;
	o->mqtt_client_id = c->mqtt_client_id[0] ? c->mqtt_client_id : NULL;
	o->uptane_dir = c->uptane_keys[0] ? c->uptane_keys : c->pki[0] ? c->pki : NULL;
	o->uptane_policy = policies[c->uptane_policy_i];
	o->uptane_snapshot_ms = c->snapshot_ms;
	o->console_off = !c->console_on;
	o->console_dir = c->console_dir[0] ? c->console_dir : NULL;
	o->session_ttl_ms = c->session_ttl_ms;
	o->telemetry_history = (int)c->tele_history;
	o->telemetry_min_interval_ms = c->tele_interval_ms;
	o->telemetry_fresh_ms = c->tele_fresh_ms;
	o->telemetry_low_battery_pct = (int)c->tele_low_battery;
	o->access_log = c->log_access;
	o->metrics_cache_ms = c->metrics_cache_ms;
	o->metrics_require_key = c->metrics_require_key;
	o->poll_interval_ms = c->poll_interval_ms;
}

/* Parses --config/--set from argv (getopt already positioned), builds srv_options. */
static int load_conf(struct loaded *L, const char *config, char *const *sets, int nsets)
{
	server_conf *c = &L->sc;
	srv_options *o = &L->o;
	int rc = load_layers(L, config, sets, nsets);
	if (rc != PQ_OK)
		return rc;
	memset(o, 0, sizeof(*o));
	if ((rc = pq_profile_find(c->profile, &o->profile)) != PQ_OK)
		return pq_err_wrap(rc, "tls.profile");
	if ((rc = tls_and_store(L)) != PQ_OK)
		return rc;
	plain_options(c, o);
	o->cert_file = L->cert[0] ? L->cert : NULL;
	o->key_file = L->key[0] ? L->key : NULL;
	o->ca_file = L->ca[0] ? L->ca : NULL;
	o->store.url = L->url;
	if (o->public_url &&
	    (strlen(o->public_url) > 400 || (strncmp(o->public_url, "https://", 8) != 0 &&
	                                     strncmp(o->public_url, "http://", 7) != 0)))
		return pq_err_set(PQ_ERR_INVAL,
		                  "public_url must be an http(s):// URL of at most 400 characters");
	if ((rc = mqtt_options(L)) != PQ_OK)
		return rc;
	if (!o->cert_file || !o->key_file)
		return pq_err_set(PQ_ERR_INVAL,
		                  "no server certificate: set tls.pki or tls.cert and "
		                  "tls.key");
	return PQ_OK;
}

static srv *running;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		srv_reload(running);
	else
		srv_stop(running);
}

/* The log as the configuration says: level, format, destination (reopened). */
static int apply_log(const server_conf *c)
{
	const char *file = c->log_file[0] ? c->log_file : NULL;
	int rc = pq_logfile_open(file, (pq_log_format)c->log_format);
	if (rc == PQ_OK)
		pq_log_set_level((pq_log_level)c->log_level);
	return rc;
}

/* What serving needs to reload: how the configuration was given, and the configuration
 * the last reload read (the server copies what it keeps, so the one before is freed). */
typedef struct reloader {
	const char *config;
	char *const *sets;
	int nsets;
	struct loaded *last;
} reloader;

static void loaded_free(struct loaded *L)
{
	if (L)
		cfg_free(L->cfg);
	free(L);
}

/* srv_options.reload: the configuration read again, handed to the server, which applies it
 * all or nothing (the log included). */
static int reload_conf(void *user, srv_reload_opts *out)
{
	reloader *r = user;
	struct loaded *N = calloc(1, sizeof(*N));
	int rc =
	    N ? load_conf(N, r->config, r->sets, r->nsets) : pq_err_set(PQ_ERR_NOMEM, "reload");
	if (rc != PQ_OK) {
		loaded_free(N);
		return pq_err_wrap(rc, "configuration");
	}
	loaded_free(r->last);
	r->last = N;
	const server_conf *c = &N->sc;
	*out = (srv_reload_opts){.cert_file = N->o.cert_file,
	                         .key_file = N->o.key_file,
	                         .ca_file = N->o.ca_file,
	                         .rate_global = N->o.rate_global,
	                         .burst_global = N->o.burst_global,
	                         .rate_client = N->o.rate_client,
	                         .burst_client = N->o.burst_client,
	                         .access_log = N->o.access_log,
	                         .log_file = c->log_file[0] ? c->log_file : NULL,
	                         .log_format = c->log_format,
	                         .log_level = c->log_level};
	return PQ_OK;
}

static void reloader_free(reloader *r)
{
	loaded_free(r->last);
	r->last = NULL;
}

static int list_cb(const store_apikey *k, void *u)
{
	(void)u;
	bool expired = k->expires_ms != 0 && k->expires_ms <= (int64_t)time(NULL) * 1000;
	printf("%s  %-8s %-24s %s\n", k->id, store_role_name(k->role), k->name,
	       k->revoked_ms ? "revoked"
	       : expired     ? "expired"
	                     : "active");
	return PQ_OK;
}

/* pos[0] is "create", "list" or "revoke"; pos[1] the id for revoke. */
static int apikey_cmd(struct loaded *L, char **pos, int npos, const char *role, const char *name)
{
	store *db = NULL;
	int rc;
	if (npos < 1)
		return cli_usage_error("server", "apikey create|list|revoke");
	const char *sub = pos[0];
	rc = pq_mkdirs(L->o.data_dir, PQ_PRIVATE_DIR_MODE);
	if (rc == PQ_OK)
		rc = store_open(&L->o.store, &db);
	if (rc != PQ_OK)
		return cli_error(rc, "store");
	int ret = CLI_EXIT_OK;
	if (strcmp(sub, "create") == 0 && npos == 1) {
		store_apikey k = {0};
		store_role r;
		char secret[SRV_APIKEY_SECRET_LEN + 1];
		if (!role || !name || store_role_parse(role, &r) != PQ_OK || !*name ||
		    strlen(name) > STORE_NAME_MAX) {
			ret =
			    cli_usage_error("server", "apikey create --role admin|operator|viewer "
			                              "--name NAME (1..64 characters)");
			goto out;
		}
		rc = srv_apikey_mint(r, name, (int64_t)time(NULL) * 1000, 0, &k, secret);
		if (rc == PQ_OK)
			rc = store_apikey_insert(db, &k);
		if (rc == PQ_OK)
			rc = store_audit_append(db, "cli", "apikey.create", k.id, NULL,
			                        k.created_ms);
		if (rc != PQ_OK) {
			ret = cli_error(rc, "apikey create");
			goto out;
		}
		printf("%s\n", secret);
		fprintf(stderr,
		        "API key '%s' (id %s, role %s) created; the secret above is shown only "
		        "once.\n",
		        name, k.id, store_role_name(k.role));
	} else if (strcmp(sub, "list") == 0 && npos == 1) {
		rc = store_apikey_list(db, list_cb, NULL);
		if (rc != PQ_OK)
			ret = cli_error(rc, "apikey list");
	} else if (strcmp(sub, "revoke") == 0 && npos == 2) {
		int64_t now = (int64_t)time(NULL) * 1000;
		rc = store_apikey_revoke(db, pos[1], now);
		if (rc == PQ_OK)
			rc = store_audit_append(db, "cli", "apikey.revoke", pos[1], NULL, now);
		if (rc != PQ_OK)
			ret = cli_error(rc, "apikey revoke %s", pos[1]);
		else
			printf("revoked %s\n", pos[1]);
	} else {
		ret =
		    cli_usage_error("server", "apikey create --role R --name N | list | revoke ID");
	}
out:
	store_close(db);
	return ret;
}

static const char *method_list(int m, char *buf, size_t len)
{
	buf[0] = '\0';
	static const struct {
		int m;
		const char *n;
	} ms[] = {{EVHTTP_REQ_GET, "GET"},
	          {EVHTTP_REQ_HEAD, "HEAD"},
	          {EVHTTP_REQ_POST, "POST"},
	          {EVHTTP_REQ_PUT, "PUT"},
	          {EVHTTP_REQ_DELETE, "DELETE"}};
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
		if (m & ms[i].m)
			snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "," : "",
			         ms[i].n);
	return buf;
}

static const char *auth_name(srv_auth a)
{
	static const char *const n[] = {"public", "viewer", "operator", "admin", "vehicle", "any"};
	return (unsigned)a < 6 ? n[a] : "?";
}

static int routes_cmd(bool json)
{
	char m[64];
	if (json)
		printf("[\n");
	bool first = true;
	for (size_t t = 0; srv_route_tables[t]; t++)
		for (const srv_route *r = srv_route_tables[t]; r->pattern; r++) {
			method_list(r->methods, m, sizeof(m));
			if (json) {
				printf(
				    "%s  {\"methods\": \"%s\", \"path\": \"%s\", \"auth\": \"%s\"}",
				    first ? "" : ",\n", m, r->pattern, auth_name(r->auth));
				first = false;
			} else {
				printf("%-12s %-48s %-9s %s\n", m, r->pattern, auth_name(r->auth),
				       r->summary);
			}
		}
	if (json)
		printf("\n]\n");
	return CLI_EXIT_OK;
}

/* What the command line asks of pqota server. */
typedef struct {
	const char *config, *role, *name;
	char *sets[64];
	int nsets;
	bool check, print, example, json, force, help;
	char **pos; /* the subcommand and its arguments */
	int npos;
} server_args;

static bool is_backup_cmd(const char *sub)
{
	return strcmp(sub, "backup") == 0 || strcmp(sub, "restore") == 0;
}

/* `server backup|restore`: what the configuration says is where. */
static int backup_cmd(struct loaded *L, const server_args *a)
{
	const server_conf *c = &L->sc;
	bk_opts o = {.store = L->o.store, .data_dir = c->data_dir};
	o.pki_dir = c->pki[0] ? c->pki : NULL;
	if (c->uptane_keys[0] && strcmp(c->uptane_keys, c->pki) != 0)
		o.uptane_dir = c->uptane_keys;
	const struct {
		const char *key, *path;
	} files[] = {{"tls.cert", c->cert},
	             {"tls.key", c->key},
	             {"tls.ca", c->ca},
	             {"mqtt.ca", c->mqtt_ca},
	             {"mqtt.cert", c->mqtt_cert},
	             {"mqtt.key", c->mqtt_key},
	             {"downloads.token_key_file", c->token_secret_file}};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i].path[0])
			o.keys[o.nkeys++] = (bk_key_file){files[i].key, files[i].path};
	return cmd_server_backup(a->pos[0], &o, a->pos + 1, a->npos - 1, a->force);
}

/* Parses the options: -1 to go on, or the exit status. */
static int parse_server_args(int argc, char **argv, server_args *a)
{
	static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
	                                   {"set", required_argument, NULL, 's'},
	                                   {"check", no_argument, NULL, 'k'},
	                                   {"print-config", no_argument, NULL, 'p'},
	                                   {"example-config", no_argument, NULL, 'e'},
	                                   {"json", no_argument, NULL, 'j'},
	                                   {"role", required_argument, NULL, 'r'},
	                                   {"name", required_argument, NULL, 'n'},
	                                   {"force", no_argument, NULL, 'f'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->config = optarg;
			break;
		case 's':
			if (a->nsets == 64)
				return cli_usage_error("server", "at most 64 --set");
			a->sets[a->nsets++] = optarg;
			break;
		case 'k':
			a->check = true;
			break;
		case 'p':
			a->print = true;
			break;
		case 'e':
			a->example = true;
			break;
		case 'j':
			a->json = true;
			break;
		case 'r':
			a->role = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'f':
			a->force = true;
			break;
		case 'h':
			a->help = true;
			break;
		default:
			return cli_usage_error("server", "bad option");
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->help) {
		if (a->npos > 0 && is_backup_cmd(a->pos[0]))
			cmd_server_backup_usage(stdout);
		else
			usage(stdout);
		return CLI_EXIT_OK;
	}
	if (a->force && !(a->npos > 0 && is_backup_cmd(a->pos[0])))
		return cli_usage_error("server", "--force is for restore only");
	return -1;
}

/* Prints a malloc'd text (the example or the effective configuration) unless rc failed. */
static int print_text(int rc, char *text, const char *what)
{
	if (rc != PQ_OK)
		return cli_error(rc, "%s", what);
	fputs(text, stdout);
	free(text);
	return CLI_EXIT_OK;
}

/* The start-up self-check, then (without --check) serving until SIGTERM or SIGINT;
 * SIGHUP reloads (r). */
static int serve(struct loaded *L, bool check, reloader *r)
{
	/* a client that closes its connection mid-response must not kill the server (the
	 * library leaves signal dispositions to the program) */
	signal(SIGPIPE, SIG_IGN);
	srv *s = NULL;
	int rc = apply_log(&L->sc);
	if (rc != PQ_OK)
		return cli_error(rc, "log");
	L->o.reload = reload_conf;
	L->o.reload_user = r;
	rc = srv_new(&L->o, &s);
	if (rc != PQ_OK)
		return cli_error(rc, "server start-up check");
	if (check) {
		printf("ok: TLS profile %d (%s), store %s reachable and migrated, data directory "
		       "%s, port %d free\n",
		       L->o.profile->id, L->o.profile->tls_group,
		       L->o.store.backend == STORE_SQLITE ? "sqlite" : "postgres", L->o.data_dir,
		       srv_port(s));
		srv_free(s);
		return CLI_EXIT_OK;
	}
	running = s;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	rc = srv_run(s);
	running = NULL;
	srv_free(s);
	pq_logfile_close();
	return rc == PQ_OK ? CLI_EXIT_OK : cli_error(rc, "server");
}

/* What needs the loaded configuration: --print-config, apikey, serving. */
static int with_config(struct loaded *L, const server_args *a)
{
	const char *sub = a->npos > 0 ? a->pos[0] : NULL;
	int rc = load_conf(L, a->config, a->sets, a->nsets);
	if (rc != PQ_OK)
		return cli_error(rc, "configuration");
	if (a->print) {
		char *text = NULL;
		rc = cfg_dump(L->cfg, CFG_DUMP_ORIGINS, &text);
		return print_text(rc, text, "print config");
	}
	if (sub && strcmp(sub, "apikey") == 0)
		return apikey_cmd(L, a->pos + 1, a->npos - 1, a->role, a->name);
	if (sub && is_backup_cmd(sub))
		return backup_cmd(L, a);
	if (sub)
		return cli_usage_error("server", "unknown server command '%s'", sub);
	reloader r = {.config = a->config, .sets = a->sets, .nsets = a->nsets};
	rc = serve(L, a->check, &r);
	reloader_free(&r);
	return rc;
}

int cmd_server(int argc, char **argv)
{
	/* everything the server and its commands create (store, packages, keys, backups) is
	 * owner-only, whatever the caller's umask; modes written in the code are kept too */
	umask(077);
	server_args a = {0};
	int st = parse_server_args(argc, argv, &a);
	if (st >= 0)
		return st;
	const char *sub = a.npos > 0 ? a.pos[0] : NULL;
	if (sub && strcmp(sub, "routes") == 0)
		return a.npos == 1 ? routes_cmd(a.json)
		                   : cli_usage_error("server", "routes takes no arguments");
	if (a.example) {
		char *text = NULL;
		int rc = cfg_write_example(&server_schema, &text);
		return print_text(rc, text, "example config");
	}
	struct loaded *L = calloc(1, sizeof(*L));
	if (!L)
		return cli_error(PQ_ERR_NOMEM, "server");
	st = with_config(L, &a);
	cfg_free(L->cfg);
	free(L);
	return st;
}
