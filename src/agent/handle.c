/* handle.c: the messages the agent receives (docs/protocol.md), on the main thread: the
 * envelope check and de-duplication, then dispatch by topic and msg_type: commands
 * (request_vci, request_ota_readiness, cancel), campaigns (consent.c), metadata (which
 * starts the worker), diagnostics and release announcements; and what the agent says when
 * its MQTT session (re)connects. */
#include <string.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/semver.h"

/* ---- metadata -------------------------------------------------------------------------------- */

/* Why metadata for campaign cid is not worked on ("" when it is); *adopt: a campaign the
 * agent never saw offered, taken on with automatic consent. */
static void metadata_gate(ag_main *g, const char *cid, bool *adopt, char *why, size_t why_len)
{
	ag_agent *a = &g->a;
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	bool same = rcid && !strcmp(rcid, cid);
	bool accepted = same && phase && !strcmp(phase, AG_PH_ACCEPTED);
	*adopt = !same && a->o->consent == AG_CONSENT_AUTO &&
	         (!a->st.campaign || ag_phase_final(phase)) && a->wstate == AG_W_IDLE;
	why[0] = '\0';
	if (!accepted && !*adopt)
		snprintf(why, why_len, "%s",
		         same ? (ag_phase_worker(phase) ? "already working on it"
		                                        : "campaign not accepted or finished")
		              : "another campaign, or one that was never accepted");
	pthread_mutex_unlock(&a->lock);
}

/* Whether the metadata is well-formed and names only ECUs of this vehicle. */
static int metadata_check(ag_agent *a, const json_t *m)
{
	ag_meta meta;
	int rc = ag_meta_parse(m, a->o->vin, &meta);
	for (size_t i = 0; rc == PQ_OK && i < meta.n_images; i++)
		if (strcmp(meta.images[i].ecu_id, "VMG") != 0 &&
		    !vm_model_find(&a->model, meta.images[i].ecu_id))
			rc = pq_err_set(PQ_ERR_FORMAT, "this vehicle has no ECU %s",
			                meta.images[i].ecu_id);
	ag_meta_free(&meta);
	return rc;
}

/* The metadata goes into the record (a new record when adopted), phase verifying. On
 * failure an adopted record is not kept. */
static int metadata_record(ag_agent *a, const json_t *m, const char *cid, bool adopt)
{
	json_t *old = NULL;
	pthread_mutex_lock(&a->lock);
	if (adopt) {
		old = a->st.campaign;
		a->st.campaign = json_pack("{s:s,s:s}", "campaign_id", cid, "decision", "accepted");
	}
	int rc = ag_jset(a->st.campaign, "metadata", json_deep_copy(m));
	if (rc == PQ_OK)
		rc = ag_rec_set_phase(a, AG_PH_VERIFYING);
	if (rc == PQ_OK) {
		ag_save_locked(a);
		json_decref(old);
	} else if (adopt) {
		json_decref(a->st.campaign);
		a->st.campaign = old;
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static void on_metadata(ag_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	char why[96], detail[AG_ERR_MAX] = "";
	bool adopt = false;
	if (!cid) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "ota_campaign_metadata without campaign_id dropped");
		return;
	}
	ag_worker_reap(g);
	metadata_gate(g, cid, &adopt, why, sizeof(why));
	if (why[0]) {
		pq_log(PQ_LOG_INFO, AG_LOGC, "ota_campaign_metadata for %s ignored: %s", cid, why);
		return;
	}
	bool bad = metadata_check(a, m) != PQ_OK;
	if (bad)
		snprintf(detail, sizeof(detail), "%s", pq_err_detail());
	if (metadata_record(a, m, cid, adopt) != PQ_OK) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "ota_campaign_metadata for %s dropped: %s", cid,
		       pq_err_detail());
		return;
	}
	if (bad) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "bad_metadata", "%s", detail);
		ag_cleanup_files(a);
		ag_final_outcome(g, AG_OUT_FAILED);
		return;
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s: metadata received, verifying", cid);
	ag_write_status(a);
	if (ag_worker_start(a) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		ag_final_outcome(g, AG_OUT_FAILED);
	}
}

/* ---- commands ---------------------------------------------------------------------------- */

/* The prerequisites to check: the request's, else those of the campaign's offer. */
static int readiness_prereq(ag_agent *a, const json_t *m, const ag_env *env, ag_prereq *p)
{
	const json_t *pre = json_object_get(m, "prerequisites");
	if (pre || !env->campaign_id)
		return ag_prereq_parse(pre, p);
	pthread_mutex_lock(&a->lock);
	json_t *offer_pre = NULL;
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	if (rcid && !strcmp(rcid, env->campaign_id))
		offer_pre =
		    json_object_get(json_object_get(a->st.campaign, "offer"), "prerequisites");
	int rc = ag_prereq_parse(offer_pre, p);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static void on_readiness(ag_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	ag_prereq p;
	char reason[256];
	json_t *checks = NULL;
	if (readiness_prereq(a, m, env, &p) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "request_ota_readiness dropped: %s", pq_err_detail());
		return;
	}
	bool ready = ag_readiness(&a->vstate, &p, &checks, reason, sizeof(reason));
	json_t *r =
	    ag_msg_new(a->o->vin, "ota_readiness_response", env->message_id, env->campaign_id);
	if (r && ag_jmerge(r,
	                   json_pack("{s:b,s:o,s:s*}", "ready", ready, "checks", checks, "reason",
	                             ready ? NULL : reason),
	                   "ota_readiness_response") != PQ_OK) {
		json_decref(r);
		r = NULL;
	} else if (!r) {
		json_decref(checks);
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "readiness: %s%s%s", ready ? "ready" : "not ready",
	       ready ? "" : ": ", ready ? "" : reason);
	ag_publish(a, "response", r, 1);
}

/* What a cancel of campaign cid does (a->lock held): the command_ack's result; *final
 * when the campaign ends here (the worker ends it otherwise). */
static const char *cancel_locked(ag_main *g, const char *cid, bool *final)
{
	ag_agent *a = &g->a;
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	*final = false;
	if (!cid || !rcid || strcmp(rcid, cid) != 0)
		return "unknown_campaign";
	if (ag_phase_final(phase))
		return "already_final";
	if (!strcmp(phase, AG_PH_INSTALLING) || !strcmp(phase, AG_PH_CHECKING))
		return "too_late";
	if (ag_phase_worker(phase) && a->wstate == AG_W_RUNNING) {
		atomic_store(&a->cancel, true);
		return "cancelled";
	}
	if (ag_rec_set_phase(a, AG_PH_CANCELLED) != PQ_OK)
		return NULL;
	ag_save_locked(a);
	*final = true;
	return "cancelled";
}

static void on_cancel(ag_main *g, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	bool final = false;
	pthread_mutex_lock(&a->lock);
	const char *result = cancel_locked(g, cid, &final);
	pthread_mutex_unlock(&a->lock);
	if (!result) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "cancel of campaign %s not done: %s", cid,
		       pq_err_detail());
		return;
	}
	if (g->asking && cid && !strcmp(cid, g->ask_cid))
		g->asking = false; /* the driver is no longer asked */
	pq_log(PQ_LOG_INFO, AG_LOGC, "cancel of campaign %s: %s", cid ? cid : "?", result);
	json_t *r = ag_msg_new(a->o->vin, "command_ack", env->message_id, cid);
	if (r && ag_jset(r, "result", json_string(result)) != PQ_OK) {
		json_decref(r);
		r = NULL;
	}
	ag_publish(a, "response", r, 1);
	ag_write_status(a);
	if (final) {
		ag_cleanup_files(a);
		ag_final_outcome(g, AG_OUT_CANCELLED);
	}
}

/* Whether announced release r (an entry of release_announcement) is newer than what the
 * vehicle's ECU of its hardware id runs (an unknown installed version counts as older). */
static bool release_newer(ag_main *g, const json_t *r)
{
	const char *hw = ag_jstr(r, "hardware_id", VM_HW_MAX);
	const char *ver = ag_jstr(r, "version", VM_VER_MAX);
	bool newer = false;
	for (size_t k = 0; hw && ver && !newer && k < g->a.model.n_ecus; k++) {
		if (strcmp(g->a.model.ecus[k].hardware_id, hw) != 0)
			continue;
		pthread_mutex_lock(&g->a.lock);
		ag_ecu_state *e = ag_state_ecu(&g->a.st, g->a.model.ecus[k].ecu_id);
		int cmp = -1;
		if (e && e->cur.version[0] && semver_cmp_str(e->cur.version, ver, &cmp) != PQ_OK)
			cmp = -1;
		pthread_mutex_unlock(&g->a.lock);
		newer = cmp < 0;
	}
	return newer;
}

/* The retained release announcement: when it names a version newer than one of this
 * vehicle's ECUs runs, the vehicle reports its VCI (once per announcement), which is what
 * a continuous campaign admits vehicles on (docs/protocol.md, release_announcement). */
static void on_releases(ag_main *g, const json_t *m, const ag_env *env)
{
	json_t *rel = json_object_get(m, "releases");
	size_t i, newer = 0;
	json_t *r;
	json_array_foreach(rel, i, r)
	{
		if (release_newer(g, r))
			newer++;
	}
	pq_log(PQ_LOG_INFO, AG_LOGC,
	       "release announcement: %zu releases, %zu newer than this vehicle runs",
	       json_array_size(rel), newer);
	if (newer == 0 || !strcmp(g->last_ann, env->message_id))
		return;
	snprintf(g->last_ann, sizeof(g->last_ann), "%s", env->message_id);
	ag_send_vci(&g->a, g->a.zc, NULL);
}

/* ---- connection and dispatch ----------------------------------------------------------------- */

static json_t *wake_up_msg(ag_agent *a)
{
	json_t *m = ag_msg_new(a->o->vin, "vehicle_wake_up", NULL, NULL);
	if (!m)
		return NULL;
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *vmg = ag_state_ecu(&a->st, "VMG");
	char bank[2] = {a->st.vmg_bank, '\0'};
	json_t *f =
	    json_pack("{s:I,s:{s:s,s:s,s:s,s:s,s:s,s:I}}", "boot_seq", (json_int_t)a->st.boot_seq,
	              "vmg_info", "sw_version", vmg ? vmg->cur.version : a->model.vmg_version,
	              "hw_version", a->model.vmg_hardware_id, "model", a->model.model, "bank", bank,
	              "agent", "pqota-vehicle", "ecus", (json_int_t)a->model.n_ecus);
	pthread_mutex_unlock(&a->lock);
	if (ag_jmerge(m, f, "vehicle_wake_up") != PQ_OK) {
		json_decref(m);
		return NULL;
	}
	return m;
}

void ag_on_connected(ag_main *g)
{
	ag_agent *a = &g->a;
	ag_mq_group(a->mq, a->mqtt_group, sizeof(a->mqtt_group));
	ag_publish(a, "wake_up", wake_up_msg(a), 1);
	ag_write_status(a);
}

/* Checks the envelope and drops duplicates; false when the message goes no further. */
static bool accept_msg(ag_main *g, const char *topic, const json_t *m, const char *jerr,
                       bool broadcast, ag_env *env)
{
	if (broadcast && !m)
		return false; /* retained junk on a broadcast topic */
	if (ag_msg_check(m, g->a.o->vin, broadcast, env) != PQ_OK) {
		const char *why = m ? pq_err_detail() : jerr;
		pq_log(PQ_LOG_WARN, AG_LOGC, "message on %.80s dropped: %s", topic, why);
		ag_event("rejected", json_pack("{s:s,s:s}", "topic", topic, "error", why));
		return false;
	}
	if (ag_seen_check(&g->seen, env->message_id)) {
		pq_log(PQ_LOG_DEBUG, AG_LOGC, "duplicate %s %s ignored", env->msg_type,
		       env->message_id);
		return false;
	}
	ag_event("received", json_pack("{s:s,s:s,s:s,s:s}", "topic", topic, "msg_type",
	                               env->msg_type, "message_id", env->message_id, "campaign_id",
	                               env->campaign_id ? env->campaign_id : ""));
	return true;
}

void ag_handle(ag_main *g, const char *topic, const char *payload, size_t len)
{
	ag_agent *a = &g->a;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "oem/%s/", a->o->vin);
	bool broadcast = !strncmp(topic, "oem/broadcast/", 14);
	const char *sub = !strncmp(topic, prefix, strlen(prefix)) ? topic + strlen(prefix) : NULL;
	json_error_t je;
	ag_env env;
	if (!sub && !broadcast) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "message on %.80s dropped: not our topic", topic);
		return;
	}
	json_t *m = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
	if (!accept_msg(g, topic, m, je.text, broadcast, &env))
		goto out;
	const char *t = env.msg_type;
	bool cmd = sub && !strcmp(sub, "command");
	if (broadcast && !strcmp(t, "release_announcement"))
		on_releases(g, m, &env);
	else if (cmd && !strcmp(t, "request_vci"))
		ag_send_vci(a, a->zc, env.message_id);
	else if (cmd && !strcmp(t, "request_ota_readiness"))
		on_readiness(g, m, &env);
	else if (cmd && !strcmp(t, "cancel"))
		on_cancel(g, &env);
	else if (sub && !strcmp(sub, "ota/campaign") && !strcmp(t, "ota_campaign"))
		ag_on_campaign(g, m, &env);
	else if (sub && !strcmp(sub, "ota/metadata") && !strcmp(t, "ota_campaign_metadata"))
		on_metadata(g, m, &env);
	else if (sub && !strcmp(sub, "diag/request") && !strcmp(t, "diag_request"))
		ag_publish(a, "diag/response", ag_diag(a, a->zc, m, &env), 1);
	else
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s on %.80s ignored", t, topic);
out:
	json_decref(m);
}
