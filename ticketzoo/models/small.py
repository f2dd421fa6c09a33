"""The small architectures of the lottery-ticket papers.

LeNet-300-100 and Conv-2/4/6 follow Frankle & Carbin (2019, Figure 2); the CIFAR ResNets and
VGGs follow open_lth (Frankle et al. 2020), including its module names (``conv``, ``bn``,
``blocks.N...``, ``layers.N...``, ``fc``). Every builder takes ``width``, a channel multiplier
(rounded, at least one channel), so tests can build tiny versions; and ``in_channels`` /
``input_size`` so grey-scale and small images work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ticketzoo.config import fit
from ticketzoo.errors import ConfigError
from ticketzoo.models.registry import register_arch


def _scale(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


MAX_WIDTH = 64  # 64x the papers' channel counts; far wider overflows layer sizes


def _check_width(width: float) -> None:
    if not fit(float, width)[0] or not math.isfinite(width):
        raise ConfigError(f"width must be a finite number, got {width!r}")
    if not 0 < width <= MAX_WIDTH:
        raise ConfigError(f"width must be > 0 and <= {MAX_WIDTH}, got {width}")


class LeNet300100(nn.Module):
    """An MLP on the flattened image: in_channels*size^2 -> 300 -> 100 -> classes."""

    def __init__(self, num_classes: int, in_features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        sizes = (in_features, *hidden)
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.fc = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


class ConvNet(nn.Module):
    """Conv-2/4/6: pairs of 3x3 convs, a 2x2 max-pool after each pair, then FC 256-256-classes."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        input_size: int,
        channels: tuple[int, ...],
        hidden: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        current = in_channels
        for pair_out in channels:
            for _ in range(2):
                layers += [nn.Conv2d(current, pair_out, 3, padding=1), nn.ReLU(inplace=True)]
                current = pair_out
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        # The FC input is fixed by the input size: each pool floors the side by 2.
        side = input_size // 2 ** len(channels)
        self.fc_layers = nn.ModuleList(
            [nn.Linear(current * side * side, hidden), nn.Linear(hidden, hidden)]
        )
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


class CifarResNet(nn.Module):
    """He et al. (2016) CIFAR ResNet: a 3x3 stem, three stages of basic blocks, avg-pool, fc."""

    class Block(nn.Module):
        """Two 3x3 conv-BN layers around a residual; 1x1 conv-BN shortcut when shapes change."""

        def __init__(self, f_in: int, f_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(f_out)
            self.conv2 = nn.Conv2d(f_out, f_out, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(f_out)
            # Option B of He et al.: a projection shortcut, as open_lth uses.
            if stride != 1 or f_in != f_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)
                )
            else:
                self.shortcut = nn.Sequential()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    def __init__(
        self, num_classes: int, in_channels: int, plan: tuple[tuple[int, int], ...]
    ) -> None:
        super().__init__()
        current = plan[0][0]
        self.conv = nn.Conv2d(in_channels, current, 3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(current)
        blocks = []
        for stage, (filters, num_blocks) in enumerate(plan):
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(CifarResNet.Block(current, filters, stride))
                current = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class CifarVGG(nn.Module):
    """open_lth's CIFAR VGG: conv-BN-ReLU modules and 'M' max-pools, global avg-pool, one fc."""

    class ConvModule(nn.Module):
        """One 3x3 conv, batch-norm and ReLU."""

        def __init__(self, f_in: int, f_out: int) -> None:
            super().__init__()
            self.conv = nn.Conv2d(f_in, f_out, 3, padding=1)
            self.bn = nn.BatchNorm2d(f_out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(self.bn(self.conv(x)))

    def __init__(self, num_classes: int, in_channels: int, plan: tuple[int | str, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        current = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(CifarVGG.ConvModule(current, int(spec)))
                current = int(spec)
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # open_lth pools the 2x2 map of a 32 px input with AvgPool2d(2); a global pool is the
        # same there and also works for other sizes.
        x = F.adaptive_avg_pool2d(self.layers(x), 1).flatten(1)
        return self.fc(x)


_VGG_PLANS: dict[int, tuple[int | str, ...]] = {
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512),
}  # fmt: skip


@register_arch("lenet_300_100", family="lth", default_input_size=28, min_input_size=1)
def lenet_300_100(
    num_classes: int, in_channels: int, input_size: int, *, width: float = 1.0
) -> nn.Module:
    """LeNet-300-100 (Frankle & Carbin 2019); the first layer sees in_channels*input_size^2."""
    _check_width(width)
    hidden = (_scale(300, width), _scale(100, width))
    return LeNet300100(num_classes, in_channels * input_size * input_size, hidden)


def _conv_builder(pairs: int):
    def build(
        num_classes: int, in_channels: int, input_size: int, *, width: float = 1.0
    ) -> nn.Module:
        _check_width(width)
        channels = tuple(_scale(c, width) for c in (64, 128, 256)[:pairs])
        return ConvNet(num_classes, in_channels, input_size, channels, _scale(256, width))

    build.__name__ = f"conv{pairs * 2}"
    build.__doc__ = f"Conv-{pairs * 2} (Frankle & Carbin 2019); the FC input follows input_size."
    # Each pair halves the side, so 2**pairs px leaves a 1x1 map.
    return register_arch(
        f"conv{pairs * 2}", family="lth", default_input_size=32, min_input_size=2**pairs
    )(build)


conv2 = _conv_builder(1)
conv4 = _conv_builder(2)
conv6 = _conv_builder(3)


def _resnet_builder(depth: int):
    blocks_per_stage = (depth - 2) // 6

    def build(
        num_classes: int, in_channels: int, input_size: int, *, width: float = 1.0
    ) -> nn.Module:
        _check_width(width)
        plan = tuple((_scale(c, width), blocks_per_stage) for c in (16, 32, 64))
        return CifarResNet(num_classes, in_channels, plan)

    build.__name__ = f"cifar_resnet{depth}"
    build.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016; open_lth cifar_resnet_{depth})."
    # Two stride-2 stages: 8 px still leaves a 2x2 map for the last stage.
    return register_arch(
        f"cifar_resnet{depth}", family="lth", default_input_size=32, min_input_size=8
    )(build)


def _vgg_builder(depth: int):
    def build(
        num_classes: int, in_channels: int, input_size: int, *, width: float = 1.0
    ) -> nn.Module:
        _check_width(width)
        plan = tuple(s if s == "M" else _scale(int(s), width) for s in _VGG_PLANS[depth])
        return CifarVGG(num_classes, in_channels, plan)

    build.__name__ = f"cifar_vgg{depth}"
    build.__doc__ = f"CIFAR VGG-{depth} with batch-norm (open_lth cifar_vgg_{depth})."
    # Four max-pools: 16 px is the smallest side that does not pool down to nothing.
    return register_arch(
        f"cifar_vgg{depth}", family="lth", default_input_size=32, min_input_size=16
    )(build)


cifar_resnet20 = _resnet_builder(20)
cifar_resnet56 = _resnet_builder(56)
cifar_vgg16 = _vgg_builder(16)
cifar_vgg19 = _vgg_builder(19)
