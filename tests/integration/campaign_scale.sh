#!/usr/bin/env bash
# campaign_scale.sh: two pqota server instances on one PostgreSQL database, one mosquitto
# broker, 200 scripted vehicles (one pqota-fleet process, one MQTT connection and client
# certificate each). The instances share the vehicles' messages through an MQTT 5 shared
# subscription and claim campaign work in the store (FOR UPDATE SKIP LOCKED). Checks: the
# 200-vehicle campaign completes, both instances did part of the work, and no vehicle was
# notified twice. Prints notifications/s and the campaign's duration.
# Runs under tests/store/pg-fixture.sh (a throwaway PostgreSQL server); re-executes itself
# there when started directly.
if [ -z "${PQOTA_TEST_PG:-}" ]; then
	exec bash "$PQOTA_SRC/tests/store/pg-fixture.sh" bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

# 200 vehicles; 50 in the sanitizer build (make test-asan sets ASAN_OPTIONS), where every
# process runs several times slower: the same code paths, checked for memory errors
N=${SCALE_VEHICLES:-200}
[ -n "${ASAN_OPTIONS:-}" ] && N=${SCALE_VEHICLES:-50}
vins=()
for i in $(seq 1 "$N"); do vins+=("$(printf 'SCALE%011d' "$i")"); done
make_pki "${vins[@]}"
start_broker
for s in s1 s2; do
	write_server_conf "$s" "store.backend = postgres" "store.url = \"$PQOTA_TEST_PG\"" \
		"mqtt.shared_group = pqota" "data_dir = $WORK/shared-data" "engine.tick = 100ms" "engine.batch = 20"
	# (one data directory for both, packages and token key: a shared volume in production)
done
start_server s1
start_server s2
check "both instances run (ports $(cat "$WORK/s1.port"), $(cat "$WORK/s2.port"))" test -n "$BASE_s1" -a -n "$BASE_s2"
check "both joined the shared subscription" grep -q 'shared group member: $share/pqota/' "$WORK/s1.log" "$WORK/s2.log"
make_key s1

# register the vehicles through s1 in one curl process (one connection); one python3 writes
# every registration and the curl configuration
printf '%s\n' "${vins[@]}" >"$WORK/vins.txt"
python3 - "$WORK" "$PKI" "$BASE_s1" "$APIKEY" <<'PY'
import json, sys
work, pki, base, key = sys.argv[1:5]
blocks = []
for vin in open(work + "/vins.txt").read().split():
    d = pki + "/vehicles/" + vin
    r = lambda f: open(d + "/" + f).read()
    with open("%s/reg-%s.json" % (work, vin), "w") as f:
        print(json.dumps({"vin": vin, "model": "scale-suv", "certificate": r("client.crt"),
                          "kem_x25519_pub": r("kem-x25519.pub"),
                          "kem_mlkem768_pub": r("kem-ml-kem-768.pub"), "seed_ecus": True}), file=f)
    # (options before "next" apply to one URL only: every block repeats them)
    blocks.append('url = "%s/api/v1/vehicles"\ndata = "@%s/reg-%s.json"\noutput = "/dev/null"\n'
                  'write-out = "%%{http_code}\\n"\ncacert = "%s/ca/ca.crt"\ncurves = X25519MLKEM768\n'
                  'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n'
                  % (base, work, vin, pki, key))
open(work + "/reg.curl", "w").write("next\n".join(blocks))
PY
on35 curl -sS -K "$WORK/reg.curl" >"$WORK/reg.codes" 2>&1 || true
check "$N vehicles registered (201)" test "$(grep -c '^201$' "$WORK/reg.codes")" = "$N"
rel=$(make_release "$BASE_s1" 1.1.0 HW-1-001 ECU_001)
check "a release" test -n "$rel"

"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$BASE_s1" --vin-file "$WORK/vins.txt" \
	--behavior accept --duration 150 --log "$WORK/fleet.log" >"$WORK/fleet.out" 2>&1 &
FL=$!
PIDS+=($FL)
online() { [ "$(pcurl "$BASE_s2/api/v1/vehicles?online=true&limit=1" | jget total)" = "$N" ]; }
check "all $N vehicles are online (wake-ups handled by either instance)" wait_for 60 online
vci_done() { [ "$(grep -c '"event":"published".*"msg_type":"vci_report"' "$WORK/fleet.log")" -ge "$N" ]; }
check "every vehicle sent its VCI" wait_for 30 vci_done
# ...and the server stored them all before the campaign starts (read in the database)
PSQL=$(command -v psql || true)
[ -n "$PSQL" ] || for PSQL in /usr/lib/postgresql/*/bin/psql; do :; done # (the newest)
vci_stored() {
	[ "$("$PSQL" "$PQOTA_TEST_PG" -tAX -c 'SELECT count(*) FROM vehicles WHERE last_vci_ms > 0')" = "$N" ]
}
check "the server stored every VCI" wait_for 30 vci_stored

c=$(pcurl -d "{\"name\":\"scale\",\"release_ids\":[\"$rel\"],\"target\":{\"model\":\"scale-suv\"}}" \
	"$BASE_s1/api/v1/campaigns" | jget id)
t0=$(date +%s%3N)
n=$(pcurl -X POST "$BASE_s2/api/v1/campaigns/$c/start" | jget total)
check "the campaign targets $N vehicles (got $n)" test "$n" = "$N"
done_c() { [ "$(pcurl "$BASE_s1/api/v1/campaigns/$c" | jget state)" = completed ]; }
check "the $N-vehicle campaign completes" wait_for 120 done_c || pcurl "$BASE_s1/api/v1/campaigns/$c" | head -c 3000
t1=$(date +%s%3N)
pcurl "$BASE_s1/api/v1/campaigns/$c" >"$WORK/campaign.json"
completed=$(jget counts.completed <"$WORK/campaign.json")
check "all $N deployments completed (got $completed)" test "$completed" = "$N"

python3 - "$WORK/fleet.log" "$N" "$t0" >"$WORK/notify.txt" <<'PY'
import json, sys, collections, datetime
n = collections.Counter()
times = []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "received" and e.get("msg_type") == "ota_campaign":
        n[e["vin"]] += 1
        t = datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        times.append(t.timestamp() * 1000)
twice = sorted(v for v, c in n.items() if c > 1)
span = (max(times) - int(sys.argv[3])) / 1000 if times else 0
print(len(n), len(twice), ",".join(twice[:5]) or "-", "%.2f" % span)
PY
read -r got twice first_twice span <"$WORK/notify.txt" || true
check "every vehicle received the campaign ($got of $N)" test "$got" = "$N"
check "no vehicle was notified twice ($twice twice)" test "$twice" = 0
m1=$(pcurl "$BASE_s1/metrics" | awk '$1 == "pqota_campaign_notified_total" {print $2}')
m2=$(pcurl "$BASE_s2/metrics" | awk '$1 == "pqota_campaign_notified_total" {print $2}')
echo "notifications: instance s1 ${m1:-?}, instance s2 ${m2:-?}"
check "the instances' notifications add up to $N" test "$((m1 + m2))" = "$N"
check "both instances notified vehicles (split $m1 / $m2)" test "$m1" -gt 0 -a "$m2" -gt 0
h1=$(pcurl "$BASE_s1/metrics" | awk '$1 == "pqota_mqtt_received_total" {print $2}')
h2=$(pcurl "$BASE_s2/metrics" | awk '$1 == "pqota_mqtt_received_total" {print $2}')
check "both instances received vehicle messages through the shared subscription ($h1 / $h2)" test "$h1" -gt 0 -a "$h2" -gt 0
dur=$(((t1 - t0)))
python3 -c "import sys; n,s,d=int(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]); print('figures: %d notifications in %.2f s after start: %.0f notifications/s; campaign start to completed (all %d downloaded, installed, reported): %.2f s' % (n, s, n/s if s>0 else 0, n, d/1000))" "$N" "$span" "$dur"
stop_server s1
stop_server s2
finish
