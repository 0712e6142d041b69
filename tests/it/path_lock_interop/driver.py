"""Drives OpenViking 0.5.2's own path-lock engine, unpacked from the published wheel.

    python3 driver.py ROOT unpack WHEEL
        unpack the modules listed in MEMBERS from WHEEL into ROOT/engine
    python3 driver.py ROOT MODE WS EXPIRE KIND PATH
        with the engine on workspace WS, lock_expire_secs EXPIRE, and PATH an
        engine path (/local/ACCOUNT/REST, which is WS/viking/ACCOUNT/REST on disk):

    lease   acquire a KIND (tree|exact) lock on PATH, print "ready <pid> <lock file>",
            keep it (the engine refreshes it every EXPIRE/3 s) until stdin closes,
            then release it and exit
    server  the same, having first taken the data-directory lock through 0.5.2's
            own process_lock (flock on WS/.openviking.lock), as a server holds it
    crash   acquire, print "left <pid> <lock file>", and _exit without releasing:
            the token stays behind, as after a crash
    try     once: acquire a KIND lock on PATH and release it, or (KIND write)
            write PATH through the engine, which takes its own lock; print
            "acquired", or "refused: <conflict>: <message>", the conflict being
            path_busy where the server would answer 409 path_busy (as
            openviking/server/error_mapping.py maps LockAcquisitionError), else
            the exception's class (AGFSInternalError for an invalid token)

The lock file is printed as an absolute path on disk. Missing parents of PATH
are made through the engine's own mkdir.

What runs is the wheel's code as it ships: the compiled engine
(openviking/lib/ragfs_python.abi3.so), openviking.pyagfs that loads it,
openviking.utils.agfs_utils.create_agfs_client that configures and mounts it,
the AGFSConfig model of openviking_cli.utils.config.agfs_config, and (server)
openviking.utils.process_lock. Nothing of the lock logic is replaced. Stood in,
because they cannot be avoided without the 1.3 GB server install:

  * the packages' __init__.py files (openviking, openviking.utils,
    openviking.service, openviking.storage, openviking_cli, openviking_cli.utils,
    openviking_cli.utils.config): each imports the whole server (HTTP service,
    vector store, model clients). Empty package objects pointing at the
    unpacked directories stand in, so that only the modules named here load;
  * openviking_cli.utils.logger.get_logger, by logging.getLogger: the real one
    reads ov.conf for its settings and imports OpenViking's telemetry
    (OpenTelemetry). It only configures logging.

The one third-party import, pydantic (AGFSConfig is a pydantic model), comes
from ROOT/deps, where the tests install it. OPENVIKING_CONFIG_FILE is pointed
at a file that does not exist, so create_agfs_client hands the engine no
ov.conf of this machine: its settings are the AGFSConfig built here.
"""

import logging
import os
import sys
import types
import zipfile

MEMBERS = [
    "openviking/lib/ragfs_python.abi3.so",
    "openviking/pyagfs/__init__.py",
    "openviking/pyagfs/async_client.py",
    "openviking/pyagfs/exceptions.py",
    "openviking/pyagfs/helpers.py",
    "openviking/pyagfs/protocols.py",
    "openviking/service/task_tracker_concurrency.py",
    "openviking/concurrency.py",
    "openviking/storage/errors.py",
    "openviking/utils/agfs_utils.py",
    "openviking/utils/process_lock.py",
    "openviking_cli/utils/config/agfs_config.py",
    "openviking_cli/utils/config/config_loader.py",
    "openviking_cli/utils/config/config_utils.py",
    "openviking_cli/utils/config/consts.py",
]

STUB_PACKAGES = [
    "openviking",
    "openviking.service",
    "openviking.storage",
    "openviking.utils",
    "openviking_cli",
    "openviking_cli.utils",
    "openviking_cli.utils.config",
]


def unpack(root, wheel):
    # Into a directory of our own first, renamed into place, so that a
    # concurrent run sees either nothing or a complete engine.
    final = os.path.join(root, "engine")
    partial = "%s.tmp-%d" % (final, os.getpid())
    with zipfile.ZipFile(wheel) as zf:
        for member in MEMBERS:
            zf.extract(member, partial)
    os.chmod(os.path.join(partial, MEMBERS[0]), 0o755)
    try:
        os.rename(partial, final)
    except OSError:
        if not os.path.isdir(final):
            raise


def load(root):
    """Returns (agfs_utils, AGFSConfig, process_lock, LockAcquisitionError)."""
    engine = os.path.join(root, "engine")
    sys.path.insert(0, os.path.join(root, "deps"))
    for name in STUB_PACKAGES:
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(engine, *name.split("."))]
        sys.modules[name] = package
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, package)
    logger = types.ModuleType("openviking_cli.utils.logger")
    logger.get_logger = logging.getLogger
    sys.modules["openviking_cli.utils.logger"] = logger
    # process_lock imports it from the package itself.
    sys.modules["openviking_cli.utils"].get_logger = logging.getLogger
    os.environ["OPENVIKING_CONFIG_FILE"] = os.path.join(root, "no-ov.conf")

    from openviking.storage.errors import LockAcquisitionError
    from openviking.utils import agfs_utils, process_lock
    from openviking_cli.utils.config.agfs_config import AGFSConfig

    return agfs_utils, AGFSConfig, process_lock, LockAcquisitionError


def main():
    if len(sys.argv) == 4 and sys.argv[2] == "unpack":
        unpack(sys.argv[1], sys.argv[3])
        return 0
    if len(sys.argv) != 7:
        sys.stderr.write(__doc__)
        return 2
    root, mode, ws, expire, kind, path = sys.argv[1:]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    agfs_utils, AGFSConfig, process_lock, LockAcquisitionError = load(root)

    if mode == "server":
        process_lock.acquire_data_dir_lock(ws)
    config = AGFSConfig(path=ws, pathlock={"lock_expire_secs": float(expire)})
    client = agfs_utils.create_agfs_client(agfs_utils.RagfsBindingConfig(agfs=config))
    ctx = {"account_id": path.strip("/").split("/")[1]}
    viking = os.path.join(os.path.realpath(ws), "viking")

    def on_disk(engine_path):
        return viking + engine_path[len("/local") :]

    parts = path.strip("/").split("/")
    for depth in range(2, len(parts)):
        parent = "/" + "/".join(parts[:depth])
        if not os.path.isdir(on_disk(parent)):
            client.mkdir(parent, ctx=ctx)

    if mode == "try":
        try:
            if kind == "write":
                client.write(path, b"written by the driver", ctx=ctx)
            else:
                lease = client.pathlock_acquire_batch(ctx, [{"path": path, "kind": kind}])
                client.pathlock_release(ctx, lease)
        except LockAcquisitionError as exc:
            print("refused: path_busy: %s" % exc, flush=True)
        except Exception as exc:
            print("refused: %s: %s" % (type(exc).__name__, exc), flush=True)
        else:
            print("acquired", flush=True)
        return 0

    lease = client.pathlock_acquire_batch(ctx, [{"path": path, "kind": kind}])
    (lock_path,) = lease["lock_paths"]
    word = "left" if mode == "crash" else "ready"
    print("%s %d %s" % (word, os.getpid(), on_disk(lock_path)), flush=True)
    if mode == "crash":
        os._exit(0)
    sys.stdin.buffer.read()
    client.pathlock_release(ctx, lease)
    return 0


if __name__ == "__main__":
    sys.exit(main())
