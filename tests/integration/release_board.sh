#!/usr/bin/env bash
# release_board.sh: the notice board's server side against a real `pqota server`:
#  1. an operator-supplied delta (`pqota pack delta`, uploaded like an image) becomes the
#     release's ready delta once the delta worker has applied it to the base release's
#     image and got the new image byte for byte: re-written under the server's header (ECU,
#     type, versions), encrypted, "source":"uploaded"; a delta against another base, one
#     whose descriptor names another new image (refused from its descriptor, before
#     decoding), or a file that is not a delta, is 422 delta_mismatch and nothing is
#     stored; a delta whose descriptor is right but whose data does not give the image is
#     accepted, then ends "failed" with the reason and is never offered to a vehicle (a
#     campaign gets the full package) until a good one replaces it; stale scratch files in
#     DATA/tmp/ are removed at start-up;
#  2. GET /api/v1/releases filters: q (case-insensitive substring), ecu_id, unknown or
#     repeated parameters refused;
#  3. the live release events (created, deleted) and the campaign events of operator
#     actions on the event stream.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki BOARDVIN000001
{
	echo "listen = 127.0.0.1:0"
	echo "tls.pki = $PKI"
	echo "data_dir = $WORK/data"
	echo "port_file = $WORK/s1.port"
	echo "log.level = info"
	echo "ratelimit.client_rps = 0"
	echo "ratelimit.global_rps = 0"
} >"$WORK/s1.conf"
# a crash's leftover in the scratch directory (an hour old) and a fresh file (it may be
# another instance's work in progress)
mkdir -p "$WORK/data/tmp"
echo x >"$WORK/data/tmp/delta-dead.img.tmp.4242"
touch -d '1 hour ago' "$WORK/data/tmp/delta-dead.img.tmp.4242"
echo x >"$WORK/data/tmp/delta-busy.img.tmp.4343"
start_server s1
B=$BASE_s1
check "start-up removed the stale scratch file in DATA/tmp/" test ! -e "$WORK/data/tmp/delta-dead.img.tmp.4242"
check "...and kept the fresh one" test -e "$WORK/data/tmp/delta-busy.img.tmp.4343"
rm -f "$WORK/data/tmp/delta-busy.img.tmp.4343"
make_key s1
check "vehicle registered" register "$B" BOARDVIN000001
status() { # METHOD URL [curl args...]: the HTTP status, the body in $WORK/status.json
	local m=$1 u=$2
	shift 2
	on35 curl -s -o "$WORK/status.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
		-H "Authorization: Bearer $APIKEY" -X "$m" "$@" "$u"
}
upload() { # FILE: the upload id
	local up
	up=$(pcurl -d "{\"size\":$(stat -c %s "$1")}" "$B/api/v1/uploads" | jget id) || return 1
	pcurl -X PUT --data-binary @"$1" "$B/api/v1/uploads/$up?offset=0" -o /dev/null || return 1
	echo "$up"
}
pcurl -N "$B/api/v1/events" >"$WORK/stream" &
PIDS+=($!)
wait_for 10 grep -q ': connected' "$WORK/stream" || bad "the event stream did not open"

# --- 1. an operator-supplied delta ------------------------------------------------------------
head -c 300000 /dev/urandom >"$WORK/a.bin"                               # 1.0.0, the base
{ head -c 200000 "$WORK/a.bin"; head -c 50000 /dev/urandom; } >"$WORK/b.bin" # 1.1.0
head -c 300000 /dev/urandom >"$WORK/c.bin"                               # another base
{ head -c 249999 "$WORK/b.bin"; printf 'Z'; } >"$WORK/d.bin" # another 1.1.0, as long as b
up=$(upload "$WORK/a.bin")
base=$(pcurl -d "{\"title\":\"Brake ECU app\",\"version\":\"1.0.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$up\"}" \
	"$B/api/v1/releases" | jget id)
check "the base release 1.0.0" test -n "$base"
# the same version again is refused before anything is used up: the upload stays usable
dup=$(upload "$WORK/a.bin")
code=$(status POST "$B/api/v1/releases" -d "{\"title\":\"again\",\"version\":\"1.0.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$dup\"}")
check "a release of an existing version is 409 conflict ($code)" test "$code" = 409
check "...saying so at once, the upload kept" contains "$WORK/status.json" "exists already (the upload is kept)"
check "...and the upload is still complete on the server" test "$(status GET "$B/api/v1/uploads/$dup")" = 200
check "...so it makes another version's release" test "$(status POST "$B/api/v1/releases" \
	-d "{\"title\":\"again\",\"version\":\"1.0.1\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$dup\"}")" = 201
check "...(removed again: what follows counts releases)" \
	test "$(status DELETE "$B/api/v1/releases/$(jget id <"$WORK/status.json")")" = 204
"$PQOTA" pack delta --from "$WORK/a.bin" --to "$WORK/b.bin" -o "$WORK/good.swpg" >/dev/null
"$PQOTA" pack delta --from "$WORK/c.bin" --to "$WORK/b.bin" -o "$WORK/other.swpg" >/dev/null
"$PQOTA" pack delta --from "$WORK/a.bin" --to "$WORK/c.bin" -o "$WORK/wrongout.swpg" >/dev/null
"$PQOTA" pack delta --from "$WORK/a.bin" --to "$WORK/d.bin" -o "$WORK/samesize.swpg" >/dev/null
full=$(upload "$WORK/b.bin")
spec() { echo "{\"title\":\"Brake ECU app\",\"version\":\"1.1.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$full\",\"delta_from\":\"$base\",\"delta_upload_id\":\"$1\"}"; }
n_files() { find "$WORK/data/files" -type f | wc -l; }
# delta_state RELEASE [BASE_VERSION]: the state of the release's delta (from that base)
delta_state() { pcurl "$B/api/v1/releases/$1/deltas" | python3 -c 'import json,sys
d = [x for x in json.load(sys.stdin)["items"] if len(sys.argv) < 2 or x["base_version"] == sys.argv[1]]
print(d[-1]["state"] if d else "none")' ${2:+"$2"}; }
delta_is() { [ "$(delta_state "$1" "$2")" = "$3" ]; } # RELEASE BASE STATE
files0=$(n_files)
for pair in "other.swpg=made against another base: its descriptor names a base of 300000 bytes" \
	"wrongout.swpg=made for another image: its descriptor names a target of 300000 bytes" \
	"samesize.swpg=made for another image: its descriptor names a target of 250000 bytes with SHA-256 $(sha256sum <"$WORK/d.bin" | cut -d' ' -f1)" \
	"a.bin=not an SWPG package"; do
	f=${pair%%=*}
	d=$(upload "$WORK/$f")
	code=$(status POST "$B/api/v1/releases" -d "$(spec "$d")")
	check "delta $f: 422 (got $code)" test "$code" = 422
	check "...delta_mismatch: ${pair#*=}" python3 -c 'import json,sys
e = json.load(open(sys.argv[1]))["error"]; assert e["code"] == "delta_mismatch" and sys.argv[2] in e["message"], e' \
		"$WORK/status.json" "${pair#*=}"
	sed 's/^/     /' "$WORK/status.json"; echo
	check "...and the upload is kept" test "$(status GET "$B/api/v1/uploads/$d")" = 200
done
check "nothing was stored: no release 1.1.0, no new file" \
	test "$(pcurl "$B/api/v1/releases" | jget total)" = 1 -a "$(n_files)" = "$files0"
check "...and nothing was left in the scratch directory" test -z "$(ls -A "$WORK/data/tmp")"
code=$(status POST "$B/api/v1/releases" -d "{\"title\":\"x\",\"version\":\"1.1.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$full\",\"delta_upload_id\":\"$full\"}")
check "delta_upload_id without delta_from is 400 (got $code)" test "$code" = 400
d=$(upload "$WORK/good.swpg")
pcurl -d "$(spec "$d")" "$B/api/v1/releases" >"$WORK/rel.json"
check "the operator's delta is accepted: 201, delta.source uploaded, queued for its check" python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); d = r["delta"]
assert d["source"] == "uploaded" and d["base_version"] == "1.0.0" and d["state"] in ("queued", "running", "ready"), r' "$WORK/rel.json"
rel=$(jget id <"$WORK/rel.json")
check "...checked in the background: ready" wait_for 60 delta_is "$rel" 1.0.0 ready
dsha=$(pcurl "$B/api/v1/releases/$rel" | jget delta.sha256)
check "...with its length and 100 %" python3 -c 'import json,sys
d = json.load(sys.stdin)["delta"]; assert d["length"] > 0 and d["progress"]["percent"] == 100 and d["error"] is None, d' \
	< <(pcurl "$B/api/v1/releases/$rel")
check "...both uploads are used up" test "$(status GET "$B/api/v1/uploads/$d")" = 404 -a "$(status GET "$B/api/v1/uploads/$full")" = 404
pcurl "$B/packages/$dsha" -o "$WORK/served.swpg"
check "the served delta's SHA-256 is the release's" test "$(sha256sum <"$WORK/served.swpg" | cut -d' ' -f1)" = "$dsha"
"$PQOTA" pack inspect "$WORK/served.swpg" >"$WORK/inspect.txt"
check "...re-written under the server's header: ECU_011, APP 1.1.0 from base 1.0.0" python3 - "$WORK/served.swpg" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(64)
ecu, typ, comp = struct.unpack_from("<HBB", h, 4)
ver, base = tuple(h[16:19]), tuple(h[32:35])
assert (ecu, typ, comp, ver, base) == (0x1011, 1, 3, (1, 1, 0), (1, 0, 0)), (hex(ecu), typ, comp, ver, base)
PY
"$PQOTA" pack apply "$WORK/served.swpg" --base "$WORK/a.bin" -o "$WORK/applied.bin" >/dev/null
check "...and applied to 1.0.0 it gives 1.1.0 byte for byte" cmp -s "$WORK/applied.bin" "$WORK/b.bin"
check "the delta package has its encrypted copy (a package key)" python3 -c 'import sqlite3, sys, glob
db = sqlite3.connect(glob.glob(sys.argv[1] + "/*.db")[0])
n = db.execute("SELECT COUNT(*) FROM package_keys WHERE file_sha256 = ?", (sys.argv[2],)).fetchone()[0]
assert n == 1, n' "$WORK/data" "$dsha"
check "GET /api/v1/releases/{id} says source uploaded" test "$(pcurl "$B/api/v1/releases/$rel" | jget delta.source)" = uploaded
# the same release again is refused (409) before its delta is looked at: no delta file is
# added
n_deltas() { python3 -c 'import glob, sys
n = 0
for f in glob.glob(sys.argv[1] + "/*"):
    h = open(f, "rb").read(8)
    n += len(h) == 8 and h[:4] in (b"SWPG", b"GPWS") and h[7] == 3
print(n)' "$WORK/data/files"; }
deltas0=$(n_deltas)
t0=$(date +%s)
wait_for 3 sh -c '[ "$(date +%s)" -gt "$1" ]' _ "$t0"
full=$(upload "$WORK/b.bin")
d=$(upload "$WORK/good.swpg")
code=$(status POST "$B/api/v1/releases" -d "$(spec "$d")")
check "the same release again is 409 (got $code)" test "$code" = 409
check "...and no delta file was added ($deltas0 delta packages, now $(n_deltas))" test "$(n_deltas)" = "$deltas0"
# a delta's base must be a release for the same hardware (and software type)
up=$(upload "$WORK/c.bin")
code=$(status POST "$B/api/v1/releases" -d "{\"title\":\"Door\",\"version\":\"9.0.0\",\"hardware_id\":\"HW-2-021\",\"ecu_id\":\"ECU_021\",\"upload_id\":\"$up\",\"delta_from\":\"$base\"}")
check "delta_from naming another hardware's release is 400 ($code)" test "$code" = 400
check "...saying why" contains "$WORK/status.json" "is for HW-1-011 APP, not HW-2-021 APP"
check "...and the upload is kept" test "$(status GET "$B/api/v1/uploads/$up")" = 200
# a server-built delta says computed
pcurl -d "{\"title\":\"Brake ECU cal\",\"version\":\"2.0.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$up\",\"delta_from\":\"$base\"}" \
	"$B/api/v1/releases" >"$WORK/rel2.json"
check "a delta the server computes says source computed" test "$(jget delta.source <"$WORK/rel2.json")" = computed
check "...and is made in the background: ready" wait_for 60 delta_is "$(jget id <"$WORK/rel2.json")" 1.0.0 ready
# a delta whose descriptor is right but whose data is not: accepted, then failed by the
# worker with the reason, never offered; a good one replaces it
{ head -c 200000 "$WORK/a.bin"; head -c 50000 /dev/urandom; } >"$WORK/e.bin" # 1.2.0
"$PQOTA" pack delta --from "$WORK/a.bin" --to "$WORK/e.bin" -o "$WORK/e-good.swpg" >/dev/null
python3 - "$WORK/e-good.swpg" "$WORK/e-bad.swpg" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-20] ^= 0xff  # in the compressed data, after the descriptor
open(sys.argv[2], "wb").write(b)
PY
full=$(upload "$WORK/e.bin")
d=$(upload "$WORK/e-bad.swpg")
code=$(status POST "$B/api/v1/releases" -d "{\"title\":\"Brake ECU app\",\"version\":\"1.2.0\",\"hardware_id\":\"HW-1-011\",\"ecu_id\":\"ECU_011\",\"upload_id\":\"$full\",\"delta_from\":\"1.0.0\",\"delta_upload_id\":\"$d\"}")
check "a damaged delta with a right descriptor is accepted (201, got $code)" test "$code" = 201
rel3=$(jget id <"$WORK/status.json")
check "...then fails its check in the background" wait_for 60 delta_is "$rel3" 1.0.0 failed
check "...saying why, with no file" python3 -c 'import json,sys
d = json.load(sys.stdin)["items"][0]
assert "does not apply" in d["error"] and d["sha256"] is None and d["url"] is None, d' \
	< <(pcurl "$B/api/v1/releases/$rel3/deltas")
cid3=$(pcurl -d "{\"name\":\"failed delta\",\"release_ids\":[\"$rel3\"],\"target\":{\"vins\":[\"BOARDVIN000001\"]}}" "$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$cid3/start" -o /dev/null
check "...and never offered: the vehicle on 1.0.0 is given the full package" python3 -c 'import sqlite3, sys, glob
db = sqlite3.connect(glob.glob(sys.argv[1] + "/*.db")[0])
rows = db.execute("SELECT package FROM deployment_targets WHERE campaign_id = ?", (sys.argv[2],)).fetchall()
assert rows == [("full",)], rows' "$WORK/data" "$cid3"
pcurl -X POST "$B/api/v1/campaigns/$cid3/cancel" -o /dev/null
d=$(upload "$WORK/e-good.swpg")
code=$(status POST "$B/api/v1/releases/$rel3/deltas" -d "{\"from\":\"1.0.0\",\"upload_id\":\"$d\"}")
check "a good delta replaces the failed one: 202 (got $code)" test "$code" = 202
check "...and becomes ready" wait_for 60 delta_is "$rel3" 1.0.0 ready
code=$(status POST "$B/api/v1/releases/$rel3/deltas" -d '{"from":"1.0.0"}')
check "a second delta from the same base is 409 (got $code)" test "$code" = 409
code=$(status POST "$B/api/v1/releases/$rel3/deltas" -d '{"from":"1.2.0"}')
check "a delta from itself (not an earlier version) is 400 (got $code)" test "$code" = 400
code=$(status POST "$B/api/v1/releases/$rel3/deltas" -d '{"from":"0.9.0"}')
check "a delta from an unknown version is 400 (got $code)" test "$code" = 400

# --- 2. the list's filters ---------------------------------------------------------------------
up=$(upload "$WORK/a.bin")
pcurl -d "{\"title\":\"Door 100% module\",\"version\":\"3.0.0\",\"hardware_id\":\"HW-2-021\",\"ecu_id\":\"ECU_021\",\"upload_id\":\"$up\"}" \
	"$B/api/v1/releases" -o /dev/null
ids() { pcurl "$B/api/v1/releases?$1" | python3 -c 'import json,sys; print(" ".join(r["version"] for r in json.load(sys.stdin)["items"]))'; }
check "q=brake (any case) finds the brake releases, newest first: $(ids q=BRAKE)" test "$(ids q=BRAKE)" = "1.2.0 2.0.0 1.1.0 1.0.0"
check "q matches the hardware id: $(ids q=hw-2)" test "$(ids q=hw-2)" = "3.0.0"
check "q matches the version: $(ids q=1.1)" test "$(ids q=1.1)" = "1.1.0"
check "q's % is a plain character: $(ids 'q=100%25')" test "$(ids 'q=100%25')" = "3.0.0"
check "q=1%25 matches nothing" test -z "$(ids 'q=1%25')"
check "ecu_id=ECU_021: $(ids ecu_id=ECU_021)" test "$(ids ecu_id=ECU_021)" = "3.0.0"
check "ecu_id and q together: $(ids 'ecu_id=ECU_011&q=cal')" test "$(ids 'ecu_id=ECU_011&q=cal')" = "2.0.0"
for bad in "ecu_id=NOPE" "q=$(head -c 65 /dev/zero | tr '\0' x)" "hw=1" "q=a&q=b" "limit=1&limit=2"; do
	code=$(status GET "$B/api/v1/releases?$bad")
	check "?${bad:0:20}... is 400 (got $code)" test "$code" = 400
done
check "the upload routes refuse unknown parameters" test "$(status GET "$B/api/v1/uploads/$up?x=1")" = 400
check "...and a repeated offset" test "$(status PUT "$B/api/v1/uploads/$up?offset=0&offset=0" --data-binary x)" = 400
check "the download route takes only token" test "$(status GET "$B/packages/$dsha?tokn=1")" = 400

# --- 3. events -----------------------------------------------------------------------------------
check "the stream carried the release event of 1.1.0" wait_for 10 grep -q "\"id\":\"$rel\"" "$WORK/stream"
pcurl -X DELETE "$B/api/v1/releases/$(jget id <"$WORK/rel2.json")" -o /dev/null
check "...and a deleted one with deleted:true" wait_for 10 grep -q '"deleted":true' "$WORK/stream"
check "release events name id, title, version, ecu_id, hardware_id, at_ms" python3 - "$WORK/stream" "$rel" <<'PY'
import json, sys
ev = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: ")]
e = [x for x in ev if x.get("id") == sys.argv[2]][0]
assert set(e) == {"id", "title", "version", "ecu_id", "hardware_id", "at_ms"}, e
assert e["version"] == "1.1.0" and e["ecu_id"] == "ECU_011" and e["hardware_id"] == "HW-1-011", e
PY
cid=$(pcurl -d "{\"name\":\"ev\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"BOARDVIN000001\"]}}" "$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null || true
pcurl -X POST "$B/api/v1/campaigns/$cid/cancel" -o /dev/null
check "campaign events: cancelled" wait_for 10 grep -q "\"id\":\"$cid\".*\"state\":\"cancelled\"\\|\"state\":\"cancelled\".*\"id\":\"$cid\"" "$WORK/stream"
check "...after running (start), and the deployment's pending -> cancelled" python3 - "$WORK/stream" "$cid" <<'PY'
import json, sys
evs, name = [], None
for l in open(sys.argv[1]):
    if l.startswith("event: "):
        name = l[7:].strip()
    elif l.startswith("data: "):
        evs.append((name, json.loads(l[6:])))
camp = [d["state"] for n, d in evs if n == "campaign" and d.get("id") == sys.argv[2]]
assert camp == ["running", "cancelled"], camp
dep = [d for n, d in evs if n == "deployment" and d.get("campaign_id") == sys.argv[2]]
assert len(dep) == 1 and dep[0]["vin"] == "BOARDVIN000001", dep
assert (dep[0]["from"], dep[0]["to"], dep[0]["cause"]) == ("pending", "cancelled", "operator: campaign cancelled"), dep
assert set(dep[0]) == {"campaign_id", "vin", "from", "to", "cause", "at_ms"}, dep
PY
stop_server s1
finish
