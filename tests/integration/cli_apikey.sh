#!/usr/bin/env bash
# cli_apikey.sh: API keys over the API: `pqota apikey create|list|revoke` with an admin key
# against a real server (POST/GET /api/v1/apikeys, DELETE /api/v1/apikeys/{id}): the secret
# printed once and usable at once with its role, last use recorded (at most once a minute,
# so a second request does not move it), an expiring key refused once expired (also while
# its lookup is cached) and listed as expired, a revoked key refused, the routes refused to
# operator and viewer keys (403) and to no key (401), bad bodies (400), the audit log, and
# the usage errors (exit 64).
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/campaign_lib.bash"
. "$(dirname "$0")/cli_lib.bash"

cli_setup
export PQOTA_API_KEY=$ADMIN
ak() { "$PQOTA" apikey "$@"; }
# status KEY PATH: the HTTP status of a GET with that key
status() {
	on35 curl -s -o /dev/null -w '%{http_code}' --curves X25519MLKEM768 --cacert "$CA" \
		-H "Authorization: Bearer $1" "$B$2"
}

# --- 1. create, use, list -----------------------------------------------------------------------
rc=0
OPKEY=$(ak create --name ops --role operator 2>"$WORK/create.err") || rc=$?
check "create exits 0 (got $rc)" test "$rc" = 0
check "the secret is printed alone on stdout" python3 -c 'import re,sys; assert re.fullmatch(r"pqk_[0-9a-f]{64}", sys.argv[1])' "$OPKEY"
check "... and described on stderr" grep -q "API key 'ops' (id .*, role operator, expires never) created" "$WORK/create.err"
ak create --name viewer2 --role viewer --json >"$WORK/viewer.json"
VKEY=$(jget key <"$WORK/viewer.json")
VID=$(jget id <"$WORK/viewer.json")
check "create --json: the key object with its secret" test "$(jget role <"$WORK/viewer.json") $(jget state <"$WORK/viewer.json") $(jget expires_ms <"$WORK/viewer.json")" = "viewer active 0"
check "the operator key works at once" test "$(status "$OPKEY" /api/v1/releases)" = 200
check "... with its role: an operator may not list keys (403)" test "$(status "$OPKEY" /api/v1/apikeys)" = 403
check "a viewer may not list keys (403)" test "$(status "$VKEY" /api/v1/apikeys)" = 403
check "no key: 401" test "$(status "" /api/v1/apikeys)" = 401
expect_exit 2 "apikey create with an operator key: exit 2" env PQOTA_API_KEY=$OPKEY "$PQOTA" apikey create --name x --role viewer
check "... 403 printed" grep -q "HTTP 403 forbidden" "$WORK/last.out"
expect_exit 2 "apikey list with a viewer key: exit 2" env PQOTA_API_KEY=$VKEY "$PQOTA" apikey list

ak list --json >"$WORK/list1.json"
used1=$(python3 -c 'import json,sys
print([k for k in json.load(open(sys.argv[1]))["items"] if k["name"] == "ops"][0]["last_used_ms"])' "$WORK/list1.json")
check "list --json: five keys (three of the set-up)" test "$(jget total <"$WORK/list1.json")" = 5
check "the operator key's last use is recorded" test "$used1" -gt 0
check "no secret or hash in the list" python3 -c 'import json,sys
for k in json.load(open(sys.argv[1]))["items"]: assert "key" not in k and "key_sha256" not in k, k' "$WORK/list1.json"
status "$OPKEY" /api/v1/releases >/dev/null
ak list --json >"$WORK/list2.json"
used2=$(python3 -c 'import json,sys
print([k for k in json.load(open(sys.argv[1]))["items"] if k["name"] == "ops"][0]["last_used_ms"])' "$WORK/list2.json")
check "a second use within the minute writes nothing" test "$used2" = "$used1"
ak list >"$WORK/list.txt"
check "list (table)" grep -q "^[0-9a-f-]* ops  *operator active " "$WORK/list.txt"

# --- 2. expiry ----------------------------------------------------------------------------------
ak create --name brief --role viewer --expires-in 3s --json >"$WORK/brief.json"
BKEY=$(jget key <"$WORK/brief.json")
exp=$(jget expires_ms <"$WORK/brief.json")
check "the expiring key has its expiry" test "$exp" -gt "$(jget created_ms <"$WORK/brief.json")"
check "it works before it expires" test "$(status "$BKEY" /api/v1/releases)" = 200
expired() { [ "$(status "$BKEY" /api/v1/releases)" = 401 ]; }
check "it is refused (401) once expired, its cached lookup included" wait_for 10 expired
check "... not before its time" test "$(python3 -c 'import time; print(int(time.time()*1000))')" -ge "$exp"
ak list >"$WORK/list3.txt"
check "list shows it expired" grep -q " brief  *viewer  *expired " "$WORK/list3.txt"
on35 curl -s --curves X25519MLKEM768 --cacert "$CA" -H "Authorization: Bearer $ADMIN" \
	-d '{"name":"x","role":"viewer","expires_ms":1}' "$B/api/v1/apikeys" >"$WORK/past.json"
check "an expiry in the past is refused (400)" grep -q '"bad_request"' "$WORK/past.json"
on35 curl -s --curves X25519MLKEM768 --cacert "$CA" -H "Authorization: Bearer $ADMIN" \
	-d '{"name":"x","role":"root"}' "$B/api/v1/apikeys" >"$WORK/role.json"
check "an unknown role is refused (400)" grep -q "role: viewer, operator or admin" "$WORK/role.json"
on35 curl -s --curves X25519MLKEM768 --cacert "$CA" -H "Authorization: Bearer $ADMIN" \
	-d '{"name":"x","role":"viewer","colour":1}' "$B/api/v1/apikeys" >"$WORK/extra.json"
check "an unknown member is refused (400)" grep -q '"bad_request"' "$WORK/extra.json"
expect_exit 2 "a key name in use: 409, exit 2" ak create --name ops --role viewer
check "... conflict printed" grep -q "HTTP 409" "$WORK/last.out"

# --- 3. revoke, audit -----------------------------------------------------------------------------
rc=0
ak revoke "$VID" >"$WORK/revoke.txt" || rc=$?
check "revoke exits 0 (got $rc)" test "$rc" = 0 -a "$(cat "$WORK/revoke.txt")" = "revoked $VID (viewer2)"
revoked() { [ "$(status "$VKEY" /api/v1/releases)" = 401 ]; }
check "the revoked key is refused within the cache's 5 s" wait_for 10 revoked
check "list shows it revoked" test "$(ak list --json | python3 -c 'import json,sys
print([k["state"] for k in json.load(sys.stdin)["items"] if k["name"] == "viewer2"][0])')" = revoked
expect_exit 2 "revoke of an unknown id: 404, exit 2" ak revoke 00000000-0000-4000-8000-000000000000
expect_exit 64 "revoke of a malformed id" ak revoke "../x"
on35 curl -s --curves X25519MLKEM768 --cacert "$CA" -H "Authorization: Bearer $ADMIN" \
	"$B/api/v1/audit?action=apikey.create" >"$WORK/audit.json"
check "the audit log names the admin key as the creator" python3 -c 'import json,sys
items = [i for i in json.load(open(sys.argv[1]))["items"] if i["actor"] != "cli"]
assert [(i["actor"], i["detail"]["name"]) for i in items] == \
    [("apikey:admin", n) for n in ("brief", "viewer2", "ops")], items' "$WORK/audit.json"
expect_exit 64 "create without --role" ak create --name x
expect_exit 64 "a malformed --expires-in" ak create --name x --role viewer --expires-in 3w
expect_exit 64 "no server" env -u PQOTA_SERVER "$PQOTA" apikey list
expect_exit 0 "apikey --help" ak --help
finish
