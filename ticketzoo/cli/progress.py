"""What the library reports, on stderr: its log records, and its progress as bars or lines.

The library logs under ``ticketzoo.*`` and reports progress to a
:class:`ticketzoo.progress.Progress`; a command wraps its library call in
:func:`library_output`, which shows both through the one error console. On a terminal
progress is a transient live bar; in a log (stderr not a terminal) a task with a unit
prints its rate and ETA every ``log_every_s`` seconds instead, so a long CPU epoch is
not silent for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from ticketzoo.cli.console import err_console
from ticketzoo.progress import NoProgress


class ConsoleHandler(logging.Handler):
    """Prints each record's message on ``console``: a warning in yellow, else the record's
    ``style`` hint (``ticketzoo.progress.style``)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = getattr(record, "style", None) or ("yellow" if record.levelno >= logging.WARNING else None)
            # Plain text: a path or value with [brackets] in it is not rich markup.
            self.console.print(record.getMessage(), style=style, markup=False)
        except Exception:  # noqa: BLE001 - logging's contract: a broken handler never raises
            self.handleError(record)


@contextlib.contextmanager
def library_output(quiet: bool, *, hide: str = "ticketzoo", console: Console | None = None) -> Iterator:
    """Show the library's messages on ``console`` (stderr) while the block runs; yields the
    progress display to pass to the library. ``quiet``: no progress, and the INFO records
    of logger ``hide`` and its children are dropped (warnings always show)."""
    console = console or err_console
    root = logging.getLogger("ticketzoo")
    handler = ConsoleHandler(console)
    if quiet:
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or not _under(r.name, hide))
    before = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False  # shown once, here, whatever the root logger has
    progress = NoProgress() if quiet else RichProgress(console)
    try:
        yield progress
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
        root.removeHandler(handler)
        root.level, root.propagate = before


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@dataclass
class _Plain:
    """A task shown without a live bar: where it started, when a line was last printed."""

    description: str
    total: int | None
    unit: str
    note: str
    t0: float
    c0: int
    logged: float


class _Remaining(TimeRemainingColumn):
    """Time remaining for tasks with a unit (an epoch's batches); blank for the others."""

    def render(self, task):
        return super().render(task) if task.fields.get("eta") else Text("")


class RichProgress:
    """A :class:`ticketzoo.progress.Progress` on a rich console (see the module docstring)."""

    def __init__(self, console: Console, *, log_every_s: float = 60.0) -> None:
        self.console, self.log_every_s = console, log_every_s
        self._bar: Progress | None = None  # live while a task runs (terminals only)
        self._ids: dict[str, int] = {}
        self._plain: dict[str, _Plain] = {}

    def start(self, key: str, description: str, *, total: int | None = None, completed: int = 0,
              unit: str = "", note: str = "") -> None:
        if self.console.is_terminal:
            if self._bar is None:
                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     _Remaining(), TextColumn("{task.fields[note]}"), console=self.console,
                                     transient=True)
                self._bar.start()
            if key in self._ids:
                self._bar.remove_task(self._ids.pop(key))
            self._ids[key] = self._bar.add_task(description, total=total, completed=completed, note=note,
                                                eta=bool(unit))
        elif unit:  # no bar in logs and captured output: a line now and then
            now = time.monotonic()
            self._plain[key] = _Plain(description, total, unit, note, now, completed, now)

    def advance(self, key: str, completed: int, *, total: int | None = None, note: str | None = None) -> None:
        if key in self._ids:
            fields = {k: v for k, v in (("total", total), ("note", note)) if v is not None}
            self._bar.update(self._ids[key], completed=completed, **fields)
            return
        p = self._plain.get(key)
        if p is None:
            return
        p.note = p.note if note is None else note
        p.total = p.total if total is None else total
        now = time.monotonic()
        if now - p.logged < self.log_every_s:
            return
        p.logged = now
        rate = (completed - p.c0) / max(now - p.t0, 1e-9)
        eta = (p.total - completed) / rate if rate > 0 and p.total is not None else math.inf
        self.console.print(f"{p.description}: {completed}/{p.total} {p.unit}, {rate:.2f} it/s, "
                           f"{key} ETA {duration(eta)}" + (f", {p.note}" if p.note else ""))

    def end(self, key: str, summary: str | None = None) -> None:
        self._plain.pop(key, None)
        if key in self._ids:
            self._bar.remove_task(self._ids.pop(key))
        if not self._ids:
            self.close()
        if summary:
            self.console.print(summary)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._ids.clear()


def duration(seconds: float) -> str:
    """``4m05s``, ``1h02m``; ``unknown`` for an infinite ETA."""
    if seconds == math.inf:
        return "unknown"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"
