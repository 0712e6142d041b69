#!/usr/bin/env bash
# Benchmark: what `ovlock check` costs on a held data directory as the machine
# fills with processes, against the tools a user would otherwise reach for on
# the same lock file (lslocks, fuser, lsof). Not a test: it prints a table.
#
#   benches/check-cost.sh [EXTRA_PROCESS_COUNTS...]     (default: 0 2000 10000)
#
# Needs hyperfine, lslocks (util-linux), fuser (psmisc) and lsof; run as root
# so that every tool can see every process.
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
  [ -n "$idle_pgid" ] && kill -- "-$idle_pgid" 2>/dev/null || true
  [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A held directory: one process holding the flock, as OpenViking 0.4.21+ does.
mkdir "$work/data"
exec 3< <(exec python3 -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print(os.getpid(), flush=True)
time.sleep(3600)' "$work/data/.openviking.lock")
read -r holder <&3

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(0 2000 10000)
lock="$work/data/.openviking.lock"
printf '%-8s %-10s %12s %10s\n' "extra" "command" "mean (ms)" "vs ovlock"
for n in "${counts[@]}"; do
  [ -n "$idle_pgid" ] && { kill -- "-$idle_pgid" 2>/dev/null || true; idle_pgid=""; }
  if [ "$n" -gt 0 ]; then
    # N idle processes in their own process group, so they go in one kill.
    setsid bash -c "for i in \$(seq $n); do sleep 3600 & done; wait" &
    idle_pgid=$!
    until [ "$(pgrep -c -g "$idle_pgid" sleep)" -ge "$n" ]; do :; done
  fi
  hyperfine --style none --warmup 3 --min-runs 20 -N -i --export-json "$work/h.json" \
    -n ovlock "$ovlock -q check $work/data" \
    -n lslocks "lslocks -n -o PID,PATH" \
    -n fuser "fuser $lock" \
    -n lsof "lsof -n $lock" >/dev/null 2>&1 || true
  python3 - "$work/h.json" "$n" <<'PY'
import json, sys
results = {r["command"]: r["mean"] * 1000 for r in json.load(open(sys.argv[1]))["results"]}
base = results["ovlock"]
for name, mean in results.items():
    print(f"{sys.argv[2]:<8} {name:<10} {mean:12.2f} {mean / base:9.1f}x")
PY
done
