/* update.c: the campaign worker, from the metadata to images ready to flash.
 *
 * Phases of the campaign record (st.campaign, persisted in state.json):
 *   verifying    Uptane: the image repository's and the director's metadata fetched over
 *                HTTPS and verified (up_verify) with the trusted roots and the ECUs'
 *                installed release counters; every image of the metadata must be a
 *                verified director target (and every fallback a verified image repository
 *                target of the same release). New trusted versions and roots are stored.
 *   downloading  per image, in installation order: download (resuming with Range from
 *                STATE/downloads/<sha>.part), ciphertext hash and length, hybrid unwrap of
 *                the content key and decryption, the plaintext package against the verified
 *                Uptane target, SWPG header and CRC (pkg_verify), decoding (a delta against
 *                the installed image; the full package when the base differs or the delta
 *                fails) and the decoded image against "image". Nothing is flashed before
 *                every image passed.
 *   installing / checking   install.c
 * The record keeps per image what is done, so a restarted agent continues where it stopped.
 * The worker runs on its own thread; MQTT and diagnostics go on meanwhile. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"
#include "pkg/swpg.h"
#include "uptane/cjson.h"
#include "uptane/repo.h"

#define DL_ATTEMPTS    8
#define DL_BACKOFF_MAX 30000
#define ROOTS_MAX      64

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

void ag_rec_set_phase(ag_agent *a, const char *phase)
{
	json_object_set_new(a->st.campaign, "phase", json_string(phase));
	json_object_set_new(a->st.campaign, "updated_ms", json_integer(ag_now_ms()));
}

json_t *ag_rec_image(ag_agent *a, size_t i)
{
	return json_array_get(json_object_get(a->st.campaign, "images"), i);
}

void ag_fail(ag_agent *a, const char *msg_type, const char *phase, const char *ecu_id,
             const char *code, const char *fmt, ...)
{
	char text[AG_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&a->lock);
	const char *cid = json_string_value(json_object_get(a->st.campaign, "campaign_id"));
	json_t *m = ag_msg_new(a->o->vin, msg_type, NULL, cid);
	json_object_set_new(a->st.campaign, "error_code", json_string(code));
	json_object_set_new(a->st.campaign, "error", json_string(text));
	if (phase)
		ag_rec_set_phase(a, phase);
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	pq_log(PQ_LOG_ERROR, AG_LOGC, "campaign %s: %s%s%s: %s", cid ? cid : "?",
	       ecu_id ? ecu_id : "", ecu_id ? ": " : "", code, text);
	if (m) {
		if (ecu_id)
			json_object_set_new(m, "ecu_id", json_string(ecu_id));
		json_object_set_new(m, "error_code", json_string(code));
		json_object_set_new(m, "error", json_string(text));
		ag_status_msg(a, m);
	}
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
	if (m && ecu_id)
		json_object_set_new(m, "ecu_id", json_string(ecu_id));
	return m;
}

static bool interrupted(ag_agent *a)
{
	return atomic_load(&a->stopping) || atomic_load(&a->cancel);
}

/* Sleeps up to ms, waking early when the agent stops or the campaign is cancelled. */
static void nap(ag_agent *a, int ms)
{
	for (int t = 0; t < ms && !interrupted(a); t += 100) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* ---- Uptane -------------------------------------------------------------------------------- */

typedef struct {
	char *data[ROOTS_MAX];
	up_bytes b[ROOTS_MAX];
	size_t n;
} roots_list;

static void roots_free(roots_list *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->data[i]);
	r->n = 0;
}

static int fetch(ag_http *h, const char *base, const char *file, size_t max, char **out,
                 size_t *len)
{
	char url[AG_URL_MAX + 64];
	long status = 0;
	if (snprintf(url, sizeof(url), "%s%s", base, file) >= (int)sizeof(url))
		return pq_err_set(PQ_ERR_RANGE, "URL too long");
	int rc = ag_http_get(h, url, max, out, len, &status);
	if (rc != PQ_OK && rc != PQ_ERR_NOTFOUND)
		return pq_err_wrap(rc, "fetching %s", file);
	return rc;
}

/* The roots after the trusted one: {N+1}.root.json, {N+2}.root.json, ... until a 404. */
static int fetch_roots(ag_http *h, const char *base, const char *trusted, size_t trusted_len,
                       roots_list *out)
{
	int64_t v = 0;
	json_error_t je;
	json_t *t = json_loadb(trusted, trusted_len, 0, &je);
	json_t *ver = json_object_get(json_object_get(t, "signed"), "version");
	if (json_is_integer(ver))
		v = json_integer_value(ver);
	json_decref(t);
	if (v < 1)
		return pq_err_set(PQ_ERR_FORMAT, "the trusted root has no version");
	for (size_t i = 0; i < ROOTS_MAX; i++) {
		char name[40];
		snprintf(name, sizeof(name), "%lld.root.json", (long long)(v + 1 + (int64_t)i));
		char *d = NULL;
		size_t len = 0;
		int rc = fetch(h, base, name, UP_MAX_ROOT, &d, &len);
		if (rc == PQ_ERR_NOTFOUND)
			return PQ_OK;
		if (rc != PQ_OK)
			return rc;
		out->data[out->n] = d;
		out->b[out->n] = (up_bytes){d, len};
		out->n++;
	}
	return PQ_OK;
}

/* Verifies the campaign's metadata with Uptane; fills the record's "verified". */
static int uptane(ag_agent *a, ag_http *h, const ag_meta *m, char *code, size_t code_len)
{
	char *it = NULL, *is = NULL, *itg = NULL, *dt = NULL, *ds = NULL, *dtg = NULL;
	size_t itl = 0, isl = 0, itgl = 0, dtl = 0, dsl = 0, dtgl = 0;
	roots_list iroots = {0}, droots = {0};
	up_verify_result res = {0};
	up_ecu *ecus = NULL;
	ag_verified *ver = NULL;
	char *iroot = NULL, *droot = NULL;
	size_t irl = 0, drl = 0;
	int rc;

	snprintf(code, code_len, "uptane_verification_failed");
	pthread_mutex_lock(&a->lock);
	up_versions iv = a->st.image_v, dv = a->st.director_v;
	if (a->st.image_root && a->st.director_root) {
		iroot = malloc(a->st.image_root_len + 1);
		droot = malloc(a->st.director_root_len + 1);
		if (iroot && droot) {
			memcpy(iroot, a->st.image_root, a->st.image_root_len);
			memcpy(droot, a->st.director_root, a->st.director_root_len);
			irl = a->st.image_root_len;
			drl = a->st.director_root_len;
		}
	}
	size_t n_ecus = a->st.n_ecus;
	ecus = calloc(n_ecus, sizeof(up_ecu));
	for (size_t i = 0; ecus && i < n_ecus; i++) {
		const ag_ecu_state *e = &a->st.ecus[i];
		const vm_ecu *me = vm_model_find(&a->model, e->ecu_id);
		ecus[i].ecu_id = e->ecu_id; /* the state's array lives as long as the agent */
		ecus[i].hardware_id = me ? me->hardware_id : a->model.vmg_hardware_id;
		ecus[i].release_counter = e->cur.present ? e->cur.release_counter : 0;
	}
	pthread_mutex_unlock(&a->lock);
	if (!iroot || !droot || !ecus) {
		rc = pq_err_set(PQ_ERR_NOMEM, "no trusted roots or out of memory");
		goto out;
	}

	rc = fetch_roots(h, m->image_repo, iroot, irl, &iroots);
	if (rc == PQ_OK)
		rc = fetch(h, m->image_repo, "timestamp.json", UP_MAX_TIMESTAMP, &it, &itl);
	if (rc == PQ_OK)
		rc = fetch(h, m->image_repo, "snapshot.json", UP_MAX_SNAPSHOT, &is, &isl);
	if (rc == PQ_OK)
		rc = fetch(h, m->image_repo, "targets.json", UP_MAX_IMAGE_TARGETS, &itg, &itgl);
	if (rc == PQ_OK)
		rc = fetch_roots(h, m->director_repo, droot, drl, &droots);
	if (rc == PQ_OK)
		rc = fetch(h, m->director_repo, "timestamp.json", UP_MAX_TIMESTAMP, &dt, &dtl);
	if (rc == PQ_OK)
		rc = fetch(h, m->director_repo, "snapshot.json", UP_MAX_SNAPSHOT, &ds, &dsl);
	/* the director targets came in the message: their canonical form is what was signed */
	if (rc == PQ_OK)
		rc = cj_encode(m->director_targets, UP_MAX_DIRECTOR_TARGETS, &dtg, &dtgl);
	if (rc == PQ_ERR_NOTFOUND)
		rc = pq_err_wrap(PQ_ERR_VERIFY, "Uptane metadata missing on the server");
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "Uptane");
		goto out;
	}
	up_verify_input in = {
	    .vin = a->o->vin,
	    .now = (int64_t)time(NULL),
	    .image_root = {iroot, irl},
	    .director_root = {droot, drl},
	    .image_roots = iroots.b,
	    .n_image_roots = iroots.n,
	    .director_roots = droots.b,
	    .n_director_roots = droots.n,
	    .image_timestamp = {it, itl},
	    .image_snapshot = {is, isl},
	    .image_targets = {itg, itgl},
	    .director_timestamp = {dt, dtl},
	    .director_snapshot = {ds, dsl},
	    .director_targets = {dtg, dtgl},
	    .image_trusted = iv,
	    .director_trusted = dv,
	    .ecus = ecus,
	    .n_ecus = n_ecus,
	};
	rc = up_verify(&in, &res);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "Uptane verification");
		goto out;
	}
	ver = calloc(m->n_images, sizeof(*ver));
	if (!ver) {
		rc = pq_err_set(PQ_ERR_NOMEM, "verified");
		goto out;
	}
	rc = ag_meta_match(m, &res, itg, itgl, ver);
	if (rc != PQ_OK) {
		snprintf(code, code_len, "metadata_mismatch");
		goto out;
	}
	/* persist what was verified: versions, roots, and the targets per image */
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < m->n_images; i++) {
		json_t *fb = ver[i].has_fallback ? ag_up_image_json(&ver[i].fallback) : json_null();
		json_array_append_new(arr,
		                      json_pack("{s:o,s:o}", "target",
		                                ag_up_image_json(&ver[i].target), "fallback", fb));
	}
	pthread_mutex_lock(&a->lock);
	a->st.image_v = res.image;
	a->st.director_v = res.director;
	rc = ag_state_set_roots(&a->st, res.image_root.data, res.image_root.len,
	                        res.director_root.data, res.director_root.len);
	json_object_set_new(a->st.campaign, "verified", arr ? arr : json_null());
	json_object_set_new(a->st.campaign, "verification", json_string("ok"));
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	if (rc == PQ_OK && !arr)
		rc = pq_err_set(PQ_ERR_NOMEM, "verified");
	if (rc == PQ_OK) {
		pq_log(PQ_LOG_INFO, AG_LOGC,
		       "Uptane: %zu images verified (image repository v%lld, director v%lld%s)",
		       m->n_images, (long long)res.image.targets, (long long)res.director.targets,
		       iroots.n || droots.n ? ", root rotated" : "");
		ag_event("uptane_verified",
		         json_pack("{s:I,s:I,s:I,s:I}", "images", (json_int_t)m->n_images,
		                   "image_targets_version", (json_int_t)res.image.targets,
		                   "director_targets_version", (json_int_t)res.director.targets,
		                   "new_roots", (json_int_t)(iroots.n + droots.n)));
	}
out:
	free(ver);
	up_verify_result_free(&res);
	roots_free(&iroots);
	roots_free(&droots);
	free(it);
	free(is);
	free(itg);
	free(dt);
	free(ds);
	free(dtg);
	free(iroot);
	free(droot);
	free(ecus);
	return rc;
}

/* ---- downloads ----------------------------------------------------------------------------- */

typedef struct {
	ag_agent *a;
	size_t idx;
	const char *ecu_id;
	const char *package;
	uint64_t total;
	int64_t last_ms;
} dl_ctx;

static int dl_progress(void *user, uint64_t have)
{
	dl_ctx *d = user;
	ag_agent *a = d->a;
	if (interrupted(a))
		return 1;
	int64_t now = ag_mono_ms();
	if (now - d->last_ms < 1000)
		return 0;
	d->last_ms = now;
	pthread_mutex_lock(&a->lock);
	json_object_set_new(ag_rec_image(a, d->idx), "bytes", json_integer((json_int_t)have));
	pthread_mutex_unlock(&a->lock);
	json_t *m = ag_campaign_msg(a, "ota_download_progress", d->ecu_id);
	if (m) {
		json_object_set_new(
		    m, "progress",
		    json_integer(d->total ? (json_int_t)(have * 100 / d->total) : 0));
		json_object_set_new(m, "bytes_downloaded", json_integer((json_int_t)have));
		json_object_set_new(m, "total_bytes", json_integer((json_int_t)d->total));
		json_object_set_new(m, "package", json_string(d->package));
		ag_status_msg(a, m);
	}
	ag_write_status(a);
	return 0;
}

/* The URL without its download token: the vehicle certificate authorises it too. */
static bool strip_token(char *url)
{
	char *q = strstr(url, "?token=");
	if (!q)
		q = strstr(url, "&token=");
	if (!q)
		return false;
	char *end = strchr(q + 1, '&');
	if (end)
		memmove(q + 1, end + 1, strlen(end + 1) + 1);
	else
		*q = '\0';
	return true;
}

/* Downloads f to STATE/downloads/<hex of what is downloaded>.bin and checks its length and
 * SHA-256. code receives the error_code on failure. */
static int download(ag_agent *a, ag_http *h, const ag_file *f, dl_ctx *d, char *path,
                    size_t path_len, char *code, size_t code_len)
{
	char hex[65], part[PATH_MAX], dir[PATH_MAX], url[AG_URL_MAX + 1];
	const uint8_t *want = f->enc.present ? f->enc.sha256 : f->sha256;
	uint64_t expect = f->enc.present ? f->enc.length : f->length;
	uint8_t got[32];
	struct stat st;
	int rc;
	pq_hex_encode(want, 32, hex);
	snprintf(url, sizeof(url), "%s", f->url);
	rc = ag_path(dir, sizeof(dir), a->st.dir, "downloads");
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, 0700);
	if (rc == PQ_OK &&
	    (snprintf(part, sizeof(part), "%s/%s.part", dir, hex) >= (int)sizeof(part) ||
	     snprintf(path, path_len, "%s/%s.bin", dir, hex) >= (int)path_len))
		rc = pq_err_set(PQ_ERR_RANGE, "download path too long");
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	d->total = expect;
	for (int pass = 0; pass < 2; pass++) {
		if (stat(path, &st) == 0 && (uint64_t)st.st_size == expect)
			goto check; /* downloaded before a restart */
		int backoff = 1000;
		for (int attempt = 1;; attempt++) {
			long status = 0;
			uint64_t from = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
			if (from > 0 && from < expect)
				pq_log(PQ_LOG_INFO, AG_LOGC, "%s: resuming %s at byte %llu of %llu",
				       d->ecu_id, f->name, (unsigned long long)from,
				       (unsigned long long)expect);
			ag_event("download_start",
			         json_pack("{s:s,s:s,s:I,s:I,s:i}", "ecu_id", d->ecu_id, "name",
			                   f->name, "offset", (json_int_t)from, "length",
			                   (json_int_t)expect, "attempt", attempt));
			rc = ag_http_download(h, url, part, expect, dl_progress, d, &status);
			if (rc == PQ_OK)
				break;
			if (rc == PQ_ERR_TIMEOUT) {
				snprintf(code, code_len, "interrupted");
				return rc;
			}
			if (rc == PQ_ERR_RANGE) {
				snprintf(code, code_len, "length_mismatch");
				return rc;
			}
			if (rc == PQ_ERR_VERIFY && (status == 401 || status == 403) &&
			    strip_token(url)) {
				pq_log(PQ_LOG_WARN, AG_LOGC,
				       "%s: the download token was refused (HTTP %ld): retrying "
				       "with the vehicle certificate only",
				       d->ecu_id, status);
				continue;
			}
			if (rc == PQ_ERR_VERIFY) {
				snprintf(code, code_len, "http_%ld", status);
				return rc;
			}
			if (attempt >= DL_ATTEMPTS) {
				snprintf(code, code_len, "transport_error");
				return pq_err_wrap(rc, "after %d attempts", attempt);
			}
			pq_log(PQ_LOG_WARN, AG_LOGC,
			       "%s: download attempt %d: %s; retrying in %d ms", d->ecu_id, attempt,
			       pq_err_detail(), backoff);
			nap(a, backoff);
			if (interrupted(a)) {
				snprintf(code, code_len, "interrupted");
				return pq_err_set(PQ_ERR_TIMEOUT, "download interrupted");
			}
			backoff = backoff * 2 > DL_BACKOFF_MAX ? DL_BACKOFF_MAX : backoff * 2;
		}
		if (rename(part, path) != 0) {
			snprintf(code, code_len, "storage_error");
			return pq_err_set(PQ_ERR_IO, "rename %s: %s", part, strerror(errno));
		}
	check:
		rc = pq_hash_file(PQ_HASH_SHA256, path, got);
		if (rc != PQ_OK) {
			snprintf(code, code_len, "storage_error");
			return rc;
		}
		if (pq_memeq_ct(got, want, 32) == 0)
			return PQ_OK;
		/* a corrupted file: once more from scratch, then give up */
		unlink(path);
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s has the wrong SHA-256%s", d->ecu_id, f->name,
		       pass == 0 ? "; downloading it again" : "");
	}
	snprintf(code, code_len, "sha256_mismatch");
	return pq_err_set(PQ_ERR_VERIFY, "%s: the download's SHA-256 is not the one given",
	                  f->name);
}

/* The plaintext package of f at pkg_path: decrypted from the download, or the download
 * itself. Checks it against the verified Uptane target vt. */
static int obtain_package(ag_agent *a, ag_http *h, const ag_file *f, const up_image *vt, dl_ctx *d,
                          char *pkg_path, size_t pkg_len, char *code, size_t code_len)
{
	char dl[PATH_MAX], hex[65];
	uint8_t key[PQ_WRAP_KEY_MAX], sha[32];
	size_t key_len = sizeof(key);
	struct stat st;
	int rc = download(a, h, f, d, dl, sizeof(dl), code, code_len);
	if (rc != PQ_OK)
		return rc;
	if (!f->enc.present) {
		snprintf(pkg_path, pkg_len, "%s", dl);
	} else {
		pq_hex_encode(f->sha256, 32, hex);
		char work[PATH_MAX];
		rc = ag_path(work, sizeof(work), a->st.dir, "work");
		if (rc == PQ_OK)
			rc = pq_mkdirs(work, 0700);
		if (rc == PQ_OK &&
		    snprintf(pkg_path, pkg_len, "%s/%s.swpg", work, hex) >= (int)pkg_len)
			rc = pq_err_set(PQ_ERR_RANGE, "path too long");
		if (rc != PQ_OK) {
			snprintf(code, code_len, "storage_error");
			return rc;
		}
		pq_wrap_recipient me = {a->kem_x25519, a->kem_mlkem};
		rc = pq_unwrap(&me, (const uint8_t *)f->enc.aad, strlen(f->enc.aad), f->enc.wrapped,
		               f->enc.wrapped_len, key, &key_len);
		if (rc == PQ_OK && key_len != PQ_AEAD_KEY_LEN)
			rc = pq_err_set(PQ_ERR_FORMAT, "a %zu-byte content key", key_len);
		if (rc == PQ_OK)
			rc = pq_aead_decrypt_file(key, dl, pkg_path);
		OPENSSL_cleanse(key, sizeof(key));
		if (rc != PQ_OK) {
			snprintf(code, code_len, "decryption_failed");
			return pq_err_wrap(rc, "%s", f->name);
		}
	}
	/* the package against what Uptane verified (not only against the message) */
	rc = pq_hash_file(PQ_HASH_SHA256, pkg_path, sha);
	if (rc == PQ_OK && stat(pkg_path, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", pkg_path, strerror(errno));
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	if (vt->length < 0 || (uint64_t)st.st_size != (uint64_t)vt->length ||
	    pq_memeq_ct(sha, vt->sha256, 32) != 0) {
		snprintf(code, code_len, "package_mismatch");
		return pq_err_set(PQ_ERR_VERIFY,
		                  "%s: the package (%lld bytes) is not the verified Uptane target",
		                  f->name, (long long)st.st_size);
	}
	return PQ_OK;
}

/* SHA-256, CRC-32 and length of a file in one pass. */
int ag_file_digest(const char *path, uint8_t sha[32], uint32_t *crc, uint64_t *len)
{
	FILE *f = fopen(path, "rbe");
	pq_hash_ctx *h = NULL;
	uint8_t buf[65536];
	int rc = PQ_OK;
	*crc = 0;
	*len = 0;
	if (!f)
		return pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	rc = pq_hash_new(PQ_HASH_SHA256, &h);
	size_t n;
	while (rc == PQ_OK && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		rc = pq_hash_update(h, buf, n);
		*crc = pq_crc32(*crc, buf, n);
		*len += n;
	}
	if (rc == PQ_OK && ferror(f))
		rc = pq_err_set(PQ_ERR_IO, "reading %s", path);
	if (rc == PQ_OK)
		rc = pq_hash_final(h, sha);
	pq_hash_free(h);
	fclose(f);
	return rc;
}

/* Opens and deep-verifies a leaf package for ecu_id and decodes its image to out. */
static int decode(const char *pkg_path, const char *ecu_id, const char *base, const char *out,
                  char *code, size_t code_len)
{
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	size_t n = 0;
	uint16_t id = 0;
	pkg_verify_report rep;
	int rc = pkg_open(pkg_path, &r);
	if (rc == PQ_OK)
		rc = pkg_list(r, &e, &n);
	if (rc == PQ_OK && (n != 1 || swpg_is_container(e->hdr.software_type)))
		rc = pq_err_set(PQ_ERR_FORMAT, "not a single-image package");
	if (rc == PQ_OK && swpg_ecu_parse(ecu_id, &id) == PQ_OK &&
	    e->hdr.target_ecu_id != SWPG_ECU_BROADCAST && e->hdr.target_ecu_id != id)
		rc = pq_err_set(PQ_ERR_VERIFY, "the package is for ECU 0x%04x, not %s",
		                e->hdr.target_ecu_id, ecu_id);
	if (rc == PQ_OK)
		rc = pkg_verify(r, &rep, NULL);
	if (rc != PQ_OK) {
		snprintf(code, code_len, "package_invalid");
		pkg_close(r);
		return rc;
	}
	if (e->hdr.compression == SWPG_COMP_DELTA && !base) {
		snprintf(code, code_len, "delta_failed");
		pkg_close(r);
		return pq_err_set(PQ_ERR_NOTFOUND, "no installed image to apply the delta to");
	}
	rc =
	    pkg_extract_image(r, e, e->hdr.compression == SWPG_COMP_DELTA ? base : NULL, out, NULL);
	if (rc != PQ_OK)
		snprintf(code, code_len,
		         e->hdr.compression == SWPG_COMP_DELTA ? "delta_failed"
		                                               : "package_invalid");
	pkg_close(r);
	return rc;
}

/* Downloads, verifies and decodes image i; falls back to the full package when the delta
 * cannot be used. */
static int prepare_image(ag_agent *a, ag_http *h, const ag_meta *m, size_t i, const ag_verified *v,
                         char *code, size_t code_len)
{
	const ag_image *im = &m->images[i];
	char base[PATH_MAX] = "", pkg[PATH_MAX], out[PATH_MAX], final[PATH_MAX], hex[65];
	uint8_t sha[32];
	uint32_t crc = 0;
	uint64_t len = 0;
	bool use_fallback = false;
	char why[AG_ERR_MAX] = "";
	int rc;

	if (im->delta) {
		pthread_mutex_lock(&a->lock);
		ag_ecu_state *es = ag_state_ecu(&a->st, im->ecu_id);
		if (es && es->cur.present && es->cur.path[0] && im->has_base &&
		    pq_memeq_ct(es->cur.sha256, im->base_sha256, 32) == 0 &&
		    access(es->cur.path, R_OK) == 0)
			snprintf(base, sizeof(base), "%s", es->cur.path);
		pthread_mutex_unlock(&a->lock);
		if (!base[0]) {
			snprintf(why, sizeof(why),
			         "the installed image is not the delta's base (%s)",
			         im->has_base ? "hash differs or unknown" : "no base given");
			use_fallback = true;
		}
	}
	for (;;) {
		const ag_file *f = use_fallback ? &im->fallback : &im->file;
		const up_image *vt = use_fallback ? &v->fallback : &v->target;
		const char *kind = use_fallback ? "fallback" : im->delta ? "delta" : "full";
		if (use_fallback) {
			if (!im->has_fallback || !v->has_fallback) {
				snprintf(code, code_len, "delta_base_mismatch");
				return pq_err_set(PQ_ERR_NOTFOUND,
				                  "%s and the metadata has no full package to fall "
				                  "back to",
				                  why);
			}
			pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s: using the full package %s",
			       im->ecu_id, why, f->name);
			ag_event("fallback", json_pack("{s:s,s:s,s:s}", "ecu_id", im->ecu_id,
			                               "reason", why, "package", f->name));
		}
		pthread_mutex_lock(&a->lock);
		json_t *rec = ag_rec_image(a, i);
		json_object_set_new(rec, "package", json_string(kind));
		json_object_set_new(rec, "bytes", json_integer(0));
		json_object_set_new(
		    rec, "total",
		    json_integer((json_int_t)(f->enc.present ? f->enc.length : f->length)));
		if (use_fallback) {
			json_object_set_new(rec, "fallback_reason", json_string(why));
			json_t *fbn = json_object_get(a->st.campaign, "fallbacks");
			json_object_set_new(a->st.campaign, "fallbacks",
			                    json_integer(json_integer_value(fbn) + 1));
		}
		ag_save_locked(a);
		pthread_mutex_unlock(&a->lock);
		ag_write_status(a);

		dl_ctx d = {.a = a, .idx = i, .ecu_id = im->ecu_id, .package = kind};
		rc = obtain_package(a, h, f, vt, &d, pkg, sizeof(pkg), code, code_len);
		if (rc != PQ_OK)
			return rc;
		json_t *pm = ag_campaign_msg(a, "ota_download_progress", im->ecu_id);
		if (pm) {
			uint64_t tot = f->enc.present ? f->enc.length : f->length;
			json_object_set_new(pm, "progress", json_integer(100));
			json_object_set_new(pm, "bytes_downloaded", json_integer((json_int_t)tot));
			json_object_set_new(pm, "total_bytes", json_integer((json_int_t)tot));
			json_object_set_new(pm, "package", json_string(kind));
			ag_status_msg(a, pm);
		}
		pthread_mutex_lock(&a->lock);
		rec = ag_rec_image(a, i);
		json_object_set_new(
		    rec, "bytes",
		    json_integer((json_int_t)(f->enc.present ? f->enc.length : f->length)));
		json_object_set_new(rec, "downloaded", json_true());
		pthread_mutex_unlock(&a->lock);

		char work[PATH_MAX];
		rc = ag_path(work, sizeof(work), a->st.dir, "work");
		if (rc == PQ_OK)
			rc = pq_mkdirs(work, 0700);
		if (rc == PQ_OK &&
		    snprintf(out, sizeof(out), "%s/%s.img", work, im->ecu_id) >= (int)sizeof(out))
			rc = pq_err_set(PQ_ERR_RANGE, "path too long");
		if (rc != PQ_OK) {
			snprintf(code, code_len, "storage_error");
			return rc;
		}
		unlink(out);
		rc = decode(pkg, im->ecu_id, base[0] ? base : NULL, out, code, code_len);
		if (rc == PQ_OK)
			rc = ag_file_digest(out, sha, &crc, &len);
		if (rc == PQ_OK && im->has_image &&
		    (len != im->image_len || pq_memeq_ct(sha, im->image_sha256, 32) != 0)) {
			snprintf(code, code_len, "image_mismatch");
			rc = pq_err_set(PQ_ERR_VERIFY,
			                "the decoded image (%llu bytes) is not the target image",
			                (unsigned long long)len);
		}
		if (rc == PQ_OK)
			break;
		if (!use_fallback && im->delta && strcmp(code, "storage_error") != 0) {
			snprintf(why, sizeof(why), "the delta did not apply: %s", pq_err_detail());
			use_fallback = true;
			continue;
		}
		return pq_err_wrap(rc, "%s", f->name);
	}
	/* keep the image where install and later deltas find it */
	char dir[PATH_MAX];
	pq_hex_encode(sha, 32, hex);
	rc = ag_path(dir, sizeof(dir), a->st.dir, "images");
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, 0700);
	if (rc == PQ_OK && snprintf(final, sizeof(final), "%s/%s-%s.img", dir, im->ecu_id, hex) >=
	                       (int)sizeof(final))
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
	if (rc == PQ_OK && rename(out, final) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename %s: %s", out, strerror(errno));
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	json_t *rec = ag_rec_image(a, i);
	json_object_set_new(rec, "image", json_string(final));
	json_object_set_new(rec, "image_sha256", json_string(hex));
	json_object_set_new(rec, "image_len", json_integer((json_int_t)len));
	json_object_set_new(rec, "image_crc32", json_integer((json_int_t)crc));
	json_object_set_new(rec, "verified", json_true());
	ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	ag_write_status(a);
	pq_log(PQ_LOG_INFO, AG_LOGC, "%s: image %s ready (%llu bytes, %s)", im->ecu_id,
	       im->to_version, (unsigned long long)len,
	       use_fallback ? "full package after fallback"
	       : im->delta  ? "delta"
	                    : "full");
	return PQ_OK;
}

/* Loads the verified targets of the record. */
static int load_verified(ag_agent *a, size_t n, ag_verified *out)
{
	pthread_mutex_lock(&a->lock);
	json_t *arr = json_object_get(a->st.campaign, "verified");
	int rc =
	    json_array_size(arr) == n ? PQ_OK : pq_err_set(PQ_ERR_FORMAT, "no verified targets");
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		json_t *o = json_array_get(arr, i);
		rc = ag_up_image_parse(json_object_get(o, "target"), &out[i].target);
		json_t *fb = json_object_get(o, "fallback");
		if (rc == PQ_OK && json_is_object(fb)) {
			rc = ag_up_image_parse(fb, &out[i].fallback);
			out[i].has_fallback = rc == PQ_OK;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

static int downloads(ag_agent *a, ag_http *h, const ag_meta *m)
{
	char code[64];
	ag_verified *v = calloc(m->n_images, sizeof(*v));
	int rc = v ? load_verified(a, m->n_images, v) : pq_err_set(PQ_ERR_NOMEM, "verified");
	if (rc != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		free(v);
		return rc;
	}
	for (size_t i = 0; i < m->n_images; i++) {
		pthread_mutex_lock(&a->lock);
		json_t *rec = ag_rec_image(a, i);
		const char *img = json_string_value(json_object_get(rec, "image"));
		bool done =
		    json_is_true(json_object_get(rec, "verified")) && img && access(img, R_OK) == 0;
		pthread_mutex_unlock(&a->lock);
		if (done)
			continue;
		code[0] = '\0';
		rc = prepare_image(a, h, m, i, &v[i], code, sizeof(code));
		if (rc == PQ_OK)
			continue;
		if (interrupted(a))
			break;
		bool dl = !strcmp(code, "transport_error") || !strcmp(code, "length_mismatch") ||
		          !strcmp(code, "sha256_mismatch") || !strncmp(code, "http_", 5) ||
		          !strcmp(code, "storage_error");
		ag_fail(a, dl ? "ota_download_failed" : "ota_error", AG_PH_FAILED,
		        m->images[i].ecu_id, code[0] ? code : "internal", "%s", pq_err_detail());
		break;
	}
	free(v);
	return rc;
}

/* ---- the worker ------------------------------------------------------------------------ */

/* The record's per-image entries, made when the metadata is first worked on. */
static void ensure_images(ag_agent *a, const ag_meta *m)
{
	pthread_mutex_lock(&a->lock);
	json_t *arr = json_object_get(a->st.campaign, "images");
	if (json_array_size(arr) != m->n_images) {
		arr = json_array();
		for (size_t i = 0; arr && i < m->n_images; i++)
			json_array_append_new(
			    arr, json_pack("{s:s,s:s,s:s,s:I,s:I}", "ecu_id", m->images[i].ecu_id,
			                   "to_version", m->images[i].to_version, "package",
			                   m->images[i].delta ? "delta" : "full", "bytes",
			                   (json_int_t)0, "total",
			                   (json_int_t)(m->images[i].file.enc.present
			                                    ? m->images[i].file.enc.length
			                                    : m->images[i].file.length)));
		if (arr) {
			json_object_set_new(a->st.campaign, "images", arr);
			ag_save_locked(a);
		}
	}
	pthread_mutex_unlock(&a->lock);
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
	char code[64];
	bool parsed = false;

	pthread_mutex_lock(&a->lock);
	json_t *msg = json_incref(json_object_get(a->st.campaign, "metadata"));
	char phase[32];
	snprintf(phase, sizeof(phase), "%s", ag_rec_phase(a) ? ag_rec_phase(a) : "");
	pthread_mutex_unlock(&a->lock);

	if (ag_meta_parse(msg, a->o->vin, &m) != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "bad_metadata", "%s", pq_err_detail());
		goto done;
	}
	parsed = true;
	ensure_images(a, &m);
	if (!strcmp(phase, AG_PH_VERIFYING)) {
		code[0] = '\0';
		if (uptane(a, &h, &m, code, sizeof(code)) != PQ_OK) {
			pthread_mutex_lock(&a->lock);
			json_object_set_new(a->st.campaign, "verification", json_string("failed"));
			pthread_mutex_unlock(&a->lock);
			ag_fail(a, "ota_error", AG_PH_FAILED, NULL, code, "%s", pq_err_detail());
			goto done;
		}
		snprintf(phase, sizeof(phase), "%s", AG_PH_DOWNLOADING);
		pthread_mutex_lock(&a->lock);
		ag_rec_set_phase(a, phase);
		ag_save_locked(a);
		snprintf(a->https_group, sizeof(a->https_group), "%s", h.group);
		pthread_mutex_unlock(&a->lock);
		ag_write_status(a);
	}
	if (!strcmp(phase, AG_PH_DOWNLOADING)) {
		if (downloads(a, &h, &m) != PQ_OK)
			goto done;
		json_t *c = ag_campaign_msg(a, "ota_download_complete", NULL);
		json_t *list = json_array();
		for (size_t i = 0; c && list && i < m.n_images; i++) {
			char hex[65];
			pq_hex_encode(m.images[i].file.sha256, 32, hex);
			pthread_mutex_lock(&a->lock);
			json_t *kind = json_object_get(ag_rec_image(a, i), "package");
			json_array_append_new(list,
			                      json_pack("{s:s,s:s,s:I,s:O}", "ecu_id",
			                                m.images[i].ecu_id, "sha256", hex, "length",
			                                (json_int_t)m.images[i].file.length,
			                                "package", kind ? kind : json_null()));
			pthread_mutex_unlock(&a->lock);
		}
		if (c) {
			json_object_set_new(c, "images", list ? list : json_array());
			pthread_mutex_lock(&a->lock);
			json_t *fb = json_object_get(a->st.campaign, "fallbacks");
			if (json_integer_value(fb) > 0)
				json_object_set_new(c, "fallback", json_string("full"));
			pthread_mutex_unlock(&a->lock);
			ag_status_msg(a, c);
		} else {
			json_decref(list);
		}
		snprintf(phase, sizeof(phase), "%s", AG_PH_INSTALLING);
		pthread_mutex_lock(&a->lock);
		snprintf(a->https_group, sizeof(a->https_group), "%s",
		         h.group[0] ? h.group : a->https_group);
		ag_rec_set_phase(a, phase);
		ag_save_locked(a);
		pthread_mutex_unlock(&a->lock);
		ag_write_status(a);
	}
	if (!strcmp(phase, AG_PH_INSTALLING) || !strcmp(phase, AG_PH_CHECKING))
		ag_install(a, &m);
done:
	if (parsed)
		ag_meta_free(&m);
	json_decref(msg);
	pthread_mutex_lock(&a->lock);
	if (atomic_load(&a->cancel) && !ag_phase_final(ag_rec_phase(a)) &&
	    !atomic_load(&a->stopping)) {
		ag_rec_set_phase(a, AG_PH_CANCELLED);
		ag_save_locked(a);
	}
	a->wout = ag_phase_outcome(ag_rec_phase(a));
	a->wstate = AG_W_DONE;
	pthread_mutex_unlock(&a->lock);
	ag_write_status(a);
	ag_wake(a);
	return NULL;
}

int ag_worker_start(ag_agent *a)
{
	if (a->wstate != AG_W_IDLE)
		return pq_err_set(PQ_ERR_EXISTS, "a campaign is already being worked on");
	atomic_store(&a->cancel, false);
	a->wstate = AG_W_RUNNING;
	if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
		a->wstate = AG_W_IDLE;
		return pq_err_set(PQ_ERR_IO, "starting the campaign worker: %s", strerror(errno));
	}
	return PQ_OK;
}
