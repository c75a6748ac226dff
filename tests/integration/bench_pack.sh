#!/usr/bin/env bash
# bench_pack.sh: `pqota bench pack` end to end on two small pairs (a smoke run, no timing is
# asserted): every tool has a row (figures or a stated skip), pqota's ratios to each tool and
# to the best, the targets and the markdown summary are printed, --json is valid JSON with
# the same rows, and the synthetic pairs are the same bytes on every run.
. "$(dirname "$0")/lib.bash"

w="$WORK"
export TMPDIR="$w"
pairs=(--pair synth-4m-insert --pair random-4m)
expect_exit 0 "bench pack --quick on two pairs" "$PQOTA" bench pack --quick "${pairs[@]}"
out="$w/last.out"
cp "$out" "$w/text.out"
for tool in pqota bsdiff xdelta3 zstd; do
	check "$tool has a row on synth-4m-insert" \
		grep -Eq "^   $tool +([0-9]+ .* identical|skipped: .*not installed)" "$w/text.out"
done
check "pqota's output is byte-identical on both pairs" \
	test "$(grep -Ec '^   pqota +[0-9]+ .* identical' "$w/text.out")" = 2
check "ratios to the best of the others" grep -Eq '^   pqota/best=[a-z0-9]+ +[0-9.]+ ' "$w/text.out"
for t in 'size<=best' 'code:-10%' '10x bsdiff' '1GB<60s' 'apply mem'; do
	check "target '$t' judged" grep -Eq "^     $t +(met|NOT met|n/a) " "$w/text.out"
done
check "markdown summary with both pairs" \
	sh -c "grep -q '^| pair | class |' '$w/text.out' && grep -q '^| synth-4m-insert | data |' '$w/text.out' && grep -q '^| random-4m | random |' '$w/text.out'"
check "the run's temporary files are gone" sh -c "! ls -d '$w'/pqota-bench-* 2>/dev/null"

expect_exit 0 "bench pack --json" "$PQOTA" bench pack --json --pair synth-4m-edit
check "--json is JSON with delta, ratio and target rows" python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
groups = {r["group"] for r in rows}
assert {"delta-pair", "delta", "delta-ratio", "delta-targets"} <= groups, groups
pq = [r for r in rows if r["group"] == "delta" and r["tool"] == "pqota"][0]
assert pq["identical"] and pq["delta_bytes"] > 0
' "$w/last.out"

mkdir -p "$w/a" "$w/b"
expect_exit 0 "bench pack --make writes a synthetic pair" "$PQOTA" bench pack --pair synth-4m-move --make "$w/a"
"$PQOTA" bench pack --pair synth-4m-move --make "$w/b" >/dev/null
check "the synthetic pair is the same bytes twice" \
	sh -c "cmp -s '$w/a/synth-4m-move.old' '$w/b/synth-4m-move.old' && cmp -s '$w/a/synth-4m-move.new' '$w/b/synth-4m-move.new'"
check "...and its new image differs from the old" \
	sh -c "! cmp -s '$w/a/synth-4m-move.old' '$w/a/synth-4m-move.new'"

expect_exit 0 "bench pack --help" "$PQOTA" bench pack --help
expect_exit 0 "bench pack --list" "$PQOTA" bench pack --list
check "--list names the 1 GB pairs" contains "$w/last.out" synth-1g-edit
expect_exit 64 "--quick with --large" "$PQOTA" bench pack --quick --large
expect_exit 64 "--make without --pair" "$PQOTA" bench pack --make "$w"
expect_exit 64 "a bad --timeout" "$PQOTA" bench pack --timeout x
expect_exit 2 "an unknown pair" "$PQOTA" bench pack --pair nosuch
finish
