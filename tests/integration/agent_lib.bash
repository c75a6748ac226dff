# agent_lib.bash: the pieces of a test with real `pqota vehicle` agents (sourced after
# lib.bash and campaign_lib.bash, once the server runs and $B, $CA and $APIKEY are set):
# releases, single-vehicle campaigns, trusted Uptane roots, agents in the background, and
# readers of the agents' event logs and of the simulated ECUs' state.

# release ECU HW VERSION SIZE: a release of SIZE random bytes; prints its id
release() {
	local ecu=$1 hw=$2 ver=$3 size=$4 up
	head -c "$size" /dev/urandom >"$WORK/$ecu-$ver.bin"
	up=$(pcurl -d "{\"size\":$size}" "$B/api/v1/uploads" | jget id) || return 1
	pcurl -X PUT --data-binary @"$WORK/$ecu-$ver.bin" "$B/api/v1/uploads/$up?offset=0" -o /dev/null || return 1
	pcurl -d "{\"title\":\"$ecu $ver\",\"version\":\"$ver\",\"hardware_id\":\"$hw\",\"ecu_id\":\"$ecu\",\"upload_id\":\"$up\"}" \
		"$B/api/v1/releases" >"$WORK/rel-$ecu-$ver.json" || return 1
	jget id <"$WORK/rel-$ecu-$ver.json"
}
# campaign RELEASE_ID VIN [POLICY_JSON]: creates and starts a campaign for one vehicle;
# prints its id
campaign() {
	local cid policy=${3:-}
	[ -n "$policy" ] || policy='{}'
	cid=$(pcurl -d "{\"name\":\"agent-$RANDOM\",\"release_ids\":[\"$1\"],\"target\":{\"vins\":[\"$2\"]},
		\"policy\":$policy,\"phases\":[{\"percent\":100,\"error_threshold\":1.0}]}" "$B/api/v1/campaigns" |
		jget id) || return 1
	pcurl -X POST "$B/api/v1/campaigns/$cid/start" -o /dev/null || return 1
	echo "$cid"
}
vget() { # vget VIN URL-PATH OUT: a GET with the vehicle's certificate
	on35 curl -sS --fail --curves X25519MLKEM768 --cacert "$CA" --cert "$PKI/vehicles/$1/client.crt" \
		--key "$PKI/vehicles/$1/client.key" "$B$2" -o "$3"
}
# start_agent VIN [options...]: the agent in the background; AGENT_<VIN> is its pid
start_agent() {
	local v=$1
	shift
	"$PQOTA" vehicle --vin "$v" --pki "$PKI" --broker "127.0.0.1:$BROKER_PORT" --state "$WORK/state-$v" \
		--image-root "$WORK/image-root.json" --director-root "$WORK/director-root-$v.json" \
		--status-file "$WORK/status-$v.json" --log "$WORK/events-$v.jsonl" --log-level warn "$@" \
		>>"$WORK/agent-$v.log" 2>&1 &
	local pid=$!
	PIDS+=($pid)
	eval "AGENT_$v=$pid"
}
# event_count VIN EVENT [KEY=VALUE]: how many events EVENT (with that member) the agent logged
event_count() {
	python3 - "$WORK/events-$1.jsonl" "$2" "${3:-}" <<'PY'
import json, sys
path, ev, kv = sys.argv[1:4]
n = 0
for line in open(path):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") != ev:
        continue
    if kv:
        k, v = kv.split("=", 1)
        if str(e.get(k)) != v:
            continue
    n += 1
print(n)
PY
}
# sent_error VIN CAMPAIGN: the error_code of the agent's ota_error/ota_download_failed
sent_error() {
	python3 - "$WORK/events-$1.jsonl" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "sent" and e.get("campaign_id") == sys.argv[2] and \
            e.get("msg_type") in ("ota_error", "ota_download_failed"):
        print(e.get("msg_type"), e.get("error_code"))
        break
PY
}
sent_types() { # VIN CAMPAIGN: the msg_types the agent sent for CAMPAIGN, space-separated
	python3 - "$WORK/events-$1.jsonl" "$2" <<'PY'
import json, sys
out = []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "sent" and e.get("campaign_id") == sys.argv[2]:
        out.append(e.get("msg_type"))
print(" ".join(out))
PY
}
# ecu_bank VIN ECU: active bank and whether the other bank is valid, from the simulation's
# persistent state ("A B-invalid")
ecu_bank() {
	python3 - "$WORK/state-$1/sim/ecus.json" "$2" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["ecus"][sys.argv[2]]
other = "B" if e["active"] == "A" else "A"
print(e["active"], other + ("-valid" if e["banks"][other]["valid"] else "-invalid"),
      e["banks"][e["active"]]["versions"]["APP"], "pending" if e.get("pending") else "none")
PY
}
# sim_file_id VIN: the simulated ECUs' state file as inode.mtime.size (it is replaced by a
# rename on every write, so any write changes it)
sim_file_id() { stat -c %i.%Y.%s "$WORK/state-$1/sim/ecus.json"; }
# refused_unflashed VIN CAMPAIGN ERROR SIM_FILE_ID: the checks of a campaign refused before
# anything was flashed: the agent sent ERROR ("msg_type error_code"), no installation
# started, and the simulated ECUs' state file is the one recorded before the campaign
refused_unflashed() {
	check "the agent reported $3" test "$(sent_error "$1" "$2")" = "$3"
	check "no installation started" test -z "$(sent_types "$1" "$2" | grep -o ota_installation_start)"
	check "the simulated ECUs' state file was not written" test "$(sim_file_id "$1")" = "$4"
}
final_state() { # CID VIN: waits for a final deployment state, prints it
	local i s
	for i in $(seq 1 600); do
		s=$(dep_state "$B" "$1" "$2")
		case $s in completed | failed | rolled_back | declined | cancelled | timed_out)
			echo "$s"
			return 0
			;;
		esac
		sleep 0.1
	done
	echo "$s"
}

# provision VIN...: fetches the trusted roots (image repository, each VIN's director) the
# agents start with, as a factory would
provision() {
	local v
	wait_for 30 vget "$1" /uptane/image/1.root.json "$WORK/image-root.json" || return 1
	for v in "$@"; do
		wait_for 30 vget "$v" "/uptane/director/$v/1.root.json" "$WORK/director-root-$v.json" || return 1
	done
}
vci_in() { pcurl "$B/api/v1/vehicles/$1/vci" -o /dev/null 2>/dev/null; }
# stop_agent VIN: SIGTERM, then its exit status
stop_agent() {
	local pid rc=0
	pid=$(eval echo "\$AGENT_$1")
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}
# model_with_image VIN ECU IMAGE OUT: VIN's default vehicle model with ECU running IMAGE
model_with_image() {
	"$PQOTA" vehicle model --vin "$1" >"$4" || return 1
	python3 - "$4" "$2" "$3" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for z in m["zones"]:
    for e in z["ecus"]:
        if e["ecu_id"] == sys.argv[2]:
            e["image"] = sys.argv[3]
json.dump(m, open(sys.argv[1], "w"))
PY
}
