"""What a fine-tuning run reports: ``metrics.json`` and the summary table.

The summary shows what was measured and nothing more: test accuracy as mean ± sample
std over seeds (std only with two or more seeds), per init. A difference between the
ticket and a baseline is stated only when both were measured, with its seed noise; when
no baseline ran the footer says so and how to run one.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ticketzoo.fileio import atomic_write_bytes

METRICS_SCHEMA = 1
BASELINES = ("dense", "reinit")


@dataclass(frozen=True)
class SummaryRow:
    """One init's runs, aggregated over seeds."""

    init: str
    n: int  # runs (seeds) with a test accuracy
    mean: float | None  # test accuracy
    std: float | None  # sample std over seeds; None with fewer than 2
    sparsity: float
    best_epochs: tuple[int | None, ...]
    seeds: tuple[int, ...]

    def accuracy_text(self) -> str:
        if self.mean is None:
            return "not measured (no test split)"
        return f"{100 * self.mean:.1f}%" + (f" ± {100 * self.std:.1f}" if self.std is not None else "")


def summarize(runs) -> list[SummaryRow]:
    """One row per init, in run order."""
    rows = []
    for init in dict.fromkeys(r.init for r in runs):
        mine = [r for r in runs if r.init == init]
        accs = [r.test.accuracy for r in mine if r.test is not None]
        rows.append(SummaryRow(
            init, len(accs), statistics.fmean(accs) if accs else None,
            statistics.stdev(accs) if len(accs) >= 2 else None, mine[0].sparsity,
            tuple(r.train.best_epoch for r in mine), tuple(r.seed for r in mine)))
    return rows


def comparison_notes(rows: list[SummaryRow], primary: str) -> list[str]:
    """Footer sentences: measured differences with their noise, or how to measure them."""
    first = next(r for r in rows if r.init == primary)
    others = [r for r in rows if r.init != primary and r.mean is not None]
    if first.mean is None:
        return ["no test split, so nothing was measured to compare: give --split a test fraction."]
    if primary in BASELINES:
        return [f"{primary} is a baseline run: no ticket was measured beside it."] if not others else \
            [_diff(first, o) for o in others if first.mean is not None]
    if not others:
        return ["baselines not measured: these numbers say nothing about whether the ticket "
                "beats training from scratch. Measure them with "
                "--compare dense,reinit --seeds 3."]
    notes = [_diff(first, o) for o in others]
    if not any(o.init in BASELINES for o in others):
        notes.append("no dense or reinit baseline measured (add --compare dense,reinit).")
    return notes


def _diff(a: SummaryRow, b: SummaryRow) -> str:
    """The measured difference with its standard error and a Welch t-test over seeds."""
    d = 100 * (a.mean - b.mean)
    text = f"{a.init} − {b.init}: {d:+.1f} points of test accuracy (measured, {a.n} vs {b.n} seed(s))"
    if a.n < 2 or b.n < 2:
        return text + "; one seed is not enough to tell them apart: use --seeds 3 or more."
    from scipy.stats import ttest_ind_from_stats

    sa, sb = a.std or 0.0, b.std or 0.0
    se = 100 * (sa**2 / a.n + sb**2 / b.n) ** 0.5
    if se == 0.0:
        return text + "; every seed gave the same accuracy on both sides: no noise estimate."
    p = float(ttest_ind_from_stats(a.mean, sa, a.n, b.mean, sb, b.n, equal_var=False).pvalue)
    few = " (few seeds: treat as a hint)" if min(a.n, b.n) < 5 else ""
    verdict = "a difference at p < 0.05" if p < 0.05 else "no difference shown at p < 0.05"
    return text + f"; ± {se:.1f} (standard error), Welch t-test p = {p:.2g}: {verdict}{few}."


def table(rows: list[SummaryRow], primary: str):
    """A rich Table of the summary, with the comparison notes as its caption."""
    from rich.table import Table

    t = Table(title="fine-tuning results (test split)", caption="\n".join(comparison_notes(rows, primary)),
              caption_justify="left")
    for col in ("init", "test accuracy", "n", "sparsity", "best epoch"):
        t.add_column(col, justify="left" if col == "init" else "right")
    for r in rows:
        label = r.init + (" (saved)" if r.init == primary else "")
        best = ", ".join("-" if e is None else str(e) for e in r.best_epochs)
        t.add_row(label, r.accuracy_text(), str(r.n), f"{100 * r.sparsity:.1f}%", best)
    return t


def describe_data(say: Callable[..., Any], data, sets: dict) -> None:
    """Tell the user what was found in the folder, including every skipped file count."""
    n = {s: len(getattr(data, s)) for s in ("train", "val", "test")}
    say(f"data: {data.root} ({data.layout} layout), {len(data.classes)} classes: "
        f"{', '.join(data.classes)}; train {n['train']} / val {n['val']} / test {n['test']} images")
    cached = [s for s, ds in sets.items() if ds is not None and hasattr(ds, "images")]
    say("decoded once into memory: " + (", ".join(cached) if cached else "none (streaming from disk)"))
    if data.skipped:
        first = data.skipped[0]
        say(f"skipped {len(data.skipped)} unreadable file(s) "
            f"(first: {first.path}: {first.reason}); --strict makes this an error", style="yellow")
    if not n["val"]:
        say("no validation images: early stopping and best-epoch restore are off", style="yellow")


def _run_dict(run, classes) -> dict[str, Any]:
    t = run.train
    test = run.test
    return {
        "init": run.init, "seed": run.seed, "sparsity": run.sparsity, "time_s": run.time_s,
        "log": run.log, "epochs": t.history, "best_epoch": t.best_epoch,
        "best_val_loss": t.best_val_loss, "epochs_run": t.epochs_run,
        "stopped_early": t.stopped_early, "stop_reason": t.stop_reason, "resumed": t.resumed,
        "test_loss": test.loss if test else None,
        "test_accuracy": test.accuracy if test else None,
        "test_samples": test.num_samples if test else 0,
        "per_class_accuracy": dict(zip(classes, test.per_class_accuracy)) if test else None,
        "confusion": test.confusion if test else None,
    }  # fmt: skip


def metrics_dict(runs, data, config, *, base, base_ref, base_sha256, ticket, sha256) -> dict[str, Any]:
    """Everything measured: every run, the summary, and the saved run's fields at top level."""
    run_dicts = [_run_dict(r, data.classes) for r in runs]
    first = run_dicts[0]
    rows = summarize(runs)
    return {
        "schema": METRICS_SCHEMA,
        "ticket": {"name": ticket.name, "sha256": sha256, "file": "ticket.safetensors",
                   "init": first["init"], "seed": first["seed"], "sparsity": ticket.sparsity},
        "base": {"name": base.name, "ref": base_ref, "sha256": base_sha256,
                 "sparsity": base.sparsity, "arch": base.card.arch.name},
        "data": {"folder": data.root.resolve().name, "root": str(data.root), "layout": data.layout,
                 "classes": list(data.classes), "channels": data.channels, "counts": data.counts(),
                 "skipped": [{"path": s.path, "reason": s.reason} for s in data.skipped],
                 "num_skipped": len(data.skipped)},
        "config": config.to_dict(),
        # the saved run, at top level for convenience
        **{k: first[k] for k in ("epochs", "best_epoch", "test_accuracy", "per_class_accuracy",
                                 "confusion", "stopped_early", "epochs_run")},
        "runs": run_dicts,
        "summary": [{"init": r.init, "n": r.n, "test_accuracy_mean": r.mean,
                     "test_accuracy_std": r.std, "sparsity": r.sparsity,
                     "best_epochs": list(r.best_epochs), "seeds": list(r.seeds)} for r in rows],
        "notes": comparison_notes(rows, first["init"]),
    }  # fmt: skip


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON (NaN/inf become null)."""
    text = json.dumps(_finite(data), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
