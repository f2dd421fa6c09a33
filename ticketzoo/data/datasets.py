"""Standard datasets by name, read through torchvision's own classes.

``cifar10``, ``cifar100``, ``fashionmnist``, ``mnist`` and ``svhn`` are small enough to
live in memory: torchvision exposes their pixels as uint8 arrays, which are wrapped in
:class:`~ticketzoo.data.cache.ArraySamples` so the datasets in :mod:`.cache` use them
without PIL. Validation is split off the official train set (stratified, seeded); test
is the official test set. CIFAR files are pickles that torchvision itself unpickles, so
only point ``root`` at files you trust (as with torchvision).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ticketzoo.data.cache import ArraySamples
from ticketzoo.data.folder import SPLITS, SkippedFile
from ticketzoo.data.splits import split_groups
from ticketzoo.errors import DataError


@dataclass(frozen=True)
class _Spec:
    cls: str  # class name in torchvision.datasets
    expects: str  # what must be inside root, for error messages
    channels: int
    folder: str = ""  # the subfolder torchvision reads, when there is one


_SPECS = {
    "cifar10": _Spec("CIFAR10", "the folder 'cifar-10-batches-py'", 3, "cifar-10-batches-py"),
    "cifar100": _Spec("CIFAR100", "the folder 'cifar-100-python'", 3, "cifar-100-python"),
    "fashionmnist": _Spec("FashionMNIST", "'FashionMNIST/raw/' (idx-ubyte files)", 1,
                          "FashionMNIST"),
    "mnist": _Spec("MNIST", "'MNIST/raw/' (idx-ubyte files)", 1, "MNIST"),
    "svhn": _Spec("SVHN", "'train_32x32.mat' and 'test_32x32.mat'", 3),
}
NAMED_DATASETS = tuple(_SPECS)


@dataclass(frozen=True, eq=False)
class NamedDataset:
    """A standard dataset in memory, shaped like a :class:`FolderDataset`.

    It has the same ``root``, ``classes``, ``train``/``val``/``test``, ``skipped``,
    ``layout``, ``channels``, ``decoded`` and ``counts()``, so callers treat both alike.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    train: ArraySamples
    val: ArraySamples
    test: ArraySamples
    channels: int  # 1 for MNIST and FashionMNIST, else 3
    size: int  # native side in pixels (28 or 32)
    skipped: ClassVar[tuple[SkippedFile, ...]] = ()
    layout: ClassVar[str] = "named"
    decoded: ClassVar[None] = None

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: number of images}}`` for train, val and test."""
        out = {}
        for split in SPLITS:
            labels = getattr(self, split).labels
            per = np.bincount(labels, minlength=len(self.classes))
            out[split] = {c: int(n) for c, n in zip(self.classes, per)}
        return out


def load_named_dataset(name: str, root: str | Path, *, download: bool = False,
                       split_seed: int = 0, val_fraction: float = 0.1) -> NamedDataset:
    """Load ``name`` from ``root`` (``download=True`` fetches it there first)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _SPECS:
        raise DataError(f"unknown dataset {name!r}",
                        hint=f"valid names: {', '.join(NAMED_DATASETS)}")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    spec, root = _SPECS[key], Path(root).expanduser()
    if not download and not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"dataset root {root} {problem}", path=root, hint=_hint(key, root))
    train_images, train_labels, classes = _read(key, spec, root, train=True, download=download)
    test_images, test_labels, _ = _read(key, spec, root, train=False, download=download)
    groups = {c: np.flatnonzero(train_labels == i) for i, c in enumerate(classes)}
    train_idx, val_idx, _ = split_groups(groups, (1 - val_fraction, val_fraction, 0), split_seed)
    full = ArraySamples(train_images, train_labels)
    return NamedDataset(
        name=key, root=root, classes=classes, channels=spec.channels,
        train=full.subset(sorted(train_idx)), val=full.subset(sorted(val_idx)),
        test=ArraySamples(test_images, test_labels), size=int(train_images.shape[1]),
    )


def _read(key: str, spec: _Spec, root: Path, *, train: bool, download: bool):
    import torchvision.datasets as tvd  # heavy import, only when a dataset is read

    split = "train" if train else "test"
    kwargs = {"split": split} if key == "svhn" else {"train": train}
    try:
        ds = getattr(tvd, spec.cls)(str(root), download=download, **kwargs)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted"
        what = "could not download" if download else "could not read"
        raise DataError(f"{what} {key} ({split}) in {root}: {err}", path=root,
                        hint=_hint(key, root)) from err
    data = np.asarray(ds.data, dtype=np.uint8)
    labels = np.asarray(ds.labels if key == "svhn" else ds.targets, dtype=np.int64)
    if key == "svhn":  # SVHN stores [N, C, H, W]
        data = data.transpose(0, 2, 3, 1)
    if data.ndim == 3:  # MNIST-style [N, H, W]
        data = data[..., None]
    classes = tuple(str(i) for i in range(10)) if key == "svhn" else tuple(ds.classes)
    return np.ascontiguousarray(data), labels, classes


def _hint(key: str, root: Path) -> str:
    spec = _SPECS[key]
    hint = f"pass --download, or point --data-root at the folder containing {spec.expects}"
    # A common slip: pointing at the dataset's own folder rather than the one holding it.
    for up in (root, root.parent):
        if spec.folder and up.name == spec.folder:
            return f"{hint} (that is probably {up.parent})"
    return hint
