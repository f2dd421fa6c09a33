"""The embedded local registry: one folder per ticket, content-addressed revisions.

Layout under the registry root::

    tickets/<name>/HEAD                     the current revision (12 hex digits)
    tickets/<name>/<rev>/ticket.safetensors exactly the files a Hub repo holds
    tickets/<name>/<rev>/README.md          card with the file's sha256 and size
    state.json                              what was pulled and fine-tuned last
    .lock                                   exclusive for writers, shared for readers
                                            (:mod:`.lock`): no rm or gc under a read

A revision is the first 12 hex digits of the ticket file's sha256, so pushing a name
again keeps the old revision reachable as ``name@rev``. Publishing writes into a
temporary folder and renames it into place, then swaps ``HEAD`` atomically: an
interrupted push leaves nothing visible, and what it left behind (``.tmp-*``, a first
push's ticket folder without ``HEAD``) is swept by the next writer, under the lock.
Folders are made ``0777 & ~umask`` and files ``0666 & ~umask``: a shared registry is
readable by the others it is shared with.

Every name read from the registry's files (``HEAD``, folder names, the README's record)
is validated before it is used as a path: a registry, ``file://`` ones included, may be
written by someone else.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ticketzoo.card import Card
from ticketzoo.errors import (IntegrityError, RegistryError, StorageError, TicketFormatError, TicketNotFoundError,
                              TicketzooError, UnknownArchitectureError)
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.fileio import atomic_write_bytes, current_umask, registry_home
from ticketzoo.registry import lock
from ticketzoo.names import check_name, shown, valid_name
from ticketzoo.folder import (README, REV_LEN, Entry, read_entry, read_readme, verify_entry,  # noqa: F401
                              write_ticket_folder)

if TYPE_CHECKING:  # imported (with torch) where it is used: list, info, gc, rm import no torch
    from ticketzoo.ticket import Ticket

REV_RE = re.compile(r"^[0-9a-f]{12}\Z")
STATE_FILE = "state.json"
#: Names ticketzoo's writers give their temporary files and folders, per folder level
#: (the root may be a folder the user shares with other files: only our own names there).
_LEFTOVER_IN_ROOT = re.compile(r"^\.state\.json\..+\.tmp\Z")
_LEFTOVER_IN_TICKETS = re.compile(r"^\.(probe|rm)-.+")
_LEFTOVER_IN_NAME = re.compile(r"^\.(tmp-|bad-|rm-).+|^\.HEAD\..+\.tmp\Z")


def default_home() -> Path:
    """``$TICKETZOO_HOME``, else ``$XDG_CACHE_HOME/ticketzoo``, else ``~/.cache/ticketzoo``."""
    return registry_home()


def delete(p: Path) -> None:
    """Delete a file, a link or a folder tree (never following a link)."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _intact(folder: Path) -> bool:
    try:
        verify_entry(read_entry(folder))
        return True
    except (IntegrityError, RegistryError, TicketFormatError):
        return False


class LocalRegistry:
    """A registry in a local folder (the default one lives in :func:`default_home`).

    ``setting`` is what chose the folder, named in errors about it: an environment
    variable (``TICKETZOO_HOME``, ``TICKETZOO_REGISTRY``) or a keyword (``registry``, set as
    the error's ``field``)."""

    def __init__(self, root: str | Path | None = None, *, location: str | None = None,
                 setting: str = "TICKETZOO_HOME"):
        self.root = Path(root) if root is not None else default_home()
        self.location = location or ("local" if root is None else self.root.as_uri())
        self.tickets = self.root / "tickets"
        self.setting = setting

    def __repr__(self) -> str:
        return f"LocalRegistry({str(self.root)!r})"

    # --- locking ----------------------------------------------------------------------

    @contextmanager
    def reading(self):
        """Hold the registry shared: no rm, gc or push changes it until the block ends
        (without effect where the lock file cannot be opened: see :mod:`.lock`)."""
        with lock.shared(self.root):
            yield

    def _setting_error(self, message: str) -> RegistryError:
        if self.setting.isupper():  # an environment variable: the library may name it
            return RegistryError(message, hint=f"set {self.setting} to a writable folder")
        return RegistryError(message, field=self.setting, value=str(self.root), hint="choose a writable folder")

    # --- writing ----------------------------------------------------------------------

    def _ensure(self) -> None:
        try:
            self.tickets.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise self._setting_error(f"registry folder {self.root} is not writable: {e.strerror}") from None

    def _locked(self, what: str, work, *, sweep: bool = True):
        """Run ``work()`` holding the registry lock, after sweeping what killed writers left
        (``gc`` passes ``sweep=False``: it reports them itself).

        ``what`` completes "cannot ..." in an error message (e.g. "publish 'x' to /reg").
        """
        self._ensure()
        try:
            with lock.exclusive(self.root):
                if sweep:
                    self._sweep()
                return work()
        except OSError as e:
            if isinstance(e, TicketzooError):
                if isinstance(e, StorageError):
                    raise RegistryError(f"cannot {what}: {e.message}; nothing was changed") from None
                raise
            if e.errno == errno.ENOSPC:
                msg = f"no space left on the device holding {e.filename or self.root}"
            elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                msg = f"{e.filename or self.root}: {e.strerror}"
            else:
                msg = e.strerror or str(e)
            raise RegistryError(f"cannot {what}: {msg}; nothing was changed") from None

    def leftovers(self) -> list[Path]:
        """Temp files and folders of writers killed midway (ticketzoo's own names only: the
        root may be a folder the user shares with other files). Call with the lock held."""
        levels = [(self.root, _LEFTOVER_IN_ROOT), (self.tickets, _LEFTOVER_IN_TICKETS)]
        levels += [(p, _LEFTOVER_IN_NAME) for p in self.tickets.iterdir()
                   if valid_name(p.name) and p.is_dir() and not p.is_symlink()]
        return [p for folder, pattern in levels for p in sorted(folder.iterdir()) if pattern.match(p.name)]

    def unfinished(self) -> list[Path]:
        """Ticket folders without ``HEAD``: a first push that failed or was killed before it
        set one (no command can see them). Call with the lock held."""
        if not self.tickets.is_dir():
            return []
        return [p for p in sorted(self.tickets.iterdir()) if valid_name(p.name) and p.is_dir()
                and not p.is_symlink() and not os.path.lexists(p / "HEAD")]

    def _sweep(self) -> None:
        """Delete temp files and folders of writers killed mid-publish, and ticket folders a
        failed first push left without HEAD. Called with the lock held: every writer of such
        names holds it, so none of them is still in use."""
        for p in self.leftovers() + self.unfinished():
            try:
                delete(p)
            except OSError:  # another user's leftover: gc reports what stays
                pass

    def publish(self, ticket: Ticket | bytes, *, name: str | None = None, data: bytes | None = None) -> Entry:
        """Store a ticket under ``name`` (default: its card's name) as a new revision.

        Given its bytes (``ticket`` itself, or ``data`` beside the decoded ``ticket``), they
        are stored unchanged (so a pushed file and the pulled one are byte-identical) unless
        a new name forces a re-serialisation.
        """
        if isinstance(ticket, bytes):
            from ticketzoo.ticket import Ticket

            ticket, data = Ticket.from_bytes(ticket), ticket
        name = check_name(name or ticket.name)
        try:
            ticket.check_arch()  # a stored ticket's tensors fit the network its card names
        except UnknownArchitectureError:
            pass  # pulled from a newer ticketzoo: the file is valid (push refuses it before this)
        if ticket.name != name:
            ticket, data = ticket.with_card(name=name), None
        if data is None:
            data = ticket.to_bytes()
        card = ticket.card
        try:
            return self._locked(f"publish {name!r} to {self.root}", lambda: self._publish_locked(name, data, card))
        except RegistryError as e:
            if e.message.endswith("nothing was changed"):
                raise RegistryError(e.message.replace("nothing was changed", "nothing was published")) from None
            raise

    def read_state(self) -> dict:
        """``state.json`` (what was pulled and fine-tuned last); {} when absent or unreadable."""
        try:
            state = json.loads((self.root / STATE_FILE).read_text())
        except (OSError, ValueError, RecursionError):
            return {}
        return state if isinstance(state, dict) else {}

    def update_state(self, changes: dict, *, check=None) -> None:
        """Merge ``changes`` into ``state.json``, under the lock (read, merge, atomic replace);
        ``check()``, called first under the lock, may refuse the change by raising."""
        def work():
            if check is not None:
                check()
            state = {**self.read_state(), **changes}
            atomic_write_bytes(self.root / STATE_FILE, json.dumps(state, indent=2).encode(), registry=True)

        self._locked(f"record the registry state in {self.root}", work)

    def _publish_locked(self, name: str, data: bytes, card: Card) -> Entry:
        base = self.tickets / name
        first = not base.exists()
        base.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700: a revision is shared as its files are
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
            atomic_write_bytes(base / "HEAD", (rev + "\n").encode(), registry=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if first:  # nothing of this name was here: leave nothing (no HEAD-less folder)
                shutil.rmtree(base, ignore_errors=True)
            raise
        return read_entry(final, location=self.location)

    # --- reading ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Ticket names with a HEAD (and those this user cannot look into: ``scan`` reports them)."""
        try:
            if not self.tickets.is_dir():
                return []
            folders = list(self.tickets.iterdir())
        except OSError as e:
            raise RegistryError(f"{self.tickets}: cannot read the registry: {e.strerror}") from None

        def headed(p: Path) -> bool:
            try:
                return (p / "HEAD").is_file()
            except OSError:  # e.g. a folder of another user: not ours to judge, scan says why
                return p.is_dir()

        return sorted(p.name for p in folders if valid_name(p.name) and headed(p))

    def revisions(self, name: str) -> list[str]:
        base = self.tickets / check_name(name)
        try:
            if not base.is_dir():
                return []
            return sorted(p.name for p in base.iterdir() if REV_RE.match(p.name) and p.is_dir())
        except OSError as e:
            raise RegistryError(f"{base}: cannot read ticket {name!r}: {e.strerror}") from None

    def has(self, name: str, revision: str | None = None) -> bool:
        try:
            self.resolve(name, revision)
            return True
        except TicketNotFoundError:
            return False

    def head(self, name: str) -> str | None:
        """The revision ``name``'s HEAD names (None when the registry holds no ``name``)."""
        base = self.tickets / check_name(name)
        head = base / "HEAD"
        try:
            with open(head, "rb") as f:
                text = f.read(64).decode("ascii", "replace").strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise RegistryError(f"{head}: cannot read: {e.strerror}") from None
        if not REV_RE.match(text):  # it becomes a path: never "../..", never anything else
            raise RegistryError(f"{head}: does not name a revision of {name!r} ({shown(text)}); "
                                "the registry is damaged", hint=f"push {name} again, or delete {base}")
        return text

    def resolve(self, name: str, revision: str | None = None) -> Entry:
        """The entry for ``name`` at ``revision`` (a unique prefix of ≥4 digits) or HEAD.

        Without the lock held (:meth:`reading`), a revision ``rm`` removes meanwhile is a
        TicketNotFoundError saying so, never damage."""
        base = self.tickets / check_name(name)
        ref = f"{name}@{revision}" if revision else name
        if revision is None:
            text = self.head(name)
            if text is None:
                raise TicketNotFoundError(f"no ticket {name!r} in registry {self.location}", ref=ref)
            matches = [text]
        else:
            revs = self.revisions(name)
            matches = [r for r in revs if len(revision) >= 4 and r.startswith(revision)]
            if len(matches) != 1:
                known = ", ".join(revs) or "none"
                problem = "is ambiguous" if matches else "not found"
                raise TicketNotFoundError(
                    f"revision {shown(revision)} of {name!r} {problem} in {self.location} (revisions: {known})",
                    ref=ref,
                )
        folder = base / matches[0]
        if not folder.is_dir():
            if revision is None and not base.exists():
                raise self._removed(name, matches[0])
            raise TicketNotFoundError(f"revision {matches[0]} of {name!r} is missing in {self.location}", ref=ref)
        if any(p.is_symlink() for p in (folder, folder / README, folder / TICKET_FILE)):
            raise RegistryError(f"{folder}: a registry revision must be a plain folder of plain files, "
                                "not a link (to elsewhere)", hint=f"delete {folder} and push the ticket again")
        try:
            entry = read_entry(folder, location=self.location)
        except (RegistryError, IntegrityError):
            if not folder.exists():
                raise self._removed(name, matches[0]) from None
            raise
        if (entry.name, entry.revision) != (name, matches[0]):
            raise IntegrityError(
                f"{folder / README}: records ticket {entry.name}@{entry.revision}, but its folder is "
                f"{name}@{matches[0]}", path=folder, hint=f"delete {folder} and push the ticket again")
        return entry

    def _removed(self, name: str, revision: str) -> TicketNotFoundError:
        """The error for a revision another command removed while this one read it."""
        error = TicketNotFoundError(f"ticket {name}@{revision} was removed from {self.location} while it was "
                                    "being read", ref=f"{name}@{revision}",
                                    hint="another command (rm, gc) removed it; pull it again if it is still published")
        error.removed = True
        return error

    def read(self, name: str, revision: str | None, work):
        """``work(entry)`` on ``name@revision`` (or HEAD), resolved and run under :meth:`reading`.

        A revision removed meanwhile (possible only where the lock file could not be
        opened) is a TicketNotFoundError saying so, not a missing or damaged file."""
        with self.reading():
            entry = self.resolve(name, revision)
            try:
                return work(entry)
            except (OSError, IntegrityError, RegistryError, TicketFormatError) as e:
                if not entry.folder.exists():
                    raise self._removed(entry.name, entry.revision) from None
                if isinstance(e, OSError) and not isinstance(e, TicketzooError):
                    raise RegistryError(f"{e.filename or entry.folder}: cannot read: {e.strerror}") from None
                raise

    def pull(self, name: str, revision: str | None = None) -> Entry:
        """Resolve and verify the sha256 of the stored file."""
        return self.read(name, revision, verify_entry)

    def scan(self) -> tuple[list[Entry], list[tuple[str, str]]]:
        """Every ticket at its HEAD, and ``(name, problem)`` for those that cannot be read."""
        out, damaged = [], []
        with self.reading():
            for name in self.names():
                try:
                    out.append(self.resolve(name))
                except TicketNotFoundError:
                    continue
                except (RegistryError, IntegrityError, ValueError, OSError) as e:
                    damaged.append((name, str(e)))
        return out, damaged

    def entries(self) -> list[Entry]:
        return self.scan()[0]
