/* release_delta.c: an operator-supplied delta package (POST /api/v1/releases with
 * delta_upload_id, docs/api.md 7.6, or POST /api/v1/releases/{id}/deltas with upload_id),
 * checked by the delta worker (delta_jobs.c). The server does not trust it: it must be one SWPG
 * delta leaf whose descriptor names the base release's image and the new full image (read before
 * anything is decoded), and applying it to the base release's image must give the new full
 * image byte for byte. It is then written again under the header the server gives its own deltas
 * (the release's ECU, type and versions): SWPG packages carry no signature (their authenticity is
 * the SHA-256 the server's Uptane image repository signs, docs/package-format.md 1.3), so whoever
 * built the file, what the vehicles trust is the server's signed metadata over this re-written
 * file, whose payload the server has verified. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/text.h"
#include "crypto/hash.h"
#include "server/releases_int.h"

#define COPY_BUF (256 * 1024)

/* The upload is one delta leaf (e, of the open reader r). */
static int delta_leaf(pkg_reader *r, const pkg_entry **e)
{
	size_t n = 0;
	int rc = pkg_list(r, e, &n);
	if (rc != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "not a valid SWPG package (its layout)");
	if (n != 1 || swpg_is_container((*e)->hdr.software_type))
		return pq_err_set(PQ_ERR_VERIFY, "a container package, not one delta leaf");
	if ((*e)->hdr.compression != SWPG_COMP_DELTA)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "not a delta package (compression %s): make it with "
		                  "`pqota pack delta --from BASE --to NEW`",
		                  swpg_comp_name((*e)->hdr.compression));
	return PQ_OK;
}

/* The delta's descriptor names the base release's image (base_size bytes) as its base and
 * the uploaded full image as its target. Read before anything is decoded: a delta made
 * for another image is refused at once, and the decoder's zstd window (sized from the
 * base and the header's uncompressed_size, which the descriptor's target_size equals) is
 * then bounded by the two images the server already has. */
static int descriptor_matches(pkg_reader *r, const pkg_entry *e, const rel_delta_want *w,
                              uint64_t base_size)
{
	pkg_delta_info di;
	char got[65];
	if (pkg_delta_info_read(r, e, &di) != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "its delta descriptor is damaged or disagrees "
		                                 "with its header");
	pq_hex_encode(di.base_sha256, 32, got);
	if (di.base_size != base_size || strcmp(got, w->base_sha) != 0)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "the delta was made against another base: its descriptor names "
		                  "a base of %llu bytes with SHA-256 %s, the base release's image "
		                  "is %llu bytes with SHA-256 %s",
		                  (unsigned long long)di.base_size, got,
		                  (unsigned long long)base_size, w->base_sha);
	pq_hex_encode(di.target_sha256, 32, got);
	if (di.target_size != w->full_size || strcmp(got, w->full_sha) != 0)
		return pq_err_set(PQ_ERR_VERIFY,
		                  "the delta was made for another image: its descriptor names a "
		                  "target of %llu bytes with SHA-256 %s, the uploaded full image "
		                  "is %llu bytes with SHA-256 %s",
		                  (unsigned long long)di.target_size, got,
		                  (unsigned long long)w->full_size, w->full_sha);
	return PQ_OK;
}

/* Applies the delta to the base into the scratch file and removes it. pkg_apply_delta
 * checks the output against the descriptor's target SHA-256, which descriptor_matches
 * found equal to the full image's: an output that is not the full image fails here. */
static int delta_applies(pkg_reader *r, const pkg_entry *e, const rel_delta_want *w)
{
	int rc = pkg_apply_delta(r, e, w->base_image, w->scratch, &w->progress);
	unlink(w->scratch);
	if (rc == PQ_ERR_CANCELLED)
		return rc;
	if (rc != PQ_OK) /* the library's detail names server paths: not for the client */
		return pq_err_set(PQ_ERR_VERIFY,
		                  "the delta does not apply to the base release's image (its "
		                  "data is damaged, or it does not give its descriptor's target)");
	return PQ_OK;
}

/* The server's header for the verified delta h: the release's ECU, type and versions, the
 * build time, the real base's hash prefix; payload, sizes and CRC unchanged. */
static int server_header(swpg_header *h, const pkg_leaf_opts *o, const char *base_sha)
{
	uint8_t base[32];
	size_t n = 0;
	int rc = pq_hex_decode(base_sha, base, sizeof(base), &n);
	if (rc != PQ_OK || n != 32)
		return pq_err_set(PQ_ERR_INVAL, "base image SHA-256 %.64s", base_sha);
	h->target_ecu_id = o->ecu;
	h->software_type = o->type;
	h->version = o->version;
	h->version_timestamp = (uint32_t)time(NULL);
	h->version_serial = 0;
	h->source_ecu_id = 0;
	h->hop_count = 0;
	h->sequence_number = 0;
	h->base_version = o->base_version;
	memcpy(h->base_sha256_prefix, base, SWPG_BASE_HASH_PREFIX);
	return PQ_OK;
}

/* Copies len bytes from in (at its position) to out. */
static int copy_bytes(int in, int out, uint64_t len)
{
	char *buf = malloc(COPY_BUF);
	int rc = buf ? PQ_OK : pq_err_set(PQ_ERR_NOMEM, "copy buffer");
	while (rc == PQ_OK && len > 0) {
		size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF, got = 0;
		rc = pq_read_full(in, buf, want, &got);
		if (rc == PQ_OK && got != want)
			rc = pq_err_set(PQ_ERR_IO,
			                "the delta upload is shorter than its header says");
		if (rc == PQ_OK)
			rc = pq_write_all(out, buf, got);
		len -= got;
	}
	free(buf);
	return rc;
}

/* out_path: the header h, then the payload of the package file at src (after its header). */
static int rewrite(const char *src, const swpg_header *h, const char *out_path)
{
	uint8_t hdr[SWPG_HDR_LEN];
	int rc = swpg_encode(h, hdr);
	if (rc != PQ_OK)
		return rc;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, PQ_PRIVATE_FILE_MODE);
	if (in < 0 || out < 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", in < 0 ? src : out_path, strerror(errno));
	if (rc == PQ_OK && lseek(in, SWPG_HDR_LEN, SEEK_SET) != SWPG_HDR_LEN)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", src, strerror(errno));
	if (rc == PQ_OK)
		rc = pq_write_all(out, hdr, sizeof(hdr));
	if (rc == PQ_OK)
		rc = copy_bytes(in, out, h->payload_size);
	if (rc == PQ_OK && fsync(out) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", out_path, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) != 0 && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", out_path, strerror(errno));
	return rc;
}

/* The re-written package verifies (layout, CRC, descriptor) and is described in unit. */
static int describe(const char *path, pkg_unit *unit)
{
	pkg_reader *r = NULL;
	pkg_verify_report rep;
	const pkg_entry *e = NULL;
	size_t n = 0;
	int rc = pkg_open(path, &r);
	if (rc == PQ_OK)
		rc = pkg_verify(r, &rep, NULL);
	if (rc == PQ_OK)
		rc = pkg_list(r, &e, &n);
	if (rc == PQ_OK) {
		memset(unit, 0, sizeof(*unit));
		unit->hdr = e->hdr;
		unit->size = pkg_file_size(r);
		unit->delta = true;
		rc = pq_hash_file(PQ_HASH_SHA256, path, unit->sha256);
	}
	pkg_close(r);
	return rc;
}

/* Opens the delta package at delta_path (*r, closed by the caller) and checks its one leaf
 * (*e) and its descriptor against w, without decoding. */
static int open_checked(const char *delta_path, const rel_delta_want *w, pkg_reader **r,
                        const pkg_entry **e)
{
	struct stat st;
	*r = NULL;
	*e = NULL;
	if (stat(w->base_image, &st) != 0) /* the server's own file: not the upload's fault */
		return pq_err_set(PQ_ERR_IO, "the base release's image is missing: %s",
		                  strerror(errno));
	if (pkg_open(delta_path, r) != PQ_OK)
		return pq_err_set(PQ_ERR_VERIFY, "not an SWPG package (no valid SWPG header)");
	int rc = delta_leaf(*r, e);
	return rc == PQ_OK ? descriptor_matches(*r, *e, w, (uint64_t)st.st_size) : rc;
}

int rel_delta_precheck(const char *delta_path, const rel_delta_want *w)
{
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	int rc = open_checked(delta_path, w, &r, &e);
	pkg_close(r);
	return rc;
}

int rel_delta_adopt(const char *delta_path, const rel_delta_want *w, const pkg_leaf_opts *o,
                    const char *out_path, pkg_unit *unit)
{
	pkg_reader *r = NULL;
	const pkg_entry *e = NULL;
	int rc = open_checked(delta_path, w, &r, &e);
	if (rc == PQ_OK)
		rc = delta_applies(r, e, w);
	swpg_header h = e ? e->hdr : (swpg_header){0};
	pkg_close(r);
	if (rc == PQ_OK)
		rc = server_header(&h, o, w->base_sha);
	if (rc == PQ_OK)
		rc = rewrite(delta_path, &h, out_path);
	if (rc == PQ_OK)
		rc = describe(out_path, unit);
	if (rc != PQ_OK)
		unlink(out_path);
	return rc;
}

int rel_tmp_sweep(const char *dir, time_t now)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	char p[PATH_MAX];
	int removed = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		if (pq_path_join(p, sizeof(p), dir, de->d_name) != PQ_OK || lstat(p, &st) != 0 ||
		    !S_ISREG(st.st_mode) || now - st.st_mtime < REL_TMP_STALE_S)
			continue;
		if (unlink(p) == 0)
			removed++;
		else
			pq_log(PQ_LOG_WARN, "releases", "%s: %s", p, strerror(errno));
	}
	closedir(d);
	return removed;
}
