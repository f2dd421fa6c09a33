"""One entry point per registry verb, whatever the backend a reference names.

Each verb parses its reference once and hands it to the backend for its kind
(:func:`ticketzoo.registry.base.backend_for`); no verb branches on the kind itself.
Pulled tickets always land in the local registry (``$TICKETZOO_HOME``), verified, so
later commands work offline by name. ``$TICKETZOO_REGISTRY`` is the default remote:
``push`` goes there when no registry is given, and a name found neither locally nor in
the catalog is looked up there.
"""

from __future__ import annotations

import fnmatch

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

from ticketzoo.errors import ConfigError, RegistryError, StorageError, TicketNotFoundError, UnknownArchitectureError
from ticketzoo.fileio import sha256_bytes
from ticketzoo.folder import Entry
from ticketzoo.registry.base import Opened, Pushed, backend_for
from ticketzoo.registry.catalog import BUNDLED, catalog_entry, load_catalog
from ticketzoo.registry.checks import listing_problem, ticket_warnings  # noqa: F401 (ticket_warnings: re-exported)
from ticketzoo.registry.cleanup import GcReport, gc, remove
from ticketzoo.registry.local import LocalRegistry
from ticketzoo.registry.named import default_remote, ticket_file
from ticketzoo.registry.refs import Ref, check_name, local_registry_ref, parse_ref, parse_registry_url
from ticketzoo.registry.state import (Last, finetune_failed, finetune_started, last_finetuned, last_pulled, last_ticket,  # noqa: F401
                                      record_pull, remember_finetuned, unfinished_finetune)

if TYPE_CHECKING:  # imported (with torch) where it is used: list, info, gc, rm import no torch
    from ticketzoo.ticket import Ticket

__all__ = ["Pushed", "Last", "Base", "pull", "open_ticket", "push", "verify", "resolve_card", "list_entries",
           "scan_entries", "filter_entries", "ticket_path", "open_base", "last_pulled", "remember_finetuned",
           "last_finetuned", "last_ticket", "finetune_failed", "finetune_started", "newer_revision", "remove_ticket", "collect_garbage", "ticket_warnings"]

log = logging.getLogger("ticketzoo")

#: Every publish option some backend takes (each backend declares its own subset).
PUBLISH_OPTIONS = frozenset({"private", "revision", "tag", "message", "license"})


def _home(home: Path | None) -> LocalRegistry:
    return LocalRegistry(home) if home is not None else LocalRegistry()


# --- verbs -------------------------------------------------------------------------------------


def pull(ref_text: str, registry: str | None = None, *, home: Path | None = None, record: bool = True,
         warn: Callable[[str], None] | None = None) -> Entry:
    """Bring a ticket into the local registry (verified) and return its entry.

    ``registry`` (a URL or folder) looks the NAME[@REV] up there. ``record`` makes it "the
    ticket pulled last" (what ``finetune`` uses without a REF); commands that only
    resolve a reference pass False. When only that record cannot be written (a full disk,
    a read-only home) the pull still succeeds: ``warn`` (default: the ``ticketzoo``
    logger) hears why. A revision removed by ``rm``/``gc`` before the record is made is a
    TicketNotFoundError ("removed while it was being read").
    """
    local = _home(home)
    ref = parse_ref(ref_text)
    if registry is not None:
        name, revision = backend_for(ref.kind).as_name(ref)
        target = parse_registry_url(registry)
        ref = backend_for(target.kind).locate(target, name, revision)
    entry = backend_for(ref.kind).pull(ref, local)
    if record:
        try:
            record_pull(local, ref_text, entry)
        except (RegistryError, StorageError) as e:  # the ticket is in place: the pull succeeded
            (warn or log.warning)(f"{e.message}: the pull worked, but `finetune` and `push` without a ticket "
                                  "will not know it was pulled last")
    return entry


def open_ticket(ref_text: str, *, home: Path | None = None) -> tuple[Ticket, Entry | None]:
    """A validated Ticket for a path or a reference (pulling it first when needed), and its
    registry entry (None for a file or folder given by path)."""
    ref = parse_ref(ref_text)
    opened = backend_for(ref.kind).open(ref, _home(home))
    return opened.ticket, opened.entry


class Base(NamedTuple):
    """The ticket a fine-tune starts from, as :func:`open_base` found it."""

    ticket: Ticket
    ref: str  # what the fine-tune's card records as its parent: NAME@REV, or the card's name for a file
    sha256: str  # of the ticket file
    last_pulled: bool  # True when no reference was given and the ticket pulled last was taken


def open_base(ref_text: str | None, *, home: Path | None = None) -> Base:
    """The base ticket of a fine-tune: ``ref_text`` (read once), or without one the ticket
    pulled last; TicketNotFoundError when none was given and none pulled yet."""
    if ref_text is None:
        from ticketzoo.ticket import Ticket

        entry = last_pulled(home)
        if entry is None:
            raise TicketNotFoundError("no ticket given and none pulled yet",
                                      hint="pass a ticket, or run `ticketzoo pull NAME` first "
                                           "(`ticketzoo list` shows the zoo)")
        return Base(Ticket.load(entry.file), f"{entry.name}@{entry.revision}", entry.sha256, True)
    ref = parse_ref(ref_text)
    opened = backend_for(ref.kind).open(ref, _home(home))
    if opened.entry is not None:  # a Hub ticket keeps its Hub ref: its card's base_model (issue 19)
        parent = ref.text if ref.text.startswith("hf://") else f"{opened.entry.name}@{opened.entry.revision}"
        return Base(opened.ticket, parent, opened.entry.sha256, False)
    return Base(opened.ticket, opened.ticket.name, sha256_bytes(opened.data), False)


def _check_arch(ticket: Ticket) -> None:
    """Every tensor against the architecture the card names; an unknown one is refused."""
    try:
        ticket.check_arch()
    except UnknownArchitectureError as e:
        from ticketzoo import __version__

        where = ticket.path or ticket.name
        raise UnknownArchitectureError(
            f"{where}: architecture {ticket.card.arch.name!r} is unknown to ticketzoo {__version__}, so its "
            f"tensors cannot be checked ({e.message.split('; ', 1)[-1]})", name=e.name,
            hint="a newer ticketzoo may know it: upgrade, then try again") from None


def ticket_to_push(home: Path | None = None) -> Last:
    """What ``push`` with no source publishes: the ticket fine-tuned or pulled last."""
    unfinished = unfinished_finetune(home)
    if unfinished is not None:
        where = f" into {unfinished.out}" if unfinished.out else ""
        why = (f"failed ({unfinished.error})" if unfinished.error is not None
               else "did not finish (it was killed, or still runs)")
        raise TicketNotFoundError(f"the last fine-tune{where} {why}, so there is no result of it to push",
                                  hint="give the ticket to push: a ticket file, folder or NAME")
    last = last_ticket(home)
    if last is None:
        raise TicketNotFoundError("no ticket given, and none fine-tuned or pulled yet",
                                  hint="give a ticket file or NAME to push")
    return last


def push(source: str | None = None, registry: str | None = None, *, name: str | None = None,
         home: Path | None = None, **options) -> Pushed:
    """Publish a ticket (a file, a folder or a reference) to ``registry``: a URL or folder,
    default ``$TICKETZOO_REGISTRY``, else the local registry. Without ``source``, the
    ticket fine-tuned or pulled last (:func:`last_ticket`).

    ``options`` are the target backend's own (the hub's ``private``, ``revision``, ``tag``,
    ``message``, ``license``); a backend refuses those it does not take. A ticket whose
    architecture this ticketzoo does not know, or whose tensors do not fit it, is refused.
    """
    unknown = set(options) - PUBLISH_OPTIONS
    if unknown:
        raise TypeError(f"push() got unexpected option(s) {', '.join(sorted(unknown))}")
    local = _home(home)
    if source is None:
        source = ticket_to_push(home).source
    ref = parse_ref(source)
    opened = backend_for(ref.kind).open(ref, local)
    _check_arch(opened.ticket)
    if options.get("license") is not None:  # a card field, so every backend stores it (issue 19); "" is refused there
        opened = _licensed(opened, options.pop("license"))
    name = check_name(name or opened.ticket.name)
    target = _target(registry, local)
    backend = backend_for(target.kind)
    backend.check_options(target, options)
    return backend.publish(opened, target, name, options)


def check_target(registry: str | None = None, *, home: Path | None = None) -> None:
    """Refuse now the registry a push would go to when its setting names no usable folder,
    so that a fine-tune or search that ends in a push fails before it trains, not after."""
    target = _target(registry, _home(home))
    backend_for(target.kind).check_target(target)


def _licensed(opened: Opened, license_: str) -> Opened:
    """The ticket with ``license_`` in its card (new bytes, so a new revision when it changed)."""
    from ticketzoo.card.validate import HUB_LICENSES
    from ticketzoo.ticket import Ticket

    if not isinstance(license_, str) or license_ not in HUB_LICENSES:
        raise ConfigError(f"license {license_!r} is not a Hub license id (lower case, e.g. mit, apache-2.0, "
                          "cc-by-4.0, other)", field="license", value=license_)
    if opened.ticket.card.license == license_:
        return opened
    data = opened.ticket.with_card(license=license_).to_bytes()
    return Opened(Ticket.from_bytes(data, opened.ticket.path), data, None)


def _target(registry: str | None, local: LocalRegistry) -> Ref:
    if registry is not None:
        return parse_registry_url(registry)
    return default_remote() or local_registry_ref(local.root)


def ticket_path(source: str) -> Path:
    """The ticket file a path reference names (a file, or a folder holding ticket.safetensors)."""
    ref = parse_ref(source)
    return ticket_file(ref.path if ref.path is not None else Path(source))


def verify(ref_text: str, *, home: Path | None = None) -> tuple[Ticket, Entry | None]:
    """Check a path or a stored ticket: sha256 against its record, the README card against the
    file's own, every format invariant, and every tensor against the architecture (built on
    the meta device). A ticket whose architecture this ticketzoo does not know is refused:
    nothing says its tensors fit a network."""
    ref = parse_ref(ref_text)
    ticket, entry = backend_for(ref.kind).verify(ref, _home(home))
    _check_arch(ticket)
    return ticket, entry


def resolve_card(ref_text: str, *, home: Path | None = None):
    """The card of a ticket (and its entry, when stored), without pulling it when the
    catalog already describes it; a stored file is checked first (sha256, README card)."""
    ref = parse_ref(ref_text)
    return backend_for(ref.kind).card(ref, _home(home))


def newer_revision(name: str, revision: str) -> str | None:
    """The catalog's current revision of ``name`` when it is not ``revision`` (the ticket shown
    is an earlier one, superseded), else None."""
    try:
        head = catalog_entry(name)
    except RegistryError:  # a damaged catalog is reported by the commands that read it
        return None
    if head is None or head.entry.revision == revision or not head.revision(revision):
        return None  # the HEAD itself, or a revision the catalog never published
    return head.entry.revision


# --- listing -----------------------------------------------------------------------------------


def list_entries(*, home: Path | None = None, registry: str | None = None) -> list[tuple[Entry, str]]:
    """Entries as (entry, where): catalog and local ones (where in {"local", "catalog",
    "local+catalog"}), or those of ``registry`` (where = its URL)."""
    return [(e, w) for e, w, _ in scan_entries(home=home, registry=registry)[0]]


def scan_entries(*, home: Path | None = None, registry: str | None = None
                 ) -> tuple[list[tuple[Entry, str, str | None]], list[tuple[str, str]]]:
    """``([(entry, where, problem)], [(name, problem)])``: every listed entry with why it cannot
    be trusted as shown (None when it can: see :func:`listing_problem`), and tickets whose
    record cannot be read at all. With ``registry``, that registry's tickets instead."""
    if registry is not None:
        target = parse_registry_url(registry)
        return backend_for(target.kind).entries(target)
    local_reg = _home(home)
    with local_reg.reading():  # no rm or gc between reading an entry and checking its file
        found, damaged = local_reg.scan()
        local = {e.name: e for e in found}
        problems = {n: listing_problem(e) for n, e in local.items()}
    catalog = load_catalog()
    rows = []
    for n in sorted(set(local) | set(catalog)):
        if n in local and n in catalog and catalog[n].supersedes(local[n].revision):
            # The bare name now means the catalog's HEAD (named.current): list that, held here or not.
            try:
                with local_reg.reading():
                    entry = local_reg.resolve(n, catalog[n].entry.revision)
                    rows.append((entry, "local+catalog", listing_problem(entry)))
                continue
            except TicketNotFoundError:
                local.pop(n)
        if n in local:
            where = "local+catalog" if n in catalog else "local"
            rows.append((local[n], where, problems[n]))
        else:
            item = catalog[n]
            problem = listing_problem(item.entry) if item.location == BUNDLED else None
            rows.append((item.entry, "catalog", problem))
    return rows, damaged


def filter_entries(rows, *, arch: str | None = None, source: str | None = None, min_sparsity: float | None = None,
                   max_sparsity: float | None = None) -> list:
    """The rows of :func:`scan_entries` (or :func:`list_entries`) whose card matches every
    filter given: the one filter of ``ticketzoo list`` and ``ticketzoo.list_tickets``.

    ``arch`` and ``source`` match case-insensitively, as a glob pattern when they hold ``*``,
    ``?`` or ``[`` (``"*lenet*"``, as timm's ``list_models``), else as a part of the name
    (``"LeNet"`` finds ``lenet_300_100``, ``"fashion"`` finds ``fashionmnist``)."""
    if min_sparsity is not None and max_sparsity is not None and min_sparsity > max_sparsity:
        raise ConfigError(f"min_sparsity {min_sparsity:g} is above max_sparsity {max_sparsity:g}: nothing can match",
                          field="min_sparsity", value=min_sparsity)

    def keep(card) -> bool:
        return (_matches(arch, card.arch.name) and _matches(source, card.source.dataset)
                and (min_sparsity is None or card.sparsity >= min_sparsity)
                and (max_sparsity is None or card.sparsity <= max_sparsity))

    return [row for row in rows if keep(row[0].card)]


def _matches(pattern: str | None, name: str) -> bool:
    if pattern is None:
        return True
    pattern, name = pattern.lower(), name.lower()
    return fnmatch.fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


# --- local registry upkeep ---------------------------------------------------------------------


def remove_ticket(ref_text: str, *, home: Path | None = None) -> tuple[str, list[str]]:
    """Remove NAME (every revision) or NAME@REV from the local registry, atomically and under
    its lock; returns ``(name, revisions removed)``."""
    ref = parse_ref(ref_text)
    name, revision = backend_for(ref.kind).as_name(ref)
    return name, remove(_home(home), name, revision)


def collect_garbage(*, home: Path | None = None, registry: str | None = None, dry_run: bool = False,
                    old_revisions: bool = False) -> GcReport:
    """``gc`` of the local registry, or of the folder registry ``registry`` names (see
    :mod:`ticketzoo.registry.cleanup` for what goes). In the local registry
    ``old_revisions`` spares the revision pulled last, read under the lock gc holds."""
    if registry is None:
        local = _home(home)
        return gc(local, dry_run=dry_run, old_revisions=old_revisions, keep=lambda: _pulled_last(local))
    target = parse_registry_url(registry)
    return gc(backend_for(target.kind).folder_registry(target), dry_run=dry_run, old_revisions=old_revisions)


def _pulled_last(local: LocalRegistry) -> frozenset[tuple[str, str]]:
    pulled = local.read_state().get("last_pulled")
    try:
        return frozenset({(str(pulled["name"]), str(pulled["revision"]))})
    except (KeyError, TypeError):
        return frozenset()
