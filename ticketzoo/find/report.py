"""What a finished round leaves behind: its ticket's card and the run logs."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ticketzoo.card import Lineage, Recipe, RoundMetrics, RunRecord
from ticketzoo.config.find import FindRecipe
from ticketzoo.fileio import atomic_write_bytes

LOG_COLUMNS = ("round", "line", "sparsity", "val_accuracy", "test_accuracy", "epochs",
               "time_s", "ticket", "file", "sha256", "status", "reason")


@dataclass(frozen=True)
class RoundResult:
    """One training of an IMP run: the winning-ticket line (``line="imp"``) or a control."""

    round: int
    line: str  # "imp", "reinit" or "random-prune"
    sparsity: float  # over all prunable tensors
    val_accuracy: float | None
    test_accuracy: float | None
    epochs: int  # epochs completed in the schedule (including those before the rewind step)
    time_s: float  # training time (sum of epoch times, also over a resume)
    ticket: str | None = None  # ticket name (None for round 0 and rounds that did not train)
    file: str | None = None  # ticket file, relative to the run folder
    sha256: str | None = None
    # ok | diverged | chance (ticketzoo.train.status); None: a row written before rounds were judged
    status: str | None = None
    reason: str | None = None  # why not ok, one sentence

    @property
    def trained(self) -> bool:
        """Not found wanting: ``ok``, or a row from before rounds were judged."""
        return self.status in (None, "ok")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundResult:
        return cls(**{k: data.get(k) for k in LOG_COLUMNS})


def card_recipe(recipe: FindRecipe, round_: int, ipe: int) -> Recipe:
    """The card's recipe block for a ticket of round ``round_``: the recipe as it ran."""
    record = RunRecord(recipe_hash=recipe.hash(), iterations_per_epoch=ipe,
                       rewind_iterations=recipe.rewind_step.iterations(ipe))
    return Recipe(method="imp", scope=recipe.scope, rate=recipe.rate, rounds=round_,
                  rewind=str(recipe.rewind_step), seed=recipe.seed, train=recipe.train, find=recipe, record=record)


def card_metrics(results: Sequence[RoundResult]) -> tuple[RoundMetrics, ...]:
    return tuple(RoundMetrics(r.round, round(r.sparsity, 6), r.val_accuracy, r.test_accuracy,
                              r.epochs) for r in results)


def lineage(line: str, parent: RoundResult | None) -> Lineage:
    if line == "imp":
        if parent is None or parent.ticket is None:
            return Lineage(relation="imp-round")
        return Lineage(parent=parent.ticket, parent_sha256=parent.sha256, relation="imp-round")
    return Lineage(parent=parent.ticket if parent else None,
                   parent_sha256=parent.sha256 if parent else None,
                   relation="imp-control", control=line)


def describe(recipe: FindRecipe, result: RoundResult, extra: str = "") -> str:
    acc = "n/a" if result.test_accuracy is None else f"{result.test_accuracy:.2%}"
    what = (f"Round {result.round} of iterative magnitude pruning" if result.line == "imp"
            else f"Control ({result.line}) for round {result.round} of iterative magnitude pruning")
    plan = (f"target sparsities {', '.join(f'{x:g}' for x in recipe.sparsities)}" if recipe.sparsities
            else f"rate {recipe.rate:g}")
    text = (f"{what} ({recipe.scope}, {plan}, rewind {recipe.rewind_step}) of "
            f"`{recipe.arch}` on `{recipe.source}`: {result.sparsity:.2%} of prunable weights "
            f"removed, test accuracy {acc} (measured on this ticket's own training).")
    if result.line == "reinit":
        text += " Same mask as the winning ticket, fresh random initialisation: a baseline."
    elif result.line == "random-prune":
        text += " Random mask with the winning ticket's per-layer sparsity: a baseline."
    return f"{extra.strip()} {text}".strip()


def write_logs(root: Path, recipe: FindRecipe, results: Sequence[RoundResult]) -> None:
    """``log.csv`` (one row per training) and ``log.json`` (recipe + rows), atomically."""
    import json

    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: "" if v is None else v for k, v in r.to_dict().items()})
    atomic_write_bytes(root / "log.csv", buf.getvalue().encode("utf-8"))
    data = {"recipe": recipe.to_dict(), "hash": recipe.hash(),
            "rounds": [r.to_dict() for r in results]}
    atomic_write_bytes(root / "log.json", (json.dumps(data, indent=2) + "\n").encode("utf-8"))
