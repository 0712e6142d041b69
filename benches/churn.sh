#!/usr/bin/env bash
# Benchmark, not a test: what reading /proc/locks with care costs `ovlock
# check`, on a held data directory whose lock table is longer than a page,
# with the host quiet and with other processes taking and releasing locks
# (two flock loops and a SQLite write loop); and how often each reader misses
# the held lock there.
#
#   benches/churn.sh [RUNS]        (default: 300 runs for the miss counts)
#
# Two tables:
#   cost    mean time of ovlock check and lslocks, quiet and churning (hyperfine)
#   misses  of RUNS runs over 300 held directories: how many said one was free
#           (ovlock check) or lacked its lock (lslocks)
#
# Needs hyperfine, lslocks (util-linux) and python3; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in hyperfine lslocks python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install hyperfine util-linux python3)" >&2; exit 1; }
done
runs=${1:-300}
cargo build --release --quiet
ovlock=$PWD/target/release/ovlock
churn=$PWD/tests/it/support/churn.py

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME ARGS...: churn.py ARGS in the background, until its "ready".
start() {
  local name=$1; shift
  python3 "$churn" "$@" < <(sleep 3600) >"$work/$name.out" &
  pids+=($!)
  until grep -q ready "$work/$name.out" 2>/dev/null; do sleep 0.05; done
}

# 300 held directories, 15 to a process: wherever a read of the table is
# cut, one of their locks is next.
mkdir -p "$work/churn"
for k in $(seq 0 19); do
  mkdir -p "$work/held-$k"
  start "hold-$k" hold "$work/held-$k" 15 openviking-server
done
dirs=("$work"/held-*/ws-*)
one=${dirs[0]}

measure() {  # measure LABEL NAME COMMAND [NAME COMMAND...]
  local label=$1; shift
  local args=()
  while [ $# -gt 0 ]; do args+=(-n "$1" "$2"); shift 2; done
  hyperfine --style none --warmup 3 --min-runs 30 -N -i --export-json "$work/h.json" "${args[@]}" >/dev/null 2>&1
  python3 - "$work/h.json" "$label" <<'PY'
import json, sys
results = [(r["command"], r["mean"] * 1000) for r in json.load(open(sys.argv[1]))["results"]]
base = results[0][1]
for name, mean in results:
    print(f"cost   {sys.argv[2]:<9} {name:<22} {mean:10.2f} {mean / base:9.1f}x")
PY
}

misses() {  # misses LABEL: RUNS runs of each reader over every held directory
  local label=$1 ov=0 ll=0
  for _ in $(seq "$runs"); do
    "$ovlock" check "${dirs[@]}" | grep -q ': free\|: stale' && ov=$((ov + 1))
  done
  for _ in $(seq "$runs"); do
    seen=$(lslocks -n -r -o TYPE,PATH | awk '$1 == "FLOCK" {print $2}' | grep -c '/ws-[0-9]*/.openviking.lock$' || true)
    [ "$seen" -lt "${#dirs[@]}" ] && ll=$((ll + 1))
  done
  printf 'misses %-9s ovlock check said free: %d/%d   lslocks lacked a held lock: %d/%d\n' \
    "$label" "$ov" "$runs" "$ll" "$runs"
}

echo "lock table: $(wc -l </proc/locks) lines"
printf '%-6s %-9s %-22s %10s %10s\n' "what" "host" "command" "mean (ms)" "vs ovlock"
measure quiet "ovlock check" "$ovlock -q check $one" "lslocks" "lslocks -n -o PID,PATH"
misses quiet

start flocks-1 flocks "$work/churn"
start flocks-2 flocks "$work/churn"
start sqlite sqlite "$work/churn"
measure churning "ovlock check" "$ovlock -q check $one" "lslocks" "lslocks -n -o PID,PATH"
misses churning
