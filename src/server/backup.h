/* backup.h: `pqota server backup DIR` and `restore DIR`: a consistent copy of a running
 * server's store, data directory and keys, and putting one back into a fresh server.
 *
 * A backup directory holds:
 *   manifest.json   format, pqota version, time, backend, schema version, and every file
 *                   below with its size, SHA-256 and mode (written last: a directory
 *                   without it is an incomplete backup)
 *   store/          pqota.db (SQLite, online backup API) or pqota.pgdump (pg_dump -Fc)
 *   data/           the data directory after the store snapshot: packages (files/), images,
 *                   operators' deltas, token.key, ... (not uploads/ and tmp/: work in
 *                   progress; not the store's own files)
 *   pki/            the tls.pki directory (CA, server, broker and server-client
 *                   certificates and keys, Uptane role keys, vehicles)
 *   uptane/         uptane.keys, when it is not tls.pki
 *   keys/<key>      files configured one by one: tls.cert, tls.key, tls.ca, mqtt.*,
 *                   downloads.token_key_file (outside the data directory)
 * Packages are content-addressed and never change, so copying them after the store snapshot
 * puts every file the snapshot references into the backup. Everything is written owner-only
 * (0600 files, 0700 directories). */
#ifndef PQOTA_SERVER_BACKUP_H
#define PQOTA_SERVER_BACKUP_H

#include <stdbool.h>

#include "core/err.h"
#include "store/store.h"

#define BK_MAX_KEYS 8

/* One file configured by a setting: key is the setting ("tls.cert"), path where it is. */
typedef struct {
	const char *key;
	const char *path;
} bk_key_file;

/* Called with one line of progress (no newline); the library never prints. */
typedef void (*bk_progress_fn)(void *user, const char *line);

/* Where a server keeps what is backed up: the same for backup (sources) and restore
 * (destinations). Borrowed strings. */
typedef struct {
	store_config store;
	const char *data_dir;
	const char *pki_dir;    /* tls.pki, or NULL */
	const char *uptane_dir; /* uptane.keys when it is not pki_dir, or NULL */
	bk_key_file keys[BK_MAX_KEYS];
	int nkeys;
	bk_progress_fn progress; /* optional */
	void *progress_user;
} bk_opts;

/* Writes a backup of the server o describes into dir (created 0700; an existing dir must be
 * empty). Files of the data directory that vanish while being copied (a release deleted
 * meanwhile) are reported through progress and left out. */
int bk_backup(const bk_opts *o, const char *dir) PQ_MUST_CHECK;

/* Checks every file of the backup in dir against its manifest (size, SHA-256), then puts
 * the store, the data directory, the PKI and the key files where o says. Refuses
 * (PQ_ERR_EXISTS) a data directory, PKI directory or key file that is not empty, or a store
 * that holds data, unless force (then files of the same name are replaced and the store
 * emptied first). The server must be stopped. */
int bk_restore(const bk_opts *o, const char *dir, bool force) PQ_MUST_CHECK;

#endif
