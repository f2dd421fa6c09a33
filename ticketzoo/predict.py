"""Classifying images with a ticket: its card's preprocessing and class names, batch by batch.

Each image becomes the tensor the ticket's training saw for it (:meth:`Ticket.transforms`
of the card's :class:`~ticketzoo.card.Preprocess`, derived for cards that predate it).

On the CPU the network runs on the sparse runtime (:mod:`ticketzoo.sparse`); on CUDA it runs
dense. A file that is not a readable image is skipped with its reason, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ticketzoo.card import Preprocess
from ticketzoo.data.folder import SkippedFile  # one type for a file left out, as in finetune
from ticketzoo.data.walk import walk
from ticketzoo.errors import ConfigError, DataError


@dataclass(frozen=True)
class Prediction:
    path: str
    label: str  # the card's class name
    index: int
    probability: float  # softmax probability of the predicted class


@dataclass(frozen=True)
class Predictions:
    rows: tuple[Prediction, ...]
    skipped: tuple[SkippedFile, ...]
    preprocess: Preprocess | None = None  # what the images went through (Ticket.preprocess)
    declared: bool = False  # whether its card declares it (else derived from the recipe)
    fallback: str | None = None  # why the sparse runtime runs on torch, not its C++ kernels


def image_files(path: str | Path) -> list[Path]:
    """``path`` itself, or every visible file under the folder (sorted, recursively)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        what = "not a regular file or a folder" if path.exists() else "no such file or folder"  # a FIFO, a device
        raise DataError(f"{path}: {what}", path=path)
    found = []
    for root, dirs, files in walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".")]
    if not found:
        raise DataError(f"{path}: the folder holds no files", path=path)
    return found


def _read(path: Path, transform):
    """The transformed tensor of one image, or the reason it cannot be used."""
    from ticketzoo.data.images import read_checked

    # The transform loads the image as opened, as the training readers do (a JPEG's draft scale).
    return read_checked(path, transform)


def _batches(files: list[Path], transform, size: int, skipped: list[SkippedFile]) -> Iterator[tuple[list[Path], list]]:
    paths, tensors = [], []
    for f in files:
        tensor, reason = _read(f, transform)
        if tensor is None:
            skipped.append(SkippedFile(str(f), reason))
            continue
        paths.append(f)
        tensors.append(tensor)
        if len(paths) == size:
            yield paths, tensors
            paths, tensors = [], []
    if paths:
        yield paths, tensors


def predict(ticket, files: list[Path], *, weights: str | None = None, device: str = "cpu", batch_size: int = 16,
            progress: Callable[[int, int], None] | None = None) -> Predictions:
    """Class and probability for each of ``files`` (skipped ones listed with their reason).

    ``weights`` defaults to ``trained`` (a fine-tuned ticket's fine-tuned weights) when the
    ticket has it, else ``rewind``. ``progress(done, total)`` is called after each batch.
    """
    import torch

    weights = weights or ticket.ready_weights
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu or cuda, got {device!r}", field="device", value=device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda asked for, but torch sees no CUDA GPU here", field="device", value=device)
    classes = ticket.card.source.classes
    if device == "cpu":
        from ticketzoo.sparse.allocator import keep_freed_memory
        from ticketzoo.sparse.kernels import why_not

        keep_freed_memory()
        model = ticket.to_model(weights, runtime="sparse")
        fallback = None if model.compiled else (why_not() or "the C++ kernels are not available")
    else:
        fallback = None
        model = ticket.to_model(weights).eval().to(device)
    transform = ticket.transforms(train=False)
    rows: list[Prediction] = []
    skipped: list[SkippedFile] = []
    done = 0
    for paths, tensors in _batches(files, transform, batch_size, skipped):
        with torch.no_grad():
            probs = torch.softmax(model(torch.stack(tensors).to(device)).float(), dim=1).cpu()
        p, idx = probs.max(dim=1)
        for path, pi, ii in zip(paths, p.tolist(), idx.tolist()):
            label = classes[ii] if ii < len(classes) else str(ii)
            rows.append(Prediction(str(path), label, ii, pi))
        done += len(paths)
        if progress is not None:
            progress(done + len(skipped), len(files))
    if progress is not None:
        progress(len(files), len(files))
    return Predictions(tuple(rows), tuple(skipped), ticket.preprocess, ticket.card.preprocess is not None, fallback)


def to_csv(result: Predictions) -> bytes:
    """``path,class,index,probability`` rows (one per classified image)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "class", "index", "probability"])
    for r in result.rows:
        writer.writerow([r.path, r.label, r.index, f"{r.probability:.6f}"])
    return buf.getvalue().encode()
