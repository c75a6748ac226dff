#!/usr/bin/env bash
# agent_consent.sh: what the vehicle agent decides before it flashes anything, against real
# processes (mosquitto, pqota server, `pqota vehicle` with its simulated ZGWs and ECUs):
#
#  1. interactive consent: the offer is printed with its targets and the agent waits for the
#     driver's answer on stdin: "n" declines, "y" accepts and installs;
#  2. --consent decline with --once: declined, exit 1; --consent auto with --once: exit 0;
#  3. --consent postpone:S: the first offer is postponed, the server offers again after S
#     seconds, the second offer is accepted;
#  4. readiness: a campaign with prerequisites and a vehicle whose battery is too low: the
#     agent answers not ready (naming the battery), nothing is sent to flash; restarted with
#     a charged battery it is asked again, answers ready and installs;
#  5. cancel: a campaign cancelled while its download runs is acknowledged `cancelled`, the
#     download is stopped and removed, and nothing is flashed.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VI=CONSENTINTERACT01 # interactive
VD=CONSENTDECLINE002 # decline, then auto, both with --once
VP=CONSENTPOSTPONE03 # postpone:S
VR=CONSENTREADINESS4 # readiness
VX=CONSENTCANCEL0005 # cancel
ALL="$VI $VD $VP $VR $VX"
make_pki $ALL
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
CA="$PKI/ca/ca.crt"
check "vehicles registered" register "$B" $ALL
R1=$(release ECU_011 HW-1-011 1.1.0 100000)
R2=$(release ECU_012 HW-1-012 1.1.0 1500000) # large: downloaded at 150 kB/s, then cancelled
check "releases created" test -n "$R1" -a -n "$R2"
check "the trusted Uptane roots are served" provision $ALL
# sent_field VIN MSG_TYPE CAMPAIGN FIELD: FIELD of the last MSG_TYPE the agent sent
sent_field() {
	python3 - "$WORK/events-$1.jsonl" "$2" "$3" "$4" <<'PY'
import json, sys
path, mt, cid, field = sys.argv[1:5]
v = ""
for line in open(path):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "sent" and e.get("msg_type") == mt and e.get("campaign_id") == cid:
        v = e.get(field, "")
print(v)
PY
}
# --- 1. interactive consent ---------------------------------------------------------------
mkfifo "$WORK/stdin-$VI"
# the agent reads the driver's answers from the FIFO; a holder keeps it open between answers
sleep 600 >"$WORK/stdin-$VI" &
HOLD=$!
PIDS+=($HOLD)
"$PQOTA" vehicle --vin $VI --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --state "$WORK/state-$VI" \
	--image-root "$WORK/image-root.json" --director-root "$WORK/director-root-$VI.json" \
	--log "$WORK/events-$VI.jsonl" --log-level warn --consent interactive \
	<"$WORK/stdin-$VI" >"$WORK/out-$VI.txt" 2>"$WORK/agent-$VI.log" &
AGENT_CONSENTINTERACT01=$!
PIDS+=($AGENT_CONSENTINTERACT01)
check "$VI online" wait_for 60 vci_in $VI
C1=$(campaign "$R1" $VI)
prompted() { [ "$(grep -c "accept campaign $1? \[y/n/p\]" "$WORK/out-$VI.txt")" -ge "${2:-1}" ]; }
check "the offer is shown and the agent asks" wait_for 30 prompted "$C1"
check "the prompt lists the target (ECU_011 1.0.0 -> 1.1.0)" grep -q "campaign $C1.*ECU_011 1.0.0 -> 1.1.0" "$WORK/out-$VI.txt"
# a negative check with no later event to wait for (the agent only waits for stdin): the
# deployment must stay notified for a second, an answer sent would have moved it by then
check "nothing is answered before the driver does (server: notified)" hold_for 1 dep_is "$B" "$C1" $VI notified
echo n >"$WORK/stdin-$VI"
check "\"n\" declines the campaign" wait_for 20 dep_is "$B" "$C1" $VI declined
check "the agent answered declined" test "$(sent_field $VI ota_campaign_response "$C1" decision)" = declined
C2=$(campaign "$R1" $VI)
check "a second campaign is shown" wait_for 30 prompted "$C2"
echo y >"$WORK/stdin-$VI"
s=$(final_state "$C2" $VI)
check "\"y\" accepts it and the vehicle installs it (server: $s)" test "$s" = completed
check "ECU_011 runs 1.1.0" test "$(ecu_bank $VI ECU_011 | cut -d' ' -f3)" = 1.1.0
kill "$HOLD" 2>/dev/null || true

# --- 2. --once with decline and auto --------------------------------------------------------
C3=$(campaign "$R1" $VD)
rc=0
timeout 120 "$PQOTA" vehicle --vin $VD --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --state "$WORK/state-$VD" \
	--image-root "$WORK/image-root.json" --director-root "$WORK/director-root-$VD.json" \
	--consent decline --once --log-level warn >"$WORK/agent-$VD.log" 2>&1 || rc=$?
check "--consent decline --once: exits 1 after declining (got $rc)" test "$rc" = 1
check "the deployment is declined" dep_is "$B" "$C3" $VD declined
C4=$(campaign "$R1" $VD)
rc=0
timeout 120 "$PQOTA" vehicle --vin $VD --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --state "$WORK/state-$VD" \
	--consent auto --once --log-level warn >>"$WORK/agent-$VD.log" 2>&1 || rc=$?
check "--consent auto --once: exits 0 once installed and verified (got $rc)" test "$rc" = 0
check "...and the server has it completed" wait_for 10 dep_is "$B" "$C4" $VD completed
check "the roots given at the first start were kept in the state" test -s "$WORK/state-$VD/uptane/image-root.json"

# --- 3. postpone -------------------------------------------------------------------------------
start_agent $VP --consent postpone:2
check "$VP online" wait_for 60 vci_in $VP
C5=$(campaign "$R1" $VP '{"postpone_retry_s":3600}')
s=$(final_state "$C5" $VP)
chain=$(dep_chain "$B" "$C5" $VP)
check "postponed for 2 s, offered again, then installed: $chain" \
	bash -c "[[ '$chain' == 'pending notified postponed notified accepted '*completed ]]"
check "the agent asked for 2 s" test "$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "sent" and e.get("msg_type") == "ota_campaign_response":
        print(e.get("decision"), e.get("retry_after_s")); break' "$WORK/events-$VP.jsonl")" = "postponed 2"

# --- 4. readiness -------------------------------------------------------------------------------
start_agent $VR --battery 15
check "$VR online" wait_for 60 vci_in $VR
C6=$(campaign "$R1" $VR '{"prerequisites":{"battery_min_pct":50,"parked":true},"readiness_retry_s":2}')
not_ready() { [ "$(sent_field $VR ota_readiness_response "$C6" ready)" = False ]; }
check "a 15 % battery is not ready for a 50 % minimum" wait_for 30 not_ready
check "...and the reason names the battery ($(sent_field $VR ota_readiness_response "$C6" reason))" \
	bash -c "[[ '$(sent_field $VR ota_readiness_response "$C6" reason)' == *battery* ]]"
asked_twice() { [ "$(grep -c "\"msg_type\":\"ota_readiness_response\".*\"campaign_id\":\"$C6\"" "$WORK/events-$VR.jsonl")" -ge 2 ]; }
check "asked again after readiness_retry_s (2 s), still not ready" wait_for 20 asked_twice
check "no metadata, nothing downloaded" test "$(event_count $VR download_start)" = 0
check "the deployment waits in accepted" dep_is "$B" "$C6" $VR accepted
rc=0
stop_agent $VR || rc=$?
check "agent stopped (exit $rc)" test "$rc" = 0
start_agent $VR --battery 80
s=$(final_state "$C6" $VR)
check "charged to 80 %, asked again: ready, installed (server: $s)" test "$s" = completed
check "ECU_011 runs 1.1.0" test "$(ecu_bank $VR ECU_011 | cut -d' ' -f3)" = 1.1.0

# --- 5. cancel while downloading ----------------------------------------------------------------
start_agent $VX --max-rate 150000
check "$VX online" wait_for 60 vci_in $VX
C7=$(campaign "$R2" $VX)
downloading() { ls "$WORK/state-$VX/downloads/"*.part >/dev/null 2>&1; }
check "$VX is downloading" wait_for 60 downloading
pcurl -X POST "$B/api/v1/campaigns/$C7/cancel" -o /dev/null
check "the deployment is cancelled" wait_for 20 dep_is "$B" "$C7" $VX cancelled
acked() { [ "$(sent_field $VX command_ack "$C7" result)" = cancelled ]; }
check "the agent acknowledged: cancelled" wait_for 20 acked
gone() { ! ls "$WORK/state-$VX/downloads/"*.part >/dev/null 2>&1; }
check "the partial download was removed" wait_for 20 gone
check "nothing flashed: ECU_012 on bank A, 1.0.0" test "$(ecu_bank $VX ECU_012)" = "A B-invalid 1.0.0 none"
check "no installation started" test -z "$(sent_types $VX "$C7" | grep -o ota_installation_start)"

for v in $VP $VR $VX $VI; do
	rc=0
	stop_agent $v || rc=$?
	check "agent $v stops cleanly (exit $rc)" test "$rc" = 0
done
check "no sanitizer report in the agents' output" \
	test -z "$(grep -l -i "AddressSanitizer\|runtime error:\|LeakSanitizer" "$WORK"/agent-*.log)"
finish
