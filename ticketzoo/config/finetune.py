"""The fine-tuning recipe: one frozen dataclass around the training recipe.

``protocol`` says where the training recipe comes from: ``None`` uses ``train`` exactly
as given; ``"paper"`` is Sabatelli et al.'s Table 4 (:class:`TrainConfig`'s defaults,
with the fields the caller set in ``train``); ``"auto"`` derives batch size, learning
rate, epochs, warm-up and patience from the number of training images
(:mod:`.protocol`), except the fields named in ``overrides``, which come from ``train``.
The other fields say which weights training starts from, which baselines run beside
it, how many seeds, and (``data``, a :class:`~ticketzoo.config.data.DataConfig`) how the data
is split and read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, Iterable

from ticketzoo.config import UNHASHED, Config, option
from ticketzoo.config.data import DataConfig
from ticketzoo.errors import ConfigError
from ticketzoo.config.train import TrainConfig

# rewind: θk (the ticket), trained: θ after source training (Sabatelli Sec. 4.3.1,
# "fine-tuned pruned model"), reinit: same mask and fresh weights, dense: no mask and
# fresh weights (training from scratch).
INITS = ("rewind", "trained", "reinit", "dense")
WEIGHT_INITS = ("xavier", "default")  # how fresh weights (head, reinit, dense) are drawn
PROTOCOLS = ("auto", "paper")  # None: ``train`` as given


#: What protocol "auto" chooses for the training fields it derives (ticketzoo.finetune.protocol
#: applies it; the CLI's help shows it beside the paper's value, TrainConfig's default).
AUTO_CHOICES = {
    "optimizer": "adamw", "lr": "1e-3 (sgd 1e-2)", "weight_decay": "5e-4", "batch_size": "by training images, 8-64",
    "max_epochs": "30-100 by steps", "schedule": "cosine", "warmup_epochs": "5% of epochs", "milestones": "none",
    "patience": "max(10, epochs/4)", "precise_bn": "on",
}


def protocol_notes(fields: tuple[str, ...]) -> dict[str, str]:
    """``{field: "auto: X; paper: Y"}`` for the training ``fields`` a protocol decides."""
    paper = TrainConfig()

    def shown(value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return ",".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}" if isinstance(
            value, float) else str(value)

    return {name: (f"auto: {AUTO_CHOICES[name]}; " if name in AUTO_CHOICES else "") + f"paper: {shown(getattr(paper, name))}"
            for name in fields}


@dataclass(frozen=True)
class FinetuneConfig(Config):
    """Everything that decides what a fine-tuning run computes. Bad values: ConfigError.

    The fields marked ``UNHASHED`` (name, workers, threads, the data's memory budget) say how a run
    is labelled and executed, not what it computes."""

    config_label = "fine-tuning option"

    train: TrainConfig = field(default_factory=TrainConfig)  # its seed is the first seed
    # the run whose ticket is saved
    init: str = option("rewind", choices=INITS,
                       help="Start from θk (rewind), source-trained θ (trained), fresh weights under the "
                            "mask (reinit) or with no mask (dense).")
    compare: tuple[str, ...] = option((), metavar="INIT[,INIT]",
                                      help="Also train these inits on the same splits and seeds, e.g. dense,reinit.")
    seeds: int = option(1, help="Runs per init (compare: per condition and ticket): seed, seed+1, ...")
    # split and split seed, input size (None: the ticket's), working size, crop and flip, memory
    data: DataConfig = field(default_factory=DataConfig)
    weight_init: str = "xavier"  # fresh head / reinit / dense weights (paper: Xavier)
    workers: int | None = field(default=None, metadata=UNHASHED)  # DataLoader workers; None: per device
    name: str | None = field(default=None, metadata=UNHASHED)  # ticket name; None: <base>-ft-<folder>
    # None: train as given; "paper" or "auto" (module docstring)
    protocol: str | None = option(None, choices=("auto", "paper"),
                                  help="auto: recipe sized to the number of training images (AdamW, warm-up + "
                                       "cosine; docs/FINETUNE.md); paper: Sabatelli et al. Table 4 (SGD Nesterov "
                                       "lr 0.1, batch 64, LR x0.1 at 50/60/75, patience 5). The training flags "
                                       "override either.")
    overrides: tuple[str, ...] = ()  # train fields the caller set; "auto" keeps them
    threads: int | None = field(default=None, metadata=UNHASHED)  # torch CPU threads; None: by model
    # K > 1: stratified K-fold (ticketzoo.data.folds)
    folds: int = option(1, later=True, metavar="K",
                        help="Stratified K-fold over the folder: every image tested once per seed, val carved "
                             "from the training folds, differences paired by fold and seed (1: --split's one "
                             "split). finetune takes it with --compare and saves fold 0's ticket.")

    def __post_init__(self) -> None:
        if isinstance(self.overrides, (list, set, frozenset)):
            object.__setattr__(self, "overrides", tuple(sorted(self.overrides)))
        if isinstance(self.compare, str):  # "dense,reinit", as typed on a command line
            object.__setattr__(self, "compare", tuple(self.compare.split(",")))
        if isinstance(self.compare, (list, tuple)) and all(isinstance(c, str) for c in self.compare):
            object.__setattr__(self, "compare", tuple(c.strip() for c in self.compare if c.strip()))
        self.validate()

    @property
    def seed(self) -> int:
        return self.train.seed

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming (``field``) the first wrong field."""
        self.check_types()

        def bad(name: str, rule: str, hint: str | None = None) -> ConfigError:
            value = getattr(self, name)
            return ConfigError(f"{name} {rule}, got {value!r}", field=name, value=value, hint=hint)

        for what, value in [("init", self.init), *(("compare", c) for c in self.compare)]:
            if value not in INITS:
                raise ConfigError(f"unknown {what} {value!r}", field=what, value=value,
                                  hint=f"choose from {', '.join(INITS)}")
        if self.seeds < 1:
            raise bad("seeds", "must be an integer >= 1")
        if self.weight_init not in WEIGHT_INITS:
            raise ConfigError(f"unknown weight_init {self.weight_init!r}", field="weight_init",
                              value=self.weight_init, hint=f"choose from {', '.join(WEIGHT_INITS)}")
        if self.workers is not None and self.workers < 0:
            raise bad("workers", "must be >= 0")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}", field="protocol", value=self.protocol,
                              hint=f"choose from {', '.join(PROTOCOLS)}")
        known = {f.name for f in dataclass_fields(TrainConfig)}
        if unknown := sorted(set(self.overrides) - known):
            raise ConfigError(f"unknown training option(s) in overrides: {', '.join(unknown)}",
                              field="overrides", value=self.overrides)
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "must be a positive integer")
        if self.folds < 1:
            raise bad("folds", "must be an integer >= 1")
        if self.name is not None:
            from ticketzoo.names import check_name

            check_name(self.name)

    @property
    def inits(self) -> tuple[str, ...]:
        """The inits to run, the saved one first, without duplicates."""
        return tuple(dict.fromkeys((self.init, *self.compare)))

    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def hashed_dict(self) -> dict[str, Any]:
        """The hash's layout is the first release's (data fields at the top level), so the
        hashes and resume fingerprints of every run made before :class:`DataConfig` stay."""
        out = super().hashed_dict()
        out.pop("data")
        return {**out, **self._flat_data()}

    def settings_dict(self, *, varied: Iterable[str] = ()) -> dict[str, Any]:
        out = super().settings_dict(varied=varied)
        out.pop("data")
        return {**out, **self._flat_data(), "memory_budget_bytes": None}

    def _flat_data(self) -> dict[str, Any]:
        """``data`` as the first release's fields: ``split``, ``strict``, ``augment`` (the flip),
        ``resize``; ``input_size`` and ``split_seed`` when set; the rest under ``data``."""
        d = self.data
        out: dict[str, Any] = {"split": list(d.split), "strict": d.strict, "augment": d.flip, "resize": d.resize}
        if d.input_size is not None:
            out["input_size"] = d.input_size
        if d.split_seed:
            out["split_seed"] = d.split_seed
        if extra := {k: v for k, v in (("channels", d.channels), ("crop_pad", d.crop_pad)) if v}:
            out["data"] = extra
        return out

    @property
    def split_seed(self) -> int:
        return self.data.split_seed

    def working_size(self, input_size: int) -> int:
        """Side of the cached square images: ``data.resize`` or 256/224 of the input size."""
        return self.data.working_size(input_size)


def default_name(base: str, folder: str) -> str:
    """``<base>-ft-<folder>``, lower-cased and reduced to ``[a-z0-9._-]`` (max 96 chars)."""
    from ticketzoo.names import check_name, slug

    return check_name(slug(f"{base}-ft-{slug(folder)}", empty="finetuned"))
