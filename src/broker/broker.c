/* broker.c: writes mosquitto.conf, its ACL, an OpenSSL config and a start script for a PKI. */
#include "broker/broker.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/time.h"
#include "crypto/cert.h"
#include "crypto/key.h"
#include "crypto/pki.h"

#define PKI_JSON_MAX    (64 * 1024)
#define BROKER_FILE_MAX (1024 * 1024) /* any generated file: a few KiB in practice */

/* Appends s in single quotes for sh: ' becomes '\''. */
static void sb_shquote(pq_buf *b, const char *s)
{
	pq_buf_char(b, '\'');
	for (const char *q = s; *q; q++) {
		if (*q == '\'')
			pq_buf_str(b, "'\\''");
		else
			pq_buf_char(b, *q);
	}
	pq_buf_char(b, '\'');
}

/* ---- checks ----------------------------------------------------------------------------- */

/* A path that goes into mosquitto.conf as the rest of a line: no control characters (a newline
 * would inject a directive) and no trailing blank (mosquitto strips it). */
static int path_check(const char *what, const char *p)
{
	size_t n = strlen(p);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return pq_err_set(PQ_ERR_INVAL, "%s '%s' contains a control character",
			                  what, p);
	}
	if (n == 0 || p[n - 1] == ' ')
		return pq_err_set(PQ_ERR_INVAL, "%s '%s' is empty or ends with a blank", what, p);
	return PQ_OK;
}

static int host_check(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 253 ||
	    strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	              "0123456789.:-") != n ||
	    h[0] == '-')
		return pq_err_set(PQ_ERR_INVAL,
		                  "listen address '%s': expected an IP address or a host name", h);
	return PQ_OK;
}

static int user_check(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > 32 ||
	    strspn(u, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n ||
	    u[0] == '-')
		return pq_err_set(PQ_ERR_INVAL, "user '%s': expected a system user name", u);
	return PQ_OK;
}

int pq_broker_server_cn_check(const char *cn)
{
	size_t n = cn ? strlen(cn) : 0;
	if (n == 0 || n > 64 ||
	    strspn(cn, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") != n)
		return pq_err_set(PQ_ERR_INVAL,
		                  "server CN '%s': expected 1..64 characters of [A-Za-z0-9_.@-]",
		                  cn ? cn : "");
	if (pq_vin_check(cn) == PQ_OK)
		return pq_err_set(
		    PQ_ERR_INVAL,
		    "server CN '%s' is also a valid VIN: a vehicle certificate with that "
		    "CN would get the server's access to oem/#; use a name starting "
		    "with 'pqota' (the default is %s)",
		    cn, PQ_SERVER_CLIENT_CN);
	pq_err_clear();
	return PQ_OK;
}

/* The loaded OpenSSL must know the group, or mosquitto would refuse to start (openssl.cnf
 * sets config_diagnostics) only when it is already deployed. */
static int group_check(const pq_profile *p)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return pq_err_ssl(PQ_ERR_TLS, "creating a TLS context");
	int ok = SSL_CTX_set1_groups_list(ctx, p->tls_group);
	SSL_CTX_free(ctx);
	if (ok != 1)
		return pq_err_ssl(PQ_ERR_UNSUPPORTED,
		                  "the loaded OpenSSL (%s) does not know TLS group %s (profile %d)",
		                  OpenSSL_version(OPENSSL_VERSION), p->tls_group, p->id);
	return PQ_OK;
}

static int need_file(const char *pki, const char *rel, char *out, size_t len)
{
	struct stat st;
	int rc = pq_path_join(out, len, pki, rel);
	if (rc != PQ_OK)
		return rc;
	if (stat(out, &st) != 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO,
		                  "%s: %s (is %s a PKI made by 'pqota keys init'?)", out,
		                  strerror(errno), pki);
	if (!S_ISREG(st.st_mode))
		return pq_err_set(PQ_ERR_INVAL, "%s is not a regular file", out);
	return PQ_OK;
}

/* The PKI's profile from pki.json; *out stays NULL when there is none or it is unreadable. */
static void pki_profile(const char *pki, const pq_profile **out)
{
	char p[PATH_MAX + 16];
	json_error_t jerr;
	*out = NULL;
	if (pq_path_join(p, sizeof(p), pki, "pki.json") != PQ_OK)
		return;
	json_t *root = json_load_file(p, 0, &jerr);
	json_t *id = json_object_get(json_object_get(root, "profile"), "id");
	if (json_is_integer(id))
		*out = pq_profile_by_id((int)json_integer_value(id));
	json_decref(root);
}

/* ca.crt and broker.crt parse, the broker certificate is issued by the CA and valid, and,
 * when its key is readable here, the key matches it. */
static int check_pki(const char *pki, pq_broker_result *res)
{
	char ca_path[PATH_MAX + 32], crt_path[PATH_MAX + 32], p[PATH_MAX + 32];
	pq_cert *ca = NULL, *crt = NULL, *sc = NULL;
	pq_key *key = NULL;
	struct stat st;
	int rc;

	if ((rc = need_file(pki, "ca/ca.crt", ca_path, sizeof(ca_path))) != PQ_OK ||
	    (rc = need_file(pki, "broker/broker.crt", crt_path, sizeof(crt_path))) != PQ_OK ||
	    (rc = need_file(pki, "broker/broker.key", res->broker_key, sizeof(res->broker_key))) !=
	        PQ_OK)
		return rc;
	if ((rc = pq_cert_load(ca_path, &ca)) != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", ca_path);
		goto out;
	}
	if ((rc = pq_cert_load(crt_path, &crt)) != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", crt_path);
		goto out;
	}
	if ((rc = pq_cert_verify_issued_by(crt, ca)) != PQ_OK) {
		rc = pq_err_wrap(PQ_ERR_VERIFY, "%s against %s", crt_path, ca_path);
		goto out;
	}
	if (stat(res->broker_key, &st) == 0) {
		res->broker_key_uid = st.st_uid;
		res->broker_key_mode = st.st_mode & 07777;
	}
	if (access(res->broker_key, R_OK) == 0) {
		if ((rc = pq_key_load(res->broker_key, &key)) != PQ_OK) {
			rc = pq_err_wrap(rc, "%s", res->broker_key);
			goto out;
		}
		if (X509_check_private_key(pq_cert_x509(crt), pq_key_evp(key)) != 1) {
			rc = pq_err_ssl(PQ_ERR_VERIFY, "%s does not match %s", res->broker_key,
			                crt_path);
			goto out;
		}
		res->broker_key_checked = true;
	}
	/* the server's MQTT identity, to compare with the CN the ACL names */
	if (pq_path_join(p, sizeof(p), pki, "server-client/client.crt") == PQ_OK &&
	    access(p, F_OK) == 0 && pq_cert_load(p, &sc) == PQ_OK &&
	    pq_cert_common_name(sc, res->server_cert_cn, sizeof(res->server_cert_cn)) != PQ_OK)
		res->server_cert_cn[0] = '\0';
	pq_err_clear();
	rc = PQ_OK;
out:
	pq_cert_free(ca);
	pq_cert_free(crt);
	pq_cert_free(sc);
	pq_key_free(key);
	return rc;
}

int pq_broker_openssl_libdir(char *buf, size_t len)
{
	static const char *const system_dirs[] = {"/lib",
	                                          "/usr/lib",
	                                          "/lib64",
	                                          "/usr/lib64",
	                                          "/lib/x86_64-linux-gnu",
	                                          "/usr/lib/x86_64-linux-gnu",
	                                          "/lib/aarch64-linux-gnu",
	                                          "/usr/lib/aarch64-linux-gnu",
	                                          NULL};
	Dl_info info;
	char real[PATH_MAX];
	if (!dladdr((void *)&OpenSSL_version_num, &info) || !info.dli_fname ||
	    !realpath(info.dli_fname, real))
		return pq_err_set(PQ_ERR_NOTFOUND, "cannot tell where libcrypto was loaded from");
	char *slash = strrchr(real, '/');
	if (!slash)
		return pq_err_set(PQ_ERR_NOTFOUND, "libcrypto path '%s' has no directory", real);
	*slash = '\0';
	for (size_t i = 0; system_dirs[i]; i++)
		if (strcmp(real, system_dirs[i]) == 0)
			real[0] = '\0';
	if (strlen(real) >= len)
		return pq_err_set(PQ_ERR_RANGE, "libcrypto directory '%s' too long", real);
	memcpy(buf, real, strlen(real) + 1);
	return PQ_OK;
}

/* ---- the files ------------------------------------------------------------------------- */

typedef struct {
	const pq_broker_opts *o;
	const pq_broker_result *r;
	const char *host;
	int port;
	char when[32];
} ctx_t;

static void header(pq_buf *b, const ctx_t *c, const char *name, const char *what)
{
	pq_buf_printf(
	    b,
	    "# %s: %s\n"
	    "# Written by 'pqota broker config' on %s for the PKI in\n"
	    "#   %s\n"
	    "# with the TLS group of profile %d (%s). Regenerate it (--force) rather than\n"
	    "# edit it; pqota's docs/broker.md explains it.\n",
	    name, what, c->when, c->r->pki_dir, c->r->profile->id, c->r->profile->name);
}

/* The limits (docs/broker.md "Limits"). Retained messages have no count limit in mosquitto
 * 2.0: the ACL bounds them (a vehicle writes only its protocol topics), max_packet_size
 * their size and memory_limit the whole. */
static void render_limits(pq_buf *b, const pq_broker_opts *o)
{
	pq_buf_printf(
	    b,
	    "# Limits, from the protocol's largest messages (a VCI report of at most 1 MiB,\n"
	    "# everything else at most 256 KiB): a larger packet is refused and its sender\n"
	    "# disconnected, so no client can store a bigger (retained) message.\n"
	    "max_packet_size %u\n"
	    "# Per client: unacknowledged QoS 1/2 messages in flight, and messages queued for a\n"
	    "# client that is slow or away (the server's own session takes a burst of 10,000\n"
	    "# vehicles' messages).\n"
	    "max_inflight_messages %d\nmax_inflight_bytes %u\n"
	    "max_queued_messages %d\nmax_queued_bytes %u\n"
	    "# The whole broker: an allocation beyond this fails (the client asking is refused)\n"
	    "# instead of the host running out of memory.\nmemory_limit %llu\n\n",
	    PQ_BROKER_PACKET_MAX, PQ_BROKER_INFLIGHT, PQ_BROKER_INFLIGHT_MAX, PQ_BROKER_QUEUED,
	    PQ_BROKER_QUEUED_MAX,
	    (unsigned long long)(o->memory_limit ? o->memory_limit : PQ_BROKER_MEMORY));
}

static void render_conf(pq_buf *b, const ctx_t *c)
{
	const pq_broker_opts *o = c->o;
	const pq_broker_result *r = c->r;
	header(b, c, PQ_BROKER_CONF, "Debian mosquitto 2.0 as a pqota deployment's broker.");
	pq_buf_printf(b, "# Start it with %s/%s: pqota's OpenSSL and the TLS group of %s.\n\n",
	              r->out_dir, PQ_BROKER_RUN, PQ_BROKER_SSL_CONF);
	if (o->user)
		pq_buf_printf(
		    b,
		    "# Started as root, mosquitto switches to this user before serving; it "
		    "must be able\n# to read the broker key.\nuser %s\n\n",
		    o->user);
	pq_buf_printf(
	    b,
	    "# Access: the MQTT username is the client certificate's CN (see the "
	    "listener),\n# a VIN for vehicles; the ACL confines each identity. No anonymous "
	    "clients.\nper_listener_settings false\nallow_anonymous false\nacl_file "
	    "%s/%s\n\n",
	    r->out_dir, PQ_BROKER_ACL);
	if (o->persistence)
		pq_buf_printf(b,
		              "# Sessions, queued and retained messages survive a restart (the "
		              "directory must be\n# writable by mosquitto's user).\npersistence "
		              "true\npersistence_location %s/%s/\n\n",
		              r->out_dir, PQ_BROKER_DATA);
	else
		pq_buf_printf(b,
		              "# Nothing is kept across restarts: the server republishes retained "
		              "state.\npersistence false\n\n");
	pq_buf_printf(
	    b, "# Small messages (acknowledgements, commands) leave at once, without Nagle's "
	       "delay.\nset_tcp_nodelay true\n\n");
	render_limits(b, o);
	pq_buf_printf(b, "# Logging: connections with their CN; errors and TLS failures.\n");
	if (o->log_dest == PQ_BROKER_LOG_FILE)
		pq_buf_printf(b, "log_dest file %s/%s\n", r->out_dir, PQ_BROKER_LOG);
	else
		pq_buf_printf(b, "log_dest stderr\n");
	pq_buf_printf(b, "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
	                 "connection_messages true\nlog_timestamp true\n"
	                 "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n\n");
	pq_buf_printf(
	    b,
	    "# The only listener: MQTT over TLS 1.3 with mutual TLS. A client must present a "
	    "certificate\n# issued by the deployment CA; its CN becomes the username.\n"
	    "listener %d %s\nprotocol mqtt\ntls_version tlsv1.3\n"
	    "cafile %s/ca/ca.crt\ncertfile %s/broker/broker.crt\nkeyfile %s\n"
	    "require_certificate true\nuse_identity_as_username true\n",
	    c->port, c->host, r->pki_dir, r->pki_dir, r->broker_key);
}

/* What a vehicle publishes on (docs/protocol.md, V->S). */
static const char *const vehicle_topics[] = {"wake_up",  "vci",           "response", "ota/status",
                                             "presence", "diag/response", "telemetry"};

int pq_broker_vehicle_topic_check(const char *t)
{
	size_t n = strlen(t);
	const char *hash = strchr(t, '#');
	if (n == 0 || n > PQ_BROKER_TOPIC_MAX ||
	    strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/#-") != n ||
	    t[0] == '/' || t[n - 1] == '/' || strstr(t, "//") ||
	    (hash && (hash != t + n - 1 || (n > 1 && hash[-1] != '/'))))
		return pq_err_set(PQ_ERR_INVAL,
		                  "vehicle topic '%s': expected levels of [A-Za-z0-9_-] separated "
		                  "by '/', '#' only as the last level, at most %d characters",
		                  t, PQ_BROKER_TOPIC_MAX);
	return PQ_OK;
}

static void render_acl(pq_buf *b, const ctx_t *c)
{
	const char *cn = c->r->server_cn;
	header(b, c, PQ_BROKER_ACL, "who may publish and subscribe where.");
	pq_buf_printf(
	    b, "# Usernames are client certificate CNs (use_identity_as_username). A vehicle's "
	       "is its VIN,\n# which pqota restricts to [A-Za-z0-9_-] (pq_vin_check), so %%u "
	       "below is always exactly\n# one topic level. Anything not granted here is "
	       "denied, $SYS included.\n\n");
	pq_buf_printf(b, "# A vehicle whose VIN is \"broadcast\" would own oem/broadcast/# through "
	                 "the pattern\n# below: deny it (deny lines are checked first).\nuser "
	                 "broadcast\ntopic deny oem/broadcast/#\n\n");
	pq_buf_printf(b,
	              "# The OEM server: every vehicle's topics and the fleet-wide broadcasts.\n"
	              "user %s\ntopic readwrite oem/#\n\n",
	              cn);
	pq_buf_printf(b, "# Every vehicle: its own subtree, read only...\npattern read oem/%%u/#\n"
	                 "# ...and the topics it publishes on (docs/protocol.md), write only: no "
	                 "other topic,\n# so what a vehicle can leave retained is bounded.\n");
	for (size_t i = 0; i < sizeof(vehicle_topics) / sizeof(vehicle_topics[0]); i++)
		pq_buf_printf(b, "pattern write oem/%%u/%s\n", vehicle_topics[i]);
	for (size_t i = 0; c->o->vehicle_topics && c->o->vehicle_topics[i]; i++)
		pq_buf_printf(b, "%spattern write oem/%%u/%s\n", i ? "" : "# (--vehicle-topic)\n",
		              c->o->vehicle_topics[i]);
	pq_buf_printf(b, "# ...and the fleet-wide announcements, read only (mosquitto warns that "
	                 "this pattern\n# has no %%u: it applies to every user on purpose).\n"
	                 "pattern read oem/broadcast/#\n");
}

static void render_ssl(pq_buf *b, const ctx_t *c)
{
	const pq_profile *p = c->r->profile;
	header(b, c, PQ_BROKER_SSL_CONF, "OpenSSL settings for the broker process.");
	pq_buf_printf(b,
	              "# mosquitto 2.0 has no option for TLS key-exchange groups, so OpenSSL's own "
	              "configuration\n# sets them for every TLS context of the process that reads "
	              "this file (OPENSSL_CONF,\n# set by %s). Profile %d (%s): %s.\n"
	              "# config_diagnostics makes a mistake here fatal (\"Unable to create TLS "
	              "context\") instead\n# of silently leaving OpenSSL's default groups, "
	              "classical ones included.\n"
	              "config_diagnostics = 1\nopenssl_conf = pqota_broker_init\n\n"
	              "[pqota_broker_init]\nssl_conf = pqota_broker_ssl\n\n"
	              "[pqota_broker_ssl]\nsystem_default = pqota_broker_tls\n\n"
	              "[pqota_broker_tls]\nMinProtocol = TLSv1.3\nGroups = %s\n",
	              PQ_BROKER_RUN, p->id, p->name,
	              p->hybrid_group ? "hybrid, classical ECDH + ML-KEM"
	              : p->pq_kex     ? "pure ML-KEM"
	                              : "classical only, NOT quantum-safe",
	              p->tls_group);
}

static void render_run(pq_buf *b, const ctx_t *c)
{
	const pq_broker_result *r = c->r;
	pq_buf_printf(b, "#!/bin/sh\n");
	header(b, c, PQ_BROKER_RUN, "runs mosquitto for this deployment.");
	pq_buf_printf(b,
	              "# mosquitto runs on pqota's OpenSSL (LD_LIBRARY_PATH; empty when it is the "
	              "system's) with\n# the profile's TLS group (OPENSSL_CONF). Arguments are "
	              "passed on (e.g. -v); $MOSQUITTO\n# overrides the program.\nset -eu\ndir=");
	sb_shquote(b, r->out_dir);
	pq_buf_printf(b, "\nlibdir=");
	sb_shquote(b, r->openssl_libdir);
	pq_buf_printf(b,
	              "\nif [ -n \"$libdir\" ]; then\n"
	              "\tif [ ! -e \"$libdir/libssl.so.3\" ]; then\n"
	              "\t\techo \"run-broker.sh: $libdir/libssl.so.3 is missing: run pqota's "
	              "scripts/bootstrap,\" >&2\n"
	              "\t\techo \"  then 'pqota broker config --force ...' again\" >&2\n"
	              "\t\texit 1\n\tfi\n"
	              "\tLD_LIBRARY_PATH=\"$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n"
	              "\texport LD_LIBRARY_PATH\nfi\n"
	              "OPENSSL_CONF=\"$dir/" PQ_BROKER_SSL_CONF "\"\nexport OPENSSL_CONF\n"
	              "exec \"${MOSQUITTO:-mosquitto}\" -c \"$dir/" PQ_BROKER_CONF "\" \"$@\"\n");
}

/* ---- the entry point ------------------------------------------------------------------ */

static int resolve_dir(const char *what, const char *in, char *out)
{
	if (!realpath(in, out))
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s %s: %s", what,
		                  in, strerror(errno));
	return path_check(what, out);
}

int pq_broker_config_write(const pq_broker_opts *opts, pq_broker_result *res)
{
	static const char *const names[PQ_BROKER_NFILES] = {PQ_BROKER_CONF, PQ_BROKER_ACL,
	                                                    PQ_BROKER_SSL_CONF, PQ_BROKER_RUN};
	static const mode_t modes[PQ_BROKER_NFILES] = {0644, 0644, 0644, 0755};
	void (*const render[PQ_BROKER_NFILES])(pq_buf *, const ctx_t *) = {render_conf, render_acl,
	                                                                   render_ssl, render_run};
	ctx_t c = {.o = opts, .r = res};
	int rc;

	memset(res, 0, sizeof(*res));
	if (!opts || !opts->pki_dir || !opts->out_dir)
		return pq_err_set(PQ_ERR_INVAL, "the PKI and output directories are required");
	c.host = opts->listen_host ? opts->listen_host : PQ_BROKER_DEFAULT_HOST;
	c.port = opts->port ? opts->port : PQ_BROKER_DEFAULT_PORT;
	if (c.port < 1 || c.port > 65535)
		return pq_err_set(PQ_ERR_INVAL, "port %d out of range 1..65535", c.port);
	if ((rc = host_check(c.host)) != PQ_OK)
		return rc;
	if (opts->user && (rc = user_check(opts->user)) != PQ_OK)
		return rc;
	for (size_t i = 0; opts->vehicle_topics && opts->vehicle_topics[i]; i++)
		if (i == PQ_BROKER_TOPICS_MAX)
			return pq_err_set(PQ_ERR_INVAL, "more than %d vehicle topics",
			                  PQ_BROKER_TOPICS_MAX);
		else if ((rc = pq_broker_vehicle_topic_check(opts->vehicle_topics[i])) != PQ_OK)
			return rc;
	const char *cn = opts->server_cn ? opts->server_cn : PQ_SERVER_CLIENT_CN;
	if ((rc = pq_broker_server_cn_check(cn)) != PQ_OK)
		return rc;
	snprintf(res->server_cn, sizeof(res->server_cn), "%s", cn);

	if ((rc = resolve_dir("PKI directory", opts->pki_dir, res->pki_dir)) != PQ_OK)
		return rc;
	if ((rc = check_pki(res->pki_dir, res)) != PQ_OK)
		return rc;
	pki_profile(res->pki_dir, &res->pki_profile);
	res->profile = opts->profile      ? opts->profile
	               : res->pki_profile ? res->pki_profile
	                                  : pq_profile_by_id(PQ_PROFILE_DEFAULT);
	if ((rc = group_check(res->profile)) != PQ_OK)
		return rc;
	if (opts->openssl_libdir) {
		if (strlen(opts->openssl_libdir) >= sizeof(res->openssl_libdir))
			return pq_err_set(PQ_ERR_RANGE, "OpenSSL library directory too long");
		snprintf(res->openssl_libdir, sizeof(res->openssl_libdir), "%s",
		         opts->openssl_libdir);
	} else if ((rc = pq_broker_openssl_libdir(res->openssl_libdir,
	                                          sizeof(res->openssl_libdir))) != PQ_OK)
		return rc;

	if ((rc = path_check("output directory", opts->out_dir)) != PQ_OK ||
	    (rc = pq_mkdirs(opts->out_dir, 0755)) != PQ_OK ||
	    (rc = resolve_dir("output directory", opts->out_dir, res->out_dir)) != PQ_OK)
		return rc;
	for (int i = 0; i < PQ_BROKER_NFILES; i++) {
		if ((rc = pq_path_join(res->files[i], sizeof(res->files[i]), res->out_dir,
		                       names[i])) != PQ_OK)
			return rc;
		if ((rc = pq_check_output_path(res->files[i])) != PQ_OK)
			return rc;
		if (!opts->force && access(res->files[i], F_OK) == 0)
			return pq_err_set(PQ_ERR_EXISTS, "%s exists (--force replaces it)",
			                  res->files[i]);
	}
	if (opts->persistence) {
		char d[PATH_MAX + 32];
		if ((rc = pq_path_join(d, sizeof(d), res->out_dir, PQ_BROKER_DATA)) != PQ_OK ||
		    (rc = pq_mkdirs(d, 0700)) != PQ_OK)
			return rc;
	}

	if ((rc = pq_iso_time(pq_real_ms() / 1000, c.when)) != PQ_OK)
		return rc;
	for (int i = 0; i < PQ_BROKER_NFILES; i++) {
		pq_buf b;
		pq_buf_init(&b, BROKER_FILE_MAX);
		render[i](&b, &c);
		rc = pq_buf_err(&b)
		         ? pq_buf_err(&b)
		         : pq_file_write_atomic(res->files[i], b.p, b.len, modes[i], opts->force);
		pq_buf_free(&b);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "writing %s", res->files[i]);
	}
	return PQ_OK;
}
