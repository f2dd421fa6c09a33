"""DataLoaders for the train / val / test datasets of :mod:`.cache`.

Train batches are shuffled by a ``torch.Generator`` seeded with ``seed``; random crops
come from torch's default generator (see :mod:`.cache`), so on CPU a run seeded with
``torch.manual_seed`` sees the same epochs every time. A cached dataset builds each batch
in one call (``__getitems__``) in the main process: worker processes would only add
copies between processes, so they are used for streaming datasets on CUDA alone.

Under ``torchrun`` (a process group is up when the loaders are built) every loader reads
only this rank's share of each global batch (:class:`BatchShard`): ``batch_size`` stays
the global batch, every rank draws the same permutation from the same generator (so the
epochs equal one process's, ``set_epoch`` needs no call: the generator moves on by
itself and its state is checkpointed), and each keeps samples ``rank, rank + W, ...`` of
every batch. A cached train set with random crops or flips is the exception: it stays
whole, see :func:`_random_per_sample`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler

from ticketzoo.data.cache import CachedImageDataset, collate
from ticketzoo.errors import ConfigError, DataError


IGNORE_LABEL = -100  # a padding sample's label: F.cross_entropy's default ignore_index


@dataclass(frozen=True)
class BatchShard:
    """Rank ``rank`` of ``world``'s share of every global batch of ``batch`` out of ``n``
    samples an epoch: the batch's items ``rank, rank + world, ...``.

    When a (last, short) batch leaves this rank nothing, it gets the batch's first item as
    a *padding sample*, labelled :data:`IGNORE_LABEL`: it adds nothing to a loss or a
    metric, and keeps every rank stepping together (DDP needs all ranks in each step)."""

    rank: int
    world: int
    n: int = 0  # samples an epoch (for global_count)
    batch: int = 0  # the global batch (0: not known, not checked)

    def __post_init__(self) -> None:
        if self.batch % self.world:
            raise ConfigError(f"the batch size {self.batch} is the global batch and must be divisible "
                              f"by the {self.world} processes", field="batch_size", value=self.batch,
                              hint=f"use a multiple of {self.world}")

    @classmethod
    def current(cls, n: int = 0, batch: int | None = None) -> BatchShard | None:
        """This process's shard when a process group of more than one is up, else None."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return None
        world = dist.get_world_size()
        return cls(dist.get_rank(), world, n, world if batch is None else batch)

    def global_count(self, index: int) -> int:
        """Samples in global batch ``index`` of an epoch (the last one may be short)."""
        return min(self.batch, self.n - index * self.batch)

    def take(self, items: Sequence) -> tuple[Sequence, bool]:
        """This rank's items of one global batch, and whether they are a padding sample."""
        mine = items[self.rank::self.world]
        return (mine, False) if len(mine) else (items[:1], True)

    def split(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of a global batch ``(images, labels)`` (padding: IGNORE_LABEL)."""
        (x, pad), y = self.take(images), self.take(labels)[0]
        return x, (torch.full_like(y, IGNORE_LABEL) if pad else y)


class _ShardSampler(Sampler):
    """This rank's index list of each global batch of ``batches`` (a batch sampler)."""

    def __init__(self, batches: BatchSampler, shard: BatchShard):
        self.batches, self.shard = batches, shard
        self.pads: list[bool] = []  # per batch of the epoch running: a padding sample?

    def __iter__(self) -> Iterator[list[int]]:
        self.pads = []
        for index in self.batches:
            mine, pad = self.shard.take(index)
            self.pads.append(pad)
            yield list(mine)

    def __len__(self) -> int:
        return len(self.batches)


class ShardedLoader:
    """A DataLoader of one rank's shares; a padding sample's label becomes IGNORE_LABEL.

    ``shard`` and ``global_count`` tell the training loop the loader is sharded already and
    how large each global batch is; ``generator`` is the shuffling generator (checkpointed)."""

    def __init__(self, loader: DataLoader, sampler: _ShardSampler, generator: torch.Generator | None):
        self.loader, self._sampler, self.generator = loader, sampler, generator
        self.shard = sampler.shard

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for index, (images, labels) in enumerate(self.loader):
            # workers=0: the sampler has drawn exactly this batch; with workers it runs ahead,
            # but ``pads`` only grows, so index is still this batch's entry.
            if self._sampler.pads[index]:
                labels = torch.full_like(labels, IGNORE_LABEL)
            yield images, labels

    def global_count(self, index: int) -> int:
        return self.shard.global_count(index)


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
    BatchShard.current(batch=batch_size)  # under torchrun: refuse a batch the ranks cannot share

    def loader(ds: Dataset | None, shuffle: bool) -> DataLoader | ShardedLoader | None:
        if ds is None or (shuffle is False and len(ds) == 0):
            return None
        n = workers if workers is not None else _default_workers(ds, cuda)
        shard = BatchShard.current(len(ds), batch_size)
        if shard is None or (shuffle and _random_per_sample(ds)):
            return DataLoader(
                ds, batch_size=batch_size, shuffle=shuffle, drop_last=False, collate_fn=collate,
                generator=generator if shuffle else None, num_workers=n, pin_memory=cuda,
                persistent_workers=n > 0,
            )
        # The samplers one process would use (same draws from the same generator), cut
        # into this rank's share of each batch.
        order = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        sampler = _ShardSampler(BatchSampler(order, batch_size, drop_last=False), shard)
        inner = DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                           generator=generator if shuffle else None, num_workers=n,
                           pin_memory=cuda, persistent_workers=n > 0)
        return ShardedLoader(inner, sampler, generator if shuffle else None)

    return Loaders(loader(train_ds, True), loader(val_ds, False), loader(test_ds, False),
                   generator)


def _random_per_sample(ds: Dataset) -> bool:
    """A cached train set that crops or flips each image from the global RNG: a rank that
    read only its share would draw other crops than one process. Such a set is left whole
    (the training loop cuts each batch after loading it: the same crops, W times the cheap
    in-memory crop work)."""
    return isinstance(ds, CachedImageDataset) and ds.train and (ds.resize > ds.crop or ds.flip or ds.pad)


def _default_workers(ds: Dataset, cuda: bool) -> int:
    if not cuda or isinstance(ds, CachedImageDataset):
        return 0
    return min(8, os.cpu_count() or 1)
