"""The fine-tuning recipe: one frozen dataclass around the training recipe.

``protocol`` says where the training recipe comes from: ``None`` uses ``train`` exactly
as given; ``"paper"`` is Sabatelli et al.'s Table 4 (:class:`TrainConfig`'s defaults,
with the fields the caller set in ``train``); ``"auto"`` derives batch size, learning
rate, epochs, warm-up and patience from the number of training images
(:mod:`.protocol`), except the fields named in ``overrides``, which come from ``train``.
The other fields say which weights training starts from, which baselines run beside
it, how many seeds, and how the data is split and read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from dataclasses import fields as dataclass_fields

from ticketzoo.data import DEFAULT_MEMORY_BUDGET
from ticketzoo.errors import ConfigError
from ticketzoo.train import TrainConfig

# rewind: θk (the ticket), trained: θ after source training (Sabatelli Sec. 4.3.1,
# "fine-tuned pruned model"), reinit: same mask and fresh weights, dense: no mask and
# fresh weights (training from scratch).
INITS = ("rewind", "trained", "reinit", "dense")
WEIGHT_INITS = ("xavier", "default")  # how fresh weights (head, reinit, dense) are drawn
PROTOCOLS = ("auto", "paper")  # None: ``train`` as given
_NAME_CHARS = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that decides what a fine-tuning run computes. Bad values: ConfigError."""

    train: TrainConfig = field(default_factory=TrainConfig)  # its seed is the first seed
    init: str = "rewind"  # one of INITS: the run whose ticket is saved
    compare: tuple[str, ...] = ()  # other INITS trained on the same splits and seeds
    seeds: int = 1  # runs per init with seeds seed, seed+1, ...
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/val/test for DIR/<class>/*
    strict: bool = False  # an unreadable file is an error instead of skipped
    augment: bool = False  # add horizontal flips to the random crop
    resize: int | None = None  # working size cached per image; None: input_size * 8/7
    weight_init: str = "xavier"  # fresh head / reinit / dense weights (paper: Xavier)
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET  # decoded cache; above: streaming
    workers: int | None = None  # DataLoader workers; None picks per device and dataset
    name: str | None = None  # fine-tuned ticket name; None: <base>-ft-<folder>
    protocol: str | None = None  # None: train as given; "paper" or "auto" (module docstring)
    overrides: tuple[str, ...] = ()  # train fields the caller set; "auto" keeps them
    threads: int | None = None  # torch CPU threads; None: chosen from the model (not hashed)

    def __post_init__(self) -> None:
        if isinstance(self.overrides, (list, set, frozenset)):
            object.__setattr__(self, "overrides", tuple(sorted(self.overrides)))
        if isinstance(self.compare, (list, str)):
            items = self.compare.split(",") if isinstance(self.compare, str) else self.compare
            object.__setattr__(self, "compare", tuple(s.strip() for s in items if s.strip()))
        if isinstance(self.split, list):
            object.__setattr__(self, "split", tuple(self.split))
        self.validate()

    @property
    def seed(self) -> int:
        return self.train.seed

    def validate(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train must be a TrainConfig")
        for what, value in [("init", self.init), *(("compare", c) for c in self.compare)]:
            if value not in INITS:
                raise ConfigError(f"unknown {what} {value!r}", hint=f"choose from {', '.join(INITS)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {self.seeds!r}")
        ok = len(self.split) == 3 and all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
                                          for x in self.split)
        if not ok or self.split[0] <= 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"invalid split {self.split!r}: need train,val,test fractions >= 0 "
                              "with train > 0, summing to 1", hint="for example 0.8,0.1,0.1")
        if self.resize is not None and (isinstance(self.resize, bool) or not isinstance(self.resize, int)
                                        or self.resize < 1):
            raise ConfigError(f"resize must be a positive integer, got {self.resize!r}")
        if self.weight_init not in WEIGHT_INITS:
            raise ConfigError(f"unknown weight_init {self.weight_init!r}",
                              hint=f"choose from {', '.join(WEIGHT_INITS)}")
        if not isinstance(self.memory_budget_bytes, int) or self.memory_budget_bytes < 0:
            raise ConfigError(f"memory budget must be >= 0 bytes, got {self.memory_budget_bytes!r}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}", hint=f"choose from {', '.join(PROTOCOLS)}")
        known = {f.name for f in dataclass_fields(TrainConfig)}
        if unknown := sorted(set(self.overrides) - known):
            raise ConfigError(f"unknown training option(s) in overrides: {', '.join(unknown)}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, got {self.threads!r}")
        if self.name is not None:
            from ticketzoo.registry.refs import check_name

            check_name(self.name)

    @property
    def inits(self) -> tuple[str, ...]:
        """The inits to run, the saved one first, without duplicates."""
        return tuple(dict.fromkeys((self.init, *self.compare)))

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def working_size(self, input_size: int) -> int:
        """Side of the cached square images: ``resize`` or 256/224 of the input size."""
        size = self.resize if self.resize is not None else round(input_size * 256 / 224)
        if size < input_size:
            raise ConfigError(f"resize {size} is smaller than the ticket's input size {input_size}",
                              hint=f"use --resize {input_size} or more")
        return size

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": self.train.to_dict(), "init": self.init, "compare": list(self.compare),
            "seeds": self.seeds, "split": list(self.split), "strict": self.strict,
            "augment": self.augment, "resize": self.resize, "weight_init": self.weight_init,
            "memory_budget_bytes": self.memory_budget_bytes, "workers": self.workers,
            "name": self.name, "protocol": self.protocol, "overrides": list(self.overrides),
            "threads": self.threads,
        }  # fmt: skip


def default_name(base: str, folder: str) -> str:
    """``<base>-ft-<folder>``, lower-cased and reduced to ``[a-z0-9._-]`` (max 96 chars)."""
    from ticketzoo.registry.refs import check_name

    folder_part = _NAME_CHARS.sub("-", folder.lower()).strip("-._") or "data"
    name = f"{base}-ft-{folder_part}"[:96].rstrip("-._")
    name = _NAME_CHARS.sub("-", name).lstrip("-._").replace("..", ".") or "finetuned"
    return check_name(name)
