"""Data into loaders, one module for every command.

``find`` (:func:`load_source`): images become ``input_size`` squares once (no crop or flip
augmentation unless ``augment``, as in Sabatelli et al.) and are normalised with the
dataset's usual statistics (ImageNet's for RGB folders, 0.5/0.25 for grey folders); on CUDA,
and wherever ``augment`` is on, the splits live on the device as uint8.
``finetune`` and ``compare`` (:func:`load`, :func:`make_sets`): images are decoded once at
the fine-tuning working size and randomly cropped to the ticket's input size, normalised
with the ticket's statistics; a named dataset keeps its official test set and ``split``'s
val fraction of its official train set becomes val.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ticketzoo.data.cache import cache_nbytes, make_dataset
from ticketzoo.data.datasets import load_named_dataset
from ticketzoo.data.device_loader import DeviceBudgetError, make_device_loaders
from ticketzoo.data.folder import discover_folder
from ticketzoo.data.loaders import make_loaders
from ticketzoo.data.source import GREY_STATS, IMAGENET_STATS, NAMED_STATS, DataSpec, spec_of

@dataclass(frozen=True, eq=False)
class SourceLoaders:
    """Loaders and what the card needs to know about the data."""

    train: Any
    val: Any
    test: Any
    generator: Any  # the torch.Generator that shuffles train (reset each round)
    classes: tuple[str, ...]
    channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    counts: dict[str, int]  # images per split
    description: str  # how the splits were made (goes to the card)
    skipped: tuple = ()  # unreadable files left out of an image folder (SkippedFile)


def load_source(spec: DataSpec, *, input_size: int, channels: int, batch_size: int, seed: int,
                data_seed: int, split: tuple[float, float, float], val_fraction: float,
                device: Any, workers: int | None = None, download: bool = False,
                strict: bool = False, augment: bool = False,
                channels_last: bool = True) -> SourceLoaders:
    """Read the data and build train / val / test loaders (train shuffled by ``seed``).

    On CUDA, and wherever ``augment`` is on, the splits live on the device as uint8 and are
    cropped, flipped and normalised there (:mod:`ticketzoo.data.device_loader`); otherwise
    a DataLoader feeds the decoded images. Unreadable files in an image folder are skipped
    and reported (``strict``: an error)."""
    if spec.kind == "named":
        ds = load_named_dataset(spec.source, spec.location, download=download,
                                split_seed=data_seed, val_fraction=val_fraction)
        mean, std = NAMED_STATS[spec.source]
        mean, std = _fit(mean, channels), _fit(std, channels)
        # Exactly which data: the files read, how val was carved, which test set.
        how = (f"{ds.description}; train: the official train set minus a stratified "
               f"{val_fraction:g} validation split ({len(ds.val)} images, seed {data_seed}); "
               f"test: the official {len(ds.test)}-image test set")
        decoded = None
    else:
        ds = discover_folder(spec.location, split=split, seed=data_seed, channels=channels,
                             resize=input_size, strict=strict)
        mean, std = IMAGENET_STATS if channels == 3 else GREY_STATS
        how = (f"image folder '{spec.source}' ({ds.layout} layout"
               + (f", split {'/'.join(f'{x:g}' for x in split)} with seed {data_seed}"
                  if ds.layout == "split" else "") + ")"
               + (f"; {len(ds.skipped)} unreadable file(s) skipped" if ds.skipped else ""))
        decoded = ds.decoded
    if augment:
        how += "; train images randomly cropped (4 px zero padding) and flipped"
    kw = dict(channels=channels, input_size=input_size, mean=mean, std=std, decoded=decoded,
              batch_size=batch_size, seed=seed, device=device)
    if augment or torch.device(device).type == "cuda":
        loaders = _device_loaders(ds, augment=augment, channels_last=channels_last,
                                  required=augment, **kw)
    else:
        loaders = None
    if loaders is None:
        loaders = _host_loaders(ds, workers=workers, **kw)
    counts = {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)}
    return SourceLoaders(loaders.train, loaders.val, loaders.test, loaders.generator,
                         tuple(ds.classes), channels, input_size, tuple(mean), tuple(std),
                         counts, how, tuple(getattr(ds, "skipped", ())))


def _device_loaders(ds, *, augment: bool, channels_last: bool, required: bool, **kw):
    """Loaders over the splits held on the device; None when they do not fit (unless required)."""
    try:
        return make_device_loaders(
            ds.train, ds.val if len(ds.val) else None, ds.test if len(ds.test) else None,
            pad=4 if augment else 0, crop=augment, flip=augment, channels_last=channels_last,
            num_classes=len(ds.classes), **kw)
    except DeviceBudgetError:
        if required:
            raise
        return None


def _host_loaders(ds, *, workers, channels, input_size, mean, std, decoded, batch_size, seed, device):
    """DataLoaders over decoded images (the images are already ``input_size`` squares)."""
    kw = dict(channels=channels, resize=input_size, train_crop=input_size, mean=mean, std=std,
              decoded=decoded)
    train = make_dataset(ds.train, train=True, **kw)
    val = make_dataset(ds.val, train=False, **kw) if len(ds.val) else None
    test = make_dataset(ds.test, train=False, **kw) if len(ds.test) else None
    return make_loaders(train, val, test, batch_size=batch_size, seed=seed, device=device,
                        workers=workers)


def _fit(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Statistics for ``channels`` when a dataset is converted (grey <-> RGB)."""
    if len(values) == channels:
        return values
    if channels == 3:
        return values * 3
    return (sum(values) / len(values),)


def load(data, config, arch, *, data_root=None, download: bool = False):
    """``(dataset, {split: torch Dataset or None})``, decoded once at working size."""
    resize = config.working_size(arch.input_size)
    spec = spec_of(data, data_root)
    if spec is not None and spec.kind == "named":
        ds = load_named_dataset(spec.source, spec.location, download=download, split_seed=config.split_seed,
                                val_fraction=config.split[1])
    else:
        folder = spec.location if spec is not None else data
        ds = discover_folder(folder, split=config.split, seed=config.split_seed, strict=config.strict,
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


