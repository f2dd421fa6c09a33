"""The ticket card: what a ticket is, where it came from, how it was made.

A :class:`Card` is a frozen dataclass. It travels as one JSON string in the ticket's
safetensors header and is rendered as a Hugging Face model card (``README.md`` with
YAML front matter) beside the file in a registry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ticketzoo.errors import TicketFormatError, short

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
            card = _build(cls, data)
        except RecursionError:
            raise TicketFormatError("invalid card: JSON nested too deeply", path=path) from None
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise TicketFormatError(f"invalid card: {short(str(e))}", path=path) from None
        validate_card(card, path)
        return card


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


# --- validation: every field a reader acts on, as a format error ------------------------

#: Bounds on what a card may claim. Far beyond any image classifier, and small enough
#: that building the architecture (even on the meta device) cannot overflow.
MAX_CLASSES = 1_000_000
MAX_CHANNELS = 256
MAX_INPUT_SIZE = 4096
_ARCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def validate_card(card: Card, path: str | None = None) -> None:
    """Check a card's fields (types, ranges, schema) so no reader acts on a wild value.

    NaN compares false with everything, so every float is checked to be finite first.
    Architecture-specific options (``arch.kwargs``) are checked against the model
    registry when the network is built (:meth:`ticketzoo.ticket.Ticket.check_arch`).
    """

    def fail(problem: str) -> TicketFormatError:
        return TicketFormatError(f"invalid card: {problem}", path=path)

    if card.schema != CARD_SCHEMA:
        newer = isinstance(card.schema, int) and card.schema > CARD_SCHEMA
        raise TicketFormatError(f"card schema {card.schema} is not supported (this ticketzoo reads schema "
                                f"{CARD_SCHEMA})", path=path, hint="upgrade ticketzoo" if newer else None)
    if not valid_name(card.name):
        raise TicketFormatError(f"card name {_short_repr(card.name)} is not a valid ticket name", path=path)
    _fraction(card.sparsity, "sparsity", fail)
    a = card.arch
    if not _ARCH_NAME.match(a.name):
        raise fail(f"arch.name {_short_repr(a.name)} is not an architecture name")
    _bounded_int(a.num_classes, "arch.num_classes", 1, MAX_CLASSES, fail)
    _bounded_int(a.in_channels, "arch.in_channels", 1, MAX_CHANNELS, fail)
    _bounded_int(a.input_size, "arch.input_size", 1, MAX_INPUT_SIZE, fail)
    for what, values in (("arch.mean", a.mean), ("arch.std", a.std)):
        if not 1 <= len(values) <= MAX_CHANNELS or not all(math.isfinite(v) for v in values):
            raise fail(f"{what} must hold 1 to {MAX_CHANNELS} finite numbers")
    if any(v <= 0 for v in a.std):
        raise fail("arch.std must be positive")
    for k, v in a.kwargs.items():
        if not isinstance(v, (bool, int, str, type(None))) and not (isinstance(v, float) and math.isfinite(v)):
            raise fail(f"arch.kwargs[{k!r}] must be a finite number, a string, true/false or null")
    for layer in card.layers:
        if not layer.name or any(d < 0 for d in layer.shape) or not 0 <= layer.kept <= layer.total:
            raise fail(f"per-layer entry {_short_repr(layer.name)} has an invalid shape or counts")
    r = card.recipe
    _fraction(r.rate, "recipe.rate", fail)
    if r.rounds < 0:
        raise fail("recipe.rounds must be >= 0")
    for m in card.metrics:
        _fraction(m.sparsity, "metrics.sparsity", fail)
        for what, v in (("metrics.val_accuracy", m.val_accuracy), ("metrics.test_accuracy", m.test_accuracy)):
            if v is not None:
                _fraction(v, what, fail)
        if m.round < 0 or (m.epochs is not None and m.epochs < 0):
            raise fail("metrics.round and metrics.epochs must be >= 0")
    if not all(isinstance(v, str) for v in card.versions.values()):
        raise fail("versions must map names to strings")
    try:  # the seed table is rendered by `info` and into README.md: it must render
        if seed_table(card) is not None:
            ", ".join(map(str, card.extra["seeds"]))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise fail(f"extra source results are malformed ({type(e).__name__}: {e})") from None


def _fraction(value: float, what: str, fail) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise fail(f"{what} must be a number in [0, 1], got {value!r}")


def _bounded_int(value: int, what: str, lo: int, hi: int, fail) -> None:
    if not lo <= value <= hi:
        raise fail(f"{what} must be in [{lo}, {hi}], got {_short_repr(value)}")


def _short_repr(value: object) -> str:
    return short(repr(value))


def card_differences(a: Card, b: Card) -> list[str]:
    """Top-level card fields whose values differ (``arch``, ``sparsity``, ...)."""
    return [f.name for f in dataclasses.fields(Card) if getattr(a, f.name) != getattr(b, f.name)]


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
    seeds = seed_table(card)
    if seeds is not None:
        header, rows = seeds
        lines += ["", f"Source test accuracy over seeds {', '.join(map(str, card.extra['seeds']))} "
                  "(mean ± std; differences with a Welch t-test; dense = round 0):", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
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


SEED_TABLE_HEADER = ("round", "sparsity", "ticket", "reinit", "ticket − dense", "ticket − reinit")


def seed_table(card: Card) -> tuple[tuple[str, ...], list[tuple[str, ...]]] | None:
    """The card's source results over seeds as text rows, or None when it has none.

    ``extra["source_dense"]`` and ``extra["source_results"]`` (one row per round with the
    ticket's and the reinit control's accuracy over seeds and Welch tests against the dense
    network and the control) are written by ``scripts/make_starter_zoo.py``.
    """
    dense, results = card.extra.get("source_dense"), card.extra.get("source_results")
    if not isinstance(dense, dict) or not isinstance(results, list):
        return None

    def stat(s: dict) -> str:
        std = s.get("std")
        return f"{100 * s['mean']:.2f}%" + (f" ± {100 * std:.2f}" if std is not None else "")

    def test(t: dict) -> str:
        return f"{100 * t['diff']:+.2f} (p {t['p']:.3f}, {t['verdict']})"

    rows = [("0", "0.0000", stat(dense) + " (dense)", "—", "—", "—")]
    for r in results:
        rows.append((str(r["round"]), f"{r['sparsity']:.4f}", stat(r["ticket"]), stat(r["reinit"]),
                     test(r["ticket_vs_dense"]), test(r["ticket_vs_reinit"])))
    return SEED_TABLE_HEADER, rows


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
