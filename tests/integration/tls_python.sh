#!/usr/bin/env bash
# tls_python.sh: the Python-plus-C example (examples/python) end to end: pqota_https.py, a
# Python HTTPS server whose TLS is libpqota-tls (ctypes), serves X25519MLKEM768; pqota tls
# check, OpenSSL 3.5's s_client and pqota_fetch.py (a Python client through the library)
# talk to it; a server from another CA, a classical-only client and (with --mtls) a client
# without a certificate are refused.
. "$(dirname "$0")/lib.bash"

EX="$PQOTA_SRC/examples/python"
export PQOTA_TLS_LIB="$(dirname "$PQOTA")/libpqota-tls.so.1"
[ -f "$PQOTA_TLS_LIB" ] || { bad "no $PQOTA_TLS_LIB (the build makes it)"; finish; }
# A sanitizer build's library needs its runtime loaded before python3 (not instrumented,
# and its own allocations are not ours to judge: no leak check there).
# The interpreter itself, not a wrapper script (pyenv's shims are bash) that would inherit it.
python=$(python3 -c 'import sys; print(sys.executable)')
py_env=()
asan=$(ldd "$PQOTA_TLS_LIB" | awk '/libasan/ {print $3}')
[ -z "$asan" ] || py_env=(env "LD_PRELOAD=$asan" "ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0")
py() { "${py_env[@]}" "$python" "$@"; }

pki="$WORK/pki"
other="$WORK/other"
expect_exit 0 "keys init (profile 2 certificates: ECDSA P-256)" "$PQOTA" keys init "$pki"
expect_exit 0 "keys vehicle VIN123" "$PQOTA" keys vehicle VIN123 --dir "$pki"
expect_exit 0 "keys init of a second, unrelated PKI" "$PQOTA" keys init "$other"
expect_exit 0 "the binding loads the library on OpenSSL 3.5+" py "$EX/pqota_tls.py"
check "...and lists the 13 profiles" test "$(grep -cE '^ ?[0-9]{1,2}  [a-z0-9-]+ ' "$WORK/last.out")" = 13

# start_server NAME ARGS...: pqota_https.py on a port of its own choosing (port 0: no race),
# its output in $WORK/NAME.log; sets PORT once it listens
start_server() {
	local name=$1
	shift
	rm -f "$WORK/$name.port"
	py "$EX/pqota_https.py" --pki "$pki" --listen 127.0.0.1:0 --port-file "$WORK/$name.port" "$@" \
		>"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	if ! wait_for 20 test -s "$WORK/$name.port"; then
		bad "pqota_https.py ($name) did not start"
		sed 's/^/     /' "$WORK/$name.log"
		finish
	fi
	PORT=$(cat "$WORK/$name.port")
}
# logged NAME PATTERN: the server's log shows PATTERN (it logs after each connection)
logged() { wait_for 10 grep -q -- "$2" "$WORK/$1.log"; }

start_server plain
check "the server listens with profile mlkem768-ecdsa-p256, group X25519MLKEM768" \
	contains "$WORK/plain.log" "profile mlkem768-ecdsa-p256 (group X25519MLKEM768)"
check "...on the OpenSSL the library was built with" contains "$WORK/plain.log" "on OpenSSL 3\.[5-9]"

expect_exit 0 "pqota tls check: quantum-safe" "$PQOTA" tls check "127.0.0.1:$PORT" --ca "$pki/ca/ca.crt"
check "tls check: group X25519MLKEM768 (hybrid)" contains "$WORK/last.out" "group         X25519MLKEM768 (hybrid"
check "tls check: TLSv1.3" contains "$WORK/last.out" "protocol      TLSv1.3"
check "tls check: the chain verified against the PKI's CA" contains "$WORK/last.out" "verified      yes"
check "tls check: verdict QUANTUM-SAFE" contains "$WORK/last.out" "verdict       QUANTUM-SAFE key exchange"
check "the server logged the probe's session" logged plain "accepted .* group=X25519MLKEM768 protocol=TLSv1.3 client=- quantum_safe=yes"
expect_exit 2 "pqota tls check verifying against another CA fails" \
	"$PQOTA" tls check "127.0.0.1:$PORT" --ca "$other/ca/ca.crt"
check "...because the certificate does not verify" contains "$WORK/last.out" "certificate verify failed"
expect_exit 2 "pqota tls check offering only classical X25519 (profile 0) is refused" \
	"$PQOTA" tls check "127.0.0.1:$PORT" --profile 0
check "the server logged the refusal" logged plain "rejected .*handshake"

# a Python client through the library: the page, its session, the server's identity
expect_exit 0 "pqota_fetch.py GET /" py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt"
check "the body is the server's page" contains "$WORK/last.out" "<h1>Hello from Python over libpqota-tls</h1>"
check "the page names the group" contains "$WORK/last.out" "Key exchange: <code>X25519MLKEM768</code> (quantum-safe), TLSv1.3"
check "the client saw X25519MLKEM768 and the server's certificate" \
	contains "$WORK/last.out" "tls: TLSv1.3 group=X25519MLKEM768 .* server=O = pqota, CN = pqota-server sha256="
want_sha=$("$OPENSSL35" x509 -in "$pki/server/server.crt" -outform DER | sha256sum | cut -d' ' -f1)
check "the server certificate's SHA-256 is the one on disk" contains "$WORK/last.out" "sha256=$want_sha"
check "the server logged GET / 200" logged plain "request=GET / 200"
expect_exit 1 "pqota_fetch.py GET /missing: 404" py "$EX/pqota_fetch.py" "https://localhost:$PORT/missing" --ca "$pki/ca/ca.crt"
check "...HTTP/1.1 404" contains "$WORK/last.out" "HTTP/1.1 404 Not Found"
expect_exit 2 "pqota_fetch.py trusting another CA refuses the server" \
	py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$other/ca/ca.crt"
check "...certificate verify failed" contains "$WORK/last.out" "TLS handshake failed: .*certificate verify failed"
check "...and fetched nothing" bash -c "! grep -q 'Hello from Python' '$WORK/last.out'"
expect_exit 2 "pqota_fetch.py under a name the certificate lacks is refused" \
	py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt" --name evil.example
check "...hostname mismatch" contains "$WORK/last.out" "hostname mismatch"
expect_exit 64 "pqota_fetch.py with an http:// URL is a usage error" py "$EX/pqota_fetch.py" "http://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt"

# a third-party client: OpenSSL 3.5's s_client offering only X25519MLKEM768
printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
	"$OPENSSL35" s_client -connect "127.0.0.1:$PORT" -groups X25519MLKEM768 -CAfile "$pki/ca/ca.crt" \
		-verify_return_error -brief -ign_eof >"$WORK/sc.out" 2>&1 || true
check "s_client: negotiated X25519MLKEM768" contains "$WORK/sc.out" "Negotiated TLS1.3 group: X25519MLKEM768"
check "s_client: HTTP/1.1 200 with the page" bash -c "grep -q 'HTTP/1.1 200 OK' '$WORK/sc.out' && grep -q 'Hello from Python' '$WORK/sc.out'"
check "s_client: the answer names its group in X-TLS-Group" contains "$WORK/sc.out" "X-TLS-Group: X25519MLKEM768"
# a request head over 16 KiB is refused with 431 (17,000 bytes: the server reads them all
# before it answers, so its close cannot reset the connection), and it keeps serving
{ printf 'GET / HTTP/1.1\r\nX-Pad: '; head -c 16976 /dev/zero | tr '\0' a; } |
	"$OPENSSL35" s_client -connect "127.0.0.1:$PORT" -CAfile "$pki/ca/ca.crt" -quiet -ign_eof >"$WORK/big.out" 2>&1 || true
check "a 17 KB request head is answered 431" contains "$WORK/big.out" "HTTP/1.1 431"
expect_exit 0 "the server still serves afterwards" py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/health" --ca "$pki/ca/ca.crt"

# eight clients at once: one context, a thread per connection in the server
par=()
for i in 1 2 3 4 5 6 7 8; do
	py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt" >"$WORK/par.$i" 2>&1 &
	par+=($!)
done
served=0
for i in "${!par[@]}"; do
	wait "${par[$i]}" && grep -q "Hello from Python" "$WORK/par.$((i + 1))" && served=$((served + 1))
done
check "eight concurrent clients all got the page ($served/8)" test "$served" = 8

# mutual TLS: the vehicle's certificate is the identity; no certificate, no page
start_server mtls --mtls
veh="$pki/vehicles/VIN123"
expect_exit 0 "mTLS: pqota_fetch.py with VIN123's certificate" \
	py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt" --cert "$veh/client.crt" --key "$veh/client.key"
check "mTLS: the page names the client VIN123" contains "$WORK/last.out" "Client certificate: VIN123."
check "mTLS: the server logged client=VIN123" logged mtls "accepted .* client=VIN123 quantum_safe=yes request=GET / 200"
expect_exit 2 "mTLS: pqota_fetch.py without a certificate is refused" \
	py "$EX/pqota_fetch.py" "https://127.0.0.1:$PORT/" --ca "$pki/ca/ca.crt"
# TLS 1.3: the server refuses after the client's handshake; the client learns it from the
# alert at its first read, or (when its request crossed the server's close) as a reset
check "mTLS: ...told by the server's alert or reset" \
	bash -c "grep -qE 'certificate required|write: (Connection reset by peer|Broken pipe)' '$WORK/last.out'"
check "mTLS: the server logged the refusal" logged mtls "rejected .*peer did not return a certificate"
expect_exit 0 "mTLS: pqota tls check with the vehicle certificate" \
	"$PQOTA" tls check "127.0.0.1:$PORT" --ca "$pki/ca/ca.crt" --cert "$veh/client.crt" --key "$veh/client.key"
expect_exit 2 "mTLS: pqota tls check without one fails" "$PQOTA" tls check "127.0.0.1:$PORT" --ca "$pki/ca/ca.crt"

# a profile that does not fit the certificate is refused when the server starts
expect_exit 2 "pqota_https.py with profile 8 (ML-DSA-65) and ECDSA certificates refuses to start" \
	py "$EX/pqota_https.py" --pki "$pki" --listen 127.0.0.1:0 --profile 8
check "...saying why" contains "$WORK/last.out" "profile 8 (mlkem768-mldsa65) signs with ml-dsa-65"
finish
