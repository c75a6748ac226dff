#!/usr/bin/env bash
# diag_flow.sh: remote diagnostics end to end with real processes: mosquitto (PQC TLS,
# per-VIN ACL), `pqota server` with its MQTT bridge, and three vehicles played by Debian's
# mosquitto_sub / mosquitto_pub (on OpenSSL 3.5, each with its own certificate): one answers
# 22 F190 with its VIN, one with NRC 0x31 requestOutOfRange, one stays silent. Checks what
# `pqota diag send` prints and returns, the aggregate, `diag show` / `diag list`, the API's
# validation (400/401/403/404), a spoofed answer refused, a vehicle that wakes up later
# getting its pending request, and the metrics.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

pos=DIAGPOSITIVE1
neg=DIAGNEGATIVE1
sil=DIAGSILENT001
late=DIAGLATEWAKE1
make_pki $pos $neg $sil $late
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" $pos $neg $sil $late
CA="$PKI/ca/ca.crt"

mq() { # VIN: mosquitto client options for that vehicle
	echo -h 127.0.0.1 -p "$BROKER_PORT" --cafile "$CA" --cert "$PKI/vehicles/$1/client.crt" \
		--key "$PKI/vehicles/$1/client.key"
}
# listen VIN: one diag_request for VIN into $WORK/req-VIN.json (background), subscribed when
# this returns
listen() {
	# shellcheck disable=SC2046
	mqtt_sub "$WORK/req-$1.json" "oem/$1/test/probe" $(mq "$1") -- -t "oem/$1/diag/request" -C 1 -W 40 ||
		bad "$1's diag/request subscriber is not ready"
}
wake() { # VIN SEQ
	on35 mosquitto_pub $(mq "$1") -q 1 -t "oem/$1/wake_up" -m "{\"msg_type\":\"vehicle_wake_up\",\
\"message_id\":\"$(python3 -c 'import uuid; print(uuid.uuid4())')\",\"timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\",\
\"vin\":\"$1\",\"boot_seq\":$2}"
}
online() { pcurl "$B/api/v1/vehicles/$1" | grep -q '"online":true'; }
# respond VIN MODE [REQUEST_ID]: waits for the request and answers it like a VMG would
# (positive: 62 F190 + the VIN in ASCII; negative: 7F <sid> 31); REQUEST_ID overrides the id
respond() {
	local vin=$1 mode=$2
	wait_for 40 test -s "$WORK/req-$vin.json" || return 1
	python3 - "$vin" "$mode" "$WORK/req-$vin.json" "${3:-}" >"$WORK/resp-$vin.json" <<'PY'
import datetime, json, sys, uuid
vin, mode, path, rid = sys.argv[1:5]
req = json.loads(open(path).read().splitlines()[0])
r = {"msg_type": "diag_response", "message_id": str(uuid.uuid4()),
     "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
     "vin": vin, "correlation_id": req["message_id"], "request_id": rid or req["request_id"],
     "ecu_id": req["ecu_id"], "elapsed_ms": 3}
if mode == "positive":
    r.update(status="positive", response="62F190" + vin.encode().hex().upper())
else:
    r.update(status="negative", response="7F" + req["request"][:2] + "31", nrc=0x31,
             nrc_name="requestOutOfRange")
print(json.dumps(r))
PY
	on35 mosquitto_pub $(mq "$vin") -q 1 -t "oem/$vin/diag/response" -f "$WORK/resp-$vin.json"
}

for v in $pos $neg $sil; do listen $v; done
for v in $pos $neg $sil; do wake $v 1; done
for v in $pos $neg $sil; do check "$v is online" wait_for 10 online $v; done

# --- 1. a fleet request: positive, negative, silent ---------------------------------------
respond $pos positive &
R1=$!
respond $neg negative &
R2=$!
PIDS+=($R1 $R2)
rc=0
PQOTA_API_KEY=$APIKEY "$PQOTA" diag send --server "$B" --ca "$CA" --vins "$pos,$neg,$sil" \
	--ecu ECU_011 --request 22f190 --timeout 4 >"$WORK/send1.out" 2>"$WORK/send1.err" || rc=$?
wait $R1 $R2 || true
sed 's/^/     /' "$WORK/send1.out"
check "diag send exits 1 when a vehicle timed out (got $rc)" test "$rc" = 1
check "the request reached $pos as published (22F190, ECU_011, timeout_ms)" python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[0])
ok = (r["msg_type"] == "diag_request" and r["vin"] == sys.argv[2] and r["ecu_id"] == "ECU_011"
      and r["request"] == "22F190" and 0 < r["timeout_ms"] <= 4000 and len(r["request_id"]) == 36)
sys.exit(0 if ok else 1)' "$WORK/req-$pos.json" $pos
check "the positive answer is shown decoded: 62 F190 \"$pos\" (VIN)" \
	grep -qE "^$pos +ECU_011 +positive .*62 F190 \"$pos\" \(VIN\)" "$WORK/send1.out"
check "the negative answer shows NRC 0x31 requestOutOfRange" \
	grep -qE "^$neg +ECU_011 +negative .*NRC 0x31 requestOutOfRange" "$WORK/send1.out"
check "the silent vehicle shows timeout" grep -qE "^$sil +ECU_011 +timeout " "$WORK/send1.out"
check "aggregate: positive 1, negative 1, timeout 1, error 0" \
	grep -q "status: positive 1, negative 1, timeout 1, error 0, pending 0, sent 0" "$WORK/send1.out"
check "aggregate lists NRC 0x31 once" grep -qE "NRC 0x31 requestOutOfRange +1$" "$WORK/send1.out"
id1=$(grep -oE '^[0-9a-f-]{36}' "$WORK/send1.out" | head -1)
check "the request id is printed" test -n "$id1"

# the API's view of the same batch
pcurl "$B/api/v1/diagnostics/$id1" >"$WORK/get1.json"
check "GET /api/v1/diagnostics/{id}: state, counts, aggregate, results" python3 -c '
import json, sys
b = json.load(open(sys.argv[1])); pos, neg, sil = sys.argv[2:5]
res = {r["vin"]: r for r in b["results"]["items"]}
ok = (b["state"] == "done" and b["targets"] == 3 and b["ecu_id"] == "ECU_011"
      and b["request"] == "22F190" and b["timeout_s"] == 4 and b["kind"] == "uds"
      and b["counts"] == {"pending": 0, "sent": 0, "positive": 1, "negative": 1, "timeout": 1, "error": 0, "suppressed": 0}
      and b["aggregate"]["nrc"] == [{"nrc": 49, "nrc_hex": "0x31", "nrc_name": "requestOutOfRange", "count": 1}]
      and b["aggregate"]["responses"] == [{"response": "62F190" + pos.encode().hex().upper(), "text": pos, "count": 1}]
      and res[pos]["text"] == pos and res[neg]["text"] is None
      and b["results"]["total"] == 3 and list(res) == sorted(res)
      and res[pos]["status"] == "positive" and res[pos]["elapsed_ms"] == 3 and res[pos]["nrc"] is None
      and res[neg]["nrc"] == 49 and res[neg]["nrc_name"] == "requestOutOfRange" and res[neg]["response"] == "7F2231"
      and res[sil]["status"] == "timeout" and res[sil]["error"] and res[sil]["response"] is None
      and res[pos]["received_ms"] > 0 and res[pos]["sent_ms"] > 0)
sys.exit(0 if ok else 1)' "$WORK/get1.json" $pos $neg $sil

# --- 2. one vehicle, every answer: exit 0; a spoofed answer is refused ---------------------
listen $pos
respond $pos positive &
R1=$!
PIDS+=($R1)
expect_exit 0 "diag send --vin $pos: every vehicle answered" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag send --server "$B" --ca "$CA" --vin $pos --ecu ECU_011 --request 22F190 --timeout 10
wait $R1 || true
check "...and prints the decoded VIN" grep -q "62 F190 \"$pos\" (VIN)" "$WORK/last.out"

# $neg answers $pos's request (on its own topic, so the broker lets it through): refused
listen $pos
PQOTA_API_KEY=$APIKEY "$PQOTA" diag send --server "$B" --ca "$CA" --vin $pos --ecu ECU_011 \
	--request 22F190 --timeout 3 --no-wait --json >"$WORK/nowait.json"
id3=$(jget id <"$WORK/nowait.json")
check "--no-wait returns at once with the new request (targets 1)" \
	grep -q '"targets": 1' "$WORK/nowait.json"
wait_for 10 test -s "$WORK/req-$pos.json" || true
rid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[0])["request_id"])' "$WORK/req-$pos.json")
cp "$WORK/req-$pos.json" "$WORK/req-$neg.json"
respond $neg positive "$rid"
check "the server refused $neg's answer to $pos's request" \
	wait_for 5 grep -q "$neg: diag_response refused" "$WORK/s1.log"
final() { pcurl "$B/api/v1/diagnostics/$1" | grep -q '"state":"done"'; }
check "...and the request expired as a timeout" wait_for 10 final "$id3"
check "...not as the spoofed answer" eval "pcurl '$B/api/v1/diagnostics/$id3' | grep -q '\"timeout\":1'"

# --- 3. a vehicle offline at the time gets its request when it wakes up -----------------
# (no -C for $late's subscriber: mqtt_sub_sync below is its barrier)
# shellcheck disable=SC2046
mqtt_sub "$WORK/req-$late.json" "oem/$late/test/probe" $(mq $late) -- -t "oem/$late/diag/request" -W 40 ||
	bad "$late's diag/request subscriber is not ready"
metric_now() { pcurl "$B/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
published0=$(metric_now pqota_diag_requests_total)
PQOTA_API_KEY=$APIKEY "$PQOTA" diag send --server "$B" --ca "$CA" --vin $late --ecu ZGW1 \
	--request 1001 --timeout 20 --no-wait --json >"$WORK/late.json"
id4=$(jget id <"$WORK/late.json")
# every engine tick publishes the due requests of the online vehicles: once two more ticks
# ran, the request was considered at least once (and nothing was published for it)
ticks0=$(metric_now pqota_campaign_ticks_total)
ticked() { [ "$(metric_now pqota_campaign_ticks_total)" -ge $((ticks0 + 2)) ]; }
wait_for 10 ticked || bad "the server's engine did not tick"
check "nothing is sent to an offline vehicle" \
	eval 'test "$(metric_now pqota_diag_requests_total)" = "$published0" &&
		mqtt_sub_sync "$WORK/req-$late.json" && test ! -s "$WORK/req-$late.json"'
check "...its request is pending" eval "pcurl '$B/api/v1/diagnostics/$id4' | grep -q '\"pending\":1'"
wake $late 1
check "after its wake-up the request arrives" wait_for 10 grep -q '"request":"1001"' "$WORK/req-$late.json"

# --- 4. fleet filters, show, list ----------------------------------------------------------
expect_exit 0 "--hardware-id HW-1-011 --no-wait" env PQOTA_API_KEY="$APIKEY" "$PQOTA" diag send \
	--server "$B" --ca "$CA" --hardware-id HW-1-011 --ecu ECU_011 --request 22F190 --timeout 2 --no-wait --json
check "...targets the 4 vehicles carrying it" grep -q '"targets": 4' "$WORK/last.out"
expect_exit 1 "diag show of the first request (a timeout in it)" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag show --server "$B" --ca "$CA" "$id1"
check "...prints the table and aggregate" grep -q "status: positive 1, negative 1, timeout 1" "$WORK/last.out"
expect_exit 0 "diag list" env PQOTA_API_KEY="$APIKEY" "$PQOTA" diag list --server "$B" --ca "$CA"
check "...lists 5 requests, the first one among them" \
	eval "grep -q '^5 request(s)' '$WORK/last.out' && grep -q '^$id1 ' '$WORK/last.out'"
expect_exit 2 "diag show of an unknown id" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag show --server "$B" --ca "$CA" 00000000-0000-4000-8000-000000000000
expect_exit 64 "diag send without --ecu" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag send --server "$B" --ca "$CA" --vin $pos --request 22F190
expect_exit 64 "diag send with two target options" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag send --server "$B" --ca "$CA" --vin $pos --all --ecu ECU_011 --request 22F190
expect_exit 0 "diag --help" "$PQOTA" diag --help

# --- 5. the API's validation ---------------------------------------------------------------
VIEWER=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role viewer --name "view-$RANDOM" 2>/dev/null)
status() { # KEY BODY: the HTTP status of a POST /api/v1/diagnostics
	on35 curl -sS -o "$WORK/err.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
		${1:+-H "Authorization: Bearer $1"} -H 'Content-Type: application/json' -d "$2" \
		"$B/api/v1/diagnostics"
}
post_is() { # WANT CODE DESCRIPTION KEY BODY
	local got
	got=$(status "$4" "$5")
	if [ "$got" = "$1" ] && grep -q "\"code\":\"$2\"" "$WORK/err.json"; then ok "$3 ($got $2)"; else
		bad "$3: got $got $(cat "$WORK/err.json"), wanted $1 $2"
	fi
}
post_is 401 unauthenticated "no API key" "" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22F190\"}"
post_is 403 forbidden "a viewer key" "$VIEWER" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22F190\"}"
post_is 404 not_found "an unknown VIN" "$APIKEY" '{"vin":"NOPE","ecu_id":"ECU_011","request":"22F190"}'
post_is 404 not_found "an unknown VIN in filter.vins" "$APIKEY" "{\"filter\":{\"vins\":[\"$pos\",\"NOPE\"]},\"ecu_id\":\"ECU_011\",\"request\":\"22F190\"}"
post_is 400 bad_request "no ecu_id" "$APIKEY" "{\"vin\":\"$pos\",\"request\":\"22F190\"}"
post_is 400 bad_request "a bad ecu_id" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"BROADCAST\",\"request\":\"22F190\"}"
post_is 400 bad_request "an odd-length request" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22F19\"}"
post_is 400 bad_request "a non-hex request" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22G190\"}"
post_is 400 bad_request "a request over 4095 bytes" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"$(printf '22%.0s' $(seq 4096))\"}"
post_is 400 bad_request "timeout_s 0" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22F190\",\"timeout_s\":0}"
post_is 400 bad_request "timeout_s 301" "$APIKEY" "{\"vin\":\"$pos\",\"ecu_id\":\"ECU_011\",\"request\":\"22F190\",\"timeout_s\":301}"
post_is 400 bad_request "both vin and filter" "$APIKEY" "{\"vin\":\"$pos\",\"filter\":{\"all\":true},\"ecu_id\":\"ECU_011\",\"request\":\"22F190\"}"
post_is 400 bad_request "a filter with two keys" "$APIKEY" '{"filter":{"all":true,"model":"x"},"ecu_id":"ECU_011","request":"22F190"}'
post_is 400 no_targets "a filter matching nothing" "$APIKEY" '{"filter":{"model":"no-such-model"},"ecu_id":"ECU_011","request":"22F190"}'
post_is 400 bad_json "not JSON" "$APIKEY" '{"vin":'
got=$(on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
	-H "Authorization: Bearer $VIEWER" "$B/api/v1/diagnostics/$id1")
check "a viewer may read a request (got $got)" test "$got" = 200
got=$(on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
	-H "Authorization: Bearer $VIEWER" "$B/api/v1/diagnostics/not-an-id!")
check "an id that is no UUID is 404 (got $got)" test "$got" = 404
ADMIN=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role admin --name "adm-$RANDOM" 2>/dev/null)
audited() {
	on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$CA" -H "Authorization: Bearer $ADMIN" \
		"$B/api/v1/audit?limit=100" | grep -q "\"action\":\"diag.request\",\"target\":\"$id1\""
}
check "the request is audited as diag.request" audited

# --- 6. metrics ------------------------------------------------------------------------------
pcurl "$B/metrics" >"$WORK/metrics.txt"
metric() { awk -v m="$1" -v w="$2" '$1 == m && $2 >= w {f=1} END {exit !f}' "$WORK/metrics.txt"; }
check "pqota_diag_requests_total counts the published requests" metric pqota_diag_requests_total 6
check "pqota_diag_responses_total{status=\"positive\"} >= 2" metric 'pqota_diag_responses_total{status="positive"}' 2
check "pqota_diag_responses_total{status=\"negative\"} = 1" metric 'pqota_diag_responses_total{status="negative"}' 1
check "pqota_diag_responses_total{status=\"expired\"} >= 2" metric 'pqota_diag_responses_total{status="expired"}' 2
finish
