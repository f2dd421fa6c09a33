"""The training recipe: one frozen dataclass whose hash names a run directory.

Defaults follow Sabatelli et al.'s transfer-of-tickets protocol: SGD with Nesterov
momentum 0.9, lr 0.1, weight decay 1e-5, batch 64, up to 100 epochs with the LR cut
10x at epochs 50, 60 and 75, early stopping on validation loss with patience 5.

The learning rate is set before every optimizer step (:meth:`TrainConfig.lr_at_step`):
``schedule="step"`` multiplies it by ``gamma`` at each milestone epoch, ``"cosine"``
decays it to 0 over ``max_epochs``; either starts with ``warmup_epochs`` of linear
warm-up. Fields added after the first release (``schedule``, ``warmup_epochs``) enter
:meth:`to_dict` and the hash only when they differ from their defaults, so the hash of
every recipe written before them (run folders, checkpoints) is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ticketzoo.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("step", "cosine")

# Fields that say *where* a run executes, not *what* it computes: left out of the hash
# so a run directory can be resumed on another GPU (or "auto" vs an explicit device).
_UNHASHED = frozenset({"device"})
_FLOATS = ("lr", "momentum", "weight_decay", "gamma")
_INTS = ("batch_size", "max_epochs", "seed", "warmup_epochs")
# Later fields and their defaults: left out of to_dict() (and so the hash) at the default.
_LATER = {"schedule": "step", "warmup_epochs": 0}
_BOOLS = ("nesterov", "restore_best", "amp", "channels_last")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. Invalid values raise :class:`ConfigError`."""

    optimizer: str = "sgd"  # one of OPTIMIZERS
    lr: float = 0.1  # initial learning rate
    momentum: float = 0.9  # SGD momentum (Adam: beta1)
    nesterov: bool = True  # Nesterov momentum (SGD only; needs momentum > 0)
    weight_decay: float = 1e-5  # L2 penalty, applied to every trained parameter
    batch_size: int = 64  # read by whoever builds the loaders; the loop takes loaders
    max_epochs: int = 100  # training length
    milestones: tuple[int, ...] = (50, 60, 75)  # epochs (0-based) from which lr *= gamma
    gamma: float = 0.1  # LR factor at each milestone
    patience: int | None = 5  # epochs without val-loss improvement before stopping; None: off
    restore_best: bool = True  # with validation, end with the lowest-val-loss epoch's weights
    seed: int = 0  # seeds torch/random/numpy at the start of a (non-resumed) run
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"; not part of the hash
    amp: bool = True  # autocast (bf16, or fp16 + GradScaler) on CUDA; ignored on CPU
    channels_last: bool = True  # NHWC model and inputs on CUDA; ignored on CPU
    schedule: str = "step"  # "step": milestones x gamma; "cosine": to 0 at max_epochs
    warmup_epochs: int = 0  # linear warm-up from lr/steps to lr over these epochs' steps

    def __post_init__(self) -> None:
        # Normalise types so equal recipes hash equally (lr=1 and lr=1.0, lists vs tuples).
        for name in _FLOATS:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if isinstance(self.milestones, list):
            object.__setattr__(self, "milestones", tuple(self.milestones))
        for name in ("optimizer", "schedule"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, getattr(self, name).lower())
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first out-of-range field."""
        for name in _FLOATS:
            value = getattr(self, name)
            if not isinstance(value, float) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for name in _INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}",
                              hint=f"choose one of {', '.join(SCHEDULES)}")
        if self.schedule == "cosine" and self.milestones:
            raise ConfigError("milestones apply to the step schedule only",
                              hint="drop the milestones or use schedule 'step'")
        if not 0 <= self.warmup_epochs < self.max_epochs:
            raise ConfigError(f"warmup_epochs must be in [0, max_epochs), got {self.warmup_epochs}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}",
                hint=f"choose one of {', '.join(OPTIMIZERS)}",
            )
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0", hint="set momentum or nesterov=False")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")
        if not isinstance(self.milestones, tuple) or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones
        ):
            raise ConfigError(f"milestones must be positive epoch numbers, got {self.milestones!r}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError(f"milestones must be strictly increasing, got {self.milestones!r}")
        patience = self.patience
        if patience is not None and (
            isinstance(patience, bool) or not isinstance(patience, int) or patience < 1
        ):
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise ConfigError(
                f"unknown device {self.device!r}", hint="use 'auto', 'cpu', 'cuda' or 'cuda:N'"
            )

    def lr_at(self, epoch: int) -> float:
        """Step schedule, no warm-up: ``lr * gamma**(milestones <= epoch)`` in 0-based ``epoch``."""
        return self.lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)

    def lr_at_step(self, step: int, iters_per_epoch: int) -> float:
        """Learning rate of the optimizer step after ``step`` steps (0-based) of the schedule."""
        warm = self.warmup_epochs * iters_per_epoch
        if step < warm:  # linear: lr/warm at the first step, lr at the last warm-up step
            return self.lr * (step + 1) / warm
        if self.schedule == "step":
            return self.lr_at(step // iters_per_epoch)
        span = max(1, self.max_epochs * iters_per_epoch - warm)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / span)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (milestones as a list; later fields only when not default)."""
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        for name, default in _LATER.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown training option(s): {', '.join(unknown)}",
                hint=f"valid options: {', '.join(sorted(names))}",
            )
        values = dict(data)
        if isinstance(values.get("milestones"), (list, tuple)):
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)

    def hash(self) -> str:
        """sha256 hex of the canonical JSON of every field except ``device``."""
        data = {k: v for k, v in self.to_dict().items() if k not in _UNHASHED}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def hashname(self) -> str:
        """The first 12 hex digits of :meth:`hash`: a stable run-directory name."""
        return self.hash()[:12]
