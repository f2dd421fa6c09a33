"""Turn ``data`` into loaders plus what the card records (channels, size, classes).

``data`` is a dataset name (``cifar10``, ``cifar100``, ``fashionmnist``, ``mnist``,
``svhn``; read from ``data_root`` as :mod:`ticketzoo.data.datasets` says) or an image
folder (``train/val/test`` subfolders, or one folder split by a seed). Images become
``input_size`` squares once (no crop or flip augmentation, as in Sabatelli et al.) and are
normalised with the dataset's usual statistics (ImageNet's for RGB folders, 0.5/0.25 for
grey folders).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ticketzoo.errors import DataError

# Per-channel statistics used by the LTH / CIFAR literature for the named datasets.
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_GREY = ((0.5,), (0.25,))


@dataclass(frozen=True)
class DataSpec:
    """What ``data`` names, resolved before any image is read (cheap)."""

    kind: str  # "named" or "folder"
    source: str  # dataset name, or the folder's name (sanitised later for ticket names)
    location: Path  # data root (named) or the folder itself
    native_channels: int | None  # named datasets: 1 or 3; folders: None (chosen by the user)
    native_size: int | None  # named datasets: 28 or 32


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


def resolve_data(data: str, data_root: str | Path | None = None) -> DataSpec:
    """Classify ``data``: a dataset name or an image folder; unknown names list the valid ones."""
    from ticketzoo.data import NAMED_DATASETS

    key = data.lower().replace("-", "").replace("_", "")
    path = Path(data).expanduser()
    looks_like_path = "/" in data or data.startswith(".")
    if key in NAMED_DATASETS and not looks_like_path:
        grey = key in ("mnist", "fashionmnist")
        root = Path(data_root).expanduser() if data_root is not None else Path("data")
        return DataSpec("named", key, root, 1 if grey else 3, 28 if grey else 32)
    if path.is_dir():
        return DataSpec("folder", path.resolve().name, path.resolve(), None, None)
    raise DataError(
        f"unknown dataset {data!r}: not a dataset name and no such folder", field="data", value=data,
        hint=f"use one of {', '.join(NAMED_DATASETS)} or the path of an image folder",
    )


def data_label(data: str, data_root: str | Path | None = None) -> str:
    """A short label for ``data`` (a fine-tuned ticket's default name uses it): the dataset's
    name, the folder's name, or the last part of a path that is neither (yet)."""
    try:
        return resolve_data(data, data_root).source
    except DataError:
        return Path(data).resolve().name


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
    from ticketzoo.data import discover_folder, load_named_dataset

    if spec.kind == "named":
        ds = load_named_dataset(spec.source, spec.location, download=download,
                                split_seed=data_seed, val_fraction=val_fraction)
        mean, std = _STATS[spec.source]
        mean, std = _fit(mean, channels), _fit(std, channels)
        # Exactly which data: the files read, how val was carved, which test set.
        how = (f"{ds.description}; train: the official train set minus a stratified "
               f"{val_fraction:g} validation split ({len(ds.val)} images, seed {data_seed}); "
               f"test: the official {len(ds.test)}-image test set")
        decoded = None
    else:
        ds = discover_folder(spec.location, split=split, seed=data_seed, channels=channels,
                             resize=input_size, strict=strict)
        mean, std = _IMAGENET if channels == 3 else _GREY
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
    from ticketzoo.data import DeviceBudgetError, make_device_loaders

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
    from ticketzoo.data import make_dataset, make_loaders

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
