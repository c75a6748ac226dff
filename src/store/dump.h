/* dump.h: a consistent copy of a store while servers use it, and putting one back.
 *
 * SQLite: SQLite's online backup API copies the database as one read transaction sees it
 * (WAL: writers go on meanwhile) into a new file. PostgreSQL: pg_dump (custom format) and
 * pg_restore, run as child processes; the connection parameters of the store URL reach them
 * through libpq's environment variables (PGHOST, PGPASSWORD, ...), never the command line,
 * so a password is not visible to other users' `ps`. */
#ifndef PQOTA_STORE_DUMP_H
#define PQOTA_STORE_DUMP_H

#include <stdbool.h>

#include "core/err.h"
#include "store/store.h"

/* Writes the store's contents to out_path (a new file, mode 0600; it must not exist). */
int store_dump(const store_config *cfg, const char *out_path) PQ_MUST_CHECK;

/* Whether the store cfg names holds nothing yet: SQLite, no file (or an empty one);
 * PostgreSQL, a database without tables, sequences or views outside the system schemas. */
int store_is_empty(const store_config *cfg, bool *empty) PQ_MUST_CHECK;

/* Puts a dump made by store_dump back. SQLite: the file is copied to the store's path
 * (mode 0600) after any previous file and its -wal, -shm and -journal are removed (only with
 * replace; without it an existing file is PQ_ERR_EXISTS). PostgreSQL: pg_restore into the
 * configured database (with replace: its objects dropped first, --clean). The restored
 * objects belong to the store URL's user. */
int store_restore(const store_config *cfg, const char *dump_path, bool replace) PQ_MUST_CHECK;

/* The files of a SQLite store: its path followed by each of these ("", "-wal", ...). */
#define STORE_SQLITE_NFILES 4
extern const char *const store_sqlite_suffix[STORE_SQLITE_NFILES];

/* The file name a dump of this backend has in a backup: "pqota.db" or "pqota.pgdump". */
const char *store_dump_name(store_backend b);

#endif
