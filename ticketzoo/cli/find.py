"""``ticketzoo find``: winning tickets by iterative magnitude pruning with rewinding."""

from __future__ import annotations

import click

from ticketzoo.cli.console import console, err_console, print_json

_ARCH_HELP = ("Architecture: torchvision (resnet18/34/50, vgg*_bn, ...) or LTH (lenet_300_100, "
              "conv2/4/6, cifar_resnet20/56, cifar_vgg16/19).")
_SCOPE_HELP = ("global: all prunable tensors form one pool (the head included); layerwise: each "
               "tensor loses RATE, the output layer RATE/2 (Frankle & Carbin). --head-rate sets "
               "the head's own rate in either scope.")


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{what} must be comma-separated numbers, got {text!r}") from None


@click.command("find")
@click.option("--arch", required=True, help=_ARCH_HELP)
@click.option("--data", required=True, metavar="NAME|FOLDER",
              help="cifar10, cifar100, fashionmnist, mnist, svhn, or an image folder "
                   "(train/val/test subfolders, or class folders split by --data-seed); write ./NAME "
                   "for a folder named like a dataset.")
@click.option("--data-root", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Folder with the dataset's files: the IDX files for (fashion)mnist, e.g. "
                   "/usr/share/datasets/fashion-mnist, or torchvision's dataset folder.")
@click.option("--download", is_flag=True, help="Download a named dataset into --data-root.")
@click.option("--strict", is_flag=True, help="Fail on an unreadable image instead of skipping and counting it.")
@click.option("--rounds", type=int, default=31, show_default=True,
              help="Pruning rounds (R rounds train R+1 times; round 0 is dense).")
@click.option("--rate", type=float, default=0.2, show_default=True,
              help="Fraction of the remaining prunable weights removed per round, in (0, 1).")
@click.option("--rewind", default="2ep", show_default=True,
              help="Rewind step k: 0 (θ0, original LTH), 2ep or 500it (late resetting).")
@click.option("--scope", type=click.Choice(["global", "layerwise"]), default="global",
              show_default=True, help=_SCOPE_HELP)
@click.option("--head-rate", type=float, default=None, help="The output layer's own pruning rate.")
@click.option("--exclude-head", is_flag=True, help="Never prune the output layer.")
@click.option("--exclude-first-conv", is_flag=True, help="Never prune the first convolution.")
@click.option("--augment", is_flag=True,
              help="Randomly crop (4 px zero padding) and flip training images, on the device "
                   "(off by default, as in Sabatelli et al.).")
@click.option("--init", type=click.Choice(["xavier", "default"]), default="xavier",
              show_default=True, help="Weight init (xavier: Sabatelli et al. Table 4).")
@click.option("--seed", type=int, default=0, show_default=True, help="Init and training seed.")
@click.option("--control", type=click.Choice(["none", "reinit", "random-prune"]), default="none",
              show_default=True, help="Also train a baseline each round: reinit (same mask, fresh "
              "init) or random-prune (random mask, same per-layer sparsity, θk weights).")
@click.option("--epochs", type=int, default=100, show_default=True, help="Max epochs per round.")
@click.option("--patience", type=int, default=5, show_default=True,
              help="Early stopping on val loss (0: off).")
@click.option("--milestones", default="50,60,75", show_default=True,
              help="LR x gamma at these epochs (step schedule; 'none' for a constant LR).")
@click.option("--schedule", type=click.Choice(["step", "cosine"]), default="step", show_default=True,
              help="step: LR x gamma at each milestone; cosine: LR decays to 0 over --epochs.")
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Linear LR warm-up over the first epochs (large batches).")
@click.option("--gamma", type=float, default=0.1, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default="sgd", show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--nesterov/--no-nesterov", default=True, show_default=True)
@click.option("--weight-decay", type=float, default=1e-5, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--input-size", type=int, default=None,
              help="Image side the network sees (default: 28/32 for named datasets, 32 for folders).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None,
              help="Image channels (default: the dataset's; 3 for folders).")
@click.option("--width", type=float, default=None, help="Channel multiplier of the LTH architectures.")
@click.option("--data-seed", type=int, default=0, show_default=True, help="Seed of the data split.")
@click.option("--split", default="0.8,0.1,0.1", show_default=True, help="Folders: train,val,test fractions.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Named datasets: share of the train set held out for validation.")
@click.option("--run-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Runs go to RUN_DIR/<source>-<arch>-<recipe hash>/ (or RUN_DIR itself when it "
                   "is a run folder); re-running the same recipe resumes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=int, default=None, help="DataLoader workers (default: by device).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: 1 for small models, every core for large ones).")
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision on CUDA.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="NHWC memory format on CUDA.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop before a round that would end after this many seconds "
              "(re-run, or --carry-in on another machine, to continue).")
@click.option("--carry-out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="At the end, write log.json and the last round's ticket here: all a machine "
                   "that keeps nothing needs to continue the run.")
@click.option("--carry-in", type=click.Path(exists=True, file_okay=False), default=None,
              metavar="DIR", help="Start a new run folder from a --carry-out folder of the same recipe.")
@click.option("--description", default="", help="A sentence put before each card's description.")
@click.option("--source-description", default="", help="Truthful provenance of the data, for the cards.")
@click.option("--push", is_flag=True, help="Publish every ticket to --registry (default: local).")
@click.option("--registry", metavar="URL", default=None, help="file:///DIR or hf://ORG[/REPO].")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def command(arch, data, data_root, download, strict, rounds, rate, rewind, scope, head_rate, exclude_head,
            exclude_first_conv, augment, init, seed, control, epochs, patience, milestones,
            schedule, warmup_epochs, gamma,
            optimizer, lr, momentum, nesterov, weight_decay, batch_size, input_size, channels,
            width, data_seed, split, val_fraction, run_dir, device, workers, threads, amp, channels_last,
            time_budget, carry_out, carry_in, description, source_description, push, registry,
            quiet, as_json) -> None:
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
    """
    from ticketzoo.errors import ConfigError
    from ticketzoo.find import FindRecipe, find_tickets, resolve_data
    from ticketzoo.train import TrainConfig

    spec = resolve_data(data, data_root)
    if milestones.strip().lower() in ("", "none") or schedule == "cosine":
        stones = ()
    else:
        stones = tuple(int(x) for x in _floats(milestones, "--milestones"))
    fractions = _floats(split, "--split")
    if len(fractions) != 3:
        raise ConfigError(f"--split needs three fractions (train,val,test), got {split!r}")
    train = TrainConfig(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
                        weight_decay=weight_decay, batch_size=batch_size, max_epochs=epochs,
                        milestones=tuple(m for m in stones if m < epochs), gamma=gamma,
                        patience=patience or None, seed=seed, device=device, amp=amp,
                        channels_last=channels_last, schedule=schedule, warmup_epochs=warmup_epochs)
    recipe = FindRecipe(
        arch=arch, source=spec.source, data_kind=spec.kind, rounds=rounds, rate=rate,
        scope=scope, rewind=rewind, head_rate=head_rate, exclude_head=exclude_head,
        exclude_first_conv=exclude_first_conv, init=init, seed=seed,
        control=None if control == "none" else control, data_seed=data_seed, split=fractions,
        val_fraction=val_fraction, input_size=input_size or spec.native_size or 32,
        channels=int(channels) if channels else spec.native_channels or 3,
        arch_kwargs={"width": width} if width is not None else {}, train=train, augment=augment)
    pushed = []

    def on_ticket(path, result):
        if push:
            from ticketzoo.registry.api import push as push_ticket

            pushed.append(push_ticket(str(path), registry))

    result = find_tickets(recipe, spec, run_dir=run_dir, download=download, workers=workers, strict=strict,
                          console=err_console, quiet=quiet, description=description,
                          source_description=source_description, threads=threads,
                          time_budget=time_budget, carry_in=carry_in, on_ticket=on_ticket)
    carried = None
    if carry_out:
        from ticketzoo.find.carry import export_carry

        carried = export_carry(result.run_dir, carry_out)
    if as_json:
        print_json({"run_dir": str(result.run_dir), "recipe_hash": recipe.hash(),
                    "rounds": [r.to_dict() for r in result.rounds], "stopped": result.stopped,
                    "carry": None if carried is None else str(carried),
                    "pushed": [p.__dict__ for p in pushed]})
        return
    console.print(result.table())
    where = (f"pushed {len(pushed)} ticket(s) to {registry or 'the local registry'}" if push
             else "not pushed (use --push, or `ticketzoo push FILE`)")
    console.print(f"tickets in {result.run_dir / 'tickets'}; {where}; "
                  f"logs: {result.run_dir / 'log.csv'}")
    if result.stopped:
        console.print("stopped early by --time-budget: run the same command again to continue")
    if carried is not None:
        console.print(f"carry for the next job in {carried.parent} (log.json, {carried.name})")
