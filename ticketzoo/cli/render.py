"""Tables of what ``find``, ``finetune`` and ``compare`` return (the library's plain rows):
``find``'s as plain columns whose cells are never cut, the others as rich tables."""

from __future__ import annotations

from typing import Callable, Sequence

from rich.table import Table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def find_rounds(results: Sequence) -> tuple[list[str], list[list[str]]]:
    """``find``'s rounds (:class:`ticketzoo.find.RoundResult`) as the header and rows of
    :func:`~ticketzoo.cli.console.print_columns` (ticket names are never cut): round, line,
    sparsity, val/test accuracy, epochs, time, status (ok / diverged / chance), ticket."""
    header = ["round", "line", "sparsity", "val acc", "test acc", "epochs", "time", "status", "ticket"]
    rows = [[str(r.round), r.line, f"{r.sparsity:.2%}", _pct(r.val_accuracy), _pct(r.test_accuracy),
             str(r.epochs), f"{r.time_s:.1f}s", r.status or "-", r.ticket or "-"] for r in results]
    return header, rows


def finetune_summary(rows: list, primary: str, word: Callable[[str], str] = str) -> Table:
    """``finetune``'s summary (:class:`ticketzoo.finetune.SummaryRow` per init), with the
    comparison notes as its caption; ``word`` rewrites their `field` names (as flags)."""
    from ticketzoo.finetune import comparison_notes

    pooled = any(r.paired for r in rows)
    t = Table(title="fine-tuning results (test folds; pooled over every fold and seed)" if pooled
              else "fine-tuning results (test split; mean over runs that trained)",
              caption="\n".join(word(n) for n in comparison_notes(rows, primary)), caption_justify="left")
    for col in ("init", "test accuracy", "trained", "did not train", "sparsity", "best epoch"):
        t.add_column(col, justify="left" if col == "init" else "right")
    for r in rows:
        best = ", ".join("-" if e is None else str(e) for e in r.best_epochs) or "-"
        t.add_row(r.init, r.accuracy_text(), f"{r.runs - len(r.failed)}/{r.runs}", r.failed_text(),
                  f"{100 * r.sparsity:.1f}%", best)
    return t


def finetune_runs(runs, saved=None) -> Table:
    """One row per fine-tuning run: its status, test accuracy and why it did not train."""
    t = Table(title="runs")
    folds = any(r.fold is not None for r in runs)
    for col in ("init", *(("fold",) if folds else ()), "seed", "status", "test accuracy", "best epoch", "epochs",
                "note"):
        t.add_column(col, justify="left" if col in ("init", "status", "note") else "right")
    for r in runs:
        acc = f"{100 * r.test.accuracy:.1f}%" if r.test is not None else "-"
        best = str(r.train.best_epoch) if r.train and r.train.best_epoch else "-"
        epochs = str(r.train.epochs_run) if r.train else str((r.diverged or {}).get("epoch", "-"))
        note = "saved" if r is saved else (r.reason or "")
        t.add_row(r.init, *((str(r.fold),) if folds else ()), str(r.seed), r.status, acc, best, epochs, note)
    return t


def compare_summary(rows: list, *, title: str, caption: str) -> Table:
    """``compare``'s summary (:class:`ticketzoo.compare.Row`s), a section per sparsity; the
    cells are those of ``table.md`` (:func:`ticketzoo.compare.report.cells_of`)."""
    from ticketzoo.compare.report import HEADERS, cells_of, several_families

    many = several_families(rows)
    t = Table(title=title, caption=caption, caption_justify="left")
    for h in HEADERS:
        t.add_column(h, justify="left" if h == "condition" else "right")
    previous = None
    for r in rows:
        if previous is not None and r.cell.sparsity != previous:
            t.add_section()
        previous = r.cell.sparsity
        t.add_row(*cells_of(r, many))
    return t
