"""Fine-tune a ticket on an image folder or a named dataset: head swap, masked training.

A call runs every init of ``config.inits`` for every seed on the same splits
(:mod:`.runs`), each ending ``ok``, ``diverged`` or ``chance``; it saves the ticket of the
first ``ok`` run of ``config.init`` and writes ``metrics.json`` with every run. When no
run of ``config.init`` trained, ``metrics.json`` is still written and
:class:`NoTrainedRunError` is raised. What is saved and how it is checked lives in
:mod:`.output`; the recipe (``auto``/``paper``) in :mod:`.protocol`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ticketzoo.config import fingerprint as fingerprint_of
from ticketzoo.data import loading, source
from ticketzoo.errors import CheckpointError, ConfigError, TicketzooError
from ticketzoo.fileio import atomic_write_bytes, refuse_registry
from ticketzoo.folder import write_ticket_folder
from ticketzoo.finetune import folds as folds_mod
from ticketzoo.finetune import images, metrics, protocol, report
from ticketzoo.config.finetune import FinetuneConfig, default_name
from ticketzoo.finetune.output import METRICS_FILE, check_masks, check_saved, make_ticket
from ticketzoo.finetune.training import RunResult, run_one, start_model
from ticketzoo.progress import Progress, progress_log, style
from ticketzoo.ticket import TICKET_FILE, Ticket
from ticketzoo.train.device import precision_of, resolve_device
from ticketzoo.train.platform import Platform
from ticketzoo.train.threads import MULTI_THREAD_MACS, choose_threads, forward_macs, set_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    ticket: Ticket | None  # the saved fine-tuned ticket; None when no run of config.init trained
    path: Path | None  # its file
    sha256: str | None
    metrics_path: Path
    runs: tuple[RunResult, ...]  # every run, in run order (config.init first)
    data: object  # the FolderDataset or NamedDataset
    metrics: dict  # what metrics.json holds
    saved: RunResult | None = None  # the run whose ticket was saved

    @property
    def test_accuracy(self) -> float | None:
        run = self.saved or self.runs[0]
        return run.test.accuracy if run.test else None


class NoTrainedRunError(TicketzooError, RuntimeError):
    """No run of the saved init trained; ``result`` holds every run and metrics.json's path."""

    def __init__(self, message: str, *, result: FinetuneResult, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.result = result


def finetune(ticket: Ticket, data: str | Path, config: FinetuneConfig | None = None, *,
             out_dir: str | Path, data_root: str | Path | None = None, download: bool = False,
             base_ref: str | None = None, base_sha256: str | None = None, progress: Progress | None = None,
             resume: bool = False, overwrite: bool = False, word=str, callbacks: tuple = ()) -> FinetuneResult:
    """Fine-tune ``ticket`` on ``data`` (a folder, or a dataset name read from ``data_root``).

    ``resume`` continues from the per-run checkpoints in ``out_dir`` (finished runs are not
    trained again); ``overwrite`` starts over. Without either, an ``out_dir`` holding a
    result or an unfinished run is refused. With ``config.folds`` K > 1 every init runs on
    every fold and seed (:mod:`ticketzoo.data.folds`); the saved ticket is the first ``ok``
    run of ``config.init`` (fold 0 first). ``word`` rewrites `field` names in what is logged;
    each run's start goes to :data:`~ticketzoo.progress.progress_log`, its epochs to ``progress``.
    ``callbacks`` (:class:`~ticketzoo.train.Callback`) join every run's training loop: their
    ``on_train_start`` marks each run's start (it sees the run's config and seed).
    """
    config = config or FinetuneConfig()
    ticket = _at_input_size(ticket, config.data.input_size)
    arch = ticket.card.arch
    _check_ticket(ticket, config)
    resolve_device(config.train.device)  # a GPU asked for and absent fails before the folder is decoded
    out = Path(out_dir)
    refuse_registry(out)  # before any folder is made: a refused run leaves nothing in a registry
    platform = Platform()
    platform.from_main(lambda: _check_output(out, resume, overwrite))  # rank 0 reads the folder
    with platform.main_first(download):  # one rank downloads; the others read what it wrote
        ds, sets = loading.load(data, config, arch, data_root=data_root, download=download)
    folds = folds_mod.folds_of(ds, sets, config, arch)  # {fold or None: (dataset, sets)}; checks the folder first
    resolved = protocol.resolve(config.protocol, config.train, config.overrides,
                                len(next(iter(folds.values()))[0].train), weights=protocol.weights_of(ticket),
                                family=protocol.family_of(ticket))
    info = images.source_images(ds)
    how = images.transform(info, channels=arch.in_channels, input_size=arch.input_size,
                           working=config.working_size(arch.input_size))
    report.describe_data(ds, sets)
    if config.folds > 1:
        f0 = next(iter(folds.values()))[0]
        log.info(f"folds: {config.folds} stratified folds over all {folds_mod.count(ds)} images, each init "
                 f"trained on every fold (fold 0: train {len(f0.train)} / val {len(f0.val)} / "
                 f"test {len(f0.test)} images)")
    log.log(logging.WARNING if how["downscale"] >= 2 else logging.INFO, images.describe(info, how))
    classes = len(ds.classes)
    threads, why = _threads(config.threads, start_model(ticket, config.init, classes, config.seed)[0], arch)
    setup = {"protocol": resolved.to_dict(), "threads": {"count": threads, "why": why},
             "runtime": precision_of(resolved.train),  # resolved per run, not hashed
             "images": {**info, **how},
             # as find records it: under torchrun, batch_size is the global batch shared by the ranks
             "processes": platform.describe(resolved.train.batch_size)}
    # which images every run tests on: equal for every seed (the split has its own seed)
    tests = {fold: source.test_sha256(d) for fold, (d, _) in folds.items()}
    setup["split"] = {"split_seed": config.split_seed, "test_sha256": tests[next(iter(tests))]}
    if config.folds > 1:
        setup["folds"] = {"k": config.folds, "sizes": [{s: len(getattr(d, s)) for s in ("train", "val", "test")}
                                                       for d, _ in folds.values()]}
    rt = setup["runtime"]
    log.info(f"setup: {resolved.summary()}; threads: {threads} ({why}); {rt['precision']}"
             f"{', channels_last' if rt['channels_last'] else ''} on {rt['device']}")
    if len(config.inits) > 1:  # a comparison: say what it can resolve
        design = folds_mod.design(ds, config)
        setup["resolution"] = design.to_dict()
        for i, line in enumerate(design.lines()):
            log.info(word(line), extra=style("yellow" if i else None))
    previous = set_threads(threads)
    try:
        # under torchrun: no rank reads the folder while rank 0 clears it
        platform.write(lambda: _prepare_output(out, start_over=overwrite and not resume))
        _check_resume(platform, out, config, resolved, ds, ticket, base_sha256, resume)
        runs, kept, total = [], None, len(config.inits) * config.seeds * len(folds)
        for init in config.inits:
            for fold, (_, fold_sets) in folds.items():
                where = "" if fold is None else f", fold {fold}"
                for seed in config.seed_list():
                    progress_log.info(f"run {len(runs) + 1}/{total}: init {init}{where}, seed {seed}",
                                      extra=style("bold"))
                    run, start, final = run_one(ticket, init, seed, classes, fold_sets, config,
                                                protocol.with_seed(resolved, seed), out, resume, fold=fold,
                                                progress=progress, callbacks=callbacks)
                    run = dataclasses.replace(run, test_sha256=tests[fold])
                    runs.append(run)
                    if not run.ok:
                        log.warning(f"{init}{where}, seed {seed}: {run.status}: {run.reason}; the other runs go on")
                    elif kept is None and init == config.init:
                        kept = (run, start, final)
    finally:
        set_threads(previous)
    ran = dataclasses.replace(config, train=resolved.train)  # the config as it ran, recorded
    return _save(platform, ticket, kept, runs, ds, ran, setup, out, base_ref, base_sha256)


def _at_input_size(ticket: Ticket, size: int | None) -> Ticket:
    """``ticket`` for ``size``-pixel images (its card says so); refused where the
    architecture's shapes depend on the input size (LeNet's first Linear layer)."""
    arch = ticket.card.arch
    if size is None or size == arch.input_size:
        return ticket
    from ticketzoo.models import check_input

    resized = ticket.with_card(arch=dataclasses.replace(arch, input_size=size), preprocess=None)  # re-declared when saved
    try:
        check_input(resized.to_model(), arch.in_channels, size)
    except TicketzooError as err:
        raise ConfigError(f"ticket {ticket.name!r} ({arch.name}) cannot take {size}x{size} images: "
                          f"{getattr(err, 'problem', err)}", field="input_size", value=size,
                          hint=f"its own input size is {arch.input_size}") from None
    return resized


def _save(platform, ticket, kept, runs, ds, config, setup, out, base_ref, base_sha256) -> FinetuneResult:
    common = dict(base=ticket, base_ref=base_ref, base_sha256=base_sha256, setup=setup)
    if kept is None:
        data = metrics.metrics_dict(runs, ds, config, saved=None, ticket=None, sha256=None, **common)
        platform.write(lambda: metrics.write_json(out / METRICS_FILE, data))  # under torchrun: rank 0
        result = FinetuneResult(None, None, None, out / METRICS_FILE, tuple(runs), ds, data)
        mine = [r for r in runs if r.init == config.init]
        why = "; ".join(f"seed {r.seed} {r.status}" for r in mine)
        hints = (["a lower `lr`"] if any(r.status == "diverged" for r in mine) else []) + \
                (["`protocol` auto"] if config.protocol != "auto" else []) + \
                (["more epochs, images or a larger test split"] if any(r.status == "chance" for r in mine) else [])
        raise NoTrainedRunError(
            f"no {config.init} run trained ({why}): no ticket saved; every run is in "
            f"{out / METRICS_FILE}", result=result, hint="try " + ", ".join(hints or ["more `seeds`"]))
    run, start, final = kept
    name = config.name or default_name(ticket.name, source.label(ds))
    new = make_ticket(ticket, {"start": start, "final": final}, run, ds, config, name,
                      base_ref or ticket.name, base_sha256, setup)
    blob = new.to_bytes()  # checked as it will be read back, before anything is written
    check_saved(Ticket.from_bytes(blob), ticket, dense=config.init == "dense")
    # the one folder writer (ticket + README), on rank 0; every rank returns the same result
    sha = platform.from_main(lambda: write_ticket_folder(out, blob, new.card))
    data = metrics.metrics_dict(runs, ds, config, saved=run, ticket=new, sha256=sha, **common)
    platform.write(lambda: metrics.write_json(out / METRICS_FILE, data))
    if run is not runs[0]:
        log.info(f"saved the {run.init} run of seed {run.seed}: the first of its init that trained")
    return FinetuneResult(new, out / TICKET_FILE, sha, out / METRICS_FILE, tuple(runs), ds, data, run)


def _threads(requested: int | None, model, arch) -> tuple[int, str]:
    count = choose_threads(requested, model, in_channels=arch.in_channels, input_size=arch.input_size)
    if requested is not None:
        return count, "--threads"
    large = forward_macs(model, arch.in_channels, arch.input_size) >= MULTI_THREAD_MACS
    return count, ("large model: every available core" if large else "small model") + "; --threads to change"


def _check_ticket(ticket: Ticket, config: FinetuneConfig) -> None:
    arch = ticket.card.arch
    if not arch.classifier:
        raise ConfigError(f"ticket {ticket.name!r} does not name its classifier tensors",
                          hint="its card's arch.classifier must list the head's state-dict names")
    if arch.in_channels not in (1, 3):
        raise ConfigError(f"ticket {ticket.name!r} takes {arch.in_channels}-channel images; "
                          "image folders give 1 (gray) or 3 (RGB) channels")
    if config.data.channels not in (None, arch.in_channels):
        raise ConfigError(f"ticket {ticket.name!r} takes {arch.in_channels}-channel images, not "
                          f"{config.data.channels}", field="data.channels", value=config.data.channels,
                          hint="leave `channels` out: a ticket's images have its own")
    if "trained" in config.inits and "trained" not in ticket.weight_sets:
        raise ConfigError(f"ticket {ticket.name!r} has no 'trained' weight set "
                          f"(it has: {', '.join(ticket.weight_sets)})",
                          field="init", value="trained", hint="use rewind, reinit or dense")
    missing = [k for k in arch.classifier if k not in ticket.state_dict("rewind")]
    if missing:
        raise ConfigError(f"ticket {ticket.name!r} names head tensors it lacks: {', '.join(missing)}")


def _check_output(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start over silently on a result or an unfinished run."""
    if resume or overwrite:
        return
    ways = "pass `resume` to continue it, `overwrite` to start over, or another `out_dir`"
    if (out / TICKET_FILE).exists():
        raise ConfigError(f"{out} already holds a fine-tuned ticket", hint=ways)
    if (out / METRICS_FILE).exists():
        raise CheckpointError(f"{out} holds a finished run that saved no ticket (see its {METRICS_FILE})",
                              hint=ways)
    runs = sorted(p.name for p in (out / "checkpoints").glob("*") if p.is_dir())
    if runs:
        raise CheckpointError(f"{out} holds an unfinished fine-tuning run ({len(runs)} run "
                              f"checkpoint(s): {', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''}; "
                              "no ticket)", hint=ways)


#: A run's tag (training.run_one): its checkpoint folder and CSV log are named by it.
_RUN_TAG = re.compile(r"(rewind|trained|reinit|dense)(-fold\d+)?-seed\d+\Z")


def _prepare_output(out: Path, *, start_over: bool) -> None:
    """The output folder; starting over, emptied of what an earlier fine-tune wrote there (its
    ticket, README, metrics, run checkpoints and logs) and of nothing else: a file of the
    user's in ``out``, ``logs/`` or ``checkpoints/`` stays."""
    if start_over:  # nothing old may be resumed
        mine = [out / TICKET_FILE, out / METRICS_FILE, out / "checkpoints" / "run.json"]
        if (out / TICKET_FILE).exists():  # the README beside our ticket is the ticket's
            mine.append(out / "README.md")
        for sub, suffix in (("checkpoints", ""), ("logs", ".csv")):
            if (out / sub).is_dir():
                mine += [p for p in (out / sub).iterdir()
                         if p.name.endswith(suffix) and _RUN_TAG.match(p.name.removesuffix(suffix))]
        for path in mine:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _check_resume(platform: Platform, out: Path, config, resolved, ds, ticket, base_sha256,
                  resume: bool) -> None:
    """Record what the runs compute; refuse to resume runs of other data or settings."""
    h = fingerprint_of({
        "config": config.settings_dict(), "recipe": resolved.train.hash(), "classes": list(ds.classes),
        "base": base_sha256 or ticket.card.to_json(), "files": source.fingerprint(ds),
    })
    path = out / "checkpoints" / "run.json"

    def recorded() -> str | None:
        return json.loads(path.read_text()).get("fingerprint") if resume and path.exists() else None

    found = platform.from_main(recorded)  # under torchrun rank 0 reads, and alone writes after
    if found is not None and found != h:
        raise CheckpointError(f"{out} holds runs with other data, ticket or settings", field="out_dir",
                              value=str(out), hint="resume with the same arguments, or use another `out_dir`")

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps({"fingerprint": h}).encode())

    platform.write(write)


__all__ = ["FinetuneResult", "NoTrainedRunError", "RunResult", "check_masks", "check_saved",
           "finetune", "start_model"]
