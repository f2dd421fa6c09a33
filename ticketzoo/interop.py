"""Models as other tools leave them: wrapped (``torch.compile``, DDP) or pruned with
``torch.nn.utils.prune``.

``torch.compile`` puts the network under ``_orig_mod``, ``DistributedDataParallel`` and
``DataParallel`` under ``module``, so their state-dict keys carry a prefix; and
``torch.nn.utils.prune`` replaces a pruned ``weight`` parameter by ``weight_orig`` and a
float ``weight_mask`` buffer (``weight`` becomes ``weight_orig * weight_mask``). ticketzoo
names tensors as the plain network does: :func:`unwrap` and :func:`plain_state_dict` give
that view, :func:`torch_prune_masks` reads the masks torch's pruning left.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_WRAPPERS = ("_orig_mod", "module")  # torch.compile's OptimizedModule; DDP / DataParallel
_ORIG, _MASK = "_orig", "_mask"


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``torch.compile`` and (Distributed)DataParallel wrappers."""
    while True:
        inner = next((getattr(model, w) for w in _WRAPPERS if isinstance(getattr(model, w, None), nn.Module)
                      and _is_wrapper(model, w)), None)
        if inner is None:
            return model
        model = inner


def _is_wrapper(model: nn.Module, attr: str) -> bool:
    # Only the wrapper types themselves: a user's module may well have a child named "module".
    if attr == "_orig_mod":
        return type(model).__name__ == "OptimizedModule"
    return isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel))


def plain_state_dict(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU state dict under the plain network's names: wrapper prefixes dropped
    (a module is unwrapped; a mapping whose every key starts with ``_orig_mod.`` or
    ``module.`` loses it), and each ``torch.nn.utils.prune`` pair ``X_orig``/``X_mask`` folded
    into ``X`` (= ``X_orig * X_mask``, pruned entries exactly zero)."""
    state = _state(obj)
    out = {}
    for key, value in state.items():
        if key.endswith(_MASK) and key[: -len(_MASK)] + _ORIG in state:
            continue  # folded into its tensor below
        if key.endswith(_ORIG) and (mask := state.get(key[: -len(_ORIG)] + _MASK)) is not None:
            key, value = key[: -len(_ORIG)], value * mask
        out[key] = value.detach().to("cpu")
    return out


def torch_prune_masks(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The masks ``torch.nn.utils.prune`` left on a model (its ``X_mask`` buffers), as bool
    tensors named ``X``; empty when it was not pruned that way."""
    state = _state(obj)
    return {k[: -len(_MASK)]: v.detach().to("cpu") != 0 for k, v in state.items()
            if k.endswith(_MASK) and k[: -len(_MASK)] + _ORIG in state}


def _state(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of the unwrapped module, or a mapping without a wrapper's key prefix."""
    state = unwrap(obj).state_dict() if isinstance(obj, nn.Module) else dict(obj)
    for prefix in (w + "." for w in _WRAPPERS):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state
