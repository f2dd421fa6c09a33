"""Evaluation: loss, accuracy and confusion of a model over a loader, also under ``torchrun``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ticketzoo.errors import ConfigError, DataError
from ticketzoo.train import distributed as dist
from ticketzoo.train.device import Runtime


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy
    accuracy: float  # in [0, 1]
    per_class_accuracy: list[float | None]  # recall per true class; None if absent
    confusion: list[list[int]]  # confusion[true][predicted]
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """A label outside ``[0, num_classes)`` is a :class:`DataError` (checked on the CPU only)."""
    if labels.device.type == "cpu" and labels.numel():  # CPU-side check: no GPU sync
        if dist.active():  # a rank's padding sample (see distributed.Shard) is no label
            labels = labels[labels != dist.IGNORE]
            if not labels.numel():
                return
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            bad = high if high >= num_classes else low
            raise DataError(f"label {bad} is outside [0, {num_classes})")



def evaluate(
    model: nn.Module, loader: Iterable, device: str | torch.device | None = None, *,
    num_classes: int | None = None, runtime: Runtime | None = None,
) -> EvalResult:  # fmt: skip
    """Loss, accuracy and confusion of ``model`` over ``loader`` (model mode is restored).

    Under ``torchrun`` each rank evaluates its share of the loader's samples and the sums
    are reduced, so every rank returns the same result (a collective: call it on all)."""
    if runtime is None:
        if device is None:
            device = next(iter(model.parameters()), torch.empty(0)).device
        runtime = Runtime(torch.device(device))
    dev = runtime.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    confusion = None
    shard = None if getattr(loader, "shard", None) is not None else dist.Shard.current()
    try:
        with torch.no_grad():
            for images, labels in loader:
                if shard is not None:  # a loader of whole batches: evaluate this rank's share
                    images, labels = shard.split(images, labels)
                x, y = runtime.to_device(images, labels)
                with runtime.autocast():
                    logits = model(x).float()
                n = logits.shape[1]
                if num_classes is not None and num_classes != n:
                    raise ConfigError(f"num_classes={num_classes} but the model has {n} outputs")
                check_labels(labels, n)
                if confusion is None:
                    confusion = torch.zeros(n * n, dtype=torch.long, device=dev)
                keep = y != dist.IGNORE
                loss_sum += F.cross_entropy(logits, y, reduction="sum")  # IGNORE adds 0
                confusion += torch.bincount((y * n + logits.argmax(1))[keep], minlength=n * n)
    finally:
        model.train(was_training)
    if dist.active():
        loss_sum, confusion = _reduce_eval(loss_sum, confusion, dev)
    if confusion is None or int(confusion.sum()) == 0:
        raise DataError("the evaluation loader yielded no samples")
    n = int(math.isqrt(confusion.numel()))
    matrix = confusion.view(n, n).cpu()
    total, support = int(matrix.sum()), matrix.sum(1).tolist()
    diagonal = matrix.diagonal().tolist()
    return EvalResult(
        loss=float(loss_sum) / total,
        accuracy=sum(diagonal) / total,
        per_class_accuracy=[d / s if s else None for d, s in zip(diagonal, support)],
        confusion=matrix.tolist(),
        num_samples=total,
    )


def _reduce_eval(loss_sum: torch.Tensor, confusion: torch.Tensor | None, dev):
    """Sum the ranks' loss and confusion (a rank with no samples contributes zeros)."""
    width = dist.all_reduce_(torch.tensor([confusion.numel() if confusion is not None else 0],
                                          device=dev), "max")
    if confusion is None:
        confusion = torch.zeros(int(width), dtype=torch.long, device=dev)
    return dist.all_reduce_(loss_sum), dist.all_reduce_(confusion)
