"""Image folders: layout discovery, stratified splits, validation of every file.

Two layouts are understood (hidden files and folders, names starting with ``.``, are
ignored everywhere; files are found recursively inside a class folder, like torchvision's
``ImageFolder``):

* ``presplit``: ``root/train/<class>/*`` plus optional ``root/val/<class>/*`` (``valid``
  and ``validation`` are accepted too) and ``root/test/<class>/*``. A missing val or test
  split is carved out of ``train``: per class, ``train`` is divided between itself and the
  missing split(s) in proportion to their ``split`` fractions (val missing, split
  ``(0.8, 0.1, 0.1)``: val gets 1/9 of each train class; both missing: exactly as below).
* ``split``: ``root/<class>/*``, divided per class by the ``split`` fractions.

How one class is divided (deterministic in ``seed``) is described in :mod:`.splits`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple

from ticketzoo.data.images import DecodedImages, try_decode
from ticketzoo.data.splits import check_fractions, split_groups
from ticketzoo.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of decoded uint8 pixels kept in memory
_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_LAYOUT_HINT = "use root/<class>/<image> or root/{train,val,test}/<class>/<image>"


class Sample(NamedTuple):
    """One image file and its class index (the same pair torchvision's ImageFolder uses)."""

    path: str
    label: int


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be used, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FolderDataset:
    """A validated image folder, split into train / val / test."""

    root: Path
    classes: tuple[str, ...]  # sorted by name; a label indexes this tuple
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    test: tuple[Sample, ...]
    skipped: tuple[SkippedFile, ...]
    layout: Literal["presplit", "split"]
    channels: int  # 1 or 3: what the images were converted to while validating
    # Working-size pixels from validation, when asked for (see discover_folder's resize).
    decoded: DecodedImages | None = field(default=None, compare=False, repr=False)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: number of images}}`` for train, val and test."""
        out = {}
        for name in SPLITS:
            per = [0] * len(self.classes)
            for sample in getattr(self, name):
                per[sample.label] += 1
            out[name] = dict(zip(self.classes, per))
        return out


def discover_folder(
    root: str | Path,
    *,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    strict: bool = False,
    channels: int = 3,
    resize: int | None = None,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    threads: int | None = None,
) -> FolderDataset:
    """Find, validate and split the images under ``root``.

    Every file is opened with PIL and fully loaded; unreadable ones are skipped and listed
    in ``skipped`` (``strict=True``: the first one raises :class:`DataError`). With
    ``resize``, validation decodes straight to working size and keeps the pixels in
    ``decoded`` (when they fit ``memory_budget_bytes``) for the cache to reuse.
    """
    fractions = check_fractions(split)
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}", path=root)
    root = Path(root).expanduser()
    layout, split_dirs = _find_layout(root)
    classes = tuple(sorted(_subdirs(split_dirs["train"])))
    _check_same_classes(split_dirs, classes)
    files = {
        (s, c): _files_under(d / c) for s, d in split_dirs.items() for c in classes
    }
    total = sum(len(v) for v in files.values())
    if total == 0:
        raise DataError(f"no files found in the class folders under {root}", path=root,
                        hint=_LAYOUT_HINT)
    keep = resize is not None and total * channels * resize * resize <= memory_budget_bytes
    good, skipped, arrays = _validate(files, channels, resize if keep else None, strict, threads)
    _check_usable(root, split_dirs, files, good, skipped, classes)
    label = {c: i for i, c in enumerate(classes)}
    parts = {}
    for s in SPLITS:
        if s in split_dirs:
            parts[s] = [Sample(p, label[c]) for c in classes for p in good[s, c]]
    missing = [s for s in SPLITS if s not in split_dirs]
    if missing:  # carve the missing splits out of train, in proportion to their fractions
        weights = [fractions[i] if s == "train" or s in missing else 0.0
                   for i, s in enumerate(SPLITS)]
        weights = [w / sum(weights) for w in weights]
        groups = {c: [Sample(p, label[c]) for p in good["train", c]] for c in classes}
        carved = dict(zip(SPLITS, split_groups(groups, weights, seed)))
        parts.update({s: carved[s] for s in ["train", *missing]})
    decoded = DecodedImages(channels, resize, MappingProxyType(arrays)) if keep else None
    return FolderDataset(
        root=root, classes=classes, skipped=tuple(skipped), layout=layout, channels=channels,
        decoded=decoded, **{s: tuple(sorted(parts[s], key=lambda x: (x.label, x.path)))
                            for s in SPLITS},
    )


def _visible(entries: Iterable[os.DirEntry]) -> list[os.DirEntry]:
    return [e for e in entries if not e.name.startswith(".")]


def _subdirs(path: Path) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in _visible(it) if e.is_dir())


def _files_under(path: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return found


def _find_layout(root: Path) -> tuple[str, dict[str, Path]]:
    if not root.exists():
        raise DataError(f"image folder {root} does not exist", path=root,
                        hint="check the path, or create it with scripts/make_example_data.py")
    if not root.is_dir():
        raise DataError(f"{root} is not a directory", path=root, hint=_LAYOUT_HINT)
    dirs = _subdirs(root)
    if not dirs:
        raise DataError(f"{root} has no class folders", path=root, hint=_LAYOUT_HINT)
    named: dict[str, list[str]] = {}
    for name in dirs:
        if canonical := _ALIASES.get(name):
            named.setdefault(canonical, []).append(name)
    # Presplit only when train/ holds class folders: otherwise 'train' may be a class.
    nested = [s for s, names in named.items() if any(_subdirs(root / n) for n in names)]
    if "train" not in nested:
        if nested:
            raise DataError(f"{root} has split folders ({', '.join(nested)}) but no train "
                            "folder with class folders", path=root,
                            hint="add root/train/<class>/ with the training images")
        return "split", {"train": root}
    if twice := [" and ".join(names) for names in named.values() if len(names) > 1]:
        raise DataError(f"{root} has two folders for one split: {'; '.join(twice)}",
                        path=root, hint="keep one of them")
    if others := [d for d in dirs if d not in _ALIASES]:
        raise DataError(f"{root} mixes split folders ({', '.join(named)}) with other folders "
                        f"({', '.join(others)})", path=root, hint=_LAYOUT_HINT)
    return "presplit", {s: root / named[s][0] for s in SPLITS if s in named}


def _check_same_classes(split_dirs: Mapping[str, Path], classes: tuple[str, ...]) -> None:
    problems = []
    for name, path in split_dirs.items():
        if name == "train":
            continue
        found = set(_subdirs(path))
        if lacking := sorted(set(classes) - found):
            problems.append(f"{path.name}/ lacks {', '.join(lacking)}")
        if extra := sorted(found - set(classes)):
            problems.append(f"{path.name}/ has {', '.join(extra)} which train/ lacks")
    if problems:
        raise DataError("class folders differ between splits: " + "; ".join(problems),
                        path=split_dirs["train"].parent,
                        hint="every split folder needs the same class folders")


def _validate(files, channels, resize, strict, threads):
    order = [(key, path) for key, paths in files.items() for path in paths]
    workers = threads or min(8, os.cpu_count() or 1)

    def check(item):
        array, reason = try_decode(item[1], channels=channels, resize=resize)
        return (array if resize is not None else None), reason  # keep only what is wanted

    good = {key: [] for key in files}
    skipped, arrays = [], {}
    pool = ThreadPoolExecutor(max(1, workers))  # PIL decodes without holding the GIL
    try:
        for (key, path), (array, reason) in zip(order, pool.map(check, order)):
            if reason is not None:
                if strict:
                    raise DataError(f"cannot use {path}: {reason}", path=path,
                                    hint="delete or replace the file, or drop --strict "
                                    "to skip unreadable files")
                skipped.append(SkippedFile(path, reason))
                continue
            good[key].append(path)
            if resize is not None:
                arrays[path] = array
    finally:
        pool.shutdown(cancel_futures=True)
    return good, skipped, arrays


def _check_usable(root, split_dirs, files, good, skipped, classes) -> None:
    if not any(good.values()):
        first = f" (first: {skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise DataError(f"no usable images under {root}: all {len(skipped)} files were "
                        f"skipped{first}", path=root, hint="check the files are images")
    if len(classes) < 2:
        raise DataError(f"need at least 2 classes, found only {classes[0]!r} in {root}",
                        path=root, hint="add one folder of images per class")
    by_path = {s.path: s.reason for s in skipped}
    for (split_name, cls), paths in files.items():
        if good[split_name, cls]:
            continue
        folder = split_dirs[split_name] / cls
        why = (f"all {len(paths)} files were skipped (first: {paths[0]}: {by_path[paths[0]]})"
               if paths else f"folder {folder} is empty")
        raise DataError(f"class {cls!r} has no usable images: {why}", path=folder,
                        hint="add readable images to it or remove the class folder"
                        + (" from every split" if len(split_dirs) > 1 else ""))
