"""``ticketzoo finetune [REF] --data DIR|NAME``: train a ticket on new images, mask kept."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, err_console, print_json

_INITS = ("rewind", "trained", "reinit", "dense")  # ticketzoo.finetune.INITS (no torch import here)


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    from ticketzoo.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


@click.command("finetune")
@click.argument("ref", required=False)
@click.option("--data", "data", required=True, metavar="NAME|DIR",
              help="Image folder (DIR/<class>/* or DIR/{train,val,test}/<class>/*) or a dataset "
                   "name (cifar10, cifar100, fashionmnist, mnist, svhn; write ./NAME for a folder "
                   "named like one).")
@click.option("--data-root", metavar="DIR", default="data", show_default=True,
              help="Named datasets: the folder holding the torchvision dataset files.")
@click.option("--download", is_flag=True, help="Named datasets: download into --data-root.")
@click.option("--out", "out_dir", metavar="DIR", help="Output folder [default: ./finetuned/NAME].")
@click.option("--name", help="Name of the fine-tuned ticket [default: BASE-ft-FOLDER].")
@click.option("--init", type=click.Choice(_INITS), default="rewind", show_default=True,
              help="Start from θk (rewind), source-trained θ (trained), fresh weights under the "
                   "mask (reinit) or with no mask (dense).")
@click.option("--compare", metavar="INIT[,INIT]", default="",
              help="Also train these inits on the same splits and seeds, e.g. dense,reinit.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs per init: seed, seed+1, ...")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed; also seeds the split.")
@click.option("--split", metavar="T,V,T", help="Train,val,test fractions for DIR/<class>/* [0.8,0.1,0.1]; "
                                               "named datasets: V of the train set is val.")
@click.option("--strict", is_flag=True, help="Fail on an unreadable file instead of skipping it.")
@click.option("--augment", is_flag=True, help="Add horizontal flips to the random crop.")
@click.option("--resize", type=int, help="Working size images are cached at [input size x 8/7].")
@click.option("--protocol", type=click.Choice(["auto", "paper"]), default="auto", show_default=True,
              help="auto: recipe sized to the number of training images (AdamW, warm-up + cosine; "
                   "docs/FINETUNE.md); paper: Sabatelli et al. Table 4 (SGD Nesterov lr 0.1, batch 64, "
                   "LR x0.1 at 50/60/75, patience 5). The flags below override either.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), help="[auto: adamw; paper: sgd]")
@click.option("--lr", type=float, help="Initial learning rate [auto: 1e-3 (sgd 1e-2); paper: 0.1].")
@click.option("--momentum", type=float, help="SGD momentum / Adam beta1 [0.9].")
@click.option("--nesterov/--no-nesterov", default=None, help="[paper: nesterov]")
@click.option("--weight-decay", type=float, help="[auto: 5e-4; paper: 1e-5]")
@click.option("--batch-size", type=int, help="[auto: by training images, 8-64; paper: 64]")
@click.option("--max-epochs", type=int, help="[auto: 30-100 by steps; paper: 100]")
@click.option("--schedule", type=click.Choice(["step", "cosine"]), help="[auto: cosine; paper: step]")
@click.option("--warmup-epochs", type=int, help="Linear LR warm-up epochs [auto: 5% of epochs; paper: 0].")
@click.option("--milestones", metavar="E[,E]|none", help="Step schedule: LR x gamma at these epochs [paper: 50,60,75].")
@click.option("--gamma", type=float, help="LR factor at each milestone [0.1].")
@click.option("--patience", type=int, help="Early-stopping patience on val loss, 0 = off "
                                           "[auto: max(10, epochs/4); paper: 5].")
@click.option("--device", help="auto, cpu, cuda or cuda:N [auto].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA [amp].")
@click.option("--threads", type=int, help="CPU threads for torch [auto: 1 for small models, all cores "
                                          "for large ones].")
@click.option("--memory-budget", type=float, default=2048, show_default=True, metavar="MB",
              help="Decoded-image cache size; a larger folder is streamed from disk.")
@click.option("--workers", type=int, help="DataLoader workers [auto].")
@click.option("--resume", is_flag=True, help="Continue from the per-run checkpoints in --out.")
@click.option("--force", is_flag=True, help="Start over in --out: its result, logs and checkpoints are replaced.")
@click.option("--push", "do_push", is_flag=True, help="Publish the fine-tuned ticket.")
@click.option("--registry", metavar="URL", help="With --push: file:///DIR or hf://ORG[/REPO].")
@click.option("--quiet", is_flag=True, help="No per-epoch lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(ref, data, data_root, download, out_dir, name, init, compare, seeds, seed, split, strict,
            augment, resize, protocol, optimizer, lr, momentum, nesterov, weight_decay, batch_size,
            max_epochs, schedule, warmup_epochs, milestones, gamma, patience, device, amp, threads,
            memory_budget, workers, resume, force, do_push, registry, quiet, as_json) -> None:
    """Fine-tune a ticket (REF: name, name@rev, URL or path; default: the last pulled)
    on an image folder or a named dataset, keeping its mask exactly."""
    from ticketzoo.finetune import FinetuneConfig, NoTrainedRunError, default_name, finetune

    ticket, base_ref, base_sha = _load_base(ref)
    train_cfg, overrides = _train_config(
        dict(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
             weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
             schedule=schedule, warmup_epochs=warmup_epochs, gamma=gamma),
        milestones, patience, dict(device=device, amp=amp, seed=seed))
    name = name or default_name(ticket.name, _data_label(data, data_root))
    extra = {"split": _floats(split, "--split")} if split else {}
    config = FinetuneConfig(train=train_cfg, init=init, compare=compare, seeds=seeds, strict=strict,
                            augment=augment, resize=resize, name=name, workers=workers,
                            memory_budget_bytes=int(memory_budget * 2**20), protocol=protocol,
                            overrides=overrides, threads=threads, **extra)
    out = Path(out_dir) if out_dir else Path("finetuned") / name
    try:
        result = finetune(ticket, data, config, out_dir=out, data_root=data_root, download=download,
                          base_ref=base_ref, base_sha256=base_sha, console=err_console, resume=resume,
                          overwrite=force, quiet=quiet)
    except NoTrainedRunError as err:
        if as_json:
            print_json(_json(err.result, None))
        else:
            _print_tables(err.result, config.init)
        raise
    pushed = None
    if do_push:
        from ticketzoo.registry.api import push

        with err_console.status(f"pushing {result.ticket.name}"):
            pushed = push(str(result.path), registry)
    if as_json:
        print_json(_json(result, pushed))
        return
    _print_tables(result, config.init)
    saved = result.saved
    if saved.test is not None:
        per = ", ".join(f"{c} {100 * a:.0f}%" if a is not None else f"{c} -"
                        for c, a in zip(result.data.classes, saved.test.per_class_accuracy))
        console.print(f"per-class test accuracy ({saved.init}, seed {saved.seed}): {per}")
    if result.data.skipped:
        console.print(f"skipped {len(result.data.skipped)} unreadable file(s): listed in metrics.json")
    console.print(f"saved {result.ticket.name} ({saved.init}, seed {saved.seed}; "
                  f"{100 * result.ticket.sparsity:.1f}% sparse) to {result.path}; "
                  f"metrics in {result.metrics_path}")
    if pushed is not None:
        console.print(f"pushed {pushed.name}@{pushed.revision} to {pushed.url or pushed.location}")


def _train_config(given: dict, milestones: str | None, patience: int | None, runtime: dict):
    """The TrainConfig of the flags given, and the names of the recipe fields they set."""
    from ticketzoo.train import TrainConfig

    given = {k: v for k, v in given.items() if v is not None}
    if milestones is not None:
        text = milestones.strip().lower()
        given["milestones"] = () if text in ("", "none") else \
            tuple(int(m) for m in _floats(milestones, "--milestones"))
    elif given.get("schedule") == "cosine":
        given["milestones"] = ()  # the paper's milestones belong to its step schedule
    if patience is not None:
        given["patience"] = patience or None  # 0: no early stopping (kept: None is a value here)
    values = {**given, **{k: v for k, v in runtime.items() if v is not None}}
    return TrainConfig(**values), tuple(sorted(given))


def _data_label(data: str, data_root: str | None) -> str:
    from ticketzoo.errors import DataError
    from ticketzoo.find.sources import resolve_data

    try:
        return resolve_data(data, data_root).source
    except DataError:
        return Path(data).resolve().name


def _print_tables(result, init: str) -> None:
    from ticketzoo.finetune import runs_table, summarize, table

    if len(result.runs) > 1 or not result.runs[0].ok:
        console.print(runs_table(result.runs, result.saved))
    console.print(table(summarize(result.runs), init))


def _json(result, pushed) -> dict:
    return {"ticket": str(result.path) if result.path else None,
            "name": result.ticket.name if result.ticket else None, "sha256": result.sha256,
            "metrics": str(result.metrics_path), "summary": result.metrics["summary"],
            "runs": [{k: r[k] for k in ("init", "seed", "status", "reason", "test_accuracy")}
                     for r in result.metrics["runs"]],
            "notes": result.metrics["notes"], "pushed": None if pushed is None else pushed.__dict__}


def _load_base(ref: str | None):
    """The base ticket, its display ref and its file's sha256."""
    from ticketzoo.errors import TicketNotFoundError
    from ticketzoo.fileio import sha256_file
    from ticketzoo.registry.api import last_pulled, load, ticket_path
    from ticketzoo.ticket import Ticket

    if ref is None:
        entry = last_pulled()
        if entry is None:
            raise TicketNotFoundError("no ticket given and none pulled yet",
                                      hint="pass REF, or run `ticketzoo pull NAME` first "
                                           "(`ticketzoo list` shows the zoo)")
        err_console.print(f"using the most recently pulled ticket: {entry.name}@{entry.revision}")
        return Ticket.load(entry.file), f"{entry.name}@{entry.revision}", entry.sha256
    ticket, entry = load(ref)
    if entry is not None:
        return ticket, f"{entry.name}@{entry.revision}", entry.sha256
    return ticket, ticket.name, sha256_file(ticket_path(ref))
