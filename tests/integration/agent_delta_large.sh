#!/usr/bin/env bash
# agent_delta_large.sh: a delta campaign on a large image with real processes (mosquitto,
# `pqota server`, `pqota vehicle` with its simulated ECUs). ECU_011 runs a 100 MiB image;
# release 1.1.0 changes a few KiB of it. The server computes the delta in the background
# (the version-1 engine made a 100 MB delta of this pair; the segmented one a few KiB), the
# agent downloads it, applies it within --delta-memory 16 (MiB) and installs it: the
# campaign completes with the delta, no fallback to the full package, and the installed
# image is the release's byte for byte.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

VL=LARGEDELTA0000001
SIZE=$((100 * 1024 * 1024))
make_pki $VL
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
make_key s1
check "vehicle registered" register "$B" $VL
CA="$PKI/ca/ca.crt"

# upload FILE: an upload of FILE in 4 MiB pieces (a request body is at most
# limits.max_body_bytes); prints its id
upload() {
	local size id off=0 piece=$((4 * 1024 * 1024))
	size=$(stat -c %s "$1")
	id=$(pcurl -d "{\"size\":$size}" "$B/api/v1/uploads" | jget id) || return 1
	while [ $off -lt "$size" ]; do
		tail -c +$((off + 1)) "$1" | head -c $piece >"$WORK/piece"
		pcurl -X PUT --data-binary @"$WORK/piece" "$B/api/v1/uploads/$id?offset=$off" -o /dev/null ||
			return 1
		off=$((off + piece))
	done
	echo "$id"
}
# rel VERSION UPLOAD [JSON...]: creates release VERSION of ECU_011; prints its id
rel() {
	pcurl -d "{\"title\":\"ECU_011 $1\",\"version\":\"$1\",\"hardware_id\":\"HW-1-011\",
		\"ecu_id\":\"ECU_011\",\"upload_id\":\"$2\"${3:-}}" "$B/api/v1/releases" >"$WORK/rel-$1.json" &&
		jget id <"$WORK/rel-$1.json"
}

# the base: 100 MiB of random bytes; the target: five 1 KiB edits and a 4 KiB insertion
head -c $SIZE /dev/urandom >"$WORK/ECU_011-1.0.0.bin"
R0=$(rel 1.0.0 "$(upload "$WORK/ECU_011-1.0.0.bin")")
check "release 1.0.0 created (100 MiB)" test -n "$R0"
python3 - "$WORK/ECU_011-1.0.0.bin" "$WORK/ECU_011-1.1.0.bin" <<'PY'
import random, sys
b = bytearray(open(sys.argv[1], "rb").read())
r = random.Random(13)
for i in range(1, 6):
    at = i * len(b) // 7
    b[at:at + 1024] = bytes(r.getrandbits(8) for _ in range(1024))
at = len(b) // 2 + 12345
b[at:at] = b"inserted " * 455
open(sys.argv[2], "wb").write(b)
PY
tsize=$(stat -c %s "$WORK/ECU_011-1.1.0.bin")
R1=$(rel 1.1.0 "$(upload "$WORK/ECU_011-1.1.0.bin")" ",\"delta_from\":\"$R0\"")
cp "$WORK/rel-1.1.0.json" "$WORK/rel1.json"
check "release 1.1.0 created, its delta from 1.0.0 queued" test -n "$R1" -a \
	"$(jget delta.base_version <"$WORK/rel1.json")" = 1.0.0
delta_ready() { [ "$(pcurl "$B/api/v1/releases/$R1" | jget delta.state)" = ready ]; }
check "the server computed the delta in the background" wait_for 120 delta_ready
pcurl "$B/api/v1/releases/$R1" >"$WORK/rel1.json"
dsize=$(jget delta.length <"$WORK/rel1.json")
delta_sha=$(jget delta.sha256 <"$WORK/rel1.json")
check "the delta is small: $dsize bytes for a $tsize-byte image (under 64 KiB)" test "$dsize" -lt 65536

check "the trusted Uptane roots are served" provision $VL
model_with_image $VL ECU_011 "$WORK/ECU_011-1.0.0.bin" "$WORK/model.json"
start_agent $VL --model "$WORK/model.json" --delta-memory 16
check "$VL sent its VCI" wait_for 60 vci_in $VL

cid=$(campaign "$R1" $VL)
s=$(final_state "$cid" $VL)
check "the campaign completed (server: $s)" test "$s" = completed
target=$(pcurl "$B/api/v1/campaigns/$cid/vehicles/$VL" | python3 -c 'import json,sys
t = json.load(sys.stdin)["targets"][0]; print(t["package"], t["sha256"])')
check "with the delta ($target)" test "$target" = "delta $delta_sha"
check "the agent did not fall back to the full package" test "$(event_count $VL fallback)" = 0
img=$(find "$WORK" -path "*$VL*" -name "ECU_011*" -size +90M -newer "$WORK/ECU_011-1.1.0.bin" \
	-type f 2>/dev/null | head -n 1)
check "the image the agent patched and installed (${img#$WORK/}) is the release's, byte for byte" \
	cmp -s "$img" "$WORK/ECU_011-1.1.0.bin"
stop_agent $VL || true
stop_server s1
finish
