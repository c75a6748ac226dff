#!/usr/bin/env bash
# agent_telemetry.sh: telemetry on oem/{vin}/telemetry against real processes (mosquitto from
# `pqota broker config`, pqota server, `pqota vehicle`):
#
#  1. an agent with --telemetry-period 1 publishes samples of its simulated state (battery
#     42 %, ignition on, not parked: 50 km/h, --storage-free) that the server stores: the
#     API serves them to an API key and to the vehicle itself, not to another vehicle, and
#     /metrics counts the vehicle in the fleet gauges;
#  2. the history is bounded: with telemetry.history = 5, eight samples leave the newest
#     five (seq 4..8 of the published ones, newest first);
#  3. malformed samples (not JSON, a string battery, a charge of 101 %, a parked vehicle
#     moving, more free than total storage, a body naming another VIN, a missing member,
#     5 KiB, an older timestamp) are refused and counted, and leave the stored samples as
#     they were: the next valid sample is the only change;
#  4. another vehicle's certificate can neither read a vehicle's telemetry from the broker
#     nor publish on its topic.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

V1=TELEMETRYVEHICLE1
V2=TELEMETRYVEHICLE2
make_pki $V1 $V2
start_broker
# metrics.cache = 0s: each scrape reads the fleet gauges, so a new sample shows at once
write_server_conf s1 "telemetry.history = 5" "telemetry.min_interval = 0s" "metrics.cache = 0s"
start_server s1
B=$BASE_s1
make_key s1
CA="$PKI/ca/ca.crt"
check "vehicles registered" register "$B" $V1 $V2
check "the trusted Uptane roots are served" provision $V1 $V2

tele() { pcurl "$B/api/v1/vehicles/$1/telemetry${2:-}"; }
# latest VIN FIELD: a member of the vehicle's latest sample ("battery.soc_pct")
latest() { tele "$1" | jget "latest.$2" 2>/dev/null; }
latest_is() { [ "$(latest "$1" "$2")" = "$3" ]; } # latest_is VIN FIELD VALUE (for wait_for)
metric() { pcurl "$B/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# --- 1. an agent's samples -------------------------------------------------------------------
check "before any sample the latest is null" test "$(tele $V1 | jget latest)" = None
start_agent $V1 --telemetry-period 1 --battery 42 --ignition-on --not-parked --storage-free 123456789
check "the agent's sample arrived" wait_for 30 latest_is $V1 battery.soc_pct 42
tele $V1 >"$WORK/t1.json"
check "...its values are the simulation's" python3 - "$WORK/t1.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["latest"]
assert t["ignition_on"] is True and t["parked"] is False, t
assert t["speed_kmh"] == 50.0 and t["battery"]["voltage_v"] == 14.1, t
assert t["storage"]["free_bytes"] == 123456789 and t["storage"]["total_bytes"] >= 123456789, t
assert t["seq"] >= 1 and t["timestamp"].endswith("Z"), t
PY
second() { [ "$(latest $V1 seq)" -ge 2 ]; }
check "a second sample follows a second later" wait_for 10 second
check "the vehicle reads its own telemetry" vget $V1 "/api/v1/vehicles/$V1/telemetry" "$WORK/own.json"
check "...the same vehicle's" test "$(jget vin <"$WORK/own.json")" = $V1
rc=0
vget $V2 "/api/v1/vehicles/$V1/telemetry" "$WORK/other.json" 2>/dev/null || rc=$?
check "another vehicle's certificate is refused (curl exit $rc)" test "$rc" = 22
pcurl "$B/metrics" >"$WORK/metrics1.txt"
check "/metrics: one vehicle reporting" grep -qx "pqota_telemetry_vehicles_reporting 1" "$WORK/metrics1.txt"
check "/metrics: ...moving, ignition on, not parked" bash -c "grep -qx 'pqota_telemetry_vehicles_moving 1' $WORK/metrics1.txt &&
	grep -qx 'pqota_telemetry_vehicles_ignition_on 1' $WORK/metrics1.txt &&
	grep -qx 'pqota_telemetry_vehicles_parked 0' $WORK/metrics1.txt"
check "/metrics: battery 42 % is the minimum, not low" bash -c "grep -qx 'pqota_telemetry_battery_soc_min_percent 42' $WORK/metrics1.txt &&
	grep -qx 'pqota_telemetry_vehicles_battery_low 0' $WORK/metrics1.txt"
check "/metrics: the least free storage" grep -qx "pqota_telemetry_storage_free_min_bytes 123456789" "$WORK/metrics1.txt"
check "the agent stops cleanly" stop_agent $V1
check "the agent logged its telemetry as sent" test "$(event_count $V1 sent msg_type=telemetry)" -ge 2

# --- 2. the bounded history ------------------------------------------------------------------
# sample OFFSET_MS [python edits of the message m]: a sample of V1 timestamped OFFSET_MS after
# the start of this section
T0=$(python3 -c 'import time; print(int(time.time() * 1000) + 1000)')
sample() {
	python3 - "$V1" "$T0" "$@" <<'PY'
import datetime, json, sys, uuid
vin, t0, off = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ms = t0 + off
ts = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
m = {"msg_type": "telemetry", "message_id": str(uuid.uuid4()),
     "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000), "vin": vin,
     "battery": {"soc_pct": 15, "voltage_v": 12.0}, "ignition_on": False, "speed_kmh": 0,
     "parked": True, "storage": {"free_bytes": 1000 + off, "total_bytes": 10 ** 12}}
for edit in sys.argv[4:]:
    exec(edit)
print(json.dumps(m) if isinstance(m, dict) else m)
PY
}
cred() { echo --cafile "$CA" --cert "$PKI/vehicles/$1/client.crt" --key "$PKI/vehicles/$1/client.key"; }
pub() { # pub WHO TOPIC FILE
	# shellcheck disable=SC2046
	on35 mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$BROKER_PORT" $(cred "$1") -t "$2" -f "$3" -q 1 >>"$WORK/pub.out" 2>&1
}
pub_sample() { # OFFSET_MS [edits]
	sample "$@" >"$WORK/s.json"
	pub $V1 "oem/$V1/telemetry" "$WORK/s.json"
}
for i in 1 2 3 4 5 6 7 8; do pub_sample "$i"; done
check "the eighth sample is the latest" wait_for 10 latest_is $V1 storage.free_bytes 1008
tele $V1 >"$WORK/t2.json"
check "...and the history holds the newest five, newest first" python3 - "$WORK/t2.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
free = [s["storage"]["free_bytes"] for s in t["items"]]
assert t["total"] == 5 and free == [1008, 1007, 1006, 1005, 1004], (t["total"], free)
seqs = [s["seq"] for s in t["items"]]
assert seqs == list(range(seqs[0], seqs[0] - 5, -1)) and t["latest"] == t["items"][0], t
PY
check "paging: limit 2 offset 3" test "$(tele $V1 '?limit=2&offset=3' | python3 -c '
import json, sys; print([s["storage"]["free_bytes"] for s in json.load(sys.stdin)["items"]])')" = "[1005, 1004]"
check "/metrics: the low battery counted" test "$(metric pqota_telemetry_vehicles_battery_low)" = 1

# --- 3. malformed samples change nothing -----------------------------------------------------
invalid0=$(metric 'pqota_telemetry_refused_total{reason="invalid"}')
stale0=$(metric 'pqota_telemetry_refused_total{reason="stale"}')
printf '{"msg_type":"telemetry", not json' >"$WORK/bad0.json"
pub $V1 "oem/$V1/telemetry" "$WORK/bad0.json"
n=1
for edit in 'm["battery"]["soc_pct"] = "80"' \
	'm["battery"]["soc_pct"] = 101' \
	'm["speed_kmh"] = 30' \
	'm["storage"]["free_bytes"] = 2 * 10 ** 12' \
	'm["vin"] = "'$V2'"' \
	'del m["ignition_on"]' \
	'm["pad"] = "x" * 5000' \
	'm["battery"]["voltage_v"] = -1' \
	'm["parked"] = "yes"'; do
	pub_sample 20 "$edit"
	n=$((n + 1))
done
pub_sample 5 # older than the latest: stale
pub_sample 30 'm["battery"]["soc_pct"] = 77' # the valid one that ends the section
check "the valid sample after the malformed ones arrived" wait_for 10 latest_is $V1 battery.soc_pct 77
check "...the $n malformed samples were counted as invalid" test "$(metric 'pqota_telemetry_refused_total{reason="invalid"}')" = $((invalid0 + n))
check "...the older one as stale" test "$(metric 'pqota_telemetry_refused_total{reason="stale"}')" = $((stale0 + 1))
tele $V1 >"$WORK/t3.json"
check "...and the history is the one before plus the valid sample only" python3 - "$WORK/t2.json" "$WORK/t3.json" <<'PY'
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
assert after["items"][1:] == before["items"][:4], "an earlier sample changed"
new = after["items"][0]
assert new["seq"] == before["items"][0]["seq"] + 1 and new["storage"]["free_bytes"] == 1030, new
assert after["total"] == 5
PY
check "the server logged why" grep -q "telemetry refused: .*soc_pct" "$WORK/s1.log"

# --- 4. another vehicle's certificate --------------------------------------------------------
# shellcheck disable=SC2046
mqtt_sub "$WORK/v2.out" "oem/$V2/test/probe-tele" -V mqttv5 -h 127.0.0.1 -p "$BROKER_PORT" $(cred $V2) -- \
	-t "oem/$V1/telemetry" -t 'oem/+/telemetry' -v || bad "V2's subscriber not ready"
pub_sample 40 'm["battery"]["soc_pct"] = 66'
sample 50 'm["battery"]["soc_pct"] = 11' >"$WORK/forged.json"
pub $V2 "oem/$V1/telemetry" "$WORK/forged.json" || true
check "V1's sample arrived at the server" wait_for 10 latest_is $V1 battery.soc_pct 66
check "the subscriber of V2 is in sync" mqtt_sub_sync "$WORK/v2.out"
check "...and received nothing of V1" bash -c "! grep -q $V1 $WORK/v2.out"
check "the broker refused V2's publish on V1's topic" contains "$WORK/pub.out" "Not authorized"
pub_sample 60 'm["battery"]["soc_pct"] = 65'
check "...which was not stored (the next sample of V1 follows 66)" wait_for 10 latest_is $V1 battery.soc_pct 65
tele $V1 >"$WORK/t4.json"
check "...and no sample of soc 11 is in V1's history" bash -c "! grep -Eq '\"soc_pct\": *11[,}]' $WORK/t4.json"
finish
