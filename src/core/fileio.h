/* fileio.h: bounded whole-file reads and atomic, mode-controlled writes. */
#ifndef PQOTA_CORE_FILEIO_H
#define PQOTA_CORE_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* Modes of what only the owner may read: the server's data directory, its store, packages,
 * keys. The server also runs with umask 077, so files libraries create are owner-only too. */
#define PQ_PRIVATE_DIR_MODE  0700
#define PQ_PRIVATE_FILE_MODE 0600

/* A file inside a directory: "dir/name" into out[cap] ("name" when dir is ""). The name
 * stays inside dir: an absolute name or one with a ".." component is PQ_ERR_INVAL. A path
 * that does not fit is PQ_ERR_RANGE, never silently cut. */
int pq_path_join(char *out, size_t cap, const char *dir, const char *name) PQ_MUST_CHECK;

/* A path as a user wrote it, relative to base: path itself when it is absolute or base is
 * "", else "base/path" (".." allowed: the user chose it). PQ_ERR_RANGE when it does not fit. */
int pq_path_resolve(char *out, size_t cap, const char *base, const char *path) PQ_MUST_CHECK;

/* Reads a whole file of at most `max` bytes into a malloc'd buffer, NUL-terminated
 * (the terminator is not counted in *len). Caller frees *out. */
int pq_file_read(const char *path, size_t max, char **out, size_t *len) PQ_MUST_CHECK;

/* Writes data to a temporary file beside `path` with `mode`, fsyncs it, renames it into
 * place and fsyncs the directory. Refuses to replace an existing file unless `overwrite`,
 * and never replaces anything but a regular file. */
int pq_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         bool overwrite) PQ_MUST_CHECK;

/* Fails (PQ_ERR_INVAL) when path exists and is not a regular file: writers that rename
 * a temporary file into place must never replace a device, directory or link. */
int pq_check_output_path(const char *path) PQ_MUST_CHECK;

/* fsyncs the directory holding path, so a rename into it survives a crash. */
int pq_fsync_dir_of(const char *path) PQ_MUST_CHECK;

/* mkdir -p with `mode` for the directories it creates. */
int pq_mkdirs(const char *path, mode_t mode) PQ_MUST_CHECK;
/* The same, but the directories it makes get exactly `mode`, whatever the umask; existing
 * ones are left as they are. */
int pq_mkdirs_exact(const char *path, mode_t mode) PQ_MUST_CHECK;

/* Writes all of buf to fd, retrying on EINTR and short writes. */
int pq_write_all(int fd, const void *buf, size_t len) PQ_MUST_CHECK;
/* Reads up to len bytes, retrying until len bytes or end of file; *got = bytes read. */
int pq_read_full(int fd, void *buf, size_t len, size_t *got) PQ_MUST_CHECK;

#endif
