/* fileio.c: bounded reads, atomic writes, mkdir -p. */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* out = dir/name, or name alone when dir is "". */
static int join_two(char *out, size_t cap, const char *dir, const char *name)
{
	int n = dir[0] ? snprintf(out, cap, "%s/%s", dir, name) : snprintf(out, cap, "%s", name);
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0';
		return pq_err_set(PQ_ERR_RANGE, "path too long: %.200s/%.200s", dir, name);
	}
	return PQ_OK;
}

/* Whether name has a ".." component ("..", "../x", "x/..", "x/../y"). */
static bool has_dotdot(const char *name)
{
	for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2)
		if ((p == name || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

int pq_path_join(char *out, size_t cap, const char *dir, const char *name)
{
	if (cap)
		out[0] = '\0';
	if (name[0] == '/' || has_dotdot(name))
		return pq_err_set(PQ_ERR_INVAL, "'%.200s' is not a name inside %.200s", name,
		                  dir[0] ? dir : ".");
	return join_two(out, cap, dir, name);
}

int pq_path_resolve(char *out, size_t cap, const char *base, const char *path)
{
	return join_two(out, cap, path[0] == '/' ? "" : base, path);
}

int pq_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pq_err_set(PQ_ERR_IO, "write: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return PQ_OK;
}

int pq_read_full(int fd, void *buf, size_t len, size_t *got)
{
	char *p = buf;
	size_t total = 0;
	while (total < len) {
		ssize_t n = read(fd, p + total, len - total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pq_err_set(PQ_ERR_IO, "read: %s", strerror(errno));
		}
		if (n == 0)
			break;
		total += (size_t)n;
	}
	*got = total;
	return PQ_OK;
}

int pq_file_read(const char *path, size_t max, char **out, size_t *len)
{
	int fd = -1, rc;
	char *buf = NULL;
	struct stat st;
	size_t got = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", path,
		                  strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = pq_err_set(PQ_ERR_INVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = pq_err_set(PQ_ERR_RANGE, "%s: %lld bytes exceeds the limit of %zu", path,
		                (long long)st.st_size, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = pq_err_set(PQ_ERR_NOMEM, "%s: allocating %lld bytes", path,
		                (long long)st.st_size);
		goto out;
	}
	rc = pq_read_full(fd, buf, (size_t)st.st_size, &got);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", path);
		goto out;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

int pq_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         bool overwrite)
{
	char tmp[PATH_MAX];
	int fd = -1, rc = PQ_OK;

	if (!overwrite && access(path, F_OK) == 0)
		return pq_err_set(PQ_ERR_EXISTS, "%s exists (refusing to overwrite)", path);
	rc = pq_check_output_path(path);
	if (rc != PQ_OK)
		return rc;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto fail;
	}
	rc = pq_write_all(fd, data, len);
	if (rc != PQ_OK) {
		rc = pq_err_wrap(rc, "%s", tmp);
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	if (!overwrite) {
		/* link() fails if the target appeared meanwhile: no silent replacement */
		if (link(tmp, path) != 0) {
			rc = pq_err_set(errno == EEXIST ? PQ_ERR_EXISTS : PQ_ERR_IO, "%s: %s", path,
			                strerror(errno));
			goto fail;
		}
		unlink(tmp);
		return pq_fsync_dir_of(path);
	}
	if (rename(tmp, path) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "rename to %s: %s", path, strerror(errno));
		goto fail;
	}
	return pq_fsync_dir_of(path);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int pq_check_output_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return pq_err_set(PQ_ERR_INVAL,
		                  "%s exists and is not a regular file: refusing to replace it",
		                  path);
	return PQ_OK;
}

int pq_fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n >= sizeof(dir))
		return pq_err_set(PQ_ERR_RANGE, "path too long");
	if (slash && n == 0)
		n = 1; /* "/file" */
	memcpy(dir, slash ? path : ".", slash ? n : 1);
	dir[slash ? n : 1] = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", dir, strerror(errno));
	int rc =
	    fsync(fd) == 0 ? PQ_OK : pq_err_set(PQ_ERR_IO, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

/* mkdir -p; with exact, each directory made is chmod'ed to mode (the umask undone). */
static int mkdirs(const char *path, mode_t mode, bool exact)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return pq_err_set(PQ_ERR_INVAL, "bad directory path '%s'", path);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, mode) == 0) {
			if (exact && chmod(buf, mode) != 0)
				return pq_err_set(PQ_ERR_IO, "chmod %s: %s", buf, strerror(errno));
		} else if (errno != EEXIST) {
			return pq_err_set(PQ_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
		}
		buf[i] = c;
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return pq_err_set(PQ_ERR_IO, "%s is not a directory", path);
	return PQ_OK;
}

int pq_mkdirs(const char *path, mode_t mode)
{
	return mkdirs(path, mode, false);
}

int pq_mkdirs_exact(const char *path, mode_t mode)
{
	return mkdirs(path, mode, true);
}
