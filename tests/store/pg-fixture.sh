#!/usr/bin/env bash
# pg-fixture.sh: runs a command against a throwaway PostgreSQL server, then removes it.
#
#   tests/store/pg-fixture.sh COMMAND [ARGS...]
#
# Creates a temporary directory, initdb's a cluster in it and starts postgres on a free
# 127.0.0.1 port with its unix socket in that directory (as the `postgres` user when run
# as root: PostgreSQL refuses to run as root), waits for pg_isready, creates the role and
# database pqota, and runs COMMAND with
#   PQOTA_TEST_STORE=postgres
#   PQOTA_TEST_PG="host=<dir> port=<port> dbname=pqota user=pqota"
# The server is always stopped and the directory removed, also when the command fails or
# this script is interrupted; a watchdog does it if the script itself is killed.
# The exit status is the command's. PG_BINDIR overrides the server binaries' directory.
set -euo pipefail

die() {
	echo "pg-fixture: $*" >&2
	exit 2
}

[ $# -ge 1 ] || die "usage: $0 COMMAND [ARGS...]"

# The newest /usr/lib/postgresql/<version>/bin (Debian), else pg_config's.
find_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	local best="" bestv=-1 d v
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] || continue
		v=${d#/usr/lib/postgresql/}
		v=${v%%/*}
		v=${v%%.*}
		[[ $v =~ ^[0-9]+$ ]] || continue
		if [ "$v" -gt "$bestv" ]; then
			best=$d
			bestv=$v
		fi
	done
	if [ -z "$best" ] && command -v pg_config >/dev/null; then
		best=$(pg_config --bindir)
	fi
	echo "$best"
}

BINDIR=$(find_bindir)
for tool in initdb postgres pg_ctl pg_isready psql; do
	[ -x "$BINDIR/$tool" ] || die "no $tool in '$BINDIR' (install postgresql, or set PG_BINDIR)"
done

# Run server-side tools as an unprivileged user when we are root.
RUNAS=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root, but there is no 'postgres' user"
	RUNAS=(runuser -u postgres --)
fi
# (from inside $DIR: the caller's working directory may be closed to that user)
as_pg() { (cd "$DIR" && "${RUNAS[@]}" "$@"); }

free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	else
		echo $((20000 + RANDOM % 40000))
	fi
}

DIR=$(mktemp -d "${TMPDIR:-/tmp}/pqota-pg-XXXXXX")
DATA="$DIR/data"
LOG="$DIR/postgres.log"
WATCHDOG=""
CHILD=""
PGPID="" # the background postgres (or runuser running it)

stop_server() {
	[ -n "$PGPID" ] || return 0
	if ! as_pg "$BINDIR/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
		# pg_ctl failed: kill the postmaster by the pid it recorded
		local pid
		pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
		if [[ $pid =~ ^[0-9]+$ ]] && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = postgres ]; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	wait "$PGPID" 2>/dev/null || true
	PGPID=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
	fi
	if [ -n "$WATCHDOG" ]; then
		kill "$WATCHDOG" 2>/dev/null || true
		wait "$WATCHDOG" 2>/dev/null || true
	fi
	stop_server
	rm -rf "$DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

if [ -n "${RUNAS[*]}" ]; then
	chown postgres: "$DIR"
	as_pg test -w "$DIR" ||
		die "user postgres cannot write $DIR (is ${TMPDIR:-/tmp} traversable?)"
fi

as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
	>"$DIR/initdb.log" 2>&1 || {
	cat "$DIR/initdb.log" >&2
	die "initdb failed"
}

# The port could be taken between choosing and binding it: try a few.
for attempt in 1 2 3 4 5; do
	PORT=$(free_port)
	# durability off: a throwaway cluster
	(cd "$DIR" && exec "${RUNAS[@]}" "$BINDIR/postgres" -D "$DATA" -k "$DIR" -p "$PORT" \
		-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
		-c full_page_writes=off -c max_connections=40) </dev/null >>"$LOG" 2>&1 &
	PGPID=$!
	# poll for readiness, or for the server's death (port taken), for up to 30 s
	ready=0
	for _ in $(seq 1 300); do
		if "$BINDIR/pg_isready" -q -h "$DIR" -p "$PORT" -d postgres -U postgres; then
			ready=1
			break
		fi
		kill -0 "$PGPID" 2>/dev/null || break
		sleep 0.1
	done
	[ "$ready" = 1 ] && break
	stop_server
	echo "pg-fixture: postgres did not start on port $PORT (attempt $attempt):" >&2
	tail -n 5 "$LOG" >&2 || true
done
[ "$ready" = 1 ] || die "postgres did not start"

# The watchdog stops the server if this script dies without running its trap (SIGKILL).
(
	parent=$$
	while kill -0 "$parent" 2>/dev/null; do sleep 1; done
	as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate stop || true
	rm -rf "$DIR"
) </dev/null >/dev/null 2>&1 &
WATCHDOG=$!

"$BINDIR/psql" -q -X -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres \
	-c "CREATE ROLE pqota LOGIN" -c "CREATE DATABASE pqota OWNER pqota" >/dev/null ||
	die "creating role and database pqota failed"

export PQOTA_TEST_STORE=postgres
export PQOTA_TEST_PG="host=$DIR port=$PORT dbname=pqota user=pqota"
# In the background and waited for, so that a signal to this script reaches the trap at
# once, and the trap can pass it on to the command.
"$@" &
CHILD=$!
set +e
wait "$CHILD"
status=$?
set -e
CHILD=""
exit "$status"
