#!/usr/bin/env bash
# server_modes.sh: what the server and `pqota keys init` create is owner-only whatever the
# umask: with umask 022, the data directory left open to others (0755) is made 0700 at
# start-up; the store (pqota.db, -wal, -shm), the download-token key, uploads, images,
# packages and a delta's files are 0600 and every directory 0700, also after releases are
# uploaded; the PKI's private keys are 0600 (its directories 0711: traversable, not listable).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

umask 022
make_pki
D="$WORK/data-s"
mkdir -m 0755 "$D" # as an older server (or an operator) left it
cat >"$WORK/s.conf" <<EOF
listen = 127.0.0.1:0
tls.pki = $PKI
data_dir = $D
port_file = $WORK/s.port
ratelimit.client_rps = 0
EOF
start_server s
B=$BASE_s
check "the data directory was made owner-only" test "$(stat -c %a "$D")" = 700
check "...and the log says so" grep -q "data directory $D was open to others (mode 755): now 700" "$WORK/s.log"
make_key s
export PQOTA_SERVER=$B PQOTA_CA=$PKI/ca/ca.crt PQOTA_API_KEY=$APIKEY
head -c 300000 /dev/urandom >"$WORK/v1.bin"
python3 -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read()); d[1000:1100] = b"x" * 100
open(sys.argv[2], "wb").write(d)' "$WORK/v1.bin" "$WORK/v2.bin"
check "a release uploaded" "$PQOTA" release upload "$WORK/v1.bin" --version 1.0.0 --ecu ECU_001 \
	--hardware-id HW-1-001 >/dev/null
check "a second one with a delta from the first" "$PQOTA" release upload "$WORK/v2.bin" \
	--version 1.1.0 --ecu ECU_001 --hardware-id HW-1-001 --delta-from 1.0.0 >/dev/null
# a piece of an upload in progress
up=$(pcurl -d '{"size":1000}' "$B/api/v1/uploads" | jget id)
head -c 500 /dev/urandom | pcurl -X PUT --data-binary @- "$B/api/v1/uploads/$up?offset=0" -o /dev/null

# list_modes DIR: "MODE PATH" of everything under DIR
list_modes() { find "$1" -mindepth 1 -printf '%m %p\n' | sort -k2; }
list_modes "$D" >"$WORK/modes.txt"
sed 's/^/     /' "$WORK/modes.txt" | head -40
for f in pqota.db pqota.db-wal pqota.db-shm token.key; do
	check "$f is 0600" test "$(stat -c %a "$D/$f")" = 600
done
check "packages were stored" test "$(find "$D/files" -type f | wc -l)" -ge 3
check "images were stored" test "$(find "$D/images" -type f | wc -l)" -ge 2
check "an upload is in progress" test "$(find "$D/uploads" -type f | wc -l)" -ge 1
# none DESCRIPTION FIND-ARGS...: passes when find lists nothing (else shows what it lists)
none() {
	local d=$1
	shift
	find "$@" -printf '%m %p\n' >"$WORK/found.txt"
	check "$d" test ! -s "$WORK/found.txt"
	sed 's/^/     /' "$WORK/found.txt"
}
none "every file in the data directory is 0600" "$D" -type f ! -perm 0600
none "every directory in it is 0700" "$D" -type d ! -perm 0700
none "the PKI's private keys are 0600" "$PKI" -name '*.key' ! -perm 0600
none "the PKI's directories are 0711" "$PKI" -type d ! -perm 0711
finish
