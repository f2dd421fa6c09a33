"""Callbacks: the loop's only extension point.

A callback is any object with some of these hooks (subclass :class:`Callback` for no-op
defaults): ``on_train_start(state)``, ``on_step_end(state)``, ``on_epoch_end(state,
metrics)``, ``on_train_end(state)`` and ``close()`` (always called, even on errors).
``state.request_stop(reason)`` ends training after the current step's epoch is closed
(evaluated, logged, checkpointed). A callback with ``state_dict()``/``load_state_dict()``
has its state saved in checkpoints and restored on resume.

Under ``torchrun`` every rank runs the same callbacks on the same (reduced) metrics; the
ones that report or write (:class:`ProgressCallback`, :class:`CSVLogger`) do so on rank 0
only.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ticketzoo.progress import NoProgress, Progress
from ticketzoo.train import distributed as dist
from ticketzoo.config.train import TrainConfig
from ticketzoo.train.device import cpu_state_dict
from ticketzoo.config.step import Step, StepLike

Metrics = dict[str, Any]
CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "time_s")


@dataclass
class TrainState:
    """What hooks see. ``epoch`` is 0-based (the epoch running, or just finished in
    ``on_epoch_end``); ``iteration`` counts batches done in it; ``step`` counts optimizer
    steps since the start of the schedule (a run started at ``500it`` begins at 500)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device
    iters_per_epoch: int
    epoch: int = 0
    iteration: int = 0
    step: int = 0
    resumed: bool = False
    history: list[Metrics] = field(default_factory=list)
    stop_requested: bool = False
    stop_reason: str | None = None
    loss_tensor: torch.Tensor | None = None

    @property
    def loss(self) -> float | None:
        """Last batch's training loss (reading it synchronises the GPU)."""
        return None if self.loss_tensor is None else float(self.loss_tensor)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def request_stop(self, reason: str = "stop requested") -> None:
        self.stop_requested, self.stop_reason = True, reason


class Callback:
    """No-op base; override the hooks you need."""

    def on_train_start(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState, metrics: Metrics) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...
    def close(self) -> None: ...


class History(Callback):
    """Collects each epoch's metrics dict in ``rows`` (the loop's own copy is in TrainResult)."""

    def __init__(self) -> None:
        self.rows: list[Metrics] = []

    def on_epoch_end(self, state: TrainState, metrics: Metrics) -> None:
        self.rows.append(dict(metrics))

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs in which ``monitor`` did not drop below its best by
    more than ``min_delta``. Epochs without the metric (no validation) are ignored."""

    def __init__(self, patience: int, *, monitor: str = "val_loss", min_delta: float = 0.0):
        self.patience, self.monitor, self.min_delta = patience, monitor, min_delta
        self.best = math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, state: TrainState, metrics: Metrics) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            return
        if value < self.best - self.min_delta:  # NaN never improves
            self.best, self.bad_epochs = float(value), 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.request_stop(f"{self.monitor} did not improve for {self.patience} epoch(s)")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])


class SnapshotAt(Callback):
    """Call ``fn(cpu_state_dict)`` once, when training reaches ``step``.

    ``0`` fires in ``on_train_start`` (masked weights before any update); ``Nit`` after
    the N-th optimizer step; ``Nep`` after the last step of epoch N. IMP uses this to keep
    the rewind weights θk. Steps before a run's ``start`` never fire."""

    def __init__(self, step: StepLike, fn: Callable[[dict[str, torch.Tensor]], Any]):
        self.step = Step.coerce(step)
        self.fn = fn
        self.fired = False

    def _maybe_fire(self, state: TrainState) -> None:
        if not self.fired and state.step == self.step.iterations(state.iters_per_epoch):
            self.fired = True
            self.fn(cpu_state_dict(state.model))

    def on_train_start(self, state: TrainState) -> None:
        if not state.resumed:
            self._maybe_fire(state)

    def on_step_end(self, state: TrainState) -> None:
        self._maybe_fire(state)

    def state_dict(self) -> dict[str, Any]:
        return {"fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fired = bool(state["fired"])


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.4f}"


def format_epoch(metrics: Metrics, max_epochs: int) -> str:
    """One line per epoch, e.g. ``epoch 3/100  lr 0.1  train loss 0.5123 acc 81.2% ...``."""
    line = (
        f"epoch {metrics['epoch']}/{max_epochs}  lr {metrics['lr']:.3g}  "
        f"train loss {_fmt(metrics['train_loss'])} acc {_fmt(metrics['train_acc'], True)}"
    )
    if metrics.get("val_loss") is not None:
        line += f"  val loss {_fmt(metrics['val_loss'])} acc {_fmt(metrics['val_acc'], True)}"
    return line + f"  {metrics['time_s']:.1f}s"


class ProgressCallback(Callback):
    """Reports each epoch's batches to a :class:`~ticketzoo.progress.Progress` (task
    ``"epoch"``, unit "batches"; the loss in its note, read at most every ``refresh_s``
    seconds since reading it syncs the GPU) and ends the epoch with its metrics line
    (:func:`format_epoch`). No ``progress``: nothing is reported."""

    def __init__(self, progress: Progress | None = None, *, refresh_s: float = 0.5) -> None:
        self.progress = progress or NoProgress()
        self.silent = progress is None  # then the loss is never read (no GPU sync for nobody)
        self.refresh_s = refresh_s
        self._open = False  # an epoch task is started
        self._last = 0.0

    def on_step_end(self, state: TrainState) -> None:
        if self.silent or not dist.is_main():  # asked late: the group may start after construction
            return
        if not self._open:
            self.progress.start("epoch", f"epoch {state.epoch + 1}/{state.config.max_epochs}",
                                total=state.iters_per_epoch, completed=state.iteration - 1, unit="batches")
            self._open = True
        now = time.monotonic()
        note = None
        if now - self._last >= self.refresh_s:
            self._last, note = now, f"loss {state.loss:.4f}"
        self.progress.advance("epoch", state.iteration, note=note)

    def on_epoch_end(self, state: TrainState, metrics: Metrics) -> None:
        if self.silent or not dist.is_main():
            return
        self._open = False
        self.progress.end("epoch", format_epoch(metrics, state.config.max_epochs))

    def close(self) -> None:
        if self._open:  # stopped inside an epoch (an error): its bar goes, no line
            self._open = False
            self.progress.end("epoch")


class CSVLogger(Callback):
    """Writes one row per epoch (:data:`CSV_COLUMNS`) to ``path``. On resume the file is
    rewritten from the restored history, so it never holds rows of a lost epoch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = None
        self._writer = None

    def on_train_start(self, state: TrainState) -> None:
        if not dist.is_main():  # rank 0 alone writes
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, CSV_COLUMNS, extrasaction="ignore")
        self._writer.writeheader()
        for row in state.history:
            self._write(row)

    def _write(self, metrics: Metrics) -> None:
        row = {k: "" if metrics.get(k) is None else metrics[k] for k in CSV_COLUMNS}
        self._writer.writerow(row)
        self._file.flush()

    def on_epoch_end(self, state: TrainState, metrics: Metrics) -> None:
        if self._writer is not None:
            self._write(metrics)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None
