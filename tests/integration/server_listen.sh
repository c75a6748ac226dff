#!/usr/bin/env bash
# server_listen.sh: a listen port another server holds is a clear start-up error (serving and
# --check alike), while the running server goes on serving; reuse_port = true on both lets
# two servers share a port, only when configured.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki
BROKER_PORT=1 # no broker: the servers' MQTT bridges are off (mqtt.broker removed below)
conf() { write_server_conf "$@" && sed -i '/^mqtt\.broker/d' "$WORK/$1.conf"; }
conf a
start_server a
PORT=$(cat "$WORK/a.port")
health() { on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$1/health" -o /dev/null; }
check "server a serves on $PORT" health "$BASE_a"

conf b "listen = 127.0.0.1:$PORT" "port_file = $WORK/b.port"
expect_exit 2 "--check with a's port: refused" "$PQOTA" server --config "$WORK/b.conf" --check
check "...saying the address is in use" contains "$WORK/last.out" "127.0.0.1:$PORT: Address already in use"
expect_exit 2 "serving on a's port: refused at start-up" timeout 60 "$PQOTA" server --config "$WORK/b.conf"
check "...saying so" contains "$WORK/last.out" "another process listens there"
check "...without writing a port file" test ! -e "$WORK/b.port"
check "server a still serves" health "$BASE_a"

# explicit reuse: both with reuse_port = true
conf c "reuse_port = true" "workers = 2"
start_server c
P2=$(cat "$WORK/c.port")
conf d "reuse_port = true" "listen = 127.0.0.1:$P2"
start_server d
check "with reuse_port = true on both, a second server binds $P2 too" test "$(cat "$WORK/d.port")" = "$P2"
check "...and the port serves" health "https://127.0.0.1:$P2"
finish
