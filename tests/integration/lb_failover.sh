#!/usr/bin/env bash
# lb_failover.sh: two pqota instances on one PostgreSQL database behind Debian's nginx, which
# runs on pqota's OpenSSL 3.5, terminates the vehicles' and operators' PQC TLS
# (X25519MLKEM768, client certificates verified) and forwards to each instance's proxy
# listener (a Unix socket, plain HTTP) with the proxy secret, the client's address, its
# certificate and the group (docs/operations.md "Behind a load balancer"). Checks: requests
# through nginx are identified (API key, vehicle certificate) and logged with the forwarded
# client and group; the proxy socket refuses a request without the secret; a forged
# certificate header is not a vehicle; then a two-vehicle campaign with real agents is
# started through nginx, instance s1 is killed (SIGKILL) while the vehicles download, and
# the campaign completes through s2.
# Runs under tests/store/pg-fixture.sh (a throwaway PostgreSQL server).
if [ -z "${PQOTA_TEST_PG:-}" ]; then
	exec bash "$PQOTA_SRC/tests/store/pg-fixture.sh" bash "$0" "$@"
fi
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/agent_lib.bash"

command -v nginx >/dev/null || { bad "nginx is not installed (scripts/bootstrap installs nginx-light)"; finish; }
V1=LBVEHICLE00000001
V2=LBVEHICLE00000002
make_pki $V1 $V2
start_broker
head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$WORK/proxy.secret"
SECRET=$(cat "$WORK/proxy.secret")
LBPORT=$(free_port)
for s in s1 s2; do
	write_server_conf "$s" "store.backend = postgres" "store.url = \"$PQOTA_TEST_PG\"" \
		"mqtt.shared_group = pqota" "data_dir = $WORK/shared-data" "engine.lease = 2s" \
		"proxy.listen = unix:$WORK/$s.sock" "proxy.secret_file = $WORK/proxy.secret" \
		"public_url = https://127.0.0.1:$LBPORT" "log.format = json"
done
start_server s1
start_server s2
check "both instances listen on their proxy sockets" test -S "$WORK/s1.sock" -a -S "$WORK/s2.sock"

# --- nginx on OpenSSL 3.5 ---------------------------------------------------------------------
mkdir -p "$WORK/nginx"
# the documented site configuration (etc/nginx-pqota.conf.example), filled in, inside a
# foreground nginx of the test's own
sed -e "s|@SOCK1@|$WORK/s1.sock|" -e "s|@SOCK2@|$WORK/s2.sock|" -e "s|@LISTEN@|127.0.0.1:$LBPORT|" \
	-e "s|@PKI@|$PKI|g" -e "s|@SECRET@|$SECRET|" "$PQOTA_SRC/etc/nginx-pqota.conf.example" >"$WORK/nginx/pqota.conf"
cat >"$WORK/nginx.conf" <<CONF
daemon off;
master_process off;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log info;
events {}
http {
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include $WORK/nginx/pqota.conf;
}
CONF
"$PQOTA_SRC/scripts/env" -- nginx -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log" >"$WORK/nginx/out.log" 2>&1 &
NGINX=$!
PIDS+=($NGINX)
B="https://127.0.0.1:$LBPORT"
CA="$PKI/ca/ca.crt"
lb_up() { on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$CA" "$B/ready" -o /dev/null; }
check "nginx serves /ready through the proxy sockets" wait_for 20 lb_up
check "nginx runs on pqota's OpenSSL 3.5" grep -q "$OPENSSL_PREFIX/lib/libssl.so.3" "/proc/$NGINX/maps"
make_key s1

# --- identity through the proxy ---------------------------------------------------------------------
check "an API key through nginx: the vehicles list" pcurl "$B/api/v1/vehicles" -o /dev/null
check "vehicles registered through nginx" register "$B" $V1 $V2
code=$(on35 curl -sS -o "$WORK/v.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
	--cert "$PKI/vehicles/$V1/client.crt" --key "$PKI/vehicles/$V1/client.key" "$B/api/v1/vehicles/$V1")
check "$V1's certificate through nginx: it reads itself (got $code)" test "$code" = 200
code=$(on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
	--cert "$PKI/vehicles/$V1/client.crt" --key "$PKI/vehicles/$V1/client.key" "$B/api/v1/vehicles/$V2")
check "...and not $V2 (got $code)" test "$code" = 403
cat >"$WORK/access.py" <<'PY'
import json, sys
lines = [json.loads(l) for f in sys.argv[1:3] for l in open(f) if l.startswith("{")]
a = [l for l in lines if l["component"] == "access" and l["identity"] == "vehicle:" + sys.argv[3]]
assert a and a[0]["client"] == "127.0.0.1" and a[0]["tls_group"] == "X25519MLKEM768", a[:2]
PY
# (access lines are buffered and written out within a second: polled)
check "the access log has the forwarded client, identity and group" wait_for 10 python3 "$WORK/access.py" "$WORK/s1.log" "$WORK/s2.log" "$V1"
# the proxy socket itself, without nginx
sockcode() { curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$WORK/s1.sock" "$@"; }
check "the proxy socket without the secret: 401" test "$(sockcode "http://pqota/api/v1/vehicles/$V1" -H "X-Client-Cert: x")" = 401
pem=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read()))' "$PKI/vehicles/$V1/client.crt")
check "...with the secret and $V1's certificate: 200" test "$(sockcode "http://pqota/api/v1/vehicles/$V1" -H "X-Pqota-Proxy-Secret: $SECRET" -H "X-Client-Cert: $pem")" = 200
"$OPENSSL35" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/forged.key" \
	-subj "/CN=$V1" -days 1 -out "$WORK/forged.crt" 2>/dev/null
forged=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read()))' "$WORK/forged.crt")
check "...with the secret and the certificate header twice: refused (401)" test "$(sockcode "http://pqota/api/v1/vehicles/$V1" -H "X-Pqota-Proxy-Secret: $SECRET" -H "X-Client-Cert: $pem" -H "X-Client-Cert: $pem")" = 401
check "...with a self-signed certificate for $V1: not a vehicle (401)" test "$(sockcode "http://pqota/api/v1/vehicles/$V1" -H "X-Pqota-Proxy-Secret: $SECRET" -H "X-Client-Cert: $forged")" = 401

# --- a campaign, and s1 killed while the vehicles download ---------------------------------------------
check "the trusted Uptane roots through nginx" provision $V1 $V2
start_agent $V1 --max-rate 1000000
start_agent $V2 --max-rate 1000000
check "the agents sent their VCI" wait_for 60 vci_in $V1 && wait_for 60 vci_in $V2
rel=$(release ECU_011 HW-1-011 1.1.0 4000000)
check "a 4 MB release through nginx" test -n "$rel"
cid=$(pcurl -d "{\"name\":\"lb\",\"release_ids\":[\"$rel\"],\"target\":{\"vins\":[\"$V1\",\"$V2\"]},\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}" \
	"$B/api/v1/campaigns" | jget id)
pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null || bad "start"
downloading() { [ "$(dep_state "$B" "$cid" $V1)" = downloading ] || [ "$(dep_state "$B" "$cid" $V2)" = downloading ]; }
check "a vehicle is downloading" wait_for 60 downloading
kill -KILL "$SRVPID_s1"
wait "$SRVPID_s1" 2>/dev/null || true
check "s1 killed mid-campaign (campaign $(pcurl "$B/api/v1/campaigns/$cid" | jget state))" test "$(pcurl "$B/api/v1/campaigns/$cid" | jget state)" != completed
for v in $V1 $V2; do
	check "$v: completed through s2" test "$(final_state "$cid" $v)" = completed
	check "$v: ECU_011 at 1.1.0" test "$(ecu_bank $v ECU_011 | cut -d' ' -f3)" = 1.1.0
done
done_c() { [ "$(pcurl "$B/api/v1/campaigns/$cid" | jget state)" = completed ]; }
check "the campaign completes" wait_for 60 done_c
check "nginx sent requests to s2 after s1 went away" wait_for 10 grep -q '"route"' "$WORK/s2.log"
for v in $V1 $V2; do check "agent $v stops cleanly" stop_agent $v; done
stop_server s2
finish
