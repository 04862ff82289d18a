#!/usr/bin/env bash
# What the dashboard's polling costs on an idle cluster.
#
# Starts a 3-node cluster with `raftkv up`, then measures three windows of
# SECONDS each on the same node processes:
#   1. the cluster alone (baseline),
#   2. with the real dashboard (`raftkv tui --attach <the nodes> --log-dir
#      <their logs>`, in a private tmux server, 120x40) polling it: every
#      node's RAFT.STATUS every 150 ms and the node logs every 50 ms, the
#      same work the dashboard does on a cluster it starts itself,
#   3. the cluster alone again (the baseline is the mean of 1 and 3).
# CPU is utime + stime from /proc/<pid>/stat over each window, as % of one
# core. Reported: the dashboard process's CPU, the nodes' CPU in each window,
# the extra the nodes spent while the dashboard ran, and the total (the
# dashboard plus that extra; a negative extra is noise and counts as 0).
#
# Usage: bench/dashboard_cost.sh [--seconds N] [--base-port P] [--no-build]
#   --seconds N    length of each window (default 20)
#   --base-port P  nodes listen on P+1..P+3 (clients) and P+101..P+103 (peers); default 17900
#   --no-build     use the raftkv already in the target dir
# Needs tmux. The last line is machine-readable:
#   dashboard_cost dashboard_cpu_pct=.. nodes_extra_cpu_pct=.. total_cpu_pct=.. nodes_baseline_cpu_pct=.. nodes_with_dashboard_cpu_pct=.. seconds=..
# Everything it starts is stopped at the end (also on Ctrl-C or error).
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_WINDOW=20
BASE=17900
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_WINDOW=${2:?--seconds needs a number}; shift ;;
    --base-port) BASE=${2:?--base-port needs a port}; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "dashboard_cost.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$SECONDS_PER_WINDOW" in
  ''|*[!0-9]*|0) echo "dashboard_cost.sh: --seconds must be a whole number above 0" >&2; exit 2 ;;
esac
command -v tmux >/dev/null || { echo "dashboard_cost.sh: needs tmux (apt-get install tmux)" >&2; exit 1; }

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RAFTKV=$TARGET_DIR/release/raftkv
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p raftkv-tui) || { echo "dashboard_cost.sh: build failed" >&2; exit 1; }
fi
[ -x "$RAFTKV" ] || { echo "dashboard_cost.sh: $RAFTKV is missing (drop --no-build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/raftkv-dashboard-cost.XXXXXX)
TMUX_SOCKET="raftkv-dashboard-cost-$$"
UP_PID=""
log() { echo "[dashboard_cost] $*" >&2; }

cleanup() {
  [ "$BASHPID" = "$$" ] || return 0
  tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID" 2>/dev/null          # `up` stops its nodes gracefully
    local tries=0
    while kill -0 "$UP_PID" 2>/dev/null && [ $tries -lt 1500 ]; do sleep 0.01; tries=$((tries + 1)); done
    kill -KILL "$UP_PID" 2>/dev/null
  fi
  local pid
  for pid in ${NODE_PIDS:-}; do kill -KILL "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

ADDRS="127.0.0.1:$((BASE+1)),127.0.0.1:$((BASE+2)),127.0.0.1:$((BASE+3))"
TICKS_PER_S=$(getconf CLK_TCK)

# utime + stime of the given pids, in clock ticks (a pid that is gone counts 0).
cpu_ticks() {
  local total=0 pid stat fields
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a fields <<< "${stat##*) }"   # the fields after "pid (comm) ", from field 3
    total=$((total + fields[11] + fields[12]))   # utime, stime: fields 14 and 15
  done
  echo "$total"
}
now_ns() { date +%s%N; }
# cpu_pct TICKS NS: ticks over a window of NS nanoseconds, as % of one core (2 decimals).
cpu_pct() { awk -v t="$1" -v ns="$2" -v hz="$TICKS_PER_S" 'BEGIN { printf "%.2f", 100 * (t / hz) / (ns / 1e9) }'; }

# --- the cluster ---------------------------------------------------------------
"$RAFTKV" up --fresh --base-port "$BASE" --data-dir "$WORK/data" --log-dir "$WORK/logs" \
  </dev/null >"$WORK/up.out" 2>&1 &
UP_PID=$!
deadline=$(( $(date +%s) + 30 ))
NODE_PIDS=""
while [ "$(date +%s)" -lt $deadline ]; do
  NODE_PIDS=$(awk '/^  node [0-9]+ .* pid [0-9]+/ {print $NF}' "$WORK/up.out" | tr '\n' ' ')
  if [ "$(echo $NODE_PIDS | wc -w)" = 3 ] \
     && "$RAFTKV" kv --cluster "$ADDRS" wait-converged --timeout-ms 1000 >/dev/null 2>&1; then
    break
  fi
  kill -0 "$UP_PID" 2>/dev/null || { log "raftkv up exited: $(tail -3 "$WORK/up.out")"; exit 1; }
  sleep 0.2
done
[ "$(echo $NODE_PIDS | wc -w)" = 3 ] || { log "the cluster did not start: $(tail -3 "$WORK/up.out")"; exit 1; }
"$RAFTKV" kv --cluster "$ADDRS" wait-converged --timeout-ms 20000 >/dev/null \
  || { log "the cluster did not converge"; exit 1; }
log "cluster up (node pids $NODE_PIDS); windows of ${SECONDS_PER_WINDOW} s"

# window PIDS...: sleeps one window; prints "<node ticks> <extra ticks> <ns>"
# where extra is the ticks of $EXTRA_PID (the dashboard) when set.
window() {
  local n0 e0 t0 n1 e1 t1
  n0=$(cpu_ticks $NODE_PIDS); e0=$(cpu_ticks ${EXTRA_PID:-}); t0=$(now_ns)
  sleep "$SECONDS_PER_WINDOW"
  n1=$(cpu_ticks $NODE_PIDS); e1=$(cpu_ticks ${EXTRA_PID:-}); t1=$(now_ns)
  echo "$((n1 - n0)) $((e1 - e0)) $((t1 - t0))"
}

# Let start-up work (first elections, log flushes) settle first.
sleep 1
EXTRA_PID=""
read -r BASE1_TICKS _ BASE1_NS < <(window)
log "window 1 (cluster alone): nodes $(cpu_pct "$BASE1_TICKS" "$BASE1_NS")% of a core"

# --- the dashboard, in a private tmux server -----------------------------------
tmux -L "$TMUX_SOCKET" new-session -d -s cost -x 120 -y 40 \
  "exec '$RAFTKV' tui --attach '$ADDRS' --log-dir '$WORK/logs'"
PANE_PID=$(tmux -L "$TMUX_SOCKET" display-message -p -t cost '#{pane_pid}')
DASH_PID=$PANE_PID
# The dashboard must be drawing and polling (its node rows show a role).
deadline=$(( $(date +%s) + 20 ))
until tmux -L "$TMUX_SOCKET" capture-pane -p -t cost 2>/dev/null | grep -q -i 'leader'; do
  if [ "$(date +%s)" -ge $deadline ]; then
    log "the dashboard did not show the cluster within 20 s; screen:"
    tmux -L "$TMUX_SOCKET" capture-pane -p -t cost >&2
    exit 1
  fi
  sleep 0.1
done
[ "$(cat "/proc/$DASH_PID/comm" 2>/dev/null)" = raftkv ] \
  || { log "pid $DASH_PID is not the dashboard ($(cat "/proc/$DASH_PID/comm" 2>/dev/null))"; exit 1; }
sleep 1
EXTRA_PID=$DASH_PID
read -r DASHWIN_NODE_TICKS DASH_TICKS DASHWIN_NS < <(window)
log "window 2 (with the dashboard): nodes $(cpu_pct "$DASHWIN_NODE_TICKS" "$DASHWIN_NS")%, dashboard $(cpu_pct "$DASH_TICKS" "$DASHWIN_NS")% of a core"
kill -0 "$DASH_PID" 2>/dev/null || { log "the dashboard exited during the window"; exit 1; }
tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null
tries=0
while kill -0 "$DASH_PID" 2>/dev/null && [ $tries -lt 500 ]; do sleep 0.01; tries=$((tries + 1)); done

sleep 1
EXTRA_PID=""
read -r BASE2_TICKS _ BASE2_NS < <(window)
log "window 3 (cluster alone again): nodes $(cpu_pct "$BASE2_TICKS" "$BASE2_NS")% of a core"

# --- report ----------------------------------------------------------------------
BASELINE=$(awk -v a="$(cpu_pct "$BASE1_TICKS" "$BASE1_NS")" -v b="$(cpu_pct "$BASE2_TICKS" "$BASE2_NS")" 'BEGIN { printf "%.2f", (a + b) / 2 }')
WITH=$(cpu_pct "$DASHWIN_NODE_TICKS" "$DASHWIN_NS")
DASH=$(cpu_pct "$DASH_TICKS" "$DASHWIN_NS")
EXTRA=$(awk -v w="$WITH" -v b="$BASELINE" 'BEGIN { printf "%.2f", w - b }')
TOTAL=$(awk -v d="$DASH" -v e="$EXTRA" 'BEGIN { printf "%.2f", d + (e > 0 ? e : 0) }')
echo "dashboard polling cost, idle 3-node cluster, ${SECONDS_PER_WINDOW} s windows, $(nproc) cpus, CPU as % of one core"
echo "  dashboard process (raftkv tui --attach)       ${DASH}%"
echo "  nodes, cluster alone (mean of 2 windows)      ${BASELINE}%  ($(cpu_pct "$BASE1_TICKS" "$BASE1_NS")% / $(cpu_pct "$BASE2_TICKS" "$BASE2_NS")%)"
echo "  nodes, with the dashboard polling             ${WITH}%"
echo "  nodes' extra for the dashboard                ${EXTRA}%"
echo "  total cost (dashboard + nodes' extra)         ${TOTAL}%  (target: < 2%)"
echo "dashboard_cost dashboard_cpu_pct=$DASH nodes_extra_cpu_pct=$EXTRA total_cpu_pct=$TOTAL nodes_baseline_cpu_pct=$BASELINE nodes_with_dashboard_cpu_pct=$WITH seconds=$SECONDS_PER_WINDOW"
