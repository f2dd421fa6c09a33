"""Benchmark the ticketzoo-csr/1 format on torchvision ResNet-50.

For each sparsity, in one run:
  * file bytes vs the information limit (fp32 kept values + binary entropy of the mask
    + dense tensors), vs the dense fp32 safetensors file, and vs a torch.nn.utils.prune
    state dict saved with torch.save;
  * time to a ready model: Ticket.load + to_model, vs torch.load(weights_only=True) of
    the dense checkpoint + load_state_dict into an already-built model (the baseline is
    not charged for building the model), and both end to end with model construction.

Usage: python scripts/bench_format.py [--sparsities 0.8 0.9 0.97 0.99] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from torch.nn.utils import prune

from ticketzoo.card import ArchConfig, SourceData
from ticketzoo.models import classifier_names
from ticketzoo.pruning import prune_to_sparsity
from ticketzoo.ticket import Ticket


def entropy_bits(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def info_limit(model, masks) -> float:
    state = model.state_dict()
    total = 0.0
    for name, t in state.items():
        if name in masks:
            m = masks[name]
            kept = int(m.sum())
            total += kept * t.element_size() + m.numel() * entropy_bits(kept / m.numel()) / 8
        else:
            total += t.numel() * t.element_size()
    return total


def timed(fn, repeats: int) -> float:
    fn()  # warm the page cache and allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_prune_bytes(model, masks, path: Path) -> int:
    m = torchvision.models.resnet50()
    m.load_state_dict(model.state_dict())
    modules = dict(m.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(modules[name.rsplit(".", 1)[0]], "weight", mask)
    torch.save(m.state_dict(), path)
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9, 0.97, 0.99])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scope", choices=["global", "layerwise"], default="global", help="magnitude pruning scope")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    tmp = Path(tempfile.mkdtemp(prefix="tz-bench-"))
    dense_st = tmp / "dense.safetensors"
    save_file(model.state_dict(), dense_st)
    dense_pt = tmp / "dense.pt"
    torch.save(model.state_dict(), dense_pt)
    dense_bytes = dense_st.stat().st_size
    arch = ArchConfig("resnet50", 1000, 3, 224, classifier=classifier_names(model))
    prebuilt = torchvision.models.resnet50()

    def baseline_load():
        prebuilt.load_state_dict(torch.load(dense_pt, weights_only=True))

    def baseline_e2e():
        torchvision.models.resnet50().load_state_dict(torch.load(dense_pt, weights_only=True))

    t_base = timed(baseline_load, args.repeats)
    t_base_e2e = timed(baseline_e2e, max(1, args.repeats // 2))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 ({dense_bytes / 1e6:.1f} MB dense fp32), "
        f"{args.scope} magnitude pruning, one weight set (rewind)"
    )
    print(f"baseline: torch.load + load_state_dict {t_base * 1e3:.1f} ms; with model construction {t_base_e2e * 1e3:.1f} ms")
    header = f"{'sparsity':>8} {'ticket MB':>9} {'limit MB':>8} {'vs limit':>8} {'dense/ticket':>12} {'prune.pt MB':>11} {'load ms':>8} {'vs base':>7} {'e2e vs':>7}"
    print(header)
    for s in args.sparsities:
        masks = prune_to_sparsity(model, s, scope=args.scope)
        ticket = Ticket.from_model(model, masks, name=f"bench-s{round(s * 100)}", arch=arch, source=SourceData("none"))
        path = tmp / f"t{s}.safetensors"
        ticket.save(path)
        size = path.stat().st_size
        limit = info_limit(model, masks)
        prune_bytes = torch_prune_bytes(model, masks, tmp / f"prune{s}.pt")
        t_ticket = timed(lambda: Ticket.load(path).to_model(), args.repeats)
        print(
            f"{s:>8.2f} {size / 1e6:>9.2f} {limit / 1e6:>8.2f} {size / limit:>7.3f}x {dense_bytes / size:>11.1f}x "
            f"{prune_bytes / 1e6:>11.1f} {t_ticket * 1e3:>8.1f} {t_ticket / t_base:>6.2f}x {t_ticket / t_base_e2e:>6.2f}x"
        )
        os.unlink(tmp / f"prune{s}.pt")
    print("vs limit: file bytes / information limit; vs base: ticket load+to_model over torch.load+load_state_dict")
    print("into a prebuilt model; e2e vs: the same over a baseline that also builds the model.")


if __name__ == "__main__":
    main()
