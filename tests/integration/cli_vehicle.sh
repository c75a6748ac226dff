#!/usr/bin/env bash
# cli_vehicle.sh: the operator's `pqota vehicle register|import|list|show|vci|readiness`
# end to end: a real server with its MQTT bridge, mosquitto, and a real agent (`pqota
# vehicle --vin ...`, whose invocation keeps working beside the new subcommands). Register
# from a PKI directory (again: 409, exit 2), import from the PKI directory (the registered
# one reported as there already) and from a CSV file (a malformed one refused whole, nothing
# registered), list with filters, show, `vci --request` answered by the agent (exit 0, the
# report printed) and not answered by an offline vehicle (exit 1), readiness asked of an
# online vehicle (0, its answer) and an offline one (2; readiness_now.sh has more), and the roles (a viewer key refused where an operator's
# is needed).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VA=CLIVEHAGENT00001 # runs an agent
VB=CLIVEHOFFLINE002
VC=CLIVEHPKIDIR0003
VD=CLIVEHCSV0000004
VE=CLIVEHCSV0000005
cli_setup $VA $VB $VC
veh() { PQOTA_API_KEY=$OP "$PQOTA" vehicle "$@"; }

# --- 1. register, import ------------------------------------------------------------------------
rc=0
veh register $VA --pki "$PKI" --model test-suv --json >"$WORK/reg.json" || rc=$?
check "register exits 0 (got $rc)" test "$rc" = 0
check "register --json prints the vehicle" test "$(jget vin <"$WORK/reg.json")" = $VA
expect_exit 2 "registering it again: exit 2" veh register $VA --pki "$PKI"
check "... with the server's 409" grep -q "HTTP 409 conflict" "$WORK/last.out"
expect_exit 2 "a viewer key may not register" env PQOTA_API_KEY=$VIEWER "$PQOTA" vehicle register $VB --pki "$PKI"
check "... 403" grep -q "HTTP 403 forbidden" "$WORK/last.out"
expect_exit 64 "register without --pki" veh register $VB
expect_exit 64 "register of a malformed VIN" veh register "../etc" --pki "$PKI"
rc=0
veh import --pki "$PKI" --model test-suv >"$WORK/import.txt" || rc=$?
sed 's/^/     /' "$WORK/import.txt"
check "import --pki exits 0 (got $rc)" test "$rc" = 0
check "... registered the two others" test "$(grep -c '^registered' "$WORK/import.txt")" = 2
check "... and reported the first as there already" grep -q "^exists  *$VA" "$WORK/import.txt"

# a CSV naming the files of a second PKI's vehicles
PKI2="$WORK/pki2"
cp -r "$PKI" "$PKI2" # the same CA: the server accepts its vehicles
"$PQOTA" keys vehicle $VD --dir "$PKI2" >/dev/null
"$PQOTA" keys vehicle $VE --dir "$PKI2" >/dev/null
mkdir -p "$WORK/csv"
for v in $VD $VE; do cp "$PKI2/vehicles/$v/client.crt" "$WORK/csv/$v.crt"; done
{
	echo "vin,model,certificate"
	echo "$VD,\"csv, model\",$VD.crt"
	echo "$VE,,$VE.crt"
} >"$WORK/csv/fleet.csv"
{
	echo "vin,model,colour"
	echo "$VD,x,red"
} >"$WORK/csv/bad.csv"
expect_exit 2 "a CSV with an unknown column is refused" veh import --csv "$WORK/csv/bad.csv" --pki "$PKI2"
check "... naming the line and column" grep -q "bad.csv line 1: unknown column 'colour'" "$WORK/last.out"
printf 'vin,model\n%s,a\n%s,"unterminated\n' $VD $VE >"$WORK/csv/bad2.csv"
expect_exit 2 "a CSV with a broken line is refused whole" veh import --csv "$WORK/csv/bad2.csv" --pki "$PKI2"
check "... nothing of it registered" test "$(pcurl "$B/api/v1/vehicles/$VD" -o /dev/null -w '%{http_code}' 2>/dev/null || true)" = 404
rc=0
veh import --csv "$WORK/csv/fleet.csv" --pki "$PKI2" --json >"$WORK/csv.json" || rc=$?
check "import --csv exits 0 (got $rc)" test "$rc" = 0
check "import --csv --json: both registered" python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); assert d["registered"] == sys.argv[2:] and d["failed"] == [] and d["total"] == 2, d' \
	"$WORK/csv.json" $VD $VE
check "the CSV's quoted model is stored" test "$(pcurl "$B/api/v1/vehicles/$VD" | jget model)" = "csv, model"
printf 'vin\n%s\nNOSUCHVEHICLE0009\n' $VA >"$WORK/csv/fail.csv"
expect_exit 1 "an import where a vehicle fails: exit 1" veh import --csv "$WORK/csv/fail.csv" --pki "$PKI2"
check "... naming it" grep -q "^FAILED  *NOSUCHVEHICLE0009" "$WORK/last.out"

# --- 2. the agent (its usual invocation), list, show ---------------------------------------------
check "the trusted Uptane roots are served" provision $VA
start_agent $VA
check "the agent sent its VCI" wait_for 60 vci_in $VA
online() { pcurl "$B/api/v1/vehicles/$1" | grep -q '"online":true'; }
check "the agent is online" wait_for 20 online $VA
veh list --json >"$WORK/list.json"
check "list --json: 5 vehicles" test "$(jget total <"$WORK/list.json")" = 5
veh list --online --json >"$WORK/online.json"
check "list --online: the agent's vehicle" python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); assert [v["vin"] for v in d["items"]] == [sys.argv[2]], d' "$WORK/online.json" $VA
veh list --model test-suv --vin-prefix CLIVEH --limit 2 >"$WORK/list.txt"
check "list (table) with filters and paging" test "$(grep -c '^CLIVEH' "$WORK/list.txt")" = 2
check "... and the count" grep -q "^3 vehicle(s)" "$WORK/list.txt"
veh show $VA >"$WORK/show.txt"
check "show: the vehicle and its ECUs" grep -q "^  ECU_011 " "$WORK/show.txt"
veh show $VA --json >"$WORK/show.json"
check "show --json" test "$(jget model <"$WORK/show.json")" = test-suv
expect_exit 2 "show of an unknown vehicle" veh show NOSUCHVEHICLE0009

# --- 3. vci --request, readiness ----------------------------------------------------------------
before=$(pcurl "$B/api/v1/vehicles?vin_prefix=$VA" | jget items.0.last_vci_ms)
rc=0
veh vci $VA --request --timeout 20 --json >"$WORK/vci.json" 2>"$WORK/vci.err" || rc=$?
check "vci --request: the agent answered (exit $rc)" test "$rc" = 0
check "... a new report stored" test "$(pcurl "$B/api/v1/vehicles?vin_prefix=$VA" | jget items.0.last_vci_ms)" -gt "$before"
check "... the report printed, with its request's id" python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); v = d["vci"]; v = v.get("report", v)
assert d["vin"] == sys.argv[2] and d["message_id"] and len(v["ecus"]) == 101, d.keys()' "$WORK/vci.json" $VA
veh vci $VA >"$WORK/vci.txt"
check "vci (the latest report, table)" grep -q "^VCI of $VA: 101 ECU(s)" "$WORK/vci.txt"
expect_exit 1 "vci --request to an offline vehicle: no answer, exit 1" veh vci $VB --request --timeout 2
expect_exit 2 "a viewer key may not ask for a VCI" env PQOTA_API_KEY=$VIEWER "$PQOTA" vehicle vci $VA --request
rc=0
veh readiness $VA --json >"$WORK/ready.json" || rc=$?
check "readiness of the online vehicle: ready (exit $rc)" test "$rc" = 0
check "... the vehicle's answer, every check ok" python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); assert d["ready"] and d["state"] == "answered" and len(d["checks"]) == 4 and all(c["ok"] for c in d["checks"]), d' "$WORK/ready.json"
expect_exit 2 "readiness of an offline vehicle: exit 2 (it cannot be asked)" veh readiness $VB
check "... says why" grep -q "HTTP 409 vehicle_offline" "$WORK/last.out"
expect_exit 2 "a viewer key may not ask for readiness" env PQOTA_API_KEY=$VIEWER "$PQOTA" vehicle readiness $VA
expect_exit 0 "vehicle --help (the agent's, naming the operator's commands)" "$PQOTA" vehicle --help
check "... which it names" grep -q "register|import|list|show|vci|readiness" "$WORK/last.out"
expect_exit 0 "vehicle list --help" "$PQOTA" vehicle list --help
check "the agent still runs" kill -0 "$AGENT_CLIVEHAGENT00001"
check "the agent stops cleanly" stop_agent $VA
finish
