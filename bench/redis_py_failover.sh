#!/usr/bin/env bash
# redis-py RedisCluster failover: a client writes in a loop (SET, one key per
# write) while the leader is killed with kill -9; per trial the longest gap
# between two acknowledged writes and the number of acknowledged writes lost
# (must be 0). Each trial starts a fresh 3-node cluster.
#
#   bench/redis_py_failover.sh [TRIALS] [REFRESH_MIN_INTERVAL_S]
#
# Needs target/release/raftkv-node (cargo build --release) and redis-py in
# target/compat-venv (as .ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-5}
interval=${2:-}
python=target/compat-venv/bin/python
node=target/release/raftkv-node
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for trial in $(seq 1 "$trials"); do
  pids=()
  clients=(); peers=()
  for i in 1 2 3; do clients+=("127.0.0.1:$(free_port)"); peers+=("127.0.0.1:$(free_port)"); done
  cluster="1=${peers[0]},2=${peers[1]},3=${peers[2]}"
  for i in 1 2 3; do
    "$node" --id "$i" --client "${clients[$((i-1))]}" --peer "${peers[$((i-1))]}" --cluster "$cluster" \
      --data-dir "$work/t$trial/node-$i" --log-dir "$work/t$trial/logs" >"$work/t$trial-$i.out" 2>&1 &
    pids+=($!)
  done
  addrs=$(IFS=,; echo "${clients[*]}")
  for _ in $(seq 1 100); do
    if redis-cli -h 127.0.0.1 -p "${clients[0]##*:}" RAFT.STATUS 2>/dev/null | grep -qx leader; then break; fi
    if redis-cli -h 127.0.0.1 -p "${clients[1]##*:}" RAFT.STATUS 2>/dev/null | grep -qx leader; then break; fi
    if redis-cli -h 127.0.0.1 -p "${clients[2]##*:}" RAFT.STATUS 2>/dev/null | grep -qx leader; then break; fi
    sleep 0.1
  done
  echo "trial $trial: $("$python" node/tests/compat/redis_py.py "$addrs" --failover-only $interval)"
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
done
