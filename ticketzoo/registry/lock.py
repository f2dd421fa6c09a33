"""The registry lock: shared for readers, exclusive for writers (``flock`` on ``ROOT/.lock``).

Writers (publish, ``rm``, ``gc``, recording ``state.json``) hold it exclusively; readers
(``pull``, ``verify``, ``info``, opening a ticket, ``list``) hold it shared while they
resolve and read a revision, so no ``rm`` or ``gc`` deletes what they are reading. A
reader that cannot open the lock file at all (a read-only registry without one, a
folder of another user) reads without it; it then reports a revision removed under it
as removed, not as damage (:mod:`.local`).

Locks are re-entrant per thread: a reader inside a writer's work (``rm`` resolving the
revision it removes) does not wait on itself. ``flock`` locks belong to an open file, so
another thread or process, waiting on its own file, is excluded as it should be.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ticketzoo.errors import RegistryError

#: How long a command waits for a registry another process holds.
TIMEOUT_S = 120.0
_POLL_S = 0.05
_held = threading.local()  # lock path -> (mode, depth) held by this thread


def _table() -> dict[str, tuple[int, int]]:
    if not hasattr(_held, "table"):
        _held.table = {}
    return _held.table


def _acquire(fd: int, mode: int, root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise RegistryError(f"registry {root} is locked by another process; try again")
        time.sleep(_POLL_S)


@contextmanager
def _hold(path: Path, mode: int, fd_opener, root: Path, timeout: float) -> Iterator[bool]:
    key = str(path)
    table = _table()
    if key in table:
        held, depth = table[key]
        if mode == fcntl.LOCK_EX and held == fcntl.LOCK_SH:
            raise RegistryError(f"cannot write registry {root} while this process is reading it")
        table[key] = (held, depth + 1)
        try:
            yield True
        finally:
            table[key] = (held, table[key][1] - 1)
            if table[key][1] == 0:
                del table[key]
        return
    fd = fd_opener()
    if fd is None:
        yield False
        return
    try:
        _acquire(fd, mode, root, timeout)
        table[key] = (mode, 1)
        try:
            yield True
        finally:
            del table[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def exclusive(root: Path, *, timeout: float = TIMEOUT_S):
    """Hold ``root/.lock`` exclusively (creating it); OSError when it cannot be opened.

    ``flock`` needs no write access to the file: a user who may write the registry but
    not the lock file another user made (umask 022) still locks it."""
    path = root / ".lock"

    def opener() -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    return _hold(path, fcntl.LOCK_EX, opener, root, timeout)


def shared(root: Path, *, timeout: float = TIMEOUT_S):
    """Hold ``root/.lock`` shared; yields False (no lock) when the file cannot be opened or
    made: a reader never needs write access to a registry."""
    path = root / ".lock"

    def opener() -> int | None:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            pass
        try:  # only in a registry (never a folder that merely was named), and only if writable
            if (root / "tickets").is_dir():
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            pass
        return None

    return _hold(path, fcntl.LOCK_SH, opener, root, timeout)
