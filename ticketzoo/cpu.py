"""What this CPU can do, as the training defaults and the benchmarks need to know it."""

from __future__ import annotations


def cpu_bf16_native() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512 BF16 or AMX) that oneDNN uses. Without it
    bf16 autocast is emulated: measured 9x *slower* than fp32 for a conv net on an AVX2-only
    EPYC, so it is never a default there."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
