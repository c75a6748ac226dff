#!/usr/bin/env bash
# cli_release.sh: `pqota release upload|list|show` end to end against a real server (real
# TLS with the PKI's key-exchange group): a 300 MB image uploaded in pieces through a TCP
# proxy that cuts the connection once in the middle (the client asks where the upload
# stands and resumes; the release's image has the file's SHA-256), an upload continued
# with --upload-id after a run that gave up, a release with a delta (--delta-from) and one
# with the operator's own delta (--delta), list and show (table and --json), and the
# roles and usage errors (exit codes 0, 2, 64).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"

cli_setup
export PQOTA_SERVER= # each command names its server (the proxy or the server)
rel() { PQOTA_SERVER=$B PQOTA_API_KEY=$OP "$PQOTA" release "$@"; }

# --- 1. a 300 MB image, the connection cut once after 100 MB --------------------------------
head -c $((300 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
want=$(sha256sum "$WORK/big.bin" | cut -d' ' -f1)
python3 "$PQOTA_SRC/tests/integration/cut_proxy.py" "${B##*:}" "$WORK/proxy.port" \
	$((100 * 1024 * 1024)) "$WORK/proxy.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/proxy.port" || bad "the proxy did not start"
P="https://127.0.0.1:$(cat "$WORK/proxy.port")"
t0=$EPOCHREALTIME
rc=0
PQOTA_SERVER=$P PQOTA_API_KEY=$OP "$PQOTA" release upload "$WORK/big.bin" --version 2.0.0 \
	--ecu ECU_011 --hardware-id HW-BIG --title "big image" --json \
	>"$WORK/big.json" 2>"$WORK/big.err" || rc=$?
t1=$EPOCHREALTIME
check "300 MB upload through the cut connection exits 0 (got $rc)" test "$rc" = 0
check "the proxy cut the connection once" grep -q "cut after" "$WORK/proxy.log"
check "the client saw the drop and resumed" grep -q "retrying" "$WORK/big.err"
check "the release's image has the file's SHA-256" \
	test "$(jget image.sha256 <"$WORK/big.json")" = "$want"
check "the release's image has the file's length" \
	test "$(jget image.length <"$WORK/big.json")" = $((300 * 1024 * 1024))
echo "     300 MB uploaded and the release made in $(python3 -c "print(round($t1 - $t0, 1))") s"
sed 's/^/     /' "$WORK/big.err" | head -5
BIG=$(jget id <"$WORK/big.json")
check "the stored image is the file" cmp -s "$WORK/big.bin" "$WORK/data-s1/images/$want"
rm -f "$WORK/big.bin" "$WORK/data-s1/images/$want"

# --- 2. a run that gives up, continued with --upload-id ---------------------------------------
head -c 3000000 /dev/urandom >"$WORK/v1.bin"
python3 "$PQOTA_SRC/tests/integration/cut_proxy.py" "${B##*:}" "$WORK/proxy2.port" 1500000 &
PXY2=$!
PIDS+=($PXY2)
wait_for 10 test -s "$WORK/proxy2.port" || bad "the second proxy did not start"
P2="https://127.0.0.1:$(cat "$WORK/proxy2.port")"
kill "$PXY2" 2>/dev/null || true # ... and stop it: the server cannot be reached at all
wait "$PXY2" 2>/dev/null || true
expect_exit 2 "an upload that cannot reach the server gives up after --retries" \
	env PQOTA_SERVER=$P2 PQOTA_API_KEY=$OP "$PQOTA" release upload "$WORK/v1.bin" --version 1.0.0 \
	--ecu ECU_011 --hardware-id HW-1-011 --retries 1
# start one by hand (as a run that died after the first piece would leave it)
sha=$(sha256sum "$WORK/v1.bin" | cut -d' ' -f1)
up=$(pcurl -d "{\"size\":3000000,\"sha256\":\"$sha\"}" "$B/api/v1/uploads" | jget id)
head -c 1000000 "$WORK/v1.bin" >"$WORK/piece"
pcurl -X PUT --data-binary @"$WORK/piece" "$B/api/v1/uploads/$up?offset=0" -o /dev/null
rc=0
rel upload "$WORK/v1.bin" --version 1.0.0 --ecu ECU_011 --hardware-id HW-1-011 \
	--upload-id "$up" --piece-size 65536 --json >"$WORK/v1.json" 2>"$WORK/v1.err" || rc=$?
check "--upload-id continues an upload (exit $rc)" test "$rc" = 0
check "... from where the server stood" grep -q "upload $up" "$WORK/v1.err"
check "... to the right image" test "$(jget image.sha256 <"$WORK/v1.json")" = "$sha"
V1=$(jget id <"$WORK/v1.json")
check "the upload is used up" test "$(pcurl "$B/api/v1/uploads/$up" -o /dev/null -w '%{http_code}' 2>/dev/null || true)" = 404
expect_exit 2 "--upload-id of another file's upload is refused" \
	env PQOTA_SERVER=$B PQOTA_API_KEY=$OP "$PQOTA" release upload "$WORK/v1.bin" --version 1.0.1 \
	--ecu ECU_011 --hardware-id HW-1-011 --upload-id "$(pcurl -d '{"size":5}' "$B/api/v1/uploads" | jget id)"

# --- 3. deltas: computed by the server, and the operator's own --------------------------------
python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read()); d[1000:1100] = b"x" * 100
open(sys.argv[2], "wb").write(d)' "$WORK/v1.bin" "$WORK/v2.bin"
rc=0
rel upload "$WORK/v2.bin" --version 1.1.0 --ecu ECU_011 --hardware-id HW-1-011 \
	--delta-from 1.0.0 >"$WORK/v2.txt" 2>"$WORK/v2.err" || rc=$?
sed 's/^/     /' "$WORK/v2.txt"
check "upload --delta-from exits 0 (got $rc)" test "$rc" = 0
check "the table shows the release and its delta" grep -q "^delta     from 1.0.0" "$WORK/v2.txt"
"$PQOTA" pack delta --from "$WORK/v1.bin" --to "$WORK/v2.bin" -o "$WORK/own.swpg" >/dev/null 2>&1 ||
	bad "pack delta"
rc=0
rel upload "$WORK/v2.bin" --version 1.1.1 --ecu ECU_011 --hardware-id HW-1-011 \
	--delta-from "$V1" --delta "$WORK/own.swpg" --json >"$WORK/v3.json" 2>"$WORK/v3.err" || rc=$?
check "upload --delta (the operator's delta) exits 0 (got $rc)" test "$rc" = 0
check "... and the delta is the uploaded one" test "$(jget delta.source <"$WORK/v3.json")" = uploaded
expect_exit 64 "--delta without --delta-from is a usage error" \
	rel upload "$WORK/v2.bin" --version 1.1.2 --ecu ECU_011 --hardware-id HW-1-011 --delta "$WORK/own.swpg"

# --- 4. list and show ----------------------------------------------------------------------------
rel list --json >"$WORK/list.json"
check "list --json: 4 releases" test "$(jget total <"$WORK/list.json")" = 4
rel list --hardware-id HW-1-011 --limit 2 --json >"$WORK/list2.json"
check "list --hardware-id --limit" python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
assert d["total"] == 3 and len(d["items"]) == 2 and d["limit"] == 2, d' "$WORK/list2.json"
rel list --search big >"$WORK/list.txt"
check "list --search (table)" grep -q "^$BIG  *2.0.0 " "$WORK/list.txt"
check "list prints the count" grep -q "^1 release(s)" "$WORK/list.txt"
rel show "$V1" --json >"$WORK/show.json"
check "show --json" test "$(jget version <"$WORK/show.json")" = 1.0.0
rel show "$BIG" >"$WORK/show.txt"
check "show (table)" grep -q "^title     big image" "$WORK/show.txt"
expect_exit 2 "show of an unknown release: exit 2" rel show 00000000-0000-4000-8000-000000000000
expect_exit 64 "show of a malformed id: exit 64" rel show "../x"

# --- 5. roles and usage ------------------------------------------------------------------------
expect_exit 2 "a viewer key may not upload" \
	env PQOTA_SERVER=$B PQOTA_API_KEY=$VIEWER "$PQOTA" release upload "$WORK/v1.bin" --version 9.0.0 \
	--ecu ECU_011 --hardware-id HW-1-011
check "... the 403 is printed" grep -q "HTTP 403 forbidden" "$WORK/last.out"
expect_exit 0 "a viewer key may list" env PQOTA_SERVER=$B PQOTA_API_KEY=$VIEWER "$PQOTA" release list
expect_exit 64 "no API key: usage error" env -u PQOTA_API_KEY PQOTA_SERVER=$B "$PQOTA" release list
expect_exit 64 "upload without --version" rel upload "$WORK/v1.bin" --ecu ECU_011 --hardware-id X
expect_exit 64 "unknown subcommand" rel frobnicate
expect_exit 2 "a missing file" rel upload "$WORK/nope.bin" --version 1.0.0 --ecu ECU_011 --hardware-id X
expect_exit 2 "a release that exists: 409" rel upload "$WORK/v1.bin" --version 1.0.0 --ecu ECU_011 --hardware-id HW-1-011
check "... named" grep -q "HTTP 409 conflict" "$WORK/last.out"
expect_exit 0 "release --help" "$PQOTA" release --help
finish
