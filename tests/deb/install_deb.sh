#!/usr/bin/env bash
# tests/deb/install_deb.sh (`make test-deb`): the Debian package on a clean Debian 12.
#  1. a minimal Debian 12 root made by debootstrap (cached once in
#     ~/.cache/pqota/debian12-root; each run works on an overlay of it, so the cache stays
#     clean), with /proc mounted;
#  2. `apt-get install ./pqota_*.deb` there pulls its Depends from Debian's mirror;
#  3. the package made the pqota user, /etc/pqota (root:pqota 0750), /var/lib/pqota (pqota),
#     the units in /lib/systemd/system; pqota resolves OpenSSL from /usr/lib/pqota;
#  4. in the chroot, as the pqota user: `pqota keys init`, `pqota server` with the packaged
#     /etc/pqota/server.conf; /ready answers 200 over PQC TLS (X25519MLKEM768) to Debian's
#     curl inside the chroot, run on the package's OpenSSL;
#  5. removing the package stops nothing that runs and leaves the state; purge removes
#     /etc/pqota.
# Needs root (chroot, mount) and the network (debootstrap, apt). Usage: tests/deb/install_deb.sh DEB
set -euo pipefail
DEB=$(readlink -f "${1:?usage: install_deb.sh DEB}")
PQOTA_SRC=$(cd "$(dirname "$0")/../.." && pwd)
export PQOTA_SRC PQOTA_BIN=${PQOTA_BIN:-$PQOTA_SRC/build/pqota}
. "$PQOTA_SRC/tests/integration/lib.bash"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/pqota
base=$cache/debian12-root
mirror=${PQOTA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
R=$WORK/root
# the processes, then the mounts, then lib.bash's cleanup (the files): never while mounted
deb_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
	umount "$R/proc" 2>/dev/null || true
	umount "$R" 2>/dev/null || true
	if mountpoint -q "$R"; then echo "still mounted, left in place: $R"; else cleanup; fi
}
trap deb_cleanup EXIT
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

[ "$(id -u)" = 0 ] || {
	bad "needs root (chroot, mount)"
	finish
}
command -v debootstrap >/dev/null || {
	bad "debootstrap is missing (scripts/bootstrap --with deb installs it)"
	finish
}

# --- 1. the clean root -------------------------------------------------------------------------
if [ ! -x "$base/usr/bin/apt-get" ]; then
	echo "     debootstrap bookworm into $base (once; about a minute)"
	rm -rf "$base.tmp"
	debootstrap --variant=minbase bookworm "$base.tmp" "$mirror" >"$WORK/debootstrap.log" 2>&1 || {
		bad "debootstrap failed: $(tail -n 3 "$WORK/debootstrap.log")"
		finish
	}
	mv "$base.tmp" "$base"
fi
mkdir -p "$R" "$WORK/upper" "$WORK/ovl"
mount -t overlay pqota-deb -o "lowerdir=$base,upperdir=$WORK/upper,workdir=$WORK/ovl" "$R"
mount -t proc proc "$R/proc"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# no service starts inside the root (mosquitto's package would start one)
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"
check "a clean Debian 12 root: $(cat "$R/etc/debian_version"), no pqota" \
	sh -c '! [ -e "$0/usr/bin/pqota" ] && grep -q "^12" "$0/etc/debian_version"' "$R"

# --- 2. the package and its Depends --------------------------------------------------------------
cp "$DEB" "$R/tmp/"
t0=$SECONDS
if in_root sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends /tmp/${DEB##*/} mosquitto curl" >"$WORK/apt.log" 2>&1; then
	ok "apt-get install ./${DEB##*/} (with mosquitto, and curl for the checks) in $((SECONDS - t0)) s"
else
	bad "apt-get install failed"
	tail -n 20 "$WORK/apt.log"
	finish
fi

# --- 3. what the package set up --------------------------------------------------------------
check "the pqota system user" sh -c 'in_uid=$(chroot "$0" id -u pqota) && [ "$in_uid" -lt 1000 ]' "$R"
check "/etc/pqota: root:pqota 0750, server.conf 0640" \
	test "$(in_root stat -c %U:%G:%a /etc/pqota /etc/pqota/server.conf | tr '\n' ' ')" = "root:pqota:750 root:pqota:640 "
check "/var/lib/pqota owned by pqota" test "$(in_root stat -c %U /var/lib/pqota)" = pqota
for u in pqota-server.service pqota-broker.service pqota-vehicle@.service; do
	check "/lib/systemd/system/$u" test -f "$R/lib/systemd/system/$u"
done
in_root ldd /usr/bin/pqota >"$WORK/ldd.out" 2>&1 || true
check "pqota resolves libssl and libcrypto from /usr/lib/pqota, every library found" \
	sh -c 'grep -q "libssl.so.3 => /usr/bin/../lib/pqota/libssl.so.3" "$0" &&
	       grep -q "libcrypto.so.3 => /usr/bin/../lib/pqota/libcrypto.so.3" "$0" &&
	       ! grep -q "not found" "$0"' "$WORK/ldd.out"
check "man pqota-server is installed" test -f "$R/usr/share/man/man1/pqota-server.1.gz"

# --- 4. keys, server, /ready ----------------------------------------------------------------
check "runuser -u pqota -- pqota keys init /var/lib/pqota/pki" \
	in_root runuser -u pqota -- pqota keys init /var/lib/pqota/pki
port=$(free_port)
bport=$(free_port)
# the broker as docs/operations.md "Services" sets it up and pqota-broker.service runs it
check "runuser -u pqota -- pqota broker config --pki /var/lib/pqota/pki --out /var/lib/pqota/broker" \
	in_root runuser -u pqota -- pqota broker config --pki /var/lib/pqota/pki \
	--out /var/lib/pqota/broker --listen "127.0.0.1:$bport"
check "...its run-broker.sh runs mosquitto on /usr/lib/pqota" \
	grep -qx "libdir='/usr/lib/pqota'" "$R/var/lib/pqota/broker/run-broker.sh"
chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c 'umask 0077 && exec "$@"' sh \
	runuser -u pqota -- /bin/sh /var/lib/pqota/broker/run-broker.sh >"$WORK/mosquitto.log" 2>&1 &
BRK=$!
PIDS+=($BRK)
wait_for 10 grep -q " running" "$WORK/mosquitto.log" || bad "mosquitto: $(tail -n 3 "$WORK/mosquitto.log")"
# as pqota-server.service runs it: user pqota, UMask=0077, the packaged configuration
chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c 'umask 0077 && exec "$@"' sh \
	runuser -u pqota -- pqota server --config /etc/pqota/server.conf \
	--set "listen=127.0.0.1:$port" --set port_file=/var/lib/pqota/port \
	--set "mqtt.broker=127.0.0.1:$bport" >"$WORK/server.log" 2>&1 &
SRV=$!
PIDS+=($SRV)
if wait_for 30 test -s "$R/var/lib/pqota/port"; then ok "pqota server started with /etc/pqota/server.conf"; else
	bad "pqota server did not start"
	tail -n 20 "$WORK/server.log"
	finish
fi
ready() {
	in_root env LD_LIBRARY_PATH=/usr/lib/pqota curl -sS -o /tmp/ready.json -w '%{http_code}' \
		--curves X25519MLKEM768 --cacert /var/lib/pqota/pki/ca/ca.crt "https://127.0.0.1:$port/ready" |
		grep -qx 200
}
check "/ready: 200 over X25519MLKEM768 from inside the chroot" wait_for 20 ready
check "...store, broker (mosquitto in the root), data directory and keys ok" \
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert d["status"] == "ready" and d["checks"]["broker"] == "ok", d' "$R/tmp/ready.json"
in_root runuser -u pqota -- pqota server --config /etc/pqota/server.conf apikey create --role admin \
	--name alice >"$WORK/apikey.out" 2>&1 || true
check "an admin API key from the packaged configuration" grep -qE '^[A-Za-z0-9_.-]{20,}$' "$WORK/apikey.out"
db=$(in_root stat -c %U:%a /var/lib/pqota/data/pqota.db)
check "the store is the pqota user's, not world-readable ($db)" \
	test "${db%%:*}" = pqota -a "$(( 0${db##*:} & 7 ))" = 0
kill "$SRV" "$BRK"
wait "$SRV" "$BRK" 2>/dev/null || true

# --- 5. remove, purge ------------------------------------------------------------------------
in_root apt-get remove -y -q pqota >"$WORK/remove.log" 2>&1 || bad "apt-get remove"
check "removed: the binary gone, the state stays" \
	sh -c '! [ -e "$0/usr/bin/pqota" ] && [ -f "$0/var/lib/pqota/pki/ca/ca.crt" ]' "$R"
in_root apt-get purge -y -q pqota >"$WORK/purge.log" 2>&1 || bad "apt-get purge"
check "purged: /etc/pqota gone" test ! -e "$R/etc/pqota"
finish
