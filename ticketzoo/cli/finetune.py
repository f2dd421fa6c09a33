"""``ticketzoo finetune [REF] --data DIR``: train a ticket on an image folder, mask kept."""

from __future__ import annotations

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
@click.option("--data", "data_dir", required=True, metavar="DIR",
              help="Image folder: DIR/<class>/* or DIR/{train,val,test}/<class>/*.")
@click.option("--out", "out_dir", metavar="DIR", help="Output folder [default: ./finetuned/NAME].")
@click.option("--name", help="Name of the fine-tuned ticket [default: BASE-ft-FOLDER].")
@click.option("--init", type=click.Choice(_INITS), default="rewind", show_default=True,
              help="Start from θk (rewind), source-trained θ (trained), fresh weights under the "
                   "mask (reinit) or with no mask (dense).")
@click.option("--compare", metavar="INIT[,INIT]", default="",
              help="Also train these inits on the same splits and seeds, e.g. dense,reinit.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs per init: seed, seed+1, ...")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed; also seeds the split.")
@click.option("--split", metavar="T,V,T", help="Train,val,test fractions for DIR/<class>/* [0.8,0.1,0.1].")
@click.option("--strict", is_flag=True, help="Fail on an unreadable file instead of skipping it.")
@click.option("--augment", is_flag=True, help="Add horizontal flips to the random crop.")
@click.option("--resize", type=int, help="Working size images are cached at [input size x 8/7].")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), help="[sgd]")
@click.option("--lr", type=float, help="Initial learning rate [0.1].")
@click.option("--momentum", type=float, help="[0.9]")
@click.option("--nesterov/--no-nesterov", default=None, help="[nesterov]")
@click.option("--weight-decay", type=float, help="[1e-5]")
@click.option("--batch-size", type=int, help="[64]")
@click.option("--max-epochs", type=int, help="[100]")
@click.option("--milestones", metavar="E[,E]", help="Annealing epochs, LR x gamma at each [50,60,75].")
@click.option("--gamma", type=float, help="LR factor at each milestone [0.1].")
@click.option("--patience", type=int, help="Early-stopping patience on val loss, 0 = off [5].")
@click.option("--device", help="auto, cpu, cuda or cuda:N [auto].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision on CUDA [amp].")
@click.option("--memory-budget", type=float, default=2048, show_default=True, metavar="MB",
              help="Decoded-image cache size; a larger folder is streamed from disk.")
@click.option("--workers", type=int, help="DataLoader workers [auto].")
@click.option("--resume", is_flag=True, help="Continue from the per-epoch checkpoints in --out.")
@click.option("--force", is_flag=True, help="Overwrite a result already in --out.")
@click.option("--push", "do_push", is_flag=True, help="Publish the fine-tuned ticket.")
@click.option("--registry", metavar="URL", help="With --push: file:///DIR or hf://ORG[/REPO].")
@click.option("--quiet", is_flag=True, help="No per-epoch lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(ref, data_dir, out_dir, name, init, compare, seeds, seed, split, strict, augment,
            resize, optimizer, lr, momentum, nesterov, weight_decay, batch_size, max_epochs,
            milestones, gamma, patience, device, amp, memory_budget, workers, resume, force,
            do_push, registry, quiet, as_json) -> None:
    """Fine-tune a ticket (REF: name, name@rev, URL or path; default: the last pulled)
    on an image folder, keeping its mask exactly."""
    from pathlib import Path

    from ticketzoo.finetune import FinetuneConfig, default_name, finetune, summarize, table
    from ticketzoo.train import TrainConfig

    ticket, base_ref, base_sha = _load_base(ref)
    given = dict(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov,
                 weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
                 gamma=gamma, device=device, amp=amp, seed=seed)
    if milestones is not None:
        given["milestones"] = tuple(int(m) for m in _floats(milestones, "--milestones"))
    if patience is not None:
        given["patience"] = patience or None
    train_cfg = TrainConfig(**{k: v for k, v in given.items() if v is not None})
    name = name or default_name(ticket.name, Path(data_dir).resolve().name)
    extra = {"split": _floats(split, "--split")} if split else {}
    config = FinetuneConfig(train=train_cfg, init=init, compare=compare, seeds=seeds, strict=strict,
                            augment=augment, resize=resize, name=name, workers=workers,
                            memory_budget_bytes=int(memory_budget * 2**20), **extra)
    out = Path(out_dir) if out_dir else Path("finetuned") / name
    result = finetune(ticket, data_dir, config, out_dir=out, base_ref=base_ref, base_sha256=base_sha,
                      console=err_console, resume=resume, overwrite=force, quiet=quiet)
    pushed = None
    if do_push:
        from ticketzoo.registry.api import push

        with err_console.status(f"pushing {result.ticket.name}"):
            pushed = push(str(result.path), registry)
    if as_json:
        print_json({"ticket": str(result.path), "name": result.ticket.name, "sha256": result.sha256,
                    "metrics": str(result.metrics_path), "summary": result.metrics["summary"],
                    "notes": result.metrics["notes"],
                    "pushed": None if pushed is None else pushed.__dict__})
        return
    console.print(table(summarize(result.runs), config.init))
    first = result.runs[0]
    if first.test is not None:
        per = ", ".join(f"{c} {100 * a:.0f}%" if a is not None else f"{c} -"
                        for c, a in zip(result.data.classes, first.test.per_class_accuracy))
        console.print(f"per-class test accuracy ({first.init}, seed {first.seed}): {per}")
    if result.data.skipped:
        console.print(f"skipped {len(result.data.skipped)} unreadable file(s): listed in metrics.json")
    console.print(f"saved {result.ticket.name} ({100 * result.ticket.sparsity:.1f}% sparse) to "
                  f"{result.path}; metrics in {result.metrics_path}")
    if pushed is not None:
        console.print(f"pushed {pushed.name}@{pushed.revision} to {pushed.url or pushed.location}")


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
