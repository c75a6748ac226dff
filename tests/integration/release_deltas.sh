#!/usr/bin/env bash
# release_deltas.sh: deltas made in the background, against a real `pqota server` whose
# delta worker is held by the test hook PQOTA_TEST_DELTA_HOLD (docs/api.md 7.10: while the
# file it names exists, the worker holds each job in state running):
#  1. POST /api/v1/releases with delta_from answers 201 at once with the delta queued; the
#     worker takes it (running) and, while it is held, the API answers (GET /releases, the
#     release, its deltas): no request waits for a delta;
#  2. a server stopped with the job running re-queues it at the next start; released, the
#     job ends ready with 100 %, its file served and applying to the base gives the image;
#  3. live "release_delta" events: queued, running, progress steps, ready;
#  4. deltas from any earlier release: a second delta of the same release from another base
#     (by version), listed beside the first; the queue is bounded: 503 with Retry-After.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki DELTAVIN000001
{
	echo "listen = 127.0.0.1:0"
	echo "tls.pki = $PKI"
	echo "data_dir = $WORK/data"
	echo "port_file = $WORK/s1.port"
	echo "log.level = info"
	echo "ratelimit.client_rps = 0"
	echo "ratelimit.global_rps = 0"
} >"$WORK/s1.conf"
export PQOTA_TEST_DELTA_HOLD="$WORK/hold"
touch "$WORK/hold"
start_server s1
B=$BASE_s1
make_key s1
upload() { # FILE: the upload id
	local up
	up=$(pcurl -d "{\"size\":$(stat -c %s "$1")}" "$B/api/v1/uploads" | jget id) || return 1
	pcurl -X PUT --data-binary @"$1" "$B/api/v1/uploads/$up?offset=0" -o /dev/null || return 1
	echo "$up"
}
release() { # VERSION FILE [EXTRA_JSON]: creates the release, its JSON in $WORK/rel.json
	local up
	up=$(upload "$2") || return 1
	pcurl -d "{\"title\":\"Gateway\",\"version\":\"$1\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$up\"${3:-}}" \
		"$B/api/v1/releases" >"$WORK/rel.json"
}
status() { # METHOD URL [curl args...]: the HTTP status, headers in $WORK/status.hdr
	local m=$1 u=$2
	shift 2
	on35 curl -s -o "$WORK/status.json" -D "$WORK/status.hdr" -w '%{http_code}' --curves X25519MLKEM768 \
		--cacert "$PKI/ca/ca.crt" -H "Authorization: Bearer $APIKEY" -X "$m" "$@" "$u"
}
# delta_is RELEASE BASE STATE: the release's delta from BASE is in STATE
delta_is() { [ "$(pcurl "$B/api/v1/releases/$1/deltas" | python3 -c 'import json,sys
print(" ".join(x["state"] for x in json.load(sys.stdin)["items"] if x["base_version"] == sys.argv[1]))' "$2")" = "$3" ]; }
pcurl -N "$B/api/v1/events" >"$WORK/stream" &
PIDS+=($!)
wait_for 10 grep -q ': connected' "$WORK/stream" || bad "the event stream did not open"

# --- 1. queued at once, made in the background ------------------------------------------------
head -c 6000000 /dev/urandom >"$WORK/a.bin"                                            # 1.0.0
{ head -c 3000000 "$WORK/a.bin"; head -c 4096 /dev/urandom; tail -c +3004097 "$WORK/a.bin"; } >"$WORK/b.bin" # 2.0.0
head -c 6000000 /dev/urandom >"$WORK/c.bin"                                            # 1.5.0
release 1.0.0 "$WORK/a.bin"
r1=$(jget id <"$WORK/rel.json")
release 1.5.0 "$WORK/c.bin"
release 2.0.0 "$WORK/b.bin" ",\"delta_from\":\"$r1\""
r2=$(jget id <"$WORK/rel.json")
check "POST /releases with delta_from: 201, the full package there, the delta queued" python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); d = r["delta"]
assert r["package"]["length"] > 0 and d["state"] in ("queued", "running") and d["sha256"] is None, r
assert r["deltas"] == [d] and d["base_version"] == "1.0.0" and d["source"] == "computed", r' "$WORK/rel.json"
check "the worker takes the job: running" wait_for 30 delta_is "$r2" 1.0.0 running
code=$(status GET "$B/api/v1/releases")
check "GET /api/v1/releases answers while the delta job runs ($code)" test "$code" = 200
check "...listing the delta as running" python3 -c 'import json,sys
r = [x for x in json.load(open(sys.argv[1]))["items"] if x["id"] == sys.argv[2]][0]
assert r["delta"]["state"] == "running" and r["deltas"][0]["progress"]["percent"] == 0, r' "$WORK/status.json" "$r2"
check "...and so do the release and its deltas" test "$(status GET "$B/api/v1/releases/$r2")" = 200 -a \
	"$(status GET "$B/api/v1/releases/$r2/deltas")" = 200

# --- 2. a restart re-queues the job; released, it ends ready ---------------------------------
stop_server s1
start_server s1
B=$BASE_s1
check "the restarted server queued the unfinished job again" grep -q "1 unfinished delta job(s) queued again" "$WORK/s1.log"
check "...and its worker took it up (running, held)" wait_for 30 delta_is "$r2" 1.0.0 running
pcurl -N "$B/api/v1/events" >"$WORK/stream2" &
PIDS+=($!)
wait_for 10 grep -q ': connected' "$WORK/stream2" || bad "the event stream did not open"
rm -f "$WORK/hold"
check "released, the job ends ready" wait_for 120 delta_is "$r2" 1.0.0 ready
pcurl "$B/api/v1/releases/$r2" >"$WORK/r2.json"
check "...100 %, a small file, no error" python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))["delta"]
assert d["progress"]["percent"] == 100 and 0 < d["length"] < 1000000 and d["error"] is None, d' "$WORK/r2.json"
pcurl "$B$(jget delta.url <"$WORK/r2.json")" -o "$WORK/d.swpg"
"$PQOTA" pack apply "$WORK/d.swpg" --base "$WORK/a.bin" -o "$WORK/applied.bin" >/dev/null
check "...served, and applied to 1.0.0 it gives 2.0.0 byte for byte" cmp -s "$WORK/applied.bin" "$WORK/b.bin"

# --- 3. live events -------------------------------------------------------------------------------
check "release_delta events: running, progress steps, then ready" python3 - "$WORK/stream2" "$r2" <<'PY'
import json, sys
evs, name = [], None
for l in open(sys.argv[1]):
    if l.startswith("event: "):
        name = l[7:].strip()
    elif l.startswith("data: ") and name == "release_delta":
        evs.append(json.loads(l[6:]))
mine = [e for e in evs if e["release_id"] == sys.argv[2]]
states = [e["state"] for e in mine]
assert states[-1] == "ready" and "running" in states, states
steps = [e["progress"]["done"] for e in mine if e["state"] == "running" and e["progress"]["total"]]
assert len(steps) >= 2 and steps == sorted(steps), steps
PY

# --- 4. deltas from any earlier release; a bounded queue -----------------------------------------
touch "$WORK/hold"
code=$(status POST "$B/api/v1/releases/$r2/deltas" -d '{"from":"1.5.0"}')
check "POST /releases/{id}/deltas from 1.5.0 (a version): 202 ($code)" test "$code" = 202
check "...the job's JSON: queued, computed" python3 -c 'import json,sys
d = json.load(open(sys.argv[1])); assert d["state"] == "queued" and d["base_version"] == "1.5.0" and d["source"] == "computed", d' "$WORK/status.json"
check "...listed beside the first" python3 -c 'import json,sys
r = json.load(sys.stdin); assert [(d["base_version"], d["state"]) for d in r["deltas"]][0] == ("1.0.0", "ready") and len(r["deltas"]) == 2, r' \
	< <(pcurl "$B/api/v1/releases/$r2")
check "...running (held)" wait_for 30 delta_is "$r2" 1.5.0 running
# fill the queue: 15 more jobs (small releases 3.0.0 .. 3.0.14 from a small 0.1.0), then
# one too many
head -c 1000 /dev/urandom >"$WORK/s0.bin"
head -c 1000 /dev/urandom >"$WORK/s.bin"
release 0.1.0 "$WORK/s0.bin"
for i in $(seq 0 14); do
	release "3.0.$i" "$WORK/s.bin" ",\"delta_from\":\"0.1.0\"" || bad "release 3.0.$i"
	last=$(jget id <"$WORK/rel.json")
done
code=$(status POST "$B/api/v1/releases/$last/deltas" -d '{"from":"1.5.0"}')
check "the 17th delta job is refused: 503 ($code)" test "$code" = 503
check "...with Retry-After" grep -qi '^Retry-After: [0-9]' "$WORK/status.hdr"
check "...saying the queue is full" contains "$WORK/status.json" "the delta queue is full"
rm -f "$WORK/hold"
all_ready() { [ "$(pcurl "$B/api/v1/releases?limit=100" | python3 -c 'import json,sys
print(" ".join(sorted({d["state"] for r in json.load(sys.stdin)["items"] for d in r["deltas"]})))')" = ready ]; }
check "released, every job ends ready" wait_for 120 all_ready
stop_server s1
finish
