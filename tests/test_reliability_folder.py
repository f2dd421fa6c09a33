"""Image folders that could leak data or crash: symlink loops, links across classes and
splits, names that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from ticketzoo.data import discover_folder
from ticketzoo.errors import DataError


def _images(folder: Path, n: int, color=(200, 30, 30)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i}.png"
        Image.new("RGB", (8, 8), (color[0], i * 10, color[2])).save(p)
        paths.append(p)
    return paths


def _all(ds) -> list[str]:
    return [s.path for part in (ds.train, ds.val, ds.test) for s in part]


def _one_split_each(ds) -> None:
    real = [os.path.realpath(p) for p in _all(ds)]
    assert len(real) == len(set(real)), "an image file is used twice"


def test_a_link_to_the_parent_folder_is_a_reported_loop(tmp_path):
    root = tmp_path / "d"
    _images(root / "cat", 10)
    _images(root / "dog", 10, color=(10, 200, 10))
    (root / "cat" / "again").symlink_to(root / "cat")  # a loop: cat/again/again/...
    (root / "dog" / "up").symlink_to(root)  # back to the dataset root: every class again
    ds = discover_folder(root, split=(0.6, 0.2, 0.2))
    assert len(_all(ds)) == 20
    _one_split_each(ds)
    loops = [s for s in ds.skipped if "symlink loop" in s.reason]
    assert {Path(s.path).name for s in loops} == {"again", "up"}
    with pytest.raises(DataError, match="symlink loop"):
        discover_folder(root, strict=True)


def test_a_file_linked_into_another_class_or_split_is_used_once(tmp_path):
    root = tmp_path / "p"
    cats = _images(root / "train" / "cat", 6)
    _images(root / "train" / "dog", 6, color=(10, 200, 10))
    _images(root / "test" / "cat", 2, color=(1, 2, 3))
    _images(root / "test" / "dog", 2, color=(10, 100, 10))
    (root / "test" / "dog" / "leak.png").symlink_to(cats[0])  # a train image, again in test
    (root / "train" / "dog" / "wrong.png").symlink_to(cats[1])  # a cat image, labelled dog too
    external = _images(tmp_path / "elsewhere", 2, color=(5, 5, 5))
    for i, e in enumerate(external):  # reached only through links: the first occurrence counts
        (root / "train" / "cat" / f"ext{i}.png").symlink_to(e)
        (root / "test" / "cat" / f"ext{i}.png").symlink_to(e)
    ds = discover_folder(root, split=(0.8, 0.1, 0.1))
    _one_split_each(ds)
    by_path = {s.path: (part, s.label) for part in ("train", "val", "test") for s in getattr(ds, part)}
    assert by_path[str(cats[0])][0] == "train" and str(root / "test" / "dog" / "leak.png") not in by_path
    assert by_path[str(cats[1])][1] == ds.classes.index("cat")
    assert by_path[str(root / "train" / "cat" / "ext0.png")][0] == "train"
    skipped = {Path(s.path).name: s.reason for s in ds.skipped}
    assert {"leak.png", "wrong.png", "ext0.png", "ext1.png"} == set(skipped)
    assert all("used once" in r for r in skipped.values())


def test_names_that_are_not_utf8(tmp_path):
    root = tmp_path / "u"
    _images(root / "cat", 4)
    _images(root / "dog", 4, color=(10, 200, 10))
    bad = os.fsdecode(b"caf\xe9")
    _images(root / "dog" / bad, 1)  # a file below a non-UTF-8 folder name: skipped, said why
    ds = discover_folder(root, split=(0.5, 0.25, 0.25))
    assert len(_all(ds)) == 8 and "not valid UTF-8" in ds.skipped[0].reason
    ds.skipped[0].path.encode("utf-8")  # printable
    _images(root / bad, 2)  # a class folder: it would become a label
    with pytest.raises(DataError, match="class folder name 'caf\ufffd'.* is not valid UTF-8") as e:
        discover_folder(root)
    str(e.value).encode("utf-8")
