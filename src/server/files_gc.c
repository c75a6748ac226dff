/* files_gc.c: content-addressed files (DATA/files, DATA/images) that no row of the store
 * names any more are removed: after a release that failed half-way (its package built, the
 * store not written: a full disk, a lost race) and after a release is deleted. Files are
 * shared by content, so each one is checked against the store first (store_file_referenced),
 * under the process's files lock that release creation holds from building its files to
 * storing the rows, so a file another request is about to name is never taken. */
#include <errno.h>
#include <limits.h>
#include <string.h>
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

void rel_files_lock(srv *s)
{
	pthread_mutex_lock(&s->files_lock);
}

void rel_files_unlock(srv *s)
{
	pthread_mutex_unlock(&s->files_lock);
}
