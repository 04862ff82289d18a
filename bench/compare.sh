#!/usr/bin/env bash
# raftkv next to etcd on this machine, in one run, with one load generator.
#
# Starts a fresh 3-node raftkv and a fresh 3-node etcd on loopback, drives
# both with `raftkv bench` (the same closed-loop clients, key space and
# 100-byte values; `--target etcd` speaks etcd's gRPC API), times leader
# failover and follower catch-up on both, runs redis-benchmark against the
# raftkv leader, then measures raftkv-only targets (elections during a
# saturating 60 s load, node memory and wiped-node catch-up with 1M keys,
# the dashboard's polling cost; etcd "-"), and prints one table: figure,
# raftkv, etcd, ratio.
#
# Usage: bench/compare.sh [--quick] [--no-build]
#   --quick     fewer operations, trials, seconds and keys (a smoke run, about 3 minutes)
#   --no-build  use the binaries already in target/release
#
# Installs what it needs (Debian's etcd-server, etcd-client, redis-tools,
# tmux and protobuf-compiler for the etcd client), builds `raftkv` with the `etcd`
# feature and `raftkv-node`, and cleans up every process and directory it
# started. The whole run, build included, stops by itself within
# COMPARE_BUDGET_S seconds (default 600): a phase that would not fit is
# skipped and shown as such. Not part of CI.
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUDGET_S=${COMPARE_BUDGET_S:-600}
QUICK=0
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

STARTED_S=$(date +%s)
WORK=$(mktemp -d /tmp/raftkv-compare.XXXXXX)
RESULTS=$WORK/results.tsv   # figure <TAB> raftkv <TAB> etcd <TAB> unit <TAB> better
PIDS=()                     # every server process this script started
: > "$RESULTS"

# Ports: raftkv nodes i=1..3 serve clients on RK_BASE+i and peers on
# RK_BASE+100+i (raftkv bench --base-port uses the same layout); etcd member
# i serves clients on ETCD_CLIENT_BASE+i and peers on ETCD_PEER_BASE+i.
RK_BASE=17400
RK_FAILOVER_BASE=17800
ETCD_CLIENT_BASE=17600
ETCD_PEER_BASE=17700

DASHBOARD_BASE=17900
if [ "$QUICK" = 1 ]; then
  OPS_1=500; OPS_N=20000; FAILOVER_TRIALS=3; CATCHUP_ENTRIES=10000; RB_OPS=100000
  SATURATE_S=5; MEMORY_KEYS=100000; DASHBOARD_S=3
else
  OPS_1=3000; OPS_N=100000; FAILOVER_TRIALS=20; CATCHUP_ENTRIES=10000; RB_OPS=300000
  SATURATE_S=60; MEMORY_KEYS=1000000; DASHBOARD_S=10
fi

log() { echo "[compare $(( $(date +%s) - STARTED_S ))s] $*" >&2; }
remaining_s() { echo $(( BUDGET_S - ($(date +%s) - STARTED_S) )); }
# fits SECONDS: whether a phase expected to take that long still fits the budget.
fits() { [ "$(remaining_s)" -gt "$1" ]; }

cleanup() {
  # Bash runs the EXIT trap in some subshells too (a command substitution
  # ending in a function call): only the main shell cleans up.
  [ "$BASHPID" = "$$" ] || return 0
  local pid
  [ -n "${WATCHDOG:-}" ] && kill -TERM "$WATCHDOG" 2>/dev/null   # it stops its own sleep
  [ -n "${WATCHDOG:-}" ] && wait_gone "$WATCHDOG"
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait_gone "$pid"
  done
  rm -rf "$WORK"
}
# Servers are disowned when started (so bash does not report each kill -9
# as a job notice): wait for one to be gone by polling, at most 5 s.
wait_gone() {
  local tries=0
  while kill -0 "$1" 2>/dev/null && [ $tries -lt 500 ]; do sleep 0.01; tries=$((tries + 1)); done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The budget is enforced from outside too: after BUDGET_S the whole run is
# stopped (cleanup still runs through the EXIT trap).
( trap 'kill "$nap" 2>/dev/null; wait "$nap" 2>/dev/null; exit 0' TERM
  sleep "$BUDGET_S" & nap=$!
  wait "$nap" || exit 0
  log "time budget of ${BUDGET_S}s used up, stopping"
  # The main shell runs its trap only once its foreground command returns:
  # stop that command too (the watchdog is a child of the main shell as well).
  kill -TERM $$ 2>/dev/null
  for child in $(ps -o pid= --ppid $$); do
    [ "$child" != "$BASHPID" ] && kill -TERM "$child" 2>/dev/null
  done ) &
WATCHDOG=$!

record() { # figure raftkv etcd unit better(higher|lower)
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$RESULTS"
}

# --- install and build ------------------------------------------------------

need_packages=()
command -v etcd >/dev/null || need_packages+=(etcd-server)
command -v etcdctl >/dev/null || need_packages+=(etcd-client)
command -v redis-benchmark >/dev/null || need_packages+=(redis-tools)
command -v protoc >/dev/null || need_packages+=(protobuf-compiler)
command -v python3 >/dev/null || need_packages+=(python3)
command -v tmux >/dev/null || need_packages+=(tmux)
if [ ${#need_packages[@]} -gt 0 ]; then
  log "installing ${need_packages[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "compare.sh: needs ${need_packages[*]} (run as root, or install them first)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null || {
    echo "compare.sh: apt-get install ${need_packages[*]} failed" >&2; exit 1; }
fi
# Debian's etcd 3.4 refuses to start on arm64 without this; harmless elsewhere.
export ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-$(dpkg --print-architecture 2>/dev/null)}

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RAFTKV=$TARGET_DIR/release/raftkv
NODE=$TARGET_DIR/release/raftkv-node
if [ "$BUILD" = 1 ]; then
  log "building raftkv (feature etcd) and raftkv-node"
  (cd "$ROOT" && timeout "$(remaining_s)" cargo build --release -q -p raftkv-tui --features etcd \
     && timeout "$(remaining_s)" cargo build --release -q -p raftkv-node --bin raftkv-node) || {
    echo "compare.sh: build failed or ran out of time" >&2; exit 1; }
fi
for bin in "$RAFTKV" "$NODE"; do
  [ -x "$bin" ] || { echo "compare.sh: $bin is missing (drop --no-build)" >&2; exit 1; }
done
ETCD_BENCH=1
"$RAFTKV" bench --help 2>/dev/null | grep -q -- '--target.*etcd\|etcd' || {
  ETCD_BENCH=0; log "this raftkv was built without the etcd feature: etcd loads are skipped"; }

# --- helpers ----------------------------------------------------------------

MACHINE="$(nproc) cpus ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))"
MACHINE="$MACHINE, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
busy_pct() { # CPU busy % over $1 seconds, everything on the machine
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ < /proc/stat
  sleep "$1"
  read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ < /proc/stat
  a=$((a1+a2+a3+a4+a5+a6+a7+a8)); b=$((b1+b2+b3+b4+b5+b6+b7+b8))
  echo $(( 100 * ((b - a) - ((b4+b5) - (a4+a5))) / (b - a) ))
}

json_field() { # file python-expression-on-j
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null
}

# One throughput run of the shared generator: target addrs clients read_ratio ops label
bench_load() {
  local target=$1 addrs=$2 clients=$3 read_ratio=$4 ops=$5 out=$WORK/$6.json
  local target_args=()
  [ "$target" = etcd ] && target_args=(--target etcd)
  if ! timeout 120 "$RAFTKV" bench "${target_args[@]}" --attach "$addrs" --clients "$clients" \
       --ops "$ops" --value-size 100 --keyspace 100000 --read-ratio "$read_ratio" \
       --json > "$out" 2> "$WORK/$6.err"; then
    log "$6 failed: $(tail -2 "$WORK/$6.err" | tr '\n' ' ')"
    return 1
  fi
  echo "$out"
}

# --- raftkv -----------------------------------------------------------------

RK_DIR=$WORK/raftkv
RK_CLUSTER="1=127.0.0.1:$((RK_BASE+101)),2=127.0.0.1:$((RK_BASE+102)),3=127.0.0.1:$((RK_BASE+103))"
RK_ADDRS="127.0.0.1:$((RK_BASE+1)),127.0.0.1:$((RK_BASE+2)),127.0.0.1:$((RK_BASE+3))"
RK_PIDS=()
raftkv_start() {
  mkdir -p "$RK_DIR/logs"
  local i
  for i in 1 2 3; do
    setsid "$NODE" --id "$i" --client "127.0.0.1:$((RK_BASE+i))" --peer "127.0.0.1:$((RK_BASE+100+i))" \
      --cluster "$RK_CLUSTER" --data-dir "$RK_DIR/node-$i" --log-dir "$RK_DIR/logs" \
      </dev/null >"$RK_DIR/node-$i.out" 2>&1 &
    RK_PIDS[$i]=$!
    PIDS+=("$!")
    disown "$!"
  done
  local deadline=$(( $(date +%s) + 20 ))
  while [ "$(date +%s)" -lt $deadline ]; do
    [ -n "$(raftkv_leader)" ] && return 0
    sleep 0.1
  done
  log "raftkv elected no leader in 20 s"; return 1
}
raftkv_leader() { # client port of the leader
  local i
  for i in 1 2 3; do
    if redis-cli -p $((RK_BASE+i)) RAFT.STATUS 2>/dev/null | grep -qx leader; then
      echo $((RK_BASE+i)); return
    fi
  done
}
raftkv_stop() {
  local i
  for i in 1 2 3; do
    [ -n "${RK_PIDS[$i]:-}" ] && kill -TERM "${RK_PIDS[$i]}" 2>/dev/null
  done
  for i in 1 2 3; do
    [ -n "${RK_PIDS[$i]:-}" ] && wait_gone "${RK_PIDS[$i]}"
  done
  RK_PIDS=()
}

# --- etcd -------------------------------------------------------------------

ETCD_DIR=$WORK/etcd
ETCD_CLUSTER="n1=http://127.0.0.1:$((ETCD_PEER_BASE+1)),n2=http://127.0.0.1:$((ETCD_PEER_BASE+2)),n3=http://127.0.0.1:$((ETCD_PEER_BASE+3))"
ETCD_ADDRS="127.0.0.1:$((ETCD_CLIENT_BASE+1)),127.0.0.1:$((ETCD_CLIENT_BASE+2)),127.0.0.1:$((ETCD_CLIENT_BASE+3))"
ETCD_PIDS=()
etcd_start_member() { # n
  local n=$1 state=new
  [ -d "$ETCD_DIR/n$n/member" ] && state=existing
  mkdir -p "$ETCD_DIR"
  setsid etcd --name "n$n" --data-dir "$ETCD_DIR/n$n" \
    --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE+n))" \
    --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE+n))" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE+n))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE+n))" \
    --initial-cluster "$ETCD_CLUSTER" --initial-cluster-token raftkv-compare \
    --initial-cluster-state "$state" --logger zap --log-level error \
    </dev/null >>"$ETCD_DIR/n$n.log" 2>&1 &
  ETCD_PIDS[$n]=$!
  PIDS+=("$!")
  disown "$!"
}
etcdctl_all() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ADDRS" --command-timeout=2s "$@"; }
etcd_leader() { # member number of the leader
  etcdctl_all endpoint status -w json 2>/dev/null | python3 -c '
import json,sys
try: d=json.load(sys.stdin)
except Exception: sys.exit(0)
for e in d:
    s=e["Status"]
    if s["header"]["member_id"]==s["leader"]: print(e["Endpoint"][-1]); break'
}
etcd_revision() { # endpoint -> its revision
  ETCDCTL_API=3 etcdctl --endpoints="$1" --dial-timeout=100ms --command-timeout=100ms endpoint status -w json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])' 2>/dev/null
}
etcd_wait_healthy() { # seconds
  local deadline=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt $deadline ]; do
    if etcdctl_all endpoint health >/dev/null 2>&1 && [ -n "$(etcd_leader)" ]; then return 0; fi
    sleep 0.1
  done
  log "etcd is not healthy after $1 s"; return 1
}
etcd_start() { local n; for n in 1 2 3; do etcd_start_member "$n"; done; etcd_wait_healthy 30; }
etcd_kill_member() { # n signal
  local pid=${ETCD_PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill -"$2" "$pid" 2>/dev/null
  wait_gone "$pid"
  ETCD_PIDS[$1]=""
}
etcd_stop() { local n; for n in 1 2 3; do etcd_kill_member "$n" TERM; done; }
# Every phase starts from a fresh cluster, as `raftkv bench` does for raftkv:
# a restarted etcd member first replays its WAL, so old data would add to it.
etcd_fresh_start() { etcd_stop; rm -rf "$ETCD_DIR"; etcd_start; }

# --- phase 1: throughput and latency, same generator ------------------------

load_row() { # label clients read_ratio ops
  local label=$1 clients=$2 ratio=$3 ops=$4 rk et
  rk=$(bench_load raftkv "$RK_ADDRS" "$clients" "$ratio" "$ops" "raftkv-$label") || rk=""
  et=""
  if [ "$ETCD_BENCH" = 1 ] && [ -n "${ETCD_UP:-}" ]; then
    et=$(bench_load etcd "$ETCD_ADDRS" "$clients" "$ratio" "$ops" "etcd-$label") || et=""
  fi
  local kind=writes; [ "$ratio" != 0 ] && kind=reads
  local v1 v2
  v1=$([ -n "$rk" ] && json_field "$rk" "round(j['throughput']['ops_per_sec'])")
  v2=$([ -n "$et" ] && json_field "$et" "round(j['throughput']['ops_per_sec'])")
  record "$label: $kind/s" "${v1:-}" "${v2:-}" "/s" higher
  v1=$([ -n "$rk" ] && json_field "$rk" "j['throughput']['latency']['all']['p50_us']/1000")
  v2=$([ -n "$et" ] && json_field "$et" "j['throughput']['latency']['all']['p50_us']/1000")
  record "$label: ${kind%s} p50" "${v1:-}" "${v2:-}" ms lower
  v1=$([ -n "$rk" ] && json_field "$rk" "j['throughput']['latency']['all']['p99_us']/1000")
  v2=$([ -n "$et" ] && json_field "$et" "j['throughput']['latency']['all']['p99_us']/1000")
  record "$label: ${kind%s} p99" "${v1:-}" "${v2:-}" ms lower
}

BUSY_BEFORE=$(busy_pct 1)
log "machine busy ${BUSY_BEFORE}% before the run (other work on it skews every figure)"
if fits 90; then
  log "phase 1: loads against a fresh raftkv and a fresh etcd"
  raftkv_start || exit 1
  if [ "$ETCD_BENCH" = 1 ]; then etcd_start && ETCD_UP=1; fi
  # Warm both (connections, first leader term entries) before measuring.
  bench_load raftkv "$RK_ADDRS" 8 0 2000 raftkv-warm >/dev/null
  [ -n "${ETCD_UP:-}" ] && bench_load etcd "$ETCD_ADDRS" 8 0 2000 etcd-warm >/dev/null
  load_row "1 client" 1 0 "$OPS_1"
  load_row "64 clients" 64 0 "$OPS_N"
  load_row "256 clients" 256 0 "$OPS_N"
  load_row "64 clients" 64 1.0 "$OPS_N"

  LEADER_PORT=$(raftkv_leader)
  rb() { # pipeline -> requests/s of SET against the raftkv leader
    timeout 120 redis-benchmark -h 127.0.0.1 -p "$LEADER_PORT" -t set -c 50 -P "$1" -d 100 \
      -r 100000 -n "$2" --csv 2>/dev/null | tail -1 | tr -d '"' | cut -d, -f2 | cut -d. -f1
  }
  record "redis-benchmark SET -c 50 -P 1: /s" "$(rb 1 $((RB_OPS / 3)))" "" "/s" higher
  record "redis-benchmark SET -c 50 -P 16: /s" "$(rb 16 "$RB_OPS")" "" "/s" higher
  raftkv_stop
  [ -n "${ETCD_UP:-}" ] && etcd_stop
  ETCD_UP=""
else
  log "phase 1 skipped: time budget"
fi

# --- phase 2: leader failover -----------------------------------------------

median_of() { python3 -c 'import sys,statistics as s; v=[float(x) for x in sys.argv[1:]]; print(round(s.median(v)) if v else "")' "$@"; }
max_of() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print(round(max(v)) if v else "")' "$@"; }

RK_FO=(); ET_FO=()
if fits $((FAILOVER_TRIALS * 8 + 30)); then
  log "phase 2: raftkv failover, $FAILOVER_TRIALS trials (kill -9 leader under write load)"
  out=$WORK/raftkv-failover.json
  if timeout $((FAILOVER_TRIALS * 20 + 60)) "$RAFTKV" bench --failover "$FAILOVER_TRIALS" \
       --base-port "$RK_FAILOVER_BASE" --log-dir "$WORK/failover-logs" --json > "$out" 2> "$WORK/raftkv-failover.err"; then
    mapfile -t RK_FO < <(json_field "$out" "'\n'.join(str(t['first_write_ms']) for t in j['failover']['trials'])")
  else
    log "raftkv failover failed: $(tail -2 "$WORK/raftkv-failover.err" | tr '\n' ' ')"
  fi
fi
if fits $((FAILOVER_TRIALS * 8 + 30)); then
  # etcd: kill -9 the leader, then put through etcdctl on each survivor every
  # 10 ms (2 s timeout each, overlapping) until one succeeds. Process start-up
  # makes this up to ~20 ms coarser than the bench's probe of raftkv.
  log "phase 2: etcd failover, $FAILOVER_TRIALS trials"
  etcd_fresh_start && ETCD_UP=1
  for trial in $(seq 1 "$FAILOVER_TRIALS"); do
    fits 15 || break
    etcd_wait_healthy 30 || break
    L=$(etcd_leader); [ -n "$L" ] || break
    SURV=""
    for n in 1 2 3; do [ "$n" != "$L" ] && SURV="$SURV 127.0.0.1:$((ETCD_CLIENT_BASE+n))"; done
    t0=$(date +%s%N)
    kill -KILL "${ETCD_PIDS[$L]}"
    done_file=$WORK/fo-$trial.done
    first=""
    probes=()
    while [ -z "$first" ] && [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 20000 ]; do
      for ep in $SURV; do
        ( ETCDCTL_API=3 etcdctl --endpoints="$ep" --command-timeout=2s put failover-probe x >/dev/null 2>&1 \
            && echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$done_file" ) &
        probes+=("$!")
      done
      sleep 0.01
      [ -s "$done_file" ] && first=$(sort -n "$done_file" | head -1)
    done
    wait "${probes[@]}" 2>/dev/null
    first=$(sort -n "$done_file" 2>/dev/null | head -1)
    wait_gone "${ETCD_PIDS[$L]}"
    [ -n "$first" ] && ET_FO+=("$first")
    log "etcd failover trial $trial: leader n$L killed, first put after ${first:-?} ms"
    etcd_start_member "$L"
  done
  etcd_stop; ETCD_UP=""
fi
record "failover: kill -9 leader -> first write, median" "$(median_of "${RK_FO[@]}")" "$(median_of "${ET_FO[@]}")" ms lower
record "failover: kill -9 leader -> first write, max" "$(max_of "${RK_FO[@]}")" "$(max_of "${ET_FO[@]}")" ms lower

# --- phase 3: follower catch-up ---------------------------------------------

RK_CU=""; ET_CU=""
if fits 60; then
  log "phase 3: raftkv catch-up of $CATCHUP_ENTRIES entries"
  out=$WORK/raftkv-catchup.json
  if timeout 180 "$RAFTKV" bench --catchup "$CATCHUP_ENTRIES" --clients 32 \
       --base-port "$RK_FAILOVER_BASE" --log-dir "$WORK/catchup-logs" --json > "$out" 2> "$WORK/raftkv-catchup.err"; then
    RK_CU=$(json_field "$out" "round(j['catchup']['round']['converged_ms'])")
  else
    log "raftkv catch-up failed: $(tail -2 "$WORK/raftkv-catchup.err" | tr '\n' ' ')"
  fi
fi
if fits 60 && [ "$ETCD_BENCH" = 1 ]; then
  # etcd: stop a follower, write the same number of keys to the leader with
  # the shared generator, restart it and poll its revision (etcdctl, every
  # ~10 ms) until it equals the leader's.
  log "phase 3: etcd catch-up of $CATCHUP_ENTRIES entries"
  etcd_fresh_start && ETCD_UP=1
  L=$(etcd_leader); F=$(( L % 3 + 1 ))
  etcd_kill_member "$F" TERM
  bench_load etcd "127.0.0.1:$((ETCD_CLIENT_BASE+L))" 32 0 "$CATCHUP_ENTRIES" etcd-catchup-load >/dev/null
  target_rev=$(etcd_revision "127.0.0.1:$((ETCD_CLIENT_BASE+L))")
  t0=$(date +%s%N)
  etcd_start_member "$F"
  while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 60000 ]; do
    rev=$(etcd_revision "127.0.0.1:$((ETCD_CLIENT_BASE+F))")
    if [ -n "$rev" ] && [ -n "$target_rev" ] && [ "$rev" -ge "$target_rev" ]; then
      ET_CU=$(( ($(date +%s%N) - t0) / 1000000 )); break
    fi
    sleep 0.01
  done
  etcd_stop; ETCD_UP=""
fi
record "catch-up: restart -> converged, $CATCHUP_ENTRIES entries behind" "$RK_CU" "$ET_CU" ms lower

# --- phase 4: raftkv-only targets (etcd is not measured: "-") -----------------

# Elections under saturating load: 64 clients x 4 pipelined over a 1M-key
# space for SATURATE_S seconds on a fresh cluster (term changes, leader
# changes and became_leader lines, the largest of the three).
SAT_EL=""; SAT_RATE=""
if fits $((SATURATE_S + 45)); then
  log "phase 4: raftkv saturating load for ${SATURATE_S} s (elections)"
  out=$WORK/raftkv-saturate.json
  if timeout $((SATURATE_S + 90)) "$RAFTKV" bench --duration "$SATURATE_S" --clients 64 --pipeline 4 \
       --keyspace 1000000 --value-size 100 --base-port "$RK_FAILOVER_BASE" --log-dir "$WORK/saturate-logs" \
       --json > "$out" 2> "$WORK/raftkv-saturate.err"; then
    SAT_EL=$(json_field "$out" "j['throughput']['elections']['elections']")
    SAT_RATE=$(json_field "$out" "round(j['throughput']['ops_per_sec'])")
    log "saturating load: $(json_field "$out" "'%d writes, term %d -> %d, %d leader changes, %s became_leader lines' % (j['throughput']['writes_ok'], j['throughput']['elections']['term_before'], j['throughput']['elections']['term_after'], j['throughput']['elections']['leader_changes'], j['throughput']['elections']['became_leader_lines'])")"
  else
    log "raftkv saturating load failed: $(tail -2 "$WORK/raftkv-saturate.err" | tr '\n' ' ')"
  fi
fi
record "64 x 4 pipelined, ${SATURATE_S} s: elections" "$SAT_EL" "" "" lower
record "64 x 4 pipelined, ${SATURATE_S} s: writes/s" "$SAT_RATE" "" "/s" higher

# Memory and a wiped follower: fill MEMORY_KEYS distinct keys (16-byte keys,
# 100-byte values), read every node's RSS, then kill -9 a follower, delete
# its data dir and time its restart until it has converged. A wiped node
# that does not converge still leaves the memory figures in the report.
MEM_RATIO=""; MEM_MAX=""; WIPED_MS=""
if fits 150; then
  log "phase 4: raftkv memory and wiped-node catch-up with $MEMORY_KEYS keys"
  out=$WORK/raftkv-memory.json
  timeout 300 "$RAFTKV" bench --memory "$MEMORY_KEYS" --catchup-wiped "$MEMORY_KEYS" --value-size 100 \
    --base-port "$RK_FAILOVER_BASE" --log-dir "$WORK/memory-logs" --json > "$out" 2> "$WORK/raftkv-memory.err"
  if [ -s "$out" ]; then
    MEM_RATIO=$(json_field "$out" "j['memory']['max_rss_to_raw']")
    MEM_MAX=$(json_field "$out" "round(max(n['rss_bytes'] for n in j['memory']['nodes']) / 1048576)")
    WIPED_MS=$(json_field "$out" "round(j['catchup_wiped']['converged_ms'])")
    log "memory: RSS per node $(json_field "$out" "', '.join('%d MiB' % (n['rss_bytes'] // 1048576) for n in j['memory']['nodes'])"), raw $(json_field "$out" "j['memory']['raw_data_bytes'] // 1048576") MiB"
    if [ -n "$WIPED_MS" ]; then
      log "wiped node: $(json_field "$out" "'via snapshot: %s, %d bytes sent' % (j['catchup_wiped']['via_snapshot'], j['catchup_wiped']['snapshot_sent_bytes'])")"
    else
      log "wiped node: $(json_field "$out" "j['catchup_wiped']['error']" | cut -c1-200)"
    fi
  else
    log "raftkv memory run failed: $(tail -2 "$WORK/raftkv-memory.err" | tr '\n' ' ')"
  fi
fi
record "$MEMORY_KEYS keys: node RSS / raw data, max of 3" "$MEM_RATIO" "" x lower
record "$MEMORY_KEYS keys: node RSS, max of 3" "$MEM_MAX" "" " MiB" lower
record "$MEMORY_KEYS keys: wiped follower start -> converged" "$WIPED_MS" "" ms lower

# The dashboard's polling on an idle cluster (bench/dashboard_cost.sh).
DASH_TOTAL=""
if ! command -v tmux >/dev/null; then
  log "dashboard cost skipped: tmux is not installed"
elif fits $((DASHBOARD_S * 3 + 30)); then
  log "phase 4: dashboard polling cost, 3 windows of ${DASHBOARD_S} s"
  if CARGO_TARGET_DIR=$TARGET_DIR timeout $((DASHBOARD_S * 3 + 60)) "$ROOT/bench/dashboard_cost.sh" \
       --seconds "$DASHBOARD_S" --base-port "$DASHBOARD_BASE" --no-build > "$WORK/dashboard.out" 2> "$WORK/dashboard.err"; then
    DASH_TOTAL=$(sed -n 's/.* total_cpu_pct=\([-0-9.]*\).*/\1/p' "$WORK/dashboard.out")
    log "dashboard: $(tail -1 "$WORK/dashboard.out")"
  else
    log "dashboard cost failed: $(tail -2 "$WORK/dashboard.err" | tr '\n' ' ')"
  fi
fi
record "dashboard polling, idle cluster: % of one core" "$DASH_TOTAL" "" "%" lower

# --- the table ---------------------------------------------------------------

BUSY_AFTER=$(busy_pct 1)
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(cd "$ROOT" && [ -n "$(git status --porcelain 2>/dev/null | grep -v '^??')" ] && echo "+local changes")
echo
echo "raftkv vs etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}'), 3 nodes each on loopback, 100-byte values, 100k keys"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $COMMIT ${DIRTY:-}  machine: $MACHINE"
echo "machine busy before/after: ${BUSY_BEFORE}%/${BUSY_AFTER}% (other work on the machine skews every figure)"
echo
python3 - "$RESULTS" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
def num(text):
    try:
        return float(text)
    except ValueError:
        return None
def show(value, unit):
    v = num(value)
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 10 else f"{v:,.0f} ms"
    if unit in ("x", "%"):
        return f"{v:,.2f}{unit}"
    return f"{v:,.0f}{unit}"
print(f"| {'figure':<52} | {'raftkv':>12} | {'etcd':>12} | {'raftkv/etcd':>11} |")
print(f"|{'-'*54}|{'-'*14}:|{'-'*14}:|{'-'*13}:|")
for figure, raftkv, etcd, unit, better in rows:
    a, b = num(raftkv), num(etcd)
    ratio = f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "-"
    print(f"| {figure:<52} | {show(raftkv, unit):>12} | {show(etcd, unit):>12} | {ratio:>11} |")
print()
print("ratio = raftkv / etcd: above 1 is better for rates, below 1 is better for times.")
PY
