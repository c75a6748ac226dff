#!/usr/bin/env bash
# bundle_campaign.sh: a `pqota pack build` bundle as one release set, against a real server,
# mosquitto and two real agents:
#
#  1. full_package.bin (VMG 2.0.0, zone 1: ZGW1, ECU_011 and ECU_012 at 1.1.0) uploaded and
#     taken with its manifest (POST /api/v1/bundles): one release per unit, hardware ids
#     the body's (VMG) or the defaults (ECU_nnn: the default model's; ZGW1: its name);
#     refused (422) with a manifest whose hash is not the upload's, and for a corrupted
#     bundle; taken twice: 409 (its releases exist);
#  2. a campaign with the operator's id TEST-001 from the bundle (pqota campaign create
#     --id TEST-001 --bundle ID);
#  3. /packages/TEST-001/full_package.bin: the whole file to an API key, HEAD, a Range, a
#     download cut after 40000 bytes resumed with Range (curl -C -) giving the exact file;
#     a vehicle not in the campaign is refused (403), as is one of a draft (no deployment
#     yet), no credentials 401, a download token for the bundle's file 200 (one for another
#     file 403), an unknown campaign 404, a campaign without a bundle 404;
#  4. the rollout: full_package.bin is an Uptane target (the image repository lists it as
#     <bundle id>.bundle.swpg, software type BUNDLE, and each vehicle's director targets name
#     it); both agents download its encrypted copy (the URL ota_campaign_metadata gives, the
#     content key wrapped for each), decrypt it, check it against its verified target, take
#     both units out of it, check them against their Uptane targets and install them
#     (ECU_011 and ECU_012 at 1.1.0); the deployments complete. The agents reach the server
#     through a proxy that cuts one download once in the middle of full_package.bin: the
#     agent resumes it with Range. Then a vehicle of the campaign fetching the file with its
#     certificate gets that encrypted copy (never the plaintext), and metadata.json (the
#     manifest, the units, its director targets, the bundle's target name).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

V1=BUNDLEVEHICLE0001
V2=BUNDLEVEHICLE0002
V3=BUNDLEOUTSIDER003
make_pki $V1 $V2 $V3
start_broker
# vehicles reach the server through a proxy (public_url) that cuts one download once, after
# 2.5 MB from the server: in the middle of a full_package.bin (about 5 MB)
SP=$(free_port)
python3 "$PQOTA_SRC/tests/integration/cut_proxy.py" "$SP" "$WORK/proxy.port" 2500000 "$WORK/proxy.log" down &
PIDS+=($!)
wait_for 10 test -s "$WORK/proxy.port" || bad "the proxy did not start"
write_server_conf s1 "listen = 127.0.0.1:$SP" "public_url = https://127.0.0.1:$(cat "$WORK/proxy.port")"
start_server s1
B=$BASE_s1
make_key s1
CA="$PKI/ca/ca.crt"
check "vehicles registered" register "$B" $V1 $V2 $V3
check "the trusted Uptane roots are served" provision $V1 $V2

# upload FILE: a complete upload of FILE; prints its id
upload() {
	local up
	up=$(pcurl -d "{\"size\":$(stat -c %s "$1")}" "$B/api/v1/uploads" | jget id) || return 1
	pcurl -X PUT --data-binary @"$1" "$B/api/v1/uploads/$up?offset=0" -o /dev/null || return 1
	echo "$up"
}
# take UPLOAD MANIFEST_FILE OUT: POST /api/v1/bundles (the VMG's hardware id given); prints
# the HTTP status
take() {
	python3 -c 'import json,sys
print(json.dumps({"upload_id": sys.argv[1], "manifest": json.load(open(sys.argv[2])),
                  "hardware_ids": {"VMG": "HW-VMG-1"}}))' "$1" "$2" >"$WORK/take.json"
	pcurl -o "$3" -w '%{http_code}' --data @"$WORK/take.json" "$B/api/v1/bundles" 2>/dev/null || true
}
# code ARGS...: the HTTP status of a request (curl's own options first)
code() { on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" "$@"; }
vcode() { local v=$1; shift; code --cert "$PKI/vehicles/$v/client.crt" --key "$PKI/vehicles/$v/client.key" "$@"; }

# --- 1. the bundle ---------------------------------------------------------------------------------
head -c 3000000 /dev/urandom >"$WORK/e11.bin"
head -c 2000000 /dev/urandom >"$WORK/e12.bin"
head -c 100000 /dev/urandom >"$WORK/vmg.bin"
"$PQOTA" pack build --campaign-id TEST-001 --vmg-binary "$WORK/vmg.bin" --vmg-version 2.0.0 \
	--zgw-binary "$WORK/vmg.bin" --ecu-011-binary "$WORK/e11.bin" --ecu-011-version 1.1.0 \
	--ecu-012-binary "$WORK/e12.bin" --ecu-012-version 1.1.0 --output-dir "$WORK/pb" >/dev/null || bad "pack build"
PB="$WORK/pb/full_package.bin"
python3 -c 'import json,sys
m = json.load(open(sys.argv[1])); m["bundle"]["sha256"] = "0" * 64
json.dump(m, open(sys.argv[2], "w"))' "$WORK/pb/manifest.json" "$WORK/bad-manifest.json"
check "a manifest whose hash is not the upload's: 422" test "$(take "$(upload "$PB")" "$WORK/bad-manifest.json" "$WORK/r.json")" = 422
check "... bundle_invalid" grep -q bundle_invalid "$WORK/r.json"
cp "$PB" "$WORK/corrupt.bin"
printf 'X' | dd of="$WORK/corrupt.bin" bs=1 seek=100000 conv=notrunc status=none
python3 -c 'import json,sys,hashlib
m = json.load(open(sys.argv[1])); m["bundle"]["sha256"] = hashlib.sha256(open(sys.argv[2],"rb").read()).hexdigest()
json.dump(m, open(sys.argv[3], "w"))' "$WORK/pb/manifest.json" "$WORK/corrupt.bin" "$WORK/corrupt-manifest.json"
check "a corrupted bundle (its manifest rehashed): 422" test "$(take "$(upload "$WORK/corrupt.bin")" "$WORK/corrupt-manifest.json" "$WORK/r.json")" = 422
check "the bundle taken: 201" test "$(take "$(upload "$PB")" "$WORK/pb/manifest.json" "$WORK/bundle.json")" = 201
BID=$(jget id <"$WORK/bundle.json")
check "... four units (VMG, ZGW1, ECU_011, ECU_012), their hardware ids" python3 - "$WORK/bundle.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
u = {x["ecu_id"]: x for x in b["units"]}
assert sorted(u) == ["ECU_011", "ECU_012", "VMG", "ZGW1"], u
assert u["ECU_011"]["hardware_id"] == "HW-1-011" and u["ECU_012"]["version"] == "1.1.0", u
assert u["VMG"]["hardware_id"] == "HW-VMG-1" and u["ZGW1"]["hardware_id"] == "ZGW1", u
assert u["ECU_011"]["path"] == "ZONE1/ECU_011" and u["VMG"]["version"] == "2.0.0", u
assert len(b["release_ids"]) == 4 and b["campaign_id"] == "TEST-001", b
PY
R11=$(python3 -c 'import json,sys
print([u["release_id"] for u in json.load(open(sys.argv[1]))["units"] if u["ecu_id"] == "ECU_011"][0])' "$WORK/bundle.json")
check "... each unit a release" test "$(pcurl "$B/api/v1/releases/$R11" | jget version)" = 1.1.0
check "the same bundle again: 409" test "$(take "$(upload "$PB")" "$WORK/pb/manifest.json" "$WORK/r.json")" = 409
check "GET /api/v1/bundles/{id}" test "$(pcurl "$B/api/v1/bundles/$BID" | jget file_sha256)" = "$(sha256sum "$PB" | cut -d' ' -f1)"

# --- 2. the campaign TEST-001 ----------------------------------------------------------------------
rc=0
PQOTA_SERVER=$B PQOTA_CA=$CA PQOTA_API_KEY=$APIKEY "$PQOTA" campaign create --id TEST-001 --name bundle \
	--bundle "$BID" --vin $V1 --vin $V2 --phase percent=100,error=1.0 --json >"$WORK/c.json" || rc=$?
check "pqota campaign create --id TEST-001 --bundle (exit $rc)" test $rc = 0
check "campaign TEST-001 from the bundle" test "$(jget id <"$WORK/c.json") $(jget policy.bundle_id <"$WORK/c.json")" = "TEST-001 $BID"
check "... with the bundle's releases" test "$(jget release_ids <"$WORK/c.json" | tr -d ' ')" = "$(jget release_ids <"$WORK/bundle.json" | tr -d ' ')"
OTHER=$(pcurl -d "{\"id\":\"PLAIN-1\",\"name\":\"plain\",\"release_ids\":[\"$R11\"],\"target\":{\"vins\":[\"$V3\"]}}" "$B/api/v1/campaigns" | jget id)

# --- 3. the routes -------------------------------------------------------------------------------
U="$B/packages/TEST-001/full_package.bin"
pcurl "$U" -o "$WORK/dl.bin"
check "full_package.bin to an API key: the exact file" cmp -s "$WORK/dl.bin" "$PB"
check "HEAD: its length" bash -c "$(declare -f pcurl on35); PKI='$PKI' APIKEY='$APIKEY' PQOTA_SRC='$PQOTA_SRC' pcurl -I '$U' | tr -d '\r' | grep -qi '^content-length: $(stat -c %s "$PB")\$'"
pcurl -r 100-199 "$U" -o "$WORK/r100.bin"
check "a Range: those 100 bytes" cmp -s "$WORK/r100.bin" <(tail -c +101 "$PB" | head -c 100)
pcurl -r 0-39999 "$U" -o "$WORK/cut.bin"
check "a download cut after 40000 bytes" test "$(stat -c %s "$WORK/cut.bin")" = 40000
pcurl -C - "$U" -o "$WORK/cut.bin"
check "... resumed with Range: the exact file" cmp -s "$WORK/cut.bin" "$PB"
check "a vehicle of the draft campaign (no deployment yet): 403" test "$(vcode $V1 "$U")" = 403
check "a vehicle not in the campaign: 403" test "$(vcode $V3 "$U")" = 403
check "... nor its metadata: 403" test "$(vcode $V3 "$B/packages/TEST-001/metadata.json")" = 403
check "no credentials: 401" test "$(code "$U")" = 401
BSHA=$(sha256sum "$PB" | cut -d' ' -f1)
TOK=$(pcurl -d "{\"sha256\":\"$BSHA\"}" "$B/api/v1/vehicles/$V1/download-tokens" | jget token)
check "a download token for the bundle's file: 200 without credentials" test "$(code "$U?token=$TOK")" = 200
TOK2=$(pcurl -d "{\"sha256\":\"$(pcurl "$B/api/v1/releases/$R11" | jget package.sha256)\"}" "$B/api/v1/vehicles/$V1/download-tokens" | jget token)
check "... a token for another file: 403" test "$(code "$U?token=$TOK2")" = 403
check "an unknown campaign: 404" test "$(pcurl -o /dev/null -w '%{http_code}' "$B/packages/NOPE-1/full_package.bin" 2>/dev/null)" = 404
check "a campaign without a bundle: 404" test "$(pcurl -o /dev/null -w '%{http_code}' "$B/packages/$OTHER/metadata.json" 2>/dev/null)" = 404

# --- 4. the rollout ------------------------------------------------------------------------------
start_agent $V1 --log-level info
start_agent $V2 --log-level info
check "the agents sent their VCI" wait_for 60 vci_in $V1 && wait_for 60 vci_in $V2
pcurl -X POST "$B/api/v1/campaigns/TEST-001/start" -o /dev/null || bad "start"
for v in $V1 $V2; do
	check "$v: completed" test "$(final_state TEST-001 $v)" = completed
	check "$v: ECU_011 at 1.1.0" test "$(ecu_bank $v ECU_011 | cut -d' ' -f3)" = 1.1.0
	check "$v: ECU_012 at 1.1.0" test "$(ecu_bank $v ECU_012 | cut -d' ' -f3)" = 1.1.0
	check "$v: both units taken from the downloaded bundle" test "$(grep -c 'taken from the campaign.s bundle' "$WORK/agent-$v.log")" = 2
done
check "the proxy cut a download once" grep -q "cut after 2500000 bytes" "$WORK/proxy.log"
check "... an agent resumed the bundle after it (Range)" grep -q "resuming $BID.bundle.swpg at byte" "$WORK/agent-$V1.log" "$WORK/agent-$V2.log"
vget $V1 /uptane/image/targets.json "$WORK/it.json"
vget $V1 "/uptane/director/$V1/targets.json" "$WORK/dt.json"
check "full_package.bin is an Uptane target: the image repository's and $V1's director's" python3 - "$WORK/it.json" "$WORK/dt.json" "$BID" "$BSHA" "$(stat -c %s "$PB")" <<'PY'
import json, sys
it, dt = json.load(open(sys.argv[1]))["signed"]["targets"], json.load(open(sys.argv[2]))["signed"]["targets"]
name, sha, size = sys.argv[3] + ".bundle.swpg", sys.argv[4], int(sys.argv[5])
i, d = it[name], dt[name]
assert i["hashes"]["sha256"] == sha and i["length"] == size, i
assert i["custom"]["software_type"] == "BUNDLE", i
assert d["hashes"]["sha256"] == sha and d["length"] == size and d["custom"] == {"bundle": True}, d
PY
for v in $V1 $V2; do
	check "$v downloaded the bundle encrypted, decrypted it and checked it against its target" grep -q "bundle $BID.bundle.swpg: decrypted, $(stat -c %s "$PB") bytes, its Uptane target verified" "$WORK/agent-$v.log"
done
code=$(on35 curl -sS -D "$WORK/vh.txt" -o "$WORK/vdl.bin" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
	--cert "$PKI/vehicles/$V1/client.crt" --key "$PKI/vehicles/$V1/client.key" "$U")
check "a vehicle of the campaign by its certificate: 200 (got $code)" test "$code" = 200
check "... the encrypted copy, not the plaintext" python3 - "$WORK/vdl.bin" "$WORK/vh.txt" "$BSHA" "$(stat -c %s "$PB")" <<'PY'
import hashlib, sys
b = open(sys.argv[1], "rb").read()
h = hashlib.sha256(b).hexdigest()
assert h != sys.argv[3] and len(b) > int(sys.argv[4]), (h, len(b))
assert ('etag: "%s"' % h) in open(sys.argv[2]).read().lower()
PY
check "... and its metadata.json" vget $V1 /packages/TEST-001/metadata.json "$WORK/meta.json"
check "... the manifest, the units, the director's targets, the bundle's target" python3 - "$WORK/meta.json" "$PB" "$V1" "$BID" <<'PY'
import json, sys, hashlib, os
m = json.load(open(sys.argv[1]))
assert m["campaign_id"] == "TEST-001" and m["manifest"]["campaign_id"] == "TEST-001", m
assert m["bundle"]["sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest(), m
assert m["bundle"]["length"] == os.path.getsize(sys.argv[2]) and m["bundle"]["url"] == "/packages/TEST-001/full_package.bin"
assert len(m["units"]) == 4 and m["uptane"]["director_targets"] == "/uptane/director/%s/targets.json" % sys.argv[3], m
assert m["uptane"]["bundle_target"] == sys.argv[4] + ".bundle.swpg", m
PY
check "agent $V1 stops cleanly" stop_agent $V1
check "agent $V2 stops cleanly" stop_agent $V2
finish
