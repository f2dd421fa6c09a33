"""How many CPU threads torch's intra-op pool gets, chosen from the model, not the machine.

Measured on the 2-core development machine (``scripts/bench_threads.py``), one Adam step:

=====================  ===========  ===========  ==========================
model (batch)          1 thread     2 threads    2 threads, other core busy
=====================  ===========  ===========  ==========================
lenet_300_100 (60)     2.4 ms       1.8 ms       up to 30x slower
conv4 x0.25 (16)       17 ms        10 ms        402 ms vs 14 ms (measured)
conv2 (60)             261 ms       143 ms       ~ the 1-thread time
resnet50 @32 px (32)   665 ms       377 ms       ~ the 1-thread time
=====================  ===========  ===========  ==========================

Small models gain little from a second thread on an idle machine and lose up to 30x when
another process holds a core (the pool's threads spin waiting for each other), so they
get one thread. Models whose forward pass costs at least :data:`MULTI_THREAD_MACS`
multiply-accumulates per image get every core this process may use: their ops are large
enough that the pool's synchronisation is cheap next to them.

Results depend on the thread count (a float sum is split differently); with the same
count, CPU runs are bitwise reproducible. The count used is recorded with the results.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from ticketzoo.errors import ConfigError

MULTI_THREAD_MACS = 10_000_000  # forward MACs per image from which more threads pay


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count),
    shared equally among the processes ``torchrun`` started on this machine."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    try:  # torchrun's processes on this machine: each gets its share, none oversubscribes
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, cores // local)


def forward_macs(model: nn.Module, in_channels: int, input_size: int) -> int:
    """Multiply-accumulates of one image's forward pass through convs and linears.

    Counted on the meta device from output shapes alone: nothing is computed or allocated.
    """
    total = 0

    def count(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * per_out
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    meta = _meta_copy(model)
    hooks = [m.register_forward_hook(count) for m in meta.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            meta(torch.empty(1, in_channels, input_size, input_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return int(total)


def _meta_copy(model: nn.Module) -> nn.Module:
    import copy

    # A deep copy moved to meta leaves the caller's model (and its device) untouched.
    memo = {id(p): torch.empty_like(p, device="meta") for p in model.parameters()}
    memo.update({id(b): torch.empty_like(b, device="meta") for b in model.buffers()})
    return copy.deepcopy(model, memo).eval()


def choose_threads(requested: int | None, model: nn.Module | None = None, *,
                   in_channels: int = 3, input_size: int = 32) -> int:
    """``requested`` when given, else 1 for small models and every available core for large."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ConfigError(f"threads must be a positive integer, got {requested!r}")
        return requested
    if model is None:
        return 1
    macs = forward_macs(model, in_channels, input_size)
    return available_cores() if macs >= MULTI_THREAD_MACS else 1


def set_threads(count: int) -> int:
    """Set torch's intra-op thread count; returns the previous count."""
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    return previous
