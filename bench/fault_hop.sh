#!/usr/bin/env bash
# What the fault proxy's extra hop costs: a 3-node `raftkv up` with and
# without `--faults` (every peer link through the in-process proxy), in
# alternating pairs, each measured by `raftkv bench --attach`: 1 client
# (p50 write latency) and 64 clients (writes/s). Prints one line a run.
#
# Usage: bench/fault_hop.sh [PAIRS]   (default 3; needs target/release/raftkv)
# Not part of CI.
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RAFTKV="$ROOT/target/release/raftkv"
PAIRS=${1:-3}
BASE_PORT=${FAULT_HOP_BASE_PORT:-17400}
WORK=$(mktemp -d /tmp/raftkv-fault-hop.XXXXXX)
UP_PID=""
cleanup() {
  [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

addrs() {
  echo "127.0.0.1:$((BASE_PORT + 1)),127.0.0.1:$((BASE_PORT + 2)),127.0.0.1:$((BASE_PORT + 3))"
}

# One run: start the cluster (with the flags given), wait for a leader, bench, stop.
run() {
  local label=$1; shift
  rm -rf "$WORK/data" "$WORK/logs"
  "$RAFTKV" up --fresh --base-port "$BASE_PORT" --data-dir "$WORK/data" --log-dir "$WORK/logs" "$@" \
    >"$WORK/up.out" 2>&1 &
  UP_PID=$!
  for _ in $(seq 1 150); do
    grep -q "cluster ready" "$WORK/up.out" && break
    sleep 0.1
  done
  grep -q "cluster ready" "$WORK/up.out" || { echo "$label: no leader"; cat "$WORK/up.out"; exit 1; }
  local one sixty_four
  # "all  p50 p99 ..." -> p50 ms; "ops/s  N" -> N.
  one=$("$RAFTKV" bench --attach "$(addrs)" --clients 1 --ops 5000 2>/dev/null \
    | awk '$1 == "all" { print "p50 " $2 " ms, p99 " $3 " ms" }')
  sixty_four=$("$RAFTKV" bench --attach "$(addrs)" --clients 64 --ops 100000 2>/dev/null \
    | awk '$1 == "ops/s" { print $2 " writes/s" }')
  kill "$UP_PID"; wait "$UP_PID" 2>/dev/null; UP_PID=""
  echo "$label | 1 client: $one | 64 clients: $sixty_four"
}

echo "fault proxy hop cost, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for pair in $(seq 1 "$PAIRS"); do
  run "pair $pair direct " 
  run "pair $pair proxied" --faults
done
