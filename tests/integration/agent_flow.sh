#!/usr/bin/env bash
# agent_flow.sh: the vehicle agent `pqota vehicle` against real processes: mosquitto (PQC TLS,
# per-VIN ACL), `pqota server` (HTTPS, Uptane, campaign engine, MQTT bridge), and agents with
# their simulated zone gateways (DoIP) and ECUs (UDS).
#
#  1. resume: an agent killed with SIGKILL mid-download resumes with Range after a restart
#     (the .part is kept, the server sends only the rest) and completes the campaign;
#  1b. an agent killed with SIGKILL mid-install (one ECU programmed and switched, the next
#     one's slow transfer running) continues after a restart: the programmed ECU is not
#     programmed again, the other one is, nothing is downloaded again, and the campaign
#     completes;
#  2. a tampered image (the encrypted package changed on the server's disk) is refused with
#     ota_download_failed sha256_mismatch, and nothing is flashed;
#  3. tampered image repository metadata (targets.json changed in the server's store) is
#     refused with uptane_verification_failed before any download, nothing flashed;
#  4. forged director metadata over MQTT (a changed target hash under the old signatures; an
#     image that is not the signed target; a replay of an older campaign's metadata) is
#     refused before any download, nothing flashed;
#  5. remote diagnostics through the agent: 22 F190 answers the VIN, 22 FFFF NRC 0x31,
#     a ZGW's own address answers, an unknown ECU is an error;
#  6. the broker refuses the agent's identity on another VIN's topics.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VA=AGENTRESUME000001 # resume, then forged metadata
VB=AGENTTAMPERIMG002 # tampered image
VC=AGENTTAMPERMETA03 # tampered image repository metadata
VD=AGENTINSTALLKILL4 # killed mid-install
make_pki $VA $VB $VC $VD
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" $VA $VB $VC $VD
CA="$PKI/ca/ca.crt"
SRVCLI=(-h 127.0.0.1 -p "$BROKER_PORT" --cafile "$CA" --cert "$PKI/server-client/client.crt"
	--key "$PKI/server-client/client.key")

# --- set-up: releases, trusted roots, agents ---------------------------------------------
R_A=$(release ECU_011 HW-1-011 1.1.0 1500000) # large: downloaded at 150 kB/s
R_B=$(release ECU_021 HW-2-021 1.1.0 120000)
R_C=$(release ECU_041 HW-3-041 1.1.0 120000)
check "three releases created" test -n "$R_A" -a -n "$R_B" -a -n "$R_C"
check "the trusted Uptane roots are served (image repository, each director)" provision $VA $VB $VC $VD
start_agent $VA --max-rate 150000
start_agent $VB
start_agent $VC
for v in $VA $VB $VC; do check "$v sent its VCI (101 ECUs over DoIP/UDS)" wait_for 60 vci_in $v; done
pcurl "$B/api/v1/vehicles/$VA/vci" >"$WORK/vci-a.json"
check "the VCI lists the VMG and 100 ECUs" python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); r = r.get("report", r)
ids = [e["ecu_id"] for e in r["ecus"]]
assert len(ids) == 101 and ids[0] == "VMG" and "ECU_100" in ids, ids[:3]' "$WORK/vci-a.json"

# --- 1. resume after SIGKILL mid-download ------------------------------------------------
# every ota_campaign_metadata for VA, as the server sends it (the server's broker identity may
# read every topic), for the forgeries of part 4
mqtt_sub "$WORK/meta-a.jsonl" "oem/$VA/test/probe-meta" "${SRVCLI[@]}" -- -t "oem/$VA/ota/metadata" -W 600 ||
	bad "the metadata subscriber is not ready"
# VA's presence: retained "online" at every connect, the last will "offline" when it dies
mqtt_sub "$WORK/presence-a.txt" "oem/$VA/test/probe-presence" "${SRVCLI[@]}" -- -t "oem/$VA/presence" -W 600 ||
	bad "the presence subscriber is not ready"
CA_ID=$(campaign "$R_A" $VA)
check "campaign for $VA started" test -n "$CA_ID"
part_size() { stat -c %s "$WORK/state-$VA"/downloads/*.part 2>/dev/null | head -n 1 || true; }
part_over() { local s; s=$(part_size); [ -n "$s" ] && [ "$s" -gt "$1" ]; }
check "$VA is downloading (.part over 300 kB)" wait_for 60 part_over 300000
pid=$(eval echo "\$AGENT_$VA")
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
killed_at=$(part_size)
echo "     killed the agent with ${killed_at:-?} bytes in the .part"
check "the .part survives the kill" test -n "$killed_at"
check "the broker published $VA's last will: offline" wait_for 10 grep -qx offline "$WORK/presence-a.txt"
offline() { pcurl "$B/api/v1/vehicles/$VA" | grep -q '"online":false'; }
check "...and the server marks $VA offline" wait_for 10 offline
check "nothing flashed while downloading" test "$(ecu_bank $VA ECU_011)" = "A B-invalid 1.0.0 none"
bytes0=$(pcurl "$B/metrics" | awk '$1 == "pqota_http_response_bytes_total" {print $2}')
start_agent $VA
s=$(final_state "$CA_ID" $VA)
check "the restarted agent completed the campaign (server: $s)" test "$s" = completed
check "the restarted agent announced itself online again" \
	test "$(tail -n 1 "$WORK/presence-a.txt")" = online
check "the download resumed at a non-zero offset" \
	python3 -c 'import json,sys
evs = [json.loads(l) for l in open(sys.argv[1]) if "download_start" in l]
offs = [e.get("offset", 0) for e in evs if e.get("event") == "download_start"]
print("     download_start offsets:", offs)
assert len(offs) >= 2 and offs[0] == 0 and offs[-1] >= int(sys.argv[2]), offs' \
	"$WORK/events-$VA.jsonl" "$killed_at"
bytes1=$(pcurl "$B/metrics" | awk '$1 == "pqota_http_response_bytes_total" {print $2}')
enc_len=$(jget encryption_length <"$WORK/rel-ECU_011-1.1.0.json" 2>/dev/null || jget package.length <"$WORK/rel-ECU_011-1.1.0.json")
echo "     after the restart the server sent $((bytes1 - bytes0)) response bytes (package about $enc_len, $killed_at already on board)"
check "after the restart the server sent less than the whole package" \
	test $((bytes1 - bytes0)) -lt "$enc_len"
check "ECU_011 runs 1.1.0 from bank B" test "$(ecu_bank $VA ECU_011)" = "B A-valid 1.1.0 none"
check "the agent's status file says completed, verification ok" python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "completed" and s["verification"] == "ok", s
assert s["images"][0]["installed"] and s["images"][0]["bytes_downloaded"] >= s["images"][0]["total"] > 0, s' \
	"$WORK/status-$VA.json"
check "downloads removed after the campaign" test -z "$(ls "$WORK/state-$VA/downloads" 2>/dev/null)"

# --- 1b. SIGKILL mid-install ---------------------------------------------------------------
# ECU_011 (1.5 MB, programmed in milliseconds), then ECU_012 (1 MB on a slow flash: 256
# blocks of 20 ms), both in zone 1, so one after the other
R_D=$(release ECU_012 HW-1-012 1.1.0 1000000)
start_agent $VD --slow-flash ECU_012
check "$VD sent its VCI" wait_for 60 vci_in $VD
CD_ID=$(pcurl -d "{\"name\":\"install-kill\",\"release_ids\":[\"$R_A\",\"$R_D\"],\"target\":{\"vins\":[\"$VD\"]},
	\"policy\":{\"install_order\":[\"ECU_011\",\"ECU_012\"]},\"phases\":[{\"percent\":100}]}" "$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$CD_ID/start" -o /dev/null
ecu11_done() { [ "$(event_count $VD ecu_installed ecu_id=ECU_011)" = 1 ]; }
check "ECU_011 programmed and switched" wait_for 60 ecu11_done
# killed while ECU_012's transfer runs: the agent reported progress above 0 % for it
ecu12_programming() {
	grep '"msg_type":"ota_installation_progress"' "$WORK/events-$VD.jsonl" | grep '"ecu_id":"ECU_012"' |
		grep -q '"progress":[1-9]'
}
wait_for 30 ecu12_programming || true
pid=$(eval echo "\$AGENT_$VD")
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
check "killed while ECU_012 was being programmed (its installation progress was sent)" \
	test "$(grep '"msg_type":"ota_installation_progress"' "$WORK/events-$VD.jsonl" | grep -c '"ecu_id":"ECU_012"')" -ge 1
check "...and ECU_012 still runs bank A, 1.0.0" test "$(ecu_bank $VD ECU_012)" = "A B-invalid 1.0.0 none"
check "ECU_011 already runs 1.1.0 from bank B" test "$(ecu_bank $VD ECU_011)" = "B A-valid 1.1.0 none"
check "the agent's state says installing" python3 -c 'import json,sys
s = json.load(open(sys.argv[1])); assert s["campaign"]["phase"] == "installing", s["campaign"]["phase"]' \
	"$WORK/state-$VD/state.json"
lines_before=$(wc -l <"$WORK/events-$VD.jsonl")
start_agent $VD
s=$(final_state "$CD_ID" $VD)
check "the restarted agent completed the campaign (server: $s)" test "$s" = completed
check "ECU_011 was not programmed again (still bank B, previous A)" \
	test "$(ecu_bank $VD ECU_011)" = "B A-valid 1.1.0 none"
check "ECU_012 was programmed (bank B, 1.1.0)" test "$(ecu_bank $VD ECU_012)" = "B A-valid 1.1.0 none"
after() { tail -n +"$((lines_before + 1))" "$WORK/events-$VD.jsonl"; }
check "nothing downloaded after the restart" test "$(after | grep -c '"event":"download_start"')" = 0
check "no programming of ECU_011 after the restart" \
	test "$(after | grep '"msg_type":"ota_installation_progress"' | grep -c '"ecu_id":"ECU_011"')" = 0

# --- 2. tampered image on the server: refused, nothing flashed ----------------------------
# the vehicles get the encrypted copy: change bytes in the middle of that file
encsha=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["package"]["sha256"])' \
	"$WORK/rel-ECU_021-1.1.0.json")
encfile=$(python3 -c 'import sqlite3,sys
r = sqlite3.connect(sys.argv[1]).execute("SELECT enc_sha256 FROM package_keys WHERE file_sha256 = ?", (sys.argv[2],)).fetchone()
print(r[0] if r else "")' "$WORK/data-s1/pqota.db" "$encsha")
tampered=0
if [ -n "$encfile" ] && [ -f "$WORK/data-s1/files/$encfile" ]; then
	printf 'TAMPERED' | dd of="$WORK/data-s1/files/$encfile" bs=1 seek=60000 conv=notrunc status=none
	tampered=1
fi
check "the encrypted copy of ECU_021's package was altered on the server's disk" test "$tampered" = 1
sim_before=$(sim_file_id $VB)
CB_ID=$(campaign "$R_B" $VB)
s=$(final_state "$CB_ID" $VB)
check "the tampered image fails the campaign (server: $s)" test "$s" = failed
refused_unflashed $VB "$CB_ID" "ota_download_failed sha256_mismatch" "$sim_before"
check "ECU_021 not flashed (bank A, 1.0.0, nothing pending)" test "$(ecu_bank $VB ECU_021)" = "A B-invalid 1.0.0 none"

# --- 3. tampered image repository metadata: refused before any download -------------------
# the image repository's newest targets.json, as stored: one ECU_041 target length changed
check "targets.json altered in the store" python3 - "$WORK/data-s1/pqota.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ver, body = db.execute("SELECT version, body FROM uptane_meta WHERE repo = 'image' AND vin = '' "
                       "AND role = 'targets' ORDER BY version DESC LIMIT 1").fetchone()
d = json.loads(body)
n = 0
for name, t in d["signed"]["targets"].items():
    if t.get("custom", {}).get("hardware_id") == "HW-3-041" or "HW-3-041" in json.dumps(t):
        t["length"] += 1
        n += 1
assert n > 0, "no HW-3-041 target"
db.execute("UPDATE uptane_meta SET body = ? WHERE repo = 'image' AND vin = '' AND role = 'targets' "
           "AND version = ?", (json.dumps(d, separators=(",", ":"), sort_keys=True), ver))
db.commit()
PY
sim_before=$(sim_file_id $VC)
CC_ID=$(campaign "$R_C" $VC)
s=$(final_state "$CC_ID" $VC)
check "tampered image metadata fails the campaign (server: $s)" test "$s" = failed
refused_unflashed $VC "$CC_ID" "ota_error uptane_verification_failed" "$sim_before"
check "nothing downloaded" test "$(event_count $VC download_start)" = 0
check "ECU_041 not flashed" test "$(ecu_bank $VC ECU_041)" = "A B-invalid 1.0.0 none"

# --- 4. forged director metadata over MQTT ------------------------------------------------
# a second campaign for VA (ECU_011 1.2.0) completes; then forgeries of its genuine metadata,
# and a replay of the first campaign's (1.1.0), are published with the server's broker
# identity (a compromised broker or stolen server credentials: the Uptane signatures are what
# protects the vehicle). VA accepts metadata for campaigns it was never offered (--consent
# auto), so each forgery reaches verification.
R_A2=$(release ECU_011 HW-1-011 1.2.0 100000)
CA2_ID=$(campaign "$R_A2" $VA)
s=$(final_state "$CA2_ID" $VA)
check "the genuine 1.2.0 campaign completed (server: $s)" test "$s" = completed
check "ECU_011 runs 1.2.0" test "$(ecu_bank $VA ECU_011 | cut -d' ' -f3)" = 1.2.0
has_meta() { grep -q "\"campaign_id\":\"$1\"" "$WORK/meta-a.jsonl"; }
check "the genuine metadata of both campaigns captured" wait_for 10 has_meta "$CA2_ID"
check "  (the first one too)" has_meta "$CA_ID"
# forge VARIANT: publishes a forgery of the captured message under a new campaign id
forge() {
	local variant=$1 cid
	cid=$(python3 -c 'import uuid; print(uuid.uuid4())')
	python3 - "$WORK/meta-a.jsonl" "$variant" "$cid" "$CA_ID" "$CA2_ID" >"$WORK/forged-$variant.json" <<'PY'
import datetime, json, sys, uuid
variant, cid, first, second = sys.argv[2:6]
msgs = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
        msgs[m["campaign_id"]] = m
    except (ValueError, KeyError):
        pass
m = msgs[first if variant == "replay" else second]
m["message_id"] = str(uuid.uuid4())
m["timestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
m["campaign_id"] = cid
img = m["images"][0]
if variant == "target_hash":
    # an attacker's image: the signed target's hash changed, signatures kept
    bad = "ab" * 32
    for t in m["director_targets"]["signed"]["targets"].values():
        t["hashes"]["sha256"] = bad
    img["sha256"] = bad
    if img.get("encryption"):
        img["encryption"]["aad"] = m["vin"] + "|" + bad
elif variant == "unsigned_image":
    # the image list names another package than the signed director target
    img["sha256"] = "cd" * 32
    img["length"] += 7
    if img.get("encryption"):
        img["encryption"]["aad"] = m["vin"] + "|" + img["sha256"]
elif variant == "replay":
    pass  # the first campaign's signed metadata (director targets version 1, ECU_011 1.1.0)
print(json.dumps(m))
PY
	on35 mosquitto_pub "${SRVCLI[@]}" -q 1 -t "oem/$VA/ota/metadata" -f "$WORK/forged-$variant.json"
	echo "$cid"
}
forged_outcome() { [ -n "$(sent_error $VA "$1")" ]; }
sim_before=$(sim_file_id $VA)
dl_before=$(event_count $VA download_start)
for variant in target_hash unsigned_image replay; do
	cid=$(forge $variant)
	wait_for 30 forged_outcome "$cid" || true
	got=$(sent_error $VA "$cid")
	echo "     forged metadata ($variant): the agent answered: ${got:-nothing}"
	grep "\"level\":\"error\".*campaign $cid" "$WORK/events-$VA.jsonl" | sed 's/.*"msg":"\(.*\)"}$/     (\1)/' || true
	case $variant in
	target_hash) want="ota_error uptane_verification_failed" ;;
	unsigned_image) want="ota_error metadata_mismatch" ;;
	replay) want="ota_error uptane_verification_failed" ;;
	esac
	refused_unflashed $VA "$cid" "$want" "$sim_before"
done
check "no download for any forgery" test "$(event_count $VA download_start)" = "$dl_before"
check "ECU_011 still runs 1.2.0, nothing pending" test "$(ecu_bank $VA ECU_011)" = "A B-valid 1.2.0 none"

# --- 5. remote diagnostics through the agent's DoIP connections ----------------------------
diag() { PQOTA_API_KEY=$APIKEY "$PQOTA" diag send --server "$B" --ca "$CA" "$@" --timeout 20; }
rc=0
diag --vin $VA --ecu ECU_011 --request 22F190 >"$WORK/d1.out" 2>&1 || rc=$?
vinhex=$(printf '%s' "$VA" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
check "22 F190 to ECU_011 answers positively with the VIN (exit $rc)" \
	grep -q "positive.*62 F190$vinhex" "$WORK/d1.out"
rc=0
diag --vin $VA --ecu ECU_011 --request 22FFFF >"$WORK/d2.out" 2>&1 || rc=$?
check "22 FFFF answers NRC 0x31 requestOutOfRange" grep -q "negative.*NRC 0x31 requestOutOfRange (7F2231)" "$WORK/d2.out"
check "a negative answer is an answer: diag send exits 0 (got $rc)" test "$rc" = 0
diag --vin $VA --ecu ECU_011 --request 22F189 >"$WORK/d3.out" 2>&1 || true
check "22 F189 gives ECU_011's running version 1.2.0" grep -q "62 F189$(printf 1.2.0 | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" "$WORK/d3.out"
diag --vin $VA --ecu ZGW3 --request 22F191 >"$WORK/d4.out" 2>&1 || true
check "a zone gateway answers at its own address (22 F191: ZGW-3)" \
	grep -q "positive.*62 F191$(printf ZGW-3 | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" "$WORK/d4.out"
diag --vin $VA --ecu ECU_777 --request 22F190 >"$WORK/d5.out" 2>&1 || true
check "an ECU the vehicle does not have is an error" grep -q "ECU_777 *error" "$WORK/d5.out"
diag --vin $VA --ecu ECU_011 --request 1003 >"$WORK/d6.out" 2>&1 || true
check "10 03 (extended session) answers 50 03" grep -q "positive.*50 03" "$WORK/d6.out"
sed 's/^/     /' "$WORK/d1.out" "$WORK/d2.out" | head -n 12

# --- 6. the broker's ACL with the agent's own identity ------------------------------------
mqtt_sub "$WORK/spoof.sub" "oem/$VB/test/probe-spoof" "${SRVCLI[@]}" -- -t "oem/$VB/ota/status" -W 60 ||
	bad "the subscriber on $VB's topic is not ready"
rc=0
on35 mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$CA" --cert "$PKI/vehicles/$VA/client.crt" \
	--key "$PKI/vehicles/$VA/client.key" -V mqttv5 -q 1 -t "oem/$VB/ota/status" \
	-m '{"msg_type":"ota_rollback","message_id":"x","timestamp":"2026-01-01T00:00:00.000Z"}' \
	>"$WORK/spoof.out" 2>&1 || rc=$?
check "$VA's certificate may not publish on $VB's topic (exit $rc)" grep -qi "not authori" "$WORK/spoof.out"
# the refused publish was answered (PUBACK "not authorized"): a marker published after it
# reaching the subscriber shows that the broker handled it and delivered nothing
check "nothing reached $VB's topic" eval 'mqtt_sub_sync "$WORK/spoof.sub" && test ! -s "$WORK/spoof.sub"'

for v in $VA $VB $VC $VD; do
	rc=0
	stop_agent $v || rc=$?
	check "agent $v stops cleanly on SIGTERM (exit $rc)" test "$rc" = 0
done
grep -h -i "sanitizer\|runtime error" "$WORK"/agent-*.log | head -n 5 || true
check "no sanitizer report in the agents' output" test -z "$(grep -l -i "sanitizer\|runtime error" "$WORK"/agent-*.log)"
finish
