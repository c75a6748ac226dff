#!/usr/bin/env bash
# server_config.sh: pqota server's configuration: the shipped example equals what the
# server generates from its key table, loads back once uncommented, unknown keys and bad
# values are refused with the line named, the environment and --set override the file,
# and --check performs the start-up self-check.
. "$(dirname "$0")/lib.bash"

expect_exit 0 "server --example-config" "$PQOTA" server --example-config
check "etc/pqota-server.conf.example is up to date (regenerate with --example-config)" \
	cmp -s "$WORK/last.out" "$PQOTA_SRC/etc/pqota-server.conf.example"
"$PQOTA" keys init "$WORK/pki" >/dev/null
# the example, uncommented, with tls.pki and data_dir set, is a valid configuration
sed -E 's/^# ?([a-z_.]+ = )/\1/' "$PQOTA_SRC/etc/pqota-server.conf.example" |
	sed -E "s|^tls.pki = .*|tls.pki = $WORK/pki|; s|^data_dir = .*|data_dir = $WORK/data|; s|^listen = .*|listen = 127.0.0.1:0|" >"$WORK/full.conf"
check "the uncommented example sets every key" test "$(grep -cE '^[a-z_.]+ = ' "$WORK/full.conf")" -ge 20
expect_exit 0 "the uncommented example passes --check" "$PQOTA" server --config "$WORK/full.conf" --check
check "--check reports the self-check" contains "$WORK/last.out" "store sqlite reachable and migrated"

printf 'tls.pki = %s\nworkerz = 3\n' "$WORK/pki" >"$WORK/bad.conf"
expect_exit 2 "an unknown key is refused" "$PQOTA" server --config "$WORK/bad.conf" --check
check "...naming the file and line" contains "$WORK/last.out" "bad.conf:2"
printf 'tls.pki = %s\nworkers = 0\n' "$WORK/pki" >"$WORK/bad2.conf"
expect_exit 2 "a value below its minimum is refused" "$PQOTA" server --config "$WORK/bad2.conf" --check
check "...with the bound" contains "$WORK/last.out" "minimum 1"
printf 'tls.pki = %s\nworkers = 2\nworkers = 3\n' "$WORK/pki" >"$WORK/bad3.conf"
expect_exit 2 "a repeated key is refused" "$PQOTA" server --config "$WORK/bad3.conf" --check

printf 'tls.pki = %s\ndata_dir = %s/d\nworkers = 2\n' "$WORK/pki" "$WORK" >"$WORK/ok.conf"
PQOTA_WORKERS=3 "$PQOTA" server --config "$WORK/ok.conf" --print-config >"$WORK/p1.txt"
check "the environment overrides the file" grep -qE '^workers = 3' "$WORK/p1.txt"
PQOTA_WORKERS=3 "$PQOTA" server --config "$WORK/ok.conf" --set workers=5 --print-config >"$WORK/p2.txt"
check "--set overrides the environment" grep -qE '^workers = 5' "$WORK/p2.txt"
check "--print-config names each value's origin" grep -q 'PQOTA_WORKERS\|--set' "$WORK/p2.txt"
expect_exit 2 "a missing certificate fails the self-check" "$PQOTA" server --set tls.cert="$WORK/none.crt" \
	--set tls.key="$WORK/none.key" --set data_dir="$WORK/d2" --check
check "...naming the file" contains "$WORK/last.out" "none.crt"
# the port is taken: the self-check says so
"$PQOTA" tls serve --pki "$WORK/pki" --listen 127.0.0.1:0 --port-file "$WORK/busy.port" >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/busy.port"
expect_exit 2 "a port in use fails the self-check" "$PQOTA" server --config "$WORK/ok.conf" \
	--set listen=127.0.0.1:"$(cat "$WORK/busy.port")" --check
check "...saying the address is in use" contains "$WORK/last.out" "in use"
expect_exit 0 "server --help" "$PQOTA" server --help
expect_exit 64 "an unknown server command" "$PQOTA" server --config "$WORK/ok.conf" frobnicate
finish
