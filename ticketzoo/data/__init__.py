"""Data for ticketzoo: image folders, standard datasets, the decoded-image cache, loaders.

Typical use::

    ds = discover_folder("photos", seed=0, channels=3, resize=73)   # or load_named_dataset
    kw = dict(channels=ds.channels, resize=73, train_crop=64, mean=MEAN, std=STD)
    train = make_dataset(ds.train, train=True, decoded=ds.decoded, **kw)
    val = make_dataset(ds.val, train=False, decoded=ds.decoded, **kw)
    loaders = make_loaders(train, val, None, batch_size=64, seed=0, device="cpu")

Modules, each importing only those above it: ``images`` (read one file), ``idx`` (read
IDX files), ``splits``, ``folder``, ``cache``, ``datasets``, ``loaders``, ``device_loader``.
"""

from ticketzoo.data.cache import (
    ArraySamples,
    Batch,
    CachedImageDataset,
    StreamingImageDataset,
    cache_nbytes,
    collate,
    make_dataset,
)
from ticketzoo.data.datasets import NAMED_DATASETS, NamedDataset, load_named_dataset
from ticketzoo.data.folder import (
    DEFAULT_MEMORY_BUDGET,
    FolderDataset,
    Sample,
    SkippedFile,
    discover_folder,
)
from ticketzoo.data.idx import read_idx, read_idx_pair
from ticketzoo.data.images import DecodedImages, to_channels, try_decode
from ticketzoo.data.loaders import Loaders, make_loaders
from ticketzoo.data.device_loader import (
    DeviceBudgetError,
    DeviceImages,
    DeviceLoader,
    make_device_loaders,
)
from ticketzoo.data.splits import split_counts, split_groups

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "NAMED_DATASETS",
    "ArraySamples",
    "Batch",
    "CachedImageDataset",
    "DecodedImages",
    "DeviceBudgetError",
    "DeviceImages",
    "DeviceLoader",
    "FolderDataset",
    "Loaders",
    "NamedDataset",
    "Sample",
    "SkippedFile",
    "StreamingImageDataset",
    "cache_nbytes",
    "collate",
    "discover_folder",
    "load_named_dataset",
    "make_dataset",
    "make_device_loaders",
    "make_loaders",
    "read_idx",
    "read_idx_pair",
    "split_counts",
    "split_groups",
    "to_channels",
    "try_decode",
]
