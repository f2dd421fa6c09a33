"""Where and how tensors live during a run: device choice, autocast, channels_last, and
(re-exported from :mod:`ticketzoo.masks`) the on-device (param, mask) pairs that keep
pruned weights at zero.

``amp``/``channels_last`` take effect on CUDA; on CPU bf16 autocast and NHWC are separate
switches (``TrainConfig.cpu_amp``/``cpu_channels_last``: runtime choices, resolved per run by
:func:`resolve_cpu_runtime` and not hashed), so a recipe written for a GPU runs unchanged on
CPU. CPU runs stay bitwise reproducible for a fixed thread count either way.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import ContextManager

import torch
from torch import nn

from ticketzoo.cpu import cpu_bf16_native
from ticketzoo.errors import ConfigError
from ticketzoo.masks import MaskSet  # noqa: F401  (the loop's on-device masks; one Mask type)

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    text = str(spec).strip().lower() if isinstance(spec, (str, torch.device)) else None
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA.fullmatch(text) if text is not None else None
    if match is None:
        raise ConfigError(f"unknown device {spec!r}", hint="use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {text!r} was requested but CUDA is not available",
            field="device", value=text, hint="use cpu or auto",
        )
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {text!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
        )
    return torch.device(text)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 where supported, else fp16 (CUDA); bf16 on
    CPU; None when not ``enabled``."""
    if not enabled:
        return None
    if device.type != "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


#: Architecture families whose CPU training defaults to channels_last (and bf16 autocast where
#: the CPU computes bf16 natively): torchvision's ImageNet-style convnets. The small LTH models
#: (one thread, mostly Linear layers) keep fp32 NCHW.
CPU_FAST_FAMILIES = ("torchvision",)


#: Tasks whose CPU runs take bf16 autocast by default where the CPU has it natively. Fine-tuning
#: is not one of them, so that the same command computes in the same arithmetic on every CPU
#: (AMX, AVX-512 BF16, or none): on two blood-cell folders bf16 changed test accuracy by no
#: measurable amount (docs/FINETUNE.md), but what it computes depends on the CPU's bf16 unit,
#: and fine-tuning a few hundred images costs minutes, not hours. Finding a ticket (hours on
#: tens of thousands of images) keeps bf16 for its speed; ``--amp`` turns it on anywhere.
CPU_BF16_TASKS = ("find",)


def cpu_defaults(family: str | None, task: str = "finetune") -> dict[str, bool]:
    """``TrainConfig``'s ``cpu_amp``/``cpu_channels_last`` when the user chose neither: NHWC for
    :data:`CPU_FAST_FAMILIES`, bf16 as well for :data:`CPU_BF16_TASKS` where the CPU has it
    natively."""
    fast = family in CPU_FAST_FAMILIES
    return {"cpu_amp": fast and task in CPU_BF16_TASKS and cpu_bf16_native(), "cpu_channels_last": fast}


def resolve_cpu_runtime(config, family: str | None, task: str = "finetune"):
    """``config`` (a :class:`~ticketzoo.config.train.TrainConfig`) with its "auto" (None) CPU
    precision and memory format resolved by :func:`cpu_defaults`. These fields are not hashed:
    the recipe's hash, run folders and resumes are the same on every CPU; the resolved values
    are recorded with the run."""
    import dataclasses

    auto = cpu_defaults(family, task)
    chosen = {k: v for k, v in auto.items() if getattr(config, k) is None}
    return dataclasses.replace(config, **chosen) if chosen else config


def precision_of(config, device: torch.device | str | None = None) -> dict[str, object]:
    """What a run computes in (on ``device``, else the config's own): ``{"device", "precision"
    (fp32/bf16/fp16), "channels_last"}``."""
    rt = Runtime.for_config(config, device)
    dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[rt.amp_dtype]
    return {"device": str(rt.device), "precision": dtype, "channels_last": rt.channels_last}


@dataclass(frozen=True)
class Runtime:
    """A resolved device plus the precision and memory format to use on it."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def create(
        cls, device: str | torch.device = "auto", *, amp: bool = True, channels_last: bool = True,
        cpu_amp: bool | None = False, cpu_channels_last: bool | None = False,
    ) -> Runtime:
        dev = resolve_device(device)
        cuda = dev.type == "cuda"
        return cls(dev, amp_dtype(dev, amp if cuda else bool(cpu_amp)),  # None ("auto" unresolved): off
                   channels_last if cuda else bool(cpu_channels_last))

    @classmethod
    def for_config(cls, config, device: str | torch.device | None = None) -> Runtime:
        """The runtime a :class:`~ticketzoo.train.TrainConfig` asks for (on ``device``, else
        the config's own)."""
        return cls.create(config.device if device is None else device, amp=config.amp,
                          channels_last=config.channels_last, cpu_amp=config.cpu_amp,
                          cpu_channels_last=config.cpu_channels_last)

    def autocast(self) -> ContextManager:
        """``torch.autocast`` with AMP on, else a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A GradScaler for fp16 autocast (bf16 and fp32 need none)."""
        if self.amp_dtype != torch.float16:
            return None
        return torch.amp.GradScaler(self.device.type)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Move ``model`` in place to the device (and NHWC when channels_last)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def to_device(self, images: torch.Tensor, labels: torch.Tensor):
        """Move one batch, images in NHWC when channels_last applies."""
        non_blocking = self.device.type == "cuda"
        if self.channels_last and images.dim() == 4:
            images = images.to(
                self.device, non_blocking=non_blocking, memory_format=torch.channels_last
            )
        else:
            images = images.to(self.device, non_blocking=non_blocking)
        return images, labels.to(self.device, non_blocking=non_blocking)


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of ``model.state_dict()`` (safe to keep or save)."""
    return {
        name: value.detach().to("cpu", copy=True, memory_format=torch.contiguous_format)
        for name, value in model.state_dict().items()
    }
