#!/usr/bin/env bash
# pack_cli.sh: pqota pack end to end. A bundle built with the original builder's flags is
# re-read by an independent reader (Python: struct, zlib.crc32, hashlib) that checks the
# documented header layout byte for byte and every index hash; corrupting any child is
# detected; a delta between two real binaries of different versions (Debian's OpenSSL 3.0
# libcrypto and the 3.5 one pqota runs on) applies to the exact target.
. "$(dirname "$0")/lib.bash"

w="$WORK"
cp /bin/ls "$w/vmg.bin"
cp /bin/cp "$w/zgw.bin"
cp /bin/bash "$w/ecu011.bin"
expect_exit 0 "pack build with the original's flags" "$PQOTA" pack build --campaign-id CAMP-2026-001 \
	--vmg-binary "$w/vmg.bin" --vmg-version 2.1.0 --zgw-binary "$w/zgw.bin" \
	--ecu-011-binary "$w/ecu011.bin" --ecu-011-version 3.0.1 --compress --output-dir "$w/out"
b="$w/out/full_package.bin"
check "full_package.bin and manifest.json exist" test -s "$b" -a -s "$w/out/manifest.json"
expect_exit 0 "pack verify accepts it" "$PQOTA" pack verify "$b" --manifest "$w/out/manifest.json"

# an independent reader of the documented format
cat >"$w/reader.py" <<'PY'
import hashlib, json, struct, sys, zlib
data = open(sys.argv[1], "rb").read()
man = json.load(open(sys.argv[2]))
HDR = struct.Struct("<IHBBII4BIII12sHHI12s")
assert HDR.size == 64
def header(off):
    (magic, ecu, typ, comp, psize, usize, v0, v1, v2, v3, ts, serial, crc, res1, src, hop,
     seq, res2) = HDR.unpack_from(data, off)
    assert magic == 0x53575047, hex(magic)
    assert data[off:off+4] == b"GPWS"            # 0x53575047 little-endian
    payload = data[off+64:off+64+psize]
    assert len(payload) == psize
    assert zlib.crc32(payload) == crc, "crc"
    return dict(ecu=ecu, type=typ, comp=comp, psize=psize, usize=usize, ver=(v0,v1,v2,v3),
                ts=ts, serial=serial, res1=res1, res2=res2, src=src, hop=hop, seq=seq,
                payload=payload)
def walk(off, path, out):
    h = header(off); out.append((path, off, h))
    if h["type"] in (0x80, 0x81):
        p = h["payload"]
        magic, ver, elen, count, res = struct.unpack_from("<4sHHII", p, 0)
        assert (magic, ver, elen, res) == (b"SWIX", 1, 64, 0)
        expect = 16 + 64 * count
        for i in range(count):
            ecu, typ, comp, r, coff, csize, sha, name = struct.unpack_from("<HBBIQQ32s8s", p, 16 + 64*i)
            assert coff == expect, "layout"; expect += csize
            child = p[coff:coff+csize]
            assert hashlib.sha256(child).digest() == sha, "index sha256"
            name = name.rstrip(b"\0").decode()
            walk(off + 64 + coff, (path + "/" if path else "") + name, out)
        assert expect == len(p), "payload filled"
    return out
tree = walk(0, "", [])
root = tree[0][2]
# the root header, field by field, as documented
assert root["type"] == 0x81 and root["ecu"] == 0x0E00 and root["comp"] == 0
assert root["psize"] == len(data) - 64 == root["usize"]
assert root["ver"] == (2, 1, 0, 0) and root["res1"] == bytes(12) and root["res2"] == bytes(12)
paths = [t[0] for t in tree]
assert paths == ["", "VMG", "ZONE1", "ZONE1/ZGW1", "ZONE1/ECU_011"], paths
by = {t[0]: t[2] for t in tree}
assert by["VMG"]["ecu"] == 0x0E00 and by["VMG"]["comp"] == 1 and by["VMG"]["type"] == 1
assert by["ZONE1"]["type"] == 0x80 and by["ZONE1"]["ecu"] == 0x0091
assert by["ZONE1/ZGW1"]["ecu"] == 0x0091
assert by["ZONE1/ECU_011"]["ecu"] == 0x1011 and by["ZONE1/ECU_011"]["ver"] == (3, 0, 1, 0)
# zlib payloads inflate to the images, of the announced size
for p, img in (("VMG", sys.argv[3]), ("ZONE1/ZGW1", sys.argv[4]), ("ZONE1/ECU_011", sys.argv[5])):
    raw = zlib.decompress(by[p]["payload"])
    assert raw == open(img, "rb").read() and len(raw) == by[p]["usize"], p
# the manifest names the bundle and every unit by hash and length
assert man["bundle"]["sha256"] == hashlib.sha256(data).hexdigest()
assert man["bundle"]["length"] == len(data)
assert len(man["units"]) == 4
for u in man["units"]:
    f = open(sys.argv[6] + "/" + u["file"], "rb").read()
    assert hashlib.sha256(f).hexdigest() == u["sha256"] and len(f) == u["length"], u["path"]
# offsets of every child, for the corruption test
for path, off, h in tree[1:]:
    print(path, off, 64 + h["psize"])
PY
if python3 "$w/reader.py" "$b" "$w/out/manifest.json" "$w/vmg.bin" "$w/zgw.bin" "$w/ecu011.bin" \
	"$w/out" >"$w/children.txt" 2>"$w/reader.err"; then
	ok "an independent reader agrees with the documented layout, CRCs and hashes"
else
	bad "independent reader: $(tail -n 3 "$w/reader.err")"
fi

# corrupt one byte in each child: at its header, in its payload's middle and at its end
flip() { # flip FILE OFFSET
	python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2]); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^0x5a]))' "$1" "$2"
}
n=0
missed=0
while read -r path off size; do
	for at in $((off + 5)) $((off + 64 + (size - 64) / 2)) $((off + size - 1)); do
		cp "$b" "$w/bad.bin"
		flip "$w/bad.bin" "$at"
		n=$((n + 1))
		rc=0
		"$PQOTA" pack verify "$w/bad.bin" >"$w/bad.out" 2>&1 || rc=$?
		if [ "$rc" != 1 ]; then
			missed=$((missed + 1))
			echo "     not detected: $path byte $at (exit $rc)"
		fi
	done
done <"$w/children.txt"
check "every corrupted child byte is detected ($n flips, exit 1 each)" test "$n" -ge 12 -a "$missed" = 0
cp "$b" "$w/bad.bin"
flip "$w/bad.bin" 17 # the root header's minor version: only the manifest's hash covers it
expect_exit 1 "a root header change is caught against the manifest" "$PQOTA" pack verify "$w/bad.bin" --manifest "$w/out/manifest.json"
head -c -1 "$b" >"$w/trunc.bin"
expect_exit 1 "a truncated bundle is rejected" "$PQOTA" pack verify "$w/trunc.bin"
{ cat "$b"; printf x; } >"$w/long.bin"
expect_exit 1 "a bundle with trailing data is rejected" "$PQOTA" pack verify "$w/long.bin"

# inspect and extract
expect_exit 0 "pack inspect" "$PQOTA" pack inspect "$b"
check "inspect shows the tree with versions and compression" grep -q "ECU_011 .*APP .*3.0.1.0 .*zlib" "$w/last.out"
expect_exit 0 "pack inspect --json" "$PQOTA" pack inspect "$b" --json
check "inspect --json is JSON with 5 entries" python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["entries"]) == 5' "$w/last.out"
expect_exit 0 "extract the ECU image" "$PQOTA" pack extract "$b" ECU_011 --image -o "$w/ecu.out"
check "the extracted image is the original" cmp -s "$w/ecu.out" "$w/ecu011.bin"
expect_exit 0 "extract the zone package" "$PQOTA" pack extract "$b" ZONE1 -o "$w/zone1.swpg"
expect_exit 0 "the extracted zone verifies on its own" "$PQOTA" pack verify "$w/zone1.swpg"
expect_exit 2 "extract an unknown entry" "$PQOTA" pack extract "$b" ECU_099 -o "$w/x"

# a delta between two real binaries of different versions
old=/usr/lib/x86_64-linux-gnu/libcrypto.so.3
new="$OPENSSL_PREFIX/lib/libcrypto.so.3"
if [ "$OPENSSL_PREFIX" != /usr ] && [ -f "$old" ]; then
	expect_exit 0 "pack delta libcrypto 3.0 -> 3.5" "$PQOTA" pack delta --from "$old" --to "$new" -o "$w/d.swpg" \
		--ecu ECU_011 --from-version 3.0.19 --to-version 3.5.7
	check "the delta is smaller than the target" test "$(stat -c %s "$w/d.swpg")" -lt "$(stat -c %s "$new")"
	expect_exit 0 "pack verify accepts the delta" "$PQOTA" pack verify "$w/d.swpg"
	expect_exit 0 "pack apply" "$PQOTA" pack apply "$w/d.swpg" --base "$old" -o "$w/patched.so"
	check "the patched file is exactly the 3.5 libcrypto" cmp -s "$w/patched.so" "$new"
	expect_exit 1 "apply refuses a wrong base" "$PQOTA" pack apply "$w/d.swpg" --base "$new" -o "$w/wrong.so"
	check "...naming the base it needs" contains "$WORK/last.out" "wrong base"
	check "...and leaves no output" test ! -e "$w/wrong.so"
	expect_exit 1 "apply refuses a delta for another ECU" "$PQOTA" pack apply "$w/d.swpg" --base "$old" \
		-o "$w/other.so" --ecu ECU_021
	check "...saying whose it is" contains "$WORK/last.out" "is for ECU 0x1011, not ECU_021"
	check "...and leaves no output" test ! -e "$w/other.so" -a ! -e "$w/other.so.part"
	expect_exit 0 "apply takes it for its own ECU" "$PQOTA" pack apply "$w/d.swpg" --base "$old" \
		-o "$w/own.so" --ecu ECU_011 --no-resume --memory-limit 32
	check "...exactly" cmp -s "$w/own.so" "$new"
	cp "$w/d.swpg" "$w/dbad.swpg"
	flip "$w/dbad.swpg" $(($(stat -c %s "$w/d.swpg") / 2))
	expect_exit 1 "apply refuses a corrupted delta" "$PQOTA" pack apply "$w/dbad.swpg" --base "$old" -o "$w/bad.so"
	check "...and leaves no output" test ! -e "$w/bad.so"
else
	bad "no two OpenSSL builds to diff (system OpenSSL is >= 3.5)"
fi

expect_exit 64 "pack without arguments" "$PQOTA" pack
expect_exit 0 "pack --help" "$PQOTA" pack --help
expect_exit 64 "build without --output-dir" "$PQOTA" pack build --campaign-id X --vmg-binary "$w/vmg.bin" --vmg-version 1.0.0
expect_exit 2 "build with a missing image" "$PQOTA" pack build --campaign-id X --vmg-binary "$w/nope" --vmg-version 1.0.0 --output-dir "$w/o2"
expect_exit 2 "build with a bad version" "$PQOTA" pack build --campaign-id X --vmg-binary "$w/vmg.bin" --vmg-version 1.256.0 --output-dir "$w/o2"
expect_exit 1 "verify of a non-package" "$PQOTA" pack verify "$w/vmg.bin"
finish
