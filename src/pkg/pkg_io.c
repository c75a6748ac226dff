/* pkg_io.c: the package module's file I/O (positioned reads and writes, atomically committed
 * output files, mapped delta bases) and its small format pieces (delta descriptor, index
 * entry names, which container holds what). */
#include "pkg/pkg_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

int pkg__pread_full(int fd, void *buf, size_t len, uint64_t off)
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
			                  (unsigned long long)off + done);
		done += (size_t)n;
	}
	return PQ_OK;
}

int pkg__pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
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

bool pkg__same_file(int fd, const char *path)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino && a.st_nlink > 0;
}

/* ---- output files ------------------------------------------------------------------------ */

int pkg__out_open(pkg__out_file *o, const char *path, mode_t mode)
{
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->path = path;
	int rc = pq_check_output_path(path);
	if (rc != PQ_OK)
		return rc;
	if (snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(o->tmp)) {
		o->tmp[0] = '\0'; /* never unlink a cut name */
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", path);
	}
	o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (o->fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", o->tmp, strerror(errno));
	return PQ_OK;
}

int pkg__out_sink(const uint8_t *data, size_t len, void *user)
{
	pkg__out_file *o = user;
	int rc = pq_write_all(o->fd, data, len);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "%s", o->tmp);
	o->crc = pq_crc32(o->crc, data, len);
	o->written += len;
	return o->sha ? pq_hash_update(o->sha, data, len) : PQ_OK;
}

int pkg__out_commit(pkg__out_file *o)
{
	if (fsync(o->fd) != 0)
		return pq_err_set(PQ_ERR_IO, "fsync %s: %s", o->tmp, strerror(errno));
	close(o->fd);
	o->fd = -1;
	if (rename(o->tmp, o->path) != 0)
		return pq_err_set(PQ_ERR_IO, "rename to %s: %s", o->path, strerror(errno));
	return pq_fsync_dir_of(o->path);
}

void pkg__out_abort(pkg__out_file *o)
{
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
	}
	if (o->tmp[0])
		unlink(o->tmp);
}

/* ---- mapped files ------------------------------------------------------------------------ */

int pkg__map_file(const char *path, uint64_t max, void **map, size_t *len, uint8_t sha[32])
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
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return pq_err_set(PQ_ERR_RANGE, "%s: %lld bytes exceeds the delta limit of %llu",
		                  path, (long long)st.st_size, (unsigned long long)max);
	}
	/* hashed with reads, not through the mapping: its pages would count in this process */
	int rc = pq_hash_fd(PQ_HASH_SHA256, fd, sha);
	if (rc == PQ_OK && st.st_size > 0) {
		*map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*map == MAP_FAILED) {
			*map = NULL;
			rc = pq_err_set(PQ_ERR_IO, "mmap %s: %s", path, strerror(errno));
		}
	}
	close(fd);
	if (rc == PQ_OK)
		*len = (size_t)st.st_size;
	return rc == PQ_OK ? rc : pq_err_wrap(rc, "%s", path);
}

void pkg__unmap_file(void *map, size_t len)
{
	if (map)
		munmap(map, len);
}

/* ---- format pieces ----------------------------------------------------------------------- */

void pkg__delta_desc_encode(uint8_t d[PKG_DELTA_DESC_LEN], uint64_t base_size,
                            const uint8_t base_sha[32], uint64_t target_size,
                            const uint8_t target_sha[32])
{
	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): 4 magic bytes, no string */
	memcpy(d, PKG_DELTA_MAGIC, 4);
	pkg__put32(d + 4, 1);
	pkg__put64(d + 8, base_size);
	memcpy(d + 16, base_sha, 32);
	pkg__put64(d + 48, target_size);
	memcpy(d + 56, target_sha, 32);
}

int pkg__delta_desc_decode(const uint8_t d[PKG_DELTA_DESC_LEN], pkg__delta_desc *out)
{
	if (memcmp(d, PKG_DELTA_MAGIC, 4) != 0 || pkg__get32(d + 4) != 1)
		return pq_err_set(PQ_ERR_FORMAT, "delta payload lacks its descriptor");
	memset(out, 0, sizeof(*out));
	out->version = 1;
	out->base_size = pkg__get64(d + 8);
	memcpy(out->base_sha, d + 16, 32);
	out->target_size = pkg__get64(d + 48);
	memcpy(out->target_sha, d + 56, 32);
	return PQ_OK;
}

int pkg__check_name(const char *name)
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

bool pkg__may_hold(uint8_t parent, uint8_t child)
{
	if (parent == SWPG_TYPE_VEHICLE)
		return child == SWPG_TYPE_ZONE || !swpg_is_container(child);
	if (parent == SWPG_TYPE_ZONE)
		return !swpg_is_container(child);
	return false;
}
