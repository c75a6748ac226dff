#!/usr/bin/env bash
# install_tree.sh: `cmake --install` (what `make install PREFIX=P` runs) into a fresh prefix
# gives a self-contained tree (docs/operations.md "Installing"):
#  1. the layout: bin/pqota, the private OpenSSL in lib/pqota, libpqota-tls, a man page per
#     command made from its --help, the docs, the example and the services' configuration,
#     the systemd units naming the installed binary;
#  2. every installed ELF file's RPATH is $ORIGIN-relative, none names the build's OpenSSL;
#  3. with that OpenSSL hidden (a private mount namespace with an empty tmpfs over its
#     prefix), the installed pqota resolves libssl and libcrypto from P/lib/pqota (ldd, and
#     the running processes' memory maps), makes a PKI, writes a broker configuration whose
#     run-broker.sh runs Debian's mosquitto on P/lib/pqota, and serves: /ready answers 200
#     over PQC TLS with the broker connected;
#  4. `systemd-analyze verify` passes on the installed units (their man pages included).
. "$(dirname "$0")/lib.bash"

BUILD=$(dirname "$PQOTA")
P=$WORK/P
cmake --install "$BUILD" --prefix "$P" >"$WORK/install.log" 2>&1 || {
	bad "cmake --install failed"
	tail -n 20 "$WORK/install.log"
	finish
}
ok "cmake --install $BUILD --prefix P"

# --- 1. the layout -------------------------------------------------------------------------
for f in bin/pqota lib/libpqota-tls.so.1 include/pqota/tls.h lib/pkgconfig/libpqota-tls.pc \
	share/man/man1/pqota.1 share/doc/pqota/operations.md share/doc/pqota/server.conf.example \
	share/pqota/server.conf share/pqota/vehicle.env lib/systemd/system/pqota-server.service \
	lib/systemd/system/pqota-broker.service lib/systemd/system/pqota-vehicle@.service; do
	check "P/$f installed" test -e "$P/$f"
done
cmds=$("$PQOTA" --help | sed -n '/^commands:/,/^$/s/^  \([a-z]*\) .*/\1/p')
missing=""
for c in $cmds; do
	first=$("$PQOTA" "$c" --help 2>&1 | head -n 1)
	grep -qxF -- "$first" "$P/share/man/man1/pqota-$c.1" 2>/dev/null || missing="$missing $c"
done
check "a man page per command, made from its --help (missing:${missing:- none})" test -z "$missing"
check "the example configuration is --example-config's" \
	cmp -s "$P/share/doc/pqota/server.conf.example" "$PQOTA_SRC/etc/pqota-server.conf.example"
expect_exit 0 "the services' configuration (share/pqota/server.conf) loads" \
	"$P/bin/pqota" server --config "$P/share/pqota/server.conf" --print-config
check "the server unit runs the installed binary" \
	grep -qx "ExecStart=$P/bin/pqota server --config /etc/pqota/server.conf" \
	"$P/lib/systemd/system/pqota-server.service"

# --- 2. RPATHs -------------------------------------------------------------------------------
rpath() { readelf -d "$1" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]$/\2/p'; }
if [ "$OPENSSL_PREFIX" = /usr ]; then
	ok "the system's OpenSSL is 3.5: nothing to bundle, no RPATH (3. runs on it)"
else
	check "bin/pqota: RPATH \$ORIGIN/../lib/pqota (got '$(rpath "$P/bin/pqota")')" \
		test "$(rpath "$P/bin/pqota")" = '$ORIGIN/../lib/pqota'
	check "libpqota-tls: RPATH \$ORIGIN/pqota" test "$(rpath "$P/lib/libpqota-tls.so.1")" = '$ORIGIN/pqota'
	for l in libssl.so.3 libcrypto.so.3; do
		check "lib/pqota/$l: RUNPATH \$ORIGIN" test "$(rpath "$P/lib/pqota/$l")" = '$ORIGIN'
	done
fi

# --- 3. the installed tree without the build's OpenSSL ---------------------------------------
ossl=$(readlink -f "$OPENSSL_PREFIX")
# hidden CMD...: CMD in a private mount namespace where the OpenSSL prefix is an empty tmpfs
# (exec'd: in the background, $! is CMD's process)
HIDE=(unshare -m sh -c 'mount -t tmpfs pqota-hidden "$0" && exec "$@"' "$ossl")
[ "$OPENSSL_PREFIX" != /usr ] || HIDE=()
hidden() { "${HIDE[@]}" "$@"; }
if [ "$OPENSSL_PREFIX" = /usr ]; then
	:
elif ! hidden true 2>"$WORK/unshare.err"; then
	bad "cannot hide $ossl (unshare -m and mount need root): $(cat "$WORK/unshare.err")"
	finish
fi
check "hidden, $ossl is empty" hidden sh -c '[ -z "$(ls -A "$0")" ]' "$ossl"
hidden ldd "$P/bin/pqota" >"$WORK/ldd.out" 2>&1 || true
for l in libssl.so.3 libcrypto.so.3; do
	check "ldd: $l => P/lib/pqota" grep -q "$l => $P/bin/../lib/pqota/$l" "$WORK/ldd.out"
done
check "no library not found" sh -c '! grep -q "not found" "$0"' "$WORK/ldd.out"
hidden "$P/bin/pqota" version >"$WORK/version.out" 2>&1 || true
check "pqota version: OpenSSL 3.5 with ML-KEM/ML-DSA" grep -q "OpenSSL 3\.[5-9].*ML-KEM/ML-DSA: yes" "$WORK/version.out"
PKI=$WORK/pki
expect_exit 0 "pqota keys init" hidden "$P/bin/pqota" keys init "$PKI"

user=()
[ "$(id -u)" = 0 ] && user=(--user root)
installed_broker() { # PORT
	hidden "$P/bin/pqota" broker config --pki "$PKI" --out "$WORK/broker" --listen "127.0.0.1:$1" \
		"${user[@]}" --force >/dev/null || return 1
	"${HIDE[@]}" "$WORK/broker/run-broker.sh" >"$WORK/mosquitto.log" 2>&1 &
	BROKER_PID=$!
}
broker_start installed_broker "$WORK/mosquitto.log" || {
	bad "mosquitto did not start from the installed broker configuration"
	cat "$WORK/mosquitto.log"
	finish
}
check "run-broker.sh points at P/lib/pqota" grep -qx "libdir='$P/lib/pqota'" "$WORK/broker/run-broker.sh"

cat >"$WORK/s.conf" <<CONF
listen = 127.0.0.1:0
tls.pki = $PKI
data_dir = $WORK/data
port_file = $WORK/s.port
mqtt.broker = 127.0.0.1:$BROKER_PORT
CONF
"${HIDE[@]}" "$P/bin/pqota" server --config "$WORK/s.conf" >"$WORK/s.log" 2>&1 &
SRV=$!
PIDS+=($SRV)
wait_for 30 test -s "$WORK/s.port" || {
	bad "the installed server did not start"
	tail -n 20 "$WORK/s.log"
	finish
}
B=https://127.0.0.1:$(cat "$WORK/s.port")
get() { on35 curl -sS -o "$2" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$B$1"; }
ready() { [ "$(get /ready "$WORK/ready.json")" = 200 ]; }
check "the installed server: /ready 200 over X25519MLKEM768" wait_for 20 ready
check "...its broker (mosquitto on P/lib/pqota) connected" \
	python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["checks"]["broker"] == "ok"' "$WORK/ready.json"
for pid in "$SRV" "$BROKER_PID"; do
	what=$(tr -d '\0' <"/proc/$pid/comm")
	check "$what maps libssl and libcrypto from P/lib/pqota" \
		sh -c 'grep -q "$1/lib/pqota/libssl.so.3" "$0" && grep -q "$1/lib/pqota/libcrypto.so.3" "$0"' \
		"/proc/$pid/maps" "$P"
	check "...and nothing from $ossl" sh -c '! grep -qF "$1/" "$0"' "/proc/$pid/maps" "$ossl"
done

# --- 4. the units --------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null && command -v man >/dev/null; then
	u=$P/lib/systemd/system
	MANPATH=$P/share/man systemd-analyze verify "$u/pqota-server.service" "$u/pqota-broker.service" \
		"$u/pqota-vehicle@TESTVIN0000000001.service" >"$WORK/verify.out" 2>&1 || true
	check "systemd-analyze verify: the units are clean" test ! -s "$WORK/verify.out"
	sed 's/^/     /' "$WORK/verify.out"
else
	bad "systemd-analyze or man is missing (scripts/bootstrap installs systemd and man-db)"
fi
finish
