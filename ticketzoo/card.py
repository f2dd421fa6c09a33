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

from ticketzoo.config import describe_type, fit
from ticketzoo.errors import TicketFormatError, short
from ticketzoo.names import valid_name

#: Schema 2 types the recipe (Recipe.train/.pruning/.finetune). Schema 1 (until 2026-11) kept
#: those details in an untyped ``recipe.params`` dict; reading upgrades it (:func:`_upgrade_v1`).
CARD_SCHEMA = 2


#: What an architecture option may be: the model registry checks name and value on build.
ArchOption = bool | int | float | str | None


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
    kwargs: dict[str, ArchOption] = field(default_factory=dict)  # builder arguments (e.g. width)


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
class TrainingRecipe:
    """The training hyperparameters a ticket was trained with.

    The fields of :class:`ticketzoo.train.TrainConfig` except where it ran (``device``);
    a test keeps the two in step."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-5
    batch_size: int = 64
    max_epochs: int = 100
    milestones: tuple[int, ...] = (50, 60, 75)
    gamma: float = 0.1
    patience: int | None = 5
    restore_best: bool = True
    seed: int = 0
    amp: bool = True
    channels_last: bool = True
    schedule: str = "step"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    cpu_amp: bool = False  # bf16 autocast on CPU
    cpu_channels_last: bool = False

    @classmethod
    def of(cls, config: Any) -> "TrainingRecipe":
        """The record of a ``TrainConfig`` (any object with these attributes)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class PruningRecipe:
    """What iterative magnitude pruning (``find``) used beyond the common recipe fields.

    ``head_rate``: the classifier weight is pruned at this rate on its own; ``None`` means
    it is pooled with the other tensors (global scope default; the layerwise default is
    rate/2, as Frankle & Carbin do for the output layer)."""

    recipe_hash: str = ""  # sha256 of the find recipe: the run folder's name
    total_rounds: int = 0  # rounds of the whole run (``Recipe.rounds``: this ticket's)
    head_rate: float | None = None
    exclude_head: bool = False
    exclude_first_conv: bool = False
    init: str = "xavier"  # how the dense network was initialised
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    iterations_per_epoch: int = 0
    rewind_iterations: int = 0  # the rewind step in iterations
    data_seed: int = 0
    split: tuple[float, ...] | None = None  # image folders: train/val/test fractions
    val_fraction: float | None = None  # named datasets: share of the train set for val
    sparsities: tuple[float, ...] = ()  # target sparsity per round (empty: constant `rate`)
    control_at: tuple[float, ...] = ()  # target sparsities whose rounds trained the control
    augment: bool = False  # random crop (4 px zero padding) and flip of training images


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a fine-tuned ticket was trained from its parent (``Lineage.parent``)."""

    init: str = "rewind"  # the weights training started from: rewind, trained, reinit, dense
    protocol: str | None = None  # "auto", "paper" or None (the training recipe as given)
    reasons: dict[str, str] = field(default_factory=dict)  # training field -> why its value
    split: tuple[float, ...] = (0.8, 0.1, 0.1)
    augment: bool = False
    weight_init: str = "xavier"  # the new head's (and reinit/dense runs') fresh weights
    resize: int | None = None  # side images were cached at
    weight_sets: dict[str, str] = field(default_factory=dict)  # set name -> what it holds


#: ``Recipe.method`` of a ticket whose making is not recorded (see :meth:`Recipe.unrecorded`).
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class Recipe:
    """How the ticket was made: the mask (method, scope, rate, rounds, rewind) and training.

    A fine-tuned ticket's recipe is its own (``method="finetune"``, no pruning rounds, the
    fine-tuning's ``train``); its mask's recipe is its parent's card."""

    method: str = "magnitude"  # "imp", "magnitude", "random", "finetune"
    scope: str = "global"  # "global" or "layerwise"
    rate: float = 0.2  # fraction of remaining prunable weights removed per round
    rounds: int = 1
    rewind: str = "0it"  # rewind step: "0it" is θ0, "2ep" late resetting
    seed: int | None = None
    train: TrainingRecipe | None = None  # the training that made the weights
    pruning: PruningRecipe | None = None  # method "imp"
    finetune: FinetuneRecipe | None = None  # method "finetune"

    @classmethod
    def unrecorded(cls) -> "Recipe":
        """The recipe of a ticket made from a model and masks (``Ticket.from_model`` without a
        ``recipe``): how the masks and weights were made is not known, so nothing is claimed."""
        return cls(method=UNRECORDED, scope="", rate=0.0, rounds=0, rewind="", seed=None)

    @property
    def params(self) -> dict[str, Any]:
        """The schema-1 ``params`` view (one flat dict); read the typed fields instead."""
        out: dict[str, Any] = {}
        for part in (self.pruning, self.finetune):
            if part is not None:
                out.update(dataclasses.asdict(part))
        if self.train is not None:
            out["train"] = dataclasses.asdict(self.train)
        return out

    def summary(self) -> str:
        """One line for people: the mask's recipe, or a fine-tune's training."""
        t = self.train
        if self.method == "finetune" and self.finetune is not None and t is not None:
            f = self.finetune
            return (f"finetune from {f.init} weights (protocol {f.protocol or 'as given'}): {t.optimizer} "
                    f"lr {t.lr:g}, batch {t.batch_size}, up to {t.max_epochs} epochs ({t.schedule}), "
                    f"seed {self.seed}; the mask is the parent's")
        if self.method == UNRECORDED:
            return "not recorded (made from a model and masks, e.g. with ticketzoo.prune; the card claims no recipe)"
        return (f"{self.method}, {self.scope}, rate {self.rate}, {self.rounds} round(s), "
                f"rewind {self.rewind}, seed {self.seed}")


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
    # SPDX-style Hub license id of the weights ("mit", "cc-by-4.0"); "" means the default,
    # DEFAULT_LICENSE (ticketzoo's own, as timm defaults to its). ``push --license`` sets it.
    license: str = ""

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
            if isinstance(data, dict) and data.get("schema") == 1:
                data = _upgrade_v1(data)
            card = _build(cls, data)
        except RecursionError:
            raise TicketFormatError("invalid card: JSON nested too deeply", path=path) from None
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise TicketFormatError(f"invalid card: {short(str(e))}", path=path) from None
        validate_card(card, path)
        return card


_V1_PARAMS = {"imp": PruningRecipe, "finetune": FinetuneRecipe}


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 card's JSON as schema 2: ``recipe.params`` into the typed recipe."""
    data = {**data, "schema": 2}
    recipe = data.get("recipe")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("params", {}), dict):
        return data
    recipe = dict(recipe)
    params = dict(recipe.pop("params", {}) or {})
    train = params.pop("train", None)
    if isinstance(train, dict):
        recipe["train"] = {k: v for k, v in train.items() if k != "device"}
    resolved = params.pop("resolved", None)
    if isinstance(resolved, dict) and "reasons" in resolved:
        params["reasons"] = resolved["reasons"]
    part = _V1_PARAMS.get(recipe.get("method"))
    if part is not None:
        known = {f.name for f in dataclasses.fields(part)}
        recipe["pruning" if part is PruningRecipe else "finetune"] = {k: v for k, v in params.items() if k in known}
    data["recipe"] = recipe
    return data


def now_iso() -> str:
    """Current UTC time, or ``$SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    import os

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return when.replace(microsecond=0).isoformat()


class _Misfit(TypeError):
    """A card value of the wrong type; the message names where it is (``arch.kwargs['width']``)."""

    def __init__(self, path: str, tp: Any, value: Any) -> None:
        what = f"an object ({tp.__name__})" if dataclasses.is_dataclass(tp) else describe_type(tp)
        super().__init__(f"{path or 'the card'} must be {what}, got {short(repr(value))}")


def _build(tp: Any, value: Any, path: str = "") -> Any:
    """Rebuild a (possibly nested) dataclass value from JSON data, checking types."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Misfit(path, tp, value)
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        # Unknown keys come from newer writers of the same schema: ignore them.
        kwargs = {k: _build(hints[k], v, f"{path}.{k}" if path else k) for k, v in value.items() if k in known}
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:  # X | None: X's own, more precise, complaint
            return _build(args[0], value, path)
        for a in args:
            try:
                return _build(a, value, path)
            except (TypeError, ValueError):
                continue
        raise _Misfit(path, tp, value)
    if origin is tuple:
        if not isinstance(value, list):
            raise _Misfit(path, tp, value)
        (item,) = typing.get_args(tp)[:1]
        return tuple(_build(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Misfit(path, tp, value)
        item = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        return {k: _build(item, v, f"{path}[{k!r}]") for k, v in value.items()}
    if tp in (int, float, str, bool):  # the same scalar rules as every config
        ok, fixed = fit(tp, value)
        if not ok:
            raise _Misfit(path, tp, value)
        return fixed
    return value


# --- validation: every field a reader acts on, as a format error ------------------------

#: Bounds on what a card may claim. Far beyond any image classifier, and small enough
#: that building the architecture (even on the meta device) cannot overflow.
MAX_CLASSES = 1_000_000
MAX_CHANNELS = 256
MAX_INPUT_SIZE = 4096
_ARCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: A Hub license id: the Hub's list is lower-case SPDX-like ids ("apache-2.0", "cc-by-nc-4.0", "other").
LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}$")
#: The license a card states when none was set: ticketzoo's own (pyproject.toml).
DEFAULT_LICENSE = "apache-2.0"


def validate_card(card: Card, path: str | None = None) -> None:
    """Check a card's fields (types, ranges, schema) so no reader acts on a wild value.

    NaN compares false with everything, so every float is checked to be finite first.
    Architecture-specific options (``arch.kwargs``) are checked against the model
    registry when the network is built (:meth:`ticketzoo.ticket.Ticket.check_arch`).
    """

    def fail(problem: str) -> TicketFormatError:
        return TicketFormatError(f"invalid card: {problem}", path=path)

    if card.schema != CARD_SCHEMA:  # schema 1 was upgraded on reading
        newer = isinstance(card.schema, int) and card.schema > CARD_SCHEMA
        raise TicketFormatError(f"card schema {card.schema} is not supported (this ticketzoo reads schema "
                                f"{CARD_SCHEMA})", path=path, hint="upgrade ticketzoo" if newer else None)
    if not valid_name(card.name):
        raise TicketFormatError(f"card name {_short_repr(card.name)} is not a valid ticket name", path=path)
    _fraction(card.sparsity, "sparsity", fail)
    if card.license and not LICENSE_RE.match(card.license):
        raise fail(f"license {_short_repr(card.license)} is not a license id (lower case, e.g. mit, apache-2.0)")
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
    for part in (r.train, r.pruning, r.finetune):
        for f in dataclasses.fields(part) if part is not None else ():
            v = getattr(part, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise fail(f"recipe {f.name} must be a finite number, got {v!r}")
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
