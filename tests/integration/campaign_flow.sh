#!/usr/bin/env bash
# campaign_flow.sh: campaigns end to end with real processes: mosquitto (PQC TLS, per-VIN
# ACL) configured by `pqota broker config`, `pqota server` with its MQTT bridge and campaign
# engine, and scripted vehicles (pqota-fleet) speaking MQTT + HTTPS.
#  1. one campaign, one vehicle per behaviour: completed with every transition recorded,
#     declined, postponed then completed, timed out, failed download, rolled back, and a
#     vehicle sending duplicate and out-of-order messages;
#  2. a server killed in the middle of a campaign resumes it from the store;
#  3. rollout phases: phase 2 starts only after phase 1 completed; injected failures
#     auto-pause the campaign;
# plus the seed routes, the Uptane metadata the vehicles got, and a vehicle that publishes
# on another VIN's topic being refused by the broker.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

ok1=FLOWACCEPT01
dec=FLOWDECLINE1
pp=FLOWPOSTPON1
sil=FLOWSILENT01
fdl=FLOWFAILDL01
rb=FLOWROLLBK01
dup=FLOWDUPOOO01
rs=FLOWRESTART1
phs=(FLOWPHASE001 FLOWPHASE002 FLOWPHASE003 FLOWPHASE004 FLOWPHASE005)
all=($ok1 $dec $pp $sil $fdl $rb $dup $rs "${phs[@]}")
make_pki "${all[@]}"
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" "${all[@]}"
rel=$(make_release "$B" 1.1.0 HW-1-001 ECU_001) || { bad "release"; finish; }
check "a release for ECU_001 (HW-1-001) 1.1.0" test -n "$rel"

# --- 1. one campaign, every behaviour ----------------------------------------------------
list() { local IFS=,; echo "$*"; }
spec="{\"name\":\"flow\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$ok1\",\"$dec\",\"$pp\",\"$sil\",\"$fdl\",\"$rb\",\"$dup\"]},
\"policy\":{\"vehicle_timeout_s\":4,\"postpone_retry_s\":1},\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}"
c1=$(pcurl -d "$spec" "$B/api/v1/campaigns" | jget id) || { bad "campaign create"; finish; }
check "campaign created as a draft" test "$(pcurl "$B/api/v1/campaigns/$c1" | jget state)" = draft
expect_exit 22 "an unknown field in a campaign is refused (400)" \
	on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" -H "Authorization: Bearer $APIKEY" \
	-d '{"name":"x","release_ids":["'"$rel"'"],"bogus":1}' "$B/api/v1/campaigns"
n=$(pcurl -X POST "$B/api/v1/campaigns/$c1/start" | jget total)
check "the campaign targets the 7 vehicles (got $n)" test "$n" = 7

"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" \
	--vins "$(list $ok1 $dec $pp $sil $fdl $rb)" --behavior accept \
	--behavior-for "$dec=decline" --behavior-for "$pp=postpone:1" --behavior-for "$sil=silent" \
	--behavior-for "$fdl=fail-download" --behavior-for "$rb=rollback" \
	--duration 60 --log "$WORK/fleet1.log" >"$WORK/fleet1.out" 2>&1 &
F1=$!
PIDS+=($F1)
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins "$dup" \
	--duplicate --out-of-order --duration 60 --log "$WORK/fleet2.log" >"$WORK/fleet2.out" 2>&1 &
F2=$!
PIDS+=($F2)

done1() {
	local j
	j=$(pcurl "$B/api/v1/campaigns/$c1") || return 1
	[ "$(echo "$j" | jget state)" = completed ]
}
check "campaign 1 completes (every deployment terminal)" wait_for 60 done1
code=$(on35 curl -s -o "$WORK/pause.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	-H "Authorization: Bearer $APIKEY" -X POST "$B/api/v1/campaigns/$c1/pause")
check "pausing a completed campaign is 409 bad_state (got $code)" test "$code" = 409
for pair in "$ok1=completed" "$dec=declined" "$pp=completed" "$sil=timed_out" "$fdl=failed" \
	"$rb=rolled_back" "$dup=completed"; do
	v=${pair%%=*}
	want=${pair#*=}
	got=$(dep_state "$B" "$c1" "$v")
	check "$v: $want (got $got)" test "$got" = "$want"
done
pcurl "$B/api/v1/campaigns/$c1/vehicles/$ok1" >"$WORK/ok1.json"
chain=$(python3 -c 'import json,sys; print(" ".join(t["to"] for t in json.load(open(sys.argv[1]))["transitions"]))' "$WORK/ok1.json")
check "every transition of $ok1 is stored in order: $chain" \
	test "$chain" = "pending notified accepted downloading downloaded installing installed completed"
pp_chain=$(dep_chain "$B" "$c1" "$pp")
check "$pp was postponed, notified again and completed: $pp_chain" \
	bash -c "[[ '$pp_chain' == 'pending notified postponed notified accepted '*completed ]]"
check "the postponed vehicle received the campaign twice" \
	test "$(grep "\"vin\":\"$pp\"" "$WORK/fleet1.log" | grep '"event":"received"' | grep -c '"msg_type":"ota_campaign"')" = 2
# The engine notifies each deployment once. The one other copy the protocol allows is the
# resend after a wake-up (docs/protocol.md: a vehicle that was notified before its wake-up
# may have missed it): when the engine's tick notifies a vehicle between its connection and
# the arrival of its wake-up, the vehicle receives both; the server logs each such resend.
check "no other vehicle received the campaign twice, but for a logged wake-up resend" \
	python3 - "$WORK/fleet1.log" "$pp" "$WORK/s1.log" <<'PY'
import json, sys, collections
n = collections.Counter()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "received" and e.get("msg_type") == "ota_campaign":
        n[e["vin"]] += 1
resent = collections.Counter()
for line in open(sys.argv[3], errors="replace"):
    if "ota_campaign of campaign" in line and "sent again after its wake-up" in line:
        resent[line.split("[engine] ", 1)[-1].split(":", 1)[0].strip()] += 1
bad = {v: c for v, c in n.items() if v != sys.argv[2] and c != 1 + resent[v]}
if bad:
    print("     received:", dict(n), "resent after a wake-up:", dict(resent))
sys.exit(1 if bad or not n else 0)
PY
dup_chain=$(dep_chain "$B" "$c1" "$dup")
check "duplicates and out-of-order messages never moved $dup back: $dup_chain" python3 - "$dup_chain" <<'PY'
import sys
order = "pending notified accepted downloading downloaded installing installed completed".split()
seq = sys.argv[1].split()
idx = [order.index(s) for s in seq]
sys.exit(0 if idx == sorted(idx) and len(set(idx)) == len(idx) and seq[-1] == "completed" else 1)
PY
check "the fleet sent duplicates" grep -q '"duplicate":true' "$WORK/fleet2.log"
metric_pos() { pcurl "$B/metrics" | awk -v m="$1" '$1 == m && $2 > 0 {f=1} END {exit !f}'; }
has() { pcurl "$1" | grep -q -- "$2"; }
check "the server counted the redeliveries as duplicates" metric_pos pqota_mqtt_duplicate_total
check "$fdl's failure carries the vehicle's error code" has "$B/api/v1/campaigns/$c1/vehicles/$fdl" '"error_code":"[a-z_]'
check "$ok1 downloaded its image over HTTPS with a matching SHA-256" \
	grep -q "\"vin\":\"$ok1\".*\"event\":\"download_done\".*\"sha256_ok\":true" "$WORK/fleet1.log"
check "...the encrypted copy, its key unwrapped with $ok1's KEM keys, decrypted to the package" \
	grep -q "\"vin\":\"$ok1\".*\"event\":\"download_done\".*\"sha256_ok\":true.*\"encrypted\":true.*\"enc_sha256_ok\":true" "$WORK/fleet1.log"
check "$ok1 now reports ECU_001 at 1.1.0" has "$B/api/v1/vehicles/$ok1/ecus/ECU_001" '1\.1\.0'

# Uptane: the metadata each vehicle got names its image; the repositories are served
check "$ok1 received ota_campaign_metadata" grep -q "\"vin\":\"$ok1\".*\"msg_type\":\"ota_campaign_metadata\"" "$WORK/fleet1.log"
for r in root timestamp snapshot targets; do
	check "image repository serves $r.json" has "$B/uptane/image/$r.json" "\"_type\":\"$r\""
done
check "image repository serves 1.root.json" has "$B/uptane/image/1.root.json" '"_type":"root"'
v1="$PKI/vehicles/$ok1"
vget() { on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" --cert "$v1/client.crt" --key "$v1/client.key" "$1"; }
dir_names() { vget "$B/uptane/director/$ok1/targets.json" | grep -q "$rel.full.swpg"; }
check "director targets of $ok1 name the release's image" dir_names
expect_exit 22 "a vehicle cannot read another vehicle's director metadata" \
	on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" --cert "$v1/client.crt" \
	--key "$v1/client.key" "$B/uptane/director/$dec/targets.json"
announced() { on35 mosquitto_sub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$PKI/ca/ca.crt" --cert "$v1/client.crt" --key "$v1/client.key" -t oem/broadcast/releases -C 1 -W 5 | grep -q '"version":"1.1.0"'; }
check "the retained release announcement names 1.1.0" announced
# a vehicle publishing on another VIN's topic: refused by the broker, never seen by the server
on35 mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$PKI/ca/ca.crt" --cert "$v1/client.crt" \
	--key "$v1/client.key" -q 1 -t "oem/$dec/response" \
	-m "{\"msg_type\":\"ota_campaign_response\",\"message_id\":\"spoof-1\",\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"vin\":\"$dec\",\"campaign_id\":\"$c1\",\"decision\":\"accepted\"}" \
	>"$WORK/spoof.out" 2>&1 || true
check "the broker refused $ok1 publishing on $dec's topic" grep -q "Not authorized" "$WORK/spoof.out"
check "...and $dec is still declined" dep_is "$B" "$c1" "$dec" declined
kill "$F1" "$F2" 2>/dev/null || true
wait "$F1" "$F2" 2>/dev/null || true

# --- the seed's own wake-up (no message_id, numeric timestamp, vehicle.vin) is accepted -----
vr="$PKI/vehicles/$rs"
mqtt_sub "$WORK/seed-cmd.out" "oem/$rs/test/probe" -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$PKI/ca/ca.crt" \
	--cert "$vr/client.crt" --key "$vr/client.key" -- -t "oem/$rs/command" -C 1 -W 10 ||
	bad "$rs's command subscriber is not ready"
SUBP=$MQTT_SUB_PID
on35 mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$PKI/ca/ca.crt" --cert "$vr/client.crt" \
	--key "$vr/client.key" -q 1 -t "oem/$rs/wake_up" \
	-m "{\"msg_type\": \"vehicle_wake_up\", \"timestamp\": $(date +%s), \"vehicle\": {\"vin\": \"$rs\"}, \"vmg_info\": {\"sw_version\": \"1.0.0\"}}"
wait "$SUBP" || true
check "the seed's wake-up is answered with request_vci" grep -q '"msg_type":"request_vci"' "$WORK/seed-cmd.out"
check "...and marks $rs online" has "$B/api/v1/vehicles/$rs" '"online":true'

# --- 2. a server killed mid-campaign resumes from the store ---------------------------------
c2=$(pcurl -d "{\"name\":\"restart\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$rs\"]},\"policy\":{\"postpone_retry_s\":8}}" \
	"$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$c2/start" -o /dev/null
# the seed's wake-up left the vehicle online on the server, so it is notified before the
# vehicle (the fleet) connects: that offer is lost (clean session), and the fleet's wake-up
# must bring it again
check "$rs notified while its MQTT session is gone" wait_for 10 dep_is "$B" "$c2" "$rs" notified
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins "$rs" \
	--behavior postpone:8 --duration 60 --log "$WORK/fleet3.log" >"$WORK/fleet3.out" 2>&1 &
F3=$!
PIDS+=($F3)
if wait_for 20 dep_is "$B" "$c2" "$rs" postponed; then ok "$rs postponed the campaign"; else
	bad "$rs postponed the campaign (state: $(dep_state "$B" "$c2" "$rs"))"
	tail -n 5 "$WORK/fleet3.out" | sed 's/^/     fleet: /'
fi
kill -KILL "$SRVPID_s1"
wait "$SRVPID_s1" 2>/dev/null || true
ok "server killed (SIGKILL) while $rs is postponed"
start_server s1
check "the restarted server (port $(cat "$WORK/s1.port")) re-notifies and completes $rs" \
	wait_for 40 dep_is "$BASE_s1" "$c2" "$rs" completed
B=$BASE_s1
kill "$F3" 2>/dev/null || true
wait "$F3" 2>/dev/null || true

# --- 3. rollout phases and auto-pause ------------------------------------------------------
rel2=$(make_release "$B" 1.2.0 HW-1-002 ECU_002)
c3=$(pcurl -d "{\"name\":\"phases\",\"release_ids\":[\"$rel2\"],\"target\":{\"vins\":[\"${phs[0]}\",\"${phs[1]}\",\"${phs[2]}\",\"${phs[3]}\",\"${phs[4]}\"]},
\"phases\":[{\"count\":1,\"success_threshold\":1.0},{\"percent\":100,\"success_threshold\":1.0,\"error_threshold\":0.3}]}" \
	"$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$c3/start" -o /dev/null
first=""
rest=()
for v in "${phs[@]}"; do
	p=$(pcurl "$B/api/v1/campaigns/$c3/vehicles/$v" | jget phase)
	if [ "$p" = 1 ]; then first=$v; else rest+=("$v"); fi
done
check "one vehicle in phase 1 ($first), four in phase 2" test -n "$first" -a "${#rest[@]}" = 4
# phase 1 succeeds; in phase 2 two of four fail (50 % > the 30 % error threshold) while one
# is still silent (a campaign whose deployments have all ended completes instead)
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins "$(list "${phs[@]}")" \
	--behavior accept --behavior-for "${rest[0]}=fail-install" --behavior-for "${rest[1]}=fail-install" --behavior-for "${rest[2]}=silent" \
	--duration 60 --log "$WORK/fleet4.log" >"$WORK/fleet4.out" 2>&1 &
F4=$!
PIDS+=($F4)
paused() { [ "$(pcurl "$B/api/v1/campaigns/$c3" | jget state)" = paused ]; }
check "the campaign auto-pauses on the injected failures" wait_for 40 paused
check "...with reason auto_paused" has "$B/api/v1/campaigns/$c3" '"pause_reason":"auto_paused'
check "phase 1's vehicle completed" dep_is "$B" "$c3" "$first" completed
t_done=$(pcurl "$B/api/v1/campaigns/$c3/vehicles/$first" | python3 -c 'import json,sys; print([t["at_ms"] for t in json.load(sys.stdin)["transitions"] if t["to"]=="completed"][0])')
early=0
for v in "${rest[@]}"; do
	t=$(pcurl "$B/api/v1/campaigns/$c3/vehicles/$v" | python3 -c 'import json,sys; print(min([t["at_ms"] for t in json.load(sys.stdin)["transitions"] if t["to"]=="notified"] or [10**15]))')
	[ "$t" -ge "$t_done" ] || early=1
done
check "no phase-2 vehicle was notified before phase 1 completed" test "$early" = 0
pcurl -X POST "$B/api/v1/campaigns/$c3/cancel" -o /dev/null
check "cancel: the campaign is cancelled" test "$(pcurl "$B/api/v1/campaigns/$c3" | jget state)" = cancelled
kill "$F4" 2>/dev/null || true
wait "$F4" 2>/dev/null || true

# --- seed routes ----------------------------------------------------------------------------
check "GET /api/campaigns lists the campaigns" has "$B/api/campaigns" "$c1"
stop_server s1
finish
