"""What ``--data`` names, and how a loaded dataset is labelled, described and fingerprinted.

``data`` is a dataset name (``cifar10``, ``cifar100``, ``fashionmnist``, ``mnist``,
``svhn``; read from ``data_root`` as :mod:`ticketzoo.data.datasets` says) or an image
folder (``train/val/test`` subfolders, or one folder split by a seed); write ``./NAME`` for
a folder named like a dataset. :mod:`ticketzoo.data.loading` turns it into loaders.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.errors import DataError

# Per-channel statistics used by the LTH / CIFAR literature for the named datasets.
NAMED_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
GREY_STATS = ((0.5,), (0.25,))


@dataclass(frozen=True)
class DataSpec:
    """What ``data`` names, resolved before any image is read (cheap)."""

    kind: str  # "named" or "folder"
    source: str  # dataset name, or the folder's name (sanitised later for ticket names)
    location: Path  # data root (named) or the folder itself
    native_channels: int | None  # named datasets: 1 or 3; folders: None (chosen by the user)
    native_size: int | None  # named datasets: 28 or 32


def resolve_data(data: str, data_root: str | Path | None = None) -> DataSpec:
    """Classify ``data``: a dataset name or an image folder; unknown names list the valid ones."""
    from ticketzoo.data.datasets import NAMED_DATASETS

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


def spec_of(data, data_root=None) -> DataSpec | None:
    """``data``'s :class:`DataSpec`; None for a Path or a path that is neither (yet)."""
    if isinstance(data, Path):  # a Path is always a folder
        return None
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


def test_sha256(ds) -> str | None:
    """Which images a split tests on, as one sha256: of the sorted relative paths of the test
    images (a folder), or of the test images and labels (a named dataset); None without a test
    split. Equal digests: the same test images, whatever seed trained on them."""
    if not len(ds.test):
        return None
    if is_named(ds):
        digest = hashlib.sha256(ds.test.labels.tobytes())
        digest.update(hashlib.sha256(ds.test.images.tobytes()).digest())
        return digest.hexdigest()
    paths = sorted(Path(os.path.relpath(s.path, ds.root)).as_posix() for s in ds.test)
    return hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()


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
