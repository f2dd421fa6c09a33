"""Models as other tools leave them: wrapped (``torch.compile``, DDP) or pruned with
``torch.nn.utils.prune``.

``torch.compile`` puts the network under ``_orig_mod``, ``DistributedDataParallel`` and
``DataParallel`` under ``module``, so their state-dict keys carry a prefix; and
``torch.nn.utils.prune`` replaces a pruned ``weight`` parameter by ``weight_orig`` and a
float ``weight_mask`` buffer (``weight`` becomes ``weight_orig * weight_mask``). ticketzoo
names tensors as the plain network does: :func:`unwrap` and :func:`plain_state_dict` give
that view, :func:`torch_prune_masks` reads the masks torch's pruning left, and
:func:`apply_torch_prune` puts a ticket's masks back as torch's pruning.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ticketzoo.errors import ConfigError

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


def apply_torch_prune(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> nn.Module:
    """Register each mask on ``model`` with ``torch.nn.utils.prune.custom_from_mask``, so code
    written for torch's pruning keeps working: ``X`` becomes ``X_orig * X_mask`` (a parameter
    and a buffer), recomputed before every forward, so pruned weights stay zero through training.

    ``masks`` are bool tensors under the plain network's names (a :class:`~ticketzoo.masks.Mask`,
    ``ticket.masks``); ``model`` may be wrapped (``torch.compile``, DDP): the masks go on the
    network inside. ``X_orig`` starts as the current ``X``, so a ticket's model keeps zeros at
    pruned positions there too (a ticket stores no values for them). A tensor torch already
    pruned gets the product of both masks, as torch combines them. Returns ``model``.
    """
    from torch.nn.utils import prune

    inner = unwrap(model)
    targets = []
    for name, mask in _state(masks).items():  # every name checked before the model is changed
        module_name, _, attr = name.rpartition(".")
        try:
            module = inner.get_submodule(module_name)
        except AttributeError:
            module = None
        # A parameter, or one torch pruned already (a plain tensor then, weight_orig the parameter)
        current = getattr(module, attr, None) if module is not None else None
        if not (isinstance(current, nn.Parameter) or isinstance(getattr(module, attr + _ORIG, None), nn.Parameter)):
            raise ConfigError(f"mask {name!r} names no parameter of the model", field="masks", value=name)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != current.shape:
            what = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ConfigError(f"mask {name!r} must be a bool tensor of shape {tuple(current.shape)}, got {what}",
                              field="masks", value=name)
        targets.append((module, attr, mask))
    for module, attr, mask in targets:
        # On the weight's device: torch multiplies it by a default mask made there.
        prune.custom_from_mask(module, attr, mask.to(getattr(module, attr).device))
    return model


def _state(obj: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of the unwrapped module, or a mapping without a wrapper's key prefix."""
    state = unwrap(obj).state_dict() if isinstance(obj, nn.Module) else dict(obj)
    for prefix in (w + "." for w in _WRAPPERS):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state
