"""``ticketzoo finetune [REF] --data DIR|NAME``: train a ticket on new images, mask kept."""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, err_console, print_json, pushed_json
from ticketzoo.cli.options import (TRAIN_FIELDS, complete_ticket_names, config_options, data_options, gather,
                                   output_options, finetune_config, publish_options, runtime_options, training_options)
from ticketzoo.config.finetune import FinetuneConfig, protocol_notes

_DEFAULTS = FinetuneConfig(protocol="auto")  # shown in --help: the command's defaults
_DATA_NOTES = {"split": "named datasets: V of the train set is val", "input_size": "the ticket's; convolutional "
               "tickets only (the paper fine-tuned ResNet-50 at 224)", "resize": "input size x 8/7"}


@click.command("finetune")
@click.argument("ref", required=False, shell_complete=complete_ticket_names)
@data_options(notes=_DATA_NOTES, without=("channels",))  # the ticket's
@click.option("--out", "out_dir", metavar="DIR", help="Output folder [default: ./finetuned/NAME].")
@click.option("--name", help="Name of the fine-tuned ticket [default: BASE-ft-FOLDER].")
@config_options(FinetuneConfig, ("init", "compare", "seeds", "folds", "protocol"), shown=_DEFAULTS)
@training_options(notes={**protocol_notes(TRAIN_FIELDS), "seed": "the first seed (the split has its own: --split-seed)",
                         "weight_init": "the new head's weights, and reinit/dense runs'"})
@runtime_options(notes={"device": "auto"})
@click.option("--resume", is_flag=True, help="Continue from the per-run checkpoints in --out.")
@click.option("--force", is_flag=True, help="Start over in --out: its result, logs and checkpoints are replaced.")
@publish_options(notes={"push": "the fine-tuned ticket"})
@output_options()
def command(ref, **opts) -> None:
    """Fine-tune a ticket (REF: name, name@rev, URL or path; default: the last pulled)
    on an image folder or a named dataset, keeping its mask exactly.

    Distributed: runs unchanged under `torchrun --nproc_per_node N -m ticketzoo finetune ...` (NCCL on
    GPUs, gloo on CPU; see docs/DISTRIBUTED.md). --batch-size is the global batch (each process
    trains BATCH/N); rank 0 alone writes and reports; resume with the same N.

    \b
    Examples:
      ticketzoo finetune fashionmnist-lenet-300-100-s79 --data ./my_images
      ticketzoo finetune NAME --data ./my_images --init rewind --compare dense,reinit --seeds 3
      ticketzoo finetune --data cifar10 --download --push --registry hf://my-lab
    """
    from ticketzoo.api import finetune_failed, finetune_started
    from ticketzoo.train import distributed

    o = gather(opts)
    distributed.ensure()  # under torchrun: join the group before any data is read
    if distributed.is_main():  # until its result is recorded, `push` without a ticket refuses
        _note(finetune_started, o["out_dir"])
    try:
        _finetune(ref, o)
    except BaseException as e:  # `push` without a ticket then says why there is no result
        if distributed.is_main():
            _note(finetune_failed, _failure(e))
        raise


def _failure(error: BaseException) -> str:
    """One line for ``state.json``: why the fine-tune ended without a result."""
    from ticketzoo.errors import TicketzooError

    if isinstance(error, (KeyboardInterrupt, click.Abort)):
        return "interrupted"
    if isinstance(error, TicketzooError):
        return " ".join(error.message.splitlines())[:300]
    if isinstance(error, click.ClickException):
        return " ".join(error.format_message().splitlines())[:300]
    return f"{type(error).__name__}: {' '.join(str(error).splitlines())}"[:300]


def _finetune(ref, o: dict) -> None:
    from ticketzoo.api import check_target, open_base, push, remember_finetuned
    from ticketzoo.cli.errors import flags_in
    from ticketzoo.cli.progress import library_output
    from ticketzoo.data.source import data_label
    from ticketzoo.finetune import NoTrainedRunError, default_name, finetune
    from ticketzoo.train import distributed

    if o["push"]:
        check_target(o["registry"])  # a --registry naming no folder fails now, not after training
    base = open_base(ref)
    if base.last_pulled:
        err_console.print(f"using the most recently pulled ticket: {base.ref}")
    ticket, base_ref, base_sha = base.ticket, base.ref, base.sha256
    name = o["name"] or default_name(ticket.name, data_label(o["data"], o["data_root"]))
    config = finetune_config(o, name=name)  # the recipe choices typed; the protocol fills in the rest
    out = Path(o["out_dir"]) if o["out_dir"] else Path("finetuned") / name
    as_json = o["as_json"]
    try:
        # --quiet: no progress (runs started, epochs); what the data and the setup are still shows
        with library_output(o["quiet"], hide="ticketzoo.progress") as progress:
            result = finetune(ticket, o["data"], config, out_dir=out, data_root=o["data_root"],
                              download=o["download"], base_ref=base_ref, base_sha256=base_sha, progress=progress,
                              resume=o["resume"], overwrite=o["force"],
                              word=lambda text: flags_in(text, click.get_current_context().command))
    except NoTrainedRunError as err:
        if not distributed.is_main():
            raise
        if as_json:
            print_json(_json(err.result, None))
        else:
            _print_tables(err.result, config.init)
        raise
    if not distributed.is_main():  # under torchrun every rank returns; one reports
        return
    _note(remember_finetuned, result.path)  # `ticketzoo push` without a source publishes it
    pushed = None
    if o["push"]:
        with err_console.status(f"pushing {result.ticket.name}"):
            pushed = push(str(result.path), o["registry"])
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


def _note(record, path) -> None:
    """Record the fine-tune in the registry state; a home that cannot take it (read-only,
    full) is a warning: the fine-tune itself goes on, or has succeeded."""
    from ticketzoo.errors import RegistryError, StorageError

    try:
        record(path)
    except (RegistryError, StorageError) as e:
        err_console.print(f"warning: {e.message} (`ticketzoo push` without a ticket will not know this fine-tune)")


def _print_tables(result, init: str) -> None:
    from ticketzoo.cli.errors import flags_in
    from ticketzoo.cli.render import finetune_runs, finetune_summary
    from ticketzoo.finetune import summarize

    if len(result.runs) > 1 or not result.runs[0].ok:
        console.print(finetune_runs(result.runs, result.saved))
    command = click.get_current_context().command
    console.print(finetune_summary(summarize(result.runs), init, word=lambda text: flags_in(text, command)))


def _json(result, pushed) -> dict:
    return {"ticket": str(result.path) if result.path else None,
            "name": result.ticket.name if result.ticket else None, "sha256": result.sha256,
            "metrics": str(result.metrics_path), "summary": result.metrics["summary"],
            "runs": [{k: r[k] for k in ("init", "seed", "status", "reason", "test_accuracy")}
                     for r in result.metrics["runs"]],
            "notes": result.metrics["notes"], "resolution": result.metrics.get("resolution"),
            "pushed": None if pushed is None else pushed_json(pushed)}
