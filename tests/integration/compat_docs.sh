#!/usr/bin/env bash
# compat_docs.sh: runs every `sh` example of docs/api.md section 17 (the compatibility
# routes), in order, against a real server with mosquitto, as a user would paste them:
# pqcurl, BASE, KEY, VEH, VIN, CID, SHA and vehicle.json as the section defines them. Each
# example must succeed (pqcurl fails on an HTTP error here) and print JSON (or write its
# file); a changed route or a stale example fails the test.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

DOC="$PQOTA_SRC/docs/api.md"
VIN=COMPATDOCS000001
NEWVIN=COMPATDOCS000002 # registered by the register example
make_pki $VIN $NEWVIN
start_broker
write_server_conf s1
start_server s1
B=$BASE_s1
CA="$PKI/ca/ca.crt"
make_key s1
check "the example's vehicle is registered" register "$B" $VIN

# the examples' names, as section 1.1 and 17.1 define them
BASE=$B
KEY=$APIKEY
VEH="--cert $PKI/vehicles/$VIN/client.crt --key $PKI/vehicles/$VIN/client.key"
pqcurl() { on35 curl -sS --fail-with-body --curves X25519MLKEM768 --cacert "$CA" "$@"; }
R=$(release ECU_011 HW-1-011 1.1.0 50000)
CID=$(campaign "$R" $VIN)
check "a campaign for the vehicle" test -n "$CID"
SHA=$(jget package.sha256 <"$WORK/rel-ECU_011-1.1.0.json")
reg_body $NEWVIN docs >"$WORK/vehicle.json"

# the sh blocks of section 17, one file each
python3 - "$DOC" "$WORK/ex" <<'PY'
import os, re, sys
doc, out = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
m = re.search(r"^## 17\. .*?(?=^## |\Z)", text, re.S | re.M)
blocks = re.findall(r"^```sh\n(.*?)^```", m.group(0), re.S | re.M) if m else []
os.makedirs(out)
for i, b in enumerate(blocks):
    open(f"{out}/{i:02d}.sh", "w").write(b)

PY
n=$(ls "$WORK/ex" | wc -l)
check "section 17 has its examples ($n)" test "$n" -ge 15

cd "$WORK"
for f in "$WORK"/ex/*.sh; do
	what=$(head -n 1 "$f" | cut -c1-110)
	# a block is one command, or an assignment whose command must succeed (DIAG=$(...))
	rc=0
	. "$f" >"$f.out" 2>"$f.err" || rc=$?
	if [ "$rc" != 0 ]; then
		bad "example: $what (exit $rc)"
		head -c 400 "$f.out" "$f.err" | sed 's/^/     /'
		continue
	fi
	if grep -q -- ' -o ' "$f" || grep -q '^[A-Z]*=\$(' "$f"; then
		ok "example: $what"
	else
		check "example: $what (JSON)" python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$f.out"
	fi
	# what each one did, where it is not only its answer
	case "$what" in
	*/api/v1/vehicles/register*) check "...$NEWVIN is registered" pcurl "$B/api/v1/vehicles/$NEWVIN" -o /dev/null ;;
	*'"status":"accepted"'*) check "...the deployment is accepted" dep_is "$B" "$CID" $VIN accepted ;;
	*'"status":"downloaded"'*) check "...the deployment is downloaded" dep_is "$B" "$CID" $VIN downloaded ;;
	*'-o package.bin'*) check "...package.bin is the encrypted copy (not empty)" test -s "$WORK/package.bin" ;;
	*DIAG=*) check "...DIAG is the request's id ($DIAG)" test -n "$DIAG" ;;
	esac
done
finish
