"""Did a run train? ``ok``, ``diverged`` (its loss blew up) or ``chance`` (not above chance).

One rule for every training that is judged (``finetune``, ``compare`` and each IMP round of
``find``), applied in this order:

1. **diverged**: the loss became NaN/inf (the training loop raises
   :class:`~ticketzoo.train.DivergedError`, :func:`diverged`), or it *exploded* while staying
   finite (:func:`exploded`): the last epoch's train loss is above ln(C), the loss of a
   uniform guess over C classes, and more than :data:`EXPLOSION` times the first epoch's
   train loss (or ln(C), when that is lower). Restoring the best epoch does not rescue such a
   run: its recipe does not train.
2. **chance**: its correct count on the held-out set is not above the share of the majority
   class there: a one-sided binomial test (``scipy.stats.binomtest``,
   ``alternative="greater"``) with p > :data:`ALPHA`. A run that predicts one class for every
   image is at chance too, whatever its accuracy (a folder dominated by one class).
3. **ok** otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

STATUSES = ("ok", "diverged", "chance")
ALPHA = 0.05
#: How many times the first epoch's train loss (or ln C, if lower) the last epoch's may reach.
EXPLOSION = 10.0


@dataclass(frozen=True)
class Verdict:
    status: str  # one of STATUSES
    reason: str | None  # why not ok, one sentence; None when ok
    p_value: float | None = None  # the binomial test's p (None: not tested)
    chance_level: float | None = None  # majority-class share of the evaluated split
    where: dict[str, Any] | None = None  # {"epoch", "lr", "loss"} of a diverged run


def judge(confusion: list[list[int]], split: str) -> Verdict:
    """The verdict on a trained run from its confusion matrix (``[true][predicted]``)."""
    from scipy.stats import binomtest

    n = sum(map(sum, confusion))
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    majority = max(map(sum, confusion)) / n
    predicted = [sum(row[j] for row in confusion) for j in range(len(confusion))]
    p = float(binomtest(correct, n, majority, alternative="greater").pvalue) if majority < 1 else 1.0
    if sum(1 for c in predicted if c) == 1 and len(confusion) > 1:
        return Verdict("chance", f"predicts one class for every {split} image", p, majority)
    if p > ALPHA:
        why = (f"{correct}/{n} {split} images correct is not above the majority-class share "
               f"{100 * majority:.0f}% (binomial p = {p:.2g})")
        if majority < 1 and binomtest(n, n, majority, alternative="greater").pvalue > ALPHA:
            why += f"; even {n}/{n} would not be: the {split} split is too small to tell"
        return Verdict("chance", why, p, majority)
    return Verdict("ok", None, p, majority)


def diverged(epoch: int, lr: float, loss: float | None = None) -> Verdict:
    """The loss became NaN/inf in 1-based ``epoch`` at learning rate ``lr``."""
    return Verdict("diverged", f"loss became NaN/inf in epoch {epoch} at lr {lr:g}",
                   where={"epoch": epoch, "lr": lr, "loss": loss})


def exploded(history: Sequence[Mapping[str, Any]], num_classes: int) -> Verdict | None:
    """``diverged`` when the train loss of ``history`` (the loop's epoch rows) exploded
    while staying finite (rule 1 of the module docstring); None when it did not."""
    if len(history) < 2 or num_classes < 2:
        return None
    first, last = history[0], history[-1]
    uniform = math.log(num_classes)
    limit = EXPLOSION * min(first["train_loss"], uniform)
    if not (last["train_loss"] > uniform and last["train_loss"] > limit):
        return None
    base = (f"epoch {first['epoch']}'s {first['train_loss']:.3g} and above " if first["train_loss"] < uniform
            else "")
    why = (f"train loss exploded: {last['train_loss']:.3g} in epoch {last['epoch']} is over {EXPLOSION:g}x "
           f"{base}ln({num_classes}) = {uniform:.2f}, a uniform guess's loss (lr {last['lr']:g})")
    return Verdict("diverged", why, where={"epoch": last["epoch"], "lr": last["lr"], "loss": last["train_loss"]})


def verdict(history: Sequence[Mapping[str, Any]], confusion: list[list[int]] | None, split: str,
            num_classes: int) -> Verdict:
    """The verdict on a training that ended without NaN/inf: :func:`exploded`, then
    :func:`judge` on ``confusion`` (None: no held-out split, so ``ok``)."""
    blown = exploded(history, num_classes)
    if blown is not None:
        return blown
    return judge(confusion, split) if confusion is not None else Verdict("ok", None)
