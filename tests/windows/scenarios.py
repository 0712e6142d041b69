#!/usr/bin/env python3
"""ovlock's Windows build under Wine, against the situations of issue 18.

usage: scenarios.py BIN_DIR CASES_DIR

BIN_DIR holds ovlock.exe, openviking-holder.exe, other-holder.exe and the
stand-in bcryptprimitives.dll; CASES_DIR is made, one data directory per
case. Every holder says "ready <pid>" once it holds its file, and lets go
when its standard input closes: nothing here sleeps.
"""

import json
import os
import subprocess
import sys
import time

BIN, CASES = sys.argv[1], sys.argv[2]
failures = []


def win(path):
    """A Linux path as Wine's Z: drive shows it."""
    return "Z:" + os.path.abspath(path).replace("/", "\\")


def ovlock(*args):
    done = subprocess.run(
        ["wine", os.path.join(BIN, "ovlock.exe"), "--color", "never", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    return done.returncode, done.stdout, done.stderr


class Holder:
    """A holder process, started and waited for until it holds its file."""

    def __init__(self, mode, path, name="openviking-holder.exe"):
        self.proc = subprocess.Popen(
            ["wine", os.path.join(BIN, name), mode, win(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"holder {mode} {path} did not get ready: {line}")
        self.pid = int(line[1])

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def case(name):
    path = os.path.join(CASES, name)
    os.makedirs(path)
    return path


def snapshot(path):
    """Every file below `path` with its bytes and modification time."""
    found = {}
    for root, dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                found[p] = (fh.read(), os.stat(p).st_mtime_ns)
    return found


def expect(what, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
        if detail:
            print("     " + detail.replace("\n", "\n     "))


def check_exit(what, args, code):
    rc, out, err = ovlock(*args)
    expect(f"{what}: exit {code}", rc == code, f"exit {rc}\n{out}{err}")
    return out


def put_old(path):
    """Dated a minute back: a file written moments ago may be being written."""
    then = time.time() - 60
    os.utime(path, (then, then))


def dead_pid():
    """A PID no process has: a holder's, once it has exited."""
    p = case(f"dead-pid-source-{len(os.listdir(CASES))}")
    h = Holder("pidfile", os.path.join(p, "pid"))
    h.stop()
    return h.pid


os.makedirs(CASES)
started = time.monotonic()

# .openviking.lock held by OpenViking: held (1), and who names the holder.
ws = case("held")
h = Holder("lock", os.path.join(ws, ".openviking.lock"))
out = check_exit("held lock", ["check", win(ws)], 1)
expect("paths are shown with plain backslashes", out.startswith(win(ws) + ":"), out)
expect("the fix stops it with taskkill", f"taskkill /PID {h.pid}" in ovlock("status", win(ws))[1])
rc, out, err = ovlock("who", "--pid", win(ws))
expect("who --pid prints the holder's PID", rc == 0 and out.split() == [str(h.pid)], out + err)
rc, out, _ = ovlock("status", "--json", win(ws))
doc = json.loads(out)
owners = [o["pid"] for o in doc["data_dirs"][0]["owners"]]
expect("status --json names the holder", rc == 1 and owners == [h.pid], out)
expect(
    "the report says Windows shows only who has the file open",
    "only who has the file open" in out,
    out,
)
before = snapshot(ws)
for args in (["status", win(ws)], ["check", win(ws)], ["who", win(ws)]):
    ovlock(*args)
expect("read-only subcommands change nothing", snapshot(ws) == before)
rc, out, err = ovlock("clear-stale", win(ws))
expect(
    "clear-stale keeps a held .openviking.lock",
    os.path.exists(os.path.join(ws, ".openviking.lock")),
    out + err,
)
h.stop()
check_exit("the holder gone", ["check", win(ws)], 0)
ovlock("clear-stale", win(ws))
expect(
    "clear-stale never removes .openviking.lock",
    os.path.exists(os.path.join(ws, ".openviking.lock")),
)

# who --all: the OpenViking processes, with the directories they have open.
ws = case("who-all-dir")
h = Holder("lock", os.path.join(ws, ".openviking.lock"))
other = Holder("open", os.path.join(case("plain"), "notes.txt"), name="other-holder.exe")
rc, out, err = ovlock("who", "--all", "--pid")
expect("who --all --pid lists the OpenViking holder, not the other",
       str(h.pid) in out.split() and str(other.pid) not in out.split(), out + err)
rc, out, err = ovlock("who", "--all")
expect("who --all names the directory it has open", "who-all-dir" in out, out + err)
h.stop()
other.stop()

# An empty, unlocked lock file: free.
ws = case("unheld")
open(os.path.join(ws, ".openviking.lock"), "w").close()
check_exit("empty unlocked .openviking.lock", ["check", win(ws)], 0)

# Open by something that is not OpenViking: it cannot be told whether that
# holds a lock (Windows names no owner), so unknown (4), never free.
ws = case("other-opener")
h = Holder("open", os.path.join(ws, ".openviking.lock"), name="other-holder.exe")
out = check_exit("lock file open by a non-OpenViking process", ["check", win(ws)], 4)
rc, out, _ = ovlock("status", win(ws))
expect("the reason names the other process", f"PID {h.pid}" in out, out)
h.stop()

# A pid file naming a dead PID: stale (2), and clear-stale removes it.
ws = case("dead-pid")
pid_file = os.path.join(ws, ".openviking.pid")
with open(pid_file, "w") as f:
    f.write(str(dead_pid()))
check_exit("dead PID's pid file", ["check", win(ws)], 2)
rc, out, err = ovlock("clear-stale", "--dry-run", win(ws))
expect("clear-stale --dry-run keeps it", os.path.exists(pid_file), out + err)
rc, out, err = ovlock("clear-stale", win(ws))
expect("clear-stale removes it", not os.path.exists(pid_file), out + err)
expect(
    "and leaves nothing aside",
    [n for n in os.listdir(ws) if n.startswith(".openviking.pid")] == [],
    str(os.listdir(ws)),
)
check_exit("after clear-stale", ["check", win(ws)], 0)

# A pid file naming a live OpenViking process: held (1), kept.
ws = case("live-pid")
pid_file = os.path.join(ws, ".openviking.pid")
h = Holder("pidfile", pid_file)
check_exit("live OpenViking PID's pid file", ["check", win(ws)], 1)
rc, out, err = ovlock("who", "--pid", win(ws))
expect("who --pid prints the pid file's owner", out.split() == [str(h.pid)], out + err)
ovlock("clear-stale", win(ws))
expect("clear-stale keeps a live one", os.path.exists(pid_file))
h.stop()

# A stale pid file another process keeps open without delete sharing:
# clear-stale says what holds it, and the file stays.
ws = case("pid-open-elsewhere")
pid_file = os.path.join(ws, ".openviking.pid")
with open(pid_file, "w") as f:
    f.write(str(dead_pid()))
h = Holder("open", pid_file, name="other-holder.exe")
rc, out, err = ovlock("clear-stale", win(ws))
expect(
    "a pid file open elsewhere stays, and the opener is named",
    os.path.exists(pid_file) and f"PID {h.pid}" in out + err,
    f"exit {rc}\n{out}{err}",
)
h.stop()

# Path locks in the storage tree: a corrupt token and one left behind
# long ago are stale (2), and clear-stale removes them.
OLD_TOKEN = "0b6c6e4e-3b0a-4b8e-9d51-1d2c3e4f5a6b:1700000000000000000:T"
for name, token in (("corrupt", "abc-123:1700"), ("orphaned", OLD_TOKEN)):
    ws = case(f"path-lock-{name}")
    tree = os.path.join(ws, "viking", "default", "resources")
    os.makedirs(tree)
    lock = os.path.join(tree, ".path.ovlock")
    with open(lock, "w") as f:
        f.write(token)
    put_old(lock)
    check_exit(f"a {name} path lock", ["check", win(ws)], 2)
    before = snapshot(ws)
    ovlock("status", win(ws))
    ovlock("clear-stale", "--dry-run", win(ws))
    expect(f"status and --dry-run keep the {name} path lock", snapshot(ws) == before)
    rc, out, err = ovlock("clear-stale", win(ws))
    expect(f"clear-stale removes the {name} path lock", not os.path.exists(lock),
           f"exit {rc}\n{out}{err}")
    check_exit(f"after the {name} path lock went", ["check", win(ws)], 0)

# A stale-looking token whose file a live holder keeps open and locked, as
# the engine does while it refreshes or releases it: kept.
ws = case("path-lock-held")
tree = os.path.join(ws, "viking", "default", "resources")
os.makedirs(tree)
lock = os.path.join(tree, ".path.ovlock")
with open(lock, "w") as f:
    f.write(OLD_TOKEN)
put_old(lock)
h = Holder("pathlock", lock)
rc, out, err = ovlock("clear-stale", win(ws))
expect("clear-stale keeps a path lock whose file is locked", os.path.exists(lock),
       f"exit {rc}\n{out}{err}")
h.stop()
rc, out, err = ovlock("clear-stale", win(ws))
expect("and removes it once its holder let go", not os.path.exists(lock), f"exit {rc}\n{out}{err}")

# Hostile names and paths: clear errors, or plain answers, never a crash.
ws = case("non-ascii-é-日本")
check_exit("a non-ASCII directory", ["check", win(ws)], 0)
deep = os.path.join(case("long"), *(["d" * 50] * 6))
os.makedirs(deep)
# Wine's path resolution fails past MAX_PATH (error 234): unknown, with why.
rc, out, err = ovlock("check", win(deep))
expect("a path longer than MAX_PATH: an answer, not a crash", rc in (0, 4) and "panicked" not in err,
       f"exit {rc}\n{out}{err}")
for name in ("CON", "nul.txt", "COM1"):
    rc, out, err = ovlock("check", win(os.path.join(CASES, name)))
    expect(f"a reserved name ({name}) gives a clear error",
           rc == 4 and "Windows device name" in out, f"exit {rc}\n{out}{err}")

print(f"{len(failures)} failed; the scenarios took {time.monotonic() - started:.0f}s")
sys.exit(1 if failures else 0)
