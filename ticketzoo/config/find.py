"""The IMP recipe: one frozen dataclass whose hash names a run folder, and ticket naming.

The hash covers *what* a run computes (architecture, data source and split, pruning and
training hyperparameters, seeds). It leaves out *where* it runs and reads from: the device,
DataLoader workers, the data location (``data_root`` or the folder's path) and the card's
free-text descriptions. A run folder can therefore be resumed on another machine or with the
data moved; the data's class names and split sizes are checked separately on resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ticketzoo.config import LATER, Config, option
from ticketzoo.errors import ConfigError
from ticketzoo.names import slug
from ticketzoo.config.step import Step
from ticketzoo.config.train import TrainConfig

CONTROLS = ("reinit", "random-prune")
CONTROL_SUFFIX = {"reinit": "reinit", "random-prune": "randprune"}
INITS = ("xavier", "default")
SCOPES = ("global", "layerwise")


@dataclass(frozen=True)
class FindRecipe(Config):
    """Everything that determines an IMP run's tickets (see the module docstring)."""

    config_label = "recipe field"

    arch: str  # model registry name, e.g. "resnet50", "conv4"
    source: str  # data label: a dataset name ("cifar10") or an image folder's name
    data_kind: str = "folder"  # "named" (torchvision dataset) or "folder"
    rounds: int = option(31, help="Pruning rounds (R rounds train R+1 times; round 0 is dense).")
    rate: float = option(0.2, help="Fraction of the remaining prunable weights removed per round, in (0, 1).")
    scope: str = option("global", choices=SCOPES,
                        help="global: all prunable tensors form one pool (the head included); layerwise: each "
                             "tensor loses RATE, the output layer RATE/2 (Frankle & Carbin). --head-rate sets "
                             "the head's own rate in either scope.")
    rewind: str = option("2ep", help="Rewind step k: 0 (θ0, original LTH), 2ep or 500it (late resetting).")
    # None: rate/2 in layerwise scope, pooled in global
    head_rate: float | None = option(None, help="The output layer's own pruning rate.")
    exclude_head: bool = option(False, help="Never prune the output layer.")
    exclude_first_conv: bool = option(False, help="Never prune the first convolution.")
    init: str = "xavier"  # "xavier" (Sabatelli et al. Table 4) or "default" (framework)
    seed: int = 0  # model init and training seed
    control: str | None = None  # None, "reinit" or "random-prune": also train that control
    data_seed: int = option(0, help="Seed of the data split.")
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # folders: train/val/test fractions
    val_fraction: float = option(0.1, help="Named datasets: share of the train set held out for validation.")
    input_size: int = 32  # side of the square images the network sees
    channels: int = 3  # image channels the network sees
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 0.25}
    train: TrainConfig = field(default_factory=TrainConfig)
    # Added after the first release: out of the dict (and hash) at its default.
    augment: bool = field(default=False, metadata=LATER)  # random crop (4 px pad) + flip
    # Target sparsity after each round (overrides `rate`: round i removes what takes the
    # sparsity from sparsities[i-2] to sparsities[i-1]); one entry per round.
    sparsities: tuple[float, ...] = option((), later=True, metavar="S[,S...]",
                                           help="Target sparsity after each round, e.g. 0.5,0.75,0.89,0.97 "
                                                "(instead of --rate; sets --rounds).")
    # Train `control` only in the rounds whose target sparsity is one of these (empty: every round).
    control_at: tuple[float, ...] = option((), later=True, metavar="S[,S...]",
                                           help="Train the --control only in the rounds of these target "
                                                "sparsities (e.g. 0.89,0.97).")

    def __post_init__(self) -> None:
        self.check_types()
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        # "0" and "0it" are the same recipe: one spelling, so one hash.
        object.__setattr__(self, "rewind", str(Step.parse(self.rewind)))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming (``field``) the first out-of-range field."""
        def bad(name: str, rule: str, hint: str | None = None) -> ConfigError:
            value = getattr(self, name)
            return ConfigError(f"{name} {rule}, got {value!r}", field=name, value=value, hint=hint)

        if self.rounds < 1:
            raise bad("rounds", "must be a positive integer", "IMP needs at least one pruning round")
        if not 0.0 < self.rate < 1.0:
            raise bad("rate", "must lie strictly between 0 and 1",
                      "0.2 prunes 20% of the remaining weights per round")
        if self.head_rate is not None and not 0.0 <= self.head_rate < 1.0:
            raise bad("head_rate", "must lie in [0, 1)")
        for name, allowed in (("scope", SCOPES), ("init", INITS), ("data_kind", ("named", "folder"))):
            if getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {', '.join(allowed)}")
        if self.control is not None and self.control not in CONTROLS:
            raise bad("control", f"must be one of {', '.join(CONTROLS)}")
        if self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        if self.input_size < 1:
            raise bad("input_size", "must be a positive integer")
        if self.channels not in (1, 3):
            raise bad("channels", "must be 1 or 3")
        if not 0.0 <= self.val_fraction < 1.0:
            raise bad("val_fraction", "must lie in [0, 1)")
        if self.sparsities:
            s = self.sparsities
            if len(s) != self.rounds:
                raise ConfigError(f"sparsities has {len(s)} entries but rounds is {self.rounds}",
                                  field="sparsities", value=s, hint="give one target per round")
            if not all(0.0 < x < 1.0 for x in s) or list(s) != sorted(set(s)):
                raise bad("sparsities", "must be strictly increasing fractions in (0, 1)")
        if self.control_at:
            if self.control is None:
                raise ConfigError("control_at needs a control", field="control_at", value=self.control_at,
                                  hint="set `control` to reinit or random-prune")
            targets = {percent(self.target_sparsity(i)) for i in range(1, self.rounds + 1)}
            if missing := [x for x in self.control_at if percent(x) not in targets]:
                raise ConfigError(f"control_at {missing[0]:g} is no round's target sparsity",
                                  field="control_at", value=self.control_at,
                                  hint="targets: " + ", ".join(f"{t}%" for t in sorted(targets)))
        step = self.rewind_step
        if step.unit == "ep" and step.amount >= self.train.max_epochs:
            raise ConfigError(f"rewind step {self.rewind} is at or past the end of training "
                              f"({self.train.max_epochs} epochs)", field="rewind", value=self.rewind,
                              hint="rewind earlier, or raise `max_epochs`")

    @property
    def rewind_step(self) -> Step:
        return Step.parse(self.rewind)

    def run_name(self) -> str:
        """``<source>-<arch>-<hash12>``: the run folder's name."""
        return f"{sanitize(self.source)}-{arch_label(self.arch)}-{self.hashname()}"

    def target_sparsity(self, round_: int) -> float:
        """The nominal sparsity after ``round_`` (>= 1): the schedule's entry, else 1-(1-rate)^r."""
        if self.sparsities:
            return self.sparsities[round_ - 1]
        return 1.0 - (1.0 - self.rate) ** round_

    def rate_at(self, round_: int) -> float:
        """Fraction of the remaining prunable weights round ``round_`` (>= 1) removes."""
        if not self.sparsities:
            return self.rate
        before = self.sparsities[round_ - 2] if round_ > 1 else 0.0
        return 1.0 - (1.0 - self.sparsities[round_ - 1]) / (1.0 - before)

    def controls_at(self, round_: int) -> bool:
        """Whether round ``round_`` also trains the control (``control_at`` picks rounds)."""
        if self.control is None:
            return False
        return not self.control_at or percent(self.target_sparsity(round_)) in {
            percent(x) for x in self.control_at}

    def head_rate_for(self, rate: float | None = None) -> float | None:
        """The classifier's own rate in a round removing ``rate`` (default `rate`): explicit,
        else rate/2 layerwise, else None (pooled)."""
        if self.exclude_head:
            return None
        if self.head_rate is not None:
            return self.head_rate
        rate = self.rate if rate is None else rate
        return rate / 2 if self.scope == "layerwise" else None


def diff_fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two recipe dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return out


# --- names -----------------------------------------------------------------------------


def sanitize(text: str, limit: int = 40) -> str:
    """``text`` as a run-folder or ticket-name part (:func:`ticketzoo.names.slug`, 40 characters)."""
    return slug(text, limit)


def arch_label(arch: str) -> str:
    return sanitize(arch.replace("_", "-"))


def percent(sparsity: float) -> int:
    """Percent pruned, rounded half up (0.488 -> 49)."""
    return int(math.floor(100 * sparsity + 0.5))


def ticket_name(source: str, arch: str, sparsity: float, round_: int, taken: set[str],
                control: str | None = None) -> str:
    """``<source>-<arch>-s<NN>[-<control>]``; ``-r<round>`` added when the name is taken."""
    from ticketzoo.names import check_name

    base = f"{sanitize(source)}-{arch_label(arch)}-s{percent(sparsity):02d}"
    suffix = f"-{CONTROL_SUFFIX[control]}" if control else ""
    name = base + suffix
    if name in taken:
        name = f"{base}-r{round_}{suffix}"
    return check_name(name)
