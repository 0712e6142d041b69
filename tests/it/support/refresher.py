"""Test helper for ovlock's path-lock race test: a live OpenViking 0.5.2 lease
whose token is refreshed in place while clear-stale runs in a loop.

    python3 refresher.py TAG

TAG only shapes the command line (one containing "openviking" makes this
process look like a server). The rest travels in the environment, because the
lock file's own name contains "openviking":

  REFRESH_DIR_LOCK  the data directory's .openviking.lock: held with flock for
                    the whole run, so that the directory has a live owner and
                    its tokens are judged by their age;
  REFRESH_TOKEN     the token file (a .path.ovlock);
  REFRESH_ROUNDS    how many rounds;
  REFRESH_WAIT_EVERY
                    every this many rounds, wait for clear-stale to remove the
                    expired token, and (half-way between) wait for two
                    clear-stale runs to complete while the refreshed token is
                    in place, so that both outcomes surely happen;
  REFRESH_DWELL_MS  otherwise at most this long (at random) in each state;
  REFRESH_SEED      the seed of the randomness.

Each round is one lease, written as OpenViking's localfs path locks write it:
  1. create the token (O_WRONLY|O_CREAT|O_EXCL, one write), dated an hour ago:
     an expired copy, as a lease whose refresh came late leaves it;
  2. refresh it by compare-and-swap: open O_RDWR, a non-blocking OFD write lock
     on the whole file (retried while busy), fstat dev/ino == stat(path), read
     it all and compare byte for byte, then ftruncate + write + fdatasync. If
     the file is gone first, clear-stale removed it while it was stale: allowed;
  3. once refreshed, the token is live and must stay: the round ends with
     OpenViking's release (the same CAS, then unlink under the lock). A token
     gone or changed by then is a violation: a refreshed token was lost.

Each line on stdin means "one more clear-stale run has completed"; EOF means
none will. It prints "ready <pid>" once it holds the directory lock, then, at
the end, "done rounds=N refreshed=R cleared=C kept=K violations=V" and a line
"violation: WHAT" for each, and exits 0.
"""

import errno
import fcntl
import os
import random
import select
import struct
import sys
import time
import uuid

# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid, padding.
FLOCK = "hhqqi4x"
HOUR_NS = 3600 * 10**9


class Gone(Exception):
    """The path is no longer the file we opened, or no file at all."""


class Ticks:
    """Counts the clear-stale runs the test reports on stdin."""

    def __init__(self):
        self.count = 0
        self.eof = False

    def drain(self, timeout=0.0):
        fd = sys.stdin.fileno()
        while not self.eof and select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 4096)
            if not data:
                self.eof = True
            self.count += data.count(b"\n")
            timeout = 0.0

    def wait_for(self, target):
        while self.count < target and not self.eof:
            self.drain(0.05)
        return self.count >= target


def ofd_lock(fd, kind):
    request = struct.pack(FLOCK, kind, os.SEEK_SET, 0, 0, 0)
    for _ in range(10000):
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        time.sleep(0.0005)
    raise TimeoutError("the OFD lock stayed busy")


def compare_and(path, expected, then):
    """OpenViking's CAS on a token file: `then(fd)` runs under the OFD lock
    once the file is still the path's and holds exactly `expected`. Returns
    None, or what differed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Gone()
    try:
        ofd_lock(fd, fcntl.F_WRLCK)
        held = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            raise Gone()
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            raise Gone()
        os.lseek(fd, 0, os.SEEK_SET)
        content = b""
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            content += chunk
        if content != expected:
            return "holds %r, not %r" % (content, expected)
        then(fd)
        return None
    finally:
        os.close(fd)


def rewrite(token):
    def then(fd):
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, token)
        os.fdatasync(fd)

    return then


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    dir_lock = os.environ["REFRESH_DIR_LOCK"]
    path = os.environ["REFRESH_TOKEN"]
    rounds = int(os.environ.get("REFRESH_ROUNDS", "200"))
    wait_every = int(os.environ.get("REFRESH_WAIT_EVERY", "10"))
    dwell = int(os.environ.get("REFRESH_DWELL_MS", "5")) / 1000.0
    rng = random.Random(int(os.environ.get("REFRESH_SEED", "1")))

    lock_fd = os.open(dir_lock, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("ready %d" % os.getpid(), flush=True)

    ticks = Ticks()
    refreshed = cleared = kept = 0
    violations = []
    done = 0
    for n in range(rounds):
        done = n + 1
        owner = str(uuid.uuid4())
        expired = ("%s:%d:T" % (owner, time.time_ns() - HOUR_NS)).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        os.write(fd, expired)
        os.close(fd)

        if n % wait_every == 0:
            # Leave the expired token until clear-stale removes it: of two
            # runs completed after it was written, the second began after,
            # so it must have removed it, however slow the machine.
            ticks.drain()
            written_at = ticks.count
            while os.path.lexists(path) and not ticks.eof and ticks.count < written_at + 2:
                ticks.drain(0.001)
            if os.path.lexists(path):
                violations.append("round %d: clear-stale never removed the expired token" % n)
                break
            cleared += 1
            continue
        time.sleep(rng.uniform(0, dwell))

        fresh = ("%s:%d:T" % (owner, time.time_ns())).encode()
        try:
            differs = compare_and(path, expired, rewrite(fresh))
        except Gone:
            cleared += 1
            continue
        if differs:
            violations.append("round %d: before its refresh the token %s" % (n, differs))
            break
        refreshed += 1

        if n % wait_every == wait_every // 2:
            # Two more completed runs: the second began after the refresh.
            ticks.drain()
            if not ticks.wait_for(ticks.count + 2):
                violations.append("round %d: clear-stale stopped running" % n)
                break
        else:
            time.sleep(rng.uniform(0, dwell))

        try:
            differs = compare_and(path, fresh, lambda fd: os.unlink(path))
        except Gone:
            differs = "is gone"
        if differs:
            violations.append("round %d: the refreshed token %s" % (n, differs))
            break
        kept += 1

    print(
        "done rounds=%d refreshed=%d cleared=%d kept=%d violations=%d"
        % (done, refreshed, cleared, kept, len(violations)),
        flush=True,
    )
    for violation in violations:
        print("violation: " + violation, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
