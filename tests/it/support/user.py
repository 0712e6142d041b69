"""Test helper for ovlock's usage tests: a process that uses a data directory.

    python3 user.py TAG

What it does travels in the environment, not in argv, because OpenViking's
file names contain "openviking" and ovlock recognises OpenViking by its
command line:

  USER_DIR      the data directory; relative paths below are under it;
  USER_ACTIONS  a JSON list of actions, done in order, each [VERB, ARG]:
    ["open", P]        create P (and its parents) and keep it open;
    ["flock", P]       open P (O_CREAT|O_RDWR, 0600, close-on-exec) and hold
                       flock(LOCK_EX|LOCK_NB), as OpenViking 0.4.21+ does;
    ["unflock", P]     let go of the flock taken on P, keeping P open (a
                       server shutting down that still holds its storage);
    ["lockf", P]       open P and hold a POSIX write lock (fcntl.lockf);
    ["lockf-read", P]  open P and hold a POSIX read lock;
    ["ofd", P]         open P and hold an OFD write lock (F_OFD_SETLK);
    ["sqlite", P]      open P as an SQLite database in WAL mode, as
                       OpenViking's queues do, and keep the connection;
    ["mmap", P]        create P, map it into memory, close its descriptor
                       (so only the mapping remains);
    ["pad-maps", N]    map N single pages of this script, so that what was
                       mapped before lies further into /proc/PID/maps;
    ["cwd", P]         make P (created if need be) the current directory;
    ["pidfile", P]     write our own PID (os.getpid(): the PID in our PID
                       namespace) to P, no newline, as OpenViking 0.4.20 does;
    ["fork", ACTIONS]  fork a worker that does ACTIONS (the same way);
    ["spawn", ACTIONS] start a worker with subprocess (a new python running
                       this script with TAG "worker") that does ACTIONS;
    ["spawn", ACTIONS, TAG]  the same with this TAG.

TAG only shapes the command line: a TAG containing "openviking" makes the
process look like an OpenViking server.

When everything is done (workers included), it prints "ready PID WORKER..."
(its PID as it sees it, then its workers' PIDs, nested ones included), then
blocks until stdin reaches EOF or SIGTERM; then it stops (SIGTERM) and reaps
its workers and exits. Workers also die with their parent (PR_SET_PDEATHSIG).
"""

import ctypes
import fcntl
import json
import mmap
import os
import signal
import sqlite3
import struct
import subprocess
import sys

HOLD = []  # everything that must stay open
FLOCKED = {}  # path -> descriptor holding its flock
WORKERS = []  # (pid, popen or None)


def die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def path_of(rel):
    path = os.path.join(os.environ["USER_DIR"], rel)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    return path


def open_rw(rel):
    return os.open(path_of(rel), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)


def do(actions, reported):
    for action in actions:
        verb, arg = action[0], action[1]
        tag = action[2] if len(action) > 2 else None
        if verb == "open":
            HOLD.append(open_rw(arg))
        elif verb == "flock":
            fd = open_rw(arg)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            HOLD.append(fd)
            FLOCKED[arg] = fd
        elif verb == "unflock":
            fcntl.flock(FLOCKED[arg], fcntl.LOCK_UN)
        elif verb == "lockf":
            fd = open_rw(arg)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            HOLD.append(fd)
        elif verb == "lockf-read":
            fd = open_rw(arg)
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            HOLD.append(fd)
        elif verb == "ofd":
            fd = open_rw(arg)
            # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD).
            lock = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
            HOLD.append(fd)
        elif verb == "sqlite":
            db = sqlite3.connect(path_of(arg), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, body TEXT)")
            db.execute("INSERT INTO queue (body) VALUES ('x')")
            db.execute("SELECT count(*) FROM queue").fetchall()
            HOLD.append(db)
        elif verb == "mmap":
            # libc's mmap, not Python's, which keeps a duplicate descriptor.
            fd = open_rw(arg)
            os.ftruncate(fd, mmap.PAGESIZE)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
            addr = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                raise SystemExit("mmap failed: errno %d" % ctypes.get_errno())
            os.close(fd)
        elif verb == "pad-maps":
            # ARG more lines in /proc/PID/maps: single pages of this script
            # (outside any data directory), each its own mapping. They go
            # below the earlier mappings, so those come later in the file.
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int, ctypes.c_long]
            fd = os.open(os.path.abspath(__file__), os.O_RDONLY)
            for _ in range(arg):
                addr = libc.mmap(None, mmap.PAGESIZE, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    raise SystemExit("mmap failed: errno %d" % ctypes.get_errno())
            os.close(fd)
        elif verb == "cwd":
            path = path_of(os.path.join(arg, "x"))
            os.chdir(os.path.dirname(path))
        elif verb == "pidfile":
            with open(path_of(arg), "w") as f:
                f.write(str(os.getpid()))
        elif verb == "fork":
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                die_with_parent()
                del WORKERS[:]
                mine = []
                do(arg, mine)
                os.write(w, (" ".join(str(p) for p in mine) + "\n").encode())
                os.close(w)
                block()
            os.close(w)
            with os.fdopen(r) as f:
                line = f.readline()
            if not line:
                raise SystemExit("forked worker %d failed" % pid)
            WORKERS.append((pid, None))
            reported.append(pid)
            reported.extend(int(p) for p in line.split())
        elif verb == "spawn":
            env = dict(os.environ, USER_ACTIONS=json.dumps(arg), USER_WORKER="1")
            child = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), tag or "worker"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            line = child.stdout.readline().decode()
            if not line.startswith("ready "):
                raise SystemExit("spawned worker %d failed" % child.pid)
            WORKERS.append((child.pid, child))
            reported.extend(int(p) for p in line.split()[1:])
        else:
            raise SystemExit("user.py: unknown action %r" % verb)


def stop(*_):
    # Workers stop theirs the same way on SIGTERM, so every process is reaped
    # by its own parent.
    for pid, _child in WORKERS:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    for pid, _child in WORKERS:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    os._exit(0)


def block():
    # Blocks until stdin closes (the test is done, or our parent died).
    try:
        sys.stdin.buffer.read()
    except Exception:
        pass
    stop()


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: USER_DIR=D USER_ACTIONS=JSON user.py TAG\n")
        return 2
    signal.signal(signal.SIGTERM, stop)
    if os.environ.pop("USER_WORKER", None):
        die_with_parent()
    reported = []
    do(json.loads(os.environ.get("USER_ACTIONS", "[]")), reported)
    sys.stdout.write("ready %s\n" % " ".join(str(p) for p in [os.getpid()] + reported))
    sys.stdout.flush()
    block()


if __name__ == "__main__":
    sys.exit(main())
