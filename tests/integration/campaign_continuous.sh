#!/usr/bin/env bash
# campaign_continuous.sh: continuous campaigns and releases that roll out on their own, with
# real processes: mosquitto, `pqota server` and real agents (`pqota vehicle`).
#  1. `pqota campaign create --continuous --start` with no matching vehicle online admits
#     nobody; an agent with the old version then comes online: admitted on its VCI, installs;
#     an agent already on the new version and one of another model are not admitted; a
#     vehicle registered after the start is admitted when it comes online; an agent whose
#     installation fails trips the error threshold: the campaign pauses and a later agent is
#     not admitted; `campaign watch` shows the admissions and never "completes";
#  2. a release posted with a rollout (`pqota release upload --rollout FILE`; an invalid
#     rollout refused before anything is stored) starts its own continuous campaign: the retained
#     release announcement makes the running agent report its VCI, and it installs the new
#     version without any campaign started by the operator.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VOLD=CONTOLDVERSION01  # runs 1.0.0: admitted, installs
VNEW=CONTNEWVERSION02  # runs 1.1.0 already: not admitted
VOTH=CONTOTHERMODEL03  # another model: not admitted
VLATE=CONTLATEREGIST04 # registered after the start: admitted when it comes online
VFAIL=CONTFAILINSTAL05 # its ECU refuses the image: the error threshold pauses admission
VPAU=CONTAFTERPAUSE06  # comes online while the campaign is paused: not admitted
cli_setup $VOLD $VNEW $VOTH $VLATE $VFAIL $VPAU
export PQOTA_API_KEY=$OP
camp() { "$PQOTA" campaign "$@"; }
in_campaign() { pcurl "$B/api/v1/campaigns/$1/vehicles/$2" -o /dev/null 2>/dev/null; }
not_in() { ! in_campaign "$@"; }
cstate() { pcurl "$B/api/v1/campaigns/$1" | jget state; }
state_is() { [ "$(cstate "$1")" = "$2" ]; }
vci_both() { vci_in "$1" && vci_in "$2"; }
vcis_above() { [ "$(event_count "$1" sent msg_type=vci_report)" -gt "$2" ]; }

# --- set-up: vehicles known without ECUs (so only their reports count), one release ----------
for v in $VOLD $VNEW $VFAIL $VPAU; do
	"$PQOTA" vehicle register $v --pki "$PKI" --model test-suv --no-default-ecus >/dev/null ||
		bad "register $v"
done
"$PQOTA" vehicle register $VOTH --pki "$PKI" --model other-van --no-default-ecus >/dev/null ||
	bad "register $VOTH"
head -c 150000 /dev/urandom >"$WORK/app-1.1.bin"
R1=$("$PQOTA" release upload "$WORK/app-1.1.bin" --version 1.1.0 --ecu ECU_011 \
	--hardware-id HW-1-011 --json 2>/dev/null | jget id)
check "release 1.1.0 uploaded" test -n "$R1"
check "the trusted Uptane roots are served" provision $VOLD $VNEW $VOTH $VFAIL $VPAU

# --- 1. a continuous campaign --------------------------------------------------------------------
rc=0
camp create --name brake-rolling --release "$R1" --model test-suv --continuous \
	--phase percent=100,error=0.3 --start --json >"$WORK/c1.json" || rc=$?
C1=$(jget id <"$WORK/c1.json")
check "create --continuous --start exits 0 (got $rc)" test "$rc" = 0 -a -n "$C1"
check "... running, mode continuous, nobody admitted at the start" \
	test "$(jget state <"$WORK/c1.json") $(jget mode <"$WORK/c1.json") $(jget total <"$WORK/c1.json")" = \
	"running continuous 0"
timeout 300 "$PQOTA" campaign watch "$C1" >"$WORK/watch.txt" 2>"$WORK/watch.err" &
W=$!
PIDS+=($W)
check "watch shows the continuous campaign" wait_for 20 grep -q "== running (continuous), phase 1, 0 vehicle(s) admitted" "$WORK/watch.txt"

start_agent $VOLD
check "$VOLD (1.0.0) is admitted when it reports" wait_for 60 in_campaign "$C1" $VOLD
check "... and installs 1.1.0: completed" test "$(final_state "$C1" $VOLD)" = completed
check "... its ECU runs 1.1.0" test "$(ecu_bank $VOLD ECU_011 | cut -d' ' -f3)" = 1.1.0
check "the campaign keeps running after its only vehicle completed" test "$(cstate "$C1")" = running

"$PQOTA" vehicle model --vin $VNEW >"$WORK/model-new.json"
python3 - "$WORK/model-new.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for z in m["zones"]:
    for e in z["ecus"]:
        if e["ecu_id"] == "ECU_011":
            e["versions"]["APP"] = "1.1.0"
json.dump(m, open(sys.argv[1], "w"))
PY
start_agent $VNEW --model "$WORK/model-new.json"
start_agent $VOTH
check "$VNEW and $VOTH report their VCI" wait_for 60 vci_both $VNEW $VOTH
# the server handles vehicle messages in order: once a later vehicle is admitted, the reports
# of these two were handled
"$PQOTA" vehicle register $VLATE --pki "$PKI" --model test-suv --no-default-ecus >/dev/null ||
	bad "register $VLATE"
check "$VLATE's roots" provision $VLATE
start_agent $VLATE
check "$VLATE, registered after the start, is admitted when it comes online" wait_for 60 in_campaign "$C1" $VLATE
check "$VNEW (already 1.1.0) is not admitted" not_in "$C1" $VNEW
check "$VOTH (model other-van) is not admitted" not_in "$C1" $VOTH
check "$VLATE completes" test "$(final_state "$C1" $VLATE)" = completed

start_agent $VFAIL --fail-program ECU_011
check "$VFAIL is admitted" wait_for 60 in_campaign "$C1" $VFAIL
s=$(final_state "$C1" $VFAIL)
check "... and its installation fails ($s)" test "$s" = failed -o "$s" = rolled_back
check "1 failure of 3 admitted is over the error threshold 0.3: auto-paused" \
	wait_for 20 state_is "$C1" paused
start_agent $VPAU
check "$VPAU reports while the campaign is paused" wait_for 60 vci_in $VPAU
# a second report asked for and received: the first one's handling is over
expect_exit 0 "a new VCI of $VPAU, asked for" "$PQOTA" vehicle vci $VPAU --request --timeout 30
check "... $VPAU was not admitted (paused)" not_in "$C1" $VPAU
expect_exit 1 "watch --timeout of the paused continuous campaign: exit 1" camp watch "$C1" --timeout 2
expect_exit 0 "resume" camp resume "$C1"
expect_exit 0 "watch --timeout of the running continuous campaign: exit 0" camp watch "$C1" --timeout 2
check "... its counts say continuous" grep -q "running (continuous), phase 1, 3 vehicle(s) admitted: completed 2" "$WORK/last.out"
expect_exit 0 "cancel" camp cancel "$C1"
rc=0
wait $W || rc=$?
check "the watch from the start ends with the cancel: exit 1 (got $rc)" test "$rc" = 1
check "... it showed the admissions" grep -q "$VOLD  *-  *-> pending  *engine: admitted by a continuous campaign" "$WORK/watch.txt"
check "... and the auto-pause" grep -q "campaign paused: auto_paused" "$WORK/watch.txt"

# --- 2. a release that rolls out on its own --------------------------------------------------------
head -c 150000 /dev/urandom >"$WORK/app-1.2.bin"
rel12() { "$PQOTA" release upload "$WORK/app-1.2.bin" --version 1.2.0 --ecu ECU_011 --hardware-id HW-1-011 "$@"; }
echo '{"phases":[{"percent":5},{"percent":100}]}' >"$WORK/bad-rollout.json"
expect_exit 2 "release upload --rollout with an invalid rollout: refused" rel12 --rollout "$WORK/bad-rollout.json"
check "... saying why (HTTP 400)" grep -q "HTTP 400 bad_request.*rollout: phases\[0\]: a continuous campaign" "$WORK/last.out"
check "... and no release was stored" test "$("$PQOTA" release list --json | jget total)" = 1
ann0=$(event_count $VOLD sent msg_type=vci_report)
echo "{\"target\":{\"vins\":[\"$VOLD\"]},\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}" >"$WORK/rollout.json"
rc=0
rel12 --rollout "$WORK/rollout.json" --json >"$WORK/r2.json" || rc=$?
check "release upload --rollout exits 0 (got $rc)" test "$rc" = 0
C2=$(jget rollout_campaign_id <"$WORK/r2.json")
check "the release with a rollout answers its campaign" test -n "$C2" -a "$C2" != None
check "... a running continuous campaign" test "$(pcurl "$B/api/v1/campaigns/$C2" | jget mode) $(cstate "$C2")" = "continuous running"
check "$VOLD sees the announcement of 1.2.0 and reports its VCI" wait_for 30 vcis_above $VOLD "$ann0"
check "... it installs 1.2.0 with no campaign started by the operator" test "$(final_state "$C2" $VOLD)" = completed
check "... its ECU runs 1.2.0" test "$(ecu_bank $VOLD ECU_011 | cut -d' ' -f3)" = 1.2.0

for v in $VOLD $VNEW $VOTH $VLATE $VFAIL $VPAU; do
	check "$v stops cleanly" stop_agent $v
done
finish
