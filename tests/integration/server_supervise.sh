#!/usr/bin/env bash
# server_supervise.sh: a service manager's view of the server (docs/operations.md "Services").
#  1. started with NOTIFY_SOCKET (a datagram socket this test binds) and WATCHDOG_USEC, a
#     real `pqota server` sends READY=1 naming its port once it listens, WATCHDOG=1 while it
#     runs, STOPPING=1 on SIGTERM;
#  2. under `pqota supervise` (the fallback without systemd), a server killed with SIGKILL
#     mid-campaign is restarted and the campaign completes;
#  3. a server that stops answering (SIGSTOP: no watchdog pings) is killed by the
#     supervisor's watchdog and restarted; SIGTERM stops the supervisor and the server.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

VIN=SUPERVISE0000001
make_pki $VIN
start_broker

# --- 1. notifications to a socket of the test's ------------------------------------------------
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], "a", buffering=1)
while True:
    out.write(s.recv(4096).decode().replace("\n", "|") + "\n")' "$WORK/notify.sock" "$WORK/notify.log" &
PIDS+=($!)
wait_for 10 test -S "$WORK/notify.sock" || bad "the test's notification socket"
write_server_conf n
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=400000 "$PQOTA" server --config "$WORK/n.conf" \
	>"$WORK/n.log" 2>&1 &
NPID=$!
PIDS+=($NPID)
check "READY=1 once it listens, naming its port" wait_for 30 grep -q "^READY=1|STATUS=listening on 127.0.0.1:[0-9]" "$WORK/notify.log"
port=$(sed -n 's/^READY=1|STATUS=listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/notify.log")
check "...the port it wrote to its port file ($port)" test "$port" = "$(cat "$WORK/n.port")"
pings() { [ "$(grep -c '^WATCHDOG=1$' "$WORK/notify.log")" -ge "$1" ]; }
check "WATCHDOG=1 pings keep coming (5 of them)" wait_for 20 pings 5
kill -TERM "$NPID"
wait "$NPID" 2>/dev/null || true
check "STOPPING=1 on SIGTERM" grep -q '^STOPPING=1$' "$WORK/notify.log"

# --- 2. kill -9 mid-campaign under pqota supervise -------------------------------------------
write_server_conf s "listen = 127.0.0.1:$(free_port)"
"$PQOTA" supervise --restart-sec 1 --watchdog-sec 2 -- "$PQOTA" server --config "$WORK/s.conf" \
	>"$WORK/supervise.log" 2>&1 &
SUP=$!
PIDS+=($SUP)
ready_count() { [ "$(grep -c "is ready" "$WORK/supervise.log")" -ge "$1" ]; }
check "the supervisor saw the server's READY=1" wait_for 30 ready_count 1
wait_for 30 test -s "$WORK/s.port" || bad "the supervised server did not start"
B=https://127.0.0.1:$(cat "$WORK/s.port")
make_key s
check "$VIN registered" register "$B" $VIN
rel=$(make_release "$B" 1.1.0 HW-1-001 ECU_001) || bad "release"
c=$(pcurl -d "{\"name\":\"supervised\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$VIN\"]},\"policy\":{\"postpone_retry_s\":4}}" \
	"$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$c/start" -o /dev/null
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins $VIN \
	--behavior postpone:4 --duration 60 --log "$WORK/fleet.log" >"$WORK/fleet.out" 2>&1 &
PIDS+=($!)
check "$VIN postponed the campaign" wait_for 30 dep_is "$B" "$c" $VIN postponed
child=$(pgrep -P "$SUP")
kill -KILL "$child"
ok "the supervised server (pid $child) killed with SIGKILL mid-campaign"
check "the supervisor reports it and restarts it" wait_for 20 grep -q "pid $child was killed by signal 9" "$WORK/supervise.log"
check "...which is ready again" wait_for 30 ready_count 2
check "the campaign completes on the restarted server" wait_for 40 dep_is "$B" "$c" $VIN completed

# --- 3. the watchdog -------------------------------------------------------------------------
child=$(pgrep -P "$SUP")
kill -STOP "$child"
check "a stopped server (no pings) is killed by the watchdog" \
	wait_for 20 grep -q "pid $child sent no WATCHDOG=1 for" "$WORK/supervise.log"
check "...and restarted: ready again" wait_for 30 ready_count 3
new=$(pgrep -P "$SUP")
check "...a new process ($child -> $new)" test -n "$new" -a "$new" != "$child"
check "...serving" wait_for 20 dep_is "$B" "$c" $VIN completed
kill -TERM "$SUP"
rc=0
wait "$SUP" || rc=$?
check "SIGTERM stops the supervisor (exit $rc) and the server" sh -c '[ "$0" = 0 ] && ! kill -0 "$1" 2>/dev/null' "$rc" "$new"
finish
