"""What the registry can tell about a model it did not build: the :class:`ArchConfig` of a
state dict given its architecture's name, and the module order of its prunable tensors."""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

from ticketzoo.card import ArchConfig
from ticketzoo.errors import ConfigError, UnknownArchitectureError
from ticketzoo.models.registry import classifier_names, get_arch, prunable_names

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def arch_config(name: str, state: Mapping[str, torch.Tensor], *, input_size: int | None = None,
                mean: Iterable[float] | None = None, std: Iterable[float] | None = None,
                kwargs: dict | None = None) -> ArchConfig:
    """The ArchConfig of a ``state`` dict of registered architecture ``name``.

    Classes and channels are read from the head's and the first layer's shapes, the head's
    names from the registry; ``input_size`` defaults to the arch's, ``mean``/``std`` to
    ImageNet's for 3 channels and 0.5 otherwise. Whether every tensor fits is checked when
    the ticket is built (:meth:`~ticketzoo.ticket.Ticket.check_arch`).
    """
    info = get_arch(name)
    head, prunable = classifier_names(name), prunable_names(name)
    missing = [k for k in (*head, prunable[0]) if k not in state]
    if missing:
        raise ConfigError(f"the model is not a {name}: it has no tensor {missing[0]!r}", field="arch", value=name)
    size = info.default_input_size if input_size is None else input_size
    first = state[prunable[0]]
    channels = int(first.shape[1])
    if first.dim() == 2:  # a first Linear layer (LeNet) sees channels x size x size inputs
        channels, rest = divmod(channels, size * size)
        if rest or channels < 1:
            raise ConfigError(f"the first layer takes {int(first.shape[1])} inputs: not whole images of "
                              f"{size}x{size}", field="input_size", value=size)
    if mean is None and std is None:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)
    elif mean is None or std is None:
        raise ConfigError("give both mean and std, or neither", field="mean" if mean is None else "std")
    return ArchConfig(name, num_classes=int(state[head[0]].shape[0]), in_channels=channels,
                      input_size=size,
                      mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                      classifier=tuple(head), kwargs=dict(kwargs or {}))


def layer_order(arch: str, names: Iterable[str]) -> list[str]:
    """``names`` in the architecture's module order (for a registered arch), the rest by name:
    one order whatever order a dict or a file had them in."""
    names = set(names)
    try:
        known = prunable_names(arch)
    except UnknownArchitectureError:
        known = []
    first = [n for n in known if n in names]
    return first + sorted(names - set(first))
