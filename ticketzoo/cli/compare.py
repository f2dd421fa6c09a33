"""``ticketzoo compare TICKET... --data DIR``: tickets vs their controls vs dense, with a plot.

A TICKET is a ref (name, name@rev, URL or path) or a family: a name that is not a ticket
itself but the prefix of tickets named ``NAME-sNN`` (NN digits) in the catalog or the local
registry stands for all of them, by NN.
"""

from __future__ import annotations

from pathlib import Path

import click

from ticketzoo.cli.console import console, print_json
from ticketzoo.cli.options import (TRAIN_FIELDS, complete_sweep_names, config_options, data_options, gather,
                                   output_options, finetune_config, runtime_options, training_options)
from ticketzoo.config.compare import CompareConfig
from ticketzoo.config.finetune import FinetuneConfig, protocol_notes

_DEFAULTS = CompareConfig()  # shown in --help: the command's defaults (3 seeds, protocol auto, every condition)


@click.command("compare")
@click.argument("tickets", nargs=-1, required=True, metavar="TICKET...", shell_complete=complete_sweep_names)
@data_options(notes={"split": "drawn once, with --split-seed, for every run", "input_size": "the tickets'",
                     "resize": "input size x 8/7"}, without=("channels",))  # the tickets'
@training_options(notes=protocol_notes(TRAIN_FIELDS))
@runtime_options()
@output_options()
@config_options(CompareConfig, ("conditions",), shown=_DEFAULTS)
@config_options(FinetuneConfig, ("seeds", "folds", "protocol"), shown=_DEFAULTS.finetune)
@config_options(CompareConfig, ("jobs", "target_rounds"), shown=_DEFAULTS)
@click.option("--out", "out_dir", metavar="DIR", help="Output folder [./compared/FAMILY-on-DATA].")
@click.option("--force", is_flag=True, help="Start over: delete the jobs and results in --out first.")
def command(tickets, conditions, jobs, target_rounds, out_dir, force, **opts) -> None:
    """Train each TICKET from θk and from its trained weights, beside a random reinit and a
    random pruning of its mask and the dense network from scratch, on the same splits and
    seeds; write a table, runs.csv, results.json and plot.png/.svg. Rerun to resume.

    Distributed: under `torchrun --nproc_per_node N [--nnodes M ...] -m ticketzoo compare ...`
    each process runs every N-th job alone (on several machines, --out must be on a shared
    disk); rank 0 writes the report. See docs/DISTRIBUTED.md.

    \b
    Examples:
      ticketzoo compare fashionmnist-lenet-300-100-s79 fashionmnist-lenet-300-100-s93 --data ./images
      ticketzoo compare NAME --data ./images --conditions rewind,random-prune,dense --seeds 5
    """
    from ticketzoo.cli.errors import flags_in
    from ticketzoo.cli.progress import library_output
    from ticketzoo.compare import compare
    from ticketzoo.find.target import find_on_target
    opts = gather(opts)
    conditions = conditions.replace("random-prune", "random_prune")  # find --control's spelling
    # as finetune builds it: the same run trains the same way through either command
    config = finetune_config(opts)
    sweep = resolve_tickets(tickets)
    data = opts["data"]
    out = Path(out_dir) if out_dir else Path("compared") / f"{sweep[0].family}-on-{_label(data)}"
    with library_output(opts["quiet"]) as progress:  # --quiet: warnings only
        result = compare(sweep, data, CompareConfig(config, conditions, jobs, target_rounds), out_dir=out,
                         data_root=opts.get("data_root"), download=opts["download"], progress=progress, force=force,
                         word=lambda text: flags_in(text, click.get_current_context().command),
                         target_finder=find_on_target)
    if not result.main:  # another torchrun process: rank 0 reports the sweep
        return
    if opts["as_json"]:
        from ticketzoo.compare.report import row_dict

        print_json({"out": str(result.out), "files": {k: str(v) for k, v in result.files.items()},
                    "summary": [row_dict(r) for r in result.rows], "notes": result.notes,
                    "resolution": result.resolution.to_dict() if result.resolution else None,
                    "failed": [{"key": k, "error": e} for k, e in result.failures]})
    else:
        _print(result)
    if result.records and not any(r["status"] == "ok" for r in result.records):
        raise click.ClickException(f"no run trained ({len(result.records)} diverged or at chance): nothing "
                                   f"to compare; every run is in {result.files['csv']} (try a lower --lr)")
    if result.failures:
        raise click.ClickException(f"{len(result.failures)} job(s) failed (first: {result.failures[0][0]}: "
                                   f"{result.failures[0][1]}); the others are in {result.out}; rerun the same "
                                   "command to retry them")


def _print(result) -> None:
    from ticketzoo.cli.render import compare_summary

    if not console.is_terminal:  # logs and pipes: one line per row (rich assumes 80 columns there)
        console.width = max(console.width, 140)
    console.print(compare_summary(result.rows, title=result.title, caption=result.caption))
    for note in result.notes:
        console.print(note, style="yellow", markup=False)
    files = ", ".join(str(p) for p in result.files.values())
    console.print(f"{len(result.records)} runs ({result.ran} run by this call, "
                  f"{len(result.records) - result.ran} found done); wrote {files}", markup=False)


def resolve_tickets(refs) -> list:
    """The tickets named: refs, and families expanded to every ``NAME-sNN`` by NN."""
    from ticketzoo.compare import SweepTicket, family_members
    from ticketzoo.fileio import sha256_file
    from ticketzoo.api import list_entries, open_ticket, ticket_path
    from ticketzoo.registry.refs import parse_ref

    names = None
    out = []
    for text in refs:
        ref = parse_ref(text)
        expanded = [text]
        if ref.kind == "name" and not ref.revision:
            names = names if names is not None else {e.name for e, _ in list_entries()}
            if text not in names:
                expanded = family_members(text, names) or [text]
        for item in expanded:
            ticket, entry = open_ticket(item)
            if entry is not None:
                path, sha = entry.file, entry.sha256
            else:
                path = Path(ticket.path) if ticket.path else ticket_path(item)
                sha = sha256_file(path)
            out.append(SweepTicket.of(ticket, path, sha))
    return out


def _label(data: str) -> str:
    """``data``'s label (:func:`ticketzoo.data.source.data_label`) as a folder name."""
    import re

    from ticketzoo.data.source import data_label

    return re.sub(r"[^A-Za-z0-9._-]+", "-", data_label(data)).strip("-") or "data"
