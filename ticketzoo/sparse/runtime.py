"""The runtime's face: :func:`sparsify` a network into a :class:`SparseModel`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ticketzoo.sparse.choose import Chooser
from ticketzoo.sparse.convert import convert
from ticketzoo.sparse.layers import DENSE, SPARSE, TORCH_SPARSE, _Layer

KERNELS = (DENSE, SPARSE, TORCH_SPARSE)


class SparseModel(nn.Module):
    """An eval-mode network whose pruned layers run sparse kernels on CPU (fp32, no autograd).

    Inputs of another dtype or device (bf16 autocast, CUDA) run every layer's dense kernel.
    """

    def __init__(self, net: nn.Module, chooser: Chooser) -> None:
        super().__init__()
        self.net = net
        self.chooser = chooser
        self.eval()

    def train(self, mode: bool = True) -> "SparseModel":
        return super().train(False)  # folded batch-norms cannot train: always eval

    @property
    def compiled(self) -> bool:
        """Whether the C++ kernels are in use (else torch.sparse stands in for them)."""
        return self.chooser.kernels is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.net(x)
        self.chooser.save()  # new kernel choices, if this input shape was new
        return out

    def calibrate(self, shape: Sequence[int]) -> None:
        """Choose every layer's kernel for inputs of ``shape`` (what the first forward of that shape does)."""
        self(torch.zeros(tuple(shape)))

    def layers(self) -> list[dict]:
        """One row per swapped layer: name, kind, weight shape, density, kernel last used and its timings (ms)."""
        rows = []
        for m in self.net.modules():
            if isinstance(m, _Layer):
                used = self.chooser.used.get(m.layer_name, {})
                rows.append({"name": m.layer_name, "kind": type(m).__name__, "shape": list(m.weight.shape),
                             "density": round(m.density, 6), "kernel": used.get("kernel"), "ms": used.get("ms")})
        return rows


def sparsify(model: nn.Module, *, example: Sequence[int] | None = None, kernel: str | None = None,
             cache: bool = True, reps: int = 3, build_dir: Path | None = None, compile: bool = True) -> SparseModel:
    """``model`` (left unchanged) as a :class:`SparseModel` computing the same outputs.

    ``example`` is an input shape to choose kernels for now (by timing each layer's
    candidates); other shapes are chosen at their first forward. ``kernel`` forces one
    kernel everywhere (``"dense"``, ``"sparse"``, ``"torch-sparse"``). ``cache`` keeps
    choices in a per-machine file; ``compile=False`` skips the C++ kernels (torch.sparse
    stands in, as when no compiler is found).
    """
    from ticketzoo.errors import ConfigError
    from ticketzoo.sparse import kernels as K

    if kernel is not None and kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}", field="kernel", value=kernel)
    compiled = K.kernels(build_dir) if compile else None
    if kernel == SPARSE and compiled is None:
        kernel = TORCH_SPARSE  # what stands in for the C++ kernels here
    path = K.cache_dir() / f"choices-{K.machine_fingerprint()}.json" if cache else None
    chooser = Chooser(compiled, path=path, reps=reps, force=kernel)
    fast = SparseModel(convert(model, chooser), chooser)
    if example is not None:
        fast.calibrate(example)
    return fast
