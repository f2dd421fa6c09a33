"""Standard datasets by name: (Fashion-)MNIST from IDX files, the others via torchvision.

``cifar10``, ``cifar100``, ``fashionmnist``, ``mnist`` and ``svhn`` are small enough to
live in memory as uint8 arrays, wrapped in :class:`~ticketzoo.data.cache.ArraySamples`
so the datasets in :mod:`.cache` use them without PIL. Validation is split off the
official train set (stratified, seeded); test is the official test set.

``mnist`` and ``fashionmnist`` are read by :mod:`.idx` (no torchvision, no pickle) from
the four original files, gzip'd or not, found in ``root`` itself (e.g. Debian's
``/usr/share/datasets/fashion-mnist``) or in torchvision's ``root/<Name>/raw/``.
``download=True`` lets torchvision fetch them when they are missing. CIFAR files are
pickles that torchvision itself unpickles, so only point ``root`` at files you trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ticketzoo.data.cache import ArraySamples
from ticketzoo.data.folder import SPLITS, SkippedFile
from ticketzoo.data.idx import read_idx_pair
from ticketzoo.data.splits import split_groups
from ticketzoo.errors import DataError

# The original files' names (without .gz), as published and as torchvision keeps them.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Class names exactly as torchvision.datasets.MNIST / FashionMNIST give them.
_MNIST_CLASSES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
                  "6 - six", "7 - seven", "8 - eight", "9 - nine")
_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class _Spec:
    title: str  # the dataset and its paper, for descriptions
    source: str  # what kind of files are read, for descriptions
    cls: str  # class name in torchvision.datasets
    expects: str  # what must be inside root, for error messages
    channels: int
    folder: str = ""  # the subfolder torchvision reads, when there is one
    files: tuple[str, ...] = ()  # torchvision-read files, relative to root
    classes: tuple[str, ...] = ()  # IDX datasets only (torchvision names the others)
    hint: str = ""  # how to get the files, when better than downloading


_SPECS = {
    "cifar10": _Spec(
        "CIFAR-10 (Krizhevsky 2009)", "python-version batches", "CIFAR10",
        "the folder 'cifar-10-batches-py'", 3, "cifar-10-batches-py",
        tuple(f"cifar-10-batches-py/{n}" for n in
              [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])),
    "cifar100": _Spec(
        "CIFAR-100 (Krizhevsky 2009)", "python-version files", "CIFAR100",
        "the folder 'cifar-100-python'", 3, "cifar-100-python",
        ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta")),
    "fashionmnist": _Spec(
        "Fashion-MNIST (Xiao et al. 2017)", "original IDX files", "FashionMNIST",
        "the four IDX files (train-images-idx3-ubyte.gz, ...) or 'FashionMNIST/raw/'", 1,
        "FashionMNIST", classes=_FASHION_CLASSES,
        hint="apt-get install dataset-fashion-mnist puts them in "
             "/usr/share/datasets/fashion-mnist; or pass `download`"),
    "mnist": _Spec(
        "MNIST (LeCun et al. 1998)", "original IDX files", "MNIST",
        "the four IDX files (train-images-idx3-ubyte.gz, ...) or 'MNIST/raw/'", 1, "MNIST",
        classes=_MNIST_CLASSES),
    "svhn": _Spec(
        "SVHN (Netzer et al. 2011)", "cropped-digit .mat files", "SVHN",
        "'train_32x32.mat' and 'test_32x32.mat'", 3,
        files=("train_32x32.mat", "test_32x32.mat")),
}
NAMED_DATASETS = tuple(_SPECS)


@dataclass(frozen=True, eq=False)
class NamedDataset:
    """A standard dataset in memory, shaped like a :class:`FolderDataset`.

    It has the same ``root``, ``classes``, ``train``/``val``/``test``, ``skipped``,
    ``layout``, ``channels``, ``decoded`` and ``counts()``, so callers treat both alike.
    ``files`` names the files the pixels and labels came from.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    train: ArraySamples
    val: ArraySamples
    test: ArraySamples
    channels: int  # 1 for MNIST and FashionMNIST, else 3
    size: int  # native side in pixels (28 or 32)
    files: tuple[Path, ...] = ()
    skipped: ClassVar[tuple[SkippedFile, ...]] = ()
    layout: ClassVar[str] = "named"
    decoded: ClassVar[None] = None

    @property
    def description(self) -> str:
        """Which data this is and where it was read from, e.g. for a card."""
        spec = _SPECS[self.name]
        parents = {f.parent for f in self.files}
        where = parents.pop() if len(parents) == 1 else self.root
        grey = "grey" if self.channels == 1 else "RGB"
        return (f"{spec.title}, {spec.source} from {where}: {len(self.train) + len(self.val)} "
                f"train / {len(self.test)} test, {self.size}x{self.size} {grey}")

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
        raise DataError(f"unknown dataset {name!r}", field="data", value=name,
                        hint=f"valid names: {', '.join(NAMED_DATASETS)}")
    if not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}",
                        field="val_fraction", value=val_fraction)
    spec, root = _SPECS[key], Path(root).expanduser()
    if not download and not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"dataset root {root} {problem}", path=root, hint=_hint(key, root), field="data_root")
    if spec.classes:
        files = _find_idx_files(key, spec, root, download=download)
        train_images, train_labels = _read_idx(files[:2], spec)
        test_images, test_labels = _read_idx(files[2:], spec)
        classes = spec.classes
    else:
        train_images, train_labels, classes = _read(key, spec, root, train=True, download=download)
        test_images, test_labels, _ = _read(key, spec, root, train=False, download=download)
        files = tuple(root / f for f in spec.files)
    groups = {c: np.flatnonzero(train_labels == i) for i, c in enumerate(classes)}
    train_idx, val_idx, _ = split_groups(groups, (1 - val_fraction, val_fraction, 0), split_seed)
    full = ArraySamples(train_images, train_labels)
    return NamedDataset(
        name=key, root=root, classes=classes, channels=spec.channels, files=files,
        train=full.subset(sorted(train_idx)), val=full.subset(sorted(val_idx)),
        test=ArraySamples(test_images, test_labels), size=int(train_images.shape[1]),
    )


def _find_idx_files(key: str, spec: _Spec, root: Path, *, download: bool) -> tuple[Path, ...]:
    """Train images, train labels, test images, test labels: from ``root`` itself, else
    from torchvision's ``root/<Name>/raw/`` (``download``: fetched there when missing)."""
    places = (root, root / spec.folder / "raw")
    names = IDX_FILES["train"] + IDX_FILES["test"]
    missing = {}
    for place in places:
        found = [_idx_file(place, n) for n in names]
        if all(found):
            return tuple(found)
        missing[place] = [n for n, f in zip(names, found) if f is None]
    if download:
        _download(key, spec, root)
        return _find_idx_files(key, spec, root, download=False)
    where = "; ".join(f"in {p} missing {'all four' if len(m) == 4 else ', '.join(m)}"
                      for p, m in missing.items())
    raise DataError(f"{key} IDX files not found (need {', '.join(names)}, each plain or .gz): "
                    f"{where}", path=root, hint=_hint(key, root), field="data_root")


def _idx_file(place: Path, name: str) -> Path | None:
    # torchvision's raw/ holds both forms after a download; the plain one reads faster.
    for path in (place / name, place / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _read_idx(files: tuple[Path, ...], spec: _Spec) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx_pair(*files, num_classes=len(spec.classes))
    return images[..., None], labels  # [N, H, W, 1], as ArraySamples wants


def _download(key: str, spec: _Spec, root: Path) -> None:
    import os

    import torchvision.datasets as tvd  # heavy import, only to download

    for switch in ("TICKETZOO_OFFLINE", "HF_HUB_OFFLINE"):  # no network, whatever the remote (issue 19)
        if os.environ.get(switch, "").upper() in ("1", "ON", "YES", "TRUE"):
            raise DataError(f"cannot download {key} into {root}: {switch} is set", path=root,
                            hint=f"unset {switch}, or put the files there yourself ({_hint(key, root)})")

    try:  # one split suffices: torchvision downloads all four files
        getattr(tvd, spec.cls)(str(root), train=False, download=True)
    except (RuntimeError, OSError) as err:
        raise DataError(f"could not download {key} into {root}: {err}", path=root,
                        hint=_hint(key, root)) from err


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
    classes = tuple(str(i) for i in range(10)) if key == "svhn" else tuple(ds.classes)
    return np.ascontiguousarray(data), labels, classes


def _hint(key: str, root: Path) -> str:
    spec = _SPECS[key]
    hint = spec.hint or ("pass `download`, or point `data_root` at the folder containing "
                         f"{spec.expects}")
    # A common slip: pointing at the dataset's own folder rather than the one holding it
    # (IDX files are also looked for in root itself, so there only root/<Name> is a slip).
    for up in (root,) if spec.classes else (root, root.parent):
        if spec.folder and up.name == spec.folder:
            return f"{hint} (that is probably {up.parent})"
    return hint
