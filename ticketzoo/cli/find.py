"""``ticketzoo find``: winning tickets by iterative magnitude pruning with rewinding."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, print_columns, print_json, pushed_json
from ticketzoo.cli.options import (PAPER, alias_option, config_from, config_options, data_config, data_options,
                                   gather, output_options, publish_options, runtime_options, train_config,
                                   train_values, training_options)
from ticketzoo.config.find import FindRecipe, val_split

_ARCH_HELP = ("Architecture: torchvision (resnet18/34/50, vgg*_bn, ...) or LTH (lenet_300_100, "
              "conv2/4/6, cifar_resnet20/56, cifar_vgg16/19).")
_DEFAULTS = FindRecipe(arch="resnet50", source="data")  # the recipe's defaults, shown in --help


@click.command("find")
@click.option("--arch", required=True, help=_ARCH_HELP)
@data_options(notes={"data": "class folders are split by --split-seed",
                     "input_size": "28/32 for named datasets, 32 for folders",
                     "channels": "the dataset's; 3 for folders", "resize": "the input size",
                     "crop_pad": "4 with --flip is the CIFAR standard; off, as in Sabatelli et al."})
@alias_option("--val-fraction", "val_fraction", type=float)  # until 2026-12: named datasets' V of --split
@config_options(FindRecipe, ("rounds", "rate", "sparsities", "rewind", "scope", "head_rate", "exclude_head",
                             "exclude_first_conv"), shown=_DEFAULTS)
@alias_option("--init", "weight_init", type=click.Choice(["xavier", "default"]))  # --weight-init until 2026-11
@click.option("--control", type=click.Choice(["none", "reinit", "random-prune", "random_prune"]), default="none",
              show_default=True, help="Also train a baseline each round: reinit (same mask, fresh "
              "init) or random-prune (random mask, same per-layer sparsity, θk weights; also spelled "
              "random_prune, as in compare --conditions).")
@config_options(FindRecipe, ("control_at",))
@training_options(defaults=PAPER, notes={"max_epochs": "per round"})
@click.option("--width", type=float, default=None, help="Channel multiplier of the LTH architectures.")
@click.option("--run-dir", "--out", "run_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Runs go to RUN_DIR/<source>-<arch>-<recipe hash>/ (or RUN_DIR itself when it "
                   "is a run folder); re-running the same recipe resumes.")
@runtime_options(defaults={"device": "auto"})
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop before a round that would end after this many seconds, "
              "costed at the median epoch so far (re-run, or --carry-in on another machine, to continue).")
@click.option("--carry-out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="At the end, write log.json and the last round's ticket here: all a machine "
                   "that keeps nothing needs to continue the run.")
@click.option("--carry-in", type=click.Path(exists=True, file_okay=False), default=None,
              metavar="DIR", help="Start a new run folder from a --carry-out folder of the same recipe.")
@click.option("--description", default="", help="A sentence put before each card's description.")
@click.option("--source-description", default="", help="Truthful provenance of the data, for the cards.")
@publish_options(notes={"push": "every round's ticket"})
@output_options()
def command(**opts) -> None:
    """Find winning tickets: train, prune RATE by magnitude, rewind to θk, repeat ROUNDS times.

    Every round emits a ticket <source>-<arch>-s<NN> (NN: percent pruned) with weight sets
    `rewind` (θk) and `trained`. Defaults follow Sabatelli et al. (ResNet-50, Table 4): SGD
    Nesterov, lr 0.1, momentum 0.9, weight decay 1e-5, batch 64, LR x0.1 at epochs 50/60/75,
    early stopping (patience 5), rate 0.2, k = 2 epochs, Xavier init.

    Resumable: every option except --device, --workers, --data-root/the folder's location and
    the descriptions is part of the recipe hash that names the run folder; re-running the same
    command continues where it stopped (killed runs included) and yields bitwise-identical
    tickets on CPU. Tickets record the run's start time as `created` ($SOURCE_DATE_EPOCH
    when set).

    Distributed: runs unchanged under `torchrun --nproc_per_node N -m ticketzoo find ...` (NCCL on
    GPUs, gloo on CPU; see docs/DISTRIBUTED.md). --batch-size is the global batch (each process
    trains BATCH/N); rank 0 alone writes and reports; resume with the same N.

    Every round is judged as finetune judges a run: ok, diverged (NaN/inf, or the train loss
    exploded) or chance (test accuracy not above the majority class). A round that did not
    train saves no ticket. A winning-ticket round that did not train ends the run, and exit
    code 1 when no ticket was saved (round 0, the dense network, or round 1); a control that
    did not train is recorded and the run goes on.

    \b
    Examples:
      ticketzoo find --arch lenet_300_100 --data fashionmnist --data-root /data/fashion-mnist \\
          --optimizer adam --lr 1.2e-3 --rounds 12 --rewind 0 --scope layerwise --out runs
      ticketzoo find --arch conv2 --data ./images --rounds 5 --control reinit --push
    """
    from ticketzoo.cli.progress import library_output
    from ticketzoo.cli.render import find_rounds
    from ticketzoo.find import find_tickets, resolve_data
    from ticketzoo.train import distributed

    o = gather(opts)
    spec = resolve_data(o["data"], o["data_root"])
    values = train_values(o)
    epochs = values["max_epochs"]
    values["milestones"] = tuple(m for m in values["milestones"] if m < epochs)
    data = {"input_size": o["input_size"] or spec.native_size or 32,
            "channels": o["channels"] or spec.native_channels or 3}
    if o.get("val_fraction") is not None:  # the old flag: named datasets read only V of --split
        data["split"] = val_split(o["val_fraction"])
    recipe = config_from(
        FindRecipe, o, source=spec.source, data_kind=spec.kind, data=data_config(o, **data),
        train=train_config(o, values),  # CPU precision "auto": find resolves it per run
        rounds=len(o["sparsities"]) if o["sparsities"] else o["rounds"],
        control=None if o["control"] == "none" else o["control"].replace("_", "-"),
        arch_kwargs={"width": o["width"]} if o["width"] is not None else {})
    push, registry, as_json = o["push"], o["registry"], o["as_json"]
    pushed = []

    def on_ticket(path, result):
        if push and distributed.is_main():
            from ticketzoo.api import push as push_ticket

            pushed.append(push_ticket(str(path), registry))

    with library_output(o["quiet"]) as progress:  # --quiet: warnings only
        result = find_tickets(recipe, spec, run_dir=o["run_dir"], download=o["download"], workers=o["workers"],
                              progress=progress,
                              description=o["description"], source_description=o["source_description"],
                              threads=o["threads"], time_budget=o["time_budget"], carry_in=o["carry_in"],
                              on_ticket=on_ticket)
    if not distributed.is_main():  # under torchrun every rank returns; one reports
        return
    carried, nothing_to_carry = None, False
    if o["carry_out"]:
        from ticketzoo.find.carry import export_carry, last_round

        # A budget that ran out before round 1 finished leaves nothing a carry could hold:
        # the run folder alone continues it, which is what the note below says.
        nothing_to_carry = result.stopped and last_round(list(result.rounds), recipe) is None
        if not nothing_to_carry:
            carried = export_carry(result.run_dir, o["carry_out"])
    if as_json:
        print_json({"run_dir": str(result.run_dir), "recipe_hash": recipe.hash(),
                    "rounds": [r.to_dict() for r in result.rounds], "stopped": result.stopped,
                    "carry": None if carried is None else str(carried),
                    "pushed": [pushed_json(p) for p in pushed]})
        return
    console.print(f"IMP run {result.run_dir.name}")
    print_columns(*find_rounds(result.rounds))
    for r in result.rounds:
        if not r.trained:
            what = "ended the run" if r == result.failed else "the run went on"
            console.print(f"round {r.round} ({r.line}) did not train, no ticket: {r.status}: {r.reason}; {what}")
    where = (f"pushed {len(pushed)} ticket(s) to {registry or 'the local registry'}" if push
             else "not pushed (use --push, or `ticketzoo push FILE`)")
    console.print(f"tickets in {result.run_dir / 'tickets'}; {where}; "
                  f"logs: {result.run_dir / 'log.csv'}")
    if result.stopped:
        console.print("stopped early by --time-budget: run the same command again to continue")
    if carried is not None:
        console.print(f"carry for the next job in {carried.parent} (log.json, {carried.name})")
    if nothing_to_carry:
        console.print(f"nothing carried to {o['carry_out']}: no pruning round has finished yet (a carry "
                      f"starts after round 1); the run folder {result.run_dir} holds where it stands")
