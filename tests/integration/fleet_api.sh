#!/usr/bin/env bash
# fleet_api.sh: what the operator console's fleet, vehicle and audit pages need from a real
# `pqota server` (docs/api.md 1.2, 6.1, 6.12, 6.15, 6.16), with mosquitto and a scripted
# vehicle (pqota-fleet):
#  1. unknown or repeated query parameters are 400 on every kind of route;
#  2. the vehicle list: VMG version from the VCI, the outstanding campaign, the ECU-version
#     filter and its validation;
#  3. a vehicle's deployments over every campaign, with their targets;
#  4. POST .../vci-request publishes request_vci: the vehicle answers with a new VCI;
#     audited; 403 for a viewer, 404 for an unknown vehicle;
#  5. the audit log's filters and their validation;
#  (and the live events: presence and vci, from the VCI route and over MQTT);
#  6. a second server without a broker, seeded with 10,000 vehicles by seed_fleet: the list
#     pages and filters correctly (times printed, not asserted); vci-request is 503.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

SEED="$(dirname "$PQOTA")/seed_fleet"
[ -x "$SEED" ] || { bad "no seed_fleet next to $PQOTA"; finish; }

v1=FAPI001 v2=FAPI002 v3=FAPI003
make_pki $v1 $v2 $v3
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
OPKEY=$APIKEY
ADMKEY=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role admin --name adm 2>/dev/null)
VIEWKEY=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role viewer --name view 2>/dev/null)
check "vehicles registered" register "$B" $v1 $v2 $v3

# is400 KEY URL WHAT: GET URL is 400 bad_request naming WHAT in the message
is400() {
	local code
	code=$(st "$1" GET "$2")
	[ "$code" = 400 ] && jtrue "$WORK/r.json" "d['error']['code'] == 'bad_request' and '$3' in d['error']['message']"
}

# the live event stream, open from here on (section 4 checks its presence and vci events)
on35 curl -sS -N --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" -H "Authorization: Bearer $VIEWKEY" \
	"$B/api/v1/events" >"$WORK/events" 2>"$WORK/events.err" &
PIDS+=($!)
check "the event stream is open" wait_for 10 contains "$WORK/events" ': connected'
# has_event TYPE PYTHON-CONDITION (e: the event's data): the stream carried such an event
has_event() {
	python3 -c 'import json, sys
typ, cond = sys.argv[2], sys.argv[3]
evs, name = [], None
for line in open(sys.argv[1]).read().split("\n"):
    if line.startswith("event: "):
        name = line[7:]
    elif line.startswith("data: ") and name == typ:
        evs.append(json.loads(line[6:]))
sys.exit(0 if any(eval(cond) for e in evs) else 1)' "$WORK/events" "$1" "$2"
}

# --- 1. query parameters ------------------------------------------------------------------
for u in "/api/v1/vehicles?limt=5" "/api/v1/vehicles?limit=1&limit=2" "/health?x=1" \
	"/api/v1/vehicles/$v1?verbose=1" "/api/v1/vehicles/$v1/ecus?model=x" \
	"/api/v1/vehicles/$v1/ecus/ECU_011?x=" "/api/v1/vehicles/$v1/ecus/ECU_011/history?since_ms=1" \
	"/api/v1/vehicles/$v1/vci?x=1" "/api/v1/vehicles/$v1/deployments?state=failed" \
	"/api/vehicles/$v1/vci?x=1" "/uptane/image/root.json?x=1"; do
	check "GET $u is 400 bad_request" is400 "$ADMKEY" "$B$u" "query parameter"
done
check "GET /api/v1/audit?actr=x is 400 bad_request" is400 "$ADMKEY" "$B/api/v1/audit?actr=x" "actr"
code=$(st "$OPKEY" POST "$B/api/v1/vehicles/$v1/vci-request?now=1")
check "POST vci-request?now=1 is 400 (got $code)" test "$code" = 400
code=$(st "$OPKEY" PUT "$B/api/v1/vehicles/$v1/vci?x=1" --data '{"ecus":[]}')
check "PUT vci?x=1 is 400 (got $code)" test "$code" = 400
code=$(st "$OPKEY" GET "$B/api/v1/vehicles?limit=2&offset=1&model=test-suv&online=false&vin_prefix=FAPI")
check "every documented filter together is accepted (got $code)" test "$code" = 200
check "...and applied: 3 matches, page of 2 at offset 1" jtrue "$WORK/r.json" \
	"d['total'] == 3 and [x['vin'] for x in d['items']] == ['$v2', '$v3']"

# --- 2. the vehicle list ------------------------------------------------------------------
code=$(st "$OPKEY" PUT "$B/api/v1/vehicles/$v1/vci" --data \
	'{"ecus":[{"ecu_id":"VMG","software":{"APP":"2.5.0"}},{"ecu_id":"ECU_011","software":{"APP":"1.2.0"}}]}')
check "$v1's VCI with a VMG 2.5.0 stored (got $code)" test "$code" = 200
check "...announced as a vci event" wait_for 10 has_event vci "e['vin'] == '$v1' and e['at_ms'] > 0"
st "$VIEWKEY" GET "$B/api/v1/vehicles" >/dev/null
check "a viewer lists vehicles: $v1 has vmg_version 2.5.0 and last_vci_ms, the others null and 0" \
	jtrue "$WORK/r.json" "[(x['vin'], x['vmg_version'], x['last_vci_ms'] > 0, x['campaign']) for x in d['items']]
	== [('$v1', '2.5.0', True, None), ('$v2', None, False, None), ('$v3', None, False, None)]"
st "$OPKEY" GET "$B/api/v1/vehicles?ecu_id=ECU_011&version=1.2.0" >/dev/null
check "ecu_id=ECU_011&version=1.2.0: only $v1" jtrue "$WORK/r.json" \
	"d['total'] == 1 and d['items'][0]['vin'] == '$v1'"
st "$OPKEY" GET "$B/api/v1/vehicles?ecu_id=ECU_011&version=1.0.0" >/dev/null
check "ecu_id=ECU_011&version=1.0.0: $v2 and $v3 (default ECUs)" jtrue "$WORK/r.json" \
	"[x['vin'] for x in d['items']] == ['$v2', '$v3']"
st "$OPKEY" GET "$B/api/v1/vehicles?ecu_id=VMG" >/dev/null
check "ecu_id=VMG alone: vehicles that have a VMG ($v1)" jtrue "$WORK/r.json" "d['total'] == 1"
check "version without ecu_id is 400" is400 "$OPKEY" "$B/api/v1/vehicles?version=1.0.0" "ecu_id"
check "an empty ecu_id is 400" is400 "$OPKEY" "$B/api/v1/vehicles?ecu_id=" "ecu_id"
check "online=yes is 400" is400 "$OPKEY" "$B/api/v1/vehicles?online=yes" "online"
long=$(printf 'V%.0s' $(seq 30))
check "a version over 24 characters is 400" is400 "$OPKEY" "$B/api/v1/vehicles?ecu_id=VMG&version=$long" "version"

rel=$(make_release "$B" 1.3.0 HW-1-011 ECU_011) || { bad "release"; finish; }
c1=$(pcurl -d "{\"name\":\"first wave\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$v1\",\"$v2\"]}}" \
	"$B/api/v1/campaigns" | jget id) || { bad "campaign create"; finish; }
n=$(pcurl -X POST "$B/api/v1/campaigns/$c1/start" | jget total)
check "campaign 'first wave' targets $v1 and $v2 (got $n)" test "$n" = 2
c2=$(pcurl -d "{\"name\":\"second wave\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$v2\"]}}" \
	"$B/api/v1/campaigns" | jget id) || { bad "campaign 2 create"; finish; }
pcurl -X POST "$B/api/v1/campaigns/$c2/start" -o /dev/null
pcurl -X POST "$B/api/v1/campaigns/$c2/cancel" -o /dev/null
check "campaign 2 cancelled" test "$(dep_state "$B" "$c2" "$v2")" = cancelled
st "$OPKEY" GET "$B/api/v1/vehicles?vin_prefix=FAPI00" >/dev/null
check "the list shows each vehicle's outstanding campaign ($v2: the first, its second ended)" \
	jtrue "$WORK/r.json" "[x['campaign'] for x in d['items']] == [
	{'id': '$c1', 'name': 'first wave', 'state': 'pending'},
	{'id': '$c1', 'name': 'first wave', 'state': 'pending'}, None]"

# --- 3. a vehicle's deployments -------------------------------------------------------------
st "$VIEWKEY" GET "$B/api/v1/vehicles/$v2/deployments" >/dev/null
check "$v2's deployments: both campaigns, newest first, with targets" jtrue "$WORK/r.json" \
	"d['total'] == 2 and [(x['campaign_id'], x['campaign_name'], x['state'], x['phase'], x['error_code'])
	for x in d['items']] == [('$c2', 'second wave', 'cancelled', 1, ''), ('$c1', 'first wave', 'pending', 1, '')]
	and d['items'][0]['updated_ms'] > 0 and [(t['ecu_id'], t['from_version'], t['to_version'], t['release_id'],
	t['package']) for t in d['items'][1]['targets']] == [('ECU_011', '1.0.0', '1.3.0', '$rel', 'full')]
	and len(d['items'][1]['targets'][0]['sha256']) == 64 and d['items'][1]['targets'][0]['size'] > 0"
st "$VIEWKEY" GET "$B/api/v1/vehicles/$v2/deployments?limit=1&offset=1" >/dev/null
check "...paged: limit=1&offset=1 is the first campaign" jtrue "$WORK/r.json" \
	"d['total'] == 2 and len(d['items']) == 1 and d['items'][0]['campaign_id'] == '$c1'"
st "$VIEWKEY" GET "$B/api/v1/vehicles/$v3/deployments" >/dev/null
check "$v3 has none" jtrue "$WORK/r.json" "d == {'items': [], 'total': 0, 'limit': 50, 'offset': 0}"
code=$(st "$VIEWKEY" GET "$B/api/v1/vehicles/NOSUCHVIN/deployments")
check "an unknown vehicle's deployments: 404 (got $code)" test "$code" = 404
code=$(on35 curl -s -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	--cert "$PKI/vehicles/$v2/client.crt" --key "$PKI/vehicles/$v2/client.key" "$B/api/v1/vehicles/$v2/deployments")
check "a vehicle certificate may not list deployments here: 401 (got $code)" test "$code" = 401

# --- 4. asking for a VCI --------------------------------------------------------------------
cat >"$WORK/vci.json" <<EOF
{"ecus":[{"ecu_id":"VMG","hardware_id":"VMG-HW","zone":0,"software":{"APP":"3.0.0","BOOT":"1.0.0","CAL":"1.0.0"}},
 {"ecu_id":"ECU_011","hardware_id":"HW-1-011","zone":1,"software":{"APP":"1.0.0","BOOT":"1.0.0","CAL":"1.0.0"}}]}
EOF
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins $v3 \
	--vci-template "$WORK/vci.json" --duration 120 --log "$WORK/fleet.log" >"$WORK/fleet.out" 2>&1 &
PIDS+=($!)
# vci_count: request_vci commands the vehicle received
vci_count() { grep '"event":"received"' "$WORK/fleet.log" 2>/dev/null | grep -c '"msg_type":"request_vci"' || true; }
vci_at() { pcurl "$B/api/v1/vehicles?vin_prefix=$v3" | jget items.0.last_vci_ms; }
online3() { [ "$(pcurl "$B/api/v1/vehicles?vin_prefix=$v3&online=true" | jget total)" = 1 ]; }
check "$v3 comes online (presence over MQTT)" wait_for 20 online3
check "...announced as a presence event" wait_for 10 has_event presence "e == {'vin': '$v3', 'online': True, 'at_ms': e['at_ms']}"
has_vci() { [ "$(vci_at)" != 0 ]; }
check "...and its VCI after the wake-up's request_vci arrives" wait_for 20 has_vci
check "the list shows its VMG version 3.0.0" test "$(pcurl "$B/api/v1/vehicles?vin_prefix=$v3" | jget items.0.vmg_version)" = 3.0.0
first=$(vci_at)
check "the vehicle received one request_vci so far" test "$(vci_count)" = 1
code=$(st "$OPKEY" POST "$B/api/v1/vehicles/$v3/vci-request")
check "POST /api/v1/vehicles/$v3/vci-request: 202 (got $code)" test "$code" = 202
check "...answering vin, requested_ms and message_id" jtrue "$WORK/r.json" \
	"d['vin'] == '$v3' and d['requested_ms'] >= $first and len(d['message_id']) == 36"
mid=$(jget message_id <"$WORK/r.json")
two() { [ "$(vci_count)" = 2 ]; }
check "the vehicle receives a second request_vci" wait_for 20 two
check "...with the message id the route returned" grep -q "\"msg_type\":\"request_vci\",\"message_id\":\"$mid\"" "$WORK/fleet.log"
newer() { [ "$(vci_at)" -gt "$first" ]; }
check "a new VCI is stored (last_vci_ms advances)" wait_for 20 newer
check "...and announced as a vci event over MQTT" wait_for 10 has_event vci "e['vin'] == '$v3' and e['at_ms'] > $first"
code=$(st "$VIEWKEY" POST "$B/api/v1/vehicles/$v3/vci-request")
check "a viewer may not request a VCI: 403 (got $code)" test "$code" = 403
code=$(st "$OPKEY" POST "$B/api/v1/vehicles/NOSUCHVIN/vci-request")
check "an unknown vehicle: 404 (got $code)" test "$code" = 404

# --- 5. the audit log's filters ---------------------------------------------------------------
st "$ADMKEY" GET "$B/api/v1/audit?action=vehicle.vci_request" >/dev/null
check "audit action=vehicle.vci_request: one record, target $v3, the operator, the message id" \
	jtrue "$WORK/r.json" "d['total'] == 1 and d['items'][0]['target'] == '$v3'
	and d['items'][0]['actor'].startswith('apikey:op-') and d['items'][0]['detail'] == {'message_id': '$mid'}"
at=$(jget items.0.at_ms <"$WORK/r.json")
actor=$(jget items.0.actor <"$WORK/r.json")
st "$ADMKEY" GET "$B/api/v1/audit?target=$v1&action=vehicle.vci" >/dev/null
check "target=$v1&action=vehicle.vci: the PUT of section 2" jtrue "$WORK/r.json" "d['total'] == 1"
st "$ADMKEY" GET "$B/api/v1/audit?actor=$actor&since_ms=$at" >/dev/null
check "actor and since_ms: the VCI request only (newest)" jtrue "$WORK/r.json" \
	"d['total'] == 1 and d['items'][0]['action'] == 'vehicle.vci_request'"
st "$ADMKEY" GET "$B/api/v1/audit?actor=$actor&until_ms=$at" >/dev/null
check "until_ms excludes it: registrations, release, campaigns" jtrue "$WORK/r.json" \
	"d['total'] >= 6 and all(x['at_ms'] < $at for x in d['items']) and
	{'vehicle.register', 'campaign.create', 'campaign.cancel'} <= {x['action'] for x in d['items']}"
check "since_ms=abc is 400" is400 "$ADMKEY" "$B/api/v1/audit?since_ms=abc" "since_ms"
check "until_ms=0 is 400" is400 "$ADMKEY" "$B/api/v1/audit?until_ms=0" "until_ms"
check "since_ms after until_ms is 400" is400 "$ADMKEY" "$B/api/v1/audit?since_ms=10&until_ms=5" "since_ms"
check "a target over 128 characters is 400" is400 "$ADMKEY" "$B/api/v1/audit?target=$(printf 'x%.0s' $(seq 130))" "target"
code=$(st "$OPKEY" GET "$B/api/v1/audit?action=vehicle.vci")
check "the audit log stays admin-only: 403 for an operator (got $code)" test "$code" = 403

# --- 6. 10,000 vehicles, no broker ----------------------------------------------------------
mkdir -p "$WORK/data-s2"
"$SEED" --db "$WORK/data-s2/pqota.db" --count 10000 --prefix WSEED --model Model-X --vmg 5.0.0 \
	--online-every 10 >"$WORK/seed.out" 2>&1
check "seed_fleet inserts 10,000 vehicles: $(cat "$WORK/seed.out")" grep -q "^seed_fleet: 10000 vehicles in " "$WORK/seed.out"
expect_exit 1 "seed_fleet again: the VINs exist, nothing inserted" \
	"$SEED" --db "$WORK/data-s2/pqota.db" --count 5 --prefix WSEED
write_server_conf s2 "mqtt.broker = "
sed -i '/^mqtt\.broker = $/d' "$WORK/s2.conf"
start_server s2
B2=$BASE_s2
make_key s2
t() { # t URL: GET it, the time in ms; the body in $WORK/r.json
	on35 curl -sS -o "$WORK/r.json" -w '%{time_total}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
		-H "Authorization: Bearer $APIKEY" "$1" | python3 -c 'import sys; print(round(float(sys.stdin.read()) * 1000, 1))'
}
ms1=$(t "$B2/api/v1/vehicles?limit=50")
check "first page of 10,000: WSEED00000.., VMG 5.0.0, total 10000" jtrue "$WORK/r.json" \
	"d['total'] == 10000 and d['items'][0]['vin'] == 'WSEED00000' and len(d['items']) == 50
	and d['items'][0]['vmg_version'] == '5.0.0' and d['items'][0]['online'] and not d['items'][1]['online']"
ms2=$(t "$B2/api/v1/vehicles?limit=50&offset=9950")
check "last page: WSEED09950..WSEED09999" jtrue "$WORK/r.json" \
	"[x['vin'] for x in d['items']] == ['WSEED%05d' % i for i in range(9950, 10000)]"
ms3=$(t "$B2/api/v1/vehicles?limit=50&offset=500&online=true&model=Model-X&ecu_id=VMG&version=5.0.0")
check "online, model and VMG version: 1000 matches, page 11 starts at WSEED05000" jtrue "$WORK/r.json" \
	"d['total'] == 1000 and d['items'][0]['vin'] == 'WSEED05000'"
ms4=$(t "$B2/api/v1/vehicles?limit=50&vin_prefix=WSEED042")
check "vin_prefix=WSEED042: 100 matches" jtrue "$WORK/r.json" \
	"d['total'] == 100 and d['items'][0]['vin'] == 'WSEED04200' and d['items'][-1]['vin'] == 'WSEED04249'"
echo "     fleet of 10,000 over HTTPS: first page ${ms1} ms, last page ${ms2} ms, filtered ${ms3} ms, prefix ${ms4} ms"
code=$(st "$APIKEY" POST "$B2/api/v1/vehicles/WSEED00001/vci-request")
check "vci-request without a broker: 503 (got $code)" test "$code" = 503
check "...no_broker" jtrue "$WORK/r.json" "d['error']['code'] == 'no_broker'"
finish
