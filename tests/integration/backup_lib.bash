# backup_lib.bash: the backup and restore round trip of server_backup.sh (SQLite) and
# server_backup_pg.sh (PostgreSQL), sourced after lib.bash and campaign_lib.bash.
# The caller sets BACKEND (sqlite, postgres) and STORE_FILE (the store's file in a backup:
# pqota.db or pqota.pgdump), and defines store_lines NAME, printing the store.* lines of
# server configuration NAME (s: the first server, r: the restored one, c: a restore that
# must not happen), and check_store_file FILE, checking the store's file in the backup.

V=BKVIN000000000001 # the vehicle

# conf NAME DATA PKI: a server configuration without a broker
conf() {
	cat >"$WORK/$1.conf" <<EOF
listen = 127.0.0.1:0
tls.pki = $3
data_dir = $2
port_file = $WORK/$1.port
ratelimit.client_rps = 0
ratelimit.global_rps = 0
EOF
	store_lines "$1" >>"$WORK/$1.conf"
}

# backup_roundtrip: the whole scenario; leaves server r running on the restored data
backup_roundtrip() {
	[ -e "$PKI/pki.json" ] || make_pki $V # (server_backup_pg made it for its walk-through)
	conf s "$WORK/data-s" "$PKI"
	start_server s
	B=$BASE_s
	make_key s
	register "$B" $V || bad "registration"
	REL=$(make_release "$B" 1.1.0 HW-1-001 ECU_001)
	pcurl "$B/api/v1/releases/$REL" >"$WORK/rel-old.json"
	CID=$(pcurl -d "{\"name\":\"bk\",\"release_ids\":[\"$REL\"],\"target\":{\"model\":\"test-suv\"}}" \
		"$B/api/v1/campaigns" | jget id)
	check "a release, a vehicle and a campaign on the first server" test -n "$REL" -a -n "$CID"
	SHA=$(jget package.sha256 <"$WORK/rel-old.json")

	# a loop of requests that write to the store (campaigns) while the backup runs
	(
		i=0
		while [ ! -e "$WORK/stop-loop" ]; do
			i=$((i + 1))
			pcurl -d "{\"name\":\"loop-$i\",\"release_ids\":[\"$REL\"],\"target\":{\"model\":\"test-suv\"}}" \
				"$B/api/v1/campaigns" -o /dev/null && echo "$i" >>"$WORK/loop.ok"
		done
	) 2>"$WORK/loop.err" &
	LOOP=$!
	PIDS+=($LOOP)
	wait_for 20 test -s "$WORK/loop.ok" || bad "the request loop did not start"
	rc=0
	n0=$(wc -l <"$WORK/loop.ok")
	"$PQOTA" server --config "$WORK/s.conf" backup "$WORK/bk" 2>"$WORK/bk.err" || rc=$?
	n1=$(wc -l <"$WORK/loop.ok")
	check "backup of the running server exits 0 (got $rc; $((n1 - n0)) requests of the loop meanwhile)" test "$rc" = 0
	sed 's/^/     /' "$WORK/bk.err"
	touch "$WORK/stop-loop"
	wait "$LOOP" || true
	check "the request loop went on during the backup ($(wc -l <"$WORK/loop.ok") campaigns, no error)" \
		test ! -s "$WORK/loop.err"
	check "the backup has a manifest naming the store and the package" \
		jtrue "$WORK/bk/manifest.json" "d['backend'] == '$BACKEND' and {'store/$STORE_FILE', 'data/files/$SHA'} <= {f['path'] for f in d['files']}"
	check "the backup is owner-only" \
		test -z "$(find "$WORK/bk" \( -type f ! -perm 0600 \) -o \( -type d ! -perm 0700 \))"
	check_store_file "$WORK/bk/store/$STORE_FILE"
	expect_exit 2 "a backup into a non-empty directory is refused" \
		"$PQOTA" server --config "$WORK/s.conf" backup "$WORK/bk"
	check "...saying so" contains "$WORK/last.out" "is not empty"

	# --- restore into a fresh data directory and PKI path --------------------------------------
	conf r "$WORK/data-r" "$WORK/pki-r"
	rc=0
	"$PQOTA" server --config "$WORK/r.conf" restore "$WORK/bk" 2>"$WORK/rs.err" || rc=$?
	check "restore exits 0 (got $rc)" test "$rc" = 0
	sed 's/^/     /' "$WORK/rs.err"
	check "the restored data directory is owner-only" \
		test -z "$(find "$WORK/data-r" \( -type f ! -perm 0600 \) -o \( -type d ! -perm 0700 \))"
	check "the restored PKI's keys are 0600" test -z "$(find "$WORK/pki-r" -name '*.key' ! -perm 0600)"
	stop_server s
	start_server r
	R=$BASE_r
	PKI_OLD=$PKI
	PKI="$WORK/pki-r" # the restored CA verifies the new server
	check "the restored server serves the release" pcurl "$R/api/v1/releases/$REL" -o "$WORK/rel-new.json"
	check "...as it was" python3 -c 'import json,sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a != b)' \
		"$WORK/rel-old.json" "$WORK/rel-new.json"
	pcurl "$R/packages/$SHA" -o "$WORK/pkg.bin" || bad "package download"
	check "...and its package's bytes (SHA-256 $SHA)" test "$(sha256sum <"$WORK/pkg.bin" | cut -d' ' -f1)" = "$SHA"
	check "the vehicle" test "$(pcurl "$R/api/v1/vehicles/$V" | jget vin)" = $V
	check "the campaign" test "$(pcurl "$R/api/v1/campaigns/$CID" | jget name)" = bk
	check "an API key of the old server still works" test "$(st "$APIKEY" GET "$R/api/v1/releases")" = 200
	# (the director's first root is made by the control plane shortly after a start when the
	# backup predates it: polled, not assumed)
	old_cert_ok() { [ "$(st "veh:$V" GET "$R/uptane/director/$V/1.root.json")" = 200 ]; }
	check "the vehicle certificate of the old PKI is accepted" wait_for 30 old_cert_ok
	"$PQOTA" keys init "$WORK/pki-other" >/dev/null
	"$PQOTA" keys vehicle $V --dir "$WORK/pki-other" >/dev/null
	code=$(on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
		--cert "$WORK/pki-other/vehicles/$V/client.crt" --key "$WORK/pki-other/vehicles/$V/client.key" \
		"$R/uptane/director/$V/1.root.json" 2>/dev/null || true)
	check "...and one of another PKI is not (got $code)" test "$code" != 200

	# --- refusals ------------------------------------------------------------------------------
	expect_exit 2 "restore into a non-empty data directory without --force is refused" \
		"$PQOTA" server --config "$WORK/r.conf" restore "$WORK/bk"
	check "...saying so" contains "$WORK/last.out" "is not empty.*--force"
	cp -a "$WORK/bk" "$WORK/bk-bad"
	python3 -c 'import sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read()); d[100] ^= 1; open(p, "wb").write(d)' \
		"$WORK/bk-bad/data/files/$SHA"
	conf c "$WORK/data-c" "$WORK/pki-c"
	expect_exit 2 "a backup with a corrupted file is refused" \
		"$PQOTA" server --config "$WORK/c.conf" restore "$WORK/bk-bad"
	check "...naming the file and the hash mismatch" contains "$WORK/last.out" "data/files/$SHA: SHA-256 .* (corrupted)"
	check "...before anything was written" test ! -e "$WORK/data-c" -a ! -e "$WORK/pki-c"
	rm "$WORK/bk-bad/manifest.json"
	expect_exit 2 "a backup without its manifest is refused" \
		"$PQOTA" server --config "$WORK/c.conf" restore "$WORK/bk-bad"
	check "...as incomplete" contains "$WORK/last.out" "incomplete"
	sed 's|"data/token.key"|"data/../../token.key"|' "$WORK/bk/manifest.json" >"$WORK/bk-bad/manifest.json"
	expect_exit 2 "a manifest naming a file outside the backup is refused" \
		"$PQOTA" server --config "$WORK/c.conf" restore "$WORK/bk-bad"
	check "...as malformed" contains "$WORK/last.out" "malformed or leaves the backup"
	expect_exit 64 "--force is for restore only" "$PQOTA" server --config "$WORK/c.conf" backup "$WORK/x" --force
	check "backup --help" sh -c '"$0" server backup --help | grep -q "restore DIR \[--force\]"' "$PQOTA"

	stop_server r
	rc=0
	"$PQOTA" server --config "$WORK/r.conf" restore "$WORK/bk" --force 2>"$WORK/rf.err" || rc=$?
	check "restore --force over the stopped server's data exits 0 (got $rc)" test "$rc" = 0
	start_server r
	check "...and it serves the release again" pcurl "$BASE_r/api/v1/releases/$REL" -o /dev/null
	PKI=$PKI_OLD
}

# doc_blocks SECTION OUT: the sh blocks of docs/operations.md's "## SECTION" into OUT.1,
# OUT.2, ...; prints how many
doc_blocks() {
	python3 - "$PQOTA_SRC/docs/operations.md" "$1" "$2" <<'PY'
import re, sys
doc, sec, out = sys.argv[1:]
text = open(doc, encoding="utf-8").read()
m = re.search(r"^## " + re.escape(sec) + r"\n(.*?)(?=^## |\Z)", text, re.S | re.M)
blocks = re.findall(r"^```sh\n(.*?)^```", m.group(1), re.S | re.M) if m else []
for i, b in enumerate(blocks, 1):
    open("%s.%d" % (out, i), "w").write(b)
print(len(blocks))
PY
}

# run_block FILE: runs a documentation block as a user pastes it (bash, stop at an error),
# with pqota on PATH, in the current directory; its output in FILE.out
run_block() {
	PATH="$(dirname "$PQOTA"):$PATH" bash -e "$1" >"$1.out" 2>&1 || {
		sed 's/^/     /' "$1.out"
		return 1
	}
}
