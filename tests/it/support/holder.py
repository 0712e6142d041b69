"""Test helper for ovlock's integration tests: holds an OpenViking lock for real.

    python3 holder.py MODE TAG

MODE is one of:
  flock       open $HOLDER_PATH (O_CREAT|O_RDWR, 0600, close-on-exec) and hold
              flock(LOCK_EX|LOCK_NB) on it, as OpenViking 0.4.21+ does;
  fork-flock  take the same flock, then fork: the child keeps the descriptor
              (and so the lock), the parent exits at once;
  pidfile     write our own PID to $HOLDER_PATH as OpenViking 0.4.20 does
              (open(path, "w").write(str(pid)), no newline);
  idle        hold nothing.

TAG only shapes the command line: ovlock recognises OpenViking by its command
line, so a TAG containing "openviking" makes this process look like a server,
and any other TAG does not. The path travels in $HOLDER_PATH, not in argv,
because lock file names themselves contain "openviking".

When the process holds what it was asked to, it prints "ready <pid>" (the PID
of the process that holds it) on stdout, then blocks until stdin reaches EOF
or it is killed.
"""

import fcntl
import os
import sys


def take_flock(path):
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def ready_and_block():
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    # Blocks until the test closes our stdin (or dies), or kills us.
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: holder.py flock|fork-flock|pidfile|idle TAG\n")
        return 2
    mode = sys.argv[1]
    path = os.environ.get("HOLDER_PATH", "")
    if mode == "flock":
        take_flock(path)
    elif mode == "fork-flock":
        take_flock(path)
        if os.fork() != 0:
            # The parent: exits at once; the child keeps the locked descriptor.
            os._exit(0)
    elif mode == "pidfile":
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    elif mode != "idle":
        sys.stderr.write("holder.py: unknown mode %r\n" % mode)
        return 2
    ready_and_block()


if __name__ == "__main__":
    sys.exit(main())
