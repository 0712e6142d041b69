#!/usr/bin/env bash
# Benchmark, not a test: what ovlock costs on a held data directory as the
# machine fills with idle processes, against the tools a user would otherwise
# reach for, in the same run.
#
#   benches/cost.sh [EXTRA_PROCESS_COUNTS...]      (default: 0 2000 10000)
#
# Three questions, three tables:
#   check    who holds the lock?      ovlock check         vs lslocks, fuser FILE, lsof FILE
#   scan     who uses the directory?  ovlock check --scan  vs fuser -v DIR, lsof +D DIR
#   metrics  what does a fleet see?   ovlock metrics --all vs ovlock status (one survey)
#
# Needs hyperfine, lslocks (util-linux), fuser (psmisc), lsof and python3;
# run as root so that every tool can see every process.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in hyperfine lslocks fuser lsof python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install hyperfine util-linux psmisc lsof python3)" >&2; exit 1; }
done
cargo build --release --quiet
ovlock=$PWD/target/release/ovlock

work=$(mktemp -d)
idle_pgid=""
cleanup() {
  [ -n "$idle_pgid" ] && { kill -- "-$idle_pgid" 2>/dev/null || true; }
  [ -n "${holder:-}" ] && { kill "$holder" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# A data directory laid out and held as a real OpenViking 0.5.2 server does:
# a flock on .openviking.lock, a POSIX lock on RocksDB's LOCK, SQLite files open.
data=$work/data
mkdir -p "$data/vectordb/context/store" "$data/_system/queue"
for i in $(seq 200); do : > "$data/vectordb/context/store/$(printf '%06d' "$i").sst"; done
exec 3< <(exec python3 -c '
import fcntl, os, sys, time
d = sys.argv[1]
fd = os.open(d + "/.openviking.lock", os.O_CREAT | os.O_RDWR, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
rocks = open(d + "/vectordb/context/store/LOCK", "a+")
fcntl.lockf(rocks, fcntl.LOCK_EX | fcntl.LOCK_NB)
queue = open(d + "/_system/queue/queue.db", "a+")
print(os.getpid(), flush=True)
time.sleep(3600)' "$data" openviking-server)
read -r holder <&3

measure() {  # measure EXTRA LABEL NAME COMMAND [NAME COMMAND...]
  local extra=$1 label=$2; shift 2
  local args=()
  while [ $# -gt 0 ]; do args+=(-n "$1" "$2"); shift 2; done
  hyperfine --style none --warmup 2 --min-runs 10 -N -i --export-json "$work/h.json" "${args[@]}" >/dev/null 2>&1
  python3 - "$work/h.json" "$extra" "$label" <<'PY'
import json, sys
results = [(r["command"], r["mean"] * 1000) for r in json.load(open(sys.argv[1]))["results"]]
base = results[0][1]
for name, mean in results:
    print(f"{sys.argv[3]:<6} {sys.argv[2]:<7} {name:<20} {mean:10.2f} {mean / base:9.1f}x")
PY
}

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(0 2000 10000)
lock="$data/.openviking.lock"
printf '%-6s %-7s %-20s %10s %10s\n' "what" "extra" "command" "mean (ms)" "vs ovlock"
for n in "${counts[@]}"; do
  [ -n "$idle_pgid" ] && { kill -- "-$idle_pgid" 2>/dev/null || true; idle_pgid=""; }
  if [ "$n" -gt 0 ]; then
    # N idle processes in their own process group, so they go in one kill.
    setsid bash -c "for i in \$(seq $n); do sleep 3600 & done; wait" &
    idle_pgid=$!
    until [ "$(pgrep -c -g "$idle_pgid" sleep)" -ge "$n" ]; do :; done
  fi
  measure "$n" check \
    "ovlock check" "$ovlock -q check $data" \
    "lslocks" "lslocks -n -o PID,PATH" \
    "fuser FILE" "fuser $lock" \
    "lsof FILE" "lsof -n $lock"
  measure "$n" scan \
    "ovlock check --scan" "$ovlock -q check --scan $data" \
    "fuser -v DIR" "fuser -v $data" \
    "lsof +D DIR" "lsof -n +D $data"
  measure "$n" metrics \
    "ovlock metrics --all" "$ovlock metrics --all $data" \
    "ovlock status" "$ovlock -q status $data"
done
