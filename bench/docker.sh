#!/usr/bin/env bash
# The docker runtime: time from apply to 3 Ready containers (docker and process runtimes, a
# fresh cluster per round), then `harness check` (all three scenarios, a new connection per
# request) at rising rates on both runtimes: the rate the docker runtime sustains with 0 failures.
#
# Usage: bench/docker.sh     (ROUNDS=5 RATES="200 500 1000 2000" SKIP_BUILD=1 to change)
# Needs: a running Docker engine (tini -s -- dockerd).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
RATES=${RATES:-"200 500 1000 2000"}
cd "$ROOT"
docker info >/dev/null 2>&1 || { echo "bench: no Docker engine (tini -s -- dockerd &)" >&2; exit 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== building harness, hostbot and the image (release)" >&2
    cargo build --quiet --release -p harness -p hostbot --example docker_ready
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --quiet --release -p hostbot --target x86_64-unknown-linux-gnu
    for v in v1 v2; do
        docker build -q --target prebuilt --build-arg VERSION=$v -t yourname/hostbot:$v . >/dev/null
    done
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "### apply -> 3 Ready pods (manifests/, readiness period 1 s)"
echo
"$ROOT/target/release/examples/docker_ready" "$ROUNDS"
echo
echo "### harness check, all scenarios, new connection per request"
echo
echo "| runtime | rate | scenario | requests | failed | p50 ms | p99 ms | max ms |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
for rate in $RATES; do
    for runtime in docker process; do
        "$ROOT/target/release/harness" check --runtime "$runtime" --rate "$rate" \
            --report "$report" >/dev/null 2>&1 || true
        python3 - "$report" "$runtime" "$rate" <<'PY'
import json, sys
path, runtime, rate = sys.argv[1:]
try:
    report = json.load(open(path))
except Exception as e:
    print(f"| {runtime} | {rate} | (no report: {e}) | | | | | |")
    sys.exit()
for s in report["scenarios"]:
    print(f"| {runtime} | {rate} | {s['name']} | {s['requests']} | {s['failed']} | "
          f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} |")
PY
        rm -f "$report"
    done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
