"""The sparse CPU runtime against every dense option, on ResNet-50 and LeNet-300-100 tickets.

    python scripts/bench_sparse_cpu.py [--threads 2] [--repeat 5] [--sparsity 0.89,0.97,0.99]
        [--batch 1,8] [--size 224,32] [--ticket REF ...] [--no-lenet] [--json out.json]

For each network, batch and input size it times, min-of-N after a warm-up, in this one run:
dense fp32 eager, dense bf16 autocast, dense frozen TorchScript (``torch.jit.freeze`` +
``optimize_for_inference``), a torch.sparse prototype (BN folded, im2col + CSR matmul per
layer: ``sparsify(kernel="torch-sparse")``) and ours (``sparsify``: direct sparse kernels
where timing picks them), and prints ours as a ratio to each, with our largest relative
error against dense fp32.

ResNet-50 masks: no ResNet-50 ticket is in the zoo yet, so by default a torchvision
``resnet50`` (10 classes, seeded init) is pruned by global magnitude (``ticketzoo.prune``)
to each ``--sparsity``; ``--ticket REF`` times real tickets instead (any arch). A dense
network's speed does not depend on its weights' values, so the dense options are timed
once per (batch, size), on the unpruned network. LeNet is the bundled
``fashionmnist-lenet-300-100-s93`` at its 28 px input.
"""

from __future__ import annotations

import json
import time
import warnings

import click


def _variants(model, x):
    """name -> zero-argument forward pass; the TorchScript build is timed and reported."""
    import torch

    from ticketzoo.sparse.bench import dense_runners

    runners = dense_runners(model, x)
    start = time.perf_counter()
    with torch.no_grad():
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model.eval())))
        frozen(x)
    build = time.perf_counter() - start

    def ts():
        with torch.no_grad():
            return frozen(x)

    runners["dense-torchscript"] = ts
    return runners, build


def _time_all(runners, repeat):
    from ticketzoo.sparse.bench import min_time

    return {name: min_time(fn, repeat) * 1e3 for name, fn in runners.items()}


def _report(title, dense_ms, sparse_ms, error, layers, out):
    ours = sparse_ms["ours"]
    click.echo(f"\n{title}  (ours: {layers[0]} of {layers[1]} layers sparse; max rel. error vs dense fp32 "
               f"{error:.1e})")
    click.echo(f"  {'variant':<20}{'ms':>10}{'img/s':>10}{'ours is':>10}")
    for name, ms in {**dense_ms, **sparse_ms}.items():
        click.echo(f"  {name:<20}{ms:>10.2f}{out['batch'] / ms * 1e3:>10.1f}{ms / ours:>9.2f}x")
    best = min(dense_ms, key=dense_ms.get)
    click.echo(f"  ours vs dense fp32 {dense_ms['dense-fp32'] / ours:.2f}x, vs the best dense ({best}) "
               f"{dense_ms[best] / ours:.2f}x")
    out.update(dense_ms=dense_ms, sparse_ms=sparse_ms, max_relative_error=error, layers_sparse=layers[0],
               layers_total=layers[1], vs_dense_fp32=dense_ms["dense-fp32"] / ours,
               vs_best_dense=dense_ms[best] / ours, best_dense=best)


def _sparse_times(model, x, repeat):
    """Ours and the torch.sparse prototype on ``model`` (weights already pruned)."""
    import torch

    from ticketzoo.sparse import sparsify
    from ticketzoo.sparse.bench import min_time, relative_error

    start = time.perf_counter()
    ours = sparsify(model, example=x.shape)
    setup = time.perf_counter() - start
    proto = sparsify(model, kernel="torch-sparse", cache=False)
    ms = {"torch-sparse-proto": min_time(lambda: proto(x), repeat) * 1e3, "ours": min_time(lambda: ours(x), repeat) * 1e3}
    with torch.no_grad():
        error = relative_error(ours(x), model(x))
    rows = ours.layers()
    return ms, error, (sum(r["kernel"] != "dense" for r in rows), len(rows)), setup


@click.command()
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeat", type=int, default=5, show_default=True, help="Timed runs per variant (min reported).")
@click.option("--sparsity", "sparsities", default="0.89,0.97,0.99", show_default=True)
@click.option("--batch", "batches", default="1,8", show_default=True)
@click.option("--size", "sizes", default="224,32", show_default=True)
@click.option("--scope", type=click.Choice(["global", "layerwise"]), default="global", show_default=True,
              help="How the ResNet-50 masks are made (ticketzoo.prune's scope).")
@click.option("--ticket", "tickets", multiple=True, help="Time this ticket too (a ref); repeatable.")
@click.option("--no-resnet", is_flag=True, help="Skip the pruned torchvision ResNet-50s.")
@click.option("--no-lenet", is_flag=True, help="Skip the LeNet-300-100 ticket.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write results here.")
def main(threads, repeat, sparsities, batches, sizes, scope, tickets, no_resnet, no_lenet, json_out):
    import torch
    import torchvision

    import ticketzoo
    from ticketzoo.sparse.allocator import keep_freed_memory
    from ticketzoo.sparse.kernels import cpu_name

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit's deprecation notices
    torch.set_num_threads(threads)
    tuned = keep_freed_memory()  # process-wide, before any timing: every variant gets it
    batches = [int(b) for b in batches.split(",")]
    sizes = [int(s) for s in sizes.split(",")]
    click.echo(f"{cpu_name()}, {threads} threads, torch {torch.__version__}, fastest of {repeat} runs each"
               + (", glibc allocator keeping freed memory (all variants)" if tuned else ""))
    results = []

    if not no_resnet:
        torch.manual_seed(0)
        base = torchvision.models.resnet50(num_classes=10).eval()
        pruned = {}
        for s in (float(v) for v in sparsities.split(",")):
            model = torchvision.models.resnet50(num_classes=10).eval()
            model.load_state_dict(base.state_dict())
            masks = ticketzoo.prune(model, s, scope=scope)
            masks.apply(model)
            pruned[s] = model
            density = {n: float(m.float().mean()) for n, m in masks.items()}
            densest = max(density, key=density.get)
            click.echo(f"resnet50 s{round(s * 100)} ({scope} magnitude, seeded init): stem density "
                       f"{density['conv1.weight']:.3f}, densest {densest} {density[densest]:.3f}, "
                       f"{sum(v > 0.1 for v in density.values())} of {len(density)} layers above 0.1, "
                       f"{sum(v == 0 for v in density.values())} empty")
        for size in sizes:
            for batch in batches:
                x = torch.randn(batch, 3, size, size)
                runners, build = _variants(base, x)
                dense_ms = _time_all(runners, repeat)
                for s, model in pruned.items():
                    sparse_ms, error, layers, setup = _sparse_times(model, x, repeat)
                    out = {"net": f"resnet50-s{round(s * 100)}", "scope": scope, "sparsity": s, "batch": batch, "size": size,
                           "threads": threads, "torchscript_build_s": build, "sparse_setup_s": setup}
                    _report(f"ResNet-50 s{round(s * 100)} ({scope} magnitude), batch {batch}, {size} px", dense_ms,
                            sparse_ms, error, layers, out)
                    results.append(out)

    refs = list(tickets) + ([] if no_lenet else ["fashionmnist-lenet-300-100-s93"])
    for ref in refs:
        ticket = ticketzoo.load(ref)
        a = ticket.card.arch
        weights = "trained" if "trained" in ticket.weight_sets else "rewind"
        model = ticket.to_model(weights).eval()
        for batch in batches:
            for size in sizes if a.name.startswith(("resnet", "cifar_resnet", "cifar_vgg")) else [a.input_size]:
                x = torch.randn(batch, a.in_channels, size, size)
                runners, build = _variants(model, x)
                dense_ms = _time_all(runners, repeat)
                sparse_ms, error, layers, setup = _sparse_times(model, x, repeat)
                out = {"net": ticket.name, "sparsity": ticket.sparsity, "batch": batch, "size": size,
                       "threads": threads, "torchscript_build_s": build, "sparse_setup_s": setup}
                _report(f"{ticket.name} ({ticket.sparsity:.1%} sparse, {weights}), batch {batch}, {size} px",
                        dense_ms, sparse_ms, error, layers, out)
                results.append(out)
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"cpu": cpu_name(), "threads": threads, "repeat": repeat, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
