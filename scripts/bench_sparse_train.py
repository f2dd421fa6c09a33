"""One training step of a sparse ResNet-50 on the CPU: dense fp32, the best dense option, and ours.

    python scripts/bench_sparse_train.py [--threads 2] [--repeat 3] [--sparsity 0.89,0.97,0.99]
        [--batch 8,32] [--size 224,32] [--runtimes dense-fp32,dense-best,sparse,auto]
        [--ticket REF] [--layers] [--sparseprop-path DIR] [--json out.json]

A step is forward, cross-entropy, backward, SGD (momentum 0.9) and the mask re-zeroing the
training loop does (``MaskSet.apply``), timed min-of-``--repeat`` after a warm-up step, every
figure in this one run, each runtime on its own copy of the network:

  dense-fp32   torch's dense kernels, NCHW fp32
  dense-best   channels_last, plus bf16 autocast where the CPU has bf16 arithmetic (AVX-512 BF16
               or AMX: ``ticketzoo.train.device.cpu_bf16_native``), else fp32 channels_last
  sparse       ``enable_sparse_training(runtime="sparse")``: every masked conv/linear sparse
  auto         ``enable_sparse_training(runtime="auto")``: each layer timed dense and sparse at
               the step's shapes, the faster kept (choices cached per machine; the one-off
               calibration time is printed, not counted)

Masks: by default torchvision's ``resnet50`` (1000 classes, seeded init) with masks from global
magnitude pruning of *random* weights (i.i.d. normal scores over every conv and linear weight,
the head included), so every layer keeps about the same fraction; the init weights are kept
where the mask keeps them. (Pruning torchvision's own init globally would not do: its scale
differs per layer, which leaves the stem and the 1x1 convs dense and prunes layer4 and the head
entirely.) ``--ticket REF`` times a real ticket's masks (``ticketzoo.load``) instead; its
sparsity is its own (pass its ``--size``). Dense speed does not depend on the masks: the dense runtimes are timed
once per (size, batch).

``--layers`` adds a per-layer table for each configuration: forward+backward of each masked
layer at its input shape, dense and ours (and SparseProp's, where it is installed and takes the
layer), and what the rest of the step costs. SparseProp (``pip install sparseprop``) builds from
source and needs pybind11's headers: ``CPLUS_INCLUDE_PATH=$(python -c "import torch, os;
print(os.path.dirname(torch.__file__))")/include pip install sparseprop`` (or a separate venv
whose site-packages ``--sparseprop-path`` adds). Run on a quiet machine: other work on the
cores shows as noise in every figure.
"""

from __future__ import annotations

import copy
import json
import sys
import time

import click

RUNTIMES = ("dense-fp32", "dense-best", "sparse", "auto")


def _csv(kind):
    return lambda ctx, param, value: [kind(v) for v in str(value).split(",") if v.strip()]


def random_magnitude_masks(model, sparsity: float, seed: int = 0):
    """Masks keeping ``1 - sparsity`` of every conv and linear weight together, by the magnitude
    of i.i.d. normal scores: global pruning with (about) the same density in every layer."""
    import torch
    from torch import nn

    from ticketzoo.masks import Mask
    from ticketzoo.pruning import magnitude_prune

    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    scores = {n: torch.randn(state[n].shape, generator=g) for n in names}
    return magnitude_prune(scores, Mask.ones_like(model, names), sparsity)


def sparseprop_ms(module, shape, needs_gx: bool, repeat: int) -> float | None:
    """SparseProp's forward+backward of ``module`` (ms, the faster of its two vectorisations), or
    None where it does not take the layer."""
    import torch
    from torch import nn

    from ticketzoo.sparse.bench import min_time

    try:
        from sparseprop.modules import SparseConv2d, SparseLinear
    except ImportError:
        return None
    if isinstance(module, nn.Conv2d):
        if (module.groups != 1 or module.stride[0] not in (1, 2) or module.kernel_size[0] != module.kernel_size[1]
                or module.stride[0] != module.stride[1] or module.padding[0] != module.padding[1]):
            return None
        options = [SparseConv2d.from_dense(module, vectorizing_over_on=v) for v in (False, True)]
    else:
        options = [SparseLinear.from_dense(module)]
    best = None
    x = torch.randn(shape).requires_grad_(needs_gx)
    for sp in options:
        inputs = [t for t in (x, sp.W_val) if t.requires_grad]
        try:
            with torch.enable_grad():
                gy = torch.randn(sp(x).shape)
                ms = min_time(lambda: torch.autograd.grad(sp(x), inputs, gy), repeat) * 1e3
        except (RuntimeError, AssertionError):
            continue
        best = ms if best is None else min(best, ms)
    return best


def layer_table(model, masks, shape, repeat: int, step_ms: float) -> list[dict]:
    """Per masked layer: forward+backward ms dense and ours (and SparseProp's) at its input shape,
    timed afresh (no cache), plus one row for the rest of the step."""
    from torch import nn

    from ticketzoo.masks import MaskSet
    from ticketzoo.sparse import enable_sparse_training

    probe = copy.deepcopy(model)
    MaskSet(probe, masks).apply()
    plan = enable_sparse_training(probe, masks, runtime="auto", example_shape=shape, cache=False, reps=repeat)
    rows = plan.layers()
    plan.restore()
    modules = dict(probe.named_modules())
    for r in rows:
        m = modules[r["name"]]
        r["sparseprop_ms"] = None
        if r["input"] is not None and isinstance(m, (nn.Conv2d, nn.Linear)):
            r["sparseprop_ms"] = sparseprop_ms(m, r["input"], r["grad_input"], repeat)
    layers_best = sum(min(r["dense_ms"], r["sparse_ms"]) for r in rows if r["dense_ms"] is not None)
    rows.append({"name": "(rest of the step)", "kind": "", "shape": None, "density": None, "kernel": "",
                 "dense_ms": None, "sparse_ms": None, "input": None, "sparseprop_ms": None,
                 "rest_ms": round(step_ms - layers_best, 2)})
    return rows


def print_layers(rows) -> None:
    click.echo(f"  {'layer':<26} {'weight':<20} {'dens.':>6} {'input':<20} {'kernel':<7} {'dense':>8} "
               f"{'ours':>8} {'ratio':>6} {'sprop':>8}")
    total = {"dense": 0.0, "ours": 0.0, "sprop": 0.0, "sprop_n": 0}
    for r in rows:
        if r["name"] == "(rest of the step)":
            continue
        d, s, p = r["dense_ms"], r["sparse_ms"], r["sparseprop_ms"]
        if d is not None:
            total["dense"] += d
            total["ours"] += s
        if p is not None:
            total["sprop"] += p
            total["sprop_n"] += 1
        fmt = lambda v: f"{v:8.2f}" if v is not None else f"{'-':>8}"  # noqa: E731
        click.echo(f"  {r['name']:<26} {str(r['shape']):<20} {r['density'] or 0:6.3f} {str(r['input']):<20} "
                   f"{r['kernel']:<7} {fmt(d)} {fmt(s)} {(d / s if d and s else 0):6.2f} {fmt(p)}")
    click.echo(f"  {'sum of layers':<76} {total['dense']:8.2f} {total['ours']:8.2f} "
               f"{total['dense'] / max(total['ours'], 1e-9):6.2f} "
               f"{(total['sprop'] if total['sprop_n'] else float('nan')):8.2f}")
    rest = rows[-1]["rest_ms"]
    click.echo(f"  rest of the step with auto's choices (batch-norms, ReLUs, adds, pooling, loss, SGD, masks): "
               f"{rest:.1f} ms")


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True, help="timed steps per figure (min is kept)")
@click.option("--sparsity", "sparsities", default="0.89,0.97,0.99", show_default=True, callback=_csv(float))
@click.option("--batch", "batches", default="8,32", show_default=True, callback=_csv(int))
@click.option("--size", "sizes", default="224,32", show_default=True, callback=_csv(int))
@click.option("--runtimes", default=",".join(RUNTIMES), show_default=True, callback=_csv(str))
@click.option("--ticket", "ticket_ref", default=None, help="time this ticket's masks instead of random ones")
@click.option("--num-classes", type=int, default=1000, show_default=True)
@click.option("--layers", "with_layers", is_flag=True, help="per-layer table: where the time goes")
@click.option("--sparseprop-path", default=None, help="a site-packages folder holding sparseprop")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None)
def main(threads, repeat, sparsities, batches, sizes, runtimes, ticket_ref, num_classes, with_layers,
         sparseprop_path, json_out) -> None:
    import torch
    import torchvision

    from ticketzoo.sparse import enable_sparse_training
    from ticketzoo.sparse.allocator import keep_freed_memory
    from ticketzoo.sparse.bench import min_time, training_step
    from ticketzoo.sparse.kernels import TRAIN_SOURCE, cpu_name, train_kernels, why_not
    from ticketzoo.train.device import cpu_bf16_native

    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise click.BadParameter(f"unknown runtime(s) {unknown}; choose from {', '.join(RUNTIMES)}")
    torch.set_num_threads(threads)
    kept = keep_freed_memory()  # before any timing: every runtime under the same allocator
    if sparseprop_path:
        sys.path.append(sparseprop_path)
    try:
        import sparseprop  # noqa: F401

        sprop = "SparseProp: installed, per-layer column with --layers"
    except ImportError as e:
        sprop = f"SparseProp: not available ({e}); see this script's docstring to install it"
    bf16 = cpu_bf16_native()
    best_label = "channels_last + bf16 autocast" if bf16 else "channels_last fp32 (no native bf16 here)"
    compiled = train_kernels() is not None
    click.echo(f"CPU: {cpu_name()}; {threads} thread(s); torch {torch.__version__}; allocator tuned: {kept}")
    click.echo(f"dense-best = {best_label}; sparse kernels: "
               f"{'compiled' if compiled else 'unavailable: ' + str(why_not(source=TRAIN_SOURCE))}; {sprop}")
    click.echo(f"one training step (forward, backward, SGD, masks), min of {repeat} after a warm-up; ms\n")

    channels = 3
    if ticket_ref:
        import ticketzoo

        ticket = ticketzoo.load(ticket_ref)
        channels = ticket.card.arch.in_channels
        configs = [(f"ticket {ticket.name} (s{ticket.sparsity:.3f})", ticket.to_model(ticket.ready_weights),
                    ticket.masks)]
    else:
        base = torchvision.models.resnet50(num_classes=num_classes)
        configs = [(f"resnet50 s{s:g}", base, random_magnitude_masks(base, s)) for s in sparsities]

    results = []
    click.echo(f"{'config':<28} {'size':>4} {'batch':>5} {'runtime':<11} {'ms':>9} {'vs fp32':>8} {'vs best':>8}")
    for size in sizes:
        for batch in batches:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(batch, channels, size, size, generator=g)
            y = torch.randint(0, num_classes, (batch,), generator=g)
            dense_ms: dict[str, float] = {}
            for label, model, masks in configs:
                if ticket_ref:  # labels within the ticket's head
                    classes = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
                    y = torch.randint(0, classes, (batch,), generator=g)
                ms: dict[str, float] = {}
                extra: dict[str, object] = {}
                for runtime in runtimes:
                    if runtime.startswith("dense") and runtime in dense_ms:
                        ms[runtime] = dense_ms[runtime]  # dense speed does not depend on the masks
                        continue
                    net = copy.deepcopy(model).train()
                    xin = x
                    if runtime == "dense-best":
                        net = net.to(memory_format=torch.channels_last)
                        xin = x.contiguous(memory_format=torch.channels_last)
                    plan = None
                    if runtime in ("sparse", "auto"):
                        start = time.perf_counter()
                        plan = enable_sparse_training(net, masks, runtime=runtime,
                                                      example_shape=x.shape if runtime == "auto" else None)
                        if runtime == "auto":
                            extra["auto_calibration_s"] = round(time.perf_counter() - start, 2)
                            extra["auto_sparse_layers"] = sum(r["kernel"] == "sparse" for r in plan.layers())
                            extra["layers"] = len(plan.layers())
                    step = training_step(net, masks, xin, y, amp=runtime == "dense-best" and bf16)
                    ms[runtime] = min_time(step, repeat) * 1e3
                    if runtime.startswith("dense"):
                        dense_ms[runtime] = ms[runtime]
                    if plan is not None:
                        plan.restore()
                    del net, step
                for runtime in runtimes:
                    vs = lambda base: f"{ms[base] / ms[runtime]:7.2f}x" if base in ms else f"{'-':>8}"  # noqa: E731
                    click.echo(f"{label:<28} {size:>4} {batch:>5} {runtime:<11} {ms[runtime]:9.1f} "
                               f"{vs('dense-fp32')} {vs('dense-best')}")
                if "auto" in ms:
                    click.echo(f"{'':<28} auto: {extra['auto_sparse_layers']} of {extra['layers']} masked layers "
                               f"sparse; calibration {extra['auto_calibration_s']} s (once per machine, cached)")
                row = {"config": label, "size": size, "batch": batch, "ms": {k: round(v, 2) for k, v in ms.items()},
                       **extra}
                if with_layers:
                    step_ms = ms.get("auto") or ms.get("sparse") or ms.get("dense-fp32")
                    row["layer_table"] = layer_table(model, masks, tuple(x.shape), repeat, step_ms)
                    click.echo(f"\n  where the time goes: {label}, {size} px, batch {batch} "
                               f"(forward+backward per layer, ms; sprop = SparseProp)")
                    print_layers(row["layer_table"])
                    click.echo("")
                results.append(row)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu_name(), "threads": threads, "torch": torch.__version__, "repeat": repeat,
                       "dense_best": best_label, "sparseprop": sprop, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
