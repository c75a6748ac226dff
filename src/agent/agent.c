/* agent.c: ag_run, the VMG agent's set-up, message queue and main loop (docs/vehicle.md,
 * "The agent").
 *
 * Threads: libmosquitto's (MQTT I/O; its callbacks only queue messages), the main thread
 * (this loop: dispatches queued messages (handle.c), answers commands, consent (consent.c),
 * readiness, VCI and diagnostics over its own zone connections), and the campaign worker
 * (update.c, install.c), which reports through ag_status_msg. The state is shared under
 * a->lock. */
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
#include "core/notify.h"
#include "core/time.h"
#include "crypto/pki.h"
#include "uptane/repo.h"
#include "vehicle/sim.h"

#define QUEUE_MAX 1024

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

struct ag_qitem {
	char *topic; /* NULL: "connected" */
	char *payload;
	size_t len;
	struct ag_qitem *next;
};

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

/* The "sent" event of message m on sub: its topic, type and the members that tell what it
 * said. NULL when out of memory. */
static json_t *sent_event(const char *sub, const json_t *m, const char *type)
{
	static const char *const keys[] = {"message_id", "correlation_id", "campaign_id", "ecu_id",
	                                   "decision",   "retry_after_s",  "ready",       "reason",
	                                   "result",     "error_code",     "progress",    "status"};
	json_t *f = json_pack("{s:s,s:s}", "topic", sub, "msg_type", type ? type : "");
	for (size_t i = 0; f && i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(m, keys[i]);
		if (v && ag_jset(f, keys[i], json_incref(v)) != PQ_OK) {
			json_decref(f);
			f = NULL;
		}
	}
	return f;
}

void ag_publish(ag_agent *a, const char *sub, json_t *m, int qos)
{
	if (!m) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "a message on %s not sent: out of memory", sub);
		return;
	}
	const char *type = json_string_value(json_object_get(m, "msg_type"));
	if (ag_mq_publish(a->mq, sub, m, qos) != PQ_OK)
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s not sent: %s", type ? type : sub, pq_err_detail());
	ag_event("sent", sent_event(sub, m, type));
	json_decref(m);
}

void ag_status_msg(ag_agent *a, json_t *m)
{
	ag_publish(a, "ota/status", m, 1);
}

void ag_send_vci(ag_agent *a, doipc **zc, const char *correlation_id)
{
	doipc *own[VM_ZONES_MAX + 1] = {NULL};
	json_t *body = ag_collect_vci(a, zc ? zc : own);
	if (!zc)
		for (int z = 1; z <= VM_ZONES_MAX; z++)
			ag_zone_close(own, z);
	json_t *m = ag_msg_new(a->o->vin, "vci_report", correlation_id, NULL);
	if (m && ag_jmerge(m, body, "vci_report") != PQ_OK) {
		json_decref(m);
		m = NULL;
	} else if (!m) {
		json_decref(body);
	}
	ag_publish(a, "vci", m, 1);
}

/* ---- the message queue (filled on libmosquitto's thread) -------------------------------- */

static void qitem_free(ag_qitem *q)
{
	free(q->topic);
	free(q->payload);
	free(q);
}

static void enqueue(ag_main *g, const char *topic, const void *payload, size_t len)
{
	ag_qitem *q = calloc(1, sizeof(*q));
	if (q && topic) {
		q->topic = strdup(topic);
		q->payload = malloc(len + 1);
		if (!q->topic || !q->payload) {
			qitem_free(q);
			q = NULL;
		}
	}
	if (!q) {
		pq_log(PQ_LOG_ERROR, AG_LOGC, "message on %.80s dropped: out of memory",
		       topic ? topic : "(connect)");
		return;
	}
	if (topic) {
		memcpy(q->payload, payload, len);
		q->payload[len] = '\0';
		q->len = len;
	}
	pthread_mutex_lock(&g->qlock);
	if (g->qlen >= QUEUE_MAX) {
		pthread_mutex_unlock(&g->qlock);
		pq_log(PQ_LOG_WARN, AG_LOGC, "message queue full: message on %.80s dropped",
		       topic ? topic : "(connect)");
		qitem_free(q);
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

static ag_qitem *dequeue(ag_main *g)
{
	pthread_mutex_lock(&g->qlock);
	ag_qitem *q = g->head;
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

void ag_final_outcome(ag_main *g, ag_outcome o)
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

void ag_cleanup_files(ag_agent *a)
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

void ag_worker_reap(ag_main *g)
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
		ag_cleanup_files(a);
		ag_final_outcome(g, a->wout);
	}
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

/* HOST:PORT (HOST may be a bracketed IPv6 address) into host[256] and *port. */
static int parse_broker(const char *broker, char *host, int *port)
{
	const char *colon = strrchr(broker, ':');
	char *end = NULL;
	if (colon)
		*port = (int)strtol(colon + 1, &end, 10);
	if (!colon || colon == broker || !end || *end || *port < 1 || *port > 65535 ||
	    (size_t)(colon - broker) >= 256)
		return pq_err_set(PQ_ERR_INVAL, "--broker %s is not HOST:PORT", broker);
	snprintf(host, 256, "%.*s", (int)(colon - broker), broker);
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	return PQ_OK;
}

/* The vehicle's identity from the PKI: CA, certificate and key, KEM keys, profile. */
static int load_identity(ag_agent *a)
{
	const ag_opts *o = a->o;
	int rc;
	if ((rc = need_file(a->ca, sizeof(a->ca), o->pki, NULL, "ca/ca.crt")) != PQ_OK ||
	    (rc = need_file(a->cert, sizeof(a->cert), o->pki, o->vin, "client.crt")) != PQ_OK ||
	    (rc = need_file(a->key, sizeof(a->key), o->pki, o->vin, "client.key")) != PQ_OK ||
	    (rc = load_kem(o->pki, o->vin, "kem-x25519.key", PQ_ALG_X25519, &a->kem_x25519)) !=
	        PQ_OK ||
	    (rc = load_kem(o->pki, o->vin, "kem-ml-kem-768.key", PQ_ALG_MLKEM768, &a->kem_mlkem)) !=
	        PQ_OK)
		return rc;
	a->profile = pki_profile(o->pki);
	return PQ_OK;
}

/* The vehicle model and its simulated state, with the options' overrides. */
static int load_vehicle(ag_agent *a)
{
	const ag_opts *o = a->o;
	int rc = o->model_path ? vm_model_load(o->model_path, o->vin, &a->model)
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
	return PQ_OK;
}

/* The state directory: state.json, the trusted roots, this boot counted. */
static int load_state(ag_agent *a)
{
	int rc = ag_state_load(a->o->state_dir, &a->model, &a->st);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "state");
	if ((rc = provision_roots(a)) != PQ_OK)
		return rc;
	a->st.boot_seq++;
	if ((rc = ag_state_save(&a->st)) != PQ_OK)
		return pq_err_wrap(rc, "state");
	return PQ_OK;
}

/* The simulated zone gateways and ECUs, in STATE/sim. */
static int start_sim(ag_agent *a)
{
	const ag_opts *o = a->o;
	char sim_dir[PATH_MAX];
	sim_faults f = {o->fail_program, o->corrupt_block, o->deny_security, o->slow_flash};
	int rc;
	if ((rc = ag_path(sim_dir, sizeof(sim_dir), o->state_dir, "sim")) != PQ_OK ||
	    (rc = pq_mkdirs(sim_dir, 0700)) != PQ_OK)
		return rc;
	if ((rc = sim_start(&a->model, sim_dir, &f, &a->sim)) != PQ_OK)
		return pq_err_wrap(rc, "vehicle simulation");
	return PQ_OK;
}

static int check_opts(const ag_opts *o)
{
	int rc = pq_vin_check(o->vin);
	if (rc != PQ_OK)
		return rc;
	if (!o->pki || !o->broker || !o->state_dir)
		return pq_err_set(PQ_ERR_INVAL, "--pki, --broker and --state are required");
	if (o->consent == AG_CONSENT_INTERACTIVE && (!o->consent_fn || o->consent_fd < 0))
		return pq_err_set(PQ_ERR_INVAL,
		                  "interactive consent needs a consent callback and its input");
	return PQ_OK;
}

static int setup(ag_main *g)
{
	ag_agent *a = &g->a;
	const ag_opts *o = a->o;
	char host[256];
	int port = 0, fds[2], rc;
	if ((rc = check_opts(o)) != PQ_OK || (rc = parse_broker(o->broker, host, &port)) != PQ_OK ||
	    (rc = load_identity(a)) != PQ_OK || (rc = load_vehicle(a)) != PQ_OK ||
	    (rc = load_state(a)) != PQ_OK || (rc = ag_http_global_init()) != PQ_OK ||
	    (rc = start_sim(a)) != PQ_OK)
		return rc;
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
static void resume(ag_main *g)
{
	ag_agent *a = &g->a;
	pthread_mutex_lock(&a->lock);
	const char *phase = ag_rec_phase(a);
	bool work = ag_phase_worker(phase);
	const char *cid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	if (work)
		pq_log(PQ_LOG_INFO, AG_LOGC, "campaign %s continues (%s)", cid ? cid : "?", phase);
	pthread_mutex_unlock(&a->lock);
	if (work && ag_worker_start(a) != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "%s", pq_err_detail());
	ag_consent_resume(g);
}

/* A notification to the service manager (core/notify.h); a failure is logged. */
static void notify(const char *state)
{
	if (pq_notify(state) != PQ_OK)
		pq_log(PQ_LOG_WARN, AG_LOGC, "service manager: %s", pq_err_detail());
}

/* The loop's turns: at most a second apart, a quarter of the watchdog interval with one.
 * Each turn pings the watchdog: the ping proves the loop handles messages. */
static void loop(ag_main *g)
{
	int64_t wd = (int64_t)(pq_notify_watchdog_usec() / 1000);
	int turn = wd > 0 && wd / 4 < 1000 ? (int)(wd / 4 > 10 ? wd / 4 : 10) : 1000;
	int64_t pinged = 0;
	while (!g_stop && !g->done) {
		struct pollfd p[2] = {{.fd = g->wake_rd, .events = POLLIN},
		                      {.fd = g->a.o->consent_fd, .events = POLLIN}};
		nfds_t n = g->asking ? 2 : 1;
		if (wd > 0 && pq_mono_ms() - pinged >= turn) {
			notify("WATCHDOG=1");
			pinged = pq_mono_ms();
		}
		int r = poll(p, n, turn);
		if (r < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			char buf[64];
			while (read(g->wake_rd, buf, sizeof(buf)) > 0)
				;
		}
		if (n == 2 && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)))
			ag_consent_input(g);
		ag_qitem *q;
		while (!g_stop && !g->done && (q = dequeue(g))) {
			if (q->topic)
				ag_handle(g, q->topic, q->payload, q->len);
			else
				ag_on_connected(g);
			qitem_free(q);
		}
		ag_worker_reap(g);
		ag_telemetry_tick(g);
	}
}

static void teardown(ag_main *g)
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
	ag_qitem *q;
	while ((q = dequeue(g)))
		qitem_free(q);
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

/* Set-up, the loop until the stop (or --once's outcome), teardown; the set-up's error. */
static int run(ag_main *g, ag_outcome *outcome)
{
	const ag_opts *o = g->a.o;
	char keep[AG_ERR_MAX];
	int rc = setup(g);
	if (rc == PQ_OK) {
		ag_event("started", json_pack("{s:s,s:I}", "vin", o->vin, "boot_seq",
		                              (json_int_t)g->a.st.boot_seq));
		ag_write_status(&g->a);
		resume(g);
		notify("READY=1\nSTATUS=running");
		loop(g);
		notify("STOPPING=1");
		*outcome = g->outcome;
		ag_event("stopped", json_pack("{s:i}", "outcome", (int)g->outcome));
	}
	snprintf(keep, sizeof(keep), "%s", pq_err_detail());
	teardown(g);
	if (rc != PQ_OK)
		pq_err_set(rc, "%s", keep);
	return rc;
}

int ag_run(const ag_opts *o, ag_outcome *outcome)
{
	*outcome = AG_OUT_NONE;
	ag_main *g = calloc(1, sizeof(*g));
	if (!g)
		return pq_err_set(PQ_ERR_NOMEM, "agent");
	g->a.o = o;
	g->wake_rd = -1;
	g->a.wake_fd = -1;
	pthread_mutex_init(&g->a.lock, NULL);
	pthread_mutex_init(&g->qlock, NULL);
	g_stop = 0;
	int rc = ag_log_open(o->log_path);
	if (rc == PQ_OK) {
		rc = run(g, outcome);
		ag_log_close();
	}
	pthread_mutex_destroy(&g->a.lock);
	pthread_mutex_destroy(&g->qlock);
	free(g);
	return rc;
}
