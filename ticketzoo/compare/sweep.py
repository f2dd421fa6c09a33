"""``compare``: the papers' experiment on one dataset, resumable job by job.

Every ticket trains from θk (``rewind``) and, where it has them, from its source-trained
weights (``trained``); beside them, at each ticket's mask, a random re-initialisation
(``reinit``) and a random mask with the same per-layer counts (``random_prune``); and
the dense network from scratch once (:mod:`.plan`). All on the same train/val/test split
(drawn with the first seed), with the same recipe (``FinetuneConfig.protocol``), for every
seed; or, with ``FinetuneConfig.folds`` K > 1, on the same K stratified folds
(:mod:`ticketzoo.data.folds`: every image tested once per seed), one job per condition,
fold and seed, the recipe resolved once from fold 0's training images. Before training it
says what the design can resolve (:func:`ticketzoo.significance.resolution`). Then
``runs.csv``, ``results.json``, ``table.md`` and ``plot.png``/``.svg`` in ``out_dir``.

A rerun with the same settings runs only the jobs without a result (:mod:`.jobs`); other
settings in the same ``out_dir`` are refused unless ``force``. More seeds or tickets
later only add jobs: neither is part of the settings' fingerprint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from typing import Callable
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.compare import jobs as jobs_mod
from ticketzoo.compare import plot, report, stats
from ticketzoo.compare.plan import SweepTicket, make_plan
from ticketzoo.compare.runner import run_jobs
from ticketzoo.config import fingerprint as fingerprint_of
from ticketzoo.config.compare import CompareConfig
from ticketzoo.data import loading, source
from ticketzoo.data.folds import fold_dataset
from ticketzoo.errors import CheckpointError, ConfigError
from ticketzoo.fileio import atomic_write_bytes, refuse_registry, sha256_file
from ticketzoo.finetune import protocol
from ticketzoo.finetune import folds as ft_folds
from ticketzoo.progress import Progress, style
from ticketzoo.train.device import precision_of

SWEEP_FILE = "sweep.json"
OUTPUTS = ("runs.csv", "results.json", "table.md", "plot.png", "plot.svg")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareResult:
    records: list[dict]  # every finished run, in plan order
    rows: list  # stats.Row: the summary table
    failures: list[tuple[str, str]]  # (job key, error) of jobs that raised; rerun to retry
    out: Path
    files: dict[str, Path]
    notes: list[str]
    setup: dict
    ran: int = 0  # jobs run by this call (the others were already done)
    title: str = ""  # of the table and the plot
    caption: str = ""  # dataset, split sizes, seeds, runs trained, recipe
    main: bool = True  # False on a torchrun rank other than 0: its own jobs only, no report
    resolution: object = None  # significance.Resolution: what the design can resolve


def compare(tickets: list[SweepTicket], data, config: CompareConfig | None = None, *, out_dir,
            data_root=None, download: bool = False, progress: Progress | None = None, force: bool = False,
            word=str, target_finder: Callable[..., list[Path]] | None = None) -> CompareResult:
    """Run (or finish) the comparison of ``tickets`` on ``data`` in ``out_dir``.

    ``config.target_rounds`` also finds tickets on the comparison's training images with
    ``target_finder`` (:func:`ticketzoo.find.target.find_on_target`; compare itself does
    not depend on find): ``(ds, arch, train, rounds, *, out, seed, weight_init, progress)``
    to the ticket files of the pruned rounds.

    Under ``torchrun`` each process runs its share of the jobs (:mod:`.ranks`) and rank 0
    reports (logs, and shows the sweep on ``progress``); other ranks return a result with
    ``main`` False. ``word`` rewrites the `field` names in what is logged (the CLI: as its flags)."""
    from ticketzoo.train.distributed import alone, launch_layout

    config = config or CompareConfig()
    out = Path(out_dir)
    refuse_registry(out)  # before any folder is made: a refused run leaves nothing in a registry
    rank, world = launch_layout()  # under torchrun: this process runs its share of the jobs, alone
    with alone():
        return _compare(tickets, data, config, out, rank, world, data_root=data_root, download=download,
                        progress=progress, force=force, word=word, target_finder=target_finder)


def _compare(tickets, data, config, out, rank, world, *, data_root, download, progress, force, word,
             target_finder):
    from ticketzoo.compare import ranks
    from ticketzoo.ticket import Ticket
    from ticketzoo.compare.progress import SweepProgress

    ft = config.finetune

    def say(text: str, colour: str | None = None) -> None:  # rank 0 reports the sweep
        if not rank:
            log.info(text, extra=style(colour))

    make_plan(list(tickets), config.conditions, ft.seed_list())  # bad conditions fail before any data is read
    if ft.folds > 1 and config.target_rounds:
        raise ConfigError("a ticket found on the target trains on one split's training images; with folds "
                          "every image is a test image once", field="target_rounds",
                          hint="use `folds` 1 with `target_rounds`, or leave `target_rounds` out")
    if config.target_rounds and target_finder is None:
        raise ConfigError("`target_rounds` needs a `target_finder` to find the target's tickets with",
                          field="target_rounds", hint="pass target_finder=ticketzoo.find.target.find_on_target")
    if world > 1:
        ranks.check_launch()
    if force and world > 1:
        raise ConfigError("starting over is not possible under torchrun: the processes share the folder",
                          field="force", hint="run once with `force` on one process, or use another `out_dir`")
    first, loaded, resolved, fingerprint = _prepare(tickets, data, ft, data_root, download)
    arch, ds = first.card.arch, loaded[0]
    if force:
        shutil.rmtree(out / "jobs", ignore_errors=True)
        shutil.rmtree(out / "target", ignore_errors=True)
        for name in (SWEEP_FILE, *OUTPUTS):
            (out / name).unlink(missing_ok=True)
    _check_sweep(out, fingerprint)
    design = ft_folds.design(ds, ft)
    if ft.folds > 1:
        f0 = fold_dataset(ds, ft.folds, 0, ft.data.split, ft.split_seed)
        say(f"data: {source.description(ds)}, {len(ds.classes)} classes; {ft_folds.count(ds)} images in {ft.folds} "
            f"stratified folds (fold 0: train {len(f0.train)} / val {len(f0.val)} / test {len(f0.test)} images)")
    else:
        say(f"data: {source.description(ds)}, {len(ds.classes)} classes; train {len(ds.train)} / "
            f"val {len(ds.val)} / test {len(ds.test)} images")
    say(f"setup: {resolved.summary()}" + (f"; jobs shared by {world} processes" if world > 1 else ""))
    for i, line in enumerate(design.lines()):
        say(word(line), "yellow" if i else None)
    if config.target_rounds and rank:
        tickets = list(tickets) + ranks.wait_for_targets(out)
    elif config.target_rounds:
        say(f"finding a ticket on the target's training images ({config.target_rounds} IMP rounds)")
        files = target_finder(ds, arch, resolved.train, config.target_rounds, out=out, seed=ft.seed,
                              weight_init=ft.weight_init, progress=progress)
        found = [SweepTicket.of(t, p, sha256_file(p), t.card.source.dataset)  # family "target"
                 for p in files for t in [Ticket.load(p)]]
        if world > 1:
            ranks.publish_targets(out, found)
        tickets = list(tickets) + found
    plan, notes = make_plan(list(tickets), config.conditions, ft.seed_list(), ft.folds)
    ctx = jobs_mod.SweepContext(data if isinstance(data, Path) else str(data),
                                None if data_root is None else str(data_root), ft, resolved.train, str(out),
                                fingerprint)
    jobs_mod.share_data(ctx, arch, loaded)
    done = {j.key: r for j in plan if (r := jobs_mod.finished(out, j, fingerprint)) is not None}
    pending = [j for j in plan if j.key not in done]
    mine = ranks.share(plan, set(done), rank, world)
    if world > 1 and (gpu := ranks.rank_device(resolved.train.device)):
        ctx = dataclasses.replace(ctx, device=gpu)
    if world > 1:
        ranks.clear_failed(out, mine)
    ran, failures = run_jobs(mine, ctx, workers=config.jobs,
                             threads=_threads(ft, config.jobs, first, arch), done=len(done),
                             progress=None if rank else SweepProgress(progress))
    if world > 1:
        for job, error in failures:
            ranks.mark_failed(out, job, error)
        if rank:  # rank 0 reports the whole sweep
            return CompareResult([*ran.values()], [], [(j.key, e) for j, e in failures], out, {}, [], {},
                                 len(ran), main=False)
        failures = ranks.wait_for_jobs(out, pending, fingerprint)  # rank 0: logs that it waits
        ran = {j.key: r for j in pending if (r := jobs_mod.finished(out, j, fingerprint)) is not None}
    records = [r for j in plan if (r := done.get(j.key) or ran.get(j.key)) is not None]
    rows = stats.summarize(records)
    notes += [n for n in (stats.multiple_testing_note(rows),) if n]
    notes += [f"{j.key}: failed ({e}); rerun the same command to retry it" for j, e in failures]
    setup = _setup(ds, tickets, config, resolved, fingerprint, jobs=(len(plan), len(records), len(failures)))
    setup["resolution"] = design.to_dict()
    if ft.folds > 1:
        setup["folds"] = _folds_setup(ds, ft)
    title, caption = title_and_caption(rows, source.label(ds), ds.counts(), len(ds.classes), ft.seed_list(),
                                       resolved, folds=setup.get("folds"))
    files = _write_outputs(out, records, rows, setup, notes, title, caption)
    return CompareResult(records, rows, [(j.key, e) for j, e in failures], out, files, notes, setup, len(ran),
                         title, caption, resolution=design)


def _prepare(tickets, data, ft, data_root, download):
    """The first ticket, the data as loaded for its architecture, the recipe, the fingerprint."""
    from ticketzoo.ticket import Ticket

    first = Ticket.load(tickets[0].path)
    loaded = loading.load(data if isinstance(data, Path) else str(data), ft, first.card.arch,
                            data_root=data_root, download=download)
    train = loaded[0].train
    if ft.folds > 1:  # checks the folder can be folded; one recipe for every fold: fold 0's
        train = fold_dataset(loaded[0], ft.folds, 0, ft.data.split, ft.split_seed).train
    resolved = protocol.resolve(ft.protocol, ft.train, ft.overrides, len(train), weights=protocol.weights_of(first),
                                family=protocol.family_of(first))
    return first, loaded, resolved, _fingerprint(ft, resolved, loaded[0])


def _folds_setup(ds, ft) -> dict:
    """results.json's account of the folds: sizes, and each fold's test images."""
    parts = [fold_dataset(ds, ft.folds, f, ft.data.split, ft.split_seed) for f in range(ft.folds)]
    return {"k": ft.folds, "images": ft_folds.count(ds), "seed": ft.split_seed,
            "sizes": [{s: len(getattr(p, s)) for s in ("train", "val", "test")} for p in parts],
            "test": [[os.path.relpath(s.path, ds.root) for s in p.test] for p in parts]}


def _setup(ds, tickets, config, resolved, fingerprint, *, jobs: tuple[int, int, int]) -> dict:
    """What results.json records about the comparison besides its runs."""
    return {
        "data": {"name": source.label(ds), "root": str(ds.root), "layout": ds.layout,
                 "classes": list(ds.classes), "counts": ds.counts(), "num_skipped": len(ds.skipped)},
        "tickets": [dataclasses.asdict(t) for t in tickets], "conditions": list(config.conditions),
        "seeds": config.finetune.seed_list(),
        "config": dataclasses.replace(config.finetune, train=resolved.train).to_dict(),  # as it ran
        "recipe": resolved.to_dict(), "runtime": precision_of(resolved.train), "fingerprint": fingerprint,
        "jobs": dict(zip(("total", "finished", "failed"), jobs)),
    }


def title_and_caption(rows, ds_label: str, counts: dict, classes: int, seeds: list[int], recipe,
                      folds: dict | None = None) -> tuple[str, str]:
    families = sorted({r.cell.family for r in rows if r.cell.family})
    title = f"{', '.join(families) or 'dense'} tickets fine-tuned on {ds_label}"
    n = {s: sum(counts[s].values()) for s in ("train", "val", "test")}
    runs = sum(r.cell.runs for r in rows)
    trained = sum(r.cell.n for r in rows)
    t = recipe.train
    if folds:
        tests = sorted({f["test"] for f in folds["sizes"]})
        design = (f"{folds['images']} images in {folds['k']} stratified folds (test {'-'.join(map(str, tests))} "
                  f"images per fold, val carved from the training folds; every image tested once per seed); "
                  f"test accuracy pooled over the folds, ± std over seeds {', '.join(map(str, seeds))}, "
                  f"[Wilson 95% interval over the {folds['images']} images]; differences paired by fold and seed")
    else:
        design = (f"train {n['train']} / val {n['val']} / test {n['test']} images (one split for every run); "
                  f"test accuracy, mean ± std over seeds {', '.join(map(str, seeds))}")
    caption = (f"dataset: {ds_label}, {classes} classes, {design}; {trained} of {runs} runs trained (others excluded). "
               f"Recipe ({recipe.protocol}): {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, up to "
               f"{t.max_epochs} epochs, best validation epoch restored.")
    return title, caption


def _write_outputs(out: Path, records, rows, setup, notes, title: str, caption: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "runs.csv", "json": out / "results.json", "table": out / "table.md"}
    report.write_csv(files["csv"], records)
    report.write_results(files["json"], report.results_dict(records, rows, setup=setup, notes=notes))
    atomic_write_bytes(files["table"], (f"{title}\n\n{report.markdown(rows)}\n{caption}\n"
                                        + "".join(f"\n{n}" for n in notes)).encode())
    if any(r.cell.mean is not None for r in rows):
        files["png"], files["svg"] = plot.plot(rows, out / "plot", title=title, caption=caption)
    return files


# FinetuneConfig fields a sweep varies itself (jobs per seed and init; the recipe is hashed
# once resolved), so more seeds or inits later only add jobs.
SWEPT = ("seeds", "init", "compare", "train")


def _fingerprint(ft, resolved, ds) -> str:
    """What every job's result depends on; not the seed count, threads or workers."""
    recipe = dataclasses.replace(resolved.train, seed=0)
    return fingerprint_of({"config": ft.settings_dict(varied=SWEPT), "recipe": recipe.hash(),
                        "classes": list(ds.classes), "files": source.fingerprint(ds)})


def _check_sweep(out: Path, fingerprint: str) -> None:
    path = out / SWEEP_FILE
    try:
        found = json.loads(path.read_text()).get("fingerprint")
    except FileNotFoundError:
        found = None
    except (OSError, ValueError):
        raise CheckpointError(f"{path} cannot be read", field="out_dir", value=str(path)) from None
    if found is None and (theirs := [n for n in (*OUTPUTS, "jobs") if (out / n).exists()]):
        # no sweep.json: not a comparison this tool started there, so those files are someone else's
        raise CheckpointError(f"{out} holds {', '.join(theirs)} but no {SWEEP_FILE}: files ticketzoo did not "
                              "write would be replaced", field="out_dir", value=str(out),
                              hint="pass `force` to replace them, or use another `out_dir`")
    if found is not None and found != fingerprint:
        raise CheckpointError(f"{out} holds a comparison with other data or settings", field="out_dir",
                              value=str(out), hint="rerun with the same settings, pass `force` to start "
                                                   "over, or use another `out_dir`")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"fingerprint": fingerprint}).encode())


def _threads(ft, workers: int, ticket, arch) -> int:
    """Torch threads for jobs run in this process (workers always use one each)."""
    if workers > 1:
        return 1
    from ticketzoo.finetune.training import start_model
    from ticketzoo.train.threads import choose_threads

    model = start_model(ticket, "dense", arch.num_classes, 0)[0] if ft.threads is None else None
    return choose_threads(ft.threads, model, in_channels=arch.in_channels, input_size=arch.input_size)
