/* dump.c: store_dump / store_restore: SQLite's online backup API, pg_dump and pg_restore. */
#include "store/dump.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/time.h"

extern char **environ;

#define BUSY_WAIT_MS  30000 /* how long a copy waits for a lock another connection holds */
#define CHILD_ERR_MAX 1500  /* bytes of a child's stderr kept for the error message */
#define ENV_MAX       32    /* connection parameters passed to a child */

const char *const store_sqlite_suffix[STORE_SQLITE_NFILES] = {"", "-wal", "-shm", "-journal"};

const char *store_dump_name(store_backend b)
{
	return b == STORE_POSTGRES ? "pqota.pgdump" : "pqota.db";
}

/* ---- SQLite ------------------------------------------------------------------------------ */

static int sqlite_fail(sqlite3 *db, int rc, const char *what, const char *path)
{
	return pq_err_set(PQ_ERR_IO, "sqlite %s %s: %s", what, path,
	                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Copies database src into dst, a file this call creates (0600, O_EXCL), page by page as one
 * read transaction of src sees it. Waits for locks up to BUSY_WAIT_MS. */
static int sqlite_copy(const char *src, const char *dst)
{
	sqlite3 *from = NULL, *to = NULL;
	sqlite3_backup *b = NULL;
	int rc = PQ_OK;
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return pq_err_set(errno == EEXIST ? PQ_ERR_EXISTS : PQ_ERR_IO, "%s: %s", dst,
		                  strerror(errno));
	close(fd);
	int src_rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (src_rc != SQLITE_OK) {
		rc = sqlite_fail(from, src_rc, "open", src);
		goto out;
	}
	int dst_rc = sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (dst_rc != SQLITE_OK) {
		rc = sqlite_fail(to, dst_rc, "open", dst);
		goto out;
	}
	sqlite3_busy_timeout(from, BUSY_WAIT_MS);
	b = sqlite3_backup_init(to, "main", from, "main");
	if (!b) {
		rc = sqlite_fail(to, 0, "backup", dst);
		goto out;
	}
	int step;
	int64_t until = pq_mono_ms() + BUSY_WAIT_MS;
	/* -1: every page in one step, so in one read transaction of src */
	while ((step = sqlite3_backup_step(b, -1)) != SQLITE_DONE) {
		if ((step != SQLITE_BUSY && step != SQLITE_LOCKED) || pq_mono_ms() > until) {
			rc = pq_err_set(PQ_ERR_IO, "sqlite backup %s: %s", src,
			                sqlite3_errstr(step));
			goto out;
		}
		pq_sleep_ms(20);
	}
	int fin = sqlite3_backup_finish(b);
	b = NULL;
	if (fin != SQLITE_OK) {
		rc = sqlite_fail(to, fin, "backup", dst);
		goto out;
	}
	/* the copy took src's WAL mode: back to a rollback journal, so opening the copy (even
	 * read-only) leaves no -wal and -shm beside it; the server switches to WAL again */
	int jm = sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
	if (jm != SQLITE_OK)
		rc = sqlite_fail(to, jm, "journal mode", dst);
out:
	if (b)
		sqlite3_backup_finish(b);
	sqlite3_close_v2(from);
	if (to && sqlite3_close_v2(to) != SQLITE_OK && rc == PQ_OK)
		rc = pq_err_set(PQ_ERR_IO, "sqlite close %s", dst);
	if (rc != PQ_OK)
		unlink(dst);
	return rc;
}

/* Removes path and the files SQLite keeps beside it. */
static int sqlite_remove(const char *path)
{
	char p[4096];
	for (size_t i = 0; i < STORE_SQLITE_NFILES; i++) {
		if (snprintf(p, sizeof(p), "%s%s", path, store_sqlite_suffix[i]) >= (int)sizeof(p))
			return pq_err_set(PQ_ERR_RANGE, "path too long: %s", path);
		if (unlink(p) != 0 && errno != ENOENT)
			return pq_err_set(PQ_ERR_IO, "removing %s: %s", p, strerror(errno));
	}
	return PQ_OK;
}

/* ---- PostgreSQL: children with the connection in their environment ---------------------- */

/* The environment of a pg_dump/pg_restore child: "PGxxx=value" for each parameter of the
 * store URL (libpq's own variable for it), then the inherited environment without those
 * variables. The strings are malloc'd (wiped when freed: one may be a password). */
typedef struct {
	char *set[ENV_MAX];
	int nset;
	char **envp;
} child_env;

static void env_free(child_env *e)
{
	for (int i = 0; i < e->nset; i++) {
		explicit_bzero(e->set[i], strlen(e->set[i]));
		free(e->set[i]);
	}
	free(e->envp);
	memset(e, 0, sizeof(*e));
}

/* Whether "NAME=..." entry sets one of the variables in e. */
static bool env_overridden(const child_env *e, const char *entry)
{
	const char *eq = strchr(entry, '=');
	size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
	for (int i = 0; i < e->nset; i++) {
		const char *set = e->set[i];
		if (strlen(set) > n && set[n] == '=' && memcmp(set, entry, n) == 0)
			return true;
	}
	return false;
}

static int env_build(const char *url, child_env *e)
{
	char *err = NULL;
	int rc = PQ_OK;
	memset(e, 0, sizeof(*e));
	/* a bare database name, as libpq takes it in "dbname" */
	bool bare = !strchr(url, '=') && strncmp(url, "postgres", 8) != 0;
	PQconninfoOption *opts = bare ? PQconninfoParse("", &err) : PQconninfoParse(url, &err);
	if (opts && bare) {
		for (PQconninfoOption *o = opts; o->keyword; o++)
			if (strcmp(o->keyword, "dbname") == 0 && !o->val)
				o->val = strdup(url); /* freed by PQconninfoFree */
	}
	if (!opts) {
		rc = pq_err_set(PQ_ERR_INVAL, "store.url: %s", err ? err : "out of memory");
		PQfreemem(err);
		return rc;
	}
	for (PQconninfoOption *o = opts; o->keyword && rc == PQ_OK; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (!o->envvar)
			rc = pq_err_set(
			    PQ_ERR_UNSUPPORTED,
			    "store.url parameter '%s' has no libpq environment variable: "
			    "pg_dump cannot be given it",
			    o->keyword);
		else if (e->nset == ENV_MAX)
			rc = pq_err_set(PQ_ERR_RANGE, "store.url has more than %d parameters",
			                ENV_MAX);
		else if (asprintf(&e->set[e->nset], "%s=%s", o->envvar, o->val) < 0)
			rc = pq_err_set(PQ_ERR_NOMEM, "environment");
		else
			e->nset++;
	}
	PQconninfoFree(opts);
	size_t n = 0;
	while (environ[n])
		n++;
	if (rc == PQ_OK && !(e->envp = calloc(n + (size_t)e->nset + 1, sizeof(char *))))
		rc = pq_err_set(PQ_ERR_NOMEM, "environment");
	if (rc != PQ_OK) {
		env_free(e);
		return rc;
	}
	size_t k = 0;
	for (int i = 0; i < e->nset; i++)
		e->envp[k++] = e->set[i];
	for (size_t i = 0; i < n; i++)
		if (!env_overridden(e, environ[i]))
			e->envp[k++] = environ[i];
	return PQ_OK;
}

/* Runs argv (argv[0] found on PATH) with the store URL's connection in its environment,
 * stdin from /dev/null; its stderr becomes the error's detail when it fails. */
static int run_pg_tool(const char *url, char *const argv[])
{
	child_env e;
	posix_spawn_file_actions_t fa;
	int pipefd[2] = {-1, -1};
	char errbuf[CHILD_ERR_MAX + 1];
	size_t got = 0;
	pid_t pid = -1;
	int rc = env_build(url, &e);
	if (rc != PQ_OK)
		return rc;
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		env_free(&e);
		return pq_err_set(PQ_ERR_IO, "pipe: %s", strerror(errno));
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	int sp = posix_spawnp(&pid, argv[0], &fa, NULL, argv, e.envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	env_free(&e);
	if (sp != 0) {
		close(pipefd[0]);
		return pq_err_set(sp == ENOENT ? PQ_ERR_NOTFOUND : PQ_ERR_IO,
		                  "%s: %s (the PostgreSQL client programs are needed: apt-get "
		                  "install postgresql-client)",
		                  argv[0], strerror(sp));
	}
	for (;;) { /* read to the end, keep the beginning */
		char chunk[512];
		ssize_t r = read(pipefd[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		size_t take = got + (size_t)r > CHILD_ERR_MAX ? CHILD_ERR_MAX - got : (size_t)r;
		memcpy(errbuf + got, chunk, take);
		got += take;
	}
	close(pipefd[0]);
	errbuf[got] = '\0';
	while (got > 0 && (errbuf[got - 1] == '\n' || errbuf[got - 1] == ' '))
		errbuf[--got] = '\0';
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return pq_err_set(PQ_ERR_IO, "waiting for %s: %s", argv[0],
			                  strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return PQ_OK;
	if (WIFEXITED(status))
		return pq_err_set(PQ_ERR_IO, "%s exited with %d: %s", argv[0], WEXITSTATUS(status),
		                  errbuf);
	return pq_err_set(PQ_ERR_IO, "%s: killed by signal %d: %s", argv[0],
	                  WIFSIGNALED(status) ? WTERMSIG(status) : 0, errbuf);
}

static int pg_dump_to(const char *url, const char *out_path)
{
	/* pg_dump writes the file itself: made here first, owner-only (it must not exist) */
	int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return pq_err_set(errno == EEXIST ? PQ_ERR_EXISTS : PQ_ERR_IO, "%s: %s", out_path,
		                  strerror(errno));
	close(fd);
	char file_arg[4200];
	if (snprintf(file_arg, sizeof(file_arg), "--file=%s", out_path) >= (int)sizeof(file_arg)) {
		unlink(out_path);
		return pq_err_set(PQ_ERR_RANGE, "path too long: %s", out_path);
	}
	/* one transaction (repeatable read): a consistent snapshot while servers write.
	 * -d holds no secret: the database and the rest come from the environment */
	char *const argv[] = {"pg_dump",       "--format=custom",
	                      "--no-password", "--dbname=application_name=pqota-backup",
	                      file_arg,        NULL};
	int rc = run_pg_tool(url, argv);
	if (rc != PQ_OK)
		unlink(out_path);
	return rc;
}

static int pg_restore_from(const char *url, const char *dump_path, bool replace)
{
	char *argv[12];
	int n = 0;
	argv[n++] = "pg_restore";
	argv[n++] = "--no-password";
	argv[n++] = "--exit-on-error";
	argv[n++] = "--single-transaction";
	argv[n++] = "--no-owner"; /* the objects belong to the store URL's user */
	argv[n++] = "--no-privileges";
	argv[n++] = "--dbname=application_name=pqota-restore";
	if (replace) {
		argv[n++] = "--clean";
		argv[n++] = "--if-exists";
	}
	argv[n++] = (char *)dump_path;
	argv[n] = NULL;
	return run_pg_tool(url, argv);
}

/* SELECT count of the user's relations: 0 in a fresh database. */
static int pg_is_empty(const char *url, bool *empty)
{
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {"10", "pqota-restore", url, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	PGresult *r = NULL;
	int rc = PQ_OK;
	if (!c || PQstatus(c) != CONNECTION_OK) {
		rc = pq_err_set(PQ_ERR_IO, "postgres connect: %s",
		                c ? PQerrorMessage(c) : "out of memory");
		goto out;
	}
	r = PQexec(c, "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
	              "ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
	              "'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
	              "AND n.nspname NOT LIKE 'pg\\_temp%'");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		rc = pq_err_set(PQ_ERR_IO, "postgres: %s", PQerrorMessage(c));
		goto out;
	}
	*empty = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

/* ---- the interface ----------------------------------------------------------------------- */

int store_dump(const store_config *cfg, const char *out_path)
{
	int rc = cfg->backend == STORE_POSTGRES ? pg_dump_to(cfg->url, out_path)
	                                        : sqlite_copy(cfg->url, out_path);
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "store snapshot");
}

int store_is_empty(const store_config *cfg, bool *empty)
{
	if (cfg->backend == STORE_POSTGRES)
		return pg_is_empty(cfg->url, empty);
	struct stat st;
	*empty = stat(cfg->url, &st) != 0 || st.st_size == 0;
	return PQ_OK;
}

int store_restore(const store_config *cfg, const char *dump_path, bool replace)
{
	int rc;
	if (cfg->backend == STORE_POSTGRES) {
		rc = pg_restore_from(cfg->url, dump_path, replace);
	} else {
		rc = replace ? sqlite_remove(cfg->url) : PQ_OK;
		if (rc == PQ_OK)
			rc = sqlite_copy(dump_path, cfg->url);
	}
	return rc == PQ_OK ? PQ_OK : pq_err_wrap(rc, "store restore");
}
