"""Drives OpenViking's own lock code, loaded from a published wheel.

    python3 driver.py WHEEL hold DIR [TAG]   take the lock, print "ready <pid>", hold until stdin closes
    python3 driver.py WHEEL fork-hold DIR    take the lock, fork; the child holds it, the parent exits
    python3 driver.py WHEEL try DIR          attempt the lock once, print "acquired" or "refused: <message>"

Only openviking/utils/process_lock.py is taken from the wheel and run as it
ships. The one thing it imports from elsewhere, openviking_cli.utils.get_logger,
is stood in by the standard logging module; nothing else is replaced.
"""

import importlib.util
import logging
import os
import sys
import types
import zipfile

MODULE = "openviking/utils/process_lock.py"


def load(wheel):
    cli = types.ModuleType("openviking_cli")
    utils = types.ModuleType("openviking_cli.utils")
    utils.get_logger = logging.getLogger
    cli.utils = utils
    sys.modules["openviking_cli"] = cli
    sys.modules["openviking_cli.utils"] = utils
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read(MODULE)
    spec = importlib.util.spec_from_loader("process_lock", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = wheel + "/" + MODULE
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def block():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    wheel, mode, data_dir = sys.argv[1:4]
    lock = load(wheel)
    if mode == "try":
        try:
            lock.acquire_data_dir_lock(data_dir)
        except lock.DataDirectoryLocked as exc:
            print("refused: " + str(exc).splitlines()[0], flush=True)
            return 0
        print("acquired", flush=True)
        return 0
    lock.acquire_data_dir_lock(data_dir)
    if mode == "fork-hold" and os.fork() != 0:
        os._exit(0)
    print("ready %d" % os.getpid(), flush=True)
    block()


if __name__ == "__main__":
    sys.exit(main())
