"""The one mask type: :class:`Mask`, boolean tensors keyed by state-dict name (True = kept).

Pruning returns a Mask, a :class:`~ticketzoo.ticket.Ticket` hands one out, the training
loop enforces one (:class:`MaskSet`) and :func:`keep_masks` keeps one in a user's own
training loop. Like open_lth's ``pruning/mask.py`` it is a dict that checks what goes in.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Iterable, Mapping

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ticketzoo.errors import ConfigError, MaskViolationError


class Mask(dict):
    """``{state-dict name: bool tensor}`` on the CPU; True keeps a weight, False prunes it.

    Values are checked on the way in: bool tensors only.
    """

    def __init__(self, masks: Mapping[str, torch.Tensor] | Iterable = (), /):
        super().__init__()
        self.update(masks)

    def __setitem__(self, name: str, mask: torch.Tensor) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"mask names are state-dict keys, got {name!r}", field="masks", value=name)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            # 0/1 floats are refused too: a float "mask" is usually a weight passed by mistake
            raise ConfigError(f"mask {name!r} must be a bool tensor, got "
                              f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}",
                              field="masks", value=name)
        super().__setitem__(name, mask.detach().to("cpu", torch.bool))

    def update(self, other=(), /, **kwargs) -> None:  # dict.update would skip the checks
        items = other.items() if hasattr(other, "items") else other
        for name, mask in list(items) + list(kwargs.items()):
            self[name] = mask

    def setdefault(self, name, mask=None):
        if name not in self:
            self[name] = mask
        return self[name]

    def copy(self) -> "Mask":
        return Mask(self)

    def __repr__(self) -> str:
        # dict's repr prints every tensor in full; say what the mask is instead
        return (f"Mask({len(self)} tensors, {self.num_kept:,}/{self.num_total:,} kept, "
                f"sparsity {self.sparsity:.2%})")

    @classmethod
    def ones_like(cls, model: nn.Module | Mapping[str, torch.Tensor], names: Iterable[str]) -> "Mask":
        """All-True masks for ``names`` of a model or state dict."""
        state = model.state_dict() if isinstance(model, nn.Module) else model
        return cls({n: torch.ones(tuple(state[n].shape), dtype=torch.bool) for n in names})

    # --- accounting -------------------------------------------------------------------

    @property
    def num_kept(self) -> int:
        return sum(int(m.sum()) for m in self.values())

    @property
    def num_total(self) -> int:
        return sum(m.numel() for m in self.values())

    @property
    def density(self) -> float:
        """Fraction of masked weights kept (1.0 for an empty mask)."""
        total = self.num_total
        return self.num_kept / total if total else 1.0

    @property
    def sparsity(self) -> float:
        """Fraction of masked weights removed, over all tensors together."""
        return 1.0 - self.density

    def layer_sparsity(self) -> dict[str, float]:
        return {n: 1.0 - int(m.sum()) / m.numel() if m.numel() else 0.0 for n, m in self.items()}

    def without(self, names: Iterable[str]) -> "Mask":
        """These masks minus ``names`` (e.g. the head's, dropped by a head swap)."""
        drop = set(names)
        return Mask({n: m for n, m in self.items() if n not in drop})

    def digest(self) -> str:
        """sha256 of names, shapes and bits, in name order (a different ticket, a different digest)."""
        h = hashlib.sha256()
        for name in sorted(self):
            mask = self[name].contiguous()
            h.update(f"{name}:{tuple(mask.shape)};".encode())
            h.update(mask.numpy().tobytes())
        return h.hexdigest()

    # --- against a model --------------------------------------------------------------

    def check_fits(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The parameters the masks name; ConfigError for a missing name or another shape."""
        params = dict(model.named_parameters(remove_duplicate=False))
        found = {}
        for name, mask in self.items():
            param = params.get(name)
            if param is None:
                raise ConfigError(f"mask {name!r} names no parameter of the model", field="masks", value=name)
            if mask.shape != param.shape:
                raise ConfigError(f"mask {name!r} has shape {tuple(mask.shape)}, parameter {tuple(param.shape)}",
                                  field="masks", value=name,
                                  hint="a new head has no mask: use the ticket's `head_masks_dropped()`")
            found[name] = param
        return found

    def apply(self, model: nn.Module) -> None:
        """Zero the pruned weights of ``model`` in place."""
        MaskSet(model, self).apply()

    def violations(self, model: nn.Module) -> dict[str, int]:
        """``{name: count}`` of pruned weights that are not exactly zero (NaN counts)."""
        out = {}
        for name, param in self.check_fits(model).items():
            p = param.detach()
            bad = int((p[~self[name].to(p.device)] != 0).sum())
            if bad:
                out[name] = bad
        return out

    def check(self, model: nn.Module) -> None:
        """Raise MaskViolationError unless every pruned weight of ``model`` is exactly zero."""
        bad = self.violations(model)
        if bad:
            name, count = next(iter(bad.items()))
            raise MaskViolationError(
                f"{count} pruned weight(s) of {name} are not exactly zero after training",
                hint="the mask was not kept; nothing was saved (set TICKETZOO_DEBUG=1 and report it)")

    def keep(self, model: nn.Module) -> "MaskKeeper":
        """Keep the pruned weights of ``model`` at zero through every optimizer step (see :func:`keep_masks`)."""
        return MaskKeeper(model, self)


class MaskSet:
    """(param, mask) pairs, each mask in its param's dtype, device and memory format, so
    :meth:`apply` is one ``torch._foreach_mul_``: the training loop's hot path. Build it
    after moving the model (module conversions keep parameter objects, so the pairs stay
    valid). All-True masks are skipped."""

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor] | None):
        masks = masks if isinstance(masks, Mask) else Mask(masks or {})
        self.params: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        for name, param in masks.check_fits(model).items():
            mask = masks[name]
            if bool(mask.all()):  # nothing pruned: skip the multiply
                continue
            with torch.no_grad():
                self.params.append(param)
                self.masks.append(torch.empty_like(param).copy_(mask))

    def in_place(self) -> bool:
        """Whether every mask still matches its parameter's device and dtype."""
        return all(m.device == p.device and m.dtype == p.dtype for p, m in zip(self.params, self.masks))

    @torch.no_grad()
    def apply(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.masks)


class MaskKeeper:
    """Keeps a model's pruned weights exactly zero after every optimizer step, in any loop.

    One global optimizer step hook (``torch.optim.Optimizer``) re-applies the mask after
    each ``step()`` of an optimizer holding one of the masked parameters: whatever the
    update (momentum, weight decay, Adam's moments), pruned weights end every step at 0.
    Moving the model to another device or dtype is followed. ``remove()`` (or leaving a
    ``with`` block) stops it; so does the model being garbage-collected.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor]):
        self.masks = masks if isinstance(masks, Mask) else Mask(masks)
        self._model = weakref.ref(model)  # the keeper must not keep a discarded model alive
        self._set = MaskSet(model, self.masks)
        self._ids = {id(p) for p in self._set.params}
        self._set.apply()
        _install_hook()
        _KEEPERS.add(self)
        self._finalizer = weakref.finalize(model, _KEEPERS.discard, self)

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Re-apply the mask if ``optimizer`` updates this model (called by the hook)."""
        model = self._model()
        if model is None:
            return
        if not any(id(p) in self._ids for group in optimizer.param_groups for p in group["params"]):
            return  # another model's optimizer
        if not self._set.in_place():  # the model moved (device or dtype) since
            self._set = MaskSet(model, self.masks)
        self._set.apply()

    @property
    def active(self) -> bool:
        return self in _KEEPERS

    def remove(self) -> None:
        """Stop keeping the mask (idempotent)."""
        self._finalizer.detach()
        _KEEPERS.discard(self)

    def __enter__(self) -> "MaskKeeper":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


_KEEPERS: set[MaskKeeper] = set()
_HOOK = None


def _after_any_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    for keeper in list(_KEEPERS):  # a copy: a keeper may be removed meanwhile
        keeper.after_step(optimizer)


def _install_hook() -> None:
    """Register the one global step hook, once (torch iterates its hooks during step())."""
    global _HOOK
    if _HOOK is None:
        _HOOK = register_optimizer_step_post_hook(_after_any_step)


def keep_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> MaskKeeper:
    """Zero ``model``'s pruned weights now and after every optimizer step of your own loop.

    Returns a handle: ``handle.remove()`` stops it; it also works as a context manager.
    """
    return MaskKeeper(model, masks)


__all__ = ["Mask", "MaskKeeper", "MaskSet", "keep_masks"]
