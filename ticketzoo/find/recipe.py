"""The IMP recipe: one frozen dataclass whose hash names a run folder, and ticket naming.

The hash covers *what* a run computes (architecture, data source and split, pruning and
training hyperparameters, seeds). It leaves out *where* it runs and reads from: the device,
DataLoader workers, the data location (``--data-root`` or the folder's path) and the card's
free-text descriptions. A run folder can therefore be resumed on another machine or with the
data moved; the data's class names and split sizes are checked separately on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from ticketzoo.errors import ConfigError
from ticketzoo.train import Step, TrainConfig

CONTROLS = ("reinit", "random-prune")
CONTROL_SUFFIX = {"reinit": "reinit", "random-prune": "randprune"}
INITS = ("xavier", "default")
SCOPES = ("global", "layerwise")
_LATER = {"augment": False}  # fields added after the first release, and their defaults
_SAFE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class FindRecipe:
    """Everything that determines an IMP run's tickets (see the module docstring)."""

    arch: str  # model registry name, e.g. "resnet50", "conv4"
    source: str  # data label: a dataset name ("cifar10") or an image folder's name
    data_kind: str = "folder"  # "named" (torchvision dataset) or "folder"
    rounds: int = 31  # pruning rounds; R rounds train R+1 times (round 0 is dense)
    rate: float = 0.2  # fraction of the remaining prunable weights removed per round
    scope: str = "global"  # "global" (one pool) or "layerwise"
    rewind: str = "2ep"  # θk: "0" is θ0 (original LTH), "2ep"/"500it" late resetting
    head_rate: float | None = None  # None: rate/2 in layerwise scope, pooled in global
    exclude_head: bool = False  # never prune the classifier's weight
    exclude_first_conv: bool = False  # never prune the first conv's weight
    init: str = "xavier"  # "xavier" (Sabatelli et al. Table 4) or "default" (framework)
    seed: int = 0  # model init and training seed
    control: str | None = None  # None, "reinit" or "random-prune": also train that control
    data_seed: int = 0  # seed of the train/val(/test) split
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # folders: train/val/test fractions
    val_fraction: float = 0.1  # named datasets: share of the official train set for val
    input_size: int = 32  # side of the square images the network sees
    channels: int = 3  # image channels the network sees
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 0.25}
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: bool = False  # random crop (4 px zero padding) + horizontal flip of train images

    def __post_init__(self) -> None:
        for name in ("rate", "val_fraction"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        if isinstance(self.head_rate, int) and not isinstance(self.head_rate, bool):
            object.__setattr__(self, "head_rate", float(self.head_rate))
        object.__setattr__(self, "split", tuple(float(x) for x in self.split))
        object.__setattr__(self, "arch_kwargs", dict(self.arch_kwargs))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first out-of-range field."""
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"--rounds must be a positive integer, got {self.rounds!r}",
                              hint="IMP needs at least one pruning round")
        if not isinstance(self.rate, float) or not 0.0 < self.rate < 1.0:
            raise ConfigError(f"--rate must lie strictly between 0 and 1, got {self.rate!r}",
                              hint="0.2 prunes 20% of the remaining weights per round")
        if self.head_rate is not None and not 0.0 <= self.head_rate < 1.0:
            raise ConfigError(f"--head-rate must lie in [0, 1), got {self.head_rate!r}")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown scope {self.scope!r}", hint=f"use {' or '.join(SCOPES)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}", hint=f"use {' or '.join(INITS)}")
        if self.control is not None and self.control not in CONTROLS:
            raise ConfigError(f"unknown control {self.control!r}", hint=f"use {', '.join(CONTROLS)}")
        if self.data_kind not in ("named", "folder"):
            raise ConfigError(f"data_kind must be 'named' or 'folder', got {self.data_kind!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.input_size, int) or self.input_size < 1:
            raise ConfigError(f"--input-size must be a positive integer, got {self.input_size!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {self.channels!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must lie in [0, 1), got {self.val_fraction}")
        step = self.rewind_step  # parses, raising ConfigError on a bad value
        if step.unit == "ep" and step.amount >= self.train.max_epochs:
            raise ConfigError(f"--rewind {self.rewind} is at or past the end of training "
                              f"({self.train.max_epochs} epochs)", hint="rewind earlier or train longer")
        if not isinstance(self.train, TrainConfig):
            raise ConfigError("train must be a TrainConfig")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false, got {self.augment!r}")

    @property
    def rewind_step(self) -> Step:
        return Step.parse(self.rewind)

    # --- serialisation and hash --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; fields added later appear only when not at their default, so
        the hashes of earlier recipes (and their run folders) stay as they were."""
        data = asdict(self)
        data["split"] = list(self.split)
        data["train"] = self.train.to_dict()
        data["rewind"] = str(self.rewind_step)  # "0" and "0it" are the same recipe
        for name, default in _LATER.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FindRecipe:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown recipe field(s): {', '.join(unknown)}")
        values = dict(data)
        values["train"] = TrainConfig.from_dict(values.get("train", {}))
        if "split" in values:
            values["split"] = tuple(values["split"])
        return cls(**values)

    def hashed_dict(self) -> dict[str, Any]:
        """The fields the hash covers: all but the training device."""
        data = self.to_dict()
        data["train"] = {k: v for k, v in data["train"].items() if k != "device"}
        return data

    def hash(self) -> str:
        canonical = json.dumps(self.hashed_dict(), sort_keys=True, separators=(",", ":"),
                               allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def hashname(self) -> str:
        return self.hash()[:12]

    def run_name(self) -> str:
        """``<source>-<arch>-<hash12>``: the run folder's name."""
        return f"{sanitize(self.source)}-{arch_label(self.arch)}-{self.hashname()}"

    def head_rate_for(self) -> float | None:
        """The classifier's own rate: explicit, else rate/2 layerwise, else None (pooled)."""
        if self.exclude_head:
            return None
        if self.head_rate is not None:
            return self.head_rate
        return self.rate / 2 if self.scope == "layerwise" else None


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
    """Lower-case ``text`` reduced to ``[a-z0-9._-]``, starting with a letter or digit."""
    out = _SAFE.sub("-", str(text).lower()).strip("-._")
    out = re.sub(r"\.{2,}", ".", out)[:limit].rstrip("-._")
    return out or "data"


def arch_label(arch: str) -> str:
    return sanitize(arch.replace("_", "-"))


def percent(sparsity: float) -> int:
    """Percent pruned, rounded half up (0.488 -> 49)."""
    return int(math.floor(100 * sparsity + 0.5))


def ticket_name(source: str, arch: str, sparsity: float, round_: int, taken: set[str],
                control: str | None = None) -> str:
    """``<source>-<arch>-s<NN>[-<control>]``; ``-r<round>`` added when the name is taken."""
    from ticketzoo.registry.refs import check_name

    base = f"{sanitize(source)}-{arch_label(arch)}-s{percent(sparsity):02d}"
    suffix = f"-{CONTROL_SUFFIX[control]}" if control else ""
    name = base + suffix
    if name in taken:
        name = f"{base}-r{round_}{suffix}"
    return check_name(name)
