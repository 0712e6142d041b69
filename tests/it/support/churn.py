"""Test helper for ovlock's integration tests: makes a busy host's lock table.

    python3 churn.py MODE DIR [N [TAG]]

MODE is one of:
  hold    make N data directories DIR/ws-0 ... (default 300) and hold the
          flock on the `.openviking.lock` of each, as N servers would: the
          table is longer than a page, as on any busy host, and wherever a
          read of it is cut, a held lock file is next;
  storage make N data directories DIR/ws-0 ... (default 300), each with an
          unheld `.openviking.lock` and RocksDB's `vectordb/context/store/LOCK`
          held with a POSIX lock, as a server that is shutting down holds
          them: it has let go of its flock and still holds its storage;
  flocks  take and release a flock on a file in DIR, over and over, as fast
          as it can (a release near the top of the table shifts every later
          entry between two reads of it);
  sqlite  run write transactions on DIR/churn.db in a loop, as SQLite's
          POSIX locks come and go on a server's own queue.

TAG only shapes the command line, as in holder.py: one containing
"openviking" makes this process look like a server.

Each prints "ready <pid>" once it holds (or churns) what it was asked to, then
goes on until stdin reaches EOF or it is killed. It never runs longer than
half an hour, so a test that dies cannot leave it behind for good.
"""

import fcntl
import os
import sqlite3
import sys
import threading
import time

LIMIT = 1800


def watch_stdin():
    # The test closes our stdin (or dies) when it is done with us.
    def wait():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def ready():
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()


def hold(directory, n):
    fds = []
    for i in range(n):
        ws = os.path.join(directory, "ws-%d" % i)
        os.makedirs(ws, exist_ok=True)
        fd = os.open(os.path.join(ws, ".openviking.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fds.append(fd)
    ready()
    time.sleep(LIMIT)


def storage(directory, n):
    fds = []
    for i in range(n):
        ws = os.path.join(directory, "ws-%d" % i)
        store = os.path.join(ws, "vectordb", "context", "store")
        os.makedirs(store, exist_ok=True)
        os.close(os.open(os.path.join(ws, ".openviking.lock"), os.O_CREAT | os.O_RDWR, 0o600))
        fd = os.open(os.path.join(store, "LOCK"), os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fds.append(fd)
    ready()
    time.sleep(LIMIT)


def flocks(directory):
    fd = os.open(os.path.join(directory, "churn"), os.O_CREAT | os.O_RDWR, 0o600)
    ready()
    end = time.monotonic() + LIMIT
    while time.monotonic() < end:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)


def sqlite(directory):
    db = sqlite3.connect(os.path.join(directory, "churn.db"), isolation_level=None)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=off")
    db.execute("create table if not exists t (n integer)")
    ready()
    end = time.monotonic() + LIMIT
    n = 0
    while time.monotonic() < end:
        db.execute("begin immediate")
        db.execute("insert into t values (?)", (n,))
        db.execute("commit")
        n += 1
        if n % 1000 == 0:
            db.execute("delete from t")


def main():
    if len(sys.argv) not in (3, 4, 5):
        sys.stderr.write("usage: churn.py hold|storage|flocks|sqlite DIR [N [TAG]]\n")
        return 2
    mode, directory = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) >= 4 else 300
    watch_stdin()
    if mode == "hold":
        hold(directory, n)
    elif mode == "storage":
        storage(directory, n)
    elif mode == "flocks":
        flocks(directory)
    elif mode == "sqlite":
        sqlite(directory)
    else:
        sys.stderr.write("churn.py: unknown mode %r\n" % mode)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
