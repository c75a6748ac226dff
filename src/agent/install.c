/* install.c: flashing a verified campaign, all or nothing.
 *
 * installing  the readiness checks again, ota_installation_start, then the VMG's own image
 *             (written to its inactive bank in STATE/vmg/, then the bank switched), then
 *             the zones in parallel (one thread and one DoIP connection per zone; the ECUs
 *             of a zone in installation order) with tester_program; each ECU that switched
 *             is recorded at once, and its new image becomes its delta base (the previous
 *             one kept for rollback).
 * checking    a new VCI over UDS: every target ECU must run its to_version (and, for APP
 *             images, the image's SHA-256); then ota_installation_complete,
 *             ota_verification_complete and a vci_report.
 * Any failure in either rolls back every switched ECU (tester_rollback), the VMG bank and
 * the base images, and reports ota_rollback with the cause, then a vci_report.
 * A restart in the middle continues: ECUs recorded as installed are skipped, and an ECU
 * that already runs the target image (switched just before the crash) counts as done. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "pkg/swpg.h"

/* What one image needs for installation (from the metadata and the record). */
typedef struct {
	const ag_image *im;
	size_t idx;
	const vm_ecu *ecu; /* NULL for the VMG */
	tester_image ti;
	char path[PATH_MAX];
	int64_t release_counter;
	bool installed; /* before this run */
	bool switched;  /* switched in this run and not rolled back (whatever the record says) */
} inst_item;

typedef struct {
	ag_agent *a;
	inst_item *items;
	size_t n;
	atomic_bool failed;
	pthread_mutex_t err_lock;
	char failed_ecu[VM_ID_MAX + 1];
	char error[AG_ERR_MAX];
} inst_run;

typedef struct {
	inst_run *run;
	int zone;
	doipc *zc[VM_ZONES_MAX + 1];
} zone_worker;

/* The first failure wins: it is the cause reported. */
static void set_error(inst_run *r, const char *ecu, const char *detail)
{
	pthread_mutex_lock(&r->err_lock);
	if (!atomic_load(&r->failed)) {
		snprintf(r->failed_ecu, sizeof(r->failed_ecu), "%s", ecu);
		snprintf(r->error, sizeof(r->error), "%s", detail);
		atomic_store(&r->failed, true);
	}
	pthread_mutex_unlock(&r->err_lock);
}

static void progress_msg(ag_agent *a, const char *ecu_id, int pct)
{
	json_t *m = ag_campaign_msg(a, "ota_installation_progress", ecu_id);
	if (m && ag_jset(m, "progress", json_integer(pct)) != PQ_OK) {
		json_decref(m);
		m = NULL;
	}
	ag_status_msg(a, m);
}

/* Records an ECU as switched to the item's image: its new base, the old one kept. A record
 * that cannot say so fails the installation (the rollback knows from it->switched). */
static int mark_installed(ag_agent *a, inst_item *it)
{
	it->switched = true;
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *es = ag_state_ecu(&a->st, it->im->ecu_id);
	if (es) {
		es->prev = es->cur;
		memset(&es->cur, 0, sizeof(es->cur));
		es->cur.present = true;
		snprintf(es->cur.path, sizeof(es->cur.path), "%s", it->path);
		memcpy(es->cur.sha256, it->ti.sha256, 32);
		es->cur.len = it->ti.len;
		snprintf(es->cur.version, sizeof(es->cur.version), "%s", it->im->to_version);
		es->cur.release_counter = it->release_counter;
	}
	int rc = ag_jset(ag_rec_image(a, it->idx), "installed", json_true());
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	ag_write_status(a);
	return rc;
}

typedef struct {
	ag_agent *a;
	const char *ecu_id;
	int64_t last_ms;
} prog_ctx;

static void on_program(void *user, uint64_t done, uint64_t total)
{
	prog_ctx *p = user;
	int64_t now = pq_mono_ms();
	if (now - p->last_ms < 1000 || total == 0 || done >= total)
		return;
	p->last_ms = now;
	progress_msg(p->a, p->ecu_id, (int)(done * 99 / total));
}

/* Whether the ECU already runs this image (programmed before a restart). */
static bool already_there(const inst_item *it, const tester_ecu_info *info)
{
	int sw = ag_sw_index(it->im->software_type);
	if (sw < 0 || strcmp(info->version[sw], it->im->to_version) != 0)
		return false;
	return sw != VM_SW_APP || (info->image_len == it->ti.len &&
	                           memcmp(info->image_sha256, it->ti.sha256, 32) == 0);
}

static int program_one(zone_worker *w, const inst_item *it)
{
	ag_agent *a = w->run->a;
	tester_ecu_info info;
	int rc = PQ_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = ag_zone_conn(a, w->zc, w->zone);
		if (rc == PQ_OK)
			rc = tester_read_info(w->zc[w->zone], it->ecu->addr, &info);
		if (rc == PQ_OK || (rc != PQ_ERR_IO && rc != PQ_ERR_TIMEOUT))
			break;
		ag_zone_close(w->zc, w->zone);
	}
	if (rc == PQ_OK && already_there(it, &info)) {
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s already runs %s", it->im->ecu_id,
		       it->im->to_version);
		return PQ_OK;
	}
	if (rc != PQ_OK)
		return rc;
	progress_msg(a, it->im->ecu_id, 0);
	prog_ctx p = {a, it->im->ecu_id, pq_mono_ms()};
	rc = tester_program(w->zc[w->zone], it->ecu->addr, &it->ti, on_program, &p);
	if (rc == PQ_ERR_IO) /* a broken connection: the ECU stayed on its bank */
		ag_zone_close(w->zc, w->zone);
	return rc;
}

static void *zone_main(void *arg)
{
	zone_worker *w = arg;
	inst_run *r = w->run;
	ag_agent *a = r->a;
	for (size_t i = 0; i < r->n; i++) {
		inst_item *it = &r->items[i];
		if (!it->ecu || it->ecu->zone != w->zone || it->installed)
			continue;
		if (atomic_load(&r->failed) || atomic_load(&a->stopping))
			break;
		int64_t t0 = pq_mono_ms();
		if (program_one(w, it) != PQ_OK || mark_installed(a, it) != PQ_OK) {
			set_error(r, it->im->ecu_id, pq_err_detail());
			break;
		}
		int64_t ms = pq_mono_ms() - t0;
		progress_msg(a, it->im->ecu_id, 100);
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s: %s installed (%llu bytes, %lld ms)",
		       it->im->ecu_id, it->im->to_version, (unsigned long long)it->ti.len,
		       (long long)ms);
		ag_event("ecu_installed",
		         json_pack("{s:s,s:s,s:I}", "ecu_id", it->im->ecu_id, "version",
		                   it->im->to_version, "ms", (json_int_t)ms));
	}
	for (int z = 1; z <= VM_ZONES_MAX; z++)
		ag_zone_close(w->zc, z);
	return NULL;
}

/* ---- the VMG's own image --------------------------------------------------------------- */

static int copy_file(const char *src, const char *dst)
{
	char tmp[PATH_MAX + 8];
	uint8_t buf[65536];
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = PQ_OK;
	if (in < 0 || out < 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", in < 0 ? src : tmp, strerror(errno));
		goto out;
	}
	for (;;) {
		size_t got = 0;
		rc = pq_read_full(in, buf, sizeof(buf), &got);
		if (rc != PQ_OK || got == 0)
			break;
		rc = pq_write_all(out, buf, got);
		if (rc != PQ_OK)
			break;
	}
	if (rc == PQ_OK && fsync(out) != 0)
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (rc == PQ_OK && rename(tmp, dst) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename %s: %s", tmp, strerror(errno));
	if (rc == PQ_OK)
		rc = pq_fsync_dir_of(dst);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc != PQ_OK)
		unlink(tmp);
	return rc;
}

/* Writes the image to the VMG's inactive bank and switches to it. */
static int install_vmg(ag_agent *a, inst_item *it)
{
	char dir[PATH_MAX], bank[PATH_MAX];
	pthread_mutex_lock(&a->lock);
	char target = a->st.vmg_bank == 'A' ? 'B' : 'A';
	pthread_mutex_unlock(&a->lock);
	int rc = ag_path(dir, sizeof(dir), a->st.dir, "vmg");
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, 0700);
	if (rc == PQ_OK &&
	    snprintf(bank, sizeof(bank), "%s/bank-%c.img", dir, target) >= (int)sizeof(bank))
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
	progress_msg(a, "VMG", 0);
	if (rc == PQ_OK)
		rc = copy_file(it->path, bank);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "VMG: writing bank %c", target);
	/* the bank now holds the image: switch (the old bank stays for rollback) */
	snprintf(it->path, sizeof(it->path), "%s", bank);
	pthread_mutex_lock(&a->lock);
	a->st.vmg_bank = target;
	pthread_mutex_unlock(&a->lock);
	if ((rc = mark_installed(a, it)) != PQ_OK)
		return rc;
	progress_msg(a, "VMG", 100);
	pq_log(PQ_LOG_INFO, AG_LOGC, "VMG: %s written to bank %c, now active", it->im->to_version,
	       target);
	return PQ_OK;
}

/* ---- rollback ------------------------------------------------------------------------------ */

/* Whether it's ECU runs the campaign's image: switched in this run, or recorded so. */
static bool is_switched(ag_agent *a, const inst_item *it)
{
	pthread_mutex_lock(&a->lock);
	json_t *rec = ag_rec_image(a, it->idx);
	bool switched = it->switched || (json_is_true(json_object_get(rec, "installed")) &&
	                                 !json_is_true(json_object_get(rec, "rolled_back")));
	pthread_mutex_unlock(&a->lock);
	return switched;
}

/* Switches it's ECU back to its previous bank (the VMG's bank: mark_rolled_back). */
static int rollback_one(ag_agent *a, doipc **zc, const inst_item *it)
{
	int rc = PQ_OK;
	if (!it->ecu)
		return PQ_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = ag_zone_conn(a, zc, it->ecu->zone);
		if (rc == PQ_OK)
			rc = tester_rollback(zc[it->ecu->zone], it->ecu->addr);
		if (rc == PQ_OK || (rc != PQ_ERR_IO && rc != PQ_ERR_TIMEOUT))
			break;
		ag_zone_close(zc, it->ecu->zone);
	}
	return rc;
}

/* Records it's ECU as back on its previous image. */
static int mark_rolled_back(ag_agent *a, inst_item *it)
{
	it->switched = false;
	pthread_mutex_lock(&a->lock);
	if (!it->ecu)
		a->st.vmg_bank = a->st.vmg_bank == 'A' ? 'B' : 'A';
	ag_ecu_state *es = ag_state_ecu(&a->st, it->im->ecu_id);
	if (es && es->prev.present) {
		es->cur = es->prev;
		memset(&es->prev, 0, sizeof(es->prev));
	}
	int rc =
	    ag_jmerge(ag_rec_image(a, it->idx),
	              json_pack("{s:b,s:b}", "rolled_back", 1, "installed", 0), "image record");
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Rolls back every switched ECU of the campaign, the last installed first; the ids of those
 * rolled back go to done. Returns how many could not be. */
static int rollback_all(ag_agent *a, inst_item *items, size_t n, json_t *done)
{
	doipc *zc[VM_ZONES_MAX + 1] = {NULL};
	int failures = 0;
	for (size_t k = n; k-- > 0;) {
		inst_item *it = &items[k];
		if (!is_switched(a, it))
			continue;
		if (rollback_one(a, zc, it) != PQ_OK) {
			failures++;
			pq_log(PQ_LOG_ERROR, AG_LOGC, "rollback of %s failed: %s", it->im->ecu_id,
			       pq_err_detail());
			continue;
		}
		if (mark_rolled_back(a, it) != PQ_OK ||
		    ag_jappend(done, json_string(it->im->ecu_id)) != PQ_OK)
			pq_log(PQ_LOG_ERROR, AG_LOGC, "%s: recording the rollback: %s",
			       it->im->ecu_id, pq_err_detail());
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s rolled back to its previous bank", it->im->ecu_id);
	}
	for (int z = 1; z <= VM_ZONES_MAX; z++)
		ag_zone_close(zc, z);
	return failures;
}

static void rollback(ag_agent *a, inst_item *items, size_t n, bool all, const char *ecu_id,
                     const char *code, const char *cause)
{
	if (!all) {
		ag_fail(a, "ota_error", AG_PH_FAILED, ecu_id, code,
		        "%s (rollback_policy none: nothing rolled back)", cause);
		return;
	}
	json_t *done = json_array();
	int failures = rollback_all(a, items, n, done);
	char text[AG_ERR_MAX];
	snprintf(text, sizeof(text), "%s%s", cause,
	         failures ? "; some ECUs could not be rolled back" : "");
	json_t *m = ag_campaign_msg(a, "ota_rollback", ecu_id);
	pthread_mutex_lock(&a->lock);
	int rc = ag_jmerge(
	    a->st.campaign,
	    json_pack("{s:s,s:s,s:O}", "error_code", code, "error", text, "rolled_back_ecus", done),
	    "campaign record");
	if (rc == PQ_OK)
		rc = ag_rec_set_phase(a, AG_PH_ROLLED_BACK);
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "recording the rollback: %s", pq_err_detail());
	pq_log(PQ_LOG_ERROR, AG_LOGC, "installation failed (%s): %s; %zu ECUs rolled back", code,
	       text, json_array_size(done));
	if (m && ag_jmerge(m,
	                   json_pack("{s:s,s:s,s:O}", "error_code", code, "error", text,
	                             "rolled_back", done),
	                   "ota_rollback") != PQ_OK) {
		json_decref(m);
		m = NULL;
	}
	ag_status_msg(a, m);
	json_decref(done);
	ag_write_status(a);
}

/* ---- verification after installation ----------------------------------------------------- */

static int check_versions(ag_agent *a, inst_item *items, size_t n, char *ecu, size_t ecu_len)
{
	doipc *zc[VM_ZONES_MAX + 1] = {NULL};
	int rc = PQ_OK;
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		inst_item *it = &items[i];
		snprintf(ecu, ecu_len, "%s", it->im->ecu_id);
		if (!it->ecu) {
			pthread_mutex_lock(&a->lock);
			ag_ecu_state *es = ag_state_ecu(&a->st, "VMG");
			if (!es || strcmp(es->cur.version, it->im->to_version) != 0)
				rc = pq_err_set(PQ_ERR_VERIFY, "VMG runs %s, not %s",
				                es ? es->cur.version : "?", it->im->to_version);
			pthread_mutex_unlock(&a->lock);
			continue;
		}
		tester_ecu_info info;
		for (int attempt = 0; attempt < 2; attempt++) {
			rc = ag_zone_conn(a, zc, it->ecu->zone);
			if (rc == PQ_OK)
				rc = tester_read_info(zc[it->ecu->zone], it->ecu->addr, &info);
			if (rc == PQ_OK || (rc != PQ_ERR_IO && rc != PQ_ERR_TIMEOUT))
				break;
			ag_zone_close(zc, it->ecu->zone);
		}
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "%s: reading its version", it->im->ecu_id);
			break;
		}
		int sw = ag_sw_index(it->im->software_type);
		if (sw >= 0 && strcmp(info.version[sw], it->im->to_version) != 0)
			rc = pq_err_set(PQ_ERR_VERIFY,
			                "%s reports %s %s after the installation, not %s",
			                it->im->ecu_id, it->im->software_type, info.version[sw],
			                it->im->to_version);
		else if (sw == VM_SW_APP && (info.image_len != it->ti.len ||
		                             memcmp(info.image_sha256, it->ti.sha256, 32) != 0))
			rc = pq_err_set(PQ_ERR_VERIFY,
			                "%s: the active bank's image is not the installed one",
			                it->im->ecu_id);
	}
	for (int z = 1; z <= VM_ZONES_MAX; z++)
		ag_zone_close(zc, z);
	return rc;
}

/* ---- the phases ------------------------------------------------------------------------------ */

static int load_items(ag_agent *a, const ag_meta *m, inst_item *items)
{
	int rc = PQ_OK;
	pthread_mutex_lock(&a->lock);
	json_t *ver = json_object_get(a->st.campaign, "verified");
	for (size_t i = 0; rc == PQ_OK && i < m->n_images; i++) {
		inst_item *it = &items[i];
		const ag_image *im = &m->images[i];
		json_t *rec = ag_rec_image(a, i);
		const char *path = json_string_value(json_object_get(rec, "image"));
		const char *sha = json_string_value(json_object_get(rec, "image_sha256"));
		json_t *len = json_object_get(rec, "image_len");
		json_t *crc = json_object_get(rec, "image_crc32");
		json_t *rcnt = json_object_get(json_object_get(json_array_get(ver, i), "target"),
		                               "release_counter");
		size_t n = 0;
		it->im = im;
		it->idx = i;
		it->installed = json_is_true(json_object_get(rec, "installed"));
		it->release_counter = json_is_integer(rcnt) ? json_integer_value(rcnt) : 0;
		if (!path || !sha || !json_is_integer(len) || !json_is_integer(crc) ||
		    strlen(path) >= sizeof(it->path) ||
		    pq_hex_decode(sha, it->ti.sha256, 32, &n) != PQ_OK || n != 32) {
			rc =
			    pq_err_set(PQ_ERR_FORMAT, "%s: no verified image recorded", im->ecu_id);
			break;
		}
		snprintf(it->path, sizeof(it->path), "%s", path);
		it->ti.path = it->path;
		it->ti.len = (uint64_t)json_integer_value(len);
		it->ti.crc32 = (uint32_t)json_integer_value(crc);
		snprintf(it->ti.version, sizeof(it->ti.version), "%s", im->to_version);
		uint8_t t = SWPG_TYPE_APP;
		if (swpg_type_parse(im->software_type, &t) != PQ_OK)
			t = SWPG_TYPE_APP;
		it->ti.software_type = t;
		if (strcmp(im->ecu_id, "VMG") != 0) {
			it->ecu = vm_model_find(&a->model, im->ecu_id);
			if (!it->ecu)
				rc = pq_err_set(PQ_ERR_NOTFOUND, "this vehicle has no ECU %s",
				                im->ecu_id);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static bool any_installed(ag_agent *a, size_t n)
{
	bool any = false;
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++)
		any |= json_is_true(json_object_get(ag_rec_image(a, i), "installed"));
	pthread_mutex_unlock(&a->lock);
	return any;
}

static void zones_install(ag_agent *a, inst_run *run)
{
	const vm_model *md = &a->model;
	zone_worker w[VM_ZONES_MAX];
	pthread_t th[VM_ZONES_MAX];
	bool started[VM_ZONES_MAX] = {false};
	for (size_t z = 0; z < md->n_zones; z++) {
		memset(&w[z], 0, sizeof(w[z]));
		w[z].run = run;
		w[z].zone = md->zones[z].zone;
		started[z] = pthread_create(&th[z], NULL, zone_main, &w[z]) == 0;
		if (!started[z])
			zone_main(&w[z]);
	}
	for (size_t z = 0; z < md->n_zones; z++)
		if (started[z])
			pthread_join(th[z], NULL);
}

static bool readiness_ok(ag_agent *a, char *why, size_t why_len)
{
	ag_prereq p;
	pthread_mutex_lock(&a->lock);
	json_t *pre = json_object_get(json_object_get(a->st.campaign, "offer"), "prerequisites");
	int rc = ag_prereq_parse(pre, &p);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK) {
		snprintf(why, why_len, "%s", pq_err_detail());
		return false;
	}
	return ag_readiness(&a->vstate, &p, NULL, why, why_len);
}

/* ota_installation_start, once per campaign: the order of installation. */
static int announce_start(ag_agent *a, const ag_meta *m)
{
	pthread_mutex_lock(&a->lock);
	bool started = json_is_true(json_object_get(a->st.campaign, "install_started"));
	pthread_mutex_unlock(&a->lock);
	if (started)
		return PQ_OK;
	json_t *s = ag_campaign_msg(a, "ota_installation_start", NULL), *order = json_array();
	for (size_t i = 0; order && i < m->n_images; i++)
		if (ag_jappend(order, json_string(m->images[i].ecu_id)) != PQ_OK) {
			json_decref(order);
			order = NULL;
		}
	if (!s)
		json_decref(order);
	else if (ag_jset(s, "install_order", order) != PQ_OK) {
		json_decref(s);
		s = NULL;
	}
	ag_status_msg(a, s);
	pthread_mutex_lock(&a->lock);
	int rc = ag_jset(a->st.campaign, "install_started", json_true());
	if (rc == PQ_OK)
		ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Moves the record on to phase. Only a restart reads it, and what it would repeat (the
 * check, the skipped installations) is idempotent: a failure is logged, the run goes on. */
static void record_phase(ag_agent *a, const char *phase)
{
	pthread_mutex_lock(&a->lock);
	int rc = ag_rec_set_phase(a, phase);
	if (rc == PQ_OK && !strcmp(phase, AG_PH_COMPLETED)) {
		json_object_del(a->st.campaign, "error_code");
		json_object_del(a->st.campaign, "error");
	}
	if (rc == PQ_OK)
		ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK)
		pq_log(PQ_LOG_ERROR, AG_LOGC, "recording the phase %s: %s", phase, pq_err_detail());
	ag_write_status(a);
}

/* installing: readiness (unless an ECU was flashed already), ota_installation_start, the
 * VMG's image (it runs the rest), then the zones in parallel. Returns whether to go on to
 * the check: false when the campaign failed (rolled back) or the agent stops (the restart
 * continues). */
static bool install_phase(ag_agent *a, const ag_meta *m, inst_run *run)
{
	char why[AG_ERR_MAX];
	if (!any_installed(a, m->n_images) && !readiness_ok(a, why, sizeof(why))) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "not_ready", "not ready to install: %s",
		        why);
		return false;
	}
	if (announce_start(a, m) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		return false;
	}
	for (size_t i = 0; i < m->n_images; i++)
		if (!run->items[i].ecu && !run->items[i].installed &&
		    install_vmg(a, &run->items[i]) != PQ_OK)
			set_error(run, "VMG", pq_err_detail());
	if (!atomic_load(&run->failed))
		zones_install(a, run);
	if (atomic_load(&run->failed)) {
		rollback(a, run->items, m->n_images, m->rollback_all, run->failed_ecu,
		         "install_failed", run->error);
		ag_send_vci(a, NULL, NULL);
		return false;
	}
	if (atomic_load(&a->stopping))
		return false;
	record_phase(a, AG_PH_CHECKING);
	return true;
}

/* checking: the ECUs have rebooted into their new banks: what do they report? */
static void check_phase(ag_agent *a, const ag_meta *m, inst_item *items)
{
	char why[AG_ERR_MAX], ecu[VM_ID_MAX + 1] = "";
	if (check_versions(a, items, m->n_images, ecu, sizeof(ecu)) != PQ_OK) {
		snprintf(why, sizeof(why), "%s", pq_err_detail());
		rollback(a, items, m->n_images, m->rollback_all, ecu, "verification_failed", why);
		ag_send_vci(a, NULL, NULL);
		return;
	}
	ag_status_msg(a, ag_campaign_msg(a, "ota_installation_complete", NULL));
	ag_status_msg(a, ag_campaign_msg(a, "ota_verification_complete", NULL));
	record_phase(a, AG_PH_COMPLETED);
	pq_log(PQ_LOG_INFO, AG_LOGC, "campaign installed and verified: %zu images", m->n_images);
	ag_send_vci(a, NULL, NULL);
}

void ag_install(ag_agent *a, const ag_meta *m)
{
	inst_run run = {.a = a, .n = m->n_images};
	inst_item *items = calloc(m->n_images, sizeof(*items));
	pthread_mutex_init(&run.err_lock, NULL);
	if (!items || load_items(a, m, items) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s",
		        items ? pq_err_detail() : "out of memory");
		goto out;
	}
	run.items = items;
	pthread_mutex_lock(&a->lock);
	bool checking = !strcmp(ag_rec_phase(a), AG_PH_CHECKING);
	pthread_mutex_unlock(&a->lock);
	if (checking || install_phase(a, m, &run))
		check_phase(a, m, items);
out:
	pthread_mutex_destroy(&run.err_lock);
	free(items);
}
