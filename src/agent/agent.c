/* agent.c: ag_run, the VMG agent's set-up and main loop (docs/vehicle.md, "The agent").
 *
 * Threads: libmosquitto's (MQTT I/O; its callbacks only queue messages), the main thread
 * (this loop: dispatches queued messages, answers commands, consent, readiness, VCI and
 * diagnostics over its own zone connections), and the campaign worker (update.c,
 * install.c), which reports through ag_status_msg. The state is shared under a->lock. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "crypto/pki.h"
#include "uptane/repo.h"
#include "vehicle/sim.h"

#define QUEUE_MAX     1024
#define BUSY_RETRY_S  600 /* postponement while another campaign runs */
#define PROMPT_RETRY  300 /* "p" at the interactive prompt */
#define CAMPAIGN_NAME 256

static volatile sig_atomic_t g_stop;
static int g_wake_wr = -1;

void ag_request_stop(void)
{
	g_stop = 1;
	if (g_wake_wr >= 0) {
		ssize_t r = write(g_wake_wr, "s", 1);
		(void)r;
	}
}

typedef struct qitem {
	char *topic; /* NULL: "connected" */
	char *payload;
	size_t len;
	struct qitem *next;
} qitem;

typedef struct {
	ag_agent a;
	int wake_rd;
	pthread_mutex_t qlock;
	qitem *head, *tail;
	size_t qlen;
	ag_seen seen;
	/* interactive consent */
	bool prompt;
	char prompt_cid[AG_ID_MAX + 1], prompt_mid[AG_ID_MAX + 1];
	char line[256];
	size_t line_len;
	bool stdin_eof;
	ag_outcome outcome;
	bool done; /* --once: a final outcome was reached */
} agent_main;

/* ---- shared helpers --------------------------------------------------------------------- */

void ag_wake(ag_agent *a)
{
	ssize_t r = write(a->wake_fd, "w", 1);
	(void)r;
}

void ag_save_locked(ag_agent *a)
{
	if (ag_state_save(&a->st) != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "saving the state: %s", pq_err_detail());
}

static void publish(ag_agent *a, const char *sub, json_t *m, int qos)
{
	if (!m)
		return;
	const char *type = json_string_value(json_object_get(m, "msg_type"));
	if (ag_mq_publish(a->mq, sub, m, qos) != PQ_OK)
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s not sent: %s", type ? type : sub, pq_err_detail());
	json_t *f = json_pack("{s:s,s:s}", "topic", sub, "msg_type", type ? type : "");
	const char *keys[] = {"message_id", "correlation_id", "campaign_id", "ecu_id",
	                      "decision",   "retry_after_s",  "ready",       "reason",
	                      "result",     "error_code",     "progress",    "status"};
	for (size_t i = 0; f && i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(m, keys[i]);
		if (v)
			json_object_set(f, keys[i], v);
	}
	ag_event("sent", f);
	json_decref(m);
}

void ag_status_msg(ag_agent *a, json_t *m)
{
	publish(a, "ota/status", m, 1);
}

void ag_send_vci(ag_agent *a, doipc **zc, const char *correlation_id)
{
	doipc *own[VM_ZONES_MAX + 1] = {NULL};
	json_t *body = ag_collect_vci(a, zc ? zc : own);
	if (!zc)
		for (int z = 1; z <= VM_ZONES_MAX; z++)
			ag_zone_close(own, z);
	json_t *m = ag_msg_new(a->o->vin, "vci_report", correlation_id, NULL);
	if (!body || !m) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "vci_report: out of memory");
		json_decref(body);
		json_decref(m);
		return;
	}
	json_object_update(m, body);
	json_decref(body);
	publish(a, "vci", m, 1);
}

/* ---- the message queue (filled on libmosquitto's thread) -------------------------------- */

static void enqueue(agent_main *g, const char *topic, const void *payload, size_t len)
{
	qitem *q = calloc(1, sizeof(*q));
	if (!q)
		return;
	if (topic) {
		q->topic = strdup(topic);
		q->payload = malloc(len + 1);
		if (!q->topic || !q->payload) {
			free(q->topic);
			free(q->payload);
			free(q);
			return;
		}
		memcpy(q->payload, payload, len);
		q->payload[len] = '\0';
		q->len = len;
	}
	pthread_mutex_lock(&g->qlock);
	if (g->qlen >= QUEUE_MAX) {
		pthread_mutex_unlock(&g->qlock);
		pq_log(PQ_LOG_WARN, AG_LOGC, "message queue full: message on %.80s dropped",
		       topic ? topic : "(connect)");
		free(q->topic);
		free(q->payload);
		free(q);
		return;
	}
	if (g->tail)
		g->tail->next = q;
	else
		g->head = q;
	g->tail = q;
	g->qlen++;
	pthread_mutex_unlock(&g->qlock);
	ag_wake(&g->a);
}

static qitem *dequeue(agent_main *g)
{
	pthread_mutex_lock(&g->qlock);
	qitem *q = g->head;
	if (q) {
		g->head = q->next;
		if (!g->head)
			g->tail = NULL;
		g->qlen--;
	}
	pthread_mutex_unlock(&g->qlock);
	return q;
}

static void on_mq_message(void *user, const char *topic, const void *payload, size_t len)
{
	enqueue(user, topic, payload, len);
}

static void on_mq_connect(void *user)
{
	enqueue(user, NULL, NULL, 0);
}

/* ---- outcomes ---------------------------------------------------------------------------- */

static void final_outcome(agent_main *g, ag_outcome o)
{
	if (o == AG_OUT_NONE)
		return;
	g->outcome = o;
	static const char *const names[] = {"none",        "completed", "failed",
	                                    "rolled_back", "declined",  "cancelled"};
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign outcome: %s", names[o]);
	ag_event("outcome", json_pack("{s:s}", "outcome", names[o]));
	if (g->a.o->once)
		g->done = true;
}

/* Removes files of dir (not recursing) for which keep() is false. */
static void sweep(const char *dir, bool (*keep)(ag_agent *, const char *), ag_agent *a)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p))
			continue;
		struct stat st;
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || (keep && keep(a, p)))
			continue;
		unlink(p);
	}
	closedir(d);
}

static bool image_in_use(ag_agent *a, const char *path)
{
	for (size_t i = 0; i < a->st.n_ecus; i++)
		if (!strcmp(a->st.ecus[i].cur.path, path) || !strcmp(a->st.ecus[i].prev.path, path))
			return true;
	return false;
}

/* After a final outcome: downloads and work files go; images nobody runs or may roll
 * back to go too. */
static void cleanup_files(ag_agent *a)
{
	char p[PATH_MAX];
	if (ag_path(p, sizeof(p), a->st.dir, "downloads") == PQ_OK)
		sweep(p, NULL, a);
	if (ag_path(p, sizeof(p), a->st.dir, "work") == PQ_OK)
		sweep(p, NULL, a);
	pthread_mutex_lock(&a->lock);
	if (ag_path(p, sizeof(p), a->st.dir, "images") == PQ_OK)
		sweep(p, image_in_use, a);
	pthread_mutex_unlock(&a->lock);
}

static void worker_reap(agent_main *g)
{
	ag_agent *a = &g->a;
	pthread_mutex_lock(&a->lock);
	bool done = a->wstate == AG_W_DONE;
	pthread_mutex_unlock(&a->lock);
	if (!done)
		return;
	pthread_join(a->worker, NULL);
	a->wstate = AG_W_IDLE;
	if (a->wout != AG_OUT_NONE) {
		cleanup_files(a);
		final_outcome(g, a->wout);
	}
}

/* ---- consent --------------------------------------------------------------------------- */

static void respond(agent_main *g, const char *corr, const char *cid, const char *decision,
                    int retry, const char *reason)
{
	ag_agent *a = &g->a;
	json_t *m = ag_msg_new(a->o->vin, "ota_campaign_response", corr, cid);
	if (!m)
		return;
	json_object_set_new(m, "decision", json_string(decision));
	if (retry > 0)
		json_object_set_new(m, "retry_after_s", json_integer(retry));
	if (reason)
		json_object_set_new(m, "reason", json_string(reason));
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s: %s%s%s", cid, decision, reason ? ": " : "",
	       reason ? reason : "");
	publish(a, "response", m, 1);
}

/* Applies a decision to the record and answers. */
static void decide(agent_main *g, const char *corr, const char *cid, const char *decision,
                   int retry, const char *reason)
{
	ag_agent *a = &g->a;
	const char *phase = !strcmp(decision, "accepted")   ? AG_PH_ACCEPTED
	                    : !strcmp(decision, "declined") ? AG_PH_DECLINED
	                                                    : AG_PH_POSTPONED;
	pthread_mutex_lock(&a->lock);
	json_object_set_new(a->st.campaign, "decision", json_string(decision));
	ag_rec_set_phase(a, phase);
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	respond(g, corr, cid, decision, retry, reason);
	ag_write_status(a);
	if (!strcmp(decision, "declined")) {
		cleanup_files(a);
		final_outcome(g, AG_OUT_DECLINED);
	}
}

static void print_prompt(agent_main *g)
{
	ag_agent *a = &g->a;
	pthread_mutex_lock(&a->lock);
	json_t *offer = json_object_get(a->st.campaign, "offer");
	const char *name = ag_jstr(offer, "name", CAMPAIGN_NAME);
	json_t *targets = json_object_get(offer, "targets");
	printf("\npqota vehicle %s: campaign %s%s%s%s, targets:", a->o->vin, g->prompt_cid,
	       name ? " (" : "", name ? name : "", name ? ")" : "");
	size_t i;
	json_t *t;
	json_array_foreach(targets, i, t)
	{
		if (i >= 20) {
			printf(" ... (%zu in all)", json_array_size(targets));
			break;
		}
		const char *e = ag_jstr(t, "ecu_id", VM_ID_MAX);
		const char *f = ag_jstr(t, "from_version", VM_VER_MAX);
		const char *to = ag_jstr(t, "to_version", VM_VER_MAX);
		printf(" %s %s -> %s", e ? e : "?", f ? f : "?", to ? to : "?");
	}
	pthread_mutex_unlock(&a->lock);
	printf("\naccept campaign %s? [y/n/p] ", g->prompt_cid);
	fflush(stdout);
}

static void prompt_answer(agent_main *g, char c)
{
	g->prompt = false;
	if (c == 'y' || c == 'Y')
		decide(g, g->prompt_mid, g->prompt_cid, "accepted", 0, "accepted by the driver");
	else if (c == 'n' || c == 'N')
		decide(g, g->prompt_mid, g->prompt_cid, "declined", 0, "declined by the driver");
	else
		decide(g, g->prompt_mid, g->prompt_cid, "postponed", PROMPT_RETRY,
		       "postponed by the driver");
}

static void read_stdin(agent_main *g)
{
	char buf[128];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			g->stdin_eof = true;
			if (g->prompt) {
				pq_log(PQ_LOG_WARN, AG_LOGC, "no terminal input: postponing");
				prompt_answer(g, 'p');
			}
		}
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (g->line_len < sizeof(g->line) - 1)
				g->line[g->line_len++] = buf[i];
			continue;
		}
		g->line[g->line_len] = '\0';
		char c = g->line_len ? g->line[0] : '\0';
		g->line_len = 0;
		if (!g->prompt)
			continue;
		if (c == 'y' || c == 'Y' || c == 'n' || c == 'N' || c == 'p' || c == 'P')
			prompt_answer(g, c);
		else
			print_prompt(g);
	}
}

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

static void on_campaign(agent_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	if (!cid || check_offer(m) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "ota_campaign dropped: %s",
		       cid ? pq_err_detail() : "no campaign_id");
		return;
	}
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	bool same = rcid && !strcmp(rcid, cid);
	char ph[32];
	snprintf(ph, sizeof(ph), "%s", phase ? phase : "");
	/* only a campaign being downloaded or installed keeps a new one out; one that waits
	 * (offered, accepted without metadata yet, postponed) is replaced */
	bool other_busy = !same && ag_phase_worker(phase);
	int offers = 1;
	if (same && !strcmp(ph, AG_PH_POSTPONED))
		offers = (int)json_integer_value(json_object_get(a->st.campaign, "offers")) + 1;
	bool fresh = !same || (ag_phase_final(phase) && strcmp(ph, AG_PH_COMPLETED) &&
	                       strcmp(ph, AG_PH_DECLINED));
	if (!other_busy && (fresh || !strcmp(ph, AG_PH_POSTPONED))) {
		if (fresh) {
			json_decref(a->st.campaign);
			a->st.campaign = json_pack("{s:s}", "campaign_id", cid);
		}
		json_object_set_new(a->st.campaign, "offer", json_deep_copy(m));
		json_object_set_new(a->st.campaign, "offers", json_integer(offers));
		json_object_set_new(a->st.campaign, "offer_message_id",
		                    json_string(env->message_id));
		ag_rec_set_phase(a, AG_PH_OFFERED);
		ag_save_locked(a);
	}
	pthread_mutex_unlock(&a->lock);

	if (other_busy) {
		respond(g, env->message_id, cid, "postponed", BUSY_RETRY_S,
		        "another campaign is in progress");
		return;
	}
	if (!fresh && strcmp(ph, AG_PH_POSTPONED) != 0) {
		/* the same offer again (a redelivery): the same answer */
		if (!strcmp(ph, AG_PH_OFFERED))
			return; /* still asking the driver */
		respond(g, env->message_id, cid,
		        !strcmp(ph, AG_PH_DECLINED) ? "declined" : "accepted", 0,
		        "already answered");
		return;
	}
	switch (a->o->consent) {
	case AG_CONSENT_AUTO:
		decide(g, env->message_id, cid, "accepted", 0, NULL);
		break;
	case AG_CONSENT_DECLINE:
		decide(g, env->message_id, cid, "declined", 0, "declined by the driver");
		break;
	case AG_CONSENT_POSTPONE:
		if (offers <= 1)
			decide(g, env->message_id, cid, "postponed", a->o->postpone_s,
			       "postponed by the driver");
		else
			decide(g, env->message_id, cid, "accepted", 0,
			       "accepted after a postponement");
		break;
	case AG_CONSENT_INTERACTIVE:
		g->prompt = true;
		snprintf(g->prompt_cid, sizeof(g->prompt_cid), "%s", cid);
		snprintf(g->prompt_mid, sizeof(g->prompt_mid), "%s", env->message_id);
		print_prompt(g);
		if (g->stdin_eof)
			prompt_answer(g, 'p');
		break;
	}
}

/* ---- metadata, readiness, cancel ----------------------------------------------------------- */

static void on_metadata(agent_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	ag_meta meta;
	if (!cid) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "ota_campaign_metadata without campaign_id dropped");
		return;
	}
	worker_reap(g);
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	bool same = rcid && !strcmp(rcid, cid);
	bool accepted = same && phase && !strcmp(phase, AG_PH_ACCEPTED);
	bool adopt = !same && a->o->consent == AG_CONSENT_AUTO &&
	             (!a->st.campaign || ag_phase_final(phase)) && a->wstate == AG_W_IDLE;
	char why[96] = "";
	if (!accepted && !adopt)
		snprintf(why, sizeof(why), "%s",
		         same ? (ag_phase_worker(phase) ? "already working on it"
		                                        : "campaign not accepted or finished")
		              : "another campaign, or one that was never accepted");
	pthread_mutex_unlock(&a->lock);
	if (why[0]) {
		pq_log(PQ_LOG_INFO, AG_LOGC, "ota_campaign_metadata for %s ignored: %s", cid, why);
		return;
	}
	int rc = ag_meta_parse(m, a->o->vin, &meta);
	if (rc == PQ_OK) {
		for (size_t i = 0; rc == PQ_OK && i < meta.n_images; i++)
			if (strcmp(meta.images[i].ecu_id, "VMG") &&
			    !vm_model_find(&a->model, meta.images[i].ecu_id))
				rc = pq_err_set(PQ_ERR_FORMAT, "this vehicle has no ECU %s",
				                meta.images[i].ecu_id);
		ag_meta_free(&meta);
	}
	pthread_mutex_lock(&a->lock);
	if (adopt) {
		json_decref(a->st.campaign);
		a->st.campaign = json_pack("{s:s,s:s}", "campaign_id", cid, "decision", "accepted");
	}
	json_object_set_new(a->st.campaign, "metadata", json_deep_copy(m));
	ag_rec_set_phase(a, AG_PH_VERIFYING);
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "bad_metadata", "%s", pq_err_detail());
		cleanup_files(a);
		final_outcome(g, AG_OUT_FAILED);
		return;
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s: metadata received, verifying", cid);
	ag_write_status(a);
	if (ag_worker_start(a) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		final_outcome(g, AG_OUT_FAILED);
	}
}

static void on_readiness(agent_main *g, const json_t *m, const ag_env *env)
{
	ag_agent *a = &g->a;
	ag_prereq p;
	char reason[256];
	json_t *checks = NULL;
	const json_t *pre = json_object_get(m, "prerequisites");
	pthread_mutex_lock(&a->lock);
	json_t *offer_pre = NULL;
	if (!pre && env->campaign_id) {
		const char *rcid =
		    json_string_value(json_object_get(a->st.campaign, "campaign_id"));
		if (rcid && !strcmp(rcid, env->campaign_id))
			offer_pre = json_incref(json_object_get(
			    json_object_get(a->st.campaign, "offer"), "prerequisites"));
	}
	pthread_mutex_unlock(&a->lock);
	if (ag_prereq_parse(pre ? pre : offer_pre, &p) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "request_ota_readiness dropped: %s", pq_err_detail());
		json_decref(offer_pre);
		return;
	}
	json_decref(offer_pre);
	bool ready = ag_readiness(&a->vstate, &p, &checks, reason, sizeof(reason));
	json_t *r =
	    ag_msg_new(a->o->vin, "ota_readiness_response", env->message_id, env->campaign_id);
	if (!r) {
		json_decref(checks);
		return;
	}
	json_object_set_new(r, "ready", json_boolean(ready));
	json_object_set_new(r, "checks", checks ? checks : json_array());
	if (!ready)
		json_object_set_new(r, "reason", json_string(reason));
	pq_log(PQ_LOG_INFO, AG_LOGC, "readiness: %s%s%s", ready ? "ready" : "not ready",
	       ready ? "" : ": ", ready ? "" : reason);
	publish(a, "response", r, 1);
}

static void on_cancel(agent_main *g, const ag_env *env)
{
	ag_agent *a = &g->a;
	const char *cid = env->campaign_id;
	const char *result;
	bool final = false;
	pthread_mutex_lock(&a->lock);
	const char *rcid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *phase = ag_rec_phase(a);
	if (!cid || !rcid || strcmp(rcid, cid) != 0) {
		result = "unknown_campaign";
	} else if (ag_phase_final(phase)) {
		result = "already_final";
	} else if (!strcmp(phase, AG_PH_INSTALLING) || !strcmp(phase, AG_PH_CHECKING)) {
		result = "too_late";
	} else if (ag_phase_worker(phase) && a->wstate == AG_W_RUNNING) {
		atomic_store(&a->cancel, true);
		result = "cancelled";
	} else {
		ag_rec_set_phase(a, AG_PH_CANCELLED);
		ag_save_locked(a);
		result = "cancelled";
		final = true;
	}
	if (g->prompt && cid && !strcmp(cid, g->prompt_cid))
		g->prompt = false;
	pthread_mutex_unlock(&a->lock);
	pq_log(PQ_LOG_INFO, AG_LOGC, "cancel of campaign %s: %s", cid ? cid : "?", result);
	json_t *r = ag_msg_new(a->o->vin, "command_ack", env->message_id, cid);
	if (r)
		json_object_set_new(r, "result", json_string(result));
	publish(a, "response", r, 1);
	ag_write_status(a);
	if (final) {
		cleanup_files(a);
		final_outcome(g, AG_OUT_CANCELLED);
	}
}

static void on_releases(agent_main *g, const json_t *m)
{
	json_t *rel = json_object_get(m, "releases");
	size_t i, mine = 0;
	json_t *r;
	json_array_foreach(rel, i, r)
	{
		const char *hw = ag_jstr(r, "hardware_id", VM_HW_MAX);
		for (size_t k = 0; hw && k < g->a.model.n_ecus; k++)
			if (!strcmp(g->a.model.ecus[k].hardware_id, hw)) {
				mine++;
				break;
			}
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "release announcement: %zu releases, %zu for this vehicle",
	       json_array_size(rel), mine);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void send_wake_up(agent_main *g)
{
	ag_agent *a = &g->a;
	json_t *m = ag_msg_new(a->o->vin, "vehicle_wake_up", NULL, NULL);
	if (!m)
		return;
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *vmg = ag_state_ecu(&a->st, "VMG");
	char bank[2] = {a->st.vmg_bank, '\0'};
	json_object_set_new(m, "boot_seq", json_integer(a->st.boot_seq));
	json_object_set_new(m, "vmg_info",
	                    json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "sw_version",
	                              vmg ? vmg->cur.version : a->model.vmg_version, "hw_version",
	                              a->model.vmg_hardware_id, "model", a->model.model, "bank",
	                              bank, "agent", "pqota-vehicle", "ecus",
	                              (json_int_t)a->model.n_ecus));
	pthread_mutex_unlock(&a->lock);
	publish(a, "wake_up", m, 1);
}

static void on_connected(agent_main *g)
{
	ag_mq_group(g->a.mq, g->a.mqtt_group, sizeof(g->a.mqtt_group));
	send_wake_up(g);
	ag_write_status(&g->a);
}

static void handle(agent_main *g, qitem *q)
{
	ag_agent *a = &g->a;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "oem/%s/", a->o->vin);
	bool broadcast = !strncmp(q->topic, "oem/broadcast/", 14);
	const char *sub =
	    !strncmp(q->topic, prefix, strlen(prefix)) ? q->topic + strlen(prefix) : NULL;
	json_error_t je;
	ag_env env;
	json_t *m = json_loadb(q->payload, q->len, JSON_REJECT_DUPLICATES, &je);
	if (!sub && !broadcast) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "message on %.80s dropped: not our topic", q->topic);
		goto out;
	}
	if (broadcast && !m)
		goto out; /* retained junk on a broadcast topic */
	if (ag_msg_check(m, a->o->vin, broadcast, &env) != PQ_OK) {
		pq_log(PQ_LOG_WARN, AG_LOGC, "message on %.80s dropped: %s", q->topic,
		       m ? pq_err_detail() : je.text);
		ag_event("rejected", json_pack("{s:s,s:s}", "topic", q->topic, "error",
		                               m ? pq_err_detail() : je.text));
		goto out;
	}
	if (ag_seen_check(&g->seen, env.message_id)) {
		pq_log(PQ_LOG_DEBUG, AG_LOGC, "duplicate %s %s ignored", env.msg_type,
		       env.message_id);
		goto out;
	}
	ag_event("received", json_pack("{s:s,s:s,s:s,s:s}", "topic", q->topic, "msg_type",
	                               env.msg_type, "message_id", env.message_id, "campaign_id",
	                               env.campaign_id ? env.campaign_id : ""));
	const char *t = env.msg_type;
	bool cmd = sub && !strcmp(sub, "command");
	if (broadcast && !strcmp(t, "release_announcement"))
		on_releases(g, m);
	else if (cmd && !strcmp(t, "request_vci"))
		ag_send_vci(a, a->zc, env.message_id);
	else if (cmd && !strcmp(t, "request_ota_readiness"))
		on_readiness(g, m, &env);
	else if (cmd && !strcmp(t, "cancel"))
		on_cancel(g, &env);
	else if (sub && !strcmp(sub, "ota/campaign") && !strcmp(t, "ota_campaign"))
		on_campaign(g, m, &env);
	else if (sub && !strcmp(sub, "ota/metadata") && !strcmp(t, "ota_campaign_metadata"))
		on_metadata(g, m, &env);
	else if (sub && !strcmp(sub, "diag/request") && !strcmp(t, "diag_request"))
		publish(a, "diag/response", ag_diag(a, a->zc, m, &env), 1);
	else
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s on %.80s ignored", t, q->topic);
out:
	json_decref(m);
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int need_file(char *out, size_t len, const char *pki, const char *vin, const char *rel)
{
	int n = vin ? snprintf(out, len, "%s/vehicles/%s/%s", pki, vin, rel)
	            : snprintf(out, len, "%s/%s", pki, rel);
	if (n < 0 || (size_t)n >= len)
		return pq_err_set(PQ_ERR_RANGE, "path too long");
	if (access(out, R_OK) != 0)
		return pq_err_set(PQ_ERR_NOTFOUND, "%s: %s%s", out, strerror(errno),
		                  vin ? " (make the identity with 'pqota keys vehicle VIN')" : "");
	return PQ_OK;
}

static const pq_profile *pki_profile(const char *pki)
{
	char p[PATH_MAX];
	json_error_t je;
	const pq_profile *prof = NULL;
	if (snprintf(p, sizeof(p), "%s/pki.json", pki) >= (int)sizeof(p))
		return pq_profile_by_id(PQ_PROFILE_DEFAULT);
	json_t *root = json_load_file(p, 0, &je);
	json_t *id = json_object_get(json_object_get(root, "profile"), "id");
	if (json_is_integer(id))
		prof = pq_profile_by_id((int)json_integer_value(id));
	json_decref(root);
	return prof ? prof : pq_profile_by_id(PQ_PROFILE_DEFAULT);
}

static int load_kem(const char *pki, const char *vin, const char *name, pq_alg want, pq_key **out)
{
	char p[PATH_MAX];
	int rc = need_file(p, sizeof(p), pki, vin, name);
	if (rc == PQ_OK)
		rc = pq_key_load(p, out);
	if (rc == PQ_OK && (pq_key_alg(*out) != want || !pq_key_has_private(*out))) {
		pq_key_free(*out);
		*out = NULL;
		rc = pq_err_set(PQ_ERR_INVAL, "%s is not a %s private key", p, pq_alg_name(want));
	}
	return rc;
}

/* The trusted roots: the state's, or provisioned from the options at the first start. */
static int provision_roots(ag_agent *a)
{
	const ag_opts *o = a->o;
	if (a->st.image_root && a->st.director_root) {
		if (o->image_root || o->director_root)
			pq_log(
			    PQ_LOG_INFO, AG_LOGC,
			    "--image-root/--director-root ignored: the state holds trusted roots");
		return PQ_OK;
	}
	if (!o->image_root || !o->director_root)
		return pq_err_set(
		    PQ_ERR_NOTFOUND,
		    "no trusted Uptane roots in %s: provision them at the first start "
		    "with --image-root FILE --director-root FILE (the image "
		    "repository's and the director's root.json)",
		    a->st.dir);
	char *ir = NULL, *dr = NULL;
	size_t il = 0, dl = 0;
	const char *files[2] = {o->image_root, o->director_root};
	char **bufs[2] = {&ir, &dr};
	size_t *lens[2] = {&il, &dl};
	int rc = PQ_OK;
	for (int i = 0; rc == PQ_OK && i < 2; i++) {
		rc = pq_file_read(files[i], UP_MAX_ROOT, bufs[i], lens[i]);
		json_error_t je;
		json_t *j = rc == PQ_OK ? json_loadb(*bufs[i], *lens[i], 0, &je) : NULL;
		const char *type =
		    json_string_value(json_object_get(json_object_get(j, "signed"), "_type"));
		if (rc == PQ_OK && (!type || strcmp(type, "root") != 0))
			rc = pq_err_set(PQ_ERR_FORMAT, "not an Uptane root.json");
		json_decref(j);
		if (rc != PQ_OK)
			rc = pq_err_wrap(rc, "%s", files[i]);
	}
	if (rc == PQ_OK)
		rc = ag_state_set_roots(&a->st, ir, il, dr, dl);
	if (rc == PQ_OK)
		pq_log(PQ_LOG_INFO, AG_LOGC, "trusted Uptane roots provisioned from %s and %s",
		       o->image_root, o->director_root);
	free(ir);
	free(dr);
	return rc;
}

static int setup(agent_main *g)
{
	ag_agent *a = &g->a;
	const ag_opts *o = a->o;
	char host[256], sim_dir[PATH_MAX];
	int port = 0;
	int rc = pq_vin_check(o->vin);
	if (rc != PQ_OK)
		return rc;
	if (!o->pki || !o->broker || !o->state_dir)
		return pq_err_set(PQ_ERR_INVAL, "--pki, --broker and --state are required");
	const char *colon = strrchr(o->broker, ':');
	char *end = NULL;
	if (colon)
		port = (int)strtol(colon + 1, &end, 10);
	if (!colon || colon == o->broker || !end || *end || port < 1 || port > 65535 ||
	    (size_t)(colon - o->broker) >= sizeof(host))
		return pq_err_set(PQ_ERR_INVAL, "--broker %s is not HOST:PORT", o->broker);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - o->broker), o->broker);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}

	if ((rc = need_file(a->ca, sizeof(a->ca), o->pki, NULL, "ca/ca.crt")) != PQ_OK ||
	    (rc = need_file(a->cert, sizeof(a->cert), o->pki, o->vin, "client.crt")) != PQ_OK ||
	    (rc = need_file(a->key, sizeof(a->key), o->pki, o->vin, "client.key")) != PQ_OK ||
	    (rc = load_kem(o->pki, o->vin, "kem-x25519.key", PQ_ALG_X25519, &a->kem_x25519)) !=
	        PQ_OK ||
	    (rc = load_kem(o->pki, o->vin, "kem-ml-kem-768.key", PQ_ALG_MLKEM768, &a->kem_mlkem)) !=
	        PQ_OK)
		return rc;
	a->profile = pki_profile(o->pki);

	rc = o->model_path ? vm_model_load(o->model_path, o->vin, &a->model)
	                   : vm_model_default(o->vin, &a->model);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "vehicle model");
	a->vstate = (ag_vstate){a->model.battery_pct, a->model.parked, a->model.ignition_off,
	                        a->model.storage_free};
	if (o->battery_pct >= 0)
		a->vstate.battery_pct = o->battery_pct;
	if (o->parked >= 0)
		a->vstate.parked = o->parked;
	if (o->ignition_off >= 0)
		a->vstate.ignition_off = o->ignition_off;
	if (o->storage_free >= 0)
		a->vstate.storage_free = (uint64_t)o->storage_free;

	rc = ag_state_load(o->state_dir, &a->model, &a->st);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "state");
	if ((rc = provision_roots(a)) != PQ_OK)
		return rc;
	a->st.boot_seq++;
	if ((rc = ag_state_save(&a->st)) != PQ_OK)
		return pq_err_wrap(rc, "state");

	if ((rc = ag_http_global_init()) != PQ_OK)
		return rc;
	sim_faults f = {o->fail_program, o->corrupt_block, o->deny_security, o->slow_flash};
	if ((rc = ag_path(sim_dir, sizeof(sim_dir), o->state_dir, "sim")) != PQ_OK ||
	    (rc = pq_mkdirs(sim_dir, 0700)) != PQ_OK)
		return rc;
	if ((rc = sim_start(&a->model, sim_dir, &f, &a->sim)) != PQ_OK)
		return pq_err_wrap(rc, "vehicle simulation");

	int fds[2];
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return pq_err_set(PQ_ERR_IO, "pipe: %s", strerror(errno));
	g->wake_rd = fds[0];
	a->wake_fd = fds[1];
	g_wake_wr = fds[1];

	pq_log(PQ_LOG_INFO, AG_LOGC,
	       "vehicle %s: %zu zones, %zu ECUs, boot %lld, profile %s (group %s), broker %s",
	       o->vin, a->model.n_zones, a->model.n_ecus, (long long)a->st.boot_seq,
	       a->profile->name, a->profile->tls_group, o->broker);
	ag_mq_opts mo = {.vin = o->vin,
	                 .host = host,
	                 .port = port,
	                 .ca = a->ca,
	                 .cert = a->cert,
	                 .key = a->key,
	                 .profile = a->profile,
	                 .on_message = on_mq_message,
	                 .on_connect = on_mq_connect,
	                 .user = g};
	return ag_mq_start(&mo, &a->mq);
}

/* A campaign the last run left in the middle continues now. */
static void resume(agent_main *g)
{
	ag_agent *a = &g->a;
	pthread_mutex_lock(&a->lock);
	const char *phase = ag_rec_phase(a);
	bool work = ag_phase_worker(phase);
	bool ask = phase && !strcmp(phase, AG_PH_OFFERED);
	const char *cid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	const char *mid = json_string_value(json_object_get(a->st.campaign, "offer_message_id"));
	if (ask) {
		snprintf(g->prompt_cid, sizeof(g->prompt_cid), "%s", cid ? cid : "");
		snprintf(g->prompt_mid, sizeof(g->prompt_mid), "%s", mid ? mid : "");
	}
	if (work)
		pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s continues (%s)", cid ? cid : "?", phase);
	pthread_mutex_unlock(&a->lock);
	if (work && ag_worker_start(a) != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "%s", pq_err_detail());
	if (ask && a->o->consent == AG_CONSENT_INTERACTIVE) {
		g->prompt = true;
		print_prompt(g);
	}
}

static void loop(agent_main *g)
{
	while (!g_stop && !g->done) {
		struct pollfd p[2] = {{.fd = g->wake_rd, .events = POLLIN},
		                      {.fd = STDIN_FILENO, .events = POLLIN}};
		nfds_t n = g->prompt && !g->stdin_eof ? 2 : 1;
		int r = poll(p, n, 1000);
		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			char buf[64];
			while (read(g->wake_rd, buf, sizeof(buf)) > 0)
				;
		}
		if (n == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			read_stdin(g);
		qitem *q;
		while (!g_stop && !g->done && (q = dequeue(g))) {
			if (q->topic)
				handle(g, q);
			else
				on_connected(g);
			free(q->topic);
			free(q->payload);
			free(q);
		}
		worker_reap(g);
	}
}

static void teardown(agent_main *g)
{
	ag_agent *a = &g->a;
	atomic_store(&a->stopping, true);
	if (a->wstate != AG_W_IDLE) {
		pthread_join(a->worker, NULL);
		a->wstate = AG_W_IDLE;
	}
	ag_mq_stop(a->mq);
	a->mq = NULL;
	for (int z = 1; z <= VM_ZONES_MAX; z++)
		ag_zone_close(a->zc, z);
	sim_stop(a->sim);
	a->sim = NULL;
	if (a->st.dir[0]) {
		pthread_mutex_lock(&a->lock);
		ag_save_locked(a);
		pthread_mutex_unlock(&a->lock);
		ag_write_status(a);
	}
	qitem *q;
	while ((q = dequeue(g))) {
		free(q->topic);
		free(q->payload);
		free(q);
	}
	g_wake_wr = -1;
	if (g->wake_rd >= 0)
		close(g->wake_rd);
	if (a->wake_fd >= 0)
		close(a->wake_fd);
	ag_state_free(&a->st);
	vm_model_free(&a->model);
	pq_key_free(a->kem_x25519);
	pq_key_free(a->kem_mlkem);
}

int ag_run(const ag_opts *o, ag_outcome *outcome)
{
	agent_main *g = calloc(1, sizeof(*g));
	*outcome = AG_OUT_NONE;
	if (!g)
		return pq_err_set(PQ_ERR_NOMEM, "agent");
	g->a.o = o;
	g->wake_rd = -1;
	g->a.wake_fd = -1;
	pthread_mutex_init(&g->a.lock, NULL);
	pthread_mutex_init(&g->qlock, NULL);
	g_stop = 0;
	int rc = ag_log_open(o->log_path, o->log_level);
	if (rc == PQ_OK) {
		rc = setup(g);
		if (rc == PQ_OK) {
			ag_event("started", json_pack("{s:s,s:I}", "vin", o->vin, "boot_seq",
			                              (json_int_t)g->a.st.boot_seq));
			ag_write_status(&g->a);
			resume(g);
			loop(g);
			*outcome = g->outcome;
			ag_event("stopped", json_pack("{s:i}", "outcome", (int)g->outcome));
		}
		char keep[AG_ERR_MAX];
		snprintf(keep, sizeof(keep), "%s", pq_err_detail());
		teardown(g);
		if (rc != PQ_OK)
			pq_err_set(rc, "%s", keep);
		ag_log_close();
	}
	pthread_mutex_destroy(&g->a.lock);
	pthread_mutex_destroy(&g->qlock);
	free(g);
	return rc;
}
