"""The embedded local registry: one folder per ticket, content-addressed revisions.

Layout under the registry root::

    tickets/<name>/HEAD                     the current revision (12 hex digits)
    tickets/<name>/<rev>/ticket.safetensors exactly the files a Hub repo holds
    tickets/<name>/<rev>/README.md          card with the file's sha256 and size
    .lock                                   serialises writers (readers need no lock:
                                            revision folders are immutable)

A revision is the first 12 hex digits of the ticket file's sha256, so pushing a name
again keeps the old revision reachable as ``name@rev``. Publishing writes into a
temporary folder and renames it into place, then swaps ``HEAD`` atomically: an
interrupted push leaves nothing visible.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from ticketzoo.card import Card, parse_readme, render_readme
from ticketzoo.errors import IntegrityError, RegistryError, TicketFormatError, TicketNotFoundError
from ticketzoo.registry.refs import check_name
from ticketzoo.fileio import atomic_write_bytes, sha256_file
from ticketzoo.ticket import TICKET_FILE, Ticket

README = "README.md"
REV_LEN = 12


@dataclass(frozen=True)
class Entry:
    """A ticket revision stored in a registry folder."""

    name: str
    revision: str
    sha256: str
    size: int
    folder: Path
    card: Card
    location: str = ""  # where it lives, for display ("local", "file:///...", "hf://...")

    @property
    def file(self) -> Path:
        return self.folder / TICKET_FILE


def default_home() -> Path:
    """``$TICKETZOO_HOME``, else ``$XDG_CACHE_HOME/ticketzoo``, else ``~/.cache/ticketzoo``."""
    if os.environ.get("TICKETZOO_HOME"):
        return Path(os.environ["TICKETZOO_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ticketzoo"


def read_readme(folder: Path) -> tuple[Card, dict]:
    """The card and front-matter ``ticketzoo`` block of a ticket folder's README."""
    readme = folder / README
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as e:
        raise RegistryError(f"{readme}: cannot read ticket card: {e.strerror}") from None
    return parse_readme(text, path=str(readme))


def read_entry(folder: Path, *, location: str = "", readme: tuple[Card, dict] | None = None) -> Entry:
    """Read a ticket folder's README (cheap: no tensor is decoded)."""
    card, meta = readme or read_readme(folder)
    sha, size = meta.get("sha256"), meta.get("size")
    if not isinstance(sha, str) or len(sha) != 64 or not isinstance(size, int):
        raise IntegrityError(f"{folder / README}: card has no valid sha256/size for the ticket file", path=folder)
    return Entry(card.name, sha[:REV_LEN], sha, size, folder, card, location)


def verify_entry(entry: Entry) -> Entry:
    """Check the ticket file against the sha256 and size recorded beside it."""
    path = entry.file
    try:
        size = path.stat().st_size
    except OSError:
        raise IntegrityError(f"{path}: ticket file is missing", path=path) from None
    if size != entry.size:
        raise IntegrityError(f"{path}: size {size} differs from the recorded {entry.size} bytes", path=path)
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise IntegrityError(
            f"{path}: sha256 {actual[:12]}… differs from the recorded {entry.sha256[:12]}…",
            path=path,
            hint=f"the file was modified or damaged; pull it again from its source, or delete {entry.folder}",
        )
    return entry


def write_ticket_folder(folder: Path, data: bytes, card: Card, *, extra_meta: dict | None = None) -> str:
    """Write ``ticket.safetensors`` + ``README.md`` into an existing folder; returns sha256."""
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(folder / TICKET_FILE, data)
    readme = render_readme(card, sha256=sha, size=len(data), extra_meta=extra_meta)
    atomic_write_bytes(folder / README, readme.encode("utf-8"))
    return sha


def _intact(folder: Path) -> bool:
    try:
        verify_entry(read_entry(folder))
        return True
    except (IntegrityError, RegistryError, TicketFormatError):
        return False


class LocalRegistry:
    """A registry in a local folder (the default one lives in :func:`default_home`)."""

    def __init__(self, root: str | Path | None = None, *, location: str | None = None):
        self.root = Path(root) if root is not None else default_home()
        self.location = location or ("local" if root is None else self.root.as_uri())
        self.tickets = self.root / "tickets"

    def __repr__(self) -> str:
        return f"LocalRegistry({str(self.root)!r})"

    # --- writing ----------------------------------------------------------------------

    def _ensure(self) -> None:
        try:
            self.tickets.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.tickets, prefix=".probe-", delete=True)
            probe.close()
        except OSError as e:
            raise RegistryError(
                f"registry folder {self.root} is not writable: {e.strerror}",
                hint="set TICKETZOO_HOME to a writable folder",
            ) from None

    def _lock(self) -> FileLock:
        return FileLock(str(self.root / ".lock"), timeout=120)

    def publish(self, ticket: Ticket | bytes, *, name: str | None = None) -> Entry:
        """Store a ticket under ``name`` (default: its card's name) as a new revision.

        Given bytes, they are validated and stored unchanged (so a pushed file and the
        pulled one are byte-identical) unless a new name forces a re-serialisation.
        """
        data = ticket if isinstance(ticket, bytes) else None
        if data is not None:
            ticket = Ticket.from_bytes(data)
        name = check_name(name or ticket.name)
        if ticket.name != name:
            ticket, data = ticket.with_card(name=name), None
        if data is None:
            data = ticket.to_bytes()
        self._ensure()
        try:
            with self._lock():
                return self._publish_locked(name, data, ticket.card)
        except Timeout:
            raise RegistryError(f"registry {self.root} is locked by another process; try again") from None
        except OSError as e:
            if isinstance(e, RegistryError):
                raise
            msg = "disk full" if e.errno == errno.ENOSPC else e.strerror or str(e)
            raise RegistryError(f"cannot publish {name!r} to {self.root}: {msg}; nothing was published") from None

    def _publish_locked(self, name: str, data: bytes, card: Card) -> Entry:
        base = self.tickets / name
        base.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            sha = write_ticket_folder(tmp, data, card)
            rev = sha[:REV_LEN]
            final = base / rev
            if not final.exists():
                os.rename(tmp, final)
            elif _intact(final):
                shutil.rmtree(tmp)  # the same content is already there
            else:  # a damaged copy of this very revision: replace it with the good one
                trash = Path(tempfile.mkdtemp(prefix=".bad-", dir=base))
                os.rename(final, trash / rev)
                os.rename(tmp, final)
                shutil.rmtree(trash, ignore_errors=True)
            atomic_write_bytes(base / "HEAD", (rev + "\n").encode())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return read_entry(final, location=self.location)

    # --- reading ----------------------------------------------------------------------

    def names(self) -> list[str]:
        if not self.tickets.is_dir():
            return []
        return sorted(p.name for p in self.tickets.iterdir() if (p / "HEAD").is_file())

    def revisions(self, name: str) -> list[str]:
        base = self.tickets / check_name(name)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def has(self, name: str, revision: str | None = None) -> bool:
        try:
            self.resolve(name, revision)
            return True
        except TicketNotFoundError:
            return False

    def resolve(self, name: str, revision: str | None = None) -> Entry:
        """The entry for ``name`` at ``revision`` (a unique prefix of ≥4 digits) or HEAD."""
        base = self.tickets / check_name(name)
        ref = f"{name}@{revision}" if revision else name
        if revision is None:
            try:
                revision = (base / "HEAD").read_text().strip()
            except OSError:
                raise TicketNotFoundError(f"no ticket {name!r} in registry {self.location}", ref=ref) from None
            matches = [revision]
        else:
            revs = self.revisions(name)
            matches = [r for r in revs if len(revision) >= 4 and r.startswith(revision)]
            if len(matches) != 1:
                known = ", ".join(revs) or "none"
                problem = "is ambiguous" if matches else "not found"
                raise TicketNotFoundError(
                    f"revision {revision!r} of {name!r} {problem} in {self.location} (revisions: {known})", ref=ref
                )
        folder = base / matches[0]
        if not folder.is_dir():
            raise TicketNotFoundError(f"revision {matches[0]} of {name!r} is missing in {self.location}", ref=ref)
        return read_entry(folder, location=self.location)

    def pull(self, name: str, revision: str | None = None) -> Entry:
        """Resolve and verify the sha256 of the stored file."""
        return verify_entry(self.resolve(name, revision))

    def entries(self) -> list[Entry]:
        out = []
        for name in self.names():
            try:
                out.append(self.resolve(name))
            except (TicketNotFoundError, RegistryError, IntegrityError, ValueError):
                continue  # a damaged entry is reported by `verify`, not by `list`
        return out
