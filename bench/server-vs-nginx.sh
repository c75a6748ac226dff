#!/usr/bin/env bash
# bench/server-vs-nginx.sh: the pqota server side by side with Debian's nginx (run by
# `make bench`).
#
# Both servers run on this machine on 127.0.0.1, on the same OpenSSL 3.5 (nginx through
# scripts/env), with the same certificate and key (server/server.{crt,key} of a temporary
# `pqota keys init`), TLS 1.3 only, key exchange X25519MLKEM768 only, the same TLS 1.3
# cipher suite and the same number of workers (pqota worker threads = nginx worker
# processes). Each measurement runs both servers back to back, alternating which goes
# first, and the median of the rounds is reported with the ratio pqota/nginx:
#
#   1. download throughput: one 64 MiB package (real content: concatenated shared
#      libraries, uploaded through pqota's resumable upload API and released uncompressed)
#      from pqota /packages/<sha256> with an API key, and the same file from nginx as a
#      static file; h2load over HTTP/1.1, 32 clients;
#   2. full-handshake rate: bench/hsload.c (built here against the same OpenSSL), 32
#      clients, a new connection and a full TLS handshake (no session resumption) per
#      request, GET /health from pqota and a static file with the same body from nginx;
#   3. keep-alive small GETs: h2load, 32 clients, GET /health, and GET of a ~1 KiB package
#      with an API key (pqota's download path) against the same file on nginx.
#
# Correctness is checked, time is only reported: every request must succeed, every
# connection must use X25519MLKEM768 (pqota: its per-group request counters in /metrics;
# nginx: $ssl_curve in its access log; hsload: on the client side too), handshakes must not
# be resumed, and the downloaded package must have the right SHA-256. Exit 0 when all
# checks pass, 1 when one fails, 2 when the set-up fails, 64 on usage errors.
#
# The load generator shares the machine with the servers (2 cores on the development
# machine), so absolute numbers are lower bounds; the ratios are the point. Server CPU
# seconds per unit of work are printed too: they depend less on what else is running.
#
# usage: bench/server-vs-nginx.sh [--quick] [--rounds N] [--workers N]
#                                 [--client-threads N] [--keep] [--help]
#   --quick             about 30 s: one round, fewer downloads, 3 s per timed run
#   --rounds N          rounds per measurement (default 3; --quick: 1)
#   --workers N         pqota workers and nginx worker_processes (default 2)
#   --client-threads N  h2load threads (default: the number of cores, so that one h2load
#                       thread is not what limits the download test)
#   --keep              keep the temporary directory (configs, logs, raw outputs)
# Environment: PQOTA_BIN (default build/pqota).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pqota=${PQOTA_BIN:-$root/build/pqota}
env="$root/scripts/env"

quick=0
rounds=""
workers=2
client_threads=$(nproc 2>/dev/null || echo 1)
keep=0
clients=32
group=X25519MLKEM768
image_bytes=$((64 * 1024 * 1024))
piece_bytes=$((8 * 1024 * 1024)) # = limits.max_body_bytes below

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() {
	echo "server-vs-nginx: error: $*" >&2
	exit 2
}
say() { echo "[bench] $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--rounds)
		[ $# -ge 2 ] || { usage >&2; exit 64; }
		rounds=$2
		shift
		;;
	--workers)
		[ $# -ge 2 ] || { usage >&2; exit 64; }
		workers=$2
		shift
		;;
	--client-threads)
		[ $# -ge 2 ] || { usage >&2; exit 64; }
		client_threads=$2
		shift
		;;
	--keep) keep=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "server-vs-nginx: unknown argument '$1' (try --help)" >&2
		exit 64
		;;
	esac
	shift
done
for v in "$workers" "$client_threads" ${rounds:+"$rounds"}; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "server-vs-nginx: '$v' is not a positive integer" >&2; exit 64; }
done
[ "$workers" -le 64 ] || { echo "server-vs-nginx: --workers is at most 64 (pqota's limit)" >&2; exit 64; }

if [ "$quick" = 1 ]; then
	rounds=${rounds:-1}
	downloads=$clients # one 64 MiB download per client
	timed_s=3
else
	rounds=${rounds:-3}
	downloads=$((clients * 3))
	timed_s=8
fi

# --- prerequisites ------------------------------------------------------------------------
[ -x "$pqota" ] || die "no $pqota: build first (make build)"
for tool in nginx h2load curl cc python3 sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: run scripts/bootstrap --with bench"
done
prefix=$("$env" --prefix) || die "no OpenSSL >= 3.5: run scripts/bootstrap"
ossl_ldp=$("$env" --ld-library-path)

dir=$(mktemp -d "${TMPDIR:-/tmp}/pqota-bench-XXXXXX")
pq_pid=""
ng_pid=""
sampler_pid=""

stop_pid() { # PID SIGNAL: signal, wait up to 10 s, then SIGKILL
	local pid=$1 sig=$2 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local rc=$?
	stop_pid "$sampler_pid" TERM
	stop_pid "$pq_pid" TERM
	stop_pid "$ng_pid" TERM # nginx: fast shutdown, the master stops its workers
	if [ "$keep" = 1 ]; then
		echo "[bench] files kept in $dir" >&2
	else
		rm -rf "$dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# polls CMD every 50 ms until it succeeds; fails after TIMEOUT s or when PID has exited
wait_for() { # DESCRIPTION TIMEOUT_S PID CMD...
	local what=$1 timeout=$2 pid=$3 i
	shift 3
	for ((i = 0; i < timeout * 20; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			say "$what: the process exited"
			return 1
		fi
		sleep 0.05
	done
	say "$what: not ready after ${timeout} s"
	return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pqcurl() { "$env" -- curl -sS --curves "$group" --cacert "$dir/pki/ca/ca.crt" "$@"; }
json_get() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
calc() { awk "BEGIN { printf \"%s\", $* }"; }
now() { date +%s.%N; }

# CPU ticks (user + system) of the given processes, all threads
cpu_ticks() {
	local p sum=0 line f
	for p in "$@"; do
		line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		# after "(comm) ": state, ppid, ...; utime and stime are the 12th and 13th
		read -ra f <<<"${line##*) }"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}
clk_tck=$(getconf CLK_TCK)

# the processes that do a server's work: pqota's one process, nginx's workers
server_pids() {
	if [ "$1" = pqota ]; then
		echo "$pq_pid"
	else
		local c
		c=$(cat "/proc/$ng_pid/task/$ng_pid/children" 2>/dev/null || true)
		if [ -z "$c" ]; then
			c=$(awk -v pp="$ng_pid" '{ s=$0; sub(/.*\) /, "", s); split(s, f, " "); if (f[2] == pp) print FILENAME }' \
				/proc/[0-9]*/stat 2>/dev/null | sed 's#/proc/\([0-9]*\)/stat#\1#')
		fi
		echo "$c" | tr -s ' ' '\n' | grep .
	fi
}

# background sampler of memory: "VmRSS RssAnon RssFile" summed over the PIDs, 10 per second
start_sampler() { # OUTFILE PID...
	local out=$1 files=()
	shift
	files=("${@/#//proc/}")
	files=("${files[@]/%//status}")
	(
		trap 'exit 0' TERM
		while :; do
			awk '/^(VmRSS|RssAnon|RssFile):/ { t[$1] += $2 } END { print t["VmRSS:"]+0, t["RssAnon:"]+0, t["RssFile:"]+0 }' \
				"${files[@]}" 2>/dev/null || true
			sleep 0.1
		done
	) >"$out" &
	sampler_pid=$!
}
stop_sampler() {
	stop_pid "$sampler_pid" TERM
	sampler_pid=""
}
mem_peaks() { # SAMPLES-FILE -> "peakRSS peakAnon peakFile" in MiB
	awk 'NF == 3 { if ($1 > r) r = $1; if ($2 > a) a = $2; if ($3 > f) f = $3 }
	     END { printf "%.0f %.0f %.0f\n", r / 1024, a / 1024, f / 1024 }' "$1"
}

# ---- 0. the machine ------------------------------------------------------------------------
ncpu=$(nproc)
say "machine: $ncpu cores, load average $(cut -d' ' -f1-3 /proc/loadavg); load generator on the same machine"
say "temporary directory: $dir"
mkdir -p "$dir/runs"

# ---- 1. PKI, pqota server ------------------------------------------------------------------
say "PKI (pqota keys init) and the pqota server ($workers workers)"
"$pqota" keys init "$dir/pki" >"$dir/keys-init.log" 2>&1 || { cat "$dir/keys-init.log" >&2; die "pqota keys init failed"; }
cat >"$dir/pqota.conf" <<EOF
listen = 127.0.0.1:0
port_file = $dir/pqota.port
workers = $workers
tls.pki = $dir/pki
data_dir = $dir/data
limits.max_body_bytes = $piece_bytes
limits.drain = 2s
# the benchmark must measure the server, not its rate limiter
ratelimit.global_rps = 0
ratelimit.client_rps = 0
log.level = warn
EOF
key=$("$pqota" server --config "$dir/pqota.conf" apikey create --role operator --name bench 2>"$dir/apikey.log") ||
	{ cat "$dir/apikey.log" >&2; die "pqota server apikey create failed"; }
"$pqota" server --config "$dir/pqota.conf" >"$dir/pqota.log" 2>&1 &
pq_pid=$!
wait_for "pqota server" 30 "$pq_pid" test -s "$dir/pqota.port" || { cat "$dir/pqota.log" >&2; die "the pqota server did not start"; }
pq_port=$(cat "$dir/pqota.port")
pq_base="https://127.0.0.1:$pq_port"
wait_for "pqota /health" 10 "$pq_pid" pqcurl -f "$pq_base/health" || die "pqota does not answer /health"

# ---- 2. the 64 MiB image, uploaded in pieces, released uncompressed --------------------------
say "a 64 MiB image from the shared libraries in /usr/lib/x86_64-linux-gnu"
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
[ -d "$libdir" ] || libdir=/usr/lib
# head stops reading after 64 MiB, so cat may die of SIGPIPE: not an error here
{ find "$libdir" -maxdepth 1 -type f -name '*.so*' -print0 | sort -z | xargs -0 cat 2>/dev/null || true; } |
	head -c "$image_bytes" >"$dir/image.bin"
[ "$(stat -c %s "$dir/image.bin")" = "$image_bytes" ] || die "could not gather 64 MiB of shared libraries"

upload_release() { # FILE VERSION -> prints the release JSON
	local file=$1 version=$2 size sha id off=0
	size=$(stat -c %s "$file")
	sha=$(sha256sum "$file" | cut -d' ' -f1)
	id=$(pqcurl -f -H "Authorization: Bearer $key" --data-binary "{\"size\":$size,\"sha256\":\"$sha\"}" \
		"$pq_base/api/v1/uploads" | json_get id) || return 1
	while [ "$off" -lt "$size" ]; do
		dd if="$file" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$piece_bytes" status=none |
			pqcurl -f -X PUT -H "Authorization: Bearer $key" --data-binary @- \
				"$pq_base/api/v1/uploads/$id?offset=$off" >/dev/null || return 1
		off=$((off + piece_bytes))
	done
	pqcurl -f -H "Authorization: Bearer $key" --data-binary \
		"{\"title\":\"bench $version\",\"version\":\"$version\",\"hardware_id\":\"BENCH-HW\",\"ecu_id\":\"ECU_001\",\"compression\":\"none\",\"upload_id\":\"$id\"}" \
		"$pq_base/api/v1/releases"
}
t0=$(now)
upload_release "$dir/image.bin" 1.0.0 >"$dir/release-big.json" || die "uploading the 64 MiB image failed"
say "uploaded in $((image_bytes / piece_bytes)) pieces and released in $(calc "$(now) - $t0" | awk '{printf "%.1f", $1}') s"
big_sha=$(json_get package.sha256 <"$dir/release-big.json")
big_len=$(json_get package.length <"$dir/release-big.json")
head -c 1000 "$dir/image.bin" >"$dir/small.bin"
upload_release "$dir/small.bin" 1.0.1 >"$dir/release-small.json" || die "uploading the small image failed"
small_sha=$(json_get package.sha256 <"$dir/release-small.json")
small_len=$(json_get package.length <"$dir/release-small.json")

# ---- 3. nginx with the same certificate, group, cipher and file -------------------------------
say "nginx on OpenSSL $("$prefix/bin/openssl" version | awk '{print $2}') with the same certificate ($workers worker processes)"
mkdir -p "$dir/nginx/www/packages" "$dir/nginx/tmp"
for s in "$big_sha" "$small_sha"; do
	ln "$dir/data/files/$s" "$dir/nginx/www/packages/$s" 2>/dev/null || cp "$dir/data/files/$s" "$dir/nginx/www/packages/$s"
done
pqcurl -f "$pq_base/health" >"$dir/nginx/www/health" # same body as pqota's /health
ng_port=$(free_port)
ng_base="https://127.0.0.1:$ng_port"
# pqota prefers its own cipher order; offer clients only the suite it picks, on both sides
"$pqota" tls check "127.0.0.1:$pq_port" --ca "$dir/pki/ca/ca.crt" >"$dir/tls-check-pqota.txt" 2>&1 ||
	{ cat "$dir/tls-check-pqota.txt" >&2; die "pqota tls check against the pqota server failed"; }
cipher=$(awk '$1 == "cipher" { print $2 }' "$dir/tls-check-pqota.txt")
{
	[ "$(id -u)" = 0 ] && echo "user root;" # workers must read files in the 0700 temp dir
	cat <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    # \$ssl_curve names the key-exchange group (nginx 1.22 prints X25519MLKEM768 as 0x11ec)
    log_format bench '\$http_x_bench \$ssl_protocol \$ssl_curve \$ssl_cipher \$ssl_session_reused \$status \$body_bytes_sent';
    access_log $dir/nginx/access.log bench buffer=256k flush=1s;
    client_body_temp_path $dir/nginx/tmp/body;
    proxy_temp_path $dir/nginx/tmp/proxy;
    fastcgi_temp_path $dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $dir/nginx/tmp/uwsgi;
    scgi_temp_path $dir/nginx/tmp/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000000; # pqota has no per-connection request limit either
    server {
        listen 127.0.0.1:$ng_port ssl;
        ssl_certificate $dir/pki/server/server.crt;
        ssl_certificate_key $dir/pki/server/server.key;
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve $group;
        ssl_conf_command Ciphersuites $cipher;
        root $dir/nginx/www;
        location = /health { default_type application/json; }
    }
}
EOF
} >"$dir/nginx/nginx.conf"
"$env" -- nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" >"$dir/nginx/stdout.log" 2>&1 &
ng_pid=$!
wait_for "nginx" 15 "$ng_pid" pqcurl -f "$ng_base/health" ||
	{ cat "$dir/nginx/error.log" "$dir/nginx/stdout.log" >&2 2>/dev/null; die "nginx did not start"; }
ng_workers_up() { [ "$(server_pids nginx | wc -w)" -ge "$workers" ]; }
wait_for "nginx workers" 10 "$ng_pid" ng_workers_up || die "nginx has not started its $workers workers"

# ---- 4. is it really X25519MLKEM768, and the same file? ----------------------------------------
"$pqota" tls check "127.0.0.1:$ng_port" --ca "$dir/pki/ca/ca.crt" >"$dir/tls-check-nginx.txt" 2>&1 ||
	{ cat "$dir/tls-check-nginx.txt" >&2; die "pqota tls check against nginx failed"; }
failures=()
for side in pqota nginx; do
	g=$(awk '$1 == "group" { print $2 }' "$dir/tls-check-$side.txt")
	c=$(awk '$1 == "cipher" { print $2 }' "$dir/tls-check-$side.txt")
	say "pqota tls check (offering every group) -> $side picks $g, $c"
	[ "$g" = "$group" ] || failures+=("$side negotiated $g with pqota tls check, not $group")
done
want_sha=$(sha256sum "$dir/data/files/$big_sha" | cut -d' ' -f1)
[ "$want_sha" = "$big_sha" ] || failures+=("pqota's package file does not have its name as SHA-256")
for side in pqota nginx; do
	if [ "$side" = pqota ]; then base=$pq_base; else base=$ng_base; fi
	got=$(pqcurl -f -H "Authorization: Bearer $key" "$base/packages/$big_sha" | sha256sum | cut -d' ' -f1) || got="(failed)"
	[ "$got" = "$big_sha" ] || failures+=("download of the 64 MiB package from $side: SHA-256 $got")
done

# ---- 5. measurements ---------------------------------------------------------------------
hsload="$dir/hsload"
cc -O2 -std=c11 -Wall -I"$prefix/include" -o "$hsload" "$root/bench/hsload.c" \
	-L"$prefix/lib" ${ossl_ldp:+-Wl,-rpath,"$ossl_ldp"} -lssl -lcrypto -pthread 2>"$dir/hsload-build.log" ||
	{ cat "$dir/hsload-build.log" >&2; die "building bench/hsload.c failed"; }

# shellcheck disable=SC2034 # read through the nameref in values()
declare -A VAL CPU UNITS LAT MEM
h2common=(--h1 --groups "$group" --tls13-ciphers "$cipher" -t "$client_threads" -c "$clients")

pq_group_counts() { # -> "requests on $group" "requests on other groups"
	{ pqcurl -f "$pq_base/metrics" || true; } | awk -v g="$group" '/^pqota_tls_requests_total\{/ {
		split($0, q, "\""); if (q[2] == g) k += $NF; else o += $NF } END { print k + 0, o + 0 }'
}
hs_field() { # FILE KEY: a key=value of hsload's summary line (0 when missing)
	awk -v k="$2" '{ for (i = 1; i <= NF; i++) { split($i, p, "="); if (p[1] == k) v = p[2] } }
		END { print (v == "" ? 0 : v) }' "$1"
}
# nginx access-log lines of TAG: "lines lines-on-group resumed non-2xx"
ng_log_counts() {
	awk -v t="$1" '$1 == t { n++; if ($3 == "0x11ec" || $3 == "X25519MLKEM768") k++;
		if ($5 == "r") r++; if ($6 !~ /^2/) e++ } END { print n + 0, k + 0, r + 0, e + 0 }' \
		"$dir/nginx/access.log" 2>/dev/null || echo "0 0 0 0"
}
ng_log_has() { [ "$(ng_log_counts "$1" | cut -d' ' -f1)" -ge "$2" ]; }

# h2load's summary -> "elapsed_s succeeded failed+errored+timeout non-2xx data_bytes mean_ms max_ms"
# (with -D, requests cut off at the end count as started, not as done: they are no failures)
parse_h2load() {
	awk '
	function secs(v) { if (v ~ /us$/) return v / 1e6; if (v ~ /ms$/) return v / 1e3; return v + 0 }
	/^finished in/ { sub(/,$/, "", $3); el = secs($3) }
	/^requests:/ { ok = $8; bad = $10 + $12 + $14 }
	/^status codes:/ { non2 = $5 + $7 + $9 }
	/^traffic:/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "data") { d = $i; gsub(/[()]/, "", d) } }
	/^time for request:/ { mx = secs($5) * 1000; mean = secs($6) * 1000 }
	END { printf "%.6f %d %d %d %.0f %.2f %.2f\n", el, ok, bad, non2, d, mean, mx }' "$1"
}

run_one() { # MEASUREMENT SIDE ROUND
	local m=$1 side=$2 r=$3 base tag out pids c0 c1 before after n_ok n_bad
	local el ok bad non2 data mean mx k o n kn rs ne t0 t1
	if [ "$side" = pqota ]; then base=$pq_base; else base=$ng_base; fi
	tag="$m-$side-$r"
	out="$dir/runs/$tag.txt"
	mapfile -t pids < <(server_pids "$side")
	[ "$side" = pqota ] && before=$(pq_group_counts)
	c0=$(cpu_ticks "${pids[@]}")
	case $m in
	tput)
		start_sampler "$dir/runs/$tag.mem" "${pids[@]}"
		t0=$(now)
		"$env" -- h2load "${h2common[@]}" -n "$downloads" -H "Authorization: Bearer $key" -H "X-Bench: $tag" \
			"$base/packages/$big_sha" >"$out" 2>&1 || true
		t1=$(now)
		stop_sampler
		# shellcheck disable=SC2034 # read through the nameref in values()
		MEM[$m.$side.$r]=$(mem_peaks "$dir/runs/$tag.mem")
		;;
	hs)
		"$hsload" --connect "127.0.0.1:${base##*:}" --path /health --group "$group" --ciphersuites "$cipher" \
			--clients "$clients" --duration "$timed_s" --header "X-Bench: $tag" >"$out" 2>"$out.err" || true
		;;
	ka)
		"$env" -- h2load "${h2common[@]}" -D "$timed_s" -H "X-Bench: $tag" "$base/health" >"$out" 2>&1 || true
		;;
	kapkg)
		"$env" -- h2load "${h2common[@]}" -D "$timed_s" -H "Authorization: Bearer $key" -H "X-Bench: $tag" \
			"$base/packages/$small_sha" >"$out" 2>&1 || true
		;;
	esac
	c1=$(cpu_ticks "${pids[@]}")
	CPU[$m.$side.$r]=$(calc "($c1 - $c0) / $clk_tck")
	if [ "$m" = hs ]; then
		n_ok=$(hs_field "$out" ok)
		n_bad=$(($(hs_field "$out" errors) + $(hs_field "$out" non_200)))
		VAL[$m.$side.$r]=$(hs_field "$out" rate_per_s)
		UNITS[$m.$side.$r]=$n_ok
		LAT[$m.$side.$r]="$(hs_field "$out" p50_ms) $(hs_field "$out" p99_ms) $(hs_field "$out" max_ms)"
		n=$(hs_field "$out" reused)
		[ "$n" = 0 ] || failures+=("$tag: $n handshakes were resumed")
		n=$(hs_field "$out" wrong_group)
		[ "$n" = 0 ] || failures+=("$tag: $n connections not on $group (client side)")
		[ -s "$out.err" ] && sed "s/^/[$tag] /" "$out.err" >&2
	else
		read -r el ok bad non2 data mean mx < <(parse_h2load "$out")
		n_ok=$ok
		n_bad=$((bad + non2))
		if [ "$m" = tput ]; then
			el=$(calc "$t1 - $t0") # h2load prints only 10 ms steps
			VAL[$m.$side.$r]=$(calc "($el > 0) ? $data / $el / 1e6 : 0")
			UNITS[$m.$side.$r]=$data
		else
			VAL[$m.$side.$r]=$(calc "($el > 0) ? $n_ok / $el : 0")
			UNITS[$m.$side.$r]=$n_ok
		fi
		# shellcheck disable=SC2034 # read through the nameref in values()
		LAT[$m.$side.$r]="$mean $mx"
		grep -q "^Cipher: $cipher" "$out" || failures+=("$tag: h2load did not report cipher $cipher")
	fi
	[ "$n_bad" = 0 ] && [ "$n_ok" -gt 0 ] || failures+=("$tag: $n_ok answers of 200, $n_bad failed (see $out)")
	# the server side of the group check
	if [ "$side" = pqota ]; then
		after=$(pq_group_counts)
		k=$((${after% *} - ${before% *}))
		o=$((${after#* } - ${before#* }))
		[ "$o" = 0 ] || failures+=("$tag: pqota counted $o requests on groups other than $group")
		[ "$k" -ge "$n_ok" ] || failures+=("$tag: pqota counted $k requests on $group, fewer than $n_ok answers")
	else
		kill -USR1 "$ng_pid" # reopen the logs: flushes the access-log buffers
		wait_for "nginx access log of $tag" 10 "$ng_pid" ng_log_has "$tag" "$n_ok" || true
		read -r n kn rs ne < <(ng_log_counts "$tag")
		[ "$kn" = "$n" ] && [ "$n" -ge "$n_ok" ] ||
			failures+=("$tag: nginx logged $kn of $n requests on $group (expected $n_ok)")
		[ "$ne" = 0 ] || failures+=("$tag: nginx logged $ne answers that are not 2xx")
		[ "$m" != hs ] || [ "$rs" = 0 ] || failures+=("$tag: nginx resumed $rs sessions")
	fi
	say "$(printf '%-18s %10.1f %s' "$tag" "${VAL[$m.$side.$r]}" "$([ "$m" = tput ] && echo MB/s || echo /s)")"
}

declare -A MNAME=([tput]="download 64 MiB package" [hs]="full handshakes + GET /health"
	[ka]="keep-alive GET /health" [kapkg]="keep-alive GET 1 KiB package")
measurements=(tput hs ka kapkg)
say "measuring: $rounds round(s), $clients clients, $downloads downloads of 64 MiB, ${timed_s} s per timed run"
t_meas=$(now)
for m in "${measurements[@]}"; do
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2 == 1)); then order=(pqota nginx); else order=(nginx pqota); fi
		for side in "${order[@]}"; do run_one "$m" "$side" "$r"; done
	done
done
t_meas=$(calc "$(now) - $t_meas")

# ---- 6. the table ----------------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
values() { # ARRAY-NAME MEASUREMENT SIDE [FIELD]: the rounds' values
	local -n arr=$1
	local r
	for ((r = 1; r <= rounds; r++)); do
		if [ -n "${4:-}" ]; then echo "${arr[$2.$3.$r]}" | awk -v f="$4" '{ print $f }'; else echo "${arr[$2.$3.$r]}"; fi
	done
}
med() {
	local v
	mapfile -t v < <(values "$@")
	median "${v[@]}"
}
ratio() { calc "($2 > 0) ? $1 / $2 : 0" | awk '{ printf "%.2f", $1 }'; }
row() { printf '%-36s %16s %16s %10s\n' "$@"; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# server CPU seconds per unit of work, median over rounds
cpu_per() { # MEASUREMENT SIDE PER
	local r list=()
	for ((r = 1; r <= rounds; r++)); do
		list+=("$(calc "(${UNITS[$1.$2.$r]} > 0) ? ${CPU[$1.$2.$r]} * $3 / ${UNITS[$1.$2.$r]} : 0")")
	done
	median "${list[@]}"
}

echo
echo "pqota server vs nginx $(nginx -v 2>&1 | sed 's#.*/##') on OpenSSL $("$prefix/bin/openssl" version | awk '{print $2}'), TLS 1.3, $group, $cipher, same certificate (ECDSA P-256)"
echo "machine: $ncpu cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), load generator on the same machine"
echo "workers: pqota $workers threads, nginx $workers worker processes; clients: $clients concurrent (h2load -t $client_threads; hsload one thread per client)"
echo "median of $rounds round(s), order alternating; ratio = pqota/nginx (rates: > 1 pqota faster; CPU, latency: > 1 pqota costlier)"
echo
row "measurement" "pqota" "nginx" "pqota/nginx"
row "------------------------------------" "----------------" "----------------" "----------"
for m in "${measurements[@]}"; do
	pv=$(med VAL "$m" pqota)
	nv=$(med VAL "$m" nginx)
	case $m in
	tput)
		row "${MNAME[$m]} (MB/s)" "$(fmt "$pv" %.1f)" "$(fmt "$nv" %.1f)" "$(ratio "$pv" "$nv")"
		pc=$(cpu_per "$m" pqota 1e9)
		nc=$(cpu_per "$m" nginx 1e9)
		row "  server CPU s per GB" "$(fmt "$pc" %.3f)" "$(fmt "$nc" %.3f)" "$(ratio "$pc" "$nc")"
		pl=$(med LAT "$m" pqota 1)
		nl=$(med LAT "$m" nginx 1)
		row "  mean time per download (ms)" "$(fmt "$pl" %.0f)" "$(fmt "$nl" %.0f)" "$(ratio "$pl" "$nl")"
		pm=$(med MEM "$m" pqota 2)
		nm=$(med MEM "$m" nginx 2)
		row "  peak RssAnon (MiB)" "$pm" "$nm" ""
		pm=$(med MEM "$m" pqota 3)
		nm=$(med MEM "$m" nginx 3)
		row "  peak RssFile (MiB, mapped file)" "$pm" "$nm" ""
		;;
	hs)
		row "${MNAME[$m]} (/s)" "$(fmt "$pv" %.0f)" "$(fmt "$nv" %.0f)" "$(ratio "$pv" "$nv")"
		pc=$(cpu_per "$m" pqota 1000)
		nc=$(cpu_per "$m" nginx 1000)
		row "  server CPU s per 1000 handshakes" "$(fmt "$pc" %.3f)" "$(fmt "$nc" %.3f)" "$(ratio "$pc" "$nc")"
		row "  p50 / p99 latency (ms)" "$(fmt "$(med LAT "$m" pqota 1)" %.1f) / $(fmt "$(med LAT "$m" pqota 2)" %.1f)" \
			"$(fmt "$(med LAT "$m" nginx 1)" %.1f) / $(fmt "$(med LAT "$m" nginx 2)" %.1f)" ""
		;;
	*)
		row "${MNAME[$m]} (req/s)" "$(fmt "$pv" %.0f)" "$(fmt "$nv" %.0f)" "$(ratio "$pv" "$nv")"
		pc=$(cpu_per "$m" pqota 1e6)
		nc=$(cpu_per "$m" nginx 1e6)
		row "  server CPU us per request" "$(fmt "$pc" %.1f)" "$(fmt "$nc" %.1f)" "$(ratio "$pc" "$nc")"
		row "  mean / max latency (ms)" "$(fmt "$(med LAT "$m" pqota 1)" %.2f) / $(fmt "$(med LAT "$m" pqota 2)" %.0f)" \
			"$(fmt "$(med LAT "$m" nginx 1)" %.2f) / $(fmt "$(med LAT "$m" nginx 2)" %.0f)" ""
		;;
	esac
done
echo
echo "every run: value [server CPU per unit as above] per round"
declare -A PER=([tput]=1e9 [hs]=1000 [ka]=1e6 [kapkg]=1e6)
for m in "${measurements[@]}"; do
	for side in pqota nginx; do
		line=""
		for ((r = 1; r <= rounds; r++)); do
			line+=$(calc "(${UNITS[$m.$side.$r]} > 0) ? ${CPU[$m.$side.$r]} * ${PER[$m]} / ${UNITS[$m.$side.$r]} : 0" |
				awk -v v="${VAL[$m.$side.$r]}" '{ printf "%10.1f [%.3g]", v, $1 }')
		done
		printf '  %-6s %-5s%s\n' "$m" "$side" "$line"
	done
done
echo
echo "how: 1. h2load --h1 -n $downloads -c $clients, GET /packages/${big_sha:0:12}... ($big_len bytes; pqota with"
echo "        Authorization: Bearer <API key>, nginx the same file as a static file);"
echo "     2. bench/hsload: one connection, full handshake and GET per request, ${timed_s} s, /health"
echo "        (pqota: store round trip + JSON; nginx: a static copy of the same body);"
echo "     3. h2load --h1 -D ${timed_s} -c $clients, /health and /packages/${small_sha:0:12}... ($small_len bytes, API key)."
echo "     Memory: /proc/PID/status of pqota and of nginx's workers (summed) every 0.1 s during 1."
echo "     RssFile counts the package's page-cache pages once per mapping; RssAnon is private memory."
echo "measurements took $(fmt "$t_meas" %.0f) s"

# anything the servers said
for f in "$dir/pqota.log" "$dir/nginx/error.log"; do
	n=$(grep -c . "$f" 2>/dev/null || true)
	if [ "${n:-0}" -gt 0 ]; then
		echo
		echo "${f#"$dir"/}: $n line(s), the first ones:"
		head -n 5 "$f" | sed 's/^/  /'
	fi
done

if [ ${#failures[@]} -gt 0 ]; then
	echo
	echo "CHECKS FAILED:"
	printf '  %s\n' "${failures[@]}"
	exit 1
fi
echo
echo "checks: every request answered 200, every connection on $group (pqota /metrics, nginx \$ssl_curve, hsload), no resumed handshakes, package SHA-256 ok"
