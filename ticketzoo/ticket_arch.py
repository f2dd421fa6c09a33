"""A ticket's tensors against the architecture its card names, on the meta device.

:func:`meta_model` builds the card's network without allocating a weight, so the shapes a
file claims are checked before anything that big is made; :func:`check_tensors` compares
names, shapes (a mask by the shape it claims), dtypes and the head; :func:`materialize_fresh`
gives modules left on meta (a swapped head) real tensors. Used by :class:`ticketzoo.ticket.Ticket`.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ticketzoo import codec
from ticketzoo.card import ArchConfig
from ticketzoo.errors import ConfigError, TicketFormatError


def meta_model(arch: ArchConfig, path: str | None) -> nn.Module:
    """The card's network on the meta device; TicketFormatError when it cannot be built,
    UnknownArchitectureError for a name this ticketzoo does not know."""
    from ticketzoo.models import build_model, get_arch

    get_arch(arch.name)  # an unknown name is its own error, listing the known ones
    # Build on the meta device (assigned tensors replace the init; none is allocated).
    try:
        with torch.device("meta"), _SkipMetaInit():
            return build_model(arch.name, num_classes=arch.num_classes, in_channels=arch.in_channels,
                               input_size=arch.input_size, **arch.kwargs)
    except ConfigError as e:
        problem = e.message
    except (RuntimeError, ValueError, TypeError, NotImplementedError, OverflowError, AssertionError) as e:
        # a builder refusing its arguments in its own words (torchvision asserts, raises ...)
        problem = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    raise TicketFormatError(f"the card's architecture {arch.name!r} {arch.kwargs or ''} cannot be built: "
                            f"{problem[:300]}", path=path)


def check_tensors(model: nn.Module, arch: ArchConfig, rewind: Mapping[str, torch.Tensor],
                  csr: Mapping[str, codec.CSRMask], path: str | None) -> None:
    """The stored ``rewind`` tensors (masked ones by their ``csr`` shape) against ``model``'s
    state: the same names, shapes and dtypes, and the head the card names."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(rewind)), sorted(set(rewind) - set(expected))
    if missing or unexpected:
        raise TicketFormatError(
            f"ticket tensors do not match architecture {arch.name!r} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})", path=path)
    for k, want in expected.items():
        t = rewind[k]
        shape = csr[k].shape if k in csr else tuple(t.shape)
        if tuple(want.shape) != tuple(shape):
            raise TicketFormatError(
                f"shape {list(shape)} does not fit architecture {arch.name!r} "
                f"{arch.kwargs or ''}, which expects {list(want.shape)}",
                path=path, tensor=k, hint="the card's arch arguments do not match the stored tensors")
        fits = t.dtype in codec._VALUE_DTYPES if want.is_floating_point() else t.dtype == want.dtype
        if not fits:
            expect = "a floating-point tensor" if want.is_floating_point() else str(want.dtype)
            raise TicketFormatError(f"dtype {t.dtype} does not fit architecture {arch.name!r}, which "
                                    f"expects {expect}", path=path, tensor=k)
    from ticketzoo.models import classifier_names

    head = classifier_names(model)
    if set(arch.classifier) != set(head):
        raise TicketFormatError(f"the card names head tensors {list(arch.classifier)[:3]} but {arch.name!r} "
                                f"has {list(head)}", path=path)


class _SkipMetaInit(TorchFunctionMode):
    """Skip in-place initialisers on meta tensors: their values are replaced anyway, and
    on meta they still cost Python-level decompositions (~40% of building ResNet-50)."""

    _INIT = frozenset({"uniform_", "normal_", "zero_", "fill_", "kaiming_uniform_", "kaiming_normal_",
                       "xavier_uniform_", "xavier_normal_", "trunc_normal_", "constant_", "ones_", "zeros_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self._INIT and args and getattr(args[0], "is_meta", False):
            return args[0]
        return func(*args, **(kwargs or {}))


def materialize_fresh(model: nn.Module) -> None:
    """Give modules still on the meta device (a swapped head) real, freshly initialised tensors."""
    for module in model.modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if any(t.is_meta for t in own):
            module.to_empty(device="cpu", recurse=False)
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
