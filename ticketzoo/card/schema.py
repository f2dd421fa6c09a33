"""The card's types: what a ticket is, where it came from, how it was made.

A :class:`Card` is a frozen dataclass. It travels as one JSON string in the ticket's
safetensors header (:func:`ticketzoo.card.read.read_card` reads it back).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ticketzoo.config import Config
from ticketzoo.config.find import FindRecipe
from ticketzoo.config.finetune import FinetuneConfig
from ticketzoo.config.train import TrainConfig

#: Schema 3 stores the configs a ticket was made with as they ran (``Recipe.train``, ``.find``,
#: ``.finetune``: :class:`~ticketzoo.config.Config` dicts, read back with ``from_dict``). Schema 2
#: (until 2026-12) mirrored them in card types, schema 1 (until 2026-11) in an untyped
#: ``recipe.params`` dict; :mod:`ticketzoo.card.read` upgrades both.
CARD_SCHEMA = 3

#: Field metadata of a card field added after its schema was first written: left out of the card's
#: JSON while at its default (:func:`card_dict`), so every card written before keeps its bytes.
LATER = {"later": True}


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
class Preprocess:
    """How an image becomes the network's input, as the training that made the weights did it.

    Size, channels and statistics are the arch's (``input_size``, ``in_channels``, ``mean``,
    ``std``). Eval: the image converted to the channels, its shorter side resized (bilinear) to
    ``resize`` and the central square kept, the central ``input_size`` crop of that, then
    ``(x / 255 - mean) / std``. Train: the square zero-padded by ``pad`` on each side, a random
    ``input_size`` crop, and a horizontal flip with probability 1/2 when ``flip``.
    """

    # Side of the working square; None: the input size itself (the crop keeps it all), which
    # stays true when a ticket is fine-tuned at another input size.
    resize: int | None = None
    pad: int = 0
    flip: bool = False


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
class RunRecord:
    """What the run that made the weights decided or counted beyond its config."""

    recipe_hash: str = ""  # find: the recipe's hash when it ran (its run folder's name)
    iterations_per_epoch: int = 0  # find: batches per epoch
    rewind_iterations: int = 0  # find: the rewind step in iterations
    reasons: dict[str, str] = field(default_factory=dict)  # finetune: training field -> why its value
    weight_sets: dict[str, str] = field(default_factory=dict)  # set name -> what it holds


#: ``Recipe.method`` of a ticket whose making is not recorded (see :meth:`Recipe.unrecorded`).
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class Recipe:
    """How the ticket was made: the mask (method, scope, rate, rounds, rewind) and the configs.

    ``train``, ``find`` and ``finetune`` are the configs as they ran (protocol and CPU precision
    resolved); the ``train`` of ``find`` or ``finetune`` is ``train``. A fine-tuned ticket's
    recipe is its own (``method="finetune"``, no pruning rounds); its mask's is its parent's card."""

    method: str = "magnitude"  # "imp", "magnitude", "random", "finetune"
    scope: str = "global"  # "global" or "layerwise"
    rate: float = 0.2  # fraction of remaining prunable weights removed per round
    rounds: int = 1
    rewind: str = "0it"  # rewind step: "0it" is θ0, "2ep" late resetting
    seed: int | None = None
    train: TrainConfig | None = None  # the training that made the weights
    find: FindRecipe | None = None  # method "imp": find's recipe
    finetune: FinetuneConfig | None = None  # method "finetune": the fine-tuning config
    record: RunRecord = field(default_factory=RunRecord)

    @classmethod
    def unrecorded(cls) -> "Recipe":
        """The recipe of a ticket made from a model and masks (``Ticket.from_model`` without a
        ``recipe``): how the masks and weights were made is not known, so nothing is claimed."""
        return cls(method=UNRECORDED, scope="", rate=0.0, rounds=0, rewind="", seed=None)

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
        how = (f"target sparsities {', '.join(f'{x:g}' for x in self.find.sparsities)}"
               if self.find is not None and self.find.sparsities else f"rate {self.rate}")
        return f"{self.method}, {self.scope}, {how}, {self.rounds} round(s), rewind {self.rewind}, seed {self.seed}"


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
    # How images were preprocessed for training; None on cards written before it was recorded
    # (ticketzoo.card.preprocess_of derives it from their recipe then).
    preprocess: Preprocess | None = field(default=None, metadata=LATER)

    def replace(self, **changes: Any) -> "Card":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return card_dict(self)  # LATER fields (preprocess, ...) only when set: old cards keep their bytes

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def card_dict(value: Any) -> Any:
    """``dataclasses.asdict`` that leaves out ``LATER`` fields at their default; configs as
    :meth:`~ticketzoo.config.Config.to_dict` writes them."""
    if isinstance(value, Config):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.metadata.get("later") and item == f.default:
                continue
            out[f.name] = card_dict(item)
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(card_dict(v) for v in value)
    if isinstance(value, dict):
        return {k: card_dict(v) for k, v in value.items()}
    return value


def now_iso() -> str:
    """Current UTC time, or ``$SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    import os

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return when.replace(microsecond=0).isoformat()
