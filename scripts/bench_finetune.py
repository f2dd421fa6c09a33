"""Benchmarks behind `ticketzoo finetune` (ratios from one run, printed side by side).

    python scripts/bench_finetune.py [--arch resnet50] [--size 224] [--batch 16] [--device cpu]
                                     [--iters 5] [--images 300] [--workers 2] [--skip-steps]

1. Training step: a masked step (the loop's step: forward, backward, SGD-Nesterov step,
   then one ``torch._foreach_mul_`` over the (param, mask) pairs) against a plain dense
   step of the same model, and ``torch.nn.utils.prune`` (weight = weight_orig * mask
   recomputed by a forward pre-hook) in the same run. Steps are interleaved round-robin
   and the median per variant is reported, so machine noise hits all three alike.
2. Data epoch: iterating one epoch of ``--images`` generated 224 px JPEGs (random crop
   224 of a 256 working size, normalised, batch 64) through ticketzoo's decode cache
   vs torchvision ``ImageFolder`` + PIL decoding (Resize 256, RandomCrop 224, ToTensor,
   Normalize), timed from the second epoch. This is the data pipeline alone: with a
   model the compute is added to both sides.
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click
import torch
import torch.nn.functional as F

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_steps(arch: str, size: int, batch: int, device: torch.device, iters: int, sparsity: float):
    from torch.nn.utils import prune

    from ticketzoo.models import build_model
    from ticketzoo.pruning import prune_to_sparsity
    from ticketzoo.train import TrainConfig
    from ticketzoo.train.device import MaskSet
    from ticketzoo.train.loop import build_optimizer

    torch.manual_seed(0)
    base = build_model(arch, num_classes=10, input_size=size)
    masks = prune_to_sparsity(base, sparsity)
    config = TrainConfig()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def setup(kind: str):
        model = copy.deepcopy(base).to(device)
        maskset = None
        if kind == "masked":
            maskset = MaskSet(model, masks)
            maskset.apply()
        elif kind == "prune":
            modules = dict(model.named_modules())
            for name, mask in masks.items():
                prune.custom_from_mask(modules[name.rpartition(".")[0]], "weight", mask.to(device))
        return model, build_optimizer(model, config), maskset

    variants = {k: setup(k) for k in ("dense", "masked", "prune")}
    times: dict[str, list[float]] = {k: [] for k in variants}

    def step(kind: str) -> float:
        model, opt, maskset = variants[kind]
        _sync(device)
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if maskset is not None:
            maskset.apply()
        _sync(device)
        return time.perf_counter() - t0

    order = list(variants)
    for kind in order:  # warm-up
        step(kind)
    for i in range(iters):
        for kind in order[i % 3:] + order[: i % 3]:  # rotate who goes first
            times[kind].append(step(kind))
    maskset = variants["masked"][2]
    apply_t = []
    for _ in range(20):  # the only extra work of a masked step, timed on its own
        _sync(device)
        t0 = time.perf_counter()
        maskset.apply()
        _sync(device)
        apply_t.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    paired = {k: statistics.median(a / b for a, b in zip(times[k], times["dense"]))
              for k in ("masked", "prune")}
    print(f"\n== training step: {arch} at {size} px, batch {batch}, {device}, "
          f"{100 * sparsity:.0f}% sparse, {iters} interleaved steps per variant")
    for k in order:
        print(f"  {k:<7} median {med[k] * 1000:9.1f} ms   (min {min(times[k]) * 1000:.1f}, "
              f"max {max(times[k]) * 1000:.1f})")
    apply_ms = statistics.median(apply_t) * 1000
    print(f"  mask apply alone (foreach_mul over {len(maskset.params)} tensors): median {apply_ms:.1f} ms"
          f" -> masked step = dense step x {1 + apply_ms / (med['dense'] * 1000):.4f}")
    print(f"  masked / dense               = {paired['masked']:.3f}x paired median "
          f"({med['masked'] / med['dense']:.3f}x of medians)   (target <= 1.03x)")
    print(f"  torch.nn.utils.prune / dense = {paired['prune']:.3f}x paired median "
          f"({med['prune'] / med['dense']:.3f}x of medians)")
    return med


def _epoch(loader) -> float:
    t0 = time.perf_counter()
    for images, _ in loader:
        images.sum()  # touch the batch
    return time.perf_counter() - t0


def bench_data(n_images: int, workers: int, epochs: int = 5):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from ticketzoo.data import discover_folder, make_dataset, make_loaders
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite\'s synthetic images
    from synthetic import make_image_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        classes = 4
        make_image_folder(root, kind="textures", classes=classes, per_class=n_images // classes,
                          size=224, fmt="jpg")
        t0 = time.perf_counter()
        ds = discover_folder(root, channels=3, resize=256, split=(1.0, 0.0, 0.0))
        train = make_dataset(ds.train, channels=3, resize=256, train_crop=224, mean=MEAN, std=STD,
                             train=True, decoded=ds.decoded)
        setup = time.perf_counter() - t0
        ours = make_loaders(train, None, None, batch_size=64, seed=0, device="cpu").train
        tf = transforms.Compose([transforms.Resize(256), transforms.RandomCrop(224),
                                 transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        loaders = {"cache": ours}
        for w in sorted({0, workers}):
            loaders[w] = DataLoader(datasets.ImageFolder(str(root), transform=tf), batch_size=64,
                                    shuffle=True, num_workers=w, persistent_workers=w > 0)
        times: dict = {k: [] for k in loaders}
        for _ in range(epochs):  # interleaved, so machine noise hits every pipeline alike
            for k, loader in loaders.items():
                times[k].append(_epoch(loader))
        ours_t = times.pop("cache")
        results = times
    later = lambda ts: statistics.median(ts[1:])  # noqa: E731  from the second epoch
    print(f"\n== data epoch: {len(train)} generated 224 px JPEGs, crop 224 of 256, batch 64, CPU")
    print(f"  ticketzoo decode cache: setup (validate + decode once, not in epochs) {setup:.2f} s,\n"
          f"    epochs {', '.join(f'{t:.3f}' for t in ours_t)} s")
    for w, ts in results.items():
        print(f"  torchvision ImageFolder+PIL, {w} worker(s):\n    epochs {', '.join(f'{t:.3f}' for t in ts)} s"
              f"  -> cache is {later(ts) / later(ours_t):.1f}x faster from epoch 2 (target >= 3x)")
    return later(ours_t), {w: later(ts) for w, ts in results.items()}


@click.command()
@click.option("--arch", default="resnet50", show_default=True)
@click.option("--size", default=224, show_default=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--iters", default=5, show_default=True, help="timed steps per variant")
@click.option("--sparsity", default=0.9, show_default=True)
@click.option("--images", default=300, show_default=True)
@click.option("--workers", default=2, show_default=True, help="torchvision loader workers (also 0)")
@click.option("--data-threads", default=1, show_default=True,
              help="torch threads while timing the data pipelines (workers use 1 each)")
@click.option("--skip-steps", is_flag=True)
@click.option("--skip-data", is_flag=True)
def main(arch, size, batch, device, iters, sparsity, images, workers, data_threads, skip_steps,
         skip_data) -> None:
    """Masked-step overhead and decode-cache epoch speed-up, measured in one run."""
    from ticketzoo.train import resolve_device

    dev = resolve_device(device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {dev}")
    if not skip_steps:
        bench_steps(arch, size, batch, dev, iters, sparsity)
    if not skip_data:
        torch.set_num_threads(data_threads)  # as in a loader worker; small tensor ops lose
        bench_data(images, workers)          # to thread hand-offs on a busy machine


if __name__ == "__main__":
    main()
