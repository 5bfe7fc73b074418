#!/usr/bin/env bash
# Benchmarks the embedded cluster: how long applied pods take to become Ready (3 and 100 real
# hostbot processes, 1000 in-process hostbots), the harness's memory with 1000 pods, and the CPU
# an idle cluster with 3 pods burns. Every measurement runs in a fresh process (so RSS is its
# own), on the shipped manifests (manifests/cm-hostbot.yml + deploy-hostbot.yml, replicas
# overridden: readiness probe every 1 s, a ConfigMap volume). Prints a Markdown table.
#
#   bench/cluster.sh
#   DETAILS=1 bench/cluster.sh        # per-pod timelines on stderr
#   IDLE_SECONDS=30 bench/cluster.sh
#   CLUSTER_BENCH_BIN=path HARNESS_HOSTBOT=path bench/cluster.sh   # prebuilt binaries
set -euo pipefail

cd "$(dirname "$0")/.."
IDLE_SECONDS=${IDLE_SECONDS:-10}

BIN=${CLUSTER_BENCH_BIN:-}
if [ -z "$BIN" ]; then
    echo "building the bench binary and hostbot (release)..." >&2
    cargo build --release -q -p hostbot
    cargo build --release -q -p harness --example cluster_bench
    BIN=target/release/examples/cluster_bench
fi
HOSTBOT=${HARNESS_HOSTBOT:-target/release/hostbot}
args=(--hostbot "$HOSTBOT" --manifests manifests)
[ -n "${DETAILS:-}" ] && args+=(--details)

echo "$(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
echo "| measurement | result | goal | | details |"
echo "|---|---:|---|---|---|"
# Each measurement prints its row, even a failed one; the script goes on and fails at the end.
status=0
run() { "$BIN" "$@" "${args[@]}" || status=1; }
run ready --replicas 3 --runtime process --goal 1
run ready --replicas 100 --runtime process --goal 10
run ready --replicas 1000 --runtime inprocess --goal 5 --rss-goal 500
run idle --seconds "$IDLE_SECONDS"
exit $status
