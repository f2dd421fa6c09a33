"""Datasets that crop and normalise working-size images, cached in memory or streamed.

Both datasets take ``samples``, either a tuple of :class:`~ticketzoo.data.folder.Sample`
(image files) or :class:`ArraySamples` (images already in memory, e.g. CIFAR), and yield
``(float [C, crop, crop], label)`` with one transform:

* working size: the image becomes a ``resize`` square once (shorter side resized, center
  crop), so per-item work never touches a file decoder or a resampler;
* train: the square zero-padded by ``pad`` on each side, a random ``train_crop`` crop (the
  lottery-ticket paper's only augmentation) and, with ``flip``, a horizontal flip with
  probability 1/2; eval: the center crop;
* normalise: ``(x / 255 - mean) / std``.

Random draws come from torch's default generator, per item in index order (top and left
with one ``torch.randint``, then ``torch.rand`` for the flip when ``flip``), so equal
RNG states and index orders give bitwise-equal items from both datasets.

:class:`CachedImageDataset` decodes everything up front into one uint8 ``[N, C, R, R]``
tensor. Its ``__getitems__`` (which ``DataLoader`` calls with a whole batch of indices)
slices and normalises the batch with tensor ops and returns a :class:`Batch`, which
:func:`collate` passes through unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, default_collate

from ticketzoo.data.folder import DEFAULT_MEMORY_BUDGET, Sample
from ticketzoo.data.images import DecodedImages, try_decode
from ticketzoo.errors import DataError


@dataclass(frozen=True, eq=False)
class ArraySamples:
    """Images in memory: uint8 ``images [N, H, W, C]`` (C is 1 or 3), int ``labels [N]``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        ok = (self.images.dtype == np.uint8 and self.images.ndim == 4
              and self.images.shape[3] in (1, 3) and self.labels.shape == self.images.shape[:1])
        if not ok:
            raise DataError(f"need uint8 images [N, H, W, 1|3] and labels [N], got "
                            f"{self.images.dtype} {self.images.shape} and {self.labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int]) -> ArraySamples:
        """A new ArraySamples holding the given rows (copied)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ArraySamples(self.images[idx], self.labels[idx].astype(np.int64))


Samples = Sequence[Sample] | ArraySamples  # plain (path, label) pairs work too


class Batch(NamedTuple):
    """A batch built in one go by :meth:`CachedImageDataset.__getitems__`."""

    inputs: torch.Tensor  # float [B, C, crop, crop]
    targets: torch.Tensor  # int64 [B]


def collate(items: Batch | list) -> Batch | list:
    """``collate_fn`` for these datasets: a ready :class:`Batch` passes, a list is stacked."""
    return items if isinstance(items, Batch) else default_collate(items)


def cache_nbytes(n: int, channels: int, resize: int) -> int:
    """Bytes a cache of ``n`` images at working size ``resize`` takes."""
    return n * channels * resize * resize


class _CroppingDataset(Dataset):
    """The transform both datasets share; subclasses supply the uint8 working-size image."""

    def __init__(self, samples: Samples, *, channels: int, resize: int, train_crop: int,
                 mean: Sequence[float], std: Sequence[float], train: bool,
                 flip: bool = False, pad: int = 0) -> None:
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels!r}")
        if not 1 <= train_crop <= resize:
            raise DataError(f"need 1 <= train_crop <= resize, got train_crop={train_crop} and "
                            f"resize={resize}", hint="make resize at least the input size")
        self._scale, self._shift = normalizer(mean, std, channels)
        self.samples, self.channels, self.resize, self.crop = samples, channels, resize, train_crop
        self.train, self.flip, self.pad = train, flip, pad
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(x) for x in std)
        self.labels = torch.as_tensor(
            samples.labels if isinstance(samples, ArraySamples) else [s[1] for s in samples],
            dtype=torch.int64)
        self._center = center_offset(resize, train_crop)

    def __len__(self) -> int:
        return len(self.labels)

    def _offsets(self) -> tuple[int, int, bool]:
        if not self.train:
            return self._center, self._center, False
        top, left = torch.randint(0, self.resize + 2 * self.pad - self.crop + 1, (2,)).tolist()
        return top, left, self.flip and bool(torch.rand(()) < 0.5)

    def _crop(self, image: torch.Tensor) -> torch.Tensor:
        top, left, flip = self._offsets()
        if self.train and self.pad:  # zeros, as the device loader pads (uint8 0 before normalising)
            image = torch.nn.functional.pad(image, (self.pad,) * 4)
        x = image[..., top : top + self.crop, left : left + self.crop]
        return x.flip(-1) if flip else x

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self._scale, self._shift)


class CachedImageDataset(_CroppingDataset):
    """All images decoded once into ``self.images`` (uint8 ``[N, C, resize, resize]``).

    ``decoded`` (from :func:`discover_folder` with the same channels and resize) skips
    decoding the files validation already decoded; ``threads`` decode in parallel.
    """

    def __init__(self, samples: Samples, *, channels: int, resize: int, train_crop: int,
                 mean: Sequence[float], std: Sequence[float], train: bool,
                 flip: bool = False, pad: int = 0, decoded: DecodedImages | None = None,
                 threads: int | None = None) -> None:
        super().__init__(samples, channels=channels, resize=resize, train_crop=train_crop,
                         mean=mean, std=std, train=train, flip=flip, pad=pad)
        if isinstance(samples, ArraySamples):
            self.images = arrays_to_working(samples.images, channels, resize)
        else:
            self.images = _decode_files(samples, channels, resize, decoded, threads)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._normalize(self._crop(self.images[index])), int(self.labels[index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        c, k = self._center, self.crop
        if not self.train:  # one shared window: slice first so the gather copies only it
            return Batch(self._normalize(self.images[:, :, c : c + k, c : c + k][idx]),
                         self.labels[idx])
        # Convert while copying each crop into the batch: no uint8 batch in between.
        x = torch.empty((len(idx), self.channels, k, k))
        for row, i in zip(x, idx.tolist()):
            row.copy_(self._crop(self.images[i]))
        return Batch(self._normalize(x), self.labels[idx])


class StreamingImageDataset(_CroppingDataset):
    """Same items as :class:`CachedImageDataset`, decoding each one when it is asked for."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if isinstance(self.samples, ArraySamples):
            image = arrays_to_working(self.samples.images[index : index + 1],
                                      self.channels, self.resize)[0]
        else:
            image = _to_chw(decode_file(self.samples[index][0], self.channels, self.resize))
        return self._normalize(self._crop(image)), int(self.labels[index])


def make_dataset(samples: Samples, *, channels: int, resize: int, train_crop: int,
                 mean: Sequence[float], std: Sequence[float], train: bool,
                 flip: bool = False, pad: int = 0, memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
                 decoded: DecodedImages | None = None,
                 threads: int | None = None) -> CachedImageDataset | StreamingImageDataset:
    """A :class:`CachedImageDataset` when its cache fits ``memory_budget_bytes``, else a
    :class:`StreamingImageDataset` with the same items."""
    common = dict(channels=channels, resize=resize, train_crop=train_crop, mean=mean, std=std,
                  train=train, flip=flip, pad=pad)
    if cache_nbytes(len(samples), channels, resize) <= memory_budget_bytes:
        return CachedImageDataset(samples, decoded=decoded, threads=threads, **common)
    return StreamingImageDataset(samples, **common)


def decode_file(path: str, channels: int, resize: int) -> np.ndarray:
    """One file at working size, uint8 ``[resize, resize, channels]``; DataError if unreadable."""
    array, reason = try_decode(path, channels=channels, resize=resize)
    if array is None:
        raise DataError(f"cannot read {path}: {reason}", path=path,
                        hint="discover_folder skips unreadable files; build samples with it")
    return array


def arrays_to_working(images: np.ndarray, channels: int, resize: int) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` -> uint8 ``[N, channels, resize, resize]`` without PIL.

    Channels convert as PIL does (1 -> 3 repeats; 3 -> 1 uses ITU-R 601 luma); a size
    change center-crops the square and resamples it bilinearly with antialiasing.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if x.shape[1] != channels:
        if channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:  # PIL's integer luma: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16
            weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(1, 3, 1, 1)
            x = ((x.int() * weights).sum(1, keepdim=True) + 32768).bitwise_right_shift(16)
            x = x.to(torch.uint8)
    n, _, h, w = x.shape
    if (h, w) == (resize, resize):
        return x.contiguous()
    side = min(h, w)
    x = x[:, :, (h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    out = torch.empty((n, channels, resize, resize), dtype=torch.uint8)
    for start in range(0, n, 256):  # chunks bound the float copy's memory
        y = F.interpolate(x[start : start + 256].float(), size=(resize, resize),
                          mode="bilinear", align_corners=False, antialias=True)
        out[start : start + 256] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def normalizer(mean: Sequence[float], std: Sequence[float], channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, float ``[C, 1, 1]``, such that ``x * scale + shift == (x / 255 - mean) / std``."""
    mean_t, std_t = _per_channel(mean, channels, "mean"), _per_channel(std, channels, "std")
    if not bool((std_t > 0).all()):
        raise DataError(f"std must be positive, got {tuple(std)}")
    return (1.0 / (255.0 * std_t)).view(-1, 1, 1), (-mean_t / std_t).view(-1, 1, 1)


def normalize(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 images ``[..., C, H, W]`` as normalised floats (:func:`normalizer`); a float ``x``
    is normalised in place."""
    return x.float().mul_(scale).add_(shift)


def center_offset(size: int, crop: int) -> int:
    """Top (and left) of the central ``crop`` square of a ``size`` square, as torchvision's center_crop."""
    return round((size - crop) / 2.0)


def _per_channel(values: Sequence[float], channels: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(tuple(values), dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise DataError(f"{what} has {t.numel()} values but the images have {channels} "
                        "channel(s)", hint=f"give one {what} value per channel")
    return t


def _to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _decode_files(samples: Sequence[Sample], channels: int, resize: int,
                  decoded: DecodedImages | None, threads: int | None) -> torch.Tensor:
    out = torch.empty((len(samples), channels, resize, resize), dtype=torch.uint8)
    # Filled through numpy: its transposing copy is far faster than torch's __setitem__.
    view = out.numpy()
    ready = (decoded.arrays if decoded is not None and decoded.channels == channels
             and decoded.resize == resize else {})
    todo = []
    for i, (path, _) in enumerate(samples):
        if path in ready:
            view[i] = ready[path].transpose(2, 0, 1)
        else:
            todo.append(i)
    workers = max(1, threads or min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # PIL decodes without holding the GIL
        arrays = pool.map(lambda i: decode_file(samples[i][0], channels, resize), todo)
        for i, array in zip(todo, arrays):
            view[i] = array.transpose(2, 0, 1)
    return out
