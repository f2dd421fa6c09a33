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

from ticketzoo.config import Config, option
from ticketzoo.config.data import DataConfig
from ticketzoo.errors import ConfigError
from ticketzoo.names import slug
from ticketzoo.config.step import Step
from ticketzoo.config.train import TrainConfig

CONTROLS = ("reinit", "random-prune")
_PLAIN_DATA = DataConfig()
_DEFAULT_SPLIT = _PLAIN_DATA.split
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
    weight_init: str = option("xavier", choices=("xavier", "default"),
                              help="How the dense network's weights are drawn (xavier: Sabatelli et al. Table 4).")
    seed: int = 0  # model init and training seed
    control: str | None = None  # None, "reinit" or "random-prune": also train that control
    # split, split seed, input size and channels (both set), preprocessing, memory
    data: DataConfig = field(default_factory=lambda: DataConfig(input_size=32, channels=3))
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 0.25}
    train: TrainConfig = field(default_factory=TrainConfig)
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
        for name, allowed in (("scope", SCOPES), ("weight_init", INITS), ("data_kind", ("named", "folder"))):
            if getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {', '.join(allowed)}")
        if self.control is not None and self.control not in CONTROLS:
            raise bad("control", f"must be one of {', '.join(CONTROLS)}")
        if self.seed < 0:
            raise bad("seed", "must be an integer >= 0")
        if self.data.input_size is None or self.data.channels is None:
            raise ConfigError("a find recipe's data names its input size and channels", field="data",
                              value=self.data.to_dict(), hint="set data.input_size and data.channels")
        self.data.working_size(self.data.input_size, self.data.input_size)  # resize below the input: refused
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, prefix: str = ""):
        """:meth:`Config.from_dict`, reading too the recipes written until 2026-12 (run folders'
        ``recipe.json``, schema-2 cards): :func:`upgrade_legacy`."""
        return super().from_dict(upgrade_legacy(data) if isinstance(data, Mapping) else data, prefix=prefix)

    def hashed_dict(self) -> dict[str, Any]:
        """The hash's layout is the first release's (data fields at the top level, ``init``), so
        every run folder named before :class:`DataConfig` existed keeps its name: a named
        dataset's ``split`` is the default there (only its val share, ``val_fraction``, is
        read), a folder's ``val_fraction`` the default (its ``split`` is read)."""
        out = super().hashed_dict()
        data = out.pop("data")
        out["init"] = out.pop("weight_init")
        split = tuple(data.pop("split"))
        named = self.data_kind == "named"
        out.update(data_seed=data.pop("split_seed"), input_size=data.pop("input_size"),
                   channels=data.pop("channels"), split=list(_DEFAULT_SPLIT if named else split),
                   val_fraction=split[1] if named else _DEFAULT_SPLIT[1])
        if (data["crop_pad"], data["flip"]) == (4, True):  # the first release's `augment`
            out["augment"] = True
            data.update(crop_pad=0, flip=False)
        if extra := {k: v for k, v in data.items() if v != getattr(_PLAIN_DATA, k)}:
            out["data"] = extra  # what the first release could not express
        return out

    @property
    def input_size(self) -> int:
        return self.data.input_size

    @property
    def channels(self) -> int:
        return self.data.channels

    @property
    def working_size(self) -> int:
        """Side of the squares images are cached at: ``data.resize``, else the input size."""
        return self.data.working_size(self.input_size, self.input_size)

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


LEGACY_DATA = ("data_seed", "split", "val_fraction", "input_size", "channels", "augment")


def val_split(fraction: float) -> tuple[float, float, float]:
    """The split of a named dataset whose train set gives ``fraction`` to val (its ``val_fraction``
    until 2026-12): only val's share is read, the test set is the official one."""
    return (1.0 - fraction, fraction, 0.0)


def upgrade_legacy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe dict of the first releases in today's form: its data fields moved into ``data``,
    ``init`` named ``weight_init``."""
    if not any(k in data for k in (*LEGACY_DATA, "init")):
        return dict(data)
    out = {k: v for k, v in data.items() if k not in LEGACY_DATA and k != "init"}
    if "init" in data:  # `weight_init` until 2026-12, as finetune names it
        out["weight_init"] = data["init"]
    if not any(k in data for k in LEGACY_DATA):
        return out
    old = {k: data[k] for k in LEGACY_DATA if k in data}
    new: dict[str, Any] = {"input_size": old.get("input_size", 32), "channels": old.get("channels", 3)}
    if "data_seed" in old:
        new["split_seed"] = old["data_seed"]
    if out.get("data_kind") == "named" and isinstance(old.get("val_fraction"), (int, float)):
        new["split"] = val_split(old["val_fraction"])
    elif "split" in old:
        new["split"] = old["split"]
    if old.get("augment"):
        new.update(crop_pad=4, flip=True)
    out["data"] = {**new, **(data.get("data") or {})}
    return out


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
