"""Data into loaders: one entry point, :func:`open_data`, for every command.

A :class:`~ticketzoo.config.data.DataConfig` says how: :func:`read` reads what ``data``
names (a named dataset keeps its official test set, ``split``'s val fraction of its train set
becomes val; a folder is split by ``split`` and ``split_seed``) with every image decoded once
at the working size; :func:`make_sets` crops (after ``crop_pad``), flips and normalises;
:func:`loaders_for` batches, with the splits on the device as uint8 on CUDA and wherever
training images are padded. ``find`` (:func:`load_source`) works at the input size with the
dataset's usual statistics (ImageNet's for RGB folders, 0.5/0.25 for grey folders);
``finetune`` and ``compare`` (:func:`load`) at the ticket's working size (256/224 of its input
size unless ``resize``) with the ticket's statistics.
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
from ticketzoo.config.data import DataConfig


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


def read(data, config: DataConfig, *, channels: int, working: int, data_root=None, download: bool = False):
    """The dataset ``data`` names (a name, a folder or a :class:`DataSpec`), split as ``config``
    says, folder images decoded once at ``working`` px with ``channels`` channels."""
    spec = data if isinstance(data, DataSpec) else spec_of(data, data_root)
    if spec is not None and spec.kind == "named":
        return load_named_dataset(spec.source, spec.location, download=download, split_seed=config.split_seed,
                                  val_fraction=config.split[1])
    return discover_folder(spec.location if spec is not None else data, split=config.split, seed=config.split_seed,
                           strict=config.strict, channels=channels, resize=working,
                           memory_budget_bytes=config.memory_budget_bytes)


def make_sets(ds, config: DataConfig, *, input_size: int, channels: int, working: int,
              mean: tuple[float, ...], std: tuple[float, ...]) -> dict:
    """``{split: torch Dataset or None}`` of a read dataset (its decoded images reused): train
    padded by ``crop_pad``, randomly cropped to ``input_size`` and flipped with ``flip``; val
    and test centre-cropped. Sets are cached while ``memory_budget`` lasts, then streamed."""
    kw = dict(channels=channels, resize=working, train_crop=input_size, mean=mean, std=std,
              decoded=getattr(ds, "decoded", None))
    budget, sets = config.memory_budget_bytes, {}
    for split in ("train", "val", "test"):
        samples = getattr(ds, split)
        if not len(samples):
            sets[split] = None
            continue
        train = split == "train"
        sets[split] = make_dataset(samples, train=train, flip=config.flip and train, pad=config.crop_pad if train else 0,
                                   memory_budget_bytes=max(0, budget), **kw)
        if hasattr(sets[split], "images"):  # cached: it uses part of the budget
            budget -= cache_nbytes(len(samples), channels, working)
    return sets


def open_data(data, config: DataConfig, *, input_size: int, channels: int, working: int,
              mean: tuple[float, ...], std: tuple[float, ...], data_root=None,
              download: bool = False) -> tuple[Any, dict]:
    """``(dataset, {split: torch Dataset or None})``: :func:`read`, then :func:`make_sets`."""
    ds = read(data, config, channels=channels, working=working, data_root=data_root, download=download)
    return ds, make_sets(ds, config, input_size=input_size, channels=channels, working=working, mean=mean, std=std)


def loaders_for(sets: dict, *, batch_size: int, seed: int, device, workers: int | None = None,
                num_classes: int | None = None, channels_last: bool = True, on_device: bool | None = None):
    """Loaders over ``sets``. With ``on_device`` (None: on CUDA, or when training images are
    padded) the cached splits are held on the device as uint8 and cropped, flipped and
    normalised there (:func:`~ticketzoo.data.make_device_loaders`, the same transform); for
    streamed splits, and when they do not fit, DataLoaders feed the batches."""
    device = torch.device(device)
    train = sets["train"]
    wanted = (device.type == "cuda" or bool(getattr(train, "pad", 0))) if on_device is None else on_device
    if wanted and all(s is None or hasattr(s, "images") for s in sets.values()):
        try:
            return make_device_loaders(
                train, sets["val"], sets["test"], device=device, batch_size=batch_size, seed=seed,
                mean=train.mean, std=train.std, input_size=train.crop, resize=train.resize,
                channels=train.channels, pad=train.pad, crop=True, flip=train.flip, num_classes=num_classes,
                channels_last=channels_last)
        except DeviceBudgetError:
            pass  # too large for the device: the DataLoader path below
    return make_loaders(train, sets["val"], sets["test"], batch_size=batch_size, seed=seed, device=device,
                        workers=workers)


def load_source(spec: DataSpec, config: DataConfig, *, batch_size: int, seed: int, device: Any,
                workers: int | None = None, download: bool = False,
                channels_last: bool = True) -> SourceLoaders:
    """``find``'s data: :func:`open_data` at ``config``'s input size (``resize`` None: images
    straight to input-size squares), the dataset's statistics, and loaders (train shuffled
    by ``seed``). Unreadable files in an image folder are skipped and reported (``strict``:
    an error)."""
    input_size, channels = config.input_size, config.channels
    working = config.working_size(input_size, input_size)
    if spec.kind == "named":
        mean, std = NAMED_STATS[spec.source]
        mean, std = _fit(mean, channels), _fit(std, channels)
    else:
        mean, std = IMAGENET_STATS if channels == 3 else GREY_STATS
    ds, sets = open_data(spec, config, input_size=input_size, channels=channels, working=working, mean=mean,
                         std=std, download=download)
    if spec.kind == "named":
        # Exactly which data: the files read, how val was carved, which test set.
        how = (f"{ds.description}; train: the official train set minus a stratified "
               f"{config.split[1]:g} validation split ({len(ds.val)} images, seed {config.split_seed}); "
               f"test: the official {len(ds.test)}-image test set")
    else:
        how = (f"image folder '{spec.source}' ({ds.layout} layout"
               + (f", split {'/'.join(f'{x:g}' for x in config.split)} with seed {config.split_seed}"
                  if ds.layout == "split" else "") + ")"
               + (f"; {len(ds.skipped)} unreadable file(s) skipped" if ds.skipped else ""))
    if working != input_size:
        how += f"; images resized to {working} px and cropped to {input_size}"
    if config.augments:
        how += (f"; train images randomly cropped{f' ({config.crop_pad} px zero padding)' if config.crop_pad else ''}"
                + (" and flipped" if config.flip else ""))
    loaders = loaders_for(sets, batch_size=batch_size, seed=seed, device=device, workers=workers,
                          num_classes=len(ds.classes), channels_last=channels_last)
    counts = {"train": len(ds.train), "val": len(ds.val), "test": len(ds.test)}
    return SourceLoaders(loaders.train, loaders.val, loaders.test, loaders.generator,
                         tuple(ds.classes), channels, input_size, tuple(mean), tuple(std),
                         counts, how, tuple(getattr(ds, "skipped", ())))


def _fit(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Statistics for ``channels`` when a dataset is converted (grey <-> RGB)."""
    if len(values) == channels:
        return values
    if channels == 3:
        return values * 3
    return (sum(values) / len(values),)


def ticket_view(config, arch) -> dict[str, Any]:
    """What a ticket's fine-tuning reads its data at: the input size, channels and statistics of
    the ticket (``arch``), the working size of the fine-tuning ``config``."""
    return dict(input_size=arch.input_size, channels=arch.in_channels, working=config.working_size(arch.input_size),
                mean=tuple(arch.mean), std=tuple(arch.std))


def load(data, config, arch, *, data_root=None, download: bool = False):
    """``finetune``'s and ``compare``'s data: :func:`open_data` for fine-tuning ``config``
    (a FinetuneConfig) a ticket of ``arch``."""
    return open_data(data, config.data, **ticket_view(config, arch), data_root=data_root, download=download)
