"""Test helper for ovlock's race tests: OpenViking 0.4.20 servers that keep
taking over a stale .openviking.pid while clear-stale runs.

    python3 racer.py TAG

TAG only shapes the command line (one containing "openviking" makes this
process, and the servers it forks, look like OpenViking). The rest travels
in the environment, because the lock file's own name contains "openviking":

  RACE_PATH   the pid file (DIR/.openviking.pid);
  RACE_DEAD   a PID that has exited: the content of the first stale file;
  RACE_MIN    the least number of takeovers before it may stop;
  RACE_STALE_DWELL_MS, RACE_LIVE_DWELL_MS
              at most this long (at random, half of the time) in the stale
              state, and in the live state before the check;
  RACE_WAIT_EVERY
              every this many takeovers, leave the stale file alone until a
              clear-stale run has removed it (or 10 s have passed), so that
              removals happen and the test can tell it ran;
  RACE_SEED   the seed of the randomness.

Each iteration is one server's life, as it happens for real:
  1. a stale pid file names a PID that has exited (the first time the file is
     written with RACE_DEAD; afterwards it is the file of the previous server,
     untouched since it was killed);
  2. a new server (a forked child) takes over exactly as OpenViking 0.4.20
     does: open(path, "w").write(str(os.getpid())), truncate and write in the
     same inode, or a new file if the old one is gone. It keeps a duplicate of
     that descriptor, so the fate of this very inode can be told;
  3. before it is killed, the server checks that the file at the path is still
     its inode and still names it. If not, a clear-stale run may have moved it
     aside (".openviking.pid.ovlock-clearing-PID") to check it, and must put
     it back: the server looks for its inode, and back at the path is a
     transient absence (counted, not a violation). Unlinked, or left aside
     after the clear-stale run that moved it has exited: a live lock was
     removed, a violation;
  4. the server is killed with SIGKILL and reaped: its file stays, naming a PID
     that has exited, and is the stale file of the next iteration.

It prints "ready PID" once it has started, "takeovers N" every 50
takeovers, and iterates until it has done RACE_MIN takeovers and a line (or
EOF) has arrived on stdin; then it prints
"done takeovers=N violations=V transient=T waits=W" and, for each violation,
a line "violation: WHAT", and exits 0.
"""

import os
import random
import select
import signal
import sys
import time

PID_NAME = ".openviking.pid"
ASIDE_PREFIX = PID_NAME + ".ovlock-clearing-"
# How long a clear-stale run may keep a live lock aside before that counts as
# lost even though the run is still alive (it never is, by far: a safety net
# so that a hung run cannot hang the test).
ASIDE_LIMIT = 10.0


def read(path):
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_ino, f.read()
    except FileNotFoundError:
        return None, None


def locate(directory, ino):
    """The name our inode has in the directory now, or None."""
    for name in os.listdir(directory):
        try:
            if os.lstat(os.path.join(directory, name)).st_ino == ino:
                return name
        except FileNotFoundError:
            pass
    return None


def clearer_alive(name):
    pid = name[len(ASIDE_PREFIX):]
    return pid.isdigit() and os.path.exists("/proc/%s" % pid)


def check(path, keep, ino, me):
    """Step 3: "ok", "transient", or a violation's description."""
    now_ino, content = read(path)
    if now_ino == ino and content == me:
        return "ok"
    directory = os.path.dirname(path)
    deadline = time.monotonic() + ASIDE_LIMIT
    while True:
        if os.fstat(keep).st_nlink == 0:
            return "the live pid file (inode %d) was unlinked" % ino
        name = locate(directory, ino)
        if name == PID_NAME:
            now_ino, content = read(path)
            if now_ino == ino:
                if content == me:
                    return "transient"
                return "the live pid file was changed to %r" % content
        elif name is not None and name.startswith(ASIDE_PREFIX):
            if not clearer_alive(name) or time.monotonic() > deadline:
                return "the live pid file was left aside as %s" % name
        elif name is not None:
            return "the live pid file was renamed to %s" % name
        # Our inode is aside (or being moved back): look again.
        time.sleep(0.0002)


def server(path, to_parent, from_parent):
    """A forked OpenViking 0.4.20: take over, report, check on request."""
    me = str(os.getpid()).encode()
    with open(path, "w") as f:
        f.write(str(os.getpid()))
        f.flush()
        keep = os.dup(f.fileno())
    ino = os.fstat(keep).st_ino
    os.write(to_parent, b"took\n")
    if os.read(from_parent, 1) == b"c":
        result = check(path, keep, ino, me)
        os.write(to_parent, result.encode() + b"\n")
    # Killed by the parent (SIGKILL) while blocked here.
    os.read(from_parent, 1)
    os._exit(0)


def main():
    path = os.environ["RACE_PATH"]
    minimum = int(os.environ["RACE_MIN"])
    stale_dwell = float(os.environ.get("RACE_STALE_DWELL_MS", "0")) / 1000
    live_dwell = float(os.environ.get("RACE_LIVE_DWELL_MS", "0")) / 1000
    wait_every = int(os.environ.get("RACE_WAIT_EVERY", "0"))
    rng = random.Random(int(os.environ.get("RACE_SEED", "1")))

    def dwell(limit):
        # A random pause, so that the takeovers land at every point of the
        # clear-stale runs (not a guess at how long anything takes).
        if limit and rng.random() < 0.5:
            time.sleep(rng.uniform(0, limit))

    takeovers = 0
    transient = 0
    waits = 0
    violations = []
    stop = False

    with open(path, "w") as f:
        f.write(os.environ["RACE_DEAD"])
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()

    while not (stop and takeovers >= minimum):
        # 1. The stale state: sometimes until clear-stale has removed it.
        if wait_every and takeovers % wait_every == wait_every - 1:
            try:
                stale = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                stale = None
            if stale is not None:
                # Until that inode is unlinked (not merely moved aside to be
                # checked), by a clear-stale run.
                deadline = time.monotonic() + ASIDE_LIMIT
                while os.fstat(stale).st_nlink > 0 and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if os.fstat(stale).st_nlink == 0:
                    waits += 1
                os.close(stale)
        else:
            dwell(stale_dwell)

        # 2. A new server takes over.
        down_r, down_w = os.pipe()
        up_r, up_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(down_w)
            os.close(up_r)
            try:
                server(path, up_w, down_r)
            finally:
                os._exit(1)
        os.close(down_r)
        os.close(up_w)
        up = os.fdopen(up_r, "rb")
        if up.readline() != b"took\n":
            raise SystemExit("server %d failed to take over" % pid)
        takeovers += 1
        if takeovers % 50 == 0:
            sys.stdout.write("takeovers %d\n" % takeovers)
            sys.stdout.flush()
        dwell(live_dwell)

        # 3. Its lock must still be in place.
        os.write(down_w, b"c")
        result = up.readline().decode().strip()
        if result == "transient":
            transient += 1
        elif result != "ok":
            violations.append("takeover %d (PID %d): %s" % (takeovers, pid, result))

        # 4. It dies without a chance to clean up.
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(down_w)
        up.close()

        if not stop and select.select([sys.stdin], [], [], 0)[0]:
            stop = True

    sys.stdout.write(
        "done takeovers=%d violations=%d transient=%d waits=%d\n"
        % (takeovers, len(violations), transient, waits)
    )
    for v in violations:
        sys.stdout.write("violation: %s\n" % v)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
