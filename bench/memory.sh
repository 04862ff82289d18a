#!/usr/bin/env bash
# Node memory with 1M keys, and a wiped node's catch-up by snapshot.
#
# Starts a fresh 3-node raftkv cluster on loopback, stops one follower
# (kill -9) and deletes its data dir, loads KEYS distinct 16-byte keys
# (key:000000000000 ..) with 100-byte values into the other two through
# pipelined SETs (one per key, refused ones retried), waits until both have
# applied the same index with the same digest and KEYS keys, waits SETTLE_S
# seconds, and prints their VmRSS / RssAnon / RssFile / VmHWM
# (/proc/PID/status) and the ratio of VmRSS to the raw data (KEYS x 116
# bytes). Then it starts the wiped follower again and prints the time from
# its process start until its applied index and digest equal the leader's
# (polled through RAFT.STATUS; it can only get there through a snapshot),
# waits SETTLE_S seconds and prints all three nodes' figures.
#
# The follower is wiped before the load, not after: a leader never sends a
# follower again what that follower acknowledged, so a node that lost
# acknowledged entries (as a wiped one does) waits for the next leader.
#
# Usage: bench/memory.sh [--no-build]
#   --no-build  use the binary already in $CARGO_TARGET_DIR (or target)/release
# Environment: KEYS (default 1000000), SETTLE_S (default 5), BASE_PORT
# (default 18400: clients on BASE+i, peers on BASE+100+i), KEEP=1 keeps the
# work dir (data dirs, node logs) for inspection.
#
# Cleans up every process and directory it started. Not part of CI.
set -u
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1000000}
SETTLE_S=${SETTLE_S:-5}
BASE=${BASE_PORT:-18400}
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "memory.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
command -v redis-cli >/dev/null || { echo "memory.sh: needs redis-cli (apt-get install redis-tools)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "memory.sh: needs python3" >&2; exit 2; }

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NODE=$TARGET_DIR/release/raftkv-node
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -q -p raftkv-node --bin raftkv-node) || exit 2
fi
[ -x "$NODE" ] || { echo "memory.sh: $NODE not built" >&2; exit 2; }

WORK=$(mktemp -d /tmp/raftkv-memory.XXXXXX)
PIDS=()
STARTED_S=$(date +%s)
log() { echo "[memory $(( $(date +%s) - STARTED_S ))s] $*" >&2; }
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "memory.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CLUSTER="1=127.0.0.1:$((BASE+101)),2=127.0.0.1:$((BASE+102)),3=127.0.0.1:$((BASE+103))"
declare -A NODE_PID
start_node() { # id
  local i=$1
  mkdir -p "$WORK/logs"
  setsid "$NODE" --id "$i" --client "127.0.0.1:$((BASE+i))" --peer "127.0.0.1:$((BASE+100+i))" \
    --cluster "$CLUSTER" --data-dir "$WORK/node-$i" --log-dir "$WORK/logs" \
    </dev/null >>"$WORK/node-$i.out" 2>&1 &
  NODE_PID[$i]=$!
  PIDS+=("$!")
  disown "$!"
}
field() { # port name -> value of one RAFT.STATUS field
  redis-cli -p "$1" RAFT.STATUS 2>/dev/null | awk -v want="$2" 'prev == want { print; exit } { prev = $0 }'
}
leader_port() {
  local i
  for i in 1 2 3; do
    [ "$(field $((BASE+i)) role)" = leader ] && { echo $((BASE+i)); return; }
  done
}
mem_line() { # id -> one line of memory figures
  local i=$1 pid=${NODE_PID[$1]} raw_kb=$(( KEYS * 116 / 1024 ))
  awk -v id="$i" -v raw="$raw_kb" '
    /^VmRSS/ { rss = $2 } /^RssAnon/ { anon = $2 } /^RssFile/ { file = $2 } /^VmHWM/ { hwm = $2 }
    END { printf "node %s  VmRSS %7.1f MB  RssAnon %7.1f MB  RssFile %6.1f MB  VmHWM %7.1f MB  VmRSS/raw %.2fx\n",
          id, rss/1024, anon/1024, file/1024, hwm/1024, rss/raw }' "/proc/$pid/status"
}
status_line() { # id
  local p=$((BASE+$1))
  echo "node $1  role $(field "$p" role)  applied $(field "$p" applied_index)  first $(field "$p" first_index)  snapshot $(field "$p" snapshot_index)  keys $(field "$p" keys)"
}
LIVE="1 2 3"
converged() { # -> 0 when the live nodes show the same applied index and digest and KEYS keys
  local i a d k a0="" d0=""
  for i in $LIVE; do
    a=$(field $((BASE+i)) applied_index); d=$(field $((BASE+i)) digest); k=$(field $((BASE+i)) keys)
    [ -n "$a" ] && [ "$k" = "$KEYS" ] || return 1
    if [ -z "$a0" ]; then a0=$a; d0=$d; elif [ "$a" != "$a0" ] || [ "$d" != "$d0" ]; then return 1; fi
  done
}
cpu_s() { # pid -> user+system CPU seconds so far
  awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"
}
report() { # ids...
  local i
  for i in "$@"; do status_line "$i"; done
  for i in "$@"; do mem_line "$i"; done
  for i in "$@"; do echo "node $i  CPU so far $(cpu_s "${NODE_PID[$i]}") s"; done
}

log "binary $NODE ($(date -u -r "$NODE" +%H:%M:%SZ)), $KEYS keys, work dir $WORK"
for i in 1 2 3; do start_node "$i"; done
deadline=$(( $(date +%s) + 30 ))
while [ -z "$(leader_port)" ]; do
  [ "$(date +%s)" -lt $deadline ] || { log "no leader in 30 s"; exit 1; }
  sleep 0.1
done
LEADER=$(leader_port)
FOLLOWER=""
for i in 1 2 3; do [ $((BASE+i)) != "$LEADER" ] && { FOLLOWER=$i; break; }; done
kill -KILL "${NODE_PID[$FOLLOWER]}"
while kill -0 "${NODE_PID[$FOLLOWER]}" 2>/dev/null; do sleep 0.05; done
rm -rf "$WORK/node-$FOLLOWER"
LIVE=""
for i in 1 2 3; do [ "$i" != "$FOLLOWER" ] && LIVE="$LIVE $i"; done
log "leader on port $LEADER; node $FOLLOWER stopped and wiped; loading $KEYS keys"
load_start=$(date +%s.%N)
python3 - "$KEYS" "$LEADER" <<'EOF' >"$WORK/load.out" 2>&1 || { log "load failed: $(tail -3 "$WORK/load.out")"; exit 1; }
# Pipelined SETs with a bounded window. Refused writes are sent again until
# every key is in: -MOVED reconnects to the leader it names, other errors
# (-TRYAGAIN, -CLUSTERDOWN) back off briefly first.
import collections, socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
WINDOW_MAX = 2000
def command(i):
    key = b"key:%012d" % i
    value = (b"value-%012d-" % i).ljust(100, b"x")
    return b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n$100\r\n%s\r\n" % (key, value)
pending = collections.deque(range(n))
errors = collections.Counter()
deadline = time.time() + 600
while pending:
    if time.time() > deadline:
        sys.exit("not loaded in 600 s: %s" % dict(errors))
    sock = socket.create_connection(("127.0.0.1", port))
    in_flight = collections.deque()
    buf = b""
    moved_to = None
    while (pending or in_flight) and moved_to is None:
        batch = []
        while pending and len(in_flight) < WINDOW_MAX:
            i = pending.popleft()
            in_flight.append(i)
            batch.append(command(i))
        if batch:
            sock.sendall(b"".join(batch))
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
        lines = buf.split(b"\r\n")
        buf = lines.pop()
        backoff = False
        for line in lines:
            i = in_flight.popleft()
            if line.startswith(b"+OK"):
                continue
            errors[line.split(b" ")[0].decode(errors="replace")] += 1
            pending.append(i)
            if line.startswith(b"-MOVED"):
                moved_to = int(line.split(b":")[-1])
            else:
                backoff = True
        if backoff:
            time.sleep(0.05)
    sock.close()
    pending.extend(in_flight)
    if moved_to is not None:
        port = moved_to
    elif pending:
        time.sleep(0.2)
print("errors retried:", dict(errors) or "none")
EOF
load_end=$(date +%s.%N)
log "load: $(tail -1 "$WORK/load.out") in $(python3 -c "print(round($load_end - $load_start, 1))") s"
deadline=$(( $(date +%s) + 120 ))
until converged; do
  [ "$(date +%s)" -lt $deadline ] || { log "not converged in 120 s"; report $LIVE; exit 1; }
  sleep 0.2
done
LEADER=$(leader_port)
log "converged (leader on port $LEADER); settling $SETTLE_S s"
sleep "$SETTLE_S"
echo "== after loading $KEYS keys ($(date -u +%H:%M:%SZ)), raw data $(( KEYS * 116 / 1000000 )) MB"
report $LIVE

start=$(date +%s.%N)
start_node "$FOLLOWER"
deadline=$(( $(date +%s) + 60 ))
p=$((BASE+FOLLOWER))
# Against the leader of the moment (an election adds an entry and may move it).
until LEADER=$(leader_port) && [ -n "$LEADER" ] \
    && leader_applied=$(field "$LEADER" applied_index) && leader_digest=$(field "$LEADER" digest) \
    && [ "$(field "$p" applied_index)" = "$leader_applied" ] && [ "$(field "$p" digest)" = "$leader_digest" ]; do
  [ "$(date +%s)" -lt $deadline ] || { log "wiped node $FOLLOWER not converged in 60 s"; report 1 2 3; exit 1; }
  sleep 0.02
done
end=$(date +%s.%N)
echo "== wiped node $FOLLOWER converged $(python3 -c "print(round($end - $start, 2))") s after its process started (applied $leader_applied)"
sleep "$SETTLE_S"
echo "== all three nodes, $SETTLE_S s later ($(date -u +%H:%M:%SZ))"
report 1 2 3
grep -h '"snapshot_sent"\|"snapshot_installed"\|"snapshot_restored"' "$WORK"/logs/node-*.log 2>/dev/null | tail -4 | cut -c1-300
