"""Walking a folder tree without recursion, to a bounded depth.

Python 3.11's ``os.walk`` recurses once per level, so a folder nested ~1,000 levels deep ended
``predict`` and ``finetune`` in a RecursionError. :func:`walk` keeps its own stack and refuses a
tree deeper than :data:`MAX_DEPTH` with a :class:`~ticketzoo.errors.DataError` naming the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ticketzoo.errors import DataError

#: Folder levels below the top that a walk descends (image datasets use two or three).
MAX_DEPTH = 64


def walk(top: str | Path, *, followlinks: bool = False) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=...)``, top-down: ``(dirpath, dirnames, filenames)``; the caller
    may prune ``dirnames`` in place. Unreadable folders are skipped, as ``os.walk`` does."""
    stack = [(os.fspath(top), 0)]
    while stack:
        path, depth = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        dirs, files, links = [], [], set()
        for e in entries:
            try:
                is_dir = e.is_dir()  # links to folders count as folders, as in os.walk
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(e.name)
            if is_dir and e.is_symlink():
                links.add(e.name)
        yield path, dirs, files
        descend = [d for d in dirs if followlinks or d not in links]
        if descend and depth >= MAX_DEPTH:
            raise DataError(f"{path}: folders nested deeper than {MAX_DEPTH} levels below {os.fspath(top)}",
                            path=path, hint="image folders are root/<class>/<image>; move the images up")
        stack.extend((os.path.join(path, d), depth + 1) for d in reversed(descend))
