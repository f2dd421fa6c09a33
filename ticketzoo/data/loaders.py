"""DataLoaders for the train / val / test datasets of :mod:`.cache`.

Train batches are shuffled by a ``torch.Generator`` seeded with ``seed``; random crops
come from torch's default generator (see :mod:`.cache`), so on CPU a run seeded with
``torch.manual_seed`` sees the same epochs every time. A cached dataset builds each batch
in one call (``__getitems__``) in the main process: worker processes would only add
copies between processes, so they are used for streaming datasets on CUDA alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from ticketzoo.data.cache import CachedImageDataset, collate
from ticketzoo.errors import ConfigError, DataError


@dataclass(frozen=True)
class Loaders:
    """The three loaders and the generator that shuffles train (its state is resumable)."""

    train: DataLoader
    val: DataLoader | None
    test: DataLoader | None
    generator: torch.Generator


def make_loaders(train_ds: Dataset, val_ds: Dataset | None, test_ds: Dataset | None, *,
                 batch_size: int, seed: int, device: str | torch.device,
                 workers: int | None = None) -> Loaders:
    """Build the loaders; ``workers=None`` picks the number for the device and dataset.

    On CUDA batches go to pinned memory; ``drop_last`` is off everywhere. A ``None``
    (or empty) val or test dataset gives a ``None`` loader.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
    if len(train_ds) == 0:
        raise DataError("the training set is empty", hint="add images to the train split")
    cuda = torch.device(device).type == "cuda"
    generator = torch.Generator().manual_seed(seed)

    def loader(ds: Dataset | None, shuffle: bool) -> DataLoader | None:
        if ds is None or (shuffle is False and len(ds) == 0):
            return None
        n = workers if workers is not None else _default_workers(ds, cuda)
        return DataLoader(
            ds, batch_size=batch_size, shuffle=shuffle, drop_last=False, collate_fn=collate,
            generator=generator if shuffle else None, num_workers=n, pin_memory=cuda,
            persistent_workers=n > 0,
        )

    return Loaders(loader(train_ds, True), loader(val_ds, False), loader(test_ds, False),
                   generator)


def _default_workers(ds: Dataset, cuda: bool) -> int:
    if not cuda or isinstance(ds, CachedImageDataset):
        return 0
    return min(8, os.cpu_count() or 1)
