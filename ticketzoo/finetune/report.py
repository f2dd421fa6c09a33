"""What a fine-tuning run reports: the summary rows and their notes, and what data it found.

The summary shows what was measured and nothing more: test accuracy as mean ± sample
std over the seeds that trained (``ok`` runs; std only with two or more), per init, and
how many runs of each init did not train and why. A difference between the ticket and a
baseline is stated only when both sides have at least two trained runs, with its seed
noise; when no baseline ran the footer says so and how to run one.

With K folds (``folds``) an init's accuracy is pooled over every fold and seed (runs at
chance on their fold count: they are that fold's measurement), ± std over seeds, and a
difference is paired by (fold, seed): paired t-test with the Wilcoxon signed-rank test as
a check (:func:`ticketzoo.significance.paired_test`), as ``compare`` does.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass

BASELINES = ("dense", "reinit")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SummaryRow:
    """One init's runs, aggregated over the seeds that trained."""

    init: str
    n: int  # ok runs with a test accuracy: the mean's sample
    mean: float | None  # test accuracy
    std: float | None  # sample std over seeds; None with fewer than 2
    sparsity: float
    best_epochs: tuple[int | None, ...]  # of the ok runs
    seeds: tuple[int, ...]  # of the ok runs
    runs: int = 0  # all runs of this init
    failed: tuple[tuple[int, str, str], ...] = ()  # (seed, status, reason) of runs that did not train
    pairs: tuple[tuple[int, int, float, int], ...] = ()  # K folds: (fold, seed, accuracy, test images) counted

    @property
    def paired(self) -> bool:
        return bool(self.pairs)

    def accuracy_text(self) -> str:
        if self.mean is None:
            return "no run trained" if self.runs and len(self.failed) == self.runs else \
                "not measured (no test split)"
        return f"{100 * self.mean:.1f}%" + (f" ± {100 * self.std:.1f}" if self.std is not None else "")

    def failed_text(self) -> str:
        counts = {s: sum(1 for f in self.failed if f[1] == s) for s in ("diverged", "chance")}
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "-"


def summarize(runs) -> list[SummaryRow]:
    """One row per init, in run order; the statistics use ``ok`` runs only (K folds: and
    runs at chance, pooled; module docstring)."""
    rows = []
    for init in dict.fromkeys(r.init for r in runs):
        mine = [r for r in runs if r.init == init]
        if any(r.fold is not None for r in mine):
            rows.append(_pooled_row(init, mine))
            continue
        ok = [r for r in mine if r.ok]
        accs = [r.test.accuracy for r in ok if r.test is not None]
        rows.append(SummaryRow(
            init, len(accs), statistics.fmean(accs) if accs else None,
            statistics.stdev(accs) if len(accs) >= 2 else None, mine[0].sparsity,
            tuple(r.train.best_epoch for r in ok), tuple(r.seed for r in ok), len(mine),
            tuple((r.seed, r.status, r.reason or "") for r in mine if not r.ok)))
    return rows


def _pooled_row(init: str, mine) -> SummaryRow:
    counted = [r for r in mine if r.status in ("ok", "chance") and r.test is not None]
    pairs = tuple((r.fold, r.seed, r.test.accuracy, r.test.num_samples) for r in counted)
    per: dict[int, list[float]] = {}
    for _, seed, acc, n in pairs:
        per.setdefault(seed, [0.0, 0.0])
        per[seed][0] += acc * n
        per[seed][1] += n
    seeds = [c / n for c, n in per.values() if n]
    scored = sum(n for *_, n in pairs)
    mean = sum(acc * n for _, _, acc, n in pairs) / scored if scored else None
    ok = [r for r in mine if r.ok]
    return SummaryRow(init, len(pairs), mean, statistics.stdev(seeds) if len(seeds) >= 2 else None,
                      mine[0].sparsity, tuple(r.train.best_epoch for r in ok), tuple(per), len(mine),
                      tuple((r.seed, r.status, r.reason or "") for r in mine if not r.ok), pairs)


def comparison_notes(rows: list[SummaryRow], primary: str) -> list[str]:
    """Footer sentences: measured differences with their noise, how to measure them, and
    which runs did not train."""
    return _comparisons(rows, primary) + [_failures(r) for r in rows if r.failed]


def _comparisons(rows: list[SummaryRow], primary: str) -> list[str]:
    first = next(r for r in rows if r.init == primary)
    others = [r for r in rows if r.init != primary and r.mean is not None]
    if first.mean is None:
        if first.failed and len(first.failed) == first.runs:
            return [f"no {primary} run trained, so there is nothing to compare."]
        return ["no test split, so nothing was measured to compare: give `split` a test fraction."]
    untrained = [f"no {r.init} run trained: nothing to compare with it." for r in rows
                 if r.init != primary and r.mean is None and r.failed]
    if primary in BASELINES:
        return ([f"{primary} is a baseline run: no ticket was measured beside it."] if not others
                else [_diff(first, o) for o in others]) + untrained
    if not others and not untrained:
        return ["baselines not measured: these numbers say nothing about whether the ticket "
                "beats training from scratch. Measure them with "
                "`compare` dense,reinit and `seeds` 3."]
    notes = [_diff(first, o) for o in others] + untrained
    if not any(r.init in BASELINES for r in rows if r.init != primary):
        notes.append("no dense or reinit baseline measured (add `compare` dense,reinit).")
    return notes


def _failures(row: SummaryRow) -> str:
    parts = "; ".join(f"seed {seed} {status}: {reason}" for seed, status, reason in row.failed)
    left = row.runs - len(row.failed)
    return (f"{row.init}: {len(row.failed)} of {row.runs} run(s) did not train ({parts}); "
            + (f"the summary uses the {left} that did." if left else "none did."))


def _paired_diff(a: SummaryRow, b: SummaryRow) -> str:
    """The difference over the (fold, seed) pairs both inits have, with paired tests."""
    from ticketzoo.significance import ALPHA, paired_test

    pa = {(f, s): acc for f, s, acc, _ in a.pairs}
    pb = {(f, s): acc for f, s, acc, _ in b.pairs}
    keys = [k for k in pa if k in pb]
    d = 100 * (a.mean - b.mean)
    text = (f"{a.init} − {b.init}: {d:+.1f} points of test accuracy pooled over the folds "
            f"({len(keys)} (fold, seed) pairs trained on both)")
    if len(keys) < 2:
        return text + "; fewer than 2 pairs: no difference is claimed."
    t = paired_test([pa[k] for k in keys], [pb[k] for k in keys])
    if t.same_everywhere:
        return text + "; the same on every pair: no noise estimate, nothing to test."
    verdict = "a difference at p < 0.05" if t.p < ALPHA else "no difference shown at p < 0.05"
    w = f", Wilcoxon signed-rank p = {t.p_wilcoxon:.2g}" if t.p_wilcoxon is not None else ""
    return text + (f"; paired mean {t.delta:+.1f} ± {t.se:.1f} (standard error), paired t-test p = {t.p:.2g}"
                   f"{w}: {verdict}.")


def _diff(a: SummaryRow, b: SummaryRow) -> str:
    """The measured difference with its standard error and a Welch t-test over seeds."""
    if a.paired and b.paired:
        return _paired_diff(a, b)
    d = 100 * (a.mean - b.mean)
    text = (f"{a.init} − {b.init}: {d:+.1f} points of test accuracy (measured, {a.n} vs {b.n} "
            "trained seed(s))")
    if a.n < 2 or b.n < 2:
        return text + ("; fewer than 2 trained runs on a side: no difference is claimed "
                       "(use `seeds` 3 or more).")
    from scipy.stats import ttest_ind_from_stats

    sa, sb = a.std or 0.0, b.std or 0.0
    se = 100 * (sa**2 / a.n + sb**2 / b.n) ** 0.5
    if se == 0.0:
        return text + "; every seed gave the same accuracy on both sides: no noise estimate."
    p = float(ttest_ind_from_stats(a.mean, sa, a.n, b.mean, sb, b.n, equal_var=False).pvalue)
    few = " (few seeds: treat as a hint)" if min(a.n, b.n) < 5 else ""
    verdict = "a difference at p < 0.05" if p < 0.05 else "no difference shown at p < 0.05"
    return text + f"; ± {se:.1f} (standard error), Welch t-test p = {p:.2g}: {verdict}{few}."


def describe_data(data, sets: dict) -> None:
    """Log what was found, including every skipped file count."""
    n = {s: len(getattr(data, s)) for s in ("train", "val", "test")}
    where = (f"{data.name} from {data.root} (official test set)" if data.layout == "named"
             else f"{data.root} ({data.layout} layout)")
    log.info(f"data: {where}, {len(data.classes)} classes: "
             f"{', '.join(data.classes)}; train {n['train']} / val {n['val']} / test {n['test']} images")
    cached = [s for s, ds in sets.items() if ds is not None and hasattr(ds, "images")]
    log.info("decoded once into memory: " + (", ".join(cached) if cached else "none (streaming from disk)"))
    if data.skipped:
        first = data.skipped[0]
        log.warning(f"skipped {len(data.skipped)} unreadable file(s) "
                    f"(first: {first.path}: {first.reason}); in strict mode this is an error")
    if not n["val"]:
        log.warning("no validation images: early stopping and best-epoch restore are off")
