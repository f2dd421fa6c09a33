"""``metrics.json``: every run with its status, the summary, the setup, the saved ticket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.finetune.report import comparison_notes, summarize

METRICS_SCHEMA = 2  # 2: per-run status, protocol, threads, images; the saved run may not be the first
_SAVED_KEYS = ("epochs", "best_epoch", "test_accuracy", "per_class_accuracy", "confusion",
               "stopped_early", "epochs_run")


def run_dict(run, classes) -> dict[str, Any]:
    t, test = run.train, run.test
    return {
        "init": run.init, "seed": run.seed, "fold": run.fold, "test_sha256": run.test_sha256,
        "status": run.status, "reason": run.reason,
        "p_value_vs_chance": run.p_value, "chance_level": run.chance_level, "diverged": run.diverged,
        "sparsity": run.sparsity, "time_s": run.time_s, "log": run.log,
        "epochs": t.history if t else [], "best_epoch": t.best_epoch if t else None,
        "best_val_loss": t.best_val_loss if t else None, "epochs_run": t.epochs_run if t else None,
        "stopped_early": t.stopped_early if t else None, "stop_reason": t.stop_reason if t else None,
        "resumed": t.resumed if t else None, "kernels": t.kernels if t else None,
        "test_loss": test.loss if test else None,
        "test_accuracy": test.accuracy if test else None,
        "test_samples": test.num_samples if test else 0,
        "per_class_accuracy": dict(zip(classes, test.per_class_accuracy)) if test else None,
        "confusion": test.confusion if test else None,
    }  # fmt: skip


def metrics_dict(runs, data, config, *, base, base_ref, base_sha256, setup, saved, ticket,
                 sha256) -> dict[str, Any]:
    """Everything measured: every run, the summary, and the saved run's fields at top level."""
    from ticketzoo.data import source

    run_dicts = [run_dict(r, data.classes) for r in runs]
    top = run_dicts[[r is saved for r in runs].index(True)] if saved is not None else {k: None for k in _SAVED_KEYS}
    rows = summarize(runs)
    return {
        "schema": METRICS_SCHEMA,
        "ticket": None if ticket is None else {
            "name": ticket.name, "sha256": sha256, "file": "ticket.safetensors", "init": saved.init,
            "seed": saved.seed, "sparsity": ticket.sparsity},
        "base": {"name": base.name, "ref": base_ref, "sha256": base_sha256,
                 "sparsity": base.sparsity, "arch": base.card.arch.name},
        "data": {"folder": source.label(data), "root": str(data.root), "layout": data.layout,
                 "classes": list(data.classes), "channels": data.channels, "counts": data.counts(),
                 "skipped": [{"path": s.path, "reason": s.reason} for s in data.skipped],
                 "num_skipped": len(data.skipped)},
        "config": config.to_dict(),
        **setup,  # protocol (resolved values and why), threads, images (sizes, modes, transform)
        **{k: top[k] for k in _SAVED_KEYS},  # the saved run, at top level for convenience
        "runs": run_dicts,
        "summary": [{"init": r.init, "n": r.n, "runs": r.runs, "test_accuracy_mean": r.mean,
                     "test_accuracy_std": r.std, "sparsity": r.sparsity,
                     "best_epochs": list(r.best_epochs), "seeds": list(r.seeds),
                     "not_trained": [{"seed": s, "status": st, "reason": why} for s, st, why in r.failed]}
                    for r in rows],
        "notes": comparison_notes(rows, config.init),
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
