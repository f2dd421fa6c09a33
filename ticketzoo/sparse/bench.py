"""Measuring a ticket: dense fp32, dense bf16 autocast and the sparse runtime, min-of-N.

Used by ``ticketzoo bench`` and ``scripts/bench_sparse_cpu.py``. Every figure is measured
in the same process on the same input; ratios are against baselines measured in that run.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from ticketzoo.sparse.choose import min_time


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |out - ref| / max |ref|``: how far the sparse runtime's logits are from dense."""
    return float((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30))


def dense_runners(model: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """``dense-fp32`` (eager) and ``dense-bf16`` (CPU autocast) forward passes of ``model``."""
    model = model.eval()

    def fp32():
        with torch.no_grad():
            return model(x)

    def bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    return {"dense-fp32": fp32, "dense-bf16": bf16}


def dense_safetensors_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of the plain dense state dict as one safetensors file (what ``export`` writes)."""
    from safetensors.torch import save

    return len(save({k: v.contiguous() for k, v in state.items()}))


def verdict(ms: dict[str, float], baseline: str = "dense-fp32", ours: str = "sparse") -> str:
    """One honest sentence: how the sparse runtime compares with dense here, or that it does not help."""
    dense = {k: v for k, v in ms.items() if k != ours}
    best = min(dense, key=dense.get)
    vs_base, vs_best = ms[baseline] / ms[ours], ms[best] / ms[ours]
    if vs_best >= 1.05:
        text = f"sparse is {vs_base:.2f}x faster than {baseline} here"
        return text + (f" ({vs_best:.2f}x faster than the best dense option, {best})" if best != baseline else "")
    if vs_base >= 1.05:
        return (f"sparse is {vs_base:.2f}x faster than {baseline} but not faster than {best} "
                f"({vs_best:.2f}x) on this machine")
    return f"no speed-up at this sparsity on this machine (sparse runs at {vs_base:.2f}x the speed of {baseline})"


def bench_ticket(ticket, *, weights: str, input_size: int, batch_size: int, repeat: int = 5,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Latency and throughput of ``ticket`` dense (fp32, bf16) and sparse, sizes, error and verdict."""
    from ticketzoo.sparse import sparsify
    from ticketzoo.sparse.allocator import keep_freed_memory
    from ticketzoo.sparse.kernels import cpu_name, why_not

    say = progress or (lambda _msg: None)
    kept = keep_freed_memory()  # before any timing: every runtime measured under the same allocator
    arch = ticket.card.arch
    shape = (batch_size, arch.in_channels, input_size, input_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    model = ticket.to_model(weights).eval()
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as e:  # e.g. an MLP or a fixed-size head at another input size
        from ticketzoo.errors import ConfigError

        raise ConfigError(f"{arch.name} does not take {input_size} px inputs ({str(e).splitlines()[0][:160]})",
                          field="input_size", value=input_size, hint=f"its card's input size is {arch.input_size}")
    say("building the sparse runtime (the first run on a machine compiles its kernels)")
    start = time.perf_counter()
    fast = sparsify(model, example=shape)
    setup_s = time.perf_counter() - start
    runners = {**dense_runners(model, x), "sparse": lambda: fast(x)}
    ms = {}
    for name, fn in runners.items():
        say(f"timing {name}")
        ms[name] = min_time(fn, repeat) * 1e3
    with torch.no_grad():
        error = relative_error(fast(x), model(x))
    layers = fast.layers()
    return {
        "ticket": ticket.name, "arch": arch.name, "sparsity": ticket.sparsity, "weights": weights,
        "input_size": input_size, "batch_size": batch_size, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "repeat": repeat, "compiled_kernels": fast.compiled, "allocator_tuned": kept,
        "kernels_unavailable": None if fast.compiled else why_not(),
        "runs": {k: {"ms": round(v, 3), "images_per_s": round(batch_size / v * 1e3, 2)} for k, v in ms.items()},
        "speedup_vs_dense_fp32": round(ms["dense-fp32"] / ms["sparse"], 3),
        "speedup_vs_best_dense": round(min(ms["dense-fp32"], ms["dense-bf16"]) / ms["sparse"], 3),
        "max_relative_error": error,
        "sparse_setup_s": round(setup_s, 2),
        "layers_sparse": sum(1 for r in layers if r["kernel"] != "dense"), "layers_total": len(layers),
        "ticket_bytes": len(ticket.to_bytes()),
        "dense_safetensors_bytes": dense_safetensors_bytes(ticket.state_dict(weights)),
        "verdict": verdict(ms),
    }


def training_step(model: nn.Module, masks, x: torch.Tensor, y: torch.Tensor, *, amp: bool) -> Callable[[], None]:
    """A zero-argument training step of ``model`` on ``(x, y)``, as the training loop takes it:
    forward (bf16 autocast with ``amp``), cross-entropy, backward, SGD with momentum, masks
    re-zeroed."""
    import torch.nn.functional as F

    from ticketzoo.masks import MaskSet

    keeper = MaskSet(model, masks)
    keeper.apply()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        keeper.apply()

    return step


def bench_ticket_training(ticket, *, weights: str, input_size: int, batch_size: int, repeat: int = 3,
                          progress: Callable[[str], None] | None = None) -> dict:
    """One training step of ``ticket`` (its masks kept, head included) on this CPU: dense fp32,
    the best dense option (channels_last, with bf16 autocast where the CPU has it natively),
    and the sparse training kernels (``sparse``: every eligible layer; ``auto``: each layer
    timed, the faster kept), each on its own copy of the network, min of ``repeat``."""
    import copy

    from ticketzoo.sparse.allocator import keep_freed_memory
    from ticketzoo.sparse.kernels import cpu_name
    from ticketzoo.sparse.training import enable_sparse_training
    from ticketzoo.cpu import cpu_bf16_native

    say = progress or (lambda _msg: None)
    kept = keep_freed_memory()
    arch = ticket.card.arch
    g = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, arch.in_channels, input_size, input_size), generator=g)
    y = torch.randint(0, arch.num_classes, (batch_size,), generator=g)
    base, masks = ticket.to_model(weights).train(), ticket.masks
    bf16 = cpu_bf16_native()
    ms, layers = {}, []
    for name in ("dense-fp32", "dense-best", "sparse", "auto"):
        net, xin, plan = copy.deepcopy(base), x, None
        if name == "dense-best":
            net, xin = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        if name in ("sparse", "auto"):
            say(f"{name}: preparing the sparse training kernels (the first run on a machine compiles them)")
            plan = enable_sparse_training(net, masks, name, example_shape=tuple(x.shape) if name == "auto" else None)
        say(f"timing {name}")
        ms[name] = min_time(training_step(net, masks, xin, y, amp=name == "dense-best" and bf16), repeat) * 1e3
        if plan is not None:
            layers = plan.layers()
            plan.restore()
    best = min(ms["dense-fp32"], ms["dense-best"])
    return {
        "ticket": ticket.name, "arch": arch.name, "sparsity": ticket.sparsity, "weights": weights,
        "input_size": input_size, "batch_size": batch_size, "threads": torch.get_num_threads(), "cpu": cpu_name(),
        "repeat": repeat, "allocator_tuned": kept,
        "dense_best": "channels_last + bf16 autocast" if bf16 else "channels_last fp32 (no native bf16 here)",
        "runs": {k: {"ms": round(v, 2), "images_per_s": round(batch_size / v * 1e3, 2)} for k, v in ms.items()},
        "speedup_vs_dense_fp32": round(ms["dense-fp32"] / ms["auto"], 3),
        "speedup_vs_best_dense": round(best / ms["auto"], 3),
        "layers_sparse": sum(r["kernel"] == "sparse" for r in layers), "layers_total": len(layers),
        "layers": layers,
    }
