"""One (init, seed) run: start model, masked training, test, verdict. Resumable.

A run ends ``ok``, ``diverged`` or ``chance`` (:mod:`.status`); a diverged run does not
stop the others. Each run keeps a per-epoch checkpoint in ``checkpoints/<init>-seed<N>/``:
resumed, a finished run returns from it at once (best epoch restored) and is only
evaluated again; a diverged run's ``status.json`` says so, so it is not trained again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ticketzoo.errors import ConfigError
from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.finetune import status as verdicts
from ticketzoo.finetune.output import check_masks
from ticketzoo.models import build_model, classifier_names, swap_head
from ticketzoo.pruning import apply_masks
from ticketzoo.pruning import sparsity as masks_sparsity
from ticketzoo.ticket import Ticket
from ticketzoo.train import (CSVLogger, DivergedError, EvalResult, ProgressCallback, Runtime,
                             TrainConfig, TrainResult, cpu_state_dict, evaluate, resolve_device, train)

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class RunResult:
    """One (init, seed) training run and whether it trained."""

    init: str
    seed: int
    sparsity: float  # of the trained network's prunable weights (0 for dense)
    train: TrainResult | None  # None when training diverged
    test: EvalResult | None  # None without a test split, or when training diverged
    time_s: float
    log: str  # CSV log, relative to the output folder
    status: str = "ok"  # ok | diverged | chance (see .status)
    reason: str | None = None  # why not ok
    p_value: float | None = None  # binomial test against the majority-class share
    chance_level: float | None = None  # that share, on the split the verdict used
    diverged: dict[str, Any] | None = None  # {"epoch", "lr", "loss"} when diverged
    train_config: TrainConfig | None = None  # the recipe the run trained with (its seed)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


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


def run_one(ticket: Ticket, init: str, seed: int, num_classes: int, sets: dict, config,
            train_config: TrainConfig, out: Path, console, resume: bool, quiet: bool):
    """Train one run; returns ``(RunResult, start weights, final weights or None)``."""
    from ticketzoo.data import make_loaders

    model, masks = start_model(ticket, init, num_classes, seed, config.weight_init)
    start, sparsity = cpu_state_dict(model), masks_sparsity(masks) if masks else 0.0
    tag = f"{init}-seed{seed}"
    folder, log = out / "checkpoints" / tag, str(Path("logs") / f"{tag}.csv")
    common = dict(init=init, seed=seed, sparsity=sparsity, log=log, train_config=train_config)
    recorded = _read_status(folder) if resume else None
    if recorded and recorded.get("status") == "diverged":  # deterministic: it would diverge again
        return RunResult(**common, train=None, test=None, time_s=recorded.get("time_s", 0.0),
                         status="diverged", reason=recorded.get("reason"),
                         diverged=recorded.get("diverged")), start, None
    device = resolve_device(train_config.device)
    loaders = make_loaders(sets["train"], sets["val"], sets["test"], batch_size=train_config.batch_size,
                           seed=seed, device=device, workers=config.workers)
    callbacks = [ProgressCallback(console, quiet=quiet or console is None), CSVLogger(out / log)]
    t0 = time.perf_counter()
    try:
        result = train(model, masks, loaders.train, loaders.val, train_config, callbacks=callbacks,
                       checkpoint_dir=folder, resume=resume)
    except DivergedError as err:
        verdict = verdicts.diverged(err.epoch, err.lr)
        run = RunResult(**common, train=None, test=None, time_s=time.perf_counter() - t0,
                        status="diverged", reason=verdict.reason,
                        diverged={"epoch": err.epoch, "lr": err.lr, "loss": err.loss})
        _write_status(folder, run)
        return run, start, None
    elapsed = time.perf_counter() - t0
    if masks:
        check_masks(model, masks)
    runtime = Runtime.create(train_config.device, amp=train_config.amp,
                             channels_last=train_config.channels_last)
    test = evaluate(model, loaders.test, runtime=runtime, num_classes=num_classes) if loaders.test else None
    judged_on = test if test is not None else (
        evaluate(model, loaders.val, runtime=runtime, num_classes=num_classes) if loaders.val else None)
    verdict = (verdicts.judge(judged_on.confusion, "test" if test is not None else "val")
               if judged_on is not None else verdicts.Verdict("ok", None))
    final = cpu_state_dict(model)
    model.to("cpu")
    run = RunResult(**common, train=result, test=test, time_s=elapsed, status=verdict.status,
                    reason=verdict.reason, p_value=verdict.p_value, chance_level=verdict.chance_level)
    _write_status(folder, run)
    return run, start, final


def _read_status(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_status(folder: Path, run: RunResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"status": run.status, "reason": run.reason, "diverged": run.diverged, "time_s": run.time_s}
    atomic_write_bytes(folder / STATUS_FILE, json.dumps(data).encode())
