"""Precise BatchNorm: running statistics recomputed from training batches before validation.

BatchNorm's running mean and variance are an exponential average (momentum 0.1) over the last
few training batches. With batches of 8-16 images, the statistics of the last ~10 batches are
noisy and lag the weights, which the optimizer keeps moving: the validation loss of a
fine-tune then jumped 10-100x between epochs (1.10 -> 18.6 -> 26.6 -> 3.98 on a 70-image val
split), early stopping chose arbitrary epochs and dense baselines ended at chance. Recomputing
them as an equal-weight average over many training batches, with the weights held fixed, gives
the statistics those weights actually see (Wu & Johnson, "Rethinking 'Batch' in BatchNorm",
2021, Sec. 3). Nothing is trained here and no mask is touched.
"""

from __future__ import annotations

import torch
from torch import nn

from ticketzoo.train import distributed as dist

#: Training images averaged per recomputation (at least one batch, at most one epoch).
IMAGES = 1024

_NORMS = (nn.modules.batchnorm._BatchNorm,)


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that track running statistics."""
    return [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, loader, runtime, *, batches: int) -> int:
    """Replace every BatchNorm's running statistics with their average over ``batches`` batches
    of ``loader`` (train-mode forward passes under ``runtime``'s autocast); returns the
    batches used (0: the model has no BatchNorm). Under ``torchrun`` the ranks' averages are
    averaged, so every rank holds the same statistics. The model's mode is restored."""
    norms = batchnorms(model)
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative (equal-weight) average over the batches seen
    model.train()
    used = 0
    try:
        for images, labels in loader:
            if used >= batches:
                break
            x, _ = runtime.to_device(images, labels)
            with runtime.autocast():
                model(x)
            used += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if dist.active():
        world = dist.world_size()
        for m in norms:
            dist.all_reduce_(m.running_mean).div_(world)
            dist.all_reduce_(m.running_var).div_(world)
    return used


def batches_for(batch_size: int, per_epoch: int) -> int:
    """How many training batches :data:`IMAGES` images are, within ``[1, per_epoch]``."""
    return max(1, min(per_epoch, -(-IMAGES // max(1, batch_size))))
