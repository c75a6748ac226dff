/* consent.c: ota_campaign, the offer of a campaign, and the driver's answer (docs/vehicle.md,
 * "Consent"), on the main thread.
 *
 * An offer is recorded (phase offered) and answered by ag_opts.consent: auto accepts,
 * decline declines, postpone:S postpones the first offer and accepts the next; interactive
 * asks the driver through ag_opts.consent_fn, which presents the offer and reads the answer
 * from consent_fd while the agent goes on (the main loop polls it). An offer while another
 * campaign is verified, downloaded or installed is postponed; a repeated offer gets the
 * same answer again. The agent itself never prints: the program's callback does. */
#include <string.h>

#include "agent/agent_int.h"
#include "core/log.h"

#define BUSY_RETRY_S  600 /* postponement while another campaign runs */
#define PROMPT_RETRY  300 /* the driver's "postpone" */
#define CAMPAIGN_NAME 256

/* ota_campaign_response. */
static void respond(ag_main *g, const char *corr, const char *cid, const char *decision, int retry,
                    const char *reason)
{
	ag_agent *a = &g->a;
	json_t *m = ag_msg_new(a->o->vin, "ota_campaign_response", corr, cid);
	json_t *f = retry > 0 ? json_pack("{s:s,s:i,s:s*}", "decision", decision, "retry_after_s",
	                                  retry, "reason", reason)
	                      : json_pack("{s:s,s:s*}", "decision", decision, "reason", reason);
	if (!m) {
		json_decref(f);
	} else if (ag_jmerge(m, f, "ota_campaign_response") != PQ_OK) {
		json_decref(m);
		m = NULL;
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s: %s%s%s", cid, decision, reason ? ": " : "",
	       reason ? reason : "");
	ag_publish(a, "response", m, 1);
}

/* Applies a decision to the record and answers; a decision that cannot be recorded is not
 * sent (the offer stays unanswered, as if lost). */
static void decide(ag_main *g, const char *corr, const char *cid, const char *decision, int retry,
                   const char *reason)
{
	ag_agent *a = &g->a;
	const char *phase = !strcmp(decision, "accepted")   ? AG_PH_ACCEPTED
	                    : !strcmp(decision, "declined") ? AG_PH_DECLINED
	                                                    : AG_PH_POSTPONED;
	pthread_mutex_lock(&a->lock);
	int rc = ag_jset(a->st.campaign, "decision", json_string(decision));
	if (rc == PQ_OK)
		rc = ag_rec_set_phase(a, phase);
	if (rc == PQ_OK)
		ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "campaign %s: %s not sent: %s", cid, decision,
		       pq_err_detail());
		return;
	}
	respond(g, corr, cid, decision, retry, reason);
	ag_write_status(a);
	if (!strcmp(decision, "declined")) {
		ag_cleanup_files(a);
		ag_final_outcome(g, AG_OUT_DECLINED);
	}
}

/* ---- the driver ------------------------------------------------------------------------ */

/* Asks the driver about the offer of the record (g->ask_cid) through the program's callback;
 * input: consent_fd became readable. A pending answer keeps the question open. */
static void ask(ag_main *g, bool input)
{
	ag_agent *a = &g->a;
	ag_offer_target t[AG_IMAGES_MAX];
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	bool waiting = rcid && !strcmp(rcid, g->ask_cid) && phase && !strcmp(phase, AG_PH_OFFERED);
	json_t *offer = waiting ? json_incref(json_object_get(a->st.campaign, "offer")) : NULL;
	pthread_mutex_unlock(&a->lock);
	g->asking = false;
	if (!offer)
		return; /* the record moved on */
	/* the offer object is not changed in place: the reference keeps its strings */
	ag_offer o = {.vin = a->o->vin,
	              .campaign_id = g->ask_cid,
	              .name = ag_jstr(offer, "name", CAMPAIGN_NAME),
	              .targets = t};
	json_t *targets = json_object_get(offer, "targets"), *x;
	size_t i;
	json_array_foreach(targets, i, x)
	{
		if (i >= AG_IMAGES_MAX)
			break;
		t[i] = (ag_offer_target){ag_jstr(x, "ecu_id", VM_ID_MAX),
		                         ag_jstr(x, "from_version", VM_VER_MAX),
		                         ag_jstr(x, "to_version", VM_VER_MAX)};
		o.n_targets = i + 1;
	}
	ag_answer ans = a->o->consent_fn(a->o->consent_user, &o, input);
	json_decref(offer);
	switch (ans) {
	case AG_ANSWER_PENDING:
		g->asking = true;
		break;
	case AG_ANSWER_ACCEPT:
		decide(g, g->ask_mid, g->ask_cid, "accepted", 0, "accepted by the driver");
		break;
	case AG_ANSWER_DECLINE:
		decide(g, g->ask_mid, g->ask_cid, "declined", 0, "declined by the driver");
		break;
	default:
		decide(g, g->ask_mid, g->ask_cid, "postponed", PROMPT_RETRY,
		       "postponed by the driver");
		break;
	}
}

/* Starts asking the driver about the offer of campaign cid (message mid). */
static void ask_new(ag_main *g, const char *cid, const char *mid)
{
	snprintf(g->ask_cid, sizeof(g->ask_cid), "%s", cid);
	snprintf(g->ask_mid, sizeof(g->ask_mid), "%s", mid);
	ask(g, false);
}

void ag_consent_input(ag_main *g)
{
	if (g->asking)
		ask(g, true);
}

void ag_consent_resume(ag_main *g)
{
	ag_agent *a = &g->a;
	char cid[AG_ID_MAX + 1] = "", mid[AG_ID_MAX + 1] = "";
	if (a->o->consent != AG_CONSENT_INTERACTIVE)
		return;
	pthread_mutex_lock(&a->lock);
	const char *phase = ag_rec_phase(a);
	bool offered = phase && !strcmp(phase, AG_PH_OFFERED);
	const char *c = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *m = json_string_value(json_object_get(a->st.campaign, "offer_message_id"));
	snprintf(cid, sizeof(cid), "%s", c ? c : "");
	snprintf(mid, sizeof(mid), "%s", m ? m : "");
	pthread_mutex_unlock(&a->lock);
	if (offered)
		ask_new(g, cid, mid);
}

/* ---- offers ---------------------------------------------------------------------------- */

/* Checks the offer's targets: an array of objects with an ecu_id each. */
static int check_offer(const json_t *m)
{
	json_t *t = json_object_get(m, "targets");
	if (!json_is_array(t) || json_array_size(t) > AG_IMAGES_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "targets is not an array of at most %d",
		                  AG_IMAGES_MAX);
	for (size_t i = 0; i < json_array_size(t); i++)
		if (!ag_jstr(json_array_get(t, i), "ecu_id", VM_ID_MAX))
			return pq_err_set(PQ_ERR_FORMAT, "targets[%zu] has no ecu_id", i);
	json_t *n = json_object_get(m, "name");
	if (n && !json_is_null(n) && !ag_jstr(m, "name", CAMPAIGN_NAME))
		return pq_err_set(PQ_ERR_FORMAT, "name is not a string of at most %d bytes",
		                  CAMPAIGN_NAME);
	ag_prereq p;
	return ag_prereq_parse(json_object_get(m, "prerequisites"), &p);
}

/* Records the offer (a->lock held), in a new record when fresh; phase offered. On failure
 * the record is as it was (a new one is not kept). */
static int record_offer(ag_agent *a, const json_t *m, const ag_env *env, bool fresh, int offers)
{
	json_t *old = NULL;
	if (fresh) {
		old = a->st.campaign;
		a->st.campaign = json_pack("{s:s}", "campaign_id", env->campaign_id);
	}
	int rc = ag_jmerge(a->st.campaign,
	                   json_pack("{s:o,s:i,s:s}", "offer", json_deep_copy(m), "offers", offers,
	                             "offer_message_id", env->message_id),
	                   "campaign record");
	if (rc == PQ_OK)
		rc = ag_rec_set_phase(a, AG_PH_OFFERED);
	if (rc == PQ_OK) {
		ag_save_locked(a);
		json_decref(old);
	} else if (fresh) {
		json_decref(a->st.campaign);
		a->st.campaign = old;
	}
	return rc;
}

/* Answers a recorded offer as the consent mode says. */
static void answer(ag_main *g, const char *mid, const char *cid, int offers)
{
	const ag_opts *o = g->a.o;
	switch (o->consent) {
	case AG_CONSENT_AUTO:
		decide(g, mid, cid, "accepted", 0, NULL);
		break;
	case AG_CONSENT_DECLINE:
		decide(g, mid, cid, "declined", 0, "declined by the driver");
		break;
	case AG_CONSENT_POSTPONE:
		if (offers <= 1)
			decide(g, mid, cid, "postponed", o->postpone_s, "postponed by the driver");
		else
			decide(g, mid, cid, "accepted", 0, "accepted after a postponement");
		break;
	case AG_CONSENT_INTERACTIVE:
		ask_new(g, cid, mid);
		break;
	}
}

void ag_on_campaign(ag_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	char ph[32];
	if (!cid || check_offer(m) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "ota_campaign dropped: %s",
		       cid ? pq_err_detail() : "no campaign_id");
		return;
	}
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	bool same = rcid && !strcmp(rcid, cid);
	snprintf(ph, sizeof(ph), "%s", phase ? phase : "");
	/* only a campaign being verified, downloaded or installed keeps a new one out; one that
	 * waits (offered, accepted without metadata yet, postponed) is replaced */
	bool other_busy = !same && ag_phase_worker(phase);
	/* a campaign that ended other than completed or declined may be offered again */
	bool fresh = !same || (ag_phase_final(phase) && strcmp(ph, AG_PH_COMPLETED) != 0 &&
	                       strcmp(ph, AG_PH_DECLINED) != 0);
	bool again = same && !strcmp(ph, AG_PH_POSTPONED);
	int offers =
	    again ? (int)json_integer_value(json_object_get(a->st.campaign, "offers")) + 1 : 1;
	bool record = !other_busy && (fresh || again);
	int rc = record ? record_offer(a, m, env, fresh, offers) : PQ_OK;
	pthread_mutex_unlock(&a->lock);

	if (rc != PQ_OK) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "ota_campaign %s dropped: %s", cid, pq_err_detail());
		return;
	}
	if (other_busy) {
		respond(g, env->message_id, cid, "postponed", BUSY_RETRY_S,
		        "another campaign is in progress");
		return;
	}
	if (!record) {
		/* the same offer again (a redelivery): the same answer */
		if (!strcmp(ph, AG_PH_OFFERED))
			return; /* still asking the driver */
		respond(g, env->message_id, cid,
		        !strcmp(ph, AG_PH_DECLINED) ? "declined" : "accepted", 0,
		        "already answered");
		return;
	}
	answer(g, env->message_id, cid, offers);
}
