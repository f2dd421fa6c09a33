"""``rm`` and ``gc`` for a folder registry (the local one, or a ``file://`` one).

Both hold the registry lock, so no push or pull runs beside them. Nothing is deleted in
place: a ticket or revision is first renamed to a hidden ``.rm-*`` folder (one atomic
step, after which no reader sees it), then deleted. A removal killed midway leaves only
that hidden folder, which the next writer or ``gc`` sweeps: never a half-removed ticket.

``gc`` removes, and reports each with its reason and size:

* **leftovers**: temp files and folders of writers killed midway (``.tmp-*``, ``.bad-*``,
  ``.rm-*``, ``.probe-*``, ``.HEAD.*.tmp``, ``.state.json.*.tmp``); normally swept by the
  next push or pull already;
* **unfinished tickets**: a ticket folder without ``HEAD`` (a first push killed before it
  set one): no command can see it;
* **damaged revisions**: a revision folder that fails its checks (file missing, sha256 or
  size not the README's record, README naming another ticket, links) and is not HEAD;
* with ``old_revisions=True`` only: every intact revision other than HEAD, except the one
  recorded as pulled last.

It never touches a HEAD revision: a damaged one is reported (``pull NAME`` repairs a
catalog ticket; ``rm NAME`` removes it). ``dry_run=True`` reports without deleting.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import IntegrityError, RegistryError, TicketFormatError, TicketNotFoundError
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.fileio import fsync_dir
from ticketzoo.folder import README, read_entry, verify_entry
from ticketzoo.names import check_name, valid_name
from ticketzoo.registry.local import REV_RE, LocalRegistry, delete


@dataclass(frozen=True)
class Item:
    """One thing ``gc`` removed (or would remove), or a problem it left for the user."""

    path: Path
    reason: str
    size: int = 0


@dataclass(frozen=True)
class GcReport:
    removed: tuple[Item, ...]
    kept: tuple[Item, ...]  # damaged things gc does not remove (a HEAD revision)
    dry_run: bool

    @property
    def freed(self) -> int:
        return sum(i.size for i in self.removed)


def head_of(base: Path) -> str | None:
    """The revision ``base/HEAD`` names, or None when it is missing or not a revision."""
    try:
        text = (base / "HEAD").read_bytes()[:64].decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if REV_RE.match(text) else None


def _discard(p: Path, trash_in: Path, prefix: str) -> None:
    """Rename ``p`` out of sight in one step (``trash_in/.rm-*``), then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=f".rm-{prefix}-", dir=trash_in))
    os.rename(p, trash / p.name)
    fsync_dir(trash_in)
    delete(trash)



def remove(reg: LocalRegistry, name: str, revision: str | None = None) -> list[str]:
    """Delete ticket ``name`` (every revision), or one ``revision`` of it; returns the
    revisions removed. Removing the HEAD revision of a ticket with other revisions is
    refused (which one would be current is the user's call); a ticket's only revision
    goes with the ticket."""
    check_name(name)
    return reg._locked(f"remove {name!r} from {reg.root}", lambda: _remove_locked(reg, name, revision))


def _remove_locked(reg: LocalRegistry, name: str, revision: str | None) -> list[str]:
    base = reg.tickets / name
    if revision is None:
        if not base.is_dir() or base.is_symlink():
            raise TicketNotFoundError(f"no ticket {name!r} in registry {reg.location}", ref=name)
        revs = reg.revisions(name)
        _discard(base, reg.tickets, name)
        return revs
    target = reg.resolve(name, revision).revision
    others = [r for r in reg.revisions(name) if r != target]
    if not others:  # its only revision: the ticket goes as a whole (whatever its HEAD says)
        _discard(base, reg.tickets, name)
    elif head_of(base) != target:
        _discard(base / target, base, target)
    else:
        raise RegistryError(
            f"{name}@{target} is the current revision (HEAD) of {name!r}, which has others ({', '.join(others)})",
            hint=f"remove the whole ticket with `ticketzoo rm {name}`, or push the revision you want current first")
    return [target]


def _size(p: Path) -> int:
    if p.is_symlink() or not p.is_dir():
        try:
            return p.lstat().st_size
        except OSError:
            return 0
    return sum(_size(c) for c in p.iterdir())


def _problem(folder: Path, name: str, rev: str) -> str | None:
    """Why a revision folder cannot be trusted, or None when it is intact."""
    if any(p.is_symlink() for p in (folder, folder / README, folder / TICKET_FILE)):
        return "holds a link"
    try:
        entry = verify_entry(read_entry(folder))
    except (IntegrityError, RegistryError, TicketFormatError) as e:
        return str(e).split(": ", 1)[-1]
    if (entry.name, entry.revision) != (name, rev):
        return f"its README records {entry.name}@{entry.revision}"
    return None


def gc(reg: LocalRegistry, *, dry_run: bool = False, old_revisions: bool = False,
       keep=frozenset()) -> GcReport:
    """Collect what no command can use (see the module docstring); ``keep`` holds
    ``(name, revision)`` pairs ``old_revisions`` must spare (the ticket pulled last), or is
    a function returning them, called under the lock: gc decides from fresh state, so a
    pull that recorded its ticket before gc took the lock is spared.

    ``dry_run`` only reads, under the shared lock: it works in a read-only registry."""
    try:
        if not reg.tickets.is_dir():
            return GcReport((), (), dry_run)
    except OSError as e:
        raise RegistryError(f"{reg.tickets}: cannot read the registry: {e.strerror}") from None

    def work() -> GcReport:
        return _gc_locked(reg, dry_run, old_revisions, keep() if callable(keep) else keep)

    if dry_run:
        with reg.reading():
            return work()
    return reg._locked(f"collect garbage in {reg.root}", work, sweep=False)


def _gc_locked(reg: LocalRegistry, dry_run: bool, old_revisions: bool, keep) -> GcReport:
    removed: list[tuple[Item, Path, str]] = []  # (item, trash folder, prefix)
    kept: list[Item] = []
    for p in reg.leftovers():
        removed.append((Item(p, "leftover of an interrupted write", _size(p)), p.parent, "leftover"))
    for base in sorted(reg.tickets.iterdir()):
        if not valid_name(base.name) or not base.is_dir() or base.is_symlink():
            continue
        head = head_of(base)
        if not (base / "HEAD").exists():
            removed.append((Item(base, "unfinished push (no HEAD)", _size(base)), reg.tickets, base.name))
            continue
        if head is None:
            kept.append(Item(base / "HEAD", "HEAD does not name a revision"))
        for rev in reg.revisions(base.name):
            folder = base / rev
            problem = _problem(folder, base.name, rev)
            if rev == head:
                if problem:
                    kept.append(Item(folder, f"damaged HEAD revision ({problem}): `ticketzoo pull {base.name}` "
                                     f"repairs a catalog ticket, `ticketzoo rm {base.name}` removes it"))
            elif problem:
                removed.append((Item(folder, f"damaged revision ({problem})", _size(folder)), base, rev))
            elif old_revisions and (base.name, rev) not in keep and head is not None:
                removed.append((Item(folder, "old revision (not HEAD)", _size(folder)), base, rev))
    if not dry_run:
        for item, trash_in, prefix in removed:
            if item.path.name.startswith("."):
                delete(item.path)  # a leftover: already hidden from every reader
            else:
                _discard(item.path, trash_in, prefix)
    return GcReport(tuple(i for i, _, _ in removed), tuple(kept), dry_run)
