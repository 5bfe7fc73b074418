#!/usr/bin/env bash
# Benchmarks hostbot (the shipped static release binary) against nginx answering a fixed JSON
# body and against the tutorial's Python/bottle app, with wrk, in one run:
#   - keep-alive:               req/s, p99 latency, server CPU time per request
#   - new connection/request:   the same with wrk -H 'Connection: close'
#   - hostbot's RSS when idle, fresh and after the load
# CPU time per request (user + system of the server's processes, from /proc) is the number
# that other load on the machine disturbs least; req/s and p99 need a quiet machine.
# All servers listen on 127.0.0.1 and share the machine with wrk, so only ratios measured in the
# same run mean something; absolute numbers move between runs and machines.
#
# Usage: bench/hostbot.sh     (DURATION=5s ROUNDS=3 CONNECTIONS=64 THREADS=2 to change)
#        BASELINE=path/to/other/hostbot bench/hostbot.sh   adds that binary (e.g. a build of the
#        previous commit) as "baseline", interleaved with the others, for an A/B comparison.
# Needs: wrk, nginx (Debian: apt-get install wrk nginx-light), python3 with venv; installs
# bottle from PyPI into target/bench-venv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
BASELINE=${BASELINE:-}
SERVERS=(nginx hostbot python)

for tool in wrk nginx python3 cargo; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install wrk nginx-light)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # url
    for _ in $(seq 1 200); do
        curl -fs -o /dev/null "$1" && return 0
        sleep 0.05
    done
    echo "bench: $1 did not answer" >&2
    exit 1
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "== building hostbot (static release, as shipped in the image)" >&2
(cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --quiet --release -p hostbot --target x86_64-unknown-linux-gnu)
HOSTBOT="$ROOT/target/x86_64-unknown-linux-gnu/release/hostbot"

echo "== installing bottle into target/bench-venv" >&2
VENV="$ROOT/target/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check 'bottle==0.13.4'

# hostbot: defaults, except the port and no config directory.
HB_PORT=$(free_port)
HOST=127.0.0.1 PORT=$HB_PORT CONFIG_DIR= DRAIN_DELAY=0 RUST_LOG=warn "$HOSTBOT" >"$TMP/hostbot.log" 2>&1 &
HB_PID=$!
PIDS+=("$HB_PID")
if [ -n "$BASELINE" ]; then
    BL_PORT=$(free_port)
    HOST=127.0.0.1 PORT=$BL_PORT CONFIG_DIR= DRAIN_DELAY=0 RUST_LOG=warn "$BASELINE" >"$TMP/baseline.log" 2>&1 &
    BL_PID=$!
    PIDS+=("$BL_PID")
    SERVERS=(nginx hostbot baseline python)
fi

# nginx: the same body hostbot sends (with a fixed time), one worker per core, no access log.
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/json;
            add_header Cache-Control no-store;
            return 200 '{"time":"2026-11-22T00:00:00.000000+00:00","host":"bench","version":"0.1.0"}\n';
        }
    }
}
NGINX
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

# The tutorial's bottle app (its default wsgiref server, as in the tutorial).
PY_PORT=$(free_port)
HOST=127.0.0.1 PORT=$PY_PORT "$VENV/bin/python" "$ROOT/bench/serve.py" >"$TMP/python.log" 2>&1 &
PY_PID=$!
PIDS+=("$PY_PID")

wait_http "http://127.0.0.1:$HB_PORT/readyz"
[ -z "$BASELINE" ] || wait_http "http://127.0.0.1:$BL_PORT/readyz"
wait_http "http://127.0.0.1:$NGINX_PORT/"
wait_http "http://127.0.0.1:$PY_PORT/"
sleep 1 # let hostbot settle before reading its idle RSS
RSS_IDLE=$(rss_kb "$HB_PID")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

cpu_ticks() { # pids... -> user+system clock ticks of those processes (all their threads)
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$total"
}

declare -A URL PIDS_OF
URL[nginx]="http://127.0.0.1:$NGINX_PORT/"
URL[hostbot]="http://127.0.0.1:$HB_PORT/"
URL[python]="http://127.0.0.1:$PY_PORT/"
PIDS_OF[nginx]=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
PIDS_OF[hostbot]=$HB_PID
PIDS_OF[python]=$PY_PID
if [ -n "$BASELINE" ]; then
    URL[baseline]="http://127.0.0.1:$BL_PORT/"
    PIDS_OF[baseline]=$BL_PID
fi

# wrk_run NAME MODE -> prints "req/s p99_ms errors cpu_us_per_request"
wrk_run() {
    local extra=() before after
    [ "$2" = close ] && extra=(-H 'Connection: close')
    wrk -t"$THREADS" -c"$CONNECTIONS" -d1s "${extra[@]}" "${URL[$1]}" >/dev/null 2>&1 || true # warm-up
    # shellcheck disable=SC2086
    before=$(cpu_ticks ${PIDS_OF[$1]})
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${extra[@]}" "${URL[$1]}" >"$TMP/wrk.txt" 2>&1
    # shellcheck disable=SC2086
    after=$(cpu_ticks ${PIDS_OF[$1]})
    awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000;
            if (v ~ /ms$/) return v + 0;
            if (v ~ /s$/) return v * 1000;
            return v;
        }
        /^ +99%/ { p99 = ms($2) }
        /requests in/ { total = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx/ { errors += $5 }
        END { printf "%.0f %.2f %d %.2f\n", rps, p99, errors, total ? ticks / hz * 1e6 / total : 0 }
    ' "$TMP/wrk.txt"
}

# Rounds interleave the servers, so that load from elsewhere on the machine hits all of them
# alike; the report shows the median of the rounds.
declare -A SAMPLES
for round in $(seq 1 "$ROUNDS"); do
    for mode in keepalive close; do
        for name in "${SERVERS[@]}"; do
            echo "== round $round: $name ($mode)" >&2
            SAMPLES[$name-$mode]+="$(wrk_run "$name" "$mode");"
        done
    done
done
sleep 1
RSS_AFTER=$(rss_kb "$HB_PID")

median() { # "a b c d;a b c d;..." field -> median of that field
    echo "$1" | tr ';' '\n' | awk -v f="$2" 'NF { print $f }' | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
declare -A RPS P99 ERR CPU
for key in "${!SAMPLES[@]}"; do
    RPS[$key]=$(median "${SAMPLES[$key]}" 1)
    P99[$key]=$(median "${SAMPLES[$key]}" 2)
    ERR[$key]=$(echo "${SAMPLES[$key]}" | tr ';' '\n' | awk 'NF { s += $3 } END { print s + 0 }')
    CPU[$key]=$(median "${SAMPLES[$key]}" 4)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, median of $ROUNDS interleaved rounds, all servers on 127.0.0.1, $(nproc) cores shared with wrk; load average before: $LOAD_BEFORE"
echo
echo "| mode | server | req/s | p99 ms | errors | CPU µs/request | req/s vs nginx | p99 vs nginx | CPU vs nginx |"
echo "|------|--------|------:|-------:|-------:|---------------:|---------------:|-------------:|-------------:|"
for mode in keepalive close; do
    label=$([ "$mode" = keepalive ] && echo "keep-alive" || echo "new connection per request")
    for name in "${SERVERS[@]}"; do
        k=$name-$mode n=nginx-$mode
        echo "| $label | $name | ${RPS[$k]} | ${P99[$k]} | ${ERR[$k]} | ${CPU[$k]} | $(ratio "${RPS[$k]}" "${RPS[$n]}")x | $(ratio "${P99[$k]}" "${P99[$n]}")x | $(ratio "${CPU[$k]}" "${CPU[$n]}")x |"
    done
done
echo
echo "hostbot RSS: idle after start ${RSS_IDLE} kB, idle after the load ${RSS_AFTER} kB"
echo "hostbot binary: $(stat -c %s "$HOSTBOT") bytes"
[ -z "$BASELINE" ] || echo "baseline: $BASELINE"
