"""One interface for every registry backend, and the table that picks one by reference kind.

A backend answers for one kind of reference (:attr:`ticketzoo.registry.refs.Ref.kind`):

=========  ==========================================  ======================================
kind       references                                  backend
=========  ==========================================  ======================================
``name``   ``NAME[@REV]``: local registry, catalog     :class:`~.named.NamedBackend`
``path``   a ticket file or a folder holding one       :class:`~.named.PathBackend`
``local``  the local registry as a push/list target    :class:`~.files.LocalBackend`
``file``   ``file:///DIR[/NAME]`` or a plain folder     :class:`~.files.FileBackend`
``hf``     ``hf://ORG[/REPO][/NAME]``                  :class:`~.hub_backend.HubBackend`
=========  ==========================================  ======================================

Like fsspec's ``known_implementations``, the table maps a kind to a ``module:Class``
string imported on first use, so this module imports no backend and no backend imports
the dispatcher (:mod:`.api`). :func:`register` adds a backend (refusing duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from ticketzoo.errors import ConfigError, IntegrityError, InvalidRefError
from ticketzoo.fileio import sha256_bytes
from ticketzoo.folder import Entry, read_entry, verify_entry
from ticketzoo.registry.checks import check_readme
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import Ref

if TYPE_CHECKING:  # imported (with torch) where it is used: list, info, gc, rm import no torch
    from ticketzoo.ticket import Ticket


@dataclass(frozen=True)
class Pushed:
    """Where a push put a ticket."""

    name: str
    location: str  # registry URL or "local"
    revision: str  # content revision (local) or commit sha (hub)
    sha256: str
    url: str = ""  # hub commit URL, when there is one


@dataclass(frozen=True)
class Fetched:
    """A ticket folder a backend fetched (not yet in the local registry)."""

    folder: Path
    location: str
    verified: bool = False  # the backend already checked the file against its README's sha256


@dataclass(frozen=True)
class Opened:
    """A ticket read once: its bytes, the ticket decoded from them, and its registry entry."""

    ticket: Ticket
    data: bytes
    entry: Entry | None  # None for a bare file


Listing = tuple[list[tuple[Entry, str, "str | None"]], list[tuple[str, str]]]


class Backend:
    """What a registry can do. Defaults cover backends that only fetch folders
    (:meth:`fetch`); each backend overrides what it does differently."""

    #: Options :meth:`publish` takes beyond the ticket and its name (e.g. the hub's ``tag``).
    options: frozenset[str] = frozenset()

    def fetch(self, ref: Ref) -> Fetched:
        """Download or locate the folder ``ref`` names."""
        raise InvalidRefError(f"{ref.text!r} cannot be fetched", ref=ref.text)

    def as_name(self, ref: Ref) -> tuple[str, str | None]:
        """``(name, revision)`` of a bare ``NAME[@REV]`` reference; other kinds refuse."""
        raise InvalidRefError(f"{ref.text!r} is not a ticket NAME[@REV]", ref=ref.text,
                              hint="give the ticket's name, e.g. NAME or NAME@REV")

    def locate(self, target: Ref, name: str, revision: str | None) -> Ref:
        """The reference of ticket ``name`` in registry ``target`` (``pull NAME --registry``)."""
        raise InvalidRefError(f"cannot look up tickets by name in {target.text!r}", ref=target.text)

    def pull(self, ref: Ref, local: LocalRegistry) -> Entry:
        """Bring the ticket into ``local``, verified; its local entry."""
        got = self.fetch(ref)
        return import_folder(local, got.folder, got.location, verified=got.verified)

    def open(self, ref: Ref, local: LocalRegistry) -> Opened:
        """The ticket, read and decoded once (pulled into ``local`` first when remote)."""
        entry = self.pull(ref, local)
        return local.read(entry.name, entry.revision, open_entry)

    def verify(self, ref: Ref, local: LocalRegistry) -> tuple[Ticket, Entry | None]:
        """Check sha256 and the README card against the file (the architecture check is the
        dispatcher's, the same for every backend)."""
        entry = self.pull(ref, local)
        return local.read(entry.name, entry.revision, verify_stored)

    def card(self, ref: Ref, local: LocalRegistry):
        """``(card, entry)``: the card, without decoding tensors when the backend can."""
        entry = self.pull(ref, local)
        return entry.card, entry

    def publish(self, opened: Opened, target: Ref, name: str, options: dict) -> Pushed:
        """Store the ticket under ``name`` in ``target``."""
        raise InvalidRefError(f"cannot publish to {target.text!r}", ref=target.text)

    def folder_registry(self, target: Ref) -> LocalRegistry:
        """The folder registry ``target`` names, for ``gc --registry``; other kinds refuse."""
        raise InvalidRefError(f"{target.text!r} is not a folder registry: gc works on the local registry and "
                              "file:// ones", ref=target.text)

    def entries(self, target: Ref) -> Listing:
        """``([(entry, where, problem)], [(name, problem)])`` for ``list --registry``."""
        raise InvalidRefError(f"cannot list {target.text!r}", ref=target.text)

    def check_target(self, target: Ref) -> None:
        """Refuse a publish target that cannot work (checked before a long run that ends in
        a push); the default accepts it (a remote says at publish time)."""

    def check_options(self, target: Ref, options: dict) -> None:
        """Refuse publish options this backend does not take (never silently drop them)."""
        for key, value in options.items():
            if key not in self.options and value not in (None, False):
                raise ConfigError(f"{key} applies only to hf:// registries, not {target.text}",
                                  field=key, value=value)


def open_entry(entry: Entry) -> Opened:
    """Read a stored ticket once: its bytes checked against the recorded size and sha256,
    then decoded (call under the registry's read lock: :meth:`LocalRegistry.read`)."""
    from ticketzoo.ticket import Ticket

    data = entry.file.read_bytes()
    if len(data) != entry.size or sha256_bytes(data) != entry.sha256:
        verify_entry(entry)  # says what differs (or that the file changed since it was read)
        raise IntegrityError(f"{entry.file}: changed while it was being read", path=entry.file)
    return Opened(Ticket.from_bytes(data, entry.file), data, entry)


def verify_stored(entry: Entry) -> tuple[Ticket, Entry]:
    """sha256, format and README card of a stored ticket (under the read lock)."""
    opened = open_entry(entry)
    check_readme(entry, opened.ticket.card)
    return opened.ticket, entry


def import_folder(local: LocalRegistry, folder: Path, location: str, expect_sha: str | None = None, *,
                  verified: bool = False) -> Entry:
    """Verify a fetched ticket folder (unless its fetcher already did) and publish it locally."""
    from ticketzoo.ticket import Ticket

    entry = read_entry(folder, location=location)
    if not verified:
        verify_entry(entry)
    if expect_sha is not None and entry.sha256 != expect_sha:
        raise IntegrityError(
            f"{entry.file}: sha256 {entry.sha256[:12]}… differs from the catalog's {expect_sha[:12]}…",
            path=entry.file,
        )
    data = entry.file.read_bytes()
    ticket = Ticket.from_bytes(data, entry.file)
    check_readme(entry, ticket.card)
    return local.publish(ticket, data=data)  # validates every invariant first


_KNOWN: dict[str, str] = {
    "name": "ticketzoo.registry.named:NamedBackend",
    "path": "ticketzoo.registry.named:PathBackend",
    "local": "ticketzoo.registry.files:LocalBackend",
    "file": "ticketzoo.registry.files:FileBackend",
    "hf": "ticketzoo.registry.hub_backend:HubBackend",
}
_LOADED: dict[str, Backend] = {}


def register(kind: str, backend: str | type[Backend], *, replace: bool = False) -> None:
    """Add a backend for references of ``kind`` (a ``module:Class`` string or a class)."""
    if kind in _KNOWN and not replace:
        raise ValueError(f"a registry backend for {kind!r} is already registered ({_KNOWN[kind]})")
    if isinstance(backend, type):
        _LOADED[kind] = backend()
        backend = f"{backend.__module__}:{backend.__qualname__}"
    else:
        _LOADED.pop(kind, None)
    _KNOWN[kind] = backend


def backend_for(kind: str) -> Backend:
    """The backend for references of ``kind``."""
    if kind not in _LOADED:
        if kind not in _KNOWN:
            raise InvalidRefError(f"no registry backend for {kind!r}; known: {', '.join(sorted(_KNOWN))}")
        module, cls = _KNOWN[kind].split(":")
        _LOADED[kind] = getattr(import_module(module), cls)()
    return _LOADED[kind]
