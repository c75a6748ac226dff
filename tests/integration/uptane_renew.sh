#!/usr/bin/env bash
# uptane_renew.sh: the server's image repository: published when a release appears (targets
# name its package with length and SHA-256), served unchanged at /uptane/image/, and the
# snapshot re-signed before it expires even when no release changes (here with an 8 s
# lifetime: renewed once less than 4 s are left, checked at every 1 s engine tick, so the
# served snapshot keeps 3 s or more even on a loaded machine; with 4 s it kept only 1 s and
# a tick delayed by load let it expire).
. "$(dirname "$0")/lib.bash"
BROKER_PORT=1 # no broker: the server runs without MQTT
. "$(dirname "$0")/campaign_lib.bash"

make_pki
write_server_conf u 'mqtt.broker = ""' "uptane.snapshot_lifetime = 8s"
start_server u
B=$BASE_u
make_key u
rel=$(make_release "$B" 2.0.0 HW-9-001 ECU_009)
check "a release" test -n "$rel"
meta() { pcurl "$B/uptane/image/$1.json"; }
has_target() { meta targets | grep -q "\"$rel.full.swpg\""; }
check "the image targets name the release's package" wait_for 10 has_target
sha=$(pcurl "$B/api/v1/releases/$rel" | jget package.sha256)
check "...with its SHA-256" bash -c "grep -q '$sha' <<<'$(meta targets)'"
version() { meta "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["signed"]["version"])'; }
v1=$(version snapshot)
t1=$(version timestamp)
renewed() { [ "$(version snapshot)" -gt "$v1" ]; }
check "the snapshot (version $v1) is re-signed before it expires" wait_for 15 renewed
check "...with a new timestamp" test "$(version timestamp)" -gt "$t1"
exp_ok() { meta snapshot | python3 -c 'import json,sys,datetime
e=json.load(sys.stdin)["signed"]["expires"]
t=datetime.datetime.strptime(e,"%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
sys.exit(0 if t > datetime.datetime.now(datetime.timezone.utc) else 1)'; }
check "the served snapshot has not expired" exp_ok
check "the first root stays served as 1.root.json" bash -c "[ -n '$(meta 1.root)' ]"
expect_exit 22 "an unknown metadata file is 404" on35 curl -sS --fail --curves X25519MLKEM768 \
	--cacert "$PKI/ca/ca.crt" "$B/uptane/image/0.root.json"
stop_server u
finish
