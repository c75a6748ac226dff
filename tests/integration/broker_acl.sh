#!/usr/bin/env bash
# broker_acl.sh: `pqota broker config` writes a configuration on which Debian's mosquitto runs
# on OpenSSL 3.5 with the profile's PQC group only; the ACL confines each vehicle to reading
# its own oem/<VIN>/#, publishing on its protocol topics only (plus --vehicle-topic ones) and
# reading oem/broadcast/#, and gives the server identity oem/# (shared subscriptions
# included). The limits hold: one vehicle publishing four retained 30 MiB messages (the
# attack that grew an unlimited broker by 150 MB) is disconnected and the broker does not
# grow, while the same broker without the limits does (the figures are printed). Bad input is
# refused before anything is written.
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
expect_exit 64 "a vehicle topic with '#' inside is refused" \
	"$PQOTA" broker config --pki "$pki" --out "$out" --vehicle-topic 'a/#/b'
expect_exit 64 "a memory limit of 1 MiB is refused" \
	"$PQOTA" broker config --pki "$pki" --out "$out" --memory-limit 1
expect_exit 0 "--help" "$PQOTA" broker config --help
check "...documents --listen" contains "$WORK/last.out" "--listen HOST:PORT"

# --- the configuration ---
port=$(free_port)
user=()
[ "$(id -u)" = 0 ] && user=(--user root) # mosquitto started as root would switch users
# test/#: the subscribers' readiness probes (lib.bash mqtt_sub) as vehicles
expect_exit 0 "broker config writes the files" "$PQOTA" broker config --pki "$pki" --out "$out" \
	--listen "127.0.0.1:$port" "${user[@]}" --vehicle-topic 'test/#'
check "...reports the hybrid group" contains "$WORK/last.out" "key exchange  X25519MLKEM768"
for f in mosquitto.conf mosquitto.acl openssl.cnf run-broker.sh; do
	check "...$f exists" test -s "$out/$f"
done
check "run-broker.sh is executable" test -x "$out/run-broker.sh"
check "mosquitto.conf requires client certificates" grep -qx "require_certificate true" "$out/mosquitto.conf"
check "mosquitto.conf takes the CN as username" grep -qx "use_identity_as_username true" "$out/mosquitto.conf"
check "openssl.cnf sets the profile's group" grep -qx "Groups = X25519MLKEM768" "$out/openssl.cnf"
for l in "max_packet_size 1114112" "max_inflight_messages 20" "max_inflight_bytes 4194304" \
	"max_queued_messages 10000" "max_queued_bytes 67108864" "memory_limit 2147483648"; do
	check "mosquitto.conf sets $l" grep -qx "$l" "$out/mosquitto.conf"
done
check "the ACL lets vehicles read their subtree, not write all of it" \
	bash -c "grep -qx 'pattern read oem/%u/#' '$out/mosquitto.acl' && ! grep -q 'pattern readwrite oem/%u' '$out/mosquitto.acl'"
check "...and write their protocol topics and the --vehicle-topic" \
	bash -c "grep -qx 'pattern write oem/%u/ota/status' '$out/mosquitto.acl' && grep -qx 'pattern write oem/%u/test/#' '$out/mosquitto.acl'"
expect_exit 2 "a second run without --force refuses to replace the files" \
	"$PQOTA" broker config --pki "$pki" --out "$out" --listen "127.0.0.1:$port"
check "...and says so" contains "$WORK/last.out" "exists"

# the port, free when chosen, may have been taken since: then the files are written again
# for another one
run_broker() { # PORT
	if [ "$1" != "$port" ]; then
		"$PQOTA" broker config --pki "$pki" --out "$out" --listen "127.0.0.1:$1" "${user[@]}" \
			--vehicle-topic 'test/#' --force >/dev/null || return 1
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
pub vehicles/VIN1 oem/VIN1/update_request v1-not-a-protocol-topic
pub vehicles/VIN2 oem/broadcast/releases fake-release
pub server-client oem/broadcast/releases real-release
# every publish above was acknowledged: once each subscriber got a marker published after
# them, what it did not get was not delivered to it
for s in "${SUBS[@]}"; do mqtt_sub_sync "$WORK/$s.out" || bad "subscriber $s: no barrier"; done

check "the server sees a vehicle's own topic" grep -qx "oem/VIN2/wake_up own-wake" "$WORK/server.out"
check "the server's shared subscription receives wake-ups" grep -qx "oem/VIN1/wake_up v1-wake" "$WORK/shared.out"
check "the broker refused VIN2's publish on VIN1's topic" contains "$WORK/pub.out" "Not authorized"
check "...which no subscriber received" bash -c "! grep -q spoofed-wake $WORK/*.out"
check "a vehicle cannot publish on a topic of its subtree that is not its protocol's" bash -c "! grep -q v1-not-a-protocol-topic $WORK/*.out"
check "a vehicle cannot forge a broadcast" bash -c "! grep -q fake-release $WORK/server.out $WORK/v1all.out"
check "a vehicle receives the server's broadcast" grep -qx "oem/broadcast/releases real-release" "$WORK/v1all.out"
check "a vehicle receives the server's message on its topic" grep -qx "oem/VIN1/update_request for-v1" "$WORK/v1.out"
check "a vehicle subscribed to oem/# sees nothing of VIN2" bash -c "! grep -q VIN2 $WORK/v1all.out"
check "a vehicle's shared subscription on oem/+/wake_up gets no other VIN's" bash -c "! grep -q VIN1 $WORK/v2share.out"
check "the broker logged the VIN as the username" grep -q "u'VIN1'" "$WORK/mosquitto.log"

# --- the limits: one vehicle's four retained 30 MiB messages ---
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
head -c $((30 * 1024 * 1024)) /dev/urandom >"$WORK/big.bin"
# attack PORT: VIN1 publishes the four, retained, on four of its topics; prints how many the
# broker acknowledged. MQTT 3.1.1: an MQTT 5 client would see the broker's maximum packet
# size in CONNACK and not even send them; an attacker's client sends anyway.
attack() {
	local n=0 t
	for t in wake_up vci response telemetry; do
		# shellcheck disable=SC2046
		on35 mosquitto_pub -V mqttv311 -h 127.0.0.1 -p "$1" $(cred vehicles/VIN1) -t "oem/VIN1/$t" \
			-f "$WORK/big.bin" -r -q 1 >>"$WORK/attack.out" 2>&1 && n=$((n + 1))
	done
	echo "$n"
}
before=$(rss_kb "$BROKER")
acked=$(attack "$port")
after=$(rss_kb "$BROKER")
echo "     limited broker: RSS ${before} kB before, ${after} kB after; $acked of 4 messages taken"
check "the limited broker took none of the four 30 MiB messages" test "$acked" = 0
check "...and did not grow by more than 8 MB" test $((after - before)) -lt 8192
check "...and still serves: a vehicle's message arrives" pub vehicles/VIN1 oem/VIN1/wake_up after-attack
check "...at the server" wait_for 10 grep -qx "oem/VIN1/wake_up after-attack" "$WORK/server.out"
# the same broker without the limits (a reference run): the attack grows it
sed -e '/^max_packet_size/d' -e '/^max_inflight_bytes/d' -e '/^max_queued_bytes/d' -e '/^memory_limit/d' \
	"$out/mosquitto.conf" >"$WORK/nolimit.conf"
nolimit() { # PORT
	sed "s/^listener [0-9]* /listener $1 /" "$WORK/nolimit.conf" >"$WORK/nolimit-port.conf"
	"$PQOTA_SRC/scripts/env" -- mosquitto -c "$WORK/nolimit-port.conf" >"$WORK/nolimit.log" 2>&1 &
	BROKER_PID=$!
}
if OPENSSL_CONF="$out/openssl.cnf" broker_start nolimit "$WORK/nolimit.log"; then
	ref=$BROKER_PID
	before=$(rss_kb "$ref")
	acked=$(attack "$BROKER_PORT")
	after=$(rss_kb "$ref")
	echo "     unlimited broker: RSS ${before} kB before, ${after} kB after; $acked of 4 messages taken"
	check "the reference broker without the limits took them and grew by over 100 MB" \
		test "$acked" = 4 -a $((after - before)) -gt 102400
	kill "$ref" 2>/dev/null
else
	bad "the reference broker did not start"
	cat "$WORK/nolimit.log"
fi

# a classical-only client (Debian's OpenSSL 3.0 offers no ML-KEM group) is refused
rc=0
env -u LD_LIBRARY_PATH mosquitto_pub -h 127.0.0.1 -p "$port" $(cred vehicles/VIN1) -t oem/VIN1/x -m classical >"$WORK/classical.out" 2>&1 || rc=$?
check "a client without the PQC group cannot connect (exit $rc)" test "$rc" != 0
check "...the broker found no suitable key share" grep -q "no suitable key share" "$WORK/mosquitto.log"
finish
