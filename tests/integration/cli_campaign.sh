#!/usr/bin/env bash
# cli_campaign.sh: a rollout with `pqota` commands alone, against a real server, mosquitto
# and a real agent installing: `release upload`, `vehicle register`, `campaign create
# --start`, and `campaign watch` following it live (the deployment's transitions from the
# event stream, the counts) until it completes (exit 0); then on a vehicle that stays
# offline: start, pause, a second pause refused (409, exit 2), resume, watch with a timeout
# (exit 1), cancel, watch of a cancelled campaign (exit 1); create from --spec, list, show,
# and the roles (a viewer key refused where an operator's is needed); an operator-chosen id
# (TEST-001), taken (409) or malformed (400).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VA=CLICAMPAGENT0001
VB=CLICAMPOFFLINE02
cli_setup $VA $VB
export PQOTA_API_KEY=$OP
camp() { "$PQOTA" campaign "$@"; }

# --- set-up with the CLI: vehicles, a release, the agent -----------------------------------------
"$PQOTA" vehicle import --pki "$PKI" --model test-suv >/dev/null || bad "vehicle import"
head -c 200000 /dev/urandom >"$WORK/brake.bin"
R=$("$PQOTA" release upload "$WORK/brake.bin" --version 1.1.0 --ecu ECU_011 --hardware-id HW-1-011 \
	--json 2>/dev/null | jget id)
check "release uploaded" test -n "$R"
check "the trusted Uptane roots are served" provision $VA
start_agent $VA
check "the agent sent its VCI" wait_for 60 vci_in $VA

# --- 1. create, watch from before the start until completed ------------------------------------
rc=0
camp create --name brake-1.1 --release "$R" --vin $VA --phase percent=100,error=1.0 \
	--json >"$WORK/c1.json" || rc=$?
check "create exits 0 (got $rc)" test "$rc" = 0
C1=$(jget id <"$WORK/c1.json")
check "... a draft" test "$(jget state <"$WORK/c1.json") $(jget total <"$WORK/c1.json")" = "draft 0"
# watch prints its first counts once its event stream is connected
timeout 120 "$PQOTA" campaign watch "$C1" >"$WORK/watch.txt" 2>"$WORK/watch.err" &
W=$!
PIDS+=($W)
check "watch shows the draft" wait_for 20 grep -q "== draft" "$WORK/watch.txt"
rc=0
camp start "$C1" --json >"$WORK/c1s.json" || rc=$?
check "start exits 0 (got $rc)" test "$rc" = 0
check "... running, one vehicle" test "$(jget state <"$WORK/c1s.json") $(jget total <"$WORK/c1s.json")" = "running 1"
rc=0
wait $W || rc=$?
sed 's/^/     /' "$WORK/watch.txt"
check "watch exits 0 once the campaign completed (got $rc)" test "$rc" = 0
check "watch showed the deployment's transitions" grep -q "$VA  *installed  *-> completed" "$WORK/watch.txt"
check "... and the campaign's" grep -q "campaign completed" "$WORK/watch.txt"
check "... the download among them" grep -q "$VA  *[a-z]*  *-> downloading" "$WORK/watch.txt"
check "... and the final counts" grep -q "== completed, phase 1, 1 vehicle(s): completed 1" "$WORK/watch.txt"
check "the agent installed 1.1.0" test "$(ecu_bank $VA ECU_011 | cut -d' ' -f3)" = 1.1.0
rc=0
camp watch "$C1" --json >"$WORK/watch.json" || rc=$?
check "watch of a completed campaign: exit 0 at once, JSON lines (got $rc)" python3 -c 'import json,sys
ls = [json.loads(l) for l in open(sys.argv[1])]
assert ls[-1]["event"] == "counts" and ls[-1]["state"] == "completed" and ls[-1]["counts"]["completed"] == 1, ls' "$WORK/watch.json"

# --- 2. an offline vehicle: pause, resume, cancel -----------------------------------------------
C2=$(camp create --name offline --release "$R" --vin $VB --json | jget id)
check "create: a draft" test "$(camp show "$C2" --json | jget state)" = draft
expect_exit 2 "pause of a draft: 409, exit 2" camp pause "$C2"
check "... bad_state printed" grep -q "HTTP 409 bad_state" "$WORK/last.out"
expect_exit 0 "start" camp start "$C2"
check "... the table shows the campaign running" grep -q "^state     running" "$WORK/last.out"
expect_exit 0 "pause" camp pause "$C2"
check "... paused by operator" grep -q "^state     paused: paused by operator" "$WORK/last.out"
expect_exit 2 "pause again: exit 2" camp pause "$C2"
expect_exit 0 "resume" camp resume "$C2"
expect_exit 1 "watch --timeout on a campaign that does not end: exit 1" camp watch "$C2" --timeout 2
check "... with its counts" grep -q "running, phase 1, 1 vehicle(s)" "$WORK/last.out"
expect_exit 2 "a viewer key may not cancel" env PQOTA_API_KEY=$VIEWER "$PQOTA" campaign cancel "$C2"
check "... 403" grep -q "HTTP 403 forbidden" "$WORK/last.out"
expect_exit 0 "cancel" camp cancel "$C2"
expect_exit 1 "watch of a cancelled campaign: exit 1" camp watch "$C2"
check "... says cancelled" grep -q "== cancelled" "$WORK/last.out"

# --- 3. --spec, list, show, usage ------------------------------------------------------------------
echo "{\"name\":\"from-spec\",\"release_ids\":[\"$R\"],\"target\":{\"model\":\"test-suv\"},\"phases\":[{\"count\":1},{\"percent\":100}]}" >"$WORK/spec.json"
rc=0
camp create --spec "$WORK/spec.json" --json >"$WORK/c3.json" || rc=$?
check "create --spec (exit $rc)" test "$rc" = 0 -a "$(jget phases.1.percent <"$WORK/c3.json")" = 100.0
expect_exit 64 "--spec and options together" camp create --spec "$WORK/spec.json" --name x
expect_exit 64 "create without --release" camp create --name x
expect_exit 64 "a malformed --phase" camp create --name x --release "$R" --phase half
expect_exit 2 "a campaign the server refuses (unknown release): exit 2" camp create --name x --release nope
check "... with the server's reason" grep -q "HTTP 400 bad_request" "$WORK/last.out"
expect_exit 2 "a viewer key may not create" env PQOTA_API_KEY=$VIEWER "$PQOTA" campaign create --name x --release "$R"
camp list --json >"$WORK/list.json"
check "list --json: 3 campaigns" test "$(jget total <"$WORK/list.json")" = 3
env PQOTA_API_KEY=$VIEWER "$PQOTA" campaign list >"$WORK/list.txt"
check "list (table, a viewer key)" grep -q "^$C1 brake-1.1  *completed" "$WORK/list.txt"
camp show "$C1" >"$WORK/show.txt"
check "show (table): counts and phases" grep -q "^phase 1   active, 1 vehicle(s): completed 1" "$WORK/show.txt"
expect_exit 64 "show of a malformed id" camp show "x/y"
expect_exit 2 "show of an unknown campaign" camp show 00000000-0000-4000-8000-000000000000
# an operator-chosen id: used, shown, refused when taken (409) or malformed (400)
expect_exit 0 "create --id TEST-001" camp create --id TEST-001 --name chosen --release "$R" --vin $VB
check "... shown under that id" test "$(camp show TEST-001 --json | jget id)" = TEST-001
expect_exit 2 "the same id again: exit 2" camp create --id TEST-001 --name again --release "$R"
check "... 409 conflict" grep -q "HTTP 409 conflict" "$WORK/last.out"
expect_exit 2 "a malformed id (starts with -): exit 2" camp create --id -x --name bad --release "$R"
check "... 400 on id" grep -q "HTTP 400 bad_request.*id" "$WORK/last.out"
expect_exit 0 "campaign --help" camp --help
check "the agent stops cleanly" stop_agent $VA
finish
