"""Data for ticketzoo: image folders, standard datasets, the decoded-image cache, loaders.

Typical use::

    ds = discover_folder("photos", seed=0, channels=3, resize=73)   # or load_named_dataset
    kw = dict(channels=ds.channels, resize=73, train_crop=64, mean=MEAN, std=STD)
    train = make_dataset(ds.train, train=True, decoded=ds.decoded, **kw)
    val = make_dataset(ds.val, train=False, decoded=ds.decoded, **kw)
    loaders = make_loaders(train, val, None, batch_size=64, seed=0, device="cpu")

Modules, each importing only those above it: ``images`` (read one file), ``splits``,
``folder``, ``cache``, ``datasets``, ``loaders``, ``synthetic``.
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
from ticketzoo.data.images import DecodedImages, to_channels, try_decode
from ticketzoo.data.loaders import Loaders, make_loaders
from ticketzoo.data.splits import split_counts, split_groups
from ticketzoo.data.synthetic import make_image_folder

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "NAMED_DATASETS",
    "ArraySamples",
    "Batch",
    "CachedImageDataset",
    "DecodedImages",
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
    "make_image_folder",
    "make_loaders",
    "split_counts",
    "split_groups",
    "to_channels",
    "try_decode",
]
