# campaign_lib.bash: the pieces of an end-to-end campaign test (sourced after lib.bash):
# a PKI with vehicles, Debian's mosquitto configured by `pqota broker config`, pqota servers
# with the MQTT bridge, an operator API key, vehicle registration, a release, pqota-fleet.

FLEET="$(dirname "$PQOTA")/pqota-fleet"
PKI="$WORK/pki"
[ -x "$FLEET" ] || { bad "no pqota-fleet next to $PQOTA"; finish; }

jget() { python3 -c 'import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1].split("."):
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if not isinstance(d,(dict,list)) else json.dumps(d))' "$1"; }

# make_pki VIN...
make_pki() {
	"$PQOTA" keys init "$PKI" >/dev/null
	for v in "$@"; do "$PQOTA" keys vehicle "$v" --dir "$PKI" >/dev/null; done
}

# start_broker: `pqota broker config` for the PKI and Debian's mosquitto on it (BROKER_PORT)
start_broker() {
	broker_start campaign_broker "$WORK/mosquitto.log" || {
		bad "mosquitto did not start"
		cat "$WORK/mosquitto.log"
		finish
	}
}
campaign_broker() { # PORT
	local user=()
	[ "$(id -u)" = 0 ] && user=(--user root)
	# test/#: the subscribers' readiness probes (lib.bash mqtt_sub) as vehicles
	"$PQOTA" broker config --pki "$PKI" --out "$WORK/broker" --listen "127.0.0.1:$1" \
		"${user[@]}" --vehicle-topic 'test/#' --force >/dev/null || return 1
	"$WORK/broker/run-broker.sh" >"$WORK/mosquitto.log" 2>&1 &
	BROKER_PID=$!
}

# write_server_conf NAME [extra lines...]: $WORK/NAME.conf
write_server_conf() {
	local name=$1
	shift
	{
		echo "listen = 127.0.0.1:0"
		echo "tls.pki = $PKI"
		echo "data_dir = $WORK/data-$name"
		echo "port_file = $WORK/$name.port"
		echo "mqtt.broker = 127.0.0.1:$BROKER_PORT"
		echo "engine.tick = 200ms"
		echo "engine.instance = $name"
		echo "log.level = info"
		echo "ratelimit.client_rps = 0"
		echo "ratelimit.global_rps = 0"
	} >"$WORK/$name.conf"
	# extra lines replace the defaults of the same keys
	local l
	for l in "$@"; do
		sed -i "/^${l%% =*} = /d" "$WORK/$name.conf"
		echo "$l" >>"$WORK/$name.conf"
	done
}

# start_server NAME: runs it in the background, sets BASE_<NAME>, SRVPID_<NAME>; returns once
# it serves and, when its configuration names a broker, its MQTT bridge has subscribed
start_server() {
	local name=$1 broker subscribed
	broker=$(sed -n 's/^mqtt\.broker *= *//p' "$WORK/$name.conf" | tail -n 1 | tr -d '"')
	# (the log is appended to: a restarted server's own line is the next one)
	subscribed=$(grep -c "subscribed to" "$WORK/$name.log" 2>/dev/null || true)
	rm -f "$WORK/$name.port"
	"$PQOTA" server --config "$WORK/$name.conf" >>"$WORK/$name.log" 2>&1 &
	local pid=$!
	PIDS+=($pid)
	eval "SRVPID_$name=$pid"
	wait_for 30 test -s "$WORK/$name.port" || {
		bad "server $name did not start"
		tail -20 "$WORK/$name.log"
		finish
	}
	eval "BASE_$name=https://127.0.0.1:$(cat "$WORK/$name.port")"
	[ -n "$broker" ] || return 0
	# the bridge connects (its subscriptions acknowledged) shortly after
	wait_for 20 bridge_up "$name" "${subscribed:-0}" || {
		bad "server $name: its MQTT bridge did not subscribe on $broker"
		tail -20 "$WORK/$name.log"
		finish
	}
}

# bridge_up NAME N: server NAME's log has more than N "subscribed to" lines
bridge_up() { [ "$(grep -c "subscribed to" "$WORK/$1.log")" -gt "$2" ]; }

stop_server() {
	local pid
	eval "pid=\$SRVPID_$1"
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

pcurl() {
	on35 curl -sS --fail-with-body --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
		-H "Authorization: Bearer $APIKEY" -H 'Content-Type: application/json' "$@"
}

# make_key NAME: an operator API key for the server configuration NAME
make_key() {
	APIKEY=$("$PQOTA" server --config "$WORK/$1.conf" apikey create --role operator --name "op-$RANDOM" 2>/dev/null)
}

# reg_body VIN [MODEL]: the registration body of VIN (POST /api/v1/vehicles) from the PKI
reg_body() {
	python3 -c 'import json, sys
vin, d, model = sys.argv[1], sys.argv[2], sys.argv[3]
r = lambda f: open(d + "/" + f).read()
print(json.dumps({"vin": vin, "model": model, "certificate": r("client.crt"),
                  "kem_x25519_pub": r("kem-x25519.pub"), "kem_mlkem768_pub": r("kem-ml-kem-768.pub")}))' \
		"$1" "$PKI/vehicles/$1" "${2:-test-suv}"
}

# register BASE VIN...
register() {
	local base=$1 v
	shift
	for v in "$@"; do
		reg_body "$v" >"$WORK/reg.json"
		pcurl --data @"$WORK/reg.json" "$base/api/v1/vehicles" -o /dev/null || return 1
	done
}

# make_release BASE VERSION HW ECU: prints the release id
make_release() {
	local base=$1 ver=$2 hw=$3 ecu=$4 up
	head -c 70000 /dev/urandom >"$WORK/image-$ver.bin"
	up=$(pcurl -d '{"size":70000}' "$base/api/v1/uploads" | jget id) || return 1
	pcurl -X PUT --data-binary @"$WORK/image-$ver.bin" "$base/api/v1/uploads/$up?offset=0" -o /dev/null || return 1
	pcurl -d "{\"title\":\"$ecu $ver\",\"version\":\"$ver\",\"hardware_id\":\"$hw\",\"ecu_id\":\"$ecu\",\"upload_id\":\"$up\"}" \
		"$base/api/v1/releases" | jget id
}

# campaign_state BASE ID VIN: the deployment's state
dep_state() {
	pcurl "$1/api/v1/campaigns/$2/vehicles/$3" 2>/dev/null | jget state 2>/dev/null || echo none
}
dep_is() { [ "$(dep_state "$1" "$2" "$3")" = "$4" ]; }
# dep_chain BASE ID VIN: the deployment's stored states in order, space-separated
dep_chain() {
	pcurl "$1/api/v1/campaigns/$2/vehicles/$3" |
		python3 -c 'import json,sys; print(" ".join(t["to"] for t in json.load(sys.stdin)["transitions"]))'
}

# st CRED METHOD URL [curl args...]: the status code, the body in $WORK/r.json. CRED: an API
# key, "veh:VIN" (that vehicle's certificate) or "-" (nothing)
st() {
	local cred=$1 method=$2 url=$3 a=()
	shift 3
	case "$cred" in
	-) ;;
	veh:*) a=(--cert "$PKI/vehicles/${cred#veh:}/client.crt" --key "$PKI/vehicles/${cred#veh:}/client.key") ;;
	*) a=(-H "Authorization: Bearer $cred") ;;
	esac
	on35 curl -sS -o "$WORK/r.json" -w '%{http_code}' --curves X25519MLKEM768 --cacert "$PKI/ca/ca.crt" \
		"${a[@]}" -X "$method" "$@" "$url"
}
# jtrue FILE EXPR: the Python expression EXPR (d: the JSON in FILE) is true
jtrue() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)' "$1" "$2"
}
