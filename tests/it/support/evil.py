"""Test helper for ovlock's hostile-input tests: a process whose name and
command line carry control characters and terminal escape sequences.

    python3 evil.py ARG...

The ARGs are its command line, hostile bytes and all (one containing
"openviking" makes it look like a server). The rest travels in the
environment:

  EVIL_COMM    hex of the bytes to set as its name (prctl PR_SET_NAME; the
               kernel keeps at most 15);
  HOLDER_PATH  if set, it writes its own PID there as OpenViking 0.4.20 does
               (open(path, "w").write(str(pid)), no newline).

When done it prints "ready <pid>", then blocks until stdin reaches EOF or it
is killed.
"""

import ctypes
import os
import sys

PR_SET_NAME = 15


def main():
    comm = bytes.fromhex(os.environ.get("EVIL_COMM", ""))
    if comm:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NAME, ctypes.c_char_p(comm), 0, 0, 0) != 0:
            sys.stderr.write("prctl failed: errno %d\n" % ctypes.get_errno())
            return 2
    path = os.environ.get("HOLDER_PATH")
    if path:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    sys.stdin.buffer.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
