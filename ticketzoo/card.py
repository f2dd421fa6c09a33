"""The ticket card: what a ticket is, where it came from, how it was made.

A :class:`Card` is a frozen dataclass. It travels as one JSON string in the ticket's
safetensors header and is rendered as a Hugging Face model card (``README.md`` with
YAML front matter) beside the file in a registry.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ticketzoo.errors import TicketFormatError

CARD_SCHEMA = 1
#: Ticket names: no slash and no leading dot, so a name can never leave a registry folder.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,95}$")


def valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME_RE.match(name)) and ".." not in name


@dataclass(frozen=True)
class ArchConfig:
    """How to rebuild the network a ticket masks."""

    name: str  # model registry name, e.g. "resnet50", "conv4"
    num_classes: int
    in_channels: int = 3
    input_size: int = 224  # square side of the images the ticket was trained on
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    classifier: tuple[str, ...] = ()  # state-dict names of the head, dropped on a head swap
    kwargs: dict[str, Any] = field(default_factory=dict)  # extra builder arguments (e.g. width)


@dataclass(frozen=True)
class SourceData:
    """The data a ticket was found (or fine-tuned) on."""

    dataset: str  # e.g. "cifar10", or a folder name
    classes: tuple[str, ...] = ()
    description: str = ""  # truthful provenance, e.g. "synthetic shapes from scripts/..."


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    shape: tuple[int, ...]
    kept: int
    total: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / self.total if self.total else 0.0


@dataclass(frozen=True)
class Recipe:
    """How the mask was made."""

    method: str = "magnitude"  # "imp", "magnitude", "random", "finetune"
    scope: str = "global"  # "global" or "layerwise"
    rate: float = 0.2  # fraction of remaining prunable weights removed per round
    rounds: int = 1
    rewind: str = "0it"  # rewind step: "0it" is θ0, "2ep" late resetting
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # training hyperparameters etc.


@dataclass(frozen=True)
class RoundMetrics:
    round: int
    sparsity: float
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    epochs: int | None = None


@dataclass(frozen=True)
class Lineage:
    """Where a derived ticket comes from."""

    parent: str | None = None  # ref of the parent ticket
    parent_sha256: str | None = None
    relation: str | None = None  # "imp-round", "finetune", ...
    control: str | None = None  # "reinit" / "random-prune" for control tickets


@dataclass(frozen=True)
class Card:
    """Everything a user needs to know about a ticket, stored inside it."""

    name: str
    arch: ArchConfig
    source: SourceData
    sparsity: float = 0.0  # over prunable tensors (those with a mask)
    layers: tuple[LayerSparsity, ...] = ()
    recipe: Recipe = field(default_factory=Recipe)
    metrics: tuple[RoundMetrics, ...] = ()
    weight_sets: tuple[str, ...] = ("rewind",)
    lineage: Lineage = field(default_factory=Lineage)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # command-specific results
    schema: int = CARD_SCHEMA

    def replace(self, **changes: Any) -> "Card":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, path: str | None = None) -> "Card":
        try:
            data = json.loads(text)
            return _build(cls, data)
        except (ValueError, TypeError, KeyError) as e:
            raise TicketFormatError(f"invalid card: {e}", path=path) from None


def now_iso() -> str:
    """Current UTC time, or ``$SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    import os

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return when.replace(microsecond=0).isoformat()


def _build(tp: Any, value: Any) -> Any:
    """Rebuild a (possibly nested) dataclass value from JSON data, checking types."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"{tp.__name__} must be an object")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        # Unknown keys come from newer writers of the same schema: ignore them.
        kwargs = {k: _build(hints[k], v) for k, v in value.items() if k in known}
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _build(a, value)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"value {value!r} does not fit {tp}")
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_build(item, v) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TypeError("expected an object")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return value
    return value


# --- README.md (Hugging Face model card) ---------------------------------------------

_HUB_DATASETS = {"cifar10", "cifar100", "mnist", "fashion_mnist", "svhn"}


def render_readme(
    card: Card, *, sha256: str, size: int, filename: str = "ticket.safetensors", extra_meta: dict | None = None
) -> str:
    """A Hub-compatible model card: YAML front matter plus a human summary.

    The front matter's ``ticketzoo`` block records the ticket file's sha256 and size,
    which pulls check before a ticket is used.
    """
    from huggingface_hub import ModelCardData

    dataset = card.source.dataset.lower().replace("fashionmnist", "fashion_mnist")
    data = ModelCardData(
        library_name="ticketzoo",
        pipeline_tag="image-classification",
        tags=["lottery-ticket", "sparse", "pruning", "ticketzoo", card.arch.name],
        datasets=[dataset] if dataset in _HUB_DATASETS else None,
        ticketzoo={
            "name": card.name,
            "format": "ticketzoo-csr/1",
            "file": filename,
            "sha256": sha256,
            "size": size,
            "arch": card.arch.name,
            "source": card.source.dataset,
            "sparsity": round(card.sparsity, 6),
            "weight_sets": list(card.weight_sets),
            **(extra_meta or {}),
        },
    )
    r = card.recipe
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {card.name}",
        "",
        card.description or f"A sparse lottery ticket for `{card.arch.name}` found on `{card.source.dataset}`.",
        "",
        "| field | value |",
        "|---|---|",
        f"| architecture | `{card.arch.name}` ({card.arch.in_channels}x{card.arch.input_size}x{card.arch.input_size}, {card.arch.num_classes} classes) |",
        f"| source data | {card.source.dataset} {('— ' + card.source.description) if card.source.description else ''} |",
        f"| sparsity | {card.sparsity:.2%} of prunable weights removed |",
        f"| recipe | {r.method}, {r.scope}, rate {r.rate}, {r.rounds} round(s), rewind {r.rewind}, seed {r.seed} |",
        f"| weight sets | {', '.join(card.weight_sets)} |",
        f"| file | `{filename}`, {size} bytes, sha256 `{sha256}` |",
    ]
    if card.lineage.control:
        lines.append(f"| control | **{card.lineage.control}** (a baseline, not a winning ticket) |")
    if card.lineage.parent:
        lines.append(f"| parent | `{card.lineage.parent}` (sha256 `{card.lineage.parent_sha256}`) |")
    if card.metrics:
        lines += ["", "| round | sparsity | val acc | test acc |", "|---|---|---|---|"]
        for m in card.metrics:
            lines.append(f"| {m.round} | {m.sparsity:.4f} | {_pct(m.val_accuracy)} | {_pct(m.test_accuracy)} |")
    lines += [
        "",
        "Use it with [ticketzoo](https://pypi.org/project/ticketzoo/):",
        "",
        "```bash",
        f"ticketzoo info {card.name}",
        f"ticketzoo finetune {card.name} --data ./my_images",
        "```",
        "",
        "<!-- ticketzoo-card",
        card.to_json(),
        "-->",
        "",
    ]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.2%}"


def parse_readme(text: str, path: str | None = None) -> tuple[Card, dict[str, Any]]:
    """The card embedded in a README.md and its front matter's ``ticketzoo`` block."""
    from huggingface_hub import ModelCard

    try:
        meta = ModelCard(text, ignore_metadata_errors=True).data.to_dict().get("ticketzoo")
    except Exception as e:  # malformed YAML from a foreign README
        raise TicketFormatError(f"README front matter is not valid YAML: {e}", path=path) from None
    start = text.find("<!-- ticketzoo-card")
    end = text.find("-->", start)
    if not isinstance(meta, dict) or start < 0 or end < 0:
        raise TicketFormatError("README.md is not a ticketzoo card (no ticketzoo metadata)", path=path)
    body = text[start + len("<!-- ticketzoo-card") : end].strip()
    return Card.from_json(body, path=path), meta
