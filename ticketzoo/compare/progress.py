"""The sweep's progress: jobs done / total with an ETA, and each running job's epoch.

On a terminal, live bars (the sweep, then one line per running job with its epoch); in a
log or captured output, one line per finished job. The ETA is this session's wall time
per finished job times the jobs left, so it already accounts for parallel workers.
"""

from __future__ import annotations

import time


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def outcome(record: dict | None, error: str | None) -> str:
    """``ok, 95.6% test, 34 epochs (best 24), 3.1 s`` or why it did not train."""
    if record is None:
        return f"failed: {error}"
    if record["status"] == "diverged":  # the reason says in which epoch and at which lr
        return f"diverged, {record['time_s']:.1f} s: {record['reason']}"
    acc = f", {100 * record['test_accuracy']:.1f}% test" if record["test_accuracy"] is not None else ""
    best = f" (best {record['best_epoch']})" if record.get("best_epoch") else ""
    text = f"{record['status']}{acc}, {record['epochs']} epoch{'' if record['epochs'] == 1 else 's'}{best}, {record['time_s']:.1f} s"
    return text + (f": {record['reason']}" if record.get("reason") else "")


class SweepProgress:
    """Reports :func:`ticketzoo.compare.runner.run_jobs` to a rich console."""

    def __init__(self, console, *, quiet: bool = False) -> None:
        self.console, self.quiet = console, quiet
        self.total = self.done = self.finished_here = 0
        self.started = time.monotonic()
        self._live = None
        self._sweep = None
        self._tasks: dict[str, int] = {}

    def eta(self) -> float | None:
        if not self.finished_here:
            return None
        return (time.monotonic() - self.started) / self.finished_here * (self.total - self.done)

    def start(self, total: int, done: int, workers: int) -> None:
        self.total, self.done, self.started = total, done, time.monotonic()
        if self.quiet:
            return
        left = total - done
        self.console.print(f"sweep: {total} jobs, {done} already done, {left} to run"
                           + (f" in {workers} worker processes" if workers > 1 and left > 1 else ""))
        if self.console.is_terminal and left:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._live = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[note]}"), console=self.console, transient=True)
            self._sweep = self._live.add_task("sweep", total=total, completed=done, note="ETA ?")
            self._live.start()

    def job_started(self, job) -> None:
        if self._live is not None and job.key not in self._tasks:
            self._tasks[job.key] = self._live.add_task(f"  {job.key}", total=None, note="starting")

    def epoch(self, key: str, epoch: int, max_epochs: int) -> None:
        if self._live is not None and key in self._tasks:
            self._live.update(self._tasks[key], total=max_epochs, completed=epoch,
                              note=f"epoch {epoch}/{max_epochs}")

    def job_done(self, job, record: dict | None, error: str | None) -> None:
        self.done += 1
        self.finished_here += 1
        if self.quiet:
            return
        if self._live is not None:
            if job.key in self._tasks:
                self._live.remove_task(self._tasks.pop(job.key))
            self._live.update(self._sweep, completed=self.done, note=f"ETA {duration(self.eta())}")
        line = f"[{self.done}/{self.total}] {job.key}: {outcome(record, error)}"
        if self.done < self.total:
            line += f"; ETA {duration(self.eta())}"
        style = None if record is not None and record["status"] == "ok" else "yellow"
        self.console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
