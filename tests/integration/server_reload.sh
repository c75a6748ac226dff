#!/usr/bin/env bash
# server_reload.sh: SIGHUP reloads what can change without a restart, and keeps serving:
#  - JSON logs with stable fields in log.file, and an access log line per request (method,
#    route pattern, status, bytes, duration, identity, client, TLS group) that never holds a
#    query string (download tokens);
#  - a renamed log file (logrotate) is reopened; log.access off stops the access lines;
#  - new rate limits apply at once; a new TLS certificate is served to new connections;
#  - a reload that cannot load (a missing certificate) changes nothing and is logged;
#  - requests sent while the server reloads ten times all succeed (figures printed).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"

make_pki
BROKER_PORT=1
LOG="$WORK/srv.log"
conf() { # extra lines: the server's configuration file, without a broker
	write_server_conf s "log.file = $LOG" "log.format = json" "$@"
	sed -i '/^mqtt\.broker/d' "$WORK/s.conf"
}
conf
start_server s
B=$BASE_s
PID=$SRVPID_s
code() { on35 curl -sS -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" "$@"; }
# reload: SIGHUP, then wait for the server's line about it (the N-th one)
# (counted in the current log file, which a rename restarts)
reloads=0
reloaded() { [ "$(grep -c '"msg":"reloaded' "$LOG" 2>/dev/null)" -ge "$reloads" ]; }
reload() {
	reloads=$((reloads + 1))
	kill -HUP "$PID"
	wait_for 20 reloaded
}

check "GET /health: 200" test "$(code "$B/health")" = 200
check "GET /packages/<sha>?token=SECRETTOKEN: refused" test "$(code "$B/packages/$(printf '%064d' 0)?token=SECRETTOKEN123")" = 403
check "the log is JSON lines with ts, level, component, msg" python3 - "$LOG" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines and all(list(l)[:4] == ["ts", "level", "component", "msg"] for l in lines), lines[:3]
assert any(l["component"] == "server" and "listening" in l["msg"] for l in lines)
PY
# (access lines are buffered and written out within a second: polled)
cat >"$WORK/access.py" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"component":"access"' in l]
h = [x for x in a if x["route"] == "/health"][0]
assert h["method"] == "GET" and h["status"] == 200 and h["bytes"] > 0 and h["duration_ms"] >= 0, h
assert h["identity"] == "anonymous" and h["client"] == "127.0.0.1" and h["tls_group"] == "X25519MLKEM768", h
p = [x for x in a if x["route"] == "/packages/{sha256}"][0]
assert p["status"] == 403, p
PY
check "...an access line for /health: every field" wait_for 10 python3 "$WORK/access.py" "$LOG"
check "...which never holds the query's token" bash -c "! grep -q SECRETTOKEN123 '$LOG'"

# logrotate: the file renamed, SIGHUP, the server writes a new one
mv "$LOG" "$LOG.1"
reloads=0
check "SIGHUP after the log was renamed: reloaded" reload
check "...into a new log file" wait_for 10 grep -q '"msg":"reloaded' "$LOG"
code "$B/health" >/dev/null
check "...which gets the next requests" wait_for 10 grep -q '"route":"/health"' "$LOG"

# rate limits and the access log switch
conf "ratelimit.client_rps = 1" "ratelimit.client_burst = 1" "log.access = false"
check "SIGHUP with a 1 request/s client limit and no access log: reloaded" reload
n429=0
for i in 1 2 3 4; do [ "$(code "$B/health")" = 429 ] && n429=$((n429 + 1)); done
check "...four quick requests: some are refused with 429 ($n429)" test "$n429" -ge 2
check "...and no access line since the reload" python3 - "$LOG" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
last = max(i for i, l in enumerate(lines) if l["msg"].startswith("reloaded"))
assert not [l for l in lines[last + 1:] if l["component"] == "access"], lines[last:]
PY

# a new certificate from the same CA
"$OPENSSL35" req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/new.key" \
	-subj "/O=pqota/CN=pqota-server" -out "$WORK/new.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/san.ext"
"$OPENSSL35" x509 -req -in "$WORK/new.csr" -CA "$PKI/ca/ca.crt" -CAkey "$PKI/ca/ca.key" -days 2 \
	-set_serial 4242 -extfile "$WORK/san.ext" -out "$WORK/new.crt" 2>/dev/null
# (stdin /dev/null, not a pipe: an `echo |` that s_client did not read would fail the
# pipeline under pipefail)
serial() { on35 "$OPENSSL35" s_client -connect "127.0.0.1:$(cat "$WORK/s.port")" -groups X25519MLKEM768 \
	-CAfile "$PKI/ca/ca.crt" </dev/null 2>/dev/null | "$OPENSSL35" x509 -noout -serial; }
old_serial=$(serial)
conf "tls.cert = $WORK/new.crt" "tls.key = $WORK/new.key"
check "SIGHUP with a new certificate: reloaded" reload
check "...new connections get it (serial $old_serial -> 4242)" test "$(serial)" = "serial=1092"
check "...and are served" test "$(code "$B/health")" = 200

# a reload that cannot load changes nothing
conf "tls.cert = $WORK/missing.crt" "tls.key = $WORK/new.key"
kill -HUP "$PID"
check "a reload with a missing certificate fails, logged" wait_for 20 grep -q '"msg":"reload failed, nothing changed' "$LOG"
check "...the server keeps the certificate it had" test "$(serial)" = "serial=1092"
check "...and serves" test "$(code "$B/health")" = 200

# no request lost while reloading: a client loop during ten reloads
conf
reload >/dev/null
( for i in $(seq 1 200); do code "$B/health"; echo; done >"$WORK/loop.out" ) &
LOOP=$!
for i in $(seq 1 10); do reload || bad "reload $i"; done
wait "$LOOP"
ok_n=$(grep -c '^200$' "$WORK/loop.out")
echo "     $ok_n of 200 requests answered 200 during 10 reloads"
check "every request sent during the reloads was answered 200" test "$ok_n" = 200
check "the server still runs" kill -0 "$PID"
finish
