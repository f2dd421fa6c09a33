"""The sweep's progress: jobs done / total with an ETA, and each running job's epoch.

The sweep and each running job (with its epoch) go to a progress display (the CLI: live
bars on a terminal); one line per finished job is logged. The ETA is this session's wall
time per finished job times the jobs left, so it already accounts for parallel workers.
"""

from __future__ import annotations

import logging
import time

from ticketzoo.progress import NoProgress, Progress, style

log = logging.getLogger(__name__)


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
    """Reports :func:`ticketzoo.compare.runner.run_jobs`: a line logged per finished job, and
    the sweep and each running job's epoch to a :class:`~ticketzoo.progress.Progress`."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress or NoProgress()
        self.total = self.done = self.finished_here = 0
        self.started = time.monotonic()
        self._live = False  # the sweep's task is started
        self._jobs: set[str] = set()

    def eta(self) -> float | None:
        if not self.finished_here:
            return None
        return (time.monotonic() - self.started) / self.finished_here * (self.total - self.done)

    def start(self, total: int, done: int, workers: int) -> None:
        self.total, self.done, self.started = total, done, time.monotonic()
        left = total - done
        log.info(f"sweep: {total} jobs, {done} already done, {left} to run"
                 + (f" in {workers} worker processes" if workers > 1 and left > 1 else ""))
        if left:
            self.progress.start("sweep", "sweep", total=total, completed=done, note="ETA ?")
            self._live = True

    def job_started(self, job) -> None:
        if self._live and job.key not in self._jobs:
            self._jobs.add(job.key)
            self.progress.start(job.key, f"  {job.key}", note="starting")

    def epoch(self, key: str, epoch: int, max_epochs: int) -> None:
        if key in self._jobs:
            self.progress.advance(key, epoch, total=max_epochs, note=f"epoch {epoch}/{max_epochs}")

    def job_done(self, job, record: dict | None, error: str | None) -> None:
        self.done += 1
        self.finished_here += 1
        if job.key in self._jobs:
            self._jobs.discard(job.key)
            self.progress.end(job.key)
        if self._live:
            self.progress.advance("sweep", self.done, note=f"ETA {duration(self.eta())}")
        line = f"[{self.done}/{self.total}] {job.key}: {outcome(record, error)}"
        if self.done < self.total:
            line += f"; ETA {duration(self.eta())}"
        log.info(line, extra=style(None if record is not None and record["status"] == "ok" else "yellow"))

    def close(self) -> None:
        for key in sorted(self._jobs):
            self.progress.end(key)
        self._jobs.clear()
        if self._live:
            self._live = False
            self.progress.end("sweep")
