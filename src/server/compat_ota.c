/* compat_ota.c: the REST update check of the compatibility layer (docs/api.md 17.4), for
 * vehicles that poll over HTTPS with their client certificate instead of holding an MQTT
 * session. Nothing here decides anything the MQTT path does not:
 *  - GET /api/v1/ota/check: the vehicle's current deployment (the newest campaign's, once
 *    the engine offered it) with its targets; after acceptance also the body that
 *    ota_campaign_metadata carries (usrv_campaign_metadata: the signed director targets,
 *    repository URLs, download URLs with tokens, wrapped content keys), so the vehicle
 *    verifies the Uptane metadata itself exactly as over MQTT;
 *  - GET /api/v1/ota/package[/{id}]: that deployment's packages, each named by what its URL
 *    serves (the encrypted copy with downloads.encrypt, as the metadata's URL), and one of
 *    them with Range; a bogus id or another vehicle's package is not found and makes
 *    nothing;
 *  - POST /api/v1/ota/status: a report, in the MQTT message's own form (type, campaign_id,
 *    its fields) or as a short status word, applied by the campaign engine's handler of
 *    vehicle messages (cmp_on_message) after the same idempotency record (message id). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include <openssl/crypto.h>

#include "core/text.h"
#include "crypto/hash.h"
#include "server/campaign.h"
#include "server/compat.h"
#include "server/control.h"
#include "server/msg.h"
#include "server/routes.h"
#include "server/server.h"
#include "server/uptane_srv.h"
#include "store/fleet.h"

#define POLL_INTERVAL_MS 60000 /* between checks, without compat.poll_interval */
#define OTA_TARGETS                                                                                \
	64               /* targets of one deployment answered (an update of more ECUs: the        \
	                  * rest come once these are installed) */
#define OTA_DEPS_SCAN 50 /* the vehicle's newest deployments looked at */

/* ---- the vehicle's current deployment --------------------------------------------------- */

typedef struct {
	bool found;
	store_vehicle_dep d;
	store_dep_state state;
} current_dep;

/* Offered to the vehicle and not finished: what an MQTT vehicle has been told about. */
static bool offered(store_dep_state st)
{
	return st != STORE_DEP_PENDING && !store_dep_state_terminal(st) &&
	       st != STORE_DEP_COMPLETED;
}

static int current_cb(const store_vehicle_dep *d, void *user)
{
	current_dep *cur = user;
	store_dep_state st;
	if (cur->found || store_dep_state_parse(d->state, &st) != PQ_OK || !offered(st))
		return PQ_OK;
	cur->found = true;
	cur->d = *d;
	cur->state = st;
	return PQ_OK;
}

/* The newest offered deployment of the calling vehicle (cur->found false: none). */
static int current_deployment(srv_ctx *c, current_dep *cur)
{
	store_page pg = {.limit = OTA_DEPS_SCAN};
	int64_t total = 0;
	memset(cur, 0, sizeof(*cur));
	return store_vehicle_deployments(c->db, c->vin, &pg, current_cb, cur, &total);
}

typedef struct {
	store_target t[OTA_TARGETS];
	size_t n;
} target_set;

static int target_cb(const store_target *t, void *user)
{
	target_set *s = user;
	if (s->n < OTA_TARGETS)
		s->t[s->n++] = *t;
	return PQ_OK;
}

/* ---- what a target's URL serves -------------------------------------------------------- */

/* Whether the vehicle's packages are served encrypted: with downloads.encrypt to a vehicle
 * registered with its KEM keys, as usrv_campaign_metadata decides (a vehicle without them
 * gets "encryption": null and the package itself there too). */
static int vehicle_encrypts(srv_ctx *c, bool *encrypt)
{
	store_vehicle v = {0};
	*encrypt = false;
	if (!srv_get_options(c->s)->downloads_encrypt)
		return PQ_OK;
	int rc = store_vehicle_get(c->db, c->vin, &v);
	*encrypt = rc == PQ_OK && v.kem_x25519_pub && v.kem_mlkem_pub;
	store_vehicle_clear(&v);
	return rc;
}

/* A target as the check and the package list answer it: sha256 and size are what its
 * download_url serves (the encrypted copy k, or with k NULL the package), package_sha256
 * and package_size the SWPG package the Uptane targets name (what the vehicle checks after
 * decrypting), and encryption as in ota_campaign_metadata (docs/protocol.md) without the
 * wrapped key, which only the metadata carries. */
static json_t *target_json(const store_target *t, const store_package_key *k)
{
	char url[256];
	const char *serve = k ? k->enc_sha256 : t->file_sha256;
	json_int_t size = k ? (json_int_t)k->enc_size : (json_int_t)t->file_size;
	json_t *enc = k ? json_pack("{s:s,s:s,s:I}", "scheme", USRV_ENC_SCHEME, "sha256",
	                            k->enc_sha256, "length", (json_int_t)k->enc_size)
	                : json_null();
	snprintf(url, sizeof(url), "/api/v1/ota/package/%s", serve);
	return json_pack(
	    "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:o,s:s}", "ecu_id", t->ecu_id,
	    "hardware_id", t->hardware_id, "software_type", t->software_type, "from_version",
	    t->from_version, "to_version", t->to_version, "release_id", t->release_id, "package",
	    t->package, "sha256", serve, "size", size, "package_sha256", t->file_sha256,
	    "package_size", (json_int_t)t->file_size, "encryption", enc, "download_url", url);
}

/* The targets' JSON into *out; with encryption each package's encrypted copy, made now if
 * no vehicle needed it yet (as the metadata would). */
static int targets_json(srv_ctx *c, const target_set *s, json_t **out)
{
	bool encrypt = false;
	int rc = vehicle_encrypts(c, &encrypt);
	json_t *a = rc == PQ_OK ? json_array() : NULL;
	if (rc == PQ_OK && !a)
		rc = pq_err_set(PQ_ERR_NOMEM, "targets");
	for (size_t i = 0; rc == PQ_OK && i < s->n; i++) {
		store_package_key k;
		memset(&k, 0, sizeof(k));
		if (encrypt)
			rc = srv_package_key(c->s, c->db, s->t[i].file_sha256, true, c->now_ms, &k);
		if (rc == PQ_OK &&
		    json_array_append_new(a, target_json(&s->t[i], encrypt ? &k : NULL)))
			rc = pq_err_set(PQ_ERR_NOMEM, "targets");
		OPENSSL_cleanse(&k, sizeof(k));
	}
	if (rc != PQ_OK) {
		json_decref(a);
		return rc;
	}
	*out = a;
	return PQ_OK;
}

/* ---- GET /api/v1/ota/check ------------------------------------------------------------------ */

/* From acceptance until the installation ends the vehicle needs the metadata body. */
static bool needs_metadata(store_dep_state st)
{
	return st == STORE_DEP_ACCEPTED || st == STORE_DEP_DOWNLOADING ||
	       st == STORE_DEP_DOWNLOADED || st == STORE_DEP_INSTALLING;
}

/* What a polling vehicle is told to wait between checks (compat.poll_interval). */
static int64_t poll_interval_ms(srv_ctx *c)
{
	int64_t v = srv_get_options(c->s)->poll_interval_ms;
	return v > 0 ? v : POLL_INTERVAL_MS;
}

static json_t *no_update(srv_ctx *c)
{
	return json_pack("{s:s,s:b,s:n,s:[],s:I}", "vin", c->vin, "update_available", 0, "campaign",
	                 "targets", "poll_after_s", (json_int_t)(poll_interval_ms(c) / 1000));
}

/* Without a broker a polling vehicle's messages are delivered in the answers of its checks:
 * publishing them succeeds without sending anything. */
static int answer_delivers(void *user, const char *topic, const char *json, size_t len, int qos,
                           bool retain)
{
	(void)user, (void)topic, (void)json, (void)len, (void)qos, (void)retain;
	return PQ_OK;
}

/* The engine's environment for a polling vehicle: a worker's (messages go to its MQTT topic
 * too), or without a broker one whose messages are the check's answers. */
static void poll_env(srv_ctx *c, cmp_env *env)
{
	ctl_worker_env(c->s, env);
	if (!srv_get_options(c->s)->mqtt_host)
		env->publish = answer_delivers;
}

/* A check is the polling vehicle's wake-up: it is present now (last seen, online until
 * SRV_POLL_PRESENCE poll intervals have passed without a check, unless an MQTT session holds
 * its presence), and the engine does for it what it does when an MQTT vehicle wakes up
 * (cmp_on_wakeup): offers the deployments of active phases (ota_campaign, also published to
 * its MQTT topic) and resends what it may have missed. Failing that only delays the offer to
 * the next check. */
static int poll_wakeup(srv_ctx *c)
{
	cmp_env env;
	int rc = store_vehicle_set_polled(c->db, c->vin, c->now_ms,
	                                  c->now_ms + SRV_POLL_PRESENCE * poll_interval_ms(c));
	if (rc != PQ_OK)
		return rc;
	poll_env(c, &env);
	if (cmp_on_wakeup(c->db, &env, c->vin, c->now_ms) != PQ_OK)
		pq_err_clear();
	return PQ_OK;
}

/* The campaign's prerequisites while the engine waits for the vehicle's readiness (an
 * accepted deployment of a campaign with prerequisites, readiness not yet answered ready: the
 * engine asks again at next_ms), else NULL. The metadata comes only after `ready`, as over
 * MQTT (campaign_msg.c). */
static json_t *readiness_pending(srv_ctx *c, const current_dep *cur)
{
	store_deployment d;
	store_campaign cp;
	json_t *pre = NULL;
	if (cur->state != STORE_DEP_ACCEPTED ||
	    store_deployment_get(c->db, cur->d.campaign_id, c->vin, &d) != PQ_OK ||
	    d.next_ms == 0 || store_campaign_get(c->db, cur->d.campaign_id, &cp) != PQ_OK) {
		pq_err_clear();
		return NULL;
	}
	json_t *policy = json_loads(cp.policy ? cp.policy : "{}", 0, NULL);
	json_t *p = json_object_get(policy, "prerequisites");
	if (json_is_object(p) && json_object_size(p) > 0)
		pre = json_deep_copy(p);
	json_decref(policy);
	store_campaign_clear(&cp);
	return pre;
}

void compat_ota_check(srv_ctx *c)
{
	current_dep cur;
	json_t *meta = NULL;
	if (!srv_query_only(c, NULL))
		return;
	int rc = poll_wakeup(c);
	if (rc == PQ_OK)
		rc = current_deployment(c, &cur);
	if (rc == PQ_OK && !cur.found) {
		srv_json(c, 200, no_update(c));
		return;
	}
	target_set *ts = calloc(1, sizeof(*ts));
	if (rc == PQ_OK && !ts)
		rc = pq_err_set(PQ_ERR_NOMEM, "targets");
	if (rc == PQ_OK)
		rc = store_target_list(c->db, cur.d.campaign_id, c->vin, target_cb, ts);
	json_t *ready = rc == PQ_OK ? readiness_pending(c, &cur) : NULL, *targets = NULL;
	if (rc == PQ_OK)
		rc = targets_json(c, ts, &targets);
	if (rc == PQ_OK && needs_metadata(cur.state) && !ready)
		rc = usrv_campaign_metadata(c->s, c->db, cur.d.campaign_id, c->vin, c->now_ms,
		                            &meta);
	free(ts);
	if (rc != PQ_OK) {
		json_decref(ready);
		json_decref(targets);
		if (rc == PQ_ERR_UNSUPPORTED) /* no Uptane keys: nothing a vehicle could verify */
			srv_error(c, 503, "no_uptane", "%s", pq_err_detail());
		else
			srv_fail(c, rc, "update check");
		return;
	}
	srv_json(c, 200,
	         json_pack("{s:s,s:b,s:{s:s,s:s,s:s,s:i},s:o,s:o,s:o,s:I}", "vin", c->vin,
	                   "update_available", 1, "campaign", "id", cur.d.campaign_id, "name",
	                   cur.d.campaign_name, "state", cur.d.state, "phase", cur.d.phase,
	                   "targets", targets, "metadata", meta ? meta : json_null(),
	                   "readiness_required", ready ? ready : json_null(), "poll_after_s",
	                   (json_int_t)(poll_interval_ms(c) / 1000)));
}

/* ---- GET /api/v1/ota/package[/{id}] -----------------------------------------------------------
 */

/* The current deployment's targets into *ts (n 0: no update); false when the error was sent. */
static bool current_targets(srv_ctx *c, current_dep *cur, target_set *ts)
{
	int rc = current_deployment(c, cur);
	if (rc == PQ_OK && cur->found)
		rc = store_target_list(c->db, cur->d.campaign_id, c->vin, target_cb, ts);
	if (rc != PQ_OK)
		srv_fail(c, rc, "assigned packages");
	return rc == PQ_OK;
}

void compat_ota_packages(srv_ctx *c)
{
	current_dep cur;
	json_t *items = NULL;
	if (!srv_query_only(c, NULL))
		return;
	target_set *ts = calloc(1, sizeof(*ts));
	if (!ts) {
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	if (!current_targets(c, &cur, ts))
		goto out;
	int rc = targets_json(c, ts, &items);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "assigned packages");
		goto out;
	}
	srv_json(c, 200,
	         json_pack("{s:s,s:o,s:o}", "vin", c->vin, "campaign_id",
	                   cur.found ? json_string(cur.d.campaign_id) : json_null(), "items",
	                   items));
out:
	free(ts);
}

/* Whether id names target t's package or the file its URL serves (*match), and that file's
 * name into serve. The id is checked before anything is made: only a package of the caller's
 * own update that id names is encrypted now (a bogus id or another vehicle's package is
 * compared with the copies that exist, and makes none). */
static int target_serves(srv_ctx *c, const store_target *t, bool encrypt, const char *id,
                         char serve[65], bool *match)
{
	store_package_key k;
	bool plain = strcmp(id, t->file_sha256) == 0;
	*match = false;
	if (!encrypt) {
		*match = plain;
		snprintf(serve, 65, "%s", t->file_sha256);
		return PQ_OK;
	}
	memset(&k, 0, sizeof(k));
	int rc = srv_package_key(c->s, c->db, t->file_sha256, plain, c->now_ms, &k);
	if (rc == PQ_ERR_NOTFOUND) { /* no copy yet, and id is not the package: not t's */
		pq_err_clear();
		return PQ_OK;
	}
	if (rc == PQ_OK && (plain || strcmp(id, k.enc_sha256) == 0)) {
		*match = true;
		snprintf(serve, 65, "%s", k.enc_sha256);
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* The file of the current update that id names into serve (*match false: none). */
static int assigned_file(srv_ctx *c, const target_set *ts, const char *id, char serve[65],
                         bool *match)
{
	bool encrypt = false;
	int rc = vehicle_encrypts(c, &encrypt);
	*match = false;
	for (size_t i = 0; rc == PQ_OK && !*match && i < ts->n; i++)
		rc = target_serves(c, &ts->t[i], encrypt, id, serve, match);
	return rc;
}

/* Served here rather than by /packages/{sha256}: the file is the one the check lists for
 * this vehicle (the package itself to a vehicle without KEM keys, as the metadata's URL). */
void compat_ota_package(srv_ctx *c)
{
	current_dep cur;
	char serve[65] = "";
	bool match = false;
	uint64_t size = 0;
	const char *id = c->params[0];
	if (!srv_query_only(c, NULL))
		return;
	target_set *ts = calloc(1, sizeof(*ts));
	if (!ts) {
		srv_error(c, 500, "internal", "out of memory");
		return;
	}
	if (!current_targets(c, &cur, ts))
		goto out;
	int rc = assigned_file(c, ts, id, serve, &match);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "assigned package");
		goto out;
	}
	int fd = match ? route_open_package(c, serve, &size) : -1;
	if (fd < 0) {
		srv_error(c, 404, "not_found", "no package '%.64s' in the update assigned to %s",
		          id, c->vin);
		goto out;
	}
	route_send_package(c, serve, fd, size); /* Range, ETag, If-Range */
out:
	free(ts);
}

/* ---- POST /api/v1/ota/status ------------------------------------------------------------------
 */

/* The short status words of the descriptions and the MQTT message each one stands for. */
typedef struct {
	const char *word, *type, *decision; /* decision: of an ota_campaign_response */
	int ready;                          /* of an ota_readiness_response: 1/0, else -1 */
} status_word;

static const status_word words[] = {
    {"accepted", "ota_campaign_response", "accepted", -1},
    {"declined", "ota_campaign_response", "declined", -1},
    {"postponed", "ota_campaign_response", "postponed", -1},
    {"ready", "ota_readiness_response", NULL, 1},
    {"not_ready", "ota_readiness_response", NULL, 0},
    {"downloading", "ota_download_progress", NULL, -1},
    {"downloaded", "ota_download_complete", NULL, -1},
    {"download_failed", "ota_download_failed", NULL, -1},
    {"installing", "ota_installation_start", NULL, -1},
    {"installed", "ota_installation_complete", NULL, -1},
    {"verified", "ota_verification_complete", NULL, -1},
    {"failed", "ota_error", NULL, -1},
    {"rolled_back", "ota_rollback", NULL, -1},
};

/* The MQTT message types a report may name itself (docs/protocol.md). */
static const char *const types[] = {
    "ota_campaign_response",
    "ota_readiness_response",
    "ota_download_progress",
    "ota_download_complete",
    "ota_download_failed",
    "ota_error",
    "ota_installation_start",
    "ota_installation_progress",
    "ota_installation_complete",
    "ota_verification_complete",
    "ota_rollback",
    "vci_report",
};

/* The report's message type (a `type`, or a `status` word whose fields are set on b);
 * NULL (400 sent) when it names none. */
static const char *report_type(srv_ctx *c, json_t *b)
{
	const char *type = json_string_value(json_object_get(b, "type"));
	const char *word = json_string_value(json_object_get(b, "status"));
	if (!type == !word) {
		srv_error(c, 400, "bad_request", "a report names either type or status");
		return NULL;
	}
	for (size_t i = 0; type && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return types[i];
	for (size_t i = 0; word && i < sizeof(words) / sizeof(words[0]); i++) {
		const status_word *w = &words[i];
		if (strcmp(word, w->word) != 0)
			continue;
		int bad =
		    w->decision ? json_object_set_new(b, "decision", json_string(w->decision)) : 0;
		if (w->ready >= 0)
			bad |= json_object_set_new(b, "ready", json_boolean(w->ready));
		if (bad) {
			srv_error(c, 500, "internal", "out of memory");
			return NULL;
		}
		return w->type;
	}
	srv_error(c, 400, "bad_request", "unknown report %s '%.47s' (docs/api.md 17.4)",
	          type ? "type" : "status", type ? type : word);
	return NULL;
}

/* The report's message id: its own ([A-Za-z0-9_.:-]{1,79}, as over MQTT; *given), else
 * "rest:" + SHA-256 of the report, which names it to the engine but is not recorded: the same
 * report may rightly come twice (postponed again, a download still going on). */
static bool report_id(srv_ctx *c, json_t *b, char id[96], bool *given)
{
	const char *mid = json_string_value(json_object_get(b, "message_id"));
	*given = mid != NULL;
	if (mid) {
		size_t n = strlen(mid);
		bool ok = n >= 1 && n <= 79 &&
		          strspn(mid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                      "0123456789_.:-") == n;
		if (!ok)
			srv_error(c, 400, "bad_request",
			          "message_id must be 1..79 of [A-Za-z0-9_.:-]");
		else
			snprintf(id, 96, "%s", mid);
		return ok;
	}
	uint8_t d[32];
	char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = text ? pq_hash(PQ_HASH_SHA256, text, strlen(text), d)
	              : pq_err_set(PQ_ERR_NOMEM, "report");
	free(text);
	if (rc != PQ_OK) {
		srv_fail(c, rc, "report id");
		return false;
	}
	char hex[33];
	pq_hex_encode(d, 16, hex);
	snprintf(id, 96, "rest:%s", hex);
	return true;
}

/* A vci_report also stores the report as the vehicle's VCI, as over MQTT. */
static int store_vci(srv_ctx *c, json_t *b)
{
	if (!json_is_array(json_object_get(b, "ecus")))
		return pq_err_set(PQ_ERR_INVAL, "vci_report: no ecus array");
	char *text = json_dumps(b, JSON_COMPACT);
	int rc = text ? store_vehicle_set_vci(c->db, c->vin, text, c->now_ms)
	              : pq_err_set(PQ_ERR_NOMEM, "VCI");
	free(text);
	if (rc == PQ_OK)
		srv_event(c->s, "vci",
		          json_pack("{s:s,s:I}", "vin", c->vin, "at_ms", (json_int_t)c->now_ms));
	return rc;
}

/* The deployment's state after the report, into the answer. */
static void answer(srv_ctx *c, const char *cid, const char *id, bool dup)
{
	store_deployment d;
	json_t *st = json_null();
	if (cid && store_deployment_get(c->db, cid, c->vin, &d) == PQ_OK)
		st = json_string(store_dep_state_name(d.state));
	pq_err_clear();
	srv_json(c, 200,
	         json_pack("{s:s,s:o,s:o,s:s,s:b}", "vin", c->vin, "campaign_id",
	                   cid ? json_string(cid) : json_null(), "state", st, "message_id", id,
	                   "duplicate", dup));
}

void compat_ota_status(srv_ctx *c)
{
	char id[96];
	bool dup = false, given = false;
	cmp_env env;
	if (!srv_query_only(c, NULL))
		return;
	/* the bounds of the same message over MQTT (msg.h): a VCI report, any other */
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(c->req));
	if (len > MSG_VCI_MAX_BYTES) {
		srv_error(c, 413, "too_large", "a report is at most %u bytes", MSG_VCI_MAX_BYTES);
		return;
	}
	json_t *b = srv_body_json(c);
	if (!b)
		return;
	const char *type = report_type(c, b);
	if (type && strcmp(type, "vci_report") != 0 && len > MSG_MAX_BYTES) {
		srv_error(c, 413, "too_large", "a report other than vci_report is at most %u bytes",
		          MSG_MAX_BYTES);
		goto out;
	}
	const char *cid = json_string_value(json_object_get(b, "campaign_id"));
	bool vci = type && strcmp(type, "vci_report") == 0;
	if (!type || !report_id(c, b, id, &given))
		goto out;
	if (vci && !json_is_array(json_object_get(b, "ecus"))) { /* before it is recorded */
		srv_error(c, 400, "bad_request", "a vci_report has an ecus array");
		goto out;
	}
	if (!vci && (!cid || !cid[0] || strlen(cid) > STORE_ID_MAX)) {
		srv_error(c, 400, "bad_request", "campaign_id (1..%d characters) is required",
		          STORE_ID_MAX);
		goto out;
	}
	store_deployment d;
	int rc = vci ? PQ_OK : store_deployment_get(c->db, cid, c->vin, &d);
	if (rc == PQ_ERR_NOTFOUND) {
		srv_error(c, 404, "not_found", "campaign '%.40s' has no deployment for %s", cid,
		          c->vin);
		goto out;
	}
	if (rc == PQ_OK && given)
		rc = store_msg_seen(c->db, c->vin, id, c->now_ms, &dup);
	if (rc == PQ_OK && !dup && vci)
		rc = store_vci(c, b);
	if (rc == PQ_OK && !dup) {
		poll_env(c, &env);
		rc = cmp_on_message(c->db, &env, c->vin, type, id, b, c->now_ms);
		/* continuous campaigns admit a vehicle when it reports (its next check offers) */
		if (rc == PQ_OK && vci && cmp_admit(c->db, &env, c->vin, c->now_ms, NULL) != PQ_OK)
			pq_err_clear();
	}
	if (rc != PQ_OK) {
		srv_fail(c, rc, type);
		/* not applied: its retry must be (a recorded id would answer "duplicate") */
		if (given && !dup && store_msg_forget(c->db, c->vin, id) != PQ_OK)
			pq_err_clear();
		goto out;
	}
	answer(c, vci ? NULL : cid, id, dup);
out:
	json_decref(b);
}
