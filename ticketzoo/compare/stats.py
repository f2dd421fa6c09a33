"""Accuracy per (family, condition, sparsity) and each difference with its noise.

Only ``ok`` runs enter the statistics (with K folds, runs at ``chance`` too: see
:func:`cells`). With the folder's one split (``folds`` 1) a cell is
the mean ± std over seeds, and a difference is the difference of means in points of
test accuracy, with its standard error ``sqrt(sa²/na + sb²/nb)`` and a two-sided Welch
t-test over the seeds (``scipy.stats.ttest_ind(equal_var=False)``).

With K folds a cell's accuracy is pooled: every image's test verdict over every fold and
seed (correct / scored), with a Wilson 95% interval counting each image once (the seeds
score the same images again) and the std over seeds of each seed's pooled accuracy. A
difference is paired: per (fold, seed) pair trained on both sides, the difference of
accuracies on the same test images; their mean ± standard error, a paired t-test, and
the Wilcoxon signed-rank test as a check (:func:`ticketzoo.significance.paired_test`).

Either way a difference is called ``higher`` or ``lower`` only at (t-test) p <
:data:`ALPHA`; otherwise it is reported as within noise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05
NO_DIFFERENCE = "no difference shown"


@dataclass(frozen=True)
class Cell:
    """The runs of one condition at one sparsity (one ticket, or dense)."""

    family: str
    condition: str
    ticket: str | None
    arch: str  # dense is compared with the tickets of its architecture
    sparsity: float
    accuracies: tuple[float, ...]  # of the ok runs, by seed
    seeds: tuple[int, ...]  # of the ok runs
    runs: int  # all runs, trained or not
    failed: tuple[tuple[int, str], ...] = ()  # (seed, status) of the runs that did not train (not ok)
    folds: tuple[int | None, ...] = ()  # of the ok runs, aligned with accuracies; () or Nones: one split
    samples: tuple[int, ...] = ()  # test images of each ok run, aligned with accuracies

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def paired(self) -> bool:
        """Measured on K folds: the pooled accuracy and paired differences apply."""
        return any(f is not None for f in self.folds)

    @property
    def mean(self) -> float | None:
        """Mean over seeds (one split) or pooled over every fold and seed (K folds)."""
        if not self.accuracies:
            return None
        if self.paired:
            return sum(a * n for a, n in zip(self.accuracies, self.samples)) / sum(self.samples)
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float | None:
        """Std over seeds (of each seed's pooled accuracy, with K folds); None under two."""
        values = list(self.seed_accuracies().values()) if self.paired else self.accuracies
        return statistics.stdev(values) if len(values) >= 2 else None

    def seed_accuracies(self) -> dict[int, float]:
        """Each seed's accuracy pooled over its folds that trained."""
        per: dict[int, list[float]] = {}
        for seed, a, n in zip(self.seeds, self.accuracies, self.samples or [1] * self.n):
            per.setdefault(seed, [0.0, 0.0])
            per[seed][0] += a * n
            per[seed][1] += n
        return {seed: c / n for seed, (c, n) in per.items() if n}

    @property
    def images(self) -> int:
        """Distinct test images scored: with K folds, the images of one seed's folds."""
        if not self.accuracies:
            return 0
        if not self.paired:
            return max(self.samples, default=0)
        per: dict[int, int] = {}
        for seed, n in zip(self.seeds, self.samples):
            per[seed] = per.get(seed, 0) + n
        return max(per.values())

    def interval(self) -> tuple[float, float] | None:
        """Wilson 95% interval of the pooled accuracy over :attr:`images` (K folds only)."""
        from ticketzoo.significance import wilson

        if not self.paired or not self.accuracies:
            return None
        return wilson(self.mean * self.images, self.images)

    def by_pair(self) -> dict[tuple[int | None, int], float]:
        """``{(fold, seed): accuracy}`` of the ok runs."""
        return dict(zip(zip(self.folds or (None,) * self.n, self.seeds), self.accuracies))


@dataclass(frozen=True)
class Diff:
    """``a − b`` in points of test accuracy."""

    delta: float | None
    se: float | None
    p: float | None  # Welch (one split) or paired t (K folds)
    verdict: str  # higher | lower | no difference shown | not tested: <why>
    pairs: int | None = None  # K folds: (fold, seed) pairs trained on both sides; None: Welch
    p_wilcoxon: float | None = None  # K folds: Wilcoxon signed-rank over the pairs
    ci95: float | None = None  # K folds: half-width of the 95% t interval of delta

    def text(self) -> str:
        """``+0.4 ± 1.0 (p 0.74, within noise)`` or ``-5.2 ± 1.1 (p 0.01, lower)``; paired:
        ``+2.1 ± 0.6 (10 pairs, t p 0.006, W p 0.01, higher)``."""
        if self.delta is None:
            return self.verdict
        core = f"{self.delta:+.1f}" + (f" ± {self.se:.1f}" if self.se is not None else "")
        if self.p is None:
            return f"{core} ({self.verdict})"
        word = "within noise" if self.verdict == NO_DIFFERENCE else self.verdict
        if self.pairs is None:
            return f"{core} (p {self.p:.2g}, {word})"
        w = f", W p {self.p_wilcoxon:.2g}" if self.p_wilcoxon is not None else ""
        return f"{core} ({self.pairs} pairs, t p {self.p:.2g}{w}, {word})"

    def to_dict(self) -> dict:
        if self.pairs is None:
            return {"delta_points": self.delta, "se_points": self.se, "p_welch": self.p, "verdict": self.verdict}
        return {"delta_points": self.delta, "se_points": self.se, "ci95_points": self.ci95, "pairs": self.pairs,
                "p_paired_t": self.p, "p_wilcoxon": self.p_wilcoxon, "verdict": self.verdict}


@dataclass(frozen=True)
class Row:
    cell: Cell
    vs_dense: Diff | None  # None for the dense row itself
    vs_reinit: Diff | None  # None for reinit, dense, and where no reinit ran at this mask


def cells(records: list[dict]) -> list[Cell]:
    """One cell per (family, condition, ticket, architecture), in the records' order."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["family"], r["condition"], r["ticket"], r["arch"]), []).append(r)
    out = []
    for (family, condition, ticket, arch), rs in groups.items():
        rs = sorted(rs, key=lambda r: (r.get("fold") if r.get("fold") is not None else -1, r["seed"]))
        # K folds: a run at chance on its fold is still that fold's measurement; leaving it out
        # would raise the pooled accuracy and break the pairs. Only a diverged run has none.
        counted = ("ok", "chance") if any(r.get("fold") is not None for r in rs) else ("ok",)
        ok = [r for r in rs if r["status"] in counted and r["test_accuracy"] is not None]
        out.append(Cell(family, condition, ticket, arch, rs[0]["sparsity"],
                        tuple(r["test_accuracy"] for r in ok), tuple(r["seed"] for r in ok), len(rs),
                        tuple((r["seed"], r["status"]) for r in rs if r["status"] != "ok"),
                        tuple(r.get("fold") for r in ok), tuple(r.get("test_samples", 0) for r in ok)))
    return out


def diff(a: Cell, b: Cell) -> Diff:
    """``a − b``: Welch over seeds (one split) or paired over (fold, seed) (module docstring)."""
    if a.n == 0 or b.n == 0:
        return Diff(None, None, None, "not tested: a side has no trained run")
    if a.paired or b.paired:
        return paired_diff(a, b)
    delta = 100 * (a.mean - b.mean)
    if a.n < 2 or b.n < 2:
        return Diff(delta, None, None, "not tested: < 2 trained runs on a side")
    se = 100 * math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    if se == 0.0:
        return Diff(delta, 0.0, None, "not tested: every seed gave the same accuracy on both sides")
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly equal accuracies: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a.accuracies, b.accuracies, equal_var=False).pvalue)
    verdict = ("higher" if delta > 0 else "lower") if p < ALPHA else NO_DIFFERENCE
    return Diff(delta, se, p, verdict)


def paired_diff(a: Cell, b: Cell) -> Diff:
    """``a − b`` over the (fold, seed) pairs that trained on both sides."""
    from ticketzoo.significance import paired_test

    pa, pb = a.by_pair(), b.by_pair()
    keys = [k for k in pa if k in pb]
    if len(keys) < 2:
        delta = 100 * (pa[keys[0]] - pb[keys[0]]) if keys else None
        return Diff(delta, None, None, f"not tested: {len(keys)} (fold, seed) pair(s) trained on both sides",
                    pairs=len(keys))
    t = paired_test([pa[k] for k in keys], [pb[k] for k in keys])
    if t.same_everywhere:
        why = ("identical on every fold and seed" if abs(t.delta) < 1e-9
               else "every pair gave the same difference")
        return Diff(t.delta, 0.0, None, f"not tested: {why}", pairs=t.pairs)
    verdict = ("higher" if t.delta > 0 else "lower") if t.p < ALPHA else NO_DIFFERENCE
    return Diff(t.delta, t.se, t.p, verdict, pairs=t.pairs, p_wilcoxon=t.p_wilcoxon, ci95=t.ci95)


def summarize(records: list[dict]) -> list[Row]:
    """Dense first, then per family by sparsity each condition, with its differences to
    dense (same architecture) and to the reinit control of the same mask."""
    all_cells = cells(records)
    dense = {c.arch: c for c in all_cells if c.condition == "dense"}
    reinit = {c.ticket: c for c in all_cells if c.condition == "reinit"}
    rows = [Row(c, None, None) for c in dense.values()]
    order = {"rewind": 0, "trained": 1, "reinit": 2, "random_prune": 3}
    for c in sorted((c for c in all_cells if c.condition != "dense"),
                    key=lambda c: (c.family, c.sparsity, c.ticket, order.get(c.condition, 9))):
        vs_dense = diff(c, dense[c.arch]) if c.arch in dense else None
        vs_reinit = diff(c, reinit[c.ticket]) if c.condition != "reinit" and c.ticket in reinit else None
        rows.append(Row(c, vs_dense, vs_reinit))
    return rows


def multiple_testing_note(rows: list[Row]) -> str | None:
    """How many of the tested differences passed, against how many would pass by chance."""
    tested = [d for r in rows for d in (r.vs_dense, r.vs_reinit) if d is not None and d.p is not None]
    if len(tested) < 2:
        return None
    passed = sum(1 for d in tested if d.p < ALPHA)
    text = (f"{len(tested)} differences were tested at p < {ALPHA:g} and {passed} passed; with no real effect "
            f"about {ALPHA * len(tested):.1f} would pass by chance alone, so read a single p just under "
            f"{ALPHA:g} as a hint, not a finding.")
    if any(d.pairs is not None for d in tested):
        from ticketzoo.significance import holm

        text += (f" After Holm's correction for the {len(tested)} tests, {holm([d.p for d in tested])} "
                 f"remain below {ALPHA:g}.")
    return text
