"""Device-resident data: a whole split uploaded once as uint8, batches built on the device.

:func:`make_device_loaders` is the fast counterpart of :func:`~ticketzoo.data.make_loaders`
for data that fits in device memory (CIFAR, SVHN, (Fashion-)MNIST, decoded folders). It
returns a :class:`~ticketzoo.data.Loaders` whose loaders yield ``(float32 images, int64
labels)`` already on the device, so ``Runtime.to_device`` is a no-op and no Python runs
per image:

* upload (once): images become ``resize`` squares on the CPU with the same code as
  :mod:`.cache` (so pixels equal the cached path's), are stored NHWC uint8 on the device,
  zero-padded by ``pad`` for the train split; grey data for a 3-channel model stays one
  channel (the repeat happens for free in the normalising broadcast);
* per epoch (train): ``iter()`` draws, from the CPU ``generator`` and in this order, the
  sample order (``randperm``), crop offsets (``randint``, only when the crop is random) and
  flips (``rand < 0.5``, only with ``flip``); one host-to-device copy moves them;
* per batch: one gather picks the batch's crops (flip folded into the column index), then
  ``x * scale + shift`` (``scale = 1/(255 std)``, ``shift = -mean/std``) writes float32,
  NCHW or channels_last; eval splits are plain slices, in order, last batch kept.

Reproducibility: everything random comes from ``generator`` on the CPU, so the same
generator state gives the same order, offsets and flips on every device, hence the same
uint8 pixels; on one device type the float batches are bitwise equal. CPU and CUDA should
also agree bitwise (mul and add are separately rounded kernels), but only CPU is tested.
With no augmentation the floats equal ``make_dataset(..., train=False)``'s bit for bit;
the order differs from ``DataLoader``'s (which draws a worker seed from the generator).
``find`` reseeds ``generator`` per round and checkpoints save its state: both work as with
``make_loaders`` (one generator, exposed as ``loader.generator``).

Under ``torchrun`` (a process group up when the loaders are made) every rank holds the
whole split on its device but draws the same epoch plan and builds only its share of each
global batch (:class:`~ticketzoo.data.loaders.BatchShard`): the plan rows
``rank, rank + W, ...`` of the batch, so one process's epochs are cut, not changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ticketzoo.data.cache import ArraySamples, CachedImageDataset, arrays_to_working
from ticketzoo.data.folder import DEFAULT_MEMORY_BUDGET, Sample
from ticketzoo.data.images import DecodedImages
from ticketzoo.data.loaders import IGNORE_LABEL, BatchShard, Loaders
from ticketzoo.errors import ConfigError, DataError

_CHUNK = 8192  # images per host-to-device copy: bounds the staging memory
_PLAN_BYTES = 32  # per train image: the epoch plan, 4 int64 (order, top, col start, col step)


class DeviceBudgetError(DataError):
    """The data would not fit the device memory budget: use the DataLoader path instead."""


@dataclass(frozen=True, eq=False)
class DeviceImages:
    """One split on the device: uint8 ``images [N, S, S, C]`` (NHWC, ``S = size + 2 pad``),
    int64 ``labels [N]``, and the normalisation for ``out_channels`` (C is 1 or out_channels)."""

    images: torch.Tensor
    labels: torch.Tensor
    size: int  # working size before padding
    pad: int
    scale: torch.Tensor  # float32 [1, out_channels, 1, 1] on the device
    shift: torch.Tensor

    @property
    def out_channels(self) -> int:
        return self.scale.shape[1]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return self.labels.shape[0]


class DeviceLoader:
    """Batches of one :class:`DeviceImages` split; ``len()`` is batches per epoch.

    ``generator`` given: a train loader (shuffled, ``random_crop``/``flip`` as asked, every
    ``iter()`` a new epoch). ``generator=None``: an eval loader (in order, center crop).
    ``shard``: yield only this rank's share of each (global) batch; a padding sample's
    label is IGNORE_LABEL (see :class:`~ticketzoo.data.loaders.BatchShard`).
    """

    def __init__(self, data: DeviceImages, *, batch_size: int, crop_size: int,
                 generator: torch.Generator | None = None, random_crop: bool = False,
                 flip: bool = False, channels_last: bool = False, drop_last: bool = False,
                 shard: BatchShard | None = None) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        side = data.size + 2 * data.pad
        if not 1 <= crop_size <= data.size:
            raise DataError(f"need 1 <= crop size <= working size, got {crop_size} and {data.size}")
        self.data, self.batch_size, self.crop = data, batch_size, crop_size
        self.generator = generator
        self.train = generator is not None
        self.random_crop = self.train and random_crop and side > crop_size
        self.flip = self.train and flip
        self.channels_last, self.drop_last = channels_last, drop_last and self.train
        self.shard = shard
        # Fixed window (eval, or train without random crop): the working image's center, as
        # torchvision's center_crop and the cached datasets place it.
        self._center = data.pad + round((data.size - crop_size) / 2.0)
        self._ar = torch.arange(crop_size, device=data.device)

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            c, k = self._center, self.crop
            window = self.data.images[:, c : c + k, c : c + k]
            for start in range(0, len(self.data), self.batch_size):
                end = start + self.batch_size
                if self.shard is None:
                    yield self._normalize(window[start:end]), self.data.labels[start:end]
                else:  # this rank's share of the batch: a strided slice (a view, no gather)
                    (x, pad), y = self.shard.take(window[start:end]), self.data.labels[start:end]
                    yield self._normalize(x), self._labels(self.shard.take(y)[0], pad)
            return
        plan = self.epoch_plan().to(self.data.device)
        for b in range(len(self)):
            rows, pad = plan[b * self.batch_size : (b + 1) * self.batch_size], False
            if self.shard is not None:
                rows, pad = self.shard.take(rows)
            images, labels = self._train_batch(rows)
            yield images, self._labels(labels, pad)

    @staticmethod
    def _labels(labels: torch.Tensor, pad: bool) -> torch.Tensor:
        return torch.full_like(labels, IGNORE_LABEL) if pad else labels

    def global_count(self, index: int) -> int:
        """Samples in global batch ``index`` of an epoch (what the training loop divides by)."""
        n, b = len(self.data), self.batch_size
        return min(b, n - index * b)

    def epoch_plan(self) -> torch.Tensor:
        """Draw one epoch from ``generator``: int64 ``[N, 4]`` rows of (sample index, top,
        first column, column step), CPU. Draw order: randperm, crop offsets, flips."""
        n, g, k = len(self.data), self.generator, self.crop
        order = torch.randperm(n, generator=g)
        if self.random_crop:
            top, left = torch.randint(0, self.data.size + 2 * self.data.pad - k + 1, (2, n),
                                      generator=g)
        else:
            top = left = torch.full((n,), self._center, dtype=torch.int64)
        step = torch.ones(n, dtype=torch.int64)
        if self.flip:
            flipped = torch.rand(n, generator=g) < 0.5
            left = torch.where(flipped, left + (k - 1), left)  # flipped: read right to left
            step = torch.where(flipped, -step, step)
        return torch.stack((order, top, left, step), 1)

    def _train_batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = rows[:, 0]
        if not (self.random_crop or self.flip):  # one shared window: gather only it
            c, k = self._center, self.crop
            x = self.data.images[:, c : c + k, c : c + k][index]
        else:  # [B, k, k, C] in one gather: crop and flip are just the index arithmetic
            r = rows[:, 1:2] + self._ar
            col = rows[:, 2:3] + rows[:, 3:4] * self._ar
            x = self.data.images[index[:, None, None], r[:, :, None], col[:, None, :]]
        return self._normalize(x), self.data.labels[index]

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float32 [B, C, k, k]; a 1-channel x broadcasts to 3 channels."""
        n, h, w, _ = x.shape
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        out = torch.empty((n, self.data.out_channels, h, w), device=x.device,
                          memory_format=fmt)
        # Same two float32 roundings as cache._normalize (x.float() * scale, then + shift).
        torch.mul(x.permute(0, 3, 1, 2), self.data.scale, out=out)
        return out.add_(self.data.shift)


Split = ArraySamples | Sequence[Sample] | CachedImageDataset | DeviceImages | None


def make_device_loaders(
    train: Split, val: Split, test: Split, *, device: str | torch.device, batch_size: int,
    seed: int, mean: Sequence[float], std: Sequence[float], input_size: int,
    channels: int | None = None, resize: int | None = None, pad: int = 4, flip: bool = True,
    crop: bool = True, channels_last: bool = False, drop_last: bool = False,
    memory_budget_bytes: int | None = None, num_classes: int | None = None,
    decoded: DecodedImages | None = None, threads: int | None = None,
) -> Loaders:  # fmt: skip
    """Upload the splits and build loaders; the train loader shuffles with a generator
    seeded by ``seed`` (``Loaders.generator``).

    Splits: :class:`ArraySamples`, a sequence of :class:`Sample` (image files; ``decoded``
    from ``discover_folder`` skips re-decoding), a :class:`CachedImageDataset` (its pixels,
    at its working size and channels; its crop/flip settings are not used), an uploaded
    :class:`DeviceImages` (``loader.data``; reused as is), or None / empty (no loader).
    Images become ``resize`` squares (default ``input_size``) with ``channels`` channels
    (default: the data's).
    Train: a random ``input_size`` crop of the ``pad``-padded square when ``crop`` (else
    the center crop) and horizontal flips when ``flip``; eval: the center crop.
    ``drop_last`` drops the last partial train batch (``make_loaders`` keeps it).

    The bytes to upload are checked first against ``memory_budget_bytes`` (None: half the
    device memory free now on CUDA, ``DEFAULT_MEMORY_BUDGET`` on CPU): over it, a
    :class:`DeviceBudgetError` (a DataError) before any work.
    ``num_classes`` checks every label once here (the loop cannot check device labels).
    """
    dev = _device(device)
    resize = input_size if resize is None else resize
    if not isinstance(input_size, int) or not 1 <= input_size <= resize:
        raise DataError(f"need 1 <= input_size <= resize, got {input_size} and {resize}",
                        hint="make resize at least the input size")
    if not isinstance(pad, int) or pad < 0:
        raise ConfigError(f"pad must be an integer >= 0, got {pad!r}")
    pad = pad if crop else 0  # padding only feeds random crops
    splits = {"train": train, "val": val, "test": test}
    if train is None or len(train) == 0:
        raise DataError("the training set is empty", hint="add images to the train split")
    if drop_last and len(train) < batch_size:
        raise DataError(f"drop_last with batch size {batch_size} leaves no batch of the "
                        f"{len(train)} train images", hint="lower the batch size")
    out_ch = channels if channels is not None else _native_channels(train, decoded)
    if out_ch not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {out_ch!r}")
    scale, shift = _scale_shift(mean, std, out_ch, dev)
    pads = {"train": pad, "val": 0, "test": 0}
    todo = {k: s for k, s in splits.items()
            if s is not None and len(s) and not isinstance(s, DeviceImages)}
    need = sum(len(s) * (_stored_channels(s, out_ch) * (resize + 2 * pads[k]) ** 2 + 8)
               + (len(s) * _PLAN_BYTES if k == "train" else 0) for k, s in todo.items())
    budget = _budget(dev) if memory_budget_bytes is None else memory_budget_bytes
    if need > budget:
        raise DeviceBudgetError(
            f"the data needs {need / 2**20:.1f} MiB on {dev} but the budget is "
            f"{budget / 2**20:.1f} MiB",
            hint="use the DataLoader path (make_loaders), a smaller resize, or a larger "
                 "memory_budget_bytes")
    data: dict[str, DeviceImages | None] = {}
    for key, split in splits.items():
        if split is None or len(split) == 0:
            data[key] = None
        elif isinstance(split, DeviceImages):
            data[key] = _check_reuse(split, key, dev, resize, pads[key], scale, shift)
        else:
            data[key] = _upload(split, dev, out_ch, resize, pads[key], scale, shift,
                                decoded=decoded, threads=threads, num_classes=num_classes)
    generator = torch.Generator().manual_seed(seed)
    shard = BatchShard.current(batch=batch_size)  # under torchrun: each rank builds its share
    common = dict(batch_size=batch_size, crop_size=input_size, channels_last=channels_last,
                  shard=shard)
    train_loader = DeviceLoader(data["train"], generator=generator, random_crop=crop,
                                flip=flip, drop_last=drop_last, **common)
    evals = [DeviceLoader(d, **common) if d is not None else None for d in (data["val"],
                                                                            data["test"])]
    return Loaders(train_loader, evals[0], evals[1], generator)


def _device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:  # tensors report an index: compare equal
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _budget(dev: torch.device) -> int:
    if dev.type == "cuda":  # the model, activations and optimizer need the other half
        free, _ = torch.cuda.mem_get_info(dev)
        return free // 2
    return DEFAULT_MEMORY_BUDGET


def _native_channels(split: Split, decoded: DecodedImages | None) -> int:
    if isinstance(split, ArraySamples):
        return int(split.images.shape[3])
    if isinstance(split, DeviceImages):
        return split.out_channels
    if isinstance(split, CachedImageDataset):
        return split.channels
    return decoded.channels if decoded is not None else 3


def _stored_channels(split: Split, out_ch: int) -> int:
    # Grey arrays for an RGB model stay grey on the device: the repeat is a broadcast.
    if isinstance(split, ArraySamples) and split.images.shape[3] == 1:
        return 1
    return out_ch


def _scale_shift(mean, std, channels: int, dev: torch.device):
    def per_channel(values, what: str) -> torch.Tensor:
        t = torch.as_tensor(tuple(values), dtype=torch.float32).flatten()
        t = t.expand(channels) if t.numel() == 1 else t
        if t.numel() != channels:
            raise DataError(f"{what} has {t.numel()} values but the images have {channels} "
                            "channel(s)", hint=f"give one {what} value per channel")
        return t

    m, s = per_channel(mean, "mean"), per_channel(std, "std")
    if not bool((s > 0).all()):
        raise DataError(f"std must be positive, got {tuple(std)}")
    # Computed exactly as cache._CroppingDataset does, so the floats match bit for bit.
    scale, shift = 1.0 / (255.0 * s), -m / s
    return scale.view(1, -1, 1, 1).to(dev), shift.view(1, -1, 1, 1).to(dev)


def _working_nhwc(split, out_ch: int, resize: int, decoded, threads) -> tuple[torch.Tensor,
                                                                             np.ndarray]:
    """CPU uint8 ``[N, resize, resize, C]`` (maybe a strided view) and int64 labels."""
    if isinstance(split, ArraySamples):
        stored = _stored_channels(split, out_ch)
        _, h, w, c = split.images.shape
        if (h, w, c) == (resize, resize, stored):  # already at working size: no CPU copy
            x = torch.from_numpy(np.ascontiguousarray(split.images))
        else:
            x = arrays_to_working(split.images, stored, resize).permute(0, 2, 3, 1)
        return x, np.asarray(split.labels, dtype=np.int64)
    if isinstance(split, CachedImageDataset):  # already decoded by make_dataset
        if (split.channels, split.resize) != (out_ch, resize):
            raise DataError(f"the cached dataset holds {split.channels}-channel {split.resize} px "
                            f"images but {out_ch}-channel {resize} px were asked for")
        return split.images.permute(0, 2, 3, 1), split.labels.numpy()
    # Image files: decoded exactly as CachedImageDataset does (reusing ``decoded``).
    ds = CachedImageDataset(split, channels=out_ch, resize=resize, train_crop=resize,
                            mean=(0.0,), std=(1.0,), train=False, decoded=decoded,
                            threads=threads)
    return ds.images.permute(0, 2, 3, 1), ds.labels.numpy()


def _upload(split, dev: torch.device, out_ch: int, resize: int, pad: int, scale, shift, *,
            decoded, threads, num_classes: int | None) -> DeviceImages:
    x, labels = _working_nhwc(split, out_ch, resize, decoded, threads)
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or (num_classes is not None and high >= num_classes):
        bad = low if low < 0 else high
        raise DataError(f"label {bad} is outside [0, {num_classes if num_classes else 'inf'})")
    n, _, _, c = x.shape
    side = resize + 2 * pad
    alloc = torch.zeros if pad else torch.empty
    images = alloc((n, side, side, c), dtype=torch.uint8, device=dev)
    inner = images[:, pad : pad + resize, pad : pad + resize]
    for start in range(0, n, _CHUNK):  # chunks keep the staging copies small
        inner[start : start + _CHUNK].copy_(x[start : start + _CHUNK].contiguous())
    return DeviceImages(images, torch.from_numpy(labels).to(dev), resize, pad, scale, shift)


def _check_reuse(data: DeviceImages, key: str, dev, resize: int, pad: int, scale,
                 shift) -> DeviceImages:
    same = ((data.device, data.size, data.pad) == (dev, resize, pad)
            and torch.equal(data.scale, scale) and torch.equal(data.shift, shift))
    if not same:
        raise DataError(f"the uploaded {key} split was built for {data.device}, size "
                        f"{data.size}, pad {data.pad} or other mean/std; asked: {dev}, "
                        f"size {resize}, pad {pad}", hint="upload it again")
    return data
