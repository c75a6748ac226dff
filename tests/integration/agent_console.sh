#!/usr/bin/env bash
# agent_console.sh: what the operator console shows of real `pqota vehicle` agents (with
# their simulated zone gateways and ECUs), against mosquitto and `pqota server`:
#  1. a delta campaign to two vehicles, the delta the operator's own (`pqota pack delta`,
#     uploaded with the release and checked by the server): one installs the delta; the other's installed image
#     is not the delta's base, so it falls back to the full package, and its deployment's
#     target (12.6 and the deployments page) then names the full package it installed;
#  2. diagnostics readable: 22 F190 answers the VIN as `text`, 22 FFFF an NRC with its ISO
#     name, 3E 80 (tester present, positive response suppressed) is `suppressed` for an ECU
#     and the VMG, not an error; `pqota diag` prints them so.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VM=CONSOLEDELTA00001 # its ECU_011 runs the delta's base image
VF=CONSOLEFALLBACK02 # its ECU_011 runs another 1.0.0 build: falls back to the full package
make_pki $VM $VF
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" $VM $VF
CA="$PKI/ca/ca.crt"

# the base release is the image VM's ECU_011 runs; 1.1.0 has a delta against it
R0=$(release ECU_011 HW-1-011 1.0.0 200000)
head -c 150000 "$WORK/ECU_011-1.0.0.bin" >"$WORK/ECU_011-1.1.0.bin"
head -c 60000 /dev/urandom >>"$WORK/ECU_011-1.1.0.bin"
up=$(pcurl -d '{"size":210000}' "$B/api/v1/uploads" | jget id)
pcurl -X PUT --data-binary @"$WORK/ECU_011-1.1.0.bin" "$B/api/v1/uploads/$up?offset=0" -o /dev/null
"$PQOTA" pack delta --from "$WORK/ECU_011-1.0.0.bin" --to "$WORK/ECU_011-1.1.0.bin" -o "$WORK/op-delta.swpg" >/dev/null
dup=$(pcurl -d "{\"size\":$(stat -c %s "$WORK/op-delta.swpg")}" "$B/api/v1/uploads" | jget id)
pcurl -X PUT --data-binary @"$WORK/op-delta.swpg" "$B/api/v1/uploads/$dup?offset=0" -o /dev/null
pcurl -d "{\"title\":\"ECU_011 1.1.0\",\"version\":\"1.1.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",
	\"upload_id\":\"$up\",\"delta_from\":\"$R0\",\"delta_upload_id\":\"$dup\"}" "$B/api/v1/releases" >"$WORK/rel1.json"
R1=$(jget id <"$WORK/rel1.json")
check "release 1.1.0 with the operator's delta against 1.0.0" \
	test "$(jget delta.base_version <"$WORK/rel1.json")" = 1.0.0 -a "$(jget delta.source <"$WORK/rel1.json")" = uploaded
# the delta worker checks it in the background: it is offered once ready
delta_ready() { [ "$(pcurl "$B/api/v1/releases/$R1" | jget delta.state)" = ready ]; }
check "...checked by the delta worker: ready" wait_for 60 delta_ready
pcurl "$B/api/v1/releases/$R1" >"$WORK/rel1.json"
full_sha=$(jget package.sha256 <"$WORK/rel1.json")
delta_sha=$(jget delta.sha256 <"$WORK/rel1.json")
check "the trusted Uptane roots are served" provision $VM $VF
model_with_image $VM ECU_011 "$WORK/ECU_011-1.0.0.bin" "$WORK/model-$VM.json"
"$PQOTA" vehicle model --vin $VF >"$WORK/model-$VF.json"
for v in $VM $VF; do start_agent $v --model "$WORK/model-$v.json"; done
for v in $VM $VF; do check "$v sent its VCI" wait_for 60 vci_in $v; done

# --- 1. delta and fallback ---------------------------------------------------------------------
cid=$(pcurl -d "{\"name\":\"delta\",\"release_ids\":[\"$R1\"],\"target\":{\"vins\":[\"$VM\",\"$VF\"]},
	\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}" "$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null
pkg() { pcurl "$B/api/v1/campaigns/$cid/vehicles/$1" | python3 -c 'import json,sys
t = json.load(sys.stdin)["targets"][0]; print(t["package"], t["sha256"])'; }
# VF may have fallen back already by the time this is read (its agent is fast): its
# target then names the full package; that it was offered the delta first is what its
# agent's fallback event below shows
vf_pkg=$(pkg $VF)
check "both deployments start with the delta ($VF: $vf_pkg)" test "$(pkg $VM)" = "delta $delta_sha" -a \
	\( "$vf_pkg" = "delta $delta_sha" -o "$vf_pkg" = "full $full_sha" \)
for v in $VM $VF; do
	s=$(final_state "$cid" $v)
	check "$v completed (server: $s)" test "$s" = completed
done
check "$VF's agent fell back to the full package" test "$(event_count $VF fallback)" -ge 1
check "$VM's agent did not" test "$(event_count $VM fallback)" = 0
check "$VM's target still names the delta it installed" test "$(pkg $VM)" = "delta $delta_sha"
check "$VF's target now names the full package it installed" test "$(pkg $VF)" = "full $full_sha"
pcurl "$B/api/v1/campaigns/$cid/deployments" >"$WORK/deps.json"
check "...as does the deployments page, with the full package's size" python3 - "$WORK/deps.json" "$VF" "$WORK/rel1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); rel = json.load(open(sys.argv[3]))
t = [i for i in d["items"] if i["vin"] == sys.argv[2]][0]["targets"][0]
assert t["package"] == "full" and t["sha256"] == rel["package"]["sha256"], t
assert t["size"] == rel["package"]["length"], (t, rel["package"])
PY

# --- 2. diagnostics ------------------------------------------------------------------------------
post_diag() { # VIN ECU REQUEST: the batch id
	pcurl -d "{\"vin\":\"$1\",\"ecu_id\":\"$2\",\"request\":\"$3\",\"timeout_s\":10}" "$B/api/v1/diagnostics" | jget id
}
done_diag() { [ "$(pcurl "$B/api/v1/diagnostics/$1" | jget state)" = done ]; }
result() { # BATCH: the first result
	wait_for 20 done_diag "$1" || true
	pcurl "$B/api/v1/diagnostics/$1" | jget results.items.0
}
r=$(result "$(post_diag $VM ECU_011 22F190)")
check "22 F190: positive, text = the VIN" python3 -c 'import json,sys
r = json.loads(sys.argv[1]); assert r["status"] == "positive" and r["text"] == sys.argv[2], r' "$r" "$VM"
r=$(result "$(post_diag $VM ECU_011 22FFFF)")
check "22 FFFF: negative 0x31 requestOutOfRange, no text" python3 -c 'import json,sys
r = json.loads(sys.argv[1]); assert r["status"] == "negative" and r["nrc"] == 0x31, r
assert r["nrc_name"] == "requestOutOfRange" and r["text"] is None, r' "$r"
for ecu in ECU_011 VMG; do
	b=$(post_diag $VM $ecu 3E80)
	r=$(result "$b")
	check "3E 80 to $ecu: suppressed, no error, no response" python3 -c 'import json,sys
r = json.loads(sys.argv[1]); assert r["status"] == "suppressed" and r["error"] is None and r["response"] is None, r' "$r"
done
check "...counted as suppressed in the batch" test "$(pcurl "$B/api/v1/diagnostics/$b" | jget counts.suppressed)" = 1
r=$(result "$(post_diag $VM ECU_011 3E00)")
check "3E 00 (no suppression) still answers 7E 00" python3 -c 'import json,sys
r = json.loads(sys.argv[1]); assert r["status"] == "positive" and r["response"] == "7E00", r' "$r"
diag() { PQOTA_API_KEY=$APIKEY "$PQOTA" diag send --server "$B" --ca "$CA" "$@" --timeout 20; }
diag --vin $VM --ecu ECU_011 --request 22F190 >"$WORK/cli1.out" 2>&1 || true
check "pqota diag prints the VIN as text" grep -q "positive .*\"$VM\"" "$WORK/cli1.out"
diag --vin $VM --ecu ECU_011 --request 3E80 >"$WORK/cli2.out" 2>&1 || true
check "pqota diag prints a suppressed answer as such" grep -q "suppressed .*positive response suppressed" "$WORK/cli2.out"
sed 's/^/     /' "$WORK/cli1.out" "$WORK/cli2.out" | grep -v '^ *$' | head -n 8
for v in $VM $VF; do stop_agent $v || true; done
stop_server s1
finish
