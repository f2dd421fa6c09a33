"""Atomic, durable file writes and file hashing: the only way ticketzoo writes results."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ticketzoo.errors import RegistryError, short


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, registry: bool = False) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it over
    ``path`` and fsync the folder: readers see the old file or the whole new one, never a part.

    Only the registry code passes ``registry=True``: any other write into a registry
    folder is refused, so no command can replace a stored ticket behind its record.
    """
    path = Path(path)
    if not registry and (root := registry_holding(path)) is not None:
        raise RegistryError(f"refusing to write {short(str(path))}: it is inside the ticket registry {root}",
                            hint="registries change only through `ticketzoo push` and `ticketzoo pull`; "
                            "choose a path outside it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; published files are shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
