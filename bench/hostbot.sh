#!/usr/bin/env bash
# Benchmarks hostbot (the shipped static release binary) against nginx answering a fixed JSON
# body and against the tutorial's Python/bottle app, with wrk, in one run:
#   - keep-alive:               req/s and p99 latency
#   - new connection/request:   req/s and p99 latency (wrk -H 'Connection: close')
#   - hostbot's RSS when idle, fresh and after the load
# All servers listen on 127.0.0.1 and share the machine with wrk, so only ratios measured in the
# same run mean something; absolute numbers move between runs and machines.
#
# Usage: bench/hostbot.sh                 (DURATION=10s CONNECTIONS=64 THREADS=2 to change)
# Needs: wrk, nginx (Debian: apt-get install wrk nginx-light), python3 with venv; installs
# bottle from PyPI into target/bench-venv.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

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
HOST=127.0.0.1 PORT=$HB_PORT CONFIG_DIR= RUST_LOG=warn "$HOSTBOT" >"$TMP/hostbot.log" 2>&1 &
HB_PID=$!
PIDS+=("$HB_PID")

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
PIDS+=($!)

# The tutorial's bottle app (its default wsgiref server, as in the tutorial).
PY_PORT=$(free_port)
HOST=127.0.0.1 PORT=$PY_PORT "$VENV/bin/python" "$ROOT/bench/serve.py" >"$TMP/python.log" 2>&1 &
PIDS+=($!)

wait_http "http://127.0.0.1:$HB_PORT/readyz"
wait_http "http://127.0.0.1:$NGINX_PORT/"
wait_http "http://127.0.0.1:$PY_PORT/"
sleep 1 # let hostbot settle before reading its idle RSS
RSS_IDLE=$(rss_kb "$HB_PID")

# wrk_run NAME URL MODE -> prints "req/s p99_ms errors"
wrk_run() {
    local extra=()
    [ "$3" = close ] && extra=(-H 'Connection: close')
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${extra[@]}" "$2" >"$TMP/wrk-$1-$3.txt" 2>&1
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000;
            if (v ~ /ms$/) return v + 0;
            if (v ~ /s$/) return v * 1000;
            return v;
        }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
        /Non-2xx/ { errors += $5 }
        END { printf "%.0f %.2f %d\n", rps, p99, errors }
    ' "$TMP/wrk-$1-$3.txt"
}

declare -A RPS P99 ERR
for mode in keepalive close; do
    for name in nginx hostbot python; do
        case $name in
            nginx) url="http://127.0.0.1:$NGINX_PORT/" ;;
            hostbot) url="http://127.0.0.1:$HB_PORT/" ;;
            python) url="http://127.0.0.1:$PY_PORT/" ;;
        esac
        echo "== wrk $name ($mode)" >&2
        wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true # warm-up
        read -r rps p99 errors < <(wrk_run "$name" "$url" "$mode")
        RPS[$name-$mode]=$rps
        P99[$name-$mode]=$p99
        ERR[$name-$mode]=$errors
    done
done
sleep 1
RSS_AFTER=$(rss_kb "$HB_PID")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, all servers on 127.0.0.1, $(nproc) cores shared with wrk"
echo
echo "| mode | server | req/s | p99 ms | errors | req/s vs nginx | p99 vs nginx |"
echo "|------|--------|------:|-------:|-------:|---------------:|-------------:|"
for mode in keepalive close; do
    label=$([ "$mode" = keepalive ] && echo "keep-alive" || echo "new connection per request")
    for name in nginx hostbot python; do
        echo "| $label | $name | ${RPS[$name-$mode]} | ${P99[$name-$mode]} | ${ERR[$name-$mode]} | $(ratio "${RPS[$name-$mode]}" "${RPS[nginx-$mode]}")x | $(ratio "${P99[$name-$mode]}" "${P99[nginx-$mode]}")x |"
    done
done
echo
echo "hostbot RSS: idle after start ${RSS_IDLE} kB, idle after the load ${RSS_AFTER} kB"
echo "hostbot binary: $(stat -c %s "$HOSTBOT") bytes"
