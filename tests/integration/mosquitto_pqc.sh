#!/usr/bin/env bash
# mosquitto_pqc.sh: Debian's mosquitto broker running on OpenSSL 3.5 with pqota's PKI
# (TLS 1.3, client certificates, identity = CN): pqota tls check reports the hybrid group,
# a client without a certificate is refused, and an MQTT message crosses PQC mutual TLS.
. "$(dirname "$0")/lib.bash"

command -v mosquitto >/dev/null || { bad "mosquitto is not installed (scripts/bootstrap installs it)"; finish; }
pki="$WORK/pki"
"$PQOTA" keys init "$pki" >/dev/null
"$PQOTA" keys vehicle VIN123 --dir "$pki" >/dev/null

run_broker() { # PORT
	port=$1
	cat >"$WORK/mosquitto.conf" <<CONF
listener $port 127.0.0.1
cafile $pki/ca/ca.crt
certfile $pki/broker/broker.crt
keyfile $pki/broker/broker.key
tls_version tlsv1.3
require_certificate true
use_identity_as_username true
allow_anonymous false
CONF
	# mosquitto started as root switches to its own user, which cannot read the 0700 keys
	[ "$(id -u)" = 0 ] && echo "user root" >>"$WORK/mosquitto.conf"
	"$PQOTA_SRC/scripts/env" -- mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
	BROKER_PID=$!
}
broker_start run_broker "$WORK/mosquitto.log" || { bad "mosquitto did not start"; cat "$WORK/mosquitto.log"; finish; }
BROKER=$BROKER_PID
check "broker loaded pqota's OpenSSL 3.5 (not the system's 3.0)" grep -q "$OPENSSL_PREFIX/lib/libssl.so.3" "/proc/$BROKER/maps"

v="$pki/vehicles/VIN123"
expect_exit 0 "tls check with the vehicle certificate" "$PQOTA" tls check "127.0.0.1:$port" --ca "$pki/ca/ca.crt" --cert "$v/client.crt" --key "$v/client.key"
check "the broker negotiated X25519MLKEM768" contains "$WORK/last.out" "group         X25519MLKEM768 (hybrid"
check "the broker presented pqota's broker certificate" contains "$WORK/last.out" "CN = pqota-broker"
expect_exit 2 "tls check without a client certificate is refused" "$PQOTA" tls check "127.0.0.1:$port" --ca "$pki/ca/ca.crt" --wait 2000
check "...by the broker's certificate-required alert" contains "$WORK/last.out" "certificate required"

# a real MQTT round trip over PQC mutual TLS, with Debian's clients on OpenSSL 3.5
s="$pki/server-client"
mqtt_sub "$WORK/sub.out" test/probe -h 127.0.0.1 -p "$port" --cafile "$pki/ca/ca.crt" --cert "$s/client.crt" \
	--key "$s/client.key" --tls-version tlsv1.3 -- -t 'oem/VIN123/wake_up' -C 1 -W 10 ||
	bad "the subscriber is not ready"
SUB=$MQTT_SUB_PID
msg='{"msg_type":"vehicle_wake_up","vin":"VIN123","boot_seq":1}'
on35 mosquitto_pub -h 127.0.0.1 -p "$port" --cafile "$pki/ca/ca.crt" --cert "$v/client.crt" --key "$v/client.key" \
	--tls-version tlsv1.3 -t 'oem/VIN123/wake_up' -q 1 -m "$msg" >"$WORK/pub.out" 2>&1 || cat "$WORK/pub.out"
wait "$SUB" || true
check "the wake-up crossed the broker over PQC mTLS" grep -qF "$msg" "$WORK/sub.out"
check "the broker took the vehicle's CN as its identity" grep -q "u'VIN123'" "$WORK/mosquitto.log"
finish
