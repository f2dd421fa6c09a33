"""Magnitude pruning (global or layerwise), the random-prune control, sparsity accounting.

Every function returns a :class:`~ticketzoo.masks.Mask` (bool tensors keyed by
state-dict name; True means kept).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import nn

from ticketzoo.config import fit
from ticketzoo.errors import ArgumentTypeError, ConfigError
from ticketzoo.interop import plain_state_dict, unwrap
from ticketzoo.masks import Mask

SCOPES = ("global", "layerwise")


def full_masks(model: nn.Module, names: Iterable[str] | None = None) -> Mask:
    """All-True masks for ``names`` (default: every conv and linear weight)."""
    if names is None:
        from ticketzoo.models import prunable_names

        names = prunable_names(unwrap(model))
    return Mask.ones_like(plain_state_dict(model), names)


def _keep_count(kept: int, rate: float) -> int:
    # Round half up so 0.2 of 5 remaining prunes 1, and never prune more than is left.
    return kept - min(kept, math.floor(kept * rate + 0.5))


def _top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the k largest scores; ties broken by position, earlier first
    (deterministic: what a stable descending sort keeps)."""
    flat = scores.reshape(-1)
    n = flat.numel()
    if k >= n:
        return torch.ones(scores.shape, dtype=torch.bool)
    keep = torch.zeros(n, dtype=torch.bool)
    if k <= 0:
        return keep.reshape(scores.shape)
    if bool(torch.isnan(flat).any()):  # NaN ranks above everything in a sort, not in kthvalue
        keep[torch.sort(flat, descending=True, stable=True).indices[:k]] = True
        return keep.reshape(scores.shape)
    # The k-th largest value in O(n) (a full sort of ResNet-18's 11M weights takes seconds),
    # then the ties at that value in position order.
    threshold = torch.kthvalue(flat, n - k + 1).values
    keep = flat > threshold
    ties = (flat == threshold).nonzero().reshape(-1)[: k - int(keep.sum())]
    keep[ties] = True
    return keep.reshape(scores.shape)


def magnitude_prune(
    weights: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    rate: float,
    *,
    scope: str = "global",
    layer_rates: Mapping[str, float] | None = None,
) -> Mask:
    """Prune ``rate`` of the weights each mask still keeps, smallest magnitude first.

    ``global`` ranks all masked tensors together; ``layerwise`` prunes each tensor by
    its own rate (``layer_rates[name]`` overrides ``rate``, e.g. the output layer at
    half the rate as Frankle & Carbin do). In global scope a tensor named in
    ``layer_rates`` is pruned on its own at that rate and left out of the global pool.
    Masks only ever lose entries, so successive rounds are nested.
    """
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"pruning rate must be in (0, 1), got {rate}")
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    layer_rates = dict(layer_rates or {})
    for name, r in layer_rates.items():
        if name not in masks or not 0.0 <= r < 1.0:
            raise ConfigError(f"layer rate for {name!r} must name a mask and lie in [0, 1)")

    def scores(name: str) -> torch.Tensor:
        w = weights[name].detach().to("cpu", torch.float32).abs()
        # Already-pruned weights score below any kept weight, so they stay pruned.
        return torch.where(masks[name].to("cpu"), w, torch.full_like(w, -1.0))

    out: dict[str, torch.Tensor] = {}
    own = set(layer_rates) if scope == "global" else set(masks)
    for name in own:
        r = layer_rates.get(name, rate)
        kept = int(masks[name].sum())
        out[name] = _top_k_mask(scores(name), _keep_count(kept, r)) if r > 0 else masks[name].clone()
    pool = [n for n in masks if n not in own]
    if pool:
        flat = torch.cat([scores(n).reshape(-1) for n in pool])
        kept = int(sum(int(masks[n].sum()) for n in pool))
        keep = _top_k_mask(flat, _keep_count(kept, rate))
        offset = 0
        for n in pool:
            size = masks[n].numel()
            out[n] = keep[offset : offset + size].reshape(masks[n].shape)
            offset += size
    return Mask({n: out[n] for n in masks})


def prune(
    model: nn.Module,
    sparsity: float,
    *,
    scope: str = "global",
    names: Iterable[str] | None = None,
) -> Mask:
    """One-shot magnitude pruning of ``model`` to ``sparsity`` (the fraction removed).

    ``names`` defaults to every conv and linear weight, the head included (as in the
    lottery-ticket papers); ``scope="layerwise"`` prunes each tensor to ``sparsity``,
    ``"global"`` ranks all of them together. The model is not changed: apply the result
    with :meth:`Mask.apply` or keep it during training with :func:`ticketzoo.keep_masks`.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"prune() takes the torch.nn.Module to prune, got {type(model).__name__}",
                                field="model", value=model)
    if not fit(float, sparsity)[0] or not 0.0 <= sparsity <= 1.0:
        raise ConfigError(f"sparsity must be a number in [0, 1], got {sparsity!r}", field="sparsity", value=sparsity)
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}", field="scope", value=scope)
    masks = full_masks(model, names)  # a compiled / DDP / torch-pruned model: its plain names
    if sparsity == 0.0:
        return masks
    if sparsity == 1.0:
        return Mask({n: torch.zeros_like(m) for n, m in masks.items()})
    return magnitude_prune(plain_state_dict(model), masks, sparsity, scope=scope)


prune_to_sparsity = prune  # the name scripts and tests used first


def random_masks_like(masks: Mapping[str, torch.Tensor], *, seed: int) -> Mask:
    """Random masks with exactly the same number of kept weights per tensor (a control)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, m in masks.items():
        k = int(m.sum())
        perm = torch.randperm(m.numel(), generator=g)
        keep = torch.zeros(m.numel(), dtype=torch.bool)
        keep[perm[:k]] = True
        out[name] = keep.reshape(m.shape)
    return Mask(out)
