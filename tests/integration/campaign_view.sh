#!/usr/bin/env bash
# campaign_view.sh: the campaign views of the operator console against real processes
# (mosquitto, `pqota server`, scripted vehicles of pqota-fleet):
#  1. GET /api/v1/campaigns/{id}/deployments: a page ordered by VIN with each deployment's
#     state, latest cause (a failure's message from the vehicle) and targets; the state
#     filter (one state, a list; an unknown state is 400), paging, unknown parameters 400;
#  2. GET /api/v1/campaigns/{id}/progress: the counts over time replayed from the stored
#     transitions, ending at the current counts.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

ok1=VIEWOK0000001
ok2=VIEWOK0000002
fdl=VIEWFAILDL001
rb=VIEWROLLBK001
all=($ok1 $ok2 $fdl $rb)
make_pki "${all[@]}"
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicles registered" register "$B" "${all[@]}"
rel=$(make_release "$B" 1.1.0 HW-1-001 ECU_001) || { bad "release"; finish; }
# status CODE of a GET
status() { on35 curl -s -o "$WORK/status.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	-H "Authorization: Bearer $APIKEY" "$1"; }

cid=$(pcurl -d "{\"name\":\"view\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$ok1\",\"$ok2\",\"$fdl\",\"$rb\"]},
\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}" "$B/api/v1/campaigns" | jget id)
pcurl "$B/api/v1/campaigns/$cid/progress" >"$WORK/p0.json"
check "a draft's progress has no points and no deployments" python3 -c 'import json,sys
p = json.load(open(sys.argv[1])); assert p["points"] == [] and p["total"] == 0, p' "$WORK/p0.json"
pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null
list() { local IFS=,; echo "$*"; }
"$FLEET" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --server "$B" --vins "$(list "${all[@]}")" \
	--behavior accept --behavior-for "$fdl=fail-download" --behavior-for "$rb=rollback" \
	--duration 60 --log "$WORK/fleet.log" >"$WORK/fleet.out" 2>&1 &
PIDS+=($!)
done1() { [ "$(pcurl "$B/api/v1/campaigns/$cid" | jget state)" = completed ]; }
check "the campaign completes" wait_for 60 done1

# --- 1. deployments ---------------------------------------------------------------------------
pcurl "$B/api/v1/campaigns/$cid/deployments" >"$WORK/d-all.json"
check "every deployment, ordered by VIN, with state, phase, cause and targets" python3 - "$WORK/d-all.json" "$rel" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); rel = sys.argv[2]
vins = [i["vin"] for i in d["items"]]
assert d["total"] == 4 and vins == sorted(vins) and len(vins) == 4, d
for i in d["items"]:
    assert set(i) == {"vin", "state", "phase", "error_code", "updated_ms", "cause", "targets"}, i
    assert i["phase"] == 1 and i["updated_ms"] > 0, i
    t = i["targets"]
    assert len(t) == 1 and t[0]["ecu_id"] == "ECU_001" and t[0]["release_id"] == rel, t
    assert t[0]["package"] == "full" and len(t[0]["sha256"]) == 64 and t[0]["size"] > 0, t
ok = [i for i in d["items"] if i["state"] == "completed"]
assert len(ok) == 2 and all(i["cause"].startswith("vci_report ") for i in ok), ok
PY
pcurl "$B/api/v1/campaigns/$cid/deployments?state=failed" >"$WORK/d-failed.json"
check "?state=failed: only $fdl, its cause the vehicle's failure message" python3 - "$WORK/d-failed.json" "$fdl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["total"] == 1 and [i["vin"] for i in d["items"]] == [sys.argv[2]], d
i = d["items"][0]
assert i["cause"].startswith("ota_download_failed ") and ": " in i["cause"], i
assert i["error_code"] != "", i
print("     cause:", i["cause"], "| error_code:", i["error_code"])
PY
pcurl "$B/api/v1/campaigns/$cid/deployments?state=failed,rolled_back&limit=1&offset=1" >"$WORK/d-two.json"
check "?state=failed,rolled_back pages: total 2, the second by VIN ($rb)" python3 - "$WORK/d-two.json" "$rb" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["total"] == 2 and d["limit"] == 1 and d["offset"] == 1, d
assert [i["vin"] for i in d["items"]] == [sys.argv[2]] and d["items"][0]["state"] == "rolled_back", d
assert d["items"][0]["cause"].startswith("ota_rollback "), d
PY
code=$(status "$B/api/v1/campaigns/$cid/deployments?state=broken")
check "an unknown state is 400 (got $code)" test "$code" = 400
check "...naming the state" grep -q "'broken' is not a deployment state" "$WORK/status.json"
code=$(status "$B/api/v1/campaigns/$cid/deployments?states=failed")
check "an unknown parameter is 400 (got $code)" test "$code" = 400
code=$(status "$B/api/v1/campaigns/$cid/deployments?state=failed&state=completed")
check "a repeated parameter is 400 (got $code)" test "$code" = 400
code=$(status "$B/api/v1/campaigns/00000000-0000-4000-8000-000000000000/deployments")
check "an unknown campaign is 404 (got $code)" test "$code" = 404
code=$(status "$B/api/v1/campaigns?bogus=1")
check "the campaign list refuses an unknown parameter (got $code)" test "$code" = 400
code=$(status "$B/api/v1/campaigns/$cid/vehicles/$ok1?x=1")
check "one deployment refuses a query parameter (got $code)" test "$code" = 400

# --- 2. progress --------------------------------------------------------------------------------
pcurl "$B/api/v1/campaigns/$cid/progress" >"$WORK/p.json"
check "progress: at most 200 points in time order, replayed up to the current counts" python3 - "$WORK/p.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
pts = p["points"]
assert 2 <= len(pts) <= 200, len(pts)
ts = [x["at_ms"] for x in pts]
assert ts == sorted(ts) and ts[0] == p["from_ms"] and ts[-1] == p["to_ms"], (ts[:3], p["from_ms"], p["to_ms"])
assert pts[-1]["counts"] == p["counts"], (pts[-1]["counts"], p["counts"])
c = p["counts"]
assert p["total"] == 4 and c["completed"] == 2 and c["failed"] == 1 and c["rolled_back"] == 1, c
assert all(sum(x["counts"].values()) == 4 for x in pts), "every point counts the 4 deployments"
assert pts[0]["counts"]["completed"] == 0 and len(pts[0]["counts"]) == 14, pts[0]
# the states the vehicles passed through show up in between
seen = {s for x in pts for s, n in x["counts"].items() if n}
print("     %d points; states seen: %s" % (len(pts), " ".join(sorted(seen))))
PY
stop_server s1
finish
