"""The training recipe: one frozen dataclass whose hash names a run directory.

Defaults follow Sabatelli et al.'s transfer-of-tickets protocol: SGD with Nesterov
momentum 0.9, lr 0.1, weight decay 1e-5, batch 64, up to 100 epochs with the LR cut
10x at epochs 50, 60 and 75, early stopping on validation loss with patience 5.

The learning rate is set before every optimizer step (:meth:`TrainConfig.lr_at_step`):
``schedule="step"`` multiplies it by ``gamma`` at each milestone epoch, ``"cosine"``
decays it to 0 over ``max_epochs``, ``"linear"`` decays it linearly to 0 (with warm-up:
a one-cycle, triangular schedule); each starts with ``warmup_epochs`` of linear warm-up.
``label_smoothing`` softens the training loss's targets (evaluation loss is plain).
``amp``/``channels_last`` act on CUDA; ``cpu_amp``/``cpu_channels_last`` turn on bf16
autocast and NHWC on CPU: runtime choices, out of the hash (``None`` is "auto", resolved by
the command from the architecture, the CPU and the task, then recorded with the run), so a
run folder made on one CPU resumes on another. ``precise_bn`` recomputes BatchNorm's running
statistics on training batches before each validation. ``to_dict``, strict ``from_dict``
and ``hash`` come from :class:`ticketzoo.config.Config`; fields added after the first release (``schedule``, ``warmup_epochs``) enter the dict and
the hash only when they differ from their defaults, so the hash of every recipe written
before them (run folders, checkpoints) is unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ticketzoo.config import LATER, UNHASHED, Config, option
from ticketzoo.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("step", "cosine", "linear")
RUNTIMES = ("auto", "dense", "sparse")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_RUNTIME = {**UNHASHED, **LATER}  # not hashed, and left out of to_dict while "auto" (None)


@dataclass(frozen=True)
class TrainConfig(Config):
    """Hyperparameters of one training run. Invalid values raise :class:`ConfigError`."""

    config_label = "training option"

    optimizer: str = option("sgd", help="Optimizer.", choices=OPTIMIZERS)
    lr: float = option(0.1, help="Initial learning rate.")
    momentum: float = option(0.9, help="SGD momentum / Adam beta1.")
    nesterov: bool = option(True, help="Nesterov momentum (SGD; needs momentum > 0).")
    weight_decay: float = option(1e-5, help="L2 penalty on every trained parameter.")
    batch_size: int = option(64, help="Images per step (the loaders read it; under torchrun the global batch).")
    max_epochs: int = option(100, flag="--epochs", help="Training length in epochs (early stopping may end sooner).")
    # epochs (0-based) from which lr *= gamma
    milestones: tuple[int, ...] = option((50, 60, 75), metavar="E[,E]|none",
                                         help="Step schedule: LR x gamma at these epochs ('none' for a constant LR).")
    gamma: float = option(0.1, help="LR factor at each milestone.")
    patience: int | None = option(5, help="Early stopping on val loss after this many epochs without "
                                          "improvement (0: off).")
    restore_best: bool = True  # with validation, end with the lowest-val-loss epoch's weights
    seed: int = 0  # seeds torch/random/numpy at the start of a (non-resumed) run
    # *Where* a run executes, not what it computes: out of the hash, so a run directory can
    # be resumed on another GPU (or "auto" vs an explicit device).
    device: str = field(default="auto", metadata=UNHASHED)  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: bool = True  # autocast (bf16, or fp16 + GradScaler) on CUDA; CPU: see `cpu_amp`
    channels_last: bool = True  # NHWC model and inputs on CUDA; CPU: see `cpu_channels_last`
    schedule: str = option("step", later=True, choices=SCHEDULES,
                           help="step: LR x gamma at each milestone; cosine / linear: LR decays to 0 over "
                                "--epochs (linear after --warmup-epochs: a one-cycle schedule).")
    warmup_epochs: int = option(0, later=True, help="Linear LR warm-up over the first epochs.")
    label_smoothing: float = option(0.0, later=True, help="Label smoothing of the training loss, in [0, 1).")
    # Precision and memory format on CPU: *how* a run executes (a runtime choice, like the device),
    # so out of the hash; None ("auto") is resolved per run by the command
    # (ticketzoo.train.device.resolve_cpu_runtime) and the resolved value is recorded with the run.
    cpu_amp: bool | None = field(default=None, metadata=_RUNTIME)  # bf16 autocast on CPU
    cpu_channels_last: bool | None = field(default=None, metadata=_RUNTIME)  # NHWC model and inputs on CPU
    # Which kernels multiply the masked layers on the CPU: a runtime choice (results equal within
    # float tolerance), so out of the hash; resolved per layer and recorded per run.
    runtime: str = option("auto", later=True, hashed=False, choices=RUNTIMES,
                          help="Masked layers on the CPU: sparse kernels (forward and backward), dense, or auto "
                               "(each layer timed once per machine, sparse where it is faster).")
    precise_bn: bool = option(False, later=True,
                              help="Recompute BatchNorm statistics on training batches before each "
                                   "validation (precise BN), so that small batches cannot derail "
                                   "validation and early stopping.")

    def __post_init__(self) -> None:
        # Normalise so equal recipes hash equally (lr=1 and lr=1.0, lists vs tuples, case).
        for name in ("optimizer", "schedule", "runtime"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, getattr(self, name).lower())
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming (``field``) the first wrong field."""
        self.check_types()
        for name in ("lr", "momentum", "weight_decay", "gamma"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)!r}",
                                  field=name, value=getattr(self, name))
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}", field="schedule", value=self.schedule,
                              hint=f"choose one of {', '.join(SCHEDULES)}")
        if self.schedule != "step" and self.milestones:
            raise ConfigError("milestones apply to the step schedule only", field="milestones",
                              value=self.milestones, hint="drop `milestones` or use `schedule` 'step'")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {self.runtime!r}", field="runtime", value=self.runtime,
                              hint=f"choose one of {', '.join(RUNTIMES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}", field="optimizer", value=self.optimizer,
                              hint=f"choose one of {', '.join(OPTIMIZERS)}")
        checks = [
            ("lr", self.lr > 0, "must be > 0"),
            ("momentum", 0 <= self.momentum < 1, "must be in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("max_epochs", self.max_epochs >= 1, "must be >= 1"),
            ("gamma", 0 < self.gamma <= 1, "must be in (0, 1]"),
            ("milestones", all(m >= 1 for m in self.milestones), "must be positive epoch numbers"),
            ("milestones", list(self.milestones) == sorted(set(self.milestones)), "must be strictly increasing"),
            ("patience", self.patience is None or self.patience >= 1, "must be >= 1 or None"),
            ("seed", self.seed >= 0, "must be >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "must be in [0, 1)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                value = getattr(self, name)
                raise ConfigError(f"{name} {rule}, got {value!r}", field=name, value=value)
        if not 0 <= self.warmup_epochs < self.max_epochs:
            raise ConfigError(f"warmup_epochs must be >= 0 and below `max_epochs` ({self.max_epochs}), "
                              f"got {self.warmup_epochs}", field="warmup_epochs", value=self.warmup_epochs)
        if self.nesterov and self.optimizer == "sgd" and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0", field="nesterov", value=True,
                              hint="set `momentum` or turn `nesterov` off")
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"unknown device {self.device!r}", field="device", value=self.device,
                              hint="use 'auto', 'cpu', 'cuda' or 'cuda:N'")

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
        done = min(1.0, (step - warm) / span)
        if self.schedule == "linear":
            return self.lr * (1.0 - done)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * done))
