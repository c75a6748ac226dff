#!/usr/bin/env bash
# diag_api.sh: the diagnostics routes of a real `pqota server` without a broker: a fleet
# request is created for every matching vehicle and, as nothing can reach them, each one
# ends at once as "error"; the batch's shape, paging of its results, the list, and the
# model filter.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

vins=(DAPI001 DAPI002 DAPI003 DAPI004 DAPI005)
make_pki "${vins[@]}"
BROKER_PORT=1 # unused: the configuration below has no broker
{
	echo "listen = 127.0.0.1:0"
	echo "tls.pki = $PKI"
	echo "data_dir = $WORK/data-s1"
	echo "port_file = $WORK/s1.port"
	echo "engine.tick = 200ms"
	echo "log.level = info"
	echo "ratelimit.client_rps = 0"
	echo "ratelimit.global_rps = 0"
} >"$WORK/s1.conf"
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" "${vins[@]}"

pcurl -D "$WORK/h.txt" -d '{"filter":{"all":true},"ecu_id":"0x1011","request":"22f190","timeout_s":30}' \
	"$B/api/v1/diagnostics" >"$WORK/post.json"
check "POST answers 202" grep -qE '^HTTP/[0-9.]+ 202' "$WORK/h.txt"
check "...with Location: /api/v1/diagnostics/{id}" grep -qiE '^location: /api/v1/diagnostics/[0-9a-f-]{36}' "$WORK/h.txt"
id=$(jget id <"$WORK/post.json")
check "POST answers with the batch: 5 targets, ECU normalised, request upper case, all error" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
items = b["results"]["items"]
ok = (b["targets"] == 5 and b["ecu_id"] == "ECU_011" and b["request"] == "22F190"
      and b["timeout_s"] == 30 and b["state"] == "done"
      and b["counts"] == {"pending": 0, "sent": 0, "positive": 0, "negative": 0, "timeout": 0, "error": 5, "suppressed": 0}
      and [r["vin"] for r in items] == sys.argv[2:]
      and all(r["status"] == "error" and r["error"] == "MQTT is not configured on the server"
              and r["response"] is None and r["sent_ms"] == 0 for r in items)
      and b["aggregate"] == {"nrc": [], "responses": [], "distinct_responses": 0})
sys.exit(0 if ok else 1)' "$WORK/post.json" "${vins[@]}"

pcurl "$B/api/v1/diagnostics/$id?limit=2&offset=3" >"$WORK/page.json"
check "results page 2 at offset 3: DAPI004, DAPI005 of 5" python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
sys.exit(0 if [x["vin"] for x in r["items"]] == ["DAPI004", "DAPI005"] and r["total"] == 5
         and r["limit"] == 2 and r["offset"] == 3 else 1)' "$WORK/page.json"

pcurl -d '{"filter":{"model":"test-suv"},"ecu_id":"VMG","request":"3E00"}' "$B/api/v1/diagnostics" >"$WORK/post2.json"
check "a model filter: 5 targets, default timeout 10 s" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
sys.exit(0 if b["targets"] == 5 and b["timeout_s"] == 10 and b["ecu_id"] == "VMG" else 1)' "$WORK/post2.json"
pcurl -d '{"filter":{"vins":["DAPI002","DAPI002","DAPI001"]},"ecu_id":"ZGW3","request":"1003"}' \
	"$B/api/v1/diagnostics" >"$WORK/post3.json"
check "filter.vins: duplicates count once" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
sys.exit(0 if b["targets"] == 2 and [r["vin"] for r in b["results"]["items"]] == ["DAPI001", "DAPI002"] else 1)' "$WORK/post3.json"

pcurl "$B/api/v1/diagnostics?limit=2" >"$WORK/list.json"
check "the list: 3 batches, newest first, without results" python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))
it = l["items"]
sys.exit(0 if l["total"] == 3 and len(it) == 2 and it[0]["ecu_id"] == "ZGW3" and it[1]["ecu_id"] == "VMG"
         and "results" not in it[0] and it[0]["counts"]["error"] == 2 else 1)' "$WORK/list.json"
expect_exit 22 "an unknown batch is 404" pcurl "$B/api/v1/diagnostics/00000000-0000-4000-8000-000000000000"
check "...with code not_found" grep -q '"code":"not_found"' "$WORK/last.out"
expect_exit 1 "pqota diag show of the failed batch exits 1" env PQOTA_API_KEY="$APIKEY" \
	"$PQOTA" diag show --server "$B" --ca "$PKI/ca/ca.crt" "$id"
check "...and shows every vehicle as error" test "$(grep -c ' error .*MQTT is not configured' "$WORK/last.out")" = 5

# filter.online (with model, all or alone): no vehicle is online here
post_code() { on35 curl -s -o "$WORK/pc.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	-H "Authorization: Bearer $APIKEY" -d "{\"filter\":$1,\"ecu_id\":\"VMG\",\"request\":\"3E00\"}" "$B/api/v1/diagnostics"; }
code=$(post_code '{"model":"test-suv","online":true}')
check "filter {model, online: true} matches no vehicle here: 400 no_targets (got $code)" \
	test "$code" = 400 -a "$(jget error.code <"$WORK/pc.json")" = no_targets
code=$(post_code '{"online":false}')
check "filter {online: false} targets the 5 offline vehicles (got $code)" \
	test "$code" = 202 -a "$(jget targets <"$WORK/pc.json")" = 5
code=$(post_code '{"all":true,"online":false}')
check "filter {all, online: false}: 202 (got $code)" test "$code" = 202
for f in '{"vins":["DAPI001"],"online":true}' '{"hardware_id":"HW-1-001","online":true}' '{"online":1}' \
	'{"model":"test-suv","all":true}' '{}'; do
	code=$(post_code "$f")
	check "filter $f is 400 (got $code)" test "$code" = 400
done
code=$(on35 curl -s -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	-H "Authorization: Bearer $APIKEY" "$B/api/v1/diagnostics?lim=1")
check "the diagnostics list refuses an unknown parameter (got $code)" test "$code" = 400
finish
