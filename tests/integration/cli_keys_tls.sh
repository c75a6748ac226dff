#!/usr/bin/env bash
# cli_keys_tls.sh: pqota keys init/vehicle, then pqota tls serve answering a third-party
# client (OpenSSL 3.5's s_client) that offers only X25519MLKEM768, and pqota tls check
# against pqota tls serve and against a classical-only openssl s_server.
. "$(dirname "$0")/lib.bash"

pki="$WORK/pki"
expect_exit 0 "keys init" "$PQOTA" keys init "$pki"
expect_exit 2 "keys init refuses to replace a PKI" "$PQOTA" keys init "$pki"
check "refusal says why" contains "$WORK/last.out" "already holds a PKI"
expect_exit 0 "keys vehicle VIN123" "$PQOTA" keys vehicle VIN123 --dir "$pki"
expect_exit 2 "keys vehicle rejects a topic wildcard in the VIN" "$PQOTA" keys vehicle 'VIN+1' --dir "$pki"
expect_exit 2 "keys vehicle refuses the server's own identity as a VIN" "$PQOTA" keys vehicle pqota-server --dir "$pki"
expect_exit 64 "keys without arguments is a usage error" "$PQOTA" keys
expect_exit 0 "keys --help" "$PQOTA" keys --help
expect_exit 64 "keys init --profile 13 is refused" "$PQOTA" keys init "$WORK/x" --profile 13

mode_of() { stat -c %a "$1"; }
bad_modes=0
while IFS= read -r f; do
	[ "$(mode_of "$f")" = 600 ] || { echo "     $f has mode $(mode_of "$f")"; bad_modes=1; }
done < <(find "$pki" -name '*.key')
check "every private key file is mode 0600 ($(find "$pki" -name '*.key' | wc -l) files)" test "$bad_modes" = 0
check "hybrid policy made classical + ML-DSA-65 role keys" test -f "$pki/uptane/image/root-ml-dsa-65.key" -a -f "$pki/uptane/image/root-ecdsa-p256.key"
check "vehicle certificate has CN = VIN" bash -c "'$OPENSSL35' x509 -in '$pki/vehicles/VIN123/client.crt' -noout -subject | grep -q 'CN *= *VIN123'"
check "vehicle certificate verifies against the CA" bash -c "'$OPENSSL35' verify -CAfile '$pki/ca/ca.crt' '$pki/vehicles/VIN123/client.crt' | grep -q OK"

# pqota tls serve, profile 2, answering OpenSSL's own client offering only X25519MLKEM768
"$PQOTA" tls serve --pki "$pki" --profile 2 --listen 127.0.0.1:0 --port-file "$WORK/port" >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/port" || { bad "tls serve did not start"; cat "$WORK/serve.log"; finish; }
port=$(cat "$WORK/port")
echo | "$OPENSSL35" s_client -connect "127.0.0.1:$port" -groups X25519MLKEM768 -CAfile "$pki/ca/ca.crt" \
	-verify_return_error -brief -ign_eof >"$WORK/sc.out" 2>&1 || true
check "s_client offering only X25519MLKEM768 negotiates it" contains "$WORK/sc.out" "Negotiated TLS1.3 group: X25519MLKEM768"
check "s_client verified pqota's certificate chain" contains "$WORK/sc.out" "Verification: OK"
check "pqota tls serve answered with its session line" contains "$WORK/sc.out" "pqota-tls-serve protocol=TLSv1.3 group=X25519MLKEM768"
echo | "$OPENSSL35" s_client -connect "127.0.0.1:$port" -groups X25519 -brief >"$WORK/sc2.out" 2>&1 || true
check "s_client offering only classical X25519 is refused" bash -c "! grep -q 'CONNECTION ESTABLISHED' '$WORK/sc2.out'"

expect_exit 0 "tls check reports quantum-safe" "$PQOTA" tls check "127.0.0.1:$port" --ca "$pki/ca/ca.crt"
check "tls check names the hybrid group" contains "$WORK/last.out" "group         X25519MLKEM768"
check "tls check names the signature algorithm" contains "$WORK/last.out" "ecdsa_secp256r1_sha256"
expect_exit 2 "tls check with a classical-only profile fails the handshake" "$PQOTA" tls check "127.0.0.1:$port" --profile 0
expect_exit 2 "tls check refuses a server name not in the certificate" "$PQOTA" tls check "127.0.0.1:$port" --ca "$pki/ca/ca.crt" --name evil.example
check "serve log shows an accepted hybrid session" contains "$WORK/serve.log" "accepted: TLSv1.3 group=X25519MLKEM768"
check "serve log shows the refused classical client" contains "$WORK/serve.log" "rejected:"

# a classical-only server: check says NOT quantum-safe and exits 1
# (free_port's port may be taken before s_server binds it: then s_server exits, try another)
listening() { ss -Hltn "sport = :$1" | grep -q LISTEN; }
up_or_gone() { listening "$1" || ! kill -0 "$2" 2>/dev/null; }
for _ in 1 2 3 4 5; do
	cport=$(free_port)
	"$OPENSSL35" s_server -accept "127.0.0.1:$cport" -cert "$pki/server/server.crt" -key "$pki/server/server.key" \
		-groups X25519 -tls1_3 -quiet >"$WORK/ss.log" 2>&1 &
	sspid=$!
	PIDS+=($sspid)
	wait_for 10 up_or_gone "$cport" "$sspid" || true
	kill -0 "$sspid" 2>/dev/null && break
done
wait_for 10 listening "$cport" || bad "openssl s_server did not start"
expect_exit 1 "tls check against a classical-only server exits 1" "$PQOTA" tls check "127.0.0.1:$cport" --ca "$pki/ca/ca.crt" --wait 0
check "...and says NOT QUANTUM-SAFE" contains "$WORK/last.out" "NOT QUANTUM-SAFE"
expect_exit 2 "tls check on a closed port exits 2" "$PQOTA" tls check "127.0.0.1:$(free_port)" --timeout 1000
expect_exit 64 "tls check with a malformed target" "$PQOTA" tls check "no-port-here:"
expect_exit 0 "pqota version reports OpenSSL 3.5+" "$PQOTA" version
check "...with ML-KEM/ML-DSA available" contains "$WORK/last.out" "ML-KEM/ML-DSA: yes"
finish
