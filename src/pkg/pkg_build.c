/* pkg_build.c: building leaf packages (one image, compressed or a delta against a base) and
 * containers (zone and vehicle packages with their index). */
#include "pkg/pkg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/fileio.h"
#include "core/time.h"
#include "pkg/codec.h"
#include "pkg/delta.h"

/* Encodes h and writes it over the header room at the start of the output, then commits. */
static int write_header_commit(pkg__out_file *out, const swpg_header *h)
{
	uint8_t hdr[SWPG_HDR_LEN];
	int rc = swpg_encode(h, hdr);
	if (rc != PQ_OK)
		return rc;
	rc = pkg__pwrite_full(out->fd, hdr, sizeof(hdr), 0);
	if (rc != PQ_OK)
		return rc;
	return pkg__out_commit(out);
}

static uint32_t timestamp_or_now(uint32_t t)
{
	return t ? t : (uint32_t)(pq_real_ms() / 1000);
}

/* ---- leaves ---------------------------------------------------------------------------- */

/* A leaf being built. */
typedef struct {
	const char *image_path;
	const pkg_leaf_opts *o;
	bool delta;
	uint8_t comp;
	int in;        /* the image */
	uint64_t size; /* its size */
	void *base;    /* delta: the mapped base image */
	size_t base_len;
	uint8_t *buf;
	pq_hash_ctx *img_sha;
	pkg_enc *enc;
	pkg__out_file out;
} leaf_build;

/* Opens the image and checks its size against the format's limits. */
static int leaf_open_image(leaf_build *lb)
{
	struct stat st;
	lb->in = open(lb->image_path, O_RDONLY | O_CLOEXEC);
	if (lb->in < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s",
		                  lb->image_path, strerror(errno));
	if (fstat(lb->in, &st) != 0 || !S_ISREG(st.st_mode))
		return pq_err_set(PQ_ERR_IO, "%s: not a regular file", lb->image_path);
	if ((uint64_t)st.st_size > UINT32_MAX)
		return pq_err_set(PQ_ERR_RANGE, "%s: %lld bytes is too large for an SWPG package",
		                  lb->image_path, (long long)st.st_size);
	lb->size = (uint64_t)st.st_size;
	return PQ_OK;
}

/* Sets up the buffer, hash, encoder and output file, and leaves room for the header, written
 * last once its fields are known. */
static int leaf_prepare(leaf_build *lb, const char *out_path)
{
	lb->buf = malloc(PKG__IO_BUF);
	if (!lb->buf)
		return pq_err_set(PQ_ERR_NOMEM, "I/O buffer");
	int rc = pq_hash_new(PQ_HASH_SHA256, &lb->img_sha);
	if (rc != PQ_OK)
		return rc;
	rc = pkg_enc_new(lb->comp, lb->o->level, lb->size, NULL, 0, &lb->enc);
	if (rc != PQ_OK)
		return rc;
	rc = pkg__out_open(&lb->out, out_path, 0644);
	if (rc != PQ_OK)
		return rc;
	if (lseek(lb->out.fd, SWPG_HDR_LEN, SEEK_SET) < 0)
		return pq_err_set(PQ_ERR_IO, "seek: %s", strerror(errno));
	return PQ_OK;
}

/* Streams the image through the hash and the encoder into the output. */
static int leaf_stream(leaf_build *lb)
{
	uint64_t done = 0;
	for (;;) {
		size_t got = 0;
		int rc = pq_read_full(lb->in, lb->buf, PKG__IO_BUF, &got);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "%s", lb->image_path);
		done += got;
		if ((rc = pkg__cancelled(&lb->o->progress)) != PQ_OK)
			return rc;
		if (done > lb->size)
			return pq_err_set(PQ_ERR_IO, "%s grew while being packed", lb->image_path);
		rc = pq_hash_update(lb->img_sha, lb->buf, got);
		if (rc == PQ_OK)
			rc = pkg_enc_feed(lb->enc, lb->buf, got, got < PKG__IO_BUF, pkg__out_sink,
			                  &lb->out);
		pkg__progress(&lb->o->progress, done, lb->size);
		if (rc != PQ_OK)
			return rc;
		if (got < PKG__IO_BUF)
			break;
	}
	if (done != lb->size)
		return pq_err_set(PQ_ERR_IO, "%s changed size while being packed", lb->image_path);
	return PQ_OK;
}

/* The header, the commit, and what the build produced; crc and payload cover the whole
 * payload (a delta's descriptor included). */
static int leaf_finish(leaf_build *lb, const char *out_path, pkg_unit *unit, uint32_t crc,
                       uint64_t payload)
{
	const pkg_leaf_opts *o = lb->o;
	swpg_header h = {0};
	int rc;
	if (payload > UINT32_MAX)
		return pq_err_set(PQ_ERR_RANGE, "payload of %llu bytes exceeds the format's 4 GiB",
		                  (unsigned long long)payload);
	h.target_ecu_id = o->ecu;
	h.software_type = o->type;
	h.compression = lb->comp;
	h.payload_size = (uint32_t)payload;
	/* a delta's target may be larger: the descriptor has its size (pkg.h) */
	h.uncompressed_size = lb->size < UINT32_MAX ? (uint32_t)lb->size : UINT32_MAX;
	h.version = o->version;
	h.version_timestamp = timestamp_or_now(o->timestamp);
	h.version_serial = o->serial;
	h.crc32 = crc;
	h.source_ecu_id = o->source_ecu;
	h.sequence_number = o->sequence;
	if (lb->delta) {
		h.base_version = o->base_version;
		memcpy(h.base_sha256_prefix, unit->base_sha256, SWPG_BASE_HASH_PREFIX);
	}
	rc = write_header_commit(&lb->out, &h);
	if (rc != PQ_OK)
		return rc;
	unit->hdr = h;
	unit->size = SWPG_HDR_LEN + payload;
	unit->image_size = lb->size;
	unit->delta = lb->delta;
	return pq_hash_file(PQ_HASH_SHA256, out_path, unit->sha256);
}

/* Empties the output and places it after `room` bytes for the descriptors. */
static int payload_start(leaf_build *lb, size_t room)
{
	if (ftruncate(lb->out.fd, 0) != 0 ||
	    lseek(lb->out.fd, (off_t)(SWPG_HDR_LEN + room), SEEK_SET) < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", lb->out.tmp, strerror(errno));
	lb->out.written = 0;
	lb->out.crc = 0;
	return PQ_OK;
}

/* The delta's payload after room for its descriptors (*room bytes, raw): version 3 when both
 * images hold LZMA streams that leave the inner delta room in the apply limit (delta_x.c),
 * version 2 otherwise (delta_enc.c). */
static int delta_payload(leaf_build *lb, const uint8_t *tg, size_t tg_len,
                         const pkg__d2_enc_opts *eo, uint8_t raw[2 * PKG__D2_DESC_LEN],
                         size_t *room, pkg__delta_desc *d)
{
	pkg__dx_plan px;
	int rc = pkg__dx_plan_make(lb->base, lb->base_len, tg, tg_len, eo, &px);
	if (rc == PQ_OK && px.used) {
		*room = 2 * PKG__D2_DESC_LEN;
		rc = payload_start(lb, *room);
		if (rc == PQ_OK)
			rc = pkg__dx_encode(&px, eo, pkg__out_sink, &lb->out, d,
			                    raw + PKG__D2_DESC_LEN);
		pkg__dx_plan_free(&px);
		if (rc != PQ_ERR_RANGE)
			return rc;
		pq_err_clear(); /* no room beside the streams' windows: version 2 */
		rc = PQ_OK;
	}
	*room = PKG__D2_DESC_LEN;
	if (rc == PQ_OK)
		rc = payload_start(lb, *room);
	return rc == PQ_OK ? pkg__d2_encode(lb->base, lb->base_len, tg, tg_len, eo, pkg__out_sink,
	                                    &lb->out, d)
	                   : rc;
}

/* A delta: both images mapped, the payload written after room for the descriptors, which
 * are written last and folded into the CRC. */
static int leaf_delta(leaf_build *lb, const char *out_path, pkg_unit *unit)
{
	const pkg_leaf_opts *o = lb->o;
	void *tg = NULL;
	size_t tg_len = 0, room = 0;
	uint8_t raw[2 * PKG__D2_DESC_LEN];
	pkg__delta_desc d;
	pkg__d2_enc_opts eo = {.level = o->level,
	                       .mem_limit = o->mem_limit,
	                       .apply_limit = o->apply_limit,
	                       .progress = &o->progress};
	int rc = pkg__map_file(o->base_path, PKG_DELTA2_MAX, &lb->base, &lb->base_len,
	                       unit->base_sha256);
	if (rc == PQ_OK)
		rc =
		    pkg__map_file(lb->image_path, PKG_DELTA2_MAX, &tg, &tg_len, unit->image_sha256);
	if (rc == PQ_OK)
		rc = pkg__out_open(&lb->out, out_path, 0644);
	if (rc == PQ_OK)
		rc = delta_payload(lb, tg, tg_len, &eo, raw, &room, &d);
	if (rc == PQ_OK) {
		memcpy(d.base_sha, unit->base_sha256, 32);
		memcpy(d.target_sha, unit->image_sha256, 32);
		pkg__d2_desc_encode(raw, &d);
		rc = pkg__pwrite_full(lb->out.fd, raw, room, SWPG_HDR_LEN);
	}
	pkg__unmap_file(tg, tg_len);
	if (rc != PQ_OK)
		return rc;
	unit->base_size = lb->base_len;
	lb->size = tg_len;
	uint32_t crc =
	    (uint32_t)crc32_combine(pq_crc32(0, raw, room), lb->out.crc, (z_off_t)lb->out.written);
	return leaf_finish(lb, out_path, unit, crc, lb->out.written + room);
}

int pkg_build_leaf(const char *image_path, const pkg_leaf_opts *o, const char *out_path,
                   pkg_unit *unit)
{
	leaf_build lb = {.image_path = image_path,
	                 .o = o,
	                 .delta = o->base_path != NULL,
	                 .comp = o->base_path ? SWPG_COMP_DELTA : o->compression,
	                 .in = -1,
	                 .out = {.fd = -1}};
	int rc;

	memset(unit, 0, sizeof(*unit));
	if (o->type < SWPG_TYPE_APP || o->type > SWPG_TYPE_CFG)
		return pq_err_set(PQ_ERR_INVAL, "a leaf package has type APP, BOOT, CAL or CFG");
	if (!lb.delta && lb.comp > SWPG_COMP_ZSTD)
		return pq_err_set(PQ_ERR_INVAL, "compression %u: none, zlib or zstd", lb.comp);
	if (lb.delta) {
		rc = leaf_delta(&lb, out_path, unit);
		goto out;
	}
	rc = leaf_open_image(&lb);
	if (rc == PQ_OK)
		rc = leaf_prepare(&lb, out_path);
	if (rc == PQ_OK)
		rc = leaf_stream(&lb);
	if (rc == PQ_OK)
		rc = pq_hash_final(lb.img_sha, unit->image_sha256);
	if (rc == PQ_OK)
		rc = leaf_finish(&lb, out_path, unit, lb.out.crc, lb.out.written);
out:
	if (rc != PQ_OK)
		pkg__out_abort(&lb.out);
	if (lb.in >= 0)
		close(lb.in);
	pkg_enc_free(lb.enc);
	pq_hash_free(lb.img_sha);
	free(lb.buf);
	pkg__unmap_file(lb.base, lb.base_len);
	return rc;
}

/* ---- containers ------------------------------------------------------------------------ */

/* Reads child i's header, checks its name, size and type, and fills its index entry e
 * (the package's offset `off` in the payload); *size receives the package's size. */
static int index_entry(const pkg_child *children, size_t i, uint8_t parent_type, uint64_t off,
                       uint8_t *e, uint64_t *size)
{
	const pkg_child *ch = &children[i];
	uint8_t raw[SWPG_HDR_LEN];
	swpg_header c;
	struct stat st;
	int rc = pkg__check_name(ch->name);
	if (rc != PQ_OK)
		return rc;
	for (size_t j = 0; j < i; j++)
		if (strcmp(ch->name, children[j].name) == 0)
			return pq_err_set(PQ_ERR_INVAL, "entry name '%s' used twice", ch->name);
	int fd = open(ch->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", ch->path, strerror(errno));
	rc = fstat(fd, &st) == 0 ? pkg__pread_full(fd, raw, sizeof(raw), 0)
	                         : pq_err_set(PQ_ERR_IO, "%s: stat", ch->path);
	close(fd);
	if (rc == PQ_OK)
		rc = swpg_decode(raw, &c);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", ch->path);
	if ((uint64_t)st.st_size != SWPG_HDR_LEN + (uint64_t)c.payload_size)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %lld bytes, its header announces %llu",
		                  ch->path, (long long)st.st_size,
		                  (unsigned long long)SWPG_HDR_LEN + c.payload_size);
	if (!pkg__may_hold(parent_type, c.software_type))
		return pq_err_set(PQ_ERR_INVAL, "a %s container cannot hold %s (a %s package)",
		                  swpg_type_name(parent_type), ch->path,
		                  swpg_type_name(c.software_type));
	*size = (uint64_t)st.st_size;
	pkg__put16(e, c.target_ecu_id);
	e[2] = c.software_type;
	e[3] = c.compression;
	pkg__put64(e + 8, off);
	pkg__put64(e + 16, *size);
	rc = pq_hash_file(PQ_HASH_SHA256, ch->path, e + 24);
	if (rc != PQ_OK)
		return rc;
	memcpy(e + 56, ch->name, strlen(ch->name));
	return PQ_OK;
}

/* Fills the index (index_len bytes) and sizes[]; *total receives the payload size. */
static int build_index(const pkg_child *children, size_t n, uint8_t type, uint8_t *index,
                       size_t index_len, uint64_t *sizes, uint64_t *total)
{
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 4 magic bytes, no string */
	memcpy(index, PKG_INDEX_MAGIC, 4);
	pkg__put16(index + 4, 1);
	pkg__put16(index + 6, PKG_INDEX_ENTRY_LEN);
	pkg__put32(index + 8, (uint32_t)n);
	uint64_t off = index_len;
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = index + PKG_INDEX_HDR_LEN + i * PKG_INDEX_ENTRY_LEN;
		int rc = index_entry(children, i, type, off, e, &sizes[i]);
		if (rc != PQ_OK)
			return rc;
		off += sizes[i];
	}
	if (off > UINT32_MAX)
		return pq_err_set(PQ_ERR_RANGE, "container payload of %llu bytes exceeds 4 GiB",
		                  (unsigned long long)off);
	*total = off;
	return PQ_OK;
}

/* Appends the `size` bytes of the package file at path to out. */
static int copy_child(const char *path, uint64_t size, uint8_t *buf, pkg__out_file *out,
                      uint64_t total, const pkg_progress *p)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t left = size;
	int rc = PQ_OK;
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	while (rc == PQ_OK && left > 0) {
		size_t want = left < PKG__IO_BUF ? (size_t)left : PKG__IO_BUF, got = 0;
		rc = pq_read_full(fd, buf, want, &got);
		if (rc == PQ_OK && got != want)
			rc = pq_err_set(PQ_ERR_IO, "%s shrank while being packed", path);
		if (rc == PQ_OK)
			rc = pkg__out_sink(buf, got, out);
		left -= got;
		pkg__progress(p, out->written, total);
	}
	close(fd);
	return rc;
}

/* Writes the index and the children after the header room, then the header. */
static int write_container(const pkg_child *children, size_t n, const pkg_container_opts *o,
                           const uint8_t *index, size_t index_len, const uint64_t *sizes,
                           uint64_t total, pkg__out_file *out, swpg_header *h)
{
	uint8_t *buf = malloc(PKG__IO_BUF);
	int rc;
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "container index");
	if (lseek(out->fd, SWPG_HDR_LEN, SEEK_SET) < 0) {
		rc = pq_err_set(PQ_ERR_IO, "seek: %s", strerror(errno));
		goto out;
	}
	rc = pkg__out_sink(index, index_len, out);
	for (size_t i = 0; rc == PQ_OK && i < n; i++)
		rc = copy_child(children[i].path, sizes[i], buf, out, total, &o->progress);
	if (rc != PQ_OK)
		goto out;
	h->target_ecu_id = o->ecu;
	h->software_type = o->type;
	h->compression = SWPG_COMP_NONE;
	h->payload_size = h->uncompressed_size = (uint32_t)total;
	h->version = o->version;
	h->version_timestamp = timestamp_or_now(o->timestamp);
	h->version_serial = o->serial;
	h->crc32 = out->crc;
	rc = write_header_commit(out, h);
out:
	free(buf);
	return rc;
}

int pkg_build_container(const pkg_child *children, size_t n, const pkg_container_opts *o,
                        const char *out_path, pkg_unit *unit)
{
	uint8_t *index = NULL;
	uint64_t *sizes = NULL, total = 0;
	pkg__out_file out = {.fd = -1};
	swpg_header h = {0};
	int rc;

	memset(unit, 0, sizeof(*unit));
	if (o->type != SWPG_TYPE_ZONE && o->type != SWPG_TYPE_VEHICLE)
		return pq_err_set(PQ_ERR_INVAL, "a container is of type ZONE or VEHICLE");
	if (n == 0 || n > PKG_CHILDREN_MAX)
		return pq_err_set(PQ_ERR_INVAL, "a container holds 1..%d packages, not %zu",
		                  PKG_CHILDREN_MAX, n);
	size_t index_len = PKG_INDEX_HDR_LEN + n * PKG_INDEX_ENTRY_LEN;
	index = calloc(1, index_len);
	sizes = calloc(n, sizeof(*sizes));
	if (!index || !sizes) {
		rc = pq_err_set(PQ_ERR_NOMEM, "container index");
		goto out;
	}
	rc = build_index(children, n, o->type, index, index_len, sizes, &total);
	if (rc != PQ_OK)
		goto out;
	rc = pkg__out_open(&out, out_path, 0644);
	if (rc != PQ_OK)
		goto out;
	rc = write_container(children, n, o, index, index_len, sizes, total, &out, &h);
	if (rc != PQ_OK)
		goto out;
	unit->hdr = h;
	unit->size = SWPG_HDR_LEN + total;
	rc = pq_hash_file(PQ_HASH_SHA256, out_path, unit->sha256);
out:
	if (rc != PQ_OK)
		pkg__out_abort(&out);
	free(index);
	free(sizes);
	return rc;
}
