/* prepare.c: the campaign worker's images (phase "downloading"), each in installation order:
 *
 *   download   STATE/downloads/<sha>.part, resumed with Range after a restart, retried with
 *              backoff; then the ciphertext's (or plaintext's) length and SHA-256;
 *   package    the content key unwrapped (X25519 + ML-KEM-768) and the package decrypted to
 *              STATE/work/<sha>.swpg; the plaintext package checked against the verified
 *              Uptane target (not only against the message);
 *   decode     SWPG header and CRC (pkg_verify), the image decoded (a delta against the
 *              installed image) and checked against the message's "image";
 *   fallback   a delta whose base is not the installed image, or that does not decode, is
 *              replaced by the full package of the same release (verified by Uptane too);
 *   keep       the image moves to STATE/images/<ecu>-<sha>.img, where install.c and later
 *              deltas find it, and the record says "verified".
 * Nothing is flashed before every image passed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "agent/agent_int.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "pkg/pkg.h"
#include "pkg/swpg.h"

#define DL_ATTEMPTS    8
#define DL_BACKOFF_MAX 30000
#define NAP_SLICE_MS   100

/* Sleeps up to ms, waking early when the agent stops or the campaign is cancelled. */
static void nap(ag_agent *a, int ms)
{
	for (int64_t end = pq_mono_ms() + ms; pq_mono_ms() < end && !ag_interrupted(a);)
		pq_sleep_ms(NAP_SLICE_MS);
}

/* STATE/<sub> (created) into dir[PATH_MAX]. */
static int state_subdir(ag_agent *a, const char *sub, char *dir)
{
	int rc = ag_path(dir, PATH_MAX, a->st.dir, sub);
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, 0700);
	return rc;
}

/* Merges fields (stolen) into the record of image i and saves the state. */
static int rec_image_update(ag_agent *a, size_t i, json_t *fields)
{
	pthread_mutex_lock(&a->lock);
	int rc = ag_jmerge(ag_rec_image(a, i), fields, "image record");
	if (rc == PQ_OK)
		ag_save_locked(a);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* ---- download ------------------------------------------------------------------------------ */

/* The campaign's bundle (docs/api.md 18.5): downloaded, decrypted and checked against its
 * verified Uptane target once, at the first image taken from it. */
typedef struct {
	const ag_file *f;
	bool has_target;
	up_image target; /* what the director and the image repository agreed on */
	bool ready;
	char path[PATH_MAX]; /* the plaintext bundle, once ready */
} bundle_src;

/* One package file of image idx being fetched. */
typedef struct {
	ag_agent *a;
	size_t idx;
	const char *ecu_id;
	const ag_file *f;
	const char *package;     /* "delta", "full", "fallback" */
	bundle_src *bundle;      /* the campaign's bundle, when f is taken from it */
	const char *bundle_path; /* f's path in it */
	uint64_t total;          /* bytes downloaded: the ciphertext when encrypted */
	int64_t last_ms;
} dl_ctx;

static json_t *progress_msg(ag_agent *a, const dl_ctx *d, uint64_t have)
{
	json_t *m = ag_campaign_msg(a, "ota_download_progress", d->ecu_id);
	json_int_t pct = d->total ? (json_int_t)(have * 100 / d->total) : 0;
	if (m && ag_jmerge(m,
	                   json_pack("{s:I,s:I,s:I,s:s}", "progress", pct, "bytes_downloaded",
	                             (json_int_t)have, "total_bytes", (json_int_t)d->total,
	                             "package", d->package),
	                   "ota_download_progress") != PQ_OK) {
		json_decref(m);
		return NULL;
	}
	return m;
}

static int dl_progress(void *user, uint64_t have)
{
	dl_ctx *d = user;
	ag_agent *a = d->a;
	if (ag_interrupted(a))
		return 1;
	int64_t now = pq_mono_ms();
	if (now - d->last_ms < 1000)
		return 0;
	d->last_ms = now;
	pthread_mutex_lock(&a->lock);
	/* progress only: a failure loses a number the next call sets again */
	if (ag_jset(ag_rec_image(a, d->idx), "bytes", json_integer((json_int_t)have)) != PQ_OK)
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s", d->ecu_id, pq_err_detail());
	pthread_mutex_unlock(&a->lock);
	ag_status_msg(a, progress_msg(a, d, have));
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

/* Fetches d->f into part (resuming), retrying transport errors with backoff. */
static int fetch_part(ag_agent *a, ag_http *h, dl_ctx *d, const char *part, char *code,
                      size_t code_len)
{
	char url[AG_URL_MAX + 1];
	int backoff = 1000;
	snprintf(url, sizeof(url), "%s", d->f->url);
	for (int attempt = 1;; attempt++) {
		struct stat st;
		long status = 0;
		uint64_t from = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
		if (from > 0 && from < d->total)
			pq_log(PQ_LOG_INFO, AG_LOGC, "%s: resuming %s at byte %llu of %llu",
			       d->ecu_id, d->f->name, (unsigned long long)from,
			       (unsigned long long)d->total);
		ag_event("download_start",
		         json_pack("{s:s,s:s,s:I,s:I,s:i}", "ecu_id", d->ecu_id, "name", d->f->name,
		                   "offset", (json_int_t)from, "length", (json_int_t)d->total,
		                   "attempt", attempt));
		int rc = ag_http_download(h, url, part, d->total, dl_progress, d, &status);
		if (rc == PQ_OK)
			return PQ_OK;
		if (rc == PQ_ERR_TIMEOUT) {
			snprintf(code, code_len, "interrupted");
			return rc;
		}
		if (rc == PQ_ERR_RANGE) {
			snprintf(code, code_len, "length_mismatch");
			return rc;
		}
		if (rc == PQ_ERR_VERIFY && (status == 401 || status == 403) && strip_token(url)) {
			pq_log(PQ_LOG_WARN, AG_LOGC,
			       "%s: the download token was refused (HTTP %ld): retrying with the "
			       "vehicle certificate only",
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
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s: download attempt %d: %s; retrying in %d ms",
		       d->ecu_id, attempt, pq_err_detail(), backoff);
		nap(a, backoff);
		if (ag_interrupted(a)) {
			snprintf(code, code_len, "interrupted");
			return pq_err_set(PQ_ERR_TIMEOUT, "download interrupted");
		}
		backoff = backoff * 2 > DL_BACKOFF_MAX ? DL_BACKOFF_MAX : backoff * 2;
	}
}

/* Downloads d->f to STATE/downloads/<hex of what is downloaded>.bin (path[PATH_MAX]) and
 * checks its length and SHA-256; a file with the wrong hash is fetched once more from
 * scratch. code receives the error_code on failure. */
static int download(ag_agent *a, ag_http *h, dl_ctx *d, char *path, char *code, size_t code_len)
{
	const ag_file *f = d->f;
	const uint8_t *want = f->enc.present ? f->enc.sha256 : f->sha256;
	char hex[65], part[PATH_MAX], dir[PATH_MAX];
	uint8_t got[32];
	pq_hex_encode(want, 32, hex);
	int rc = state_subdir(a, "downloads", dir);
	if (rc == PQ_OK && (snprintf(part, sizeof(part), "%s/%s.part", dir, hex) >= PATH_MAX ||
	                    snprintf(path, PATH_MAX, "%s/%s.bin", dir, hex) >= PATH_MAX))
		rc = pq_err_set(PQ_ERR_RANGE, "download path too long");
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	d->total = f->enc.present ? f->enc.length : f->length;
	for (int pass = 0; pass < 2; pass++) {
		struct stat st;
		/* a .bin of the right size was downloaded before a restart */
		if (stat(path, &st) != 0 || (uint64_t)st.st_size != d->total) {
			if ((rc = fetch_part(a, h, d, part, code, code_len)) != PQ_OK)
				return rc;
			if (rename(part, path) != 0) {
				snprintf(code, code_len, "storage_error");
				return pq_err_set(PQ_ERR_IO, "rename %s: %s", part,
				                  strerror(errno));
			}
		}
		if ((rc = pq_hash_file(PQ_HASH_SHA256, path, got)) != PQ_OK) {
			snprintf(code, code_len, "storage_error");
			return rc;
		}
		if (pq_memeq_ct(got, want, 32) == 0)
			return PQ_OK;
		unlink(path);
		pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s has the wrong SHA-256%s", d->ecu_id, f->name,
		       pass == 0 ? "; downloading it again" : "");
	}
	snprintf(code, code_len, "sha256_mismatch");
	return pq_err_set(PQ_ERR_VERIFY, "%s: the download's SHA-256 is not the one given",
	                  f->name);
}

/* ---- package ------------------------------------------------------------------------------- */

/* Unwraps the content key and decrypts the download dl into STATE/work/<sha>.swpg. */
static int decrypt(ag_agent *a, const ag_file *f, const char *dl, char *pkg_path, char *code,
                   size_t code_len)
{
	char work[PATH_MAX], hex[65];
	uint8_t key[PQ_WRAP_KEY_MAX];
	size_t key_len = sizeof(key);
	pq_hex_encode(f->sha256, 32, hex);
	int rc = state_subdir(a, "work", work);
	if (rc == PQ_OK && snprintf(pkg_path, PATH_MAX, "%s/%s.swpg", work, hex) >= PATH_MAX)
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
	return PQ_OK;
}

/* Checks the file at path against a verified Uptane target (its length and SHA-256). */
static int check_target(const char *path, const up_image *vt, const char *what, char *code,
                        size_t code_len)
{
	uint8_t sha[32];
	struct stat st;
	int rc = pq_hash_file(PQ_HASH_SHA256, path, sha);
	if (rc == PQ_OK && stat(path, &st) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	if (vt->length < 0 || (uint64_t)st.st_size != (uint64_t)vt->length ||
	    pq_memeq_ct(sha, vt->sha256, 32) != 0) {
		snprintf(code, code_len, "package_mismatch");
		return pq_err_set(PQ_ERR_VERIFY,
		                  "%s: the package (%lld bytes) is not the verified Uptane target",
		                  what, (long long)st.st_size);
	}
	return PQ_OK;
}

/* The campaign's bundle downloaded (resumably: its name is its SHA-256), decrypted when it
 * comes encrypted, and checked against its verified Uptane target before anything reads it;
 * once for all the images taken from it. */
static int bundle_ready(ag_agent *a, ag_http *h, dl_ctx *d, char *code, size_t code_len)
{
	bundle_src *b = d->bundle;
	char dl[PATH_MAX];
	dl_ctx bd = *d;
	if (b->ready)
		return PQ_OK;
	if (!b->has_target) {
		snprintf(code, code_len, "uptane_verification_failed");
		return pq_err_set(PQ_ERR_VERIFY, "the bundle has no verified Uptane target");
	}
	bd.f = b->f;
	bd.package = "bundle";
	int rc = download(a, h, &bd, dl, code, code_len);
	d->total = bd.total;
	if (rc == PQ_OK && b->f->enc.present)
		rc = decrypt(a, b->f, dl, b->path, code, code_len);
	else if (rc == PQ_OK)
		snprintf(b->path, sizeof(b->path), "%s", dl);
	if (rc == PQ_OK)
		rc = check_target(b->path, &b->target, b->f->name, code, code_len);
	b->ready = rc == PQ_OK;
	if (b->ready)
		pq_log(PQ_LOG_INFO, AG_LOGC,
		       "bundle %s: %s, %llu bytes, its Uptane target verified", b->f->name,
		       b->f->enc.present ? "decrypted" : "not encrypted",
		       (unsigned long long)b->f->length);
	return rc;
}

/* d->f's package copied out of the campaign's bundle into STATE/work/<sha>.swpg; the copy's
 * index hash is checked here, the package against Uptane by the caller. */
static int from_bundle(ag_agent *a, ag_http *h, dl_ctx *d, char *pkg_path, char *code,
                       size_t code_len)
{
	char work[PATH_MAX], hex[65];
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	int rc = bundle_ready(a, h, d, code, code_len);
	if (rc != PQ_OK)
		return rc;
	pq_hex_encode(d->f->sha256, 32, hex);
	rc = state_subdir(a, "work", work);
	if (rc == PQ_OK && snprintf(pkg_path, PATH_MAX, "%s/%s.swpg", work, hex) >= PATH_MAX)
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	if ((rc = pkg_open(d->bundle->path, &r)) == PQ_OK &&
	    (rc = pkg_find(r, d->bundle_path, &e)) == PQ_OK)
		rc = pkg_extract_package(r, e, pkg_path, NULL);
	pkg_close(r);
	if (rc != PQ_OK) {
		snprintf(code, code_len, "package_mismatch");
		return pq_err_wrap(rc, "%s in the bundle", d->bundle_path);
	}
	pq_log(PQ_LOG_INFO, AG_LOGC, "%s: %s taken from the campaign's bundle (%s)", d->ecu_id,
	       d->f->name, d->bundle_path);
	return PQ_OK;
}

/* The plaintext package of d->f at pkg_path[PATH_MAX] (decrypted from the download, the
 * download itself, or copied out of the campaign's bundle), checked against the verified
 * Uptane target vt. */
static int obtain_package(ag_agent *a, ag_http *h, dl_ctx *d, const up_image *vt, char *pkg_path,
                          char *code, size_t code_len)
{
	char dl[PATH_MAX];
	int rc = d->bundle ? from_bundle(a, h, d, pkg_path, code, code_len)
	                   : download(a, h, d, dl, code, code_len);
	if (rc != PQ_OK)
		return rc;
	if (!d->bundle && d->f->enc.present)
		rc = decrypt(a, d->f, dl, pkg_path, code, code_len);
	else if (!d->bundle)
		snprintf(pkg_path, PATH_MAX, "%s", dl);
	if (rc != PQ_OK)
		return rc;
	/* the package against what Uptane verified (not only against the message) */
	return check_target(pkg_path, vt, d->f->name, code, code_len);
}

/* ---- decode -------------------------------------------------------------------------------- */

/* SHA-256, CRC-32 and length of a file in one pass. */
int ag_file_digest(const char *path, uint8_t sha[32], uint32_t *crc, uint64_t *len)
{
	FILE *f = fopen(path, "rbe");
	pq_hash_ctx *h = NULL;
	uint8_t buf[65536];
	*crc = 0;
	*len = 0;
	if (!f)
		return pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	int rc = pq_hash_new(PQ_HASH_SHA256, &h);
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

/* Opens and deep-verifies a leaf package for ecu_id and decodes its image to out; a delta
 * applies within the agent's delta memory and resumes in out.part after an interruption. */
static int decode(ag_agent *a, const char *pkg_path, const char *ecu_id, const char *base,
                  const char *out, char *code, size_t code_len)
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
		goto out;
	}
	bool delta = e->hdr.compression == SWPG_COMP_DELTA;
	if (delta && !base) {
		snprintf(code, code_len, "delta_failed");
		rc = pq_err_set(PQ_ERR_NOTFOUND, "no installed image to apply the delta to");
		goto out;
	}
	pkg_apply_opts ao = {.mem_limit = (uint64_t)a->o->delta_memory, .resume = true};
	rc = delta ? pkg_apply_delta_ex(r, e, base, out, &ao)
	           : pkg_extract_image(r, e, NULL, out, NULL);
	if (delta &&
	    rc != PQ_OK) /* the full package follows: its partial work would be in the way */
		pkg_apply_discard(out);
	if (rc == PQ_OK && ao.resumed_bytes)
		pq_log(PQ_LOG_INFO, AG_LOGC, "%s: delta resumed after %llu bytes", ecu_id,
		       (unsigned long long)ao.resumed_bytes);
	if (rc != PQ_OK)
		snprintf(code, code_len, delta ? "delta_failed" : "package_invalid");
out:
	pkg_close(r);
	return rc;
}

/* A decoded image in STATE/work, and what it is. */
typedef struct {
	char path[PATH_MAX];
	uint8_t sha256[32];
	uint32_t crc32;
	uint64_t len;
} decoded;

/* Decodes the package at pkg into STATE/work/<ecu>.img and checks it against the message's
 * "image" (when given). */
static int decode_image(ag_agent *a, const ag_image *im, const char *pkg, const char *base,
                        decoded *out, char *code, size_t code_len)
{
	char work[PATH_MAX];
	int rc = state_subdir(a, "work", work);
	if (rc == PQ_OK &&
	    snprintf(out->path, sizeof(out->path), "%s/%s.img", work, im->ecu_id) >= PATH_MAX)
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	unlink(out->path);
	if ((rc = decode(a, pkg, im->ecu_id, base, out->path, code, code_len)) != PQ_OK ||
	    (rc = ag_file_digest(out->path, out->sha256, &out->crc32, &out->len)) != PQ_OK)
		return rc;
	if (im->has_image &&
	    (out->len != im->image_len || pq_memeq_ct(out->sha256, im->image_sha256, 32) != 0)) {
		snprintf(code, code_len, "image_mismatch");
		return pq_err_set(PQ_ERR_VERIFY,
		                  "the decoded image (%llu bytes) is not the target image",
		                  (unsigned long long)out->len);
	}
	return PQ_OK;
}

/* ---- one image ----------------------------------------------------------------------------- */

/* For a delta: the installed image it applies to (base[PATH_MAX]), or false with the reason
 * in why[AG_ERR_MAX] when there is none. */
static bool delta_base(ag_agent *a, const ag_image *im, char *base, char *why)
{
	pthread_mutex_lock(&a->lock);
	ag_ecu_state *es = ag_state_ecu(&a->st, im->ecu_id);
	bool ok = es && es->cur.present && es->cur.path[0] && im->has_base &&
	          pq_memeq_ct(es->cur.sha256, im->base_sha256, 32) == 0 &&
	          access(es->cur.path, R_OK) == 0;
	if (ok)
		snprintf(base, PATH_MAX, "%s", es->cur.path);
	pthread_mutex_unlock(&a->lock);
	if (!ok)
		snprintf(why, AG_ERR_MAX, "the installed image is not the delta's base (%s)",
		         im->has_base ? "hash differs or unknown" : "no base given");
	return ok;
}

/* Fetches one package of image idx (f, verified as vt) to pkg[PATH_MAX]: the record says
 * which, and the server hears when it is all there. */
static int fetch_package(ag_agent *a, ag_http *h, size_t idx, const ag_image *im, const ag_file *f,
                         const up_image *vt, const char *kind, bundle_src *bundle, char *pkg,
                         char *code, size_t code_len)
{
	dl_ctx d = {.a = a,
	            .idx = idx,
	            .ecu_id = im->ecu_id,
	            .f = f,
	            .package = kind,
	            .bundle = bundle,
	            .bundle_path = im->bundle_path};
	json_int_t total = (json_int_t)(f->enc.present ? f->enc.length : f->length);
	int rc = rec_image_update(
	    a, idx,
	    json_pack("{s:s,s:I,s:I}", "package", kind, "bytes", (json_int_t)0, "total", total));
	if (rc != PQ_OK)
		goto internal;
	ag_write_status(a);
	if ((rc = obtain_package(a, h, &d, vt, pkg, code, code_len)) != PQ_OK)
		return rc;
	ag_status_msg(a, progress_msg(a, &d, d.total));
	rc = rec_image_update(a, idx, json_pack("{s:I,s:b}", "bytes", total, "downloaded", 1));
	if (rc == PQ_OK)
		return PQ_OK;
internal:
	snprintf(code, code_len, "internal");
	return rc;
}

/* Switches image idx to its full package: why it does, in the log, the events and the
 * record. PQ_ERR_NOTFOUND (delta_base_mismatch) when the message offers none. */
static int fall_back(ag_agent *a, size_t idx, const ag_image *im, const ag_verified *v,
                     const char *why, char *code, size_t code_len)
{
	if (!im->has_fallback || !v->has_fallback) {
		snprintf(code, code_len, "delta_base_mismatch");
		return pq_err_set(PQ_ERR_NOTFOUND,
		                  "%s and the metadata has no full package to fall back to", why);
	}
	pq_log(PQ_LOG_WARN, AG_LOGC, "%s: %s: using the full package %s", im->ecu_id, why,
	       im->fallback.name);
	ag_event("fallback", json_pack("{s:s,s:s,s:s}", "ecu_id", im->ecu_id, "reason", why,
	                               "package", im->fallback.name));
	pthread_mutex_lock(&a->lock);
	json_int_t n = json_integer_value(json_object_get(a->st.campaign, "fallbacks")) + 1;
	int rc = ag_jset(a->st.campaign, "fallbacks", json_integer(n));
	if (rc == PQ_OK)
		rc = ag_jset(ag_rec_image(a, idx), "fallback_reason", json_string(why));
	pthread_mutex_unlock(&a->lock);
	if (rc != PQ_OK)
		snprintf(code, code_len, "internal");
	return rc;
}

/* Moves the decoded image to STATE/images/<ecu>-<sha>.img and records it as verified. */
static int keep_image(ag_agent *a, size_t idx, const ag_image *im, const decoded *img, char *code,
                      size_t code_len)
{
	char dir[PATH_MAX], final[PATH_MAX], hex[65];
	pq_hex_encode(img->sha256, 32, hex);
	int rc = state_subdir(a, "images", dir);
	if (rc == PQ_OK &&
	    snprintf(final, sizeof(final), "%s/%s-%s.img", dir, im->ecu_id, hex) >= PATH_MAX)
		rc = pq_err_set(PQ_ERR_RANGE, "path too long");
	if (rc == PQ_OK && rename(img->path, final) != 0)
		rc = pq_err_set(PQ_ERR_IO, "rename %s: %s", img->path, strerror(errno));
	if (rc != PQ_OK) {
		snprintf(code, code_len, "storage_error");
		return rc;
	}
	rc = rec_image_update(a, idx,
	                      json_pack("{s:s,s:s,s:I,s:I,s:b}", "image", final, "image_sha256",
	                                hex, "image_len", (json_int_t)img->len, "image_crc32",
	                                (json_int_t)img->crc32, "verified", 1));
	if (rc != PQ_OK) {
		snprintf(code, code_len, "internal");
		return rc;
	}
	ag_write_status(a);
	return PQ_OK;
}

/* Downloads, verifies and decodes image idx: the message's package (a delta or a full one)
 * and, when a delta cannot be used, the full package it names as fallback. */
static int prepare_image(ag_agent *a, ag_http *h, const ag_meta *m, size_t idx,
                         const ag_verified *v, bundle_src *bs, char *code, size_t code_len)
{
	const ag_image *im = &m->images[idx];
	char base[PATH_MAX] = "", pkg[PATH_MAX], why[AG_ERR_MAX] = "";
	const char *b = NULL;
	decoded img;
	int rc;
	bool fallback = im->delta && !delta_base(a, im, base, why);
	if (base[0])
		b = base;
	if (!fallback) {
		const char *kind = im->delta ? "delta" : "full";
		bundle_src *bundle = m->has_bundle && im->bundle_path[0] ? bs : NULL;
		rc = fetch_package(a, h, idx, im, &im->file, &v->target, kind, bundle, pkg, code,
		                   code_len);
		if (rc != PQ_OK)
			return rc;
		rc = decode_image(a, im, pkg, b, &img, code, code_len);
		if (rc != PQ_OK && (!im->delta || strcmp(code, "storage_error") == 0))
			return pq_err_wrap(rc, "%s", im->file.name);
		if (rc != PQ_OK) {
			snprintf(why, sizeof(why), "the delta did not apply: %s", pq_err_detail());
			fallback = true;
		}
	}
	if (fallback) {
		if ((rc = fall_back(a, idx, im, v, why, code, code_len)) != PQ_OK ||
		    (rc = fetch_package(a, h, idx, im, &im->fallback, &v->fallback, "fallback",
		                        NULL, pkg, code, code_len)) != PQ_OK)
			return rc;
		if ((rc = decode_image(a, im, pkg, b, &img, code, code_len)) != PQ_OK)
			return pq_err_wrap(rc, "%s", im->fallback.name);
	}
	if ((rc = keep_image(a, idx, im, &img, code, code_len)) != PQ_OK)
		return rc;
	pq_log(PQ_LOG_INFO, AG_LOGC, "%s: image %s ready (%llu bytes, %s)", im->ecu_id,
	       im->to_version, (unsigned long long)img.len,
	       fallback    ? "full package after fallback"
	       : im->delta ? "delta"
	                   : "full");
	return PQ_OK;
}

/* ---- every image --------------------------------------------------------------------------- */

/* Loads the verified targets of the record, and the bundle's (bs, when there is one). */
static int load_verified(ag_agent *a, size_t n, ag_verified *out, bundle_src *bs)
{
	int rc = PQ_OK;
	pthread_mutex_lock(&a->lock);
	json_t *arr = json_object_get(a->st.campaign, "verified");
	json_t *vb = json_object_get(a->st.campaign, "verified_bundle");
	if (json_is_object(vb)) {
		if ((rc = ag_up_image_parse(vb, &bs->target)) != PQ_OK)
			goto out;
		bs->has_target = true;
	}
	if (json_array_size(arr) != n) {
		rc = pq_err_set(PQ_ERR_FORMAT, "no verified targets");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i), *fb = json_object_get(o, "fallback");
		if ((rc = ag_up_image_parse(json_object_get(o, "target"), &out[i].target)) != PQ_OK)
			goto out;
		if (!json_is_object(fb))
			continue;
		if ((rc = ag_up_image_parse(fb, &out[i].fallback)) != PQ_OK)
			goto out;
		out[i].has_fallback = true;
	}
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Whether image i was prepared before (a restart): verified, and its file still there. */
static bool prepared(ag_agent *a, size_t i)
{
	pthread_mutex_lock(&a->lock);
	json_t *rec = ag_rec_image(a, i);
	const char *img = json_string_value(json_object_get(rec, "image"));
	bool done = json_is_true(json_object_get(rec, "verified")) && img && access(img, R_OK) == 0;
	pthread_mutex_unlock(&a->lock);
	return done;
}

/* Whether an error_code is a download's (ota_download_failed) rather than the update's. */
static bool download_code(const char *code)
{
	return !strcmp(code, "transport_error") || !strcmp(code, "length_mismatch") ||
	       !strcmp(code, "sha256_mismatch") || !strncmp(code, "http_", 5) ||
	       !strcmp(code, "storage_error");
}

int ag_prepare_images(ag_agent *a, ag_http *h, const ag_meta *m)
{
	char code[64];
	bundle_src bs = {.f = &m->bundle};
	ag_verified *v = calloc(m->n_images, sizeof(*v));
	int rc = v ? load_verified(a, m->n_images, v, &bs) : pq_err_set(PQ_ERR_NOMEM, "verified");
	if (rc != PQ_OK) {
		ag_fail(a, "ota_error", AG_PH_FAILED, NULL, "internal", "%s", pq_err_detail());
		goto out;
	}
	for (size_t i = 0; i < m->n_images; i++) {
		if (prepared(a, i))
			continue;
		code[0] = '\0';
		if ((rc = prepare_image(a, h, m, i, &v[i], &bs, code, sizeof(code))) == PQ_OK)
			continue;
		if (!ag_interrupted(a))
			ag_fail(a, download_code(code) ? "ota_download_failed" : "ota_error",
			        AG_PH_FAILED, m->images[i].ecu_id, code[0] ? code : "internal",
			        "%s", pq_err_detail());
		break;
	}
out:
	free(v);
	return rc;
}
