"""Backends for the references a user types without a scheme: ``NAME[@REV]`` and file paths.

A name resolves in the local registry first, then in the zoo catalog (whose entries may
live on the Hub or in a ``file://`` registry: fetched through that backend and checked
against the sha256 the catalog records), then in ``$TICKETZOO_REGISTRY`` when it is set.
A bare NAME whose local HEAD is a revision the catalog has since superseded means the
catalog's HEAD (:func:`current`), so one command takes one ticket on every machine.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import replace
from pathlib import Path

from ticketzoo.errors import (IntegrityError, InvalidRefError, TicketFormatError, TicketNotFoundError,
                              TicketzooError, short)
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.folder import README, Entry, read_entry, verify_entry
from ticketzoo.names import shown
from ticketzoo.registry.base import Backend, Opened, backend_for, import_folder, open_entry, verify_stored
from ticketzoo.registry.catalog import BUNDLED, CatalogEntry, catalog_entry, load_catalog
from ticketzoo.registry.checks import check_readme
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.refs import Ref, parse_ref, parse_registry_url, path_exists

DEFAULT_REGISTRY_ENV = "TICKETZOO_REGISTRY"


def default_remote() -> Ref | None:
    """``$TICKETZOO_REGISTRY`` parsed as a registry URL (or folder), or None when unset."""
    value = os.environ.get(DEFAULT_REGISTRY_ENV, "").strip()
    if not value:
        return None
    try:
        return parse_registry_url(value, setting=DEFAULT_REGISTRY_ENV)
    except InvalidRefError as e:
        raise InvalidRefError(f"{DEFAULT_REGISTRY_ENV}: {e.message}", ref=e.ref, hint=e.hint) from None


def current(ref: Ref, local: LocalRegistry) -> Ref:
    """``ref`` with the catalog's HEAD revision when it is a bare NAME and the local HEAD is an
    earlier catalog revision (pulled before the catalog moved on, or pulled as NAME@REV);
    otherwise ``ref`` itself. A local HEAD the catalog never published (the user's own push)
    stays what the bare name means."""
    if ref.revision is not None:
        return ref
    try:
        held = local.head(ref.name)
        head = catalog_entry(ref.name) if held is not None else None
    except TicketzooError:  # a damaged HEAD or catalog entry: the usual path reports it
        return ref
    return replace(ref, revision=head.entry.revision) if head is not None and head.supersedes(held) else ref


class NamedBackend(Backend):
    """``NAME[@REV]``: the local registry, else the catalog, else ``$TICKETZOO_REGISTRY``."""

    def as_name(self, ref: Ref) -> tuple[str, str | None]:
        return ref.name, ref.revision

    def pull(self, ref: Ref, local: LocalRegistry) -> Entry:
        """A local ticket, verified; else (or when the local copy is damaged) the catalog's."""
        ref = current(ref, local)
        damaged: IntegrityError | None = None
        missing: TicketNotFoundError | None = None
        try:
            return local.pull(ref.name, ref.revision)
        except IntegrityError as e:
            damaged = e  # re-fetch from the catalog below when it has this ticket
        except TicketNotFoundError as e:
            missing = e
        catalog = load_catalog()
        head = catalog.get(ref.name)
        item = head.revision(ref.revision) if head is not None else None  # HEAD, or NAME@REV of an earlier one
        if item is None:
            if damaged is not None:
                raise damaged
            return self._from_default_remote(ref, local, catalog, missing)
        if item.location == BUNDLED:
            folder = item.entry.folder
        else:
            where = parse_ref(item.location)
            if where.kind not in ("hf", "file"):
                raise InvalidRefError(f"catalog location {item.location!r} must be bundled, hf:// or file://",
                                      ref=item.location)
            folder = backend_for(where.kind).fetch(where).folder
        return import_folder(local, folder, item.location, expect_sha=item.entry.sha256)

    def _from_default_remote(self, ref: Ref, local: LocalRegistry, catalog: dict[str, CatalogEntry],
                             missing: TicketNotFoundError | None = None) -> Entry:
        remote = default_remote()
        also = ""
        if remote is not None:
            backend = backend_for(remote.kind)
            try:
                return backend.pull(backend.locate(remote, ref.name, ref.revision), local)
            except TicketNotFoundError:
                also = f" or {DEFAULT_REGISTRY_ENV} ({remote.text})"
        if missing is not None and getattr(missing, "removed", False):
            raise missing  # it was there when the read began: say so, not "no such ticket"
        if ref.revision and (ref.name in catalog or local.revisions(ref.name)):
            raise _no_revision(ref, local, catalog, also)
        raise _not_found(ref.name, local, catalog, also)

    def open(self, ref: Ref, local: LocalRegistry) -> Opened:
        """A local ticket read once under the read lock; else (or when the local copy is
        damaged) pulled first, as :meth:`pull` does."""
        ref = current(ref, local)
        try:
            return local.read(ref.name, ref.revision, open_entry)
        except (TicketNotFoundError, IntegrityError) as e:
            if getattr(e, "removed", False):
                raise
        return super().open(ref, local)

    def verify(self, ref: Ref, local: LocalRegistry):
        ref = current(ref, local)
        try:  # a damaged local copy is reported, not repaired
            return local.read(ref.name, ref.revision, verify_stored)
        except TicketNotFoundError as e:
            if getattr(e, "removed", False):
                raise
        return super().verify(ref, local)

    def card(self, ref: Ref, local: LocalRegistry):
        """A stored ticket file is checked first (sha256, and its header's card against the
        README's), so a damaged or missing file is an error, not a card shown as if intact."""
        def check(entry: Entry):
            check_readme(verify_entry(entry))
            return entry.card, entry

        ref = current(ref, local)
        try:
            return local.read(ref.name, ref.revision, check)
        except TicketNotFoundError as e:
            if getattr(e, "removed", False):
                raise
        head = load_catalog().get(ref.name)
        item = head.revision(ref.revision) if head is not None else None
        if item is not None:
            if item.location == BUNDLED:
                check_readme(verify_entry(item.entry))
            return item.entry.card, None
        return super().card(ref, local)


def _no_revision(ref: Ref, local: LocalRegistry, catalog: dict[str, CatalogEntry], also: str) -> TicketNotFoundError:
    """``NAME@REV`` where NAME exists but REV does not: the revision is what is missing."""
    known = set(local.revisions(ref.name))
    if ref.name in catalog:
        head = catalog[ref.name]
        known |= {item.entry.revision for item in (head, *head.earlier)}
    return TicketNotFoundError(
        f"revision {shown(ref.revision)} of {ref.name!r} not found in the local registry or the catalog{also} "
        f"(revisions: {', '.join(sorted(known)) or 'none'})", ref=ref.text,
        hint=f"`ticketzoo pull {ref.name}` takes its current revision")


def _not_found(name: str, local: LocalRegistry, catalog: dict[str, CatalogEntry], also: str) -> TicketNotFoundError:
    known = sorted(set(local.names()) | set(catalog))
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "run `ticketzoo list` to see available tickets"
    return TicketNotFoundError(f"no ticket named {name!r} in the local registry or the catalog{also}",
                               ref=name, hint=hint)


def ticket_file(path: Path) -> Path:
    """The ticket file a path names (a file, or a folder holding ticket.safetensors)."""
    try:
        return path / TICKET_FILE if path.is_dir() else path
    except OSError:  # e.g. a name too long for the OS: no folder, and open() says the file is missing
        return path


class PathBackend(Backend):
    """A ticket file on disk, or a folder holding ``ticket.safetensors``: read in place."""

    def pull(self, ref: Ref, local: LocalRegistry) -> Entry:
        raise InvalidRefError(f"{ref.text!r} is a file path; pull takes a name or URL", ref=ref.text,
                              hint="use `ticketzoo push PATH`")

    def open(self, ref: Ref, local: LocalRegistry) -> Opened:
        from ticketzoo.ticket import Ticket

        path = ticket_file(ref.path)
        if not path_exists(path):
            raise TicketNotFoundError(f"no ticket file at {short(str(path))}", ref=ref.text[:200])
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TicketFormatError(f"cannot read: {e.strerror}", path=path) from None
        return Opened(Ticket.from_bytes(data, path), data, None)

    def verify(self, ref: Ref, local: LocalRegistry):
        """A ticket file is checked for its format; one in a ticket folder (a registry revision,
        a fine-tune's output) also against the sha256, size and card its README records."""
        path = ticket_file(ref.path)
        if path.name == TICKET_FILE and (path.parent / README).is_file():
            try:
                entry = read_entry(path.parent, location=str(path.parent))
            except TicketzooError:
                entry = None  # a README without a record (hand-written): nothing to check against
            if entry is not None:
                return verify_stored(entry)
        return self.open(ref, local).ticket, None

    def card(self, ref: Ref, local: LocalRegistry):
        return self.open(ref, local).ticket.card, None
