"""Did a run train? ``ok``, ``diverged`` (NaN/inf loss) or ``chance`` (not above chance).

A trained run is at chance when its correct count on the held-out set is not above the
share of the majority class there: a one-sided binomial test (``scipy.stats.binomtest``,
``alternative="greater"``) with p > :data:`ALPHA`. A run that predicts one class for
every image is at chance too, whatever its accuracy (a folder dominated by one class).
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("ok", "diverged", "chance")
ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    status: str  # one of STATUSES
    reason: str | None  # why not ok, one sentence; None when ok
    p_value: float | None = None  # the binomial test's p (None: not tested)
    chance_level: float | None = None  # majority-class share of the evaluated split


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


def diverged(epoch: int, lr: float) -> Verdict:
    return Verdict("diverged", f"loss became NaN/inf in epoch {epoch} at lr {lr:g}")
