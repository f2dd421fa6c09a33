"""ImageNet architectures from torchvision, registered under torchvision's own names.

Models are built with ``weights=None`` and keep torchvision's module names, so a state dict
from ``torchvision.models.<name>()`` loads unchanged (for 1000 classes and 3 channels).
Small inputs (< 64 px) go through the unchanged ImageNet stem: the models still run down to
32 px but downsample aggressively; the Sabatelli et al. experiments used 224 px crops.
Extra keyword arguments go to the torchvision constructor, from a short allow-list per family
(``dropout``, ``width_mult``, ...): see ``_OPTIONS``.
"""

from __future__ import annotations

import torchvision.models as tvm
from torch import nn

from ticketzoo.errors import ConfigError
from ticketzoo.models.registry import register_arch

# Five stride-2 stages (or four pools plus a stride-2 stem): 32 px is the smallest side that
# still leaves a 1x1 map at the end.
_MIN_SIZE = 32
_DEFAULT_SIZE = 224

_NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "vgg11_bn",
    "vgg16_bn",
    "vgg19_bn",
    "mobilenet_v2",
    "densenet121",
)


def replace_first_conv(model: nn.Module, in_channels: int) -> nn.Module:
    """Swap the first ``nn.Conv2d`` for one with ``in_channels`` inputs and the same config.

    The module keeps its name, so state-dict keys do not change (only that weight's shape).
    """
    name, old = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    if old.in_channels == in_channels:
        return model
    if old.groups != 1:
        raise ConfigError(f"cannot change the input channels of grouped conv {name!r}")
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,
        stride=old.stride,
        padding=old.padding,
        dilation=old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    # The init torchvision gives the stems of ResNet, VGG and MobileNet.
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
    return model


def _flag(v: object) -> bool:
    return isinstance(v, bool)


def _fraction(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1


def _multiplier(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 4


# The constructor options a card may pass: only those that keep torchvision's module names
# and that the constructor checks itself. Others (groups, width_per_group, dilation,
# norm_layer, block settings) reach asserts or NotImplementedError deep in torchvision.
_OPTIONS = {
    "resnet": {"zero_init_residual": (_flag, "true or false")},
    "vgg": {"dropout": (_fraction, "a number in [0, 1)"), "init_weights": (_flag, "true or false")},
    "mobilenet_v2": {"dropout": (_fraction, "a number in [0, 1)"), "width_mult": (_multiplier, "a number in (0, 4]")},
    "densenet121": {"drop_rate": (_fraction, "a number in [0, 1)"), "memory_efficient": (_flag, "true or false")},
}


def _check_options(name: str, kwargs: dict[str, object]) -> None:
    options = next(v for k, v in _OPTIONS.items() if name.startswith(k))
    if "weights" in kwargs:
        raise ConfigError(f"{name} is always built untrained (weights=None)")
    for key, value in kwargs.items():
        if key not in options:
            raise ConfigError(f"bad option for {name}: {key!r} (accepted: {', '.join(options) or 'none'})")
        check, rule = options[key]
        if not check(value):
            raise ConfigError(f"bad option for {name}: {key} must be {rule}, got {value!r}")


def _make_builder(name: str):
    constructor = getattr(tvm, name)

    def build(num_classes: int, in_channels: int, input_size: int, **kwargs: object) -> nn.Module:
        _check_options(name, kwargs)
        try:
            model = constructor(weights=None, num_classes=num_classes, **kwargs)
        except TypeError as err:  # an option the torchvision constructor does not take
            raise ConfigError(f"bad option for {name}: {err}") from err
        return replace_first_conv(model, in_channels)

    build.__name__ = name
    build.__doc__ = f"torchvision.models.{name}(weights=None), first conv adapted to in_channels."
    return build


for _name in _NAMES:
    register_arch(
        _name,
        family="torchvision",
        default_input_size=_DEFAULT_SIZE,
        min_input_size=_MIN_SIZE,
    )(_make_builder(_name))
