#!/usr/bin/env bash
# How fast can the checker's own load generator go while keeping its schedule? Runs
# `harness load` (open loop, a new connection per request, every reply parsed and validated)
# against one hostbot at rising rates, and wrk (closed loop, Connection: close) against the
# same hostbot in the same run for comparison. Everything on 127.0.0.1.
#
# Usage: bench/check.sh        (RATES="2000 5000 8000" DURATION=10s SKIP_BUILD=1 to change)
# Needs: wrk (apt-get install wrk).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATES=${RATES:-"2000 5000 8000"}
DURATION=${DURATION:-10s}
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install wrk)" >&2; exit 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building harness and hostbot (release)" >&2
    (cd "$ROOT" && cargo build --quiet --release -p harness -p hostbot)
fi
HARNESS="$ROOT/target/release/harness"
HOSTBOT="$ROOT/target/release/hostbot"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST=127.0.0.1 PORT=$PORT HOSTNAME=bench CONFIG_DIR= RUST_LOG=warn "$HOSTBOT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.05; done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| tool | asked req/s | achieved req/s | failed | p50 ms | p99 ms | max ms |"
echo "|------|------------:|---------------:|-------:|-------:|-------:|-------:|"
for rate in $RATES; do
    out=$("$HARNESS" load "127.0.0.1:$PORT" --rate "$rate" --duration "$DURATION" || true)
    achieved=$(echo "$out" | sed -n 's/.*(\([0-9]*\) req\/s.*/\1/p')
    failed=$(echo "$out" | sed -n 's/.*failed \([0-9]*\).*/\1/p')
    p50=$(echo "$out" | sed -n 's/.*p50 \([0-9.]*\) ms.*/\1/p')
    p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p')
    max=$(echo "$out" | sed -n 's/.*max \([0-9.]*\) ms.*/\1/p')
    echo "| harness load (open loop, new connection) | $rate | $achieved | $failed | $p50 | $p99 | $max |"
done
wrk_out=$(wrk -t2 -c64 -d"$DURATION" --latency -H 'Connection: close' "http://127.0.0.1:$PORT/")
rps=$(echo "$wrk_out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
p50=$(echo "$wrk_out" | awk '$1 == "50%" {print $2}')
p99=$(echo "$wrk_out" | awk '$1 == "99%" {print $2}')
echo "| wrk -t2 -c64 (closed loop, Connection: close) | max | $rps | - | $p50 | $p99 | - |"
