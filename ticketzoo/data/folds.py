"""Stratified K-fold splits of an image folder: every image is a test image exactly once.

Per class, the images (sorted by path) are shuffled by a generator seeded with ``seed``
and the class name, as in :mod:`.splits`, and dealt to the folds in turn; the dealing
goes on from class to class where the last one stopped, so the folds' sizes differ by at
most one image overall and by at most one image per class. Fold ``f`` tests on its own
images and trains on the others, from which a stratified validation set is carved
(:func:`~ticketzoo.data.splits.split_groups`, val fraction ``val / (train + val)`` of the
``split`` fractions, seeded by ``seed`` and ``f``). ``k = 1`` is not a fold design: the
folder's own train / val / test split is used (callers keep it).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

from ticketzoo.data.splits import check_fractions, split_groups
from ticketzoo.errors import ConfigError

T = TypeVar("T")


def assign_folds(groups: Mapping[str, Sequence[T]], k: int, seed: int) -> list[list[T]]:
    """``k`` lists that partition every class of ``{class name: items}`` (module doc)."""
    folds: list[list[T]] = [[] for _ in range(k)]
    position = 0
    for name, items in groups.items():
        rng = np.random.default_rng([seed & (2**64 - 1), zlib.crc32(name.encode())])
        for i in rng.permutation(len(items)):
            folds[position % k].append(items[int(i)])
            position += 1
    return folds


def fold_split(groups: Mapping[str, Sequence[T]], k: int, fold: int, split: Sequence[float],
               seed: int) -> tuple[list[T], list[T], list[T]]:
    """``(train, val, test)`` of ``fold``: its fold tests, the others train and validate."""
    train_f, val_f, _ = check_fractions(split)
    test = assign_folds(groups, k, seed)[fold]
    held = set(map(id, test))
    rest = {name: [x for x in items if id(x) not in held] for name, items in groups.items()}
    v = val_f / (train_f + val_f)
    train, val, _ = split_groups(rest, (1 - v, v, 0.0), zlib.crc32(f"{seed}/fold{fold}".encode()))
    return train, val, test


def check_folds(k: int, groups: Mapping[str, Sequence[object]], *, layout: str) -> None:
    """Refuse a fold count the folder cannot give (ConfigError naming ``folds``)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"folds must be an integer >= 1, got {k!r}", field="folds", value=k)
    if k == 1:
        return
    if layout != "split":
        raise ConfigError(f"folds {k} needs an image folder of root/<class>/ images; this one is "
                          f"{'a named dataset with its official test set' if layout == 'named' else 'already split into train/val/test'}",
                          field="folds", value=k, hint="use `folds` 1 (its own split), or a root/<class>/ folder")
    small = {name: len(items) for name, items in groups.items() if len(items) < k}
    if small:
        name, n = min(small.items(), key=lambda kv: kv[1])
        raise ConfigError(f"folds {k} needs at least {k} images in every class; class {name!r} has {n}",
                          field="folds", value=k, hint=f"use `folds` {max(2, n)} or fewer")


def class_groups(ds) -> dict[str, list]:
    """``{class name: samples}`` of every image of a folder dataset, each class by path."""
    groups: dict[str, list] = {c: [] for c in ds.classes}
    for sample in (*ds.train, *ds.val, *ds.test):
        groups[ds.classes[sample.label]].append(sample)
    return {c: sorted(items, key=lambda s: s.path) for c, items in groups.items()}


def fold_dataset(ds, k: int, fold: int, split: Sequence[float], seed: int):
    """A copy of the :class:`~ticketzoo.data.FolderDataset` ``ds`` split as fold ``fold``
    of ``k`` (its decoded images kept: no file is read again)."""
    groups = class_groups(ds)
    check_folds(k, groups, layout=ds.layout)
    if not 0 <= fold < k:
        raise ConfigError(f"fold {fold} is not one of 0..{k - 1}", field="fold", value=fold)
    parts = fold_split(groups, k, fold, split, seed)
    order = lambda s: (s.label, s.path)  # noqa: E731 - as discover_folder sorts its splits
    return dataclasses.replace(ds, **{name: tuple(sorted(p, key=order))
                                      for name, p in zip(("train", "val", "test"), parts)})
