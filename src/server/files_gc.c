/* files_gc.c: content-addressed files (DATA/files, DATA/images) that no row of the store
 * names any more are removed: after a release that failed half-way (its package built, the
 * store not written: a full disk, a lost race) and after a release is deleted. Files are
 * shared by content, so each one is checked against the store first (store_file_referenced),
 * under the files lock (a mutex, and flock on DATA/.files.lock for the instances that share
 * the data directory) that release and bundle creation hold from making their files to
 * storing the rows, so a file another request is about to name is never taken. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "server/releases_int.h"
#include "server/server_int.h"

#define LOGC "files"

static void unlink_data(srv *s, const char *dir, const char *sha)
{
	char path[PATH_MAX];
	if (rel_data_path(s, dir, sha, path) == PQ_OK && unlink(path) != 0 && errno != ENOENT)
		pq_log(PQ_LOG_WARN, LOGC, "removing %s: %s", path, strerror(errno));
}

/* sha's files when nothing names it: its encrypted copy's key and file too. */
static int forget_one(srv *s, store *db, const char *sha)
{
	bool ref = false;
	store_package_key k;
	if (!sha || !sha[0])
		return PQ_OK;
	int rc = store_file_referenced(db, sha, &ref);
	if (rc != PQ_OK || ref)
		return rc;
	rc = store_package_key_get(db, sha, &k);
	if (rc == PQ_OK && (rc = store_package_key_delete(db, sha)) == PQ_OK)
		unlink_data(s, "files", k.enc_sha256);
	OPENSSL_cleanse(&k, sizeof(k));
	if (rc != PQ_OK && rc != PQ_ERR_NOTFOUND)
		return rc;
	unlink_data(s, "files", sha);
	unlink_data(s, "images", sha);
	return PQ_OK;
}

int rel_files_forget(srv *s, store *db, const char *const *shas, size_t n)
{
	int rc = PQ_OK;
	for (size_t i = 0; i < n; i++) {
		int r = forget_one(s, db, shas[i]);
		if (r != PQ_OK && rc == PQ_OK)
			rc = r;
	}
	return rc;
}

/* DATA/.files.lock, opened once: flock(2) on it serialises the instances that share the
 * data directory (docs/operations.md, Scale-out), the mutex this process's threads. */
static int lock_fd(srv *s)
{
	char path[PATH_MAX];
	if (s->files_lock_fd < 0 && rel_data_path(s, "", ".files.lock", path) == PQ_OK)
		s->files_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return s->files_lock_fd;
}

void rel_files_lock(srv *s)
{
	pthread_mutex_lock(&s->files_lock);
	int fd = lock_fd(s);
	while (fd >= 0 && flock(fd, LOCK_EX) != 0 && errno == EINTR)
		;
	if (fd < 0)
		pq_log(PQ_LOG_WARN, LOGC, "no files lock across instances: %s", strerror(errno));
}

void rel_files_unlock(srv *s)
{
	if (s->files_lock_fd >= 0)
		(void)flock(s->files_lock_fd, LOCK_UN);
	pthread_mutex_unlock(&s->files_lock);
}
