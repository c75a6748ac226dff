#!/usr/bin/env bash
# cli_bundle.sh: `pqota bundle upload|list|show` end to end against a real server (real TLS
# with the PKI's key-exchange group), a rollout's middle step with pqota commands alone:
#
#  1. `pqota pack build` bundle A (VMG, ZGW1, ECU_011, ECU_012; 13 MB) uploaded in 4 MiB pieces
#     through a TCP proxy that cuts the connection once in the middle (the client asks where
#     the upload stands and resumes); the record (--json) has the file's SHA-256, the four
#     units and the --hardware-id given; the server's stored file is the exact bundle;
#  2. bundle B with a manifest whose hash is not the file's: exit 2 with the server's 422
#     bundle_invalid message and the upload id kept; the same upload taken again with the
#     right manifest and --upload-id (nothing re-sent), the record printed as a table;
#  3. list (table, --json without the manifests, --limit/--offset) and show (table, --json),
#     GET /api/v1/bundles paged with limit=1 and its query checked (400s);
#  4. `pqota campaign create --bundle ID` with the id `bundle upload` printed: the campaign
#     has the bundle's releases and serves its full_package.bin;
#  5. errors: a manifest that is not JSON or not an object, a missing manifest or FILE, a
#     manifest of another file (its length, before anything is sent), a bad --hardware-id,
#     an unknown bundle (exit 2, 404), a malformed id, roles; exit codes 0, 2, 64.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"

V=CLIBUNDLEVIN00001
cli_setup $V
export PQOTA_SERVER= # each command names its server (the proxy or the server)
bnd() { PQOTA_SERVER=$B PQOTA_API_KEY=$OP "$PQOTA" bundle "$@"; }
expect_exit 0 "the vehicle registered (pqota vehicle register)" \
	env PQOTA_SERVER=$B PQOTA_API_KEY=$OP "$PQOTA" vehicle register $V --pki "$PKI"

# pack OUT_DIR VERSION PACK_ID E11_BYTES: a bundle of VMG, ZGW1, ECU_011 (E11_BYTES of random
# data) and ECU_012 at VERSION
pack() {
	head -c 100000 /dev/urandom >"$WORK/vmg-$2.bin"
	head -c "$4" /dev/urandom >"$WORK/e11-$2.bin"
	head -c 1000000 /dev/urandom >"$WORK/e12-$2.bin"
	"$PQOTA" pack build --campaign-id "$3" --vmg-binary "$WORK/vmg-$2.bin" --vmg-version "$2" \
		--zgw-binary "$WORK/vmg-$2.bin" --zgw-version "$2" \
		--ecu-011-binary "$WORK/e11-$2.bin" --ecu-011-version "$2" \
		--ecu-012-binary "$WORK/e12-$2.bin" --ecu-012-version "$2" --output-dir "$1" >/dev/null
}
pack "$WORK/a" 2.0.0 PACK-A 12000000 || bad "pack build A"
pack "$WORK/b" 2.1.0 PACK-B 1500000 || bad "pack build B"
SHA_A=$(sha256sum "$WORK/a/full_package.bin" | cut -d' ' -f1)

# --- 1. bundle A through a connection cut once --------------------------------------------------
# (4 MiB pieces: the cut comes while a piece is being sent, which the client sees; a cut
# after a whole small piece went out, before its answer, libcurl retries by itself)
python3 "$PQOTA_SRC/tests/integration/cut_proxy.py" "${B##*:}" "$WORK/proxy.port" 6000000 \
	"$WORK/proxy.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/proxy.port" || bad "the proxy did not start"
P="https://127.0.0.1:$(cat "$WORK/proxy.port")"
rc=0
PQOTA_SERVER=$P PQOTA_API_KEY=$OP "$PQOTA" bundle upload "$WORK/a/full_package.bin" \
	--manifest "$WORK/a/manifest.json" --title "brakes A" --hardware-id VMG=HW-VMG-CLI \
	--piece-size 4194304 --json >"$WORK/a.json" 2>"$WORK/a.err" || rc=$?
check "bundle upload through the cut connection exits 0 (got $rc)" test "$rc" = 0
sed 's/^/     /' "$WORK/a.err" | head -4
check "the proxy cut the connection once" grep -q "cut after" "$WORK/proxy.log"
check "the client saw the drop and resumed" grep -q "retrying" "$WORK/a.err"
check "the record: the file's SHA-256, the title, four units, --hardware-id VMG=HW-VMG-CLI" \
	python3 - "$WORK/a.json" "$SHA_A" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
u = {x["ecu_id"]: x for x in b["units"]}
assert b["file_sha256"] == sys.argv[2] and b["title"] == "brakes A", b
assert sorted(u) == ["ECU_011", "ECU_012", "VMG", "ZGW1"], u
assert u["VMG"]["hardware_id"] == "HW-VMG-CLI" and u["ECU_011"]["hardware_id"] == "HW-1-011", u
assert len(b["release_ids"]) == 4 and b["manifest"]["campaign_id"] == "PACK-A", b
PY
A=$(jget id <"$WORK/a.json")
check "the server's file is the exact bundle" cmp -s "$WORK/a/full_package.bin" "$WORK/data-s1/files/$SHA_A"

# --- 2. bundle B: a wrong manifest (422), then the same upload with the right one -------------------
python3 -c 'import json,sys
m = json.load(open(sys.argv[1])); m["bundle"]["sha256"] = "0" * 64
json.dump(m, open(sys.argv[2], "w"))' "$WORK/b/manifest.json" "$WORK/bad-manifest.json"
expect_exit 2 "a manifest whose hash is not the file's: exit 2" \
	bnd upload "$WORK/b/full_package.bin" --manifest "$WORK/bad-manifest.json"
check "... the server's 422 bundle_invalid message" \
	grep -q "HTTP 422 bundle_invalid: manifest: bundle.length and bundle.sha256 are not those of the upload" "$WORK/last.out"
check "... the upload id kept for --upload-id" grep -q "stays on the server: --upload-id" "$WORK/last.out"
UP=$(sed -n 's/.*--upload-id \([0-9a-f-]*\) takes it again.*/\1/p' "$WORK/last.out")
rc=0
bnd upload "$WORK/b/full_package.bin" --manifest "$WORK/b/manifest.json" --upload-id "$UP" \
	>"$WORK/b.txt" 2>"$WORK/b.err" || rc=$?
check "--upload-id takes the same upload with the right manifest (exit $rc)" test "$rc" = 0
check "... that upload ($UP)" grep -q "upload $UP:" "$WORK/b.err"
sed 's/^/     /' "$WORK/b.txt"
check "the table: the bundle's file and units" grep -q "^file      $(sha256sum "$WORK/b/full_package.bin" | cut -d' ' -f1), " "$WORK/b.txt"
check "... ZONE1/ECU_011 at 2.1.0" grep -Eq "^  ZONE1/ECU_011 +ECU_011 +2\.1\.0 +HW-1-011 " "$WORK/b.txt"
BID=$(awk '/^bundle /{print $2}' "$WORK/b.txt")
check "... and its id" test -n "$BID"

# --- 3. list and show -------------------------------------------------------------------------
bnd list --json >"$WORK/list.json"
check "list --json: 2 bundles, newest first, without manifests" python3 - "$WORK/list.json" "$A" "$BID" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["total"] == 2 and d["limit"] == 50 and d["offset"] == 0, d
assert [b["id"] for b in d["items"]] == [sys.argv[3], sys.argv[2]], d
assert all("manifest" not in b and len(b["units"]) == 4 for b in d["items"]), d
PY
bnd list --limit 1 --offset 1 --json >"$WORK/list2.json"
check "list --limit 1 --offset 1: bundle A" python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert d["total"] == 2 and d["limit"] == 1 and d["offset"] == 1 and [b["id"] for b in d["items"]] == [sys.argv[2]], d' "$WORK/list2.json" "$A"
bnd list >"$WORK/list.txt"
sed 's/^/     /' "$WORK/list.txt"
check "list (table): A with its title, pack id and units" grep -Eq "^$A +brakes A +PACK-A +4 +$(stat -c %s "$WORK/a/full_package.bin") " "$WORK/list.txt"
check "... B" grep -Eq "^$BID +- +PACK-B +4 " "$WORK/list.txt"
check "... the count" grep -q "^2 bundle(s)" "$WORK/list.txt"
bnd show "$A" --json >"$WORK/show.json"
check "show --json: the whole record (manifest too)" \
	test "$(jget manifest.bundle.sha256 <"$WORK/show.json") $(jget id <"$WORK/show.json")" = "$SHA_A $A"
bnd show "$A" >"$WORK/show.txt"
check "show (table)" grep -q "^title     brakes A" "$WORK/show.txt"
check "... its VMG unit" grep -Eq "^  VMG +VMG +2\.0\.0 +HW-VMG-CLI " "$WORK/show.txt"
# the route itself
check "GET /api/v1/bundles?limit=1: B, total 2" \
	test "$(pcurl "$B/api/v1/bundles?limit=1" | python3 -c 'import json,sys
d = json.load(sys.stdin); print(d["total"], d["limit"], len(d["items"]), d["items"][0]["id"])')" = "2 1 1 $BID"
check "GET /api/v1/bundles?limit=1&offset=1: A" \
	test "$(pcurl "$B/api/v1/bundles?limit=1&offset=1" | jget items.0.id)" = "$A"
check "GET /api/v1/bundles?offset=2: no items" \
	test "$(pcurl "$B/api/v1/bundles?offset=2" | jget items)" = "[]"
check "limit=0: 400" test "$(pcurl -o /dev/null -w '%{http_code}' "$B/api/v1/bundles?limit=0" 2>/dev/null)" = 400
check "an unknown query parameter: 400" test "$(pcurl -o /dev/null -w '%{http_code}' "$B/api/v1/bundles?q=x" 2>/dev/null)" = 400

# --- 4. a campaign of the printed id --------------------------------------------------------------
rc=0
PQOTA_SERVER=$B PQOTA_API_KEY=$OP "$PQOTA" campaign create --name cli-bundle --bundle "$BID" \
	--vin $V --phase percent=100,error=1.0 --json >"$WORK/c.json" || rc=$?
check "pqota campaign create --bundle with the printed id (exit $rc)" test "$rc" = 0
check "... the campaign has the bundle" test "$(jget policy.bundle_id <"$WORK/c.json")" = "$BID"
check "... and its releases" test "$(jget release_ids <"$WORK/c.json" | tr -d ' ')" = \
	"$(bnd show "$BID" --json | jget release_ids | tr -d ' ')"
pcurl "$B/packages/$(jget id <"$WORK/c.json")/full_package.bin" -o "$WORK/dl.bin"
check "... and serves the bundle's full_package.bin" cmp -s "$WORK/dl.bin" "$WORK/b/full_package.bin"

# --- 5. errors ----------------------------------------------------------------------------------
echo 'not json {' >"$WORK/nojson.json"
expect_exit 2 "a manifest that is not JSON" bnd upload "$WORK/a/full_package.bin" --manifest "$WORK/nojson.json"
check "... named, with its line" grep -q "nojson.json: line 1: .*(a JSON object expected)" "$WORK/last.out"
echo '[1, 2]' >"$WORK/array.json"
expect_exit 2 "a manifest that is not an object" bnd upload "$WORK/a/full_package.bin" --manifest "$WORK/array.json"
expect_exit 2 "a missing manifest" bnd upload "$WORK/a/full_package.bin" --manifest "$WORK/nope.json"
check "... named" grep -q "nope.json: .*No such file" "$WORK/last.out"
expect_exit 2 "a missing FILE" bnd upload "$WORK/nope.bin" --manifest "$WORK/a/manifest.json"
check "... named" grep -q "nope.bin: No such file" "$WORK/last.out"
expect_exit 2 "the manifest of another file (its length), before any upload" \
	bnd upload "$WORK/b/full_package.bin" --manifest "$WORK/a/manifest.json"
check "... said" grep -q "names a bundle of $(stat -c %s "$WORK/a/full_package.bin") bytes" "$WORK/last.out"
check "... nothing was sent" test "$(grep -c "upload.*sha256" "$WORK/last.out")" = 0
expect_exit 64 "a malformed --upload-id" bnd upload "$WORK/a/full_package.bin" \
	--manifest "$WORK/a/manifest.json" --upload-id "../../x"
expect_exit 64 "upload without --manifest" bnd upload "$WORK/a/full_package.bin"
expect_exit 64 "--hardware-id without UNIT=" bnd upload "$WORK/a/full_package.bin" \
	--manifest "$WORK/a/manifest.json" --hardware-id HW-1
expect_exit 64 "--hardware-id of a unit twice" bnd upload "$WORK/a/full_package.bin" \
	--manifest "$WORK/a/manifest.json" --hardware-id VMG=A --hardware-id VMG=B
expect_exit 2 "the same bundle again: 409 (its releases exist)" \
	bnd upload "$WORK/a/full_package.bin" --manifest "$WORK/a/manifest.json"
check "... named" grep -q "HTTP 409 conflict" "$WORK/last.out"
expect_exit 2 "show of an unknown bundle: exit 2" bnd show 00000000-0000-4000-8000-000000000000
check "... the 404" grep -q "HTTP 404 not_found" "$WORK/last.out"
expect_exit 64 "show of a malformed id: exit 64" bnd show "../x"
expect_exit 2 "a viewer key may not upload" env PQOTA_SERVER=$B PQOTA_API_KEY=$VIEWER \
	"$PQOTA" bundle upload "$WORK/a/full_package.bin" --manifest "$WORK/a/manifest.json"
check "... the 403 is printed" grep -q "HTTP 403 forbidden" "$WORK/last.out"
expect_exit 0 "a viewer key may list" env PQOTA_SERVER=$B PQOTA_API_KEY=$VIEWER "$PQOTA" bundle list
expect_exit 64 "no API key: usage error" env -u PQOTA_API_KEY PQOTA_SERVER=$B "$PQOTA" bundle list
expect_exit 64 "unknown subcommand" bnd frobnicate
expect_exit 64 "no subcommand" "$PQOTA" bundle
expect_exit 0 "bundle --help" "$PQOTA" bundle --help
check "pqota --help lists bundle" bash -c "'$PQOTA' --help | grep -q '^  bundle '"
finish
