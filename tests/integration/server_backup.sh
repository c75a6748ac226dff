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
stop_server r

# --- docs/operations.md "Backup and restore": the commands as written ---------------------
n=$(doc_blocks "Backup and restore" "$WORK/docbk")
check "the section has its two command blocks (got $n)" test "$n" = 2
mkdir "$WORK/doc"
cd "$WORK/doc"
PKI="$WORK/doc/pki"
"$PQOTA" keys init pki >/dev/null
printf 'listen = 127.0.0.1:0\ntls.pki = pki\ndata_dir = pqota-data\nport_file = %s\n' \
	"$WORK/doc.port" >"$WORK/doc.conf"
ln -s "$WORK/doc.conf" pqota-server.conf
start_server doc
make_key doc
REL=$(make_release "$BASE_doc" 2.0.0 HW-1-001 ECU_001)
check "the backup block runs as written" run_block "$WORK/docbk.1"
check "...and made a backup" test -s "$(ls -d backups/pqota-*/manifest.json | head -n 1)"
stop_server doc
rm -rf pqota-data pki
check "the restore block runs as written (data directory and PKI gone)" run_block "$WORK/docbk.2"
sed 's/^/     /' "$WORK/docbk.2.out"
start_server doc
check "...and the server serves the release again" pcurl "$BASE_doc/api/v1/releases/$REL" -o /dev/null
finish
