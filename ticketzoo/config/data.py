"""The data config: which images a run reads, how they are split, how they become the input.

One :class:`DataConfig` is embedded in ``find``'s recipe (:class:`~ticketzoo.config.find.FindRecipe`)
and in ``finetune``'s and ``compare``'s config (:class:`~ticketzoo.config.finetune.FinetuneConfig`),
and :func:`ticketzoo.data.loading.open_data` reads it for all three. Its preprocessing is the
card's (:class:`ticketzoo.card.Preprocess`): images are resized to a ``resize`` square (the
working size), training images zero-padded by ``crop_pad``, randomly cropped to ``input_size``
and, with ``flip``, flipped; evaluation takes the central crop. Torch-free, like every config.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ticketzoo.config import UNHASHED, Config, option
from ticketzoo.errors import ConfigError

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of decoded uint8 pixels kept in memory
CHANNELS = (1, 3)


def default_working_size(input_size: int) -> int:
    """``finetune``'s working size when ``--resize`` is not given: 256/224 of the input size
    (as for ImageNet); read by :meth:`DataConfig.working_size` and by cards that predate a
    declared preprocessing (``ticketzoo.card.preprocess_of``)."""
    return round(input_size * 256 / 224)


@dataclass(frozen=True)
class DataConfig(Config):
    """How a run's images are split and preprocessed (see the module docstring).

    ``input_size``/``channels`` ``None``: the command decides (``find``: the dataset's, 32 px
    and RGB for folders; ``finetune``: the ticket's). ``resize`` ``None``: the command's working
    size (``find``: the input size; ``finetune``: 256/224 of it). Named datasets keep their
    official test set; ``split``'s val fraction of their train set becomes val."""

    config_label = "data option"

    split: tuple[float, float, float] = option(
        (0.8, 0.1, 0.1), metavar="T,V,T",
        help="Train,val,test fractions of an image folder; named datasets: V of the official train set is val.")
    split_seed: int = option(0, help="Seed of the train/val/test split (and of --folds), independent of --seed: "
                                     "every seed trains and tests on the same images.")
    input_size: int | None = option(None, help="Image side the network sees.")
    channels: int | None = option(None, choices=("1", "3"), help="Image channels the network sees.")
    resize: int | None = option(None, help="Working size: images are resized to this square once and cached.")
    crop_pad: int = option(0, help="Training images are zero-padded by this many pixels on each side before "
                                   "the random crop (4: the CIFAR standard).")
    flip: bool = option(False, help="Flip training images horizontally with probability 1/2.")
    strict: bool = option(False, hashed=False, help="Fail on an unreadable image instead of skipping and counting it.")
    # *How much* is held in memory, not what is computed: out of the hash.
    memory_budget: float = option(2048.0, metavar="MB", hashed=False,
                                  help="Decoded-image cache in MiB; a larger folder is streamed from disk.")

    def __post_init__(self) -> None:
        if isinstance(self.channels, str) and self.channels.isdigit():  # "3", as a command line gives it
            object.__setattr__(self, "channels", int(self.channels))
        self.check_types()
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming (``field``) the first wrong field."""
        def bad(name: str, rule: str, hint: str | None = None) -> ConfigError:
            value = getattr(self, name)
            return ConfigError(f"{name} {rule}, got {value!r}", field=name, value=value, hint=hint)

        if not all(math.isfinite(x) and x >= 0 for x in self.split) or self.split[0] <= 0 \
                or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"invalid split {self.split!r}: need train,val,test fractions >= 0 "
                              "with train > 0, summing to 1", field="split", value=self.split,
                              hint="for example 0.8,0.1,0.1")
        if self.split_seed < 0:
            raise bad("split_seed", "must be >= 0")
        for name in ("input_size", "resize"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "must be a positive integer")
        if self.channels is not None and self.channels not in CHANNELS:
            raise bad("channels", "must be 1 or 3")
        if self.crop_pad < 0:
            raise bad("crop_pad", "must be >= 0")
        if not (math.isfinite(self.memory_budget) and self.memory_budget >= 0):
            raise bad("memory_budget", "must be a number of MiB >= 0")

    @property
    def memory_budget_bytes(self) -> int:
        return int(self.memory_budget * 2**20)

    def working_size(self, input_size: int, default: int | None = None) -> int:
        """Side of the cached squares: ``resize``, else ``default`` (the command's rule), else
        256/224 of ``input_size``; never below ``input_size``."""
        size = self.resize if self.resize is not None else default if default is not None \
            else default_working_size(input_size)
        if size < input_size:
            raise ConfigError(f"resize {size} is smaller than the input size {input_size}",
                              field="resize", value=size, hint=f"use {input_size} or more")
        return size

    @property
    def augments(self) -> bool:
        """Whether training images are padded or flipped (beyond the random crop)."""
        return self.crop_pad > 0 or self.flip


#: The field names, for callers that sort keyword arguments into a DataConfig.
DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig))
