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

Symbolic links are followed, but each image file (by resolved path) is used once, in one
class of one split: a file reached twice (a link to another class, or to a file of another
split) keeps the occurrence that is not itself through a link (else the first one) and
the others are listed in ``skipped``; a link to a folder above it (a loop) is not
followed and is listed too. Otherwise the same image could land in train and in test.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NamedTuple

from ticketzoo.config.data import DEFAULT_MEMORY_BUDGET
from ticketzoo.data.images import DecodedImages, try_decode
from ticketzoo.data.splits import check_fractions, split_groups
from ticketzoo.data.walk import walk
from ticketzoo.errors import DataError

SPLITS = ("train", "val", "test")
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
    _check_class_names(split_dirs["train"], classes)
    _check_same_classes(split_dirs, classes)
    above = {_identity(root), *(_identity(d) for d in split_dirs.values())}
    found, links = {}, []
    for s, d in split_dirs.items():
        for c in classes:
            found[s, c], loops = _files_under(d / c, above)
            links += loops
    files, links = _once_each(found, links)
    if strict and links:
        raise DataError(f"cannot use {links[0].path}: {links[0].reason}", path=links[0].path,
                        hint="remove the link, or drop `strict` to skip it")
    total = sum(len(v) for v in files.values())
    if total == 0:
        raise DataError(f"no files found in the class folders under {root}", path=root,
                        hint=_LAYOUT_HINT)
    keep = resize is not None and total * channels * resize * resize <= memory_budget_bytes
    good, skipped, arrays = _validate(files, channels, resize if keep else None, strict, threads)
    skipped = links + skipped
    _check_usable(root, split_dirs, found, good, skipped, classes)
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


def _identity(path: str | Path) -> tuple[int, int]:
    st = os.stat(path)  # follows links: a folder and a link to it are the same folder
    return st.st_dev, st.st_ino


def _files_under(path: Path, above: set[tuple[int, int]]) -> tuple[list[str], list[SkippedFile]]:
    """Files under a class folder (links followed) and the links that would loop.

    ``above`` are the folders above the class folder (root, split folder): a link back to
    one of them, or to a folder on the current walk path, is a loop and is not followed.
    """
    found, loops = [], []
    ancestors = {str(path): above | {_identity(path)}}
    for dirpath, dirnames, filenames in walk(path, followlinks=True):
        on_path = ancestors.pop(dirpath)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            sub = os.path.join(dirpath, d)
            try:
                ident = _identity(sub)
            except OSError:
                continue  # vanished or unreadable: os.walk would skip it too
            if ident in on_path:
                loops.append(SkippedFile(sub, f"symlink loop: it leads back to {os.path.realpath(sub)}, "
                                              "a folder above it; not followed"))
                continue
            ancestors[sub] = on_path | {ident}
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(f for f in filenames if not f.startswith(".")):
            p = os.path.join(dirpath, f)
            if _utf8(p):
                found.append(p)
            else:  # it could be neither shown nor recorded: name it as best we can, and skip it
                loops.append(SkippedFile(_displayable(p), "file name is not valid UTF-8; rename it"))
    return found, loops


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes in a file name come back as surrogates
        return False


def _displayable(name: str) -> str:
    try:
        raw = name.encode("utf-8", "surrogateescape")  # the name's own bytes
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _once_each(found: dict[tuple[str, str], list[str]], skipped: list[SkippedFile]):
    """Keep each file (by resolved path) once, in one (split, class); the rest are skipped.

    The occurrence that is not through a link wins (the file's own place), else the first
    in split, class and walk order.
    """
    real = {p: os.path.realpath(p) for paths in found.values() for p in paths}
    first: dict[str, tuple[str, tuple[str, str]]] = {}
    for key, paths in found.items():
        for p in paths:
            r = real[p]
            if r not in first or (first[r][0] != r and os.path.abspath(p) == r):
                first[r] = (p, key)
    files = {key: [] for key in found}
    for key, paths in found.items():
        for p in paths:
            kept, kept_key = first[real[p]]
            if p == kept and key == kept_key:
                files[key].append(p)
            else:
                where = f"{kept_key[0]}/{kept_key[1]}" if kept_key[0] in ("val", "test") else kept_key[1]
                skipped.append(SkippedFile(p, f"same file as {kept} (class {where}), reached again through a "
                                              "symbolic link; used once"))
    return files, skipped


def _check_class_names(folder: Path, classes: tuple[str, ...]) -> None:
    for c in classes:
        if not _utf8(c) or not _utf8(str(folder)):  # it could not be shown, nor stored in a card
            raise DataError(f"class folder name {_displayable(c)!r} in {_displayable(str(folder))} is not "
                            "valid UTF-8", path=_displayable(str(folder)),
                            hint="rename the folder: class names become labels in the ticket's card")


def _find_layout(root: Path) -> tuple[str, dict[str, Path]]:
    if not root.exists():
        raise DataError(f"image folder {root} does not exist", path=root,
                        hint="check the path")
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
                                    hint="delete or replace the file, or drop `strict` "
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
