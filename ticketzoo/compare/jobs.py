"""One comparison job: build its network, train it under its mask, judge it, record it.

Each job owns ``<out>/jobs/<key>/``: ``job.json`` (what it computes) when it starts,
per-epoch checkpoints while it trains, and ``result.json``, written atomically when it
ends ``ok``, ``diverged`` or ``chance`` (:mod:`ticketzoo.train.status`). A job with a
``result.json`` is done; one without resumes from its last checkpoint, so a killed sweep
rerun gives the results an uninterrupted one would. Checkpoints are removed once the
result is written (the comparison keeps numbers, not weights).

:func:`run_job` runs in the sweep's process or in a spawned worker; it takes only
picklable arguments and keeps the tickets and decoded images it loaded for the next job.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ticketzoo.compare.plan import Job
from ticketzoo.errors import CheckpointError
from ticketzoo.fileio import atomic_write_bytes

RESULT_FILE, JOB_FILE = "result.json", "job.json"
_CACHE: dict[Any, Any] = {}  # per process: tickets by path, (dataset, sets) by architecture


@dataclass(frozen=True)
class SweepContext:
    """What every job of one sweep shares (picklable)."""

    data: str | Path  # a dataset name or folder (a Path is always a folder)
    data_root: str | None
    config: Any  # FinetuneConfig: split, first seed (the split's), weight_init, workers, ...
    recipe: Any  # the resolved TrainConfig; each job sets its own seed
    out: str
    fingerprint: str  # data, recipe and settings: what every job's result depends on
    device: str | None = None  # a worker's own GPU when there are several


def job_dir(out: str | Path, key: str) -> Path:
    return Path(out) / "jobs" / key


def finished(out: str | Path, job: Job, fingerprint: str) -> dict | None:
    """The job's recorded result, or None when it has not finished."""
    folder = job_dir(out, job.key)
    for name in (RESULT_FILE, JOB_FILE):
        try:
            data = json.loads((folder / name).read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            if name == RESULT_FILE:  # atomic writes make this rare: redo the job rather than trust it
                continue
            raise CheckpointError(f"{folder / name} cannot be read", field="out_dir", value=str(folder)) from None
        if data.get("fingerprint") != fingerprint or data.get("spec") != job.spec():
            raise CheckpointError(f"{folder} holds a job of other data, tickets or settings",
                                  field="out_dir", value=str(out),
                                  hint="rerun with the same settings, pass `force` to start over, "
                                       "or use another `out_dir`")
        if name == RESULT_FILE:
            return data["record"]
    return None


def run_job(job: Job, ctx: SweepContext, report: Callable[[str, int, int], None] | None = None) -> dict:
    """Train ``job`` (resuming its checkpoint) and write its ``result.json``; returns its record."""
    from ticketzoo.finetune.training import train_run

    folder = job_dir(ctx.out, job.key)
    folder.mkdir(parents=True, exist_ok=True)
    head = {"fingerprint": ctx.fingerprint, "spec": job.spec()}
    atomic_write_bytes(folder / JOB_FILE, json.dumps({**head, "job": job.to_dict()}, indent=1).encode())
    ticket = _ticket(job.ticket.path)
    ds, sets = _data(ctx, ticket.card.arch) if job.fold is None else _fold_data(ctx, ticket.card.arch, job.fold)
    classes = len(ds.classes)
    model, masks = build(job, ticket, classes, ctx.config.weight_init)
    recipe = dataclasses.replace(ctx.recipe, seed=job.seed, **({"device": ctx.device} if ctx.device else {}))
    workers = ctx.config.workers if ctx.config.workers is not None else 0  # the sweep is the parallelism
    run, _ = train_run(model, masks, init=job.condition, seed=job.seed, num_classes=classes, sets=sets,
                       train_config=recipe, workers=workers, folder=folder / "checkpoints", out=folder,
                       log="log.csv", resume=True,
                       callbacks=(_EpochReport(report, job.key),) if report else ())
    from ticketzoo.data.source import test_sha256

    record = {**record_of(job, run), "split_seed": ctx.config.split_seed, "test_sha256": test_sha256(ds)}
    atomic_write_bytes(folder / RESULT_FILE, json.dumps({**head, "record": record}, indent=1).encode())
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return record


def build(job: Job, ticket, num_classes: int, weight_init: str):
    """The network ``job`` starts from and the masks it trains under (None: dense)."""
    from ticketzoo.finetune.training import start_model
    from ticketzoo.pruning import random_masks_like

    if job.condition != "random_prune":
        return start_model(ticket, job.condition, num_classes, job.seed, weight_init)
    model, _ = start_model(ticket, "dense", num_classes, job.seed, weight_init)  # reinit's fresh weights
    masks = random_masks_like(ticket.head_masks_dropped(), seed=job.seed)
    masks.apply(model)
    return model, masks


def record_of(job: Job, run) -> dict:
    """One row of the CSV/JSON: the job and how its run ended."""
    t, test = run.train, run.test
    return {
        "key": job.key, "condition": job.condition, "family": job.family,
        "ticket": job.ticket.name if job.condition != "dense" else None,
        "arch": job.ticket.arch, "sparsity": run.sparsity, "remaining": 1.0 - run.sparsity, "seed": job.seed,
        "fold": job.fold, "status": run.status, "reason": run.reason,
        "test_accuracy": test.accuracy if test is not None else None,
        "test_samples": test.num_samples if test is not None else 0,
        "test_correct": round(test.accuracy * test.num_samples) if test is not None else None,
        "epochs": t.epochs_run if t else (run.diverged or {}).get("epoch"),
        "best_epoch": t.best_epoch if t else None, "stopped_early": t.stopped_early if t else None,
        "p_value_vs_chance": run.p_value, "chance_level": run.chance_level,
        "diverged": run.diverged, "time_s": round(run.time_s, 3),
    }  # fmt: skip


def _ticket(path: str):
    from ticketzoo.ticket import Ticket

    key = ("ticket", path)
    if key not in _CACHE:
        _CACHE[key] = Ticket.load(path)
    return _CACHE[key]


def _data(ctx: SweepContext, arch, loaded=None):
    """``(dataset, sets)`` for ``arch``, loaded once per process (``loaded``: already loaded)."""
    from ticketzoo.data import loading

    key = ("data", ctx.data, ctx.data_root, json.dumps(dataclasses.asdict(arch), sort_keys=True, default=str),
           json.dumps(ctx.config.to_dict(), sort_keys=True))
    if loaded is not None:
        _CACHE[key] = loaded
    if key not in _CACHE:
        _CACHE[key] = loading.load(ctx.data, ctx.config, arch, data_root=ctx.data_root)  # named: downloaded before
    return _CACHE[key]


def _fold_data(ctx: SweepContext, arch, fold: int):
    """``(dataset, sets)`` of one fold (``ctx.config.folds``), built once per process from
    the folder's images as loaded (no file is decoded again)."""
    from ticketzoo.finetune.folds import fold as fold_of

    key = ("fold", fold, ctx.data, ctx.data_root, json.dumps(dataclasses.asdict(arch), sort_keys=True, default=str),
           json.dumps(ctx.config.to_dict(), sort_keys=True))
    if key not in _CACHE:
        _CACHE[key] = fold_of(_data(ctx, arch)[0], ctx.config, arch, fold)
    return _CACHE[key]


def share_data(ctx: SweepContext, arch, loaded) -> None:
    """Hand the sweep's own loaded data to the jobs run in this process (decoded once)."""
    _data(ctx, arch, loaded)


class _EpochReport:
    """Tells the sweep's progress display each finished epoch of a job."""

    def __init__(self, report: Callable[[str, int, int], None], key: str) -> None:
        self.report, self.key = report, key

    def on_train_start(self, state) -> None: ...
    def on_step_end(self, state) -> None: ...
    def on_train_end(self, state) -> None: ...
    def close(self) -> None: ...

    def on_epoch_end(self, state, metrics) -> None:
        self.report(self.key, int(metrics["epoch"]), state.config.max_epochs)
