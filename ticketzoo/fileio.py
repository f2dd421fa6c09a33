"""Atomic, durable file writes and file hashing: the only way ticketzoo writes results."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ticketzoo.errors import RegistryError, StorageError, TicketzooError, short


def current_umask() -> int:
    """The process's umask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_umask = current_umask


def registry_home() -> Path:
    """The local registry: ``$TICKETZOO_HOME``, else ``$XDG_CACHE_HOME/ticketzoo``, else
    ``~/.cache/ticketzoo``."""
    if os.environ.get("TICKETZOO_HOME"):
        return Path(os.environ["TICKETZOO_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ticketzoo"


def catalog_dirs() -> list[Path]:
    """Catalog folders in search order: ``$TICKETZOO_CATALOG`` then the bundled one (here, low
    in the house, because the write guard below must know them)."""
    dirs = [Path(p) for p in os.environ.get("TICKETZOO_CATALOG", "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parent
    for candidate in (package / "_cards", package.parent / "cards"):
        if candidate.is_dir():
            dirs.append(candidate)
            break
    return dirs


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop or an unreadable folder: judge it as written
        return path.absolute()


def registry_holding(path: str | Path) -> Path | None:
    """The registry folder that ``path`` (resolved) lies in, or None.

    A registry is the local one's ``tickets/``, any folder laid out as one
    (``tickets/<name>/HEAD``) such as a ``file://`` registry, or a catalog folder.
    """
    target = _real(Path(path))
    home = _real(registry_home())
    if target in (home / "state.json", home / ".lock"):  # the local registry's own files
        return home
    for root in map(_real, [home / "tickets", *catalog_dirs()]):
        if target == root or root in target.parents:
            return root
    for folder in target.parents:
        if folder.parent.name == "tickets" and (folder / "HEAD").is_file():
            return folder.parent
    return None


def refuse_registry(path: str | Path) -> None:
    """Refuse ``path`` when it lies inside a ticket registry (see :func:`registry_holding`):
    writers of results call it before they make any folder, so nothing is left there."""
    if (root := registry_holding(path)) is not None:
        raise RegistryError(f"refusing to write {short(str(path))}: it is inside the ticket registry {root}",
                            hint="registries change only through `ticketzoo push` and `ticketzoo pull`; "
                            "choose a path outside it")


WRITE_CAUSES = {
    errno.ENOSPC: "no space left on the device holding {path}",
    errno.EDQUOT: "disk quota exceeded on the device holding {path}",
    errno.EACCES: "cannot write {path}: permission denied",
    errno.EPERM: "cannot write {path}: operation not permitted",
    errno.EROFS: "cannot write {path}: the file system is read-only",
}


def storage_error(error: OSError, path: str | Path) -> StorageError:
    """``error`` (from writing ``path``) as one line naming the file and the cause."""
    template = WRITE_CAUSES.get(error.errno)
    message = (template.format(path=short(str(path))) if template
               else f"cannot write {short(str(path))}: {error.strerror or error}")
    return StorageError(message, path=path, errno=error.errno)


class _Recording:
    """A file whose write errors are remembered: torch.save turns an ENOSPC inside its
    writer into a RuntimeError that names neither the file nor the cause."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def _device_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (64 << 10)  # less than a block or so: what failed was space


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, registry: bool = False) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it over
    ``path`` and fsync the folder: readers see the old file or the whole new one, never a part.

    Only the registry code passes ``registry=True``: any other write into a registry
    folder is refused, so no command can replace a stored ticket behind its record.
    A full disk or a folder it may not write is a :class:`StorageError` naming ``path``
    (the temp file is removed: nothing partial is left).
    """
    path = Path(path)
    if not registry:
        refuse_registry(path)
    tmp = None
    recording = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; published files are shared
        with os.fdopen(fd, "wb") as f:
            recording = _Recording(f)
            write(recording)
            recording.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, TicketzooError) or not isinstance(e, Exception):
            raise
        cause = e if isinstance(e, OSError) else (recording.error if recording is not None else None)
        if cause is None and _device_full(path.parent):  # the writer hid it (torch.save)
            cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if cause is not None and cause.errno in WRITE_CAUSES:
            raise storage_error(cause, path) from e
        raise
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, registry: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(data), registry=registry)


def sha256_bytes(data: bytes) -> str:
    """The sha256 (hex) of ``data``: with :func:`sha256_file`, the one place ticketzoo hashes
    ticket bytes, so a pushed file, its README record and a pull's check always agree."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
