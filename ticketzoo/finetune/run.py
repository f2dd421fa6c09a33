"""Fine-tune a ticket on an image folder: head swap, masked training, checks, outputs.

One run trains one init (rewind θk, trained θ, reinit, dense) with one seed; a call runs
every init of ``config.inits`` for every seed on the same splits, saves the ticket of
the first (``config.init``, first seed) and writes ``metrics.json`` with every run.
What is saved and how it is checked lives in :mod:`.output`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ticketzoo.card import render_readme
from ticketzoo.data import FolderDataset, discover_folder, make_dataset, make_loaders
from ticketzoo.data.cache import cache_nbytes
from ticketzoo.errors import CheckpointError, ConfigError
from ticketzoo.finetune import report
from ticketzoo.finetune.config import FinetuneConfig, default_name
from ticketzoo.finetune.output import METRICS_FILE, check_masks, check_saved, make_ticket
from ticketzoo.models import build_model, classifier_names, swap_head
from ticketzoo.pruning import apply_masks
from ticketzoo.pruning import sparsity as masks_sparsity
from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.ticket import TICKET_FILE, Ticket
from ticketzoo.train import (CSVLogger, EvalResult, ProgressCallback, Runtime, TrainResult,
                             cpu_state_dict, evaluate, resolve_device, train)


@dataclass(frozen=True)
class RunResult:
    """One (init, seed) training run."""

    init: str
    seed: int
    sparsity: float  # of the trained network's prunable weights (0 for dense)
    train: TrainResult
    test: EvalResult | None  # None when the folder has no test split
    time_s: float
    log: str  # CSV log, relative to the output folder


@dataclass(frozen=True)
class FinetuneResult:
    ticket: Ticket  # the saved fine-tuned ticket (config.init, first seed)
    path: Path  # its file
    sha256: str
    metrics_path: Path
    runs: tuple[RunResult, ...]  # every run, the saved one first
    data: FolderDataset
    metrics: dict  # what metrics.json holds

    @property
    def test_accuracy(self) -> float | None:
        return self.runs[0].test.accuracy if self.runs[0].test else None


def finetune(ticket: Ticket, data_dir: str | Path, config: FinetuneConfig | None = None, *,
             out_dir: str | Path, base_ref: str | None = None, base_sha256: str | None = None,
             console=None, resume: bool = False, overwrite: bool = False,
             quiet: bool = False) -> FinetuneResult:
    """Fine-tune ``ticket`` on the folder ``data_dir``; outputs go to ``out_dir``.

    ``resume`` continues the runs from their per-epoch checkpoints; without it (or
    ``overwrite``) an output folder that already holds a result is refused.
    """
    config = config or FinetuneConfig()
    arch = ticket.card.arch
    _check_ticket(ticket, config)
    out = Path(out_dir)
    if not (resume or overwrite) and any((out / f).exists() for f in (TICKET_FILE, METRICS_FILE)):
        raise ConfigError(f"{out} already holds a fine-tuned ticket",
                          hint="pass --resume to continue it, --force to overwrite, or another --out")
    say = (lambda *a, **k: None) if quiet or console is None else console.print
    data, sets = _load_data(data_dir, config, arch)
    report.describe_data(say, data, sets)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, config, data, ticket, base_sha256, resume)
    classes = len(data.classes)
    runs, kept = [], {}
    total = len(config.inits) * config.seeds
    for init in config.inits:
        for seed in config.seed_list():
            say(f"run {len(runs) + 1}/{total}: init {init}, seed {seed}", style="bold")
            run, start, final = _run_one(ticket, init, seed, classes, sets, config, out,
                                         console, resume, quiet)
            runs.append(run)
            if not kept:
                kept = {"start": start, "final": final}
    name = config.name or default_name(ticket.name, data.root.resolve().name)
    new = make_ticket(ticket, kept, runs[0], data, config, name, base_ref or ticket.name, base_sha256)
    blob = new.to_bytes()  # checked as it will be read back, before anything is written
    check_saved(Ticket.from_bytes(blob), ticket, dense=config.init == "dense")
    atomic_write_bytes(out / TICKET_FILE, blob)
    sha = hashlib.sha256(blob).hexdigest()
    atomic_write_bytes(out / "README.md", render_readme(new.card, sha256=sha, size=len(blob)).encode())
    metrics = report.metrics_dict(runs, data, config, base=ticket, base_ref=base_ref,
                                  base_sha256=base_sha256, ticket=new, sha256=sha)
    report.write_json(out / METRICS_FILE, metrics)
    return FinetuneResult(new, out / TICKET_FILE, sha, out / METRICS_FILE, tuple(runs), data, metrics)


def _check_ticket(ticket: Ticket, config: FinetuneConfig) -> None:
    arch = ticket.card.arch
    if not arch.classifier:
        raise ConfigError(f"ticket {ticket.name!r} does not name its classifier tensors",
                          hint="its card's arch.classifier must list the head's state-dict names")
    if arch.in_channels not in (1, 3):
        raise ConfigError(f"ticket {ticket.name!r} takes {arch.in_channels}-channel images; "
                          "image folders give 1 (gray) or 3 (RGB) channels")
    if "trained" in config.inits and "trained" not in ticket.weight_sets:
        raise ConfigError(f"ticket {ticket.name!r} has no 'trained' weight set "
                          f"(it has: {', '.join(ticket.weight_sets)})",
                          hint="use --init rewind, reinit or dense")
    missing = [k for k in arch.classifier if k not in ticket.state_dict("rewind")]
    if missing:
        raise ConfigError(f"ticket {ticket.name!r} names head tensors it lacks: {', '.join(missing)}")


def _load_data(data_dir, config: FinetuneConfig, arch) -> tuple[FolderDataset, dict]:
    """Discover, validate and split the folder; decode it once at working size."""
    resize = config.working_size(arch.input_size)
    data = discover_folder(data_dir, split=config.split, seed=config.seed, strict=config.strict,
                           channels=arch.in_channels, resize=resize,
                           memory_budget_bytes=config.memory_budget_bytes)
    kw = dict(channels=arch.in_channels, resize=resize, train_crop=arch.input_size,
              mean=arch.mean, std=arch.std, decoded=data.decoded)
    budget, sets = config.memory_budget_bytes, {}
    for split in ("train", "val", "test"):
        samples = getattr(data, split)
        if not samples:
            sets[split] = None
            continue
        sets[split] = make_dataset(samples, train=split == "train", augment=config.augment,
                                   memory_budget_bytes=max(0, budget), **kw)
        if hasattr(sets[split], "images"):  # cached: it uses part of the budget
            budget -= cache_nbytes(len(samples), arch.in_channels, resize)
    return data, sets


def start_model(ticket: Ticket, init: str, num_classes: int, seed: int,
                weight_init: str = "xavier") -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    """The network fine-tuning starts from and the masks it trains under (None: dense).

    rewind/trained: the ticket's weights with a fresh head; reinit/dense: fresh weights
    drawn with ``seed``. The head is always a fresh dense layer with ``num_classes`` outputs.
    """
    arch = ticket.card.arch
    if init in ("rewind", "trained"):
        model = ticket.to_model(init, num_classes=num_classes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            swap_head(model, num_classes)  # also when the class count is unchanged
            if weight_init == "xavier":
                head = model.get_submodule(arch.classifier[0].rpartition(".")[0])
                nn.init.xavier_normal_(head.weight)
                if head.bias is not None:
                    nn.init.zeros_(head.bias)
    else:
        model = build_model(arch.name, num_classes=num_classes, in_channels=arch.in_channels,
                            input_size=arch.input_size, init=weight_init, seed=seed, **arch.kwargs)
    if tuple(classifier_names(model)) != tuple(arch.classifier):
        raise ConfigError(f"the card names head tensors {list(arch.classifier)} but {arch.name} "
                          f"has {list(classifier_names(model))}")
    masks = None if init == "dense" else ticket.head_masks_dropped()
    if masks:
        apply_masks(model, masks)
    return model, masks


def _run_one(ticket, init, seed, num_classes, sets, config, out, console, resume, quiet):
    tc = dataclasses.replace(config.train, seed=seed)
    model, masks = start_model(ticket, init, num_classes, seed, config.weight_init)
    start = cpu_state_dict(model)
    device = resolve_device(tc.device)
    loaders = make_loaders(sets["train"], sets["val"], sets["test"], batch_size=tc.batch_size,
                           seed=seed, device=device, workers=config.workers)
    tag = f"{init}-seed{seed}"
    log = Path("logs") / f"{tag}.csv"
    callbacks = [ProgressCallback(console, quiet=quiet or console is None), CSVLogger(out / log)]
    t0 = time.perf_counter()
    result = train(model, masks, loaders.train, loaders.val, tc, callbacks=callbacks,
                   checkpoint_dir=out / "checkpoints" / tag, resume=resume)
    elapsed = time.perf_counter() - t0
    if masks:
        check_masks(model, masks)
    test = None
    if loaders.test is not None:
        runtime = Runtime.create(tc.device, amp=tc.amp, channels_last=tc.channels_last)
        test = evaluate(model, loaders.test, runtime=runtime, num_classes=num_classes)
    sparsity = masks_sparsity(masks) if masks else 0.0
    final = cpu_state_dict(model)
    model.to("cpu")
    return RunResult(init, seed, sparsity, result, test, elapsed, str(log)), start, final


def _check_resume(out: Path, config, data, ticket, base_sha256, resume: bool) -> None:
    """Record what the runs compute; refuse to resume runs of other data or settings."""
    h = hashlib.sha256(json.dumps({
        "config": {**config.to_dict(), "train": config.train.hash(), "workers": None, "name": None,
                   "memory_budget_bytes": None},
        "classes": data.classes, "base": base_sha256 or ticket.card.to_json(),
        "files": [[os.path.relpath(s.path, data.root), s.label]
                  for split in (data.train, data.val, data.test) for s in split],
    }, sort_keys=True).encode()).hexdigest()
    path = out / "checkpoints" / "run.json"
    if resume and path.exists():
        found = json.loads(path.read_text()).get("fingerprint")
        if found != h:
            raise CheckpointError(f"{out} holds runs with other data, ticket or settings",
                                  hint="resume with the same arguments, or use another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"fingerprint": h}).encode())


__all__ = ["FinetuneResult", "RunResult", "check_masks", "check_saved", "finetune", "start_model"]
