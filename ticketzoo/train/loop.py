"""The masked training loop and evaluation.

Masks are enforced on the *weights*: applied once before training and again after every
optimizer step with one ``torch._foreach_mul_`` over precomputed (param, mask) pairs
(:class:`~ticketzoo.train.device.MaskSet`), so pruned weights stay exactly zero.
Gradients are not masked: a pruned weight is zero in every forward pass, so the
gradients of the surviving weights do not depend on it, and whatever the optimizer
writes into a pruned entry (its gradient, momentum, weight decay) stays in that entry
(SGD/Adam update elementwise) and is multiplied back to zero before the next forward.

Determinism: a fresh run seeds torch, ``random`` and NumPy with ``config.seed`` (the
model is initialised by the caller, before). Shuffling is the loader's business: give a
``DataLoader`` a seeded ``generator=`` (or rely on the seeded global RNG). On CPU two runs
with the same seed, model init and loaders end with bitwise-identical weights.

Under ``torchrun`` (:mod:`ticketzoo.train.distributed`) the model trains inside DDP; every
rank draws the same global batches and trains on its share of each (a loader built while
the group was up yields the share itself, any other loader is split here), with the loss
scaled so the averaged gradient is the global batch's. Metrics are summed over ranks, so
every rank sees the same epoch rows and takes the same decisions; rank 0 alone writes the
checkpoint, and a resume reads it on rank 0 and hands it to the others.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ticketzoo.errors import CheckpointError, ConfigError, DataError, TrainingDivergedError
from ticketzoo.train import checkpoint as ckpt
from ticketzoo.train import distributed as dist
from ticketzoo.train.callbacks import EarlyStopping, History, TrainState
from ticketzoo.config.train import TrainConfig
from ticketzoo.train.device import MaskSet, Runtime, cpu_state_dict
from ticketzoo.train.evaluate import EvalResult, check_labels, evaluate  # noqa: F401 - EvalResult re-exported
from ticketzoo.train.precise_bn import batches_for as bn_batches
from ticketzoo.train.precise_bn import recompute_bn_stats
from ticketzoo.config.step import Step, StepLike


@dataclass(frozen=True)
class TrainResult:
    history: list[dict[str, Any]]  # one metrics dict per epoch (see ``train``)
    best_epoch: int | None  # 1-based epoch with the lowest val loss; None without validation
    best_val_loss: float | None
    stopped_early: bool  # a callback (e.g. early stopping) ended training before max_epochs
    epochs_run: int  # epochs completed in the schedule, including before a resume
    final_step: int  # optimizer steps since the schedule's start (includes ``start``)
    stop_reason: str | None = None
    resumed: bool = False
    # the kernels of the masked layers (config.runtime resolved): runtime, layers, sparse, reason
    kernels: dict[str, Any] | None = None


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )  # fmt: skip
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    betas = (config.momentum, 0.999)
    return cls(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay)


class DivergedError(TrainingDivergedError):
    """The loss became NaN or infinite in 1-based ``epoch``, at learning rate ``lr``."""

    def __init__(self, message: str, *, epoch: int, lr: float, loss: float, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.epoch, self.lr, self.loss = epoch, lr, loss


def _check_finite(loss: float, what: str, state, optimizer) -> None:
    if not math.isfinite(loss):  # a NaN/inf train loss, or weights that give NaN/inf logits
        lr, peak = float(optimizer.param_groups[0]["lr"]), state.config.lr
        raise DivergedError(
            f"training diverged in epoch {state.epoch + 1}: the {what} loss is {loss}",
            epoch=state.epoch + 1, lr=lr, loss=loss,
            hint=f"lower the learning rate `lr`: it was {lr:g}" if lr == peak else
            f"lower the learning rate `lr`: it was {peak:g}, {lr:g} at the last step")


def _emit(callbacks: list, hook: str, *args: Any) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _train_epoch(state: TrainState, loader, runtime: Runtime, masks: MaskSet, scaler, callbacks,
                 forward: nn.Module):
    model, optimizer, dev = state.model, state.optimizer, runtime.device
    first = state.step - state.epoch * state.iters_per_epoch  # > 0 only when `start` is mid-epoch
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    seen = torch.zeros((), dtype=torch.long, device=dev)
    state.iteration = first
    sharded = getattr(loader, "shard", None)  # a loader that yields this rank's share itself
    shard = None if sharded is not None else dist.Shard.current()
    world = dist.world_size()
    smoothing = state.config.label_smoothing
    model.train()
    for index, (images, labels) in enumerate(loader):
        if index >= state.iters_per_epoch - first:
            break
        lr = state.config.lr_at_step(state.step, state.iters_per_epoch)
        for group in optimizer.param_groups:  # per step: warm-up and cosine move every step
            group["lr"] = lr
        if world > 1:  # the global batch's size, then this rank's share of it
            count = loader.global_count(index) if sharded is not None else labels.shape[0]
            if shard is not None:
                images, labels = shard.split(images, labels)
        x, y = runtime.to_device(images, labels)
        with runtime.autocast():
            logits = forward(x)
            check_labels(labels, logits.shape[1])
            if world == 1:
                loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
                summed = loss.detach() * y.shape[0]
            else:  # DDP averages the ranks: W/count makes that the global batch's mean loss
                summed = F.cross_entropy(logits, y, reduction="sum", label_smoothing=smoothing)
                loss = summed * (world / count)
                summed = summed.detach()
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        masks.apply()  # on every rank: DDP shares the parameters, the masks keep them equal
        keep = y != dist.IGNORE
        loss_sum += summed
        correct += ((logits.detach().argmax(1) == y) & keep).sum()
        seen += keep.sum()
        state.iteration, state.step = state.iteration + 1, state.step + 1
        state.loss_tensor = loss.detach() if world == 1 else summed / keep.sum().clamp(min=1)
        _emit(callbacks, "on_step_end", state)
        if state.stop_requested:
            break
    if world > 1:
        loss_sum = dist.all_reduce_(loss_sum)
        correct, seen = dist.all_reduce_(torch.stack((correct, seen)))
    seen = int(seen)
    if seen == 0:
        raise DataError("the train loader yielded no batches")
    return {
        "train_loss": float(loss_sum) / seen,
        "train_acc": int(correct) / seen,
        "iterations": state.iteration - first,
    }


def train(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, train_loader, val_loader,
    config: TrainConfig | None = None, *, callbacks: Iterable = (), start: StepLike | None = None,
    checkpoint_dir: str | Path | None = None, resume: bool = False, checkpoint_every_s: float = 0.0,
) -> TrainResult:  # fmt: skip
    """Train ``model`` in place under ``masks`` from ``start`` (default 0) to ``max_epochs``.

    Each epoch appends ``{epoch (1-based), step, lr, train_loss, train_acc, val_loss,
    val_acc, time_s, iterations}`` to the history (val_* None without ``val_loader``).
    With ``config.precise_bn`` BatchNorm statistics are recomputed on training batches at the
    end of every epoch, before validation (:mod:`ticketzoo.train.precise_bn`).
    With validation and ``restore_best``, the lowest-val-loss epoch's weights are loaded
    at the end. With ``checkpoint_dir`` a checkpoint is written after every epoch (at most
    once per ``checkpoint_every_s`` seconds when given, and at the end; :class:`~ticketzoo.
    train.checkpoint.Writer`); ``resume=True`` continues from it (or starts fresh if there is none; a finished run
    returns at once). Without ``resume`` an existing checkpoint is overwritten."""
    config = config if config is not None else TrainConfig()
    config.validate()
    runtime = Runtime.for_config(config)
    try:
        ipe = len(train_loader)
    except TypeError:
        raise DataError("the train loader must have a len() (batches per epoch)") from None
    if ipe < 1:
        raise DataError("the train loader has no batches")
    start_step = Step.coerce(start if start is not None else 0).iterations(ipe)
    if start_step >= config.max_epochs * ipe:
        raise ConfigError(
            f"start {start} is at or past the end of training ({config.max_epochs}ep)"
        )

    dist.ensure()  # launched by torchrun: join the group (no-op in a plain process)
    runtime.prepare_model(model)
    maskset = MaskSet(model, masks)
    maskset.apply()
    kernels = _sparse_kernels(model, masks, config, runtime)
    forward = dist.wrap(model, runtime.device)  # DDP under torchrun; shares model's parameters
    optimizer = build_optimizer(model, config)
    scaler = runtime.grad_scaler()
    history = History()
    stopper = val_loader is not None and config.patience is not None
    cbs = [history] + ([EarlyStopping(config.patience)] if stopper else []) + list(callbacks)
    state = TrainState(model, optimizer, config, runtime.device, ipe, epoch=start_step // ipe,
                       step=start_step, history=history.rows)  # fmt: skip
    best: dict[str, Any] = {"epoch": None, "val_loss": math.inf, "state": None}
    finished = stopped_early = False
    path = Path(checkpoint_dir) / ckpt.FILENAME if checkpoint_dir is not None else None
    writer = ckpt.Writer(path, checkpoint_every_s) if path is not None and dist.is_main() else None
    expected = {"config_hash": config.hash(), "masks_digest": ckpt.masks_digest(masks),
                "start_step": start_step}  # fmt: skip

    world = dist.world_size()
    layout = {"world_size": world} if world > 1 else {}  # recorded beside `expected`

    if resume and path is not None and dist.from_main(path.exists):
        payload = _read_checkpoint(path)
        _restore(payload, path, expected, world, model, optimizer, scaler, cbs, train_loader)
        best, state.history, state.resumed = payload["best"], history.rows, True
        state.epoch, state.step = int(payload["epoch"]), int(payload["step"])
        finished, stopped_early = bool(payload["finished"]), bool(payload["stopped_early"])
        state.stop_reason = payload.get("stop_reason")
    else:
        ckpt.seed_everything(config.seed)

    try:
        _emit(cbs, "on_train_start", state)
        while not finished:
            t0 = time.perf_counter()
            lr = config.lr_at_step(state.step, ipe)  # the epoch's first step
            metrics: dict[str, Any] = {"epoch": state.epoch + 1, "lr": lr}
            metrics.update(_train_epoch(state, train_loader, runtime, maskset, scaler, cbs, forward))
            _check_finite(metrics["train_loss"], "train", state, optimizer)
            metrics.update(step=state.step, val_loss=None, val_acc=None)
            if config.precise_bn:  # before validation, so the kept best epoch holds these statistics
                recompute_bn_stats(model, train_loader, runtime, batches=bn_batches(config.batch_size, ipe))
            if val_loader is not None:
                result = evaluate(model, val_loader, runtime=runtime)
                _check_finite(result.loss, "validation", state, optimizer)
                metrics.update(val_loss=result.loss, val_acc=result.accuracy)
                if result.loss < best["val_loss"]:
                    keep = cpu_state_dict(model) if config.restore_best else None
                    best = {"epoch": state.epoch + 1, "val_loss": result.loss, "state": keep}
            metrics["time_s"] = dist.max_float(time.perf_counter() - t0)  # the slowest rank's
            _emit(cbs, "on_epoch_end", state, metrics)
            if world > 1 and dist.any_rank(state.stop_requested) and not state.stop_requested:
                state.request_stop("another rank stopped")  # callbacks' decisions, made collective
            state.epoch += 1
            finished = state.stop_requested or state.epoch >= config.max_epochs
            stopped_early = state.stop_requested and state.epoch < config.max_epochs
            if writer is not None:
                writer.epoch_end(ckpt.run_payload({**expected, **layout}, state, scaler, best, cbs,
                                                  train_loader, finished=finished,
                                                  stopped_early=stopped_early), force=finished)
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        _emit(cbs, "on_train_end", state)
    except BaseException:  # Ctrl-C, an error, a stop from another rank: keep the last epoch
        if writer is not None:
            writer.flush()
        raise
    finally:
        _emit(cbs, "close")
        if kernels is not None:
            kernels.restore()  # the model leaves as it came: its own forwards
    return TrainResult(
        [dict(row) for row in state.history], best["epoch"],
        best["val_loss"] if best["epoch"] is not None else None, stopped_early,
        epochs_run=state.epoch, final_step=state.step, stop_reason=state.stop_reason,
        resumed=state.resumed, kernels=_kernels_record(kernels, config, masks),
    )  # fmt: skip


def _sparse_kernels(model: nn.Module, masks, config: TrainConfig, runtime: Runtime):
    """The sparse training kernels on ``model``'s masked layers (:mod:`ticketzoo.sparse.training`),
    as ``config.runtime`` asks, on the CPU; None where they cannot apply (dense, CUDA, no mask).
    ``auto`` times each eligible layer at its first input shape and keeps the faster kernel,
    against the dense layer as it runs (bf16 under CPU autocast)."""
    if config.runtime == "dense" or runtime.device.type != "cpu" or not masks:
        return None
    from ticketzoo.sparse.training import enable_sparse_training

    return enable_sparse_training(model, masks, config.runtime,
                                  dense_autocast=runtime.amp_dtype)


def _kernels_record(plan, config: TrainConfig, masks) -> dict[str, Any] | None:
    """What ran the masked layers, for the run's records: the runtime asked for, how many
    masked layers ran sparse, and why none could where none did."""
    if not masks:
        return None
    if plan is None:
        return {"runtime": config.runtime, "layers": len(masks), "sparse": 0,
                "reason": "runtime dense" if config.runtime == "dense" else "not on the CPU"}
    rows = plan.layers()
    return {"runtime": config.runtime, "layers": len(rows), "sparse": sum(r["kernel"] == "sparse" for r in rows),
            "reason": plan.reason}


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, read and checked by rank 0; the other ranks decode its
    bytes (``weights_only``, as rank 0 did) rather than receive unpickled objects."""
    if not dist.active():
        return ckpt.load_checkpoint(path)
    mine: list[dict[str, Any]] = []

    def read() -> bytes:
        mine.append(ckpt.load_checkpoint(path))
        return path.read_bytes()

    data = dist.from_main(read)
    if mine:
        return mine[0]
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _restore(payload, path: Path, expected, world: int, model, optimizer, scaler, callbacks,
             loader) -> None:
    """Load a checkpoint payload (read by rank 0) into the run on every rank, once its world
    size is the run's."""
    found = int(payload.get("world_size", 1))
    if found != world:
        raise CheckpointError(
            f"{path} was written by a run on {found} process(es); this run has {world}",
            hint=f"resume it with {found} process(es) (torchrun --nproc_per_node), or start over "
                 "in a new folder")
    ckpt.apply_run(payload, path, expected, model, optimizer, scaler, callbacks, loader)
