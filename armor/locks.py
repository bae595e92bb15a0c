"""One process per run folder (and per evaluation output): an exclusive ``fcntl`` lock held for the process's life.

The lock file (``RUN/.armor.lock``, or ``<eval out>.lock``) holds the holder's pid and host. The kernel releases
the lock when the holder dies, however it dies (a SIGKILL included), so a lock left by a dead process is stale
by construction: the next process takes it and says so. A second live process is refused with one line naming
the holder.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Dict, Optional

from .errors import UserError

log = logging.getLogger("armor")

#: locks this process holds: path → open file (kept open: closing it would release the lock)
_HELD: Dict[str, int] = {}


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    pid, host = info.get("pid"), info.get("host")
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") if pid else "another process"


def lock_path(target: str | Path) -> Path:
    """The lock file of a run folder or an evaluation output: ``.<name>.armor.lock`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.armor.lock"


def in_use(path: str | Path) -> Optional[str]:
    """The live holder of the lock ``path`` (``pid 123``), or None when no process holds it. Only looks: the lock file
    is opened read-only and never created (a shared lock is tried and dropped at once)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return _holder(Path(path))
        return None
    finally:
        os.close(fd)  # closing drops the shared lock if it was taken
    return None


def acquire(path: str | Path, what: str) -> Path:
    """Hold an exclusive lock on ``path`` until :func:`release` (or the process ends); ``what`` names the thing
    locked in the message (``run folder 'runs/x'``)."""
    import fcntl

    path = Path(path)
    key = str(path.resolve())
    if key in _HELD:
        return path
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot lock {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise UserError(f"{what} is in use by {_holder(path)} (lock {str(path)!r}); wait for it to finish, or use "
                            f"another folder") from None
        raise UserError(f"cannot lock {what}: {exc.strerror or exc}") from None
    previous = _holder(path)
    if previous.startswith("pid") and not previous.startswith(f"pid {os.getpid()}"):
        log.info("%s: taking over the stale lock of %s, which is no longer running", what, previous)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
    os.fsync(fd)
    _HELD[key] = fd
    return path


def release(path: str | Path) -> None:
    """Release a lock this process holds, emptied first so that the next holder does not take it for the stale lock
    of a process that died. The (tiny) lock file stays: removing it would let two processes lock two different files
    of the same name."""
    key = str(Path(path).resolve())
    fd: Optional[int] = _HELD.pop(key, None)
    if fd is not None:
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)


def held(path: str | Path) -> bool:
    return str(Path(path).resolve()) in _HELD
