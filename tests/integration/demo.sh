#!/usr/bin/env bash
# demo.sh: the end-to-end demo (`make demo`, scripts/demo) as a test, with this build's
# binary: PKI, broker, server, releases (full and differential, encrypted), three pqota
# vehicle agents with 5 zone gateways and 100 ECUs each (delta, full fallback, rollback),
# diagnostics over MQTT and DoIP. Passes when the demo exits 0 with every outcome the
# expected one and its summary names all three vehicles with their expected results.
. "$(dirname "$0")/lib.bash"

rc=0
PQOTA_BIN=$PQOTA "$PQOTA_SRC/scripts/demo" --quiet --dir "$WORK/demo" >"$WORK/demo.out" 2>&1 || rc=$?
sed -n '/== summary/,$p' "$WORK/demo.out" | sed 's/^/     /'
check "the demo exits 0 (got $rc)" test "$rc" = 0
check "it ends with every outcome the expected one" grep -q "^RESULT: all expected outcomes" "$WORK/demo.out"
row() { grep "^$1 " "$WORK/demo.out" | grep -q -- "$2"; }
check "the delta vehicle completed with the deltas" \
	row WVWDEMO0000000001 "completed *completed *delta .* ok *1.1.0 *ok$"
check "the vehicle with another base fell back to the full images" \
	row WVWDEMO0000000002 "completed *completed *fallback .* ok *1.1.0 *ok$"
check "the vehicle with a failing ECU rolled every ECU back" \
	row WVWDEMO0000000003 "rolled_back *rolled_back *delta .* ok *1.0.0 *ok$"
check "the rollback names ECU_053's NRC 0x72" grep -q "rollback cause: ECU_053: .*NRC 0x72" "$WORK/demo.out"
check "every connection negotiated X25519MLKEM768" \
	test "$(grep -c "X25519MLKEM768  X25519MLKEM768" "$WORK/demo.out")" = 3
check "diagnostics answered (22 F190 and 22 FFFF)" grep -q "^diagnostics: 22 F190 answered" "$WORK/demo.out"
if [ "$rc" != 0 ]; then
	tail -n 40 "$WORK/demo.out" | sed 's/^/     /'
	for f in "$WORK"/demo/agent-*.log; do [ -f "$f" ] && { echo "     == $f"; tail -n 15 "$f" | sed 's/^/     /'; }; done
fi
check "no sanitizer report from any process" \
	test -z "$(grep -l -i "AddressSanitizer\|runtime error:\|LeakSanitizer" "$WORK"/demo/*.log 2>/dev/null)"
finish
