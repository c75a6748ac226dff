#!/usr/bin/env bash
# console_api.sh: what the operator console stands on, over real TLS against a real server
# (no browser: tests/integration/console_browser.sh drives Chromium). The console's page
# and files (security headers, ETag revalidation, immutable hashed paths), sign-in to a
# session cookie (attributes, wrong keys, audit), the CSRF token on every state change made
# with the cookie, sign-out and key revocation ending the session, console.dir, and the live
# event stream (authentication, a release event as it happens, resuming after
# Last-Event-ID, a reset for an id of another process).
. "$(dirname "$0")/lib.bash"

"$PQOTA" keys init "$WORK/pki" >/dev/null
cat >"$WORK/server.conf" <<EOF
listen = 127.0.0.1:0
workers = 2
tls.pki = $WORK/pki
data_dir = $WORK/data
port_file = $WORK/port
log.level = warn
EOF
admin=$("$PQOTA" server --config "$WORK/server.conf" apikey create --role admin --name alice | head -1)
viewer=$("$PQOTA" server --config "$WORK/server.conf" apikey create --role viewer --name vic | head -1)
start_server() { # start_server [--set ...]
	rm -f "$WORK/port"
	"$PQOTA" server --config "$WORK/server.conf" "$@" >>"$WORK/server.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_for 20 test -s "$WORK/port" || { bad "the server did not start"; cat "$WORK/server.log"; finish; }
	BASE="https://127.0.0.1:$(cat "$WORK/port")"
}
stop_server() { # and check it stopped cleanly: exit 0 (under ASan: nothing leaked)
	local rc=0
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || rc=$?
	check "the server stopped cleanly (exit $rc)" test "$rc" = 0
}
start_server
pq() { on35 curl -s --curves X25519MLKEM768 --cacert "$WORK/pki/ca/ca.crt" "$@"; }
code() { pq -o /dev/null -w '%{http_code}' "$@"; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

# ---- the page and its files ----
pq -H "Accept: text/html" -D "$WORK/h.txt" -o "$WORK/index.html" "$BASE/"
hdr() { grep -i "^$1:" "$WORK/h.txt" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
check "GET / is the console page" grep -q '<html' "$WORK/index.html"
csp=$(hdr Content-Security-Policy)
check "CSP: scripts only from the server, no inline ones" contains <(echo "$csp") "script-src 'self';"
check "CSP: never framed" contains <(echo "$csp") "frame-ancestors 'none'"
check "X-Content-Type-Options nosniff" test "$(hdr X-Content-Type-Options)" = nosniff
check "Referrer-Policy no-referrer" test "$(hdr Referrer-Policy)" = no-referrer
check "the page is revalidated (no-cache)" test "$(hdr Cache-Control)" = no-cache
etag=$(hdr ETag)
check "the page answers 304 to its ETag" test "$(code -H "Accept: text/html" -H "If-None-Match: $etag" "$BASE/")" = 304
check "no @BUILD@ mark is left in the page" sh -c "! grep -q @BUILD@ '$WORK/index.html'"
asset=$(grep -o '/console/[0-9a-f]\{16\}/[A-Za-z0-9_./-]*\.js' "$WORK/index.html" | head -1)
check "the page names a script under its build hash ($asset)" test -n "$asset"
pq -D "$WORK/h.txt" -o "$WORK/app.js" "$BASE$asset"
check "the script is text/javascript" contains <(hdr Content-Type) "text/javascript"
check "the script may be cached for good" contains <(hdr Cache-Control) immutable
stale=$(echo "$asset" | sed 's#/console/[0-9a-f]*/#/console/0000000000000000/#')
check "a file of another build is 404" test "$(code "$BASE$stale")" = 404
check "a path with .. is refused" test "$(code --path-as-is "$BASE/console/x/../../etc/passwd")" = 400

# ---- sign-in ----
signin() { # signin KEY JAR: the response body
	pq -c "$2" -D "$WORK/signin.h" -H 'Content-Type: application/json' \
		-d "{\"api_key\":\"$1\"}" "$BASE/api/v1/session"
}
check "a wrong key is refused (401)" test "$(code -H 'Content-Type: application/json' \
	-d '{"api_key":"pqk_0000000000000000000000000000000000000000000000000000000000000000"}' \
	"$BASE/api/v1/session")" = 401
check "a form post (not JSON) cannot sign in" test "$(code -d "api_key=$admin" "$BASE/api/v1/session")" = 403
check "a cross-site sign-in is refused" test "$(code -H 'Content-Type: application/json' \
	-H 'Sec-Fetch-Site: cross-site' -d "{\"api_key\":\"$admin\"}" "$BASE/api/v1/session")" = 403
check "an unknown member is 400" test "$(code -H 'Content-Type: application/json' \
	-d "{\"api_key\":\"$admin\",\"x\":1}" "$BASE/api/v1/session")" = 400
body=$(signin "$admin" "$WORK/admin.jar")
cookie=$(grep -i '^set-cookie:' "$WORK/signin.h" | tr -d '\r')
for attr in HttpOnly Secure SameSite=Strict Max-Age= Path=/; do
	check "the session cookie has $attr" contains <(echo "$cookie") "$attr"
done
csrf=$(echo "$body" | json 'd["csrf_token"]')
check "sign-in answers the role and a CSRF token" test "$(echo "$body" | json 'd["role"]')-${#csrf}" = admin-64
check "the cookie identifies the session (GET /api/v1/session)" \
	test "$(pq -b "$WORK/admin.jar" "$BASE/api/v1/session" | json 'd["name"]')" = alice
check "the cookie works on the API (GET /api/v1/releases)" test "$(code -b "$WORK/admin.jar" "$BASE/api/v1/releases")" = 200

# ---- CSRF ----
up='{"size":3}'
check "a state change with the cookie but no CSRF token is 403" test "$(code -b "$WORK/admin.jar" \
	-H 'Content-Type: application/json' -d "$up" "$BASE/api/v1/uploads")" = 403
check "...with a wrong CSRF token too" test "$(code -b "$WORK/admin.jar" -H "X-CSRF-Token: ${csrf/?/0}x" \
	-H 'Content-Type: application/json' -d "$up" "$BASE/api/v1/uploads")" = 403
check "...and from another site even with the token" test "$(code -b "$WORK/admin.jar" \
	-H "X-CSRF-Token: $csrf" -H 'Sec-Fetch-Site: cross-site' -d "$up" "$BASE/api/v1/uploads")" = 403
check "with its CSRF token the change is made (201)" test "$(code -b "$WORK/admin.jar" \
	-H "X-CSRF-Token: $csrf" -H 'Content-Type: application/json' -d "$up" "$BASE/api/v1/uploads")" = 201
check "an API key needs no CSRF token (201)" test "$(code -H "X-API-Key: $admin" -d "$up" "$BASE/api/v1/uploads")" = 201

# ---- roles hold with a session ----
vbody=$(signin "$viewer" "$WORK/viewer.jar")
vcsrf=$(echo "$vbody" | json 'd["csrf_token"]')
check "a viewer's session cannot upload (403)" test "$(code -b "$WORK/viewer.jar" -H "X-CSRF-Token: $vcsrf" \
	-H 'Content-Type: application/json' -d "$up" "$BASE/api/v1/uploads")" = 403
check "a viewer's session cannot read the audit log (403)" test "$(code -b "$WORK/viewer.jar" "$BASE/api/v1/audit")" = 403

# ---- the live event stream ----
check "the stream needs an identity (401)" test "$(code "$BASE/api/v1/events")" = 401
check "the stream refuses unknown query parameters" test "$(code -b "$WORK/admin.jar" "$BASE/api/v1/events?since=1")" = 400
pq -N -b "$WORK/viewer.jar" "$BASE/api/v1/events" >"$WORK/stream1" &
PIDS+=($!)
wait_for 10 contains "$WORK/stream1" ': connected'
# a release: an upload of 3 bytes, then the release; the stream shows it
uid=$(pq -H "X-API-Key: $admin" -d '{"size":3}' "$BASE/api/v1/uploads" | json 'd["id"]')
printf 'abc' | pq -X PUT -H "X-API-Key: $admin" --data-binary @- "$BASE/api/v1/uploads/$uid?offset=0" >/dev/null
rel=$(pq -H "X-API-Key: $admin" -d "{\"title\":\"t\",\"version\":\"1.0.0\",\"hardware_id\":\"HW-1\",\"ecu_id\":\"ECU_001\",\"upload_id\":\"$uid\"}" \
	"$BASE/api/v1/releases" | json 'd["id"]')
check "a new release reaches an open stream at once" wait_for 10 contains "$WORK/stream1" "\"id\":\"$rel\""
check "...as an event named release" contains "$WORK/stream1" "event: release"
first_id=$(grep -m1 '^id: ' "$WORK/stream1" | cut -d' ' -f2)
# resuming after the first event gives what came after it, and only that
pq -X DELETE -H "X-API-Key: $admin" "$BASE/api/v1/releases/$rel" >/dev/null
wait_for 10 contains "$WORK/stream1" '"deleted":true'
pq -N -b "$WORK/viewer.jar" -H "Last-Event-ID: $first_id" "$BASE/api/v1/events" >"$WORK/stream2" &
PIDS+=($!)
check "a stream resumed after Last-Event-ID gets what it missed" wait_for 10 contains "$WORK/stream2" '"deleted":true'
check "...and not the event it had" sh -c "! grep -q 'id: $first_id\$' '$WORK/stream2'"
pq -N -b "$WORK/viewer.jar" -H "Last-Event-ID: 12345-1" "$BASE/api/v1/events" >"$WORK/stream3" &
PIDS+=($!)
check "an id from another process gets a reset" wait_for 10 contains "$WORK/stream3" 'event: reset'

# a stream's client has nothing to send: one that sends data has its stream ended (the
# server would otherwise buffer all of it), and streams whose clients went away are freed
# (under ASan the clean exit below also says nothing leaked)
(printf 'GET /api/v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n' "$admin"
	head -c 1048576 /dev/zero) | on35 openssl s_client -quiet -connect "127.0.0.1:$(cat "$WORK/port")" \
	-groups X25519MLKEM768 -CAfile "$WORK/pki/ca/ca.crt" >"$WORK/flood.out" 2>/dev/null &
flood=$!
PIDS+=($flood)
check "a client that sends data on its stream has the stream ended" \
	wait_for 20 contains "$WORK/server.log" "the client sent data on it"
kill "$flood" 2>/dev/null || true
for i in 1 2 3; do pq -N -m 1 -b "$WORK/viewer.jar" "$BASE/api/v1/events" >/dev/null || true; done

# ---- sign-out and revocation end sessions ----
check "sign-out without the CSRF token is refused" test "$(code -X DELETE -b "$WORK/admin.jar" "$BASE/api/v1/session")" = 403
cp "$WORK/admin.jar" "$WORK/old.jar"
check "sign-out (204)" test "$(code -X DELETE -b "$WORK/admin.jar" -H "X-CSRF-Token: $csrf" "$BASE/api/v1/session")" = 204
check "the old cookie is refused after sign-out (401)" test "$(code -b "$WORK/old.jar" "$BASE/api/v1/releases")" = 401
vid=$(echo "$vbody" | json 'd["key_id"]')
"$PQOTA" server --config "$WORK/server.conf" apikey revoke "$vid" >/dev/null
check "revoking the key ends its sessions (401)" test "$(code -b "$WORK/viewer.jar" "$BASE/api/v1/releases")" = 401
audit=$(pq -H "X-API-Key: $admin" "$BASE/api/v1/audit?limit=100")
for a in session.signin session.signin_failed session.signout; do
	check "the audit log records $a" contains <(echo "$audit") "\"action\":\"$a\""
done

# ---- console.dir and console.enabled ----
stop_server
mkdir -p "$WORK/alt/js"
printf '<!doctype html><script type="module" src="/console/@BUILD@/js/x.js"></script>' >"$WORK/alt/index.html"
echo 'export const x = 1;' >"$WORK/alt/js/x.js"
start_server --set "console.dir=$WORK/alt"
page=$(pq -H "Accept: text/html" "$BASE/")
nested=$(echo "$page" | grep -o '/console/[0-9a-f]*/js/x.js')
check "console.dir serves that directory, nested files included" test "$(code "$BASE$nested")" = 200
stop_server
start_server --set console.enabled=false
check "console.enabled=false: / is 404" test "$(code -H "Accept: text/html" "$BASE/")" = 404
stop_server
rm -rf "$WORK/empty" && mkdir "$WORK/empty"
expect_exit 2 "a console.dir without index.html fails the start-up check" \
	"$PQOTA" server --config "$WORK/server.conf" --set "console.dir=$WORK/empty" --check
finish
