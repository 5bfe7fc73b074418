#!/usr/bin/env bash
# Benchmarks the harness's Service proxy and port-forward against haproxy and socat, over three
# nginx backends serving a fixed small JSON body. Every target is measured in one run, with
# keep-alive and with a new connection per request (`Connection: close`), for req/s, p99 and the
# proxy process's CPU time per request (user + system from /proc, children included). Compare
# ratios, not absolute numbers across runs: wrk shares the cores with the servers, and CPU per
# request is the number other load on the machine disturbs least.
#
#   bench/proxy.sh                  # wrk -t2 -c64 -d10s per target and mode
#   DURATION=5s CONNECTIONS=32 bench/proxy.sh
#   THREADS=1 bench/proxy.sh        # tokio worker threads of the harness side
#   ROUNDS=3 bench/proxy.sh         # interleaved rounds; the table shows medians
#   PROXY_BENCH_BIN=path bench/proxy.sh   # use a prebuilt harness/examples/proxy_bench
#
# Needs: wrk, nginx-light, haproxy, socat (apt-get install -y wrk nginx-light haproxy socat).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
THREADS=${THREADS:-}
ROUNDS=${ROUNDS:-1}
BACKENDS=(127.0.0.11 127.0.0.12 127.0.0.13)
BACKEND_PORT=8080
HAPROXY_ADDR=127.0.0.21:8080
SOCAT_ADDR=127.0.0.22:8080

missing=()
for tool in wrk nginx haproxy socat; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: wrk nginx-light haproxy socat (missing: ${missing[*]})" >&2
    apt-get install -y --no-install-recommends wrk nginx-light haproxy socat >/dev/null
fi
export PATH="$PATH:/usr/sbin"

BIN=${PROXY_BENCH_BIN:-}
if [ -z "$BIN" ]; then
    echo "building the bench binary (release)..." >&2
    cargo build --release -q -p harness --example proxy_bench
    BIN=target/release/examples/proxy_bench
fi

WORK=$(mktemp -d /tmp/proxy-bench.XXXXXX)
PIDS=()
cleanup() {
    disown -a 2>/dev/null || true
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    sleep 0.3
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Three nginx backends, one worker each, like three single-process pods.
for i in "${!BACKENDS[@]}"; do
    ip=${BACKENDS[$i]}
    dir="$WORK/nginx-$i"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen $ip:$BACKEND_PORT reuseport backlog=4096;
        location / {
            default_type application/json;
            return 200 '{"time":"2024-01-01T00:00:00Z","host":"nginx-$i"}';
        }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    [ "$i" = 0 ] && NGINX_PID=$!
done

# haproxy in TCP mode, round-robin over the same three backends.
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind $HAPROXY_ADDR
    default_backend nginx
backend nginx
    balance roundrobin
$(for i in "${!BACKENDS[@]}"; do echo "    server n$i ${BACKENDS[$i]}:$BACKEND_PORT"; done)
EOF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=($!)

# socat: a fork-per-connection forward to one backend (what a naive port-forward is).
socat "TCP-LISTEN:${SOCAT_ADDR##*:},bind=${SOCAT_ADDR%:*},reuseaddr,fork,backlog=4096" \
    "TCP:${BACKENDS[0]}:$BACKEND_PORT" &
SOCAT_PID=$!
PIDS+=($!)

# The harness: Service proxy (cluster IP) and port-forwards.
args=()
for ip in "${BACKENDS[@]}"; do args+=(--backend "$ip:$BACKEND_PORT"); done
[ -n "$THREADS" ] && args+=(--threads "$THREADS")
"$BIN" "${args[@]}" >"$WORK/harness.out" 2>"$WORK/harness.err" &
HARNESS_PID=$!
PIDS+=($!)
for _ in $(seq 100); do grep -q '^ready' "$WORK/harness.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$WORK/harness.out" || { cat "$WORK/harness.err" >&2; exit 1; }
SERVICE=$(awk '$1=="service"{print $2}' "$WORK/harness.out")
FORWARD_POD=$(awk '$1=="forward-pod"{print $2}' "$WORK/harness.out")
FORWARD_SVC=$(awk '$1=="forward-svc"{print $2}' "$WORK/harness.out")

for addr in "${BACKENDS[0]}:$BACKEND_PORT" "$HAPROXY_ADDR" "$SOCAT_ADDR" "$SERVICE" "$FORWARD_POD" "$FORWARD_SVC"; do
    for _ in $(seq 50); do curl -sf "http://$addr/" >/dev/null && break; sleep 0.1; done
    curl -sf "http://$addr/" >/dev/null || { echo "no answer from $addr" >&2; exit 1; }
done

# median V... (numbers)
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { if (NR == 0) print 0; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'; }
# to_ms 1.23ms|456.00us|1.2s -> milliseconds
to_ms() { awk -v t="$1" 'BEGIN { v = t + 0; if (t ~ /us$/) v /= 1000; else if (t ~ /[0-9]s$/ && t !~ /ms$/) v *= 1000; printf "%.2f", v }'; }

# cpu_ticks PID -> user + system clock ticks of PID and its children (nginx workers, socat's
# forked children), including reaped children
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run ADDR MODE PID -> prints "req/s p99 cpu-us-per-request errors"
run() {
    local addr=$1 mode=$2 pid=$3 out
    local header=()
    [ "$mode" = close ] && header=(-H 'Connection: close')
    local before after
    before=$(cpu_ticks "$pid")
    out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${header[@]}" "http://$addr/" 2>&1)
    after=$(cpu_ticks "$pid")
    local rps p99 requests cpu errors
    rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    requests=$(awk '/requests in/{print $1}' <<<"$out")
    cpu=$(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0) ? t * us / n : 0 }')
    errors=$(awk '/Socket errors|Non-2xx/{$1=$1; printf "%s; ", $0}' <<<"$out")
    echo "$rps $p99 $cpu ${errors:-}"
}

declare -A RPS P99 CPU ERR
# name|address|process whose CPU is counted
TARGETS=("nginx direct (1 backend)|${BACKENDS[0]}:$BACKEND_PORT|$NGINX_PID"
         "haproxy tcp roundrobin (3)|$HAPROXY_ADDR|$HAPROXY_PID"
         "harness Service proxy (3)|$SERVICE|$HARNESS_PID"
         "socat fork (1 backend)|$SOCAT_ADDR|$SOCAT_PID"
         "harness port-forward pod/ (1)|$FORWARD_POD|$HARNESS_PID"
         "harness port-forward svc/ (3)|$FORWARD_SVC|$HARNESS_PID")
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency [-H 'Connection: close'] http://ADDR/, $ROUNDS round(s), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Rounds interleave the targets, so that background load hits them alike; the table shows
# the median of the rounds.
for round in $(seq "$ROUNDS"); do
    for mode in keepalive close; do
        for entry in "${TARGETS[@]}"; do
            IFS='|' read -r name addr pid <<<"$entry"
            read -r rps p99 cpu err <<<"$(run "$addr" "$mode" "$pid")"
            RPS["$name|$mode"]+="$rps "; P99["$name|$mode"]+="$(to_ms "$p99") "; CPU["$name|$mode"]+="$cpu "
            [ -n "$err" ] && ERR["$name|$mode"]+="$err"
            printf 'round %s  %-32s %-9s %10s req/s  p99 %8s  cpu %6s us/req  %s\n' "$round" "$name" "$mode" "$rps" "$p99" "$cpu" "$err" >&2
        done
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
HAPROXY="haproxy tcp roundrobin (3)"
for mode in keepalive close; do
    echo
    [ "$mode" = keepalive ] && echo "Keep-alive:" || echo "New connection per request (Connection: close):"
    echo
    echo "| target | req/s | p99 ms | CPU µs/request | req/s vs haproxy | CPU vs haproxy |"
    echo "|---|---:|---:|---:|---:|---:|"
    ha_rps=$(median ${RPS["$HAPROXY|$mode"]}); ha_cpu=$(median ${CPU["$HAPROXY|$mode"]})
    for entry in "${TARGETS[@]}"; do
        name=${entry%%|*}
        rps=$(median ${RPS["$name|$mode"]}); cpu=$(median ${CPU["$name|$mode"]})
        printf '| %s | %.0f | %s | %s | %s× | %s× |\n' "$name" "$rps" "$(median ${P99["$name|$mode"]})" \
            "$cpu" "$(ratio "$rps" "$ha_rps")" "$(ratio "$cpu" "$ha_cpu")"
    done
done
for key in "${!ERR[@]}"; do
    echo "errors, $key: ${ERR[$key]}" >&2
done
exit 0
