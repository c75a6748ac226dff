#!/usr/bin/env bash
# release_files.sh: a release that fails half-way (the data directory full while its package
# is encrypted) leaves no package, image or encrypted file behind, and the same upload makes
# the release once there is room; deleting a release frees the files nothing else names (an
# image two releases share stays until the second goes). The data directory is a small
# tmpfs in a mount namespace of the test's own (unshare -m, as root).
if [ -z "${RELEASE_FILES_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
		echo "release_files: needs root and mount namespaces (unshare -m) to fill a tmpfs"
		exit 1
	fi
	RELEASE_FILES_NS=1 exec unshare -m bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki
BROKER_PORT=1
D="$WORK/data-s"
mkdir -p "$D"
mount -t tmpfs -o size=8m,mode=0700 tmpfs "$D" || bad "mounting a tmpfs"
write_server_conf s "store.url = $WORK/pqota.db"
sed -i '/^mqtt\.broker/d' "$WORK/s.conf"
start_server s
make_key s
export PQOTA_SERVER=$BASE_s PQOTA_API_KEY=$APIKEY PQOTA_CA="$PKI/ca/ca.crt"
files() { find "$D/files" "$D/images" -type f 2>/dev/null | wc -l; }
up() { # FILE VERSION [more options]: pqota release upload; its JSON in $WORK/r.json
	local f=$1 v=$2
	shift 2
	"$PQOTA" release upload "$f" --version "$v" --ecu ECU_011 --hardware-id HW-1-011 --json "$@" \
		>"$WORK/r.json" 2>"$WORK/r.err"
}

# 3 MiB of random data: the upload (3) and its package (3) fit in 8 MiB, the encrypted copy
# (3 more) does not
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/img.bin"
check "before: no package or image" test "$(files)" = 0
rc=0
up "$WORK/img.bin" 1.0.0 --retries 0 || rc=$?
check "the release fails: the disk is full while encrypting (exit $rc)" test "$rc" != 0
check "...while encrypting the package" grep -q "encrypting the package failed" "$WORK/r.err"
check "...the server's log names the full disk" grep -qi "no space left" "$WORK/s.log"
check "...and leaves no package, image or encrypted file behind" test "$(files)" = 0
check "...nor a temporary file" test "$(find "$D/files" -name '.*' | wc -l)" = 0
UP=$(grep -o 'upload [0-9a-f-]\{36\}' "$WORK/r.err" | head -n 1 | cut -d' ' -f2)
check "...the upload stays ($UP)" test -n "$UP"

mount -o remount,size=64m "$D"
check "with room, the same upload makes the release" up "$WORK/img.bin" 1.0.0 --upload-id "$UP"
R1=$(jget id <"$WORK/r.json")
check "...its package, encrypted copy and image are stored" test "$(files)" = 3
check "a second release of the same image (1.0.1)" up "$WORK/img.bin" 1.0.1
R2=$(jget id <"$WORK/r.json")
check "...shares the image: 5 files" test "$(files)" = 5
del() { on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
	-H "X-API-Key: $APIKEY" -X DELETE "$BASE_s/api/v1/releases/$1"; }
check "DELETE the first release: 204" test "$(del "$R1")" = 204
check "...its package and encrypted copy are gone, the shared image stays" test "$(files)" = 3
check "...the image is the second release's" test -e "$D/images/$(pcurl "$BASE_s/api/v1/releases/$R2" | jget image.sha256)"
check "DELETE the second release: 204" test "$(del "$R2")" = 204
check "...nothing is left" test "$(files)" = 0
check "...and the store has no encrypted-copy key left" test "$(sqlite3 "$WORK/pqota.db" 'SELECT COUNT(*) FROM package_keys')" = 0
stop_server s
umount "$D" || bad "unmounting the tmpfs"
finish
