# lib.bash: helpers for the black-box tests (sourced): temp dirs, free ports, waiting,
# assertions, and cleanup of every process a test started.
set -euo pipefail

: "${PQOTA_BIN:?PQOTA_BIN must name the pqota binary}"
: "${PQOTA_SRC:?PQOTA_SRC must name the source tree}"
PQOTA=$PQOTA_BIN
OPENSSL_PREFIX=$("$PQOTA_SRC/scripts/env" --prefix)
OPENSSL35="$OPENSSL_PREFIX/bin/openssl"
[ "$OPENSSL_PREFIX" = /usr ] && OPENSSL35=/usr/bin/openssl
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pqota-it-XXXXXX")
PIDS=()
PASSED=0
FAILED=0

cleanup() {
	# a backgrounded shell function (on35 ... &) is a subshell: stop its children too
	for p in "${PIDS[@]}"; do
		pkill -TERM -P "$p" 2>/dev/null || true
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	# KEEP_WORK=1 keeps the files for a post-mortem (the processes are always stopped)
	if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# run a third-party program on pqota's OpenSSL
on35() { "$PQOTA_SRC/scripts/env" -- "$@"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for TIMEOUT_S CMD...: polls CMD every 50 ms until it succeeds
wait_for() {
	local t=$1 i=0
	shift
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt $((t * 20)) ] || return 1
		sleep 0.05
	done
}

ok() {
	PASSED=$((PASSED + 1))
	echo "ok   - $*"
}
bad() {
	FAILED=$((FAILED + 1))
	echo "FAIL - $*"
}
# check DESCRIPTION CMD...: passes when CMD succeeds
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
# expect_exit CODE DESCRIPTION CMD...: passes when CMD exits with CODE
expect_exit() {
	local want=$1 d=$2 rc=0
	shift 2
	"$@" >"$WORK/last.out" 2>&1 || rc=$?
	if [ "$rc" = "$want" ]; then ok "$d (exit $rc)"; else
		bad "$d: exit $rc, wanted $want"
		sed 's/^/     /' "$WORK/last.out" | head -n 20
	fi
}
contains() { grep -q -- "$2" "$1"; }

finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}
