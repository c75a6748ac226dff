#!/usr/bin/env bash
# readiness_now.sh: readiness now (docs/api.md 6.18) against a real server with its MQTT
# bridge, mosquitto with its ACL, and real `pqota vehicle` agents:
#  1. a ready vehicle: POST /api/v1/vehicles/{vin}/readiness answers 200 with the agent's
#     four checks, all ok; GET .../readiness (the newest) and .../readiness/{id} show it;
#     prerequisites from the body reach the agent (battery_min_pct 95 above its 90 %);
#  2. a vehicle whose simulated state fails (battery 10 %, ignition on): not ready, the
#     failing checks named, with their reasons;
#  3. an offline vehicle: 409 vehicle_offline at once; an unknown one 404; a bad body 400;
#     wait=0: 202 with the check to poll (answered later); roles: a viewer key 403 for the
#     question (it may read), no key 401;
#  4. answers the server must not take: another vehicle's certificate answering for it (on
#     its own topic: the check is not its; on the other's topic: the broker refuses), and
#     malformed answers (ready contradicting the checks, an unknown check) are ignored,
#     the check stays pending and expires into a 504 no_answer; a client that leaves while
#     it waits leaves the server serving;
#  5. `pqota vehicle readiness VIN`: exit 0 ready, 1 not ready (the failing check printed),
#     2 offline; --json prints the vehicle's answer.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VR=READYNOWREADY001 # an agent in the model's state: ready
VN=READYNOWLOWBAT02 # an agent with a low battery and the ignition on
VO=READYNOWOFFLINE3 # registered, never online
VX=READYNOWOTHER004 # registered, its certificate used to forge answers
cli_setup $VR $VN $VO $VX
check "vehicles registered" register "$B" $VR $VN $VO $VX

# is_get KEY URL EXPR: a 200 whose JSON makes EXPR true
is_get() { [ "$(st "$1" GET "$2")" = 200 ] && jtrue "$WORK/r.json" "$3"; }
U=$B/api/v1/vehicles

check "the trusted Uptane roots are served" provision $VR $VN $VX
start_agent $VR
start_agent $VN --battery 10 --ignition-on
online() { pcurl "$U/$1" | grep -q '"online":true'; }
both_online() { online $VR && online $VN; }
check "both agents are online" wait_for 30 both_online

# --- 1. a ready vehicle --------------------------------------------------------------------
code=$(st "$OP" POST "$U/$VR/readiness?wait=20")
check "POST .../$VR/readiness: 200 (got $code)" test "$code" = 200
check "...the agent's answer: ready, its four checks ok, the default prerequisites" jtrue "$WORK/r.json" \
	"d['vin'] == '$VR' and d['state'] == 'answered' and d['ready'] is True and
	 [c['name'] for c in d['checks']] == ['battery', 'parked', 'ignition_off', 'storage'] and
	 all(c['ok'] for c in d['checks']) and d['checks'][0]['value'] == 90 and
	 d['prerequisites'] == {'battery_min_pct': 20, 'parked': True, 'ignition_off': True} and
	 d['answered_ms'] >= d['requested_ms'] and d['requested_by'].startswith('apikey:')"
ID1=$(jget id <"$WORK/r.json")
check "...the agent got it without a campaign" wait_for 10 grep -q "\"msg_type\":\"request_ota_readiness\".*\"message_id\":\"$ID1\"" "$WORK/events-$VR.jsonl"
check "GET .../$VR/readiness/$ID1 (a viewer): the same check" is_get "$VIEWER" "$U/$VR/readiness/$ID1" "d['id'] == '$ID1' and d['ready'] is True"
code=$(st "$OP" POST "$U/$VR/readiness?wait=20" --data '{"prerequisites":{"battery_min_pct":95,"storage_min_bytes":1}}')
check "prerequisites from the body: battery_min_pct 95 fails at 90 % (got $code)" jtrue "$WORK/r.json" \
	"d['ready'] is False and [c['name'] for c in d['checks'] if not c['ok']] == ['battery'] and 'battery' in d['reason']"
ID2=$(jget id <"$WORK/r.json")
check "GET .../$VR/readiness: the newest check" is_get "$VIEWER" "$U/$VR/readiness" "d['id'] == '$ID2'"

# --- 2. a vehicle that is not ready --------------------------------------------------------
code=$(st "$OP" POST "$U/$VN/readiness?wait=20")
check "POST .../$VN/readiness: 200 (got $code)" test "$code" = 200
check "...not ready: battery and ignition_off fail, with reasons" jtrue "$WORK/r.json" \
	"d['ready'] is False and [c['name'] for c in d['checks'] if not c['ok']] == ['battery', 'ignition_off'] and
	 d['checks'][0]['value'] == 10 and d['checks'][2]['reason'] == 'the ignition is on'"

# --- 3. errors, 202, roles -----------------------------------------------------------------
t0=$(date +%s%N)
code=$(st "$OP" POST "$U/$VO/readiness?wait=20")
t1=$(date +%s%N)
check "an offline vehicle: 409 vehicle_offline (got $code)" jtrue "$WORK/r.json" "d['error']['code'] == 'vehicle_offline'"
check "...at once (under 2 s, not the wait: $(((t1 - t0) / 1000000)) ms)" test $(((t1 - t0) / 1000000)) -lt 2000
check "...no check recorded for it" test "$(st "$OP" GET "$U/$VO/readiness")" = 404
check "an unknown vehicle: 404" test "$(st "$OP" POST "$U/NOSUCHVEHICLE0009/readiness")" = 404
check "wait=31: 400" test "$(st "$OP" POST "$U/$VR/readiness?wait=31")" = 400
check "an unknown prerequisite: 400" test "$(st "$OP" POST "$U/$VR/readiness" --data '{"speed_max":3}')" = 400
check "battery_min_pct 101: 400" test "$(st "$OP" POST "$U/$VR/readiness" --data '{"prerequisites":{"battery_min_pct":101}}')" = 400
check "a body that is not JSON: 400" test "$(st "$OP" POST "$U/$VR/readiness" --data 'x')" = 400
check "a viewer key may not ask: 403" test "$(st "$VIEWER" POST "$U/$VR/readiness")" = 403
check "no key: 401" test "$(st - POST "$U/$VR/readiness")" = 401
code=$(st "$OP" POST "$U/$VR/readiness?wait=0" --data '{"parked":true}')
check "wait=0: 202 with the pending check (got $code)" jtrue "$WORK/r.json" "d['state'] == 'pending' and d['ready'] is None and d['prerequisites'] == {'parked': True}"
ID3=$(jget id <"$WORK/r.json")
answered() { st "$VIEWER" GET "$U/$VR/readiness/$ID3" >/dev/null && jtrue "$WORK/r.json" "d['state'] == 'answered' and d['ready'] is True"; }
check "...polled: answered by the agent" wait_for 10 answered

# --- 4. answers not taken ------------------------------------------------------------------
cred() { echo --cafile "$CA" --cert "$PKI/vehicles/$1/client.crt" --key "$PKI/vehicles/$1/client.key"; }
pub() { # pub WHO TOPIC FILE: QoS 1; the exit status of mosquitto_pub
	# shellcheck disable=SC2046
	on35 mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$BROKER_PORT" $(cred "$1") -t "$2" -f "$3" -q 1 >>"$WORK/pub.out" 2>&1
}
answer() { # answer VIN CORRELATION READY [edits]: an ota_readiness_response
	python3 - "$@" <<'PY'
import json, sys, uuid, datetime
vin, corr, ready = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
checks = [{"name": n, "value": v, "ok": True} for n, v in
          (("battery", 90), ("parked", True), ("ignition_off", True), ("storage", 10**9))]
m = {"msg_type": "ota_readiness_response", "message_id": str(uuid.uuid4()),
     "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
     "vin": vin, "correlation_id": corr, "ready": ready, "checks": checks}
for edit in sys.argv[4:]:
    exec(edit)
print(json.dumps(m))
PY
}
# a question to $VN whose agent is running would be answered: ask $VX, marked online by a
# presence message from its own certificate, with no agent to answer
echo -n online >"$WORK/online.txt"
check "$VX announces itself online (its presence)" pub $VX "oem/$VX/presence" "$WORK/online.txt"
check "...marked online" wait_for 10 online $VX
code=$(st "$OP" POST "$U/$VX/readiness?wait=0")
check "a question to $VX: 202 (got $code)" test "$code" = 202
IDX=$(jget id <"$WORK/r.json")
answer $VN "$IDX" true >"$WORK/a1.json"
check "$VN's certificate answers $VX's check on its own topic: published" pub $VN "oem/$VN/response" "$WORK/a1.json"
answer $VX "$IDX" true >"$WORK/a2.json"
pub $VN "oem/$VX/response" "$WORK/a2.json" || true # the broker's ACL refuses it
answer $VX "$IDX" true "m['checks'][1]['ok'] = False" >"$WORK/a3.json"
check "a malformed answer (ready but a check failed): published" pub $VX "oem/$VX/response" "$WORK/a3.json"
answer $VX "$IDX" true "m['checks'].append({'name': 'fuel', 'value': 1, 'ok': True})" >"$WORK/a4.json"
check "an answer naming an unknown check: published" pub $VX "oem/$VX/response" "$WORK/a4.json"
answer $VX "$IDX" false "m['checks'] = 'none'" >"$WORK/a5.json"
check "an answer without a checks array: published" pub $VX "oem/$VX/response" "$WORK/a5.json"
refused() { [ "$(grep -c "ota_readiness_response refused" "$WORK/s1.log")" -ge "$1" ]; }
check "the server refused the four (log)" wait_for 10 refused 4
check "...the check is still pending" is_get "$VIEWER" "$U/$VX/readiness/$IDX" "d['state'] == 'pending' and d['ready'] is None"
answer $VX "$IDX" false "m['checks'][0].update(ok=False, value=5, reason='low')" "m['reason'] = 'low'" >"$WORK/a6.json"
check "$VX's own well-formed answer: published" pub $VX "oem/$VX/response" "$WORK/a6.json"
own() { st "$VIEWER" GET "$U/$VX/readiness/$IDX" >/dev/null && jtrue "$WORK/r.json" "d['state'] == 'answered' and d['ready'] is False and d['reason'] == 'low'"; }
check "...taken: not ready, its reason" wait_for 10 own
code=$(st "$OP" POST "$U/$VX/readiness?wait=1")
check "no answer within wait=1: 504 no_answer with the check to poll (got $code)" jtrue "$WORK/r.json" \
	"d['error']['code'] == 'no_answer' and d['readiness']['state'] == 'pending' and d['readiness']['vin'] == '$VX'"

rc=0
st "$OP" POST "$U/$VX/readiness?wait=10" --max-time 1 >/dev/null 2>&1 || rc=$?
check "a client that leaves while it waits (curl exit $rc: timed out)" test "$rc" = 28
check "...the server saw it go (and stopped waiting)" wait_for 5 grep -q "the client left while it waited" "$WORK/s1.log"
check "...the server serves on (GET /health)" test "$(st - GET "$B/health")" = 200
code=$(st "$OP" POST "$U/$VR/readiness?wait=20")
check "...and answers the next question (got $code)" jtrue "$WORK/r.json" "d['ready'] is True"

# --- 5. the CLI ----------------------------------------------------------------------------
veh() { PQOTA_API_KEY=$OP "$PQOTA" vehicle "$@"; }
rc=0
veh readiness $VR --json >"$WORK/cli.json" || rc=$?
check "pqota vehicle readiness $VR: exit 0 (got $rc)" test "$rc" = 0
check "...--json: the vehicle's answer and the server's view" jtrue "$WORK/cli.json" \
	"d['ready'] is True and d['state'] == 'answered' and len(d['checks']) == 4 and d['vehicle']['vin'] == '$VR'"
expect_exit 1 "pqota vehicle readiness $VN: not ready, exit 1" veh readiness $VN
check "...the failing check printed with its reason" grep -q "^  no   ignition_off .*the ignition is on" "$WORK/last.out"
expect_exit 2 "pqota vehicle readiness $VO (offline): exit 2" veh readiness $VO
check "...the server's 409" grep -q "409" "$WORK/last.out"
expect_exit 2 "a viewer key: exit 2" env PQOTA_API_KEY=$VIEWER "$PQOTA" vehicle readiness $VR
check "the agent of $VR stops cleanly" stop_agent $VR
check "the agent of $VN stops cleanly" stop_agent $VN
finish
