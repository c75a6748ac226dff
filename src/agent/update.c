/* update.c: the campaign worker, from the metadata to a final outcome.
 *
 * Phases of the campaign record (st.campaign, persisted in state.json):
 *   verifying    Uptane (uptane.c): the metadata of both repositories verified with the
 *                trusted roots; every image of the message a verified target
 *   downloading  every image downloaded, decrypted, checked and decoded (prepare.c);
 *                ota_download_complete
 *   installing / checking   install.c
 * The record keeps per image what is done, so a restarted agent continues where it stopped.
 * The worker runs on its own thread; MQTT and diagnostics go on meanwhile. A record update
 * that fails (out of memory) fails the campaign with error_code "internal". */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"

/* ---- phases ------------------------------------------------------------------------------ */

bool ag_phase_final(const char *p)
{
	return p && (!strcmp(p, AG_PH_COMPLETED) || !strcmp(p, AG_PH_FAILED) ||
	             !strcmp(p, AG_PH_ROLLED_BACK) || !strcmp(p, AG_PH_DECLINED) ||
	             !strcmp(p, AG_PH_CANCELLED));
}

bool ag_phase_worker(const char *p)
{
	return p && (!strcmp(p, AG_PH_VERIFYING) || !strcmp(p, AG_PH_DOWNLOADING) ||
	             !strcmp(p, AG_PH_INSTALLING) || !strcmp(p, AG_PH_CHECKING));
}

ag_outcome ag_phase_outcome(const char *p)
{
	if (!p)
		return AG_OUT_NONE;
	if (!strcmp(p, AG_PH_COMPLETED))
		return AG_OUT_COMPLETED;
	if (!strcmp(p, AG_PH_FAILED))
		return AG_OUT_FAILED;
	if (!strcmp(p, AG_PH_ROLLED_BACK))
		return AG_OUT_ROLLED_BACK;
	if (!strcmp(p, AG_PH_DECLINED))
		return AG_OUT_DECLINED;
	if (!strcmp(p, AG_PH_CANCELLED))
		return AG_OUT_CANCELLED;
	return AG_OUT_NONE;
}

/* ---- the record -------------------------------------------------------------------------- */

const char *ag_rec_phase(ag_agent *a)
{
	return json_string_value(json_object_get(a->st.campaign, "phase"));
}

int ag_rec_set_phase(ag_agent *a, const char *phase)
{
	return ag_jmerge(
	    a->st.campaign,
	    json_pack("{s:s,s:I}", "phase", phase, "updated_ms", (json_int_t)pq_real_ms()),
	    "campaign record");
}

json_t *ag_rec_image(ag_agent *a, size_t i)
{
	return json_array_get(json_object_get(a->st.campaign, "images"), i);
}

void ag_fail(ag_agent *a, const char *msg_type, const char *phase, const char *ecu_id,
             const char *code, const char *fmt, ...)
{
	char text[AG_ERR_MAX], cid[AG_ID_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&a->lock);
	const char *c = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	snprintf(cid, sizeof(cid), "%s", c ? c : "?");
	json_t *m = ag_msg_new(a->o->vin, msg_type, NULL, c);
	int rc =
	    ag_jmerge(a->st.campaign, json_pack("{s:s,s:s}", "error_code", code, "error", text),
	              "campaign record");
	if (rc == PQ_OK && phase)
		rc = ag_rec_set_phase(a, phase);
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "campaign %s: recording the failure: %s", cid,
		       pq_err_detail());
	pq_log(PQ_LOG_ERROR, AG_LOGC, "campaign %s: %s%s%s: %s", cid, ecu_id ? ecu_id : "",
	       ecu_id ? ": " : "", code, text);
	if (m &&
	    ag_jmerge(
	        m, json_pack("{s:s*,s:s,s:s}", "ecu_id", ecu_id, "error_code", code, "error", text),
	        msg_type) != PQ_OK) {
		json_decref(m);
		m = NULL;
	}
	ag_status_msg(a, m);
	ag_write_status(a);
}

/* A status message of the current campaign: {campaign_id[, ecu_id]} plus what the caller
 * adds; NULL when out of memory. */
json_t *ag_campaign_msg(ag_agent *a, const char *msg_type, const char *ecu_id)
{
	pthread_mutex_lock(&a->lock);
	const char *cid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	json_t *m = ag_msg_new(a->o->vin, msg_type, NULL, cid);
	pthread_mutex_unlock(&a->lock);
	if (m && ecu_id && ag_jset(m, "ecu_id", json_string(ecu_id)) != PQ_OK) {
		json_decref(m);
		return NULL;
	}
	return m;
}

bool ag_interrupted(ag_agent *a)
{
	return atomic_load(&a->stopping) || atomic_load(&a->cancel);
}

/* ---- the worker ------------------------------------------------------------------------ */

/* The record's per-image entries, made when the metadata is first worked on. */
static int ensure_images(ag_agent *a, const ag_meta *m)
{
	int rc = PQ_OK;
	pthread_mutex_lock(&a->lock);
	if (json_array_size(json_object_get(a->st.campaign, "images")) == m->n_images)
		goto out;
	json_t *arr = json_array();
	for (size_t i = 0; i < m->n_images && rc == PQ_OK; i++) {
		const ag_image *im = &m->images[i];
		rc = ag_jappend(
		    arr, json_pack("{s:s,s:s,s:s,s:I,s:I}", "ecu_id", im->ecu_id, "to_version",
		                   im->to_version, "package", im->delta ? "delta" : "full", "bytes",
		                   (json_int_t)0, "total",
		                   (json_int_t)(im->file.enc.present ? im->file.enc.length
		                                                     : im->file.length)));
	}
	if (rc != PQ_OK) {
		json_decref(arr);
		goto out;
	}
	if ((rc = ag_jset(a->st.campaign, "images", arr)) == PQ_OK)
		ag_save_locked(a);
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Moves the record on to phase (saved) and keeps the HTTPS group for the status file. A
 * failure is the campaign's. */
static int advance(ag_agent *a, const char *phase, const ag_http *h)
{
	pthread_mutex_lock(&a->lock);
	int rc = ag_rec_set_phase(a, phase);
	if (rc == PQ_OK)
		ag_save_locked(a);
	if (h->group[0])
		snprintf(a->https_group, sizeof(a->https_group), "%s", h->group);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		return rc;
	}
	ag_write_status(a);
	return PQ_OK;
}

/* verifying: Uptane, then downloading. */
static int step_verify(ag_agent *a, ag_http *h, const ag_meta *m)
{
	char code[64] = "", why[AG_ERR_MAX];
	int rc = ag_uptane(a, h, m, code, sizeof(code));
	if (rc == PQ_OK)
		return advance(a, AG_PH_DOWNLOADING, h);
	snprintf(why, sizeof(why), "%s", pq_err_detail());
	pthread_mutex_lock(&a->lock);
	if (ag_jset(a->st.campaign, "verification", json_string("failed")) != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "campaign record: %s", pq_err_detail());
	pthread_mutex_unlock(&a->lock);
	ag_fail(a, "ota_error", AG_PH_FAILED, NULL, code, "%s", why);
	return rc;
}

/* ota_download_complete: every image's package, and whether a fallback was used. */
static json_t *download_complete_msg(ag_agent *a, const ag_meta *m)
{
	json_t *c = ag_campaign_msg(a, "ota_download_complete", NULL), *list = json_array();
	int rc = c && list ? PQ_OK : PQ_ERR_NOMEM;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; rc == PQ_OK && i < m->n_images; i++) {
		const ag_image *im = &m->images[i];
		char hex[65];
		/* what was really downloaded: after a fallback the full package, not the delta */
		const char *kind =
		    json_string_value(json_object_get(ag_rec_image(a, i), "package"));
		bool fb = kind && strcmp(kind, "fallback") == 0 && im->has_fallback;
		const ag_file *f = fb ? &im->fallback : &im->file;
		pq_hex_encode(f->sha256, 32, hex);
		rc = ag_jappend(list, json_pack("{s:s,s:s,s:I,s:s*,s:b}", "ecu_id", im->ecu_id,
		                                "sha256", hex, "length", (json_int_t)f->length,
		                                "package", fb ? "full" : kind, "fallback", fb));
	}
	bool fallback = json_integer_value(json_object_get(a->st.campaign, "fallbacks")) > 0;
	pthread_mutex_unlock(&a->lock);
	if (rc == PQ_OK) {
		rc = ag_jmerge(
		    c,
		    json_pack("{s:o,s:s*}", "images", list, "fallback", fallback ? "full" : NULL),
		    "ota_download_complete");
		list = NULL;
	}
	if (rc != PQ_OK) {
		json_decref(list);
		json_decref(c);
		return NULL;
	}
	return c;
}

/* downloading: every image prepared, then installing. */
static int step_download(ag_agent *a, ag_http *h, const ag_meta *m)
{
	int rc = ag_prepare_images(a, h, m);
	if (rc != PQ_OK)
		return rc;
	ag_status_msg(a, download_complete_msg(a, m));
	return advance(a, AG_PH_INSTALLING, h);
}

/* The worker's end: a cancel that stopped it becomes the outcome; the main loop joins. */
static void worker_finish(ag_agent *a)
{
	pthread_mutex_lock(&a->lock);
	if (atomic_load(&a->cancel) && !ag_phase_final(ag_rec_phase(a)) &&
	    !atomic_load(&a->stopping)) {
		if (ag_rec_set_phase(a, AG_PH_CANCELLED) == PQ_OK)
			ag_save_locked(a);
		else
			pq_log(PQ_LOG_ERROR, AG_LOGC, "recording the cancel: %s", pq_err_detail());
	}
	a->wout = ag_phase_outcome(ag_rec_phase(a));
	a->wstate = AG_W_DONE;
	pthread_mutex_unlock(&a->lock);
	ag_write_status(a);
	ag_wake(a);
}

static void *worker_main(void *arg)
{
	ag_agent *a = arg;
	ag_http h = {.ca = a->ca,
	             .cert = a->cert,
	             .key = a->key,
	             .profile = a->profile,
	             .max_rate = a->o->max_rate};
	ag_meta m;
	char phase[32];

	pthread_mutex_lock(&a->lock);
	json_t *msg = json_incref(json_object_get(a->st.campaign, "metadata"));
	snprintf(phase, sizeof(phase), "%s", ag_rec_phase(a) ? ag_rec_phase(a) : "");
	pthread_mutex_unlock(&a->lock);

	if (ag_meta_parse(msg, a->o->vin, &m) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "bad_metadata", "%s", pq_err_detail());
		goto done;
	}
	if (ensure_images(a, &m) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		goto parsed;
	}
	/* each step moves the record to the next phase; a restart enters at the phase saved */
	if (!strcmp(phase, AG_PH_VERIFYING)) {
		if (step_verify(a, &h, &m) != PQ_OK)
			goto parsed;
		snprintf(phase, sizeof(phase), "%s", AG_PH_DOWNLOADING);
	}
	if (!strcmp(phase, AG_PH_DOWNLOADING)) {
		if (step_download(a, &h, &m) != PQ_OK)
			goto parsed;
		snprintf(phase, sizeof(phase), "%s", AG_PH_INSTALLING);
	}
	if (!strcmp(phase, AG_PH_INSTALLING) || !strcmp(phase, AG_PH_CHECKING))
		ag_install(a, &m);
parsed:
	ag_meta_free(&m);
done:
	json_decref(msg);
	worker_finish(a);
	return NULL;
}

int ag_worker_start(ag_agent *a)
{
	if (a->wstate != AG_W_IDLE)
		return pq_err_set(PQ_ERR_EXISTS, "a campaign is already being worked on");
	atomic_store(&a->cancel, false);
	a->wstate = AG_W_RUNNING;
	int err = pthread_create(&a->worker, NULL, worker_main, a);
	if (err != 0) {
		a->wstate = AG_W_IDLE;
		return pq_err_set(PQ_ERR_IO, "starting the campaign worker: %s", strerror(err));
	}
	return PQ_OK;
}
