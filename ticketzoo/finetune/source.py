"""``--data`` for fine-tuning: an image folder or a named dataset, as train/val/test sets.

A name (``cifar10``, ``fashionmnist``, ...) is told from a folder as ``find`` does
(:func:`ticketzoo.find.sources.resolve_data`: write ``./NAME`` for a folder named like a
dataset). A named dataset keeps its official test set; ``split``'s val fraction of its
official train set becomes val. Images are normalised with the ticket's statistics.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ticketzoo.data import discover_folder, load_named_dataset, make_dataset
from ticketzoo.data.cache import cache_nbytes
from ticketzoo.errors import DataError


def load(data, config, arch, *, data_root=None, download: bool = False):
    """``(dataset, {split: torch Dataset or None})``, decoded once at working size."""
    resize = config.working_size(arch.input_size)
    spec = _spec(data, data_root)
    if spec is not None and spec.kind == "named":
        ds = load_named_dataset(spec.source, spec.location, download=download, split_seed=config.seed,
                                val_fraction=config.split[1])
    else:
        folder = spec.location if spec is not None else data
        ds = discover_folder(folder, split=config.split, seed=config.seed, strict=config.strict,
                             channels=arch.in_channels, resize=resize,
                             memory_budget_bytes=config.memory_budget_bytes)
    return ds, make_sets(ds, config, arch)


def make_sets(ds, config, arch) -> dict:
    """``{split: torch Dataset or None}`` of a loaded dataset (the decoded images reused)."""
    resize = config.working_size(arch.input_size)
    kw = dict(channels=arch.in_channels, resize=resize, train_crop=arch.input_size,
              mean=arch.mean, std=arch.std, decoded=ds.decoded)
    budget, sets = config.memory_budget_bytes, {}
    for split in ("train", "val", "test"):
        samples = getattr(ds, split)
        if not len(samples):
            sets[split] = None
            continue
        sets[split] = make_dataset(samples, train=split == "train", augment=config.augment,
                                   memory_budget_bytes=max(0, budget), **kw)
        if hasattr(sets[split], "images"):  # cached: it uses part of the budget
            budget -= cache_nbytes(len(samples), arch.in_channels, resize)
    return sets


def _spec(data, data_root):
    if isinstance(data, Path):  # a Path is always a folder
        return None
    from ticketzoo.find.sources import resolve_data

    try:
        return resolve_data(str(data), data_root)
    except DataError:  # neither: discover_folder says precisely what is wrong with the path
        return None


def is_named(ds) -> bool:
    return ds.layout == "named"


def label(ds) -> str:
    """The dataset's name, or the folder's."""
    return ds.name if is_named(ds) else ds.root.resolve().name


def description(ds) -> str:
    if is_named(ds):
        what = getattr(ds, "description", None) or f"{ds.name} (torchvision)"
        return f"{what}; val: {len(ds.val)} images split off the official train set; official test set"
    return f"image folder {label(ds)}/ ({ds.layout} layout)"


def fingerprint(ds) -> object:
    """What identifies the images and their split, for the resume check."""
    if is_named(ds):
        digest = hashlib.sha256()
        for split in ("train", "val", "test"):
            samples = getattr(ds, split)
            digest.update(samples.labels.tobytes())
            digest.update(hashlib.sha256(samples.images.tobytes()).digest())
        return {"named": ds.name, "sha256": digest.hexdigest()}
    return [[os.path.relpath(s.path, ds.root), s.label]
            for split in (ds.train, ds.val, ds.test) for s in split]
