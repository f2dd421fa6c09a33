"""Mean ± std per (family, condition, sparsity) and each difference with its seed noise.

Only ``ok`` runs enter the statistics. A difference is the difference of means in points
of test accuracy, with its standard error ``sqrt(sa²/na + sb²/nb)`` and a two-sided
Welch t-test over the seeds (``scipy.stats.ttest_ind(equal_var=False)``). It is called
``higher`` or ``lower`` only at p < :data:`ALPHA` with at least two runs on each side;
otherwise it is reported as within seed noise.
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
    failed: tuple[tuple[int, str], ...] = ()  # (seed, status) of the runs that did not train

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.accuracies) if self.accuracies else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.accuracies) if self.n >= 2 else None


@dataclass(frozen=True)
class Diff:
    """``a − b`` in points of test accuracy."""

    delta: float | None
    se: float | None
    p: float | None
    verdict: str  # higher | lower | no difference shown | not tested: <why>

    def text(self) -> str:
        """``+0.4 ± 1.0 (p 0.74, within noise)`` or ``-5.2 ± 1.1 (p 0.01, lower)``."""
        if self.delta is None:
            return self.verdict
        core = f"{self.delta:+.1f}" + (f" ± {self.se:.1f}" if self.se is not None else "")
        if self.p is None:
            return f"{core} ({self.verdict})"
        return f"{core} (p {self.p:.2g}, " + ("within noise" if self.verdict == NO_DIFFERENCE else self.verdict) + ")"

    def to_dict(self) -> dict:
        return {"delta_points": self.delta, "se_points": self.se, "p_welch": self.p, "verdict": self.verdict}


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
        rs = sorted(rs, key=lambda r: r["seed"])
        ok = [r for r in rs if r["status"] == "ok" and r["test_accuracy"] is not None]
        out.append(Cell(family, condition, ticket, arch, rs[0]["sparsity"],
                        tuple(r["test_accuracy"] for r in ok), tuple(r["seed"] for r in ok), len(rs),
                        tuple((r["seed"], r["status"]) for r in rs if r["status"] != "ok")))
    return out


def diff(a: Cell, b: Cell) -> Diff:
    """``a − b`` with its standard error and Welch's t-test (see the module docstring)."""
    if a.n == 0 or b.n == 0:
        return Diff(None, None, None, "not tested: a side has no trained run")
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
    return (f"{len(tested)} differences were tested at p < {ALPHA:g} and {passed} passed; with no real effect "
            f"about {ALPHA * len(tested):.1f} would pass by chance alone, so read a single p just under "
            f"{ALPHA:g} as a hint, not a finding.")
