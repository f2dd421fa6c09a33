"""Throughput of the device-resident data path + masked step against a plain PyTorch loop.

    python scripts/bench_gpu.py [--arch resnet50] [--input-size 32] [--batch 512] [--steps 50]
        [--warmup 10] [--repeats 3] [--device cuda] [--compile/--no-compile]
        [--data synthetic|PATH] [--images 50000] [--workers N] [--sparsity 0.8]

Everything runs in one process on one device, variants timed in rotating blocks of
``--steps`` steps (median over ``--repeats``), each block between two device syncs, so
asynchronous work is counted and machine noise hits every variant alike:

* (a) ours: :class:`~ticketzoo.data.device_loader.DeviceLoader` (random crop with pad 4 +
  flip on the device) + the loop's masked step (per-step lr, bf16 autocast, channels_last,
  ``SGD(fused=True)`` where supported, ``torch._foreach_mul_`` masks, ``torch.compile``
  with ``--compile``);
* (b) plain: torchvision transforms (RandomCrop(pad 4), RandomHorizontalFlip,
  ConvertImageDtype, Normalize) on the same uint8 arrays in ``DataLoader`` workers (pinned,
  persistent) + an eager, unmasked, NCHW step with the default SGD and the same autocast;
* (c) our step unmasked vs masked, same data path and model (masked/unmasked time <= 1.03).

``--data``: ``synthetic`` (random CIFAR-10-like uint8, 10 classes), a folder holding
``cifar-10-batches-py`` (the real CIFAR-10 train set) or an image folder (decoded once
at ``--input-size``). Targets (one H100, ResNet-50 at 32 px, batch 512): (a) >= 2x (b)
and >= 20,000 img/s; mask overhead <= 3%. They are printed, not asserted.
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
PAD = 4


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forever(loader):
    while True:  # a new epoch whenever one ends
        yield from loader


def load_arrays(data: str, size: int, images: int):
    """uint8 NHWC arrays at ``size`` px and labels, plus a one-line description."""
    from ticketzoo.data import ArraySamples, CachedImageDataset, discover_folder, load_named_dataset
    from ticketzoo.data.cache import arrays_to_working

    if data == "synthetic":
        rng = np.random.default_rng(0)
        arrays = ArraySamples(rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8),
                              np.arange(images, dtype=np.int64) % 10)
        return arrays, 10, f"synthetic: {images} random uint8 {size}x{size} RGB images, 10 classes"
    path = Path(data).expanduser()
    root = path.parent if path.name == "cifar-10-batches-py" else path
    if (root / "cifar-10-batches-py").is_dir():
        arrays = load_named_dataset("cifar10", root, val_fraction=0.0).train
        what = f"CIFAR-10 train set from {root}"
        classes = 10
    else:
        ds = discover_folder(path, channels=3, resize=size, split=(1.0, 0.0, 0.0))
        cached = CachedImageDataset(ds.train, channels=3, resize=size, train_crop=size,
                                    mean=(0.0,), std=(1.0,), train=False, decoded=ds.decoded)
        arrays = ArraySamples(cached.images.permute(0, 2, 3, 1).numpy(), cached.labels.numpy())
        what, classes = f"image folder {path}", len(ds.classes)
    if arrays.images.shape[1:3] != (size, size):  # both pipelines get the same working size
        resized = arrays_to_working(arrays.images, 3, size).permute(0, 2, 3, 1).numpy()
        arrays = ArraySamples(resized, arrays.labels)
    return arrays, classes, f"{what}: {len(arrays)} images at {size}x{size}"


class PlainArrays(torch.utils.data.Dataset):
    """The textbook in-memory dataset: one image at a time through torchvision transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int) -> None:
        from torchvision import transforms as T

        self.images, self.labels = images, labels
        self.transform = T.Compose([T.RandomCrop(size, padding=PAD), T.RandomHorizontalFlip(),
                                    T.ConvertImageDtype(torch.float32), T.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.images[i]).permute(2, 0, 1)  # uint8 CHW
        return self.transform(image), int(self.labels[i])


def make_sgd(params, fused: bool) -> tuple[torch.optim.Optimizer, str]:
    """The loop's SGD (Nesterov 0.9, wd 1e-5), fused when asked and the device supports it."""
    kw = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-5)
    if fused:
        try:
            return torch.optim.SGD(params, fused=True, **kw), "fused"
        except (RuntimeError, ValueError, TypeError):  # older torch or unsupported device
            pass
    return torch.optim.SGD(params, **kw), "default (foreach)"


class Trainer:
    """One model + optimizer + step, as ticketzoo's loop runs it (lr set every step, loss
    and accuracy summed on the device, masks re-applied after each step)."""

    def __init__(self, model, runtime, *, fused: bool, compile_mode: str | None, masks=None,
                 channels_last: bool = True) -> None:
        from ticketzoo.train.device import MaskSet

        self.runtime, self.device = runtime, runtime.device
        model.to(self.device)
        if channels_last and runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        self.maskset = MaskSet(model, masks)  # on the module itself: compile renames params
        self.maskset.apply()
        self.optimizer, self.optimizer_kind = make_sgd(model.parameters(), fused)
        self.model = torch.compile(model, mode=compile_mode) if compile_mode else model
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)

    def step(self, x, y, *, masked: bool) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = 0.01
        with self.runtime.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if masked:
            self.maskset.apply()
        self.loss_sum += loss.detach() * y.shape[0]
        self.correct += (logits.detach().argmax(1) == y).sum()


def timed(device, n: int, fn) -> float:
    """Seconds for ``n`` calls of ``fn``, between two device syncs."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return time.perf_counter() - t0


@click.command()
@click.option("--arch", default="resnet50", show_default=True)
@click.option("--input-size", default=32, show_default=True)
@click.option("--batch", default=512, show_default=True)
@click.option("--steps", default=50, show_default=True, help="timed steps per block")
@click.option("--warmup", default=10, show_default=True, help="untimed steps per variant first")
@click.option("--repeats", default=3, show_default=True, help="timed blocks per variant")
@click.option("--device", default="cuda", show_default=True)
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile our model  [default: on for CUDA]")
@click.option("--compile-mode", default="default", show_default=True)
@click.option("--data", default="synthetic", show_default=True,
              help="'synthetic', a folder with cifar-10-batches-py, or an image folder")
@click.option("--images", default=50000, show_default=True, help="synthetic images")
@click.option("--workers", default=min(8, os.cpu_count() or 1), show_default=True,
              help="DataLoader workers of the plain baseline")
@click.option("--sparsity", default=0.8, show_default=True, help="fraction of weights masked")
def main(arch, input_size, batch, steps, warmup, repeats, device, compile_, compile_mode, data,
         images, workers, sparsity) -> None:
    """(a) ours vs (b) plain, and (c) masked vs unmasked: img/s and ratios, one run."""
    from ticketzoo.data.device_loader import make_device_loaders
    from ticketzoo.models import build_model
    from ticketzoo.pruning import prune_to_sparsity
    from ticketzoo.train.device import Runtime

    runtime = Runtime.create(device, amp=True, channels_last=True)  # AMP/NHWC: CUDA only
    dev = runtime.device
    cuda = dev.type == "cuda"
    compile_ = cuda if compile_ is None else compile_
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: both sides profit alike
    arrays, classes, what = load_arrays(data, input_size, images)
    if len(arrays) < batch:
        raise click.BadParameter(f"{len(arrays)} images are fewer than one batch of {batch}")

    torch.manual_seed(0)
    base = build_model(arch, num_classes=classes, input_size=input_size, seed=0)
    masks = prune_to_sparsity(base, sparsity)
    ours = Trainer(copy.deepcopy(base), runtime, fused=True, masks=masks,
                   compile_mode=compile_mode if compile_ else None)
    plain = Trainer(copy.deepcopy(base), runtime, fused=False, compile_mode=None,
                    channels_last=False)

    t0 = time.perf_counter()
    loaders = make_device_loaders(arrays, None, None, device=dev, batch_size=batch, seed=0,
                                  mean=MEAN, std=STD, input_size=input_size, pad=PAD,
                                  channels_last=runtime.channels_last, drop_last=True,
                                  num_classes=classes)
    _sync(dev)
    upload_s = time.perf_counter() - t0
    dl = torch.utils.data.DataLoader(
        PlainArrays(arrays.images, arrays.labels, input_size), batch_size=batch, shuffle=True,
        drop_last=True, num_workers=workers, pin_memory=cuda, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0))
    ours_batches, plain_batches = _forever(loaders.train), _forever(dl)

    def plain_batch():
        x, y = next(plain_batches)
        return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

    variants = {
        "ours masked": lambda: ours.step(*next(ours_batches), masked=True),
        "ours unmasked": lambda: ours.step(*next(ours_batches), masked=False),
        "plain": lambda: plain.step(*plain_batch(), masked=False),
        "ours data only": lambda: next(ours_batches),
        "plain data only": plain_batch,
    }
    for fn in variants.values():  # warm-up: compile, cudnn autotuning, worker start-up
        timed(dev, warmup, fn)
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            times[name].append(timed(dev, steps, variants[name]))
    rate = {k: steps * batch / statistics.median(v) for k, v in times.items()}
    masked_ratio = statistics.median(m / u for m, u in zip(times["ours masked"],
                                                           times["ours unmasked"]))

    name = torch.cuda.get_device_name(dev) if cuda else "CPU"
    print(f"torch {torch.__version__}, {dev} ({name}), {arch} at {input_size} px, batch {batch}, "
          f"{classes} classes")
    print(f"data: {what}; uploaded in {upload_s:.2f} s")
    print(f"ours: autocast {runtime.amp_dtype or 'off'}, channels_last {runtime.channels_last}, "
          f"compile {compile_mode if compile_ else 'off'}, SGD {ours.optimizer_kind}, "
          f"{100 * sparsity:.0f}% masked; plain: {workers} worker(s), eager, NCHW, "
          f"SGD {plain.optimizer_kind}, unmasked")
    print(f"{repeats} blocks of {steps} steps per variant after {warmup} warm-up steps "
          "(median block)")
    print(f"  data only:  ours {rate['ours data only']:>10,.0f} img/s   plain "
          f"{rate['plain data only']:>10,.0f} img/s   -> "
          f"{rate['ours data only'] / rate['plain data only']:.2f}x")
    print(f"  (a) ours (DeviceLoader + masked step) {rate['ours masked']:>10,.0f} img/s")
    print(f"  (b) plain (DataLoader + eager step)   {rate['plain']:>10,.0f} img/s")
    print(f"      ours / plain = {rate['ours masked'] / rate['plain']:.2f}x   "
          "(target >= 2x; >= 20,000 img/s for resnet50 at 32 px on one H100)")
    print(f"  (c) ours unmasked {rate['ours unmasked']:>10,.0f} img/s, masked "
          f"{rate['ours masked']:>10,.0f} img/s")
    print(f"      masked / unmasked step time = {masked_ratio:.3f}x paired median "
          "(target <= 1.03x)")
    float(ours.loss_sum + plain.loss_sum)  # the sums are real work: keep them alive to the end


if __name__ == "__main__":
    main()
