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

# free_port: a port free right now. Another process may take it before the caller binds it:
# mosquitto, which cannot listen on port 0 and report its port, is started by broker_start,
# which then tries another port.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# broker_start START_FN LOG [PORT]: starts mosquitto on a free port. START_FN PORT writes a
# configuration listening on 127.0.0.1:PORT and starts mosquitto in the background, its
# output in LOG, setting BROKER_PID. The first try uses PORT if given, else free_port's;
# when mosquitto exits because the port was taken meanwhile ("Address already in use"),
# another port is tried. Sets BROKER_PORT; returns once mosquitto runs, 1 if it did not
# start (LOG says why).
broker_start() {
	local fn=$1 log=$2 first=${3:-} try
	for try in 1 2 3 4 5; do
		BROKER_PORT=${first:-$(free_port)}
		first=""
		"$fn" "$BROKER_PORT" || return 1
		PIDS+=("$BROKER_PID")
		wait_for 10 broker_settled "$log" "$BROKER_PID" || true
		grep -q " running" "$log" 2>/dev/null && return 0
		grep -qi "address already in use" "$log" 2>/dev/null || return 1
		wait "$BROKER_PID" 2>/dev/null || true
		echo "     port $BROKER_PORT was taken before mosquitto bound it (try $try): another one"
	done
	return 1
}

# broker_settled LOG PID: mosquitto reports it runs, or its process has ended
broker_settled() {
	grep -q " running" "$1" 2>/dev/null || ! kill -0 "$2" 2>/dev/null
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

# hold_for SECONDS CMD...: the wait of a negative check: passes when CMD keeps succeeding
# (polled every 50 ms) for SECONDS of wall-clock time, fails as soon as it does not. Only for
# "X did not happen" where no later event shows that X would have happened by then; else use
# a barrier (mqtt_sub_sync, or an event the system logs after the point in question).
hold_for() {
	local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 || return 1
		sleep 0.05
	done
	"$@" >/dev/null 2>&1
}

# mqtt_sub OUT PROBE CONN... -- SUB...: `mosquitto_sub CONN... SUB... -t PROBE` (on OpenSSL
# 3.5) in the background, the lines it prints in OUT, its stderr in OUT.err; returns once its
# subscriptions are active (1 if not within 10 s), with MQTT_SUB_PID set (and in PIDS).
# CONN are the connection options (-h, -p, TLS files, -V), which mosquitto_pub uses too.
# PROBE is a topic of this subscriber's own, which those credentials may read and publish
# and nothing else subscribes to, e.g. oem/<VIN>/test/probe-<name> (no pqota program does).
# The readiness probe: a retained marker with a unique payload is published on PROBE first;
# the broker delivers it to the subscriber once it has processed its SUBSCRIBE (all -t in
# that one packet), so no sleep is needed. Marker lines (any line with "pqota-probe:") go to
# OUT.probe, never to OUT (a wildcard subscriber may also see other subscribers' markers); a
# -C COUNT in SUB still counts the messages in OUT (the marker is added to it).
mqtt_sub() {
	local out=$1 probe=$2 conn=() sub=() marker
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		conn+=("$1")
		shift
	done
	shift
	while [ $# -gt 0 ]; do
		if [ "$1" = -C ]; then
			sub+=(-C "$(($2 + 1))")
			shift 2
		else
			sub+=("$1")
			shift
		fi
	done
	rm -f "$out" "$out.probe" "$out.err"
	: >"$out"
	: >"$out.probe"
	# for mqtt_sub_sync
	printf '%s\0' "$probe" "${conn[@]}" >"$out.conn"
	marker="pqota-probe:ready-$BASHPID-$RANDOM$RANDOM"
	on35 mosquitto_pub "${conn[@]}" -q 1 -r -t "$probe" -m "$marker" >>"$out.err" 2>&1 || return 1
	(
		"$PQOTA_SRC/scripts/env" -- mosquitto_sub "${conn[@]}" "${sub[@]}" -t "$probe" 2>>"$out.err" |
			while IFS= read -r line || [ -n "$line" ]; do
				case $line in
				*pqota-probe:*) printf '%s\n' "$line" >>"$out.probe" ;;
				*) printf '%s\n' "$line" >>"$out" ;;
				esac
			done
	) 2>/dev/null & # (no "Terminated" from it when the test's cleanup stops it)
	MQTT_SUB_PID=$!
	PIDS+=($MQTT_SUB_PID)
	wait_for 10 grep -qF "$marker" "$out.probe"
}

# mqtt_sub_sync OUT: a barrier for the subscriber of mqtt_sub OUT: publishes a new marker on
# its PROBE and waits (10 s at most) for it to arrive. The broker handles one client's packets
# in order and queues a subscriber's messages in order, so once it arrived, every message
# published (and acknowledged) before has reached OUT, or never will: what OUT lacks then
# was not delivered. Not with -C (the marker would count).
mqtt_sub_sync() {
	local out=$1 args=() marker
	mapfile -d '' args <"$out.conn"
	marker="pqota-probe:sync-$BASHPID-$RANDOM$RANDOM"
	on35 mosquitto_pub "${args[@]:1}" -q 1 -t "${args[0]}" -m "$marker" >>"$out.err" 2>&1 || return 1
	wait_for 10 grep -qF "$marker" "$out.probe"
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
