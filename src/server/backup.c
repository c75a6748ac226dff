/* backup.c: bk_backup and bk_restore (backup.h): the store snapshot, the file trees, the
 * manifest and its check. */
#include "server/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/fileio.h"
#include "core/text.h"
#include "core/time.h"
#include "crypto/hash.h"
#include "store/dump.h"

#define MANIFEST        "manifest.json"
#define MANIFEST_FORMAT "pqota-backup-v1"
#define MANIFEST_MAX    (64 * 1024 * 1024)
#define MAX_DEPTH       16
#define COPY_CHUNK      (1024 * 1024)
#define PROGRESS_MS     5000
#define PKI_DIR_MODE    0711 /* as `pqota keys init` makes them (src/crypto/pki.c) */

/* One file of the backup: path relative to the backup directory ("data/files/<sha>"). */
typedef struct {
	char *path;
	int64_t size;
	char sha[65];
	unsigned mode;
} bk_entry;

/* What a backup or restore goes through: the files, the progress reporting, what the data
 * directory's walk leaves out (the store's files, the backup itself). */
typedef struct {
	const bk_opts *o;
	const char *dir;
	bk_entry *v;
	size_t n, cap;
	int64_t bytes, total_bytes, last_report_ms;
	size_t done;
	struct {
		dev_t dev;
		ino_t ino;
	} skip[6];
	int nskip;
	uint8_t *buf;
} bk_ctx;

static void say(bk_ctx *x, const char *fmt, ...) PQ_PRINTF(2, 3);
static void say(bk_ctx *x, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!x->o->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	x->o->progress(x->o->progress_user, line);
}

static double mib(int64_t b)
{
	return (double)b / (1024.0 * 1024.0);
}

/* A progress line every PROGRESS_MS while files are copied or checked. */
static void tick(bk_ctx *x, const char *what)
{
	int64_t now = pq_mono_ms();
	if (now - x->last_report_ms < PROGRESS_MS)
		return;
	x->last_report_ms = now;
	say(x, "%s: %zu of %zu files, %.1f of %.1f MiB", what, x->done, x->n, mib(x->bytes),
	    mib(x->total_bytes));
}

static void ctx_free(bk_ctx *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->v[i].path);
	free(x->v);
	free(x->buf);
}

static int add_entry(bk_ctx *x, const char *path, int64_t size, unsigned mode)
{
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 256;
		bk_entry *v = realloc(x->v, cap * sizeof(*v));
		if (!v)
			return pq_err_set(PQ_ERR_NOMEM, "file list");
		x->v = v;
		x->cap = cap;
	}
	bk_entry *e = &x->v[x->n];
	memset(e, 0, sizeof(*e));
	if (!(e->path = strdup(path)))
		return pq_err_set(PQ_ERR_NOMEM, "file list");
	e->size = size;
	e->mode = mode & 0777;
	x->n++;
	x->total_bytes += size;
	return PQ_OK;
}

/* ---- copying ----------------------------------------------------------------------------- */

/* Copies regular file src to dst (created with mode, never replacing anything: the caller
 * removes what force replaces), hashing what it copies into sha. PQ_ERR_NOTFOUND when src is
 * gone. */
static int copy_file(bk_ctx *x, const char *src, const char *dst, mode_t mode, int64_t *size,
                     char sha[65])
{
	pq_hash_ctx *h = NULL;
	uint8_t d[32];
	int64_t n = 0;
	int out = -1, rc;
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return pq_err_set(errno == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO, "%s: %s", src,
		                  strerror(errno));
	struct stat st;
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = pq_err_set(PQ_ERR_INVAL, "%s is not a regular file", src);
		goto out;
	}
	if ((rc = pq_hash_new(PQ_HASH_SHA256, &h)) != PQ_OK)
		goto out;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (out < 0) {
		rc = pq_err_set(errno == EEXIST ? PQ_ERR_EXISTS : PQ_ERR_IO, "%s: %s", dst,
		                strerror(errno));
		goto out;
	}
	for (;;) {
		size_t got = 0;
		if ((rc = pq_read_full(in, x->buf, COPY_CHUNK, &got)) != PQ_OK)
			goto out;
		if (got == 0)
			break;
		if ((rc = pq_hash_update(h, x->buf, got)) != PQ_OK ||
		    (rc = pq_write_all(out, x->buf, got)) != PQ_OK)
			goto out;
		n += (int64_t)got;
		x->bytes += (int64_t)got;
	}
	if (fchmod(out, mode) != 0 || fsync(out) != 0) {
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", dst, strerror(errno));
		goto out;
	}
	if ((rc = pq_hash_final(h, d)) != PQ_OK)
		goto out;
	pq_hex_encode(d, 32, sha);
	*size = n;
out:
	if (out >= 0 && close(out) != 0 && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", dst, strerror(errno));
	if (rc != PQ_OK && out >= 0)
		unlink(dst);
	close(in);
	pq_hash_free(h);
	return rc;
}

/* "a/b" + "/" + "c" into out[PATH_MAX], or PQ_ERR_RANGE. */
static int join3(char out[PATH_MAX], const char *a, const char *b, const char *c)
{
	int n = snprintf(out, PATH_MAX, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
	return n < 0 || n >= PATH_MAX ? pq_err_set(PQ_ERR_RANGE, "path too long: %s/%s", a, b)
	                              : PQ_OK;
}

/* The directory holding path and every missing one above it, made with exactly mode
 * (whatever the umask: the PKI's are 0711); existing ones are left as they are. */
static int make_parent(const char *path, mode_t mode)
{
	char d[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n == 0)
		return PQ_OK;
	if (n >= sizeof(d))
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", path);
	memcpy(d, path, n);
	d[n] = '\0';
	return pq_mkdirs_exact(d, mode);
}

/* ---- walking a tree ---------------------------------------------------------------------- */

/* Names never copied: hidden and temporary files (writes in progress, renamed when done). */
static bool transient_name(const char *name)
{
	return name[0] == '.' || strstr(name, ".tmp.") != NULL;
}

static bool skipped(const bk_ctx *x, const struct stat *st)
{
	for (int i = 0; i < x->nskip; i++)
		if (x->skip[i].dev == st->st_dev && x->skip[i].ino == st->st_ino)
			return true;
	return false;
}

static void skip_path(bk_ctx *x, const char *path)
{
	struct stat st;
	if (x->nskip < (int)(sizeof(x->skip) / sizeof(x->skip[0])) && stat(path, &st) == 0) {
		x->skip[x->nskip].dev = st.st_dev;
		x->skip[x->nskip].ino = st.st_ino;
		x->nskip++;
	}
}

/* Adds every regular file under root/rel as "area/rel/name" (top: the data directory's top
 * level, where uploads/ and tmp/ are left out). */
static int walk(bk_ctx *x, const char *root, const char *rel, const char *area, int depth)
{
	char dirp[PATH_MAX], p[PATH_MAX], relp[PATH_MAX], entry[PATH_MAX];
	int rc = rel[0] ? join3(dirp, root, rel, "") : pq_path_resolve(dirp, PATH_MAX, "", root);
	if (rc != PQ_OK)
		return rc;
	if (depth > MAX_DEPTH)
		return pq_err_set(PQ_ERR_RANGE, "%s: more than %d levels of directories", dirp,
		                  MAX_DEPTH);
	DIR *d = opendir(dirp);
	if (!d)
		return pq_err_set(PQ_ERR_IO, "%s: %s", dirp, strerror(errno));
	struct dirent *de;
	while (rc == PQ_OK && (de = readdir(d))) {
		const char *name = de->d_name;
		struct stat st;
		if (transient_name(name))
			continue;
		if (depth == 0 && strcmp(area, "data") == 0 &&
		    (strcmp(name, "uploads") == 0 || strcmp(name, "tmp") == 0))
			continue;
		int n = rel[0] ? snprintf(relp, sizeof(relp), "%s/%s", rel, name)
		               : snprintf(relp, sizeof(relp), "%s", name);
		if (n < 0 || n >= (int)sizeof(relp) || (rc = join3(p, dirp, name, "")) != PQ_OK) {
			rc = rc != PQ_OK ? rc
			                 : pq_err_set(PQ_ERR_RANGE, "path too long in %s", dirp);
			break;
		}
		if (lstat(p, &st) != 0) {
			if (errno != ENOENT)
				rc = pq_err_set(PQ_ERR_IO, "%s: %s", p, strerror(errno));
			continue;
		}
		if (skipped(x, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = walk(x, root, relp, area, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			if ((rc = join3(entry, area, relp, "")) == PQ_OK)
				rc = add_entry(x, entry, (int64_t)st.st_size, st.st_mode);
		} else {
			say(x, "warning: %s is not a regular file or directory: not backed up", p);
		}
	}
	closedir(d);
	return rc;
}

/* ---- the manifest ------------------------------------------------------------------------ */

static int write_manifest(bk_ctx *x, int schema)
{
	char when[PQ_ISO_TIME_LEN], path[PATH_MAX];
	int rc = pq_iso_time(pq_real_ms() / 1000, when);
	if (rc != PQ_OK)
		return rc;
	json_t *files = json_array();
	json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o}", "format", MANIFEST_FORMAT,
	                      "version", PQOTA_VERSION, "created", when, "backend",
	                      x->o->store.backend == STORE_POSTGRES ? "postgres" : "sqlite",
	                      "schema_version", schema, "files", files);
	bool ok = m != NULL;
	for (size_t i = 0; ok && i < x->n; i++) {
		const bk_entry *e = &x->v[i];
		json_t *f = json_pack("{s:s, s:I, s:s, s:i}", "path", e->path, "size",
		                      (json_int_t)e->size, "sha256", e->sha, "mode", (int)e->mode);
		ok = f && json_array_append_new(files, f) == 0;
	}
	char *text = ok ? json_dumps(m, JSON_INDENT(1)) : NULL;
	json_decref(m);
	if (!text)
		return pq_err_set(PQ_ERR_NOMEM, "manifest");
	rc = pq_path_join(path, sizeof(path), x->dir, MANIFEST);
	if (rc == PQ_OK)
		rc = pq_file_write_atomic(path, text, strlen(text), PQ_PRIVATE_FILE_MODE, false);
	free(text);
	return rc;
}

static bool is_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* The area a backup path starts with ("data/..."), or NULL when it has none known. */
static const char *area_of(const char *path)
{
	static const char *const areas[] = {"store/", "data/", "pki/", "uptane/", "keys/"};
	for (size_t i = 0; i < sizeof(areas) / sizeof(areas[0]); i++)
		if (strncmp(path, areas[i], strlen(areas[i])) == 0 && path[strlen(areas[i])])
			return areas[i];
	return NULL;
}

/* One "files" member into x, checked: a known area, no way out of the directory. */
static int read_entry(bk_ctx *x, json_t *f, size_t i)
{
	const char *path = NULL, *sha = NULL;
	json_int_t size = -1;
	int mode = 0;
	char probe[PATH_MAX];
	if (json_unpack(f, "{s:s, s:I, s:s, s:i}", "path", &path, "size", &size, "sha256", &sha,
	                "mode", &mode) != 0 ||
	    size < 0 || !is_hex64(sha) || mode < 0 || mode > 0777 || !area_of(path) ||
	    pq_path_join(probe, sizeof(probe), x->dir, path) != PQ_OK)
		return pq_err_set(PQ_ERR_FORMAT, "%s: file %zu is malformed or leaves the backup",
		                  MANIFEST, i + 1);
	int rc = add_entry(x, path, (int64_t)size, (unsigned)mode);
	if (rc == PQ_OK)
		memcpy(x->v[x->n - 1].sha, sha, 65);
	return rc;
}

/* Reads and checks dir/manifest.json into x: format, backend, files. */
static int read_manifest(bk_ctx *x, char created[64])
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	json_error_t je;
	int rc = pq_path_join(path, sizeof(path), x->dir, MANIFEST);
	if (rc == PQ_OK)
		rc = pq_file_read(path, MANIFEST_MAX, &text, &len);
	if (rc == PQ_ERR_NOTFOUND)
		return pq_err_set(PQ_ERR_NOTFOUND,
		                  "%s has no %s: not a backup, or an incomplete one", x->dir,
		                  MANIFEST);
	if (rc != PQ_OK)
		return rc;
	json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	const char *format = NULL, *backend = NULL, *when = NULL;
	json_t *files = NULL;
	if (!m ||
	    json_unpack(m, "{s:s, s:s, s:s, s:o}", "format", &format, "backend", &backend,
	                "created", &when, "files", &files) != 0 ||
	    !json_is_array(files)) {
		rc = pq_err_set(PQ_ERR_FORMAT, "%s: not a pqota backup manifest%s%s", path,
		                m ? "" : ": ", m ? "" : je.text);
		goto out;
	}
	snprintf(created, 64, "%s", when);
	const char *want = x->o->store.backend == STORE_POSTGRES ? "postgres" : "sqlite";
	if (strcmp(format, MANIFEST_FORMAT) != 0)
		rc = pq_err_set(PQ_ERR_UNSUPPORTED, "%s: format '%s', this pqota reads '%s'", path,
		                format, MANIFEST_FORMAT);
	else if (strcmp(backend, want) != 0)
		rc = pq_err_set(PQ_ERR_INVAL,
		                "the backup is of a %s store, the configuration names %s "
		                "(store.backend)",
		                backend, want);
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		if (rc == PQ_OK)
			rc = read_entry(x, f, i);
	}
out:
	json_decref(m);
	return rc;
}

/* ---- backup ------------------------------------------------------------------------------ */

/* Whether directory path holds anything (false when it does not exist). */
static int dir_used(const char *path, bool *used)
{
	*used = false;
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? PQ_OK
		                       : pq_err_set(PQ_ERR_IO, "%s: %s", path, strerror(errno));
	struct dirent *de;
	while (!*used && (de = readdir(d)))
		*used = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return PQ_OK;
}

/* dir: made 0700, or an existing empty directory (then made 0700). */
static int prepare_target(const char *dir)
{
	bool used;
	int rc = dir_used(dir, &used);
	if (rc == PQ_OK && used)
		rc =
		    pq_err_set(PQ_ERR_EXISTS, "%s is not empty: back up into a new directory", dir);
	if (rc == PQ_OK)
		rc = pq_mkdirs(dir, PQ_PRIVATE_DIR_MODE);
	if (rc == PQ_OK && chmod(dir, PQ_PRIVATE_DIR_MODE) != 0)
		rc = pq_err_set(PQ_ERR_IO, "%s: %s", dir, strerror(errno));
	return rc;
}

/* The store's snapshot as store/<name>, first: what it references is copied after. */
static int snapshot_store(bk_ctx *x, int *schema)
{
	char p[PATH_MAX];
	store *db = NULL;
	int rc = store_open(&x->o->store, &db); /* reachable, and its schema version */
	if (rc == PQ_OK)
		rc = store_schema_version(db, schema);
	store_close(db);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "store");
	const char *name = store_dump_name(x->o->store.backend);
	if ((rc = join3(p, x->dir, "store", name)) != PQ_OK ||
	    (rc = make_parent(p, PQ_PRIVATE_DIR_MODE)) != PQ_OK ||
	    (rc = store_dump(&x->o->store, p)) != PQ_OK)
		return rc;
	struct stat st;
	uint8_t d[32];
	if (stat(p, &st) != 0)
		return pq_err_set(PQ_ERR_IO, "%s: %s", p, strerror(errno));
	if ((rc = pq_hash_file(PQ_HASH_SHA256, p, d)) != PQ_OK)
		return rc;
	char rel[64];
	snprintf(rel, sizeof(rel), "store/%s", name);
	if ((rc = add_entry(x, rel, (int64_t)st.st_size, PQ_PRIVATE_FILE_MODE)) != PQ_OK)
		return rc;
	pq_hex_encode(d, 32, x->v[x->n - 1].sha);
	x->done = x->n;
	say(x, "store: %s snapshot, %.1f MiB, schema version %d",
	    x->o->store.backend == STORE_POSTGRES ? "pg_dump" : "sqlite", mib(st.st_size), *schema);
	return PQ_OK;
}

/* Where a backup path lives in the server o describes (the source of a backup, the
 * destination of a restore), and the modes a restore gives the file and the directories it
 * makes: owner-only, except the PKI's certificates and directories (a broker running as
 * another user reads the CA and its own files, as `pqota keys init` made them). */
static int place_of(const bk_opts *o, const bk_entry *e, char out[PATH_MAX], mode_t *fmode,
                    mode_t *dmode)
{
	const char *area = area_of(e->path), *rest = e->path + strlen(area);
	*fmode = PQ_PRIVATE_FILE_MODE;
	*dmode = PQ_PRIVATE_DIR_MODE;
	if (strcmp(area, "data/") == 0)
		return join3(out, o->data_dir, rest, "");
	if (strcmp(area, "pki/") == 0 || strcmp(area, "uptane/") == 0) {
		bool pki = area[0] == 'p';
		const char *root = pki ? o->pki_dir : o->uptane_dir;
		if (!root)
			return pq_err_set(PQ_ERR_INVAL,
			                  "the backup holds %s: set %s to where it goes",
			                  pki ? "the PKI (pki/)" : "Uptane keys (uptane/)",
			                  pki ? "tls.pki" : "uptane.keys (not tls.pki)");
		*fmode = e->mode & 0644;
		*dmode = PKI_DIR_MODE;
		return join3(out, root, rest, "");
	}
	for (int i = 0; strcmp(area, "keys/") == 0 && i < o->nkeys; i++)
		if (strcmp(rest, o->keys[i].key) == 0) {
			*fmode = e->mode & 0644;
			return pq_path_resolve(out, PATH_MAX, "", o->keys[i].path);
		}
	return pq_err_set(PQ_ERR_INVAL, "the backup holds %s: set %s to where it goes", e->path,
	                  rest);
}

/* The files to copy, after the store: the data directory (without the store's own files
 * and the backup itself), the PKI, the Uptane keys, the key files. */
static int list_files(bk_ctx *x)
{
	char p[PATH_MAX];
	if (x->o->store.backend == STORE_SQLITE)
		for (size_t i = 0; i < STORE_SQLITE_NFILES; i++)
			if (snprintf(p, sizeof(p), "%s%s", x->o->store.url,
			             store_sqlite_suffix[i]) < (int)sizeof(p))
				skip_path(x, p);
	skip_path(x, x->dir);
	int rc = walk(x, x->o->data_dir, "", "data", 0);
	if (rc == PQ_OK && x->o->pki_dir)
		rc = walk(x, x->o->pki_dir, "", "pki", 0);
	if (rc == PQ_OK && x->o->uptane_dir)
		rc = walk(x, x->o->uptane_dir, "", "uptane", 0);
	for (int i = 0; rc == PQ_OK && i < x->o->nkeys; i++) {
		struct stat st;
		if (stat(x->o->keys[i].path, &st) != 0)
			return pq_err_set(PQ_ERR_IO, "%s %s: %s", x->o->keys[i].key,
			                  x->o->keys[i].path, strerror(errno));
		if ((rc = join3(p, "keys", x->o->keys[i].key, "")) == PQ_OK)
			rc = add_entry(x, p, (int64_t)st.st_size, st.st_mode);
	}
	return rc;
}

/* Copies entries [from, n) into the backup; one that vanished meanwhile is dropped. */
static int copy_in(bk_ctx *x, size_t from)
{
	char src[PATH_MAX], dst[PATH_MAX];
	int rc = PQ_OK;
	x->bytes = 0;
	for (size_t i = from; rc == PQ_OK && i < x->n; i++) {
		bk_entry *e = &x->v[i];
		mode_t fm, dm;
		if ((rc = place_of(x->o, e, src, &fm, &dm)) != PQ_OK ||
		    (rc = join3(dst, x->dir, e->path, "")) != PQ_OK ||
		    (rc = make_parent(dst, PQ_PRIVATE_DIR_MODE)) != PQ_OK)
			break;
		rc = copy_file(x, src, dst, PQ_PRIVATE_FILE_MODE, &e->size, e->sha);
		x->done++;
		tick(x, "copying");
		if (rc == PQ_ERR_NOTFOUND && strncmp(e->path, "data/", 5) == 0) {
			say(x,
			    "warning: %s vanished while copying (deleted after the store snapshot)",
			    src);
			free(e->path);
			e->path = NULL;
			rc = PQ_OK;
		}
	}
	size_t keep = 0; /* the vanished ones out of the list */
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].path)
			x->v[keep++] = x->v[i];
	x->n = keep;
	return rc;
}

int bk_backup(const bk_opts *o, const char *dir)
{
	bk_ctx x = {.o = o, .dir = dir, .last_report_ms = pq_mono_ms()};
	int schema = 0;
	int rc = prepare_target(dir);
	if (rc != PQ_OK)
		return rc;
	if (!(x.buf = malloc(COPY_CHUNK))) {
		rc = pq_err_set(PQ_ERR_NOMEM, "copy buffer");
		goto out;
	}
	if ((rc = snapshot_store(&x, &schema)) != PQ_OK)
		goto out;
	size_t first = x.n;
	if ((rc = list_files(&x)) != PQ_OK)
		goto out;
	say(&x, "files: %zu, %.1f MiB to copy", x.n - first, mib(x.total_bytes));
	if ((rc = copy_in(&x, first)) != PQ_OK)
		goto out;
	if ((rc = write_manifest(&x, schema)) != PQ_OK)
		goto out;
	say(&x, "backup complete: %zu files, %.1f MiB in %s", x.n, mib(x.total_bytes), dir);
out:
	ctx_free(&x);
	if (rc != PQ_OK)
		return pq_err_wrap(rc, "backup into %s (incomplete: it has no %s; remove it)", dir,
		                   MANIFEST);
	return PQ_OK;
}

/* ---- restore ----------------------------------------------------------------------------- */

/* Every file of the backup has its manifest's size and SHA-256. */
static int check_files(bk_ctx *x)
{
	char p[PATH_MAX], sha[65];
	uint8_t d[32];
	struct stat st;
	x->bytes = 0;
	for (size_t i = 0; i < x->n; i++) {
		const bk_entry *e = &x->v[i];
		int rc = join3(p, x->dir, e->path, "");
		if (rc != PQ_OK)
			return rc;
		if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
			return pq_err_set(PQ_ERR_VERIFY, "backup file %s is missing", e->path);
		if ((int64_t)st.st_size != e->size)
			return pq_err_set(PQ_ERR_VERIFY,
			                  "backup file %s has %lld bytes, the manifest says %lld",
			                  e->path, (long long)st.st_size, (long long)e->size);
		if ((rc = pq_hash_file(PQ_HASH_SHA256, p, d)) != PQ_OK)
			return rc;
		pq_hex_encode(d, 32, sha);
		if (strcmp(sha, e->sha) != 0)
			return pq_err_set(
			    PQ_ERR_VERIFY,
			    "backup file %s: SHA-256 %s, the manifest says %s (corrupted)", e->path,
			    sha, e->sha);
		x->bytes += e->size;
		x->done = i + 1;
		tick(x, "checking");
	}
	return PQ_OK;
}

/* Nothing the restore would write holds data yet (unless force), and every file has a
 * place in the configuration. */
static int check_targets(bk_ctx *x, bool force, const bk_entry **store_e)
{
	char p[PATH_MAX];
	bool used = false, pki = false, uptane = false;
	mode_t fm, dm;
	int rc = PQ_OK;
	*store_e = NULL;
	for (size_t i = 0; rc == PQ_OK && i < x->n; i++) {
		const bk_entry *e = &x->v[i];
		const char *area = area_of(e->path);
		if (strcmp(area, "store/") == 0) {
			if (*store_e ||
			    strcmp(e->path + 6, store_dump_name(x->o->store.backend)) != 0)
				return pq_err_set(PQ_ERR_FORMAT, "backup: unexpected store file %s",
				                  e->path);
			*store_e = e;
			continue;
		}
		pki |= strcmp(area, "pki/") == 0;
		uptane |= strcmp(area, "uptane/") == 0;
		if ((rc = place_of(x->o, e, p, &fm, &dm)) != PQ_OK)
			return rc;
		if (!force && strcmp(area, "keys/") == 0 && access(p, F_OK) == 0)
			return pq_err_set(PQ_ERR_EXISTS, "%s exists (--force replaces it)", p);
	}
	if (!*store_e)
		return pq_err_set(PQ_ERR_FORMAT, "backup: no store file");
	if (force)
		return PQ_OK;
	struct {
		bool want;
		const char *dir, *what;
	} dirs[] = {{true, x->o->data_dir, "data directory"},
	            {pki, x->o->pki_dir, "PKI directory (tls.pki)"},
	            {uptane, x->o->uptane_dir, "Uptane key directory"}};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (dirs[i].want && (rc = dir_used(dirs[i].dir, &used)) != PQ_OK)
			return rc;
		if (dirs[i].want && used)
			return pq_err_set(PQ_ERR_EXISTS,
			                  "the %s %s is not empty: restore into an empty one, or "
			                  "--force to replace what it holds",
			                  dirs[i].what, dirs[i].dir);
	}
	bool empty = true;
	if ((rc = store_is_empty(&x->o->store, &empty)) != PQ_OK)
		return pq_err_wrap(rc, "store");
	if (!empty)
		return pq_err_set(PQ_ERR_EXISTS,
		                  "the store %s holds data: restore into an empty one, or --force "
		                  "to replace it",
		                  x->o->store.backend == STORE_POSTGRES ? "(store.url)"
		                                                        : x->o->store.url);
	return PQ_OK;
}

/* Copies every file but the store's to its place, checking its SH-256 again. */
static int copy_out(bk_ctx *x, bool force)
{
	char src[PATH_MAX], dst[PATH_MAX], sha[65];
	x->bytes = 0;
	x->done = 0;
	for (size_t i = 0; i < x->n; i++) {
		const bk_entry *e = &x->v[i];
		mode_t fm, dm;
		int64_t size = 0;
		x->done++;
		if (strcmp(area_of(e->path), "store/") == 0)
			continue;
		int rc = place_of(x->o, e, dst, &fm, &dm);
		if (rc == PQ_OK)
			rc = join3(src, x->dir, e->path, "");
		if (rc == PQ_OK)
			rc = make_parent(dst, dm);
		if (rc == PQ_OK && force && (rc = pq_check_output_path(dst)) == PQ_OK &&
		    unlink(dst) != 0 && errno != ENOENT)
			rc = pq_err_set(PQ_ERR_IO, "%s: %s", dst, strerror(errno));
		if (rc == PQ_OK)
			rc = copy_file(x, src, dst, fm, &size, sha);
		if (rc == PQ_OK && strcmp(sha, e->sha) != 0)
			rc = pq_err_set(PQ_ERR_VERIFY, "%s changed while it was restored", src);
		if (rc != PQ_OK)
			return rc;
		tick(x, "restoring");
	}
	return PQ_OK;
}

int bk_restore(const bk_opts *o, const char *dir, bool force)
{
	bk_ctx x = {.o = o, .dir = dir, .last_report_ms = pq_mono_ms()};
	char created[64] = "", p[PATH_MAX];
	const bk_entry *se = NULL;
	int rc = read_manifest(&x, created);
	if (rc != PQ_OK)
		goto out;
	say(&x, "backup of %s: %zu files, %.1f MiB", created, x.n, mib(x.total_bytes));
	if ((rc = check_files(&x)) != PQ_OK || (rc = check_targets(&x, force, &se)) != PQ_OK)
		goto out;
	say(&x, "checked: every file has its manifest's size and SHA-256");
	if (!(x.buf = malloc(COPY_CHUNK))) {
		rc = pq_err_set(PQ_ERR_NOMEM, "copy buffer");
		goto out;
	}
	if ((rc = pq_mkdirs(o->data_dir, PQ_PRIVATE_DIR_MODE)) != PQ_OK)
		goto out;
	if (o->store.backend == STORE_SQLITE &&
	    (rc = make_parent(o->store.url, PQ_PRIVATE_DIR_MODE)) != PQ_OK)
		goto out;
	if ((rc = join3(p, dir, se->path, "")) != PQ_OK ||
	    (rc = store_restore(&o->store, p, force)) != PQ_OK)
		goto out;
	say(&x, "store: restored (%s)",
	    o->store.backend == STORE_POSTGRES ? "pg_restore" : "sqlite");
	if ((rc = copy_out(&x, force)) != PQ_OK)
		goto out;
	say(&x, "restore complete: %zu files, %.1f MiB", x.n, mib(x.total_bytes));
out:
	ctx_free(&x);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "restore from %s", dir);
}
