#!/usr/bin/env bash
# server_backup_pg.sh: the round trip of server_backup.sh on PostgreSQL (pg_dump while the
# server writes, pg_restore into another, empty database), with the role, database,
# pg_hba.conf line (scram-sha-256) and passfile of docs/operations.md "PostgreSQL set-up",
# run as written there: the password reaches pg_dump and pg_restore through the passfile,
# never a command line. Also refused: a restore into a database that holds data.
# Runs under tests/store/pg-fixture.sh (a throwaway PostgreSQL server); re-executes itself
# there when started directly.
if [ -z "${PQOTA_TEST_PG:-}" ]; then
	exec bash "$PQOTA_SRC/tests/store/pg-fixture.sh" bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/backup_lib.bash"

# the fixture's server: its socket directory and port; psql as the superuser through it
export PGHOST=${PQOTA_TEST_PG#*host=} PGPORT=${PQOTA_TEST_PG#*port=}
PGHOST=${PGHOST%% *} PGPORT=${PGPORT%% *}
sql() { psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres -Atc "$1"; }

# --- docs/operations.md "PostgreSQL set-up", as written, on a server without the fixture's
# role and database, whose TCP connections need a password (initdb's trust lines refuse)
n=$(doc_blocks "PostgreSQL set-up" "$WORK/docpg")
check "the section has its two command blocks (got $n)" test "$n" = 2
sql "DROP DATABASE pqota" && sql "DROP ROLE pqota" || bad "dropping the fixture's database"
HBA=$(sql "SHOW hba_file")
sed -i 's/^\(host[[:space:]].*\)trust$/\1reject/' "$HBA"
check "the role and database block runs as written" run_block "$WORK/docpg.1"
# the restores' databases, reached the same way
sql "CREATE DATABASE pqota_r OWNER pqota" && sql "CREATE DATABASE pqota_c OWNER pqota" ||
	bad "creating the databases of the restores"
sed -i '1i host  pqota_r,pqota_c  pqota  127.0.0.1/32  scram-sha-256' "$HBA"
sql "SELECT pg_reload_conf()" >/dev/null
make_pki $V
mkdir "$WORK/doc"
cd "$WORK/doc"
printf 'listen = 127.0.0.1:0\ntls.pki = %s\ndata_dir = %s\n' "$PKI" "$WORK/doc/data" >pqota-server.conf
check "the pqota server block runs as written" run_block "$WORK/docpg.2"
tail -n 1 "$WORK/docpg.2.out" | sed 's/^/     /'
echo "127.0.0.1:$PGPORT:*:pqota:change-this-password" >>pgpass
check "a connection without the password is refused (scram-sha-256)" \
	sh -c '! PGPASSFILE=/dev/null psql -X -w "host=127.0.0.1 port=$PGPORT dbname=pqota user=pqota" -c "SELECT 1" 2>"$0"' "$WORK/nopw.err"
check "...by password authentication" grep -q "password" "$WORK/nopw.err"

# --- the round trip on the store.url the documentation made --------------------------------
BACKEND=postgres
STORE_FILE=pqota.pgdump
store_lines() {
	local db=pqota
	[ "$1" = s ] || db=pqota_$1
	sed -n "/^store\./{s/dbname=pqota /dbname=$db /;p}" "$WORK/doc/pqota-server.conf"
}
check_store_file() {
	check "the backup's store is a pg_dump archive pg_restore reads" \
		sh -c 'pg_restore --list "$1" | grep -q "TABLE public releases"' sh "$1"
}
backup_roundtrip
psql -X -U pqota -d pqota_r -Atc "SELECT count(*) FROM campaigns" >"$WORK/n.txt" 2>&1 || true
check "the restored database holds the campaigns ($(cat "$WORK/n.txt"))" test "$(cat "$WORK/n.txt")" -ge 1

# a restore into a fresh data directory, but a database that holds data
cat >"$WORK/d.conf" <<EOF2
listen = 127.0.0.1:0
tls.pki = $WORK/pki-d
data_dir = $WORK/data-d
store.backend = postgres
store.url = "$PQOTA_TEST_PG"
EOF2
expect_exit 2 "a restore into a database that holds data is refused" \
	"$PQOTA" server --config "$WORK/d.conf" restore "$WORK/bk"
check "...saying so" contains "$WORK/last.out" "holds data.*--force"
finish
