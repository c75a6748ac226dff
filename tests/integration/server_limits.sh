#!/usr/bin/env bash
# server_limits.sh: a request whose Content-Length is over limits.max_body_bytes is answered
# 413 at once, without the server waiting for (or reading) the body; an unparseable
# Content-Length 400 at once; the server keeps serving.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki
BROKER_PORT=1
write_server_conf s "limits.timeout = 10m" "limits.max_body_bytes = 64k"
sed -i '/^mqtt\.broker/d' "$WORK/s.conf"
start_server s
PORT=$(cat "$WORK/s.port")
# raw HEADERS-FILE OUT: sends the request head only (no body) over PQC TLS; s_client -quiet
# (which implies -ign_eof) keeps the connection open after it until the server closes it, and
# OUT gets what the server answered. A server that waited for the body would answer nothing
# before limits.timeout (10 minutes): the 20 s bound only ends the test instead of hanging it.
raw() {
	timeout 20 "$OPENSSL35" s_client -connect "127.0.0.1:$PORT" -quiet -groups X25519MLKEM768 \
		-CAfile "$PKI/ca/ca.crt" <"$1" >"$2" 2>/dev/null || true
}
printf 'POST /api/v1/vehicles HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n' >"$WORK/big.req"
raw "$WORK/big.req" "$WORK/big.out"
check "Content-Length 10 GB (no body sent): 413 at once" grep -q "^HTTP/1.1 413" "$WORK/big.out"
printf 'POST /api/v1/vehicles HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 12abc\r\n\r\n' >"$WORK/bad.req"
raw "$WORK/bad.req" "$WORK/bad.out"
check "Content-Length 12abc: 400 at once" grep -q "^HTTP/1.1 400" "$WORK/bad.out"
check "the server keeps serving" test "$(on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$BASE_s/health")" = 200
finish
