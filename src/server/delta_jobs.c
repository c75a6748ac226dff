/* delta_jobs.c: the delta worker (releases_int.h rel_jobs). One thread with its own store
 * connection takes the oldest queued delta (store_release_delta_claim), makes it and ends it
 * ready or failed, so that no HTTP worker waits for a delta: computed ones with
 * pkg_build_leaf from the base release's image, an operator's with rel_delta_adopt (applied
 * to the base release's image, it must give the release's image exactly). Progress goes to
 * the store and out as live "release_delta" events at most once per percent or second.
 * Jobs live in the store: the queue is its queued rows (bounded by the routes,
 * REL_DELTA_QUEUE_MAX), so a restart loses none; a running job when the server stops is
 * cancelled (the package library checks its pkg_progress.cancel every few MiB, cleans up and
 * returns PQ_ERR_CANCELLED) and queued again at the next start. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "core/uuid.h"
#include "server/releases_int.h"
#include "server/server_int.h"

#define LOGC           "deltas"
#define JOBS_POLL_MS   5000 /* also look for jobs another instance queued */
#define HOLD_POLL_MS   50
#define EVENT_EVERY_MS 1000
#define DELTA_LEVEL    19

struct rel_jobs {
	srv *s;
	store *db;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, woken;  /* under mu */
	atomic_int cancel; /* set when stopping: the package library gives up the job */
};

/* A job's progress reporter (pkg_progress's user). */
typedef struct {
	rel_jobs *j;
	store_release_delta *d;
	int64_t last_ms;
	int last_pct;
} job_progress;

static bool stopping(rel_jobs *j)
{
	pthread_mutex_lock(&j->mu);
	bool stop = j->stop;
	pthread_mutex_unlock(&j->mu);
	return stop;
}

/* Stores and announces progress: on each new percent, or after EVENT_EVERY_MS. */
static void on_progress(uint64_t done, uint64_t total, void *user)
{
	job_progress *p = user;
	int pct = total ? (int)(done * 100 / total) : -1;
	int64_t now = pq_real_ms();
	if (pct != p->last_pct || now - p->last_ms >= EVENT_EVERY_MS) {
		p->last_pct = pct;
		p->last_ms = now;
		p->d->progress_done = (int64_t)done;
		p->d->progress_total = (int64_t)total;
		p->d->updated_ms = now;
		if (store_release_delta_progress(p->j->db, p->d->release_id, p->d->base_version,
		                                 (int64_t)done, (int64_t)total, now) == PQ_OK)
			rel_delta_event(p->j->s, p->d);
	}
}

/* For tests only: holds the job while the file REL_DELTA_HOLD_ENV names exists. */
static void hold(rel_jobs *j)
{
	const char *f = getenv(REL_DELTA_HOLD_ENV);
	while (f && f[0] && access(f, F_OK) == 0 && !stopping(j))
		pq_sleep_ms(HOLD_POLL_MS);
}

/* The package options of r's delta from d's base (base: its image's path). */
static int delta_opts(const store_release *r, const store_release_delta *d, const char *base,
                      job_progress *p, pkg_leaf_opts *o)
{
	struct stat st;
	*o =
	    (pkg_leaf_opts){.compression = SWPG_COMP_ZSTD, .level = DELTA_LEVEL, .base_path = base};
	o->progress = (pkg_progress){.fn = on_progress, .user = p, .cancel = &p->j->cancel};
	int rc = swpg_ecu_parse(r->ecu_id, &o->ecu);
	if (rc == PQ_OK)
		rc = swpg_type_parse(r->software_type, &o->type);
	if (rc == PQ_OK)
		rc = rel_swpg_version(r->version, &o->version);
	if (rc == PQ_OK)
		rc = rel_swpg_version(d->base_version, &o->base_version);
	if (rc == PQ_OK && stat(base, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "the base release's image (%.12s) is missing: %s",
		                d->base_sha256, strerror(errno));
	return rc;
}

/* Computes the delta (PQ_ERR_CANCELLED when the server stops meanwhile). */
static int compute(rel_jobs *j, const store_release *r, store_release_delta *d, job_progress *p)
{
	char img[PATH_MAX], base[PATH_MAX];
	pkg_leaf_opts o;
	int rc = rel_data_path(j->s, "images", r->image_sha256, img);
	if (rc == PQ_OK)
		rc = rel_data_path(j->s, "images", d->base_sha256, base);
	if (rc == PQ_OK)
		rc = delta_opts(r, d, base, p, &o);
	if (rc != PQ_OK)
		return rc;
	return rel_build_into_store(j->s, img, &o, d->file_sha256, &d->file_size);
}

/* Links the checked delta at tmp into DATA/files/<sha>, and removes tmp. */
static int keep_checked(rel_jobs *j, const char *tmp, const pkg_unit *u, store_release_delta *d)
{
	char dst[PATH_MAX];
	pq_hex_encode(u->sha256, 32, d->file_sha256);
	d->file_size = (int64_t)u->size;
	int rc = rel_data_path(j->s, "files", d->file_sha256, dst);
	if (rc == PQ_OK && link(tmp, dst) != 0 && errno != EEXIST)
		rc = pq_err_set(PQ_ERR_IO, "storing the delta package: %s", strerror(errno));
	unlink(tmp);
	return rc;
}

/* Checks the operator's delta package (d->input) against the base release's image and
 * r's image, and keeps the re-written package (PQ_ERR_CANCELLED when the server stops
 * meanwhile: the input stays for the next start). The input is removed once checked. */
static int check_uploaded(rel_jobs *j, const store_release *r, store_release_delta *d,
                          job_progress *p)
{
	char in[PATH_MAX], base[PATH_MAX], scratch[PATH_MAX], tmp[PATH_MAX], id[PQ_UUID_LEN];
	char name[64];
	pkg_leaf_opts o;
	pkg_unit u;
	rel_delta_want w = {.base_image = base,
	                    .base_sha = d->base_sha256,
	                    .full_size = (uint64_t)r->image_size,
	                    .full_sha = r->image_sha256,
	                    .scratch = scratch,
	                    .progress = {.fn = on_progress, .user = p, .cancel = &j->cancel}};
	int rc = rel_data_path(j->s, REL_DELTA_DIR, d->input, in);
	if (rc == PQ_OK)
		rc = rel_data_path(j->s, "images", d->base_sha256, base);
	if (rc == PQ_OK)
		rc = delta_opts(r, d, base, p, &o);
	if (rc == PQ_OK)
		rc = pq_uuid4(id);
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), "delta-%s.img", id);
		rc = rel_data_path(j->s, REL_TMP_DIR, name, scratch);
	}
	if (rc == PQ_OK) {
		snprintf(name, sizeof(name), ".delta-%s", id);
		rc = rel_data_path(j->s, "files", name, tmp);
	}
	if (rc != PQ_OK)
		return rc;
	rc = rel_delta_adopt(in, &w, &o, tmp, &u);
	if (rc == PQ_ERR_CANCELLED)
		return rc;
	if (rc == PQ_OK)
		rc = keep_checked(j, tmp, &u, d);
	if (unlink(in) != 0 && errno != ENOENT)
		pq_log(PQ_LOG_WARN, LOGC, "%s: %s", in, strerror(errno));
	return rc;
}

/* Makes the delta of release r and, with downloads.encrypt, its encrypted copy. */
static int make(rel_jobs *j, const store_release *r, store_release_delta *d, job_progress *p)
{
	store_package_key k;
	int rc =
	    strcmp(d->source, "uploaded") == 0 ? check_uploaded(j, r, d, p) : compute(j, r, d, p);
	if (rc == PQ_OK && srv_get_options(j->s)->downloads_encrypt)
		rc = srv_package_key(j->s, j->db, d->file_sha256, true, pq_real_ms(), &k);
	memset(&k, 0, sizeof(k));
	return rc;
}

/* Runs the claimed (running) job d to its end: ready or failed, stored and announced. */
static void run_job(rel_jobs *j, store_release_delta *d)
{
	store_release r;
	job_progress p = {.j = j, .d = d, .last_ms = pq_real_ms(), .last_pct = -1};
	rel_delta_event(j->s, d);
	hold(j);
	if (stopping(j))
		return; /* stays running: queued again at the next start */
	int rc = store_release_get(j->db, d->release_id, &r);
	if (rc == PQ_OK) {
		pq_log(PQ_LOG_INFO, LOGC, "release %s: %s delta from %s", r.id,
		       strcmp(d->source, "uploaded") == 0 ? "checking the operator's" : "computing",
		       d->base_version);
		rc = make(j, &r, d, &p);
		store_release_clear(&r);
	}
	if (rc == PQ_ERR_CANCELLED) {
		pq_log(PQ_LOG_INFO, LOGC,
		       "release %s: delta from %s stopped; it resumes at the next "
		       "start",
		       d->release_id, d->base_version);
		return; /* stays running: queued again at the next start */
	}
	d->state = rc == PQ_OK ? STORE_DELTA_READY : STORE_DELTA_FAILED;
	if (rc == PQ_OK) {
		d->error[0] = '\0';
		d->progress_done = d->progress_total = d->file_size;
	} else {
		snprintf(d->error, sizeof(d->error), "%s", pq_err_detail());
		d->file_sha256[0] = '\0';
		d->file_size = 0;
	}
	d->input[0] = '\0';
	d->updated_ms = pq_real_ms();
	int frc = store_release_delta_finish(j->db, d, d->updated_ms);
	if (frc == PQ_OK)
		rel_delta_event(j->s, d);
	pq_log(frc == PQ_OK && rc == PQ_OK ? PQ_LOG_INFO : PQ_LOG_WARN, LOGC,
	       "release %s: delta from %s %s%s%s", d->release_id, d->base_version,
	       frc != PQ_OK ? "not stored: " : store_delta_state_name(d->state),
	       frc != PQ_OK ? pq_err_detail() : (rc == PQ_OK ? "" : ": "),
	       frc == PQ_OK && rc != PQ_OK ? d->error : "");
}

/* Waits until woken, stopped or JOBS_POLL_MS passed. */
static void wait_for_work(rel_jobs *j)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOBS_POLL_MS / 1000;
	pthread_mutex_lock(&j->mu);
	while (!j->woken && !j->stop)
		if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0)
			break;
	j->woken = false;
	pthread_mutex_unlock(&j->mu);
}

static void *jobs_main(void *arg)
{
	rel_jobs *j = arg;
	while (!stopping(j)) {
		store_release_delta d;
		bool found = false;
		int rc = store_release_delta_claim(j->db, pq_real_ms(), &d, &found);
		if (rc != PQ_OK)
			pq_log(PQ_LOG_WARN, LOGC, "taking a delta job: %s", pq_err_detail());
		if (rc == PQ_OK && found)
			run_job(j, &d);
		else
			wait_for_work(j);
	}
	return NULL;
}

int rel_jobs_new(srv *s, rel_jobs **out)
{
	int64_t n = 0;
	*out = NULL;
	rel_jobs *j = calloc(1, sizeof(*j));
	if (!j)
		return pq_err_set(PQ_ERR_NOMEM, "delta worker");
	j->s = s;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	int rc = store_open(&srv_get_options(s)->store, &j->db);
	if (rc == PQ_OK)
		rc = store_release_delta_requeue(j->db, pq_real_ms(), &n);
	if (rc != PQ_OK) {
		rel_jobs_free(j);
		return pq_err_wrap(rc, "delta worker");
	}
	if (n > 0)
		pq_log(PQ_LOG_INFO, LOGC, "%lld unfinished delta job(s) queued again",
		       (long long)n);
	*out = j;
	return PQ_OK;
}

int rel_jobs_start(rel_jobs *j)
{
	if (pthread_create(&j->thread, NULL, jobs_main, j) != 0)
		return pq_err_set(PQ_ERR_IO, "delta worker thread");
	j->started = true;
	return PQ_OK;
}

void rel_jobs_wake(srv *s)
{
	rel_jobs *j = s->jobs;
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	j->woken = true;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

void rel_jobs_free(rel_jobs *j)
{
	if (!j)
		return;
	if (j->started) {
		pthread_mutex_lock(&j->mu);
		j->stop = true;
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
		atomic_store(&j->cancel, 1);
		pthread_join(j->thread, NULL);
	}
	store_close(j->db);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}
