/* campaign_msg.c: the per-vehicle deployment state machine driven by vehicle messages
 * (cmp_on_message): ota_campaign_response, ota_readiness_response, the ota_* status
 * messages and vci_report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "server/campaign.h"
#include "server/campaign_int.h"

typedef struct {
	const char *type;
	store_dep_state to;
} status_map;

static const status_map statuses[] = {
    {"ota_download_progress", STORE_DEP_DOWNLOADING},
    {"ota_download_complete", STORE_DEP_DOWNLOADED},
    {"ota_download_failed", STORE_DEP_FAILED},
    {"ota_error", STORE_DEP_FAILED},
    {"ota_installation_start", STORE_DEP_INSTALLING},
    {"ota_installation_progress", STORE_DEP_INSTALLING},
    {"ota_installation_complete", STORE_DEP_INSTALLED},
    {"ota_verification_complete", STORE_DEP_INSTALLED},
    {"ota_rollback", STORE_DEP_ROLLED_BACK},
};

/* Position on the main chain (postponed counts as notified); -1 for other states. */
static int chain_rank(store_dep_state st)
{
	if (st <= STORE_DEP_COMPLETED)
		return (int)st;
	return st == STORE_DEP_POSTPONED ? (int)STORE_DEP_NOTIFIED : -1;
}

static const char *msg_campaign(const json_t *root)
{
	json_t *v = json_object_get(root, "campaign_id");
	return json_is_string(v) && json_string_length(v) > 0 &&
	               json_string_length(v) <= STORE_ID_MAX
	           ? json_string_value(v)
	           : NULL;
}

static void cause_of(char *buf, size_t cap, const char *type, const char *message_id,
                     const char *extra)
{
	snprintf(buf, cap, "%s %.80s%s%.120s", type, message_id ? message_id : "",
	         extra && *extra ? ": " : "", extra ? extra : "");
	pq_utf8_trim(buf);
}

/* ---- applying a message ------------------------------------------------------------------- */

/* Decides the target state from the current one, or -1 to leave it (then only last_msg_ms
 * is updated). */
typedef int (*decide_fn)(store_dep_state cur, const void *arg);

/* A vehicle message as apply_message records it. */
typedef struct {
	const char *type;       /* msg_type */
	const char *message_id; /* may be NULL */
	const char *extra;      /* for the cause, may be NULL */
	const char *error_code; /* recorded on a move, may be NULL */
	decide_fn decide;
	const void *arg; /* decide's */
} vehicle_msg;

/* The cause of a move from -> to: "<type> <message id>: <extra>", with the number of
 * states skipped on the main chain. */
static void move_cause(char *cause, size_t cap, store_dep_state from, store_dep_state to,
                       const vehicle_msg *m)
{
	char skip[64] = "";
	int rf = chain_rank(from), rt = chain_rank(to);
	if (rf >= 0 && rt > rf + 1 && to != STORE_DEP_POSTPONED)
		snprintf(skip, sizeof(skip), " (skipped %d state%s)", rt - rf - 1,
		         rt - rf - 1 > 1 ? "s" : "");
	char ex[160];
	snprintf(ex, sizeof(ex) - sizeof(skip), "%s", m->extra ? m->extra : "");
	pq_utf8_trim(ex);
	size_t n = strlen(ex);
	snprintf(ex + n, sizeof(ex) - n, "%s", skip);
	cause_of(cause, cap, m->type, m->message_id, ex);
}

/* Moves (cid, vin) from its current state as m->decide says, retrying the compare-and-set
 * a few times when the state changes under it. *final receives the deployment as left,
 * *moved whether this call changed its state. */
static int apply_message(store *db, const cmp_env *env, const char *cid, const char *vin,
                         const vehicle_msg *m, int64_t now_ms, store_dep_update *u,
                         store_deployment *final, bool *moved)
{
	*moved = false;
	u->set_last_msg = true;
	u->last_msg_ms = now_ms;
	for (int attempt = 0; attempt < 5; attempt++) {
		store_deployment d;
		int rc = store_deployment_get(db, cid, vin, &d);
		if (rc != PQ_OK)
			return rc;
		*final = d;
		if (store_dep_state_terminal(d.state))
			return PQ_OK; /* terminal absorbs */
		int to = m->decide(d.state, m->arg);
		bool changed = false;
		if (to < 0 || to == (int)d.state) {
			rc = store_deployment_update(db, cid, vin, d.state, now_ms, u, &changed);
		} else {
			char cause[STORE_REASON_MAX + 1];
			move_cause(cause, sizeof(cause), d.state, (store_dep_state)to, m);
			u->error_code = m->error_code;
			rc = cmp__transition(db, env, cid, vin, d.state, (store_dep_state)to, cause,
			                     now_ms, u, &changed);
			if (changed) {
				final->state = (store_dep_state)to;
				*moved = true;
			}
		}
		if (rc != PQ_OK || changed)
			return rc;
	}
	return pq_err_set(PQ_ERR_TIMEOUT, "deployment %s/%s kept changing", cid, vin);
}

static int decide_status(store_dep_state cur, const void *arg)
{
	store_dep_state to = *(const store_dep_state *)arg;
	if (to == STORE_DEP_FAILED || to == STORE_DEP_ROLLED_BACK)
		return (int)to; /* from any non-terminal state */
	int rc = chain_rank(cur), rt = chain_rank(to);
	return rc >= 0 && rt > rc ? (int)to : -1; /* forward only */
}

static int decide_response(store_dep_state cur, const void *arg)
{
	const char *dec = arg;
	if (cur != STORE_DEP_NOTIFIED && cur != STORE_DEP_POSTPONED)
		return -1;
	if (strcmp(dec, "accepted") == 0)
		return STORE_DEP_ACCEPTED;
	if (strcmp(dec, "declined") == 0)
		return STORE_DEP_DECLINED;
	if (strcmp(dec, "postponed") == 0 && cur == STORE_DEP_NOTIFIED)
		return STORE_DEP_POSTPONED;
	return -1;
}

static int decide_stay(store_dep_state cur, const void *arg)
{
	(void)cur;
	(void)arg;
	return -1;
}

/* ---- the messages ------------------------------------------------------------------------ */

/* When a postponing vehicle is offered the campaign again: its retry_after_s (1 s..30 days)
 * or the policy's postpone_retry_s. */
static int64_t postpone_until(const json_t *root, const cmp_cache *k, int64_t now_ms)
{
	json_t *ra = json_object_get(root, "retry_after_s");
	int64_t after = k->rules.postpone_retry_ms;
	if (json_is_integer(ra) && json_integer_value(ra) > 0 &&
	    json_integer_value(ra) <= 30LL * 86400)
		after = (int64_t)json_integer_value(ra) * 1000;
	return now_ms + after;
}

static int on_response(store *db, const cmp_env *env, const char *vin, const char *cid,
                       const char *message_id, const json_t *root, int64_t now_ms)
{
	json_t *dv = json_object_get(root, "decision");
	const char *dec = json_is_string(dv) ? json_string_value(dv) : "";
	if (strcmp(dec, "accepted") != 0 && strcmp(dec, "declined") != 0 &&
	    strcmp(dec, "postponed") != 0)
		return pq_err_set(PQ_ERR_INVAL, "ota_campaign_response: decision '%.16s'", dec);
	cmp_cache k = {0};
	int rc = cmp__cache_get(db, &k, cid);
	if (rc != PQ_OK)
		return rc;
	store_dep_update u = {0};
	if (strcmp(dec, "postponed") == 0) {
		u.set_next = true;
		u.next_ms = postpone_until(root, &k, now_ms);
	}
	json_t *rv = json_object_get(root, "reason");
	char reason[128] = "";
	if (json_is_string(rv))
		snprintf(reason, sizeof(reason), "%s", json_string_value(rv));
	pq_utf8_trim(reason);
	char extra[160];
	snprintf(extra, sizeof(extra), "%s%s%s", dec, reason[0] ? " - " : "", reason);
	vehicle_msg m = {.type = "ota_campaign_response",
	                 .message_id = message_id,
	                 .extra = extra,
	                 .error_code = strcmp(dec, "declined") == 0 ? "declined" : NULL,
	                 .decide = decide_response,
	                 .arg = dec};
	store_deployment d;
	bool moved = false;
	rc = apply_message(db, env, cid, vin, &m, now_ms, &u, &d, &moved);
	if (rc == PQ_OK && moved && d.state == STORE_DEP_ACCEPTED) {
		/* just accepted: readiness or metadata next */
		store_dep_update s = {0};
		(void)cmp__accepted_step(db, env, &k, vin, now_ms, NULL, &s);
		rc = store_deployment_update(db, cid, vin, STORE_DEP_ACCEPTED, now_ms, &s, NULL);
	}
	cmp__cache_clear(&k);
	return rc;
}

static int on_readiness(store *db, const cmp_env *env, const char *vin, const char *cid,
                        const char *message_id, const json_t *root, int64_t now_ms)
{
	bool ready = json_is_true(json_object_get(root, "ready"));
	cmp_cache k = {0};
	int rc = cmp__cache_get(db, &k, cid);
	if (rc != PQ_OK)
		return rc;
	vehicle_msg m = {
	    .type = "ota_readiness_response", .message_id = message_id, .decide = decide_stay};
	store_deployment d;
	store_dep_update u = {0};
	bool moved = false;
	rc = apply_message(db, env, cid, vin, &m, now_ms, &u, &d, &moved);
	/* only while the engine waits for readiness (next_ms set): a late or repeated answer
	 * does not send the metadata twice */
	if (rc == PQ_OK && d.state == STORE_DEP_ACCEPTED && d.next_ms > 0) {
		store_dep_update s = {.set_next = true};
		if (!ready)
			s.next_ms = now_ms + k.rules.readiness_retry_ms;
		else if (cmp__send_metadata(db, env, &k, vin) == PQ_OK)
			s.next_ms = 0;
		else
			s.next_ms = now_ms + CMP_PUBLISH_RETRY_MS;
		rc = store_deployment_update(db, cid, vin, STORE_DEP_ACCEPTED, now_ms, &s, NULL);
	}
	cmp__cache_clear(&k);
	return rc;
}

/* ---- what the vehicle really downloaded ---------------------------------------------------- */

typedef struct {
	const json_t *images;   /* the message's images */
	store_target fell[256]; /* more delta targets than this in one deployment: the rest keep
	                         * their planned package */
	size_t n;
} fallback_scan;

/* The message's entry for a delta target t that says the vehicle used the full package
 * ("package": "full", or "fallback" from agents before protocol 1.x) is kept in x. */
static int scan_target(const store_target *t, void *user)
{
	fallback_scan *x = user;
	size_t i;
	json_t *e;
	if (strcmp(t->package, "delta") != 0 || x->n == sizeof(x->fell) / sizeof(x->fell[0]))
		return PQ_OK;
	json_array_foreach(x->images, i, e)
	{
		const char *ecu = json_string_value(json_object_get(e, "ecu_id"));
		const char *kind = json_string_value(json_object_get(e, "package"));
		if (ecu && kind && strcmp(ecu, t->ecu_id) == 0 &&
		    (strcmp(kind, "full") == 0 || strcmp(kind, "fallback") == 0 ||
		     json_is_true(json_object_get(e, "fallback"))))
			x->fell[x->n++] = *t;
	}
	return PQ_OK;
}

/* ota_download_complete: a target the vehicle fetched as the full package after its delta
 * could not be used now names the release's full package (package, sha256, size), so the
 * deployment says what was installed. The file comes from the release (the one the
 * vehicle was offered as fallback), never from the message. */
static int note_fallbacks(store *db, const char *cid, const char *vin, const json_t *root)
{
	fallback_scan *x = calloc(1, sizeof(*x));
	if (!x)
		return pq_err_set(PQ_ERR_NOMEM, "fallback scan");
	x->images = json_object_get(root, "images");
	int rc = json_is_array(x->images) ? store_target_list(db, cid, vin, scan_target, x) : PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < x->n; i++) {
		const store_target *t = &x->fell[i];
		store_release r = {0};
		if (store_release_get(db, t->release_id, &r) != PQ_OK)
			continue; /* the release went away: nothing to say */
		rc = store_target_set_package(db, cid, vin, t->ecu_id, "full", r.file_sha256,
		                              r.file_size, NULL);
		store_release_clear(&r);
	}
	free(x);
	return rc;
}

typedef struct {
	const char *ecu;
	bool found;
} ecu_find;

static int find_ecu(const store_target *t, void *user)
{
	ecu_find *f = user;
	f->found = f->found || strcmp(t->ecu_id, f->ecu) == 0;
	return PQ_OK;
}

/* A status message naming an ECU ("ecu_id") must name one of the deployment's targets:
 * PQ_ERR_INVAL otherwise (nothing is recorded). */
static int ecu_in_deployment(store *db, const char *cid, const char *vin, const json_t *root)
{
	json_t *ecu = json_object_get(root, "ecu_id");
	if (!ecu || json_is_null(ecu))
		return PQ_OK;
	if (!json_is_string(ecu) || json_string_length(ecu) == 0 || json_string_length(ecu) > 64)
		return pq_err_set(PQ_ERR_INVAL, "ecu_id: not an ECU id");
	ecu_find f = {.ecu = json_string_value(ecu)};
	int rc = store_target_list(db, cid, vin, find_ecu, &f);
	if (rc == PQ_OK && !f.found)
		rc = pq_err_set(PQ_ERR_INVAL, "ECU %s is not a target of campaign %s for %s", f.ecu,
		                cid, vin);
	return rc;
}

/* A status message (sm) for campaign cid. */
static int on_status(store *db, const cmp_env *env, const char *vin, const char *cid,
                     const status_map *sm, const char *message_id, const json_t *root,
                     int64_t now_ms)
{
	char extra[160] = "", code[STORE_NAME_MAX + 1] = "";
	int rc = ecu_in_deployment(db, cid, vin, root);
	if (rc != PQ_OK)
		return rc;
	if (sm->to == STORE_DEP_FAILED || sm->to == STORE_DEP_ROLLED_BACK) {
		json_t *ec = json_object_get(root, "error_code"),
		       *er = json_object_get(root, "error");
		if (json_is_string(ec) && json_string_length(ec) <= STORE_NAME_MAX)
			snprintf(code, sizeof(code), "%s", json_string_value(ec));
		else if (json_is_integer(ec))
			snprintf(code, sizeof(code), "%lld", (long long)json_integer_value(ec));
		else
			snprintf(code, sizeof(code), "%s", sm->type);
		if (json_is_string(er))
			snprintf(extra, sizeof(extra), "%s", json_string_value(er));
	}
	json_t *ecu = json_object_get(root, "ecu_id");
	if (!extra[0] && json_is_string(ecu))
		snprintf(extra, sizeof(extra), "%s", json_string_value(ecu));
	pq_utf8_trim(extra);
	store_dep_state to = sm->to;
	vehicle_msg m = {.type = sm->type,
	                 .message_id = message_id,
	                 .extra = extra,
	                 .error_code = code[0] ? code : NULL,
	                 .decide = decide_status,
	                 .arg = &to};
	store_dep_update u = {.set_next = true, .next_ms = 0};
	store_deployment d;
	bool moved = false;
	if (strcmp(sm->type, "ota_download_complete") == 0 &&
	    (rc = note_fallbacks(db, cid, vin, root)) != PQ_OK)
		return rc;
	return apply_message(db, env, cid, vin, &m, now_ms, &u, &d, &moved);
}

/* ---- vci_report -------------------------------------------------------------------------- */

typedef struct {
	const json_t *ecus;
	int match, mismatch, missing;
	char detail[192];
} vci_check;

static int vci_target(const store_target *t, void *user)
{
	vci_check *c = user;
	size_t i;
	json_t *e;
	json_array_foreach(c->ecus, i, e)
	{
		json_t *id = json_object_get(e, "ecu_id");
		if (!json_is_string(id) || strcmp(json_string_value(id), t->ecu_id) != 0)
			continue;
		json_t *ver = json_object_get(json_object_get(e, "software"), t->software_type);
		if (json_is_string(ver) && strcmp(json_string_value(ver), t->to_version) == 0) {
			c->match++;
		} else {
			if (!c->mismatch)
				snprintf(c->detail, sizeof(c->detail),
				         "%.64s %.7s is %.24s, not %.24s", t->ecu_id,
				         t->software_type,
				         json_is_string(ver) ? json_string_value(ver) : "(none)",
				         t->to_version);
			c->mismatch++;
		}
		return PQ_OK;
	}
	c->missing++;
	return PQ_OK;
}

/* From accepted on, a report with every target version means the update is installed:
 * with several server instances the status messages before it may be handled after it,
 * on another instance (shared subscription), so this does not wait for `installed`. A
 * mismatch only counts after `installed`. */
static bool vci_settles(store_dep_state st)
{
	return st == STORE_DEP_INSTALLED || st == STORE_DEP_ACCEPTED ||
	       st == STORE_DEP_DOWNLOADING || st == STORE_DEP_DOWNLOADED ||
	       st == STORE_DEP_INSTALLING;
}

/* Completes (every target version reported) or fails (a mismatch after `installed`) the
 * deployment d by the report's ecus. */
static int vci_settle(store *db, const cmp_env *env, const char *vin, const char *message_id,
                      const store_deployment *d, const json_t *ecus, int64_t now_ms)
{
	vci_check c = {.ecus = ecus};
	int rc = store_target_list(db, d->campaign_id, vin, vci_target, &c);
	if (rc != PQ_OK || (c.mismatch == 0 && c.missing > 0))
		return rc; /* not every target reported yet */
	if (c.mismatch > 0 && d->state != STORE_DEP_INSTALLED)
		return PQ_OK; /* the old versions, before the installation */
	char cause[STORE_REASON_MAX + 1];
	store_dep_update u = {.set_last_msg = true, .last_msg_ms = now_ms};
	bool ok = c.mismatch == 0;
	cause_of(cause, sizeof(cause), "vci_report", message_id,
	         ok ? "every target version installed" : c.detail);
	if (!ok)
		u.error_code = "version_mismatch";
	/* another instance may move the deployment at the same moment (installing ->
	 * installed): on a lost compare-and-set, read the state again and retry */
	store_dep_state from = d->state;
	for (int attempt = 0; attempt < 4; attempt++) {
		bool changed = false;
		rc = cmp__transition(db, env, d->campaign_id, vin, from,
		                     ok ? STORE_DEP_COMPLETED : STORE_DEP_FAILED, cause, now_ms, &u,
		                     &changed);
		if (rc != PQ_OK || changed)
			return rc;
		store_deployment cur;
		rc = store_deployment_get(db, d->campaign_id, vin, &cur);
		if (rc != PQ_OK || store_dep_state_terminal(cur.state) ||
		    (!ok && cur.state != STORE_DEP_INSTALLED) || !vci_settles(cur.state))
			return rc;
		from = cur.state;
	}
	return PQ_OK;
}

static int on_vci(store *db, const cmp_env *env, const char *vin, const char *message_id,
                  const json_t *root, int64_t now_ms)
{
	cmp_dep_vec v = {0};
	const json_t *ecus = json_object_get(root, "ecus");
	if (!json_is_array(ecus))
		return pq_err_set(PQ_ERR_INVAL, "vci_report: no ecus array");
	int rc = store_deployment_list_vin(db, vin, true, cmp__dep_vec_add, &v);
	for (size_t i = 0; rc == PQ_OK && i < v.n; i++)
		if (vci_settles(v.v[i].state))
			rc = vci_settle(db, env, vin, message_id, &v.v[i], ecus, now_ms);
	free(v.v);
	return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int cmp_on_message(store *db, const cmp_env *env, const char *vin, const char *msg_type,
                   const char *message_id, const json_t *root, int64_t now_ms)
{
	if (!db || !vin || !msg_type || !json_is_object(root))
		return pq_err_set(PQ_ERR_INVAL, "cmp_on_message: bad arguments");
	if (strcmp(msg_type, "vci_report") == 0)
		return on_vci(db, env, vin, message_id, root, now_ms);
	const status_map *sm = NULL;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strcmp(msg_type, statuses[i].type) == 0)
			sm = &statuses[i];
	bool response = strcmp(msg_type, "ota_campaign_response") == 0;
	bool readiness = strcmp(msg_type, "ota_readiness_response") == 0;
	if (!sm && !response && !readiness)
		return PQ_OK; /* not the engine's */
	const char *cid = msg_campaign(root);
	if (!cid)
		return pq_err_set(PQ_ERR_INVAL, "%s: no campaign_id", msg_type);
	if (response)
		return on_response(db, env, vin, cid, message_id, root, now_ms);
	if (readiness)
		return on_readiness(db, env, vin, cid, message_id, root, now_ms);
	return on_status(db, env, vin, cid, sm, message_id, root, now_ms);
}
