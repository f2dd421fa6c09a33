"""Stratified train / val / test splits, deterministic in a seed.

A class of ``n`` items is divided independently of every other class: its items (in the
order given; callers sort them) are shuffled by a generator seeded with ``seed`` and the
class name, val and test take ``round(n * fraction)`` items each (raised to 1 when
``n >= 3`` and the fraction is positive), and train always keeps at least one item.
Seeding by name means adding a class leaves the other classes' splits unchanged.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

from ticketzoo.errors import DataError

T = TypeVar("T")


def check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``(train, val, test)`` fractions: three numbers >= 0, train > 0, sum 1."""
    try:
        values = tuple(float(x) for x in split)
    except (TypeError, ValueError):
        values = ()
    ok = len(values) == 3 and all(math.isfinite(v) and v >= 0 for v in values)
    if not ok or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
        raise DataError(
            f"invalid split fractions {split!r}: need three numbers >= 0 (train, val, test), "
            "train > 0, summing to 1",
            hint="for example 0.8,0.1,0.1",
        )
    return values  # type: ignore[return-value]


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes ``(train, val, test)`` of one class of ``n`` items (rules in the module doc)."""
    _, f_val, f_test = fractions
    n_val, n_test = math.floor(n * f_val + 0.5), math.floor(n * f_test + 0.5)
    if n >= 3:
        n_val = max(n_val, 1) if f_val > 0 else 0
        n_test = max(n_test, 1) if f_test > 0 else 0
    while n - n_val - n_test < 1 and n_val + n_test > 0:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def split_groups(
    groups: Mapping[str, Sequence[T]], fractions: Sequence[float], seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Stratified split of ``{class name: items}`` into train / val / test lists."""
    parts: tuple[list[T], list[T], list[T]] = ([], [], [])
    for name, items in groups.items():
        # Seeded by class name, not position, so one class's split never depends on others.
        rng = np.random.default_rng([seed & (2**64 - 1), zlib.crc32(name.encode())])
        order = rng.permutation(len(items))
        sizes = split_counts(len(items), fractions)
        start = 0
        for part, size in zip(parts, sizes):
            part.extend(items[int(i)] for i in order[start : start + size])
            start += size
    return parts
