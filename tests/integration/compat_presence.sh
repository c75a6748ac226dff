#!/usr/bin/env bash
# compat_presence.sh: the presence of vehicles that poll over REST (docs/api.md 17.4) and the
# /metrics fleet gauges (9.2), against a real server, a real mosquitto and a real agent:
#  1. a check marks a polling vehicle online until 3 poll intervals (compat.poll_interval)
#     have passed since it: the fleet list, the vehicle view and pqota_vehicles_online say
#     online, then offline once that time is past (moved into the past in the store, not
#     waited for: the engine tick sweeps); a new check brings it back;
#  2. MQTT presence is unchanged: an agent online over MQTT that also polls keeps the
#     session's presence (no expiry) when the polled ones expire, and goes offline with its
#     session (the last will);
#  3. /metrics reads the fleet gauges from the store at most once per metrics.cache in a
#     process whatever the scrape rate (pqota_metrics_fleet_reads_total; a change in the
#     fleet shows after the cache, not before); public by default, and with
#     metrics.require_key only for an API key (401 without one, with a vehicle certificate
#     alone or with a bad key).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

V1=PRESENCEPOLL0001 # polls over HTTPS
V3=PRESENCEAGENT003 # a real agent (MQTT)
make_pki $V1 $V3
start_broker
write_server_conf s1 "compat.poll_interval = 20s" "metrics.cache = 0s"
start_server s1
B=$BASE_s1
CA="$PKI/ca/ca.crt"
make_key s1
check "vehicles registered" register "$B" $V1 $V3

# sql DB QUERY: runs it on the server's SQLite store, prints the first column of each row
sql() {
	python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
r = c.execute(sys.argv[2]).fetchall()
c.commit()
print(" ".join(str(x[0]) for x in r))' "$1" "$2"
}
DB="$WORK/data-s1/pqota.db"
listed() { pcurl "$B/api/v1/vehicles?vin_prefix=$1" | jget items.0.online; } # the fleet list
viewed() { pcurl "$B/api/v1/vehicles/$1" | jget online; }                    # the vehicle view
online_is() { [ "$(listed "$1")" = "$2" ] && [ "$(viewed "$1")" = "$2" ]; }   # VIN True|False
metric() { pcurl "$B/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
poll() { st "veh:$1" GET "$B/api/v1/ota/check"; }

# --- 1. a polling vehicle's presence expires ---------------------------------------------------
check "$V1 is offline before its first check" online_is $V1 False
check "/metrics is public by default" test "$(st - GET "$B/metrics")" = 200
check "...no vehicle online" test "$(metric pqota_vehicles_online)" = 0
check "$V1 checks: 200" test "$(poll $V1)" = 200
check "...told to check again in 20 s (compat.poll_interval)" jtrue "$WORK/r.json" "d['poll_after_s'] == 20"
check "...online in the fleet list and the vehicle view" online_is $V1 True
check "...and in /metrics" test "$(metric pqota_vehicles_online)" = 1
check "...until 3 intervals after the check" \
	test "$(sql "$DB" "SELECT online_until_ms - last_seen_ms FROM vehicles WHERE vin = '$V1'")" = 60000
# the vehicle stops polling and the window passes (moved into the past, not waited for)
past() { sql "$DB" "UPDATE vehicles SET online_until_ms = CASE WHEN online_until_ms > 0 THEN online_until_ms - 61000 ELSE 0 END, last_seen_ms = last_seen_ms - 61000 WHERE vin = '$1'" >/dev/null; }
past $V1
check "...past it, the engine tick marks it offline: fleet list and vehicle view" wait_for 10 online_is $V1 False
check "...and /metrics" test "$(metric pqota_vehicles_online)" = 0
check "a new check: 200" test "$(poll $V1)" = 200
check "...online again" online_is $V1 True

# --- 2. MQTT presence has no expiry ------------------------------------------------------------
check "the trusted Uptane roots are served" provision $V3
start_agent $V3
check "$V3 comes online over MQTT" wait_for 30 online_is $V3 True
check "$V3 also checks over REST: 200" test "$(poll $V3)" = 200
check "...its presence stays the MQTT session's: no expiry" \
	test "$(sql "$DB" "SELECT online_until_ms FROM vehicles WHERE vin = '$V3'")" = 0
past $V1
past $V3
check "$V1's window passed: offline" wait_for 10 online_is $V1 False
check "...$V3, online over MQTT, is still online after that sweep" online_is $V3 True
check ".../metrics counts it alone" test "$(metric pqota_vehicles_online)" = 1
pid=$(eval echo "\$AGENT_$V3")
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
check "$V3's session ends (last will): offline" wait_for 20 online_is $V3 False

# --- 3. the fleet gauges are cached; a key may be required -------------------------------------
reads() { metric pqota_metrics_fleet_reads_total; }
r0=$(reads)
r1=$(reads)
check "metrics.cache = 0s: each scrape reads the gauges ($r0, $r1)" test "$r1" = $((r0 + 1))
write_server_conf s2 "metrics.cache = 1h" "metrics.require_key = true"
sed -i '/^mqtt\.broker/d' "$WORK/s2.conf"
start_server s2
B=$BASE_s2
make_key s2
VIEWKEY=$("$PQOTA" server --config "$WORK/s2.conf" apikey create --role viewer --name view 2>/dev/null)
check "$V1 registered on the second server" register "$B" $V1
check "metrics.require_key: no key 401" test "$(st - GET "$B/metrics")" = 401
check "...(unauthenticated)" jtrue "$WORK/r.json" "d['error']['code'] == 'unauthenticated'"
check "...a vehicle certificate alone: 401" test "$(st veh:$V1 GET "$B/metrics")" = 401
check "...a bad key: 401" test "$(st pqk_not_a_key_0123456789 GET "$B/metrics")" = 401
check "...a viewer key: 200" test "$(st "$VIEWKEY" GET "$B/metrics")" = 200
check "...one read of the gauges, no vehicle online" \
	bash -c "grep -qx 'pqota_metrics_fleet_reads_total 1' '$WORK/r.json' && grep -qx 'pqota_vehicles_online 0' '$WORK/r.json'"
check "$V1 checks: online" test "$(poll $V1)" = 200
for i in 1 2 3 4 5; do st "$VIEWKEY" GET "$B/metrics" >/dev/null; done
check "five scrapes later: still the one read, its gauges (metrics.cache = 1h)" \
	bash -c "grep -qx 'pqota_metrics_fleet_reads_total 1' '$WORK/r.json' && grep -qx 'pqota_vehicles_online 0' '$WORK/r.json'"
check "...while the fleet list has $V1 online" online_is $V1 True
finish
