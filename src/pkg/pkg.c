/* pkg.c: building, reading, verifying, extracting and patching SWPG packages. */
#include "pkg/pkg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "core/fileio.h"
#include "crypto/hash.h"
#include "pkg/codec.h"

#define IO_BUF      (1u << 20)
#define ENTRIES_MAX 4096 /* entries in one file, all levels together */

/* ---- little helpers ------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pq_err_set(PQ_ERR_IO, "read at %llu: %s", (unsigned long long)off,
			                  strerror(errno));
		}
		if (n == 0)
			return pq_err_set(PQ_ERR_FORMAT, "unexpected end of file at %llu",
			                  (unsigned long long)(off + done));
		done += (size_t)n;
	}
	return PQ_OK;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pq_err_set(PQ_ERR_IO, "write: %s", strerror(errno));
		}
		done += (size_t)n;
	}
	return PQ_OK;
}

static void progress(const pkg_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->fn)
		p->fn(done, total, p->user);
}

/* An output file written as <path>.tmp.<pid> and renamed into place on success. */
typedef struct {
	int fd;
	char tmp[PATH_MAX];
	const char *path;
	uint64_t written;
	uint32_t crc;
	pq_hash_ctx *sha; /* optional: hash of everything written */
} out_file;

static int out_open(out_file *o, const char *path, mode_t mode)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->path = path;
	int rc = pq_check_output_path(path);
	if (rc != PQ_OK)
		return rc;
	if (snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(o->tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", path);
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (o->fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", o->tmp, strerror(errno));
	return PQ_OK;
}

/* sink: appends to the file, updating the CRC and hash */
static int out_sink(const uint8_t *data, size_t len, void *user)
{
	out_file *o = user;
	int rc = pq_write_all(o->fd, data, len);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", o->tmp);
	o->crc = pq_crc32(o->crc, data, len);
	o->written += len;
	return o->sha ? pq_hash_update(o->sha, data, len) : PQ_OK;
}

static int out_commit(out_file *o)
{
	if (fsync(o->fd) != 0)
		return pq_err_set(PQ_ERR_IO, "fsync %s: %s", o->tmp, strerror(errno));
	close(o->fd);
	o->fd = -1;
	if (rename(o->tmp, o->path) != 0)
		return pq_err_set(PQ_ERR_IO, "rename to %s: %s", o->path, strerror(errno));
	return pq_fsync_dir_of(o->path);
}

static void out_abort(out_file *o)
{
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
	}
	if (o->tmp[0])
		unlink(o->tmp);
}

/* Maps a whole file read-only (len 0 gives a NULL map). */
static int map_file(const char *path, void **map, size_t *len, uint8_t sha[32])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	*map = NULL;
	*len = 0;
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", path,
		                  strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pq_err_set(PQ_ERR_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)st.st_size > PKG_DELTA_MAX) {
		close(fd);
		return pq_err_set(PQ_ERR_RANGE, "%s: %lld bytes exceeds the delta limit of %llu",
		                  path, (long long)st.st_size, (unsigned long long)PKG_DELTA_MAX);
	}
	if (st.st_size > 0) {
		*map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*map == MAP_FAILED) {
			*map = NULL;
			close(fd);
			return pq_err_set(PQ_ERR_IO, "mmap %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	*len = (size_t)st.st_size;
	return pq_hash(PQ_HASH_SHA256, *map ? *map : (const void *)"", *len, sha);
}

static void unmap_file(void *map, size_t len)
{
	if (map)
		munmap(map, len);
}

/* ---- leaves ---------------------------------------------------------------------------- */

static void delta_desc_encode(uint8_t d[PKG_DELTA_DESC_LEN], uint64_t base_size,
                              const uint8_t base_sha[32], uint64_t target_size,
                              const uint8_t target_sha[32])
{
	memcpy(d, PKG_DELTA_MAGIC, 4);
	put32(d + 4, 1);
	put64(d + 8, base_size);
	memcpy(d + 16, base_sha, 32);
	put64(d + 48, target_size);
	memcpy(d + 56, target_sha, 32);
}

typedef struct {
	uint64_t base_size, target_size;
	uint8_t base_sha[32], target_sha[32];
} delta_desc;

static int delta_desc_decode(const uint8_t d[PKG_DELTA_DESC_LEN], delta_desc *out)
{
	if (memcmp(d, PKG_DELTA_MAGIC, 4) != 0 || get32(d + 4) != 1)
		return pq_err_set(PQ_ERR_FORMAT, "delta payload lacks its descriptor");
	out->base_size = get64(d + 8);
	memcpy(out->base_sha, d + 16, 32);
	out->target_size = get64(d + 48);
	memcpy(out->target_sha, d + 56, 32);
	return PQ_OK;
}

int pkg_build_leaf(const char *image_path, const pkg_leaf_opts *o, const char *out_path,
                   pkg_unit *unit)
{
	int in = -1, rc;
	struct stat st;
	out_file out = {.fd = -1};
	pkg_enc *enc = NULL;
	pq_hash_ctx *img_sha = NULL;
	uint8_t *buf = NULL;
	void *base = NULL;
	size_t base_len = 0;
	bool delta = o->base_path != NULL;
	uint8_t comp = delta ? SWPG_COMP_DELTA : o->compression;
	uint8_t hdr[SWPG_HDR_LEN], desc[PKG_DELTA_DESC_LEN];
	swpg_header h = {0};

	memset(unit, 0, sizeof(*unit));
	if (o->type < SWPG_TYPE_APP || o->type > SWPG_TYPE_CFG)
		return pq_err_set(PQ_ERR_INVAL, "a leaf package has type APP, BOOT, CAL or CFG");
	if (!delta && comp > SWPG_COMP_ZSTD)
		return pq_err_set(PQ_ERR_INVAL, "compression %u: none, zlib or zstd", comp);
	in = open(image_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s",
		                  image_path, strerror(errno));
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = pq_err_set(PQ_ERR_IO, "%s: not a regular file", image_path);
		goto out;
	}
	if ((uint64_t)st.st_size > UINT32_MAX || (delta && (uint64_t)st.st_size > PKG_DELTA_MAX)) {
		rc = pq_err_set(PQ_ERR_RANGE, "%s: %lld bytes is too large for a%s package",
		                image_path, (long long)st.st_size, delta ? " delta" : "n SWPG");
		goto out;
	}
	if (delta) {
		rc = map_file(o->base_path, &base, &base_len, unit->base_sha256);
		if (rc != PQ_OK)
			goto out;
		unit->base_size = base_len;
	}
	buf = malloc(IO_BUF);
	if (!buf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "I/O buffer");
		goto out;
	}
	rc = pq_hash_new(PQ_HASH_SHA256, &img_sha);
	if (rc == PQ_OK)
		rc = pkg_enc_new(comp, o->level, (uint64_t)st.st_size, base, base_len, &enc);
	if (rc == PQ_OK)
		rc = out_open(&out, out_path, 0644);
	if (rc != PQ_OK)
		goto out;
	/* header (and delta descriptor) are written last, once their fields are known */
	memset(desc, 0, sizeof(desc));
	if (lseek(out.fd, SWPG_HDR_LEN + (delta ? PKG_DELTA_DESC_LEN : 0), SEEK_SET) < 0)
		rc = pq_err_set(PQ_ERR_IO, "seek: %s", strerror(errno));
	uint64_t done = 0;
	while (rc == PQ_OK) {
		size_t got = 0;
		rc = pq_read_full(in, buf, IO_BUF, &got);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "%s", image_path);
			break;
		}
		done += got;
		if (done > (uint64_t)st.st_size) {
			rc = pq_err_set(PQ_ERR_IO, "%s grew while being packed", image_path);
			break;
		}
		rc = pq_hash_update(img_sha, buf, got);
		if (rc == PQ_OK)
			rc = pkg_enc_feed(enc, buf, got, got < IO_BUF, out_sink, &out);
		progress(&o->progress, done, (uint64_t)st.st_size);
		if (got < IO_BUF)
			break;
	}
	if (rc == PQ_OK && done != (uint64_t)st.st_size)
		rc = pq_err_set(PQ_ERR_IO, "%s changed size while being packed", image_path);
	if (rc == PQ_OK)
		rc = pq_hash_final(img_sha, unit->image_sha256);
	if (rc != PQ_OK)
		goto out;
	uint32_t crc = out.crc;
	uint64_t payload = out.written;
	if (delta) {
		delta_desc_encode(desc, base_len, unit->base_sha256, done, unit->image_sha256);
		rc = pwrite_full(out.fd, desc, sizeof(desc), SWPG_HDR_LEN);
		if (rc != PQ_OK)
			goto out;
		crc = (uint32_t)crc32_combine(pq_crc32(0, desc, sizeof(desc)), crc,
		                              (z_off_t)out.written);
		payload += PKG_DELTA_DESC_LEN;
	}
	if (payload > UINT32_MAX) {
		rc = pq_err_set(PQ_ERR_RANGE, "payload of %llu bytes exceeds the format's 4 GiB",
		                (unsigned long long)payload);
		goto out;
	}
	h.target_ecu_id = o->ecu;
	h.software_type = o->type;
	h.compression = comp;
	h.payload_size = (uint32_t)payload;
	h.uncompressed_size = (uint32_t)done;
	h.version = o->version;
	h.version_timestamp = o->timestamp ? o->timestamp : (uint32_t)time(NULL);
	h.version_serial = o->serial;
	h.crc32 = crc;
	h.source_ecu_id = o->source_ecu;
	h.sequence_number = o->sequence;
	if (delta) {
		h.base_version = o->base_version;
		memcpy(h.base_sha256_prefix, unit->base_sha256, SWPG_BASE_HASH_PREFIX);
	}
	rc = swpg_encode(&h, hdr);
	if (rc == PQ_OK)
		rc = pwrite_full(out.fd, hdr, sizeof(hdr), 0);
	if (rc == PQ_OK)
		rc = out_commit(&out);
	if (rc != PQ_OK)
		goto out;
	unit->hdr = h;
	unit->size = SWPG_HDR_LEN + payload;
	unit->image_size = done;
	unit->delta = delta;
	rc = pq_hash_file(PQ_HASH_SHA256, out_path, unit->sha256);
out:
	if (rc != PQ_OK)
		out_abort(&out);
	if (in >= 0)
		close(in);
	pkg_enc_free(enc);
	pq_hash_free(img_sha);
	free(buf);
	unmap_file(base, base_len);
	return rc;
}

/* ---- containers ------------------------------------------------------------------------ */

static int check_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > PKG_NAME_MAX)
		return pq_err_set(PQ_ERR_INVAL, "entry name '%s' must have 1..%d characters",
		                  name ? name : "", PKG_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-'))
			return pq_err_set(PQ_ERR_INVAL, "entry name '%s': only A-Z a-z 0-9 _ -",
			                  name);
	return PQ_OK;
}

/* May a container of `parent` type hold a package of `child` type? */
static bool may_hold(uint8_t parent, uint8_t child)
{
	if (parent == SWPG_TYPE_VEHICLE)
		return child == SWPG_TYPE_ZONE || !swpg_is_container(child);
	if (parent == SWPG_TYPE_ZONE)
		return !swpg_is_container(child);
	return false;
}

int pkg_build_container(const pkg_child *children, size_t n, const pkg_container_opts *o,
                        const char *out_path, pkg_unit *unit)
{
	uint8_t *index = NULL, *buf = NULL, hdr[SWPG_HDR_LEN];
	uint64_t *sizes = NULL, total = 0;
	out_file out = {.fd = -1};
	swpg_header h = {0};
	int rc = PQ_OK;

	memset(unit, 0, sizeof(*unit));
	if (o->type != SWPG_TYPE_ZONE && o->type != SWPG_TYPE_VEHICLE)
		return pq_err_set(PQ_ERR_INVAL, "a container is of type ZONE or VEHICLE");
	if (n == 0 || n > PKG_CHILDREN_MAX)
		return pq_err_set(PQ_ERR_INVAL, "a container holds 1..%d packages, not %zu",
		                  PKG_CHILDREN_MAX, n);
	size_t index_len = PKG_INDEX_HDR_LEN + n * PKG_INDEX_ENTRY_LEN;
	index = calloc(1, index_len);
	sizes = calloc(n, sizeof(*sizes));
	buf = malloc(IO_BUF);
	if (!index || !sizes || !buf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "container index");
		goto out;
	}
	memcpy(index, PKG_INDEX_MAGIC, 4);
	put16(index + 4, 1);
	put16(index + 6, PKG_INDEX_ENTRY_LEN);
	put32(index + 8, (uint32_t)n);
	uint64_t off = index_len;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch[SWPG_HDR_LEN], *e = index + PKG_INDEX_HDR_LEN + i * PKG_INDEX_ENTRY_LEN;
		swpg_header c;
		struct stat st;
		int fd;
		rc = check_name(children[i].name);
		for (size_t j = 0; rc == PQ_OK && j < i; j++)
			if (strcmp(children[i].name, children[j].name) == 0)
				rc = pq_err_set(PQ_ERR_INVAL, "entry name '%s' used twice",
				                children[i].name);
		if (rc != PQ_OK)
			goto out;
		fd = open(children[i].path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", children[i].path, strerror(errno));
			goto out;
		}
		rc = fstat(fd, &st) == 0 ? pread_full(fd, ch, sizeof(ch), 0)
		                         : pq_err_set(PQ_ERR_IO, "%s: stat", children[i].path);
		close(fd);
		if (rc == PQ_OK)
			rc = swpg_decode(ch, &c);
		if (rc != PQ_OK) {
			rc = pq_err_wrap(rc, "%s", children[i].path);
			goto out;
		}
		if ((uint64_t)st.st_size != SWPG_HDR_LEN + (uint64_t)c.payload_size) {
			rc = pq_err_set(PQ_ERR_FORMAT, "%s: %lld bytes, its header announces %llu",
			                children[i].path, (long long)st.st_size,
			                (unsigned long long)SWPG_HDR_LEN + c.payload_size);
			goto out;
		}
		if (!may_hold(o->type, c.software_type)) {
			rc =
			    pq_err_set(PQ_ERR_INVAL, "a %s container cannot hold %s (a %s package)",
			               swpg_type_name(o->type), children[i].path,
			               swpg_type_name(c.software_type));
			goto out;
		}
		sizes[i] = (uint64_t)st.st_size;
		put16(e, c.target_ecu_id);
		e[2] = c.software_type;
		e[3] = c.compression;
		put64(e + 8, off);
		put64(e + 16, sizes[i]);
		rc = pq_hash_file(PQ_HASH_SHA256, children[i].path, e + 24);
		if (rc != PQ_OK)
			goto out;
		memcpy(e + 56, children[i].name, strlen(children[i].name));
		off += sizes[i];
	}
	total = off;
	if (total > UINT32_MAX) {
		rc = pq_err_set(PQ_ERR_RANGE, "container payload of %llu bytes exceeds 4 GiB",
		                (unsigned long long)total);
		goto out;
	}
	rc = out_open(&out, out_path, 0644);
	if (rc == PQ_OK && lseek(out.fd, SWPG_HDR_LEN, SEEK_SET) < 0)
		rc = pq_err_set(PQ_ERR_IO, "seek: %s", strerror(errno));
	if (rc == PQ_OK)
		rc = out_sink(index, index_len, &out);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		int fd = open(children[i].path, O_RDONLY | O_CLOEXEC);
		uint64_t left = sizes[i];
		if (fd < 0) {
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", children[i].path, strerror(errno));
			break;
		}
		while (rc == PQ_OK && left > 0) {
			size_t want = left < IO_BUF ? (size_t)left : IO_BUF, got = 0;
			rc = pq_read_full(fd, buf, want, &got);
			if (rc == PQ_OK && got != want)
				rc = pq_err_set(PQ_ERR_IO, "%s shrank while being packed",
				                children[i].path);
			if (rc == PQ_OK)
				rc = out_sink(buf, got, &out);
			left -= got;
			progress(&o->progress, out.written, total);
		}
		close(fd);
	}
	if (rc != PQ_OK)
		goto out;
	h.target_ecu_id = o->ecu;
	h.software_type = o->type;
	h.compression = SWPG_COMP_NONE;
	h.payload_size = h.uncompressed_size = (uint32_t)total;
	h.version = o->version;
	h.version_timestamp = o->timestamp ? o->timestamp : (uint32_t)time(NULL);
	h.version_serial = o->serial;
	h.crc32 = out.crc;
	rc = swpg_encode(&h, hdr);
	if (rc == PQ_OK)
		rc = pwrite_full(out.fd, hdr, sizeof(hdr), 0);
	if (rc == PQ_OK)
		rc = out_commit(&out);
	if (rc != PQ_OK)
		goto out;
	unit->hdr = h;
	unit->size = SWPG_HDR_LEN + total;
	rc = pq_hash_file(PQ_HASH_SHA256, out_path, unit->sha256);
out:
	if (rc != PQ_OK)
		out_abort(&out);
	free(index);
	free(sizes);
	free(buf);
	return rc;
}

/* ---- reading --------------------------------------------------------------------------- */

struct pkg_reader {
	int fd;
	uint64_t size;
	char name[PATH_MAX];
	pkg_entry *e;
	size_t n, cap;
	bool listed;
};

int pkg_open(const char *path, pkg_reader **out)
{
	pkg_reader *r = NULL;
	struct stat st;
	uint8_t hdr[SWPG_HDR_LEN];
	swpg_header h;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", path,
		                  strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pq_err_set(PQ_ERR_IO, "%s: not a regular file", path);
	}
	if (st.st_size < SWPG_HDR_LEN) {
		close(fd);
		return pq_err_set(PQ_ERR_FORMAT, "%s: %lld bytes is shorter than a package header",
		                  path, (long long)st.st_size);
	}
	rc = pread_full(fd, hdr, sizeof(hdr), 0);
	if (rc == PQ_OK)
		rc = swpg_decode(hdr, &h);
	if (rc == PQ_OK && (uint64_t)st.st_size != SWPG_HDR_LEN + (uint64_t)h.payload_size)
		rc = pq_err_set(PQ_ERR_FORMAT, "%lld bytes, the header announces %llu (%s)",
		                (long long)st.st_size,
		                (unsigned long long)SWPG_HDR_LEN + h.payload_size,
		                (uint64_t)st.st_size < SWPG_HDR_LEN + (uint64_t)h.payload_size
		                    ? "truncated"
		                    : "trailing data");
	if (rc == PQ_OK && !(r = calloc(1, sizeof(*r))))
		rc = pq_err_set(PQ_ERR_NOMEM, "reader");
	if (rc != PQ_OK) {
		close(fd);
		return pq_err_wrap(rc, "%s", path);
	}
	r->fd = fd;
	r->size = (uint64_t)st.st_size;
	snprintf(r->name, sizeof(r->name), "%s", path);
	*out = r;
	return PQ_OK;
}

void pkg_close(pkg_reader *r)
{
	if (!r)
		return;
	close(r->fd);
	free(r->e);
	free(r);
}

uint64_t pkg_file_size(const pkg_reader *r)
{
	return r->size;
}

static int add_entry(pkg_reader *r, const pkg_entry *e)
{
	if (r->n == ENTRIES_MAX)
		return pq_err_set(PQ_ERR_RANGE, "more than %d packages in one file", ENTRIES_MAX);
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		pkg_entry *ne = realloc(r->e, cap * sizeof(*ne));
		if (!ne)
			return pq_err_set(PQ_ERR_NOMEM, "package list");
		r->e = ne;
		r->cap = cap;
	}
	r->e[r->n++] = *e;
	return PQ_OK;
}

/* Reads and validates the index of the container entry `ci` and appends its children
 * (recursively). Layout rule: children follow the index back to back, in index order,
 * and exactly fill the payload; so no gaps, overlaps or self-references are possible. */
static int list_children(pkg_reader *r, size_t ci)
{
	pkg_entry parent = r->e[ci];
	uint64_t pstart = parent.offset + SWPG_HDR_LEN, plen = parent.hdr.payload_size;
	uint8_t ih[PKG_INDEX_HDR_LEN], ent[PKG_INDEX_ENTRY_LEN];
	int rc;

	if (plen < PKG_INDEX_HDR_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "%s: container too small for its index",
		                  parent.path[0] ? parent.path : "root");
	rc = pread_full(r->fd, ih, sizeof(ih), pstart);
	if (rc != PQ_OK)
		return rc;
	uint32_t count = get32(ih + 8);
	if (memcmp(ih, PKG_INDEX_MAGIC, 4) != 0 || get16(ih + 4) != 1 ||
	    get16(ih + 6) != PKG_INDEX_ENTRY_LEN || get32(ih + 12) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "%s: bad container index header",
		                  parent.path[0] ? parent.path : "root");
	if (count == 0 || count > PKG_CHILDREN_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %u entries (1..%d allowed)",
		                  parent.path[0] ? parent.path : "root", count, PKG_CHILDREN_MAX);
	uint64_t index_len = PKG_INDEX_HDR_LEN + (uint64_t)count * PKG_INDEX_ENTRY_LEN;
	if (index_len > plen)
		return pq_err_set(PQ_ERR_FORMAT, "%s: index of %u entries overruns the container",
		                  parent.path[0] ? parent.path : "root", count);
	uint64_t expect = index_len;
	size_t first = r->n;
	for (uint32_t i = 0; i < count; i++) {
		pkg_entry c = {0};
		uint8_t ch[SWPG_HDR_LEN];
		char name[PKG_NAME_MAX + 1] = {0};
		rc = pread_full(r->fd, ent, sizeof(ent),
		                pstart + PKG_INDEX_HDR_LEN + (uint64_t)i * PKG_INDEX_ENTRY_LEN);
		if (rc != PQ_OK)
			return rc;
		memcpy(name, ent + 56, PKG_NAME_MAX);
		for (size_t k = strlen(name); k < PKG_NAME_MAX; k++)
			if (ent[56 + k])
				return pq_err_set(PQ_ERR_FORMAT, "entry %u: name not NUL-padded",
				                  i);
		if (check_name(name) != PQ_OK || get32(ent + 4) != 0)
			return pq_err_set(PQ_ERR_FORMAT, "entry %u: bad name or reserved bytes", i);
		uint64_t off = get64(ent + 8), size = get64(ent + 16);
		if (off != expect || size < SWPG_HDR_LEN || size > plen - off)
			return pq_err_set(PQ_ERR_FORMAT,
			                  "entry %u (%s): offset %llu size %llu breaks the layout "
			                  "(expected offset %llu within %llu bytes)",
			                  i, name, (unsigned long long)off,
			                  (unsigned long long)size, (unsigned long long)expect,
			                  (unsigned long long)plen);
		expect = off + size;
		for (size_t k = first; k < r->n; k++)
			if (r->e[k].depth == parent.depth + 1 &&
			    strcmp(strrchr(r->e[k].path, '/') ? strrchr(r->e[k].path, '/') + 1
			                                      : r->e[k].path,
			           name) == 0)
				return pq_err_set(PQ_ERR_FORMAT, "entry name '%s' used twice",
				                  name);
		c.offset = pstart + off;
		c.size = size;
		c.depth = parent.depth + 1;
		c.has_sha256 = true;
		memcpy(c.sha256, ent + 24, 32);
		if (parent.path[0])
			snprintf(c.path, sizeof(c.path), "%.40s/%.8s", parent.path, name);
		else
			snprintf(c.path, sizeof(c.path), "%s", name);
		rc = pread_full(r->fd, ch, sizeof(ch), c.offset);
		if (rc == PQ_OK)
			rc = swpg_decode(ch, &c.hdr);
		if (rc != PQ_OK)
			return pq_err_wrap(rc, "%s", c.path);
		if (SWPG_HDR_LEN + (uint64_t)c.hdr.payload_size != size)
			return pq_err_set(PQ_ERR_FORMAT, "%s: index says %llu bytes, header %llu",
			                  c.path, (unsigned long long)size,
			                  (unsigned long long)SWPG_HDR_LEN + c.hdr.payload_size);
		if (c.hdr.target_ecu_id != get16(ent) || c.hdr.software_type != ent[2] ||
		    c.hdr.compression != ent[3])
			return pq_err_set(PQ_ERR_FORMAT,
			                  "%s: index entry disagrees with its header", c.path);
		if (!may_hold(parent.hdr.software_type, c.hdr.software_type))
			return pq_err_set(PQ_ERR_FORMAT, "%s: a %s cannot hold a %s package",
			                  c.path, swpg_type_name(parent.hdr.software_type),
			                  swpg_type_name(c.hdr.software_type));
		rc = add_entry(r, &c);
		if (rc != PQ_OK)
			return rc;
		if (swpg_is_container(c.hdr.software_type)) {
			rc = list_children(r, r->n - 1);
			if (rc != PQ_OK)
				return rc;
		}
	}
	if (expect != plen)
		return pq_err_set(PQ_ERR_FORMAT, "%s: %llu bytes after the last entry",
		                  parent.path[0] ? parent.path : "root",
		                  (unsigned long long)(plen - expect));
	return PQ_OK;
}

int pkg_list(pkg_reader *r, const pkg_entry **entries, size_t *n)
{
	if (!r->listed) {
		uint8_t hdr[SWPG_HDR_LEN];
		pkg_entry root = {0};
		int rc = pread_full(r->fd, hdr, sizeof(hdr), 0);
		if (rc == PQ_OK)
			rc = swpg_decode(hdr, &root.hdr);
		root.size = r->size;
		r->n = 0;
		if (rc == PQ_OK)
			rc = add_entry(r, &root);
		if (rc == PQ_OK && swpg_is_container(root.hdr.software_type))
			rc = list_children(r, 0);
		if (rc != PQ_OK) {
			r->n = 0;
			return pq_err_wrap(rc, "%s", r->name);
		}
		r->listed = true;
	}
	*entries = r->e;
	*n = r->n;
	return PQ_OK;
}

int pkg_find(pkg_reader *r, const char *what, const pkg_entry **out)
{
	const pkg_entry *all;
	size_t n;
	uint16_t ecu;
	int rc = pkg_list(r, &all, &n);
	*out = NULL;
	if (rc != PQ_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(all[i].path, what) == 0) {
			*out = &all[i];
			return PQ_OK;
		}
	}
	bool by_ecu = swpg_ecu_parse(what, &ecu) == PQ_OK;
	pq_err_clear();
	for (size_t i = 0; i < n; i++) {
		const char *slash = strrchr(all[i].path, '/');
		const char *base = slash ? slash + 1 : all[i].path;
		bool hit =
		    strcmp(base, what) == 0 || (by_ecu && all[i].hdr.target_ecu_id == ecu &&
		                                !swpg_is_container(all[i].hdr.software_type));
		if (!hit)
			continue;
		if (*out)
			return pq_err_set(PQ_ERR_INVAL, "'%s' matches %s and %s: give the path",
			                  what, (*out)->path, all[i].path);
		*out = &all[i];
	}
	if (!*out)
		return pq_err_set(PQ_ERR_NOTFOUND, "no package '%s' in %s", what, r->name);
	return PQ_OK;
}

/* Streams bytes [off, off+len) of the file through fn. */
typedef int (*range_fn)(const uint8_t *data, size_t len, uint64_t pos, void *user);

static int read_range(pkg_reader *r, uint64_t off, uint64_t len, range_fn fn, void *user,
                      const pkg_progress *p)
{
	uint8_t *buf = malloc(IO_BUF);
	uint64_t done = 0;
	int rc = PQ_OK;
	if (!buf)
		return pq_err_set(PQ_ERR_NOMEM, "I/O buffer");
	while (rc == PQ_OK && done < len) {
		size_t want = len - done < IO_BUF ? (size_t)(len - done) : IO_BUF;
		rc = pread_full(r->fd, buf, want, off + done);
		if (rc == PQ_OK)
			rc = fn(buf, want, off + done, user);
		done += want;
		progress(p, done, len);
	}
	free(buf);
	return rc;
}

struct copy_state {
	out_file *out;
};

static int copy_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	(void)pos;
	return out_sink(data, len, ((struct copy_state *)user)->out);
}

int pkg_extract_package(pkg_reader *r, const pkg_entry *e, const char *out_path,
                        const pkg_progress *p)
{
	out_file out;
	uint8_t sha[32];
	int rc = out_open(&out, out_path, 0644);
	struct copy_state cs = {&out};
	if (rc != PQ_OK)
		return rc;
	rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	if (rc == PQ_OK)
		rc = read_range(r, e->offset, e->size, copy_fn, &cs, p);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, sha);
	if (rc == PQ_OK && e->has_sha256 && pq_memeq_ct(sha, e->sha256, 32) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: SHA-256 does not match its index entry",
		                e->path);
	if (rc == PQ_OK)
		rc = out_commit(&out);
	if (rc != PQ_OK)
		out_abort(&out);
	pq_hash_free(out.sha);
	return rc;
}

/* Decoding a leaf's payload: CRC over the payload, decoder over the compressed bytes (after
 * the descriptor for deltas), output to a sink. */
struct decode_state {
	pq_hash_ctx *sha;       /* over the whole package, when its index names a hash */
	uint64_t payload_start; /* file offset of the payload */
	uint64_t skip;          /* payload bytes not fed to the decoder (delta descriptor) */
	uint32_t crc;
	pkg_dec *dec;
	pkg_sink_fn sink;
	void *sink_user;
};

static int decode_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	struct decode_state *s = user;
	uint64_t rel = pos - s->payload_start;
	s->crc = pq_crc32(s->crc, data, len);
	if (s->sha) {
		int rc = pq_hash_update(s->sha, data, len);
		if (rc != PQ_OK)
			return rc;
	}
	if (rel + len <= s->skip)
		return PQ_OK;
	size_t from = rel < s->skip ? (size_t)(s->skip - rel) : 0;
	return pkg_dec_feed(s->dec, data + from, len - from, s->sink, s->sink_user);
}

static int read_delta_desc(pkg_reader *r, const pkg_entry *e, delta_desc *d)
{
	uint8_t raw[PKG_DELTA_DESC_LEN];
	if (e->hdr.payload_size < PKG_DELTA_DESC_LEN)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta payload too small", e->path);
	int rc = pread_full(r->fd, raw, sizeof(raw), e->offset + SWPG_HDR_LEN);
	if (rc == PQ_OK)
		rc = delta_desc_decode(raw, d);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", e->path[0] ? e->path : r->name);
	if (d->target_size != e->hdr.uncompressed_size ||
	    memcmp(d->base_sha, e->hdr.base_sha256_prefix, SWPG_BASE_HASH_PREFIX) != 0)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta descriptor disagrees with the header",
		                  e->path[0] ? e->path : r->name);
	if (d->base_size > PKG_DELTA_MAX)
		return pq_err_set(PQ_ERR_FORMAT, "%s: delta base of %llu bytes exceeds the limit",
		                  e->path, (unsigned long long)d->base_size);
	return PQ_OK;
}

/* Decodes entry e (a leaf) into sink; base is the delta's base image (or NULL). */
static int decode_leaf(pkg_reader *r, const pkg_entry *e, const void *base, size_t base_len,
                       pkg_sink_fn sink, void *user, const pkg_progress *p)
{
	struct decode_state s = {
	    .payload_start = e->offset + SWPG_HDR_LEN, .sink = sink, .sink_user = user};
	int rc;
	if (swpg_is_container(e->hdr.software_type))
		return pq_err_set(PQ_ERR_INVAL, "%s is a container: extract its packages",
		                  e->path[0] ? e->path : "the root");
	if (e->hdr.compression == SWPG_COMP_DELTA)
		s.skip = PKG_DELTA_DESC_LEN;
	rc = pkg_dec_new(e->hdr.compression, e->hdr.uncompressed_size, base, base_len, &s.dec);
	if (rc == PQ_OK && e->has_sha256) {
		uint8_t hdr[SWPG_HDR_LEN];
		rc = pq_hash_new(PQ_HASH_SHA256, &s.sha);
		if (rc == PQ_OK)
			rc = pread_full(r->fd, hdr, sizeof(hdr), e->offset);
		if (rc == PQ_OK)
			rc = pq_hash_update(s.sha, hdr, sizeof(hdr));
	}
	if (rc == PQ_OK)
		rc = read_range(r, s.payload_start, e->hdr.payload_size, decode_fn, &s, p);
	if (rc == PQ_OK && s.sha) {
		uint8_t sha[32];
		rc = pq_hash_final(s.sha, sha);
		if (rc == PQ_OK && pq_memeq_ct(sha, e->sha256, 32) != 0)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s: SHA-256 does not match its index entry",
			                e->path);
	}
	if (rc == PQ_OK && s.crc != e->hdr.crc32)
		rc = pq_err_set(PQ_ERR_VERIFY, "%s: payload CRC-32 %08x, header says %08x",
		                e->path[0] ? e->path : r->name, s.crc, e->hdr.crc32);
	if (rc == PQ_OK)
		rc = pkg_dec_finish(s.dec);
	pkg_dec_free(s.dec);
	pq_hash_free(s.sha);
	return rc;
}

int pkg_extract_image(pkg_reader *r, const pkg_entry *e, const char *base_path,
                      const char *out_path, const pkg_progress *p)
{
	if (e->hdr.compression == SWPG_COMP_DELTA) {
		if (!base_path)
			return pq_err_set(PQ_ERR_INVAL, "%s is a delta: give the base image",
			                  e->path[0] ? e->path : r->name);
		return pkg_apply_delta(r, e, base_path, out_path, p);
	}
	out_file out;
	int rc = out_open(&out, out_path, 0644);
	if (rc != PQ_OK)
		return rc;
	rc = decode_leaf(r, e, NULL, 0, out_sink, &out, p);
	if (rc == PQ_OK)
		rc = out_commit(&out);
	if (rc != PQ_OK)
		out_abort(&out);
	return rc;
}

int pkg_apply_delta(pkg_reader *r, const pkg_entry *e, const char *base_path, const char *out_path,
                    const pkg_progress *p)
{
	delta_desc d;
	void *base = NULL;
	size_t base_len = 0;
	uint8_t base_sha[32], target_sha[32];
	out_file out = {.fd = -1};
	const char *what = e->path[0] ? e->path : r->name;
	int rc;

	if (e->hdr.compression != SWPG_COMP_DELTA)
		return pq_err_set(PQ_ERR_INVAL, "%s is not a delta package", what);
	rc = read_delta_desc(r, e, &d);
	if (rc != PQ_OK)
		return rc;
	rc = map_file(base_path, &base, &base_len, base_sha);
	if (rc != PQ_OK)
		return rc;
	if (base_len != d.base_size || pq_memeq_ct(base_sha, d.base_sha, 32) != 0) {
		char want[65], got[65], v[24];
		pq_hex_encode(d.base_sha, 32, want);
		pq_hex_encode(base_sha, 32, got);
		swpg_version_str(e->hdr.base_version, v, sizeof(v));
		rc = pq_err_set(
		    PQ_ERR_VERIFY,
		    "wrong base for %s: it patches version %s (%llu bytes, sha256 %.16s...), "
		    "%s is %zu bytes, sha256 %.16s...",
		    what, v, (unsigned long long)d.base_size, want, base_path, base_len, got);
		unmap_file(base, base_len);
		return rc;
	}
	rc = out_open(&out, out_path, 0644);
	if (rc == PQ_OK)
		rc = pq_hash_new(PQ_HASH_SHA256, &out.sha);
	if (rc == PQ_OK)
		rc = decode_leaf(r, e, base, base_len, out_sink, &out, p);
	if (rc == PQ_OK)
		rc = pq_hash_final(out.sha, target_sha);
	if (rc == PQ_OK && pq_memeq_ct(target_sha, d.target_sha, 32) != 0)
		rc = pq_err_set(PQ_ERR_VERIFY,
		                "%s: the patched image does not match the target "
		                "SHA-256",
		                what);
	if (rc == PQ_OK)
		rc = out_commit(&out);
	if (rc != PQ_OK)
		out_abort(&out);
	pq_hash_free(out.sha);
	unmap_file(base, base_len);
	return rc;
}

/* ---- deep verification in one sequential pass ------------------------------------------ */

typedef struct {
	const pkg_entry *e;
	pq_hash_ctx *sha; /* over the whole package (children only) */
	uint32_t crc;     /* over the payload */
	bool decode;      /* a leaf that can be decoded (not a delta) */
	pkg_dec *dec;     /* its decoder, alive only while the leaf streams by */
	uint64_t skip;    /* payload bytes not decoded (delta descriptor) */
} verify_slot;

struct verify_state {
	verify_slot *slots;
	size_t n;
	pkg_verify_report *rep;
	int failed_at; /* slot index of the first failure, -1 */
};

static int verify_fail(struct verify_state *vs, size_t i, int rc)
{
	if (vs->failed_at < 0) {
		vs->failed_at = (int)i;
		snprintf(vs->rep->failed_path, sizeof(vs->rep->failed_path), "%s",
		         vs->slots[i].e->path[0] ? vs->slots[i].e->path : "(root)");
	}
	return rc;
}

static int verify_fn(const uint8_t *data, size_t len, uint64_t pos, void *user)
{
	struct verify_state *vs = user;
	uint64_t end = pos + len;
	/* entries are few and sorted by offset; each block touches the chain root..leaf */
	for (size_t i = 0; i < vs->n; i++) {
		verify_slot *s = &vs->slots[i];
		uint64_t a = s->e->offset, b = s->e->offset + s->e->size;
		if (b <= pos || a >= end)
			continue;
		uint64_t from = a > pos ? a : pos, to = b < end ? b : end;
		const uint8_t *p = data + (from - pos);
		size_t n = (size_t)(to - from);
		int rc = PQ_OK;
		/* one decoder at a time: created as the leaf starts, freed as it ends */
		if (s->decode && !s->dec && from == a)
			rc = pkg_dec_new(s->e->hdr.compression, s->e->hdr.uncompressed_size, NULL,
			                 0, &s->dec);
		if (rc == PQ_OK && s->sha)
			rc = pq_hash_update(s->sha, p, n);
		/* payload part */
		uint64_t ps = a + SWPG_HDR_LEN;
		if (rc == PQ_OK && to > ps) {
			uint64_t pf = from > ps ? from : ps;
			const uint8_t *pp = data + (pf - pos);
			size_t pn = (size_t)(to - pf);
			s->crc = pq_crc32(s->crc, pp, pn);
			uint64_t rel = pf - ps;
			if (s->dec && rel + pn > s->skip) {
				size_t cut = rel < s->skip ? (size_t)(s->skip - rel) : 0;
				rc = pkg_dec_feed(s->dec, pp + cut, pn - cut, NULL, NULL);
			}
		}
		if (rc == PQ_OK && s->dec && to == b) {
			rc = pkg_dec_finish(s->dec);
			pkg_dec_free(s->dec);
			s->dec = NULL;
			s->decode = false;
		}
		if (rc != PQ_OK)
			return verify_fail(
			    vs, i, pq_err_wrap(rc, "%s", s->e->path[0] ? s->e->path : "root"));
	}
	return PQ_OK;
}

int pkg_verify(pkg_reader *r, pkg_verify_report *rep, const pkg_progress *p)
{
	const pkg_entry *all;
	size_t n;
	struct verify_state vs = {.rep = rep, .failed_at = -1};
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = pkg_list(r, &all, &n);
	if (rc != PQ_OK) {
		snprintf(rep->failed_path, sizeof(rep->failed_path), "(layout)");
		return rc;
	}
	vs.slots = calloc(n, sizeof(*vs.slots));
	if (!vs.slots)
		return pq_err_set(PQ_ERR_NOMEM, "verification state");
	vs.n = n;
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		verify_slot *s = &vs.slots[i];
		s->e = &all[i];
		if (all[i].has_sha256)
			rc = pq_hash_new(PQ_HASH_SHA256, &s->sha);
		if (rc != PQ_OK || swpg_is_container(all[i].hdr.software_type))
			continue;
		rep->leaves++;
		if (all[i].hdr.compression == SWPG_COMP_DELTA) {
			delta_desc d;
			rc = read_delta_desc(r, &all[i], &d); /* the base is not at hand */
		} else {
			s->decode = true;
		}
		if (rc != PQ_OK)
			verify_fail(&vs, i, rc);
	}
	rep->packages = n;
	if (rc == PQ_OK)
		rc = read_range(r, 0, r->size, verify_fn, &vs, p);
	for (size_t i = 0; rc == PQ_OK && i < n; i++) {
		verify_slot *s = &vs.slots[i];
		const char *what = s->e->path[0] ? s->e->path : "root";
		if (s->crc != s->e->hdr.crc32) {
			rc = verify_fail(&vs, i,
			                 pq_err_set(PQ_ERR_VERIFY,
			                            "%s: payload CRC-32 %08x, header says %08x",
			                            what, s->crc, s->e->hdr.crc32));
			break;
		}
		if (s->sha) {
			uint8_t sha[32];
			rc = pq_hash_final(s->sha, sha);
			if (rc == PQ_OK && pq_memeq_ct(sha, s->e->sha256, 32) != 0)
				rc = verify_fail(
				    &vs, i,
				    pq_err_set(PQ_ERR_VERIFY,
				               "%s: SHA-256 does not match its index entry", what));
		}
		if (rc == PQ_OK && s->dec) {
			rc = pkg_dec_finish(s->dec);
			if (rc != PQ_OK)
				rc = verify_fail(&vs, i, pq_err_wrap(rc, "%s", what));
		}
	}
	if (rc == PQ_OK)
		rep->bytes_checked = r->size;
	for (size_t i = 0; i < n; i++) {
		pq_hash_free(vs.slots[i].sha);
		pkg_dec_free(vs.slots[i].dec);
	}
	free(vs.slots);
	return rc;
}
