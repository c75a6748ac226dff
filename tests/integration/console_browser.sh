#!/usr/bin/env bash
# console_browser.sh: the operator console in a real browser. Debian's Chromium, driven by
# Playwright (playwright-core from tests/browser/package-lock.json), against a real
# `pqota server` (console, sessions, live events) with Debian's mosquitto and three
# `pqota vehicle` agents (one of them fails ECU_011's programming), over X25519MLKEM768.
# The specs are tests/browser/console.test.mjs (node's test runner); this script sets up
# the system, creates an admin and a viewer key, seeds 10,000 vehicles when
# seed_fleet is built, and hands the URL, keys and files to the specs in PQOTA_* variables.
# Screenshots go to $PQOTA_SHOTS (default: $WORK/shots, kept with KEEP_WORK=1).
# Skips (exit 77) only when chromium or node cannot be found.
SKIP=77
command -v chromium >/dev/null 2>&1 || { echo "SKIP: chromium is not installed (scripts/bootstrap --with browser)"; exit $SKIP; }
command -v node >/dev/null 2>&1 || { echo "SKIP: node is not installed (scripts/bootstrap --with browser)"; exit $SKIP; }
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

BROWSER_DIR="$PQOTA_SRC/tests/browser"
# the test's own dependencies: installed from the lock file when missing or older than it
if [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ] ||
	[ "$BROWSER_DIR/package-lock.json" -nt "$BROWSER_DIR/node_modules/.package-lock.json" ]; then
	command -v npm >/dev/null 2>&1 || { bad "npm is missing: scripts/bootstrap --with browser"; finish; }
	(cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
		{ bad "npm ci in tests/browser failed"; cat "$WORK/npm.log"; finish; }
fi

V1=WCONSOLE00000001 # completes
V2=WCONSOLE00000002 # completes
V3=WCONSOLE00000003 # ECU_011 programming fails: the deployment fails and rolls back
VX=WCONSOLEXSS00001 # registered only: its model is an XSS payload
XSS_MODEL='"><img src=x onerror=alert(3)><script>alert(4)</script>' # (a model: 64 bytes at most)
make_pki $V1 $V2 $V3 $VX
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
CA="$PKI/ca/ca.crt"
make_key s1
check "the agents' vehicles are registered" register "$B" $V1 $V2 $V3
python3 -c 'import json, sys
vin, d, model = sys.argv[1], sys.argv[2], sys.argv[3]
r = lambda f: open(d + "/" + f).read()
print(json.dumps({"vin": vin, "model": model, "certificate": r("client.crt"), "default_ecus": False,
                  "kem_x25519_pub": r("kem-x25519.pub"), "kem_mlkem768_pub": r("kem-ml-kem-768.pub")}))' \
	"$VX" "$PKI/vehicles/$VX" "$XSS_MODEL" >"$WORK/reg-x.json"
check "a vehicle whose model is an XSS payload is registered" pcurl --data @"$WORK/reg-x.json" "$B/api/v1/vehicles" -o /dev/null
ADMIN_KEY=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role admin --name console-admin 2>/dev/null)
VIEWER_KEY=$("$PQOTA" server --config "$WORK/s1.conf" apikey create --role viewer --name console-viewer 2>/dev/null)
check "an admin and a viewer key" test -n "$ADMIN_KEY" -a -n "$VIEWER_KEY"

# the agents: V3 fails ECU_011's programming (as scripts/demo's third vehicle)
check "the trusted Uptane roots are served" provision $V1 $V2 $V3
start_agent $V1
start_agent $V2
start_agent $V3 --fail-program ECU_011
for v in $V1 $V2 $V3; do check "$v is online with its VCI" wait_for 60 vci_in $v; done

# the images the browser uploads: a 12 MiB image (three pieces of 4 MiB), a new build of
# it, and the SWPG differential package between the two (pqota pack delta)
python3 - "$WORK" <<'PY'
import random, sys
d = sys.argv[1]
rnd = random.Random(12)
base = bytearray(rnd.getrandbits(8) for _ in range(1 << 16)) * 192  # 12 MiB, compressible
for i in range(0, len(base), 4096):
    base[i:i + 8] = i.to_bytes(8, "little")
new = bytearray(base)
for _ in range(30):
    at = rnd.randrange(len(new) - 256)
    new[at:at + 200] = bytes(rnd.getrandbits(8) for _ in range(200))
open(f"{d}/big-2.0.0.bin", "wb").write(base)
open(f"{d}/big-2.1.0.bin", "wb").write(new)
small = bytearray(rnd.getrandbits(8) for _ in range(48000))
open(f"{d}/small-1.1.0.bin", "wb").write(small)
small[1000:1100] = bytes(100)
open(f"{d}/small-1.2.0.bin", "wb").write(small)
PY
check "an SWPG delta package between the two builds" "$PQOTA" pack delta --from "$WORK/big-2.0.0.bin" \
	--to "$WORK/big-2.1.0.bin" -o "$WORK/big-2.1.0.delta.swpg" --ecu ECU_032 --from-version 2.0.0 \
	--to-version 2.1.0 --level 3

# 10,000 more vehicles straight into the store, when the seeding tool is built
SEED="$(dirname "$PQOTA")/seed_fleet"
SEEDED=""
if [ -x "$SEED" ]; then
	check "10,000 vehicles seeded" "$SEED" --db "$WORK/data-s1/pqota.db" --count 10000 --prefix WSEED \
		--model Model-X --vmg 1.0.0 --online-every 7 && SEEDED=10000
else
	echo "     (no $SEED: the fleet test at 10,000 vehicles is skipped)"
fi

# Chromium trusts the server's certificate through its SPKI pin (no system store touched)
SPKI=$("$OPENSSL35" x509 -in "$PKI/server/server.crt" -pubkey -noout |
	"$OPENSSL35" pkey -pubin -outform der | "$OPENSSL35" dgst -sha256 -binary | base64)
metric_pq() {
	on35 curl -s --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$B/metrics" |
		awk '/^pqota_tls_requests_total\{group="X25519MLKEM768"\}/ {print $2}'
}
before=$(metric_pq)
SHOTS=${PQOTA_SHOTS:-$WORK/shots}
mkdir -p "$SHOTS"
rc=0
PQOTA_FAIL_AGENT_PID=$(eval echo "\$AGENT_$V3") PQOTA_CHROMIUM=$(command -v chromium) PQOTA_URL=$B PQOTA_SPKI=$SPKI PQOTA_ADMIN_KEY=$ADMIN_KEY PQOTA_VIEWER_KEY=$VIEWER_KEY \
	PQOTA_OPERATOR_KEY=$APIKEY PQOTA_VINS_OK="$V1,$V2" PQOTA_VIN_FAIL=$V3 PQOTA_VIN_XSS=$VX \
	PQOTA_XSS_MODEL=$XSS_MODEL PQOTA_FILES=$WORK PQOTA_SEEDED=$SEEDED PQOTA_SHOTS=$SHOTS \
	timeout 300 node --test --test-concurrency=1 --test-reporter=spec "$BROWSER_DIR/console.test.mjs" \
	2>&1 | tee "$WORK/node.log" || rc=$?
check "the browser specs pass (node --test)" test "$rc" = 0
after=$(metric_pq)
# metric_pq's own two requests count too: the browser's are the rest
check "the server counted the browser's requests on X25519MLKEM768 ($before -> $after)" \
	test "$((after - before))" -gt 10
echo "     screenshots: $SHOTS ($(ls "$SHOTS" | wc -l) files)"
[ "$rc" = 0 ] || { echo "--- server log (tail)"; tail -n 30 "$WORK/s1.log"; }
finish
