"""ticketzoo from Python: tickets by any reference, in a few calls.

    import ticketzoo
    ticket = ticketzoo.load("fashionmnist-lenet-300-100-s79")   # a name, name@rev, hf://, file:// or a path
    ticketzoo.push(ticket, "file:///srv/zoo")
    ticketzoo.list_tickets(arch="resnet18", min_sparsity=0.8)
    model = ticketzoo.create_model("fashionmnist-lenet-300-100-s79", num_classes=5)  # like timm

The one front door, for scripts and for the CLI alike (every registry verb the CLI runs
comes from here, not from :mod:`ticketzoo.registry.api`): pulled tickets land, verified, in the local registry
(``$TICKETZOO_HOME``), so later loads work offline by name. One set of types comes back:
a :class:`Ticket` from :func:`load`, an :class:`Entry` (name, revision, sha256, file) for
what a registry holds (:func:`pull`, :func:`open_ticket`, :func:`verify`), a
:class:`Pushed` from :func:`push`, a :class:`Listed` from :func:`list_tickets`.

Below the everyday verbs are the registry's housekeeping (:func:`remove_ticket`,
:func:`collect_garbage`, :func:`resolve_card`, :func:`scan_entries`) and the fine-tune
workflow's shared state (:func:`open_base`, :func:`finetune_started`,
:func:`remember_finetuned`, :func:`ticket_to_push`): what ``ticketzoo finetune`` and
``ticketzoo push`` do between them, for a script that does the same.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ticketzoo.card import Card
from ticketzoo.fileformat import TICKET_FILE
from ticketzoo.folder import Entry
from ticketzoo.registry import api as _registry
from ticketzoo.registry.api import (Base, Last, Pushed, check_target, collect_garbage, filter_entries,  # noqa: F401
                                    finetune_failed, finetune_started, list_entries, newer_revision, open_base, open_ticket, remember_finetuned,
                                    remove_ticket, resolve_card, scan_entries, ticket_path, ticket_to_push,
                                    ticket_warnings, verify)

if TYPE_CHECKING:  # imported (with torch) where it is used: list, info, gc, rm import no torch
    from ticketzoo.ticket import Ticket

log = logging.getLogger(__name__)


def load(ref: str | Path, *, registry: str | None = None, home: Path | None = None) -> Ticket:
    """The validated :class:`Ticket` a reference names, pulled into the local registry first
    when it is not a path: ``name``, ``name@rev``, ``hf://org/repo[/name][@rev]``,
    ``file:///dir/name[@rev]``, a ``.safetensors`` file or a folder holding one. With
    ``registry`` (``file:///dir`` or ``hf://org[/repo]``), ``ref`` is a name in it."""
    from ticketzoo.ticket import Ticket

    if registry is not None:  # like a plain load: not recorded as the ticket pulled last
        return Ticket.load(_registry.pull(str(ref), registry, home=home, record=False).file)
    ticket, _ = open_ticket(str(ref), home=home)
    return ticket


def pull(ref: str, registry: str | None = None, *, home: Path | None = None, record: bool = True,
         warn=None) -> Entry:
    """Bring a ticket into the local registry (sha256 checked) and return its :class:`Entry`
    (``entry.file`` is the local ticket file). ``record=False`` leaves "the ticket pulled
    last" (what ``finetune`` takes without a REF) as it was; ``warn`` hears a record that
    could not be written (default: the ``ticketzoo`` logger)."""
    return _registry.pull(str(ref), registry, home=home, record=record, warn=warn)


def push(ticket: Ticket | str | Path, registry: str | None = None, *, name: str | None = None,
         home: Path | None = None, **options) -> Pushed:
    """Publish a ticket (a :class:`Ticket`, a file or folder, or a local ticket's name) to
    ``registry``: ``file:///dir``, ``hf://org[/repo]``, or by default the local registry.
    ``name`` overrides the card's name; hub ``options`` (``private``, ``revision``, ``tag``,
    ``message``) go to the Hub backend. Returns where it went (name, revision, sha256)."""
    from ticketzoo.ticket import Ticket

    if not isinstance(ticket, Ticket):
        return _registry.push(str(ticket), registry, name=name, home=home, **options)
    with tempfile.TemporaryDirectory(prefix="ticketzoo-push-") as tmp:
        path = Path(tmp) / TICKET_FILE
        ticket.save(path)
        return _registry.push(str(path), registry, name=name, home=home, **options)


def create_model(ref: str | Path, *, num_classes: int | None = None, weights: str | None = None,
                 registry: str | None = None, home: Path | None = None, **head: Any):
    """A ready ``torch.nn.Module`` from a ticket, in one call (as ``timm.create_model``).

    ``ref`` is anything :func:`load` takes. ``weights`` picks the weight set: by default
    ``"trained"`` (a trained network, like timm's pretrained weights), or ``"rewind"`` (θk,
    where a lottery ticket is retrained from) for a ticket that has no other, with a logged
    warning. With ``num_classes`` other than the ticket's the head is a fresh dense layer
    (``head_init``, ``seed`` and ``fresh_head`` go to :meth:`Ticket.to_model`). Pruned
    weights are exactly zero; keep them so while training with ``ticketzoo.keep_masks(model,
    ticket.head_masks_dropped())``.

        model = ticketzoo.create_model("fashionmnist-lenet-300-100-s79", num_classes=5)
    """
    from ticketzoo.errors import ConfigError

    ticket = load(ref, registry=registry, home=home)
    if weights is None:
        weights = ticket.ready_weights
        if weights != "trained":
            log.warning(f"ticket {ticket.name!r} has no trained weights: the model holds its "
                        f"{weights} weights (θk), as found, not trained")
    if weights not in ticket.weight_sets:
        raise ConfigError(f"ticket {ticket.name!r} has no weight set {weights!r} (it has: "
                          f"{', '.join(ticket.weight_sets)})", field="weights", value=weights)
    return ticket.to_model(weights, num_classes, **head)


def name_moved(source: str | Path, registry: str | None = None, *, name: str,
               home: Path | None = None) -> str | None:
    """``NAME@REV`` when ``name`` already names a *different* model in the folder registry
    ``registry`` (default ``$TICKETZOO_REGISTRY``, else the local one), so publishing ``source``
    under it would move the name; None when the name is free or holds this same ticket
    (only name or license differ). ``push --name`` refuses such a move without ``--force``.
    Hub registries keep every commit and are not checked."""
    from ticketzoo.card import card_differences
    from ticketzoo.errors import TicketzooError
    from ticketzoo.registry.local import LocalRegistry
    from ticketzoo.registry.named import default_remote
    from ticketzoo.registry.refs import parse_registry_url
    from ticketzoo.ticket import Ticket

    target = parse_registry_url(registry) if registry is not None else default_remote()
    if target is not None and target.kind not in ("file", "local"):
        return None
    reg = LocalRegistry(target.root) if target is not None else LocalRegistry(home)
    try:
        held = reg.resolve(name)
    except TicketzooError:  # free, or unreadable: publish decides (and says why)
        return None
    ticket = source if isinstance(source, Ticket) else load(source, home=home)
    if set(card_differences(held.card, ticket.card)) <= {"name", "license"}:
        return None
    return f"{held.name}@{held.revision}"


@dataclass(frozen=True)
class Listed:
    """One ticket of :func:`list_tickets` (the fields of ``ticketzoo list --json``, plus the card)."""

    name: str
    revision: str
    arch: str
    source: str
    sparsity: float
    size: int  # bytes of the ticket file
    where: str  # "local", "catalog" or "local+catalog"; a registry's URL when listing one
    control: str | None  # "reinit", "dense-baseline", ... for control tickets
    problem: str | None  # why the listed card cannot be trusted as shown; None when it can
    card: Card
    sha256: str = ""  # of the ticket file
    path: Path | None = None  # the ticket file on this machine; None when it is not here yet

    @property
    def location(self) -> str:
        """``where`` under the name every ``--json`` output uses."""
        return self.where

    @property
    def ref(self) -> str:
        """``name@revision``: what :func:`load` takes to get exactly this ticket."""
        return f"{self.name}@{self.revision}"


def list_tickets(*, arch: str | None = None, source: str | None = None, min_sparsity: float | None = None,
                 max_sparsity: float | None = None, registry: str | None = None,
                 home: Path | None = None) -> list[Listed]:
    """Tickets of the catalog and the local registry (or of ``registry``: ``file:///dir``, a
    folder, ``hf://org[/repo]``), filtered as ``ticketzoo list`` filters them."""
    rows, _damaged = _registry.scan_entries(home=home, registry=registry)
    rows = _registry.filter_entries(rows, arch=arch, source=source, min_sparsity=min_sparsity,
                                    max_sparsity=max_sparsity)
    return [Listed(e.name, e.revision, e.card.arch.name, e.card.source.dataset, e.card.sparsity, e.size, where,
                   e.card.lineage.control, problem, e.card, e.sha256, e.file if e.file.is_file() else None)
            for e, where, problem in rows]


__all__ = ["Base", "Entry", "Last", "Listed", "Pushed", "check_target", "collect_garbage", "create_model",
           "filter_entries", "finetune_failed", "finetune_started", "list_entries", "list_tickets", "load", "name_moved", "newer_revision", "open_base",
           "open_ticket", "pull", "push", "remember_finetuned", "remove_ticket", "resolve_card", "scan_entries",
           "ticket_path", "ticket_to_push", "ticket_warnings", "verify"]
