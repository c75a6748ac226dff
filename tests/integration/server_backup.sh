#!/usr/bin/env bash
# server_backup.sh: `pqota server backup` of a running server (SQLite) while a loop of
# requests writes to its store; `restore` into a fresh data directory and PKI path; a new
# server on them serves the same release (the same package bytes by SHA-256), vehicle and
# campaign, and accepts the vehicle certificate issued by the old PKI. Refused: a backup into
# a non-empty directory, a restore into a non-empty data directory without --force, a backup
# with a corrupted file (its SHA-256 does not match the manifest; nothing is written).
# Runs the backup, restore and upgrade steps of docs/operations.md as written (bkdoc).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/backup_lib.bash"

BACKEND=sqlite
STORE_FILE=pqota.db
store_lines() { :; } # the default: DATA_DIR/pqota.db
check_store_file() {
	check "the backup's store passes SQLite's integrity check" \
		test "$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$1")" = ok
}
backup_roundtrip
finish
