#!/usr/bin/env bash
# server_ready.sh: GET /health is liveness (200 while the server serves, whatever its
# dependencies do); GET /ready answers 503 naming the failing part when the broker goes away
# or the data directory stops being usable, and 200 again once they are back.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki
start_broker
write_server_conf s
start_server s
B=$BASE_s
# get PATH OUT: the status of a GET, its body in OUT
get() { on35 curl -sS -o "$2" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$B$1"; }
# ready_is STATUS FAILING: /ready answers STATUS with exactly the failing parts FAILING
# (comma-separated, "" for none)
ready_is() {
	[ "$(get /ready "$WORK/ready.json")" = "$1" ] &&
		python3 -c 'import json,sys; d = json.load(open(sys.argv[1]))
assert ",".join(d["failing"]) == sys.argv[2], d' "$WORK/ready.json" "$2"
}
check "/health: 200" test "$(get /health "$WORK/h.json")" = 200
check "/ready: 200, every part ok" ready_is 200 ""
check "...store, broker, data directory and keys checked" jtrue "$WORK/ready.json" \
	"d['status'] == 'ready' and d['checks'] == {'store': 'ok', 'broker': 'ok', 'data_dir': 'ok', 'keys': 'ok'}"

kill "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
check "the broker stopped: /ready 503 naming the broker" wait_for 30 ready_is 503 broker
check "...which it says is not connected" jtrue "$WORK/ready.json" \
	"d['status'] == 'not_ready' and d['checks']['broker'] == 'down: the MQTT bridge is not connected'"
check "...while /health answers 200 (the process serves)" test "$(get /health "$WORK/h.json")" = 200
campaign_broker "$BROKER_PORT" || bad "the broker did not restart"
PIDS+=("$BROKER_PID")
check "the broker back: /ready 200 again" wait_for 60 ready_is 200 ""

mv "$WORK/data-s/files" "$WORK/files.away"
check "the data directory's files/ gone: /ready 503 naming data_dir" ready_is 503 data_dir
mv "$WORK/files.away" "$WORK/data-s/files"
check "...and back: 200" ready_is 200 ""

BROKER_PORT=1 write_server_conf n
sed -i '/^mqtt\.broker/d' "$WORK/n.conf"
start_server n
B=$BASE_n
check "a server without a broker is ready, its broker 'not configured'" ready_is 200 ""
check "...so it says" jtrue "$WORK/ready.json" "d['checks']['broker'] == 'not configured'"
finish
