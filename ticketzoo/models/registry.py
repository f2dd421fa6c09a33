"""The architecture registry: names -> builders, plus the helpers that read a built model.

A builder is ``fn(num_classes, in_channels, input_size, **kwargs) -> nn.Module``. State-dict
keys are the contract with the rest of ticketzoo: masks are stored keyed by the names that
:func:`prunable_names` returns, and a head swap drops the tensors :func:`classifier_names` names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ticketzoo.card import MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_SIZE
from ticketzoo.config import fit
from ticketzoo.errors import ConfigError, UnknownArchitectureError

Family = Literal["torchvision", "lth"]
Builder = Callable[..., nn.Module]
_FAMILIES = ("torchvision", "lth")
_INITS = ("default", "xavier")


@dataclass(frozen=True)
class ArchInfo:
    """One registered architecture."""

    name: str
    family: Family  # "torchvision" (ImageNet-style) or "lth" (small LTH-paper models)
    default_input_size: int  # side of the square input the architecture was designed for
    min_input_size: int  # smallest side for which the forward pass still works
    builder: Builder  # fn(num_classes, in_channels, input_size, **kwargs) -> nn.Module


_ARCHS: dict[str, ArchInfo] = {}


def register_arch(
    name: str, *, family: Family, default_input_size: int, min_input_size: int
) -> Callable[[Builder], Builder]:
    """Decorator registering ``fn`` under ``name``; a name may be registered only once."""
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {_FAMILIES}, got {family!r}")
    if not 1 <= min_input_size <= default_input_size:
        raise ValueError(f"need 1 <= min_input_size <= default_input_size for {name!r}")

    def decorator(fn: Builder) -> Builder:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHS[name] = ArchInfo(name, family, default_input_size, min_input_size, fn)
        return fn

    return decorator


def list_archs() -> list[str]:
    """Sorted names of all registered architectures."""
    return sorted(_ARCHS)


def get_arch(name: str) -> ArchInfo:
    """The :class:`ArchInfo` for ``name``; raises :class:`UnknownArchitectureError` on a miss."""
    try:
        return _ARCHS[name]
    except (KeyError, TypeError):
        valid = ", ".join(list_archs())
        raise UnknownArchitectureError(
            f"unknown architecture {name!r}; valid names: {valid}",
            name=name if isinstance(name, str) else None,
            hint="names are lower-case, e.g. 'resnet50' or 'cifar_resnet20'",
        ) from None


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int | None = None,
    init: str = "default",
    seed: int | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build architecture ``name`` for ``num_classes`` outputs on square ``input_size`` images.

    ``init="xavier"`` re-initialises conv/linear weights with Xavier-normal and zeroes their
    biases; ``"default"`` keeps the framework's init. With ``seed`` the result is
    deterministic and the global RNG state is left untouched. Extra ``kwargs`` go to the
    builder (e.g. ``width`` for the LTH architectures).
    """
    info = get_arch(name)
    _check_int("num_classes", num_classes, 1, MAX_CLASSES)
    _check_int("in_channels", in_channels, 1, MAX_CHANNELS)
    size = info.default_input_size if input_size is None else input_size
    _check_int("input_size", size, 1, MAX_INPUT_SIZE)
    if size < info.min_input_size:
        raise ConfigError(
            f"input_size {size} is too small for {name}: the minimum is {info.min_input_size} px",
            hint=f"use input_size >= {info.min_input_size} "
            f"(the default is {info.default_input_size})",
        )
    if init not in _INITS:
        raise ConfigError(f"init must be one of {', '.join(_INITS)}, got {init!r}")
    _check_kwargs(info, kwargs)
    if not fit(int | None, seed)[0]:
        raise ConfigError(f"seed must be an int or None, got {seed!r}", field="seed", value=seed)

    def build() -> nn.Module:
        model = info.builder(num_classes, in_channels, size, **kwargs)
        if init == "xavier":
            xavier_init_(model)
        return model

    if seed is None:
        return build()
    # fork_rng restores the global CPU RNG afterwards; devices=[] skips CUDA state (and its
    # warning) because models are built on the CPU.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xavier-normal conv/linear weights and zero biases, in place (Sabatelli et al., Table 4)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def check_input(model: nn.Module, in_channels: int, input_size: int) -> torch.Size:
    """Run a dummy forward on a ``(1, in_channels, input_size, input_size)`` input.

    Returns the output shape; raises :class:`ConfigError` when the model cannot take that input.
    The model is put in eval mode for the check (batch-norm refuses a 1x1 map of one sample
    in training mode) and its mode is restored afterwards.
    """
    _check_int("in_channels", in_channels, 1)
    _check_int("input_size", input_size, 1)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    x = torch.zeros(1, in_channels, input_size, input_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except (RuntimeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"model does not accept {in_channels}-channel {input_size}x{input_size} inputs: "
            f"{first_line}",
            hint="check the image size and channel count against the architecture",
        ) from err
    finally:
        model.train(was_training)
    return out.shape


def classifier_names(model: nn.Module | str) -> tuple[str, ...]:
    """State-dict keys of the final classification layer (the last ``nn.Linear``).

    Accepts a built model or an architecture name (built once on the meta device, so no
    memory or init cost).
    """
    if isinstance(model, str):
        return _names_for_arch(model)[0]
    name, linear = _last_linear(model)
    keys = [f"{name}.weight"]
    if linear.bias is not None:
        keys.append(f"{name}.bias")
    return tuple(keys)


def prunable_names(model: nn.Module | str) -> list[str]:
    """State-dict keys of every conv and linear ``.weight``, in module order.

    These are the tensors pruning masks; biases and batch-norm parameters are never pruned.
    """
    if isinstance(model, str):
        return list(_names_for_arch(model)[1])
    return [
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]


def swap_head(model: nn.Module, num_classes: int, *, device: str | torch.device | None = None) -> nn.Module:
    """Replace the final ``nn.Linear`` with a fresh one for ``num_classes`` outputs, in place.

    The new layer keeps the old one's name, ``in_features``, bias setting, device (unless
    ``device`` is given) and dtype, so state-dict keys are unchanged; only the head's shapes
    (and values) differ. :func:`new_head` adds the init choice and a seed.
    """
    _check_int("num_classes", num_classes, 1)
    name, old = _last_linear(model)
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device if device is None else device,
        dtype=old.weight.dtype,
    )
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)  # also works for nn.Sequential children named "0", "1", ...
    return model


def new_head(model: nn.Module, num_classes: int, *, init: str = "default", seed: int | None = None,
             device: str | torch.device | None = None) -> nn.Module:
    """The one head swap: a fresh dense classifier for ``num_classes`` outputs, in place.

    ``init="default"`` keeps PyTorch's ``nn.Linear`` init, ``"xavier"`` draws Xavier-normal
    weights and a zero bias (Sabatelli et al.); with ``seed`` the head is deterministic and
    the global RNG is left untouched. ``device`` defaults to the old head's (a head on the
    meta device, as :meth:`Ticket.to_model` builds it, needs one). Both
    :meth:`~ticketzoo.ticket.Ticket.to_model` and fine-tuning go through here.
    """
    if init not in _INITS:
        raise ConfigError(f"init must be one of {', '.join(_INITS)}, got {init!r}")

    def swap() -> None:
        swap_head(model, num_classes, device=device)
        if init == "xavier":
            xavier_init_(_last_linear(model)[1])

    if seed is None:
        swap()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            swap()
    return model


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found or not found[-1][0]:
        raise ConfigError(
            f"{type(model).__name__} has no nn.Linear classification layer",
            hint="ticketzoo models end in an nn.Linear head",
        )
    return found[-1]


@functools.lru_cache(maxsize=None)
def _names_for_arch(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    info = get_arch(name)
    # Names do not depend on class count, channels or size; meta tensors make this free.
    with torch.device("meta"):
        model = info.builder(2, 3, info.default_input_size)
    return classifier_names(model), tuple(prunable_names(model))


def _check_int(what: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if not fit(int, value)[0]:
        raise ConfigError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:  # beyond it, layer sizes overflow even on meta
        raise ConfigError(f"{what} must be <= {maximum}, got {value}")


def _check_kwargs(info: ArchInfo, kwargs: dict[str, object]) -> None:
    params = inspect.signature(info.builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return  # the builder forwards kwargs and validates them itself
    accepted = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{info.name} does not accept option(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
