#!/usr/bin/env bash
# Benchmark, not a test: what finding OpenViking's path locks costs `ovlock
# check` on a large storage tree, against the tools a user would otherwise
# reach for, side by side in one hyperfine run.
#
#   benches/path_locks.sh [FILES] [DIRS] [LOCKS]     (default: 100000 1000 40)
#
# The tree is WS/viking/default/resources/dNNNN/, FILES spread over DIRS
# directories, with LOCKS lock files among them (`.path.ovlock` and
# `.exact.ovlock.*` sidecars of real files), and no server: check walks the
# whole tree and answers `stale`. It is timed warm, as a tree that check
# visits every time stays in the page cache.
#
#   ovlock check WS                                         (release build)
#   find WS -name .path.ovlock -o -name '.exact.ovlock.*'
#   fdfind (or fd) -HI -uu -g '{.path.ovlock,.exact.ovlock.*}' WS, if installed
#
# Needs hyperfine and python3; fd is optional (apt-get install fd-find).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in hyperfine python3 find; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install hyperfine python3 findutils)" >&2; exit 1; }
done
fd=$(command -v fdfind || command -v fd || true)
files=${1:-100000}
dirs=${2:-1000}
locks=${3:-40}

cargo build --release --quiet
ovlock=${CARGO_TARGET_DIR:-$PWD/target}/release/ovlock

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ws=$work/ws

python3 - "$ws" "$files" "$dirs" "$locks" <<'PY'
import hashlib, os, re, sys, time
ws, files, dirs, locks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
root = os.path.join(ws, "viking", "default", "resources")
now = time.time_ns()
def token(kind):
    return f"0b9c6e1e-6a53-4b8e-9d0f-2f5bd1f3c1a7:{now}:{kind}".encode()
def sidecar(engine_path):
    base = engine_path.rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80] or "path"
    return f".exact.ovlock.{safe}.{hashlib.sha1(engine_path.encode()).hexdigest()[:16]}"
per_dir = files // dirs
for d in range(dirs):
    path = os.path.join(root, f"d{d:04d}")
    os.makedirs(path)
    for f in range(per_dir):
        open(os.path.join(path, f"doc{f:05d}.md"), "wb").close()
# Half tree locks on directories, half exact locks on files, spread out.
step = max(1, dirs // max(1, locks))
for i in range(locks):
    d = (i * step) % dirs
    path = os.path.join(root, f"d{d:04d}")
    if i % 2 == 0:
        name = ".path.ovlock"
        content = token("T")
    else:
        name = sidecar(f"/local/default/resources/d{d:04d}/doc00000.md")
        content = token("E")
    with open(os.path.join(path, name), "wb") as out:
        out.write(content)
PY

count() { "$@" | wc -l; }
echo "tree: $(find "$ws" -type f | wc -l) files in $(find "$ws" -type d | wc -l) directories"
echo "lock files: find $(count find "$ws" -name .path.ovlock -o -name '.exact.ovlock.*')" \
  "${fd:+, fd $(count "$fd" -HI -uu -g '{.path.ovlock,.exact.ovlock.*}' "$ws")}"
# check's own view: the verdict and the exit code (2, stale, with no server).
"$ovlock" check "$ws" || true

args=(-n "ovlock check" "$ovlock -q check $ws"
      -n "find" "find $ws -name .path.ovlock -o -name .exact.ovlock.*")
[ -n "$fd" ] && args+=(-n "fd" "$fd -HI -uu -g {.path.ovlock,.exact.ovlock.*} $ws")
hyperfine --style none --warmup 3 --min-runs 20 -N -i --export-json "$work/h.json" "${args[@]}" >/dev/null 2>&1
python3 - "$work/h.json" <<'PY'
import json, sys
results = [(r["command"], r["mean"] * 1000, r["stddev"] * 1000) for r in json.load(open(sys.argv[1]))["results"]]
base = results[0][1]
print(f"{'command':<14} {'mean (ms)':>10} {'± (ms)':>8} {'vs ovlock':>10}")
for name, mean, sd in results:
    print(f"{name:<14} {mean:10.2f} {sd:8.2f} {mean / base:9.1f}x")
PY
