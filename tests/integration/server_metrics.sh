#!/usr/bin/env bash
# server_metrics.sh: /metrics has a request-duration histogram per route pattern (and
# route="-" for requests no route matched), campaigns and live deployments by state, build
# info and the process metrics, and passes `promtool check metrics`.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

command -v promtool >/dev/null || { bad "promtool is not installed (scripts/bootstrap installs prometheus)"; finish; }
V1=METRICSVEHICLE001
V2=METRICSVEHICLE002
make_pki $V1 $V2
start_broker
write_server_conf s "metrics.cache = 0s"
start_server s
B=$BASE_s
make_key s
check "two vehicles registered" register "$B" $V1 $V2
for i in 1 2 3; do pcurl "$B/api/v1/vehicles" -o /dev/null; done
pcurl "$B/api/v1/no-such-route" -o /dev/null 2>/dev/null || true
# the vehicles have no VCI: the campaign targets them by VIN with their seeded ECUs
rel=$(make_release "$B" 1.1.0 HW-1-011 ECU_011)
cid=$(pcurl -d "{\"name\":\"m\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$V1\",\"$V2\"]}}" "$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null || bad "start"
pcurl "$B/metrics" >"$WORK/metrics.txt"
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1
rc=$?
check "promtool check metrics: clean (exit $rc)" test "$rc" = 0 -a ! -s "$WORK/promtool.out"
[ -s "$WORK/promtool.out" ] && sed 's/^/     /' "$WORK/promtool.out" | head -20
check "the histograms, build, process and rollout metrics" python3 - "$WORK/metrics.txt" <<'PY'
import re, sys
m = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    k, v = line.rsplit(" ", 1)
    m[k] = float(v)
def series(prefix):
    return {k: v for k, v in m.items() if k.startswith(prefix)}
b = [(k, v) for k, v in series('pqota_http_request_duration_seconds_bucket{route="/api/v1/vehicles",').items()]
assert len(b) == 14, b
counts = [v for _, v in b]
assert counts == sorted(counts), b  # cumulative
n = m['pqota_http_request_duration_seconds_count{route="/api/v1/vehicles"}']
assert n >= 5 and b[-1][1] == n and 'le="+Inf"' in b[-1][0], (n, b[-1])  # 3 lists + 2 registrations
assert m['pqota_http_request_duration_seconds_sum{route="/api/v1/vehicles"}'] > 0
assert m['pqota_http_request_duration_seconds_count{route="-"}'] >= 1  # the 404
assert [k for k in m if k.startswith("pqota_build_info{version=")] , "build info"
assert m["process_resident_memory_bytes"] > 1e6 and m["process_open_fds"] > 3
assert m["process_cpu_seconds_total"] >= 0 and m["process_start_time_seconds"] > 1.7e9
assert m['pqota_campaigns{state="running"}'] == 1, series("pqota_campaigns")
d = series("pqota_deployments{")
assert sum(d.values()) == 2, d
PY
finish
