"""One (init, seed) run: start model, masked training, test, verdict. Resumable.

A run ends ``ok``, ``diverged`` or ``chance`` (:mod:`.status`); a diverged run does not
stop the others. :func:`train_run` is the per-job primitive (a built model and its masks
in, a judged run out) that ``ticketzoo compare`` runs once per job. Each run keeps a
checkpoint in ``checkpoints/<init>-seed<N>/`` (its last epoch, written at most once a
minute and when it ends or is interrupted):
resumed, a finished run returns from it at once (best epoch restored) and is only
evaluated again; a diverged run's ``status.json`` says so, so it is not trained again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ticketzoo.errors import ConfigError
from ticketzoo.fileio import atomic_write_bytes
from ticketzoo.train import status as verdicts
from ticketzoo.masks import Mask
from ticketzoo.models import build_model, classifier_names
from ticketzoo.progress import Progress
from ticketzoo.ticket import Ticket
from ticketzoo.train.platform import Platform
from ticketzoo.train import (CSVLogger, DivergedError, EvalResult, ProgressCallback, Runtime,
                             TrainConfig, TrainResult, cpu_state_dict, evaluate, resolve_device, train)

STATUS_FILE = "status.json"
#: Seconds between checkpoint writes: a ResNet-50 fine-tune's epoch on a few hundred images
#: takes ~2 s and its checkpoint ~0.7 s to write; an interrupted run still writes its last
#: epoch (:class:`ticketzoo.train.checkpoint.Writer`).
CHECKPOINT_EVERY_S = 60.0


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
    fold: int | None = None  # its test fold with `folds` K > 1; None: the folder's one split
    test_sha256: str | None = None  # which images it was tested on (ticketzoo.data.source.test_sha256)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def start_model(ticket: Ticket, init: str, num_classes: int, seed: int,
                weight_init: str = "xavier") -> tuple[nn.Module, Mask | None]:
    """The network fine-tuning starts from and the masks it trains under (None: dense).

    rewind/trained: the ticket's weights with a fresh head; reinit/dense: fresh weights
    drawn with ``seed``. The head is always a fresh dense layer with ``num_classes`` outputs.
    """
    arch = ticket.card.arch
    if init in ("rewind", "trained"):  # the one head swap, also when the class count is unchanged
        model = ticket.to_model(init, num_classes=num_classes, fresh_head=True, head_init=weight_init, seed=seed)
    else:
        model = build_model(arch.name, num_classes=num_classes, in_channels=arch.in_channels,
                            input_size=arch.input_size, init=weight_init, seed=seed, **arch.kwargs)
    if tuple(classifier_names(model)) != tuple(arch.classifier):
        raise ConfigError(f"the card names head tensors {list(arch.classifier)} but {arch.name} "
                          f"has {list(classifier_names(model))}")
    masks = None if init == "dense" else ticket.head_masks_dropped()
    if masks:
        masks.apply(model)
    return model, masks


def run_one(ticket: Ticket, init: str, seed: int, num_classes: int, sets: dict, config,
            train_config: TrainConfig, out: Path, resume: bool, fold: int | None = None,
            progress: Progress | None = None, callbacks: tuple = ()):
    """Train one run (on ``sets``: fold ``fold``'s, with K folds), its epochs reported to
    ``progress`` and ``callbacks``; returns ``(RunResult, start weights, final weights or None)``."""
    model, masks = start_model(ticket, init, num_classes, seed, config.weight_init)
    start = cpu_state_dict(model)
    tag = f"{init}-seed{seed}" if fold is None else f"{init}-fold{fold}-seed{seed}"
    run, final = train_run(model, masks, init=init, seed=seed, num_classes=num_classes, sets=sets,
                           train_config=train_config, workers=config.workers,
                           folder=out / "checkpoints" / tag, out=out, log=str(Path("logs") / f"{tag}.csv"),
                           resume=resume, progress=progress, callbacks=callbacks)
    return (run if fold is None else dataclasses.replace(run, fold=fold)), start, final


def train_run(model: nn.Module, masks: dict[str, torch.Tensor] | None, *, init: str, seed: int,
              num_classes: int, sets: dict, train_config: TrainConfig, workers: int | None,
              folder: Path, out: Path, log: str, resume: bool = False, progress: Progress | None = None,
              callbacks: tuple = ()) -> tuple[RunResult, dict | None]:
    """Train ``model`` under ``masks`` (None: dense), test it and judge it; resumable.

    The per-job primitive of ``finetune`` and ``compare``: checkpoints and ``status.json``
    go to ``folder``, the CSV log to ``out / log``. Returns ``(RunResult, final weights or
    None when it diverged)``; a DivergedError never escapes.
    """
    masks = Mask(masks) if masks else None
    sparsity = masks.sparsity if masks else 0.0
    common = dict(init=init, seed=seed, sparsity=sparsity, log=log, train_config=train_config)
    recorded = Platform().from_main(lambda: _read_status(folder)) if resume else None  # rank 0 reads
    if recorded and recorded.get("status") == "diverged":  # deterministic: it would diverge again
        return RunResult(**common, train=None, test=None, time_s=recorded.get("time_s", 0.0),
                         status="diverged", reason=recorded.get("reason"),
                         diverged=recorded.get("diverged")), None
    device = resolve_device(train_config.device)
    loaders = make_run_loaders(sets, train_config, seed=seed, device=device, workers=workers,
                               num_classes=num_classes)
    callbacks = [ProgressCallback(progress), CSVLogger(out / log), *callbacks]
    t0 = time.perf_counter()
    try:
        result = train(model, masks, loaders.train, loaders.val, train_config, callbacks=callbacks,
                       checkpoint_dir=folder, resume=resume, checkpoint_every_s=CHECKPOINT_EVERY_S)
    except DivergedError as err:
        verdict = verdicts.diverged(err.epoch, err.lr, err.loss)
        run = RunResult(**common, train=None, test=None, time_s=time.perf_counter() - t0,
                        status="diverged", reason=verdict.reason, diverged=verdict.where)
        _write_status(folder, run)
        return run, None
    elapsed = time.perf_counter() - t0
    if masks:
        masks.check(model)
    runtime = Runtime.for_config(train_config)
    test = evaluate(model, loaders.test, runtime=runtime, num_classes=num_classes) if loaders.test else None
    judged_on = test if test is not None else (
        evaluate(model, loaders.val, runtime=runtime, num_classes=num_classes) if loaders.val else None)
    verdict = verdicts.verdict(result.history, judged_on.confusion if judged_on is not None else None,
                               "test" if test is not None else "val", num_classes)
    final = cpu_state_dict(model) if verdict.status != "diverged" else None  # an exploded run is not kept
    model.to("cpu")
    run = RunResult(**common, train=result, test=test, time_s=elapsed, status=verdict.status,
                    reason=verdict.reason, p_value=verdict.p_value, chance_level=verdict.chance_level,
                    diverged=verdict.where)
    _write_status(folder, run)
    return run, final


def make_run_loaders(sets: dict, train_config: TrainConfig, *, seed: int, device: torch.device,
                     workers: int | None = None, num_classes: int | None = None,
                     on_device: bool | None = None):
    """Loaders over a run's splits (:func:`ticketzoo.data.loading.loaders_for`: on the device
    on CUDA and for padded crops, else DataLoaders), batched and laid out as ``train_config`` says."""
    from ticketzoo.data.loading import loaders_for

    return loaders_for(sets, batch_size=train_config.batch_size, seed=seed, device=device, workers=workers,
                       num_classes=num_classes, on_device=on_device,
                       channels_last=Runtime.for_config(train_config, device).channels_last)


def _read_status(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_status(folder: Path, run: RunResult) -> None:
    if not Platform().is_main:  # under torchrun rank 0 alone writes
        return
    folder.mkdir(parents=True, exist_ok=True)
    data = {"status": run.status, "reason": run.reason, "diverged": run.diverged, "time_s": run.time_s}
    atomic_write_bytes(folder / STATUS_FILE, json.dumps(data).encode())
