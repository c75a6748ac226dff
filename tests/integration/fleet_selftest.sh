#!/usr/bin/env bash
# fleet_selftest.sh: pqota-fleet (tests/tools/fleet.c), the scripted test fleet, against a real
# mosquitto on OpenSSL 3.5 and a real `pqota server`: 20 vehicles connect with their own
# certificates and publish their wake-ups; the test plays the server's MQTT side with
# mosquitto_pub/mosquitto_sub (identity pqota-server) and checks request_vci -> vci_report,
# ota_campaign -> accepted / declined, and ota_campaign_metadata -> an HTTPS download with a
# download token, SHA-256 checked, installation, and a vci_report with the new version; a
# corrupt hash gives ota_download_failed. Also: usage and setup errors, the summary on stdout.
. "$(dirname "$0")/lib.bash"

FLEET=$(dirname "$PQOTA")/pqota-fleet
command -v mosquitto >/dev/null || { bad "mosquitto is not installed (scripts/bootstrap installs it)"; finish; }
[ -x "$FLEET" ] || { bad "no $FLEET (built by tests/tools/tools.cmake)"; finish; }

pki="$WORK/pki"
"$PQOTA" keys init "$pki" >/dev/null
VINS=()
for i in $(seq -w 1 20); do
	VINS+=("FLT00$i")
	"$PQOTA" keys vehicle "FLT00$i" --dir "$pki" >/dev/null
done
vins=$(
	IFS=,
	echo "${VINS[*]}"
)

# --- usage and setup errors ---
expect_exit 0 "pqota-fleet --help" "$FLEET" --help
check "...documents --behavior-for" contains "$WORK/last.out" "--behavior-for VIN=B"
expect_exit 64 "no --broker is a usage error" "$FLEET" --pki "$pki" --vins FLT0001
expect_exit 64 "an unknown behavior is a usage error" "$FLEET" --pki "$pki" --broker 127.0.0.1:1 \
	--vins FLT0001 --behavior maybe
expect_exit 2 "a directory that is no PKI is a setup error" "$FLEET" --pki "$WORK/none" \
	--broker 127.0.0.1:1 --vins FLT0001
check "...naming the CA file" contains "$WORK/last.out" "none/ca/ca.crt"
expect_exit 2 "a VIN without a certificate is a setup error" "$FLEET" --pki "$pki" \
	--broker 127.0.0.1:1 --vins NOCERT1
dead=$(free_port)
expect_exit 2 "an unreachable broker is a setup error" "$FLEET" --pki "$pki" \
	--broker "127.0.0.1:$dead" --vins FLT0001 --connect-timeout 1
check "...saying so" contains "$WORK/last.out" "unreachable"

# --- broker and server ---
user=()
[ "$(id -u)" = 0 ] && user=(--user root)
run_broker() { # PORT
	"$PQOTA" broker config --pki "$pki" --out "$WORK/broker" --listen "127.0.0.1:$1" "${user[@]}" \
		--force >/dev/null || return 1
	"$WORK/broker/run-broker.sh" >"$WORK/mosquitto.log" 2>&1 &
	BROKER_PID=$!
}
broker_start run_broker "$WORK/mosquitto.log" || {
	bad "mosquitto did not start"
	cat "$WORK/mosquitto.log"
	finish
}
port=$BROKER_PORT
cat >"$WORK/server.conf" <<CONF
listen = 127.0.0.1:0
tls.pki = $pki
data_dir = $WORK/server-data
port_file = $WORK/server.port
log.level = warn
CONF
"$PQOTA" server --config "$WORK/server.conf" >"$WORK/server.log" 2>&1 &
PIDS+=($!)

s="$pki/server-client"
mq=(-h 127.0.0.1 -p "$port" --cafile "$pki/ca/ca.crt" --cert "$s/client.crt" --key "$s/client.key")
# the server's side: everything the vehicles say
mqtt_sub "$WORK/server-side.out" oem/test/probe-server-side "${mq[@]}" -- -t 'oem/+/wake_up' \
	-t 'oem/+/vci' -t 'oem/+/response' -t 'oem/+/ota/status' -t 'oem/+/presence' -v ||
	bad "the server side's subscriber is not ready"

# --- the fleet ---
"$FLEET" --pki "$pki" --broker "127.0.0.1:$port" --vins "$vins" --behavior-for FLT0002=decline \
	--log "$WORK/fleet.log" >"$WORK/fleet.out" 2>"$WORK/fleet.err" &
FLEET_PID=$!
PIDS+=("$FLEET_PID")
wake_ups() { [ "$(grep -c '^oem/FLT00[0-9]*/wake_up ' "$WORK/server-side.out")" -ge 20 ]; }
if wait_for 15 wake_ups; then ok "all 20 wake-ups arrived"; else
	bad "wake-ups: $(grep -c '/wake_up ' "$WORK/server-side.out") of 20"
	cat "$WORK/fleet.err"
fi
check "each vehicle connected with its own certificate (CN = VIN as username)" \
	test "$(grep -c "u'FLT00" "$WORK/mosquitto.log")" -ge 20
check "the fleet log has 20 connected events" \
	test "$(grep -c '"event":"connected"' "$WORK/fleet.log")" = 20
check "each vehicle published retained online presence" \
	test "$(grep -c '^oem/FLT00[0-9]*/presence online' "$WORK/server-side.out")" = 20
check "the wake-up carries the envelope and boot_seq" \
	grep -qE '^oem/FLT0001/wake_up \{"msg_type":"vehicle_wake_up","message_id":"[0-9a-f-]{36}","timestamp":"[0-9T:.-]+Z","vin":"FLT0001","boot_seq":1' \
	"$WORK/server-side.out"

now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }
send() { on35 mosquitto_pub "${mq[@]}" -q "$1" -t "$2" -m "$3"; }
# response VIN TOPIC-SUFFIX PATTERN: waits for a vehicle's message matching PATTERN
response() { wait_for 5 grep -qE "^oem/$1/$2 .*$3" "$WORK/server-side.out"; }

send 1 oem/FLT0005/command "{\"msg_type\":\"request_vci\",\"message_id\":\"req-vci-1\",\"timestamp\":\"$(now)\",\"vin\":\"FLT0005\"}"
check "request_vci is answered by a vci_report with the correlation_id" \
	response FLT0005 vci '"correlation_id":"req-vci-1".*"ecus":\[\{"ecu_id":"ECU_001","hardware_id":"HW-1-001"'

campaign() { # VIN MESSAGE_ID
	send 2 "oem/$1/ota/campaign" "{\"msg_type\":\"ota_campaign\",\"message_id\":\"$2\",\"timestamp\":\"$(now)\",\"vin\":\"$1\",\"campaign_id\":\"CMP-1\",\"name\":\"selftest\",\"targets\":[{\"ecu_id\":\"ECU_001\",\"hardware_id\":\"HW-1-001\",\"software_type\":\"APP\",\"from_version\":\"1.0.0\",\"to_version\":\"1.1.0\",\"package\":\"full\"}],\"consent_required\":true}"
}
campaign FLT0001 cmp-msg-1
check "ota_campaign is accepted" \
	response FLT0001 response '"msg_type":"ota_campaign_response".*"correlation_id":"cmp-msg-1","campaign_id":"CMP-1","decision":"accepted"'
campaign FLT0002 cmp-msg-2
check "--behavior-for VIN=decline declines" \
	response FLT0002 response '"correlation_id":"cmp-msg-2","campaign_id":"CMP-1","decision":"declined"'
check "the log counts one ota_campaign received by FLT0001" \
	test "$(grep '"vin":"FLT0001"' "$WORK/fleet.log" | grep -c '"event":"received".*"msg_type":"ota_campaign"')" = 1

# --- a download: a release on the server, a token for FLT0001, the metadata ---
if wait_for 10 test -s "$WORK/server.port"; then
	base="https://127.0.0.1:$(cat "$WORK/server.port")"
	key=$("$PQOTA" server --config "$WORK/server.conf" apikey create --role operator --name selftest 2>/dev/null)
	pcurl() { on35 curl -sS --fail-with-body --curves X25519MLKEM768 --cacert "$pki/ca/ca.crt" \
		-H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$@"; }
	d="$pki/vehicles/FLT0001"
	python3 -c 'import json, sys
d = sys.argv[1]
r = lambda f: open(d + "/" + f).read()
print(json.dumps({"vin": "FLT0001", "certificate": r("client.crt"), "default_ecus": False,
                  "kem_x25519_pub": r("kem-x25519.pub"), "kem_mlkem768_pub": r("kem-ml-kem-768.pub")}))' \
		"$d" >"$WORK/reg.json"
	head -c 150000 /dev/urandom >"$WORK/image.bin"
	jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
	pcurl --data @"$WORK/reg.json" "$base/api/v1/vehicles" -o /dev/null || bad "registering FLT0001"
	up=$(pcurl -d '{"size":150000}' "$base/api/v1/uploads" | jget id) || bad "creating an upload"
	pcurl -X PUT --data-binary @"$WORK/image.bin" "$base/api/v1/uploads/$up?offset=0" -o /dev/null ||
		bad "uploading the image"
	pcurl -d "{\"title\":\"selftest\",\"version\":\"1.1.0\",\"hardware_id\":\"HW-1-001\",\"ecu_id\":\"ECU_001\",\"upload_id\":\"$up\"}" \
		"$base/api/v1/releases" >"$WORK/release.json" || bad "creating the release"
	pkg() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["package"][sys.argv[2]])' "$WORK/release.json" "$1"; }
	sha=$(pkg sha256) || sha=none
	len=$(pkg length) || len=0
	url=$(pcurl -d "{\"sha256\":\"$sha\"}" "$base/api/v1/vehicles/FLT0001/download-tokens" | jget url) || url=none
	check "the server issued a download token URL" grep -q '^/packages/.*?token=' <<<"$url"
	meta() { # VIN SHA256 MESSAGE_ID
		send 2 "oem/$1/ota/metadata" "{\"msg_type\":\"ota_campaign_metadata\",\"message_id\":\"$3\",\"timestamp\":\"$(now)\",\"vin\":\"$1\",\"campaign_id\":\"CMP-1\",\"image_repository\":\"$base/uptane/image/\",\"images\":[{\"ecu_id\":\"ECU_001\",\"url\":\"$url\",\"length\":$len,\"sha256\":\"$2\",\"package\":\"full\"}],\"install_order\":[\"ECU_001\"],\"rollback_policy\":\"all_or_nothing\"}"
	}
	meta FLT0001 "$sha" meta-1
	check "the download completes" response FLT0001 ota/status '"msg_type":"ota_download_complete".*"campaign_id":"CMP-1"'
	check "...after a 100% progress message" \
		response FLT0001 ota/status '"msg_type":"ota_download_progress".*"ecu_id":"ECU_001","progress":100'
	check "the fleet log shows the bytes and the SHA-256 verified" \
		grep -q "\"vin\":\"FLT0001\",\"event\":\"download_done\",\"ecu_id\":\"ECU_001\",\"bytes\":$len,\"sha256\":\"$sha\",\"length_ok\":true,\"sha256_ok\":true" \
		"$WORK/fleet.log"
	check "installation and verification complete" \
		response FLT0001 ota/status '"msg_type":"ota_verification_complete"'
	check "the new vci_report shows ECU_001 at 1.1.0" \
		response FLT0001 vci '"ecu_id":"ECU_001","hardware_id":"HW-1-001",.*"software":\{"APP":"1.1.0"'
	# a vehicle whose image does not hash to the metadata's SHA-256 refuses it
	campaign FLT0003 cmp-msg-3
	meta FLT0003 "$(printf '0%.0s' {1..64})" meta-3
	check "a SHA-256 mismatch gives ota_download_failed" \
		response FLT0003 ota/status '"msg_type":"ota_download_failed".*"error_code":"sha256_mismatch"'
	# an encrypted image whose wrapped key does not open with the vehicle's KEM keys
	campaign FLT0004 cmp-msg-4
	send 2 "oem/FLT0004/ota/metadata" "{\"msg_type\":\"ota_campaign_metadata\",\"message_id\":\"meta-4\",\"timestamp\":\"$(now)\",\"vin\":\"FLT0004\",\"campaign_id\":\"CMP-1\",\"image_repository\":\"$base/uptane/image/\",\"images\":[{\"ecu_id\":\"ECU_001\",\"url\":\"$url\",\"length\":$len,\"sha256\":\"$sha\",\"package\":\"full\",\"encryption\":{\"scheme\":\"aes-256-gcm-chunked+hybrid-wrap-v1\",\"sha256\":\"$sha\",\"length\":$len,\"aad\":\"FLT0004|$sha\",\"wrapped_key\":\"$(head -c 1188 /dev/urandom | base64 -w0)\"}}]}"
	check "a wrapped key that does not unwrap gives ota_download_failed" \
		response FLT0004 ota/status '"msg_type":"ota_download_failed".*"error_code":"key_unwrap_failed"'

	# a second fleet: --behavior for all, overrides, --duplicate, --out-of-order, --until-done
	for v in FLR001 FLR002 FLR003; do "$PQOTA" keys vehicle "$v" --dir "$pki" >/dev/null; done
	"$FLEET" --pki "$pki" --broker "127.0.0.1:$port" --vins FLR001,FLR002,FLR003 --behavior decline \
		--behavior-for FLR002=rollback --behavior-for FLR003=fail-install --duplicate --out-of-order \
		--until-done --duration 20 --log "$WORK/fleet2.log" >"$WORK/fleet2.out" 2>&1 &
	FLEET2=$!
	PIDS+=("$FLEET2")
	wait_for 10 grep -q '^oem/FLR003/wake_up ' "$WORK/server-side.out" || bad "the second fleet did not wake up"
	for v in FLR001 FLR002 FLR003; do campaign "$v" "cmp-$v"; done
	check "--behavior decline declines" response FLR001 response '"correlation_id":"cmp-FLR001","campaign_id":"CMP-1","decision":"declined"'
	check "--duplicate sends the response twice with one message_id" \
		test "$(grep '^oem/FLR001/response ' "$WORK/server-side.out" | sort | uniq -d | wc -l)" = 1
	meta FLR002 "$sha" meta-r2
	meta FLR003 "$sha" meta-r3
	check "rollback: ota_rollback after the download" \
		response FLR002 ota/status '"msg_type":"ota_rollback".*"error_code":"verification_failed"'
	check "fail-install: ota_error" response FLR003 ota/status '"msg_type":"ota_error".*"error_code":"install_failed"'
	check "--out-of-order: ota_download_complete comes before the progress" bash -c \
		"grep '^oem/FLR002/ota/status ' '$WORK/server-side.out' | grep -m1 -oE 'ota_download_(complete|progress)' | grep -qx ota_download_complete"
	rc=0
	wait_for 10 bash -c "! kill -0 $FLEET2 2>/dev/null" || true
	wait "$FLEET2" || rc=$?
	check "--until-done: the fleet stops by itself with exit 0 (exit $rc)" test "$rc" = 0
	check "...and counts each outcome" bash -c "grep -qx 'outcome declined 1 FLR001' '$WORK/fleet2.out' &&
		grep -qx 'outcome rolled_back 1 FLR002' '$WORK/fleet2.out' && grep -qx 'outcome failed 1 FLR003' '$WORK/fleet2.out'"
	check "...the log ends with the reason" grep -q '"event":"stopping","reason":"done"' "$WORK/fleet2.log"
else
	bad "pqota server did not start"
	cat "$WORK/server.log"
fi

kill -TERM "$FLEET_PID"
rc=0
wait "$FLEET_PID" || rc=$?
check "the fleet exits 0 on SIGTERM (exit $rc)" test "$rc" = 0
check "the summary counts the completed vehicle" grep -qx "outcome completed 1 FLT0001" "$WORK/fleet.out"
check "...the declined one" grep -qx "outcome declined 1 FLT0002" "$WORK/fleet.out"
check "...the failed ones" grep -qx "outcome failed 2 FLT0003,FLT0004" "$WORK/fleet.out"
check "...and the idle ones" grep -q "^outcome idle 16 " "$WORK/fleet.out"
check "vehicles going to sleep publish retained offline" \
	wait_for 3 grep -q '^oem/FLT0020/presence offline' "$WORK/server-side.out"
check "every log line is JSON with ts and event" python3 -c 'import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert "ts" in o and "event" in o, line' "$WORK/fleet.log"
finish
