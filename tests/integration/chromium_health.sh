#!/usr/bin/env bash
# chromium_health.sh: Debian's Chromium (its own TLS stack, BoringSSL) loads
# https://127.0.0.1:PORT/health from pqota server and negotiates X25519MLKEM768: the page
# arrives, and the server's per-group TLS counter shows the request on that group.
. "$(dirname "$0")/lib.bash"

command -v chromium >/dev/null || { bad "chromium is not installed (scripts/bootstrap --with browser)"; finish; }
"$PQOTA" keys init "$WORK/pki" >/dev/null
cat >"$WORK/server.conf" <<EOF
listen = 127.0.0.1:0
workers = 1
tls.pki = $WORK/pki
data_dir = $WORK/data
port_file = $WORK/port
log.level = warn
EOF
"$PQOTA" server --config "$WORK/server.conf" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_for 20 test -s "$WORK/port" || { bad "the server did not start"; cat "$WORK/server.log"; finish; }
port=$(cat "$WORK/port")

metric() { # the server's count of requests over X25519MLKEM768, fetched over that group
	on35 curl -s --curves X25519MLKEM768 --cacert "$WORK/pki/ca/ca.crt" "https://127.0.0.1:$port/metrics" |
		awk '/^pqota_tls_requests_total\{group="X25519MLKEM768"\}/ {print $2}'
}
before=$(metric)
# Chromium trusts pqota's CA through a certificate SPKI pin; no system store is touched.
spki=$("$OPENSSL35" x509 -in "$WORK/pki/server/server.crt" -pubkey -noout |
	"$OPENSSL35" pkey -pubin -outform der | "$OPENSSL35" dgst -sha256 -binary | base64)
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$WORK/chrome" --ignore-certificate-errors-spki-list="$spki" \
	--dump-dom "https://127.0.0.1:$port/health" >"$WORK/page.html" 2>"$WORK/chrome.log" || true
check "Chromium loaded /health over TLS" grep -q '"status":"ok"' "$WORK/page.html"
after=$(metric)
# `metric` itself adds one X25519MLKEM768 request per call: Chromium's adds at least one more
check "the server counted Chromium's request on X25519MLKEM768 ($before -> $after)" \
	test "$((after - before))" -ge 2
# and the server accepts no classical-only client, so Chromium's handshake used the hybrid
expect_exit 2 "a classical-only (X25519) client is refused by the same server" \
	"$PQOTA" tls check "127.0.0.1:$port" --profile 0 --wait 0 --timeout 3000
finish
