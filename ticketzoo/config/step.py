"""A position or duration in training, written ``2ep`` (epochs) or ``500it`` (iterations).

IMP rewinds to a *step* (θk at ``2ep`` or ``500it``), and training can *start* at one.
Epochs only become iterations once the loader's length is known, so a :class:`Step`
keeps its unit and converts late with :meth:`Step.iterations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

from ticketzoo.errors import ConfigError

Unit = Literal["ep", "it"]

_FORMS = "'<N>ep' (epochs), '<N>it' (iterations) or '0', e.g. '2ep' or '500it'"
_PATTERN = re.compile(r"(\d+)(ep|it)?")


@dataclass(frozen=True)
class Step:
    """``amount`` epochs (``unit="ep"``) or iterations (``unit="it"``); ``str()`` round-trips."""

    amount: int
    unit: Unit = "it"

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ConfigError(f"step amount must be a non-negative integer, got {self.amount!r}")
        if self.unit not in ("ep", "it"):
            raise ConfigError(f"step unit must be 'ep' or 'it', got {self.unit!r}")

    @classmethod
    def parse(cls, text: str) -> Step:
        """Parse ``"2ep"``, ``"500it"``, ``"0"``, ``"0ep"`` or ``"0it"`` (bare numbers: 0 only)."""
        if not isinstance(text, str):
            raise ConfigError(f"a step must be a string such as '2ep', got {type(text).__name__}")
        match = _PATTERN.fullmatch(text.strip().lower())
        if match is None:
            raise ConfigError(f"cannot parse step {text!r}", hint=f"write {_FORMS}")
        amount, unit = int(match.group(1)), match.group(2)
        if unit is None:
            if amount != 0:
                raise ConfigError(
                    f"step {text!r} has no unit", hint=f"write {amount}ep or {amount}it"
                )
            unit = "it"
        return cls(amount, unit)

    @classmethod
    def coerce(cls, value: StepLike) -> Step:
        """A :class:`Step` as is, a string through :meth:`parse`, an ``int`` as iterations."""
        if isinstance(value, Step):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, "it")
        return cls.parse(value)

    @classmethod
    def epochs(cls, n: int) -> Step:
        return cls(n, "ep")

    @classmethod
    def its(cls, n: int) -> Step:
        return cls(n, "it")

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def iterations(self, iters_per_epoch: int) -> int:
        """The number of optimizer steps this step stands for with ``iters_per_epoch`` batches."""
        if (
            isinstance(iters_per_epoch, bool)
            or not isinstance(iters_per_epoch, int)
            or iters_per_epoch < 1
        ):
            raise ConfigError(f"iterations per epoch must be >= 1, got {iters_per_epoch!r}")
        return self.amount * iters_per_epoch if self.unit == "ep" else self.amount

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


StepLike = Union[Step, str, int]
