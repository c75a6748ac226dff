#!/usr/bin/env bash
# broker_acl.sh: `pqota broker config` writes a configuration on which Debian's mosquitto runs
# on OpenSSL 3.5 with the profile's PQC group only; the ACL confines each vehicle to its own
# oem/<VIN>/# and read-only oem/broadcast/#, and gives the server identity oem/# (shared
# subscriptions included). Bad input is refused before anything is written.
. "$(dirname "$0")/lib.bash"

command -v mosquitto >/dev/null || { bad "mosquitto is not installed (scripts/bootstrap installs it)"; finish; }
pki="$WORK/pki"
out="$WORK/broker"
"$PQOTA" keys init "$pki" >/dev/null
"$PQOTA" keys vehicle VIN1 --dir "$pki" >/dev/null
"$PQOTA" keys vehicle VIN2 --dir "$pki" >/dev/null

# --- bad input ---
expect_exit 64 "config without --out is a usage error" "$PQOTA" broker config --pki "$pki"
expect_exit 2 "a directory that is no PKI is refused" "$PQOTA" broker config --pki "$WORK" --out "$WORK/x"
check "...naming the missing file" contains "$WORK/last.out" "ca.crt"
check "...and nothing was written" test ! -e "$WORK/x/mosquitto.conf"
expect_exit 64 "a port out of range is refused" "$PQOTA" broker config --pki "$pki" --out "$out" --listen 127.0.0.1:70000
expect_exit 64 "a VIN-shaped server CN is refused (a vehicle could hold oem/#)" \
	"$PQOTA" broker config --pki "$pki" --out "$out" --server-cn VIN1
expect_exit 64 "an unknown profile is refused" "$PQOTA" broker config --pki "$pki" --out "$out" --profile 99
expect_exit 0 "--help" "$PQOTA" broker config --help
check "...documents --listen" contains "$WORK/last.out" "--listen HOST:PORT"

# --- the configuration ---
port=$(free_port)
user=()
[ "$(id -u)" = 0 ] && user=(--user root) # mosquitto started as root would switch users
expect_exit 0 "broker config writes the files" "$PQOTA" broker config --pki "$pki" --out "$out" \
	--listen "127.0.0.1:$port" "${user[@]}"
check "...reports the hybrid group" contains "$WORK/last.out" "key exchange  X25519MLKEM768"
for f in mosquitto.conf mosquitto.acl openssl.cnf run-broker.sh; do
	check "...$f exists" test -s "$out/$f"
done
check "run-broker.sh is executable" test -x "$out/run-broker.sh"
check "mosquitto.conf requires client certificates" grep -qx "require_certificate true" "$out/mosquitto.conf"
check "mosquitto.conf takes the CN as username" grep -qx "use_identity_as_username true" "$out/mosquitto.conf"
check "openssl.cnf sets the profile's group" grep -qx "Groups = X25519MLKEM768" "$out/openssl.cnf"
expect_exit 2 "a second run without --force refuses to replace the files" \
	"$PQOTA" broker config --pki "$pki" --out "$out" --listen "127.0.0.1:$port"
check "...and says so" contains "$WORK/last.out" "exists"

# the port, free when chosen, may have been taken since: then the files are written again
# for another one
run_broker() { # PORT
	if [ "$1" != "$port" ]; then
		"$PQOTA" broker config --pki "$pki" --out "$out" --listen "127.0.0.1:$1" "${user[@]}" \
			--force >/dev/null || return 1
	fi
	"$out/run-broker.sh" >"$WORK/mosquitto.log" 2>&1 &
	BROKER_PID=$!
}
if ! broker_start run_broker "$WORK/mosquitto.log" "$port"; then
	bad "mosquitto did not start on the generated configuration"
	cat "$WORK/mosquitto.log"
	finish
fi
port=$BROKER_PORT
BROKER=$BROKER_PID
ok "mosquitto runs on the generated configuration"
check "the broker loaded pqota's OpenSSL 3.5" grep -q "$OPENSSL_PREFIX/lib/libssl.so.3" "/proc/$BROKER/maps"

cred() { echo --cafile "$pki/ca/ca.crt" --cert "$pki/$1/client.crt" --key "$pki/$1/client.key"; }
# sub NAME WHO TOPIC PROBE: a subscriber, its output in $WORK/NAME.out, active when this
# returns; PROBE is a topic WHO may read and write (mqtt_sub's readiness probe)
sub() {
	# shellcheck disable=SC2046
	mqtt_sub "$WORK/$1.out" "$4" -V mqttv5 -h 127.0.0.1 -p "$port" $(cred "$2") -- -t "$3" -W 60 -v ||
		bad "subscriber $1 not ready"
	SUBS+=("$1")
}
pub() {
	# shellcheck disable=SC2046
	on35 mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$port" $(cred "$1") -t "$2" -m "$3" -q 1 >>"$WORK/pub.out" 2>&1
}
SUBS=()
sub server server-client 'oem/#' oem/test/probe-server
sub shared server-client '$share/pqota/oem/+/wake_up' oem/test/probe-shared
sub v1all vehicles/VIN1 'oem/#' oem/VIN1/test/probe-v1all
sub v1 vehicles/VIN1 'oem/VIN1/#' oem/VIN1/test/probe-v1
sub v2share vehicles/VIN2 '$share/x/oem/+/wake_up' oem/VIN2/test/probe-v2share
pub vehicles/VIN2 oem/VIN1/wake_up spoofed-wake
pub vehicles/VIN2 oem/VIN2/wake_up own-wake
pub vehicles/VIN1 oem/VIN1/wake_up v1-wake
pub server-client oem/VIN1/update_request for-v1
pub vehicles/VIN2 oem/broadcast/releases fake-release
pub server-client oem/broadcast/releases real-release
# every publish above was acknowledged: once each subscriber got a marker published after
# them, what it did not get was not delivered to it
for s in "${SUBS[@]}"; do mqtt_sub_sync "$WORK/$s.out" || bad "subscriber $s: no barrier"; done

check "the server sees a vehicle's own topic" grep -qx "oem/VIN2/wake_up own-wake" "$WORK/server.out"
check "the server's shared subscription receives wake-ups" grep -qx "oem/VIN1/wake_up v1-wake" "$WORK/shared.out"
check "the broker refused VIN2's publish on VIN1's topic" contains "$WORK/pub.out" "Not authorized"
check "...which no subscriber received" bash -c "! grep -q spoofed-wake $WORK/*.out"
check "a vehicle cannot forge a broadcast" bash -c "! grep -q fake-release $WORK/server.out $WORK/v1all.out"
check "a vehicle receives the server's broadcast" grep -qx "oem/broadcast/releases real-release" "$WORK/v1all.out"
check "a vehicle receives the server's message on its topic" grep -qx "oem/VIN1/update_request for-v1" "$WORK/v1.out"
check "a vehicle subscribed to oem/# sees nothing of VIN2" bash -c "! grep -q VIN2 $WORK/v1all.out"
check "a vehicle's shared subscription on oem/+/wake_up gets no other VIN's" bash -c "! grep -q VIN1 $WORK/v2share.out"
check "the broker logged the VIN as the username" grep -q "u'VIN1'" "$WORK/mosquitto.log"

# a classical-only client (Debian's OpenSSL 3.0 offers no ML-KEM group) is refused
rc=0
env -u LD_LIBRARY_PATH mosquitto_pub -h 127.0.0.1 -p "$port" $(cred vehicles/VIN1) -t oem/VIN1/x -m classical >"$WORK/classical.out" 2>&1 || rc=$?
check "a client without the PQC group cannot connect (exit $rc)" test "$rc" != 0
check "...the broker found no suitable key share" grep -q "no suitable key share" "$WORK/mosquitto.log"
finish
