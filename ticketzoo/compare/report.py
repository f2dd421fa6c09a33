"""The comparison's outputs: ``runs.csv`` and ``results.json`` (every run), the table's cells.

The table has one row per condition and sparsity: test accuracy mean ± std over the
seeds that trained (with K folds: pooled over every fold, ± std over seeds, and its
Wilson 95% interval), how many trained, and the difference to dense and to the reinit
control of the same mask (:mod:`.stats`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ticketzoo.compare.stats import Row
from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.finetune.metrics import write_json

SCHEMA = 1
SHORT = {"rewind": "rewind (θk)", "trained": "trained (θi)", "reinit": "reinit", "random_prune": "random prune",
         "dense": "dense"}  # table labels; the plot's legend spells them out (plan.LABELS)
CSV_COLUMNS = ("key", "family", "ticket", "condition", "sparsity", "remaining", "fold", "seed", "status",
               "test_accuracy", "test_samples", "epochs", "best_epoch", "stopped_early", "reason", "time_s",
               "split_seed", "test_sha256")


def write_csv(path: Path, records: list[dict]) -> None:
    """One line per run, in plan order (atomic)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def results_dict(records: list[dict], rows: list[Row], *, setup: dict, notes: list[str]) -> dict:
    """What ``results.json`` holds: the setup, every run and the summary rows."""
    return {"schema": SCHEMA, **setup, "runs": records,
            "summary": [row_dict(r) for r in rows], "notes": notes}


def write_results(path: Path, data: dict) -> None:
    write_json(path, data)


def row_dict(row: Row) -> dict:
    c = row.cell
    return {"family": c.family, "condition": c.condition, "ticket": c.ticket, "sparsity": c.sparsity,
            "remaining": 1.0 - c.sparsity, "n": c.n, "runs": c.runs, "seeds": list(c.seeds),
            "test_accuracy_mean": c.mean, "test_accuracy_std": c.std,
            "not_trained": [{"seed": s, "status": st} for s, st in c.failed],
            "vs_dense": row.vs_dense.to_dict() if row.vs_dense else None,
            "vs_reinit": row.vs_reinit.to_dict() if row.vs_reinit else None,
            **(_pooled_dict(c) if c.paired else {})}


def _pooled_dict(c) -> dict:
    """With K folds: which (fold, seed) runs the pooled accuracy rests on, and its interval."""
    interval = c.interval()
    return {"folds": sorted({f for f in c.folds if f is not None}), "test_images": c.images,
            "scored": sum(c.samples), "pooled_accuracy": c.mean,
            "wilson95": list(interval) if interval else None,
            "seed_pooled_accuracy": {str(s): a for s, a in c.seed_accuracies().items()}}


def accuracy_text(row: Row) -> str:
    c = row.cell
    if c.mean is None:
        return "no run trained"
    text = f"{100 * c.mean:.1f}%" + (f" ± {100 * c.std:.1f}" if c.std is not None else "")
    if c.paired and (interval := c.interval()):
        text += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return text


def trained_text(row: Row) -> str:
    c = row.cell
    text = f"{c.runs - len(c.failed) if c.paired else c.n}/{c.runs}"
    kinds = {}
    for _, status in c.failed:
        kinds[status] = kinds.get(status, 0) + 1
    counted = ", scored" if c.paired else ""  # K folds: a run at chance is still scored
    return text + (" (" + ", ".join(f"{n} {k}" + (counted if k == "chance" else "") for k, n in kinds.items())
                   + ")" if kinds else "")


def cells_of(row: Row, many_families: bool = False) -> list[str]:
    """The table's columns for one row, as text (the family named when there are several)."""
    c = row.cell
    what = SHORT.get(c.condition, c.condition) + (f" [{c.family}]" if c.family and many_families else "")
    return [what, f"{100 * c.sparsity:.1f}%", accuracy_text(row),
            trained_text(row), row.vs_dense.text() if row.vs_dense else "—",
            row.vs_reinit.text() if row.vs_reinit else "—"]


HEADERS = ("condition", "sparsity", "test accuracy", "trained", "− dense (points)", "− reinit (points)")


def several_families(rows: list[Row]) -> bool:
    """More than one ticket family in the table: each row names its own."""
    return len({r.cell.family for r in rows if r.cell.family}) > 1


def markdown(rows: list[Row]) -> str:
    """The same table as GitHub markdown (for notes and docs)."""
    many = several_families(rows)
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells_of(r, many)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
