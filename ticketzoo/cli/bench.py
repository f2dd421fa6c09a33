"""``ticketzoo bench REF``: the ticket dense (fp32, bf16) vs the sparse runtime on this machine."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, human_size, print_json


@click.command("bench")
@click.argument("ref")
@click.option("--input-size", type=click.IntRange(1, 4096), default=None,
              help="Image side in pixels [default: the card's].")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Images per timed call (1: latency; larger: throughput).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="CPU threads [default: all cores].")
@click.option("--repeat", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Timed runs per variant; the fastest is reported.")
@click.option("--weights", type=click.Choice(["rewind", "trained"]), default=None,
              help="Weight set [default: trained when the ticket has it, else rewind].")
@click.option("--train", "training", is_flag=True,
              help="Time one training step (forward, backward, SGD, masks kept) instead of inference: dense "
                   "fp32, the best dense option and the sparse training kernels (every layer, and auto).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(ref: str, input_size: int | None, batch_size: int, threads: int | None, repeat: int,
            weights: str | None, training: bool, as_json: bool) -> None:
    """Time a ticket on the CPU: dense fp32 eager, dense bf16 autocast and the sparse runtime;
    with --train, one training step dense and on the sparse training kernels.

    \b
    Examples:
      ticketzoo bench fashionmnist-lenet-300-100-s93
      ticketzoo bench NAME --input-size 224 --batch-size 8 --threads 2 --json
      ticketzoo bench cifar10-resnet50-s97 --train --input-size 224 --batch-size 8
    """
    import os

    import torch

    from ticketzoo.api import load
    from ticketzoo.sparse.bench import bench_ticket, bench_ticket_training

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads or cores or 1)
    ticket = load(ref)
    weights = weights or ticket.ready_weights
    if weights not in ticket.weight_sets:
        raise click.BadParameter(f"ticket {ticket.name} has no {weights!r} weights "
                                 f"(it has: {', '.join(ticket.weight_sets)})", param_hint="--weights")
    size = input_size or ticket.card.arch.input_size
    say = None if as_json else (lambda msg: err_console.print(msg, style="dim"))
    run = bench_ticket_training if training else bench_ticket
    result = run(ticket, weights=weights, input_size=size, batch_size=batch_size, repeat=repeat, progress=say)
    if as_json:
        print_json(result)
        return
    (_training_table if training else _table)(result)


def _training_table(r: dict) -> None:
    from rich.table import Table

    console.print(f"{r['ticket']} ({r['arch']}, {r['sparsity']:.2%} sparse, {r['weights']} weights): one training "
                  f"step at batch {r['batch_size']}, {r['input_size']} px, on {r['threads']} threads of {r['cpu']}, "
                  f"fastest of {r['repeat']}")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("runtime", "step (ms)", "images/s", "vs dense fp32", "vs best dense"):
        table.add_column(col, justify="left" if col == "runtime" else "right")
    base, best = r["runs"]["dense-fp32"]["ms"], min(r["runs"]["dense-fp32"]["ms"], r["runs"]["dense-best"]["ms"])
    for name, run in r["runs"].items():
        table.add_row(name, f"{run['ms']:.1f}", f"{run['images_per_s']:.1f}", f"{base / run['ms']:.2f}x",
                      f"{best / run['ms']:.2f}x")
    console.print(table)
    console.print(f"dense-best: {r['dense_best']}; auto: {r['layers_sparse']} of {r['layers_total']} masked layers "
                  "on sparse kernels (each timed once per machine, the choice cached)")


def _table(r: dict) -> None:
    from rich.table import Table

    console.print(f"{r['ticket']} ({r['arch']}, {r['sparsity']:.2%} sparse, {r['weights']} weights): batch "
                  f"{r['batch_size']} at {r['input_size']} px on {r['threads']} threads of {r['cpu']}, "
                  f"fastest of {r['repeat']} runs")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("runtime", "latency (ms)", "images/s", "vs dense fp32"):
        table.add_column(col, justify="left" if col == "runtime" else "right")
    base = r["runs"]["dense-fp32"]["ms"]
    for name, run in r["runs"].items():
        table.add_row(name, f"{run['ms']:.2f}", f"{run['images_per_s']:.1f}", f"{base / run['ms']:.2f}x")
    console.print(table)
    kernels = "C++ kernels" if r["compiled_kernels"] else \
        f"torch.sparse: {r.get('kernels_unavailable') or 'the C++ kernels are not available'}"
    console.print(f"sparse runtime: {r['layers_sparse']} of {r['layers_total']} layers on sparse kernels "
                  f"({kernels}), max relative error vs dense fp32 {r['max_relative_error']:.1e}, "
                  f"set up in {r['sparse_setup_s']:.1f} s")
    if r.get("allocator_tuned"):
        console.print("allocator: glibc keeps freed activations (mallopt), for every runtime above")
    ratio = r["dense_safetensors_bytes"] / r["ticket_bytes"]
    console.print(f"file size: ticket {human_size(r['ticket_bytes'])}, dense safetensors "
                  f"{human_size(r['dense_safetensors_bytes'])} ({ratio:.1f}x smaller)")
    console.print(f"verdict: {r['verdict']}")
